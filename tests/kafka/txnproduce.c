/*
 * txnproduce: writes ad events in Kafka transactions, for the test that a
 * real broker's read_committed filtering is in effect: first --aborted N
 * events (ids txn-abort-<i>) in a transaction that is aborted, then
 * --committed N events (ids txn-commit-<i>) in one that commits.
 *
 *   txnproduce --bootstrap SERVERS --topic NAME [--aborted N] [--committed N]
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

int
main(int argc, char **argv)
{
    const char *bootstrap = NULL;
    const char *topic = NULL;
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
    }
    if (bootstrap == NULL || topic == NULL)
    {
        fprintf(stderr, "usage: txnproduce --bootstrap SERVERS --topic NAME [--aborted N] [--committed N]\n");
        return 2;
    }
    snprintf(txn_id, sizeof(txn_id), "adstream-test-%ld", (long) time(NULL));
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "transactional.id", txn_id, err, sizeof(err)))
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
