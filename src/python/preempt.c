/*
 * preempt.c -- preemption of Python goroutines (docs/decisions.md §18).
 *
 * sysmon sees a goroutine run a whole slice (10 ms) while goroutines bound
 * to its thread wait, and calls the preempt hook: gopy_preempt_request,
 * on sysmon's thread, without the GIL.  Only the goroutine's own thread can
 * switch it, and only between bytecodes.  So the preempter thread takes
 * the GIL (the goroutine's thread has then let it go between bytecodes, or
 * in a blocking call), and arms a one-shot hook that the goroutine's
 * thread runs at its next loop back-edge:
 *   3.12+: sys.monitoring JUMP events, local to the code objects on that
 *          thread's stack, under a tool id of gopy's own: users' tools
 *          (debuggers, coverage, profilers) keep theirs, and code nobody
 *          preempts is never instrumented;
 *   3.11:  a C trace function on that thread (_PyEval_SetTrace); it puts
 *          back the thread's own tracer, if any, and passes it the event.
 * The hook takes the request (gopy_rt_preempt_take: it may be stale, the
 * goroutine having parked since) and yields, unless
 *   - the running code is Python that a C function called back
 *     (gopy_frame_called_back): a finalizer, an import, a C library's
 *     callback may rely on nothing else running on their thread meanwhile;
 *   - the goroutine is in a `with` block of one of threading's locks
 *     (is_lock_exit);
 *   - it is locked to its thread (the runtime declines).
 * sysmon asks again after another slice.  When nothing is due, nothing is
 * armed: no cost.
 *
 * The same thread prints the Python traceback after sysmon's stall warning
 * (gopy_preempt_print_traceback).
 *
 * The request queue is guarded by `pre.lock`; the armed-hook bookkeeping
 * by the GIL, and by MON_LOCK where there is none.
 */
#include "binding.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

enum { QUEUE_CAP = 64 };

/* Threads (their Ms' thread states) to preempt, from sysmon to the
 * preempter; all fields under lock. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct request {
        PyThreadState *ts;
        bool traceback; /* print its traceback (a stall), else preempt it */
    } queue[QUEUE_CAP];
    int n;
    bool wake_made, started;
} pre = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void arm(PyThreadState *ts);
static void disarm_thread(unsigned long tid);
static void sweep(void);

/* Hooks armed and not yet taken (3.12+), for the preempter to sweep. */
static _Atomic int narmed;
/* How long an armed hook may wait before the preempter takes it back: at
 * least twice the slice (sysmon asks again every slice). */
#define SWEEP_NS ((int64_t)20 * 1000 * 1000)

/* threading's lock types and their __exit__ (set at module init, then
 * read-only): a goroutine in a `with` block of one is not preempted. */
enum { NLOCKS = 4 };
static PyTypeObject *lock_types[NLOCKS];
static PyObject *lock_exits[NLOCKS];

int gopy_preempt_init(void)
{
    static const char *const where[NLOCKS][2] = {
        {"_thread", "LockType"}, {"_thread", "RLock"}, {"threading", "Condition"},
        {"threading", "Semaphore"}};
    for (int i = 0; i < NLOCKS; i++) {
        PyObject *mod = PyImport_ImportModule(where[i][0]);
        PyObject *t = mod != NULL ? PyObject_GetAttrString(mod, where[i][1]) : NULL;
        Py_XDECREF(mod);
        if (t == NULL || !PyType_Check(t)) {
            if (t != NULL)
                PyErr_Format(PyExc_ImportError, "%s.%s is not a type", where[i][0], where[i][1]);
            Py_XDECREF(t);
            return -1;
        }
        lock_types[i] = (PyTypeObject *)t;
        if ((lock_exits[i] = PyObject_GetAttrString(t, "__exit__")) == NULL)
            return -1;
    }
    return 0;
}

static bool is_lock(PyObject *o)
{
    for (int i = 0; i < NLOCKS; i++)
        if (PyObject_TypeCheck(o, lock_types[i]))
            return true;
    return false;
}

/* `with lock:` keeps the block's exit on the frame's value stack until the
 * block ends: lock.__exit__ bound (3.11-3.13), or the type's __exit__ and
 * the lock (3.14+).  Preempted there, the goroutine would keep the lock
 * while others of its thread run; one of them taking it would block the
 * thread, and the holder with it, for good. */
