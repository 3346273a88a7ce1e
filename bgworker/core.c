/*-------------------------------------------------------------------------
 *
 * core.c
 *	  The processing core and its exactly-once protocol.
 *
 * INVARIANT.  A message changes the database exactly once: its effects
 * (stored event, aggregate increments or dead letter) and the stored
 * offset after it are written in the caller's one transaction, so they
 * commit together or not at all.
 *
 * The protocol for one batch, all inside that transaction:
 *
 *	1. Lock the offset rows of every (topic, partition) in the batch,
 *	   creating missing rows first (INSERT .. ON CONFLICT DO NOTHING, then
 *	   SELECT .. FOR UPDATE, in a fixed order).  A concurrent batch for the
 *	   same partition waits here and then sees our committed offset.
 *	2. Skip every message whose offset is below the stored next offset, or
 *	   not above an earlier message of the same partition in this batch:
 *	   it was already applied.  Offsets are "next offset to read" and are
 *	   never assumed contiguous (transaction markers take offsets).
 *	3. Parse and validate each remaining message.  A bad one becomes a dead
 *	   letter with its reason; it never aborts the batch.
 *	4. Deduplicate valid events by key, first within the batch (first
 *	   occurrence wins), then, holding the pipeline row's lock (FOR NO KEY
 *	   UPDATE, until commit), against the stored events.  Batches of one
 *	   pipeline take turns here, so a key found absent is not being added
 *	   by another transaction; parsing before this point runs in parallel.
 *	   Each remaining key is looked up in adstream.event through its hash
 *	   index, with a dirty snapshot (every committed row and our own); the
 *	   keys not found are the new events, and are appended to
 *	   adstream.event, which serves deduplication and attribution at once.
 *	   The others were counted before.
 *	5. Append the new events' 1-minute aggregate increments, one row per
 *	   distinct (ad, event time truncated to the minute), to
 *	   adstream.minute_delta.  That table is append-only and unindexed:
 *	   ingest never waits on or rewrites a shared counter row.
 *	   adstream.fold_minute_stats() later moves the increments into
 *	   adstream.minute_stat in its own transaction; the views add both, so
 *	   a total is the same before and after a fold.
 *	6. Insert the dead letters.
 *	7. Store next offset = last offset seen + 1 per partition.
 *
 * An orders pipeline (kind orders) differs in steps 4 and 5 only: valid
 * orders are inserted into adstream.attributed_order, pending, with
 * ON CONFLICT DO NOTHING on (pipeline, order key), in message order, so
 * the first occurrence of an order id wins, within the batch and against
 * every earlier batch; the unique index makes concurrent batches wait for
 * each other on a shared key instead of taking the pipeline's lock.  The
 * order is decided later, once its grace period is over (attribution.c).
 *
 * A union pipeline (kind union) reads the output records of several
 * regions, each region's from its own Kafka cluster: the batch's source
 * names the cluster (its region), and offsets are stored per source
 * (steps 1, 2 and 7), so every cluster resumes on its own.  In step 3 a
 * record must parse, carry the UUID adstream derives from its region and
 * window (or order), and belong to the source's region (wrong_region
 * otherwise).  Steps 4 and 5 are adstream._merge_union(): holding the
 * pipeline's lock, it walks the records in message order and keeps a
 * version only if it is newer than every version of that UUID stored or
 * seen earlier in the batch; each kept version replaces the stored one in
 * adstream.union_record and is written, byte for byte as it came, to the
 * outbox (under the outbox lock, so ids become visible in order).  An
 * equal version is a duplicate, an older one is stale; both are dropped
 * and counted.  So a record read twice (a retry, an aborted transaction
 * delivered anyway, a replay after a crash) is emitted once, and the
 * union's output carries, for every UUID, increasing versions only.
 *
 * Steps 4 and 5 write through store.c, the way COPY does (rows grouped
 * into table_multi_insert(), every index maintained); the other steps are
 * one prepared statement each over arrays (unnest).  A batch costs a
 * handful of statements whatever its size.  Messages without coordinates
 * (topic NULL) skip steps 1, 2 and 7.
 *
 * Errors: only database failures raise; the caller's transaction then
 * aborts and nothing of the batch, offsets included, is kept.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

#include "core.h"
#include "event_parse.h"
#include "store.h"

/* What became of one message. */
typedef enum MsgStatus
{
	MSG_SKIPPED,				/* already applied (below the stored offset) */
	MSG_REJECTED,				/* dead letter */
	MSG_VALID,					/* parsed and valid; dedup not yet decided */
	MSG_DUPLICATE,				/* valid, already counted */
	MSG_NEW						/* valid and counted by this batch */
} MsgStatus;

typedef struct MsgState
{
	MsgStatus	status;
	AdstreamReject reason;
	char	   *detail;
	AdstreamEvent event;
	AdstreamOrder order;		/* orders pipelines */
	AdstreamRecord record;		/* union pipelines */
} MsgState;

