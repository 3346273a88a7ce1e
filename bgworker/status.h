/*-------------------------------------------------------------------------
 *
 * status.h
 *	  What the consumer workers report about themselves, in shared memory
 *	  (adstream must be preloaded), for the adstream.pipeline_status view.
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

	/*
	 * Kafka timestamp to commit, per message, in 1 ms buckets; halved every
	 * minute so that the percentiles follow the recent past.
	 */
	int64		latency[ADSTREAM_LATENCY_BUCKETS];
	TimestampTz latency_decayed_at;
} AdstreamWorkerStatus;

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
/* Record the commit latencies (milliseconds) of a batch's messages. */
extern void adstream_status_latencies(AdstreamWorkerStatus *ws,
									  const int64 *latency_ms, int n);

/* The latency (ms, a bucket's upper bound) below which fraction q fall; -1 if none. */
extern int	adstream_status_latency_quantile(const AdstreamWorkerStatus *ws, double q);

extern void adstream_status_error(AdstreamWorkerStatus *ws, const char *error);
extern void adstream_status_end_offsets(AdstreamWorkerStatus *ws, int nparts,
										const int64 *end_offsets);

/*
 * A copy of every used slot, for the status view; *n is their number.
 * Returns NULL (n = 0) when adstream is not preloaded.
 */
extern AdstreamWorkerStatus *adstream_status_snapshot(int *n);

#endif							/* ADSTREAM_STATUS_H */
