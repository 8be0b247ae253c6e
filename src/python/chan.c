/*
 * chan.c -- gopy.Chan and its directional views SendChan / RecvChan.
 *
 * A Chan wraps one runtime channel.  Its elements are (enum elem_kind):
 *  - Python objects: the channel holds one reference per buffered value;
 *    send hands its reference to the channel, recv takes it back;
 *  - times (the channels of timers): int64 wall-clock ns, seen as floats;
 *  - ctypes values (Chan(cap, ctype=ctypes.c_int64)): raw bytes, so that
 *    C goroutines can share the channel (Chan.handle is its address).
 */
#include "binding.h"

#include <errno.h>
#include <string.h>

enum { SMALL_ELEM = 64 };

/* ---- elements ------------------------------------------------------------ */

static void release_object(void *elem, void *ctx)
{
    (void)ctx;
    gopy_decref_anywhere(*(PyObject **)elem);
}

size_t gopy_elem_size(ChanObject *ch)
{
    return gopy_rt_chan_elem_size(ch->c);
}

int gopy_elem_from_py(ChanObject *ch, PyObject *value, void *buf)
{
    switch (ch->kind) {
    case ELEM_OBJECT:
        *(PyObject **)buf = Py_NewRef(value);
        return 0;
    case ELEM_TIME:
        PyErr_SetString(PyExc_TypeError, "cannot send on a timer channel");
        return -1;
    case ELEM_CTYPE:
        break;
    }
    PyObject *obj;
    if (PyObject_TypeCheck(value, (PyTypeObject *)ch->ctype))
        obj = Py_NewRef(value);
    else if ((obj = PyObject_CallOneArg(ch->ctype, value)) == NULL)
        return -1;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    size_t n = gopy_elem_size(ch);
    int r = 0;
    if ((size_t)view.len != n) {
        PyErr_Format(PyExc_TypeError, "value of %zd bytes for a channel of %zu-byte elements",
                     view.len, n);
        r = -1;
    } else {
        memcpy(buf, view.buf, n);
    }
    PyBuffer_Release(&view);
    Py_DECREF(obj);
    return r;
}

void gopy_elem_discard(ChanObject *ch, void *buf)
{
    if (ch->kind == ELEM_OBJECT)
        Py_XDECREF(*(PyObject **)buf);
}

PyObject *gopy_elem_to_py(ChanObject *ch, void *buf, bool ok)
{
    if (!ok)
        Py_RETURN_NONE; /* Go's zero value */
    switch (ch->kind) {
    case ELEM_OBJECT:
        return *(PyObject **)buf; /* the channel's reference, now ours */
    case ELEM_TIME:
        return PyFloat_FromDouble((double)*(int64_t *)buf / 1e9);
    case ELEM_CTYPE:
        break;
    }
    PyObject *bytes = PyBytes_FromStringAndSize(buf, (Py_ssize_t)gopy_elem_size(ch));
    if (bytes == NULL)
        return NULL;
    PyObject *obj = PyObject_CallMethodOneArg(ch->ctype, gopy_names.from_buffer_copy, bytes);
    Py_DECREF(bytes);
    if (obj == NULL || !ch->ctype_simple)
        return obj;
    /* Simple ctypes values (c_int64, c_double...) come out as plain
     * Python values. */
    PyObject *v = PyObject_GetAttr(obj, gopy_names.value);
    Py_DECREF(obj);
    return v;
}

/* ---- blocking operations ----------------------------------------------------- */

typedef struct {
    gopy_chan *c;
    void *elem;
    bool ok;
} chan_op;

static int op_send(void *arg, bool block)
{
    chan_op *op = arg;
    return gopy_rt_chan_send(op->c, op->elem, block);
}

static int op_recv(void *arg, bool block)
{
    chan_op *op = arg;
    return gopy_rt_chan_recv(op->c, op->elem, &op->ok, block);
}

