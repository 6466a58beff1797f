#!/usr/bin/env bash
# Checks deploy/systemd/*.service with `systemd-analyze verify`, which needs
# no running systemd: both roles are installed (deploy/install.sh, with the
# PKI) under a temporary DESTDIR, so the ExecStart binaries exist, next to a copy of this
# host's system units (sysinit.target, etcd.service, docker.service, …).
# Fails on any complaint, unknown keys included (verify only warns on those).
#
#   deploy/systemd/verify.sh [--bin-dir DIR]    (default: install.sh's choice)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v systemd-analyze >/dev/null 2>&1 ||
    { echo "error: systemd-analyze is missing (Debian: apt-get install systemd)" >&2; exit 1; }
root="$(mktemp -d "${TMPDIR:-/tmp}/rkube-systemd-verify.XXXXXX")"
trap 'rm -rf "$root"' EXIT

# One machine as master and node: the node's credentials come from the
# master's PKI, as on a separate node (install.sh node --pki).
DESTDIR="$root" "$here/../install.sh" "$@" master --master-address 127.0.0.1 --node verify=127.0.0.1 >/dev/null
DESTDIR="$root" "$here/../install.sh" "$@" node --pki "$root/etc/rkube/pki" --node-name verify >/dev/null
mkdir -p "$root/usr/lib/systemd"
cp -a /lib/systemd/system "$root/usr/lib/systemd/"

units=()
for f in "$here"/*.service; do units+=("$(basename "$f")"); done
status=0
out="$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1)" || status=$?
if [ $status -ne 0 ] || [ -n "$out" ]; then
    echo "systemd-analyze verify failed (exit $status):" >&2
    echo "$out" >&2
    exit 1
fi
echo "ok: ${units[*]}"
