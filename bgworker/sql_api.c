/*-------------------------------------------------------------------------
 *
 * sql_api.c
 *	  SQL-callable functions written in C.
 *
 * adstream.ingest() unpacks its arrays into AdstreamMessage structs and
 * hands them to the processing core, exactly as a Kafka consumer worker
 * does with a batch it polled.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "attribution.h"
#include "core.h"
#include "event_key.h"
#include "kafka.h"
#include "source.h"
#include "status.h"

PG_FUNCTION_INFO_V1(adstream_ingest);
PG_FUNCTION_INFO_V1(adstream_check_kafka_properties);
PG_FUNCTION_INFO_V1(adstream_worker_status);
PG_FUNCTION_INFO_V1(adstream_window_uuid);
PG_FUNCTION_INFO_V1(adstream_sink_status);
PG_FUNCTION_INFO_V1(adstream_wake_sinks);
PG_FUNCTION_INFO_V1(adstream_now_sql);
PG_FUNCTION_INFO_V1(adstream_order_uuid);
PG_FUNCTION_INFO_V1(adstream_attribute_orders);

/* Deconstruct a one-dimensional array argument; n is its length. */
static void
unpack_array(ArrayType *arr, Oid elemtype, const char *argname,
			 Datum **elems, bool **nulls, int *n)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument \"%s\" must be a one-dimensional array", argname)));
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, elemtype, typlen, typbyval, typalign, elems, nulls, n);
}

/* Error unless a coordinate array has one element per message. */
static void
check_length(const char *argname, int len, int nmessages)
{
	if (len != nmessages)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("argument \"%s\" has %d elements, but there are %d messages",
						argname, len, nmessages)));
}

/*
 * adstream.ingest(pipeline, messages, topic, partitions, offsets,
 *				   kafka_timestamps, source) -> (accepted, duplicates, rejected, skipped)
 */
Datum
adstream_ingest(PG_FUNCTION_ARGS)
{
	char	   *pipeline_name;
	Datum	   *payloads;
	bool	   *payload_nulls;
	int			n;
	char	   *topic = NULL;
	char	   *source;
	Datum	   *partitions = NULL;
	Datum	   *offsets = NULL;
	Datum	   *stamps = NULL;
	bool	   *part_nulls = NULL;
	bool	   *offset_nulls = NULL;
	bool	   *stamp_nulls = NULL;
	int			len;
	AdstreamMessage *msgs;
	AdstreamPipeline pipeline;
	AdstreamBatchResult result;
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline name must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("messages must not be null")));
	pipeline_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	unpack_array(PG_GETARG_ARRAYTYPE_P(1), BYTEAOID, "messages",
				 &payloads, &payload_nulls, &n);

	/* coordinates: topic, partitions and offsets come together */
	if (!PG_ARGISNULL(2) || !PG_ARGISNULL(3) || !PG_ARGISNULL(4))
	{
		if (PG_ARGISNULL(2) || PG_ARGISNULL(3) || PG_ARGISNULL(4))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("topic, partitions and offsets must be given together"),
					 errhint("Pass all three to record the consumed offsets, or none of them.")));
		topic = text_to_cstring(PG_GETARG_TEXT_PP(2));
		if (topic[0] == '\0' || strlen(topic) > 249)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("topic must be 1 to 249 characters long")));
		unpack_array(PG_GETARG_ARRAYTYPE_P(3), INT4OID, "partitions",
					 &partitions, &part_nulls, &len);
		check_length("partitions", len, n);
		unpack_array(PG_GETARG_ARRAYTYPE_P(4), INT8OID, "offsets",
					 &offsets, &offset_nulls, &len);
		check_length("offsets", len, n);
	}
	if (!PG_ARGISNULL(5))
	{
		unpack_array(PG_GETARG_ARRAYTYPE_P(5), TIMESTAMPTZOID, "kafka_timestamps",
					 &stamps, &stamp_nulls, &len);
		check_length("kafka_timestamps", len, n);
	}

	msgs = palloc0(sizeof(AdstreamMessage) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		AdstreamMessage *m = &msgs[i];

		if (!payload_nulls[i])
		{
			bytea	   *b = DatumGetByteaPP(payloads[i]);

			m->data = VARDATA_ANY(b);
			m->len = VARSIZE_ANY_EXHDR(b);
		}
		m->partition = -1;
		m->offset = -1;
		if (topic != NULL)
		{
			if (part_nulls[i] || offset_nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("partitions and offsets must not contain nulls")));
			m->topic = topic;
			m->partition = DatumGetInt32(partitions[i]);
			m->offset = DatumGetInt64(offsets[i]);
		}
		if (stamps != NULL && !stamp_nulls[i])
		{
			m->has_kafka_ts = true;
			m->kafka_ts = DatumGetTimestampTz(stamps[i]);
		}
	}

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SPI_connect();
	if (!adstream_load_pipeline(pipeline_name, &pipeline))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("pipeline \"%s\" does not exist", pipeline_name)));
	source = PG_NARGS() > 6 && !PG_ARGISNULL(6) ? text_to_cstring(PG_GETARG_TEXT_PP(6)) : NULL;
	if (pipeline.is_union && source == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pipeline \"%s\" is a union pipeline: give the region of the cluster the records come from as source",
						pipeline_name)));
	if (!pipeline.is_union && source != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source is only for union pipelines; \"%s\" is not one",
						pipeline_name)));
	adstream_process_batch(&pipeline, source ? source : "", msgs, n, &result);
	SPI_finish();

	values[0] = Int64GetDatum(result.accepted);
	values[1] = Int64GetDatum(result.duplicates);
	values[2] = Int64GetDatum(result.rejected);
	values[3] = Int64GetDatum(result.skipped);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
}

