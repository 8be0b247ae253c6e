/*
 * map.c -- Go's sync.Map as Go 1.24 builds it (internal/sync.HashTrieMap):
 * a concurrent hash trie.  (Measured against the read/dirty design of Go
 * 1.9-1.23: docs/decisions.md, "Map layout".)
 *
 * The trie is 16-way: an *indirect* node has 16 child slots, each NULL,
 * another indirect, or a chain of *entries*.  A key's path is its mixed
 * 64-bit hash, 4 bits a level from the top.  All entries of a chain have
 * the same full hash (a chain only forms on a full collision; entries
 * with different hashes that meet in a slot are split by new indirects).
 *
 * Invariants:
 *  - At most one entry per key is reachable.
 *  - An entry's key and hash never change.  Its `overflow` link changes
 *    only under the lock of the indirect whose slot heads the chain.
 *  - Its value changes by CAS, without a lock (a store to a present key,
 *    compare_and_swap), until a deletion -- holding that lock -- swaps in
 *    DELETED and unlinks the entry: so an update either lands before the
 *    deletion (and is deleted with it) or sees DELETED and goes the
 *    locked way.  Readers take DELETED as "absent": the deletion came
 *    first.  (Go's read/dirty map used nil/expunged the same way.)
 *    Replaced values are released through EBR.
 *  - Every change to an indirect's slots happens under its lock; a
 *    chain's head changes on every insertion into that slot (new entries
 *    go first, or an expansion replaces it).
 *  - A node removed from the trie (entry replaced or deleted, indirect
 *    emptied: `dead`) is retired through EBR, never freed while a reader
 *    may hold it; so a pointer seen inside a critical section is never
 *    reused for another node within it (no ABA).
 *
 * Loads take no lock.  Writers walk the trie and compare keys (and, for
 * compare_and_*, values) with no lock held -- key_equal may run arbitrary
 * code: Python's __eq__, which may even let another thread run -- then
 * lock the slot's indirect and check by pointer identity that what they
 * saw is still there (the entry still linked, its value still the one
 * compared); if not, they start again.  So callbacks never run under a
 * map lock.
 */
#include "ebr.h"
#include "sync.h"

#include <stdlib.h>

enum {
    CHILDREN_LOG2 = 4,
    NCHILDREN = 1 << CHILDREN_LOG2,
    CHILDREN_MASK = NCHILDREN - 1,
    HASH_BITS = 64,
};

typedef struct {
    bool is_entry;
} node;

typedef struct indirect {
    node n;
    _Atomic bool dead; /* unlinked from its parent (under both locks) */
    rt_mutex mu;
    struct indirect *parent;
    _Atomic(node *) children[NCHILDREN];
    ebr_node retired;
} indirect;

typedef struct entry {
    node n;
    uint64_t hash;
    void *key;
    _Atomic(void *) value; /* DELETED once deleted */
    void *final;           /* once deleted: the value it had then */
    _Atomic(struct entry *) overflow; /* same hash, other keys */
    ebr_node retired;
} entry;

static char deleted_marker;
#define DELETED ((void *)&deleted_marker)

/* A value replaced in its entry, released once no reader can hold it. */
typedef struct {
    void *value;
    ebr_node retired;
} dead_value;

struct gopy_map {
    _Atomic(indirect *) root;
    gopy_rt_map_type type;
    gopy_map_type user; /* for the gopy_map_* API (type adapts it) */
    uint64_t seed;
    ebr_limbo limbo;
};

#define CONTAINER(p, type, field) ((type *)((char *)(p) - offsetof(type, field)))

