/*
 * test_context.c -- the context C API (gopy.h), after Go's context tests
 * (x_test.go): with cancel, parent finishes child, child finishes first,
 * deadlines and timeouts (a parent's earlier deadline wins, a past one
 * cancels at once), simultaneous and layered cancels, cancel removes the
 * child (no node left behind after a million), after_func; plus done
 * channels honoured by C goroutines and foreign threads, deep chains, and
 * many goroutines woken by one cancel.
 */
#include "harness.h"

#include <sched.h>

/* ---- helpers ------------------------------------------------------------ */

static gopy_context *h_ctx(gopy_context *c)
{
    if (c == NULL)
        FAIL("making a context failed: %s", strerror(errno));
    return c;
}

/* Is done closed right now (a non-blocking receive sees the close)? */
static bool h_is_done(gopy_context *c)
{
    gopy_chan *d = gopy_context_done(c);
    if (d == NULL)
        return false;
    bool ok = true;
    int r = gopy_rt_chan_recv(d, NULL, &ok, false);
    return r == GOPY_OK && !ok;
}

/* Wait until c is done, failing after a generous bound. */
static void h_await_done(gopy_context *c)
{
    gopy_timer *t = gopy_rt_timer_new(60 * H_SEC, 0);
    gopy_case cases[2] = {
        {.chan = gopy_context_done(c), .dir = GOPY_RECV},
        {.chan = gopy_rt_timer_chan(t), .dir = GOPY_RECV, .elem = NULL},
    };
    int64_t when;
    cases[1].elem = &when;
    int i = gopy_select(cases, 2, true);
    gopy_rt_timer_free(t);
    if (i != 0)
        FAIL("context not done within 60 s");
    CHECK(!cases[0].ok);
}

static int64_t live_base;

static void h_live_start(void)
{
    live_base = gopy_rt_context_live();
}

/* Every context made since h_live_start has been freed. */
static void h_live_none_left(void)
{
    CHECK_EQ(gopy_rt_context_live(), live_base);
}

/* ---- background --------------------------------------------------------- */

TEST(background)
{
    gopy_context *bg = gopy_context_background();
    CHECK(bg != NULL);
    CHECK(gopy_context_done(bg) == NULL);
    CHECK(gopy_context_done(NULL) == NULL);
    CHECK_EQ(gopy_context_err(bg), 0);
    int64_t d = 123;
    CHECK(!gopy_context_deadline(bg, &d));
    CHECK_EQ(d, 0);
    gopy_context_retain(bg); /* no-ops */
    gopy_context_release(bg);
    gopy_context_cancel(bg);
    CHECK_EQ(gopy_context_err(bg), 0);
    CHECK_EQ(gopy_rt_context_live(), 0);
}

/* ---- TestWithCancel ------------------------------------------------------ */

TEST(with_cancel)
{
    h_live_start();
    gopy_context *c1 = h_ctx(gopy_context_with_cancel(gopy_context_background()));
    gopy_chan *d1 = gopy_context_done(c1);
    CHECK(d1 != NULL);
    CHECK(gopy_context_done(c1) == d1); /* one channel */
    CHECK_EQ(gopy_chan_cap(d1), 0);
    CHECK_EQ(gopy_rt_chan_elem_size(d1), 0);
    gopy_context *c2 = h_ctx(gopy_context_with_cancel(c1));
    gopy_context *c3 = h_ctx(gopy_context_with_cancel(c2));
    gopy_context *o[3] = {c1, c2, c3};
    for (int i = 0; i < 3; i++) {
        CHECK(!h_is_done(o[i]));
        CHECK_EQ(gopy_context_err(o[i]), 0);
    }
    gopy_context_cancel(c2);
    CHECK(!h_is_done(c1));
    CHECK_EQ(gopy_context_err(c1), 0);
    CHECK(h_is_done(c2));
    CHECK(h_is_done(c3));
    CHECK_EQ(gopy_context_err(c2), GOPY_CTX_CANCELED);
    CHECK_EQ(gopy_context_err(c3), GOPY_CTX_CANCELED);
    gopy_context_cancel(c2); /* again: nothing */
    CHECK_EQ(gopy_context_err(c2), GOPY_CTX_CANCELED);
    gopy_context_cancel(c1);
    for (int i = 0; i < 3; i++)
        gopy_context_release(o[i]);
    h_live_none_left();
}

