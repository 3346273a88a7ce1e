/*-------------------------------------------------------------------------
 *
 * event_key.h
 *	  The 16-byte deduplication key of an event id.
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

#endif							/* ADSTREAM_EVENT_KEY_H */
