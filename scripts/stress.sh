#!/usr/bin/env bash
# Loop the racy C tests of the runtime: every iteration runs each stress
# case (TEST in tests/c/, not TEST_NOSTRESS) in a process of its own, with
# a random GOMAXPROCS from {1,2,3,4,8} and a random H_SEED, and prints the
# seed and GOMAXPROCS of any failure, so that it can be replayed:
#
#     GOMAXPROCS=g H_SEED=s build/stress/<variant>/<prog> <case>
#
# usage: scripts/stress.sh [-n iterations] [-s seed] [-j jobs] [-t timeout]
#                          [-v plain|debug|asan|tsan] [prog[:case] ...]
#   -n  iterations (default 200)
#   -s  seed of the loop's own choices (default: random; printed)
#   -j  cases run at once (default 2: more load, more interleavings)
#   -t  per-case hang bound in seconds (default 120)
#   -v  runtime build to test (default plain; debug, asan and tsan check
#       the runtime's invariants and lock order: GOPY_CHECKS)
#   prog[:case]  only these programs / cases (e.g. test_select:doubleselect)
# Exits 1 if any run failed.  Logs of failures: build/stress/<variant>/fail/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CC=${CC:-cc}

iters=200 seed="" jobs=2 timeout=120 variant=plain
while getopts "n:s:j:t:v:h" opt; do
    case $opt in
    n) iters=$OPTARG ;;
    s) seed=$OPTARG ;;
    j) jobs=$OPTARG ;;
    t) timeout=$OPTARG ;;
    v) variant=$OPTARG ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
seed=${seed:-$(( (RANDOM << 15) | RANDOM ))}
RANDOM=$seed

case $variant in
plain) SANFLAGS="" lib=build/libgopyrt.a mkvar="" ;;
debug) SANFLAGS="" lib=build/debug/libgopyrt.a mkvar=debug ;;
asan) SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
      lib=build/asan/libgopyrt.a mkvar=asan ;;
tsan) SANFLAGS="-fsanitize=thread" lib=build/tsan/libgopyrt.a mkvar=tsan ;;
*) echo "unknown variant $variant" >&2; exit 2 ;;
esac
# detect_leaks=1: as in sanitize.sh (goroutine stacks are LSan roots).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=66"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# die_after_fork=0: as in sanitize.sh (a fork test's child restarts the runtime).
export TSAN_OPTIONS="die_after_fork=0:halt_on_error=1:exitcode=66:report_signal_unsafe=0:atexit_sleep_ms=0:suppressions=$ROOT/tests/c/tsan.supp"

out=build/stress/$variant
mkdir -p "$out/fail"
make -s -C src/runtime ${mkvar:+VARIANT=$mkvar}
prefix=""
if [ "$variant" = tsan ] && ! setarch "$(uname -m)" -R true 2>/dev/null; then
    prefix=""
elif [ "$variant" = tsan ]; then
    prefix="setarch $(uname -m) -R" # harmless where not needed
fi

# Which programs, and which of their cases.
declare -a runs=()
build_failed=0
want=("$@")
for src in tests/c/test_*.c; do
    p=$(basename "$src" .c)
    sel=()
    if [ ${#want[@]} -gt 0 ]; then
        for w in "${want[@]}"; do
            [ "${w%%:*}" = "$p" ] || continue
            if [[ $w == *:* ]]; then sel+=("${w#*:}"); else sel+=("*"); fi
        done
        [ ${#sel[@]} -gt 0 ] || continue
    fi
    if ! "$CC" -std=c11 -O1 -g -Wall -Wextra -Werror $SANFLAGS -Iinclude -Isrc/runtime \
        "$src" "$lib" -lpthread -lm -o "$out/$p"; then
        echo "stress: $p does not build: skipped (and counted as a failure)" >&2
        build_failed=$((build_failed + 1))
        continue
    fi
    for c in $("$out/$p" --list-stress); do
        if [ ${#sel[@]} -eq 0 ] || [[ " ${sel[*]} " == *" * "* ]] || [[ " ${sel[*]} " == *" $c "* ]]; then
            runs+=("$p:$c")
        fi
    done
done
[ ${#runs[@]} -gt 0 ] || { echo "no cases selected" >&2; exit 2; }

procs=(1 2 3 4 8)
echo "stress: ${#runs[@]} cases x $iters iterations, variant $variant, -s $seed, -j $jobs"

results=$out/results.$$
: >"$results"
run_one() { # iter prog case gomaxprocs seed
    local i=$1 p=$2 c=$3 g=$4 s=$5 logf
    logf=$out/fail/$p.$c.$i.log
    if GOMAXPROCS=$g H_SEED=$s H_TIMEOUT=$timeout \
        timeout -k 5 $((timeout + 30)) $prefix "$out/$p" "$c" >"$logf" 2>&1; then
        rm -f "$logf"
        echo "ok $p:$c" >>"$results"
    else
        echo "fail $p:$c" >>"$results"
        printf 'FAIL iteration %d: GOMAXPROCS=%d H_SEED=%s %s/%s %s\n' "$i" "$g" "$s" "$out" "$p" "$c"
        grep -E ': FAIL \[|TIMEOUT|ERROR: |WARNING: ThreadSanitizer|runtime error' "$logf" | head -5 | sed 's/^/    /' || true
        echo "    log: $logf"
    fi
}

start=$(date +%s)
for ((i = 1; i <= iters; i++)); do
    g=${procs[RANDOM % ${#procs[@]}]}
    for r in "${runs[@]}"; do
        s=$(( (RANDOM << 30) | (RANDOM << 15) | RANDOM ))
        run_one "$i" "${r%%:*}" "${r#*:}" "$g" "$s" &
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
            wait -n || true
        done
    done
    if ((i % 10 == 0 || i == iters)); then
        wait
        nfail=$(grep -c '^fail' "$results" || true)
        printf 'iteration %d/%d: %d runs, %d failed (%ds)\n' "$i" "$iters" \
            "$(wc -l <"$results")" "$nfail" $(($(date +%s) - start))
    fi
done
wait

total=$(wc -l <"$results")
nfail=$(grep -c '^fail' "$results" || true)
echo
echo "stress: $total runs, $nfail failed (variant $variant, -s $seed)"
[ "$build_failed" -eq 0 ] || echo "stress: $build_failed program(s) did not build"
if [ "$nfail" -ne 0 ] || [ "$build_failed" -ne 0 ]; then
    grep '^fail' "$results" | sort | uniq -c | sort -rn
    rm -f "$results"
    exit 1
fi
rm -f "$results"