/* done asked for only after the cancel: the shared closed channel. */
TEST(done_after_cancel)
{
    gopy_context *a = h_ctx(gopy_context_with_cancel(NULL));
    gopy_context *b = h_ctx(gopy_context_with_cancel(NULL));
    gopy_context_cancel(a);
    gopy_context_cancel(b);
    CHECK(h_is_done(a));
    CHECK(gopy_context_done(a) == gopy_context_done(b));
    CHECK(gopy_chan_recv(gopy_context_done(a), NULL) == false);
    gopy_context_release(a);
    gopy_context_release(b);
}

/* ---- TestParentFinishesChild ------------------------------------------------ */

static _Atomic int af_runs;

static void count_af(void *arg)
{
    (void)arg;
    atomic_fetch_add(&af_runs, 1);
}

TEST(parent_finishes_child)
{
    h_live_start();
    atomic_store(&af_runs, 0);
    gopy_context *parent = h_ctx(gopy_context_with_cancel(NULL));
    gopy_context *cancel_child = h_ctx(gopy_context_with_cancel(parent));
    gopy_context *timer_child = h_ctx(gopy_context_with_timeout(parent, 3600 * H_SEC));
    gopy_context *grandchild = h_ctx(gopy_context_with_cancel(timer_child));
    gopy_after_func *af = gopy_context_after_func(parent, count_af, NULL);
    CHECK(af != NULL);
    int64_t d;
    CHECK(gopy_context_deadline(timer_child, &d));
    CHECK(gopy_context_deadline(grandchild, NULL)); /* inherited */
    CHECK(!gopy_context_deadline(cancel_child, NULL));
    CHECK_EQ(gopy_context_err(grandchild), 0);

    gopy_context_cancel(parent);
    gopy_context *all[4] = {parent, cancel_child, timer_child, grandchild};
    for (int i = 0; i < 4; i++) {
        CHECK(h_is_done(all[i]));
        CHECK_EQ(gopy_context_err(all[i]), GOPY_CTX_CANCELED);
    }
    /* The after_func runs once, in its own goroutine. */
    while (atomic_load(&af_runs) == 0)
        gopy_sleep(H_MS);
    CHECK(!gopy_after_func_stop(af));
    gopy_sleep(10 * H_MS);
    CHECK_EQ(atomic_load(&af_runs), 1);
    /* A child of a cancelled parent is cancelled at once. */
    gopy_context *late = h_ctx(gopy_context_with_cancel(parent));
    CHECK(h_is_done(late));
    CHECK_EQ(gopy_context_err(late), GOPY_CTX_CANCELED);
    gopy_context_release(late);
    for (int i = 0; i < 4; i++)
        gopy_context_release(all[i]);
    gopy_after_func_release(af);
    h_live_none_left();
}

/* ---- TestChildFinishesFirst / TestCancelRemoves ------------------------------ */

TEST(child_finishes_first)
{
    for (int with_deadline = 0; with_deadline < 2; with_deadline++) {
        h_live_start();
        gopy_context *parent = h_ctx(gopy_context_with_cancel(NULL));
        gopy_context *child =
            h_ctx(with_deadline ? gopy_context_with_timeout(parent, 3600 * H_SEC)
                                : gopy_context_with_cancel(parent));
        CHECK_EQ(gopy_rt_context_live(), live_base + 2);
        gopy_context_cancel(child);
        CHECK(h_is_done(child));
        CHECK(!h_is_done(parent));
        CHECK_EQ(gopy_context_err(parent), 0);
        /* Unlinked: dropping the child frees it now, not with the parent. */
        gopy_context_release(child);
        CHECK_EQ(gopy_rt_context_live(), live_base + 1);
        gopy_context_cancel(parent);
        gopy_context_release(parent);
        h_live_none_left();
    }
}

/* A child released without a cancel is dropped at once when nothing else
 * holds it (as Go's collector drops it); held, or with an armed deadline,
 * or under it a child of its own, it stays registered. */
