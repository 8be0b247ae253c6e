/*
 * test_sched.c -- the scheduler: many goroutines under load at several
 * GOMAXPROCS (also changed while they run), work stealing, the handoff
 * of a P from an M blocked in a call the runtime cannot see (sysmon
 * compensation), long chains of goroutines, mass parking, and exiting
 * with goroutines parked.
 */
#include "harness.h"

#include <poll.h>

/* ---- load: N workers, each taking a token, sending its id through relay
 * goroutines to the main thread, giving the token back ----------------- */

enum { LOAD_RELAYS = 8, LOAD_TOKENS = 16 };

static struct {
    gopy_chan *tokens; /* buffered: a semaphore of LOAD_TOKENS */
    gopy_chan *mid;    /* unbuffered: workers -> relays */
    gopy_chan *out;    /* buffered: relays -> main */
    gopy_chan *relays_done;
    gopy_waitgroup *wg;
} L;

static void load_worker(void *arg)
{
    int64_t i = (int64_t)(intptr_t)arg;
    int64_t tok = h_recv(L.tokens);
    CHECK_GE(tok, 0);
    CHECK_LT(tok, LOAD_TOKENS);
    h_send(L.mid, i);
    h_send(L.tokens, tok);
    gopy_waitgroup_done(L.wg);
}

static void load_relay(void *arg)
{
    (void)arg;
    int64_t v, n = 0;
    while (gopy_chan_recv(L.mid, &v)) {
        h_send(L.out, 2 * v + 1);
        n++;
    }
    CHECK_EQ(v, 0); /* zeroed by the close */
    h_send(L.relays_done, n);
}

/* Run the load with n workers; the main thread (a foreign thread) is the
 * collector.  Every id must arrive exactly once. */
static void run_load(int n)
{
    L.tokens = h_chan(sizeof(int64_t), LOAD_TOKENS);
    L.mid = h_chan(sizeof(int64_t), 0);
    L.out = h_chan(sizeof(int64_t), 128);
    L.relays_done = h_chan(sizeof(int64_t), LOAD_RELAYS);
    L.wg = gopy_waitgroup_make();
    CHECK(L.wg != NULL);
    for (int64_t t = 0; t < LOAD_TOKENS; t++)
        h_send(L.tokens, t);
    for (int r = 0; r < LOAD_RELAYS; r++)
        h_go(load_relay, NULL);
    gopy_waitgroup_add(L.wg, (int)n);
    for (int64_t i = 0; i < n; i++)
        h_go(load_worker, (void *)(intptr_t)i);

    if (n <= 0)
        FAIL("bad size %d", n);
    unsigned char *seen = calloc((size_t)n, 1);
    CHECK(seen != NULL);
    int64_t sum = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t v = h_recv(L.out);
        CHECK_EQ(v % 2, 1);
        int64_t i = (v - 1) / 2;
        CHECK_GE(i, 0);
        CHECK_LT(i, n);
        CHECK_EQ(seen[i], 0);
        seen[i] = 1;
        sum += v;
    }
    CHECK_EQ(sum, (int64_t)n * n); /* sum of the first n odd numbers */
    gopy_waitgroup_wait(L.wg);
    CHECK_EQ(gopy_chan_close(L.mid), GOPY_OK);
    int64_t relayed = 0;
    for (int r = 0; r < LOAD_RELAYS; r++)
        relayed += h_recv(L.relays_done);
    CHECK_EQ(relayed, n);
    CHECK_EQ(gopy_chan_len(L.out), 0);
    CHECK_EQ(gopy_chan_len(L.tokens), LOAD_TOKENS);
    free(seen);
    gopy_waitgroup_free(L.wg);
    gopy_chan_release(L.tokens);
    gopy_chan_release(L.mid);
    gopy_chan_release(L.out);
    gopy_chan_release(L.relays_done);
}

static void load_at(int procs)
{
    gopy_gomaxprocs(procs);
    CHECK_EQ(gopy_gomaxprocs(0), procs);
    run_load(H_SCALED(100000));
    CHECK_EQ(gopy_gomaxprocs(0), procs);
}

