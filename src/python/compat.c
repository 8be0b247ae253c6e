/*
 * compat.c -- everything that differs between CPython 3.11, 3.12 and
 * 3.13, in one place.
 *
 * Goroutine interpreter state.  Each M (worker thread) has one
 * PyThreadState; the Python goroutines it runs each own the part of the
 * thread state that describes "where this code is": the frame chain,
 * recursion depths, the exception being raised and the stack of handled
 * ones, the contextvars context, the threading.local storage, the
 * trashcan's pending list, asyncgen hooks and the data stack the frames
 * live in.  Switching goroutines saves those fields from the thread state
 * and loads the next goroutine's (greenlet does the same; see
 * docs/decisions.md for why not one PyThreadState per goroutine).  The
 * lists below follow each version's struct _ts (Include/cpython/pystate.h):
 * check them on every new CPython version.
 */
/* Internal headers need this before Python.h (Py_BUILD_CORE would make
 * inline helpers use symbols libpython does not export). */
#define Py_BUILD_CORE_MODULE 1
#include "binding.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "gopy supports CPython 3.11 to 3.13"
#endif
#ifdef Py_GIL_DISABLED
#error "gopy does not support free-threaded CPython yet"
#endif

#if PY_VERSION_HEX >= 0x030D0000
#include "internal/pycore_tstate.h" /* _PyThreadStateImpl */
#endif

struct py_tstate_save {
#if PY_VERSION_HEX < 0x030C0000 /* 3.11 */
    _PyCFrame *cframe; /* NULL until first run: then the M's root_cframe */
    int recursion_depth;
    PyObject *curexc_type, *curexc_value, *curexc_traceback;
    int trash_delete_nesting;
    PyObject *trash_delete_later;
#elif PY_VERSION_HEX < 0x030D0000 /* 3.12 */
    _PyCFrame *cframe;
    int py_recursion_depth;
    int c_recursion_remaining;
    PyObject *current_exception;
    int trash_delete_nesting;
    PyObject *trash_delete_later;
#else /* 3.13 */
    struct _PyInterpreterFrame *current_frame;
    int py_recursion_depth;
    int c_recursion_remaining;
    PyObject *current_exception;
    PyObject *delete_later;
    PyObject *threading_local_key;
    PyObject *threading_local_sentinel;
    PyObject *asyncio_running_loop; /* _PyThreadStateImpl (internal) */
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

/* The C-recursion budget of a fresh goroutine (3.12+).  The interpreter's
 * limit assumes an 8 MiB thread stack; a goroutine's is smaller, so it
 * gets a budget its stack can hold, so that deep recursion through C
 * raises RecursionError before it reaches the guard page.  (3.11 has one
 * counter for Python and C levels, the recursion limit: there the guard
 * page is what stops C recursion deeper than the stack.) */
int gopy_c_recursion_budget;

void gopy_set_stack_size(size_t stack_bytes)
{
#if PY_VERSION_HEX >= 0x030D0000
    long limit = Py_C_RECURSION_LIMIT;
#elif PY_VERSION_HEX >= 0x030C0000
    long limit = C_RECURSION_LIMIT;
#else
    long limit = 0;
#endif
    /* Measured (docs/research-pystate.md §6): up to ~1.8 KiB of C stack
     * per unit of the C-recursion counter (list.sort with Python keys);
     * keep a margin: one unit per 2 KiB. */
    long scaled = (long)(stack_bytes / 2048);
    gopy_c_recursion_budget = (int)(scaled < limit ? scaled : limit);
}

void gopy_tstate_save_init(py_tstate_save *s, PyObject *context, void *chunk_mem,
                           size_t chunk_size)
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
#if PY_VERSION_HEX >= 0x030C0000
    s->c_recursion_remaining = gopy_c_recursion_budget;
#endif
    /* Above any real thread state id (they count up from 1). */
    static _Atomic uint64_t next_id = (uint64_t)1 << 62;
    s->id = atomic_fetch_add(&next_id, 1);
}

