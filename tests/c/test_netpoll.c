/*
 * test_netpoll.c -- the netpoller: goroutines and threads waiting for
 * descriptors (socketpairs, pipes) to become readable or writable; many
 * descriptors at once, deadlines (ready before, timeout, already past),
 * gopy_netpoll_close waking waiters, readers and writers on one
 * descriptor, a descriptor closed behind our back and its number reused,
 * waits from a plain thread, parked waiters holding no M at GOMAXPROCS 1,
 * sysmon's poll while every P is busy, the fork child's own poller, and
 * the errors.  A ping-pong case measures the cost of a wait.
 *
 * Readiness wakes every waiter of a mode, so each check below waits for
 * exactly the waiters it expects to be parked (h_await_waiting) before
 * acting, and counts who returned.
 */
#include "harness.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* ---- helpers ------------------------------------------------------------ */

static void h_socketpair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        FAIL("socketpair: %s", strerror(errno));
}

static void put_byte(int fd, char c)
{
    ssize_t n;
    while ((n = write(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1)
        FAIL("write(%d): %s", fd, strerror(errno));
}

static char get_byte(int fd)
{
    char c;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1)
        FAIL("read(%d) returned %zd: %s", fd, n, strerror(errno));
    return c;
}

/* Write until the socket's buffers are full; returns the bytes written. */
static size_t fill(int fd)
{
    static const char junk[4096];
    size_t total = 0;
    for (;;) {
        ssize_t n = write(fd, junk, sizeof junk);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN)
            return total;
        FAIL("fill: write: %s", strerror(errno));
    }
}

static void drain(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

/* Room for n more descriptors (the soft limit may be 1024). */
static void want_fds(rlim_t n)
{
    struct rlimit rl;
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= n + 64)
        return;
    rl.rlim_cur = rl.rlim_max < n + 64 ? rl.rlim_max : n + 64;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < n + 64)
        FAIL("only %lld descriptors allowed", (long long)rl.rlim_cur);
}

static int64_t netpoll_waiters(void)
{
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    return st.netpoll_waiters;
}

/* A wait in a goroutine, its result sent on `out` (an int64 channel). */
typedef struct {
    int fd;
    int mode;
    int64_t deadline;
    gopy_chan *out;
} wait_job;

static void waiter(void *arg)
{
    wait_job *j = arg;
    int r = gopy_netpoll_wait(j->fd, j->mode, j->deadline);
    h_send(j->out, r < 0 ? -errno : r);
}

/* ---- readiness wakes a parked goroutine ---------------------------------- */

TEST(ready_wakes_goroutine)
{
    int sv[2];
    h_socketpair(sv);
    gopy_chan *out = h_chan(sizeof(int64_t), 1);
    wait_job j = {sv[0], GOPY_POLL_READ, -1, out};
    h_go(waiter, &j);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    CHECK_EQ(netpoll_waiters(), 1);
    CHECK_EQ(gopy_chan_len(out), 0); /* still parked: nothing was ready */
    put_byte(sv[1], 'x');
    CHECK_EQ(h_recv(out), GOPY_OK);
    CHECK_EQ(get_byte(sv[0]), 'x');
    CHECK_EQ(netpoll_waiters(), 0);
    /* Writable at once: a wait that returns without parking. */
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_WRITE, -1), GOPY_OK);
    gopy_chan_release(out);
    close(sv[0]);
    close(sv[1]);
}

/* ---- many descriptors: one goroutine each --------------------------------- */

typedef struct {
    int fd;
    int64_t id;
    gopy_chan *out;
} reader_job;

static void reader(void *arg)
{
    reader_job *j = arg;
    for (;;) {
        char c;
        ssize_t n = read(j->fd, &c, 1);
        if (n == 1) {
            h_send(j->out, j->id * 256 + (unsigned char)c);
            return;
        }
        CHECK(n < 0 && errno == EAGAIN);
        CHECK_EQ(gopy_netpoll_wait(j->fd, GOPY_POLL_READ, -1), GOPY_OK);
    }
}

