#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian 12 machine, run
# the whole suite (unit + functional, against the real MariaDB, PostgreSQL,
# RabbitMQ and openssl), and print "N passed, N failed, N skipped" from the results.
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
