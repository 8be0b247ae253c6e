/*
 * netpoll.c -- the netpoller from Python: _gopy.netpoll_wait and
 * _gopy.netpoll_close, the ground the standard-library hooks build on.
 * A wait parks a Python goroutine (its M runs the others meanwhile, GIL
 * kept) and blocks any other thread with the GIL released, Ctrl-C aware
 * (blocking.c).
 */
#include "binding.h"

#include <errno.h>
#include <math.h>

typedef struct {
    int fd;
    int mode;
    int64_t deadline_ns;
    int err; /* errno of a -1 result, 0 otherwise */
} wait_call;

static int wait_fn(void *arg, bool block)
{
    wait_call *c = arg;
    int r = gopy_rt_netpoll_wait(c->fd, c->mode, c->deadline_ns, block);
    c->err = r < 0 ? errno : 0;
    return r;
}

int gopy_netpoll_park(int fd, int mode, int64_t deadline_ns)
{
    wait_call c = {.fd = fd, .mode = mode, .deadline_ns = deadline_ns};
    int r = gopy_call_blocking_ex(wait_fn, &c, false);
    if (c.err != 0) {
        errno = c.err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    switch (r) {
    case GOPY_OK:
        return 1;
    case GOPY_ETIMEDOUT:
        return 0;
    case GOPY_ECLOSED:
        errno = EBADF;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    default:
        return gopy_status_error(r); /* -1: the interrupt's exception is set */
    }
}

/* A time.monotonic() deadline as CLOCK_MONOTONIC ns (the same clock on
 * Linux); None: -1 (none).  A deadline before the clock's start is past,
 * not "none". */
static int deadline_ns_of(PyObject *deadline, int64_t *ns)
{
    if (deadline == Py_None) {
        *ns = -1;
        return 0;
    }
    double s = PyFloat_AsDouble(deadline);
    if (s == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(s)) {
        PyErr_SetString(PyExc_ValueError, "netpoll_wait: deadline is NaN");
        return -1;
    }
    if (s <= 0)
        *ns = 0;
    else if (s >= 9.2e9)
        *ns = INT64_MAX;
    else
        *ns = (int64_t)(s * 1e9);
    return 0;
}

/* netpoll_wait(fd, mode, deadline=None), parsed by hand: every socket
 * hook inside a goroutine calls it, and PyArg_ParseTupleAndKeywords takes
 * over 1 KiB of the goroutine's C stack, a page of memory more for every
 * goroutine that connects (docs/decisions.md §15). */
static PyObject *mod_netpoll_wait(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames)
{
    (void)self;
    static const char *const names[] = {"fd", "mode", "deadline"};
    PyObject *given[3] = {NULL, NULL, NULL};
    if (nargs > 3) {
        PyErr_Format(PyExc_TypeError,
                     "netpoll_wait() takes at most 3 arguments (%zd given)", nargs);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        given[i] = args[i];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        int at = 0;
        while (at < 3 && PyUnicode_CompareWithASCIIString(name, names[at]) != 0)
            at++;
        if (at == 3) {
            PyErr_Format(PyExc_TypeError,
                         "netpoll_wait() got an unexpected keyword argument %R", name);
            return NULL;
        }
        if (given[at] != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "netpoll_wait() got multiple values for argument '%s'", names[at]);
            return NULL;
        }
        given[at] = args[nargs + k];
    }
    for (int at = 0; at < 2; at++)
        if (given[at] == NULL) {
            PyErr_Format(PyExc_TypeError, "netpoll_wait() missing required argument '%s'",
                         names[at]);
            return NULL;
        }
    PyObject *fdobj = given[0], *deadline = given[2] == NULL ? Py_None : given[2];
    long mode = PyLong_AsLong(given[1]);
    if (mode == -1 && PyErr_Occurred())
        return NULL;
    /* An int, or an object with fileno(); ValueError if negative. */
    int fd = PyObject_AsFileDescriptor(fdobj);
    if (fd < 0)
        return NULL;
    if (mode != GOPY_POLL_READ && mode != GOPY_POLL_WRITE) {
        PyErr_Format(PyExc_ValueError,
                     "netpoll_wait: mode must be POLL_READ (%d) or POLL_WRITE (%d), not %ld",
                     GOPY_POLL_READ, GOPY_POLL_WRITE, mode);
        return NULL;
    }
    int64_t deadline_ns;
    if (deadline_ns_of(deadline, &deadline_ns) < 0)
        return NULL;
    int r = gopy_netpoll_park(fd, (int)mode, deadline_ns);
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *mod_netpoll_close(PyObject *self, PyObject *fdobj)
{
    (void)self;
    int fd = PyObject_AsFileDescriptor(fdobj);
    if (fd < 0)
        return NULL;
    if (gopy_netpoll_close(fd) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef netpoll_methods[] = {
    {"netpoll_wait", (PyCFunction)(void (*)(void))mod_netpoll_wait,
     METH_FASTCALL | METH_KEYWORDS,
     "netpoll_wait(fd, mode, deadline=None) -> bool\n\nWait until fd (an int or an object "
     "with fileno()) is ready for mode (POLL_READ or POLL_WRITE): True, or False once the "
     "time.monotonic() deadline has passed.  Parks a goroutine; blocks other threads.  "
     "Readiness wakes every waiter: retry the operation, it may still block.  OSError "
     "EBADF when fd is not open or netpoll_close(fd) was called meanwhile, EPERM when fd "
     "cannot be polled (a regular file)."},
    {"netpoll_close", mod_netpoll_close, METH_O,
     "netpoll_close(fd) -> None\n\nCall before closing fd: wakes its waiters (OSError EBADF) "
     "and forgets it."},
    {NULL},
};

int gopy_netpoll_init(PyObject *m)
{
    if (PyModule_AddFunctions(m, netpoll_methods) < 0 ||
        PyModule_AddIntConstant(m, "POLL_READ", GOPY_POLL_READ) < 0 ||
        PyModule_AddIntConstant(m, "POLL_WRITE", GOPY_POLL_WRITE) < 0)
        return -1;
    return 0;
}