/* One (topic, partition) of the batch. */
typedef struct PartState
{
	const char *topic;
	int32		partition;
	int64		first_offset;	/* lowest offset in the batch */
	int64		next_offset;	/* stored, then advanced as messages apply */
	bool		has_event_time;
	TimestampTz max_event_time; /* of the batch's valid events (watermark) */
	bool		has_kafka_time;
	TimestampTz kafka_time;		/* latest Kafka timestamp (consumed time) */
} PartState;

/* Prepared statements, planned once per backend. */
typedef enum Stmt
{
	STMT_PIPELINE,
	STMT_LOCK_PIPELINE,
	STMT_OFFSETS_INIT,
	STMT_OFFSETS_LOCK,
	STMT_OFFSETS_SAVE,
	STMT_DEAD_LETTER,
	STMT_ORDER_INSERT,
	STMT_UNION_MERGE,
	NUM_STMTS
} Stmt;

typedef struct StmtDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[12];
} StmtDef;

static const StmtDef stmt_defs[NUM_STMTS] = {
	[STMT_PIPELINE] = {
		"SELECT p.id, p.name,"
		" (extract(epoch FROM p.max_event_age) * 1000000)::int8,"
		" (extract(epoch FROM p.max_future_skew) * 1000000)::int8,"
		" (extract(epoch FROM p.dedup_horizon) * 1000000)::int8,"
		" (extract(epoch FROM p.attribution_window) * 1000000)::int8,"
		" p.max_message_bytes,"
		" (extract(epoch FROM p.updated_at) * 1000000)::int8,"
		" p.kind = 'orders',"
		" coalesce((extract(epoch FROM o.grace_period) * 1000000)::int8, 0),"
		" p.kind = 'union', p.records IS NOT DISTINCT FROM 'attributed_orders'"
		" FROM adstream.pipeline AS p"
		" LEFT JOIN adstream.order_options AS o ON o.pipeline_id = p.id"
		" WHERE p.name = $1 FOR KEY SHARE OF p",
		1, {TEXTOID}
	},
	[STMT_LOCK_PIPELINE] = {
		"SELECT 1 FROM adstream.pipeline WHERE id = $1 FOR NO KEY UPDATE",
		1, {INT4OID}
	},
	[STMT_OFFSETS_INIT] = {
		"INSERT INTO adstream.consumed_offset (pipeline_id, source, topic, partition,"
		" next_offset)"
		" SELECT $1, $5, u.t, u.p, u.n FROM unnest($2::text[], $3::int4[], $4::int8[])"
		" AS u(t, p, n)"
		" ON CONFLICT (pipeline_id, source, topic, partition) DO NOTHING",
		5, {INT4OID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, TEXTOID}
	},
	[STMT_OFFSETS_LOCK] = {
		"SELECT o.topic, o.partition, o.next_offset"
		" FROM adstream.consumed_offset AS o"
		" JOIN unnest($2::text[], $3::int4[]) AS u(t, p)"
		"   ON o.topic = u.t COLLATE \"C\" AND o.partition = u.p"
		" WHERE o.pipeline_id = $1 AND o.source = $5"
		" ORDER BY o.topic, o.partition FOR UPDATE OF o",
		5, {INT4OID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, TEXTOID}
	},
	[STMT_OFFSETS_SAVE] = {
		"UPDATE adstream.consumed_offset AS o"
		" SET next_offset = greatest(o.next_offset, u.n), updated_at = now(),"
		" max_event_time = greatest(o.max_event_time, u.m),"
		" kafka_time = greatest(o.kafka_time, u.k)"
		" FROM unnest($2::text[], $3::int4[], $4::int8[], $5::timestamptz[], $6::timestamptz[])"
		"   AS u(t, p, n, m, k)"
		" WHERE o.pipeline_id = $1 AND o.source = $7 AND o.topic = u.t COLLATE \"C\""
		" AND o.partition = u.p",
		7, {INT4OID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID,
		TIMESTAMPTZARRAYOID, TEXTOID}
	},
	[STMT_DEAD_LETTER] = {
		"INSERT INTO adstream.dead_letter (pipeline_id, topic, partition, \"offset\","
		" kafka_ts, reason, detail, payload)"
		" SELECT $1, u.t, u.p, u.o, u.ts, u.r, u.d, u.b"
		" FROM unnest($2::text[], $3::int4[], $4::int8[], $5::timestamptz[],"
		" $6::text[], $7::text[], $8::bytea[]) AS u(t, p, o, ts, r, d, b)",
		8, {INT4OID, TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID,
		TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, BYTEAARRAYOID}
	},
	[STMT_ORDER_INSERT] = {
		"INSERT INTO adstream.attributed_order (pipeline_id, order_key, order_id, user_id,"
		" store_id, order_time, amount_micros, currency, received_at, state, due_at,"
		" expires_at)"
		" SELECT $1, u.k, u.i, u.u, u.s, u.t, u.a, u.c, $9, 'pending', $10,"
		" u.t + $11 * interval '1 microsecond'"
		" FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],"
		" $7::int8[], $8::text[]) WITH ORDINALITY AS u(k, i, u, s, t, a, c, n)"
		" ORDER BY u.n"
		" ON CONFLICT (pipeline_id, order_key) DO NOTHING",
		11, {INT4OID, UUIDARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TIMESTAMPTZARRAYOID, INT8ARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
		INT8OID}
	},
	[STMT_UNION_MERGE] = {
		"SELECT merged FROM adstream._merge_union($1, $2, $3::uuid[], $4::int8[], $5::text[])",
		5, {INT4OID, TEXTOID, UUIDARRAYOID, INT8ARRAYOID, TEXTARRAYOID}
	},
};

