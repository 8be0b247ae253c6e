/*
 * Shared scaffolding of the C1-C7 programs (docs/benchmarks.md): timing, RSS,
 * and the JSON line each measurement prints.  The Go twins in ../go print the
 * same lines, so native.py can compare the two runtimes figure by figure.
 */
#ifndef GOPY_NATIVE_BENCH_H
#define GOPY_NATIVE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gopy.h"

/* One measurement, printed as one JSON line:
 * {"workload":..,"desc":..,"unit":..,"value":..,"ops":..,"check":"ok",<extra>} */
typedef struct {
    const char *workload; /* "C2", or "C5-contended" when a workload measures twice */
    const char *desc;
    const char *unit;     /* "ns/op", "x" (a speedup), "bytes/goroutine" */
    double value;
    int64_t ops;
    char failure[200];    /* why the program's own check failed; "" if it passed */
    char extra[200];      /* further JSON members without braces, or "" */
} bench_result;

/* Print r; return 0 if its check passed, 1 if not. */
int bench_report(const bench_result *r);

int64_t bench_now_ns(void);    /* CLOCK_MONOTONIC */
int64_t bench_rss_bytes(void); /* resident set size, from /proc/self/statm */

/* Zeroed memory whose pages are already resident, so that touching it later
 * does not show up in an RSS delta. */
void *bench_alloc(size_t size);

/* gopy_go (gopy_go_small under --small) and gopy_chan_make that end the
 * program, with a message, when the runtime refuses: a benchmark cannot go
 * on without its goroutines. */
void bench_go(void (*fn)(void *arg), void *arg);
gopy_chan *bench_chan(size_t elem_size, size_t cap);

/* xorshift64*, the same generator as the Go programs' (seed: any nonzero). */
uint64_t bench_rand(uint64_t *state);
#define BENCH_RAND_SEED UINT64_C(0x9E3779B97F4A7C15)

/* The workloads.  Each runs in a goroutine, as a Go program's main does, and
 * returns how many of its checks failed. */
int c1_spawn(bool quick);
int c2_pingpong(bool quick);
int c3_stream(bool quick);
int c4_select(bool quick);
int c5_mutex(bool quick);
int c6_fanout(bool quick);
int c7_parked(bool quick);

#endif /* GOPY_NATIVE_BENCH_H */
