#!/bin/bash
# Benchmark of order attribution and of maintenance, in one run:
#   1. attribution, for each size in --events (default 1,000,000 and
#      10,000,000 stored ad events).  The events are loaded straight into
#      adstream.event by INSERT .. SELECT generate_series in concurrent
#      sessions, its indexes dropped and built again after (adstream.ingest()
#      would take minutes for 10M): ~10 events per user (--per-user), each
#      user at up to 4 of 1,000 stores, 5% clicks, event times spread over
#      the 7-day attribution window, expires_at = event time + 7 days, as
#      ingest writes them.  Then --orders orders (default 100,000: users of
#      those events, 70% at one of the user's stores, order times over the
#      last hour) go through adstream.ingest() on an orders pipeline with
#      grace_period 0, in batches of 10,000 with Kafka coordinates, and
#      adstream.attribute_orders() decides them in steps of --step (default
#      2,000, an attributor worker's step), one transaction each: no hook;
#      revenue and output records (emit_mode final) are written as usual.
#      Orders/s of the ingest, the decide and both, against the
#      baseline: one plain INSERT .. SELECT of the same orders (as columns)
#      into a plain table, with the same lookup: LEFT JOIN LATERAL the last
#      click within 7 days, else the last impression within 1 day, of the
#      same user at the same store, on the same stored events.  The lookups
#      run once before either is timed, so both run warm.  Both must pick the
#      same event for every order, or the run fails;
#   2. ad-event ingest with and without maintenance.  tests/adgen's stream
#      (--stream messages, default 1,000,000: 5% duplicates, 1% invalid, 2%
#      late, 5% clicks), its Kafka timestamps spread over the hour up to two
#      minutes ago, goes through adstream.ingest() in batches of 10,000 with
#      Kafka coordinates, one transaction each, over --expirable stored
#      events (default as many) whose expires_at are spread over that same
#      hour: as the consumed Kafka time advances they fall due, at the rate
#      events arrive, so expiry has steady work.  Twice from the same state
#      (the first batch untimed, to set the consumed Kafka time): without
#      maintenance, then with a second session looping CALL
#      adstream.maintain() (every maintenance task in steps of 10,000 rows,
#      each call's time budget 5 s) with a pause of --pause seconds (default
#      0.1) between calls.  Messages/s of both, their ratio, the rows expired
#      while the ingest ran and those past expiry not yet deleted at its end.
# --quick: 100,000 events, 10,000 orders, a 50,000-message stream over 50,000
# expirable events: for the test command, under a minute.
#
#   tests/bench/attribution_bench.sh [--events N[,N...]] [--orders N] [--step N]
#       [--per-user N] [--stream N] [--expirable N] [--pause S] [--quick] [--keep]
set -euo pipefail

args=("$@")
events_list=1000000,10000000
orders=100000
step=2000
per_user=10
stream=1000000
expirable=
pause=0.1
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
		--events) events_list=$2; shift 2 ;;
		--orders) orders=$2; shift 2 ;;
		--step) step=$2; shift 2 ;;
		--per-user) per_user=$2; shift 2 ;;
		--stream) stream=$2; shift 2 ;;
		--expirable) expirable=$2; shift 2 ;;
		--pause) pause=$2; shift 2 ;;
		--quick) events_list=100000; orders=10000; stream=50000; shift ;;
		--keep) keep=1; shift ;;
		*) echo "usage: $0 [--events N[,N...]] [--orders N] [--step N] [--per-user N] [--stream N] [--expirable N] [--pause S] [--quick] [--keep]" >&2
		   exit 2 ;;
	esac
