#!/bin/bash
# Benchmark of the exactly-once output, through the embedded Kafka, in one
# run:
#   1. throughput: N generated events (default 200,000) are applied by a
#      pipeline that emits changes, with folding off, while its sink's
#      producer worker waits; then one fold writes every output record and
#      wakes the producer, which sends them in Kafka transactions of 10,000.
#      Its records/s (from the fold's commit to the last acknowledgement)
#      against the
#      baseline: a plain librdkafka transactional producer (tests/kafka/
#      txnproduce) sending the same records, keyed, in transactions of the
#      same size;
#   2. latency: tests/kafka/outlatency produces R events/s (default 20,000)
#      for S seconds (default 20) and reads the output topic read_committed:
#      the time from each event's produce to the first output record that
#      counts it being readable, p50 and p99.  The launcher folds (and so
#      emits) every adstream.fold_interval (1 s, the default).
#
#   tests/bench/output_bench.sh [--events N] [--rate R] [--seconds S]
set -uo pipefail

args=("$@")
events=200000
rate=20000
seconds=20
while [ $# -gt 0 ]; do
	case "$1" in
		--events) events=$2; shift 2 ;;
		--rate) rate=$2; shift 2 ;;
		--seconds) seconds=$2; shift 2 ;;
		*) echo "usage: $0 [--events N] [--rate R] [--seconds S]" >&2; exit 2 ;;
	esac
done

src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

# root-only steps first; the rest runs as an unprivileged user
adstream_enter tests/bench/output_bench.sh "${args[@]}"

adstream_kafka_env obench ads:8 out:8 base:8 progress:1 lat:8 latout:8 -- "shared_buffers = 1GB
max_wal_size = 8GB
adstream.fold_interval = 0"
now() { date +%s.%N; }
bootstrap=$(cat "$work/bootstrap")

echo "# producing $events events to topic ads"
"$src/tests/kafka/adproduce" --events "$events" --partitions 8 --topic ads \
	--bootstrap-file "$work/bootstrap" --messages "$work/messages.copy" \
	--truth "$work/truth.copy" 2>"$work/produce.log" || { cat "$work/produce.log"; exit 1; }

"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('tput', max_message_bytes => 4096, topic => 'ads',
       bootstrap_servers => '$bootstrap', kafka_properties => '{"fetch.wait.max.ms": 10}',
       emit_mode => 'changes');
SELECT adstream.create_sink('tput', 'out', topic => 'out', progress_topic => 'progress');
SQL
echo "# the pipeline applies them (no fold yet); the sink's producer waits"
adstream_wait_applied "$events" || { echo "output_bench: the consumer did not catch up" >&2; exit 1; }
adstream_poll "SELECT worker_state = 'idle' FROM adstream.sink_status" ||
	{ echo "output_bench: the producer did not start" >&2; exit 1; }

echo "# adstream: one fold writes the output records; the producer sends them"
t0=$(now)
"${psql_cmd[@]}" -c "SELECT adstream.fold_minute_stats(100000000)" >/dev/null || exit 1
t_fold=$(now)
read -r records max_id < <("${psql_cmd[@]}" -F ' ' -c "SELECT count(*), max(id) FROM adstream.outbox")
adstream_poll "SELECT acked_id >= $max_id FROM adstream.sink_status" 3000 ||
	{ echo "output_bench: the producer did not deliver the outbox" >&2; exit 1; }
t1=$(now)
read -r txns sent < <("${psql_cmd[@]}" -F ' ' -c "SELECT transactions, records FROM adstream.sink_status")
[ "$sent" = "$records" ] || { echo "output_bench: sent $sent of $records records" >&2; exit 1; }
adstream_poll "SELECT NOT EXISTS (SELECT 1 FROM adstream.outbox)" ||
	{ echo "output_bench: the outbox was not pruned" >&2; exit 1; }

echo "# baseline: a plain librdkafka transactional producer sends the same $records records"
"$src/tests/kafka/outread" --bootstrap-file "$work/bootstrap" --topic out --progress-topic progress \
	--records "$work/out.copy" --progress "$work/progress.copy" >/dev/null || exit 1
cut -f 3,7 "$work/out.copy" >"$work/records.copy"
[ "$(wc -l <"$work/records.copy")" = "$records" ] ||
	{ echo "output_bench: the output topic does not hold the $records records" >&2; exit 1; }
"$src/tests/kafka/txnproduce" --bootstrap "$bootstrap" --topic base --records "$work/records.copy" \
	--batch 10000 >"$work/base.txt" || exit 1
base_rate=$(awk '{ print $(NF-1) }' "$work/base.txt")
read -r txns sent < <("${psql_cmd[@]}" -F ' ' -c "SELECT transactions, records FROM adstream.sink_status")
[ "$sent" = "$records" ] || { echo "output_bench: sent $sent of $records records" >&2; exit 1; }

echo "# latency: $rate events/s for $seconds s through a sink with the default fold interval"
"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
ALTER SYSTEM SET adstream.fold_interval = '1s';
SELECT pg_reload_conf();
SELECT adstream.drop_pipeline('tput');
SELECT adstream.create_pipeline('lat', max_message_bytes => 4096, topic => 'lat',
       bootstrap_servers => '$bootstrap', kafka_properties => '{"fetch.wait.max.ms": 10}',
       batch_time => '50 ms', emit_mode => 'changes');
SELECT adstream.create_sink('lat', 'out', topic => 'latout', progress_topic => 'progress');
SQL
adstream_poll "SELECT count(*) > 0 FROM adstream.pipeline_status
               WHERE pipeline = 'lat' AND worker_state = 'consuming'" &&
	adstream_poll "SELECT worker_state = 'idle' FROM adstream.sink_status" ||
	{ echo "output_bench: the workers of the latency run did not start" >&2; exit 1; }
"$src/tests/kafka/outlatency" --bootstrap-file "$work/bootstrap" --topic lat --out-topic latout \
	--rate "$rate" --seconds "$seconds" >"$work/latency.txt" 2>"$work/latency.err" ||
	{ cat "$work/latency.txt" "$work/latency.err"; exit 1; }

awk -v n="$records" -v t0="$t_fold" -v t1="$t1" -v tf="$t0" -v tx="$txns" -v br="$base_rate" 'BEGIN {
	r = n / (t1 - t0)
	printf "plain librdkafka transactional producer: %9.0f records/s\n", br
	printf "adstream producer worker (%d records, %d transactions): %.3f s %9.0f records/s  ratio to baseline %.3f (the fold writing them took %.3f s)\n", n, tx, t1 - t0, r, r / br, t0 - tf
}'
sed 's/^outlatency: /latency, produce to readable on the output topic: /' "$work/latency.txt"
read -r c50 c99 < <("${psql_cmd[@]}" -F ' ' -c "SELECT max(latency_p50_ms), max(latency_p99_ms)
                                               FROM adstream.pipeline_status WHERE pipeline = 'lat'")
read -r s50 s99 txns < <("${psql_cmd[@]}" -F ' ' -c "SELECT latency_p50_ms, latency_p99_ms, transactions
                                                    FROM adstream.sink_status WHERE pipeline = 'lat'")
echo "  of which: event to its batch's commit p50 $c50 ms, p99 $c99 ms (pipeline_status);" \
	"output record written to its Kafka commit p50 $s50 ms, p99 $s99 ms over $txns transactions (sink_status)"
