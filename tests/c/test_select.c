/*
 * test_select.c -- gopy_select: the ready case runs, default, nil cases,
 * duplicate channels (Go's TestSelectDuplicateChannel, TestSelfSelect),
 * send on a closed channel, fairness measured with a chi-square test (Go's
 * TestSelectFairness), test/chan/doubleselect.go, TestSelectStress,
 * TestNonblockSelectRace, large selects, many goroutines selecting.
 */
#include "harness.h"

static gopy_case rcase(gopy_chan *c, int64_t *v)
{
    return (gopy_case){.chan = c, .dir = GOPY_RECV, .elem = v};
}

static gopy_case scase(gopy_chan *c, int64_t *v)
{
    return (gopy_case){.chan = c, .dir = GOPY_SEND, .elem = v};
}

/* ---- the ready case runs, and only it ------------------------------------ */

TEST(ready_case_runs)
{
    enum { N = 5 };
    gopy_chan *c[N];
    for (int i = 0; i < N; i++)
        c[i] = h_chan(sizeof(int64_t), 1);
    for (int k = 0; k < N; k++) {
        /* Receives: only c[k] holds a value. */
        h_send(c[k], 100 + k);
        int64_t v[N];
        gopy_case cases[N];
        for (int i = 0; i < N; i++) {
            v[i] = -1;
            cases[i] = rcase(c[i], &v[i]);
        }
        for (int block = 0; block <= 1; block++) {
            if (block)
                h_send(c[k], 200 + k);
            int got = gopy_select(cases, N, block);
            CHECK_EQ(got, k);
            CHECK(cases[k].ok);
            CHECK_EQ(v[k], block ? 200 + k : 100 + k);
            for (int i = 0; i < N; i++) {
                if (i != k) {
                    CHECK_EQ(v[i], -1); /* other buffers untouched */
                    CHECK(!cases[i].ok);
                }
                CHECK_EQ(gopy_chan_len(c[i]), 0);
            }
        }
        /* Sends: every channel full but c[k]. */
        for (int i = 0; i < N; i++)
            if (i != k)
                h_send(c[i], 1);
        int64_t out[N];
        for (int i = 0; i < N; i++) {
            out[i] = 300 + i;
            cases[i] = scase(c[i], &out[i]);
        }
        CHECK_EQ(gopy_select(cases, N, true), k);
        CHECK(cases[k].ok);
        for (int i = 0; i < N; i++) {
            CHECK_EQ(gopy_chan_len(c[i]), 1);
            CHECK_EQ(h_recv(c[i]), i == k ? 300 + k : 1);
        }
    }
    for (int i = 0; i < N; i++)
        gopy_chan_release(c[i]);
}

/* ---- default (block = false) --------------------------------------------- */

TEST(select_default)
{
    gopy_chan *u = h_chan(sizeof(int64_t), 0), *b = h_chan(sizeof(int64_t), 1);
    h_send(b, 5); /* b full: a send case on it is not ready */
    int64_t rv = -7, sv = 8;
    gopy_case cases[3] = {rcase(u, &rv), scase(u, &sv), scase(b, &sv)};
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(gopy_select(cases, 3, false), -1);
        CHECK_EQ(rv, -7);
        CHECK(!cases[0].ok && !cases[1].ok && !cases[2].ok);
    }
    int chosen = 5;
    CHECK_EQ(gopy_rt_select(cases, 3, false, &chosen), GOPY_OK);
    CHECK_EQ(chosen, -1);
    CHECK_EQ(gopy_chan_len(b), 1);
    /* No cases, and only nil cases. */
    CHECK_EQ(gopy_select(NULL, 0, false), -1);
    gopy_case nils[2] = {rcase(NULL, &rv), scase(NULL, &sv)};
    CHECK_EQ(gopy_select(nils, 2, false), -1);
    /* Once b has a free slot, its send case is ready. */
    CHECK_EQ(h_recv(b), 5);
    CHECK_EQ(gopy_select(cases, 3, false), 2);
    CHECK(cases[2].ok);
    CHECK_EQ(h_recv(b), 8);
    gopy_chan_release(u);
    gopy_chan_release(b);
}

/* ---- nil channels never proceed ------------------------------------------ */

static void nil_select_sender(void *arg)
{
    h_send(arg, 42);
}

