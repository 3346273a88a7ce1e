-- Privileges: nothing of adstream is open to PUBLIC; EXECUTE on a function
-- delegates exactly that function; the views can be granted to readers.
CREATE ROLE ads_nobody;
CREATE ROLE ads_reader;
CREATE ROLE ads_feeder;
GRANT USAGE ON SCHEMA adstream TO ads_reader, ads_feeder;
GRANT SELECT ON adstream.ad_minute_stats TO ads_reader;
GRANT EXECUTE ON FUNCTION adstream.ingest(text, bytea[], text, integer[], bigint[], timestamptz[], text)
  TO ads_feeder;

SET ROLE ads_nobody;
SELECT * FROM adstream.pipeline;
SELECT * FROM adstream.list_pipelines();
SELECT * FROM adstream.ad_minute_stats;
SELECT adstream.create_pipeline('sneaky');
RESET ROLE;

SET ROLE ads_reader;
SELECT * FROM adstream.pipeline;                  -- configuration stays hidden
SELECT * FROM adstream.dead_letter;
SELECT count(*) >= 0 AS can_read FROM adstream.ad_minute_stats;
SELECT adstream.drop_pipeline('basic');
RESET ROLE;

SET ROLE ads_feeder;
SELECT * FROM adstream.ingest('basic', ARRAY[convert_to(
  '{"event_id":"p1","event_type":"click","ad_id":"ad-p","event_time":"2026-01-01T00:05:00Z","user_id":"u"}',
  'UTF8')], kafka_timestamps => ARRAY['2026-01-01 00:10:00+00'::timestamptz]);
SELECT * FROM adstream.list_pipelines();
SELECT * FROM adstream.minute_stat;
RESET ROLE;

SELECT clicks FROM adstream.ad_minute_stats WHERE ad_id = 'ad-p';

REVOKE ALL ON SCHEMA adstream FROM ads_reader, ads_feeder;
REVOKE ALL ON adstream.ad_minute_stats FROM ads_reader;
REVOKE ALL ON FUNCTION adstream.ingest(text, bytea[], text, integer[], bigint[], timestamptz[], text)
  FROM ads_feeder;
DROP ROLE ads_nobody;
DROP ROLE ads_reader;
DROP ROLE ads_feeder;
