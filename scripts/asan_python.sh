#!/usr/bin/env bash
# The Python side under AddressSanitizer (+ UndefinedBehaviorSanitizer):
# build gopy._gopy with GOPY_SANITIZE (setup.py) in a throwaway copy of the
# checkout, then run, with the ASan runtime preloaded into the interpreter
# and Python's allocator switched to malloc (so ASan sees every object):
#   1. the bad-input fuzzer (tests/test_fuzz_api.py): several seeds;
#   2. a stress subset of the Python tests (the racy ones).
# Exits non-zero on any failure or sanitizer report.
#
#   scripts/asan_python.sh [-s seeds] [-n fuzz-steps] [-k pytest-expr] [--no-tests]
#     -s  how many fuzz seeds (default 4; random, printed; GOPY_FUZZ_SEED fixes one)
#     -n  fuzz steps per seed (default 3000)
#
# LeakSanitizer checks each fuzzer process at exit (goroutines still parked
# then are abandoned by design; their stacks are LSan roots, stack.h).  It
# stays off for the tests: its scan at exit gives threads that CPython ends
# with pthread_exit during finalization time to run ASan's own thread
# teardown, which then reports a stack-buffer-overflow in sigaltstack (a
# false positive on stale stack poison; seen before these changes too).
# Takes ~4 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python

seeds=4 steps=3000 kexpr="" run_tests=1
while [ $# -gt 0 ]; do
    case $1 in
    -s) seeds=$2; shift ;;
    -n) steps=$2; shift ;;
    -k) kexpr=$2; shift ;;
    --no-tests) run_tests=0 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "usage: $0 [-s seeds] [-n steps] [-k expr] [--no-tests]" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '\n==== %s ====\n' "$*"; }

