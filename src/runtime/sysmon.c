/*
 * sysmon.c -- the system monitor: a thread without a P that watches the
 * Ms, as Go's sysmon does.
 *
 * The runtime cannot see a goroutine enter a blocking call (time.sleep, a
 * socket read, a C library): there is no entersyscall.  So sysmon watches
 * each M's schedtick.  An M whose G has run for a whole tick without
 * coming back to the scheduler is "stuck".  In C mode, if its P has work
 * queued and its thread is asleep in the kernel (it blocks rather than
 * computes, or waits for a CPU), sysmon adds a P and starts an M on it
 * (Go's syscall handoff; see proc_compensate).  A computing G is left
 * alone: more threads than GOMAXPROCS would only time-slice the cores.
 * (Started host goroutines need no watching where the host lock is the
 * GIL: an M blocked on it takes over the moment a busy M lets it go;
 * proc.c.  Where it is not, a host M inside a call that let the host go
 * has its slot handed on: host_slots.c.)  It
 * recruits an M for unstarted host goroutines when none has started for
 * HOST_START_PATIENCE, no M is on its way for them and fewer busy Ms
 * still come back to the scheduler than host goroutines may use
 * (placement_host_ms), takes back the unstarted goroutines placement
 * queued on an M that has since stalled in a goroutine
 * (proc_host_reclaim), and warns about Ms that stall the goroutines bound
 * to them.
 *
 * It also starts an M when timers are overdue and nobody runs them, and
 * polls the netpoller when nobody has for 10 ms (Ms busy with goroutines
 * never get to findrunnable's poll), readying what it finds.  It polls
 * every 20 us while things happen, backs off to 10 ms when nothing does,
 * and, once backed off, sleeps until woken when every M is idle (0% CPU
 * when idle) and nothing needs watching: no timer, and an M sleeping in
 * the netpoller if anyone waits on it.
 */
#define _GNU_SOURCE
#include "runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    SYSMON_MIN_US = 20,
    SYSMON_MAX_US = 10 * 1000,
    IDLE_BACKOFF_US = 1000, /* quiet this long before backing off */
};
#define NETPOLL_AGE_NS ((int64_t)10 * 1000 * 1000) /* poll when nobody has for this long */
/* Unstarted host goroutines waiting this long with none started get an M
 * (proc_host_stalled), and sysmon looks at least twice as often meanwhile:
 * long enough that Ms busy with their own goroutines, which start one
 * every 61 picks, are not taken for stuck (docs/decisions.md §15). */
#define HOST_START_PATIENCE_NS ((int64_t)1000 * 1000)
/* An M inside a goroutine that scheduled host goroutines this recently
 * is still coming back to the scheduler (watch_host_queue): longer than
 * the patience, as an M waiting its turn for the GIL behind a few others
 * may take longer than that between two schedules. */
#define HOST_PICKING_NS (3 * HOST_START_PATIENCE_NS)

void sysmon_wake(void)
{
    if (atomic_load_explicit(&sched.sysmon_sleeping, memory_order_relaxed) &&
        atomic_exchange(&sched.sysmon_sleeping, false))
        rt_note_wakeup(&sched.sysmon_note);
}

