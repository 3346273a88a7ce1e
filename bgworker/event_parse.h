/*-------------------------------------------------------------------------
 *
 * event_parse.h
 *	  Turns the raw bytes of one ad-event (or order) message into an
 *	  AdstreamEvent (AdstreamOrder), or into a rejection reason with a detail message.  Never raises an error
 *	  for bad input.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_EVENT_PARSE_H
#define ADSTREAM_EVENT_PARSE_H

#include "adstream.h"

/* Deepest object/array nesting accepted in a message. */
#define ADSTREAM_MAX_JSON_DEPTH 32

/* Longest accepted id or dimension value, in bytes. */
#define ADSTREAM_MAX_ID_BYTES 256

/*
 * Parse and validate msg (syntax, types, required fields; not its age).
 * On success fills *event, with strings allocated in CurrentMemoryContext,
 * and returns ADSTREAM_ACCEPT; otherwise returns the reason and sets
 * *detail to a palloc'd message.  Scratch memory of the JSON parser is
 * allocated in scratch_cxt, which the caller may reset after each call.
 */
extern AdstreamReject adstream_parse_event(const char *data, int len,
										   int max_bytes,
										   MemoryContext scratch_cxt,
										   AdstreamEvent *event,
										   char **detail);

/*
 * The same for an order message (see event_parse.c for its fields), into
 * *order.
 */
extern AdstreamReject adstream_parse_order(const char *data, int len,
										   int max_bytes,
										   MemoryContext scratch_cxt,
										   AdstreamOrder *order,
										   char **detail);

/*
 * The same for an output record read back by a union pipeline, into *rec:
 * a record of an ad-events pipeline, or of an orders pipeline when orders.
 */
extern AdstreamReject adstream_parse_record(const char *data, int len,
											int max_bytes, bool orders,
											MemoryContext scratch_cxt,
											AdstreamRecord *rec,
											char **detail);

#endif							/* ADSTREAM_EVENT_PARSE_H */
