#!/usr/bin/env bash
# Brings up (or down) a local rkube cluster on this machine: etcd, the
# apiserver, the controller manager, the scheduler, two nodes (two rkubelets
# on this host, each with its own pod subnet and Docker network), one
# rkube-proxy for the host, and the cluster DNS add-on (rkube-dns in
# kube-system behind the kube-dns Service at 10.254.0.10).
#
# Pods reach the apiserver through the `kubernetes` Service, whose endpoint
# is $ADVERTISE_ADDRESS (default 10.250.255.1) on the bridge rkube0 that
# this script creates and removes.
#
#   deploy/local-cluster.sh up      install what is missing, build, start
#   deploy/local-cluster.sh down    stop everything it started
#   deploy/local-cluster.sh status  show what runs
#
#   deploy/local-cluster.sh up --hosts 3
#       the same cluster on "hosts" that are network namespaces (a master
#       and two node hosts, each node with its own Docker engine, on an
#       underlay bridge 10.250.0.0/24): see deploy/testbed.sh. It starts
#       secure too (TLS on port 6443, RBAC, its PKI in the test bed's state
#       directory); $RKUBE_HOME/kubeconfig is again the admin's. `down`
#       removes it too. (No DNS add-on there yet.)
#
# HA=1 also starts a standby controller manager and scheduler
# (controller-manager-2, scheduler-2): Lease leader election keeps one of
# each pair active; kill the leader and the other takes over. With
# --hosts, HA=1 makes the whole control plane highly available (testbed.sh
# --ha): two more master hosts, a three-member etcd cluster, two apiservers
# (https://10.250.0.10:6443 and https://10.250.0.20:6443) and the
# controller-manager and scheduler pairs; every daemon is given both
# apiservers and moves to the other when one cannot be reached.
#
# The one-host cluster starts secure: rkube-certs makes a CA and every
# component's certificate and kubeconfig in $RKUBE_HOME/pki (kept across
# `up`s), etcd serves TLS to holders of its own CA's certificates (the
# apiserver's), the apiserver serves TLS on $API_PORT with RBAC, kubelets serve
# their API over TLS to the apiserver only, pods get service account
# tokens, and $RKUBE_HOME/kubeconfig is the admin's (rkubectl and kubectl
# both read it). A plain port for this host's tools stays on
# 127.0.0.1:$INSECURE_PORT (8081; 0 turns it off).
#
# State (etcd data, logs, pid files, certificates, kubeconfig) lives in
# $RKUBE_HOME (default: .rkube/ in the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RKUBE_HOME=${RKUBE_HOME:-$ROOT/.rkube}
ETCD_PORT=${ETCD_PORT:-2379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-2380}
API_PORT=${API_PORT:-8080}
INSECURE_PORT=${INSECURE_PORT:-8081}
SERVICE_RANGE=${SERVICE_RANGE:-10.254.0.0/16}
CLUSTER_CIDR=${CLUSTER_CIDR:-10.1.0.0/16}
NODES=${NODES:-2}
ADVERTISE_ADDRESS=${ADVERTISE_ADDRESS:-10.250.255.1}
CLUSTER_DNS=${CLUSTER_DNS:-10.254.0.10}
HA=${HA:-0}
STANDBYS=""
# `down` and `status` find standbys started earlier by their pid files.
if [ "$HA" = 1 ] || [ -f "$RKUBE_HOME/controller-manager-2.pid" ]; then STANDBYS="controller-manager-2 scheduler-2 "; fi
DAEMONS="etcd apiserver controller-manager scheduler $STANDBYS$(seq -f 'node-%g' 1 "$NODES" | tr '\n' ' ')proxy"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug

start() { # name, command...
    local name=$1; shift
    if [ -f "$RKUBE_HOME/$name.pid" ] && kill -0 "$(cat "$RKUBE_HOME/$name.pid")" 2>/dev/null; then
        echo "$name already running (pid $(cat "$RKUBE_HOME/$name.pid"))"
        return
    fi
    nohup "$@" >"$RKUBE_HOME/logs/$name.log" 2>&1 &
    echo $! >"$RKUBE_HOME/$name.pid"
    echo "started $name (pid $!, log $RKUBE_HOME/logs/$name.log)"
}

wait_http() { # url, name, curl options...
    local url=$1 name=$2; shift 2
    for _ in $(seq 1 100); do
        if curl -fsS "$@" "$url" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$(cat "$RKUBE_HOME/$name.pid")" 2>/dev/null; then
            echo "error: $name exited; the end of its log ($RKUBE_HOME/logs/$name.log):" >&2
            tail -n 20 "$RKUBE_HOME/logs/$name.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "error: $name did not become ready ($url); see $RKUBE_HOME/logs/$name.log" >&2
    exit 1
}

# The bridge (no ports) that holds the apiserver's address for pods.
bridge_up() {
    ip link show rkube0 >/dev/null 2>&1 || ip link add rkube0 type bridge
    ip addr show dev rkube0 | grep -qF " $ADVERTISE_ADDRESS/32 " || ip addr add "$ADVERTISE_ADDRESS/32" dev rkube0
    ip link set rkube0 up
}

