/*
 * mockkafka: keeps a librdkafka mock cluster alive on 127.0.0.1 for the
 * tests and the demo, and takes fault-injection commands.
 *
 *   mockkafka [--brokers N] [--topic NAME:PARTITIONS]... \
 *             --bootstrap-file PATH --control-file PATH
 *
 * The mock cluster speaks the real Kafka protocol over TCP.  When it is
 * ready, the program writes the cluster's bootstrap servers to
 * --bootstrap-file and the TCP port of its control channel to
 * --control-file (each written to a temporary name and renamed, so a reader
 * never sees half a file).  The control channel listens on 127.0.0.1 and
 * takes one command per line, answering each with "ok[ detail]" or
 * "error: reason":
 *
 *   ping                          liveness
 *   bootstrap                     the bootstrap servers
 *   topic NAME PARTITIONS         create a topic (replication factor 1)
 *   down BROKER | up BROKER       take a broker down or back up (same port,
 *                                 data kept)
 *   rtt BROKER MS                 add MS milliseconds to its responses
 *   error API ERROR [COUNT]       fail the next COUNT (default 1) requests of
 *                                 API (name such as fetch or metadata, or a
 *                                 number) with ERROR (a librdkafka error
 *                                 name such as NOT_LEADER_FOR_PARTITION,
 *                                 _TRANSPORT, or a number)
 *   clear API                     drop the errors still queued for API
 *   quit                          stop the cluster and exit
 *
 * SIGTERM and SIGINT stop it too.  Data lives in memory only.  Limits of the
 * librdkafka 2.0.2 mock, which tests must not claim to cover: no
 * read_committed filtering (messages of aborted or open transactions are
 * delivered), send_offsets_to_transaction commits nothing, no zombie
 * fencing, no transaction timeout, no CreateTopics API (hence the topic
 * command), partitions keep only about 5 MB (older data is dropped).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "stop_signal.h"

#define MAX_CLIENTS 16
#define LINE_MAX_LEN 1024



static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "mockkafka: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* Write text to path through a temporary file and rename(2). */
static void
write_file_atomically(const char *path, const char *text)
{
    char tmp[4096];
    FILE *f;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int) sizeof(tmp))
        die("path too long: %s", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        die("cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "%s\n", text);
    if (fclose(f) != 0)
        die("cannot write %s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        die("cannot rename %s to %s: %s", tmp, path, strerror(errno));
}

/* Kafka protocol API keys by the names the control channel accepts. */
static const struct
{
    const char *name;
    int         key;
} api_names[] = {
    {"produce", 0}, {"fetch", 1}, {"listoffsets", 2}, {"metadata", 3},
    {"offsetcommit", 8}, {"offsetfetch", 9}, {"findcoordinator", 10},
    {"joingroup", 11}, {"heartbeat", 12}, {"leavegroup", 13},
    {"syncgroup", 14}, {"apiversions", 18}, {"initproducerid", 22},
    {"addpartitionstotxn", 24}, {"addoffsetstotxn", 25}, {"endtxn", 26},
    {"txnoffsetcommit", 28},
};

static int
parse_int(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

static int
parse_api(const char *s, int16_t *key)
{
    long v;

    for (size_t i = 0; i < sizeof(api_names) / sizeof(api_names[0]); i++)
        if (strcasecmp(s, api_names[i].name) == 0)
        {
            *key = (int16_t) api_names[i].key;
            return 1;
        }
    if (!parse_int(s, 0, 32767, &v))
        return 0;
    *key = (int16_t) v;
    return 1;
}

static int
parse_error(const char *s, rd_kafka_resp_err_t *err)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    long v;

    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++)
        if (descs[i].name != NULL && strcasecmp(s, descs[i].name) == 0)
        {
            *err = descs[i].code;
            return 1;
        }
    if (!parse_int(s, -200, 32767, &v))
        return 0;
    *err = (rd_kafka_resp_err_t) v;
    return 1;
}

/*
 * Run one command; write the reply (without newline) to reply.  Returns 0
 * when the program should stop.
 */
static int
run_command(rd_kafka_mock_cluster_t *mc, int nbrokers, char *line,
            char *reply, size_t replylen)
{
    char *argv[6];
    int argc = 0;
    char *save = NULL;
    long broker = 0;
    long n;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    for (char *tok = strtok_r(line, " \t\r", &save); tok != NULL && argc < 6;
         tok = strtok_r(NULL, " \t\r", &save))
        argv[argc++] = tok;
    if (argc == 0)
    {
        snprintf(reply, replylen, "error: empty command");
        return 1;
    }
    if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0 ||
         strcmp(argv[0], "rtt") == 0) &&
        (argc < 2 || !parse_int(argv[1], 1, nbrokers, &broker)))
    {
        snprintf(reply, replylen, "error: broker must be a number from 1 to %d",
                 nbrokers);
        return 1;
    }

    if (strcmp(argv[0], "ping") == 0 && argc == 1)
        snprintf(reply, replylen, "ok");
    else if (strcmp(argv[0], "bootstrap") == 0 && argc == 1)
        snprintf(reply, replylen, "ok %s", rd_kafka_mock_cluster_bootstraps(mc));
    else if (strcmp(argv[0], "quit") == 0 && argc == 1)
    {
        snprintf(reply, replylen, "ok");
        return 0;
    }
    else if (strcmp(argv[0], "topic") == 0 && argc == 3)
    {
        if (!parse_int(argv[2], 1, 10000, &n))
            snprintf(reply, replylen, "error: partitions must be from 1 to 10000");
        else if ((err = rd_kafka_mock_topic_create(mc, argv[1], (int) n, 1)) != 0)
            snprintf(reply, replylen, "error: %s", rd_kafka_err2str(err));
        else
            snprintf(reply, replylen, "ok");
    }
    else if (strcmp(argv[0], "down") == 0 && argc == 2)
    {
        err = rd_kafka_mock_broker_set_down(mc, (int32_t) broker);
        snprintf(reply, replylen, err ? "error: %s" : "ok", rd_kafka_err2str(err));
    }
    else if (strcmp(argv[0], "up") == 0 && argc == 2)
    {
        err = rd_kafka_mock_broker_set_up(mc, (int32_t) broker);
        snprintf(reply, replylen, err ? "error: %s" : "ok", rd_kafka_err2str(err));
    }
    else if (strcmp(argv[0], "rtt") == 0 && argc == 3)
    {
        if (!parse_int(argv[2], 0, 600000, &n))
            snprintf(reply, replylen, "error: rtt must be from 0 to 600000 ms");
        else
        {
            err = rd_kafka_mock_broker_set_rtt(mc, (int32_t) broker, (int) n);
            snprintf(reply, replylen, err ? "error: %s" : "ok", rd_kafka_err2str(err));
        }
    }
    else if (strcmp(argv[0], "error") == 0 && (argc == 3 || argc == 4))
    {
        int16_t api;
        long count = 1;

        if (!parse_api(argv[1], &api))
            snprintf(reply, replylen, "error: unknown API %s", argv[1]);
        else if (!parse_error(argv[2], &err))
            snprintf(reply, replylen, "error: unknown error %s", argv[2]);
        else if (argc == 4 && !parse_int(argv[3], 1, 1000, &count))
            snprintf(reply, replylen, "error: count must be from 1 to 1000");
        else
        {
            rd_kafka_resp_err_t errs[1000];

            for (long i = 0; i < count; i++)
                errs[i] = err;
            rd_kafka_mock_push_request_errors_array(mc, api, (size_t) count, errs);
            snprintf(reply, replylen, "ok");
        }
    }
    else if (strcmp(argv[0], "clear") == 0 && argc == 2)
    {
        int16_t api;

        if (!parse_api(argv[1], &api))
            snprintf(reply, replylen, "error: unknown API %s", argv[1]);
        else
        {
            rd_kafka_mock_clear_request_errors(mc, api);
            snprintf(reply, replylen, "ok");
        }
    }
    else
        snprintf(reply, replylen, "error: unknown command or wrong arguments: %s",
                 argv[0]);
    return 1;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: mockkafka [--brokers N] [--topic NAME:PARTITIONS]...\n"
            "                 --bootstrap-file PATH --control-file PATH\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    int nbrokers = 1;
    const char *bootstrap_file = NULL;
    const char *control_file = NULL;
    const char *topics[64];
    int ntopics = 0;
    char errstr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    int lfd;
    struct sockaddr_in addr;
    socklen_t alen = sizeof(addr);
    char portstr[16];
    struct pollfd fds[1 + MAX_CLIENTS];
    char bufs[MAX_CLIENTS][LINE_MAX_LEN];
    size_t buflen[MAX_CLIENTS];
    int nclients = 0;
    int running = 1;

    for (int i = 1; i < argc; i++)
    {
        long v;

        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
        {
            if (!parse_int(argv[++i], 1, 9, &v))
                die("--brokers must be from 1 to 9");
            nbrokers = (int) v;
        }
        else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
        {
            if (ntopics == 64)
                die("at most 64 --topic options");
            topics[ntopics++] = argv[++i];
        }
        else if (strcmp(argv[i], "--bootstrap-file") == 0 && i + 1 < argc)
            bootstrap_file = argv[++i];
        else if (strcmp(argv[i], "--control-file") == 0 && i + 1 < argc)
            control_file = argv[++i];
        else
            usage();
    }
    if (bootstrap_file == NULL || control_file == NULL)
        usage();

    install_stop_signals();
    signal(SIGPIPE, SIG_IGN);

    /* the cluster needs a client handle for its bookkeeping */
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        die("%s", errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL)
        die("cannot create the client handle: %s", errstr);
    mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (mc == NULL)
        die("cannot create the mock cluster");

    for (int t = 0; t < ntopics; t++)
    {
        char name[256];
        const char *colon = strrchr(topics[t], ':');
        long parts;
        rd_kafka_resp_err_t err;

        if (colon == NULL || colon == topics[t] || colon - topics[t] >= (long) sizeof(name) ||
            !parse_int(colon + 1, 1, 10000, &parts))
            die("--topic wants NAME:PARTITIONS, got %s", topics[t]);
        memcpy(name, topics[t], colon - topics[t]);
        name[colon - topics[t]] = '\0';
        err = rd_kafka_mock_topic_create(mc, name, (int) parts, 1);
        if (err)
            die("cannot create topic %s: %s", name, rd_kafka_err2str(err));
    }

    lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0)
        die("socket: %s", strerror(errno));
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) != 0 ||
        listen(lfd, 8) != 0 ||
        getsockname(lfd, (struct sockaddr *) &addr, &alen) != 0)
        die("control socket: %s", strerror(errno));
    snprintf(portstr, sizeof(portstr), "%d", ntohs(addr.sin_port));

    write_file_atomically(bootstrap_file, rd_kafka_mock_cluster_bootstraps(mc));
    write_file_atomically(control_file, portstr);
    fprintf(stderr, "mockkafka: %d broker(s) at %s, control port %s\n", nbrokers,
            rd_kafka_mock_cluster_bootstraps(mc), portstr);

    fds[0].fd = lfd;
    fds[0].events = POLLIN;
    while (running && !stop_requested)
    {
        int rc = poll(fds, 1 + nclients, 1000);

        if (rc < 0)
        {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        if (fds[0].revents & POLLIN)
        {
            int cfd = accept(lfd, NULL, NULL);

            if (cfd >= 0 && nclients < MAX_CLIENTS)
            {
                fds[1 + nclients].fd = cfd;
                fds[1 + nclients].events = POLLIN;
                fds[1 + nclients].revents = 0;
                buflen[nclients] = 0;
                nclients++;
            }
            else if (cfd >= 0)
                close(cfd);
        }
        for (int c = 0; c < nclients && running; c++)
        {
            char *nl;
            ssize_t got;

            if (!(fds[1 + c].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = read(fds[1 + c].fd, bufs[c] + buflen[c],
                       LINE_MAX_LEN - 1 - buflen[c]);
            if (got <= 0)
            {
                close(fds[1 + c].fd);
                fds[1 + c] = fds[nclients];
                memcpy(bufs[c], bufs[nclients - 1], buflen[nclients - 1]);
                buflen[c] = buflen[nclients - 1];
                nclients--;
                c--;
                continue;
            }
            buflen[c] += (size_t) got;
            bufs[c][buflen[c]] = '\0';
            while ((nl = strchr(bufs[c], '\n')) != NULL)
            {
                char reply[LINE_MAX_LEN + 64];
                size_t used = (size_t) (nl - bufs[c]) + 1;

                *nl = '\0';
                running = run_command(mc, nbrokers, bufs[c], reply, sizeof(reply));
                strcat(reply, "\n");
                if (write(fds[1 + c].fd, reply, strlen(reply)) < 0)
                    fprintf(stderr, "mockkafka: reply lost: %s\n", strerror(errno));
                memmove(bufs[c], bufs[c] + used, buflen[c] - used + 1);
                buflen[c] -= used;
                if (!running)
                    break;
            }
            if (buflen[c] == LINE_MAX_LEN - 1)
            {
                const char *msg = "error: line too long\n";

                if (write(fds[1 + c].fd, msg, strlen(msg)) < 0)
                    fprintf(stderr, "mockkafka: reply lost: %s\n", strerror(errno));
                buflen[c] = 0;
            }
        }
    }

    for (int c = 0; c < nclients; c++)
        close(fds[1 + c].fd);
    close(lfd);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    fprintf(stderr, "mockkafka: stopped\n");
    return 0;
}
