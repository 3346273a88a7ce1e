-- Event time: 1-minute windows, late events, boundaries, time zones,
-- ISO-8601 versus epoch milliseconds, and the reference time for age checks.
SET TimeZone = 'UTC';
SELECT adstream.create_pipeline('win', max_event_age => '1 hour',
                                max_future_skew => '2 minutes');

-- window boundaries: :59.999999 belongs to the earlier minute, :00 to the next
SELECT * FROM feed('win', ARRAY[
  ev('b1', 'impression', 'ad-1', '2026-01-01T00:04:59.999999Z'),
  ev('b2', 'impression', 'ad-1', '2026-01-01T00:05:00Z'),
  ev('b3', 'impression', 'ad-1', '2026-01-01T00:05:00.000001Z'),
  -- digits past microseconds are dropped, not rounded up into the next minute
  ev('b4', 'impression', 'ad-1', '2026-01-01T00:05:59.9999999Z')]);
SELECT window_start, impressions FROM adstream.ad_minute_stats
 WHERE pipeline = 'win' AND ad_id = 'ad-1' ORDER BY 1;

-- one instant in several notations lands in one window
SELECT * FROM feed('win', ARRAY[
  ev('z1', 'click', 'ad-2', '2026-01-01T00:06:30Z'),
  ev('z2', 'click', 'ad-2', '2026-01-01T00:06:30.000+00:00'),
  ev('z3', 'click', 'ad-2', '2026-01-01T05:36:30+05:30'),
  ev('z4', 'click', 'ad-2', '2025-12-31T19:06:30-0500'),
  ev('z5', 'click', 'ad-2', '2026-01-01t00:06:30z'),
  ev('z6', 'click', 'ad-2', '2026-01-01 00:06:30'),   -- no zone: UTC
  ev('z7', 'click', 'ad-2', '2026-01-01T09:06:30+09'),
  ev('z8', 'click', 'ad-2', '1767225990000'),          -- epoch ms as a number
  '{"event_id":"z9","event_type":"click","ad_id":"ad-2","event_time":"1767225990000","user_id":"u"}',
  ev('z10', 'click', 'ad-2', '2026-01-01T00:06:30,5Z')]);
SELECT window_start, clicks FROM adstream.ad_minute_stats
 WHERE pipeline = 'win' AND ad_id = 'ad-2';
SELECT DISTINCT a.event_time FROM adstream.event a
  JOIN adstream.pipeline p ON p.id = a.pipeline_id AND p.name = 'win'
 WHERE a.ad_id = 'ad-2' ORDER BY 1;

-- a non-whole-minute offset (+05:45) still yields the right UTC minute
SELECT * FROM feed('win', ARRAY[ev('np', 'click', 'ad-3', '2026-01-01T05:52:10+05:45')]);
SELECT window_start FROM adstream.ad_minute_stats WHERE pipeline = 'win' AND ad_id = 'ad-3';

-- the session time zone changes display only, not windows
SET TimeZone = 'Asia/Kathmandu';
SELECT window_start, window_end FROM adstream.ad_minute_stats
 WHERE pipeline = 'win' AND ad_id = 'ad-3';
SET TimeZone = 'UTC';

-- late events land in their own minute, next to fresh ones
SELECT * FROM feed('win', ARRAY[
  ev('l1', 'impression', 'ad-4', '2026-01-01T00:09:30Z'),
  ev('l2', 'impression', 'ad-4', '2026-01-01T00:01:10Z'),    -- 9 minutes late
  ev('l3', 'impression', 'ad-4', '2025-12-31T23:10:00Z')]);  -- exactly max_event_age
SELECT window_start, impressions FROM adstream.ad_minute_stats
 WHERE pipeline = 'win' AND ad_id = 'ad-4' ORDER BY 1;

-- age is measured against the Kafka timestamp: a day-old backlog replayed
-- with its original timestamps is accepted ...
SELECT * FROM feed('win', ARRAY[ev('r1', 'click', 'ad-5', '2025-12-01T12:00:00Z')],
                   ts => '2025-12-01 12:00:05+00');
-- ... and without a Kafka timestamp, against the current time
SET adstream.clock_override = '2026-01-01 01:00:00+00';
SELECT * FROM adstream.ingest('win', ARRAY[
  convert_to(ev('c1', 'click', 'ad-5', '2026-01-01T00:00:00Z'), 'UTF8'),   -- exactly 1 hour
  convert_to(ev('c2', 'click', 'ad-5', '2025-12-31T23:59:59.999Z'), 'UTF8'),
  convert_to(ev('c3', 'click', 'ad-5', '2026-01-01T01:02:00Z'), 'UTF8'),   -- exactly the skew
  convert_to(ev('c4', 'click', 'ad-5', '2026-01-01T01:02:00.001Z'), 'UTF8')]);
SELECT detail FROM adstream.dead_letter d JOIN adstream.pipeline p
    ON p.id = d.pipeline_id AND p.name = 'win' ORDER BY d.id;
-- a NULL element of kafka_timestamps also means "no timestamp"
SELECT * FROM adstream.ingest('win',
  ARRAY[convert_to(ev('c5', 'click', 'ad-5', '2026-01-01T00:59:00Z'), 'UTF8')],
  kafka_timestamps => ARRAY[NULL::timestamptz]);
RESET adstream.clock_override;
SHOW adstream.clock_override;

-- the clock override is for superusers only
CREATE ROLE win_user;
SET ROLE win_user;
SET adstream.clock_override = '2026-01-01 00:00:00+00';
RESET ROLE;
DROP ROLE win_user;

-- unknown adstream.* settings are refused (the prefix is reserved)
SET adstream.no_such_setting = 1;

-- years outside 1970..9999 are invalid values
SELECT * FROM feed('win', ARRAY[
  ev('y1', 'click', 'ad-6', '1969-12-31T23:59:59Z'),
  ev('y2', 'click', 'ad-6', '10000-01-01T00:00:00Z'),
  ev('y3', 'click', 'ad-6', '-1000')]);
SELECT reason, detail FROM adstream.dead_letter d JOIN adstream.pipeline p
    ON p.id = d.pipeline_id AND p.name = 'win' ORDER BY d.id DESC LIMIT 3;
