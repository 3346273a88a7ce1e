/*-------------------------------------------------------------------------
 *
 * source.c
 *	  What the background workers read from adstream's tables (see
 *	  source.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "source.h"

void
adstream_xact_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "adstream: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	if (activity != NULL)
		pgstat_report_activity(STATE_RUNNING, activity);
}

void
adstream_xact_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
adstream_check_spi(int rc, const char *what)
{
	if (rc < 0)
		elog(ERROR, "adstream: %s failed: %s", what, SPI_result_code_string(rc));
}

bool
adstream_extension_installed(void)
{
	adstream_check_spi(SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'adstream'",
								   true, 1), "extension lookup");
	return SPI_processed > 0;
}

/* Read (id, version, name, workers) rows into out. */
static int
read_runnable(const char *sql, const char *what, AdstreamRunnable *out, int max)
{
	int			n = 0;

	adstream_check_spi(SPI_execute(sql, true, 0), what);
	for (uint64 r = 0; r < SPI_processed && n < max; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		out[n].pipeline_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		out[n].version = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		strlcpy(out[n].name, SPI_getvalue(tup, desc, 3), sizeof(out[n].name));
		out[n].workers = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
		n++;
	}
	return n;
}

int
adstream_runnable_pipelines(AdstreamRunnable *out, int max)
{
	/* a union pipeline runs a worker per enabled source */
	return read_runnable("SELECT p.id, (extract(epoch FROM p.updated_at) * 1000000)::int8,"
						 " p.name, CASE WHEN p.kind = 'union' THEN"
						 "  (SELECT count(*)::int4 FROM adstream.union_source AS s"
						 "    WHERE s.pipeline_id = p.id AND s.enabled)"
						 "  ELSE p.workers END AS workers"
						 " FROM adstream.pipeline AS p"
						 " WHERE p.enabled AND (p.topic IS NOT NULL OR p.kind = 'union')"
						 " ORDER BY p.id",
						 "pipeline list", out, max);
}

int
adstream_runnable_orders(AdstreamRunnable *out, int max)
{
	return read_runnable("SELECT id, (extract(epoch FROM updated_at) * 1000000)::int8, name,"
						 " 1 FROM adstream.pipeline"
						 " WHERE enabled AND kind = 'orders' ORDER BY id",
						 "orders pipeline list", out, max);
}

int
adstream_maintenance_step(int max_rows, bool check_cron)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	bool		isnull;

	if (check_cron)
	{
		adstream_check_spi(SPI_execute("SELECT adstream._maintenance_schedule() IS NOT NULL",
									   true, 1), "maintenance schedule");
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									   &isnull)))
			return -1;
	}
	args[0] = Int32GetDatum(max_rows);
	adstream_check_spi(SPI_execute_with_args("SELECT count(*) FILTER (WHERE m.rows = $1)::int4"
											 " FROM adstream.run_maintenance(NULL, $1, 'launcher') AS m",
											 1, argtypes, args, NULL, false, 1),
					   "maintenance");
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									   &isnull));
}

bool
adstream_load_source(int32 pipeline_id, int worker_index, AdstreamSource *src,
					 MemoryContext mcxt)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		args[2];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int32		source_id;

	/* a union pipeline's worker i reads its i-th enabled source by region */
	args[0] = Int32GetDatum(pipeline_id);
	args[1] = Int32GetDatum(worker_index);
	adstream_check_spi(SPI_execute_with_args("SELECT p.name, coalesce(s.topic, p.topic),"
									" coalesce(s.bootstrap_servers, p.bootstrap_servers),"
									" p.start_from = 'latest', p.batch_size,"
									" (extract(epoch FROM p.batch_time) * 1000)::int4,"
									" (extract(epoch FROM p.updated_at) * 1000000)::int8,"
									" coalesce(s.region, ''), coalesce(s.id, 0)"
									" FROM adstream.pipeline AS p"
									" LEFT JOIN LATERAL (SELECT * FROM adstream.union_source AS u"
									"   WHERE u.pipeline_id = p.id AND u.enabled AND p.kind = 'union'"
									"   ORDER BY u.region OFFSET $2 LIMIT 1) AS s ON true"
									" WHERE p.id = $1 AND p.enabled"
									" AND (p.topic IS NOT NULL OR s.id IS NOT NULL)",
									2, argtypes, args, NULL, true, 1),
			  "pipeline source");
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	src->pipeline_id = pipeline_id;
	src->name = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 1));
	src->topic = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 2));
	src->bootstrap_servers = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 3));
	src->start_latest = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	src->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	src->batch_time_ms = Max(DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull)), 1);
	src->version = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
	src->source = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 8));
	source_id = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));

	if (source_id != 0)
		adstream_load_properties("SELECT key, value FROM adstream.union_source,"
								 " jsonb_each_text(kafka_properties) WHERE id = $1",
								 source_id, &src->nprops, &src->prop_names,
								 &src->prop_values, mcxt);
	else
		adstream_load_properties("SELECT key, value FROM adstream.pipeline,"
								 " jsonb_each_text(kafka_properties) WHERE id = $1",
								 pipeline_id, &src->nprops, &src->prop_names,
								 &src->prop_values, mcxt);
	return true;
}

