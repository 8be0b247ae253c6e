/*
 * runtime.h -- the runtime's internal structures: G, M, P, sudog, timers
 * and the scheduler's global state.  Only the runtime's own files include this;
 * the Python binding sees gopy_rt.h.
 *
 * The model (Go's, with one addition):
 *
 *   G  a goroutine: a stack, a saved context and a status.
 *   M  an OS thread running goroutines.  Each M has a scheduler context
 *      ("g0": the thread's own stack) that picks the next G and switches
 *      to it; a G gives the M back by switching to g0 with an operation
 *      (park, yield, exit) that g0 finishes.
 *   P  a processor: the right to run C goroutines, with a local run queue,
 *      a free list of Gs and a timer heap.  GOMAXPROCS of them.
 *
 * The addition: *host goroutines* (Python).  They run only while their M
 * holds the host lock (the GIL), and once started they are bound to that
 * M for good ("home M": their interpreter frames cache per-thread state).
 * An M therefore runs in one of two modes:
 *
 *   C mode     it holds a P and runs C goroutines, exactly as in Go;
 *   host mode  it holds the host lock and no P, and runs host goroutines:
 *              those bound to it (m->hostq) and not-yet-started ones
 *              (sched.hostq).
 *
 * An M never holds a P and the host lock at once, so it can never wait for
 * one while holding the other (no deadlock between the two).  An M keeps
 * the host lock while it has host goroutines to run, so goroutines that
 * talk to each other stay on one thread and switch without a lock
 * handover.  While unstarted goroutines wait, one more M (the *standby*)
 * is blocked acquiring the host lock: the host hands it the lock the
 * moment the busy M's goroutine lets it go (a blocking or long C call), or
 * at its switch interval for a goroutine that computes, and the standby
 * then starts goroutines and recruits the next standby.  So 64 goroutines
 * hashing with the GIL released run on 64 threads, and ping-pong partners
 * started together share one.
 *
 * Foreign threads (the main thread, any thread the runtime did not make)
 * are not goroutines; when they block in the runtime they get a pseudo-G
 * (kind G_FOREIGN) that "parks" by sleeping on a note.
 *
 * Rules every file follows:
 *  - Never keep an M* or P* across a park: a C goroutine may resume on
 *    another M.  Call getm() again.
 *  - Never ready a G while holding a channel lock (or any rt_mutex that a
 *    readied G might want).
 *  - Every waker of a parked G first wins g->wait_claim (0 -> CLAIM_WOKEN)
 *    by CAS; only the winner completes the operation and readies the G.
 *    This is Go's selectDone, used for every wait so that select, and
 *    foreign threads giving up a wait (Ctrl-C, deadlock), need no
 *    special cases.
 */
#ifndef GOPY_RT_RUNTIME_H
#define GOPY_RT_RUNTIME_H

#include "ctx.h"
#include "gopy_rt.h"
#include "lock.h"
#include "stack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- lock order (Go's lockrank.go) ---------------------------------------
 *
 * Every rt_mutex has a rank, and a thread holding locks takes only locks of
 * a higher rank: a total order, so no cycle of waiting threads (deadlock)
 * can form.  Built with GOPY_CHECKS (debug and sanitizer builds) the order
 * is enforced (lockrank.c): taking a lock of a rank at or below one held
 * throws, except where a rank says otherwise below.  A lock is never held
 * across a park, so the record of held locks is per thread.  Gs are readied
 * only after the locks of the operation are released (goready takes
 * sched.lock or a hostq lock), which is what keeps the order this short.
 * A new nesting takes its place here first; a debug build's tests then
 * show whether the code agrees.
 *
 * Outermost first:
 */
enum lock_rank {
    LR_NONE,         /* never ranked: taking it throws (GOPY_CHECKS) */
    LR_NETPOLL_INIT, /* netpoll_init_lock: the poller's creation */
    LR_POOLS,        /* pools_lock (pool.c): the list of Pools, and over
                        it each Pool's lock, to clear them */
    LR_POOL,         /* a Pool's lock */
    LR_CONTEXT,      /* a Context's lock (context.c): only one at a time */
    LR_ERRGROUP,     /* an errgroup's lock */
    LR_COND,         /* a Cond's lock */
    LR_MAP,          /* a Map's indirect nodes: a child's, then its
                        parent's (prune_locked: always upwards, so no
                        cycle); the one rank that nests in itself
                        unordered */
    LR_SEMA,         /* an rt_sema's lock (sema.c): Mutex, RWMutex,
                        WaitGroup, Once */
    LR_CHAN,         /* channel locks: several at once only in address
                        order (select) */
    LR_NETPOLL_PD,   /* a poll descriptor's lock (netpoll.c): arms its
                        deadline timer under it */
    LR_OFFLOAD,      /* the offload pool's lock */
    LR_INIT,         /* init_lock (proc.c): rt_init, around the first
                        procresize and sysmon's start; a channel operation
                        (or any other) may be the first, under its lock */
    LR_SCHED,        /* sched.lock */
    LR_TIMERS,       /* a P's timers_lock: two at once in address order
                        (timers_move, under sched.lock) */
    LR_FOREIGN,      /* sched.foreign_lock: the foreign threads' list */
    LR_HOSTQ,        /* sched.hostq_lock: unstarted host goroutines */
    LR_M_HOSTQ,      /* an M's hostq_lock: its bound host goroutines */
    LR_HOST_SLOTS,   /* sched.slot_lock (host_slots.c): who holds and who
                        waits for a host slot */
    LR_GFREE,        /* sched.gfree_lock: free Gs (under sched.lock when
                        a P is retired) */
    LR_EBR,          /* an EBR limbo list's lock (ebr.c) */
    LR_STACK,        /* stack_lock (stack.c): the stack arenas */
    LR_COUNT
};

