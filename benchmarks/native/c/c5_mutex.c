/* C5: mutex lock + unlock, uncontended (one goroutine) and contended (4 goroutines). */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>

#define CONTENDERS 4

typedef struct {
    gopy_mutex *mu;
    int64_t count; /* guarded by mu */
    int64_t increments_each;
    gopy_waitgroup *finished;
} counter;

static void locked_increments(counter *c)
{
    for (int64_t i = 0; i < c->increments_each; i++) {
        gopy_mutex_lock(c->mu);
        c->count++;
        gopy_mutex_unlock(c->mu);
    }
}

static void contender(void *arg)
{
    counter *c = arg;
    locked_increments(c);
    gopy_waitgroup_done(c->finished);
}

static int report_counter(const char *workload, const char *desc, const counter *c,
                          int64_t ops, int64_t elapsed)
{
    bench_result r = {.workload = workload, .desc = desc, .unit = "ns/op",
                      .value = (double)elapsed / ops, .ops = ops};
    if (c->count != ops)
        snprintf(r.failure, sizeof r.failure, "count %" PRId64 ", want %" PRId64, c->count, ops);
    return bench_report(&r);
}

int c5_mutex(bool quick)
{
    int failures = 0;
    counter c = {.mu = gopy_mutex_make(), .finished = gopy_waitgroup_make()};

    c.increments_each = quick ? 1000000 : 10000000;
    int64_t start = bench_now_ns();
    locked_increments(&c);
    failures += report_counter("C5-uncontended", "mutex lock + unlock, uncontended", &c,
                               c.increments_each, bench_now_ns() - start);

    c.count = 0;
    c.increments_each = quick ? 50000 : 500000;
    start = bench_now_ns();
    gopy_waitgroup_add(c.finished, CONTENDERS);
    for (int i = 0; i < CONTENDERS; i++)
        bench_go(contender, &c);
    gopy_waitgroup_wait(c.finished);
    failures += report_counter("C5-contended", "mutex lock + unlock, 4 goroutines contending",
                               &c, CONTENDERS * c.increments_each, bench_now_ns() - start);

    gopy_mutex_free(c.mu);
    gopy_waitgroup_free(c.finished);
    return failures;
}
