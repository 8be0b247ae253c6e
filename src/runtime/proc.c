/*
 * proc.c -- the scheduler: Gs, Ms and Ps, run queues, work stealing,
 * spinning Ms, parking and readying, host mode (see runtime.h for the
 * model).  Modelled on Go's runtime/proc.go.
 */
#define _GNU_SOURCE
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* sched's locks, ranked (a fork child starts again from these). */
#define SCHED_LOCKS                                                              \
    .lock = RT_MUTEX_INIT(LR_SCHED), .hostq_lock = RT_MUTEX_INIT(LR_HOSTQ),      \
    .gfree_lock = RT_MUTEX_INIT(LR_GFREE), .foreign_lock = RT_MUTEX_INIT(LR_FOREIGN),  \
    .slot_lock = RT_MUTEX_INIT(LR_HOST_SLOTS)

schedt sched = {SCHED_LOCKS};

/* The M this thread is, NULL on foreign threads. */
static _Thread_local M *tls_m;
/* A foreign thread's pseudo-G, made the first time it blocks. */
static _Thread_local G *tls_foreign_g;

/* Read TLS through a call the compiler may not fold: a C goroutine can
 * resume on another thread, and a TLS address cached across the park
 * would name the old one. */
__attribute__((noinline, noipa)) M *getm(void)
{
    M *m = tls_m;
    __asm__ __volatile__("" : "+r"(m));
    return m;
}

G *getg(void)
{
    M *m = getm();
    return m != NULL ? m->curg : NULL;
}

static void foreign_unlink(G *g)
{
    if (g->foreign_prev != NULL)
        g->foreign_prev->foreign_next = g->foreign_next;
    else
        sched.foreign = g->foreign_next;
    if (g->foreign_next != NULL)
        g->foreign_next->foreign_prev = g->foreign_prev;
}

/* The thread ends: its pseudo-G goes. */
static void foreign_g_free(void *p)
{
    rt_lock(&sched.foreign_lock);
    foreign_unlink(p);
    rt_unlock(&sched.foreign_lock);
    free(p);
}

/* Frees a thread's pseudo-G when the thread exits.  Made once, by the
 * first thread to need it: a foreign thread may block in the runtime (a
 * channel receive) before anything else has started it, and setting a
 * key never made would overwrite whatever key 0 belongs to (under ASan,
 * ASan's own thread record). */
static pthread_key_t foreign_key;
static pthread_once_t foreign_key_once = PTHREAD_ONCE_INIT;

static void foreign_key_make(void)
{
    if (pthread_key_create(&foreign_key, foreign_g_free) != 0)
        rt_throw("cannot make the foreign threads' key");
}

G *getg_or_foreign(void)
{
    G *g = getg();
    if (g != NULL)
        return g;
    g = tls_foreign_g;
    if (g == NULL) {
        g = calloc(1, sizeof *g);
        if (g == NULL)
            rt_throw("out of memory");
        g->kind = G_FOREIGN;
        g->thread_ident = (uintptr_t)pthread_self();
        atomic_store_explicit(&g->status, G_RUNNING, memory_order_relaxed);
        rt_lock(&sched.foreign_lock);
        g->foreign_next = sched.foreign;
        if (sched.foreign != NULL)
            sched.foreign->foreign_prev = g;
        sched.foreign = g;
        rt_unlock(&sched.foreign_lock);
        tls_foreign_g = g;
        pthread_once(&foreign_key_once, foreign_key_make);
        pthread_setspecific(foreign_key, g);
    }
    return g;
}

/* A G's status is for introspection and assertions: every hand-over of a
 * G between threads is ordered by a lock or a queue, so a relaxed store
 * will do, and avoids a full fence at the first touch of a parked G's
 * page (a cache and TLB miss that the fence would wait out). */
static inline void g_set_status(G *g, enum g_status st)
{
    atomic_store_explicit(&g->status, st, memory_order_relaxed);
}

/* ---- Ms ----------------------------------------------------------------- */

enum { M_RUNNING = 0, M_IDLE = 1, M_IDLE_LOCKED = 2 };

static void *mstart(void *arg);

/* Put m on the idle list; sched.lock held.  m->park is cleared first so
 * that whoever takes m off the list can wake it exactly once. */
static void mput(M *m)
{
    rt_note_clear(&m->park);
    m->schedlink = sched.midle;
    sched.midle = m;
    sched.nmidle++;
    atomic_store(&m->idle, M_IDLE);
}

/* Take m off the idle list; sched.lock held, m on it. */
static void mremove(M *m)
{
    M **pp = &sched.midle;
    while (*pp != m)
        pp = &(*pp)->schedlink;
    *pp = m->schedlink;
    m->schedlink = NULL;
    sched.nmidle--;
    atomic_store(&m->idle, M_RUNNING);
    atomic_fetch_add(&sched.idle_epoch, 1);
    /* Blocked in the netpoller, m sleeps in epoll_wait, not on its note:
     * break that wait too.  The role stays m's until m is out of the wait
     * (see sched.netpoll_sleeper). */
    if (sched.netpoll_sleeper == m)
        netpoll_break();
}

/* An idle M, or NULL; sched.lock held. */
static M *mget(void)
{
    M *m = sched.midle;
    if (m != NULL)
        mremove(m);
    return m;
}

/* Make a new M (thread) that starts with p (may be NULL).  The caller has
 * reserved it in sched.mcount.  Returns NULL if the thread could not be
 * made. */
static M *newm(P *p, bool spinning, bool host_standby)
{
    M *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    rt_mutex_init(&m->hostq_lock, LR_M_HOSTQ);
    rt_lock(&sched.lock);
    m->id = sched.mnext++;
    rt_unlock(&sched.lock);
    m->nextp = p;
    m->spinning = spinning;
    if (host_standby)
        atomic_store(&sched.host_standby, m);
    M *head = atomic_load(&sched.allm);
    do
        m->alllink = head;
    while (!atomic_compare_exchange_weak(&sched.allm, &head, m));
    /* g0 runs the scheduler and the host's lock hooks, nothing deep. */
    int err = rt_thread_start(&m->thread, 512 << 10, mstart, m);
    if (err != 0) {
        /* The M stays on allm as a dead entry (allm is push-only). */
        m->dying = true;
        if (host_standby) {
            M *self = m;
            atomic_compare_exchange_strong(&sched.host_standby, &self, NULL);
        }
        rt_lock(&sched.lock);
        sched.mcount--;
        rt_unlock(&sched.lock);
        return NULL;
    }
    return m;
}

/* Reserve a new M in sched.mcount (sched.lock held).  Aborts at the cap,
 * as Go does: running out of threads is a program bug, not a state to
 * limp on in. */
static void mreserve(void)
{
    if (sched.mcount >= sched.maxmcount)
        rt_throw("thread limit exhausted (more than 10000 threads blocked)");
    sched.mcount++;
}

M *proc_host_m(void)
{
    rt_lock(&sched.lock);
    /* An idle M stays on the idle list: whoever queues work for it wakes
     * it (boundq_push), or it finds the work when it next schedules. */
    M *m = sched.midle;
    while (m != NULL && m->in_ring)
        m = m->schedlink;
    if (m != NULL || sched.mcount >= sched.maxmcount) {
        rt_unlock(&sched.lock);
        return m;
    }
    sched.mcount++;
    rt_unlock(&sched.lock);
    return newm(NULL, false, false);
}

/* ---- Ps ----------------------------------------------------------------- */

static P *p_make(int32_t id)
{
    P *p = calloc(1, sizeof *p);
    if (p == NULL)
        rt_throw("out of memory making a P");
    p->id = id;
    rt_mutex_init(&p->timers_lock, LR_TIMERS);
    atomic_store(&p->status, P_SPARE);
    return p;
}

/* Idle P, or NULL; sched.lock held. */
static P *pidleget(void)
{
    P *p = sched.pidle;
    if (p != NULL) {
        sched.pidle = p->link;
        p->link = NULL;
        atomic_fetch_sub(&sched.npidle, 1);
        atomic_store(&p->status, P_RUNNING);
    }
    return p;
}

static void pidleput(P *p)
{
    atomic_store(&p->status, P_IDLE);
    p->m = NULL;
    p->link = sched.pidle;
    sched.pidle = p;
    atomic_fetch_add(&sched.npidle, 1);
}

static void acquirep(M *m, P *p)
{
    m->p = p;
    p->m = m;
    atomic_store(&p->status, P_RUNNING);
    atomic_store_explicit(&m->mon_p, p, memory_order_relaxed);
}

static P *releasep(M *m)
{
    P *p = m->p;
    m->p = NULL;
    p->m = NULL;
    atomic_store_explicit(&m->mon_p, NULL, memory_order_relaxed);
    return p;
}

/* Ps the scheduler wants in use: GOMAXPROCS plus the ones sysmon added
 * for Ms stuck in blocking calls. */
static int32_t procs_target(void)
{
    return atomic_load(&sched.gomaxprocs) + atomic_load(&sched.nextra);
}

/* Take a P out of the spare list (or make one) and put it idle;
 * sched.lock held.  false at MAX_PROCS. */
static bool p_grow(void)
{
    P *p = sched.pspare;
    if (p != NULL) {
        sched.pspare = p->link;
    } else {
        int32_t id = atomic_load(&sched.nallp);
        if (id >= MAX_PROCS)
            return false;
        p = p_make(id);
        sched.allp[id] = p;
        atomic_store(&sched.nallp, id + 1);
    }
    pidleput(p);
    atomic_fetch_add(&sched.nprocs, 1);
    return true;
}

/* ---- run queues (Go's runqput / runqget / runqgrab / runqsteal) -------- */

/* sched.lock held */
static void globrunqput_locked(G *g)
{
    gqueue_push(&sched.runq, g);
    atomic_fetch_add(&sched.runqsize, 1);
}

static void globrunqput(G *g)
{
    rt_lock(&sched.lock);
    globrunqput_locked(g);
    rt_unlock(&sched.lock);
}

static void runqput(P *p, G *g, bool next);

/* Take Gs from the global queue for p: one to return, more into p's local
 * queue (min(size/nprocs+1, max, RUNQ_SIZE/2)).  sched.lock held. */
static G *globrunqget(P *p, int32_t max)
{
    int32_t size = atomic_load(&sched.runqsize);
    if (size == 0)
        return NULL;
    int32_t n = size / atomic_load(&sched.nprocs) + 1;
    if (n > size)
        n = size;
    if (max > 0 && n > max)
        n = max;
    if (n > RUNQ_SIZE / 2)
        n = RUNQ_SIZE / 2;
    atomic_fetch_sub(&sched.runqsize, n);
    G *g = gqueue_pop(&sched.runq);
    for (int32_t i = 1; i < n; i++)
        runqput(p, gqueue_pop(&sched.runq), false);
    return g;
}

