/*
 * netpoll.c -- the netpoller, after Go's runtime/netpoll.go: a goroutine
 * waiting for a file descriptor to become readable or writable is parked
 * (it holds no M), and the scheduler asks the OS which descriptors are
 * ready when it has nothing else to do.
 *
 * Go's shape, and where it lives here:
 *  - A descriptor (Go's pollDesc) per descriptor number ever waited on,
 *    with a lock and two FIFO wait queues of sudogs (readers, writers).
 *    Go allows one reader and one writer per descriptor; here any number
 *    of goroutines and threads may wait on one descriptor in each mode.
 *  - netpoll(delay) asks the OS (netpoll_epoll.c, behind netpoll.h),
 *    claims the waiters of the ready descriptors and returns their Gs for
 *    the caller to ready.  The scheduler calls it (proc.c): findrunnable
 *    without blocking when it has found nothing queued; the last M to go
 *    idle (stopm) blocking, until the next timer, as the "poller", whom
 *    netpoll_break (an eventfd) interrupts when the M is wanted; sysmon
 *    without blocking when nobody has polled for 10 ms (a busy scheduler
 *    never gets to findrunnable's poll).
 *  - A deadline is a runtime timer per wait, armed once the waiter is
 *    parked; whoever first claims the waiter's G (readiness, deadline,
 *    netpoll_close, or a foreign thread giving up) decides the result.
 *
 * One-shot arming.  Each wait arms the descriptor's registration with
 * EPOLLONESHOT through EPOLL_CTL_MOD, falling back to EPOLL_CTL_ADD when
 * epoll says it has none (ENOENT; ADD first after netpoll_close dropped
 * it, as for a new socket), and a reported event disarms it; the
 * poller re-arms for the waiters it did not wake.  Why: the API names
 * descriptor numbers, and Python code may close a descriptor without
 * telling us (socket.close without gopy_netpoll_close): epoll then drops
 * the registration on its own, and the number may come back as a new
 * file.  A registration kept armed across waits (Go's edge-triggered,
 * registered-once scheme) would have to be trusted to still exist and to
 * watch the right file; re-arming on every wait never trusts it, and an
 * event then only ever concerns the waiters present when it was armed.
 * It costs one epoll_ctl per wait (0.3-0.4 us, docs/decisions.md).
 * Events of a registration that netpoll_close dropped carry an older
 * generation in their token and are ignored.
 *
 * Readiness wakes every waiter of the ready mode: one readiness may serve
 * only one of them (one datagram, one connection to accept), and the
 * others, retrying their operation, find it would block and wait again:
 * no wakeup meant for one waiter is ever lost to another.  A ready result
 * means "try again", as in Go; it may be spurious.
 *
 * Lock order: a descriptor's lock, then timers (timer_add), then
 * sched.lock (wakep, waking the timer sleeper).  No G is readied with a
 * descriptor's lock held.
 */
#define _GNU_SOURCE
#include "netpoll.h"

#include "runtime.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

typedef struct {
    rt_mutex lock; /* guards the rest */
    /* Bumped by netpoll_close: events of the registration armed before
     * carry the older generation in their token and are stale. */
    uint32_t gen;
    /* An arm succeeded since netpoll_close last dropped the registration:
     * re-arm with EPOLL_CTL_MOD first, else with ADD (a new socket's first
     * wait: one system call, not a failed MOD and an ADD). */
    bool registered;
    waitq rq, wq; /* waiting to read, to write (netpoll_waiter.sg) */
} poll_desc;

/* A wait in progress, on its waiter's stack until it returns. */
typedef struct {
    sudog sg;  /* first: the queues link &sg; sg.g is the waiter */
    poll_desc *pd;
    waitq *q;  /* &pd->rq or &pd->wq */
    int64_t deadline;
    /* A host goroutine, which runs only on its M, and that M polls for
     * it once out of work (runtime.h, netpoll_bound)? */
    bool bound;
    /* Written by whoever claimed sg.g, pd->lock held; read by the waiter
     * once it runs again. */
    int result;
    rt_timer timer; /* the deadline; deleted before the wait returns */
} netpoll_waiter;

