/*
 * outlatency: measures how long an ad event takes from its produce to the
 * output record that counts it being readable on the output topic.
 *
 *   outlatency --bootstrap-file PATH --topic IN --out-topic OUT
 *              --rate N --seconds S [--ads A] [--partitions-hint P]
 *              [--settle-ms MS]
 *
 * A producer (idempotent, linger.ms 5, default partitioner) sends N
 * impressions a second for S seconds to IN, a batch every 10 ms:
 *
 *   {"event_id":"lat-<run>-<seq>","event_type":"impression",
 *    "ad_id":"lat-<run>-ad-<seq % A>","event_time":<now, epoch ms>,
 *    "user_id":"u-<seq>","cost":0.001}
 *
 * <run> is a random hex id, so a rerun is never deduplicated against an
 * earlier run nor counted in its windows; A defaults to 200.  Each event's produce time (CLOCK_REALTIME,
 * taken right before rd_kafka_producev) is its event_time, and it lands in
 * the window event_time - event_time % 60000.
 *
 * A second client (read_committed) reads every partition of OUT from its end
 * as of program start.  Each record's value is JSON text with at least
 * "ad_id", "window_start_ms" and "impressions" (the window's cumulative
 * count).  When a record for one of this run's ads and a window this run produced
 * reports more impressions than were covered so far, the next events of that
 * (ad, window), in produce order, count as readable at the moment the record
 * was read, and their latencies go to a histogram of 1 ms buckets (60 s and
 * more share the last one).
 *
 * After the producer finishes, it keeps reading until every event is
 * covered or --settle-ms (default 30000) passes, then prints
 *
 *   outlatency: produced E events in X s (R ev/s); records read: M
 *   (M/T records/s); covered C of E events; latency p50 A ms, p99 B ms,
 *   max Z ms
 *
 * on one line, where T is the time from the first produce to the end of
 * reading and M counts every record read from OUT.  Percentiles are nearest
 * rank over the covered events ("n/a" if none).  Exits 0 if every event was
 * covered, 1 otherwise (also after SIGINT/SIGTERM), 2 on bad usage.
 *
 * --partitions-hint P is the partition count of OUT to assume when the
 * metadata does not list the topic (it is read from the metadata otherwise).
 *
 * Records that claim more impressions for a window than this run produced
 * (impossible unless something else writes this run's ads) are counted and
 * reported on stderr: the latencies of such a run would be too low.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "stop_signal.h"

#define WINDOW_MS 60000
#define HIST_BUCKETS 60001      /* 0 .. 59999 ms, then ">= 60 s" */
#define TICK_NS 10000000L       /* a produce batch every 10 ms */
/* "lat-<run>-ad-": each run counts only its own ads */
static char ad_prefix[64];

/* The events of one (ad, window), in produce order. */
typedef struct window_events
{
    int64_t     window_ms;
    uint32_t    ad;
    uint32_t    n;              /* events produced */
    uint32_t    cap;
    uint32_t    covered;        /* events counted by a record so far */
    uint32_t   *at;             /* produce time - base_ms of each event */
} window_events;

/* Everything the producer and the reader share, under lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static window_events **table;   /* open addressing, size a power of two */
static size_t table_size;
static size_t table_used;
static int64_t base_ms;
static uint64_t covered_total;
static uint64_t records_read;
static uint64_t records_excess;
static uint64_t hist[HIST_BUCKETS];
static int64_t latency_max = -1;

static atomic_int reader_done;
static long delivery_errors = 0;

static int64_t
realtime_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
xmalloc(size_t n)
{
    void *p = calloc(1, n);

    if (p == NULL)
    {
        fprintf(stderr, "outlatency: out of memory\n");
        exit(1);
    }
    return p;
}

static size_t
slot_of(uint32_t ad, int64_t window_ms, size_t size)
{
    uint64_t h = (uint64_t) window_ms * 0x9E3779B97F4A7C15ULL ^
        ((uint64_t) ad + 1) * 0xC2B2AE3D27D4EB4FULL;

    h ^= h >> 29;
    return (size_t) h & (size - 1);
}

