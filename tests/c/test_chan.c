/*
 * test_chan.c -- channel semantics: rendezvous, FIFO (Go's
 * test/chan/fifo.go), len/cap, close, zero-size and large elements, nil
 * channels, non-blocking operations, foreign threads on both ends, Go's
 * TestMultiConsumer and a prime sieve (test/chan/sieve1.go).
 */
#include "harness.h"

/* ---- unbuffered: a send completes only with a receive ----------------- */

static _Atomic int rv_sent;
static int64_t rv_payload; /* plain memory: the channel orders it */

static void rv_sender(void *arg)
{
    rv_payload = 12345;
    h_send(arg, 7);
    atomic_store(&rv_sent, 1);
}

static void rv_receiver(void *arg)
{
    void **a = arg;
    int64_t v = h_recv(a[0]);
    h_send(a[1], v * 10);
}

TEST(unbuffered_rendezvous)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 0);
    /* Sender first: it parks until we receive. */
    h_go(rv_sender, c);
    h_await_waiting(GOPY_WAIT_CHAN_SEND, c, 1);
    CHECK_EQ(atomic_load(&rv_sent), 0);
    CHECK_EQ(gopy_chan_len(c), 0);
    CHECK_EQ(h_recv(c), 7);
    CHECK_EQ(rv_payload, 12345); /* the send happened before the receive */
    h_await_flag(&rv_sent);

    /* Receiver first: it parks until we send. */
    gopy_chan *res = h_chan(sizeof(int64_t), 1);
    void *a[2] = {c, res};
    h_go(rv_receiver, a);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, c, 1);
    CHECK_EQ(gopy_chan_len(res), 0);
    h_send(c, 9);
    CHECK_EQ(h_recv(res), 90);

    /* Non-blocking operations with nobody on the other side fail. */
    int64_t v = 1;
    bool ok = true;
    CHECK_EQ(gopy_rt_chan_send(c, &v, false), GOPY_EAGAIN);
    CHECK_EQ(gopy_rt_chan_recv(c, &v, &ok, false), GOPY_EAGAIN);
    gopy_chan_release(c);
    gopy_chan_release(res);
}

/* ---- FIFO (fifo.go): buffered, and through a daisy chain ---------------- */

TEST(buffered_fifo)
{
    enum { N = 1000 };
    gopy_chan *c = h_chan(sizeof(int64_t), N);
    CHECK_EQ(gopy_chan_cap(c), N);
    for (int64_t i = 0; i < N; i++) {
        CHECK_EQ(gopy_chan_len(c), i);
        h_send(c, i);
    }
    int64_t v = 0;
    CHECK_EQ(gopy_rt_chan_send(c, &v, false), GOPY_EAGAIN); /* full */
    for (int64_t i = 0; i < N; i++) {
        CHECK_EQ(h_recv(c), i);
        CHECK_EQ(gopy_chan_len(c), N - 1 - i);
    }
    bool ok = true;
    CHECK_EQ(gopy_rt_chan_recv(c, &v, &ok, false), GOPY_EAGAIN); /* empty */
    /* Wrap-around: interleave so the ring indices go round many times. */
    gopy_chan *small = h_chan(sizeof(int64_t), 7);
    int64_t next_out = 0, next_in = 0;
    for (int round = 0; round < 1000; round++) {
        int64_t k = (int64_t)h_randn(7) + 1;
        for (int64_t j = 0; j < k && gopy_chan_len(small) < 7; j++)
            h_send(small, next_in++);
        int64_t r = (int64_t)h_randn((uint64_t)gopy_chan_len(small) + 1);
        for (int64_t j = 0; j < r; j++)
            CHECK_EQ(h_recv(small), next_out++);
    }
    while (gopy_chan_len(small) > 0)
        CHECK_EQ(h_recv(small), next_out++);
    CHECK_EQ(next_out, next_in);
    gopy_chan_release(c);
    gopy_chan_release(small);
}

typedef struct {
    gopy_chan *ch, *in, *out;
    int64_t val;
} fifo_link;

static void fifo_chain(void *arg)
{
    fifo_link *l = arg;
    h_recv(l->in);
    int64_t v = h_recv(l->ch);
    if (v != l->val)
        FAIL("chain link %" PRId64 " received %" PRId64, l->val, v);
    h_send(l->out, 1);
}

/* Go's SynchFifo: link i may receive only after link i-1 did, so the
 * values must come out of ch in the order they went in. */
static void synch_fifo(size_t cap)
{
    enum { N = 1000 };
    gopy_chan *ch = h_chan(sizeof(int64_t), cap);
    fifo_link *links = calloc(N, sizeof *links);
    gopy_chan **chans = calloc(N + 1, sizeof *chans);
    CHECK(links != NULL && chans != NULL);
    chans[0] = h_chan(sizeof(int64_t), 0);
    for (int i = 0; i < N; i++) {
        chans[i + 1] = h_chan(sizeof(int64_t), 0);
        links[i] = (fifo_link){ch, chans[i], chans[i + 1], i};
        h_go(fifo_chain, &links[i]);
    }
    h_send(chans[0], 0);
    for (int64_t i = 0; i < N; i++)
        h_send(ch, i);
    CHECK_EQ(h_recv(chans[N]), 1);
    CHECK_EQ(gopy_chan_len(ch), 0);
    for (int i = 0; i <= N; i++)
        gopy_chan_release(chans[i]);
    gopy_chan_release(ch);
    free(links);
    free(chans);
}

