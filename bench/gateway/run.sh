#!/usr/bin/env bash
# Gateway benchmark: wrk -> {shadowgate | nginx with `mirror`} -> an nginx upstream returning a
# small body, in six cases: GETs with no mirror; 100% mirror to a fast shadow (nginx); 100% mirror
# to a shadow answering after 200 ms; 100% mirror to a shadow that is down (connection refused);
# and POSTs of a 2 KB body (a wrk Lua script) with no mirror and with 100% mirror to the fast
# shadow (a small body is what a model's request usually is, and what a GET never exercises).
#
#   bench/gateway/run.sh [DURATION_S] [CONNECTIONS] [REPEAT]   (defaults: 8 s, 64 connections, 1)
#
# With REPEAT > 1 every case runs REPEAT times, interleaved (round after round), and the table
# shows medians; each round's figures follow the table.
#
# The p99 at saturation (CONNECTIONS connections on a machine whose CPUs wrk, the proxies and the
# upstreams share) is decided by when the scheduler preempts whom: on the 2-vCPU development VM
# it falls anywhere from 1.6 to 4.6 ms in every case, with or without a mirror. So a second table
# measures shadowgate's p99 in the no-mirror, 200 ms-shadow and shadow-down cases with
# LOW_CONNECTIONS (default 4) connections from one wrk thread, interleaved in the same rounds.
#
# nginx sets the same request and response headers as shadowgate (X-Forwarded-*, X-Request-Id;
# on its mirror copies X-Shadow-Request and no credentials), so both proxies do the same work;
# NGINX_HEADERS=bare leaves them out (lib.sh, nginx_proxy_conf).
#
# Needs build/bin/shadowgate (or SHADOWGATE=path) and build/bin/sg-bench-slow-upstream (or
# SLOW_UPSTREAM=path), nginx, wrk, python3. Prints one markdown table
# with req/s, p50 and p99 for both proxies and the shadowgate/nginx ratios, all from this run.
# Everything runs on this machine, so the proxies share the CPUs with wrk and the upstreams:
# compare rows of one run, not runs on different machines.
set -euo pipefail

DURATION=${1:-8}
CONNECTIONS=${2:-64}
REPEAT=${3:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHADOWGATE=${SHADOWGATE:-$ROOT/build/bin/shadowgate}
# The 200 ms shadow (bench/gateway/slow_upstream.cc), built next to shadowgate.
SLOW_UPSTREAM=${SLOW_UPSTREAM:-$(dirname "$SHADOWGATE")/sg-bench-slow-upstream}
for tool in "$SHADOWGATE" "$SLOW_UPSTREAM"; do
  [[ -x "$tool" ]] || { echo "missing $tool: run make first" >&2; exit 1; }
done
THREADS=${THREADS:-2}
# shadowgate's shadow_threads and shadow_nice (docs/gateway.md, Threads).
SHADOW_THREADS=${SHADOW_THREADS:-0}
SHADOW_NICE=${SHADOW_NICE:-0}
# PROXY_CPU=N runs the proxy under test (shadowgate or nginx) alone on CPU N and everything else
# (wrk, the upstreams, this script) on the other CPUs, so a proxy's latency is its own and not
# the scheduler's; use it with THREADS=1 on a 2-CPU machine.
PROXY_CPU=${PROXY_CPU:-}
PROXY_PIN=()
CPUS=$(nproc)
if [[ -n "$PROXY_CPU" ]]; then
  OTHER_CPUS=$(python3 -c "import os; print(','.join(str(c) for c in sorted(os.sched_getaffinity(0)) if c != $PROXY_CPU))")
  [[ -n "$OTHER_CPUS" ]] || { echo "PROXY_CPU=$PROXY_CPU leaves no CPU for the rest" >&2; exit 1; }
  taskset -pc "$OTHER_CPUS" $$ > /dev/null
  PROXY_PIN=(taskset -c "$PROXY_CPU")
fi
# shellcheck source=bench/gateway/lib.sh
source "$ROOT/bench/gateway/lib.sh"
bench_init gw
start_upstreams
SLOW=$(free_port); DEAD=$(free_port)
"$SLOW_UPSTREAM" "$SLOW" 200 & PIDS+=($!)
wait_port "$SLOW"

shadowgate_conf() {  # $1: shadow port or ""
  local mirrors="[]"
  if [[ -n "$1" ]]; then
    mirrors='[{"name": "shadow", "upstream": "shadow", "percent": 100, "timeout": "5s", "max_in_flight": 256}]'
  fi
  cat <<JSON
{"listen": "127.0.0.1:$SG", "admin_listen": "127.0.0.1:$SG_ADMIN", "io_threads": $THREADS,
 "shadow_threads": $SHADOW_THREADS, "shadow_nice": $SHADOW_NICE,
 "upstreams": {"primary": {"endpoints": ["127.0.0.1:$UP"]},
               "shadow": {"endpoints": ["127.0.0.1:${1:-$UP}"], "connect_timeout": "1s",
                          "max_connections": 512}},
 "routes": [{"name": "bench", "upstream": "primary", "mirrors": $mirrors}],
 "capture": {"pair_log": {"path": "$WORK/pairs.jsonl", "max_file_bytes": 67108864,
                          "max_files": 1}}}
JSON
}

LOW_CONNECTIONS=${LOW_CONNECTIONS:-4}
# The POST cases' request: a 2 KB body.
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 2048)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

