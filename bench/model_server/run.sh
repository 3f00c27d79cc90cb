#!/usr/bin/env bash
# sg-serve benchmark: limit vs server vs naive, for torchvision resnet18 and mobilenet_v3_small
# (TorchScript, 224x224 PNG input).
#
#   bench/model_server/run.sh [BUILD_DIR (default build)] [SECONDS per measurement (default 10)]
#                             [REPEAT (default 1)]
#
# REPEAT > 1: the limit and the saturated server are measured in REPEAT alternating rounds and
# the table shows the medians (each round's figures go to stderr).
#
# For each model, one table row:
#   limit   in-process forward throughput with the plan's workers x threads, pinned, no HTTP
#           (sg-bench-forward, batch 1)
#   server  sg-serve throughput at saturation over HTTP (wrk, 4 connections per worker)
#   naive   the same workers unpinned, each with threads = all visible CPUs (pinning off)
#   p50/p99 sg-serve latency at low load (wrk, 1 connection, closed loop)
# CPUs: the load generator (wrk) gets CPU set LOAD_CPUS and the server (and the limit run) the
# rest, SERVER_CPUS, so that wrk does not steal the workers' CPUs. Defaults: on 4 or more CPUs
# wrk gets the last quarter; on 2-3 CPUs, the last CPU. The naive configuration still uses
# threads = every CPU the machine has (nproc of the host), as a server that ignores its CPU
# budget would.
# Where the low-load time goes, from the server's own histograms (its /metrics is scraped
# before and after the low-load run; mean = delta of _sum / delta of _count; with one connection
# every batch is one request):
#   loop fwd    mean forward time of the limit run (a saturated in-process loop: hot caches),
#               for comparison only
#   fwd         mean forward time inside the server's worker at low load
#               (sg_worker_forward_seconds)
#   pre, post   the preprocessing (PNG decode, resize, normalise: the worker's, plus the front's
#               with a front CPU) and the worker's postprocessing (softmax, top-k, JSON) at low
#               load (sg_worker_{pre,post}process_seconds, sg_front_preprocess_seconds)
#   overhead    = p50 - fwd: the issue's "per-request server overhead (server latency minus
#               forward time at low load)"; it includes pre and post
#   server-only = p50 - pre - fwd - post: what HTTP, the queue, the hand-offs between threads
#               and the worker's Unix socket add
# A second table splits server-only at low load into the pool's part (queue + IPC: the mean of
# sg_request_latency_seconds, enqueue to the worker's reply, minus the worker's stages) and the
# rest (p50 - that mean - the front's preprocessing: HTTP parsing and writing, the hand-off to
# and from the I/O thread, the kernel's loopback TCP and wrk itself).
# Each model is measured twice:
#   shared   the server (its front and its workers) on SERVER_CPUS, the workers preprocess
#   front    cpu.front_cpus 1: the server gets one CPU more, FRONT_CPU (default: the first of
#            LOAD_CPUS, so wrk shares it), the planner reserves it for the front, which decodes
#            and preprocesses there and sends the workers float samples; the workers keep
#            SERVER_CPUS. The limit is then planned the same way (over the workers' CPUs).
# The naive configuration is measured once per model (on SERVER_CPUS).
# Needs: wrk, /usr/bin/python3 with python3-torchvision (export only, once).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
secs=${2:-10}
repeat=${3:-1}
[[ "$build" = /* ]] || build="$root/$build"
serve="$build/bin/sg-serve"
forward="$build/bin/sg-bench-forward"
for tool in "$serve" "$forward"; do
  [[ -x "$tool" ]] || { echo "missing $tool: build sg-serve and sg-bench-forward first" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
models="$build/bench-models"
/usr/bin/python3 "$root/bench/model_server/export_models.py" "$models"
work=$(mktemp -d /tmp/sg-serve-bench-XXXXXX)
server_pid=""
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ncpu=$(nproc)
if [[ -z ${SERVER_CPUS:-} || -z ${LOAD_CPUS:-} ]]; then
  if ((ncpu >= 4)); then load_n=$((ncpu / 4)); elif ((ncpu >= 2)); then load_n=1; else load_n=0; fi
  if ((load_n > 0)); then
    SERVER_CPUS=0-$((ncpu - load_n - 1)) LOAD_CPUS=$((ncpu - load_n))-$((ncpu - 1))
  else
    SERVER_CPUS=0 LOAD_CPUS=0
  fi
fi

FRONT_CPU=${FRONT_CPU:-${LOAD_CPUS%%[-,]*}}

write_config() {  # name path pinning threads workers front_cpus -> file
  local file="$work/$1-$3-$6.json"
  cat >"$file" <<JSON
{"inference_address": "127.0.0.1:$(free_port)", "management_address": "127.0.0.1:$(free_port)",
 "metrics_address": "127.0.0.1:$(free_port)",
 "cpu": {"pinning": $3, "threads_per_worker": $4, "workers": $5, "front_cpus": $6},
 "models": {"$1": {"path": "$2", "handler": "image_classifier",
   "preprocess": {"resize": 224, "crop": 224}, "job_queue_size": 1000}}}
JSON
  echo "$file"
}

start_server() {  # config cpus -> sets server_pid, port, metrics_port
  port=$(grep -o '"inference_address": "127.0.0.1:[0-9]*"' "$1" | grep -o '[0-9]*"$' | tr -d '"')
  metrics_port=$(grep -o '"metrics_address": "127.0.0.1:[0-9]*"' "$1" | grep -o '[0-9]*"$' | tr -d '"')
  taskset -c "$2" "$serve" --config "$1" --log-level warn >"$work/serve.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/ping" >/dev/null && return 0
    sleep 0.1
  done
  echo "sg-serve did not become ready:" >&2; cat "$work/serve.log" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" || true; server_pid=""; }

# wrk's latency in ms ("1.23ms", "456.00us", "1.20s").
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.2f", v}'; }
run_wrk() {  # connections model -> wrk output
  SG_BENCH_IMAGE="$models/input.png" taskset -c "$LOAD_CPUS" wrk -t "$(( $1 < 2 ? 1 : 2 ))" -c "$1" -d "${secs}s" --latency \
    -s "$root/bench/model_server/post.lua" "http://127.0.0.1:$port/predictions/$2"
}
rps() { awk '/^Requests\/sec:/ {print $2}'; }
# The _sum and _count of the model's server-side histograms, one "name value" per line.
scrape_metrics() {  # model -> lines
  curl -sf "http://127.0.0.1:$metrics_port/metrics" | awk -v m="model_name=\"$1\"" '
    index($1, m) && $1 ~ /^sg_(worker_(preprocess|forward|postprocess)|front_preprocess|request_latency|queue_latency)_seconds_(sum|count)\{/ {
      sub(/\{.*/, "", $1); print $1, $2 }'
}
# Mean ms of histogram NAME between two scrapes (files): delta sum / delta count (0 when it
# has no observations: the front's preprocessing without front CPUs).
mean_ms() {  # before after name
  awk -v n="$3" 'FNR == NR {b[$1] = $2; next} {a[$1] = $2}
    END {c = a[n "_count"] - b[n "_count"]; printf "%.3f", (c > 0 ? 1000 * (a[n "_sum"] - b[n "_sum"]) / c : 0)}' "$1" "$2"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
pct() { awk -v p="$1" '$1 == p {print $2}' | to_ms; }

printf '%s\n' "server CPUs $SERVER_CPUS, load generator CPUs $LOAD_CPUS"
printf '%s\n' "sg-serve benchmark on $(nproc) visible CPUs ($(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}')), ${secs}s per measurement"
table="$work/table" breakdown="$work/breakdown"
printf '| %-18s | %-6s | %-4s | %9s | %10s | %12s | %9s | %11s | %6s | %6s | %8s | %6s | %6s | %6s | %8s | %11s |\n' \
  model front plan "limit r/s" "server r/s" server/limit "naive r/s" tuned/naive "p50 ms" "p99 ms" "loop fwd" "fwd" "pre" "post" "overhead" "server-only" >"$table"
printf '|%s|\n' "--------------------|--------|------|-----------|------------|--------------|-----------|-------------|--------|--------|----------|--------|--------|--------|----------|-------------" >>"$table"
printf '| %-18s | %-6s | %8s | %8s | %12s | %11s | %11s | %15s |\n' \
  model front "p50 ms" "queue ms" "pool ms" "worker ms" "queue+ipc ms" "http+rest ms" >"$breakdown"
printf '|%s|\n' "--------------------|--------|----------|----------|--------------|-------------|-------------|-----------------" >>"$breakdown"
for name in resnet18 mobilenet_v3_small; do
  naive_rps=""
  for mode in shared front; do
    if [[ $mode == shared ]]; then
      cpus=$SERVER_CPUS front_n=0
    else
      cpus=$SERVER_CPUS,$FRONT_CPU front_n=1
    fi
    tuned=$(write_config "$name" "$models/$name.pt" true 0 0 "$front_n")
    start_server "$tuned" "$cpus"
    # Warm up first: TorchScript's profiling executor re-optimises the graph during the first
    # forwards after start-up, some of which take far longer than a settled one.
    for _ in $(seq 30); do
      curl -sf -o /dev/null --data-binary @"$models/input.png" "http://127.0.0.1:$port/predictions/$name"
    done
    scrape_metrics "$name" >"$work/before"
    low=$(run_wrk 1 "$name")
    scrape_metrics "$name" >"$work/after"
    # The limit and the saturation throughput, in alternating rounds (the limit runs while the
    # server idles): the VM's speed drifts by 10-20% between minutes, and each ratio compares
    # neighbours. Enough connections that the queue never runs dry: one request running, one
    # sent ahead, others in HTTP and preprocessing.
    limits=() sats=() fwds=()
    for ((round = 0; round < repeat; ++round)); do
      read -r workers threads limit fwd_ms _ < <(taskset -c "$cpus" "$forward" --config "$tuned" \
        --seconds "$secs" 2>>"$work/forward.log")
      limits+=("$limit") fwds+=("$fwd_ms")
      sats+=("$(run_wrk $((4 * workers)) "$name" | rps)")
    done
    limit=$(median "${limits[@]}") fwd_ms=$(median "${fwds[@]}") server_rps=$(median "${sats[@]}")
    ((repeat > 1)) && echo "$name ($mode): limit ${limits[*]}, server ${sats[*]} r/s" >&2
    stop_server
    if [[ -z $naive_rps ]]; then
      naive=$(write_config "$name" "$models/$name.pt" false "$ncpu" "$workers" 0)
      start_server "$naive" "$SERVER_CPUS"
      naive_rps=$(run_wrk $((4 * workers)) "$name" | rps)
      stop_server
    fi
    p50=$(pct 50% <<<"$low"); p99=$(pct 99% <<<"$low")
    fwd=$(mean_ms "$work/before" "$work/after" sg_worker_forward_seconds)
    # Preprocessing: the workers' and, with a front CPU, the front's (one per request here).
    front_pre=$(mean_ms "$work/before" "$work/after" sg_front_preprocess_seconds)
    pre=$(awk -v a="$(mean_ms "$work/before" "$work/after" sg_worker_preprocess_seconds)" -v b="$front_pre" 'BEGIN {print a + b}')
    post=$(mean_ms "$work/before" "$work/after" sg_worker_postprocess_seconds)
    total=$(mean_ms "$work/before" "$work/after" sg_request_latency_seconds)
    queue=$(mean_ms "$work/before" "$work/after" sg_queue_latency_seconds)
    front_label=$([[ $mode == front ]] && echo "cpu $FRONT_CPU" || echo "-")
    awk -v n="$name" -v fr="$front_label" -v plan="${workers}x${threads}" -v l="$limit" -v s="$server_rps" -v nv="$naive_rps" \
        -v p50="$p50" -v p99="$p99" -v lf="$fwd_ms" -v f="$fwd" -v pre="$pre" -v post="$post" 'BEGIN {
      printf "| %-18s | %-6s | %-4s | %9.1f | %10.1f | %12.3f | %9.1f | %11.3f | %6.2f | %6.2f | %8.2f | %6.2f | %6.2f | %6.2f | %8.2f | %11.2f |\n",
        n, fr, plan, l, s, s / l, nv, s / nv, p50, p99, lf, f, pre, post, p50 - f, p50 - pre - f - post }' >>"$table"
    awk -v n="$name" -v fr="$front_label" -v p50="$p50" -v q="$queue" -v t="$total" -v fp="$front_pre" \
        -v w="$(awk -v a="$pre" -v b="$fwd" -v c="$post" -v d="$front_pre" 'BEGIN {print a - d + b + c}')" 'BEGIN {
      printf "| %-18s | %-6s | %8.2f | %8.3f | %12.3f | %11.3f | %11.3f | %15.3f |\n", n, fr, p50, q, t, w, t - w, p50 - t - fp }' >>"$breakdown"
  done
done
echo
echo "Limit, saturation and low load (all times in ms; fwd, pre, post: the server's own histograms at low load):"
cat "$table"
echo
echo "Low load, where server-only goes (means from the server's histograms; pool = enqueue to the worker's reply):"
cat "$breakdown"
