# Sourced by tools/run-tests.sh (after setup-env.sh): make sure Keystone
# is installed for the functional tests of [api] auth_strategy = keystone
# (cryptocloud/tests/functional/test_keystone.py).
#
# Keystone and gunicorn go into a virtualenv of their own (default
# /var/lib/cryptocloud-ci/keystone-venv, or $CRYPTOCLOUD_KEYSTONE_VENV),
# so that Keystone's requirements never change the project's .venv.
# Nothing is started here: each Keystone test starts its own Keystone on
# a free 127.0.0.1 port, with its own SQLite database and keys, and stops
# it. Once installed, sourcing this again only compares a stamp file.
#
# Exports CRYPTOCLOUD_TEST_KEYSTONE_PYTHON (that virtualenv's python).
#
#   source tools/keystone-env.sh     # install when missing, export
#   bash tools/keystone-env.sh       # the same, and print the variable

_KEYSTONE_DEFAULT_VENV=/var/lib/cryptocloud-ci/keystone-venv
KEYSTONE_VENV=${CRYPTOCLOUD_KEYSTONE_VENV:-$_KEYSTONE_DEFAULT_VENV}
# Known to work together; a change here reinstalls (the stamp differs).
_KEYSTONE_PACKAGES='keystone~=30.0 gunicorn~=27.0'

_keystone_log() { printf '\n== %s\n' "$*" >&2; }

_keystone_install() {
    local stamp=$KEYSTONE_VENV/.cryptocloud-packages
    if [ -x "$KEYSTONE_VENV/bin/keystone-manage" ] \
            && [ -x "$KEYSTONE_VENV/bin/gunicorn" ] \
            && [ "$(cat "$stamp" 2>/dev/null)" = "$_KEYSTONE_PACKAGES" ]
    then
        return 0
    fi
    _keystone_log "Installing Keystone into $KEYSTONE_VENV"
    local started=$SECONDS
    if [ ! -x "$KEYSTONE_VENV/bin/python" ]; then
        mkdir -p "$(dirname "$KEYSTONE_VENV")"
        "${PYTHON:-python3}" -m venv "$KEYSTONE_VENV" || return 1
    fi
    # shellcheck disable=SC2086 # a list of requirement specifiers
    "$KEYSTONE_VENV/bin/pip" install -q $_KEYSTONE_PACKAGES 2>&1 \
        | grep -v '^WARNING: Location' >&2
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        echo "pip could not install Keystone into $KEYSTONE_VENV" >&2
        return 1
    fi
    "$KEYSTONE_VENV/bin/python" -W ignore \
        -c 'import keystone.server, gunicorn' || return 1
    echo "$_KEYSTONE_PACKAGES" >"$stamp"
    echo "Keystone installed in $((SECONDS - started)) s" >&2
}

if _keystone_install; then
    export CRYPTOCLOUD_TEST_KEYSTONE_PYTHON=$KEYSTONE_VENV/bin/python
else
    echo "Keystone is not installed; the Keystone tests will fail" >&2
    if [ "${BASH_SOURCE[0]}" = "$0" ]; then
        exit 1
    fi
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "CRYPTOCLOUD_TEST_KEYSTONE_PYTHON=$CRYPTOCLOUD_TEST_KEYSTONE_PYTHON"
fi
