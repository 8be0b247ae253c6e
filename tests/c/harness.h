/*
 * harness.h -- a tiny test harness for the runtime's C tests (no external
 * framework).  Each test program is one translation unit that includes
 * this header first and defines its cases with TEST(name) { ... }.
 *
 *   prog              run every case, each in a forked child (the parent
 *                     never starts the runtime); exit 1 if any failed
 *   prog NAME...      run the named cases in this process, in order
 *   prog --list       print the case names
 *   prog --list-stress   the cases scripts/stress.sh loops (TEST, not
 *                     TEST_NOSTRESS: those are long or mostly about time)
 *
 * Environment:
 *   H_TIMEOUT=s   per-case hang bound (default 120 s): a case still
 *                 running then prints a goroutine summary and exits 3
 *   H_SEED=n      seed of the tests' own random choices (printed)
 *   GOMAXPROCS=n  read by the runtime at start (cases that need a given
 *                 number of Ps set it themselves)
 *
 * A failed CHECK prints file:line and the values and exits 1 at once,
 * from whatever thread or goroutine it runs on.
 */
#ifndef GOPY_TEST_HARNESS_H
#define GOPY_TEST_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <gopy.h>
#include "gopy_rt.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- sizes: the full sizes in plain builds, smaller under sanitizers.
 * TSan is 5-15x slower and makes every goroutine a fiber, which counts
 * against its limit of 8128 threads: at most H_MAX_LIVE goroutines may
 * exist at once there. ------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define H_SANITIZER 1
#define H_SCALE_DIV 20
#define H_MAX_LIVE 5000
#elif defined(__SANITIZE_ADDRESS__)
#define H_SANITIZER 1
#define H_SCALE_DIV 4
#else
#define H_SANITIZER 0
#define H_SCALE_DIV 1
#endif
/* May the child of a fork in a threaded process start threads and
 * allocate?  Not under the sanitizers: their allocators and thread
 * registries hold no lock across fork, so the child can block forever on
 * one that a parent thread held (seen under ASan: the child's first new M
 * stuck in malloc; its sysmon thread stuck on the thread registry, when
 * reading the stats started the runtime again).  A fork test's child then
 * only resets the runtime and exits: anything that starts the runtime,
 * gopy_rt_get_stats included, waits for the plain build. */
#define H_FORK_CHILD_MAY_RUN (!H_SANITIZER)
/* n in plain builds, n / H_SCALE_DIV (at least 1) under sanitizers. */
#define H_SCALED(n) ((n) / H_SCALE_DIV > 0 ? (n) / H_SCALE_DIV : 1)
/* n goroutines alive at once: n, but at most H_MAX_LIVE under TSan. */
#ifdef H_MAX_LIVE
#define H_LIVE(n) ((n) < H_MAX_LIVE ? (n) : H_MAX_LIVE)
#else
#define H_LIVE(n) (n)
#endif

/* ---- failing ------------------------------------------------------------ */

static const char *h_current_case = "?";

__attribute__((noreturn, format(printf, 3, 4))) static void
h_fail(const char *file, int line, const char *fmt, ...)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s:%d: FAIL [%s]: ", file, line, h_current_case);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof buf)
        n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf - 1)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    /* One write, so that the line is not torn by other threads. */
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
    _exit(1);
}

#define FAIL(...) h_fail(__FILE__, __LINE__, __VA_ARGS__)

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond))                                                               \
            h_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                        \
    } while (0)

/* The operands are stringified here, before expansion (atomic_load is a
 * macro whose expansion would make an unreadable message). */