static inline uint64_t mix_hash(const gopy_map *m, uint64_t h)
{
    /* murmur3's finaliser: sequential Python ints spread over the trie. */
    h ^= m->seed;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static inline unsigned slot_index(uint64_t hash, unsigned shift)
{
    return (unsigned)(hash >> shift) & CHILDREN_MASK;
}

static void retain(gopy_map *m, void *p)
{
    if (m->type.retain != NULL)
        m->type.retain(p, m->type.ctx);
}

static void release(gopy_map *m, void *p)
{
    if (m->type.release != NULL)
        m->type.release(p, m->type.ctx);
}

/* ---- nodes ------------------------------------------------------------ */

static indirect *indirect_new(indirect *parent)
{
    indirect *i = calloc(1, sizeof *i);
    if (i == NULL)
        rt_throw("out of memory");
    rt_mutex_init(&i->mu, LR_MAP);
    i->parent = parent;
    return i;
}

/* A new entry holding a new reference to key, and taking over the
 * caller's to value. */
static entry *entry_new(gopy_map *m, uint64_t hash, void *key, void *value)
{
    entry *e = malloc(sizeof *e);
    if (e == NULL)
        rt_throw("out of memory");
    e->n.is_entry = true;
    e->hash = hash;
    e->key = key;
    atomic_init(&e->value, value);
    e->final = NULL;
    atomic_init(&e->overflow, NULL);
    retain(m, key);
    return e;
}

static void entry_free(ebr_node *rn, void *ctx)
{
    entry *e = CONTAINER(rn, entry, retired);
    void *v = atomic_load(&e->value);
    release(ctx, e->key);
    release(ctx, v == DELETED ? e->final : v);
    free(e);
}

static void dead_value_free(ebr_node *rn, void *ctx)
{
    dead_value *d = CONTAINER(rn, dead_value, retired);
    release(ctx, d->value);
    free(d);
}

static void indirect_free(ebr_node *rn, void *ctx)
{
    (void)ctx;
    free(CONTAINER(rn, indirect, retired));
}

/* A whole detached trie (clear, free): nobody can reach it any more. */
static void subtree_free(gopy_map *m, indirect *i)
{
    for (int k = 0; k < NCHILDREN; k++) {
        node *n = atomic_load(&i->children[k]);
        if (n == NULL)
            continue;
        if (!n->is_entry) {
            subtree_free(m, (indirect *)n);
            continue;
        }
        for (entry *e = (entry *)n, *next; e != NULL; e = next) {
            next = atomic_load(&e->overflow);
            entry_free(&e->retired, m);
        }
    }
    free(i);
}

static void root_free(ebr_node *rn, void *ctx)
{
    subtree_free(ctx, CONTAINER(rn, indirect, retired));
}

/* ---- finding -------------------------------------------------------------- */

/* Is this entry's key the one we look for?  1, 0, or -1 (callback error). */
static inline int key_matches(gopy_map *m, const entry *e, uint64_t hash, const void *key)
{
    if (e->hash != hash)
        return 0;
    if (e->key == key)
        return 1;
    if (m->type.key_equal == NULL)
        return 0; /* keys are their pointers */
    return m->type.key_equal(e->key, key, m->type.ctx);
}

/* The entry for key in the chain at head, via *match (NULL: none).
 * 0, or -1 if key_equal failed. */
static int chain_find(gopy_map *m, entry *head, uint64_t hash, const void *key, entry **match)
{
    *match = NULL;
    if (head->hash != hash)
        return 0; /* a chain shares one hash */
    for (entry *e = head; e != NULL; e = atomic_load(&e->overflow)) {
        int r = key_matches(m, e, hash, key);
        if (r != 0) {
            if (r > 0)
                *match = e;
            return r < 0 ? -1 : 0;
        }
    }
    return 0;
}

/* Where key is, or would go: what a writer saw without a lock. */
typedef struct {
    indirect *i;             /* the indirect holding the slot */
    _Atomic(node *) *slot;
    node *seen;              /* the slot's content: NULL or a chain head */
    entry *match;            /* the key's entry, or NULL */
    unsigned shift;          /* the slot is children[slot_index(hash, shift)] */
} place;

static int walk(gopy_map *m, uint64_t hash, const void *key, place *p)
{
    indirect *i = atomic_load(&m->root);
    unsigned shift = HASH_BITS;
    for (;;) {
        /* Distinct hashes part before the bits run out; equal ones chain. */
        shift -= CHILDREN_LOG2;
        _Atomic(node *) *slot = &i->children[slot_index(hash, shift)];
        node *n = atomic_load(slot);
        if (n == NULL || n->is_entry) {
            p->i = i;
            p->slot = slot;
            p->seen = n;
            p->shift = shift;
            p->match = NULL;
            return n != NULL ? chain_find(m, (entry *)n, hash, key, &p->match) : 0;
        }
        i = (indirect *)n;
    }
}

/* Lock the place's indirect and check that what the walk saw still
 * holds: the indirect is in the trie, the slot's head is unchanged (so
 * nothing was inserted there), and the match, if any, is still in the
 * chain (so it is still the key's entry, with the value seen).  true:
 * locked and valid; false: unlocked, walk again. */
static bool lock_place(place *p)
{
    rt_lock(&p->i->mu);
    if (!atomic_load(&p->i->dead) && atomic_load(p->slot) == p->seen) {
        if (p->match == NULL)
            return true;
        for (entry *e = (entry *)p->seen; e != NULL; e = atomic_load(&e->overflow))
            if (e == p->match)
                return true;
    }
    rt_unlock(&p->i->mu);
    return false;
}

/* ---- changing (under p->i->mu) ------------------------------------------- */

/* A subtree of new indirects below parent that holds the chain `old` and
 * the entry `fresh` (different hashes, equal up to `shift`). */
static node *expand(entry *old, entry *fresh, unsigned shift, indirect *parent)
{
    indirect *top = indirect_new(parent), *i = top;
    for (;;) {
        shift -= CHILDREN_LOG2;
        unsigned oi = slot_index(old->hash, shift), ni = slot_index(fresh->hash, shift);
        if (oi != ni) {
            atomic_store(&i->children[oi], &old->n);
            atomic_store(&i->children[ni], &fresh->n);
            return &top->n;
        }
        indirect *next = indirect_new(i);
        atomic_store(&i->children[oi], &next->n);
        i = next;
    }
}

/* Insert fresh where the walk found no entry for its key.  Published
 * last, so readers see the old chain until they see both. */
static void insert_locked(place *p, entry *fresh)
{
    entry *head = (entry *)p->seen;
    if (head == NULL) {
        atomic_store(p->slot, &fresh->n);
    } else if (head->hash == fresh->hash) {
        atomic_store(&fresh->overflow, head);
        atomic_store(p->slot, &fresh->n);
    } else {
        atomic_store(p->slot, expand(head, fresh, p->shift, p->i));
    }
}

/* Take p->match out of its chain. */
static void unlink_locked(place *p)
{
    entry *next = atomic_load(&p->match->overflow);
    if ((entry *)p->seen == p->match) {
        atomic_store(p->slot, next != NULL ? &next->n : NULL);
        return;
    }
    entry *prev = (entry *)p->seen;
    while (atomic_load(&prev->overflow) != p->match)
        prev = atomic_load(&prev->overflow);
    atomic_store(&prev->overflow, next);
}

static bool indirect_empty(indirect *i)
{
    for (int k = 0; k < NCHILDREN; k++)
        if (atomic_load(&i->children[k]) != NULL)
            return false;
    return true;
}

/* Retired by one operation: the entry it removed, and indirects emptied
 * on the way up (at most one per level). */
typedef struct {
    entry *entry;
    void *value; /* a value replaced in place (with a release callback) */
    bool has_value;
    indirect *indirects[HASH_BITS / CHILDREN_LOG2];
    int nindirects;
} garbage;

/* After a deletion emptied p->slot: unlink empty indirects up the path
 * (child's lock, then its parent's: the only place two locks are held,
 * always upwards, so no cycle).  Unlocks everything. */
static void prune_locked(place *p, uint64_t hash, garbage *g)
{
    indirect *i = p->i;
    unsigned shift = p->shift;
    while (i->parent != NULL && indirect_empty(i)) {
        shift += CHILDREN_LOG2;
        indirect *parent = i->parent;
        rt_lock(&parent->mu);
        atomic_store(&i->dead, true);
        atomic_store(&parent->children[slot_index(hash, shift)], NULL);
        rt_unlock(&i->mu);
        g->indirects[g->nindirects++] = i;
        i = parent;
    }
    rt_unlock(&i->mu);
}

/* Out of the critical section: hand the garbage to EBR. */
static void retire_garbage(gopy_map *m, garbage *g)
{
    if (g->entry != NULL)
        ebr_retire(&m->limbo, &g->entry->retired, entry_free, m);
    if (g->has_value && m->type.release != NULL) {
        dead_value *d = malloc(sizeof *d);
        if (d == NULL)
            rt_throw("out of memory");
        d->value = g->value;
        ebr_retire(&m->limbo, &d->retired, dead_value_free, m);
    }
    for (int k = 0; k < g->nindirects; k++)
        ebr_retire(&m->limbo, &g->indirects[k]->retired, indirect_free, m);
}

/* ---- operations ------------------------------------------------------------ */

int gopy_rt_map_load(gopy_map *m, uint64_t hash, const void *key, void **value, bool *loaded)
{
    hash = mix_hash(m, hash);
    ebr_rec *rec = ebr_enter();
    indirect *i = atomic_load(&m->root);
    unsigned shift = HASH_BITS;
    int r = 0;
    *loaded = false;
    for (;;) {
        shift -= CHILDREN_LOG2;
        node *n = atomic_load(&i->children[slot_index(hash, shift)]);
        if (n == NULL)
            break;
        if (n->is_entry) {
            entry *e;
            r = chain_find(m, (entry *)n, hash, key, &e);
            void *v = e != NULL ? atomic_load(&e->value) : DELETED;
            if (v != DELETED) {
                retain(m, v);
                *value = v;
                *loaded = true;
            }
            break;
        }
        i = (indirect *)n;
    }
    ebr_exit(rec);
    return r < 0 ? GOPY_ECALLBACK : GOPY_OK;
}

/* Store value for key, and with previous != NULL hand back the value it
 * replaced (retained).  only_if_absent: load_or_store (an existing entry
 * wins and its value comes back in *previous). */
static int store(gopy_map *m, uint64_t hash, void *key, void *value, void **previous,
                 bool *loaded, bool only_if_absent)
{
    hash = mix_hash(m, hash);
    garbage g = {0};
    ebr_rec *rec = ebr_enter();
    retain(m, value); /* the map's reference, if it keeps value */
    place p;
    for (;;) {
        if (walk(m, hash, key, &p) < 0) {
            ebr_exit(rec);
            release(m, value);
            return GOPY_ECALLBACK;
        }
        void *v = p.match != NULL ? atomic_load(&p.match->value) : DELETED;
        if (v != DELETED && only_if_absent) {
            retain(m, v);
            *previous = v;
            *loaded = true;
            ebr_exit(rec);
            release(m, value);
            return GOPY_OK;
        }
        /* Present: replace in place, no lock (the entry keeps the key it
         * had, as a dict does). */
        while (v != DELETED && !atomic_compare_exchange_weak(&p.match->value, &v, value)) {
        }
        if (v != DELETED) {
            if (previous != NULL) {
                retain(m, v);
                *previous = v;
            }
            g.value = v;
            g.has_value = true;
            *loaded = true;
            ebr_exit(rec);
            retire_garbage(m, &g);
            return GOPY_OK;
        }
        /* Absent (or being deleted, which lock_place waits out). */
        p.match = NULL;
        if (lock_place(&p))
            break;
    }
    insert_locked(&p, entry_new(m, hash, key, value));
    rt_unlock(&p.i->mu);
    ebr_exit(rec);
    *loaded = false;
    return GOPY_OK;
}

int gopy_rt_map_store(gopy_map *m, uint64_t hash, void *key, void *value)
{
    bool loaded;
    return store(m, hash, key, value, NULL, &loaded, false);
}

int gopy_rt_map_swap(gopy_map *m, uint64_t hash, void *key, void *value, void **previous,
                     bool *loaded)
{
    return store(m, hash, key, value, previous, loaded, false);
}

int gopy_rt_map_load_or_store(gopy_map *m, uint64_t hash, void *key, void *value, void **actual,
                              bool *loaded)
{
    int r = store(m, hash, key, value, actual, loaded, true);
    if (r == GOPY_OK && !*loaded) {
        retain(m, value);
        *actual = value;
    }
    return r;
}

/* The key's entry, present, with its value equal to *old when old_given:
 * its value in *seen (1), or nothing to do (0: absent or not equal).
 * Compares with no lock held.  -1: callback failed. */
static int find_value(gopy_map *m, uint64_t hash, const void *key, bool old_given,
                      const void *old, place *p, void **seen)
{
    if (walk(m, hash, key, p) < 0)
        return -1;
    void *v = p->match != NULL ? atomic_load(&p->match->value) : DELETED;
    if (v == DELETED)
        return 0;
    if (old_given && v != old) {
        if (m->type.value_equal == NULL)
            return 0;
        int eq = m->type.value_equal(v, old, m->type.ctx);
        if (eq <= 0)
            return eq;
    }
    *seen = v;
    return 1;
}

static int delete_entry(gopy_map *m, uint64_t hash, const void *key, bool old_given,
                        const void *old, void **value, bool *deleted)
{
    hash = mix_hash(m, hash);
    garbage g = {0};
    ebr_rec *rec = ebr_enter();
    place p;
    void *seen = NULL;
    int found;
    for (;;) {
        found = find_value(m, hash, key, old_given, old, &p, &seen);
        if (found <= 0)
            break;
        if (lock_place(&p)) {
            /* Linked, so not deleted: mark it, unless an update came in
             * since we compared (then compare again). */
            void *v = atomic_load(&p.match->value);
            while ((!old_given || v == seen) &&
                   !atomic_compare_exchange_weak(&p.match->value, &v, DELETED)) {
            }
            if (!old_given || v == seen) {
                p.match->final = v;
                seen = v;
                unlink_locked(&p);
                g.entry = p.match;
                if (atomic_load(p.slot) == NULL)
                    prune_locked(&p, hash, &g);
                else
                    rt_unlock(&p.i->mu);
                break;
            }
            rt_unlock(&p.i->mu);
        }
    }
    *deleted = found > 0;
    if (found > 0 && value != NULL) {
        retain(m, seen);
        *value = seen;
    }
    ebr_exit(rec);
    retire_garbage(m, &g);
    return found < 0 ? GOPY_ECALLBACK : GOPY_OK;
}

int gopy_rt_map_load_and_delete(gopy_map *m, uint64_t hash, const void *key, void **value,
                                bool *loaded)
{
    return delete_entry(m, hash, key, false, NULL, value, loaded);
}

int gopy_rt_map_compare_and_delete(gopy_map *m, uint64_t hash, const void *key, const void *old,
                                   bool *deleted)
{
    return delete_entry(m, hash, key, true, old, NULL, deleted);
}

int gopy_rt_map_compare_and_swap(gopy_map *m, uint64_t hash, void *key, const void *old,
                                 void *new_value, bool *swapped)
{
    hash = mix_hash(m, hash);
    garbage g = {0};
    ebr_rec *rec = ebr_enter();
    retain(m, new_value); /* the map's, if the swap happens */
    place p;
    void *seen = NULL;
    int found;
    /* Compared equal to seen: swap if it is still seen (a failed CAS means
     * another update or a deletion: look again). */
    while ((found = find_value(m, hash, key, true, old, &p, &seen)) > 0 &&
           !atomic_compare_exchange_strong(&p.match->value, &seen, new_value)) {
    }
    *swapped = found > 0;
    if (found > 0) {
        g.value = seen;
        g.has_value = true;
    }
    ebr_exit(rec);
    if (found <= 0)
        release(m, new_value);
    retire_garbage(m, &g);
    return found < 0 ? GOPY_ECALLBACK : GOPY_OK;
}

/* ---- whole map ----------------------------------------------------------------- */

typedef struct {
    void **pairs; /* key, value, key, value... each retained */
    size_t n, cap;
} snapshot;

static void snapshot_add(gopy_map *m, snapshot *s, entry *e, void *v)
{
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 64;
        void **pairs = realloc(s->pairs, cap * sizeof *pairs);
        if (pairs == NULL)
            rt_throw("out of memory");
        s->pairs = pairs;
        s->cap = cap;
    }
    retain(m, e->key);
    retain(m, v);
    s->pairs[s->n++] = e->key;
    s->pairs[s->n++] = v;
}

