/*
 * test_sync_types.c -- gopy_rwmutex (Go's TestRWMutex hammer,
 * TestParallelReaders, writer preference, trylock, misuse, abandoned
 * waits), gopy_once (exactly once under a race, waiters wait), gopy_cond
 * (TestCondSignal, TestCondBroadcast, TestCondSignalStealing, a signal
 * passing over an abandoned wait), gopy_pool (TestPool, victims,
 * stress) and gopy_map (a model under random operations with colliding
 * hashes, concurrent writers and readers, references balanced).
 */
#include "harness.h"

/* ---- RWMutex: the hammer (Go's HammerRWMutex) ----------------------------- */

/* activity: +1 per reader inside, +10000 per writer inside. */
static _Atomic int32_t rw_activity;
static gopy_rwmutex *rw;

/* Stay inside a while, on the CPU. */
static void h_busy(int n)
{
    for (volatile int k = 0; k < n * 10; k++) {
    }
}

static void rw_reader(void *arg)
{
    int iters = (int)(intptr_t)((void **)arg)[1];
    for (int i = 0; i < iters; i++) {
        gopy_rwmutex_rlock(rw);
        int32_t n = atomic_fetch_add(&rw_activity, 1) + 1;
        if (n < 1 || n >= 10000)
            FAIL("reader saw activity %d", n);
        h_busy(50);
        atomic_fetch_sub(&rw_activity, 1);
        gopy_rwmutex_runlock(rw);
        if (i % 16 == 0)
            gopy_yield();
    }
    gopy_waitgroup_done(((void **)arg)[0]);
}

static void rw_writer(void *arg)
{
    int iters = (int)(intptr_t)((void **)arg)[1];
    for (int i = 0; i < iters; i++) {
        gopy_rwmutex_lock(rw);
        int32_t n = atomic_fetch_add(&rw_activity, 10000) + 10000;
        if (n != 10000)
            FAIL("writer saw activity %d", n);
        h_busy(50);
        atomic_fetch_sub(&rw_activity, 10000);
        gopy_rwmutex_unlock(rw);
        if (i % 4 == 0)
            gopy_yield();
    }
    gopy_waitgroup_done(((void **)arg)[0]);
}

static void rw_hammer(int procs, int readers)
{
    gopy_gomaxprocs(procs);
    rw = gopy_rwmutex_make();
    gopy_waitgroup *wg = gopy_waitgroup_make();
    int iters = H_SCALED(2000);
    void *a[2] = {wg, (void *)(intptr_t)iters};
    gopy_waitgroup_add(wg, readers + 2);
    h_go(rw_writer, a);
    for (int i = 0; i < readers / 2; i++)
        h_go(rw_reader, a);
    h_go(rw_writer, a);
    for (int i = readers / 2; i < readers; i++)
        h_go(rw_reader, a);
    gopy_waitgroup_wait(wg);
    CHECK_EQ(atomic_load(&rw_activity), 0);
    /* Left unlocked: both trylocks work. */
    CHECK(gopy_rwmutex_trylock(rw));
    gopy_rwmutex_unlock(rw);
    CHECK(gopy_rwmutex_tryrlock(rw));
    gopy_rwmutex_runlock(rw);
    gopy_waitgroup_free(wg);
    gopy_rwmutex_free(rw);
}

TEST(rwmutex_hammer)
{
    rw_hammer(1, 1);
    rw_hammer(1, 3);
    rw_hammer(2, 3);
    rw_hammer(4, 10);
}

/* ---- RWMutex: readers hold it together (TestParallelReaders) ------------- */

static void parallel_reader(void *arg)
{
    void **a = arg;
    gopy_rwmutex_rlock(a[0]);
    h_send(a[1], 1); /* inside */
    h_recv(a[2]);    /* stay until every reader is inside */
    gopy_rwmutex_runlock(a[0]);
    h_send(a[1], 2);
}

TEST(rwmutex_parallel_readers)
{
    enum { READERS = 50 };
    for (int procs = 1; procs <= 4; procs *= 2) {
        gopy_gomaxprocs(procs);
        gopy_rwmutex *m = gopy_rwmutex_make();
        gopy_chan *inside = h_chan(sizeof(int64_t), 0), *leave = h_chan(sizeof(int64_t), 0);
        void *a[3] = {m, inside, leave};
        for (int i = 0; i < READERS; i++)
            h_go(parallel_reader, a);
        for (int i = 0; i < READERS; i++)
            CHECK_EQ(h_recv(inside), 1);
        /* All of them hold it now: a writer cannot. */
        CHECK(!gopy_rwmutex_trylock(m));
        CHECK(gopy_rwmutex_tryrlock(m));
        gopy_rwmutex_runlock(m);
        for (int i = 0; i < READERS; i++)
            h_send(leave, 0);
        for (int i = 0; i < READERS; i++)
            CHECK_EQ(h_recv(inside), 2);
        CHECK(gopy_rwmutex_trylock(m));
        gopy_rwmutex_unlock(m);
        gopy_chan_release(inside);
        gopy_chan_release(leave);
        gopy_rwmutex_free(m);
    }
}

