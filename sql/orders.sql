-- Orders pipelines: options, order validation and dedup, attribution rules
-- at their boundaries, the grace period, revenue, output records and the
-- enrichment hook.  Time is adstream.clock_override throughout: orders are
-- fed without Kafka timestamps, so it is their reference time, and
-- adstream.attribute_orders() measures grace periods and backoffs with it.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET adstream.clock_override = '2026-03-01 12:00:00+00';

-- helpers of this suite: an ad event with a store, an order, and a batch
-- fed with one Kafka timestamp for all (or none)
CREATE FUNCTION o_ev(id text, typ text, ad text, t text, usr text,
                     store text DEFAULT 's1', campaign text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
  SELECT json_strip_nulls(json_build_object(
           'event_id', id, 'event_type', typ, 'ad_id', ad, 'event_time', t,
           'user_id', usr, 'store_id', store, 'campaign_id', campaign,
           'advertiser_id', 'adv-' || campaign))::text
$$;
CREATE FUNCTION o_ord(id text, usr text, t text, amount text,
                      currency text DEFAULT 'USD', store text DEFAULT 's1')
RETURNS text LANGUAGE sql AS $$
  SELECT format('{"order_id":%s,"user_id":%s,"store_id":%s,"order_time":%s,"amount":%s,"currency":%s}',
                to_json(id), to_json(usr), to_json(store), to_json(t), amount, to_json(currency))
$$;
CREATE FUNCTION o_feed(pipeline text, msgs text[], kafka_ts timestamptz DEFAULT NULL)
RETURNS TABLE (accepted bigint, duplicates bigint, rejected bigint, skipped bigint)
LANGUAGE sql AS $$
  SELECT * FROM adstream.ingest(pipeline,
      (SELECT array_agg(convert_to(m, 'UTF8') ORDER BY i)
         FROM unnest(msgs) WITH ORDINALITY AS u(m, i)),
      kafka_timestamps => CASE WHEN kafka_ts IS NOT NULL
                               THEN array_fill(kafka_ts, ARRAY[cardinality(msgs)]) END)
$$;
CREATE VIEW o_orders AS
  SELECT p.name AS pipeline, a.* FROM adstream.attributed_order a
    JOIN adstream.pipeline p ON p.id = a.pipeline_id;
CREATE VIEW o_out AS
  SELECT p.name AS pipeline, o.id, o.record_uuid, o.version, o.payload::jsonb AS r
    FROM adstream.outbox o JOIN adstream.pipeline p ON p.id = o.pipeline_id;

-------------------------------------------------------------------------------
-- Options
-------------------------------------------------------------------------------
SELECT adstream.create_pipeline('oev', region => 'eu-1', attribution_window => '2 days');

-- the events pipeline must exist and be an ad-events pipeline
SELECT adstream.create_orders_pipeline('ord', 'nosuch');
-- the rule
SELECT adstream.create_orders_pipeline('ord', 'oev', attribution_rule => 'first_click');
SELECT adstream.create_orders_pipeline('ord', 'oev', attribution_rule => NULL);
-- windows no longer than the events pipeline keeps its events: the default
-- click_window (7 days) is too long for oev (2 days), and so is 1 microsecond more
SELECT adstream.create_orders_pipeline('ord', 'oev');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '2 days 00:00:00.000001');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour', view_window => '3 days');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '0');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour', grace_period => '25 hours');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour', enrich_timeout => '0');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour', enrich_max_attempts => 0);
-- one record per order: emit_mode changes makes no sense
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour', emit_mode => 'changes');
-- the enrichment hook: a function(jsonb) returning jsonb, schema-qualified
CREATE FUNCTION public.hook_text_arg(o text) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{}'::jsonb $$;
CREATE FUNCTION public.hook_text_result(o jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
CREATE FUNCTION public.hook_two_args(o jsonb, x int) RETURNS jsonb LANGUAGE sql AS $$ SELECT o $$;
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour',
                                       enrich_function => 'public.no_such_hook');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour',
                                       enrich_function => 'public.hook_text_arg');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour',
                                       enrich_function => 'public.hook_text_arg(text)');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour',
                                       enrich_function => 'public.hook_text_result');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour',
                                       enrich_function => 'public.hook_two_args(jsonb, integer)');
-- nothing was created by the failed calls
SELECT count(*) AS pipelines FROM adstream.pipeline WHERE name = 'ord';

-- three orders pipelines on oev, one per rule: clicks count for an hour,
-- impressions for ten minutes
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour',
                                       view_window => '10 minutes');
SELECT adstream.create_orders_pipeline('ord-touch', 'oev', attribution_rule => 'last_touch',
                                       click_window => '1 hour', view_window => '10 minutes');
