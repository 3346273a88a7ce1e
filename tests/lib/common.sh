# Shell functions shared by the test, benchmark and demo scripts.
#
# PostgreSQL refuses to run as root.  Scripts that start a server therefore
# do their root-only steps (installing packages, `make install`) first and
# then continue as an ordinary user: as root, in a copy of the tree owned by
# the `postgres` system user; otherwise as the invoking user.

PG_BINDIR=${PG_BINDIR:-}

# Install packages, build, and install the extension (sudo when not root).
adstream_install_and_build() {
	local src=$1
	"$src/tests/install-deps.sh"
	local sudo_cmd=()
	[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
	make -s -C "$src" >/dev/null
	"${sudo_cmd[@]}" make -s -C "$src" install >/dev/null
	echo "build: adstream built and installed into $(pg_config --pkglibdir)"
}

# adstream_enter SCRIPT ARGS...: the start of a script that needs adstream
# installed and a server of its own.  Unless already re-run (ADSTREAM_SRC
# set), install and build; then, as root, re-run "$src/SCRIPT ARGS" as an
# unprivileged user and exit with its status.  Otherwise return and go on.
adstream_enter() {
	[ -n "${ADSTREAM_SRC:-}" ] && return 0
	adstream_install_and_build "$src" || exit 1
	if [ "$(id -u)" -eq 0 ]; then
		adstream_run_unprivileged "$src" "$@"
		exit
	fi
}

# Run "$src/$script args..." as an unprivileged user in a scratch copy of the
# tree, so the checkout stays clean and root never starts PostgreSQL.  The
# copy is removed after a successful or interrupted (Ctrl-C or SIGTERM) run,
# and kept (and named) after a failure.
adstream_run_unprivileged() {
	local src=$1 script=$2
	shift 2
	local work rc=0
	work=$(mktemp -d /tmp/adstream-run.XXXXXX)
	tar -C "$src" --exclude=.git --exclude='*.o' --exclude='*.so' --exclude='*.bc' \
		-cf - . | tar -C "$work" -xf -
	if [ "$(id -u)" -eq 0 ]; then
		chown -R postgres:postgres "$work"
		runuser -u postgres -- env ADSTREAM_SRC="$src" bash "$work/$script" "$@" || rc=$?
	else
		ADSTREAM_SRC="$src" bash "$work/$script" "$@" || rc=$?
	fi
	if [ "$rc" -eq 0 ] || [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ]; then
		rm -rf "$work"
	else
		echo "# scratch tree kept for inspection: $work"
	fi
	return "$rc"
}

# The directory of PostgreSQL's server programs.
adstream_pg_bindir() {
	[ -n "$PG_BINDIR" ] || PG_BINDIR=$(pg_config --bindir)
	echo "$PG_BINDIR"
}

# Start a private server: adstream_pg_start DIR PORT [extra postgresql.conf lines]
adstream_pg_start() {
	local dir=$1 port=$2 extra=${3:-}
	local bin
	bin=$(adstream_pg_bindir)
	rm -rf "$dir"
	mkdir -p "$dir"
	"$bin/initdb" -D "$dir/data" -E UTF8 --locale=C.UTF-8 -A trust -U postgres >"$dir/initdb.log" 2>&1
	cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'adstream'
$extra
CONF
	"$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

# adstream_pg_scene NAME [CONF]: a scratch directory $work
# (/tmp/adstream-NAME.*) with a private server in it (adstream preloaded,
# plus CONF lines), psql_cmd to query it, and both gone on exit.
adstream_pg_scene() {
	work=$(mktemp -d "/tmp/adstream-$1.XXXXXX")
	port=$(adstream_free_port)
	trap 'adstream_pg_stop "$work/pg"; rm -rf "$work"' EXIT
	adstream_pg_start "$work/pg" "$port" "${2:-}" || { echo "not ok - PostgreSQL starts"; exit 1; }
	psql_cmd=(psql -X -q -t -A -h "$work/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
}

adstream_pg_stop() {
	local dir=$1
	local bin
	bin=$(adstream_pg_bindir)
	[ -f "$dir/data/postmaster.pid" ] && "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# A free TCP port on 127.0.0.1, for a private server's port number.
adstream_free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}
