#!/usr/bin/env bash
# Loop the racy Python tests: every iteration runs them in a fresh pytest
# process with a random GOMAXPROCS from {1,2,3,4,8} and a random seed (for
# hypothesis and the fuzzer), and prints the iteration, GOMAXPROCS and seed
# of any failure with the end of its output, so that it can be replayed:
#
#     GOMAXPROCS=g python -m pytest -p no:cacheprovider -x --hypothesis-seed=s <tests>
#
# usage: scripts/stress_python.sh [-n iterations] [-s seed] [-t timeout] [test ...]
#   -n  iterations (default 50)
#   -s  seed of the loop's own choices (default: random; printed)
#   -t  hang bound per iteration in seconds (default 600)
#   test ...  pytest node ids or files instead of the default racy set
# Environment: PYTHON (default python3), PYTEST_ARGS (extra pytest arguments).
# Exits 1 if any iteration failed; the full output of failures goes to
# build/stress_python/iter<i>-gmp<g>-seed<s>.log.
# The C runtime's own stress loop is scripts/stress.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || PY=python

iters=50 seed="" timeout=600
while getopts "n:s:t:h" opt; do
    case $opt in
    n) iters=$OPTARG ;;
    s) seed=$OPTARG ;;
    t) timeout=$OPTARG ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

# The racy set: select fairness and wake-ups, close waking everyone,
# channels between goroutines and threads, deadlock detection's "no false
# positive" cases, goroutine programs, lock_os_thread, sync, context and
# errgroup wake-ups, the concurrent property test, spawn backlogs, garbage
# collection beside channel traffic, interpreter exit, the standard library's
# blocking calls parking beside other goroutines, objects shared by goroutines
# and threads running at once (test_free_threading.py), goroutines preempted
# beside others of their thread (test_preempt.py).  ~70 s per iteration.
default_tests=(
    tests/test_select.py
    tests/test_free_threading.py
    tests/test_preempt.py
    tests/test_threads_interop.py
    "tests/test_chan.py::test_close_wakes_all_blocked_receivers_goroutines_and_threads"
    "tests/test_chan.py::test_close_wakes_all_blocked_senders"
    "tests/test_chan.py::test_close_from_goroutine_wakes_main_thread"
    "tests/test_chan.py::test_unbuffered_between_two_goroutines"
    "tests/test_chan.py::test_unbuffered_send_blocks_until_received_goroutines"
    "tests/test_chan.py::test_views_across_goroutines"
    "tests/test_deadlock.py::test_no_false_positive"
    "tests/test_goroutines.py::test_fan_out_fan_in_worker_pool"
    "tests/test_goroutines.py::test_pipeline_preserves_order_through_stages"
    "tests/test_goroutines.py::test_prime_sieve_of_chained_goroutines"
    "tests/test_goroutines.py::test_select_with_timeout_loop"
    "tests/test_goroutines.py::test_threads_and_goroutines_in_both_directions"
    "tests/test_goroutines.py::test_lock_os_thread_dedicates_the_thread"
    "tests/test_goroutines.py::test_many_goroutines_under_gomaxprocs"
    "tests/test_goroutines.py::test_python_and_c_goroutines_in_one_select"
    "tests/test_goroutines.py::test_blocking_calls_do_not_serialise_goroutines"
    "tests/test_runtime.py::test_lock_os_thread_in_goroutine"
    "tests/test_runtime.py::test_goroutines_work_after_gomaxprocs_changes"
    "tests/test_properties.py::test_concurrent_programs_keep_go_semantics"
    "tests/test_properties.py::test_sequential_program_in_goroutine"
    "tests/test_deadlock.py::test_no_false_positive_from_a_thread_that_was_just_woken"
    "tests/test_go_c.py::test_ctypes_callbacks_started_from_a_goroutine_block_and_yield"
    "tests/test_chan.py::test_collections_while_goroutines_and_threads_use_a_channel"
    "tests/test_goroutines.py::test_a_goroutine_spawning_many_lets_them_start_in_batches"
    "tests/test_goroutines.py::test_a_locked_goroutine_spawning_many_does_not_yield_to_them"
    "tests/test_goroutines.py::test_a_thread_spawning_many_lets_them_start"
    tests/test_lifecycle.py
    tests/test_hooks_socket.py
    tests/test_hooks_select.py
    tests/test_hooks_subprocess.py
    tests/test_asyncio.py
    tests/test_hooks_futures.py
    "tests/test_hooks_time.py::test_sleep_parks"
    "tests/test_hooks_time.py::test_sleep_zero_lets_the_goroutines_on_the_thread_run"
    "tests/test_hooks_time.py::test_worker_pool_of_sleepers_does_not_serialise"
    "tests/test_hooks_resolver.py::test_resolver_calls_park_on_an_offload_thread"
    "tests/test_hooks_resolver.py::test_many_goroutines_resolve_at_once"
    tests/test_hooks_ssl.py
    tests/test_netpoll.py
    tests/test_placement.py
    "tests/test_debugging.py::test_stall_warning_when_a_thread_blocks_its_goroutines"
)
optional_tests=(
    tests/test_sync.py
    "tests/test_context.py::test_cancel_wakes_goroutines_blocked_anywhere"
    "tests/test_context.py::test_cancel_wakes_threads_and_main_thread"
    "tests/test_context.py::test_cancel_from_thread_wakes_goroutines"
    "tests/test_context.py::test_many_goroutines_woken_by_one_cancel"
    "tests/test_context.py::test_simultaneous_cancels"
    "tests/test_context.py::test_interlocked_cancels"
    "tests/test_errgroup.py::test_first_error_wins_under_contention"
    "tests/test_errgroup.py::test_first_failure_cancels_others"
    "tests/test_errgroup.py::test_go_from_threads_and_goroutines"
    "tests/test_errgroup.py::test_wait_from_thread_and_main_thread"
)

