#!/bin/bash
# Concurrent batches of one pipeline count every event exactly once.
#
# Four sessions feed the same 8,000 distinct events (each session in its own
# order, in batches of 500, without Kafka coordinates, so only deduplication
# stands between them and double counting) into one pipeline at the same
# time.  Afterwards the pipeline must hold each event once, the aggregates
# must add up to 8,000, and the sessions' "accepted" counts must sum to
# 8,000.  Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

sessions=4
events=8000
batch=500

adstream_pg_scene concurrent

"${psql_cmd[@]}" <<SQL || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('race', max_event_age => '1000 days');
CREATE TABLE accepted (session int, n bigint);
-- session s sends event i as its ((i * (2s + 1)) mod events)-th message
CREATE PROCEDURE feed_all(s int) LANGUAGE plpgsql AS \$\$
DECLARE
	lo int := 0;
	r record;
BEGIN
	WHILE lo < $events LOOP
		SELECT * INTO r FROM adstream.ingest('race',
			(SELECT array_agg(convert_to(format(
				'{"event_id":"r-%s","event_type":"%s","ad_id":"ad-%s","event_time":"2026-01-01T00:%s:00Z","user_id":"u-%s"}',
				e, CASE WHEN e % 10 = 0 THEN 'click' ELSE 'impression' END, e % 13,
				lpad((e % 60)::text, 2, '0'), e), 'UTF8') ORDER BY k)
			   FROM (SELECT k, (k * (2 * s + 1)) % $events AS e
					   FROM generate_series(lo, lo + $batch - 1) k) x));
		INSERT INTO accepted VALUES (s, r.accepted);
		COMMIT;
		lo := lo + $batch;
	END LOOP;
END
\$\$;
SQL

pids=()
for s in $(seq 1 "$sessions"); do
	"${psql_cmd[@]}" -c "CALL feed_all($s)" >"$work/session$s.log" 2>&1 &
	pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
	if ! wait "${pids[$i]}"; then
		echo "not ok - session $((i + 1)) ran without error"
		sed 's/^/#   /' "$work/session$((i + 1)).log"
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "ok - $sessions sessions ran without error"

check() {					# check NAME SQL-returning-boolean
	if [ "$("${psql_cmd[@]}" -c "$2")" = t ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		status=1
	fi
}
check "each of the $events events is stored once" \
	"SELECT count(*) = $events AND count(DISTINCT event_id) = $events FROM adstream.event"
check "the sessions' accepted counts add up to $events" \
	"SELECT sum(n) = $events FROM accepted"
check "impressions and clicks add up to $events" \
	"SELECT sum(impressions + clicks) = $events AND sum(clicks) = $events / 10 FROM adstream.minute_total"
exit $status
