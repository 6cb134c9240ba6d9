#!/bin/bash
# Interleaved A/B throughput: redis-benchmark SET against servers already running on the
# given ports, one run per port in turn, `reps` rounds; prints each port's median and runs.
# Start the servers yourself (same settings, e.g. two strongbox binaries and redis-server).
#
#   bench/ab.sh REPS PIPELINE REQUESTS PORT...        (C=clients, default 50; T=test, default set)
#   bench/ab.sh 7 1 100000 7101 7102 7103
set -euo pipefail
reps=$1; P=$2; n=$3; shift 3
for _ in $(seq "$reps"); do
  for p in "$@"; do
    v=$(redis-benchmark -p "$p" -c "${C:-50}" -n "$n" -P "$P" -t "${T:-set}" ${R:+-r $R} -q --csv |
      tail -1 | cut -d, -f2 | tr -d '"')
    echo "$p $v"
  done
done | python3 -c '
import sys, collections, statistics
d = collections.defaultdict(list)
for line in sys.stdin:
    p, v = line.split()
    d[p].append(float(v))
for p, v in d.items():
    print(p, "median %.0f" % statistics.median(v), " ".join("%.0f" % x for x in v))'
