/*
 * adgen.h - deterministic ad-event stream generator with exact ground truth.
 *
 * The generator produces a stream of Kafka-like messages (impressions and
 * clicks encoded as JSON, plus duplicates and deliberately invalid messages)
 * together with the outcome an exactly-once processor is expected to reach
 * for each message.  Everything is derived from a private PRNG seeded by
 * options.seed, so the same options always yield the same byte stream.
 *
 * Usage:
 *     adgen_options o;
 *     adgen_options_init(&o);
 *     ... adgen_options_set(&o, "events", "1000", err, sizeof err) ...
 *     adgen *g = adgen_create(&o, err, sizeof err);
 *     adgen_msg m;
 *     while (adgen_next(g, &m)) { use m.data / m.len, m.partition, ... }
 *     adgen_free(g);
 *
 * m.data points into a buffer owned by the generator and stays valid only
 * until the next adgen_next() call.  No memory is allocated per message.
 */
#ifndef ADGEN_H
#define ADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Duplicates re-send one of the most recent ADGEN_DUP_WINDOW valid events. */
#define ADGEN_DUP_WINDOW        50000
/* Event-time displacements of the time-based invalid kinds. */
#define ADGEN_TOO_OLD_MS        (3LL * 24 * 3600 * 1000)
#define ADGEN_TOO_FAR_FUTURE_MS (2LL * 3600 * 1000)
/* Lower bound for options.oversize_bytes (well above any valid message). */
#define ADGEN_MIN_OVERSIZE      1024
#define ADGEN_MAX_OVERSIZE      (64u * 1024 * 1024)
/* Length of a UTC ISO-8601 timestamp such as 2026-01-01T00:00:01.234Z. */
#define ADGEN_ISO_LEN           24

typedef struct adgen_options
{
    uint64_t events;          /* number of messages */
    uint64_t ads;             /* ad ids are ad-0 .. ad-(ads-1) */
    uint64_t users;           /* user ids are u-0 .. u-(users-1) */
    double   dup_pct;         /* share of duplicate re-sends, percent */
    double   invalid_pct;     /* share of invalid messages, percent */
    double   late_pct;        /* share of late (1..30 min) events, percent */
    double   click_pct;       /* share of clicks among events, percent */
    uint64_t seed;
    int64_t  start_ms;        /* Kafka timestamp of message 0 */
    uint64_t rate;            /* messages per second of Kafka time */
    uint32_t partitions;
    uint32_t oversize_bytes;  /* exact size of "oversized" messages */
} adgen_options;

typedef enum adgen_status
{
    ADGEN_ACCEPTED = 0,       /* first valid occurrence of an event */
    ADGEN_DUPLICATE,          /* byte-identical re-send of an accepted event */
    ADGEN_REJECTED,           /* invalid; see reason */
    ADGEN_NSTATUS
} adgen_status;

typedef enum adgen_reason
{
    ADGEN_REASON_NONE = 0,
    ADGEN_MALFORMED_JSON,
    ADGEN_INVALID_UTF8,
    ADGEN_MISSING_FIELD,
    ADGEN_WRONG_TYPE,
    ADGEN_UNKNOWN_EVENT_TYPE,
    ADGEN_TOO_OLD,
    ADGEN_TOO_FAR_IN_FUTURE,
    ADGEN_OVERSIZED,
    ADGEN_NREASONS
} adgen_reason;

/*
 * The well-formed values of one event plus the rendering style that makes
 * its JSON text reproducible byte for byte.
 */
typedef struct adgen_event
{
    char     event_id[37];    /* lowercase UUID v4 text */
    uint8_t  is_click;
    uint8_t  region;          /* index for adgen_region_name() */
    uint8_t  time_style;      /* 0 epoch ms, 1 ISO 'Z', 2 ISO with offset */
    uint8_t  order;           /* field order variant */
    uint8_t  spaced;          /* ", " and ": " separators */
    uint8_t  trim_cost;       /* strip trailing zeros of cost */
    uint8_t  device;          /* device object variant */
    uint8_t  extra;           /* 0 none, else extra unknown field variant */
    int16_t  tz_offset_min;   /* for time_style 2 */
    uint32_t ad;
    uint32_t user;
    int64_t  event_time_ms;
    int64_t  cost_micros;
} adgen_event;

