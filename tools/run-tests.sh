#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian 12 machine, run
# the whole suite (unit + functional, against the real MariaDB, PostgreSQL,
# RabbitMQ, Docker Engine, Debian's registry and openssl), and print
# "N passed, N failed, N skipped" from the results.
#
# Docker Engine and the registry are installed and started by
# tools/docker-env.sh; both images are built from this tree and pushed
# before the tests run, and the container tests run them. Keystone is
# installed into a virtualenv of its own by tools/keystone-env.sh; the
# Keystone tests start and stop their own.
#
#   bash tools/run-tests.sh              # everything
#   bash tools/run-tests.sh REGEX        # only tests whose id matches REGEX
set -euo pipefail
source "$(dirname "$0")/setup-env.sh"
cd "$TOP"

# -- database and message servers the functional tests use -------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
    echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
if ! port_open 3306; then
    log "Starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_port 3306
fi
if ! port_open 5432; then
    log "Starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    wait_port 5432
fi

if ! port_open 5672; then
    log "Starting RabbitMQ"
    rabbitmq-server -detached
    wait_port 5672
fi

# -- Docker Engine, registry and the two images the container tests run -------
source "$TOP/tools/docker-env.sh"
export CRYPTOCLOUD_TEST_REQUIRE_DOCKER=1
log "Building the vHSM and crypto-service images and pushing them"
images_dir=$DOCKER_STATE/images
mkdir -p "$images_dir"
(umask 077 && cat >"$images_dir/build.conf" <<EOF
[images]
docker_url = $CRYPTOCLOUD_TEST_DOCKER_URL
source_dir = $TOP
work_dir = $images_dir
[registry]
address = $CRYPTOCLOUD_TEST_REGISTRY
username = $CRYPTOCLOUD_TEST_REGISTRY_USER
password = $CRYPTOCLOUD_TEST_REGISTRY_PASSWORD
EOF
)
"$VENV/bin/cryptocloud-manage" --config-file "$images_dir/build.conf" \
    images build --push --no-record >"$images_dir/pushed.json"
image_ref() {
    "$VENV/bin/python" -c 'import json, sys
print(next(i["reference"] for i in json.load(open(sys.argv[1]))
           if i["kind"] == sys.argv[2]))' "$images_dir/pushed.json" "$1"
}
CRYPTOCLOUD_TEST_VHSM_IMAGE=$(image_ref vhsm)
CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE=$(image_ref cryptoservice)
export CRYPTOCLOUD_TEST_VHSM_IMAGE CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE
echo "vHSM image: $CRYPTOCLOUD_TEST_VHSM_IMAGE" >&2
echo "crypto-service image: $CRYPTOCLOUD_TEST_CRYPTOSERVICE_IMAGE" >&2

# -- Keystone, installed in its own virtualenv (each Keystone test starts one) -
source "$TOP/tools/keystone-env.sh"
export CRYPTOCLOUD_TEST_REQUIRE_KEYSTONE=1

# -- the suite ---------------------------------------------------------------
log "Running the test suite"
export CRYPTOCLOUD_TEST_REQUIRE_DB=1
rm -rf .stestr
"$VENV/bin/stestr" init >/dev/null
status=0
"$VENV/bin/stestr" run --concurrency "${CRYPTOCLOUD_TEST_CONCURRENCY:-2}" \
    "$@" || status=$?
"$VENV/bin/stestr" last --subunit > .stestr/last.subunit || true
"$VENV/bin/python" tools/count_results.py .stestr/last.subunit || status=1
exit $status