SELECT adstream.create_orders_pipeline('ord-click', 'oev', attribution_rule => 'last_click',
                                       click_window => '1 hour', view_window => '10 minutes');
SELECT adstream.create_orders_pipeline('ord', 'oev', click_window => '1 hour');
-- an orders pipeline is no events pipeline
SELECT adstream.create_orders_pipeline('ord-2', 'ord', click_window => '1 hour');
-- an orders pipeline takes the region of its events pipeline, never
-- matches against anything itself, and emits final records by default
SELECT name, kind, region, emit_mode, attribution_window, max_event_age, dedup_horizon
  FROM adstream.list_pipelines() WHERE name IN ('oev', 'ord', 'ord-click', 'ord-touch') ORDER BY name;
SELECT pipeline, events_pipeline, attribution_rule, pending, enriching, decided, enrich_function
  FROM adstream.order_status ORDER BY pipeline;

-- alter: errors name the option and change nothing
SELECT adstream.alter_orders_pipeline('oev', grace_period => '1 minute');
SELECT adstream.alter_orders_pipeline('nosuch', grace_period => '1 minute');
SELECT adstream.alter_orders_pipeline('ord', attribution_rule => 'linear');
SELECT adstream.alter_orders_pipeline('ord', click_window => '3 days');
SELECT adstream.alter_orders_pipeline('ord', view_window => '-1 second');
SELECT adstream.alter_orders_pipeline('ord', enrich_backoff => '2 days');
SELECT adstream.alter_orders_pipeline('ord', enrich_function => 'public.hook_text_result');
SELECT adstream.alter_orders_pipeline('ord', enrich_function => 'no_schema_hook');
SELECT adstream.alter_pipeline('ord', emit_mode => 'changes');
SELECT adstream.alter_pipeline('ord', emit_mode => 'bogus');
SELECT p.name, o.attribution_rule, o.click_window, o.view_window, o.grace_period,
       o.enrich_function, o.enrich_role, o.enrich_timeout, o.enrich_max_attempts, o.enrich_backoff
  FROM adstream.order_options o JOIN adstream.pipeline p ON p.id = o.pipeline_id
 ORDER BY p.name;
-- an events pipeline with orders pipelines on it cannot be dropped
SELECT adstream.drop_pipeline('oev');
SELECT count(*) AS still_there FROM adstream.pipeline WHERE name = 'oev';

-------------------------------------------------------------------------------
-- Order validation and deduplication (in a pipeline that emits nothing)
-------------------------------------------------------------------------------
SELECT adstream.create_orders_pipeline('ordv', 'oev', click_window => '1 hour',
                                       emit_mode => 'none');
