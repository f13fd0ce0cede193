# Sourced by tools/run-tests.sh (after setup-env.sh, which sets VENV):
# make sure a Docker Engine and an image registry run on this machine for
# the container tests, starting them when they do not.
#
# - installs Debian's docker.io, docker-registry, debootstrap and haproxy
#   (the service endpoint proxy) when missing;
# - starts dockerd with its own data root and socket under $DOCKER_STATE
#   (no bridge, no iptables rules: the containers use host networking);
# - starts Debian's registry on a free 127.0.0.1 port with htpasswd auth
#   (a generated password kept in $DOCKER_STATE/registry, mode 0600).
#
# Exports CRYPTOCLOUD_TEST_DOCKER_URL, CRYPTOCLOUD_TEST_REGISTRY,
# CRYPTOCLOUD_TEST_REGISTRY_USER and CRYPTOCLOUD_TEST_REGISTRY_PASSWORD.
# Both servers keep running after the tests (the next run reuses them and
# the images already built); `tools/docker-env.sh stop` stops them.

DOCKER_STATE=${CRYPTOCLOUD_DOCKER_STATE:-/var/lib/cryptocloud-ci}

_docker_log() { printf '\n== %s\n' "$*" >&2; }

_docker_install() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-registry >/dev/null || missing+=(docker-registry)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v curl >/dev/null || missing+=(curl)
    # The stable service endpoint's proxy (tests of [proxy] driver).
    command -v haproxy >/dev/null || missing+=(haproxy)
    if [ ${#missing[@]} -gt 0 ]; then
        _docker_log "Installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            "${missing[@]}" >&2
    fi
}

_docker_start_engine() {
    local dir=$DOCKER_STATE/docker
    local sock=$dir/docker.sock
    export CRYPTOCLOUD_TEST_DOCKER_URL=unix://$sock
    if DOCKER_HOST=$CRYPTOCLOUD_TEST_DOCKER_URL docker version \
            >/dev/null 2>&1; then
        return 0
    fi
    _docker_log "Starting dockerd ($sock)"
    mkdir -p "$dir"
    if [ -f "$dir/dockerd.pid" ] && ! kill -0 "$(cat "$dir/dockerd.pid")" \
            2>/dev/null; then
        rm -f "$dir/dockerd.pid"
    fi
    setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" \
        -H "unix://$sock" --pidfile "$dir/dockerd.pid" \
        --bridge=none --iptables=false --ip-masq=false \
        >"$dir/dockerd.log" 2>&1 </dev/null &
    local i
    for i in $(seq 1 60); do
        if DOCKER_HOST=$CRYPTOCLOUD_TEST_DOCKER_URL docker version \
                >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.5
    done
    tail -20 "$dir/dockerd.log" >&2
    echo "dockerd did not start; see $dir/dockerd.log" >&2
    return 1
}

_docker_start_registry() {
    local dir=$DOCKER_STATE/registry
    mkdir -p "$dir/storage"
    chmod 700 "$dir"
    if [ ! -s "$dir/password" ]; then
        (umask 077 && "$VENV/bin/python" -c \
            'import secrets; print(secrets.token_urlsafe(24))' \
            >"$dir/password")
        rm -f "$dir/htpasswd"
    fi
    local password
    password=$(cat "$dir/password")
    if [ ! -s "$dir/htpasswd" ]; then
        "$VENV/bin/python" - "$password" >"$dir/htpasswd" <<'EOF'
import sys

import bcrypt

print('cryptocloud:' + bcrypt.hashpw(sys.argv[1].encode(),
                                     bcrypt.gensalt()).decode())
EOF
    fi
    export CRYPTOCLOUD_TEST_REGISTRY_USER=cryptocloud
    export CRYPTOCLOUD_TEST_REGISTRY_PASSWORD=$password
    local port
    port=$(cat "$dir/port" 2>/dev/null || true)
    if [ -n "$port" ] && [ -f "$dir/registry.pid" ] \
            && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null \
            && curl -s -o /dev/null --max-time 2 \
                "http://127.0.0.1:$port/v2/"; then
        export CRYPTOCLOUD_TEST_REGISTRY=127.0.0.1:$port
        return 0
    fi
    port=$("$VENV/bin/python" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
auth:
  htpasswd:
    realm: cryptocloud-test
    path: $dir/htpasswd
EOF
    _docker_log "Starting docker-registry on 127.0.0.1:$port"
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" \
        2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
    echo "$port" >"$dir/port"
    local i
    for i in $(seq 1 40); do
        # 401 (auth wanted) shows that it serves.
        if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/v2/"
        then
            export CRYPTOCLOUD_TEST_REGISTRY=127.0.0.1:$port
            return 0
        fi
        sleep 0.25
    done
    tail -20 "$dir/registry.log" >&2
    echo "docker-registry did not start; see $dir/registry.log" >&2
    return 1
}

_docker_stop() {
    local pidfile
    for pidfile in "$DOCKER_STATE/registry/registry.pid" \
            "$DOCKER_STATE/docker/dockerd.pid"; do
        if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            rm -f "$pidfile"
        fi
    done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    # Run, not sourced.
    set -eu
    case "${1:-start}" in
        stop) _docker_stop ;;
        start)
            TOP=$(cd "$(dirname "$0")/.." && pwd)
            VENV=${CRYPTOCLOUD_VENV:-$TOP/.venv}
            _docker_install
            _docker_start_engine
            _docker_start_registry
            env | grep '^CRYPTOCLOUD_TEST_\(DOCKER\|REGISTRY\)' \
                | grep -v PASSWORD
            ;;
        *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
    esac
else
    _docker_install && _docker_start_engine && _docker_start_registry
fi
