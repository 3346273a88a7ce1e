/*-------------------------------------------------------------------------
 *
 * kafka.h
 *	  The Kafka glue: everything adstream does with librdkafka.  It never
 *	  touches the database, and librdkafka's threads never call PostgreSQL:
 *	  callbacks only record into memory the calling (main) thread reads.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_KAFKA_H
#define ADSTREAM_KAFKA_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Check one user-supplied consumer property: refused if adstream sets it
 * itself, else whatever librdkafka says of the name and value.  Returns
 * true if fine; otherwise false with a message in err.
 */
extern bool adstream_kafka_check_property(const char *name, const char *value,
										  char *err, size_t errlen);

#endif							/* ADSTREAM_KAFKA_H */
