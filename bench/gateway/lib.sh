# Shared by the gateway benchmarks (run.sh, instructions.sh, capture_disk.sh) and bench/soak:
# sourced, not run.
#
# bench_init NAME   a work directory ($WORK) removed at exit with every process in $PIDS
# free_port, wait_port PORT
# start_upstreams   the primary upstream ($UP) and the fast shadow ($FAST): one nginx, one worker,
#                   small JSON bodies; returns once both listen
# nginx_proxy_conf PORT SHADOW_PORT WORKERS MASTER
#                   nginx 1.22 as the (mirroring) proxy on PORT, keep-alive pools; SHADOW_PORT ""
#                   for no mirror; MASTER "on" or "off" (off: one process, for callgrind);
#                   NGINX_HEADERS same (default: the headers shadowgate sets) or bare
# fashion_serve NAME LOGDIR
#                   a sg-serve ($SG_SERVE) with fashion_tiny on free ports ($PORT), the demo's
#                   workload (capture_disk.sh, bench/soak/run.sh)

bench_init() {
  WORK=$(mktemp -d "/tmp/sg-bench-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
  temp_paths="client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK;
  uwsgi_temp_path $WORK; scgi_temp_path $WORK;"
}

bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}

# A port that was free a moment ago, below the kernel's ephemeral range (scripts/free_ports.py).
SG_FREE_PORTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)/free_ports.py
free_port() { python3 "$SG_FREE_PORTS"; }

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  return 1
}

start_upstreams() {
  UP=$(free_port)
  FAST=$(free_port)
  cat > "$WORK/upstreams.conf" <<NGX
daemon off; master_process on; worker_processes 1; pid $WORK/upstreams.pid;
error_log $WORK/upstreams.err warn; events { worker_connections 4096; }
http { access_log off; $temp_paths keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP; location / { default_type application/json;
    return 200 '{"label": "gpu", "score": 0.98}'; } }
  server { listen 127.0.0.1:$FAST; location / { default_type application/json;
    return 200 '{"label": "cpu", "score": 0.97}'; } } }
NGX
  nginx -p "$WORK" -c "$WORK/upstreams.conf" -e "$WORK/upstreams.err" & PIDS+=($!)
  wait_port "$UP"
  wait_port "$FAST"
}

nginx_proxy_conf() {
  local port=$1 shadow_port=$2 workers=$3 master=$4 mirror="" shadow_upstream="" shadow_location=""
  # The request headers shadowgate sets on every forwarded request (docs/gateway.md): with
  # NGINX_HEADERS=same (the default) nginx does the same work: X-Forwarded-For/-Proto/-Host, a
  # kept or generated X-Request-Id, returned to the client too; its mirror copies are marked and
  # have the credentials removed, as shadowgate's are. NGINX_HEADERS=bare: only what keep-alive
  # to the upstream needs.
  local headers='proxy_set_header Connection "";' id_map="" shadow_headers=""
  if [[ ${NGINX_HEADERS:-same} == same ]]; then
    id_map='map $http_x_request_id $sg_request_id { "" $request_id; default $http_x_request_id; }'
    headers="$headers"' proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Request-Id $sg_request_id;'
    shadow_headers='proxy_set_header X-Shadow-Request 1; proxy_set_header Authorization "";
      proxy_set_header Cookie ""; proxy_set_header Proxy-Authorization "";'
  fi
  if [[ -n "$shadow_port" ]]; then
    mirror="mirror /mirror; mirror_request_body on;"
    shadow_upstream="upstream shadow { server 127.0.0.1:$shadow_port; keepalive 64; }"
    shadow_location="location = /mirror { internal; proxy_pass http://shadow\$request_uri;
      proxy_http_version 1.1; $headers $shadow_headers proxy_connect_timeout 1s;
      proxy_read_timeout 5s; }"
  fi
  local response_id=""
  [[ -n "$id_map" ]] && response_id='add_header X-Request-Id $sg_request_id always;'
  cat <<NGX
daemon off; master_process $master; worker_processes $workers; pid $WORK/proxy.pid;
error_log $WORK/proxy.err error; events { worker_connections 8192; }
http { access_log off; $temp_paths keepalive_requests 1000000; $id_map
  upstream primary { server 127.0.0.1:$UP; keepalive 64; }
  $shadow_upstream
  server { listen 127.0.0.1:$port;
    location / { $mirror proxy_pass http://primary; proxy_http_version 1.1; $headers
      $response_id }
    $shadow_location } }
NGX
}

# fashion_serve NAME LOGDIR: a sg-serve ($SG_SERVE) with fashion_tiny (configs/serve.example.json's
# model, from $MODELS) on free ports, its log in LOGDIR/NAME.log; its inference port in $PORT.
# For the demo's workload (capture_disk.sh, bench/soak/run.sh).
fashion_serve() {
  PORT=$(free_port)
  cat >"$WORK/$1.json" <<JSON
{"inference_address": "127.0.0.1:$PORT", "management_address": "127.0.0.1:$(free_port)",
 "metrics_address": "127.0.0.1:$(free_port)",
 "cpu": {"workers": 1, "threads_per_worker": 1, "pinning": false},
 "models": {"fashion": {"path": "$MODELS/fashion_tiny.pt", "handler": "image_classifier",
   "labels": "$MODELS/fashion_index_to_name.json",
   "preprocess": {"resize": 28, "crop": 28, "channels": 1, "mean": [0.286], "std": [0.353]},
   "topk": 5, "batch_size": 4, "max_batch_delay_ms": 5}}}
JSON
  "$SG_SERVE" --config "$WORK/$1.json" --log-level warn >"$2/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/ping") == 200 ]] && return
    sleep 0.1
  done
  echo "sg-serve $1 did not get ready:" >&2
  cat "$2/$1.log" >&2
  exit 1
}

# The demo workload's gateway config on stdout (as docs/gateway.md's capture and soak figures were
# measured): a POST route to the reference ($REF) mirrored twice to the candidate ($CAND), the demo's
# capture with body_sample $3. $1 listen port, $2 admin port, $4 the pair_log object (JSON), $5 more
# top-level members (JSON, with a leading comma) or nothing.
demo_gateway_json() {
  cat <<JSON
{"listen": "127.0.0.1:$1", "admin_listen": "127.0.0.1:$2",
 "upstreams": {"primary": {"endpoints": ["127.0.0.1:$REF"]},
               "candidate": {"endpoints": ["127.0.0.1:$CAND"], "total_timeout": "10s"}},
 "routes": [{"name": "classify", "path_prefix": "/predictions/", "methods": ["POST"],
             "upstream": "primary",
             "mirrors": [{"name": "teacher-cpu", "upstream": "candidate", "timeout": "10s",
                          "max_in_flight": 256},
                         {"name": "student", "upstream": "candidate", "timeout": "10s",
                          "max_in_flight": 256}]}],
 "capture": {"request_headers": ["content-type", "x-true-label"],
             "response_headers": ["content-type"], "max_body_bytes": 65536,
             "body_sample": $3,
             "pair_log": $4}$5}
JSON
}
