/*
 * adgen_main.c - write a generated ad-event stream to COPY text files.
 *
 *   adgen [options] --messages FILE --truth FILE --rows FILE
 *   adgen --selftest
 *
 * See adgen.h and adgen_options_help() for the options.  Exit status: 0 on
 * success, 1 on I/O errors or a failed self-test, 2 on bad options.
 */
#include "adgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STDIO_BUFSIZE (4u << 20)

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: adgen [options] --messages FILE --truth FILE --rows FILE\n"
            "       adgen --selftest\n"
            "options:\n%s"
            "  --messages FILE     seq, partition, offset, kafka_ms, msg (bytea)\n"
            "  --truth FILE        seq, status, reason, event_id, event_type,\n"
            "                      ad_id, window_start_ms, cost_micros\n"
            "  --rows FILE         the events as flat columns\n"
            "All files are in PostgreSQL COPY text format.  Option values may\n"
            "follow as the next argument or after '='.\n",
            adgen_options_help());
}

/* ---------------------------------------------------------- self-test */

static int failures;

#define CHECK(cond, ...) \
    do { \
        if (!(cond)) \
        { \
            failures++; \
            fprintf(stderr, "selftest: %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
        } \
    } while (0)

/*
 * Decode one COPY text field (as COPY FROM would) and then a bytea value in
 * escape format (as byteain would).  Returns the decoded length, or -1 if
 * the text is not something the two decoders accept.
 */
static long
decode_copy_bytea(const char *s, size_t n, unsigned char *out)
{
    char  *t = malloc(n + 1);
    size_t tn = 0;
    long   on = 0;

    if (t == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
    {
        char c = s[i];

        if (c == '\t' || c == '\n' || c == '\r')
            goto bad;
        if (c != '\\')
        {
            t[tn++] = c;
            continue;
        }
        if (++i >= n)
            goto bad;
        c = s[i];
        if (c >= '0' && c <= '7')
        {
            int v = c - '0';

            for (int k = 0; k < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
                v = v * 8 + (s[++i] - '0');
            t[tn++] = (char) v;
        }
        else
        {
            switch (c)
            {
                case 'b': t[tn++] = '\b'; break;
                case 'f': t[tn++] = '\f'; break;
                case 'n': t[tn++] = '\n'; break;
                case 'r': t[tn++] = '\r'; break;
                case 't': t[tn++] = '\t'; break;
                case 'v': t[tn++] = '\v'; break;
                case 'x': goto bad;     /* never produced */
                default: t[tn++] = c; break;
            }
        }
    }
    /* bytea escape format; a leading "\x" would select hex format */
    if (tn >= 2 && t[0] == '\\' && t[1] == 'x')
        goto bad;
    for (size_t i = 0; i < tn; i++)
    {
        if (t[i] != '\\')
        {
            out[on++] = (unsigned char) t[i];
            continue;
        }
        if (i + 1 < tn && t[i + 1] == '\\')
        {
            out[on++] = '\\';
            i++;
        }
        else if (i + 3 < tn && t[i + 1] >= '0' && t[i + 1] <= '3' &&
                 t[i + 2] >= '0' && t[i + 2] <= '7' && t[i + 3] >= '0' && t[i + 3] <= '7')
        {
            out[on++] = (unsigned char) ((t[i + 1] - '0') * 64 + (t[i + 2] - '0') * 8 +
                                         (t[i + 3] - '0'));
            i += 3;
        }
        else
            goto bad;
    }
    free(t);
    return on;
bad:
    free(t);
    return -1;
}

static void
check_escape(const unsigned char *in, size_t n)
{
    char          *esc = malloc(5 * n + 1);
    unsigned char *dec = malloc(n + 1);
    size_t         en;
    long           dn;

    if (esc == NULL || dec == NULL)
    {
        CHECK(0, "out of memory");
        goto done;
    }
    en = adgen_bytea_copy_escape(in, n, esc);
    for (size_t i = 0; i < en; i++)
        CHECK(esc[i] >= 0x20 && esc[i] <= 0x7e, "non-printable output byte");
    dn = decode_copy_bytea(esc, en, dec);
    CHECK(dn == (long) n && memcmp(dec, in, n) == 0,
          "escape round trip failed (len %zu)", n);
done:
    free(esc);
    free(dec);
}

static void
selftest_escape(void)
{
    unsigned char b[1024];
    uint64_t      x = 1;

    for (int c = 0; c < 256; c++)
    {
        b[0] = (unsigned char) c;
        check_escape(b, 1);
        b[1] = '1';                     /* a digit right after an escape */
        check_escape(b, 2);
    }
    for (int c = 0; c < 256; c++)
        b[c] = (unsigned char) c;
    check_escape(b, 256);
    check_escape((const unsigned char *) "\\x41\\\\", 6);
    for (int round = 0; round < 2000; round++)
    {
        size_t n = (size_t) (adgen_splitmix64(&x) % sizeof b);

        for (size_t i = 0; i < n; i++)
        {
            uint64_t r = adgen_splitmix64(&x);

            /* bias towards backslashes, digits and control bytes */
            b[i] = (r & 3) == 0 ? (unsigned char) "\\0x7\t"[(r >> 2) % 5]
                : (unsigned char) (r >> 8);
        }
        check_escape(b, n);
    }
}

/* A full message line, including chunked escaping of a long message. */
static void
selftest_message_row(void)
{
    static unsigned char data[20000];
    static unsigned char dec[20000];
    adgen_msg m;
    FILE     *f = tmpfile();
    char     *line = NULL;
    size_t    cap = 0;
    ssize_t   n;
    uint64_t  x = 7;

    if (f == NULL)
    {
        CHECK(0, "tmpfile failed");
        return;
    }
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char) adgen_splitmix64(&x);
    memset(&m, 0, sizeof m);
    m.seq = 12;
    m.partition = 3;
    m.offset = 4;
    m.kafka_ms = 1767225600123LL;
    m.data = data;
    m.len = sizeof data;
    CHECK(adgen_write_message_row(f, &m) == 0, "write failed");
    rewind(f);
    n = getline(&line, &cap, f);
    CHECK(n > 0 && line[n - 1] == '\n', "no line");
    if (n > 0)
    {
        const char *pre = "12\t3\t4\t1767225600123\t";
        size_t      pl = strlen(pre);

        CHECK(strncmp(line, pre, pl) == 0, "bad prefix");
        CHECK(decode_copy_bytea(line + pl, (size_t) n - pl - 1, dec) == (long) sizeof data &&
              memcmp(dec, data, sizeof data) == 0, "long message round trip failed");
    }
    free(line);
    fclose(f);
}

static void
selftest_formats(void)
{
    static const struct
    {
        const char *key;
        int32_t     hash;
    } mm[] = {
        {"21", -973932308},
        {"foobar", -790332482},
        {"a-little-bit-long-string", -985981536},
        {"a-little-bit-longer-string", -1486304829},
        {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
        {"abc", 479470107},
    };
    static const struct
    {
        int64_t     micros;
        const char *full;
        const char *trimmed;
    } costs[] = {
        {500, "0.000500", "0.0005"},
        {5000, "0.005000", "0.005"},
        {2000000, "2.000000", "2"},
        {1500000, "1.500000", "1.5"},
        {123457, "0.123457", "0.123457"},
    };
    char     buf[64];
    uint64_t x = 3;

    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++)
        CHECK((int32_t) adgen_murmur2(mm[i].key, strlen(mm[i].key)) == mm[i].hash,
              "murmur2(%s)", mm[i].key);

    for (size_t i = 0; i < sizeof costs / sizeof costs[0]; i++)
    {
        adgen_format_cost(costs[i].micros, 0, buf);
        CHECK(strcmp(buf, costs[i].full) == 0, "cost %s", buf);
        adgen_format_cost(costs[i].micros, 1, buf);
        CHECK(strcmp(buf, costs[i].trimmed) == 0, "trimmed cost %s", buf);
    }

    CHECK(adgen_format_iso_utc(1767225600000LL, buf) == ADGEN_ISO_LEN &&
          strcmp(buf, "2026-01-01T00:00:00.000Z") == 0, "iso %s", buf);
    adgen_format_iso_utc(951782400000LL + 86399999, buf);
    CHECK(strcmp(buf, "2000-02-29T23:59:59.999Z") == 0, "iso %s", buf);
    for (int i = 0; i < 100000; i++)
    {
        int64_t   ms = (int64_t) (adgen_splitmix64(&x) % 253402300800000ULL);
        time_t    t = (time_t) (ms / 1000);
        struct tm tm;
        char      want[64];

        gmtime_r(&t, &tm);
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int) (ms % 1000));
        adgen_format_iso_utc(ms, buf);
        if (strcmp(buf, want) != 0)
        {
            CHECK(0, "iso of %lld: %s, expected %s", (long long) ms, buf, want);
            break;
        }
    }
}

