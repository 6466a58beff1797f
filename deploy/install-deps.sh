#!/usr/bin/env bash
# Installs what rkube needs on Debian 12, idempotently: etcd, protoc, Docker,
# docker-compose, nftables, busybox-static, and cargo-nextest. Safe to run
# again: it only installs what is missing.
set -euo pipefail

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
# The proxy's traffic test serves HTTP from a network namespace with python3.
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# The Python-client e2e test makes a virtualenv and installs `kubernetes` from PyPI.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
# docker-compose.yml's e2e test (e2e/tests/compose.rs) runs Debian's docker-compose
# (1.29); `docker compose` (v2) reads the same file.
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need_apt+=(docker-compose)
# e2e/tests/systemd.rs checks deploy/systemd/*.service with systemd-analyze verify.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "installing: ${need_apt[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not installed. rkube needs a Rust toolchain (1.88 or newer)." >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
# The kubectl e2e tests drive the real kubectl (not in Debian's archive): say so early.
command -v kubectl >/dev/null 2>&1 ||
    echo "warning: kubectl is not on the PATH; the kubectl e2e tests need it (set KUBECTL to its path)" >&2
