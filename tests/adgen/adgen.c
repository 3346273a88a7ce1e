/*
 * adgen.c - deterministic ad-event stream generator (library part).
 *
 * See adgen.h for the interface.  The generator never calls rand() or any
 * floating-point transcendental function: all randomness comes from a
 * xoshiro256** state seeded through splitmix64, and all derived values use
 * integer arithmetic or exactly rounded IEEE operations, so the output is
 * the same on every platform for the same options.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* fwrite_unlocked */
#endif
#include "adgen.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Largest event time that still prints as a four-digit year. */
#define MAX_MS_YEAR_9999 253402300799999LL
/* Earliest allowed start: "too old" events must stay after 1970. */
#define MIN_START_MS (4LL * 24 * 3600 * 1000)

#define NORMAL_DELAY_MAX_MS 2000
#define LATE_DELAY_MIN_MS   60000
#define LATE_DELAY_MAX_MS   1800000

#define IMPRESSION_COST_MIN 500
#define IMPRESSION_COST_MAX 5000
#define CLICK_COST_MIN      50000
#define CLICK_COST_MAX      2000000

/* Field indexes used by the renderer. */
enum
{
    F_EVENT_ID, F_EVENT_TYPE, F_AD_ID, F_EVENT_TIME, F_USER_ID,
    F_CAMPAIGN_ID, F_ADVERTISER_ID, F_STORE_ID, F_COST, F_REGION, F_DEVICE,
    F_EXTRA, NFIELDS
};

/* ---------------------------------------------------------------- PRNG */

typedef struct rng
{
    uint64_t s[4];
} rng;

uint64_t
adgen_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t
rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t
rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t  result = rotl64(s[1] * 5, 7) * 9;
    uint64_t  t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