/* The local queue is full: move half of it and g to the global queue. */
static bool runqputslow(P *p, G *g, uint32_t h, uint32_t t)
{
    enum { HALF = RUNQ_SIZE / 2 };
    G *batch[HALF];
    uint32_t n = (t - h) / 2;
    if (n != HALF)
        rt_throw("runqputslow: queue is not full");
    for (uint32_t i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&p->runq[(h + i) % RUNQ_SIZE],
                                        memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&p->runqhead, &h, h + n,
                                                 memory_order_release,
                                                 memory_order_relaxed))
        return false;
    /* Link them outside the lock; splice them in under it. */
    gqueue q = {0};
    for (uint32_t i = 0; i < n; i++)
        gqueue_push(&q, batch[i]);
    gqueue_push(&q, g);
    rt_lock(&sched.lock);
    gqueue_append(&sched.runq, &q);
    atomic_fetch_add(&sched.runqsize, (int32_t)(n + 1));
    rt_unlock(&sched.lock);
    return true;
}

/* Only p's owner calls this.  next: put g in runnext, kicking the old
 * runnext to the tail. */
static void runqput(P *p, G *g, bool next)
{
    if (next) {
        G *old = atomic_load(&p->runnext);
        while (!atomic_compare_exchange_weak(&p->runnext, &old, g)) {
        }
        if (old == NULL)
            return;
        g = old;
    }
    for (;;) {
        uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
        if (t - h < RUNQ_SIZE) {
            atomic_store_explicit(&p->runq[t % RUNQ_SIZE], g, memory_order_relaxed);
            atomic_store_explicit(&p->runqtail, t + 1, memory_order_release);
            return;
        }
        if (runqputslow(p, g, h, t))
            return;
    }
}

/* Owner only.  *inherit: g came from runnext and keeps the time slice. */
/* Start loading the cache lines from `below` lines under at to `above`
 * lines over it.  The scheduler does this for the goroutine it will run
 * next, while the current one runs: goroutines woken together (all of a
 * channel's by close) have been parked a while, their stacks long out of
 * the caches, and resuming one touches its G and the frames just above
 * its saved stack pointer first (docs/decisions.md §9).  A prefetch never
 * faults, whatever the address. */
static void prefetch_lines(const void *at, int below, int above)
{
    for (int line = -below; line < above; line++)
        __builtin_prefetch((const char *)at + 64 * line);
}

static G *runqget(P *p, bool *inherit)
{
    G *next = atomic_load(&p->runnext);
    if (next != NULL && atomic_compare_exchange_strong(&p->runnext, &next, NULL)) {
        *inherit = true;
        return next;
    }
    *inherit = false;
    for (;;) {
        uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
        if (t == h)
            return NULL;
        G *g = atomic_load_explicit(&p->runq[h % RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&p->runqhead, &h, h + 1,
                                                  memory_order_release,
                                                  memory_order_relaxed)) {
            /* The next one may be stolen meanwhile: not dereferenced.  A C
             * goroutine parks a few frames under its G, at its stack's top. */
            if (t - h > 1)
                prefetch_lines(atomic_load_explicit(&p->runq[(h + 1) % RUNQ_SIZE],
                                                    memory_order_relaxed),
                               8, 4);
            return g;
        }
    }
}

static bool runq_empty(P *p)
{
    /* Go's careful read: tail, runnext, then tail again. */
    for (;;) {
        uint32_t h = atomic_load(&p->runqhead);
        uint32_t t = atomic_load(&p->runqtail);
        G *next = atomic_load(&p->runnext);
        if (atomic_load(&p->runqtail) == t)
            return h == t && next == NULL;
    }
}

/* Grab half of p's queue into batch (a ring of RUNQ_SIZE starting at
 * batch_head).  Returns how many. */
static uint32_t runqgrab(P *p, _Atomic(G *) *batch, uint32_t batch_head,
                         bool steal_runnext)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_acquire);
        uint32_t n = t - h;
        n = n - n / 2;
        if (n == 0) {
            if (steal_runnext) {
                G *next = atomic_load(&p->runnext);
                if (next != NULL) {
                    /* p's owner is likely about to run it: a woken G
                     * runs next on its waker's P.  Give it a moment, as
                     * Go does, rather than bounce it across threads. */
                    if (atomic_load(&p->status) == P_RUNNING)
                        rt_usleep(3);
                    if (!atomic_compare_exchange_strong(&p->runnext, &next, NULL))
                        continue;
                    atomic_store_explicit(&batch[batch_head % RUNQ_SIZE], next,
                                          memory_order_relaxed);
                    return 1;
                }
            }
            return 0;
        }
        if (n > RUNQ_SIZE / 2)
            continue; /* read an inconsistent h and t */
        for (uint32_t i = 0; i < n; i++) {
            G *g = atomic_load_explicit(&p->runq[(h + i) % RUNQ_SIZE],
                                        memory_order_relaxed);
            atomic_store_explicit(&batch[(batch_head + i) % RUNQ_SIZE], g,
                                  memory_order_relaxed);
        }
        if (atomic_compare_exchange_strong_explicit(&p->runqhead, &h, h + n,
                                                    memory_order_release,
                                                    memory_order_relaxed))
            return n;
    }
}

/* Steal half of victim's queue into p's; return one G to run. */
static G *runqsteal(P *p, P *victim, bool steal_runnext)
{
    uint32_t t = atomic_load_explicit(&p->runqtail, memory_order_relaxed);
    uint32_t n = runqgrab(victim, p->runq, t, steal_runnext);
    if (n == 0)
        return NULL;
    n--;
    G *g = atomic_load_explicit(&p->runq[(t + n) % RUNQ_SIZE], memory_order_relaxed);
    if (n == 0)
        return g;
    uint32_t h = atomic_load_explicit(&p->runqhead, memory_order_acquire);
    if (t - h + n >= RUNQ_SIZE)
        rt_throw("runqsteal: runq overflow");
    atomic_store_explicit(&p->runqtail, t + n, memory_order_release);
    return g;
}

/* ---- spinning Ms, waking, handing off Ps (Go's startm / handoffp /
 * wakep) ------------------------------------------------------------------ */

/* Run p on an idle or new M (p NULL: take an idle P; if none, give up).
 * spinning: the M starts spinning (the caller counted it in
 * nmspinning). */
static void startm(P *p, bool spinning)
{
    rt_lock(&sched.lock);
    if (p == NULL) {
        p = pidleget();
        if (p == NULL) {
            rt_unlock(&sched.lock);
            if (spinning)
                atomic_fetch_sub(&sched.nmspinning, 1);
            return;
        }
    }
    M *m = mget();
    if (m == NULL) {
        mreserve();
        rt_unlock(&sched.lock);
        if (newm(p, spinning, false) == NULL) {
            rt_lock(&sched.lock);
            pidleput(p);
            rt_unlock(&sched.lock);
            if (spinning)
                atomic_fetch_sub(&sched.nmspinning, 1);
        }
        return;
    }
    m->spinning = spinning;
    m->nextp = p;
    rt_unlock(&sched.lock);
    rt_note_wakeup(&m->park);
    sysmon_wake();
}

/* Hand off p from an M that stops running C goroutines (to take the host
 * lock, or to wait for its locked goroutine).  With no work queued, p just
 * goes idle: Go's handoffp starts a spinning M then, so that an idle
 * machine still has someone to block in the netpoller, but here the M
 * going to its Python goroutines polls for them itself (stopm), waiters
 * that any M may run get one from waiter_park's wakep, and C work readied
 * later calls wakep, which finds p idle.  The spinner woke an idle M each
 * time a Python goroutine's M found its event with a P in hand: up to 0.7
 * per exchange in tests/test_netpoll.py's answered-by-a-thread test. */
static void handoffp(P *p)
{
    if (!runq_empty(p) || atomic_load(&sched.runqsize) != 0) {
        startm(p, false);
        return;
    }
    rt_lock(&sched.lock);
    if (atomic_load(&sched.runqsize) != 0) {
        rt_unlock(&sched.lock);
        startm(p, false);
        return;
    }
    pidleput(p);
    rt_unlock(&sched.lock);
    /* Its timers need an M that will sleep until them: the timer sleeper
     * if it wakes no later, else one woken for them (Go's wakeNetPoller).
     * Starting one each time woke an idle M per exchange of a goroutine
     * whose M found its event with a P in hand, while an earlier test's
     * timer was pending (the answered-by-a-thread test, after the rest of
     * tests/ had run). */
    int64_t when = atomic_load(&p->timer0_when);
    if (when != 0)
        runtime_wake_timer_sleeper(when);
}

/* New C work exists: if a P is idle and nobody is spinning, start one
 * spinning M.  A spinner that finds work calls wakep again (chain
 * reaction), so work spreads without a thundering herd. */
void wakep(void)
{
    if (atomic_load(&sched.npidle) == 0)
        return;
    int32_t zero = 0;
    if (atomic_load(&sched.nmspinning) != 0 ||
        !atomic_compare_exchange_strong(&sched.nmspinning, &zero, 1))
        return;
    startm(NULL, true);
}

static void resetspinning(M *m)
{
    m->spinning = false;
    if (atomic_fetch_sub(&sched.nmspinning, 1) == 1)
        wakep();
}

/* ---- host mode ----------------------------------------------------------- */

static bool host_enabled(void)
{
    return sched.host_hooks != NULL && !atomic_load(&sched.host_stopping);
}

/* Wake m if it sleeps idle (in sched.midle, or as a locked M waiting for
 * its goroutine).  Callers make the work visible first, then a seq_cst
 * fence, then call this: m sets idle, fences, re-checks the work before
 * sleeping, so one of the two sides sees the other. */
static void m_wake_if_idle(M *m)
{
    uint32_t st = atomic_load(&m->idle);
    if (st == M_IDLE_LOCKED) {
        if (atomic_compare_exchange_strong(&m->idle, &st, M_RUNNING)) {
            atomic_fetch_add(&sched.idle_epoch, 1);
            rt_note_wakeup(&m->park);
        }
        return;
    }
    if (st != M_IDLE)
        return;
    rt_lock(&sched.lock);
    if (atomic_load(&m->idle) == M_IDLE) {
        mremove(m);
        m->nextp = NULL;
        rt_unlock(&sched.lock);
        rt_note_wakeup(&m->park);
        sysmon_wake();
        return;
    }
    rt_unlock(&sched.lock);
}

/* Queue a runnable G that may run only on m (a host G bound there, or
 * m's locked G). */
static void boundq_push(M *m, G *g)
{
    rt_lock(&m->hostq_lock);
    gqueue_push(&m->hostq, g);
    atomic_fetch_add(&m->hostq_len, 1);
    rt_unlock(&m->hostq_lock);
    if (m != getm()) {
        atomic_thread_fence(memory_order_seq_cst);
        m_wake_if_idle(m);
    }
}

