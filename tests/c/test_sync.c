/*
 * test_sync.c -- gopy_mutex (mutual exclusion with exact counts,
 * trylock, misuse, Go's TestMutexFairness) and gopy_waitgroup (wait
 * after all done, several waiters, reuse, negative counter).
 */
#include "harness.h"

#include <fcntl.h>

/* ---- Mutex ----------------------------------------------------------------- */

enum { MU_G = 8, MU_T = 2, MU_G_ITERS = 20000, MU_T_ITERS = 5000 };
static gopy_mutex *mu;
static int64_t mu_counter; /* plain: only the mutex protects it */
static _Atomic int mu_holders;

static void mu_critical(void)
{
    int h = atomic_fetch_add(&mu_holders, 1);
    if (h != 0)
        FAIL("%d other holders inside the critical section", h);
    mu_counter++;
    atomic_fetch_sub(&mu_holders, 1);
}

static void mu_goroutine(void *arg)
{
    for (int i = 0; i < MU_G_ITERS; i++) {
        gopy_mutex_lock(mu);
        mu_critical();
        if (i % 100 == 0)
            gopy_yield(); /* holding it: others must park */
        gopy_mutex_unlock(mu);
    }
    gopy_waitgroup_done(arg);
}

static void *mu_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < MU_T_ITERS; i++) {
        gopy_mutex_lock(mu);
        mu_critical();
        gopy_mutex_unlock(mu);
    }
    return NULL;
}

TEST(mutex_counter)
{
    mu = gopy_mutex_make();
    CHECK(mu != NULL);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, MU_G);
    for (int i = 0; i < MU_G; i++)
        h_go(mu_goroutine, wg);
    pthread_t t[MU_T];
    for (int i = 0; i < MU_T; i++)
        t[i] = h_thread(mu_thread, NULL);
    for (int i = 0; i < MU_T; i++)
        h_join(t[i]);
    gopy_waitgroup_wait(wg);
    gopy_mutex_lock(mu);
    CHECK_EQ(mu_counter, (int64_t)MU_G * MU_G_ITERS + (int64_t)MU_T * MU_T_ITERS);
    gopy_mutex_unlock(mu);
    CHECK(gopy_mutex_trylock(mu)); /* left unlocked, no waiter state */
    gopy_mutex_unlock(mu);
    gopy_waitgroup_free(wg);
    gopy_mutex_free(mu);
}

TEST(mutex_counter_one_p)
{
    gopy_gomaxprocs(1);
    test_mutex_counter();
}

static void try_from_goroutine(void *arg)
{
    void **a = arg;
    h_send(a[1], gopy_mutex_trylock(a[0]));
}

TEST(mutex_trylock)
{
    gopy_mutex *m = gopy_mutex_make();
    gopy_chan *res = h_chan(sizeof(int64_t), 1);
    void *a[2] = {m, res};
    CHECK(gopy_mutex_trylock(m));
    CHECK(!gopy_mutex_trylock(m));
    h_go(try_from_goroutine, a);
    CHECK_EQ(h_recv(res), 0);
    gopy_mutex_unlock(m);
    h_go(try_from_goroutine, a); /* takes it */
    CHECK_EQ(h_recv(res), 1);
    CHECK(!gopy_mutex_trylock(m));
    CHECK_EQ(gopy_rt_mutex_unlock(m), GOPY_OK); /* any thread may unlock */
    CHECK_EQ(gopy_rt_mutex_unlock(m), GOPY_ENOTLOCKED);
    CHECK_EQ(gopy_rt_mutex_unlock(m), GOPY_ENOTLOCKED);
    /* The failed unlocks changed nothing. */
    CHECK_EQ(gopy_rt_mutex_lock(m), GOPY_OK);
    CHECK(!gopy_mutex_trylock(m));
    gopy_mutex_unlock(m);
    CHECK(gopy_mutex_trylock(m));
    gopy_mutex_unlock(m);
    gopy_mutex_free(m);
    gopy_chan_release(res);
}

/* A locker parks while the mutex is held, and gets it on unlock.
 * lockers_done counts the lockers that have let go of it for good. */
static _Atomic int locker_got, lockers_done;

static void blocked_locker(void *arg)
{
    gopy_mutex_lock(arg);
    atomic_store(&locker_got, 1);
    gopy_mutex_unlock(arg);
    atomic_fetch_add(&lockers_done, 1);
}

