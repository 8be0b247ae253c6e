/*
 * goroutine.c -- Python goroutines: gopy.go, the host hooks the runtime
 * calls around them, and after_func's calls.
 *
 * Each worker M has one PyThreadState (made as its thread starts, bound to
 * the thread, so PyGILState_Ensure inside goroutines and in callbacks from
 * its C goroutines finds it: ctypes callbacks, Cython `with gil`).  A
 * goroutine's own interpreter state is
 * loaded into it on enter and saved on leave (compat.c).  Between two
 * goroutines on one M the GIL stays held and the thread state is not
 * restored to the M's own: leave saves, the next enter loads.  Only when
 * the M lets the GIL go does its own state come back (release).
 *
 */
#include "binding.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A goroutine's record lives in the host area at the top of its stack
 * (gopy_rt_set_host_area_size): the record with its saved interpreter
 * state, and above it the root chunk of its frames' data stack.  Both are
 * kept when the runtime reuses the G for another goroutine. */
/* Where a goroutine was created, as Go's tracebacks say ("created by"):
 * the creating goroutine's id (0: a thread) and the code its innermost
 * Python frame ran, with the instruction (code NULL: no Python frame, a
 * C thread).  The code is a reference; its line is found only when
 * shown. */
typedef struct {
    PyCodeObject *code;
    int lasti;
    int64_t goid;
} py_origin;

/* The calling thread's place, as a goroutine's origin (GIL held). */
static py_origin origin_here(void)
{
    py_origin o = {.goid = gopy_rt_goid()};
    o.code = gopy_frame_where(PyThreadState_Get(), &o.lasti);
    return o;
}

struct py_goroutine {
    PyObject *fn, *args, *kwargs;
    py_origin origin;
    py_call_template *call;   /* after_func: the call to make, else NULL */
    PyThreadState *loaded_in; /* the M thread state holding our state, or NULL */
#ifdef Py_GIL_DISABLED
    /* Who may touch the record now (enum record_access): without the GIL,
     * runtime.stack() on another thread reads a parked goroutine's frames
     * while its M could resume it. */
    _Atomic uint32_t access;
#endif
    _Alignas(16) char save[]; /* py_tstate_save, gopy_tstate_save_size() bytes */
};

#define G_SAVE(g) ((py_tstate_save *)(g)->save)

#ifdef Py_GIL_DISABLED
/* py_goroutine.access: FREE while parked (or finished), ACTIVE while its M
 * runs it or a spawner fills the record, READING while runtime.stack()
 * reads its saved frames.  The M and the spawner claim it by moving it
 * from FREE to ACTIVE, waiting out a reader (a few microseconds); a reader
 * only ever tries once. */
enum record_access { RECORD_FREE, RECORD_ACTIVE, RECORD_READING };

static void record_claim(py_goroutine *g)
{
    uint32_t free = RECORD_FREE;
    if (atomic_compare_exchange_strong(&g->access, &free, RECORD_ACTIVE))
        return;
    /* Wait detached: a stop-the-world the reader runs into must not wait
     * for this thread. */
    PyThreadState *ts = PyThreadState_GetUnchecked();
    if (ts != NULL)
        PyEval_SaveThread();
    do {
        sched_yield();
        free = RECORD_FREE;
    } while (!atomic_compare_exchange_weak(&g->access, &free, RECORD_ACTIVE));
    if (ts != NULL)
        PyEval_RestoreThread(ts);
}

/* A reader's one try: true if the goroutine is parked, and now held still
 * until record_release. */
static bool record_try_read(py_goroutine *g)
{
    uint32_t free = RECORD_FREE;
    return atomic_compare_exchange_strong(&g->access, &free, RECORD_READING);
}

static void record_release(py_goroutine *g)
{
    atomic_store(&g->access, RECORD_FREE);
}
#else /* the GIL keeps readers out */
static void record_claim(py_goroutine *g)
{
    (void)g;
}

static void record_release(py_goroutine *g)
{
    (void)g;
}
#endif

/* Frames of a goroutine's own call chain start in this many bytes (more
 * come from CPython's own chunks, as in a thread).  The chunk ends at the
 * top of the stack, so it starts 2,944 bytes above a page boundary: below
 * it in that page lie the record, the G and the first ~2.7 KiB of C frames
 * (as deep as socket() and connect reach on 3.11-3.13), above it ~1.1 KiB
 * of Python frames, and a parked goroutine with a shallow call chain, one
 * that connected included, touches one page, not two (docs/decisions.md
 * §15). */
