#!/bin/bash
# The README's demo command, briefly: it must show live figures within a
# minute (aggregates, attributed orders and revenue), and Ctrl-C must stop
# everything it started.  Prints TAP lines.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp /tmp/adstream-demo-smoke.XXXXXX)
trap 'rm -f "$out"' EXIT

# a new session whose processes take Ctrl-C (SIGINT) the way a terminal's do
setsid python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp("bash", ["bash", sys.argv[1], "--rate", "1000"])' "$src/tests/demo.sh" >"$out" 2>&1 &
leader=$!

shown=0
for _ in $(seq 1 600); do
	if grep -q "accepted events/s" "$out" && grep -q "^ ad-[0-9]" "$out" &&
		grep -q "records sent: [1-9][0-9]* in [1-9]" "$out" &&
		grep -q "orders: [1-9][0-9]* decided ([1-9][0-9]* to a click" "$out" &&
		grep -q "records sent to attributed-orders: [1-9]" "$out" &&
		grep -q "attributed_revenue" "$out" && grep -q "^ c-[0-9]* *| EUR" "$out" &&
		grep -q "dead_letter\|reason" "$out"; then
		shown=1
		break
	fi
	kill -0 "$leader" 2>/dev/null || break
	sleep 0.1
done
if [ "$shown" -eq 1 ]; then
	echo "ok - the demo shows live per-ad minutes, attributed orders and revenue per campaign, output records of both sent to Kafka, and dead letters"
else
	echo "not ok - the demo shows live per-ad minutes, attributed orders and revenue per campaign, output records of both sent to Kafka, and dead letters"
	sed 's/^/#   /' "$out" | tail -30
fi

work=$(sed -n 's/^demo: starting the embedded Kafka and PostgreSQL in //p' "$out" | head -1)
kill -INT -- "-$leader" 2>/dev/null
stopped=0
for _ in $(seq 1 300); do
	if ! kill -0 "$leader" 2>/dev/null; then
		stopped=1
		break
	fi
	sleep 0.1
done
if [ "$stopped" -eq 1 ] && [ -n "$work" ] && ! pgrep -f "$work" >/dev/null && [ ! -e "$work" ]; then
	echo "ok - Ctrl-C stops the demo and everything it started"
else
	echo "not ok - Ctrl-C stops the demo and everything it started"
	pgrep -af "${work:-adstream-demo}" | sed 's/^/#   /'
	kill -KILL -- "-$leader" 2>/dev/null
fi
