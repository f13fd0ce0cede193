#!/usr/bin/env bash
# The main job on one machine: set up, then run cryptocloud-all-in-one —
# admin API, conductor and a compute node in one process (SQLite, the
# in-process bus, the process driver) — which provisions a vHSM group and
# a crypto service, signs with SM2 through the service endpoint, checks the
# signature with openssl, prints endpoint, credential and curl examples and
# serves until Ctrl-C.
#
#   bash tools/all-in-one.sh [--state-dir DIR] [--no-wait] [--help]
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
cd "$TOP"
exec "$VENV/bin/cryptocloud-all-in-one" "$@"
