/*-------------------------------------------------------------------------
 *
 * adstream.c
 *	  Module entry point: settings (GUCs), the clock, and the launcher's
 *	  registration when adstream is preloaded.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "adstream.h"
#include "status.h"
#include "workers.h"

PG_MODULE_MAGIC;

char	   *adstream_clock_override = NULL;
char	   *adstream_region = NULL;
char	   *adstream_database = NULL;
int			adstream_fold_interval = 1000;
int			adstream_maintenance_interval = 10000;
int			adstream_producer_fail_point = ADSTREAM_FAIL_NONE;

static const struct config_enum_entry fail_point_options[] = {
	{"none", ADSTREAM_FAIL_NONE, false},
	{"mid_send", ADSTREAM_FAIL_MID_SEND, false},
	{"before_kafka_commit", ADSTREAM_FAIL_BEFORE_KAFKA_COMMIT, false},
	{"after_kafka_commit", ADSTREAM_FAIL_AFTER_KAFKA_COMMIT, false},
	{NULL, 0, false}
};

const char *
adstream_fail_point_name(int point)
{
	for (int i = 0; fail_point_options[i].name != NULL; i++)
		if (fail_point_options[i].val == point)
			return fail_point_options[i].name;
	return "?";
}

void		_PG_init(void);

/*
 * A region name, as a pipeline's region column accepts it: 1 to 63
 * letters, digits, ".", "_" or "-".
 */
bool
adstream_valid_region(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len > 63)
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
			  (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
			return false;
	return true;
}

/* adstream.region: empty (unset: 'default') or a region name. */
static bool
check_region(char **newval, void **extra, GucSource source)
{
	if ((*newval)[0] == '\0' || adstream_valid_region(*newval))
		return true;
	GUC_check_errdetail("A region name is 1 to 63 letters, digits, \".\", \"_\" or \"-\".");
	return false;
}

/*
 * The reference time for messages without a Kafka timestamp: the start of
 * the current transaction, or adstream.clock_override when a test set it.
 */
TimestampTz
adstream_now(void)
{
	if (adstream_clock_override != NULL && adstream_clock_override[0] != '\0')
		return DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
													   CStringGetDatum(adstream_clock_override),
													   ObjectIdGetDatum(InvalidOid),
													   Int32GetDatum(-1)));
	return GetCurrentTransactionStartTimestamp();
}

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;

	DefineCustomStringVariable("adstream.clock_override",
							   "Fixed current time for adstream, for deterministic tests.",
							   "Empty (the default) uses the transaction start time. "
							   "Only messages without a Kafka timestamp are affected.",
							   &adstream_clock_override,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("adstream.region",
							   "This instance's region: the default region of new pipelines.",
							   "Part of every output record and of its UUID, so the records "
							   "of two regions never collide. Empty means 'default'.",
							   &adstream_region,
							   "",
							   PGC_SUSET,
							   0,
							   check_region, NULL, NULL);

	DefineCustomIntVariable("adstream.fold_interval",
							"How often the launcher folds aggregate increments (and emits output records).",
							"0 turns it off; adstream.fold_minute_stats() can then be scheduled instead.",
							&adstream_fold_interval,
							1000, 0, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("adstream.maintenance_interval",
							"How often the launcher runs maintenance when pg_cron does not.",
							"Expiry, outbox pruning and rollups (adstream.maintain()); "
							"0 turns it off. While adstream.schedule_maintenance() has a "
							"pg_cron job in the database, the launcher leaves it to pg_cron.",
							&adstream_maintenance_interval,
							10000, 0, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("adstream.producer_fail_point",
							 "Stops producer workers at a point of the output protocol, for tests.",
							 "none (the default), mid_send, before_kafka_commit or after_kafka_commit: "
							 "a producer reaching that point of a transaction exits at once, "
							 "as a crash there would.",
							 &adstream_producer_fail_point,
							 ADSTREAM_FAIL_NONE,
							 fail_point_options,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	/*
	 * The workers exist only when adstream is preloaded; a server-start
	 * setting cannot be defined later (loading the module in a session
	 * would fail), and without workers it would mean nothing.
	 */
	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("adstream.database",
								   "Database in which adstream's launcher runs the consumer workers.",
								   "adstream must be installed in it (CREATE EXTENSION adstream).",
								   &adstream_database,
								   "postgres",
								   PGC_POSTMASTER,
								   0,
								   NULL, NULL, NULL);
		adstream_status_init();
		adstream_register_launcher();
	}

	MarkGUCPrefixReserved("adstream");
}