done
expirable=${expirable:-$stream}
for v in "$orders" "$step" "$per_user" "$stream" "$expirable" ${events_list//,/ }; do
	[[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "attribution_bench: not a positive integer: $v" >&2; exit 2; }
done
[[ "$pause" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "attribution_bench: --pause wants seconds: $pause" >&2; exit 2; }
[ "$stream" -gt 10000 ] || { echo "attribution_bench: --stream must exceed 10000 (its first batch is not timed)" >&2; exit 2; }

src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/tests/lib/common.sh"

# root-only steps first; the rest runs as an unprivileged user
adstream_enter tests/bench/attribution_bench.sh "${args[@]}"

make -s -C "$src/tests/adgen" >/dev/null
work=$(mktemp -d /tmp/adstream-abench.XXXXXX)
port=$(adstream_free_port)
cleanup() {
	adstream_pg_stop "$work/pg"
	if [ "$keep" -eq 0 ]; then rm -rf "$work"; else echo "# kept $work"; fi
}
trap cleanup EXIT

# no launcher folds, maintenance or attributor: the benchmark runs each step
adstream_pg_start "$work/pg" "$port" "adstream.fold_interval = 0
adstream.maintenance_interval = 0
shared_buffers = 2GB
max_wal_size = 8GB
checkpoint_timeout = 30min
work_mem = 64MB
maintenance_work_mem = 512MB"
psql_cmd=(psql -X -q -t -A -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
export PGOPTIONS="-c client_min_messages=warning"
# sessions for the bulk load and the index builds
sessions=$(nproc 2>/dev/null || echo 2)
[ "$sessions" -ge 1 ] || sessions=1
[ "$sessions" -le 4 ] || sessions=4
t0=$(date +%s)
keep_secs=604800			# events are kept 7 days (the attribution window)

"${psql_cmd[@]}" >/dev/null <<'SQL'
CREATE EXTENSION adstream;
CREATE SCHEMA bench;
-- a uniform pseudo-random number in [0, 1) drawn from (i, seed)
CREATE FUNCTION bench.u(i bigint, seed int) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (hashint8extended(i, seed) & 9007199254740991)::float8 / 9007199254740992.0 $$;
-- store k (0..3) of the 4 a user sees ads of, out of 1,000
CREATE FUNCTION bench.store_of(uid bigint, k int) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT floor(bench.u(uid * 4 + k, 5) * 1000)::int $$;
-- Stored events i = p_part, p_part + p_step, .. <= p_n, as ingest would have
-- stored them: a user of p_users, one of the user's stores, 20,000 ads,
-- 5% clicks, event times spread evenly (in i) over p_span seconds from
-- p_base, kept p_keep seconds.  Event ids are UUIDs, their own keys.
CREATE FUNCTION bench.load_events(p_pipeline int, p_n bigint, p_part bigint, p_step bigint,
                                  p_users bigint, p_base float8, p_span float8,
                                  p_keep float8, p_prefix int)
RETURNS void LANGUAGE sql AS $$
INSERT INTO adstream.event (pipeline_id, event_key, event_id, event_type, event_time, user_id,
                            ad_id, campaign_id, advertiser_id, store_id, cost_micros, region,
                            expires_at)
SELECT p_pipeline, r.k::uuid, r.k,
       CASE WHEN r.click THEN 'click'::adstream.event_type ELSE 'impression'::adstream.event_type END,
       to_timestamp(r.t), 'u' || r.uid, 'ad' || r.ad, 'c' || (r.ad / 10), 'adv' || (r.ad / 200),
       's' || r.store, CASE WHEN r.click THEN 250000 ELSE 1500 END, 'eu-west',
       to_timestamp(r.t + p_keep)
  FROM (SELECT lpad(to_hex(p_prefix), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(g.i), 12, '0') AS k,
               bench.u(g.i, 2) < 0.05 AS click,
               p_base + (g.i - 1 + bench.u(g.i, 1)) / p_n * p_span AS t,
               g.uid, bench.store_of(g.uid, floor(bench.u(g.i, 4) * 4)::int) AS store,
               floor(bench.u(g.i, 6) * 20000)::int AS ad
          FROM (SELECT i, floor(bench.u(i, 3) * p_users)::bigint AS uid
                  FROM generate_series(p_part, p_n, p_step) AS i) AS g) AS r
$$;
-- adstream.event's own indexes, dropped for a bulk load and built again
CREATE TABLE bench.event_index AS
SELECT indexname::text AS name, indexdef AS def FROM pg_indexes
 WHERE schemaname = 'adstream' AND tablename = 'event';

SELECT adstream.create_pipeline('ads');
-- enabled => false: no attributor worker; the benchmark decides
SELECT adstream.create_orders_pipeline('orders', 'ads', grace_period => '0', enabled => false);
SELECT adstream.create_pipeline('stream');

CREATE TABLE bench.plain_attributed (order_id text, user_id text, store_id text,
	order_time timestamptz, amount_micros bigint, currency text, attribution text, ad_id text,
	campaign_id text, advertiser_id text, touch_event_id text, touch_time timestamptz);

CREATE PROCEDURE bench.ingest_orders()
LANGUAGE plpgsql AS $$
DECLARE
	r record;
BEGIN
	FOR r IN SELECT * FROM bench.order_batches ORDER BY b LOOP
		PERFORM adstream.ingest('orders', r.msgs, 'orders', r.parts, r.offs, r.ts);
		COMMIT;
	END LOOP;
END
$$;
-- what an attributor worker does: steps of max_rows, one transaction each
CREATE PROCEDURE bench.decide(max_rows int)
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	LOOP
		SELECT a.decided INTO n FROM adstream.attribute_orders('orders', max_rows) AS a;
		COMMIT;
		EXIT WHEN n = 0;
	END LOOP;
END
$$;

CREATE TABLE bench.stream_result (accepted bigint, duplicates bigint, rejected bigint);
CREATE PROCEDURE bench.ingest_stream(first int, last int)
LANGUAGE plpgsql AS $$
DECLARE
	r record;
	s record;
BEGIN
	FOR r IN SELECT * FROM bench.stream_batches WHERE b BETWEEN first AND last ORDER BY b LOOP
		SELECT * INTO s FROM adstream.ingest('stream', r.msgs, 'ads', r.parts, r.offs, r.ts);
		INSERT INTO bench.stream_result VALUES (s.accepted, s.duplicates, s.rejected);
		COMMIT;
	END LOOP;
END
$$;
CREATE TABLE bench.maintain_stop (stop boolean NOT NULL);
INSERT INTO bench.maintain_stop VALUES (false);
CREATE TABLE bench.maintain_calls (calls int, secs float8);
-- CALL adstream.maintain() until told to stop, pausing between calls
CREATE PROCEDURE bench.maintain_loop(pause float8)
LANGUAGE plpgsql AS $$
DECLARE
	calls int := 0;
	busy float8 := 0;
	t timestamptz;
BEGIN
	LOOP
		t := clock_timestamp();
		-- a short time budget, so that a stop is seen within seconds
		CALL adstream.maintain(10000, '5 seconds', 'bench');
		busy := busy + extract(epoch FROM clock_timestamp() - t);
		calls := calls + 1;
		EXIT WHEN (SELECT stop FROM bench.maintain_stop);
		PERFORM pg_sleep(pause);
	END LOOP;
	INSERT INTO bench.maintain_calls VALUES (calls, busy);
	COMMIT;
END
$$;
SQL

now() { date +%s.%N; }

# load_events PIPELINE_ID N USERS BASE SPAN PREFIX: replace the stored events
# with N generated ones, in $sessions concurrent sessions (rows interleaved,
# so the table stays in event-time order), without indexes; then build the
# indexes again, each in its own session, and VACUUM ANALYZE.  Sets load_secs.
load_events() {
	local pid=$1 n=$2 users=$3 base=$4 span=$5 prefix=$6 t1 t2 t3 pids=() p name
	t1=$(now)
	"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
TRUNCATE adstream.event;
SELECT format('DROP INDEX adstream.%I', name) FROM bench.event_index \gexec
SQL
	for part in $(seq 1 "$sessions"); do
		"${psql_cmd[@]}" -c "SELECT bench.load_events($pid, $n, $part, $sessions, $users,
		                     $base, $span, $keep_secs, $prefix)" >/dev/null &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || { echo "attribution_bench: loading events failed" >&2; exit 1; }; done
	t2=$(now)
	pids=()
	while read -r name; do
		"${psql_cmd[@]}" <<<"SELECT def FROM bench.event_index WHERE name = '$name' \\gexec" >/dev/null &
		pids+=($!)
	done < <("${psql_cmd[@]}" -c "SELECT name FROM bench.event_index ORDER BY name")
	for p in "${pids[@]}"; do wait "$p" || { echo "attribution_bench: building an index failed" >&2; exit 1; }; done
	t3=$(now)
	"${psql_cmd[@]}" -c "VACUUM ANALYZE adstream.event" -c "CHECKPOINT" >/dev/null || exit 1
	load_secs=$(awk -v a="$t1" -v b="$t2" -v c="$t3" -v d="$(now)" \
		'BEGIN { printf "%.1f s (insert %.1f, indexes %.1f, vacuum and checkpoint %.1f)", d - a, b - a, c - b, d - c }')
}

# ----------------------------------------------------------------------------
# 1. attribution
# ----------------------------------------------------------------------------
# The same lookup as adstream._decide_orders, written plainly: the baseline
# (into a plain table) and, counted only, the warm-up before either is timed.
lookup="FROM bench.order_src AS o
  LEFT JOIN LATERAL (
	SELECT e.event_type, e.ad_id, e.campaign_id, e.advertiser_id, e.event_id, e.event_time
	  FROM adstream.event AS e
	 WHERE e.pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'ads')
	   AND e.user_id = o.user_id AND e.store_id = o.store_id
	   AND e.event_time <= o.order_time
	   AND ((e.event_type = 'click' AND e.event_time >= o.order_time - interval '7 days')
	        OR (e.event_type = 'impression' AND e.event_time >= o.order_time - interval '1 day'))
	 ORDER BY e.event_type = 'click' DESC, e.event_time DESC, e.event_id DESC
	 LIMIT 1) AS t ON true"

# fig NAME: figure NAME of the size being measured (number idx)
fig() { local v="a${idx}_$1"; echo "${!v}"; }

checks_ok=1
sizes=()
idx=0
for n in ${events_list//,/ }; do
	idx=$((idx + 1))
	sizes+=("$n")
	users=$(( (n + per_user - 1) / per_user ))
	echo "# attribution over $n stored ad events ($users users): loading them by INSERT .. SELECT generate_series straight into adstream.event, $sessions sessions"
	load_events "(SELECT id FROM adstream.pipeline WHERE name = 'ads')" "$n" "$users" \
		$((t0 - keep_secs)) "$keep_secs" 0
	echo "#   loaded in $load_secs; $orders orders through adstream.ingest(), then attribute_orders() in steps of $step; then the baseline"
	"${psql_cmd[@]}" >"$work/attr-$idx.txt" <<SQL || exit 1
TRUNCATE adstream.attributed_order, adstream.revenue_minute, adstream.outbox, bench.plain_attributed;
DELETE FROM adstream.consumed_offset
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'orders');
DROP TABLE IF EXISTS bench.order_src, bench.order_batches;
-- a user of the stored events; 70% at one of the user's stores, the rest
-- anywhere; order times over the last hour; Kafka timestamps just after
CREATE TABLE bench.order_src AS
SELECT r.j, 'o$idx-' || r.j AS order_id, 'u' || r.uid AS user_id, 's' || r.store AS store_id,
       to_timestamp(r.ot) AS order_time, round((5 + bench.u(r.j, 16) * 300)::numeric, 2) AS amount,
       CASE WHEN bench.u(r.j, 17) < 0.8 THEN 'USD' ELSE 'EUR' END AS currency,
       to_timestamp(r.ot + bench.u(r.j, 18)) AS kafka_ts
  FROM (SELECT g.j, g.uid, g.ot,
               CASE WHEN bench.u(g.j, 13) < 0.7
                    THEN bench.store_of(g.uid, floor(bench.u(g.j, 14) * 4)::int)
                    ELSE floor(bench.u(g.j, 15) * 1000)::int END AS store
          FROM (SELECT j, floor(bench.u(j, 11) * $users)::bigint AS uid,
                       $t0 - 3600 + (j - 1 + bench.u(j, 12)) / $orders * 3600 AS ot
                  FROM generate_series(1, $orders) AS j) AS g) AS r;
-- the messages, as a consumer worker hands them to the core, built before
-- the clock starts
CREATE TABLE bench.order_batches AS
SELECT (j - 1) / 10000 AS b,
       array_agg(convert_to(json_build_object('order_id', order_id, 'user_id', user_id,
                 'store_id', store_id, 'order_time', floor(extract(epoch FROM order_time) * 1000)::bigint,
                 'amount', amount, 'currency', currency)::text, 'UTF8') ORDER BY j) AS msgs,
       array_agg(((j - 1) % 4)::int ORDER BY j) AS parts,
       array_agg(((j - 1) / 4)::bigint ORDER BY j) AS offs,
       array_agg(kafka_ts ORDER BY j) AS ts
  FROM bench.order_src GROUP BY 1;
VACUUM ANALYZE bench.order_src, bench.order_batches;
-- warm-up: the lookups once, so that neither side pays for a cold cache
SELECT 'warm=' || count(t.event_id) $lookup;
CHECKPOINT;
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
CALL bench.ingest_orders();
SELECT extract(epoch FROM clock_timestamp()) AS t2 \gset
CALL bench.decide($step);
SELECT extract(epoch FROM clock_timestamp()) AS t3 \gset
CHECKPOINT;
SELECT extract(epoch FROM clock_timestamp()) AS t4 \gset
INSERT INTO bench.plain_attributed
SELECT o.order_id, o.user_id, o.store_id, o.order_time, (o.amount * 1000000)::bigint, o.currency,
       CASE t.event_type WHEN 'click' THEN 'click' WHEN 'impression' THEN 'view' ELSE 'none' END,
       t.ad_id, t.campaign_id, t.advertiser_id, t.event_id, t.event_time
$lookup;
SELECT extract(epoch FROM clock_timestamp()) AS t5 \gset
SELECT 'ingest_secs=' || (:t2 - :t1);
SELECT 'decide_secs=' || (:t3 - :t2);
SELECT 'base_secs=' || (:t5 - :t4);
SELECT 'stored=' || count(*) FROM adstream.attributed_order;
SELECT 'undecided=' || count(*) FILTER (WHERE state <> 'done') FROM adstream.attributed_order;
SELECT 'clicks=' || count(*) FILTER (WHERE attribution = 'click'),
       'views=' || count(*) FILTER (WHERE attribution = 'view'),
       'nones=' || count(*) FILTER (WHERE attribution = 'none')
  FROM adstream.attributed_order;
SELECT 'records=' || count(*) FROM adstream.outbox;
SELECT 'agree=' || count(*) FROM bench.plain_attributed AS p
  JOIN adstream.attributed_order AS a ON a.order_id = p.order_id
 WHERE a.attribution = p.attribution AND a.touch_event_id IS NOT DISTINCT FROM p.touch_event_id;
SELECT 'event_bytes=' || pg_total_relation_size('adstream.event');
SQL
	tr '|' '\n' <"$work/attr-$idx.txt" | sed -n "s/^\([a-z_]*\)=\(.*\)$/a${idx}_\1='\2'/p" >"$work/attr-$idx.sh"
	. "$work/attr-$idx.sh"
	if [ "$(fig stored)" -ne "$orders" ] || [ "$(fig undecided)" -ne 0 ] || [ "$(fig agree)" -ne "$orders" ]; then
		echo "attribution_bench: $n events: $(fig stored) orders stored (of $orders), $(fig undecided) undecided, $(fig agree) attributed as the baseline does" >&2
		checks_ok=0
	fi
	awk -v m="$orders" -v ing="$(fig ingest_secs)" -v dec="$(fig decide_secs)" -v base="$(fig base_secs)" \
		-v c="$(fig clicks)" -v v="$(fig views)" -v x="$(fig nones)" -v a="$(fig agree)" \
		-v eb="$(fig event_bytes)" 'BEGIN {
	printf "  ingest of the orders:      %8.3f s %9.0f orders/s\n", ing, m / ing
	printf "  decide (attribute_orders): %8.3f s %9.0f orders/s\n", dec, m / dec
	printf "  ingest and decide:         %8.3f s %9.0f orders/s\n", ing + dec, m / (ing + dec)
	printf "  plain SQL baseline:        %8.3f s %9.0f orders/s\n", base, m / base
	printf "  ratio to the baseline:     decide %.3f, ingest and decide %.3f\n", base / dec, base / (ing + dec)
	printf "  attributed: %d to a click, %d to an impression, %d to none; %d of %d as the baseline\n", c, v, x, a, m
	printf "  adstream.event with its indexes: %.0f MB\n", eb / 1048576
}'
done

# ----------------------------------------------------------------------------
# 2. ad-event ingest with and without maintenance
# ----------------------------------------------------------------------------
# the stream's Kafka time: one hour, up to two minutes ago
s1=$((t0 - 120))
s0=$((s1 - 3600))
rate=$(( (stream + 3599) / 3600 ))
echo "# maintenance: generating a $stream-message stream (tests/adgen), Kafka time over the hour before $(date -u -d "@$s1" +%H:%M:%SZ)"
"$src/tests/adgen/adgen" --events "$stream" --partitions 4 --start-ms "${s0}000" --rate "$rate" \
	--messages "$work/stream.copy" --truth /dev/null --rows /dev/null >/dev/null 2>"$work/adgen.log" ||
	{ cat "$work/adgen.log" >&2; exit 1; }
"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
TRUNCATE adstream.event, adstream.attributed_order, adstream.revenue_minute, adstream.outbox;
-- one ad-events pipeline from here on: expire_events looks for each
-- pipeline's expired events through the BRIN index on expires_at alone, so
-- another pipeline would read this one's expired rows at every step
SELECT adstream.drop_pipeline('orders');
SELECT adstream.drop_pipeline('ads');
CREATE TABLE bench.stream_raw (seq bigint PRIMARY KEY, partition int, "offset" bigint,
                               kafka_ms bigint, msg bytea);
COPY bench.stream_raw FROM '$work/stream.copy';
CREATE TABLE bench.stream_batches AS
SELECT seq / 10000 AS b, array_agg(msg ORDER BY seq) AS msgs, array_agg(partition ORDER BY seq) AS parts,
       array_agg("offset" ORDER BY seq) AS offs,
       array_agg(to_timestamp(kafka_ms / 1000.0) ORDER BY seq) AS ts
  FROM bench.stream_raw GROUP BY 1;
VACUUM ANALYZE bench.stream_batches;
SQL
last_batch=$(( (stream - 1) / 10000 ))
timed=$((stream - 10000))

# run_stream off|on: the stored events back to $expirable expirable ones;
# the first batch untimed (it sets the consumed Kafka time to the start of
# the hour); then the rest timed, with the maintenance loop running or not
run_stream() {
	local mode=$1 t1 t2 loop_pid=
	echo "# maintenance $mode: $expirable expirable stored events, then $timed messages through adstream.ingest()"
	"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
TRUNCATE adstream.minute_delta, adstream.minute_stat, adstream.dead_letter, bench.stream_result,
         bench.maintain_calls;
DELETE FROM adstream.consumed_offset;
UPDATE bench.maintain_stop SET stop = false;
SQL
	load_events "(SELECT id FROM adstream.pipeline WHERE name = 'stream')" "$expirable" \
		$(( (expirable + per_user - 1) / per_user )) $((s0 - keep_secs)) 3600 1
	"${psql_cmd[@]}" >/dev/null <<SQL || exit 1
CALL bench.ingest_stream(0, 0);
TRUNCATE bench.stream_result;
CHECKPOINT;
SQL
	read -r expired0 < <("${psql_cmd[@]}" -c "SELECT rows_total FROM adstream.maintenance_run WHERE task = 'expire_events'")
	if [ "$mode" = on ]; then
		"${psql_cmd[@]}" -c "CALL bench.maintain_loop($pause)" >/dev/null &
		loop_pid=$!
	fi
	t1=$(now)
	"${psql_cmd[@]}" -c "CALL bench.ingest_stream(1, $last_batch)" >/dev/null || exit 1
	t2=$(now)
	# what maintenance had done by the end of the ingest, and what it had not
	"${psql_cmd[@]}" -F ' ' >"$work/stream-$mode.txt" <<SQL || exit 1
SELECT 'expired=' || (rows_total - $expired0) FROM adstream.maintenance_run WHERE task = 'expire_events';
SELECT 'left=' || count(*) FROM adstream.event
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'stream')
   AND expires_at < (SELECT adstream.consumed_time('stream'));
SQL
	if [ -n "$loop_pid" ]; then
		"${psql_cmd[@]}" -c "UPDATE bench.maintain_stop SET stop = true" >/dev/null
		wait "$loop_pid" || { echo "attribution_bench: the maintenance loop failed" >&2; exit 1; }
	fi
	"${psql_cmd[@]}" -F ' ' >>"$work/stream-$mode.txt" <<SQL || exit 1
SELECT 'secs=' || ($t2 - $t1);
SELECT 'accepted=' || coalesce(sum(accepted), 0) FROM bench.stream_result;
SELECT 'calls=' || coalesce(max(calls), 0), 'busy=' || coalesce(max(secs), 0) FROM bench.maintain_calls;
SELECT 'errors=' || count(*) FROM adstream.maintenance_run WHERE last_error IS NOT NULL;
SQL
	if [ "$mode" = off ]; then
		# then expiry alone, the events past expiry at the end of the ingest
		"${psql_cmd[@]}" -F ' ' >>"$work/stream-$mode.txt" <<SQL || exit 1
SELECT rows_total AS e0, extract(epoch FROM clock_timestamp()) AS t0
  FROM adstream.maintenance_run WHERE task = 'expire_events' \gset
CALL adstream.maintain(10000, '10 minutes', 'bench');
SELECT 'alone_secs=' || (extract(epoch FROM clock_timestamp()) - :t0);
SELECT 'alone_rows=' || (rows_total - :e0) FROM adstream.maintenance_run WHERE task = 'expire_events';
SQL
	fi
	tr ' ' '\n' <"$work/stream-$mode.txt" | sed -n "s/^\([a-z_]*\)=\(.*\)$/m_${mode}_\1='\2'/p" >"$work/stream-$mode.sh"
	. "$work/stream-$mode.sh"
}
run_stream off
run_stream on
if [ "$m_on_errors" -ne 0 ]; then
	echo "attribution_bench: a maintenance task failed:" >&2
	"${psql_cmd[@]}" -c "SELECT task, last_error FROM adstream.maintenance_run WHERE last_error IS NOT NULL" >&2
	checks_ok=0
