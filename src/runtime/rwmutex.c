/*
 * rwmutex.c -- Go's sync.RWMutex.
 *
 *   w             a Mutex held by the writer (pending or active)
 *   reader_count  readers holding or wanting the lock; minus 2^30 while a
 *                 writer is pending or active (so RLock sees < 0 and waits)
 *   reader_wait   readers the pending writer still waits for to leave
 *   writer_sem    the writer sleeps here until reader_wait reaches 0
 *   reader_sem    readers that arrived after the writer sleep here
 *
 * Writer preference: from the moment a writer subtracts 2^30, new readers
 * queue behind it, so a stream of readers cannot starve it (and a
 * recursive RLock can deadlock, as in Go).
 *
 * Unlike Go, unlock and runlock of a lock not held leave the state
 * untouched and report GOPY_ENOTLOCKED (Python raises and goes on): both
 * check and change the count in one CAS.
 */
#include "sync.h"

#include <stdlib.h>

enum { MAX_READERS = 1 << 30 };

struct gopy_rwmutex {
    gopy_mutex w;
    _Atomic int32_t reader_count;
    _Atomic int32_t reader_wait;
    rt_sema writer_sem;
    rt_sema reader_sem;
    /* unlock / runlock calls that may still touch rw after letting others
     * in (the last of whom may free it): the free waits for 0. */
    _Atomic uint32_t busy;
    sync_life life;
};

gopy_rwmutex *gopy_rwmutex_make(void)
{
    gopy_rwmutex *rw = calloc(1, sizeof *rw);
    if (rw == NULL)
        return NULL;
    sema_init(&rw->w.sema);
    sema_init(&rw->writer_sem);
    sema_init(&rw->reader_sem);
    sync_life_init(&rw->life, rw, &rw->busy);
    return rw;
}

void gopy_rwmutex_free(gopy_rwmutex *rw)
{
    if (rw != NULL)
        sync_life_release(&rw->life);
}

/* ---- readers ------------------------------------------------------------ */

/* A reader that gave up waiting behind a writer is still counted in
 * reader_count, and the writer's Unlock will release reader_sem for it:
 * its stand-in takes that release and leaves as a reader would. */
static void rlock_finish_abandoned(void *arg)
{
    gopy_rwmutex *rw = *(gopy_rwmutex **)arg;
    while (sema_acquire(&rw->reader_sem, false, GOPY_WAIT_RWMUTEX_R, rw) != GOPY_OK) {
    }
    (void)gopy_rt_rwmutex_runlock(rw);
}

int gopy_rt_rwmutex_rlock(gopy_rwmutex *rw)
{
    if (atomic_fetch_add(&rw->reader_count, 1) + 1 >= 0)
        return GOPY_OK;
    /* A writer is pending: wait until its Unlock lets us in. */
    int r = sema_acquire(&rw->reader_sem, false, GOPY_WAIT_RWMUTEX_R, rw);
    if (r != GOPY_OK)
        sync_finish_detached(&rw->life, rlock_finish_abandoned, &rw, sizeof rw);
    return r;
}

bool gopy_rwmutex_tryrlock(gopy_rwmutex *rw)
{
    int32_t c = atomic_load(&rw->reader_count);
    do {
        if (c < 0)
            return false; /* a writer holds it or waits */
    } while (!atomic_compare_exchange_weak(&rw->reader_count, &c, c + 1));
    return true;
}

int gopy_rt_rwmutex_runlock(gopy_rwmutex *rw)
{
    int32_t c = atomic_load(&rw->reader_count);
    /* Fast path: no writer pending, the CAS is our last touch of rw. */
    while (c > 0) {
        if (atomic_compare_exchange_weak(&rw->reader_count, &c, c - 1))
            return GOPY_OK;
    }
    atomic_fetch_add(&rw->busy, 1);
    int32_t r;
    do {
        /* No reader: 0 without a writer, -2^30 with one. */
        if (c == 0 || c == -MAX_READERS) {
            atomic_fetch_sub(&rw->busy, 1);
            return GOPY_ENOTLOCKED;
        }
        r = c - 1;
    } while (!atomic_compare_exchange_weak(&rw->reader_count, &c, r));
    /* r < 0: a writer is pending; if we were one of the readers it waits
     * for, the last of them lets it in.  (A reader that arrived after the
     * writer was let in by its Unlock, which made the count >= 0 again.) */
    if (r < 0 && atomic_fetch_sub(&rw->reader_wait, 1) - 1 == 0)
        sema_release(&rw->writer_sem, false);
    atomic_fetch_sub(&rw->busy, 1);
    return GOPY_OK;
}

/* ---- writers ------------------------------------------------------------ */

