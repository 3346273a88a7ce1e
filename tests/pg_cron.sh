#!/bin/bash
# Maintenance scheduled with pg_cron, and handed back to the launcher.
#
# A server preloads pg_cron and adstream (pg_cron's jobs run in the test
# database, connecting through the server's socket), with the launcher's
# maintenance every 200 ms.  Checks:
#   - without pg_cron installed in the database, schedule_maintenance()
#     fails with a hint and unschedule_maintenance() returns false, and
#     the launcher runs maintenance;
#   - schedule_maintenance() returns the id of a pg_cron job named
#     adstream-maintenance whose command is CALL adstream.maintain(...), and
#     maintenance_status says pg_cron schedules it;
#   - pg_cron runs it within 75 s (its schedules have minute granularity):
#     every task's last runner is pg_cron, without error, cron's run
#     details say succeeded, and the expired events and old minutes fed in
#     after scheduling were expired and rolled up;
#   - the launcher runs no maintenance while the job exists: a trigger
#     logs every run with the start of its transaction, and no launcher
#     run began between scheduling and unscheduling (the events are fed
#     in only once a launcher step begun before scheduling has ended);
#   - unschedule_maintenance() returns true, removes the job, and the
#     launcher takes maintenance over again within 20 s.
# Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

if [ ! -f "$(pg_config --pkglibdir)/pg_cron.so" ]; then
	echo "not ok - pg_cron is installed (tests/install-deps.sh installs postgresql-15-cron)"
	exit 1
fi

