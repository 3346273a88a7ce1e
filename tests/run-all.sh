#!/bin/bash
# The test command: installs what is missing, builds and installs adstream,
# then runs every suite as an unprivileged user and prints
# "N passed, N failed".  Exits non-zero when anything fails.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/common.sh"

adstream_install_and_build "$src"
adstream_run_unprivileged "$src" tests/run-suites.sh "$@"
