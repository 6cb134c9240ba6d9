#!/usr/bin/env bash
# Redis's own test suite (tests/ of Debian's redis 7.0.15 source package, the version of the
# redis-server the other tests compare against) run against strongbox-server: the suite starts
# "src/redis-server <config>" for every test server, and here that is our binary.
#
#   scripts/redis-suite.sh                 the units listed in tests/redis-suite/*.units
#   scripts/redis-suite.sh unit/type/list  these units only (known failures still skipped)
#   REDIS_SUITE_ARGS="--durable" ...       extra runtest options (--durable: go on after an
#                                          exception; --clients N; --verbose; --dont-clean)
#   REDIS_SUITE_KNOWN=0 ...                do not skip the known failures (to see which pass now)
#
# tests/redis-suite/*.units list the units run and, under each, the tests skipped because
# Strongbox is known to fail them, each with the reason. The run passes when every other test
# passes (runtest's own verdict and exit status).
#
# Sources: $REDIS_SUITE_SRC, else ~/.cache/strongbox/redis-7.0.15, fetched with `apt-get source`
# (a deb-src entry is added if the machine has none). Server: $STRONGBOX_SERVER_BIN, else
# target/debug/strongbox-server (build first).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${REDIS_SUITE_SRC:-$HOME/.cache/strongbox/redis-7.0.15}
bin=${STRONGBOX_SERVER_BIN:-$root/target/debug/strongbox-server}
work=${REDIS_SUITE_WORK:-$root/target/redis-suite}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

fetch() {
    if [ -f "$src/tests/test_helper.tcl" ]; then return; fi
    echo "==> fetching Redis's test suite (apt-get source redis) into $src"
    if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
                | $SUDO tee /etc/apt/sources.list.d/strongbox-deb-src.sources >/dev/null
        else
            sed -n 's/^deb /deb-src /p' /etc/apt/sources.list \
                | $SUDO tee /etc/apt/sources.list.d/strongbox-deb-src.list >/dev/null
        fi
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get source --download-only redis >/dev/null 2>&1 \
        || { echo "apt-get source redis failed" >&2; exit 1; })
    mkdir -p "$(dirname "$src")"
    tar -xzf "$tmp"/redis_*.orig.tar.gz -C "$tmp"
    rm -rf "$src"
    mv "$tmp"/redis-*/ "$src"
    rm -rf "$tmp"
    if [ ! -f "$src/tests/test_helper.tcl" ]; then
        echo "no tests/test_helper.tcl in the redis source package" >&2
        exit 1
    fi
}

fetch
if [ "${1:-}" = "--fetch-only" ]; then exit 0; fi
command -v tclsh >/dev/null || { echo "tclsh is needed (apt-get install tcl)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no server binary at $bin (cargo build first)" >&2; exit 1; }

# A private copy of the suite, with the binaries it starts in src/.
rm -rf "$work"
mkdir -p "$work/src"
cp -r "$src/tests" "$src/runtest" "$work/"
ln -s "$bin" "$work/src/redis-server"
for b in redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
    ln -s "$(command -v $b)" "$work/src/$b"
done

# *.units: "unit <name>" starts a unit that runs; "skip<TAB><test name><TAB><reason>" under
# it skips one test; "#" comments; "off <name> <reason>" documents a unit not run.
units=()
: > "$work/skipfile"
current=""
while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
        unit\ *) current=${line#unit }; units+=("$current") ;;
        skip$'\t'*)
            rest=${line#skip$'\t'}
            if [ "${REDIS_SUITE_KNOWN:-1}" = "1" ]; then printf '%s\n' "${rest%%$'\t'*}" >> "$work/skipfile"; fi ;;
        *) ;;
    esac
done < <(cat "$root"/tests/redis-suite/*.units)
if [ $# -gt 0 ]; then units=("$@"); fi

args=()
for u in "${units[@]}"; do args+=(--single "$u"); done
cd "$work"
echo "==> Redis 7.0.15 test suite: ${#units[@]} units against $bin"
# shellcheck disable=SC2086
exec ./runtest --clients "${REDIS_SUITE_CLIENTS:-2}" --timeout 600 --skipfile "$work/skipfile" \
    "${args[@]}" ${REDIS_SUITE_ARGS:-}