TEST(mutex_blocks_and_wakes)
{
    gopy_mutex *m = gopy_mutex_make();
    gopy_mutex_lock(m);
    for (int i = 0; i < 5; i++)
        h_go(blocked_locker, m);
    h_await_waiting(GOPY_WAIT_MUTEX, m, 5);
    CHECK_EQ(atomic_load(&locker_got), 0);
    gopy_mutex_unlock(m);
    /* Not "nobody waits on it": a woken locker may still be about to
     * unlock, and freeing m then would pull it from under its feet. */
    h_await_count(&lockers_done, 5);
    CHECK_EQ(atomic_load(&lockers_done), 5);
    CHECK_EQ(h_count_waiting(GOPY_WAIT_MUTEX, m), 0);
    CHECK_EQ(atomic_load(&locker_got), 1);
    gopy_mutex_lock(m); /* everyone unlocked */
    gopy_mutex_unlock(m);
    gopy_mutex_free(m);
}

/* Go's TestMutexFairness: a goroutine holding the lock almost all the
 * time cannot starve another (starvation mode hands the lock over). */
static _Atomic int fair_stop;

static void fair_hog(void *arg)
{
    void **a = arg;
    while (!atomic_load(&fair_stop)) {
        gopy_mutex_lock(a[0]);
        gopy_sleep(100000);
        gopy_mutex_unlock(a[0]);
    }
    h_send(a[2], 1);
}

static void fair_other(void *arg)
{
    void **a = arg;
    for (int i = 0; i < 10; i++) {
        gopy_sleep(100000);
        gopy_mutex_lock(a[0]);
        gopy_mutex_unlock(a[0]);
    }
    h_send(a[1], 1);
}

TEST(mutex_fairness)
{
    gopy_mutex *m = gopy_mutex_make();
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    gopy_chan *hog_done = h_chan(sizeof(int64_t), 1);
    gopy_timer *limit = gopy_rt_timer_new(10 * H_SEC, 0);
    void *a[3] = {m, done, hog_done};
    h_go(fair_hog, a);
    h_go(fair_other, a);
    int64_t v = 0, tv = 0;
    gopy_case cases[2] = {{.chan = done, .dir = GOPY_RECV, .elem = &v},
                          {.chan = gopy_rt_timer_chan(limit), .dir = GOPY_RECV, .elem = &tv}};
    if (gopy_select(cases, 2, true) != 0)
        FAIL("can't acquire the mutex in 10 seconds");
    atomic_store(&fair_stop, 1);
    /* Once the hog is done with the mutex it can be freed (LeakSanitizer
     * would report it otherwise). */
    CHECK_EQ(h_recv(hog_done), 1);
    gopy_mutex_free(m);
    gopy_rt_timer_free(limit);
    gopy_chan_release(hog_done);
    gopy_chan_release(done);
}

/* Heavy contention with critical sections that park (sleep) and spin,
 * at several GOMAXPROCS; exact counts. */
static void contend(void *arg)
{
    void **a = arg;
    gopy_mutex *m = a[0];
    int64_t *counter = a[1];
    for (int i = 0; i < 2000; i++) {
        gopy_mutex_lock(m);
        int64_t c = *counter;
        if (i % 500 == 0)
            gopy_sleep(10000);
        else if (i % 7 == 0)
            gopy_yield();
        *counter = c + 1;
        gopy_mutex_unlock(m);
    }
    gopy_waitgroup_done(a[2]);
}

TEST(mutex_contention)
{
    for (int procs = 1; procs <= 4; procs *= 2) {
        gopy_gomaxprocs(procs);
        gopy_mutex *m = gopy_mutex_make();
        gopy_waitgroup *wg = gopy_waitgroup_make();
        int64_t counter = 0;
        void *a[3] = {m, &counter, wg};
        gopy_waitgroup_add(wg, 16);
        for (int i = 0; i < 16; i++)
            h_go(contend, a);
        gopy_waitgroup_wait(wg);
        gopy_mutex_lock(m);
        CHECK_EQ(counter, 16 * 2000);
        gopy_mutex_unlock(m);
        gopy_mutex_free(m);
        gopy_waitgroup_free(wg);
    }
}

/* ---- WaitGroup --------------------------------------------------------------- */

enum { WG_N = 200 };
static _Atomic int wg_flags[WG_N];
static _Atomic int wg_waiters_done;

static void wg_worker(void *arg)
{
    void **a = arg;
    int i = (int)(intptr_t)a[0];
    if (i % 3 == 0)
        gopy_sleep((int64_t)h_randn(2 * H_MS));
    atomic_store(&wg_flags[i], 1);
    gopy_waitgroup_done(a[1]);
}

