/*
 * time.c -- Go's time.Timer, time.Ticker and time.AfterFunc on the
 * runtime's timers.
 *
 * A channel timer owns a channel with one hidden slot (len and cap report
 * 0, as in Go 1.23).  Firing does a non-blocking send of the wall-clock
 * time: to a waiting receiver, into the empty slot, or (ticker, slow
 * reader) nowhere.  stop and reset bump the timer's seq and empty the
 * slot under the channel lock, and a firing checks seq under that same
 * lock, so once stop or reset returns no stale value can be received.
 */
#include "chan.h"

#include <errno.h>
#include <stdlib.h>

struct gopy_timer {
    rt_timer t;
    gopy_chan *c; /* NULL for func timers */
    void (*fire)(void *);
    void *arg;
};

static void fire_send_time(rt_timer *t, void *arg, uint64_t seq)
{
    struct gopy_timer *tm = arg;
    gopy_chan *c = tm->c;
    int64_t now = rt_walltime();
    G *wake = NULL;
    rt_lock(&c->lock);
    if (atomic_load(&t->seq) == seq)
        chan_send_locked(c, &now, &wake); /* full: drop the tick */
    rt_unlock(&c->lock);
    if (wake != NULL)
        goready(wake);
}

static void fire_func(rt_timer *t, void *arg, uint64_t seq)
{
    (void)t;
    (void)seq;
    struct gopy_timer *tm = arg;
    tm->fire(tm->arg);
}

static int64_t deadline(int64_t d_ns)
{
    int64_t now = rt_nanotime();
    if (d_ns < 0)
        d_ns = 0;
    return d_ns > INT64_MAX - now ? INT64_MAX : now + d_ns;
}

gopy_timer *gopy_rt_timer_new(int64_t d_ns, int64_t period_ns)
{
    rt_init();
    struct gopy_timer *tm = calloc(1, sizeof *tm);
    if (tm == NULL)
        return NULL;
    tm->c = gopy_chan_make(sizeof(int64_t), 1);
    if (tm->c == NULL) {
        free(tm);
        return NULL;
    }
    tm->c->timer_chan = true;
    timer_init(&tm->t, fire_send_time, tm);
    timer_add(&tm->t, deadline(d_ns), period_ns > 0 ? period_ns : 0);
    return tm;
}

gopy_timer *gopy_rt_timer_func(int64_t d_ns, void (*fire)(void *), void *arg)
{
    rt_init();
    if (fire == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct gopy_timer *tm = calloc(1, sizeof *tm);
    if (tm == NULL)
        return NULL;
    tm->fire = fire;
    tm->arg = arg;
    timer_init(&tm->t, fire_func, tm);
    timer_add(&tm->t, deadline(d_ns), 0);
    return tm;
}

gopy_chan *gopy_rt_timer_chan(gopy_timer *tm)
{
    return tm->c;
}

/* Invalidate firings in flight and drop an undelivered value; true if
 * there was one. */
static bool timer_invalidate(struct gopy_timer *tm)
{
    if (tm->c == NULL) {
        atomic_fetch_add(&tm->t.seq, 1);
        return false;
    }
    rt_lock(&tm->c->lock);
    atomic_fetch_add(&tm->t.seq, 1);
    bool dropped = atomic_load_explicit(&tm->c->qcount, memory_order_relaxed) != 0;
    chan_drain_locked(tm->c);
    rt_unlock(&tm->c->lock);
    return dropped;
}

/* Disarm, then drop what a firing left undelivered.  In that order:
 * timer_del waits for a firing in flight, so the drop sees its value.
 * As in Go 1.23, a value nobody received means the timer had not fired
 * as far as the program can tell: the result is true then too. */
static bool timer_disarm(struct gopy_timer *tm)
{
    bool pending = timer_del(&tm->t);
    if (timer_invalidate(tm))
        pending = true;
    return pending;
}

bool gopy_rt_timer_stop(gopy_timer *tm)
{
    return timer_disarm(tm);
}

bool gopy_rt_timer_reset(gopy_timer *tm, int64_t d_ns, int64_t period_ns)
{
    bool pending = timer_disarm(tm);
    timer_add(&tm->t, deadline(d_ns), period_ns > 0 ? period_ns : tm->t.period);
    return pending;
}

void gopy_rt_timer_free(gopy_timer *tm)
{
    if (tm == NULL)
        return;
    timer_invalidate(tm);
    timer_del(&tm->t);
    if (tm->c != NULL)
        gopy_chan_release(tm->c);
    free(tm);
}
