/*
 * offload.c -- gopy_offload: run a call the runtime cannot see into (a C
 * library that blocks, a long computation without the host lock) on a
 * helper thread, with the calling goroutine parked until it returns, so
 * that the goroutine's M runs other goroutines meanwhile.  Go's cgo calls
 * keep their M for the same reason; ours cannot, since a Python goroutine
 * is bound to its M, so the call moves instead of the goroutine.
 *
 * Pool policy:
 *  - A job is handed to an idle helper if there is one (the one idle the
 *    shortest time: the others can then reach their idle timeout); else a
 *    new helper is made for it, up to the cap; beyond the cap jobs wait in
 *    a FIFO for the first helper to finish.
 *  - Cap: 64 helpers, or GOPY_OFFLOAD_THREADS.  Offloaded calls mostly
 *    wait (on a device, a server, a lock in a C library), so the useful
 *    number in flight is not the core count; 64 keeps bursts of such calls
 *    concurrent (100 goroutines offloading a 20 ms wait take two rounds,
 *    not 100) while 10,000 goroutines offloading at once make 64 threads,
 *    not 10,000 (each a kernel task with its own stack of the default
 *    size, 8 MiB of address space).  Calls that wait for each other need
 *    more helpers than there are of them: raise the cap.
 *  - Idle timeout: 10 s.  Making a helper costs tens of microseconds
 *    (docs/decisions.md §10), an idle one costs only its stack; a program
 *    that offloads in bursts a few seconds apart keeps its helpers, one
 *    that is done offloading gets its threads back within 10 s.
 *  - If no helper can be made and none exists, fn runs on the calling M,
 *    as a plain call that blocks it (the best that is left: the call
 *    still happens); so do jobs that were queued for a helper that then
 *    could not be made.
 *
 * Invariants (pool.lock):
 *  - jobs wait in the queue only while no helper is idle: a job finds an
 *    idle helper before it queues, and a helper looks at the queue before
 *    it goes idle;
 *  - so every queued job has a busy helper (or one being made) that will
 *    look at the queue when it is done;
 *  - a helper on the idle list has no job; whoever takes it off hands it
 *    one and wakes it, under the lock, so that no wake-up can land in a
 *    later idle spell.
 * Lock order: pool.lock is a leaf.  Nothing else is taken under it, and
 * no G is readied under it (goready takes scheduler locks).
 */
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>

enum { DEFAULT_MAX_THREADS = 64 };
static const int64_t DEFAULT_IDLE_NS = 10 * (int64_t)1000000000;

typedef struct offload_job offload_job;
typedef struct helper helper;

/* One offloaded call.  Lives on the parked goroutine's stack: valid until
 * the goroutine resumes, so the helper reads g before readying it and
 * never touches the job afterwards. */
struct offload_job {
    void (*fn)(void *);
    void *arg;
    G *g;
    offload_job *next; /* pool queue link */
    /* No helper will run it (none could be made): the goroutine runs fn
     * itself once it resumes. */
    bool run_inline;
};

/* A helper thread, on its own stack. */
struct helper {
    rt_note wake;           /* slept on while idle */
    offload_job *job;       /* handed over by whoever took it off the idle list */
    helper *prev, *next;    /* the idle list */
};

/* Everything guarded by lock, except active (read by gopy_rt_all_asleep
 * without it). */
static struct {
    rt_mutex lock;
    offload_job *head, *tail; /* jobs waiting for a helper, FIFO */
    int32_t queued;
    helper *idle;         /* idle helpers, most recently idle first */
    int32_t threads;      /* helpers alive, or being made */
    int32_t busy;         /* helpers with a job */
    int32_t max_threads;  /* 0 until first use reads GOPY_OFFLOAD_THREADS */
    int64_t idle_ns;
    /* Jobs submitted whose goroutine is not yet readied. */
    _Atomic int64_t active;
} pool = {.lock = RT_MUTEX_INIT(LR_OFFLOAD), .idle_ns = DEFAULT_IDLE_NS};

static int32_t env_max_threads(void)
{
    const char *s = getenv("GOPY_OFFLOAD_THREADS");
    if (s != NULL && *s != '\0') {
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 10000)
            return (int32_t)n;
    }
    return DEFAULT_MAX_THREADS;
}

/* pool.lock held. */
static int32_t max_threads(void)
{
    if (pool.max_threads == 0)
        pool.max_threads = env_max_threads();
    return pool.max_threads;
}

static void idle_remove(helper *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        pool.idle = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
}

/* Give job to an idle helper, or queue it; pool.lock held.  The wake-up
 * is made under the lock: the helper cannot start another idle spell
 * (and clear its note) before it lands. */
static void dispatch_locked(offload_job *job)
{
    helper *h = pool.idle;
    if (h == NULL) {
        job->next = NULL;
        if (pool.tail != NULL)
            pool.tail->next = job;
        else
            pool.head = job;
        pool.tail = job;
        pool.queued++;
        return;
    }
    idle_remove(h);
    h->job = job;
    pool.busy++;
    rt_note_wakeup(&h->wake);
}

static offload_job *queue_pop_locked(void)
{
    offload_job *job = pool.head;
    if (job != NULL) {
        pool.head = job->next;
        if (pool.head == NULL)
            pool.tail = NULL;
        pool.queued--;
    }
    return job;
}

