-- Checks a set of output records against the generator's ground truth and
-- prints one TAP line per check (3).  Expects a table records
-- (record_uuid uuid, version bigint, r jsonb: the payload) and the table
-- expected_agg that tests/lib/truth_checks.sql leaves.  Used by the core
-- benchmark (on the outbox) and the output suite (on what Kafka holds).
SELECT CASE WHEN count(*) = count(DISTINCT (record_uuid, version)) AND count(*) > 0
            THEN 'ok' ELSE 'not ok' END || ' - output records: each (record, version) once (' || count(*) || ' records)'
  FROM records;
SELECT CASE WHEN bool_and(n = maxv AND minv = 1) THEN 'ok' ELSE 'not ok' END
       || ' - output records: the versions of each record are 1..n'
  FROM (SELECT record_uuid, count(*) n, min(version) minv, max(version) maxv
          FROM records GROUP BY record_uuid) v;
WITH latest AS (
	SELECT l.r ->> 'ad_id' AS ad_id, (l.r ->> 'window_start')::timestamptz AS window_start,
	       (l.r ->> 'impressions')::bigint, (l.r ->> 'clicks')::bigint,
	       (l.r ->> 'spend_micros')::bigint, d.i, d.c, d.s
	  FROM (SELECT DISTINCT ON (record_uuid) record_uuid, r FROM records
	         ORDER BY record_uuid, version DESC) l
	  JOIN (SELECT record_uuid, sum((r ->> 'delta_impressions')::bigint) i,
	               sum((r ->> 'delta_clicks')::bigint) c,
	               sum((r ->> 'delta_spend_micros')::bigint) s
	          FROM records GROUP BY record_uuid) d USING (record_uuid)),
     expected AS (
	SELECT ad_id, window_start, impressions, clicks, spend_micros,
	       impressions, clicks, spend_micros FROM expected_agg)
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END
       || ' - output records: latest totals and summed deltas equal ground truth per (ad, minute) ('
       || count(*) || ' differences)'
  FROM ((TABLE expected EXCEPT ALL TABLE latest)
        UNION ALL
        (TABLE latest EXCEPT ALL TABLE expected)) x;
