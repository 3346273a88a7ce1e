-- Union pipelines: region identity, the options of union pipelines and
-- their sources, record validation, merging by (record UUID, version) in
-- message order (duplicates, stale versions, replays below the stored
-- offset), per-source offsets, the outbox, the union views, orders
-- records, expiry and drops.  Records are fed with adstream.ingest(),
-- source naming the region whose cluster they come from.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
SET adstream.clock_override = '2026-03-01 12:00:00+00';

-- region identity: the instance's region is the default of new pipelines
SELECT adstream.instance_region();
SET adstream.region = 'eu-west';
SELECT adstream.instance_region();
SET adstream.region = 'eu west';
SET adstream.region = 'us-east';
SELECT adstream.create_pipeline('ads-us', emit_mode => 'changes');
SELECT adstream.create_pipeline('ads-ap', region => 'ap-south');
SELECT name, region FROM adstream.list_pipelines() WHERE name LIKE 'ads-%' ORDER BY name;
RESET adstream.region;
-- an order's UUID is name-based on (region, order id)
SELECT adstream.order_uuid('eu-west', 'o-1') <> adstream.order_uuid('us-east', 'o-1') AS region_matters,
       adstream.order_uuid('a', 'b' || chr(1) || 'c')
         <> adstream.order_uuid('a' || chr(1) || 'b', 'c') AS no_ambiguity;

-- helpers: the output record of a window (as an ad-events pipeline writes
-- it) and a batch from one region's cluster at given offsets of partition 0
CREATE FUNCTION u_rec(region text, ad text, minute text, version bigint,
                      impressions bigint, clicks bigint DEFAULT 0, final boolean DEFAULT false)
RETURNS text LANGUAGE sql AS $$
  SELECT adstream._record_payload(adstream.window_uuid(region, ad, minute::timestamptz),
           version, 'ads', region, ad, minute::timestamptz, impressions, clicks,
           clicks * 1000, impressions, clicks, clicks * 1000, final)
$$;
CREATE FUNCTION u_feed(pipeline text, source text, first_offset bigint, msgs text[],
                       kafka_ts timestamptz DEFAULT '2026-03-01 12:00:00+00')
RETURNS TABLE (accepted bigint, duplicates bigint, rejected bigint, skipped bigint)
LANGUAGE sql AS $$
  SELECT * FROM adstream.ingest(pipeline,
      (SELECT array_agg(convert_to(m, 'UTF8') ORDER BY i) FROM unnest(msgs) WITH ORDINALITY AS u(m, i)),
      'stats',
      (SELECT array_agg(0) FROM unnest(msgs)),
      (SELECT array_agg(first_offset + i - 1 ORDER BY i) FROM unnest(msgs) WITH ORDINALITY AS u(m, i)),
      (SELECT array_agg(kafka_ts) FROM unnest(msgs)),
      source => source)
$$;

-- options
SELECT adstream.create_union_pipeline('u', records => 'events');
SELECT adstream.create_union_pipeline('u', retention => '30 seconds');
SELECT adstream.create_union_pipeline('u', retention => '1 month');
SELECT adstream.create_union_pipeline('u');
SELECT adstream.create_union_pipeline('u');
SELECT name, kind, emit_mode, minute_retention FROM adstream.list_pipelines() WHERE name = 'u';
SELECT adstream.add_union_source('ads-us', 'us-east', 'broker-us:9092', 'stats');
SELECT adstream.add_union_source('nope', 'us-east', 'broker-us:9092', 'stats');
SELECT adstream.add_union_source('u', 'us east', 'broker-us:9092', 'stats');
SELECT adstream.add_union_source('u', 'us-east', 'broker-us:9092', 'stats/1');
SELECT adstream.add_union_source('u', 'us-east', ' ', 'stats');
SELECT adstream.add_union_source('u', 'us-east', 'broker-us:9092', 'stats',
                                 kafka_properties => '{"isolation.level": "read_uncommitted"}');
