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

# 2. the core against a generated stream with ground truth
echo "# stream ground-truth suite"
bash tests/bench/core_bench.sh --check >"$log/stream.log" 2>&1
stream_rc=$?
n_stream=0
while read -r line; do
	case "$line" in
		"ok - "*) n_stream=$((n_stream + 1)); record ok "stream/${line#ok - }" ;;
		"not ok - "*) n_stream=$((n_stream + 1)); record not-ok "stream/${line#not ok - }" ;;
	esac
done <"$log/stream.log"
if [ "$stream_rc" -ne 0 ] || [ "$n_stream" -eq 0 ]; then
	[ "$stream_rc" -ne 0 ] && record not-ok "stream/exit-status"
	cat "$log/stream.log"
fi

# 3. every SQL example of the README runs
echo "# README examples"
bash tests/readme_examples.sh >"$log/readme.log" 2>&1
readme_rc=$?
n_readme=0
while read -r line; do
	case "$line" in
		"ok - "*) n_readme=$((n_readme + 1)); record ok "${line#ok - }" ;;
		"not ok - "*) n_readme=$((n_readme + 1)); record not-ok "${line#not ok - }" ;;
	esac
done <"$log/readme.log"
if [ "$readme_rc" -ne 0 ] || [ "$n_readme" -eq 0 ]; then
	[ "$n_readme" -eq 0 ] && record not-ok "readme/ran"
	cat "$log/readme.log"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
