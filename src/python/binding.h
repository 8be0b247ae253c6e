/*
 * binding.h -- shared declarations of the CPython binding (gopy._gopy).
 *
 * The binding owns every Python reference the runtime carries: values in
 * channels (PyObject* elements, one reference each), goroutine records,
 * timer callbacks.  The runtime never touches a refcount; where it drops
 * something (a channel freed by a C goroutine, say) the binding's release
 * callbacks run, and defer the decref if the GIL is not held (deferred.c).
 *
 * Process-wide state lives in `gopy_state` below: one runtime per
 * process, refused in subinterpreters.  Its fields are written once at
 * module init (with the GIL) unless noted.
 */
#ifndef GOPY_BINDING_H
#define GOPY_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../runtime/gopy_rt.h"

#include <stdatomic.h>
#include <stdbool.h>

/* ---- module-wide state ------------------------------------------------ */

typedef struct {
    PyObject *ClosedChannelError;
    PyObject *DeadlockError;
    PyObject *module;         /* gopy._gopy (borrowed: lives forever) */
    unsigned long main_thread; /* PyThread_get_thread_ident of the main thread */
    PyInterpreterState *interp; /* the one gopy runs in (set at import) */
    _Atomic bool stopping;    /* interpreter exit began: no more host work */
#ifndef Py_GIL_DISABLED
    _Atomic uint64_t gil_takes; /* times an M has taken the GIL (hook_acquire) */
#endif
} gopy_state_t;

extern gopy_state_t gopy_state;

/* Attribute names the binding looks up per call, interned once at import
 * (module.c).  A name made per call (PyObject_CallMethod's,
 * PyObject_GetAttrString's) costs an allocation and never hits CPython's
 * type attribute cache, and on 3.12+ the cache, which picks a slot by the
 * name's address and keeps the name, holds on to each fresh copy until a
 * later lookup takes its slot (up to 4,096 dead strings). */
typedef struct {
    PyObject *add_note, *excepthook, *_others_can_act, *from_buffer_copy, *value, *sizeof_,
        *_SimpleCData, *timestamp, *total_seconds, *_run, *fileno, *gettimeout;
} gopy_names_t;

extern gopy_names_t gopy_names;

extern PyTypeObject Chan_Type, SendChan_Type, RecvChan_Type;
extern PyTypeObject Recv_Type, Send_Type;
extern PyTypeObject Timer_Type, Ticker_Type;

/* module.c: ready type and add it to m as name (NULL: only ready it, for a
 * type that is reached but not named); 0, or -1 with an exception set. */
int gopy_add_type(PyObject *m, PyTypeObject *type, const char *name);

/* ---- blocking.c: calling runtime operations that may block -------------
 *
 * fn(arg, block) performs the operation; with block false it must not
 * block (GOPY_EAGAIN when it would).  In a host goroutine it runs with
 * the GIL held: blocking parks the goroutine and the M decides about the
 * GIL.  Elsewhere (a foreign thread, or Python code a C goroutine called
 * back into) it is first tried without blocking, GIL held, and only then
 * run blocking with the GIL released (releasing it for an operation that
 * completes at once would hand the GIL to another thread for nothing);
 * on the main thread, signals interrupt the wait (KeyboardInterrupt).
 * Returns the runtime status; on -1 a Python exception is set (interrupt,
 * deadlock).  fn must not touch Python objects (no GIL on some paths).
 */
int gopy_call_blocking(int (*fn)(void *, bool), void *arg);
/* can_deadlock false: an operation that ends by itself (a sleep), never
 * reported as a deadlock. */
int gopy_call_blocking_ex(int (*fn)(void *, bool), void *arg, bool can_deadlock);
/* goroutine.c: the idents of the runtime's threads that run Python (a
 * tuple, a new reference; NULL with an exception), which cannot be the
 * thread that would end a wait. */
PyObject *gopy_runtime_thread_idents(void);
/* Set the Python exception for a failing status; returns -1. */
int gopy_status_error(int status);

/* goroutine.c: a thread that is about to make or take a thread state
 * (without holding one) calls gopy_attach_begin first: false if the
 * interpreter is exiting (then take none); else gopy_attach_done once it
 * holds one (or, for a helper that runs Python only briefly, once it has
 * let it go again).  The exit waits for the threads in between. */
bool gopy_attach_begin(void);
void gopy_attach_done(void);

/* ---- offload.c: gopy.offload ------------------------------------------------ */

/* offload(fn, *args, **kwargs), vectorcall style: args[0] is fn, then
 * nargs - 1 positional arguments, then one value per name in kwnames (all
 * borrowed).  fn's value as a new reference, or NULL with its exception
 * (the object it raised) set. */