/* ---- throw.c ------------------------------------------------------------ */

/* Report a corrupted runtime state or a fatal misuse and abort (Go's
 * throw): "gopy: fatal error: <message>", then under GOPY_TRACEBACK=all
 * every goroutine.  Takes no lock and allocates nothing. */
_Noreturn void rt_throw(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* proc.c: fn(arg) on the M's own stack (g0's) when called on a
 * goroutine's small stack, which what it does could overrun (starting a
 * thread takes ~800 bytes, from whatever depth a wake-up calls it at;
 * vsnprintf over 2 KiB); anywhere else, right here.  The goroutine stays
 * current on its M meanwhile, as with Go's systemstack. */
void rt_on_system_stack(void (*fn)(void *arg), void *arg);
/* Read GOPY_TRACEBACK (rt_init). */
void rt_traceback_init(void);
/* Under GOPY_TRACEBACK=all, dump every goroutine to fd after a fatal
 * error's message; async-signal-safe (the fault handler calls it too). */
void rt_traceback(int fd);

/* Checked invariants: built with GOPY_CHECKS (the debug and sanitizer
 * builds), a false cond throws msg; otherwise cond is not evaluated and
 * the release build pays nothing. */
#ifdef GOPY_CHECKS
#define rt_assert(cond, msg)                                                     \
    do {                                                                         \
        if (!(cond))                                                             \
            rt_throw("%s", msg);                                                 \
    } while (0)
#else
#define rt_assert(cond, msg) ((void)sizeof(cond))
#endif

typedef struct G G;
typedef struct M M;
typedef struct P P;
typedef struct sudog sudog;
typedef struct rt_timer rt_timer;

/* Entries of an M's group table (placement.c), in buckets of two: a group
 * whose bucket two others hold is not spread from that M meanwhile. */
enum { M_GROUPS = 64 };

/* ---- G ------------------------------------------------------------------ */

enum g_status {
    G_IDLE,     /* fresh or free */
    G_RUNNABLE, /* on a run queue, or about to be */
    G_RUNNING,  /* on an M */
    G_WAITING,  /* parked: only a waker that wins wait_claim may ready it */
    G_DEAD,     /* finished, on a free list */
};

enum g_kind {
    G_C,       /* C goroutine: any M in C mode */
    G_HOST,    /* host goroutine: its home M in host mode */
    G_FOREIGN, /* a foreign thread's pseudo-G: no stack of its own */
};

/* wait_claim values */
enum {
    CLAIM_OPEN = 0,    /* parked (or about to), nobody has claimed it */
    CLAIM_WOKEN = 1,   /* a waker completed the operation */
    CLAIM_ABORTED = 2, /* the waiter gave up (foreign threads only) */
};

/* What a switch back to g0 asks the scheduler to do with the G. */
enum g_op {
    GOP_NONE,
    GOP_PARK,  /* mark waiting, call park_unlock, schedule */
    GOP_YIELD, /* requeue, schedule */
    GOP_EXIT,  /* recycle, schedule */
    GOP_CALL,  /* call m->call_fn(m->call_arg), then resume the G (rt_on_system_stack) */
};

struct rt_timer {
    int64_t when;   /* monotonic ns; valid while in a heap */
    int64_t period; /* > 0: re-arm every period (tickers) */
    void (*fn)(rt_timer *t, void *arg, uint64_t seq);
    void *arg;
    /* Bumped by every stop/reset, under the timer's owner's lock: a firing
     * that carries an old seq is stale and must do nothing visible. */
    _Atomic uint64_t seq;
    /* The P whose heap holds the timer, NULL when not pending.  Written
     * with that P's timers_lock held; read first without it, then
     * re-checked under it. */
    _Atomic(P *) heap;
    int32_t idx; /* index in the heap; under heap->timers_lock */
    /* fn is running now (timers_run); timer_del waits for it to end, so
     * after timer_del returns the caller may free the timer.  fn must not
     * call timer_del on its own timer. */
    _Atomic uint32_t running;
};