/* Every entry of the trie below i; in a critical section. */
static void snapshot_walk(gopy_map *m, snapshot *s, indirect *i, size_t *count)
{
    for (int k = 0; k < NCHILDREN; k++) {
        node *n = atomic_load(&i->children[k]);
        if (n == NULL)
            continue;
        if (!n->is_entry) {
            snapshot_walk(m, s, (indirect *)n, count);
            continue;
        }
        for (entry *e = (entry *)n; e != NULL; e = atomic_load(&e->overflow)) {
            void *v = atomic_load(&e->value);
            if (v == DELETED)
                continue; /* being unlinked */
            if (s != NULL)
                snapshot_add(m, s, e, v);
            (*count)++;
        }
    }
}

int gopy_rt_map_range(gopy_map *m, int (*fn)(void *key, void *value, void *arg), void *arg)
{
    /* A snapshot, so that fn runs outside the critical section (it may
     * block, and may change the map). */
    snapshot s = {0};
    size_t count = 0;
    ebr_rec *rec = ebr_enter();
    snapshot_walk(m, &s, atomic_load(&m->root), &count);
    ebr_exit(rec);
    int r = 1;
    for (size_t k = 0; k < s.n; k += 2) {
        if (r > 0)
            r = fn(s.pairs[k], s.pairs[k + 1], arg);
        release(m, s.pairs[k]);
        release(m, s.pairs[k + 1]);
    }
    free(s.pairs);
    return r < 0 ? GOPY_ECALLBACK : GOPY_OK;
}

