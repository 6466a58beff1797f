#!/usr/bin/env bash
# Installs rkube as systemd services on this host.
#
#   deploy/install.sh [--dry-run] [--bin-dir DIR] master|node
#
# master: rkube-apiserver, rkube-controller-manager, rkube-scheduler (and etcd
#         from Debian's etcd-server package);
# node:   rkubelet, rkube-proxy (and Docker from Debian's docker.io package).
#
# Binaries come from --bin-dir, else target/deploy (cargo build --profile
# deploy --bins: smallest, least resident), else target/release, else
# target/debug (build them first: cargo build --release --bins). They go to /usr/local/bin, the
# units (deploy/systemd/*.service) to /etc/systemd/system, the environment
# files (deploy/systemd/env/*) to /etc/rkube/ unless one is already there.
# Then, if systemd runs this host, the units are enabled and started.
#
# DESTDIR=/some/root installs under that root instead (no apt-get, no
# systemctl): tests and packaging use it. --dry-run prints what it would do.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dry_run=0
bin_dir=""
role=""
usage() { echo "usage: $0 [--dry-run] [--bin-dir DIR] master|node" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --bin-dir) [ $# -ge 2 ] || usage; bin_dir="$2"; shift ;;
        --bin-dir=*) bin_dir="${1#--bin-dir=}" ;;
        master|node) [ -z "$role" ] || usage; role="$1" ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
    shift
done
[ -n "$role" ] || usage

case "$role" in
    master)
        units=(rkube-apiserver rkube-controller-manager rkube-scheduler)
        envs=(config apiserver controller-manager scheduler)
        apt_pkg=etcd-server apt_cmd=etcd
        # The controller manager may delete hostPath volumes only there (ReadWritePaths=).
        dirs=(/var/lib/rkube/hostpath-pv)
        ;;
    node)
        units=(rkubelet rkube-proxy)
        envs=(config kubelet proxy)
        apt_pkg=docker.io apt_cmd=dockerd
        dirs=(/var/lib/rkubelet)
        ;;
esac

# A binary's unit is named after it.
binaries=("${units[@]}")
if [ -z "$bin_dir" ]; then
    for dir in "$repo/target/deploy" "$repo/target/release" "$repo/target/debug"; do
        missing=0
        for b in "${binaries[@]}"; do [ -x "$dir/$b" ] || missing=1; done
        if [ $missing -eq 0 ]; then bin_dir="$dir"; break; fi
    done
    if [ -z "$bin_dir" ]; then
        echo "error: ${binaries[*]} are not built in target/release or target/debug;" \
            "run cargo build --release --bins, or pass --bin-dir" >&2
        exit 1
    fi
fi
for b in "${binaries[@]}"; do
    [ -x "$bin_dir/$b" ] || { echo "error: $bin_dir/$b is missing or not executable" >&2; exit 1; }
done

destdir="${DESTDIR:-}"
run() {
    if [ $dry_run -eq 1 ]; then echo "would run: $*"; else "$@"; fi
}

if [ -z "$destdir" ] && ! command -v "$apt_cmd" >/dev/null 2>&1; then
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y "$apt_pkg"
fi

for b in "${binaries[@]}"; do
    run install -D -m 0755 "$bin_dir/$b" "$destdir/usr/local/bin/$b"
done
for u in "${units[@]}"; do
    run install -D -m 0644 "$repo/deploy/systemd/$u.service" "$destdir/etc/systemd/system/$u.service"
done
for e in "${envs[@]}"; do
    if [ -e "$destdir/etc/rkube/$e" ]; then
        echo "keeping $destdir/etc/rkube/$e (already there; the sample is deploy/systemd/env/$e)"
    else
        run install -D -m 0644 "$repo/deploy/systemd/env/$e" "$destdir/etc/rkube/$e"
    fi
done
run install -D -m 0644 "$repo/docs/operations.md" "$destdir/usr/local/share/doc/rkube/operations.md"
for d in "${dirs[@]}"; do
    run install -d -m 0755 "$destdir$d"
done

if [ -n "$destdir" ]; then
    echo "installed under $destdir; not starting anything"
elif [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
    [ "$role" = master ] && run systemctl enable --now etcd.service
    [ "$role" = node ] && run systemctl enable --now docker.service
    run systemctl enable --now "${units[@]/%/.service}"
else
    echo "systemd is not PID 1 here: installed, but not enabled or started" \
        "(start them by hand: systemctl is not available)"
fi
