/* C1: spawn and join 1,000,000 trivial goroutines (gopy_go + one waitgroup). */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static gopy_waitgroup *spawned;

/* The trivial goroutine: mark its slot, so the join can be checked. */
static void mark_slot(void *slot)
{
    *(unsigned char *)slot = 1;
    gopy_waitgroup_done(spawned);
}

int c1_spawn(bool quick)
{
    const int n = quick ? 100000 : 1000000;
    unsigned char *slots = bench_alloc((size_t)n);
    spawned = gopy_waitgroup_make();

    int64_t start = bench_now_ns();
    gopy_waitgroup_add(spawned, n);
    for (int i = 0; i < n; i++)
        bench_go(mark_slot, &slots[i]);
    gopy_waitgroup_wait(spawned);
    int64_t elapsed = bench_now_ns() - start;

    int64_t ran = 0;
    for (int i = 0; i < n; i++)
        ran += slots[i];
    bench_result r = {.workload = "C1", .desc = "spawn + join, per goroutine",
                      .unit = "ns/op", .value = (double)elapsed / n, .ops = n};
    if (ran != n)
        snprintf(r.failure, sizeof r.failure, "%" PRId64 " of %d goroutines ran", ran, n);

    gopy_waitgroup_free(spawned);
    free(slots);
    return bench_report(&r);
}
