/*
 * timer.c -- per-P timer heaps (4-ary min-heaps on `when`), as in Go
 * 1.14+: a timer goes on the heap of the P of the M arming it (or of some
 * P in use, for Ms without one).  Due timers run in the scheduler of the
 * P's M, in thieves looking for work, and in the M that sleeps until the
 * next timer (proc.c).  Timer functions run on a scheduler stack: they
 * must be short and must not block.
 */
#include "runtime.h"

#include <stdlib.h>

enum { HEAP_ARY = 4 };

static void heap_set(P *p, int32_t i, rt_timer *t)
{
    p->timers[i] = t;
    t->idx = i;
}

static void heap_up(P *p, int32_t i)
{
    rt_timer *t = p->timers[i];
    while (i > 0) {
        int32_t parent = (i - 1) / HEAP_ARY;
        if (p->timers[parent]->when <= t->when)
            break;
        heap_set(p, i, p->timers[parent]);
        i = parent;
    }
    heap_set(p, i, t);
}

static void heap_down(P *p, int32_t i)
{
    rt_timer *t = p->timers[i];
    int32_t n = p->ntimers;
    for (;;) {
        int32_t c = i * HEAP_ARY + 1;
        if (c >= n)
            break;
        int32_t best = c;
        for (int32_t k = c + 1; k < c + HEAP_ARY && k < n; k++)
            if (p->timers[k]->when < p->timers[best]->when)
                best = k;
        if (p->timers[best]->when >= t->when)
            break;
        heap_set(p, i, p->timers[best]);
        i = best;
    }
    heap_set(p, i, t);
}

static void update_timer0(P *p)
{
    atomic_store(&p->timer0_when, p->ntimers > 0 ? p->timers[0]->when : 0);
}

/* p->timers_lock held. */
static void heap_push(P *p, rt_timer *t)
{
    if (p->ntimers == p->timers_cap) {
        int32_t cap = p->timers_cap ? p->timers_cap * 2 : 64;
        rt_timer **nt = realloc(p->timers, (size_t)cap * sizeof *nt);
        if (nt == NULL)
            rt_throw("out of memory"); /* nothing sane to do mid-scheduler */
        p->timers = nt;
        p->timers_cap = cap;
    }
    heap_set(p, p->ntimers++, t);
    heap_up(p, t->idx);
    atomic_store(&t->heap, p);
}

/* p->timers_lock held. */
static void heap_remove(P *p, int32_t i)
{
    rt_timer *t = p->timers[i];
    int32_t last = --p->ntimers;
    if (i != last) {
        rt_timer *moved = p->timers[last];
        heap_set(p, i, moved);
        heap_down(p, i);
        heap_up(p, moved->idx);
    }
    t->idx = -1;
    atomic_store(&t->heap, NULL);
}

void timer_init(rt_timer *t, void (*fn)(rt_timer *, void *, uint64_t), void *arg)
{
    t->when = 0;
    t->period = 0;
    t->fn = fn;
    t->arg = arg;
    atomic_store(&t->seq, 0);
    atomic_store(&t->heap, NULL);
    atomic_store(&t->running, 0);
    t->idx = -1;
}

void timer_add(rt_timer *t, int64_t when, int64_t period)
{
    P *p;
    for (;;) {
        p = rt_any_p();
        rt_lock(&p->timers_lock);
        /* rt_any_p's P may have been retired since (Ms without a P of
         * their own and foreign threads pick any P).  A retiring P turns
         * spare before its timers move under this lock, so seeing it not
         * spare here means the move, if any, is still to come and will
         * take t along; a timer pushed on a spare P would never run. */
        if (atomic_load(&p->status) != P_SPARE)
            break;
        rt_unlock(&p->timers_lock);
    }
    t->when = when;
    t->period = period;
    heap_push(p, t);
    bool earliest = t->idx == 0;
    update_timer0(p);
    rt_unlock(&p->timers_lock);
    if (earliest)
        runtime_wake_timer_sleeper(when);
}

bool timer_del(rt_timer *t)
{
    bool pending = false;
    for (;;) {
        P *p = atomic_load(&t->heap);
        if (p == NULL)
            break;
        rt_lock(&p->timers_lock);
        if (atomic_load(&t->heap) != p) {
            rt_unlock(&p->timers_lock);
            continue; /* moved to another P meanwhile */
        }
        heap_remove(p, t->idx);
        update_timer0(p);
        rt_unlock(&p->timers_lock);
        pending = true;
        break;
    }
    /* A firing in flight finishes before we return. */
    while (atomic_load(&t->running) != 0)
        rt_osyield();
    return pending;
}

