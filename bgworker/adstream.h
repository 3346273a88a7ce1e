/*-------------------------------------------------------------------------
 *
 * adstream.h
 *	  Types shared by the adstream sources: a raw message as it arrives, a
 *	  parsed ad event, rejection reasons, a pipeline's options and the
 *	  counters a batch produces.
 *
 * Arrows point one way: the SQL functions and (later) the Kafka workers
 * build AdstreamMessage arrays and call the core (core.h); the core parses
 * (event_parse.h) and writes through SPI.  Nothing here touches Kafka.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_H
#define ADSTREAM_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* A raw message and where it came from. */
typedef struct AdstreamMessage
{
	const char *data;			/* raw bytes, not NUL-terminated */
	int			len;
	const char *topic;			/* NULL when the message has no source */
	int32		partition;		/* -1 when unknown */
	int64		offset;			/* -1 when unknown */
	bool		has_kafka_ts;
	TimestampTz kafka_ts;		/* the Kafka message timestamp */
} AdstreamMessage;

/* Why a message was rejected.  Codes are stored in adstream.dead_letter. */
typedef enum AdstreamReject
{
	ADSTREAM_ACCEPT = 0,
	ADSTREAM_REJECT_OVERSIZED,
	ADSTREAM_REJECT_INVALID_UTF8,
	ADSTREAM_REJECT_MALFORMED_JSON,
	ADSTREAM_REJECT_TOO_DEEPLY_NESTED,
	ADSTREAM_REJECT_DUPLICATE_FIELD,
	ADSTREAM_REJECT_MISSING_FIELD,
	ADSTREAM_REJECT_WRONG_TYPE,
	ADSTREAM_REJECT_INVALID_VALUE,
	ADSTREAM_REJECT_UNKNOWN_EVENT_TYPE,
	ADSTREAM_REJECT_TOO_OLD,
	ADSTREAM_REJECT_TOO_FAR_IN_FUTURE,
	ADSTREAM_REJECT_WRONG_REGION
} AdstreamReject;

extern const char *adstream_reject_code(AdstreamReject reason);

/* A parsed, validated ad event.  Strings are NUL-terminated. */
typedef struct AdstreamEvent
{
	char	   *event_id;
	char	   *ad_id;
	char	   *user_id;
	char	   *campaign_id;	/* optional ones are NULL when absent */
	char	   *advertiser_id;
	char	   *store_id;
	char	   *region;
	TimestampTz event_time;
	int64		cost_micros;
	bool		has_cost;
	bool		is_click;
	uint8		key[16];		/* dedup key, see event_key.h */
} AdstreamEvent;

/* A parsed, validated order.  Strings are NUL-terminated. */
typedef struct AdstreamOrder
{
	char	   *order_id;
	char	   *user_id;
	char	   *store_id;
	char	   *currency;		/* three upper-case letters */
	TimestampTz order_time;
	int64		amount_micros;
	uint8		key[16];		/* dedup key, from the order id like an event's */
} AdstreamOrder;

/*
 * An output record of a region, as a union pipeline reads it back: what
 * identifies it.  The payload itself is passed on as it came.
 */
typedef struct AdstreamRecord
{
	uint8		uuid[16];		/* record_uuid, checked against its fields */
	int64		version;
	char	   *region;
} AdstreamRecord;

/* Per-pipeline options, as the core needs them (intervals in microseconds). */
typedef struct AdstreamPipeline
{
	int32		id;
	char	   *name;
	int64		max_event_age;
	int64		max_future_skew;
	int64		dedup_horizon;
	int64		attribution_window;
	int32		max_message_bytes;
	bool		is_orders;		/* kind orders: messages are orders */
	bool		is_union;		/* kind union: messages are output records */
	bool		union_orders;	/* union of attributed_orders records */
	int64		grace_period;	/* orders: wait before deciding */
	int64		version;		/* updated_at in microseconds: changes on alter */
} AdstreamPipeline;

/* What one batch did. */
typedef struct AdstreamBatchResult
{
	int64		accepted;		/* new events counted */
	int64		duplicates;		/* valid events already counted */
	int64		rejected;		/* dead-lettered */
	int64		skipped;		/* below the stored offset: already applied */
} AdstreamBatchResult;

/* GUC: a fixed "now" for deterministic tests; empty means the real clock. */
extern char *adstream_clock_override;

/* GUC adstream.region: the instance's region (SQL reads it). */
extern char *adstream_region;

/* adstream.c */
extern TimestampTz adstream_now(void);
extern bool adstream_valid_region(const char *name);

#endif							/* ADSTREAM_H */
