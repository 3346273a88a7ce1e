#!/bin/bash
# The demo: installs what is needed, builds, starts the embedded Kafka and a
# private PostgreSQL with adstream preloaded, creates a pipeline on a topic,
# produces a live ad-event stream (duplicates, late and invalid events
# included) and a stream of orders from the users who saw the ads, and
# shows live aggregates and attributed revenue until Ctrl-C, which stops
# everything it started.
#
#   bash tests/demo.sh [--rate N]      # events per second, default 2000
set -uo pipefail

rate=2000
while [ $# -gt 0 ]; do
	case "$1" in
		--rate) rate=$2; shift 2 ;;
		*) echo "usage: $0 [--rate N]" >&2; exit 2 ;;
	esac
done
case "$rate" in
	''|*[!0-9]*) echo "demo: --rate wants a whole number of events per second" >&2; exit 2 ;;
esac

src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

# root-only steps first; the rest runs as an unprivileged user
adstream_enter tests/demo.sh --rate "$rate"

make -s -C "$src/tests/adgen" >/dev/null && make -s -C "$src/tests/kafka" >/dev/null || exit 1
work=$(mktemp -d /tmp/adstream-demo.XXXXXX)
port=$(adstream_free_port)
producer=
stopping=0
stop_all() {
	[ "$stopping" -eq 1 ] && return
	stopping=1
	echo
	echo "demo: stopping"
	[ -n "$producer" ] && kill "$producer" 2>/dev/null && wait "$producer" 2>/dev/null
	adstream_pg_stop "$work/pg"
	adstream_kafka_stop "$work"
	rm -rf "$work"
	echo "demo: stopped"
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

echo "demo: starting the embedded Kafka and PostgreSQL in $work"
adstream_kafka_start "$work" ad-events:4 orders:2 ad-minute-stats:4 attributed-orders:2 adstream-progress:1 || { echo "demo: the embedded Kafka did not start" >&2; exit 1; }
adstream_pg_start "$work/pg" "$port" "adstream.database = 'postgres'" ||
	{ echo "demo: PostgreSQL did not start" >&2; exit 1; }
psql_cmd=(psql -X -q -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)

"${psql_cmd[@]}" >/dev/null <<SQL || { echo "demo: setup failed" >&2; exit 1; }
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('demo', topic => 'ad-events', max_message_bytes => 4096,
       region => 'demo', emit_mode => 'changes',
       bootstrap_servers => '$(cat "$work/bootstrap")',
       kafka_properties => '{"fetch.wait.max.ms": 50}', batch_time => '200 ms');
SELECT adstream.create_sink('demo', 'pinot', topic => 'ad-minute-stats');
SELECT adstream.create_orders_pipeline('demo-orders', events_pipeline => 'demo',
       topic => 'orders', bootstrap_servers => '$(cat "$work/bootstrap")',
       grace_period => '5 seconds', kafka_properties => '{"fetch.wait.max.ms": 50}',
       batch_time => '200 ms');
SELECT adstream.create_sink('demo-orders', 'pinot-orders', topic => 'attributed-orders');
SQL

"$src/tests/kafka/adproduce" --events 1000000000 --partitions 4 --topic ad-events \
	--rate "$rate" --ads 200 --bootstrap-file "$work/bootstrap" 2>"$work/produce.log" &
producer=$!

cat <<EOF
demo: producing $rate ad events per second to topic ad-events (about 5% duplicates,
      1% invalid, 2% late); adstream's consumer worker applies them exactly once,
      and its producer worker sends each minute's changes to topic ad-minute-stats.
demo: every 2 seconds it also produces orders to topic orders: most from users who
      saw or clicked an ad of the store, some from users who did not, a few twice.
      After a 5-second grace period each is attributed (last click within 7 days,
      else last impression within 1 day, same user and store), and its record goes
      to topic attributed-orders.
demo: connect while it runs:  psql -h $work/pg -p $port -U postgres
demo: Ctrl-C stops everything.
EOF
sleep 2

# orders_round N: produce N orders (about a third without an ad behind
# them, a few repeated) from a sample of the stored events' users and stores
orders_round() {
	"${psql_cmd[@]}" -t -A -c "
		WITH seen AS (
			SELECT user_id, store_id FROM adstream.event TABLESAMPLE SYSTEM (2)
			 WHERE store_id IS NOT NULL LIMIT $1),
		orders AS (
			SELECT user_id, store_id FROM seen
			UNION ALL
			SELECT 'u-' || (random() * 1e9)::bigint, store_id FROM seen WHERE random() < 0.5)
		SELECT format('{\"order_id\":\"%s\",\"user_id\":\"%s\",\"store_id\":\"%s\",\"order_time\":%s,\"amount\":%s,\"currency\":\"EUR\"}',
		              id, user_id, store_id, (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
		              round((5 + random() * 60)::numeric, 2))
		  FROM (SELECT *, 'o-' || md5(random()::text) AS id FROM orders) o,
		       generate_series(1, CASE WHEN random() < 0.03 THEN 2 ELSE 1 END)" 2>/dev/null |
		kcat -P -b "$(cat "$work/bootstrap")" -t orders 2>/dev/null
}

last_accepted=0
last_time=$(date +%s.%N)
while :; do
	orders_round $(( rate / 100 + 1 ))
	now=$(date +%s.%N)
	read -r accepted lag state < <("${psql_cmd[@]}" -t -A -F ' ' -c "
		SELECT coalesce(max(accepted), 0), coalesce(sum(lag), 0), coalesce(max(worker_state), '-')
		  FROM adstream.pipeline_status WHERE pipeline = 'demo'")
	read -r records txns backlog sink_state < <("${psql_cmd[@]}" -t -A -F ' ' -c "
		SELECT coalesce(records, 0), coalesce(transactions, 0), backlog, worker_state
		  FROM adstream.sink_status WHERE pipeline = 'demo'")
	rate_now=$(awk -v a="$accepted" -v b="$last_accepted" -v t1="$now" -v t0="$last_time" \
		'BEGIN { printf "%.0f", (a - b) / (t1 - t0) }')
	last_accepted=$accepted
	last_time=$now
	clear 2>/dev/null || printf '\033[2J\033[H'
	echo "adstream demo  $(date -u '+%H:%M:%S') UTC   consumer: $state   accepted events/s: $rate_now   lag: $lag messages"
	echo "output topic ad-minute-stats   producer: $sink_state   records sent: $records in $txns Kafka transactions   backlog: $backlog"
	echo "psql -h $work/pg -p $port -U postgres      Ctrl-C stops the demo"
	echo
	"${psql_cmd[@]}" -c "
		SELECT ad_id, to_char(window_start, 'HH24:MI') AS minute, impressions, clicks, ctr, spend
		  FROM adstream.ad_minute_stats
		 WHERE pipeline = 'demo'
		   AND window_start >= date_trunc('minute', now()) - interval '2 minutes'
		 ORDER BY window_start DESC, impressions DESC, ad_id
		 LIMIT 12" 2>/dev/null
	"${psql_cmd[@]}" -t -A -F ' ' -c "
		SELECT format('orders: %s decided (%s to a click, %s to an impression, %s unattributed), %s waiting out the grace period; records sent to attributed-orders: %s',
		              decided, attributed_click, attributed_view, unattributed, pending,
		              (SELECT coalesce(records, 0) FROM adstream.sink_status WHERE pipeline = 'demo-orders'))
		  FROM adstream.order_status WHERE pipeline = 'demo-orders'" 2>/dev/null
	"${psql_cmd[@]}" -c "
		SELECT campaign_id, currency, sum(orders) AS orders, sum(click_orders) AS via_click,
		       sum(revenue) AS attributed_revenue
		  FROM adstream.ad_revenue_minute
		 WHERE pipeline = 'demo-orders'
		   AND window_start >= date_trunc('minute', now()) - interval '5 minutes'
		 GROUP BY campaign_id, currency
		 ORDER BY attributed_revenue DESC LIMIT 6" 2>/dev/null
	"${psql_cmd[@]}" -c "
		SELECT pipeline, reason, messages FROM adstream.dead_letter_summary
		 ORDER BY messages DESC" 2>/dev/null
	if [ "$stopping" -eq 0 ] && ! kill -0 "$producer" 2>/dev/null; then
		echo "demo: the producer stopped:"
		cat "$work/produce.log"
		exit 1
	fi
	sleep 2
done