TEST(synch_fifo_unbuffered) { synch_fifo(0); }
TEST(synch_fifo_buffered) { synch_fifo(10); }

/* Several senders into one buffered channel: each sender's values arrive
 * in its own order (per-sender FIFO). */
static void seq_sender(void *arg)
{
    void **a = arg;
    int64_t id = (int64_t)(intptr_t)a[1];
    for (int64_t i = 0; i < 10000; i++)
        h_send(a[0], id << 32 | i);
}

TEST(per_sender_fifo)
{
    enum { S = 8 };
    gopy_chan *c = h_chan(sizeof(int64_t), 16);
    void *args[S][2];
    for (int s = 0; s < S; s++) {
        args[s][0] = c;
        args[s][1] = (void *)(intptr_t)s;
        h_go(seq_sender, args[s]);
    }
    int64_t next[S] = {0};
    for (int k = 0; k < S * 10000; k++) {
        int64_t v = h_recv(c);
        int64_t id = v >> 32, i = v & 0xffffffff;
        CHECK_GE(id, 0);
        CHECK_LT(id, S);
        CHECK_EQ(i, next[id]);
        next[id]++;
    }
    for (int s = 0; s < S; s++)
        CHECK_EQ(next[s], 10000);
    gopy_chan_release(c);
}

/* ---- len and cap --------------------------------------------------------- */

TEST(len_cap)
{
    gopy_chan *u = h_chan(sizeof(int64_t), 0);
    CHECK_EQ(gopy_chan_len(u), 0);
    CHECK_EQ(gopy_chan_cap(u), 0);
    gopy_chan *b = h_chan(sizeof(int64_t), 5);
    CHECK_EQ(gopy_chan_cap(b), 5);
    for (int i = 1; i <= 5; i++) {
        h_send(b, i);
        CHECK_EQ(gopy_chan_len(b), i);
        CHECK_EQ(gopy_chan_cap(b), 5);
    }
    CHECK_EQ(gopy_chan_close(b), GOPY_OK);
    CHECK_EQ(gopy_chan_len(b), 5); /* closing keeps the buffered values */
    CHECK_EQ(gopy_chan_len(NULL), 0);
    CHECK_EQ(gopy_chan_cap(NULL), 0);
    CHECK_EQ(gopy_rt_chan_elem_size(b), sizeof(int64_t));
    gopy_chan_release(u);
    gopy_chan_release(b);
}

/* ---- close ---------------------------------------------------------------- */

enum { CLOSE_G = 50, CLOSE_T = 4 };
static _Atomic int close_false, close_closed;

typedef struct {
    char bytes[24];
} elem24;

static void close_receiver(void *arg)
{
    elem24 e;
    memset(&e, 0x5a, sizeof e);
    bool ok = gopy_chan_recv(arg, &e);
    CHECK(!ok);
    for (size_t i = 0; i < sizeof e; i++)
        CHECK_EQ(e.bytes[i], 0); /* zeroed */
    atomic_fetch_add(&close_false, 1);
}

static void *close_receiver_thread(void *arg)
{
    close_receiver(arg);
    return NULL;
}

TEST(close_wakes_receivers)
{
    gopy_chan *c = h_chan(sizeof(elem24), 0);
    for (int i = 0; i < CLOSE_G; i++)
        h_go(close_receiver, c);
    pthread_t t[CLOSE_T];
    for (int i = 0; i < CLOSE_T; i++)
        t[i] = h_thread(close_receiver_thread, c);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, c, CLOSE_G);
    CHECK_EQ(atomic_load(&close_false), 0);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    for (int i = 0; i < CLOSE_T; i++)
        h_join(t[i]);
    h_await_count(&close_false, CLOSE_G + CLOSE_T);
    CHECK_EQ(atomic_load(&close_false), CLOSE_G + CLOSE_T);
    /* Later receives return at once, still zeroed. */
    elem24 e;
    memset(&e, 1, sizeof e);
    CHECK(!gopy_chan_recv(c, &e));
    CHECK_EQ(e.bytes[0], 0);
    CHECK_EQ(e.bytes[23], 0);
    gopy_chan_release(c);
}

static void close_sender(void *arg)
{
    void **a = arg;
    int64_t v = 99;
    int r = gopy_chan_send(a[0], &v);
    if (r == GOPY_ECLOSED)
        atomic_fetch_add(&close_closed, 1);
    else
        CHECK_EQ(r, GOPY_OK);
    gopy_waitgroup_done(a[1]);
}

