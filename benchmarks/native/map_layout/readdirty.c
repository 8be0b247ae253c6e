/*
 * readdirty.c -- the sync.Map of Go 1.9-1.23 (read/dirty), in C, with the
 * same interface as gopy's map (gopy_map_type), kept only to measure the
 * two layouts against each other (docs/decisions.md, "Map layout"):
 *
 *   read    an immutable hash table published through an atomic pointer;
 *           loads of keys in it take no lock
 *   dirty   a mutable table under mu holding every live key, created by
 *           copying read (minus deleted entries) at the first new key
 *   misses  loads that went to dirty; at len(dirty) dirty becomes read
 *
 * An entry (shared by both tables) holds the value pointer: NULL deleted,
 * EXPUNGED deleted and absent from dirty.  Old read tables, replaced
 * values and dropped entries go through gopy's EBR, as the trie's nodes
 * do.  Callbacks run under mu here (this design compares keys inside
 * dirty under its lock), which is one reason gopy does not use it.
 */
#include "readdirty.h"

#include "../../../src/runtime/ebr.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static char expunged_marker;
#define EXPUNGED ((void *)&expunged_marker)

typedef struct rd_entry {
    _Atomic(void *) p;
    void *key;
    uint64_t hash;
    ebr_node retired;
} rd_entry;

typedef struct {
    uint64_t hash;
    rd_entry *e; /* NULL: empty slot */
} slot;

typedef struct table {
    size_t cap, n; /* cap a power of two, n < cap / 2 */
    slot *slots;
} table;

/* Go's readOnly: a table, and whether dirty holds keys it lacks. */
typedef struct {
    table *t;
    bool amended;
    bool owns_table; /* free t with it (a promotion retired it) */
    rd_entry **dead; /* entries only t held (expunged at the promotion) */
    size_t ndead;
    ebr_node retired;
} read_only;

/* A replaced value waiting for its readers to go. */
typedef struct {
    void *value;
    ebr_node retired;
} dead_value;

struct rd_map {
    _Atomic(read_only *) read;
    pthread_mutex_t mu;
    table *dirty; /* under mu */
    size_t misses;
    gopy_map_type type;
    ebr_limbo limbo;
};

#define CONTAINER(p, type, field) ((type *)((char *)(p) - offsetof(type, field)))

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t hash_of(rd_map *m, const void *key)
{
    return mix(m->type.hash != NULL ? m->type.hash(key, m->type.ctx) : (uint64_t)(uintptr_t)key);
}

static bool key_eq(rd_map *m, const void *a, const void *b)
{
    return a == b || (m->type.key_equal != NULL && m->type.key_equal(a, b, m->type.ctx));
}

static void retain(rd_map *m, void *p)
{
    if (m->type.retain != NULL)
        m->type.retain(p, m->type.ctx);
}

static void release(rd_map *m, void *p)
{
    if (m->type.release != NULL)
        m->type.release(p, m->type.ctx);
}

/* ---- tables ------------------------------------------------------------ */

static table *table_new(size_t want)
{
    table *t = calloc(1, sizeof *t);
    t->cap = 8;
    while (t->cap < want * 2 + 2)
        t->cap *= 2;
    t->slots = calloc(t->cap, sizeof *t->slots);
    return t;
}

static rd_entry *table_find(rd_map *m, const table *t, uint64_t h, const void *key)
{
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        const slot *s = &t->slots[i];
        if (s->e == NULL)
            return NULL;
        if (s->hash == h && key_eq(m, s->e->key, key))
            return s->e;
    }
}

static void table_put(table *t, rd_entry *e)
{
    size_t i = e->hash & (t->cap - 1);
    while (t->slots[i].e != NULL)
        i = (i + 1) & (t->cap - 1);
    t->slots[i] = (slot){e->hash, e};
    t->n++;
}

/* Dirty tables grow (they are private to mu); deletion rebuilds. */
static void dirty_put(table *t, rd_entry *e)
{
    if ((t->n + 1) * 2 > t->cap) {
        table *bigger = table_new(t->n + 1);
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].e != NULL)
                table_put(bigger, t->slots[i].e);
        free(t->slots);
        t->slots = bigger->slots;
        t->cap = bigger->cap;
        free(bigger);
    }
    table_put(t, e);
}

static void dirty_remove(table *t, const rd_entry *e)
{
    size_t i = e->hash & (t->cap - 1);
    while (t->slots[i].e != e)
        i = (i + 1) & (t->cap - 1);
    t->slots[i].e = NULL;
    t->n--;
    /* Re-insert the rest of the cluster (linear probing). */
    for (size_t j = (i + 1) & (t->cap - 1); t->slots[j].e != NULL; j = (j + 1) & (t->cap - 1)) {
        rd_entry *moved = t->slots[j].e;
        t->slots[j].e = NULL;
        t->n--;
        table_put(t, moved);
    }
}

