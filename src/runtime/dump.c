/*
 * dump.c -- goroutine dumps from the runtime's side: usable in a signal
 * handler (no locks, no allocation, write(2) only), so a fatal error can
 * still say what every goroutine was doing.  The Python binding adds
 * Python tracebacks (gopy.runtime.stack()); this is what is left when
 * nothing can take the GIL.
 *
 * The walk over sched.allg is racy by design (the runtime is not
 * stopped): Gs are never freed, so every pointer followed stays valid.
 */
#include "runtime.h"

#include <string.h>
#include <unistd.h>

void rt_put(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void put_u64(int fd, uint64_t v)
{
    char buf[24];
    size_t n = 0;
    do {
        buf[sizeof buf - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    ssize_t w = write(fd, buf + sizeof buf - n, n);
    (void)w;
}

const char *rt_g_status_name(uint32_t st)
{
    switch (st) {
    case G_RUNNABLE:
        return "runnable";
    case G_RUNNING:
        return "running";
    case G_WAITING:
        return "waiting";
    default:
        return "idle";
    }
}

void rt_dump_goroutine(int fd, G *g, int64_t now)
{
    uint32_t st = atomic_load_explicit(&g->status, memory_order_relaxed);
    rt_put(fd, "goroutine ");
    put_u64(fd, (uint64_t)g->goid);
    rt_put(fd, " [");
    rt_put(fd, rt_g_status_name(st));
    if (st == G_WAITING) {
        rt_put(fd, ": ");
        rt_put(fd, gopy_rt_wait_reason_string(g->wait_reason));
        int64_t s = (now - g->wait_since) / 1000000000;
        if (s >= 1) {
            rt_put(fd, ", ");
            put_u64(fd, (uint64_t)s);
            rt_put(fd, " s");
        }
    }
    rt_put(fd, "]: ");
    if (g->kind == G_HOST) {
        rt_put(fd, "Python goroutine");
        if (g->home != NULL) {
            rt_put(fd, " on thread M");
            put_u64(fd, (uint64_t)g->home->id);
        }
    } else {
        rt_put(fd, "C goroutine");
    }
    if (g->lockedm != NULL)
        rt_put(fd, ", locked to its thread");
    rt_put(fd, "\n");
}

void rt_dump_goroutines(int fd, M *only_bound_to)
{
    int64_t now = rt_nanotime();
    for (G *g = atomic_load(&sched.allg); g != NULL; g = g->alllink) {
        uint32_t st = atomic_load_explicit(&g->status, memory_order_relaxed);
        if (st == G_DEAD || st == G_IDLE || g->in_free_list)
            continue;
        if (only_bound_to != NULL && g->home != only_bound_to && g->lockedm != only_bound_to)
            continue;
        rt_dump_goroutine(fd, g, now);
    }
}
