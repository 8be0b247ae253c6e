/*
 * gopy_rt.h -- what the runtime offers to a host language binding (the
 * CPython extension) beyond the public C API in gopy.h: host goroutines,
 * interruptible waits for foreign threads, timers with channels, and
 * introspection.  It knows nothing of Python; the binding knows nothing of
 * the scheduler beyond this header.
 */
#ifndef GOPY_RT_H
#define GOPY_RT_H

#include "../../include/gopy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes of the internal operations, beyond GOPY_OK / GOPY_ECLOSED. */
#define GOPY_EAGAIN 2  /* non-blocking operation would block */
#define GOPY_EINTR 3   /* a foreign thread's wait was interrupted */
#define GOPY_EDEADLK 4 /* a foreign thread's wait can never end */
/* Misuse of sync types (Go panics; the binding raises). */
#define GOPY_ENEGATIVE 5  /* negative WaitGroup counter */
#define GOPY_ENOTLOCKED 6 /* unlock of an unlocked (RW)Mutex */
#define GOPY_EREUSE 7     /* WaitGroup reused before Wait returned, or Add
                             called concurrently with Wait */
#define GOPY_ECALLBACK 8  /* a caller's callback reported an error (Map) */

/* ---- host goroutines ----------------------------------------------------
 *
 * A host goroutine runs host-language code that needs the host lock (the
 * GIL) and per-goroutine interpreter state.  The runtime runs them only on
 * an M holding the host lock, binds each to the M it first runs on, and
 * calls these hooks on that M's scheduler stack.  `mslot` points at the
 * M's private slot for the binding (NULL at first); `gstate` is the `arg`
 * given to gopy_rt_go_host.
 */
struct gopy_host_hooks {
    /* A new M's thread starts (before it runs anything; the host lock is
     * not held and must not be taken: it may not be free for long).  The
     * M's C goroutines may call into the host (callbacks) on this
     * thread.  Optional. */
    void (*thread_start)(void **mslot);
    /* Take the host lock for this M; may block.  Return false to refuse
     * (the host is shutting down): the M then never runs host code again. */
    bool (*acquire)(void **mslot);
    void (*release)(void **mslot);
    /* Load / save a goroutine's interpreter state on this M.  `first` is
     * true for its first run, `exited` once it has returned for good. */
    void (*enter)(void **mslot, void *gstate, bool first);
    void (*leave)(void **mslot, void *gstate, bool exited);
    /* Called by sysmon (no host lock, must not block): the goroutine
     * running on this M has run a whole preemption slice while goroutines
     * bound to the M wait.  The binding makes it call
     * gopy_rt_preempt_take at its next safe point, and yield if told to.
     * Optional. */
    void (*preempt)(void **mslot);
    /* Called by sysmon (no host lock, must not block) after it warned that
     * this M's goroutine stalls the others bound to it: the binding may add
     * what only it can see (the goroutine's traceback).  Optional. */
    void (*stalled)(void **mslot);
    /* Called by sysmon (no host lock, must not block): is this M's thread
     * detached from the host right now (inside a call that let the host
     * lock go)?  Given only by a host whose lock does not exclude (a
     * free-threaded interpreter): the runtime then lets at most GOMAXPROCS
     * Ms hold the host lock at once (host_slots.c).  Optional. */
    bool (*detached)(void **mslot);
};

void gopy_rt_set_host_hooks(const struct gopy_host_hooks *hooks);
/* Each host goroutine carries `size` bytes for the binding (its gstate)
 * at the top of its own stack: no allocation per goroutine, and the
 * memory is kept when the goroutine's G is reused (zeroed only the first
 * time).  Set once, before the first host goroutine. */
bool gopy_rt_set_host_area_size(size_t size);
/* The C stack a host goroutine runs on, given its area: [*lo, *hi), the
 * guard page just below lo.  (The interpreter's stack-overflow check
 * needs the bounds of the stack it runs on.) */