if [ $# -gt 0 ]; then
    tests=("$@")
else
    tests=("${default_tests[@]}")
    for t in "${optional_tests[@]}"; do  # those whose file exists yet
        [ -e "${t%%::*}" ] && tests+=("$t")
    done
fi

[ -n "$seed" ] || seed=$("$PY" -c 'import random; print(random.SystemRandom().randrange(2**31))')
echo "stress_python: $iters iterations, loop seed $seed, ${#tests[@]} test selections"
"$PY" -c 'import pytest_timeout' 2>/dev/null ||
    echo "stress_python: warning: no pytest-timeout for $PY: a hang waits for -t" >&2
has_hypothesis=0
"$PY" -c 'import hypothesis' 2>/dev/null && has_hypothesis=1

# The loop's choices, reproducible from its seed: one "GOMAXPROCS SEED" per line.
mapfile -t plan < <("$PY" -c "
import random
r = random.Random($seed)
for _ in range($iters):
    print(r.choice([1, 2, 3, 4, 8]), r.randrange(2**31))
")

logdir=$ROOT/build/stress_python
mkdir -p "$logdir"
failed=0
start=$(date +%s)
for i in $(seq 1 "$iters"); do
    read -r gmp s <<<"${plan[$((i - 1))]}"
    log=$logdir/iter$i-gmp$gmp-seed$s.log
    st=0
    hyp=()
    [ "$has_hypothesis" = 1 ] && hyp=(--hypothesis-seed="$s")
    # shellcheck disable=SC2086 # PYTEST_ARGS is a list of words
    GOMAXPROCS=$gmp GOPY_FUZZ_SEED=$s timeout "$timeout" \
        "$PY" -m pytest -p no:cacheprovider -q -x ${hyp[@]+"${hyp[@]}"} ${PYTEST_ARGS:-} \
        "${tests[@]}" >"$log" 2>&1 || st=$?
    summary=$(grep -v '^[[:space:]]*$' "$log" | tail -1 || true)
    if [ "$st" -eq 0 ]; then
        printf 'iteration %d/%d GOMAXPROCS=%d seed=%d: %s\n' "$i" "$iters" "$gmp" "$s" "$summary"
        rm -f "$log"
    else
        failed=$((failed + 1))
        [ "$st" -eq 124 ] && summary="HUNG (killed after $timeout s)"
        printf 'iteration %d/%d GOMAXPROCS=%d seed=%d: FAILED (exit %d): %s\n' \
            "$i" "$iters" "$gmp" "$s" "$st" "$summary"
        { grep -E "^(FAILED|ERROR)[: ]|^E  |Falsifying|reproduce_failure|Timeout|Fatal Python error" \
            "$log" || true; } | head -25 | sed 's/^/    /'
        echo "    replay: GOMAXPROCS=$gmp GOPY_FUZZ_SEED=$s $PY -m pytest -p no:cacheprovider -x" \
             "--hypothesis-seed=$s <the same tests>"
        echo "    full output: $log"
    fi
done
echo "stress_python: $failed of $iters iterations failed ($(( $(date +%s) - start )) s, loop seed $seed)"
[ "$failed" -eq 0 ]
