/*
 * drain: the baseline of the Kafka benchmark.  A plain librdkafka consumer
 * (read_committed, like adstream's) reads every partition of a topic from
 * the beginning until it has seen N messages, touching each payload, and
 * prints the elapsed seconds and the rate.
 *
 *   drain --bootstrap-file PATH --topic NAME --messages N
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    const char *bootstrap_file = NULL;
    const char *topic = NULL;
    long long want = 0;
    char bootstrap[4096];
    char err[512];
    FILE *f;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt;
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_queue_t *q;
    rd_kafka_message_t *msgs[1000];
    long long seen = 0;
    unsigned long checksum = 0;
    double t0;
    double t1;

    for (int i = 1; i + 1 < argc; i += 2)
    {
        if (strcmp(argv[i], "--bootstrap-file") == 0)
            bootstrap_file = argv[i + 1];
        else if (strcmp(argv[i], "--topic") == 0)
            topic = argv[i + 1];
        else if (strcmp(argv[i], "--messages") == 0)
            want = atoll(argv[i + 1]);
    }
    if (bootstrap_file == NULL || topic == NULL || want <= 0)
    {
        fprintf(stderr, "usage: drain --bootstrap-file PATH --topic NAME --messages N\n");
        return 2;
    }
    f = fopen(bootstrap_file, "r");
    if (f == NULL || fgets(bootstrap, sizeof(bootstrap), f) == NULL)
    {
        fprintf(stderr, "drain: cannot read %s\n", bootstrap_file);
        return 1;
    }
    fclose(f);
    bootstrap[strcspn(bootstrap, "\r\n")] = '\0';

    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "group.id", "drain-baseline", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "false", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", err, sizeof(err)))
    {
        fprintf(stderr, "drain: %s\n", err);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL)
    {
        fprintf(stderr, "drain: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].partition_cnt <= 0)
    {
        fprintf(stderr, "drain: no metadata for topic %s\n", topic);
        return 1;
    }
    list = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(list, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);

    t0 = now_seconds();
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    q = rd_kafka_queue_get_consumer(rk);
    while (seen < want && now_seconds() - t0 < 600)
    {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, msgs, 1000);

        for (ssize_t i = 0; i < n; i++)
        {
            if (msgs[i]->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            {
                seen++;
                if (msgs[i]->len > 0)
                    checksum += ((unsigned char *) msgs[i]->payload)[msgs[i]->len - 1];
            }
            rd_kafka_message_destroy(msgs[i]);
        }
    }
    t1 = now_seconds();
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (seen < want)
    {
        fprintf(stderr, "drain: saw only %lld of %lld messages\n", seen, want);
        return 1;
    }
    printf("drain_secs=%.3f\ndrain_rate=%.0f\ndrain_checksum=%lu\n", t1 - t0,
           seen / (t1 - t0), checksum);
    return 0;
}
