#!/usr/bin/env bash
# Installs rkube as systemd services on this host.
#
#   deploy/install.sh [--dry-run] [--bin-dir DIR] master [--master-address IP]
#                     [--apiserver-cert-extra-sans A,B] [--node NAME=IP]...
#   deploy/install.sh [--dry-run] [--bin-dir DIR] node [--pki DIR] [--node-name NAME]
#
# master: rkube-apiserver, rkube-controller-manager, rkube-scheduler (and etcd
#         from Debian's etcd-server package), and rkube-certs, which it runs:
#         the cluster's CA, certificates and kubeconfigs in /etc/rkube/pki
#         (kept if there; run again with more --node to add nodes). The
#         kubeconfigs name https://<master address>:6443; the address
#         (default: $RKUBE_MASTER_ADDRESS, else this host's first IPv4
#         address) goes into the apiserver's certificate, and each
#         `--node NAME=IP` gets a kubelet certificate for that IP.
# node:   rkubelet, rkube-proxy (and Docker from Debian's docker.io package).
#         Its credentials come from the master: --pki DIR holds the master's
#         ca.crt, proxy.kubeconfig, node-NAME.kubeconfig and
#         kubelet-NAME.crt/.key (NAME: --node-name, default the hostname),
#         installed into /etc/rkube/pki as ca.crt, proxy.kubeconfig,
#         kubelet.kubeconfig and kubelet.crt/.key. Without them, it says
#         which are missing and starts nothing.
#
# Binaries come from --bin-dir, else target/deploy (cargo build --profile
# deploy --bins: smallest, least resident), else target/release, else
# target/debug (build them first: cargo build --release --bins). They go to /usr/local/bin, the
# units (deploy/systemd/*.service) to /etc/systemd/system, the environment
# files (deploy/systemd/env/*) to /etc/rkube/ unless one is already there.
# Then, if systemd runs this host, the units are enabled and started.
#
# DESTDIR=/some/root installs under that root instead (no apt-get, no
# systemctl): tests and packaging use it. --dry-run prints what it would do.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dry_run=0
bin_dir=""
role=""
master_address="${RKUBE_MASTER_ADDRESS:-}"
extra_sans=""
cert_nodes=()
pki_from=""
node_name=""
master_only=0 node_only=0
usage() {
    echo "usage: $0 [--dry-run] [--bin-dir DIR] master [--master-address IP] [--apiserver-cert-extra-sans A,B] [--node NAME=IP]..." >&2
    echo "       $0 [--dry-run] [--bin-dir DIR] node [--pki DIR] [--node-name NAME]" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --bin-dir) [ $# -ge 2 ] || usage; bin_dir="$2"; shift ;;
        --bin-dir=*) bin_dir="${1#--bin-dir=}" ;;
        --master-address) [ $# -ge 2 ] || usage; master_address="$2" master_only=1; shift ;;
        --apiserver-cert-extra-sans) [ $# -ge 2 ] || usage; extra_sans="$2" master_only=1; shift ;;
        --node) [ $# -ge 2 ] || usage; cert_nodes+=(--node "$2"); master_only=1; shift ;;
        --pki) [ $# -ge 2 ] || usage; pki_from="$2" node_only=1; shift ;;
        --node-name) [ $# -ge 2 ] || usage; node_name="$2" node_only=1; shift ;;
        master|node) [ -z "$role" ] || usage; role="$1" ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
    shift
done
[ -n "$role" ] || usage
if [ "$role" = master ] && [ $node_only -eq 1 ]; then echo "error: --pki and --node-name are for node" >&2; usage; fi
if [ "$role" = node ] && [ $master_only -eq 1 ]; then
    echo "error: --master-address, --apiserver-cert-extra-sans and --node are for master" >&2; usage
fi

case "$role" in
    master)
        units=(rkube-apiserver rkube-controller-manager rkube-scheduler)
        envs=(config apiserver controller-manager scheduler)
        apt_pkg=etcd-server apt_cmd=etcd
        # The controller manager may delete hostPath volumes only there (ReadWritePaths=).
        dirs=(/var/lib/rkube/hostpath-pv)
        ;;
    node)
        units=(rkubelet rkube-proxy)
        envs=(config kubelet proxy)
        apt_pkg=docker.io apt_cmd=dockerd
        dirs=(/var/lib/rkubelet)
        ;;
esac

# A binary's unit is named after it; the master also gets rkube-certs.
binaries=("${units[@]}")
[ "$role" = master ] && binaries+=(rkube-certs)
if [ -z "$bin_dir" ]; then
    for dir in "$repo/target/deploy" "$repo/target/release" "$repo/target/debug"; do
        missing=0
        for b in "${binaries[@]}"; do [ -x "$dir/$b" ] || missing=1; done
        if [ $missing -eq 0 ]; then bin_dir="$dir"; break; fi
    done
    if [ -z "$bin_dir" ]; then
        echo "error: ${binaries[*]} are not built in target/deploy, target/release or target/debug;" \
            "run cargo build --release --bins, or pass --bin-dir" >&2
        exit 1
    fi
fi
for b in "${binaries[@]}"; do
    [ -x "$bin_dir/$b" ] || { echo "error: $bin_dir/$b is missing or not executable" >&2; exit 1; }
done

destdir="${DESTDIR:-}"
run() {
    if [ $dry_run -eq 1 ]; then echo "would run: $*"; else "$@"; fi
}

