/*
 * C6: a CPU-bound kernel (an integer hash chain) in 64 goroutines, run with
 * GOMAXPROCS 1 and then with the default; reports the speedup.  The checksum
 * is the Go program's too, which lets native.py check both computed the same.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>

#define TASKS 64

typedef struct {
    uint64_t seed, result;
    int64_t rounds;
    gopy_waitgroup *finished;
} hash_task;

/* Murmur3's 64-bit finalizer, iterated: a dependent chain no compiler folds. */
static uint64_t hash_chain(uint64_t x, int64_t rounds)
{
    for (int64_t i = 0; i < rounds; i++) {
        x ^= x >> 33;
        x *= UINT64_C(0xff51afd7ed558ccd);
        x ^= x >> 33;
        x *= UINT64_C(0xc4ceb9fe1a85ec53);
        x ^= x >> 33;
    }
    return x;
}

static void run_task(void *arg)
{
    hash_task *t = arg;
    t->result = hash_chain(t->seed, t->rounds);
    gopy_waitgroup_done(t->finished);
}

/* Run all tasks with procs Ps; return the elapsed ns and set *checksum. */
static int64_t fan_out(hash_task tasks[TASKS], gopy_waitgroup *finished, int procs,
                       uint64_t *checksum)
{
    gopy_gomaxprocs(procs);
    int64_t start = bench_now_ns();
    gopy_waitgroup_add(finished, TASKS);
    for (int i = 0; i < TASKS; i++)
        bench_go(run_task, &tasks[i]);
    gopy_waitgroup_wait(finished);
    int64_t elapsed = bench_now_ns() - start;

    *checksum = 0;
    for (int i = 0; i < TASKS; i++)
        *checksum += tasks[i].result;
    return elapsed;
}

int c6_fanout(bool quick)
{
    const int64_t rounds = quick ? 100000 : 1000000;
    gopy_waitgroup *finished = gopy_waitgroup_make();
    hash_task tasks[TASKS];
    for (int i = 0; i < TASKS; i++)
        tasks[i] = (hash_task){.seed = (uint64_t)i + 1, .rounds = rounds, .finished = finished};

    const int default_procs = gopy_gomaxprocs(0);
    uint64_t one_proc_sum, all_procs_sum;
    int64_t one_proc_ns = fan_out(tasks, finished, 1, &one_proc_sum);
    int64_t all_procs_ns = fan_out(tasks, finished, default_procs, &all_procs_sum);
    gopy_gomaxprocs(default_procs);

    bench_result r = {.workload = "C6",
                      .desc = "CPU-bound fan-out, speedup over GOMAXPROCS=1",
                      .unit = "x", .value = (double)one_proc_ns / all_procs_ns,
                      .ops = TASKS * rounds};
    snprintf(r.extra, sizeof r.extra,
             "\"procs\":%d,\"ns_1proc\":%" PRId64 ",\"ns_allprocs\":%" PRId64
             ",\"checksum\":\"%016" PRIx64 "\"",
             default_procs, one_proc_ns, all_procs_ns, all_procs_sum);
    if (one_proc_sum != all_procs_sum)
        snprintf(r.failure, sizeof r.failure, "checksums differ between the two runs");

    gopy_waitgroup_free(finished);
    return bench_report(&r);
}
