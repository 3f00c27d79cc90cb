#!/usr/bin/env bash
# sg-serve tune against an exhaustive sweep of the same space (issue 17 item 5), in one run:
#
#   bench/model_server/tune_bench.sh [BUILD_DIR (default build)] [SECONDS per sweep run (default 4)]
#
# 1. `sg-serve tune --exhaustive` measures every configuration of the space once, SECONDS each
#    (plus each server's start-up and warm-up, which count in its time);
# 2. `sg-serve tune` searches the same space with a budget of a third of the sweep's time;
# 3. prints tune's pick, its throughput in the sweep divided by the sweep's best (target >= 0.95:
#    the same kind of run, so the ratio compares configurations, not run lengths), and the ratio
#    of the two wall times (target <= 1/3);
# 4. when the pick is not the sweep's best: a head-to-head, both measured again in H2H
#    alternating rounds (default 3) of SECONDS each, and the ratio of their medians: on a machine
#    whose speed drifts between minutes, the figure that compares the two under the same
#    conditions.
#
# Defaults: the Fashion-MNIST student (models/fashion-mnist) over the first 500 test images as
# PNG, closed loop with 4 users per CPU, p99 SLO 100 ms, the space
#   --pinning on,off --front on --batch-sizes 1,4 --optimize on --precisions fp32,bf16
# Environment overrides: CONFIG (an sg-serve config with one model), CORPUS (sg-load's source
# flags, e.g. "--corpus DIR"), SLO_MS, SPACE (tune's space flags), OUT (kept results; default a
# temp dir, removed).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
secs=${2:-4}
[[ "$build" = /* ]] || build="$root/$build"
serve="$build/bin/sg-serve"
[[ -x "$serve" ]] || { echo "missing $serve: build sg-serve first" >&2; exit 1; }
work=$(mktemp -d /tmp/sg-tune-bench-XXXXXX)
out=${OUT:-$work}
keep=${OUT:+1}
cleanup() { [[ -n "$keep" ]] || rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$out"

if [[ -z ${CONFIG:-} ]]; then
  CONFIG="$work/student.json"
  cat >"$CONFIG" <<JSON
{"models": {"fashion": {"path": "$root/models/fashion-mnist/student.pt",
  "handler": "image_classifier", "labels": "$root/models/fashion-mnist/index_to_name.json",
  "preprocess": {"resize": 28, "crop": 28, "channels": 1, "mean": [0.286], "std": [0.353]}}}}
JSON
fi
CORPUS=${CORPUS:---fashion-mnist /usr/share/datasets/fashion-mnist --limit 500}
SLO_MS=${SLO_MS:-100}
SPACE=${SPACE:---pinning on,off --front on --batch-sizes 1,4 --optimize on --precisions fp32,bf16}
echo "sg-serve tune benchmark on $(nproc) CPUs ($(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "space: $SPACE; SLO p99 $SLO_MS ms; sweep runs ${secs}s each"

# shellcheck disable=SC2086  # CORPUS and SPACE are lists of flags
"$serve" tune --config "$CONFIG" $CORPUS $SPACE --slo-p99-ms "$SLO_MS" --exhaustive \
  --measure-seconds "$secs" --out "$out/exhaustive" >"$out/exhaustive.txt" || true
sweep_s=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["elapsed_s"])' "$out/exhaustive/result.json")
budget=$(/usr/bin/python3 -c 'import sys; print(int(float(sys.argv[1]) / 3))' "$sweep_s")
echo "sweep: $(printf '%.0f' "$sweep_s") s; tune budget: ${budget} s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck disable=SC2086
"$serve" tune --config "$CONFIG" $CORPUS $SPACE --slo-p99-ms "$SLO_MS" --budget "${budget}s" \
  --out "$out/tune" >"$out/tune.txt" || true
echo "load average after the search: $(cut -d' ' -f1-3 /proc/loadavg)"
label() { /usr/bin/python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["winner"]; print(w["label"] if w else "")' "$1"; }
best_label=$(label "$out/exhaustive/result.json") pick_label=$(label "$out/tune/result.json")
if [[ -n $best_label && -n $pick_label && $best_label != "$pick_label" ]]; then
  for ((round = 1; round <= ${H2H:-3}; ++round)); do
    # shellcheck disable=SC2086
    "$serve" tune --config "$CONFIG" $CORPUS $SPACE --slo-p99-ms "$SLO_MS" --exhaustive \
      --measure-seconds "$secs" --only "$best_label" --only "$pick_label" \
      --out "$out/h2h$round" >"$out/h2h$round.txt" 2>&1 || true
  done
  echo "head-to-head done; load average $(cut -d' ' -f1-3 /proc/loadavg)"
fi
echo
echo "Exhaustive sweep:"
sed -n '/^| #/,/^$/p' "$out/exhaustive.txt"
echo "tune:"
sed -n '/^| #/,$p' "$out/tune.txt"
echo
# The head-to-head rounds, only when there were some (an unmatched glob would stay literal).
shopt -s nullglob
h2h_results=("$out"/h2h*/result.json)
shopt -u nullglob
/usr/bin/python3 - "$out/exhaustive/result.json" "$out/tune/result.json" "${h2h_results[@]}" <<'PY'
import json, statistics, sys
sweep, tune = (json.load(open(p)) for p in sys.argv[1:3])
h2h = [json.load(open(p)) for p in sys.argv[3:]]
rows = {c["label"]: c for c in sweep["configurations"]}
best = sweep["winner"]
pick = tune["winner"]
print("| sweep best | req/s | tune pick | pick's req/s in the sweep | pick / best (>= 0.95) "
      "| sweep s | tune s | time ratio (<= 0.333) |")
print("|---|---:|---|---:|---:|---:|---:|---:|")
if not best or not pick:
    print("| %s | | %s | | n/a | %.0f | %.0f | %.3f |" % (
        best and best["label"], pick and pick["label"], sweep["elapsed_s"], tune["elapsed_s"],
        tune["elapsed_s"] / sweep["elapsed_s"]))
    sys.exit(1)
best_rps = sweep["throughput_rps_at_slo"]
in_sweep = rows.get(pick["label"])
pick_rps = in_sweep["rps"] if in_sweep and in_sweep["eligible"] else 0.0
print("| %s | %.1f | %s | %.1f | %.3f | %.0f | %.0f | %.3f |" % (
    best["label"], best_rps, pick["label"], pick_rps, pick_rps / best_rps, sweep["elapsed_s"],
    tune["elapsed_s"], tune["elapsed_s"] / sweep["elapsed_s"]))
if h2h:
    def rps(doc, label):
        return next((c["rps"] for c in doc["configurations"] if c["label"] == label), 0.0)
    b = [rps(d, best["label"]) for d in h2h]
    p = [rps(d, pick["label"]) for d in h2h]
    print("head-to-head, %d alternating rounds: best %s req/s (median %.1f), pick %s (median %.1f):"
          " pick / best %.3f" % (len(h2h), " ".join("%.1f" % v for v in b), statistics.median(b),
                                 " ".join("%.1f" % v for v in p), statistics.median(p),
                                 statistics.median(p) / statistics.median(b)))
print("tune's own figure for its pick: %.1f req/s (its longest runs), x%s vs naive, x%s vs plan"
      % (tune["throughput_rps_at_slo"], tune["ratio_to_naive"] and "%.3f" % tune["ratio_to_naive"],
         tune["ratio_to_plan"] and "%.3f" % tune["ratio_to_plan"]))
PY
