#!/bin/bash
# The Pinot and Hive contracts in docker/: the configs carry the settings
# upsert and exactly-once depend on, and every output record adstream emits
# matches the Pinot schema (every field present, of the right type, nothing
# else) and the Hive table's columns.  Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

adstream_pg_scene contracts "adstream.fold_interval = 0"
status=0
check() {					# check NAME SQL-returning-boolean
	# (psql interpolates :'variables' in its input, not in -c)
	if [ "$(echo "$2;" | "${psql_cmd[@]}" \
		-v schema="$(cat "$src/docker/pinot/ad_minute_stats_schema.json")" \
		-v tbl="$(cat "$src/docker/pinot/ad_minute_stats_table.json")" \
		-v hive_columns="$hive_columns" 2>&1)" = t ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		status=1
	fi
}
# the Hive table's columns, "name TYPE" per line, as a JSON object
hive_columns=$(sed -n '/^CREATE EXTERNAL TABLE/,/^)/p' "$src/docker/hive/ad_minute_stats.sql" |
	sed -nE 's/^  `?([a-z_]+)`? ([A-Z]+),?$/"\1": "\2"/p' | paste -sd, | sed 's/^/{/; s/$/}/')

# records: two pipelines, several ads and windows, three versions of some
"${psql_cmd[@]}" >/dev/null <<'SQL' || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('c1', region => 'eu-west', emit_mode => 'changes',
                                max_event_age => '1000 days');
SELECT adstream.create_pipeline('c2', region => 'us-east', emit_mode => 'changes',
                                max_event_age => '1000 days');
CREATE FUNCTION feed_round(r int) RETURNS void LANGUAGE sql AS $$
  SELECT count(*) FROM (
    SELECT adstream.ingest(p, (SELECT array_agg(convert_to(format(
             '{"event_id":"%s-%s-%s","event_type":"%s","ad_id":"ad-%s","event_time":"2026-01-01T00:0%s:10Z","user_id":"u-%s","cost":0.%s}',
             p, r, i, CASE WHEN i % 4 = 0 THEN 'click' ELSE 'impression' END, i % 5, i % 3, i,
             lpad((i % 100)::text, 2, '0')), 'UTF8'))
             FROM generate_series(1, 200) i), kafka_timestamps => array_fill(
             '2026-01-01 00:10:00+00'::timestamptz, ARRAY[200]))
      FROM unnest(ARRAY['c1', 'c2']) p) x;
  SELECT adstream.fold_minute_stats();
$$;
SELECT feed_round(1);
SELECT feed_round(2);
SELECT feed_round(3);
SQL

check "the Pinot table upserts on the schema's primary key with version as the comparison column" \
	"SELECT (:'tbl'::jsonb #>> '{upsertConfig,mode}') = 'FULL'
	    AND (:'tbl'::jsonb -> 'upsertConfig' -> 'comparisonColumns') = '[\"version\"]'
	    AND (:'schema'::jsonb -> 'primaryKeyColumns') = '[\"record_uuid\"]'
	    AND (:'tbl'::jsonb #>> '{routing,instanceSelectorType}') = 'strictReplicaGroup'
	    AND (:'tbl'::jsonb #>> '{tableType}') = 'REALTIME'
	    AND (:'tbl'::jsonb #>> '{segmentsConfig,schemaName}') = (:'schema'::jsonb ->> 'schemaName')"
check "the Pinot table reads read_committed, JSON-decoded, with a time column of the schema" \
	"SELECT (:'tbl'::jsonb #>> '{tableIndexConfig,streamConfigs,stream.kafka.isolation.level}') = 'read_committed'
	    AND (:'tbl'::jsonb #>> '{tableIndexConfig,streamConfigs,stream.kafka.decoder.class.name}') LIKE '%JSONMessageDecoder'
	    AND EXISTS (SELECT 1 FROM jsonb_array_elements(:'schema'::jsonb -> 'dateTimeFieldSpecs') f
	                 WHERE f ->> 'name' = :'tbl'::jsonb #>> '{segmentsConfig,timeColumnName}')"

# the schema's fields and their JSON types
fields="(SELECT f ->> 'name' AS name,
                CASE f ->> 'dataType' WHEN 'STRING' THEN 'string' WHEN 'BOOLEAN' THEN 'boolean'
                     ELSE 'number' END AS json_type,
                f ->> 'dataType' IN ('LONG', 'INT') AS integral
           FROM jsonb_array_elements((:'schema'::jsonb -> 'dimensionFieldSpecs')
                                     || (:'schema'::jsonb -> 'metricFieldSpecs')
                                     || (:'schema'::jsonb -> 'dateTimeFieldSpecs')) f)"
check "records were emitted: several windows, some with three versions" \
	"SELECT count(*) > 10 AND max(version) = 3 FROM adstream.outbox"
check "every record has every Pinot field, of the field's type" \
	"SELECT NOT EXISTS (
	   SELECT 1 FROM adstream.outbox o CROSS JOIN $fields s
	    WHERE jsonb_typeof(o.payload::jsonb -> s.name) IS DISTINCT FROM s.json_type
	       OR (s.integral AND (o.payload::jsonb ->> s.name)::numeric
	                          <> trunc((o.payload::jsonb ->> s.name)::numeric)))"
check "no record has a field the Pinot schema lacks" \
	"SELECT NOT EXISTS (
	   SELECT 1 FROM adstream.outbox o, jsonb_object_keys(o.payload::jsonb) k
	    WHERE k NOT IN (SELECT name FROM $fields s))"
check "the Hive table has exactly the Pinot schema's fields, with matching types" \
	"SELECT count(*) = (SELECT count(*) FROM $fields s)
	        AND bool_and(CASE s.json_type WHEN 'string' THEN h.value = 'STRING'
	                          WHEN 'boolean' THEN h.value = 'BOOLEAN'
	                          ELSE h.value = 'BIGINT' END)
	   FROM jsonb_each_text(:'hive_columns'::jsonb) h JOIN $fields s ON s.name = h.key"
if grep -q "'kafka.consumer.isolation.level' = 'read_committed'" "$src/docker/hive/ad_minute_stats.sql" &&
	grep -q "PARTITION BY record_uuid, version" "$src/docker/hive/ad_minute_stats.sql" &&
	grep -q "PARTITION BY record_uuid" "$src/docker/hive/ad_minute_stats.sql" &&
	grep -q "ORDER BY version DESC" "$src/docker/hive/ad_minute_stats.sql"; then
	echo "ok - the Hive DDL reads read_committed, keeps each (record_uuid, version) once and the latest version per record"
else
	echo "not ok - the Hive DDL reads read_committed, keeps each (record_uuid, version) once and the latest version per record"
	status=1
fi
exit $status
