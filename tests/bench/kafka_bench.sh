#!/bin/bash
# End-to-end benchmark through the embedded Kafka, in one run:
#   1. throughput: N generated events are produced to a topic first; then a
#      plain librdkafka consumer (tests/kafka/drain) drains the topic, and
#      an adstream pipeline with 1, then with 2 consumer workers applies the
#      same topic from the start.  The rates, their ratios to the drain,
#      and an exact ground-truth check of each;
#   2. latency: a steady paced stream (default 20,000 events/s for 20 s);
#      the worker's p50 and p99 from each message's Kafka timestamp to the
#      commit of its batch (adstream.pipeline_status), and the lag at the end.
#
#   tests/bench/kafka_bench.sh [--events N] [--partitions P] [--rate R] [--seconds S]
set -uo pipefail

args=("$@")
events=150000
partitions=16
rate=20000
seconds=20
while [ $# -gt 0 ]; do
	case "$1" in
		--events) events=$2; shift 2 ;;
		--partitions) partitions=$2; shift 2 ;;
		--rate) rate=$2; shift 2 ;;
		--seconds) seconds=$2; shift 2 ;;
		*) echo "usage: $0 [--events N] [--partitions P] [--rate R] [--seconds S]" >&2; exit 2 ;;
	esac
done

src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

# root-only steps first; the rest runs as an unprivileged user
adstream_enter tests/bench/kafka_bench.sh "${args[@]}"

adstream_kafka_env kbench "tput:$partitions" lat:8 -- "adstream.fold_interval = 0
shared_buffers = 1GB
max_wal_size = 8GB"
now() { date +%s.%N; }

echo "# producing $events events to topic tput ($partitions partitions)"
"$src/tests/kafka/adproduce" --events "$events" --partitions "$partitions" --topic tput \
	--bootstrap-file "$work/bootstrap" --messages "$work/messages.copy" \
	--truth "$work/truth.copy" 2>"$work/produce.log" || { cat "$work/produce.log"; exit 1; }

echo "# baseline: a plain librdkafka consumer drains the topic"
"$src/tests/kafka/drain" --bootstrap-file "$work/bootstrap" --topic tput \
	--messages "$events" >"$work/drain.txt" || exit 1
. "$work/drain.txt"

"${psql_cmd[@]}" -c "CREATE EXTENSION adstream" >/dev/null || exit 1
checks_ok=1

# measure W: a pipeline with W consumer workers applies the whole topic from
# the start; sets rate_W (events/s from its first commit to its last) and
# checks the result against ground truth
measure() {
	local w=$1 n first_n= t_first= t_last=
	echo "# adstream: $w consumer worker(s) apply the topic from the start"
	"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
SELECT adstream.drop_pipeline(name) FROM adstream.list_pipelines();
SELECT adstream.create_pipeline('tput', max_message_bytes => 4096, topic => 'tput',
       bootstrap_servers => '$(cat "$work/bootstrap")',
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_size => 10000, workers => $w);
SQL
	for _ in $(seq 1 60000); do
		n=$("${psql_cmd[@]}" -c "SELECT coalesce(sum(next_offset), 0) FROM adstream.consumed_offset o
		                          JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'tput'")
		if [ -z "$t_first" ] && [ "$n" -gt 0 ]; then
			t_first=$(now)
			first_n=$n
		fi
		if [ "$n" -ge "$events" ]; then
			t_last=$(now)
			break
		fi
		sleep 0.02
	done
	[ -n "$t_last" ] || { echo "kafka_bench: the workers did not catch up" >&2; exit 1; }
	eval "rate_$w=$(awk -v n="$events" -v fn="$first_n" -v t0="$t_first" -v t1="$t_last" \
		'BEGIN { printf "%.0f", (n - fn) / (t1 - t0) }')"
	eval "secs_$w=$(awk -v t0="$t_first" -v t1="$t_last" 'BEGIN { printf "%.3f", t1 - t0 }')"
	adstream_check_truth >>"$work/checks.txt" || checks_ok=0
}
measure 1
measure 2

echo "# latency: $rate events/s for $seconds s to topic lat"
"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
SELECT adstream.drop_pipeline('tput');
SELECT adstream.create_pipeline('lat', max_message_bytes => 4096, topic => 'lat',
       bootstrap_servers => '$(cat "$work/bootstrap")',
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_time => '50 ms');
SQL
adstream_poll "SELECT count(*) > 0 FROM adstream.pipeline_status
               WHERE pipeline = 'lat' AND worker_state = 'consuming'" ||
	{ echo "kafka_bench: no worker for the latency run" >&2; exit 1; }
"$src/tests/kafka/adproduce" --events $((rate * seconds)) --partitions 8 --topic lat \
	--rate "$rate" --bootstrap-file "$work/bootstrap" 2>"$work/produce-lat.log" ||
	{ cat "$work/produce-lat.log"; exit 1; }
adstream_wait_applied $((rate * seconds)) ||
	{ echo "kafka_bench: the worker did not catch up with the latency run" >&2; exit 1; }
read -r p50 p99 accepted < <("${psql_cmd[@]}" -F ' ' -c "
	SELECT max(latency_p50_ms), max(latency_p99_ms), max(accepted)
	  FROM adstream.pipeline_status WHERE pipeline = 'lat'")

awk -v ds="$drain_secs" -v dr="$drain_rate" -v s1="$secs_1" -v r1="$rate_1" \
	-v s2="$secs_2" -v r2="$rate_2" -v p50="$p50" -v p99="$p99" -v r="$rate" \
	-v s="$seconds" -v acc="$accepted" 'BEGIN {
	printf "plain librdkafka consumer drain: %.3f s  %9.0f messages/s\n", ds, dr
	printf "adstream, 1 consumer worker:     %.3f s  %9.0f events/s  ratio to drain %.3f\n", s1, r1, r1 / dr
	printf "adstream, 2 consumer workers:    %.3f s  %9.0f events/s  ratio to drain %.3f\n", s2, r2, r2 / dr
	printf "latency at %d events/s for %d s (%d accepted): p50 %s ms, p99 %s ms (Kafka timestamp to commit)\n", r, s, acc, p50, p99
}'
cat "$work/checks.txt"
[ "$checks_ok" -eq 1 ]