# measure PORT [WRK_THREADS CONNECTIONS SCRIPT]: prints "req/s p50_ms p99_ms"; SCRIPT: a wrk Lua
# script ("": GETs).
measure() {
  local threads=${2:-2} connections=${3:-$CONNECTIONS} script=()
  [[ -n "${4:-}" ]] && script=(-s "$4")
  # 1 s of warm-up first (pools filled, the shadow's first wave under way): the table is about
  # the steady state, not the first second after a proxy starts.
  wrk -t"$threads" -c"$connections" -d1s "${script[@]}" "http://127.0.0.1:$1/predictions/x" \
    > /dev/null 2>&1
  wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency "${script[@]}" \
    "http://127.0.0.1:$1/predictions/x" > "$WORK/wrk.txt" 2>&1
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0;
                     if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' "$WORK/wrk.txt"
}

# Each run listens on ports picked just before it starts: ports picked once for all rounds were
# seen taken in between, as the local port of one of the many connections a run makes.
# run_nginx SHADOW_PORT [SCRIPT]
run_nginx() {
  # Same worker count as shadowgate's I/O threads.
  NGX_PROXY=$(free_port)
  nginx_proxy_conf "$NGX_PROXY" "$1" "$THREADS" on > "$WORK/proxy.conf"
  "${PROXY_PIN[@]}" nginx -p "$WORK" -c "$WORK/proxy.conf" -e "$WORK/proxy.err" & local pid=$!
  wait_port "$NGX_PROXY"
  measure "$NGX_PROXY" 2 "$CONNECTIONS" "${2:-}"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# run_shadowgate SHADOW_PORT [WRK_THREADS CONNECTIONS SCRIPT]
run_shadowgate() {
  SG=$(free_port)
  SG_ADMIN=$(free_port)
  shadowgate_conf "$1" > "$WORK/sg.json"
  rm -f "$WORK/pairs.jsonl"*
  "${PROXY_PIN[@]}" "$SHADOWGATE" --config "$WORK/sg.json" --log-level warn & local pid=$!
  wait_port "$SG"
  local figures
  figures=$(measure "$SG" "${2:-2}" "${3:-$CONNECTIONS}" "${4:-}")
  # Then the mirrors' fate over the whole run (warm-up included): copies answered "ok", and
  # requests not mirrored for "overload" (max_in_flight).
  echo "$figures $(curl -s "http://127.0.0.1:$SG_ADMIN/metrics" | awk '
    /^sg_gateway_mirror_outcomes_total.*outcome="ok"/ { ok += $2 }
    /^sg_gateway_not_mirrored_total.*reason="overload"/ { overload += $2 }
    END { printf "%d %d", ok, overload }')"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}

declare -a NAMES=("no mirror" "100% mirror, fast shadow" "100% mirror, 200 ms shadow" \
                  "100% mirror, shadow down" "POST 2 KB, no mirror" \
                  "POST 2 KB, 100% mirror, fast shadow")
declare -a SHADOWS=("" "$FAST" "$SLOW" "$DEAD" "" "$FAST")
declare -a SCRIPTS=("" "" "" "" "$WORK/post.lua" "$WORK/post.lua")
# REPEAT rounds: each round runs every case for both proxies (cases in order, shadowgate then
# nginx), so slow drifts of a shared machine hit every case alike; the table reports each
# column's median over the rounds.
declare -A RESULTS
for round in $(seq "$REPEAT"); do
  for i in 0 1 2 3 4 5; do
    RESULTS[sg,$i,$round]=$(run_shadowgate "${SHADOWS[$i]}" 2 "$CONNECTIONS" "${SCRIPTS[$i]}")
    RESULTS[ngx,$i,$round]=$(run_nginx "${SHADOWS[$i]}" "${SCRIPTS[$i]}")
  done
  for i in 0 2 3; do
    RESULTS[low,$i,$round]=$(run_shadowgate "${SHADOWS[$i]}" 1 "$LOW_CONNECTIONS")
  done
done
# median PROXY CASE FIELD (1: req/s, 2: p50, 3: p99) over the rounds.
median() {
  for round in $(seq "$REPEAT"); do echo "${RESULTS[$1,$2,$round]}"; done |
    awk -v f="$3" '{print $f}' | sort -g | awk '{v[NR] = $1} END {
      if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "wrk -t2 -c$CONNECTIONS -d${DURATION}s; proxies with $THREADS workers/threads (shadowgate" \
  "shadow_threads $SHADOW_THREADS, shadow_nice $SHADOW_NICE; nginx headers" \
  "${NGINX_HEADERS:-same}); $CPUS CPUs${PROXY_CPU:+, the proxy alone on CPU $PROXY_CPU and the rest on $OTHER_CPUS};" \
  "medians of $REPEAT round(s)"
echo
echo "| case | shadowgate req/s | p50 ms | p99 ms | nginx req/s | p50 ms | p99 ms | req/s ratio | p99 ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for i in 0 1 2 3 4 5; do
  awk -v name="${NAMES[$i]}" -v sr="$(median sg $i 1)" -v s5="$(median sg $i 2)" \
      -v s9="$(median sg $i 3)" -v nr="$(median ngx $i 1)" -v n5="$(median ngx $i 2)" \
      -v n9="$(median ngx $i 3)" 'BEGIN {
    printf "| %s | %d | %.2f | %.2f | %d | %.2f | %.2f | %.2fx | %.2fx |\n",
      name, sr, s5, s9, nr, n5, n9, (nr > 0 ? sr / nr : 0), (n9 > 0 ? s9 / n9 : 0) }'
done
echo
awk -v base="$(median sg 0 3)" -v slow="$(median sg 2 3)" -v dead="$(median sg 3 3)" 'BEGIN {
  printf "shadowgate p99 vs its no-mirror p99: 200 ms shadow %.2fx, shadow down %.2fx\n",
    slow / base, dead / base }'
awk -v ok="$(median sg 1 4)" -v overload="$(median sg 1 5)" -v post_ok="$(median sg 5 4)" \
    -v post_overload="$(median sg 5 5)" 'BEGIN {
  printf "shadowgate, fast shadow: %d copies answered ok, %d requests not mirrored (overload)\n",
    ok, overload
  printf "shadowgate, POST 2 KB to the fast shadow: %d copies answered ok, %d not mirrored\n",
    post_ok, post_overload }'
