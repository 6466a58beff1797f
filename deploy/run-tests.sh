#!/usr/bin/env bash
# Installs what is missing, starts Docker and builds the local images if
# needed, then runs every test of the workspace: unit tests, integration tests
# that start their own etcd on free loopback ports, and tests on real Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
deploy/start-docker.sh
# The DNS add-on's image and docker-compose.yml's images (static builds of
# the daemons, debug profile, one cargo run sharing its dependencies): once,
# before the e2e tests use them.
images/build.sh dns compose
# On a small disk (CI): the images hold the static binaries; their build
# directory is not needed while the tests run.
if [ "${RKUBE_DROP_STATIC_BUILD:-0}" = 1 ]; then
    rm -rf "${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu"
fi
cargo nextest run --workspace --no-fail-fast "$@"