up() {
    deploy/install-deps.sh
    cargo build --workspace --bins
    mkdir -p "$RKUBE_HOME/logs" "$RKUBE_HOME/etcd"
    bridge_up
    local pki=$RKUBE_HOME/pki
    local node_args=()
    for i in $(seq 1 "$NODES"); do node_args+=(--node "node-$i=127.0.0.1"); done
    "$BIN/rkube-certs" --dir "$pki" --server "https://127.0.0.1:$API_PORT" --service-cidr "$SERVICE_RANGE" \
        --apiserver-cert-extra-sans "$ADVERTISE_ADDRESS" "${node_args[@]}" >/dev/null
    # etcd serves TLS and lets in only certificates from its own CA (the
    # apiserver's apiserver-etcd-client), as kubeadm sets it up.
    start etcd env ETCD_UNSUPPORTED_ARCH="$(uname -m)" etcd --name rkube --data-dir "$RKUBE_HOME/etcd" \
        --listen-client-urls "https://127.0.0.1:$ETCD_PORT" --advertise-client-urls "https://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "rkube=http://127.0.0.1:$ETCD_PEER_PORT" \
        --cert-file "$pki/etcd/server.crt" --key-file "$pki/etcd/server.key" \
        --trusted-ca-file "$pki/etcd/ca.crt" --client-cert-auth
    wait_http "https://127.0.0.1:$ETCD_PORT/health" etcd --cacert "$pki/etcd/ca.crt" \
        --cert "$pki/apiserver-etcd-client.crt" --key "$pki/apiserver-etcd-client.key"
    start apiserver "$BIN/rkube-apiserver" --etcd-servers "https://127.0.0.1:$ETCD_PORT" \
        --etcd-cafile "$pki/etcd/ca.crt" --etcd-certfile "$pki/apiserver-etcd-client.crt" \
        --etcd-keyfile "$pki/apiserver-etcd-client.key" \
        --port "$API_PORT" --service-cluster-ip-range "$SERVICE_RANGE" --advertise-address "$ADVERTISE_ADDRESS" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" --client-ca-file "$pki/ca.crt" \
        --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority "$pki/ca.crt" \
        --service-account-signing-key-file "$pki/sa.key" --service-account-key-file "$pki/sa.pub" \
        --insecure-port "$INSECURE_PORT"
    wait_http "https://127.0.0.1:$API_PORT/readyz" apiserver --cacert "$pki/ca.crt"
    start controller-manager "$BIN/rkube-controller-manager" --kubeconfig "$pki/controller-manager.kubeconfig" \
        --cluster-cidr "$CLUSTER_CIDR" --root-ca-file "$pki/ca.crt"
    wait_http "http://127.0.0.1:10257/healthz" controller-manager
    start scheduler "$BIN/rkube-scheduler" --kubeconfig "$pki/scheduler.kubeconfig"
    wait_http "http://127.0.0.1:10259/healthz" scheduler
    if [ "$HA" = 1 ]; then
        start controller-manager-2 "$BIN/rkube-controller-manager" --kubeconfig "$pki/controller-manager.kubeconfig" \
            --cluster-cidr "$CLUSTER_CIDR" --root-ca-file "$pki/ca.crt" --healthz-bind-address 127.0.0.1:10267
        wait_http "http://127.0.0.1:10267/healthz" controller-manager-2
        start scheduler-2 "$BIN/rkube-scheduler" --kubeconfig "$pki/scheduler.kubeconfig" \
            --healthz-bind-address 127.0.0.1:10269
        wait_http "http://127.0.0.1:10269/healthz" scheduler-2
    fi
    deploy/start-docker.sh
    for i in $(seq 1 "$NODES"); do
        mkdir -p "$RKUBE_HOME/node-$i" "$RKUBE_HOME/node-$i/manifests"
        start "node-$i" "$BIN/rkubelet" --kubeconfig "$pki/node-node-$i.kubeconfig" \
            --tls-cert-file "$pki/kubelet-node-$i.crt" --tls-private-key-file "$pki/kubelet-node-$i.key" \
            --client-ca-file "$pki/ca.crt" --hostname-override "node-$i" --node-ip 127.0.0.1 \
            --root-dir "$RKUBE_HOME/node-$i" --pod-manifest-path "$RKUBE_HOME/node-$i/manifests" \
            --cluster-cidr "$CLUSTER_CIDR" --port $((10250 + i * 10)) --cluster-dns "$CLUSTER_DNS" \
            --healthz-bind-address "127.0.0.1:$((10248 + i * 10))"
        wait_http "http://127.0.0.1:$((10248 + i * 10))/healthz" "node-$i"
    done
    start proxy "$BIN/rkube-proxy" --kubeconfig "$pki/proxy.kubeconfig" --hostname-override node-1 --cluster-cidr "$CLUSTER_CIDR" \
        --healthz-bind-address 127.0.0.1:10256
    wait_http "http://127.0.0.1:10256/healthz" proxy
    images/build.sh dns
    cp "$pki/admin.kubeconfig" "$RKUBE_HOME/kubeconfig"
    "$BIN/rkubectl" --kubeconfig "$RKUBE_HOME/kubeconfig" apply -f deploy/addons/dns.yaml
    echo
    echo "rkube is up: etcd on 127.0.0.1:$ETCD_PORT (TLS), apiserver on https://127.0.0.1:$API_PORT (TLS, RBAC), $NODES nodes,"
    [ "$HA" = 1 ] && echo "two controller managers and two schedulers (one of each leads: see the Leases in kube-system),"
    echo "rkube-proxy, and the DNS add-on (kube-dns at $CLUSTER_DNS) starting in kube-system."
    echo "Point rkubectl (and kubectl) at it, as the cluster admin:"
    echo "  export PATH=$BIN:\$PATH RKUBECONFIG=$RKUBE_HOME/kubeconfig KUBECONFIG=$RKUBE_HOME/kubeconfig"
    echo "  rkubectl get nodes    # or: kubectl get nodes"
    echo "  rkubectl create -f examples/two-container-pod.yaml && rkubectl get pods -o wide"
    echo "Stop it with: deploy/local-cluster.sh down"
}