TEST(many_socketpairs)
{
    const int n = H_LIVE(H_SCALED(1000));
    want_fds((rlim_t)n * 2);
    int(*sv)[2] = calloc((size_t)n, sizeof *sv);
    reader_job *jobs = calloc((size_t)n, sizeof *jobs);
    CHECK(sv != NULL && jobs != NULL);
    gopy_chan *out = h_chan(sizeof(int64_t), (size_t)n);
    for (int i = 0; i < n; i++) {
        h_socketpair(sv[i]);
        jobs[i] = (reader_job){sv[i][0], i, out};
        h_go(reader, &jobs[i]);
    }
    h_await_waiting(GOPY_WAIT_IO, NULL, n);
    CHECK_EQ(netpoll_waiters(), n);
    /* Wake them in a random order, each with its own byte. */
    int *order = malloc((size_t)n * sizeof *order);
    CHECK(order != NULL);
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int k = (int)h_randn((uint64_t)i + 1), t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
    for (int i = 0; i < n; i++)
        put_byte(sv[order[i]][1], (char)(order[i] % 251));
    unsigned char *seen = calloc((size_t)n, 1);
    CHECK(seen != NULL);
    for (int i = 0; i < n; i++) {
        int64_t v = h_recv(out);
        int64_t id = v / 256;
        CHECK_GE(id, 0);
        CHECK_LT(id, n);
        CHECK_EQ(v % 256, id % 251);
        CHECK_EQ(seen[id], 0);
        seen[id] = 1;
    }
    CHECK_EQ(gopy_chan_len(out), 0);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(gopy_netpoll_close(sv[i][0]), 0);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    free(seen);
    free(order);
    free(jobs);
    free(sv);
    gopy_chan_release(out);
}

/* ---- deadlines ------------------------------------------------------------ */

TEST(deadline_times_out)
{
    int sv[2];
    h_socketpair(sv);
    gopy_chan *out = h_chan(sizeof(int64_t), 4);
    const int64_t d = 50 * H_MS;
    int64_t t0 = h_now();
    wait_job j = {sv[0], GOPY_POLL_READ, t0 + d, out};
    h_go(waiter, &j);
    CHECK_EQ(h_recv(out), GOPY_ETIMEDOUT);
    CHECK_GE(h_now() - t0, d); /* never early */
    /* From a plain thread too. */
    t0 = h_now();
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_READ, t0 + d), GOPY_ETIMEDOUT);
    CHECK_GE(h_now() - t0, d);
    CHECK_EQ(netpoll_waiters(), 0);
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, 0);
    gopy_chan_release(out);
    close(sv[0]);
    close(sv[1]);
}

TEST(deadline_ready_before)
{
    int sv[2];
    h_socketpair(sv);
    gopy_chan *out = h_chan(sizeof(int64_t), 1);
    wait_job j = {sv[0], GOPY_POLL_READ, h_now() + 60 * H_SEC, out};
    h_go(waiter, &j);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, 1); /* the deadline */
    put_byte(sv[1], 'r');
    CHECK_EQ(h_recv(out), GOPY_OK);
    gopy_rt_get_stats(&st);
    CHECK_EQ(st.timers, 0); /* deleted with the wait */
    gopy_chan_release(out);
    close(sv[0]);
    close(sv[1]);
}

typedef struct {
    int fd;
    gopy_chan *done;
} fd_job;

static void past_deadline_goroutine(void *arg)
{
    fd_job *j = arg;
    /* Not ready: at once, without parking.  Ready: ready. */
    CHECK_EQ(gopy_netpoll_wait(j->fd, GOPY_POLL_READ, 0), GOPY_ETIMEDOUT);
    CHECK_EQ(gopy_netpoll_wait(j->fd, GOPY_POLL_READ, h_now() - 1), GOPY_ETIMEDOUT);
    CHECK_EQ(gopy_netpoll_wait(j->fd, GOPY_POLL_WRITE, 0), GOPY_OK);
    h_send(j->done, 1);
}

TEST(deadline_already_past)
{
    int sv[2];
    h_socketpair(sv);
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_READ, 0), GOPY_ETIMEDOUT);
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_READ, h_now()), GOPY_ETIMEDOUT);
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_WRITE, 0), GOPY_OK);
    put_byte(sv[1], 'p');
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_READ, 0), GOPY_OK);
    CHECK_EQ(get_byte(sv[0]), 'p');
    fd_job j = {sv[0], h_chan(sizeof(int64_t), 1)};
    h_go(past_deadline_goroutine, &j);
    CHECK_EQ(h_recv(j.done), 1);
    CHECK_EQ(h_count_waiting(GOPY_WAIT_IO, NULL), 0); /* nobody parked */
    CHECK_EQ(netpoll_waiters(), 0);
    gopy_chan_release(j.done);
    close(sv[0]);
    close(sv[1]);
}

/* ---- gopy_netpoll_close wakes every waiter -------------------------------- */

