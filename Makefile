# adstream: PGXS build.
#
#   make                     build the extension
#   make install             install it into the PostgreSQL that PG_CONFIG names
#   make installcheck        run the pg_regress suites on a temporary instance
#
# PG_CONFIG may point at any PostgreSQL >= 15.

MODULE_big = adstream
OBJS = \
	bgworker/adstream.o \
	bgworker/event_parse.o \
	bgworker/timeparse.o \
	bgworker/event_key.o \
	bgworker/core.o \
	bgworker/store.o \
	bgworker/kafka.o \
	bgworker/kafka_out.o \
	bgworker/source.o \
	bgworker/launcher.o \
	bgworker/consumer.o \
	bgworker/sink.o \
	bgworker/producer.o \
	bgworker/status.o \
	bgworker/sql_api.o \
	bgworker/attribution.o \
	bgworker/attributor.o

MODULEDIR = extension
DATA = extension/adstream.control $(wildcard extension/adstream--*.sql)

REGRESS = install pipeline_options kafka_source ingest_basic rejections dedup windows fold \
	emission sinks \
	offsets privileges injection views drop orders maintenance union
REGRESS_OPTS = --temp-instance=tmp_check --temp-config=tests/regress.conf

PKG_CONFIG ?= pkg-config
PG_CPPFLAGS = -I$(srcdir)/bgworker $(shell $(PKG_CONFIG) --cflags rdkafka uuid)
SHLIB_LINK = $(shell $(PKG_CONFIG) --libs rdkafka uuid)
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
	-Wno-missing-field-initializers

EXTRA_CLEAN = tests/adgen/adgen

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

ifeq ($(shell $(PKG_CONFIG) --exists rdkafka uuid && echo yes),)
$(error pkg-config cannot find rdkafka and uuid: install librdkafka-dev and uuid-dev (tests/install-deps.sh does))
endif