static void select_forever(void *arg)
{
    (void)arg;
    gopy_select(NULL, 0, true);
    FAIL("select {} returned");
}

static void nil_only_select(void *arg)
{
    (void)arg;
    int64_t v;
    gopy_case nils[2] = {rcase(NULL, &v), scase(NULL, &v)};
    gopy_select(nils, 2, true);
    FAIL("a select of nil cases returned");
}

TEST(nil_cases_never_proceed)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 1);
    int64_t v = 0, w = 0;
    gopy_case cases[4] = {rcase(NULL, &w), scase(NULL, &w), rcase(c, &v), rcase(NULL, &w)};
    for (int i = 0; i < 1000; i++) {
        h_send(c, i);
        CHECK_EQ(gopy_select(cases, 4, false), 2);
        CHECK_EQ(v, i);
    }
    CHECK_EQ(w, 0);
    /* Blocking: parked on the real channel, woken by a send. */
    gopy_chan *u = h_chan(sizeof(int64_t), 0);
    cases[2] = rcase(u, &v);
    h_go(nil_select_sender, u);
    CHECK_EQ(gopy_select(cases, 4, true), 2);
    CHECK_EQ(v, 42);
    CHECK(cases[2].ok);
    CHECK_EQ(w, 0);
    /* select {} and a select of nil cases block forever. */
    h_go(select_forever, NULL);
    h_go(nil_only_select, NULL);
    h_await_waiting(GOPY_WAIT_SELECT_NO_CASES, NULL, 2);
    gopy_sleep(20 * H_MS);
    CHECK_EQ(h_count_waiting(GOPY_WAIT_SELECT_NO_CASES, NULL), 2);
    gopy_chan_release(c);
    gopy_chan_release(u);
}

/* ---- blocking: parked on every case, woken by exactly one -------------- */

static void blocked_select(void *arg)
{
    void **a = arg;
    gopy_chan **c = a[0];
    int64_t v[3] = {-1, -1, -1}, out = 55;
    gopy_case cases[4] = {rcase(c[0], &v[0]), rcase(c[1], &v[1]), rcase(c[2], &v[2]),
                          scase(c[3], &out)};
    int k = gopy_select(cases, 4, true);
    CHECK(cases[k].ok);
    for (int i = 0; i < 3; i++)
        if (i != k)
            CHECK_EQ(v[i], -1);
    h_send(a[1], k < 3 ? k * 1000 + v[k] : 3000 + out);
}

TEST(blocked_select_woken_once)
{
    gopy_chan *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = h_chan(sizeof(int64_t), 0);
    gopy_chan *res = h_chan(sizeof(int64_t), 1);
    void *a[2] = {c, res};
    for (int round = 0; round < 200; round++) {
        int k = (int)h_randn(4);
        h_go(blocked_select, a);
        h_await_waiting(GOPY_WAIT_SELECT, NULL, 1);
        if (k < 3) {
            h_send(c[k], round);
            CHECK_EQ(h_recv(res), k * 1000 + round);
        } else {
            CHECK_EQ(h_recv(c[3]), 55);
            CHECK_EQ(h_recv(res), 3055);
        }
        /* Nothing was left queued on the other channels. */
        int64_t v = 0;
        bool ok;
        for (int i = 0; i < 4; i++) {
            CHECK_EQ(gopy_rt_chan_send(c[i], &v, false), GOPY_EAGAIN);
            CHECK_EQ(gopy_rt_chan_recv(c[i], &v, &ok, false), GOPY_EAGAIN);
        }
    }
    for (int i = 0; i < 4; i++)
        gopy_chan_release(c[i]);
    gopy_chan_release(res);
}

/* ---- duplicate channels ------------------------------------------------- */

static gopy_chan *dup_c, *dup_d, *dup_e;

static void dup_a(void *arg)
{
    (void)arg;
    int64_t v1 = -1, v2 = -1, v3 = -1;
    gopy_case cases[3] = {rcase(dup_c, &v1), rcase(dup_c, &v2), rcase(dup_d, &v3)};
    CHECK_EQ(gopy_select(cases, 3, true), 2);
    CHECK_EQ(v3, 7);
    h_send(dup_e, 9);
}

static void dup_b(void *arg)
{
    CHECK_EQ(h_recv(dup_c), 8);
    h_send(arg, 1);
}

