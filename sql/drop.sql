-- Dropping a pipeline removes everything it produced and nothing else;
-- dropping the extension removes the schema.
SELECT p.name,
       (SELECT count(*) FROM adstream.event k WHERE k.pipeline_id = p.id) > 0 AS events,
       (SELECT count(*) FROM adstream.minute_total s WHERE s.pipeline_id = p.id) > 0 AS stats
  FROM adstream.pipeline p WHERE p.name IN ('dd', 'dd2') ORDER BY 1;
SELECT adstream.drop_pipeline('dd');
SELECT (SELECT count(*) FROM adstream.minute_delta k
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = k.pipeline_id)) AS orphan_increments,
       (SELECT count(*) FROM adstream.minute_total s
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = s.pipeline_id)) AS orphan_stats,
       (SELECT count(*) FROM adstream.event a
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = a.pipeline_id)) AS orphan_events,
       (SELECT count(*) FROM adstream.dead_letter d
         WHERE NOT EXISTS (SELECT 1 FROM adstream.pipeline p WHERE p.id = d.pipeline_id)) AS orphan_letters;
SELECT count(*) > 0 AS dd2_intact FROM adstream.ad_minute_stats WHERE pipeline = 'dd2';

-- drop_pipeline refuses an older snapshot, which could leave orphans
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT adstream.drop_pipeline('dd2');
ROLLBACK;

-- ingest refuses altered tables rather than write wrong rows
BEGIN;
ALTER TABLE adstream.event ADD COLUMN note text DEFAULT 'x';
SELECT * FROM feed('dd2', ARRAY[ev('t1', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
ROLLBACK;
BEGIN;
ALTER TABLE adstream.event DROP COLUMN region;
SELECT * FROM feed('dd2', ARRAY[ev('t1', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
ROLLBACK;
BEGIN;
DROP INDEX adstream.event_key_idx;
CREATE INDEX event_key_idx ON adstream.event (event_key);
SELECT * FROM feed('dd2', ARRAY[ev('t1', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
ROLLBACK;
BEGIN;
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER t BEFORE INSERT ON adstream.minute_delta FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
SELECT * FROM feed('dd2', ARRAY[ev('t1', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
ROLLBACK;
-- a nullable column without default is fine
BEGIN;
ALTER TABLE adstream.event ADD COLUMN note text;
SELECT * FROM feed('dd2', ARRAY[ev('t1', 'click', 'ad-1', '2026-01-01T00:05:00Z')]);
ROLLBACK;

-- a fresh pipeline of the same name starts empty
SELECT adstream.create_pipeline('dd');
SELECT count(*) FROM adstream.ad_minute_stats WHERE pipeline = 'dd';

DROP EXTENSION adstream;
SELECT count(*) FROM pg_namespace WHERE nspname = 'adstream';

-- the same session can reinstall the extension and ingest, twice over
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('again');
SELECT accepted FROM adstream.ingest('again', ARRAY[convert_to(
  '{"event_id":"a1","event_type":"click","ad_id":"ad-1","event_time":"2026-01-01T00:05:00Z","user_id":"u"}',
  'UTF8')], kafka_timestamps => ARRAY['2026-01-01 00:06:00+00'::timestamptz]);
DROP EXTENSION adstream;
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('again');
SELECT accepted FROM adstream.ingest('again', ARRAY[convert_to(
  '{"event_id":"a1","event_type":"impression","ad_id":"ad-1","event_time":"2026-01-01T00:05:00Z","user_id":"u"}',
  'UTF8')], kafka_timestamps => ARRAY['2026-01-01 00:06:00+00'::timestamptz]);
SELECT event_type, ad_id FROM adstream.event;
