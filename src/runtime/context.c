/*
 * context.c -- Go's context package: a tree of cancellable contexts with
 * deadlines, after Go's context.go.
 *
 * Nodes.  A gopy_context is one of
 *   CTX_ROOT        background: never cancelled, no deadline (one static
 *                   node; reference counting does nothing to it);
 *   CTX_CANCEL      Go's cancelCtx, and timerCtx when it has a deadline
 *                   timer;
 *   CTX_AFTER_FUNC  Go's afterFuncCtx: a child whose cancellation starts
 *                   a function instead of closing a channel.
 * Values (Go's valueCtx) and WithoutCancel live in the binding: they share
 * the handle of the nearest cancellable ancestor (or the root), since the
 * runtime only needs the cancellation tree.  Causes live in the binding
 * too (Python objects must stay visible to Python's cycle collector): the
 * runtime records, for each cancelled node, the node whose cancel reached
 * it (cause_origin), and the binding keeps the cause given to that one.
 *
 * The tree (Go's propagateCancel).  A child of a cancellable parent is
 * linked into the parent's children list and holds a reference to the
 * parent (child->parent); the list holds a reference to the child.  Either
 * the child is cancelled first -- it unlinks itself, dropping the list's
 * reference -- or the parent is -- it takes the whole list and cancels
 * every child.  So a cancelled child is never reachable from its parent,
 * and making and cancelling any number of children leaves nothing behind.
 * A CTX_CANCEL child that is never cancelled is unlinked once the list's
 * is the only reference left (gopy_context_release): nobody can cancel it, wait on
 * it or see its err any more, and it has no armed timer and no children
 * (each holds a reference), so it is dropped as Go's collector would drop
 * it.  An after-func child stays: its function must still run with its
 * parent's cancel.
 *
 * Invariants (lock: the node's own rt_mutex):
 *  - err is 0 until the node is cancelled, then CTX_CANCELED or
 *    CTX_DEADLINE_EXCEEDED for good.  It is written once, under lock,
 *    after cause_origin, with a release store, and read under lock by
 *    cancel and propagate_cancel.  Outside readers (gopy_context_err) see
 *    it only once done is closed: the close is the moment a context
 *    becomes cancelled for everyone, so err() != 0 if and only if done is
 *    closed, with no lock (Go gets the same by closing under its lock).
 *  - cause_origin is the node whose cancel cancelled this one: itself, or
 *    an ancestor on its parent chain (causes only flow down), which the
 *    parent references keep alive as long as this node.
 *  - done (CTX_CANCEL) is NULL until someone asks for it (lazily made, as
 *    in Go), then fixed; it is set under lock.  The one cancel that set
 *    err finishes the node (finished, set under lock) after the whole
 *    subtree has been given err and finished, children first: finishing
 *    closes done, or if nobody asked for it yet sets it to the shared,
 *    already closed channel.  done() asked before that makes an open
 *    channel (which finishing will close), after it the closed one.
 *  - So whoever sees a context done sees every context derived from it
 *    done too, and a cancel returns only once its context is finished.
 *    For that, a cancel that meets a node another cancel got to first (its
 *    own cancel, its deadline) waits until that one has finished it, as
 *    Go's cancel waits on the child's mutex.  The wait is short and cannot
 *    deadlock: a cancel never blocks, and the two subtrees are disjoint.
 *  - children / first_child..last_child are guarded by lock; once err is
 *    set the list is empty and stays empty (propagate_cancel checks err
 *    under the same lock before linking).
 *  - child->linked says whether the child is in its parent's list; it is
 *    guarded by the *parent's* lock, as are the child's sibling links while
 *    it is linked.  A cancel that takes a parent's list clears linked on
 *    each child under that lock; from then on the links belong to the
 *    cancelling thread (its work list).
 *  - parent, deadline and the after-func fields are fixed at creation.
 *  - timer (deadline nodes) is set under lock only while err is 0; an armed
 *    timer holds a reference to the node, dropped by the goroutine the
 *    timer starts, or by the cancel that stops the timer before it fires.
 *    The timer itself is freed with the node.
 *
 * Lock order: parent before child is never needed: every path holds one
 * node's lock at a time, and closes channels, readies goroutines, stops
 * timers, calls after-funcs and releases references with no node locked.
 *
 * Cancellation walks the subtree iteratively (a work list threaded through
 * the sibling links), so a deep chain of contexts cannot overflow a
 * goroutine's stack; destruction walks up the parent chain iteratively for
 * the same reason.
 */