static int visit_walk(indirect *i, int (*visit)(void *p, void *arg), void *arg)
{
    for (int k = 0; k < NCHILDREN; k++) {
        node *n = atomic_load(&i->children[k]);
        int r = 0;
        if (n == NULL)
            continue;
        if (!n->is_entry) {
            r = visit_walk((indirect *)n, visit, arg);
        } else {
            for (entry *e = (entry *)n; e != NULL && r == 0; e = atomic_load(&e->overflow)) {
                void *v = atomic_load(&e->value);
                if (v == DELETED)
                    continue; /* being unlinked */
                r = visit(e->key, arg);
                if (r == 0)
                    r = visit(v, arg);
            }
        }
        if (r != 0)
            return r;
    }
    return 0;
}

int gopy_rt_map_visit(gopy_map *m, int (*visit)(void *p, void *arg), void *arg)
{
    ebr_rec *rec = ebr_enter();
    int r = visit_walk(atomic_load(&m->root), visit, arg);
    ebr_exit(rec);
    return r;
}

size_t gopy_map_len(gopy_map *m)
{
    size_t count = 0;
    ebr_rec *rec = ebr_enter();
    snapshot_walk(m, NULL, atomic_load(&m->root), &count);
    ebr_exit(rec);
    return count;
}

void gopy_map_clear(gopy_map *m)
{
    indirect *old = atomic_exchange(&m->root, indirect_new(NULL));
    /* Writers still inside the old trie finish there; its nodes (and
     * whatever they add) go when none can be inside. */
    ebr_retire(&m->limbo, &old->retired, root_free, m);
}