static void *close_sender_thread(void *arg)
{
    close_sender(arg);
    return NULL;
}

TEST(close_wakes_senders)
{
    /* Blocked on an unbuffered channel and on a full buffered one. */
    gopy_chan *u = h_chan(sizeof(int64_t), 0), *b = h_chan(sizeof(int64_t), 3);
    for (int i = 0; i < 3; i++)
        h_send(b, i);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    void *au[2] = {u, wg}, *ab[2] = {b, wg};
    gopy_waitgroup_add(wg, 2 * CLOSE_G + 2 * CLOSE_T);
    for (int i = 0; i < CLOSE_G; i++) {
        h_go(close_sender, au);
        h_go(close_sender, ab);
    }
    pthread_t t[2 * CLOSE_T];
    for (int i = 0; i < CLOSE_T; i++) {
        t[2 * i] = h_thread(close_sender_thread, au);
        t[2 * i + 1] = h_thread(close_sender_thread, ab);
    }
    h_await_waiting(GOPY_WAIT_CHAN_SEND, u, CLOSE_G);
    h_await_waiting(GOPY_WAIT_CHAN_SEND, b, CLOSE_G);
    CHECK_EQ(gopy_chan_close(u), GOPY_OK);
    CHECK_EQ(gopy_chan_close(b), GOPY_OK);
    for (int i = 0; i < 2 * CLOSE_T; i++)
        h_join(t[i]);
    gopy_waitgroup_wait(wg);
    /* The foreign senders may not have parked before the close: they fail
     * either way, since nobody ever receives. */
    CHECK_EQ(atomic_load(&close_closed), 2 * CLOSE_G + 2 * CLOSE_T);
    /* The buffered values survive the close and drain in order. */
    CHECK_EQ(gopy_chan_len(b), 3);
    for (int64_t i = 0; i < 3; i++)
        CHECK_EQ(h_recv(b), i);
    int64_t v = 5;
    CHECK(!gopy_chan_recv(b, &v));
    CHECK_EQ(v, 0);
    gopy_waitgroup_free(wg);
    gopy_chan_release(u);
    gopy_chan_release(b);
}

TEST(double_close)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 1);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    CHECK_EQ(gopy_chan_close(c), GOPY_ECLOSED);
    CHECK_EQ(gopy_chan_close(c), GOPY_ECLOSED);
    CHECK_EQ(gopy_chan_close(NULL), GOPY_ECLOSED); /* Go: close(nil) panics */
    int64_t v = 1;
    CHECK_EQ(gopy_chan_send(c, &v), GOPY_ECLOSED);
    CHECK_EQ(gopy_rt_chan_send(c, &v, false), GOPY_ECLOSED);
    CHECK_EQ(gopy_rt_chan_send(c, &v, true), GOPY_ECLOSED);
    CHECK_EQ(gopy_chan_len(c), 0); /* the failed sends left nothing */
    bool ok = true;
    CHECK_EQ(gopy_rt_chan_recv(c, &v, &ok, false), GOPY_OK);
    CHECK(!ok);
    CHECK_EQ(v, 0);
    gopy_chan_release(c);
}

TEST(closed_buffered_drains_first)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 5);
    for (int64_t i = 10; i < 15; i++)
        h_send(c, i);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    for (int64_t i = 10; i < 15; i++) {
        CHECK_EQ(gopy_chan_len(c), 15 - i);
        int64_t v = -1;
        bool ok = false;
        CHECK_EQ(gopy_rt_chan_recv(c, &v, &ok, i % 2 == 0), GOPY_OK);
        CHECK(ok);
        CHECK_EQ(v, i);
    }
    for (int k = 0; k < 3; k++) {
        int64_t v = -1;
        CHECK(!gopy_chan_recv(c, &v));
        CHECK_EQ(v, 0);
        CHECK_EQ(gopy_chan_len(c), 0);
    }
    gopy_chan_release(c);
}

/* close racing with blocked and arriving receivers: every value sent
 * before the close is received exactly once, then everyone sees false. */
static _Atomic int64_t race_sum, race_n, race_false;

static void race_receiver(void *arg)
{
    void **a = arg;
    int64_t v;
    while (gopy_chan_recv(a[0], &v)) {
        atomic_fetch_add(&race_sum, v);
        atomic_fetch_add(&race_n, 1);
    }
    atomic_fetch_add(&race_false, 1);
    gopy_waitgroup_done(a[1]);
}

TEST(close_race_receivers)
{
    enum { R = 16, N = 20000 };
    for (int cap = 0; cap <= 4; cap += 4) {
        atomic_store(&race_sum, 0);
        atomic_store(&race_n, 0);
        atomic_store(&race_false, 0);
        gopy_chan *c = h_chan(sizeof(int64_t), (size_t)cap);
        gopy_waitgroup *wg = gopy_waitgroup_make();
        void *a[2] = {c, wg};
        gopy_waitgroup_add(wg, R);
        for (int i = 0; i < R; i++)
            h_go(race_receiver, a);
        for (int64_t i = 1; i <= N; i++)
            h_send(c, i);
        CHECK_EQ(gopy_chan_close(c), GOPY_OK);
        gopy_waitgroup_wait(wg);
        CHECK_EQ(atomic_load(&race_n), N);
        CHECK_EQ(atomic_load(&race_sum), (int64_t)N * (N + 1) / 2);
        CHECK_EQ(atomic_load(&race_false), R);
        gopy_waitgroup_free(wg);
        gopy_chan_release(c);
    }
}

