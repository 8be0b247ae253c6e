/*
 * test_time.c -- sleeping and timers: gopy_sleep ordering and minimum
 * durations, gopy_rt_timer_new / stop / reset with Go 1.23 semantics (no
 * stale value after stop or reset returns), tickers (repeat, drop ticks
 * for a slow reader), func timers, timers on Ps that are retired.
 *
 * Wall-clock bounds here are lower bounds (a sleep or timer never ends
 * early) or generous upper bounds that only catch hangs.
 */
#include "harness.h"

/* ---- gopy_sleep -------------------------------------------------------- */

enum { SLEEPERS = 8 };
/* Wider than a woken sleeper's wait for a CPU: under TSan on a loaded
 * 2-core machine that reached 30 ms (a CI run, sleep_order). */
static const int64_t SLEEP_GAP = (H_SANITIZER ? 100 : 30) * H_MS;

static void ordered_sleeper(void *arg)
{
    void **a = arg;
    int64_t i = (int64_t)(intptr_t)a[0];
    int64_t d = (i + 1) * SLEEP_GAP;
    int64_t t0 = h_now();
    gopy_sleep(d);
    int64_t slept = h_now() - t0;
    CHECK_GE(slept, d); /* never early */
    h_send(a[1], i);
}

TEST_NOSTRESS(sleep_order)
{
    /* Started in a random order; must wake in order of duration. */
    gopy_chan *c = h_chan(sizeof(int64_t), SLEEPERS);
    int order[SLEEPERS];
    for (int i = 0; i < SLEEPERS; i++)
        order[i] = i;
    for (int i = SLEEPERS - 1; i > 0; i--) {
        int j = (int)h_randn((uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    void *args[SLEEPERS][2];
    for (int i = 0; i < SLEEPERS; i++) {
        args[i][0] = (void *)(intptr_t)order[i];
        args[i][1] = c;
        h_go(ordered_sleeper, args[i]);
    }
    for (int64_t i = 0; i < SLEEPERS; i++)
        CHECK_EQ(h_recv(c), i);
    gopy_chan_release(c);
}

static _Atomic int64_t sleepers_done;

static void random_sleeper(void *arg)
{
    int64_t d = (int64_t)(intptr_t)arg;
    int64_t t0 = h_now();
    gopy_sleep(d);
    CHECK_GE(h_now() - t0, d);
    atomic_fetch_add(&sleepers_done, 1);
}

static void *thread_sleeper(void *arg)
{
    (void)arg;
    int64_t t0 = h_now();
    gopy_sleep(25 * H_MS);
    CHECK_GE(h_now() - t0, 25 * H_MS);
    CHECK_EQ(gopy_rt_sleep(-1), GOPY_OK);
    return NULL;
}

TEST(sleep_durations)
{
    enum { N = 500 };
    int64_t total = 0;
    for (int i = 0; i < N; i++) {
        int64_t d = (int64_t)h_randn(20 * H_MS) + 1;
        total += d;
        h_go(random_sleeper, (void *)(intptr_t)d);
    }
    pthread_t t = h_thread(thread_sleeper, NULL);
    /* The main thread sleeps too (a foreign thread's sleep). */
    int64_t t0 = h_now();
    gopy_sleep(30 * H_MS);
    CHECK_GE(h_now() - t0, 30 * H_MS);
    t0 = h_now();
    gopy_sleep(0);
    gopy_sleep(-100);
    CHECK_LT(h_now() - t0, H_SEC);
    h_join(t);
    int64_t deadline = h_now() + 30 * H_SEC;
    while (atomic_load(&sleepers_done) < N && h_now() < deadline)
        gopy_sleep(H_MS);
    CHECK_EQ(atomic_load(&sleepers_done), N);
    (void)total;
    /* All sleep timers are gone. */
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, 0);
}

/* ---- channel timers ------------------------------------------------------ */

static bool try_recv(gopy_chan *c, int64_t *v)
{
    bool ok = false;
    int r = gopy_rt_chan_recv(c, v, &ok, false);
    if (r == GOPY_EAGAIN)
        return false;
    CHECK_EQ(r, GOPY_OK);
    CHECK(ok);
    return true;
}

static gopy_timer *h_timer(int64_t d, int64_t period)
{
    gopy_timer *t = gopy_rt_timer_new(d, period);
    if (t == NULL)
        FAIL("gopy_rt_timer_new failed");
    return t;
}

TEST(timer_fires_once)
{
    int64_t w0 = h_wall(), t0 = h_now();
    gopy_timer *t = h_timer(20 * H_MS, 0);
    gopy_chan *c = gopy_rt_timer_chan(t);
    CHECK(c != NULL);
    CHECK_EQ(gopy_chan_len(c), 0); /* Go 1.23: timer channels say 0 */
    CHECK_EQ(gopy_chan_cap(c), 0);
    int64_t v = h_recv(c);
    CHECK_GE(h_now() - t0, 20 * H_MS);
    /* The value is the wall-clock time of the firing. */
    CHECK_GE(v, w0 + 20 * H_MS - H_MS);
    CHECK_LE(v, h_wall());
    /* Once only. */
    gopy_sleep(30 * H_MS);
    CHECK(!try_recv(c, &v));
    /* Received, so stopping finds nothing to stop. */
    CHECK(!gopy_rt_timer_stop(t));
    gopy_rt_timer_free(t);
}

TEST(timer_stop_pending)
{
    gopy_timer *t = h_timer(10 * H_SEC, 0);
    gopy_chan *c = gopy_rt_timer_chan(t);
    CHECK(gopy_rt_timer_stop(t));  /* pending: stopped */
    CHECK(!gopy_rt_timer_stop(t)); /* already stopped */
    int64_t v;
    CHECK(!try_recv(c, &v));
    /* Reset of a stopped timer: not pending; it fires again. */
    int64_t t0 = h_now();
    CHECK(!gopy_rt_timer_reset(t, 20 * H_MS, 0));
    v = h_recv(c);
    CHECK_GE(h_now() - t0, 20 * H_MS);
    CHECK(!try_recv(c, &v));
    gopy_rt_timer_free(t);

    /* Stop in time: it never fires. */
    t = h_timer(30 * H_MS, 0);
    c = gopy_rt_timer_chan(t);
    CHECK(gopy_rt_timer_stop(t));
    gopy_sleep(60 * H_MS);
    CHECK(!try_recv(c, &v));
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, 0);
    gopy_rt_timer_free(t);
}

/* Go 1.23: a timer that fired but whose value nobody received still
 * counts as not fired -- Stop returns true ("if the program has not
 * received from t.C already and the timer is running, Stop is guaranteed
 * to return true") -- and the value is gone. */
TEST(timer_stop_after_fire_no_stale)
{
    gopy_timer *t = h_timer(H_MS, 0);
    gopy_chan *c = gopy_rt_timer_chan(t);
    gopy_sleep(50 * H_MS); /* it has fired: its value waits in the channel */
    CHECK_EQ(gopy_chan_len(c), 0);
    CHECK(gopy_rt_timer_stop(t));
    int64_t v;
    CHECK(!try_recv(c, &v)); /* no stale value */
    CHECK(!gopy_rt_timer_stop(t));
    gopy_rt_timer_free(t);
}

TEST(timer_reset_no_stale)
{
    gopy_timer *t = h_timer(H_MS, 0);
    gopy_chan *c = gopy_rt_timer_chan(t);
    gopy_sleep(50 * H_MS); /* fired, not received */
    CHECK(gopy_rt_timer_reset(t, 10 * H_SEC, 0));
    int64_t v;
    CHECK(!try_recv(c, &v)); /* the old value was dropped */
    /* Pending now: a reset says so, and exactly one value arrives. */
    int64_t t0 = h_now(), w0 = h_wall();
    CHECK(gopy_rt_timer_reset(t, 20 * H_MS, 0));
    v = h_recv(c);
    CHECK_GE(h_now() - t0, 20 * H_MS);
    CHECK_GE(v, w0 + 19 * H_MS);
    gopy_sleep(30 * H_MS);
    CHECK(!try_recv(c, &v));
    CHECK(!gopy_rt_timer_stop(t));
    gopy_rt_timer_free(t);
}

/* Stop and reset racing with the firing: whatever the interleaving, no
 * value is received afterwards, and since nothing was ever received, the
 * timer always counts as stopped before it fired (Go 1.23). */
TEST(timer_stop_reset_race)
{
    int n = H_SCALED(3000);
    int stops = 0;
    for (int i = 0; i < n; i++) {
        gopy_timer *t = h_timer((int64_t)h_randn(100000), 0);
        gopy_chan *c = gopy_rt_timer_chan(t);
        int64_t spin = h_now() + (int64_t)h_randn(150000);
        while (h_now() < spin) {
        }
        int64_t v;
        if (i % 2 == 0) {
            bool stopped = gopy_rt_timer_stop(t);
            if (!stopped)
                FAIL("iteration %d: stop returned false for a timer never received from", i);
            stops++;
            CHECK(!try_recv(c, &v));
        } else {
            bool pending = gopy_rt_timer_reset(t, 10 * H_SEC, 0);
            if (!pending)
                FAIL("iteration %d: reset returned false for a timer never received from", i);
            CHECK(!try_recv(c, &v));
            CHECK(gopy_rt_timer_stop(t));
            CHECK(!try_recv(c, &v));
        }
        gopy_rt_timer_free(t);
    }
    CHECK_GT(stops, 0);
}

/* A receiver parked on the timer channel: the value goes straight to it,
 * and a stop afterwards finds nothing. */
static void timer_waiter(void *arg)
{
    void **a = arg;
    h_send(a[1], h_recv(a[0]) > 0);
}

TEST(timer_parked_receiver)
{
    gopy_timer *t = h_timer(30 * H_MS, 0);
    gopy_chan *c = gopy_rt_timer_chan(t), *res = h_chan(sizeof(int64_t), 1);
    void *a[2] = {c, res};
    h_go(timer_waiter, a);
    CHECK_EQ(h_recv(res), 1);
    CHECK(!gopy_rt_timer_stop(t));
    gopy_rt_timer_free(t);
    gopy_chan_release(res);
}

/* time.After in a select: the timeout case wins when nothing else is
 * ready; a ready channel wins over a timer that has not fired. */
TEST(timer_in_select)
{
    gopy_chan *never = h_chan(sizeof(int64_t), 0), *ready = h_chan(sizeof(int64_t), 1);
    int64_t t0 = h_now();
    gopy_timer *t = h_timer(20 * H_MS, 0);
    int64_t v = 0, tv = 0;
    gopy_case cases[2] = {{.chan = never, .dir = GOPY_RECV, .elem = &v},
                          {.chan = gopy_rt_timer_chan(t), .dir = GOPY_RECV, .elem = &tv}};
    CHECK_EQ(gopy_select(cases, 2, true), 1);
    CHECK_GE(h_now() - t0, 20 * H_MS);
    CHECK_GT(tv, 0);
    CHECK(!gopy_rt_timer_reset(t, 10 * H_SEC, 0));
    h_send(ready, 5);
    cases[0].chan = ready;
    CHECK_EQ(gopy_select(cases, 2, true), 0);
    CHECK_EQ(v, 5);
    gopy_rt_timer_free(t);
    gopy_chan_release(never);
    gopy_chan_release(ready);
}

/* Many timers at once from many goroutines: each fires exactly once. */
static _Atomic int64_t many_fired;

static void many_timer_user(void *arg)
{
    int64_t d = (int64_t)(intptr_t)arg;
    int64_t t0 = h_now();
    gopy_timer *t = h_timer(d, 0);
    gopy_chan *c = gopy_rt_timer_chan(t);
    h_recv(c);
    CHECK_GE(h_now() - t0, d);
    int64_t v;
    CHECK(!try_recv(c, &v));
    gopy_rt_timer_free(t);
    atomic_fetch_add(&many_fired, 1);
}

TEST(many_timers)
{
    enum { N = 1000 };
    for (int i = 0; i < N; i++)
        h_go(many_timer_user, (void *)(intptr_t)(h_randn(50 * H_MS) + 1));
    int64_t deadline = h_now() + 30 * H_SEC;
    while (atomic_load(&many_fired) < N && h_now() < deadline)
        gopy_sleep(H_MS);
    CHECK_EQ(atomic_load(&many_fired), N);
}

/* ---- tickers ---------------------------------------------------------- */

TEST_NOSTRESS(ticker_repeats)
{
    const int64_t period = 20 * H_MS;
    int64_t t0 = h_now();
    gopy_timer *t = h_timer(period, period);
    gopy_chan *c = gopy_rt_timer_chan(t);
    int64_t prev = 0;
    for (int k = 1; k <= 5; k++) {
        int64_t v = h_recv(c);
        /* Tick k is due at t0 + k*period and is never early. */
        CHECK_GE(h_now() - t0, k * period);
        CHECK_GT(v, prev);
        prev = v;
    }
    CHECK(gopy_rt_timer_stop(t)); /* a ticker stays pending */
    int64_t v;
    CHECK(!try_recv(c, &v));
    gopy_sleep(3 * period);
    CHECK(!try_recv(c, &v));
    /* Reset with a new period restarts it. */
    t0 = h_now();
    CHECK(!gopy_rt_timer_reset(t, 10 * H_MS, 10 * H_MS));
    for (int k = 1; k <= 3; k++) {
        h_recv(c);
        CHECK_GE(h_now() - t0, k * 10 * H_MS);
    }
    gopy_rt_timer_free(t);
}

TEST_NOSTRESS(ticker_drops_ticks)
{
    const int64_t period = 20 * H_MS;
    int64_t w0 = h_wall();
    gopy_timer *t = h_timer(period, period);
    gopy_chan *c = gopy_rt_timer_chan(t);
    gopy_sleep(15 * period); /* a slow reader: ~15 ticks are due */
    int64_t v, v2, w1 = h_wall();
    /* One value is waiting -- the first tick, the rest were dropped. */
    CHECK(try_recv(c, &v));
    CHECK_GE(v, w0 + period - H_MS);
    CHECK_LT(v, w1 - 10 * period);
    /* No second old tick behind it; only a tick that fired just now can
     * be there. */
    if (try_recv(c, &v2))
        CHECK_GE(v2, w1);
    CHECK_EQ(gopy_chan_len(c), 0);
    /* And it keeps ticking afterwards. */
    h_recv(c);
    gopy_rt_timer_free(t);
}

/* ---- func timers (AfterFunc) ------------------------------------------- */

static _Atomic int fired_calls;
static gopy_chan *func_out;

static void func_goroutine(void *arg)
{
    CHECK_GT(gopy_rt_goid(), 0); /* runs in a goroutine */
    h_send(func_out, (int64_t)(intptr_t)arg);
}

static void on_fire(void *arg)
{
    /* On a scheduler stack: must not block; start a goroutine. */
    atomic_fetch_add(&fired_calls, 1);
    h_go(func_goroutine, arg);
}

TEST(func_timer)
{
    func_out = h_chan(sizeof(int64_t), 4);
    int64_t t0 = h_now();
    gopy_timer *t = gopy_rt_timer_func(20 * H_MS, on_fire, (void *)(intptr_t)31);
    CHECK(t != NULL);
    CHECK(gopy_rt_timer_chan(t) == NULL);
    CHECK_EQ(h_recv(func_out), 31);
    CHECK_GE(h_now() - t0, 20 * H_MS);
    CHECK_EQ(atomic_load(&fired_calls), 1);
    CHECK(!gopy_rt_timer_stop(t)); /* fired: nothing to stop */
    /* A reset re-arms it: it fires again. */
    CHECK(!gopy_rt_timer_reset(t, 5 * H_MS, 0));
    CHECK_EQ(h_recv(func_out), 31);
    CHECK_EQ(atomic_load(&fired_calls), 2);
    gopy_rt_timer_free(t);

    /* Stopped in time: not called, and a second stop finds nothing. */
    gopy_timer *u = gopy_rt_timer_func(10 * H_SEC, on_fire, (void *)(intptr_t)32);
    CHECK(gopy_rt_timer_stop(u));
    CHECK(!gopy_rt_timer_stop(u));
    gopy_sleep(20 * H_MS);
    CHECK_EQ(atomic_load(&fired_calls), 2);
    CHECK_EQ(gopy_chan_len(func_out), 0);
    /* Reset after a stop arms it again. */
    CHECK(!gopy_rt_timer_reset(u, H_MS, 0));
    CHECK_EQ(h_recv(func_out), 32);
    CHECK_EQ(atomic_load(&fired_calls), 3);
    gopy_rt_timer_free(u);
    errno = 0;
    CHECK(gopy_rt_timer_func(H_MS, NULL, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    gopy_chan_release(func_out);
}

/* ---- timers on Ps that go away ------------------------------------------ */

static void arm_and_wait(void *arg)
{
    void **a = arg;
    int64_t d = (int64_t)(intptr_t)a[0];
    gopy_timer *t = h_timer(d, 0);
    h_recv(gopy_rt_timer_chan(t));
    gopy_rt_timer_free(t);
    gopy_waitgroup_done(a[1]);
}

static void sleep_and_done(void *arg)
{
    void **a = arg;
    gopy_sleep((int64_t)(intptr_t)a[0]);
    gopy_waitgroup_done(a[1]);
}

/* Timers armed on 4 Ps (by goroutines, and by the main thread), then
 * GOMAXPROCS drops to 1 while they are pending: they move to the P left
 * and all fire. */
TEST(timers_survive_gomaxprocs_drop)
{
    enum { N = 400 };
    gopy_gomaxprocs(4);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    static void *args[N][2];
    gopy_waitgroup_add(wg, N);
    for (int i = 0; i < N; i++) {
        args[i][0] = (void *)(intptr_t)(20 * H_MS + (int64_t)h_randn(80 * H_MS));
        args[i][1] = wg;
        h_go(i % 2 ? arm_and_wait : sleep_and_done, args[i]);
    }
    gopy_timer *mine = h_timer(50 * H_MS, 0);
    gopy_sleep(5 * H_MS);
    CHECK_EQ(gopy_gomaxprocs(1), 4);
    gopy_waitgroup_wait(wg);
    h_recv(gopy_rt_timer_chan(mine));
    gopy_rt_timer_free(mine);
    /* And back up, with timers armed on the single P moving nowhere. */
    gopy_waitgroup_add(wg, N);
    for (int i = 0; i < N; i++)
        h_go(i % 2 ? arm_and_wait : sleep_and_done, args[i]);
    CHECK_EQ(gopy_gomaxprocs(3), 1);
    gopy_waitgroup_wait(wg);
    gopy_waitgroup_free(wg);
}

/* GOMAXPROCS changing all the time while timers are armed from
 * goroutines and from a foreign thread. */
static _Atomic int churn_stop;

static void *churn_thread(void *arg)
{
    (void)arg;
    static const int seq[] = {1, 3, 2, 4, 1, 2};
    for (int k = 0; !atomic_load(&churn_stop); k++) {
        gopy_gomaxprocs(seq[k % 6]);
        h_usleep(50 + (int64_t)h_randn(300));
    }
    return NULL;
}

TEST(timers_with_gomaxprocs_churn)
{
    enum { N = 300 };
    gopy_waitgroup *wg = gopy_waitgroup_make();
    static void *args[N][2];
    pthread_t churn = h_thread(churn_thread, NULL);
    for (int round = 0; round < 3; round++) {
        gopy_waitgroup_add(wg, N);
        for (int i = 0; i < N; i++) {
            args[i][0] = (void *)(intptr_t)(1 + (int64_t)h_randn(10 * H_MS));
            args[i][1] = wg;
            h_go(i % 2 ? arm_and_wait : sleep_and_done, args[i]);
        }
        /* Timers armed from this (foreign) thread too. */
        for (int i = 0; i < 50; i++) {
            gopy_timer *t = h_timer((int64_t)h_randn(5 * H_MS) + 1, 0);
            h_recv(gopy_rt_timer_chan(t));
            gopy_rt_timer_free(t);
        }
        gopy_waitgroup_wait(wg);
    }
    atomic_store(&churn_stop, 1);
    h_join(churn);
    gopy_waitgroup_free(wg);
}

/* Stopping pending timers while GOMAXPROCS churns (their Ps retire and
 * they move between heaps): every stop finds its timer pending, and no
 * stopped func timer ever fires. */
static _Atomic int churn_fired;

static void churn_fire(void *arg)
{
    (void)arg;
    atomic_fetch_add(&churn_fired, 1);
}

static void stop_many(void *arg)
{
    void **a = arg;
    enum { K = 50 };
    gopy_timer *t[K];
    for (int round = 0; round < 100; round++) {
        for (int i = 0; i < K; i++) {
            t[i] = i % 2 ? gopy_rt_timer_func(10 * H_SEC, churn_fire, NULL)
                         : h_timer(10 * H_SEC, 0);
            CHECK(t[i] != NULL);
        }
        gopy_sleep((int64_t)h_randn(300000));
        for (int i = 0; i < K; i++) {
            if (!gopy_rt_timer_stop(t[i]))
                FAIL("stop of a pending timer returned false");
            gopy_rt_timer_free(t[i]);
        }
    }
    gopy_waitgroup_done(a[0]);
}

TEST(timer_stop_during_gomaxprocs_churn)
{
    enum { G = 16 };
    atomic_store(&churn_stop, 0);
    pthread_t churn = h_thread(churn_thread, NULL);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    void *a[1] = {wg};
    gopy_waitgroup_add(wg, G);
    for (int i = 0; i < G; i++)
        h_go(stop_many, a);
    gopy_waitgroup_wait(wg);
    atomic_store(&churn_stop, 1);
    h_join(churn);
    CHECK_EQ(atomic_load(&churn_fired), 0);
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, 0);
    gopy_waitgroup_free(wg);
}

/* Timers armed by foreign threads (which have no P and pick any) while
 * GOMAXPROCS churns, then GOMAXPROCS stays at 1: every one of them
 * fires.  A timer added to a P just as it retired used to be stranded on
 * the spare P, never to run. */
enum { ARM_THREADS = 4, ARM_EACH = H_SCALED(30000) };
static gopy_timer *armed[ARM_THREADS][ARM_EACH];
static _Atomic int arm_stop;

static void *arm_churn(void *arg)
{
    (void)arg;
    static const int seq[] = {1, 4, 2, 3, 8};
    for (int k = 0; !atomic_load(&arm_stop); k++)
        gopy_gomaxprocs(seq[k % 5]);
    return NULL;
}

static void *arm_thread(void *arg)
{
    intptr_t id = (intptr_t)arg;
    for (int i = 0; i < ARM_EACH; i++)
        armed[id][i] = h_timer(100 * H_MS + (int64_t)h_randn(100 * H_MS), 0);
    return NULL;
}

TEST(timers_from_threads_during_gomaxprocs_churn)
{
    pthread_t churn = h_thread(arm_churn, NULL), t[ARM_THREADS];
    for (intptr_t i = 0; i < ARM_THREADS; i++)
        t[i] = h_thread(arm_thread, (void *)i);
    for (int i = 0; i < ARM_THREADS; i++)
        h_join(t[i]);
    atomic_store(&arm_stop, 1);
    h_join(churn);
    gopy_gomaxprocs(1);
    gopy_timer *limit = h_timer(30 * H_SEC, 0); /* hang bound */
    for (int k = 0; k < ARM_THREADS; k++) {
        for (int i = 0; i < ARM_EACH; i++) {
            int64_t v, lv;
            gopy_case cases[2] = {
                {.chan = gopy_rt_timer_chan(armed[k][i]), .dir = GOPY_RECV, .elem = &v},
                {.chan = gopy_rt_timer_chan(limit), .dir = GOPY_RECV, .elem = &lv}};
            if (gopy_select(cases, 2, true) != 0) {
                gopy_rt_stats st;
                gopy_rt_get_stats(&st);
                FAIL("timer %d of thread %d never fired (%" PRId64 " timers left)", i, k,
                     st.timers);
            }
            gopy_rt_timer_free(armed[k][i]);
        }
    }
    gopy_rt_timer_free(limit);
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, 0);
}