void gopy_rt_host_stack_bounds(const void *area, uintptr_t *lo, uintptr_t *hi);
/* Start a host goroutine running fn(gstate).  init(gstate, arg) fills
 * the area first, on the calling thread (which may not hold the host
 * lock: a timer's fire function).  group names the code it runs (any
 * stable address, never dereferenced; NULL: none): live goroutines of one
 * group are spread over GOMAXPROCS Ms, so that a pool of them can block
 * or compute without the host lock in parallel (placement.c).  0, or -1
 * with errno. */
int gopy_rt_go_host(void (*fn)(void *gstate), void (*init)(void *gstate, void *arg),
                    void *arg, const void *group);
/* Interpreter exit: start no host work from now on.  Host goroutines
 * parked stay parked; Ms refuse the host lock. */
void gopy_rt_host_stop(void);

/* lock_os_thread / unlock_os_thread for the calling goroutine (nesting). */
void gopy_rt_lock_os_thread(void);
void gopy_rt_unlock_os_thread(void);

/* ---- the calling thread ------------------------------------------------- */

/* 0 outside goroutines, else the goroutine's id (> 0). */
int64_t gopy_rt_goid(void);
bool gopy_rt_in_host_goroutine(void);
/* The calling host goroutine's gstate (gopy_rt_set_host_area_size), or
 * NULL outside host goroutines. */
void *gopy_rt_host_gstate(void);
/* Have so many host goroutines queued up unstarted that the caller
 * (holding the host lock) should let them start now, and can?  A host
 * goroutine can unless it is locked to its thread.  Another thread can if
 * an M is on its way to take the host lock for them, or waits for it: it
 * should let the lock go until that M has it. */
bool gopy_rt_host_backlog(void);
/* The same mark without asking who could start them: are that many
 * unstarted?  *starts: how many host goroutines have been started so far.
 * For a host whose lock does not keep the Ms out while another thread
 * holds it (a free-threaded interpreter): the Ms start them in parallel
 * with the spawning thread, which watches the backlog drain instead of
 * handing the lock over. */
bool gopy_rt_host_backlog_at(uint64_t *starts);
/* From a host goroutine: yield, and have its M start the unstarted ones
 * before resuming it; true.  From anywhere else: false, nothing done. */
bool gopy_rt_host_start_backlog(void);

/* Interruptible waits (foreign threads only, e.g. the main thread so that
 * Ctrl-C works).  While set, a blocked operation of this thread wakes at
 * least every poll_ns (and on signals) and calls check(arg); if it returns
 * non-zero the operation is abandoned (nothing happened) and returns
 * GOPY_EINTR.  check runs without any runtime lock held.  NULL clears. */
void gopy_rt_set_interrupt(int (*check)(void *arg), void *arg, int64_t poll_ns);

/* ---- operations with status -------------------------------------------- */

/* As gopy_chan_send / gopy_chan_recv, returning GOPY_OK, GOPY_ECLOSED,
 * GOPY_EAGAIN (block false), GOPY_EINTR or GOPY_EDEADLK. */
int gopy_rt_chan_send(gopy_chan *c, const void *elem, bool block);
int gopy_rt_chan_recv(gopy_chan *c, void *elem, bool *ok, bool block);
/* As gopy_select; *chosen is the case index (-1: none ready, !block).
 * Returns GOPY_OK, GOPY_EINTR or GOPY_EDEADLK. */
int gopy_rt_select(gopy_case *cases, int n, bool block, int *chosen);
int gopy_rt_sleep(int64_t ns);
/* As gopy_netpoll_wait, for gopy_call_blocking: with block false it only
 * looks (GOPY_OK if fd is ready, else GOPY_EAGAIN) and never parks; a
 * foreign thread whose wait is interrupted leaves it (nothing else
 * changed) and gets GOPY_EINTR.  Also GOPY_ETIMEDOUT, GOPY_ECLOSED, or -1
 * with errno. */
int gopy_rt_netpoll_wait(int fd, int mode, int64_t deadline_ns, bool block);

/* Channels holding host references: release(elem, ctx) is called for each
 * element still buffered when the channel is freed (from whatever thread
 * drops the last reference).  Set once, before the channel is shared. */
void gopy_rt_chan_set_release(gopy_chan *c, void (*release)(void *elem, void *ctx),
                              void *ctx);
