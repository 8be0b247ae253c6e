#!/usr/bin/env bash
# CPython 3.14 and 3.15 on a Debian bookworm machine: a Debian sid chroot
# (sid's interpreters need sid's libc), made with debootstrap, cached
# between runs on one machine and remade whenever it is missing, broken
# or from an older recipe.
#
#   scripts/sid.sh setup              make (or check) the chroot only
#   scripts/sid.sh test [VERSION...]  the README's test command on each
#                                     version (default: 3.14 3.15), each
#                                     in a fresh venv, on a copy of this
#                                     checkout; then scripts/refleaks.sh
#                                     under each one's -dbg build (a failed
#                                     leak test gets 3 tries), with --suite
#                                     under the last one's
#   scripts/sid.sh bench VERSION [ARGS...]
#                                     python -m gopy ARGS (the demo and the
#                                     benchmark table) on that version
#                                     (3.13t: the free-threaded build, GIL off)
#   scripts/sid.sh run CMD...         CMD inside the chroot, in /src (a
#                                     copy of this checkout)
#   scripts/sid.sh build313t          the free-threaded CPython 3.13
#                                     (3.13t), built from Debian's source
#                                     into /opt/python3.13t in the chroot,
#                                     kept while the chroot and its recipe
#                                     stay (about 6 minutes on 2 cores)
#   scripts/sid.sh test313t [N]       the README's test command on 3.13t
#                                     with the GIL off (PYTHON_GIL=0), then
#                                     N iterations (default 3) of the racy
#                                     tests looped (scripts/stress_python.sh,
#                                     GOMAXPROCS up to 8)
#   scripts/sid.sh ftcheck            compile the binding as for 3.14t and
#                                     3.15t: Debian's 3.14/3.15 headers with
#                                     Py_GIL_DISABLED, warnings as errors
#
# GOPY_SID_ROOT: where the chroot lives (default /var/cache/gopy/sid).
# Needs root; the first setup takes about 2 minutes and 1.2 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECKOUT=$(pwd)
ROOT=${GOPY_SID_ROOT:-/var/cache/gopy/sid}
# Bump when the package list or the set-up steps change: a cached chroot
# of another recipe is remade.
PACKAGES="gcc libc6-dev make ca-certificates procps
python3.14 python3.14-dev python3.14-venv python3.14-dbg
python3.15 python3.15-dev python3.15-venv python3.15-dbg"
RECIPE="gopy-sid-4 $PACKAGES"
MIRROR=${GOPY_SID_MIRROR:-http://deb.debian.org/debian}

log() { printf '\n==== %s ====\n' "$*"; }

mounted=()
unmount_all() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -l "${mounted[$i]}" 2>/dev/null || true
    done
    mounted=()
}
trap unmount_all EXIT

mount_into() {  # $1: the chroot
    local m
    for m in proc sys dev dev/pts dev/shm; do
        [ -d "/$m" ] || continue
        mkdir -p "$1/$m"
        mountpoint -q "$1/$m" && continue
        mount --bind "/$m" "$1/$m"
        mounted+=("$1/$m")
    done
    # Name resolution and the package proxy's CA as on the host.
    cp /etc/resolv.conf "$1/etc/resolv.conf" 2>/dev/null || true
    cp /etc/hosts "$1/etc/hosts" 2>/dev/null || true
    cp /etc/ssl/certs/ca-certificates.crt "$1/etc/host-ca.crt"
}

in_root() {  # $1: the chroot; the rest: a bash script run inside it (set -e
    local r=$1  # unless SID_LENIENT is set)
    shift
    local opts=-euo
    [ -n "${SID_LENIENT:-}" ] && opts=-uo
    chroot "$r" env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        PIP_CERT=/etc/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        DEBIAN_FRONTEND=noninteractive TERM=dumb bash $opts pipefail -c "$*"
}

chroot_ok() {
    [ -f "$ROOT/.gopy-recipe" ] && [ "$(cat "$ROOT/.gopy-recipe")" = "$RECIPE" ] &&
        chroot "$ROOT" /usr/bin/python3.14 -c 'import venv' 2>/dev/null &&
        chroot "$ROOT" /usr/bin/python3.15 -c 'import venv' 2>/dev/null &&
        chroot "$ROOT" /usr/bin/python3.14-dbg -c 'import sys; sys.gettotalrefcount' 2>/dev/null &&
        chroot "$ROOT" /usr/bin/python3.15-dbg -c 'import sys; sys.gettotalrefcount' 2>/dev/null
}