TEST(released_child_is_dropped)
{
    h_live_start();
    gopy_context *parent = h_ctx(gopy_context_with_cancel(NULL));
    for (int i = 0; i < 1000; i++)
        gopy_context_release(h_ctx(gopy_context_with_cancel(parent)));
    CHECK_EQ(gopy_rt_context_live(), live_base + 1);
    /* A chain: the middle is held by its child, the child by us. */
    gopy_context *mid = h_ctx(gopy_context_with_cancel(parent));
    gopy_context *leaf = h_ctx(gopy_context_with_cancel(mid));
    gopy_context_release(mid);
    CHECK_EQ(gopy_rt_context_live(), live_base + 3);
    gopy_context_release(leaf); /* both go: the leaf, then the middle */
    CHECK_EQ(gopy_rt_context_live(), live_base + 1);
    /* An armed deadline holds its node until it fires. */
    gopy_context_release(h_ctx(gopy_context_with_timeout(parent, 500 * H_MS)));
    CHECK_EQ(gopy_rt_context_live(), live_base + 2);
    for (int i = 0; i < 1000 && gopy_rt_context_live() != live_base + 1; i++)
        gopy_sleep(5 * H_MS);
    CHECK_EQ(gopy_rt_context_live(), live_base + 1);
    /* An after_func whose handle is gone still runs with its parent. */
    atomic_store(&af_runs, 0);
    gopy_after_func *af = gopy_context_after_func(parent, count_af, NULL);
    CHECK(af != NULL);
    gopy_after_func_release(af);
    CHECK_EQ(gopy_rt_context_live(), live_base + 2);
    gopy_context *held = h_ctx(gopy_context_with_cancel(parent));
    gopy_context_cancel(parent);
    CHECK(h_is_done(held));
    gopy_context_release(held);
    for (int i = 0; i < 1000 && atomic_load(&af_runs) == 0; i++)
        gopy_sleep(5 * H_MS);
    CHECK_EQ(atomic_load(&af_runs), 1);
    gopy_context_release(parent);
    h_live_none_left();
}

/* Releases racing a cancel of the parent: every node is freed once. */
static gopy_context *race_parent;
static void race_release_children(void *arg)
{
    gopy_chan *report = arg;
    for (int i = 0; i < 2000; i++)
        gopy_context_release(h_ctx(gopy_context_with_cancel(race_parent)));
    h_send(report, 0);
}

TEST(release_races_parent_cancel)
{
    h_live_start();
    for (int round = 0; round < H_SCALED(50); round++) {
        race_parent = h_ctx(gopy_context_with_cancel(NULL));
        gopy_chan *report = h_chan(sizeof(int64_t), 4);
        for (int i = 0; i < 4; i++)
            h_go(race_release_children, report);
        gopy_context_cancel(race_parent);
        for (int i = 0; i < 4; i++)
            h_recv(report);
        gopy_chan_release(report);
        gopy_context_release(race_parent);
        h_live_none_left();
    }
}

TEST(cancel_removes_million)
{
    h_live_start();
    gopy_context *parent = h_ctx(gopy_context_with_cancel(NULL));
    gopy_chan *pd = gopy_context_done(parent);
    (void)pd;
    int n = H_SCALED(1000000);
    for (int i = 0; i < n; i++) {
        gopy_context *c = h_ctx(i % 3 == 0 ? gopy_context_with_timeout(parent, 3600 * H_SEC)
                                           : gopy_context_with_cancel(parent));
        if (i % 2 == 0)
            (void)gopy_context_done(c);
        gopy_context_cancel(c);
        gopy_context_release(c);
        if (i % 100000 == 0)
            CHECK_EQ(gopy_rt_context_live(), live_base + 1);
    }
    CHECK_EQ(gopy_rt_context_live(), live_base + 1);
    CHECK_EQ(gopy_context_err(parent), 0);
    /* after_funcs stopped are removed too. */
    for (int i = 0; i < n / 10; i++) {
        gopy_after_func *af = gopy_context_after_func(parent, count_af, NULL);
        CHECK(af != NULL);
        CHECK(gopy_after_func_stop(af));
        CHECK(!gopy_after_func_stop(af));
        gopy_after_func_release(af);
    }
    CHECK_EQ(gopy_rt_context_live(), live_base + 1);
    gopy_context_cancel(parent);
    gopy_context_release(parent);
    h_live_none_left();
}

/* Whoever sees a context done sees its whole subtree done, and err() is
 * set exactly when done is closed -- also while another thread is still
 * cancelling (Go gets this from its lock). */
enum { SUB_KIDS = 40 };
static gopy_context *sub_parent, *sub_kids[SUB_KIDS], *sub_grand[SUB_KIDS];
static gopy_chan *sub_report;

