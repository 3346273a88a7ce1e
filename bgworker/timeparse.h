/*-------------------------------------------------------------------------
 *
 * timeparse.h
 *	  Event-time parsing: ISO-8601 strings and epoch milliseconds, without
 *	  ereport, so a bad value becomes a dead letter instead of an error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_TIMEPARSE_H
#define ADSTREAM_TIMEPARSE_H

#include "postgres.h"

#include "datatype/timestamp.h"

/*
 * Each returns true and sets *result on success; on failure returns false
 * and sets *why to a static description of what is wrong with the value,
 * to follow the name of the field it came from.
 */
extern bool adstream_parse_iso8601(const char *s, int len,
								   TimestampTz *result, const char **why);
extern bool adstream_parse_epoch_millis(const char *s, int len,
										TimestampTz *result, const char **why);

#endif							/* ADSTREAM_TIMEPARSE_H */
