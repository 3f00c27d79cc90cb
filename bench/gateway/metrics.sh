#!/usr/bin/env bash
# Instructions per metric operation, the gateway's own registry (common/metrics.h) against
# prometheus-cpp's core, counted by callgrind around the measured loop only (sg-bench-metrics
# toggles collection with callgrind's client requests), then the wall-clock table of the same
# binary. Deterministic where ns/op on a loaded shared machine is not.
#
#   bench/gateway/metrics.sh [ITERATIONS (callgrind's loops; default 200000, render N/1000)]
#
# Needs build/bin/sg-bench-metrics (or BENCH=path; built when prometheus-cpp-dev is installed)
# and valgrind.
set -euo pipefail
N=${1:-200000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH:-$ROOT/build/bin/sg-bench-metrics}
command -v valgrind >/dev/null || { echo "missing valgrind" >&2; exit 1; }
[[ -x "$BENCH" ]] ||
  { echo "missing $BENCH: install prometheus-cpp-dev (scripts/setup), then build" >&2; exit 1; }
WORK=$(mktemp -d /tmp/sg-bench-metrics.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Instructions per operation of one case on one side.
count() {
  local out="$WORK/cg.$1.$2" n
  n=$(valgrind --tool=callgrind --collect-atstart=no --callgrind-out-file="$out" \
        "$BENCH" --case "$1" --impl "$2" --iterations "$N" 2>/dev/null | awk '{print $3}')
  callgrind_annotate "$out" 2>/dev/null |
    awk -v n="$n" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.0f\n", $1 / n}'
}

echo "instructions per operation (callgrind, $N iterations; render" \
  "$((N / 1000 > 0 ? N / 1000 : 1)))"
echo
echo "| case | own instr/op | prometheus-cpp instr/op | prometheus-cpp/own |"
echo "| --- | ---: | ---: | ---: |"
for c in counter histogram request mirrored_request lookup render; do
  own=$(count "$c" own)
  lib=$(count "$c" lib)
  awk -v c="$c" -v a="$own" -v b="$lib" \
    'BEGIN { printf "| %s | %d | %d | %.2fx |\n", c, a, b, b / a }'
done
echo
echo "wall clock, one thread, then two threads on the same children" \
  "(load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
"$BENCH"
echo
"$BENCH" --threads 2