static PyObject *chan_send(ChanObject *ch, PyObject *value)
{
    union {
        PyObject *obj;
        char bytes[SMALL_ELEM];
    } small;
    size_t n = gopy_elem_size(ch);
    void *buf = n <= SMALL_ELEM ? (void *)&small : PyMem_Malloc(n);
    if (buf == NULL)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    if (gopy_elem_from_py(ch, value, buf) == 0) {
        chan_op op = {ch->c, buf, false};
        int status = gopy_call_blocking(op_send, &op);
        if (status == GOPY_OK) {
            result = Py_NewRef(Py_None);
        } else {
            gopy_elem_discard(ch, buf);
            if (status > 0)
                gopy_status_error(status);
        }
    }
    if (buf != (void *)&small)
        PyMem_Free(buf);
    return result;
}

/* Receive; *ok as Go's v, ok := <-ch.  NULL on error. */
static PyObject *chan_recv(ChanObject *ch, bool *ok)
{
    union {
        PyObject *obj;
        int64_t i64;
        char bytes[SMALL_ELEM];
    } small = {0};
    size_t n = gopy_elem_size(ch);
    void *buf = n <= SMALL_ELEM ? (void *)&small : PyMem_Calloc(1, n);
    if (buf == NULL)
        return PyErr_NoMemory();
    chan_op op = {ch->c, buf, false};
    PyObject *result = NULL;
    chan_receiving(ch, 1);
    int status = gopy_call_blocking(op_recv, &op);
    chan_receiving(ch, -1);
    if (status == GOPY_OK) {
        *ok = op.ok;
        result = gopy_elem_to_py(ch, buf, op.ok);
    } else if (status > 0) {
        gopy_status_error(status);
    }
    if (buf != (void *)&small)
        PyMem_Free(buf);
    return result;
}

static PyObject *chan_recv_ok(ChanObject *ch)
{
    bool ok;
    PyObject *v = chan_recv(ch, &ok);
    if (v == NULL)
        return NULL;
    PyObject *t = PyTuple_New(2); /* not Py_BuildValue: no format to parse */
    if (t == NULL) {
        Py_DECREF(v);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, v);
    PyTuple_SET_ITEM(t, 1, Py_NewRef(ok ? Py_True : Py_False));
    return t;
}

/* Receives in progress past which close lets the GIL go.  Each waiter it
 * wakes lies on a stack page of its own: at 100,000 the closer took about
 * 1.2 µs apiece while their threads, wanting the GIL to resume them, waited
 * for it to finish (W8w; docs/decisions.md §9, "Later (close lets the GIL
 * go)").  Below, the waiters are woken before the GIL could change hands. */
enum { CLOSE_LETS_GIL_GO = 256 };

