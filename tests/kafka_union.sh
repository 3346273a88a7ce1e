#!/bin/bash
# Union across regions: two embedded Kafka clusters stand in for regions a
# and b, each with a PostgreSQL instance of its own (adstream.region a and
# b) running an ad-events pipeline that reads its region's events and emits
# its window records, with a sink, to its own cluster's stats topic.
# Instance a also runs a union pipeline that reads the stats topics of both
# clusters and emits to a load topic of cluster a, as the reference design
# loads Pinot and Hive.  A stream flows into each region while:
#   - the union's worker for region b is killed with SIGKILL;
#   - region b's cluster goes down for 6 s (region a's records must keep
#     being merged meanwhile) and comes back with its backlog;
#   - region b's own producer stops before a Kafka commit, and is killed
#     mid-stream;
#   - the union's producer is killed mid-stream.
# Then the union's views must equal the union of both regions' ground
# truth exactly, per region, ad and minute.  Region b's whole backlog is
# then read again (its offsets rewound): nothing may be merged or emitted
# twice.  Finally the load topic is read back: each (record UUID, version)
# once, versions 1..n of every record, latest totals and summed deltas
# equal to the truth.
#
#   tests/kafka_union.sh [--events N]     (N per region)
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

events=10000
while [ $# -gt 0 ]; do
	case "$1" in
		--events) events=$2; shift 2 ;;
		*) echo "usage: $0 [--events N]" >&2; exit 2 ;;
	esac
done
status=0

# region a: the scene's server and cluster; region b: a second of each
adstream_kafka_env union --brokers 1 ads:2 stats:2 progress:1 load:2 loadprog:1 \
	-- "adstream.region = 'a'"
mkdir -p "$work/kb"
pa=
pb=
union_stop() {
	[ -n "$pa" ] && kill "$pa" 2>/dev/null
	[ -n "$pb" ] && kill "$pb" 2>/dev/null
	adstream_pg_stop "$work/pgb"
	adstream_kafka_stop "$work/kb"
	adstream_kafka_env_stop
}
trap union_stop EXIT
adstream_kafka_start "$work/kb" --brokers 1 ads:2 stats:2 progress:1 ||
	{ echo "not ok - the second embedded Kafka starts"; exit 1; }
port_b=$(adstream_free_port)
adstream_pg_start "$work/pgb" "$port_b" "adstream.database = 'postgres'
adstream.region = 'b'" || { echo "not ok - the second PostgreSQL starts"; exit 1; }
psql_a=("${psql_cmd[@]}")
psql_b=(psql -X -q -t -A -h "$work/pgb" -p "$port_b" -U postgres -d postgres -v ON_ERROR_STOP=1)
boot_a=$(cat "$work/bootstrap")
boot_b=$(cat "$work/kb/bootstrap")

# each region: its events in, its window records out to its own cluster
region_setup() {
	cat <<SQL
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('ads', topic => 'ads', bootstrap_servers => '$1', max_message_bytes => 4096,
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_size => 2000,
       batch_time => '20 ms', emit_mode => 'changes');
SELECT adstream.create_sink('ads', 'stats', topic => 'stats', progress_topic => 'progress',
       batch_records => 300, kafka_properties => '{"reconnect.backoff.max.ms": 200}');
SQL
}
region_setup "$boot_a" | "${psql_a[@]}" >/dev/null || { echo "not ok - region a setup"; exit 1; }
region_setup "$boot_b" | "${psql_b[@]}" >/dev/null || { echo "not ok - region b setup"; exit 1; }
"${psql_a[@]}" >/dev/null <<SQL || { echo "not ok - union setup"; exit 1; }
SELECT adstream.create_union_pipeline('merged', batch_time => '20 ms');
SELECT adstream.add_union_source('merged', 'a', '$boot_a', 'stats',
       kafka_properties => '{"fetch.wait.max.ms": 10, "reconnect.backoff.max.ms": 200}');
SELECT adstream.add_union_source('merged', 'b', '$boot_b', 'stats',
       kafka_properties => '{"fetch.wait.max.ms": 10, "reconnect.backoff.max.ms": 200}');
SELECT adstream.create_sink('merged', 'main', topic => 'load', bootstrap_servers => '$boot_a',
       progress_topic => 'loadprog', batch_records => 300,
       kafka_properties => '{"reconnect.backoff.max.ms": 200}');