/* The entry of (ad, window), or NULL; caller holds lock. */
static window_events *
table_find(uint32_t ad, int64_t window_ms)
{
    size_t i = slot_of(ad, window_ms, table_size);

    while (table[i] != NULL)
    {
        if (table[i]->ad == ad && table[i]->window_ms == window_ms)
            return table[i];
        i = (i + 1) & (table_size - 1);
    }
    return NULL;
}

/* The entry of (ad, window), created if new; caller holds lock. */
static window_events *
table_get(uint32_t ad, int64_t window_ms)
{
    window_events *w = table_find(ad, window_ms);
    size_t i;

    if (w != NULL)
        return w;
    if ((table_used + 1) * 2 > table_size)
    {
        window_events **old = table;
        size_t old_size = table_size;

        table_size *= 2;
        table = xmalloc(table_size * sizeof(*table));
        for (size_t j = 0; j < old_size; j++)
        {
            if (old[j] == NULL)
                continue;
            i = slot_of(old[j]->ad, old[j]->window_ms, table_size);
            while (table[i] != NULL)
                i = (i + 1) & (table_size - 1);
            table[i] = old[j];
        }
        free(old);
    }
    w = xmalloc(sizeof(*w));
    w->ad = ad;
    w->window_ms = window_ms;
    i = slot_of(ad, window_ms, table_size);
    while (table[i] != NULL)
        i = (i + 1) & (table_size - 1);
    table[i] = w;
    table_used++;
    return w;
}

static void
window_append(window_events *w, uint32_t at)
{
    if (w->n == w->cap)
    {
        uint32_t cap = w->cap ? w->cap * 2 : 64;
        uint32_t *p = realloc(w->at, (size_t) cap * sizeof(*p));

        if (p == NULL)
        {
            fprintf(stderr, "outlatency: out of memory\n");
            exit(1);
        }
        w->at = p;
        w->cap = cap;
    }
    w->at[w->n++] = at;
}

/*
 * A record says (ad, window) has `impressions` so far, read at read_ms: the
 * events not yet covered up to that count became readable now.  Caller holds
 * lock.
 */
static void
cover(uint32_t ad, int64_t window_ms, int64_t impressions, int64_t read_ms)
{
    window_events *w = table_find(ad, window_ms);
    uint32_t upto;

    if (w == NULL || impressions <= (int64_t) w->covered)
        return;
    if (impressions > (int64_t) w->n)
    {
        records_excess++;
        upto = w->n;
    }
    else
        upto = (uint32_t) impressions;
    for (uint32_t i = w->covered; i < upto; i++)
    {
        int64_t lat = read_ms - (base_ms + w->at[i]);

        if (lat < 0)
            lat = 0;
        hist[lat < HIST_BUCKETS - 1 ? lat : HIST_BUCKETS - 1]++;
        if (lat > latency_max)
            latency_max = lat;
    }
    covered_total += upto - w->covered;
    w->covered = upto;
}

/* ---- the output records ---- */

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/*
 * A JSON string starting at p (on its opening quote): its raw contents in
 * [*s, *s_end), *escaped set if it holds a backslash; returns the position
 * after the closing quote, or NULL.
 */
static const char *
scan_string(const char *p, const char *end, const char **s, const char **s_end, int *escaped)
{
    *escaped = 0;
    *s = ++p;
    while (p < end && *p != '"')
    {
        if (*p == '\\')
        {
            *escaped = 1;
            p++;
        }
        p++;
    }
    if (p >= end)
        return NULL;
    *s_end = p;
    return p + 1;
}