static PyObject *chan_close(ChanObject *ch)
{
    int status;
    if (__atomic_load_n(&ch->receiving, __ATOMIC_RELAXED) >= CLOSE_LETS_GIL_GO) {
        /* gopy_chan_close touches no Python object: receivers get zeroed
         * values, senders a failure they raise with the GIL. */
        Py_BEGIN_ALLOW_THREADS
        status = gopy_chan_close(ch->c);
        Py_END_ALLOW_THREADS
    } else {
        status = gopy_chan_close(ch->c);
    }
    if (status != GOPY_OK) {
        PyErr_SetString(gopy_state.ClosedChannelError, "close of closed channel");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *chan_next(ChanObject *ch)
{
    bool ok;
    PyObject *v = chan_recv(ch, &ok);
    if (v != NULL && !ok) {
        Py_DECREF(v);
        return NULL; /* closed and drained: StopIteration */
    }
    return v;
}

/* ---- handles ------------------------------------------------------------------- */

void *gopy_handle_address(PyObject *handle, const char *what)
{
    if (!PyLong_Check(handle)) {
        PyErr_Format(PyExc_TypeError, "%s handle must be an int, not %.100s", what,
                     Py_TYPE(handle)->tp_name);
        return NULL;
    }
    /* Not every bad address can be caught; negative, null and misaligned
     * ones can. */
    unsigned long long addr = PyLong_AsUnsignedLongLong(handle);
    if (addr == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();
        addr = 0;
    }
    if (addr == 0 || addr > UINTPTR_MAX || addr % sizeof(void *) != 0) {
        PyErr_Format(PyExc_ValueError, "invalid %s handle", what);
        return NULL;
    }
    return (void *)(uintptr_t)addr;
}

/* ---- construction ------------------------------------------------------------------ */

/* The size of a ctypes type (0 with an exception set if it is not one)
 * and whether it is a simple type (c_int, c_double...). */
static size_t ctype_info(PyObject *ctype, bool *simple)
{
    if (!PyType_Check(ctype)) {
        PyErr_SetString(PyExc_TypeError, "ctype must be a ctypes type");
        return 0;
    }
    PyObject *ctypes = PyImport_ImportModule("ctypes");
    if (ctypes == NULL)
        return 0;
    PyObject *size = PyObject_CallMethodOneArg(ctypes, gopy_names.sizeof_, ctype);
    PyObject *base = size != NULL ? PyObject_GetAttr(ctypes, gopy_names._SimpleCData) : NULL;
    Py_DECREF(ctypes);
    if (base == NULL) {
        Py_XDECREF(size);
        return 0;
    }
    int sub = PyObject_IsSubclass(ctype, base);
    Py_DECREF(base);
    if (sub < 0) {
        Py_DECREF(size);
        return 0;
    }
    *simple = sub;
    size_t n = PyLong_AsSize_t(size);
    Py_DECREF(size);
    if (n == (size_t)-1 && PyErr_Occurred())
        return 0;
    if (n == 0 || n > 65536) {
        PyErr_Format(PyExc_ValueError, "channel elements must be 1 to 65536 bytes, not %zu", n);
        return 0;
    }
    return n;
}

ChanObject *gopy_chan_wrap(gopy_chan *c, enum elem_kind kind, PyObject *ctype)
{
    ChanObject *ch = (ChanObject *)Chan_Type.tp_alloc(&Chan_Type, 0);
    if (ch == NULL) {
        gopy_chan_release(c);
        return NULL;
    }
    ch->c = c;
    ch->kind = kind;
    if (ctype != NULL) {
        size_t n = ctype_info(ctype, &ch->ctype_simple);
        if (n == 0) {
            Py_DECREF(ch);
            return NULL;
        }
        if (n != gopy_rt_chan_elem_size(c)) {
            PyErr_Format(PyExc_ValueError, "ctype has %zu bytes, the channel's elements %zu",
                         n, gopy_rt_chan_elem_size(c));
            Py_DECREF(ch);
            return NULL;
        }
        ch->ctype = Py_NewRef(ctype);
    }
    return ch;
}

static PyObject *Chan_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"cap", "ctype", NULL};
    PyObject *capobj = NULL, *ctype = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O$O:Chan", kwlist, &capobj, &ctype))
        return NULL;
    Py_ssize_t cap = 0;
    if (capobj != NULL) {
        if (!PyIndex_Check(capobj)) {
            PyErr_Format(PyExc_TypeError, "Chan capacity must be an int, not %.100s",
                         Py_TYPE(capobj)->tp_name);
            return NULL;
        }
        cap = PyNumber_AsSsize_t(capobj, PyExc_ValueError);
        if (cap == -1 && PyErr_Occurred())
            return NULL;
        if (cap < 0) {
            PyErr_SetString(PyExc_ValueError, "Chan capacity must not be negative");
            return NULL;
        }
    }
    enum elem_kind kind = ELEM_OBJECT;
    size_t elem_size = sizeof(PyObject *);
    bool simple = false;
    if (ctype != Py_None) {
        if ((elem_size = ctype_info(ctype, &simple)) == 0)
            return NULL;
        kind = ELEM_CTYPE;
    } else {
        ctype = NULL;
    }
    gopy_chan *c = gopy_chan_make(elem_size, (size_t)cap);
    if (c == NULL) {
        if (errno == EINVAL)
            PyErr_Format(PyExc_ValueError, "Chan capacity %zd is too large", cap);
        else
            PyErr_NoMemory();
        return NULL;
    }
    if (kind == ELEM_OBJECT)
        gopy_rt_chan_set_release(c, release_object, NULL);
    ChanObject *ch = (ChanObject *)type->tp_alloc(type, 0);
    if (ch == NULL) {
        gopy_chan_release(c);
        return NULL;
    }
    ch->c = c;
    ch->kind = kind;
    ch->ctype = Py_XNewRef(ctype);
    ch->ctype_simple = simple;
    return (PyObject *)ch;
}

