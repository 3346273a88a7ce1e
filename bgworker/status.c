/*-------------------------------------------------------------------------
 *
 * status.c
 *	  Worker status in shared memory (see status.h).  One LWLock guards the
 *	  slots; a worker holds it only to copy a few fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "status.h"

typedef struct StatusShared
{
	LWLock	   *lock;
	AdstreamWorkerStatus slots[ADSTREAM_STATUS_SLOTS];
	AdstreamSinkStatus sinks[ADSTREAM_SINK_SLOTS];
} StatusShared;

static StatusShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
status_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(StatusShared)));
	RequestNamedLWLockTranche("adstream", 1);
}

static void
status_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("adstream status", sizeof(StatusShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(StatusShared));
		shared->lock = &(GetNamedLWLockTranche("adstream"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
adstream_status_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = status_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = status_shmem_startup;
}

/* before_shmem_exit: the worker is gone. */
static void
status_detach(int code, Datum arg)
{
	AdstreamWorkerStatus *ws = (AdstreamWorkerStatus *) DatumGetPointer(arg);

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (ws->pid == MyProcPid)
	{
		ws->pid = 0;
		ws->nparts = 0;
		strlcpy(ws->state, "stopped", sizeof(ws->state));
	}
	LWLockRelease(shared->lock);
}

AdstreamWorkerStatus *
adstream_status_attach(int32 pipeline_id, int worker_index, int64 version)
{
	AdstreamWorkerStatus *ws = NULL;

	if (shared == NULL)
		return NULL;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < ADSTREAM_STATUS_SLOTS && ws == NULL; i++)
		if (shared->slots[i].pipeline_id == pipeline_id &&
			shared->slots[i].worker_index == worker_index)
			ws = &shared->slots[i];
	/* a free slot, or one of a pipeline whose worker is gone */
	for (int i = 0; i < ADSTREAM_STATUS_SLOTS && ws == NULL; i++)
		if (shared->slots[i].pipeline_id == 0)
			ws = &shared->slots[i];
	for (int i = 0; i < ADSTREAM_STATUS_SLOTS && ws == NULL; i++)
		if (shared->slots[i].pid == 0)
		{
			ws = &shared->slots[i];
			memset(ws, 0, sizeof(*ws));
		}
	if (ws != NULL)
	{
		if (ws->pipeline_id != pipeline_id || ws->worker_index != worker_index ||
			ws->version != version)
		{
			memset(ws, 0, sizeof(*ws));
			ws->pipeline_id = pipeline_id;
			ws->worker_index = worker_index;
			ws->version = version;
		}
		ws->pid = MyProcPid;
		ws->started_at = GetCurrentTimestamp();
		strlcpy(ws->state, "starting", sizeof(ws->state));
	}
	LWLockRelease(shared->lock);
	if (ws != NULL)
		before_shmem_exit(status_detach, PointerGetDatum(ws));
	return ws;
}