static bool is_lock_exit(PyObject *o, void *arg)
{
    (void)arg;
    if (PyCFunction_Check(o)) {
        PyObject *self = PyCFunction_GET_SELF(o);
        return self != NULL && strcmp(((PyCFunctionObject *)o)->m_ml->ml_name, "__exit__") == 0 &&
               is_lock(self);
    }
    if (PyMethod_Check(o))
        o = PyMethod_GET_FUNCTION(o);
    for (int i = 0; i < NLOCKS; i++)
        if (o == lock_exits[i])
            return true;
    return false;
}

/* Yield the goroutine running this hook if its preemption is due and safe
 * here; the hooks armed for this thread go either way. */
static void preempt_here(void)
{
    int due = gopy_rt_preempt_take();
    if (due == GOPY_PREEMPT_NONE)
        return;
    disarm_thread(PyThread_get_thread_ident());
    PyThreadState *ts = PyThreadState_Get();
    if (due == GOPY_PREEMPT_DUE && !gopy_frame_called_back(ts) &&
        !gopy_frames_hold(ts, is_lock_exit, NULL))
        gopy_rt_preempt_yield();
}

#if PY_VERSION_HEX >= 0x030C0000 /* sys.monitoring (PEP 669) */

/* The GIL, or with the GIL off a PyMutex (a thread waiting for it
 * detaches, so a stop-the-world inside set_local_events can proceed).  Not
 * a critical section: those are let go whenever the holder blocks, as it
 * may inside set_local_events, and another thread's count and events
 * could then interleave with ours (a code object counted as armed with its
 * events off: never preempted again). */
#ifdef Py_GIL_DISABLED
static PyMutex mon_lock;
#define MON_LOCK() PyMutex_Lock(&mon_lock)
#define MON_UNLOCK() PyMutex_Unlock(&mon_lock)
#else
#define MON_LOCK() ((void)0)
#define MON_UNLOCK() ((void)0)
#endif

/* Made by the preempter before it publishes `tool` (0 until then), then
 * read-only but for `armed` and `by_thread`, which the preempter and the
 * hooks change under MON_LOCK, together with the events they set. */
static struct {
    _Atomic int tool;           /* the tool id gopy holds; -1: none free */
    PyObject *set_local_events; /* sys.monitoring.set_local_events */
    PyObject *current_frames;   /* sys._current_frames */
    long jump;                  /* sys.monitoring.events.JUMP */
    PyObject *armed;            /* code -> how many threads' hooks armed it */
    PyObject *by_thread;        /* thread id -> (codes armed for it, when: ns) */
} mon;

static PyObject *on_jump(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    (void)args;
    (void)nargs;
    /* Called back from code another thread's goroutine runs too: cheap
     * unless this thread was asked. */
    preempt_here();
    Py_RETURN_NONE;
}

static PyMethodDef on_jump_def = {"_preempt_hook", (PyCFunction)(void (*)(void))on_jump,
                                  METH_FASTCALL, "gopy's preemption hook (sys.monitoring JUMP)"};

/* Claim a tool id (GIL held).  The ids no convention gives to others:
 * 0 debugger, 1 coverage, 2 profiler and 5 optimizer are taken by those. */
static int claim_tool(void)
{
    PyObject *sys = PyImport_ImportModule("sys");
    PyObject *monitoring = sys != NULL ? PyObject_GetAttrString(sys, "monitoring") : NULL;
    mon.current_frames = sys != NULL ? PyObject_GetAttrString(sys, "_current_frames") : NULL;
    Py_XDECREF(sys);
    int tool = -1;
    for (int id = 4; monitoring != NULL && id >= 3 && tool < 0; id--) {
        PyObject *r = PyObject_CallMethod(monitoring, "use_tool_id", "is", id, "gopy");
        if (r != NULL)
            tool = id;
        else
            PyErr_Clear(); /* taken */
        Py_XDECREF(r);
    }
    PyObject *events = tool >= 0 ? PyObject_GetAttrString(monitoring, "events") : NULL;
    PyObject *jump = events != NULL ? PyObject_GetAttrString(events, "JUMP") : NULL;
    PyObject *hook = PyCFunction_New(&on_jump_def, NULL);
    mon.set_local_events =
        tool >= 0 ? PyObject_GetAttrString(monitoring, "set_local_events") : NULL;
    mon.armed = PyDict_New();
    mon.by_thread = PyDict_New();
    int ok = tool >= 0 && jump != NULL && hook != NULL && mon.set_local_events != NULL &&
             mon.current_frames != NULL && mon.armed != NULL && mon.by_thread != NULL;
    if (ok) {
        mon.jump = PyLong_AsLong(jump);
        PyObject *r = PyObject_CallMethod(monitoring, "register_callback", "iOO", tool, jump, hook);
        ok = r != NULL;
        Py_XDECREF(r);
    }
    Py_XDECREF(jump);
    Py_XDECREF(events);
    Py_XDECREF(hook);
    Py_XDECREF(monitoring);
    if (!ok) {
        if (PyErr_Occurred())
            PyErr_WriteUnraisable(NULL);
        else if (PyErr_WarnEx(PyExc_RuntimeWarning,
                              "gopy: sys.monitoring tool ids 3 and 4 are both taken: goroutines "
                              "computing in Python will not be preempted",
                              1) < 0)
            PyErr_WriteUnraisable(NULL);
        return -1;
    }
    return tool;
}

