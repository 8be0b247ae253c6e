/*
 * test_offload.c -- gopy_offload: the goroutine parks while fn runs on a
 * helper thread (other goroutines run meanwhile on its only P); fn runs
 * inline on a plain thread and nested in an offloaded call; many calls at
 * once overlap; the cap holds with FIFO order; idle helpers leave; the
 * runtime is not "asleep" while a call runs; a fork child starts with no
 * helpers.
 */
#include "harness.h"

static gopy_rt_stats stats_now(void)
{
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    return st;
}

/* Wait until stats_now().field == want (a hang bound, not a timing
 * check). */
#define await_stat(field, want)                                                    \
    do {                                                                           \
        int64_t deadline_ = h_now() + 60 * H_SEC;                                  \
        while (stats_now().field != (want)) {                                      \
            if (h_now() > deadline_)                                               \
                FAIL("stats " #field " stayed at %lld, want %lld",                 \
                     (long long)stats_now().field, (long long)(want));             \
            h_usleep(500);                                                         \
        }                                                                          \
    } while (0)

/* ---- parking: the other goroutine runs while fn waits for it ---------- */

static _Atomic int park_flag, park_fn_ran;
static pthread_t park_fn_self, park_caller_self;
static _Atomic int64_t park_fn_goid = -1;

static void park_fn(void *arg)
{
    (void)arg;
    park_fn_self = pthread_self();
    atomic_store(&park_fn_goid, gopy_rt_goid());
    atomic_store(&park_fn_ran, 1);
    /* Only the other goroutine sets it: were the caller blocking its M
     * (the only P's), this would never end. */
    h_await_flag(&park_flag);
}

static void park_caller(void *arg)
{
    park_caller_self = pthread_self();
    CHECK_EQ(gopy_offload(park_fn, NULL), 0);
    gopy_waitgroup_done(arg);
}

static void park_setter(void *arg)
{
    /* The caller is parked, as "offload", while fn runs. */
    h_await_waiting(GOPY_WAIT_OFFLOAD, NULL, 1);
    h_await_flag(&park_fn_ran);
    atomic_store(&park_flag, 1);
    gopy_waitgroup_done(arg);
}

TEST(offload_parks_the_goroutine)
{
    gopy_gomaxprocs(1);
    CHECK(strcmp(gopy_rt_wait_reason_string(GOPY_WAIT_OFFLOAD), "offload") == 0);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, 2);
    h_go(park_caller, wg);
    h_go(park_setter, wg);
    gopy_waitgroup_wait(wg);
    CHECK(!pthread_equal(park_fn_self, park_caller_self));
    CHECK_EQ(atomic_load(&park_fn_goid), 0); /* a helper is no goroutine */
    CHECK_EQ(h_count_waiting(GOPY_WAIT_OFFLOAD, NULL), 0);
    CHECK_EQ(stats_now().offload_threads, 1); /* kept, idle */
    await_stat(offload_busy, 0); /* it counts itself idle after readying us */
    CHECK_EQ(stats_now().offload_queued, 0);
    gopy_waitgroup_free(wg);
}

/* ---- where fn runs --------------------------------------------------- */

typedef struct {
    pthread_t self;
    int64_t goid;
    int calls;
} where;

static void record_where(void *arg)
{
    where *w = arg;
    w->self = pthread_self();
    w->goid = gopy_rt_goid();
    w->calls++;
}

typedef struct {
    where outer, inner;
} nested;

static void nested_fn(void *arg)
{
    nested *n = arg;
    record_where(&n->outer);
    /* On a helper, a plain thread: runs inline. */
    CHECK_EQ(gopy_offload(record_where, &n->inner), 0);
}

static void where_goroutine(void *arg)
{
    gopy_chan *done = arg;
    nested n = {0};
    pthread_t before = pthread_self();
    int64_t goid = gopy_rt_goid();
    CHECK_EQ(gopy_offload(nested_fn, &n), 0);
    CHECK_EQ(gopy_rt_goid(), goid);
    CHECK_EQ(n.outer.calls, 1);
    CHECK_EQ(n.inner.calls, 1);
    CHECK(!pthread_equal(n.outer.self, before));
    CHECK(pthread_equal(n.inner.self, n.outer.self));
    CHECK_EQ(n.outer.goid, 0);
    CHECK_EQ(n.inner.goid, 0);
    CHECK_EQ(gopy_offload(NULL, NULL), -1);
    CHECK_EQ(errno, EINVAL);
    h_send(done, 1);
}

