/*
 * gqueue.h -- the runtime's intrusive FIFO queues, in the manner of
 * libdill's list.h: the link lives in the queued object, so queueing never
 * allocates and cannot fail, and each operation is a static inline of a
 * few stores.  The owner of a queue guards it (a lock, or being the only
 * thread that touches it); nothing here is atomic.  Counts that are read
 * without the owner's lock (runqsize, hostq_len, gfree_n) stay beside the
 * queue, kept by its owner.
 *
 * One shape, for the two things the runtime queues:
 *
 *   gqueue  Gs, linked through G.schedlink (one link: only the front is
 *           ever taken).  The global run queue, the unstarted host Gs
 *           (sched.hostq), an M's bound Gs (m->hostq), and the free-G
 *           lists (used as stacks, push_front / pop: the most recently
 *           freed G, whose stack is warm, is reused first).
 *   waitq   sudogs, linked through sudog.next / sudog.prev (two links: a
 *           waiter that gives up, or a select's losing case, leaves from
 *           the middle).  Every wait queue: channels, sync, netpoll.
 *
 * Operations on both: push (at the back), push_front, pop (the front, or
 * NULL), empty; gqueue_append (splice a whole queue at the back) and
 * gqueue_front (peek); waitq_remove (anywhere) and waitq_queued.
 *
 * Invariants:
 *  - head (first) is NULL exactly when tail (last) is NULL; a waitq's len
 *    counts its elements (0 exactly when first is NULL);
 *  - the tail's link to the next element is NULL; for a waitq, the first
 *    element's prev is NULL and, in between, x->next->prev == x;
 *  - an element is in at most one queue at a time, once;
 *  - a G's schedlink means something only while it is queued (it is not
 *    cleared by gqueue_pop: the caller owns the G then); a sudog that is
 *    in no queue has next == prev == NULL (waitq_pop and waitq_remove
 *    clear them), which waitq_queued and the checks rely on.
 * Built with GOPY_CHECKS (runtime.h's rt_assert) the cheap ones are
 * checked where an element comes or goes; release builds pay nothing.
 *
 * Included by runtime.h, after G and sudog: include runtime.h, not this.
 */
#ifndef GOPY_RT_GQUEUE_H
#define GOPY_RT_GQUEUE_H

#ifndef GOPY_RT_RUNTIME_H
#error "include runtime.h, which includes gqueue.h where G and sudog are known"
#endif

/* ---- gqueue: Gs through schedlink --------------------------------------- */

typedef struct {
    G *head, *tail;
} gqueue;

static inline bool gqueue_empty(const gqueue *q)
{
    return q->head == NULL;
}

/* The G pop would return (NULL if empty), left in place. */
static inline G *gqueue_front(const gqueue *q)
{
    return q->head;
}

static inline void gqueue_push(gqueue *q, G *g)
{
    rt_assert(g != q->tail && g != q->head, "G queued twice");
    g->schedlink = NULL;
    if (q->tail != NULL)
        q->tail->schedlink = g;
    else
        q->head = g;
    q->tail = g;
}

static inline void gqueue_push_front(gqueue *q, G *g)
{
    rt_assert(g != q->tail && g != q->head, "G queued twice");
    g->schedlink = q->head;
    if (q->head == NULL)
        q->tail = g;
    q->head = g;
}

static inline G *gqueue_pop(gqueue *q)
{
    G *g = q->head;
    if (g != NULL) {
        rt_assert(g->schedlink != NULL || g == q->tail, "G queue is corrupted");
        q->head = g->schedlink;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return g;
}

/* Move every G of from, in order, to the back of q; from is left empty. */
static inline void gqueue_append(gqueue *q, gqueue *from)
{
    if (from->head == NULL)
        return;
    if (q->tail != NULL)
        q->tail->schedlink = from->head;
    else
        q->head = from->head;
    q->tail = from->tail;
    from->head = from->tail = NULL;
}

/* ---- waitq: sudogs through next / prev ---------------------------------- */

typedef struct {
    sudog *first, *last;
    uint32_t len; /* sudogs queued */
} waitq;

static inline bool waitq_empty(const waitq *q)
{
    return q->first == NULL;
}

/* Is s in q?  (For a sudog that is in q or in no queue.) */
static inline bool waitq_queued(const waitq *q, const sudog *s)
{
    return s->prev != NULL || q->first == s;
}

static inline void waitq_push(waitq *q, sudog *s)
{
    /* Queued twice, the queue would become a cycle or lose entries. */
    rt_assert(s->next == NULL && s->prev == NULL && q->first != s, "sudog queued twice");
    s->next = NULL;
    s->prev = q->last;
    if (q->last != NULL)
        q->last->next = s;
    else
        q->first = s;
    q->last = s;
    q->len++;
}

/* At the front: a waiter that was woken and lost the race waits first
 * (sema.c's lifo). */
static inline void waitq_push_front(waitq *q, sudog *s)
{
    rt_assert(s->next == NULL && s->prev == NULL && q->first != s, "sudog queued twice");
    s->prev = NULL;
    s->next = q->first;
    if (q->first != NULL)
        q->first->prev = s;
    else
        q->last = s;
    q->first = s;
    q->len++;
}

/* Unlink and return the first sudog (NULL if none), whatever its G's
 * claim: waitq_claim_first (chan.c) is the pop that wakers use. */
static inline sudog *waitq_pop(waitq *q)
{
    sudog *s = q->first;
    if (s == NULL) {
        rt_assert(q->len == 0, "wait queue is corrupted: empty with a length");
        return NULL;
    }
    q->first = s->next;
    if (q->first != NULL)
        q->first->prev = NULL;
    else
        q->last = NULL;
    s->next = s->prev = NULL;
    q->len--;
    return s;
}

/* Unlink s if it is still queued (a waker may already have popped it
 * while skipping it). */
static inline void waitq_remove(waitq *q, sudog *s)
{
    rt_assert((s->prev == NULL || s->prev->next == s) && (s->next == NULL || s->next->prev == s),
              "wait queue is corrupted");
    if (s->prev != NULL)
        s->prev->next = s->next;
    else if (q->first == s)
        q->first = s->next;
    else
        return; /* not in the queue */
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        q->last = s->prev;
    s->next = s->prev = NULL;
    q->len--;
}

#endif
