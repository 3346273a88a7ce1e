/*-------------------------------------------------------------------------
 *
 * attribution.h
 *	  Deciding the orders of an orders pipeline once their grace period is
 *	  over, and calling its enrichment hook.  Called by the attributor
 *	  workers and by the SQL function adstream.attribute_orders() alike,
 *	  in the caller's transaction, with SPI connected.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_ATTRIBUTION_H
#define ADSTREAM_ATTRIBUTION_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef struct AdstreamAttribution
{
	int64		decided;		/* orders attributed (or found unattributed) */
	int64		enriched;		/* orders done with their hook, or given up on */
	int64		retried;		/* hook failures that will be retried */
} AdstreamAttribution;

/*
 * Decide at most max_rows due orders of the pipeline, then call the hook
 * for at most max_rows orders due for it.  "now" is the time the grace
 * periods and backoffs are measured against.
 */
extern void adstream_attribute(int32 pipeline_id, TimestampTz now, int max_rows,
							   AdstreamAttribution *result);

#endif							/* ADSTREAM_ATTRIBUTION_H */