/* A long queue, whose sudogs close's walk finds ahead of it (chan.c's
 * wait_hints), that emptied once and filled again, and that selects left
 * from the middle: close still wakes each of its waiters once, receivers
 * zeroed, senders failed. */
enum { LONG_Q = 300, LONG_FIRST = 100, LONG_SEL = 100, LONG_SENDERS = 150 };
static _Atomic int long_got, long_false, long_sel_won, long_closed;

static void long_value_receiver(void *arg)
{
    elem24 e;
    memset(&e, 0, sizeof e);
    CHECK(gopy_chan_recv(arg, &e));
    CHECK_EQ(e.bytes[0], 7);
    CHECK_EQ(e.bytes[23], 7);
    atomic_fetch_add(&long_got, 1);
}

static void long_receiver(void *arg)
{
    elem24 e;
    memset(&e, 0x5a, sizeof e);
    CHECK(!gopy_chan_recv(arg, &e));
    for (size_t i = 0; i < sizeof e; i++)
        CHECK_EQ(e.bytes[i], 0);
    atomic_fetch_add(&long_false, 1);
}

static void long_selector(void *arg)
{
    void **a = arg;
    elem24 e;
    int64_t v = -1;
    gopy_case cases[2] = {{.chan = a[0], .dir = GOPY_RECV, .elem = &e},
                          {.chan = a[1], .dir = GOPY_RECV, .elem = &v}};
    CHECK_EQ(gopy_select(cases, 2, true), 1);
    CHECK(cases[1].ok);
    CHECK_EQ(v, 8);
    atomic_fetch_add(&long_sel_won, 1);
}

static void long_sender(void *arg)
{
    int64_t v = 9;
    CHECK_EQ(gopy_chan_send(arg, &v), GOPY_ECLOSED);
    atomic_fetch_add(&long_closed, 1);
}

TEST(close_long_queue_wakes_each_once)
{
    gopy_chan *c = h_chan(sizeof(elem24), 0), *d = h_chan(sizeof(int64_t), 0);
    gopy_chan *u = h_chan(sizeof(int64_t), 0);
    /* Long, then empty: receivers that each take a value. */
    elem24 seven;
    memset(&seven, 7, sizeof seven);
    for (int i = 0; i < LONG_FIRST; i++)
        h_go(long_value_receiver, c);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, c, LONG_FIRST);
    for (int i = 0; i < LONG_FIRST; i++)
        CHECK_EQ(gopy_chan_send(c, &seven), GOPY_OK);
    h_await_count(&long_got, LONG_FIRST);
    CHECK_EQ(atomic_load(&long_got), LONG_FIRST);
    /* On c: receivers, and selects on c and d among them. */
    void *cd[2] = {c, d};
    for (int i = 0, sel = 0; i < LONG_Q; i++) {
        h_go(long_receiver, c);
        if (i % 3 == 1 && sel++ < LONG_SEL)
            h_go(long_selector, cd);
    }
    for (int i = 0; i < LONG_SENDERS; i++)
        h_go(long_sender, u);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, c, LONG_Q);
    h_await_waiting(GOPY_WAIT_SELECT, NULL, LONG_SEL);
    h_await_waiting(GOPY_WAIT_CHAN_SEND, u, LONG_SENDERS);
    /* The selects win on d and leave c's queue from the middle. */
    for (int i = 0; i < LONG_SEL; i++)
        h_send(d, 8);
    h_await_count(&long_sel_won, LONG_SEL);
    CHECK_EQ(atomic_load(&long_sel_won), LONG_SEL);
    CHECK_EQ(atomic_load(&long_false), 0);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    CHECK_EQ(gopy_chan_close(u), GOPY_OK);
    h_await_count(&long_false, LONG_Q);
    CHECK_EQ(atomic_load(&long_false), LONG_Q);
    h_await_count(&long_closed, LONG_SENDERS);
    CHECK_EQ(atomic_load(&long_closed), LONG_SENDERS);
    CHECK_EQ(gopy_chan_close(c), GOPY_ECLOSED);
    gopy_chan_release(u);
    gopy_chan_release(d);
    gopy_chan_release(c);
}

/* ---- zero-size and large elements --------------------------------------- */

static void zs_sender(void *arg)
{
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(gopy_chan_send(arg, NULL), GOPY_OK);
    CHECK_EQ(gopy_chan_close(arg), GOPY_OK);
}

