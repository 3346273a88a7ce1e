/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher worker: starts at postmaster start (adstream must be in
 *	  shared_preload_libraries), connects to the database named by
 *	  adstream.database, and keeps the consumer workers of every enabled
 *	  pipeline that has a Kafka topic running: as many as its workers
 *	  option asks for, worker i of n taking the partitions p with
 *	  p % n = i.  It also keeps a producer worker running for every
 *	  enabled sink (producer.c) and an attributor for every enabled orders
 *	  pipeline (attributor.c).
 *
 * Once a second (sooner when a worker starts or stops, which sets its
 * latch) it compares the pipelines and sinks with the workers it runs:
 *	- a new or re-enabled pipeline or sink gets its workers;
 *	- a worker whose pipeline or sink was dropped, disabled or altered is stopped
 *	  (an altered one is started again on the next round, with the new
 *	  options);
 *	- a worker that exited is started again after a backoff that doubles
 *	  with each consecutive failure, from 1 s up to 60 s, and its exit is
 *	  logged once per restart.  A worker that has run for a minute counts
 *	  as healthy again.
 * Every adstream.fold_interval it also folds the aggregate increments of
 * all pipelines (adstream.fold_minute_stats(), which writes the output
 * records of emitting pipelines), in bounded steps, each its own
 * transaction.  Every adstream.maintenance_interval it runs maintenance
 * (adstream.run_maintenance()) the same way, for at most a second, unless
 * pg_cron has adstream's maintenance job in this database.
 *
 * When the launcher itself (re)starts, it first stops the workers left
 * from before; an advisory lock per pipeline also keeps any two consumers
 * of one pipeline from running at once, and a sink's transactional.id
 * fences an older producer of the sink.
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

#include "sink.h"
#include "source.h"
#include "workers.h"

#define MAX_PIPELINES 256
#define MAX_SINKS 256
#define MAX_SLOTS 512
#define HEALTHY_AFTER_MS 60000
#define MAX_BACKOFF_MS 60000
#define FOLD_STEP_ROWS 200000
#define MAINTENANCE_STEP_ROWS 10000
#define MAINTENANCE_BUDGET_MS 1000

typedef enum WorkerKind
{
	KIND_CONSUMER,				/* id: a pipeline; index of count */
	KIND_PRODUCER,				/* id: a sink */
	KIND_ATTRIBUTOR				/* id: an orders pipeline */
} WorkerKind;

static const char *const kind_names[] = {"consumer", "producer", "attributor"};

/* A worker that should run, from the tables. */
typedef struct Want
{
	WorkerKind	kind;
	int32		id;
	int			index;
	int			count;
	int64		version;		/* of the pipeline or sink */
	char		name[130];
} Want;

typedef struct Slot
{
	bool		used;
	bool		stopping;		/* terminated; kept until it has exited */
	Want		w;				/* what it runs */
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
start_worker(Slot *s)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher decides */
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "adstream");
	bgw.bgw_main_arg = Int32GetDatum(s->w.id);
	bgw.bgw_notify_pid = MyProcPid;
	if (s->w.kind == KIND_CONSUMER)
	{
		snprintf(bgw.bgw_function_name, BGW_MAXLEN, "adstream_consumer_main");
		snprintf(bgw.bgw_name, BGW_MAXLEN, "adstream consumer %s %d/%d", s->w.name,
				 s->w.index + 1, s->w.count);
		snprintf(bgw.bgw_type, BGW_MAXLEN, "adstream consumer");
		snprintf(bgw.bgw_extra, BGW_EXTRALEN, "%d %d", s->w.index, s->w.count);
	}
	else if (s->w.kind == KIND_PRODUCER)
	{
		snprintf(bgw.bgw_function_name, BGW_MAXLEN, "adstream_producer_main");
		snprintf(bgw.bgw_name, BGW_MAXLEN, "adstream producer %s", s->w.name);
		snprintf(bgw.bgw_type, BGW_MAXLEN, "adstream producer");
	}
	else
	{
		snprintf(bgw.bgw_function_name, BGW_MAXLEN, "adstream_attributor_main");
		snprintf(bgw.bgw_name, BGW_MAXLEN, "adstream attributor %s", s->w.name);
		snprintf(bgw.bgw_type, BGW_MAXLEN, "adstream attributor");
	}
	if (!RegisterDynamicBackgroundWorker(&bgw, &s->handle))
	{
		s->handle = NULL;
		ereport(WARNING,
				(errmsg("adstream: no background worker slot for the %s of \"%s\"",
						kind_names[s->w.kind], s->w.name),
				 errhint("Raise max_worker_processes: adstream needs one per consumer and per sink, plus its launcher.")));
		return false;
	}
	s->started_at = GetCurrentTimestamp();
	return true;
}

/* Ask the worker to stop; the slot stays until it has exited. */
static void
stop_worker(Slot *s)
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
 * pipeline (or sink) still has a worker on its way out: its new workers
 * wait, so that two generations never consume the same partitions nor
 * produce for the same sink.
 */
static bool
still_stopping(WorkerKind kind, int32 id)
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
		else if (s->w.kind == kind && s->w.id == id)
			any = true;
	}
	return any;
}

/* The running slot of a worker, or NULL. */
static Slot *
find_slot(const Want *w)
{
	for (int i = 0; i < MAX_SLOTS; i++)
		if (slots[i].used && !slots[i].stopping && slots[i].w.kind == w->kind &&
			slots[i].w.id == w->id && slots[i].w.index == w->index)
			return &slots[i];
	return NULL;
}