/* The channel's elem_size. */
size_t gopy_rt_chan_elem_size(gopy_chan *c);
/* Does it hold host references (a release callback was set)?  Such a
 * channel's elements are not raw C values. */
bool gopy_rt_chan_holds_refs(gopy_chan *c);
/* Does anyone but the caller hold a reference to c (C code that retained
 * its handle, say)?  "No" stays right until the caller retains c again
 * or hands its pointer to code that does. */
bool gopy_rt_chan_shared(gopy_chan *c);
/* Call visit on each value buffered in c, oldest first, in place, with
 * c's lock held: visit must not block, use c, or run code that might (a
 * garbage collector's traversal).  Values that parked senders offer are
 * not visited: they are still their senders'.  Stops at the first
 * non-zero result and returns it. */
int gopy_rt_chan_visit(gopy_chan *c, int (*visit)(void *elem, void *arg), void *arg);

/* ---- gopy_offload's helper threads ------------------------------------- */

/* At most n helper threads at once (n >= 1; default 64, or the
 * environment's GOPY_OFFLOAD_THREADS); helpers beyond a lowered cap leave
 * as they finish their calls.  Returns the cap before (n < 1: only
 * that). */
int gopy_rt_offload_set_max_threads(int n);
/* Helpers idle for ns (> 0; default 10 s) exit; helpers already idle keep
 * the timeout they started with.  Returns the timeout before (ns <= 0:
 * only that). */
int64_t gopy_rt_offload_set_idle_timeout(int64_t ns);

/* ---- sync with status (the gopy_mutex_* / gopy_waitgroup_* functions
 * abort the process on misuse, as Go panics; these return the error) ---- */

int gopy_rt_mutex_lock(gopy_mutex *m);     /* GOPY_OK or an abort reason */
int gopy_rt_mutex_unlock(gopy_mutex *m);   /* GOPY_OK or GOPY_ENOTLOCKED */
int gopy_rt_waitgroup_add(gopy_waitgroup *wg, int64_t delta);
int gopy_rt_waitgroup_wait(gopy_waitgroup *wg);
int64_t gopy_rt_waitgroup_count(gopy_waitgroup *wg);

/* RWMutex: lock / rlock return GOPY_OK or an abort reason (nothing held
 * then); unlock / runlock GOPY_OK or GOPY_ENOTLOCKED (nothing changed). */
int gopy_rt_rwmutex_lock(gopy_rwmutex *rw);
int gopy_rt_rwmutex_unlock(gopy_rwmutex *rw);
int gopy_rt_rwmutex_rlock(gopy_rwmutex *rw);
int gopy_rt_rwmutex_runlock(gopy_rwmutex *rw);

/* Once, in two steps, so that the caller runs f itself (the binding, with
 * the GIL).  begin: *run false means done already (or done meanwhile:
 * it waited); *run true means the caller must run f, then call end with
 * done true (also when f failed: Go counts a panicking f as done), or
 * with done false if it did not run f after all (the next caller will).
 * GOPY_OK, GOPY_EAGAIN (!block and another caller is running f), or an
 * abort reason. */
int gopy_rt_once_begin(gopy_once *o, bool block, bool *run);
void gopy_rt_once_end(gopy_once *o, bool done);
bool gopy_rt_once_done(gopy_once *o);

/* Cond with the locking left to the caller: make it with a locker whose
 * lock and unlock are NULL, then wait as gopy_cond_wait does: take a
 * ticket (holding the lock), unlock, wait for the ticket, lock again.
 * wait_ticket returns GOPY_OK once the ticket was signalled, GOPY_EAGAIN
 * (!block, not yet), or an abort reason: the ticket is then given up, and
 * a signal meant for it passes to the next waiter. */
uint32_t gopy_rt_cond_ticket(gopy_cond *c);
int gopy_rt_cond_wait_ticket(gopy_cond *c, uint32_t ticket, bool block);
/* Give up a ticket without waiting on it (the unlock failed, or the
 * caller fails after its wait succeeded): a signal that reached it, or
 * will, passes to the next waiter. */
