#!/usr/bin/env bash
# TorchServe's own Postman collections (tests/peer/torchserve/postman, or PEERS=DIR) run with
# newman against sg-serve: a model store of stand-in archives (make_archives.py), sg-serve started
# as `torchserve --start --model-store DIR --enable-model-api` would be, on free ports, and each
# collection's data file less the cases listed in skipped.tsv (printed with their reason). Fails
# on any failed assertion. See tests/peer/README.md.
#
# Usage: tests/peer/run-torchserve-collections.sh [BUILD_DIR (default build)]
# Needs: scripts/setup (newman in .cache/newman, pinned), a built sg-serve, /usr/bin/python3.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build}
[[ $build = /* ]] || build="$root/$build"
peers=${PEERS:-$root/tests/peer/torchserve}
newman="$root/.cache/newman/node_modules/.bin/newman"
serve="$build/bin/sg-serve"
[[ -x $newman ]] || { echo "peer-test: $newman missing: run scripts/setup" >&2; exit 2; }
[[ -x $serve ]] || { echo "peer-test: $serve missing: build first (make)" >&2; exit 2; }
[[ -d $peers/postman ]] || { echo "peer-test: $peers/postman missing (PEERS=DIR)" >&2; exit 2; }

work=$(mktemp -d)
serve_pid=""
cleanup() {
  if [[ -n $serve_pid ]]; then
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

/usr/bin/python3 "$root/tests/peer/make_archives.py" "$work/store"
read -r -a ports <<<"$(/usr/bin/python3 "$root/scripts/free_ports.py" 3)"
pred=${ports[0]} mgmt=${ports[1]} metric=${ports[2]}
"$serve" --model-store "$work/store" --enable-model-api \
  --inference-address "127.0.0.1:$pred" --management-address "127.0.0.1:$mgmt" \
  --metrics-address "127.0.0.1:$metric" >"$work/sg-serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
  curl -sf -m 1 "http://127.0.0.1:$pred/ping" >/dev/null && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/sg-serve.log" >&2; exit 1; }
  sleep 0.1
done

# TorchServe's environment with this sg-serve's host and ports.
jq --arg pred "$pred" --arg mgmt "$mgmt" --arg metric "$metric" '
  .values |= map(
    if .key == "hostname" then .value = "127.0.0.1"
    elif .key == "pred-port" then .value = $pred
    elif .key == "mgmt-port" then .value = $mgmt
    elif .key == "metric-port" then .value = $metric
    else . end)' "$peers/postman/environment.json" >"$work/environment.json"

status=0
run_collection() {  # name collection data
  local name=$1 collection=$2 data=$3
  local skips
  skips=$(awk -F'\t' -v c="$name" '$1 == c {print $2 "\t" $3}' "$root/tests/peer/skipped.tsv")
  if grep -q $'^\*\t' <<<"$skips"; then
    echo "peer-test: SKIPPED collection $name: $(cut -f2 <<<"$skips")"
    return
  fi
  local names='[]'
  while IFS=$'\t' read -r test reason; do
    [[ -z $test ]] && continue
    echo "peer-test: SKIPPED $name: \"$test\": $reason"
    names=$(jq -c --arg t "$test" '. + [$t]' <<<"$names")
  done <<<"$skips"
  jq --argjson skip "$names" 'map(select(.test as $t | $skip | index($t) | not))' "$data" \
    >"$work/$name-data.json"
  echo "peer-test: $name: $(jq length "$work/$name-data.json") of $(jq length "$data") cases"
  "$newman" run "$collection" -d "$work/$name-data.json" -e "$work/environment.json" \
    --timeout-request 180000 --reporters cli --disable-unicode --color off \
    --working-dir "$peers/postman" || status=1
}
start=$(date +%s)
run_collection management "$peers/postman/management_api_test_collection.json" \
  "$peers/postman/management_data.json"
run_collection inference "$peers/postman/inference_api_test_collection.json" \
  "$peers/postman/inference_data.json"
run_collection kf "$peers/postman/kf_api_test_collection.json" "$peers/postman/kf_inference_data.json"
run_collection kfv2 "$peers/postman/kfv2_api_test_collection.json" \
  "$peers/postman/kfv2_inference_data.json"
echo "peer-test: $(( $(date +%s) - start )) s"
if ((status)); then
  tail -50 "$work/sg-serve.log" >&2
  echo "peer-test: FAILED" >&2
fi
exit $status