static void sub_watch_parent(void *arg)
{
    (void)arg;
    CHECK(!gopy_chan_recv(gopy_context_done(sub_parent), NULL));
    int64_t bad = 0;
    for (int i = 0; i < SUB_KIDS; i++)
        bad += !h_is_done(sub_kids[i]) + !h_is_done(sub_grand[i]) +
               (gopy_context_err(sub_grand[i]) != GOPY_CTX_CANCELED);
    h_send(sub_report, bad);
}

static void *sub_poll_err(void *arg)
{
    (void)arg;
    /* err first, then done: err may never run ahead of done. */
    while (gopy_context_err(sub_grand[SUB_KIDS - 1]) == 0)
        sched_yield();
    h_send(sub_report, h_is_done(sub_grand[SUB_KIDS - 1]) ? 0 : 1000);
    return NULL;
}

TEST(done_implies_subtree_done)
{
    h_live_start();
    sub_report = h_chan(sizeof(int64_t), 4);
    for (int round = 0; round < H_SCALED(200); round++) {
        sub_parent = h_ctx(gopy_context_with_cancel(NULL));
        for (int i = 0; i < SUB_KIDS; i++) {
            sub_kids[i] = h_ctx(i % 2 ? gopy_context_with_timeout(sub_parent, 3600 * H_SEC)
                                      : gopy_context_with_cancel(sub_parent));
            sub_grand[i] = h_ctx(gopy_context_with_cancel(sub_kids[i]));
            if (i % 3 == 0)
                (void)gopy_context_done(sub_grand[i]);
        }
        h_go(sub_watch_parent, NULL);
        pthread_t t = h_thread(sub_poll_err, NULL);
        gopy_context_cancel(sub_parent);
        CHECK_EQ(h_recv(sub_report) + h_recv(sub_report), 0);
        h_join(t);
        for (int i = 0; i < SUB_KIDS; i++) {
            gopy_context_release(sub_grand[i]);
            gopy_context_release(sub_kids[i]);
        }
        gopy_context_release(sub_parent);
    }
    gopy_chan_release(sub_report);
    h_live_none_left();
}

/* ---- deadlines and timeouts ------------------------------------------------- */

TEST(deadline_past_cancels_at_once)
{
    h_live_start();
    gopy_context *c = h_ctx(gopy_context_with_deadline(NULL, h_wall() - H_SEC));
    CHECK(h_is_done(c));
    CHECK_EQ(gopy_context_err(c), GOPY_CTX_DEADLINE_EXCEEDED);
    gopy_context *z = h_ctx(gopy_context_with_timeout(NULL, 0));
    CHECK_EQ(gopy_context_err(z), GOPY_CTX_DEADLINE_EXCEEDED);
    gopy_context *neg = h_ctx(gopy_context_with_timeout(NULL, -5 * H_SEC));
    CHECK_EQ(gopy_context_err(neg), GOPY_CTX_DEADLINE_EXCEEDED);
    gopy_context_release(c);
    gopy_context_release(z);
    gopy_context_release(neg);
    h_live_none_left();
}

TEST_NOSTRESS(deadline_fires)
{
    h_live_start();
    int64_t start = h_wall();
    gopy_context *c = h_ctx(gopy_context_with_deadline(NULL, start + 50 * H_MS));
    int64_t d = 0;
    CHECK(gopy_context_deadline(c, &d));
    CHECK_EQ(d, start + 50 * H_MS);
    CHECK_EQ(gopy_context_err(c), 0);
    h_await_done(c);
    CHECK_EQ(gopy_context_err(c), GOPY_CTX_DEADLINE_EXCEEDED);
    CHECK_GE(h_wall(), start + 50 * H_MS - 2 * H_MS); /* not early (clock slack) */
    /* Cancel after expiry keeps DeadlineExceeded. */
    gopy_context_cancel(c);
    CHECK_EQ(gopy_context_err(c), GOPY_CTX_DEADLINE_EXCEEDED);
    gopy_context_release(c);
    /* The timer's goroutine dropped its reference. */
    for (int i = 0; i < 1000 && gopy_rt_context_live() != live_base; i++)
        gopy_sleep(H_MS);
    h_live_none_left();
}

