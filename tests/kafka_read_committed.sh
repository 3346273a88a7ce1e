#!/bin/bash
# Against a real Kafka broker only: the messages of an aborted transaction
# are never counted, those of a committed one are, once each.  The
# embedded Kafka cannot show this (it delivers aborted messages), so the
# test runs only when ADSTREAM_TEST_BOOTSTRAP names real bootstrap servers
# (the broker must auto-create the topic, or name an empty existing one in
# ADSTREAM_TEST_TOPIC).  Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

if [ -z "${ADSTREAM_TEST_BOOTSTRAP:-}" ]; then
	echo "ok - read_committed against a real broker # SKIP set ADSTREAM_TEST_BOOTSTRAP to run it"
	exit 0
fi
bootstrap=$ADSTREAM_TEST_BOOTSTRAP
topic=${ADSTREAM_TEST_TOPIC:-adstream-rc-$(date +%s)-$RANDOM}

make -s -C "$src/tests/kafka" >/dev/null || { echo "not ok - build txnproduce"; exit 1; }
adstream_pg_scene rc "adstream.database = 'postgres'"

if "$src/tests/kafka/txnproduce" --bootstrap "$bootstrap" --topic "$topic" \
	--aborted 100 --committed 100 2>"$work/txn.log"; then
	echo "ok - 100 events in an aborted transaction, then 100 in a committed one, to $topic"
else
	echo "not ok - transactional produce to $topic"
	sed 's/^/#   /' "$work/txn.log"
	exit 1
fi
"${psql_cmd[@]}" >/dev/null <<SQL || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('rc', topic => '$topic', bootstrap_servers => '$bootstrap',
       start_from => 'earliest');
SQL
done=0
for _ in $(seq 1 600); do
	if [ "$("${psql_cmd[@]}" -c "SELECT count(*) FROM adstream.event WHERE event_id LIKE 'txn-commit-%'")" = 100 ]; then
		done=1
		break
	fi
	sleep 0.1
done
# let any stray aborted message be applied too: wait (bounded) until the
# worker has committed no new batch for 2 s
last=-1
quiet=0
for _ in $(seq 1 150); do
	batches=$("${psql_cmd[@]}" -c "SELECT coalesce(max(batches), 0) FROM adstream.pipeline_status WHERE pipeline = 'rc'")
	if [ "$batches" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0; last=$batches; fi
	[ "$quiet" -ge 10 ] && break
	sleep 0.2
done
result=$("${psql_cmd[@]}" -c "SELECT count(*) FILTER (WHERE event_id LIKE 'txn-commit-%') || ' ' ||
                                     count(*) FILTER (WHERE event_id LIKE 'txn-abort-%')
                                FROM adstream.event")
if [ "$done" -eq 1 ] && [ "$result" = "100 0" ]; then
	echo "ok - the committed events are counted once each, the aborted ones never"
else
	echo "not ok - the committed events are counted once each, the aborted ones never (committed, aborted: $result)"
	exit 1
fi