/*
 * adstream._check_kafka_properties(properties jsonb, for_producer bool):
 * every key of the object is a librdkafka property (of a consumer, or of
 * a sink's producer) that adstream does not set itself, every value a
 * string, number or boolean that librdkafka accepts for it.  Errors name
 * the property.
 */
Datum
adstream_check_kafka_properties(PG_FUNCTION_ARGS)
{
	Jsonb	   *props = PG_GETARG_JSONB_P(0);
	bool		for_producer = PG_NARGS() > 1 && PG_GETARG_BOOL(1);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *name = NULL;
	int			depth = 0;

	if (!JB_ROOT_IS_OBJECT(props))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"kafka_properties\" must be a JSON object of property names and values")));
	it = JsonbIteratorInit(&props->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		char	   *value;
		char		err[512];

		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
		{
			depth++;
			if (depth > 1)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("Kafka property \"%s\" must be a string, number or boolean",
								name)));
			continue;
		}
		if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY)
		{
			depth--;
			continue;
		}
		if (tok == WJB_KEY)
		{
			name = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		/* WJB_VALUE */
		switch (v.type)
		{
			case jbvString:
				value = pnstrdup(v.val.string.val, v.val.string.len);
				break;
			case jbvNumeric:
				value = DatumGetCString(DirectFunctionCall1(numeric_out,
															NumericGetDatum(v.val.numeric)));
				break;
			case jbvBool:
				value = v.val.boolean ? "true" : "false";
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("Kafka property \"%s\" must be a string, number or boolean",
								name)));
		}
		if (!adstream_kafka_check_property(name, value, for_producer, err, sizeof(err)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid Kafka property \"%s\": %s", name, err)));
	}
	PG_RETURN_VOID();
}

/*
 * adstream._worker_status(): what the consumer workers report, one row per
 * (worker, partition it owns), or one row with a NULL partition while it
 * owns none it knows of.  No rows when adstream is not preloaded.
 */
Datum
adstream_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n;
	AdstreamWorkerStatus *ws;

	InitMaterializedSRF(fcinfo, 0);
	ws = adstream_status_snapshot(&n);
	for (int i = 0; i < n; i++)
	{
		AdstreamWorkerStatus *w = &ws[i];
		int			p50 = adstream_status_latency_quantile(&w->latency, 0.50);
		int			p99 = adstream_status_latency_quantile(&w->latency, 0.99);
		int			owned = 0;

		for (int p = 0; p < w->nparts; p++)
			owned += w->end_offset[p] != -2;
		for (int p = 0; p < Max(w->nparts, 1); p++)
		{
			Datum		values[19];
			bool		nulls[19] = {0};

			/* partitions of another worker of the pipeline are its rows */
			if (owned > 0 && w->end_offset[p] == -2)
				continue;
			values[0] = Int32GetDatum(w->pipeline_id);
			values[1] = Int32GetDatum(w->worker_index);
			values[2] = Int32GetDatum(w->pid);
			nulls[2] = w->pid == 0;
			values[3] = CStringGetTextDatum(w->state);
			values[4] = TimestampTzGetDatum(w->started_at);
			values[5] = Int64GetDatum(w->batches);
			values[6] = Int64GetDatum(w->messages);
			values[7] = Int64GetDatum(w->accepted);
			values[8] = Int64GetDatum(w->duplicates);
			values[9] = Int64GetDatum(w->rejected);
			values[10] = Int64GetDatum(w->skipped);
			values[11] = TimestampTzGetDatum(w->last_commit);
			nulls[11] = w->last_commit == 0;
			values[12] = CStringGetTextDatum(w->last_error);
			nulls[12] = w->last_error[0] == '\0';
			values[13] = TimestampTzGetDatum(w->last_error_at);
			nulls[13] = w->last_error_at == 0;
			values[14] = Int32GetDatum(p);
			nulls[14] = owned == 0;
			values[15] = Int64GetDatum(owned > 0 ? w->end_offset[p] : -1);
			nulls[15] = owned == 0 || w->end_offset[p] < 0;
			values[16] = Int32GetDatum(p50);
			nulls[16] = p50 < 0;
			values[17] = Int32GetDatum(p99);
			nulls[17] = p99 < 0;
			values[18] = Int64GetDatum(w->version);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
			if (owned == 0)
				break;
		}
	}
	return (Datum) 0;
}

/*
 * adstream.window_uuid(region text, ad_id text, window_start timestamptz):
 * the UUID of a window's output record (see adstream_window_key()).
 */
