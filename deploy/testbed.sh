#!/usr/bin/env bash
# The multi-host test bed: "hosts" that are network namespaces on this
# machine, joined by an underlay bridge this script creates, running a real
# rkube cluster as on separate machines.
#
#   master   etcd, rkube-apiserver, rkube-controller-manager, rkube-scheduler
#   node-i   its own Docker engine (a dockerd entered into the namespace with
#            `nsenter --net`, with its own data root, exec root, socket and
#            pidfile), an rkubelet driving that engine and an rkube-proxy
#
# Each host has its own address on the underlay (<underlay>.10 the master,
# <underlay>.1i node i), its own routes, iptables and nftables; node
# InternalIPs are the underlay addresses, so the rkubelets' host-gw routes
# carry pod traffic between hosts with no NAT. This machine (the root
# namespace) holds <underlay>.1 on the bridge: it reaches the apiserver at
# https://<underlay>.10:6443 and NodePorts on the nodes' addresses as any
# outside client would.
#
# The test bed is secure as the one-host local cluster is: `up` makes the
# cluster's PKI with rkube-certs in <state>/pki (the apiserver's certificate
# names every apiserver host's underlay address and the kubernetes Service
# IP; each kubelet's serving certificate its node's underlay address), the
# apiservers serve TLS on port 6443 (kubeadm's) with RBAC and the Node
# authorizer and no plain port, every daemon uses its own kubeconfig, the
# kubelets serve their API over TLS to the apiserver only, and pods get
# service account tokens. Users and tests are the cluster admin:
# <state>/pki/admin.kubeconfig. etcd is still plain HTTP on the underlay.
#
# With --ha the control plane is highly available: three master hosts
# (master, master-2, master-3 at <underlay>.10, .20, .30) each run an etcd
# member of one cluster; master and master-2 each run an apiserver (on every
# etcd member), a controller manager and a scheduler (Lease leader election
# keeps one of each pair active). Every client is given both apiservers
# (`--server https://<underlay>.10:6443,https://<underlay>.20:6443` beside
# its kubeconfig, which names one) and moves to the other when one cannot be
# reached.
#
#   deploy/testbed.sh up   [--name N] [--nodes K] [--underlay A.B.C] [--cluster-cidr CIDR]
#                          [--service-range CIDR] [--ha]
#   deploy/testbed.sh down [--name N]
#   deploy/testbed.sh exec [--name N] HOST COMMAND...   run COMMAND in HOST's namespace
#                          (HOST: master, master-2, node-1, ...); for docker, DOCKER_HOST is set
#   deploy/testbed.sh status [--name N]
#
# Defaults: name tb, 2 nodes, underlay 10.250.0, cluster CIDR 10.2.0.0/16,
# Services 10.253.0.0/16; $TESTBED_CONTROLLER_MANAGER_FLAGS adds flags to the
# controller manager (e.g. a short --node-monitor-grace-period). `up` and
# `down` are idempotent (a second `up` keeps the PKI); `down` removes the
# namespaces, bridge, veths, iptables rule, Docker data roots and state, the
# PKI included.
# Binaries come from target/debug (cargo build --workspace --bins; $RKUBE_BIN
# names another directory, e.g. target/release); the pause
# and toolbox images are copied from this machine's Docker into each node's
# (their :latest tag too, which the examples use).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${RKUBE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}

NAME=tb NODES=2 UNDERLAY=10.250.0 CLUSTER_CIDR=10.2.0.0/16 SERVICE_RANGE=10.253.0.0/16 HA=0
cmd=${1:-}
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
    case "$1" in
        --name) NAME=$2; shift 2 ;;
        --nodes) NODES=$2; shift 2 ;;
        --underlay) UNDERLAY=$2; shift 2 ;;
        --cluster-cidr) CLUSTER_CIDR=$2; shift 2 ;;
        --service-range) SERVICE_RANGE=$2; shift 2 ;;
        --ha) HA=1; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[[ "$NAME" =~ ^[a-z0-9]{1,8}$ ]] || { echo "error: --name must be 1-8 lowercase letters or digits, not \"$NAME\"" >&2; exit 2; }
