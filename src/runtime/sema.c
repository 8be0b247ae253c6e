/*
 * sema.c -- parking semaphore (see sema.h).  A waiter registers in nwait
 * before its last look at count; a releaser bumps count before looking at
 * nwait; both with seq_cst atomics, so no wakeup is lost.
 */
#include "sema.h"

static bool cansemacquire(_Atomic uint32_t *count)
{
    uint32_t v = atomic_load(count);
    while (v > 0) {
        if (atomic_compare_exchange_weak(count, &v, v - 1))
            return true;
    }
    return false;
}

static bool sema_park_unlock(G *g, void *arg)
{
    (void)g;
    rt_unlock(&((rt_sema *)arg)->lock);
    return true;
}

static void waitq_push_front(waitq *q, sudog *s)
{
    s->prev = NULL;
    s->next = q->first;
    if (q->first != NULL)
        q->first->prev = s;
    else
        q->last = s;
    q->first = s;
}

int sema_acquire(rt_sema *s, bool lifo, uint8_t reason, const void *obj)
{
    if (cansemacquire(&s->count))
        return GOPY_OK;
    rt_init();
    G *g = getg_or_foreign();
    for (;;) {
        rt_lock(&s->lock);
        atomic_fetch_add(&s->nwait, 1);
        if (cansemacquire(&s->count)) {
            atomic_fetch_sub(&s->nwait, 1);
            rt_unlock(&s->lock);
            return GOPY_OK;
        }
        g_prepare_wait(g);
        sudog sg = {.g = g};
        if (lifo)
            waitq_push_front(&s->q, &sg);
        else
            waitq_push(&s->q, &sg);
        int r = gopark(sema_park_unlock, s, reason, obj);
        if (r != 0) {
            rt_lock(&s->lock);
            waitq_remove(&s->q, &sg);
            atomic_fetch_sub(&s->nwait, 1);
            rt_unlock(&s->lock);
            return r;
        }
        /* The releaser took us off the queue and out of nwait. */
        if (sg.ticket != 0 || cansemacquire(&s->count))
            return GOPY_OK;
        lifo = true; /* woken but beaten to it: wait at the front */
    }
}

void sema_release(rt_sema *s, bool handoff)
{
    atomic_fetch_add(&s->count, 1);
    if (atomic_load(&s->nwait) == 0)
        return;
    rt_lock(&s->lock);
    if (atomic_load(&s->nwait) == 0) {
        rt_unlock(&s->lock);
        return;
    }
    sudog *sg = waitq_claim_first(&s->q);
    if (sg != NULL)
        atomic_fetch_sub(&s->nwait, 1);
    rt_unlock(&s->lock);
    if (sg == NULL)
        return;
    if (handoff && cansemacquire(&s->count))
        sg->ticket = 1;
    goready(sg->g);
}
