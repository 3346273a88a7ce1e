#!/bin/bash
# Where a pipeline's worker reads from:
#   - start_from latest: the ends of the partitions are resolved once and
#     stored, so only later messages count, and a restart (alter) does not
#     move the start;
#   - a stored offset that is no longer in the log is an error shown in
#     pipeline_status, never a silent jump; the worker resumes once the
#     offset is valid again.
# Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

status=0
adstream_kafka_env positions pos:2
produce() {					# produce SEED EVENTS TRUTHFILE
	"$src/tests/kafka/adproduce" --seed "$1" --events "$2" --partitions 2 --topic pos \
		--bootstrap-file "$work/bootstrap" --truth "$3" 2>>"$work/produce.log"
}
accepted_in() { awk -F'\t' '$2 == "accepted"' "$1" | wc -l; }

produce 1 2000 "$work/before.truth" || { echo "not ok - produce"; exit 1; }
"${psql_cmd[@]}" >/dev/null <<SQL || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('pos', max_message_bytes => 4096, topic => 'pos',
       bootstrap_servers => '$(cat "$work/bootstrap")', start_from => 'latest',
       kafka_properties => '{"fetch.wait.max.ms": 10}');
SQL
adstream_poll "SELECT count(*) = 2 AND sum(next_offset) = 2000 FROM adstream.consumed_offset"
adstream_tap $? "start_from latest stores the partitions' ends before reading"

# a restart must not move the start: alter, then produce more
"${psql_cmd[@]}" -c "SELECT adstream.alter_pipeline('pos', batch_size => 500)" >/dev/null
produce 2 1000 "$work/after.truth" || { echo "not ok - produce"; exit 1; }
adstream_poll "SELECT sum(next_offset) = 3000 FROM adstream.consumed_offset"
adstream_tap $? "the worker then applies exactly the messages produced after it started"
want=$(accepted_in "$work/after.truth")
[ "$("${psql_cmd[@]}" -c "SELECT count(*) FROM adstream.event")" = "$want" ]
adstream_tap $? "only the $want events produced later are counted"

# an offset beyond the log: an error in the status, nothing skipped
good=$("${psql_cmd[@]}" -c "SELECT next_offset FROM adstream.consumed_offset WHERE partition = 0")
"${psql_cmd[@]}" >/dev/null <<SQL
SELECT adstream.alter_pipeline('pos', enabled => false);
UPDATE adstream.consumed_offset SET next_offset = 1000000 WHERE partition = 0;
SELECT adstream.alter_pipeline('pos', enabled => true);
SQL
adstream_poll "SELECT bool_or(last_error LIKE '%partition 0%') FROM adstream.pipeline_status WHERE pipeline = 'pos'"
adstream_tap $? "a stored offset beyond the log shows as an error in pipeline_status"
grep -q "OFFSET_OUT_OF_RANGE\|_AUTO_OFFSET_RESET" "$work/pg/server.log"
adstream_tap $? "the worker stops with the Kafka error rather than jump to another offset"
[ "$("${psql_cmd[@]}" -c "SELECT count(*) FROM adstream.event")" = "$want" ]
adstream_tap $? "nothing was counted meanwhile"

# with the offset valid again, the restarted worker goes on: nothing lost
"${psql_cmd[@]}" -c "UPDATE adstream.consumed_offset SET next_offset = $good WHERE partition = 0" >/dev/null
produce 3 1000 "$work/later.truth" || { echo "not ok - produce"; exit 1; }
want=$((want + $(accepted_in "$work/later.truth")))
adstream_poll "SELECT count(*) = $want FROM adstream.event"
adstream_tap $? "with the offset set back, the worker resumes and counts every later event ($want in all)"
exit $status
