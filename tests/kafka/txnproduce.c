/*
 * txnproduce: writes ad events in Kafka transactions, for the test that a
 * real broker's read_committed filtering is in effect: first --aborted N
 * events (ids txn-abort-<i>) in a transaction that is aborted, then
 * --committed N events (ids txn-commit-<i>) in one that commits.
 *
 *   txnproduce --bootstrap SERVERS --topic NAME [--aborted N] [--committed N]
 *
 * It is also the baseline of the output benchmark: with --records FILE it
 * sends every line of FILE (COPY text: key, tab, value) as a keyed record
 * (murmur2_random, three small headers, as adstream's producer does), in
 * transactions of --batch N records (default 10000), and prints the
 * elapsed seconds and the rate.
 *
 *   txnproduce --bootstrap SERVERS --topic NAME --records FILE [--batch N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static int
fail(const char *what, rd_kafka_error_t *error)
{
    fprintf(stderr, "txnproduce: %s: %s\n", what, rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return 1;
}

static int
produce_events(rd_kafka_t *rk, const char *topic, const char *kind, int n)
{
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_REALTIME, &now);
    ms = (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000;
    for (int i = 0; i < n; i++)
    {
        char buf[512];
        int len = snprintf(buf, sizeof(buf),
                           "{\"event_id\":\"txn-%s-%d\",\"event_type\":\"impression\","
                           "\"ad_id\":\"ad-%s\",\"event_time\":%lld,\"user_id\":\"u-%d\"}",
                           kind, i, kind, ms, i);
        rd_kafka_resp_err_t e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                                  RD_KAFKA_V_VALUE(buf, (size_t) len),
                                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                                  RD_KAFKA_V_END);

        if (e)
        {
            fprintf(stderr, "txnproduce: produce: %s\n", rd_kafka_err2str(e));
            return 1;
        }
    }
    return 0;
}

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Undo COPY text escaping of one field, in place; returns its length. */
static size_t
copy_unescape(char *s)
{
    char *out = s;

    for (char *in = s; *in; in++)
    {
        if (*in == '\\' && in[1])
        {
            in++;
            *out++ = *in == 't' ? '\t' : *in == 'n' ? '\n' : *in == 'r' ? '\r' : *in;
        }
        else
            *out++ = *in;
    }
    *out = '\0';
    return (size_t) (out - s);
}

/* The baseline: every line of path, in transactions of batch records. */
static int
produce_file(rd_kafka_t *rk, const char *topic, const char *path, int batch)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long n = 0;
    int in_txn = 0;
    double t0;
    rd_kafka_error_t *error;

    if (f == NULL)
    {
        perror(path);
        return 1;
    }
    {
        /* learn the topic first, as adstream's producer does before timing starts */
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;

        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    t0 = now_seconds();
    while ((got = getline(&line, &cap, f)) > 0)
    {
        char *tab = strchr(line, '\t');
        size_t klen;
        size_t vlen;
        char seq[24];
        rd_kafka_resp_err_t e;

        if (line[got - 1] == '\n')
            line[got - 1] = '\0';
        if (tab == NULL)
            continue;
        *tab = '\0';
        klen = copy_unescape(line);
        vlen = copy_unescape(tab + 1);
        if (!in_txn)
        {
            if ((error = rd_kafka_begin_transaction(rk)))
                return fail("begin_transaction", error);
            in_txn = 1;
        }
        snprintf(seq, sizeof(seq), "%ld", n);
        do
        {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_KEY(line, klen),
                                  RD_KAFKA_V_VALUE(tab + 1, vlen),
                                  RD_KAFKA_V_HEADER("adstream.version", "1", -1),
                                  RD_KAFKA_V_HEADER("adstream.outbox_id", seq, -1),
                                  RD_KAFKA_V_HEADER("adstream.txn", "baseline", -1),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 10);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (e)
        {
            fprintf(stderr, "txnproduce: produce: %s\n", rd_kafka_err2str(e));
            return 1;
        }
        if (++n % batch == 0)
        {
            if ((error = rd_kafka_commit_transaction(rk, 30000)))
                return fail("commit_transaction", error);
            in_txn = 0;
        }
    }
    if (in_txn && (error = rd_kafka_commit_transaction(rk, 30000)))
        return fail("commit_transaction", error);
    printf("txnproduce: %ld records in %.3f s, %.0f records/s\n", n, now_seconds() - t0,
           n / (now_seconds() - t0));
    free(line);
    fclose(f);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *bootstrap = NULL;
    const char *topic = NULL;
    const char *records = NULL;
    int batch = 10000;
    int aborted = 100;
    int committed = 100;
    char err[512];
    char txn_id[64];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_error_t *error;

    for (int i = 1; i + 1 < argc; i += 2)
    {
        if (strcmp(argv[i], "--bootstrap") == 0)
            bootstrap = argv[i + 1];
        else if (strcmp(argv[i], "--topic") == 0)
            topic = argv[i + 1];
        else if (strcmp(argv[i], "--aborted") == 0)
            aborted = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--committed") == 0)
            committed = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--records") == 0)
            records = argv[i + 1];
        else if (strcmp(argv[i], "--batch") == 0)
            batch = atoi(argv[i + 1]);
    }
    if (bootstrap == NULL || topic == NULL || batch < 1)
    {
        fprintf(stderr, "usage: txnproduce --bootstrap SERVERS --topic NAME [--aborted N] [--committed N]\n"
                "       txnproduce --bootstrap SERVERS --topic NAME --records FILE [--batch N]\n");
        return 2;
    }
    snprintf(txn_id, sizeof(txn_id), "adstream-test-%ld", (long) time(NULL));
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "transactional.id", txn_id, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "partitioner", "murmur2_random", err, sizeof(err)))
    {
        fprintf(stderr, "txnproduce: %s\n", err);
        return 2;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL)
    {
        fprintf(stderr, "txnproduce: %s\n", err);
        return 1;
    }
    if ((error = rd_kafka_init_transactions(rk, 30000)))
        return fail("init_transactions", error);
    if (records != NULL)
    {
        int rc = produce_file(rk, topic, records, batch);

        rd_kafka_destroy(rk);
        return rc;
    }

    if ((error = rd_kafka_begin_transaction(rk)))
        return fail("begin_transaction", error);
    if (produce_events(rk, topic, "abort", aborted))
        return 1;
    if ((error = rd_kafka_flush(rk, 30000) ? rd_kafka_error_new(RD_KAFKA_RESP_ERR__TIMED_OUT, "flush timed out") : NULL))
        return fail("flush", error);
    if ((error = rd_kafka_abort_transaction(rk, 30000)))
        return fail("abort_transaction", error);

    if ((error = rd_kafka_begin_transaction(rk)))
        return fail("begin_transaction", error);
    if (produce_events(rk, topic, "commit", committed))
        return 1;
    if ((error = rd_kafka_commit_transaction(rk, 30000)))
        return fail("commit_transaction", error);

    rd_kafka_destroy(rk);
    fprintf(stderr, "txnproduce: %d aborted, %d committed to %s\n", aborted, committed, topic);
    return 0;
}