gopy_map *gopy_rt_map_make(const gopy_rt_map_type *type)
{
    gopy_map *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->type = *type;
    rt_mutex_init(&m->limbo.lock, LR_EBR);
    m->seed = ((uint64_t)rt_fastrand() << 32) | rt_fastrand();
    atomic_init(&m->root, indirect_new(NULL));
    return m;
}

void gopy_map_free(gopy_map *m)
{
    if (m == NULL)
        return;
    ebr_drain(&m->limbo, m);
    subtree_free(m, atomic_load(&m->root));
    free(m);
}

/* ---- the C API: callbacks without failure, hashes from the type ---------- */

static int user_key_equal(const void *a, const void *b, void *ctx)
{
    gopy_map *m = ctx;
    return m->user.key_equal(a, b, m->user.ctx) ? 1 : 0;
}

static int user_value_equal(const void *a, const void *b, void *ctx)
{
    gopy_map *m = ctx;
    return m->user.value_equal(a, b, m->user.ctx) ? 1 : 0;
}

static void user_retain(void *p, void *ctx)
{
    gopy_map *m = ctx;
    m->user.retain(p, m->user.ctx);
}

static void user_release(void *p, void *ctx)
{
    gopy_map *m = ctx;
    m->user.release(p, m->user.ctx);
}