down() {
    local reversed=""
    for name in $DAEMONS; do reversed="$name $reversed"; done
    for name in $reversed; do
        local pidfile=$RKUBE_HOME/$name.pid
        if [ -f "$pidfile" ]; then
            local pid; pid=$(cat "$pidfile")
            if kill "$pid" 2>/dev/null; then
                for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -9 "$pid" 2>/dev/null || true
                echo "stopped $name"
            fi
            rm -f "$pidfile"
        fi
    done
    for i in $(seq 1 "$NODES"); do cleanup_node "node-$i"; done
    [ -x "$BIN/rkube-proxy" ] && "$BIN/rkube-proxy" --cleanup || true
    ip link del rkube0 2>/dev/null || true
}

# Removes what a stopped node leaves by design (a kubelet that stops does not
# stop its pods): its containers, its Docker network and its firewall rules.
cleanup_node() { # node name
    local node=$1 ids
    command -v docker >/dev/null 2>&1 || return 0
    ids=$(docker ps -aq --filter "label=io.rkube.node=$node" 2>/dev/null || true)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
    docker network rm "rkube-$node" >/dev/null 2>&1 || true
    for table in filter nat; do
        iptables-save -t "$table" 2>/dev/null | grep -F -- "rkube pod network of node $node\"" | sed 's/^-A /-D /' |
            while read -r rule; do eval "iptables -w -t $table $rule" || true; done || true
    done
}

status() {
    for name in $DAEMONS; do
        local pidfile=$RKUBE_HOME/$name.pid
        if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            echo "$name: running (pid $(cat "$pidfile"))"
        else
            echo "$name: stopped"
        fi
    done
}

# The multi-host form: the test bed named "local".
hosts_up() { # hosts
    local hosts=$1
    [[ "$hosts" =~ ^[2-9]$ ]] || { echo "error: --hosts must be 2 to 9 (a master and nodes), not \"$hosts\"" >&2; exit 2; }
    deploy/install-deps.sh
    cargo build --workspace --bins
    deploy/start-docker.sh
    local ha=()
    if [ "$HA" = 1 ]; then ha=(--ha); fi
    deploy/testbed.sh up --name local --nodes $((hosts - 1)) "${ha[@]}"
    mkdir -p "$RKUBE_HOME"
    # The admin's kubeconfig, copied as the one-host form does: it names one
    # server (kubectl reads it too); $RKUBE_SERVER may name both, and wins.
    cp "${RKUBE_TESTBED_DIR:-/var/lib/rkube-testbed}/local/pki/admin.kubeconfig" "$RKUBE_HOME/kubeconfig"
    echo "Point rkubectl (and kubectl) at it, as the cluster admin:"
    echo "  export PATH=$BIN:\$PATH RKUBECONFIG=$RKUBE_HOME/kubeconfig KUBECONFIG=$RKUBE_HOME/kubeconfig"
    if [ "$HA" = 1 ]; then
        echo "  export RKUBE_SERVER=https://10.250.0.10:6443,https://10.250.0.20:6443   # fail over between the apiservers"
    fi
    echo "Stop it with: deploy/local-cluster.sh down"
}

cmd=${1:-up}
HOSTS=1
if [ "${2:-}" = --hosts ]; then HOSTS=${3:?--hosts needs a number}; fi
case "$cmd" in
    up) if [ "$HOSTS" = 1 ]; then up; else hosts_up "$HOSTS"; fi ;;
    down)
        down
        if [ -d /var/lib/rkube-testbed/local ]; then deploy/testbed.sh down --name local; fi
        ;;
    status)
        status
        if [ -d /var/lib/rkube-testbed/local ]; then deploy/testbed.sh status --name local; fi
        ;;
    *) echo "usage: $0 up [--hosts N]|down|status" >&2; exit 2 ;;
esac
