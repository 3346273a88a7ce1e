/*-------------------------------------------------------------------------
 *
 * attributor.c
 *	  The attributor worker of an orders pipeline: the launcher runs one per
 *	  enabled orders pipeline (fed by Kafka or by adstream.ingest() alike).
 *	  It decides the orders whose grace period is over and calls the
 *	  pipeline's enrichment hook (attribution.c), a bounded step per
 *	  transaction, and sleeps briefly when there is nothing due.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"

#include "adstream.h"
#include "attribution.h"
#include "source.h"
#include "workers.h"

/* Orders decided (or hook calls made) per transaction. */
#define ATTRIBUTE_STEP_ROWS 2000

/* How long to sleep when nothing is due. */
#define IDLE_WAIT_MS 200

void
adstream_attributor_main(Datum main_arg)
{
	int32		pipeline_id = DatumGetInt32(main_arg);

	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(adstream_database, NULL, 0);
	pgstat_report_appname("adstream attributor");

	for (;;)
	{
		AdstreamAttribution r;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		adstream_xact_begin("adstream: attributing orders");
		adstream_attribute(pipeline_id, adstream_now(), ATTRIBUTE_STEP_ROWS, &r);
		adstream_xact_end();

		if (r.decided + r.enriched + r.retried > 0)
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 IDLE_WAIT_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
