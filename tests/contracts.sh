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
# the contract being checked: set by use_contract
schema_file= table_file= hive_file= hive_columns= nullable=
use_contract() {			# use_contract NAME NULLABLE-FIELDS
	schema_file="$src/docker/pinot/$1_schema.json"
	table_file="$src/docker/pinot/$1_table.json"
	hive_file="$src/docker/hive/$1.sql"
	nullable=$2
	# the Hive table's columns, "name TYPE" per line, as a JSON object
	hive_columns=$(sed -n '/^CREATE EXTERNAL TABLE/,/^)/p' "$hive_file" |
		sed -nE 's/^  `?([a-z_]+)`? ([A-Z]+)(\([0-9,]+\))?,?$/"\1": "\2"/p' |
		paste -sd, | sed 's/^/{/; s/$/}/')
}
check() {					# check NAME SQL-returning-boolean
	# (psql interpolates :'variables' in its input, not in -c)
	if [ "$(echo "$2;" | "${psql_cmd[@]}" \
		-v schema="$(cat "$schema_file")" -v tbl="$(cat "$table_file")" \
		-v hive_columns="$hive_columns" -v nullable="$nullable" 2>&1)" = t ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		status=1
	fi
}

# records: two pipelines, several ads and windows, three versions of some;
# and attributed orders (clicks, views, none; with and without a hook)
"${psql_cmd[@]}" >/dev/null <<'SQL' || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('c1', region => 'eu-west', emit_mode => 'changes',
                                max_event_age => '1000 days', minute_retention => '1000 days');
SELECT adstream.create_pipeline('c2', region => 'us-east', emit_mode => 'changes',
                                max_event_age => '1000 days', minute_retention => '1000 days');
CREATE FUNCTION feed_round(r int) RETURNS void LANGUAGE sql AS $$
  SELECT count(*) FROM (
    SELECT adstream.ingest(p, (SELECT array_agg(convert_to(format(
             '{"event_id":"%s-%s-%s","event_type":"%s","ad_id":"ad-%s","event_time":"2026-01-01T00:0%s:10Z","user_id":"u-%s","cost":0.%s,"store_id":"s-%s","campaign_id":"cmp-%s"}',
             p, r, i, CASE WHEN i % 4 = 0 THEN 'click' ELSE 'impression' END, i % 5, i % 3, i,
             lpad((i % 100)::text, 2, '0'), i % 3, i % 5), 'UTF8'))
             FROM generate_series(1, 200) i), kafka_timestamps => array_fill(
             '2026-01-01 00:10:00+00'::timestamptz, ARRAY[200]))
      FROM unnest(ARRAY['c1', 'c2']) p) x;
  SELECT adstream.fold_minute_stats();
$$;
SELECT feed_round(1);
SELECT feed_round(2);
SELECT feed_round(3);
CREATE FUNCTION tag(o jsonb) RETURNS jsonb LANGUAGE sql AS
  $$ SELECT jsonb_build_object('tier', 'gold', 'n', length(o ->> 'order_id')) $$;
SELECT adstream.create_orders_pipeline('o1', 'c1', grace_period => '0',
                                       max_event_age => '1000 days', minute_retention => '1000 days');
SELECT adstream.create_orders_pipeline('o2', 'c2', grace_period => '0', enrich_function => 'public.tag',
                                       max_event_age => '1000 days', minute_retention => '1000 days');
SELECT adstream.ingest(p, (SELECT array_agg(convert_to(format(
         '{"order_id":"%s-%s","user_id":"u-%s","store_id":"s-%s","order_time":"2026-01-01T00:09:00Z","amount":%s.25,"currency":"EUR"}',
         p, i, i, i % 3, i), 'UTF8')) FROM generate_series(1, 300) i),
       kafka_timestamps => array_fill('2026-01-01 00:10:00+00'::timestamptz, ARRAY[300]))
  FROM unnest(ARRAY['o1', 'o2']) p;
SELECT * FROM adstream.attribute_orders();
SQL

# the schema's fields and their JSON types (Pinot JSON columns take text)
fields="(SELECT f ->> 'name' AS name,
                CASE f ->> 'dataType' WHEN 'STRING' THEN 'string' WHEN 'JSON' THEN 'string'
                     WHEN 'BOOLEAN' THEN 'boolean' ELSE 'number' END AS json_type,
                f ->> 'dataType' IN ('LONG', 'INT') AS integral,
                f ->> 'name' = ANY (string_to_array(:'nullable', ',')) AS nullable
           FROM jsonb_array_elements((:'schema'::jsonb -> 'dimensionFieldSpecs')
                                     || (:'schema'::jsonb -> 'metricFieldSpecs')
                                     || (:'schema'::jsonb -> 'dateTimeFieldSpecs')) f)"

