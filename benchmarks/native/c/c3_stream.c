/* C3: one producer streams to one consumer through a channel of capacity 1024. */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>

typedef struct {
    gopy_chan *stream;
    int64_t n;
} producer_args;

/* Send 0 .. n-1, then close. */
static void produce(void *arg)
{
    producer_args *a = arg;
    for (int64_t i = 0; i < a->n; i++)
        gopy_chan_send(a->stream, &i);
    gopy_chan_close(a->stream);
}

int c3_stream(bool quick)
{
    const int64_t n = quick ? 200000 : 2000000;
    producer_args a = {bench_chan(sizeof(int64_t), 1024), n};

    int64_t received = 0, out_of_order = 0, v;
    int64_t start = bench_now_ns();
    bench_go(produce, &a);
    while (gopy_chan_recv(a.stream, &v)) {
        out_of_order += v != received;
        received++;
    }
    int64_t elapsed = bench_now_ns() - start;

    bench_result r = {.workload = "C3", .desc = "Chan(1024) stream, per item",
                      .unit = "ns/op", .value = (double)elapsed / n, .ops = n};
    if (received != n || out_of_order)
        snprintf(r.failure, sizeof r.failure,
                 "received %" PRId64 " of %" PRId64 ", %" PRId64 " out of order",
                 received, n, out_of_order);

    /* The close that ended the loop was the producer's last use of the channel. */
    gopy_chan_release(a.stream);
    return bench_report(&r);
}