TEST(close_wakes_waiters)
{
    int sv[2];
    h_socketpair(sv);
    fill(sv[0]); /* so that writers wait too */
    enum { R = 5, W = 4 };
    gopy_chan *out = h_chan(sizeof(int64_t), R + W + 1);
    wait_job jobs[R + W];
    for (int i = 0; i < R + W; i++) {
        jobs[i] = (wait_job){sv[0], i < R ? GOPY_POLL_READ : GOPY_POLL_WRITE,
                             i % 2 ? h_now() + 60 * H_SEC : -1, out};
        h_go(waiter, &jobs[i]);
    }
    h_await_waiting(GOPY_WAIT_IO, NULL, R + W);
    CHECK_EQ(gopy_chan_len(out), 0);
    CHECK_EQ(gopy_netpoll_close(sv[0]), 0);
    for (int i = 0; i < R + W; i++)
        CHECK_EQ(h_recv(out), GOPY_ECLOSED);
    CHECK_EQ(netpoll_waiters(), 0);
    /* The number is usable again: a new wait registers afresh. */
    drain(sv[1]);
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_WRITE, h_now() + 10 * H_SEC), GOPY_OK);
    wait_job again = {sv[0], GOPY_POLL_READ, -1, out};
    h_go(waiter, &again);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    put_byte(sv[1], 'a');
    CHECK_EQ(h_recv(out), GOPY_OK);
    CHECK_EQ(gopy_netpoll_close(-1), -1);
    CHECK_EQ(errno, EBADF);
    gopy_chan_release(out);
    close(sv[0]);
    close(sv[1]);
}

static void *thread_wait(void *arg)
{
    wait_job *j = arg;
    int r = gopy_netpoll_wait(j->fd, j->mode, j->deadline);
    h_send(j->out, r < 0 ? -errno : r);
    return NULL;
}

TEST(close_wakes_plain_thread)
{
    int sv[2];
    h_socketpair(sv);
    gopy_chan *out = h_chan(sizeof(int64_t), 1);
    wait_job j = {sv[0], GOPY_POLL_READ, -1, out};
    pthread_t t = h_thread(thread_wait, &j);
    int64_t deadline = h_now() + 60 * H_SEC;
    while (netpoll_waiters() < 1) {
        CHECK_LT(h_now(), deadline);
        h_usleep(1000);
    }
    CHECK_EQ(gopy_chan_len(out), 0);
    CHECK_EQ(gopy_netpoll_close(sv[0]), 0);
    CHECK_EQ(h_recv(out), GOPY_ECLOSED);
    h_join(t);
    gopy_chan_release(out);
    close(sv[0]);
    close(sv[1]);
}

/* ---- readers and writers on one descriptor -------------------------------- */

TEST(readers_and_writers)
{
    int sv[2];
    h_socketpair(sv);
    fill(sv[0]);
    enum { R = 6, W = 5 };
    gopy_chan *rout = h_chan(sizeof(int64_t), R), *wout = h_chan(sizeof(int64_t), W);
    wait_job jobs[R + W];
    for (int i = 0; i < R + W; i++) {
        jobs[i] = (wait_job){sv[0], i < R ? GOPY_POLL_READ : GOPY_POLL_WRITE, -1,
                             i < R ? rout : wout};
        h_go(waiter, &jobs[i]);
    }
    h_await_waiting(GOPY_WAIT_IO, NULL, R + W);
    /* Readable: every reader wakes, no writer. */
    put_byte(sv[1], 'z');
    for (int i = 0; i < R; i++)
        CHECK_EQ(h_recv(rout), GOPY_OK);
    h_await_waiting(GOPY_WAIT_IO, NULL, W);
    CHECK_EQ(h_count_waiting(GOPY_WAIT_IO, NULL), W);
    CHECK_EQ(gopy_chan_len(wout), 0);
    CHECK_EQ(netpoll_waiters(), W);
    /* Writable (the peer drains): every writer wakes. */
    drain(sv[1]);
    for (int i = 0; i < W; i++)
        CHECK_EQ(h_recv(wout), GOPY_OK);
    CHECK_EQ(netpoll_waiters(), 0);
    gopy_chan_release(rout);
    gopy_chan_release(wout);
    close(sv[0]);
    close(sv[1]);
}

/* ---- closed behind our back, the number reused ---------------------------- */

