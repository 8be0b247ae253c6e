/*
 * ebr.c -- epoch-based reclamation (see ebr.h).
 *
 * Each thread that ever reads has a record in a push-only global list;
 * a thread that exits gives its record back for reuse.  A record's state
 * is 0 when idle, else (epoch << 1) | 1: the global epoch read when its
 * outermost section began.  All of it is seq_cst: a reader's announcement
 * is ordered before its first read of shared nodes, and a retirer's
 * unlink before its scan of the records.
 *
 * Why two epochs: a node retired in epoch e was unlinked before the
 * global epoch moved to e+1.  A section that began in e+1 or later cannot
 * reach it; a section that began in e (or earlier) keeps the epoch from
 * moving past e+1.  So at e+2 nobody can hold it.
 */
#include "ebr.h"
#include "runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct ebr_rec {
    _Atomic uint64_t state; /* 0 idle, else (epoch << 1) | 1 */
    uint32_t nest;          /* the owning thread's alone */
    _Atomic bool used;      /* owned by a live thread */
    ebr_rec *next;          /* immutable once published */
};

static _Atomic uint64_t global_epoch = 1;
static _Atomic(ebr_rec *) records;
static _Thread_local ebr_rec *tls_rec;
static pthread_key_t rec_key;
static pthread_once_t rec_key_once = PTHREAD_ONCE_INIT;

static void rec_release(void *p)
{
    ebr_rec *rec = p;
    /* A thread exits outside any section: the record is idle. */
    atomic_store(&rec->used, false);
}

static void rec_key_init(void)
{
    if (pthread_key_create(&rec_key, rec_release) != 0)
        rt_throw("ebr: pthread_key_create failed");
}

static ebr_rec *rec_register(void)
{
    pthread_once(&rec_key_once, rec_key_init);
    ebr_rec *rec;
    for (rec = atomic_load(&records); rec != NULL; rec = rec->next) {
        bool free_rec = false;
        if (!atomic_load(&rec->used) && atomic_compare_exchange_strong(&rec->used, &free_rec, true))
            break;
    }
    if (rec == NULL) {
        rec = calloc(1, sizeof *rec);
        if (rec == NULL)
            rt_throw("out of memory");
        atomic_init(&rec->used, true);
        ebr_rec *head = atomic_load(&records);
        do
            rec->next = head;
        while (!atomic_compare_exchange_weak(&records, &head, rec));
    }
    rec->nest = 0;
    pthread_setspecific(rec_key, rec);
    tls_rec = rec;
    return rec;
}

ebr_rec *ebr_enter(void)
{
    ebr_rec *rec = tls_rec;
    if (rec == NULL)
        rec = rec_register();
    if (rec->nest++ == 0)
        atomic_store(&rec->state, (atomic_load(&global_epoch) << 1) | 1);
    return rec;
}

void ebr_exit(ebr_rec *rec)
{
    /* Release: every read of the section happens before a reclaimer
     * sees us idle. */
    if (--rec->nest == 0)
        atomic_store_explicit(&rec->state, 0, memory_order_release);
}

/* Move the global epoch on by one if every active section began in the
 * current one.  Returns the epoch now. */
static uint64_t try_advance(void)
{
    uint64_t e = atomic_load(&global_epoch);
    for (ebr_rec *rec = atomic_load(&records); rec != NULL; rec = rec->next) {
        uint64_t s = atomic_load(&rec->state);
        if (s != 0 && (s >> 1) != e)
            return e;
    }
    if (atomic_compare_exchange_strong(&global_epoch, &e, e + 1))
        return e + 1;
    return e; /* another thread moved it: e holds the newer value */
}

static void free_list(ebr_node *n, void *ctx)
{
    while (n != NULL) {
        ebr_node *next = n->next;
        n->free(n, ctx);
        n = next;
    }
}

/* Detach the lists of limbo retired two epochs before e or earlier
 * (lock held), appending them to *out. */
static void take_expired(ebr_limbo *limbo, uint64_t e, ebr_node **out)
{
    for (int b = 0; b < 3; b++) {
        ebr_node *n = limbo->bucket[b].head;
        if (n == NULL || limbo->bucket[b].epoch + 2 > e)
            continue;
        ebr_node *last = n;
        while (last->next != NULL)
            last = last->next;
        last->next = *out;
        *out = n;
        limbo->bucket[b].head = NULL;
    }
}

void ebr_retire(ebr_limbo *limbo, ebr_node *node, void (*free)(ebr_node *, void *), void *ctx)
{
    node->free = free;
    /* Read after the caller unlinked node: a section that began in this
     * epoch or later cannot reach it. */
    uint64_t retired = atomic_load(&global_epoch);
    /* Two tries: with no reader about, the node goes at once (a Python
     * object dropped from a map is released by the call that dropped it,
     * as from a dict). */
    uint64_t e = try_advance();
    if (e < retired + 2)
        e = try_advance();
    ebr_node *expired = NULL;
    rt_lock(&limbo->lock);
    take_expired(limbo, e, &expired);
    int b = (int)(retired % 3);
    /* A bucket still holding epoch retired - 3 (or older) was emptied by
     * take_expired: e >= retired >= its epoch + 3. */
    if (limbo->bucket[b].head == NULL || limbo->bucket[b].epoch < retired)
        limbo->bucket[b].epoch = retired;
    /* A bucket holding a later epoch (others retired in it since we read
     * ours): node joins it, which only delays its free. */
    node->next = limbo->bucket[b].head;
    limbo->bucket[b].head = node;
    take_expired(limbo, e, &expired); /* node itself, if no reader can see it */
    rt_unlock(&limbo->lock);
    free_list(expired, ctx);
}

void ebr_drain(ebr_limbo *limbo, void *ctx)
{
    ebr_node *all = NULL;
    rt_lock(&limbo->lock);
    take_expired(limbo, UINT64_MAX, &all);
    rt_unlock(&limbo->lock);
    free_list(all, ctx);
}