static int64_t thread_cpu_ns(M *m)
{
    struct timespec ts;
    if (!atomic_load_explicit(&m->has_cpuclock, memory_order_acquire) ||
        clock_gettime(m->cpuclock, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Has m's thread been on a CPU for most of the time since sysmon first
 * saw its goroutine stuck (mon_since, when it sampled mon_cpu)?  False
 * when either sample is unknown. */
static bool m_computing(M *m, int64_t now)
{
    int64_t cpu = thread_cpu_ns(m);
    return cpu >= 0 && m->mon_cpu >= 0 && (cpu - m->mon_cpu) * 2 > now - m->mon_since;
}

/* Is the M's thread asleep in the kernel (state S or D: a blocking call),
 * as opposed to runnable but not on a CPU?  On a loaded machine a
 * descheduled thread gains no CPU time either, and lending its P a
 * second thread would only add to the load.  Unknown: assume blocked. */
static bool m_thread_sleeping(M *m)
{
    if (!atomic_load_explicit(&m->has_cpuclock, memory_order_acquire))
        return true;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)m->tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return true;
    buf[n] = '\0';
    /* "tid (comm) S ...": comm may hold spaces and parens; the state is
     * after the last ')'. */
    const char *paren = strrchr(buf, ')');
    if (paren == NULL || paren[1] != ' ')
        return true;
    return paren[2] == 'S' || paren[2] == 'D';
}

static bool p_has_work(P *p)
{
    if (atomic_load(&p->runnext) != NULL)
        return true;
    return atomic_load(&p->runqtail) != atomic_load(&p->runqhead);
}

enum watch { W_NOTHING, W_SUSPECT, W_ACTED };

/* An M whose goroutine keeps the goroutines bound to its thread waiting,
 * past the stall-warning limit: say what it sees, once per stretch.  A
 * goroutine computing without parking where it cannot be preempted (C
 * code, Python a C function called back, a `with` block of a threading
 * lock, preemption off); or a call blocked in the kernel: the hazard
 * README.md ("How it schedules") warns of, a goroutine holding a
 * threading.Lock across a park and another of its thread blocking on that
 * lock, which stalls the thread with the lock's holder bound to it.  The binding adds the goroutine's traceback
 * (the stalled hook). */
static void maybe_warn_stall(M *m, int64_t now)
{
    int64_t limit = atomic_load_explicit(&sched.stall_warn_ns, memory_order_relaxed);
    if (limit <= 0 || m->mon_warned || now - m->mon_run_since < limit ||
        atomic_load(&m->hostq_len) == 0)
        return;
    m->mon_warned = true;
    double secs = (double)(now - m->mon_run_since) / 1e9;
    bool computing = m_computing(m, now);
    int waiting = (int)atomic_load(&m->hostq_len);
    char buf[512];
    if (computing)
        snprintf(buf, sizeof buf,
                 "gopy: warning: thread M%lld has computed in one goroutine for %.1f s without "
                 "parking while %d goroutine(s) bound to that thread wait to run; it runs where "
                 "it cannot be preempted (C code, Python called back from C, a with block of a "
                 "threading lock) or preemption is off.  Goroutines on that thread:\n",
                 (long long)m->id, secs, waiting);
    else
        snprintf(buf, sizeof buf,
                 "gopy: warning: thread M%lld has been blocked in one goroutine's call for %.1f s "
                 "while %d goroutine(s) bound to that thread wait to run.  A threading.Lock held "
                 "across a gopy operation?  (README: rules).  Goroutines on that thread:\n",
                 (long long)m->id, secs, waiting);
    ssize_t w = write(STDERR_FILENO, buf, strlen(buf));
    (void)w;
    rt_dump_goroutines(STDERR_FILENO, m);
    const struct gopy_host_hooks *hooks = sched.host_hooks;
    if (hooks != NULL && hooks->stalled != NULL)
        hooks->stalled(&m->host);
}

void gopy_rt_set_stall_warning(int64_t ns)
{
    atomic_store(&sched.stall_warn_ns, ns);
}

void gopy_rt_set_preempt_slice(int64_t ns)
{
    atomic_store(&sched.preempt_ns, ns > 0 ? ns : 0);
}

int64_t gopy_rt_preempt_slice(void)
{
    return atomic_load(&sched.preempt_ns);
}

/* When sysmon must look again for preemption (sysmon's thread only; 0:
 * nothing due): the end of a running slice, or soon after a request, to
 * see the stretch that follows it begin. */
static int64_t preempt_look_at;
#define PREEMPT_FOLLOW_NS ((int64_t)500 * 1000)

static void look_again_at(int64_t t)
{
    if (preempt_look_at == 0 || t < preempt_look_at)
        preempt_look_at = t;
}

/* Does an M waiting for a host slot have goroutines of its own to run
 * (host_slots.c)?  Looked at once per tick (sysmon's thread only). */
static bool slots_wanted_by_bound;

/* m holds a host slot that an M with goroutines of its own waits for. */
static bool slot_wanted(M *m)
{
    return slots_wanted_by_bound && atomic_load(&m->slot) == SLOT_HELD;
}

/* Ask m's goroutine, running the stretch `tick`, to yield at its next safe
 * point (the binding's preempt hook must exist). */
static void ask_preempt(M *m, uint64_t tick, int64_t now)
{
    m->mon_asked = now;
    atomic_store(&m->preempt_tick, tick);
    sched.host_hooks->preempt(&m->host);
}

/* Go's sysmon preempts a goroutine that has run 10 ms (retake): here, a
 * host goroutine that has run a slice while goroutines bound to its M
 * wait, or while an M with goroutines of its own waits for its M's host
 * slot.  Only the binding can stop Python code at a safe point: ask it,
 * and again after each further slice the goroutine runs on.  (A locked goroutine's M has nobody else to run; the
 * M's own check, gopy_rt_preempt_take, declines for it.) */
static void maybe_preempt(M *m, uint64_t tick, int64_t now)
{
    int64_t slice = atomic_load_explicit(&sched.preempt_ns, memory_order_relaxed);
    const struct gopy_host_hooks *hooks = sched.host_hooks;
    if (slice <= 0 || hooks == NULL || hooks->preempt == NULL ||
        (atomic_load(&m->hostq_len) == 0 && !slot_wanted(m)))
        return;
    if (now - m->mon_run_since < slice) {
        look_again_at(m->mon_run_since + slice);
        return;
    }
    if (m->mon_asked != 0 && now - m->mon_asked < slice) {
        /* Asked, and the goroutine still runs: it has not reached its
         * next back-edge yet (look again soon), or it declined (where it
         * cannot be preempted: ask again after another slice). */
        bool taken = atomic_load(&m->preempt_tick) == 0;
        look_again_at(taken ? m->mon_asked + slice : now + PREEMPT_FOLLOW_NS);
        return;
    }
    ask_preempt(m, tick, now);
    look_again_at(now + PREEMPT_FOLLOW_NS);
}

/* Could sysmon act on m if its goroutine stays stuck: hand on the P it
 * holds (proc_compensate) or revoke its host slot?  A host M where the
 * host lock is the GIL holds neither: inside a goroutine it is often
 * just waiting its turn for the GIL (W13's ring Ms, every socket call),
 * and watching it closely would keep sysmon polling every 20 us for
 * nothing (docs/decisions.md §6, "Later"). */
static bool may_act(M *m)
{
    return atomic_load_explicit(&m->mon_p, memory_order_relaxed) != NULL ||
           atomic_load(&m->slot) == SLOT_HELD;
}

/* Look at one M: did it find it stuck (suspect, where sysmon could act
 * on it), or act? */
static enum watch watch_m(M *m, int64_t now)
{
    uint64_t tick = atomic_load_explicit(&m->schedtick, memory_order_relaxed);
    if (!atomic_load_explicit(&m->in_g, memory_order_relaxed) || tick != m->mon_tick) {
        m->mon_tick = tick;
        m->mon_since = now;
        m->mon_cpu = -1;
        m->mon_acted = false;
        m->mon_warned = false;
        m->mon_run_since = now;
        m->mon_asked = 0;
        return W_NOTHING;
    }
    maybe_warn_stall(m, now);
    maybe_preempt(m, tick, now);
    if (m->mon_acted)
        return W_NOTHING;
    /* Same G running since mon_since. */
    if (m->mon_cpu < 0) {
        /* First sight of it stuck: sample its CPU time, judge next tick. */
        m->mon_cpu = thread_cpu_ns(m);
        m->mon_since = now;
        return may_act(m) ? W_SUSPECT : W_NOTHING;
    }
    if (host_slot_revoke(m)) {
        /* Out of the host in a call while Ms wait for a slot: its slot
         * went to the first of them (Go's retake of a P in a syscall);
         * the goroutine takes one again before it runs on, asked to
         * yield at its next safe point once the call returns. */
        m->mon_acted = true;
        if (atomic_load_explicit(&sched.preempt_ns, memory_order_relaxed) > 0 &&
            sched.host_hooks->preempt != NULL)
            ask_preempt(m, tick, now);
        return W_ACTED;
    }
    P *p = atomic_load_explicit(&m->mon_p, memory_order_relaxed);
    if (p != NULL && (p_has_work(p) || atomic_load(&sched.runqsize) > 0) &&
        atomic_load(&sched.npidle) == 0) {
        if (!m_computing(m, now) && m_thread_sleeping(m)) {
            m->mon_acted = true;
            proc_compensate(m);
            return W_ACTED;
        }
    }
    return W_NOTHING;
}

/* No M is running a goroutine or about to: nothing to watch. */
static bool all_idle(void)
{
    return atomic_load(&sched.nmidle) == atomic_load(&sched.mcount);
}

/* Waiters on the netpoller and no M sleeping in it: somebody must poll. */
static bool netpoll_unwatched(void)
{
    return netpoll_waiters() > 0 && atomic_load(&sched.netpoll_sleeper) == NULL;
}

static bool nothing_to_watch(void)
{
    return all_idle() && timers_next() == 0 && !netpoll_unwatched() &&
           atomic_load(&sched.hostq_len) == 0;
}

/* The unstarted host goroutines' queue as sysmon last saw it move
 * (sysmon's thread only). */
static struct {
    uint64_t starts;
    int64_t since;
} host_seen;

/* Note when m last scheduled host goroutines while it could start
 * unstarted ones (hosttick moved), and whether it has stalled: inside one
 * goroutine without scheduling for HOST_PICKING_NS.  Placement sends a
 * stalled M nothing, and the unstarted goroutines already queued on it go
 * back to sched.hostq, now and every HOST_PICKING_NS while it stays so
 * (placement may have sent more before it saw the flag).  Returns whether
 * m has goroutines queued that may be taken back soon (look often). */
static bool watch_host_picks(M *m, int64_t now)
{
    uint32_t tick = atomic_load_explicit(&m->hosttick, memory_order_relaxed);
    bool in_g = atomic_load_explicit(&m->in_g, memory_order_relaxed);
    if (tick != m->mon_hosttick || !in_g) {
        if (tick != m->mon_hosttick) {
            m->mon_hosttick = tick;
            m->mon_host_since = now;
        }
        m->mon_reclaimed = 0;
        if (atomic_load_explicit(&m->host_stalled, memory_order_relaxed))
            atomic_store(&m->host_stalled, false);
        return false;
    }
    bool queued = atomic_load_explicit(&m->hostq_placed, memory_order_relaxed) > 0;
    if (now - m->mon_host_since < HOST_PICKING_NS)
        return queued;
    if (!atomic_load_explicit(&m->host_stalled, memory_order_relaxed))
        atomic_store(&m->host_stalled, true);
    if (queued && (m->mon_reclaimed == 0 || now - m->mon_reclaimed >= HOST_PICKING_NS)) {
        m->mon_reclaimed = now;
        proc_host_reclaim(m);
    }
    return false;
}

/* Ms inside a goroutine that have scheduled host goroutines within
 * HOST_PICKING_NS: they come back to the scheduler, and take an unstarted
 * goroutine at least every 61 picks. */
static int32_t host_picking_ms(int64_t now)
{
    int32_t n = 0;
    for (M *m = atomic_load(&sched.allm); m != NULL; m = m->alllink)
        if (!m->dying && atomic_load_explicit(&m->in_g, memory_order_relaxed) &&
            now - m->mon_host_since < HOST_PICKING_NS)
            n++;
    return n;
}

/* Unstarted host goroutines that nobody has started for a while: see
 * proc_host_stalled.  Not while as many Ms as host goroutines may use
 * (placement_host_ms) still come back to the scheduler now and then: they
 * will start them, and where the host lock is the GIL, their goroutines
 * let it go around every socket call and wait to take it back, each for
 * its turn; one more M only lengthens that queue, slows each M's turns,
 * and so made the next stall: 10,000 W13 clients recruited 60-110
 * standbys (docs/decisions.md §15, "Later").
 * Returns whether any wait. */
static bool watch_host_queue(int64_t now)
{
    uint64_t starts = atomic_load_explicit(&sched.hostq_starts, memory_order_relaxed);
    bool waiting = atomic_load(&sched.hostq_len) > 0;
    if (!waiting || starts != host_seen.starts) {
        host_seen.starts = starts;
        host_seen.since = now;
        return waiting;
    }
    if (now - host_seen.since >= HOST_START_PATIENCE_NS &&
        host_picking_ms(now) < placement_host_ms()) {
        proc_host_stalled();
        host_seen.since = now;
    }
    return true;
}

static void *sysmon(void *arg)
{
    (void)arg;
    rt_thread_name("gopy-sysmon");
    int64_t delay_us = SYSMON_MIN_US;
    int64_t quiet_since = rt_nanotime();
    for (;;) {
        /* Only once backed off: an M leaving the idle list wakes a
         * sleeping sysmon, and Ms that go idle and wake by turns (a
         * goroutine talking to a peer outside) would otherwise wake it on
         * every exchange. */
        if (delay_us >= SYSMON_MAX_US && nothing_to_watch()) {
            rt_note_clear(&sched.sysmon_note);
            atomic_store(&sched.sysmon_sleeping, true);
            atomic_thread_fence(memory_order_seq_cst);
            if (nothing_to_watch()) {
                rt_note_sleep(&sched.sysmon_note);
            } else if (!atomic_exchange(&sched.sysmon_sleeping, false)) {
                rt_note_sleep(&sched.sysmon_note); /* a waker owes us one */
            }
            delay_us = SYSMON_MIN_US;
            quiet_since = rt_nanotime();
        }
        rt_usleep(delay_us);
        int64_t now = rt_nanotime();
        bool busy = false;
        preempt_look_at = 0;
        slots_wanted_by_bound = host_slot_wanted_by_bound();
        bool host_watching = false;
        for (M *m = atomic_load(&sched.allm); m != NULL; m = m->alllink) {
            if (m->dying)
                continue;
            if (watch_host_picks(m, now))
                host_watching = true;
            if (watch_m(m, now) != W_NOTHING)
                busy = true;
        }
        int64_t next = timers_next();
        if (next != 0 && next < now - 1000000)
            wakep();
        if (netpoll_unwatched() && now - atomic_load(&sched.netpoll_last) > NETPOLL_AGE_NS)
            goready_list(netpoll(0));
        bool host_waiting = watch_host_queue(now) || host_watching;
        /* Poll fast only while some M looks stuck or was just helped:
         * the next goroutine may block the same way (200 goroutines each
         * calling time.sleep).  Otherwise back off, as Go's sysmon does. */
        if (busy)
            quiet_since = now;
        if (now - quiet_since > (int64_t)IDLE_BACKOFF_US * 1000) {
            delay_us *= 2;
            if (delay_us > SYSMON_MAX_US)
                delay_us = SYSMON_MAX_US;
        } else {
            delay_us = SYSMON_MIN_US;
        }
        if (host_waiting && delay_us > HOST_START_PATIENCE_NS / 2000)
            delay_us = HOST_START_PATIENCE_NS / 2000;
        if (preempt_look_at != 0) {
            int64_t until_us = (preempt_look_at - now) / 1000;
            if (until_us < SYSMON_MIN_US)
                until_us = SYSMON_MIN_US;
            if (delay_us > until_us)
                delay_us = until_us;
        }
    }
    return NULL;
}

void sysmon_start(void)
{
    rt_lock(&sched.lock);
    if (sched.sysmon_started) {
        rt_unlock(&sched.lock);
        return;
    }
    sched.sysmon_started = true;
    rt_unlock(&sched.lock);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 << 10);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_create(&t, &attr, sysmon, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}
