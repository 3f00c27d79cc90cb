#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind: shadowgate against
# nginx 1.22 as the same proxy, without a mirror and with 100% mirrored to a fast shadow (nginx's
# `mirror`; shadowgate also writes the pair log). A deterministic companion to run.sh: wall-clock req/s on a small shared machine is
# noisy, instruction counts are not (they leave out the kernel's share, which strace shows to be
# the same 4 socket calls per request for both proxies).
#
#   bench/gateway/instructions.sh [REQUESTS_SECONDS (default 4)]
#
# Needs build/bin/shadowgate (or SHADOWGATE=path), valgrind, nginx, wrk, python3. Both proxies
# run one worker/thread under callgrind; wrk (1 thread, 4 connections) warms up for 2 s, the
# counters are zeroed, then wrk runs REQUESTS_SECONDS and the counts are dumped.
# KEEP=DIR keeps each run's callgrind profile there (nginx.out, nginx-mirror.out, shadowgate.out,
# shadowgate-mirror.out) for callgrind_annotate, e.g. the metrics' share (docs/ARCHITECTURE.md).
set -euo pipefail
SECONDS_RUN=${1:-4}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHADOWGATE=${SHADOWGATE:-$ROOT/build/bin/shadowgate}
for tool in valgrind callgrind_control callgrind_annotate nginx wrk; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
[[ -x "$SHADOWGATE" ]] || { echo "missing $SHADOWGATE: run make first" >&2; exit 1; }
# shellcheck source=bench/gateway/lib.sh
source "$ROOT/bench/gateway/lib.sh"
bench_init ir
start_upstreams
PROXY=$(free_port); ADMIN=$(free_port)
# nginx with one process (master_process off) so that callgrind sees all of its work.
nginx_proxy_conf "$PROXY" "" 1 off > "$WORK/proxy.conf"
nginx_proxy_conf "$PROXY" "$FAST" 1 off > "$WORK/proxy-mirror.conf"
shadowgate_conf() {  # $1: mirrors JSON
  cat <<JSON
{"listen": "127.0.0.1:$PROXY", "admin_listen": "127.0.0.1:$ADMIN", "io_threads": 1,
 "upstreams": {"primary": {"endpoints": ["127.0.0.1:$UP"]},
               "shadow": {"endpoints": ["127.0.0.1:$FAST"]}},
 "routes": [{"name": "bench", "upstream": "primary", "mirrors": $1}],
 "capture": {"pair_log": {"path": "$WORK/pairs.jsonl", "max_file_bytes": 67108864,
                          "max_files": 1}}}
JSON
}

# Runs "$@" under callgrind as the proxy; prints instructions per request.
count() {
  rm -f "$WORK"/cg.out*
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$@" 2>/dev/null & local pid=$!
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$PROXY/x" && break
    sleep 0.2
  done
  wrk -t1 -c4 -d2s "http://127.0.0.1:$PROXY/predictions/x" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local n
  n=$(wrk -t1 -c4 -d"${SECONDS_RUN}s" "http://127.0.0.1:$PROXY/predictions/x" |
      awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 0.5
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local ir
  local profile
  profile=$(ls -S "$WORK"/cg.out.* | head -1)
  if [[ -n "${KEEP:-}" ]]; then mkdir -p "$KEEP" && cp "$profile" "$KEEP/$KEEP_AS.out"; fi
  ir=$(callgrind_annotate "$profile" 2>/dev/null |
       awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$((ir / n)) $n"
}

shadowgate_conf '[]' > "$WORK/none.json"
shadowgate_conf '[{"name": "shadow", "upstream": "shadow", "percent": 100}]' > "$WORK/mirror.json"
KEEP_AS=nginx
read -r ngx ngx_n < <(count nginx -p "$WORK" -c "$WORK/proxy.conf" -e "$WORK/proxy.err")
KEEP_AS=nginx-mirror
read -r ngx_m ngx_m_n < <(count nginx -p "$WORK" -c "$WORK/proxy-mirror.conf" \
                            -e "$WORK/proxy.err")
KEEP_AS=shadowgate
read -r none none_n < <(count "$SHADOWGATE" --config "$WORK/none.json" --log-level warn)
KEEP_AS=shadowgate-mirror
read -r mirror mirror_n < <(count "$SHADOWGATE" --config "$WORK/mirror.json" --log-level warn)
echo "user-space instructions per request (callgrind; ${SECONDS_RUN}s of wrk -t1 -c4 per row; nginx" \
  "headers ${NGINX_HEADERS:-same})"
echo
echo "| case | nginx instr/request | shadowgate instr/request | shadowgate/nginx |"
echo "| --- | ---: | ---: | ---: |"
awk -v n="$ngx" -v s="$none" -v nm="$ngx_m" -v m="$mirror" 'BEGIN {
  printf "| no mirror | %d | %d | %.2fx |\n", n, s, s / n
  printf "| 100%% mirror, fast shadow (shadowgate also writes the pair log) | %d | %d | %.2fx |\n",
    nm, m, m / nm }'
echo
echo "requests counted: nginx $ngx_n and $ngx_m_n, shadowgate $none_n and $mirror_n"