enum { ROOT_CHUNK_SIZE = 8192 - 2944 };
static size_t record_size; /* the record rounded up to 64 */

static void *root_chunk(py_goroutine *g)
{
    return (char *)g + record_size;
}

/* A fresh goroutine's interpreter state: context (a reference it takes
 * over), frames from its root chunk, C code on its own stack. */
static void init_save(py_goroutine *g, PyObject *context)
{
    uintptr_t lo, hi;
    gopy_rt_host_stack_bounds(g, &lo, &hi);
    gopy_tstate_save_init(G_SAVE(g), context, root_chunk(g), ROOT_CHUNK_SIZE, lo, hi);
}

struct py_call_template {
    _Atomic long refs; /* the Timer, plus one per firing not yet started */
    PyObject *fn, *args, *context;
    py_origin origin; /* after_func's call: each firing's origin */
    const void *group; /* spawn_group(fn), taken with the GIL */
};

/* Per-M state (the runtime's mslot). */
typedef struct {
    PyThreadState *ts;
    bool ensured;         /* ts bound to the thread by PyGILState_Ensure */
    py_goroutine *loaded; /* whose state ts holds; NULL: the M's own */
    py_tstate_save *own;  /* the M's own state while a goroutine's is in ts */
} py_m;

/* ---- exceptions escaping goroutines ---------------------------------------- */

/* o as (qualname, filename, lineno, goid), or None (a new reference). */
static PyObject *origin_describe(const py_origin *o)
{
    if (o->code == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(OOiL)", o->code->co_qualname, o->code->co_filename,
                         PyCode_Addr2Line(o->code, o->lasti), (long long)o->goid);
}

/* Go ends a goroutine's traceback with where it was created; Python's
 * place for such context is a note on the exception (PEP 678), which
 * every hook that prints tracebacks shows.  Best effort: a failure leaves
 * the exception as it was. */
static void note_origin(PyObject *exc)
{
    py_goroutine *g = gopy_rt_host_gstate();
    if (g == NULL || g->origin.code == NULL)
        return;
    PyCodeObject *code = g->origin.code;
    int line = PyCode_Addr2Line(code, g->origin.lasti);
    PyObject *note =
        g->origin.goid > 0
            ? PyUnicode_FromFormat("created by %U in goroutine %lld\n  File \"%U\", line %d",
                                   code->co_qualname, (long long)g->origin.goid,
                                   code->co_filename, line)
            : PyUnicode_FromFormat("created by %U\n  File \"%U\", line %d", code->co_qualname,
                                   code->co_filename, line);
    PyObject *r = note != NULL ? PyObject_CallMethodOneArg(exc, gopy_names.add_note, note) : NULL;
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(note);
}

/* Hand the current exception to gopy.excepthook(exc, goroutine_id), looked
 * up at this moment so that assigning gopy.excepthook replaces it. */
void gopy_report_exception(void)
{
    PyObject *exc = gopy_err_fetch();
    if (exc == NULL)
        return;
    if (PyErr_GivenExceptionMatches(exc, PyExc_SystemExit)) {
        Py_DECREF(exc); /* as in threads: SystemExit ends the goroutine quietly */
        return;
    }
    note_origin(exc);
    PyObject *goid = PyLong_FromLongLong(gopy_rt_goid());
    PyObject *pkg = PyImport_ImportModule("gopy");
    PyObject *hook = pkg != NULL ? PyObject_GetAttr(pkg, gopy_names.excepthook) : NULL;
    Py_XDECREF(pkg);
    PyObject *r = NULL;
    if (hook != NULL && goid != NULL)
        r = PyObject_CallFunctionObjArgs(hook, exc, goid, NULL);
    if (r == NULL) {
        /* No hook, or the hook failed: say so, and show the original. */
        PyErr_WriteUnraisable(hook);
        gopy_err_restore(Py_NewRef(exc));
        PyErr_Print();
    }
    Py_XDECREF(r);
    Py_XDECREF(hook);
    Py_XDECREF(goid);
    Py_DECREF(exc);
}

/* ---- the goroutine body ---------------------------------------------------- */

