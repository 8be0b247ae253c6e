/*
 * bench.c -- gopy's Map layout (Go 1.24's hash trie, src/runtime/map.c)
 * against Go 1.9-1.23's read/dirty layout (readdirty.c), same callbacks,
 * same EBR, on read-mostly and mixed loads, 1 and 2 threads.  The figures
 * and the decision are in docs/decisions.md ("Map layout").
 *
 *   make -C src/runtime internal && cc -O2 -std=c11 -Iinclude \
 *      benchmarks/native/map_layout/bench.c \
 *      benchmarks/native/map_layout/readdirty.c build/libgopyrt-internal.a \
 *      -lpthread -o build/map_layout && build/map_layout
 *      (readdirty.c calls the runtime's EBR: the internal archive)
 *
 * Each figure: CPU time of the worker threads / total operations, the
 * best of 7 runs, the two layouts taking turns.  CPU time rather than
 * wall time: on a shared machine the workers are preempted at random;
 * time spent spinning on contended cache lines and locks still counts.
 * Keys are small integers behind pointers with a hash callback; values are
 * either plain pointers (no retain/release) or counted (retain/release
 * callbacks, as Python objects are).
 */
#define _POSIX_C_SOURCE 200809L

#include "readdirty.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { KEYS = 1024, REPS = 7, MAX_THREADS = 8 };

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t k_hash(const void *key, void *ctx)
{
    (void)ctx;
    return (uint64_t)(uintptr_t)key * 0x9E3779B97F4A7C15ull;
}

static bool k_equal(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    return a == b;
}

static _Atomic long refs; /* what counted values would do to refcounts */

static void v_retain(void *p, void *ctx)
{
    (void)p, (void)ctx;
    atomic_fetch_add_explicit(&refs, 1, memory_order_relaxed);
}

static void v_release(void *p, void *ctx)
{
    (void)p, (void)ctx;
    atomic_fetch_sub_explicit(&refs, 1, memory_order_relaxed);
}

static const gopy_map_type plain = {k_hash, k_equal, NULL, NULL, NULL, NULL};
static const gopy_map_type counted = {k_hash, k_equal, NULL, v_retain, v_release, NULL};

#define KEY(k) ((void *)(uintptr_t)((k) + 1))
#define VAL(v) ((void *)(uintptr_t)((v) + 1))

/* One implementation behind a common face. */
typedef struct {
    const char *name;
    void *(*make)(const gopy_map_type *);
    bool (*load)(void *, const void *, void **);
    void (*store)(void *, void *, void *);
    void (*del)(void *, const void *);
    void (*release)(void *, void *);
    void (*destroy)(void *);
} impl;

static void *trie_make(const gopy_map_type *t) { return gopy_map_make(t); }
static bool trie_load(void *m, const void *k, void **v) { return gopy_map_load(m, k, v); }
static void trie_store(void *m, void *k, void *v) { gopy_map_store(m, k, v); }
static void trie_del(void *m, const void *k) { gopy_map_delete(m, k); }
static void trie_free(void *m) { gopy_map_free(m); }
static void *rd_make(const gopy_map_type *t) { return rd_map_make(t); }
static bool rd_load(void *m, const void *k, void **v) { return rd_map_load(m, k, v); }
static void rd_store(void *m, void *k, void *v) { rd_map_store(m, k, v); }
static void rd_del(void *m, const void *k) { rd_map_delete(m, k); }
static void rd_free(void *m) { rd_map_free(m); }

static const impl impls[] = {
    {"hash trie (1.24)", trie_make, trie_load, trie_store, trie_del, NULL, trie_free},
    {"read/dirty (1.9)", rd_make, rd_load, rd_store, rd_del, NULL, rd_free},
};

/* The mix of one workload, in per-mille of operations. */
typedef struct {
    const char *name;
    int load, store, del; /* the rest: load of a missing key */
    int key_range;        /* keys touched: 0..key_range-1 (preloaded: 0..KEYS-1) */
    bool fresh;           /* stores add new keys; loads read recent ones */
} workload;

static const workload workloads[] = {
    {"load hits (100% load)", 1000, 0, 0, KEYS, false},
    {"read-mostly (99% load, 1% store)", 990, 10, 0, KEYS, false},
    {"load misses (mostly absent keys)", 250, 0, 0, 4 * KEYS, false},
    {"mixed (50% load, 40% store, 10% delete)", 500, 400, 100, 2 * KEYS, false},
    {"growing (50% store of a new key, 50% load)", 500, 500, 0, KEYS, true},
};

