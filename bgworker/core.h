/*-------------------------------------------------------------------------
 *
 * core.h
 *	  The processing core: applies one batch of raw ad-event messages to the
 *	  database in the caller's transaction.  Called by the SQL function
 *	  adstream.ingest() and by the Kafka consumer workers alike.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_CORE_H
#define ADSTREAM_CORE_H

#include "adstream.h"

/*
 * Load a pipeline's options by name and lock its row against concurrent
 * drop (FOR KEY SHARE) until the transaction ends.  Returns false if there
 * is no such pipeline.  Requires SPI to be connected.
 */
extern bool adstream_load_pipeline(const char *name, AdstreamPipeline *pipeline);

/*
 * Apply msgs[0..n-1] for the pipeline; see core.c for the protocol.
 * source names the Kafka cluster the messages come from: "" for the
 * pipeline's own topic, a union source's region for a union pipeline.
 * Requires an open transaction and SPI connected.  Raises an error for
 * invalid coordinates (negative partition or offset, offset 2^63 - 1,
 * infinite Kafka timestamp) and for failures of the database itself, never
 * for bad message content.
 */
extern void adstream_process_batch(const AdstreamPipeline *pipeline,
								   const char *source,
								   const AdstreamMessage *msgs, int n,
								   AdstreamBatchResult *result);

#endif							/* ADSTREAM_CORE_H */
