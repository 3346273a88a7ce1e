#!/bin/bash
# Fault injection for orders pipelines: ad events and orders (with
# duplicates and invalid messages) stream from the embedded Kafka into an
# ad-events pipeline and an orders pipeline (grace_period 2 seconds), while
# the consumer workers and the attributor worker are killed with SIGKILL
# again and again (each kill makes PostgreSQL restart all its processes and
# recover; the launcher then starts the workers again).  Every order must
# then be decided exactly once, as the ground truth of
# tests/adgen/ordergen.awk says (the generator constructs each order's
# attribution; see its header), with its revenue, its counters and one
# output record.  Prints TAP lines.
#
#   tests/kafka_orders.sh [--scenarios N] [--seed N]
#
# Why the truth holds whatever the timing: an order is matched against the
# ad events stored when its grace period ends.  All ad events are produced
# and consumed (the suite waits for the events pipeline's offsets) before
# the first order is produced, so every order is decided against all of its
# events, however long the kills hold up either consumer.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"
. "$src/tests/lib/kafka.sh"

scenarios=1200
seed=$((RANDOM * 32768 + RANDOM))
while [ $# -gt 0 ]; do
	case "$1" in
		--scenarios) scenarios=$2; shift 2 ;;
		--seed) seed=$2; shift 2 ;;
		*) echo "usage: $0 [--scenarios N] [--seed N]" >&2; exit 2 ;;
	esac
done
event_kills=3					# consumers killed while the ad events stream
order_kills=8					# consumer or attributor killed while the orders stream

status=0
adstream_kafka_env orders ads:4 orders:3
echo "# seed $seed (tests/kafka_orders.sh --seed $seed reproduces the data)"

# the data: generated, then put in stream order (see ordergen.awk)
awk -v now_ms="$(date +%s%3N)" -v seed="$seed" -v scenarios="$scenarios" -v event_parts=4 \
	-v order_parts=3 -v dir="$work" -f "$src/tests/adgen/ordergen.awk" </dev/null &&
	LC_ALL=C sort -s -n -k1,1 "$work/events.all" | cut -f2- >"$work/events.in" &&
	LC_ALL=C sort -s -n -k1,1 "$work/orders.all" | cut -f2- >"$work/orders.sorted" &&
	cut -f2- "$work/orders.sorted" >"$work/orders.in" ||
	{ echo "not ok - generate ad events and orders"; exit 1; }
n_events=$(wc -l <"$work/events.in")
n_orders=$(wc -l <"$work/orders.in")

bootstrap=$(cat "$work/bootstrap")
"${psql_cmd[@]}" <<SQL >/dev/null || { echo "not ok - setup"; exit 1; }
CREATE EXTENSION adstream;
-- events up to 9 days old must be accepted, to lie outside the 7-day click window
SELECT adstream.create_pipeline('ads', max_event_age => '10 days', minute_retention => '10 days',
       topic => 'ads', bootstrap_servers => '$bootstrap',
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_size => 500,
       batch_time => '20 ms');
-- the default rule and windows: last click within 7 days, else last impression within 1 day
SELECT adstream.create_orders_pipeline('orders', 'ads', topic => 'orders',
       bootstrap_servers => '$bootstrap', grace_period => '2 seconds',
       kafka_properties => '{"fetch.wait.max.ms": 10}', batch_size => 100,
       batch_time => '20 ms');
SQL

killed=" "
# worker_pid TYPE: the pid of one worker of backend type TYPE not killed yet
worker_pid() {
	"${psql_cmd[@]}" -c "SELECT pid FROM pg_stat_activity WHERE backend_type = '$1'
	                      AND pid <> ALL ('{0${killed// /,}0}'::int[])
	                      ORDER BY random() LIMIT 1" 2>/dev/null
}
# kill_worker TYPE: wait (at most 20 s) for a worker of TYPE, let it work
# for a random moment, and kill it with SIGKILL; fails if none was killed.
kill_worker() {
	local pid=
	for _ in $(seq 1 200); do
		pid=$(worker_pid "$1")
		[ -n "$pid" ] && break
		sleep 0.1
	done
	[ -n "$pid" ] || return 1
	sleep "0.$((RANDOM % 8))$((RANDOM % 10))"
	kill -9 "$pid" 2>/dev/null || return 1
	killed="$killed$pid "
	sleep 0.3
}