void gopy_tstate_store(PyThreadState *ts, py_tstate_save *s)
{
#if PY_VERSION_HEX < 0x030C0000
    s->cframe = ts->cframe;
    s->recursion_depth = ts->recursion_limit - ts->recursion_remaining;
    s->curexc_type = ts->curexc_type;
    s->curexc_value = ts->curexc_value;
    s->curexc_traceback = ts->curexc_traceback;
    s->trash_delete_nesting = ts->trash_delete_nesting;
    s->trash_delete_later = ts->trash_delete_later;
#elif PY_VERSION_HEX < 0x030D0000
    s->cframe = ts->cframe;
    s->py_recursion_depth = ts->py_recursion_limit - ts->py_recursion_remaining;
    s->c_recursion_remaining = ts->c_recursion_remaining;
    s->current_exception = ts->current_exception;
    s->trash_delete_nesting = ts->trash.delete_nesting;
    s->trash_delete_later = ts->trash.delete_later;
#else
    s->current_frame = ts->current_frame;
    s->py_recursion_depth = ts->py_recursion_limit - ts->py_recursion_remaining;
    s->c_recursion_remaining = ts->c_recursion_remaining;
    s->current_exception = ts->current_exception;
    s->delete_later = ts->delete_later;
    s->threading_local_key = ts->threading_local_key;
    s->threading_local_sentinel = ts->threading_local_sentinel;
    s->asyncio_running_loop = ((_PyThreadStateImpl *)ts)->asyncio_running_loop;
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
    /* Tracing is the thread's: carry its flag over to the goroutine's
     * innermost C frame. */
    int use_tracing = ts->cframe->use_tracing;
    ts->cframe = s->cframe;
    ts->cframe->use_tracing = use_tracing;
    ts->recursion_remaining = ts->recursion_limit - s->recursion_depth;
    ts->curexc_type = s->curexc_type;
    ts->curexc_value = s->curexc_value;
    ts->curexc_traceback = s->curexc_traceback;
    ts->trash_delete_nesting = s->trash_delete_nesting;
    ts->trash_delete_later = s->trash_delete_later;
#elif PY_VERSION_HEX < 0x030D0000
    if (s->cframe == NULL)
        s->cframe = &ts->root_cframe;
    ts->cframe = s->cframe;
    ts->py_recursion_remaining = ts->py_recursion_limit - s->py_recursion_depth;
    ts->c_recursion_remaining = s->c_recursion_remaining;
    ts->current_exception = s->current_exception;
    ts->trash.delete_nesting = s->trash_delete_nesting;
    ts->trash.delete_later = s->trash_delete_later;
#else
    ts->current_frame = s->current_frame;
    ts->py_recursion_remaining = ts->py_recursion_limit - s->py_recursion_depth;
    ts->c_recursion_remaining = s->c_recursion_remaining;
    ts->current_exception = s->current_exception;
    ts->delete_later = s->delete_later;
    ts->threading_local_key = s->threading_local_key;
    ts->threading_local_sentinel = s->threading_local_sentinel;
    ((_PyThreadStateImpl *)ts)->asyncio_running_loop = s->asyncio_running_loop;
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
    Py_CLEAR(((_PyThreadStateImpl *)ts)->asyncio_running_loop);
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
     * object; with the collector off nothing can run Python code in
     * between. */
    int gc_was_on = PyGC_Disable();
#if PY_VERSION_HEX < 0x030D0000
    if (s->cframe == NULL) {
        if (gc_was_on)
            PyGC_Enable();
        return NULL;
    }
    _PyCFrame *saved = ts->cframe;
    ts->cframe = s->cframe;
    PyFrameObject *f = PyThreadState_GetFrame(ts);
    ts->cframe = saved;
#else
    struct _PyInterpreterFrame *saved = ts->current_frame;
    ts->current_frame = s->current_frame;
    PyFrameObject *f = PyThreadState_GetFrame(ts);
    ts->current_frame = saved;
#endif
    if (gc_was_on)
        PyGC_Enable();
    return (PyObject *)f;
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
