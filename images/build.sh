#!/usr/bin/env bash
# Builds the images rkube needs locally, FROM scratch (no registry is used):
#   rkube/pause:3.9     the pod infrastructure container (a static C binary)
#   rkube/toolbox:1.0   busybox-static: sh, httpd, wget, nc, sleep, tail, ...
# Idempotent: an image that exists is rebuilt only if its inputs changed
# (Docker's cache decides).
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v docker >/dev/null || { echo "error: docker is not installed (apt-get install docker.io)" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "error: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }

build() { # docker build args...; quiet unless it fails
    if ! docker build -q "$@" >"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        exit 1
    fi
}

# pause
mkdir -p "$work/pause"
gcc -static -Os -s -o "$work/pause/pause" pause/pause.c
cp pause/Dockerfile "$work/pause/"
build -t rkube/pause:3.9 "$work/pause"
echo "built rkube/pause:3.9"

# toolbox
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
