/*-------------------------------------------------------------------------
 *
 * source.h
 *	  What the background workers read from adstream's tables: which
 *	  pipelines should run, a pipeline's Kafka source, and its stored
 *	  offsets.  All through SPI; callers hold a transaction and SPI.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_SOURCE_H
#define ADSTREAM_SOURCE_H

#include "postgres.h"

/*
 * A worker's transaction around its SPI calls: start one, connect SPI,
 * take a snapshot, and report activity (if not NULL); then the reverse,
 * committing, and report idle.
 */
extern void adstream_xact_begin(const char *activity);
extern void adstream_xact_end(void);

/* A pipeline the launcher should run a consumer worker for. */
typedef struct AdstreamRunnable
{
	int32		pipeline_id;
	int64		version;		/* changes whenever the pipeline is altered */
	int			workers;		/* consumer workers it asks for (union: sources) */
	char		name[64];
} AdstreamRunnable;

/* The Kafka source of a pipeline. */
typedef struct AdstreamSource
{
	int32		pipeline_id;
	char	   *name;
	char	   *topic;
	char	   *bootstrap_servers;
	char	   *source;			/* "" or, for a union pipeline, the region read */
	bool		start_latest;
	int			nprops;
	char	  **prop_names;
	char	  **prop_values;
	int			batch_size;
	int			batch_time_ms;
	int64		version;
} AdstreamSource;

/* Whether the extension is installed in this database (else no table is there). */
extern bool adstream_extension_installed(void);

/*
 * The enabled pipelines with a Kafka topic, at most max of them, into out.
 * Returns their number.
 */
extern int	adstream_runnable_pipelines(AdstreamRunnable *out, int max);

/* The enabled orders pipelines (each gets an attributor), like the above. */
extern int	adstream_runnable_orders(AdstreamRunnable *out, int max);

/*
 * One step of every maintenance task, as the launcher runs them when
 * pg_cron does not; returns how many tasks have more to do, or -1 when
 * pg_cron schedules maintenance in this database.
 */
extern int	adstream_maintenance_step(int max_rows, bool check_cron);

/*
 * Load the source of a pipeline's worker worker_index, its strings
 * allocated in mcxt: the pipeline's own topic, or for a union pipeline its
 * worker_index-th enabled union source (by region).  Returns false if the
 * pipeline is gone, disabled or has no such source.
 */
extern bool adstream_load_source(int32 pipeline_id, int worker_index,
								 AdstreamSource *src, MemoryContext mcxt);

/*
 * The stored next offsets of the pipeline's partitions of topic in the
 * source cluster: offsets[p] for p < nparts, or -1 where none is stored.
 */
extern void adstream_load_offsets(int32 pipeline_id, const char *source,
								  const char *topic, int64 *offsets, int nparts);

/*
 * Claim worker slot worker_index of the pipeline for this backend until it
 * exits (a session-level advisory lock on (ADSTREAM_LOCK_CLASS +
 * worker_index, pipeline id)), so that no two consumer workers ever take
 * the same partitions.  Returns false if another backend holds it.
 */
#define ADSTREAM_LOCK_CLASS 0x61647374	/* "adst" */
extern bool adstream_claim_pipeline(int32 pipeline_id, int worker_index);

/*
 * Store start positions for partitions that have none yet (INSERT .. ON
 * CONFLICT DO NOTHING), so that a position resolved once, such as the end
 * of a partition for start_from latest, survives restarts.
 */
extern void adstream_store_start_offsets(int32 pipeline_id, const char *source,
										 const char *topic, const int32 *parts,
										 const int64 *offsets, int n);

/*
 * Fold up to max_rows aggregate increments (adstream.fold_minute_stats()),
 * which also writes the output records of emitting pipelines.  Returns how
 * many were folded.
 */
extern int64 adstream_fold(int max_rows);

/*
 * Terminate consumer and producer workers of this database left from an
 * earlier launcher; returns how many are still running.
 */
extern int	adstream_terminate_stale_workers(void);

/* Raise an error naming what failed if an SPI call returned an error code. */
extern void adstream_check_spi(int rc, const char *what);

/*
 * Run sql (returning key and value text columns, with $1 the int4 id) and
 * copy the rows into *names and *values, allocated in mcxt.
 */
extern void adstream_load_properties(const char *sql, int32 id, int *n, char ***names,
									 char ***values, MemoryContext mcxt);

#endif							/* ADSTREAM_SOURCE_H */