static SPIPlanPtr plans[NUM_STMTS];

/* Prepare (once) and run a statement; returns the SPI result code. */
static int
run_stmt(Stmt stmt, Datum *values, const char *nulls)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			rc;

	if (plans[stmt] == NULL)
	{
		SPIPlanPtr	plan;

		plan = SPI_prepare(stmt_defs[stmt].sql, stmt_defs[stmt].nargs,
						   (Oid *) stmt_defs[stmt].argtypes);
		if (plan == NULL)
			elog(ERROR, "adstream: could not prepare statement %d: %s",
				 (int) stmt, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "adstream: could not keep plan of statement %d", (int) stmt);
		plans[stmt] = plan;
	}
	rc = SPI_execute_plan(plans[stmt], values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "adstream: statement %d failed: %s",
			 (int) stmt, SPI_result_code_string(rc));
	MemoryContextSwitchTo(cxt);
	return rc;
}

/*
 * Array builders.  Each takes n Datums (and optional null flags) and makes
 * a one-dimensional array of the given element type.
 */
static Datum
make_array(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1];

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	dims[0] = n;
	lbs[0] = 1;
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  elemtype, typlen, typbyval,
											  typalign));
}

/* A text Datum of a C string, or a null flag for NULL. */
static Datum
text_or_null(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

bool
adstream_load_pipeline(const char *name, AdstreamPipeline *pipeline)
{
	Datum		values[1];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	values[0] = CStringGetTextDatum(name);
	run_stmt(STMT_PIPELINE, values, NULL);
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	pipeline->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	pipeline->name = pstrdup(name);
	pipeline->max_event_age = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	pipeline->max_future_skew = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
	pipeline->dedup_horizon = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	pipeline->attribution_window = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
	pipeline->max_message_bytes = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
	pipeline->version = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
	pipeline->is_orders = DatumGetBool(SPI_getbinval(tup, desc, 9, &isnull));
	pipeline->grace_period = DatumGetInt64(SPI_getbinval(tup, desc, 10, &isnull));
	pipeline->is_union = DatumGetBool(SPI_getbinval(tup, desc, 11, &isnull));
	pipeline->union_orders = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return true;
}

static int
cmp_part(const void *a, const void *b)
{
	const PartState *pa = (const PartState *) a;
	const PartState *pb = (const PartState *) b;
	int			c = strcmp(pa->topic, pb->topic);

	if (c != 0)
		return c;
	return (pa->partition > pb->partition) - (pa->partition < pb->partition);
}

static PartState *
find_part(PartState *parts, int nparts, const char *topic, int32 partition)
{
	PartState	key;

	key.topic = topic;
	key.partition = partition;
	return bsearch(&key, parts, nparts, sizeof(PartState), cmp_part);
}

/*
 * Steps 1 and 2: lock the partitions' offset rows and mark messages that
 * were already applied as skipped.  Returns the partitions, sorted.
 */
static PartState *
lock_offsets(const AdstreamPipeline *pl, const char *source,
			 const AdstreamMessage *msgs, int n, MsgState *st, int *nparts_out)
{
	PartState  *parts = palloc(sizeof(PartState) * Max(n, 1));
	int			nparts = 0;
	Datum		values[5];
	Datum	   *topics;
	Datum	   *partnums;
	Datum	   *firsts;

	/* distinct partitions with their lowest offset */
	for (int i = 0; i < n; i++)
	{
		if (msgs[i].topic == NULL)
			continue;
		parts[nparts].topic = msgs[i].topic;
		parts[nparts].partition = msgs[i].partition;
		parts[nparts].first_offset = msgs[i].offset;
		nparts++;
	}
	*nparts_out = 0;
	if (nparts == 0)
		return parts;
	qsort(parts, nparts, sizeof(PartState), cmp_part);
	{
		int			w = 0;

		for (int r = 0; r < nparts; r++)
		{
			if (w > 0 && cmp_part(&parts[w - 1], &parts[r]) == 0)
				parts[w - 1].first_offset = Min(parts[w - 1].first_offset,
												parts[r].first_offset);
			else
				parts[w++] = parts[r];
		}
		nparts = w;
	}

	topics = palloc(sizeof(Datum) * nparts);
	partnums = palloc(sizeof(Datum) * nparts);
	firsts = palloc(sizeof(Datum) * nparts);
	for (int i = 0; i < nparts; i++)
	{
		topics[i] = CStringGetTextDatum(parts[i].topic);
		partnums[i] = Int32GetDatum(parts[i].partition);
		firsts[i] = Int64GetDatum(parts[i].first_offset);
		parts[i].next_offset = 0;
		parts[i].has_event_time = false;
		parts[i].has_kafka_time = false;
	}
	values[0] = Int32GetDatum(pl->id);
	values[1] = make_array(topics, NULL, nparts, TEXTOID);
	values[2] = make_array(partnums, NULL, nparts, INT4OID);
	values[3] = make_array(firsts, NULL, nparts, INT8OID);
	values[4] = CStringGetTextDatum(source);
	run_stmt(STMT_OFFSETS_INIT, values, NULL);
	run_stmt(STMT_OFFSETS_LOCK, values, NULL);
	if (SPI_processed != nparts)
		elog(ERROR, "adstream: locked %llu offset rows, expected %d",
			 (unsigned long long) SPI_processed, nparts);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *topic = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		int32		partition = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		PartState  *p = find_part(parts, nparts, topic, partition);

		if (p == NULL)
			elog(ERROR, "adstream: unexpected offset row for %s/%d", topic, partition);
		p->next_offset = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);

	/* skip what was applied before, and repeats within this batch */
	for (int i = 0; i < n; i++)
	{
		PartState  *p;

		if (msgs[i].topic == NULL)
			continue;
		p = find_part(parts, nparts, msgs[i].topic, msgs[i].partition);
		if (msgs[i].offset < p->next_offset)
			st[i].status = MSG_SKIPPED;
		else
			p->next_offset = msgs[i].offset + 1;
	}
	*nparts_out = nparts;
	return parts;
}

