#!/usr/bin/env bash
# Build the C runtime and every C test (tests/c/test_*.c) under
# AddressSanitizer + UndefinedBehaviorSanitizer and under ThreadSanitizer,
# run every case (each in a process of its own), and fail on any failed
# case or sanitizer report.
#
#   scripts/sanitize.sh            both variants
#   scripts/sanitize.sh asan       only ASan+UBSan (or: tsan)
#
# Test sizes shrink under the sanitizers (tests/c/harness.h, H_SCALED).
# Binaries and logs go to build/sanitize/<variant>/.  Takes a few minutes
# on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CC=${CC:-cc}
JOBS=$(nproc 2>/dev/null || echo 2)
export H_TIMEOUT=${H_TIMEOUT:-300}

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(asan tsan)

# LeakSanitizer is on: every case's process is checked for leaks at exit.
# Goroutines may still be parked then (as in Go); their stacks, mmap'd
# regions LSan would not scan, are registered as roots (src/runtime/stack.c).
ASAN_ENV="detect_leaks=1:halt_on_error=1:exitcode=66:abort_on_error=0:detect_odr_violation=0"
UBSAN_ENV="print_stacktrace=1:halt_on_error=1"
# die_after_fork=0: a fork test's child restarts the runtime (its sysmon
# thread); TSan refuses any thread made after a multi-threaded fork unless
# told otherwise.  The children make no more than that under sanitizers
# (tests/c/harness.h, H_FORK_CHILD_MAY_RUN).
TSAN_ENV="die_after_fork=0:halt_on_error=1:exitcode=66:report_signal_unsafe=0:second_deadlock_stack=1:atexit_sleep_ms=0:suppressions=$ROOT/tests/c/tsan.supp"

# The reports we fail on even if a process somehow exited 0.
REPORT_RE='ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|ThreadSanitizer: |runtime error:|SUMMARY: (Address|Thread|UndefinedBehavior)Sanitizer'

log() { printf '\n==== %s ====\n' "$*"; }

# TSan needs a narrower address layout than kernels with high ASLR entropy
# (vm.mmap_rnd_bits > 28) give: find out whether a TSan program runs as it
# is, or only without randomisation (setarch -R).
tsan_prefix() {
    local dir=$1 probe=$1/tsan_probe
    printf '#include <pthread.h>\nstatic void *f(void *a) { return a; }\nint main(void) { pthread_t t; pthread_create(&t, 0, f, 0); return pthread_join(t, 0); }\n' \
        >"$probe.c"
    "$CC" -fsanitize=thread -O1 "$probe.c" -o "$probe" -lpthread
    if "$probe" >/dev/null 2>&1; then
        echo ""
    elif setarch "$(uname -m)" -R "$probe" >/dev/null 2>&1; then
        echo "setarch $(uname -m) -R"
    elif setarch -R "$probe" >/dev/null 2>&1; then
        echo "setarch -R"
    else
        echo "sanitize.sh: TSan programs do not run on this machine, even with setarch -R" >&2
        return 1
    fi
}

failed=0
for v in "${variants[@]}"; do
    case $v in
    asan) SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" ;;
    tsan) SANFLAGS="-fsanitize=thread" ;;
    *) echo "usage: $0 [asan] [tsan]" >&2; exit 2 ;;
    esac
    out=build/sanitize/$v
    mkdir -p "$out"
    log "$v: building the runtime"
    make -s -C src/runtime VARIANT="$v" -j"$JOBS"
    lib=build/$v/libgopyrt.a

    prefix=""
    if [ "$v" = tsan ]; then
        prefix=$(tsan_prefix "$out")
        [ -z "$prefix" ] || echo "running TSan programs under: $prefix"
    fi

    progs=()
    for src in tests/c/test_*.c; do
        p=$(basename "$src" .c)
        "$CC" -std=c11 -O1 -g -Wall -Wextra -Werror $SANFLAGS -Iinclude -Isrc/runtime \
            "$src" "$lib" -lpthread -lm -o "$out/$p"
        progs+=("$p")
    done
    log "$v: running ${#progs[*]} programs"

    # Two programs at a time (each runs its cases one after another).
    pids=()
    for p in "${progs[@]}"; do
        (
            ASAN_OPTIONS=$ASAN_ENV UBSAN_OPTIONS=$UBSAN_ENV TSAN_OPTIONS=$TSAN_ENV \
                $prefix "$out/$p" >"$out/$p.log" 2>&1
        ) &
        pids+=($!)
        if [ ${#pids[@]} -ge "$JOBS" ]; then
            wait "${pids[0]}" || true
            pids=("${pids[@]:1}")
        fi
    done
    wait || true

    for p in "${progs[@]}"; do
        summary=$(grep -E 'cases failed' "$out/$p.log" | tail -1 || true)
        if ! grep -q ': 0 of [0-9]* cases failed' "$out/$p.log" ||
            grep -Eq "$REPORT_RE" "$out/$p.log"; then
            failed=$((failed + 1))
            echo "FAIL $v $p: ${summary:-no summary (crashed?)}"
            grep -E "^FAIL |$REPORT_RE|: FAIL \[|TIMEOUT" "$out/$p.log" | head -20 | sed 's/^/    /'
            echo "    full log: $out/$p.log"
        else
            echo "ok   $v $p: $summary"
        fi
    done
done

if [ "$failed" -ne 0 ]; then
    log "sanitizers: $failed program run(s) failed"
    exit 1
fi
log "sanitizers: all clean"
