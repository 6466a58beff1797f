#!/usr/bin/env bash
# Builds the images rkube needs locally, FROM scratch (no registry is used):
#   rkube/pause:3.9     the pod infrastructure container (a static C binary)
#   rkube/toolbox:1.0   busybox-static: sh, httpd, wget, nc, sleep, tail, ...
#   rkube/dns:<version> rkube-dns, the cluster DNS add-on (a static Rust binary)
# Usage: images/build.sh [pause] [toolbox] [dns]
#   Without arguments: pause and toolbox, and dns only if that image is
#   missing (its cargo build takes minutes). Naming dns rebuilds it (cargo
#   and Docker skip what did not change).
# Idempotent: an image that exists is rebuilt only if its inputs changed
# (Docker's cache decides).
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v docker >/dev/null || { echo "error: docker is not installed (apt-get install docker.io)" >&2; exit 1; }

build() { # docker build args...; quiet unless it fails
    if ! docker build -q "$@" >"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        exit 1
    fi
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' ../Cargo.toml | head -n1)
if [ $# -eq 0 ]; then
    want=(pause toolbox)
    docker image inspect "rkube/dns:$version" >/dev/null 2>&1 || want+=(dns)
else
    want=("$@")
fi
wanted() { [[ " ${want[*]} " == *" $1 "* ]]; }
for image in "${want[@]}"; do
    case "$image" in
        pause | toolbox | dns) ;;
        *) echo "error: unknown image \"$image\" (pause, toolbox, dns)" >&2; exit 1 ;;
    esac
done

# pause
if wanted pause; then
    mkdir -p "$work/pause"
    gcc -static -Os -s -o "$work/pause/pause" pause/pause.c
    cp pause/Dockerfile "$work/pause/"
    build -t rkube/pause:3.9 "$work/pause"
    echo "built rkube/pause:3.9"
fi

# toolbox
if wanted toolbox; then
    [ -x /bin/busybox ] || { echo "error: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
    root="$work/toolbox/rootfs"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/var/www" "$root/root"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
    echo '<html><body>rkube toolbox</body></html>' >"$root/var/www/index.html"
    chmod 1777 "$root/tmp"
    cp toolbox/Dockerfile "$work/toolbox/"
    build -t rkube/toolbox:1.0 -t rkube/toolbox:latest "$work/toolbox"
    echo "built rkube/toolbox:1.0 (also tagged latest)"
fi

# dns: a static binary (glibc's crt-static), debug profile stripped: it builds
# in about 2.5 minutes on two cores where a release build of its dependencies
# takes far longer, and answers cached names at tens of thousands of queries
# per second all the same (bench/README.md).
if wanted dns; then
    target_dir=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}
    (cd .. && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_DEV_STRIP=true \
        cargo build -q -p rkube-dns --bin rkube-dns --target x86_64-unknown-linux-gnu)
    mkdir -p "$work/dns"
    cp "$target_dir/x86_64-unknown-linux-gnu/debug/rkube-dns" "$work/dns/"
    cp dns/Dockerfile "$work/dns/"
    build -t "rkube/dns:$version" "$work/dns"
    echo "built rkube/dns:$version"
fi
