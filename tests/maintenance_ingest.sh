#!/bin/bash
# Maintenance under concurrent ingest: expiry and rollups lose nothing and
# count nothing twice while batches are being applied and folded.
#
# A generated stream (tests/adgen: duplicates, late and invalid messages)
# of about four hours of Kafka time on 4 partitions is fed into a pipeline
# whose state is short-lived (max_event_age, dedup_horizon and
# attribution_window 1 hour, minute_retention 1 hour, hour_retention 2
# hours), so expiry and both rollups have work long before the end:
#   - one session per partition applies its batches in offset order, with
#     Kafka coordinates, so consumed Kafka time advances; a fifth session
#     replays partition 0 from the start at the same time (every batch must
#     apply once, whichever session gets it);
#   - meanwhile one session loops CALL adstream.maintain(), one loops
#     adstream.run_maintenance(), one folds in small steps (and the
#     launcher folds too);
#   - the partitions' sessions wait (bounded) at 4/5 of their batches
#     until maintenance has rolled an hour up to a day, so that expiry and
#     both rollups are seen working while a fifth of the stream is still
#     to come, however the machine schedules the sessions.
# (Every partition's first batch goes in before the race: consumed Kafka
# time counts only partitions that have one.)
# Afterwards, and after a final fold and maintain: the sessions' counts
# and the dead letters equal ground truth (duplicates of stored events
# were detected; duplicates older than max_event_age are too_old);
# the daily, hourly and minute views equal ground truth exactly; minutes
# and hours past retention moved into hour_stat and day_stat; every
# event past the consumed horizon expired and no other; maintenance
# recorded its runs and no error; no session and no server process hit a
# deadlock or any other error.  Then adstream.maintenance_interval is
# turned on and the launcher must take maintenance over.  Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

events=150000				# at 10 per second of Kafka time: ~4.2 hours
rate=10
partitions=4
batch=250
deadline=100				# seconds any loop may run

make -s -C "$src/tests/adgen" >/dev/null || { echo "not ok - adgen builds"; exit 1; }
# the launcher folds too; it runs maintenance only at the end
adstream_pg_scene maint "adstream.maintenance_interval = 0
adstream.fold_interval = 500ms
log_lock_waits = on"
status=0

# Kafka time starts 5 hours before the current hour: consumed time is
# never later than the clock, and the stream ends before now
start_ms=$((($(date +%s) / 3600 - 5) * 3600 * 1000))
"$src/tests/adgen/adgen" --events "$events" --rate "$rate" --partitions "$partitions" \
	--ads 300 --users 20000 --start-ms "$start_ms" \
	--messages "$work/messages.copy" --truth "$work/truth.copy" --rows "$work/rows.copy" \
	2>"$work/adgen.log" || { echo "not ok - adgen generates the stream"; exit 1; }
sed 's/^/# /' "$work/adgen.log"