TEST(load_p1) { load_at(1); }
TEST(load_p2) { load_at(2); }
TEST(load_p4) { load_at(4); }

/* ---- GOMAXPROCS changed by a goroutine while the load runs ------------- */

static _Atomic int toggle_stop;
static _Atomic int toggle_changes;
static _Atomic int toggle_last;

static void toggler(void *arg)
{
    gopy_chan *done = arg;
    static const int seq[] = {1, 4, 2, 3, 1, 8, 2, 1, 3, 4};
    int prev = gopy_gomaxprocs(0);
    int k = 0;
    while (!atomic_load(&toggle_stop)) {
        int n = seq[k++ % (int)(sizeof seq / sizeof seq[0])];
        int got = gopy_gomaxprocs(n);
        CHECK_EQ(got, prev); /* returns the previous setting */
        prev = n;
        atomic_store(&toggle_last, n);
        atomic_fetch_add(&toggle_changes, 1);
        gopy_sleep(H_MS / 2 + (int64_t)h_randn(2 * H_MS));
    }
    h_send(done, prev);
}

TEST(gomaxprocs_change)
{
    gopy_gomaxprocs(2);
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(toggler, done);
    for (int round = 0; round < 3; round++)
        run_load(H_SCALED(40000));
    atomic_store(&toggle_stop, 1);
    int64_t last = h_recv(done);
    CHECK_EQ(last, atomic_load(&toggle_last));
    CHECK_GT(atomic_load(&toggle_changes), 3);
    CHECK_EQ(gopy_gomaxprocs(0), last);
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.gomaxprocs, last);
    /* And the runtime still works at each size afterwards. */
    for (int p = 1; p <= 4; p++) {
        CHECK_EQ(gopy_gomaxprocs(p), p == 1 ? last : p - 1);
        run_load(1000);
    }
    gopy_chan_release(done);
}

/* ---- work stealing: two spinners spawned by one goroutine must run at
 * once on 2 Ps (a C goroutine is never preempted, so on one P the first
 * spinner would hold it until its deadline) --------------------------- */

static _Atomic int spin_started[2];
static _Atomic int spin_saw_other[2];

static void spinner(void *arg)
{
    int i = (int)((intptr_t)arg & 1);
    gopy_chan *done = (gopy_chan *)((intptr_t)arg & ~(intptr_t)1);
    atomic_store(&spin_started[i], 1);
    int64_t deadline = h_now() + 20 * H_SEC;
    while (!atomic_load(&spin_started[1 - i]) && h_now() < deadline) {
    }
    atomic_store(&spin_saw_other[i], atomic_load(&spin_started[1 - i]));
    h_send(done, i);
}

static void spawner(void *arg)
{
    gopy_chan *done = arg;
    /* Both land on this goroutine's P (runnext and its local queue): the
     * other P can only get one by stealing. */
    CHECK_EQ(((intptr_t)done & 1), 0);
    h_go(spinner, (void *)((intptr_t)done | 0));
    h_go(spinner, (void *)((intptr_t)done | 1));
}

TEST(steal_parallel)
{
    gopy_gomaxprocs(2);
    gopy_rt_stats before, after;
    gopy_rt_get_stats(&before);
    gopy_chan *done = h_chan(sizeof(int64_t), 2);
    h_go(spawner, done);
    int64_t a = h_recv(done), b = h_recv(done);
    CHECK_EQ(a + b, 1);
    CHECK_EQ(atomic_load(&spin_saw_other[0]), 1);
    CHECK_EQ(atomic_load(&spin_saw_other[1]), 1);
    gopy_rt_get_stats(&after);
    /* The other P got its goroutine by stealing -- or, when the OS
     * descheduled an M long enough for sysmon to lend a P, through the
     * global queue once that P was retired again. */
    if (!(after.steals > before.steals || after.handoffs > before.handoffs))
        FAIL("no steal and no handoff, yet the goroutines ran on two Ps");
    gopy_chan_release(done);
}

/* Many short goroutines spawned from one goroutine spread over both Ps:
 * some are stolen, and two of them run at the same time at least once. */