static G *boundq_pop(M *m)
{
    if (atomic_load(&m->hostq_len) == 0)
        return NULL;
    rt_lock(&m->hostq_lock);
    G *g = gqueue_pop(&m->hostq);
    if (g != NULL)
        atomic_fetch_sub(&m->hostq_len, 1);
#ifdef RT_CTX_ASM
    /* A Python goroutine's frames lie deep under its G: start at its
     * saved stack pointer (read under the lock: only its M writes it,
     * before queueing it).  Two deep: the next G's line was prefetched
     * by the pop before this one, so reading its stack pointer does not
     * wait for memory, and the one after it is prefetched now. */
    G *next = gqueue_front(&m->hostq);
    if (next != NULL) {
        prefetch_lines(next->ctx.sp, 0, 8);
        if (next->schedlink != NULL)
            __builtin_prefetch(next->schedlink);
    }
#endif
    rt_unlock(&m->hostq_lock);
    return g;
}

static void hostq_push(G *g)
{
    rt_lock(&sched.hostq_lock);
    gqueue_push(&sched.hostq, g);
    atomic_fetch_add(&sched.hostq_len, 1);
    rt_unlock(&sched.hostq_lock);
}

/* n more (or fewer) unstarted Gs taken off sched.hostq (hostq_lock held:
 * its holders are the only writers, so no locked read-modify-write). */
static void count_starts(int64_t n)
{
    atomic_store_explicit(&sched.hostq_starts,
                          atomic_load_explicit(&sched.hostq_starts, memory_order_relaxed) + (uint64_t)n,
                          memory_order_relaxed);
}

/* Were a and b spawned by one goroutine, to run the same code? */
static bool siblings(const G *a, const G *b)
{
    return b != NULL && a->group != NULL && b->group == a->group && a->spawner_goid != 0 &&
           b->spawner_goid == a->spawner_goid;
}

/* The next unstarted G, or NULL.  It is marked a batch member (G.batch)
 * if it heads three siblings in the queue or follows one it marked: a
 * pool, or a fan-out, that one goroutine spawned in a loop (placement.c). */
static G *hostq_pop(void)
{
    if (atomic_load(&sched.hostq_len) == 0)
        return NULL;
    rt_lock(&sched.hostq_lock);
    G *g = gqueue_pop(&sched.hostq);
    if (g != NULL) {
        G *next = gqueue_front(&sched.hostq);
        if (siblings(g, next) && (g->batch || siblings(g, next->schedlink)))
            g->batch = next->batch = true;
        atomic_fetch_sub(&sched.hostq_len, 1);
        count_starts(1);
    }
    rt_unlock(&sched.hostq_lock);
    return g;
}

/* No more Ms busy (not idle, not asleep locked) than host goroutines may
 * use (placement_host_ms): a standby may still add parallelism. */
static bool host_few_busy(void)
{
    int32_t busy = atomic_load(&sched.mcount) - atomic_load(&sched.nmidle) -
                   atomic_load(&sched.nmidle_locked);
    return busy <= placement_host_ms();
}

/* idle, just taken off the idle list under sched.lock, becomes the
 * standby: it takes the host lock and looks at the shared queue.  Unlocks
 * sched.lock. */
static void standby_start(M *idle)
{
    idle->nextp = NULL;
    atomic_store(&sched.host_standby, idle);
    rt_unlock(&sched.lock);
    rt_note_wakeup(&idle->park);
    sysmon_wake(); /* to watch the queue (proc_host_stalled) */
}

/* Unstarted host goroutines wait: make sure an M is on its way to take
 * the host lock for them (the standby), unless one already is, or an M
 * that may start them waits for the lock anyway.  An M that holds the
 * lock starts them itself as its goroutines park; the standby is for when
 * that M does not come back soon: its goroutine computes, or has let the
 * lock go in a blocking call.  The host then hands the standby the lock
 * (at once, or at its switch interval), and it starts them.
 *
 * Spawns and a standby that got the lock recruit the next at once only
 * while few Ms are busy (host_few_busy): that is how a fan-out of
 * GIL-releasing jobs gets its Ms.  Beyond, every busy M could start them
 * when it next holds the lock, and a new M each time the lock changes
 * hands (each socket call lets it go) would only pile up threads: 10,000
 * echo clients made 350 Ms on 2 cores.  There sysmon recruits one when
 * the queue has not moved for HOST_START_PATIENCE and fewer busy Ms than
 * host goroutines may use still schedule (stalled: the busy Ms block or
 * compute without the lock; docs/decisions.md §15). */
static void host_ensure_standby(bool stalled)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load(&sched.hostq_len) == 0 || atomic_load(&sched.host_standby) != NULL ||
        atomic_load(&sched.nhost_acquiring) > 0 || !host_enabled() ||
        (!stalled && !host_few_busy()))
        return;
    rt_lock(&sched.lock);
    if (atomic_load(&sched.host_standby) != NULL) {
        rt_unlock(&sched.lock);
        return;
    }
    atomic_fetch_add(&sched.nhost_recruits, 1);
    M *idle = mget();
    if (idle != NULL) {
        standby_start(idle);
        return;
    }
    mreserve();
    rt_unlock(&sched.lock);
    newm(NULL, false, true);
    sysmon_wake();
}

void proc_host_stalled(void)
{
    host_ensure_standby(true);
}

/* Unstarted goroutines placed on home by another M: n more (n > 0), or
 * n fewer, both in sched.host_placed (a spawner's backlog counts them) and
 * in home's hostq_placed (what sysmon may take back). */
static void count_placed(M *home, int32_t n)
{
    atomic_fetch_add(&sched.host_placed, n);
    atomic_fetch_add(&home->hostq_placed, n);
}

/* For sysmon, while m's hostq_placed says some are queued: m is inside
 * one goroutine and has not scheduled for a while (blocked in a C call,
 * or computing).  The unstarted goroutines placement queued on it have no
 * frames yet, so they may start on any M: put them back on sched.hostq,
 * in their order, for another M to start. */
void proc_host_reclaim(M *m)
{
    gqueue keep = {0}, back = {0};
    int32_t n = 0;
    rt_lock(&m->hostq_lock);
    G *g;
    while ((g = gqueue_pop(&m->hostq)) != NULL) {
        /* Placed here unstarted: set by the placing M before it queued
         * g, cleared only by m when g first runs, after popping it. */
        if (g->placed_away) {
            gqueue_push(&back, g);
            n++;
        } else {
            gqueue_push(&keep, g);
        }
    }
    m->hostq = keep;
    atomic_fetch_sub(&m->hostq_len, n);
    rt_unlock(&m->hostq_lock);
    if (n == 0)
        return;
    for (g = gqueue_front(&back); g != NULL; g = g->schedlink) {
        g->home = NULL;
        g->placed_away = false;
    }
    rt_lock(&sched.hostq_lock);
    gqueue_append(&sched.hostq, &back);
    atomic_fetch_add(&sched.hostq_len, n);
    count_placed(m, -n);
    rt_unlock(&sched.hostq_lock);
    host_ensure_standby(false);
}

static bool m_has_bound_work(M *m)
{
    return atomic_load(&m->hostq_len) > 0;
}

/* Host work for m: its bound goroutines; unstarted ones if it holds the
 * host lock (and is not dedicated to a locked goroutine); and, for the
 * standby, taking the lock at all (it looks at the queue once it has it,
 * so that it never leaves the role without a look). */
static bool m_has_host_work(M *m)
{
    if (!host_enabled())
        return false;
    if (m_has_bound_work(m))
        return true;
    if (m->lockedg != NULL)
        return false;
    return atomic_load(&sched.host_standby) == m ||
           (m->host_held && atomic_load(&sched.hostq_len) > 0);
}

/* Put back a G hostq_pop just took, at the front. */
static void hostq_unpop(G *g)
{
    rt_lock(&sched.hostq_lock);
    gqueue_push_front(&sched.hostq, g);
    atomic_fetch_add(&sched.hostq_len, 1);
    count_starts(-1);
    rt_unlock(&sched.hostq_lock);
}

/* Make taker, a ring M that placement leaves a batch member to, the
 * standby if it is idle; if it is busy it takes the member from the shared
 * queue when it next schedules (m_has_host_work).  Not the usual standby:
 * an M outside the ring would leave the member to taker too. */
static void host_call_taker(M *taker)
{
    rt_lock(&sched.lock);
    if (atomic_load(&sched.host_standby) != NULL || atomic_load(&taker->idle) != M_IDLE) {
        rt_unlock(&sched.lock);
        return;
    }
    mremove(taker);
    atomic_fetch_add(&sched.nhost_recruits, 1);
    standby_start(taker);
}

/* An unstarted host G for m to start, or NULL.  Those placement homes
 * elsewhere go to their home's queue on the way; one it leaves to a ring M
 * (a batch member, or one for the first back) stays at the front of the
 * shared queue, unless m starts a backlog its spawner yielded for
 * (gopy_rt_host_start_backlog): m starts it then. */
static G *hostq_take(M *m, bool backlog)
{
    G *g;
    while ((g = hostq_pop()) != NULL) {
        M *taker;
        M *home = placement_home(m, g, &taker);
        if (home == NULL && !backlog) {
            hostq_unpop(g);
            if (taker != NULL)
                host_call_taker(taker);
            return NULL;
        }
        if (home == NULL || home == m)
            return g;
        g->home = home;
        g->placed_away = true;
        count_placed(home, 1);
        boundq_push(home, g);
    }
    return NULL;
}

/* Next host G for m (holding the host lock): bound ones, then unstarted
 * ones; every 61st pick looks at the unstarted ones first so that
 * goroutines waking each other cannot starve new ones, and so do the
 * picks a backlog asked for (gopy_rt_host_start_backlog). */
static G *host_pick(M *m)
{
    bool starts = m->lockedg == NULL;
    G *g = NULL;
    if (starts) {
        uint32_t tick = atomic_load_explicit(&m->hosttick, memory_order_relaxed) + 1;
        atomic_store_explicit(&m->hosttick, tick, memory_order_relaxed);
        /* Events for goroutines of Ms that are not polling (may_poll_for),
         * found while this one is busy. */
        if (tick % 61 == 0 && netpoll_waiters() > 0)
            goready_list(netpoll(0));
        if (m->host_starts > 0) {
            m->host_starts--;
            if ((g = hostq_take(m, true)) == NULL)
                m->host_starts = 0;
        } else if (tick % 61 == 0) {
            g = hostq_take(m, false);
        }
    }
    if (g == NULL)
        g = boundq_pop(m);
    if (g == NULL && starts)
        g = hostq_take(m, false);
    return g;
}

/* ---- G allocation and free lists ---------------------------------------- */

static G *g_alloc(enum rt_stack_class cls)
{
    rt_stack s;
    if (!rt_stack_alloc(cls, &s))
        return NULL;
    /* The G lives at the top of its own stack (under the host area, for
     * host Gs): a parked goroutine with a shallow stack then costs few
     * pages and no allocation. */
    size_t above = cls == RT_STACK_HOST ? sched.host_area_size : 0;
    uintptr_t at = ((uintptr_t)s.hi - above - sizeof(G)) & ~(uintptr_t)63;
    G *g = (G *)at;
    memset(g, 0, sizeof *g);
    g->stack = s;
    g->stack_class = (uint8_t)cls;
    G *head = atomic_load(&sched.allg);
    do
        g->alllink = head;
    while (!atomic_compare_exchange_weak(&sched.allg, &head, g));
    return g;
}

