-- Maintenance: expiry of stored events and orders, rollups of aggregates
-- and revenue, outbox pruning, and the bookkeeping of runs.  Everything is
-- measured against consumed Kafka time (consumed_offset.kafka_time, fed
-- here through adstream.ingest() with coordinates and Kafka timestamps),
-- never against the wall clock: adstream.clock_override is set weeks ahead
-- of the Kafka times throughout.  (The times are in 2025, before anything
-- the other suites store, so that their rows never expire or roll up here.)
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET adstream.clock_override = '2025-06-20 00:00:00+00';

-- helpers of this suite: a batch on topic m, one partition, offsets after
-- the stored one, one Kafka timestamp for all; an ad event; an order
CREATE FUNCTION m_feed(pipeline text, msgs text[], kafka_ts timestamptz, part int DEFAULT 0)
RETURNS TABLE (accepted bigint, duplicates bigint, rejected bigint, skipped bigint)
LANGUAGE sql AS $$
  SELECT * FROM adstream.ingest(pipeline,
      (SELECT array_agg(convert_to(m, 'UTF8') ORDER BY i)
         FROM unnest(msgs) WITH ORDINALITY AS u(m, i)),
      'm', array_fill(part, ARRAY[cardinality(msgs)]),
      (SELECT array_agg(n.next_offset + i - 1 ORDER BY i)
         FROM generate_series(1, cardinality(msgs)) AS i,
              (SELECT coalesce(max(c.next_offset), 0) AS next_offset
                 FROM adstream.consumed_offset c
                 JOIN adstream.pipeline p ON p.id = c.pipeline_id
                WHERE p.name = m_feed.pipeline AND c.topic = 'm'
                  AND c.partition = m_feed.part) AS n),
      array_fill(kafka_ts, ARRAY[cardinality(msgs)]))
$$;
CREATE FUNCTION m_ev(id text, typ text, t text, usr text DEFAULT 'u',
                     ad text DEFAULT 'ad-a', cost text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
  SELECT json_strip_nulls(json_build_object(
           'event_id', id, 'event_type', typ, 'ad_id', ad, 'event_time', t,
           'user_id', usr, 'store_id', 's', 'cost', cost::numeric))::text
$$;
CREATE FUNCTION m_ord(id text, usr text, t text, amount numeric DEFAULT 10)
RETURNS text LANGUAGE sql AS $$
  SELECT json_build_object('order_id', id, 'user_id', usr, 'store_id', 's',
                           'order_time', t, 'amount', amount, 'currency', 'USD')::text
$$;
CREATE VIEW m_events AS
  SELECT p.name AS pipeline, e.event_id, e.event_time, e.expires_at
    FROM adstream.event e JOIN adstream.pipeline p ON p.id = e.pipeline_id;

-------------------------------------------------------------------------------
-- Consumed Kafka time
-------------------------------------------------------------------------------
SELECT adstream.create_pipeline('mp', max_event_age => '1 hour');
-- nothing consumed yet: the clock; an unknown pipeline: NULL
SELECT adstream.consumed_time('mp'), adstream.consumed_time('nosuch');
-- the slowest partition that had messages lately
SELECT * FROM m_feed('mp', ARRAY[m_ev('p0', 'click', '2025-06-01T00:09:00Z')],
                     '2025-06-01 00:10:00+00', part => 0);
SELECT * FROM m_feed('mp', ARRAY[m_ev('p1', 'click', '2025-06-01T00:19:00Z')],
                     '2025-06-01 00:20:00+00', part => 1);
SELECT adstream.consumed_time('mp');
-- an older Kafka timestamp never takes a partition back
SELECT * FROM m_feed('mp', ARRAY[m_ev('p2', 'click', '2025-06-01T00:04:00Z')],
                     '2025-06-01 00:05:00+00', part => 0);
SELECT partition, next_offset, kafka_time FROM adstream.consumed_offset c
  JOIN adstream.pipeline p ON p.id = c.pipeline_id AND p.name = 'mp' ORDER BY partition;
-- a partition idle for longer than idle_timeout (1 minute) holds nothing back
UPDATE adstream.consumed_offset SET updated_at = updated_at - interval '2 minutes'
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'mp') AND partition = 0;
SELECT adstream.consumed_time('mp');
-- when all are idle, the newest counts
UPDATE adstream.consumed_offset SET updated_at = updated_at - interval '2 minutes'
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'mp');
SELECT adstream.consumed_time('mp');
-- and it is never later than the clock
SET adstream.clock_override = '2025-06-01 00:15:00+00';
SELECT adstream.consumed_time('mp');
SET adstream.clock_override = '2025-06-20 00:00:00+00';
SELECT adstream.drop_pipeline('mp');

