/*
 * test_small_stack.c -- goroutines started with gopy_go_small: stacks of
 * RT_SMALL_STACK_BYTES, two to a page, with a canary in their lowest
 * bytes instead of a guard page (src/runtime/stack.h).
 */
#include "harness.h"

#include "stack.h"

#include <sys/resource.h>

static inline void h_go_small(void (*fn)(void *), void *arg)
{
    if (gopy_go_small(fn, arg) != 0)
        FAIL("gopy_go_small failed: %s", strerror(errno));
}

/* The low end of the calling goroutine's small stack: its canary's first
 * word holds rt_small_canary of its own address.  Reads the stack below
 * the frames in use, which ASan would take for a stale frame's. */
__attribute__((no_sanitize_address, noinline)) static char *my_stack_lo(void)
{
    uintptr_t here = (uintptr_t)__builtin_frame_address(0) & ~(uintptr_t)7;
    for (uintptr_t a = here - 8; a + RT_SMALL_STACK_BYTES > here; a -= 8) {
        rt_stack s = {.lo = (char *)a};
        if (*(const uintptr_t *)a == rt_small_canary(&s, 0))
            return (char *)a;
    }
    FAIL("no canary within %d bytes below the frame at %#" PRIxPTR, (int)RT_SMALL_STACK_BYTES,
         here);
}

enum { PAINT = 0x5a, CANARY_BYTES = RT_SMALL_CANARY_WORDS * 8 };

/* Paint the unused stack between the canary and well below the caller's
 * frame (its red zone and this call's frame stay clear). */
__attribute__((no_sanitize_address, noinline)) static void paint_below(char *lo)
{
    char *from = (char *)__builtin_frame_address(0) - 512;
    for (volatile char *p = lo + CANARY_BYTES; p < from; p++)
        *p = PAINT;
}

/* How many bytes from the top of the stack have been written since it
 * was painted: the deepest the goroutine went. */
__attribute__((no_sanitize_address, noinline)) static int high_water(const char *lo)
{
    const volatile char *p = lo + CANARY_BYTES;
    while (p < lo + RT_SMALL_STACK_BYTES && *p == PAINT)
        p++;
    return (int)(lo + RT_SMALL_STACK_BYTES - (const char *)p);
}

/* ---- the runtime's operations fit in a small stack, with room to spare */

typedef struct {
    gopy_chan *jobs, *results, *closed, *ready[4];
    gopy_mutex *mu;
    gopy_rwmutex *rw;
    gopy_waitgroup *wg;
    gopy_context *ctx;
    int pipe_rd;
    int64_t shared; /* under mu */
    _Atomic int offloaded;
} ops;

static void child_sends(void *arg)
{
    h_send(arg, 7);
}