struct G {
    rt_ctx ctx;
    _Atomic uint32_t status; /* enum g_status */
    uint8_t kind;            /* enum g_kind */
    bool in_free_list;
    int64_t goid;
    void (*fn)(void *);
    void *arg;
    rt_stack stack;
    uint8_t stack_class;
    M *m;         /* the M running it (while running) */
    G *schedlink; /* its gqueue link (gqueue.h), or a G list's */

    /* host goroutines */
    M *home;    /* bound on first run, or chosen before it (placement.c);
                   written before the G is queued on it */
    M *spawner_m; /* the M of the goroutine that spawned this one, NULL if a
                     thread that is no M did: compared, never dereferenced
                     (placement.c); written before the G is queued */
    int64_t spawner_goid; /* that goroutine's goid; 0 if a thread spawned it,
                             or a goroutine that had spawned a backlog */
    void *host; /* the binding's per-goroutine state (== arg) */

    /* lock_os_thread: nesting count; the G runs only on lockedm */
    int32_t locked;
    M *lockedm;

    /* waiting */
    _Atomic uint32_t wait_claim;
    uint8_t wait_reason; /* enum gopy_wait_reason */
    uint8_t abort_reason;/* with CLAIM_ABORTED: GOPY_EINTR / GOPY_EDEADLK */
    const void *wait_obj;/* the channel, mutex... it waits on (for dumps) */
    int64_t wait_since;  /* monotonic ns when it parked */
    int64_t wait_until;  /* sleep deadline, 0 if none */
    sudog *param;        /* the sudog that completed its wait */
    sudog *waiting;      /* its sudogs while in select */
    rt_timer sleep_timer;

    /* foreign pseudo-Gs: the thread sleeps here while "parked" */
    rt_note note;
    int (*interrupt)(void *); /* see gopy_rt_set_interrupt */
    void *interrupt_arg;
    int64_t interrupt_poll_ns;

    G *alllink; /* sched.allg list */

    /* foreign pseudo-Gs: the thread (pthread_self) and the list of them
     * (sched.foreign, under sched.foreign_lock) */
    uintptr_t thread_ident;
    G *foreign_prev, *foreign_next;

    /* host goroutines, used once per goroutine: kept off the fields the
     * switch and the wait queues touch */
    const void *group;  /* same code, same group (placement.c); NULL: none */
    bool host_started;  /* has run once (home's hooks know its state) */
    bool placed_away;   /* queued unstarted on a home by another M, counted
                           in sched.host_placed (written before queueing) */
    bool group_counted; /* counted in home->groups (placement.c) */
    bool spawned_backlog; /* it yielded for a backlog of goroutines it spawned
                             (gopy_rt_host_start_backlog): a mass spawner, whose
                             goroutines are no batch (placement.c) */
    bool batch;         /* one of three or more of a group spawned in a row by
                           one goroutine: set under sched.hostq_lock while
                           queued there (hostq_pop), read once popped */
};

/* A waiting G's entry in a wait queue.  Lives on the waiter's stack (or a
 * select's array) and is valid until the waiter resumes: a waker must not
 * touch it after readying the G. */
struct sudog {
    G *g;
    sudog *next, *prev; /* wait queue links */
    void *elem;         /* value to send / buffer to receive into */
    struct gopy_chan *c;
    sudog *waitlink; /* g->waiting list (select) */
    uint64_t ticket; /* Cond ticket, mutex wait start, ... */
    int32_t case_index;
    bool success; /* true: completed by a waker; false: by close */
    bool hinted;  /* recorded in its channel's wait_hints, at hint (chan.h) */
    uint32_t hint;
};

/* FIFO queues of Gs (gqueue) and of sudogs (waitq). */
#include "gqueue.h"

/* ---- M ------------------------------------------------------------------ */

struct M {
    int64_t id;
    pthread_t thread;
    rt_ctx g0ctx; /* the scheduler, on the thread's own stack */
    G *curg;      /* the G running, NULL on g0 */
    P *p;         /* owned P (C mode), NULL in host mode or idle */
    P *nextp;     /* P handed over by whoever woke us */
    bool spinning;/* looking for work while holding a P */
    rt_note park; /* idle Ms sleep here */
    M *schedlink; /* sched.midle */
    M *alllink;   /* sched.allm */
    /* Sleeping on park: M_IDLE in sched.midle (changed only with
     * sched.lock held), M_IDLE_LOCKED a locked M waiting for its G.
     * Atomic so that wakers can look before taking sched.lock. */
    _Atomic uint32_t idle;
    bool dying; /* after fork or at shutdown */
    /* The thread's alternate signal stack (signals.c), or NULL.  Ms never
     * exit, so it is never freed; kept here so that it is reachable (else
     * only the kernel knows it, and LeakSanitizer calls it a leak). */
    void *sigstack;

