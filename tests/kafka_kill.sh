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

status=0
adstream_kafka_env kill ads:4

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
wait "$producer"
adstream_tap $? "the stream of $events messages was produced"
producer=
[ "$done_kills" -ge "$kills" ]
adstream_tap $? "the consumer worker was killed with SIGKILL $kills times ($done_kills)"

adstream_wait_applied "$events"
adstream_tap $? "after the kills, the consumer caught up with all $events messages"

adstream_check_truth || status=1
exit $status
