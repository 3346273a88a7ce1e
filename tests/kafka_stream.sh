#!/bin/bash
# End to end through the embedded Kafka: a consumer worker started by the
# launcher consumes a generated stream, and the tables must then equal the
# generator's ground truth exactly.  Prints TAP lines.
#
#   tests/kafka_stream.sh [--events N] [--workers W]
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

events=50000
workers=1
while [ $# -gt 0 ]; do
	case "$1" in
		--events) events=$2; shift 2 ;;
		--workers) workers=$2; shift 2 ;;
		*) echo "usage: $0 [--events N] [--workers W]" >&2; exit 2 ;;
	esac
done

make -s -C "$src/tests/adgen" >/dev/null && make -s -C "$src/tests/kafka" >/dev/null || {
	echo "not ok - build the generator and the embedded Kafka"; exit 1; }
work=$(mktemp -d /tmp/adstream-kafka.XXXXXX)
port=$(adstream_free_port)
cleanup() {
	adstream_pg_stop "$work/pg"
	adstream_kafka_stop "$work"
	rm -rf "$work"
}
trap cleanup EXIT

adstream_kafka_start "$work" ads:4 || { echo "not ok - embedded Kafka starts"; exit 1; }
adstream_pg_start "$work/pg" "$port" "adstream.database = 'postgres'"
psql_cmd=(psql -X -q -t -A -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)

# the stream is in Kafka before the pipeline exists: start_from earliest
"$src/tests/kafka/adproduce" --events "$events" --partitions 4 --topic ads \
	--bootstrap-file "$work/bootstrap" --messages "$work/messages.copy" \
	--truth "$work/truth.copy" 2>"$work/produce.log" || {
	echo "not ok - produce the stream"; cat "$work/produce.log"; exit 1; }

"${psql_cmd[@]}" <<SQL >/dev/null || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
CREATE TABLE raw (seq bigint PRIMARY KEY, partition int, "offset" bigint, kafka_ms bigint, msg bytea);
COPY raw FROM '$work/messages.copy';
CREATE TABLE truth (seq bigint, status text, reason text, event_id text, event_type text,
                    ad_id text, window_start_ms bigint, cost_micros bigint);
COPY truth FROM '$work/truth.copy';
SELECT adstream.create_pipeline('stream', max_message_bytes => 4096, topic => 'ads',
       bootstrap_servers => '$(cat "$work/bootstrap")',
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_size => 5000,
       workers => $workers);
SQL

# wait (bounded) until every partition's stored offset reaches its end
caught_up=0
for _ in $(seq 1 600); do
	if [ "$("${psql_cmd[@]}" -c "SELECT coalesce(sum(next_offset), 0) = $events FROM adstream.consumed_offset")" = t ]; then
		caught_up=1
		break
	fi
	sleep 0.2
done
if [ "$caught_up" -eq 1 ]; then
	echo "ok - $workers consumer worker(s) applied all $events messages"
else
	echo "not ok - $workers consumer worker(s) applied all $events messages (stored offsets: $("${psql_cmd[@]}" -c "SELECT sum(next_offset) FROM adstream.consumed_offset"))"
	tail -20 "$work/pg/server.log"
fi

# the launcher folds the increments by itself (adstream.fold_interval, 1 s)
folded=0
for _ in $(seq 1 100); do
	if [ "$("${psql_cmd[@]}" -c "SELECT count(*) = 0 FROM adstream.minute_delta")" = t ]; then
		folded=1
		break
	fi
	sleep 0.1
done
if [ "$folded" -eq 1 ]; then
	echo "ok - the launcher folds the aggregate increments by itself within 10 s"
else
	echo "not ok - the launcher folds the aggregate increments by itself within 10 s"
fi

# the status view: a running worker, every partition caught up, and counters
# that equal ground truth (the lag shows once the cached end offsets are in)
status_ok=0
for _ in $(seq 1 100); do
	if [ "$("${psql_cmd[@]}" -c "
		SELECT count(*) = 4
		   AND bool_and(worker_state = 'consuming' AND worker_pid IS NOT NULL)
		   AND count(DISTINCT worker_pid) = $workers
		   AND bool_and(end_offset = next_offset AND lag = 0)
		   AND min(accepted) = (SELECT count(*) FROM truth WHERE status = 'accepted')
		   AND min(rejected) = (SELECT count(*) FROM truth WHERE status = 'rejected')
		   AND min(duplicates) = (SELECT count(*) FROM truth WHERE status = 'duplicate')
		   AND min(batches) > 0 AND bool_and(last_commit IS NOT NULL)
		  FROM adstream.pipeline_status WHERE pipeline = 'stream'")" = t ]; then
		status_ok=1
		break
	fi
	sleep 0.1
done
if [ "$status_ok" -eq 1 ]; then
	echo "ok - pipeline_status shows $workers worker(s) consuming, no lag, and counts equal to ground truth"
else
	echo "not ok - pipeline_status shows $workers worker(s) consuming, no lag, and counts equal to ground truth"
	"${psql_cmd[@]}" -c "SELECT * FROM adstream.pipeline_status"
fi

"${psql_cmd[@]}" -c "SELECT adstream.fold_minute_stats(100000000)" >/dev/null
"${psql_cmd[@]}" -f "$src/tests/lib/truth_checks.sql" >"$work/check.txt" 2>&1
cat "$work/check.txt"
check=$(grep -c '^ok' "$work/check.txt")
if [ "$caught_up" -eq 1 ] && [ "$status_ok" -eq 1 ] && [ "$folded" -eq 1 ] && [ "$check" -eq 7 ] &&
	! grep -q '^not ok' "$work/check.txt"; then
	exit 0
fi
exit 1
