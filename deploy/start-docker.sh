#!/usr/bin/env bash
# Starts the Docker engine in the background if it is not answering (there is
# no systemd on the machines rkube is developed and tested on), then builds
# rkube's local images (images/build.sh) if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
    echo "starting dockerd"
    mkdir -p /var/log
    nohup dockerd >/var/log/rkube-dockerd.log 2>&1 &
    for _ in $(seq 1 150); do
        docker info >/dev/null 2>&1 && break
        sleep 0.2
    done
    docker info >/dev/null 2>&1 || { echo "error: dockerd did not start; see /var/log/rkube-dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect rkube/pause:3.9 rkube/toolbox:1.0 >/dev/null 2>&1; then
    images/build.sh
fi