static G *gfget(M *m, enum rt_stack_class cls)
{
    G *g = NULL;
    if (cls < RT_STACK_C_CLASSES && m != NULL && m->p != NULL) {
        P *p = m->p;
        if (gqueue_empty(&p->gfree[cls]) && sched.gfree_n[cls] > 0) {
            /* Refill up to half the cache from the global list. */
            rt_lock(&sched.gfree_lock);
            G *g1;
            while (p->gfree_n[cls] < GFREE_MAX / 2 &&
                   (g1 = gqueue_pop(&sched.gfree[cls])) != NULL) {
                sched.gfree_n[cls]--;
                gqueue_push_front(&p->gfree[cls], g1);
                p->gfree_n[cls]++;
            }
            rt_unlock(&sched.gfree_lock);
        }
        g = gqueue_pop(&p->gfree[cls]);
        if (g != NULL)
            p->gfree_n[cls]--;
    } else if (cls == RT_STACK_HOST && m != NULL && !gqueue_empty(&m->gfree)) {
        g = gqueue_pop(&m->gfree);
        m->gfree_n--;
    }
    if (g == NULL && atomic_load_explicit(&sched.gfree_n[cls], memory_order_relaxed) > 0) {
        rt_lock(&sched.gfree_lock);
        g = gqueue_pop(&sched.gfree[cls]);
        if (g != NULL)
            sched.gfree_n[cls]--;
        rt_unlock(&sched.gfree_lock);
    }
    if (g != NULL)
        g->in_free_list = false;
    return g;
}

static void gfput(M *m, G *g)
{
    enum rt_stack_class cls = g->stack_class;
    g->in_free_list = true;
    gqueue *list = NULL;
    int32_t *n = NULL;
    if (cls < RT_STACK_C_CLASSES && m->p != NULL) {
        list = &m->p->gfree[cls];
        n = &m->p->gfree_n[cls];
    } else if (cls == RT_STACK_HOST) {
        list = &m->gfree;
        n = &m->gfree_n;
    }
    if (list != NULL) {
        gqueue_push_front(list, g);
        if (++*n < GFREE_MAX)
            return;
        /* Move half to the global list, as Go does. */
        rt_lock(&sched.gfree_lock);
        while (*n > GFREE_MAX / 2) {
            gqueue_push_front(&sched.gfree[cls], gqueue_pop(list));
            (*n)--;
            sched.gfree_n[cls]++;
        }
        rt_unlock(&sched.gfree_lock);
        return;
    }
    rt_lock(&sched.gfree_lock);
    gqueue_push_front(&sched.gfree[cls], g);
    sched.gfree_n[cls]++;
    rt_unlock(&sched.gfree_lock);
}

/* ---- goroutine entry, exit, park, ready --------------------------------- */

static void goexit(void);

static void g_entry(void *arg)
{
    G *g = arg;
    g->fn(g->arg);
    goexit();
}

/* A host G's area: the bytes between it and the top of its stack. */
enum { G_SIZE_ROUNDED = (sizeof(G) + 63) & ~(size_t)63 };

static void *g_host_area(G *g)
{
    return (char *)g + G_SIZE_ROUNDED;
}

void gopy_rt_host_stack_bounds(const void *area, uintptr_t *lo, uintptr_t *hi)
{
    const G *g = (const G *)((const char *)area - G_SIZE_ROUNDED);
    *lo = (uintptr_t)g->stack.lo;
    *hi = (uintptr_t)g; /* the G sits at the top of its stack */
}

int newproc(void (*fn)(void *), void *arg, enum g_kind kind, enum rt_stack_class cls,
            void (*init)(void *area, void *arg), const void *group)
{
    rt_init();
    if (kind == G_HOST && atomic_load(&sched.host_stopping)) {
        errno = EAGAIN;
        return -1;
    }
    M *m = getm();
    G *g = gfget(m, cls);
    if (g == NULL) {
        g = g_alloc(cls);
        if (g == NULL) {
            errno = ENOMEM;
            return -1;
        }
    } else {
        rt_ctx_destroy(&g->ctx);
    }
    rt_stack_lsan_root(&g->stack, true);
    g->fn = fn;
    g->arg = arg;
    g->kind = (uint8_t)kind;
    g->home = NULL;
    g->spawner_m = m;
    G *spawner = m != NULL ? m->curg : NULL;
    g->spawner_goid = spawner != NULL && !spawner->spawned_backlog ? spawner->goid : 0;
    g->spawned_backlog = false;
    g->host = NULL;
    g->group = group;
    g->host_started = false;
    g->placed_away = false;
    g->group_counted = false;
    g->batch = false;
    if (kind == G_HOST) {
        g->host = g->arg = g_host_area(g);
        init(g->host, arg);
    }
    g->locked = 0;
    g->lockedm = NULL;
    g->m = NULL;
    g->wait_reason = GOPY_WAIT_NONE;
    g->wait_obj = NULL;
    g->wait_until = 0;
    g->goid = atomic_fetch_add(&sched.goidgen, 1) + 1;
    rt_ctx_init(&g->ctx, g->stack.lo, (size_t)((char *)g - g->stack.lo), g_entry, g);
    g_set_status(g, G_RUNNABLE);
    atomic_fetch_add(&sched.ngoroutines, 1);
    if (kind == G_HOST) {
        hostq_push(g);
        host_ensure_standby(false);
        return 0;
    }
    if (m != NULL && m->p != NULL)
        runqput(m->p, g, true);
    else
        globrunqput(g);
    wakep();
    return 0;
}

/* Leave the running G for g0 with request op; a goroutine on a small
 * stack first shows that it kept within it (stack.h). */
static void switch_to_g0(G *g, uint8_t op)
{
    if (g->stack_class == RT_STACK_SMALL && !rt_small_stack_intact(&g->stack))
        rt_throw("goroutine %lld overflowed its small stack (gopy_go_small: %d bytes, "
                 "its record included); start it with gopy_go",
                 (long long)g->goid, (int)RT_SMALL_STACK_BYTES);
    M *m = getm();
    m->gop = op;
    rt_ctx_switch(&g->ctx, &m->g0ctx);
}

void rt_on_system_stack(void (*fn)(void *arg), void *arg)
{
    G *g = getg();
    char here;
    uintptr_t sp = (uintptr_t)&here;
    if (g == NULL || g->stack_class != RT_STACK_SMALL || sp < (uintptr_t)g->stack.lo ||
        sp >= (uintptr_t)g->stack.hi) {
        fn(arg); /* not on a small stack: on g0, say, while g is current */
        return;
    }
    M *m = getm();
    m->call_fn = fn;
    m->call_arg = arg;
    m->gop = GOP_CALL; /* not switch_to_g0: its canary check may be why we are here */
    rt_ctx_switch(&g->ctx, &m->g0ctx);
}

static void goexit(void)
{
    switch_to_g0(getg(), GOP_EXIT);
    rt_throw("goexit: a dead goroutine was resumed");
}

static int park_foreign(G *g, bool (*unlock)(G *, void *), void *arg)
{
    rt_note_clear(&g->note);
    g_set_status(g, G_WAITING);
    if (unlock != NULL && !unlock(g, arg)) {
        g_set_status(g, G_RUNNING);
        return 0;
    }
    if (g->interrupt == NULL) {
        rt_note_sleep(&g->note);
    } else {
        for (;;) {
            if (rt_note_sleep_for(&g->note, g->interrupt_poll_ns))
                break;
            if (!g->interrupt(g->interrupt_arg))
                continue;
            uint32_t open = CLAIM_OPEN;
            if (atomic_compare_exchange_strong(&g->wait_claim, &open, CLAIM_ABORTED)) {
                g->abort_reason = GOPY_EINTR;
                break;
            }
            /* A waker won the claim: it is completing our operation and
             * will wake us; that result stands. */
            rt_note_sleep(&g->note);
            break;
        }
    }
    g_set_status(g, G_RUNNING);
    if (atomic_load(&g->wait_claim) == CLAIM_ABORTED)
        return g->abort_reason;
    return 0;
}

int gopark(bool (*unlock)(G *, void *), void *arg, uint8_t reason, const void *obj)
{
    G *g = getg_or_foreign();
    g->wait_reason = reason;
    g->wait_obj = obj;
    g->wait_since = rt_nanotime();
    if (g->kind == G_FOREIGN) {
        int r = park_foreign(g, unlock, arg);
        g->wait_reason = GOPY_WAIT_NONE;
        return r;
    }
    M *m = getm();
    m->park_unlock = unlock;
    m->park_arg = arg;
    switch_to_g0(g, GOP_PARK);
    g->wait_reason = GOPY_WAIT_NONE;
    return 0;
}

void goready(G *g)
{
    /* Only the waker that won the claim readies, and only a parked G: a
     * second ready would run the G twice (Go: "bad g->status in ready"). */
    rt_assert(atomic_load_explicit(&g->status, memory_order_relaxed) == G_WAITING,
              "bad g->status in ready");
    if (g->kind == G_FOREIGN) {
        g_set_status(g, G_RUNNABLE);
        rt_note_wakeup(&g->note);
        return;
    }
    g_set_status(g, G_RUNNABLE);
    M *bound = g->lockedm != NULL ? g->lockedm : g->home;
    if (bound != NULL) {
        boundq_push(bound, g);
        return;
    }
    M *m = getm();
    if (m != NULL && m->p != NULL) {
        runqput(m->p, g, true);
    } else {
        globrunqput(g);
    }
    wakep();
}

void goready_list(G *list)
{
    while (list != NULL) {
        G *g = list;
        list = g->schedlink;
        goready(g);
    }
}

void gosched(void)
{
    G *g = getg();
    if (g == NULL) {
        rt_osyield();
        return;
    }
    switch_to_g0(g, GOP_YIELD);
}

void goready_sender(G *sender)
{
    M *sender_m = sender->lockedm != NULL ? sender->lockedm : sender->home;
    goready(sender); /* sender is not ours to read after this */
    G *g = getg();
    M *m = getm();
    if (g != NULL && g->kind == G_HOST && g->lockedm == NULL && sender_m != m &&
        atomic_load_explicit(&m->hostq_len, memory_order_relaxed) > 0)
        switch_to_g0(g, GOP_YIELD);
}

/* ---- lock_os_thread ------------------------------------------------------ */

void gopy_rt_lock_os_thread(void)
{
    G *g = getg();
    if (g == NULL)
        return; /* a thread is its own thread already */
    M *m = getm();
    if (g->locked++ > 0)
        return;
    g->lockedm = m;
    m->lockedg = g; /* from now on m starts no new goroutines */
}