TEST(closed_behind_our_back_and_reused)
{
    int a[2], b[2];
    h_socketpair(a);
    gopy_chan *out = h_chan(sizeof(int64_t), 2);
    /* Registered once... */
    wait_job j = {a[0], GOPY_POLL_READ, -1, out};
    h_go(waiter, &j);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    put_byte(a[1], '1');
    CHECK_EQ(h_recv(out), GOPY_OK);
    /* ...then closed without gopy_netpoll_close (epoll forgets it), and
     * the number given to a new socket. */
    int num = a[0];
    close(a[0]);
    close(a[1]);
    CHECK_EQ(gopy_netpoll_wait(num, GOPY_POLL_READ, -1), -1);
    CHECK_EQ(errno, EBADF);
    h_socketpair(b);
    if (b[0] != num) {
        CHECK_EQ(dup3(b[0], num, O_CLOEXEC), num);
        close(b[0]);
        b[0] = num;
    }
    h_go(waiter, &j);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    put_byte(b[1], '2');
    CHECK_EQ(h_recv(out), GOPY_OK);
    CHECK_EQ(get_byte(num), '2');

    /* The same with the old file kept alive by a duplicate: its epoll
     * registration outlives the number, the new file still gets its
     * own. */
    int c[2], d[2];
    h_socketpair(c);
    j.fd = c[0];
    h_go(waiter, &j);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    put_byte(c[1], '3');
    CHECK_EQ(h_recv(out), GOPY_OK);
    int keep = dup(c[0]);
    CHECK_GE(keep, 0);
    int num2 = c[0];
    close(c[0]);
    h_socketpair(d);
    if (d[0] != num2) {
        CHECK_EQ(dup3(d[0], num2, O_CLOEXEC), num2);
        close(d[0]);
    }
    h_go(waiter, &j);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    put_byte(d[1], '4');
    CHECK_EQ(h_recv(out), GOPY_OK);
    CHECK_EQ(get_byte(num2), '4');
    close(keep);
    close(c[1]);
    close(num2);
    close(d[1]);
    close(b[0]);
    close(b[1]);
    gopy_chan_release(out);
}

/* ---- waiting from a plain thread ------------------------------------------- */

static void late_writer(void *arg)
{
    int fd = *(int *)arg;
    gopy_sleep(20 * H_MS);
    put_byte(fd, 't');
}

TEST(plain_thread_waits)
{
    /* The runtime may have no M yet: the wait must get one polling. */
    int sv[2];
    h_socketpair(sv);
    int64_t t0 = h_now();
    h_go(late_writer, &sv[1]);
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_READ, t0 + 60 * H_SEC), GOPY_OK);
    CHECK_EQ(get_byte(sv[0]), 't');
    /* A pipe, several threads on its read end. */
    int p[2];
    CHECK_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    enum { T = 4 };
    gopy_chan *out = h_chan(sizeof(int64_t), T);
    wait_job j = {p[0], GOPY_POLL_READ, -1, out};
    pthread_t th[T];
    for (int i = 0; i < T; i++)
        th[i] = h_thread(thread_wait, &j);
    int64_t deadline = h_now() + 60 * H_SEC;
    while (netpoll_waiters() < T) {
        CHECK_LT(h_now(), deadline);
        h_usleep(1000);
    }
    put_byte(p[1], 'q');
    for (int i = 0; i < T; i++)
        CHECK_EQ(h_recv(out), GOPY_OK);
    for (int i = 0; i < T; i++)
        h_join(th[i]);
    gopy_chan_release(out);
    close(p[0]);
    close(p[1]);
    close(sv[0]);
    close(sv[1]);
}

/* ---- parked waiters hold no M ----------------------------------------------- */

static void pinger(void *arg)
{
    gopy_chan **c = arg;
    for (int64_t i = 0; i < 1000; i++) {
        h_send(c[0], i);
        CHECK_EQ(h_recv(c[1]), i + 1);
    }
    h_send(c[2], 1);
}

static void ponger(void *arg)
{
    gopy_chan **c = arg;
    for (int i = 0; i < 1000; i++)
        h_send(c[1], h_recv(c[0]) + 1);
}