static void offloaded(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

/* One small goroutine: each operation of the C API that can park, with
 * results the test knows; sends its result, then its high-water mark
 * negated. */
static void do_ops(void *arg)
{
    ops *o = arg;
    char *lo = my_stack_lo();
    paint_below(lo);
    int64_t job = h_recv(o->jobs);
    int64_t sum = job;

    int64_t v = -1;
    gopy_case cases[4];
    for (int i = 0; i < 4; i++)
        cases[i] = (gopy_case){.chan = o->ready[i], .dir = GOPY_RECV, .elem = &v};
    CHECK_EQ(gopy_select(cases, 4, true), 2); /* only ready[2] holds values */
    sum += v;

    gopy_mutex_lock(o->mu);
    o->shared++;
    gopy_yield();
    gopy_mutex_unlock(o->mu);
    gopy_rwmutex_rlock(o->rw);
    gopy_rwmutex_runlock(o->rw);
    gopy_sleep(H_MS);
    CHECK_EQ(gopy_netpoll_wait(o->pipe_rd, GOPY_POLL_READ, h_now() + H_MS), GOPY_ETIMEDOUT);
    CHECK(!gopy_chan_recv(o->closed, &v));
    CHECK_EQ(v, 0);
    CHECK(!gopy_chan_recv(gopy_context_done(o->ctx), NULL)); /* closed by the cancel */

    /* The first offload starts a helper thread: on g0's stack, not this one. */
    CHECK_EQ(gopy_offload(offloaded, &o->offloaded), 0);

    gopy_chan *back = h_chan(sizeof(int64_t), 0);
    h_go_small(child_sends, back);
    sum += h_recv(back);
    gopy_chan_release(back);

    h_send(o->results, sum);
    gopy_waitgroup_done(o->wg);
    h_send(o->results, -high_water(lo));
}

TEST(small_goroutines_run_the_runtime_s_operations_within_their_stacks)
{
    enum { N = 64 };
    ops o = {.jobs = h_chan(sizeof(int64_t), 0), .results = h_chan(sizeof(int64_t), 0),
             .closed = h_chan(sizeof(int64_t), 0), .mu = gopy_mutex_make(),
             .rw = gopy_rwmutex_make(), .wg = gopy_waitgroup_make(),
             .ctx = gopy_context_with_cancel(gopy_context_background())};
    for (int i = 0; i < 4; i++)
        o.ready[i] = h_chan(sizeof(int64_t), N);
    for (int i = 0; i < N; i++)
        h_send(o.ready[2], 1000);
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    o.pipe_rd = fds[0];
    gopy_waitgroup_add(o.wg, N);
    for (int i = 0; i < N; i++)
        h_go_small(do_ops, &o);
    for (int i = 0; i < N; i++)
        h_send(o.jobs, i);
    /* Every goroutine now waits in the select or past it: wake those
     * parked on the closed channel and on the context, whenever they get
     * there. */
    CHECK_EQ(gopy_chan_close(o.closed), GOPY_OK);
    gopy_context_cancel(o.ctx);
    int64_t sums = 0;
    int deepest = 0;
    for (int i = 0; i < 2 * N; i++) {
        int64_t r = h_recv(o.results);
        if (r > 0)
            sums += r;
        else if (-r > deepest)
            deepest = (int)-r;
    }
    gopy_waitgroup_wait(o.wg);
    /* The jobs 0..N-1, 1000 from the select and 7 from a child each. */
    CHECK_EQ(sums, (int64_t)N * (N - 1) / 2 + N * 1007);
    CHECK_EQ(o.shared, N);
    CHECK_EQ(atomic_load(&o.offloaded), N);
    /* An eighth of the stack is left: 1,216 bytes were used at -O2, 1,480
     * with the runtime at -O0 (its debug build); a select that kept 16
     * sudogs, or a lazily bound libc call, went past 2,048. */
    printf("deepest small goroutine: %d of %d bytes\n", deepest, (int)RT_SMALL_STACK_BYTES);
    CHECK_GT(deepest, 0);
    CHECK_LE(deepest, RT_SMALL_STACK_BYTES * 7 / 8);
    CHECK_EQ(gopy_netpoll_close(fds[0]), 0);
    close(fds[0]);
    close(fds[1]);
    gopy_context_release(o.ctx);
    for (int i = 0; i < 4; i++)
        gopy_chan_release(o.ready[i]);
    gopy_chan_release(o.jobs);
    gopy_chan_release(o.results);
    gopy_chan_release(o.closed);
    gopy_mutex_free(o.mu);
    gopy_rwmutex_free(o.rw);
    gopy_waitgroup_free(o.wg);
}

/* ---- two stacks to a page: a parked small goroutine costs half a page */

typedef struct {
    gopy_chan *c;
    gopy_waitgroup *started, *done;
    char **los;
    _Atomic int next;
} park_args;

static void park_small(void *arg)
{
    park_args *a = arg;
    a->los[atomic_fetch_add(&a->next, 1)] = my_stack_lo();
    gopy_waitgroup_done(a->started);
    h_recv(a->c);
    gopy_waitgroup_done(a->done);
}

static int64_t rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    CHECK(f != NULL);
    CHECK_EQ(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return (int64_t)resident * sysconf(_SC_PAGESIZE);
}

static int cmp_ptr(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t) * (char *const *)x, b = (uintptr_t) * (char *const *)y;
    return a < b ? -1 : a > b;
}

