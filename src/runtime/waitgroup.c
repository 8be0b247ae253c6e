/*
 * waitgroup.c -- Go's sync.WaitGroup: one 64-bit state, the counter in
 * the high 32 bits and the number of waiters in the low 32, plus a
 * semaphore the waiters sleep on.  When the counter drops to 0 with
 * waiters, the state is reset to 0 and each waiter gets one release.
 *
 * Misuse Go panics on, reported here: a negative counter; an Add from
 * 0 racing a Wait; a new round of Adds before the previous Waits
 * returned.
 */
#include "sync.h"

#include <stdlib.h>

struct gopy_waitgroup {
    _Atomic uint64_t state;
    rt_sema sema;
};

static int32_t wg_counter(uint64_t state)
{
    return (int32_t)(uint32_t)(state >> 32);
}

static uint32_t wg_waiters(uint64_t state)
{
    return (uint32_t)state;
}

gopy_waitgroup *gopy_waitgroup_make(void)
{
    gopy_waitgroup *wg = calloc(1, sizeof *wg);
    if (wg != NULL)
        sema_init(&wg->sema);
    return wg;
}

void gopy_waitgroup_free(gopy_waitgroup *wg)
{
    if (wg == NULL)
        return;
    /* The Done that released the last Wait may still be in sema_release. */
    sync_await_idle(&wg->sema.busy);
    free(wg);
}

int64_t gopy_rt_waitgroup_count(gopy_waitgroup *wg)
{
    return wg_counter(atomic_load(&wg->state));
}

int gopy_rt_waitgroup_add(gopy_waitgroup *wg, int64_t delta)
{
    uint64_t state = atomic_load(&wg->state);
    int64_t v;
    /* A CAS loop rather than Go's plain add, so that a bad delta leaves
     * the group as it was (Python code may catch the error and go on). */
    do {
        v = (int64_t)wg_counter(state) + delta;
        if (v < 0)
            return GOPY_ENEGATIVE;
        if (v > INT32_MAX)
            return GOPY_ENEGATIVE;
    } while (!atomic_compare_exchange_weak(
        &wg->state, &state, ((uint64_t)(uint32_t)v << 32) | wg_waiters(state)));
    uint32_t w = wg_waiters(state);
    if (w != 0 && delta > 0 && v == delta)
        return GOPY_EREUSE; /* Add from 0 while Waits are pending */
    if (v > 0 || w == 0)
        return GOPY_OK;
    /* Counter 0 with waiters: nobody may change the state meanwhile. */
    uint64_t now = ((uint64_t)0 << 32) | w;
    if (!atomic_compare_exchange_strong(&wg->state, &now, 0))
        return GOPY_EREUSE;
    for (; w != 0; w--)
        sema_release(&wg->sema, false);
    return GOPY_OK;
}

int gopy_rt_waitgroup_wait(gopy_waitgroup *wg)
{
    uint64_t state = atomic_load(&wg->state);
    for (;;) {
        if (wg_counter(state) == 0)
            return GOPY_OK;
        if (atomic_compare_exchange_weak(&wg->state, &state, state + 1))
            break;
    }
    int r = sema_acquire(&wg->sema, false, GOPY_WAIT_WAITGROUP, wg);
    if (r != GOPY_OK) {
        /* A foreign thread gave up.  If the counter is still above 0, take
         * our waiter count back; if it reached 0, the release meant for us
         * is on its way: take it so it is not left for a later round. */
        state = atomic_load(&wg->state);
        for (;;) {
            if (wg_counter(state) == 0) {
                while (sema_acquire(&wg->sema, false, GOPY_WAIT_WAITGROUP, wg) != GOPY_OK) {
                }
                break;
            }
            if (atomic_compare_exchange_weak(&wg->state, &state, state - 1))
                break;
        }
        return r;
    }
    /* Add reset the state to 0 before releasing us; anything else means a
     * new round began before this Wait returned. */
    if (atomic_load(&wg->state) != 0)
        return GOPY_EREUSE;
    return GOPY_OK;
}

void gopy_waitgroup_add(gopy_waitgroup *wg, int delta)
{
    int r = gopy_rt_waitgroup_add(wg, delta);
    if (r == GOPY_ENEGATIVE)
        rt_throw("sync: negative WaitGroup counter");
    if (r != GOPY_OK)
        rt_throw("sync: WaitGroup misuse: Add called concurrently with Wait");
}

void gopy_waitgroup_done(gopy_waitgroup *wg)
{
    gopy_waitgroup_add(wg, -1);
}

void gopy_waitgroup_wait(gopy_waitgroup *wg)
{
    int r;
    do
        r = gopy_rt_waitgroup_wait(wg);
    while (r == GOPY_EINTR);
    if (r == GOPY_EREUSE)
        rt_throw("sync: WaitGroup is reused before previous Wait has returned");
}