SQL
echo "ok - regions a and b each run a pipeline into their own cluster; a union reads both"

# a stream into each region: different seeds, the same ads
for r in a b; do
	if [ $r = a ]; then boot_file=$work/bootstrap; seed=11; else boot_file=$work/kb/bootstrap; seed=22; fi
	"$src/tests/kafka/adproduce" --events "$events" --partitions 2 --topic ads --ads 40 \
		--seed $seed --rate $((events / 30)) --bootstrap-file "$boot_file" \
		--messages "$work/messages_$r.copy" --truth "$work/truth_$r.copy" \
		2>"$work/produce_$r.log" &
	if [ $r = a ]; then pa=$!; else pb=$!; fi
done

poll_a() { psql_cmd=("${psql_a[@]}"); adstream_poll "$@"; }
poll_b() { psql_cmd=("${psql_b[@]}"); adstream_poll "$@"; }
merged_of() {
	"${psql_a[@]}" -c "SELECT merged FROM adstream.union_source_status WHERE region = '$1'" 2>/dev/null
}
# kill_worker PSQL-VAR BACKEND-TYPE APPNAME-PATTERN: SIGKILL that worker
# once it runs (at most 30 s), then wait until its server is back
kill_worker() {
	local -n q=$1
	local pid=
	for _ in $(seq 1 300); do
		pid=$("${q[@]}" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = '$2'
		                     AND application_name LIKE '$3' LIMIT 1" 2>/dev/null)
		[ -n "$pid" ] && break
		sleep 0.1
	done
	echo "worker: ${pid:-none}"
	[ -n "$pid" ] && sleep "0.$((RANDOM % 10))" && kill -9 "$pid" || return 1
	for _ in $(seq 1 300); do
		[ "$("${q[@]}" -c "SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = '$2'
		                     AND application_name LIKE '$3'" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

step "both regions' records are being merged" \
	poll_a "SELECT count(*) = 2 FROM adstream.union_source_status WHERE merged > 0" 600
step "the union's worker for region b is killed with SIGKILL (instance a restarts)" \
	kill_worker psql_a "adstream consumer" "adstream consumer merged b"

# region b's cluster down: region a's records keep being merged
step "region b's cluster goes down" adstream_kafka_cmd "$work/kb" down 1
a_before=$(merged_of a)
step "region a's records keep being merged while region b is down" \
	poll_a "SELECT merged > ${a_before:-0} FROM adstream.union_source_status WHERE region = 'a'" 150
sleep 3
step "region b's cluster comes back" adstream_kafka_cmd "$work/kb" up 1

# region b's producer stops after sending a transaction, before committing
# it; its successor aborts it and sends the records again
fail_b_before_commit() {
	local log=$work/pgb/server.log before
	before=$(grep -c "failure point before_kafka_commit reached" "$log")
	"${psql_b[@]}" -c "ALTER SYSTEM SET adstream.producer_fail_point = 'before_kafka_commit'" \
		-c "SELECT pg_reload_conf()" >/dev/null || return 1
	for _ in $(seq 1 300); do
		[ "$(grep -c "failure point before_kafka_commit reached" "$log")" -gt "$before" ] && break
		sleep 0.1
	done
	"${psql_b[@]}" -c "ALTER SYSTEM SET adstream.producer_fail_point = 'none'" \
		-c "SELECT pg_reload_conf()" >/dev/null
	[ "$(grep -c "failure point before_kafka_commit reached" "$log")" -gt "$before" ]
}
step "region b's producer stops after sending a transaction, before its Kafka commit" \
	fail_b_before_commit
step "region b's producer is killed with SIGKILL mid-stream" \
	kill_worker psql_b "adstream producer" "adstream producer ads/stats"
step "the union's producer is killed with SIGKILL mid-stream" \
	kill_worker psql_a "adstream producer" "adstream producer merged/main"

wait "$pa"
adstream_tap $? "the stream of $events messages into region a was produced"
wait "$pb"
adstream_tap $? "the stream of $events messages into region b was produced"
pa=
pb=

# ground truth of both regions, per region, ad and minute
"${psql_a[@]}" >/dev/null <<SQL || { echo "not ok - load ground truth"; exit 1; }
CREATE TABLE truth (seq bigint, status text, reason text, event_id text, event_type text,
                    ad_id text, window_start_ms bigint, cost_micros bigint);
CREATE TABLE expected_region AS SELECT NULL::text AS region, * FROM truth LIMIT 0;
COPY truth FROM '$work/truth_a.copy';
INSERT INTO expected_region SELECT 'a', * FROM truth;
TRUNCATE truth;
COPY truth FROM '$work/truth_b.copy';
INSERT INTO expected_region SELECT 'b', * FROM truth;
CREATE TABLE expected AS
SELECT region, ad_id, to_timestamp(window_start_ms / 1000) AS window_start,
       count(*) FILTER (WHERE event_type = 'impression') AS impressions,
       count(*) FILTER (WHERE event_type = 'click') AS clicks,
       coalesce(sum(cost_micros), 0)::bigint AS spend_micros
  FROM expected_region WHERE status = 'accepted' GROUP BY 1, 2, 3;
-- for tests/lib/output_checks.sql: one row per (region, ad, minute)
CREATE TABLE expected_agg AS
SELECT ad_id, window_start, impressions, clicks, spend_micros::numeric FROM expected;
SQL

diff_sql="SELECT count(*) FROM (
	(SELECT region, ad_id, window_start, impressions, clicks, spend_micros FROM expected
	 EXCEPT ALL
	 SELECT region, ad_id, window_start, impressions, clicks, spend_micros
	   FROM adstream.union_region_minute_stats WHERE pipeline = 'merged')
	UNION ALL
	(SELECT region, ad_id, window_start, impressions, clicks, spend_micros
	   FROM adstream.union_region_minute_stats WHERE pipeline = 'merged'
	 EXCEPT ALL
	 SELECT region, ad_id, window_start, impressions, clicks, spend_micros FROM expected)) d"
poll_a "SELECT ($diff_sql) = 0" 1200
rc=$?
adstream_tap $rc "merged totals per region, ad and minute equal both regions' ground truth ($("${psql_a[@]}" -c "$diff_sql") differences, $("${psql_a[@]}" -c "SELECT count(*) FROM expected") windows)"
if [ $rc -ne 0 ]; then
	# what differs, and where each region stands
	"${psql_a[@]}" -c "SELECT e.region, e.ad_id, e.window_start, e.impressions, e.clicks,
	                          u.impressions, u.clicks, u.version
	                     FROM expected e FULL JOIN adstream.union_region_minute_stats u
	                       USING (region, ad_id, window_start)
	                    WHERE u.impressions IS DISTINCT FROM e.impressions
	                       OR u.clicks IS DISTINCT FROM e.clicks LIMIT 10" | sed 's/^/#   /'
	for r in a b; do
		q=psql_$r; q="$q[@]"
		"${!q}" -c "SELECT 'region $r: ' || (SELECT count(*) FROM adstream.minute_delta) || ' unfolded, sink '
		                   || string_agg(sink || ' ' || coalesce(worker_state, '-') || ' backlog ' || backlog
		                                 || ' last error ' || coalesce(last_error, '-'), '; ')
		              FROM adstream.sink_status" | sed 's/^/#   /'
	done
	"${psql_a[@]}" -c "SELECT 'region a own: ' || string_agg(s.ad_id || ' ' || s.impressions || ' truth '
	                            || (SELECT string_agg(t.status || ':' || t.n, ',') FROM
	                                 (SELECT status, count(*) n FROM expected_region x
	                                   WHERE x.region = 'a' AND x.ad_id = s.ad_id
	                                     AND to_timestamp(x.window_start_ms / 1000) = s.window_start
	                                     AND x.event_type = 'impression' GROUP BY status) t), '; ')
	                     FROM adstream.ad_minute_stats s
	                    WHERE (s.ad_id, s.window_start) IN (SELECT e.ad_id, e.window_start FROM expected e
	                           JOIN adstream.union_region_minute_stats u USING (region, ad_id, window_start)
	                          WHERE e.region = 'a' AND u.impressions <> e.impressions)" | sed 's/^/#   /'
	"${psql_a[@]}" -c "SELECT region || ' ' || worker_state || ' lag ' || coalesce(lag, -1)
	                          || ' last error ' || coalesce(last_error, '-')
	                     FROM adstream.union_source_status" | sed 's/^/#   /'
fi

"${psql_a[@]}" -c "SELECT count(*) = 0 FROM (
	(SELECT ad_id, window_start, sum(impressions)::bigint, sum(clicks)::bigint, sum(spend_micros)::bigint,
	        array_agg(region ORDER BY region) FROM expected GROUP BY 1, 2
	 EXCEPT
	 SELECT ad_id, window_start, impressions, clicks, spend_micros, regions::text[]
	   FROM adstream.union_minute_stats WHERE pipeline = 'merged')
	UNION ALL
	(SELECT ad_id, window_start, impressions, clicks, spend_micros, regions::text[]
	   FROM adstream.union_minute_stats WHERE pipeline = 'merged'
	 EXCEPT
	 SELECT ad_id, window_start, sum(impressions)::bigint, sum(clicks)::bigint, sum(spend_micros)::bigint,
	        array_agg(region ORDER BY region) FROM expected GROUP BY 1, 2)) d" >"$work/merged.txt"
