/*
 * roundtrip.c -- the cost of one gopy_offload round trip from a C
 * goroutine: hand a no-op to a helper thread, park, be readied, resume.
 *
 *   make -C src/runtime && cc -O2 -std=c11 -Iinclude -Isrc/runtime \
 *      benchmarks/native/offload/roundtrip.c build/libgopyrt.a -lpthread \
 *      -o build/offload_roundtrip && build/offload_roundtrip
 *
 * (benchmarks/offload_roundtrip.py builds and runs it too.)  Prints µs per
 * round trip: warm (an idle helper takes the call; best and median of 7
 * runs of 20,000), cold (no helper left: one is made for the call, median
 * of 50), and a plain call from a thread for scale.
 */
#define _POSIX_C_SOURCE 200809L

#include "gopy.h"
#include "gopy_rt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { N = 20000, RUNS = 7, COLD = 50 };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void noop(void *arg)
{
    (void)arg;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t helpers(void)
{
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    return st.offload_threads;
}

static void bench(void *arg)
{
    gopy_chan *done = arg;
    for (int i = 0; i < 1000; i++)
        gopy_offload(noop, NULL);
    int64_t warm[RUNS];
    for (int r = 0; r < RUNS; r++) {
        int64_t t0 = now_ns();
        for (int i = 0; i < N; i++)
            gopy_offload(noop, NULL);
        warm[r] = (now_ns() - t0) / (N / 1000); /* ps per call: keeps 3 decimals of µs */
    }
    qsort(warm, RUNS, sizeof warm[0], cmp_i64);

    gopy_rt_offload_set_idle_timeout(1000000); /* 1 ms: helpers leave between calls */
    int64_t cold[COLD];
    for (int r = 0; r < COLD; r++) {
        while (helpers() != 0)
            gopy_sleep(2000000);
        int64_t t0 = now_ns();
        gopy_offload(noop, NULL);
        cold[r] = now_ns() - t0;
    }
    qsort(cold, COLD, sizeof cold[0], cmp_i64);

    printf("C goroutine, warm helper:  %.3f us (best), %.3f us (median of %d x %d)\n",
           warm[0] / 1e6, warm[RUNS / 2] / 1e6, RUNS, N);
    printf("C goroutine, new helper:   %.1f us (median of %d)\n", cold[COLD / 2] / 1e3, COLD);
    int64_t v = 1;
    gopy_chan_send(done, &v);
}

int main(void)
{
    gopy_chan *done = gopy_chan_make(sizeof(int64_t), 1);
    if (done == NULL || gopy_go(bench, done) != 0)
        return 1;
    int64_t v;
    gopy_chan_recv(done, &v);
    int64_t t0 = now_ns();
    for (int i = 0; i < N; i++)
        gopy_offload(noop, NULL);
    printf("plain thread (direct call): %.3f us\n", (now_ns() - t0) / 1e3 / N);
    gopy_chan_release(done);
    return 0;
}