static void run_goroutine(void *gstate)
{
    py_goroutine *g = gstate;
    PyObject *r = PyObject_Call(g->fn, g->args, g->kwargs);
    if (r == NULL)
        gopy_report_exception();
    Py_XDECREF(r);
    Py_CLEAR(g->fn);
    Py_CLEAR(g->args);
    Py_CLEAR(g->kwargs);
    Py_CLEAR(g->origin.code);
    gopy_tstate_release_current(g->loaded_in);
}

typedef struct {
    PyObject *fn, *args, *kwargs, *context; /* references for the record */
    py_origin origin;                       /* likewise */
} spawn_call;

static void init_call(void *area, void *arg)
{
    py_goroutine *g = area;
    spawn_call *c = arg;
    record_claim(g);
    g->fn = c->fn;
    g->args = c->args;
    g->kwargs = c->kwargs;
    g->origin = c->origin;
    g->call = NULL;
    __atomic_store_n(&g->loaded_in, NULL, __ATOMIC_RELAXED);
    init_save(g, c->context);
    record_release(g);
}

/* The caller has queued many goroutines that have not started (see
 * gopy_rt_host_backlog): let them start while they are in the caches.  A
 * goroutine yields to them (gopy_rt_host_start_backlog). */
#ifdef Py_GIL_DISABLED
/* hostq starts when this thread last gave up on the backlog standing
 * still (its own; UINT64_MAX: never). */
static _Thread_local uint64_t backlog_stood_at = UINT64_MAX;

/* A thread: no GIL to hand over, and the attached Ms start them in
 * parallel with it, at whatever pace the kernel gives them.  It waits,
 * detached, until they have drained the backlog under the mark: yielding
 * while it moves, napping once it has stood still for 100 us (then nobody
 * is starting them: sysmon sends an M after 1 ms).  Still after 10 ms, it
 * goes on, and waits again only once the backlog has moved. */
static void let_backlog_start(void)
{
    uint64_t starts;
    if (!gopy_rt_host_backlog_at(&starts) || gopy_rt_host_start_backlog() ||
        starts == backlog_stood_at)
        return;
    PyThreadState *ts = PyEval_SaveThread();
    int64_t now = gopy_monotonic_ns(), moved = now;
    for (;;) {
        if (now - moved < 100000)
            sched_yield();
        else
            nanosleep(&(struct timespec){.tv_nsec = 50000}, NULL);
        uint64_t before = starts;
        if (!gopy_rt_host_backlog_at(&starts))
            break;
        now = gopy_monotonic_ns();
        if (starts != before) {
            moved = now;
        } else if (now - moved > 10000000) {
            backlog_stood_at = starts;
            break;
        }
    }
    PyEval_RestoreThread(ts);
}
#else
/* A thread lets the GIL go until an M (the one the runtime sent for them,
 * or one waiting for the GIL) has taken it, or 2 ms have passed. */
static void let_backlog_start(void)
{
    if (!gopy_rt_host_backlog() || gopy_rt_host_start_backlog())
        return;
    uint64_t takes = atomic_load_explicit(&gopy_state.gil_takes, memory_order_relaxed);
    PyThreadState *ts = PyEval_SaveThread();
    int64_t give_up = gopy_monotonic_ns() + 2000000;
    do
        sched_yield();
    while (atomic_load_explicit(&gopy_state.gil_takes, memory_order_relaxed) == takes &&
           gopy_monotonic_ns() < give_up);
    PyEval_RestoreThread(ts);
}
#endif

/* What placement groups fn's goroutines by (gopy_rt_go_host): the code
 * a function or method runs, else the callable itself.  Borrowed; only
 * its address is used. */
static const void *spawn_group(PyObject *fn)
{
    if (PyMethod_Check(fn))
        fn = PyMethod_GET_FUNCTION(fn);
    if (PyFunction_Check(fn))
        return PyFunction_GET_CODE(fn);
    return fn;
}

int gopy_spawn(PyObject *fn, PyObject *args, PyObject *kwargs)
{
    gopy_drain_deferred();
    spawn_call c = {fn, args, kwargs, gopy_context_for_spawn(), origin_here()};
    if (c.context == NULL && PyErr_Occurred()) {
        Py_XDECREF(c.origin.code);
        return -1;
    }
    Py_INCREF(fn);
    Py_INCREF(args);
    Py_XINCREF(kwargs);
    if (gopy_rt_go_host(run_goroutine, init_call, &c, spawn_group(fn)) == 0) {
        let_backlog_start();
        return 0;
    }
    /* Not started (init_call did not run): the references are still ours. */
    int err = errno;
    Py_DECREF(fn);
    Py_DECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(c.context);
    Py_XDECREF(c.origin.code);
    if (err == EAGAIN)
        PyErr_SetString(PyExc_RuntimeError, "gopy: cannot start goroutines: the interpreter "
                                             "is shutting down");
    else
        PyErr_NoMemory();
    return -1;
}

