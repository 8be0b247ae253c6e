/*
 * cond.c -- Go's sync.Cond on a ticket-based notify list (Go's
 * runtime.notifyList).
 *
 * A waiter takes a ticket (wait++) while it still holds the lock L, then
 * unlocks L and only then queues itself with its ticket.  signal notifies
 * the oldest ticket not yet notified (notify++), broadcast every ticket
 * handed out.  Because the ticket is taken before L is unlocked, a signal
 * sent after that (by someone who took L) is never lost: if its waiter has
 * not queued yet it sees, when it tries, that its ticket is notified.
 *
 *   wait     next ticket to hand out (atomic, no lock)
 *   notify   next ticket to notify; written under lock, read without it
 *            for the fast paths
 *   q        parked waiters, in queueing order (not strictly ticket order)
 *
 * Tickets compare with wrap-around (less()): fine while fewer than 2^31
 * waiters are outstanding.
 *
 * Foreign threads can give up a wait (Ctrl-C).  Their sudog is malloc'd;
 * one that gives up while still queued leaves it behind with g == NULL,
 * a tombstone the list now owns, so that the signal reaching that ticket
 * passes on to the next one instead of being lost.
 */
#include "sync.h"

#include <stdlib.h>

struct gopy_cond {
    gopy_locker l;
    _Atomic uint32_t wait;
    _Atomic uint32_t notify;
    rt_mutex lock; /* guards q and writes to notify */
    waitq q;
};