LIBASAN=$(gcc -print-file-name=libasan.so)
[ -e "$LIBASAN" ] || { echo "asan_python.sh: libasan.so not found (gcc)" >&2; exit 2; }
"$PY" -c 'import pytest, pytest_timeout, hypothesis' 2>/dev/null ||
    { echo "asan_python.sh: $PY needs pytest, pytest-timeout and hypothesis" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gopy-asan.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$ROOT" --exclude=./build --exclude=./.git --exclude='*.so' --exclude=__pycache__ \
    --exclude='*.egg-info' -cf - . | tar -C "$work" -xf -

log "building gopy with -fsanitize=address,undefined ($("$PY" --version))"
(cd "$work" && GOPY_SANITIZE=address,undefined "$PY" setup.py -q build_ext --inplace \
    >"$work/build.log" 2>&1) || { cat "$work/build.log"; exit 1; }

REPORT_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer'
export LD_PRELOAD=$LIBASAN
# allocator_may_return_null: Chan(2**40) must be a MemoryError, not an abort.
# halt_on_error: the first report ends the process (and fails the run).
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:abort_on_error=0:exitcode=66:detect_stack_use_after_return=0:handle_segv=1"
# For the fuzzer (see the top).  intercept_tls_get_addr=0: GCC 12's LSan
# misreads the dynamic TLS block of _gopy.so on a thread where it sits 16
# bytes into a page (its glibc 2.19 guess) and crashes scanning it; LSan
# still reaches those blocks, heap chunks that glibc's per-thread DTV
# points to, without that tracking.
LSAN_ON="detect_leaks=1:intercept_tls_get_addr=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=67"
export PYTHONMALLOC=malloc
export PYTHONPATH=$work
export PYTHONFAULTHANDLER=1
cd "$work"
# The copy's gopy, not an installed one.
"$PY" -c "import gopy, sys; sys.exit(not gopy.__file__.startswith('$work/'))" ||
    { echo "asan_python.sh: gopy is not imported from $work" >&2; exit 2; }

failed=0
# The pipeline can fail: a use after free in an instrumented library loaded
# into this interpreter must be reported.
printf '#include <stdlib.h>\nint uaf(void) { int *p = malloc(8); free(p); return p[0]; }\n' >"$work/uaf.c"
gcc -shared -fPIC -fsanitize=address -g "$work/uaf.c" -o "$work/uaf.so"
if "$PY" -c "import ctypes; ctypes.CDLL('$work/uaf.so').uaf()" >"$work/uaf.log" 2>&1 ||
    ! grep -q "heap-use-after-free" "$work/uaf.log"; then
    echo "asan_python.sh: ASan does not report errors in this set-up:" >&2
    cat "$work/uaf.log" >&2
    exit 2
fi
echo "ok   ASan reports a use after free in this set-up"

check_log() {  # $1: name, $2: exit status, $3: log file
    if [ "$2" -ne 0 ] || grep -Eq "$REPORT_RE" "$3"; then
        failed=$((failed + 1))
        echo "FAIL $1 (exit status $2)"
        grep -E "$REPORT_RE|FUZZ FAILURE|Fatal Python error|^FAILED|replay" "$3" | head -20 | sed 's/^/    /'
        echo "    full log: $3 (kept in $ROOT/build/asan_python/)"
        mkdir -p "$ROOT/build/asan_python" && cp "$3" "$ROOT/build/asan_python/"
    else
        echo "ok   $1"
    fi
}

log "fuzzing: $seeds seeds x $steps steps"
for _ in $(seq 1 "$seeds"); do
    seed=${GOPY_FUZZ_SEED:-$("$PY" -c 'import random; print(random.SystemRandom().randrange(2**32))')}
    st=0
    timeout 900 env ASAN_OPTIONS="$ASAN_OPTIONS:$LSAN_ON" "$PY" tests/test_fuzz_api.py \
        --seed "$seed" --steps "$steps" \
        >"$work/fuzz-$seed.log" 2>&1 || st=$?
    check_log "fuzz seed $seed ($steps steps; replay: scripts/asan_python.sh -s 1 -n $steps with GOPY_FUZZ_SEED=$seed)" \
        "$st" "$work/fuzz-$seed.log"
done

if [ "$run_tests" = 1 ]; then
    # The racy tests: channels and select between goroutines and threads,
    # timers, sync, goroutine lifecycle, deadlock detection (in fresh
    # interpreters, which inherit the ASan environment), properties.
    tests=(tests/test_chan.py tests/test_select.py tests/test_threads_interop.py
           tests/test_goroutines.py tests/test_timers.py tests/test_deadlock.py
           tests/test_lifecycle.py tests/test_properties.py tests/test_go_c.py
           tests/test_ctypes_chan.py tests/test_bad_input.py tests/test_asyncio.py
           tests/test_preempt.py tests/test_debugging.py)
    for t in tests/test_sync.py tests/test_context.py tests/test_errgroup.py tests/test_atomic.py \
             tests/test_offload.py tests/test_netpoll.py tests/test_placement.py \
             tests/test_hooks_*.py; do
        [ -e "$t" ] && tests+=("$t")
    done
    # RSS under ASan measures its quarantine of freed memory (256 MiB), not gopy.
    deselect=(--deselect tests/test_context.py::test_million_children_leave_memory_flat
              --deselect tests/test_goroutines.py::test_a_parked_goroutine_with_a_shallow_call_chain_costs_one_page)
    log "stress subset of the Python tests: ${#tests[@]} files"
    st=0
    "$PY" -m pytest -p no:cacheprovider -q -x -rfE ${kexpr:+-k "$kexpr"} "${deselect[@]}" "${tests[@]}" \
        >"$work/pytest.log" 2>&1 || st=$?
    tail -3 "$work/pytest.log"
    check_log "pytest stress subset" "$st" "$work/pytest.log"
fi

if [ "$failed" -ne 0 ]; then
    log "asan_python: $failed run(s) failed"
    exit 1
fi
log "asan_python: clean"
