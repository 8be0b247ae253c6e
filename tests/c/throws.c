/*
 * throws.c -- each checked invariant of a GOPY_CHECKS runtime fires: every
 * case corrupts the runtime's state through its internal headers, or
 * breaks the lock order, and must die with the check's message
 * (tests/test_runtime_c.py runs `throws CASE`, one process per case, and
 * checks the message and the abort).  Not a test_*.c program: it needs
 * the debug build (build/debug) and -DGOPY_CHECKS, for the layout of the
 * structures it reaches into.
 *
 *   throws --list   the cases
 *   throws CASE     run one; returning means the check did not fire
 */
#define _GNU_SOURCE
#include <gopy.h>

#include "chan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef GOPY_CHECKS
#error "throws.c tests the checks: build it and the runtime with -DGOPY_CHECKS"
#endif

/* A parked-looking G for a hand-made sudog: the waker's claim succeeds
 * on it, and the foreign kind keeps a ready from scheduling it. */
static G *fake_g(void)
{
    G *g = calloc(1, sizeof *g);
    g->kind = G_FOREIGN;
    atomic_store(&g->status, G_WAITING);
    return g;
}

static int elem;

/* A buffered channel holding one value, with a fake waiter on q. */
static struct gopy_chan *chan_with_waiter(bool on_recvq)
{
    struct gopy_chan *c = gopy_chan_make(sizeof(int), 2);
    int v = 1;
    gopy_chan_send(c, &v);
    static sudog sg;
    sg.g = fake_g();
    sg.elem = &elem;
    sg.c = c;
    waitq_push(on_recvq ? &c->recvq : &c->sendq, &sg);
    return c;
}

static void chan_overfull(void)
{
    struct gopy_chan *c = gopy_chan_make(sizeof(int), 1);
    atomic_store(&c->qcount, 2);
    int v = 0;
    gopy_rt_chan_send(c, &v, false);
}

static void chan_receiver_on_nonempty(void)
{
    int v = 2;
    gopy_rt_chan_send(chan_with_waiter(true), &v, false);
}

static void chan_sender_on_nonfull(void)
{
    int v;
    bool ok;
    gopy_rt_chan_recv(chan_with_waiter(false), &v, &ok, false);
}

static void sudog_queued_twice(void)
{
    waitq q = {0};
    sudog a = {.g = fake_g()}, b = {.g = fake_g()};
    waitq_push(&q, &a);
    waitq_push(&q, &b);
    waitq_push(&q, &a);
}

static void waitq_corrupted(void)
{
    waitq q = {0};
    sudog a = {.g = fake_g()}, b = {.g = fake_g()};
    waitq_push(&q, &a);
    waitq_push(&q, &b);
    b.prev = &b; /* a stray write */
    waitq_remove(&q, &b);
}

static void g_queued_twice(void)
{
    gqueue q = {0};
    G *a = fake_g(), *b = fake_g();
    gqueue_push(&q, a);
    gqueue_push(&q, b);
    gqueue_push(&q, b);
}

static void gqueue_corrupted(void)
{
    gqueue q = {0};
    G *a = fake_g(), *b = fake_g();
    gqueue_push(&q, a);
    gqueue_push(&q, b);
    a->schedlink = NULL; /* a stray write: b is lost */
    gqueue_pop(&q);
}

static void ready_running_g(void)
{
    G *g = fake_g();
    atomic_store(&g->status, G_RUNNING);
    goready(g);
}

/* Wake the goroutine parked on c's receive queue as nobody may: without
 * completing its sudog. */
static void spurious_wakeup(struct gopy_chan *c)
{
    G *g = NULL;
    while (g == NULL) {
        rt_lock(&c->lock);
        if (c->recvq.first != NULL)
            g = c->recvq.first->g; /* parked: its unlock released c */
        rt_unlock(&c->lock);
        usleep(1000);
    }
    if (g_claim(g))
        goready(g);
    for (;;)
        pause(); /* the goroutine dies */
}

static void recv_forever(void *arg)
{
    int v;
    gopy_chan_recv(arg, &v);
}

