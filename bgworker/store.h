/*-------------------------------------------------------------------------
 *
 * store.h
 *	  Bulk writes to adstream's own tables and key probes, done the way
 *	  COPY does them: tuples go to the table access method in groups
 *	  (table_multi_insert) and every index of the table is maintained
 *	  (ExecInsertIndexTuples).  This is the hot path of ingest; everything
 *	  else in the core goes through SPI.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_STORE_H
#define ADSTREAM_STORE_H

#include "utils/uuid.h"

typedef struct AdstreamTableWriter AdstreamTableWriter;

/* A column a writer fills, and the type it must have. */
typedef struct AdstreamColumn
{
	const char *name;
	Oid			type;
} AdstreamColumn;

/*
 * Open table adstream.<relname> for appending rows that supply the given
 * columns (every other column is NULL).  Raises an error if a column is
 * missing or has another type, or if the table has what this path would
 * not honour: insert triggers, CHECK constraints, or an unsupplied column
 * that is NOT NULL, has a default, or is generated or an identity.
 */
extern AdstreamTableWriter *adstream_writer_open(const char *relname,
												 const AdstreamColumn *columns,
												 int ncols);

/*
 * Append one row; values[] and nulls[] follow the columns given to
 * adstream_writer_open().  The Datums must stay valid until
 * adstream_writer_close().
 */
extern void adstream_writer_put(AdstreamTableWriter *w, Datum *values,
								bool *nulls);

/*
 * Write what is buffered, close the table and make the rows visible to the
 * following commands of the transaction.
 */
extern void adstream_writer_close(AdstreamTableWriter *w);

/*
 * For each of keys[0..n-1], set found[i] if adstream.event holds a row of
 * the pipeline with that event_key.  Sees every committed row and the rows
 * of the current transaction, whatever the caller's snapshot (the caller
 * holds the pipeline's lock, so no other transaction is adding rows of the
 * pipeline meanwhile).
 */
extern void adstream_find_stored_keys(int32 pipeline_id, pg_uuid_t *const *keys,
									  int n, bool *found);

#endif							/* ADSTREAM_STORE_H */
