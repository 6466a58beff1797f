#!/usr/bin/env bash
# The host's side of docker-compose.yml: what compose cannot do itself.
#
#   images/compose-host.sh prepare   before `docker-compose up`
#     Makes the cluster's PKI in /var/lib/rkube-compose/pki (mode 0700; keys
#     and kubeconfigs 0600) with rkube-certs from the rkube/certs image
#     (`docker run --rm`, no network): the CA, the apiserver's serving
#     certificate (127.0.0.1), each daemon's kubeconfig, the nodes'
#     (compose-1, compose-2) client and serving certificates, the service
#     account key pair, and admin.kubeconfig (system:masters) for the users.
#     Files that exist are kept. Creates the kubelets' root dirs (/var/lib/rkube-compose/compose-N, bound
#     into the kubelet containers at the same path, rshared). Docker accepts an
#     rshared bind only from a shared mount: where the filesystem holding them
#     is not shared (systemd makes / shared; a plain container or chroot may
#     not), /var/lib/rkube-compose is bound onto itself and made shared. Sets
#     net.ipv4.conf.all.route_localnet=1, which rkube-proxy sets on a host but
#     cannot from a container (Docker mounts /proc/sys read-only), so that
#     NodePorts answer on 127.0.0.1.
#
#   images/compose-host.sh cleanup   after `docker-compose down`
#     Removes what the nodes leave by design (a kubelet that stops leaves its
#     pods running, a proxy leaves its rules): the pods' containers, tmpfs
#     mounts and directories, the nodes' Docker networks, their iptables
#     rules (and rkube's chains when no other node uses them), their routes,
#     and the proxies' nftables tables; then the dirs that `prepare` made,
#     the PKI included (the cluster it served is gone: etcd kept its data in
#     its container, which `down` removed).
#
# Both are idempotent. Run as root (iptables, mount).
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT_DIR=/var/lib/rkube-compose
PKI_DIR=$ROOT_DIR/pki
# As in docker-compose.yml.
NODES="compose-1 compose-2"
CLUSTER_PREFIX=10.247.
SERVER=https://127.0.0.1:18080
SERVICE_CIDR=10.246.0.0/16
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[ "$(id -u)" -eq 0 ] || { echo "error: run as root (it mounts and changes iptables rules)" >&2; exit 1; }

# The line of /proc/self/mountinfo of the mount that holds path $1.
mount_of() {
    awk -v p="$1" '{
        mp = $5; prefix = (mp == "/") ? "/" : mp "/"
        if ((p == mp || index(p, prefix) == 1) && length(mp) > best) { best = length(mp); line = $0 }
    } END { print line }' /proc/self/mountinfo
}

is_mount_point() { awk -v p="$1" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; }

# The PKI, with rkube-certs from its image: nothing else on the host is
# needed (no openssl, no cargo). The directory is made here first, so that
# it is 0700 rather than the 0755 Docker gives a missing bind source.
make_pki() {
    local image=rkube/certs:$version out node_args=()
    docker image inspect "$image" >/dev/null 2>&1 ||
        { echo "error: image $image missing: run images/build.sh compose" >&2; exit 1; }
    for node in $NODES; do node_args+=(--node "$node=127.0.0.1"); done
    install -d -m 0700 "$PKI_DIR"
    out=$(docker run --rm --network none -v "$PKI_DIR:/pki" "$image" --dir /pki --server "$SERVER" \
        --service-cidr "$SERVICE_CIDR" "${node_args[@]}" 2>&1) || { echo "$out" >&2; exit 1; }
    # rkube-certs says "created" or "kept" for each file (in the container's /pki).
    local created
    created=$(grep -c '^created ' <<<"$out" || true)
    [ "$created" = 0 ] || echo "made $created files of the cluster's PKI in $PKI_DIR (admin: $PKI_DIR/admin.kubeconfig)"
}

prepare() {
    make_pki
    for node in $NODES; do mkdir -p "$ROOT_DIR/$node/manifests"; done
    if ! mount_of "$ROOT_DIR" | grep -q " shared:"; then
        is_mount_point "$ROOT_DIR" || mount --bind "$ROOT_DIR" "$ROOT_DIR"
        mount --make-shared "$ROOT_DIR"
        echo "made $ROOT_DIR a shared mount (the kubelets bind their root dirs rshared)"
    fi
    local localnet=/proc/sys/net/ipv4/conf/all/route_localnet
    [ "$(cat "$localnet")" = 1 ] || { echo 1 >"$localnet"; echo "set net.ipv4.conf.all.route_localnet=1"; }
}