static void Chan_dealloc(ChanObject *ch)
{
    PyObject_GC_UnTrack(ch);
    /* Releasing the buffer may free a channel buffered in it, and so on:
     * the trashcan bounds that recursion (a long chain of channels would
     * otherwise overflow the C stack). */
    Py_TRASHCAN_BEGIN(ch, Chan_dealloc)
    if (ch->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)ch);
    if (ch->timer != NULL)
        gopy_rt_timer_free(ch->timer); /* drops the timer's own reference */
    if (ch->c != NULL)
        gopy_chan_release(ch->c);
    gopy_context_release(ch->context);
    Py_XDECREF(ch->ctype);
    Py_TYPE(ch)->tp_free((PyObject *)ch);
    Py_TRASHCAN_END
}

/* ---- garbage collection ----------------------------------------------------------------
 *
 * An object channel's buffered values are references, and one may refer
 * back to the channel (c.send([c])): the collector must see them.  But
 * they are the runtime channel's, and the Chan is not always its only
 * holder, nor the GIL the only thing keeping the buffer still:
 *  - C code may hold the channel through its handle (gopy_chan_retain).
 *    It could still receive the values, so they are not ours to report
 *    or drop: treated as referenced from outside, the collector keeps
 *    them (and the Chan, if they refer to it) alive.  Once C has
 *    released the channel, a later collection frees the cycle.  (A
 *    retain in the middle of a collection -- of a handle borrowed from a
 *    live Chan -- would change the answer within it, as a receive below
 *    would; C has no use for an object channel's values, and from_handle
 *    refuses such channels, so this is left at that.)
 *  - A thread receiving without the GIL (a blocking receive from a
 *    thread, or from Python code a C goroutine called) may take a value
 *    out of the buffer while a collection runs.  The collector counts a
 *    value's references once and then looks for who reaches it: one that
 *    left the buffer in between would look unreachable, and be finalized
 *    (its __del__ run, its weak references cleared) while the receiver
 *    holds it.  So while a Python receive is in progress (receiving, only
 *    changed with the GIL, so steady through a collection) the buffer is
 *    not reported.  Nothing is lost: that receiver holds the Chan, which
 *    is therefore reachable, and so is what it buffers.
 *  A value arriving in the buffer without the GIL (a blocking send) is
 *  harmless: the collector counted it as referenced from outside.
 */

/* Are the values buffered in ch's channel ours to report and to drop? */
static bool owns_buffer(ChanObject *ch)
{
    return ch->kind == ELEM_OBJECT && __atomic_load_n(&ch->receiving, __ATOMIC_RELAXED) == 0 &&
           !gopy_rt_chan_shared(ch->c);
}

typedef struct {
    visitproc visit;
    void *arg;
} elem_visit;

static int visit_elem(void *elem, void *arg)
{
    elem_visit *v = arg;
    return v->visit(*(PyObject **)elem, v->arg);
}

/* ctype is visited, not cleared: elements convert through it for as long
 * as the Chan lives, and a cycle through it is broken at the type
 * (type_clear).  The visits to buffered values run under the channel's
 * lock, which a visitproc cannot upset: it runs no Python code. */
static int Chan_traverse(ChanObject *ch, visitproc visit, void *arg)
{
    Py_VISIT(ch->ctype);
    if (!owns_buffer(ch))
        return 0;
    elem_visit v = {visit, arg};
    return gopy_rt_chan_visit(ch->c, visit_elem, &v);
}

/* The collector clears a Chan only when nothing outside the garbage
 * reaches it: no frame or goroutine (one receiving or sending holds it),
 * no reachable object.  So once owns_buffer holds, nobody but this
 * garbage can receive the values any more, and dropping them -- received
 * as any receiver would, which keeps the channel whole -- is safe.  Each
 * is dropped after the receive has released the channel's lock: a decref
 * can run any Python code, which may use this channel.  Values sent
 * meanwhile stay, for Chan_dealloc to release. */
static int Chan_clear(ChanObject *ch)
{
    if (!owns_buffer(ch))
        return 0;
    for (size_t n = gopy_chan_len(ch->c); n > 0; n--) {
        PyObject *v;
        bool ok;
        if (gopy_rt_chan_recv(ch->c, &v, &ok, false) != GOPY_OK || !ok)
            break;
        Py_DECREF(v);
    }
    return 0;
}

