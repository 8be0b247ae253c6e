/*
 * test_interrupt.c -- interruptible waits of foreign threads
 * (gopy_rt_set_interrupt): a blocked receive, send, select, sleep, mutex
 * lock or WaitGroup wait returns GOPY_EINTR once the check says so, and
 * leaves the object as if the operation had never started: later
 * operations work and no value is lost or duplicated.
 */
#include "harness.h"

/* A check that says "interrupt" from its n-th call on (counting down). */
static _Atomic int check_calls, check_after;

static int count_check(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&check_calls, 1) + 1;
    return n >= atomic_load(&check_after);
}

static void interrupt_after(int n, int64_t poll_ns)
{
    atomic_store(&check_calls, 0);
    atomic_store(&check_after, n);
    gopy_rt_set_interrupt(count_check, NULL, poll_ns);
}

static void no_interrupt(void)
{
    gopy_rt_set_interrupt(NULL, NULL, 0);
}

static void late_sender(void *arg)
{
    void **a = arg;
    h_send(a[0], (int64_t)(intptr_t)a[1]);
}

static void delayed_sender(void *arg)
{
    gopy_sleep(20 * H_MS); /* several polls of the waiting thread */
    late_sender(arg);
}

static void late_receiver(void *arg)
{
    void **a = arg;
    h_send(a[1], h_recv(a[0]));
}

/* ---- receive, send ------------------------------------------------------- */

TEST(recv_interrupted)
{
    for (size_t cap = 0; cap <= 2; cap += 2) {
        gopy_chan *c = h_chan(sizeof(int64_t), cap);
        int64_t v = -1;
        bool ok = true;
        interrupt_after(3, 2 * H_MS);
        CHECK_EQ(gopy_rt_chan_recv(c, &v, &ok, true), GOPY_EINTR);
        CHECK_GE(atomic_load(&check_calls), 3);
        CHECK(!ok);
        no_interrupt();
        /* Nothing of ours is left queued: a sender finds nobody. */
        int64_t w = 5;
        if (cap == 0)
            CHECK_EQ(gopy_rt_chan_send(c, &w, false), GOPY_EAGAIN);
        /* And the channel works as before. */
        void *a[2] = {c, (void *)(intptr_t)42};
        h_go(late_sender, a);
        CHECK_EQ(h_recv(c), 42);
        CHECK_EQ(gopy_chan_len(c), 0);
        gopy_chan_release(c);
    }
}

TEST(send_interrupted)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 0), *res = h_chan(sizeof(int64_t), 1);
    int64_t v = 1;
    interrupt_after(2, 2 * H_MS);
    CHECK_EQ(gopy_rt_chan_send(c, &v, true), GOPY_EINTR);
    no_interrupt();
    /* The abandoned value is not there to be received. */
    bool ok;
    CHECK_EQ(gopy_rt_chan_recv(c, &v, &ok, false), GOPY_EAGAIN);
    /* A full buffered channel likewise. */
    gopy_chan *b = h_chan(sizeof(int64_t), 1);
    h_send(b, 10);
    v = 11;
    interrupt_after(2, 2 * H_MS);
    CHECK_EQ(gopy_rt_chan_send(b, &v, true), GOPY_EINTR);
    no_interrupt();
    CHECK_EQ(gopy_chan_len(b), 1);
    CHECK_EQ(h_recv(b), 10);
    CHECK_EQ(gopy_rt_chan_recv(b, &v, &ok, false), GOPY_EAGAIN);
    /* Then a normal send reaches a receiver. */
    void *a[2] = {c, res};
    h_go(late_receiver, a);
    h_send(c, 99);
    CHECK_EQ(h_recv(res), 99);
    gopy_chan_release(c);
    gopy_chan_release(res);
    gopy_chan_release(b);
}

/* The plain API retries: gopy_chan_recv with an interrupt that always
 * fires still returns the value that comes later. */
TEST(plain_api_retries)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 0);
    interrupt_after(1, H_MS);
    void *a[2] = {c, (void *)(intptr_t)7};
    h_go(delayed_sender, a);
    CHECK_EQ(h_recv(c), 7);
    CHECK_GT(atomic_load(&check_calls), 0);
    no_interrupt();
    gopy_chan_release(c);
}

/* ---- select ----------------------------------------------------------------- */

