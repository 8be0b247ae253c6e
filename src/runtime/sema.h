/*
 * sema.h -- a counting semaphore whose waiters park (Go's semacquire /
 * semrelease, with one wait queue per semaphore instead of Go's table
 * keyed by address: our sync objects are heap structs we own).
 */
#ifndef GOPY_RT_SEMA_H
#define GOPY_RT_SEMA_H

#include "runtime.h"

typedef struct {
    _Atomic uint32_t count;
    _Atomic uint32_t nwait; /* waiters queued or about to be */
    _Atomic uint32_t busy;  /* sema_release calls under way */
    rt_mutex lock;          /* guards q */
    waitq q;
} rt_sema;

/* Wait for count > 0 and take one.  lifo: queue at the front (a waiter
 * that was already woken once and lost the race, as Go's Mutex does).
 * Returns GOPY_OK, or for a foreign thread GOPY_EINTR / GOPY_EDEADLK
 * (nothing taken). */
/* A zeroed rt_sema is ready once its lock is ranked. */
static inline void sema_init(rt_sema *s)
{
    rt_mutex_init(&s->lock, LR_SEMA);
}

int sema_acquire(rt_sema *s, bool lifo, uint8_t reason, const void *obj);
/* count++ and wake one waiter.  handoff: give the count straight to the
 * woken waiter (Go's starvation mode), so no newcomer can take it.
 * Unlike Go's (a global table keyed by address, so that a releaser
 * touches nothing of the object once the count is up), our semaphores
 * live in the objects: s->busy counts releases under way, and whoever
 * frees the object first waits for them (sync_await_idle, sync.h). */
void sema_release(rt_sema *s, bool handoff);

#endif
