#!/usr/bin/env bash
# Installs what is missing, then runs every test of the workspace: unit tests,
# and integration tests that start their own etcd on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cargo nextest run --workspace --no-fail-fast "$@"