/* Any JSON value starting at p; returns the position after it, or NULL. */
static const char *
skip_value(const char *p, const char *end)
{
    const char *s;
    const char *s_end;
    int escaped;
    int depth = 0;

    if (p < end && *p == '"')
        return scan_string(p, end, &s, &s_end, &escaped);
    if (p < end && (*p == '{' || *p == '['))
    {
        while (p < end)
        {
            if (*p == '"')
            {
                if ((p = scan_string(p, end, &s, &s_end, &escaped)) == NULL)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' &&
           *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
        p++;
    return p;
}

static int
parse_int64(const char *s, const char *s_end, int64_t *out)
{
    char buf[32];
    char *e;
    size_t n = (size_t) (s_end - s);
    long long v;

    if (n == 0 || n >= sizeof(buf))
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    v = strtoll(buf, &e, 10);
    if (errno != 0 || *e != '\0')
        return 0;
    *out = v;
    return 1;
}

static int
key_is(const char *k, const char *k_end, const char *name)
{
    size_t n = strlen(name);

    return (size_t) (k_end - k) == n && memcmp(k, name, n) == 0;
}

/*
 * The top-level "ad_id" (as the number k of lat-<run>-ad-<k>), "window_start_ms"
 * and "impressions" of a record; returns 1 if all three are there and the ad
 * is one of ours.
 */
static int
parse_record(const char *p, size_t len, uint32_t ads, uint32_t *ad,
             int64_t *window_ms, int64_t *impressions)
{
    const char *end = p + len;
    int have_ad = 0;
    int have_window = 0;
    int have_imp = 0;

    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return 0;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return 0;
    while (p < end)
    {
        const char *k;
        const char *k_end;
        const char *v;
        const char *v_end;
        int escaped;

        if (*p != '"' || (p = scan_string(p, end, &k, &k_end, &escaped)) == NULL)
            return 0;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return 0;
        p = skip_ws(p + 1, end);
        if (p >= end)
            return 0;
        v = p;
        if ((p = skip_value(p, end)) == NULL)
            return 0;
        v_end = p;
        if (escaped)
            ;                   /* not one of our keys */
        else if (key_is(k, k_end, "ad_id"))
        {
            const char *s;
            const char *s_end;
            const char *d;
            uint64_t n = 0;

            have_ad = 0;
            if (*v != '"' || scan_string(v, end, &s, &s_end, &escaped) == NULL || escaped ||
                (size_t) (s_end - s) <= strlen(ad_prefix) ||
                memcmp(s, ad_prefix, strlen(ad_prefix)) != 0)
                return 0;
            d = s + strlen(ad_prefix);
            if (*d == '0' && s_end - d > 1)
                return 0;       /* we never write leading zeros */
            for (; d < s_end; d++)
            {
                if (*d < '0' || *d > '9' || (n = n * 10 + (uint64_t) (*d - '0')) >= ads)
                    return 0;
            }
            *ad = (uint32_t) n;
            have_ad = 1;
        }
        else if (key_is(k, k_end, "window_start_ms"))
            have_window = parse_int64(v, v_end, window_ms);
        else if (key_is(k, k_end, "impressions"))
            have_imp = parse_int64(v, v_end, impressions);
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
        else if (p < end && *p == '}')
            break;
        else
            return 0;
    }
    return have_ad && have_window && have_imp;
}

typedef struct reader_args
{
    rd_kafka_t *rk;
    uint32_t    ads;
} reader_args;

static void *
reader_main(void *arg)
{
    reader_args *a = arg;
    long errors = 0;

    while (!atomic_load(&reader_done))
    {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(a->rk, 100);
        int64_t read_ms = realtime_ms();
        uint32_t ad = 0;
        int64_t window_ms = 0;
        int64_t impressions = 0;
        int ours;

        if (m == NULL)
            continue;
        if (m->err)
        {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && errors++ < 10)
                fprintf(stderr, "outlatency: reading the output topic: %s\n",
                        rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        ours = m->payload != NULL &&
            parse_record(m->payload, m->len, a->ads, &ad, &window_ms, &impressions);
        pthread_mutex_lock(&lock);
        records_read++;
        if (ours)
            cover(ad, window_ms, impressions, read_ms);
        pthread_mutex_unlock(&lock);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* ---- setup ---- */

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void) rk;
    (void) opaque;
    if (m->err && delivery_errors++ < 10)
        fprintf(stderr, "outlatency: delivery failed: %s\n", rd_kafka_err2str(m->err));
}

static char *
read_first_line(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");

    if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
    {
        fprintf(stderr, "outlatency: cannot read %s: %s\n", path,
                f == NULL ? strerror(errno) : "empty file");
        exit(1);
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf;
}

static int
parse_count(const char *name, const char *v, long long min, long long max, long long *out)
{
    char *e;
    long long n;

    errno = 0;
    n = strtoll(v, &e, 10);
    if (errno != 0 || e == v || *e != '\0' || n < min || n > max)
    {
        fprintf(stderr, "outlatency: %s must be an integer %lld .. %lld\n", name, min, max);
        return 0;
    }
    *out = n;
    return 1;
}

static rd_kafka_conf_t *
new_conf(const char *bootstrap, const char *const *kv)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)))
    {
        fprintf(stderr, "outlatency: %s\n", err);
        exit(1);
    }
    for (; kv[0] != NULL; kv += 2)
    {
        if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof(err)))
        {
            fprintf(stderr, "outlatency: %s\n", err);
            exit(1);
        }
    }
    return conf;
}

