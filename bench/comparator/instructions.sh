#!/usr/bin/env bash
# Instructions per pair of the offline judge, counted by valgrind's callgrind: a deterministic
# companion to run.sh, whose wall-clock rows are noisy on a shared machine. Prints, for each
# sg-bench-comparator given, the user-space instructions per line of DecodePairLogLine, per pair
# of ReadPairLog (stream read + decode + judge + aggregate: the end-to-end row) and per line of
# EncodePairLogLine (the gateway's encoder, which the bench uses to make its lines).
#
#   bench/comparator/instructions.sh [BENCH...]   (default build/bin/sg-bench-comparator)
#
# PAIRS=N (default 20000) pairs per run; a run takes about a minute under callgrind. Compare two
# builds (before and after a change) by naming both.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PAIRS=${PAIRS:-20000}
for tool in valgrind callgrind_annotate; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
(($#)) || set -- "$ROOT/build/bin/sg-bench-comparator"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf '| bench | decode, per line | end to end (ReadPairLog), per pair | encode, per line |\n'
printf '| --- | ---: | ---: | ---: |\n'
for bench in "$@"; do
  [[ -x $bench ]] || { echo "missing $bench" >&2; exit 1; }
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$bench" "$PAIRS" >/dev/null 2>&1
  # Inclusive counts; DecodePairLogLine runs twice per pair (the decode row and ReadPairLog).
  callgrind_annotate --inclusive=yes "$WORK/cg.out" 2>/dev/null | awk -v n="$PAIRS" -v b="$bench" '
    function count(s) { gsub(",", "", s); return s + 0 }
    /:sg::DecodePairLogLine\(/ && !decode { decode = count($1) }
    /:sg::comparator::ReadPairLog\(std::istream/ && !read { read = count($1) }
    /:sg::EncodePairLogLine.*PairRecord const&/ && !encode { encode = count($1) }
    END { printf "| %s | %.0f | %.0f | %.0f |\n", b, decode / (2 * n), read / n, encode / n }'
done
