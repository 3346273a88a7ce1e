#!/bin/bash
# adstream without shared_preload_libraries: no workers, but the extension
# installs and the SQL API works (ingest, fold, views, status).  Prints TAP
# lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

# a later line wins: this one undoes adstream_pg_start's preload
adstream_pg_scene nopreload "shared_preload_libraries = ''"

if result=$("${psql_cmd[@]}" 2>&1 <<'SQL'
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('plain', emit_mode => 'changes');
SELECT accepted FROM adstream.ingest('plain', ARRAY[convert_to(
  '{"event_id":"n1","event_type":"click","ad_id":"ad-1","event_time":"2026-01-01T00:05:00Z","user_id":"u"}',
  'UTF8')], kafka_timestamps => ARRAY['2026-01-01 00:06:00+00'::timestamptz]);
SELECT adstream.fold_minute_stats();
SELECT clicks FROM adstream.ad_minute_stats WHERE pipeline = 'plain';
SELECT count(*) FROM adstream.outbox;
SELECT worker_state FROM adstream.pipeline_status WHERE pipeline = 'plain';
SQL
); then
	if [ "$(echo $result)" = "1 1 1 1 no topic" ]; then
		echo "ok - without preloading, the extension installs and ingest, fold, views and status work"
	else
		echo "not ok - without preloading, the extension installs and ingest, fold, views and status work"
		echo "$result" | sed 's/^/#   /'
		exit 1
	fi
else
	echo "not ok - without preloading, the extension installs"
	echo "$result" | sed 's/^/#   /'
	exit 1
fi
