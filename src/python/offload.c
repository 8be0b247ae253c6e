/*
 * offload.c -- gopy.offload(fn, *args, **kwargs): in a Python goroutine,
 * fn runs on one of the runtime's helper threads (gopy_offload) while the
 * goroutine is parked, so that the goroutines sharing its thread run
 * meanwhile; fn's value comes back, or the very exception it raised.  fn
 * runs in a copy of the caller's contextvars context, as with
 * asyncio.to_thread.  Anywhere else (a thread, Python code a C goroutine
 * called back into: neither has goroutines waiting behind it on its
 * thread) fn is simply called.
 */
#include "binding.h"

/* One call, on the parked goroutine's stack (valid until it resumes). */
typedef struct {
    PyObject *const *args; /* borrowed: fn, then its positional arguments
                              (the caller's frame holds them while it is
                              parked) */
    size_t nargsf;         /* fn's positional arguments, vectorcall style */
    PyObject *kwnames;     /* borrowed, or NULL */
    PyObject *context;     /* owned: the copy fn runs in, or NULL (empty) */
    PyObject *result;      /* owned: fn's value, or NULL */
    PyObject *exc;         /* owned: what fn raised, or NULL */
} offload_call;

/* On a helper thread, without the GIL: make the call. */
static void run_call(void *arg)
{
    offload_call *c = arg;
    /* At interpreter exit, taking the GIL could end or block this thread;
     * the goroutine will never resume to see the call anyway. */
    if (!gopy_attach_begin())
        return;
    PyGILState_STATE gil = PyGILState_Ensure();
    gopy_attach_done();
    if (c->context == NULL || PyContext_Enter(c->context) == 0) {
        c->result = PyObject_Vectorcall(c->args[0], c->args + 1, c->nargsf, c->kwnames);
        if (c->result == NULL)
            c->exc = gopy_err_fetch();
        if (c->context != NULL && PyContext_Exit(c->context) < 0)
            PyErr_WriteUnraisable(c->context); /* cannot happen: we entered it */
    } else {
        c->exc = gopy_err_fetch();
    }
    PyGILState_Release(gil);
}

PyObject *gopy_offload_impl(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "offload() needs a function to call");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "offload(): %.100s object is not callable",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    size_t nargsf = (size_t)(nargs - 1);
    if (!gopy_rt_in_host_goroutine())
        return PyObject_Vectorcall(args[0], args + 1, nargsf, kwnames);
    offload_call c = {args, nargsf, kwnames, gopy_context_for_spawn(), NULL, NULL};
    if (c.context == NULL && PyErr_Occurred())
        return NULL;
    /* Parks with the GIL held; the thread lets it go while it waits. */
    int r = gopy_offload(run_call, &c);
    Py_XDECREF(c.context);
    if (r != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (c.result != NULL)
        return c.result;
    if (c.exc != NULL) {
        gopy_err_restore(c.exc);
        return NULL;
    }
    PyErr_SetString(PyExc_RuntimeError,
                    "gopy: offload: the interpreter is shutting down");
    return NULL;
}
