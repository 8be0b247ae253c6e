/*
 * compat.c -- everything that differs between CPython 3.11 and 3.15, in
 * one place.
 *
 * Goroutine interpreter state.  Each M (worker thread) has one
 * PyThreadState; the Python goroutines it runs each own the part of the
 * thread state that describes "where this code is": the frame chain,
 * recursion depths and C stack bounds, the exception being raised and the
 * stack of handled ones, the contextvars context, the threading.local
 * storage, the trashcan's pending list, asyncio's running loop and task,
 * asyncgen hooks, the JIT's executor, the data stack the frames live in,
 * and on free-threaded builds the critical sections it is inside.
 * Switching goroutines saves those fields from the thread state and
 * loads the next goroutine's (greenlet does the same; see
 * docs/decisions.md for why not one PyThreadState per goroutine).  The
 * lists below follow each version's struct _ts (Include/cpython/pystate.h)
 * and _PyThreadStateImpl (Include/internal/pycore_tstate.h): check them on
 * every new CPython version.  What stays the M's: the GIL fields, the
 * trace and profile functions (whether a goroutine is inside one is its
 * own), the free-chunk cache of the data stack, and the
 * per-thread lists and caches of 3.14+ (asyncio's task list,
 * dict_global_version, 3.15's lazy_imports and PyThreadState_Ensure count).
 */
/* Internal headers need this before Python.h (Py_BUILD_CORE would make
 * inline helpers use symbols libpython does not export). */
#define Py_BUILD_CORE_MODULE 1
#include "binding.h"

#include <limits.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x03100000
#error "gopy supports CPython 3.11 to 3.15"
#endif
#if PY_VERSION_HEX >= 0x030D0000
#ifdef Py_GIL_DISABLED
/* 3.13t's pycore_tstate.h uses struct _brc_thread_state and friends
 * without including their header. */
#include "internal/pycore_gc.h"
#include "internal/pycore_critical_section.h" /* suspend / resume, below */
#include "internal/pycore_pystate.h"          /* _Py_THREAD_DETACHED */
#endif
#include "internal/pycore_tstate.h" /* _PyThreadStateImpl */
#endif
/* The interpreter frame's layout (who owns a frame: an entry from C?). */
#if PY_VERSION_HEX < 0x030E0000
#include "internal/pycore_frame.h"
#else
#include "internal/pycore_interpframe_structs.h"
/* 3.15's header leaves some parameters unused (-Wextra). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "internal/pycore_stackref.h"
#pragma GCC diagnostic pop
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_ceval.h"     /* _Py_InitializeRecursionLimits */
#include "internal/pycore_pythonrun.h" /* _PyOS_STACK_MARGIN_BYTES */
#endif

/* _PyThreadStateImpl's own fields (3.13+: the asyncio loop; 3.14+: the C
 * stack bounds and the running task).  3.14.4 appended
 * datastack_cached_chunk to PyThreadState (a freed data-stack chunk kept
 * for reuse), which moved every field of
 * _PyThreadStateImpl one pointer on inside the 3.14 series.  The running
 * interpreter, not the headers gopy was built with, says where they are:
 * ts_impl_shift corrects the headers' offsets (3.15 has the field from its
 * first release). */
#if PY_VERSION_HEX >= 0x030D0000
static ptrdiff_t ts_impl_shift;
#define TS_IMPL(ts, type, field)                                                                   \
    (*(type *)((char *)(ts) + offsetof(_PyThreadStateImpl, field) + ts_impl_shift))
#endif

ptrdiff_t gopy_ts_impl_shift(unsigned long built_with, unsigned long running)
{
    if ((built_with >> 16) != 0x030E || (running >> 16) != 0x030E)
        return 0;
    bool built_has = built_with >= 0x030E0400, running_has = running >= 0x030E0400;
    return ((ptrdiff_t)running_has - (ptrdiff_t)built_has) * (ptrdiff_t)sizeof(void *);
}

