/*-------------------------------------------------------------------------
 *
 * attribution.c
 *	  Deciding orders and enriching them.
 *
 * An order is stored pending by the core (core.c) when it arrives, due at
 * the end of its grace period.  Then, in one transaction per step:
 *
 *	1. Decide (adstream._decide_orders, SQL): the due orders are matched
 *	   against the stored ad events of the pipeline's events pipeline, by
 *	   the same user for the same store, at or before the order time and
 *	   within the window of the event's kind; the pipeline's rule picks
 *	   one.  Their revenue is added to adstream.revenue_minute in the same
 *	   statement.  Without a hook the order is done and its output record
 *	   is written to the outbox in the same transaction; with one it moves
 *	   to enriching.
 *	2. Enrich (here): for each order due for its hook, call the hook in a
 *	   subtransaction, as the role that set it, in a security-restricted
 *	   context, interrupted after enrich_timeout.  Whatever happens, the
 *	   outcome is recorded (adstream._finish_enrichment): a result finishes
 *	   the order; an error or timeout schedules a retry with a doubling
 *	   backoff, or after enrich_max_attempts finishes the order without
 *	   enrichment.  Only then is the outbox locked and written, so a slow
 *	   hook never holds up the producers or the folds.
 *
 * Every step commits its orders' new state with their records, so a crash
 * at any point re-runs the step from the stored state: an order is emitted
 * exactly once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "attribution.h"
#include "source.h"

/* One order due for its hook. */
typedef struct HookCall
{
	Datum		key;			/* uuid, copied */
	char	   *document;		/* the attributed order, JSON */
	char	   *result;			/* the hook's JSON object, or NULL */
	char	   *error;			/* why it failed, or NULL */
} HookCall;

static TimeoutId hook_timeout_id = MAX_TIMEOUTS;
static volatile sig_atomic_t hook_timed_out = false;

/* Interrupt the hook the way a statement timeout would. */
static void
hook_timeout_handler(void)
{
	hook_timed_out = true;
	InterruptPending = true;
	QueryCancelPending = true;
	SetLatch(MyLatch);
}

/* Call the hook once, in a subtransaction; sets call->result or call->error. */
static void
call_hook(HookCall *call, const char *sql, Oid role, int timeout_ms)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Oid			save_user;
	int			save_sec;

	if (hook_timeout_id == MAX_TIMEOUTS)
		hook_timeout_id = RegisterTimeout(USER_TIMEOUT, hook_timeout_handler);
	GetUserIdAndSecContext(&save_user, &save_sec);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1];
		int			rc;
		int			guc_level = NewGUCNestLevel();

		/* the same search_path whoever calls: the worker or SQL */
		(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		SetUserIdAndSecContext(role, save_sec | SECURITY_RESTRICTED_OPERATION);
		hook_timed_out = false;
		enable_timeout_after(hook_timeout_id, timeout_ms);
		args[0] = CStringGetTextDatum(call->document);
		rc = SPI_execute_with_args(sql, 1, argtypes, args, NULL, false, 1);
		disable_timeout(hook_timeout_id, false);
		if (hook_timed_out)
			QueryCancelPending = false; /* fired as the hook returned: ours, moot */
		adstream_check_spi(rc, "enrichment hook");
		if (SPI_processed == 1)
		{
			char	   *value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			char	   *kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);

			if (value != NULL && strcmp(kind, "object") != 0)
				call->error = MemoryContextStrdup(cxt,
												  psprintf("the hook returned a JSON %s, not an object",
														   kind));
			else if (value != NULL)
				call->result = MemoryContextStrdup(cxt, value);
		}
		SetUserIdAndSecContext(save_user, save_sec);
		AtEOXact_GUC(true, guc_level);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		disable_timeout(hook_timeout_id, false);
		if (hook_timed_out)
			QueryCancelPending = false; /* our interrupt, whatever error came first */
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		SetUserIdAndSecContext(save_user, save_sec);
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (hook_timed_out)
			call->error = psprintf("the hook did not return within enrich_timeout (%d ms)",
								   timeout_ms);
		else if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);	/* a real cancel request: stop */
		else
			call->error = pstrdup(edata->message);
	}
	PG_END_TRY();
}

