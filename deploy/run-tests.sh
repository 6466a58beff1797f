#!/usr/bin/env bash
# Installs what is missing, starts Docker and builds the local images if
# needed, then runs every test of the workspace: unit tests, integration tests
# that start their own etcd on free loopback ports, and tests on real Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/start-docker.sh
# The DNS add-on's image (a static build): once, before the e2e tests use it.
images/build.sh dns
cargo nextest run --workspace --no-fail-fast "$@"
