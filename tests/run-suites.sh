#!/bin/bash
# Runs every suite in this (scratch) tree as an unprivileged user.  Each
# suite reports TAP-style lines ("ok - name" / "not ok - name"); this script
# counts them and ends with "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
log=$(mktemp -d /tmp/adstream-suites.XXXXXX)
passed=0
failed=0

record() {					# record ok|not-ok name
	if [ "$1" = ok ]; then
		passed=$((passed + 1))
		echo "ok - $2"
	else
		failed=$((failed + 1))
		echo "not ok - $2"
	fi
}

# 1. pg_regress suites (make installcheck on a temporary instance)
echo "# pg_regress suites"
make -s installcheck >"$log/regress.log" 2>&1
regress_rc=$?
n_regress=0
while read -r name status; do
	n_regress=$((n_regress + 1))
	if [ "$status" = ok ]; then record ok "regress/$name"; else record not-ok "regress/$name"; fi
done < <(sed -nE 's/^(test |     )?[[:space:]]*([a-z_0-9]+)[[:space:]]+\.\.\. (ok|FAILED).*/\2 \3/p' "$log/regress.log")
if [ "$regress_rc" -ne 0 ] || [ "$n_regress" -eq 0 ]; then
	[ "$n_regress" -eq 0 ] && record not-ok "regress/ran"
	cat "$log/regress.log"
	[ -f regression.diffs ] && cat regression.diffs
fi

# run_tap_suite NAME PREFIX COMMAND...: run a suite that prints TAP lines;
# count its lines, and fail it if it exits non-zero or reports nothing.
run_tap_suite() {
	local name=$1 prefix=$2
	shift 2
	local out="$log/$name.log" n=0 rc
	"$@" >"$out" 2>&1
	rc=$?
	while read -r line; do
		case "$line" in
			"ok - "*) n=$((n + 1)); record ok "$prefix${line#ok - }" ;;
			"not ok - "*) n=$((n + 1)); record not-ok "$prefix${line#not ok - }" ;;
		esac
	done <"$out"
	if [ "$rc" -ne 0 ] || [ "$n" -eq 0 ]; then
		[ "$n" -eq 0 ] && record not-ok "$name/ran"
		[ "$rc" -ne 0 ] && record not-ok "$name/exit-status"
		cat "$out"
	fi
}

# 2. the core against a generated stream with ground truth
echo "# stream ground-truth suite"
run_tap_suite stream stream/ bash tests/bench/core_bench.sh --check

# 3. concurrent batches of one pipeline
echo "# concurrent ingest"
run_tap_suite concurrent concurrent/ bash tests/concurrent_ingest.sh

# 4. Kafka end to end, through the embedded Kafka: a clean run, a run whose
#    consumer worker is killed with SIGKILL 20 times, an ad-events and an
#    orders pipeline whose consumers and attributor are killed while orders
#    are attributed, and a run with broker, request and PostgreSQL faults;
#    then the exactly-once output of a sink, its producer stopped at each
#    failure point, killed and cut off
echo "# Kafka"
run_tap_suite kafka kafka/ bash tests/kafka_stream.sh
run_tap_suite kafka-2-workers kafka-2-workers/ bash tests/kafka_stream.sh --workers 2
run_tap_suite kafka-kill kafka-kill/ bash tests/kafka_kill.sh
run_tap_suite kafka-orders kafka-orders/ bash tests/kafka_orders.sh
run_tap_suite kafka-union kafka-union/ bash tests/kafka_union.sh
run_tap_suite kafka-faults kafka-faults/ bash tests/kafka_faults.sh
run_tap_suite kafka-positions kafka-positions/ bash tests/kafka_positions.sh
run_tap_suite kafka-output kafka-output/ bash tests/kafka_output.sh
# (against a real broker only; skipped unless ADSTREAM_TEST_BOOTSTRAP is set)
run_tap_suite read-committed read-committed/ bash tests/kafka_read_committed.sh

# the SQL API on a server that does not preload adstream
run_tap_suite no-preload no-preload/ bash tests/no_preload.sh

# maintenance: expiry and rollups under concurrent ingest, folds and
# maintenance sessions; then scheduled by pg_cron and handed back to the
# launcher
echo "# maintenance"
run_tap_suite maintenance-ingest maintenance-ingest/ bash tests/maintenance_ingest.sh
run_tap_suite pg-cron pg-cron/ bash tests/pg_cron.sh

# 5. the Pinot and Hive contracts in docker/ against emitted records
echo "# contracts"
run_tap_suite contracts contracts/ bash tests/contracts.sh

# 6. the README's demo command, briefly
echo "# demo"
run_tap_suite demo demo/ bash tests/demo_smoke.sh

# 7. every SQL example of the README runs
echo "# README examples"
run_tap_suite readme "" bash tests/readme_examples.sh

# 8. the benchmarks, briefly: each must run to the end and print its
#    figures, which are shown here and not asserted (timing is for
#    benchmarks, not tests; the README has full runs' figures).  The
#    attribution benchmark's baseline must pick the same ad event for every
#    order, and the union benchmark's keep the same versions, which is not
#    timing.
# bench_short NAME SED-SCRIPT COMMAND...: run it, show the lines SED-SCRIPT prints
bench_short() {
	local name=$1 filter=$2
	shift 2
	"$@" >"$log/bench-$name.txt" 2>&1 || {
		cat "$log/bench-$name.txt"
		return 1
	}
	sed -n "$filter" "$log/bench-$name.txt" | sed 's/^/# /'
	echo "ok - the $name benchmark runs and prints its figures"
}
for b in output attribution union; do
	echo "# $b benchmark (short)"
	case $b in
		output) run_tap_suite bench-output bench/ bench_short output '/records\/s\|latency/p' \
			bash tests/bench/output_bench.sh --events 50000 --seconds 5 ;;
		attribution) run_tap_suite bench-attribution bench/ bench_short attribution '/^== /,$p' \
			bash tests/bench/attribution_bench.sh --quick ;;
		union) run_tap_suite bench-union bench/ bench_short union '/records\/s\|ratio/p' \
			bash tests/bench/union_bench.sh --records 40000 ;;
	esac
	grep '^# ' "$log/bench-$b.log" 2>/dev/null
done

echo "$passed passed, $failed failed"
if [ "$failed" -eq 0 ]; then
	rm -rf "$log"
else
	echo "# suite logs kept in $log"
fi
[ "$failed" -eq 0 ]
