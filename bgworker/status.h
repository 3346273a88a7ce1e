/*-------------------------------------------------------------------------
 *
 * status.h
 *	  What the consumer and producer workers report about themselves, in
 *	  shared memory (adstream must be preloaded), for the
 *	  adstream.pipeline_status and adstream.sink_status views; and the
 *	  producers' wake-up when outbox rows commit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_STATUS_H
#define ADSTREAM_STATUS_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "adstream.h"

#define ADSTREAM_STATUS_SLOTS 64		/* pipelines with a worker */
#define ADSTREAM_STATUS_PARTITIONS 256	/* end offsets kept per pipeline */
#define ADSTREAM_LATENCY_BUCKETS 2001	/* 1 ms each; the last is >= 2 s */

/*
 * Latencies in 1 ms buckets, halved every minute so that the percentiles
 * follow the recent past.
 */
typedef struct AdstreamLatency
{
	int64		buckets[ADSTREAM_LATENCY_BUCKETS];
	TimestampTz decayed_at;
} AdstreamLatency;

typedef struct AdstreamWorkerStatus
{
	int32		pipeline_id;	/* 0: free slot */
	int			worker_index;	/* which of the pipeline's workers */
	int64		version;		/* of the pipeline, as the worker started */
	int			pid;			/* 0: no worker running */
	char		state[32];
	TimestampTz started_at;
	int64		batches;		/* counters since the pipeline's last change */
	int64		messages;
	int64		accepted;
	int64		duplicates;
	int64		rejected;
	int64		skipped;
	TimestampTz last_commit;	/* 0 if none */
	char		last_error[256];
	TimestampTz last_error_at;	/* 0 if none */
	int			nparts;
	int64		end_offset[ADSTREAM_STATUS_PARTITIONS]; /* -1 unknown, -2 not ours */

	AdstreamLatency latency;	/* Kafka timestamp to commit, per message */
} AdstreamWorkerStatus;

#define ADSTREAM_SINK_SLOTS 64

/* What a producer worker reports, for the adstream.sink_status view. */
typedef struct AdstreamSinkStatus
{
	int32		sink_id;		/* 0: free slot */
	int64		version;		/* of the sink, as the worker started */
	int			pid;			/* 0: no worker running */
	struct PGPROC *proc;		/* whose latch wakes the worker */
	char		state[32];
	TimestampTz started_at;
	int64		transactions;	/* committed; counters since the server started */
	int64		aborted;		/* transactions aborted and sent again */
	int64		records;		/* records in committed transactions */
	int64		fenced;			/* times a newer producer fenced this sink's */
	int64		sent_id;		/* last outbox id committed to Kafka */
	TimestampTz last_commit;	/* 0 if none */
	char		last_error[256];
	TimestampTz last_error_at;	/* 0 if none */
	AdstreamLatency latency;	/* outbox row written to Kafka commit */
} AdstreamSinkStatus;

/* Shared memory hooks; from _PG_init when preloaded. */
extern void adstream_status_init(void);

/*
 * Claim (or take back) the slot of this worker of the pipeline; NULL if
 * none is free.  Counters start again when the pipeline's version (its
 * updated_at) differs from the slot's.
 */
extern AdstreamWorkerStatus *adstream_status_attach(int32 pipeline_id, int worker_index,
													int64 version);

extern void adstream_status_state(AdstreamWorkerStatus *ws, const char *state);
extern void adstream_status_batch(AdstreamWorkerStatus *ws, int messages,
								  const AdstreamBatchResult *res);
/* Record latencies (milliseconds) into a histogram of a status slot. */
extern void adstream_status_latencies(AdstreamLatency *lat, const int64 *latency_ms, int n);

/* The latency (ms, a bucket's upper bound) below which fraction q fall; -1 if none. */
extern int	adstream_status_latency_quantile(const AdstreamLatency *lat, double q);

extern void adstream_status_error(AdstreamWorkerStatus *ws, const char *error);
extern void adstream_status_end_offsets(AdstreamWorkerStatus *ws, int nparts,
										const int64 *end_offsets);

/*
 * A copy of every used slot, for the status view; *n is their number.
 * Returns NULL (n = 0) when adstream is not preloaded.
 */
extern AdstreamWorkerStatus *adstream_status_snapshot(int *n);

/* The producer worker of a sink: its slot (NULL if none is free). */
extern AdstreamSinkStatus *adstream_sink_status_attach(int32 sink_id, int64 version);
extern void adstream_sink_status_state(AdstreamSinkStatus *ss, const char *state);
extern void adstream_sink_status_error(AdstreamSinkStatus *ss, const char *error);

/* A transaction committed (records in it, the last outbox id) or aborted. */
extern void adstream_sink_status_commit(AdstreamSinkStatus *ss, int records, int64 sent_id);
extern void adstream_sink_status_abort(AdstreamSinkStatus *ss, bool fenced);

/* A copy of every used sink slot; *n is their number (0 if not preloaded). */
extern AdstreamSinkStatus *adstream_sink_status_snapshot(int *n);

/*
 * Wake every producer worker when the current transaction commits: it wrote
 * outbox rows.  Nothing happens if it aborts, or without shared memory.
 */
extern void adstream_wake_sinks_at_commit(void);

#endif							/* ADSTREAM_STATUS_H */