    /* the G's request when it switched to g0 */
    uint8_t gop;
    bool (*park_unlock)(G *g, void *arg);
    void *park_arg;
    /* GOP_CALL's function and argument */
    void (*call_fn)(void *arg);
    void *call_arg;

    /* Host mode.  hostq: host Gs bound here that are runnable; any thread
     * pushes (under hostq_lock), only this M pops, but for sysmon taking
     * back the unstarted ones of an M stalled in a goroutine
     * (proc_host_reclaim, under hostq_lock). */
    rt_mutex hostq_lock;
    gqueue hostq;
    _Atomic int32_t hostq_len;
    /* Of those, the unstarted ones another M placed here (placed_away):
     * what proc_host_reclaim would take back, so that it walks hostq only
     * when there is something to take (a busy M holds thousands of
     * started ones).  Counted before the push, uncounted when they first
     * run here or are taken back (count_placed, in proc.c). */
    _Atomic int32_t hostq_placed;
    bool host_held;    /* holds the host lock (only this M writes) */
    void *host;        /* the binding's per-M state (its thread state) */
    /* Host schedules of this M while it may start unstarted Gs (not
     * locked to one): one in 61 takes from sched.hostq, for fairness.
     * Only this M writes it; sysmon reads it (relaxed) to tell the Ms
     * that will get to the queue (watch_host_queue). */
    _Atomic uint32_t hosttick;
    int32_t host_starts; /* unstarted host Gs to start before bound ones
                            (gopy_rt_host_start_backlog) */
    G *lockedg;        /* lock_os_thread: the G this M is dedicated to */

    /* What sysmon may read of this M (the fields above are the M's own):
     * schedtick is bumped on every switch to a G; in_g is true while a G
     * runs; mon_p mirrors p. */
    _Atomic uint64_t schedtick;
    _Atomic bool in_g;
    _Atomic(P *) mon_p;
    /* Set by sysmon when it added a P for this M's stuck G; cleared (and
     * the P given back) when the M next schedules. */
    _Atomic bool compensated;
    /* Set by the M's own thread once it runs; sysmon may look earlier
     * (the M is on allm before its thread starts): has_cpuclock
     * publishes cpuclock. */
    clockid_t cpuclock;
    _Atomic bool has_cpuclock;
    int32_t tid; /* kernel thread id, published with has_cpuclock */
    /* sysmon's private view (only sysmon touches these) */
    uint64_t mon_tick;
    int64_t mon_since; /* when sysmon first saw schedtick at mon_tick */
    int64_t mon_cpu;   /* the M's CPU time then, -1 if not sampled */
    bool mon_acted;    /* already compensated / moved for this stretch */
    bool mon_warned;   /* stall warning printed for this stretch */
    int64_t mon_run_since; /* when sysmon first saw schedtick at mon_tick */
    int64_t mon_asked;  /* when preemption was last asked this stretch (0: not) */
    uint32_t mon_hosttick;  /* hosttick as last seen */
    int64_t mon_host_since; /* when sysmon first saw hosttick at that */
    int64_t mon_reclaimed;  /* when it last took back unstarted Gs (0: not
                               this stretch) */
    /* Written by sysmon, read by placement: the M is inside a goroutine and
     * has not scheduled host goroutines for HOST_PICKING_NS (blocked in a
     * call, or computing), so what is queued on it waits. */
    _Atomic bool host_stalled;
    /* The schedtick of the stretch sysmon asked to yield (0: none): sysmon
     * stores, the M takes it (gopy_rt_preempt_take), so a request that
     * arrives after the goroutine parked is seen to be stale. */
    _Atomic uint64_t preempt_tick;
    /* host_slots.c: SLOT_NONE, SLOT_HELD (taken by this M, or handed to
     * it by the M or sysmon that let one go), SLOT_REVOKED (sysmon gave
     * it away while this M's thread was out of the host in a blocking
     * call).  HELD -> NONE by this M, HELD -> REVOKED by sysmon, both by
     * CAS; REVOKED -> NONE and NONE -> HELD by this M (or by whoever
     * hands it a slot while it waits). */
    _Atomic uint8_t slot;
    int64_t slot_since; /* when it got its slot (this M only) */
    M *slot_link;       /* sched.slot_waiters (under slot_lock) */
    bool slot_for_bound; /* waits to run a G it holds (under slot_lock) */
    rt_note slot_note;  /* where it waits for a slot */

