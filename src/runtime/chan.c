/*
 * chan.c -- channels, after Go's chan.go: a lock, a ring buffer and FIFO
 * queues of waiting sudogs; a value is handed straight to a waiting
 * receiver (or taken straight from a waiting sender); close wakes every
 * waiter.  No G is readied while the lock is held.
 *
 * Memory model: the channel lock orders a send before the receive that
 * gets its value, and a close before a receive that returns because of
 * it; the k-th receive on a channel of capacity C happens before send
 * k+C completes (the receiver frees the slot under the lock).
 */
#include "chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- wait queues ---------------------------------------------------------- */

sudog *waitq_claim_first(waitq *q)
{
    sudog *s;
    while ((s = waitq_pop(q)) != NULL) {
        /* Lost to another case of the same select, or the waiter gave
         * up: drop the sudog and look at the next one. */
        if (g_claim(s->g))
            return s;
    }
    return NULL;
}

/* ---- where a long queue's sudogs lie (chan.h's wait_hints) -------------- */

/* Waiters from which a queue's sudogs are recorded: fewer cost close at
 * most a few dozen misses in a row.  Close fetches HINTS_AHEAD sudogs ahead
 * of the one it takes: about the misses a core keeps in flight. */
enum { HINTS_FROM = 64, HINTS_AHEAD = 16 };

static struct wait_hints **hints_of(struct gopy_chan *c, waitq *q)
{
    return q == &c->recvq ? &c->recv_hints : &c->send_hints;
}

static void hints_free(struct wait_hints **hp)
{
    free(*hp);
    *hp = NULL;
}

/* A ring of more than 2 len entries, those recorded in *hp kept at their
 * indices; false if there is no memory for it (then nothing is recorded). */
static bool hints_grow(struct wait_hints **hp, uint32_t len)
{
    uint32_t size = 256;
    while (size <= 2 * len)
        size *= 2;
    struct wait_hints *h = calloc(1, sizeof *h + size * sizeof h->ring[0]);
    if (h == NULL)
        return false;
    h->mask = size - 1;
    struct wait_hints *old = *hp;
    if (old != NULL) {
        uint32_t kept = old->mask + 1;
        for (uint32_t i = old->tail - (old->tail < kept ? old->tail : kept); i != old->tail; i++)
            h->ring[i & h->mask] = old->ring[i & old->mask];
        h->tail = old->tail;
        free(old);
    }
    *hp = h;
    return true;
}

void chan_enqueue(struct gopy_chan *c, waitq *q, sudog *sg)
{
    waitq_push(q, sg);
    struct wait_hints **hp = hints_of(c, q);
    if (q->len < HINTS_FROM) {
        if (q->len == 1 && *hp != NULL)
            hints_free(hp); /* the queue emptied since it was long */
        return;
    }
    if ((*hp == NULL || q->len > (*hp)->mask) && !hints_grow(hp, q->len))
        return;
    struct wait_hints *h = *hp;
    sg->hint = h->tail++;
    sg->hinted = true;
    h->ring[sg->hint & h->mask] = sg;
}

/* Close took sg off the front of the queue whose hints h are: prefetch the
 * sudog HINTS_AHEAD after it, or, for the first recorded one it takes
 * (*fetching false), every one up to there.  Each lies on its waiter's
 * page, beside its G and its elem. */
static void hints_fetch_ahead(const struct wait_hints *h, const sudog *sg, bool *fetching)
{
    if (!sg->hinted || h == NULL)
        return;
    uint32_t i = *fetching ? sg->hint + HINTS_AHEAD : sg->hint + 1;
    *fetching = true;
    /* Up to HINTS_AHEAD on, while recorded (below tail) and not yet
     * overwritten (within the ring's last mask entries). */
    for (; i <= sg->hint + HINTS_AHEAD && h->tail - i - 1 < h->mask; i++)
        __builtin_prefetch(h->ring[i & h->mask]);
}

/* ---- the locked cores ---------------------------------------------------- */

static inline char *slot(struct gopy_chan *c, size_t i)
{
    return c->buf + i * c->elemsize;
}

static inline void elem_copy(struct gopy_chan *c, void *dst, const void *src)
{
    if (c->elemsize != 0 && dst != NULL)
        memcpy(dst, src, c->elemsize);
}