TEST_NOSTRESS(parent_earlier_deadline_wins)
{
    h_live_start();
    int64_t now = h_wall();
    gopy_context *parent = h_ctx(gopy_context_with_deadline(NULL, now + 30 * H_MS));
    gopy_context *child = h_ctx(gopy_context_with_deadline(parent, now + 3600 * H_SEC));
    int64_t d = 0;
    CHECK(gopy_context_deadline(child, &d));
    CHECK_EQ(d, now + 30 * H_MS);
    /* A child's earlier deadline is its own. */
    gopy_context *early = h_ctx(gopy_context_with_deadline(parent, now + 10 * H_MS));
    CHECK(gopy_context_deadline(early, &d));
    CHECK_EQ(d, now + 10 * H_MS);
    /* Parent done: so is everything derived from it. */
    h_await_done(parent);
    CHECK_EQ(gopy_context_err(parent), GOPY_CTX_DEADLINE_EXCEEDED);
    CHECK_EQ(gopy_context_err(child), GOPY_CTX_DEADLINE_EXCEEDED);
    CHECK_EQ(gopy_context_err(early), GOPY_CTX_DEADLINE_EXCEEDED);
    gopy_context_release(early);
    gopy_context_release(child);
    gopy_context_release(parent);
    for (int i = 0; i < 1000 && gopy_rt_context_live() != live_base; i++)
        gopy_sleep(H_MS);
    h_live_none_left();
}

/* Cancelled before the deadline: the timer is stopped and its reference
 * dropped at once. */
TEST(timeout_cancelled_early)
{
    h_live_start();
    gopy_context *c = h_ctx(gopy_context_with_timeout(NULL, 3600 * H_SEC));
    int64_t timers_before;
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    timers_before = st.timers;
    CHECK_GE(timers_before, 1);
    gopy_context_cancel(c);
    CHECK_EQ(gopy_context_err(c), GOPY_CTX_CANCELED);
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, timers_before - 1);
    gopy_context_release(c);
    h_live_none_left();
}

/* ---- TestSimultaneousCancels ------------------------------------------------ */

enum { SIM_MAX = 100 };
static gopy_context *sim_ctx[SIM_MAX + 4];
static gopy_waitgroup *sim_wg;

static void sim_cancel(void *arg)
{
    gopy_context_cancel(arg);
    gopy_waitgroup_done(sim_wg);
}

TEST(simultaneous_cancels)
{
    h_live_start();
    int n = 0, head = 0;
    sim_ctx[n++] = h_ctx(gopy_context_with_cancel(NULL));
    while (head < n && n < SIM_MAX) {
        gopy_context *p = sim_ctx[head++];
        for (int i = 0; i < 4; i++)
            sim_ctx[n++] = h_ctx(i == 3 ? gopy_context_with_timeout(p, 3600 * H_SEC)
                                        : gopy_context_with_cancel(p));
    }
    sim_wg = gopy_waitgroup_make();
    gopy_waitgroup_add(sim_wg, n);
    /* All the cancels at once, in a shuffled order, from goroutines. */
    int order[SIM_MAX + 4];
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)h_randn((uint64_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < n; i++)
        h_go(sim_cancel, sim_ctx[order[i]]);
    for (int i = 0; i < n; i++)
        h_await_done(sim_ctx[order[(i * 7) % n]]);
    gopy_waitgroup_wait(sim_wg);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(gopy_context_err(sim_ctx[i]), GOPY_CTX_CANCELED);
        gopy_context_release(sim_ctx[i]);
    }
    gopy_waitgroup_free(sim_wg);
    h_live_none_left();
}

/* ---- the binding's claim (gopy_rt_context_cancel) ------------------------------ */

enum { CLAIM_KIDS = 3, CLAIM_WAITERS = 5 };
#define CLAIM_ARG ((void *)&claim_calls) /* handed through to claim_seen */
static gopy_context *claim_ctx, *claim_kids[CLAIM_KIDS], *claim_grand;
static int claim_calls;
static size_t claim_work;
static gopy_waitgroup *claim_wg;

/* Called once the cancel has won: nothing it reaches may be seen done. */
static void claim_seen(void *arg, size_t work)
{
    CHECK(arg == CLAIM_ARG);
    claim_calls++;
    claim_work = work;
    CHECK_EQ(gopy_context_err(claim_ctx), 0);
    CHECK(!h_is_done(claim_ctx));
    for (int i = 0; i < CLAIM_KIDS; i++) {
        CHECK_EQ(gopy_context_err(claim_kids[i]), 0);
        CHECK(!h_is_done(claim_kids[i]));
    }
    CHECK(!h_is_done(claim_grand));
}