    gqueue gfree; /* host-class free Gs cached by this M */
    int32_t gfree_n;

    /* placement.c: live host Gs bound here, per group (this M only), and
     * whether the M holds a slot of sched.spread_ring (written under
     * sched.lock; the M itself reads it without, to choose a home). */
    struct m_group {
        const void *key;
        int32_t live;
        int32_t spread; /* members this M started elsewhere instead */
        G *recent[2];   /* the last two started here, while they live */
    } groups[M_GROUPS];
    _Atomic bool in_ring;

    /* Waits on the netpoller in progress by host goroutines bound here
     * (netpoll.c; only this M's goroutines change it): this M runs what
     * their events ready, so it, not another, is their poller once idle
     * (stopm). */
    _Atomic int32_t netpoll_bound;

    uint32_t fastrand_state;
};

/* ---- P ------------------------------------------------------------------ */

enum p_status {
    P_IDLE,    /* in sched.pidle */
    P_RUNNING, /* owned by an M */
    P_SPARE,   /* not in use (beyond GOMAXPROCS) */
};

enum { RUNQ_SIZE = 256, GFREE_MAX = 64 };

struct P {
    int32_t id;
    _Atomic uint32_t status;
    M *m;
    P *link; /* sched.pidle / spare list */
    uint32_t schedtick;
    /* Local run queue: only the owner pushes (release store of tail);
     * owner and thieves pop by CAS on head. */
    _Atomic uint32_t runqhead;
    _Atomic uint32_t runqtail;
    _Atomic(G *) runq[RUNQ_SIZE];
    _Atomic(G *) runnext; /* runs next, inheriting the time slice */

    gqueue gfree[RT_STACK_C_CLASSES]; /* free C goroutines' Gs, by stack class (owner only) */
    int32_t gfree_n[RT_STACK_C_CLASSES];

    /* Timers: a 4-ary min-heap on when. */
    rt_mutex timers_lock;
    rt_timer **timers;
    int32_t ntimers, timers_cap;
    _Atomic int64_t timer0_when; /* heap top's when, 0 if empty */
};

/* ---- the scheduler ------------------------------------------------------ */

enum { MAX_PROCS = 1024 };

