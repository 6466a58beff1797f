#!/usr/bin/env bash
# Builds the images rkube needs locally, FROM scratch (no registry is used):
#   rkube/pause:3.9     the pod infrastructure container (a static C binary)
#   rkube/toolbox:1.0   busybox-static: sh, httpd, wget, nc, sleep, tail, ...
#   rkube/dns:<version> rkube-dns, the cluster DNS add-on (a static Rust binary)
#   compose: the images docker-compose.yml runs, each one daemon:
#     rkube/apiserver, rkube/controller-manager, rkube/scheduler, rkube/proxy
#       (static Rust binaries), rkube/certs (static rkube-certs, which
#       images/compose-host.sh prepare runs to make the PKI), rkube/kubelet (static rkubelet plus the host
#       tools it runs: iptables, ip, mount, umount, with their libraries),
#     rkube/etcd (Debian's etcd with the libraries it links), all :<version>
# Usage: images/build.sh [pause] [toolbox] [dns] [compose]
#   Without arguments: pause and toolbox, and dns only if that image is
#   missing (its cargo build takes minutes). Naming dns or compose rebuilds
#   it (cargo and Docker skip what did not change). Name dns and compose in
#   one call to compile their binaries in one cargo run.
# Idempotent: an image that exists is rebuilt only if its inputs changed
# (Docker's cache decides).
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v docker >/dev/null || { echo "error: docker is not installed (apt-get install docker.io)" >&2; exit 1; }

build() { # docker build args...; quiet unless it fails
    if ! docker build -q "$@" >"$work/build.log" 2>&1; then
        cat "$work/build.log" >&2
        exit 1
    fi
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' ../Cargo.toml | head -n1)
if [ $# -eq 0 ]; then
    want=(pause toolbox)
    docker image inspect "rkube/dns:$version" >/dev/null 2>&1 || want+=(dns)
else
    want=("$@")
fi
wanted() { [[ " ${want[*]} " == *" $1 "* ]]; }
for image in "${want[@]}"; do
    case "$image" in
        pause | toolbox | dns | compose) ;;
        *) echo "error: unknown image \"$image\" (pause, toolbox, dns, compose)" >&2; exit 1 ;;
    esac
done

# pause
if wanted pause; then
    mkdir -p "$work/pause"
    gcc -static -Os -s -o "$work/pause/pause" pause/pause.c
    cp pause/Dockerfile "$work/pause/"
    build -t rkube/pause:3.9 "$work/pause"
    echo "built rkube/pause:3.9"
fi

# toolbox
if wanted toolbox; then
    [ -x /bin/busybox ] || { echo "error: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
    root="$work/toolbox/rootfs"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/var/www" "$root/root"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
    echo '<html><body>rkube toolbox</body></html>' >"$root/var/www/index.html"
    chmod 1777 "$root/tmp"
    cp toolbox/Dockerfile "$work/toolbox/"
    build -t rkube/toolbox:1.0 -t rkube/toolbox:latest "$work/toolbox"
    echo "built rkube/toolbox:1.0 (also tagged latest)"
fi

# Static Rust binaries (glibc's crt-static), debug profile stripped: rkube-dns
# builds in about 2.5 minutes on two cores where a release build of its
# dependencies takes far longer, and answers cached names at tens of
# thousands of queries per second all the same (bench/README.md). Every
# static image's binaries are compiled in one cargo run, in one target dir,
# so they share their compiled dependencies.
target_dir=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target}
static_dir=$target_dir/x86_64-unknown-linux-gnu/debug
static_bins=()
wanted dns && static_bins+=(rkube-dns:rkube-dns)
wanted compose && static_bins+=(rkube-apiserver:rkube-apiserver rkube-controller-manager:rkube-controller-manager
    rkube-scheduler:rkube-scheduler rkube-kubelet:rkubelet rkube-proxy:rkube-proxy rkube-pki:rkube-certs)