static _Atomic int overlap_running, overlap_max;

static void overlap_task(void *arg)
{
    gopy_waitgroup *wg = arg;
    int now = atomic_fetch_add(&overlap_running, 1) + 1;
    int m = atomic_load(&overlap_max);
    while (now > m && !atomic_compare_exchange_weak(&overlap_max, &m, now)) {
    }
    /* Work without runtime calls until two tasks have overlapped (or
     * 50 ms, a bound that only matters if they never do). */
    int64_t end = h_now() + 50 * H_MS;
    while (atomic_load(&overlap_max) < 2 && h_now() < end) {
    }
    atomic_fetch_sub(&overlap_running, 1);
    gopy_waitgroup_done(wg);
}

static void overlap_spawner(void *arg)
{
    gopy_waitgroup *wg = arg;
    for (int i = 0; i < 200; i++)
        h_go(overlap_task, wg);
    gopy_waitgroup_done(wg);
}

TEST(steal_overlap)
{
    gopy_gomaxprocs(2);
    gopy_rt_stats before, after;
    gopy_rt_get_stats(&before);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, 201);
    h_go(overlap_spawner, wg);
    gopy_waitgroup_wait(wg);
    gopy_rt_get_stats(&after);
    int running = atomic_load(&overlap_running), max = atomic_load(&overlap_max);
    CHECK_EQ(running, 0);
    /* At least 2; more when sysmon lent a P to an M the OS descheduled
     * (its G then looks blocked, not computing). */
    CHECK_GE(max, 2);
    /* The other P got its goroutine by stealing -- or, when the OS
     * descheduled an M long enough for sysmon to lend a P, through the
     * global queue once that P was retired again. */
    if (!(after.steals > before.steals || after.handoffs > before.handoffs))
        FAIL("no steal and no handoff, yet the goroutines ran on two Ps");
    gopy_waitgroup_free(wg);
}

/* ---- blocking-call handoff (GOMAXPROCS 1) ----------------------------- */

static _Atomic int b_done;

typedef struct {
    gopy_chan *ping, *pong;
} pingpong_t;

static void handoff_echo(void *arg)
{
    pingpong_t *pp = arg;
    int64_t v;
    while (gopy_chan_recv(pp->ping, &v))
        h_send(pp->pong, v + 1);
}

static void handoff_b(void *arg)
{
    /* Real runtime work: 1000 round trips through another goroutine. */
    static pingpong_t pp;
    (void)arg;
    pp.ping = h_chan(sizeof(int64_t), 0);
    pp.pong = h_chan(sizeof(int64_t), 0);
    h_go(handoff_echo, &pp);
    for (int64_t i = 0; i < 1000; i++) {
        h_send(pp.ping, i);
        CHECK_EQ(h_recv(pp.pong), i + 1);
    }
    gopy_chan_close(pp.ping);
    atomic_store(&b_done, 1);
}

static void handoff_a_usleep(void *arg)
{
    gopy_chan *done = arg;
    h_go(handoff_b, NULL); /* queued on this M's P */
    usleep(200000);        /* blocks the M, unseen by the runtime */
    h_send(done, atomic_load(&b_done));
}

/* About time (B must finish within A's 200 ms): not looped by the stress
 * script, where other processes load the 2 cores.  handoff_pipe_read and
 * handoff_many_readers check the same without a clock. */
TEST_NOSTRESS(handoff_usleep)
{
    gopy_gomaxprocs(1);
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(handoff_a_usleep, done);
    CHECK_EQ(h_recv(done), 1); /* B finished while A slept */
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_GE(st.handoffs, 1);
    gopy_chan_release(done);
}

static int handoff_pipe[2];

static void handoff_writer(void *arg)
{
    (void)arg;
    gopy_chan *c = h_chan(sizeof(int64_t), 1);
    h_send(c, 'x');
    char ch = (char)h_recv(c);
    CHECK_EQ(write(handoff_pipe[1], &ch, 1), 1);
    gopy_chan_release(c);
}

