#!/bin/bash
# Runs every ```sql block of README.md, in order, against a fresh server with
# adstream, and reports one TAP line per block: the examples must run.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

adstream_pg_scene readme

awk -v dir="$work" '
	/^```sql/ { n++; f = sprintf("%s/block%02d.sql", dir, n); inblock = 1; next }
	/^```/ && inblock { inblock = 0; close(f); next }
	inblock { print > f }
' "$src/README.md"

status=0
for f in "$work"/block*.sql; do
	[ -e "$f" ] || { echo "not ok - README has no sql blocks"; exit 1; }
	name=$(basename "$f" .sql)
	first=$(grep -m1 -v '^--' "$f" | cut -c1-60)
	if psql -X -q -h "$work/pg" -p "$port" -U postgres -d postgres \
		-v ON_ERROR_STOP=1 -f "$f" >"$f.out" 2>&1; then
		echo "ok - README $name: $first"
	else
		echo "not ok - README $name: $first"
		sed 's/^/#   /' "$f.out"
		status=1
	fi
done
exit $status