static PyObject *Chan_from_handle(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"handle", "ctype", NULL};
    PyObject *handle, *ctype;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:from_handle", kwlist, &handle, &ctype))
        return NULL;
    (void)type;
    void *p = gopy_handle_address(handle, "channel");
    if (p == NULL)
        return NULL;
    if (gopy_rt_chan_holds_refs(p)) {
        PyErr_SetString(PyExc_ValueError, "that channel carries Python objects, not C values");
        return NULL;
    }
    gopy_chan_retain(p);
    return (PyObject *)gopy_chan_wrap(p, ELEM_CTYPE, ctype);
}

/* ---- Chan's Python methods ---------------------------------------------------------- */

static PyObject *Chan_send(ChanObject *ch, PyObject *value)
{
    return chan_send(ch, value);
}

static PyObject *Chan_recv(ChanObject *ch, PyObject *Py_UNUSED(ignored))
{
    bool ok;
    return chan_recv(ch, &ok);
}

static PyObject *Chan_recv_ok(ChanObject *ch, PyObject *Py_UNUSED(ignored))
{
    return chan_recv_ok(ch);
}

static PyObject *Chan_close(ChanObject *ch, PyObject *Py_UNUSED(ignored))
{
    return chan_close(ch);
}

static PyObject *make_view(PyTypeObject *type, ChanObject *ch)
{
    ChanViewObject *v = (ChanViewObject *)type->tp_alloc(type, 0);
    if (v == NULL)
        return NULL;
    v->chan = (ChanObject *)Py_NewRef(ch);
    return (PyObject *)v;
}

PyObject *gopy_recv_view(ChanObject *ch)
{
    return make_view(&RecvChan_Type, ch);
}

static PyObject *Chan_send_only(ChanObject *ch, PyObject *Py_UNUSED(ignored))
{
    if (ch->kind == ELEM_TIME) {
        PyErr_SetString(PyExc_TypeError, "a timer channel is receive-only");
        return NULL;
    }
    return make_view(&SendChan_Type, ch);
}

static PyObject *Chan_recv_only(ChanObject *ch, PyObject *Py_UNUSED(ignored))
{
    return make_view(&RecvChan_Type, ch);
}

static Py_ssize_t Chan_len(ChanObject *ch)
{
    return (Py_ssize_t)gopy_chan_len(ch->c);
}

static PyObject *Chan_get_cap(ChanObject *ch, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(gopy_chan_cap(ch->c));
}

static PyObject *Chan_get_handle(ChanObject *ch, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(ch->c);
}

static PyObject *Chan_get_ctype(ChanObject *ch, void *Py_UNUSED(closure))
{
    return Py_NewRef(ch->ctype != NULL ? ch->ctype : Py_None);
}

