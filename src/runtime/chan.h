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
/* Drop the buffered values of a timer channel (c->lock held). */
void chan_drain_locked(struct gopy_chan *c);

#endif
