/*-------------------------------------------------------------------------
 *
 * consumer.c
 *	  The consumer worker: one per running pipeline.  It reads the
 *	  pipeline's topic with a read_committed consumer and applies batches
 *	  through the processing core, one transaction per batch.
 *
 * Positions come from adstream.consumed_offset, never from Kafka: at start
 * (and whenever the topic gains partitions) every partition is assigned at
 * its stored next offset, or at the pipeline's start_from when none is
 * stored.  The core stores the new offsets in the batch's transaction, so
 * after a crash at any instant the worker resumes exactly after the last
 * committed batch.  After the commit it also tells the Kafka group the
 * offsets, for lag tools only.
 *
 * A batch closes at batch_size messages, after batch_time since its first
 * message, or at BATCH_MAX_BYTES of payload.  Between batches the worker
 * waits on its latch and on librdkafka's queue file descriptor; it never
 * sleeps.  Any database error ends the worker (the launcher restarts it
 * with backoff); nothing of the failed batch is kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "adstream.h"
#include "core.h"
#include "kafka.h"
#include "source.h"
#include "status.h"
#include "workers.h"

/* Payload bytes that close a batch early (dead letters travel as one array). */
#define BATCH_MAX_BYTES (256 * 1024 * 1024)
/* How often the topic's partition count is checked. */
#define PARTITION_CHECK_MS 10000
/* Kafka errors are logged at most this often (the same one once). */
#define ERROR_LOG_INTERVAL_MS 10000

typedef struct Consumer
{
	AdstreamSource src;
	const char *label;			/* the pipeline's name (and region) for logs */
	int			index;			/* this worker takes partitions p with */
	int			count;			/* p % count == index */
	AdstreamKafkaConsumer *kafka;
	int			nparts;
	AdstreamKafkaMessage *buf;	/* the batch being collected */
	int			n;
	size_t		bytes;
	TimestampTz batch_start;
	TimestampTz last_partition_check;
	char		last_logged_error[512];
	TimestampTz last_error_log;
	AdstreamWorkerStatus *status;	/* NULL if shared memory is missing */
	TimestampTz last_end_offsets;
} Consumer;

/*
 * Whether partition p is this worker's: p % count == index, except that a
 * union pipeline's worker reads every partition of its own source.
 */
static bool
mine(const Consumer *c, int p)
{
	return c->src.source[0] != '\0' || p % c->count == c->index;
}

/* Log a Kafka error, but not the same one over and over. */
static void
note_kafka_error(Consumer *c, const char *err)
{
	TimestampTz now = GetCurrentTimestamp();

	adstream_status_error(c->status, err);
	if (strcmp(err, c->last_logged_error) == 0 &&
		!TimestampDifferenceExceeds(c->last_error_log, now, ERROR_LOG_INTERVAL_MS))
		return;
	ereport(LOG,
			(errmsg("adstream: pipeline \"%s\": Kafka: %s", c->label, err)));
	strlcpy(c->last_logged_error, err, sizeof(c->last_logged_error));
	c->last_error_log = now;
}

/*
 * Assign this worker's partitions of the topic at their stored offsets.
 * A partition without one starts at the beginning, except when the pipeline
 * starts from the latest messages and none of this worker's partitions has
 * an offset yet: then the partitions' current ends are resolved once and
 * stored, so that a restart does not move them.  Returns false if the
 * broker could not be asked (the caller retries).
 */
static bool
assign_partitions(Consumer *c)
{
	char		err[512];
	int			nparts;
	int64	   *stored;
	int32_t    *parts;
	int64_t    *offsets;
	int			nmine = 0;

	bool		initialized = false;

	nparts = adstream_kafka_partition_count(c->kafka, c->src.topic, 2000, err, sizeof(err));
	c->last_partition_check = GetCurrentTimestamp();
	if (nparts <= 0)
	{
		note_kafka_error(c, err);
		return false;
	}
	if (nparts == c->nparts)
		return true;

	stored = palloc(sizeof(int64) * nparts);
	parts = palloc(sizeof(int32_t) * nparts);
	offsets = palloc(sizeof(int64_t) * nparts);
	adstream_xact_begin(NULL);
	adstream_load_offsets(c->src.pipeline_id, c->src.source, c->src.topic, stored, nparts);
	adstream_xact_end();
	for (int p = 0; p < nparts; p++)
		if (mine(c, p) && stored[p] >= 0)
			initialized = true;
	for (int p = 0; p < nparts; p++)
	{
		if (!mine(c, p))
			continue;
		parts[nmine] = p;
		offsets[nmine] = stored[p];
		if (stored[p] < 0 && (initialized || !c->src.start_latest))
			offsets[nmine] = ADSTREAM_KAFKA_EARLIEST;
		else if (stored[p] < 0)
		{
			offsets[nmine] = adstream_kafka_query_end_offset(c->kafka, c->src.topic, p, 2000);
			if (offsets[nmine] < 0)
			{
				note_kafka_error(c, "could not read the end offsets to start from the latest messages");
				return false;
			}
		}
		nmine++;
	}
	if (c->src.start_latest && !initialized && nmine > 0)
	{
		adstream_xact_begin(NULL);
		adstream_store_start_offsets(c->src.pipeline_id, c->src.source, c->src.topic,
									 parts, offsets, nmine);
		adstream_xact_end();
	}
	if (!adstream_kafka_assign(c->kafka, c->src.topic, parts, offsets, nmine,
							   err, sizeof(err)))
		ereport(ERROR, (errmsg("adstream: pipeline \"%s\": %s", c->label, err)));
	ereport(LOG,
			(errmsg("adstream: pipeline \"%s\", worker %d/%d, consumes %d of the %d partition(s) of topic \"%s\"",
					c->label, c->index + 1, c->count, nmine, nparts, c->src.topic)));
	c->nparts = nparts;
	adstream_status_state(c->status, "consuming");
	pfree(stored);
	pfree(parts);
	pfree(offsets);
	return true;
}

