/*-------------------------------------------------------------------------
 *
 * kafka.c
 *	  The Kafka glue (see kafka.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kafka.h"
#include "kafka_conf.h"

/* Properties adstream sets itself; exactly-once depends on them. */
static const char *const reserved_consumer_properties[] = {
	"bootstrap.servers", "metadata.broker.list", "group.id",
	"isolation.level", "enable.auto.commit", "enable.auto.offset.store",
	"enable.partition.eof", "auto.offset.reset",
};
static const char *const reserved_producer_properties[] = {
	"bootstrap.servers", "metadata.broker.list", "transactional.id",
	"enable.idempotence", "acks", "request.required.acks", "partitioner",
	"enable.gapless.guarantee", "max.in.flight.requests.per.connection",
	"max.in.flight",
	/* the sink's progress reader is a consumer */
	"isolation.level", "group.id", "enable.partition.eof",
	"enable.auto.commit", "auto.offset.reset",
};

bool
adstream_kafka_check_property(const char *name, const char *value, bool for_producer,
							  char *err, size_t errlen)
{
	const char *const *reserved = for_producer ? reserved_producer_properties :
		reserved_consumer_properties;
	int			nreserved = for_producer ? lengthof(reserved_producer_properties) :
		lengthof(reserved_consumer_properties);
	rd_kafka_conf_t *conf;
	rd_kafka_conf_res_t res;

	for (int i = 0; i < nreserved; i++)
		if (strcmp(name, reserved[i]) == 0)
		{
			snprintf(err, errlen, "\"%s\" is set by adstream", name);
			return false;
		}
	conf = rd_kafka_conf_new();
	res = rd_kafka_conf_set(conf, name, value, err, errlen);
	rd_kafka_conf_destroy(conf);
	return res == RD_KAFKA_CONF_OK;
}

bool
adstream_kafka_configure(rd_kafka_conf_t *conf, const char *bootstrap,
						 const char *const *names, const char *const *values, int nprops,
						 const char *const (*fixed)[2], int nfixed, char *err, size_t errlen)
{
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, errlen) != RD_KAFKA_CONF_OK)
		return false;
	for (int i = 0; i < nprops; i++)
		if (rd_kafka_conf_set(conf, names[i], values[i], err, errlen) != RD_KAFKA_CONF_OK)
			return false;
	for (int i = 0; i < nfixed; i++)
		if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], err, errlen) != RD_KAFKA_CONF_OK)
			return false;
	return true;
}

struct AdstreamKafkaConsumer
{
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;	/* the consumer queue */
	int			pipe_fds[2];	/* librdkafka writes to [1] when messages wait */
	char		last_error[512];	/* from the error callback; "" if none */
};

/*
 * librdkafka calls this from the thread that polls, i.e. ours, while it
 * serves its queue; it only records the message.
 */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	AdstreamKafkaConsumer *c = (AdstreamKafkaConsumer *) opaque;

	(void) rk;
	snprintf(c->last_error, sizeof(c->last_error), "%s: %s",
			 rd_kafka_err2name((rd_kafka_resp_err_t) err), reason);
}