#include "chan.h"

#include <errno.h>
#include <stdlib.h>

enum ctx_kind { CTX_ROOT, CTX_CANCEL, CTX_AFTER_FUNC };

struct gopy_context {
    _Atomic uint32_t refs;
    uint8_t kind; /* enum ctx_kind */
    bool linked;  /* in parent's children list (parent->lock) */
    rt_mutex lock;
    _Atomic int err;           /* 0, GOPY_CTX_CANCELED, GOPY_CTX_DEADLINE_EXCEEDED */
    struct gopy_context *cause_origin; /* see the invariants */
    _Atomic(gopy_chan *) done; /* lazily made; see the invariants */
    _Atomic bool finished;     /* cancelled and finished (set under lock) */
    struct gopy_context *parent;  /* cancellable ancestor we registered with */
    struct gopy_context *first_child, *last_child; /* (lock) */
    struct gopy_context *sib_prev, *sib_next;      /* (parent->lock) */
    int64_t deadline; /* wall-clock ns, 0: none (own or inherited) */
    /* CTX_CANCEL with a deadline of its own */
    gopy_timer *timer;          /* (lock) see the invariants */
    /* CTX_AFTER_FUNC: fire(arg) when cancelled, unless stop() won first.
     * arg is released once it cannot fire any more: by whoever wins
     * af_once, at creation under a parent that is never cancelled, or by
     * the destructor if none of these happened (af_arg_released). */
    void (*af_fire)(void *arg);
    void (*af_release)(void *arg);
    void *af_arg;
    _Atomic bool af_once;
    _Atomic bool af_arg_released;
};

static struct gopy_context root = {.kind = CTX_ROOT};

/* Live CTX_CANCEL and CTX_AFTER_FUNC nodes, for leak tests. */
static _Atomic int64_t live_nodes;

/* The done channel of contexts cancelled before anyone asked for it. */
static _Atomic(gopy_chan *) closed_chan;

/* ---- references ------------------------------------------------------------ */

