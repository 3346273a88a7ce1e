-- Aggregate increments: ingest appends them to minute_delta; a fold moves
-- them into minute_stat.  The views show the same totals before and after.
SET TimeZone = 'UTC';
-- start from folded state: earlier suites left increments behind
SELECT adstream.fold_minute_stats() > 0 AS folded_earlier_suites;
SELECT adstream.create_pipeline('fo');
CREATE TEMP VIEW fo_delta AS SELECT d.* FROM adstream.minute_delta d
  JOIN adstream.pipeline p ON p.id = d.pipeline_id AND p.name = 'fo';
CREATE TEMP VIEW fo_stat AS SELECT s.* FROM adstream.minute_stat s
  JOIN adstream.pipeline p ON p.id = s.pipeline_id AND p.name = 'fo';
SELECT * FROM feed('fo', ARRAY[
  ev('f1', 'impression', 'ad-1', '2026-01-01T00:05:10Z', extra => ',"cost":0.25'),
  ev('f2', 'click', 'ad-1', '2026-01-01T00:05:20Z', extra => ',"cost":1.5'),
  ev('f3', 'impression', 'ad-2', '2026-01-01T00:05:30Z'),
  ev('f4', 'impression', 'ad-1', '2026-01-01T00:06:00Z')]);
-- a second batch touches the same (ad, minute) again
SELECT * FROM feed('fo', ARRAY[
  ev('f5', 'impression', 'ad-1', '2026-01-01T00:05:40Z', extra => ',"cost":0.25'),
  ev('f6', 'click', 'ad-2', '2026-01-01T00:05:50Z')]);

CREATE TEMP TABLE before_fold AS
SELECT ad_id, window_start, impressions, clicks, spend, ctr
  FROM adstream.ad_minute_stats WHERE pipeline = 'fo';
SELECT * FROM before_fold ORDER BY window_start, ad_id;
-- one increment row per (ad, minute) per batch, nothing folded yet
SELECT count(*) AS deltas FROM fo_delta;
SELECT count(*) AS folded_rows FROM fo_stat;

-- bounded: one row per call when asked
SELECT adstream.fold_minute_stats(1) AS moved;
SELECT count(*) AS deltas FROM fo_delta;
SELECT count(*) AS differences FROM (
  (TABLE before_fold EXCEPT
   SELECT ad_id, window_start, impressions, clicks, spend, ctr
     FROM adstream.ad_minute_stats WHERE pipeline = 'fo')
  UNION ALL
  (SELECT ad_id, window_start, impressions, clicks, spend, ctr
     FROM adstream.ad_minute_stats WHERE pipeline = 'fo'
   EXCEPT TABLE before_fold)) d;

-- the rest, then nothing left: folding again changes nothing
SELECT adstream.fold_minute_stats() AS moved;
SELECT adstream.fold_minute_stats() AS moved;
SELECT count(*) AS deltas FROM fo_delta;
SELECT ad_id, window_start, impressions, clicks, spend_micros
  FROM fo_stat ORDER BY window_start, ad_id;
SELECT count(*) AS differences FROM (
  (TABLE before_fold EXCEPT
   SELECT ad_id, window_start, impressions, clicks, spend, ctr
     FROM adstream.ad_minute_stats WHERE pipeline = 'fo')
  UNION ALL
  (SELECT ad_id, window_start, impressions, clicks, spend, ctr
     FROM adstream.ad_minute_stats WHERE pipeline = 'fo'
   EXCEPT TABLE before_fold)) d;

-- new increments add to folded totals, in the views and after the next fold
SELECT * FROM feed('fo', ARRAY[ev('f7', 'click', 'ad-1', '2026-01-01T00:05:59Z',
                                  extra => ',"cost":2')]);
SELECT impressions, clicks, spend FROM adstream.ad_minute_stats
 WHERE pipeline = 'fo' AND ad_id = 'ad-1' AND window_start = '2026-01-01 00:05:00+00';
SELECT adstream.fold_minute_stats() AS moved;
SELECT impressions, clicks, spend_micros FROM fo_stat
 WHERE ad_id = 'ad-1' AND window_start = '2026-01-01 00:05:00+00';
SELECT impressions, clicks, spend FROM adstream.ad_hourly_stats
 WHERE pipeline = 'fo' AND ad_id = 'ad-1';

-- a fold that fails leaves every increment where it was
BEGIN;
SELECT * FROM feed('fo', ARRAY[ev('f8', 'impression', 'ad-3', '2026-01-01T00:07:00Z')]);
SAVEPOINT s;
SELECT adstream.fold_minute_stats() AS moved;
ROLLBACK TO s;
SELECT count(*) AS deltas FROM fo_delta;
COMMIT;
SELECT impressions FROM adstream.ad_minute_stats WHERE pipeline = 'fo' AND ad_id = 'ad-3';

-- invalid bounds
SELECT adstream.fold_minute_stats(0);
SELECT adstream.fold_minute_stats(NULL);