/*
 * Assigns every partition of the output topic to the reader at its end as
 * of now, so it reads only records written from here on.
 */
static int
assign_at_end(rd_kafka_t *rk, const char *topic, int partitions_hint)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_topic_partition_list_t *list;
    rd_kafka_resp_err_t e;
    int partitions = 0;

    e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
            partitions = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    if (partitions <= 0)
    {
        if (partitions_hint <= 0)
        {
            fprintf(stderr, "outlatency: no metadata for topic %s%s%s\n", topic,
                    e ? ": " : "", e ? rd_kafka_err2str(e) : "");
            return 0;
        }
        fprintf(stderr, "outlatency: no metadata for topic %s; assuming %d partitions\n",
                topic, partitions_hint);
        partitions = partitions_hint;
    }
    else if (partitions_hint > 0 && partitions != partitions_hint)
        fprintf(stderr, "outlatency: topic %s has %d partitions, not %d; reading all %d\n",
                topic, partitions, partitions_hint, partitions);

    list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
    {
        int64_t lo;
        int64_t hi;

        e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 5000);
        if (e)
        {
            fprintf(stderr, "outlatency: end of %s [%d] unknown (%s); reading from its end when assigned\n",
                    topic, p, rd_kafka_err2str(e));
            hi = RD_KAFKA_OFFSET_END;
        }
        rd_kafka_topic_partition_list_add(list, topic, p)->offset = hi;
    }
    e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e)
    {
        fprintf(stderr, "outlatency: assign: %s\n", rd_kafka_err2str(e));
        return 0;
    }
    return 1;
}

static void
random_run_id(char *buf, size_t len)
{
    unsigned char b[8];
    FILE *f = fopen("/dev/urandom", "rb");

    if (f == NULL || fread(b, 1, sizeof(b), f) != sizeof(b))
    {
        struct timespec ts;
        uint64_t x;

        clock_gettime(CLOCK_REALTIME, &ts);
        x = ((uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec) ^
            ((uint64_t) getpid() << 40);
        memcpy(b, &x, sizeof(b));
    }
    if (f != NULL)
        fclose(f);
    snprintf(buf, len, "%02x%02x%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
}

/* Nearest-rank percentile q (0 < q <= 1) of the histogram of n values. */
static int64_t
percentile(uint64_t n, double q)
{
    uint64_t rank = (uint64_t) (q * (double) n);
    uint64_t seen = 0;

    if ((double) rank < q * (double) n)
        rank++;
    if (rank == 0)
        rank = 1;
    for (int64_t b = 0; b < HIST_BUCKETS; b++)
    {
        seen += hist[b];
        if (seen >= rank)
            return b;
    }
    return HIST_BUCKETS - 1;
}

static void
sleep_until(const struct timespec *t)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR &&
           !stop_requested)
        ;
}

static void
timespec_add_ns(struct timespec *t, long ns)
{
    t->tv_nsec += ns;
    while (t->tv_nsec >= 1000000000L)
    {
        t->tv_nsec -= 1000000000L;
        t->tv_sec++;
    }
}