void gopy_context_retain(gopy_context *c)
{
    if (c != NULL && c->kind != CTX_ROOT)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* Release an after-func's arg, once. */
static void af_release_arg(gopy_context *c)
{
    if (!atomic_exchange(&c->af_arg_released, true) && c->af_release != NULL)
        c->af_release(c->af_arg);
}

/* Take linked c out of its parent p's list (p->lock held). */
static void unlink_locked(gopy_context *p, gopy_context *c)
{
    if (c->sib_prev != NULL)
        c->sib_prev->sib_next = c->sib_next;
    else
        p->first_child = c->sib_next;
    if (c->sib_next != NULL)
        c->sib_next->sib_prev = c->sib_prev;
    else
        p->last_child = c->sib_prev;
    c->sib_prev = c->sib_next = NULL;
    c->linked = false;
}

/* Unlink c from its parent's list if the caller's reference and the
 * list's are the only ones (c is linked and nobody else holds it: see the
 * tree above); true if it did: the caller then drops both.  Under the
 * parent's lock that count is stable: any other holder would need a
 * reference to take one, and a cancel of the parent, which could take c
 * off the list, holds the same lock. */
static bool unlink_orphan(gopy_context *c)
{
    gopy_context *p = c->parent;
    bool orphan;
    rt_lock(&p->lock);
    orphan = c->linked && atomic_load_explicit(&c->refs, memory_order_acquire) == 2;
    if (orphan)
        unlink_locked(p, c);
    rt_unlock(&p->lock);
    return orphan;
}

/* Drop a reference to c.  The last frees c and then drops c's reference to
 * its parent; one that would leave only the parent list's unlinks c and
 * drops that too.  The count is only ever lowered from a value the caller
 * saw (compare-and-swap), so of two holders letting go at once the second
 * sees the 2 it must, and c is touched only while a reference is held.
 * Iterative: a long chain of contexts cannot overflow the stack. */
void gopy_context_release(gopy_context *c)
{
    while (c != NULL && c->kind != CTX_ROOT) {
        uint32_t drop = 1;
        uint32_t refs = atomic_load_explicit(&c->refs, memory_order_relaxed);
        for (;;) {
            if (drop == 1 && refs == 2 && c->kind == CTX_CANCEL && c->parent != NULL &&
                unlink_orphan(c))
                drop = 2; /* ours and the list's: no other can appear now */
            rt_assert(drop == 1 || refs == 2, "unlinked context shared");
            if (atomic_compare_exchange_weak_explicit(&c->refs, &refs, refs - drop,
                                                      memory_order_acq_rel,
                                                      memory_order_relaxed))
                break;
        }
        if (refs != drop)
            return;
        /* No armed timer holds a reference now; a firing may still be
         * returning from deadline_fire: gopy_rt_timer_free waits for it. */
        if (c->timer != NULL)
            gopy_rt_timer_free(c->timer);
        gopy_chan *d = atomic_load_explicit(&c->done, memory_order_relaxed);
        if (d != NULL)
            gopy_chan_release(d);
        if (c->kind == CTX_AFTER_FUNC)
            af_release_arg(c);
        gopy_context *parent = c->parent;
        free(c);
        atomic_fetch_sub_explicit(&live_nodes, 1, memory_order_relaxed);
        c = parent;
    }
}

/* NULL stands for the root (Background) in the API. */
static gopy_context *or_root(gopy_context *c)
{
    return c != NULL ? c : &root;
}

static gopy_chan *closed_chan_ref(void);

static gopy_context *ctx_new(enum ctx_kind kind)
{
    /* The shared closed channel exists before any node that may need it
     * (so finishing a cancel never fails for want of memory). */
    gopy_chan *closed = closed_chan_ref();
    if (closed == NULL)
        return NULL;
    gopy_chan_release(closed);
    gopy_context *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    atomic_init(&c->refs, 1);
    rt_mutex_init(&c->lock, LR_CONTEXT);
    c->kind = (uint8_t)kind;
    atomic_fetch_add_explicit(&live_nodes, 1, memory_order_relaxed);
    return c;
}

/* ---- the shared closed channel ------------------------------------------- */

/* A new reference to the shared closed channel, or NULL (out of memory:
 * only possible before the first node exists). */
static gopy_chan *closed_chan_ref(void)
{
    gopy_chan *c = atomic_load(&closed_chan);
    if (c == NULL) {
        gopy_chan *mine = gopy_chan_make(0, 0);
        if (mine == NULL)
            return NULL;
        gopy_chan_close(mine);
        if (atomic_compare_exchange_strong(&closed_chan, &c, mine))
            c = mine; /* the global keeps this first reference for good */
        else
            gopy_chan_release(mine);
    }
    gopy_chan_retain(c);
    return c;
}

/* ---- cancellation -------------------------------------------------------- */

/* Unlink c from its parent's list if it is still there (not taken by a
 * cancel of the parent).  Drops the list's reference; the caller holds
 * another. */
static void remove_child(gopy_context *c)
{
    gopy_context *p = c->parent;
    if (p == NULL)
        return;
    bool removed = false;
    rt_lock(&p->lock);
    if (c->linked) {
        unlink_locked(p, c);
        removed = true;
    }
    rt_unlock(&p->lock);
    if (removed)
        gopy_context_release(c);
}

/* Cancel one node: set err and cause_origin (NULL: c itself) and take its
 * children onto *work (with the list's references); after_cancel
 * finishes it.  false if it was already cancelled (nothing done). */
static bool cancel_node(gopy_context *c, int err, gopy_context *origin, gopy_context **work)
{
    rt_lock(&c->lock);
    if (atomic_load_explicit(&c->err, memory_order_relaxed) != 0) {
        rt_unlock(&c->lock);
        return false;
    }
    c->cause_origin = origin != NULL ? origin : c;
    atomic_store_explicit(&c->err, err, memory_order_release);
    for (gopy_context *ch = c->first_child, *next; ch != NULL; ch = next) {
        next = ch->sib_next;
        ch->linked = false;
        ch->sib_prev = NULL;
        ch->sib_next = *work;
        *work = ch;
    }
    c->first_child = c->last_child = NULL;
    rt_unlock(&c->lock);
    return true;
}

/* What follows cancelling a node, with no lock held: close its done (the
 * moment it is seen cancelled) and stop its deadline timer (unless this
 * is that timer's own goroutine). */
static void after_cancel(gopy_context *c, bool own_timer)
{
    if (c->kind == CTX_CANCEL) {
        rt_lock(&c->lock);
        gopy_chan *d = atomic_load_explicit(&c->done, memory_order_relaxed);
        if (d == NULL) /* nobody asked: later askers get the closed one */
            atomic_store_explicit(&c->done, closed_chan_ref(), memory_order_release);
        rt_unlock(&c->lock);
        if (d != NULL)
            gopy_chan_close(d);
        rt_lock(&c->lock);
        atomic_store_explicit(&c->finished, true, memory_order_release);
        rt_unlock(&c->lock);
    }
    if (c->kind == CTX_AFTER_FUNC)
        return; /* started by ctx_cancel at the end */
    /* c->timer was set, if at all, under c->lock before our cancel_node
     * took that lock. */
    if (c->timer != NULL && !own_timer && gopy_rt_timer_stop(c->timer))
        gopy_context_release(c); /* the armed timer's reference */
}

/* A cancelled after-func node: start its function unless stop() came
 * first, then let go of its arg.  Only once everything this cancel
 * reached is finished: the function sees its context done (Go starts it
 * after closing the parent's done). */
static void af_start(gopy_context *af)
{
    bool expected = false;
    if (atomic_compare_exchange_strong(&af->af_once, &expected, true))
        af->af_fire(af->af_arg);
    if (atomic_load(&af->af_once))
        af_release_arg(af);
}

/* Wait until the cancel that got to n first has finished it (see the
 * invariants). */
static void wait_finished(gopy_context *n)
{
    if (n->kind != CTX_CANCEL)
        return;
    while (!atomic_load_explicit(&n->finished, memory_order_acquire))
        rt_osyield();
}

/* What a cancel that won c has ahead of it, roughly: the receivers
 * parked on c's done and c's children (work, as cancel_node left it). */
static size_t cancel_work(gopy_context *c, const gopy_context *work)
{
    size_t n = 0;
    for (; work != NULL; work = work->sib_next)
        n++;
    gopy_chan *d = c->kind == CTX_CANCEL ? atomic_load(&c->done) : NULL;
    return d != NULL ? n + chan_recv_waiting(d) : n;
}

struct cancel_claim {
    void (*claimed)(void *arg, size_t work);
    void *arg;
};

/* Go's cancelCtx.cancel: cancel c and its subtree with err, the cause
 * being origin's (NULL: c's own); remove_from_parent: also unlink c from
 * its parent.  The caller holds a reference to c.  true if this call
 * cancelled c (false: it already was).  claim (or NULL): called once c
 * is this cancel's, before anything it reached is seen done.
 *
 * First every node of the subtree gets err (a walk down: a work list
 * threaded through sib_next), then the nodes are finished children first
 * (the nodes cancelled here, stacked through sib_prev, popped in
 * reverse), c last.  After-funcs start at the very end, when their
 * contexts are seen done, and their args are released then too (the
 * release may run host code, a Python __del__, that cancels again). */
static bool ctx_cancel(gopy_context *c, int err, gopy_context *origin, bool remove_from_parent,
                       bool own_timer, const struct cancel_claim *claim)
{
    if (c == NULL || c->kind == CTX_ROOT)
        return false;
    gopy_context *work = NULL, *closing = NULL, *fired = NULL;
    if (!cancel_node(c, err, origin, &work)) {
        wait_finished(c);
        return false;
    }
    if (claim != NULL)
        claim->claimed(claim->arg, cancel_work(c, work));
    /* The children carry their parent's err and cause (Go:
     * child.cancel(false, err, cause)). */
    origin = c->cause_origin;
    while (work != NULL) {
        gopy_context *n = work;
        work = n->sib_next;
        n->sib_next = NULL;
        if (cancel_node(n, err, origin, &work)) {
            n->sib_prev = closing; /* unlinked: its links are ours */
            closing = n;
        } else {
            wait_finished(n);
            gopy_context_release(n); /* the parent list's reference */
        }
    }
    while (closing != NULL) {
        gopy_context *n = closing;
        closing = n->sib_prev;
        n->sib_prev = NULL;
        after_cancel(n, false);
        if (n->kind == CTX_AFTER_FUNC) {
            n->sib_next = fired; /* keeps the list's reference */
            fired = n;
        } else {
            gopy_context_release(n); /* the parent list's reference */
        }
    }
    after_cancel(c, own_timer);
    if (remove_from_parent)
        remove_child(c);
    while (fired != NULL) {
        gopy_context *n = fired;
        fired = n->sib_next;
        n->sib_next = NULL;
        af_start(n);
        gopy_context_release(n);
    }
    if (c->kind == CTX_AFTER_FUNC)
        af_start(c);
    return true;
}

/* Go's propagateCancel: register c with its parent p (c is new and
 * unshared; the caller holds its reference). */
static void propagate_cancel(gopy_context *p, gopy_context *c)
{
    if (p->kind == CTX_ROOT)
        return; /* never cancelled: nothing to register with */
    gopy_context_retain(p);
    c->parent = p;
    rt_lock(&p->lock);
    int err = atomic_load_explicit(&p->err, memory_order_relaxed);
    if (err == 0) {
        gopy_context_retain(c); /* the list's reference */
        c->linked = true;
        c->sib_prev = p->last_child;
        c->sib_next = NULL;
        if (p->last_child != NULL)
            p->last_child->sib_next = c;
        else
            p->first_child = c;
        p->last_child = c;
        rt_unlock(&p->lock);
        return;
    }
    gopy_context *origin = p->cause_origin;
    rt_unlock(&p->lock);
    /* The parent is already cancelled: so is the child, at once, with the
     * parent's cause -- once the parent is seen done. */
    wait_finished(p);
    ctx_cancel(c, err, origin, false, false, NULL);
}

/* ---- deadlines ------------------------------------------------------------- */

/* The deadline timer's goroutine: holds the armed timer's reference. */
static void deadline_expired(void *arg)
{
    gopy_context *c = arg;
    ctx_cancel(c, GOPY_CTX_DEADLINE_EXCEEDED, NULL, true, true, NULL);
    gopy_context_release(c);
}

/* The timer's function, on a scheduler stack: it must not block, and must
 * not cancel here (cancelling may free nodes, and a node's timer cannot
 * be freed from inside its own firing), so it starts a goroutine, as Go's
 * time.AfterFunc does. */
static void deadline_fire(void *arg)
{
    if (gopy_go(deadline_expired, arg) == 0)
        return;
    /* No memory for a goroutine: cancel here, and keep the timer's
     * reference (the node leaks rather than being freed from its own
     * timer). */
    gopy_context *c = arg;
    ctx_cancel(c, GOPY_CTX_DEADLINE_EXCEEDED, NULL, true, true, NULL);
}

gopy_context *gopy_context_with_deadline(gopy_context *parent, int64_t deadline)
{
    parent = or_root(parent);
    if (deadline <= 0)
        deadline = 1; /* before now all the same; 0 would mean "none" */
    /* A parent's earlier deadline wins: then this is a plain WithCancel
     * (which reports the parent's deadline). */
    if (parent->deadline != 0 && parent->deadline < deadline)
        return gopy_context_with_cancel(parent);
    gopy_context *c = ctx_new(CTX_CANCEL);
    if (c == NULL)
        return NULL;
    c->deadline = deadline;
    propagate_cancel(parent, c);
    int64_t left = deadline - rt_walltime();
    if (left <= 0) {
        /* Already past: cancelled at once. */
        ctx_cancel(c, GOPY_CTX_DEADLINE_EXCEEDED, NULL, true, false, NULL);
        return c;
    }
    bool failed = false;
    rt_lock(&c->lock);
    if (atomic_load_explicit(&c->err, memory_order_relaxed) == 0) {
        gopy_context_retain(c); /* the armed timer's reference */
        c->timer = gopy_rt_timer_func(left, deadline_fire, c);
        if (c->timer == NULL) {
            atomic_fetch_sub(&c->refs, 1); /* not the last: we hold one */
            failed = true;
        }
    }
    rt_unlock(&c->lock);
    if (failed) {
        ctx_cancel(c, GOPY_CTX_CANCELED, NULL, true, false, NULL);
        gopy_context_release(c);
        errno = ENOMEM;
        return NULL;
    }
    return c;
}

/* ---- after_func ------------------------------------------------------------- */

gopy_context *gopy_rt_context_after_func(gopy_context *ctx, void (*fire)(void *arg),
                                         void (*release)(void *arg), void *arg)
{
    ctx = or_root(ctx);
    gopy_context *c = ctx_new(CTX_AFTER_FUNC);
    if (c == NULL)
        return NULL;
    c->af_fire = fire;
    c->af_release = release;
    c->af_arg = arg;
    if (ctx->kind == CTX_ROOT)
        af_release_arg(c); /* can never fire: hold nothing */
    else
        propagate_cancel(ctx, c); /* fires now if ctx is already done */
    return c;
}

bool gopy_rt_context_stop_after_func(gopy_context *af)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&af->af_once, &expected, true))
        return false; /* it ran, or a stop came first */
    af_release_arg(af);
    /* Out of the parent's list (Go: a.cancel(true, Canceled, nil)). */
    ctx_cancel(af, GOPY_CTX_CANCELED, NULL, true, false, NULL);
    return true;
}

