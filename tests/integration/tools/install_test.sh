#!/usr/bin/env bash
# `cmake --install` puts the programs, the example configs and the docs under a prefix, and the
# installed programs run from there: install_test.sh BUILD_DIR
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > "$prefix.log" 2>&1 || { cat "$prefix.log"; exit 1; }
rm -f "$prefix.log"
tools=(shadowgate sg-compare sg-load)
[[ -x "$build/bin/sg-serve" ]] && tools+=(sg-serve)
for tool in "${tools[@]}"; do
  [[ -x "$prefix/bin/$tool" ]] || { echo "not installed: bin/$tool"; exit 1; }
  "$prefix/bin/$tool" --version | grep -q "^$tool " || { echo "bin/$tool --version"; exit 1; }
done
for file in share/shadowgate/configs/gateway.example.json share/shadowgate/configs/gates.json \
            share/doc/shadowgate/README.md share/doc/shadowgate/gateway.md; do
  [[ -s "$prefix/$file" ]] || { echo "not installed: $file"; exit 1; }
done
# The installed example gateway config is complete: it passes the installed binary's own check
# of the document (a missing companion file would fail it); what it needs from the machine
# (resolvable upstreams, log folders) may not be there, so those lines are left out.
out=$("$prefix/bin/shadowgate" check --config "$prefix/share/shadowgate/configs/gateway.example.json" 2>&1 || true)
problems=$(grep -v -e ': ok$' -e ': \$\.\(upstreams\|capture\|access_log_path\|comparison\.report_dir\)' <<< "$out" || true)
[[ -z "$problems" ]] || { echo "installed gateway.example.json: $problems"; exit 1; }
echo "installed ${tools[*]}, configs and docs under a prefix"