static void set_events(PyObject *code, long events)
{
    PyObject *r = PyObject_CallFunction(mon.set_local_events, "iOl", mon.tool, code, events);
    if (r == NULL)
        PyErr_WriteUnraisable(code);
    Py_XDECREF(r);
}

/* Under MON_LOCK. */
static void disarm_locked(PyObject *key)
{
    PyObject *entry = PyDict_GetItemWithError(mon.by_thread, key);
    if (entry == NULL)
        return;
    PyObject *codes = Py_NewRef(PyTuple_GET_ITEM(entry, 0));
    (void)PyDict_DelItem(mon.by_thread, key);
    atomic_fetch_sub(&narmed, 1);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(codes); i++) {
        PyObject *code = PyTuple_GET_ITEM(codes, i);
        PyObject *count = PyDict_GetItemWithError(mon.armed, code);
        long n = count != NULL ? PyLong_AsLong(count) - 1 : 0;
        if (n > 0) {
            PyObject *left = PyLong_FromLong(n);
            if (left == NULL || PyDict_SetItem(mon.armed, code, left) < 0)
                PyErr_WriteUnraisable(code);
            Py_XDECREF(left);
        } else {
            (void)PyDict_DelItem(mon.armed, code);
            set_events(code, 0);
        }
    }
    Py_DECREF(codes);
    PyErr_Clear();
}

static void disarm_thread(unsigned long tid)
{
    if (mon.tool <= 0)
        return;
    PyObject *exc = gopy_err_fetch(); /* a hook must leave no trace */
    PyObject *key = PyLong_FromUnsignedLong(tid);
    if (key != NULL) {
        MON_LOCK();
        disarm_locked(key);
        MON_UNLOCK();
        Py_DECREF(key);
    }
    PyErr_Clear();
    gopy_err_restore(exc);
}

/* The code objects the thread `key` is running (innermost first), as a tuple. */
static PyObject *running_codes(PyObject *key)
{
    PyObject *frames = PyObject_CallNoArgs(mon.current_frames);
    if (frames == NULL)
        return NULL;
    PyObject *frame = PyDict_GetItemWithError(frames, key);
    PyObject *codes = PyList_New(0);
    Py_XINCREF(frame);
    /* Without the GIL the thread runs on meanwhile: its innermost frame
     * (taken with the world stopped) is all that is safe to read; sysmon
     * asks again if that one returns before it loops. */
#ifdef Py_GIL_DISABLED
    int depth_left = 1;
#else
    int depth_left = 256;
#endif
    while (frame != NULL && codes != NULL && depth_left-- > 0) {
        PyObject *code = (PyObject *)PyFrame_GetCode((PyFrameObject *)frame);
        if (!PySequence_Contains(codes, code) && PyList_Append(codes, code) < 0)
            Py_CLEAR(codes);
        Py_DECREF(code);
        PyObject *back = (PyObject *)PyFrame_GetBack((PyFrameObject *)frame);
        Py_SETREF(frame, back);
    }
    Py_XDECREF(frame);
    Py_DECREF(frames);
    if (codes == NULL)
        return NULL;
    Py_SETREF(codes, PyList_AsTuple(codes));
    return codes;
}

static void arm(PyThreadState *ts)
{
    if (mon.tool == 0)
        mon.tool = claim_tool(); /* the preempter is the only writer */
    if (mon.tool < 0)
        return;
    PyObject *key = PyLong_FromUnsignedLong(ts->thread_id);
    PyObject *codes = key != NULL ? running_codes(key) : NULL;
    if (codes == NULL) {
        PyErr_WriteUnraisable(NULL);
        Py_XDECREF(key);
        return;
    }
    MON_LOCK();
    disarm_locked(key); /* what an earlier request armed and nobody took */
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(codes); i++) {
        PyObject *code = PyTuple_GET_ITEM(codes, i);
        PyObject *count = PyDict_GetItemWithError(mon.armed, code);
        long n = count != NULL ? PyLong_AsLong(count) : 0;
        PyObject *more = PyLong_FromLong(n + 1);
        if (more == NULL || PyDict_SetItem(mon.armed, code, more) < 0)
            PyErr_WriteUnraisable(code);
        Py_XDECREF(more);
        if (n == 0)
            set_events(code, mon.jump);
    }
    PyObject *entry = Py_BuildValue("(OL)", codes, (long long)gopy_monotonic_ns());
    if (entry == NULL || PyDict_SetItem(mon.by_thread, key, entry) < 0)
        PyErr_WriteUnraisable(NULL);
    else
        atomic_fetch_add(&narmed, 1);
    Py_XDECREF(entry);
    MON_UNLOCK();
    Py_DECREF(codes);
    Py_DECREF(key);
}

