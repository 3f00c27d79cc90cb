#!/usr/bin/env bash
# A soak of the gateway with a month's capture policy (issue 22 item 5, docs/gateway.md "Soak"):
# the demo's workload (sg-load sends Fashion-MNIST test images as PNG at a steady rate through
# shadowgate to a reference sg-serve with fashion_tiny, mirrored 100% to two candidates, both on
# one candidate sg-serve to spare the CPUs) with the pair log on (capture.body_sample 0.01 as in
# deploy/k8s, zstd rotation, retention by size and age) and the online comparison checkpointed.
# Every minute it records the requests the gateway counted, the gateway's RSS and open files
# (/proc), the pair log's bytes on disk and files, and the checkpoint's size.
#
# The sizes are the deploy configs' scaled down so that rotation and retention happen within the
# run: 4 MiB files (256 MiB there), max_total_bytes 8 MiB (GiBs there), checkpoints every 10 s
# (60 s by default). A run of minutes stands for a month only by its trend: flat or bounded.
#
#   bench/soak/run.sh [DURATION_S] [RATE]                     (default: 1200 s at 50 req/s)
#   BIN=build/bin SG_SERVE=build/bin/sg-serve DATA=/usr/share/datasets/fashion-mnist
#   SAMPLE=0.01 INTERVAL=60 OUT=<folder for soak.csv, soak.md and the logs; default /tmp/sg-soak-*>
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/bench/gateway/lib.sh"
DURATION=${1:-1200}
RATE=${2:-50}
BIN=${BIN:-$ROOT/build/bin}
SG_SERVE=${SG_SERVE:-$BIN/sg-serve}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
SAMPLE=${SAMPLE:-0.01}
INTERVAL=${INTERVAL:-60}
MODELS=$ROOT/tests/fixtures/models
for exe in "$BIN/shadowgate" "$BIN/sg-load" "$SG_SERVE"; do
  [[ -x $exe ]] || { echo "missing $exe (build it, or set BIN / SG_SERVE)" >&2; exit 2; }
done
bench_init soak
OUT=${OUT:-/tmp/sg-soak-$(date -u +%Y%m%dT%H%M%SZ)}  # kept: $WORK goes at exit
mkdir -p "$OUT"

fashion_serve reference "$OUT"
REF=$PORT
fashion_serve candidate "$OUT"
CAND=$PORT

LOGS=$WORK/pairs
STATE=$WORK/state
mkdir -p "$LOGS" "$STATE"
GW=$(free_port)
ADMIN=$(free_port)
demo_gateway_json "$GW" "$ADMIN" "$SAMPLE" \
  '{"path": "'"$LOGS"'/pairs.jsonl", "counters_interval": "10s",
                          "max_file_bytes": 4194304, "max_files": 1000,
                          "compression": "zstd", "compression_level": 3,
                          "max_total_bytes": 8388608, "max_age": "31d"}' \
  ',
 "comparison": {"rules": "'"$ROOT"'/configs/compare.json", "gates": "'"$ROOT"'/configs/gates.json",
                "run": "soak", "checkpoint_file": "'"$STATE"'/online.ckpt",
                "checkpoint_interval": "10s"}' >"$WORK/gateway.json"
cp "$WORK/gateway.json" "$OUT/gateway.json"
"$BIN/shadowgate" --config "$WORK/gateway.json" >"$OUT/gateway.log" 2>&1 &
gw_pid=$!
PIDS+=($gw_pid)
wait_port "$GW"
wait_port "$ADMIN"

start=$(date +%s)
# sample: one CSV row of what the gateway holds now.
sample() {
  local requests rss fds disk files ckpt
  requests=$(curl -s -H 'Host: localhost' "http://127.0.0.1:$ADMIN/metrics" |
    awk '/^sg_gateway_route_requests_total\{route="classify"\}/ {print $2}')
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$gw_pid/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$gw_pid/fd" 2>/dev/null | wc -l)
  disk=$(du -sb "$LOGS" | cut -f1)
  files=$(find "$LOGS" -maxdepth 1 -name 'pairs.jsonl*' | wc -l)
  ckpt=$(stat -c %s "$STATE/online.ckpt" 2>/dev/null || echo 0)
  echo "$(($(date +%s) - start)),${requests:-0},$rss,$fds,$disk,$files,$ckpt" >>"$OUT/soak.csv"
}
echo "t_s,requests,gateway_rss_kb,gateway_fds,pair_log_bytes,pair_log_files,checkpoint_bytes" \
  >"$OUT/soak.csv"
sample
"$BIN/sg-load" --url "http://127.0.0.1:$GW/predictions/fashion" --fashion-mnist "$DATA" \
  --duration "$DURATION" --rate "$RATE" --arrival constant --max-connections 32 \
  --label-header x-true-label --no-progress --csv "$OUT/load" >"$OUT/load.txt" 2>&1 &
load_pid=$!
PIDS+=($load_pid)
while kill -0 "$load_pid" 2>/dev/null; do
  # Wakes when the load ends, or every INTERVAL seconds to sample.
  for _ in $(seq "$((INTERVAL * 10))"); do
    kill -0 "$load_pid" 2>/dev/null || break
    sleep 0.1
  done
  sample
done
wait "$load_pid" || true
kill -TERM "$gw_pid"
wait "$gw_pid" || true
# After the stop: the final checkpoint and the last rotation's compression are on disk.
final_disk=$(du -sb "$LOGS" | cut -f1)
final_ckpt=$(stat -c %s "$STATE/online.ckpt" 2>/dev/null || echo 0)
ls -l "$LOGS" >"$OUT/pair-log-files.txt"

{
  echo "| t (s) | requests | gateway RSS (MB) | open files | pair log on disk (MB) | files | checkpoint (KB) |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  tail -n +2 "$OUT/soak.csv" | awk -F, '{ printf "| %d | %d | %.1f | %d | %.2f | %d | %.1f |\n",
    $1, $2, $3 / 1024, $4, $5 / 1e6, $6, $7 / 1e3 }'
  echo
  echo "After the stop: pair log $(awk -v b="$final_disk" 'BEGIN { printf "%.2f", b / 1e6 }') MB," \
    "checkpoint $(awk -v b="$final_ckpt" 'BEGIN { printf "%.1f", b / 1e3 }') KB."
  grep -E 'Aggregated|requests' "$OUT/load.txt" | tail -3
} | tee "$OUT/soak.md"