void gopy_rt_unlock_os_thread(void)
{
    G *g = getg();
    if (g == NULL || g->locked == 0)
        return;
    if (--g->locked > 0)
        return;
    M *m = getm();
    m->lockedg = NULL;
    g->lockedm = NULL;
}

/* ---- compensating Ms stuck in blocking calls ----------------------------- */

/* sysmon saw stuck's G block in a call the runtime cannot see, with work
 * waiting: add a P (Go retakes the syscalling M's P; ours cannot be taken
 * from under a running G, so the stuck M keeps it and thieves empty its
 * queue) and start an M on it. */
void proc_compensate(M *stuck)
{
    if (atomic_exchange(&stuck->compensated, true))
        return;
    rt_lock(&sched.lock);
    atomic_fetch_add(&sched.nextra, 1);
    bool grown = p_grow();
    rt_unlock(&sched.lock);
    atomic_fetch_add(&sched.nhandoff, 1);
    if (grown)
        startm(NULL, false);
}

/* The M is back in the scheduler: give back the P added for it. */
static void end_compensation(M *m)
{
    if (atomic_load_explicit(&m->compensated, memory_order_relaxed) &&
        atomic_exchange(&m->compensated, false))
        atomic_fetch_sub(&sched.nextra, 1);
}

/* ---- the scheduler loop -------------------------------------------------- */

static void execute(M *m, G *g);

/* Bring the number of Ps in use down to the target by retiring p; returns
 * true if p was retired (m has no P afterwards).  sched.lock not held. */
static bool maybe_retire_p(M *m)
{
    if (atomic_load(&sched.nprocs) <= procs_target())
        return false;
    rt_lock(&sched.lock);
    if (atomic_load(&sched.nprocs) <= procs_target()) {
        rt_unlock(&sched.lock);
        return false;
    }
    P *p = releasep(m);
    /* A spinning M without a P must stop counting as spinning, or wakep
     * would wait for it forever.  It was looking for work on everyone's
     * behalf: pass that on to a new spinner (below). */
    bool was_spinning = m->spinning;
    if (was_spinning) {
        m->spinning = false;
        atomic_fetch_sub(&sched.nmspinning, 1);
    }
    /* Everything it holds goes elsewhere: runnable Gs to the global
     * queue, timers to a P still in use. */
    bool inherit;
    G *g;
    while ((g = runqget(p, &inherit)) != NULL)
        globrunqput_locked(g);
    P *heir = NULL;
    int32_t n = atomic_load(&sched.nallp);
    for (int32_t i = 0; i < n && heir == NULL; i++) {
        P *q = sched.allp[i];
        if (q != p && atomic_load(&q->status) != P_SPARE)
            heir = q;
    }
    /* Spare before its timers move: timer_add checks under the timers
     * lock, so nothing can be added to p after the move. */
    atomic_store(&p->status, P_SPARE);
    int64_t when = heir != NULL ? timers_move(p, heir) : 0;
    /* Keep its free Gs: hand them to the global list. */
    rt_lock(&sched.gfree_lock);
    for (int cls = 0; cls < RT_STACK_C_CLASSES; cls++) {
        for (G *g1; (g1 = gqueue_pop(&p->gfree[cls])) != NULL;) {
            gqueue_push_front(&sched.gfree[cls], g1);
            sched.gfree_n[cls]++;
        }
        p->gfree_n[cls] = 0;
    }
    rt_unlock(&sched.gfree_lock);
    p->link = sched.pspare;
    sched.pspare = p;
    atomic_fetch_sub(&sched.nprocs, 1);
    rt_unlock(&sched.lock);
    /* Only now: waking the timer sleeper takes sched.lock. */
    if (when != 0)
        runtime_wake_timer_sleeper(when);
    if (was_spinning || atomic_load(&sched.runqsize) > 0)
        wakep();
    return true;
}

/* m stops sleeping by itself (sched.lock held): it gives up the sleeper
 * roles and, unless a waker has taken it off the idle list already (that
 * waker wakes its note), leaves the list.  true if it left. */
static bool stopm_leave(M *m)
{
    if (sched.timer_sleeper == m)
        sched.timer_sleeper = NULL;
    if (sched.netpoll_sleeper == m)
        sched.netpoll_sleeper = NULL; /* before mremove: no break for m */
    if (atomic_load(&m->idle) != M_IDLE)
        return false;
    mremove(m);
    return true;
}

/* Should m, going idle, sleep in the netpoller?  For waiters any M may
 * run, yes.  For host goroutines, which only their own M runs, only an M
 * with a fair share of them waiting (at least 1 / (2 GOMAXPROCS)): an M
 * with none or few would mostly pass events on to the others' Ms, a
 * wake-up of it for each batch, where those Ms find their events
 * themselves (host_find when they run out of work, host_pick every 61st
 * pick) and sleep in the poller once idle.  The few of an M left out are
 * found the same way, or by sysmon after 10 ms.  In W13 (10,000 echo
 * clients, GIL, two cores) an idle M passing events on woke 14,000 times
 * a run (docs/decisions.md §10, "Later"). */
static bool may_poll_for(M *m)
{
    int32_t unbound = netpoll_unbound_waiters();
    if (unbound > 0)
        return true;
    int32_t mine = atomic_load(&m->netpoll_bound);
    int32_t bound = netpoll_waiters() - unbound;
    return mine > 0 && (int64_t)mine * 2 * atomic_load(&sched.gomaxprocs) >= bound;
}

/* The poller m leaves the netpoller with goroutines to run (sched.lock
 * held): an idle M that may poll for its own waiting goroutines
 * (may_poll_for) has nobody sleeping in the poller for it now, only busy
 * Ms looking now and then, and sysmon after 10 ms.  Wake one to poll in
 * m's place; NULL if none. */
static M *poller_successor(void)
{
    for (M *i = sched.midle; i != NULL; i = i->schedlink) {
        if (atomic_load(&i->netpoll_bound) > 0 && may_poll_for(i)) {
            mremove(i);
            i->nextp = NULL;
            return i;
        }
    }
    return NULL;
}

/* Sleep in the netpoller as its poller: until `until` (0: no timer to
 * wait for), an event, or a waker (mremove breaks the wait).  Ready the
 * Gs it yields.  true if m left the idle list by itself; false if a waker
 * took it (its note will be woken). */
static bool stopm_poll(M *m, int64_t until)
{
    for (;;) {
        int64_t delay = -1;
        if (until > 0 && (delay = until - rt_nanotime()) < 0)
            delay = 0;
        G *ready = netpoll(delay);
        rt_lock(&sched.lock);
        bool done = ready != NULL || (until > 0 && rt_nanotime() >= until) ||
                    atomic_load(&m->idle) != M_IDLE;
        bool left = done && stopm_leave(m);
        rt_unlock(&sched.lock);
        /* Work for m itself: a timer or a waker's, or what it found. */
        bool busy = ready == NULL;
        for (G *g = ready; g != NULL && !busy; g = g->schedlink)
            busy = (g->kind == G_C && g->lockedm == NULL) || g->home == m;
        /* Off the idle list first, or waking a C goroutine (wakep) could
         * pick m itself. */
        goready_list(ready);
        if (left) {
            /* The homes of what it readied are awake now; m, if it has
             * nothing to run, is back in the poller at once.  Others
             * waiting need a poller while m runs. */
            rt_lock(&sched.lock);
            M *next = busy && sched.netpoll_sleeper == NULL ? poller_successor() : NULL;
            rt_unlock(&sched.lock);
            if (next != NULL)
                rt_note_wakeup(&next->park);
            sysmon_wake();
            return true;
        }
        if (done)
            return false;
        /* A break meant for an earlier sleep, or a signal: sleep on. */
    }
}

/* Sleep until someone takes m off the idle list (with a P in nextp, or
 * for host work), or, if it becomes the timer sleeper, until `until`.
 * While goroutines or threads wait on descriptors and no M polls for
 * them, m sleeps in the netpoller instead, ready to run them.  m holds
 * no P. */
static void stopm(M *m, int64_t until)
{
    rt_lock(&sched.lock);
    mput(m);
    bool timed = false;
    if (until > 0 && sched.timer_sleeper == NULL) {
        sched.timer_sleeper = m;
        sched.timer_sleep_until = until;
        timed = true;
    }
    bool polling = false;
    if (sched.netpoll_sleeper == NULL && may_poll_for(m)) {
        sched.netpoll_sleeper = m;
        polling = true;
    }
    rt_unlock(&sched.lock);
    atomic_thread_fence(memory_order_seq_cst);
    if (m_has_host_work(m)) {
        rt_lock(&sched.lock);
        bool left = stopm_leave(m);
        rt_unlock(&sched.lock);
        if (left) {
            sysmon_wake();
            return;
        }
        /* Someone took us off the list: they will wake us. */
        timed = polling = false;
    }
    if (polling) {
        if (stopm_poll(m, timed ? until : 0))
            return;
    } else if (timed) {
        int64_t d = until - rt_nanotime();
        if (d < 0)
            d = 0;
        rt_note_sleep_for(&m->park, d);
        rt_lock(&sched.lock);
        /* Timed out: nobody took us off the list; we do, and go look at
         * the timers. */
        bool left = stopm_leave(m);
        rt_unlock(&sched.lock);
        if (left) {
            sysmon_wake();
            return;
        }
    }
    rt_note_sleep(&m->park);
    if (m->nextp != NULL) {
        acquirep(m, m->nextp);
        m->nextp = NULL;
    }
}

void runtime_wake_timer_sleeper(int64_t when)
{
    /* Most timers are not earlier than what the sleeper waits for. */
    if (atomic_load(&sched.timer_sleeper) != NULL &&
        when >= atomic_load(&sched.timer_sleep_until))
        return;
    rt_lock(&sched.lock);
    M *s = sched.timer_sleeper;
    if (s != NULL) {
        if (when >= sched.timer_sleep_until) {
            rt_unlock(&sched.lock);
            return;
        }
        sched.timer_sleeper = NULL;
        if (atomic_load(&s->idle) == M_IDLE) {
            mremove(s);
            s->nextp = NULL;
            rt_unlock(&sched.lock);
            rt_note_wakeup(&s->park);
            return;
        }
        rt_unlock(&sched.lock);
        return;
    }
    rt_unlock(&sched.lock);
    /* Nobody sleeps on timers: every M is busy (they check timers as
     * they schedule), or idle without a timeout; get one going. */
    wakep();
}

/* Go's stealWork: four passes over the Ps in random order; the last
 * also takes runnext and runs the victim's due timers. */