/* Descriptors by number, in chunks made on first use and published by
 * CAS; never freed (the poller may look one up while a wait ends), and
 * forgotten, not freed, in a fork child. */
enum { PD_CHUNK = 1024, PD_NCHUNKS = 4096 }; /* numbers below 4,194,304 */
static _Atomic(poll_desc *) pd_chunks[PD_NCHUNKS];

/* The OS poller exists (release store after it was made; acquire loads).
 * Made on the first wait, under netpoll_init_lock; both reset in a fork
 * child. */
static _Atomic bool netpoll_inited;
static rt_mutex netpoll_init_lock = RT_MUTEX_INIT(LR_NETPOLL_INIT);
/* Waits in progress: from before a waiter parks until its wait returns
 * (so a woken waiter counts until it has run). */
static _Atomic int32_t netpoll_nwaiters;
/* Of those, the waits of C goroutines, locked goroutines and foreign
 * threads: nobody polls for them but an M that happens to (not counted in
 * an M's netpoll_bound). */
static _Atomic int32_t netpoll_nunbound;

static int netpoll_init(void)
{
    if (atomic_load_explicit(&netpoll_inited, memory_order_acquire))
        return 0;
    rt_init(); /* the deadline timers need Ps */
    int r = 0;
    rt_lock(&netpoll_init_lock);
    if (!atomic_load(&netpoll_inited)) {
        r = netpoll_os_init();
        if (r == 0)
            atomic_store_explicit(&netpoll_inited, true, memory_order_release);
    }
    rt_unlock(&netpoll_init_lock);
    return r;
}

static poll_desc *pd_find(int fd)
{
    poll_desc *chunk = atomic_load_explicit(&pd_chunks[fd / PD_CHUNK], memory_order_acquire);
    return chunk != NULL ? &chunk[fd % PD_CHUNK] : NULL;
}

/* fd's descriptor, made if need be; NULL with errno EBADF (a number
 * beyond the table) or ENOMEM. */
static poll_desc *pd_get(int fd)
{
    if (fd / PD_CHUNK >= PD_NCHUNKS) {
        errno = EBADF;
        return NULL;
    }
    poll_desc *pd = pd_find(fd);
    if (pd != NULL)
        return pd;
    poll_desc *chunk = calloc(PD_CHUNK, sizeof *chunk);
    if (chunk == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    for (int i = 0; i < PD_CHUNK; i++)
        rt_mutex_init(&chunk[i].lock, LR_NETPOLL_PD);
    poll_desc *none = NULL;
    if (!atomic_compare_exchange_strong_explicit(&pd_chunks[fd / PD_CHUNK], &none, chunk,
                                                 memory_order_acq_rel, memory_order_acquire))
        free(chunk); /* another thread made it first */
    return pd_find(fd);
}

static uint64_t pd_token(int fd, const poll_desc *pd)
{
    return (uint64_t)pd->gen << 32 | (uint32_t)fd;
}

/* Claim every waiter of q with result, pushing their Gs on *list
 * (pd->lock held).  Waiters already claimed (deadline, abandoned) are
 * dropped from the queue. */
static void claim_all(waitq *q, int result, G **list)
{
    sudog *s;
    while ((s = waitq_claim_first(q)) != NULL) {
        ((netpoll_waiter *)s)->result = result;
        s->g->schedlink = *list;
        *list = s->g;
    }
}

/* Arm fd's registration for the modes its waiters want (pd->lock held).
 * 0, or -1 with errno. */
static int pd_arm(poll_desc *pd, int fd)
{
    int modes = (!waitq_empty(&pd->rq) ? GOPY_POLL_READ : 0) |
                (!waitq_empty(&pd->wq) ? GOPY_POLL_WRITE : 0);
    if (netpoll_os_arm(fd, modes, pd_token(fd, pd), pd->registered) < 0)
        return -1;
    pd->registered = true;
    return 0;
}

/* fd cannot be watched any more (closed behind our back): claim its
 * waiters as ready onto *list (pd->lock held).  Each retries its
 * operation, which reports the error, rather than wait for an event that
 * cannot come. */
static void pd_fail(poll_desc *pd, G **list)
{
    claim_all(&pd->rq, GOPY_OK, list);
    claim_all(&pd->wq, GOPY_OK, list);
}

/* Is fd ready for mode now?  GOPY_OK, GOPY_EAGAIN, or -1 with errno. */
static int netpoll_check(int fd, int mode)
{
    struct pollfd p = {.fd = fd, .events = mode == GOPY_POLL_READ ? POLLIN : POLLOUT};
    int n;
    while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR) {
    }
    if (n < 0)
        return -1;
    if (p.revents & POLLNVAL) {
        errno = EBADF;
        return -1;
    }
    if (n == 0)
        return GOPY_EAGAIN;
    /* poll(2) calls a descriptor it cannot watch (a regular file) always
     * ready; epoll refuses it (EPERM), as a blocking wait would. */
    poll_desc *pd = pd_get(fd);
    if (pd == NULL)
        return -1;
    G *wake = NULL;
    rt_lock(&pd->lock);
    int r = pd_arm(pd, fd);
    int err = errno;
    if (r < 0)
        pd_fail(pd, &wake);
    rt_unlock(&pd->lock);
    goready_list(wake);
    errno = err;
    return r < 0 ? -1 : GOPY_OK;
}

