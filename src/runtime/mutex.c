/*
 * mutex.c -- Go's sync.Mutex.
 *
 * state: bit 0 locked, bit 1 woken (a waiter is awake, Unlock need wake
 * nobody), bit 2 starving, bits 3.. the number of waiters.
 *
 * Normal mode: waiters queue FIFO, but a woken waiter competes with new
 * arrivals (which are on the CPU already and usually win); a loser goes
 * back to the *front* of the queue.  Once a waiter has waited more than
 * 1 ms the mutex turns starving: Unlock hands it straight to the head
 * waiter and arrivals queue at the tail without trying.  It turns normal
 * again when a waiter gets it having waited < 1 ms or being the last one.
 */
#include "sync.h"

#include <stdlib.h>

enum {
    MUTEX_LOCKED = 1,
    MUTEX_WOKEN = 2,
    MUTEX_STARVING = 4,
    MUTEX_WAITER_SHIFT = 3,
};
static const int64_t STARVATION_NS = 1000000;

/* Spin only on a multicore with other Ps running and nothing queued
 * locally: a short spin then beats a park. */
static bool can_spin(int iter)
{
    if (iter >= 4 || gopy_rt_num_cpu() <= 1)
        return false;
    if (atomic_load(&sched.gomaxprocs) <= atomic_load(&sched.npidle) +
                                              atomic_load(&sched.nmspinning) + 1)
        return false;
    M *m = getm();
    if (m != NULL && m->p != NULL) {
        P *p = m->p;
        if (atomic_load(&p->runqtail) != atomic_load(&p->runqhead) ||
            atomic_load(&p->runnext) != NULL)
            return false;
    }
    return true;
}

/* A foreign thread gave up its wait (sema_acquire took nothing) and
 * leaves the waiter count.  Unless the count is 0: then an Unlock already
 * took it out -- it counted it as the waiter it woke, setting the woken
 * flag, and its release, finding nobody to claim, stays in the semaphore.
 * Taking it out again would wrap the count.  The flag and the release are
 * left as they are, consistent with each other: the next waiter to queue
 * takes the release at once and goes on as the woken one, clearing the
 * flag.  (With other waiters counted, an Unlock's decrement is for the
 * one it wakes, or for one about to queue that takes the release.) */
static void mutex_leave_waiters(gopy_mutex *m)
{
    int32_t old = atomic_load(&m->state);
    while ((old >> MUTEX_WAITER_SHIFT) != 0 &&
           !atomic_compare_exchange_weak(&m->state, &old, old - (1 << MUTEX_WAITER_SHIFT))) {
    }
}

static int mutex_lock_slow(gopy_mutex *m)
{
    int64_t wait_start = 0;
    bool starving = false, awoke = false;
    int iter = 0;
    int32_t old = atomic_load(&m->state);
    for (;;) {
        /* Spin while locked, not starving, and spinning makes sense;
         * announce ourselves (woken) so Unlock does not wake others. */
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED && can_spin(iter)) {
            if (!awoke && (old & MUTEX_WOKEN) == 0 && (old >> MUTEX_WAITER_SHIFT) != 0 &&
                atomic_compare_exchange_weak(&m->state, &old, old | MUTEX_WOKEN)) {
                awoke = true;
            }
            rt_procyield(30);
            iter++;
            old = atomic_load(&m->state);
            continue;
        }
        int32_t new = old;
        if ((old & MUTEX_STARVING) == 0)
            new |= MUTEX_LOCKED; /* arrivals do not take a starving mutex */
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) != 0)
            new += 1 << MUTEX_WAITER_SHIFT;
        if (starving && (old & MUTEX_LOCKED) != 0)
            new |= MUTEX_STARVING;
        if (awoke) {
            if ((new & MUTEX_WOKEN) == 0)
                rt_throw("sync: inconsistent mutex state");
            new &= ~MUTEX_WOKEN;
        }
        if (!atomic_compare_exchange_weak(&m->state, &old, new))
            continue;
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == 0)
            return GOPY_OK; /* locked it with the CAS */
        bool queue_lifo = wait_start != 0;
        if (wait_start == 0)
            wait_start = rt_nanotime();
        int r = sema_acquire(&m->sema, queue_lifo, GOPY_WAIT_MUTEX, m);
        if (r != GOPY_OK) {
            mutex_leave_waiters(m);
            return r;
        }
        starving = starving || rt_nanotime() - wait_start > STARVATION_NS;
        old = atomic_load(&m->state);
        if ((old & MUTEX_STARVING) != 0) {
            /* Handed to us: the lock is ours, fix the state up. */
            int32_t delta = MUTEX_LOCKED - (1 << MUTEX_WAITER_SHIFT);
            if (!starving || (old >> MUTEX_WAITER_SHIFT) == 1)
                delta -= MUTEX_STARVING; /* leave starvation mode */
            atomic_fetch_add(&m->state, delta);
            return GOPY_OK;
        }
        awoke = true;
        iter = 0;
    }
}

