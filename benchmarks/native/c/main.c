/*
 * gopy_bench: C1-C7 against gopy's C runtime (include/gopy.h).
 *
 *     gopy_bench [--quick] [--small] [all | C1 ... C7]
 *
 * --quick (or GOPY_BENCH_QUICK=1 in the environment) runs reduced sizes;
 * --small starts the workloads' goroutines with gopy_go_small.
 * Exit status 1 if any workload's own check failed, 2 on a usage error.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* C7 comes first: its RSS delta means something only while the runtime has not
 * yet kept memory freed by other workloads (native.py runs each in its own process). */
static const struct {
    const char *name;
    int (*run)(bool quick);
} workloads[] = {
    {"C7", c7_parked}, {"C1", c1_spawn}, {"C2", c2_pingpong}, {"C3", c3_stream},
    {"C4", c4_select}, {"C5", c5_mutex}, {"C6", c6_fanout},
};
#define N_WORKLOADS (sizeof workloads / sizeof workloads[0])

int bench_report(const bench_result *r)
{
    bool ok = r->failure[0] == '\0';
    printf("{\"workload\":\"%s\",\"desc\":\"%s\",\"unit\":\"%s\",\"value\":%.6g,"
           "\"ops\":%" PRId64 ",\"check\":\"%s%s\"%s%s}\n",
           r->workload, r->desc, r->unit, r->value, r->ops, ok ? "ok" : "FAIL: ",
           r->failure, r->extra[0] ? "," : "", r->extra);
    fflush(stdout);
    return ok ? 0 : 1;
}

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t bench_rss_bytes(void)
{
    long size_pages = 0, resident_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &size_pages, &resident_pages) != 2) {
        fprintf(stderr, "gopy_bench: cannot read /proc/self/statm\n");
        _Exit(1);
    }
    fclose(f);
    return (int64_t)resident_pages * sysconf(_SC_PAGESIZE);
}

void *bench_alloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "gopy_bench: out of memory\n");
        _Exit(1);
    }
    memset(p, 0, size); /* not calloc: its fresh pages would not be resident yet */
    return p;
}

/* The exits below are _Exit: they may run inside a goroutine, and the runtime's
 * own exit handlers are not for that moment. */
/* --small: the workloads' goroutines run on small stacks (gopy_go_small);
 * their bodies, which print, do not. */
static bool small_stacks;

static void go_or_exit(int (*go)(void (*fn)(void *arg), void *arg), void (*fn)(void *arg),
                       void *arg)
{
    if (go(fn, arg) != 0) {
        fprintf(stderr, "gopy_bench: starting a goroutine failed: %s\n", strerror(errno));
        fflush(stdout);
        _Exit(1);
    }
}

void bench_go(void (*fn)(void *arg), void *arg)
{
    go_or_exit(small_stacks ? gopy_go_small : gopy_go, fn, arg);
}

gopy_chan *bench_chan(size_t elem_size, size_t cap)
{
    gopy_chan *c = gopy_chan_make(elem_size, cap);
    if (c == NULL) {
        fprintf(stderr, "gopy_bench: gopy_chan_make failed: %s\n", strerror(errno));
        fflush(stdout);
        _Exit(1);
    }
    return c;
}

uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(2685821657736338717);
}

/* A workload's body runs in a goroutine, like Go's main, rather than on this
 * plain thread: calls from a plain thread block the thread, which is not what
 * the Go programs measure. */
typedef struct {
    int (*run)(bool quick);
    bool quick;
    int failures;
    gopy_waitgroup *done;
} workload_goroutine;

static void run_workload(void *arg)
{
    workload_goroutine *w = arg;
    w->failures = w->run(w->quick);
    gopy_waitgroup_done(w->done);
}

static int run_in_goroutine(int (*run)(bool quick), bool quick)
{
    workload_goroutine w = {run, quick, 0, gopy_waitgroup_make()};
    gopy_waitgroup_add(w.done, 1);
    go_or_exit(gopy_go, run_workload, &w);
    gopy_waitgroup_wait(w.done);
    gopy_waitgroup_free(w.done);
    return w.failures;
}

int main(int argc, char **argv)
{
    const char *env_quick = getenv("GOPY_BENCH_QUICK");
    bool quick = env_quick != NULL && env_quick[0] != '\0' && strcmp(env_quick, "0") != 0;
    bool selected[N_WORKLOADS] = {false};
    bool any_selected = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
            continue;
        }
        if (strcmp(argv[i], "--small") == 0) {
            small_stacks = true;
            continue;
        }
        bool known = false;
        for (size_t w = 0; w < N_WORKLOADS; w++) {
            if (strcmp(argv[i], "all") == 0 || strcmp(argv[i], workloads[w].name) == 0) {
                selected[w] = any_selected = known = true;
            }
        }
        if (!known) {
            fprintf(stderr, "usage: %s [--quick] [--small] [all | C1 ... C7]\n", argv[0]);
            return 2;
        }
    }

    int failures = 0;
    for (size_t w = 0; w < N_WORKLOADS; w++) {
        if (selected[w] || !any_selected)
            failures += run_in_goroutine(workloads[w].run, quick);
    }
    return failures ? 1 : 0;
}