TEST(zero_size_elements)
{
    gopy_chan *b = h_chan(0, 3);
    CHECK_EQ(gopy_chan_cap(b), 3);
    char dummy = 'd';
    CHECK_EQ(gopy_chan_send(b, NULL), GOPY_OK);
    CHECK_EQ(gopy_chan_send(b, &dummy), GOPY_OK);
    CHECK_EQ(gopy_chan_send(b, NULL), GOPY_OK);
    CHECK_EQ(gopy_chan_len(b), 3);
    CHECK_EQ(gopy_rt_chan_send(b, NULL, false), GOPY_EAGAIN);
    CHECK(gopy_chan_recv(b, NULL));
    CHECK(gopy_chan_recv(b, &dummy));
    CHECK_EQ(dummy, 'd'); /* nothing is copied */
    CHECK_EQ(gopy_chan_len(b), 1);
    CHECK_EQ(gopy_chan_close(b), GOPY_OK);
    CHECK(gopy_chan_recv(b, NULL));
    CHECK(!gopy_chan_recv(b, NULL));

    gopy_chan *u = h_chan(0, 0);
    h_go(zs_sender, u);
    int n = 0;
    while (gopy_chan_recv(u, NULL))
        n++;
    CHECK_EQ(n, 1000);
    gopy_chan_release(b);
    gopy_chan_release(u);
}

typedef struct {
    uint32_t w[1024]; /* 4 KiB */
} big_elem;

static void big_sender(void *arg)
{
    big_elem *e = malloc(sizeof *e);
    CHECK(e != NULL);
    for (uint32_t k = 0; k < 200; k++) {
        for (uint32_t i = 0; i < 1024; i++)
            e->w[i] = k * 7919u + i;
        CHECK_EQ(gopy_chan_send(arg, e), GOPY_OK);
    }
    free(e);
}

TEST(large_elements)
{
    for (size_t cap = 0; cap <= 3; cap += 3) {
        gopy_chan *c = h_chan(sizeof(big_elem), cap);
        h_go(big_sender, c);
        big_elem *e = malloc(sizeof *e);
        CHECK(e != NULL);
        for (uint32_t k = 0; k < 200; k++) {
            CHECK(gopy_chan_recv(c, e));
            for (uint32_t i = 0; i < 1024; i++)
                if (e->w[i] != k * 7919u + i)
                    FAIL("element %u word %u: %u", k, i, e->w[i]);
        }
        free(e);
        gopy_chan_release(c);
    }
    /* Too large, or too large a buffer: refused. */
    errno = 0;
    CHECK(gopy_chan_make((1u << 16) + 1, 0) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK(gopy_chan_make(1u << 16, SIZE_MAX / 4) == NULL);
}

/* ---- nil channels ----------------------------------------------------------- */

static void nil_recv(void *arg)
{
    (void)arg;
    int64_t v;
    gopy_chan_recv(NULL, &v);
    FAIL("a receive from a nil channel returned");
}

static void nil_send(void *arg)
{
    (void)arg;
    int64_t v = 1;
    gopy_chan_send(NULL, &v);
    FAIL("a send on a nil channel returned");
}

TEST(nil_channel_blocks_forever)
{
    int64_t v = 1;
    bool ok = true;
    CHECK_EQ(gopy_rt_chan_send(NULL, &v, false), GOPY_EAGAIN);
    CHECK_EQ(gopy_rt_chan_recv(NULL, &v, &ok, false), GOPY_EAGAIN);
    CHECK(!ok);
    h_go(nil_recv, NULL);
    h_go(nil_send, NULL);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, NULL, 1);
    h_await_waiting(GOPY_WAIT_CHAN_SEND, NULL, 1);
    /* Still parked a while later (Go: they block forever); exiting with
     * them parked is fine. */
    gopy_sleep(50 * H_MS);
    CHECK_EQ(h_count_waiting(GOPY_WAIT_CHAN_RECV, NULL), 1);
    CHECK_EQ(h_count_waiting(GOPY_WAIT_CHAN_SEND, NULL), 1);
}

/* ---- non-blocking operations (nonblock.go) ------------------------------- */

static void nb_parked_receiver(void *arg)
{
    void **a = arg;
    h_send(a[1], h_recv(a[0]) + 1);
}

static void nb_parked_sender(void *arg)
{
    h_send(arg, 77);
}

