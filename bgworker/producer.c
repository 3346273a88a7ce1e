/*-------------------------------------------------------------------------
 *
 * producer.c
 *	  The producer worker: one per enabled sink.  It sends the pipeline's
 *	  output records (adstream.outbox) to the sink's Kafka topic, exactly
 *	  once, in Kafka transactions.
 *
 * THE EXACTLY-ONCE OUTPUT PROTOCOL
 *
 * Invariant: the committed Kafka transactions of a sink hold every outbox
 * row of its pipeline up to the sink's progress exactly once, in id order,
 * and nothing else; an outbox row is deleted only after a committed Kafka
 * transaction holds it for every sink of the pipeline.
 *
 * The sink's progress is the last outbox id its committed transactions
 * hold.  Each transaction writes it last, as a progress record (key: the
 * transactional.id; partition 0 of the progress topic), so the rows and
 * the record saying they were sent become visible together or not at all.
 * After the Kafka commit it is also stored in adstream.sink.acked_id, from
 * which the outbox is pruned.
 *
 *	1. Start: init_transactions with the sink's fixed transactional.id.  The
 *	   coordinator fences every older producer of the sink (a zombie's next
 *	   call fails) and aborts its open transaction.  Only then is the latest
 *	   progress record read back, read_committed: nothing of an older
 *	   producer can commit any more, so what is read is final.  The position
 *	   is the larger of that record's last id and acked_id.
 *	2. Take up to batch_records outbox rows after the position, in id
 *	   order.  Outbox ids become visible in id order: every writer of the
 *	   outbox holds a lock on it until it commits, so no row can appear
 *	   later below a position already passed.  The WAL is flushed past
 *	   their commit before anything is sent (synchronous_commit may be off).
 *	3. begin; send each row (key: the record UUID; value: the stored
 *	   payload, byte for byte; headers adstream.version, adstream.outbox_id
 *	   and adstream.txn); send the progress record; commit.
 *	4. Committed: the position moves to the last id; then acked_id is
 *	   stored and the outbox pruned, in one database transaction.  Back to 2,
 *	   or wait on the latch, which the commit of new outbox rows sets.
 *
 * Every failure falls into one of these:
 *	- anything before the Kafka commit (a crash, a kill, an abortable error,
 *	  a broker down): the transaction is aborted, by us or by the next
 *	  start's init; the same rows are sent again, byte-identical, from the
 *	  position, in a new transaction;
 *	- after the Kafka commit, before step 4 reaches the database: the
 *	  progress record is committed, step 1 reads it back, and the rows are
 *	  never sent again;
 *	- a commit that times out is retried until librdkafka knows its outcome;
 *	- fenced (a newer producer with the same transactional.id): the worker
 *	  exits; the launcher starts it again with backoff, back to step 1.
 * The failure points of adstream.producer_fail_point stop the worker at
 * those instants, for the tests.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "kafka_out.h"
#include "sink.h"
#include "source.h"
#include "status.h"
#include "workers.h"

/* How long one blocking Kafka call may wait before interrupts are checked. */
#define CALL_TIMEOUT_MS 1000
/* Reading the progress record back at start. */
#define PROGRESS_TIMEOUT_MS 30000
/* Idle, the worker re-checks the outbox this often even without a wake-up. */
#define IDLE_RECHECK_MS 10000
/* Backoff between attempts of an aborted transaction. */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

typedef struct Producer
{
	AdstreamSink sink;
	AdstreamKafkaProducer *kafka;
	AdstreamSinkStatus *status;	/* NULL if shared memory is missing */
	int64		position;		/* last outbox id committed to Kafka */
	char		prev_txn[64];	/* the transaction that committed it; "" if none */
	int64		incarnation;	/* this worker's start, in transaction ids */
	int64		seq;			/* transactions attempted by this worker */
	int			retry_ms;
} Producer;

/* Stop at a failure point of adstream.producer_fail_point. */
static void
failure_point(Producer *pr, int point, const char *txn)
{
	if (adstream_producer_fail_point != point)
		return;
	/* what was sent so far reaches the broker, as it may before a crash */
	adstream_kafka_txn_flush(pr->kafka, CALL_TIMEOUT_MS);
	ereport(LOG,
			(errmsg("adstream: sink \"%s\": failure point %s reached in transaction %s; the producer stops",
					pr->sink.name, adstream_fail_point_name(point), txn)));
	/* no clean-up: librdkafka's open transaction is left as a crash leaves it */
	proc_exit(1);
}