/* Step 7: store the advanced offsets, and the partitions' latest event times. */
static void
save_offsets(const AdstreamPipeline *pl, const char *source, PartState *parts, int nparts)
{
	Datum		values[7];
	Datum	   *topics = palloc(sizeof(Datum) * nparts);
	Datum	   *partnums = palloc(sizeof(Datum) * nparts);
	Datum	   *nexts = palloc(sizeof(Datum) * nparts);
	Datum	   *times = palloc(sizeof(Datum) * nparts);
	bool	   *no_time = palloc(sizeof(bool) * nparts);
	Datum	   *ktimes = palloc(sizeof(Datum) * nparts);
	bool	   *no_ktime = palloc(sizeof(bool) * nparts);

	for (int i = 0; i < nparts; i++)
	{
		topics[i] = CStringGetTextDatum(parts[i].topic);
		partnums[i] = Int32GetDatum(parts[i].partition);
		nexts[i] = Int64GetDatum(parts[i].next_offset);
		times[i] = TimestampTzGetDatum(parts[i].max_event_time);
		no_time[i] = !parts[i].has_event_time;
		ktimes[i] = TimestampTzGetDatum(parts[i].kafka_time);
		no_ktime[i] = !parts[i].has_kafka_time;
	}
	values[0] = Int32GetDatum(pl->id);
	values[1] = make_array(topics, NULL, nparts, TEXTOID);
	values[2] = make_array(partnums, NULL, nparts, INT4OID);
	values[3] = make_array(nexts, NULL, nparts, INT8OID);
	values[4] = make_array(times, no_time, nparts, TIMESTAMPTZOID);
	values[5] = make_array(ktimes, no_ktime, nparts, TIMESTAMPTZOID);
	values[6] = CStringGetTextDatum(source);
	run_stmt(STMT_OFFSETS_SAVE, values, NULL);
}

/* Order message indexes by dedup key, then by position (first wins). */
static int
cmp_key_pos(const void *a, const void *b, void *arg)
{
	const MsgState *st = (const MsgState *) arg;
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;
	int			c = memcmp(st[ia].event.key, st[ib].event.key, 16);

	if (c != 0)
		return c;
	return (ia > ib) - (ia < ib);
}

/* Minute of an event time: the UTC minute is the same in every zone. */
static TimestampTz
minute_of(TimestampTz t)
{
	TimestampTz m = t - (t % USECS_PER_MINUTE);

	if (t % USECS_PER_MINUTE < 0)
		m -= USECS_PER_MINUTE;
	return m;
}

/* Order new events by (minute, ad), to group them. */
static int
cmp_minute_ad(const void *a, const void *b, void *arg)
{
	const MsgState *st = (const MsgState *) arg;
	const AdstreamEvent *ea = &st[*(const int *) a].event;
	const AdstreamEvent *eb = &st[*(const int *) b].event;
	TimestampTz ma = minute_of(ea->event_time);
	TimestampTz mb = minute_of(eb->event_time);

	if (ma != mb)
		return (ma > mb) - (ma < mb);
	return strcmp(ea->ad_id, eb->ad_id);
}

