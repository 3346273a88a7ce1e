#!/bin/bash
# Installs the Debian (bookworm) packages adstream needs to build, test and
# run its demo, skipping those already installed.  Runs apt-get as root, or
# through sudo for an ordinary user.
set -euo pipefail

packages=(
	gcc make pkg-config
	postgresql-15 postgresql-server-dev-15 postgresql-15-cron
	librdkafka-dev uuid-dev kcat libipc-run-perl
)

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
	if ! command -v sudo >/dev/null; then
		echo "install-deps: not root and no sudo; run this script as root" >&2
		exit 1
	fi
	sudo_cmd=(sudo)
fi

installed_version() {
	dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null |
		awk '$1 == "installed" { print $2 }'
}

missing=()
for p in "${packages[@]}"; do
	[ -n "$(installed_version "$p")" ] || missing+=("$p")
done
# The server must be the same minor release as the headers we build with.
server=$(installed_version postgresql-15)
headers=$(installed_version postgresql-server-dev-15)
if [ -n "$server" ] && [ -n "$headers" ] && [ "$server" != "$headers" ]; then
	missing+=(postgresql-15 postgresql-server-dev-15)
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