/* ---- after_func ------------------------------------------------------------- */

py_call_template *gopy_template_new(PyObject *fn, PyObject *args)
{
    py_call_template *t = PyMem_RawMalloc(sizeof *t);
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    t->context = PyContext_CopyCurrent();
    if (t->context == NULL) {
        PyMem_RawFree(t);
        return NULL;
    }
    atomic_init(&t->refs, 1);
    t->fn = Py_NewRef(fn);
    t->args = Py_NewRef(args);
    t->group = spawn_group(fn);
    t->origin = origin_here();
    return t;
}

void gopy_template_release(py_call_template *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    Py_DECREF(t->fn);
    Py_DECREF(t->args);
    Py_DECREF(t->context);
    Py_XDECREF(t->origin.code);
    PyMem_RawFree(t);
}

static void init_template_call(void *area, void *arg)
{
    py_goroutine *g = area;
    py_call_template *t = arg;
    atomic_fetch_add(&t->refs, 1);
    record_claim(g);
    g->fn = g->args = g->kwargs = NULL;
    g->origin.code = NULL;
    g->call = t;
    __atomic_store_n(&g->loaded_in, NULL, __ATOMIC_RELAXED);
    record_release(g);
}

/* Called by the timer, on a scheduler stack, without the GIL: start a
 * goroutine whose record says which call to make; enter() makes the
 * Python objects, with the GIL.  If it cannot start (out of memory, or
 * exiting) this firing is lost, as a goroutine Go could not start. */
void gopy_template_fire(void *template)
{
    py_call_template *t = template;
    (void)gopy_rt_go_host(run_goroutine, init_template_call, t, t->group);
}

/* First run of an after_func goroutine (GIL held): take the call. */
static void unpack_call(py_goroutine *g)
{
    py_call_template *t = g->call;
    g->fn = Py_NewRef(t->fn);
    g->args = Py_NewRef(t->args);
    g->kwargs = NULL;
    g->origin = t->origin;
    Py_XINCREF(g->origin.code);
    /* Each firing starts from the context after_func was called in. */
    PyObject *ctx = PyContext_Copy(t->context);
    if (ctx == NULL) {
        PyErr_Clear();
        ctx = PyContext_New();
    }
    init_save(g, ctx);
    g->call = NULL;
    gopy_template_release(t);
}

/* Idents of the Ms' threads (a tuple, replaced when an M first takes the
 * GIL; read and replaced holding the module's lock: the GIL, or its
 * critical section on a free-threaded build). */
static PyObject *m_idents;

PyObject *gopy_runtime_thread_idents(void)
{
    PyObject *idents;
    GOPY_BEGIN_LOCKED(gopy_state.module);
    idents = m_idents != NULL ? Py_NewRef(m_idents) : PyTuple_New(0);
    GOPY_END_LOCKED();
    return idents;
}

static void note_m_thread(void)
{
    PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    PyObject *one = ident != NULL ? PyTuple_Pack(1, ident) : NULL;
    Py_XDECREF(ident);
    if (one == NULL) {
        PyErr_Clear(); /* then it merely counts as a thread that might act */
        return;
    }
    GOPY_BEGIN_LOCKED(gopy_state.module);
    PyObject *all = m_idents != NULL ? PySequence_Concat(m_idents, one) : Py_NewRef(one);
    if (all != NULL)
        Py_XSETREF(m_idents, all);
    else
        PyErr_Clear();
    GOPY_END_LOCKED();
    Py_DECREF(one);
}

/* ---- the host hooks ----------------------------------------------------------- */

/* Threads between their look at `stopping` and holding a thread state (an
 * M making or taking its own, an offload helper taking one): the exit
 * waits for them (gopy_host_stop), so that none makes or takes a thread
 * state while the interpreter is torn down (3.13t crashed in
 * PyGILState_Ensure there).  Sequentially consistent with `stopping`: a
 * thread counted here either sees it set or is waited for. */