#define H_CMP(a, op, b, sa, sb)                                                    \
    do {                                                                           \
        long long h_a_ = (long long)(a), h_b_ = (long long)(b);                    \
        if (!(h_a_ op h_b_))                                                       \
            h_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", sa, #op, sb, h_a_, \
                   h_b_);                                                          \
    } while (0)

#define CHECK_EQ(a, b) H_CMP(a, ==, b, #a, #b)
#define CHECK_NE(a, b) H_CMP(a, !=, b, #a, #b)
#define CHECK_LT(a, b) H_CMP(a, <, b, #a, #b)
#define CHECK_LE(a, b) H_CMP(a, <=, b, #a, #b)
#define CHECK_GT(a, b) H_CMP(a, >, b, #a, #b)
#define CHECK_GE(a, b) H_CMP(a, >=, b, #a, #b)

/* ---- registry ----------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*fn)(void);
    bool stress;
} h_case;

enum { H_MAX_CASES = 256 };
static h_case h_cases[H_MAX_CASES];
static int h_ncases;

static void h_register(const char *name, void (*fn)(void), bool stress)
{
    if (h_ncases == H_MAX_CASES)
        abort();
    h_cases[h_ncases++] = (h_case){name, fn, stress};
}

#define H_DEFINE_TEST(name, stress)                                                \
    static void test_##name(void);                                                 \
    __attribute__((constructor)) static void h_reg_##name(void)                    \
    {                                                                              \
        h_register(#name, test_##name, stress);                                    \
    }                                                                              \
    static void test_##name(void)

/* A case looped by scripts/stress.sh. */
#define TEST(name) H_DEFINE_TEST(name, true)
/* A case left out of the stress loop (long, or about wall-clock time). */
#define TEST_NOSTRESS(name) H_DEFINE_TEST(name, false)

/* ---- time, randomness, threads ----------------------------------------- */

static inline int64_t h_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t h_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define H_MS ((int64_t)1000000)
#define H_SEC ((int64_t)1000000000)

/* Plain OS sleep of the calling thread (not the runtime's). */
static inline void h_usleep(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Run body in a child process, whose runtime starts afresh (call it
 * before anything starts the parent's), until something ends the child;
 * return what the child wrote on stderr (a static buffer) and its wait
 * status in *status.  For fatal errors. */
static inline const char *h_child_stderr(void (*body)(void), int *status)
{
    static char out[8192];
    int fds[2];
    if (pipe(fds) != 0)
        FAIL("pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        body();
        for (;;)
            h_usleep(100000); /* until the fatal error ends the process */
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len < sizeof out - 1 &&
           ((r = read(fds[0], out + len, sizeof out - 1 - len)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            len += (size_t)r;
    out[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, status, 0) < 0 && errno == EINTR) {
    }
    return out;
}

/* Recurse until the stack runs out: into a guard page, whose fault ends
 * the process. */
static volatile int h_deeper = 1;
static inline int h_overflow_stack(int n)
{
    volatile char pad[256];
    pad[0] = (char)n;
    if (!h_deeper)
        return pad[0];
    return h_overflow_stack(n + 1) + pad[0];
}

/* A child that a guard page's fault ended: killed by the signal (a
 * sanitizer's handler, which runs after ours, may exit instead): never a
 * clean exit. */
static inline void h_check_fault_death(int status)
{
    if (H_SANITIZER)
        CHECK(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0));
    else
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
}

static uint64_t h_seed;

/* splitmix64 over a shared atomic state: callable from any goroutine. */
static _Atomic uint64_t h_rand_state;
static inline uint64_t h_rand(void)
{
    uint64_t z = atomic_fetch_add_explicit(&h_rand_state, 0x9E3779B97F4A7C15ull,
                                           memory_order_relaxed) +
                 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [0, n). */
static inline uint64_t h_randn(uint64_t n)
{
    return h_rand() % n;
}

static inline void h_go(void (*fn)(void *), void *arg)
{
    if (gopy_go(fn, arg) != 0)
        FAIL("gopy_go failed: %s", strerror(errno));
}

static inline pthread_t h_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int err = pthread_create(&t, NULL, fn, arg);
    if (err != 0)
        FAIL("pthread_create: %s", strerror(err));
    return t;
}

static inline void h_join(pthread_t t)
{
    int err = pthread_join(t, NULL);
    if (err != 0)
        FAIL("pthread_join: %s", strerror(err));
}

static inline gopy_chan *h_chan(size_t elem, size_t cap)
{
    gopy_chan *c = gopy_chan_make(elem, cap);
    if (c == NULL)
        FAIL("gopy_chan_make(%zu, %zu) failed", elem, cap);
    return c;
}

/* Typed shorthands for channels of int64_t. */
static inline void h_send(gopy_chan *c, int64_t v)
{
    int r = gopy_chan_send(c, &v);
    if (r != GOPY_OK)
        FAIL("send of %" PRId64 " returned %d", v, r);
}

static inline int64_t h_recv(gopy_chan *c)
{
    int64_t v = -1;
    if (!gopy_chan_recv(c, &v))
        FAIL("receive from a closed channel");
    return v;
}

/* ---- goroutine summary (for hangs) ------------------------------------- */

static void h_dump_cb(const gopy_goroutine_info *info, void *arg)
{
    int64_t *counts = arg;
    if (strcmp(info->state, "waiting") == 0 && info->wait_reason >= 0 &&
        info->wait_reason < GOPY_WAIT_NREASONS)
        counts[info->wait_reason]++;
    else if (strcmp(info->state, "runnable") == 0)
        counts[GOPY_WAIT_NREASONS]++;
    else
        counts[GOPY_WAIT_NREASONS + 1]++;
}

/* Print how many goroutines are in each state, and the scheduler's
 * counters, to stderr in one write. */
static void h_dump_goroutines(const char *why)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%s [%s]; goroutines:\n", why, h_current_case);
    int64_t counts[GOPY_WAIT_NREASONS + 2] = {0};
    gopy_rt_foreach_goroutine(h_dump_cb, counts);
    for (int i = 0; i < GOPY_WAIT_NREASONS + 2 && n > 0 && (size_t)n < sizeof buf; i++) {
        if (counts[i] == 0)
            continue;
        const char *what = i < GOPY_WAIT_NREASONS ? gopy_rt_wait_reason_string(i)
                           : i == GOPY_WAIT_NREASONS ? "runnable" : "running";
        n += snprintf(buf + n, sizeof buf - (size_t)n, "  %8" PRId64 "  %s\n", counts[i],
                      what);
    }
    gopy_rt_stats st;
    gopy_rt_get_stats(&st);
    if (n > 0 && (size_t)n < sizeof buf)
        n += snprintf(buf + n, sizeof buf - (size_t)n,
                      "  ms=%" PRId64 " ms_idle=%" PRId64 " ps=%" PRId64 " gomaxprocs=%" PRId64
                      " timers=%" PRId64 " goroutines=%" PRId64 "\n",
                      st.ms, st.ms_idle, st.ps, st.gomaxprocs, st.timers, st.goroutines);
    if (n > 0) {
        if ((size_t)n > sizeof buf)
            n = sizeof buf;
        ssize_t w = write(2, buf, (size_t)n);
        (void)w;
    }
}

static volatile sig_atomic_t h_alarmed;

static void h_on_alarm(int sig)
{
    (void)sig;
    if (h_alarmed)
        _exit(3); /* the dump itself hung (a runtime lock held here) */
    h_alarmed = 1;
    alarm(5);
    /* Not async-signal-safe, but the process is hung and about to die:
     * a rough picture of the goroutines is worth the risk. */
    h_dump_goroutines("TIMEOUT: still running");
    _exit(3);
}

/* ---- introspection: wait until goroutines are really parked ---------- */

typedef struct {
    int reason;
    const void *obj;
    int64_t n;
} h_wait_count;

static void h_count_cb(const gopy_goroutine_info *info, void *arg)
{
    h_wait_count *wc = arg;
    if (strcmp(info->state, "waiting") == 0 && info->wait_reason == wc->reason &&
        (wc->obj == NULL || info->wait_obj == wc->obj))
        wc->n++;
}

/* Goroutines parked now with this wait reason (and object, unless NULL). */
static inline int64_t h_count_waiting(int reason, const void *obj)
{
    h_wait_count wc = {reason, obj, 0};
    gopy_rt_foreach_goroutine(h_count_cb, &wc);
    return wc.n;
}

/* Wait until at least n goroutines are parked with this reason (and
 * object).  Polls: the condition, not the time, is what the caller waits
 * for; the bound only catches hangs.  Foreign threads blocked in the
 * runtime are not goroutines and are not seen. */
#define h_await_waiting(reason, obj, n) h_await_waiting_at(__FILE__, __LINE__, reason, obj, n)
static inline void h_await_waiting_at(const char *file, int line, int reason,
                                      const void *obj, int64_t n)
{
    int64_t deadline = h_now() + 60 * H_SEC;
    int64_t got;
    while ((got = h_count_waiting(reason, obj)) < n) {
        if (h_now() > deadline) {
            h_dump_goroutines("await_waiting timed out");
            h_fail(file, line, "only %" PRId64 " of %" PRId64 " goroutines parked (%s)",
                   got, n, gopy_rt_wait_reason_string(reason));
        }
        if (gopy_rt_goid() != 0)
            gopy_sleep(H_MS);
        else
            h_usleep(1000);
    }
}

/* Wait until *n reaches want, for at most 30 s (a hang: the caller's check
 * after it then fails and says how far it got); for goroutines and threads. */
static inline void h_await_count(_Atomic int *n, int want)
{
    int64_t deadline = h_now() + 30 * H_SEC;
    while (atomic_load(n) < want && h_now() < deadline) {
        if (gopy_rt_goid() != 0)
            gopy_sleep(H_MS);
        else
            h_usleep(1000);
    }
}

/* Spin (yielding) until *flag becomes nonzero; for goroutines and threads. */
#define h_await_flag(flag) h_await_flag_at(__FILE__, __LINE__, flag)
static inline void h_await_flag_at(const char *file, int line, _Atomic int *flag)
{
    int64_t deadline = h_now() + 60 * H_SEC;
    while (atomic_load(flag) == 0) {
        if (h_now() > deadline) {
            h_dump_goroutines("await_flag timed out");
            h_fail(file, line, "flag never set");
        }
        if (gopy_rt_goid() != 0)
            gopy_yield();
        else
            h_usleep(200);
    }
}

static int h_timeout_s(void)
{
    const char *s = getenv("H_TIMEOUT");
    int t = s != NULL ? atoi(s) : 0;
    return t > 0 ? t : 120;
}

/* ---- main --------------------------------------------------------------- */

static void h_run_case(h_case *c)
{
    h_current_case = c->name;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = h_on_alarm;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)h_timeout_s());
    int64_t t0 = h_now();
    c->fn();
    alarm(0);
    fprintf(stderr, "ok   %s (%.2fs)\n", c->name, (double)(h_now() - t0) / 1e9);
}

static h_case *h_find(const char *name)
{
    for (int i = 0; i < h_ncases; i++)
        if (strcmp(h_cases[i].name, name) == 0)
            return &h_cases[i];
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && (strcmp(argv[1], "--list") == 0 || strcmp(argv[1], "--list-stress") == 0)) {
        bool stress_only = strcmp(argv[1], "--list-stress") == 0;
        for (int i = 0; i < h_ncases; i++)
            if (!stress_only || h_cases[i].stress)
                printf("%s\n", h_cases[i].name);
        return 0;
    }
    const char *s = getenv("H_SEED");
    h_seed = s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : (uint64_t)h_wall() ^ (uint64_t)getpid();
    atomic_store(&h_rand_state, h_seed);

    if (argc >= 2) {
        for (int i = 1; i < argc; i++) {
            h_case *c = h_find(argv[i]);
            if (c == NULL) {
                fprintf(stderr, "%s: no case named %s\n", argv[0], argv[i]);
                return 2;
            }
            fprintf(stderr, "run  %s (H_SEED=%" PRIu64 " GOMAXPROCS=%s)\n", c->name, h_seed,
                    getenv("GOMAXPROCS") ? getenv("GOMAXPROCS") : "default");
            h_run_case(c);
        }
        /* exit() with goroutines still parked or running is part of the
         * contract (Go: returning from main ends them). */
        exit(0);
    }

    /* Every case in a child of its own: a fresh runtime each. */
    int failed = 0;
    for (int i = 0; i < h_ncases; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            atomic_store(&h_rand_state, h_seed + (uint64_t)i);
            h_seed += (uint64_t)i;
            fprintf(stderr, "run  %s (H_SEED=%" PRIu64 ")\n", h_cases[i].name, h_seed);
            h_run_case(&h_cases[i]);
            exit(0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed++;
            if (WIFSIGNALED(st))
                fprintf(stderr, "FAIL %s (signal %d)\n", h_cases[i].name, WTERMSIG(st));
            else
                fprintf(stderr, "FAIL %s (exit %d)\n", h_cases[i].name, WEXITSTATUS(st));
        }
    }
    fprintf(stderr, "%s: %d of %d cases failed\n", argv[0], failed, h_ncases);
    return failed != 0;
}

#endif