/* ---- RWMutex: a waiting writer keeps new readers out ---------------------- */

static _Atomic int order_next;
static _Atomic int writer_at, late_reader_at, pref_finished;

static void pref_writer(void *arg)
{
    gopy_rwmutex_lock(arg);
    atomic_store(&writer_at, atomic_fetch_add(&order_next, 1) + 1);
    gopy_rwmutex_unlock(arg);
    atomic_fetch_add(&pref_finished, 1);
}

static void pref_late_reader(void *arg)
{
    gopy_rwmutex_rlock(arg);
    atomic_store(&late_reader_at, atomic_fetch_add(&order_next, 1) + 1);
    gopy_rwmutex_runlock(arg);
    atomic_fetch_add(&pref_finished, 1);
}

TEST(rwmutex_writer_preference)
{
    gopy_rwmutex *m = gopy_rwmutex_make();
    atomic_store(&order_next, 0);
    atomic_store(&writer_at, 0);
    atomic_store(&late_reader_at, 0);
    atomic_store(&pref_finished, 0);
    gopy_rwmutex_rlock(m); /* the first reader: this thread */
    h_go(pref_writer, m);
    h_await_waiting(GOPY_WAIT_RWMUTEX_W, m, 1);
    /* The writer waits for us; a new reader may not join us. */
    CHECK(!gopy_rwmutex_tryrlock(m));
    h_go(pref_late_reader, m);
    h_await_waiting(GOPY_WAIT_RWMUTEX_R, m, 1);
    CHECK_EQ(atomic_load(&order_next), 0);
    gopy_rwmutex_runlock(m);
    h_await_count(&pref_finished, 2);
    CHECK_EQ(atomic_load(&writer_at), 1);
    CHECK_EQ(atomic_load(&late_reader_at), 2);
    gopy_rwmutex_free(m);
}

/* ---- RWMutex: trylock, misuse ---------------------------------------------- */

TEST(rwmutex_trylock_and_misuse)
{
    gopy_rwmutex *m = gopy_rwmutex_make();
    CHECK_EQ(gopy_rt_rwmutex_unlock(m), GOPY_ENOTLOCKED);
    CHECK_EQ(gopy_rt_rwmutex_runlock(m), GOPY_ENOTLOCKED);
    CHECK(gopy_rwmutex_tryrlock(m));
    CHECK(gopy_rwmutex_tryrlock(m));
    CHECK(!gopy_rwmutex_trylock(m));
    CHECK_EQ(gopy_rt_rwmutex_unlock(m), GOPY_ENOTLOCKED); /* readers only */
    gopy_rwmutex_runlock(m);
    gopy_rwmutex_runlock(m);
    CHECK_EQ(gopy_rt_rwmutex_runlock(m), GOPY_ENOTLOCKED);
    CHECK(gopy_rwmutex_trylock(m));
    CHECK(!gopy_rwmutex_trylock(m));
    CHECK(!gopy_rwmutex_tryrlock(m));
    CHECK_EQ(gopy_rt_rwmutex_runlock(m), GOPY_ENOTLOCKED); /* writer only */
    gopy_rwmutex_unlock(m);
    CHECK_EQ(gopy_rt_rwmutex_unlock(m), GOPY_ENOTLOCKED);
    /* After all that the state is clean. */
    gopy_rwmutex_lock(m);
    gopy_rwmutex_unlock(m);
    gopy_rwmutex_rlock(m);
    gopy_rwmutex_runlock(m);
    CHECK(gopy_rwmutex_trylock(m));
    gopy_rwmutex_unlock(m);
    gopy_rwmutex_free(m);
}

/* ---- RWMutex: a foreign thread giving up its wait (Ctrl-C) ----------------- */

static _Atomic int interrupt_now;

static int check_flag(void *arg)
{
    (void)arg;
    return atomic_load(&interrupt_now);
}

static void hold_write(void *arg)
{
    void **a = arg;
    gopy_rwmutex_lock(a[0]);
    h_send(a[1], 1);
    h_recv(a[2]);
    gopy_rwmutex_unlock(a[0]);
    h_send(a[1], 2);
}

static void hold_read(void *arg)
{
    void **a = arg;
    gopy_rwmutex_rlock(a[0]);
    h_send(a[1], 1);
    h_recv(a[2]);
    gopy_rwmutex_runlock(a[0]);
    h_send(a[1], 2);
}

static void interrupt_soon(void *arg)
{
    (void)arg;
    gopy_sleep(20 * H_MS);
    atomic_store(&interrupt_now, 1);
}