typedef struct {
    rt_mutex lock; /* guards the fields marked (L) */

    /* Ms */
    M *midle;        /* (L) idle Ms */
    _Atomic int32_t nmidle;  /* changed under (L), read without */
    _Atomic int32_t nmidle_locked; /* locked Ms asleep waiting for their G */
    /* Bumped whenever an M stops being idle: a deadlock check that saw
     * every M idle is valid only if this did not move meanwhile. */
    _Atomic uint64_t idle_epoch;
    _Atomic int32_t mcount;  /* Ms created; changed under (L) */
    int32_t maxmcount;
    _Atomic(M *) allm; /* push-only list */
    int64_t mnext;   /* (L) next M id */

    /* Ps */
    P *allp[MAX_PROCS]; /* made on demand, never freed */
    _Atomic int32_t nallp;      /* allp entries made */
    _Atomic int32_t gomaxprocs; /* Ps in use, as the user set it */
    _Atomic int32_t nextra;     /* plus one per M sysmon compensates */
    _Atomic int32_t nprocs;     /* Ps in use (idle or running) */
    P *pidle;                   /* (L) */
    _Atomic int32_t npidle;
    P *pspare;                  /* (L) Ps not in use */
    _Atomic int32_t nmspinning;

    /* global run queue of C goroutines (L) */
    gqueue runq;
    _Atomic int32_t runqsize;

    /* Host goroutines not yet started (any M holding the host lock may
     * start them), and the standby: the M on its way to take the host
     * lock for them while they wait, if any (at most one).  Ms that may
     * start them and are waiting for the host lock anyway (host_find)
     * count in nhost_acquiring: while one does, no standby is needed.
     * hostq_starts counts the goroutines taken off the queue (changed
     * under hostq_lock, read without): sysmon sees from it whether the
     * queue moves (host_stalled). */
    rt_mutex hostq_lock;
    gqueue hostq;
    _Atomic int32_t hostq_len;
    _Atomic(M *) host_standby;
    _Atomic int32_t nhost_acquiring;
    _Atomic uint64_t hostq_starts;
    /* Unstarted host Gs that the M taking them off hostq queued on another
     * home (hostq_take), until they first run or go back on hostq
     * (proc_host_reclaim): with hostq_len, what a spawner's backlog counts
     * (gopy_rt_host_backlog). */
    _Atomic int32_t host_placed;
    /* host_slots.c: with a host whose lock does not exclude (free-threaded
     * CPython), GOMAXPROCS slots take the GIL's place: an M holds one
     * while it holds the host lock.  slots_held and the FIFO of waiting
     * Ms under slot_lock; slot_nwaiting mirrors the FIFO's length for
     * readers without the lock. */
    rt_mutex slot_lock;
    int32_t slots_held;
    M *slot_waiters, *slot_waiters_tail;
    _Atomic int32_t slot_nwaiting;
    /* placement.c: the Ms that pools of host goroutines are spread over,
     * one per ring slot (placement_ring_slots) and a spare that stands in
     * for the slot of a pool's feeder's M, each chosen on first use and
     * let go when GOMAXPROCS shrinks the ring (under lock; read without
     * it), and the round-robin cursor over them. */
    _Atomic(M *) spread_ring[MAX_PROCS + 1];
    _Atomic uint32_t spread_next;

    /* free Gs beyond the per-P / per-M caches, by stack class */
    rt_mutex gfree_lock;
    gqueue gfree[RT_STACK_NCLASSES];
    _Atomic int32_t gfree_n[RT_STACK_NCLASSES]; /* read without the lock */

    /* all Gs ever made (for dumps and counts); push-only */
    _Atomic(G *) allg;
    /* foreign threads' pseudo-Gs, while their threads live */
    rt_mutex foreign_lock;
    G *foreign;

    /* The M sleeping until the next timer, and when it wakes (L; read
     * without the lock first by timer_add). */
    _Atomic(M *) timer_sleeper;
    _Atomic int64_t timer_sleep_until;
    /* The M blocked in the netpoller (stopm), if any (L; read without it
     * as a hint).  Whoever takes it off the idle list (mremove) breaks its
     * wait (netpoll_break); only that M clears this, once out of the
     * wait: so at most one M is ever blocked in the netpoller, and a break
     * (one eventfd for all) cannot be drained by another M. */
    _Atomic(M *) netpoll_sleeper;
    /* When netpoll last looked (monotonic ns): sysmon polls when nobody
     * has for 10 ms. */
    _Atomic int64_t netpoll_last;

    /* sysmon */
    rt_note sysmon_note;
    _Atomic bool sysmon_sleeping; /* parked until woken: nothing to watch */
    bool sysmon_started;          /* (L) */

    /* counters */
    _Atomic int64_t goidgen;
    _Atomic int64_t ngoroutines; /* live C and host goroutines */
    _Atomic int64_t nswitch;
    _Atomic int64_t nsteal;
    _Atomic int64_t nhandoff;
    _Atomic int64_t nhost_recruits; /* standbys recruited */

    const struct gopy_host_hooks *host_hooks;
    size_t host_area_size; /* bytes above a host G for the binding */
    _Atomic bool host_stopping; /* interpreter exit: start no host work */
    /* Warn when an M stays in one call this long while goroutines bound to
     * it wait (0: never); GOPY_STALL_WARNING seconds. */
    _Atomic int64_t stall_warn_ns;
    /* A host goroutine running this long while goroutines bound to its M
     * wait is asked to yield (0: never); GOPY_PREEMPT_SLICE seconds,
     * default 10 ms like Go's forcePreemptNS.  npreempt counts yields. */
    _Atomic int64_t preempt_ns;
    _Atomic int64_t npreempt;
    bool traceback_all; /* GOPY_TRACEBACK=all: dump every goroutine on a fatal error */
    _Atomic bool started;
} schedt;

extern schedt sched;

/* ---- proc.c ------------------------------------------------------------- */

void rt_init(void);
M *getm(void);
G *getg(void);
/* The calling thread's G: its goroutine, or its foreign pseudo-G. */
G *getg_or_foreign(void);
/* Park the current G.  unlock(g, arg), if given, runs after the G is off
 * its stack and marked waiting; if it returns false the park is undone.
 * Returns 0 when woken, or for a foreign G whose wait was abandoned
 * (wait_claim CLAIM_ABORTED) its abort_reason. */
int gopark(bool (*unlock)(G *, void *), void *arg, uint8_t reason,
           const void *obj);
/* Make a parked G runnable (the caller has won its wait_claim). */
void goready(G *g);
/* goready each G of a list linked by schedlink. */
void goready_list(G *list);
/* Start a new G running fn(arg) on a stack of class cls (RT_STACK_HOST
 * for host Gs).  0 or -1 (errno).  Host Gs run fn(area) after
 * init(area, arg) (see gopy_rt_go_host). */
int newproc(void (*fn)(void *), void *arg, enum g_kind kind, enum rt_stack_class cls,
            void (*init)(void *area, void *arg), const void *group);
void gosched(void);
/* goready a sender whose value a receive took (it waited: senders are
 * ahead of receivers).  A host goroutine then lets its M's other runnable
 * goroutines run first, as if it had parked, unless it woke one of its own
 * M (a producer and its consumer taking turns): they can run nowhere else,
 * and a pool member that finds the next job waiting each time would keep
 * its M from the jobs its M's other members were handed before (W10: one
 * member of four hashed while three held jobs). */
