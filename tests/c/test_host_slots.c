/*
 * test_host_slots.c -- GOMAXPROCS for host goroutines under a host whose
 * lock does not exclude (host_slots.c): a fake host, like a free-threaded
 * interpreter, lets every M "hold" it at once and says when an M's thread
 * is detached (inside a blocking call).  The runtime must keep at most
 * GOMAXPROCS Ms holding it between switches, let them take turns, and hand
 * on the slot of an M blocked detached.
 */
#include "harness.h"

#include <semaphore.h>

/* One per M (its host slot), made at the M's thread start. */
typedef struct {
    _Atomic bool detached;
} fake_m;

enum { MAX_MS = 256 };
static fake_m fake_ms[MAX_MS];
static _Atomic int fake_next;
/* Ms holding the fake host lock now, and the most at once. */
static _Atomic int holders, max_holders;

/* The calling M's, set on its own thread as it starts (host goroutines
 * never leave their M, so a goroutine reads its M's here). */
static _Thread_local fake_m *this_m;

static void fake_thread_start(void **mslot)
{
    int i = atomic_fetch_add(&fake_next, 1);
    CHECK_LT(i, MAX_MS);
    *mslot = this_m = &fake_ms[i];
}

static bool fake_acquire(void **mslot)
{
    (void)mslot;
    int now = atomic_fetch_add(&holders, 1) + 1;
    int seen = atomic_load(&max_holders);
    while (now > seen && !atomic_compare_exchange_weak(&max_holders, &seen, now)) {
    }
    return true;
}

static void fake_release(void **mslot)
{
    (void)mslot;
    atomic_fetch_sub(&holders, 1);
}

static void fake_enter(void **mslot, void *gstate, bool first)
{
    (void)mslot;
    (void)gstate;
    (void)first;
}

static void fake_leave(void **mslot, void *gstate, bool exited)
{
    (void)mslot;
    (void)gstate;
    (void)exited;
}

static bool fake_detached(void **mslot)
{
    fake_m *f = *mslot;
    return f != NULL && atomic_load(&f->detached);
}

static const struct gopy_host_hooks fake_hooks = {
    .thread_start = fake_thread_start,
    .acquire = fake_acquire,
    .release = fake_release,
    .enter = fake_enter,
    .leave = fake_leave,
    .detached = fake_detached,
};

/* The host goroutine's area: what to run. */
typedef struct {
    void (*fn)(void *arg);
    void *arg;
} fake_call;

static void fake_init(void *gstate, void *arg)
{
    *(fake_call *)gstate = *(fake_call *)arg;
}

static void fake_run(void *gstate)
{
    fake_call *c = gstate;
    c->fn(c->arg);
}

static void fake_host_start(void)
{
    gopy_rt_set_host_hooks(&fake_hooks);
    CHECK(gopy_rt_set_host_area_size(sizeof(fake_call)));
}

static void go_host(void (*fn)(void *), void *arg)
{
    fake_call c = {fn, arg};
    CHECK_EQ(gopy_rt_go_host(fake_run, fake_init, &c, NULL), 0);
}

static void spin_ns(int64_t ns)
{
    int64_t end = h_now() + ns;
    while (h_now() < end) {
    }
}

/* ---- the cap, and turns between Ms -------------------------------------- */

enum { TURNS_GS = 4, TURNS_ROUNDS = 12 };
static _Atomic int turns_threads_seen;
/* turns_g running now (started, not done), and the most at once. */
static _Atomic int turns_live, turns_max_live;

static void turns_g(void *arg)
{
    /* Locked: each on an M of its own, so the Ms must take turns. */
    gopy_rt_lock_os_thread();
    atomic_fetch_add(&turns_threads_seen, 1);
    int live = atomic_fetch_add(&turns_live, 1) + 1;
    int seen = atomic_load(&turns_max_live);
    while (live > seen && !atomic_compare_exchange_weak(&turns_max_live, &seen, live)) {
    }
    for (int i = 0; i < TURNS_ROUNDS; i++) {
        spin_ns(2 * 1000 * 1000);
        gopy_yield();
    }
    atomic_fetch_sub(&turns_live, 1);
    gopy_waitgroup_done(arg);
}

TEST(host_slots_cap_the_ms_holding_the_host_and_take_turns)
{
    fake_host_start();
    gopy_gomaxprocs(2);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, TURNS_GS);
    for (int i = 0; i < TURNS_GS; i++)
        go_host(turns_g, wg);
    gopy_waitgroup_wait(wg);
    CHECK_EQ(atomic_load(&turns_threads_seen), TURNS_GS);
    /* More of them alive at once, each on an M of its own, than the two
     * that may hold the host: Ms took turns at their yields (without
     * turns, a third would start only when one of the first two is done,
     * 24 ms of spinning later).  How many Ms that made depends on timing:
     * an M whose goroutine is done may start a later one. */
    CHECK_GE(atomic_load(&turns_max_live), 3);
    CHECK_GE(atomic_load(&fake_next), atomic_load(&turns_max_live));
    CHECK_LE(atomic_load(&max_holders), 2);
    CHECK_GE(atomic_load(&max_holders), 1);
    gopy_waitgroup_free(wg);
}

/* ---- a blocked M's slot is handed on ------------------------------------ */

static sem_t blocked_sem;
static _Atomic int blocked_in_call;

static void blocked_g(void *arg)
{
    /* A blocking call that lets the host go, as Py_BEGIN_ALLOW_THREADS
     * does: the thread is detached while it waits. */
    gopy_rt_lock_os_thread();
    fake_m *self = this_m;
    CHECK(self != NULL);
    atomic_store(&self->detached, true);
    atomic_store(&blocked_in_call, 1);
    while (sem_wait(&blocked_sem) != 0 && errno == EINTR) {
    }
    atomic_store(&self->detached, false);
    gopy_waitgroup_done(arg);
}

static void releaser_g(void *arg)
{
    gopy_rt_lock_os_thread();
    sem_post(&blocked_sem);
    gopy_waitgroup_done(arg);
}

TEST(host_slots_a_blocked_ms_slot_goes_to_the_next)
{
    fake_host_start();
    gopy_gomaxprocs(1);
    CHECK_EQ(sem_init(&blocked_sem, 0, 0), 0);
    gopy_waitgroup *wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, 2);
    go_host(blocked_g, wg);
    h_await_flag(&blocked_in_call);
    /* Needs the only slot, held by an M whose thread is blocked: sysmon
     * hands it on (else this never ends: the case's hang bound fails it). */
    go_host(releaser_g, wg);
    gopy_waitgroup_wait(wg);
    gopy_waitgroup_free(wg);
    sem_destroy(&blocked_sem);
}