/* Publish the partitions' end offsets (as last seen) for the lag. */
static void
report_end_offsets(Consumer *c)
{
	int64	   *ends = palloc(sizeof(int64) * c->nparts);

	for (int p = 0; p < c->nparts; p++)
		ends[p] = !mine(c, p) ? -2 :
			adstream_kafka_end_offset(c->kafka, c->src.topic, p);
	adstream_status_end_offsets(c->status, c->nparts, ends);
	c->last_end_offsets = GetCurrentTimestamp();
	pfree(ends);
}

/* Kafka milliseconds to a timestamp, if within the years 1970..9999. */
static bool
kafka_time(int64 ms, TimestampTz *out)
{
	if (ms < 0 || ms > INT64CONST(253402300799999))
		return false;
	*out = ms * 1000 -
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC);
	return true;
}

/* Apply the collected batch in one transaction, then release it. */
static void
apply_batch(Consumer *c)
{
	AdstreamMessage *msgs = palloc0(sizeof(AdstreamMessage) * c->n);
	AdstreamPipeline pl;
	AdstreamBatchResult res;
	int32_t    *parts = palloc(sizeof(int32_t) * c->nparts);
	int64_t    *next = palloc(sizeof(int64_t) * c->nparts);
	int			nnext = 0;

	for (int i = 0; i < c->n; i++)
	{
		AdstreamKafkaMessage *k = &c->buf[i];

		msgs[i].data = k->data;
		msgs[i].len = k->data ? (int) k->len : 0;
		msgs[i].topic = c->src.topic;
		msgs[i].partition = k->partition;
		msgs[i].offset = k->offset;
		msgs[i].has_kafka_ts = k->has_timestamp && kafka_time(k->timestamp_ms, &msgs[i].kafka_ts);
	}

	adstream_status_state(c->status, "applying");
	PG_TRY();
	{
		adstream_xact_begin("adstream: applying a batch");
		if (!adstream_load_pipeline(c->src.name, &pl) || pl.id != c->src.pipeline_id ||
			pl.version != c->src.version)
		{
			/* the launcher starts workers for the pipeline as it is now */
			ereport(LOG,
					(errmsg("adstream: pipeline \"%s\" was dropped or altered; this consumer stops",
							c->src.name)));
			proc_exit(0);
		}
		adstream_process_batch(&pl, c->src.source, msgs, c->n, &res);
		adstream_xact_end();
	}
	PG_CATCH();
	{
		/* keep the reason for the status view; the worker then exits */
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		adstream_status_error(c->status, edata->message);
		PG_RE_THROW();
	}
	PG_END_TRY();
	adstream_status_batch(c->status, c->n, &res);
	adstream_status_state(c->status, "consuming");
	{
		/* produce (Kafka timestamp) to commit, per message */
		TimestampTz committed = GetCurrentTimestamp();
		int64	   *lat = palloc(sizeof(int64) * c->n);
		int			nlat = 0;

		for (int i = 0; i < c->n; i++)
			if (msgs[i].has_kafka_ts)
				lat[nlat++] = (committed - msgs[i].kafka_ts) / 1000;
		adstream_status_latencies(c->status ? &c->status->latency : NULL, lat, nlat);
		pfree(lat);
	}

	/* committed: tell the group, for lag tools only */
	for (int p = 0; p < c->nparts; p++)
		next[p] = -1;
	for (int i = 0; i < c->n; i++)
	{
		int32_t		p = c->buf[i].partition;

		if (p >= 0 && p < c->nparts)
			next[p] = Max(next[p], c->buf[i].offset + 1);
	}
	for (int p = 0; p < c->nparts; p++)
		if (next[p] >= 0)
		{
			parts[nnext] = p;
			next[nnext++] = next[p];
		}
	adstream_kafka_commit_async(c->kafka, c->src.topic, parts, next, nnext);

	adstream_kafka_release(c->buf, c->n);
	c->n = 0;
	c->bytes = 0;
	pfree(msgs);
	pfree(parts);
	pfree(next);
}