/*
 * The OID of enum type adstream.event_type.  Looked up every batch, not
 * cached: the extension may have been dropped and created again since.
 */
static Oid
event_type_oid(void)
{
	Oid			typid;

	typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
							CStringGetDatum("event_type"),
							ObjectIdGetDatum(get_namespace_oid("adstream", false)));
	if (!OidIsValid(typid))
		elog(ERROR, "adstream: type adstream.event_type does not exist");
	return typid;
}

/*
 * Step 4b: look the batch's unique keys up among the stored events; store
 * the events not found, which are the new ones, and mark the others as
 * duplicates.  uniq[] is sorted by key, so the probes walk the key index
 * in order.
 */
static void
store_events(const AdstreamPipeline *pl, MsgState *st, int *uniq, int nuniq)
{
	int64		keep = Max(pl->dedup_horizon, pl->attribution_window);
	pg_uuid_t **keys = palloc(sizeof(pg_uuid_t *) * nuniq);
	bool	   *found = palloc(sizeof(bool) * nuniq);
	Oid			type_oid = event_type_oid();
	Datum		types[2];
	AdstreamTableWriter *w;
	const AdstreamColumn columns[] = {
		{"pipeline_id", INT4OID}, {"event_key", UUIDOID}, {"event_id", TEXTOID},
		{"event_type", type_oid}, {"event_time", TIMESTAMPTZOID},
		{"user_id", TEXTOID}, {"ad_id", TEXTOID}, {"campaign_id", TEXTOID},
		{"advertiser_id", TEXTOID}, {"store_id", TEXTOID},
		{"cost_micros", INT8OID}, {"region", TEXTOID},
		{"expires_at", TIMESTAMPTZOID}
	};

	for (int i = 0; i < nuniq; i++)
		keys[i] = (pg_uuid_t *) st[uniq[i]].event.key;
	adstream_find_stored_keys(pl->id, keys, nuniq, found);

	types[0] = DirectFunctionCall2(enum_in, CStringGetDatum("impression"),
								   ObjectIdGetDatum(type_oid));
	types[1] = DirectFunctionCall2(enum_in, CStringGetDatum("click"),
								   ObjectIdGetDatum(type_oid));
	w = adstream_writer_open("event", columns, lengthof(columns));
	for (int i = 0; i < nuniq; i++)
	{
		AdstreamEvent *ev = &st[uniq[i]].event;
		Datum		values[lengthof(columns)];
		bool		nulls[lengthof(columns)] = {0};

		if (found[i])
		{
			st[uniq[i]].status = MSG_DUPLICATE;
			continue;
		}
		st[uniq[i]].status = MSG_NEW;
		values[0] = Int32GetDatum(pl->id);
		values[1] = PointerGetDatum(ev->key);
		values[2] = CStringGetTextDatum(ev->event_id);
		values[3] = types[ev->is_click ? 1 : 0];
		values[4] = TimestampTzGetDatum(ev->event_time);
		values[5] = CStringGetTextDatum(ev->user_id);
		values[6] = CStringGetTextDatum(ev->ad_id);
		values[7] = text_or_null(ev->campaign_id, &nulls[7]);
		values[8] = text_or_null(ev->advertiser_id, &nulls[8]);
		values[9] = text_or_null(ev->store_id, &nulls[9]);
		values[10] = Int64GetDatum(ev->cost_micros);
		nulls[10] = !ev->has_cost;
		values[11] = text_or_null(ev->region, &nulls[11]);
		values[12] = TimestampTzGetDatum(ev->event_time + keep);
		adstream_writer_put(w, values, nulls);
	}
	adstream_writer_close(w);
}

/* Columns of adstream.minute_delta, in the order aggregate() fills them. */
static const AdstreamColumn delta_columns[] = {
	{"pipeline_id", INT4OID}, {"window_start", TIMESTAMPTZOID},
	{"ad_id", TEXTOID}, {"impressions", INT8OID}, {"clicks", INT8OID},
	{"spend_micros", INT8OID}, {"added_at", TIMESTAMPTZOID}
};

/* Step 5: append the new events' (minute, ad) increments. */
static void
aggregate(const AdstreamPipeline *pl, MsgState *st, int *fresh, int nfresh)
{
	AdstreamTableWriter *w;

	qsort_arg(fresh, nfresh, sizeof(int), cmp_minute_ad, st);
	w = adstream_writer_open("minute_delta", delta_columns, lengthof(delta_columns));
	for (int i = 0; i < nfresh;)
	{
		AdstreamEvent *first = &st[fresh[i]].event;
		int64		ni = 0,
					nc = 0,
					sp = 0;
		int			j;
		Datum		values[lengthof(delta_columns)];
		bool		nulls[lengthof(delta_columns)] = {0};

		for (j = i; j < nfresh && cmp_minute_ad(&fresh[i], &fresh[j], st) == 0; j++)
		{
			AdstreamEvent *ev = &st[fresh[j]].event;

			if (ev->is_click)
				nc++;
			else
				ni++;
			if (pg_add_s64_overflow(sp, ev->cost_micros, &sp))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("spend of ad \"%s\" in one minute exceeds the bigint range of spend_micros",
								first->ad_id)));
		}
		values[0] = Int32GetDatum(pl->id);
		values[1] = TimestampTzGetDatum(minute_of(first->event_time));
		values[2] = CStringGetTextDatum(first->ad_id);
		values[3] = Int64GetDatum(ni);
		values[4] = Int64GetDatum(nc);
		values[5] = Int64GetDatum(sp);
		values[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		adstream_writer_put(w, values, nulls);
		i = j;
	}
	adstream_writer_close(w);
}