setup() {
    if chroot_ok; then
        echo "sid chroot: $ROOT (cached)"
        return 0
    fi
    log "making the Debian sid chroot in $ROOT"
    if ! command -v debootstrap >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    local new=$ROOT.new r m
    unmount_all
    # Mounts left by a run that was killed before its trap ran.
    for r in "$ROOT" "$new"; do
        for m in dev/shm dev/pts dev sys proc; do
            if mountpoint -q "$r/$m" 2>/dev/null; then umount -l "$r/$m"; fi
        done
    done
    rm -rf --one-file-system "$new"
    mkdir -p "$(dirname "$ROOT")"
    debootstrap --variant=minbase sid "$new" "$MIRROR" >"$new.log" 2>&1 ||
        { tail -30 "$new.log"; exit 1; }
    # The archive's sid index is a frozen copy whose Valid-Until has passed.
    echo 'Acquire::Check-Valid-Until "false";' >"$new/etc/apt/apt.conf.d/99novalid"
    mount_into "$new"
    in_root "$new" "apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(echo $PACKAGES) >/dev/null"
    unmount_all
    echo "$RECIPE" >"$new/.gopy-recipe"
    rm -rf --one-file-system "$ROOT" "$new.log"
    mv "$new" "$ROOT"
    chroot_ok || { echo "sid.sh: the new chroot does not work" >&2; exit 1; }
}

# Debian ships no free-threaded interpreter; its archive keeps the source
# of python3.13 (3.14's and 3.15's answer 404).
FT_SOURCE=python3.13=3.13.15-1
FT_BUILD_DEPS="dpkg-dev xz-utils libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev"
FT_RECIPE="gopy-313t-1 $FT_SOURCE --disable-gil $FT_BUILD_DEPS"
FT_PREFIX=/opt/python3.13t

ft_ok() {  # built from this recipe, and the GIL stays off
    [ "$(cat "$ROOT$FT_PREFIX/.gopy-recipe" 2>/dev/null)" = "$FT_RECIPE" ] &&
        chroot "$ROOT" "$FT_PREFIX/bin/python3.13t" -c \
            'import sys, ssl, ctypes, zlib, venv; sys.exit(sys._is_gil_enabled())' 2>/dev/null
}

build_313t() {
    if ft_ok; then
        echo "3.13t: $ROOT$FT_PREFIX (cached)"
        return 0
    fi
    log "building CPython 3.13t from Debian's source into $FT_PREFIX"
    in_root "$ROOT" "
        grep -qs '^deb-src' /etc/apt/sources.list ||
            sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >>/etc/apt/sources.list
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends $FT_BUILD_DEPS >/dev/null
        rm -rf /build-313t && mkdir /build-313t && cd /build-313t
        apt-get source -q --download-only $FT_SOURCE >/dev/null
        tar -xf python3.13_*.orig.tar.xz
        cd Python-3.13.*/
        ./configure --disable-gil --prefix=$FT_PREFIX >../configure.log 2>&1 ||
            { tail -20 ../configure.log; exit 1; }
        make -j\$(nproc) >../make.log 2>&1 || { tail -30 ../make.log; exit 1; }
        rm -rf $FT_PREFIX && make install >../install.log 2>&1 || { tail -20 ../install.log; exit 1; }
        echo '$FT_RECIPE' >$FT_PREFIX/.gopy-recipe
        cd / && rm -rf /build-313t"
    ft_ok || { echo "sid.sh: the 3.13t build does not work" >&2; exit 1; }
}

copy_checkout() {  # the checkout as it is, without build output, to $ROOT/src
    rm -rf --one-file-system "$ROOT/src"
    mkdir -p "$ROOT/src"
    tar -C "$CHECKOUT" --exclude=./build --exclude=./.git --exclude='*.so' \
        --exclude=__pycache__ --exclude='*.egg-info' --exclude=./.hypothesis \
        --exclude=./.pytest_cache -cf - . | tar -C "$ROOT/src" -xf -
}

cmd=${1:-test}
[ $# -gt 0 ] && shift
case $cmd in
setup)
    setup
    ;;