static PyObject *Chan_iter(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *Chan_iternext(ChanObject *ch)
{
    return chan_next(ch);
}

static PyObject *chan_repr_of(const char *name, ChanObject *ch)
{
    return PyUnicode_FromFormat("<gopy.%s cap=%zu len=%zu at %p>", name, gopy_chan_cap(ch->c),
                                gopy_chan_len(ch->c), (void *)ch->c);
}

static PyObject *Chan_repr(ChanObject *ch)
{
    return chan_repr_of("Chan", ch);
}

ChanObject *gopy_chan_of(PyObject *obj, bool *can_send, bool *can_recv)
{
    if (PyObject_TypeCheck(obj, &Chan_Type)) {
        ChanObject *ch = (ChanObject *)obj;
        *can_send = ch->kind != ELEM_TIME;
        *can_recv = true;
        return ch;
    }
    if (Py_IS_TYPE(obj, &SendChan_Type) || Py_IS_TYPE(obj, &RecvChan_Type)) {
        ChanViewObject *v = (ChanViewObject *)obj;
        *can_send = Py_IS_TYPE(obj, &SendChan_Type);
        *can_recv = !*can_send;
        return v->chan;
    }
    return NULL;
}

/* Channels (and views of them) compare equal when they are one channel,
 * as Go's channel values do. */
static PyObject *chan_richcompare(PyObject *a, PyObject *b, int op)
{
    bool s, r;
    ChanObject *ca = gopy_chan_of(a, &s, &r), *cb = gopy_chan_of(b, &s, &r);
    if (ca == NULL || cb == NULL || (op != Py_EQ && op != Py_NE))
        Py_RETURN_NOTIMPLEMENTED;
    return PyBool_FromLong((ca->c == cb->c) == (op == Py_EQ));
}

static Py_hash_t chan_hash(PyObject *self)
{
    bool s, r;
    uintptr_t p = (uintptr_t)gopy_chan_of(self, &s, &r)->c;
    Py_hash_t h = (Py_hash_t)((p >> 4) | (p << (8 * sizeof p - 4)));
    return h == -1 ? -2 : h;
}

/* ---- asyncio: the awaitable forms live in gopy/_aio.py ------------------------------- */

/* gopy._aio's function `name` called with the channel object (a Chan or a
 * view) and, for asend, the value: the coroutine (or async iterator) it
 * returns, a new reference.  The functions are looked up once and kept
 * (aio_fns: set once by compare-and-swap, never released). */
enum aio_fn { AIO_ARECV, AIO_ARECV_OK, AIO_ASEND, AIO_AITER, AIO_NFNS };
static PyObject *aio_fns[AIO_NFNS];
static const char *const aio_names[AIO_NFNS] = {"arecv", "arecv_ok", "asend", "chan_aiter"};

static PyObject *aio_call(enum aio_fn which, PyObject *chan, PyObject *value)
{
    PyObject *fn = __atomic_load_n(&aio_fns[which], __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        PyObject *mod = PyImport_ImportModule("gopy._aio");
        if (mod == NULL)
            return NULL;
        fn = PyObject_GetAttrString(mod, aio_names[which]);
        Py_DECREF(mod);
        if (fn == NULL)
            return NULL;
        PyObject *none = NULL;
        if (!__atomic_compare_exchange_n(&aio_fns[which], &none, fn, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            Py_DECREF(fn); /* another thread's look-up won: the same function */
            fn = none;
        }
    }
    PyObject *args[2] = {chan, value};
    return PyObject_Vectorcall(fn, args, value == NULL ? 1 : 2, NULL);
}

static PyObject *chan_arecv(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return aio_call(AIO_ARECV, self, NULL);
}

static PyObject *chan_arecv_ok(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return aio_call(AIO_ARECV_OK, self, NULL);
}

static PyObject *chan_asend(PyObject *self, PyObject *value)
{
    return aio_call(AIO_ASEND, self, value);
}

static PyObject *chan_aiter(PyObject *self)
{
    return aio_call(AIO_AITER, self, NULL);
}

static PyAsyncMethods chan_as_async = {.am_aiter = chan_aiter};

#define AIO_RECV_METHODS                                                                    \
    {"arecv", chan_arecv, METH_NOARGS,                                                       \
     "arecv($self, /)\n--\n\nawait ch.arecv(): recv() from a coroutine, without blocking "   \
     "its event loop.  A cancelled arecv never takes a value."},                             \
        {"arecv_ok", chan_arecv_ok, METH_NOARGS,                                             \
         "arecv_ok($self, /)\n--\n\nawait ch.arecv_ok(): recv_ok() from a coroutine."}
#define AIO_SEND_METHOD                                                                     \
    {"asend", chan_asend, METH_O,                                                            \
     "asend($self, value, /)\n--\n\nawait ch.asend(v): send(v) from a coroutine, without "   \
     "blocking its event loop.  A cancelled asend never delivers."}

static PyMethodDef Chan_methods[] = {
    AIO_RECV_METHODS,
    AIO_SEND_METHOD,
    {"send", (PyCFunction)Chan_send, METH_O,
     "send($self, value, /)\n--\n\nSend value, blocking until a receiver takes it (unbuffered) "
     "or it is buffered.  Raises ClosedChannelError if the channel is or gets closed."},
    {"recv", (PyCFunction)Chan_recv, METH_NOARGS,
     "recv($self, /)\n--\n\nReceive a value; None once the channel is closed and drained."},
    {"recv_ok", (PyCFunction)Chan_recv_ok, METH_NOARGS,
     "recv_ok($self, /)\n--\n\nReceive (value, ok), like Go's v, ok := <-ch: ok is False once "
     "closed and drained."},
    {"close", (PyCFunction)Chan_close, METH_NOARGS,
     "close($self, /)\n--\n\nClose the channel; closing twice raises ClosedChannelError."},
    {"send_only", (PyCFunction)Chan_send_only, METH_NOARGS,
     "send_only($self, /)\n--\n\nA SendChan view of this channel."},
    {"recv_only", (PyCFunction)Chan_recv_only, METH_NOARGS,
     "recv_only($self, /)\n--\n\nA RecvChan view of this channel."},
    {"from_handle", (PyCFunction)(void (*)(void))Chan_from_handle,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "from_handle($type, handle, ctype)\n--\n\nA Chan wrapping a channel made in C (a gopy_chan* "
     "address)."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nChan[T] for annotations."},
    {NULL},
};

static PyGetSetDef Chan_getset[] = {
    {"cap", (getter)Chan_get_cap, NULL, "buffer capacity", NULL},
    {"handle", (getter)Chan_get_handle, NULL,
     "address of the runtime channel (gopy_chan*), for C code", NULL},
    {"ctype", (getter)Chan_get_ctype, NULL, "the ctypes element type, or None", NULL},
    {NULL},
};

static PySequenceMethods Chan_as_sequence = {.sq_length = (lenfunc)Chan_len};

/* A channel (or view) is always true, empty or not: `if ch:` tests for a
 * nil channel (None), as in Go, and `gopy.tick(d) or []` is the ticker. */
static int chan_bool(PyObject *Py_UNUSED(self))
{
    return 1;
}

static PyNumberMethods chan_as_number = {.nb_bool = chan_bool};

PyTypeObject Chan_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Chan",
    .tp_basicsize = sizeof(ChanObject),
    .tp_dealloc = (destructor)Chan_dealloc,
    .tp_repr = (reprfunc)Chan_repr,
    .tp_as_number = &chan_as_number,
    .tp_as_sequence = &Chan_as_sequence,
    .tp_as_async = &chan_as_async,
    .tp_hash = chan_hash,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Chan(cap=0, *, ctype=None)\n--\n\nA Go channel.  cap 0 is unbuffered.  With a "
              "ctypes type as ctype the channel carries raw C values and can be shared with C "
              "goroutines (see handle).",
    .tp_traverse = (traverseproc)Chan_traverse,
    .tp_clear = (inquiry)Chan_clear,
    .tp_richcompare = chan_richcompare,
    .tp_weaklistoffset = offsetof(ChanObject, weakreflist),
    .tp_iter = Chan_iter,
    .tp_iternext = (iternextfunc)Chan_iternext,
    .tp_methods = Chan_methods,
    .tp_getset = Chan_getset,
    .tp_new = Chan_new,
};

/* ---- the views ------------------------------------------------------------------------ */

static PyObject *view_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *chan;
    if (!PyArg_ParseTuple(args, "O:view", &chan) || (kwds && PyDict_GET_SIZE(kwds))) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "takes one Chan");
        return NULL;
    }
    if (!PyObject_TypeCheck(chan, &Chan_Type)) {
        PyErr_Format(PyExc_TypeError, "%s() needs a Chan, not %.100s", type->tp_name,
                     Py_TYPE(chan)->tp_name);
        return NULL;
    }
    if (type == &SendChan_Type)
        return Chan_send_only((ChanObject *)chan, NULL);
    return Chan_recv_only((ChanObject *)chan, NULL);
}