TEST(nonblocking_ops)
{
    gopy_chan *u = h_chan(sizeof(int64_t), 0), *res = h_chan(sizeof(int64_t), 1);
    int64_t v = 41;
    bool ok = false;
    /* A parked receiver makes a non-blocking send succeed. */
    void *a[2] = {u, res};
    h_go(nb_parked_receiver, a);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, u, 1);
    CHECK_EQ(gopy_rt_chan_send(u, &v, false), GOPY_OK);
    CHECK_EQ(h_recv(res), 42);
    /* A parked sender makes a non-blocking receive succeed. */
    h_go(nb_parked_sender, u);
    h_await_waiting(GOPY_WAIT_CHAN_SEND, u, 1);
    v = 0;
    CHECK_EQ(gopy_rt_chan_recv(u, &v, &ok, false), GOPY_OK);
    CHECK(ok);
    CHECK_EQ(v, 77);
    /* Buffered: succeeds while there is room / a value. */
    gopy_chan *b = h_chan(sizeof(int64_t), 2);
    v = 1;
    CHECK_EQ(gopy_rt_chan_send(b, &v, false), GOPY_OK);
    v = 2;
    CHECK_EQ(gopy_rt_chan_send(b, &v, false), GOPY_OK);
    CHECK_EQ(gopy_rt_chan_send(b, &v, false), GOPY_EAGAIN);
    CHECK_EQ(gopy_rt_chan_recv(b, &v, &ok, false), GOPY_OK);
    CHECK_EQ(v, 1);
    CHECK_EQ(gopy_rt_chan_recv(b, &v, &ok, false), GOPY_OK);
    CHECK_EQ(v, 2);
    v = 123;
    CHECK_EQ(gopy_rt_chan_recv(b, &v, &ok, false), GOPY_EAGAIN);
    CHECK_EQ(v, 123); /* untouched */
    gopy_chan_release(u);
    gopy_chan_release(res);
    gopy_chan_release(b);
}

/* Go's TestNonblockRecvRace: a value sent before a close must be seen by
 * a concurrent non-blocking receive (ready, not "would block"). */
static void nbrace_recv(void *arg)
{
    void **a = arg;
    int64_t v;
    bool ok;
    int r = gopy_rt_chan_recv(a[0], &v, &ok, false);
    if (r != GOPY_OK)
        FAIL("non-blocking receive of a ready channel said %d", r);
    gopy_waitgroup_done(a[1]);
}

TEST(nonblock_recv_race)
{
    int n = H_SCALED(10000);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    for (int i = 0; i < n; i++) {
        gopy_chan *c = h_chan(sizeof(int64_t), 1);
        h_send(c, 1);
        void *a[2] = {c, wg};
        gopy_waitgroup_add(wg, 1);
        h_go(nbrace_recv, a);
        CHECK_EQ(gopy_chan_close(c), GOPY_OK);
        int64_t v;
        gopy_chan_recv(c, &v);
        gopy_waitgroup_wait(wg);
        gopy_chan_release(c);
    }
    gopy_waitgroup_free(wg);
}

/* ---- foreign threads on both ends --------------------------------------- */

enum { FT_THREADS = 4, FT_GOROUTINES = 4, FT_N = 5000 };
static _Atomic int64_t ft_sum;

static void *ft_send_thread(void *arg)
{
    for (int64_t i = 1; i <= FT_N; i++)
        h_send(arg, i);
    return NULL;
}

static void ft_recv_goroutine(void *arg)
{
    void **a = arg;
    int64_t s = 0, v;
    while (gopy_chan_recv(a[0], &v))
        s += v;
    atomic_fetch_add(&ft_sum, s);
    gopy_waitgroup_done(a[1]);
}

static void ft_send_goroutine(void *arg)
{
    void **a = arg;
    for (int64_t i = 1; i <= FT_N; i++)
        h_send(a[0], i);
    gopy_waitgroup_done(a[1]);
}

static void *ft_recv_thread(void *arg)
{
    int64_t s = 0, v;
    while (gopy_chan_recv(arg, &v))
        s += v;
    atomic_fetch_add(&ft_sum, s);
    return NULL;
}

static void foreign_both_ways(size_t cap)
{
    const int64_t expect = (int64_t)FT_N * (FT_N + 1) / 2;
    /* threads -> goroutines */
    gopy_chan *c = h_chan(sizeof(int64_t), cap);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    void *a[2] = {c, wg};
    atomic_store(&ft_sum, 0);
    gopy_waitgroup_add(wg, FT_GOROUTINES);
    for (int i = 0; i < FT_GOROUTINES; i++)
        h_go(ft_recv_goroutine, a);
    pthread_t t[FT_THREADS];
    for (int i = 0; i < FT_THREADS; i++)
        t[i] = h_thread(ft_send_thread, c);
    for (int i = 0; i < FT_THREADS; i++)
        h_join(t[i]);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    gopy_waitgroup_wait(wg);
    CHECK_EQ(atomic_load(&ft_sum), FT_THREADS * expect);
    gopy_chan_release(c);

    /* goroutines -> threads */
    c = h_chan(sizeof(int64_t), cap);
    a[0] = c;
    atomic_store(&ft_sum, 0);
    gopy_waitgroup_add(wg, FT_GOROUTINES);
    for (int i = 0; i < FT_THREADS; i++)
        t[i] = h_thread(ft_recv_thread, c);
    for (int i = 0; i < FT_GOROUTINES; i++)
        h_go(ft_send_goroutine, a);
    gopy_waitgroup_wait(wg);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    for (int i = 0; i < FT_THREADS; i++)
        h_join(t[i]);
    CHECK_EQ(atomic_load(&ft_sum), FT_GOROUTINES * expect);
    gopy_chan_release(c);

    /* threads -> threads, through the runtime */
    c = h_chan(sizeof(int64_t), cap);
    atomic_store(&ft_sum, 0);
    pthread_t r[2];
    for (int i = 0; i < 2; i++)
        r[i] = h_thread(ft_recv_thread, c);
    for (int i = 0; i < FT_THREADS; i++)
        t[i] = h_thread(ft_send_thread, c);
    for (int i = 0; i < FT_THREADS; i++)
        h_join(t[i]);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    for (int i = 0; i < 2; i++)
        h_join(r[i]);
    CHECK_EQ(atomic_load(&ft_sum), FT_THREADS * expect);
    gopy_chan_release(c);
    gopy_waitgroup_free(wg);
}