static inline bool less(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

gopy_cond *gopy_cond_make(gopy_locker l)
{
    gopy_cond *c = calloc(1, sizeof *c);
    if (c != NULL) {
        rt_mutex_init(&c->lock, LR_COND);
        c->l = l;
    }
    return c;
}

void gopy_cond_free(gopy_cond *c)
{
    if (c == NULL)
        return;
    /* Only tombstones can be left (nobody may be waiting). */
    sudog *s;
    while ((s = waitq_pop(&c->q)) != NULL)
        free(s);
    free(c);
}

uint32_t gopy_rt_cond_ticket(gopy_cond *c)
{
    return atomic_fetch_add(&c->wait, 1);
}

static bool cond_park_unlock(G *g, void *arg)
{
    (void)g;
    rt_unlock(&((gopy_cond *)arg)->lock);
    return true;
}

int gopy_rt_cond_wait_ticket(gopy_cond *c, uint32_t ticket, bool block)
{
    if (less(ticket, atomic_load(&c->notify)))
        return GOPY_OK;
    if (!block)
        return GOPY_EAGAIN;
    rt_init();
    G *g = getg_or_foreign();
    sudog on_stack = {0};
    sudog *sg = &on_stack;
    int (*check)(void *) = g->interrupt;
    if (g->kind == G_FOREIGN) {
        /* It may give up: its sudog must be able to outlive the call. */
        sg = calloc(1, sizeof *sg);
        if (sg == NULL) {
            sg = &on_stack;
            g->interrupt = NULL; /* cannot give up, then */
        }
    }
    rt_lock(&c->lock);
    if (less(ticket, atomic_load(&c->notify))) {
        rt_unlock(&c->lock);
        if (sg != &on_stack)
            free(sg);
        g->interrupt = check;
        return GOPY_OK;
    }
    g_prepare_wait(g);
    sg->g = g;
    sg->ticket = ticket;
    waitq_push(&c->q, sg);
    int r = gopark(cond_park_unlock, c, GOPY_WAIT_COND, c);
    g->interrupt = check;
    if (r != GOPY_OK) {
        /* Gave up (the claim is ours: no notifier will wake us). */
        rt_lock(&c->lock);
        bool tombstone = waitq_queued(&c->q, sg);
        if (tombstone)
            sg->g = NULL; /* the list owns it now */
        rt_unlock(&c->lock);
        if (!tombstone)
            free(sg); /* a notifier unqueued it and passed our signal on */
        return r;
    }
    if (sg != &on_stack)
        free(sg);
    return GOPY_OK;
}

void gopy_rt_cond_abandon_ticket(gopy_cond *c, uint32_t ticket)
{
    rt_lock(&c->lock);
    if (less(ticket, atomic_load(&c->notify))) {
        /* Notified: its notifier counted on us waking.  Pass it on (after
         * a broadcast that wakes nobody new, or somebody early: a
         * spurious wakeup, which Cond's callers tolerate). */
        rt_unlock(&c->lock);
        gopy_cond_signal(c);
        return;
    }
    sudog *tomb = calloc(1, sizeof *tomb);
    if (tomb != NULL) {
        tomb->ticket = ticket; /* g NULL: the signal reaching it goes on */
        waitq_push(&c->q, tomb);
        rt_unlock(&c->lock);
        return;
    }
    rt_unlock(&c->lock);
    /* No memory for a tombstone: wait for the ticket, uninterruptibly,
     * then pass the signal on. */
    G *g = getg_or_foreign();
    int (*check)(void *) = g->interrupt;
    g->interrupt = NULL;
    (void)gopy_rt_cond_wait_ticket(c, ticket, true);
    g->interrupt = check;
    gopy_cond_signal(c);
}

void gopy_cond_signal(gopy_cond *c)
{
    if (atomic_load(&c->wait) == atomic_load(&c->notify))
        return; /* nobody holds a ticket not yet notified */
    sudog *tombs = NULL;
    G *wake = NULL;
    rt_lock(&c->lock);
    while (wake == NULL) {
        uint32_t t = atomic_load(&c->notify);
        if (t == atomic_load(&c->wait))
            break;
        atomic_store(&c->notify, t + 1);
        sudog *s = c->q.first;
        while (s != NULL && s->ticket != t)
            s = s->next;
        if (s == NULL)
            break; /* its waiter has not queued yet: it will see notify */
        waitq_remove(&c->q, s);
        if (s->g == NULL) {
            s->next = tombs; /* given up: the signal goes to the next */
            tombs = s;
        } else if (g_claim(s->g)) {
            wake = s->g;
        }
        /* else its waiter is giving up right now, and frees s: the
         * signal goes to the next ticket. */
    }
    rt_unlock(&c->lock);
    while (tombs != NULL) {
        sudog *next = tombs->next;
        free(tombs);
        tombs = next;
    }
    if (wake != NULL)
        goready(wake); /* never under the lock */
}

void gopy_cond_broadcast(gopy_cond *c)
{
    if (atomic_load(&c->wait) == atomic_load(&c->notify))
        return;
    sudog *tombs = NULL, *woken = NULL;
    rt_lock(&c->lock);
    atomic_store(&c->notify, atomic_load(&c->wait));
    /* Claim under the lock: a waiter giving up must find its sudog
     * either queued or already claimed by us, never half-detached. */
    for (sudog *s; (s = waitq_pop(&c->q)) != NULL;) {
        if (s->g == NULL) {
            s->waitlink = tombs;
            tombs = s;
        } else if (g_claim(s->g)) {
            s->waitlink = woken;
            woken = s;
        }
    }
    rt_unlock(&c->lock);
    while (tombs != NULL) {
        sudog *next = tombs->waitlink;
        free(tombs);
        tombs = next;
    }
    while (woken != NULL) {
        /* Read before waking: the waiter frees or leaves its sudog. */
        sudog *next = woken->waitlink;
        G *g = woken->g;
        goready(g);
        woken = next;
    }
}

void gopy_cond_wait(gopy_cond *c)
{
    uint32_t t = gopy_rt_cond_ticket(c);
    c->l.unlock(c->l.l);
    /* A wait given up (deadlock, interrupt) returns as a spurious wakeup:
     * Cond's callers re-check their condition anyway. */
    (void)gopy_rt_cond_wait_ticket(c, t, true);
    c->l.lock(c->l.l);
}