-------------------------------------------------------------------------------
-- expire_events: by consumed Kafka time, bounded, idempotent, and never
-- before a duplicate would be too old to be accepted anyway
-------------------------------------------------------------------------------
-- events are kept max(dedup_horizon, attribution_window) = 1 hour, exactly
-- max_event_age
SELECT adstream.create_pipeline('mx', max_event_age => '1 hour', dedup_horizon => '1 hour',
                                attribution_window => '0', minute_retention => '1 hour',
                                hour_retention => '1 day');
SELECT * FROM m_feed('mx', ARRAY[
  m_ev('x1', 'impression', '2025-06-01T00:01:00Z'),
  m_ev('x2', 'impression', '2025-06-01T00:02:00Z'),
  m_ev('x3', 'click', '2025-06-01T00:03:00Z'),
  m_ev('x4', 'impression', '2025-06-01T00:04:00Z'),
  m_ev('x5', 'click', '2025-06-01T00:05:00Z')], '2025-06-01 00:10:00+00');
SELECT event_id, expires_at FROM m_events WHERE pipeline = 'mx' ORDER BY event_id;
-- the clock is 19 days ahead, but only 00:10 was consumed: nothing expires
SELECT adstream.consumed_time('mx');
SELECT adstream.expire_events('mx') AS expired;
-- x1 again, with a Kafka timestamp exactly max_event_age after it: still
-- accepted by age, so it must still be found as a duplicate, and it is
-- (consumed time is now its expiry instant: it is not past it)
SELECT * FROM m_feed('mx', ARRAY[m_ev('x1', 'impression', '2025-06-01T00:01:00Z')],
                     '2025-06-01 01:01:00+00');
SELECT adstream.consumed_time('mx');
SELECT adstream.expire_events('mx') AS expired;
SELECT count(*) AS kept FROM m_events WHERE pipeline = 'mx';
-- later Kafka time: x1, x2, x3 are past their expiry; at most 2 per call
SELECT * FROM m_feed('mx', ARRAY[m_ev('y1', 'impression', '2025-06-01T01:03:00Z')],
                     '2025-06-01 01:03:30+00');
SELECT adstream.expire_events('mx', 2) AS expired;
SELECT adstream.expire_events('mx', 2) AS expired;
SELECT adstream.expire_events('mx', 2) AS expired;
SELECT event_id FROM m_events WHERE pipeline = 'mx' ORDER BY event_id;
-- x1 once more: too old now, so no duplicate was missed; x4 is still a duplicate
SELECT * FROM m_feed('mx', ARRAY[m_ev('x1', 'impression', '2025-06-01T00:01:00Z'),
                                 m_ev('x4', 'impression', '2025-06-01T00:04:00Z')],
                     '2025-06-01 01:03:30+00');
SELECT d.reason FROM adstream.dead_letter d
  JOIN adstream.pipeline p ON p.id = d.pipeline_id AND p.name = 'mx';
-- the counts never changed: every x was counted once
SELECT sum(impressions) AS impressions, sum(clicks) AS clicks
  FROM adstream.ad_minute_stats WHERE pipeline = 'mx';