int64_t timers_run(P *p, int64_t now)
{
    rt_lock(&p->timers_lock);
    while (p->ntimers > 0 && p->timers[0]->when <= now) {
        rt_timer *t = p->timers[0];
        uint64_t seq = atomic_load(&t->seq);
        /* Running before it leaves the heap: timer_del, reading heap
         * without the lock, must never see it in neither place (it would
         * return while fn is yet to run). */
        atomic_fetch_add(&t->running, 1);
        if (t->period > 0) {
            /* Next tick after now; ticks missed meanwhile are dropped. */
            t->when += t->period * (1 + (now - t->when) / t->period);
            heap_down(p, 0);
        } else {
            heap_remove(p, 0);
        }
        update_timer0(p);
        void (*fn)(rt_timer *, void *, uint64_t) = t->fn;
        void *arg = t->arg;
        rt_unlock(&p->timers_lock);
        fn(t, arg, seq);
        atomic_fetch_sub(&t->running, 1);
        rt_lock(&p->timers_lock);
    }
    int64_t next = p->ntimers > 0 ? p->timers[0]->when : 0;
    rt_unlock(&p->timers_lock);
    return next;
}

int64_t timers_next(void)
{
    int64_t next = 0;
    int32_t n = atomic_load(&sched.nallp);
    for (int32_t i = 0; i < n; i++) {
        P *p = sched.allp[i];
        int64_t w = atomic_load(&p->timer0_when);
        if (w != 0 && (next == 0 || w < next))
            next = w;
    }
    return next;
}

int64_t timers_count(void)
{
    int64_t total = 0;
    int32_t n = atomic_load(&sched.nallp);
    for (int32_t i = 0; i < n; i++) {
        P *p = sched.allp[i];
        rt_lock(&p->timers_lock);
        total += p->ntimers;
        rt_unlock(&p->timers_lock);
    }
    return total;
}

int64_t timers_move(P *from, P *to)
{
    /* Lock in address order (the lock order, runtime.h): two retiring Ps
     * may move into each other. */
    P *first = (uintptr_t)from < (uintptr_t)to ? from : to;
    P *second = first == from ? to : from;
    rt_lock(&first->timers_lock);
    rt_lock(&second->timers_lock);
    bool moved = from->ntimers > 0;
    while (from->ntimers > 0) {
        /* Not heap_remove: t->heap must go from `from` straight to `to`.
         * A NULL in between would tell timer_del (which reads it without
         * the lock) that t is not pending while it is, and the timer
         * would fire after being stopped -- or freed. */
        rt_timer *t = from->timers[--from->ntimers];
        heap_push(to, t);
    }
    update_timer0(from);
    update_timer0(to);
    int64_t when = moved ? atomic_load(&to->timer0_when) : 0;
    rt_unlock(&second->timers_lock);
    rt_unlock(&first->timers_lock);
    return when;
}

/* ---- sleep --------------------------------------------------------------- */

static void sleep_fire(rt_timer *t, void *arg, uint64_t seq)
{
    (void)t;
    (void)seq;
    G *g = arg;
    if (g_claim(g))
        goready(g);
}

/* Arm the sleep timer once the G is parked: a timer armed earlier could
 * fire before the G is off its stack. */
static bool sleep_arm(G *g, void *arg)
{
    timer_add(&g->sleep_timer, *(int64_t *)arg, 0);
    return true;
}

static int sleep_foreign(G *g, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - rt_nanotime();
        if (left <= 0)
            return GOPY_OK;
        if (g->interrupt != NULL && left > g->interrupt_poll_ns)
            left = g->interrupt_poll_ns;
        rt_note_clear(&g->note);
        g->wait_reason = GOPY_WAIT_SLEEP;
        g->wait_until = deadline;
        rt_note_sleep_for(&g->note, left);
        g->wait_reason = GOPY_WAIT_NONE;
        g->wait_until = 0;
        if (atomic_load(&g->wait_claim) == CLAIM_ABORTED)
            return g->abort_reason;
        if (g->interrupt != NULL && rt_nanotime() < deadline &&
            g->interrupt(g->interrupt_arg))
            return GOPY_EINTR;
    }
}

int gopy_rt_sleep(int64_t ns)
{
    if (ns <= 0)
        return GOPY_OK;
    rt_init();
    int64_t deadline = rt_nanotime() + ns;
    G *g = getg_or_foreign();
    if (g->kind == G_FOREIGN) {
        g_prepare_wait(g);
        return sleep_foreign(g, deadline);
    }
    g_prepare_wait(g);
    timer_init(&g->sleep_timer, sleep_fire, g);
    g->wait_until = deadline;
    gopark(sleep_arm, &deadline, GOPY_WAIT_SLEEP, NULL);
    g->wait_until = 0;
    return GOPY_OK;
}

void gopy_sleep(int64_t ns)
{
    gopy_rt_sleep(ns);
}
