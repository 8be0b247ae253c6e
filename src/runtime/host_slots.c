/*
 * host_slots.c -- GOMAXPROCS for host goroutines where the host lock does
 * not exclude (free-threaded CPython: "taking the GIL" only attaches a
 * thread state).  On a GIL build the GIL lets one M at a time run Python,
 * hands itself over when a goroutine blocks in a call that releases it,
 * and takes turns every switch interval.  Here GOMAXPROCS slots do the
 * same for up to GOMAXPROCS Ms at once, as Go's Ps cap running goroutines:
 *
 *  - an M takes a slot before it takes the host lock and gives it back
 *    after letting the lock go (host_find, locked_find); Ms wait for one
 *    in FIFO order, and a slot let go goes straight to the first waiter;
 *  - a goroutine inside a call that detached its thread from the host (a
 *    blocking or long C call: Py_BEGIN_ALLOW_THREADS) keeps no slot:
 *    sysmon, finding its M stuck in one goroutine and detached while Ms
 *    wait (Go's retake of a P in a syscall), revokes it and hands it on,
 *    and asks the goroutine to yield; the M then takes a slot again before
 *    running more (host_slot_should_yield);
 *  - an M that has held its slot a preemption slice while others wait lets
 *    it go at its next schedule, as the GIL's switch interval does; where a
 *    waiting M has goroutines of its own to run (started there, so no
 *    other M can), sysmon asks the holders' computing goroutines to yield
 *    to get there.  Ms that wait only to start new goroutines do not ask:
 *    the holders start those themselves as they switch, and preempting
 *    costs much on a free-threaded build (the hook's arming stops the
 *    world; W15 fell from 2.2x to 1.1-1.4x when every wait asked).
 *
 * A revoked M's goroutine runs on, over the cap, from the moment its call
 * returns until it yields (its next loop back-edge, gopy call or end):
 * the cap holds between schedules, as Go's holds between safe points.
 *
 * Lock order: slot_lock is taken with no other lock held, and takes none.
 */
#include "runtime.h"

bool host_slots_on(void)
{
    const struct gopy_host_hooks *h = sched.host_hooks;
    return h != NULL && h->detached != NULL;
}

/* Hand free slots to waiters, oldest first (slot_lock held).  Each gets
 * its slot before it is woken: a waiter never looks for one itself. */
static void slots_pass_locked(void)
{
    while (sched.slot_waiters != NULL && sched.slots_held < atomic_load(&sched.gomaxprocs)) {
        M *w = sched.slot_waiters;
        sched.slot_waiters = w->slot_link;
        if (sched.slot_waiters == NULL)
            sched.slot_waiters_tail = NULL;
        w->slot_link = NULL;
        sched.slots_held++;
        atomic_fetch_sub(&sched.slot_nwaiting, 1);
        atomic_store(&w->slot, SLOT_HELD);
        rt_note_wakeup(&w->slot_note);
    }
}

void host_slot_take(M *m, bool for_bound)
{
    if (!host_slots_on())
        return;
    /* host_slot_give (every release) left it NONE, revoked or not. */
    if (atomic_load(&m->slot) != SLOT_NONE)
        rt_throw("host_slot_take: M%lld has a slot already", (long long)m->id);
    rt_lock(&sched.slot_lock);
    if (sched.slot_waiters == NULL && sched.slots_held < atomic_load(&sched.gomaxprocs)) {
        sched.slots_held++;
        atomic_store(&m->slot, SLOT_HELD);
        rt_unlock(&sched.slot_lock);
    } else {
        rt_note_clear(&m->slot_note);
        m->slot_link = NULL;
        m->slot_for_bound = for_bound;
        if (sched.slot_waiters_tail != NULL)
            sched.slot_waiters_tail->slot_link = m;
        else
            sched.slot_waiters = m;
        sched.slot_waiters_tail = m;
        atomic_fetch_add(&sched.slot_nwaiting, 1);
        rt_unlock(&sched.slot_lock);
        sysmon_wake(); /* to watch the holders (host_slot_revoke) */
        rt_note_sleep(&m->slot_note);
        if (atomic_load(&m->slot) != SLOT_HELD)
            rt_throw("host_slot_take: M%lld woken without a slot", (long long)m->id);
    }
    m->slot_since = rt_nanotime();
}

/* One slot fewer held: the first waiter gets it. */
static void slot_release(void)
{
    rt_lock(&sched.slot_lock);
    if (sched.slots_held <= 0)
        rt_throw("host slots: a slot given back that nobody held");
    sched.slots_held--;
    slots_pass_locked();
    rt_unlock(&sched.slot_lock);
}

void host_slot_give(M *m)
{
    if (atomic_load_explicit(&m->slot, memory_order_relaxed) == SLOT_NONE)
        return; /* no slots (a GIL host), or none taken */
    uint8_t st = SLOT_HELD;
    if (atomic_compare_exchange_strong(&m->slot, &st, SLOT_NONE))
        slot_release();
    else if (st == SLOT_REVOKED)
        atomic_store(&m->slot, SLOT_NONE); /* sysmon passed it on already */
}

bool host_slot_should_yield(M *m)
{
    uint8_t st = atomic_load_explicit(&m->slot, memory_order_relaxed);
    if (st == SLOT_REVOKED)
        return true;
    if (st != SLOT_HELD || atomic_load_explicit(&sched.slot_nwaiting, memory_order_relaxed) == 0)
        return false;
    int64_t slice = atomic_load_explicit(&sched.preempt_ns, memory_order_relaxed);
    if (slice <= 0)
        slice = HOST_SLOT_SLICE_NS;
    return rt_nanotime() - m->slot_since >= slice;
}

void host_slots_resize(void)
{
    if (!host_slots_on())
        return;
    rt_lock(&sched.slot_lock);
    slots_pass_locked();
    rt_unlock(&sched.slot_lock);
}

bool host_slot_wanted_by_bound(void)
{
    if (atomic_load(&sched.slot_nwaiting) == 0)
        return false;
    bool wanted = false;
    rt_lock(&sched.slot_lock);
    for (M *w = sched.slot_waiters; w != NULL && !wanted; w = w->slot_link)
        wanted = w->slot_for_bound || atomic_load(&w->hostq_len) > 0;
    rt_unlock(&sched.slot_lock);
    return wanted;
}

bool host_slot_revoke(M *m)
{
    /* Not once the host stops: its thread states are freed after that
     * (the waiters are refused the host anyway).  A slot HELD was stored
     * after m's thread made its state (thread_start, program order, then
     * a release): the hook may read it. */
    if (atomic_load(&sched.host_stopping) || atomic_load(&sched.slot_nwaiting) == 0 ||
        atomic_load(&m->slot) != SLOT_HELD || !sched.host_hooks->detached(&m->host))
        return false;
    uint8_t st = SLOT_HELD;
    if (!atomic_compare_exchange_strong(&m->slot, &st, SLOT_REVOKED))
        return false; /* the M let it go meanwhile */
    slot_release();
    return true;
}
