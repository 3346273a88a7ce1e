-- Output records (emit_mode changes): each fold writes a new version of
-- every window it changed to adstream.outbox, keyed by a UUID name-based on
-- (region, ad, window start).
SET TimeZone = 'UTC';
SELECT adstream.fold_minute_stats() >= 0 AS folded_earlier_suites;
SELECT adstream.create_pipeline('em', region => 'eu-west', emit_mode => 'changes');
SELECT adstream.create_pipeline('quiet');   -- emit_mode none: no records
SELECT adstream.create_pipeline('bad-mode', emit_mode => 'sometimes');
SELECT adstream.create_pipeline('bad-region', region => 'eu west');

-- the UUID is deterministic, shared by every version, distinct per key
SELECT adstream.window_uuid('eu-west', 'ad-1', '2026-01-01 00:05:00+00');
SELECT adstream.window_uuid('eu-west', 'ad-1', '2026-01-01 00:05:00+00')
     = adstream.window_uuid('eu-west', 'ad-1', '2026-01-01 05:35:00+05:30') AS same_instant,
       adstream.window_uuid('eu-west', 'ad-1', '2026-01-01 00:05:00+00')
     <> adstream.window_uuid('us-east', 'ad-1', '2026-01-01 00:05:00+00') AS region_matters,
       adstream.window_uuid('eu-west', 'ad-1', '2026-01-01 00:05:00+00')
     <> adstream.window_uuid('eu-west', 'ad-1', '2026-01-01 00:06:00+00') AS window_matters,
       adstream.window_uuid('a', 'b' || chr(1) || 'c', '2026-01-01 00:05:00+00')
     <> adstream.window_uuid('a' || chr(1) || 'b', 'c', '2026-01-01 00:05:00+00') AS no_ambiguity;

SELECT * FROM feed('em', ARRAY[
  ev('o1', 'impression', 'ad-1', '2026-01-01T00:05:10Z', extra => ',"cost":0.25'),
  ev('o2', 'click', 'ad-1', '2026-01-01T00:05:20Z', extra => ',"cost":1.5'),
  ev('o3', 'impression', 'ad-2', '2026-01-01T00:06:00Z')]);
SELECT * FROM feed('quiet', ARRAY[ev('q1', 'impression', 'ad-1', '2026-01-01T00:05:10Z')]);
SELECT adstream.fold_minute_stats() AS moved;

CREATE TEMP VIEW em_out AS
SELECT o.id, o.record_uuid, o.version, o.payload::jsonb AS r
  FROM adstream.outbox o JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'em';
-- version 1 of each window, with deltas equal to the totals
SELECT r ->> 'ad_id' AS ad, r ->> 'window_start' AS window_start, r ->> 'window_end' AS window_end,
       version, r -> 'impressions' AS imp, r -> 'clicks' AS clk, r -> 'spend_micros' AS spend,
       r -> 'delta_impressions' AS d_imp, r -> 'delta_clicks' AS d_clk,
       r -> 'delta_spend_micros' AS d_spend, r -> 'final' AS final, r ->> 'region' AS region
  FROM em_out ORDER BY id;
SELECT bool_and(record_uuid = (r ->> 'record_uuid')::uuid
                AND record_uuid = adstream.window_uuid('eu-west', r ->> 'ad_id',
                                                       (r ->> 'window_start')::timestamptz)
                AND version = (r ->> 'version')::bigint) AS keys_consistent
  FROM em_out;
SELECT count(*) AS quiet_records FROM adstream.outbox o
  JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'quiet';

-- more events for ad-1's window: version 2 carries the new totals and only the delta
SELECT * FROM feed('em', ARRAY[
  ev('o4', 'impression', 'ad-1', '2026-01-01T00:05:40Z', extra => ',"cost":0.5'),
  ev('o1', 'impression', 'ad-1', '2026-01-01T00:05:10Z', extra => ',"cost":0.25')]);  -- a duplicate
SELECT adstream.fold_minute_stats() AS moved;
SELECT r ->> 'ad_id' AS ad, version, r -> 'impressions' AS imp, r -> 'clicks' AS clk,
       r -> 'spend_micros' AS spend, r -> 'delta_impressions' AS d_imp,
       r -> 'delta_clicks' AS d_clk, r -> 'delta_spend_micros' AS d_spend
  FROM em_out ORDER BY id;
-- the versions of one window share its UUID; deltas add up to the totals
SELECT record_uuid = adstream.window_uuid('eu-west', 'ad-1', '2026-01-01 00:05:00+00') AS ad1_key,
       count(*) AS versions, max(version) AS latest,
       sum((r ->> 'delta_impressions')::bigint) AS sum_d_imp,
       sum((r ->> 'delta_spend_micros')::bigint) AS sum_d_spend
  FROM em_out WHERE r ->> 'ad_id' = 'ad-1' GROUP BY record_uuid;
-- and match the live totals
SELECT impressions, clicks, spend FROM adstream.ad_minute_stats
 WHERE pipeline = 'em' AND ad_id = 'ad-1';

