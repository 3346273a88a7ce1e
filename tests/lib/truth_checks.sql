-- Compares adstream's tables with the generator's ground truth and prints
-- one TAP line per check.  Expects tables raw (seq, partition, offset,
-- kafka_ms, msg) and truth (the generator's truth file), and every
-- aggregate increment folded.  Used by the core benchmark and the Kafka
-- suites.
-- counts by status
SELECT CASE WHEN (SELECT count(*) FROM truth WHERE status = 'accepted') =
                 (SELECT count(*) FROM adstream.event)
            THEN 'ok' ELSE 'not ok' END || ' - stored events equal accepted events of ground truth';
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END || ' - stored event ids, types, ads and times equal ground truth'
  FROM ((SELECT event_id, event_type, ad_id, window_start_ms FROM truth WHERE status = 'accepted'
         EXCEPT SELECT event_id, event_type::text, ad_id,
                       (extract(epoch FROM date_trunc('minute', event_time, 'UTC')) * 1000)::bigint
                  FROM adstream.event)
        UNION ALL
        (SELECT event_id, event_type::text, ad_id,
                (extract(epoch FROM date_trunc('minute', event_time, 'UTC')) * 1000)::bigint
           FROM adstream.event
         EXCEPT SELECT event_id, event_type, ad_id, window_start_ms FROM truth WHERE status = 'accepted')) d;
-- dead letters by reason
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END || ' - dead letters by reason equal ground truth'
  FROM ((SELECT reason, count(*) FROM truth WHERE status = 'rejected' GROUP BY reason
         EXCEPT SELECT reason, count(*) FROM adstream.dead_letter GROUP BY reason)
        UNION ALL
        (SELECT reason, count(*) FROM adstream.dead_letter GROUP BY reason
         EXCEPT SELECT reason, count(*) FROM truth WHERE status = 'rejected' GROUP BY reason)) d;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END || ' - each dead letter is the message at its offset, byte for byte'
  FROM adstream.dead_letter d JOIN raw r ON r.partition = d.partition AND r."offset" = d."offset"
 WHERE d.payload <> r.msg;
-- aggregates per (ad, minute)
SET client_min_messages = warning;
-- kept (not temporary) for checks that follow in other sessions
DROP TABLE IF EXISTS expected_agg;
CREATE TABLE expected_agg AS
SELECT ad_id, to_timestamp(window_start_ms / 1000) AS window_start,
       count(*) FILTER (WHERE event_type = 'impression') AS impressions,
       count(*) FILTER (WHERE event_type = 'click') AS clicks,
       sum(cost_micros) AS spend_micros
  FROM truth WHERE status = 'accepted' GROUP BY 1, 2;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - impressions, clicks and spend per (ad, minute) equal ground truth (' || count(*) || ' differences)'
  FROM ((SELECT ad_id, window_start, impressions, clicks, spend_micros FROM expected_agg
         EXCEPT SELECT ad_id, window_start, impressions, clicks, spend_micros FROM adstream.minute_stat)
        UNION ALL
        (SELECT ad_id, window_start, impressions, clicks, spend_micros FROM adstream.minute_stat
         EXCEPT SELECT ad_id, window_start, impressions, clicks, spend_micros FROM expected_agg)) d;
-- offsets at the end of every partition
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END || ' - stored next offset is last offset + 1 on every partition'
  FROM ((SELECT partition, max("offset") + 1 FROM raw GROUP BY partition
         EXCEPT SELECT partition, next_offset FROM adstream.consumed_offset)
        UNION ALL
        (SELECT partition, next_offset FROM adstream.consumed_offset
         EXCEPT SELECT partition, max("offset") + 1 FROM raw GROUP BY partition)) d;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END || ' - every aggregate increment was folded'
  FROM adstream.minute_delta;