/* A Kafka error the worker cannot go on after: record it and end. */
pg_attribute_noreturn()
static void
fail(Producer *pr, const char *what, const char *err)
{
	if (strstr(err, "FENCED") != NULL || strstr(err, "INVALID_PRODUCER_EPOCH") != NULL)
		adstream_sink_status_abort(pr->status, true);
	adstream_sink_status_error(pr->status, psprintf("%s: %s", what, err));
	ereport(ERROR,
			(errmsg("adstream: sink \"%s\": %s: %s", pr->sink.name, what, err),
			 errdetail("The producer stops; it is started again with backoff and resumes after the last committed transaction.")));
}

/* Wait on the latch (or timeout), serving interrupts and reloads. */
static void
wait_latch(long timeout_ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/*
 * Parse a progress record: {"transactional_id":..,"txn":"..",
 * "prev_txn":..,"first_id":N,"last_id":N,"records":N}.  Only ours are
 * read (the key is the transactional.id), so anything else is an error.
 */
static void
parse_progress(Producer *pr, const char *value)
{
	const char *t = strstr(value, "\"txn\":\"");
	const char *l = strstr(value, "\"last_id\":");
	const char *end;
	char	   *num_end;
	int64		last;

	if (t == NULL || l == NULL || (end = strchr(t + 7, '"')) == NULL ||
		end - (t + 7) >= (int) sizeof(pr->prev_txn))
		fail(pr, "unreadable progress record", value);
	errno = 0;
	last = strtoll(l + 10, &num_end, 10);
	if (errno != 0 || num_end == l + 10 || last < 0)
		fail(pr, "unreadable progress record", value);
	memcpy(pr->prev_txn, t + 7, end - (t + 7));
	pr->prev_txn[end - (t + 7)] = '\0';
	pr->position = Max(pr->position, last);
}

/* Step 1: fence older producers, then read the progress back. */
static void
start_sink(Producer *pr)
{
	char		err[512];
	char	   *value = NULL;
	int			rc;

	adstream_sink_status_state(pr->status, "initializing");
	for (;;)
	{
		AdstreamTxnResult r = adstream_kafka_txn_init(pr->kafka, CALL_TIMEOUT_MS,
													  err, sizeof(err));

		if (r == ADSTREAM_TXN_OK)
			break;
		if (r != ADSTREAM_TXN_RETRY)
			fail(pr, "init_transactions", err);
		adstream_sink_status_error(pr->status, err);
		CHECK_FOR_INTERRUPTS();
	}
	/* topics known up front: the first transaction need not wait for them */
	if (!adstream_kafka_producer_warm(pr->kafka, pr->sink.topic, PROGRESS_TIMEOUT_MS,
									  err, sizeof(err)) ||
		!adstream_kafka_producer_warm(pr->kafka, pr->sink.progress_topic, PROGRESS_TIMEOUT_MS,
									  err, sizeof(err)))
		fail(pr, "reading topic metadata", err);
	adstream_sink_status_state(pr->status, "reading progress");
	rc = adstream_kafka_read_progress(pr->sink.bootstrap_servers,
									  (const char *const *) pr->sink.prop_names,
									  (const char *const *) pr->sink.prop_values,
									  pr->sink.nprops, pr->sink.progress_topic,
									  pr->sink.transactional_id, PROGRESS_TIMEOUT_MS,
									  &value, err, sizeof(err));
	if (rc < 0)
		fail(pr, "reading the progress record", err);
	pr->position = pr->sink.acked_id;
	if (rc > 0)
		parse_progress(pr, value);
	free(value);
	ereport(LOG,
			(errmsg("adstream: sink \"%s\" resumes after outbox id " INT64_FORMAT " (delivered up to " INT64_FORMAT " as recorded in the database)",
					pr->sink.name, pr->position, pr->sink.acked_id)));
}

/* The outcome of one transaction attempt. */
typedef enum
{
	ATTEMPT_COMMITTED,
	ATTEMPT_ABORTED
} Attempt;

/* Abort the open transaction after err; a fatal abort ends the worker. */
static Attempt
abort_attempt(Producer *pr, const char *what, const char *err)
{
	char		aerr[512];
	AdstreamTxnResult r;

	adstream_sink_status_error(pr->status, psprintf("%s: %s", what, err));
	ereport(LOG,
			(errmsg("adstream: sink \"%s\": %s: %s; the transaction is aborted and sent again",
					pr->sink.name, what, err)));
	while ((r = adstream_kafka_txn_abort(pr->kafka, CALL_TIMEOUT_MS, aerr, sizeof(aerr)))
		   == ADSTREAM_TXN_RETRY)
		CHECK_FOR_INTERRUPTS();
	if (r != ADSTREAM_TXN_OK)
		fail(pr, "abort_transaction", aerr);
	adstream_sink_status_abort(pr->status, false);
	return ATTEMPT_ABORTED;
}

/*
 * Queue one record of the open transaction, retrying while librdkafka's
 * queue is full.  Returns false if the transaction had to be aborted.
 */
static bool
send_record(Producer *pr, const char *topic, int32 partition, const char *key,
			const char *value, int len, const AdstreamKafkaHeader *headers, int nheaders)
{
	char		err[512];
	AdstreamTxnResult r;

	while ((r = adstream_kafka_txn_send(pr->kafka, topic, partition, key, strlen(key),
										value, len, headers, nheaders,
										CALL_TIMEOUT_MS, err, sizeof(err)))
		   == ADSTREAM_TXN_RETRY)
		CHECK_FOR_INTERRUPTS();
	if (r == ADSTREAM_TXN_FATAL)
		fail(pr, "produce", err);
	if (r == ADSTREAM_TXN_ABORT)
	{
		abort_attempt(pr, "produce", err);
		return false;
	}
	return true;
}

/* Step 3: rows[0..n-1] and the progress record, in one Kafka transaction. */
static Attempt
send_transaction(Producer *pr, AdstreamOutboxRow *rows, int n, const char *txn)
{
	char		err[512];
	char		version[24];
	char		outbox_id[24];
	AdstreamKafkaHeader headers[3] = {
		{"adstream.version", version},
		{"adstream.outbox_id", outbox_id},
		{"adstream.txn", txn},
	};
	char	   *progress;
	AdstreamTxnResult r;

	r = adstream_kafka_txn_begin(pr->kafka, err, sizeof(err));
	if (r != ADSTREAM_TXN_OK)
		fail(pr, "begin_transaction", err);
	for (int i = 0; i < n; i++)
	{
		if (i == n / 2 && n > 1)
			failure_point(pr, ADSTREAM_FAIL_MID_SEND, txn);
		snprintf(version, sizeof(version), INT64_FORMAT, rows[i].version);
		snprintf(outbox_id, sizeof(outbox_id), INT64_FORMAT, rows[i].id);
		if (!send_record(pr, pr->sink.topic, -1, rows[i].record_uuid,
						 rows[i].payload, rows[i].len, headers, 3))
			return ATTEMPT_ABORTED;
	}

	progress = psprintf("{\"transactional_id\":\"%s\",\"txn\":\"%s\",\"prev_txn\":%s%s%s,"
						"\"first_id\":" INT64_FORMAT ",\"last_id\":" INT64_FORMAT ","
						"\"records\":%d}",
						pr->sink.transactional_id, txn,
						pr->prev_txn[0] ? "\"" : "", pr->prev_txn[0] ? pr->prev_txn : "null",
						pr->prev_txn[0] ? "\"" : "", rows[0].id, rows[n - 1].id, n);
	if (!send_record(pr, pr->sink.progress_topic, 0, pr->sink.transactional_id,
					 progress, strlen(progress), headers + 2, 1))
		return ATTEMPT_ABORTED;
	pfree(progress);

	failure_point(pr, ADSTREAM_FAIL_BEFORE_KAFKA_COMMIT, txn);
	adstream_sink_status_state(pr->status, "committing");
	while ((r = adstream_kafka_txn_commit(pr->kafka, CALL_TIMEOUT_MS, err, sizeof(err)))
		   == ADSTREAM_TXN_RETRY)
	{
		/* a timeout: the outcome is not known yet; asking again is safe */
		adstream_sink_status_error(pr->status, err);
		CHECK_FOR_INTERRUPTS();
	}
	if (r == ADSTREAM_TXN_FATAL)
		fail(pr, "commit_transaction", err);
	if (r == ADSTREAM_TXN_ABORT)
		return abort_attempt(pr, "commit_transaction", err);
	failure_point(pr, ADSTREAM_FAIL_AFTER_KAFKA_COMMIT, txn);
	return ATTEMPT_COMMITTED;
}

/*
 * Steps 2 to 4 once: returns the number of rows committed (0 if none
 * waited or the attempt was aborted; the caller backs off then).
 */
static int
deliver(Producer *pr, AdstreamOutboxRow *rows, MemoryContext loop_cxt, bool *aborted)
{
	int			n;
	char		txn[64];
	TimestampTz committed;
	int64	   *lat;

	*aborted = false;
	adstream_xact_begin("adstream: reading the outbox");
	n = adstream_outbox_fetch(pr->sink.pipeline_id, pr->position, pr->sink.batch_records,
							  rows, loop_cxt);
	adstream_xact_end();
	if (n == 0)
		return 0;

	snprintf(txn, sizeof(txn), INT64_FORMAT "-" INT64_FORMAT, pr->incarnation, ++pr->seq);
	adstream_sink_status_state(pr->status, "sending");
	if (send_transaction(pr, rows, n, txn) == ATTEMPT_ABORTED)
	{
		*aborted = true;
		return 0;
	}
	pr->position = rows[n - 1].id;
	strlcpy(pr->prev_txn, txn, sizeof(pr->prev_txn));
	committed = GetCurrentTimestamp();
	adstream_sink_status_commit(pr->status, n, pr->position);
	lat = palloc(sizeof(int64) * n);
	for (int i = 0; i < n; i++)
		lat[i] = (committed - rows[i].created_at) / 1000;
	adstream_status_latencies(pr->status ? &pr->status->latency : NULL, lat, n);

	adstream_sink_status_state(pr->status, "recording progress");
	adstream_xact_begin("adstream: recording sink progress");
	adstream_sink_ack(pr->sink.sink_id, pr->sink.pipeline_id, pr->position);
	adstream_xact_end();
	return n;
}

void
adstream_producer_main(Datum main_arg)
{
	int32		sink_id = DatumGetInt32(main_arg);
	Producer	pr;
	char		err[512];
	MemoryContext worker_cxt;
	MemoryContext loop_cxt;
	AdstreamOutboxRow *rows;
	bool		found;

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(adstream_database, NULL, 0);

	memset(&pr, 0, sizeof(pr));
	worker_cxt = AllocSetContextCreate(TopMemoryContext, "adstream producer",
									   ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(worker_cxt, "adstream transaction",
									 ALLOCSET_DEFAULT_SIZES);
	pr.incarnation = GetCurrentTimestamp();

	adstream_xact_begin(NULL);
	found = adstream_load_sink(sink_id, &pr.sink, worker_cxt);
	adstream_xact_end();
	if (!found)
		proc_exit(0);			/* dropped or disabled meanwhile */
	pgstat_report_appname(psprintf("adstream producer %s", pr.sink.name));
	pr.status = adstream_sink_status_attach(sink_id, pr.sink.version);

	pr.kafka = adstream_kafka_producer_new(pr.sink.bootstrap_servers, pr.sink.transactional_id,
										   (const char *const *) pr.sink.prop_names,
										   (const char *const *) pr.sink.prop_values,
										   pr.sink.nprops, err, sizeof(err));
	if (pr.kafka == NULL)
		fail(&pr, "could not create a Kafka producer", err);

	PG_TRY();
	{
		start_sink(&pr);
		rows = MemoryContextAlloc(worker_cxt, sizeof(AdstreamOutboxRow) * pr.sink.batch_records);
		pr.retry_ms = RETRY_MIN_MS;
		for (;;)
		{
			bool		aborted;
			int			sent;
			const char *kerr;

			CHECK_FOR_INTERRUPTS();
			MemoryContextSwitchTo(loop_cxt);
			sent = deliver(&pr, rows, loop_cxt, &aborted);
			MemoryContextReset(loop_cxt);
			kerr = adstream_kafka_producer_error(pr.kafka);
			if (kerr[0] != '\0')
				adstream_sink_status_error(pr.status, kerr);
			if (aborted)
			{
				adstream_sink_status_state(pr.status, "retrying");
				wait_latch(pr.retry_ms);
				pr.retry_ms = Min(pr.retry_ms * 2, RETRY_MAX_MS);
				continue;
			}
			pr.retry_ms = RETRY_MIN_MS;
			if (sent == pr.sink.batch_records)
				continue;		/* more may be waiting */
			adstream_sink_status_state(pr.status, "idle");
			wait_latch(IDLE_RECHECK_MS);
		}
	}
	PG_CATCH();
	{
		/* keep the reason for the status view; the worker then exits */
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		if (pr.status != NULL && edata->elevel >= ERROR)
			adstream_sink_status_error(pr.status, edata->message);
		PG_RE_THROW();
	}
	PG_END_TRY();
}
