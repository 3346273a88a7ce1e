/*-------------------------------------------------------------------------
 *
 * workers.h
 *	  The background workers: the launcher (one per server, started at
 *	  postmaster start) and the workers it runs: consumers, as many as each
 *	  enabled pipeline with a Kafka topic asks for, a producer per enabled
 *	  sink, and an attributor per enabled orders pipeline.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_WORKERS_H
#define ADSTREAM_WORKERS_H

#include "postgres.h"

/* adstream.database: the database the launcher works in. */
extern char *adstream_database;

/* adstream.fold_interval: milliseconds between the launcher's folds; 0: none. */
extern int	adstream_fold_interval;

/*
 * adstream.maintenance_interval: milliseconds between the launcher's
 * maintenance runs when pg_cron does not schedule them; 0: none.
 */
extern int	adstream_maintenance_interval;

/*
 * adstream.producer_fail_point: where producer workers stop on purpose, for
 * the tests of the exactly-once output protocol (producer.c).
 */
typedef enum AdstreamFailPoint
{
	ADSTREAM_FAIL_NONE,
	ADSTREAM_FAIL_MID_SEND,		/* half of a transaction's records sent */
	ADSTREAM_FAIL_BEFORE_KAFKA_COMMIT,	/* all sent with the progress record */
	ADSTREAM_FAIL_AFTER_KAFKA_COMMIT	/* committed, progress not in the database */
} AdstreamFailPoint;

extern int	adstream_producer_fail_point;
extern const char *adstream_fail_point_name(int point);

/* Register the launcher; from _PG_init, when preloaded. */
extern void adstream_register_launcher(void);

extern PGDLLEXPORT void adstream_launcher_main(Datum main_arg);
extern PGDLLEXPORT void adstream_consumer_main(Datum main_arg);
extern PGDLLEXPORT void adstream_producer_main(Datum main_arg);
extern PGDLLEXPORT void adstream_attributor_main(Datum main_arg);

#endif							/* ADSTREAM_WORKERS_H */