Datum
adstream_window_uuid(PG_FUNCTION_ARGS)
{
	char	   *region = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *ad_id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	TimestampTz ts = PG_GETARG_TIMESTAMPTZ(2);
	pg_uuid_t  *out = palloc(sizeof(pg_uuid_t));
	int64		unix_ms;

	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window_start must be finite")));
	/* floor division: a window starts on a whole millisecond anyway */
	unix_ms = (ts + ((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY *
					 USECS_PER_SEC));
	unix_ms = unix_ms >= 0 ? unix_ms / 1000 : -((-unix_ms + 999) / 1000);
	adstream_window_key(region, ad_id, unix_ms, out->data);
	PG_RETURN_UUID_P(out);
}

/*
 * adstream._sink_status(): what the producer workers report, one row per
 * sink that has had a worker since the server started.  No rows when
 * adstream is not preloaded.
 */
Datum
adstream_sink_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			n;
	AdstreamSinkStatus *ss;

	InitMaterializedSRF(fcinfo, 0);
	ss = adstream_sink_status_snapshot(&n);
	for (int i = 0; i < n; i++)
	{
		AdstreamSinkStatus *s = &ss[i];
		int			p50 = adstream_status_latency_quantile(&s->latency, 0.50);
		int			p99 = adstream_status_latency_quantile(&s->latency, 0.99);
		Datum		values[15];
		bool		nulls[15] = {0};

		values[0] = Int32GetDatum(s->sink_id);
		values[1] = Int64GetDatum(s->version);
		values[2] = Int32GetDatum(s->pid);
		nulls[2] = s->pid == 0;
		values[3] = CStringGetTextDatum(s->state);
		values[4] = TimestampTzGetDatum(s->started_at);
		values[5] = Int64GetDatum(s->transactions);
		values[6] = Int64GetDatum(s->aborted);
		values[7] = Int64GetDatum(s->fenced);
		values[8] = Int64GetDatum(s->records);
		values[9] = Int64GetDatum(s->sent_id);
		values[10] = TimestampTzGetDatum(s->last_commit);
		nulls[10] = s->last_commit == 0;
		values[11] = CStringGetTextDatum(s->last_error);
		nulls[11] = s->last_error[0] == '\0';
		values[12] = TimestampTzGetDatum(s->last_error_at);
		nulls[12] = s->last_error_at == 0;
		values[13] = Int32GetDatum(p50);
		nulls[13] = p50 < 0;
		values[14] = Int32GetDatum(p99);
		nulls[14] = p99 < 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * adstream._wake_sinks(): wake the producer workers when the calling
 * transaction commits (it wrote outbox rows).
 */
Datum
adstream_wake_sinks(PG_FUNCTION_ARGS)
{
	adstream_wake_sinks_at_commit();
	PG_RETURN_VOID();
}

/* adstream._now(): the time adstream works with (see adstream_now()). */
Datum
adstream_now_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(adstream_now());
}

/* adstream.order_uuid(region text, order_id text): see adstream_order_record_key(). */
Datum
adstream_order_uuid(PG_FUNCTION_ARGS)
{
	text	   *region = PG_GETARG_TEXT_PP(0);
	text	   *id = PG_GETARG_TEXT_PP(1);
	pg_uuid_t  *out = palloc(sizeof(pg_uuid_t));

	adstream_order_record_key(VARDATA_ANY(region), VARSIZE_ANY_EXHDR(region),
							  VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id), out->data);
	PG_RETURN_UUID_P(out);
}

/*
 * adstream.attribute_orders(pipeline text, max_rows integer)
 *	 -> setof (pipeline_name, decided, enriched, retried)
 */
Datum
adstream_attribute_orders(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *name = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);
	int			max_rows = PG_ARGISNULL(1) ? -1 : PG_GETARG_INT32(1);
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	char		nulls[1];
	int			n;
	int32	   *ids;
	char	  **names;

	if (max_rows < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be a positive integer")));
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	args[0] = name ? PointerGetDatum(name) : (Datum) 0;
	nulls[0] = name ? ' ' : 'n';
	adstream_check_spi(SPI_execute_with_args("SELECT id, name FROM adstream.pipeline"
											 " WHERE kind = 'orders' AND ($1 IS NULL OR name = $1)"
											 " ORDER BY id",
											 1, argtypes, args, nulls, false, 0),
					   "orders pipelines");
	n = (int) SPI_processed;
	if (n == 0 && name != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("orders pipeline \"%s\" does not exist", text_to_cstring(name))));
	ids = palloc(sizeof(int32) * Max(n, 1));
	names = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		ids[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
											 1, &isnull));
		names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}
	for (int i = 0; i < n; i++)
	{
		AdstreamAttribution r;
		Datum		values[4];
		bool		rnulls[4] = {0};

		adstream_attribute(ids[i], adstream_now(), max_rows, &r);
		values[0] = CStringGetTextDatum(names[i]);
		values[1] = Int64GetDatum(r.decided);
		values[2] = Int64GetDatum(r.enriched);
		values[3] = Int64GetDatum(r.retried);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, rnulls);
	}
	SPI_finish();
	return (Datum) 0;
}
