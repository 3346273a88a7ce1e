#!/bin/bash
# Fault injection: the consumer worker is killed with SIGKILL at random
# moments while a paced stream arrives (each kill makes PostgreSQL restart
# all its processes and recover), and the tables must still equal the
# generator's ground truth exactly.  Prints TAP lines.
#
#   tests/kafka_kill.sh [--events N] [--kills K]
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

events=60000
kills=20
while [ $# -gt 0 ]; do
	case "$1" in
		--events) events=$2; shift 2 ;;
		--kills) kills=$2; shift 2 ;;
		*) echo "usage: $0 [--events N] [--kills K]" >&2; exit 2 ;;
	esac
done

make -s -C "$src/tests/adgen" >/dev/null && make -s -C "$src/tests/kafka" >/dev/null || {
	echo "not ok - build the generator and the embedded Kafka"; exit 1; }
work=$(mktemp -d /tmp/adstream-kill.XXXXXX)
port=$(adstream_free_port)
producer=
cleanup() {
	[ -n "$producer" ] && kill "$producer" 2>/dev/null
	adstream_pg_stop "$work/pg"
	adstream_kafka_stop "$work"
	rm -rf "$work"
}
trap cleanup EXIT

adstream_kafka_start "$work" ads:4 || { echo "not ok - embedded Kafka starts"; exit 1; }
adstream_pg_start "$work/pg" "$port" "adstream.database = 'postgres'
restart_after_crash = on"
psql_cmd=(psql -X -q -t -A -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)

"${psql_cmd[@]}" <<SQL >/dev/null || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('killed', max_message_bytes => 4096, topic => 'ads',
       bootstrap_servers => '$(cat "$work/bootstrap")',
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_size => 2000,
       batch_time => '20 ms');
SQL

# a paced stream, so that the kills land while batches are being applied
rate=$((events / 15))
"$src/tests/kafka/adproduce" --events "$events" --partitions 4 --topic ads --rate "$rate" \
	--bootstrap-file "$work/bootstrap" --messages "$work/messages.copy" \
	--truth "$work/truth.copy" 2>"$work/produce.log" &
producer=$!

consumer_pid() {
	"${psql_cmd[@]}" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'adstream consumer'" 2>/dev/null
}
done_kills=0
for _ in $(seq 1 "$kills"); do
	# wait (bounded) for a consumer that has started applying, then kill it
	pid=
	for _ in $(seq 1 200); do
		pid=$(consumer_pid)
		[ -n "$pid" ] && break
		sleep 0.05
	done
	[ -n "$pid" ] || break
	sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
	kill -9 "$pid" 2>/dev/null && done_kills=$((done_kills + 1))
done
if wait "$producer"; then
	echo "ok - the stream of $events messages was produced"
else
	echo "not ok - the stream of $events messages was produced"
	cat "$work/produce.log"
fi
producer=
if [ "$done_kills" -ge "$kills" ]; then
	echo "ok - the consumer worker was killed $done_kills times with SIGKILL"
else
	echo "not ok - the consumer worker was killed $kills times (only $done_kills)"
fi

caught_up=0
for _ in $(seq 1 900); do
	if [ "$("${psql_cmd[@]}" -c "SELECT coalesce(sum(next_offset), 0) = $events FROM adstream.consumed_offset" 2>/dev/null)" = t ]; then
		caught_up=1
		break
	fi
	sleep 0.2
done
if [ "$caught_up" -eq 1 ]; then
	echo "ok - after the kills, the consumer caught up with all $events messages"
else
	echo "not ok - after the kills, the consumer caught up with all $events messages"
	tail -20 "$work/pg/server.log"
fi

"${psql_cmd[@]}" <<SQL >/dev/null || { echo "not ok - load ground truth"; exit 1; }
CREATE TABLE raw (seq bigint PRIMARY KEY, partition int, "offset" bigint, kafka_ms bigint, msg bytea);
COPY raw FROM '$work/messages.copy';
CREATE TABLE truth (seq bigint, status text, reason text, event_id text, event_type text,
                    ad_id text, window_start_ms bigint, cost_micros bigint);
COPY truth FROM '$work/truth.copy';
SELECT adstream.fold_minute_stats(100000000);
SQL
"${psql_cmd[@]}" -f "$src/tests/lib/truth_checks.sql" >"$work/check.txt" 2>&1
cat "$work/check.txt"
if [ "$caught_up" -eq 1 ] && [ "$done_kills" -ge "$kills" ] &&
	[ "$(grep -c '^ok' "$work/check.txt")" -eq 7 ] && ! grep -q '^not ok' "$work/check.txt"; then
	exit 0
fi
exit 1
