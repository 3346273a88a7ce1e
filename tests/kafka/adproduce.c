/*
 * adproduce: produces the adgen stream (see ../adgen/adgen.h) to a Kafka
 * topic, each message to the partition and with the Kafka timestamp the
 * generator chose, and writes the generator's COPY files for ground truth.
 *
 *   adproduce [adgen options] --topic NAME
 *             (--bootstrap SERVERS | --bootstrap-file PATH)
 *             [--rate N] [--messages FILE] [--truth FILE]
 *   adproduce --input FILE --topic NAME
 *             (--bootstrap SERVERS | --bootstrap-file PATH) [--rate N]
 *
 * --input FILE produces the lines of FILE instead of a generated stream,
 * each line "PARTITION<TAB>KAFKA_MS<TAB>MESSAGE": the message is the rest
 * of the line (any bytes but a newline), sent without a key to partition
 * PARTITION with Kafka timestamp KAFKA_MS (0: the time of sending).  Tests
 * with a generator of their own (such as kafka_orders.sh) use it.
 *
 * --rate N paces the stream at N messages per second of wall-clock time
 * (default 0: as fast as the broker takes them); the generator then also
 * spaces Kafka timestamps at N per second, from now unless --start-ms is
 * given, so the stream looks live.  The producer is
 * idempotent, so each partition receives its messages once and in order:
 * on a fresh topic the offsets are the generator's offsets.  Exits 0 once
 * every message is acknowledged, 1 on any delivery error.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "../adgen/adgen.h"

#include "stop_signal.h"

static long delivery_errors = 0;


static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void) rk;
    (void) opaque;
    if (m->err)
    {
        if (delivery_errors++ < 10)
            fprintf(stderr, "adproduce: delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *
read_first_line(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");

    if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
    {
        fprintf(stderr, "adproduce: cannot read %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

static FILE *
open_out(const char *path)
{
    FILE *f;

    if (path == NULL)
        return NULL;
    f = fopen(path, "w");
    if (f == NULL)
    {
        fprintf(stderr, "adproduce: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

/* An idempotent producer for bootstrap; exits on a configuration error. */
static rd_kafka_t *
new_producer(const char *bootstrap)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    char err[512];

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "queue.buffering.max.messages", "1000000", err, sizeof(err)))
    {
        fprintf(stderr, "adproduce: %s\n", err);
        exit(2);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL)
    {
        fprintf(stderr, "adproduce: %s\n", err);
        exit(1);
    }
    return rk;
}

/* Hold the pace: message number sent is due at t0 + sent / rate. */
static void
pace(rd_kafka_t *rk, double t0, uint64_t sent, double rate)
{
    double due;

    if (rate <= 0)
        return;
    due = t0 + sent / rate;
    while (!stop_requested && now_seconds() < due)
        rd_kafka_poll(rk, 1);
}

