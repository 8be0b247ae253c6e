/*
 * test_guard.c -- goroutine stacks as a kernel before Linux 6.13 makes
 * them: GOPY_GUARD=mprotect forces the mprotect fallback for guard pages
 * (src/runtime/stack.c), which guards only a quarter of vm.max_map_count
 * and then no more stacks.  Each case sets it before the runtime starts
 * (every case runs in a process of its own).
 */
#include "harness.h"

/* The runtime reads GOPY_GUARD when it starts: before any gopy call. */
static void force_mprotect(void)
{
    CHECK_EQ(setenv("GOPY_GUARD", "mprotect", 1), 0);
}

static long max_map_count(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    return max;
}

static const char *guard_mode(void)
{
    gopy_rt_stats s;
    gopy_rt_get_stats(&s);
    return s.stack_guard;
}

/* ---- 100,000 goroutines park and wake, guarded by mprotect while the
 * budget lasts and unguarded after it ------------------------------------ */

static void park_then_done(void *arg)
{
    void **a = arg;
    int64_t v = -1;
    CHECK(gopy_chan_recv(a[0], &v));
    CHECK_GE(v, 0);
    gopy_waitgroup_done(a[1]);
}

/* n goroutines park on c, all at once, then each is woken by a send of
 * its own; before the sends, the guard mode is checked. */
static void park_wake_round(gopy_chan *c, int64_t n)
{
    gopy_waitgroup *wg = gopy_waitgroup_make();
    void *args[2] = {c, wg};
    gopy_waitgroup_add(wg, (int)n);
    for (int64_t i = 0; i < n; i++)
        h_go(park_then_done, args);
    h_await_waiting(GOPY_WAIT_CHAN_RECV, c, n);
    /* Every stack beyond the budget goes without a guard, and says so. */
    const char *mode = guard_mode();
    if (n > max_map_count() / 4)
        CHECK(strcmp(mode, "mprotect+none") == 0);
    else
        CHECK(strcmp(mode, "mprotect") == 0);
    for (int64_t i = 0; i < n; i++)
        h_send(c, i);
    gopy_waitgroup_wait(wg);
    gopy_waitgroup_free(wg);
}

TEST_NOSTRESS(mprotect_park_wake_many)
{
    force_mprotect();
    int64_t n = H_LIVE(H_SCALED(100000));
    gopy_chan *c = h_chan(sizeof(int64_t), 0);
    int64_t base = gopy_rt_num_goroutine();
    park_wake_round(c, n);
    int64_t deadline = h_now() + 60 * H_SEC;
    while (gopy_rt_num_goroutine() != base) {
        if (h_now() > deadline)
            FAIL("%" PRId64 " goroutines left", gopy_rt_num_goroutine() - base);
        h_usleep(1000);
    }
    /* Their stacks are reused, guarded or not: a second round parks and
     * wakes as well. */
    park_wake_round(c, n);
    gopy_chan_release(c);
}

/* ---- an overflow on a stack guarded by mprotect is the clean fatal
 * error, not a silent corruption ----------------------------------------- */

static gopy_chan *overflow_go;

static void overflow(void *arg)
{
    (void)arg;
    h_recv(overflow_go);
    h_overflow_stack(0);
}

static void start_overflow(void)
{
    force_mprotect();
    overflow_go = h_chan(sizeof(int64_t), 1);
    h_go(overflow, NULL); /* its stack, and its guard, are made here */
    fprintf(stderr, "guard: %s\n", guard_mode());
    h_send(overflow_go, 1);
}

TEST_NOSTRESS(mprotect_overflow_is_fatal_error)
{
    int st;
    const char *out = h_child_stderr(start_overflow, &st);
    if (strstr(out, "guard: mprotect\n") == NULL ||
        strstr(out, "gopy: fatal error: stack overflow in goroutine ") == NULL)
        FAIL("the child's stderr:\n%s", out);
    h_check_fault_death(st);
}