/* ---- the rest of the internal API ----------------------------------------- */

bool gopy_rt_context_cancel(gopy_context *c, void (*claimed)(void *arg, size_t work), void *arg)
{
    const struct cancel_claim claim = {claimed, arg};
    return ctx_cancel(c, GOPY_CTX_CANCELED, NULL, true, false, claimed != NULL ? &claim : NULL);
}

/* err as the world sees it: only once done is closed (see the
 * invariants).  done first: a closed done implies err (stored before the
 * close) is visible. */
static int visible_err(gopy_context *c)
{
    if (c->kind == CTX_CANCEL) {
        gopy_chan *d = atomic_load_explicit(&c->done, memory_order_acquire);
        if (d == NULL || !atomic_load_explicit(&d->closed, memory_order_acquire))
            return 0; /* not cancelled, or not finished yet */
    }
    return atomic_load_explicit(&c->err, memory_order_acquire);
}

gopy_context *gopy_rt_context_cause_origin(gopy_context *c)
{
    if (c == NULL || visible_err(c) == 0)
        return NULL;
    return c->cause_origin;
}

bool gopy_rt_context_cancellable(gopy_context *c)
{
    return c->kind == CTX_CANCEL;
}

int64_t gopy_rt_context_live(void)
{
    return atomic_load(&live_nodes);
}

