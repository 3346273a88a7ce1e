/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher worker: starts at postmaster start (adstream must be in
 *	  shared_preload_libraries), connects to the database named by
 *	  adstream.database, and keeps the consumer workers of every enabled
 *	  pipeline that has a Kafka topic running: as many as its workers
 *	  option asks for, worker i of n taking the partitions p with
 *	  p % n = i.
 *
 * Once a second (sooner when a worker starts or stops, which sets its
 * latch) it compares the pipelines with the workers it runs:
 *	- a new or re-enabled pipeline gets a worker;
 *	- a worker whose pipeline was dropped, disabled or altered is stopped
 *	  (an altered one is started again on the next round, with the new
 *	  options);
 *	- a worker that exited is started again after a backoff that doubles
 *	  with each consecutive failure, from 1 s up to 60 s, and its exit is
 *	  logged once per restart.  A worker that has run for a minute counts
 *	  as healthy again.
 * Every adstream.fold_interval it also folds the aggregate increments of
 * all pipelines (adstream.fold_minute_stats(), which writes the output
 * records of emitting pipelines), in bounded steps, each its own
 * transaction.
 *
 * When the launcher itself (re)starts, it first stops consumer workers
 * left from before; an advisory lock per pipeline also keeps any two
 * consumers of one pipeline from running at once.
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
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "source.h"
#include "workers.h"

#define MAX_PIPELINES 256
#define MAX_SLOTS 512
#define HEALTHY_AFTER_MS 60000
#define MAX_BACKOFF_MS 60000
#define FOLD_STEP_ROWS 200000

typedef struct Slot
{
	bool		used;
	bool		stopping;		/* terminated; kept until it has exited */
	int32		pipeline_id;
	int			index;			/* worker index within the pipeline */
	int			count;			/* the pipeline's number of workers */
	int64		version;		/* of the pipeline the worker was started for */
	char		name[64];
	BackgroundWorkerHandle *handle; /* NULL while waiting to (re)start */
	TimestampTz started_at;
	int			failures;		/* consecutive exits */
	TimestampTz next_start;
} Slot;

static Slot slots[MAX_SLOTS];

void
adstream_register_launcher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 1;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "adstream");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "adstream_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "adstream launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "adstream launcher");
	RegisterBackgroundWorker(&bgw);
}

static bool
start_consumer(Slot *s)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher decides */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "adstream");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "adstream_consumer_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "adstream consumer %s %d/%d", s->name,
			 s->index + 1, s->count);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "adstream consumer");
	bgw.bgw_main_arg = Int32GetDatum(s->pipeline_id);
	snprintf(bgw.bgw_extra, BGW_EXTRALEN, "%d %d", s->index, s->count);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &s->handle))
	{
		s->handle = NULL;
		ereport(WARNING,
				(errmsg("adstream: no background worker slot for pipeline \"%s\"", s->name),
				 errhint("Raise max_worker_processes: adstream needs one per running pipeline plus its launcher.")));
		return false;
	}
	s->started_at = GetCurrentTimestamp();
	return true;
}

/* Ask the worker to stop; the slot stays until it has exited. */
static void
stop_consumer(Slot *s)
{
	if (s->handle == NULL)
		s->used = false;
	else
	{
		TerminateBackgroundWorker(s->handle);
		s->stopping = true;
	}
}

/*
 * Forget stopping slots whose worker has exited.  Returns whether the
 * pipeline still has a worker on its way out: its new workers wait, so
 * that two generations never consume the same partitions.
 */
static bool
still_stopping(int32 pipeline_id)
{
	bool		any = false;

	for (int i = 0; i < MAX_SLOTS; i++)
	{
		Slot	   *s = &slots[i];
		pid_t		pid;

		if (!s->used || !s->stopping)
			continue;
		if (GetBackgroundWorkerPid(s->handle, &pid) == BGWH_STOPPED)
		{
			pfree(s->handle);
			s->handle = NULL;
			s->used = false;
		}
		else if (s->pipeline_id == pipeline_id)
			any = true;
	}
	return any;
}