struct py_tstate_save {
    /* The frame chain. */
#if PY_VERSION_HEX < 0x030D0000 /* 3.11, 3.12 */
    _PyCFrame *cframe; /* NULL until first run: then the M's root_cframe */
#else /* 3.13+: _PyCFrame is gone, the thread state points at the frame */
    struct _PyInterpreterFrame *current_frame; /* 3.15: NULL until first run,
                                                  then the M's base_frame */
#endif
    /* Recursion: Python depth, and C depth by counter (3.12, 3.13) or by
     * the stack pointer against this goroutine's own stack (3.14+). */
#if PY_VERSION_HEX < 0x030C0000
    int recursion_depth; /* one counter for Python and C levels */
    int recursion_cap;   /* a goroutine's limit for it (0: the thread's) */
#else
    int py_recursion_depth;
#endif
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
    int c_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030E0000 /* C recursion checked by stack address */
    uintptr_t c_stack_top, c_stack_soft_limit, c_stack_hard_limit;
#endif
    /* The exception being raised (one object since 3.12, gh-102192). */
#if PY_VERSION_HEX < 0x030C0000
    PyObject *curexc_type, *curexc_value, *curexc_traceback;
#else
    PyObject *current_exception;
#endif
    /* The trashcan's deferred deallocations. */
#if PY_VERSION_HEX < 0x030D0000
    int trash_delete_nesting;
    PyObject *trash_delete_later;
#else
    PyObject *delete_later;
#endif
#if PY_VERSION_HEX >= 0x030D0000 /* threading.local's storage moved into the thread state */
    PyObject *threading_local_key;
    PyObject *threading_local_sentinel;
    PyObject *asyncio_running_loop; /* _PyThreadStateImpl (internal) */
#endif
#if PY_VERSION_HEX >= 0x030E0000
    PyObject *asyncio_running_task; /* _PyThreadStateImpl (internal) */
#endif
    /* The tier-2 optimizer's executor (borrowed, set while one runs). */
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
    PyObject *previous_executor;
#elif PY_VERSION_HEX >= 0x030E0000
    PyObject *current_executor;
#endif
#if PY_VERSION_HEX >= 0x030F0000
    struct _PyExitData *jit_exit;
    int generator_return_kind; /* _PyThreadStateImpl (internal) */
#endif
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
    /* Free-threaded builds: the critical sections the goroutine is inside
     * (suspended, their locks let go, while it is parked) ... */
    uintptr_t critical_section;
#if PY_VERSION_HEX >= 0x030E0000
    /* ... and the C stack's references the collector must see (3.14t). */
    struct _PyCStackRef *c_stack_refs;
#endif
#endif
    /* Inside a trace or monitoring callback, and which event: a
     * goroutine parked or preempted there must not mute the callbacks of
     * the others on its thread. */
    int tracing;
#if PY_VERSION_HEX < 0x030C0000
    int tracing_what;
#else
    int what_event;
#endif
    int recursion_headroom;
    int coroutine_origin_tracking_depth;
    /* asyncio (3.11, 3.12) caches the running loop by thread state id:
     * each goroutine has an id of its own. */
    uint64_t id;
    _PyErr_StackItem *exc_info;
    _PyErr_StackItem exc_state; /* the bottom of its handled-exception stack */
    PyObject *dict;
    PyObject *context;
    PyObject *async_gen_firstiter;
    PyObject *async_gen_finalizer;
    _PyStackChunk *datastack_chunk;
    PyObject **datastack_top;
    PyObject **datastack_limit;
};

size_t gopy_tstate_save_size(void)
{
    return sizeof(py_tstate_save);
}

#if PY_VERSION_HEX < 0x030C0000
static int recursion_limit_of(PyThreadState *ts, py_tstate_save *s)
{
    int cap = s->recursion_cap;
    return cap > 0 && cap < ts->recursion_limit ? cap : ts->recursion_limit;
}

/* 3.11: sys.setrecursionlimit.  The budget caps a goroutine's limit by
 * making the interpreter see it deeper than it is (the counter left is
 * what the cap leaves; the interpreter's own limit stays, for its checks
 * to raise at zero: _Py_CheckRecursiveCall would raise a lower per-thread
 * limit to the interpreter's).  setrecursionlimit moves every thread's
 * counter by the change of limit, cap and all: raised inside a goroutine,
 * the cap was gone until its next switch, and recursion through C reached
 * the guard page.  This wrapper shows the interpreter the goroutine's
 * true depth for the call (its "too low at the current depth" check),
 * then caps it again.  A goroutine loaded on another M meanwhile (in a
 * call that let the GIL go) keeps the moved counter until its next
 * switch.  The original function, a reference; set once. */
static PyObject *sys_setrecursionlimit;