/* Uniform in [0, n); n > 0.  Multiply-high mapping, bias < 2^-64 * n. */
static inline uint64_t
rng_below(rng *r, uint64_t n)
{
    return (uint64_t) (((unsigned __int128) rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi], inclusive. */
static inline int64_t
rng_range(rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t) rng_below(r, (uint64_t) (hi - lo) + 1);
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double
rng_unit(rng *r)
{
    return (double) (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---------------------------------------------------------- generator */

struct adgen
{
    adgen_options o;
    rng       r;
    uint64_t  seq;
    uint64_t  ad_mult;        /* affine scatter of popularity ranks */
    uint64_t  ad_add;
    uint64_t *offsets;        /* next offset per partition */
    adgen_event *ring;        /* most recent valid events */
    size_t    ring_count;
    size_t    ring_next;
    char     *buf;            /* message buffer */
    size_t    buf_size;
    double    thr_invalid;    /* cumulative kind thresholds, percent */
    double    thr_dup;
    double    thr_late;
    adgen_stats st;
};

/* Modifications applied while rendering an invalid message. */
typedef struct render_mod
{
    int         omit;         /* field index to leave out, or -1 */
    int         ad_id_true;   /* "ad_id": true */
    int         time_object;  /* "event_time": {"x":1} */
    int         id_number;    /* "event_id": <number with a fraction> */
    int         conversion;   /* "event_type": "conversion" */
    const char *user_suffix;  /* raw bytes appended inside user_id's value */
    size_t      user_suffix_len;
} render_mod;

static const char *const status_names[ADGEN_NSTATUS] = {
    "accepted", "duplicate", "rejected"
};

static const char *const reason_names[ADGEN_NREASONS] = {
    "", "malformed_json", "invalid_utf8", "missing_field", "wrong_type",
    "unknown_event_type", "too_old", "too_far_in_future", "oversized"
};

static const char *const region_names[3] = {"us-east", "eu-west", "ap-south"};

static const char *const field_keys[NFIELDS] = {
    "event_id", "event_type", "ad_id", "event_time", "user_id",
    "campaign_id", "advertiser_id", "store_id", "cost", "region", "device",
    NULL
};

/* Field order variants; chosen with weights 70/15/10/5 percent. */
static const uint8_t field_orders[4][NFIELDS] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
    {9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11},
    {10, 3, 2, 1, 0, 4, 8, 11, 5, 6, 7, 9},
    {11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
};

/* Offsets for the ISO form with an explicit UTC offset, in minutes. */
static const int16_t tz_offsets[8] = {330, -480, 60, 540, -210, 345, -300, 0};

static const char *const device_os[2] = {"ios", "android"};
static const char *const app_versions[4] = {
    "8.1.2", "8.2.0", "7.9.14", "9.0.0-beta.1"
};

/*
 * Extra unknown fields (about 3% of valid events) exercising JSON escapes,
 * raw multi-byte UTF-8 and nested arrays.  Written after the separator.
 */
static const char *const extra_keys[5] = {NULL, "referrer", "note", "note", "tags"};
static const char *const extra_values[5] = {
    NULL,
    "\"https:\\/\\/shop.example.com\\/p?id=7&q=\\\"sale\\\"&dir=C:\\\\tmp\"",
    "\"caf\\u00e9 \\ud83d\\ude00\\tend\"",
    "\"caf\xC3\xA9 \xE2\x80\x93 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\x98\x80\"",
    "[\"a\",1,2.5e3,-0.25,null,true,false,{\"k\":[]}]",
};

/* Invalid UTF-8 sequences placed inside the user_id string. */
static const char *const bad_utf8[5] = {
    "\xC3\x28", "\xFF", "\xC0\xAF", "\xED\xA0\x80", "\xE2\x82"
};
static const size_t bad_utf8_len[5] = {2, 1, 2, 3, 2};

/* --------------------------------------------------------- formatting */

static inline char *
put_mem(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Literals become fixed-size copies; short runtime names a byte loop. */
static inline char *
put_str(char *p, const char *s)
{
    if (__builtin_constant_p(strlen(s)))
        return put_mem(p, s, strlen(s));
    while (*s)
        *p++ = *s++;
    return p;
}

#ifdef __GLIBC__
#define FWRITE fwrite_unlocked
#else
#define FWRITE fwrite
#endif

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static char *
put_u64(char *p, uint64_t v)
{
    char  tmp[20];
    char *t = tmp + sizeof tmp;
    size_t n;

    while (v >= 100)
    {
        unsigned r = (unsigned) (v % 100);

        v /= 100;
        t -= 2;
        memcpy(t, digit_pairs + 2 * r, 2);
    }
    if (v >= 10)
    {
        t -= 2;
        memcpy(t, digit_pairs + 2 * v, 2);
    }
    else
        *--t = (char) ('0' + v);
    n = (size_t) (tmp + sizeof tmp - t);
    memcpy(p, t, n);
    return p + n;
}

static char *
put_i64(char *p, int64_t v)
{
    if (v < 0)
    {
        *p++ = '-';
        return put_u64(p, (uint64_t) 0 - (uint64_t) v);
    }
    return put_u64(p, (uint64_t) v);
}

static inline char *
put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--)
    {
        p[i] = (char) ('0' + v % 10);
        v /= 10;
    }
    return p + width;
}

static inline int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* Proleptic Gregorian date of a day count since 1970-01-01. */
static void
civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t  z = days + 719468;
    int64_t  era = floor_div(z, 146097);
    unsigned doe = (unsigned) (z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;

    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t) yoe + era * 400 + (*m <= 2);
}

/*
 * "YYYY-MM-DDTHH:MM:SS.mmm" of the wall-clock time ms + offset_min, then
 * either 'Z' (utc != 0) or "+HH:MM"/"-HH:MM".
 */
static char *
put_iso(char *p, int64_t ms, int offset_min, int utc)
{
    int64_t  local = ms + (int64_t) offset_min * 60000;
    int64_t  days = floor_div(local, 86400000);
    int64_t  in_day = local - days * 86400000;
    int64_t  y;
    unsigned mo, d;

    civil_from_days(days, &y, &mo, &d);
    p = put_digits(p, (unsigned) y, 4);
    *p++ = '-';
    p = put_digits(p, mo, 2);
    *p++ = '-';
    p = put_digits(p, d, 2);
    *p++ = 'T';
    p = put_digits(p, (unsigned) (in_day / 3600000), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned) (in_day / 60000 % 60), 2);
    *p++ = ':';
    p = put_digits(p, (unsigned) (in_day / 1000 % 60), 2);
    *p++ = '.';
    p = put_digits(p, (unsigned) (in_day % 1000), 3);
    if (utc)
        *p++ = 'Z';
    else
    {
        int a = offset_min < 0 ? -offset_min : offset_min;

        *p++ = offset_min < 0 ? '-' : '+';
        p = put_digits(p, (unsigned) (a / 60), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned) (a % 60), 2);
    }
    return p;
}

static char *
put_cost(char *p, int64_t micros, int trim)
{
    char *frac;

    p = put_i64(p, micros / 1000000);
    *p++ = '.';
    frac = p;
    p = put_digits(p, (unsigned) (micros % 1000000), 6);
    if (trim)
    {
        while (p > frac && p[-1] == '0')
            p--;
        if (p == frac)
            p--;                /* drop the '.' too: "2" */
    }
    return p;
}

size_t
adgen_format_iso_utc(int64_t ms, char *buf)
{
    char *p = put_iso(buf, ms, 0, 1);

    *p = '\0';
    return (size_t) (p - buf);
}

size_t
adgen_format_cost(int64_t micros, int trim, char *buf)
{
    char *p = put_cost(buf, micros, trim);

    *p = '\0';
    return (size_t) (p - buf);
}

/* ---------------------------------------------------------- hashing */