static void deadline_fire(rt_timer *t, void *arg, uint64_t seq)
{
    (void)t;
    (void)seq;
    /* w stays valid until this returns: the waiter deletes the timer
     * before its wait returns, and timer_del waits for a firing. */
    netpoll_waiter *w = arg;
    G *g = w->sg.g;
    rt_lock(&w->pd->lock);
    bool won = g_claim(g);
    if (won) {
        waitq_remove(w->q, &w->sg);
        w->result = GOPY_ETIMEDOUT;
    }
    rt_unlock(&w->pd->lock);
    if (won)
        goready(g);
}

/* Runs once the waiter is off its stack (gopark): arm the deadline, then
 * let wakers at it.  Armed earlier, the timer could ready a G still
 * running; armed after the unlock, it could outlive the wait. */
static bool waiter_park(G *g, void *arg)
{
    (void)g;
    netpoll_waiter *w = arg;
    if (w->deadline >= 0)
        timer_add(&w->timer, w->deadline, 0);
    bool bound = w->bound; /* w may be gone once unlocked */
    rt_unlock(&w->pd->lock);
    /* Someone must poll for us.  A bound goroutine's M will, once it runs
     * out of work (host_find, then stopm); a C goroutine's may run others
     * for long, and a foreign thread has no M.  An idle P's M started now
     * becomes the poller as it finds nothing to do. */
    if (!bound && atomic_load(&sched.netpoll_sleeper) == NULL)
        wakep();
    return true;
}

int gopy_rt_netpoll_wait(int fd, int mode, int64_t deadline_ns, bool block)
{
    if (mode != GOPY_POLL_READ && mode != GOPY_POLL_WRITE) {
        errno = EINVAL;
        return -1;
    }
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (netpoll_init() < 0)
        return -1;
    if (!block || (deadline_ns >= 0 && deadline_ns <= rt_nanotime())) {
        int r = netpoll_check(fd, mode);
        if (r != GOPY_EAGAIN)
            return r;
        return block ? GOPY_ETIMEDOUT : GOPY_EAGAIN;
    }
    poll_desc *pd = pd_get(fd);
    if (pd == NULL)
        return -1;
    G *g = getg_or_foreign();
    g_prepare_wait(g);
    /* A locked goroutine's M idles in locked_find, never in the poller. */
    M *home = g->kind == G_HOST && g->lockedm == NULL ? g->m : NULL;
    netpoll_waiter w = {.sg = {.g = g},
                        .pd = pd,
                        .q = mode == GOPY_POLL_READ ? &pd->rq : &pd->wq,
                        .deadline = deadline_ns,
                        .bound = home != NULL,
                        .result = GOPY_OK};
    _Atomic int32_t *counted = home != NULL ? &home->netpoll_bound : &netpoll_nunbound;
    timer_init(&w.timer, deadline_fire, &w);
    rt_lock(&pd->lock);
    waitq_push(w.q, &w.sg);
    if (pd_arm(pd, fd) < 0) {
        int err = errno;
        waitq_remove(w.q, &w.sg);
        G *wake = NULL;
        pd_fail(pd, &wake);
        rt_unlock(&pd->lock);
        goready_list(wake);
        errno = err;
        return -1;
    }
    atomic_fetch_add(&netpoll_nwaiters, 1);
    atomic_fetch_add(counted, 1);
    int r = gopark(waiter_park, &w, GOPY_WAIT_IO, pd);
    if (r != 0) {
        /* A foreign thread gave up (Ctrl-C): nobody claimed it; leave. */
        rt_lock(&pd->lock);
        waitq_remove(w.q, &w.sg);
        rt_unlock(&pd->lock);
    }
    if (deadline_ns >= 0)
        timer_del(&w.timer);
    atomic_fetch_sub(counted, 1);
    atomic_fetch_sub(&netpoll_nwaiters, 1);
    return r != 0 ? r : w.result;
}