static PyObject *setrecursionlimit_capped(PyObject *self, PyObject *limit)
{
    (void)self;
    PyThreadState *ts = PyThreadState_Get();
    py_tstate_save *s = gopy_goroutine_tstate_save();
    if (s == NULL)
        return PyObject_CallOneArg(sys_setrecursionlimit, limit);
    int depth = recursion_limit_of(ts, s) - ts->recursion_remaining;
    ts->recursion_remaining = ts->recursion_limit - depth;
    PyObject *r = PyObject_CallOneArg(sys_setrecursionlimit, limit);
    ts->recursion_remaining = recursion_limit_of(ts, s) - depth;
    return r;
}

static PyMethodDef setrecursionlimit_def = {
    "setrecursionlimit", setrecursionlimit_capped, METH_O,
    "setrecursionlimit($module, limit, /)\n--\n\n"
    "sys.setrecursionlimit, keeping a goroutine's recursion within what its stack holds (gopy)."};

static int wrap_setrecursionlimit(void)
{
    PyObject *sys = PyImport_ImportModule("sys");
    if (sys == NULL)
        return -1;
    sys_setrecursionlimit = PyObject_GetAttrString(sys, "setrecursionlimit");
    PyObject *wrapper = sys_setrecursionlimit != NULL
                            ? PyCFunction_NewEx(&setrecursionlimit_def, NULL, NULL)
                            : NULL;
    int r = wrapper != NULL ? PyObject_SetAttrString(sys, "setrecursionlimit", wrapper) : -1;
    Py_XDECREF(wrapper);
    Py_DECREF(sys);
    return r;
}
#endif

int gopy_compat_init(void)
{
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030E0000
    /* 3.14t counts references from interpreter stacks lazily (deferred
     * reference counting) and its collector finds them by walking each
     * thread's frames: a parked goroutine's are in no thread's chain, so
     * what only they hold would be freed under them (greenlet #511).
     * Until goroutines show their frames to the collector, refuse. */
    PyErr_SetString(PyExc_ImportError,
                    "gopy: free-threaded CPython 3.14 and later are not supported yet "
                    "(3.13t is; see docs/free-threading.md)");
    return -1;
#endif
#if PY_VERSION_HEX < 0x030C0000
    if (wrap_setrecursionlimit() < 0)
        return -1;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    ts_impl_shift = gopy_ts_impl_shift(PY_VERSION_HEX, Py_Version);
#endif
#if PY_VERSION_HEX >= 0x030E0000
    /* A wrong layout would corrupt the interpreter at the first switch:
     * check that the C stack bounds of this thread are where they should
     * be and hold this very frame. */
    PyThreadState *ts = PyThreadState_Get();
    uintptr_t here = (uintptr_t)&ts;
    if (TS_IMPL(ts, uintptr_t, c_stack_hard_limit) == 0)
        _Py_InitializeRecursionLimits(ts);
    uintptr_t top = TS_IMPL(ts, uintptr_t, c_stack_top);
    uintptr_t soft = TS_IMPL(ts, uintptr_t, c_stack_soft_limit);
    uintptr_t hard = TS_IMPL(ts, uintptr_t, c_stack_hard_limit);
    if (!(hard != 0 && hard < soft && soft < here && here < top)) {
        PyErr_Format(PyExc_ImportError,
                     "gopy: this CPython %s does not lay out its thread state as the "
                     "headers gopy was built with (%s) do: reinstall gopy for it",
                     Py_GetVersion(), PY_VERSION);
        return -1;
    }
#endif
    return 0;
}

/* The C-recursion budget of a fresh goroutine (3.11-3.13).  The
 * interpreter's limit assumes an 8 MiB thread stack; a goroutine's is
 * smaller, so it gets a budget its stack can hold, so that deep recursion
 * through C raises RecursionError before it reaches the guard page.  3.11
 * has one counter for Python and C levels: there the budget caps the
 * recursion limit itself, pure Python recursion included (512 levels for
 * the default 1 MiB stack; list.sort with a Python key overflowed it
 * between 600 and 700).  3.14+ compare the stack pointer with the
 * goroutine's own stack bounds. */
int gopy_c_recursion_budget;