-- a pipeline fed without coordinates has no Kafka time: the clock is all
-- there is
SELECT adstream.create_pipeline('mw', max_event_age => '1 hour', dedup_horizon => '1 hour',
                                attribution_window => '0', minute_retention => '1 hour');
SELECT accepted FROM adstream.ingest('mw',
  ARRAY[convert_to(m_ev('w1', 'click', '2025-06-01T00:01:00Z'), 'UTF8')],
  kafka_timestamps => ARRAY['2025-06-01 00:02:00+00'::timestamptz]);
SELECT adstream.consumed_time('mw');
SELECT adstream.expire_events('mw') AS expired;
SELECT adstream.drop_pipeline('mw');

-- bounds and names
SELECT adstream.expire_events('mx', 0);
SELECT adstream.expire_events(max_rows => NULL);
SELECT adstream.expire_events('nosuch') AS expired;

-------------------------------------------------------------------------------
-- Events an order may still need are kept
-------------------------------------------------------------------------------
SELECT adstream.create_pipeline('mv', max_event_age => '1 hour', dedup_horizon => '1 hour',
                                attribution_window => '1 hour', minute_retention => '1 hour');
SELECT adstream.create_orders_pipeline('mo', 'mv', click_window => '1 hour', view_window => '0',
                                       grace_period => '1 minute', max_event_age => '1 hour',
                                       minute_retention => '1 hour', hour_retention => '4 hours');
SELECT * FROM m_feed('mv', ARRAY[m_ev('v1', 'click', '2025-06-01T00:00:00Z', 'mu', 'ad-v1')],
                     '2025-06-01 00:00:00+00');
SELECT * FROM m_feed('mv', ARRAY[m_ev('v2', 'click', '2025-06-01T00:30:00Z', 'mu', 'ad-v2')],
                     '2025-06-01 00:30:00+00');
SELECT * FROM m_feed('mv', ARRAY[m_ev('v3', 'click', '2025-06-01T02:00:00Z', 'mu', 'ad-v3')],
                     '2025-06-01 02:00:00+00');
SELECT * FROM m_feed('mv', ARRAY[m_ev('v4', 'click', '2025-06-01T03:30:00Z', 'mu2', 'ad-v4')],
                     '2025-06-01 03:30:00+00');
SELECT * FROM m_feed('mv', ARRAY[m_ev('v9', 'click', '2025-06-01T05:00:00Z', 'other')],
                     '2025-06-01 05:00:00+00');
-- an order at 02:40 needs v3 (clicks count for an hour); it waits out its
-- grace period while the orders consumer reaches 05:00 too
SELECT * FROM m_feed('mo', ARRAY[m_ord('mo1', 'mu', '2025-06-01T02:40:00Z')],
                     '2025-06-01 02:40:00+00');
SELECT * FROM m_feed('mo', ARRAY[m_ord('mo2', 'nobody', '2025-06-01T05:00:00Z')],
                     '2025-06-01 05:00:00+00');
SELECT adstream.consumed_time('mv') AS mv_consumed, adstream.consumed_time('mo') AS mo_consumed;
SELECT event_id, expires_at FROM m_events WHERE pipeline = 'mv' ORDER BY event_id;
-- v1 and v2 go; v3, though past its expiry, stays for the pending order
SELECT adstream.expire_events('mv') AS expired;
SELECT event_id FROM m_events WHERE pipeline = 'mv' ORDER BY event_id;
SET adstream.clock_override = '2025-06-20 00:01:00+00';
SELECT * FROM adstream.attribute_orders('mo');
SELECT order_id, attribution, touch_event_id FROM adstream.attributed_order a
  JOIN adstream.pipeline p ON p.id = a.pipeline_id AND p.name = 'mo' ORDER BY order_id;
-- nothing pending: v3 goes.  v4 (until 04:30) stays: an order up to
-- max_event_age (1 hour) older than the orders consumer's 05:00 is still
-- accepted, and may need it
SELECT adstream.expire_events('mv') AS expired;
SELECT event_id FROM m_events WHERE pipeline = 'mv' ORDER BY event_id;
-- and here it is: an order of 04:15, arriving at 05:00
SELECT * FROM m_feed('mo', ARRAY[m_ord('mo3', 'mu2', '2025-06-01T04:15:00Z', 25)],
                     '2025-06-01 05:00:00+00');