void
adstream_load_properties(const char *sql, int32 id, int *n, char ***names,
						 char ***values, MemoryContext mcxt)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];

	args[0] = Int32GetDatum(id);
	adstream_check_spi(SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0),
					   "Kafka properties");
	*n = (int) SPI_processed;
	*names = MemoryContextAlloc(mcxt, sizeof(char *) * Max(*n, 1));
	*values = MemoryContextAlloc(mcxt, sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		(*names)[i] = MemoryContextStrdup(mcxt, SPI_getvalue(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 1));
		(*values)[i] = MemoryContextStrdup(mcxt, SPI_getvalue(SPI_tuptable->vals[i],
															  SPI_tuptable->tupdesc, 2));
	}
}

void
adstream_load_offsets(int32 pipeline_id, const char *source, const char *topic,
					  int64 *offsets, int nparts)
{
	Oid			argtypes[3] = {INT4OID, TEXTOID, TEXTOID};
	Datum		args[3];

	for (int p = 0; p < nparts; p++)
		offsets[p] = -1;
	args[0] = Int32GetDatum(pipeline_id);
	args[1] = CStringGetTextDatum(topic);
	args[2] = CStringGetTextDatum(source);
	adstream_check_spi(SPI_execute_with_args("SELECT partition, next_offset FROM adstream.consumed_offset"
									" WHERE pipeline_id = $1 AND topic = $2 AND source = $3",
									3, argtypes, args, NULL, true, 0),
			  "stored offsets");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int32		p = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
													SPI_tuptable->tupdesc, 1, &isnull));

		if (p >= 0 && p < nparts)
			offsets[p] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													 SPI_tuptable->tupdesc, 2, &isnull));
	}
}

bool
adstream_claim_pipeline(int32 pipeline_id, int worker_index)
{
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		args[2];
	bool		isnull;

	args[0] = Int32GetDatum(ADSTREAM_LOCK_CLASS + worker_index);
	args[1] = Int32GetDatum(pipeline_id);
	adstream_check_spi(SPI_execute_with_args("SELECT pg_catalog.pg_try_advisory_lock($1, $2)",
									2, argtypes, args, NULL, false, 1),
			  "pipeline claim");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									  1, &isnull));
}

int
adstream_terminate_stale_workers(void)
{
	adstream_check_spi(SPI_execute("SELECT pg_catalog.pg_terminate_backend(pid)"
						  " FROM pg_catalog.pg_stat_activity"
						  " WHERE backend_type IN ('adstream consumer', 'adstream producer', 'adstream attributor')"
						  " AND datname = pg_catalog.current_database()",
						  false, 0), "stale worker cleanup");
	return (int) SPI_processed;
}

void
adstream_store_start_offsets(int32 pipeline_id, const char *source, const char *topic,
							 const int32 *parts, const int64 *offsets, int n)
{
	Oid			argtypes[5] = {INT4OID, TEXTOID, INT4ARRAYOID, INT8ARRAYOID, TEXTOID};
	Datum		args[5];
	Datum	   *p = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *o = palloc(sizeof(Datum) * Max(n, 1));

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
	{
		p[i] = Int32GetDatum(parts[i]);
		o[i] = Int64GetDatum(offsets[i]);
	}
	args[0] = Int32GetDatum(pipeline_id);
	args[1] = CStringGetTextDatum(topic);
	args[2] = PointerGetDatum(construct_array(p, n, INT4OID, 4, true, TYPALIGN_INT));
	args[3] = PointerGetDatum(construct_array(o, n, INT8OID, 8, FLOAT8PASSBYVAL,
											  TYPALIGN_DOUBLE));
	args[4] = CStringGetTextDatum(source);
	adstream_check_spi(SPI_execute_with_args("INSERT INTO adstream.consumed_offset"
									" (pipeline_id, source, topic, partition, next_offset)"
									" SELECT $1, $5, $2, u.p, u.o FROM unnest($3, $4) AS u(p, o)"
									" ON CONFLICT (pipeline_id, source, topic, partition) DO NOTHING",
									5, argtypes, args, NULL, false, 0),
			  "start offsets");
}

int64
adstream_fold(int max_rows)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	bool		isnull;

	args[0] = Int32GetDatum(max_rows);
	adstream_check_spi(SPI_execute_with_args("SELECT adstream.fold_minute_stats($1)",
									1, argtypes, args, NULL, false, 1), "fold");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									   1, &isnull));
}