void goready_sender(G *sender);
/* Reset the claim before enqueueing sudogs for a new wait. */
static inline void g_prepare_wait(G *g)
{
    atomic_store_explicit(&g->wait_claim, CLAIM_OPEN, memory_order_relaxed);
    g->param = NULL;
}
static inline bool g_claim(G *g)
{
    uint32_t open = CLAIM_OPEN;
    return atomic_compare_exchange_strong_explicit(
        &g->wait_claim, &open, CLAIM_WOKEN, memory_order_acq_rel,
        memory_order_relaxed);
}
void wakep(void);
void runtime_wake_timer_sleeper(int64_t when);
P *rt_any_p(void);

/* ---- timer.c ------------------------------------------------------------ */

void timer_init(rt_timer *t, void (*fn)(rt_timer *, void *, uint64_t), void *arg);
/* Arm t at `when` (monotonic ns), on the current P's heap or another. */
void timer_add(rt_timer *t, int64_t when, int64_t period);
/* Disarm; true if it was pending.  Bumps seq either way. */
bool timer_del(rt_timer *t);
/* Run p's expired timers.  Returns the when of p's next timer (0: none). */
int64_t timers_run(P *p, int64_t now);
/* Earliest timer over all Ps in use (0: none). */
int64_t timers_next(void);
/* Move every timer of `from` to `to` (P being retired).  Returns to's
 * earliest when if any timer moved, else 0; the caller wakes the timer
 * sleeper for it (runtime_wake_timer_sleeper takes sched.lock, which the
 * retiring callers hold). */
int64_t timers_move(P *from, P *to);
int64_t timers_count(void);

/* ---- chan.c / select.c -------------------------------------------------- */

/* Internal channel operations; block == false never parks.
 * Return GOPY_OK, GOPY_ECLOSED, GOPY_EAGAIN (would block), or for a
 * foreign thread an abort reason (GOPY_EINTR, GOPY_EDEADLK). */
int chansend(struct gopy_chan *c, const void *elem, bool block);
int chanrecv(struct gopy_chan *c, void *elem, bool *ok, bool block);

/* ---- wait queues (gqueue.h; this one in chan.c) ------------------------- */

/* Pop the first sudog whose G this call claims (skipping ones whose G is
 * already claimed: another select case won, or the waiter gave up). */
sudog *waitq_claim_first(waitq *q);

/* ---- dump.c -------------------------------------------------------------- */

/* Write all of s to fd with write(2): async-signal-safe. */
void rt_put(int fd, const char *s);
/* One line per live goroutine (only those bound to one M, if given), with
 * write(2) only: safe in a signal handler and without the host lock. */
void rt_dump_goroutines(int fd, M *only_bound_to);
void rt_dump_goroutine(int fd, G *g, int64_t now);
/* "runnable", "running", "waiting" or "idle", for dumps. */
const char *rt_g_status_name(uint32_t status);

/* ---- signals.c ---------------------------------------------------------- */

/* Install the fault handler that names goroutines overflowing their stack
 * (once), and give the calling M an alternate signal stack to run it on
 * (returned; NULL if there was no memory for one). */
void rt_signals_init(void);
void *rt_signals_thread_init(void);
/* Start a detached thread running fn(arg), with stack_size bytes of stack
 * (0: the default), and with every asynchronous signal blocked from birth
 * so that the kernel delivers those to threads that handle them (the main
 * thread); the signals a fault raises stay open for the fault handler.
 * 0 or an errno value (*thread is then undefined). */
int rt_thread_start(pthread_t *thread, size_t stack_size, void *(*fn)(void *), void *arg);
/* Name the calling thread, printf-style (what top -H, ps -L, gdb and
 * /proc/self/task/<tid>/comm show), cut to 15 bytes. */
void rt_thread_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- offload.c ---------------------------------------------------------- */

/* Offloaded calls whose goroutine is not yet readied: while there are any,
 * a goroutine will become runnable without anyone else acting. */
bool offload_pending(void);
/* Fill the offload_* fields of s. */
void offload_stats(gopy_rt_stats *s);
/* The child side of fork: forget the helpers and their jobs. */
void offload_after_fork(void);

/* ---- netpoll.c ---------------------------------------------------------- */

/* Waits in progress on the netpoller (goroutines and threads). */
int32_t netpoll_waiters(void);
/* Of those, the ones any M may poll for: all but host goroutines bound to
 * their M, which count in M.netpoll_bound. */
int32_t netpoll_unbound_waiters(void);
/* Wait up to delay ns (< 0: until an event or netpoll_break; 0: do not
 * block) for ready descriptors, and claim their waiters.  Returns their
 * Gs linked by schedlink, for the caller to ready (goready_list), or to
 * run one itself.  Call with no runtime lock held. */