TEST(duplicate_channel)
{
    /* Go's TestSelectDuplicateChannel: A is queued twice on c, then B on
     * c; A is woken through d and must leave c's queue intact for B. */
    dup_c = h_chan(sizeof(int64_t), 0);
    dup_d = h_chan(sizeof(int64_t), 0);
    dup_e = h_chan(sizeof(int64_t), 0);
    gopy_chan *bdone = h_chan(sizeof(int64_t), 1);
    h_go(dup_a, NULL);
    h_await_waiting(GOPY_WAIT_SELECT, NULL, 1);
    h_go(dup_b, bdone);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, dup_c, 1);
    h_send(dup_d, 7);
    CHECK_EQ(h_recv(dup_e), 9);
    h_send(dup_c, 8);
    CHECK_EQ(h_recv(bdone), 1);

    /* Two ready cases on one channel holding one value: one fires. */
    gopy_chan *b = h_chan(sizeof(int64_t), 1);
    int hits[2] = {0, 0};
    for (int i = 0; i < 2000; i++) {
        h_send(b, i);
        int64_t v1 = -1, v2 = -1;
        gopy_case cases[2] = {rcase(b, &v1), rcase(b, &v2)};
        int k = gopy_select(cases, 2, false);
        CHECK(k == 0 || k == 1);
        hits[k]++;
        CHECK_EQ(k == 0 ? v1 : v2, i);
        CHECK_EQ(k == 0 ? v2 : v1, -1);
        CHECK_EQ(gopy_chan_len(b), 0);
    }
    CHECK_GT(hits[0], 0);
    CHECK_GT(hits[1], 0);
    gopy_chan_release(dup_c);
    gopy_chan_release(dup_d);
    gopy_chan_release(dup_e);
    gopy_chan_release(bdone);
    gopy_chan_release(b);
}

/* Go's TestSelfSelect: two goroutines each select {send c; recv c}; on an
 * unbuffered channel a goroutine never receives its own value. */
static void self_select(void *arg)
{
    void **a = arg;
    gopy_chan *c = a[0];
    int64_t p = (int64_t)(intptr_t)a[1];
    bool unbuffered = gopy_chan_cap(c) == 0;
    for (int i = 0; i < 1000; i++) {
        int64_t out = p, in = -1;
        gopy_case cases[2];
        if ((p == 0) == (i % 2 == 0)) {
            cases[0] = scase(c, &out);
            cases[1] = rcase(c, &in);
        } else {
            cases[0] = rcase(c, &in);
            cases[1] = scase(c, &out);
        }
        int k = gopy_select(cases, 2, true);
        if (cases[k].dir == GOPY_RECV && unbuffered && in == p)
            FAIL("goroutine %" PRId64 " received its own value", p);
    }
    gopy_waitgroup_done(a[2]);
}

TEST(self_select)
{
    for (size_t cap = 0; cap <= 10; cap += 10) {
        gopy_chan *c = h_chan(sizeof(int64_t), cap);
        gopy_waitgroup *wg = gopy_waitgroup_make();
        void *a0[3] = {c, (void *)0, wg}, *a1[3] = {c, (void *)1, wg};
        gopy_waitgroup_add(wg, 2);
        h_go(self_select, a0);
        h_go(self_select, a1);
        gopy_waitgroup_wait(wg);
        gopy_waitgroup_free(wg);
        gopy_chan_release(c);
    }
}

/* ---- send on a closed channel: the case is chosen with ok = false ------ */

/* Select on {recv never, <dir> c}; report the chosen case, ok and the
 * received value. */
static void select_then_report(void *arg)
{
    void **a = arg;
    int64_t v = 5;
    gopy_case cases[2] = {rcase(a[1], &v),
                          {.chan = a[0], .dir = (int)(intptr_t)a[3], .elem = &v}};
    cases[1].ok = true;
    int k = gopy_select(cases, 2, true);
    h_send(a[2], k * 100 + cases[k].ok * 10 + v);
}

