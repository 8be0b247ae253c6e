/*
 * placement.c -- which M a host goroutine calls home.
 *
 * A host goroutine is bound for good to the M it first runs on (runtime.h).
 * While its M is inside a call that lets the host lock go (a hash, a
 * compression, a blocking call nobody hooked), every goroutine bound to
 * that M waits, even with cores idle.  Go moves such goroutines; we cannot
 * (docs/design.md, "Why a started Python goroutine never changes thread"),
 * so we choose homes up front.  Two shapes pull apart:
 *
 *   - goroutines that talk to each other (ping-pong, producer/consumer)
 *     should share an M: a hand-off between two Ms is a host-lock handover,
 *     ~20 us against ~0.3 us on one M;
 *   - a pool of goroutines running the same code (workers on one jobs
 *     channel) should be spread, so that their calls run in parallel.
 *
 * The binding names each host goroutine's *group*: an identity for "the
 * same code" (the Python function's code object).  What tells a pool from
 * partners is where its members wait: a pool's started members all park on
 * one object (the jobs channel), partners on different ones (ping and
 * pong; each link of a daisy chain).  The rule, applied when an M holding
 * the host lock is about to start an unstarted goroutine:
 *
 *   if the last two goroutines of its group started on this M still live
 *   and are both parked on the same object, and the ring has two slots
 *   or more, the goroutine is a pool member: this M keeps its share (as
 *   many members as it sent to each other slot) and sends the rest to the
 *   other Ms of the spread ring in turn (GOMAXPROCS slots, at least one a
 *   CPU: placement_ring_slots; each an M chosen on first use); anything
 *   else starts here, as before.  But the goroutine that spawned the pool
 *   usually feeds it, and every member on its M would make it wait
 *   behind that member's blocking calls.  So three or more
 *   goroutines of one group that one goroutine spawned in a row are a
 *   batch (a pool, a fan-out, a chain; hostq_pop marks them), and the
 *   spawner's M leaves a batch on the shared queue for another ring M
 *   (batch_taker, an idle one first), which starts the first two, sees the
 *   pool, and spreads the rest; the spawner's M gets none from an M
 *   spreading it, and a spare ring slot's M stands in for its slot.  Pairs
 *   (ping-pong partners of one function) are no batch: they stay with
 *   their spawner; nor is what a goroutine spawns once it has yielded for a
 *   backlog of its spawns (thousands of connections, not a pool to feed).
 *
 * So partners running different functions stay together, a pool's members
 * are shared out evenly over the ring's Ms (besides its feeder's), and
 * goroutines that finish in their first run (spawn-and-join) never count
 * as live when the next one starts.
 *
 * Where the host lock is the GIL, the ring's slots go to the first Ms that
 * start host goroutines.  An M outside it starts them only when the ring's
 * Ms did not get to them soon enough (a standby: they blocked, or waited
 * their turn for the GIL); it homes them on its spawner's ring M or on the
 * ring's Ms in turn, those sysmon does not see stalled in a goroutine, and
 * keeps them only if none schedules; batch members it leaves to a ring M
 * as the spawner's M does: outside_ring_home.  Unstarted
 * goroutines queued on a ring M that stalls afterwards go back to the
 * shared queue (sysmon, proc_host_reclaim): they have no frames yet, so
 * they may start anywhere.  The figures behind it are in docs/decisions.md
 * ("Placement").
 *
 * Ownership: an M's group table (M.groups) is read and written only by
 * that M, on its scheduler stack: a goroutine is counted by its home when
 * it first runs there and uncounted by the same M when it exits.  The ring
 * (sched.spread_ring) is filled under sched.lock (with M.in_ring, so that
 * no M takes two slots) and read without it.
 */
#include "runtime.h"

static uint32_t group_hash(const void *group)
{
    uintptr_t x = (uintptr_t)group;
    x ^= x >> 17;
    x *= 0x9E3779B1u;
    return (uint32_t)(x >> 7);
}

/* m's table is 2-way set-associative: a group lives in one of the two
 * entries of its bucket, so a lookup is at most two probes, and a group
 * goes untracked on m only while two others live in its bucket. */
static struct m_group *group_bucket(M *m, const void *group)
{
    return &m->groups[(group_hash(group) % (M_GROUPS / 2)) * 2];
}

/* The entry holding group, or NULL. */
static struct m_group *group_find(M *m, const void *group)
{
    struct m_group *b = group_bucket(m, group);
    return b[0].key == group ? &b[0] : b[1].key == group ? &b[1] : NULL;
}

