/*-------------------------------------------------------------------------
 *
 * kafka_conf.h
 *	  librdkafka configuration shared by the consumer glue (kafka.c) and
 *	  the producer glue (kafka_out.c).  Only those two include it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_KAFKA_CONF_H
#define ADSTREAM_KAFKA_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

/*
 * Fill conf with the bootstrap servers, then the user's properties, then
 * adstream's own (fixed[i][0] = fixed[i][1]), last so that nothing the user
 * gave overrides them.  False with librdkafka's message in err.
 */
extern bool adstream_kafka_configure(rd_kafka_conf_t *conf, const char *bootstrap,
									 const char *const *names, const char *const *values,
									 int nprops, const char *const (*fixed)[2], int nfixed,
									 char *err, size_t errlen);

#endif							/* ADSTREAM_KAFKA_CONF_H */
