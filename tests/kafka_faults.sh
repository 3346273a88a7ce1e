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
status=0
adstream_kafka_env faults --brokers 3 ads:4
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

wait "$producer"
adstream_tap $? "the stream of $events messages was produced"
producer=

adstream_wait_applied "$events"
adstream_tap $? "after the faults, the consumer caught up with all $events messages"

adstream_check_truth || status=1

# disabling the pipeline stops its worker; enabling it starts one again;
# dropping it stops it
set_enabled() {				# set_enabled BOOL N: alter, then wait for N workers
	"${psql_cmd[@]}" -c "SELECT adstream.alter_pipeline('faults', enabled => $1)" &&
		adstream_poll "SELECT count(*) = $2 FROM pg_stat_activity
		                WHERE backend_type = 'adstream consumer'" 100
}
step "disabling the running pipeline stops its worker within 10 s" set_enabled false 0
step "enabling it again starts a worker within 10 s" set_enabled true 1
"${psql_cmd[@]}" -c "SELECT adstream.drop_pipeline('faults')" >/dev/null
adstream_poll "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'adstream consumer'" 100
adstream_tap $? "dropping the running pipeline stops its worker within 10 s"
exit $status