void placement_count(M *m, G *g)
{
    g->group_counted = false;
    if (g->group == NULL)
        return;
    struct m_group *e = group_find(m, g->group);
    if (e == NULL) {
        struct m_group *b = group_bucket(m, g->group);
        e = b[0].key == NULL ? &b[0] : b[1].key == NULL ? &b[1] : NULL;
        if (e == NULL)
            return; /* two other groups hold the bucket: not tracked here */
    }
    e->key = g->group;
    e->live++;
    e->recent[1] = e->recent[0];
    e->recent[0] = g;
    g->group_counted = true;
}

void placement_uncount(M *m, G *g)
{
    if (!g->group_counted)
        return;
    g->group_counted = false;
    struct m_group *e = group_find(m, g->group);
    if (e == NULL || e->live <= 0)
        rt_throw("placement: a goroutine's group is missing from its home's table");
    for (int i = 0; i < 2; i++)
        if (e->recent[i] == g)
            e->recent[i] = NULL;
    if (--e->live == 0)
        *e = (struct m_group){0};
}

/* Do the last two goroutines of group started on m, both still alive, wait
 * on one object?  They are bound to m and m is on its scheduler stack, so
 * neither is running: what they wait on stays put while we look (a waker
 * may change a status, never wait_obj). */
static bool pool_parked_here(M *m, const void *group)
{
    struct m_group *e = group_find(m, group);
    if (e == NULL || e->recent[0] == NULL || e->recent[1] == NULL)
        return false;
    G *a = e->recent[0], *b = e->recent[1];
    return atomic_load(&a->status) == G_WAITING && atomic_load(&b->status) == G_WAITING &&
           a->wait_obj != NULL && a->wait_obj == b->wait_obj &&
           a->wait_reason == b->wait_reason;
}

/* The M in ring slot i, choosing one if the slot is empty: m itself if it
 * holds no slot yet, else an idle or new M.  NULL if no M could be had.
 * Two Ms filling one slot at once: one wins, the other's M stays idle. */
static M *ring_slot(M *m, uint32_t i)
{
    M *s = atomic_load_explicit(&sched.spread_ring[i], memory_order_acquire);
    if (s != NULL)
        return s;
    rt_lock(&sched.lock);
    bool claim_self = !m->in_ring;
    if (claim_self)
        m->in_ring = true;
    rt_unlock(&sched.lock);
    M *chosen = claim_self ? m : proc_host_m();
    if (chosen == NULL)
        return NULL;
    rt_lock(&sched.lock);
    s = atomic_load_explicit(&sched.spread_ring[i], memory_order_relaxed);
    /* An idle M another filler put in the ring meanwhile takes no second
     * slot: the slot stays empty this time. */
    if (s == NULL && (claim_self || !chosen->in_ring)) {
        s = chosen;
        s->in_ring = true;
        atomic_store_explicit(&sched.spread_ring[i], s, memory_order_release);
    } else if (claim_self) {
        m->in_ring = false;
    }
    rt_unlock(&sched.lock);
    return s;
}

/* Will h start what is queued on it soon?  Not if it is dedicated to a
 * locked goroutine, dying, or stalled inside a goroutine (sysmon's flag;
 * an M out of any goroutine is not stalled, whatever the flag says). */
static bool home_schedules(M *h)
{
    return h->lockedg == NULL && !h->dying &&
           !(atomic_load_explicit(&h->host_stalled, memory_order_relaxed) &&
             atomic_load_explicit(&h->in_g, memory_order_relaxed));
}

/* A ring M other than m and g's spawner's to start g, a batch member
 * (G.batch) that m leaves to it, or NULL if none would soon (then m starts
 * it).  One out of any goroutine first: it can take the host lock now. */
static M *batch_taker(M *m, G *g, int32_t slots)
{
    M *busy = NULL;
    bool spawner_in_ring = false;
    for (int32_t i = 0; i <= slots; i++) {
        /* Fills an empty slot of the ring's (an idle or new M); the
         * spare, past them, only if a pool's spread made one, and only
         * in the stead of the spawner's slot: a spare taker spreads
         * the batch over the slots, and with the spawner's M outside
         * them the pool would get a thread more than the ring has. */
        if (i == slots && !spawner_in_ring)
            break;
        M *h = i < slots ? ring_slot(m, (uint32_t)i)
                         : atomic_load_explicit(&sched.spread_ring[i], memory_order_acquire);
        spawner_in_ring |= h != NULL && h == g->spawner_m;
        if (h == NULL || h == m || h == g->spawner_m || !home_schedules(h))
            continue;
        if (!atomic_load_explicit(&h->in_g, memory_order_relaxed))
            return h;
        if (busy == NULL)
            busy = h;
    }
    return busy;
}