static G *steal_work(M *m, P *p, int64_t now)
{
    int32_t n = atomic_load(&sched.nallp);
    for (int pass = 0; pass < 4; pass++) {
        bool last = pass == 3;
        uint32_t start = rt_fastrandn((uint32_t)n);
        /* Step by a number coprime to n so every P is visited once. */
        uint32_t step = 1;
        for (uint32_t s = 1 + rt_fastrandn((uint32_t)n); s <= (uint32_t)n * 2; s++) {
            uint32_t a = s, b = (uint32_t)n;
            while (b != 0) {
                uint32_t t = a % b;
                a = b;
                b = t;
            }
            if (a == 1) {
                step = s;
                break;
            }
        }
        for (int32_t i = 0; i < n; i++) {
            P *v = sched.allp[(start + (uint32_t)i * step) % (uint32_t)n];
            if (v == p || atomic_load(&v->status) == P_SPARE)
                continue;
            if (last && atomic_load(&v->timer0_when) != 0 &&
                atomic_load(&v->timer0_when) <= now) {
                timers_run(v, now);
                bool inherit;
                G *g = runqget(p, &inherit);
                if (g != NULL)
                    return g;
            }
            if (!runq_empty(v)) {
                G *g = runqsteal(p, v, last);
                if (g != NULL) {
                    atomic_fetch_add(&sched.nsteal, 1);
                    return g;
                }
            }
        }
        if (m_has_host_work(m))
            return NULL;
    }
    return NULL;
}

/* As Go's findrunnable, look at the netpoller without blocking once
 * nothing is queued, if anyone waits on it.  Go skips this while an M
 * sleeps in the netpoller (that M sees the events); here Python
 * goroutines can run only on their home M, and an M about to idle finds
 * its own ready ones here, instead of being woken for them by the
 * sleeping poller (a Python ping-pong over a socketpair: ~17 us a round
 * trip rather than ~28, docs/decisions.md).  The Gs it yields are
 * readied, but for one C goroutine free to run here: returned, for m to
 * run at once. */
static G *netpoll_runnable(void)
{
    if (netpoll_waiters() == 0)
        return NULL;
    G *run = NULL, *list = netpoll(0);
    while (list != NULL) {
        G *g = list;
        list = g->schedlink;
        if (run == NULL && g->kind == G_C && g->lockedm == NULL)
            run = g;
        else
            goready(g);
    }
    return run;
}

/* Find a C goroutine for m (which holds a P); NULL means "look again"
 * (woken for host work, or lost the P). */
static G *findrunnable(M *m)
{
top:;
    P *p = m->p;
    if (p == NULL)
        return NULL;
    if (maybe_retire_p(m))
        return NULL;
    int64_t now = 0;
    int64_t t0 = atomic_load_explicit(&p->timer0_when, memory_order_relaxed);
    if (t0 != 0 && t0 <= (now = rt_nanotime()))
        timers_run(p, now);
    bool inherit;
    G *g;
    if (p->schedtick % 61 == 0 && atomic_load(&sched.runqsize) > 0) {
        rt_lock(&sched.lock);
        g = globrunqget(p, 1);
        rt_unlock(&sched.lock);
        if (g != NULL)
            return g;
    }
    if ((g = runqget(p, &inherit)) != NULL)
        return g;
    if (atomic_load(&sched.runqsize) > 0) {
        rt_lock(&sched.lock);
        g = globrunqget(p, 0);
        rt_unlock(&sched.lock);
        if (g != NULL)
            return g;
    }
    if ((g = netpoll_runnable()) != NULL)
        return g;
    if (m_has_host_work(m))
        return NULL;
    /* Steal, unless too many Ms are spinning already (at most half the
     * busy Ps' worth), which would burn CPU for nothing. */
    if (m->spinning || 2 * atomic_load(&sched.nmspinning) <
                           atomic_load(&sched.nprocs) - atomic_load(&sched.npidle)) {
        if (!m->spinning) {
            m->spinning = true;
            atomic_fetch_add(&sched.nmspinning, 1);
        }
        if (now == 0)
            now = rt_nanotime();
        if ((g = steal_work(m, p, now)) != NULL)
            return g;
        if (m_has_host_work(m))
            return NULL;
    }

    /* Nothing: give up the P, then check everything once more (work may
     * have been queued by someone who saw no idle P to wake). */
    rt_lock(&sched.lock);
    if (atomic_load(&sched.runqsize) > 0) {
        g = globrunqget(p, 0);
        rt_unlock(&sched.lock);
        return g;
    }
    releasep(m);
    pidleput(p);
    rt_unlock(&sched.lock);

    bool was_spinning = m->spinning;
    if (m->spinning) {
        m->spinning = false;
        atomic_fetch_sub(&sched.nmspinning, 1);
        atomic_thread_fence(memory_order_seq_cst);
        /* Work queued globally while we were still counted as spinning
         * made wakep do nothing (it counts on spinners); we are no longer
         * one, so look again, as Go does, or that work is stranded with
         * every M asleep. */
        if (atomic_load(&sched.runqsize) > 0) {
            rt_lock(&sched.lock);
            P *p2 = atomic_load(&sched.runqsize) > 0 ? pidleget() : NULL;
            rt_unlock(&sched.lock);
            if (p2 != NULL) {
                acquirep(m, p2);
                m->spinning = true;
                atomic_fetch_add(&sched.nmspinning, 1);
                goto top;
            }
        }
    }
    int32_t n = atomic_load(&sched.nallp);
    for (int32_t i = 0; i < n; i++) {
        P *v = sched.allp[i];
        if (atomic_load(&v->status) != P_SPARE && !runq_empty(v)) {
            rt_lock(&sched.lock);
            P *p2 = pidleget();
            rt_unlock(&sched.lock);
            if (p2 != NULL) {
                acquirep(m, p2);
                if (was_spinning) {
                    m->spinning = true;
                    atomic_fetch_add(&sched.nmspinning, 1);
                }
                goto top;
            }
            break;
        }
    }
    int64_t next = timers_next();
    if (next != 0 && next <= rt_nanotime()) {
        rt_lock(&sched.lock);
        P *p2 = pidleget();
        rt_unlock(&sched.lock);
        if (p2 != NULL) {
            acquirep(m, p2);
            goto top;
        }
    }
    stopm(m, next);
    return NULL;
}

/* Take the host lock for m, after a slot where the host needs them
 * (host_slots.c; for_bound: to run a G taken off m's queue); false if
 * the host refused it (shutting down). */
static bool host_acquire(M *m, bool for_bound)
{
    host_slot_take(m, for_bound);
    if (!sched.host_hooks->acquire(&m->host)) {
        host_slot_give(m);
        return false;
    }
    m->host_held = true;
    return true;
}

static void host_release(M *m)
{
    sched.host_hooks->release(&m->host);
    m->host_held = false;
    host_slot_give(m);
}

/* Host work for m, taking the host lock if needed; NULL if none (the lock
 * is released then). */
static G *host_find(M *m)
{
    /* Its slot revoked (its goroutine blocked in a call) or its turn up:
     * to the back of the slots' queue before running more. */
    if (m->host_held && host_slot_should_yield(m))
        host_release(m);
    if (!m->host_held) {
        if (!m_has_host_work(m))
            return NULL;
        if (m->p != NULL) {
            if (m->spinning)
                resetspinning(m);
            handoffp(releasep(m));
        }
        bool may_start = m->lockedg == NULL;
        if (may_start)
            atomic_fetch_add(&sched.nhost_acquiring, 1);
        bool ok = host_acquire(m, false);
        if (may_start)
            atomic_fetch_sub(&sched.nhost_acquiring, 1);
        /* A standby's job is done once it has the lock (or was refused
         * it); so is a waiter's that stood in for one.  The next one, if
         * goroutines still wait: see host_ensure_standby. */
        M *self = m;
        atomic_compare_exchange_strong(&sched.host_standby, &self, NULL);
        host_ensure_standby(false);
        if (!ok)
            return NULL;
    }
    G *g = host_enabled() ? host_pick(m) : NULL;
    if (g == NULL && host_enabled() && netpoll_waiters() > 0) {
        /* Before letting the host lock go: goroutines of this M whose
         * descriptors are ready run now, without a lock hand-over and a
         * sleep and wake-up of this M (docs/decisions.md §13). */
        goready_list(netpoll(0));
        g = host_pick(m);
    }
    if (g == NULL)
        host_release(m);
    return g;
}

/* A locked M runs only the goroutines bound to it; it sleeps, holding no
 * P, until one is runnable. */
static G *locked_find(M *m)
{
    for (;;) {
        G *g = boundq_pop(m);
        if (g != NULL) {
            if (g->kind == G_HOST && m->host_held && host_slot_should_yield(m))
                host_release(m);
            if (g->kind == G_HOST && !m->host_held) {
                if (!host_acquire(m, true)) {
                    boundq_push(m, g);
                    return NULL;
                }
            } else if (g->kind != G_HOST && m->host_held) {
                /* The locked G is a C goroutine (Python code called back
                 * from C blocked in the runtime, say): it resumes without
                 * the host lock, and retakes it itself. */
                host_release(m);
            }
            return g;
        }
        if (m->host_held)
            host_release(m);
        if (m->p != NULL) {
            if (m->spinning)
                resetspinning(m);
            handoffp(releasep(m));
        }
        rt_note_clear(&m->park);
        atomic_fetch_add(&sched.nmidle_locked, 1);
        atomic_store(&m->idle, M_IDLE_LOCKED);
        atomic_thread_fence(memory_order_seq_cst);
        if (m_has_bound_work(m)) {
            uint32_t st = M_IDLE_LOCKED;
            if (atomic_compare_exchange_strong(&m->idle, &st, M_RUNNING)) {
                atomic_fetch_add(&sched.idle_epoch, 1);
                atomic_fetch_sub(&sched.nmidle_locked, 1);
                continue;
            }
        }
        rt_note_sleep(&m->park);
        atomic_fetch_sub(&sched.nmidle_locked, 1);
    }
}

static void schedule(M *m)
{
    for (;;) {
        G *g = NULL;
        if (m->lockedg != NULL) {
            g = locked_find(m);
        } else {
            if (m->host_held || m_has_host_work(m))
                g = host_find(m);
            if (g == NULL) {
                if (m->p == NULL) {
                    rt_lock(&sched.lock);
                    P *p = pidleget();
                    rt_unlock(&sched.lock);
                    if (p != NULL)
                        acquirep(m, p);
                    else
                        stopm(m, 0);
                    continue;
                }
                g = findrunnable(m);
            }
        }
        if (g == NULL)
            continue;
        if (m->spinning)
            resetspinning(m);
        execute(m, g);
    }
}