/* chan.h's invariants that one look can check (c->lock held). */
static inline void chan_check(struct gopy_chan *c)
{
    rt_assert(atomic_load_explicit(&c->qcount, memory_order_relaxed) <= c->dataqsiz,
              "chan: more values buffered than the capacity");
}

bool chan_send_locked(struct gopy_chan *c, const void *ep, G **wake)
{
    *wake = NULL;
    chan_check(c);
    sudog *sg = placement_claim_receiver(&c->recvq);
    if (sg != NULL) {
        /* A receiver waits: the buffer is empty; hand over directly. */
        rt_assert(atomic_load_explicit(&c->qcount, memory_order_relaxed) == 0,
                  "chan: a receiver waits on a non-empty buffer");
        elem_copy(c, sg->elem, ep);
        sg->success = true;
        sg->g->param = sg;
        *wake = sg->g;
        return true;
    }
    size_t n = atomic_load_explicit(&c->qcount, memory_order_relaxed);
    if (n < c->dataqsiz) {
        elem_copy(c, slot(c, c->sendx), ep);
        if (++c->sendx == c->dataqsiz)
            c->sendx = 0;
        atomic_store_explicit(&c->qcount, n + 1, memory_order_relaxed);
        return true;
    }
    return false;
}

bool chan_recv_locked(struct gopy_chan *c, void *ep, bool *ok, G **wake)
{
    *wake = NULL;
    chan_check(c);
    size_t n = atomic_load_explicit(&c->qcount, memory_order_relaxed);
    if (atomic_load_explicit(&c->closed, memory_order_relaxed) && n == 0) {
        if (ep != NULL && c->elemsize != 0)
            memset(ep, 0, c->elemsize);
        *ok = false;
        return true;
    }
    sudog *sg = waitq_claim_first(&c->sendq);
    if (sg != NULL) {
        rt_assert(n == c->dataqsiz, "chan: a sender waits on a non-full buffer");
        if (c->dataqsiz == 0) {
            elem_copy(c, ep, sg->elem);
        } else {
            /* Buffer full and a sender waits: take the head, put the
             * sender's value at the tail (the same slot), keeping FIFO. */
            elem_copy(c, ep, slot(c, c->recvx));
            elem_copy(c, slot(c, c->recvx), sg->elem);
            if (++c->recvx == c->dataqsiz)
                c->recvx = 0;
            c->sendx = c->recvx;
        }
        sg->success = true;
        sg->g->param = sg;
        *wake = sg->g;
        *ok = true;
        return true;
    }
    if (n > 0) {
        elem_copy(c, ep, slot(c, c->recvx));
        if (++c->recvx == c->dataqsiz)
            c->recvx = 0;
        atomic_store_explicit(&c->qcount, n - 1, memory_order_relaxed);
        *ok = true;
        return true;
    }
    return false;
}

uint32_t chan_recv_waiting(struct gopy_chan *c)
{
    rt_lock(&c->lock);
    uint32_t n = c->recvq.len;
    rt_unlock(&c->lock);
    return n;
}

void chan_drain_locked(struct gopy_chan *c)
{
    atomic_store_explicit(&c->qcount, 0, memory_order_relaxed);
    c->sendx = c->recvx = 0;
}

static bool chan_park_unlock(G *g, void *arg)
{
    (void)g;
    rt_unlock(&((struct gopy_chan *)arg)->lock);
    return true;
}

/* Block forever (nil channel, select with no cases); a foreign thread can
 * still be interrupted. */
static int park_forever(uint8_t reason)
{
    rt_init();
    G *g = getg_or_foreign();
    g_prepare_wait(g);
    for (;;) {
        int r = gopark(NULL, NULL, reason, NULL);
        if (r != 0)
            return r;
    }
}

/* ---- send / receive -------------------------------------------------------- */