SELECT adstream.add_union_source('u', 'us-east', 'broker-us:9092', 'stats', enabled => false);
SELECT adstream.add_union_source('u', 'eu-west', 'broker-eu:9092', 'stats', enabled => false);
SELECT adstream.add_union_source('u', 'eu-west', 'broker-eu:9092', 'stats');
SELECT adstream.alter_union_source('u', 'ap-south', enabled => true);
SELECT adstream.alter_union_source('u', 'eu-west', topic => '');
SELECT adstream.alter_pipeline('u', topic => 'stats', bootstrap_servers => 'b:9092');
SELECT adstream.alter_pipeline('u', workers => 2);
SELECT adstream.alter_pipeline('u', batch_size => 500);
SELECT adstream.ingest('u', ARRAY['{}'::bytea]);
SELECT adstream.ingest('ads-us', ARRAY['{}'::bytea], source => 'us-east');
-- at most 16 sources
SELECT adstream.add_union_source('u', 'r' || i, 'b:9092', 'stats', enabled => false)
  FROM generate_series(1, 14) AS i;
SELECT adstream.add_union_source('u', 'r15', 'b:9092', 'stats', enabled => false);
SELECT adstream.drop_union_source('u', 'r' || i) FROM generate_series(1, 14) AS i;
SELECT adstream.drop_union_source('u', 'r1');
SELECT adstream.drop_union_source('u', 'r1', if_exists => true);
SELECT pipeline, region, topic, enabled, worker_state FROM adstream.union_source_status ORDER BY region;

-- merging: versions in order, then a duplicate, a replay of the same
-- version and a late older version; records of two regions never collide
SELECT * FROM u_feed('u', 'us-east', 0, ARRAY[
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 1, 10),
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 2, 15, 1),
  u_rec('us-east', 'ad-2', '2026-03-01 11:00', 1, 3)]);
SELECT * FROM u_feed('u', 'eu-west', 0, ARRAY[
  u_rec('eu-west', 'ad-1', '2026-03-01 11:00', 1, 7),
  u_rec('eu-west', 'ad-1', '2026-03-01 11:00', 1, 7)]);
SELECT * FROM u_feed('u', 'us-east', 3, ARRAY[
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 2, 15, 1),
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 1, 10),
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 4, 20, 2, true),
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 3, 18, 2)]);
-- below the stored offset: already applied, skipped
SELECT * FROM u_feed('u', 'us-east', 5, ARRAY[
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 5, 99),
  u_rec('us-east', 'ad-1', '2026-03-01 11:00', 5, 25, 2, true)]);
SELECT source, topic, partition, next_offset, kafka_time FROM adstream.consumed_offset
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'u') ORDER BY source;
SELECT * FROM adstream.union_region_minute_stats ORDER BY region, ad_id;
SELECT * FROM adstream.union_minute_stats ORDER BY ad_id;
SELECT region, merged, duplicates, stale FROM adstream.union_source_status ORDER BY region;
-- the outbox holds every newer version once, in arrival order, byte for
-- byte as it came
SELECT o.version, o.payload::jsonb ->> 'region' AS region, o.payload::jsonb ->> 'ad_id' AS ad,
       o.record_uuid = adstream.window_uuid(o.payload::jsonb ->> 'region', o.payload::jsonb ->> 'ad_id',
                                            '2026-03-01 11:00+00') AS key_ok
  FROM adstream.outbox AS o
 WHERE o.pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'u') ORDER BY o.id;
SELECT count(*) AS byte_identical
  FROM adstream.outbox AS o
 WHERE o.payload = u_rec('us-east', 'ad-1', '2026-03-01 11:00', 4, 20, 2, true);

-- in one batch: a version after a newer one of the same record is stale
SELECT * FROM u_feed('u', 'eu-west', 2, ARRAY[
  u_rec('eu-west', 'ad-3', '2026-03-01 11:01', 2, 5),
  u_rec('eu-west', 'ad-3', '2026-03-01 11:01', 1, 4),
  u_rec('eu-west', 'ad-3', '2026-03-01 11:01', 3, 6)]);
SELECT ad_id, window_start, version, impressions FROM adstream.union_region_minute_stats
 WHERE ad_id = 'ad-3';

