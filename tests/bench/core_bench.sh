#!/bin/bash
# Benchmark of the processing core, and (with --check) its ground-truth test.
#
#   tests/bench/core_bench.sh [--events N] [--batch B] [--fold-every F]
#                             [--partitions K] [--check] [--keep]
#
# Generates a realistic stream (default 2,000,000 events: 100k ads, 1M users,
# ~5% duplicates, ~1% invalid, ~2% late, 5% clicks), starts a private
# PostgreSQL with adstream, and in one run on the same rows measures:
#   - the core: adstream.ingest() over batches of B messages, one transaction
#     per batch, offsets included (what a consumer worker does), and every F
#     batches (default 20) adstream.fold_minute_stats() on the same backend;
#   - the baseline: a plain COPY of the same events, as columns, into a plain
#     table without indexes;
# and prints both rates, their ratio and the on-disk bytes per stored event.
# Every run then compares the tables with the generator's ground truth and
# prints TAP lines; any mismatch makes the exit status non-zero.
# --check runs a small stream (100,000 events) for the test suite, with
# output records on (emit_mode changes, as --emit does) and checks them too:
# each (record, version) once, versions 1..n, deltas adding up to the
# totals, and the latest versions equal to ground truth.
set -euo pipefail

args=("$@")
events=
batch=10000
fold_every=20
partitions=4
check=0
keep=0
emit=none
while [ $# -gt 0 ]; do
	case "$1" in
		--events) events=$2; shift 2 ;;
		--batch) batch=$2; shift 2 ;;
		--fold-every) fold_every=$2; shift 2 ;;
		--partitions) partitions=$2; shift 2 ;;
		--check) check=1; emit=changes; shift ;;
		--emit) emit=changes; shift ;;
		--keep) keep=1; shift ;;
		*) echo "usage: $0 [--events N] [--batch B] [--fold-every F] [--partitions K] [--check] [--keep]" >&2; exit 2 ;;
	esac
done
if [ -z "$events" ]; then
	if [ "$check" -eq 1 ]; then events=100000; else events=2000000; fi
fi

src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/tests/lib/common.sh"

# root-only steps first; the rest runs as an unprivileged user
adstream_enter tests/bench/core_bench.sh "${args[@]}"

make -s -C "$src/tests/adgen" >/dev/null
work=$(mktemp -d /tmp/adstream-bench.XXXXXX)
port=$(adstream_free_port)
cleanup() {
	adstream_pg_stop "$work/pg"
	if [ "$keep" -eq 0 ]; then rm -rf "$work"; else echo "# kept $work"; fi
}
trap cleanup EXIT

echo "# generating $events events into $work"
"$src/tests/adgen/adgen" --events "$events" --partitions "$partitions" \
	--messages "$work/messages.copy" --truth "$work/truth.copy" --rows "$work/rows.copy"

adstream_pg_start "$work/pg" "$port" "adstream.fold_interval = 0
shared_buffers = 2GB
max_wal_size = 8GB
checkpoint_timeout = 30min
work_mem = 64MB
maintenance_work_mem = 512MB"
psql_cmd=(psql -X -q -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)

"${psql_cmd[@]}" <<SQL
CREATE EXTENSION adstream;
SELECT adstream.create_pipeline('bench', max_message_bytes => 4096, emit_mode => '$emit');
CREATE TABLE raw (seq bigint PRIMARY KEY, partition int, "offset" bigint, kafka_ms bigint, msg bytea);
COPY raw FROM '$work/messages.copy';
CREATE TABLE truth (seq bigint, status text, reason text, event_id text, event_type text,
                    ad_id text, window_start_ms bigint, cost_micros bigint);
COPY truth FROM '$work/truth.copy';
CREATE TABLE plain_events (event_id uuid, event_type text, ad_id text, event_time timestamptz,
                           user_id text, campaign_id text, advertiser_id text, store_id text,
                           cost numeric, region text);
CREATE TABLE fold_time (secs float8);
-- The batches as a consumer worker hands them to the core, built before the
-- clock starts: the time measured is the core's, not the harness's.
CREATE TABLE batches (b int PRIMARY KEY, msgs bytea[], parts int[], offs bigint[],
                      ts timestamptz[]);
INSERT INTO batches
SELECT seq / $batch, array_agg(msg ORDER BY seq), array_agg(partition ORDER BY seq),
       array_agg("offset" ORDER BY seq), array_agg(to_timestamp(kafka_ms / 1000.0) ORDER BY seq)
  FROM raw GROUP BY seq / $batch;
-- Ingest batch after batch, one transaction each; every fold_every batches
-- fold the aggregate increments into minute_stat on the same backend, so
-- the time counts both.
CREATE PROCEDURE run_batches(fold_every int)
LANGUAGE plpgsql AS \$\$
DECLARE
	r record;
	k int := 0;
	n int;
	t timestamptz;
	folding float8 := 0;