# 1. the ad events, paced over about 8 seconds, consumers killed meanwhile
"$src/tests/kafka/adproduce" --input "$work/events.in" --topic ads --rate $((n_events / 8)) \
	--bootstrap-file "$work/bootstrap" 2>"$work/produce-events.log" &
producer=$!
consumer_kills=0
for _ in $(seq 1 "$event_kills"); do
	kill_worker "adstream consumer" && consumer_kills=$((consumer_kills + 1))
done
wait "$producer"
adstream_tap $? "$n_events ad events were produced"
producer=
[ "$consumer_kills" -eq "$event_kills" ]
adstream_tap $? "consumer workers were killed with SIGKILL $event_kills times while the ad events streamed ($consumer_kills)"
adstream_poll "SELECT coalesce(sum(o.next_offset), 0) = $n_events
                 FROM adstream.consumed_offset AS o JOIN adstream.pipeline AS p ON p.id = o.pipeline_id
                WHERE p.name = 'ads'" 600
adstream_tap $? "the ad-events pipeline consumed all $n_events messages before any order was produced"

# 2. the orders, paced over about 12 seconds, consumers and the attributor
#    killed in turn meanwhile (and after, while the last ones wait out their
#    grace period)
"$src/tests/kafka/adproduce" --input "$work/orders.in" --topic orders \
	--rate $((n_orders / 12)) --bootstrap-file "$work/bootstrap" 2>"$work/produce-orders.log" &
producer=$!
attributor_kills=0
consumer_kills=0
for i in $(seq 1 "$order_kills"); do
	if [ $((i % 2)) -eq 1 ]; then
		kill_worker "adstream attributor" && attributor_kills=$((attributor_kills + 1))
	else
		kill_worker "adstream consumer" && consumer_kills=$((consumer_kills + 1))
	fi
done
wait "$producer"
adstream_tap $? "$n_orders order messages were produced"
producer=
[ $((attributor_kills + consumer_kills)) -eq "$order_kills" ]
adstream_tap $? "while the orders streamed, the attributor was killed with SIGKILL $attributor_kills times and consumer workers $consumer_kills times"
crashes=$(grep -c "terminated by signal 9" "$work/pg/server.log")
[ "$crashes" -ge $((event_kills + order_kills)) ]
adstream_tap $? "the server log shows $crashes workers terminated by signal 9"

adstream_poll "SELECT coalesce(sum(o.next_offset), 0) = $n_orders
                 FROM adstream.consumed_offset AS o JOIN adstream.pipeline AS p ON p.id = o.pipeline_id
                WHERE p.name = 'orders'" 600
adstream_tap $? "after the kills, the orders pipeline consumed all $n_orders messages"
adstream_poll "SELECT NOT EXISTS (SELECT 1 FROM adstream.attributed_order WHERE state <> 'done')" 300
adstream_tap $? "every stored order was decided"
adstream_poll "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'adstream consumer') = 2
                  AND (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'adstream attributor') = 1" 300
adstream_tap $? "the launcher runs both consumer workers and the attributor again"

# 3. everything against the ground truth
"${psql_cmd[@]}" >"$work/check.txt" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE TABLE truth_event (event_id text, event_type text, ad_id text, event_time_ms bigint,
                          user_id text, store_id text);
COPY truth_event FROM '$work/expected_events';
CREATE TABLE truth_order (order_id text, user_id text, store_id text, order_time_ms bigint,
                          amount_micros bigint, currency text, attribution text, ad_id text,
                          campaign_id text, advertiser_id text, touch_event_id text,
                          touch_time_ms bigint, scenario int, duplicates int);
COPY truth_order FROM '$work/expected_orders';
-- the order messages in stream order; offsets follow from it per partition
CREATE TABLE order_msg (line bigint GENERATED ALWAYS AS IDENTITY, kind text, partition int,
                        kafka_ms bigint, msg text);
