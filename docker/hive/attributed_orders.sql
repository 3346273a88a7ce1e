-- Hive over adstream's attributed-orders topic (Hive's Kafka storage
-- handler).  Every record is keyed by record_uuid (name-based on the order
-- id); each (record_uuid, version) is one version of one order's record.
-- Read committed only: records of an aborted Kafka transaction are never
-- seen.  enrichment is the hook's JSON object as text.
CREATE EXTERNAL TABLE adstream_attributed_order_records (
  record_uuid STRING,
  version BIGINT,
  pipeline STRING,
  region STRING,
  order_id STRING,
  user_id STRING,
  store_id STRING,
  order_time STRING,
  order_time_ms BIGINT,
  amount DECIMAL(20,6),
  amount_micros BIGINT,
  currency STRING,
  attribution STRING,
  ad_id STRING,
  campaign_id STRING,
  advertiser_id STRING,
  touch_event_id STRING,
  touch_time STRING,
  enrichment STRING,
  enrichment_status STRING
)
STORED BY 'org.apache.hadoop.hive.kafka.KafkaStorageHandler'
TBLPROPERTIES (
  'kafka.topic' = 'adstream-attributed-orders',
  'kafka.bootstrap.servers' = 'kafka:9092',
  'kafka.serde.class' = 'org.apache.hadoop.hive.serde2.JsonSerDe',
  'kafka.consumer.isolation.level' = 'read_committed'
);

-- Each (record_uuid, version) once, whatever a source delivered twice.
CREATE VIEW adstream_attributed_order_versions AS
SELECT record_uuid, version, pipeline, region, order_id, user_id, store_id, order_time,
       order_time_ms, amount, amount_micros, currency, attribution, ad_id, campaign_id,
       advertiser_id, touch_event_id, touch_time, enrichment, enrichment_status
  FROM (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY record_uuid, version
                                       ORDER BY `__offset`) AS n
          FROM adstream_attributed_order_records r) d
 WHERE n = 1;

-- The latest version of each order.
CREATE VIEW adstream_attributed_orders AS
SELECT record_uuid, version, pipeline, region, order_id, user_id, store_id, order_time,
       order_time_ms, amount, amount_micros, currency, attribution, ad_id, campaign_id,
       advertiser_id, touch_event_id, touch_time, enrichment, enrichment_status
  FROM (SELECT v.*, ROW_NUMBER() OVER (PARTITION BY record_uuid
                                       ORDER BY version DESC) AS n
          FROM adstream_attributed_order_versions v) l
 WHERE n = 1;
