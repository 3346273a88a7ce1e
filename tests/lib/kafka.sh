# Shell helpers for the embedded Kafka (tests/kafka/mockkafka).  Source
# after tests/lib/common.sh; needs tests/kafka built.

# adstream_kafka_start DIR [--brokers N] TOPIC:PARTITIONS...: start the
# embedded Kafka with its files in DIR (bootstrap, control, kafka.pid,
# kafka.log); returns once it is ready, non-zero if it is not within 10 s.
adstream_kafka_start() {
	local dir=$1
	shift
	local args=() t
	if [ "${1:-}" = --brokers ]; then
		args+=(--brokers "$2")
		shift 2
	fi
	for t in "$@"; do args+=(--topic "$t"); done
	rm -f "$dir/bootstrap" "$dir/control"
	"$src/tests/kafka/mockkafka" "${args[@]}" --bootstrap-file "$dir/bootstrap" \
		--control-file "$dir/control" >"$dir/kafka.log" 2>&1 &
	echo $! >"$dir/kafka.pid"
	for _ in $(seq 1 100); do
		[ -s "$dir/control" ] && [ -s "$dir/bootstrap" ] && return 0
		sleep 0.1
	done
	return 1
}

# adstream_kafka_cmd DIR COMMAND...: send one control command; prints the
# reply and fails unless it starts with "ok".
adstream_kafka_cmd() {
	local dir=$1 reply
	shift
	exec 9<>"/dev/tcp/127.0.0.1/$(cat "$dir/control")" || return 1
	echo "$*" >&9
	read -r -t 10 reply <&9
	exec 9>&-
	echo "$reply"
	[ "${reply%% *}" = ok ]
}

# adstream_kafka_stop DIR: stop it and wait (up to 10 s) until it is gone.
adstream_kafka_stop() {
	local dir=$1 pid
	[ -f "$dir/kafka.pid" ] || return 0
	pid=$(cat "$dir/kafka.pid")
	kill "$pid" 2>/dev/null
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$dir/kafka.pid"
}

# adstream_kafka_env NAME [--brokers N] TOPIC:PARTITIONS... [-- PGCONF]:
# the scene of a Kafka suite.  Builds the generator and the Kafka tools,
# makes the scratch directory $work (/tmp/adstream-NAME.*), starts the
# embedded Kafka and a private PostgreSQL with adstream preloaded in
# database postgres (plus PGCONF lines), sets psql_cmd, and stops it all on
# exit, with $producer if a suite set it.  Prints "not ok" and exits if a
# step fails.
adstream_kafka_env() {
	local name=$1 pgconf="" kafka_args=()
	shift
	while [ $# -gt 0 ]; do
		if [ "$1" = -- ]; then pgconf=$2; shift 2; else kafka_args+=("$1"); shift; fi
	done
	make -s -C "$src/tests/adgen" >/dev/null && make -s -C "$src/tests/kafka" >/dev/null || {
		echo "not ok - build the generator and the embedded Kafka"; exit 1; }
	producer=
	adstream_pg_scene "$name" "adstream.database = 'postgres'
$pgconf"
	trap adstream_kafka_env_stop EXIT
	adstream_kafka_start "$work" "${kafka_args[@]}" || { echo "not ok - embedded Kafka starts"; exit 1; }
}

adstream_kafka_env_stop() {
	[ -n "${producer:-}" ] && kill "$producer" 2>/dev/null
	adstream_pg_stop "$work/pg"
	adstream_kafka_stop "$work"
	rm -rf "$work"
}

# adstream_poll SQL [TENTHS]: wait (by default at most 30 s) until SQL
# returns t; non-zero if it never does.
adstream_poll() {
	for _ in $(seq 1 "${2:-300}"); do
		[ "$("${psql_cmd[@]}" -c "$1" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

# adstream_wait_applied N: wait (at most 3 min) until the stored next
# offsets of every pipeline add up to N messages.
adstream_wait_applied() {
	adstream_poll "SELECT coalesce(sum(next_offset), 0) = $1 FROM adstream.consumed_offset" 1800
}

# adstream_check_truth: load $work/messages.copy and $work/truth.copy (the
# producer's ground truth), fold, and run tests/lib/truth_checks.sql; prints
# its TAP lines and succeeds only if all 7 are ok.
adstream_check_truth() {
	"${psql_cmd[@]}" >/dev/null <<SQL || { echo "not ok - load ground truth"; return 1; }
CREATE TABLE IF NOT EXISTS raw (seq bigint PRIMARY KEY, partition int, "offset" bigint,
                                kafka_ms bigint, msg bytea);
CREATE TABLE IF NOT EXISTS truth (seq bigint, status text, reason text, event_id text,
                                  event_type text, ad_id text, window_start_ms bigint,
                                  cost_micros bigint);
TRUNCATE raw, truth;
COPY raw FROM '$work/messages.copy';
COPY truth FROM '$work/truth.copy';
SELECT adstream.fold_minute_stats(100000000);
SQL
	"${psql_cmd[@]}" -f "$src/tests/lib/truth_checks.sql" >"$work/check.txt" 2>&1
	cat "$work/check.txt"
	[ "$(grep -c '^ok' "$work/check.txt")" -eq 7 ] && ! grep -q '^not ok' "$work/check.txt"
}

# adstream_tap OK NAME: a TAP line, "ok" when OK is 0; a failure sets status=1.
adstream_tap() {
	if [ "$1" -eq 0 ]; then echo "ok - $2"; else echo "not ok - $2"; status=1; fi
}

# step NAME COMMAND...: run a fault-injection step and print one
# TAP line for it, with the command's output under a failure (which sets
# status=1).
step() {
	local name=$1
	shift
	if "$@" >"$work/step.log" 2>&1; then
		echo "ok - $name"
	else
		echo "not ok - $name"
		sed 's/^/#   /' "$work/step.log"
		status=1
	fi
}