[[ "$NODES" =~ ^[1-9]$ ]] || { echo "error: --nodes must be 1 to 9, not \"$NODES\"" >&2; exit 2; }
[[ "$UNDERLAY" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "error: --underlay must be the first three octets (e.g. 10.250.0), not \"$UNDERLAY\"" >&2; exit 2; }

STATE=${RKUBE_TESTBED_DIR:-/var/lib/rkube-testbed}/$NAME
# down, status and a second up find the topology that up chose.
[ -f "$STATE/ha" ] && HA=1
RUN=/run/rkube-tb/$NAME
BRIDGE=rktb$NAME
COMMENT="rkube test bed $NAME"
MASTER_IP=$UNDERLAY.10
API_PORT=6443
PKI=$STATE/pki
# Copied from this machine's engine into each node's (there is no registry).
IMAGES="rkube/pause:3.9 rkube/toolbox:1.0 rkube/toolbox:latest"
if [ "$HA" = 1 ]; then
    MASTERS="master master-2 master-3" API_HOSTS="master master-2"
else
    MASTERS=master API_HOSTS=master
fi

ns() { echo "rktb-$NAME-$1"; }          # host -> its network namespace
ip_of() { # host -> its underlay address: master .10, master-k .k0, node-i .1i
    case "$1" in
        master) echo "$MASTER_IP" ;;
        master-*) echo "$UNDERLAY.${1#master-}0" ;;
        *) echo "$UNDERLAY.1${1#node-}" ;;
    esac
}
SERVER=$(for h in $API_HOSTS; do printf 'https://%s:%s,' "$(ip_of "$h")" "$API_PORT"; done)
SERVER=${SERVER%,}
ETCD_SERVERS=$(for h in $MASTERS; do printf 'http://%s:2379,' "$(ip_of "$h")"; done)
ETCD_SERVERS=${ETCD_SERVERS%,}
ETCD_CLUSTER=$(for h in $MASTERS; do printf '%s=http://%s:2380,' "$h" "$(ip_of "$h")"; done)
ETCD_CLUSTER=${ETCD_CLUSTER%,}
sock() { echo "$RUN/$1.sock"; }          # node -> its Docker socket
in_ns() { local host=$1; shift; nsenter --net="/run/netns/$(ns "$host")" -- "$@"; }
hosts() { echo $MASTERS; for i in $(seq 1 "$NODES"); do echo "node-$i"; done; }

start() { # host, name, command...: a daemon in a host's namespace, logged, pid kept
    local host=$1 name=$2; shift 2
    local pidfile=$STATE/$host/$name.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return; fi
    nohup nsenter --net="/run/netns/$(ns "$host")" -- "$@" >"$STATE/$host/$name.log" 2>&1 &
    echo $! >"$pidfile"
}

stop() { # host, name: TERM, then KILL after 5 s
    local pidfile=$STATE/$1/$2.pid
    [ -f "$pidfile" ] || return 0
    local pid; pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

wait_for() { # what, host, name, command...: until the command succeeds (30 s)
    local what=$1 host=$2 name=$3; shift 3
    for _ in $(seq 1 150); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "error: $what did not come up; the end of $STATE/$host/$name.log:" >&2
    tail -n 20 "$STATE/$host/$name.log" >&2 || true
    exit 1
}

veth_of() { # host -> the host side of its veth on the bridge
    case "$1" in
        master) echo "v${NAME}m" ;;
        master-*) echo "v${NAME}m${1#master-}" ;;
        *) echo "v$NAME${1#node-}" ;;
    esac
}

host_up() { # host: namespace, veth on the bridge, address, forwarding
    local host=$1 n; n=$(ns "$host")
    local veth; veth=$(veth_of "$host")
    mkdir -p "$STATE/$host"
    ip netns list | grep -qw "^$n" || ip netns add "$n"
    if ! ip link show "$veth" >/dev/null 2>&1; then
        ip link add "$veth" type veth peer name eth0 netns "$n"
    fi
    ip link set "$veth" master "$BRIDGE" up
    in_ns "$host" ip link set lo up
    in_ns "$host" ip link set eth0 up
    in_ns "$host" ip addr replace "$(ip_of "$host")/24" dev eth0
    in_ns "$host" sysctl -qw net.ipv4.ip_forward=1
}