TEST(rwmutex_abandoned_waits)
{
    gopy_rwmutex *m = gopy_rwmutex_make();
    gopy_chan *ev = h_chan(sizeof(int64_t), 0), *go_on = h_chan(sizeof(int64_t), 0);
    void *a[3] = {m, ev, go_on};
    for (int round = 0; round < 3; round++) {
        /* A reader gives up waiting behind a writer. */
        h_go(hold_write, a);
        CHECK_EQ(h_recv(ev), 1);
        atomic_store(&interrupt_now, 0);
        gopy_rt_set_interrupt(check_flag, NULL, 2 * H_MS);
        h_go(interrupt_soon, NULL);
        CHECK_EQ(gopy_rt_rwmutex_rlock(m), GOPY_EINTR);
        gopy_rt_set_interrupt(NULL, NULL, 0);
        h_send(go_on, 0);
        CHECK_EQ(h_recv(ev), 2);
        /* Its stand-in reads and leaves: a writer gets in. */
        gopy_rwmutex_lock(m);
        gopy_rwmutex_unlock(m);

        /* A writer gives up waiting for a reader. */
        h_go(hold_read, a);
        CHECK_EQ(h_recv(ev), 1);
        atomic_store(&interrupt_now, 0);
        gopy_rt_set_interrupt(check_flag, NULL, 2 * H_MS);
        h_go(interrupt_soon, NULL);
        CHECK_EQ(gopy_rt_rwmutex_lock(m), GOPY_EINTR);
        gopy_rt_set_interrupt(NULL, NULL, 0);
        h_send(go_on, 0);
        CHECK_EQ(h_recv(ev), 2);
        /* Its stand-in writes and leaves: readers and writers get in. */
        gopy_rwmutex_rlock(m);
        gopy_rwmutex_runlock(m);
        gopy_rwmutex_lock(m);
        gopy_rwmutex_unlock(m);
    }
    /* Freed while no stand-in can be left (they all finished above). */
    gopy_rwmutex_free(m);
    gopy_chan_release(ev);
    gopy_chan_release(go_on);
}

/* ---- Once ------------------------------------------------------------------ */

static _Atomic int once_runs;
static _Atomic int once_finished; /* set by f just before it returns */

static void once_body(void *arg)
{
    (void)arg;
    atomic_fetch_add(&once_runs, 1);
    gopy_sleep(5 * H_MS); /* others arrive meanwhile and must wait */
    atomic_store(&once_finished, 1);
}

static void once_caller(void *arg)
{
    void **a = arg;
    gopy_once_do(a[0], once_body, NULL);
    /* Whoever returns from do sees f's work done. */
    if (atomic_load(&once_finished) != 1)
        FAIL("once_do returned before f finished");
    gopy_waitgroup_done(a[1]);
}

static void *once_thread(void *arg)
{
    once_caller(arg);
    return NULL;
}

TEST(once_runs_once)
{
    for (int round = 0; round < 20; round++) {
        atomic_store(&once_runs, 0);
        atomic_store(&once_finished, 0);
        gopy_once *o = gopy_once_make();
        gopy_waitgroup *wg = gopy_waitgroup_make();
        void *a[2] = {o, wg};
        enum { GS = 20, TS = 2 };
        gopy_waitgroup_add(wg, GS + TS);
        pthread_t t[TS];
        for (int i = 0; i < TS; i++)
            t[i] = h_thread(once_thread, a);
        for (int i = 0; i < GS; i++)
            h_go(once_caller, a);
        gopy_waitgroup_wait(wg);
        for (int i = 0; i < TS; i++)
            h_join(t[i]);
        CHECK_EQ(atomic_load(&once_runs), 1);
        CHECK(gopy_rt_once_done(o));
        gopy_once_do(o, once_body, NULL);
        CHECK_EQ(atomic_load(&once_runs), 1);
        gopy_waitgroup_free(wg);
        gopy_once_free(o);
    }
}

TEST(once_two_steps)
{
    gopy_once *o = gopy_once_make();
    bool run = false;
    CHECK(!gopy_rt_once_done(o));
    /* A caller that won but did not run f after all: the next one runs it. */
    CHECK_EQ(gopy_rt_once_begin(o, true, &run), GOPY_OK);
    CHECK(run);
    gopy_rt_once_end(o, false);
    CHECK(!gopy_rt_once_done(o));
    run = false;
    CHECK_EQ(gopy_rt_once_begin(o, true, &run), GOPY_OK);
    CHECK(run);
    /* While f "runs", a non-blocking begin says it would wait. */
    bool run2 = true;
    CHECK_EQ(gopy_rt_once_begin(o, false, &run2), GOPY_EAGAIN);
    gopy_rt_once_end(o, true);
    CHECK(gopy_rt_once_done(o));
    CHECK_EQ(gopy_rt_once_begin(o, false, &run2), GOPY_OK);
    CHECK(!run2);
    gopy_once_free(o);
}