"${psql_cmd[@]}" >"$work/setup.log" 2>&1 <<SQL || { echo "not ok - setup"; sed 's/^/#   /' "$work/setup.log"; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('ads', max_event_age => '1 hour', dedup_horizon => '1 hour',
	attribution_window => '1 hour', minute_retention => '1 hour', hour_retention => '2 hours',
	max_message_bytes => 4096, idle_timeout => '1 day');
CREATE TABLE raw (seq bigint PRIMARY KEY, partition int, "offset" bigint, kafka_ms bigint, msg bytea);
COPY raw FROM '$work/messages.copy';
CREATE TABLE truth (seq bigint, status text, reason text, event_id text, event_type text,
                    ad_id text, window_start_ms bigint, cost_micros bigint);
COPY truth FROM '$work/truth.copy';
-- the event each message was made from; n - 1 is its seq (COPY keeps order)
CREATE TABLE source_event (n bigserial, event_id text, event_type text, ad_id text,
                   event_time timestamptz, user_id text, campaign_id text,
                   advertiser_id text, store_id text, cost numeric, region text);
COPY source_event (event_id, event_type, ad_id, event_time, user_id, campaign_id, advertiser_id,
           store_id, cost, region) FROM '$work/rows.copy';
-- What adstream must make of each message.  A duplicate re-sends an
-- earlier event; one older than max_event_age (1 hour) before its own
-- Kafka timestamp is dead-lettered as too_old, whether or not its first
-- copy has expired by then.
CREATE TABLE expected AS
SELECT t.seq, r.partition, t.event_id, t.event_type, t.ad_id, t.cost_micros, w.event_time,
       CASE WHEN t.status = 'duplicate'
                 AND w.event_time < to_timestamp(r.kafka_ms / 1000.0) - interval '1 hour'
            THEN 'rejected' ELSE t.status END AS status,
       CASE WHEN t.status = 'duplicate'
                 AND w.event_time < to_timestamp(r.kafka_ms / 1000.0) - interval '1 hour'
            THEN 'too_old' ELSE t.reason END AS reason
  FROM truth AS t JOIN raw AS r USING (seq) JOIN source_event AS w ON w.n = t.seq + 1;
CREATE TABLE batches (partition int, b int, msgs bytea[], parts int[], offs bigint[],
                      ts timestamptz[], PRIMARY KEY (partition, b));
INSERT INTO batches
SELECT partition, "offset" / $batch, array_agg(msg ORDER BY "offset"),
       array_agg(partition ORDER BY "offset"), array_agg("offset" ORDER BY "offset"),
       array_agg(to_timestamp(kafka_ms / 1000.0) ORDER BY "offset")
  FROM raw GROUP BY 1, 2;
CREATE TABLE outcome (session text, partition int, b int, accepted bigint,
                      duplicates bigint, rejected bigint, skipped bigint);
CREATE TABLE feed_done (session text);
CREATE TABLE loops (session text, iterations int);
-- Every partition's first batch goes in before the race starts: consumed
-- Kafka time is the slowest partition's, and a partition counts once it
-- has one.
CREATE TABLE first_outcome AS
SELECT b.partition, o.*
  FROM batches AS b, LATERAL adstream.ingest('ads', b.msgs, 'ads', b.parts, b.offs, b.ts) AS o
 WHERE b.b = 0;
INSERT INTO outcome SELECT 'first', partition, 0, accepted, duplicates, rejected, skipped
  FROM first_outcome;

-- feed(session, partition, first): the partition's batches from the first
-- in offset order, one transaction each
-- The feeds of the partitions (first 1) stop at 4/5 of their batches
-- until maintenance has rolled an hour up to a day: by then consumed Kafka
-- time is well past the first hours, and maintenance works on with
-- ingest still going on (the replay of partition 0 does not wait).
CREATE PROCEDURE feed(s text, p int, first int) LANGUAGE plpgsql AS \$\$
DECLARE
	r record;
	o record;
	t0 timestamptz := clock_timestamp();
	gate int := (SELECT max(b) * 4 / 5 FROM batches WHERE partition = p);
BEGIN
	FOR r IN SELECT * FROM batches WHERE partition = p AND b >= first ORDER BY b LOOP
		IF clock_timestamp() > t0 + interval '$deadline seconds' THEN
			RAISE EXCEPTION 'feed % timed out', s;
		END IF;
		WHILE first > 0 AND r.b = gate AND NOT EXISTS (SELECT FROM adstream.day_stat) LOOP
			IF clock_timestamp() > t0 + interval '$deadline seconds' THEN
				RAISE EXCEPTION 'feed %: no hour was rolled up to a day in time', s;
			END IF;
			PERFORM pg_sleep(0.05);
			COMMIT;
		END LOOP;
		SELECT * INTO o FROM adstream.ingest('ads', r.msgs, 'ads', r.parts, r.offs, r.ts);
		INSERT INTO outcome VALUES (s, p, r.b, o.accepted, o.duplicates, o.rejected, o.skipped);
		COMMIT;
	END LOOP;
	INSERT INTO feed_done VALUES (s);
END
\$\$;
-- loop(session): the session's maintenance step again and again until
-- every feed is done
CREATE PROCEDURE loop(s text) LANGUAGE plpgsql AS \$\$
DECLARE
	t0 timestamptz := clock_timestamp();
	n int := 0;
BEGIN
	WHILE (SELECT count(*) FROM feed_done) < $partitions + 1 LOOP
		IF clock_timestamp() > t0 + interval '$deadline seconds' THEN
			RAISE EXCEPTION 'loop % timed out', s;
		END IF;
		IF s = 'maintain' THEN
			CALL adstream.maintain(300, '2 seconds');
		ELSIF s = 'run_maintenance' THEN
			PERFORM * FROM adstream.run_maintenance(NULL, 200);
			COMMIT;
			PERFORM * FROM adstream.run_maintenance('rollup_stats', 100);
			COMMIT;
		ELSE
			PERFORM adstream.fold_minute_stats(500);
			COMMIT;
		END IF;
		n := n + 1;
	END LOOP;
	INSERT INTO loops VALUES (s, n);
END
\$\$;
SQL

# the race
t0=$(date +%s.%N)
names=()
pids=()
start_session() {			# start_session NAME SQL
	"${psql_cmd[@]}" -c "$2" >"$work/session-$1.log" 2>&1 &
	pids+=($!)
	names+=("$1")
}
for p in $(seq 0 $((partitions - 1))); do
	start_session "feed-$p" "CALL feed('feed-$p', $p, 1)"
done
start_session replay-0 "CALL feed('replay-0', 0, 0)"
start_session maintain "CALL loop('maintain')"
start_session run_maintenance "CALL loop('run_maintenance')"
start_session fold "CALL loop('fold')"
failed_sessions=0
for i in "${!pids[@]}"; do
	if ! wait "${pids[$i]}"; then
		failed_sessions=$((failed_sessions + 1))
		echo "# session ${names[$i]} failed:"
		sed 's/^/#   /' "$work/session-${names[$i]}.log"
	fi
done
t1=$(date +%s.%N)
echo "# the race took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
if [ "$failed_sessions" -eq 0 ]; then
	echo "ok - ${#pids[@]} sessions (5 feeding, 2 maintaining, 1 folding) ran without error"
else
	echo "not ok - ${#pids[@]} sessions (5 feeding, 2 maintaining, 1 folding) ran without error"
	status=1
fi

check() {					# check NAME SQL-returning-boolean
	local got
	got=$("${psql_cmd[@]}" -c "$2" 2>&1)
	if [ "$got" = t ]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		echo "$got" | sed 's/^/#   /'
		status=1
	fi
}
show() {					# show SQL: its rows as TAP comments
	"${psql_cmd[@]}" -c "$1" 2>&1 | sed 's/^/#   /'
}

show "SELECT session, iterations FROM loops ORDER BY 1"
show "SELECT task, runs, rows_total FROM adstream.maintenance_status ORDER BY 1"
check "maintenance expired events and rolled minutes up to hours and hours up to days during ingest" \
	"SELECT (SELECT rows_total > 0 FROM adstream.maintenance_run WHERE task = 'expire_events')
	    AND (SELECT rows_total > 0 FROM adstream.maintenance_run WHERE task = 'rollup_stats')
	    AND EXISTS (SELECT FROM adstream.hour_stat) AND EXISTS (SELECT FROM adstream.day_stat)"
check "every maintenance and fold loop ran several times during ingest" \
	"SELECT count(*) = 3 AND min(iterations) >= 2 FROM loops"

# the counts of the race, before anything else runs
check "every batch applied once: the skipped counts add up to the replayed partition" \
	"SELECT sum(skipped) = (SELECT count(*) FROM raw WHERE partition = 0)
	    AND sum(accepted + duplicates + rejected) = (SELECT count(*) FROM raw) FROM outcome"
check "accepted counts add up to the distinct valid events of ground truth" \
	"SELECT sum(accepted) = (SELECT count(*) FROM expected WHERE status = 'accepted') FROM outcome"
check "duplicates of stored events were detected (duplicate counts equal ground truth)" \
	"SELECT sum(duplicates) = (SELECT count(*) FROM expected WHERE status = 'duplicate')
	    AND sum(duplicates) > 1000 FROM outcome"
check "dead letters by reason equal ground truth (duplicates older than max_event_age are too_old)" \
	"SELECT count(*) = 0 FROM (
	   (SELECT reason, count(*) FROM expected WHERE status = 'rejected' GROUP BY 1
	    EXCEPT SELECT reason, count(*) FROM adstream.dead_letter GROUP BY 1)
	   UNION ALL
	   (SELECT reason, count(*) FROM adstream.dead_letter GROUP BY 1
	    EXCEPT SELECT reason, count(*) FROM expected WHERE status = 'rejected' GROUP BY 1)) d"

