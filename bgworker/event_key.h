/*-------------------------------------------------------------------------
 *
 * event_key.h
 *	  The 16-byte deduplication key of an event id, and the UUID of a
 *	  window's output record.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_EVENT_KEY_H
#define ADSTREAM_EVENT_KEY_H

#include "postgres.h"

/*
 * An event id written as a UUID (8-4-4-4-12 hex digits, any case) is its own
 * key; any other id maps to the name-based (SHA-1, version 5) UUID of its
 * bytes in adstream's event-id namespace.
 */
extern void adstream_event_key(const char *id, int len, uint8 key[16]);

/*
 * The record UUID of an ad's 1-minute window: the name-based (SHA-1,
 * version 5) UUID of (region, ad id, window start in Unix milliseconds) in
 * adstream's window-record namespace.  Every version of one window's record
 * shares it; it is what Pinot upserts on and Hive dedups on.
 */
extern void adstream_window_key(const char *region, const char *ad_id,
								int64 window_start_ms, uint8 key[16]);

/*
 * The UUID of an attributed order's output record: name-based (SHA-1,
 * version 5) on (region, order id), in adstream's namespace of order
 * records.
 */
extern void adstream_order_record_key(const char *region, int region_len,
									  const char *order_id, int len, uint8 key[16]);

/* Parse the canonical 8-4-4-4-12 hex form of a UUID; false if s is not one. */
extern bool adstream_parse_uuid(const char *s, int len, uint8 key[16]);

#endif							/* ADSTREAM_EVENT_KEY_H */
