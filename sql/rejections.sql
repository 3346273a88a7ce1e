-- Every rejection reason.  A bad message becomes a dead letter with its
-- bytes and coordinates; the good messages of the same batch still count.
SET TimeZone = 'UTC';
SELECT adstream.create_pipeline('rej', max_message_bytes => 512);

CREATE TABLE rej_input (i int, msg bytea);
INSERT INTO rej_input VALUES
  -- oversized: 513 bytes, valid JSON but never parsed
  (1, convert_to('{"pad":"' || repeat('x', 505) || '"}', 'UTF8')),
  -- invalid UTF-8 inside a string, a lone continuation byte, a truncated sequence
  (2, '\x7b226576656e745f6964223a2261c328227d'),
  (3, '\x80'),
  (4, '\x7b2261223a22e282'),
  -- NUL bytes
  (5, '\x00'),
  (6, '\x7b7d00'),
  -- malformed JSON
  (7, convert_to('{"event_id":', 'UTF8')),
  (8, convert_to('not json at all', 'UTF8')),
  (9, convert_to('{"a":1} {"b":2}', 'UTF8')),
  (10, convert_to('{''event_id'':1}', 'UTF8')),
  (11, ''),
  -- nesting deeper than 32 levels
  (12, convert_to(repeat('[', 33) || repeat(']', 33), 'UTF8')),
  (13, convert_to('{"a":' || repeat('{"a":', 40) || '1' || repeat('}', 41), 'UTF8')),
  -- not an object
  (14, convert_to('[{"event_id":"x"}]', 'UTF8')),
  (15, convert_to('"just a string"', 'UTF8')),
  (16, convert_to('12', 'UTF8')),
  (17, convert_to('null', 'UTF8')),
  -- duplicate field, under the same or another spelling
  (18, convert_to(ev('d1', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"ad_id":"ad-2"'), 'UTF8')),
  (19, convert_to(ev('d2', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"type":"click"'), 'UTF8')),
  -- missing or null required fields
  (20, convert_to('{"event_type":"click","ad_id":"a","event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  (21, convert_to('{"event_id":"m2","ad_id":"a","event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  (22, convert_to('{"event_id":"m3","event_type":"click","event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  (23, convert_to('{"event_id":"m4","event_type":"click","ad_id":"a","user_id":"u"}', 'UTF8')),
  (24, convert_to('{"event_id":"m5","event_type":"click","ad_id":"a","event_time":"2026-01-01T00:05:00Z"}', 'UTF8')),
  (25, convert_to('{"event_id":null,"event_type":"click","ad_id":"a","event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  -- wrong types
  (26, convert_to('{"event_id":"w1","event_type":"click","ad_id":true,"event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  (27, convert_to('{"event_id":"w2","event_type":"click","ad_id":"a","event_time":{"ms":1},"user_id":"u"}', 'UTF8')),
  (28, convert_to('{"event_id":"w3","event_type":"click","ad_id":"a","event_time":"2026-01-01T00:05:00Z","user_id":["u"]}', 'UTF8')),
  (29, convert_to('{"event_id":"w4","event_type":1,"ad_id":"a","event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  (30, convert_to('{"event_id":1.5,"event_type":"click","ad_id":"a","event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  (31, convert_to('{"event_id":"w6","event_type":"click","ad_id":"a","event_time":1767225900000.5,"user_id":"u"}', 'UTF8')),
  (32, convert_to(ev('w7', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"cost":true'), 'UTF8')),
  (33, convert_to(ev('w8', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"region":5'), 'UTF8')),
  -- invalid values
  (34, convert_to(ev('v1', 'click', 'ad-1', '2026-13-01T00:05:00Z'), 'UTF8')),
  (35, convert_to(ev('v2', 'click', 'ad-1', '2026-02-29T00:05:00Z'), 'UTF8')),
  (36, convert_to(ev('v3', 'click', 'ad-1', '2026-01-01'), 'UTF8')),
  (37, convert_to(ev('v4', 'click', 'ad-1', 'yesterday'), 'UTF8')),
  (38, convert_to(ev('v5', 'click', 'ad-1', '2026-01-01T00:05:00+25:00'), 'UTF8')),
  (39, convert_to(ev('v6', 'click', 'ad-1', '99999999999999999999'), 'UTF8')),
  (40, convert_to(ev('v7', 'click', '', '2026-01-01T00:05:00Z'), 'UTF8')),
  (41, convert_to(ev('v8', 'click', repeat('a', 257), '2026-01-01T00:05:00Z'), 'UTF8')),
  (42, convert_to(ev('v9', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"cost":-0.5'), 'UTF8')),
  (43, convert_to(ev('v10', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"cost":0.0000001'), 'UTF8')),
  (44, convert_to(ev('v11', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"cost":1e12'), 'UTF8')),
  (45, convert_to(ev('v12', 'click', 'ad-1', '2026-01-01T00:05:00Z', 'u1', ',"cost":"cheap"'), 'UTF8')),
  (46, convert_to('{"event_id":"v13\u0000","event_type":"click","ad_id":"a","event_time":"2026-01-01T00:05:00Z","user_id":"u"}', 'UTF8')),
  -- unknown event type
  (47, convert_to(ev('t1', 'conversion', 'ad-1', '2026-01-01T00:05:00Z'), 'UTF8')),
  (48, convert_to(ev('t2', '', 'ad-1', '2026-01-01T00:05:00Z'), 'UTF8')),
  -- too old / too far in future against the Kafka timestamp 2026-01-01 00:10
  (49, convert_to(ev('o1', 'click', 'ad-1', '2025-12-31T00:09:59.999Z'), 'UTF8')),
  (50, convert_to(ev('f1', 'click', 'ad-1', '2026-01-01T00:15:00.001Z'), 'UTF8')),
  -- and two good events, which must count
  (51, convert_to(ev('g1', 'click', 'ad-1', '2025-12-31T00:10:00Z'), 'UTF8')),
  (52, convert_to(ev('g2', 'impression', 'ad-1', '2026-01-01T00:15:00Z'), 'UTF8'));

SELECT * FROM adstream.ingest('rej',
    (SELECT array_agg(msg ORDER BY i) FROM rej_input), 'events',
    (SELECT array_agg(0) FROM rej_input), (SELECT array_agg(i) FROM rej_input),
    (SELECT array_agg(timestamptz '2026-01-01 00:10:00+00') FROM rej_input));

-- each dead letter: its offset (= input number), reason and detail
SELECT "offset", reason, detail FROM adstream.dead_letter d
  JOIN adstream.pipeline p ON p.id = d.pipeline_id AND p.name = 'rej'
 ORDER BY "offset";

-- the stored payload is the message, byte for byte
SELECT count(*) AS payload_mismatches
  FROM rej_input r JOIN adstream.dead_letter d ON d."offset" = r.i
 WHERE d.payload IS DISTINCT FROM r.msg;
SELECT count(*) AS with_coordinates FROM adstream.dead_letter d
  JOIN adstream.pipeline p ON p.id = d.pipeline_id AND p.name = 'rej'
 WHERE d.topic = 'events' AND d.partition = 0 AND d.kafka_ts = '2026-01-01 00:10:00+00';

SELECT ad_id, window_start, impressions, clicks FROM adstream.ad_minute_stats
 WHERE pipeline = 'rej' ORDER BY window_start;
SELECT reason, messages FROM adstream.dead_letter_summary WHERE pipeline = 'rej' ORDER BY reason;

-- a huge garbage payload (5 MB) with max_message_bytes at 10 MB: parsed,
-- rejected, stored whole
SELECT adstream.alter_pipeline('rej', max_message_bytes => 10485760);
SELECT * FROM adstream.ingest('rej', ARRAY[
    convert_to(repeat('garbage ', 655360), 'UTF8'),
    convert_to('{"a":"' || repeat('b', 5000000) || '"}', 'UTF8')]);
SELECT reason, length(payload) FROM adstream.dead_letter ORDER BY id DESC LIMIT 2;