TEST(send_closed_case)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 1), *never = h_chan(sizeof(int64_t), 0);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    int64_t v = 3, w = -1;
    gopy_case cases[2] = {rcase(never, &w), scase(c, &v)};
    for (int block = 0; block <= 1; block++) {
        cases[1].ok = true;
        CHECK_EQ(gopy_select(cases, 2, block), 1);
        CHECK(!cases[1].ok);
    }
    CHECK_EQ(gopy_chan_len(c), 0);
    /* A receive case on the closed channel: ok false, zeroed. */
    w = 77;
    gopy_case rc[2] = {rcase(never, &v), rcase(c, &w)};
    CHECK_EQ(gopy_select(rc, 2, true), 1);
    CHECK(!rc[1].ok);
    CHECK_EQ(w, 0);
    /* Parked on a send case, then the channel is closed under it: case 1,
     * ok false (the value stays 5). */
    gopy_chan *res = h_chan(sizeof(int64_t), 1);
    gopy_chan *u = h_chan(sizeof(int64_t), 0);
    void *a[4] = {u, never, res, (void *)(intptr_t)GOPY_SEND};
    h_go(select_then_report, a);
    h_await_waiting(GOPY_WAIT_SELECT, NULL, 1);
    CHECK_EQ(gopy_chan_close(u), GOPY_OK);
    CHECK_EQ(h_recv(res), 105);
    /* Parked on a receive case, then closed: ok false, zeroed. */
    gopy_chan *u2 = h_chan(sizeof(int64_t), 0);
    void *a2[4] = {u2, never, res, (void *)(intptr_t)GOPY_RECV};
    h_go(select_then_report, a2);
    h_await_waiting(GOPY_WAIT_SELECT, NULL, 1);
    CHECK_EQ(gopy_chan_close(u2), GOPY_OK);
    CHECK_EQ(h_recv(res), 100);
    gopy_chan_release(res);
    gopy_chan_release(c);
    gopy_chan_release(never);
    gopy_chan_release(u);
    gopy_chan_release(u2);
}

/* ---- fairness: chi-square over 40,000 selects of 4 ready cases --------- */

/* Critical values of the chi-square distribution for a false-positive
 * rate of 1e-9 (computed from its closed forms for 1 and 3 degrees of
 * freedom). */
#define CHI2_DF1_1E9 37.33
#define CHI2_DF3_1E9 44.85

static double chi_square(const int64_t *obs, int k, double expect)
{
    double x = 0;
    for (int i = 0; i < k; i++) {
        double d = (double)obs[i] - expect;
        x += d * d / expect;
    }
    return x;
}

static void fairness_run(void *arg)
{
    enum { K = 4, TRIALS = 40000 };
    gopy_chan *c[K];
    for (int i = 0; i < K; i++) {
        c[i] = h_chan(sizeof(int64_t), 1);
        h_send(c[i], i);
    }
    int64_t count[K] = {0};
    int64_t v = -1;
    gopy_case cases[K];
    for (int i = 0; i < K; i++)
        cases[i] = rcase(c[i], &v);
    for (int t = 0; t < TRIALS; t++) {
        int k = gopy_select(cases, K, true);
        CHECK_EQ(v, k);
        count[k]++;
        h_send(c[k], k); /* refill: all four stay ready */
    }
    double x = chi_square(count, K, TRIALS / (double)K);
    fprintf(stderr, "     counts %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 ", chi2 %.2f\n",
            count[0], count[1], count[2], count[3], x);
    if (!(x < CHI2_DF3_1E9))
        FAIL("select is not fair: chi2 = %.2f (counts %" PRId64 " %" PRId64 " %" PRId64
             " %" PRId64 ")",
             x, count[0], count[1], count[2], count[3]);

    /* Two ready send cases (room in both buffers), df = 1. */
    gopy_chan *s[2] = {h_chan(sizeof(int64_t), 1), h_chan(sizeof(int64_t), 1)};
    int64_t sc[2] = {0, 0}, out = 1;
    gopy_case sends[2] = {scase(s[0], &out), scase(s[1], &out)};
    for (int t = 0; t < 20000; t++) {
        int k = gopy_select(sends, 2, true);
        sc[k]++;
        h_recv(s[k]); /* empty it again */
    }
    x = chi_square(sc, 2, 10000.0);
    if (!(x < CHI2_DF1_1E9))
        FAIL("send cases not fair: chi2 = %.2f (%" PRId64 " vs %" PRId64 ")", x, sc[0], sc[1]);
    for (int i = 0; i < K; i++)
        gopy_chan_release(c[i]);
    gopy_chan_release(s[0]);
    gopy_chan_release(s[1]);
    h_send(arg, 1);
}