static void mutex_unlock_slow(gopy_mutex *m, int32_t new)
{
    if ((new & MUTEX_STARVING) == 0) {
        int32_t old = new;
        for (;;) {
            /* Nobody to wake, or someone is awake or got the lock. */
            if ((old >> MUTEX_WAITER_SHIFT) == 0 ||
                (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)) != 0)
                return;
            new = (old - (1 << MUTEX_WAITER_SHIFT)) | MUTEX_WOKEN;
            if (atomic_compare_exchange_weak(&m->state, &old, new)) {
                sema_release(&m->sema, false);
                return;
            }
        }
    }
    /* Starving: hand the mutex to the next waiter. */
    sema_release(&m->sema, true);
}

gopy_mutex *gopy_mutex_make(void)
{
    gopy_mutex *m = calloc(1, sizeof *m);
    if (m != NULL)
        sema_init(&m->sema);
    return m;
}

void gopy_mutex_free(gopy_mutex *m)
{
    if (m == NULL)
        return;
    sync_await_idle(&m->sema.busy);
    free(m);
}

int gopy_rt_mutex_lock(gopy_mutex *m)
{
    int32_t unlocked = 0;
    if (atomic_compare_exchange_strong(&m->state, &unlocked, MUTEX_LOCKED))
        return GOPY_OK;
    return mutex_lock_slow(m);
}

bool gopy_mutex_trylock(gopy_mutex *m)
{
    int32_t old = atomic_load(&m->state);
    if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) != 0)
        return false;
    return atomic_compare_exchange_strong(&m->state, &old, old | MUTEX_LOCKED);
}

/* Unlock with others about (old: the state seen, not just locked). */
static int mutex_unlock_contended(gopy_mutex *m, int32_t old)
{
    bool busy = false;
    for (;;) {
        if ((old & MUTEX_LOCKED) == 0) {
            if (busy)
                atomic_fetch_sub(&m->sema.busy, 1);
            return GOPY_ENOTLOCKED;
        }
        int32_t new = old - MUTEX_LOCKED;
        /* Will we touch m after releasing it?  Only to wake a waiter
         * (mutex_unlock_slow): in starvation mode, or with waiters and
         * nobody awake.  Others may then take the lock, let go and free m
         * meanwhile: count ourselves busy on m's semaphore first
         * (gopy_mutex_free waits for it).  Otherwise the CAS is our last
         * touch of m. */
        bool wakes = (new & MUTEX_STARVING) != 0 ||
                     ((new >> MUTEX_WAITER_SHIFT) != 0 && (new & MUTEX_WOKEN) == 0);
        if (wakes && !busy) {
            atomic_fetch_add(&m->sema.busy, 1);
            busy = true;
        }
        if (atomic_compare_exchange_weak(&m->state, &old, new)) {
            if (wakes)
                mutex_unlock_slow(m, new);
            break;
        }
    }
    if (busy)
        atomic_fetch_sub(&m->sema.busy, 1);
    return GOPY_OK;
}

int gopy_rt_mutex_unlock(gopy_mutex *m)
{
    /* Uncontended: the CAS is our last touch of m. */
    int32_t old = MUTEX_LOCKED;
    if (atomic_compare_exchange_strong(&m->state, &old, 0))
        return GOPY_OK;
    return mutex_unlock_contended(m, old);
}

void gopy_mutex_lock(gopy_mutex *m)
{
    while (gopy_rt_mutex_lock(m) != GOPY_OK) {
    }
}

void gopy_mutex_unlock(gopy_mutex *m)
{
    if (gopy_rt_mutex_unlock(m) != GOPY_OK)
        rt_throw("sync: unlock of unlocked mutex");
}
