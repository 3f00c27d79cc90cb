#!/usr/bin/env bash
# The pair log's disk cost per million requests for the demo's workload (issue 22, docs/gateway.md
# "Capture policy"): sg-load sends Fashion-MNIST test images as PNG through shadowgate to a
# reference sg-serve (fashion_tiny, image_classifier, top 5), mirrored 100% to two candidates as
# `make demo` mirrors (both names on one candidate sg-serve here, to spare the CPUs), once per
# capture.body_sample given. The log rotates every 8 MiB into zstd files as a gateway does; the
# table gives its size as text (every file decompressed) and as zstd level 3 (the rotated files
# as written, the live file compressed the same way), per million client requests.
#
#   bench/gateway/capture_disk.sh [REQUESTS] [SAMPLE...]      (default: 20000, samples 1 0.01)
#   BIN=build/bin SG_SERVE=build/bin/sg-serve RATE=300 DATA=/usr/share/datasets/fashion-mnist
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/bench/gateway/lib.sh"
REQUESTS=${1:-20000}
shift || true
SAMPLES=("$@")
((${#SAMPLES[@]})) || SAMPLES=(1 0.01)
BIN=${BIN:-$ROOT/build/bin}
SG_SERVE=${SG_SERVE:-$BIN/sg-serve}
RATE=${RATE:-300}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
MODELS=$ROOT/tests/fixtures/models
for exe in "$BIN/shadowgate" "$BIN/sg-load" "$SG_SERVE"; do
  [[ -x $exe ]] || { echo "missing $exe (build it, or set BIN / SG_SERVE)" >&2; exit 2; }
done
command -v zstd >/dev/null || { echo "zstd (Debian's zstd package) is needed" >&2; exit 2; }
bench_init capture-disk

fashion_serve reference "$WORK"
REF=$PORT
fashion_serve candidate "$WORK"
CAND=$PORT

# bytes FILE: its size as text (decompressed when zstd).
text_bytes() { if [[ $1 == *.zst ]]; then zstd -dcq "$1" | wc -c; else wc -c <"$1"; fi; }
zstd_bytes() { if [[ $1 == *.zst ]]; then wc -c <"$1"; else zstd -3 -cq "$1" | wc -c; fi; }

echo "| capture.body_sample | requests | pair records | request bodies kept | text, MB per 1M requests | zstd -3, MB per 1M requests | ratio |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for sample in "${SAMPLES[@]}"; do
  run=$WORK/sample-$sample
  mkdir -p "$run"
  GW=$(free_port)
  demo_gateway_json "$GW" "$(free_port)" "$sample" \
    '{"path": "'"$run"'/pairs.jsonl", "counters_interval": "1s",
                          "max_file_bytes": 8388608, "max_files": 1000}' '' >"$run/gateway.json"
  "$BIN/shadowgate" --config "$run/gateway.json" >"$run/gateway.log" 2>&1 &
  gw_pid=$!
  PIDS+=($gw_pid)
  wait_port "$GW"
  "$BIN/sg-load" --url "http://127.0.0.1:$GW/predictions/fashion" --fashion-mnist "$DATA" \
    -n "$REQUESTS" --rate "$RATE" --arrival poisson --max-connections 32 \
    --label-header x-true-label >"$run/load.txt" 2>&1 || true
  kill -TERM "$gw_pid"
  wait "$gw_pid" || true
  # Rotated files are compressed on a thread of their own: all there once the gateway exited.
  text=0 packed=0
  for f in "$run"/pairs.jsonl*; do
    text=$((text + $(text_bytes "$f")))
    packed=$((packed + $(zstd_bytes "$f")))
  done
  lines=$(for f in "$run"/pairs.jsonl*; do
    if [[ $f == *.zst ]]; then zstd -dcq "$f"; else cat "$f"; fi
  done)
  pairs=$(grep -c '"type":"pair"' <<<"$lines" || true)
  bodies=$(grep -c '"body_b64"' <<<"$lines" || true)
  # The client requests the gateway counted (cumulative: the largest of its counters lines; the
  # files are not read in time order here).
  requests=$(grep '"type":"counters"' <<<"$lines" | sed 's/.*"requests":\([0-9]*\).*/\1/' |
    sort -n | tail -1)
  awk -v s="$sample" -v r="$requests" -v p="$pairs" -v b="$bodies" -v t="$text" -v z="$packed" \
    'BEGIN { printf "| %s | %d | %d | %d | %.1f | %.1f | %.1fx |\n", s, r, p, b,
             t * 1e6 / r / 1e6, z * 1e6 / r / 1e6, t / z }'
done