/* ---- the public API ------------------------------------------------------------- */

gopy_context *gopy_context_background(void)
{
    return &root;
}

gopy_context *gopy_context_with_cancel(gopy_context *parent)
{
    parent = or_root(parent);
    gopy_context *c = ctx_new(CTX_CANCEL);
    if (c == NULL)
        return NULL;
    c->deadline = parent->deadline;
    propagate_cancel(parent, c);
    return c;
}

gopy_context *gopy_context_with_timeout(gopy_context *parent, int64_t timeout_ns)
{
    int64_t now = rt_walltime();
    int64_t deadline;
    if (timeout_ns <= 0)
        deadline = 1; /* in the past */
    else
        deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    return gopy_context_with_deadline(parent, deadline);
}

void gopy_context_cancel(gopy_context *c)
{
    if (c == NULL)
        return;
    ctx_cancel(c, GOPY_CTX_CANCELED, NULL, true, false, NULL);
}

gopy_chan *gopy_context_done(gopy_context *c)
{
    if (c == NULL || c->kind != CTX_CANCEL)
        return NULL;
    gopy_chan *d = atomic_load_explicit(&c->done, memory_order_acquire);
    if (d != NULL)
        return d;
    rt_lock(&c->lock);
    d = atomic_load_explicit(&c->done, memory_order_relaxed);
    if (d == NULL) {
        /* Open until the cancel finishes this node (which closes it). */
        d = atomic_load_explicit(&c->finished, memory_order_relaxed) ? closed_chan_ref()
                                                                      : gopy_chan_make(0, 0);
        atomic_store_explicit(&c->done, d, memory_order_release);
    }
    rt_unlock(&c->lock);
    return d;
}

