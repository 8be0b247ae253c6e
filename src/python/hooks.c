/*
 * hooks.c -- the C half of gopy._hooks: the standard library's blocking
 * calls park the calling goroutine instead of blocking its thread.
 *
 * in_goroutine() is the question every hook asks first: is the caller a
 * Python goroutine?  Only then may it park.  Python code called back
 * from a C goroutine (a ctypes callback) is not one: its thread state is
 * locked to the thread, so there the original calls run as they are.
 *
 * time.sleep is hooked here rather than in Python because code outside
 * goroutines calls it constantly: its replacement is a builtin whose
 * self is the original function, so the outside path costs one C call
 * more.  Inside a goroutine it parks for the same duration time.sleep
 * would sleep, computed by the same rules (CPython's pytime: a float's
 * nanoseconds rounded up, an int through __index__); every input that
 * time.sleep rejects is handed to the original, which raises its own
 * exception with its own message.
 */
#include "binding.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sys/socket.h>

static PyObject *in_goroutine(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyBool_FromLong(gopy_rt_in_host_goroutine());
}

/* The nanoseconds time.sleep(secs) would sleep: 1, 0 when secs is
 * something time.sleep rejects (a type it does not take; NaN, negative,
 * out of range: the original then raises its own exception), -1 with an
 * exception set (converting secs raised it). */
static int sleep_length(PyObject *secs, int64_t *ns)
{
    double d;
    if (PyFloat_Check(secs)) {
        d = PyFloat_AS_DOUBLE(secs);
    } else if (PyIndex_Check(secs)) {
        PyObject *i = PyNumber_Index(secs);
        if (i == NULL)
            return -1;
        long long s = PyLong_AsLongLong(i);
        Py_DECREF(i);
        if (s == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return -1;
            PyErr_Clear();
            return 0;
        }
        if (s < 0 || s > INT64_MAX / 1000000000)
            return 0;
        *ns = (int64_t)s * 1000000000;
        return 1;
    } else {
        int real = gopy_sleep_takes_as_float(secs, &d);
        if (real <= 0)
            return real;
    }
    if (!(d >= 0.0))
        return 0;
    double rounded = ceil(d * 1e9);
    if (!(rounded < 9223372036854775808.0)) /* 2^63, and infinity */
        return 0;
    *ns = (int64_t)rounded;
    return 1;
}