# totals by day straight after the race, increments not all folded yet
"${psql_cmd[@]}" -c "CREATE TABLE expected_agg AS
	SELECT ad_id, date_trunc('minute', event_time, 'UTC') AS minute,
	       count(*) FILTER (WHERE event_type = 'impression') AS impressions,
	       count(*) FILTER (WHERE event_type = 'click') AS clicks,
	       sum(cost_micros) AS spend_micros
	  FROM expected WHERE status = 'accepted' GROUP BY 1, 2" >/dev/null
# whether ad_daily_stats equals the expected daily totals, row for row
daily_equal=$(cat <<'SQL'
SELECT count(*) = 0 FROM (
   (SELECT ad_id, date_trunc('day', minute, 'UTC'), sum(impressions), sum(clicks),
           sum(spend_micros) FROM expected_agg GROUP BY 1, 2
    EXCEPT SELECT ad_id, window_start, impressions, clicks, (spend * 1000000)::bigint
             FROM adstream.ad_daily_stats)
   UNION ALL
   (SELECT ad_id, window_start, impressions, clicks, (spend * 1000000)::bigint
      FROM adstream.ad_daily_stats
    EXCEPT SELECT ad_id, date_trunc('day', minute, 'UTC'), sum(impressions), sum(clicks),
                  sum(spend_micros) FROM expected_agg GROUP BY 1, 2)) d
SQL
)
check "daily totals equal ground truth right after the race" \
	"$daily_equal"