up() {
    [ "$(id -u)" = 0 ] || { echo "error: the test bed needs root (namespaces, bridges, dockerd)" >&2; exit 1; }
    for b in rkube-certs rkube-apiserver rkube-controller-manager rkube-scheduler rkubelet rkube-proxy rkubectl; do
        [ -x "$BIN/$b" ] || { echo "error: $BIN/$b is missing: cargo build --workspace --bins" >&2; exit 1; }
    done
    docker image inspect $IMAGES >/dev/null 2>&1 ||
        { echo "error: $IMAGES are missing here: deploy/start-docker.sh" >&2; exit 1; }
    mkdir -p "$STATE" "$RUN"
    echo "$NODES" >"$STATE/nodes"
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    ip addr replace "$UNDERLAY.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Docker's FORWARD policy drops what crosses a bridge when br_netfilter
    # is loaded: let the underlay carry host-to-host traffic.
    iptables -w -C FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$COMMENT" -j ACCEPT 2>/dev/null ||
        iptables -w -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$COMMENT" -j ACCEPT
    for host in $(hosts); do host_up "$host"; done
    pki_up

    # The masters: the control plane.
    [ "$HA" = 1 ] && touch "$STATE/ha"
    for m in $MASTERS; do
        local ip; ip=$(ip_of "$m")
        start "$m" etcd env ETCD_UNSUPPORTED_ARCH="$(uname -m)" etcd --name "$m" --data-dir "$STATE/$m/etcd" \
            --listen-client-urls "http://$ip:2379,http://127.0.0.1:2379" --advertise-client-urls "http://$ip:2379" \
            --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
            --initial-cluster "$ETCD_CLUSTER"
    done
    # A member answers /health once the cluster has a leader: all started first.
    for m in $MASTERS; do wait_for "etcd on $m" "$m" etcd in_ns "$m" curl -fsS http://127.0.0.1:2379/health; done
    for m in $API_HOSTS; do
        start "$m" apiserver "$BIN/rkube-apiserver" --etcd-servers "$ETCD_SERVERS" --bind-address 0.0.0.0 \
            --port "$API_PORT" --advertise-address "$(ip_of "$m")" --service-cluster-ip-range "$SERVICE_RANGE" \
            --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
            --client-ca-file "$PKI/ca.crt" \
            --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
            --kubelet-client-key "$PKI/apiserver-kubelet-client.key" --kubelet-certificate-authority "$PKI/ca.crt" \
            --service-account-signing-key-file "$PKI/sa.key" --service-account-key-file "$PKI/sa.pub"
    done
    for m in $API_HOSTS; do
        wait_for "apiserver on $m" "$m" apiserver \
            curl -fsS --cacert "$PKI/ca.crt" "https://$(ip_of "$m"):$API_PORT/readyz"
    done
    for m in $API_HOSTS; do
        # shellcheck disable=SC2086 # extra flags, split on spaces
        start "$m" controller-manager "$BIN/rkube-controller-manager" --server "$SERVER" \
            --kubeconfig "$PKI/controller-manager.kubeconfig" --root-ca-file "$PKI/ca.crt" \
            --cluster-cidr "$CLUSTER_CIDR" ${TESTBED_CONTROLLER_MANAGER_FLAGS:-}
        start "$m" scheduler "$BIN/rkube-scheduler" --server "$SERVER" --kubeconfig "$PKI/scheduler.kubeconfig"
    done

    # The nodes: a Docker engine each, the rkubelet and rkube-proxy.
    for i in $(seq 1 "$NODES"); do
        local host=node-$i s; s=$(sock "$host")
        mkdir -p "$RUN/$host" "$STATE/$host/kubelet"
        start "$host" dockerd dockerd --data-root "$STATE/$host/docker" --exec-root "$RUN/$host" \
            --pidfile "$RUN/$host/dockerd.pid" -H "unix://$s" --bridge none
        wait_for "dockerd of $host" "$host" dockerd docker -H "unix://$s" info
        if ! docker -H "unix://$s" image inspect $IMAGES >/dev/null 2>&1; then
            docker save $IMAGES | docker -H "unix://$s" load -q >/dev/null
        fi
        start "$host" kubelet "$BIN/rkubelet" --server "$SERVER" --kubeconfig "$PKI/node-$host.kubeconfig" \
            --tls-cert-file "$PKI/kubelet-$host.crt" --tls-private-key-file "$PKI/kubelet-$host.key" \
            --client-ca-file "$PKI/ca.crt" --hostname-override "$host" \
            --node-ip "$(ip_of "$host")" --container-runtime-endpoint "unix://$s" \
            --root-dir "$STATE/$host/kubelet" --cluster-cidr "$CLUSTER_CIDR"
        start "$host" proxy "$BIN/rkube-proxy" --server "$SERVER" --kubeconfig "$PKI/proxy.kubeconfig" \
            --hostname-override "$host" --cluster-cidr "$CLUSTER_CIDR"
    done
    for i in $(seq 1 "$NODES"); do
        wait_for "node-$i Ready" "node-$i" kubelet sh -c \
            "'$BIN/rkubectl' --server '$SERVER' --kubeconfig '$PKI/admin.kubeconfig' get node node-$i --no-headers | grep -qw Ready"
    done
    echo "test bed $NAME is up: apiserver $SERVER (TLS, RBAC), nodes $(for i in $(seq 1 "$NODES"); do printf 'node-%s=%s ' "$i" "$(ip_of "node-$i")"; done)"
    echo "the cluster admin's kubeconfig: $PKI/admin.kubeconfig"
    echo "  $BIN/rkubectl --kubeconfig $PKI/admin.kubeconfig --server $SERVER get nodes -o wide"
}