[ "$(cat "$work/merged.txt")" = t ]
adstream_tap $? "totals merged across regions per ad and minute equal the sum of both regions' truth"

"${psql_a[@]}" -c "SELECT count(*) = 0 FROM adstream.dead_letter
                    WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'merged')" \
	>"$work/dead.txt"
[ "$(cat "$work/dead.txt")" = t ]
adstream_tap $? "no record of either region was dead-lettered by the union"

# everything delivered to the load topic
poll_a "SELECT backlog = 0 AND acked_id > 0 FROM adstream.sink_status WHERE sink = 'main'" 1200
adstream_tap $? "the union's sink delivered every merged record"

# region b's whole backlog once more: the union's offsets of region b are
# rewound to 0, so its worker reads every record of region b again; each
# must be dropped (as a duplicate or stale), nothing merged or emitted twice
q_b="SELECT merged || ' ' || (SELECT sum(next_offset) FROM adstream.consumed_offset o
                               JOIN adstream.pipeline p ON p.id = o.pipeline_id
                              WHERE p.name = 'merged' AND o.source = 'b')
     FROM adstream.union_source_status WHERE region = 'b'"
read -r b_merged b_next <<<"$("${psql_a[@]}" -c "$q_b")"
rewind_b() {
	"${psql_a[@]}" -c "SELECT adstream.alter_union_source('merged', 'b', enabled => false)" >/dev/null &&
		poll_a "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'adstream consumer merged b'" &&
		"${psql_a[@]}" -c "UPDATE adstream.consumed_offset SET next_offset = 0
		                    WHERE source = 'b' AND pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'merged')" \
			-c "SELECT adstream.alter_union_source('merged', 'b', enabled => true)" >/dev/null
}
step "the union's offsets of region b are rewound to 0; its worker starts again" rewind_b
poll_a "SELECT sum(next_offset) = $b_next FROM adstream.consumed_offset
         WHERE source = 'b' AND pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'merged')" 600
