/*
 * errgroup.c -- the runtime half of golang.org/x/sync/errgroup's Group (as
 * of x/sync v0.16): a WaitGroup for the goroutines, a limit that is a
 * channel of tokens (a goroutine holds one while it runs: a send takes a
 * slot, a receive frees it), and which failure came first.
 *
 * The host (the binding) starts each goroutine itself between
 * gopy_rt_errgroup_acquire and gopy_rt_errgroup_done, because only it
 * knows how a function fails; it keeps the first failure and cancels the
 * group's context with it (its objects must stay visible to its own
 * garbage collector), asking gopy_rt_errgroup_fail which failure was
 * first -- before done, as Go records the error before wg.Done.
 *
 * Invariants:
 *  - sem and active are guarded by lock.  active counts goroutines that
 *    hold a slot or are waiting for one; the limit may change (n >= 0)
 *    only while it is 0.  That is stricter than Go, which checks only
 *    the tokens of the current limit and lets a goroutine started before
 *    SetLimit return its token to the new channel (and block there).
 *  - Each goroutine frees its slot on the channel it took it from (the
 *    slot it was given), so removing the limit (n < 0) while goroutines
 *    are active is safe, as in Go.
 *  - failed goes from false to true once, by the first failure.
 */
#include "runtime.h"

#include <stdlib.h>

struct gopy_errgroup {
    rt_mutex lock;
    gopy_chan *sem; /* (lock) NULL: no limit; else tokens, cap = limit */
    int64_t active; /* (lock) */
    gopy_waitgroup *wg;
    _Atomic bool failed;
};

gopy_errgroup *gopy_rt_errgroup_new(void)
{
    gopy_errgroup *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    rt_mutex_init(&g->lock, LR_ERRGROUP);
    g->wg = gopy_waitgroup_make();
    if (g->wg == NULL) {
        free(g);
        return NULL;
    }
    return g;
}

void gopy_rt_errgroup_free(gopy_errgroup *g)
{
    if (g == NULL)
        return;
    if (g->sem != NULL)
        gopy_chan_release(g->sem);
    gopy_waitgroup_free(g->wg);
    free(g);
}

/* Give back what acquire took for a goroutine (its slot and its place in
 * active); the WaitGroup is the caller's business. */
static void release_slot(gopy_errgroup *g, gopy_chan *slot)
{
    if (slot != NULL) {
        bool ok;
        /* The token this goroutine put there is still buffered. */
        (void)gopy_rt_chan_recv(slot, NULL, &ok, false);
        gopy_chan_release(slot);
    }
    rt_lock(&g->lock);
    g->active--;
    rt_unlock(&g->lock);
}

int gopy_rt_errgroup_acquire(gopy_errgroup *g, bool block, gopy_chan **slot)
{
    *slot = NULL;
    rt_lock(&g->lock);
    gopy_chan *sem = g->sem;
    if (sem != NULL)
        gopy_chan_retain(sem);
    g->active++;
    rt_unlock(&g->lock);
    if (sem != NULL) {
        char token = 0; /* elem_size 0: never read */
        int r = gopy_rt_chan_send(sem, &token, block);
        if (r != GOPY_OK) {
            gopy_chan_release(sem);
            release_slot(g, NULL);
            return r;
        }
    }
    int r = gopy_rt_waitgroup_add(g->wg, 1);
    if (r != GOPY_OK) {
        if (r == GOPY_EREUSE)
            (void)gopy_rt_waitgroup_add(g->wg, -1); /* that one did count */
        release_slot(g, sem);
        return r;
    }
    *slot = sem;
    return GOPY_OK;
}

bool gopy_rt_errgroup_fail(gopy_errgroup *g)
{
    bool no = false;
    return atomic_compare_exchange_strong(&g->failed, &no, true);
}

void gopy_rt_errgroup_done(gopy_errgroup *g, gopy_chan *slot)
{
    release_slot(g, slot);
    (void)gopy_rt_waitgroup_add(g->wg, -1);
}

int gopy_rt_errgroup_wait(gopy_errgroup *g, bool block)
{
    if (!block)
        return gopy_rt_waitgroup_count(g->wg) != 0 ? GOPY_EAGAIN : GOPY_OK;
    return gopy_rt_waitgroup_wait(g->wg);
}

int64_t gopy_rt_errgroup_active(gopy_errgroup *g)
{
    rt_lock(&g->lock);
    int64_t n = g->active;
    rt_unlock(&g->lock);
    return n;
}

int gopy_rt_errgroup_set_limit(gopy_errgroup *g, int64_t n, int64_t *active)
{
    gopy_chan *sem = NULL;
    if (n >= 0 && (sem = gopy_chan_make(0, (size_t)n)) == NULL)
        return -1;
    rt_lock(&g->lock);
    *active = g->active;
    if (n >= 0 && g->active != 0) {
        rt_unlock(&g->lock);
        gopy_chan_release(sem);
        return GOPY_EAGAIN;
    }
    gopy_chan *old = g->sem;
    g->sem = sem;
    rt_unlock(&g->lock);
    if (old != NULL)
        gopy_chan_release(old);
    return GOPY_OK;
}