uint32_t
adgen_murmur2(const void *data, size_t len)
{
    const unsigned char *b = data;
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cu ^ (uint32_t) len;
    size_t   n4 = len / 4;

    for (size_t i = 0; i < n4; i++)
    {
        const unsigned char *q = b + 4 * i;
        uint32_t k = (uint32_t) q[0] | ((uint32_t) q[1] << 8) |
            ((uint32_t) q[2] << 16) | ((uint32_t) q[3] << 24);

        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    b += n4 * 4;
    switch (len & 3)
    {
        case 3:
            h ^= (uint32_t) b[2] << 16;
            /* fall through */
        case 2:
            h ^= (uint32_t) b[1] << 8;
            /* fall through */
        case 1:
            h ^= b[0];
            h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

uint32_t
adgen_partition_for_key(const void *key, size_t len, uint32_t partitions)
{
    return (adgen_murmur2(key, len) & 0x7fffffffu) % partitions;
}

/* ------------------------------------------------------------ names */

const char *
adgen_status_name(adgen_status s)
{
    return (unsigned) s < ADGEN_NSTATUS ? status_names[s] : "?";
}

const char *
adgen_reason_name(adgen_reason r)
{
    return (unsigned) r < ADGEN_NREASONS ? reason_names[r] : "?";
}

const char *
adgen_event_type_name(int is_click)
{
    return is_click ? "click" : "impression";
}

const char *
adgen_region_name(int region)
{
    return (unsigned) region < 3 ? region_names[region] : "?";
}

/* ---------------------------------------------------------- options */

void
adgen_options_init(adgen_options *o)
{
    memset(o, 0, sizeof *o);
    o->events = 2000000;
    o->ads = 100000;
    o->users = 1000000;
    o->dup_pct = 5;
    o->invalid_pct = 1;
    o->late_pct = 2;
    o->click_pct = 5;
    o->seed = 42;
    o->start_ms = 1767225600000LL;      /* 2026-01-01T00:00:00Z */
    o->rate = 20000;
    o->partitions = 1;
    o->oversize_bytes = 5000;
}

const char *
adgen_options_help(void)
{
    return
        "  --events N          number of messages (default 2000000)\n"
        "  --ads N             number of distinct ads (default 100000)\n"
        "  --users N           number of distinct users (default 1000000)\n"
        "  --dup-pct P         percent of duplicate re-sends (default 5)\n"
        "  --invalid-pct P     percent of invalid messages (default 1)\n"
        "  --late-pct P        percent of events 1..30 min late (default 2)\n"
        "  --click-pct P       percent of clicks among events (default 5)\n"
        "  --seed S            PRNG seed (default 42)\n"
        "  --start-ms MS       Kafka timestamp of the first message\n"
        "                      (default 1767225600000 = 2026-01-01T00:00:00Z)\n"
        "  --rate R            messages per second of Kafka time (default 20000)\n"
        "  --partitions K      number of partitions (default 1)\n"
        "  --oversize-bytes B  size of oversized messages (default 5000)\n";
}

static int
parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t) v;
    return 0;
}

static int
parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || *s == ' ' || *s == '\t' || *s == '+')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t) v;
    return 0;
}

static int
parse_pct(const char *s, double *out)
{
    char  *end;
    double v;

    if (s == NULL || !((*s >= '0' && *s <= '9') || *s == '.'))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || v > 100)
        return -1;
    *out = v;
    return 0;
}

static int
bad_value(char *err, size_t errlen, const char *name, const char *value,
          const char *what)
{
    snprintf(err, errlen, "invalid value for --%s: '%s' (%s)", name,
             value ? value : "", what);
    return -1;
}

int
adgen_options_set(adgen_options *o, const char *name, const char *value,
                  char *err, size_t errlen)
{
    uint64_t u;
    int64_t  i;
    double   d;

    if (strcmp(name, "events") == 0)
    {
        if (parse_u64(value, &u) || u > 1000000000000ULL)
            return bad_value(err, errlen, name, value, "0 .. 1e12");
        o->events = u;
    }
    else if (strcmp(name, "ads") == 0 || strcmp(name, "users") == 0)
    {
        if (parse_u64(value, &u) || u < 1 || u > UINT32_MAX)
            return bad_value(err, errlen, name, value, "1 .. 4294967295");
        if (name[0] == 'a')
            o->ads = u;
        else
            o->users = u;
    }
    else if (strcmp(name, "dup-pct") == 0 || strcmp(name, "invalid-pct") == 0 ||
             strcmp(name, "late-pct") == 0 || strcmp(name, "click-pct") == 0)
    {
        if (parse_pct(value, &d))
            return bad_value(err, errlen, name, value, "a percentage 0 .. 100");
        switch (name[0])
        {
            case 'd': o->dup_pct = d; break;
            case 'i': o->invalid_pct = d; break;
            case 'l': o->late_pct = d; break;
            default: o->click_pct = d; break;
        }
    }
    else if (strcmp(name, "seed") == 0)
    {
        if (parse_u64(value, &u))
            return bad_value(err, errlen, name, value, "an unsigned 64-bit integer");
        o->seed = u;
    }
    else if (strcmp(name, "start-ms") == 0)
    {
        if (parse_i64(value, &i))
            return bad_value(err, errlen, name, value, "epoch milliseconds");
        o->start_ms = i;
    }
    else if (strcmp(name, "rate") == 0)
    {
        if (parse_u64(value, &u) || u < 1 || u > 1000000000ULL)
            return bad_value(err, errlen, name, value, "1 .. 1e9");
        o->rate = u;
    }
    else if (strcmp(name, "partitions") == 0)
    {
        if (parse_u64(value, &u) || u < 1 || u > 1000000)
            return bad_value(err, errlen, name, value, "1 .. 1000000");
        o->partitions = (uint32_t) u;
    }
    else if (strcmp(name, "oversize-bytes") == 0)
    {
        if (parse_u64(value, &u) || u < ADGEN_MIN_OVERSIZE || u > ADGEN_MAX_OVERSIZE)
            return bad_value(err, errlen, name, value, "1024 .. 67108864");
        o->oversize_bytes = (uint32_t) u;
    }
    else
        return 0;
    return 1;
}