/* A writer that gave up waiting for readers to leave holds w and has
 * announced itself: its stand-in waits for them, then unlocks. */
static void lock_finish_abandoned(void *arg)
{
    gopy_rwmutex *rw = *(gopy_rwmutex **)arg;
    while (sema_acquire(&rw->writer_sem, false, GOPY_WAIT_RWMUTEX_W, rw) != GOPY_OK) {
    }
    (void)gopy_rt_rwmutex_unlock(rw);
}

int gopy_rt_rwmutex_lock(gopy_rwmutex *rw)
{
    /* First, win against other writers. */
    int r = gopy_rt_mutex_lock(&rw->w);
    if (r != GOPY_OK)
        return r;
    /* Announce ourselves to readers; r = active readers then. */
    int32_t readers = atomic_fetch_sub(&rw->reader_count, MAX_READERS);
    /* Wait for those readers to leave (each RUnlock decrements
     * reader_wait; some may have done so before we add). */
    if (readers != 0 && atomic_fetch_add(&rw->reader_wait, readers) + readers != 0) {
        r = sema_acquire(&rw->writer_sem, false, GOPY_WAIT_RWMUTEX_W, rw);
        if (r != GOPY_OK)
            sync_finish_detached(&rw->life, lock_finish_abandoned, &rw, sizeof rw);
    }
    return r;
}

bool gopy_rwmutex_trylock(gopy_rwmutex *rw)
{
    if (!gopy_mutex_trylock(&rw->w))
        return false;
    int32_t none = 0;
    if (!atomic_compare_exchange_strong(&rw->reader_count, &none, -MAX_READERS)) {
        (void)gopy_rt_mutex_unlock(&rw->w);
        return false;
    }
    return true;
}

int gopy_rt_rwmutex_unlock(gopy_rwmutex *rw)
{
    atomic_fetch_add(&rw->busy, 1);
    int32_t c = atomic_load(&rw->reader_count);
    int32_t r;
    do {
        /* >= 0: no writer announced. */
        if (c >= 0) {
            atomic_fetch_sub(&rw->busy, 1);
            return GOPY_ENOTLOCKED;
        }
        r = c + MAX_READERS;
    } while (!atomic_compare_exchange_weak(&rw->reader_count, &c, r));
    /* r readers arrived while we held it and wait on reader_sem: let them
     * in (they count as active now), then let other writers at w. */
    for (int32_t k = 0; k < r; k++)
        sema_release(&rw->reader_sem, false);
    int status = gopy_rt_mutex_unlock(&rw->w);
    atomic_fetch_sub(&rw->busy, 1);
    return status;
}

/* ---- the C API: misuse is fatal, interruptions retried ------------------- */

void gopy_rwmutex_lock(gopy_rwmutex *rw)
{
    while (gopy_rt_rwmutex_lock(rw) != GOPY_OK) {
    }
}

void gopy_rwmutex_unlock(gopy_rwmutex *rw)
{
    if (gopy_rt_rwmutex_unlock(rw) != GOPY_OK)
        rt_throw("sync: Unlock of unlocked RWMutex");
}

void gopy_rwmutex_rlock(gopy_rwmutex *rw)
{
    while (gopy_rt_rwmutex_rlock(rw) != GOPY_OK) {
    }
}

void gopy_rwmutex_runlock(gopy_rwmutex *rw)
{
    if (gopy_rt_rwmutex_runlock(rw) != GOPY_OK)
        rt_throw("sync: RUnlock of unlocked RWMutex");
}

/* ---- lockers ----------------------------------------------------------------- */

static void locker_mutex_lock(void *l)
{
    gopy_mutex_lock(l);
}

static void locker_mutex_unlock(void *l)
{
    gopy_mutex_unlock(l);
}

static void locker_rw_lock(void *l)
{
    gopy_rwmutex_lock(l);
}

static void locker_rw_unlock(void *l)
{
    gopy_rwmutex_unlock(l);
}

static void locker_rw_rlock(void *l)
{
    gopy_rwmutex_rlock(l);
}

static void locker_rw_runlock(void *l)
{
    gopy_rwmutex_runlock(l);
}

gopy_locker gopy_mutex_locker(gopy_mutex *m)
{
    return (gopy_locker){locker_mutex_lock, locker_mutex_unlock, m};
}

gopy_locker gopy_rwmutex_locker(gopy_rwmutex *rw)
{
    return (gopy_locker){locker_rw_lock, locker_rw_unlock, rw};
}

gopy_locker gopy_rwmutex_rlocker(gopy_rwmutex *rw)
{
    return (gopy_locker){locker_rw_rlock, locker_rw_runlock, rw};
}