void gopy_set_stack_size(size_t stack_bytes)
{
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
    long limit = Py_C_RECURSION_LIMIT;
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    long limit = C_RECURSION_LIMIT;
#else
    long limit = LONG_MAX;
#endif
    /* Measured (docs/research-pystate.md §6): up to ~1.8 KiB of C stack
     * per unit of the C-recursion counter (list.sort with Python keys);
     * keep a margin: one unit per 2 KiB. */
    long scaled = (long)(stack_bytes / 2048);
    gopy_c_recursion_budget = (int)(scaled < limit ? scaled : limit);
}

void gopy_tstate_m_init(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x030E0000
    /* An M's own thread state runs Python on more than one stack: its
     * thread's, between goroutines, and C goroutines' (a ctypes callback
     * takes the GIL with PyGILState_Ensure).  No one range describes
     * them, and one that is wrong is worse than none: below its soft
     * limit every deallocation goes to the trashcan's deferred list and
     * stays there.  So its limits lie at the bottom of the address space:
     * no check, no deferral.  Python goroutines get their own stack's. */
    TS_IMPL(ts, uintptr_t, c_stack_hard_limit) = 1;
    TS_IMPL(ts, uintptr_t, c_stack_soft_limit) = 2;
#else
    (void)ts;
#endif
}

void gopy_tstate_save_init(py_tstate_save *s, PyObject *context, void *chunk_mem,
                           size_t chunk_size, uintptr_t stack_lo, uintptr_t stack_hi)
{
    /* The data stack starts in the goroutine's own root chunk, at its
     * second slot as CPython does for a root chunk: the first is never
     * used, so the root chunk is never popped (and never freed by
     * CPython: it is ours).  Deeper frames get chunks from CPython. */
    memset(s, 0, sizeof *s);
    _PyStackChunk *chunk = chunk_mem;
    chunk->previous = NULL;
    chunk->size = chunk_size;
    chunk->top = 0;
    s->datastack_chunk = chunk;
    s->datastack_top = &chunk->data[1];
    s->datastack_limit = (PyObject **)((char *)chunk + chunk_size);
    s->exc_info = &s->exc_state;
    s->context = context;
#if PY_VERSION_HEX < 0x030C0000
    s->recursion_cap = gopy_c_recursion_budget;
    (void)stack_lo;
    (void)stack_hi;
#elif PY_VERSION_HEX < 0x030E0000
    s->c_recursion_remaining = gopy_c_recursion_budget;
    (void)stack_lo;
    (void)stack_hi;
#elif PY_VERSION_HEX >= 0x030E0000
    /* As CPython sets a thread's (tstate_set_stack): RecursionError below
     * the soft limit, a fatal error below the hard one, and the guard
     * page below the stack. */
    s->c_stack_top = stack_hi;
    s->c_stack_hard_limit = stack_lo + _PyOS_STACK_MARGIN_BYTES;
    s->c_stack_soft_limit = stack_lo + 2 * _PyOS_STACK_MARGIN_BYTES;
#else
    (void)stack_lo;
    (void)stack_hi;
#endif
    /* Above any real thread state id (they count up from 1). */
    static _Atomic uint64_t next_id = (uint64_t)1 << 62;
    s->id = atomic_fetch_add(&next_id, 1);
}