void gopy_rt_cond_abandon_ticket(gopy_cond *c, uint32_t ticket);

/* Map with failing callbacks and caller-computed hashes: key_equal and
 * value_equal return 1, 0, or -1 to abandon the operation, which then
 * returns GOPY_ECALLBACK having changed nothing.  Otherwise as gopy_map_*
 * (results in the out-parameters; values handed back are retained). */
typedef struct {
    int (*key_equal)(const void *a, const void *b, void *ctx);
    int (*value_equal)(const void *a, const void *b, void *ctx);
    void (*retain)(void *p, void *ctx);
    void (*release)(void *p, void *ctx);
    void *ctx;
} gopy_rt_map_type;

gopy_map *gopy_rt_map_make(const gopy_rt_map_type *type);
int gopy_rt_map_load(gopy_map *m, uint64_t hash, const void *key, void **value, bool *loaded);
int gopy_rt_map_store(gopy_map *m, uint64_t hash, void *key, void *value);
int gopy_rt_map_load_or_store(gopy_map *m, uint64_t hash, void *key, void *value, void **actual,
                              bool *loaded);
/* value may be NULL (delete) */
int gopy_rt_map_load_and_delete(gopy_map *m, uint64_t hash, const void *key, void **value,
                                bool *loaded);
int gopy_rt_map_swap(gopy_map *m, uint64_t hash, void *key, void *value, void **previous,
                     bool *loaded);
int gopy_rt_map_compare_and_swap(gopy_map *m, uint64_t hash, void *key, const void *old,
                                 void *new_value, bool *swapped);
int gopy_rt_map_compare_and_delete(gopy_map *m, uint64_t hash, const void *key, const void *old,
                                   bool *deleted);
/* fn returns 1 to go on, 0 to stop, -1 to stop with GOPY_ECALLBACK. */
int gopy_rt_map_range(gopy_map *m, int (*fn)(void *key, void *value, void *arg), void *arg);
/* Call visit on every key and value in the map, in place: no snapshot,
 * no retain; visit must not block or use the map (a garbage collector's
 * traversal).  Stops at the first non-zero result and returns it. */
int gopy_rt_map_visit(gopy_map *m, int (*visit)(void *p, void *arg), void *arg);

/* ---- timers with channels (Go's time package) --------------------------
 *
 * A gopy_timer delivers the wall-clock time (ns since the epoch, int64_t)
 * on its channel, or calls fn(arg) in a new goroutine (after_func).
 * Go 1.23 semantics: once stop or reset returns, no stale value can be
 * received; the channel reports len 0 and cap 0.
 */
typedef struct gopy_timer gopy_timer;

/* period_ns > 0 makes a ticker (drops ticks for a slow reader). */
gopy_timer *gopy_rt_timer_new(int64_t d_ns, int64_t period_ns);
/* A timer without a channel that calls fire(arg) when it expires (Go's
 * AfterFunc).  fire runs on a scheduler stack: it must not block; it
 * typically starts a goroutine (gopy_go / gopy_rt_go_host).  Each reset
 * that re-arms a fired timer fires it again. */
gopy_timer *gopy_rt_timer_func(int64_t d_ns, void (*fire)(void *), void *arg);
/* The channel (borrowed; retain it to keep it beyond the timer), or NULL
 * for func timers. */
gopy_chan *gopy_rt_timer_chan(gopy_timer *t);
/* true if it stopped a pending timer. */
bool gopy_rt_timer_stop(gopy_timer *t);
/* Re-arm at d_ns (and, for tickers, period_ns > 0); true if it was
 * pending. */
bool gopy_rt_timer_reset(gopy_timer *t, int64_t d_ns, int64_t period_ns);
/* Stop and free (a func timer that has fired is freed after its call). */
void gopy_rt_timer_free(gopy_timer *t);

/* ---- context and errgroup beyond gopy.h ----------------------------------
 *
 * The runtime carries no host objects for these: a binding keeps causes
 * and failures itself (where its garbage collector can see them).
 */