/* ---- Cond ---------------------------------------------------------------------- */

typedef struct {
    gopy_mutex *m;
    gopy_cond *c;
    gopy_chan *running, *awake;
    int *done; /* under m */
} cond_test;

static void cond_waiter(void *arg)
{
    cond_test *t = arg;
    gopy_mutex_lock(t->m);
    h_send(t->running, 1);
    gopy_cond_wait(t->c);
    gopy_mutex_unlock(t->m);
    h_send(t->awake, 1);
}

/* Go's TestCondSignal: each signal wakes exactly one waiter. */
TEST(cond_signal)
{
    enum { N = 10 };
    gopy_mutex *m = gopy_mutex_make();
    cond_test t = {m, gopy_cond_make(gopy_mutex_locker(m)), h_chan(sizeof(int64_t), N),
                   h_chan(sizeof(int64_t), N), NULL};
    for (int i = 0; i < N; i++)
        h_go(cond_waiter, &t);
    for (int i = 0; i < N; i++)
        CHECK_EQ(h_recv(t.running), 1);
    /* Each took its ticket holding m, so once we get m they all hold one. */
    for (int i = N; i > 0; i--) {
        int64_t v;
        bool ok;
        CHECK_EQ(gopy_rt_chan_recv(t.awake, &v, &ok, false), GOPY_EAGAIN);
        gopy_mutex_lock(m);
        gopy_cond_signal(t.c);
        gopy_mutex_unlock(m);
        CHECK_EQ(h_recv(t.awake), 1);
    }
    gopy_cond_signal(t.c); /* nobody left: nothing happens */
    gopy_cond_free(t.c);
    gopy_mutex_free(m);
    gopy_chan_release(t.running);
    gopy_chan_release(t.awake);
}

/* Go's TestCondBroadcast: every round wakes all waiters of that round. */
static _Atomic int bc_round_seen[16];
typedef struct {
    gopy_mutex *m;
    gopy_cond *c;
    gopy_chan *running, *awake;
    int id, rounds;
} bc_arg;

static void bc_waiter(void *arg)
{
    /* A copy: the test may return (and its stack go) once it has our
     * last message. */
    bc_arg b = *(bc_arg *)arg;
    for (int r = 0; r < b.rounds; r++) {
        gopy_mutex_lock(b.m);
        h_send(b.running, b.id);
        gopy_cond_wait(b.c);
        gopy_mutex_unlock(b.m);
        atomic_fetch_add(&bc_round_seen[b.id], 1);
        h_send(b.awake, b.id);
    }
}

TEST(cond_broadcast)
{
    enum { N = 10, ROUNDS = 20 };
    gopy_mutex *m = gopy_mutex_make();
    gopy_cond *c = gopy_cond_make(gopy_mutex_locker(m));
    gopy_chan *running = h_chan(sizeof(int64_t), N), *awake = h_chan(sizeof(int64_t), N);
    bc_arg args[N];
    for (int i = 0; i < N; i++) {
        atomic_store(&bc_round_seen[i], 0);
        args[i] = (bc_arg){m, c, running, awake, i, ROUNDS};
        h_go(bc_waiter, &args[i]);
    }
    for (int r = 0; r < ROUNDS; r++) {
        bool seen[N] = {false};
        for (int i = 0; i < N; i++) {
            int64_t id = h_recv(running);
            CHECK(!seen[id]);
            seen[id] = true;
        }
        gopy_mutex_lock(m);
        gopy_cond_broadcast(c);
        gopy_mutex_unlock(m);
        for (int i = 0; i < N; i++)
            h_recv(awake);
        for (int i = 0; i < N; i++)
            CHECK_EQ(atomic_load(&bc_round_seen[i]), r + 1);
    }
    gopy_cond_free(c);
    gopy_mutex_free(m);
    gopy_chan_release(running);
    gopy_chan_release(awake);
}

/* Go's TestCondSignalStealing: a broadcast racing a new waiter must still
 * wake the waiter that was already there. */
typedef struct {
    gopy_mutex *m;
    gopy_cond *c;
    gopy_chan *ch;
    bool done; /* under m */
    gopy_waitgroup *finished; /* the broadcaster and the second waiter */
} steal_test;

static void steal_first(void *arg)
{
    steal_test *t = arg;
    gopy_mutex_lock(t->m);
    h_send(t->ch, 1);
    gopy_cond_wait(t->c);
    gopy_mutex_unlock(t->m);
    h_send(t->ch, 2);
}

static void steal_broadcast(void *arg)
{
    steal_test *t = arg;
    gopy_cond_broadcast(t->c);
    gopy_waitgroup_done(t->finished);
}

static void steal_second(void *arg)
{
    steal_test *t = arg;
    gopy_mutex_lock(t->m);
    while (!t->done)
        gopy_cond_wait(t->c);
    gopy_mutex_unlock(t->m);
    gopy_waitgroup_done(t->finished);
}

