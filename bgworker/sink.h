/*-------------------------------------------------------------------------
 *
 * sink.h
 *	  What the producer workers read and write in adstream's tables: a
 *	  sink's definition, the outbox rows it has to send, and its delivery
 *	  progress.  All through SPI; callers hold a transaction and SPI
 *	  (adstream_xact_begin/end).
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_SINK_H
#define ADSTREAM_SINK_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* A sink the launcher should run a producer worker for. */
typedef struct AdstreamRunnableSink
{
	int32		sink_id;
	int32		pipeline_id;
	int64		version;		/* changes whenever the sink is altered */
	char		name[130];		/* pipeline/sink */
} AdstreamRunnableSink;

/* A sink's definition and the progress stored for it. */
typedef struct AdstreamSink
{
	int32		sink_id;
	int32		pipeline_id;
	char	   *name;			/* pipeline/sink, for messages */
	char	   *topic;
	char	   *bootstrap_servers;
	char	   *progress_topic;
	char	   *transactional_id;
	int			nprops;
	char	  **prop_names;
	char	  **prop_values;
	int			batch_records;
	int64		acked_id;		/* last outbox id known delivered */
	int64		version;
} AdstreamSink;

/* One outbox row to send. */
typedef struct AdstreamOutboxRow
{
	int64		id;
	int64		version;
	TimestampTz created_at;
	char		record_uuid[37];
	char	   *payload;
	int			len;
} AdstreamOutboxRow;

/* The enabled sinks, at most max of them, into out; returns their number. */
extern int	adstream_runnable_sinks(AdstreamRunnableSink *out, int max);

/*
 * Load an enabled sink by id, its strings allocated in mcxt; false if it
 * is gone or disabled.
 */
extern bool adstream_load_sink(int32 sink_id, AdstreamSink *sink, MemoryContext mcxt);

/*
 * The pipeline's outbox rows with id > after_id, in id order, at most max,
 * copied into rows (payloads allocated in mcxt), once their commit is on
 * disk.  Returns their number.
 */
extern int	adstream_outbox_fetch(int32 pipeline_id, int64 after_id, int max,
								  AdstreamOutboxRow *rows, MemoryContext mcxt);

/*
 * Record that the sink's outbox rows up to acked_id are delivered (never
 * moving backwards), then delete the pipeline's outbox rows every one of
 * its sinks has delivered.  Returns how many were deleted.
 */
extern int64 adstream_sink_ack(int32 sink_id, int32 pipeline_id, int64 acked_id);

#endif							/* ADSTREAM_SINK_H */
