/*
 * lockrank.c -- the lock-order check of GOPY_CHECKS builds (Go's
 * lockrank_on.go): each thread records the locks it holds, and taking one
 * out of the order of runtime.h throws, at the first acquisition in the
 * wrong order rather than at the rare interleaving that deadlocks.
 * Without GOPY_CHECKS this file is empty and rt_lock records nothing.
 */
#include "runtime.h"

#ifdef GOPY_CHECKS

/* A select holds one lock per channel: past this many, locks go
 * unrecorded (and unchecked) rather than overflow the record. */
enum { MAX_HELD = 64 };

static const char *const rank_names[LR_COUNT] = {
    [LR_NONE] = "unranked",
    [LR_NETPOLL_INIT] = "netpoll init",
    [LR_POOLS] = "pools",
    [LR_POOL] = "pool",
    [LR_CONTEXT] = "context",
    [LR_ERRGROUP] = "errgroup",
    [LR_COND] = "cond",
    [LR_MAP] = "map",
    [LR_SEMA] = "sema",
    [LR_CHAN] = "chan",
    [LR_NETPOLL_PD] = "netpoll pd",
    [LR_OFFLOAD] = "offload",
    [LR_INIT] = "init",
    [LR_SCHED] = "sched",
    [LR_TIMERS] = "timers",
    [LR_FOREIGN] = "foreign",
    [LR_HOSTQ] = "hostq",
    [LR_M_HOSTQ] = "m hostq",
    [LR_HOST_SLOTS] = "host slots",
    [LR_GFREE] = "gfree",
    [LR_EBR] = "ebr",
    [LR_STACK] = "stack",
};

static _Thread_local rt_mutex *held[MAX_HELD];
static _Thread_local int nheld, nlost;

static const char *rank_name(unsigned r)
{
    return r < LR_COUNT ? rank_names[r] : "bad rank";
}

/* May l be taken while h is held? */
static bool ordered(const rt_mutex *h, const rt_mutex *l)
{
    if (h->rank != l->rank)
        return h->rank < l->rank;
    switch (l->rank) {
    case LR_CHAN:
    case LR_TIMERS:
        return (uintptr_t)h < (uintptr_t)l;
    case LR_MAP:
        return true;
    default:
        return false;
    }
}

void rt_lockrank_acquired(rt_mutex *l)
{
    if (nheld < MAX_HELD)
        held[nheld++] = l;
    else
        nlost++;
}

void rt_lockrank_acquire(rt_mutex *l)
{
    if (l->rank == LR_NONE || l->rank >= LR_COUNT)
        rt_throw("lock %p has no rank", (void *)l);
    for (int i = 0; i < nheld; i++) {
        if (held[i] == l)
            rt_throw("lock ordering problem: %s lock %p taken again by its holder",
                     rank_name(l->rank), (void *)l);
        if (!ordered(held[i], l))
            rt_throw("lock ordering problem: %s lock %p taken while holding %s lock %p",
                     rank_name(l->rank), (void *)l, rank_name(held[i]->rank),
                     (void *)held[i]);
    }
    rt_lockrank_acquired(l);
}

void rt_lockrank_release(rt_mutex *l)
{
    /* Usually the last one taken; any order is allowed. */
    for (int i = nheld - 1; i >= 0; i--) {
        if (held[i] == l) {
            for (; i < nheld - 1; i++)
                held[i] = held[i + 1];
            nheld--;
            return;
        }
    }
    if (nlost > 0) {
        nlost--;
        return;
    }
    rt_throw("unlock of %s lock %p that this thread does not hold", rank_name(l->rank),
             (void *)l);
}

#endif