TEST(cond_signal_stealing)
{
    for (int iter = 0; iter < H_SCALED(1000); iter++) {
        gopy_mutex *m = gopy_mutex_make();
        steal_test t = {m, gopy_cond_make(gopy_mutex_locker(m)), h_chan(sizeof(int64_t), 0),
                        false, gopy_waitgroup_make()};
        h_go(steal_first, &t);
        CHECK_EQ(h_recv(t.ch), 1);
        gopy_mutex_lock(m); /* the first waiter is inside cond_wait now */
        gopy_mutex_unlock(m);
        gopy_waitgroup_add(t.finished, 2);
        h_go(steal_broadcast, &t);
        h_go(steal_second, &t);
        CHECK_EQ(h_recv(t.ch), 2);
        gopy_mutex_lock(m);
        t.done = true;
        gopy_mutex_unlock(m);
        gopy_cond_broadcast(t.c); /* the second waiter, if it missed one */
        gopy_waitgroup_wait(t.finished);
        gopy_waitgroup_free(t.finished);
        gopy_cond_free(t.c);
        gopy_chan_release(t.ch);
        gopy_mutex_free(m);
    }
}

/* A foreign waiter gives up while queued; a signal that reaches its
 * ticket passes on to the goroutine queued after it. */
static void cond_goroutine_waiter(void *arg)
{
    cond_test *t = arg;
    gopy_mutex_lock(t->m);
    uint32_t ticket = gopy_rt_cond_ticket(t->c);
    gopy_mutex_unlock(t->m);
    h_send(t->running, 1);
    CHECK_EQ(gopy_rt_cond_wait_ticket(t->c, ticket, true), GOPY_OK);
    h_send(t->awake, 1);
}

TEST(cond_abandoned_wait_passes_signal)
{
    gopy_mutex *m = gopy_mutex_make();
    cond_test t = {m, gopy_cond_make(gopy_mutex_locker(m)), h_chan(sizeof(int64_t), 1),
                   h_chan(sizeof(int64_t), 1), NULL};
    for (int round = 0; round < 5; round++) {
        /* This thread takes the older ticket, then gives up. */
        uint32_t mine = gopy_rt_cond_ticket(t.c);
        h_go(cond_goroutine_waiter, &t);
        CHECK_EQ(h_recv(t.running), 1);
        h_await_waiting(GOPY_WAIT_COND, t.c, 1);
        atomic_store(&interrupt_now, 0);
        gopy_rt_set_interrupt(check_flag, NULL, 2 * H_MS);
        h_go(interrupt_soon, NULL);
        CHECK_EQ(gopy_rt_cond_wait_ticket(t.c, mine, true), GOPY_EINTR);
        gopy_rt_set_interrupt(NULL, NULL, 0);
        /* One signal: it reaches our tombstone first, then the goroutine. */
        gopy_cond_signal(t.c);
        CHECK_EQ(h_recv(t.awake), 1);
    }
    /* A non-blocking wait on a notified ticket succeeds at once. */
    uint32_t tk = gopy_rt_cond_ticket(t.c);
    CHECK_EQ(gopy_rt_cond_wait_ticket(t.c, tk, false), GOPY_EAGAIN);
    gopy_cond_broadcast(t.c);
    CHECK_EQ(gopy_rt_cond_wait_ticket(t.c, tk, false), GOPY_OK);
    gopy_cond_free(t.c);
    gopy_mutex_free(m);
    gopy_chan_release(t.running);
    gopy_chan_release(t.awake);
}

/* ---- Pool ---------------------------------------------------------------------- */

static _Atomic int released_count;

static void count_release(void *item, void *ctx)
{
    (void)item;
    (void)ctx;
    atomic_fetch_add(&released_count, 1);
}

static _Atomic int new_count;

static void *make_new(void *ctx)
{
    (void)ctx;
    return (void *)(intptr_t)(1000 + atomic_fetch_add(&new_count, 1));
}

