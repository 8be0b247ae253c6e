/*
 * pool.c -- Go's sync.Pool: a cache of interchangeable items, per P.
 *
 * Each slot (one per P, rounded up to a power of two) has a private item
 * and a shared deque.  The owner puts into the private slot, else at the
 * head of its deque, and gets from the private slot, else from its head
 * (the most recent: cache-warm); when it runs out it steals from the tails
 * of other slots' deques (the oldest).  Then come the victims, then
 * new_item.
 *
 * Go pins the goroutine to its P and its deques are lock-free for the
 * owner; here callers without a P (Python goroutines, foreign threads)
 * use slots too (a per-thread choice), so several threads may share one:
 * the private slot is taken and filled with atomic exchange / CAS, and
 * each deque has a small lock, held for a few instructions (never across
 * a callback).
 *
 * Victims (Go 1.13): gopy_pool_cleanup -- Go runs it at each GC, the
 * binding at each full Python collection -- drops every pool's victims
 * and makes its current items the new victims, so an item survives one
 * cleanup: a pool used steadily keeps its items across cleanups, an idle
 * one empties in two.
 */
#include "sync.h"

#include <stdlib.h>
#include <string.h>

enum { POOL_MAX_SLOTS = 64, CACHE_LINE = 128 };

/* A ring of items: the owner's end is the head (push/pop), thieves take
 * from the tail. */
typedef struct {
    void **items;
    uint32_t cap;  /* 0 or a power of two */
    uint32_t tail; /* index of the oldest item */
    uint32_t n;
} deque;

typedef struct {
    _Atomic(void *) private_item; /* no lock: exchange / CAS */
    rt_mutex lock;                /* guards the rest */
    deque shared;
    void *victim_private;
    deque victim;
} pool_slot;