int
main(int argc, char **argv)
{
    const char *bootstrap_file = NULL;
    const char *topic = NULL;
    const char *out_topic = NULL;
    long long rate = 0;
    long long seconds = 0;
    long long ads = 200;
    long long partitions_hint = 0;
    long long settle_ms = 30000;
    const char *bootstrap;
    char run[32];
    char group[64];
    char err[512];
    rd_kafka_t *producer;
    rd_kafka_t *reader;
    pthread_t reader_thread;
    reader_args ra;
    uint64_t total;
    uint64_t seq = 0;
    uint64_t tick = 0;
    struct timespec next;
    double t_start;
    double t_produced;
    double t_end;
    double settle_deadline;
    uint64_t covered;
    uint64_t records;
    uint64_t excess;
    char lat[128];
    int rc;

    for (int i = 1; i < argc; i++)
    {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;

        if (v == NULL)
            ok = 0;
        else if (strcmp(a, "--bootstrap-file") == 0)
            bootstrap_file = v;
        else if (strcmp(a, "--topic") == 0)
            topic = v;
        else if (strcmp(a, "--out-topic") == 0)
            out_topic = v;
        else if (strcmp(a, "--rate") == 0)
            ok = parse_count("--rate", v, 1, 10000000, &rate);
        else if (strcmp(a, "--seconds") == 0)
            ok = parse_count("--seconds", v, 1, 86400, &seconds);
        else if (strcmp(a, "--ads") == 0)
            ok = parse_count("--ads", v, 1, 100000000, &ads);
        else if (strcmp(a, "--partitions-hint") == 0)
            ok = parse_count("--partitions-hint", v, 1, 1000000, &partitions_hint);
        else if (strcmp(a, "--settle-ms") == 0)
            ok = parse_count("--settle-ms", v, 0, 86400000, &settle_ms);
        else
            ok = 0;
        if (!ok)
        {
            fprintf(stderr, "usage: outlatency --bootstrap-file PATH --topic IN --out-topic OUT "
                    "--rate N --seconds S [--ads A] [--partitions-hint P] [--settle-ms MS]\n");
            return 2;
        }
        i++;
    }
    if (bootstrap_file == NULL || topic == NULL || out_topic == NULL || rate == 0 || seconds == 0)
    {
        fprintf(stderr, "usage: outlatency --bootstrap-file PATH --topic IN --out-topic OUT "
                "--rate N --seconds S [--ads A] [--partitions-hint P] [--settle-ms MS]\n");
        return 2;
    }
    total = (uint64_t) rate * (uint64_t) seconds;
    if (total > UINT32_MAX)
    {
        fprintf(stderr, "outlatency: --rate times --seconds must stay below 2^32 events\n");
        return 2;
    }
    bootstrap = read_first_line(bootstrap_file);
    random_run_id(run, sizeof(run));
    snprintf(ad_prefix, sizeof(ad_prefix), "lat-%s-ad-", run);
    snprintf(group, sizeof(group), "outlatency-%s", run);

    install_stop_signals();

    table_size = 1024;
    table = xmalloc(table_size * sizeof(*table));

    /* the reader first, so it is at the end of OUT before anything is sent */
    {
        const char *kv[] = {
            "group.id", group,
            "isolation.level", "read_committed",
            "enable.auto.commit", "false",
            "enable.auto.offset.store", "false",
            "enable.partition.eof", "false",
            "fetch.wait.max.ms", "10",
            NULL
        };

        reader = rd_kafka_new(RD_KAFKA_CONSUMER, new_conf(bootstrap, kv), err, sizeof(err));
    }
    if (reader == NULL)
    {
        fprintf(stderr, "outlatency: %s\n", err);
        return 1;
    }
    rd_kafka_poll_set_consumer(reader);
    if (!assign_at_end(reader, out_topic, (int) partitions_hint))
    {
        rd_kafka_destroy_flags(reader, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        return 1;
    }
    ra.rk = reader;
    ra.ads = (uint32_t) ads;
    if (pthread_create(&reader_thread, NULL, reader_main, &ra) != 0)
    {
        fprintf(stderr, "outlatency: cannot start the reader thread\n");
        return 1;
    }

    {
        const char *kv[] = {
            "enable.idempotence", "true",
            "linger.ms", "5",
            "queue.buffering.max.messages", "1000000",
            NULL
        };
        rd_kafka_conf_t *conf = new_conf(bootstrap, kv);

        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    }
    if (producer == NULL)
    {
        fprintf(stderr, "outlatency: %s\n", err);
        return 1;
    }

    /* let both clients connect (the reader starts fetching) before the clock starts */
    for (int i = 0; i < 10 && !stop_requested; i++)
        rd_kafka_poll(producer, 50);

    clock_gettime(CLOCK_MONOTONIC, &next);
    t_start = now_seconds();
    base_ms = realtime_ms();
    while (seq < total && !stop_requested)
    {
        /* batch `tick` (at t_start + tick * 10 ms) brings the count to rate * (tick + 1) / 100 */
        uint64_t target = (uint64_t) rate * (tick + 1) / 100;

        if (target > total)
            target = total;
        while (seq < target && !stop_requested)
        {
            char buf[256];
            int64_t t = realtime_ms();
            uint32_t ad = (uint32_t) (seq % (uint64_t) ads);
            int len = snprintf(buf, sizeof(buf),
                               "{\"event_id\":\"lat-%s-%" PRIu64 "\",\"event_type\":\"impression\","
                               "\"ad_id\":\"%s%" PRIu32 "\",\"event_time\":%" PRId64 ","
                               "\"user_id\":\"u-%" PRIu64 "\",\"cost\":0.001}",
                               run, seq, ad_prefix, ad, t, seq);
            window_events *w;
            rd_kafka_resp_err_t e;

            /* recorded before the send, so no record can count it first */
            pthread_mutex_lock(&lock);
            w = table_get(ad, t - t % WINDOW_MS);
            window_append(w, (uint32_t) (t - base_ms));
            pthread_mutex_unlock(&lock);
            e = rd_kafka_producev(producer,
                                  RD_KAFKA_V_TOPIC(topic),
                                  RD_KAFKA_V_VALUE(buf, (size_t) len),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_END);
            if (e)
            {
                /* not sent: forget it (a record cannot count it) and retry or give up */
                pthread_mutex_lock(&lock);
                w->n--;
                if (w->covered > w->n)
                {
                    covered_total -= w->covered - w->n;
                    w->covered = w->n;
                }
                pthread_mutex_unlock(&lock);
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                {
                    fprintf(stderr, "outlatency: produce failed: %s\n", rd_kafka_err2str(e));
                    stop_requested = 1;
                    break;
                }
                rd_kafka_poll(producer, 10);
                continue;
            }
            seq++;
        }
        rd_kafka_poll(producer, 0);
        tick++;
        timespec_add_ns(&next, TICK_NS);
        sleep_until(&next);
    }
    t_produced = now_seconds();

    /* settle: wait for the records of the remaining events */
    settle_deadline = t_produced + settle_ms / 1000.0;
    for (;;)
    {
        pthread_mutex_lock(&lock);
        covered = covered_total;
        pthread_mutex_unlock(&lock);
        if (covered >= seq || stop_requested || now_seconds() >= settle_deadline)
            break;
        rd_kafka_poll(producer, 20);
    }
    atomic_store(&reader_done, 1);
    pthread_join(reader_thread, NULL);
    t_end = now_seconds();

    if (rd_kafka_outq_len(producer) > 0)
    {
        fprintf(stderr, "outlatency: %d messages still unsent; dropping them\n",
                rd_kafka_outq_len(producer));
        rd_kafka_purge(producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(producer, 100);
    }
    rd_kafka_destroy(producer);
    rd_kafka_destroy_flags(reader, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);

    covered = covered_total;
    records = records_read;
    excess = records_excess;
    if (covered > 0)
        snprintf(lat, sizeof(lat), "p50 %" PRId64 " ms, p99 %" PRId64 " ms, max %" PRId64 " ms",
                 percentile(covered, 0.50), percentile(covered, 0.99), latency_max);
    else
        snprintf(lat, sizeof(lat), "p50 n/a ms, p99 n/a ms, max n/a ms");
    if (excess > 0)
        fprintf(stderr, "outlatency: warning: %" PRIu64 " records counted more impressions than "
                "this run produced for their window (another producer or an earlier run used "
                "this run's ads); the latencies are too low\n", excess);
    if (delivery_errors > 0)
        fprintf(stderr, "outlatency: %ld events failed delivery\n", delivery_errors);
    printf("outlatency: produced %" PRIu64 " events in %.1f s (%.0f ev/s); "
           "records read: %" PRIu64 " (%.0f records/s); covered %" PRIu64 " of %" PRIu64
           " events; latency %s\n",
           seq, t_produced - t_start, seq / (t_produced - t_start),
           records, records / (t_end - t_start), covered, seq, lat);
    fflush(stdout);
    rc = covered == seq && !stop_requested ? 0 : 1;

    for (size_t i = 0; i < table_size; i++)
    {
        if (table[i] != NULL)
        {
            free(table[i]->at);
            free(table[i]);
        }
    }
    free(table);
    return rc;
}
