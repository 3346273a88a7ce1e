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
