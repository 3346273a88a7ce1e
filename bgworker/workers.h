/*-------------------------------------------------------------------------
 *
 * workers.h
 *	  The background workers: the launcher (one per server, started at
 *	  postmaster start) and the consumer workers it runs, one per enabled
 *	  pipeline with a Kafka topic.
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

/* Register the launcher; from _PG_init, when preloaded. */
extern void adstream_register_launcher(void);

extern PGDLLEXPORT void adstream_launcher_main(Datum main_arg);
extern PGDLLEXPORT void adstream_consumer_main(Datum main_arg);

#endif							/* ADSTREAM_WORKERS_H */