/* m holds no ring slot.  The ring's slots go to the first Ms
 * that start host goroutines; another M starts them only when those did
 * not soon enough (the standby, recruited while they blocked or waited
 * their turn for the host lock), and each goroutine it kept would make its
 * thread one more taking turns with the host lock for good: 10,000 W13
 * clients lived on 17-23 Ms at GOMAXPROCS=2, switching threads 84,000
 * times.  So m takes a free slot if there is one; else it homes the
 * goroutine on a ring M that still schedules (sysmon's view), and keeps it
 * only if none does (goroutines blocked in C calls on every ring M: it
 * must start there, or wait for them).  Which ring M: its spawner's, once
 * the spawner is out of its goroutine (parked or done; Go's newproc runs
 * a new goroutine next on its spawner's P), so that partners spawned
 * together stay together; else the others in turn: a spawner still
 * running likely feeds what it spawns, as a pool's does.  In turn, one out
 * of any goroutine first, then one in a goroutine with others queued
 * behind it (it goes from one to the next: W13's clients).  One in its only
 * goroutine, its thread asleep, waits its turn for the lock or blocks in a
 * call: then m leaves g on the shared queue (NULL, no taker) for the first
 * ring M back.  Queued on one of them, it waited for that one alone while
 * the other came back to nothing (W5z: 64 zlib jobs of 5.5 ms from the
 * main thread, a 2.3 ms gap after each job on each thread until sysmon
 * took them back, 1.04-1.6x where ThreadPoolExecutor made 1.8x).  Whether
 * that thread is on a CPU (in C code that let the lock go) or asleep makes
 * no difference: the ring has a slot a CPU, so its Ms on CPUs leave m none
 * to run g on, and a kept g would make m one more thread taking turns for
 * good (decisions §12).  What m sent to an M that stalls afterwards,
 * sysmon takes back (proc_host_reclaim). */
static M *outside_ring_home(M *m, G *g, int32_t slots, M **taker)
{
    for (int32_t i = 0; i < slots; i++)
        if (atomic_load_explicit(&sched.spread_ring[i], memory_order_relaxed) == NULL &&
            ring_slot(m, (uint32_t)i) == m)
            return m;
    if (g->batch)
        return (*taker = batch_taker(m, g, slots)) != NULL ? NULL : m;
    if (g->spawner_m == m)
        return m;
    for (int32_t i = 0; i < slots; i++) {
        M *home = atomic_load_explicit(&sched.spread_ring[i], memory_order_acquire);
        if (home != NULL && home == g->spawner_m && home_schedules(home) &&
            !atomic_load_explicit(&home->in_g, memory_order_relaxed))
            return home;
    }
    M *picking = NULL;
    bool comes_back = false;
    for (int32_t k = 0; k <= slots; k++) {
        uint32_t i = atomic_fetch_add_explicit(&sched.spread_next, 1, memory_order_relaxed) %
                     (uint32_t)(slots + 1);
        M *home = atomic_load_explicit(&sched.spread_ring[i], memory_order_acquire);
        if (home == NULL || home == m || home == g->spawner_m || !home_schedules(home))
            continue;
        bool in_g = atomic_load_explicit(&home->in_g, memory_order_relaxed);
        bool queued = atomic_load_explicit(&home->hostq_len, memory_order_relaxed) > 0;
        if (!in_g && !queued)
            return home;
        if (in_g && queued) {
            if (picking == NULL)
                picking = home;
            continue;
        }
        /* Alone in its goroutine (waiting its turn for the lock, or in a
         * call), or between goroutines with one queued already (waiting
         * for the lock m holds: all m homed there would wait behind it). */
        comes_back = true;
    }
    if (picking != NULL)
        return picking;
    return comes_back ? NULL : m;
}

int32_t placement_ring_slots(void)
{
    int32_t slots = atomic_load(&sched.gomaxprocs);
    int32_t cpus = gopy_rt_num_cpu();
    if (slots < cpus)
        slots = cpus;
    return slots > MAX_PROCS ? MAX_PROCS : slots;
}