if [ ${#static_bins[@]} -gt 0 ]; then
    cargo_args=()
    for pb in "${static_bins[@]}"; do cargo_args+=(-p "${pb%%:*}" --bin "${pb#*:}"); done
    (cd .. && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_DEV_STRIP=true \
        cargo build -q "${cargo_args[@]}" --target x86_64-unknown-linux-gnu)
fi

# Copies dynamically linked program $1 into rootfs $2 at the same path, with
# every library ldd says it (or the extra objects $3...) needs and the loader.
copy_with_libs() { # program, rootfs, extra shared objects...
    local program=$1 root=$2; shift 2
    local lib dir
    # A merged-/usr host (/lib -> usr/lib, ...): the same links in the image,
    # so that every path a program or library was built to look in resolves.
    for dir in bin sbin lib lib64; do
        if [ -L "/$dir" ] && [ ! -e "$root/$dir" ]; then
            mkdir -p "$root/$(readlink "/$dir")"
            ln -s "$(readlink "/$dir")" "$root/$dir"
        fi
    done
    mkdir -p "$root$(dirname "$program")"
    cp -L "$program" "$root$program"
    # ldd lines: "libx.so => /path (addr)", "/lib64/ld-linux... (addr)", and
    # "/file:" headers when given several files.
    for lib in $(ldd "$program" "$@" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' | sort -u); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# Builds image $1 from images/$2/Dockerfile with the static binary $3 (and
# whatever a rootfs/ prepared in $work/$2 already holds).
static_image() { # tag, image dir, binary
    local tag=$1 dir=$2 bin=$3
    mkdir -p "$work/$dir"
    cp "$static_dir/$bin" "$work/$dir/"
    ! ldd "$work/$dir/$bin" 2>&1 | grep -q "=>" ||
        { echo "error: $static_dir/$bin is not statically linked" >&2; exit 1; }
    cp "$dir/Dockerfile" "$work/$dir/"
    build -t "$tag" "$work/$dir"
    echo "built $tag"
}

# dns
if wanted dns; then
    static_image "rkube/dns:$version" dns rkube-dns
fi

# compose
if wanted compose; then
    static_image "rkube/apiserver:$version" apiserver rkube-apiserver
    static_image "rkube/controller-manager:$version" controller-manager rkube-controller-manager
    static_image "rkube/scheduler:$version" scheduler rkube-scheduler
    static_image "rkube/proxy:$version" proxy rkube-proxy
    static_image "rkube/certs:$version" certs rkube-certs
    # rkubelet runs iptables (the host's backend: nft or legacy), ip, mount
    # and umount. Debian builds them dynamically linked, so they come with
    # their libraries, and iptables with its extensions (dlopen()ed).
    root=$work/kubelet/rootfs
    iptables_bin=$(readlink -f "$(command -v iptables)") ||
        { echo "error: iptables missing (apt-get install iptables)" >&2; exit 1; }
    xtables=$(readlink -f "$(dirname "$(ldd "$iptables_bin" | grep -o '/[^ ]*libxtables[^ ]*')")/xtables")
    copy_with_libs "$iptables_bin" "$root" "$xtables"/*.so
    for tool in ip mount umount; do
        copy_with_libs "$(readlink -f "$(command -v $tool)")" "$root"
    done
    cp -a "$xtables/." "$root$xtables/"
    ln -sf "$iptables_bin" "$root/usr/sbin/iptables"
    static_image "rkube/kubelet:$version" kubelet rkubelet
    # etcd: Debian's Go binary is linked to glibc (ldd: libc.so.6 and the
    # loader), so the image holds those two with it.
    command -v etcd >/dev/null || { echo "error: etcd missing (apt-get install etcd-server)" >&2; exit 1; }
    copy_with_libs "$(readlink -f "$(command -v etcd)")" "$work/etcd/rootfs"
    cp etcd/Dockerfile "$work/etcd/"
    build -t "rkube/etcd:$version" "$work/etcd"
    echo "built rkube/etcd:$version (Debian's $(etcd --version | head -n1))"
fi