/* One round: bring the running workers in line with what should run. */
static void
reconcile(Want *want, int nwant)
{
	TimestampTz now = GetCurrentTimestamp();

	/* stop workers of pipelines or sinks gone, disabled or altered */
	for (int i = 0; i < MAX_SLOTS; i++)
	{
		Slot	   *s = &slots[i];
		int			j;

		if (!s->used || s->stopping)
			continue;
		for (j = 0; j < nwant; j++)
			if (want[j].kind == s->w.kind && want[j].id == s->w.id &&
				want[j].index == s->w.index)
				break;
		if (j == nwant || want[j].version != s->w.version || want[j].count != s->w.count)
			stop_worker(s);
	}

	/* notice exits; start what is missing, after any backoff */
	for (int j = 0; j < nwant; j++)
	{
		Slot	   *s;

		if (still_stopping(want[j].kind, want[j].id))
			continue;
		s = find_slot(&want[j]);
		if (s == NULL)
		{
			for (int i = 0; i < MAX_SLOTS && s == NULL; i++)
				if (!slots[i].used)
					s = &slots[i];
			if (s == NULL)
				continue;
			memset(s, 0, sizeof(*s));
			s->used = true;
			s->w = want[j];
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
			if (s->w.kind == KIND_CONSUMER)
				ereport(LOG,
						(errmsg("adstream: consumer %d/%d of pipeline \"%s\" exited; starting it again in %d ms",
								s->w.index + 1, s->w.count, s->w.name, backoff)));
			else
				ereport(LOG,
						(errmsg("adstream: %s of %s \"%s\" exited; starting it again in %d ms",
								kind_names[s->w.kind],
								s->w.kind == KIND_PRODUCER ? "sink" : "orders pipeline",
								s->w.name, backoff)));
		}
		if (s->handle == NULL && now >= s->next_start && !start_worker(s))
		{
			/* no free worker slot: try again in a while, not every second */
			s->failures++;
			s->next_start = TimestampTzPlusMilliseconds(now, MAX_BACKOFF_MS);
		}
	}
}

/*
 * What should run: each pipeline's consumers, each sink's producer, each
 * orders pipeline's attributor.
 * Returns how many, or -1 if the extension is not installed here.
 */
static int
wanted_workers(Want *want, int max)
{
	AdstreamRunnable *pipelines = palloc(sizeof(AdstreamRunnable) * MAX_PIPELINES);
	AdstreamRunnableSink *sinks = palloc(sizeof(AdstreamRunnableSink) * MAX_SINKS);
	int			np;
	int			ns;
	int			n = 0;

	if (!adstream_extension_installed())
		return -1;
	np = adstream_runnable_pipelines(pipelines, MAX_PIPELINES);
	for (int i = 0; i < np; i++)
		for (int index = 0; index < pipelines[i].workers && n < max; index++)
		{
			Want	   *w = &want[n++];

			w->kind = KIND_CONSUMER;
			w->id = pipelines[i].pipeline_id;
			w->index = index;
			w->count = pipelines[i].workers;
			w->version = pipelines[i].version;
			strlcpy(w->name, pipelines[i].name, sizeof(w->name));
		}
	ns = adstream_runnable_sinks(sinks, MAX_SINKS);
	for (int i = 0; i < ns && n < max; i++)
	{
		Want	   *w = &want[n++];

		w->kind = KIND_PRODUCER;
		w->id = sinks[i].sink_id;
		w->index = 0;
		w->count = 1;
		w->version = sinks[i].version;
		strlcpy(w->name, sinks[i].name, sizeof(w->name));
	}
	np = adstream_runnable_orders(pipelines, MAX_PIPELINES);
	for (int i = 0; i < np && n < max; i++)
	{
		Want	   *w = &want[n++];

		w->kind = KIND_ATTRIBUTOR;
		w->id = pipelines[i].pipeline_id;
		w->index = 0;
		w->count = 1;
		w->version = pipelines[i].version;
		strlcpy(w->name, pipelines[i].name, sizeof(w->name));
	}
	pfree(pipelines);
	pfree(sinks);
	return n;
}

void
adstream_launcher_main(Datum main_arg)
{
	Want	   *want = palloc(sizeof(Want) * MAX_SLOTS);
	bool		first = true;
	TimestampTz last_fold = 0;
	TimestampTz last_maintenance = 0;

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
		/* workers of an earlier launcher must be gone before ours start */
		if (first && adstream_terminate_stale_workers() == 0)
			first = false;
		nwant = first ? 0 : wanted_workers(want, MAX_SLOTS);
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

		if (nwant >= 0 && adstream_maintenance_interval > 0 &&
			TimestampDifferenceExceeds(last_maintenance, GetCurrentTimestamp(),
									   adstream_maintenance_interval))
		{
			int			busy;
			bool		first_step = true;

			last_maintenance = GetCurrentTimestamp();
			do
			{
				CHECK_FOR_INTERRUPTS();
				adstream_xact_begin("adstream: maintenance");
				busy = adstream_maintenance_step(MAINTENANCE_STEP_ROWS, first_step);
				adstream_xact_end();
				first_step = false;
			} while (busy > 0 &&
					 !TimestampDifferenceExceeds(last_maintenance, GetCurrentTimestamp(),
												 MAINTENANCE_BUDGET_MS));
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(1000L, adstream_fold_interval > 0 ? adstream_fold_interval : 1000L),
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