int chansend(struct gopy_chan *c, const void *ep, bool block)
{
    if (c == NULL) {
        if (!block)
            return GOPY_EAGAIN;
        return park_forever(GOPY_WAIT_CHAN_SEND);
    }
    /* Fast fail for a non-blocking send on a full buffered channel. */
    if (!block && c->dataqsiz > 0 && !atomic_load(&c->closed) &&
        atomic_load(&c->qcount) == c->dataqsiz)
        return GOPY_EAGAIN;

    rt_lock(&c->lock);
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
        rt_unlock(&c->lock);
        return GOPY_ECLOSED;
    }
    G *wake;
    if (chan_send_locked(c, ep, &wake)) {
        rt_unlock(&c->lock);
        if (wake != NULL)
            goready(wake);
        return GOPY_OK;
    }
    if (!block) {
        rt_unlock(&c->lock);
        return GOPY_EAGAIN;
    }
    rt_init();
    G *g = getg_or_foreign();
    g_prepare_wait(g);
    sudog sg = {.g = g, .elem = (void *)ep, .c = c};
    chan_enqueue(c, &c->sendq, &sg);
    int r = gopark(chan_park_unlock, c, GOPY_WAIT_CHAN_SEND, c);
    if (r != 0) {
        rt_lock(&c->lock);
        waitq_remove(&c->sendq, &sg);
        rt_unlock(&c->lock);
        return r;
    }
    /* Woken by anyone but the waker that completed our sudog (Go). */
    rt_assert(g->param == &sg, "G waiting list is corrupted");
    return sg.success ? GOPY_OK : GOPY_ECLOSED;
}

int chanrecv(struct gopy_chan *c, void *ep, bool *ok, bool block)
{
    *ok = false;
    if (c == NULL) {
        if (!block)
            return GOPY_EAGAIN;
        return park_forever(GOPY_WAIT_CHAN_RECV);
    }
    /* Fast fail for a non-blocking receive on an empty open buffered
     * channel (Go's empty() + closed re-check). */
    if (!block && c->dataqsiz > 0 && atomic_load(&c->qcount) == 0 &&
        !atomic_load(&c->closed)) {
        return GOPY_EAGAIN;
    }

    rt_lock(&c->lock);
    G *wake;
    if (chan_recv_locked(c, ep, ok, &wake)) {
        rt_unlock(&c->lock);
        if (wake != NULL)
            goready_sender(wake);
        return GOPY_OK;
    }
    if (!block) {
        rt_unlock(&c->lock);
        return GOPY_EAGAIN;
    }
    rt_init();
    G *g = getg_or_foreign();
    g_prepare_wait(g);
    sudog sg = {.g = g, .elem = ep, .c = c};
    chan_enqueue(c, &c->recvq, &sg);
    int r = gopark(chan_park_unlock, c, GOPY_WAIT_CHAN_RECV, c);
    if (r != 0) {
        rt_lock(&c->lock);
        waitq_remove(&c->recvq, &sg);
        rt_unlock(&c->lock);
        return r;
    }
    rt_assert(g->param == &sg, "G waiting list is corrupted");
    *ok = sg.success;
    return GOPY_OK;
}

/* ---- the public API --------------------------------------------------------- */

gopy_chan *gopy_chan_make(size_t elem_size, size_t cap)
{
    if (elem_size > (1u << 16) || (elem_size != 0 && cap > SIZE_MAX / 2 / elem_size)) {
        errno = EINVAL;
        return NULL;
    }
    struct gopy_chan *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (cap > 0 && elem_size > 0) {
        c->buf = calloc(cap, elem_size);
        if (c->buf == NULL) {
            free(c);
            return NULL;
        }
    }
    rt_mutex_init(&c->lock, LR_CHAN);
    c->elemsize = elem_size;
    c->dataqsiz = cap;
    atomic_store(&c->refs, 1);
    return c;
}