AdstreamKafkaConsumer *
adstream_kafka_consumer_new(const char *bootstrap, const char *group,
							const char *const *names, const char *const *values,
							int nprops, char *err, size_t errlen)
{
	AdstreamKafkaConsumer *c = calloc(1, sizeof(AdstreamKafkaConsumer));
	rd_kafka_conf_t *conf;
	const char *const fixed[][2] = {
		{"group.id", group},
		{"isolation.level", "read_committed"},
		{"enable.auto.commit", "false"},
		{"enable.auto.offset.store", "false"},
		{"enable.partition.eof", "false"},
		/* a stored offset no longer in the log is an error, not a jump */
		{"auto.offset.reset", "error"},
	};

	if (c == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->pipe_fds[0] = c->pipe_fds[1] = -1;
	conf = rd_kafka_conf_new();
	if (!adstream_kafka_configure(conf, bootstrap, names, values, nprops, fixed,
								  lengthof(fixed), err, errlen))
		goto fail_conf;
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_opaque(conf, c);

	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
	if (c->rk == NULL)
		goto fail_conf;
	/* conf now belongs to rk */
	rd_kafka_poll_set_consumer(c->rk);
	c->queue = rd_kafka_queue_get_consumer(c->rk);
	if (pipe(c->pipe_fds) != 0 ||
		fcntl(c->pipe_fds[0], F_SETFL, O_NONBLOCK) != 0 ||
		fcntl(c->pipe_fds[1], F_SETFL, O_NONBLOCK) != 0)
	{
		snprintf(err, errlen, "could not create a pipe: %s", strerror(errno));
		adstream_kafka_close(c);
		return NULL;
	}
	rd_kafka_queue_io_event_enable(c->queue, c->pipe_fds[1], "1", 1);
	return c;

fail_conf:
	rd_kafka_conf_destroy(conf);
	free(c);
	return NULL;
}

int
adstream_kafka_wait_fd(AdstreamKafkaConsumer *c)
{
	return c->pipe_fds[0];
}

int
adstream_kafka_partition_count(AdstreamKafkaConsumer *c, const char *topic,
							   int timeout_ms, char *err, size_t errlen)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(c->rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e;
	int			n = -1;

	if (rkt == NULL)
	{
		snprintf(err, errlen, "could not open topic %s", topic);
		return -1;
	}
	e = rd_kafka_metadata(c->rk, 0, rkt, &md, timeout_ms);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(err, errlen, "metadata of topic %s: %s", topic, rd_kafka_err2str(e));
	else if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
		snprintf(err, errlen, "topic %s: %s", topic,
				 md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not found");
	else
		n = md->topics[0].partition_cnt;
	if (md != NULL)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

bool
adstream_kafka_assign(AdstreamKafkaConsumer *c, const char *topic,
					  const int32_t *parts, const int64_t *offsets, int n,
					  char *err, size_t errlen)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
	rd_kafka_resp_err_t e;

	for (int i = 0; i < n; i++)
	{
		rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(list, topic, parts[i]);

		tp->offset = offsets[i] == ADSTREAM_KAFKA_EARLIEST ? RD_KAFKA_OFFSET_BEGINNING :
			offsets[i] == ADSTREAM_KAFKA_LATEST ? RD_KAFKA_OFFSET_END : offsets[i];
	}
	e = rd_kafka_assign(c->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(err, errlen, "could not assign partitions of %s: %s", topic,
				 rd_kafka_err2str(e));
		return false;
	}
	return true;
}

int
adstream_kafka_poll(AdstreamKafkaConsumer *c, AdstreamKafkaMessage *out, int max,
					size_t max_bytes, char *err, size_t errlen)
{
	rd_kafka_message_t *buf[1024];
	int			got = 0;
	size_t		bytes = 0;
	char		drain[64];

	err[0] = '\0';
	/* empty the wake-up pipe first, so no wake-up is lost */
	while (read(c->pipe_fds[0], drain, sizeof(drain)) > 0)
		;
	while (got < max && bytes < max_bytes)
	{
		/* small steps near the byte limit, so it is not overshot by much */
		size_t		step = max_bytes - bytes < 16 * 1024 * 1024 ? 16 : lengthof(buf);
		ssize_t		n = rd_kafka_consume_batch_queue(c->queue, 0, buf,
													 Min(Min(max - got, lengthof(buf)), step));

		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
		{
			rd_kafka_message_t *m = buf[i];
			rd_kafka_timestamp_type_t tstype;
			int64_t		ts;

			if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
			{
				bool		fatal = m->rkt != NULL && m->partition >= 0;

				if (fatal)
					snprintf(err, errlen, "partition %d at offset %lld: %s: %s",
							 (int) m->partition, (long long) m->offset,
							 rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
				else
					snprintf(err, errlen, "%s: %s", rd_kafka_err2name(m->err),
							 rd_kafka_message_errstr(m));
				rd_kafka_message_destroy(m);
				if (fatal)
				{
					/* nothing after this point may be applied */
					for (ssize_t j = i + 1; j < n; j++)
						rd_kafka_message_destroy(buf[j]);
					adstream_kafka_release(out, got);
					return -1;
				}
				continue;
			}
			ts = rd_kafka_message_timestamp(m, &tstype);
			out[got].partition = m->partition;
			out[got].offset = m->offset;
			out[got].has_timestamp = tstype != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts >= 0;
			out[got].timestamp_ms = ts;
			out[got].data = (const char *) m->payload;
			out[got].len = m->len;
			out[got].handle = m;
			bytes += m->len;
			got++;
		}
	}
	if (c->last_error[0] != '\0')
	{
		if (err[0] == '\0')
			snprintf(err, errlen, "%s", c->last_error);
		c->last_error[0] = '\0';
	}
	return got;
}

int64_t
adstream_kafka_query_end_offset(AdstreamKafkaConsumer *c, const char *topic,
								int32_t partition, int timeout_ms)
{
	int64_t		lo,
				hi;

	if (rd_kafka_query_watermark_offsets(c->rk, topic, partition, &lo, &hi,
										 timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return -1;
	return hi;
}

void
adstream_kafka_release(AdstreamKafkaMessage *msgs, int n)
{
	for (int i = 0; i < n; i++)
		rd_kafka_message_destroy((rd_kafka_message_t *) msgs[i].handle);
}

void
adstream_kafka_commit_async(AdstreamKafkaConsumer *c, const char *topic,
							const int32_t *parts, const int64_t *next, int n)
{
	rd_kafka_topic_partition_list_t *list;

	if (n == 0)
		return;
	list = rd_kafka_topic_partition_list_new(n);
	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, topic, parts[i])->offset = next[i];
	(void) rd_kafka_commit(c->rk, list, 1);
	rd_kafka_topic_partition_list_destroy(list);
}

int64_t
adstream_kafka_end_offset(AdstreamKafkaConsumer *c, const char *topic,
						  int32_t partition)
{
	int64_t		lo,
				hi;

	/* cached from the latest fetch responses: never waits for the broker */
	if (rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi) !=
		RD_KAFKA_RESP_ERR_NO_ERROR || hi < 0)
		return -1;
	return hi;
}

void
adstream_kafka_close(AdstreamKafkaConsumer *c)
{
	if (c == NULL)
		return;
	if (c->queue != NULL)
	{
		rd_kafka_queue_io_event_enable(c->queue, -1, NULL, 0);
		rd_kafka_queue_destroy(c->queue);
	}
	/* adstream never joins the group, so there is nothing to leave */
	if (c->rk != NULL)
		rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (c->pipe_fds[0] >= 0)
		close(c->pipe_fds[0]);
	if (c->pipe_fds[1] >= 0)
		close(c->pipe_fds[1]);
	free(c);
}
