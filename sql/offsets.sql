-- Source coordinates: offsets are stored as "next offset to read" in the
-- batch's transaction; messages below it are skipped as already applied.
SET TimeZone = 'UTC';
SELECT adstream.create_pipeline('off');

CREATE TEMP VIEW off_offsets AS
  SELECT o.topic, o.partition, o.next_offset FROM adstream.consumed_offset o
    JOIN adstream.pipeline p ON p.id = o.pipeline_id AND p.name = 'off';

-- offsets with gaps (transaction markers take offsets) on two partitions
SELECT * FROM feed_at('off', ARRAY[
    ev('o1', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o2', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o3', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    'garbage'],
  ARRAY[0, 0, 1, 1], ARRAY[10, 12, 100, 105]);
SELECT topic, partition, next_offset FROM off_offsets ORDER BY 1, 2;

-- redelivery of the same messages: all skipped, nothing counted twice, and
-- the dead letter is not written again
SELECT * FROM feed_at('off', ARRAY[
    ev('o1', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o2', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o3', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    'garbage'],
  ARRAY[0, 0, 1, 1], ARRAY[10, 12, 100, 105]);
SELECT clicks FROM adstream.ad_minute_stats WHERE pipeline = 'off';
SELECT count(*) AS dead_letters FROM adstream.dead_letter d
  JOIN adstream.pipeline p ON p.id = d.pipeline_id AND p.name = 'off';

-- a batch overlapping the stored offset: only the new tail applies
SELECT * FROM feed_at('off', ARRAY[
    ev('o2', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o4', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o5', 'click', 'ad-1', '2026-01-01T00:05:00Z')],
  ARRAY[0, 0, 0], ARRAY[12, 13, 20]);
SELECT topic, partition, next_offset FROM off_offsets ORDER BY 1, 2;

-- an offset repeated within a batch applies once; so does a going-back one
SELECT * FROM feed_at('off', ARRAY[
    ev('o6', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o6-again', 'click', 'ad-1', '2026-01-01T00:05:00Z'),
    ev('o7', 'click', 'ad-1', '2026-01-01T00:05:00Z')],
  ARRAY[2, 2, 2], ARRAY[5, 5, 4]);
SELECT partition, next_offset FROM off_offsets WHERE partition = 2;

-- a rolled-back batch moves no offset
BEGIN;
SELECT * FROM feed_at('off', ARRAY[ev('o8', 'click', 'ad-1', '2026-01-01T00:05:00Z')],
                      ARRAY[0], ARRAY[30]);
ROLLBACK;
SELECT partition, next_offset FROM off_offsets WHERE partition = 0;

-- a failing statement after the batch aborts the batch with it
BEGIN;
SELECT * FROM feed_at('off', ARRAY[ev('o9', 'click', 'ad-1', '2026-01-01T00:05:00Z')],
                      ARRAY[0], ARRAY[31]);
SELECT 1 / 0;
COMMIT;
SELECT partition, next_offset FROM off_offsets WHERE partition = 0;
SELECT count(*) FROM adstream.event k JOIN adstream.pipeline p
    ON p.id = k.pipeline_id AND p.name = 'off';

-- argument errors
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], 't', NULL, ARRAY[1::bigint]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], NULL, ARRAY[0], ARRAY[1::bigint]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], 't', ARRAY[0, 1], ARRAY[1::bigint, 2]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], 't', ARRAY[0], ARRAY[-1::bigint]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], 't', ARRAY[NULL::int], ARRAY[1::bigint]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], '', ARRAY[0], ARRAY[1::bigint]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], kafka_timestamps => '{}');
SELECT * FROM adstream.ingest('off', ARRAY[['\x7b7d'::bytea]]);
SELECT * FROM adstream.ingest(NULL, ARRAY['\x7b7d'::bytea]);
SELECT * FROM adstream.ingest('off', NULL);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], 't', ARRAY[0], ARRAY[9223372036854775807]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], kafka_timestamps => ARRAY['infinity'::timestamptz]);
SELECT * FROM adstream.ingest('off', ARRAY['\x7b7d'::bytea], kafka_timestamps => ARRAY['-infinity'::timestamptz]);