/* time.sleep's replacement; original is time.sleep itself. */
static PyObject *hooked_sleep(PyObject *original, PyObject *secs)
{
    if (!gopy_rt_in_host_goroutine())
        return PyObject_CallOneArg(original, secs);
    int64_t ns;
    int valid = sleep_length(secs, &ns);
    if (valid < 0)
        return NULL;
    if (valid == 0)
        return PyObject_CallOneArg(original, secs);
    if (ns == 0) {
        /* time.sleep(0) lets other threads run: let the goroutines
         * sharing this thread run. */
        gopy_yield();
        Py_RETURN_NONE;
    }
    if (gopy_sleep_ns(ns) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef hooked_sleep_def = {
    "sleep", hooked_sleep, METH_O,
    "sleep(seconds)\n\nDelay execution for a given number of seconds.  The argument may be\n"
    "a floating point number for subsecond precision.\n\n"
    "gopy: inside a goroutine this parks the goroutine, and its thread runs\n"
    "the others meanwhile.",
};

static PyObject *wrap_time_sleep(PyObject *self, PyObject *original)
{
    (void)self;
    if (!PyCallable_Check(original)) {
        PyErr_SetString(PyExc_TypeError, "wrap_time_sleep: the original must be callable");
        return NULL;
    }
    PyObject *module = PyUnicode_FromString("time");
    if (module == NULL)
        return NULL;
    PyObject *hook = PyCFunction_NewEx(&hooked_sleep_def, original, module);
    Py_DECREF(module);
    return hook;
}

/* ---- socket I/O ---------------------------------------------------------
 *
 * socket.socket's recv, recv_into, send and sendall are socket_io objects:
 * method descriptors that, inside a goroutine, for a socket that waits
 * (timeout None, or a timeout > 0) and plain arguments (ints, a contiguous
 * buffer), make the system call with MSG_DONTWAIT, and on EAGAIN park on
 * the netpoller until the socket is ready or the timeout's deadline has
 * passed (TimeoutError("timed out"), socket.timeout, as the original),
 * then call again; sendall's deadline bounds the whole call, as CPython's
 * since 3.5.  Outside a goroutine they call the original; every other
 * case (keywords, a non-blocking socket, other argument types, a closed
 * socket) goes to the Python hook, the fallback, which keeps the general
 * rules and lets the original raise its own errors.
 *
 * Why in C: the Python hook's frames, and BlockingIOError raised and
 * caught on every would-block, cost several µs a call; and the original
 * lets the GIL go around each call, so on every call an M waiting for the
 * GIL took it and this one waited to get it back.  Here the GIL stays
 * held across a call that cannot block (docs/decisions.md §13).  The
 * results and errors are the original's: errno as OSError (its subclass
 * by errno), EINTR retried after signal handlers ran, sendall looking at
 * signals between pieces, as CPython's socket module does.
 */

enum socket_op { SOCK_RECV, SOCK_RECV_INTO, SOCK_SEND, SOCK_SENDALL, SOCK_NOPS };

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    enum socket_op op;
    PyTypeObject *socket_type; /* the original's class: _socket.socket */
    PyObject *original;        /* _socket.socket's method (a strong reference) */
    PyObject *fallback;        /* the Python hook (a strong reference) */
} SocketIO;

/* An exact int as a C int, false for anything else (then the fallback
 * judges it). */
static bool plain_int(PyObject *o, int *out)
{
    if (!PyLong_CheckExact(o))
        return false;
    int overflow;
    long v = PyLong_AsLongAndOverflow(o, &overflow);
    if (overflow != 0 || v < INT_MIN || v > INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

/* An exact int >= 0 as a Py_ssize_t, false for anything else. */
static bool plain_size(PyObject *o, Py_ssize_t *out)
{
    if (!PyLong_CheckExact(o))
        return false;
    Py_ssize_t v = PyLong_AsSsize_t(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return false;
    }
    *out = v;
    return v >= 0;
}

/* The socket's descriptor (its fileno()): -1 if closed, or if fileno()
 * gave no plain int (the fallback then does what it does); -2 with an
 * exception set. */
static int socket_fd(PyObject *sock)
{
    PyObject *r = PyObject_CallMethodNoArgs(sock, gopy_names.fileno);
    if (r == NULL)
        return -2;
    int fd;
    if (!plain_int(r, &fd) || fd < 0)
        fd = -1;
    Py_DECREF(r);
    return fd;
}

/* Does sock wait (timeout None or > 0)?  1 yes, with *deadline_ns the
 * CLOCK_MONOTONIC deadline of a call starting now (-1: none); 0 no (a
 * non-blocking socket, or a gettimeout() giving something else); -1 with
 * an exception set. */
static int socket_deadline(PyObject *sock, int64_t *deadline_ns)
{
    PyObject *t = PyObject_CallMethodNoArgs(sock, gopy_names.gettimeout);
    if (t == NULL)
        return -1;
    int waits = 0;
    if (t == Py_None) {
        *deadline_ns = -1;
        waits = 1;
    } else if (PyFloat_CheckExact(t) && PyFloat_AS_DOUBLE(t) > 0) {
        double ns = ceil(PyFloat_AS_DOUBLE(t) * 1e9);
        int64_t now = gopy_monotonic_ns();
        *deadline_ns = ns < (double)(INT64_MAX - now) ? now + (int64_t)ns : INT64_MAX;
        waits = 1;
    }
    Py_DECREF(t);
    return waits;
}

static int timed_out(void)
{
    PyErr_SetString(PyExc_TimeoutError, "timed out");
    return -1;
}

/* What to do after a system call failed with errno: 1 try again (after a
 * park on EAGAIN, or signal handlers on EINTR), -1 with an exception set
 * (the call's error, the timeout's, the park's). */
static int after_failure(int fd, int mode, int64_t deadline_ns)
{
    int err = errno;
    if (err == EINTR)
        return PyErr_CheckSignals() < 0 ? -1 : 1;
    if (err == EAGAIN || err == EWOULDBLOCK) {
        int ready = gopy_netpoll_park(fd, mode, deadline_ns);
        return ready < 0 ? -1 : ready == 0 ? timed_out() : 1;
    }
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* recv(bufsize[, flags]) -> bytes; NULL: an exception, or *plain false
 * when the arguments are for the fallback. */
static PyObject *op_recv(int fd, int64_t deadline_ns, PyObject *const *args, Py_ssize_t n,
                         bool *plain)
{
    Py_ssize_t size;
    int flags = 0;
    if (n < 1 || n > 2 || !plain_size(args[0], &size) || (n == 2 && !plain_int(args[1], &flags))) {
        *plain = false;
        return NULL;
    }
    PyObject *buf = PyBytes_FromStringAndSize(NULL, size);
    if (buf == NULL)
        return NULL;
    for (;;) {
        ssize_t r = recv(fd, PyBytes_AS_STRING(buf), (size_t)size, flags | MSG_DONTWAIT);
        if (r >= 0) {
            if (r != size)
                _PyBytes_Resize(&buf, r);
            return buf;
        }
        if (after_failure(fd, GOPY_POLL_READ, deadline_ns) < 0) {
            Py_DECREF(buf);
            return NULL;
        }
    }
}

/* The buffer of args[0] (writable for recv_into), C-contiguous; false if
 * it has none (the fallback reports it). */
static bool plain_buffer(PyObject *o, Py_buffer *view, int flags)
{
    if (PyObject_GetBuffer(o, view, flags) < 0) {
        PyErr_Clear();
        return false;
    }
    if (!PyBuffer_IsContiguous(view, 'C')) {
        PyBuffer_Release(view);
        return false;
    }
    return true;
}

/* recv_into(buffer[, nbytes[, flags]]) -> int. */
static PyObject *op_recv_into(int fd, int64_t deadline_ns, PyObject *const *args,
                              Py_ssize_t n, bool *plain)
{
    Py_ssize_t size = 0;
    int flags = 0;
    Py_buffer view;
    if (n < 1 || n > 3 || (n >= 2 && !plain_size(args[1], &size)) ||
        (n == 3 && !plain_int(args[2], &flags)) || !plain_buffer(args[0], &view, PyBUF_WRITABLE)) {
        *plain = false;
        return NULL;
    }
    if (size == 0)
        size = view.len;
    else if (size > view.len) { /* the original's ValueError */
        PyBuffer_Release(&view);
        *plain = false;
        return NULL;
    }
    PyObject *result = NULL;
    for (;;) {
        ssize_t r = recv(fd, view.buf, (size_t)size, flags | MSG_DONTWAIT);
        if (r >= 0) {
            result = PyLong_FromSsize_t(r);
            break;
        }
        if (after_failure(fd, GOPY_POLL_READ, deadline_ns) < 0)
            break;
    }
    PyBuffer_Release(&view);
    return result;
}

/* send(data[, flags]) -> int, and sendall(data[, flags]) -> None. */
static PyObject *op_send(int fd, int64_t deadline_ns, PyObject *const *args, Py_ssize_t n,
                         bool all, bool *plain)
{
    int flags = 0;
    Py_buffer view;
    if (n < 1 || n > 2 || (n == 2 && !plain_int(args[1], &flags)) ||
        !plain_buffer(args[0], &view, PyBUF_SIMPLE)) {
        *plain = false;
        return NULL;
    }
    const char *at = view.buf;
    Py_ssize_t left = view.len;
    PyObject *result = NULL;
    /* sendall sends at least once, as CPython's does (empty data too). */
    for (;;) {
        ssize_t r = send(fd, at, (size_t)left, flags | MSG_DONTWAIT);
        if (r < 0) {
            if (after_failure(fd, GOPY_POLL_WRITE, deadline_ns) < 0)
                break;
            continue;
        }
        if (!all) {
            result = PyLong_FromSsize_t(r);
            break;
        }
        at += r;
        left -= r;
        if (left <= 0) {
            result = Py_NewRef(Py_None);
            break;
        }
        /* A piece went: run signal handlers before the next, as
         * CPython's sendall (a send cut short by a signal succeeds), and
         * give up once the deadline has passed. */
        if (PyErr_CheckSignals() < 0)
            break;
        if (deadline_ns >= 0 && gopy_monotonic_ns() >= deadline_ns) {
            timed_out();
            break;
        }
    }
    PyBuffer_Release(&view);
    return result;
}

static PyObject *socket_io_call(PyObject *callable, PyObject *const *args, size_t nargsf,
                                PyObject *kwnames)
{
    SocketIO *self = (SocketIO *)callable;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (!gopy_rt_in_host_goroutine())
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    if (nargs < 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) ||
        !PyObject_TypeCheck(args[0], self->socket_type))
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    PyObject *sock = args[0];
    int64_t deadline_ns;
    int waits = socket_deadline(sock, &deadline_ns);
    if (waits < 0)
        return NULL;
    int fd = waits ? socket_fd(sock) : -1;
    if (fd == -2)
        return NULL;
    if (fd < 0) /* non-blocking, or closed: the fallback's rules */
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    bool plain = true;
    PyObject *r;
    switch (self->op) {
    case SOCK_RECV:
        r = op_recv(fd, deadline_ns, args + 1, nargs - 1, &plain);
        break;
    case SOCK_RECV_INTO:
        r = op_recv_into(fd, deadline_ns, args + 1, nargs - 1, &plain);
        break;
    default:
        r = op_send(fd, deadline_ns, args + 1, nargs - 1, self->op == SOCK_SENDALL, &plain);
        break;
    }
    if (!plain)
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames);
    return r;
}

static PyObject *socket_io_get(PyObject *self, PyObject *obj, PyObject *type)
{
    (void)type;
    if (obj == NULL || obj == Py_None)
        return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyObject *socket_io_attr(SocketIO *self, const char *name)
{
    return PyObject_GetAttrString(self->original, name);
}

static PyObject *socket_io_name(PyObject *self, void *closure)
{
    (void)closure;
    return socket_io_attr((SocketIO *)self, "__name__");
}

static PyObject *socket_io_doc(PyObject *self, void *closure)
{
    (void)closure;
    return socket_io_attr((SocketIO *)self, "__doc__");
}

static PyObject *socket_io_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<gopy hook of %R>", ((SocketIO *)self)->original);
}

static int socket_io_traverse(PyObject *self, visitproc visit, void *arg)
{
    SocketIO *s = (SocketIO *)self;
    Py_VISIT(s->socket_type);
    Py_VISIT(s->original);
    Py_VISIT(s->fallback);
    return 0;
}

static int socket_io_clear(PyObject *self)
{
    SocketIO *s = (SocketIO *)self;
    Py_CLEAR(s->socket_type);
    Py_CLEAR(s->original);
    Py_CLEAR(s->fallback);
    return 0;
}

static void socket_io_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    socket_io_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyGetSetDef socket_io_getset[] = {
    {"__name__", socket_io_name, NULL, NULL, NULL},
    {"__doc__", socket_io_doc, NULL, NULL, NULL},
    {NULL},
};

static PyTypeObject SocketIO_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy._gopy.socket_io",
    .tp_basicsize = sizeof(SocketIO),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(SocketIO, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = socket_io_get,
    .tp_repr = socket_io_repr,
    .tp_getset = socket_io_getset,
    .tp_traverse = socket_io_traverse,
    .tp_clear = socket_io_clear,
    .tp_dealloc = socket_io_dealloc,
};

/* socket_io(name, original, fallback): the hook of one of the four. */
static PyObject *socket_io(PyObject *self, PyObject *args)
{
    (void)self;
    static const char *const names[SOCK_NOPS] = {"recv", "recv_into", "send", "sendall"};
    const char *name;
    PyObject *original, *fallback;
    if (!PyArg_ParseTuple(args, "sO!O:socket_io", &name, &PyMethodDescr_Type, &original,
                          &fallback))
        return NULL;
    int op = 0;
    while (op < SOCK_NOPS && strcmp(names[op], name) != 0)
        op++;
    if (op == SOCK_NOPS) {
        PyErr_Format(PyExc_ValueError, "socket_io: no hook for %s", name);
        return NULL;
    }
    SocketIO *io = PyObject_GC_New(SocketIO, &SocketIO_Type);
    if (io == NULL)
        return NULL;
    io->vectorcall = socket_io_call;
    io->op = (enum socket_op)op;
    io->socket_type = (PyTypeObject *)Py_NewRef(PyDescr_TYPE(original));
    io->original = Py_NewRef(original);
    io->fallback = Py_NewRef(fallback);
    PyObject_GC_Track(io);
    return (PyObject *)io;
}

static PyMethodDef hooks_methods[] = {
    {"in_goroutine", in_goroutine, METH_NOARGS,
     "in_goroutine() -> bool\n\nIs the caller a Python goroutine (one that can park)?"},
    {"wrap_time_sleep", wrap_time_sleep, METH_O,
     "wrap_time_sleep(original) -> function\n\ntime.sleep's replacement: parks inside a "
     "goroutine, calls original elsewhere."},
    {"socket_io", socket_io, METH_VARARGS,
     "socket_io(name, original, fallback) -> method\n\nThe hook of socket.socket.<name> "
     "(recv, recv_into, send or sendall): the system call parking on the netpoller for a "
     "blocking socket inside a goroutine, original outside one, fallback (the Python hook) "
     "for the other cases."},
    {NULL},
};

int gopy_hooks_init(PyObject *m)
{
    if (gopy_add_type(m, &SocketIO_Type, NULL) < 0)
        return -1;
    return PyModule_AddFunctions(m, hooks_methods);
}
