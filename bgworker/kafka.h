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
#include <stdint.h>

/*
 * Check one user-supplied property of a pipeline's consumer (or, with
 * for_producer, of a sink's producer): refused if adstream sets it itself,
 * else whatever librdkafka says of the name and value.  Returns true if
 * fine; otherwise false with a message in err.
 */
extern bool adstream_kafka_check_property(const char *name, const char *value,
										  bool for_producer, char *err, size_t errlen);

/* Start positions for a partition without a stored offset. */
#define ADSTREAM_KAFKA_EARLIEST (-2)
#define ADSTREAM_KAFKA_LATEST	(-1)

typedef struct AdstreamKafkaConsumer AdstreamKafkaConsumer;

/* One polled message; data stays valid until adstream_kafka_release(). */
typedef struct AdstreamKafkaMessage
{
	int32_t		partition;
	int64_t		offset;
	bool		has_timestamp;
	int64_t		timestamp_ms;	/* Unix epoch milliseconds */
	const char *data;			/* NULL for a null value */
	size_t		len;
	void	   *handle;			/* the librdkafka message */
} AdstreamKafkaMessage;

/*
 * A read_committed consumer with manual partition assignment and no
 * automatic offset commit.  props are extra librdkafka properties, already
 * checked with adstream_kafka_check_property().  Returns NULL with a
 * message in err on failure.
 */
extern AdstreamKafkaConsumer *adstream_kafka_consumer_new(const char *bootstrap,
														  const char *group,
														  const char *const *names,
														  const char *const *values,
														  int nprops,
														  char *err, size_t errlen);

/* A file descriptor that becomes readable when messages are waiting. */
extern int	adstream_kafka_wait_fd(AdstreamKafkaConsumer *c);

/* Number of partitions of topic, or -1 with a message in err. */
extern int	adstream_kafka_partition_count(AdstreamKafkaConsumer *c, const char *topic,
										   int timeout_ms, char *err, size_t errlen);

/*
 * Assign the topic's partitions parts[0..n-1], each starting at offsets[i]
 * (a next offset to read, or ADSTREAM_KAFKA_EARLIEST / _LATEST).  Replaces
 * the whole assignment.  Returns false with a message in err on failure.
 */
extern bool adstream_kafka_assign(AdstreamKafkaConsumer *c, const char *topic,
								  const int32_t *parts, const int64_t *offsets,
								  int n, char *err, size_t errlen);

/*
 * Take up to max waiting messages, stopping once their payloads reach
 * max_bytes, without blocking.  Returns how many were stored in out.
 * Errors librdkafka reported since the last call and retries by itself
 * (a broker down) are copied to err, empty if none.  An error about a
 * partition's messages (one it could not decode, an offset no longer in
 * the log) means librdkafka would move past messages unread: then the
 * call returns -1 with the error in err, and the caller must not apply
 * anything more from this consumer.
 */
extern int	adstream_kafka_poll(AdstreamKafkaConsumer *c, AdstreamKafkaMessage *out,
								int max, size_t max_bytes, char *err, size_t errlen);

/* The broker's end offset of a partition, asking it; -1 on failure. */
extern int64_t adstream_kafka_query_end_offset(AdstreamKafkaConsumer *c,
											   const char *topic, int32_t partition,
											   int timeout_ms);

/* Give back messages returned by adstream_kafka_poll(). */
extern void adstream_kafka_release(AdstreamKafkaMessage *msgs, int n);

/*
 * Tell the group the next offsets, asynchronously, for lag tools only:
 * adstream never reads them back.
 */
extern void adstream_kafka_commit_async(AdstreamKafkaConsumer *c, const char *topic,
										const int32_t *parts, const int64_t *next,
										int n);

/*
 * The broker's end offset (high watermark) of a partition as of the latest
 * fetch response, or -1 if not known yet.  Never waits.
 */
extern int64_t adstream_kafka_end_offset(AdstreamKafkaConsumer *c, const char *topic,
										 int32_t partition);

extern void adstream_kafka_close(AdstreamKafkaConsumer *c);

#endif							/* ADSTREAM_KAFKA_H */