static void view_dealloc(ChanViewObject *v)
{
    PyObject_GC_UnTrack(v);
    Py_DECREF(v->chan);
    Py_TYPE(v)->tp_free((PyObject *)v);
}

/* A view in a cycle (c.send([c.send_only()])) is found through its Chan.
 * No tp_clear: every cycle through a view passes through its Chan, which
 * breaks it, and a view without its Chan could do nothing. */
static int view_traverse(ChanViewObject *v, visitproc visit, void *arg)
{
    Py_VISIT(v->chan);
    return 0;
}

static PyObject *view_send(ChanViewObject *v, PyObject *value)
{
    return chan_send(v->chan, value);
}

static PyObject *view_close(ChanViewObject *v, PyObject *Py_UNUSED(ignored))
{
    return chan_close(v->chan);
}

static PyObject *view_recv(ChanViewObject *v, PyObject *Py_UNUSED(ignored))
{
    bool ok;
    return chan_recv(v->chan, &ok);
}

static PyObject *view_recv_ok(ChanViewObject *v, PyObject *Py_UNUSED(ignored))
{
    return chan_recv_ok(v->chan);
}

static PyObject *view_iternext(ChanViewObject *v)
{
    return chan_next(v->chan);
}

static Py_ssize_t view_len(ChanViewObject *v)
{
    return Chan_len(v->chan);
}