typedef struct adgen_msg
{
    uint64_t seq;
    uint32_t partition;
    uint64_t offset;          /* 0-based position within its partition */
    int64_t  kafka_ms;
    const unsigned char *data;/* message bytes (not NUL-terminated) */
    size_t   len;
    char     key[16];         /* Kafka key: the ad id text, "ad-<n>" */
    size_t   key_len;
    adgen_status status;
    adgen_reason reason;      /* ADGEN_REASON_NONE unless rejected */
    uint8_t  late;            /* accepted event that arrives 1..30 min late */
    adgen_event ev;           /* event the message was built from */
} adgen_msg;

typedef struct adgen_stats
{
    uint64_t messages;
    uint64_t by_status[ADGEN_NSTATUS];
    uint64_t by_reason[ADGEN_NREASONS];
    uint64_t late;            /* accepted late events */
    uint64_t clicks;          /* accepted clicks */
} adgen_stats;

typedef struct adgen adgen;

/* Options */
void adgen_options_init(adgen_options *o);
/*
 * Set one option by its command-line name without the leading "--"
 * (e.g. "dup-pct").  Returns 1 on success, 0 if the name is unknown and
 * -1 if the value is invalid (err then holds a message).
 */
int  adgen_options_set(adgen_options *o, const char *name, const char *value,
                       char *err, size_t errlen);
/* Cross-field validation; returns 0 if fine, -1 with a message otherwise. */
int  adgen_options_check(const adgen_options *o, char *err, size_t errlen);
/* Multi-line description of the options, for --help texts. */
const char *adgen_options_help(void);

/* Generator */
adgen *adgen_create(const adgen_options *o, char *err, size_t errlen);
int    adgen_next(adgen *g, adgen_msg *m);  /* 1 = message filled, 0 = end */
void   adgen_get_stats(const adgen *g, adgen_stats *s);
/* One-line summary of the stats (no newline); returns snprintf's result. */
int    adgen_format_summary(const adgen *g, char *buf, size_t size);
void   adgen_free(adgen *g);

/* Names */
const char *adgen_status_name(adgen_status s);
const char *adgen_reason_name(adgen_reason r);
const char *adgen_event_type_name(int is_click);
const char *adgen_region_name(int region);

/* Helpers */
/* splitmix64: advances *x and returns the next 64-bit value (seeding, tests). */
uint64_t adgen_splitmix64(uint64_t *x);
/* Kafka's murmur2 (as used by its default key partitioner). */
uint32_t adgen_murmur2(const void *data, size_t len);
/* (murmur2(key) & 0x7fffffff) % partitions: Kafka's key partitioning. */
uint32_t adgen_partition_for_key(const void *key, size_t len, uint32_t partitions);
/* Writes ADGEN_ISO_LEN chars plus a NUL; returns ADGEN_ISO_LEN. */
size_t   adgen_format_iso_utc(int64_t ms, char *buf);
/* "%lld.%06lld" of micros; trim strips trailing zeros (and a bare '.'). */
size_t   adgen_format_cost(int64_t micros, int trim, char *buf);
/*
 * bytea escape format followed by COPY text escaping: '\' becomes "\\\\",
 * bytes outside 0x20..0x7e become "\\ooo", everything else is copied.
 * out must have room for 5 * len bytes; returns the number written.
 */
size_t   adgen_bytea_copy_escape(const unsigned char *in, size_t len, char *out);

/*
 * Line writers for the three COPY text files.  They return 0 on success and
 * -1 on a stdio error.
 *   messages: seq, partition, offset, kafka_ms, msg (bytea)
 *   truth:    seq, status, reason, event_id, event_type, ad_id,
 *             window_start_ms, cost_micros
 *   rows:     event_id, event_type, ad_id, event_time, user_id, campaign_id,
 *             advertiser_id, store_id, cost, region
 */
int adgen_write_message_row(FILE *f, const adgen_msg *m);
int adgen_write_truth_row(FILE *f, const adgen_msg *m);
int adgen_write_rows_row(FILE *f, const adgen_msg *m);

#endif /* ADGEN_H */