adstream_tap $? "the union read region b's $b_next offsets again"
"${psql_a[@]}" -c "SELECT merged = $b_merged AND duplicates + stale >= $b_merged
                     FROM adstream.union_source_status WHERE region = 'b'" >"$work/replay.txt"
[ "$(cat "$work/replay.txt")" = t ]
adstream_tap $? "every record of the replayed backlog was dropped as a duplicate: none merged twice"
"${psql_a[@]}" -c "SELECT backlog = 0 FROM adstream.sink_status WHERE sink = 'main'" >"$work/replay.txt"
[ "$(cat "$work/replay.txt")" = t ]
adstream_tap $? "the replay added nothing to the union's output"

# the load topic read back
"${psql_a[@]}" -c "SELECT 'region ' || region || ': merged ' || merged || ', duplicates ' || duplicates
                          || ', stale ' || stale FROM adstream.union_source_status ORDER BY region" |
	sed 's/^/# /'
"$src/tests/kafka/outread" --bootstrap-file "$work/bootstrap" --topic load \
	--progress-topic loadprog --records "$work/out.copy" --progress "$work/progress.copy" \
	--isolation read_uncommitted >"$work/outread.log" 2>&1
adstream_tap $? "the load and progress topics were read back ($(cat "$work/outread.log"))"
"${psql_a[@]}" -v committed= -v real= -v records="$work/out.copy" -v progress="$work/progress.copy" \
	-f "$src/tests/lib/output_checks.sql" >"$work/output_checks.txt" 2>&1
cat "$work/output_checks.txt"
grep -q '^not ok' "$work/output_checks.txt" && status=1
[ "$(grep -c '^ok' "$work/output_checks.txt")" -eq 11 ] || status=1
exit $status
