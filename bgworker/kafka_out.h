/*-------------------------------------------------------------------------
 *
 * kafka_out.h
 *	  The Kafka glue of the output side: a transactional producer, and the
 *	  reader of a sink's progress records.  Like kafka.h, it never touches
 *	  the database, and librdkafka's threads never call PostgreSQL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ADSTREAM_KAFKA_OUT_H
#define ADSTREAM_KAFKA_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What a failed transactional call asks of the caller, from librdkafka's
 * classification of the error.
 */
typedef enum AdstreamTxnResult
{
	ADSTREAM_TXN_OK,
	ADSTREAM_TXN_RETRY,			/* call the same function again (a timeout) */
	ADSTREAM_TXN_ABORT,			/* abort the transaction, then start over */
	ADSTREAM_TXN_FATAL			/* fenced, or unusable: close the producer */
} AdstreamTxnResult;

typedef struct AdstreamKafkaProducer AdstreamKafkaProducer;

/* One header of a record. */
typedef struct AdstreamKafkaHeader
{
	const char *name;
	const char *value;
} AdstreamKafkaHeader;

/*
 * A transactional, idempotent producer (acks=all) with the given
 * transactional.id, partitioning keyed records like the Java client
 * (murmur2_random).  props are checked with adstream_kafka_check_property().
 * Returns NULL with a message in err on failure.  It lives as long as the
 * worker: an exit leaves an open transaction for the next init to abort.
 */
extern AdstreamKafkaProducer *adstream_kafka_producer_new(const char *bootstrap,
														  const char *transactional_id,
														  const char *const *names,
														  const char *const *values,
														  int nprops,
														  char *err, size_t errlen);

/*
 * The transactional calls.  Each returns what the caller must do next,
 * with librdkafka's message in err when not ADSTREAM_TXN_OK.  A blocking
 * call waits at most timeout_ms and then asks for a retry.
 *
 * init: registers the transactional.id with the coordinator, which fences
 * any older producer with the same id and aborts its open transaction.
 */
extern AdstreamTxnResult adstream_kafka_txn_init(AdstreamKafkaProducer *p, int timeout_ms,
												 char *err, size_t errlen);
extern AdstreamTxnResult adstream_kafka_txn_begin(AdstreamKafkaProducer *p,
												  char *err, size_t errlen);

/*
 * Queue one record of the open transaction (the value is copied); a
 * partition of -1 lets the partitioner choose from the key.  While the
 * local queue is full it serves delivery reports, at most timeout_ms.
 */
extern AdstreamTxnResult adstream_kafka_txn_send(AdstreamKafkaProducer *p, const char *topic,
												 int32_t partition,
												 const char *key, size_t keylen,
												 const char *value, size_t len,
												 const AdstreamKafkaHeader *headers,
												 int nheaders, int timeout_ms,
												 char *err, size_t errlen);

/*
 * Learn a topic's partitions and leaders now, so that the first
 * transaction that writes to it does not wait for them.  False with a
 * message in err if the broker did not answer within timeout_ms.
 */
extern bool adstream_kafka_producer_warm(AdstreamKafkaProducer *p, const char *topic,
										 int timeout_ms, char *err, size_t errlen);

/* Wait until every queued record has reached the broker (tests' failure points). */
extern void adstream_kafka_txn_flush(AdstreamKafkaProducer *p, int timeout_ms);
extern AdstreamTxnResult adstream_kafka_txn_commit(AdstreamKafkaProducer *p, int timeout_ms,
												   char *err, size_t errlen);
extern AdstreamTxnResult adstream_kafka_txn_abort(AdstreamKafkaProducer *p, int timeout_ms,
												  char *err, size_t errlen);

/* Errors librdkafka reported outside the calls (a broker down); "" if none. */
extern const char *adstream_kafka_producer_error(AdstreamKafkaProducer *p);

/*
 * The latest record with the given key in partition 0 of topic, read with
 * read_committed from the tail backwards, in windows that grow until one
 * holds such a record or the start of the partition is reached.  Returns 1
 * with the value (malloc'd, NUL-terminated) in *value, 0 if the partition
 * holds none, -1 with a message in err on failure or after timeout_ms.
 */
extern int	adstream_kafka_read_progress(const char *bootstrap,
										 const char *const *names, const char *const *values,
										 int nprops, const char *topic, const char *key,
										 int timeout_ms, char **value,
										 char *err, size_t errlen);

#endif							/* ADSTREAM_KAFKA_OUT_H */