# then fold everything and finish maintenance
"${psql_cmd[@]}" >"$work/final.log" 2>&1 <<'SQL' || { echo "not ok - final fold and maintenance"; sed 's/^/#   /' "$work/final.log"; status=1; }
DO $$
BEGIN
	WHILE adstream.fold_minute_stats(100000) > 0 LOOP END LOOP;
END
$$;
CALL adstream.maintain(100000, '60 seconds');
CREATE TABLE horizon AS SELECT adstream.consumed_time('ads') AS h;
SQL
show "SELECT 'consumed horizon ' || h || ', stream ' || (SELECT to_timestamp(min(kafka_ms) / 1000.0) || ' to ' || to_timestamp(max(kafka_ms) / 1000.0) FROM raw) FROM horizon"
check "the consumed horizon is the slowest partition's last Kafka timestamp" \
	"SELECT h = (SELECT min(m) FROM (SELECT to_timestamp(max(kafka_ms) / 1000.0) AS m
	                                  FROM raw GROUP BY partition) x) FROM horizon"
check "no stored event is past the consumed horizon after maintenance" \
	"SELECT count(*) = 0 FROM adstream.event, horizon WHERE expires_at < h"
check "the stored events are exactly the accepted ones within the horizon" \
	"SELECT count(*) = 0 FROM (
	   (SELECT event_id, event_time FROM expected, horizon
	     WHERE status = 'accepted' AND event_time + interval '1 hour' >= h
	    EXCEPT SELECT event_id, event_time FROM adstream.event)
	   UNION ALL
	   (SELECT event_id, event_time FROM adstream.event
	    EXCEPT SELECT event_id, event_time FROM expected, horizon
	            WHERE status = 'accepted' AND event_time + interval '1 hour' >= h)) d"
check "minutes past minute_retention moved to hour_stat, hours past hour_retention to day_stat" \
	"SELECT NOT EXISTS (SELECT FROM adstream.minute_stat, horizon
	                     WHERE window_start + interval '1 minute' <= h - interval '1 hour')
	    AND NOT EXISTS (SELECT FROM adstream.hour_stat, horizon
	                     WHERE window_start + interval '1 hour' <= h - interval '2 hours')
	    AND NOT EXISTS (SELECT FROM adstream.minute_delta)
	    AND EXISTS (SELECT FROM adstream.hour_stat) AND EXISTS (SELECT FROM adstream.day_stat)"
check "daily totals equal ground truth" \
	"$daily_equal"
