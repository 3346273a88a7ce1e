#!/bin/bash
# End to end through the embedded Kafka: the consumer workers the launcher
# starts consume a generated stream, the launcher folds by itself, and the
# tables must then equal the generator's ground truth exactly.  Prints TAP
# lines.
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
status=0
adstream_kafka_env kafka ads:4

# the stream is in Kafka before the pipeline exists: start_from earliest
"$src/tests/kafka/adproduce" --events "$events" --partitions 4 --topic ads \
	--bootstrap-file "$work/bootstrap" --messages "$work/messages.copy" \
	--truth "$work/truth.copy" 2>"$work/produce.log" || {
	echo "not ok - produce the stream"; cat "$work/produce.log"; exit 1; }
count_of() { awk -F'\t' -v s="$1" '$2 == s' "$work/truth.copy" | wc -l; }

"${psql_cmd[@]}" <<SQL >/dev/null || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('stream', max_message_bytes => 4096, topic => 'ads',
       bootstrap_servers => '$(cat "$work/bootstrap")',
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_size => 5000,
       workers => $workers);
SQL

adstream_wait_applied "$events"
adstream_tap $? "$workers consumer worker(s) applied all $events messages"

# the launcher folds the increments by itself (adstream.fold_interval, 1 s)
adstream_poll "SELECT count(*) = 0 FROM adstream.minute_delta" 100
adstream_tap $? "the launcher folds the aggregate increments by itself within 10 s"

# the status view: running workers, every partition caught up, and counters
# that equal ground truth (the lag shows once the cached end offsets are in)
adstream_poll "
	SELECT count(*) = 4
	   AND bool_and(worker_state = 'consuming' AND worker_pid IS NOT NULL)
	   AND count(DISTINCT worker_pid) = $workers
	   AND bool_and(end_offset = next_offset AND lag = 0)
	   AND min(accepted) = $(count_of accepted)
	   AND min(rejected) = $(count_of rejected)
	   AND min(duplicates) = $(count_of duplicate)
	   AND min(batches) > 0 AND bool_and(last_commit IS NOT NULL)
	  FROM adstream.pipeline_status WHERE pipeline = 'stream'" 100
adstream_tap $? "pipeline_status shows $workers worker(s) consuming, no lag, and counts equal to ground truth"

adstream_check_truth || status=1
exit $status