-- bad records are dead letters with a reason, never an error
SELECT * FROM u_feed('u', 'eu-west', 5, ARRAY[
  'not json',
  '{"record_uuid": "x"}',
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"version": 1', '"version": 0'),
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"version": 1', '"version": 1.5'),
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"impressions": 1', '"impressions": -1'),
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"impressions": 1', '"impressions": "1"'),
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"final": false', '"final": "no"'),
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"ad_id": "ad-1"', '"ad_id": "ad-9"'),
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"window_start_ms": 1772362920000', '"window_start_ms": 1772362920001'),
  replace(u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1), '"version": 1', '"version": 99999999999999999999'),
  u_rec('us-east', 'ad-1', '2026-03-01 11:02', 1, 1),
  u_rec('eu-west', 'ad-1', '2026-03-01 11:02', 1, 1)]);
SELECT "offset", reason, detail FROM adstream.dead_letter
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'u') ORDER BY "offset";

-- a union of attributed-orders records
SELECT adstream.create_union_pipeline('u-orders', records => 'attributed_orders');
CREATE FUNCTION u_order(region text, id text, version bigint, amount_micros bigint,
                        ad text DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
  SELECT json_build_object('record_uuid', adstream.order_uuid(region, id), 'version', version,
           'pipeline', 'orders', 'region', region, 'order_id', id,
           'order_time_ms', 1772366400000, 'amount_micros', amount_micros, 'currency', 'EUR',
           'attribution', CASE WHEN ad IS NULL THEN 'none' ELSE 'click' END, 'ad_id', ad)::text
$$;
SELECT * FROM adstream.ingest('u-orders', ARRAY[
  convert_to(u_order('eu-west', 'o-1', 1, 12500000, 'ad-1'), 'UTF8'),
  convert_to(u_order('eu-west', 'o-2', 1, 3000000), 'UTF8'),
  convert_to(u_order('eu-west', 'o-2', 1, 3000000), 'UTF8'),
  convert_to(replace(u_order('eu-west', 'o-3', 1, 1), '"currency" : "EUR"', '"currency" : "EURO"'), 'UTF8'),
  convert_to(u_order('us-east', 'o-1', 1, 1), 'UTF8')], source => 'eu-west');
SELECT * FROM adstream.union_orders ORDER BY region, order_id;
SELECT reason, detail FROM adstream.dead_letter
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'u-orders') ORDER BY id;

-- expiry: merged records older than the retention in consumed Kafka time
SELECT adstream.alter_pipeline('u', minute_retention => '1 hour');
SELECT * FROM u_feed('u', 'us-east', 7, ARRAY[u_rec('us-east', 'ad-1', '2026-03-01 11:05', 1, 1)],
                     kafka_ts => '2026-03-01 12:03:00+00');
SELECT * FROM u_feed('u', 'eu-west', 17, ARRAY[u_rec('eu-west', 'ad-1', '2026-03-01 11:05', 1, 1)],
                     kafka_ts => '2026-03-01 12:03:00+00');
SET adstream.clock_override = '2026-03-01 12:05:00+00';
SELECT adstream.consumed_time('u');
SELECT adstream.expire_events('u');
SELECT ad_id, window_start, region FROM adstream.union_region_minute_stats ORDER BY 1, 2, 3;

-- drops
SELECT adstream.drop_union_source('u', 'eu-west');
SELECT source, count(*) FROM adstream.consumed_offset
 WHERE pipeline_id = (SELECT id FROM adstream.pipeline WHERE name = 'u') GROUP BY source;
SELECT adstream.drop_pipeline('u');
SELECT adstream.drop_pipeline('u-orders');
SELECT (SELECT count(*) FROM adstream.union_record) AS records,
       (SELECT count(*) FROM adstream.union_source) AS sources,
       (SELECT count(*) FROM adstream.outbox) AS outbox;
SELECT adstream.drop_pipeline('ads-us');
SELECT adstream.drop_pipeline('ads-ap');
DROP FUNCTION u_rec, u_feed, u_order;
