/*
 * blocking.c -- running runtime operations that may block, from Python.
 *
 * Inside a Python goroutine the operation runs as is, GIL held: blocking
 * parks the goroutine, and its M keeps the GIL for the next Python
 * goroutine or lets it go.  On any other thread the GIL is released
 * around it.  On the main thread a blocked operation wakes on signals
 * (and every 50 ms) to run Python's signal handlers; if one raises (Ctrl-C
 * raises KeyboardInterrupt), the operation is abandoned, nothing having
 * happened, and the exception propagates.
 *
 * Python code called back from a C goroutine (a ctypes callback) is on a
 * goroutine that may move between threads when it parks, which its
 * thread state cannot: it is locked to its thread while it blocks, and
 * counts as attaching (gopy_attach_begin) while it takes the state back.
 */
#include "binding.h"


typedef struct {
    PyThreadState *ts;
    bool main_thread;   /* run signal handlers */
    bool can_deadlock;  /* a wait only another thread or goroutine can end */
    PyObject *exc;      /* what a signal handler raised, or DeadlockError */
} interrupt_ctx;

/* Wake at least this often to run signal handlers (main thread) and to
 * check for deadlock; a signal to the main thread wakes it at once. */
static const int64_t POLL_NS = 50 * 1000 * 1000;

/* The threads parked in the runtime now, as a frozenset of idents. */
static PyObject *parked_threads(void)
{
    uintptr_t small[64], *idents = small;
    size_t n = gopy_rt_parked_threads(small, 64);
    if (n > 64) {
        size_t cap = n + 16; /* more may have come meanwhile */
        idents = PyMem_Malloc(cap * sizeof *idents);
        if (idents == NULL)
            return PyErr_NoMemory();
        n = gopy_rt_parked_threads(idents, cap);
        if (n > cap)
            n = cap;
    }
    PyObject *set = PyFrozenSet_New(NULL);
    for (size_t i = 0; set != NULL && i < n; i++) {
        PyObject *ident = PyLong_FromUnsignedLongLong(idents[i]);
        if (ident == NULL || PySet_Add(set, ident) < 0)
            Py_CLEAR(set);
        Py_XDECREF(ident);
    }
    if (idents != small)
        PyMem_Free(idents);
    return set;
}

/* Could any thread other than this one still act?  Asks gopy's Python
 * side, which knows the threads: those parked in gopy and the runtime's
 * own do not count.  -1 on error. */
static int others_can_act(void)
{
    PyObject *pkg = PyImport_ImportModule("gopy");
    PyObject *parked = pkg != NULL ? parked_threads() : NULL;
    PyObject *ours = parked != NULL ? gopy_runtime_thread_idents() : NULL;
    PyObject *r = ours != NULL ? PyObject_CallMethodObjArgs(pkg, gopy_names._others_can_act,
                                                            parked, ours, NULL)
                               : NULL;
    Py_XDECREF(pkg);
    Py_XDECREF(parked);
    Py_XDECREF(ours);
    if (r == NULL)
        return -1;
    int can = PyObject_IsTrue(r);
    Py_DECREF(r);
    return can;
}

/* Called by the runtime, without the GIL, while this thread waits.
 * Non-zero: give up the wait (ic->exc says why). */
static int interrupt_check(void *arg)
{
    interrupt_ctx *ic = arg;
    bool asleep = ic->can_deadlock && gopy_rt_all_asleep();
    if (!ic->main_thread && !asleep)
        return 0; /* nothing to do: keep the GIL out of it */
    int abandon = 0;
    PyEval_RestoreThread(ic->ts);
    if (ic->main_thread && PyErr_CheckSignals() < 0) {
        ic->exc = gopy_err_fetch();
        abandon = 1;
    } else if (asleep) {
        /* This runs Python code, so signal handlers may run inside it: an
         * exception out of it (KeyboardInterrupt) ends the wait. */
        int can = others_can_act();
        if (can < 0) {
            ic->exc = gopy_err_fetch();
            abandon = 1;
        } else if (!can && gopy_rt_all_asleep()) {
            PyErr_SetString(gopy_state.DeadlockError, "all goroutines are asleep - deadlock!");
            ic->exc = gopy_err_fetch();
            abandon = 1;
        }
    }
    PyEval_SaveThread();
    return abandon;
}

