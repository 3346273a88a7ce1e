/*-------------------------------------------------------------------------
 *
 * kafka_out.c
 *	  The Kafka glue of the output side (see kafka_out.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include <librdkafka/rdkafka.h>

#include "kafka_conf.h"
#include "kafka_out.h"

struct AdstreamKafkaProducer
{
	rd_kafka_t *rk;
	char		last_error[512];	/* from the error callback; "" if none */
};

/* Called from rd_kafka_poll() on our thread; only records the message. */
static void
on_producer_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	AdstreamKafkaProducer *p = (AdstreamKafkaProducer *) opaque;

	(void) rk;
	snprintf(p->last_error, sizeof(p->last_error), "%s: %s",
			 rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
}

AdstreamKafkaProducer *
adstream_kafka_producer_new(const char *bootstrap, const char *transactional_id,
							const char *const *names, const char *const *values,
							int nprops, char *err, size_t errlen)
{
	AdstreamKafkaProducer *p = calloc(1, sizeof(AdstreamKafkaProducer));
	rd_kafka_conf_t *conf;
	const char *const fixed[][2] = {
		{"transactional.id", transactional_id},
		{"enable.idempotence", "true"},
		{"acks", "all"},
		{"partitioner", "murmur2_random"},
	};

	if (p == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	conf = rd_kafka_conf_new();
	if (!adstream_kafka_configure(conf, bootstrap, names, values, nprops, fixed,
								  lengthof(fixed), err, errlen))
	{
		rd_kafka_conf_destroy(conf);
		free(p);
		return NULL;
	}
	rd_kafka_conf_set_error_cb(conf, on_producer_error);
	rd_kafka_conf_set_opaque(conf, p);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
	if (p->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		free(p);
		return NULL;
	}
	return p;
}

/* Classify a transactional API error and free it. */
static AdstreamTxnResult
txn_result(rd_kafka_error_t *error, char *err, size_t errlen)
{
	AdstreamTxnResult r;

	if (error == NULL)
	{
		err[0] = '\0';
		return ADSTREAM_TXN_OK;
	}
	snprintf(err, errlen, "%s: %s", rd_kafka_error_name(error), rd_kafka_error_string(error));
	if (rd_kafka_error_is_fatal(error))
		r = ADSTREAM_TXN_FATAL;
	else if (rd_kafka_error_txn_requires_abort(error))
		r = ADSTREAM_TXN_ABORT;
	else if (rd_kafka_error_is_retriable(error))
		r = ADSTREAM_TXN_RETRY;
	else
	{
		/* neither retriable nor abortable: nothing sane is left to try */
		r = ADSTREAM_TXN_FATAL;
	}
	rd_kafka_error_destroy(error);
	return r;
}

AdstreamTxnResult
adstream_kafka_txn_init(AdstreamKafkaProducer *p, int timeout_ms, char *err, size_t errlen)
{
	return txn_result(rd_kafka_init_transactions(p->rk, timeout_ms), err, errlen);
}

AdstreamTxnResult
adstream_kafka_txn_begin(AdstreamKafkaProducer *p, char *err, size_t errlen)
{
	return txn_result(rd_kafka_begin_transaction(p->rk), err, errlen);
}

AdstreamTxnResult
adstream_kafka_txn_send(AdstreamKafkaProducer *p, const char *topic, int32_t partition,
						const char *key, size_t keylen, const char *value, size_t len,
						const AdstreamKafkaHeader *headers, int nheaders,
						int timeout_ms, char *err, size_t errlen)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;)
	{
		rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nheaders);
		rd_kafka_resp_err_t e;
		struct timespec now;

		for (int i = 0; i < nheaders; i++)
			rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value, -1);
		e = rd_kafka_producev(p->rk,
							  RD_KAFKA_V_TOPIC(topic),
							  RD_KAFKA_V_PARTITION(partition),
							  RD_KAFKA_V_KEY(key, keylen),
							  RD_KAFKA_V_VALUE((void *) value, len),
							  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
							  RD_KAFKA_V_HEADERS(hdrs),
							  RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			/* serve delivery reports now and then; errors surface at commit */
			rd_kafka_poll(p->rk, 0);
			err[0] = '\0';
			return ADSTREAM_TXN_OK;
		}
		rd_kafka_headers_destroy(hdrs);
		snprintf(err, errlen, "%s: %s", rd_kafka_err2name(e), rd_kafka_err2str(e));
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return e == RD_KAFKA_RESP_ERR__FATAL ? ADSTREAM_TXN_FATAL : ADSTREAM_TXN_ABORT;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >= timeout_ms)
			return ADSTREAM_TXN_RETRY;
		rd_kafka_poll(p->rk, 10);
	}
}

bool
adstream_kafka_producer_warm(AdstreamKafkaProducer *p, const char *topic, int timeout_ms,
							 char *err, size_t errlen)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e;

	if (rkt == NULL)
	{
		snprintf(err, errlen, "%s", rd_kafka_err2str(rd_kafka_last_error()));
		return false;
	}
	e = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
	if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err)
		e = md->topics[0].err;
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(err, errlen, "topic \"%s\": %s", topic, rd_kafka_err2str(e));
		return false;
	}
	return true;
}