# Deletes the iptables rules whose comment names node $1.
delete_rules() {
    local table rule
    for table in filter nat; do
        iptables-save -t "$table" | { grep -F -- "rkube pod network of node $1\"" || true; } | sed 's/^-A /-D /' |
            while read -r rule; do eval "iptables -w -t $table $rule"; done
    done
}

# Removes rkube's chain $2 (table $1, jumped to from $3 by rule $4) when no
# node's rules are left in it, as rkubelet's teardown does; if a kubelet
# added a rule meanwhile, the jump goes back.
remove_chain_if_empty() { # table, chain, from chain, jump position (-I or -A)
    local table=$1 chain=$2 from=$3 position=$4
    local jump=(-m comment --comment "rkube pod network (docs/pod-network.md)" -j "$chain")
    iptables -w -t "$table" -S "$chain" >/dev/null 2>&1 || return 0
    iptables -w -t "$table" -S "$chain" | grep -q '^-A ' && return 0
    while iptables -w -t "$table" -C "$from" "${jump[@]}" 2>/dev/null; do iptables -w -t "$table" -D "$from" "${jump[@]}"; done
    if ! iptables -w -t "$table" -X "$chain" 2>/dev/null; then
        if [ "$position" = -I ]; then iptables -w -t "$table" -I "$from" 1 "${jump[@]}"; else iptables -w -t "$table" -A "$from" "${jump[@]}"; fi
    fi
}

cleanup() {
    local running
    running=$(docker ps -q --filter label=com.docker.compose.service=node-1-kubelet \
        --filter label=com.docker.compose.service=node-2-kubelet)
    if [ -n "$running" ]; then
        echo "error: the compose cluster's kubelets still run (they would start the pods again): docker-compose down first" >&2
        exit 1
    fi
    for node in $NODES; do
        local ids
        ids=$(docker ps -aq --filter "label=io.rkube.node=$node")
        [ -z "$ids" ] || docker rm -f $ids >/dev/null
        # The tmpfs of secret and memory-backed volumes, deepest first.
        awk -v p="$ROOT_DIR/$node/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
            while read -r m; do umount "$m"; done
        rm -rf "${ROOT_DIR:?}/$node"
        delete_rules "$node"
        ! docker network inspect "rkube-$node" >/dev/null 2>&1 || docker network rm "rkube-$node" >/dev/null
        # The proxy's own --cleanup, from its image (the host may have no nft).
        if docker image inspect "rkube/proxy:$version" >/dev/null 2>&1; then
            local out
            out=$(docker run --rm --network host --cap-add NET_ADMIN "rkube/proxy:$version" \
                --cleanup --table "rkube-$node" --healthz-bind-address 127.0.0.1:0 2>&1) || { echo "$out" >&2; exit 1; }
        elif command -v nft >/dev/null; then
            nft delete table ip "rkube-$node" 2>/dev/null || true
        fi
    done
    remove_chain_if_empty filter RKUBE-FORWARD DOCKER-USER -I
    remove_chain_if_empty nat RKUBE-POSTROUTING POSTROUTING -A
    # rkubelet's routes (protocol 157) to other nodes' pod subnets.
    ip -4 route show proto 157 | awk -v p="$CLUSTER_PREFIX" 'index($1, p) == 1 { print $1 }' |
        while read -r dst; do ip -4 route del "$dst" proto 157; done
    rm -rf "${PKI_DIR:?}"
    if [ -d "$ROOT_DIR" ]; then
        ! is_mount_point "$ROOT_DIR" || umount "$ROOT_DIR"
        rmdir "$ROOT_DIR" 2>/dev/null || true
    fi
    echo "removed the compose nodes' pods, networks, rules and tables ($NODES) and the PKI"
}

case "${1:-}" in
    prepare) prepare ;;
    cleanup) cleanup ;;
    *) echo "usage: $0 prepare|cleanup" >&2; exit 2 ;;
esac
