#!/bin/bash
# Benchmark of a union pipeline's merge.  --records window records
# (default 400,000) of two regions, as ad-events pipelines emit them: every
# window in 4 versions, the versions of all windows interleaved in stream
# order, plus 10% re-sent duplicates and 5% stale versions arriving late.
# Each region's records go through adstream.ingest() on a union pipeline
# with Kafka coordinates and source => region, in batches of 10,000, one
# transaction each: validation (the UUID derived from region, ad and
# window), offsets, the newest version per UUID, and every newer version
# written to the outbox.  Records/s against the baseline: the same batches
# of the same rows through one plain SQL statement each that casts the
# payloads to jsonb, keeps the newest version per UUID in a table keyed by
# UUID (INSERT .. ON CONFLICT DO UPDATE WHERE older) and appends the kept
# payloads to an output table; no validation, no offsets, no order within
# a batch.  Both must end with the same (UUID, version) per record, or the
# run fails.
#
#   tests/bench/union_bench.sh [--records N]
set -euo pipefail

args=("$@")
records=400000
while [ $# -gt 0 ]; do
	case "$1" in
		--records) records=$2; shift 2 ;;
		*) echo "usage: $0 [--records N]" >&2; exit 2 ;;
	esac
done
[[ "$records" =~ ^[1-9][0-9]*$ ]] && [ "$records" -ge 1000 ] ||
	{ echo "union_bench: --records must be an integer of at least 1000" >&2; exit 2; }

src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/tests/lib/common.sh"
adstream_enter tests/bench/union_bench.sh "${args[@]}"

adstream_pg_scene ubench "adstream.fold_interval = 0
adstream.maintenance_interval = 0
shared_buffers = 1GB
max_wal_size = 8GB"
export PGOPTIONS="-c client_min_messages=warning"

"${psql_cmd[@]}" -v records="$records" >/dev/null <<'SQL'
CREATE EXTENSION adstream;
SELECT adstream.create_union_pipeline('u');
-- sources for their counters only: no worker reads them
SELECT adstream.add_union_source('u', r, '127.0.0.1:9', 'stats', enabled => false)
  FROM unnest(ARRAY['a', 'b']) AS r;
CREATE SCHEMA bench;
-- windows w of 1,000 ads over the minutes after 2026-03-01 11:00, region
-- a or b by parity; stream position: version-major, so every window's
-- versions arrive in order, interleaved with the other windows'
CREATE TABLE bench.rec AS
WITH p AS (SELECT (:records / 4.15)::bigint AS windows),
     rows AS (
	SELECT w, v, v * p.windows + w AS pos FROM p, generate_series(0, p.windows - 1) AS w,
	       generate_series(1, 4) AS v
	UNION ALL	-- 10%: a version sent again, later
	SELECT w, 2, 5 * p.windows + w FROM p, generate_series(0, p.windows - 1) AS w WHERE w % 10 = 0
	UNION ALL	-- 5%: an older version arriving after the newest
	SELECT w, 1, 6 * p.windows + w FROM p, generate_series(0, p.windows - 1) AS w WHERE w % 20 = 1)
SELECT row_number() OVER (PARTITION BY w % 2 ORDER BY pos) - 1 AS n,
       CASE WHEN w % 2 = 0 THEN 'a' ELSE 'b' END AS region,
       adstream._record_payload(
           adstream.window_uuid(CASE WHEN w % 2 = 0 THEN 'a' ELSE 'b' END, 'ad-' || (w / 2) % 1000,
                                timestamptz '2026-03-01 11:00+00' + (w / 2000) * interval '1 minute'),
           v, 'ads', CASE WHEN w % 2 = 0 THEN 'a' ELSE 'b' END, 'ad-' || (w / 2) % 1000,
           timestamptz '2026-03-01 11:00+00' + (w / 2000) * interval '1 minute',
           10 * v, v, 1000 * v, 10, 1, 1000, v = 4) AS payload
  FROM rows;
CREATE INDEX ON bench.rec (region, n);
ANALYZE bench.rec;

CREATE TABLE bench.newest (record_uuid uuid PRIMARY KEY, version bigint, region text,
	ad_id text, window_start timestamptz, impressions bigint, clicks bigint,
	spend_micros bigint, final boolean);
CREATE TABLE bench.out (id bigint GENERATED ALWAYS AS IDENTITY, record_uuid uuid,
	version bigint, payload text);
-- every batch of each region, one transaction each, through the union
-- ('ours') or the baseline statement
CREATE PROCEDURE bench.run(how text) LANGUAGE plpgsql AS $$
DECLARE
	r text;
	b bigint;