work=$(mktemp -d /tmp/adstream-pgcron.XXXXXX)
port=$(adstream_free_port)
trap 'adstream_pg_stop "$work/pg"; rm -rf "$work"' EXIT
# (later lines win over adstream_pg_start's own)
adstream_pg_start "$work/pg" "$port" "shared_preload_libraries = 'pg_cron,adstream'
cron.database_name = 'postgres'
cron.host = '$work/pg'
adstream.maintenance_interval = 200ms" || { echo "not ok - PostgreSQL starts with pg_cron and adstream preloaded"; exit 1; }
psql_cmd=(psql -X -q -t -A -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
status=0

pass() { echo "ok - $1"; }
fail() {					# fail NAME [DETAIL]
	echo "not ok - $1"
	[ -n "${2:-}" ] && echo "$2" | sed 's/^/#   /'
	status=1
}
check() {					# check NAME SQL-returning-boolean
	local got
	got=$("${psql_cmd[@]}" -c "$2" 2>&1)
	if [ "$got" = t ]; then pass "$1"; else fail "$1" "$got"; fi
}
# poll NAME SECONDS SQL-returning-boolean: true within SECONDS
poll() {
	local until=$((SECONDS + $2)) got
	while :; do
		got=$("${psql_cmd[@]}" -c "$3" 2>&1)
		[ "$got" = t ] && { pass "$1"; return 0; }
		[ "$SECONDS" -ge "$until" ] && { fail "$1" "$got"; return 1; }
		sleep 0.2
	done
}
show() {
	"${psql_cmd[@]}" -c "$1" 2>&1 | sed 's/^/#   /'
}

if ! out=$("${psql_cmd[@]}" 2>&1 <<'SQL'
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('ads', max_event_age => '1 hour', dedup_horizon => '1 hour',
	attribution_window => '1 hour', minute_retention => '1 hour', hour_retention => '2 hours',
	idle_timeout => '1 day');
-- every maintenance run, as maintenance_run records it
-- (xact_start: when the transaction that ran it began, and took its
-- snapshot: the launcher's step decides then whether pg_cron has the job)
CREATE TABLE maint_log (task text, runner text, rows bigint, error text,
                        xact_start timestamptz, logged_at timestamptz);
CREATE FUNCTION log_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.maint_log
	VALUES (NEW.task, NEW.last_runner, NEW.last_rows, NEW.last_error, now(), clock_timestamp());
	RETURN NEW;
END
$$;
CREATE TRIGGER log_run AFTER UPDATE ON adstream.maintenance_run
	FOR EACH ROW EXECUTE FUNCTION log_run();
SQL
); then
	fail "adstream installs next to pg_cron" "$out"
	exit 1
fi

# 1. pg_cron preloaded but not installed in the database
out=$("${psql_cmd[@]}" -c "SELECT adstream.schedule_maintenance()" 2>&1)
if echo "$out" | grep -q 'pg_cron is not installed' && echo "$out" | grep -q 'HINT:.*CREATE EXTENSION pg_cron'; then
	pass "without the pg_cron extension, schedule_maintenance() fails with a hint"
else
	fail "without the pg_cron extension, schedule_maintenance() fails with a hint" "$out"
fi
check "without the pg_cron extension, unschedule_maintenance() returns false" \
	"SELECT NOT adstream.unschedule_maintenance()"
poll "without pg_cron the launcher runs every maintenance task" 20 \
	"SELECT bool_and(last_runner = 'launcher' AND scheduled_by = 'launcher' AND last_error IS NULL)
	        AND (SELECT count(DISTINCT task) = 4 FROM maint_log WHERE runner = 'launcher')
	   FROM adstream.maintenance_status"

# 2. scheduling
if ! out=$("${psql_cmd[@]}" -c "CREATE EXTENSION pg_cron" 2>&1); then
	fail "CREATE EXTENSION pg_cron" "$out"
	exit 1
fi
jobid=$("${psql_cmd[@]}" -c "SELECT adstream.schedule_maintenance()" 2>&1)
scheduled_at=$("${psql_cmd[@]}" -c "SELECT clock_timestamp()")
if [[ "$jobid" =~ ^[0-9]+$ ]]; then
	pass "schedule_maintenance() returns the pg_cron job id ($jobid)"
else
	fail "schedule_maintenance() returns the pg_cron job id" "$jobid"
	exit 1
fi
show "SELECT jobname, schedule, command, database, username FROM cron.job"
check "cron.job has the job adstream-maintenance: CALL adstream.maintain(...) every minute in this database" \
	"SELECT count(*) = 1 FROM cron.job
	  WHERE jobid = $jobid AND jobname = 'adstream-maintenance' AND schedule = '* * * * *'
	    AND command LIKE 'CALL adstream.maintain(%''pg_cron'')' AND database = current_database()
	    AND active"
check "maintenance_status says pg_cron schedules every task" \
	"SELECT bool_and(scheduled_by LIKE 'pg_cron%') FROM adstream.maintenance_status"
# a launcher step that began before the job was committed may still run;
# every later one sees the job and leaves maintenance to pg_cron
poll "no launcher maintenance step that began before scheduling is still running" 10 \
	"SELECT NOT EXISTS (SELECT FROM pg_stat_activity
	                     WHERE application_name = 'adstream launcher' AND state = 'active'
	                       AND query = 'adstream: maintenance'
	                       AND xact_start < '$scheduled_at')"

# work for maintenance, fed in after scheduling: events 3 hours old in
# Kafka time, then one 10 minutes old, which moves consumed time past their
# expiry (1 hour) and their minutes' retention (1 hour)
"${psql_cmd[@]}" >/dev/null 2>"$work/ingest.err" <<'SQL' || fail "events are ingested" "$(cat "$work/ingest.err")"
SELECT adstream.ingest('ads',
	(SELECT array_agg(convert_to(format(
		'{"event_id":"old-%s","event_type":"impression","ad_id":"ad-%s","event_time":"%s","user_id":"u-%s"}',
		i, i % 5, to_char((date_trunc('minute', now() - interval '3 hours') + i * interval '1 second')
						  AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), i), 'UTF8') ORDER BY i)
	   FROM generate_series(0, 99) i),
	'ads', array_fill(0, ARRAY[100]), (SELECT array_agg(i::bigint ORDER BY i) FROM generate_series(0, 99) i),
	(SELECT array_agg(date_trunc('minute', now() - interval '3 hours') + i * interval '1 second'
					  ORDER BY i) FROM generate_series(0, 99) i));
SELECT adstream.ingest('ads', ARRAY[convert_to(format(
		'{"event_id":"new-1","event_type":"click","ad_id":"ad-1","event_time":"%s","user_id":"u-1"}',
		to_char((now() - interval '10 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')), 'UTF8')],
	'ads', ARRAY[0], ARRAY[100::bigint], ARRAY[now() - interval '10 minutes']);
SELECT adstream.fold_minute_stats();
SQL

# 3. pg_cron runs it (on a minute boundary: the first may come before the
#    events were in)
echo "# waiting for pg_cron's next minute (scheduled at $scheduled_at)"
poll "pg_cron runs maintenance within 75 s and expires the old events" 75 \
	"SELECT EXISTS (SELECT FROM maint_log
	                 WHERE runner = 'pg_cron' AND task = 'expire_events' AND rows >= 100)"
check "every task's last runner is pg_cron, without error" \
	"SELECT bool_and(last_runner = 'pg_cron' AND runs > 0 AND last_error IS NULL)
	   FROM adstream.maintenance_status"
poll "cron.job_run_details shows the job's run succeeded" 15 \
	"SELECT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $jobid AND status = 'succeeded')
	    AND NOT EXISTS (SELECT FROM cron.job_run_details WHERE jobid = $jobid AND status = 'failed')"
show "SELECT status, command, return_message FROM cron.job_run_details WHERE jobid = $jobid"
check "pg_cron's run expired the old events (only) and rolled their minutes up" \
	"SELECT NOT EXISTS (SELECT FROM adstream.event WHERE event_id LIKE 'old-%')
	    AND EXISTS (SELECT FROM adstream.event WHERE event_id = 'new-1')
	    AND NOT EXISTS (SELECT FROM adstream.minute_stat
	                     WHERE window_start < now() - interval '2 hours')
	    AND (SELECT sum(impressions) FROM (SELECT impressions FROM adstream.hour_stat
	                                       UNION ALL
	                                       SELECT impressions FROM adstream.day_stat) x) = 100
	    AND EXISTS (SELECT FROM maint_log
	                 WHERE runner = 'pg_cron' AND task = 'rollup_stats' AND rows > 0)"
check "the daily view still counts every event" \
	"SELECT sum(impressions) = 100 AND sum(clicks) = 1 FROM adstream.ad_daily_stats"

# 4. unscheduling hands maintenance back to the launcher
unscheduled_at=$("${psql_cmd[@]}" -c "SELECT clock_timestamp()")
check "unschedule_maintenance() returns true" "SELECT adstream.unschedule_maintenance()"
check "the job is gone from cron.job" \
	"SELECT NOT EXISTS (SELECT FROM cron.job WHERE jobname = 'adstream-maintenance')"
show "SELECT runner, count(*), min(xact_start), max(xact_start) FROM maint_log GROUP BY runner ORDER BY 3"
check "the launcher began no maintenance step while the job existed" \
	"SELECT NOT EXISTS (SELECT FROM maint_log WHERE runner = 'launcher'
	                      AND xact_start >= '$scheduled_at' AND xact_start < '$unscheduled_at')
	    AND EXISTS (SELECT FROM maint_log WHERE runner = 'launcher' AND xact_start < '$scheduled_at')"
check "unschedule_maintenance() returns false without a job" \
	"SELECT NOT adstream.unschedule_maintenance()"
check "maintenance_status says the launcher schedules every task" \
	"SELECT bool_and(scheduled_by = 'launcher') FROM adstream.maintenance_status"
poll "the launcher takes maintenance over: every task's last runner is the launcher, within 20 s" 20 \
	"SELECT bool_and(last_runner = 'launcher' AND last_error IS NULL)
	   FROM adstream.maintenance_status"
check "no maintenance run recorded an error" \
	"SELECT NOT EXISTS (SELECT FROM maint_log WHERE error IS NOT NULL)"
exit $status
