-- Checks what a sink wrote to Kafka (tests/kafka_output.sh) and prints one
-- TAP line per check.  psql variables: records and progress (the files
-- tests/kafka/outread wrote), committed (comma-separated transaction ids
-- the server log shows committed; may be empty) and real (1 if the topics
-- were read read_committed from a real broker, else empty).  Needs the
-- table expected_agg that tests/lib/truth_checks.sql leaves.
SET client_min_messages = warning;
CREATE TEMP TABLE out_msg (partition int, "offset" bigint, key text, txn text,
                           outbox_id bigint, version bigint, value text);
CREATE TEMP TABLE out_progress ("offset" bigint, key text, value text);
COPY out_msg FROM :'records';
COPY out_progress FROM :'progress';

-- the sink's progress records, and the chain of transactions back from the
-- latest: each names the one it continued from
CREATE TEMP TABLE progress AS
SELECT "offset", value::jsonb AS p FROM out_progress
 WHERE key = (SELECT transactional_id FROM adstream.sink WHERE name = 'main');
CREATE TEMP TABLE chain AS
WITH RECURSIVE c AS (
	SELECT p ->> 'txn' AS txn, p ->> 'prev_txn' AS prev, (p ->> 'first_id')::bigint AS first_id,
	       (p ->> 'last_id')::bigint AS last_id, (p ->> 'records')::int AS records, 1 AS depth
	  FROM (SELECT p FROM progress ORDER BY "offset" DESC LIMIT 1) l
	UNION ALL
	SELECT q.p ->> 'txn', q.p ->> 'prev_txn', (q.p ->> 'first_id')::bigint,
	       (q.p ->> 'last_id')::bigint, (q.p ->> 'records')::int, c.depth + 1
	  FROM c CROSS JOIN LATERAL (SELECT p FROM progress WHERE p ->> 'txn' = c.prev
	                              ORDER BY "offset" DESC LIMIT 1) q
	 WHERE c.depth < 1000000)
SELECT * FROM c;

SELECT CASE WHEN count(*) > 0 AND count(*) FILTER (WHERE prev IS NULL) = 1
             AND count(*) = count(DISTINCT txn)
            THEN 'ok' ELSE 'not ok' END
       || ' - the progress records chain back to the first transaction (' || count(*)
       || ' committed transactions)'
  FROM chain;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - every transaction the log shows committed is in the chain (' ||
       (SELECT count(*) FROM unnest(string_to_array(:'committed', ','))) || ' of them)'
  FROM unnest(string_to_array(:'committed', ',')) AS t(txn)
 WHERE t.txn NOT IN (SELECT txn FROM chain);
SELECT CASE WHEN :'real' <> '1' OR
                 (count(*) = (SELECT count(*) FROM chain) AND
                  NOT EXISTS (SELECT 1 FROM out_msg WHERE txn NOT IN (SELECT txn FROM chain)))
            THEN 'ok' ELSE 'not ok' END
       || ' - read_committed (real broker only): every record and progress record read is committed'
  FROM progress;

-- what the committed transactions hold
CREATE TEMP TABLE committed_msg AS
SELECT m.* FROM out_msg AS m WHERE m.txn IN (SELECT txn FROM chain);
SELECT '# ' || (SELECT count(*) FROM out_msg) - (SELECT count(*) FROM committed_msg)
       || ' records of transactions that never committed were read and not counted'
       || CASE WHEN :'real' = '1' THEN '' ELSE ' (the embedded Kafka delivers them)' END;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - each committed transaction holds exactly the outbox ids its progress record names'
  FROM chain AS c
  LEFT JOIN (SELECT txn, count(*) n, min(outbox_id) lo, max(outbox_id) hi,
                    count(DISTINCT outbox_id) nd
               FROM committed_msg GROUP BY txn) AS m USING (txn)
 WHERE m.n IS DISTINCT FROM c.records OR m.nd IS DISTINCT FROM c.records
    OR m.lo IS DISTINCT FROM c.first_id OR m.hi IS DISTINCT FROM c.last_id;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - committed transactions follow each other in outbox id order, without overlap'
  FROM chain AS c JOIN chain AS p ON p.txn = c.prev
 WHERE c.first_id <= p.last_id;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - key, version header and outbox id header agree with each payload'
  FROM out_msg
 WHERE key IS DISTINCT FROM value::jsonb ->> 'record_uuid'
    OR version IS DISTINCT FROM (value::jsonb ->> 'version')::bigint
    OR outbox_id IS NULL OR txn IS NULL;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - a record sent more than once (aborted, then again) is byte-identical'
  FROM (SELECT key, version FROM out_msg GROUP BY key, version
        HAVING count(DISTINCT value) > 1) d;
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - every version of a record goes to the same partition (keyed by the UUID)'
  FROM (SELECT key FROM out_msg GROUP BY key HAVING count(DISTINCT partition) > 1) d;

CREATE TEMP TABLE records AS
SELECT key::uuid AS record_uuid, version, value::jsonb AS r FROM committed_msg;
\ir record_checks.sql