void
adstream_status_state(AdstreamWorkerStatus *ws, const char *state)
{
	if (ws == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(ws->state, state, sizeof(ws->state));
	LWLockRelease(shared->lock);
}

void
adstream_status_batch(AdstreamWorkerStatus *ws, int messages,
					  const AdstreamBatchResult *res)
{
	if (ws == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	ws->batches++;
	ws->messages += messages;
	ws->accepted += res->accepted;
	ws->duplicates += res->duplicates;
	ws->rejected += res->rejected;
	ws->skipped += res->skipped;
	ws->last_commit = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

void
adstream_status_error(AdstreamWorkerStatus *ws, const char *error)
{
	if (ws == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(ws->last_error, error, sizeof(ws->last_error));
	ws->last_error_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

void
adstream_status_end_offsets(AdstreamWorkerStatus *ws, int nparts,
							const int64 *end_offsets)
{
	if (ws == NULL)
		return;
	nparts = Min(nparts, ADSTREAM_STATUS_PARTITIONS);
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	ws->nparts = nparts;
	memcpy(ws->end_offset, end_offsets, sizeof(int64) * nparts);
	LWLockRelease(shared->lock);
}

AdstreamWorkerStatus *
adstream_status_snapshot(int *n)
{
	AdstreamWorkerStatus *copy;

	*n = 0;
	if (shared == NULL)
		return NULL;
	copy = palloc(sizeof(AdstreamWorkerStatus) * ADSTREAM_STATUS_SLOTS);
	LWLockAcquire(shared->lock, LW_SHARED);
	for (int i = 0; i < ADSTREAM_STATUS_SLOTS; i++)
		if (shared->slots[i].pipeline_id != 0)
			copy[(*n)++] = shared->slots[i];
	LWLockRelease(shared->lock);
	return copy;
}

void
adstream_status_latencies(AdstreamLatency *lat, const int64 *latency_ms, int n)
{
	TimestampTz now;

	if (shared == NULL || lat == NULL || n == 0)
		return;
	now = GetCurrentTimestamp();
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (TimestampDifferenceExceeds(lat->decayed_at, now, 60000))
	{
		for (int b = 0; b < ADSTREAM_LATENCY_BUCKETS; b++)
			lat->buckets[b] /= 2;
		lat->decayed_at = now;
	}
	for (int i = 0; i < n; i++)
		lat->buckets[Min(Max(latency_ms[i], 0), ADSTREAM_LATENCY_BUCKETS - 1)]++;
	LWLockRelease(shared->lock);
}

int
adstream_status_latency_quantile(const AdstreamLatency *lat, double q)
{
	int64		total = 0;
	int64		seen = 0;

	for (int b = 0; b < ADSTREAM_LATENCY_BUCKETS; b++)
		total += lat->buckets[b];
	if (total == 0)
		return -1;
	for (int b = 0; b < ADSTREAM_LATENCY_BUCKETS; b++)
	{
		seen += lat->buckets[b];
		if (seen >= q * total)
			return b + 1;
	}
	return ADSTREAM_LATENCY_BUCKETS;
}

/* before_shmem_exit: the producer worker is gone. */
static void
sink_status_detach(int code, Datum arg)
{
	AdstreamSinkStatus *ss = (AdstreamSinkStatus *) DatumGetPointer(arg);

	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (ss->pid == MyProcPid)
	{
		ss->pid = 0;
		ss->proc = NULL;
		strlcpy(ss->state, "stopped", sizeof(ss->state));
	}
	LWLockRelease(shared->lock);
}

AdstreamSinkStatus *
adstream_sink_status_attach(int32 sink_id, int64 version)
{
	AdstreamSinkStatus *ss = NULL;

	if (shared == NULL)
		return NULL;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < ADSTREAM_SINK_SLOTS && ss == NULL; i++)
		if (shared->sinks[i].sink_id == sink_id)
			ss = &shared->sinks[i];
	for (int i = 0; i < ADSTREAM_SINK_SLOTS && ss == NULL; i++)
		if (shared->sinks[i].sink_id == 0 || shared->sinks[i].pid == 0)
		{
			ss = &shared->sinks[i];
			memset(ss, 0, sizeof(*ss));
		}
	if (ss != NULL)
	{
		if (ss->sink_id != sink_id || ss->version != version)
		{
			memset(ss, 0, sizeof(*ss));
			ss->sink_id = sink_id;
			ss->version = version;
		}
		ss->pid = MyProcPid;
		ss->proc = MyProc;
		ss->started_at = GetCurrentTimestamp();
		strlcpy(ss->state, "starting", sizeof(ss->state));
	}
	LWLockRelease(shared->lock);
	if (ss != NULL)
		before_shmem_exit(sink_status_detach, PointerGetDatum(ss));
	return ss;
}

void
adstream_sink_status_state(AdstreamSinkStatus *ss, const char *state)
{
	if (ss == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(ss->state, state, sizeof(ss->state));
	LWLockRelease(shared->lock);
}

void
adstream_sink_status_error(AdstreamSinkStatus *ss, const char *error)
{
	if (ss == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	strlcpy(ss->last_error, error, sizeof(ss->last_error));
	ss->last_error_at = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

void
adstream_sink_status_commit(AdstreamSinkStatus *ss, int records, int64 sent_id)
{
	if (ss == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	ss->transactions++;
	ss->records += records;
	ss->sent_id = sent_id;
	ss->last_commit = GetCurrentTimestamp();
	LWLockRelease(shared->lock);
}

void
adstream_sink_status_abort(AdstreamSinkStatus *ss, bool fenced)
{
	if (ss == NULL)
		return;
	LWLockAcquire(shared->lock, LW_EXCLUSIVE);
	if (fenced)
		ss->fenced++;
	else
		ss->aborted++;
	LWLockRelease(shared->lock);
}

AdstreamSinkStatus *
adstream_sink_status_snapshot(int *n)
{
	AdstreamSinkStatus *copy;

	*n = 0;
	if (shared == NULL)
		return NULL;
	copy = palloc(sizeof(AdstreamSinkStatus) * ADSTREAM_SINK_SLOTS);
	LWLockAcquire(shared->lock, LW_SHARED);
	for (int i = 0; i < ADSTREAM_SINK_SLOTS; i++)
		if (shared->sinks[i].sink_id != 0)
			copy[(*n)++] = shared->sinks[i];
	LWLockRelease(shared->lock);
	return copy;
}

static bool wake_at_commit = false;
static bool wake_callback_registered = false;

static void
wake_sinks_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && wake_at_commit && shared != NULL)
	{
		LWLockAcquire(shared->lock, LW_SHARED);
		for (int i = 0; i < ADSTREAM_SINK_SLOTS; i++)
			if (shared->sinks[i].pid != 0 && shared->sinks[i].proc != NULL)
				SetLatch(&shared->sinks[i].proc->procLatch);
		LWLockRelease(shared->lock);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
		wake_at_commit = false;
}

void
adstream_wake_sinks_at_commit(void)
{
	if (shared == NULL)
		return;
	if (!wake_callback_registered)
	{
		RegisterXactCallback(wake_sinks_callback, NULL);
		wake_callback_registered = true;
	}
	wake_at_commit = true;
}
