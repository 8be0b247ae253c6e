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
 * thread state cannot: it is locked to its thread while it blocks.
 */
#include "binding.h"

#include <signal.h>

typedef struct {
    PyThreadState *ts;
    PyObject *exc; /* what a signal handler raised */
} interrupt_ctx;

static const int64_t INTERRUPT_POLL_NS = 50 * 1000 * 1000;

static int interrupt_check(void *arg)
{
    interrupt_ctx *ic = arg;
    int abandon = 0;
    PyEval_RestoreThread(ic->ts);
    if (PyErr_CheckSignals() < 0) {
        ic->exc = gopy_err_fetch();
        abandon = 1;
    }
    PyEval_SaveThread();
    return abandon;
}

int gopy_call_blocking(int (*fn)(void *, bool), void *arg)
{
    if (gopy_rt_in_host_goroutine())
        return fn(arg, true);
    int status = fn(arg, false);
    if (status != GOPY_EAGAIN)
        return status;
    gopy_drain_deferred();
    bool c_goroutine = gopy_rt_goid() != 0;
    bool main_thread = !c_goroutine && PyThread_get_thread_ident() == gopy_state.main_thread;
    interrupt_ctx ic = {0};
    if (c_goroutine)
        gopy_rt_lock_os_thread();
    ic.ts = PyEval_SaveThread();
    if (main_thread)
        gopy_rt_set_interrupt(interrupt_check, &ic, INTERRUPT_POLL_NS);
    status = fn(arg, true);
    if (main_thread)
        gopy_rt_set_interrupt(NULL, NULL, 0);
    PyEval_RestoreThread(ic.ts);
    if (c_goroutine)
        gopy_rt_unlock_os_thread();
    if (ic.exc != NULL) {
        if (status == GOPY_EINTR) {
            gopy_err_restore(ic.exc);
            return -1;
        }
        /* The operation completed while the handler ran (a waker got there
         * first): keep its result and raise at the next chance.  For
         * Ctrl-C that is SIGINT again; any other exception a handler
         * raised is raised now, the result being dropped by the caller. */
        if (PyErr_GivenExceptionMatches(ic.exc, PyExc_KeyboardInterrupt)) {
            Py_DECREF(ic.exc);
            PyErr_SetInterruptEx(SIGINT);
            return status;
        }
        gopy_err_restore(ic.exc);
        return -1;
    }
    if (status == GOPY_EDEADLK) {
        PyErr_SetString(gopy_state.DeadlockError, "all goroutines are asleep - deadlock!");
        return -1;
    }
    return status;
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
