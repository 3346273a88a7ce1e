/*-------------------------------------------------------------------------
 *
 * store.c
 *	  Bulk writes to adstream's own tables and key probes.
 *
 * Ingest appends rows to two tables in every batch: the new events and
 * their aggregate increments.  Going through SQL (INSERT .. SELECT FROM
 * unnest(..)) costs a tuplestore round trip and one heap insertion with its
 * own WAL record per row.  Here rows go to the table access method in
 * groups of up to WRITE_GROUP with table_multi_insert(), one WAL record per
 * heap page, and then to every index of the table with
 * ExecInsertIndexTuples(): the same path COPY FROM takes.  Indexes added by
 * users are therefore maintained too; triggers and CHECK constraints are
 * refused with an error rather than silently skipped.
 *
 * The key probe reads adstream.event through its hash index on event_key
 * with a dirty snapshot, the snapshot unique checks use: it sees every
 * committed row and the current transaction's own rows, even when the
 * caller's snapshot is older (REPEATABLE READ).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "parser/parse_relation.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"

#include "store.h"

/* Rows handed to table_multi_insert() at once (COPY uses 1000 as well). */
#define WRITE_GROUP 1000

struct AdstreamTableWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	int			ncols;			/* columns the caller supplies */
	AttrNumber *attnos;			/* their attribute numbers */
	TupleTableSlot *slots[WRITE_GROUP];
	int			nbuffered;
	CommandId	cid;
	BulkInsertState bistate;
};

static Oid
adstream_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid("adstream", false);
	Oid			relid = get_relname_relid(relname, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"adstream.%s\" does not exist", relname),
				 errhint("Reinstall the extension with DROP EXTENSION adstream; CREATE EXTENSION adstream.")));
	return relid;
}

AdstreamTableWriter *
adstream_writer_open(const char *relname, const AdstreamColumn *columns,
					 int ncols)
{
	AdstreamTableWriter *w = palloc0(sizeof(AdstreamTableWriter));
	TriggerDesc *trig;
	TupleDesc	desc;

	w->rel = table_open(adstream_relid(relname), RowExclusiveLock);
	if (w->rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"adstream.%s\" is not a plain table", relname)));
	trig = w->rel->trigdesc;
	if (trig != NULL &&
		(trig->trig_insert_before_row || trig->trig_insert_after_row ||
		 trig->trig_insert_instead_row || trig->trig_insert_before_statement ||
		 trig->trig_insert_after_statement))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"adstream.%s\" has insert triggers, which adstream does not run",
						relname),
				 errhint("Drop the triggers; read the table or its views instead.")));
	if (w->rel->rd_att->constr != NULL && w->rel->rd_att->constr->num_check > 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"adstream.%s\" has CHECK constraints, which adstream does not run",
						relname)));

	desc = RelationGetDescr(w->rel);
	w->ncols = ncols;
	w->attnos = palloc(sizeof(AttrNumber) * ncols);
	for (int c = 0; c < ncols; c++)
	{
		AttrNumber	attno = attnameAttNum(w->rel, columns[c].name, false);

		/* someone altered adstream's table: refuse, never write past it */
		if (attno <= 0 ||
			TupleDescAttr(desc, attno - 1)->atttypid != columns[c].type)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of \"adstream.%s\" is missing or has another type",
							columns[c].name, relname),
					 errhint("Reinstall the extension; its tables must not be altered.")));
		w->attnos[c] = attno;
	}

	/*
	 * A column the caller does not supply is stored as NULL: refuse any that
	 * would need a value, a default or a generated value.
	 */
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		bool		supplied = false;

		for (int c = 0; c < ncols; c++)
			supplied |= (w->attnos[c] == att->attnum);
		if (!supplied && !att->attisdropped &&
			(att->attnotnull || att->atthasdef || att->attgenerated ||
			 att->attidentity))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column \"%s\" of \"adstream.%s\" needs a value adstream does not write",
							NameStr(att->attname), relname),
					 errhint("Columns added to adstream's tables must be nullable, without default.")));
	}

	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->cid = GetCurrentCommandId(true);
	w->bistate = GetBulkInsertState();
	return w;
}

static void
writer_flush(AdstreamTableWriter *w)
{
	if (w->nbuffered == 0)
		return;
	table_multi_insert(w->rel, w->slots, w->nbuffered, w->cid, 0, w->bistate);
	for (int i = 0; i < w->nbuffered; i++)
	{
		List	   *recheck;

		if (w->rri->ri_NumIndices > 0)
		{
#if PG_VERSION_NUM >= 160000
			recheck = ExecInsertIndexTuples(w->rri, w->slots[i], w->estate,
											false, false, NULL, NIL, false);
#else
			recheck = ExecInsertIndexTuples(w->rri, w->slots[i], w->estate,
											false, false, NULL, NIL);
#endif
			list_free(recheck);
		}
		ResetPerTupleExprContext(w->estate);
		ExecClearTuple(w->slots[i]);
	}
	w->nbuffered = 0;
}