TEST(offload_runs_on_a_helper_and_nests_inline)
{
    gopy_chan *done = h_chan(sizeof(int64_t), 0);
    h_go(where_goroutine, done);
    CHECK_EQ(h_recv(done), 1);
    gopy_chan_release(done);
}

TEST(offload_from_a_thread_calls_fn_directly)
{
    where w = {0};
    CHECK_EQ(gopy_offload(record_where, &w), 0);
    CHECK_EQ(w.calls, 1);
    CHECK(pthread_equal(w.self, pthread_self()));
    CHECK_EQ(stats_now().offload_threads, 0); /* no helper was made */
    CHECK_EQ(gopy_offload(NULL, NULL), -1);
    CHECK_EQ(errno, EINVAL);
}

/* ---- many at once -------------------------------------------------- */

enum { MANY = 100, MANY_MS = 20 };
static _Atomic int many_ran;

static void many_fn(void *arg)
{
    (void)arg;
    h_usleep(MANY_MS * 1000);
    atomic_fetch_add(&many_ran, 1);
}

static void many_goroutine(void *arg)
{
    CHECK_EQ(gopy_offload(many_fn, NULL), 0);
    gopy_waitgroup_done(arg);
}

TEST_NOSTRESS(offload_many_overlap)
{
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, MANY);
    int64_t t0 = h_now();
    for (int i = 0; i < MANY; i++)
        h_go(many_goroutine, wg);
    gopy_waitgroup_wait(wg);
    int64_t took = h_now() - t0;
    CHECK_EQ(atomic_load(&many_ran), MANY);
    /* Serially 2 s; 64 helpers make it two rounds of 20 ms.  The bound
     * only tells overlap from none on 2 noisy cores. */
    CHECK_LT(took, (int64_t)MANY * MANY_MS * H_MS / 2);
    CHECK_LE(stats_now().offload_threads, 64);
    CHECK_GE(stats_now().offload_threads, 2);
    await_stat(offload_busy, 0); /* it counts itself idle after readying us */
    CHECK_EQ(stats_now().offload_queued, 0);
}

/* ---- the cap, and FIFO beyond it ------------------------------------ */

enum { CAP_JOBS = 10 };
static _Atomic int cap_running, cap_max, cap_release0, cap_go1;
static _Atomic int cap_order[CAP_JOBS], cap_norder;

static void cap_fn(void *arg)
{
    int k = (int)(intptr_t)arg;
    int r = atomic_fetch_add(&cap_running, 1) + 1;
    int m = atomic_load(&cap_max);
    while (r > m && !atomic_compare_exchange_weak(&cap_max, &m, r)) {
    }
    atomic_store(&cap_order[atomic_fetch_add(&cap_norder, 1)], k);
    if (k == 0)
        h_await_flag(&cap_release0); /* holds one helper to the end */
    else if (k == 1)
        h_await_flag(&cap_go1); /* holds the other while the rest queue */
    atomic_fetch_sub(&cap_running, 1);
}

static gopy_waitgroup *cap_wg;

/* Wait until n calls have begun (a hang bound, not a timing check). */
static void await_started(int n)
{
    int64_t deadline = h_now() + 60 * H_SEC;
    while (atomic_load(&cap_norder) < n) {
        if (h_now() > deadline)
            FAIL("only %d of %d calls began", atomic_load(&cap_norder), n);
        h_usleep(500);
    }
}

static void cap_goroutine(void *arg)
{
    CHECK_EQ(gopy_offload(cap_fn, arg), 0);
    gopy_waitgroup_done(cap_wg);
}

TEST(offload_cap_holds_and_queue_is_fifo)
{
    CHECK_EQ(gopy_rt_offload_set_max_threads(2), 64);
    CHECK_EQ(gopy_rt_offload_set_max_threads(0), 2);
    cap_wg = gopy_waitgroup_make();
    gopy_waitgroup_add(cap_wg, CAP_JOBS);
    /* One at a time, so that the queue's order is known. */
    for (int k = 0; k < CAP_JOBS; k++) {
        h_go(cap_goroutine, (void *)(intptr_t)k);
        if (k < 2)
            await_started(k + 1);
        else
            await_stat(offload_queued, k - 1);
    }
    CHECK_EQ(stats_now().offload_threads, 2);
    CHECK_EQ(h_count_waiting(GOPY_WAIT_OFFLOAD, NULL), CAP_JOBS);
    /* Job 0 keeps one helper; the other runs 1 then the queue, in order,
     * one at a time. */
    atomic_store(&cap_go1, 1);
    await_stat(offload_queued, 0);
    await_started(CAP_JOBS);
    await_stat(offload_busy, 1);
    atomic_store(&cap_release0, 1);
    gopy_waitgroup_wait(cap_wg);
    CHECK_EQ(atomic_load(&cap_max), 2);
    for (int i = 0; i < CAP_JOBS; i++)
        CHECK_EQ(atomic_load(&cap_order[i]), i);
    CHECK_EQ(stats_now().offload_threads, 2);
    await_stat(offload_busy, 0); /* it counts itself idle after readying us */
    gopy_waitgroup_free(cap_wg);
}