SET adstream.clock_override = '2025-06-20 00:02:00+00';
SELECT * FROM adstream.attribute_orders('mo');
SELECT order_id, attribution, touch_event_id FROM adstream.attributed_order a
  JOIN adstream.pipeline p ON p.id = a.pipeline_id AND p.name = 'mo' ORDER BY order_id;
-- both consumers move on to 06:00: v4 goes
SELECT * FROM m_feed('mv', ARRAY[m_ev('v10', 'click', '2025-06-01T06:00:00Z', 'other')],
                     '2025-06-01 06:00:00+00');
SELECT * FROM m_feed('mo', ARRAY[m_ord('mo4', 'nobody', '2025-06-01T06:00:00Z')],
                     '2025-06-01 06:00:00+00');
SELECT adstream.expire_events('mv') AS expired;
SELECT event_id FROM m_events WHERE pipeline = 'mv' ORDER BY event_id;
-- an orders pipeline has no events of its own to expire
SELECT adstream.expire_events('mo') AS expired;

-------------------------------------------------------------------------------
-- expire_orders: done orders past expires_at (order time + dedup_horizon,
-- 2 hours here) in the orders pipeline's consumed Kafka time
-------------------------------------------------------------------------------
CREATE VIEW m_orders AS
  SELECT a.order_id, a.state, a.order_time, a.expires_at FROM adstream.attributed_order a
    JOIN adstream.pipeline p ON p.id = a.pipeline_id AND p.name = 'mo';
SELECT * FROM m_orders ORDER BY order_id;
-- consumed 06:00: mo1 (done, until 04:40) goes
SELECT adstream.expire_orders('mo') AS expired;
SELECT adstream.expire_orders('mo') AS expired;
-- consumed 08:30: mo2 and mo3 go, one per call; mo4 (until 08:00) stays pending
SELECT * FROM m_feed('mo', ARRAY[m_ord('mo5', 'nobody', '2025-06-01T08:30:00Z')],
                     '2025-06-01 08:30:00+00');
SELECT adstream.expire_orders('mo', 1) AS expired;
SELECT adstream.expire_orders('mo', 1) AS expired;
SELECT adstream.expire_orders('mo', 1) AS expired;
SELECT * FROM m_orders ORDER BY order_id;
-- once decided, it goes too
SET adstream.clock_override = '2025-06-20 00:03:00+00';
SELECT * FROM adstream.attribute_orders('mo');
SELECT adstream.expire_orders('mo') AS expired;
SELECT * FROM m_orders ORDER BY order_id;
-- an expired order id sent again is too old by then; a remembered one is a duplicate
SELECT * FROM m_feed('mo', ARRAY[m_ord('mo1', 'mu', '2025-06-01T02:40:00Z'),
                                 m_ord('mo5', 'nobody', '2025-06-01T08:30:00Z')],
                     '2025-06-01 08:30:00+00');
SELECT adstream.expire_orders('mo', 0);
-- an ad-events pipeline has no orders
SELECT adstream.expire_orders('mv') AS expired;

-------------------------------------------------------------------------------
-- rollup_stats: minutes past minute_retention (1 hour) into hours, hours
-- past hour_retention (1 day) into days; the views add up the same
-------------------------------------------------------------------------------
SELECT adstream.create_pipeline('mr', max_event_age => '1 hour', minute_retention => '1 hour',
                                hour_retention => '1 day');
SELECT adstream.create_pipeline('mf', max_event_age => '1 hour', minute_retention => '1 hour',
                                hour_retention => '1 day', emit_mode => 'final',
                                allowed_lateness => '1 day');