void gopy_tstate_store(PyThreadState *ts, py_tstate_save *s)
{
#if PY_VERSION_HEX < 0x030D0000
    s->cframe = ts->cframe;
#else
    s->current_frame = ts->current_frame;
#endif
#if PY_VERSION_HEX < 0x030C0000
    s->recursion_depth = recursion_limit_of(ts, s) - ts->recursion_remaining;
#else
    s->py_recursion_depth = ts->py_recursion_limit - ts->py_recursion_remaining;
#endif
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
    s->c_recursion_remaining = ts->c_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030E0000
    s->c_stack_top = TS_IMPL(ts, uintptr_t, c_stack_top);
    s->c_stack_soft_limit = TS_IMPL(ts, uintptr_t, c_stack_soft_limit);
    s->c_stack_hard_limit = TS_IMPL(ts, uintptr_t, c_stack_hard_limit);
#endif
#if PY_VERSION_HEX < 0x030C0000
    s->curexc_type = ts->curexc_type;
    s->curexc_value = ts->curexc_value;
    s->curexc_traceback = ts->curexc_traceback;
#else
    s->current_exception = ts->current_exception;
#endif
#if PY_VERSION_HEX < 0x030C0000
    s->trash_delete_nesting = ts->trash_delete_nesting;
    s->trash_delete_later = ts->trash_delete_later;
#elif PY_VERSION_HEX < 0x030D0000
    s->trash_delete_nesting = ts->trash.delete_nesting;
    s->trash_delete_later = ts->trash.delete_later;
#else
    s->delete_later = ts->delete_later;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    s->threading_local_key = ts->threading_local_key;
    s->threading_local_sentinel = ts->threading_local_sentinel;
    s->asyncio_running_loop = TS_IMPL(ts, PyObject *, asyncio_running_loop);
#endif
#if PY_VERSION_HEX >= 0x030E0000
    s->asyncio_running_task = TS_IMPL(ts, PyObject *, asyncio_running_task);
#endif
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
    s->previous_executor = ts->previous_executor;
#elif PY_VERSION_HEX >= 0x030E0000
    s->current_executor = ts->current_executor;
#endif
#if PY_VERSION_HEX >= 0x030F0000
    s->jit_exit = ts->jit_exit;
    s->generator_return_kind = (int)TS_IMPL(ts, int, generator_return_kind);
#endif
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
    /* A goroutine that parks inside a critical section (a list.sort whose
     * key function receives from a channel) lets its locks go, as a thread
     * that blocks does: another goroutine of this M, or another thread,
     * may need them meanwhile.  load() takes them back. */
    if (_PyCriticalSection_IsActive(ts->critical_section))
        _PyCriticalSection_SuspendAll(ts);
    s->critical_section = ts->critical_section;
    ts->critical_section = 0;
#if PY_VERSION_HEX >= 0x030E0000
    s->c_stack_refs = TS_IMPL(ts, struct _PyCStackRef *, c_stack_refs);
#endif
#endif
    s->tracing = ts->tracing;
#if PY_VERSION_HEX < 0x030C0000
    s->tracing_what = ts->tracing_what;
#else
    s->what_event = ts->what_event;
#endif
    s->recursion_headroom = ts->recursion_headroom;
    s->coroutine_origin_tracking_depth = ts->coroutine_origin_tracking_depth;
    s->id = ts->id;
    s->exc_info = ts->exc_info;
    s->dict = ts->dict;
    s->context = ts->context;
    s->async_gen_firstiter = ts->async_gen_firstiter;
    s->async_gen_finalizer = ts->async_gen_finalizer;
    s->datastack_chunk = ts->datastack_chunk;
    s->datastack_top = ts->datastack_top;
    s->datastack_limit = ts->datastack_limit;
}

