/*
 * outread: reads back what adstream's transactional producer wrote, for the
 * test scripts.  It reads every partition of the output topic and
 * partition 0 of the progress topic, from the low watermark up to the high
 * watermark as it was when the program started (later messages are left
 * out), and writes them as PostgreSQL COPY text files (tab separated, \N
 * for null, backslash, tab, newline and carriage return escaped), ready for
 * COPY ... FROM:
 *
 *   outread --bootstrap-file PATH --topic OUT --progress-topic PROG \
 *           --records FILE --progress FILE \
 *           [--isolation read_committed|read_uncommitted] [--timeout-ms N]
 *
 * --bootstrap-file holds the bootstrap servers on its first line.
 * --records gets one line per message of OUT, by partition then offset:
 *   partition, offset, key, header adstream.txn, header adstream.outbox_id,
 *   header adstream.version, value
 * (an absent header, key or value is \N).  --progress gets one line per
 * message of PROG partition 0: offset, key, value.
 *
 * The consumer assigns the partitions itself (a random group.id, nothing
 * committed); --isolation defaults to read_uncommitted.  A partition is
 * finished at its last message before the starting high watermark, at a
 * partition-EOF event, or at once if it was empty.  If not everything is
 * finished within --timeout-ms (default 30000), or on any consumer error,
 * it exits 1; usage errors exit 2.  On success it prints
 * "outread: N records, M progress records".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define USAGE \
    "usage: outread --bootstrap-file PATH --topic OUT --progress-topic PROG\n" \
    "               --records FILE --progress FILE\n" \
    "               [--isolation read_committed|read_uncommitted] [--timeout-ms N]\n"

/* One partition to read, and the lines read from it so far. */
struct part
{
    const char *topic;
    int32_t partition;
    int is_progress;
    int64_t low;
    int64_t high;
    int done;
    long long count;
    FILE *lines;
    char *text;
    size_t text_len;
};

static struct part *parts;
static int nparts;
static long timeout_ms = 30000;
static double deadline;

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Milliseconds left until the deadline, at least 0. */
static int
remaining_ms(void)
{
    double left = deadline - now_seconds();

    return left > 0 ? (int) (left * 1000) + 1 : 0;
}

/* For an error message: whether the deadline has passed. */
static const char *
timeout_note(void)
{
    static char note[64];

    if (remaining_ms() > 0)
        return "";
    snprintf(note, sizeof(note), " (timed out after %ld ms)", timeout_ms);
    return note;
}

/*
 * Generic client errors (a broker connection lost, for instance) are
 * retried by librdkafka itself and only reported; a fatal one ends the
 * program.  Errors of the consumer proper come back from
 * rd_kafka_consumer_poll() and are handled there.
 */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void) rk;
    (void) opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
    {
        fprintf(stderr, "outread: fatal error: %s\n", reason);
        exit(1);
    }
    fprintf(stderr, "outread: warning: %s: %s\n",
            rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
}

/* One COPY text field: \N for NULL, else the bytes with escapes. */
static void
put_field(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;

    if (data == NULL)
    {
        fputs("\\N", out);
        return;
    }
    for (size_t i = 0; i < len; i++)
    {
        switch (p[i])
        {
            case '\\':
                fputs("\\\\", out);
                break;
            case '\t':
                fputs("\\t", out);
                break;
            case '\n':
                fputs("\\n", out);
                break;
            case '\r':
                fputs("\\r", out);
                break;
            default:
                putc(p[i], out);
                break;
        }
    }
}