CREATE TEMP TABLE m_batches (n int, kafka_ts timestamptz, msgs text[]);
INSERT INTO m_batches VALUES
  (1, '2025-06-10 00:30:00+00', ARRAY[
      m_ev('r1', 'impression', '2025-06-10T00:00:30Z', cost => '0.5'),
      m_ev('r2', 'click', '2025-06-10T00:01:10Z', cost => '1.25'),
      m_ev('r3', 'impression', '2025-06-10T00:01:50Z', ad => 'ad-b'),
      m_ev('r4', 'impression', '2025-06-10T00:01:59.999999Z')]),
  (2, '2025-06-10 01:10:00+00', ARRAY[
      m_ev('r5', 'impression', '2025-06-10T00:59:00Z'),
      m_ev('r6', 'click', '2025-06-10T01:00:00Z', ad => 'ad-b', cost => '2'),
      m_ev('r7', 'impression', '2025-06-10T01:05:00Z', ad => 'ad-b')]),
  (3, '2025-06-10 12:00:00+00', ARRAY[
      m_ev('r8', 'impression', '2025-06-10T11:59:30Z')]);
SELECT b.n, f.* FROM m_batches b, m_feed('mr', b.msgs, b.kafka_ts) f ORDER BY b.n;
SELECT b.n, f.* FROM m_batches b, m_feed('mf', b.msgs, b.kafka_ts) f ORDER BY b.n;
SELECT adstream.fold_minute_stats() > 0 AS folded;

CREATE VIEW m_tables AS
  SELECT p.name,
         (SELECT count(*) FROM adstream.minute_stat s WHERE s.pipeline_id = p.id) AS minutes,
         (SELECT count(*) FROM adstream.minute_stat s WHERE s.pipeline_id = p.id AND s.pending) AS pending,
         (SELECT count(*) FROM adstream.hour_stat s WHERE s.pipeline_id = p.id) AS hours,
         (SELECT count(*) FROM adstream.day_stat s WHERE s.pipeline_id = p.id) AS days
    FROM adstream.pipeline p WHERE p.name IN ('mr', 'mf');
CREATE TEMP TABLE m_hourly AS SELECT * FROM adstream.ad_hourly_stats WHERE pipeline IN ('mr', 'mf');
CREATE TEMP TABLE m_daily AS SELECT * FROM adstream.ad_daily_stats WHERE pipeline IN ('mr', 'mf');
-- rows of the views that differ from the snapshots
CREATE TEMP VIEW m_changed AS
  SELECT 'hourly' AS view, count(*) AS changed_rows FROM (
    (SELECT * FROM m_hourly EXCEPT SELECT * FROM adstream.ad_hourly_stats WHERE pipeline IN ('mr', 'mf'))
    UNION ALL
    (SELECT * FROM adstream.ad_hourly_stats WHERE pipeline IN ('mr', 'mf') EXCEPT SELECT * FROM m_hourly)) AS d
  UNION ALL
  SELECT 'daily', count(*) FROM (
    (SELECT * FROM m_daily EXCEPT SELECT * FROM adstream.ad_daily_stats WHERE pipeline IN ('mr', 'mf'))
    UNION ALL
    (SELECT * FROM adstream.ad_daily_stats WHERE pipeline IN ('mr', 'mf') EXCEPT SELECT * FROM m_daily)) AS d;
SELECT * FROM m_tables ORDER BY name;
SELECT ad_id, window_start, impressions, clicks, spend FROM m_hourly
 WHERE pipeline = 'mr' ORDER BY window_start, ad_id;

-- consumed 12:00: the minutes of 00:00 to 01:05 are past retention, 11:59 is not
SELECT adstream.consumed_time('mr');
SELECT adstream.rollup_stats('mr', 4) AS moved;
SELECT * FROM m_changed;
SELECT adstream.rollup_stats('mr', 4) AS moved;
SELECT adstream.rollup_stats('mr', 4) AS moved;
SELECT * FROM m_tables ORDER BY name;
SELECT * FROM m_changed;
SELECT ad_id, window_start, impressions, clicks, spend_micros FROM adstream.hour_stat h
  JOIN adstream.pipeline p ON p.id = h.pipeline_id AND p.name = 'mr' ORDER BY window_start, ad_id;