int gopy_context_err(gopy_context *c)
{
    if (c == NULL)
        return 0;
    return visible_err(c);
}

bool gopy_context_deadline(gopy_context *c, int64_t *deadline_unix_ns)
{
    c = or_root(c);
    if (deadline_unix_ns != NULL)
        *deadline_unix_ns = c->deadline;
    return c->deadline != 0;
}

/* The public after_func: fn(arg) in a new goroutine. */
typedef struct {
    void (*fn)(void *);
    void *arg;
} c_after_func;

static void c_after_func_fire(void *p)
{
    c_after_func *f = p;
    (void)gopy_go(f->fn, f->arg); /* no memory: the call is lost, as a go Go could not start */
}

gopy_after_func *gopy_context_after_func(gopy_context *ctx, void (*fn)(void *arg), void *arg)
{
    if (fn == NULL) {
        errno = EINVAL;
        return NULL;
    }
    c_after_func *f = malloc(sizeof *f);
    if (f == NULL)
        return NULL;
    f->fn = fn;
    f->arg = arg;
    gopy_context *c = gopy_rt_context_after_func(ctx, c_after_func_fire, free, f);
    if (c == NULL)
        free(f);
    return (gopy_after_func *)c;
}

bool gopy_after_func_stop(gopy_after_func *af)
{
    return gopy_rt_context_stop_after_func((gopy_context *)af);
}

void gopy_after_func_release(gopy_after_func *af)
{
    gopy_context_release((gopy_context *)af);
}