/* Cancel ctx (GOPY_CTX_CANCELED); true if this call cancelled it, false if
 * it already was (then nothing changed).  claimed (or NULL) is called, on
 * this thread and with no runtime lock held, once this call has won ctx
 * and before anyone can see ctx or its subtree done: a binding stores its
 * cause there.  work: the wake-ups and child nodes ahead, roughly (the
 * receivers parked on ctx's done and its children), for a binding that
 * lets its own lock go across a long cancel. */
bool gopy_rt_context_cancel(gopy_context *ctx, void (*claimed)(void *arg, size_t work), void *arg);
/* The context whose cancel cancelled ctx -- ctx itself, or an ancestor
 * whose cancellation reached it -- or NULL while ctx is not cancelled.
 * Its cause is ctx's cause.  Borrowed: valid while ctx is held. */
gopy_context *gopy_rt_context_cause_origin(gopy_context *ctx);
/* Can ctx ever be cancelled (does it have a done channel)? */
bool gopy_rt_context_cancellable(gopy_context *ctx);
/* Go's AfterFunc for a host: once ctx is done (and seen done), fire(arg)
 * is called from the cancelling thread or goroutine, with no runtime lock
 * held; it must not block (it starts a goroutine).  release(arg) is
 * called once arg cannot be fired any more: after fire, after a
 * successful stop, at once if ctx can never be cancelled, or when the
 * handle is freed.  The handle is a context node: stop it with
 * gopy_rt_context_stop_after_func, drop it with gopy_context_release.
 * NULL (errno) on error; arg is then not released. */
gopy_context *gopy_rt_context_after_func(gopy_context *ctx, void (*fire)(void *arg),
                                         void (*release)(void *arg), void *arg);
bool gopy_rt_context_stop_after_func(gopy_context *af);
/* Context nodes alive now (not the background), for leak tests. */
int64_t gopy_rt_context_live(void);

/* The runtime half of Go's errgroup.Group (x/sync): a WaitGroup, a limit
 * (a channel of tokens, as in Go) and which failure came first. */
typedef struct gopy_errgroup gopy_errgroup;
gopy_errgroup *gopy_rt_errgroup_new(void);
/* Free a group with no active goroutines. */
void gopy_rt_errgroup_free(gopy_errgroup *g);
/* Take a slot for a new goroutine (blocking at the limit unless !block).
 * GOPY_OK with *slot set (pass it to done), GOPY_EAGAIN, an abort reason
 * (foreign threads) or GOPY_EREUSE (WaitGroup misuse). */
int gopy_rt_errgroup_acquire(gopy_errgroup *g, bool block, gopy_chan **slot);
/* A goroutine of the group failed: true if this is the group's first
 * failure (call before done). */
bool gopy_rt_errgroup_fail(gopy_errgroup *g);
/* A goroutine started with acquire ended: free its slot. */
void gopy_rt_errgroup_done(gopy_errgroup *g, gopy_chan *slot);
/* Wait for every goroutine.  GOPY_OK, GOPY_EAGAIN (!block and some are
 * active), an abort reason or GOPY_EREUSE. */
int gopy_rt_errgroup_wait(gopy_errgroup *g, bool block);
/* Goroutines holding or waiting for a slot now. */
int64_t gopy_rt_errgroup_active(gopy_errgroup *g);
/* At most n goroutines at once; n < 0: no limit.  GOPY_OK; GOPY_EAGAIN
 * (nothing changed) if n >= 0 while goroutines are active or waiting for
 * a slot, *active saying how many; -1 with errno ENOMEM. */
int gopy_rt_errgroup_set_limit(gopy_errgroup *g, int64_t n, int64_t *active);

/* ---- introspection ------------------------------------------------------ */

enum gopy_wait_reason {
    GOPY_WAIT_NONE,
    GOPY_WAIT_CHAN_SEND,
    GOPY_WAIT_CHAN_RECV,
    GOPY_WAIT_SELECT,
    GOPY_WAIT_SELECT_NO_CASES,
    GOPY_WAIT_SLEEP,
    GOPY_WAIT_MUTEX,
    GOPY_WAIT_RWMUTEX_R,
    GOPY_WAIT_RWMUTEX_W,
    GOPY_WAIT_WAITGROUP,
    GOPY_WAIT_COND,
    GOPY_WAIT_SEMA,
    GOPY_WAIT_LOCKED_THREAD,
    GOPY_WAIT_IO,
    GOPY_WAIT_OFFLOAD,
    GOPY_WAIT_NREASONS
};
const char *gopy_rt_wait_reason_string(int reason);