TEST(select_interrupted)
{
    gopy_chan *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = h_chan(sizeof(int64_t), 0);
    int64_t v0 = -1, v1 = -1, out = 3;
    gopy_case cases[3] = {{.chan = c[0], .dir = GOPY_RECV, .elem = &v0},
                          {.chan = c[1], .dir = GOPY_RECV, .elem = &v1},
                          {.chan = c[2], .dir = GOPY_SEND, .elem = &out}};
    int chosen = 7;
    interrupt_after(2, 2 * H_MS);
    CHECK_EQ(gopy_rt_select(cases, 3, true, &chosen), GOPY_EINTR);
    CHECK_EQ(chosen, -1);
    CHECK_EQ(v0, -1);
    CHECK_EQ(v1, -1);
    no_interrupt();
    /* None of its sudogs remain on any channel. */
    int64_t w = 0;
    bool ok;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(gopy_rt_chan_send(c[i], &w, false), GOPY_EAGAIN);
        CHECK_EQ(gopy_rt_chan_recv(c[i], &w, &ok, false), GOPY_EAGAIN);
    }
    /* A select of no cases (blocks forever) is interruptible too. */
    interrupt_after(2, H_MS);
    CHECK_EQ(gopy_rt_select(NULL, 0, true, &chosen), GOPY_EINTR);
    no_interrupt();
    /* And a later select works. */
    void *a[2] = {c[1], (void *)(intptr_t)8};
    h_go(late_sender, a);
    CHECK_EQ(gopy_select(cases, 3, true), 1);
    CHECK_EQ(v1, 8);
    for (int i = 0; i < 3; i++)
        gopy_chan_release(c[i]);
}

/* A nil-channel receive blocks forever but is interruptible. */
/* The first thing a thread does with the runtime is to block in it, before
 * anything has started the runtime: the runtime's thread-exit key must be
 * made then, not assumed, or setting it overwrites another key's value
 * (the process's first key, which ASan, libc or Python may own). */
TEST_NOSTRESS(first_call_blocks_leaves_other_keys_alone)
{
    pthread_key_t mine;
    CHECK_EQ(pthread_key_create(&mine, NULL), 0);
    int marker;
    CHECK_EQ(pthread_setspecific(mine, &marker), 0);
    gopy_chan *c = gopy_chan_make(sizeof(int64_t), 0);
    int64_t v;
    bool ok;
    interrupt_after(1, H_MS);
    CHECK_EQ(gopy_rt_chan_recv(c, &v, &ok, true), GOPY_EINTR);
    no_interrupt();
    CHECK(pthread_getspecific(mine) == &marker);
    gopy_chan_release(c);
}

TEST(nil_recv_interrupted)
{
    int64_t v;
    bool ok;
    interrupt_after(2, H_MS);
    CHECK_EQ(gopy_rt_chan_recv(NULL, &v, &ok, true), GOPY_EINTR);
    CHECK_EQ(gopy_rt_chan_send(NULL, &v, true), GOPY_EINTR);
    no_interrupt();
}

/* ---- sleep ------------------------------------------------------------------ */

TEST(sleep_interrupted)
{
    int64_t t0 = h_now();
    interrupt_after(2, 5 * H_MS);
    CHECK_EQ(gopy_rt_sleep(10 * H_SEC), GOPY_EINTR);
    CHECK_LT(h_now() - t0, 5 * H_SEC); /* a hang bound, not a timing claim */
    no_interrupt();
    /* A check that never fires leaves the sleep alone. */
    interrupt_after(1 << 30, H_MS);
    t0 = h_now();
    CHECK_EQ(gopy_rt_sleep(20 * H_MS), GOPY_OK);
    CHECK_GE(h_now() - t0, 20 * H_MS);
    CHECK_GT(atomic_load(&check_calls), 0);
    no_interrupt();
}

/* ---- mutex and WaitGroup ------------------------------------------------------ */

static void hold_until(void *arg)
{
    void **a = arg;
    gopy_mutex_lock(a[0]);
    h_send(a[2], 1); /* holding it */
    h_recv(a[1]);
    gopy_mutex_unlock(a[0]);
}

TEST(mutex_lock_interrupted)
{
    gopy_mutex *m = gopy_mutex_make();
    gopy_chan *release = h_chan(sizeof(int64_t), 0), *held = h_chan(sizeof(int64_t), 0);
    void *a[3] = {m, release, held};
    h_go(hold_until, a);
    CHECK_EQ(h_recv(held), 1);
    interrupt_after(2, 2 * H_MS);
    CHECK_EQ(gopy_rt_mutex_lock(m), GOPY_EINTR);
    no_interrupt();
    CHECK(!gopy_mutex_trylock(m));
    h_send(release, 1);
    CHECK_EQ(gopy_rt_mutex_lock(m), GOPY_OK);
    gopy_mutex_unlock(m);
    /* The state is clean: uncontended lock/unlock, trylock. */
    CHECK(gopy_mutex_trylock(m));
    gopy_mutex_unlock(m);
    for (int i = 0; i < 3; i++) {
        h_go(hold_until, a);
        CHECK_EQ(h_recv(held), 1);
        h_send(release, 1);
        gopy_mutex_lock(m);
        gopy_mutex_unlock(m);
    }
    gopy_mutex_free(m);
    gopy_chan_release(release);
    gopy_chan_release(held);
}

static void done_later(void *arg)
{
    gopy_waitgroup_done(arg);
}

