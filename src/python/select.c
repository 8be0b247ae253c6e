/*
 * select.c -- gopy.Recv, gopy.Send and gopy.select.
 *
 * Every Send case's value is converted (for object channels: a new
 * reference) before the select, because the runtime may hand it over
 * while we are parked; afterwards the values of the cases that did not
 * run are dropped again.  Receive buffers live on this C stack, which is
 * the goroutine's own stack while it is parked, so wakers can write into
 * them.
 */
#include "binding.h"

#include <string.h>

typedef struct {
    PyObject_HEAD
    PyObject *chan;  /* a Chan, a view, or None (Go's nil channel) */
    PyObject *value; /* Send only */
} CaseObject;

static int check_chan(PyObject *chan, bool want_send)
{
    if (chan == Py_None)
        return 0;
    bool can_send, can_recv;
    if (gopy_chan_of(chan, &can_send, &can_recv) == NULL) {
        PyErr_Format(PyExc_TypeError, "%s case needs a channel or None, not %.100s",
                     want_send ? "Send" : "Recv", Py_TYPE(chan)->tp_name);
        return -1;
    }
    if (want_send ? !can_send : !can_recv) {
        PyErr_Format(PyExc_TypeError, "%s case on a %s channel",
                     want_send ? "Send" : "Recv", want_send ? "receive-only" : "send-only");
        return -1;
    }
    return 0;
}

static PyObject *Recv_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"chan", NULL};
    PyObject *chan;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Recv", kwlist, &chan) ||
        check_chan(chan, false) < 0)
        return NULL;
    CaseObject *c = (CaseObject *)type->tp_alloc(type, 0);
    if (c != NULL)
        c->chan = Py_NewRef(chan);
    return (PyObject *)c;
}

static PyObject *Send_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"chan", "value", NULL};
    PyObject *chan, *value;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Send", kwlist, &chan, &value) ||
        check_chan(chan, true) < 0)
        return NULL;
    CaseObject *c = (CaseObject *)type->tp_alloc(type, 0);
    if (c != NULL) {
        c->chan = Py_NewRef(chan);
        c->value = Py_NewRef(value);
    }
    return (PyObject *)c;
}

static void Case_dealloc(CaseObject *c)
{
    PyObject_GC_UnTrack(c);
    Py_XDECREF(c->chan);
    Py_XDECREF(c->value);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int Case_traverse(CaseObject *c, visitproc visit, void *arg)
{
    Py_VISIT(c->chan);
    Py_VISIT(c->value);
    return 0;
}

static int Case_clear(CaseObject *c)
{
    Py_CLEAR(c->chan);
    Py_CLEAR(c->value);
    return 0;
}

static PyObject *Case_get_chan(CaseObject *c, void *Py_UNUSED(closure))
{
    return Py_NewRef(c->chan != NULL ? c->chan : Py_None);
}

static PyObject *Case_get_value(CaseObject *c, void *Py_UNUSED(closure))
{
    return Py_NewRef(c->value != NULL ? c->value : Py_None);
}

static PyObject *Recv_repr(CaseObject *c)
{
    return PyUnicode_FromFormat("gopy.Recv(%R)", c->chan);
}

static PyObject *Send_repr(CaseObject *c)
{
    return PyUnicode_FromFormat("gopy.Send(%R, %R)", c->chan, c->value);
}

static PyMethodDef Recv_methods[] = {
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nRecv[T] for annotations."},
    {NULL},
};

static PyMethodDef Send_methods[] = {
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nSend[T] for annotations."},
    {NULL},
};

static PyGetSetDef Recv_getset[] = {
    {"chan", (getter)Case_get_chan, NULL, "the channel (None: never ready)", NULL},
    {NULL},
};

static PyGetSetDef Send_getset[] = {
    {"chan", (getter)Case_get_chan, NULL, "the channel (None: never ready)", NULL},
    {"value", (getter)Case_get_value, NULL, "the value to send", NULL},
    {NULL},
};

PyTypeObject Recv_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Recv",
    .tp_basicsize = sizeof(CaseObject),
    .tp_dealloc = (destructor)Case_dealloc,
    .tp_repr = (reprfunc)Recv_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Recv(chan)\n--\n\nA select case receiving from chan (None: never ready).",
    .tp_traverse = (traverseproc)Case_traverse,
    .tp_clear = (inquiry)Case_clear,
    .tp_methods = Recv_methods,
    .tp_getset = Recv_getset,
    .tp_new = Recv_new,
};

PyTypeObject Send_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Send",
    .tp_basicsize = sizeof(CaseObject),
    .tp_dealloc = (destructor)Case_dealloc,
    .tp_repr = (reprfunc)Send_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Send(chan, value)\n--\n\nA select case sending value on chan (None: never ready).",
    .tp_traverse = (traverseproc)Case_traverse,
    .tp_clear = (inquiry)Case_clear,
    .tp_methods = Send_methods,
    .tp_getset = Send_getset,
    .tp_new = Send_new,
};

/* ---- select ------------------------------------------------------------------ */

enum { SMALL_CASES = 8, SMALL_BUF = 8 * 16 };

typedef struct {
    gopy_case *cases;
    int n;
    bool block;
    int chosen;
} select_op;

static int op_select(void *arg, bool block)
{
    select_op *op = arg;
    int r = gopy_rt_select(op->cases, op->n, op->block && block, &op->chosen);
    if (r == GOPY_OK && op->chosen < 0 && op->block && !block)
        return GOPY_EAGAIN; /* nothing ready yet: block next time */
    return r;
}

