/*
 * sema.c -- parking semaphore (see sema.h).  A waiter registers in nwait
 * before its last look at count; a releaser bumps count before looking at
 * nwait; both with seq_cst atomics, so no wakeup is lost.
 *
 * Also the helpers every sync type shares (sync.h).
 */
#include "sync.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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
    /* Busy from before the count can let a waiter through until after our
     * last touch of s: the waiter may return and free s meanwhile, and the
     * free waits for this (sync_await_idle). */
    atomic_fetch_add(&s->busy, 1);
    atomic_fetch_add(&s->count, 1);
    sudog *sg = NULL;
    if (atomic_load(&s->nwait) != 0) {
        rt_lock(&s->lock);
        if (atomic_load(&s->nwait) != 0) {
            sg = waitq_claim_first(&s->q);
            if (sg != NULL)
                atomic_fetch_sub(&s->nwait, 1);
        }
        rt_unlock(&s->lock);
    }
    /* A claimed waiter stays parked until goready: s stays alive. */
    if (sg != NULL) {
        if (handoff && cansemacquire(&s->count))
            sg->ticket = 1;
        goready(sg->g);
    }
    atomic_fetch_sub(&s->busy, 1);
}

/* ---- shared by the sync types (sync.h) ---------------------------------- */

void sync_await_idle(_Atomic uint32_t *busy)
{
    /* Whoever is busy runs without blocking: wait it out. */
    while (atomic_load(busy) != 0)
        rt_osyield();
}

void sync_life_release(sync_life *life)
{
    if (atomic_fetch_sub(&life->refs, 1) != 1)
        return;
    sync_await_idle(life->busy);
    free(life->obj);
}

typedef struct {
    void (*finish)(void *arg);
    sync_life *life;
    _Alignas(max_align_t) unsigned char arg[];
} detached_call;

static void run_detached(void *p)
{
    detached_call *call = p;
    call->finish(call->arg);
    sync_life_release(call->life);
    free(call);
}

void sync_finish_detached(sync_life *life, void (*finish)(void *arg), const void *arg,
                          size_t size)
{
    detached_call *call = malloc(sizeof *call + size);
    if (call != NULL) {
        call->finish = finish;
        call->life = life;
        memcpy(call->arg, arg, size);
        atomic_fetch_add(&life->refs, 1);
        if (gopy_go(run_detached, call) == 0)
            return;
        atomic_fetch_sub(&life->refs, 1); /* the caller still holds one */
        free(call);
    }
    /* No goroutine: finish here, where nothing may interrupt it again. */
    G *g = getg_or_foreign();
    int (*check)(void *) = g->interrupt;
    g->interrupt = NULL;
    finish((void *)arg);
    g->interrupt = check;
}