void gopy_tstate_load(PyThreadState *ts, py_tstate_save *s)
{
#if PY_VERSION_HEX < 0x030C0000
    if (s->cframe == NULL)
        s->cframe = &ts->root_cframe;
    /* Tracing is the thread's, muted while the goroutine is inside a
     * callback: set its innermost C frame's flag as CPython would
     * (_PyThreadState_UpdateTracingState). */
    ts->cframe = s->cframe;
    ts->cframe->use_tracing =
        s->tracing == 0 && (ts->c_tracefunc != NULL || ts->c_profilefunc != NULL) ? 255 : 0;
#elif PY_VERSION_HEX < 0x030D0000
    if (s->cframe == NULL)
        s->cframe = &ts->root_cframe;
    ts->cframe = s->cframe;
#elif PY_VERSION_HEX < 0x030F0000
    ts->current_frame = s->current_frame;
#else
    /* 3.15 ends every frame chain with the thread's embedded base frame
     * (for profilers that check they unwound a whole stack);
     * a goroutine's ends with its M's.  A remote profiler's frame cache
     * describes the chain it last saw: invalidate it. */
    if (s->current_frame == NULL)
        s->current_frame = ts->base_frame;
    ts->current_frame = s->current_frame;
    ts->last_profiled_frame = NULL;
    ts->last_profiled_frame_seq++;
#endif
#if PY_VERSION_HEX < 0x030C0000
    ts->recursion_remaining = recursion_limit_of(ts, s) - s->recursion_depth;
#else
    ts->py_recursion_remaining = ts->py_recursion_limit - s->py_recursion_depth;
#endif
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030E0000
    ts->c_recursion_remaining = s->c_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030E0000
    TS_IMPL(ts, uintptr_t, c_stack_top) = s->c_stack_top;
    TS_IMPL(ts, uintptr_t, c_stack_soft_limit) = s->c_stack_soft_limit;
    TS_IMPL(ts, uintptr_t, c_stack_hard_limit) = s->c_stack_hard_limit;
#endif
#if PY_VERSION_HEX < 0x030C0000
    ts->curexc_type = s->curexc_type;
    ts->curexc_value = s->curexc_value;
    ts->curexc_traceback = s->curexc_traceback;
#else
    ts->current_exception = s->current_exception;
#endif
#if PY_VERSION_HEX < 0x030C0000
    ts->trash_delete_nesting = s->trash_delete_nesting;
    ts->trash_delete_later = s->trash_delete_later;
#elif PY_VERSION_HEX < 0x030D0000
    ts->trash.delete_nesting = s->trash_delete_nesting;
    ts->trash.delete_later = s->trash_delete_later;
#else
    ts->delete_later = s->delete_later;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    ts->threading_local_key = s->threading_local_key;
    ts->threading_local_sentinel = s->threading_local_sentinel;
    TS_IMPL(ts, PyObject *, asyncio_running_loop) = s->asyncio_running_loop;
#endif
#if PY_VERSION_HEX >= 0x030E0000
    TS_IMPL(ts, PyObject *, asyncio_running_task) = s->asyncio_running_task;
#endif
#if PY_VERSION_HEX >= 0x030D0000 && PY_VERSION_HEX < 0x030E0000
    ts->previous_executor = s->previous_executor;
#elif PY_VERSION_HEX >= 0x030E0000
    ts->current_executor = s->current_executor;
#endif
#if PY_VERSION_HEX >= 0x030F0000
    ts->jit_exit = s->jit_exit;
    TS_IMPL(ts, int, generator_return_kind) = s->generator_return_kind;
#endif
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030D0000
#if PY_VERSION_HEX >= 0x030E0000
    TS_IMPL(ts, struct _PyCStackRef *, c_stack_refs) = s->c_stack_refs;
#endif
    /* Retake the locks of the innermost critical section (the outer ones
     * are taken back as the inner ones end, as after a thread blocked). */
    ts->critical_section = s->critical_section;
    if (s->critical_section != 0)
        _PyCriticalSection_Resume(ts);
#endif
    ts->tracing = s->tracing;
#if PY_VERSION_HEX < 0x030C0000
    ts->tracing_what = s->tracing_what;
#else
    ts->what_event = s->what_event;
#endif
    ts->recursion_headroom = s->recursion_headroom;
    ts->coroutine_origin_tracking_depth = s->coroutine_origin_tracking_depth;
    ts->id = s->id;
    ts->exc_info = s->exc_info;
    ts->dict = s->dict;
    /* ContextVar caches are keyed by (thread state id, context_ver):
     * bump it on every load. */
    ts->context = s->context;
    ts->context_ver++;
    ts->async_gen_firstiter = s->async_gen_firstiter;
    ts->async_gen_finalizer = s->async_gen_finalizer;
    ts->datastack_chunk = s->datastack_chunk;
    ts->datastack_top = s->datastack_top;
    ts->datastack_limit = s->datastack_limit;
}

void gopy_tstate_release_current(PyThreadState *ts)
{
    /* Run with the goroutine's state loaded, on its own stack: dropping
     * these may run Python code (weakref callbacks of threading.local,
     * finalizers), which then runs as part of the goroutine. */
#if PY_VERSION_HEX >= 0x030D0000
    /* Dropping the sentinel (ours is the only reference) tells every
     * threading.local to forget this goroutine's values, as for a thread
     * that ends. */
    Py_CLEAR(ts->threading_local_sentinel);
    Py_CLEAR(ts->threading_local_key);
    Py_CLEAR(TS_IMPL(ts, PyObject *, asyncio_running_loop));
#endif
#if PY_VERSION_HEX >= 0x030E0000
    Py_CLEAR(TS_IMPL(ts, PyObject *, asyncio_running_task));
#endif
    Py_CLEAR(ts->dict);
    Py_CLEAR(ts->async_gen_firstiter);
    Py_CLEAR(ts->async_gen_finalizer);
    Py_CLEAR(ts->exc_info->exc_value);
    Py_CLEAR(ts->context);
    ts->context_ver++;
}