# check_contract NAME RECORDS-WHERE: the checks of one contract, over the
# outbox records matching RECORDS-WHERE
check_contract() {
	local name=$1 where=$2
	local records="(SELECT o.* FROM adstream.outbox o JOIN adstream.pipeline p ON p.id = o.pipeline_id WHERE $where)"
	check "$name: the Pinot table upserts on the schema's primary key with version as the comparison column" \
		"SELECT (:'tbl'::jsonb #>> '{upsertConfig,mode}') = 'FULL'
		    AND (:'tbl'::jsonb -> 'upsertConfig' -> 'comparisonColumns') = '[\"version\"]'
		    AND (:'schema'::jsonb -> 'primaryKeyColumns') = '[\"record_uuid\"]'
		    AND (:'tbl'::jsonb #>> '{routing,instanceSelectorType}') = 'strictReplicaGroup'
		    AND (:'tbl'::jsonb #>> '{tableType}') = 'REALTIME'
		    AND (:'tbl'::jsonb #>> '{segmentsConfig,schemaName}') = (:'schema'::jsonb ->> 'schemaName')"
	check "$name: the Pinot table reads read_committed, JSON-decoded, with a time column of the schema" \
		"SELECT (:'tbl'::jsonb #>> '{tableIndexConfig,streamConfigs,stream.kafka.isolation.level}') = 'read_committed'
		    AND (:'tbl'::jsonb #>> '{tableIndexConfig,streamConfigs,stream.kafka.decoder.class.name}') LIKE '%JSONMessageDecoder'
		    AND EXISTS (SELECT 1 FROM jsonb_array_elements(:'schema'::jsonb -> 'dateTimeFieldSpecs') f
		                 WHERE f ->> 'name' = :'tbl'::jsonb #>> '{segmentsConfig,timeColumnName}')"
	check "$name: every record has every Pinot field, of the field's type (or null where it may be)" \
		"SELECT NOT EXISTS (
		   SELECT 1 FROM $records o CROSS JOIN $fields s
		    WHERE NOT (s.nullable AND jsonb_typeof(o.payload::jsonb -> s.name) = 'null')
		      AND (jsonb_typeof(o.payload::jsonb -> s.name) IS DISTINCT FROM s.json_type
		           OR (s.integral AND (o.payload::jsonb ->> s.name)::numeric
		                              <> trunc((o.payload::jsonb ->> s.name)::numeric))))"
	check "$name: no record has a field the Pinot schema lacks" \
		"SELECT NOT EXISTS (
		   SELECT 1 FROM $records o, jsonb_object_keys(o.payload::jsonb) k
		    WHERE k NOT IN (SELECT name FROM $fields s))"
	check "$name: the Hive table has exactly the Pinot schema's fields, with matching types" \
		"SELECT count(*) = (SELECT count(*) FROM $fields s)
		        AND bool_and(CASE s.json_type WHEN 'string' THEN h.value = 'STRING'
		                          WHEN 'boolean' THEN h.value = 'BOOLEAN'
		                          ELSE h.value = CASE WHEN s.integral THEN 'BIGINT' ELSE 'DECIMAL' END END)
		   FROM jsonb_each_text(:'hive_columns'::jsonb) h JOIN $fields s ON s.name = h.key"
	if grep -q "'kafka.consumer.isolation.level' = 'read_committed'" "$hive_file" &&
		grep -q "PARTITION BY record_uuid, version" "$hive_file" &&
		grep -q "PARTITION BY record_uuid" "$hive_file" &&
		grep -q "ORDER BY version DESC" "$hive_file"; then
		echo "ok - $name: the Hive DDL reads read_committed, keeps each (record_uuid, version) once and the latest version per record"
	else
		echo "not ok - $name: the Hive DDL reads read_committed, keeps each (record_uuid, version) once and the latest version per record"
		status=1
	fi
}

use_contract ad_minute_stats ""
check "records were emitted: several windows, some with three versions" \
	"SELECT count(*) > 10 AND max(version) = 3 FROM adstream.outbox o
	   JOIN adstream.pipeline p ON p.id = o.pipeline_id WHERE p.kind = 'ad_events'"
check_contract "ad minutes" "p.kind = 'ad_events'"

use_contract attributed_orders "ad_id,campaign_id,advertiser_id,touch_event_id,touch_time,enrichment"
check "order records were emitted: clicks, views and unattributed, enriched and not" \
	"SELECT count(*) = 600 AND count(DISTINCT o.payload::jsonb ->> 'attribution') = 3
	        AND count(DISTINCT o.payload::jsonb ->> 'enrichment_status') = 2
	        AND bool_and(o.record_uuid = adstream.order_uuid(o.payload::jsonb ->> 'region', o.payload::jsonb ->> 'order_id'))
	   FROM adstream.outbox o JOIN adstream.pipeline p ON p.id = o.pipeline_id
	  WHERE p.kind = 'orders'"
check_contract "attributed orders" "p.kind = 'orders'"
exit $status