/* Count the receive cases as receives in progress on their channels
 * (ChanObject.receiving), or no longer. */
static void receiving(const gopy_case *cases, ChanObject **chans, int n, int delta)
{
    for (int i = 0; i < n; i++)
        if (cases[i].dir == GOPY_RECV && chans[i] != NULL)
            chan_receiving(chans[i], delta);
}

/* (i, value, ok): a new reference, or NULL; steals value.  Not
 * Py_BuildValue: parsing its format was 3 % of W4's time. */
static PyObject *select_result(int i, PyObject *value, bool ok)
{
    PyObject *index = PyLong_FromLong(i);
    PyObject *t = index == NULL ? NULL : PyTuple_New(3);
    if (t == NULL) {
        Py_XDECREF(index);
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, index);
    PyTuple_SET_ITEM(t, 1, value);
    PyTuple_SET_ITEM(t, 2, Py_NewRef(ok ? Py_True : Py_False));
    return t;
}

static size_t round8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

PyObject *gopy_select_impl(PyObject *const *args, Py_ssize_t nargs, bool block)
{
    if (nargs > 65536) {
        PyErr_SetString(PyExc_ValueError, "select: too many cases (65536 at most)");
        return NULL;
    }
    int n = (int)nargs;
    gopy_case small_cases[SMALL_CASES];
    ChanObject *small_chans[SMALL_CASES];
    _Alignas(8) char small_buf[SMALL_BUF];
    gopy_case *cases = small_cases;
    ChanObject **chans = small_chans;
    char *buf = small_buf;
    void *heap = NULL;

    /* Element buffers: one per case, 8-aligned.  The channels found on the
     * way are kept (when they fit small_chans) for the filling below. */
    size_t need = 0;
    for (int i = 0; i < n; i++) {
        PyObject *a = args[i];
        if (!Py_IS_TYPE(a, &Recv_Type) && !Py_IS_TYPE(a, &Send_Type)) {
            PyErr_Format(PyExc_TypeError, "select cases must be Recv or Send, not %.100s",
                         Py_TYPE(a)->tp_name);
            return NULL;
        }
        PyObject *chan = ((CaseObject *)a)->chan;
        ChanObject *ch = NULL;
        if (chan != Py_None) {
            bool s, r;
            ch = gopy_chan_of(chan, &s, &r);
            need += round8(gopy_elem_size(ch));
        }
        if (i < SMALL_CASES)
            small_chans[i] = ch;
    }
    if (n > SMALL_CASES || need > SMALL_BUF) {
        heap = PyMem_Calloc(1, (size_t)n * (sizeof(gopy_case) + sizeof(ChanObject *)) + need);
        if (heap == NULL)
            return PyErr_NoMemory();
        cases = heap;
        chans = (ChanObject **)(cases + n);
        buf = (char *)(chans + n);
        for (int i = 0; i < n; i++) {
            PyObject *chan = ((CaseObject *)args[i])->chan;
            bool s, r;
            chans[i] = chan == Py_None ? NULL : gopy_chan_of(chan, &s, &r);
        }
    } else {
        memset(buf, 0, need);
    }

    /* Fill the cases; convert values to send. */
    size_t off = 0;
    int filled = 0;
    PyObject *result = NULL;
    for (; filled < n; filled++) {
        CaseObject *c = (CaseObject *)args[filled];
        bool is_send = Py_IS_TYPE(c, &Send_Type);
        gopy_case *gc = &cases[filled];
        gc->dir = is_send ? GOPY_SEND : GOPY_RECV;
        gc->ok = false;
        ChanObject *ch = chans[filled];
        if (ch == NULL) {
            gc->chan = NULL;
            gc->elem = NULL;
            continue;
        }
        gc->chan = ch->c;
        gc->elem = buf + off;
        off += round8(gopy_elem_size(ch));
        if (is_send && gopy_elem_from_py(ch, c->value, gc->elem) < 0)
            goto out;
    }

    select_op op = {cases, n, block, -1};
    receiving(cases, chans, n, 1);
    int status = gopy_call_blocking(op_select, &op);
    receiving(cases, chans, n, -1);
    if (status != GOPY_OK) {
        if (status > 0)
            gopy_status_error(status);
        goto out;
    }
    int i = op.chosen;
    if (i < 0) {
        result = select_result(-1, Py_NewRef(Py_None), false);
    } else if (cases[i].dir == GOPY_RECV) {
        PyObject *v = gopy_elem_to_py(chans[i], cases[i].elem, cases[i].ok);
        cases[i].elem = NULL; /* its value is ours now: not to be dropped */
        if (v != NULL)
            result = select_result(i, v, cases[i].ok);
    } else if (cases[i].ok) {
        cases[i].elem = NULL; /* sent: the channel owns the value */
        result = select_result(i, Py_NewRef(Py_None), true);
    } else {
        PyErr_SetString(gopy_state.ClosedChannelError, "send on closed channel");
    }
out:
    /* Drop the values of the sends that did not happen. */
    for (int k = 0; k < filled; k++)
        if (cases[k].dir == GOPY_SEND && cases[k].elem != NULL)
            gopy_elem_discard(chans[k], cases[k].elem);
    PyMem_Free(heap);
    return result;
}