static int
same_msg(const adgen_msg *a, const adgen_msg *b)
{
    return a->seq == b->seq && a->partition == b->partition && a->offset == b->offset &&
        a->kafka_ms == b->kafka_ms && a->len == b->len &&
        memcmp(a->data, b->data, a->len) == 0 && a->status == b->status &&
        a->reason == b->reason && memcmp(a->ev.event_id, b->ev.event_id, 36) == 0;
}

static void
selftest_generator(void)
{
    adgen_options o;
    adgen        *g1, *g2;
    adgen_msg     m1, m2;
    adgen_stats   st;
    char          err[256];
    uint64_t      n = 0, seen[ADGEN_NREASONS] = {0};
    uint64_t      next_offset[7] = {0};

    adgen_options_init(&o);
    CHECK(adgen_options_set(&o, "events", "30000", err, sizeof err) == 1, "set");
    CHECK(adgen_options_set(&o, "invalid-pct", "40", err, sizeof err) == 1, "set");
    CHECK(adgen_options_set(&o, "dup-pct", "10.5", err, sizeof err) == 1, "set");
    CHECK(adgen_options_set(&o, "partitions", "7", err, sizeof err) == 1, "set");
    CHECK(adgen_options_set(&o, "ads", "1000", err, sizeof err) == 1, "set");
    CHECK(adgen_options_set(&o, "bogus", "1", err, sizeof err) == 0, "unknown name");
    CHECK(adgen_options_set(&o, "dup-pct", "101", err, sizeof err) == -1, "bad pct");
    CHECK(adgen_options_set(&o, "events", "-1", err, sizeof err) == -1, "bad count");
    CHECK(adgen_options_set(&o, "rate", "1x", err, sizeof err) == -1, "bad rate");

    g1 = adgen_create(&o, err, sizeof err);
    g2 = adgen_create(&o, err, sizeof err);
    CHECK(g1 != NULL && g2 != NULL, "create: %s", err);
    if (g1 == NULL || g2 == NULL)
        goto done;
    while (adgen_next(g1, &m1))
    {
        int ok2 = adgen_next(g2, &m2);

        CHECK(ok2 && same_msg(&m1, &m2), "generators diverge at %llu",
              (unsigned long long) m1.seq);
        CHECK(m1.seq == n, "seq");
        CHECK(m1.partition < 7 && m1.offset == next_offset[m1.partition],
              "offset at %llu", (unsigned long long) m1.seq);
        CHECK(m1.partition == adgen_partition_for_key(m1.key, m1.key_len, 7), "partition");
        next_offset[m1.partition]++;
        if (m1.status != ADGEN_REJECTED)
            CHECK(m1.len < ADGEN_MIN_OVERSIZE && m1.data[0] == '{' &&
                  m1.data[m1.len - 1] == '}', "valid message shape");
        if (m1.reason == ADGEN_OVERSIZED)
            CHECK(m1.len == o.oversize_bytes, "oversized length %zu", m1.len);
        seen[m1.reason]++;
        n++;
        if (failures > 20)
            break;
    }
    CHECK(n == o.events, "message count %llu", (unsigned long long) n);
    CHECK(!adgen_next(g2, &m2), "second generator longer");
    for (int r = 1; r < ADGEN_NREASONS; r++)
        CHECK(seen[r] > 0, "reason %s never produced", adgen_reason_name((adgen_reason) r));
    adgen_get_stats(g1, &st);
    CHECK(st.messages == n && st.by_status[ADGEN_ACCEPTED] + st.by_status[ADGEN_DUPLICATE] +
          st.by_status[ADGEN_REJECTED] == n, "stats");
done:
    adgen_free(g1);
    adgen_free(g2);
}