gopy_map *gopy_map_make(const gopy_map_type *type)
{
    gopy_rt_map_type t = {.key_equal = type->key_equal != NULL ? user_key_equal : NULL};
    gopy_map *m = gopy_rt_map_make(&t);
    if (m == NULL)
        return NULL;
    m->user = *type;
    m->type.ctx = m;
    m->type.value_equal = type->value_equal != NULL ? user_value_equal : NULL;
    m->type.retain = type->retain != NULL ? user_retain : NULL;
    m->type.release = type->release != NULL ? user_release : NULL;
    return m;
}

static uint64_t user_hash(gopy_map *m, const void *key)
{
    if (m->user.hash == NULL)
        return (uint64_t)(uintptr_t)key; /* keys are their pointers */
    return m->user.hash(key, m->user.ctx);
}

bool gopy_map_load(gopy_map *m, const void *key, void **value)
{
    bool loaded;
    void *v = NULL;
    (void)gopy_rt_map_load(m, user_hash(m, key), key, &v, &loaded);
    if (value != NULL)
        *value = v;
    else if (loaded)
        release(m, v);
    return loaded;
}

void gopy_map_store(gopy_map *m, void *key, void *value)
{
    (void)gopy_rt_map_store(m, user_hash(m, key), key, value);
}

bool gopy_map_load_or_store(gopy_map *m, void *key, void *value, void **actual)
{
    bool loaded;
    void *v = NULL;
    (void)gopy_rt_map_load_or_store(m, user_hash(m, key), key, value, &v, &loaded);
    if (actual != NULL)
        *actual = v;
    else
        release(m, v);
    return loaded;
}