static _Atomic int attaching;

bool gopy_attach_begin(void)
{
    atomic_fetch_add(&attaching, 1);
    if (!atomic_load(&gopy_state.stopping) && !gopy_is_finalizing())
        return true;
    atomic_fetch_sub(&attaching, 1);
    return false;
}

void gopy_attach_done(void)
{
    atomic_fetch_sub(&attaching, 1);
}

/* This M's per-M state with its thread state made and bound to this
 * thread, or NULL (out of memory, or the interpreter is exiting). */
static py_m *new_py_m(void)
{
    if (!gopy_attach_begin())
        return NULL;
    py_m *pm = calloc(1, sizeof *pm);
    py_tstate_save *own = calloc(1, gopy_tstate_save_size());
    PyThreadState *ts = pm != NULL && own != NULL ? PyThreadState_New(gopy_state.interp) : NULL;
    gopy_attach_done();
    if (ts == NULL) {
        free(pm);
        free(own);
        return NULL;
    }
    pm->own = own;
    pm->ts = ts;
    gopy_tstate_m_init(ts);
    return pm;
}

/* The M's thread state is made as its thread starts, without the GIL (a
 * new thread state needs none, and the GIL may be busy for milliseconds):
 * a ctypes callback on one of its C goroutines then takes this one with
 * PyGILState_Ensure instead of making its own, whose C stack bounds would
 * be the M thread's (compat.c, gopy_tstate_m_init). */
static void hook_thread_start(void **mslot)
{
    *mslot = new_py_m();
}

static bool hook_acquire(void **mslot)
{
    py_m *pm = *mslot;
    if (pm == NULL && (pm = *mslot = new_py_m()) == NULL)
        return false;
    if (!gopy_attach_begin())
        return false;
    if (!pm->ensured) {
        /* Bound to the thread for PyGILState for the M's lifetime (never
         * released), so PyGILState_Ensure inside goroutines finds it. */
        (void)PyGILState_Ensure();
        pm->ensured = true;
        note_m_thread();
    } else {
        PyEval_RestoreThread(pm->ts);
    }
    gopy_attach_done();
    if (atomic_load(&gopy_state.stopping)) {
        PyEval_SaveThread();
        return false;
    }
#ifndef Py_GIL_DISABLED /* let_backlog_start waits for it */
    atomic_fetch_add_explicit(&gopy_state.gil_takes, 1, memory_order_relaxed);
#endif
    gopy_drain_deferred();
    return true;
}

static void hook_release(void **mslot)
{
    py_m *pm = *mslot;
    if (pm->loaded != NULL) {
        gopy_tstate_load(pm->ts, pm->own);
        pm->loaded = NULL;
    }
    PyEval_SaveThread();
}

static void hook_enter(void **mslot, void *gstate, bool first)
{
    py_m *pm = *mslot;
    py_goroutine *g = gstate;
    record_claim(g);
    if (pm->loaded == NULL)
        gopy_tstate_store(pm->ts, pm->own);
    if (first && g->call != NULL) {
        /* Python objects are made with the M's own state in place. */
        if (pm->loaded != NULL) {
            gopy_tstate_load(pm->ts, pm->own);
            pm->loaded = NULL;
        }
        unpack_call(g);
    }
    gopy_tstate_load(pm->ts, G_SAVE(g));
    pm->loaded = g;
    __atomic_store_n(&g->loaded_in, pm->ts, __ATOMIC_RELAXED);
}

static void hook_leave(void **mslot, void *gstate, bool exited)
{
    py_m *pm = *mslot;
    py_goroutine *g = gstate;
    gopy_tstate_store(pm->ts, G_SAVE(g));
    __atomic_store_n(&g->loaded_in, NULL, __ATOMIC_RELAXED);
    if (exited) {
        /* The goroutine released its objects before it ended; the M's own
         * state goes back so nothing points into the finished record. */
        gopy_tstate_load(pm->ts, pm->own);
        pm->loaded = NULL;
    } /* else ts keeps g's values (saved) until the next enter */
    record_release(g);
}

static void hook_preempt(void **mslot)
{
    py_m *pm = *mslot;
    if (pm != NULL)
        gopy_preempt_request(pm->ts);
}

static void hook_stalled(void **mslot)
{
    py_m *pm = *mslot;
    if (pm != NULL)
        gopy_preempt_print_traceback(pm->ts);
}