/* Step 6: dead-letter the rejected messages, bytes and coordinates. */
static void
store_dead_letters(const AdstreamPipeline *pl, const AdstreamMessage *msgs,
				   MsgState *st, int n, int nrejected)
{
	Datum		values[8];
	Datum	   *cols[7];
	bool	   *nulls[7];
	int			k = 0;

	for (int c = 0; c < 7; c++)
	{
		cols[c] = palloc(sizeof(Datum) * nrejected);
		nulls[c] = palloc0(sizeof(bool) * nrejected);
	}
	for (int i = 0; i < n; i++)
	{
		const AdstreamMessage *m = &msgs[i];
		bytea	   *payload;

		if (st[i].status != MSG_REJECTED)
			continue;
		cols[0][k] = text_or_null(m->topic, &nulls[0][k]);
		cols[1][k] = Int32GetDatum(m->partition);
		nulls[1][k] = m->topic == NULL;
		cols[2][k] = Int64GetDatum(m->offset);
		nulls[2][k] = m->topic == NULL;
		cols[3][k] = TimestampTzGetDatum(m->kafka_ts);
		nulls[3][k] = !m->has_kafka_ts;
		cols[4][k] = CStringGetTextDatum(adstream_reject_code(st[i].reason));
		cols[5][k] = CStringGetTextDatum(st[i].detail);
		payload = palloc(VARHDRSZ + m->len);
		SET_VARSIZE(payload, VARHDRSZ + m->len);
		if (m->len > 0)
			memcpy(VARDATA(payload), m->data, m->len);
		cols[6][k] = PointerGetDatum(payload);
		k++;
	}
	values[0] = Int32GetDatum(pl->id);
	values[1] = make_array(cols[0], nulls[0], k, TEXTOID);
	values[2] = make_array(cols[1], nulls[1], k, INT4OID);
	values[3] = make_array(cols[2], nulls[2], k, INT8OID);
	values[4] = make_array(cols[3], nulls[3], k, TIMESTAMPTZOID);
	values[5] = make_array(cols[4], NULL, k, TEXTOID);
	values[6] = make_array(cols[5], NULL, k, TEXTOID);
	values[7] = make_array(cols[6], NULL, k, BYTEAOID);
	run_stmt(STMT_DEAD_LETTER, values, NULL);
}

/*
 * The caller's coordinates and timestamps are not message content: a bad
 * one is the caller's error.  Checked here, where the arithmetic is done
 * (offset + 1, reference time +/- an interval), for every caller.
 */
static void
check_coordinates(const AdstreamMessage *msgs, int n)
{
	for (int i = 0; i < n; i++)
	{
		const AdstreamMessage *m = &msgs[i];

		if (m->topic != NULL &&
			(m->partition < 0 || m->offset < 0 || m->offset == PG_INT64_MAX))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("partitions and offsets must be between 0 and 2^63 - 2")));
		if (m->has_kafka_ts && TIMESTAMP_NOT_FINITE(m->kafka_ts))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("Kafka timestamps must be finite")));
	}
}

/* Reject events too old or too far ahead of their reference time. */
static AdstreamReject
check_age(const AdstreamPipeline *pl, const AdstreamMessage *m,
		  TimestampTz event_time, TimestampTz now, char **detail)
{
	TimestampTz ref = m->has_kafka_ts ? m->kafka_ts : now;
	const char *against = m->has_kafka_ts ? "the Kafka timestamp" : "the current time";

	if (event_time < ref - pl->max_event_age)
	{
		*detail = psprintf("%s %s is more than max_event_age before %s %s",
						   pl->is_orders ? "order time" : "event time",
						   pstrdup(timestamptz_to_str(event_time)), against,
						   pstrdup(timestamptz_to_str(ref)));
		return ADSTREAM_REJECT_TOO_OLD;
	}
	if (event_time > ref + pl->max_future_skew)
	{
		*detail = psprintf("%s %s is more than max_future_skew after %s %s",
						   pl->is_orders ? "order time" : "event time",
						   pstrdup(timestamptz_to_str(event_time)), against,
						   pstrdup(timestamptz_to_str(ref)));
		return ADSTREAM_REJECT_TOO_FAR_IN_FUTURE;
	}
	return ADSTREAM_ACCEPT;
}

