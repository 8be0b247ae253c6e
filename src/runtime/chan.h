/*
 * chan.h -- the channel structure, shared by chan.c, select.c and time.c.
 *
 * Invariants (Go's hchan):
 *  - at least one of recvq and sendq is empty;
 *  - a non-empty buffer means no receiver waits;
 *  - a non-full buffer means no sender waits;
 *  - a closed channel has no waiting senders and, once drained, no
 *    waiting receivers.
 * GOPY_CHECKS builds check the buffer ones where a waiter is taken
 * (chan.c); select's sudogs left in a queue after another case won are
 * why the first one admits exceptions, as in Go.
 * Everything but refs, closed and qcount is guarded by lock; those three
 * are also read without it (len, cap and the non-blocking fast paths).
 */
#ifndef GOPY_RT_CHAN_H
#define GOPY_RT_CHAN_H

#include "runtime.h"

/* Where the sudogs of a long wait queue lie, in the order they were
 * queued.  Closing walks the queue, and each sudog sits on its waiter's own
 * stack page: a cache and TLB miss apiece, one after another, since each
 * next link is in the sudog before.  From these the walk fetches the ones
 * ahead while it takes one (chan.c, hints_fetch_ahead).  Only hints: an
 * entry may name a sudog that has left the queue, its stack since reused or
 * unmapped (prefetching never faults), or have been overwritten; the
 * queue is the truth.  Made from HINTS_FROM waiters on, freed when the
 * queue empties or the channel is closed; kept with c->lock held.  The
 * ring has 2^k entries, more than twice the queue's length when it grew. */
struct wait_hints {
    uint32_t mask;  /* entries - 1 */
    uint32_t tail;  /* recorded so far: a sudog's hint is below it */
    sudog *ring[];  /* sudog n at ring[n & mask] */
};

struct gopy_chan {
    rt_mutex lock;
    _Atomic uint32_t refs;
    _Atomic uint32_t closed;
    _Atomic size_t qcount; /* values in buf */
    size_t dataqsiz;       /* capacity */
    size_t elemsize;
    size_t sendx, recvx;   /* ring indices */
    char *buf;
    waitq recvq, sendq;
    struct wait_hints *recv_hints, *send_hints; /* NULL while short */
    /* Releases a value still buffered when the channel is freed. */
    void (*release)(void *elem, void *ctx);
    void *release_ctx;
    /* A time.Timer/Ticker channel: one hidden slot; len and cap say 0. */
    bool timer_chan;
};

/* Send *ep with c->lock held, if it can go at once (to a waiting receiver
 * or into the buffer).  Returns true if sent; then *wake is the receiver
 * to ready after unlocking (or NULL). */
bool chan_send_locked(struct gopy_chan *c, const void *ep, G **wake);
/* Receive with c->lock held, if a value is there (or the channel is
 * closed).  Returns true if it completed; *ok as for chanrecv; *wake is
 * a sender to ready after unlocking (or NULL). */
bool chan_recv_locked(struct gopy_chan *c, void *ep, bool *ok, G **wake);
/* How many receivers are parked on c now (takes c->lock). */
uint32_t chan_recv_waiting(struct gopy_chan *c);
/* Drop the buffered values of a timer channel (c->lock held). */
void chan_drain_locked(struct gopy_chan *c);
/* Queue sg on q, c's recvq or sendq (c->lock held); sg zeroed but for its
 * g, elem, c and case_index. */
void chan_enqueue(struct gopy_chan *c, waitq *q, sudog *sg);

#endif
