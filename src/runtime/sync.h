/*
 * sync.h -- what the sync types share inside the runtime: the Mutex's
 * layout (RWMutex and Once embed one), waiting out releases before a
 * free, and finishing an abandoned wait on the waiter's behalf.
 */
#ifndef GOPY_RT_SYNC_H
#define GOPY_RT_SYNC_H

#include "sema.h"

/*
 * A sync object made by *_make is freed by its *_free, but a stand-in
 * (sync_finish_detached, below) may still be using it then.  So it
 * carries a reference count: one for its owner, one per stand-in; the
 * last one frees `obj` (free(3): every such object is one allocation),
 * once no release is under way in it (*busy == 0, sync_await_idle).
 */
typedef struct {
    _Atomic uint32_t refs;
    void *obj;
    _Atomic uint32_t *busy;
} sync_life;

static inline void sync_life_init(sync_life *life, void *obj, _Atomic uint32_t *busy)
{
    atomic_init(&life->refs, 1);
    life->obj = obj;
    life->busy = busy;
}
void sync_life_release(sync_life *life);

/* Go's sync.Mutex (mutex.c).  All zero is an unlocked mutex. */
struct gopy_mutex {
    _Atomic int32_t state; /* see mutex.c */
    rt_sema sema;
};

/* Freeing a sync object: another thread may still be finishing the
 * release that let the last user through (a WaitGroup's Done waking the
 * Wait that then frees it).  Wait until *busy (a sema's busy, or an
 * object's own count of such calls) is 0; they never block. */
void sync_await_idle(_Atomic uint32_t *busy);

/*
 * Abandoned waits.  A foreign thread's wait ends early with GOPY_EINTR
 * (Ctrl-C) or GOPY_EDEADLK, "nothing having happened".  For a semaphore
 * that is true, but the sync types count their waiters: a release may
 * already be on its way to the waiter that left, and undoing the count
 * would race with it.  (The Mutex can tell from its state: mutex.c.  An
 * RWMutex's pending readers and writer cannot.)  So the waiter does not
 * undo anything: finish(arg) takes its place and completes the protocol
 * (waits, takes the lock, releases it at once) in a new C goroutine, and
 * the thread returns at once.  If no goroutine can be started, finish
 * runs on the calling thread with its waits made uninterruptible.  arg
 * (size bytes) is copied; the stand-in holds a reference on life (the
 * object's) until finish has returned.
 */
void sync_finish_detached(sync_life *life, void (*finish)(void *arg), const void *arg,
                          size_t size);

#endif
