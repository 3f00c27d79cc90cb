#!/usr/bin/env bash
# Runs every libFuzzer target in build-fuzz/fuzz/ for FUZZ_SECONDS (default 60) each, starting
# from its committed seeds in fuzz/corpus/<name>/ (read only: what a run finds goes to
# build-fuzz/corpus/<name>/, kept between runs). Fails on the first crash, leak, timeout,
# out-of-memory or sanitizer report, naming the input it wrote (build-fuzz/artifacts/).
# Usage: fuzz/run.sh [name...]   (default: every target; FUZZ_SECONDS=N, FUZZ_ARGS='...' extra)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-fuzz
seconds=${FUZZ_SECONDS:-60}
names=("$@")
((${#names[@]})) || names=(request_head chunked_body pair_log config multipart image)

declare -A dict=([request_head]=http.dict [chunked_body]=http.dict [config]=config.dict)
status=0
summary=()
for name in "${names[@]}"; do
  bin=$build/fuzz/${name}_fuzzer
  [[ -x $bin ]] || { echo "fuzz: $bin not built (make fuzz builds it)" >&2; exit 2; }
  mkdir -p "$build/corpus/$name" "$build/artifacts"
  args=(-max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$build/artifacts/$name-")
  [[ -n ${dict[$name]:-} ]] && args+=(-dict="fuzz/${dict[$name]}")
  echo "fuzz: $name for ${seconds}s" >&2
  log=$build/artifacts/$name.log
  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
  if "$bin" "${args[@]}" ${FUZZ_ARGS:-} "$build/corpus/$name" "fuzz/corpus/$name" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log)"
    status=1
    grep -E "^(==[0-9]+==|SUMMARY|.*_fuzzer: )|Test unit written" "$log" | head -20 >&2 || true
  fi
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  summary+=("$(printf '%-14s %-8s %12s runs %8s/s  corpus %s' "$name" "${result%% *}" \
    "${execs:-?}" "${rate:-?}" "$(ls "$build/corpus/$name" | wc -l)")")
  [[ $result == ok ]] || summary+=("               $result")
done
printf '%s\n' "${summary[@]}" >&2
exit $status
