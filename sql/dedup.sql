-- Duplicates within a batch and across batches; the first occurrence wins.
SET TimeZone = 'UTC';
SELECT adstream.create_pipeline('dd');

-- within one batch: e1 three times, e2 twice
SELECT * FROM feed('dd', ARRAY[
  ev('e1', 'impression', 'ad-1', '2026-01-01T00:05:00Z'),
  ev('e2', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
  ev('e1', 'impression', 'ad-1', '2026-01-01T00:05:00Z'),
  ev('e1', 'impression', 'ad-1', '2026-01-01T00:05:00Z'),
  ev('e2', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);

-- across batches: e1 again, and a new e3
SELECT * FROM feed('dd', ARRAY[
  ev('e1', 'impression', 'ad-1', '2026-01-01T00:05:00Z'),
  ev('e3', 'impression', 'ad-1', '2026-01-01T00:05:00Z')]);

-- a duplicate id with different content still counts as the first one
SELECT * FROM feed('dd', ARRAY[
  ev('e3', 'click', 'ad-7', '2026-01-01T00:08:00Z')]);

SELECT ad_id, window_start, impressions, clicks
  FROM adstream.ad_minute_stats WHERE pipeline = 'dd' ORDER BY ad_id;
SELECT event_id, event_type, ad_id FROM adstream.event a
  JOIN adstream.pipeline p ON p.id = a.pipeline_id AND p.name = 'dd'
 ORDER BY event_id;

-- dedup is per pipeline: the same ids count again in another pipeline
SELECT adstream.create_pipeline('dd2');
SELECT * FROM feed('dd2', ARRAY[ev('e1', 'impression', 'ad-1', '2026-01-01T00:05:00Z')]);

-- a rejected message does not consume its id: a valid resend still counts
SELECT * FROM feed('dd', ARRAY[ev('e9', 'view', 'ad-1', '2026-01-01T00:05:00Z')]);
SELECT * FROM feed('dd', ARRAY[ev('e9', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);

-- a rolled-back batch leaves no key behind
BEGIN;
SELECT * FROM feed('dd', ARRAY[ev('e10', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
ROLLBACK;
SELECT * FROM feed('dd', ARRAY[ev('e10', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);

-- a larger batch with many duplicates: 1000 events, 300 distinct ids
SELECT * FROM adstream.ingest('dd',
    (SELECT array_agg(convert_to(ev('bulk-' || (i % 300), 'impression', 'ad-' || (i % 7),
                                    '2026-01-01T00:09:00Z', 'u' || i), 'UTF8') ORDER BY i)
       FROM generate_series(1, 1000) i),
    kafka_timestamps => array_fill('2026-01-01 00:10:00+00'::timestamptz, ARRAY[1000]));
SELECT sum(impressions) FROM adstream.ad_minute_stats
 WHERE pipeline = 'dd' AND window_start = '2026-01-01 00:09:00+00';
-- the first occurrence in the batch is the one kept
SELECT event_id, user_id, ad_id FROM adstream.event
 WHERE event_id IN ('bulk-0', 'bulk-5', 'bulk-299') ORDER BY event_id;

-- Two different event keys with the same 32-bit hash (the key index is a
-- hash index, which returns both for either): two events, and each still
-- finds itself as a duplicate afterwards.
CREATE TEMP TABLE collision AS
WITH k AS (SELECT md5(i::text)::uuid AS u FROM generate_series(1, 300000) i)
SELECT a.u AS first, b.u AS second
  FROM k a JOIN k b ON uuid_hash(a.u) = uuid_hash(b.u) AND a.u < b.u
 ORDER BY 1, 2 LIMIT 1;
SELECT count(*) AS collisions_found FROM collision;
SELECT * FROM feed('dd', ARRAY[(SELECT ev(first::text, 'click', 'ad-h', '2026-01-01T00:09:00Z') FROM collision)]);
SELECT * FROM feed('dd', ARRAY[(SELECT ev(second::text, 'click', 'ad-h', '2026-01-01T00:09:00Z') FROM collision),
                               (SELECT ev(first::text, 'click', 'ad-h', '2026-01-01T00:09:00Z') FROM collision)]);
SELECT * FROM feed('dd', ARRAY[(SELECT ev(second::text, 'click', 'ad-h', '2026-01-01T00:09:00Z') FROM collision)]);
SELECT clicks FROM adstream.ad_minute_stats WHERE pipeline = 'dd' AND ad_id = 'ad-h';

-- a batch rolled back to a savepoint leaves no key behind either
BEGIN;
SAVEPOINT s;
SELECT * FROM feed('dd', ARRAY[ev('e11', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
ROLLBACK TO s;
SELECT * FROM feed('dd', ARRAY[ev('e11', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
COMMIT;
