#!/usr/bin/env bash
# Builds the two container images from what the project built (`make images` runs it):
#   localhost/shadowgate/sg-serve     sg-serve, the shared libraries it loads (libtorch, OpenBLAS
#                                     through Debian's libblas.so.3 alternative), models/ at /models
#   localhost/shadowgate/shadowgate   shadowgate and sg-compare, their libraries, /bin/sh and
#                                     /bin/sleep (the sg-compare job's file glob, the gateway's
#                                     preStop wait)
# No registry is reachable here, so there is no base image: each image is FROM scratch with a
# root made of the binaries and exactly the files `ldd` lists for them (no package manager, no
# compiler, no shell in sg-serve's), a non-root user (65532) and /tmp. The same libraries as the
# tests ran with, so what was measured is what ships. docs/deploy.md has the sizes.
#
# Usage: deploy/images/build.sh [BIN_DIR (build/bin)]
#   IMAGE_TAG (latest), IMAGES_DIR (build-images: the staged roots), CONTAINERS_CONF
#   (deploy/podman/containers.conf: why in that file)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$repo/build/bin}" && pwd)
out=${IMAGES_DIR:-$repo/build-images}
tag=${IMAGE_TAG:-latest}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/deploy/podman/containers.conf}

say() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

command -v podman >/dev/null || die "podman missing (scripts/setup installs it)"
for b in sg-serve shadowgate sg-compare; do
  [[ -x "$bin/$b" ]] || die "$bin/$b missing: build first (make)"
done

# copy ROOT FILE [DEST]: FILE (symlinks followed) at DEST (default: its own path, with /lib,
# /lib64 and /bin under /usr as on Debian 12), and every library ldd lists for it.
copy() {
  local root=$1 file=$2 dest=${3:-$2}
  case "$dest" in /lib/* | /lib64/* | /bin/* | /sbin/*) dest=/usr$dest ;; esac
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$file" "$root$dest"
  local lib
  for lib in $(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    local target=$lib
    case "$target" in /lib/* | /lib64/* | /bin/*) target=/usr$target ;; esac
    [[ -e "$root$target" ]] && continue
    mkdir -p "$root$(dirname "$target")"
    cp -L "$lib" "$root$target"
  done
}

# base ROOT: the directory skeleton of a Debian 12 root (merged /usr), a non-root user, /tmp.
base() {
  local root=$1
  rm -rf "$root"
  mkdir -p "$root"/{usr/bin,usr/lib,usr/lib64,usr/sbin,etc,tmp,proc,sys,dev,usr/local/bin}
  ln -s usr/bin "$root/bin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  ln -s usr/sbin "$root/sbin"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nsg:x:65532:65532:shadowgate:/nonexistent:/usr/sbin/nologin\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nsg:x:65532:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  # The build's own license notices travel with the libraries they cover.
  mkdir -p "$root/usr/share/doc"
}

# containerfile ROOT ENTRYPOINT CMD-JSON: FROM scratch, the root, the user.
containerfile() {
  cat >"$1/../Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
USER 65532:65532
WORKDIR /tmp
ENV TMPDIR=/tmp
ENTRYPOINT ["$2"]
CMD $3
EOF
}

# licenses ROOT: the Debian copyright file of every package that owns a copied file.
licenses() {
  local root=$1 pkg
  for pkg in $(cd "$root" && find usr -type f -name '*.so*' -o -type f -path 'usr/bin/*' |
      sed 's|^|/|' | xargs -r dpkg -S 2>/dev/null | cut -d: -f1 | sort -u); do
    [[ -f /usr/share/doc/$pkg/copyright ]] || continue
    mkdir -p "$root/usr/share/doc/$pkg"
    cp /usr/share/doc/"$pkg"/copyright "$root/usr/share/doc/$pkg/"
  done
}

build() {
  local name=$1
  say "building localhost/shadowgate/$name:$tag from $out/$name"
  podman build --quiet --network none -t "localhost/shadowgate/$name:$tag" \
    -f "$out/$name/Containerfile" "$out/$name" >/dev/null
}

# sg-serve: the workers are the same binary (exec'd through /proc/self/exe).
root=$out/sg-serve/rootfs
base "$root"
copy "$root" "$bin/sg-serve" /usr/local/bin/sg-serve
mkdir -p "$root/models" "$root/etc/sg-serve"
cp -r "$repo/models/fashion-mnist" "$root/models/"
cp "$repo/deploy/k8s/base/serve.json" "$root/etc/sg-serve/serve.json"
licenses "$root"
containerfile "$root" /usr/local/bin/sg-serve '["--config", "/etc/sg-serve/serve.json"]'
build sg-serve

# shadowgate + sg-compare.
root=$out/shadowgate/rootfs
base "$root"
copy "$root" "$bin/shadowgate" /usr/local/bin/shadowgate
copy "$root" "$bin/sg-compare" /usr/local/bin/sg-compare
copy "$root" /bin/dash /bin/dash
ln -s dash "$root/usr/bin/sh"
copy "$root" /bin/sleep
mkdir -p "$root/etc/shadowgate" "$root/var/lib/shadowgate/pairs"
chown 65532:65532 "$root/var/lib/shadowgate/pairs"
licenses "$root"
containerfile "$root" /usr/local/bin/shadowgate '["--config", "/etc/shadowgate/gateway.json"]'
build shadowgate

# Smoke: each runs as the non-root user and starts; sg-serve plans from the container's CPUs.
for name in sg-serve shadowgate; do
  uid=$(podman run --rm --network none --entrypoint /usr/local/bin/"$( [[ $name == sg-serve ]] &&
      echo sg-serve || echo sg-compare)" "localhost/shadowgate/$name:$tag" --help >/dev/null &&
    podman image inspect --format '{{.Config.User}}' "localhost/shadowgate/$name:$tag")
  [[ "$uid" == 65532:65532 ]] || die "$name: user is '$uid', not 65532:65532"
done
podman run --rm --network none --cpus 1 "localhost/shadowgate/sg-serve:$tag" plan |
  grep -q '^budget: 1 CPUs' || die "sg-serve plan in a 1-CPU container did not plan 1 CPU"
podman run --rm --network none --entrypoint /bin/sh "localhost/shadowgate/shadowgate:$tag" -c \
  'while read k v rest; do [ "$k" = Uid: ] && [ "$v" = 65532 ] && exit 0; done </proc/self/status; exit 1' ||
  die "shadowgate image: the shell does not run as uid 65532"
podman run --rm --network none --entrypoint /usr/local/bin/sg-compare \
  "localhost/shadowgate/shadowgate:$tag" check --defaults >/dev/null ||
  die "sg-compare check --defaults failed in the image"

podman image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^localhost/shadowgate/' >&2