static void parked_hold_no_m(int procs)
{
    gopy_gomaxprocs(procs);
    const int n = H_LIVE(200);
    want_fds((rlim_t)n * 2);
    int(*sv)[2] = calloc((size_t)n, sizeof *sv);
    wait_job *jobs = calloc((size_t)n, sizeof *jobs);
    CHECK(sv != NULL && jobs != NULL);
    gopy_chan *out = h_chan(sizeof(int64_t), (size_t)n);
    for (int i = 0; i < n; i++) {
        h_socketpair(sv[i]);
        jobs[i] = (wait_job){sv[i][0], GOPY_POLL_READ, -1, out};
        h_go(waiter, &jobs[i]);
    }
    h_await_waiting(GOPY_WAIT_IO, NULL, n);
    /* Other goroutines still run: 1,000 round trips between two. */
    gopy_chan *c[3] = {h_chan(sizeof(int64_t), 0), h_chan(sizeof(int64_t), 0),
                       h_chan(sizeof(int64_t), 1)};
    h_go(pinger, c);
    h_go(ponger, c);
    CHECK_EQ(h_recv(c[2]), 1);
    CHECK_EQ(netpoll_waiters(), n);
    CHECK_EQ(gopy_chan_len(out), 0);
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    CHECK_LT(st.ms, n / 2); /* not one per waiter */
    for (int i = 0; i < n; i++)
        put_byte(sv[i][1], 'w');
    for (int i = 0; i < n; i++)
        CHECK_EQ(h_recv(out), GOPY_OK);
    for (int i = 0; i < n; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    for (int i = 0; i < 3; i++)
        gopy_chan_release(c[i]);
    gopy_chan_release(out);
    free(jobs);
    free(sv);
}

TEST(parked_hold_no_m_procs1)
{
    parked_hold_no_m(1);
}

TEST(parked_hold_no_m_procs4)
{
    parked_hold_no_m(4);
}

/* ---- sysmon polls while every P is busy -------------------------------------- */

static _Atomic int spin_stop, spinning;

static void spin(void *arg)
{
    (void)arg;
    atomic_store(&spinning, 1);
    int64_t bound = h_now() + 60 * H_SEC;
    while (!atomic_load(&spin_stop))
        CHECK_LT(h_now(), bound);
}

static void *delayed_write(void *arg)
{
    h_usleep(30000);
    put_byte(*(int *)arg, 's');
    return NULL;
}

TEST(sysmon_polls_when_busy)
{
    /* The only P runs a goroutine that never yields, so no M comes to
     * findrunnable, and no idle M has a P to poll with: only sysmon can
     * see the descriptor become ready for the waiting thread. */
    gopy_gomaxprocs(1);
    h_go(spin, NULL);
    h_await_flag(&spinning);
    int sv[2];
    h_socketpair(sv);
    pthread_t t = h_thread(delayed_write, &sv[1]);
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_READ, h_now() + 60 * H_SEC), GOPY_OK);
    CHECK_EQ(atomic_load(&spin_stop), 0); /* the spinner never let go */
    atomic_store(&spin_stop, 1);
    h_join(t);
    CHECK_EQ(get_byte(sv[0]), 's');
    close(sv[0]);
    close(sv[1]);
}

/* ---- fork: the child gets a poller of its own --------------------------------- */

TEST(fork_child_has_own_poller)
{
    int sv[2];
    h_socketpair(sv);
    gopy_chan *out = h_chan(sizeof(int64_t), 1);
    /* A goroutine parked here, an M asleep in the parent's epoll_wait. */
    wait_job j = {sv[0], GOPY_POLL_READ, -1, out};
    h_go(waiter, &j);
    h_await_waiting(GOPY_WAIT_IO, NULL, 1);
    fflush(NULL);
    pid_t pid = fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
        gopy_rt_after_fork_child();
#if !H_FORK_CHILD_MAY_RUN
        _exit(0);
#endif
        if (netpoll_waiters() != 0)
            _exit(10);
        int p[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p) != 0)
            _exit(11);
        gopy_chan *cout = gopy_chan_make(sizeof(int64_t), 1);
        wait_job cj = {p[0], GOPY_POLL_READ, h_now() + 30 * H_SEC, cout};
        if (gopy_go(waiter, &cj) != 0)
            _exit(12);
        while (h_count_waiting(GOPY_WAIT_IO, NULL) < 1)
            h_usleep(1000);
        if (write(p[1], "c", 1) != 1)
            _exit(13);
        int64_t r = -100;
        gopy_chan_recv(cout, &r);
        /* The inherited descriptor is the child's to wait on as well. */
        int r2 = gopy_netpoll_wait(sv[0], GOPY_POLL_READ, h_now() + 20 * H_MS);
        _exit(r == GOPY_OK && r2 == GOPY_ETIMEDOUT ? 0 : 20 + (int)r);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
    /* The parent's waiter is still there and still works. */
    CHECK_EQ(netpoll_waiters(), 1);
    put_byte(sv[1], 'f');
    CHECK_EQ(h_recv(out), GOPY_OK);
    gopy_chan_release(out);
    close(sv[0]);
    close(sv[1]);
}

