-- Hostile pipeline names and option values never reach SQL unquoted: they
-- are refused by validation or stored as plain data.
SELECT adstream.create_pipeline('x''; DROP TABLE adstream.pipeline; --');
SELECT adstream.create_pipeline('x"; DROP SCHEMA adstream CASCADE; --');
SELECT adstream.create_pipeline(E'x\nDROP TABLE adstream.event');
SELECT adstream.create_pipeline('x$$ || pg_sleep(10) || $$');
SELECT adstream.create_pipeline('robert'') OR 1=1 --');
SELECT adstream.create_pipeline('a b');
SELECT adstream.alter_pipeline('basic''; DELETE FROM adstream.minute_stat; --',
                               max_event_age => '1 day');
SELECT adstream.drop_pipeline('x'' OR ''1''=''1');
SELECT adstream.create_pipeline('ok', max_event_age => '1 day''; DROP TABLE adstream.pipeline; --');
SELECT * FROM adstream.ingest('basic''; TRUNCATE adstream.minute_stat; --', '{}');

-- event content is data too: SQL in ids is stored verbatim
SET TimeZone = 'UTC';
SELECT * FROM feed('basic', ARRAY[
  ev('inj-1''); DELETE FROM adstream.minute_stat; --', 'click',
     'ad''; DROP TABLE adstream.pipeline; --', '2026-01-01T00:05:00Z',
     'u"); TRUNCATE adstream.event; --')]);
SELECT ad_id, user_id FROM adstream.event WHERE event_id LIKE 'inj-1%';

-- everything is still there
SELECT count(*) AS tables FROM pg_tables WHERE schemaname = 'adstream';
SELECT count(*) > 0 AS stats_intact FROM adstream.minute_total;
SELECT count(*) > 0 AS keys_intact FROM adstream.event;
SELECT name FROM adstream.list_pipelines();