/* The goroutine's call is over (run, or left for it to run): ready it. */
static void job_done(offload_job *job)
{
    G *g = job->g; /* the job dies once g runs */
    /* Nobody else claims an offload wait: no timeout, no select, and
     * never a foreign thread's.  The claim keeps the one rule. */
    if (g_claim(g))
        goready(g);
    /* Only now: until g is ready, the runtime is not asleep. */
    atomic_fetch_sub(&pool.active, 1);
}

/* Sleep on the idle list until handed a job (returned) or idle for
 * pool.idle_ns (NULL: the helper has left the pool).  pool.lock held on
 * entry, released on return. */
static offload_job *helper_idle(helper *self)
{
    self->job = NULL;
    rt_note_clear(&self->wake);
    self->prev = NULL;
    self->next = pool.idle;
    if (pool.idle != NULL)
        pool.idle->prev = self;
    pool.idle = self;
    int64_t deadline = rt_nanotime() + pool.idle_ns;
    for (;;) {
        rt_unlock(&pool.lock);
        int64_t left = deadline - rt_nanotime();
        rt_note_sleep_for(&self->wake, left > 0 ? left : 0);
        rt_lock(&pool.lock);
        offload_job *job = self->job;
        if (job != NULL) {
            rt_unlock(&pool.lock);
            return job;
        }
        if (rt_nanotime() >= deadline) {
            idle_remove(self);
            pool.threads--;
            rt_unlock(&pool.lock);
            return NULL;
        }
    }
}

static void *helper_main(void *arg)
{
    helper self = {0};
    offload_job *job = arg;
    rt_thread_name("gopy-offload");
    while (job != NULL) {
        job->fn(job->arg);
        job_done(job);
        rt_lock(&pool.lock);
        pool.busy--;
        /* Over a lowered cap: leave.  The helpers that stay (at least the
         * cap, so at least one) take what is queued. */
        if (pool.threads > max_threads()) {
            pool.threads--;
            rt_unlock(&pool.lock);
            return NULL;
        }
        job = queue_pop_locked();
        if (job != NULL) {
            pool.busy++;
            rt_unlock(&pool.lock);
        } else {
            job = helper_idle(&self);
        }
    }
    return NULL;
}

/* No helper could be made and none is left: the goroutines of the jobs
 * queued meanwhile run their calls themselves.  pool.lock held on entry,
 * released on return. */
static void unqueue_all_locked(void)
{
    offload_job *list = pool.head;
    pool.head = pool.tail = NULL;
    pool.queued = 0;
    rt_unlock(&pool.lock);
    while (list != NULL) {
        offload_job *next = list->next; /* before job_done: list dies then */
        list->run_inline = true;
        job_done(list);
        list = next;
    }
}

/* gopark's unlock function: g is off its stack and waiting, so a helper
 * may ready it from now on.  false: no helper will run the job (the park
 * is undone and the goroutine runs fn itself). */
static bool offload_submit(G *g, void *arg)
{
    (void)g;
    offload_job *job = arg;
    atomic_fetch_add(&pool.active, 1);
    rt_lock(&pool.lock);
    if (pool.idle == NULL && pool.threads < max_threads()) {
        pool.threads++;
        pool.busy++;
        rt_unlock(&pool.lock);
        pthread_t t;
        if (rt_thread_start(&t, 0, helper_main, job) == 0)
            return true;
        rt_lock(&pool.lock);
        pool.threads--;
        pool.busy--;
        if (pool.threads == 0) {
            unqueue_all_locked();
            atomic_fetch_sub(&pool.active, 1);
            job->run_inline = true;
            return false;
        }
        /* Other helpers exist: one of them will take it. */
    }
    dispatch_locked(job);
    rt_unlock(&pool.lock);
    return true;
}

int gopy_offload(void (*fn)(void *arg), void *arg)
{
    if (fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    G *g = getg();
    if (g == NULL) {
        /* A plain thread (or a helper: offload nested in an offloaded
         * call) may block: nothing else runs on it. */
        fn(arg);
        return 0;
    }
    offload_job job = {.fn = fn, .arg = arg, .g = g};
    g_prepare_wait(g);
    gopark(offload_submit, &job, GOPY_WAIT_OFFLOAD, NULL);
    if (job.run_inline)
        fn(arg);
    return 0;
}

bool offload_pending(void)
{
    return atomic_load(&pool.active) != 0;
}

void offload_stats(gopy_rt_stats *s)
{
    rt_lock(&pool.lock);
    s->offload_threads = pool.threads;
    s->offload_busy = pool.busy;
    s->offload_queued = pool.queued;
    rt_unlock(&pool.lock);
}

void offload_after_fork(void)
{
    /* The helpers are gone, with the jobs of goroutines the child forgot:
     * start empty, keeping the configuration. */
    rt_mutex_init(&pool.lock, LR_OFFLOAD);
    pool.head = pool.tail = NULL;
    pool.queued = 0;
    pool.idle = NULL;
    pool.threads = pool.busy = 0;
    atomic_store(&pool.active, 0);
}

int gopy_rt_offload_set_max_threads(int n)
{
    rt_lock(&pool.lock);
    int prev = max_threads();
    if (n >= 1)
        pool.max_threads = n;
    rt_unlock(&pool.lock);
    return prev;
}

int64_t gopy_rt_offload_set_idle_timeout(int64_t ns)
{
    rt_lock(&pool.lock);
    int64_t prev = pool.idle_ns;
    if (ns > 0)
        pool.idle_ns = ns;
    rt_unlock(&pool.lock);
    return prev;
}