void gopy_chan_retain(gopy_chan *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

/* Call visit on each buffered value, oldest first (c->lock held, or no
 * other holder left); stops at the first non-zero result and returns it. */
static int visit_buffered(struct gopy_chan *c, int (*visit)(void *elem, void *arg), void *arg)
{
    size_t n = atomic_load_explicit(&c->qcount, memory_order_relaxed);
    int r = 0;
    for (size_t i = 0, x = c->recvx; i < n && r == 0; i++) {
        r = visit(slot(c, x), arg);
        if (++x == c->dataqsiz)
            x = 0;
    }
    return r;
}

static int release_one(void *elem, void *arg)
{
    struct gopy_chan *c = arg;
    c->release(elem, c->release_ctx);
    return 0;
}

void gopy_chan_release(gopy_chan *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* The last reference: nobody else can reach c, so no lock, and the
     * release callback may run any code. */
    if (c->release != NULL)
        visit_buffered(c, release_one, c);
    hints_free(&c->recv_hints);
    hints_free(&c->send_hints);
    free(c->buf);
    free(c);
}

void gopy_rt_chan_set_release(gopy_chan *c, void (*release)(void *elem, void *ctx),
                              void *ctx)
{
    c->release = release;
    c->release_ctx = ctx;
}

size_t gopy_rt_chan_elem_size(gopy_chan *c)
{
    return c->elemsize;
}

bool gopy_rt_chan_holds_refs(gopy_chan *c)
{
    return c->release != NULL;
}

bool gopy_rt_chan_shared(gopy_chan *c)
{
    return atomic_load_explicit(&c->refs, memory_order_acquire) > 1;
}

int gopy_rt_chan_visit(gopy_chan *c, int (*visit)(void *elem, void *arg), void *arg)
{
    /* Only the buffer: a value a parked sender offers is still in its
     * sender's hands (on its stack, in its sudog) until a receiver takes
     * it; it is the sender's, not the channel's. */
    rt_lock(&c->lock);
    int r = visit_buffered(c, visit, arg);
    rt_unlock(&c->lock);
    return r;
}

int gopy_rt_chan_send(gopy_chan *c, const void *elem, bool block)
{
    return chansend(c, elem, block);
}

int gopy_rt_chan_recv(gopy_chan *c, void *elem, bool *ok, bool block)
{
    return chanrecv(c, elem, ok, block);
}

int gopy_chan_send(gopy_chan *c, const void *elem)
{
    int r;
    do
        r = chansend(c, elem, true);
    while (r == GOPY_EINTR);
    return r == GOPY_OK ? GOPY_OK : GOPY_ECLOSED;
}

bool gopy_chan_recv(gopy_chan *c, void *elem)
{
    bool ok;
    int r;
    do
        r = chanrecv(c, elem, &ok, true);
    while (r == GOPY_EINTR);
    return r == GOPY_OK && ok;
}

int gopy_chan_close(gopy_chan *c)
{
    if (c == NULL)
        return GOPY_ECLOSED; /* Go: close of nil channel panics */
    rt_lock(&c->lock);
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
        rt_unlock(&c->lock);
        return GOPY_ECLOSED;
    }
    atomic_store(&c->closed, 1);
    /* Collect waiters, a batch at a time, and wake each batch after
     * unlocking (no new waiter can come: the channel is closed; the
     * reference taken here keeps it while woken waiters may drop theirs
     * and the caller's, if borrowed, with them).  Each
     * waiter's G sits on its own stack's page, out of the caches and the
     * TLB when many were parked: woken while a batch's Gs are still there
     * from collecting them, not after the whole queue (a list through
     * 100,000 Gs missed once per G more).  Small, as it lies on the
     * closing goroutine's stack. */
    enum { CLOSE_BATCH = 32 };
    G *batch[CLOSE_BATCH];
    gopy_chan_retain(c);
    bool fetching = false;
    for (;;) {
        int n = 0;
        sudog *sg;
        while (n < CLOSE_BATCH && (sg = waitq_claim_first(&c->recvq)) != NULL) {
            hints_fetch_ahead(c->recv_hints, sg, &fetching);
            if (sg->elem != NULL && c->elemsize != 0)
                memset(sg->elem, 0, c->elemsize);
            sg->success = false;
            sg->g->param = sg;
            batch[n++] = sg->g;
        }
        while (n < CLOSE_BATCH && (sg = waitq_claim_first(&c->sendq)) != NULL) {
            hints_fetch_ahead(c->send_hints, sg, &fetching);
            sg->success = false;
            sg->g->param = sg;
            batch[n++] = sg->g;
        }
        if (n == 0) {
            /* Closed, nobody queues on c again. */
            hints_free(&c->recv_hints);
            hints_free(&c->send_hints);
            rt_unlock(&c->lock);
            gopy_chan_release(c);
            return GOPY_OK;
        }
        rt_unlock(&c->lock);
        for (int i = 0; i < n; i++)
            goready(batch[i]);
        rt_lock(&c->lock);
    }
}

size_t gopy_chan_len(gopy_chan *c)
{
    if (c == NULL || c->timer_chan)
        return 0;
    return atomic_load_explicit(&c->qcount, memory_order_relaxed);
}

size_t gopy_chan_cap(gopy_chan *c)
{
    if (c == NULL || c->timer_chan)
        return 0;
    return c->dataqsiz;
}
