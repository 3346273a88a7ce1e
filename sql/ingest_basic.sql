-- The core on well-formed events: fields, aliases, dimensions, cost.
SET TimeZone = 'UTC';
SELECT adstream.create_pipeline('basic');

SELECT * FROM feed('basic', ARRAY[
  ev('e1', 'impression', 'ad-1', '2026-01-01T00:05:10Z', 'u1',
     ',"campaign_id":"c-1","advertiser_id":"adv-1","store_id":"s-1","cost":0.0025,"region":"us-east"'),
  ev('e2', 'click', 'ad-1', '2026-01-01T00:05:59.999999Z', 'u2', ',"cost":1.5'),
  -- camelCase and short spellings; integer ids; cost as a string
  '{"eventId":"e3","type":"Impression","adId":42,"timestamp":1767226000000,"userId":7,"campaign":"c-9","cost":"0.1"}',
  -- unknown fields, nested or not, are ignored; null optionals count as absent
  '{"event_id":"e4","event_type":"click","ad_id":"ad-1","event_time":"2026-01-01T00:05:30Z","user_id":"u3","device":{"os":"ios","tags":[1,{"a":null}]},"store_id":null,"x":[]}',
  -- exponent notation in cost
  ev('e5', 'impression', 'ad-2', '2026-01-01T00:06:00Z', 'u4', ',"cost":2.5e-3'),
  -- zero cost, cost absent
  ev('e6', 'impression', 'ad-2', '2026-01-01T00:06:01Z', 'u4', ',"cost":0'),
  ev('e7', 'impression', 'ad-2', '2026-01-01T00:06:02Z', 'u4')
]);

SELECT ad_id, window_start, impressions, clicks, spend, ctr
  FROM adstream.ad_minute_stats WHERE pipeline = 'basic' ORDER BY window_start, ad_id;

SELECT event_id, user_id, event_time, event_type, ad_id, campaign_id,
       advertiser_id, store_id, cost_micros, region
  FROM adstream.event ORDER BY event_id;

-- UUID-form event ids are compared as UUIDs, in any letter case
SELECT * FROM feed('basic', ARRAY[
  ev('5B0E4D0C-8F1A-4C5E-9D2B-1F3A5C7E9B00', 'impression', 'ad-3', '2026-01-01T00:07:00Z'),
  ev('5b0e4d0c-8f1a-4c5e-9d2b-1f3a5c7e9b00', 'impression', 'ad-3', '2026-01-01T00:07:00Z')]);
SELECT event_key FROM adstream.event
 WHERE event_key = '5b0e4d0c-8f1a-4c5e-9d2b-1f3a5c7e9b00';

-- events are kept for the longer of dedup_horizon (2 days) and
-- attribution_window (7 days) after their event time
SELECT expires_at - event_time AS kept_for FROM adstream.event
 WHERE event_key = '5b0e4d0c-8f1a-4c5e-9d2b-1f3a5c7e9b00';

-- an empty batch is fine
SELECT * FROM adstream.ingest('basic', '{}');
-- an unknown pipeline is an error
SELECT * FROM adstream.ingest('nope', ARRAY['\x7b7d'::bytea]);
-- a NULL message is an empty message: a dead letter, not an error
SELECT * FROM adstream.ingest('basic', ARRAY[NULL::bytea]);
SELECT reason, detail, payload FROM adstream.dead_letter ORDER BY id DESC LIMIT 1;

-- attribution_window 0: events are kept only for dedup_horizon
SELECT adstream.create_pipeline('noattr', attribution_window => '0');
SELECT * FROM feed('noattr', ARRAY[ev('n1', 'click', 'ad-9', '2026-01-01T00:05:00Z')]);
SELECT a.expires_at - a.event_time AS kept_for FROM adstream.event a
  JOIN adstream.pipeline p ON p.id = a.pipeline_id WHERE p.name = 'noattr';
SELECT ad_id, clicks FROM adstream.ad_minute_stats WHERE pipeline = 'noattr';

-- costs: trailing zeros beyond 6 places are fine; 1000000 is the largest cost
SELECT * FROM feed('basic', ARRAY[
  ev('k1', 'click', 'ad-k', '2026-01-01T00:05:00Z', 'u1', ',"cost":1.0000000000000000000000000000000000000000'),
  ev('k2', 'click', 'ad-k', '2026-01-01T00:05:00Z', 'u1', ',"cost":1000000'),
  ev('k3', 'click', 'ad-k', '2026-01-01T00:05:00Z', 'u1', ',"cost":250000000000000000000000000000000e-30'),
  ev('k4', 'click', 'ad-k', '2026-01-01T00:05:00Z', 'u1', ',"cost":1000000.000001')]);
SELECT clicks, spend FROM adstream.ad_minute_stats WHERE ad_id = 'ad-k';
SELECT detail FROM adstream.dead_letter ORDER BY id DESC LIMIT 1;

-- a very long bad token is quoted in the detail, but the detail stays short
SELECT * FROM feed('basic', ARRAY['{"a":' || repeat('x', 5000) || '}']);
SELECT reason, length(detail) <= 1000 AS short FROM adstream.dead_letter ORDER BY id DESC LIMIT 1;
