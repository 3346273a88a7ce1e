#!/bin/bash
# Fault injection while a paced stream arrives (with 10% invalid messages,
# so nearly every batch carries poison): brokers taken down and brought
# back, injected fetch and metadata errors, PostgreSQL stopped with
# -m immediate and restarted, the pipeline altered while running.  The
# tables must then equal the generator's ground truth exactly; finally the
# pipeline is dropped while its worker runs, and the worker must stop.
# Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

events=40000
make -s -C "$src/tests/adgen" >/dev/null && make -s -C "$src/tests/kafka" >/dev/null || {
	echo "not ok - build the generator and the embedded Kafka"; exit 1; }
work=$(mktemp -d /tmp/adstream-faults.XXXXXX)
port=$(adstream_free_port)
producer=
cleanup() {
	[ -n "$producer" ] && kill "$producer" 2>/dev/null
	adstream_pg_stop "$work/pg"
	adstream_kafka_stop "$work"
	rm -rf "$work"
}
trap cleanup EXIT

adstream_kafka_start "$work" --brokers 3 ads:4 || { echo "not ok - embedded Kafka starts"; exit 1; }
adstream_pg_start "$work/pg" "$port" "adstream.database = 'postgres'"
psql_cmd=(psql -X -q -t -A -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
status=0
step() {					# step NAME COMMAND...: one TAP line for a fault step
	local name=$1
	shift
	if "$@" >"$work/step.log" 2>&1; then
		echo "ok - $name"
	else
		echo "not ok - $name"
		sed 's/^/#   /' "$work/step.log"
		status=1
	fi
}

"${psql_cmd[@]}" <<SQL >/dev/null || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('faults', max_message_bytes => 4096, topic => 'ads',
       bootstrap_servers => '$(cat "$work/bootstrap")',
       kafka_properties => '{"fetch.wait.max.ms": 10, "reconnect.backoff.max.ms": 200}',
       batch_size => 1000, batch_time => '20 ms');
SQL

"$src/tests/kafka/adproduce" --events "$events" --partitions 4 --topic ads \
	--rate $((events / 12)) --invalid-pct 10 --bootstrap-file "$work/bootstrap" \
	--messages "$work/messages.copy" --truth "$work/truth.copy" 2>"$work/produce.log" &
producer=$!

restart_pg() {
	local bin
	bin=$(adstream_pg_bindir)
	"$bin/pg_ctl" -D "$work/pg/data" -m immediate -w stop &&
		"$bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 60 start
}
sleep 1.5
step "broker 1 down" adstream_kafka_cmd "$work" down 1
sleep 1.5
step "broker 1 up" adstream_kafka_cmd "$work" up 1
step "5 fetch requests fail with NOT_LEADER_FOR_PARTITION" \
	adstream_kafka_cmd "$work" error fetch NOT_LEADER_FOR_PARTITION 5
step "3 metadata requests fail with a dropped connection" \
	adstream_kafka_cmd "$work" error metadata _TRANSPORT 3
sleep 1.5
step "PostgreSQL stopped with -m immediate mid-stream and restarted" restart_pg
sleep 1.5
step "pipeline altered while running" \
	"${psql_cmd[@]}" -c "SELECT adstream.alter_pipeline('faults', batch_size => 700)"
sleep 1
step "broker 2 down" adstream_kafka_cmd "$work" down 2
sleep 1
step "broker 2 up" adstream_kafka_cmd "$work" up 2

if wait "$producer"; then
	echo "ok - the stream of $events messages was produced"
else
	echo "not ok - the stream of $events messages was produced"
	cat "$work/produce.log"
	status=1
fi
producer=

caught_up=0
for _ in $(seq 1 900); do
	if [ "$("${psql_cmd[@]}" -c "SELECT coalesce(sum(next_offset), 0) = $events FROM adstream.consumed_offset" 2>/dev/null)" = t ]; then
		caught_up=1
		break
	fi
	sleep 0.2
done
if [ "$caught_up" -eq 1 ]; then
	echo "ok - after the faults, the consumer caught up with all $events messages"
else
	echo "not ok - after the faults, the consumer caught up with all $events messages"
	tail -20 "$work/pg/server.log"
	status=1
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
if [ "$(grep -c '^ok' "$work/check.txt")" -ne 7 ] || grep -q '^not ok' "$work/check.txt"; then
	status=1
fi

# disabling the pipeline stops its worker; enabling it starts one again
consumers() {
	"${psql_cmd[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'adstream consumer'"
}
wait_consumers() {			# wait_consumers N: bounded wait for N consumer workers
	for _ in $(seq 1 100); do
		[ "$(consumers)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
set_enabled() {				# set_enabled BOOL N: alter, then wait for N workers
	"${psql_cmd[@]}" -c "SELECT adstream.alter_pipeline('faults', enabled => $1)" &&
		wait_consumers "$2"
}
step "disabling the running pipeline stops its worker within 10 s" set_enabled false 0
step "enabling it again starts a worker within 10 s" set_enabled true 1

# dropping the pipeline stops its worker
"${psql_cmd[@]}" -c "SELECT adstream.drop_pipeline('faults')" >/dev/null
gone=0
for _ in $(seq 1 100); do
	if [ "$("${psql_cmd[@]}" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'adstream consumer'")" = 0 ]; then
		gone=1
		break
	fi
	sleep 0.1
done
if [ "$gone" -eq 1 ]; then
	echo "ok - dropping the running pipeline stops its worker within 10 s"
else
	echo "not ok - dropping the running pipeline stops its worker within 10 s"
	status=1
fi
exit $status