/* The slot of worker index of a pipeline, or NULL. */
static Slot *
find_slot(int32 pipeline_id, int index)
{
	for (int i = 0; i < MAX_SLOTS; i++)
		if (slots[i].used && !slots[i].stopping &&
			slots[i].pipeline_id == pipeline_id && slots[i].index == index)
			return &slots[i];
	return NULL;
}

/* One round: bring the running workers in line with the pipelines. */
static void
reconcile(AdstreamRunnable *want, int nwant)
{
	TimestampTz now = GetCurrentTimestamp();

	/* stop workers of pipelines gone, disabled or altered */
	for (int i = 0; i < MAX_SLOTS; i++)
	{
		Slot	   *s = &slots[i];
		int			j;

		if (!s->used || s->stopping)
			continue;
		for (j = 0; j < nwant && want[j].pipeline_id != s->pipeline_id; j++)
			;
		if (j == nwant || want[j].version != s->version || s->index >= want[j].workers)
			stop_consumer(s);
	}

	/* notice exits; start what is missing, after any backoff */
	for (int j = 0; j < nwant; j++)
	{
		if (still_stopping(want[j].pipeline_id))
			continue;
		for (int index = 0; index < want[j].workers; index++)
		{
			Slot	   *s = find_slot(want[j].pipeline_id, index);

			if (s == NULL)
			{
				for (int i = 0; i < MAX_SLOTS && s == NULL; i++)
					if (!slots[i].used)
						s = &slots[i];
				if (s == NULL)
					continue;
				memset(s, 0, sizeof(*s));
				s->used = true;
				s->pipeline_id = want[j].pipeline_id;
				s->index = index;
				s->count = want[j].workers;
				s->version = want[j].version;
				strlcpy(s->name, want[j].name, sizeof(s->name));
				s->next_start = now;
			}
			if (s->handle != NULL)
			{
				pid_t		pid;
				int			backoff = MAX_BACKOFF_MS;

				if (GetBackgroundWorkerPid(s->handle, &pid) != BGWH_STOPPED)
				{
					if (TimestampDifferenceExceeds(s->started_at, now, HEALTHY_AFTER_MS))
						s->failures = 0;
					continue;
				}
				pfree(s->handle);
				s->handle = NULL;
				s->failures++;
				if (s->failures <= 6)
					backoff = Min(MAX_BACKOFF_MS, 1000 << (s->failures - 1));
				s->next_start = TimestampTzPlusMilliseconds(now, backoff);
				ereport(LOG,
						(errmsg("adstream: consumer %d/%d of pipeline \"%s\" exited; starting it again in %d ms",
								s->index + 1, s->count, s->name, backoff)));
			}
			if (s->handle == NULL && now >= s->next_start && !start_consumer(s))
			{
				/* no free worker slot: try again in a while, not every second */
				s->failures++;
				s->next_start = TimestampTzPlusMilliseconds(now, MAX_BACKOFF_MS);
			}
		}
	}
}

void
adstream_launcher_main(Datum main_arg)
{
	AdstreamRunnable *want = palloc(sizeof(AdstreamRunnable) * MAX_PIPELINES);
	bool		first = true;
	TimestampTz last_fold = 0;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(adstream_database, NULL, 0);
	pgstat_report_appname("adstream launcher");

	for (;;)
	{
		int			nwant;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		adstream_xact_begin("adstream: checking pipelines");
		/* consumers of an earlier launcher must be gone before ours start */
		if (first && adstream_terminate_stale_consumers() == 0)
			first = false;
		nwant = first ? 0 : adstream_runnable_pipelines(want, MAX_PIPELINES);
		adstream_xact_end();

		reconcile(want, Max(nwant, 0));

		if (nwant >= 0 && adstream_fold_interval > 0 &&
			TimestampDifferenceExceeds(last_fold, GetCurrentTimestamp(),
									   adstream_fold_interval))
		{
			int64		folded;

			last_fold = GetCurrentTimestamp();
			do
			{
				CHECK_FOR_INTERRUPTS();
				adstream_xact_begin("adstream: folding aggregates");
				folded = adstream_fold(FOLD_STEP_ROWS);
				adstream_xact_end();
			} while (folded == FOLD_STEP_ROWS);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(1000L, adstream_fold_interval > 0 ? adstream_fold_interval : 1000L),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