PyObject *gopy_tstate_save_frame(PyThreadState *ts, py_tstate_save *s)
{
    /* Point the current thread state at the goroutine's frame chain just
     * long enough for PyThreadState_GetFrame to make (or find) the frame
     * object.  No Python code may run in between: 3.11 may collect inside
     * an allocation (running finalizers), so the collector is off there;
     * 3.12+ only schedule a collection for the next bytecode boundary
     * (gh-97922), and toggling the collector from here would race with a
     * user's gc.disable() on a free-threaded build. */
#if PY_VERSION_HEX < 0x030C0000
    int gc_was_on = PyGC_Disable();
#endif
#if PY_VERSION_HEX < 0x030D0000
    PyFrameObject *f = NULL;
    if (s->cframe != NULL) {
        _PyCFrame *saved = ts->cframe;
        ts->cframe = s->cframe;
        f = PyThreadState_GetFrame(ts);
        ts->cframe = saved;
    }
#else
    struct _PyInterpreterFrame *saved = ts->current_frame;
    ts->current_frame = s->current_frame;
    PyFrameObject *f = PyThreadState_GetFrame(ts);
    ts->current_frame = saved;
#endif
#if PY_VERSION_HEX < 0x030C0000
    if (gc_was_on)
        PyGC_Enable();
#endif
    return (PyObject *)f;
}

bool gopy_frame_called_back(PyThreadState *ts)
{
    /* Count the interpreter's entries from C on the frame chain: the
     * goroutine's own call makes one; a C function that called Python back
     * (a finalizer, sort's key, sum over a generator, an import, a trace
     * function) makes another. */
    int entries = 0;
#if PY_VERSION_HEX < 0x030C0000 /* the first frame of each C call is marked (3.11) */
    for (_PyInterpreterFrame *f = ts->cframe->current_frame; f != NULL; f = f->previous)
        entries += f->is_entry;
#elif PY_VERSION_HEX < 0x030D0000 /* a shim frame on the C stack per call (3.12) */
    for (_PyInterpreterFrame *f = ts->cframe->current_frame; f != NULL; f = f->previous)
        entries += f->owner == FRAME_OWNED_BY_CSTACK;
#elif PY_VERSION_HEX < 0x030E0000 /* the thread state points at the frame (3.13) */
    for (_PyInterpreterFrame *f = ts->current_frame; f != NULL; f = f->previous)
        entries += f->owner == FRAME_OWNED_BY_CSTACK;
#elif PY_VERSION_HEX < 0x030F0000 /* 3.14: entry frames are the interpreter's (or the C stack's) */
    for (_PyInterpreterFrame *f = ts->current_frame; f != NULL; f = f->previous)
        entries += f->owner >= FRAME_OWNED_BY_INTERPRETER;
#else /* 3.15: entries and the chain's base frame are the interpreter's */
    for (_PyInterpreterFrame *f = ts->current_frame; f != NULL && f->previous != NULL;
         f = f->previous)
        entries += f->owner == FRAME_OWNED_BY_INTERPRETER;
#endif
    return entries > 1;
}

PyCodeObject *gopy_frame_where(PyThreadState *ts, int *lasti)
{
    /* The innermost frame the interpreter runs code in: past 3.12+'s
     * frames for entries from C, which run none. */
#if PY_VERSION_HEX < 0x030C0000 /* 3.11: every frame on the chain is code's */
    _PyInterpreterFrame *f = ts->cframe->current_frame;
    if (f == NULL)
        return NULL;
    *lasti = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
    return (PyCodeObject *)Py_NewRef(f->f_code);
#else
#if PY_VERSION_HEX < 0x030D0000
    _PyInterpreterFrame *f = ts->cframe->current_frame;
#else
    _PyInterpreterFrame *f = ts->current_frame;
#endif
#if PY_VERSION_HEX < 0x030E0000 /* a shim frame per entry from C (3.12, 3.13) */
    while (f != NULL && f->owner == FRAME_OWNED_BY_CSTACK)
        f = f->previous;
#else /* 3.14: entry frames are the interpreter's (or the C stack's) */
    while (f != NULL && f->owner >= FRAME_OWNED_BY_INTERPRETER)
        f = f->previous;
#endif
    if (f == NULL)
        return NULL;
    *lasti = PyUnstable_InterpreterFrame_GetLasti(f);
    return (PyCodeObject *)PyUnstable_InterpreterFrame_GetCode(f);
#endif
}

