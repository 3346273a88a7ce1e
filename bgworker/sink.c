/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  What the producer workers read and write in adstream's tables (see
 *	  sink.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sink.h"
#include "source.h"

int
adstream_runnable_sinks(AdstreamRunnableSink *out, int max)
{
	int			n = 0;

	adstream_check_spi(SPI_execute("SELECT s.id, s.pipeline_id,"
								   " (extract(epoch FROM s.updated_at) * 1000000)::int8,"
								   " p.name || '/' || s.name"
								   " FROM adstream.sink AS s"
								   " JOIN adstream.pipeline AS p ON p.id = s.pipeline_id"
								   " WHERE s.enabled ORDER BY s.id",
								   true, 0), "sink list");
	for (uint64 r = 0; r < SPI_processed && n < max; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		out[n].sink_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		out[n].pipeline_id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		out[n].version = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		strlcpy(out[n].name, SPI_getvalue(tup, desc, 4), sizeof(out[n].name));
		n++;
	}
	return n;
}

bool
adstream_load_sink(int32 sink_id, AdstreamSink *sink, MemoryContext mcxt)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	args[0] = Int32GetDatum(sink_id);
	adstream_check_spi(SPI_execute_with_args("SELECT s.pipeline_id, p.name || '/' || s.name,"
											 " s.topic, s.bootstrap_servers, s.progress_topic,"
											 " s.transactional_id, s.batch_records, s.acked_id,"
											 " (extract(epoch FROM s.updated_at) * 1000000)::int8"
											 " FROM adstream.sink AS s"
											 " JOIN adstream.pipeline AS p ON p.id = s.pipeline_id"
											 " WHERE s.id = $1 AND s.enabled",
											 1, argtypes, args, NULL, true, 1),
					   "sink definition");
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	sink->sink_id = sink_id;
	sink->pipeline_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	sink->name = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 2));
	sink->topic = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 3));
	sink->bootstrap_servers = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 4));
	sink->progress_topic = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 5));
	sink->transactional_id = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 6));
	sink->batch_records = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
	sink->acked_id = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
	sink->version = DatumGetInt64(SPI_getbinval(tup, desc, 9, &isnull));
	adstream_load_properties("SELECT key, value FROM adstream.sink,"
							 " jsonb_each_text(kafka_properties) WHERE id = $1",
							 sink_id, &sink->nprops, &sink->prop_names, &sink->prop_values,
							 mcxt);
	return true;
}

int
adstream_outbox_fetch(int32 pipeline_id, int64 after_id, int max,
					  AdstreamOutboxRow *rows, MemoryContext mcxt)
{
	Oid			argtypes[3] = {INT4OID, INT8OID, INT4OID};
	Datum		args[3];

	args[0] = Int32GetDatum(pipeline_id);
	args[1] = Int64GetDatum(after_id);
	args[2] = Int32GetDatum(max);
	adstream_check_spi(SPI_execute_with_args("SELECT id, version, record_uuid::text, payload,"
											 " created_at"
											 " FROM adstream.outbox"
											 " WHERE pipeline_id = $1 AND id > $2"
											 " ORDER BY id LIMIT $3",
											 3, argtypes, args, NULL, true, 0),
					   "outbox read");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		text	   *payload;

		rows[r].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		rows[r].version = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		strlcpy(rows[r].record_uuid, SPI_getvalue(tup, desc, 3), sizeof(rows[r].record_uuid));
		payload = DatumGetTextPP(SPI_getbinval(tup, desc, 4, &isnull));
		rows[r].len = VARSIZE_ANY_EXHDR(payload);
		rows[r].payload = MemoryContextAlloc(mcxt, rows[r].len + 1);
		memcpy(rows[r].payload, VARDATA_ANY(payload), rows[r].len);
		rows[r].payload[rows[r].len] = '\0';
		rows[r].created_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 5, &isnull));
	}

	/*
	 * Nothing is sent that a crash could still take back: under
	 * synchronous_commit = off the commit of these rows may not be on disk
	 * yet, and after a crash their ids and versions could be written again
	 * with other contents.  Flushing all WAL written so far covers their
	 * commit records (a no-op when they are already durable).
	 */
	if (SPI_processed > 0)
		XLogFlush(GetXLogInsertRecPtr());
	return (int) SPI_processed;
}

int64
adstream_sink_ack(int32 sink_id, int32 pipeline_id, int64 acked_id)
{
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		args[2];

	args[0] = Int32GetDatum(sink_id);
	args[1] = Int64GetDatum(acked_id);
	adstream_check_spi(SPI_execute_with_args("UPDATE adstream.sink"
											 " SET acked_id = greatest(acked_id, $2),"
											 " acked_at = now() WHERE id = $1",
											 2, argtypes, args, NULL, false, 0),
					   "sink progress");
	args[0] = Int32GetDatum(pipeline_id);
	adstream_check_spi(SPI_execute_with_args("SELECT adstream.prune_outbox(p.name)"
											 " FROM adstream.pipeline AS p WHERE p.id = $1",
											 1, argtypes, args, NULL, false, 0),
					   "outbox pruning");
	if (SPI_processed == 0)
		return 0;
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		return isnull ? 0 : DatumGetInt64(d);
	}
}