TEST(foreign_threads_unbuffered) { foreign_both_ways(0); }
TEST(foreign_threads_buffered) { foreign_both_ways(8); }

/* ---- Go's TestMultiConsumer ------------------------------------------------ */

enum { MC_WORK = 23, MC_ITER = 271828 };
static const int64_t mc_pn[] = {2, 3, 7, 11, 13, 17, 19, 23, 27, 31};
static gopy_chan *mc_q, *mc_r;
static gopy_waitgroup *mc_wg;
static int64_t mc_expect;

static void mc_worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    int64_t v;
    while (gopy_chan_recv(mc_q, &v)) {
        if (mc_pn[w % 10] == v)
            gopy_yield(); /* mess with the FIFO-ish order */
        h_send(mc_r, v);
    }
    gopy_waitgroup_done(mc_wg);
}

static void mc_feeder(void *arg)
{
    (void)arg;
    int64_t expect = 0;
    int iter = H_SCALED(MC_ITER);
    for (int i = 0; i < iter; i++) {
        int64_t v = mc_pn[i % 10];
        expect += v;
        h_send(mc_q, v);
    }
    mc_expect = expect; /* ordered before the close of mc_r */
    CHECK_EQ(gopy_chan_close(mc_q), GOPY_OK);
    gopy_waitgroup_wait(mc_wg);
    CHECK_EQ(gopy_chan_close(mc_r), GOPY_OK);
}

TEST(multi_consumer)
{
    mc_q = h_chan(sizeof(int64_t), MC_WORK * 3);
    mc_r = h_chan(sizeof(int64_t), MC_WORK * 3);
    mc_wg = gopy_waitgroup_make();
    gopy_waitgroup_add(mc_wg, MC_WORK);
    for (int i = 0; i < MC_WORK; i++)
        h_go(mc_worker, (void *)(intptr_t)i);
    h_go(mc_feeder, NULL);
    int64_t n = 0, s = 0, v;
    while (gopy_chan_recv(mc_r, &v)) {
        n++;
        s += v;
    }
    CHECK_EQ(n, H_SCALED(MC_ITER));
    CHECK_EQ(s, mc_expect);
    gopy_waitgroup_free(mc_wg);
    gopy_chan_release(mc_q);
    gopy_chan_release(mc_r);
}

/* ---- prime sieve (sieve1.go): primes below 1000 --------------------------- */

static gopy_waitgroup *sieve_wg;

typedef struct {
    gopy_chan *in, *out;
    int64_t prime;
} sieve_filter_t;

static void sieve_generate(void *arg)
{
    for (int64_t i = 2;; i++)
        if (gopy_chan_send(arg, &i) != GOPY_OK)
            break; /* the sieve is done */
    gopy_waitgroup_done(sieve_wg);
}

static void sieve_filter(void *arg)
{
    sieve_filter_t *f = arg;
    int64_t v;
    while (gopy_chan_recv(f->in, &v)) {
        if (v % f->prime != 0 && gopy_chan_send(f->out, &v) != GOPY_OK)
            break;
    }
    /* Shut the chain down on both sides of us. */
    gopy_chan_close(f->in);
    gopy_chan_close(f->out);
    gopy_waitgroup_done(sieve_wg);
}

TEST(prime_sieve)
{
    enum { LIMIT = 1000, MAXP = 200 };
    sieve_filter_t filters[MAXP];
    gopy_chan *chans[MAXP + 1];
    sieve_wg = gopy_waitgroup_make();
    chans[0] = h_chan(sizeof(int64_t), 0);
    gopy_waitgroup_add(sieve_wg, 1);
    h_go(sieve_generate, chans[0]);
    int64_t primes[MAXP];
    int np = 0;
    gopy_chan *ch = chans[0];
    for (;;) {
        int64_t p = h_recv(ch);
        if (p >= LIMIT)
            break;
        CHECK_LT(np, MAXP);
        primes[np] = p;
        chans[np + 1] = h_chan(sizeof(int64_t), (size_t)(np % 3)); /* a mix */
        filters[np] = (sieve_filter_t){ch, chans[np + 1], p};
        gopy_waitgroup_add(sieve_wg, 1);
        h_go(sieve_filter, &filters[np]);
        ch = chans[np + 1];
        np++;
    }
    /* Trial division for the reference. */
    int k = 0;
    for (int64_t n = 2; n < LIMIT; n++) {
        bool prime = true;
        for (int64_t d = 2; d * d <= n; d++)
            if (n % d == 0)
                prime = false;
        if (prime) {
            CHECK_LT(k, np);
            CHECK_EQ(primes[k], n);
            k++;
        }
    }
    CHECK_EQ(k, np);
    CHECK_EQ(np, 168);
    /* Close the tail: the filters close their neighbours' channels, back
     * to the generator, which then stops. */
    CHECK_EQ(gopy_chan_close(ch), GOPY_OK);
    gopy_waitgroup_wait(sieve_wg);
    for (int i = 0; i <= np; i++)
        gopy_chan_release(chans[i]);
    gopy_waitgroup_free(sieve_wg);
}