/* A read view no reader can see: free it, with its table after a
 * promotion, and the entries only that table held. */
static void read_only_free(ebr_node *rn, void *ctx)
{
    rd_map *m = ctx;
    read_only *r = CONTAINER(rn, read_only, retired);
    for (size_t i = 0; i < r->ndead; i++) {
        release(m, r->dead[i]->key);
        free(r->dead[i]);
    }
    free(r->dead);
    if (r->owns_table) {
        free(r->t->slots);
        free(r->t);
    }
    free(r);
}

static void entry_free(ebr_node *rn, void *ctx)
{
    rd_entry *e = CONTAINER(rn, rd_entry, retired);
    release(ctx, e->key);
    free(e);
}

static read_only *read_only_new(table *t, bool amended)
{
    read_only *r = calloc(1, sizeof *r);
    r->t = t;
    r->amended = amended;
    return r;
}

static void value_free(ebr_node *rn, void *ctx)
{
    dead_value *d = CONTAINER(rn, dead_value, retired);
    release(ctx, d->value);
    free(d);
}

/* A value the map no longer holds (not NULL / EXPUNGED). */
static void drop_value(rd_map *m, void *v)
{
    if (v == NULL || v == EXPUNGED || m->type.release == NULL)
        return;
    dead_value *d = malloc(sizeof *d);
    d->value = v;
    ebr_retire(&m->limbo, &d->retired, value_free, m);
}

/* ---- Go's helpers (mu held where the name says Locked) ------------------- */

static void miss_locked(rd_map *m)
{
    if (++m->misses < m->dirty->n)
        return;
    read_only *old = atomic_exchange(&m->read, read_only_new(m->dirty, false));
    old->owns_table = true;
    /* Expunged entries were not copied into dirty and can never come back
     * (only entries of the current read table are unexpunged): they go
     * with the old table.  Decided now, under mu: later expunges concern
     * entries the new table holds. */
    table *t = old->t;
    old->dead = malloc(t->n * sizeof *old->dead + 1);
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].e != NULL && atomic_load(&t->slots[i].e->p) == EXPUNGED)
            old->dead[old->ndead++] = t->slots[i].e;
    m->dirty = NULL;
    m->misses = 0;
    ebr_retire(&m->limbo, &old->retired, read_only_free, m);
}

static void dirty_locked(rd_map *m)
{
    if (m->dirty != NULL)
        return;
    table *read = atomic_load(&m->read)->t;
    m->dirty = table_new(read->n);
    for (size_t i = 0; i < read->cap; i++) {
        rd_entry *e = read->slots[i].e;
        if (e == NULL)
            continue;
        /* try_expunge: deleted entries stay out of dirty */
        void *p = atomic_load(&e->p);
        while (p == NULL) {
            if (atomic_compare_exchange_weak(&e->p, &p, EXPUNGED))
                break;
        }
        if (atomic_load(&e->p) != EXPUNGED)
            table_put(m->dirty, e);
    }
}

/* Publish the read table again, flagged amended (Go: a new readOnly
 * sharing the map). */
static void mark_amended_locked(rd_map *m)
{
    read_only *old = atomic_load(&m->read);
    atomic_store(&m->read, read_only_new(old->t, true));
    ebr_retire(&m->limbo, &old->retired, read_only_free, m);
}

static rd_entry *entry_new(rd_map *m, uint64_t h, void *key, void *value)
{
    rd_entry *e = malloc(sizeof *e);
    retain(m, key);
    retain(m, value);
    e->key = key;
    e->hash = h;
    atomic_init(&e->p, value);
    return e;
}

/* ---- operations ------------------------------------------------------------ */

rd_map *rd_map_make(const gopy_map_type *type)
{
    rd_map *m = calloc(1, sizeof *m);
    m->type = *type;
    pthread_mutex_init(&m->mu, NULL);
    atomic_init(&m->read, read_only_new(table_new(0), false));
    return m;
}

bool rd_map_load(rd_map *m, const void *key, void **value)
{
    uint64_t h = hash_of(m, key);
    ebr_rec *rec = ebr_enter();
    read_only *read = atomic_load(&m->read);
    rd_entry *e = table_find(m, read->t, h, key);
    if (e == NULL && read->amended) {
        pthread_mutex_lock(&m->mu);
        read = atomic_load(&m->read);
        e = table_find(m, read->t, h, key);
        if (e == NULL && read->amended) {
            e = table_find(m, m->dirty, h, key);
            miss_locked(m);
        }
        pthread_mutex_unlock(&m->mu);
    }
    void *p = e != NULL ? atomic_load(&e->p) : NULL;
    bool ok = p != NULL && p != EXPUNGED;
    if (ok) {
        retain(m, p);
        *value = p;
    }
    ebr_exit(rec);
    return ok;
}