/* Queue one message (waiting while the queue is full); 0 on success. */
static int
send_message(rd_kafka_t *rk, const char *topic, int32_t partition, const void *key,
             size_t key_len, const void *data, size_t len, int64_t kafka_ms)
{
    rd_kafka_resp_err_t e;

    for (;;)
    {
        e = rd_kafka_producev(rk,
                              RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, key_len),
                              RD_KAFKA_V_VALUE((void *) data, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_TIMESTAMP(kafka_ms),
                              RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(rk, 10);
    }
    if (e)
    {
        fprintf(stderr, "adproduce: produce failed: %s\n", rd_kafka_err2str(e));
        return -1;
    }
    rd_kafka_poll(rk, 0);
    return 0;
}

/* Wait until every queued message is acknowledged (or a stop signal). */
static void
drain(rd_kafka_t *rk)
{
    while (rd_kafka_outq_len(rk) > 0 && !stop_requested)
        rd_kafka_poll(rk, 100);
}

/* --input: produce the lines of path (see the header); the exit status. */
static int
produce_input(const char *path, const char *topic, const char *bootstrap, double rate)
{
    FILE *f = fopen(path, "r");
    rd_kafka_t *rk;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t sent = 0;
    long lineno = 0;
    double t0;

    if (f == NULL)
    {
        fprintf(stderr, "adproduce: cannot read %s: %s\n", path, strerror(errno));
        return 1;
    }
    install_stop_signals();
    rk = new_producer(bootstrap);
    t0 = now_seconds();
    while (!stop_requested && (n = getline(&line, &cap, f)) >= 0)
    {
        char *end;
        long partition;
        long long kafka_ms;

        lineno++;
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        partition = strtol(line, &end, 10);
        if (end == line || *end != '\t' || partition < 0 || partition > INT32_MAX)
            goto bad_line;
        kafka_ms = strtoll(end + 1, &end, 10);
        if (*end != '\t' || kafka_ms < 0)
            goto bad_line;
        end++;
        pace(rk, t0, sent, rate);
        if (send_message(rk, topic, (int32_t) partition, NULL, 0, end,
                         (size_t) (line + n - end), kafka_ms) != 0)
            return 1;
        sent++;
    }
    if (ferror(f))
    {
        fprintf(stderr, "adproduce: read error on %s: %s\n", path, strerror(errno));
        return 1;
    }
    fclose(f);
    free(line);
    drain(rk);
    fprintf(stderr, "adproduce: sent %llu messages of %s in %.1f s\n",
            (unsigned long long) sent, path, now_seconds() - t0);
    rd_kafka_destroy(rk);
    return delivery_errors == 0 && !stop_requested ? 0 : 1;

bad_line:
    fprintf(stderr, "adproduce: %s:%ld: not PARTITION<TAB>KAFKA_MS<TAB>MESSAGE\n",
            path, lineno);
    return 2;
}

int
main(int argc, char **argv)
{
    adgen_options o;
    adgen *g;
    adgen_msg m;
    char err[512];
    const char *topic = NULL;
    const char *bootstrap = NULL;
    const char *messages_path = NULL;
    const char *truth_path = NULL;
    const char *input_path = NULL;
    double rate = 0;
    int start_given = 0;
    rd_kafka_t *rk;
    FILE *messages_f;
    FILE *truth_f;
    double t0;
    uint64_t sent = 0;
    char summary[512];

    adgen_options_init(&o);
    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r;

        if (strncmp(a, "--", 2) != 0 || v == NULL)
        {
            fprintf(stderr, "adproduce: options are --name value pairs; see the header of adproduce.c\n%s",
                    adgen_options_help());
            return 2;
        }
        i++;
        if (strcmp(a, "--topic") == 0)
            topic = v;
        else if (strcmp(a, "--bootstrap") == 0)
            bootstrap = v;
        else if (strcmp(a, "--bootstrap-file") == 0)
            bootstrap = read_first_line(v);
        else if (strcmp(a, "--messages") == 0)
            messages_path = v;
        else if (strcmp(a, "--truth") == 0)
            truth_path = v;
        else if (strcmp(a, "--input") == 0)
            input_path = v;
        else if (strcmp(a, "--rate") == 0)
        {
            char *end;

            rate = strtod(v, &end);
            if (*end != '\0' || rate < 0)
            {
                fprintf(stderr, "adproduce: --rate must be a number >= 0\n");
                return 2;
            }
            if (rate >= 1 && adgen_options_set(&o, "rate", v, err, sizeof(err)) != 1)
            {
                fprintf(stderr, "adproduce: --rate: %s\n", err);
                return 2;
            }
        }
        else
        {
            if (strcmp(a, "--start-ms") == 0)
                start_given = 1;
            if ((r = adgen_options_set(&o, a + 2, v, err, sizeof(err))) != 1)
            {
                if (r == 0)
                    fprintf(stderr, "adproduce: unknown option %s\n", a);
                else
                    fprintf(stderr, "adproduce: %s\n", err);
                return 2;
            }
        }
    }
    if (rate > 0 && !start_given && input_path == NULL)
    {
        struct timespec now;
        char ms[32];

        clock_gettime(CLOCK_REALTIME, &now);
        snprintf(ms, sizeof(ms), "%lld",
                 (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000);
        if (adgen_options_set(&o, "start-ms", ms, err, sizeof(err)) != 1)
        {
            fprintf(stderr, "adproduce: %s\n", err);
            return 2;
        }
    }
    if (topic == NULL || bootstrap == NULL)
    {
        fprintf(stderr, "adproduce: --topic and --bootstrap (or --bootstrap-file) are required\n");
        return 2;
    }
    if (input_path != NULL)
    {
        if (messages_path != NULL || truth_path != NULL)
        {
            fprintf(stderr, "adproduce: --input takes no --messages or --truth\n");
            return 2;
        }
        return produce_input(input_path, topic, bootstrap, rate);
    }
    if (adgen_options_check(&o, err, sizeof(err)) != 0 ||
        (g = adgen_create(&o, err, sizeof(err))) == NULL)
    {
        fprintf(stderr, "adproduce: %s\n", err);
        return 2;
    }

    install_stop_signals();
    rk = new_producer(bootstrap);
    messages_f = open_out(messages_path);
    truth_f = open_out(truth_path);

    t0 = now_seconds();
    while (!stop_requested && adgen_next(g, &m))
    {
        pace(rk, t0, sent, rate);
        if (send_message(rk, topic, (int32_t) m.partition, m.key, m.key_len, m.data, m.len,
                         m.kafka_ms) != 0)
            return 1;
        if ((messages_f && adgen_write_message_row(messages_f, &m)) ||
            (truth_f && adgen_write_truth_row(truth_f, &m)))
        {
            fprintf(stderr, "adproduce: write error: %s\n", strerror(errno));
            return 1;
        }
        sent++;
    }
    drain(rk);
    if ((messages_f && fclose(messages_f) != 0) || (truth_f && fclose(truth_f) != 0))
    {
        fprintf(stderr, "adproduce: write error: %s\n", strerror(errno));
        return 1;
    }
    adgen_format_summary(g, summary, sizeof(summary));
    fprintf(stderr, "adproduce: sent %llu in %.1f s; %s\n", (unsigned long long) sent,
            now_seconds() - t0, summary);
    rd_kafka_destroy(rk);
    adgen_free(g);
    return delivery_errors == 0 && !stop_requested ? 0 : 1;
}