fi

# ----------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------
echo
echo "== adstream attribution and maintenance benchmark ($(nproc 2>/dev/null || echo '?') cores) =="
echo "stored ad events: loaded by INSERT .. SELECT generate_series straight into adstream.event (not adstream.ingest); $per_user per user, 4 stores per user of 1,000, 5% clicks, over 7 days"
echo "orders: $orders through adstream.ingest() (grace_period 0, batches of 10,000), decided by adstream.attribute_orders() in steps of $step (no hook, emit_mode final)"
printf "%14s %14s %14s %14s %14s %10s %10s\n" "stored events" "ingest ord/s" "decide ord/s" "both ord/s" "baseline ord/s" "ratio dec" "ratio both"
idx=0
for n in "${sizes[@]}"; do
	idx=$((idx + 1))
	awk -v n="$n" -v m="$orders" -v ing="$(fig ingest_secs)" -v dec="$(fig decide_secs)" \
		-v base="$(fig base_secs)" 'BEGIN {
	printf "%14d %14.0f %14.0f %14.0f %14.0f %10.3f %10.3f\n", n, m / ing, m / dec, m / (ing + dec), m / base, base / dec, base / (ing + dec)
}'
done
echo "(ratio: adstream orders/s over the plain LEFT JOIN LATERAL INSERT's, same orders, same stored events, same run)"
awk -v n="$timed" -v s0="$m_off_secs" -v s1="$m_on_secs" -v a0="$m_off_accepted" -v a1="$m_on_accepted" \
	-v ex="$m_on_expired" -v left="$m_on_left" -v calls="$m_on_calls" -v busy="$m_on_busy" \
	-v pre="$expirable" -v pause="$pause" -v ar="$m_off_alone_rows" -v as="$m_off_alone_secs" 'BEGIN {
	printf "ad-event ingest, %d messages (%d accepted) over %d expirable stored events:\n", n, a0, pre
	printf "  no maintenance:          %8.3f s %9.0f messages/s\n", s0, n / s0
	printf "  maintain() looping:      %8.3f s %9.0f messages/s  ratio %.3f\n", s1, n / s1, (n / s1) / (n / s0)
	printf "  expired during the run:  %d rows by %d maintain() calls (%.1f s busy in all, %s s pause between calls); %d rows past expiry not yet deleted when the ingest ended\n", ex, calls, busy, pause, left
	printf "  expiry alone (maintain() after the run without maintenance): %d rows in %.3f s, %.0f rows/s\n", ar, as, ar / as
}'
[ "$checks_ok" -eq 1 ]