static void claim_waiter(void *arg)
{
    CHECK(!gopy_chan_recv(gopy_context_done(arg), NULL));
    gopy_waitgroup_done(claim_wg);
}

TEST(cancel_claims_before_anything_is_done)
{
    h_live_start();
    claim_ctx = h_ctx(gopy_context_with_cancel(NULL));
    for (int i = 0; i < CLAIM_KIDS; i++)
        claim_kids[i] = h_ctx(gopy_context_with_cancel(claim_ctx));
    claim_grand = h_ctx(gopy_context_with_cancel(claim_kids[0]));
    claim_wg = gopy_waitgroup_make();
    gopy_waitgroup_add(claim_wg, CLAIM_WAITERS);
    for (int i = 0; i < CLAIM_WAITERS; i++)
        h_go(claim_waiter, claim_ctx);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, gopy_context_done(claim_ctx), CLAIM_WAITERS);
    CHECK(gopy_rt_context_cancel(claim_ctx, claim_seen, CLAIM_ARG));
    CHECK_EQ(claim_calls, 1);
    CHECK_EQ(claim_work, CLAIM_WAITERS + CLAIM_KIDS); /* the grandchild is a kid's */
    gopy_waitgroup_wait(claim_wg);
    CHECK_EQ(gopy_context_err(claim_grand), GOPY_CTX_CANCELED);
    /* Cancelled already: no claim. */
    CHECK(!gopy_rt_context_cancel(claim_ctx, claim_seen, CLAIM_ARG));
    CHECK(!gopy_rt_context_cancel(claim_kids[1], claim_seen, CLAIM_ARG));
    CHECK_EQ(claim_calls, 1);
    gopy_waitgroup_free(claim_wg);
    gopy_context_release(claim_grand);
    for (int i = 0; i < CLAIM_KIDS; i++)
        gopy_context_release(claim_kids[i]);
    gopy_context_release(claim_ctx);
    /* No done asked for and no children: no work ahead. */
    claim_calls = 0;
    claim_ctx = claim_grand = h_ctx(gopy_context_with_cancel(NULL));
    for (int i = 0; i < CLAIM_KIDS; i++)
        claim_kids[i] = claim_ctx;
    CHECK(gopy_rt_context_cancel(claim_ctx, claim_seen, CLAIM_ARG));
    CHECK_EQ(claim_calls, 1);
    CHECK_EQ(claim_work, 0);
    gopy_context_release(claim_ctx);
    h_live_none_left();
}

/* ---- TestLayersCancel ---------------------------------------------------------- */

TEST(layers_cancel)
{
    for (int round = 0; round < 20; round++) {
        h_live_start();
        enum { LAYERS = 12 };
        gopy_context *layer[LAYERS];
        gopy_context *p = NULL;
        for (int i = 0; i < LAYERS; i++) {
            switch (h_randn(3)) {
            case 0: layer[i] = h_ctx(gopy_context_with_cancel(p)); break;
            case 1: layer[i] = h_ctx(gopy_context_with_timeout(p, 3600 * H_SEC)); break;
            default: layer[i] = h_ctx(gopy_context_with_deadline(p, h_wall() + 7200 * H_SEC));
            }
            p = layer[i];
        }
        int k = (int)h_randn(LAYERS);
        gopy_context_cancel(layer[k]);
        for (int i = 0; i < LAYERS; i++) {
            CHECK_EQ(gopy_context_err(layer[i]), i >= k ? GOPY_CTX_CANCELED : 0);
            CHECK_EQ(h_is_done(layer[i]), i >= k);
        }
        gopy_context_cancel(layer[0]);
        for (int i = LAYERS - 1; i >= 0; i--)
            gopy_context_release(layer[i]);
        h_live_none_left();
    }
}

/* A chain far deeper than a goroutine's stack could recurse through:
 * cancelled from a C goroutine, then freed from the leaf up. */
static gopy_context **deep;
static int deep_n;

static void deep_cancel(void *arg)
{
    gopy_context_cancel(deep[0]);
    h_send(arg, 1);
}