#ifdef Py_GIL_DISABLED
/* sysmon asks while Ms wait for a host slot (host_slots.c): a goroutine
 * whose call let the interpreter go gives its M's slot up, as it would
 * give the GIL up on a GIL build. */
static bool hook_detached(void **mslot)
{
    py_m *pm = *mslot;
    return pm != NULL && gopy_tstate_detached(pm->ts);
}
#endif

static const struct gopy_host_hooks hooks = {
    .thread_start = hook_thread_start,
    .acquire = hook_acquire,
    .release = hook_release,
    .enter = hook_enter,
    .leave = hook_leave,
    .preempt = hook_preempt,
    .stalled = hook_stalled,
#ifdef Py_GIL_DISABLED
    .detached = hook_detached,
#endif
};

int gopy_goroutine_init(void)
{
    record_size = (sizeof(py_goroutine) + gopy_tstate_save_size() + 63) & ~(size_t)63;
    if (!gopy_rt_set_host_area_size(record_size + ROOT_CHUNK_SIZE)) {
        PyErr_SetString(PyExc_ImportError, "gopy: Python goroutines were started before "
                                           "the binding was ready");
        return -1;
    }
    gopy_set_stack_size(gopy_rt_stack_size(true));
    gopy_rt_set_host_hooks(&hooks);
    return 0;
}

void gopy_host_stop(void)
{
    atomic_store(&gopy_state.stopping, true);
    gopy_rt_host_stop();
    /* Those already on their way get there (and, seeing `stopping`, let
     * their state go): wait with the GIL released, which they may need. */
    Py_BEGIN_ALLOW_THREADS
    while (atomic_load(&attaching) > 0)
        sched_yield();
    Py_END_ALLOW_THREADS
}

py_tstate_save *gopy_goroutine_tstate_save(void)
{
    py_goroutine *g = gopy_rt_host_gstate();
    return g != NULL ? G_SAVE(g) : NULL;
}

/* ---- frames, for runtime.stack() ------------------------------------------------ */

/* frame's chain as (filename, lineno, name) tuples, innermost last; takes
 * the reference to frame (NULL: none). */
static PyObject *frames_list(PyObject *frame)
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        Py_XDECREF(frame);
        return NULL;
    }
    while (frame != NULL) {
        PyCodeObject *code = PyFrame_GetCode((PyFrameObject *)frame);
        PyObject *item = Py_BuildValue("(OiO)", code->co_filename,
                                       PyFrame_GetLineNumber((PyFrameObject *)frame),
                                       code->co_name);
        Py_DECREF(code);
        if (item == NULL || PyList_Insert(list, 0, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(frame);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
        PyObject *back = (PyObject *)PyFrame_GetBack((PyFrameObject *)frame);
        Py_DECREF(frame);
        frame = back;
    }
    return list;
}

PyObject *gopy_goroutine_where(void *gstate)
{
    py_goroutine *g = gstate;
    PyObject *frame, *origin;
#ifdef Py_GIL_DISABLED
    PyThreadState *me = PyThreadState_Get();
    if (__atomic_load_n(&g->loaded_in, __ATOMIC_RELAXED) == me) {
        frame = (PyObject *)PyThreadState_GetFrame(me); /* it is us */
        origin = origin_describe(&g->origin);
    } else {
        /* Parked: held still while its frames are read.  Running (or
         * being set up): nothing can be read safely, so no frames. */
        if (!record_try_read(g))
            return Py_BuildValue("(OO)", Py_None, Py_None);
        frame = gopy_tstate_save_frame(me, G_SAVE(g));
        origin = origin_describe(&g->origin);
        record_release(g);
    }
#else
    if (g->loaded_in != NULL) {
        /* Running on its M (in a call that let the GIL go, since we hold
         * it), or it is us. */
        frame = (PyObject *)PyThreadState_GetFrame(g->loaded_in);
    } else {
        frame = gopy_tstate_save_frame(PyThreadState_Get(), G_SAVE(g));
    }
    origin = origin_describe(&g->origin);
#endif
    if (origin == NULL) {
        Py_XDECREF(frame);
        return NULL;
    }
    PyObject *frames = frames_list(frame);
    if (frames == NULL) {
        Py_DECREF(origin);
        return NULL;
    }
    return Py_BuildValue("(NN)", frames, origin);
}