typedef struct {
    int64_t goid;
    const char *state; /* "runnable", "running", "waiting", "syscall" */
    int wait_reason;   /* enum gopy_wait_reason */
    const void *wait_obj;
    int64_t wait_ns;   /* how long it has waited (ns) */
    int64_t sleep_until_ns; /* for sleeps: monotonic deadline, else 0 */
    int64_t home_m;    /* host goroutines: home M id, else -1 */
    bool host;
    void *gstate;      /* host goroutines: their state */
} gopy_goroutine_info;

/* Call fn for each live goroutine (not foreign threads).  The runtime is
 * not stopped: the view is racy, meant for dumps. */
void gopy_rt_foreach_goroutine(void (*fn)(const gopy_goroutine_info *, void *),
                               void *arg);

/* Warn on stderr when a thread stays in one call longer than ns while
 * goroutines bound to it are runnable (0 turns it off; default 5 s, or
 * GOPY_STALL_WARNING seconds). */
void gopy_rt_set_stall_warning(int64_t ns);

/* Preemption of host goroutines (docs/decisions.md §18).  A host goroutine
 * that runs longer than the slice (default 10 ms, or GOPY_PREEMPT_SLICE
 * seconds; 0 turns preemption off) while others bound to its M are
 * runnable is asked to yield through the preempt hook. */
void gopy_rt_set_preempt_slice(int64_t ns);
int64_t gopy_rt_preempt_slice(void);
/* At a safe point: was the calling goroutine's M asked to preempt it?
 * Takes the request.  DUE: yield now (gopy_rt_preempt_yield); STALE: the
 * request was for an earlier stretch (the goroutine parked since, or
 * another runs): nothing to do; NONE: no request, or not a goroutine that
 * may be preempted (not a host goroutine, or locked to its thread). */
enum { GOPY_PREEMPT_NONE, GOPY_PREEMPT_STALE, GOPY_PREEMPT_DUE };
int gopy_rt_preempt_take(void);
/* Yield the calling host goroutine for preemption (counted in stats). */
void gopy_rt_preempt_yield(void);

typedef struct {
    int64_t goroutines, ms, ms_idle, ps, gomaxprocs, context_switches, steals,
        handoffs, host_recruits, timers, host_queue, preemptions;
    const char *stack_guard;
    int64_t stack_size_c, stack_size_host;
    int64_t netpoll_waiters; /* goroutines and threads waiting on descriptors */
    /* gopy_offload's helper threads: alive, running a call; calls waiting
     * for a helper. */
    int64_t offload_threads, offload_busy, offload_queued;
} gopy_rt_stats;
void gopy_rt_get_stats(gopy_rt_stats *s);
int gopy_rt_num_cpu(void);
int64_t gopy_rt_num_goroutine(void);

/* Stack sizes (bytes): the environment's GOPY_STACK_SIZE /
 * GOPY_PYTHON_STACK_SIZE, or the defaults. */
size_t gopy_rt_stack_size(bool host);

/* Deadlock check (Go's checkdead): true if no goroutine can run any more
 * (every thread of the runtime idle, nothing queued, no timer pending).
 * A foreign thread blocked in the runtime is deadlocked if this holds and
 * no other thread outside the runtime can act: the caller's to judge. */
bool gopy_rt_all_asleep(void);
/* The threads (pthread_self values) parked in the runtime right now and
 * not yet woken: up to cap of them in idents; returns how many there are.
 * A thread whose wait has completed is not among them even before it has
 * returned: it can act again. */
size_t gopy_rt_parked_threads(uintptr_t *idents, size_t cap);

/* The child side of fork(): forget every goroutine, M and P. */
void gopy_rt_after_fork_child(void);

#endif