int
adgen_options_check(const adgen_options *o, char *err, size_t errlen)
{
    int64_t last_ms;

    if (o->dup_pct + o->invalid_pct + o->late_pct > 100.0)
    {
        snprintf(err, errlen,
                 "--dup-pct + --invalid-pct + --late-pct must not exceed 100");
        return -1;
    }
    if (o->ads < 1 || o->ads > UINT32_MAX || o->users < 1 || o->users > UINT32_MAX ||
        o->rate < 1 || o->partitions < 1 || o->events > 1000000000000ULL ||
        o->oversize_bytes < ADGEN_MIN_OVERSIZE || o->oversize_bytes > ADGEN_MAX_OVERSIZE)
    {
        snprintf(err, errlen, "option out of range");
        return -1;
    }
    if (o->start_ms < MIN_START_MS || o->start_ms > MAX_MS_YEAR_9999)
    {
        snprintf(err, errlen, "--start-ms must be between %lld and %lld",
                 (long long) MIN_START_MS, (long long) MAX_MS_YEAR_9999);
        return -1;
    }
    last_ms = o->start_ms + (int64_t) (o->events * 1000 / o->rate);
    if (last_ms > MAX_MS_YEAR_9999 - ADGEN_TOO_FAR_FUTURE_MS - 1000000)
    {
        snprintf(err, errlen, "the stream would run past the year 9999");
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------- generator */

static uint64_t
gcd64(uint64_t a, uint64_t b)
{
    while (b)
    {
        uint64_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

adgen *
adgen_create(const adgen_options *o, char *err, size_t errlen)
{
    adgen   *g;
    uint64_t sm;

    if (adgen_options_check(o, err, errlen))
        return NULL;
    g = calloc(1, sizeof *g);
    if (g == NULL)
        goto oom;
    g->o = *o;
    g->buf_size = (size_t) o->oversize_bytes + 4096;
    g->buf = malloc(g->buf_size);
    g->ring = malloc(sizeof(adgen_event) * ADGEN_DUP_WINDOW);
    g->offsets = calloc(o->partitions, sizeof(uint64_t));
    if (g->buf == NULL || g->ring == NULL || g->offsets == NULL)
        goto oom;

    sm = o->seed;
    for (int i = 0; i < 4; i++)
        g->r.s[i] = adgen_splitmix64(&sm);

    /* Popularity rank r maps to ad (r * mult + add) mod ads, a bijection. */
    if (o->ads > 1)
    {
        g->ad_mult = 1 + adgen_splitmix64(&sm) % (o->ads - 1);
        while (gcd64(g->ad_mult, o->ads) != 1)
            g->ad_mult = g->ad_mult % (o->ads - 1) + 1;
        g->ad_add = adgen_splitmix64(&sm) % o->ads;
    }
    else
    {
        g->ad_mult = 1;
        g->ad_add = 0;
    }

    g->thr_invalid = o->invalid_pct;
    g->thr_dup = o->invalid_pct + o->dup_pct;
    g->thr_late = o->invalid_pct + o->dup_pct + o->late_pct;
    return g;

oom:
    snprintf(err, errlen, "out of memory");
    adgen_free(g);
    return NULL;
}

void
adgen_free(adgen *g)
{
    if (g == NULL)
        return;
    free(g->buf);
    free(g->ring);
    free(g->offsets);
    free(g);
}

void
adgen_get_stats(const adgen *g, adgen_stats *s)
{
    *s = g->st;
}

int
adgen_format_summary(const adgen *g, char *buf, size_t size)
{
    const adgen_stats *s = &g->st;
    size_t used;
    int    n;

    n = snprintf(buf, size,
                 "adgen: messages=%" PRIu64 " accepted=%" PRIu64
                 " (late=%" PRIu64 " clicks=%" PRIu64 ") duplicate=%" PRIu64
                 " rejected=%" PRIu64,
                 s->messages, s->by_status[ADGEN_ACCEPTED], s->late, s->clicks,
                 s->by_status[ADGEN_DUPLICATE], s->by_status[ADGEN_REJECTED]);
    for (int r = 1; r < ADGEN_NREASONS && n >= 0; r++)
    {
        int k;

        used = (size_t) n < size ? (size_t) n : size;
        k = snprintf(buf + used, size - used, " %s=%" PRIu64,
                     reason_names[r], s->by_reason[r]);
        if (k < 0)
            return k;
        n += k;
    }
    return n;
}

/* Draw the values and rendering style of a fresh event. */
static void
make_event(adgen *g, adgen_event *ev, int64_t kafka_ms, int late)
{
    rng     *r = &g->r;
    uint64_t a = rng_next(r), b = rng_next(r);
    static const char hex[] = "0123456789abcdef";
    unsigned char u[16];
    char    *p = ev->event_id;
    double   x;
    uint64_t rank, style;

    /* UUID version 4, RFC 4122 variant. */
    for (int i = 0; i < 8; i++)
    {
        u[i] = (unsigned char) (a >> (8 * i));
        u[8 + i] = (unsigned char) (b >> (8 * i));
    }
    u[6] = (unsigned char) ((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char) ((u[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++)
    {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u[i] >> 4];
        *p++ = hex[u[i] & 15];
    }
    *p = '\0';

    ev->is_click = rng_unit(r) * 100.0 < g->o.click_pct;

    /*
     * Ad popularity: rank = floor(ads * x^3) with x uniform, i.e. density
     * proportional to rank^(-2/3).  With 100k ads the top 1% of ads take
     * about 22% of the traffic.
     */
    x = rng_unit(r);
    rank = (uint64_t) (x * x * x * (double) g->o.ads);
    if (rank >= g->o.ads)
        rank = g->o.ads - 1;
    ev->ad = (uint32_t) (((unsigned __int128) rank * g->ad_mult + g->ad_add) % g->o.ads);
    ev->user = (uint32_t) rng_below(r, g->o.users);

    if (late)
        ev->event_time_ms = kafka_ms - rng_range(r, LATE_DELAY_MIN_MS, LATE_DELAY_MAX_MS);
    else
        ev->event_time_ms = kafka_ms - rng_range(r, 0, NORMAL_DELAY_MAX_MS);

    if (ev->is_click)
        ev->cost_micros = rng_range(r, CLICK_COST_MIN, CLICK_COST_MAX);
    else
        ev->cost_micros = rng_range(r, IMPRESSION_COST_MIN, IMPRESSION_COST_MAX);
    ev->region = (uint8_t) rng_below(r, 3);

    /*
     * Rendering style from one 64-bit draw, split into independent bit
     * fields; percentages are scaled from 10-bit fields.
     */
    style = rng_next(r);
    {
        unsigned t = (unsigned) (style & 1023);
        unsigned o = (unsigned) (((style >> 10) & 1023) * 100 >> 10);
        unsigned e = (unsigned) (((style >> 20) & 1023) * 100 >> 10);
        unsigned s = (unsigned) (((style >> 33) & 1023) * 100 >> 10);

        if (t < 512)
            ev->time_style = 0;                     /* epoch ms, 50% */
        else if (t < 512 + 26)
            ev->time_style = 2;                     /* ~5% of ISO strings */
        else
            ev->time_style = 1;
        ev->tz_offset_min = tz_offsets[(style >> 30) & 7];
        ev->order = o < 70 ? 0 : o < 85 ? 1 : o < 95 ? 2 : 3;
        ev->spaced = s < 10;
        ev->trim_cost = (style >> 43) & 1;
        ev->device = (uint8_t) ((style >> 44) & 15);
        ev->extra = (uint8_t) (e < 3 ? 1 + ((style >> 48) & 3) : 0);
    }
}

static char *
put_key(char *p, const char *key, const char *colon)
{
    *p++ = '"';
    p = put_str(p, key);
    *p++ = '"';
    return put_str(p, colon);
}

/* Render the event as JSON into p; returns the end pointer. */
static char *
render_event(char *p, const adgen_event *ev, const render_mod *mod)
{
    const char *comma = ev->spaced ? ", " : ",";
    const char *colon = ev->spaced ? ": " : ":";
    int         first = 1;

    *p++ = '{';
    for (int i = 0; i < NFIELDS; i++)
    {
        int f = field_orders[ev->order][i];

        if (mod && mod->omit == f)
            continue;
        if (f == F_EXTRA && ev->extra == 0)
            continue;
        if (!first)
            p = put_str(p, comma);
        first = 0;
        if (f == F_EXTRA)
        {
            p = put_key(p, extra_keys[ev->extra], colon);
            p = put_str(p, extra_values[ev->extra]);
            continue;
        }
        p = put_key(p, field_keys[f], colon);
        switch (f)
        {
            case F_EVENT_ID:
                if (mod && mod->id_number)
                {
                    /* a non-integer number: ids may be integers, never fractions */
                    p = put_u64(p, strtoul(ev->event_id + 0, NULL, 16) & 0x7fffffffUL);
                    *p++ = '.';
                    *p++ = '5';
                }
                else
                {
                    *p++ = '"';
                    p = put_mem(p, ev->event_id, 36);
                    *p++ = '"';
                }
                break;
            case F_EVENT_TYPE:
                *p++ = '"';
                p = put_str(p, mod && mod->conversion ? "conversion" :
                            adgen_event_type_name(ev->is_click));
                *p++ = '"';
                break;
            case F_AD_ID:
                if (mod && mod->ad_id_true)
                    p = put_str(p, "true");
                else
                {
                    p = put_str(p, "\"ad-");
                    p = put_u64(p, ev->ad);
                    *p++ = '"';
                }
                break;
            case F_EVENT_TIME:
                if (mod && mod->time_object)
                    p = put_str(p, "{\"x\":1}");
                else if (ev->time_style == 0)
                    p = put_i64(p, ev->event_time_ms);
                else
                {
                    *p++ = '"';
                    p = put_iso(p, ev->event_time_ms,
                                ev->time_style == 2 ? ev->tz_offset_min : 0,
                                ev->time_style != 2);
                    *p++ = '"';
                }
                break;
            case F_USER_ID:
                p = put_str(p, "\"u-");
                p = put_u64(p, ev->user);
                if (mod && mod->user_suffix_len)
                    p = put_mem(p, mod->user_suffix, mod->user_suffix_len);
                *p++ = '"';
                break;
            case F_CAMPAIGN_ID:
                p = put_str(p, "\"c-");
                p = put_u64(p, ev->ad / 10);
                *p++ = '"';
                break;
            case F_ADVERTISER_ID:
                p = put_str(p, "\"adv-");
                p = put_u64(p, ev->ad / 200);
                *p++ = '"';
                break;
            case F_STORE_ID:
                p = put_str(p, "\"s-");
                p = put_u64(p, ev->ad / 50);
                *p++ = '"';
                break;
            case F_COST:
                p = put_cost(p, ev->cost_micros, ev->trim_cost);
                break;
            case F_REGION:
                *p++ = '"';
                p = put_str(p, region_names[ev->region]);
                *p++ = '"';
                break;
            case F_DEVICE:
                p = put_str(p, "{\"os\"");
                p = put_str(p, colon);
                *p++ = '"';
                p = put_str(p, device_os[ev->device & 1]);
                *p++ = '"';
                p = put_str(p, comma);
                p = put_key(p, "app_version", colon);
                *p++ = '"';
                p = put_str(p, app_versions[(ev->device >> 1) & 3]);
                *p++ = '"';
                if (ev->device & 8)
                {
                    p = put_str(p, comma);
                    p = put_key(p, "screen", colon);
                    p = put_str(p, "{\"w\":1170,\"h\":2532}");
                }
                *p++ = '}';
                break;
        }
    }
    *p++ = '}';
    return p;
}

/* Build a rejected message of the given reason into g->buf. */
static size_t
make_invalid(adgen *g, adgen_event *ev, adgen_reason reason, int64_t kafka_ms)
{
    rng       *r = &g->r;
    char      *buf = g->buf;
    char      *end;
    render_mod mod = {.omit = -1};
    size_t     len;

    switch (reason)
    {
        case ADGEN_MALFORMED_JSON:
            switch (rng_below(r, 3))
            {
                case 0:         /* truncated in the middle */
                    end = render_event(buf, ev, NULL);
                    return (size_t) (end - buf) / 2;
                case 1:         /* printable garbage, never valid JSON */
                {
                    static const char cs[] =
                        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\t\n\r";

                    len = 16 + rng_below(r, 112);
                    buf[0] = '#';
                    for (size_t i = 1; i < len; i++)
                        buf[i] = cs[rng_below(r, sizeof cs - 1)];
                    return len;
                }
                default:        /* raw NUL byte inside a string */
                    mod.user_suffix = "\0";
                    mod.user_suffix_len = 1;
                    break;
            }
            break;
        case ADGEN_INVALID_UTF8:
        {
            unsigned k = (unsigned) rng_below(r, 5);

            mod.user_suffix = bad_utf8[k];
            mod.user_suffix_len = bad_utf8_len[k];
            break;
        }
        case ADGEN_MISSING_FIELD:
            mod.omit = (int) rng_below(r, 5);   /* one of the required five */
            break;
        case ADGEN_WRONG_TYPE:
            switch (rng_below(r, 4))
            {
                case 0:
                    mod.ad_id_true = 1;
                    break;
                case 1:
                    mod.time_object = 1;
                    break;
                case 2:         /* the whole message is a JSON array */
                    buf[0] = '[';
                    end = render_event(buf + 1, ev, NULL);
                    *end++ = ']';
                    return (size_t) (end - buf);
                default:
                    mod.id_number = 1;
                    break;
            }
            break;
        case ADGEN_UNKNOWN_EVENT_TYPE:
            mod.conversion = 1;
            break;
        case ADGEN_TOO_OLD:
            ev->event_time_ms = kafka_ms - ADGEN_TOO_OLD_MS;
            break;
        case ADGEN_TOO_FAR_IN_FUTURE:
            ev->event_time_ms = kafka_ms + ADGEN_TOO_FAR_FUTURE_MS;
            break;
        case ADGEN_OVERSIZED:
        {
            static const char pad_head[] = ",\"padding\":\"";
            size_t target = g->o.oversize_bytes;
            size_t fixed;

            end = render_event(buf, ev, NULL);
            len = (size_t) (end - buf) - 1;     /* without the final '}' */
            fixed = len + (sizeof pad_head - 1) + 2;
            if (target < fixed)                 /* cannot happen: >= 1024 */
                target = fixed;
            memcpy(buf + len, pad_head, sizeof pad_head - 1);
            len += sizeof pad_head - 1;
            memset(buf + len, 'x', target - fixed);
            len += target - fixed;
            buf[len++] = '"';
            buf[len++] = '}';
            return len;
        }
        default:
            break;
    }
    end = render_event(buf, ev, &mod);
    return (size_t) (end - buf);
}

int
adgen_next(adgen *g, adgen_msg *m)
{
    int64_t kafka_ms;
    double  u;
    int     kind;                   /* 0 normal, 1 late, 2 dup, 3 invalid */
    char   *end;

    if (g->seq >= g->o.events)
        return 0;

    kafka_ms = g->o.start_ms + (int64_t) (g->seq * 1000 / g->o.rate);
    m->seq = g->seq;
    m->kafka_ms = kafka_ms;
    m->reason = ADGEN_REASON_NONE;
    m->late = 0;

    u = rng_unit(&g->r) * 100.0;
    if (u < g->thr_invalid)
        kind = 3;
    else if (u < g->thr_dup)
        kind = g->ring_count > 0 ? 2 : 0;
    else if (u < g->thr_late)
        kind = 1;
    else
        kind = 0;

    if (kind == 2)
    {
        size_t back = (size_t) rng_below(&g->r, g->ring_count);
        size_t idx = (g->ring_next + ADGEN_DUP_WINDOW - 1 - back) % ADGEN_DUP_WINDOW;

        m->ev = g->ring[idx];
        end = render_event(g->buf, &m->ev, NULL);
        m->len = (size_t) (end - g->buf);
        m->status = ADGEN_DUPLICATE;
    }
    else if (kind == 3)
    {
        adgen_reason reason = (adgen_reason) (1 + rng_below(&g->r, ADGEN_NREASONS - 1));

        make_event(g, &m->ev, kafka_ms, 0);
        m->len = make_invalid(g, &m->ev, reason, kafka_ms);
        m->status = ADGEN_REJECTED;
        m->reason = reason;
        g->st.by_reason[reason]++;
    }
    else
    {
        make_event(g, &m->ev, kafka_ms, kind == 1);
        end = render_event(g->buf, &m->ev, NULL);
        m->len = (size_t) (end - g->buf);
        m->status = ADGEN_ACCEPTED;
        m->late = kind == 1;
        g->ring[g->ring_next] = m->ev;
        g->ring_next = (g->ring_next + 1) % ADGEN_DUP_WINDOW;
        if (g->ring_count < ADGEN_DUP_WINDOW)
            g->ring_count++;
        g->st.late += m->late;
        g->st.clicks += m->ev.is_click;
    }
    m->data = (const unsigned char *) g->buf;

    end = put_str(m->key, "ad-");
    end = put_u64(end, m->ev.ad);
    *end = '\0';
    m->key_len = (size_t) (end - m->key);
    m->partition = adgen_partition_for_key(m->key, m->key_len, g->o.partitions);
    m->offset = g->offsets[m->partition]++;

    g->st.messages++;
    g->st.by_status[m->status]++;
    g->seq++;
    return 1;
}

/* ------------------------------------------------------------ output */

/* Nonzero if any byte of w is zero. */
#define WORD_HAS_ZERO(w) (((w) - 0x0101010101010101ULL) & ~(w) & 0x8080808080808080ULL)
/* Nonzero if any byte of w (all bytes < 0x80) is below 0x20. */
#define WORD_HAS_LT20(w) (((w) - 0x2020202020202020ULL) & ~(w) & 0x8080808080808080ULL)

size_t
adgen_bytea_copy_escape(const unsigned char *in, size_t len, char *out)
{
    char  *p = out;
    size_t i = 0;

    while (i < len)
    {
        /* Fast path: eight printable bytes without a backslash. */
        if (len - i >= 8)
        {
            uint64_t w;

            memcpy(&w, in + i, 8);
            if (!(w & 0x8080808080808080ULL) && !WORD_HAS_LT20(w) &&
                !WORD_HAS_ZERO(w ^ 0x7f7f7f7f7f7f7f7fULL) &&
                !WORD_HAS_ZERO(w ^ 0x5c5c5c5c5c5c5c5cULL))
            {
                memcpy(p, &w, 8);
                p += 8;
                i += 8;
                continue;
            }
        }
        {
            unsigned c = in[i++];

            if (c == '\\')
            {
                memcpy(p, "\\\\\\\\", 4);
                p += 4;
            }
            else if (c >= 0x20 && c <= 0x7e)
                *p++ = (char) c;
            else
            {
                p[0] = '\\';
                p[1] = '\\';
                p[2] = (char) ('0' + (c >> 6));
                p[3] = (char) ('0' + ((c >> 3) & 7));
                p[4] = (char) ('0' + (c & 7));
                p += 5;
            }
        }
    }
    return (size_t) (p - out);
}

int
adgen_write_message_row(FILE *f, const adgen_msg *m)
{
    char   line[4096];
    char  *p = line;
    size_t pos = 0;

    p = put_u64(p, m->seq);
    *p++ = '\t';
    p = put_u64(p, m->partition);
    *p++ = '\t';
    p = put_u64(p, m->offset);
    *p++ = '\t';
    p = put_i64(p, m->kafka_ms);
    *p++ = '\t';
    /* Escape in chunks so that huge messages need no allocation. */
    while (pos < m->len)
    {
        size_t room = (size_t) (line + sizeof line - p) / 5;
        size_t n = m->len - pos < room ? m->len - pos : room;

        p += adgen_bytea_copy_escape(m->data + pos, n, p);
        pos += n;
        if (pos < m->len)
        {
            if (FWRITE(line, 1, (size_t) (p - line), f) != (size_t) (p - line))
                return -1;
            p = line;
        }
    }
    if ((size_t) (line + sizeof line - p) < 1)
    {
        if (FWRITE(line, 1, (size_t) (p - line), f) != (size_t) (p - line))
            return -1;
        p = line;
    }
    *p++ = '\n';
    return FWRITE(line, 1, (size_t) (p - line), f) == (size_t) (p - line) ? 0 : -1;
}

/*
 * All text values written below come from fixed alphabets (digits, hex,
 * lowercase names) and never contain a tab, newline, CR or backslash, so
 * they need no COPY escaping.
 */
int
adgen_write_truth_row(FILE *f, const adgen_msg *m)
{
    char  line[256];
    char *p = line;

    p = put_u64(p, m->seq);
    *p++ = '\t';
    p = put_str(p, status_names[m->status]);
    *p++ = '\t';
    p = put_str(p, reason_names[m->reason]);
    *p++ = '\t';
    p = put_mem(p, m->ev.event_id, 36);
    *p++ = '\t';
    if (m->status == ADGEN_REJECTED)
        p = put_str(p, "\t\t0\t0");
    else
    {
        p = put_str(p, adgen_event_type_name(m->ev.is_click));
        *p++ = '\t';
        p = put_mem(p, m->key, m->key_len);
        *p++ = '\t';
        p = put_i64(p, floor_div(m->ev.event_time_ms, 60000) * 60000);
        *p++ = '\t';
        p = put_i64(p, m->ev.cost_micros);
    }
    *p++ = '\n';
    return FWRITE(line, 1, (size_t) (p - line), f) == (size_t) (p - line) ? 0 : -1;
}

int
adgen_write_rows_row(FILE *f, const adgen_msg *m)
{
    char  line[256];
    char *p = line;
    const adgen_event *ev = &m->ev;

    p = put_mem(p, ev->event_id, 36);
    *p++ = '\t';
    p = put_str(p, adgen_event_type_name(ev->is_click));
    *p++ = '\t';
    p = put_str(p, "ad-");
    p = put_u64(p, ev->ad);
    *p++ = '\t';
    p = put_iso(p, ev->event_time_ms, 0, 1);
    *p++ = '\t';
    p = put_str(p, "u-");
    p = put_u64(p, ev->user);
    *p++ = '\t';
    p = put_str(p, "c-");
    p = put_u64(p, ev->ad / 10);
    *p++ = '\t';
    p = put_str(p, "adv-");
    p = put_u64(p, ev->ad / 200);
    *p++ = '\t';
    p = put_str(p, "s-");
    p = put_u64(p, ev->ad / 50);
    *p++ = '\t';
    p = put_cost(p, ev->cost_micros, 0);
    *p++ = '\t';
    p = put_str(p, region_names[ev->region]);
    *p++ = '\n';
    return FWRITE(line, 1, (size_t) (p - line), f) == (size_t) (p - line) ? 0 : -1;
}
