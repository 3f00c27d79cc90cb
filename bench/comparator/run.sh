#!/usr/bin/env bash
# Comparator benchmark: classification pairs per second on one core, per stage of the offline
# path (decode, judge, aggregate, end to end, report). Prints one markdown table with ratios to
# the 200k pairs/s target.
#
#   bench/comparator/run.sh [PAIRS]         (default 200000)
#
# Needs build/bin/sg-bench-comparator (or SG_BENCH=path; `cmake --build build --target
# sg-bench-comparator`). Pinned to one CPU with taskset when available. Other processes on the
# machine share that CPU: compare rows of one run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SG_BENCH:-$ROOT/build/bin/sg-bench-comparator}
PAIRS=${1:-200000}
if command -v taskset >/dev/null; then
  exec taskset -c "${CPU:-0}" "$BIN" "$PAIRS"
fi
exec "$BIN" "$PAIRS"