TEST(pool_basic)
{
    atomic_store(&released_count, 0);
    gopy_pool *p = gopy_pool_make(NULL, count_release, NULL);
    CHECK(gopy_pool_get(p) == NULL);
    gopy_pool_put(p, (void *)1);
    gopy_pool_put(p, (void *)2);
    /* Go's TestPool: private first, then the shared deque. */
    CHECK_EQ((intptr_t)gopy_pool_get(p), 1);
    CHECK_EQ((intptr_t)gopy_pool_get(p), 2);
    CHECK(gopy_pool_get(p) == NULL);
    gopy_pool_put(p, NULL); /* ignored */
    CHECK(gopy_pool_get(p) == NULL);

    /* An item survives one cleanup (as a victim), not two. */
    gopy_pool_put(p, (void *)3);
    gopy_pool_cleanup();
    CHECK_EQ(atomic_load(&released_count), 0);
    CHECK_EQ((intptr_t)gopy_pool_get(p), 3);
    gopy_pool_put(p, (void *)4);
    gopy_pool_put(p, (void *)5);
    gopy_pool_cleanup();
    gopy_pool_cleanup();
    CHECK_EQ(atomic_load(&released_count), 2);
    CHECK(gopy_pool_get(p) == NULL);

    /* Freeing releases what is left, primaries and victims. */
    gopy_pool_put(p, (void *)6);
    gopy_pool_cleanup();
    gopy_pool_put(p, (void *)7);
    gopy_pool_put(p, (void *)8);
    gopy_pool_free(p);
    CHECK_EQ(atomic_load(&released_count), 5);

    atomic_store(&new_count, 0);
    p = gopy_pool_make(make_new, NULL, NULL);
    CHECK_EQ((intptr_t)gopy_pool_get(p), 1000);
    gopy_pool_put(p, (void *)9);
    CHECK_EQ((intptr_t)gopy_pool_get(p), 9);
    CHECK_EQ((intptr_t)gopy_pool_get(p), 1001);
    gopy_pool_free(p);
}

/* Go's TestPoolStress, with ownership checked: an item is never handed
 * to two holders at once. */
enum { POOL_ITEMS = 64 };
static _Atomic int item_holder[POOL_ITEMS + 1];

static void pool_worker(void *arg)
{
    void **a = arg;
    gopy_pool *p = a[0];
    int iters = H_SCALED(20000);
    for (int i = 0; i < iters; i++) {
        intptr_t item = (intptr_t)gopy_pool_get(p);
        if (item == 0)
            continue;
        if (atomic_fetch_add(&item_holder[item], 1) != 0)
            FAIL("item %ld handed out twice", (long)item);
        if (i % 7 == 0)
            gopy_yield();
        atomic_fetch_sub(&item_holder[item], 1);
        gopy_pool_put(p, (void *)item);
        if (i % 1000 == 0 && (intptr_t)a[2] == 0)
            gopy_pool_cleanup(); /* victims move under the others' feet */
    }
    gopy_waitgroup_done(a[1]);
}

TEST(pool_stress)
{
    gopy_gomaxprocs(4);
    atomic_store(&released_count, 0);
    gopy_pool *p = gopy_pool_make(NULL, count_release, NULL);
    for (intptr_t i = 1; i <= POOL_ITEMS; i++)
        gopy_pool_put(p, (void *)i);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    enum { WORKERS = 16 };
    void *args[WORKERS][3];
    gopy_waitgroup_add(wg, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        args[i][0] = p;
        args[i][1] = wg;
        args[i][2] = (void *)(intptr_t)i;
        h_go(pool_worker, args[i]);
    }
    gopy_waitgroup_wait(wg);
    /* Every item is either still pooled or was released by a cleanup,
     * never both, never lost.  (Gets see other slots' shared items but
     * not their private ones, as in Go: freeing releases those.) */
    int pooled = 0;
    void *item;
    while ((item = gopy_pool_get(p)) != NULL) {
        CHECK_EQ(atomic_load(&item_holder[(intptr_t)item]), 0);
        atomic_store(&item_holder[(intptr_t)item], -1); /* seen */
        pooled++;
    }
    gopy_pool_free(p);
    CHECK_EQ(pooled + atomic_load(&released_count), POOL_ITEMS);
    gopy_waitgroup_free(wg);
}

/* ---- Map ----------------------------------------------------------------------- */

/* Keys and values are small integers (as pointers); refs[] counts the
 * map's references to each, through retain / release. */
enum { KEYSPACE = 512, VALSPACE = 4096 };
static _Atomic int key_refs[KEYSPACE], val_refs[VALSPACE];
static int hash_mod; /* 0: a good hash; else key % hash_mod (full collisions) */

#define KEY(k) ((void *)(intptr_t)((k) + 1))
#define VAL(v) ((void *)(intptr_t)(((v) + 1) << 16))
#define KEY_OF(p) ((int)(intptr_t)(p) - 1)
#define VAL_OF(p) ((int)((intptr_t)(p) >> 16) - 1)

static uint64_t t_hash(const void *key, void *ctx)
{
    (void)ctx;
    uint64_t k = (uint64_t)KEY_OF(key);
    return hash_mod != 0 ? k % (uint64_t)hash_mod : k * 0x9E3779B97F4A7C15ull;
}

static bool t_key_equal(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    return a == b;
}

static void t_retain(void *p, void *ctx)
{
    (void)ctx;
    if ((intptr_t)p < (1 << 16))
        atomic_fetch_add(&key_refs[KEY_OF(p)], 1);
    else
        atomic_fetch_add(&val_refs[VAL_OF(p)], 1);
}

