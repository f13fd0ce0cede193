# Sourced by tools/all-in-one.sh and tools/run-tests.sh: make sure the
# system packages and the Python virtualenv the project needs are there.
# Sets VENV.
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${CRYPTOCLOUD_VENV:-$TOP/.venv}
PYTHON=${PYTHON:-python3}

log() { printf '\n== %s\n' "$*" >&2; }

_missing=()
command -v openssl >/dev/null || _missing+=(openssl)
command -v git >/dev/null || _missing+=(git)
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || _missing+=(python3-venv)
if [ ${#_missing[@]} -gt 0 ]; then
    log "Installing ${_missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${_missing[@]}" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "Creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
_stamp="$VENV/.cryptocloud-reqs"
_want=$(cat "$TOP/requirements.txt" "$TOP/test-requirements.txt" \
    "$TOP/setup.cfg" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
    log "Installing Python packages into $VENV"
    "$VENV/bin/pip" install -q -r "$TOP/requirements.txt" \
        -r "$TOP/test-requirements.txt" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    "$VENV/bin/pip" install -q --no-deps -e "$TOP" 2>&1 \
        | grep -v '^WARNING: Location' >&2 || true
    "$VENV/bin/python" -c 'import cryptocloud.conf' \
        && echo "$_want" > "$_stamp"
fi