/* Step 2: call the hook for the orders due for it; returns the calls made. */
static int
enrich(int32 pipeline_id, TimestampTz now, int max_rows, AdstreamAttribution *result)
{
	Oid			argtypes[3] = {INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		args[3];
	HookCall   *calls;
	int			n;
	char	   *sql = NULL;
	Oid			role = InvalidOid;
	int			timeout_ms = 0;
	char	   *setup_error = NULL;
	Datum	   *keys;
	Datum	   *results;
	bool	   *no_result;
	Datum	   *errors;
	bool	   *no_error;
	Oid			fargtypes[5] = {INT4OID, TIMESTAMPTZOID, UUIDARRAYOID, JSONBARRAYOID,
	TEXTARRAYOID};
	Datum		fargs[5];
	bool		isnull;

	args[0] = Int32GetDatum(pipeline_id);
	args[1] = TimestampTzGetDatum(now);
	args[2] = Int32GetDatum(max_rows);
	adstream_check_spi(SPI_execute_with_args(
		"SELECT o.order_key, adstream._order_document(o, p.name, p.region)::text,"
		" x.enrich_function::oid, x.enrich_role::text,"
		" (extract(epoch FROM x.enrich_timeout) * 1000)::int4"
		" FROM adstream.attributed_order AS o"
		" JOIN adstream.pipeline AS p ON p.id = o.pipeline_id"
		" JOIN adstream.order_options AS x ON x.pipeline_id = o.pipeline_id"
		" WHERE o.pipeline_id = $1 AND o.state = 'enriching' AND o.due_at <= $2"
		" ORDER BY o.due_at, o.order_key LIMIT $3"
		" FOR UPDATE OF o SKIP LOCKED",
		3, argtypes, args, NULL, false, 0), "orders due for enrichment");
	n = (int) SPI_processed;
	if (n == 0)
		return 0;
	calls = palloc0(sizeof(HookCall) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		pg_uuid_t  *key = palloc(sizeof(pg_uuid_t));

		memcpy(key, DatumGetUUIDP(SPI_getbinval(tup, desc, 1, &isnull)), sizeof(pg_uuid_t));
		calls[i].key = UUIDPGetDatum(key);
		calls[i].document = SPI_getvalue(tup, desc, 2);
		if (i == 0)
		{
			Datum		fn = SPI_getbinval(tup, desc, 3, &isnull);
			char	   *rolename = SPI_getvalue(tup, desc, 4);
			char	   *fname;

			timeout_ms = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
			if (isnull || fn == 0)
				setup_error = NULL;	/* hook removed: finish without one */
			else if ((fname = get_func_name(DatumGetObjectId(fn))) == NULL)
				setup_error = psprintf("enrichment function with OID %u no longer exists",
									   DatumGetObjectId(fn));
			else if (!OidIsValid(role = get_role_oid(rolename, true)))
				setup_error = psprintf("role \"%s\" of the enrichment hook no longer exists",
									   rolename);
			else
				sql = psprintf("SELECT r::text, jsonb_typeof(r) FROM %s($1::jsonb) AS r",
							   quote_qualified_identifier(get_namespace_name(get_func_namespace(DatumGetObjectId(fn))),
														  fname));
		}
	}
	SPI_freetuptable(SPI_tuptable);

	for (int i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (setup_error != NULL)
			calls[i].error = setup_error;
		else if (sql != NULL)
			call_hook(&calls[i], sql, role, Max(timeout_ms, 1));
	}

	keys = palloc(sizeof(Datum) * n);
	results = palloc(sizeof(Datum) * n);
	no_result = palloc(sizeof(bool) * n);
	errors = palloc(sizeof(Datum) * n);
	no_error = palloc(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		keys[i] = calls[i].key;
		no_result[i] = calls[i].result == NULL;
		results[i] = no_result[i] ? (Datum) 0 :
			DirectFunctionCall1(jsonb_in, CStringGetDatum(calls[i].result));
		no_error[i] = calls[i].error == NULL;
		errors[i] = no_error[i] ? (Datum) 0 : CStringGetTextDatum(calls[i].error);
	}
	fargs[0] = Int32GetDatum(pipeline_id);
	fargs[1] = TimestampTzGetDatum(now);
	fargs[2] = PointerGetDatum(construct_array(keys, n, UUIDOID, UUID_LEN, false,
											   TYPALIGN_CHAR));
	fargs[3] = PointerGetDatum(construct_md_array(results, no_result, 1, &n,
												  (int[]) {1}, JSONBOID, -1, false,
												  TYPALIGN_INT));
	fargs[4] = PointerGetDatum(construct_md_array(errors, no_error, 1, &n,
												  (int[]) {1}, TEXTOID, -1, false,
												  TYPALIGN_INT));
	adstream_check_spi(SPI_execute_with_args(
		"SELECT adstream._finish_enrichment($1, $2, $3, $4, $5)",
		5, fargtypes, fargs, NULL, false, 1), "recording enrichment");
	{
		int64		finished = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1,
														   &isnull));

		/* every call either finished its order or scheduled a retry */
		result->enriched += finished;
		result->retried += n - finished;
	}
	return n;
}

void
adstream_attribute(int32 pipeline_id, TimestampTz now, int max_rows,
				   AdstreamAttribution *result)
{
	Oid			argtypes[3] = {INT4OID, TIMESTAMPTZOID, INT4OID};
	Datum		args[3];
	bool		isnull;

	memset(result, 0, sizeof(*result));
	args[0] = Int32GetDatum(pipeline_id);
	args[1] = TimestampTzGetDatum(now);
	args[2] = Int32GetDatum(max_rows);
	adstream_check_spi(SPI_execute_with_args("SELECT adstream._decide_orders($1, $2, $3)",
											 3, argtypes, args, NULL, false, 1),
					   "deciding orders");
	result->decided = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
	enrich(pipeline_id, now, max_rows, result);
}