void
adstream_writer_put(AdstreamTableWriter *w, Datum *values, bool *nulls)
{
	TupleDesc	desc = RelationGetDescr(w->rel);
	TupleTableSlot *slot;

	if (w->nbuffered == WRITE_GROUP)
		writer_flush(w);
	if (w->slots[w->nbuffered] == NULL)
		w->slots[w->nbuffered] = table_slot_create(w->rel, NULL);
	slot = w->slots[w->nbuffered];

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
	for (int c = 0; c < w->ncols; c++)
	{
		int			a = w->attnos[c] - 1;

		if (nulls[c] && TupleDescAttr(desc, a)->attnotnull)
			elog(ERROR, "adstream: NULL for NOT NULL column %s of adstream.%s",
				 NameStr(TupleDescAttr(desc, a)->attname),
				 RelationGetRelationName(w->rel));
		slot->tts_values[a] = values[c];
		slot->tts_isnull[a] = nulls[c];
	}
	ExecStoreVirtualTuple(slot);
	w->nbuffered++;
}

void
adstream_writer_close(AdstreamTableWriter *w)
{
	writer_flush(w);
	FreeBulkInsertState(w->bistate);
	for (int i = 0; i < WRITE_GROUP && w->slots[i] != NULL; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	ExecCloseIndices(w->rri);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	pfree(w);
	CommandCounterIncrement();
}

void
adstream_find_stored_keys(int32 pipeline_id, pg_uuid_t *const *keys, int n,
						  bool *found)
{
	Relation	heap = table_open(adstream_relid("event"), AccessShareLock);
	Relation	index = index_open(adstream_relid("event_key_idx"), AccessShareLock);
	AttrNumber	pipeline_att = attnameAttNum(heap, "pipeline_id", false);
	AttrNumber	key_att = attnameAttNum(heap, "event_key", false);
	TupleTableSlot *slot;
	SnapshotData dirty;
	IndexScanDesc scan;
	ScanKeyData key;

	/*
	 * Deduplication is only as good as this index: it must be the plain,
	 * complete hash index on event_key that the extension created.
	 */
	if (pipeline_att <= 0 || key_att <= 0 ||
		TupleDescAttr(RelationGetDescr(heap), pipeline_att - 1)->atttypid != INT4OID ||
		TupleDescAttr(RelationGetDescr(heap), key_att - 1)->atttypid != UUIDOID ||
		index->rd_rel->relam != HASH_AM_OID ||
		index->rd_index->indrelid != RelationGetRelid(heap) ||
		index->rd_index->indnatts != 1 ||
		index->rd_index->indkey.values[0] != key_att ||
		!index->rd_index->indisvalid || !index->rd_index->indisready ||
		RelationGetIndexExpressions(index) != NIL ||
		RelationGetIndexPredicate(index) != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"adstream.event_key_idx\" is not the hash index on event_key that deduplication needs"),
				 errhint("Reinstall the extension; its tables and indexes must not be altered.")));
	slot = table_slot_create(heap, NULL);
	InitDirtySnapshot(dirty);
#if PG_VERSION_NUM >= 180000
	scan = index_beginscan(heap, index, &dirty, NULL, 1, 0);
#else
	scan = index_beginscan(heap, index, &dirty, 1, 0);
#endif
	for (int i = 0; i < n; i++)
	{
		ScanKeyInit(&key, 1, HTEqualStrategyNumber, F_UUID_EQ,
					UUIDPGetDatum(keys[i]));
		index_rescan(scan, &key, 1, NULL, 0);
		found[i] = false;
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
		{
			bool		pnull;
			bool		knull;
			Datum		p = slot_getattr(slot, pipeline_att, &pnull);
			Datum		k = slot_getattr(slot, key_att, &knull);

			/* a hash index returns every key of the same 32-bit hash */
			if (!pnull && DatumGetInt32(p) == pipeline_id && !knull &&
				memcmp(DatumGetUUIDP(k)->data, keys[i]->data, UUID_LEN) == 0)
			{
				found[i] = true;
				break;
			}
		}
		CHECK_FOR_INTERRUPTS();
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, NoLock);
	table_close(heap, NoLock);
}