void
adstream_consumer_main(Datum main_arg)
{
	int32		pipeline_id = DatumGetInt32(main_arg);
	Consumer	c;
	char		err[512];
	char		group[128];
	MemoryContext worker_cxt;
	MemoryContext loop_cxt;
	bool		claimed;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(adstream_database, NULL, 0);

	memset(&c, 0, sizeof(c));
	worker_cxt = AllocSetContextCreate(TopMemoryContext, "adstream consumer",
									   ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(worker_cxt, "adstream batch",
									 ALLOCSET_DEFAULT_SIZES);

	if (sscanf(MyBgworkerEntry->bgw_extra, "%d %d", &c.index, &c.count) != 2 ||
		c.count < 1 || c.index < 0 || c.index >= c.count)
		ereport(ERROR,
				(errmsg("adstream: consumer worker started without its index and count")));

	adstream_xact_begin(NULL);
	claimed = adstream_claim_pipeline(pipeline_id, c.index);
	if (claimed && !adstream_load_source(pipeline_id, c.index, &c.src, worker_cxt))
		claimed = false;
	adstream_xact_end();
	if (!claimed)
		proc_exit(0);			/* gone, disabled, or consumed by another worker */
	pgstat_report_appname(psprintf("adstream consumer %s%s%s", c.src.name,
								   c.src.source[0] ? " " : "", c.src.source));
	c.status = adstream_status_attach(pipeline_id, c.index, c.src.version);
	adstream_status_state(c.status, "connecting");

	if (c.src.source[0] != '\0')
	{
		/* a union pipeline's worker: its group and logs name its region */
		snprintf(group, sizeof(group), "adstream-%s-%s", c.src.name, c.src.source);
		c.label = MemoryContextStrdup(worker_cxt,
									  psprintf("%s\" region \"%s", c.src.name,
											   c.src.source));
	}
	else
	{
		snprintf(group, sizeof(group), "adstream-%s", c.src.name);
		c.label = c.src.name;
	}
	c.kafka = adstream_kafka_consumer_new(c.src.bootstrap_servers, group,
										  (const char *const *) c.src.prop_names,
										  (const char *const *) c.src.prop_values,
										  c.src.nprops, err, sizeof(err));
	if (c.kafka == NULL)
		ereport(ERROR,
				(errmsg("adstream: pipeline \"%s\": could not create a Kafka consumer: %s",
						c.label, err)));
	c.buf = MemoryContextAlloc(worker_cxt, sizeof(AdstreamKafkaMessage) * c.src.batch_size);

	for (;;)
	{
		TimestampTz now;
		long		timeout_ms = 1000;
		int			got;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextSwitchTo(loop_cxt);

		/* partitions: at start, and now and then for new ones */
		now = GetCurrentTimestamp();
		if (c.n == 0 &&
			(c.nparts == 0 ||
			 TimestampDifferenceExceeds(c.last_partition_check, now, PARTITION_CHECK_MS)))
			assign_partitions(&c);

		if (c.nparts > 0 &&
			TimestampDifferenceExceeds(c.last_end_offsets, now, 1000))
			report_end_offsets(&c);

		if (c.nparts > 0)
		{
			int			want = Min(c.src.batch_size - c.n, 1000);

			got = adstream_kafka_poll(c.kafka, c.buf + c.n, want,
									  BATCH_MAX_BYTES - c.bytes, err, sizeof(err));
			if (got < 0)
			{
				/* never apply past a message librdkafka could not give us */
				adstream_status_error(c.status, err);
				ereport(ERROR,
						(errmsg("adstream: pipeline \"%s\": Kafka: %s", c.label, err),
						 errdetail("The worker stops rather than skip messages; it is started again with backoff and resumes from the stored offsets."),
						 errhint("If the offset is no longer in the topic (retention, or the topic was recreated), those messages are gone from Kafka; set the partition's next_offset in adstream.consumed_offset to where to resume.")));
			}
			if (err[0] != '\0')
				note_kafka_error(&c, err);
			if (got > 0 && c.n == 0)
				c.batch_start = GetCurrentTimestamp();
			for (int i = c.n; i < c.n + got; i++)
				c.bytes += c.buf[i].len;
			c.n += got;

			if (c.n > 0)
			{
				now = GetCurrentTimestamp();
				if (c.n >= c.src.batch_size || c.bytes >= BATCH_MAX_BYTES ||
					TimestampDifferenceExceeds(c.batch_start, now, c.src.batch_time_ms))
				{
					apply_batch(&c);
					MemoryContextReset(loop_cxt);
					continue;	/* more may be waiting: poll again at once */
				}
				if (got == want)
					continue;	/* the queue may hold more */
				timeout_ms = Max(1, c.src.batch_time_ms -
								 (long) ((now - c.batch_start) / 1000));
			}
		}

		(void) WaitLatchOrSocket(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH |
								 (c.nparts > 0 ? WL_SOCKET_READABLE : 0),
								 adstream_kafka_wait_fd(c.kafka), timeout_ms,
								 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