TEST(deep_chain)
{
    h_live_start();
    deep_n = H_SCALED(200000);
    deep = malloc(sizeof *deep * (size_t)deep_n);
    CHECK(deep != NULL);
    for (int i = 0; i < deep_n; i++)
        deep[i] = h_ctx(gopy_context_with_cancel(i ? deep[i - 1] : NULL));
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(deep_cancel, done);
    CHECK_EQ(h_recv(done), 1);
    CHECK(h_is_done(deep[deep_n - 1]));
    /* Drop the root first: each node is freed with its last child. */
    for (int i = 0; i < deep_n; i++)
        gopy_context_release(deep[i]);
    h_live_none_left();
    /* Uncancelled, dropped leaf last: one release frees the whole chain. */
    for (int i = 0; i < deep_n; i++)
        deep[i] = h_ctx(gopy_context_with_timeout(i ? deep[i - 1] : NULL, 3600 * H_SEC));
    gopy_context_cancel(deep[0]);
    for (int i = 0; i < deep_n - 1; i++)
        gopy_context_release(deep[i]);
    CHECK_EQ(gopy_rt_context_live(), live_base + deep_n);
    gopy_context_release(deep[deep_n - 1]);
    h_live_none_left();
    free(deep);
    gopy_chan_release(done);
}

/* ---- who can wait on done: C goroutines, foreign threads, select ------------ */

static gopy_context *shared_ctx;
static gopy_chan *report;

static void goroutine_waits(void *arg)
{
    (void)arg;
    gopy_chan *other = h_chan(sizeof(int64_t), 0);
    int64_t v;
    gopy_case cases[2] = {
        {.chan = other, .dir = GOPY_RECV, .elem = &v},
        {.chan = gopy_context_done(shared_ctx), .dir = GOPY_RECV},
    };
    int i = gopy_select(cases, 2, true);
    h_send(report, i == 1 && !cases[1].ok ? gopy_context_err(shared_ctx) : -1);
    gopy_chan_release(other);
}

static void *thread_waits(void *arg)
{
    (void)arg;
    bool got = gopy_chan_recv(gopy_context_done(shared_ctx), NULL);
    h_send(report, got ? -1 : gopy_context_err(shared_ctx));
    return NULL;
}

TEST(done_wakes_goroutines_and_threads)
{
    shared_ctx = h_ctx(gopy_context_with_cancel(NULL));
    gopy_context *child = h_ctx(gopy_context_with_cancel(shared_ctx));
    report = h_chan(sizeof(int64_t), 16);
    enum { NG = 5, NT = 3 };
    for (int i = 0; i < NG; i++)
        h_go(goroutine_waits, NULL);
    pthread_t th[NT];
    for (int i = 0; i < NT; i++)
        th[i] = h_thread(thread_waits, NULL);
    h_await_waiting(GOPY_WAIT_SELECT, NULL, NG);
    h_usleep(20000); /* the threads reach their receive (not countable) */
    CHECK_EQ(gopy_chan_len(report), 0);
    gopy_context_cancel(shared_ctx);
    for (int i = 0; i < NG + NT; i++)
        CHECK_EQ(h_recv(report), GOPY_CTX_CANCELED);
    for (int i = 0; i < NT; i++)
        h_join(th[i]);
    CHECK_EQ(gopy_context_err(child), GOPY_CTX_CANCELED);
    gopy_context_release(child);
    gopy_context_release(shared_ctx);
    gopy_chan_release(report);
}

/* A nil done (background) in select never proceeds. */
TEST(background_done_is_nil_case)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 1);
    h_send(c, 5);
    int64_t v = 0;
    gopy_case cases[2] = {
        {.chan = gopy_context_done(gopy_context_background()), .dir = GOPY_RECV},
        {.chan = c, .dir = GOPY_RECV, .elem = &v},
    };
    for (int i = 0; i < 20; i++) {
        if (i > 0)
            h_send(c, 5);
        CHECK_EQ(gopy_select(cases, 2, true), 1);
        CHECK_EQ(v, 5);
    }
    CHECK_EQ(gopy_select(cases, 2, false), -1);
    gopy_chan_release(c);
}

/* ---- after_func ------------------------------------------------------------------ */

static _Atomic int64_t af_arg_seen;
static gopy_context *af_ctx;

/* Runs once af_ctx is done: it must see it so (Go starts f after closing
 * the context's done). */
static void af_record(void *arg)
{
    atomic_store(&af_arg_seen, (int64_t)(intptr_t)arg);
    h_send(report, gopy_context_err(af_ctx) == GOPY_CTX_CANCELED ? 1 : -1);
}