static void wg_check_all(void)
{
    for (int i = 0; i < WG_N; i++)
        if (atomic_load(&wg_flags[i]) != 1)
            FAIL("wait returned before worker %d was done", i);
}

static void wg_waiter(void *arg)
{
    gopy_waitgroup_wait(arg);
    wg_check_all();
    atomic_fetch_add(&wg_waiters_done, 1);
}

static void *wg_waiter_thread(void *arg)
{
    wg_waiter(arg);
    return NULL;
}

TEST(waitgroup_wait)
{
    gopy_waitgroup *wg = gopy_waitgroup_make();
    CHECK(wg != NULL);
    gopy_waitgroup_wait(wg); /* counter 0: returns at once */
    static void *args[WG_N][2];
    gopy_waitgroup_add(wg, WG_N);
    CHECK_EQ(gopy_rt_waitgroup_count(wg), WG_N);
    /* Waiters first (5 goroutines, 2 threads), then the workers. */
    for (int i = 0; i < 5; i++)
        h_go(wg_waiter, wg);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        t[i] = h_thread(wg_waiter_thread, wg);
    h_await_waiting(GOPY_WAIT_WAITGROUP, wg, 5);
    for (int i = 0; i < WG_N; i++) {
        args[i][0] = (void *)(intptr_t)i;
        args[i][1] = wg;
        h_go(wg_worker, args[i]);
    }
    gopy_waitgroup_wait(wg);
    wg_check_all();
    CHECK_EQ(gopy_rt_waitgroup_count(wg), 0);
    for (int i = 0; i < 2; i++)
        h_join(t[i]);
    h_await_count(&wg_waiters_done, 7);
    CHECK_EQ(atomic_load(&wg_waiters_done), 7);
    gopy_waitgroup_free(wg);
}

/* Go's TestWaitGroup: many rounds on one group. */
static void round_worker(void *arg)
{
    void **a = arg;
    atomic_fetch_add((_Atomic int64_t *)a[1], 1);
    gopy_waitgroup_done(a[0]);
}

TEST(waitgroup_reuse)
{
    gopy_waitgroup *wg = gopy_waitgroup_make();
    _Atomic int64_t n = 0;
    void *a[2] = {wg, (void *)&n};
    int rounds = H_SCALED(1000);
    for (int r = 1; r <= rounds; r++) {
        int k = 1 + (int)h_randn(16);
        gopy_waitgroup_add(wg, k);
        for (int i = 0; i < k; i++)
            h_go(round_worker, a);
        gopy_waitgroup_wait(wg);
        CHECK_EQ(gopy_rt_waitgroup_count(wg), 0);
        int64_t got = atomic_exchange(&n, 0);
        CHECK_EQ(got, k);
    }
    gopy_waitgroup_free(wg);
}

TEST(waitgroup_negative)
{
    gopy_waitgroup *wg = gopy_waitgroup_make();
    CHECK_EQ(gopy_rt_waitgroup_add(wg, -1), GOPY_ENEGATIVE);
    CHECK_EQ(gopy_rt_waitgroup_count(wg), 0); /* left as it was */
    CHECK_EQ(gopy_rt_waitgroup_add(wg, 3), GOPY_OK);
    CHECK_EQ(gopy_rt_waitgroup_add(wg, -4), GOPY_ENEGATIVE);
    CHECK_EQ(gopy_rt_waitgroup_count(wg), 3);
    CHECK_EQ(gopy_rt_waitgroup_add(wg, -2), GOPY_OK);
    CHECK_EQ(gopy_rt_waitgroup_count(wg), 1);
    gopy_waitgroup_done(wg);
    CHECK_EQ(gopy_rt_waitgroup_count(wg), 0);
    CHECK_EQ(gopy_rt_waitgroup_wait(wg), GOPY_OK);
    CHECK_EQ(gopy_rt_waitgroup_add(wg, -1), GOPY_ENEGATIVE);
    CHECK_EQ(gopy_rt_waitgroup_count(wg), 0);
    gopy_waitgroup_free(wg);
}

/* The public gopy_waitgroup_done on a zero counter aborts the process (Go
 * panics): run it in a child and look at how it died. */
TEST(waitgroup_negative_aborts)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The child runs no runtime threads: this is its first use. */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        gopy_waitgroup *wg = gopy_waitgroup_make();
        gopy_waitgroup_done(wg);
        _exit(0);
    }
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st));
    CHECK_EQ(WTERMSIG(st), SIGABRT);
}
