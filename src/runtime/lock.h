/*
 * lock.h -- the runtime's own low-level synchronisation: a futex mutex for
 * short critical sections, one-shot notes for sleeping and waking OS
 * threads, clocks and a per-thread random source.
 *
 * These block the OS thread, never a goroutine: hold an rt_mutex only
 * for a few instructions, and never across a park (gopark's unlock function
 * releases the lock after the goroutine has left its stack).
 */
#ifndef GOPY_RT_LOCK_H
#define GOPY_RT_LOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- rt_mutex: 0 unlocked, 1 locked, 2 locked with sleepers ---------- */

/* Every lock has a rank (enum lock_rank and the lock order, runtime.h),
 * given where the lock is made: RT_MUTEX_INIT(rank) or rt_mutex_init.
 * Built with GOPY_CHECKS, taking a lock out of order throws (lockrank.c);
 * otherwise the rank is not even stored. */
typedef struct {
    _Atomic uint32_t state;
#ifdef GOPY_CHECKS
    uint8_t rank;
#endif
} rt_mutex;

#ifdef GOPY_CHECKS
#define RT_MUTEX_INIT(rank) {0, (rank)}
void rt_lockrank_acquire(rt_mutex *l);
void rt_lockrank_acquired(rt_mutex *l);
void rt_lockrank_release(rt_mutex *l);
#else
#define RT_MUTEX_INIT(rank) {0}
#define rt_lockrank_acquire(l) ((void)0)
#define rt_lockrank_acquired(l) ((void)0)
#define rt_lockrank_release(l) ((void)0)
#endif

/* A fresh, unlocked lock of the given rank. */
static inline void rt_mutex_init(rt_mutex *l, unsigned rank)
{
    atomic_init(&l->state, 0);
#ifdef GOPY_CHECKS
    l->rank = (uint8_t)rank;
#else
    (void)rank;
#endif
}

void rt_mutex_lock_slow(rt_mutex *l);
void rt_mutex_unlock_slow(rt_mutex *l);

static inline void rt_lock(rt_mutex *l)
{
    rt_lockrank_acquire(l);
    uint32_t unlocked = 0;
    if (!atomic_compare_exchange_strong_explicit(
            &l->state, &unlocked, 1, memory_order_acquire, memory_order_relaxed))
        rt_mutex_lock_slow(l);
}

static inline bool rt_trylock(rt_mutex *l)
{
    uint32_t unlocked = 0;
    if (!atomic_compare_exchange_strong_explicit(
            &l->state, &unlocked, 1, memory_order_acquire, memory_order_relaxed))
        return false;
    /* A trylock cannot deadlock, but what is taken under it is ordered
     * after it: record it without the check. */
    rt_lockrank_acquired(l);
    return true;
}

static inline void rt_unlock(rt_mutex *l)
{
    rt_lockrank_release(l);
    if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
        rt_mutex_unlock_slow(l);
}

/* ---- rt_note: a one-shot event for one sleeper ------------------------
 * rt_note_clear before use; exactly one rt_note_wakeup per sleep cycle;
 * rt_note_sleep returns once it has happened (also if it happened first). */

typedef struct {
    _Atomic uint32_t key; /* 0 = not yet woken, 1 = woken */
} rt_note;

static inline void rt_note_clear(rt_note *n)
{
    atomic_store_explicit(&n->key, 0, memory_order_relaxed);
}

static inline bool rt_note_woken(rt_note *n)
{
    return atomic_load_explicit(&n->key, memory_order_acquire) != 0;
}

void rt_note_wakeup(rt_note *n);
void rt_note_sleep(rt_note *n);
/* Sleep at most ns (< 0: no limit).  Returns true if woken; false on
 * timeout or when a signal interrupted the sleep (the caller decides
 * whether to check for an interrupt and sleep again). */
bool rt_note_sleep_for(rt_note *n, int64_t ns);

/* ---- clocks ------------------------------------------------------------ */

int64_t rt_nanotime(void);  /* CLOCK_MONOTONIC, ns */
int64_t rt_walltime(void);  /* CLOCK_REALTIME, ns since the epoch */
void rt_usleep(int64_t us); /* plain OS sleep, for sysmon and backoff */
void rt_osyield(void);

/* Spin-wait hint (PAUSE / YIELD). */
static inline void rt_procyield(int n)
{
    for (int i = 0; i < n; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
        __asm__ __volatile__("yield" ::: "memory");
#else
        atomic_signal_fence(memory_order_seq_cst);
#endif
    }
}

/* ---- random numbers: per-thread wyrand, seeded from the clock and the
 * thread's address; not for cryptography. ------------------------------- */

uint32_t rt_fastrand(void);
/* Uniform in [0, n), n > 0. */
static inline uint32_t rt_fastrandn(uint32_t n)
{
    return (uint32_t)(((uint64_t)rt_fastrand() * n) >> 32);
}

#endif