G *netpoll(int64_t delay);
/* Make a netpoll blocked now (or the next blocking one) return. */
void netpoll_break(void);
/* Fork child: a fresh poller, no waiters. */
void netpoll_after_fork_child(void);

/* ---- placement.c -------------------------------------------------------- */

/* The spread ring's size, and how many Ms host goroutines may want at
 * once: GOMAXPROCS, and at least one a CPU.  GOMAXPROCS bounds the Ms
 * running host code at once, but Ms are wanted beyond it for the calls
 * that let the host lock go, as Go runs its goroutines' system and cgo
 * calls beyond GOMAXPROCS (they hold no P): at GOMAXPROCS=1 a parked
 * pool on one M hashed one job at a time, where fresh goroutines and a
 * thread pool used both CPUs of the machine (docs/decisions.md §12). */
int32_t placement_ring_slots(void);
/* GOMAXPROCS has just changed (sched.lock held) and the ring had
 * old_slots slots.  If it shrank, the Ms of the slots past its new size
 * and of its new spare's index (a regular slot until now) leave it: kept
 * there, such an M would count as a ring M and spread a pool it starts
 * over the slots besides itself, no spread reaching it: a pool on three
 * threads at GOMAXPROCS=2 after 8.  They may take a slot again later. */
void placement_ring_resize(int32_t old_slots);
/* How many busy Ms host goroutines may usefully have, for the standby
 * rules (proc.c host_few_busy, sysmon's watch of the unstarted queue):
 * the ring's slots where the host lock is the GIL, since a recruited M
 * homes what it starts on the ring; GOMAXPROCS with host slots, where a
 * recruited M keeps what it starts, one more M taking turns for the
 * GOMAXPROCS slots for good. */
int32_t placement_host_ms(void);
/* g runs for the first time on its home m: count it in m's group table. */
void placement_count(M *m, G *g);
/* g, counted on m (its home), exits there. */
void placement_uncount(M *m, G *g);
/* m, holding the host lock, is about to start the unstarted host G g:
 * the M that should be its home (m itself, or an M of the spread ring),
 * or NULL: m leaves g on the shared queue, a batch member for *taker, a
 * ring M, to start, or (*taker NULL) for the first ring M back from the
 * goroutine it is in (placement.c). */
M *placement_home(M *m, G *g, M **taker);
/* Take the receiver a sent value should go to (the caller holds the
 * channel's lock), as waitq_claim_first but preferring, among the 64
 * oldest, one whose home M can run it at once. */
sudog *placement_claim_receiver(waitq *q);
/* proc.c, for placement: an M to give host work to (an idle one not in the
 * spread ring, or a new one); NULL if none could be made.  sched.lock not
 * held. */
M *proc_host_m(void);

/* ---- host_slots.c ------------------------------------------------------- */

enum { SLOT_NONE, SLOT_HELD, SLOT_REVOKED };
/* How long an M keeps its slot while others wait, with preemption off. */
#define HOST_SLOT_SLICE_NS ((int64_t)10 * 1000 * 1000)

/* Does the host need slots (its hooks can tell a detached thread)? */
bool host_slots_on(void);
/* m is about to take the host lock: wait for a slot (FIFO).  for_bound:
 * to run a goroutine it took off its own queue already (locked_find).  No
 * lock held. */
void host_slot_take(M *m, bool for_bound);
/* m has let the host lock go (or never got it): its slot, if it still
 * has one, goes to the first waiter. */
void host_slot_give(M *m);
/* m holds the host lock: should it let it and its slot go before running
 * more?  Yes once sysmon revoked the slot, or when Ms wait for one and m
 * has held its own for a slice. */
bool host_slot_should_yield(M *m);
/* GOMAXPROCS changed: hand out the slots it added. */
void host_slots_resize(void);
/* sysmon: does an M waiting for a slot have goroutines bound to it to run? */
bool host_slot_wanted_by_bound(void);
/* sysmon: m holds a slot, Ms wait for one, and m's thread has let the
 * host go inside its goroutine's call: give its slot to the first
 * waiter.  true if it did. */
bool host_slot_revoke(M *m);

/* ---- sysmon.c ----------------------------------------------------------- */

void sysmon_start(void);
void sysmon_wake(void);
/* proc.c, for sysmon: add a P for a stuck M's work (see sysmon.c). */
void proc_compensate(M *stuck);
/* Host goroutines wait unstarted and none has started for a while:
 * recruit a standby unless one is on its way (sysmon). */
void proc_host_stalled(void);
/* m is stalled in a goroutine: its unstarted goroutines go back to
 * sched.hostq (sysmon). */
void proc_host_reclaim(M *m);

#endif
