/*
 * lock.c -- futex-based rt_mutex and rt_note (a pthread fallback where
 * there is no futex), clocks and the per-thread random source.
 */
#define _GNU_SOURCE
#include "lock.h"

#include <errno.h>
#include <sched.h>
#include <time.h>

#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static void futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns)
{
    struct timespec ts, *tsp = NULL;
    if (ns >= 0) {
        ts.tv_sec = ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        tsp = &ts;
    }
    /* EINTR, EAGAIN and ETIMEDOUT all send the caller back to re-check. */
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

#else /* no futex: one process-wide condition variable stands in for it */
#include <pthread.h>

static pthread_mutex_t futex_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t futex_cv = PTHREAD_COND_INITIALIZER;

static void futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t ns)
{
    pthread_mutex_lock(&futex_mu);
    if (atomic_load(addr) == val) {
        if (ns < 0) {
            pthread_cond_wait(&futex_cv, &futex_mu);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t t = ts.tv_nsec + ns;
            ts.tv_sec += t / 1000000000;
            ts.tv_nsec = t % 1000000000;
            pthread_cond_timedwait(&futex_cv, &futex_mu, &ts);
        }
    }
    pthread_mutex_unlock(&futex_mu);
}

static void futex_wake(_Atomic uint32_t *addr, int n)
{
    (void)addr;
    (void)n;
    pthread_mutex_lock(&futex_mu);
    pthread_cond_broadcast(&futex_cv);
    pthread_mutex_unlock(&futex_mu);
}
#endif

/* A few rounds of spinning before sleeping: critical sections are short,
 * and a futex round trip costs microseconds. */
enum { SPIN_ROUNDS = 4, SPIN_PAUSES = 30 };

void rt_mutex_lock_slow(rt_mutex *l)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        rt_procyield(SPIN_PAUSES);
        uint32_t unlocked = 0;
        if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->state, &unlocked, 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    /* Mark "locked with sleepers" so the unlocker wakes us; whoever takes
     * the lock from here on keeps the mark, which is conservative. */
    while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
        futex_wait(&l->state, 2, -1);
}

void rt_mutex_unlock_slow(rt_mutex *l)
{
    futex_wake(&l->state, 1);
}

void rt_note_wakeup(rt_note *n)
{
    atomic_store_explicit(&n->key, 1, memory_order_release);
    futex_wake(&n->key, 1);
}

void rt_note_sleep(rt_note *n)
{
    while (atomic_load_explicit(&n->key, memory_order_acquire) == 0)
        futex_wait(&n->key, 0, -1);
}

bool rt_note_sleep_for(rt_note *n, int64_t ns)
{
    if (ns < 0) {
        rt_note_sleep(n);
        return true;
    }
    if (!rt_note_woken(n))
        futex_wait(&n->key, 0, ns);
    return rt_note_woken(n);
}

int64_t rt_nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t rt_walltime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rt_usleep(int64_t us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void rt_osyield(void)
{
    sched_yield();
}

static _Thread_local uint64_t rand_state;

uint32_t rt_fastrand(void)
{
    if (rand_state == 0) {
        rand_state = (uint64_t)rt_nanotime() ^ (uint64_t)(uintptr_t)&rand_state;
        rand_state |= 1;
    }
    /* wyrand */
    rand_state += 0xa0761d6478bd642fULL;
    __uint128_t t = (__uint128_t)rand_state * (rand_state ^ 0xe7037ed1a0b428dbULL);
    return (uint32_t)((uint64_t)(t >> 64) ^ (uint64_t)t);
}