/*
 * Steps 4 and 5 of an orders pipeline: insert the valid orders, pending
 * their grace period; an order id seen before (in this batch or stored)
 * is a duplicate.  Returns how many were new.
 */
static int
store_orders(const AdstreamPipeline *pl, MsgState *st, int *valid, int nvalid,
			 TimestampTz now)
{
	Datum		values[11];
	Datum	   *cols[7];

	for (int c = 0; c < 7; c++)
		cols[c] = palloc(sizeof(Datum) * nvalid);
	for (int i = 0; i < nvalid; i++)
	{
		AdstreamOrder *o = &st[valid[i]].order;

		cols[0][i] = PointerGetDatum(o->key);
		cols[1][i] = CStringGetTextDatum(o->order_id);
		cols[2][i] = CStringGetTextDatum(o->user_id);
		cols[3][i] = CStringGetTextDatum(o->store_id);
		cols[4][i] = TimestampTzGetDatum(o->order_time);
		cols[5][i] = Int64GetDatum(o->amount_micros);
		cols[6][i] = CStringGetTextDatum(o->currency);
	}
	values[0] = Int32GetDatum(pl->id);
	values[1] = make_array(cols[0], NULL, nvalid, UUIDOID);
	values[2] = make_array(cols[1], NULL, nvalid, TEXTOID);
	values[3] = make_array(cols[2], NULL, nvalid, TEXTOID);
	values[4] = make_array(cols[3], NULL, nvalid, TEXTOID);
	values[5] = make_array(cols[4], NULL, nvalid, TIMESTAMPTZOID);
	values[6] = make_array(cols[5], NULL, nvalid, INT8OID);
	values[7] = make_array(cols[6], NULL, nvalid, TEXTOID);
	values[8] = TimestampTzGetDatum(now);
	values[9] = TimestampTzGetDatum(now + pl->grace_period);
	values[10] = Int64GetDatum(pl->dedup_horizon);
	run_stmt(STMT_ORDER_INSERT, values, NULL);
	return (int) SPI_processed;
}

/*
 * Steps 4 and 5 of a union pipeline: merge the valid records, in message
 * order, through adstream._merge_union(), which keeps each record's newest
 * version and writes each newer version it sees to the outbox.  Returns
 * how many were merged (the others were duplicates or stale).
 */
static int
merge_records(const AdstreamPipeline *pl, const char *source,
			  const AdstreamMessage *msgs, MsgState *st, int *valid, int nvalid)
{
	Datum		values[5];
	Datum	   *cols[3];
	bool		isnull;
	int64		merged;

	for (int c = 0; c < 3; c++)
		cols[c] = palloc(sizeof(Datum) * nvalid);
	for (int i = 0; i < nvalid; i++)
	{
		const AdstreamMessage *m = &msgs[valid[i]];

		cols[0][i] = PointerGetDatum(st[valid[i]].record.uuid);
		cols[1][i] = Int64GetDatum(st[valid[i]].record.version);
		/* the parser checked it is UTF-8 without NUL: valid text */
		cols[2][i] = PointerGetDatum(cstring_to_text_with_len(m->data, m->len));
	}
	values[0] = Int32GetDatum(pl->id);
	values[1] = CStringGetTextDatum(source);
	values[2] = make_array(cols[0], NULL, nvalid, UUIDOID);
	values[3] = make_array(cols[1], NULL, nvalid, INT8OID);
	values[4] = make_array(cols[2], NULL, nvalid, TEXTOID);
	run_stmt(STMT_UNION_MERGE, values, NULL);
	if (SPI_processed != 1)
		elog(ERROR, "adstream: adstream._merge_union returned %llu rows",
			 (unsigned long long) SPI_processed);
	merged = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										 &isnull));
	SPI_freetuptable(SPI_tuptable);
	return (int) merged;
}