/* Go's Swap (Store is a Swap that drops the previous value). */
bool rd_map_swap(rd_map *m, void *key, void *value, void **previous)
{
    uint64_t h = hash_of(m, key);
    void *old = NULL;
    ebr_rec *rec = ebr_enter();
    read_only *read = atomic_load(&m->read);
    rd_entry *e = table_find(m, read->t, h, key);
    if (e != NULL) {
        /* trySwap: only while not expunged */
        void *p = atomic_load(&e->p);
        retain(m, value);
        while (p != EXPUNGED) {
            if (atomic_compare_exchange_weak(&e->p, &p, value)) {
                old = p;
                goto done;
            }
        }
        release(m, value);
    }
    pthread_mutex_lock(&m->mu);
    read = atomic_load(&m->read);
    retain(m, value);
    if ((e = table_find(m, read->t, h, key)) != NULL) {
        void *expected = EXPUNGED;
        if (atomic_compare_exchange_strong(&e->p, &expected, NULL))
            dirty_put(m->dirty, e); /* unexpunged: back into dirty */
        old = atomic_exchange(&e->p, value);
    } else if (m->dirty != NULL && (e = table_find(m, m->dirty, h, key)) != NULL) {
        old = atomic_exchange(&e->p, value);
    } else {
        if (!read->amended) {
            dirty_locked(m);
            mark_amended_locked(m);
        }
        release(m, value); /* entry_new retains it */
        dirty_put(m->dirty, entry_new(m, h, key, value));
    }
    pthread_mutex_unlock(&m->mu);
done:
    if (old == EXPUNGED)
        old = NULL;
    if (previous != NULL && old != NULL)
        retain(m, old);
    ebr_exit(rec);
    drop_value(m, old);
    if (previous != NULL)
        *previous = old;
    return old != NULL;
}

void rd_map_store(rd_map *m, void *key, void *value)
{
    (void)rd_map_swap(m, key, value, NULL);
}

bool rd_map_load_and_delete(rd_map *m, const void *key, void **value)
{
    uint64_t h = hash_of(m, key);
    rd_entry *orphan = NULL; /* taken out of dirty, in no read table */
    ebr_rec *rec = ebr_enter();
    read_only *read = atomic_load(&m->read);
    rd_entry *e = table_find(m, read->t, h, key);
    if (e == NULL && read->amended) {
        pthread_mutex_lock(&m->mu);
        read = atomic_load(&m->read);
        e = table_find(m, read->t, h, key);
        if (e == NULL && read->amended) {
            e = table_find(m, m->dirty, h, key);
            if (e != NULL) {
                dirty_remove(m->dirty, e);
                orphan = e;
            }
            miss_locked(m);
        }
        pthread_mutex_unlock(&m->mu);
    }
    void *p = NULL;
    if (e != NULL) {
        p = atomic_load(&e->p);
        while (p != NULL && p != EXPUNGED && !atomic_compare_exchange_weak(&e->p, &p, NULL)) {
        }
        if (p == EXPUNGED)
            p = NULL;
    }
    if (p != NULL && value != NULL) {
        retain(m, p);
        *value = p;
    }
    ebr_exit(rec);
    drop_value(m, p);
    if (orphan != NULL)
        ebr_retire(&m->limbo, &orphan->retired, entry_free, m);
    return p != NULL;
}

void rd_map_delete(rd_map *m, const void *key)
{
    (void)rd_map_load_and_delete(m, key, NULL);
}

void rd_map_free(rd_map *m)
{
    ebr_drain(&m->limbo, m);
    read_only *r = atomic_load(&m->read);
    table *read = r->t;
    /* Entries only read holds (expunged: not copied into dirty) first. */
    if (m->dirty != NULL) {
        for (size_t i = 0; i < read->cap; i++) {
            rd_entry *e = read->slots[i].e;
            if (e != NULL && atomic_load(&e->p) == EXPUNGED) {
                release(m, e->key);
                free(e);
            }
        }
    }
    /* Then every other entry: all in dirty if there is one, else in read. */
    table *all = m->dirty != NULL ? m->dirty : read;
    for (size_t i = 0; i < all->cap; i++) {
        rd_entry *e = all->slots[i].e;
        if (e == NULL)
            continue;
        void *p = atomic_load(&e->p);
        if (p != NULL && p != EXPUNGED)
            release(m, p);
        release(m, e->key);
        free(e);
    }
    if (m->dirty != NULL) {
        free(m->dirty->slots);
        free(m->dirty);
    }
    free(read->slots);
    free(read);
    free(r);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
