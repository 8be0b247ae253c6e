#!/usr/bin/env bash
# Reference-leak check: build gopy for Debian's debug interpreter
# (python3.11-dbg, which has sys.gettotalrefcount) in a throwaway copy of
# the checkout, and run tests/test_refleaks.py there.  Exits non-zero on a
# leak (or any failure).
#
#   scripts/refleaks.sh            the leak tests
#   scripts/refleaks.sh --suite    also the whole pytest suite under the
#                                  debug interpreter (its asserts catch
#                                  misuse of the C API)
#   scripts/refleaks.sh -- ARGS    extra pytest arguments (e.g. -k select)
#
# PYTHON_DBG picks another debug interpreter; GOPY_REFLEAK_ATTEMPTS=N runs
# a failed leak test up to N times in all (default 1).  If it is missing and this
# is a Debian/Ubuntu machine where we are root, it is installed with apt
# together with pytest, pytest-timeout and hypothesis for it.  Takes about
# 1.5 minutes (build ~25 s, leak tests ~1 min; --suite adds ~1 min).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON_DBG:-python3.11-dbg}

suite=0
extra=()
while [ $# -gt 0 ]; do
    case $1 in
    --suite) suite=1 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--suite] [-- pytest args]" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '\n==== %s ====\n' "$*"; }

have_deps() {
    command -v "$PY" >/dev/null 2>&1 &&
        "$PY" -c 'import sys, setuptools, pytest, pytest_timeout; sys.gettotalrefcount' 2>/dev/null
}

if ! have_deps; then
    if [ -z "${PYTHON_DBG:-}" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        log "installing $PY and its test tools (apt)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11-dbg python3.11-dev \
            python3-setuptools python3-pytest python3-pytest-timeout python3-hypothesis >/dev/null
    fi
    have_deps || { echo "refleaks.sh: $PY with setuptools, pytest and pytest-timeout" \
                        "and sys.gettotalrefcount is needed" >&2; exit 2; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gopy-refleaks.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The checkout as it is (uncommitted work included), without build output.
tar -C "$ROOT" --exclude=./build --exclude=./.git --exclude='*.so' --exclude=__pycache__ \
    --exclude='*.egg-info' -cf - . | tar -C "$work" -xf -

log "building gopy for $("$PY" -c 'import sys; print(sys.version.split()[0])') (debug build: $PY)"
(cd "$work" && "$PY" setup.py -q build_ext --inplace >"$work/build.log" 2>&1) ||
    { cat "$work/build.log"; exit 1; }

cd "$work"
export PYTHONPATH=$work
# The copy's gopy, not an installed one.
"$PY" -c "import gopy, sys; sys.exit(not gopy.__file__.startswith('$work/'))" ||
    { echo "refleaks.sh: gopy is not imported from $work" >&2; exit 2; }
status=0
log "reference leaks: tests/test_refleaks.py"
cache=(-o "cache_dir=$work/.leak-cache")
if ! "$PY" -m pytest "${cache[@]}" -q -rs tests/test_refleaks.py ${extra[@]+"${extra[@]}"}; then
    # GOPY_REFLEAK_ATTEMPTS > 1: a test that failed runs again, and passes
    # if it passes once (a leak shows every time; the stray references of
    # CPython 3.14/3.15's debug builds do not: docs/decisions.md §14).
    status=1
    for ((n = 2; n <= ${GOPY_REFLEAK_ATTEMPTS:-1}; n++)); do
        log "the leak tests that failed, again (attempt $n of $GOPY_REFLEAK_ATTEMPTS)"
        if "$PY" -m pytest "${cache[@]}" -q -rs --lf tests/test_refleaks.py \
                ${extra[@]+"${extra[@]}"}; then
            status=0
            break
        fi
    done
fi

if [ "$suite" = 1 ]; then
    log "the whole suite under $PY"
    "$PY" -m pytest -p no:cacheprovider -q -rfEs --ignore=tests/test_refleaks.py ${extra[@]+"${extra[@]}"} || status=1
fi

if [ "$status" -ne 0 ]; then
    log "refleaks: FAILED"
    exit 1
fi
log "refleaks: clean"
