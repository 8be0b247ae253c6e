/* C2: two goroutines pass a value back and forth over two unbuffered channels. */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>

typedef struct {
    gopy_chan *ping, *pong;
    gopy_waitgroup *exited;
} echo_args;

/* Answer every v with v + 1 until ping is closed. */
static void echo(void *arg)
{
    echo_args *a = arg;
    int64_t v;
    while (gopy_chan_recv(a->ping, &v)) {
        v++;
        gopy_chan_send(a->pong, &v);
    }
    gopy_waitgroup_done(a->exited);
}

int c2_pingpong(bool quick)
{
    const int64_t n = quick ? 30000 : 300000;
    echo_args a = {bench_chan(sizeof(int64_t), 0), bench_chan(sizeof(int64_t), 0),
                   gopy_waitgroup_make()};
    gopy_waitgroup_add(a.exited, 1);
    bench_go(echo, &a);

    int64_t wrong = 0;
    int64_t start = bench_now_ns();
    for (int64_t i = 0; i < n; i++) {
        int64_t reply = -1;
        gopy_chan_send(a.ping, &i);
        gopy_chan_recv(a.pong, &reply);
        wrong += reply != i + 1;
    }
    int64_t elapsed = bench_now_ns() - start;

    gopy_chan_close(a.ping);
    gopy_waitgroup_wait(a.exited);
    bench_result r = {.workload = "C2", .desc = "unbuffered ping-pong, round trip",
                      .unit = "ns/op", .value = (double)elapsed / n, .ops = n};
    if (wrong)
        snprintf(r.failure, sizeof r.failure, "%" PRId64 " wrong replies", wrong);

    gopy_chan_release(a.ping);
    gopy_chan_release(a.pong);
    gopy_waitgroup_free(a.exited);
    return bench_report(&r);
}