void
adstream_kafka_txn_flush(AdstreamKafkaProducer *p, int timeout_ms)
{
	(void) rd_kafka_flush(p->rk, timeout_ms);
}

AdstreamTxnResult
adstream_kafka_txn_commit(AdstreamKafkaProducer *p, int timeout_ms, char *err, size_t errlen)
{
	return txn_result(rd_kafka_commit_transaction(p->rk, timeout_ms), err, errlen);
}

AdstreamTxnResult
adstream_kafka_txn_abort(AdstreamKafkaProducer *p, int timeout_ms, char *err, size_t errlen)
{
	return txn_result(rd_kafka_abort_transaction(p->rk, timeout_ms), err, errlen);
}

const char *
adstream_kafka_producer_error(AdstreamKafkaProducer *p)
{
	rd_kafka_poll(p->rk, 0);
	return p->last_error;
}

/* Milliseconds left until deadline (CLOCK_MONOTONIC ms), at least 0. */
static int
ms_left(int64_t deadline)
{
	struct timespec now;
	int64_t		t;

	clock_gettime(CLOCK_MONOTONIC, &now);
	t = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
	return t >= deadline ? 0 : (int) (deadline - t);
}

/*
 * Scan offsets [start, end) of partition 0 for the last record with key;
 * stops at the end of the log (read_committed: its stable end).  Returns 1
 * (found, *value set), 0, or -1 on error or timeout.
 */
static int
scan_window(rd_kafka_t *rk, const char *topic, const char *key, int64_t start,
			int64_t end, int64_t deadline, char **value, char *err, size_t errlen)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
	size_t		keylen = strlen(key);
	int64_t		found_at = -1;
	int			rc = 0;

	rd_kafka_topic_partition_list_add(list, topic, 0)->offset = start;
	if (rd_kafka_assign(rk, list) != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(err, errlen, "could not assign the progress partition");
		rd_kafka_topic_partition_list_destroy(list);
		return -1;
	}
	rd_kafka_topic_partition_list_destroy(list);
	for (;;)
	{
		rd_kafka_message_t *m;
		bool		done = false;

		if (ms_left(deadline) == 0)
		{
			snprintf(err, errlen, "timed out reading the progress topic \"%s\"", topic);
			rc = -1;
			break;
		}
		m = rd_kafka_consumer_poll(rk, Min(ms_left(deadline), 100));
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
			done = true;
		else if (m->err)
		{
			snprintf(err, errlen, "reading the progress topic \"%s\": %s", topic,
					 rd_kafka_message_errstr(m));
			rc = -1;
			done = true;
		}
		else
		{
			if (m->offset < end && m->key_len == keylen &&
				memcmp(m->key, key, keylen) == 0 && m->offset > found_at)
			{
				free(*value);
				*value = malloc(m->len + 1);
				if (*value == NULL)
				{
					snprintf(err, errlen, "out of memory");
					rc = -1;
					done = true;
				}
				else
				{
					memcpy(*value, m->payload, m->len);
					(*value)[m->len] = '\0';
					found_at = m->offset;
					rc = 1;
				}
			}
			if (m->offset >= end - 1)
				done = true;
		}
		rd_kafka_message_destroy(m);
		if (done)
			break;
	}
	rd_kafka_assign(rk, NULL);
	return rc;
}

int
adstream_kafka_read_progress(const char *bootstrap, const char *const *names,
							 const char *const *values, int nprops, const char *topic,
							 const char *key, int timeout_ms, char **value,
							 char *err, size_t errlen)
{
	static const char *const fixed[][2] = {
		{"group.id", "adstream-progress-reader"},
		{"isolation.level", "read_committed"},
		{"enable.auto.commit", "false"},
		{"enable.auto.offset.store", "false"},
		{"enable.partition.eof", "true"},
		{"auto.offset.reset", "error"},
	};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	struct timespec now;
	int64_t		deadline;
	int64_t		low,
				high,
				start,
				end;
	int64_t		window = 1000;
	rd_kafka_resp_err_t e;
	int			rc;

	*value = NULL;
	clock_gettime(CLOCK_MONOTONIC, &now);
	deadline = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
	if (!adstream_kafka_configure(conf, bootstrap, names, values, nprops, fixed,
								  lengthof(fixed), err, errlen))
	{
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		return -1;
	}
	rd_kafka_poll_set_consumer(rk);
	e = rd_kafka_query_watermark_offsets(rk, topic, 0, &low, &high, Max(ms_left(deadline), 1));
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(err, errlen, "could not read the end of the progress topic \"%s\": %s",
				 topic, rd_kafka_err2str(e));
		rd_kafka_destroy(rk);
		return -1;
	}
	rc = 0;
	end = high;
	while (end > low)
	{
		start = Max(low, end - window);
		rc = scan_window(rk, topic, key, start, end, deadline, value, err, errlen);
		if (rc != 0)
			break;
		end = start;
		window *= 8;
	}
	rd_kafka_destroy(rk);
	return rc;
}