static void recv_spurious_wakeup(void)
{
    struct gopy_chan *c = gopy_chan_make(sizeof(int), 0);
    gopy_go(recv_forever, c);
    spurious_wakeup(c);
}

static struct gopy_chan *sel_chans[2];

static void select_forever(void *arg)
{
    (void)arg;
    int v;
    gopy_case cases[2] = {
        {.chan = sel_chans[0], .dir = GOPY_RECV, .elem = &v},
        {.chan = sel_chans[1], .dir = GOPY_RECV, .elem = &v},
    };
    gopy_select(cases, 2, true);
}

static void select_bad_wakeup(void)
{
    sel_chans[0] = gopy_chan_make(sizeof(int), 0);
    sel_chans[1] = gopy_chan_make(sizeof(int), 0);
    gopy_go(select_forever, NULL);
    spurious_wakeup(sel_chans[0]);
}

static void lock_order_sched_chan(void)
{
    struct gopy_chan *c = gopy_chan_make(0, 0);
    rt_lock(&sched.lock);
    rt_lock(&c->lock);
}

static void lock_order_chan_address(void)
{
    struct gopy_chan *a = gopy_chan_make(0, 0), *b = gopy_chan_make(0, 0);
    if ((uintptr_t)a < (uintptr_t)b) {
        struct gopy_chan *t = a;
        a = b;
        b = t;
    }
    /* Lower address first is the order (select's): allowed. */
    rt_lock(&b->lock);
    rt_lock(&a->lock);
    rt_unlock(&a->lock);
    rt_unlock(&b->lock);
    rt_lock(&a->lock);
    rt_lock(&b->lock);
}

static void lock_recursive(void)
{
    struct gopy_chan *c = gopy_chan_make(0, 0);
    rt_lock(&c->lock);
    rt_lock(&c->lock);
}

static void lock_unranked(void)
{
    rt_mutex l = {0};
    rt_lock(&l);
}

static void unlock_not_held(void)
{
    struct gopy_chan *c = gopy_chan_make(0, 0);
    rt_unlock(&c->lock);
}

/* A plain throw with goroutines about: GOPY_TRACEBACK=all lists them. */
static void throw_with_goroutines(void)
{
    struct gopy_chan *c = gopy_chan_make(sizeof(int), 0);
    gopy_go(recv_forever, c);
    gopy_go(recv_forever, c);
    for (;;) {
        rt_lock(&c->lock);
        bool both = c->recvq.first != NULL && c->recvq.first != c->recvq.last;
        rt_unlock(&c->lock);
        if (both)
            break;
        usleep(1000);
    }
    rt_throw("test throw (%d goroutines)", 2);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    {"chan_overfull", chan_overfull},
    {"chan_receiver_on_nonempty", chan_receiver_on_nonempty},
    {"chan_sender_on_nonfull", chan_sender_on_nonfull},
    {"sudog_queued_twice", sudog_queued_twice},
    {"waitq_corrupted", waitq_corrupted},
    {"g_queued_twice", g_queued_twice},
    {"gqueue_corrupted", gqueue_corrupted},
    {"ready_running_g", ready_running_g},
    {"recv_spurious_wakeup", recv_spurious_wakeup},
    {"select_bad_wakeup", select_bad_wakeup},
    {"lock_order_sched_chan", lock_order_sched_chan},
    {"lock_order_chan_address", lock_order_chan_address},
    {"lock_recursive", lock_recursive},
    {"lock_unranked", lock_unranked},
    {"unlock_not_held", unlock_not_held},
    {"throw_with_goroutines", throw_with_goroutines},
};

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            puts(cases[i].name);
        return 0;
    }
    for (size_t i = 0; argc == 2 && i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(argv[1], cases[i].name) == 0) {
            cases[i].fn();
            fprintf(stderr, "throws: %s returned: its check did not fire\n", argv[1]);
            return 1;
        }
    }
    fprintf(stderr, "usage: %s --list | CASE\n", argv[0]);
    return 2;
}
