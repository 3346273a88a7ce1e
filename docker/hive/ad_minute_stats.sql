-- Hive over adstream's output topic (Hive's Kafka storage handler).
-- Every record is keyed by record_uuid; each (record_uuid, version) is one
-- version of one window.  Read committed only: records of an aborted Kafka
-- transaction are never seen.
CREATE EXTERNAL TABLE adstream_ad_minute_records (
  record_uuid STRING,
  version BIGINT,
  pipeline STRING,
  region STRING,
  ad_id STRING,
  window_start STRING,
  window_start_ms BIGINT,
  window_end STRING,
  impressions BIGINT,
  clicks BIGINT,
  spend_micros BIGINT,
  delta_impressions BIGINT,
  delta_clicks BIGINT,
  delta_spend_micros BIGINT,
  `final` BOOLEAN
)
STORED BY 'org.apache.hadoop.hive.kafka.KafkaStorageHandler'
TBLPROPERTIES (
  'kafka.topic' = 'adstream-ad-minute-stats',
  'kafka.bootstrap.servers' = 'kafka:9092',
  'kafka.serde.class' = 'org.apache.hadoop.hive.serde2.JsonSerDe',
  'kafka.consumer.isolation.level' = 'read_committed'
);

-- Each (record_uuid, version) once, whatever a source delivered twice.
CREATE VIEW adstream_ad_minute_versions AS
SELECT record_uuid, version, pipeline, region, ad_id, window_start, window_start_ms,
       window_end, impressions, clicks, spend_micros, delta_impressions, delta_clicks,
       delta_spend_micros, `final`
  FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY record_uuid, version
                                       ORDER BY `__offset`) AS n
          FROM adstream_ad_minute_records r) d
 WHERE n = 1;

-- The latest version of each window: its current totals.
CREATE VIEW adstream_ad_minute_stats AS
SELECT record_uuid, version, pipeline, region, ad_id, window_start, window_start_ms,
       window_end, impressions, clicks, spend_micros, `final`
  FROM (SELECT v.*, ROW_NUMBER() OVER (PARTITION BY record_uuid
                                       ORDER BY version DESC) AS n
          FROM adstream_ad_minute_versions v) l
 WHERE n = 1;