TEST(fairness_chi_square)
{
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(fairness_run, done); /* in a goroutine, as Go's test does */
    CHECK_EQ(h_recv(done), 1);
    gopy_chan_release(done);
}

/* ---- test/chan/doubleselect.go ------------------------------------------- */

typedef struct {
    gopy_chan *in, *out;
    gopy_waitgroup *wg;
} ds_mux_t;

static void ds_sender(void *arg)
{
    void **a = arg;
    gopy_chan **c = a[0];
    int64_t n = (int64_t)(intptr_t)a[1];
    for (int64_t i = 0; i < n; i++) {
        int64_t v = i;
        gopy_case cases[4] = {scase(c[0], &v), scase(c[1], &v), scase(c[2], &v),
                              scase(c[3], &v)};
        int k = gopy_select(cases, 4, true);
        CHECK(k >= 0 && k < 4 && cases[k].ok);
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(gopy_chan_close(c[i]), GOPY_OK);
}

static void ds_mux(void *arg)
{
    ds_mux_t *m = arg;
    int64_t v;
    while (gopy_chan_recv(m->in, &v))
        h_send(m->out, v);
    gopy_waitgroup_done(m->wg);
}

static void ds_closer(void *arg)
{
    ds_mux_t *m = arg;
    gopy_waitgroup_wait(m->wg);
    CHECK_EQ(gopy_chan_close(m->out), GOPY_OK);
}

TEST(doubleselect)
{
    int64_t n = H_SCALED(100000);
    gopy_gomaxprocs(2);
    gopy_chan *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = h_chan(sizeof(int64_t), 0);
    gopy_chan *cmux = h_chan(sizeof(int64_t), 0);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, 4);
    ds_mux_t mux[4];
    void *sa[2] = {c, (void *)(intptr_t)n};
    h_go(ds_sender, sa);
    for (int i = 0; i < 4; i++) {
        mux[i] = (ds_mux_t){c[i], cmux, wg};
        h_go(ds_mux, &mux[i]);
    }
    h_go(ds_closer, &mux[0]);
    unsigned char *seen = calloc((size_t)n, 1);
    CHECK(seen != NULL);
    int64_t v, got = 0;
    while (gopy_chan_recv(cmux, &v)) {
        CHECK(v >= 0 && v < n);
        if (seen[v])
            FAIL("got duplicate value: %" PRId64, v);
        seen[v] = 1;
        got++;
    }
    CHECK_EQ(got, n);
    free(seen);
    gopy_waitgroup_free(wg);
    for (int i = 0; i < 4; i++)
        gopy_chan_release(c[i]);
    gopy_chan_release(cmux);
}

/* ---- Go's TestSelectStress ------------------------------------------------ */

/* 4 goroutines send N values on each channel, 4 receive N from each; one
 * more sends N on every channel from a single select, one more receives N
 * from every channel likewise.  Values are checksummed. */
static gopy_chan *st_c[4];
static int64_t st_n;
static _Atomic int64_t st_recv_sum, st_recv_n;

static void st_plain_sender(void *arg)
{
    void **a = arg;
    int k = (int)(intptr_t)a[0];
    for (int64_t i = 0; i < st_n; i++)
        h_send(st_c[k], (int64_t)k << 40 | i);
    gopy_waitgroup_done(a[1]);
}

static void st_plain_receiver(void *arg)
{
    void **a = arg;
    int k = (int)(intptr_t)a[0];
    int64_t s = 0;
    for (int64_t i = 0; i < st_n; i++) {
        int64_t v = h_recv(st_c[k]);
        CHECK_EQ(v >> 40, k);
        s += v & 0xffffffffff;
    }
    atomic_fetch_add(&st_recv_sum, s);
    atomic_fetch_add(&st_recv_n, st_n);
    gopy_waitgroup_done(a[1]);
}

static void st_select_sender(void *arg)
{
    int64_t n[4] = {0, 0, 0, 0}, v[4];
    gopy_case cases[4];
    for (int k = 0; k < 4; k++)
        cases[k] = scase(st_c[k], &v[k]);
    for (int64_t i = 0; i < 4 * st_n; i++) {
        for (int k = 0; k < 4; k++)
            v[k] = (int64_t)k << 40 | n[k];
        int k = gopy_select(cases, 4, true);
        CHECK(k >= 0 && k < 4 && cases[k].ok);
        if (++n[k] == st_n)
            cases[k].chan = NULL; /* done with this one */
    }
    gopy_waitgroup_done(arg);
}