run)
    setup
    copy_checkout
    mount_into "$ROOT"
    SID_LENIENT=1 in_root "$ROOT" "cd /src && $*"
    ;;
test)
    versions=("$@")
    [ ${#versions[@]} -gt 0 ] || versions=(3.14 3.15)
    setup
    copy_checkout
    mount_into "$ROOT"
    for v in "${versions[@]}"; do
        log "CPython $v (Debian sid chroot)"
        in_root "$ROOT" "
            python$v -VV
            rm -rf /venv-$v && python$v -m venv /venv-$v && . /venv-$v/bin/activate
            cd /src
            # The README's test command:
            python -m pip install -q -e '.[test]' && python -m pytest -q -p no:cacheprovider"
    done
    # The leak tests under each -dbg build; the whole suite (the C API's
    # debug assertions) under the newest only: 4-5 minutes each, and
    # 3.11-dbg runs it too in CI (the oldest API).
    newest=${versions[${#versions[@]}-1]}
    for v in "${versions[@]}"; do
        suite=""
        [ "$v" = "$newest" ] && suite=--suite
        log "reference leaks${suite:+, whole suite} under python$v-dbg"
        in_root "$ROOT" "
            rm -rf /venv-dbg-$v && python$v-dbg -m venv /venv-dbg-$v && . /venv-dbg-$v/bin/activate
            python -m pip install -q setuptools wheel pytest pytest-timeout hypothesis
            cd /src && PYTHON_DBG=/venv-dbg-$v/bin/python GOPY_REFLEAK_ATTEMPTS=3 \
                scripts/refleaks.sh $suite"
    done
    ;;
build313t)
    setup
    mount_into "$ROOT"
    build_313t
    ;;
test313t)
    iters=${1:-3}
    setup
    mount_into "$ROOT"
    build_313t
    copy_checkout
    log "CPython 3.13t, the GIL off (Debian sid chroot)"
    # Some test dependencies' newest releases have no wheel for 3.13t and
    # build from source only with a Rust toolchain: take the newest wheel.
    in_root "$ROOT" "
        export PYTHON_GIL=0 PIP_PREFER_BINARY=1
        $FT_PREFIX/bin/python3.13t -VV
        rm -rf /venv-313t && $FT_PREFIX/bin/python3.13t -m venv /venv-313t && . /venv-313t/bin/activate
        cd /src
        # The README's test command:
        python -m pip install -q -e '.[test]' && python -m pytest -q -p no:cacheprovider
        python -c 'import sys, gopy; assert not sys._is_gil_enabled(), \"the GIL came back\"'
        PYTHON=python scripts/stress_python.sh -n $iters"
    ;;
ftcheck)
    setup
    copy_checkout
    for v in 3.14 3.15; do
        log "the binding as for CPython ${v}t (Py_GIL_DISABLED, $v headers)"
        in_root "$ROOT" "
            cd /src && for f in src/python/*.c; do
                gcc -fsyntax-only -std=gnu11 -Wall -Wextra -Wno-missing-field-initializers \
                    -Werror -DPy_GIL_DISABLED=1 -isystem /usr/include/python$v \
                    -Iinclude -Isrc/runtime \$f || exit 1
            done && echo \"compiles: src/python/*.c\""
    done
    ;;
bench)
    v=${1:?usage: scripts/sid.sh bench VERSION [python -m gopy options]}
    shift
    setup
    mount_into "$ROOT"
    py=python$v env=
    if [ "$v" = 3.13t ]; then  # the GIL off
        build_313t
        py=$FT_PREFIX/bin/python3.13t env="export PYTHON_GIL=0 PIP_PREFER_BINARY=1"
    fi
    copy_checkout
    # The peers that install on this version take part; the rest are
    # reported as not installed.
    SID_LENIENT=1 in_root "$ROOT" "$env
        rm -rf /venv-bench-$v && $py -m venv /venv-bench-$v && . /venv-bench-$v/bin/activate
        cd /src && python -m pip install -q -e . && python -m pip install -q matplotlib
        for peer in gevent trio runloom; do python -m pip install -q --only-binary=:all: \$peer; done
        python -m gopy $*"
    ;;
*)
    sed -n '2,34p' "$0"
    exit 2
    ;;
esac