bool gopy_frames_hold(PyThreadState *ts, bool (*match)(PyObject *, void *), void *arg)
{
    /* Each frame's locals and value stack, as far as the interpreter saved
     * its stack pointer (at every call and callback: the collector reads
     * them there too); the interpreter's own entry frames hold nothing. */
#if PY_VERSION_HEX < 0x030D0000
    _PyInterpreterFrame *f = ts->cframe->current_frame;
#else
    _PyInterpreterFrame *f = ts->current_frame;
#endif
    for (; f != NULL; f = f->previous) {
#if PY_VERSION_HEX < 0x030C0000 /* 3.11: a PyObject * array up to stacktop */
        for (int i = 0; i < f->stacktop; i++)
            if (f->localsplus[i] != NULL && match(f->localsplus[i], arg))
                return true;
#elif PY_VERSION_HEX < 0x030E0000 /* 3.12, 3.13: the same, after a C entry's shim frame */
        if (f->owner == FRAME_OWNED_BY_CSTACK)
            continue;
        for (int i = 0; i < f->stacktop; i++)
            if (f->localsplus[i] != NULL && match(f->localsplus[i], arg))
                return true;
#else /* 3.14+: tagged stack references up to stackpointer (NULL while unsaved in debug builds) */
        if (f->owner >= FRAME_OWNED_BY_INTERPRETER || f->stackpointer == NULL)
            continue;
        for (_PyStackRef *r = f->localsplus; r < f->stackpointer; r++)
            if (!PyStackRef_IsNull(*r) && !PyStackRef_IsTaggedInt(*r) &&
                match(PyStackRef_AsPyObjectBorrow(*r), arg))
                return true;
#endif
    }
    return false;
}

PyObject *gopy_context_for_spawn(void)
{
    /* A goroutine runs in a copy of its spawner's context.  A copy of an
     * empty context is a fresh empty one, which the interpreter makes by
     * itself when the goroutine first touches a ContextVar (the thread
     * state's context is NULL until then): skip the allocation, a GC-
     * tracked object per goroutine, in the common case. */
    PyObject *ctx = PyThreadState_Get()->context;
    if (ctx == NULL)
        return NULL;
    Py_ssize_t n = PyObject_Length(ctx);
    if (n == 0)
        return NULL;
    if (n < 0)
        PyErr_Clear(); /* cannot tell: copy */
    return PyContext_CopyCurrent();
}

#ifdef Py_GIL_DISABLED
bool gopy_tstate_detached(PyThreadState *ts)
{
    /* Free-threaded builds track attachment in ts->state (3.13's
     * _PyThreadState_Attach / _Detach in pystate.c, written with atomics
     * by the thread and by stop-the-world); detached is what a released
     * GIL is on a GIL build. */
    return _Py_atomic_load_int_relaxed(&ts->state) == _Py_THREAD_DETACHED;
}
#endif

bool gopy_is_finalizing(void)
{
#if PY_VERSION_HEX < 0x030D0000
    return _Py_IsFinalizing();
#else
    return Py_IsFinalizing();
#endif
}

PyObject *gopy_err_fetch(void)
{
#if PY_VERSION_HEX < 0x030C0000
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL)
        PyException_SetTraceback(value, tb);
    Py_DECREF(type);
    Py_XDECREF(tb);
    return value;
#else
    return PyErr_GetRaisedException();
#endif
}

void gopy_err_restore(PyObject *exc)
{
#if PY_VERSION_HEX < 0x030C0000
    if (exc == NULL)
        return;
    PyObject *type = Py_NewRef((PyObject *)Py_TYPE(exc));
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(type, exc, tb);
#else
    PyErr_SetRaisedException(exc);
#endif
}

bool gopy_long_is_negative(PyObject *v)
{
#if PY_VERSION_HEX < 0x030E0000
    return _PyLong_Sign(v) < 0;
#else /* 3.14 made the sign public and deprecated _PyLong_Sign */
    return PyLong_IsNegative(v) == 1;
#endif
}

int gopy_sleep_takes_as_float(PyObject *secs, double *d)
{
#if PY_VERSION_HEX >= 0x030F0000 /* 3.15's time.sleep takes any real number */
    if (Py_TYPE(secs)->tp_as_number == NULL || Py_TYPE(secs)->tp_as_number->nb_float == NULL)
        return 0;
    *d = PyFloat_AsDouble(secs);
    return *d == -1.0 && PyErr_Occurred() ? -1 : 1;
#else /* before, only floats and integers */
    (void)secs;
    (void)d;
    return 0;
#endif
}