# The cluster's CA, certificates and kubeconfigs (rkube-certs keeps what
# exists, so a second `up` reuses them and may add nodes). Every daemon's
# kubeconfig names the master's apiserver; daemons are also given $SERVER,
# which wins, so with --ha they fail over to master-2's.
pki_up() {
    local sans="" nodes=()
    for m in $API_HOSTS; do sans="$sans${sans:+,}$(ip_of "$m")"; done
    for i in $(seq 1 "$NODES"); do nodes+=(--node "node-$i=$(ip_of "node-$i")"); done
    "$BIN/rkube-certs" --dir "$PKI" --server "https://$MASTER_IP:$API_PORT" --service-cidr "$SERVICE_RANGE" \
        --apiserver-cert-extra-sans "$sans" "${nodes[@]}" >/dev/null
}

down() {
    [ -f "$STATE/nodes" ] && NODES=$(cat "$STATE/nodes")
    for i in $(seq 1 "$NODES"); do
        local host=node-$i s; s=$(sock "$host")
        stop "$host" proxy
        stop "$host" kubelet
        # The kubelet leaves its pods by design; the engine goes with them.
        if [ -S "$s" ]; then
            local ids; ids=$(docker -H "unix://$s" ps -aq 2>/dev/null || true)
            [ -z "$ids" ] || docker -H "unix://$s" rm -f $ids >/dev/null 2>&1 || true
        fi
        stop "$host" dockerd
    done
    for m in $MASTERS; do
        for name in scheduler controller-manager apiserver etcd; do stop "$m" "$name"; done
    done
    for host in $(hosts); do
        # The veth pair goes with the namespace, but only once the kernel
        # has cleaned the namespace up, in the background: deleted here, it
        # is gone when `down` returns.
        ip link del "$(veth_of "$host")" 2>/dev/null || true
        ip netns del "$(ns "$host")" 2>/dev/null || true
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    while iptables -w -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -m comment --comment "$COMMENT" -j ACCEPT 2>/dev/null; do :; done
    # Mounts the engines may have left under their data and exec roots.
    grep -F -e " $STATE/" -e " $RUN/" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$STATE" "$RUN"
}

status() {
    for host in $(hosts); do
        for f in "$STATE/$host"/*.pid; do
            [ -f "$f" ] || continue
            local name; name=$(basename "$f" .pid)
            if kill -0 "$(cat "$f")" 2>/dev/null; then echo "$host $name: running"; else echo "$host $name: stopped"; fi
        done
    done
}

case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    exec)
        host=${1:?usage: $0 exec [--name N] HOST COMMAND...}; shift
        [[ "$host" == node-* ]] && export DOCKER_HOST="unix://$(sock "$host")"
        in_ns "$host" "$@"
        ;;
    *) echo "usage: $0 up|down|status|exec [--name N] ..." >&2; exit 2 ;;
esac