BEGIN
	FOR b IN SELECT DISTINCT n / 10000 FROM bench.rec ORDER BY 1 LOOP
		FOREACH r IN ARRAY ARRAY['a', 'b'] LOOP
			IF how = 'ours' THEN
				PERFORM adstream.ingest('u',
					ARRAY(SELECT convert_to(payload, 'UTF8') FROM bench.rec
						   WHERE region = r AND n / 10000 = b ORDER BY n),
					'stats',
					ARRAY(SELECT 0 FROM bench.rec WHERE region = r AND n / 10000 = b),
					ARRAY(SELECT n FROM bench.rec WHERE region = r AND n / 10000 = b ORDER BY n),
					source => r);
			ELSE
				WITH batch AS (
					SELECT x.payload, x.payload::jsonb AS j
					  FROM unnest(ARRAY(SELECT payload FROM bench.rec
										 WHERE region = r AND n / 10000 = b ORDER BY n)) AS x(payload)),
				kept AS (
					INSERT INTO bench.newest AS t
					SELECT DISTINCT ON ((j ->> 'record_uuid')::uuid)
						   (j ->> 'record_uuid')::uuid, (j ->> 'version')::bigint, j ->> 'region',
						   j ->> 'ad_id', timestamptz 'epoch' + (j ->> 'window_start_ms')::bigint
						   * interval '1 millisecond', (j ->> 'impressions')::bigint,
						   (j ->> 'clicks')::bigint, (j ->> 'spend_micros')::bigint,
						   (j ->> 'final')::boolean
					  FROM batch ORDER BY (j ->> 'record_uuid')::uuid, (j ->> 'version')::bigint DESC
					ON CONFLICT (record_uuid) DO UPDATE
					   SET version = excluded.version, impressions = excluded.impressions,
						   clicks = excluded.clicks, spend_micros = excluded.spend_micros,
						   final = excluded.final
					 WHERE t.version < excluded.version
					RETURNING t.record_uuid, t.version)
				INSERT INTO bench.out (record_uuid, version, payload)
				SELECT k.record_uuid, k.version, b2.payload
				  FROM kept AS k
				  JOIN batch AS b2 ON (b2.j ->> 'record_uuid')::uuid = k.record_uuid
								  AND (b2.j ->> 'version')::bigint = k.version;
			END IF;
			COMMIT;
		END LOOP;
	END LOOP;
END $$;
SQL

n=$("${psql_cmd[@]}" -c "SELECT count(*) FROM bench.rec")
echo "union_bench: $n records of 2 regions ($("${psql_cmd[@]}" -c "SELECT count(DISTINCT payload::jsonb ->> 'record_uuid') FROM bench.rec") windows, 4 versions each, 10% duplicates, 5% stale), batches of 10,000"
run() {	# run PROCEDURE: seconds it took
	"${psql_cmd[@]}" <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
CALL bench.run('$1');
SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3);
SQL
}
"${psql_cmd[@]}" -c "CHECKPOINT" >/dev/null
base_s=$(run baseline)
"${psql_cmd[@]}" -c "CHECKPOINT" >/dev/null
ours_s=$(run ours)

same=$("${psql_cmd[@]}" -c "SELECT count(*) = 0 FROM (
	(SELECT record_uuid, version FROM adstream.union_record EXCEPT SELECT record_uuid, version FROM bench.newest)
	UNION ALL
	(SELECT record_uuid, version FROM bench.newest EXCEPT SELECT record_uuid, version FROM adstream.union_record)) d")
read -r merged dropped emitted <<<"$("${psql_cmd[@]}" -F ' ' -c "SELECT sum(merged), sum(duplicates + stale),
	(SELECT count(*) FROM adstream.outbox) FROM adstream.union_source")"
awk -v n="$n" -v o="$ours_s" -v b="$base_s" -v m="$merged" -v d="$dropped" -v e="$emitted" 'BEGIN {
	printf "union merge:  %.3f s, %.0f records/s (%d merged and emitted, %d dropped as duplicate or stale)\n", o, n / o, m, d
	printf "baseline SQL: %.3f s, %.0f records/s (newest per UUID only; no validation, offsets or order)\n", b, n / b
	printf "ratio ours/baseline: %.3f\n", b / o
	if (e + 0 != m + 0 || m + d != n) { printf "union_bench: %d outbox rows, %d merged, %d dropped of %d\n", e, m, d, n > "/dev/stderr"; exit 1 }
}'
[ "$same" = t ] || { echo "union_bench: the union and the baseline keep different versions" >&2; exit 1; }
echo "union_bench: both keep the same newest version of every record"