/* ---- idle helpers leave ---------------------------------------------- */

static _Atomic int idle_gate;

static void idle_fn(void *arg)
{
    (void)arg;
    h_await_flag(&idle_gate);
}

static void idle_goroutine(void *arg)
{
    CHECK_EQ(gopy_offload(idle_fn, NULL), 0);
    gopy_waitgroup_done(arg);
}

TEST(offload_idle_helpers_are_reaped)
{
    CHECK_EQ(gopy_rt_offload_set_idle_timeout(50 * H_MS), 10 * H_SEC);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, 4);
    for (int i = 0; i < 4; i++)
        h_go(idle_goroutine, wg);
    await_stat(offload_busy, 4); /* four calls at once: four helpers */
    CHECK_EQ(stats_now().offload_threads, 4);
    atomic_store(&idle_gate, 1);
    gopy_waitgroup_wait(wg);
    await_stat(offload_threads, 0);
    /* A later call makes a fresh one, which leaves in turn. */
    gopy_waitgroup_add(wg, 1);
    h_go(idle_goroutine, wg);
    gopy_waitgroup_wait(wg);
    await_stat(offload_threads, 0);
    gopy_waitgroup_free(wg);
}

/* ---- not asleep while a call runs ------------------------------------- */

static _Atomic int asleep_gate;

static void asleep_fn(void *arg)
{
    (void)arg;
    h_await_flag(&asleep_gate);
}

static void asleep_goroutine(void *arg)
{
    CHECK_EQ(gopy_offload(asleep_fn, NULL), 0);
    h_send(arg, 7);
}

TEST(offload_in_flight_is_not_a_deadlock)
{
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(asleep_goroutine, done);
    h_await_waiting(GOPY_WAIT_OFFLOAD, NULL, 1);
    /* Every M idles: only the helper can make anything happen. */
    int64_t deadline = h_now() + 60 * H_SEC;
    for (;;) {
        gopy_rt_stats st;
        gopy_rt_get_stats(&st);
        if (st.ms_idle == st.ms)
            break;
        if (h_now() > deadline)
            FAIL("Ms never went idle");
        h_usleep(1000);
    }
    CHECK(!gopy_rt_all_asleep());
    atomic_store(&asleep_gate, 1);
    CHECK_EQ(h_recv(done), 7);
    /* Nothing left to happen: the same check now says asleep. */
    deadline = h_now() + 60 * H_SEC;
    while (!gopy_rt_all_asleep()) {
        if (h_now() > deadline)
            FAIL("never all asleep after the call");
        h_usleep(1000);
    }
    gopy_chan_release(done);
}

/* ---- fork ------------------------------------------------------------ */

static _Atomic int fork_gate;

static void fork_fn(void *arg)
{
    (void)arg;
    h_await_flag(&fork_gate);
}

static void fork_goroutine(void *arg)
{
    CHECK_EQ(gopy_offload(fork_fn, NULL), 0);
    if (arg != NULL)
        h_send(arg, 1);
}

TEST(offload_fork_child_starts_without_helpers)
{
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(fork_goroutine, done); /* a helper stays busy across the fork */
    await_stat(offload_busy, 1);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        gopy_rt_after_fork_child();
#if !H_FORK_CHILD_MAY_RUN
        /* Reading the stats starts the runtime again (sysmon's thread):
         * under ASan that blocked on the sanitizer's thread registry
         * lock, held by a parent thread at the fork. */
        _exit(0);
#endif
        CHECK_EQ(stats_now().offload_threads, 0);
        CHECK_EQ(stats_now().offload_busy, 0);
        /* The parent's busy helper does not exist here: the call gets a
         * new one. */
        gopy_chan *child_done = h_chan(sizeof(int64_t), 1);
        atomic_store(&fork_gate, 1);
        h_go(fork_goroutine, child_done);
        CHECK_EQ(h_recv(child_done), 1);
        CHECK_EQ(stats_now().offload_threads, 1);
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    atomic_store(&fork_gate, 1);
    CHECK_EQ(h_recv(done), 1);
    gopy_chan_release(done);
}