typedef struct {
    const impl *im;
    const workload *w;
    void *m;
    const gopy_map_type *type;
    long ops;
    uint64_t seed;
    pthread_barrier_t *start;
    int64_t t_start, t_end;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    uint64_t x = a->seed;
    pthread_barrier_wait(a->start);
    a->t_start = cpu_ns();
    long fresh = 0; /* keys KEYS + (seed-based base) + 0, 1, 2... */
    long base = (long)(a->seed % 1000) * 100000000L;
    for (long i = 0; i < a->ops; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int dice = (int)(x % 1000);
        int k = (int)((x >> 20) % (uint64_t)a->w->key_range);
        void *v;
        if (a->w->fresh) {
            if (dice < a->w->store) {
                a->im->store(a->m, KEY(KEYS + base + fresh), VAL(i));
                fresh++;
            } else if (fresh > 0 && a->im->load(a->m, KEY(KEYS + base + fresh - 1 - k % fresh), &v) &&
                       a->type->release != NULL) {
                a->type->release(v, NULL);
            }
            continue;
        }
        if (dice < a->w->load) {
            if (a->im->load(a->m, KEY(k % KEYS), &v) && a->type->release != NULL)
                a->type->release(v, NULL);
        } else if (dice < a->w->load + a->w->store) {
            a->im->store(a->m, KEY(k), VAL(i));
        } else if (dice < a->w->load + a->w->store + a->w->del) {
            a->im->del(a->m, KEY(k));
        } else {
            if (a->im->load(a->m, KEY(KEYS + k), &v) && a->type->release != NULL)
                a->type->release(v, NULL);
        }
    }
    a->t_end = cpu_ns();
    return NULL;
}

static double run_once(const impl *im, const workload *w, const gopy_map_type *type,
                       int threads, long ops_each)
{
    void *m = im->make(type);
    for (int k = 0; k < KEYS; k++)
        im->store(m, KEY(k), VAL(k));
    /* Warm: let the read/dirty map promote its dirty table. */
    void *v;
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < KEYS; k++)
            if (im->load(m, KEY(k), &v) && type->release != NULL)
                type->release(v, NULL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    pthread_t t[MAX_THREADS];
    worker_arg args[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        args[i] = (worker_arg){im, w, m, type, ops_each, 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) + (uint64_t)i,
                               &start, 0, 0};
        pthread_create(&t[i], NULL, worker, &args[i]);
    }
    pthread_barrier_wait(&start);
    int64_t cpu = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        cpu += args[i].t_end - args[i].t_start;
    }
    double ns = (double)cpu / ((double)ops_each * threads);
    pthread_barrier_destroy(&start);
    im->destroy(m);
    long imbalance = atomic_exchange(&refs, 0);
    if (imbalance != 0)
        printf("  [%s: reference imbalance %ld]\n", im->name, imbalance);
    return ns;
}

int main(int argc, char **argv)
{
    long ops = argc > 1 ? atol(argv[1]) : 1000000;
    printf("%-42s %-9s %-8s %18s %18s\n", "workload", "values", "threads", impls[0].name,
           impls[1].name);
    for (size_t wi = 0; wi < sizeof workloads / sizeof *workloads; wi++) {
        for (int counted_values = 0; counted_values < 2; counted_values++) {
            for (int threads = 1; threads <= 2; threads++) {
                double best[2] = {1e30, 1e30};
                for (int rep = 0; rep < REPS; rep++) {
                    for (int ii = 0; ii < 2; ii++) {
                        double ns = run_once(&impls[ii], &workloads[wi],
                                             counted_values ? &counted : &plain, threads, ops);
                        best[ii] = ns < best[ii] ? ns : best[ii];
                    }
                }
                double *med = best;
                printf("%-42s %-9s %-8d %15.1f ns %15.1f ns\n", workloads[wi].name,
                       counted_values ? "counted" : "plain", threads, med[0], med[1]);
                fflush(stdout);
            }
        }
    }
    if (atomic_load(&refs) != 0)
        printf("reference imbalance: %ld\n", atomic_load(&refs));
    return 0;
}