static void t_release(void *p, void *ctx)
{
    (void)ctx;
    int n = (intptr_t)p < (1 << 16) ? atomic_fetch_sub(&key_refs[KEY_OF(p)], 1)
                                    : atomic_fetch_sub(&val_refs[VAL_OF(p)], 1);
    if (n <= 0)
        FAIL("released %p more often than retained", p);
}

static const gopy_map_type t_type = {t_hash, t_key_equal, NULL, t_retain, t_release, NULL};

static void refs_reset(void)
{
    for (int i = 0; i < KEYSPACE; i++)
        atomic_store(&key_refs[i], 0);
    for (int i = 0; i < VALSPACE; i++)
        atomic_store(&val_refs[i], 0);
}

static void refs_check_zero(void)
{
    for (int i = 0; i < KEYSPACE; i++)
        CHECK_EQ(atomic_load(&key_refs[i]), 0);
    for (int i = 0; i < VALSPACE; i++)
        CHECK_EQ(atomic_load(&val_refs[i]), 0);
}

/* Values handed back to us are retained for us: drop them. */
static int got(void *v)
{
    int n = VAL_OF(v);
    t_release(v, NULL);
    return n;
}

typedef struct {
    int model[KEYSPACE]; /* -1: absent */
    int count;
} range_check;

static bool range_fn(void *key, void *value, void *arg)
{
    range_check *rc = arg;
    int k = KEY_OF(key);
    if (rc->model[k] != VAL_OF(value))
        FAIL("range: key %d has %d, model %d", k, VAL_OF(value), rc->model[k]);
    rc->count++;
    return true;
}

static void map_model_run(int mod)
{
    hash_mod = mod;
    refs_reset();
    gopy_map *m = gopy_map_make(&t_type);
    int model[KEYSPACE];
    for (int i = 0; i < KEYSPACE; i++)
        model[i] = -1;
    enum { KEYS_USED = 300 };
    for (int op = 0; op < H_SCALED(200000); op++) {
        int k = (int)h_randn(KEYS_USED), v = (int)h_randn(VALSPACE);
        void *out = NULL;
        bool r;
        switch (h_randn(9)) {
        case 0:
            r = gopy_map_load(m, KEY(k), &out);
            CHECK_EQ(r, model[k] >= 0);
            if (r)
                CHECK_EQ(got(out), model[k]);
            break;
        case 1:
            gopy_map_store(m, KEY(k), VAL(v));
            model[k] = v;
            break;
        case 2:
            r = gopy_map_load_or_store(m, KEY(k), VAL(v), &out);
            CHECK_EQ(r, model[k] >= 0);
            CHECK_EQ(got(out), r ? model[k] : v);
            if (!r)
                model[k] = v;
            break;
        case 3:
            r = gopy_map_load_and_delete(m, KEY(k), &out);
            CHECK_EQ(r, model[k] >= 0);
            if (r)
                CHECK_EQ(got(out), model[k]);
            model[k] = -1;
            break;
        case 4:
            gopy_map_delete(m, KEY(k));
            model[k] = -1;
            break;
        case 5:
            r = gopy_map_swap(m, KEY(k), VAL(v), &out);
            CHECK_EQ(r, model[k] >= 0);
            if (r)
                CHECK_EQ(got(out), model[k]);
            model[k] = v;
            break;
        case 6: {
            /* half the time the right old value */
            int old = h_randn(2) && model[k] >= 0 ? model[k] : (int)h_randn(VALSPACE);
            r = gopy_map_compare_and_swap(m, KEY(k), VAL(old), VAL(v));
            CHECK_EQ(r, model[k] >= 0 && model[k] == old);
            if (r)
                model[k] = v;
            break;
        }
        case 7: {
            int old = h_randn(2) && model[k] >= 0 ? model[k] : (int)h_randn(VALSPACE);
            r = gopy_map_compare_and_delete(m, KEY(k), VAL(old));
            CHECK_EQ(r, model[k] >= 0 && model[k] == old);
            if (r)
                model[k] = -1;
            break;
        }
        case 8:
            if (h_randn(500) == 0) {
                gopy_map_clear(m);
                for (int i = 0; i < KEYSPACE; i++)
                    model[i] = -1;
            }
            break;
        }
        if (op % 5000 == 0) {
            range_check rc;
            memcpy(rc.model, model, sizeof model);
            rc.count = 0;
            gopy_map_range(m, range_fn, &rc);
            int n = 0;
            for (int i = 0; i < KEYSPACE; i++)
                n += model[i] >= 0;
            CHECK_EQ(rc.count, n);
            CHECK_EQ(gopy_map_len(m), n);
            /* The map holds one reference per present key and value. */
            for (int i = 0; i < KEYS_USED; i++)
                CHECK_EQ(atomic_load(&key_refs[i]), model[i] >= 0);
        }
    }
    gopy_map_free(m);
    refs_check_zero();
}

TEST(map_model)
{
    map_model_run(0); /* spread over the trie */
    map_model_run(7); /* seven chains of full-hash collisions */
    map_model_run(1); /* one chain */
}