PyObject *gopy_offload_impl(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

/* ---- deferred.c: decrefs from threads that do not hold the GIL ---------- */

/* Drop a reference now if this thread holds the GIL, else later. */
void gopy_decref_anywhere(PyObject *o);
/* Drop the deferred references (GIL held). */
void gopy_drain_deferred(void);

/* ---- chan.c -------------------------------------------------------------- */

/* How a channel's elements look from Python. */
enum elem_kind {
    ELEM_OBJECT, /* PyObject*, one reference per buffered value */
    ELEM_TIME,   /* int64 wall-clock ns, seen as a float of seconds */
    ELEM_CTYPE,  /* raw bytes of a ctypes type (channels shared with C) */
};

typedef struct {
    PyObject_HEAD
    gopy_chan *c;
    enum elem_kind kind;
    PyObject *ctype;     /* ELEM_CTYPE: the ctypes type */
    bool ctype_simple;   /* c_int64 & co: values convert to Python values */
    gopy_timer *timer;   /* channel of after()/tick(): freed with us */
    gopy_context *context; /* a context's done(): held (a reference) while we
                              live, so a cancel of its parent still closes us */
    PyObject *weakreflist;
    /* Receives from Python in progress (recv, iteration, select), changed
     * only with the GIL held (attached, on a free-threaded build: atomic
     * there, and steady through a collection, which stops every attached
     * thread): while one is, a thread without the GIL may take values out
     * of the buffer (see Chan_traverse).  chan_receiving() changes it. */
    Py_ssize_t receiving;
} ChanObject;

static inline void chan_receiving(ChanObject *ch, Py_ssize_t delta)
{
#ifdef Py_GIL_DISABLED
    __atomic_fetch_add(&ch->receiving, delta, __ATOMIC_RELAXED);
#else
    ch->receiving += delta;
#endif
}

/* SendChan / RecvChan: a direction-restricted view of a Chan. */
typedef struct {
    PyObject_HEAD
    ChanObject *chan;
} ChanViewObject;

/* The ChanObject behind a Chan or view (borrowed), or NULL if obj is not
 * one.  *can_send / *can_recv say what the object allows. */
ChanObject *gopy_chan_of(PyObject *obj, bool *can_send, bool *can_recv);
/* A new Chan around an existing runtime channel (takes over one
 * reference to it, released on failure).  ctype: NULL, or the ctypes type
 * of ELEM_CTYPE elements (checked against the channel's element size). */
ChanObject *gopy_chan_wrap(gopy_chan *c, enum elem_kind kind, PyObject *ctype);
PyObject *gopy_recv_view(ChanObject *ch);

/* The address in a handle (an int naming a runtime object made in C), or
 * NULL with TypeError / ValueError for what cannot be one (negative, null,
 * misaligned).  what: "channel", "context"... for the message. */
void *gopy_handle_address(PyObject *handle, const char *what);

/* Element conversion: a buffer of elemsize bytes <-> a Python object. */
/* Fill buf from value for a send (ELEM_OBJECT: stores a new reference). */
int gopy_elem_from_py(ChanObject *ch, PyObject *value, void *buf);
/* Undo gopy_elem_from_py for a value that was not sent. */
void gopy_elem_discard(ChanObject *ch, void *buf);
/* A received element as a new reference (ELEM_OBJECT: takes over the
 * reference in buf).  ok false: the zero value, None. */
PyObject *gopy_elem_to_py(ChanObject *ch, void *buf, bool ok);
/* Bytes an element needs in a caller's buffer. */
size_t gopy_elem_size(ChanObject *ch);

/* ---- goroutine.c ------------------------------------------------------------ */

/* A host goroutine's record (the runtime's gstate). */
typedef struct py_goroutine py_goroutine;

int gopy_goroutine_init(void);
/* Start fn(*args, **kwargs) in a new goroutine, in a copy of the current
 * contextvars context.  0, or -1 with an exception set. */
int gopy_spawn(PyObject *fn, PyObject *args, PyObject *kwargs);
/* The function after_func timers fire: starts a goroutine from a
 * prepared call (a py_call_template), without the GIL. */
typedef struct py_call_template py_call_template;
py_call_template *gopy_template_new(PyObject *fn, PyObject *args);
void gopy_template_release(py_call_template *t);
void gopy_template_fire(void *template);
/* A Python goroutine's frames and origin, for runtime.stack(): a new
 * (frames, created_by) tuple.  frames: a list of (filename, lineno, name)
 * tuples, innermost last; created_by: gopy_origin_describe's tuple, or
 * None.  Both None on a free-threaded build for a goroutine of another
 * thread, which may be running (GIL held). */
PyObject *gopy_goroutine_where(void *gstate);
/* The calling Python goroutine's saved interpreter state (borrowed), or
 * NULL outside Python goroutines. */
struct py_tstate_save *gopy_goroutine_tstate_save(void);
void gopy_host_stop(void);

/* ---- sync.c, atomic.c: the sync types and gopy.atomic -------------------- */

/* Add Mutex, RWMutex, WaitGroup, Once, once_func, once_value, Cond, Pool
 * and Map to the module (and hook pools' cleanup to gc.callbacks). */
int gopy_sync_init(PyObject *m);
/* Add gopy.atomic's types and functions as the submodule _atomic. */
int gopy_atomic_init(PyObject *m);
/* Hand the current exception to gopy.excepthook as escaping the calling
 * goroutine (goroutine.c; WaitGroup.go reports before its Done). */
void gopy_report_exception(void);

/* ---- context.c, errgroup.c: gopy.context and gopy.errgroup -------------- */

/* Register _gopy._context, then _gopy._errgroup, which uses it (module
 * init). */
int gopy_context_init(PyObject *m);
int gopy_errgroup_init(PyObject *m);
/* The handle of a gopy.context.Context (borrowed), or NULL with TypeError
 * naming `who`. */
gopy_context *gopy_context_handle_of(PyObject *ctx, const char *who);
/* A new Context derived from parent (a Context) around handle, whose
 * reference it takes over (released on failure). */
PyObject *gopy_context_derived(PyObject *parent, gopy_context *handle, const char *kind);
/* Cancel a Context's node (GIL held); cause (NULL or None: none) becomes
 * its cause if this call cancelled it. */
void gopy_context_cancel_with(PyObject *ctx, PyObject *cause);
/* A namespace module object added to m as `name` (borrowed), or NULL. */
PyObject *gopy_namespace(PyObject *m, const char *name, const char *qualname);
/* timers.c: seconds (int, float) or a timedelta as ns. */
int gopy_duration_ns(PyObject *d, int64_t *ns);
/* timers.c: CLOCK_MONOTONIC in ns, the clock of time.monotonic() and of
 * the runtime's deadlines. */
int64_t gopy_monotonic_ns(void);
/* timers.c: gopy.sleep for ns nanoseconds (parks a host goroutine, blocks
 * other threads with the GIL released); 0, or -1 with an exception set. */
int gopy_sleep_ns(int64_t ns);
/* timers.c, select.c: the bodies of the module's sleep, after, tick,
 * after_func and select. */
PyObject *gopy_sleep_impl(PyObject *d);
PyObject *gopy_after_impl(PyObject *d);
PyObject *gopy_tick_impl(PyObject *d);
PyObject *gopy_after_func_impl(PyObject *const *args, Py_ssize_t nargs);
PyObject *gopy_select_impl(PyObject *const *args, Py_ssize_t nargs, bool block);

/* ---- hooks.c: the C half of gopy._hooks (the standard library's blocking
 * calls inside goroutines) ------------------------------------------------ */

/* Add in_goroutine(), wrap_time_sleep() and socket_io() to the module. */
int gopy_hooks_init(PyObject *m);

/* ---- preempt.c: preemption of goroutines computing in Python ------------ */

/* The runtime's preempt hook (any thread, no GIL needed): make the
 * goroutine running on the thread of ts call gopy_rt_preempt_take at its
 * next loop back-edge. */
void gopy_preempt_request(PyThreadState *ts);
/* The runtime's stalled hook (likewise): print the traceback of the
 * goroutine running on the thread of ts to sys.stderr, soon. */
void gopy_preempt_print_traceback(PyThreadState *ts);
/* In a fork child (GIL held): no preempter thread yet, no hook armed. */
void gopy_preempt_after_fork_child(void);
/* Module init: note threading's lock types (preemption stays out of their
 * `with` blocks).  -1 with an exception. */
int gopy_preempt_init(void);

/* ---- netpoll.c: the netpoller ------------------------------------------- */

/* Add netpoll_wait, netpoll_close, POLL_READ and POLL_WRITE to the module. */
int gopy_netpoll_init(PyObject *m);
/* Wait until fd is ready for mode (GOPY_POLL_READ or GOPY_POLL_WRITE) or
 * the CLOCK_MONOTONIC deadline_ns passes (-1: none), parking a goroutine
 * (blocking another thread, Ctrl-C aware): 1 ready, 0 timed out, -1 with
 * an exception (OSError EBADF once fd is closed meanwhile; the
 * interrupt's). */
int gopy_netpoll_park(int fd, int mode, int64_t deadline_ns);

/* ---- compat.c: everything that differs between CPython versions --------- */

/* The interpreter state one goroutine owns (frames, data stack, recursion
 * depth, exception state, context, threading.local dict), as saved while
 * it is switched out. */
typedef struct py_tstate_save py_tstate_save;
size_t gopy_tstate_save_size(void);
/* Initialise a fresh goroutine's saved state: context (a reference it
 * takes over), frames in the chunk_size bytes at chunk_mem, C code on the
 * stack [stack_lo, stack_hi). */
void gopy_tstate_save_init(py_tstate_save *s, PyObject *context, void *chunk_mem,
                           size_t chunk_size, uintptr_t stack_lo, uintptr_t stack_hi);
/* Prepare an M's own thread state (GIL held, on the M's thread). */
void gopy_tstate_m_init(PyThreadState *ts);
/* Switch the thread's state to the goroutine's / save it back. */
void gopy_tstate_load(PyThreadState *ts, py_tstate_save *s);
void gopy_tstate_store(PyThreadState *ts, py_tstate_save *s);
/* Drop what a finishing goroutine's state holds (GIL held, its state
 * loaded in ts, on its own stack). */
void gopy_tstate_release_current(PyThreadState *ts);
#ifdef Py_GIL_DISABLED
/* Is ts's thread out of the interpreter now (inside a call that let it
 * go)?  Any thread may ask, without attaching. */
bool gopy_tstate_detached(PyThreadState *ts);
#endif
/* Check the running interpreter's thread-state layout and note where its
 * internal fields are (module init, main thread).  -1 with ImportError. */
int gopy_compat_init(void);
/* How far _PyThreadStateImpl's fields lie from where the headers of
 * version built_with put them, in the running version (PY_VERSION_HEX
 * form); exported for the tests. */
ptrdiff_t gopy_ts_impl_shift(unsigned long built_with, unsigned long running);
/* Fresh goroutines' C-recursion budget (3.12, 3.13), from the stack size. */
extern int gopy_c_recursion_budget;
void gopy_set_stack_size(size_t stack_bytes);
/* The goroutine's innermost frame as a new reference, or NULL (no
 * exception) if it has none; s is switched out. */
PyObject *gopy_tstate_save_frame(PyThreadState *ts, py_tstate_save *s);
bool gopy_is_finalizing(void);
/* Is the running code Python that a C function called back (more than one
 * entry into the interpreter on ts's frame chain)?  Preemption stays out
 * of such code (preempt.c). */
bool gopy_frame_called_back(PyThreadState *ts);
/* Does match(obj, arg) hold for an object on the locals or value stack of
 * one of ts's frames (the running goroutine's)?  Borrowed objects, GIL
 * held, nothing may run meanwhile. */
/* The code the innermost Python frame on ts runs (a new reference) and
 * the byte offset of its current instruction (*lasti), or NULL without an
 * exception: no Python frame (GIL held). */
PyCodeObject *gopy_frame_where(PyThreadState *ts, int *lasti);
bool gopy_frames_hold(PyThreadState *ts, bool (*match)(PyObject *, void *), void *arg);
/* The context a goroutine spawned now runs in: a copy of the current one,
 * or NULL (no exception) when that would be an empty context. */
PyObject *gopy_context_for_spawn(void);
/* Fetch / restore the current exception as one object (NULL if none). */
PyObject *gopy_err_fetch(void);
void gopy_err_restore(PyObject *exc);
/* secs, neither a float nor an integer, as a float if time.sleep takes it
 * as one: 1 (*d set), 0 if time.sleep rejects its type, -1 with an
 * exception set (its __float__ raised). */
int gopy_sleep_takes_as_float(PyObject *secs, double *d);
/* v (an int, borrowed) is below zero. */
bool gopy_long_is_negative(PyObject *v);
/* A block of code that holds op's lock on a free-threaded build (CPython's
 * critical section: let go, and retaken, whenever the thread blocks or its
 * goroutine parks, so it orders short field updates, never a wait); on a
 * GIL build the GIL is that lock and these compile to a plain block. */
#if PY_VERSION_HEX >= 0x030D0000
#define GOPY_BEGIN_LOCKED(op) Py_BEGIN_CRITICAL_SECTION(op)
#define GOPY_END_LOCKED() Py_END_CRITICAL_SECTION()
#else
#define GOPY_BEGIN_LOCKED(op) {
#define GOPY_END_LOCKED() }
#endif

#endif