-- a fold with nothing to move emits nothing; a failed fold emits nothing
SELECT adstream.fold_minute_stats() AS moved;
BEGIN;
SELECT * FROM feed('em', ARRAY[ev('o5', 'click', 'ad-2', '2026-01-01T00:06:30Z')]);
SAVEPOINT s;
SELECT adstream.fold_minute_stats() AS moved;
ROLLBACK TO s;
SELECT count(*) AS records FROM em_out;
COMMIT;

-- switching emission off stops records; on again, the next change is the next version
SELECT adstream.alter_pipeline('em', emit_mode => 'none');
SELECT adstream.fold_minute_stats() AS moved;
SELECT count(*) AS records FROM em_out;
SELECT adstream.alter_pipeline('em', emit_mode => 'changes');
SELECT * FROM feed('em', ARRAY[ev('o6', 'click', 'ad-2', '2026-01-01T00:06:40Z')]);
SELECT adstream.fold_minute_stats() AS moved;
SELECT version, r -> 'clicks' AS clk, r -> 'delta_clicks' AS d_clk FROM em_out
 WHERE r ->> 'ad_id' = 'ad-2' ORDER BY id;
SELECT adstream.alter_pipeline('em', emit_mode => 'sometimes');
SELECT adstream.alter_pipeline('em', allowed_lateness => '-1 second');
SELECT adstream.alter_pipeline('em', idle_timeout => '0');

-- dropping the pipeline drops its records
SELECT adstream.drop_pipeline('em');
SELECT count(*) AS orphan_records FROM adstream.outbox o
 WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = o.pipeline_id);

-- emit_mode final: one record when the watermark (the slowest partition's
-- latest event time, minus allowed_lateness) passes the window's end, then
-- a correction version for late events; an idle partition stops holding
-- the watermark back
SELECT adstream.create_pipeline('fin', emit_mode => 'final', allowed_lateness => '30 seconds',
                                idle_timeout => '1 hour');
CREATE TEMP VIEW fin_out AS
SELECT o.id, o.version, o.payload::jsonb AS r FROM adstream.outbox o
  JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'fin';
SELECT adstream.watermark('fin') AS no_events_no_watermark;
SELECT * FROM feed_at('fin', ARRAY[ev('f1', 'impression', 'ad-1', '2026-01-01T00:05:10Z'),
                             ev('f2', 'impression', 'ad-1', '2026-01-01T00:05:20Z'),
                             ev('f3', 'click', 'ad-1', '2026-01-01T00:05:15Z')],
                       ARRAY[0, 0, 1], ARRAY[0, 1, 0]::bigint[]);
SELECT adstream.fold_minute_stats() AS moved;
SELECT adstream.watermark('fin');      -- 00:05:15 (partition 1) - 30 s
SELECT count(*) AS records_before_close FROM fin_out;
SELECT * FROM feed_at('fin', ARRAY[ev('f4', 'impression', 'ad-1', '2026-01-01T00:06:40Z'),
                             ev('f5', 'impression', 'ad-2', '2026-01-01T00:06:35Z')],
                       ARRAY[0, 1], ARRAY[2, 1]::bigint[]);
SELECT adstream.fold_minute_stats() AS moved;
SELECT adstream.watermark('fin');      -- 00:06:35 - 30 s: 00:05 closes, 00:06 not yet
SELECT version, r ->> 'window_start' AS w, r -> 'impressions' AS imp, r -> 'clicks' AS clk,
       r -> 'delta_impressions' AS d_imp, r -> 'final' AS final
  FROM fin_out ORDER BY id;
-- a late event for the closed window: a correction version
SELECT * FROM feed_at('fin', ARRAY[ev('f6', 'impression', 'ad-1', '2026-01-01T00:05:50Z')],
                       ARRAY[0], ARRAY[3]::bigint[]);
SELECT adstream.fold_minute_stats() AS moved;
SELECT adstream.fold_minute_stats() AS moved_again;  -- nothing changed: no record
SELECT version, r ->> 'window_start' AS w, r -> 'impressions' AS imp,
       r -> 'delta_impressions' AS d_imp, r -> 'final' AS final
  FROM fin_out ORDER BY id;
-- partition 0 moves on; partition 1 falls quiet and holds the watermark...
SELECT * FROM feed_at('fin', ARRAY[ev('f7', 'impression', 'ad-1', '2026-01-01T00:07:45Z')],
                       ARRAY[0], ARRAY[4]::bigint[]);
SELECT adstream.fold_minute_stats() AS moved;
SELECT adstream.watermark('fin');
SELECT count(*) AS records FROM fin_out;
-- ...until it counts as idle: then the newest partition leads
SELECT adstream.alter_pipeline('fin', idle_timeout => '1 microsecond');
SELECT adstream.watermark('fin');      -- 00:07:45 - 30 s: 00:06 closes
SELECT adstream.fold_minute_stats() AS moved;
SELECT version, r ->> 'ad_id' AS ad, r ->> 'window_start' AS w, r -> 'impressions' AS imp,
       r -> 'final' AS final
  FROM fin_out ORDER BY id;
SELECT adstream.drop_pipeline('fin');