static bool stop_after_three(void *key, void *value, void *arg)
{
    (void)key;
    (void)value;
    return ++*(int *)arg < 3;
}

TEST(map_range_stops)
{
    hash_mod = 0;
    refs_reset();
    gopy_map *m = gopy_map_make(&t_type);
    for (int k = 0; k < 10; k++)
        gopy_map_store(m, KEY(k), VAL(k));
    int calls = 0;
    gopy_map_range(m, stop_after_three, &calls);
    CHECK_EQ(calls, 3);
    gopy_map_free(m);
    refs_check_zero();

    /* Plain pointers: no callbacks at all. */
    gopy_map_type plain = {0};
    m = gopy_map_make(&plain);
    int a, b;
    gopy_map_store(m, &a, &b);
    void *out = NULL;
    CHECK(gopy_map_load(m, &a, &out));
    CHECK(out == &b);
    CHECK(!gopy_map_load(m, &b, &out));
    CHECK(gopy_map_compare_and_swap(m, &a, &b, &a));
    CHECK(!gopy_map_compare_and_delete(m, &a, &b));
    CHECK(gopy_map_compare_and_delete(m, &a, &a));
    CHECK_EQ(gopy_map_len(m), 0);
    gopy_map_free(m);
}

/* Concurrent writers on their own keys, readers everywhere. */
typedef struct {
    gopy_map *m;
    gopy_waitgroup *wg;
    int id, nwriters;
} map_worker_arg;

static _Atomic int map_stop;

static void map_writer(void *arg)
{
    map_worker_arg *w = arg;
    int iters = H_SCALED(30000);
    for (int i = 0; i < iters; i++) {
        int k = w->id + w->nwriters * (int)h_randn(KEYSPACE / w->nwriters);
        void *out;
        switch (h_randn(4)) {
        case 0:
            gopy_map_store(w->m, KEY(k), VAL(k));
            break;
        case 1:
            gopy_map_delete(w->m, KEY(k));
            break;
        case 2:
            if (gopy_map_swap(w->m, KEY(k), VAL(k), &out))
                CHECK_EQ(got(out), k);
            break;
        case 3:
            if (gopy_map_load_or_store(w->m, KEY(k), VAL(k), &out) || true)
                CHECK_EQ(got(out), k);
            break;
        }
        if (i % 64 == 0)
            gopy_yield();
    }
    gopy_waitgroup_done(w->wg);
}

static bool concurrent_range_fn(void *key, void *value, void *arg)
{
    (void)arg;
    if (VAL_OF(value) != KEY_OF(key))
        FAIL("key %d holds %d", KEY_OF(key), VAL_OF(value));
    return true;
}

static void map_reader(void *arg)
{
    map_worker_arg *w = arg;
    int i = 0;
    while (!atomic_load(&map_stop)) {
        int k = (int)h_randn(KEYSPACE);
        void *out;
        if (gopy_map_load(w->m, KEY(k), &out))
            CHECK_EQ(got(out), k); /* a value is always its key's */
        if (++i % 500 == 0)
            gopy_map_range(w->m, concurrent_range_fn, NULL);
        if (i % 64 == 0)
            gopy_yield();
    }
    gopy_waitgroup_done(w->wg);
}

TEST(map_concurrent)
{
    gopy_gomaxprocs(4);
    for (int mod = 0; mod <= 3; mod += 3) {
        hash_mod = mod;
        refs_reset();
        atomic_store(&map_stop, 0);
        gopy_map *m = gopy_map_make(&t_type);
        enum { WRITERS = 6, READERS = 4 };
        gopy_waitgroup *writers = gopy_waitgroup_make(), *readers = gopy_waitgroup_make();
        map_worker_arg args[WRITERS + READERS];
        gopy_waitgroup_add(writers, WRITERS);
        gopy_waitgroup_add(readers, READERS);
        for (int i = 0; i < WRITERS + READERS; i++) {
            args[i] = (map_worker_arg){m, i < WRITERS ? writers : readers, i, WRITERS};
            h_go(i < WRITERS ? map_writer : map_reader, &args[i]);
        }
        gopy_waitgroup_wait(writers);
        atomic_store(&map_stop, 1);
        gopy_waitgroup_wait(readers);
        /* Quiet now: the map holds exactly its entries' references. */
        int n = 0;
        for (int k = 0; k < KEYSPACE; k++) {
            void *out;
            bool present = gopy_map_load(m, KEY(k), &out);
            if (present)
                CHECK_EQ(got(out), k);
            n += present;
        }
        CHECK_EQ(gopy_map_len(m), n);
        gopy_map_clear(m);
        CHECK_EQ(gopy_map_len(m), 0);
        gopy_map_free(m);
        refs_check_zero();
        gopy_waitgroup_free(writers);
        gopy_waitgroup_free(readers);
    }
}