static void handoff_reader(void *arg)
{
    gopy_chan *done = arg;
    h_go(handoff_writer, NULL);
    /* Blocks this M until the writer -- queued behind us on our only P
     * -- runs.  Without the handoff it never would. */
    struct pollfd pfd = {.fd = handoff_pipe[0], .events = POLLIN};
    int r = poll(&pfd, 1, 20000);
    CHECK_EQ(r, 1);
    char ch = 0;
    CHECK_EQ(read(handoff_pipe[0], &ch, 1), 1);
    h_send(done, ch);
}

TEST(handoff_pipe_read)
{
    gopy_gomaxprocs(1);
    CHECK_EQ(pipe(handoff_pipe), 0);
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(handoff_reader, done);
    CHECK_EQ(h_recv(done), 'x');
    gopy_chan_release(done);
}

/* 20 goroutines blocked in read() at once on one P: each needs its own
 * compensation. */
enum { NREADERS = 20 };
static int reader_pipes[NREADERS][2];
static _Atomic int readers_in;

static gopy_waitgroup *readers_wg;

static void blocked_reader(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&readers_in, 1);
    char ch = 0;
    CHECK_EQ(read(reader_pipes[i][0], &ch, 1), 1);
    CHECK_EQ(ch, (char)('a' + i));
    gopy_waitgroup_done(readers_wg);
}

TEST(handoff_many_readers)
{
    gopy_gomaxprocs(1);
    readers_wg = gopy_waitgroup_make();
    gopy_waitgroup_add(readers_wg, NREADERS);
    for (intptr_t i = 0; i < NREADERS; i++) {
        CHECK_EQ(pipe(reader_pipes[i]), 0);
        h_go(blocked_reader, (void *)i);
    }
    int64_t deadline = h_now() + 30 * H_SEC;
    while (atomic_load(&readers_in) < NREADERS) {
        if (h_now() > deadline)
            FAIL("only %d of %d readers got to run", atomic_load(&readers_in), NREADERS);
        h_usleep(1000);
    }
    for (intptr_t i = 0; i < NREADERS; i++) {
        char ch = (char)('a' + i);
        CHECK_EQ(write(reader_pipes[i][1], &ch, 1), 1);
    }
    gopy_waitgroup_wait(readers_wg);
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_GE(st.handoffs, NREADERS - 1);
    gopy_waitgroup_free(readers_wg);
    /* The Ps added for the blocked Ms go away once the Ms are back. */
    CHECK_EQ(gopy_gomaxprocs(0), 1);
    deadline = h_now() + 30 * H_SEC;
    for (;;) {
        gopy_rt_get_stats(&st);
        if (st.ps == 1)
            break;
        if (h_now() > deadline)
            FAIL("%" PRId64 " Ps still in use with GOMAXPROCS 1", st.ps);
        h_usleep(1000);
    }
}

/* ---- test/chan/goroutines.go: a chain of 10,000 goroutines ------------- */

typedef struct {
    gopy_chan *left, *right;
} link_t;

static void chain_link(void *arg)
{
    link_t *l = arg;
    int64_t v = h_recv(l->right);
    h_send(l->left, v + 1);
}

static void chain_feed(void *arg)
{
    h_send(arg, 0);
}

TEST(goroutine_chain)
{
    enum { N = H_LIVE(10000) };
    link_t *links = calloc(N, sizeof *links);
    CHECK(links != NULL);
    gopy_chan *leftmost = h_chan(sizeof(int64_t), 0);
    gopy_chan *left = leftmost;
    for (int i = 0; i < N; i++) {
        gopy_chan *right = h_chan(sizeof(int64_t), 0);
        links[i].left = left;
        links[i].right = right;
        h_go(chain_link, &links[i]);
        left = right;
    }
    h_go(chain_feed, left);
    CHECK_EQ(h_recv(leftmost), N);
    /* Every link has sent: all but the feeder's channel are drained. */
    for (int i = 0; i < N; i++)
        gopy_chan_release(links[i].left);
    gopy_chan_release(left);
    free(links);
}

/* ---- 100,000 goroutines parked at once, woken by one close ------------- */