void
adstream_process_batch(const AdstreamPipeline *pl, const char *source,
					   const AdstreamMessage *msgs, int n, AdstreamBatchResult *result)
{
	MemoryContext batch_cxt;
	MemoryContext scratch_cxt;
	MemoryContext oldcxt;
	MsgState   *st;
	PartState  *parts;
	int			nparts;
	int		   *valid;
	int			nvalid = 0;
	int			nuniq = 0;
	int			nfresh = 0;
	int			nrejected = 0;
	TimestampTz now = adstream_now();

	memset(result, 0, sizeof(*result));
	if (n <= 0)
		return;
	check_coordinates(msgs, n);

	/*
	 * Everything of the batch lives in batch_cxt, freed at the end; the JSON
	 * parser's garbage lives in scratch_cxt, reset after every message.
	 */
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "adstream batch",
									  ALLOCSET_DEFAULT_SIZES);
	scratch_cxt = AllocSetContextCreate(batch_cxt, "adstream parse",
										ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(batch_cxt);

	st = palloc0(sizeof(MsgState) * n);
	valid = palloc(sizeof(int) * n);
	for (int i = 0; i < n; i++)
		st[i].status = MSG_VALID;

	/* 1, 2: offsets */
	parts = lock_offsets(pl, source, msgs, n, st, &nparts);

	/* 3: parse and validate */
	for (int i = 0; i < n; i++)
	{
		AdstreamReject r;

		if (st[i].status == MSG_SKIPPED)
		{
			result->skipped++;
			continue;
		}
		if (msgs[i].topic != NULL && msgs[i].has_kafka_ts)
		{
			/* the partition's consumed Kafka time, for maintenance */
			PartState  *p = find_part(parts, nparts, msgs[i].topic, msgs[i].partition);

			if (!p->has_kafka_time || msgs[i].kafka_ts > p->kafka_time)
				p->kafka_time = msgs[i].kafka_ts;
			p->has_kafka_time = true;
		}
		if (pl->is_union)
		{
			r = adstream_parse_record(msgs[i].data, msgs[i].len,
									  pl->max_message_bytes, pl->union_orders,
									  scratch_cxt, &st[i].record, &st[i].detail);
			/* a region's records come from that region's cluster only */
			if (r == ADSTREAM_ACCEPT && strcmp(st[i].record.region, source) != 0)
			{
				r = ADSTREAM_REJECT_WRONG_REGION;
				st[i].detail = psprintf("record of region \"%s\" read from the cluster of region \"%s\"",
										st[i].record.region, source);
			}
			MemoryContextReset(scratch_cxt);
			if (r != ADSTREAM_ACCEPT)
			{
				st[i].status = MSG_REJECTED;
				st[i].reason = r;
				nrejected++;
			}
			else
				valid[nvalid++] = i;
			continue;
		}
		if (pl->is_orders)
		{
			r = adstream_parse_order(msgs[i].data, msgs[i].len,
									 pl->max_message_bytes, scratch_cxt,
									 &st[i].order, &st[i].detail);
			st[i].event.event_time = st[i].order.order_time;
		}
		else
			r = adstream_parse_event(msgs[i].data, msgs[i].len,
									 pl->max_message_bytes, scratch_cxt,
									 &st[i].event, &st[i].detail);
		MemoryContextReset(scratch_cxt);
		if (r == ADSTREAM_ACCEPT)
			r = check_age(pl, &msgs[i], st[i].event.event_time, now, &st[i].detail);
		if (r != ADSTREAM_ACCEPT)
		{
			st[i].status = MSG_REJECTED;
			st[i].reason = r;
			nrejected++;
			continue;
		}
		if (msgs[i].topic != NULL)
		{
			/* the partition's event time, for the watermark of final mode */
			PartState  *p = find_part(parts, nparts, msgs[i].topic, msgs[i].partition);

			if (!p->has_event_time || st[i].event.event_time > p->max_event_time)
				p->max_event_time = st[i].event.event_time;
			p->has_event_time = true;
		}
		valid[nvalid++] = i;
	}

	if (pl->is_union)
	{
		/* 4, 5: output records of the regions */
		if (nvalid > 0)
			nfresh = merge_records(pl, source, msgs, st, valid, nvalid);
		goto dead_letters;
	}
	if (pl->is_orders)
	{
		/* 4, 5: orders */
		if (nvalid > 0)
			nfresh = store_orders(pl, st, valid, nvalid, now);
		goto dead_letters;
	}

	/* 4a: dedup within the batch; valid[] becomes the unique keys, sorted */
	qsort_arg(valid, nvalid, sizeof(int), cmp_key_pos, st);
	for (int i = 0; i < nvalid; i++)
	{
		if (nuniq > 0 &&
			memcmp(st[valid[nuniq - 1]].event.key, st[valid[i]].event.key, 16) == 0)
			st[valid[i]].status = MSG_DUPLICATE;
		else
			valid[nuniq++] = valid[i];
	}

	/*
	 * 4b: store the events; the stored keys decide which are new.  Only
	 * under the pipeline's lock: another batch of the pipeline may be
	 * storing the same keys, and the key index cannot be unique.
	 */
	if (nuniq > 0)
	{
		Datum		pid = Int32GetDatum(pl->id);

		run_stmt(STMT_LOCK_PIPELINE, &pid, NULL);
		if (SPI_processed != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("pipeline \"%s\" was dropped", pl->name)));
		store_events(pl, st, valid, nuniq);
	}

	/* 5: aggregate increments of the new events */
	for (int i = 0; i < nuniq; i++)
		if (st[valid[i]].status == MSG_NEW)
			valid[nfresh++] = valid[i];
	if (nfresh > 0)
		aggregate(pl, st, valid, nfresh);

	/* 6: dead letters */
dead_letters:
	if (nrejected > 0)
		store_dead_letters(pl, msgs, st, n, nrejected);

	/* 7: offsets */
	if (nparts > 0)
		save_offsets(pl, source, parts, nparts);

	result->accepted = nfresh;
	result->rejected = nrejected;
	result->duplicates = n - result->skipped - nrejected - nfresh;

	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(batch_cxt);
}
