-- Installation: the extension, its schema and objects, comments.
CREATE EXTENSION adstream;

SELECT extversion, extrelocatable FROM pg_extension WHERE extname = 'adstream';

-- every table, view and function of the schema has a comment
SELECT c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'adstream' AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'adstream' AND obj_description(p.oid, 'pg_proc') IS NULL;

-- user-data tables are dumped by pg_dump
SELECT unnest(extconfig)::regclass AS dumped
  FROM pg_extension WHERE extname = 'adstream' ORDER BY 1::text;

-- functions pin their search_path (window_uuid, order_uuid and _now run no SQL and
-- need none; the procedure maintain may not have one, to COMMIT between steps);
-- side-effecting ones are volatile
SELECT p.proname, p.provolatile, p.prosecdef,
       p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'] AS pinned
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'adstream' ORDER BY 1;

-- drop and create again: nothing is left behind
DROP EXTENSION adstream;
SELECT count(*) FROM pg_namespace WHERE nspname = 'adstream';
CREATE EXTENSION adstream;

-- a helper for the tests that follow: feed text messages with one Kafka
-- timestamp for all of them, without source coordinates
CREATE FUNCTION feed(pipeline text, msgs text[],
                     ts timestamptz DEFAULT '2026-01-01 00:10:00+00')
RETURNS TABLE (accepted bigint, duplicates bigint, rejected bigint, skipped bigint)
LANGUAGE sql AS $$
  SELECT * FROM adstream.ingest(pipeline,
      (SELECT array_agg(convert_to(m, 'UTF8') ORDER BY i)
         FROM unnest(msgs) WITH ORDINALITY AS u(m, i)),
      kafka_timestamps => array_fill(ts, ARRAY[cardinality(msgs)]))
$$;

-- the same with source coordinates: topic ad-events, a partition and an
-- offset per message
CREATE FUNCTION feed_at(pipeline text, msgs text[], parts int[], offs bigint[])
RETURNS TABLE (accepted bigint, duplicates bigint, rejected bigint, skipped bigint)
LANGUAGE sql AS $$
  SELECT * FROM adstream.ingest(pipeline,
      (SELECT array_agg(convert_to(m, 'UTF8') ORDER BY i)
         FROM unnest(msgs) WITH ORDINALITY AS u(m, i)),
      'ad-events', parts, offs,
      array_fill('2026-01-01 00:10:00+00'::timestamptz, ARRAY[cardinality(msgs)]))
$$;

-- and one that writes a well-formed event
CREATE FUNCTION ev(id text, typ text, ad text, t text, usr text DEFAULT 'u1',
                   extra text DEFAULT '')
RETURNS text LANGUAGE sql AS $$
  SELECT format('{"event_id":%s,"event_type":%s,"ad_id":%s,"event_time":%s,"user_id":%s%s}',
                to_json(id), to_json(typ), to_json(ad),
                CASE WHEN t ~ '^[0-9]+$' THEN t ELSE to_json(t)::text END,
                to_json(usr), extra)
$$;