static _Atomic int64_t park_false;

static void park_recv(void *arg)
{
    void **a = arg;
    int64_t v = -1;
    bool ok = gopy_chan_recv(a[0], &v);
    if (!ok && v == 0)
        atomic_fetch_add(&park_false, 1);
    gopy_waitgroup_done(a[1]);
}

TEST(park_many_close)
{
    int64_t n = H_SCALED(100000);
    gopy_chan *c = h_chan(sizeof(int64_t), 0);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    void *args[2] = {c, wg};
    int64_t base = gopy_rt_num_goroutine();
    gopy_waitgroup_add(wg, (int)n);
    for (int64_t i = 0; i < n; i++)
        h_go(park_recv, args);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, c, n);
    CHECK_EQ(gopy_rt_num_goroutine(), base + n);
    CHECK_EQ(gopy_chan_close(c), GOPY_OK);
    gopy_waitgroup_wait(wg);
    CHECK_EQ(atomic_load(&park_false), n);
    /* They all finish (the count drops back). */
    int64_t deadline = h_now() + 60 * H_SEC;
    while (gopy_rt_num_goroutine() != base) {
        if (h_now() > deadline)
            FAIL("%" PRId64 " goroutines left", gopy_rt_num_goroutine() - base);
        h_usleep(1000);
    }
    gopy_waitgroup_free(wg);
    gopy_chan_release(c);
}

/* ---- exit with goroutines parked that hold memory ------------------------
 * The memory only their stacks point to is not leaked: under LeakSanitizer
 * (scripts/sanitize.sh) the goroutine stacks are roots (stack.c), which
 * this case's exit checks. */

static gopy_chan *exit_ready, *exit_never;

static void exit_holder(void *arg)
{
    (void)arg;
    char *volatile mem = malloc(1000);
    CHECK(mem != NULL);
    h_send(exit_ready, 1);
    gopy_chan_recv(exit_never, NULL); /* parked until the process exits */
    free(mem);
}

TEST(exit_with_parked_goroutines_holding_memory)
{
    exit_ready = h_chan(sizeof(int64_t), 0);
    exit_never = h_chan(0, 0);
    for (int i = 0; i < 4; i++)
        h_go(exit_holder, NULL);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(h_recv(exit_ready), 1);
}

/* ---- Gosched makes progress (Go's TestYieldProgress), GOMAXPROCS 1 ----- */

static _Atomic int yield_flag;

static void yield_spinner(void *arg)
{
    int64_t n = 0;
    while (!atomic_load(&yield_flag)) {
        gopy_yield();
        n++;
    }
    h_send(arg, n);
}

static void yield_setter(void *arg)
{
    (void)arg;
    atomic_store(&yield_flag, 1);
}

TEST(yield_progress)
{
    gopy_gomaxprocs(1);
    gopy_chan *done = h_chan(sizeof(int64_t), 1);
    h_go(yield_spinner, done);
    h_go(yield_setter, NULL);
    CHECK_GE(h_recv(done), 0);
    gopy_chan_release(done);
}

/* Two goroutines taking turns through a shared variable, on one P: each
 * waits for its turn with gopy_yield, so a yield must let the other run. */
static _Atomic int turn;
static _Atomic int64_t turns_taken;

static void yield_turns(void *arg)
{
    void **a = arg;
    int id = (int)(intptr_t)a[0];
    for (int i = 0; i < 1000; i++) {
        while (atomic_load(&turn) != id)
            gopy_yield();
        atomic_fetch_add(&turns_taken, 1);
        atomic_store(&turn, 1 - id);
    }
    h_send(a[1], id);
}

TEST(yield_two_goroutines)
{
    gopy_gomaxprocs(1);
    gopy_chan *done = h_chan(sizeof(int64_t), 2);
    void *a0[2] = {(void *)0, done}, *a1[2] = {(void *)1, done};
    h_go(yield_turns, a1);
    h_go(yield_turns, a0);
    int64_t x = h_recv(done), y = h_recv(done);
    CHECK_EQ(x + y, 1);
    CHECK_EQ(atomic_load(&turns_taken), 2000);
    CHECK_EQ(atomic_load(&turn), 0);
    gopy_chan_release(done);
}

