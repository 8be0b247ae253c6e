/*
 * C4: a 4-case select with one random case ready.  The channels are
 * unbuffered and one producer sends on a random one of them at a time, so
 * exactly one case can proceed whenever the consumer selects.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>

#define N_CASES 4

typedef struct {
    gopy_chan *chans[N_CASES];
    int64_t n;
    gopy_waitgroup *exited;
} select_args;

/* Send i on the channel the shared random sequence picks, for i in 0 .. n-1. */
static void feed_random_channel(void *arg)
{
    select_args *a = arg;
    uint64_t rng = BENCH_RAND_SEED;
    for (int64_t i = 0; i < a->n; i++)
        gopy_chan_send(a->chans[(bench_rand(&rng) >> 32) % N_CASES], &i);
    gopy_waitgroup_done(a->exited);
}

int c4_select(bool quick)
{
    const int64_t n = quick ? 50000 : 500000;
    select_args a = {.n = n, .exited = gopy_waitgroup_make()};
    for (int k = 0; k < N_CASES; k++)
        a.chans[k] = bench_chan(sizeof(int64_t), 0);
    int64_t v;
    gopy_case cases[N_CASES];
    for (int k = 0; k < N_CASES; k++)
        cases[k] = (gopy_case){.chan = a.chans[k], .dir = GOPY_RECV, .elem = &v};
    gopy_waitgroup_add(a.exited, 1);

    /* The consumer replays the producer's random sequence to check each choice. */
    uint64_t rng = BENCH_RAND_SEED;
    int64_t wrong = 0;
    int64_t start = bench_now_ns();
    bench_go(feed_random_channel, &a);
    for (int64_t i = 0; i < n; i++) {
        int chosen = gopy_select(cases, N_CASES, true);
        int expected = (int)((bench_rand(&rng) >> 32) % N_CASES);
        wrong += chosen != expected || !cases[expected].ok || v != i;
    }
    int64_t elapsed = bench_now_ns() - start;

    gopy_waitgroup_wait(a.exited);
    bench_result r = {.workload = "C4", .desc = "select over 4 channels, one ready",
                      .unit = "ns/op", .value = (double)elapsed / n, .ops = n};
    if (wrong)
        snprintf(r.failure, sizeof r.failure, "%" PRId64 " wrong selects", wrong);

    for (int k = 0; k < N_CASES; k++)
        gopy_chan_release(a.chans[k]);
    gopy_waitgroup_free(a.exited);
    return bench_report(&r);
}
