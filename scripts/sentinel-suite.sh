#!/usr/bin/env bash
# Redis 7.0.15's Sentinel test suite (tests/sentinel of the same source package as
# scripts/redis-suite.sh) with real Sentinels (Debian's redis-server in sentinel mode) watching
# Strongbox servers: the suite starts "src/redis-sentinel <config>" for its 5 sentinels and
# "src/redis-server <config>" for its 5 data servers, and here the latter is our binary. It
# checks what a Sentinel deployment needs from a server: discovery of replicas and other
# sentinels (INFO, the __sentinel__:hello channel through replication), failover (REPLICAOF
# NO ONE inside MULTI with CONFIG REWRITE and CLIENT KILL), reconfiguration of the other
# replicas, ACL'd sentinels, replica-priority, replica-announced, down conditions.
#
#   scripts/sentinel-suite.sh                  every unit except those "off" in the list
#   scripts/sentinel-suite.sh 00-base 05-manual  these units only (skips still apply)
#   REDIS_SUITE_KNOWN=0 ...                    do not skip the known failures
#
# tests/redis-suite/sentinel.list: "skip<TAB><test name><TAB><reason>" skips one test;
# "off<TAB><unit><TAB><reason>" leaves a unit out; "alone<TAB><unit><TAB><name> <value><TAB>
# <reason>" runs a unit in a second pass with that setting for every server; "#" comments. Sources and server binary as
# for scripts/redis-suite.sh ($REDIS_SUITE_SRC, $STRONGBOX_SERVER_BIN).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=${REDIS_SUITE_SRC:-$HOME/.cache/strongbox/redis-7.0.15}
bin=${STRONGBOX_SERVER_BIN:-$root/target/debug/strongbox-server}
work=${SENTINEL_SUITE_WORK:-$root/target/sentinel-suite}
list=$root/tests/redis-suite/sentinel.list

"$root/scripts/redis-suite.sh" --fetch-only
command -v tclsh >/dev/null || { echo "tclsh is needed (apt-get install tcl)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no server binary at $bin (cargo build first)" >&2; exit 1; }
sentinel=$(command -v redis-server) || { echo "redis-server is needed (the sentinels)" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work/src"
cp -r "$src/tests" "$src/runtest-sentinel" "$work/"
ln -s "$bin" "$work/src/redis-server"
# Redis runs as a sentinel when its program name contains "redis-sentinel".
ln -s "$sentinel" "$work/src/redis-sentinel"
for b in redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
    ln -s "$(command -v $b)" "$work/src/$b"
done

# The skip list becomes a Tcl list the wrapped `test` consults; "off" units are removed.
skips=$work/tests/sentinel/strongbox-skips.tcl
echo 'set ::strongbox_skips {}' > "$skips"
held=$work/held-units
mkdir -p "$held"
alone=()
while IFS=$'\t' read -r kind name setting _reason || [ -n "$kind" ]; do
    case "$kind" in
        alone)
            if [ $# -eq 0 ]; then
                mv "$work/tests/sentinel/tests/$name.tcl" "$held/"
                alone+=("$name" "$setting")
            fi ;;
        skip)
            if [ "${REDIS_SUITE_KNOWN:-1}" = "1" ]; then
                printf 'lappend ::strongbox_skips {%s}\n' "$name" >> "$skips"
            fi ;;
        off) rm -f "$work/tests/sentinel/tests/$name.tcl" ;;
        *) ;;
    esac
done < "$list"
# instances.tcl defines `test`; wrap it once it is sourced (run.tcl sources it first).
{ echo; echo "source {$skips}"; } >> "$work/tests/instances.tcl"
cat >> "$work/tests/instances.tcl" <<'TCL'
rename test strongbox_suite_test
proc test {descr code} {
    if {[lsearch -exact $::strongbox_skips $descr] >= 0} {
        puts "[clock format [clock seconds] -format %H:%M:%S]> $descr: SKIPPED (tests/redis-suite/sentinel.list)"
        return
    }
    uplevel 1 [list strongbox_suite_test $descr $code]
}
TCL

args=()
for u in "$@"; do args+=(--single "$u"); done
cd "$work"
echo "==> Redis 7.0.15 Sentinel suite: sentinels $sentinel, servers $bin"
timeout 1200 ./runtest-sentinel "${args[@]}"
# The units that need a setting of their own, one pass each.
set -- "${alone[@]}"
while [ $# -ge 2 ]; do
    unit=$1; read -r key value <<< "$2"; shift 2
    echo "==> Sentinel suite unit $unit with $key $value"
    mv "$held/$unit.tcl" tests/sentinel/tests/
    timeout 600 ./runtest-sentinel --single "$unit" --config "$key" "$value"
done