/* Slots padded so that two Ps never share a cache line. */
typedef union {
    pool_slot slot;
    char pad[(sizeof(pool_slot) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE];
} padded_slot;

struct gopy_pool {
    void *(*new_item)(void *ctx);
    void (*release)(void *item, void *ctx);
    void *ctx;
    uint32_t nslots; /* a power of two */
    padded_slot *slots;
    /* Bumped by each cleanup once it has moved the pool's items. */
    _Atomic uint64_t victim_gen;
    /* The victim_gen in which a get found no victim left anywhere (so
     * later gets skip the scan until the next cleanup).  A get that
     * scanned while a cleanup ran stores the older generation, which
     * does not match any more: no victim is ever hidden. */
    _Atomic uint64_t victims_empty_gen;
    struct gopy_pool *next, *prev; /* all pools (pools_lock) */
};

static rt_mutex pools_lock = RT_MUTEX_INIT(LR_POOLS);
static gopy_pool *pools;

/* ---- deques (slot lock held) ------------------------------------------ */

static bool deque_push_head(deque *d, void *item)
{
    if (d->n == d->cap) {
        uint32_t cap = d->cap != 0 ? d->cap * 2 : 8;
        void **items = malloc(cap * sizeof *items);
        if (items == NULL)
            return false;
        for (uint32_t k = 0; k < d->n; k++)
            items[k] = d->items[(d->tail + k) & (d->cap - 1)];
        free(d->items);
        d->items = items;
        d->cap = cap;
        d->tail = 0;
    }
    d->items[(d->tail + d->n) & (d->cap - 1)] = item;
    d->n++;
    return true;
}

static void *deque_pop_head(deque *d)
{
    if (d->n == 0)
        return NULL;
    d->n--;
    return d->items[(d->tail + d->n) & (d->cap - 1)];
}

static void *deque_pop_tail(deque *d)
{
    if (d->n == 0)
        return NULL;
    void *item = d->items[d->tail];
    d->tail = (d->tail + 1) & (d->cap - 1);
    d->n--;
    return item;
}

/* Release a detached deque's items and free it (no lock held). */
static void deque_drop(deque *d, void (*release)(void *, void *), void *ctx)
{
    for (uint32_t k = 0; k < d->n; k++)
        if (release != NULL)
            release(d->items[(d->tail + k) & (d->cap - 1)], ctx);
    free(d->items);
    memset(d, 0, sizeof *d);
}

/* ---- the caller's slot ----------------------------------------------------- */

static _Atomic uint32_t next_thread_slot;
static _Thread_local uint32_t thread_slot; /* 0: not chosen; else index + 1 */

static pool_slot *my_slot(gopy_pool *p, uint32_t *index)
{
    M *m = getm();
    uint32_t k;
    if (m != NULL && m->p != NULL) {
        /* A C goroutine: its P's slot.  It cannot change P before it
         * parks, and pool operations never park. */
        k = (uint32_t)m->p->id;
    } else {
        if (thread_slot == 0)
            thread_slot = atomic_fetch_add(&next_thread_slot, 1) % POOL_MAX_SLOTS + 1;
        k = thread_slot - 1;
    }
    *index = k & (p->nslots - 1);
    return &p->slots[*index].slot;
}

/* ---- API ----------------------------------------------------------------- */

gopy_pool *gopy_pool_make(void *(*new_item)(void *ctx), void (*release)(void *item, void *ctx),
                          void *ctx)
{
    gopy_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    uint32_t want = (uint32_t)gopy_rt_num_cpu();
    uint32_t procs = (uint32_t)atomic_load(&sched.gomaxprocs);
    if (procs > want)
        want = procs;
    p->nslots = 1;
    while (p->nslots < want && p->nslots < POOL_MAX_SLOTS)
        p->nslots *= 2;
    p->slots = aligned_alloc(CACHE_LINE, p->nslots * sizeof *p->slots);
    if (p->slots == NULL) {
        free(p);
        return NULL;
    }
    memset(p->slots, 0, p->nslots * sizeof *p->slots);
    for (uint32_t i = 0; i < p->nslots; i++)
        rt_mutex_init(&p->slots[i].slot.lock, LR_POOL);
    p->new_item = new_item;
    p->release = release;
    p->ctx = ctx;
    rt_lock(&pools_lock);
    p->next = pools;
    if (pools != NULL)
        pools->prev = p;
    pools = p;
    rt_unlock(&pools_lock);
    return p;
}

void gopy_pool_put(gopy_pool *p, void *item)
{
    if (item == NULL)
        return;
    uint32_t index;
    pool_slot *s = my_slot(p, &index);
    void *none = NULL;
    if (atomic_compare_exchange_strong(&s->private_item, &none, item))
        return;
    rt_lock(&s->lock);
    bool kept = deque_push_head(&s->shared, item);
    rt_unlock(&s->lock);
    if (!kept && p->release != NULL)
        p->release(item, p->ctx); /* out of memory: a pool may drop items */
}

/* The slow part of get: other slots' deques, then the victims. */
static void *get_slow(gopy_pool *p, uint32_t own)
{
    void *item = NULL;
    for (uint32_t k = 1; k < p->nslots && item == NULL; k++) {
        pool_slot *s = &p->slots[(own + k) & (p->nslots - 1)].slot;
        rt_lock(&s->lock);
        item = deque_pop_tail(&s->shared);
        rt_unlock(&s->lock);
    }
    uint64_t gen = atomic_load(&p->victim_gen);
    if (item != NULL || atomic_load(&p->victims_empty_gen) == gen)
        return item;
    for (uint32_t k = 0; k < p->nslots && item == NULL; k++) {
        pool_slot *s = &p->slots[(own + k) & (p->nslots - 1)].slot;
        rt_lock(&s->lock);
        if (k == 0 && s->victim_private != NULL) {
            item = s->victim_private;
            s->victim_private = NULL;
        } else {
            item = deque_pop_tail(&s->victim);
        }
        rt_unlock(&s->lock);
    }
    if (item == NULL)
        atomic_store(&p->victims_empty_gen, gen);
    return item;
}

void *gopy_pool_get(gopy_pool *p)
{
    uint32_t index;
    pool_slot *s = my_slot(p, &index);
    void *item = atomic_exchange(&s->private_item, NULL);
    if (item == NULL) {
        rt_lock(&s->lock);
        item = deque_pop_head(&s->shared);
        rt_unlock(&s->lock);
        if (item == NULL)
            item = get_slow(p, index);
    }
    if (item == NULL && p->new_item != NULL)
        item = p->new_item(p->ctx);
    return item;
}

/* Release every item of the pool's slots (no lock held). */
static void pool_drop_all(gopy_pool *p)
{
    for (uint32_t k = 0; k < p->nslots; k++) {
        pool_slot *s = &p->slots[k].slot;
        void *items[2] = {atomic_exchange(&s->private_item, NULL), s->victim_private};
        s->victim_private = NULL;
        for (int i = 0; i < 2; i++)
            if (items[i] != NULL && p->release != NULL)
                p->release(items[i], p->ctx);
        deque_drop(&s->shared, p->release, p->ctx);
        deque_drop(&s->victim, p->release, p->ctx);
    }
}

void gopy_pool_free(gopy_pool *p)
{
    if (p == NULL)
        return;
    rt_lock(&pools_lock);
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        pools = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    rt_unlock(&pools_lock);
    /* Nobody else may use it now: no locks needed. */
    pool_drop_all(p);
    free(p->slots);
    free(p);
}

/* What a cleanup drops, released once no lock is held (a release may run
 * arbitrary code: a Python finaliser that uses or makes pools). */
typedef struct {
    void (*release)(void *item, void *ctx);
    void *ctx;
    void *victim_private;
    deque victim;
} dropped;

void gopy_pool_cleanup(void)
{
    dropped *drop = NULL;
    size_t ndrop = 0, cap = 0;
    rt_lock(&pools_lock);
    for (gopy_pool *p = pools; p != NULL; p = p->next) {
        for (uint32_t k = 0; k < p->nslots; k++) {
            pool_slot *s = &p->slots[k].slot;
            if (ndrop == cap) {
                size_t c = cap != 0 ? cap * 2 : 64;
                dropped *d = realloc(drop, c * sizeof *d);
                if (d == NULL)
                    goto out; /* dropping is optional: stop here */
                drop = d;
                cap = c;
            }
            rt_lock(&s->lock);
            drop[ndrop++] = (dropped){p->release, p->ctx, s->victim_private, s->victim};
            s->victim_private = atomic_exchange(&s->private_item, NULL);
            s->victim = s->shared;
            memset(&s->shared, 0, sizeof s->shared);
            rt_unlock(&s->lock);
        }
        atomic_fetch_add(&p->victim_gen, 1);
    }
out:
    rt_unlock(&pools_lock);
    for (size_t k = 0; k < ndrop; k++) {
        if (drop[k].victim_private != NULL && drop[k].release != NULL)
            drop[k].release(drop[k].victim_private, drop[k].ctx);
        deque_drop(&drop[k].victim, drop[k].release, drop[k].ctx);
    }
    free(drop);
}