static int
selftest(void)
{
    selftest_escape();
    selftest_message_row();
    selftest_formats();
    selftest_generator();
    if (failures)
    {
        fprintf(stderr, "selftest: %d failure(s)\n", failures);
        return 1;
    }
    fprintf(stderr, "selftest: ok\n");
    return 0;
}

/* --------------------------------------------------------------- main */

static FILE *
open_out(const char *path, char **vbuf)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
    {
        fprintf(stderr, "adgen: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    *vbuf = malloc(STDIO_BUFSIZE);
    if (*vbuf != NULL)
        setvbuf(f, *vbuf, _IOFBF, STDIO_BUFSIZE);
    return f;
}

static int
close_out(FILE *f, const char *path)
{
    if (ferror(f) | fclose(f))
    {
        fprintf(stderr, "adgen: error writing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    adgen_options o;
    const char   *paths[3] = {NULL, NULL, NULL};    /* messages, truth, rows */
    static const char *const file_opts[3] = {"messages", "truth", "rows"};
    FILE         *files[3] = {NULL, NULL, NULL};
    char         *vbufs[3] = {NULL, NULL, NULL};
    char          err[256];
    char          summary[1024];
    adgen        *g;
    adgen_msg     m;
    int           rc = 0;

    adgen_options_init(&o);
    for (int i = 1; i < argc; i++)
    {
        const char *arg = argv[i];
        char        name[64];
        const char *value;
        const char *eq;
        int         k, r;

        if (strcmp(arg, "--selftest") == 0)
            return selftest();
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
        {
            usage(stdout);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        {
            fprintf(stderr, "adgen: unexpected argument '%s'\n", arg);
            usage(stderr);
            return 2;
        }
        arg += 2;
        eq = strchr(arg, '=');
        if (eq != NULL)
        {
            if ((size_t) (eq - arg) >= sizeof name)
                goto unknown;
            memcpy(name, arg, (size_t) (eq - arg));
            name[eq - arg] = '\0';
            value = eq + 1;
        }
        else
        {
            if (strlen(arg) >= sizeof name)
                goto unknown;
            strcpy(name, arg);
            if (i + 1 >= argc)
            {
                fprintf(stderr, "adgen: option --%s needs a value\n", name);
                return 2;
            }
            value = argv[++i];
        }
        for (k = 0; k < 3; k++)
            if (strcmp(name, file_opts[k]) == 0)
                break;
        if (k < 3)
        {
            if (value[0] == '\0')
            {
                fprintf(stderr, "adgen: empty file name for --%s\n", name);
                return 2;
            }
            paths[k] = value;
            continue;
        }
        r = adgen_options_set(&o, name, value, err, sizeof err);
        if (r == 1)
            continue;
        if (r < 0)
        {
            fprintf(stderr, "adgen: %s\n", err);
            return 2;
        }
unknown:
        fprintf(stderr, "adgen: unknown option '--%.*s'\n",
                (int) (eq != NULL ? (size_t) (eq - arg) : strlen(arg)), arg);
        usage(stderr);
        return 2;
    }
    for (int k = 0; k < 3; k++)
    {
        if (paths[k] == NULL)
        {
            fprintf(stderr, "adgen: --%s FILE is required\n", file_opts[k]);
            usage(stderr);
            return 2;
        }
    }
    if (adgen_options_check(&o, err, sizeof err))
    {
        fprintf(stderr, "adgen: %s\n", err);
        return 2;
    }
    g = adgen_create(&o, err, sizeof err);
    if (g == NULL)
    {
        fprintf(stderr, "adgen: %s\n", err);
        return 1;
    }
    for (int k = 0; k < 3; k++)
    {
        files[k] = open_out(paths[k], &vbufs[k]);
        if (files[k] == NULL)
        {
            rc = 1;
            goto out;
        }
    }
    while (adgen_next(g, &m))
    {
        if (adgen_write_message_row(files[0], &m) ||
            adgen_write_truth_row(files[1], &m) ||
            adgen_write_rows_row(files[2], &m))
        {
            fprintf(stderr, "adgen: write error: %s\n", strerror(errno));
            rc = 1;
            goto out;
        }
    }
    adgen_format_summary(g, summary, sizeof summary);
    fprintf(stderr, "%s\n", summary);
out:
    for (int k = 0; k < 3; k++)
        if (files[k] != NULL && close_out(files[k], paths[k]))
            rc = 1;
    for (int k = 0; k < 3; k++)
        free(vbufs[k]);
    adgen_free(g);
    return rc;
}