static void execute(M *m, G *g)
{
    for (;;) {
        bool first = false;
        m->curg = g;
        g->m = m;
        g_set_status(g, G_RUNNING);
        if (g->kind == G_HOST) {
            if (!g->host_started) {
                if (g->placed_away) {
                    g->placed_away = false;
                    count_placed(m, -1);
                }
                g->home = m;
                g->host_started = true;
                placement_count(m, g);
                first = true;
            }
            sched.host_hooks->enter(&m->host, g->host, first);
        } else if (m->p != NULL) {
            m->p->schedtick++;
        }
        /* Only this M writes it: no locked read-modify-write needed. */
        atomic_store_explicit(&m->schedtick,
                              atomic_load_explicit(&m->schedtick, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_store_explicit(&m->in_g, true, memory_order_relaxed);
        rt_ctx_switch(&m->g0ctx, &g->ctx);
        /* rt_on_system_stack: g stays current, as if it made the call. */
        while (m->gop == GOP_CALL) {
            m->gop = GOP_NONE;
            m->call_fn(m->call_arg);
            rt_ctx_switch(&m->g0ctx, &g->ctx);
        }

        /* Back on g0: g has switched away and asks for m->gop. */
        atomic_store_explicit(&m->in_g, false, memory_order_relaxed);
        end_compensation(m);
        uint8_t op = m->gop;
        m->gop = GOP_NONE;
        m->curg = NULL;
        g->m = NULL;
        if (g->kind == G_HOST)
            sched.host_hooks->leave(&m->host, g->host, op == GOP_EXIT);
        switch (op) {
        case GOP_PARK: {
            bool (*unlock)(G *, void *) = m->park_unlock;
            void *arg = m->park_arg;
            m->park_unlock = NULL;
            m->park_arg = NULL;
            g_set_status(g, G_WAITING);
            /* After unlock returns true, g belongs to whoever wakes it:
             * do not touch it again. */
            if (unlock != NULL && !unlock(g, arg))
                continue; /* park undone: run it again */
            return;
        }
        case GOP_YIELD:
            g_set_status(g, G_RUNNABLE);
            if (g->kind == G_HOST || g->lockedm != NULL)
                boundq_push(g->lockedm != NULL ? g->lockedm : g->home, g);
            else
                globrunqput(g);
            return;
        case GOP_EXIT:
            if (g->lockedm != NULL) {
                m->lockedg = NULL;
                g->lockedm = NULL;
                g->locked = 0;
            }
            if (g->kind == G_HOST)
                placement_uncount(m, g);
            g_set_status(g, G_DEAD);
            atomic_fetch_sub(&sched.ngoroutines, 1);
            rt_stack_lsan_root(&g->stack, false);
            gfput(m, g);
            return;
        default:
            rt_throw("execute: goroutine switched away with no request");
        }
    }
}

static void *mstart(void *arg)
{
    M *m = arg;
    tls_m = m;
    rt_ctx_init_thread(&m->g0ctx);
    m->sigstack = rt_signals_thread_init();
    m->tid = (int32_t)syscall(SYS_gettid);
    rt_thread_name("gopy-m%lld", (long long)m->id);
    if (pthread_getcpuclockid(pthread_self(), &m->cpuclock) == 0)
        atomic_store_explicit(&m->has_cpuclock, true, memory_order_release);
    sysmon_wake();
    const struct gopy_host_hooks *hooks = sched.host_hooks;
    if (hooks != NULL && hooks->thread_start != NULL)
        hooks->thread_start(&m->host);
    if (m->nextp != NULL) {
        acquirep(m, m->nextp);
        m->nextp = NULL;
    }
    schedule(m);
    return NULL;
}

/* ---- initialisation and GOMAXPROCS --------------------------------------- */

static int env_procs(void)
{
    const char *s = getenv("GOMAXPROCS");
    if (s != NULL && *s != '\0') {
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == '\0' && n >= 1 && n <= MAX_PROCS)
            return (int)n;
    }
    return gopy_rt_num_cpu();
}

/* A size from the environment: bytes, or with a k/K or m/M suffix. */
static size_t env_size(const char *name)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    unsigned long long n = strtoull(s, &end, 10);
    if (*end == 'k' || *end == 'K')
        n <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        n <<= 20, end++;
    if (*end != '\0' || n == 0 || n > (1ull << 30)) {
        fprintf(stderr, "gopy: ignoring %s=%s (want bytes, optionally with k or M)\n", name,
                s);
        return 0;
    }
    return (size_t)n;
}

/* The CPUs available to the process, counted at first use and kept (Go
 * counts them once at startup): a contended mutex asks before each spin,
 * and a sched_getaffinity there was 5 % of C5-contended.  Every thread
 * counts the same number, so racing first uses may each store it. */
static _Atomic int num_cpu;

int gopy_rt_num_cpu(void)
{
    int n = atomic_load_explicit(&num_cpu, memory_order_relaxed);
    if (n > 0)
        return n;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int)online : 1;
    }
    atomic_store_explicit(&num_cpu, n, memory_order_relaxed);
    return n;
}

/* Set the target number of Ps; sched.lock held.  New Ps start idle; Ps
 * beyond the target retire as their Ms next schedule (idle ones now).
 * Returns the earliest timer moved off a retired P (0: none): the caller
 * wakes the timer sleeper for it once sched.lock is released. */
static int64_t procresize(int32_t n)
{
    int64_t moved = 0;
    int32_t old_slots = placement_ring_slots();
    atomic_store(&sched.gomaxprocs, n);
    placement_ring_resize(old_slots);
    while (atomic_load(&sched.nprocs) < procs_target() && p_grow()) {
    }
    /* Retire idle Ps beyond the target at once. */
    while (atomic_load(&sched.nprocs) > procs_target() && sched.pidle != NULL) {
        P *p = pidleget();
        P *heir = NULL;
        int32_t na = atomic_load(&sched.nallp);
        for (int32_t i = 0; i < na && heir == NULL; i++) {
            P *q = sched.allp[i];
            if (q != p && atomic_load(&q->status) != P_SPARE)
                heir = q;
        }
        bool inherit;
        G *g;
        while ((g = runqget(p, &inherit)) != NULL)
            globrunqput_locked(g);
        atomic_store(&p->status, P_SPARE); /* before the move: see timer_add */
        int64_t when = heir != NULL ? timers_move(p, heir) : 0;
        if (when != 0 && (moved == 0 || when < moved))
            moved = when;
        p->link = sched.pspare;
        sched.pspare = p;
        atomic_fetch_sub(&sched.nprocs, 1);
    }
    return moved;
}

/* Serialises the first use; reset in a fork child. */
static rt_mutex init_lock = RT_MUTEX_INIT(LR_INIT);

void rt_init(void)
{
    if (atomic_load_explicit(&sched.started, memory_order_acquire))
        return;
    rt_lock(&init_lock);
    if (!atomic_load(&sched.started)) {
        sched.maxmcount = 10000;
        size_t sz;
        if ((sz = env_size("GOPY_STACK_SIZE")) != 0)
            rt_stack_set_size(RT_STACK_C, sz);
        if ((sz = env_size("GOPY_PYTHON_STACK_SIZE")) != 0)
            rt_stack_set_size(RT_STACK_HOST, sz);
        rt_stack_guard_init();
        rt_traceback_init();
        const char *stall = getenv("GOPY_STALL_WARNING");
        double secs = stall != NULL && *stall != '\0' ? strtod(stall, NULL) : 5.0;
        atomic_store(&sched.stall_warn_ns, secs > 0 ? (int64_t)(secs * 1e9) : 0);
        const char *slice = getenv("GOPY_PREEMPT_SLICE");
        secs = slice != NULL && *slice != '\0' ? strtod(slice, NULL) : 0.010;
        atomic_store(&sched.preempt_ns, secs > 0 ? (int64_t)(secs * 1e9) : 0);
        rt_lock(&sched.lock);
        (void)procresize(env_procs()); /* no timers yet */
        rt_unlock(&sched.lock);
        rt_signals_init();
        atomic_store_explicit(&sched.started, true, memory_order_release);
        sysmon_start();
    }
    rt_unlock(&init_lock);
}

int gopy_gomaxprocs(int n)
{
    rt_init();
    rt_lock(&sched.lock);
    int prev = atomic_load(&sched.gomaxprocs);
    int64_t moved = 0;
    if (n >= 1) {
        if (n > MAX_PROCS)
            n = MAX_PROCS;
        moved = procresize(n);
    }
    rt_unlock(&sched.lock);
    if (moved != 0)
        runtime_wake_timer_sleeper(moved);
    if (n > prev)
        host_slots_resize();
    if (n > prev || atomic_load(&sched.runqsize) > 0)
        wakep();
    return prev;
}

P *rt_any_p(void)
{
    M *m = getm();
    if (m != NULL && m->p != NULL)
        return m->p;
    /* No P of our own: spread over the Ps in use by thread. */
    int32_t n = atomic_load(&sched.nallp);
    uint32_t start = m != NULL ? (uint32_t)m->id : rt_fastrand();
    for (int32_t i = 0; i < n; i++) {
        P *p = sched.allp[(start + (uint32_t)i) % (uint32_t)n];
        if (atomic_load(&p->status) != P_SPARE)
            return p;
    }
    return sched.allp[0];
}

/* ---- public goroutine API ------------------------------------------------ */

/* Runnable C goroutines in the global queue past which a C goroutine
 * spawning more yields to them (at the tail of that queue), as
 * HOST_START_BATCH does for host goroutines: nothing preempts a C
 * goroutine, so a spawner under GOMAXPROCS=1 made all of a million
 * goroutines, their stacks faulted in, before the first ran (4 GB).  Go
 * bounds it with its 10 ms time slice. */
enum { C_START_BATCH = 1024 };

static int go_c(void (*fn)(void *arg), void *arg, enum rt_stack_class cls)
{
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    if (newproc(fn, arg, G_C, cls, NULL, NULL) < 0)
        return -1;
    if (atomic_load_explicit(&sched.runqsize, memory_order_relaxed) >= C_START_BATCH) {
        G *g = getg();
        if (g != NULL && g->kind == G_C && g->lockedm == NULL)
            gosched();
    }
    return 0;
}

int gopy_go(void (*fn)(void *arg), void *arg)
{
    return go_c(fn, arg, RT_STACK_C);
}

int gopy_go_small(void (*fn)(void *arg), void *arg)
{
    return go_c(fn, arg, RT_STACK_SMALL);
}

int gopy_rt_go_host(void (*fn)(void *gstate), void (*init)(void *gstate, void *arg),
                    void *arg, const void *group)
{
    if (sched.host_hooks == NULL || init == NULL) {
        errno = EINVAL;
        return -1;
    }
    return newproc(fn, arg, G_HOST, RT_STACK_HOST, init, group);
}

size_t gopy_rt_stack_size(bool host)
{
    rt_init(); /* applies the environment's sizes */
    return rt_stack_size(host ? RT_STACK_HOST : RT_STACK_C);
}

bool gopy_rt_set_host_area_size(size_t size)
{
    /* Fixed once host stacks exist: their layout depends on it. */
    if (!rt_stack_set_size(RT_STACK_HOST, rt_stack_size(RT_STACK_HOST)))
        return false;
    sched.host_area_size = (size + 63) & ~(size_t)63;
    return true;
}

void gopy_rt_set_host_hooks(const struct gopy_host_hooks *hooks)
{
    sched.host_hooks = hooks;
}

void gopy_rt_host_stop(void)
{
    atomic_store(&sched.host_stopping, true);
}