void placement_ring_resize(int32_t old_slots)
{
    int32_t slots = placement_ring_slots();
    if (slots >= old_slots)
        return; /* grown: the old spare's M holds a regular slot now */
    for (int32_t i = slots; i <= old_slots; i++) {
        M *s = atomic_exchange_explicit(&sched.spread_ring[i], NULL, memory_order_relaxed);
        if (s != NULL)
            atomic_store(&s->in_ring, false);
    }
}

int32_t placement_host_ms(void)
{
    return host_slots_on() ? atomic_load(&sched.gomaxprocs) : placement_ring_slots();
}

M *placement_home(M *m, G *g, M **taker)
{
    *taker = NULL;
    if (g->group == NULL || m->lockedg != NULL)
        return m;
    int32_t slots = placement_ring_slots();
    /* With the GIL off there is no one lock for every M to take turns
     * with: an M outside the ring has a host slot of its own, and runs
     * what it starts in parallel. */
    if (!host_slots_on() && !atomic_load_explicit(&m->in_ring, memory_order_relaxed))
        return outside_ring_home(m, g, slots, taker);
    if (slots < 2)
        return m;
    if (g->batch && g->spawner_m == m)
        return (*taker = batch_taker(m, g, slots)) != NULL ? NULL : m;
    if (!pool_parked_here(m, g->group))
        return m;
    /* Keep this M's share: as many members as each of the other slots
     * got from it (e->spread of them went elsewhere); none if the pool's
     * spawner, likely its feeder, lives here. */
    bool feeder_here = g->spawner_m == m;
    struct m_group *e = group_find(m, g->group);
    if (!feeder_here && (int64_t)e->live * (slots - 1) <= e->spread)
        return m;
    for (int32_t k = 0; k < slots; k++) {
        uint32_t i = atomic_fetch_add_explicit(&sched.spread_next, 1, memory_order_relaxed) %
                     (uint32_t)slots;
        M *home = ring_slot(m, i);
        /* The spare slot stands in for the feeder's M's own, whichever M
         * spreads the pool (with the GIL off, idle Ms start members too);
         * an M holds one slot at most, so the spare's is another M. */
        if (home != NULL && home == g->spawner_m)
            home = ring_slot(m, (uint32_t)slots);
        /* An M dedicated to a locked goroutine starts nothing new, nor
         * does one stalled in a goroutine soon. */
        if (home == NULL || home == m || !home_schedules(home))
            continue;
        e->spread++;
        return home;
    }
    return m;
}

/* ---- which waiting receiver gets a value ---------------------------------
 *
 * A pool's members wait on one channel in the order they parked, and two
 * neighbours in that order may share a home.  Handing two jobs in a row to
 * them would run the second only after the first, on one M, while another
 * member sits on an idle M.  So a value goes to the first of the oldest 64
 * receivers whose home can run it now; failing that, to the oldest (FIFO).
 * (A pool's members park in the order they started, its first thread's
 * share first: the look must reach past them.)
 * Go's spec leaves the choice open; the runtime prefers fairness except
 * where it would serialise work.
 */
enum { RECEIVER_SCAN = 64 };

/* Could g run at once if readied by the calling thread?  C goroutines run
 * on any M; a host goroutine needs its home with nothing queued, and not
 * busy running someone else (unless that is us, about to let it go). */
static bool home_free(G *g, M *self)
{
    M *home = g->lockedm != NULL ? g->lockedm : g->home;
    if (g->kind != G_HOST || home == NULL)
        return true;
    if (atomic_load_explicit(&home->hostq_len, memory_order_relaxed) != 0)
        return false;
    return home == self || !atomic_load_explicit(&home->in_g, memory_order_relaxed);
}

sudog *placement_claim_receiver(waitq *q)
{
    /* One receiver (ping-pong, a pipeline stage): nothing to choose. */
    if (q->first == q->last)
        return waitq_claim_first(q);
    M *self = getm(); /* a TLS look-up in a shared library: once per send */
    for (;;) {
        sudog *free_home = NULL;
        int i = 0;
        for (sudog *s = q->first; s != NULL && i < RECEIVER_SCAN; s = s->next, i++) {
            if (home_free(s->g, self)) {
                free_home = s;
                break;
            }
        }
        /* None free, or the oldest is: FIFO. */
        if (free_home == NULL || free_home == q->first)
            return waitq_claim_first(q);
        waitq_remove(q, free_home);
        if (g_claim(free_home->g))
            return free_home;
        /* Lost to another select case, or given up: look again. */
    }
}
