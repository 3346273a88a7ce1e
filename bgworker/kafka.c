/*-------------------------------------------------------------------------
 *
 * kafka.c
 *	  The Kafka glue (see kafka.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "kafka.h"

/* Properties adstream sets itself; exactly-once depends on them. */
static const char *const reserved_properties[] = {
	"bootstrap.servers", "metadata.broker.list", "group.id",
	"isolation.level", "enable.auto.commit", "enable.auto.offset.store",
	"enable.partition.eof", "auto.offset.reset",
};

bool
adstream_kafka_check_property(const char *name, const char *value,
							  char *err, size_t errlen)
{
	rd_kafka_conf_t *conf;
	rd_kafka_conf_res_t res;

	for (int i = 0; i < lengthof(reserved_properties); i++)
		if (strcmp(name, reserved_properties[i]) == 0)
		{
			snprintf(err, errlen, "\"%s\" is set by adstream", name);
			return false;
		}
	conf = rd_kafka_conf_new();
	res = rd_kafka_conf_set(conf, name, value, err, errlen);
	rd_kafka_conf_destroy(conf);
	return res == RD_KAFKA_CONF_OK;
}