/* Take back the hooks armed before `before` (ns; gopy_monotonic_ns). */
static void disarm_armed_before(int64_t before)
{
    if (mon.tool <= 0)
        return;
    MON_LOCK();
    PyObject *keys = PyDict_Keys(mon.by_thread);
    for (Py_ssize_t i = 0; keys != NULL && i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        PyObject *entry = PyDict_GetItemWithError(mon.by_thread, key);
        if (entry != NULL && PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1)) < before)
            disarm_locked(key);
    }
    Py_XDECREF(keys);
    PyErr_Clear();
    MON_UNLOCK();
}

/* Take back hooks armed a while ago that nobody took: the goroutine parked
 * or finished before its next back-edge (sysmon asks again, so a thread
 * still due is re-armed meanwhile).  Else the code would keep calling
 * the hook, for nothing, wherever it runs. */
static void sweep(void)
{
    int64_t stale = 2 * gopy_rt_preempt_slice();
    if (stale < SWEEP_NS)
        stale = SWEEP_NS;
    disarm_armed_before(gopy_monotonic_ns() - stale);
}

/* Every hook armed (fork child: their threads are gone). */
static void disarm_all(void)
{
    disarm_armed_before(INT64_MAX);
}

#else /* 3.11: a trace function on the goroutine's thread */

/* Threads whose tracer the hook stands in for, and that tracer (GIL). */
enum { TRACED_CAP = 1024 };
static struct {
    PyThreadState *ts;
    Py_tracefunc func;
    PyObject *obj; /* a reference */
} traced[TRACED_CAP];
static int ntraced;

static int on_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);

static int traced_slot(PyThreadState *ts)
{
    for (int i = 0; i < ntraced; i++)
        if (traced[i].ts == ts)
            return i;
    if (ntraced == TRACED_CAP)
        return -1;
    traced[ntraced].ts = ts;
    return ntraced++;
}

static int on_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    (void)obj;
    PyThreadState *ts = PyThreadState_Get();
    int i = traced_slot(ts);
    Py_tracefunc func = i >= 0 ? traced[i].func : NULL;
    PyObject *fobj = i >= 0 ? traced[i].obj : NULL;
    if (i >= 0) {
        traced[i].func = NULL;
        traced[i].obj = NULL;
    }
    /* The thread's own tracer back, and this event to it. */
    int r = _PyEval_SetTrace(ts, func, fobj);
    if (r == 0 && func != NULL)
        r = func(fobj, frame, what, arg);
    Py_XDECREF(fobj);
    if (r == 0)
        preempt_here();
    return r;
}

static void disarm_thread(unsigned long tid)
{
    (void)tid; /* on_trace took itself off */
}

static void sweep(void)
{
    /* A trace function left armed runs at the thread's next event, and
     * takes itself off then. */
}

static void disarm_all(void)
{
    /* The threads whose tracers the hook stood in for are gone. */
    for (int i = 0; i < ntraced; i++)
        Py_CLEAR(traced[i].obj);
    ntraced = 0;
}

static void arm(PyThreadState *ts)
{
    if (ts->c_tracefunc == on_trace)
        return; /* armed, not yet run */
    int i = traced_slot(ts);
    if (i < 0)
        return;
    traced[i].func = ts->c_tracefunc; /* what an arm that never ran saved is stale */
    Py_XSETREF(traced[i].obj, Py_XNewRef(ts->c_traceobj));
    if (_PyEval_SetTrace(ts, on_trace, NULL) < 0) {
        PyErr_WriteUnraisable(NULL); /* an audit hook refused sys.settrace */
        Py_CLEAR(traced[i].obj);
        traced[i].func = NULL;
    }
}

#endif

/* After sysmon's stall warning: what the goroutine running on ts's thread
 * runs now (GIL held). */