static void st_select_receiver(void *arg)
{
    int64_t n[4] = {0, 0, 0, 0}, v = -1, s = 0;
    gopy_case cases[4];
    for (int k = 0; k < 4; k++)
        cases[k] = rcase(st_c[k], &v);
    for (int64_t i = 0; i < 4 * st_n; i++) {
        int k = gopy_select(cases, 4, true);
        CHECK(k >= 0 && k < 4 && cases[k].ok);
        CHECK_EQ(v >> 40, k);
        s += v & 0xffffffffff;
        if (++n[k] == st_n)
            cases[k].chan = NULL;
    }
    atomic_fetch_add(&st_recv_sum, s);
    atomic_fetch_add(&st_recv_n, 4 * st_n);
    gopy_waitgroup_done(arg);
}

TEST(select_stress)
{
    st_n = H_SCALED(50000);
    st_c[0] = h_chan(sizeof(int64_t), 0);
    st_c[1] = h_chan(sizeof(int64_t), 0);
    st_c[2] = h_chan(sizeof(int64_t), 2);
    st_c[3] = h_chan(sizeof(int64_t), 3);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, 10);
    void *a[4][2];
    for (int k = 0; k < 4; k++) {
        a[k][0] = (void *)(intptr_t)k;
        a[k][1] = wg;
        h_go(st_plain_sender, a[k]);
        h_go(st_plain_receiver, a[k]);
    }
    h_go(st_select_sender, wg);
    h_go(st_select_receiver, wg);
    gopy_waitgroup_wait(wg);
    /* Each channel carried 0..n-1 twice (plain and select senders). */
    CHECK_EQ(atomic_load(&st_recv_n), 8 * st_n);
    CHECK_EQ(atomic_load(&st_recv_sum), 8 * (st_n * (st_n - 1) / 2));
    for (int k = 0; k < 4; k++) {
        CHECK_EQ(gopy_chan_len(st_c[k]), 0);
        gopy_chan_release(st_c[k]);
    }
    gopy_waitgroup_free(wg);
}

/* ---- many goroutines selecting over shared channels ----------------------- */

enum { MS_PROD = 50, MS_CONS = 50, MS_EACH = 2000 };
static gopy_chan *ms_c[3];
static _Atomic int64_t ms_sum, ms_n;

static void ms_producer(void *arg)
{
    void **a = arg;
    int64_t id = (int64_t)(intptr_t)a[0];
    for (int64_t i = 1; i <= MS_EACH; i++) {
        int64_t v = id * MS_EACH + i;
        gopy_case cases[3] = {scase(ms_c[0], &v), scase(ms_c[1], &v), scase(ms_c[2], &v)};
        int k = gopy_select(cases, 3, true);
        CHECK(k >= 0 && cases[k].ok);
    }
    gopy_waitgroup_done(a[1]);
}

static void ms_consumer(void *arg)
{
    int64_t v = 0, s = 0, n = 0;
    gopy_case cases[3] = {rcase(ms_c[0], &v), rcase(ms_c[1], &v), rcase(ms_c[2], &v)};
    int open = 3;
    while (open > 0) {
        int k = gopy_select(cases, 3, true);
        if (!cases[k].ok) {
            CHECK_EQ(v, 0);
            cases[k].chan = NULL; /* closed: stop selecting on it */
            open--;
            continue;
        }
        s += v;
        n++;
    }
    atomic_fetch_add(&ms_sum, s);
    atomic_fetch_add(&ms_n, n);
    gopy_waitgroup_done(arg);
}