echo
echo "shadowgate with wrk -t1 -c$LOW_CONNECTIONS -d${DURATION}s (medians of $REPEAT round(s)):"
echo
echo "| case | req/s | p50 ms | p99 ms | p99 vs no mirror |"
echo "| --- | ---: | ---: | ---: | ---: |"
for i in 0 2 3; do
  awk -v name="${NAMES[$i]}" -v r="$(median low $i 1)" -v p5="$(median low $i 2)" \
      -v p9="$(median low $i 3)" -v base="$(median low 0 3)" 'BEGIN {
    printf "| %s | %d | %.3f | %.3f | %.2fx |\n", name, r, p5, p9, (base > 0 ? p9 / base : 0) }'
done
if ((REPEAT > 1)); then
  echo
  echo "each round (shadowgate req/s p50 p99 ok-copies not-mirrored-overload | nginx req/s p50 p99;" \
    "then shadowgate at $LOW_CONNECTIONS connections):"
  for round in $(seq "$REPEAT"); do
    for i in 0 1 2 3 4 5; do
      echo "  round $round, ${NAMES[$i]}: ${RESULTS[sg,$i,$round]} | ${RESULTS[ngx,$i,$round]}"
    done
    for i in 0 2 3; do
      echo "  round $round, ${NAMES[$i]}, $LOW_CONNECTIONS connections: ${RESULTS[low,$i,$round]}"
    done
  done
fi