/* ---- errors ----------------------------------------------------------------- */

TEST(errors)
{
    int sv[2];
    h_socketpair(sv);
    CHECK_EQ(gopy_netpoll_wait(sv[0], 0, -1), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_READ | GOPY_POLL_WRITE, -1), -1);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(gopy_netpoll_wait(-1, GOPY_POLL_READ, -1), -1);
    CHECK_EQ(errno, EBADF);
    /* A number free after the poller's own descriptors were made. */
    CHECK_EQ(gopy_netpoll_wait(sv[0], GOPY_POLL_WRITE, -1), GOPY_OK);
    int closed = dup(sv[0]);
    close(closed);
    CHECK_EQ(gopy_netpoll_wait(closed, GOPY_POLL_READ, -1), -1);
    CHECK_EQ(errno, EBADF);
    CHECK_EQ(gopy_netpoll_wait(closed, GOPY_POLL_READ, 0), -1);
    CHECK_EQ(errno, EBADF);
    /* A regular file: always "ready" to poll(2), refused by epoll. */
    char path[] = "/tmp/gopy_netpoll_XXXXXX";
    int f = mkstemp(path);
    CHECK_GE(f, 0);
    unlink(path);
    CHECK_EQ(gopy_netpoll_wait(f, GOPY_POLL_READ, -1), -1);
    CHECK_EQ(errno, EPERM);
    CHECK_EQ(gopy_netpoll_wait(f, GOPY_POLL_WRITE, 0), -1);
    CHECK_EQ(errno, EPERM);
    CHECK_EQ(gopy_rt_netpoll_wait(f, GOPY_POLL_READ, -1, false), -1);
    CHECK_EQ(errno, EPERM);
    /* The non-blocking look. */
    CHECK_EQ(gopy_rt_netpoll_wait(sv[0], GOPY_POLL_READ, -1, false), GOPY_EAGAIN);
    CHECK_EQ(gopy_rt_netpoll_wait(sv[0], GOPY_POLL_WRITE, -1, false), GOPY_OK);
    CHECK_EQ(netpoll_waiters(), 0);
    close(f);
    close(sv[0]);
    close(sv[1]);
}

/* ---- the cost of a wait: ping-pong over a socketpair -------------------------- */

enum { PP_ROUNDS = 20000 };

typedef struct {
    int fd;
    bool first; /* writes first */
    int rounds;
    gopy_chan *done;
} pp_side_job;

static void pp_read(int fd)
{
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n == 1)
            return;
        CHECK(n < 0 && errno == EAGAIN);
        CHECK_EQ(gopy_netpoll_wait(fd, GOPY_POLL_READ, -1), GOPY_OK);
    }
}

static void pp_side(void *arg)
{
    pp_side_job *j = arg;
    for (int i = 0; i < j->rounds; i++) {
        if (j->first) {
            put_byte(j->fd, 'p');
            pp_read(j->fd);
        } else {
            pp_read(j->fd);
            put_byte(j->fd, 'p');
        }
    }
    h_send(j->done, 1);
}

static void pingpong(int procs)
{
    gopy_gomaxprocs(procs);
    int sv[2];
    h_socketpair(sv);
    const int rounds = H_SCALED(PP_ROUNDS);
    gopy_chan *done = h_chan(sizeof(int64_t), 2);
    pp_side_job x = {sv[0], true, rounds, done}, y = {sv[1], false, rounds, done};
    int64_t t0 = h_now();
    h_go(pp_side, &x);
    h_go(pp_side, &y);
    CHECK_EQ(h_recv(done), 1);
    CHECK_EQ(h_recv(done), 1);
    int64_t dt = h_now() - t0;
    fprintf(stderr, "netpoll ping-pong, GOMAXPROCS=%d: %.2f us per round trip (%d rounds)\n",
            procs, (double)dt / 1e3 / rounds, rounds);
    CHECK_EQ(netpoll_waiters(), 0);
    gopy_chan_release(done);
    close(sv[0]);
    close(sv[1]);
}

TEST_NOSTRESS(pingpong_procs1)
{
    pingpong(1);
}

TEST_NOSTRESS(pingpong_procs2)
{
    pingpong(2);
}