if [ -z "$destdir" ] && ! command -v "$apt_cmd" >/dev/null 2>&1; then
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y "$apt_pkg"
fi

for b in "${binaries[@]}"; do
    run install -D -m 0755 "$bin_dir/$b" "$destdir/usr/local/bin/$b"
done
for u in "${units[@]}"; do
    run install -D -m 0644 "$repo/deploy/systemd/$u.service" "$destdir/etc/systemd/system/$u.service"
done
for e in "${envs[@]}"; do
    if [ -e "$destdir/etc/rkube/$e" ]; then
        echo "keeping $destdir/etc/rkube/$e (already there; the sample is deploy/systemd/env/$e)"
    else
        run install -D -m 0644 "$repo/deploy/systemd/env/$e" "$destdir/etc/rkube/$e"
    fi
done
run install -D -m 0644 "$repo/docs/operations.md" "$destdir/usr/local/share/doc/rkube/operations.md"
for d in "${dirs[@]}"; do
    run install -d -m 0755 "$destdir$d"
done

# The PKI: /etc/rkube/pki, root's, mode 0700 (keys and kubeconfigs 0600).
pki="$destdir/etc/rkube/pki"
missing_files=()
case "$role" in
    master)
        if [ -z "$master_address" ]; then
            master_address="$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9]+(\.[0-9]+){3}$' || true)"
            [ -n "$master_address" ] || master_address=127.0.0.1
        fi
        # The Service CIDR the apiserver is configured with: the kubernetes
        # Service's ClusterIP must be in its certificate.
        service_cidr="$(sed -n 's/^RKUBE_SERVICE_CLUSTER_IP_RANGE=//p' "$destdir/etc/rkube/apiserver" 2>/dev/null || true)"
        certs_args=(--dir "$pki" --server "https://$master_address:6443" --service-cidr "${service_cidr:-10.254.0.0/16}")
        [ -z "$extra_sans" ] || certs_args+=(--apiserver-cert-extra-sans "$extra_sans")
        if [ $dry_run -eq 1 ]; then
            echo "would run: $bin_dir/rkube-certs ${certs_args[*]} ${cert_nodes[*]}"
        else
            created="$("$bin_dir/rkube-certs" "${certs_args[@]}" "${cert_nodes[@]}")"
            grep '^created ' <<<"$created" || echo "kept every file of $pki"
            echo "the cluster admin's kubeconfig: $pki/admin.kubeconfig (apiserver https://$master_address:6443)"
        fi
        ;;
    node)
        node_name="${node_name:-$(hostname)}"
        # source name in the master's directory -> name on the node
        node_files=("ca.crt:ca.crt" "proxy.kubeconfig:proxy.kubeconfig" "node-$node_name.kubeconfig:kubelet.kubeconfig"
            "kubelet-$node_name.crt:kubelet.crt" "kubelet-$node_name.key:kubelet.key")
        run install -d -m 0700 "$pki"
        for f in "${node_files[@]}"; do
            src="${f%%:*}" dst="${f#*:}"
            if [ -n "$pki_from" ] && [ -f "$pki_from/$src" ] && ! [ "$pki_from/$src" -ef "$pki/$dst" ]; then
                mode=0600
                case "$dst" in *.crt) mode=0644 ;; esac
                run install -m "$mode" "$pki_from/$src" "$pki/$dst"
            elif [ ! -f "$pki/$dst" ]; then
                missing_files+=("$src")
            fi
        done
        if [ ${#missing_files[@]} -gt 0 ]; then
            echo "missing in /etc/rkube/pki: the node's credentials from the master: ${missing_files[*]}" >&2
            echo "  on the master: deploy/install.sh master --node $node_name=<this node's IP> (adds them if new)," >&2
            files="$(IFS=,; echo "${missing_files[*]}")"
            [ ${#missing_files[@]} -eq 1 ] || files="{$files}"
            echo "  copy them here: mkdir -p /tmp/rkube-pki && scp 'master:/etc/rkube/pki/$files' /tmp/rkube-pki/" >&2
            echo "  then: deploy/install.sh node --pki /tmp/rkube-pki --node-name $node_name" >&2
        fi
        # The kubelet and proxy must use the name the certificates were made for.
        for e in kubelet proxy; do
            if [ "$node_name" != "$(hostname)" ] && [ -f "$destdir/etc/rkube/$e" ] &&
                grep -q '^#RKUBE_HOSTNAME_OVERRIDE=' "$destdir/etc/rkube/$e"; then
                run sed -i "s|^#RKUBE_HOSTNAME_OVERRIDE=.*|RKUBE_HOSTNAME_OVERRIDE=$node_name|" "$destdir/etc/rkube/$e"
            fi
        done
        ;;
esac

if [ -n "$destdir" ]; then
    echo "installed under $destdir; not starting anything"
elif [ ${#missing_files[@]} -gt 0 ]; then
    echo "error: not enabling or starting the units: the node's credentials are missing (see above)" >&2
    exit 1
elif [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
    [ "$role" = master ] && run systemctl enable --now etcd.service
    [ "$role" = node ] && run systemctl enable --now docker.service
    run systemctl enable --now "${units[@]/%/.service}"
else
    echo "systemd is not PID 1 here: installed, but not enabled or started" \
        "(start them by hand: systemctl is not available)"
fi