BEGIN
	SELECT count(*) INTO n FROM batches;
	FOR r IN SELECT * FROM batches ORDER BY b LOOP
		PERFORM adstream.ingest('bench', r.msgs, 'ad-events', r.parts, r.offs, r.ts);
		COMMIT;
		k := k + 1;
		IF k % fold_every = 0 OR k = n THEN
			t := clock_timestamp();
			PERFORM adstream.fold_minute_stats(100000000);
			COMMIT;
			folding := folding + extract(epoch FROM clock_timestamp() - t);
		END IF;
	END LOOP;
	INSERT INTO fold_time VALUES (folding);
	COMMIT;
END
\$\$;
VACUUM ANALYZE raw, batches;
CHECKPOINT;
SQL

echo "# running: core over batches of $batch, then the COPY baseline"
"${psql_cmd[@]}" -t -A >"$work/figures.txt" <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
CALL run_batches($fold_every);
SELECT extract(epoch FROM clock_timestamp()) - :t0 AS core_secs \gset
CHECKPOINT;
SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
COPY plain_events FROM '$work/rows.copy';
SELECT extract(epoch FROM clock_timestamp()) - :t1 AS copy_secs \gset
SELECT 'core_secs=' || round(:core_secs, 3);
SELECT 'copy_secs=' || round(:copy_secs, 3);
SELECT 'fold_secs=' || round(secs::numeric, 3) FROM fold_time;
-- increments folded away leave dead rows; autovacuum would reclaim them
VACUUM adstream.minute_delta;
SELECT 'stored_bytes=' || (pg_total_relation_size('adstream.event')
                         + pg_total_relation_size('adstream.minute_stat')
                         + pg_total_relation_size('adstream.minute_delta'));
SELECT 'event_bytes=' || pg_total_relation_size('adstream.event');
SELECT 'minute_bytes=' || pg_total_relation_size('adstream.minute_stat')
                          + pg_total_relation_size('adstream.minute_delta');
SELECT 'copy_bytes=' || pg_total_relation_size('plain_events');
SELECT 'accepted=' || count(*) FROM adstream.event;
SELECT 'minute_rows=' || count(*) FROM adstream.minute_stat;
SQL
. <(sed -n 's/^\([a-z_]*\)=\(.*\)$/\1=\2/p' "$work/figures.txt")

awk -v n="$events" -v core="$core_secs" -v copy="$copy_secs" -v stored="$stored_bytes" \
	-v acc="$accepted" -v ev="$event_bytes" -v mi="$minute_bytes" \
	-v cb="$copy_bytes" -v mr="$minute_rows" -v b="$batch" -v fe="$fold_every" \
	-v fold="$fold_secs" 'BEGIN {
	printf "events:                 %d (batches of %d, %d accepted, %d minute rows)\n", n, b, acc, mr
	printf "core, ingest and folds: %.3f s  %9.0f events/s  (folding every %d batches: %.3f s)\n", core, n / core, fe, fold
	printf "core, ingest alone:     %.3f s  %9.0f events/s\n", core - fold, n / (core - fold)
	printf "COPY baseline:          %.3f s  %9.0f rows/s\n", copy, n / copy
	printf "ratio core/COPY:        %.3f (ingest alone: %.3f)\n", (n / core) / (n / copy), (n / (core - fold)) / (n / copy)
	printf "bytes per stored event: %.1f (events with their indexes %.1f, aggregates %.1f; plain COPY row %.1f)\n",
		stored / acc, ev / acc, mi / acc, cb / n
}'

echo "# checking the tables against the generator's ground truth"
"${psql_cmd[@]}" -t -A -f "$src/tests/lib/truth_checks.sql" >"$work/check.txt"
"${psql_cmd[@]}" -t -A >>"$work/check.txt" <<SQL
-- replaying the whole stream changes nothing
CREATE TEMP TABLE before AS SELECT * FROM adstream.minute_stat;
CALL run_batches($fold_every);
SELECT CASE WHEN count(*) = 0 THEN 'ok' ELSE 'not ok' END || ' - replaying the stream from offset 0 changes no aggregate'
  FROM ((TABLE before EXCEPT TABLE adstream.minute_stat)
        UNION ALL (TABLE adstream.minute_stat EXCEPT TABLE before)) d;
SELECT CASE WHEN count(*) = (SELECT count(*) FROM truth WHERE status = 'rejected')
            THEN 'ok' ELSE 'not ok' END || ' - replaying writes no dead letter twice'
  FROM adstream.dead_letter;
SQL
expected_ok=9
if [ "$emit" = changes ]; then
	"${psql_cmd[@]}" -t -A >>"$work/check.txt" <<SQL
CREATE TEMP TABLE records AS
SELECT record_uuid, version, payload::jsonb AS r FROM adstream.outbox;
\\i $src/tests/lib/record_checks.sql
SQL
	expected_ok=12
fi
cat "$work/check.txt"
if grep -q '^not ok' "$work/check.txt" || [ "$(grep -c '^ok' "$work/check.txt")" -ne "$expected_ok" ]; then
	exit 1
fi