TEST(after_func)
{
    h_live_start();
    report = h_chan(sizeof(int64_t), 4);
    gopy_context *c = h_ctx(gopy_context_with_cancel(NULL));
    af_ctx = c;
    /* Stopped before the cancel: never runs. */
    gopy_after_func *stopped = gopy_context_after_func(c, af_record, (void *)(intptr_t)1);
    CHECK(gopy_after_func_stop(stopped));
    CHECK(!gopy_after_func_stop(stopped));
    gopy_after_func *af = gopy_context_after_func(c, af_record, (void *)(intptr_t)7);
    CHECK(af != NULL);
    gopy_sleep(5 * H_MS);
    CHECK_EQ(gopy_chan_len(report), 0);
    gopy_context_cancel(c);
    CHECK_EQ(h_recv(report), 1);
    CHECK_EQ(atomic_load(&af_arg_seen), 7);
    CHECK(!gopy_after_func_stop(af)); /* already started */
    /* On a context already done: runs at once. */
    gopy_after_func *now = gopy_context_after_func(c, af_record, (void *)(intptr_t)9);
    CHECK_EQ(h_recv(report), 1);
    CHECK_EQ(atomic_load(&af_arg_seen), 9);
    CHECK(!gopy_after_func_stop(now));
    /* On a context never done: never runs; stop says it stopped it. */
    gopy_after_func *never = gopy_context_after_func(NULL, af_record, NULL);
    CHECK(gopy_after_func_stop(never));
    gopy_sleep(5 * H_MS);
    CHECK_EQ(gopy_chan_len(report), 0);
    CHECK(gopy_context_after_func(c, NULL, NULL) == NULL);
    gopy_after_func_release(stopped);
    gopy_after_func_release(af);
    gopy_after_func_release(now);
    gopy_after_func_release(never);
    gopy_context_release(c);
    gopy_chan_release(report);
    h_live_none_left();
}

/* stop racing the cancel: exactly one of them wins, every time. */
static gopy_after_func *race_af;
static _Atomic int race_stopped;

static void race_stop(void *arg)
{
    if (gopy_after_func_stop(race_af))
        atomic_fetch_add(&race_stopped, 1);
    h_send(arg, 1);
}

TEST(after_func_stop_races_cancel)
{
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    for (int i = 0; i < H_SCALED(2000); i++) {
        atomic_store(&af_runs, 0);
        atomic_store(&race_stopped, 0);
        gopy_context *c = h_ctx(gopy_context_with_cancel(NULL));
        race_af = gopy_context_after_func(c, count_af, NULL);
        h_go(race_stop, done);
        gopy_context_cancel(c);
        CHECK_EQ(h_recv(done), 1);
        int stopped = atomic_load(&race_stopped);
        for (int k = 0; k < 10000 && stopped + atomic_load(&af_runs) == 0; k++)
            gopy_sleep(H_MS / 10);
        CHECK_EQ(stopped + atomic_load(&af_runs), 1);
        gopy_after_func_release(race_af);
        gopy_context_release(c);
    }
    gopy_chan_release(done);
}

/* ---- many goroutines woken by one cancel ---------------------------------------- */

static gopy_waitgroup *wake_wg;
static _Atomic int64_t wake_saw_cancel;

static void wake_parked(void *arg)
{
    gopy_context *c = arg;
    if (!gopy_chan_recv(gopy_context_done(c), NULL) &&
        gopy_context_err(c) == GOPY_CTX_CANCELED)
        atomic_fetch_add(&wake_saw_cancel, 1);
    gopy_waitgroup_done(wake_wg);
}

TEST(cancel_wakes_many)
{
#if defined(__SANITIZE_THREAD__)
    int n = 5000; /* TSan counts every goroutine as a thread (at most 8128) */
#else
    int n = H_SCALED(100000);
#endif
    gopy_context *c = h_ctx(gopy_context_with_cancel(NULL));
    wake_wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wake_wg, n);
    for (int i = 0; i < n; i++)
        h_go(wake_parked, c);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, gopy_context_done(c), n);
    int64_t t0 = h_now();
    gopy_context_cancel(c);
    gopy_waitgroup_wait(wake_wg);
    int64_t ns = h_now() - t0;
    CHECK_EQ(atomic_load(&wake_saw_cancel), n);
    fprintf(stderr, "     %d goroutines woken by one cancel: %.0f ns each\n", n,
            (double)ns / n);
    gopy_waitgroup_free(wake_wg);
    gopy_context_release(c);
}