TEST(select_many_goroutines)
{
    ms_c[0] = h_chan(sizeof(int64_t), 0);
    ms_c[1] = h_chan(sizeof(int64_t), 1);
    ms_c[2] = h_chan(sizeof(int64_t), 8);
    gopy_waitgroup *pwg = gopy_waitgroup_make(), *cwg = gopy_waitgroup_make();
    gopy_waitgroup_add(pwg, MS_PROD);
    gopy_waitgroup_add(cwg, MS_CONS);
    for (int i = 0; i < MS_CONS; i++)
        h_go(ms_consumer, cwg);
    void *a[MS_PROD][2];
    for (int i = 0; i < MS_PROD; i++) {
        a[i][0] = (void *)(intptr_t)i;
        a[i][1] = pwg;
        h_go(ms_producer, a[i]);
    }
    gopy_waitgroup_wait(pwg);
    for (int k = 0; k < 3; k++)
        CHECK_EQ(gopy_chan_close(ms_c[k]), GOPY_OK);
    gopy_waitgroup_wait(cwg);
    const int64_t total = (int64_t)MS_PROD * MS_EACH;
    CHECK_EQ(atomic_load(&ms_n), total);
    CHECK_EQ(atomic_load(&ms_sum), total * (total + 1) / 2);
    for (int k = 0; k < 3; k++)
        gopy_chan_release(ms_c[k]);
    gopy_waitgroup_free(pwg);
    gopy_waitgroup_free(cwg);
}

/* ---- Go's TestNonblockSelectRace ----------------------------------------- */

static void nbsel(void *arg)
{
    void **a = arg;
    int64_t v;
    gopy_case cases[2] = {rcase(a[0], &v), rcase(a[1], &v)};
    int k = gopy_select(cases, 2, false);
    h_send(a[2], k >= 0);
}

TEST(nonblock_select_race)
{
    int n = H_SCALED(20000);
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    for (int i = 0; i < n; i++) {
        gopy_chan *c1 = h_chan(sizeof(int64_t), 1), *c2 = h_chan(sizeof(int64_t), 1);
        h_send(c1, 1);
        void *a[3] = {c1, c2, done};
        h_go(nbsel, a);
        h_send(c2, 1);
        int64_t v;
        gopy_case cases[1] = {rcase(c1, &v)};
        gopy_select(cases, 1, false);
        if (h_recv(done) != 1)
            FAIL("iteration %d: no channel was ready", i);
        gopy_chan_release(c1);
        gopy_chan_release(c2);
    }
    gopy_chan_release(done);
}

/* ---- large selects (more cases than the on-stack arrays) --------------- */

static void large_selector(void *arg)
{
    void **a = arg;
    gopy_case *cases = a[0];
    h_send(a[1], gopy_select(cases, (int)(intptr_t)a[2], true));
}

TEST(large_select)
{
    enum { N = 100 };
    gopy_chan *c[N];
    int64_t v[N];
    gopy_case cases[N];
    for (int i = 0; i < N; i++) {
        c[i] = h_chan(sizeof(int64_t), 1);
        v[i] = -1;
        cases[i] = rcase(i % 7 == 3 ? NULL : c[i], &v[i]);
    }
    CHECK_EQ(gopy_select(cases, N, false), -1);
    for (int k = 0; k < N; k += 11) {
        if (cases[k].chan == NULL)
            continue;
        h_send(c[k], k);
        CHECK_EQ(gopy_select(cases, N, true), k);
        CHECK_EQ(v[k], k);
        v[k] = -1;
    }
    /* Parked on all of them, woken through one. */
    gopy_chan *res = h_chan(sizeof(int64_t), 1);
    void *a[3] = {cases, res, (void *)(intptr_t)N};
    h_go(large_selector, a);
    h_await_waiting(GOPY_WAIT_SELECT, NULL, 1);
    h_send(c[57], 4242);
    CHECK_EQ(h_recv(res), 57);
    CHECK_EQ(v[57], 4242);
    gopy_chan_release(res);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(gopy_chan_len(c[i]), 0);
        gopy_chan_release(c[i]);
    }
}

/* ---- receive cases that discard the value (select7.go) ------------------- */

TEST(recv_discard)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 2), *d = h_chan(sizeof(int64_t), 0);
    h_send(c, 1);
    h_send(c, 2);
    gopy_case cases[2] = {{.chan = c, .dir = GOPY_RECV, .elem = NULL},
                          {.chan = d, .dir = GOPY_RECV, .elem = NULL}};
    CHECK_EQ(gopy_select(cases, 2, true), 0);
    CHECK(cases[0].ok);
    CHECK_EQ(gopy_chan_len(c), 1);
    CHECK_EQ(h_recv(c), 2);
    gopy_chan_close(c);
    CHECK_EQ(gopy_select(cases, 2, true), 0);
    CHECK(!cases[0].ok);
    gopy_chan_release(c);
    gopy_chan_release(d);
}
