#!/usr/bin/env bash
# The whole check, as CI runs it: install what the tests need (idempotent), stop a system
# redis-server that apt may have started, then build, check formatting, lint, and test.
#
#   scripts/test.sh                       everything
#   scripts/test.sh --test differential   extra arguments go to `cargo test --workspace` (and
#                                         skip Redis's Tcl suite, scripts/redis-suite.sh)
#   SKIP_INSTALL=1 scripts/test.sh        skip the package checks
#
# Profile: debug. `cargo build --all-targets` compiles the test binaries that `cargo test`
# then reuses, so the suite builds once; a release build would add a second full compile on
# CI's 2 cores for no gain (the tests are I/O- and process-bound, not CPU-bound).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

stop_system_redis() {
    # Tests start their own servers on ephemeral ports; a packaged redis-server on 6379 would
    # not collide, but it has no business running during the tests. Stop it through its
    # service manager or its pid file only (never by process name).
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $SUDO systemctl stop redis-server >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1 && [ -x /etc/init.d/redis-server ]; then
        $SUDO service redis-server stop >/dev/null 2>&1 || true
    fi
    local pidfile=/run/redis/redis-server.pid
    if [ -f "$pidfile" ]; then
        local pid
        pid=$(cat "$pidfile")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            $SUDO kill "$pid" || true
        fi
    fi
}

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
    step "checking test dependencies"
    if ! command -v redis-server >/dev/null 2>&1 \
        || ! command -v redis-cli >/dev/null 2>&1 \
        || ! command -v redis-benchmark >/dev/null 2>&1 \
        || ! command -v redis-check-rdb >/dev/null 2>&1 \
        || ! command -v redis-check-aof >/dev/null 2>&1 \
        || [ ! -f /etc/redis/redis.conf ]; then
        step "installing redis-server and redis-tools"
        apt_install redis-server redis-tools
    fi
    stop_system_redis
    if ! command -v python3 >/dev/null 2>&1; then
        step "installing python3"
        apt_install python3 python3-pip
    fi
    if ! python3 -c 'import redis' >/dev/null 2>&1; then
        step "installing redis-py"
        python3 -m pip install --quiet redis \
            || python3 -m pip install --quiet --break-system-packages redis
    fi
    # Job-queue libraries the client tests run for real (tests/python/job_queues.py).
    if ! python3 -c 'import celery, kombu, rq, packaging' >/dev/null 2>&1; then
        step "installing celery and rq"
        python3 -m pip install --quiet celery rq packaging \
            || python3 -m pip install --quiet --break-system-packages celery rq packaging
    fi
    # BullMQ for the Node.js client test (tests/node, versions pinned by its package-lock).
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        step "installing node and npm"
        apt_install nodejs npm
    fi
    if [ ! -f tests/node/node_modules/bullmq/package.json ] \
        || [ ! -f tests/node/node_modules/ioredis/package.json ]; then
        step "installing bullmq and ioredis (npm)"
        (cd tests/node && { npm ci --silent --no-audit --no-fund || npm install --silent --no-audit --no-fund; })
    fi
    # Sidekiq for the Ruby client tests (tests/ruby): Debian's package, with redis-rb.
    if ! command -v sidekiq >/dev/null 2>&1 \
        || ! ruby -e 'require "sidekiq"; require "redis"' >/dev/null 2>&1; then
        step "installing ruby-sidekiq"
        apt_install ruby-sidekiq
    fi
    # Redis's own Tcl test suite (scripts/redis-suite.sh): tclsh, and the suite from Debian's
    # redis source package (fetched once into ~/.cache/strongbox).
    if ! command -v tclsh >/dev/null 2>&1; then
        step "installing tcl"
        apt_install tcl
    fi
    scripts/redis-suite.sh --fetch-only
    if command -v rustup >/dev/null 2>&1; then
        if ! cargo fmt --version >/dev/null 2>&1; then rustup component add rustfmt; fi
        if ! cargo clippy --version >/dev/null 2>&1; then rustup component add clippy; fi
    fi
    redis-server --version
    python3 -c 'import redis; print("redis-py", redis.__version__)'
    cargo --version
fi

started=$SECONDS
step "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace $*"
cargo test --workspace "$@"

if [ $# -eq 0 ]; then
    step "Redis 7.0.15's test suite against strongbox-server (tests/redis-suite)"
    scripts/redis-suite.sh
    step "Redis 7.0.15's Sentinel suite: real sentinels watching strongbox-servers"
    scripts/sentinel-suite.sh
fi

step "all checks passed in $((SECONDS - started)) s"