check "grand totals equal ground truth" \
	"SELECT sum(d.impressions) = e.i AND sum(d.clicks) = e.c AND sum(d.spend) * 1000000 = e.s
	   FROM adstream.ad_daily_stats AS d,
	        (SELECT sum(impressions) AS i, sum(clicks) AS c, sum(spend_micros) AS s
	           FROM expected_agg) AS e
	  GROUP BY e.i, e.c, e.s"
check "hourly totals of the hours not yet rolled up to days equal ground truth" \
	"SELECT count(*) = 0 FROM (
	   (SELECT ad_id, date_trunc('hour', minute, 'UTC') AS hr, sum(impressions), sum(clicks),
	           sum(spend_micros) FROM expected_agg, horizon
	     WHERE date_trunc('hour', minute, 'UTC') + interval '1 hour' > h - interval '2 hours'
	     GROUP BY 1, 2
	    EXCEPT SELECT ad_id, window_start, impressions, clicks, (spend * 1000000)::bigint
	             FROM adstream.ad_hourly_stats)
	   UNION ALL
	   (SELECT ad_id, window_start, impressions, clicks, (spend * 1000000)::bigint
	      FROM adstream.ad_hourly_stats
	    EXCEPT SELECT ad_id, date_trunc('hour', minute, 'UTC'), sum(impressions), sum(clicks),
	                  sum(spend_micros) FROM expected_agg, horizon
	            WHERE date_trunc('hour', minute, 'UTC') + interval '1 hour' > h - interval '2 hours'
	            GROUP BY 1, 2)) d"
check "minute totals of the minutes not yet rolled up equal ground truth" \
	"SELECT count(*) = 0 FROM (
	   (SELECT ad_id, minute, impressions, clicks, spend_micros FROM expected_agg, horizon
	     WHERE minute + interval '1 minute' > h - interval '1 hour'
	    EXCEPT SELECT ad_id, window_start, impressions, clicks, (spend * 1000000)::bigint
	             FROM adstream.ad_minute_stats)
	   UNION ALL
	   (SELECT ad_id, window_start, impressions, clicks, (spend * 1000000)::bigint
	      FROM adstream.ad_minute_stats
	    EXCEPT SELECT ad_id, minute, impressions, clicks, spend_micros FROM expected_agg, horizon
	            WHERE minute + interval '1 minute' > h - interval '1 hour')) d"
check "a second maintenance pass finds nothing to do" \
	"SELECT sum(rows) = 0 FROM adstream.run_maintenance()"
check "maintenance_status recorded runs of every task by manual callers, and no error" \
	"SELECT count(*) = 4 AND bool_and(runs > 0) AND bool_and(last_error IS NULL)
	    AND bool_and(last_error_at IS NULL) AND bool_and(last_runner = 'manual')
	    AND bool_and(scheduled_by = 'nobody')
	   FROM adstream.maintenance_status"

if grep -h -e 'deadlock detected' -e 'ERROR:' "$work"/session-*.log "$work/pg/server.log" >"$work/errors.txt"; then
	echo "not ok - no session and no server process reported a deadlock or an error"
	sed 's/^/#   /' "$work/errors.txt" | head -20
	grep -A12 'deadlock detected' "$work/pg/server.log" | sed 's/^/#   /' | head -60
	status=1
else
	echo "ok - no session and no server process reported a deadlock or an error"
fi

# the launcher takes maintenance over once adstream.maintenance_interval is set
"${psql_cmd[@]}" -c "ALTER SYSTEM SET adstream.maintenance_interval = '200ms'" \
	-c "SELECT pg_reload_conf()" >/dev/null
ok=0
for _ in $(seq 1 100); do
	if [ "$("${psql_cmd[@]}" -c "SELECT bool_and(last_runner = 'launcher') AND bool_and(scheduled_by = 'launcher')
	                              FROM adstream.maintenance_status")" = t ]; then
		ok=1
		break
	fi
	sleep 0.2
done
if [ "$ok" -eq 1 ]; then
	echo "ok - with adstream.maintenance_interval set, the launcher runs every maintenance task"
else
	echo "not ok - with adstream.maintenance_interval set, the launcher runs every maintenance task"
	show "SELECT task, scheduled_by, runs, last_runner, last_error FROM adstream.maintenance_status"
	status=1
fi
check "the launcher's maintenance runs record no error" \
	"SELECT bool_and(last_error IS NULL) FROM adstream.maintenance_status"
exit $status