void gopy_yield(void)
{
    gosched();
}

int gopy_rt_preempt_take(void)
{
    M *m = getm();
    G *g = getg();
    if (m == NULL || g == NULL ||
        atomic_load_explicit(&m->preempt_tick, memory_order_relaxed) == 0)
        return GOPY_PREEMPT_NONE;
    uint64_t asked = atomic_exchange(&m->preempt_tick, 0);
    if (asked == 0)
        return GOPY_PREEMPT_NONE;
    /* A goroutine locked to its thread owns it: nobody else runs there,
     * but it still takes turns with other Ms for a host slot, and yields
     * one revoked (host_slots.c). */
    bool same = asked == atomic_load_explicit(&m->schedtick, memory_order_relaxed);
    uint8_t slot = atomic_load(&m->slot);
    bool may = g->locked == 0 || slot == SLOT_REVOKED ||
               (slot == SLOT_HELD && atomic_load(&sched.slot_nwaiting) > 0);
    return same && g->kind == G_HOST && may ? GOPY_PREEMPT_DUE : GOPY_PREEMPT_STALE;
}

void gopy_rt_preempt_yield(void)
{
    atomic_fetch_add_explicit(&sched.npreempt, 1, memory_order_relaxed);
    gosched();
}

/* Unstarted host goroutines past which their spawner should let them
 * start.  Until it does they pile up, each with its stack top, G and
 * interpreter state written but not run: past a few thousand they no
 * longer fit in the caches, and starting each costs misses.  Fewer, and
 * the hand-over costs more than it saves (docs/decisions.md §8). */
enum { HOST_START_BATCH = 1024 };

/* Unstarted host goroutines: waiting on sched.hostq, or queued on the
 * home placement chose for them by the M that took them off it (a pool's
 * spread, a standby homing on the ring: they have left hostq and not yet
 * run, and count as much). */
static int32_t host_unstarted(void)
{
    return atomic_load_explicit(&sched.hostq_len, memory_order_relaxed) +
           atomic_load_explicit(&sched.host_placed, memory_order_relaxed);
}

bool gopy_rt_host_backlog(void)
{
    if (host_unstarted() < HOST_START_BATCH)
        return false;
    G *g = getg();
    if (g != NULL && g->kind == G_HOST)
        return g->lockedm == NULL; /* its M may start them */
    /* A thread can only hand the host lock to an M on its way for it, or
     * to one waiting for it. */
    return atomic_load(&sched.host_standby) != NULL || atomic_load(&sched.nhost_acquiring) > 0;
}

bool gopy_rt_host_backlog_at(uint64_t *starts)
{
    *starts = atomic_load_explicit(&sched.hostq_starts, memory_order_relaxed);
    return host_unstarted() >= HOST_START_BATCH;
}

bool gopy_rt_host_start_backlog(void)
{
    G *g = getg();
    if (g == NULL || g->kind != G_HOST)
        return false;
    if (g->lockedm != NULL)
        return true; /* gopy_rt_host_backlog said no: nothing to do */
    /* This M starts them, its caches warm from their spawning, before it
     * resumes g (bound to it, g waits in its queue meanwhile).  What g
     * spawns from now on is no batch: thousands of connections spawned in
     * a loop are not a pool its M should stay clear of to feed (W13 on
     * 3.13 was 8 % slower when they were). */
    g->spawned_backlog = true;
    getm()->host_starts = atomic_load(&sched.hostq_len);
    switch_to_g0(g, GOP_YIELD);
    return true;
}

int64_t gopy_rt_goid(void)
{
    G *g = getg();
    return g != NULL ? g->goid : 0;
}

bool gopy_rt_in_host_goroutine(void)
{
    G *g = getg();
    return g != NULL && g->kind == G_HOST;
}

void *gopy_rt_host_gstate(void)
{
    G *g = getg();
    return g != NULL && g->kind == G_HOST ? g->host : NULL;
}

void gopy_rt_set_interrupt(int (*check)(void *arg), void *arg, int64_t poll_ns)
{
    G *g = getg_or_foreign();
    if (g->kind != G_FOREIGN)
        return;
    g->interrupt = check;
    g->interrupt_arg = arg;
    g->interrupt_poll_ns = poll_ns > 0 ? poll_ns : 50 * 1000000;
}

int64_t gopy_rt_num_goroutine(void)
{
    return atomic_load(&sched.ngoroutines);
}

void gopy_rt_foreach_goroutine(void (*fn)(const gopy_goroutine_info *, void *),
                               void *arg)
{
    int64_t now = rt_nanotime();
    for (G *g = atomic_load(&sched.allg); g != NULL; g = g->alllink) {
        uint32_t st = atomic_load(&g->status);
        if (st == G_DEAD || st == G_IDLE || g->in_free_list)
            continue;
        gopy_goroutine_info info = {0};
        info.goid = g->goid;
        info.state = rt_g_status_name(st);
        info.host = g->kind == G_HOST;
        info.home_m = g->home != NULL ? g->home->id : -1;
        info.gstate = g->host;
        if (st == G_WAITING) {
            info.wait_reason = g->wait_reason;
            info.wait_obj = g->wait_obj;
            info.wait_ns = now - g->wait_since;
            info.sleep_until_ns = g->wait_until;
        }
        fn(&info, arg);
    }
}

void gopy_rt_get_stats(gopy_rt_stats *s)
{
    rt_init();
    memset(s, 0, sizeof *s);
    s->goroutines = atomic_load(&sched.ngoroutines);
    rt_lock(&sched.lock);
    s->ms = sched.mcount;
    s->ms_idle = sched.nmidle;
    rt_unlock(&sched.lock);
    s->ps = atomic_load(&sched.nprocs);
    s->gomaxprocs = atomic_load(&sched.gomaxprocs);
    int64_t sw = 0;
    for (M *m = atomic_load(&sched.allm); m != NULL; m = m->alllink)
        sw += (int64_t)atomic_load_explicit(&m->schedtick, memory_order_relaxed);
    s->context_switches = sw;
    s->steals = atomic_load(&sched.nsteal);
    s->handoffs = atomic_load(&sched.nhandoff);
    s->host_recruits = atomic_load(&sched.nhost_recruits);
    s->timers = timers_count();
    s->host_queue = atomic_load(&sched.hostq_len);
    s->preemptions = atomic_load(&sched.npreempt);
    s->stack_guard = rt_stack_guard_mode();
    s->stack_size_c = (int64_t)rt_stack_size(RT_STACK_C);
    s->stack_size_host = (int64_t)rt_stack_size(RT_STACK_HOST);
    s->netpoll_waiters = netpoll_waiters();
    offload_stats(s);
}

const char *gopy_rt_wait_reason_string(int reason)
{
    static const char *const names[GOPY_WAIT_NREASONS] = {
        [GOPY_WAIT_NONE] = "",
        [GOPY_WAIT_CHAN_SEND] = "chan send",
        [GOPY_WAIT_CHAN_RECV] = "chan receive",
        [GOPY_WAIT_SELECT] = "select",
        [GOPY_WAIT_SELECT_NO_CASES] = "select (no cases)",
        [GOPY_WAIT_SLEEP] = "sleep",
        [GOPY_WAIT_MUTEX] = "sync.Mutex.Lock",
        [GOPY_WAIT_RWMUTEX_R] = "sync.RWMutex.RLock",
        [GOPY_WAIT_RWMUTEX_W] = "sync.RWMutex.Lock",
        [GOPY_WAIT_WAITGROUP] = "sync.WaitGroup.Wait",
        [GOPY_WAIT_COND] = "sync.Cond.Wait",
        [GOPY_WAIT_SEMA] = "semacquire",
        [GOPY_WAIT_LOCKED_THREAD] = "locked to thread",
        [GOPY_WAIT_IO] = "IO wait",
        [GOPY_WAIT_OFFLOAD] = "offload",
    };
    if (reason < 0 || reason >= GOPY_WAIT_NREASONS || names[reason] == NULL)
        return "?";
    return names[reason];
}

/* Go's checkdead, for a foreign thread blocked in the runtime: can any
 * goroutine still run?  True only if every M is idle, no work is queued
 * anywhere, no timer is pending, nobody waits on a descriptor (an event
 * from outside may end that wait), and no M woke up while we looked (a wake
 * is the only way out of that state, and it bumps idle_epoch).  Threads
 * the runtime does not know (which might still act) are the caller's to
 * rule out. */
bool gopy_rt_all_asleep(void)
{
    if (!atomic_load(&sched.started))
        return true;
    uint64_t epoch = atomic_load(&sched.idle_epoch);
    if (atomic_load(&sched.nmidle) + atomic_load(&sched.nmidle_locked) !=
            atomic_load(&sched.mcount) ||
        atomic_load(&sched.runqsize) != 0 || atomic_load(&sched.hostq_len) != 0 ||
        timers_next() != 0 || netpoll_waiters() != 0 || offload_pending())
        return false;
    int32_t n = atomic_load(&sched.nallp);
    for (int32_t i = 0; i < n; i++) {
        P *p = sched.allp[i];
        if (atomic_load(&p->status) != P_SPARE && !runq_empty(p))
            return false;
    }
    for (M *m = atomic_load(&sched.allm); m != NULL; m = m->alllink)
        if (!m->dying && m_has_bound_work(m))
            return false;
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load(&sched.idle_epoch) == epoch &&
           atomic_load(&sched.nmidle) + atomic_load(&sched.nmidle_locked) ==
               atomic_load(&sched.mcount);
}

size_t gopy_rt_parked_threads(uintptr_t *idents, size_t cap)
{
    size_t n = 0;
    rt_lock(&sched.foreign_lock);
    for (G *g = sched.foreign; g != NULL; g = g->foreign_next) {
        /* Parked and not yet claimed: a woken thread on its way back can
         * act again. */
        if (atomic_load(&g->status) == G_WAITING &&
            atomic_load(&g->wait_claim) == CLAIM_OPEN) {
            if (n < cap)
                idents[n] = g->thread_ident;
            n++;
        }
    }
    rt_unlock(&sched.foreign_lock);
    return n;
}

void gopy_rt_after_fork_child(void)
{
    /* Every other thread is gone.  Forget them all (their memory leaks:
     * it may be mid-update and cannot be trusted) and start afresh on
     * first use, keeping only the configuration. */
    const struct gopy_host_hooks *hooks = sched.host_hooks;
    size_t area = sched.host_area_size;
    sched = (schedt){SCHED_LOCKS, .host_hooks = hooks, .host_area_size = area};
    rt_mutex_init(&init_lock, LR_INIT);
    rt_stack_after_fork();
    netpoll_after_fork_child();
    offload_after_fork();
    tls_m = NULL;
    /* This thread's pseudo-G is linked into the forgotten list: leak it
     * too, so that its destructor does not unlink it at thread exit. */
    if (tls_foreign_g != NULL)
        pthread_setspecific(foreign_key, NULL);
    tls_foreign_g = NULL;
}
