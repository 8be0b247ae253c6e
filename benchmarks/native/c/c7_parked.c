/*
 * C7: 100,000 goroutines parked in a receive on one channel: resident memory
 * per parked goroutine, then the cost per goroutine of waking them all with
 * one close and joining them.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static gopy_chan *never_sent;
static gopy_waitgroup *started, *exited;

/* Park until the channel is closed; mark the slot if the receive saw the close. */
static void park(void *slot)
{
    gopy_waitgroup_done(started);
    int64_t v;
    if (!gopy_chan_recv(never_sent, &v))
        *(unsigned char *)slot = 1;
    gopy_waitgroup_done(exited);
}

int c7_parked(bool quick)
{
    const int n = quick ? 10000 : 100000;
    unsigned char *slots = bench_alloc((size_t)n);
    never_sent = bench_chan(sizeof(int64_t), 0);
    started = gopy_waitgroup_make();
    exited = gopy_waitgroup_make();
    gopy_waitgroup_add(started, n);
    gopy_waitgroup_add(exited, n);

    int64_t rss_before = bench_rss_bytes();
    for (int i = 0; i < n; i++)
        bench_go(park, &slots[i]);
    gopy_waitgroup_wait(started);
    gopy_sleep(20 * 1000 * 1000); /* let the last ones reach the receive and park */
    int64_t rss_parked = bench_rss_bytes();

    int64_t start = bench_now_ns();
    gopy_chan_close(never_sent);
    gopy_waitgroup_wait(exited);
    int64_t wake_ns = bench_now_ns() - start;

    int64_t saw_close = 0;
    for (int i = 0; i < n; i++)
        saw_close += slots[i];
    char failure[200] = "";
    if (saw_close != n)
        snprintf(failure, sizeof failure, "%" PRId64 " of %d receives saw the close",
                 saw_close, n);

    bench_result memory = {.workload = "C7-memory", .desc = "RSS per parked goroutine",
                           .unit = "bytes/goroutine",
                           .value = (double)(rss_parked - rss_before) / n, .ops = n};
    bench_result wake = {.workload = "C7-wake",
                         .desc = "wake parked goroutines by one close + join, per goroutine",
                         .unit = "ns/op", .value = (double)wake_ns / n, .ops = n};
    snprintf(memory.failure, sizeof memory.failure, "%s", failure);
    snprintf(wake.failure, sizeof wake.failure, "%s", failure);

    gopy_chan_release(never_sent);
    gopy_waitgroup_free(started);
    gopy_waitgroup_free(exited);
    free(slots);
    return bench_report(&memory) + bench_report(&wake);
}