/* ---- reference counting and the release hook ---------------------------- */

static int64_t released[8];
static int nreleased;

static void release_elem(void *elem, void *ctx)
{
    CHECK_EQ((intptr_t)ctx, 0xC0FFEE);
    CHECK_LT(nreleased, 8);
    memcpy(&released[nreleased++], elem, sizeof(int64_t));
}

static void holder(void *arg)
{
    void **a = arg;
    /* The creator has dropped its reference; ours keeps the channel. */
    h_recv(a[1]);
    CHECK_EQ(h_recv(a[0]), 1);
    gopy_chan_release(a[0]);
    h_send(a[2], 1);
}

TEST(refcount_and_release_hook)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 5);
    gopy_rt_chan_set_release(c, release_elem, (void *)(intptr_t)0xC0FFEE);
    for (int64_t i = 1; i <= 5; i++)
        h_send(c, i);
    CHECK_EQ(h_recv(c), 1);
    CHECK_EQ(h_recv(c), 2);
    h_send(c, 6); /* wraps around the ring */
    gopy_chan_release(c);
    /* Freed with 3, 4, 5, 6 inside: released once each, in order. */
    CHECK_EQ(nreleased, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(released[i], i + 3);

    gopy_chan *d = h_chan(sizeof(int64_t), 1);
    gopy_chan *go_ahead = h_chan(sizeof(int64_t), 0), *done = h_chan(sizeof(int64_t), 0);
    gopy_chan_retain(d); /* the holder's reference */
    void *a[3] = {d, go_ahead, done};
    h_go(holder, a);
    h_send(d, 1);
    gopy_chan_release(d); /* ours */
    h_send(go_ahead, 0);
    CHECK_EQ(h_recv(done), 1);
    gopy_chan_release(go_ahead);
    gopy_chan_release(done);
}

/* ---- visiting the buffer, sharing (the binding's garbage collection) ----- */

typedef struct {
    int64_t seen[8];
    int n, stop_at;
} visits;

static int record_visit(void *elem, void *arg)
{
    visits *v = arg;
    CHECK_LT(v->n, 8);
    memcpy(&v->seen[v->n], elem, sizeof(int64_t));
    return ++v->n == v->stop_at ? 42 : 0;
}

TEST(visit_buffer_and_shared)
{
    gopy_chan *c = h_chan(sizeof(int64_t), 3);
    visits v = {.stop_at = -1};
    CHECK_EQ(gopy_rt_chan_visit(c, record_visit, &v), 0);
    CHECK_EQ(v.n, 0);
    for (int64_t i = 1; i <= 3; i++)
        h_send(c, i);
    CHECK_EQ(h_recv(c), 1);
    h_send(c, 4); /* wraps around the ring */
    CHECK_EQ(gopy_rt_chan_visit(c, record_visit, &v), 0);
    CHECK_EQ(v.n, 3); /* oldest first, nothing taken */
    CHECK_EQ(v.seen[0], 2);
    CHECK_EQ(v.seen[1], 3);
    CHECK_EQ(v.seen[2], 4);
    CHECK_EQ(gopy_chan_len(c), 3);
    v = (visits){.stop_at = 2};
    CHECK_EQ(gopy_rt_chan_visit(c, record_visit, &v), 42); /* stops at non-zero */
    CHECK_EQ(v.n, 2);

    /* A parked sender's value is its own, not the buffer's. */
    gopy_chan *u = h_chan(sizeof(int64_t), 0);
    atomic_store(&rv_sent, 0);
    h_go(rv_sender, u);
    h_await_waiting(GOPY_WAIT_CHAN_SEND, u, 1);
    v = (visits){.stop_at = -1};
    CHECK_EQ(gopy_rt_chan_visit(u, record_visit, &v), 0);
    CHECK_EQ(v.n, 0);
    CHECK_EQ(h_recv(u), 7);
    h_await_flag(&rv_sent);

    CHECK(!gopy_rt_chan_shared(c));
    gopy_chan_retain(c);
    CHECK(gopy_rt_chan_shared(c));
    gopy_chan_release(c);
    CHECK(!gopy_rt_chan_shared(c));
    gopy_chan_release(c);
    gopy_chan_release(u);
}