-- emit_mode final: windows waiting to be emitted stay however old they are
SELECT adstream.rollup_stats('mf') AS moved;
SELECT * FROM m_tables ORDER BY name;
-- once the watermark passes them (allowed_lateness 0), they are emitted and can go
SELECT adstream.alter_pipeline('mf', allowed_lateness => '0');
SELECT adstream.fold_minute_stats() AS folded;
SELECT count(*) AS records FROM adstream.outbox o
  JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'mf';
SELECT adstream.rollup_stats('mf') AS moved;
SELECT adstream.rollup_stats('mf') AS moved;
SELECT * FROM m_tables ORDER BY name;
SELECT * FROM m_changed;

-- consumed 10:00 the next day: hours of the first day past hour_retention
-- go into days, except 11:00 (until 12:00 + 1 day); the daily view is the
-- same, the hourly view lost the three hours rolled up (and has r9's)
SELECT * FROM m_feed('mr', ARRAY[m_ev('r9', 'click', '2025-06-11T09:59:00Z', ad => 'ad-b')],
                     '2025-06-11 10:00:00+00');
SELECT adstream.fold_minute_stats() AS folded;
INSERT INTO m_daily SELECT * FROM adstream.ad_daily_stats
 WHERE pipeline = 'mr' AND window_start = '2025-06-11 00:00:00+00';
SELECT adstream.rollup_stats('mr') AS moved;
SELECT adstream.rollup_stats('mr') AS moved;
SELECT * FROM m_tables ORDER BY name;
SELECT * FROM m_changed;
SELECT ad_id, window_start, impressions, clicks, spend FROM m_hourly WHERE pipeline = 'mr'
EXCEPT SELECT ad_id, window_start, impressions, clicks, spend FROM adstream.ad_hourly_stats
 WHERE pipeline = 'mr' ORDER BY window_start, ad_id;
SELECT ad_id, window_start, impressions, clicks, spend_micros FROM adstream.day_stat d
  JOIN adstream.pipeline p ON p.id = d.pipeline_id AND p.name = 'mr' ORDER BY ad_id;
SELECT ad_id, window_start, impressions, clicks, spend FROM adstream.ad_daily_stats
 WHERE pipeline = 'mr' ORDER BY window_start, ad_id;
SELECT adstream.rollup_stats('mr', -1);

-- revenue: mo1 (02:40, 10) and mo3 (04:15, 25); consumed 08:30, minute
-- retention 1 hour, hour retention 4 hours: both minutes go into hours,
-- the hour of 02:00 into its day
SELECT adstream.consumed_time('mo');
CREATE TEMP TABLE m_rev_hourly AS SELECT * FROM adstream.ad_revenue_hourly WHERE pipeline = 'mo';
CREATE TEMP TABLE m_rev_daily AS SELECT * FROM adstream.ad_revenue_daily WHERE pipeline = 'mo';
SELECT ad_id, window_start, orders, click_orders, revenue FROM adstream.ad_revenue_minute
 WHERE pipeline = 'mo' ORDER BY window_start;
SELECT adstream.rollup_stats('mo', 1) AS moved;
SELECT adstream.rollup_stats('mo', 1) AS moved;
SELECT (SELECT count(*) FROM (SELECT * FROM m_rev_hourly
                              EXCEPT SELECT * FROM adstream.ad_revenue_hourly WHERE pipeline = 'mo') x)
       AS hourly_changed;
SELECT adstream.rollup_stats('mo', 1) AS moved;
SELECT adstream.rollup_stats('mo', 1) AS moved;
SELECT (SELECT count(*) FROM (SELECT * FROM m_rev_daily
                              EXCEPT SELECT * FROM adstream.ad_revenue_daily WHERE pipeline = 'mo') x)
       + (SELECT count(*) FROM (SELECT * FROM adstream.ad_revenue_daily WHERE pipeline = 'mo'
                                EXCEPT SELECT * FROM m_rev_daily) x) AS daily_changed;
SELECT 'minute' AS t, count(*) FROM adstream.revenue_minute r JOIN adstream.pipeline p ON p.id = r.pipeline_id AND p.name = 'mo'
UNION ALL SELECT 'hour', count(*) FROM adstream.revenue_hour r JOIN adstream.pipeline p ON p.id = r.pipeline_id AND p.name = 'mo'
UNION ALL SELECT 'day', count(*) FROM adstream.revenue_day r JOIN adstream.pipeline p ON p.id = r.pipeline_id AND p.name = 'mo';
SELECT ad_id, window_start, orders, revenue FROM adstream.ad_revenue_hourly
 WHERE pipeline = 'mo' ORDER BY window_start;
SELECT ad_id, window_start, orders, revenue FROM adstream.ad_revenue_daily
 WHERE pipeline = 'mo' ORDER BY window_start, ad_id;

-- retention options: minutes at least max_event_age, hours at least minutes
SELECT adstream.create_pipeline('mbad', max_event_age => '2 hours', minute_retention => '1 hour');
SELECT adstream.create_pipeline('mbad', minute_retention => '2 days', hour_retention => '1 day');
SELECT adstream.create_pipeline('mbad', minute_retention => '3651 days', hour_retention => '3651 days');
SELECT adstream.create_pipeline('mbad', hour_retention => '3651 days');
SELECT adstream.alter_pipeline('mr', minute_retention => '59 minutes');
SELECT adstream.alter_pipeline('mr', max_event_age => '2 hours', minute_retention => '1 hour');
SELECT adstream.alter_pipeline('mr', hour_retention => '30 minutes');
SELECT adstream.create_orders_pipeline('mbad', 'mv', click_window => '1 hour', view_window => '0',
                                       minute_retention => '1 hour');
SELECT name, max_event_age, minute_retention, hour_retention FROM adstream.list_pipelines()
 WHERE name IN ('mr', 'mbad') ORDER BY name;

-------------------------------------------------------------------------------
-- prune_outbox: what every sink of the pipeline has, at most max_rows
-------------------------------------------------------------------------------
CREATE VIEW m_outbox AS
  SELECT o.id, o.payload::jsonb ->> 'order_id' AS order_id FROM adstream.outbox o
    JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'mo';
SELECT order_id FROM m_outbox ORDER BY id;
SELECT adstream.create_sink('mo', 'k1', topic => 'orders-1', bootstrap_servers => 'localhost:1',
                            enabled => false);
SELECT adstream.create_sink('mo', 'k2', topic => 'orders-2', bootstrap_servers => 'localhost:1',
                            enabled => false);
-- k1 has them all, k2 the first three
UPDATE adstream.sink SET acked_id = (SELECT max(id) FROM m_outbox) WHERE name = 'k1';
UPDATE adstream.sink SET acked_id = (SELECT id FROM m_outbox ORDER BY id OFFSET 2 LIMIT 1)
 WHERE name = 'k2';
SELECT adstream.prune_outbox('mo', 2) AS pruned;
SELECT adstream.prune_outbox('mo', 2) AS pruned;
SELECT adstream.prune_outbox('mo', 2) AS pruned;
SELECT order_id FROM m_outbox ORDER BY id;
UPDATE adstream.sink SET acked_id = (SELECT max(id) FROM m_outbox) WHERE name = 'k2';
SELECT adstream.prune_outbox('mo', 1) AS pruned;
SELECT adstream.prune_outbox('mo') AS pruned;
SELECT count(*) AS left FROM m_outbox;
-- a pipeline without sinks keeps its records
SELECT adstream.prune_outbox('mf') AS pruned;
SELECT count(*) > 0 AS mf_records_kept FROM adstream.outbox o
  JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'mf';

-------------------------------------------------------------------------------
-- run_maintenance, maintain and the bookkeeping
-------------------------------------------------------------------------------
CREATE TEMP TABLE m_before AS SELECT task, runs, rows_total FROM adstream.maintenance_status;
CREATE TEMP VIEW m_status AS
  SELECT s.task, s.scheduled_by, s.runs - b.runs AS new_runs, s.rows_total - b.rows_total AS new_rows,
         s.last_rows, s.last_runner, s.last_error,
         s.last_started IS NOT NULL AND s.last_finished >= s.last_started AS timed,
         s.last_error_at IS NOT NULL AS error_at
    FROM adstream.maintenance_status s JOIN m_before b USING (task);
SELECT * FROM adstream.run_maintenance('vacuum');
SELECT * FROM adstream.run_maintenance(max_rows => 0);
-- everything the above left to do, in steps of 3 rows, a transaction each
CALL adstream.maintain(max_rows => 3, time_budget => '10 seconds');
SELECT task, new_runs > 0 AS ran, last_runner, last_error FROM m_status ORDER BY task;
-- and so there is nothing left
SELECT * FROM adstream.run_maintenance();
SELECT task, last_rows FROM m_status ORDER BY task;

-- new work for every task: consumed 01:40, x4, x5 and z1 (until 01:30)
-- expire, and the minutes of 00:03 to 00:05 pass minute_retention; mo5
-- (until 10:30) expires once mo6 is consumed (11:00), and mo6's record is
-- delivered; the revenue hour of 04:00 passes hour_retention
SELECT * FROM m_feed('mx', ARRAY[m_ev('z1', 'click', '2025-06-01T00:30:00Z')],
                     '2025-06-01 01:10:00+00');
SELECT * FROM m_feed('mx', ARRAY[m_ev('z2', 'click', '2025-06-01T01:39:00Z')],
                     '2025-06-01 01:40:00+00');
SELECT * FROM m_feed('mo', ARRAY[m_ord('mo6', 'nobody', '2025-06-01T10:59:00Z')],
                     '2025-06-01 11:00:00+00');
SET adstream.clock_override = '2025-06-20 00:04:00+00';
SELECT * FROM adstream.attribute_orders('mo');
UPDATE adstream.sink SET acked_id = (SELECT max(id) FROM m_outbox) WHERE name IN ('k1', 'k2');
TRUNCATE m_before;
INSERT INTO m_before SELECT task, runs, rows_total FROM adstream.maintenance_status;
SELECT * FROM adstream.run_maintenance();
SELECT * FROM adstream.run_maintenance();
SELECT * FROM m_status ORDER BY task;
SELECT * FROM adstream.run_maintenance('prune_outbox', 5, runner => 'nightly');
SELECT task, new_runs, last_runner FROM m_status ORDER BY task;
-- an error fails only its task's step, and is recorded
BEGIN;
ALTER TABLE adstream.outbox RENAME TO outbox_gone;
SELECT * FROM adstream.run_maintenance();
SELECT task, new_runs, last_rows, last_runner, last_error, error_at FROM m_status ORDER BY task;
ROLLBACK;

-- pg_cron is not installed here: scheduling says so, unscheduling finds nothing
DO $$
BEGIN
  PERFORM adstream.schedule_maintenance();
EXCEPTION WHEN undefined_object THEN
  RAISE NOTICE '%', replace(SQLERRM, current_database(), '<database>');
END
$$;
SELECT adstream.schedule_maintenance(max_rows => 0);
SELECT adstream.unschedule_maintenance();
SELECT DISTINCT scheduled_by FROM adstream.maintenance_status;

-------------------------------------------------------------------------------
-- Cleanup
-------------------------------------------------------------------------------
SELECT adstream.drop_pipeline('mo');
SELECT adstream.drop_pipeline(name) FROM unnest(ARRAY['mv', 'mx', 'mr', 'mf']) AS name;
DROP VIEW m_events, m_orders, m_tables, m_changed, m_outbox, m_status;
DROP FUNCTION m_feed, m_ev, m_ord;
RESET adstream.clock_override;