COPY order_msg (kind, partition, kafka_ms, msg) FROM '$work/orders.sorted';
CREATE VIEW order_msg_at AS
SELECT kind, partition, row_number() OVER (PARTITION BY partition ORDER BY line) - 1 AS "offset", msg
  FROM order_msg;
CREATE FUNCTION ms(t timestamptz) RETURNS bigint IMMUTABLE LANGUAGE sql
    AS 'SELECT floor(extract(epoch FROM t) * 1000)::bigint';
CREATE VIEW got_order AS
SELECT a.* FROM adstream.attributed_order AS a
  JOIN adstream.pipeline AS p ON p.id = a.pipeline_id AND p.name = 'orders';

-- the ad events
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - the stored ad events are the generated ones, each once (' || count(*) || ' differences)'
  FROM ((SELECT event_id, event_type, ad_id, event_time_ms, user_id, store_id FROM truth_event
         EXCEPT ALL
         SELECT event_id, event_type::text, ad_id, ms(event_time), user_id, store_id FROM adstream.event)
        UNION ALL
        (SELECT event_id, event_type::text, ad_id, ms(event_time), user_id, store_id FROM adstream.event
         EXCEPT ALL
         SELECT event_id, event_type, ad_id, event_time_ms, user_id, store_id FROM truth_event)) AS d;