/* The field of header name: its last value, \N if absent or null. */
static void
put_header(FILE *out, rd_kafka_headers_t *hdrs, const char *name)
{
    const void *value = NULL;
    size_t size = 0;

    if (hdrs == NULL ||
        rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
        value = NULL;
    put_field(out, value, size);
}

static void
put_message(struct part *pt, rd_kafka_message_t *msg)
{
    FILE *out = pt->lines;

    if (pt->is_progress)
        fprintf(out, "%lld\t", (long long) msg->offset);
    else
        fprintf(out, "%d\t%lld\t", (int) pt->partition, (long long) msg->offset);
    put_field(out, msg->key, msg->key_len);
    putc('\t', out);
    if (!pt->is_progress)
    {
        rd_kafka_headers_t *hdrs = NULL;

        if (rd_kafka_message_headers(msg, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
            hdrs = NULL;
        put_header(out, hdrs, "adstream.txn");
        putc('\t', out);
        put_header(out, hdrs, "adstream.outbox_id");
        putc('\t', out);
        put_header(out, hdrs, "adstream.version");
        putc('\t', out);
    }
    put_field(out, msg->payload, msg->len);
    putc('\n', out);
    pt->count++;
}

static struct part *
find_part(rd_kafka_message_t *msg)
{
    const char *topic;

    if (msg->rkt == NULL)
        return NULL;
    topic = rd_kafka_topic_name(msg->rkt);
    for (int i = 0; i < nparts; i++)
        if (parts[i].partition == msg->partition && strcmp(parts[i].topic, topic) == 0)
            return &parts[i];
    return NULL;
}

/* The partition count of topic, or exit 1. */
static int
partition_count(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    rd_kafka_resp_err_t e;
    int count;

    if (rkt == NULL)
    {
        fprintf(stderr, "outread: topic %s: %s\n", topic,
                rd_kafka_err2str(rd_kafka_last_error()));
        exit(1);
    }
    e = rd_kafka_metadata(rk, 0, rkt, &md, remaining_ms());
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        fprintf(stderr, "outread: no metadata for topic %s: %s%s\n", topic,
                rd_kafka_err2str(e), timeout_note());
        exit(1);
    }
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topics[0].partition_cnt <= 0)
    {
        fprintf(stderr, "outread: no partitions for topic %s: %s\n", topic,
                md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not in metadata");
        exit(1);
    }
    count = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return count;
}

static void
add_part(const char *topic, int32_t partition, int is_progress)
{
    struct part *pt = &parts[nparts++];

    memset(pt, 0, sizeof(*pt));
    pt->topic = topic;
    pt->partition = partition;
    pt->is_progress = is_progress;
    pt->lines = open_memstream(&pt->text, &pt->text_len);
    if (pt->lines == NULL)
    {
        perror("outread: open_memstream");
        exit(1);
    }
}

/* Write the lines of the parts of one kind to path, in partition order. */
static long long
write_lines(const char *path, int is_progress)
{
    FILE *f = fopen(path, "w");
    long long count = 0;

    if (f == NULL)
    {
        fprintf(stderr, "outread: cannot write %s\n", path);
        exit(1);
    }
    for (int i = 0; i < nparts; i++)
    {
        if (parts[i].is_progress != is_progress)
            continue;
        if (fclose(parts[i].lines) != 0)
        {
            fprintf(stderr, "outread: out of memory\n");
            exit(1);
        }
        parts[i].lines = NULL;
        if (parts[i].text_len > 0 && fwrite(parts[i].text, 1, parts[i].text_len, f) != parts[i].text_len)
            break;
        count += parts[i].count;
        free(parts[i].text);
        parts[i].text = NULL;
    }
    if (ferror(f) || fclose(f) != 0)
    {
        fprintf(stderr, "outread: cannot write %s\n", path);
        exit(1);
    }
    return count;
}

int
main(int argc, char **argv)
{
    const char *bootstrap_file = NULL;
    const char *topic = NULL;
    const char *progress_topic = NULL;
    const char *records_path = NULL;
    const char *progress_path = NULL;
    const char *isolation = "read_uncommitted";
    char bootstrap[4096];
    char group[128];
    char err[512];
    FILE *f;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_topic_partition_list_t *list;
    int out_partitions;
    int pending = 0;
    long long records;
    long long progress;

    for (int i = 1; i < argc; i += 2)
    {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;

        if (value == NULL)
        {
            fprintf(stderr, "outread: %s needs a value\n%s", argv[i], USAGE);
            return 2;
        }
        if (strcmp(argv[i], "--bootstrap-file") == 0)
            bootstrap_file = value;
        else if (strcmp(argv[i], "--topic") == 0)
            topic = value;
        else if (strcmp(argv[i], "--progress-topic") == 0)
            progress_topic = value;
        else if (strcmp(argv[i], "--records") == 0)
            records_path = value;
        else if (strcmp(argv[i], "--progress") == 0)
            progress_path = value;
        else if (strcmp(argv[i], "--isolation") == 0)
            isolation = value;
        else if (strcmp(argv[i], "--timeout-ms") == 0)
        {
            char *end;

            timeout_ms = strtol(value, &end, 10);
            if (*value == '\0' || *end != '\0' || timeout_ms <= 0 || timeout_ms > 86400000)
            {
                fprintf(stderr, "outread: bad --timeout-ms %s\n%s", value, USAGE);
                return 2;
            }
        }
        else
        {
            fprintf(stderr, "outread: unknown option %s\n%s", argv[i], USAGE);
            return 2;
        }
    }
    if (bootstrap_file == NULL || topic == NULL || progress_topic == NULL ||
        records_path == NULL || progress_path == NULL)
    {
        fputs(USAGE, stderr);
        return 2;
    }
    if (strcmp(isolation, "read_committed") != 0 && strcmp(isolation, "read_uncommitted") != 0)
    {
        fprintf(stderr, "outread: bad --isolation %s\n%s", isolation, USAGE);
        return 2;
    }
    if (strcmp(topic, progress_topic) == 0)
    {
        fprintf(stderr, "outread: --topic and --progress-topic must differ\n%s", USAGE);
        return 2;
    }

    deadline = now_seconds() + timeout_ms / 1000.0;
    f = fopen(bootstrap_file, "r");
    if (f == NULL || fgets(bootstrap, sizeof(bootstrap), f) == NULL)
    {
        fprintf(stderr, "outread: cannot read %s\n", bootstrap_file);
        return 1;
    }
    fclose(f);
    bootstrap[strcspn(bootstrap, "\r\n")] = '\0';

    srand((unsigned) time(NULL) ^ ((unsigned) getpid() << 16));
    snprintf(group, sizeof(group), "outread-%ld-%d-%d", (long) time(NULL), (int) getpid(), rand());
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "isolation.level", isolation, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "error", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", err, sizeof(err)))
    {
        fprintf(stderr, "outread: %s\n", err);
        return 1;
    }
    rd_kafka_conf_set_error_cb(conf, on_error);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL)
    {
        fprintf(stderr, "outread: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);

    /* The partitions, and where each one ends now. */
    out_partitions = partition_count(rk, topic);
    (void) partition_count(rk, progress_topic);
    parts = calloc((size_t) out_partitions + 1, sizeof(*parts));
    if (parts == NULL)
    {
        fprintf(stderr, "outread: out of memory\n");
        return 1;
    }
    for (int p = 0; p < out_partitions; p++)
        add_part(topic, p, 0);
    add_part(progress_topic, 0, 1);
    list = rd_kafka_topic_partition_list_new(nparts);
    for (int i = 0; i < nparts; i++)
    {
        struct part *pt = &parts[i];
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, pt->topic, pt->partition,
                                                                 &pt->low, &pt->high,
                                                                 remaining_ms());

        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        {
            fprintf(stderr, "outread: no watermarks for %s [%d]: %s%s\n",
                    pt->topic, (int) pt->partition, rd_kafka_err2str(e), timeout_note());
            return 1;
        }
        if (pt->high <= pt->low)
            pt->done = 1;
        else
        {
            rd_kafka_topic_partition_list_add(list, pt->topic, pt->partition)->offset = pt->low;
            pending++;
        }
    }

    /* Read up to those ends. */
    if (pending > 0)
    {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);

        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        {
            fprintf(stderr, "outread: assign: %s\n", rd_kafka_err2str(e));
            return 1;
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    while (pending > 0)
    {
        int wait = remaining_ms();
        rd_kafka_message_t *msg;
        struct part *pt;

        if (wait <= 0)
        {
            fprintf(stderr, "outread: timed out after %ld ms with %d partition(s) unfinished:",
                    timeout_ms, pending);
            for (int i = 0; i < nparts; i++)
                if (!parts[i].done)
                    fprintf(stderr, " %s [%d] (high watermark %lld)", parts[i].topic,
                            (int) parts[i].partition, (long long) parts[i].high);
            fprintf(stderr, "\n");
            return 1;
        }
        msg = rd_kafka_consumer_poll(rk, wait < 100 ? wait : 100);
        if (msg == NULL)
            continue;
        pt = find_part(msg);
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        {
            if (pt != NULL && !pt->done)
            {
                pt->done = 1;
                pending--;
            }
        }
        else if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        {
            if (msg->rkt != NULL)
                fprintf(stderr, "outread: consumer error on %s [%d] at offset %lld: %s\n",
                        rd_kafka_topic_name(msg->rkt), (int) msg->partition,
                        (long long) msg->offset, rd_kafka_message_errstr(msg));
            else
                fprintf(stderr, "outread: consumer error: %s\n", rd_kafka_message_errstr(msg));
            return 1;
        }
        else if (pt != NULL && !pt->done && msg->offset < pt->high)
        {
            put_message(pt, msg);
            if (msg->offset >= pt->high - 1)
            {
                pt->done = 1;
                pending--;
            }
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);

    records = write_lines(records_path, 0);
    progress = write_lines(progress_path, 1);
    free(parts);
    printf("outread: %lld records, %lld progress records\n", records, progress);
    return 0;
}
