/*
 * readheavy.c -- RWMutex against Mutex on a read-heavy load, from C:
 * 1,000 reader goroutines and 10 writer goroutines share a table.
 *
 *   make -C src/runtime && cc -O2 -std=c11 -Iinclude \
 *      benchmarks/native/rwmutex/readheavy.c build/libgopyrt.a -lpthread \
 *      -o build/readheavy && build/readheavy
 *
 * Two read sections:
 *   cpu    readers sum the table (64 words) -- parallel on GOMAXPROCS Ps
 *   park   readers also park 50 us inside the section (a lookup that
 *          waits, e.g. on a channel or a timer): parked readers keep
 *          sharing the RWMutex, but hold the Mutex alone
 * Prints the wall time of each (best of 5) and RWMutex's speedup.
 */
#define _POSIX_C_SOURCE 200809L

#include "gopy.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { READERS = 1000, WRITERS = 10, WORDS = 64, REPS = 5 };

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    bool rw;      /* RWMutex, else Mutex */
    bool park;    /* readers park inside the section */
    int reads;    /* per reader */
    int writes;   /* per writer */
    gopy_rwmutex *rwm;
    gopy_mutex *m;
    gopy_waitgroup *wg;
    int64_t table[WORDS]; /* guarded by the lock */
    _Atomic int64_t checksum;
} bench;

static void reader(void *arg)
{
    bench *b = arg;
    int64_t seen = 0;
    for (int i = 0; i < b->reads; i++) {
        if (b->rw)
            gopy_rwmutex_rlock(b->rwm);
        else
            gopy_mutex_lock(b->m);
        int64_t sum = 0;
        for (int k = 0; k < WORDS; k++)
            sum += b->table[k];
        if (b->park)
            gopy_sleep(50000);
        /* Writers keep every word equal: a torn view would show here. */
        if (sum != b->table[0] * WORDS) {
            fprintf(stderr, "readheavy: torn read %" PRId64 "\n", sum);
            abort();
        }
        seen += sum;
        if (b->rw)
            gopy_rwmutex_runlock(b->rwm);
        else
            gopy_mutex_unlock(b->m);
    }
    atomic_fetch_add(&b->checksum, seen);
    gopy_waitgroup_done(b->wg);
}

static void writer(void *arg)
{
    bench *b = arg;
    for (int i = 0; i < b->writes; i++) {
        if (b->rw)
            gopy_rwmutex_lock(b->rwm);
        else
            gopy_mutex_lock(b->m);
        for (int k = 0; k < WORDS; k++)
            b->table[k]++;
        if (b->rw)
            gopy_rwmutex_unlock(b->rwm);
        else
            gopy_mutex_unlock(b->m);
        gopy_sleep(100000); /* writers write now and then */
    }
    gopy_waitgroup_done(b->wg);
}

static double run(bool rw, bool park, int reads, int writes)
{
    bench *b = calloc(1, sizeof *b);
    b->rw = rw;
    b->park = park;
    b->reads = reads;
    b->writes = writes;
    b->rwm = gopy_rwmutex_make();
    b->m = gopy_mutex_make();
    b->wg = gopy_waitgroup_make();
    gopy_waitgroup_add(b->wg, READERS + WRITERS);
    int64_t t0 = now_ns();
    for (int i = 0; i < READERS; i++) {
        if (i % (READERS / WRITERS) == 0)
            gopy_go(writer, b);
        gopy_go(reader, b);
    }
    gopy_waitgroup_wait(b->wg);
    double s = (double)(now_ns() - t0) / 1e9;
    if (b->table[0] != (int64_t)WRITERS * writes) {
        fprintf(stderr, "readheavy: lost writes\n");
        abort();
    }
    gopy_rwmutex_free(b->rwm);
    gopy_mutex_free(b->m);
    gopy_waitgroup_free(b->wg);
    free(b);
    return s;
}

static double best(bool rw, bool park, int reads, int writes)
{
    double t = 1e30;
    for (int r = 0; r < REPS; r++) {
        double s = run(rw, park, reads, writes);
        t = s < t ? s : t;
    }
    return t;
}

int main(void)
{
    printf("%d readers, %d writers, GOMAXPROCS=%d\n", READERS, WRITERS, gopy_gomaxprocs(0));
    struct {
        const char *name;
        bool park;
        int reads, writes;
    } cases[] = {{"cpu  (2000 reads/reader, sum of 64 words)", false, 2000, 20},
                 {"park (10 reads/reader, 50 us parked inside)", true, 10, 10}};
    for (int c = 0; c < 2; c++) {
        double m = best(false, cases[c].park, cases[c].reads, cases[c].writes);
        double rw = best(true, cases[c].park, cases[c].reads, cases[c].writes);
        printf("%-46s Mutex %8.3f s   RWMutex %8.3f s   RWMutex %.1fx faster\n", cases[c].name,
               m, rw, m / rw);
    }
    return 0;
}