static PyObject *view_get_cap(ChanViewObject *v, void *closure)
{
    return Chan_get_cap(v->chan, closure);
}

static PyObject *view_get_handle(ChanViewObject *v, void *closure)
{
    return Chan_get_handle(v->chan, closure);
}

static PyObject *SendChan_repr(ChanViewObject *v)
{
    return chan_repr_of("SendChan", v->chan);
}

static PyObject *RecvChan_repr(ChanViewObject *v)
{
    return chan_repr_of("RecvChan", v->chan);
}

static PyGetSetDef view_getset[] = {
    {"cap", (getter)view_get_cap, NULL, "buffer capacity", NULL},
    {"handle", (getter)view_get_handle, NULL, "address of the runtime channel", NULL},
    {NULL},
};

static PySequenceMethods view_as_sequence = {.sq_length = (lenfunc)view_len};

static PyMethodDef SendChan_methods[] = {
    {"send", (PyCFunction)view_send, METH_O,
     "send($self, value, /)\n--\n\nSend value, blocking until a receiver takes it (unbuffered) "
     "or it is buffered.  Raises ClosedChannelError if the channel is or gets closed."},
    AIO_SEND_METHOD,
    {"close", (PyCFunction)view_close, METH_NOARGS,
     "close($self, /)\n--\n\nClose the channel; closing twice raises ClosedChannelError."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nSendChan[T] for annotations."},
    {NULL},
};

static PyMethodDef RecvChan_methods[] = {
    {"recv", (PyCFunction)view_recv, METH_NOARGS,
     "recv($self, /)\n--\n\nReceive a value; None once the channel is closed and drained."},
    {"recv_ok", (PyCFunction)view_recv_ok, METH_NOARGS,
     "recv_ok($self, /)\n--\n\nReceive (value, ok), like Go's v, ok := <-ch: ok is False once "
     "closed and drained."},
    AIO_RECV_METHODS,
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nRecvChan[T] for annotations."},
    {NULL},
};

PyTypeObject SendChan_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.SendChan",
    .tp_basicsize = sizeof(ChanViewObject),
    .tp_dealloc = (destructor)view_dealloc,
    .tp_repr = (reprfunc)SendChan_repr,
    .tp_as_number = &chan_as_number,
    .tp_as_sequence = &view_as_sequence,
    .tp_hash = chan_hash,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "SendChan(chan, /)\n--\n\nThe send-only view of a Chan: send, close, len, cap.",
    .tp_traverse = (traverseproc)view_traverse,
    .tp_richcompare = chan_richcompare,
    .tp_methods = SendChan_methods,
    .tp_getset = view_getset,
    .tp_new = view_new,
};

PyTypeObject RecvChan_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.RecvChan",
    .tp_basicsize = sizeof(ChanViewObject),
    .tp_dealloc = (destructor)view_dealloc,
    .tp_repr = (reprfunc)RecvChan_repr,
    .tp_as_number = &chan_as_number,
    .tp_as_sequence = &view_as_sequence,
    .tp_as_async = &chan_as_async,
    .tp_hash = chan_hash,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "RecvChan(chan, /)\n--\n\nThe receive-only view of a Chan: recv, recv_ok, "
              "iteration, len, cap.",
    .tp_traverse = (traverseproc)view_traverse,
    .tp_richcompare = chan_richcompare,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)view_iternext,
    .tp_methods = RecvChan_methods,
    .tp_getset = view_getset,
    .tp_new = view_new,
};