/* ---- a C goroutine spawning many lets them run (C_START_BATCH) ---------- */

enum { BACKLOG_SPAWNS = H_SCALED(50000), BACKLOG_MARK = 1024 };
static _Atomic int64_t backlog_ran;

static void backlog_task(void *arg)
{
    atomic_fetch_add(&backlog_ran, 1);
    gopy_waitgroup_done(arg);
}

static void backlog_spawner(void *arg)
{
    void **a = arg;
    gopy_waitgroup *wg = a[0];
    int64_t worst = 0;
    for (int64_t i = 1; i <= BACKLOG_SPAWNS; i++) {
        h_go(backlog_task, wg);
        int64_t waiting = i - atomic_load(&backlog_ran);
        worst = waiting > worst ? waiting : worst;
    }
    h_send(a[1], worst);
}

TEST(spawner_lets_its_backlog_run)
{
    /* Nothing preempts a C goroutine: under GOMAXPROCS=1 none of them ran
     * until the spawner finished (a million made 4 GB of stacks). */
    gopy_gomaxprocs(1);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, BACKLOG_SPAWNS);
    gopy_chan *worst = h_chan(sizeof(int64_t), 1);
    void *a[2] = {wg, worst};
    h_go(backlog_spawner, a);
    int64_t w = h_recv(worst);
    gopy_waitgroup_wait(wg);
    CHECK_EQ(atomic_load(&backlog_ran), BACKLOG_SPAWNS);
    /* The local run queue (256) and the global one up to the mark. */
    CHECK_LE(w, BACKLOG_MARK + 256 + 1);
    gopy_chan_release(worst);
    gopy_waitgroup_free(wg);
}

/* ---- goroutines started from many foreign threads at once ------------- */

enum { SPAWN_THREADS = 8, SPAWN_EACH = H_SCALED(2000) };
static _Atomic int64_t spawn_sum;

static void spawned(void *arg)
{
    void **a = arg;
    atomic_fetch_add(&spawn_sum, (int64_t)(intptr_t)a[0]);
    gopy_waitgroup_done(a[1]);
    free(a);
}

static void *spawn_thread(void *arg)
{
    gopy_waitgroup *wg = arg;
    for (int i = 1; i <= SPAWN_EACH; i++) {
        void **a = malloc(2 * sizeof *a);
        CHECK(a != NULL);
        a[0] = (void *)(intptr_t)i;
        a[1] = wg;
        h_go(spawned, a);
    }
    return NULL;
}

TEST(spawn_from_threads)
{
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, SPAWN_THREADS * SPAWN_EACH);
    pthread_t t[SPAWN_THREADS];
    for (int i = 0; i < SPAWN_THREADS; i++)
        t[i] = h_thread(spawn_thread, wg);
    for (int i = 0; i < SPAWN_THREADS; i++)
        h_join(t[i]);
    gopy_waitgroup_wait(wg);
    CHECK_EQ(atomic_load(&spawn_sum),
             (int64_t)SPAWN_THREADS * SPAWN_EACH * (SPAWN_EACH + 1) / 2);
    gopy_waitgroup_free(wg);
}

/* ---- goroutine ids ------------------------------------------------------ */

static void goid_task(void *arg)
{
    h_send(arg, gopy_rt_goid());
}

TEST(goid_unique)
{
    enum { N = 1000 };
    CHECK_EQ(gopy_rt_goid(), 0); /* not a goroutine */
    gopy_chan *c = h_chan(sizeof(int64_t), N);
    for (int i = 0; i < N; i++)
        h_go(goid_task, c);
    int64_t *ids = calloc(N, sizeof *ids);
    CHECK(ids != NULL);
    for (int i = 0; i < N; i++) {
        ids[i] = h_recv(c);
        CHECK_GT(ids[i], 0);
        for (int j = 0; j < i; j++)
            CHECK_NE(ids[j], ids[i]);
    }
    free(ids);
    gopy_chan_release(c);
}