-- the orders: each valid distinct one decided once, as constructed
SELECT CASE WHEN (SELECT count(*) FROM got_order) = (SELECT count(*) FROM truth_order)
             AND (SELECT count(DISTINCT order_id) FROM got_order) = (SELECT count(*) FROM truth_order)
             AND NOT EXISTS (SELECT 1 FROM got_order WHERE state <> 'done' OR decided_at IS NULL)
            THEN 'ok' ELSE 'not ok' END
       || ' - every valid distinct order is stored once and done (' || (SELECT count(*) FROM got_order)
       || ' of ' || (SELECT count(*) FROM truth_order) || ')';
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - each order''s user, store, time, amount, currency, attribution, ad, campaign, advertiser and touch event equal ground truth ('
       || count(*) || ' differences)'
  FROM ((SELECT order_id, user_id, store_id, order_time_ms, amount_micros, currency, attribution,
                ad_id, campaign_id, advertiser_id, touch_event_id, touch_time_ms FROM truth_order
         EXCEPT ALL
         SELECT order_id, user_id, store_id, ms(order_time), amount_micros, currency, attribution,
                ad_id, campaign_id, advertiser_id, touch_event_id, ms(touch_time) FROM got_order)
        UNION ALL
        (SELECT order_id, user_id, store_id, ms(order_time), amount_micros, currency, attribution,
                ad_id, campaign_id, advertiser_id, touch_event_id, ms(touch_time) FROM got_order
         EXCEPT ALL
         SELECT order_id, user_id, store_id, order_time_ms, amount_micros, currency, attribution,
                ad_id, campaign_id, advertiser_id, touch_event_id, touch_time_ms FROM truth_order)) AS d;
SELECT CASE WHEN (SELECT count(*) FROM order_msg WHERE kind = 'dup') = (SELECT sum(duplicates) FROM truth_order)
             AND (SELECT count(*) FROM order_msg WHERE kind = 'dup') > 0
             AND o.decided = (SELECT count(*) FROM truth_order)
             AND o.emitted = (SELECT count(*) FROM truth_order)
             AND o.pending = 0 AND o.enriching = 0
            THEN 'ok' ELSE 'not ok' END
       || ' - ' || (SELECT count(*) FROM order_msg WHERE kind = 'dup') || ' duplicate messages of '
       || (SELECT count(*) FROM truth_order WHERE duplicates > 0) || ' orders counted once: '
       || o.decided || ' decided and ' || o.emitted || ' emitted of '
       || (SELECT count(*) FROM truth_order) || ' distinct orders'
  FROM adstream.order_status AS o WHERE o.pipeline = 'orders';
SELECT CASE WHEN o.attributed_click = (SELECT count(*) FROM truth_order WHERE attribution = 'click')
             AND o.attributed_view = (SELECT count(*) FROM truth_order WHERE attribution = 'view')
             AND o.unattributed = (SELECT count(*) FROM truth_order WHERE attribution = 'none')
            THEN 'ok' ELSE 'not ok' END
       || ' - adstream.order_status counts ' || o.attributed_click || ' click, ' || o.attributed_view
       || ' view and ' || o.unattributed || ' unattributed orders, as ground truth'
  FROM adstream.order_status AS o WHERE o.pipeline = 'orders';

-- dead letters: the invalid order messages, none of the ad events
SELECT CASE WHEN count(*) = 0 AND (SELECT count(*) FROM order_msg WHERE kind LIKE 'dead:%') > 0
            THEN 'ok' ELSE 'not ok' END
       || ' - dead letters are the ' || (SELECT count(*) FROM order_msg WHERE kind LIKE 'dead:%')
       || ' invalid order messages, by partition, offset and reason (' || count(*) || ' differences)'
  FROM ((SELECT p.name, m.partition, m."offset", substr(m.kind, 6) FROM order_msg_at AS m, adstream.pipeline AS p
          WHERE m.kind LIKE 'dead:%' AND p.name = 'orders'
         EXCEPT ALL
         SELECT p.name, d.partition, d."offset", d.reason FROM adstream.dead_letter AS d
           JOIN adstream.pipeline AS p ON p.id = d.pipeline_id)
        UNION ALL
        (SELECT p.name, d.partition, d."offset", d.reason FROM adstream.dead_letter AS d
           JOIN adstream.pipeline AS p ON p.id = d.pipeline_id
         EXCEPT ALL
         SELECT p.name, m.partition, m."offset", substr(m.kind, 6) FROM order_msg_at AS m, adstream.pipeline AS p
          WHERE m.kind LIKE 'dead:%' AND p.name = 'orders')) AS d;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - each dead letter is the message at its offset, byte for byte'
  FROM adstream.dead_letter AS d
  LEFT JOIN order_msg_at AS m ON m.partition = d.partition AND m."offset" = d."offset"
 WHERE m.msg IS NULL OR d.payload <> convert_to(m.msg, 'UTF8');
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - the stored next offset of every orders partition is its message count'
  FROM ((SELECT partition, count(*) FROM order_msg GROUP BY partition
         EXCEPT SELECT o.partition, o.next_offset FROM adstream.consumed_offset AS o
                  JOIN adstream.pipeline AS p ON p.id = o.pipeline_id AND p.name = 'orders')
        UNION ALL
        (SELECT o.partition, o.next_offset FROM adstream.consumed_offset AS o
           JOIN adstream.pipeline AS p ON p.id = o.pipeline_id AND p.name = 'orders'
         EXCEPT SELECT partition, count(*) FROM order_msg GROUP BY partition)) AS d;

-- revenue
CREATE TABLE truth_revenue AS
SELECT to_timestamp(order_time_ms / 60000 * 60) AS window_start, ad_id, currency,
       max(campaign_id) AS campaign_id, count(*) AS orders,
       count(*) FILTER (WHERE attribution = 'click') AS click_orders,
       sum(amount_micros) AS revenue_micros
  FROM truth_order WHERE attribution <> 'none' GROUP BY 1, 2, 3;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - orders, click orders, revenue and campaign per (ad, currency, minute) equal ground truth ('
       || count(*) || ' differences)'
  FROM ((SELECT window_start, ad_id, currency, campaign_id, orders, click_orders, revenue_micros
           FROM truth_revenue
         EXCEPT ALL
         SELECT r.window_start, r.ad_id, r.currency, r.campaign_id, r.orders, r.click_orders, r.revenue_micros
           FROM adstream.revenue_minute AS r JOIN adstream.pipeline AS p ON p.id = r.pipeline_id
          WHERE p.name = 'orders')
        UNION ALL
        (SELECT r.window_start, r.ad_id, r.currency, r.campaign_id, r.orders, r.click_orders, r.revenue_micros
           FROM adstream.revenue_minute AS r JOIN adstream.pipeline AS p ON p.id = r.pipeline_id
          WHERE p.name = 'orders'
         EXCEPT ALL
         SELECT window_start, ad_id, currency, campaign_id, orders, click_orders, revenue_micros
           FROM truth_revenue)) AS d;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - adstream.ad_revenue_daily: revenue per (ad, currency) equals ground truth sums ('
       || count(*) || ' differences)'
  FROM ((SELECT ad_id, currency, sum(orders)::bigint, sum(revenue_micros) / 1000000.0
           FROM truth_revenue GROUP BY 1, 2
         EXCEPT ALL
         SELECT ad_id, currency, sum(orders)::bigint, sum(revenue)
           FROM adstream.ad_revenue_daily WHERE pipeline = 'orders' GROUP BY 1, 2)
        UNION ALL
        (SELECT ad_id, currency, sum(orders)::bigint, sum(revenue)
           FROM adstream.ad_revenue_daily WHERE pipeline = 'orders' GROUP BY 1, 2
         EXCEPT ALL
         SELECT ad_id, currency, sum(orders)::bigint, sum(revenue_micros) / 1000000.0
           FROM truth_revenue GROUP BY 1, 2)) AS d;

-- output records: one per order, version 1, under the order's UUID
CREATE VIEW got_record AS
SELECT x.* FROM adstream.outbox AS x JOIN adstream.pipeline AS p ON p.id = x.pipeline_id
 WHERE p.name = 'orders';
SELECT CASE WHEN (SELECT count(*) FROM got_record) = (SELECT count(*) FROM truth_order)
             AND (SELECT count(DISTINCT record_uuid) FROM got_record) = (SELECT count(*) FROM truth_order)
             AND NOT EXISTS (SELECT 1 FROM got_record
                              WHERE version <> 1 OR (payload::jsonb ->> 'version') <> '1'
                                 OR record_uuid <> adstream.order_uuid('default', payload::jsonb ->> 'order_id'))
             AND NOT EXISTS (SELECT 1 FROM adstream.outbox AS x JOIN adstream.pipeline AS p
                               ON p.id = x.pipeline_id WHERE p.name <> 'orders')
            THEN 'ok' ELSE 'not ok' END
       || ' - the outbox holds one record per order (' || (SELECT count(*) FROM got_record)
       || '), version 1, record_uuid = adstream.order_uuid(region, order_id)';
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - each output record''s order, amount, currency, attribution, ad and touch event equal ground truth ('
       || count(*) || ' differences)'
  FROM ((SELECT adstream.order_uuid('default', order_id), order_id, amount_micros, currency, attribution, ad_id,
                touch_event_id FROM truth_order
         EXCEPT ALL
         SELECT record_uuid, payload::jsonb ->> 'order_id', (payload::jsonb ->> 'amount_micros')::bigint,
                payload::jsonb ->> 'currency', payload::jsonb ->> 'attribution',
                payload::jsonb ->> 'ad_id', payload::jsonb ->> 'touch_event_id' FROM got_record)
        UNION ALL
        (SELECT record_uuid, payload::jsonb ->> 'order_id', (payload::jsonb ->> 'amount_micros')::bigint,
                payload::jsonb ->> 'currency', payload::jsonb ->> 'attribution',
                payload::jsonb ->> 'ad_id', payload::jsonb ->> 'touch_event_id' FROM got_record
         EXCEPT ALL
         SELECT adstream.order_uuid('default', order_id), order_id, amount_micros, currency, attribution, ad_id,
                touch_event_id FROM truth_order)) AS d;
SQL
psql_rc=$?
cat "$work/check.txt"
[ "$psql_rc" -eq 0 ] && [ "$(grep -c '^ok' "$work/check.txt")" -eq 12 ] && ! grep -q '^not ok' "$work/check.txt"
adstream_tap $? "all ground-truth checks ran and passed"
[ "$status" -eq 0 ] || echo "# failed with seed $seed"
exit $status