/* A pending call: raise exc (a reference it takes over) in the main
 * thread's running code. */
static int reraise_later(void *exc)
{
    gopy_err_restore(exc);
    return -1;
}

int gopy_call_blocking_ex(int (*fn)(void *, bool), void *arg, bool can_deadlock)
{
    if (gopy_rt_in_host_goroutine())
        return fn(arg, true);
    int status = fn(arg, false);
    if (status != GOPY_EAGAIN)
        return status;
    gopy_drain_deferred();
    bool c_goroutine = gopy_rt_goid() != 0;
    interrupt_ctx ic = {0};
    ic.can_deadlock = can_deadlock && !c_goroutine;
    ic.main_thread = !c_goroutine && PyThread_get_thread_ident() == gopy_state.main_thread;
    if (c_goroutine)
        gopy_rt_lock_os_thread();
    ic.ts = PyEval_SaveThread();
    bool polled = ic.main_thread || ic.can_deadlock;
    if (polled)
        gopy_rt_set_interrupt(interrupt_check, &ic, POLL_NS);
    status = fn(arg, true);
    if (polled)
        gopy_rt_set_interrupt(NULL, NULL, 0);
    /* Once the interpreter is exiting, a C goroutine never takes its
     * thread state back: CPython 3.13 and before end a thread that does
     * with pthread_exit once finalisation has begun, unwinding what is
     * here a goroutine's stack (3.14+ hang such a thread instead).  It
     * parks for good, as 3.14 would have it. */
    if (c_goroutine && !gopy_attach_begin()) {
        bool ok;
        for (;;)
            (void)gopy_rt_chan_recv(NULL, NULL, &ok, true);
    }
    PyEval_RestoreThread(ic.ts);
    if (c_goroutine) {
        gopy_attach_done();
        gopy_rt_unlock_os_thread();
    }
    if (ic.exc != NULL) {
        if (status == GOPY_EINTR) {
            gopy_err_restore(ic.exc);
            return -1;
        }
        /* The operation completed while we looked (a waker got there
         * first): its result stands.  A deadlock it was not, after all; an
         * exception a signal handler raised surfaces at the next bytecode,
         * as the signal itself would have. */
        if (PyErr_GivenExceptionMatches(ic.exc, gopy_state.DeadlockError) ||
            Py_AddPendingCall(reraise_later, ic.exc) != 0)
            Py_DECREF(ic.exc); /* pending-call queue full: the signal is lost */
    }
    return status;
}

int gopy_call_blocking(int (*fn)(void *, bool), void *arg)
{
    return gopy_call_blocking_ex(fn, arg, true);
}

int gopy_status_error(int status)
{
    switch (status) {
    case GOPY_ECLOSED:
        PyErr_SetString(gopy_state.ClosedChannelError, "send on closed channel");
        break;
    case GOPY_EDEADLK:
        PyErr_SetString(gopy_state.DeadlockError, "all goroutines are asleep - deadlock!");
        break;
    case GOPY_ENEGATIVE:
        PyErr_SetString(PyExc_ValueError, "sync: negative WaitGroup counter");
        break;
    case GOPY_ENOTLOCKED:
        PyErr_SetString(PyExc_RuntimeError, "sync: unlock of unlocked mutex");
        break;
    case GOPY_EREUSE:
        PyErr_SetString(PyExc_RuntimeError,
                        "sync: WaitGroup is reused before previous Wait has returned");
        break;
    default:
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_SystemError, "gopy: unexpected runtime status %d", status);
    }
    return -1;
}