static void print_traceback(PyThreadState *ts)
{
    PyObject *exc = gopy_err_fetch();
    PyObject *sys = PyImport_ImportModule("sys");
    PyObject *frames = sys != NULL ? PyObject_CallMethod(sys, "_current_frames", NULL) : NULL;
    PyObject *key = PyLong_FromUnsignedLong(ts->thread_id);
    PyObject *frame = frames != NULL && key != NULL ? PyDict_GetItemWithError(frames, key) : NULL;
    PyObject *tb = frame != NULL ? PyImport_ImportModule("traceback") : NULL;
    /* Without the GIL the thread runs on: its innermost frame (taken with
     * the world stopped) is all that is safe to read. */
#ifdef Py_GIL_DISABLED
    PyObject *limit = PyLong_FromLong(1);
#else
    PyObject *limit = Py_NewRef(Py_None);
#endif
    PyObject *lines = tb != NULL ? PyObject_CallMethod(tb, "format_stack", "OO", frame, limit) : NULL;
    PyObject *empty = PyUnicode_FromString("");
    PyObject *text = lines != NULL && empty != NULL ? PyUnicode_Join(empty, lines) : NULL;
    PyObject *err = sys != NULL ? PyObject_GetAttrString(sys, "stderr") : NULL;
    if (text != NULL && err != NULL && err != Py_None) {
        if (PyFile_WriteString("The goroutine running on that thread, most recent call last:\n",
                               err) < 0 ||
            PyFile_WriteObject(text, err, Py_PRINT_RAW) < 0)
            PyErr_Clear();
        PyObject *r = PyObject_CallMethod(err, "flush", NULL);
        Py_XDECREF(r);
    }
    PyErr_Clear();
    Py_XDECREF(err);
    Py_XDECREF(text);
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(limit);
    Py_XDECREF(tb);
    Py_XDECREF(key);
    Py_XDECREF(frames);
    Py_XDECREF(sys);
    gopy_err_restore(exc);
}

static void *preempter(void *arg)
{
    (void)arg;
    (void)pthread_setname_np(pthread_self(), "gopy-preempt"); /* not its starter's */
    for (;;) {
        struct request batch[QUEUE_CAP];
        pthread_mutex_lock(&pre.lock);
        while (pre.n == 0) {
            if (atomic_load(&narmed) == 0) {
                pthread_cond_wait(&pre.wake, &pre.lock);
                continue;
            }
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += SWEEP_NS;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            if (pthread_cond_timedwait(&pre.wake, &pre.lock, &until) == ETIMEDOUT)
                break; /* sweep */
        }
        int n = pre.n;
        memcpy(batch, pre.queue, (size_t)n * sizeof batch[0]);
        pre.n = 0;
        pthread_mutex_unlock(&pre.lock);
        /* Counted as attaching until the thread state is let go again: the
         * exit waits for that, so no Python runs here once it goes on
         * (with the GIL off nothing else would stop it). */
        if (!gopy_attach_begin())
            continue; /* the interpreter is exiting */
        PyGILState_STATE st = PyGILState_Ensure();
        for (int i = 0; i < n && !atomic_load(&gopy_state.stopping); i++) {
            if (batch[i].traceback)
                print_traceback(batch[i].ts);
            else
                arm(batch[i].ts);
        }
        sweep();
        PyGILState_Release(st);
        gopy_attach_done();
    }
    return NULL;
}

static void request(PyThreadState *ts, bool traceback)
{
    pthread_mutex_lock(&pre.lock);
    bool queued = false;
    for (int i = 0; i < pre.n; i++)
        queued |= pre.queue[i].ts == ts && pre.queue[i].traceback == traceback;
    if (!queued && pre.n < QUEUE_CAP)
        pre.queue[pre.n++] = (struct request){ts, traceback};
    if (!pre.wake_made) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* for the sweep's timed wait */
        pthread_cond_init(&pre.wake, &ca);
        pthread_condattr_destroy(&ca);
        pre.wake_made = true;
    }
    if (!pre.started) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's */
        pre.started = pthread_create(&t, &attr, preempter, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_cond_signal(&pre.wake);
    pthread_mutex_unlock(&pre.lock);
}

void gopy_preempt_request(PyThreadState *ts)
{
    request(ts, false);
}

void gopy_preempt_print_traceback(PyThreadState *ts)
{
    request(ts, true);
}

void gopy_preempt_after_fork_child(void)
{
    /* The preempter thread is gone, and maybe with pre.lock held. */
    pthread_mutex_init(&pre.lock, NULL);
    pre.n = 0;
    pre.started = false;
    pre.wake_made = false;
    disarm_all();
}