TEST(parked_small_goroutines_share_pages)
{
    const int n = (int)H_LIVE(H_SCALED(20000));
    const long page = sysconf(_SC_PAGESIZE);
    park_args a = {.c = h_chan(sizeof(int64_t), 0), .started = gopy_waitgroup_make(),
                   .done = gopy_waitgroup_make(), .los = calloc((size_t)n, sizeof(char *))};
    CHECK(a.los != NULL);
    gopy_waitgroup_add(a.started, n);
    gopy_waitgroup_add(a.done, n);
    int64_t before = rss_bytes();
    for (int i = 0; i < n; i++)
        h_go_small(park_small, &a);
    gopy_waitgroup_wait(a.started);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, a.c, n);
    int64_t per = (rss_bytes() - before) / n;

    /* Distinct stacks, RT_SMALL_STACK_BYTES apart or more, packed: as
     * many pages as they fill, plus one where an arena begins or ends. */
    qsort(a.los, (size_t)n, sizeof(char *), cmp_ptr);
    int64_t pages = 1, arenas = 1;
    for (int i = 1; i < n; i++) {
        intptr_t gap = a.los[i] - a.los[i - 1];
        CHECK_GE(gap, RT_SMALL_STACK_BYTES);
        arenas += gap != RT_SMALL_STACK_BYTES;
        pages += (uintptr_t)a.los[i] / (uintptr_t)page != (uintptr_t)a.los[i - 1] / (uintptr_t)page;
    }
    int64_t per_page = RT_SMALL_STACK_BYTES < page ? page / RT_SMALL_STACK_BYTES : 1;
    CHECK_LE(pages, (n + per_page - 1) / per_page + arenas);
    printf("%d parked small goroutines: %" PRId64 " bytes each, %" PRId64 " pages, %" PRId64
           " arenas\n", n, per, pages, arenas);
    if (!H_SANITIZER) /* their shadow memory counts too */
        CHECK_LE(per, RT_SMALL_STACK_BYTES + 512);

    for (int i = 0; i < n; i++)
        h_send(a.c, i);
    gopy_waitgroup_wait(a.done);
    gopy_chan_release(a.c);
    gopy_waitgroup_free(a.started);
    gopy_waitgroup_free(a.done);
    free(a.los);
}

/* ---- an overflow is a fatal error, caught by the canary or, for the
 * lowest stack of an arena, by the guard page below it ------------------ */

/* What an overflow that reached the canary leaves; the goroutine then parks. */
__attribute__((no_sanitize_address)) static void break_canary(void *arg)
{
    (void)arg;
    char *lo = my_stack_lo();
    ((volatile uintptr_t *)(void *)lo)[RT_SMALL_CANARY_WORDS - 1] = 0;
    gopy_sleep(H_MS);
    fprintf(stderr, "parked with a broken canary, and came back\n");
}

static void start_break_canary(void)
{
    h_go_small(break_canary, NULL);
}

TEST_NOSTRESS(a_broken_canary_is_a_fatal_error_when_the_goroutine_parks)
{
    int st;
    const char *out = h_child_stderr(start_break_canary, &st);
    char want[128];
    snprintf(want, sizeof want, "overflowed its small stack (gopy_go_small: %d bytes",
             (int)RT_SMALL_STACK_BYTES);
    if (strstr(out, "gopy: fatal error: goroutine ") == NULL || strstr(out, want) == NULL ||
        strstr(out, "came back") != NULL)
        FAIL("the child's stderr:\n%s", out);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

static void overflow(void *arg)
{
    (void)arg;
    h_overflow_stack(0);
}

/* The child's first small goroutine has the lowest stack of the first
 * small arena. */
static void start_overflow(void)
{
    h_go_small(overflow, NULL);
}

TEST_NOSTRESS(the_lowest_small_stack_overflows_into_its_arena_s_guard_page)
{
    int st;
    const char *out = h_child_stderr(start_overflow, &st);
    if (strstr(out, "gopy: fatal error: stack overflow in goroutine ") == NULL ||
        strstr(out, "it ran on a small stack: start it with gopy_go") == NULL)
        FAIL("the child's stderr:\n%s", out);
    h_check_fault_death(st);
}
