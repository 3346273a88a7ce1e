-- The live views: minute stats with CTR, hourly and daily rollups (UTC).
SET TimeZone = 'UTC';
SELECT adstream.create_pipeline('roll', max_event_age => '3 days');

SELECT * FROM adstream.ingest('roll', ARRAY(
  SELECT convert_to(ev('r' || i, CASE WHEN i % 4 = 0 THEN 'click' ELSE 'impression' END,
                       'ad-' || (i % 2),
                       to_char(timestamptz '2026-01-01 22:30:00+00' + i * interval '7 minutes',
                               'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                       'u' || i, ',"cost":0.25'), 'UTF8')
    FROM generate_series(1, 40) i ORDER BY i),  -- the 40th is 10 minutes ahead: too_far_in_future
  kafka_timestamps => array_fill('2026-01-02 03:00:00+00'::timestamptz, ARRAY[40]));

SELECT ad_id, window_start, window_end, impressions, clicks, spend, ctr
  FROM adstream.ad_minute_stats WHERE pipeline = 'roll' ORDER BY window_start LIMIT 6;
SELECT ad_id, window_start, window_end, impressions, clicks, spend, ctr
  FROM adstream.ad_hourly_stats WHERE pipeline = 'roll' ORDER BY window_start, ad_id;
SELECT ad_id, window_start, window_end, impressions, clicks, spend, ctr
  FROM adstream.ad_daily_stats WHERE pipeline = 'roll' ORDER BY window_start, ad_id;

-- rollups add up to the minutes
SELECT (SELECT sum(impressions) FROM adstream.ad_minute_stats WHERE pipeline = 'roll') =
       (SELECT sum(impressions) FROM adstream.ad_daily_stats WHERE pipeline = 'roll') AS consistent;

-- CTR is NULL without impressions
SELECT * FROM feed('roll', ARRAY[ev('ctr1', 'click', 'ad-c', '2026-01-01T00:05:00Z')]);
SELECT impressions, clicks, ctr FROM adstream.ad_minute_stats WHERE ad_id = 'ad-c';