SELECT * FROM o_feed('ordv', ARRAY[
  -- valid, in every accepted notation
  o_ord('v1', 'u-v', '2026-03-01T11:00:00Z', '10'),
  o_ord('v2', 'u-v', '2026-03-01T11:00:00Z', '"19.99"', 'eur'),
  '{"orderId":"v3","userId":7,"store":"s1","timestamp":1772362800000,"amount":1e2,"currency":"Gbp"}',
  '{"order_id":44,"user_id":"u-v","storeId":"s1","orderTime":"1772362800000","amount":0.000001,"currency":"JPY","note":{"x":[1]}}',
  -- missing and null required fields
  '{"user_id":"u","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  '{"order_id":"m2","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  '{"order_id":"m3","user_id":"u","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  '{"order_id":"m4","user_id":"u","store_id":"s1","amount":1,"currency":"USD"}',
  '{"order_id":"m5","user_id":"u","store_id":"s1","order_time":"2026-03-01T11:00:00Z","currency":"USD"}',
  '{"order_id":"m6","user_id":"u","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1}',
  '{"order_id":null,"user_id":"u","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  -- bad currencies
  o_ord('c1', 'u', '2026-03-01T11:00:00Z', '1', 'US'),
  o_ord('c2', 'u', '2026-03-01T11:00:00Z', '1', 'USDX'),
  o_ord('c3', 'u', '2026-03-01T11:00:00Z', '1', 'U$D'),
  '{"order_id":"c4","user_id":"u","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":840}',
  -- bad amounts
  o_ord('a1', 'u', '2026-03-01T11:00:00Z', '-5'),
  o_ord('a2', 'u', '2026-03-01T11:00:00Z', '1.1234567'),
  o_ord('a3', 'u', '2026-03-01T11:00:00Z', '"abc"'),
  o_ord('a4', 'u', '2026-03-01T11:00:00Z', '1000000000.000001'),
  o_ord('a5', 'u', '2026-03-01T11:00:00Z', 'true'),
  o_ord('a6', 'u', '2026-03-01T11:00:00Z', '[1]'),
  -- wrong types and values of the other fields
  '{"order_id":"t1","user_id":true,"store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  '{"order_id":"t2","user_id":"u","store_id":{"id":1},"order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  '{"order_id":1.5,"user_id":"u","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  '{"order_id":"","user_id":"u","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  o_ord('t5', 'u', 'yesterday', '1'),
  o_ord('t5b', 'u', '2026-03-01', '1'),
  '{"order_id":"t6","user_id":"u","store_id":"s1","order_time":false,"amount":1,"currency":"USD"}',
  '{"order_id":"t7","user_id":"u","store_id":"s1","store":"s2","order_time":"2026-03-01T11:00:00Z","amount":1,"currency":"USD"}',
  -- too old (max_event_age 1 day before the clock) and too far ahead (5 minutes)
  o_ord('t8', 'u', '2026-02-28T11:59:59Z', '1'),
  o_ord('t9', 'u', '2026-03-01T12:05:00.000001Z', '1'),
  -- and the edges that are still fine
  o_ord('t10', 'u', '2026-02-28T12:00:00Z', '1'),
  o_ord('t11', 'u', '2026-03-01T12:05:00Z', '1000000000'),
  -- not JSON, not an object
  '{"order_id":',
  '[{"order_id":"x"}]',
  '"order"']);
SELECT d.reason, d.detail
  FROM adstream.dead_letter d JOIN adstream.pipeline p ON p.id = d.pipeline_id AND p.name = 'ordv'
 ORDER BY d.id;
SELECT order_id, user_id, store_id, order_time, amount_micros, currency, state,
       due_at - received_at AS grace, expires_at - order_time AS kept_for
  FROM o_orders WHERE pipeline = 'ordv' ORDER BY order_id;

-- duplicates by order id, within a batch and across batches: the first wins
SELECT * FROM o_feed('ordv', ARRAY[
  o_ord('d1', 'u-d', '2026-03-01T11:00:00Z', '1'),
  o_ord('d1', 'u-d', '2026-03-01T11:00:00Z', '2'),
  o_ord('d2', 'u-d', '2026-03-01T11:00:00Z', '3'),
  o_ord('d1', 'u-other', '2026-03-01T11:30:00Z', '4', 'EUR')]);
SELECT * FROM o_feed('ordv', ARRAY[
  o_ord('d2', 'u-d', '2026-03-01T11:00:00Z', '5'),
  o_ord('d3', 'u-d', '2026-03-01T11:00:00Z', '6'),
  -- an integer id is the same order as its string
  '{"order_id":"44","user_id":"u-x","store_id":"s1","order_time":"2026-03-01T11:00:00Z","amount":7,"currency":"USD"}',
  -- a UUID id is the same order in any letter case
  o_ord('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'u-d', '2026-03-01T11:00:00Z', '8'),
  o_ord('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'u-d', '2026-03-01T11:00:00Z', '9')]);
SELECT * FROM o_feed('ordv', ARRAY[o_ord('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'u-d', '2026-03-01T11:00:00Z', '10')]);
SELECT order_id, user_id, order_time, amount_micros, currency
  FROM o_orders WHERE pipeline = 'ordv' AND user_id IN ('u-d', 'u-x', 'u-v') ORDER BY order_id;
-- a rolled-back batch leaves no order behind
BEGIN;
SELECT * FROM o_feed('ordv', ARRAY[o_ord('r1', 'u-r', '2026-03-01T11:00:00Z', '1')]);
ROLLBACK;
SELECT * FROM o_feed('ordv', ARRAY[o_ord('r1', 'u-r', '2026-03-01T11:00:00Z', '2')]);
SELECT amount_micros FROM o_orders WHERE pipeline = 'ordv' AND order_id = 'r1';

-- emit_mode none: decided, counted, but no output records
SET adstream.clock_override = '2026-03-01 12:00:30+00';
SELECT * FROM adstream.attribute_orders('ordv');
SELECT pipeline, pending, decided, attributed_click, attributed_view, unattributed, emitted
  FROM adstream.order_status WHERE pipeline = 'ordv';
SELECT count(*) AS records FROM o_out WHERE pipeline = 'ordv';
-- a duplicate of a decided order is still a duplicate
SELECT * FROM o_feed('ordv', ARRAY[o_ord('d1', 'u-d', '2026-03-01T11:00:00Z', '99')]);
SELECT count(*) FILTER (WHERE state = 'pending') AS pending, count(*) AS orders
  FROM o_orders WHERE pipeline = 'ordv';
SET adstream.clock_override = '2026-03-01 12:00:00+00';

-------------------------------------------------------------------------------
-- Attribution rules at their boundaries.  Every order is at 11:00:00 at
-- store s1; each user has their own story.
-------------------------------------------------------------------------------
SELECT * FROM o_feed('oev', ARRAY[
  -- a click exactly click_window (1 hour) before the order counts ...
  o_ev('c-edge', 'click', 'ad-1', '2026-03-01T10:00:00Z', 'u-edge', campaign => 'camp-1'),
  -- ... one microsecond earlier does not
  o_ev('c-old', 'click', 'ad-1', '2026-03-01T09:59:59.999999Z', 'u-old'),
  -- a click at the order's instant counts, one after it does not
  o_ev('c-same', 'click', 'ad-2', '2026-03-01T11:00:00Z', 'u-same', campaign => 'camp-2'),
  o_ev('c-after', 'click', 'ad-1', '2026-03-01T11:00:00.000001Z', 'u-after'),
  -- another store, no store, another user: no match
  o_ev('c-store', 'click', 'ad-1', '2026-03-01T10:55:00Z', 'u-store', store => 's2'),
  o_ev('c-nostore', 'click', 'ad-1', '2026-03-01T10:55:00Z', 'u-store', store => NULL),
  o_ev('c-user', 'click', 'ad-1', '2026-03-01T10:55:00Z', 'u-user-2'),
  -- two clicks, then a later impression: the clicks' latest, or the impression
  o_ev('c-mix-1', 'click', 'ad-1', '2026-03-01T10:10:00Z', 'u-mix', campaign => 'camp-1'),
  o_ev('c-mix-2', 'click', 'ad-1', '2026-03-01T10:20:00Z', 'u-mix', campaign => 'camp-1b'),
  o_ev('i-mix', 'impression', 'ad-2', '2026-03-01T10:59:00Z', 'u-mix', campaign => 'camp-2'),
  -- an impression exactly view_window (10 minutes) before counts ...
  o_ev('i-view', 'impression', 'ad-2', '2026-03-01T10:50:00Z', 'u-view', campaign => 'camp-2'),
  -- ... one microsecond earlier does not, though it is within click_window
  o_ev('i-view-old', 'impression', 'ad-2', '2026-03-01T10:49:59.999999Z', 'u-view-old'),
  -- ties at one instant: a click beats an impression, then the greater event id
  o_ev('c-tie-1', 'click', 'ad-3', '2026-03-01T10:58:00Z', 'u-tie'),
  o_ev('c-tie-2', 'click', 'ad-3', '2026-03-01T10:58:00Z', 'u-tie'),
  o_ev('z-tie', 'impression', 'ad-4', '2026-03-01T10:58:00Z', 'u-tie'),
  o_ev('i-tie-1', 'impression', 'ad-4', '2026-03-01T10:57:00Z', 'u-tie2'),
  o_ev('i-tie-2', 'impression', 'ad-5', '2026-03-01T10:57:00Z', 'u-tie2'),
  -- an older click against a newer impression outside view_window
  o_ev('c-far', 'click', 'ad-1', '2026-03-01T10:30:00Z', 'u-far', campaign => 'camp-1c'),
  o_ev('i-far', 'impression', 'ad-2', '2026-03-01T10:45:00Z', 'u-far')],
  kafka_ts => '2026-03-01 11:00:00+00');

CREATE TEMP TABLE o_rule_orders AS
SELECT o_ord('o-' || substr(u, 3), u, '2026-03-01T11:00:00Z', amount, currency) AS msg
  FROM (VALUES ('u-edge', '10.50', 'USD'), ('u-old', '1', 'USD'), ('u-same', '20', 'EUR'),
               ('u-after', '1', 'USD'), ('u-store', '1', 'USD'), ('u-user', '1', 'USD'),
               ('u-mix', '30.25', 'USD'), ('u-view', '5', 'EUR'), ('u-view-old', '1', 'USD'),
               ('u-tie', '7', 'USD'), ('u-tie2', '8', 'USD'), ('u-far', '9', 'USD'))
       AS v(u, amount, currency);
SELECT * FROM o_feed('ord', ARRAY(SELECT msg FROM o_rule_orders));
SELECT * FROM o_feed('ord-touch', ARRAY(SELECT msg FROM o_rule_orders));
SELECT * FROM o_feed('ord-click', ARRAY(SELECT msg FROM o_rule_orders));

-- the grace period (30 seconds from arrival) is not over: nothing is decided
SET adstream.clock_override = '2026-03-01 12:00:29.999999+00';
SELECT * FROM adstream.attribute_orders();
SELECT pipeline, pending, decided FROM adstream.order_status
 WHERE pipeline LIKE 'ord%' ORDER BY pipeline;
-- now it is, for every orders pipeline at once
SET adstream.clock_override = '2026-03-01 12:00:30+00';
SELECT * FROM adstream.attribute_orders();
SELECT * FROM adstream.attribute_orders();
SELECT order_id,
       max(attribution || ' ' || coalesce(touch_event_id, '-')) FILTER (WHERE pipeline = 'ord') AS last_click_then_view,
       max(attribution || ' ' || coalesce(touch_event_id, '-')) FILTER (WHERE pipeline = 'ord-touch') AS last_touch,
       max(attribution || ' ' || coalesce(touch_event_id, '-')) FILTER (WHERE pipeline = 'ord-click') AS last_click
  FROM o_orders WHERE pipeline IN ('ord', 'ord-touch', 'ord-click')
 GROUP BY order_id ORDER BY order_id;
SELECT pipeline, pending, decided, attributed_click, attributed_view, unattributed, emitted
  FROM adstream.order_status WHERE pipeline LIKE 'ord%' ORDER BY pipeline;
-- what was decided, and when
SELECT order_id, state, attribution, ad_id, campaign_id, advertiser_id, touch_time,
       decided_at, enrichment_status, version
  FROM o_orders WHERE pipeline = 'ord' ORDER BY order_id;

-------------------------------------------------------------------------------
-- Output records: one per order, version 1, keyed by adstream.order_uuid()
-------------------------------------------------------------------------------
SELECT adstream.order_uuid('eu-1', 'o-edge') = adstream.order_uuid('eu-1', 'o-edge') AS stable,
       adstream.order_uuid('eu-1', 'o-edge') <> adstream.order_uuid('eu-1', 'o-edge ') AS exact,
       adstream.order_uuid('eu-1', 'ad-1') <> adstream.window_uuid('eu-1', 'ad-1', '2026-03-01 11:00+00')
         AS not_a_window,
       substr(adstream.order_uuid('eu-1', 'o-edge')::text, 15, 1) AS uuid_version;
SELECT count(*) AS records, count(DISTINCT record_uuid) AS uuids,
       bool_and(version = 1 AND (r ->> 'version')::int = 1) AS all_version_1,
       bool_and(record_uuid = adstream.order_uuid('eu-1', r ->> 'order_id')
                AND (r ->> 'record_uuid')::uuid = record_uuid) AS keyed_by_order_id,
       bool_and(r ->> 'pipeline' = 'ord' AND r ->> 'region' = 'eu-1') AS pipeline_and_region
  FROM o_out WHERE pipeline = 'ord';
SELECT r ->> 'order_id' AS order_id, r ->> 'attribution' AS attribution, r ->> 'ad_id' AS ad,
       r ->> 'touch_event_id' AS touch, r ->> 'touch_time' AS touch_time,
       r -> 'amount' AS amount, r -> 'amount_micros' AS micros, r ->> 'currency' AS cur,
       r ->> 'enrichment_status' AS enrichment_status, jsonb_typeof(r -> 'enrichment') AS enrichment
  FROM o_out WHERE pipeline = 'ord' ORDER BY 1;
-- one record in full
SELECT jsonb_pretty(r) FROM o_out WHERE pipeline = 'ord' AND r ->> 'order_id' = 'o-edge';

-------------------------------------------------------------------------------
-- Revenue per ad and currency: minutes, hours, days
-------------------------------------------------------------------------------
SELECT * FROM o_feed('oev', ARRAY[
  o_ev('c-d1', 'click', 'ad-9', '2026-02-28T23:58:00Z', 'u-d1', campaign => 'camp-9'),
  o_ev('c-d2', 'click', 'ad-9', '2026-03-01T00:00:30Z', 'u-d2', campaign => 'camp-9'),
  o_ev('c-d3', 'click', 'ad-9', '2026-03-01T00:40:00Z', 'u-d3', campaign => 'camp-9')],
  kafka_ts => '2026-03-01 11:00:00+00');
SELECT * FROM o_feed('ord', ARRAY[
  o_ord('o-d1', 'u-d1', '2026-02-28T23:59:10Z', '100'),
  o_ord('o-d2a', 'u-d2', '2026-03-01T00:01:00Z', '1.5'),
  o_ord('o-d2b', 'u-d2', '2026-03-01T00:01:59.999999Z', '2.5'),
  o_ord('o-d2c', 'u-d2', '2026-03-01T00:02:00Z', '3', 'EUR'),
  o_ord('o-d3', 'u-d3', '2026-03-01T00:59:00Z', '4')]);
SET adstream.clock_override = '2026-03-01 12:01:00+00';
SELECT * FROM adstream.attribute_orders('ord');
SELECT ad_id, campaign_id, currency, window_start, window_end, orders, click_orders, revenue
  FROM adstream.ad_revenue_minute WHERE pipeline = 'ord' ORDER BY ad_id, window_start, currency;
SELECT ad_id, campaign_id, currency, window_start, window_end, orders, click_orders, revenue
  FROM adstream.ad_revenue_hourly WHERE pipeline = 'ord' ORDER BY ad_id, window_start, currency;
SELECT ad_id, campaign_id, currency, window_start, window_end, orders, click_orders, revenue
  FROM adstream.ad_revenue_daily WHERE pipeline = 'ord' ORDER BY ad_id, window_start, currency;
-- the revenue adds up to the attributed orders, per pipeline
SELECT p.name,
       (SELECT sum(revenue_micros) FROM adstream.revenue_minute r WHERE r.pipeline_id = p.id) AS revenue,
       (SELECT sum(amount_micros) FROM adstream.attributed_order a
         WHERE a.pipeline_id = p.id AND a.attribution <> 'none') AS attributed_amounts
  FROM adstream.pipeline p WHERE p.kind = 'orders' ORDER BY p.name;

-------------------------------------------------------------------------------
-- The grace period: an order may arrive before its click
-------------------------------------------------------------------------------
SET adstream.clock_override = '2026-03-01 12:10:00+00';
SELECT * FROM o_feed('ord', ARRAY[
  o_ord('o-grace', 'u-grace', '2026-03-01T12:09:00Z', '11'),
  o_ord('o-miss', 'u-miss', '2026-03-01T12:09:00Z', '12')]);
SELECT order_id, state, due_at, attribution FROM o_orders
 WHERE pipeline = 'ord' AND order_id IN ('o-grace', 'o-miss') ORDER BY order_id;
SET adstream.clock_override = '2026-03-01 12:10:29.999999+00';
SELECT * FROM adstream.attribute_orders('ord');
SELECT pending FROM adstream.order_status WHERE pipeline = 'ord';
-- the click arrives within the grace period
SELECT * FROM o_feed('oev', ARRAY[
  o_ev('c-grace', 'click', 'ad-7', '2026-03-01T12:08:30Z', 'u-grace')],
  kafka_ts => '2026-03-01 12:10:15+00');
SET adstream.clock_override = '2026-03-01 12:10:30+00';
SELECT * FROM adstream.attribute_orders('ord');
SELECT pending FROM adstream.order_status WHERE pipeline = 'ord';
SELECT order_id, state, attribution, ad_id, touch_event_id, decided_at FROM o_orders
 WHERE pipeline = 'ord' AND order_id IN ('o-grace', 'o-miss') ORDER BY order_id;
-- the other click arrives after the grace period: the decision stands
SET adstream.clock_override = '2026-03-01 12:11:00+00';
SELECT * FROM o_feed('oev', ARRAY[
  o_ev('c-miss', 'click', 'ad-7', '2026-03-01T12:08:45Z', 'u-miss')],
  kafka_ts => '2026-03-01 12:11:00+00');
SELECT * FROM adstream.attribute_orders('ord');
-- and the order sent again is a duplicate
SELECT * FROM o_feed('ord', ARRAY[o_ord('o-miss', 'u-miss', '2026-03-01T12:09:00Z', '12')]);
SELECT * FROM adstream.attribute_orders('ord');
SELECT order_id, state, attribution, touch_event_id FROM o_orders
 WHERE pipeline = 'ord' AND order_id = 'o-miss';
SELECT r ->> 'order_id' AS order_id, count(*) AS records, max(version) AS version,
       max(r ->> 'attribution') AS attribution
  FROM o_out WHERE pipeline = 'ord' AND r ->> 'order_id' IN ('o-grace', 'o-miss')
 GROUP BY 1 ORDER BY 1;
-- alter_orders_pipeline applies to orders not decided yet
SELECT * FROM o_feed('ord', ARRAY[o_ord('o-alter', 'u-mix', '2026-03-01T11:00:00Z', '1')]);
SELECT adstream.alter_orders_pipeline('ord', attribution_rule => 'last_touch');
SET adstream.clock_override = '2026-03-01 12:11:30+00';
SELECT * FROM adstream.attribute_orders('ord');
SELECT order_id, attribution, touch_event_id FROM o_orders
 WHERE pipeline = 'ord' AND order_id IN ('o-mix', 'o-alter') ORDER BY order_id;
SELECT adstream.alter_orders_pipeline('ord', attribution_rule => 'last_click_then_view');

-------------------------------------------------------------------------------
-- The enrichment hook
-------------------------------------------------------------------------------
CREATE TABLE public.o_customer (user_id text PRIMARY KEY, tier text);
INSERT INTO public.o_customer VALUES ('u-mix', 'gold'), ('u-view', 'silver');
-- it sees the attributed order; it runs with search_path pg_catalog, so it
-- names its tables with their schema
CREATE FUNCTION public.hook_customer(o jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT coalesce((SELECT jsonb_build_object('tier', c.tier, 'seen_ad', o -> 'ad_id',
                                             'seen_attribution', o -> 'attribution',
                                             'seen_amount', o -> 'amount',
                                             'seen_status', o -> 'enrichment_status')
                     FROM public.o_customer c WHERE c.user_id = o ->> 'user_id'),
                  '{}')
$$;
CREATE FUNCTION public.hook_fail(o jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'customer service unavailable for order %', o ->> 'order_id';
END
$$;
CREATE FUNCTION public.hook_slow(o jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_sleep(2);
  RETURN '{"slept": true}';
END
$$;
CREATE FUNCTION public.hook_array(o jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT '[1, 2]'::jsonb $$;
CREATE FUNCTION public.hook_null(o jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT 'null'::jsonb $$;

SET adstream.clock_override = '2026-03-01 12:20:00+00';
SELECT adstream.create_orders_pipeline('ord-en', 'oev', click_window => '1 hour',
                                       view_window => '10 minutes', grace_period => '0',
                                       enrich_function => 'public.hook_customer',
                                       enrich_max_attempts => 3, enrich_backoff => '10 seconds');
SELECT enrich_function, enrich_role = session_user AS runs_as_creator
  FROM adstream.order_options o JOIN adstream.pipeline p ON p.id = o.pipeline_id
 WHERE p.name = 'ord-en';
-- a hook that works; with no grace period the order is decided and
-- enriched in one call
SELECT * FROM o_feed('ord-en', ARRAY[
  o_ord('e-1', 'u-mix', '2026-03-01T11:00:00Z', '30.25'),
  o_ord('e-2', 'u-view', '2026-03-01T11:00:00Z', '5', 'EUR'),
  o_ord('e-3', 'u-nobody', '2026-03-01T11:00:00Z', '1')]);
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT order_id, state, attribution, enrichment, enrichment_status, enrich_attempts, enrich_error
  FROM o_orders WHERE pipeline = 'ord-en' ORDER BY order_id;
SELECT r ->> 'order_id' AS order_id, r ->> 'enrichment' AS enrichment,
       r ->> 'enrichment_status' AS status, version
  FROM o_out WHERE pipeline = 'ord-en' ORDER BY id;
SELECT pipeline, decided, enriched, enrich_retries, enrich_failed, emitted, last_enrich_error
  FROM adstream.order_status WHERE pipeline = 'ord-en';

-- a failing hook is retried after 10, then 20 seconds; its third failure
-- is the last (enrich_max_attempts 3) and the order goes out without
SELECT adstream.alter_orders_pipeline('ord-en', enrich_function => 'public.hook_fail');
SELECT * FROM o_feed('ord-en', ARRAY[o_ord('e-4', 'u-mix', '2026-03-01T11:00:00Z', '2')]);
CREATE TEMP VIEW o_e4 AS
  SELECT state, due_at, enrich_attempts, enrichment_status, enrich_error, version
    FROM o_orders WHERE pipeline = 'ord-en' AND order_id = 'e-4';
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT * FROM o_e4;
SELECT pipeline, pending, enriching, enriched, enrich_retries, enrich_failed, emitted, last_enrich_error
  FROM adstream.order_status WHERE pipeline = 'ord-en';
SELECT count(*) AS records_while_enriching FROM o_out WHERE r ->> 'order_id' = 'e-4';
SET adstream.clock_override = '2026-03-01 12:20:09.999999+00';
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT * FROM o_e4;
SET adstream.clock_override = '2026-03-01 12:20:10+00';
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT * FROM o_e4;
SET adstream.clock_override = '2026-03-01 12:20:29.999999+00';
SELECT * FROM adstream.attribute_orders('ord-en');
SET adstream.clock_override = '2026-03-01 12:20:30+00';
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT * FROM o_e4;
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT r ->> 'attribution' AS attribution, r ->> 'touch_event_id' AS touch,
       jsonb_typeof(r -> 'enrichment') AS enrichment, r ->> 'enrichment_status' AS status, version
  FROM o_out WHERE r ->> 'order_id' = 'e-4';
SELECT pipeline, pending, enriching, enriched, enrich_retries, enrich_failed, emitted
  FROM adstream.order_status WHERE pipeline = 'ord-en';

-- a slow hook is interrupted after enrich_timeout, and that is a failure
SELECT adstream.alter_orders_pipeline('ord-en', enrich_function => 'public.hook_slow',
                                      enrich_timeout => '100 milliseconds',
                                      enrich_max_attempts => 1);
SELECT * FROM o_feed('ord-en', ARRAY[o_ord('e-5', 'u-view', '2026-03-01T11:00:00Z', '3')]);
CREATE TEMP TABLE o_t AS SELECT clock_timestamp() AS t0;
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT clock_timestamp() - t0 < interval '1.5 seconds' AS interrupted FROM o_t;
SELECT order_id, state, enrichment, enrichment_status, enrich_attempts, enrich_error
  FROM o_orders WHERE pipeline = 'ord-en' AND order_id = 'e-5';
-- the session is fine afterwards, and a real statement timeout still works
SET statement_timeout = '50ms';
SELECT pg_sleep(1);
RESET statement_timeout;

-- a hook returning JSON that is not an object fails too
SELECT adstream.alter_orders_pipeline('ord-en', enrich_function => 'public.hook_array');
SELECT * FROM o_feed('ord-en', ARRAY[o_ord('e-6', 'u-view', '2026-03-01T11:00:00Z', '4')]);
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT adstream.alter_orders_pipeline('ord-en', enrich_function => 'public.hook_null');
SELECT * FROM o_feed('ord-en', ARRAY[o_ord('e-7', 'u-view', '2026-03-01T11:00:00Z', '4')]);
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT order_id, state, enrichment, enrichment_status, enrich_attempts, enrich_error
  FROM o_orders WHERE pipeline = 'ord-en' AND order_id IN ('e-6', 'e-7') ORDER BY order_id;
SELECT pipeline, pending, enriching, enriched, enrich_retries, enrich_failed, emitted
  FROM adstream.order_status WHERE pipeline = 'ord-en';

-- removing the hook: an order waiting for a retry goes out without
-- enrichment, and later orders are done as soon as they are decided
SELECT adstream.alter_orders_pipeline('ord-en', enrich_function => 'public.hook_fail',
                                      enrich_max_attempts => 5);
SELECT * FROM o_feed('ord-en', ARRAY[o_ord('e-8', 'u-mix', '2026-03-01T11:00:00Z', '5')]);
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT adstream.alter_orders_pipeline('ord-en', enrich_function => '');
SELECT enrich_function, enrich_role FROM adstream.order_options o
  JOIN adstream.pipeline p ON p.id = o.pipeline_id WHERE p.name = 'ord-en';
SELECT * FROM o_feed('ord-en', ARRAY[o_ord('e-9', 'u-mix', '2026-03-01T11:00:00Z', '6')]);
SET adstream.clock_override = '2026-03-01 12:21:00+00';
SELECT * FROM adstream.attribute_orders('ord-en');
SELECT order_id, state, enrichment, enrichment_status, enrich_attempts, enrich_error, version
  FROM o_orders WHERE pipeline = 'ord-en' AND order_id IN ('e-8', 'e-9') ORDER BY order_id;
SELECT r ->> 'order_id' AS order_id, jsonb_typeof(r -> 'enrichment') AS enrichment,
       r ->> 'enrichment_status' AS status
  FROM o_out WHERE r ->> 'order_id' IN ('e-8', 'e-9') ORDER BY id;
SELECT pipeline, pending, enriching, decided, enriched, enrich_retries, enrich_failed, emitted
  FROM adstream.order_status WHERE pipeline = 'ord-en';
-- every order of the pipeline has exactly one record
SELECT count(*) AS orders,
       (SELECT count(*) FROM o_out WHERE pipeline = 'ord-en') AS records,
       (SELECT count(DISTINCT record_uuid) FROM o_out WHERE pipeline = 'ord-en') AS uuids
  FROM o_orders WHERE pipeline = 'ord-en';

-- attribute_orders names what it does not know
SELECT * FROM adstream.attribute_orders('oev');
SELECT * FROM adstream.attribute_orders('ord', 0);

-------------------------------------------------------------------------------
-- Dropping: orders pipelines first, then their events pipeline
-------------------------------------------------------------------------------
SELECT adstream.drop_pipeline('ord');
SELECT adstream.drop_pipeline('oev');
SELECT adstream.drop_pipeline(name) FROM adstream.pipeline
 WHERE kind = 'orders' AND name LIKE 'ord%' ORDER BY name;
SELECT adstream.drop_pipeline('oev');
SELECT (SELECT count(*) FROM adstream.attributed_order a
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = a.pipeline_id)) AS orphan_orders,
       (SELECT count(*) FROM adstream.revenue_minute r
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = r.pipeline_id)) AS orphan_revenue,
       (SELECT count(*) FROM adstream.order_options o
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = o.pipeline_id)) AS orphan_options,
       (SELECT count(*) FROM adstream.outbox o
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = o.pipeline_id)) AS orphan_records;

DROP VIEW o_e4, o_orders, o_out;
DROP TABLE public.o_customer;
DROP FUNCTION o_ev, o_ord, o_feed, public.hook_text_arg, public.hook_text_result,
  public.hook_two_args, public.hook_customer, public.hook_fail, public.hook_slow,
  public.hook_array, public.hook_null;
RESET adstream.clock_override;
