#!/usr/bin/env bash
# The main job on one machine: set up, start a vHSM group of two and a
# crypto-service instance, create an SM2 key, sign with it through the
# tenant REST API, check the signature with openssl, print the endpoint, the
# credential and a curl example, and keep serving until Ctrl-C.
#
#   bash tools/all-in-one.sh [--workdir DIR]
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
exec "$VENV/bin/python" "$TOP/tools/quickstart.py" "$@"