int gopy_netpoll_wait(int fd, int mode, int64_t deadline_ns)
{
    int r;
    do
        r = gopy_rt_netpoll_wait(fd, mode, deadline_ns, true);
    while (r == GOPY_EINTR);
    return r;
}

int gopy_netpoll_close(int fd)
{
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    if (!atomic_load_explicit(&netpoll_inited, memory_order_acquire))
        return 0; /* nobody ever waited */
    poll_desc *pd = fd / PD_CHUNK < PD_NCHUNKS ? pd_find(fd) : NULL;
    if (pd == NULL)
        return 0;
    G *wake = NULL;
    rt_lock(&pd->lock);
    pd->gen++;
    netpoll_os_disarm(fd);
    pd->registered = false;
    claim_all(&pd->rq, GOPY_ECLOSED, &wake);
    claim_all(&pd->wq, GOPY_ECLOSED, &wake);
    rt_unlock(&pd->lock);
    goready_list(wake);
    return 0;
}

/* ---- the scheduler's side (runtime.h) ----------------------------------- */

int32_t netpoll_waiters(void)
{
    return atomic_load(&netpoll_nwaiters);
}

int32_t netpoll_unbound_waiters(void)
{
    return atomic_load(&netpoll_nunbound);
}

void netpoll_break(void)
{
    netpoll_os_break();
}

enum { POLL_BATCH = 128 };

G *netpoll(int64_t delay)
{
    if (!atomic_load_explicit(&netpoll_inited, memory_order_acquire))
        return NULL;
    atomic_store(&sched.netpoll_last, rt_nanotime());
    netpoll_event evs[POLL_BATCH];
    int n = netpoll_os_wait(delay, evs, POLL_BATCH);
    G *list = NULL;
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].token;
        poll_desc *pd = pd_find(fd);
        if (pd == NULL)
            continue;
        rt_lock(&pd->lock);
        if (pd_token(fd, pd) == evs[i].token) {
            if (evs[i].modes & GOPY_POLL_READ)
                claim_all(&pd->rq, GOPY_OK, &list);
            if (evs[i].modes & GOPY_POLL_WRITE)
                claim_all(&pd->wq, GOPY_OK, &list);
            /* The event disarmed the registration: re-arm it for the
             * waiters of the other mode. */
            if ((!waitq_empty(&pd->rq) || !waitq_empty(&pd->wq)) && pd_arm(pd, fd) < 0)
                pd_fail(pd, &list);
        }
        rt_unlock(&pd->lock);
    }
    return list;
}

void netpoll_after_fork_child(void)
{
    /* The parent's waiters do not exist here; their descriptors' locks
     * may have been held by threads that are gone: forget it all. */
    netpoll_os_forget();
    for (int i = 0; i < PD_NCHUNKS; i++)
        atomic_store_explicit(&pd_chunks[i], NULL, memory_order_relaxed);
    atomic_store(&netpoll_nwaiters, 0);
    atomic_store(&netpoll_nunbound, 0);
    atomic_store(&netpoll_inited, false);
    rt_mutex_init(&netpoll_init_lock, LR_NETPOLL_INIT);
}
