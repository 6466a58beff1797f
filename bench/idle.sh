#!/usr/bin/env bash
# Idle footprint and start-up time of a whole cluster: brings up the
# multi-host test bed (deploy/testbed.sh: a master and two node hosts, each
# node with its own Docker engine) from release binaries, times `up` until
# every node is Ready, lets the cluster idle, then reads each daemon's
# resident set (VmRSS) and takes the test bed down.
#
#   cargo build --profile deploy --bins -p rkube-apiserver -p rkube-controller-manager \
#       -p rkube-scheduler -p rkube-kubelet -p rkube-proxy -p rkube-ctl
#   bench/idle.sh [--idle SECONDS] [--ha] [--bin-dir DIR]
#
# Binaries: --bin-dir, else target/deploy (the profile that installs), else
# target/release.
#
# Needs root, Docker running with the local images (deploy/start-docker.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=60 HA=() TARGET=${CARGO_TARGET_DIR:-$PWD/target}
RKUBE_BIN=$TARGET/deploy
[ -x "$RKUBE_BIN/rkube-apiserver" ] || RKUBE_BIN=$TARGET/release
while [ $# -gt 0 ]; do
    case "$1" in
        --idle) IDLE=$2; shift 2 ;;
        --ha) HA=(--ha); shift ;;
        --bin-dir) RKUBE_BIN=$2; shift 2 ;;
        *) echo "usage: $0 [--idle SECONDS] [--ha] [--bin-dir DIR]" >&2; exit 2 ;;
    esac
done
export RKUBE_BIN
NAME=idle
STATE=/var/lib/rkube-testbed/$NAME
tb() { deploy/testbed.sh "$1" --name "$NAME" --underlay 10.244.7 "${@:2}"; }

add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }

tb down >/dev/null 2>&1 || true
trap 'tb down >/dev/null 2>&1 || true' EXIT
start=$(date +%s.%N)
tb up --nodes 2 "${HA[@]}" >/dev/null
ready=$(date +%s.%N)
echo "up to 2 nodes Ready: $(add "$ready" "-$start") s (binaries from $RKUBE_BIN)"
sleep "$IDLE"

rss() { # host daemon -> MiB
    local pid; pid=$(cat "$STATE/$1/$2.pid")
    awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"
}
echo "after ${IDLE} s idle, VmRSS in MiB:"
total=0
for d in apiserver controller-manager scheduler; do
    v=$(rss master "$d"); total=$(add "$total" "$v")
    printf '  %-20s %6s\n' "$d" "$v"
done
printf '  %-20s %6s  (apiserver + controller-manager + scheduler)\n' "control plane" "$total"
printf '  %-20s %6s  (not counted above)\n' "etcd" "$(rss master etcd)"
node=0
for d in kubelet proxy; do
    v=$(rss node-1 "$d"); node=$(add "$node" "$v")
    printf '  %-20s %6s\n' "node-1 $d" "$v"
done
printf '  %-20s %6s  (rkubelet + rkube-proxy)\n' "node" "$node"