TEST(waitgroup_wait_interrupted)
{
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, 1);
    interrupt_after(2, 2 * H_MS);
    CHECK_EQ(gopy_rt_waitgroup_wait(wg), GOPY_EINTR);
    no_interrupt();
    CHECK_EQ(gopy_rt_waitgroup_count(wg), 1);
    h_go(done_later, wg);
    CHECK_EQ(gopy_rt_waitgroup_wait(wg), GOPY_OK);
    /* A new round is not mistaken for reuse. */
    for (int r = 0; r < 3; r++) {
        gopy_waitgroup_add(wg, 2);
        h_go(done_later, wg);
        h_go(done_later, wg);
        CHECK_EQ(gopy_rt_waitgroup_wait(wg), GOPY_OK);
    }
    gopy_waitgroup_free(wg);
}

/* ---- racing the interrupt with the other side: nothing lost or doubled --- */

static void race_send_one(void *arg)
{
    void **a = arg;
    int64_t spin = h_now() + (int64_t)h_randn(300000);
    while (h_now() < spin) {
    }
    h_send(a[0], (int64_t)(intptr_t)a[1]);
}

static int always(void *arg)
{
    (void)arg;
    return 1;
}

/* Receive guarded by a timer: fail rather than hang if the value is lost. */
static int64_t recv_or_fail(gopy_chan *c, const char *what, int i)
{
    gopy_timer *t = gopy_rt_timer_new(10 * H_SEC, 0);
    int64_t v = -1, tv;
    gopy_case cases[2] = {{.chan = c, .dir = GOPY_RECV, .elem = &v},
                          {.chan = gopy_rt_timer_chan(t), .dir = GOPY_RECV, .elem = &tv}};
    if (gopy_select(cases, 2, true) != 0)
        FAIL("iteration %d: %s", i, what);
    gopy_rt_timer_free(t);
    return v;
}

TEST(recv_interrupt_race)
{
    int n = H_SCALED(2000), intr = 0;
    gopy_chan *c = h_chan(sizeof(int64_t), 0);
    for (int i = 0; i < n; i++) {
        void *a[2] = {c, (void *)(intptr_t)i};
        h_go(race_send_one, a);
        gopy_rt_set_interrupt(always, NULL, 20000 + (int64_t)h_randn(200000));
        int64_t v = -1;
        bool ok = false;
        int r = gopy_rt_chan_recv(c, &v, &ok, true);
        no_interrupt();
        if (r == GOPY_OK) {
            CHECK(ok);
            CHECK_EQ(v, i);
        } else {
            CHECK_EQ(r, GOPY_EINTR);
            intr++;
            /* The sender still waits with its value. */
            CHECK_EQ(recv_or_fail(c, "value lost by an interrupted receive", i), i);
        }
    }
    fprintf(stderr, "     %d of %d receives interrupted\n", intr, n);
    gopy_chan_release(c);
}

static void race_recv_one(void *arg)
{
    void **a = arg;
    int64_t spin = h_now() + (int64_t)h_randn(300000);
    while (h_now() < spin) {
    }
    h_send(a[1], h_recv(a[0]));
}

TEST(send_interrupt_race)
{
    int n = H_SCALED(2000), intr = 0;
    gopy_chan *c = h_chan(sizeof(int64_t), 0), *got = h_chan(sizeof(int64_t), 1);
    for (int i = 0; i < n; i++) {
        void *a[2] = {c, got};
        h_go(race_recv_one, a);
        gopy_rt_set_interrupt(always, NULL, 20000 + (int64_t)h_randn(200000));
        int64_t v = i;
        int r = gopy_rt_chan_send(c, &v, true);
        no_interrupt();
        if (r != GOPY_OK) {
            CHECK_EQ(r, GOPY_EINTR);
            intr++;
            /* The receiver got nothing: it takes this second value. */
            int64_t marker = 1000000 + i;
            gopy_timer *t = gopy_rt_timer_new(10 * H_SEC, 0);
            int64_t tv;
            gopy_case cases[2] = {{.chan = c, .dir = GOPY_SEND, .elem = &marker},
                                  {.chan = gopy_rt_timer_chan(t), .dir = GOPY_RECV, .elem = &tv}};
            if (gopy_select(cases, 2, true) != 0)
                FAIL("iteration %d: the interrupted send was delivered anyway", i);
            gopy_rt_timer_free(t);
            CHECK_EQ(h_recv(got), marker);
        } else {
            CHECK_EQ(h_recv(got), i);
        }
    }
    fprintf(stderr, "     %d of %d sends interrupted\n", intr, n);
    gopy_chan_release(c);
    gopy_chan_release(got);
}

/* ---- goroutines ignore it ------------------------------------------------------- */

static void set_in_goroutine(void *arg)
{
    void **a = arg;
    gopy_rt_set_interrupt(always, NULL, H_MS); /* no effect on goroutines */
    h_send(a[1], h_recv(a[0]));
}

TEST(goroutines_not_interruptible)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 0), *res = h_chan(sizeof(int64_t), 1);
    void *a[2] = {c, res};
    h_go(set_in_goroutine, a);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, c, 1);
    gopy_sleep(20 * H_MS);
    h_send(c, 5);
    CHECK_EQ(h_recv(res), 5);
    gopy_chan_release(c);
    gopy_chan_release(res);
}