bool gopy_map_load_and_delete(gopy_map *m, const void *key, void **value)
{
    bool loaded;
    void *v = NULL;
    (void)gopy_rt_map_load_and_delete(m, user_hash(m, key), key, &v, &loaded);
    if (value != NULL)
        *value = v;
    else if (loaded)
        release(m, v);
    return loaded;
}

void gopy_map_delete(gopy_map *m, const void *key)
{
    bool loaded;
    (void)gopy_rt_map_load_and_delete(m, user_hash(m, key), key, NULL, &loaded);
}

bool gopy_map_swap(gopy_map *m, void *key, void *value, void **previous)
{
    bool loaded;
    void *v = NULL;
    (void)gopy_rt_map_swap(m, user_hash(m, key), key, value, &v, &loaded);
    if (previous != NULL)
        *previous = v;
    else if (loaded)
        release(m, v);
    return loaded;
}

bool gopy_map_compare_and_swap(gopy_map *m, void *key, const void *old, void *new_value)
{
    bool swapped;
    (void)gopy_rt_map_compare_and_swap(m, user_hash(m, key), key, old, new_value, &swapped);
    return swapped;
}

bool gopy_map_compare_and_delete(gopy_map *m, const void *key, const void *old)
{
    bool deleted;
    (void)gopy_rt_map_compare_and_delete(m, user_hash(m, key), key, old, &deleted);
    return deleted;
}

typedef struct {
    bool (*fn)(void *key, void *value, void *arg);
    void *arg;
} user_range;

static int user_range_fn(void *key, void *value, void *arg)
{
    user_range *u = arg;
    return u->fn(key, value, u->arg) ? 1 : 0;
}

void gopy_map_range(gopy_map *m, bool (*fn)(void *key, void *value, void *arg), void *arg)
{
    user_range u = {fn, arg};
    (void)gopy_rt_map_range(m, user_range_fn, &u);
}
