/*
 * context.c -- gopy.context: Go's context package for Python, on the
 * runtime's cancellation tree (src/runtime/context.c).
 *
 * A Context object holds a reference to a runtime context handle: its
 * own for with_cancel / with_deadline contexts, the nearest cancellable
 * ancestor's for with_value contexts (values are Python objects and stay
 * here), the root's for background(), todo() and without_cancel().  So
 * done(), err(), deadline and cancellation are the runtime's, and C
 * goroutines can honour any Python context through its handle.
 *
 * Causes are Python objects, so they stay here too, in the Context that
 * owns the runtime node the cancel was given to (its cause; for
 * with_deadline_cause its expiry_cause).  The runtime says which node's
 * cancel reached a context (gopy_rt_context_cause_origin); cause(ctx)
 * walks up ctx's owners (cancel_parent) to it.  Everything that can hold
 * a cause -- owners, their descendants, cancel functions, errgroup Groups
 * -- is a Python object the cycle collector sees: an exception whose
 * traceback reaches the frame holding its context is an ordinary,
 * collectable cycle.
 *
 * References:
 *  - a Context owns one handle reference; its key, value, values_parent
 *    (the nearest ancestor holding a value), node_owner (the Context that
 *    owns the node it shares, for with_value), cancel_parent (the owner of
 *    the parent node), cause, expiry_cause, and its cached done() RecvChan;
 *  - a cancel function owns a reference to the Context it cancels;
 *  - an after_func's call (a goroutine template) is owned by an
 *    AfterFuncCall object; the runtime's after-func node owns a reference
 *    to that object until it has fired, been stopped or cannot fire, and
 *    drops it from whatever thread that happens on (deferred if that
 *    thread lacks the GIL).  The stop function owns a reference to the
 *    node.  As in Go, an after_func on a context that is never cancelled
 *    (and never stopped) lives as long as that context's node.
 */
#include "binding.h"

#include <math.h>
#include <time.h>

/* ---- module state --------------------------------------------------------- */

static struct {
    PyObject *Canceled;
    PyObject *DeadlineExceeded;
    PyObject *background; /* the two roots, made once */
    PyObject *todo;
} ctxstate;

static void release_object(void *obj)
{
    gopy_decref_anywhere(obj);
}

/* ---- Context ------------------------------------------------------------------ */

typedef struct ContextObject {
    PyObject_HEAD
    gopy_context *handle;     /* one reference (roots: the background) */
    const char *kind;         /* how it was made: "background", "with_cancel"... */
    struct ContextObject *values_parent; /* nearest ancestor with a value */
    PyObject *key, *value;    /* with_value only */
    Py_hash_t key_hash;
    /* Causes.  The owner of a node is the Context made with it; contexts
     * sharing it (with_value) point at it with node_owner.  An owner's
     * cancel_parent is the owner of its parent node (NULL if none). */
    struct ContextObject *node_owner;
    struct ContextObject *cancel_parent;
    PyObject *cause;          /* given to the cancel that cancelled the node */
    PyObject *expiry_cause;   /* with_deadline_cause / with_timeout_cause */
    double deadline;          /* time.time() seconds; 0: none */
    PyObject *done;           /* cached RecvChan, or NULL */
    PyObject *weakreflist;
} ContextObject;

static PyTypeObject Context_Type, CancelFunc_Type, AfterFuncStop_Type, AfterFuncCall_Type;

static ContextObject *context_check(PyObject *obj, const char *who)
{
    if (!PyObject_TypeCheck(obj, &Context_Type)) {
        PyErr_Format(PyExc_TypeError, "%s: parent must be a gopy.context.Context, not %.100s",
                     who, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return (ContextObject *)obj;
}

gopy_context *gopy_context_handle_of(PyObject *obj, const char *who)
{
    ContextObject *c = context_check(obj, who);
    return c != NULL ? c->handle : NULL;
}

/* The Context owning c's node (c itself for owners and roots). */
static ContextObject *owner_of(ContextObject *c)
{
    return c->node_owner != NULL ? c->node_owner : c;
}

/* A new Context derived from parent (NULL for roots), taking over the
 * reference to handle (released on failure).  It owns its node if that
 * is not parent's (with_value and without_cancel share or drop it). */
static ContextObject *context_new(ContextObject *parent, gopy_context *handle, const char *kind)
{
    ContextObject *c = PyObject_GC_New(ContextObject, &Context_Type);
    if (c == NULL) {
        gopy_context_release(handle);
        return NULL;
    }
    c->handle = handle;
    c->kind = kind;
    c->values_parent = NULL;
    c->key = c->value = NULL;
    c->key_hash = 0;
    c->node_owner = c->cancel_parent = NULL;
    c->cause = c->expiry_cause = NULL;
    c->deadline = 0;
    c->done = NULL;
    c->weakreflist = NULL;
    if (parent != NULL) {
        ContextObject *vp = parent->key != NULL ? parent : parent->values_parent;
        c->values_parent = (ContextObject *)Py_XNewRef(vp);
        c->deadline = parent->deadline;
        ContextObject *parent_owner = owner_of(parent);
        if (gopy_rt_context_cancellable(handle)) {
            if (handle == parent->handle)
                c->node_owner = (ContextObject *)Py_NewRef(parent_owner);
            else if (gopy_rt_context_cancellable(parent->handle))
                c->cancel_parent = (ContextObject *)Py_NewRef(parent_owner);
        }
    }
    PyObject_GC_Track(c);
    return c;
}

PyObject *gopy_context_derived(PyObject *parent, gopy_context *handle, const char *kind)
{
    return (PyObject *)context_new((ContextObject *)parent, handle, kind);
}

static int Context_traverse(ContextObject *c, visitproc visit, void *arg)
{
    Py_VISIT(c->values_parent);
    Py_VISIT(c->key);
    Py_VISIT(c->value);
    Py_VISIT(c->node_owner);
    Py_VISIT(c->cancel_parent);
    Py_VISIT(c->cause);
    Py_VISIT(c->expiry_cause);
    Py_VISIT(c->done);
    return 0;
}

static int Context_clear(ContextObject *c)
{
    Py_CLEAR(c->values_parent);
    Py_CLEAR(c->key);
    Py_CLEAR(c->value);
    Py_CLEAR(c->node_owner);
    Py_CLEAR(c->cancel_parent);
    Py_CLEAR(c->cause);
    Py_CLEAR(c->expiry_cause);
    Py_CLEAR(c->done);
    return 0;
}

static void Context_dealloc(ContextObject *c)
{
    PyObject_GC_UnTrack(c);
    if (c->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)c);
    /* A long chain of with_value contexts frees one by one, not by
     * recursion on the C stack. */
    Py_TRASHCAN_BEGIN(c, Context_dealloc)
    Context_clear(c);
    gopy_context_release(c->handle);
    PyObject_GC_Del(c);
    Py_TRASHCAN_END
}

/* An instance of Canceled / DeadlineExceeded for a runtime err, or None. */
static PyObject *err_object(int err)
{
    switch (err) {
    case GOPY_CTX_CANCELED:
        return PyObject_CallFunction(ctxstate.Canceled, "s", "context canceled");
    case GOPY_CTX_DEADLINE_EXCEEDED:
        return PyObject_CallFunction(ctxstate.DeadlineExceeded, "s",
                                     "context deadline exceeded");
    default:
        Py_RETURN_NONE;
    }
}

/* c->done, a new reference (NULL if not made yet); c's lock orders it. */
static PyObject *cached_done(ContextObject *c)
{
    PyObject *done;
    GOPY_BEGIN_LOCKED(c);
    done = Py_XNewRef(c->done);
    GOPY_END_LOCKED();
    return done;
}

static PyObject *Context_done(ContextObject *c, PyObject *Py_UNUSED(ignored))
{
    PyObject *done = cached_done(c);
    if (done != NULL)
        return done;
    if (!gopy_rt_context_cancellable(c->handle))
        Py_RETURN_NONE; /* never cancelled: Recv(None) is a nil case */
    gopy_chan *d = gopy_context_done(c->handle);
    if (d == NULL)
        return PyErr_NoMemory();
    gopy_chan_retain(d); /* the handle's reference is borrowed */
    ChanObject *ch = gopy_chan_wrap(d, ELEM_OBJECT, NULL);
    if (ch == NULL)
        return NULL;
    /* A context nobody holds is dropped, cancelled or not: whoever holds
     * only its done() must keep it. */
    gopy_context_retain(c->handle);
    ch->context = c->handle;
    PyObject *view = gopy_recv_view(ch);
    Py_DECREF(ch);
    if (view == NULL)
        return NULL;
    /* Two threads may get here at once: the first view made is kept, so
     * every caller gets the same object. */
    GOPY_BEGIN_LOCKED(c);
    if (c->done == NULL)
        c->done = Py_NewRef(view);
    done = Py_NewRef(c->done);
    GOPY_END_LOCKED();
    Py_DECREF(view);
    return done;
}

static PyObject *Context_err(ContextObject *c, PyObject *Py_UNUSED(ignored))
{
    return err_object(gopy_context_err(c->handle));
}

static PyObject *Context_deadline(ContextObject *c, PyObject *Py_UNUSED(ignored))
{
    if (c->deadline == 0)
        return Py_BuildValue("(OO)", Py_None, Py_False);
    return Py_BuildValue("(dO)", c->deadline, Py_True);
}

static PyObject *Context_value(ContextObject *c, PyObject *key)
{
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1)
        return NULL;
    for (ContextObject *v = c->key != NULL ? c : c->values_parent; v != NULL;
         v = v->values_parent) {
        if (v->key_hash != h)
            continue;
        int eq = PyObject_RichCompareBool(v->key, key, Py_EQ);
        if (eq < 0)
            return NULL;
        if (eq)
            return Py_NewRef(v->value);
    }
    Py_RETURN_NONE;
}

static PyObject *Context_get_handle(ContextObject *c, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(c->handle);
}

static PyObject *Context_repr(ContextObject *c)
{
    if (c->key != NULL)
        return PyUnicode_FromFormat("<gopy.context.Context with_value(%R, %R)>", c->key,
                                    c->value);
    int err = gopy_context_err(c->handle);
    return PyUnicode_FromFormat("<gopy.context.Context %s%s>", c->kind,
                                err == GOPY_CTX_CANCELED           ? " (canceled)"
                                : err == GOPY_CTX_DEADLINE_EXCEEDED ? " (deadline exceeded)"
                                                                    : "");
}

/* Context.from_handle(h): a Context around a runtime context made in C
 * (retained). */
static PyObject *Context_from_handle(PyObject *type, PyObject *arg)
{
    (void)type;
    gopy_context *h = gopy_handle_address(arg, "context");
    if (h == NULL)
        return NULL;
    gopy_context_retain(h);
    ContextObject *c = context_new(NULL, h, "from_handle");
    int64_t d;
    if (c != NULL && gopy_context_deadline(h, &d))
        c->deadline = (double)d / 1e9;
    return (PyObject *)c;
}

static PyMethodDef Context_methods[] = {
    {"done", (PyCFunction)Context_done, METH_NOARGS,
     "done($self, /)\n--\n\nA RecvChan closed when the context is cancelled; None for a context "
     "that can never be (Recv(None) never proceeds)."},
    {"err", (PyCFunction)Context_err, METH_NOARGS,
     "err($self, /)\n--\n\nWhy the context was cancelled (a Canceled or DeadlineExceeded), or "
     "None while it is not."},
    {"deadline", (PyCFunction)Context_deadline, METH_NOARGS,
     "deadline($self, /)\n--\n\nThe time.time() at which the context will be cancelled, and "
     "True; or (None, False)."},
    {"value", (PyCFunction)Context_value, METH_O,
     "value($self, key, /)\n--\n\nThe value of the nearest with_value for an equal key, or None."},
    {"from_handle", (PyCFunction)Context_from_handle, METH_O | METH_CLASS,
     "from_handle($type, handle, /)\n--\n\nA Context wrapping a gopy_context* made in C (it is "
     "retained)."},
    {NULL},
};

static PyGetSetDef Context_getset[] = {
    {"handle", (getter)Context_get_handle, NULL,
     "address of the runtime context (gopy_context*), for C code: valid while this Context "
     "lives (gopy_context_retain it to keep it longer)",
     NULL},
    {NULL},
};

static PyTypeObject Context_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.context.Context",
    .tp_basicsize = sizeof(ContextObject),
    .tp_dealloc = (destructor)Context_dealloc,
    .tp_repr = (reprfunc)Context_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A Go context: cancellation, a deadline and values, shared by goroutines.  Made "
              "by background(), todo() and the with_* functions.",
    .tp_traverse = (traverseproc)Context_traverse,
    .tp_clear = (inquiry)Context_clear,
    .tp_weaklistoffset = offsetof(ContextObject, weakreflist),
    .tp_methods = Context_methods,
    .tp_getset = Context_getset,
};

/* ---- cancel functions ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    ContextObject *ctx; /* the owner of the node to cancel */
    bool with_cause;    /* with_cancel_cause: cancel(cause=None) */
} CancelFuncObject;

static int CancelFunc_traverse(CancelFuncObject *f, visitproc visit, void *arg)
{
    Py_VISIT(f->ctx);
    return 0;
}

static int CancelFunc_clear(CancelFuncObject *f)
{
    Py_CLEAR(f->ctx);
    return 0;
}

static void CancelFunc_dealloc(CancelFuncObject *f)
{
    PyObject_GC_UnTrack(f);
    CancelFunc_clear(f);
    PyObject_GC_Del(f);
}

/* From this many wake-ups and child nodes on, a cancel lets the GIL go
 * once its cause is stored, as Chan.close does (CLOSE_LETS_GIL_GO): the
 * woken resume while the canceller goes on waking others. */
enum { CANCEL_LETS_GIL_GO = 256 };

struct cancel_cause {
    ContextObject *owner;
    PyObject *cause;     /* borrowed; NULL or None: none */
    PyThreadState *away; /* set if claimed let the GIL go */
};

/* The runtime's claimed: the cancel has won the node, and nobody can see
 * it (or anything below it) done yet.  GIL and owner's lock held. */
static void cancel_claimed(void *arg, size_t work)
{
    struct cancel_cause *cc = arg;
    if (cc->cause != NULL && cc->cause != Py_None && cc->owner->cause == NULL)
        cc->owner->cause = Py_NewRef(cc->cause);
    /* Only the runtime's cancel runs until the GIL is back: it touches no
     * Python object (after-funcs start goroutines, and release with
     * gopy_decref_anywhere). */
    if (work >= CANCEL_LETS_GIL_GO)
        cc->away = PyEval_SaveThread();
}

void gopy_context_cancel_with(PyObject *ctx, PyObject *cause)
{
    ContextObject *owner = owner_of((ContextObject *)ctx);
    /* The owner's lock (the GIL, or its critical section) is held from the
     * cancel's win to the store, and cause() reads under it: no Python
     * code can see the node cancelled without its cause. */
    struct cancel_cause cc = {owner, cause, NULL};
    GOPY_BEGIN_LOCKED(owner);
    gopy_rt_context_cancel(owner->handle, cancel_claimed, &cc);
    if (cc.away != NULL)
        PyEval_RestoreThread(cc.away);
    GOPY_END_LOCKED();
}

static PyObject *CancelFunc_call(CancelFuncObject *f, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"cause", NULL};
    PyObject *cause = NULL;
    if (f->with_cause) {
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:cancel", kwlist, &cause))
            return NULL;
    } else if (!PyArg_ParseTuple(args, ":cancel") ||
               (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "cancel() takes no arguments");
        return NULL;
    }
    if (f->ctx != NULL)
        gopy_context_cancel_with((PyObject *)f->ctx, cause);
    Py_RETURN_NONE;
}

/* __call__ as a method too (METH_COEXIST: in place of the slot wrapper),
 * for its text signature: inspect.signature(cancel), IDEs.  Calls still go
 * through tp_call. */
static PyMethodDef CancelFunc_methods[] = {
    {"__call__", (PyCFunction)(void (*)(void))CancelFunc_call,
     METH_VARARGS | METH_KEYWORDS | METH_COEXIST,
     "__call__($self, /, cause=None)\n--\n\nCancel the context (cause: only for a cancel from "
     "with_cancel_cause)."},
    {NULL},
};

static PyTypeObject CancelFunc_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.context.CancelFunc",
    .tp_basicsize = sizeof(CancelFuncObject),
    .tp_dealloc = (destructor)CancelFunc_dealloc,
    .tp_call = (ternaryfunc)CancelFunc_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)CancelFunc_traverse,
    .tp_clear = (inquiry)CancelFunc_clear,
    .tp_doc = "cancel() (or cancel(cause=None) from with_cancel_cause): cancel the context "
              "and every context derived from it.  Later calls do nothing.",
    .tp_methods = CancelFunc_methods,
};

/* (ctx, cancel) for a context made by the runtime (a new handle reference,
 * taken over; NULL means it failed with errno).  deadline: its own, or 0;
 * expiry_cause: NULL or its cause on expiry. */
static PyObject *pair(ContextObject *parent, gopy_context *h, const char *kind, bool with_cause,
                      double deadline, PyObject *expiry_cause)
{
    if (h == NULL)
        return PyErr_NoMemory();
    gopy_context_retain(h); /* for the cleanup below */
    ContextObject *c = context_new(parent, h, kind);
    CancelFuncObject *f = c != NULL ? PyObject_GC_New(CancelFuncObject, &CancelFunc_Type) : NULL;
    if (f == NULL) {
        gopy_context_cancel(h); /* unregister it from its parent */
        gopy_context_release(h);
        Py_XDECREF(c);
        return NULL;
    }
    gopy_context_release(h);
    f->ctx = (ContextObject *)Py_NewRef(c);
    f->with_cause = with_cause;
    PyObject_GC_Track(f);
    if (deadline != 0)
        c->deadline = deadline;
    if (expiry_cause != NULL && expiry_cause != Py_None)
        c->expiry_cause = Py_NewRef(expiry_cause);
    return Py_BuildValue("(NN)", c, f);
}

/* ---- the module functions ------------------------------------------------------------ */

static PyObject *ctx_background(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    return Py_NewRef(ctxstate.background);
}

static PyObject *ctx_todo(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    return Py_NewRef(ctxstate.todo);
}

static PyObject *ctx_with_cancel(PyObject *m, PyObject *arg)
{
    (void)m;
    ContextObject *parent = context_check(arg, "with_cancel");
    if (parent == NULL)
        return NULL;
    return pair(parent, gopy_context_with_cancel(parent->handle), "with_cancel", false, 0, NULL);
}

static PyObject *ctx_with_cancel_cause(PyObject *m, PyObject *arg)
{
    (void)m;
    ContextObject *parent = context_check(arg, "with_cancel_cause");
    if (parent == NULL)
        return NULL;
    return pair(parent, gopy_context_with_cancel(parent->handle), "with_cancel_cause", true, 0,
                NULL);
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A deadline: time.time() seconds (int or float) or a datetime. */
static int deadline_secs(PyObject *d, double *secs)
{
    if (PyFloat_Check(d) || PyLong_Check(d)) {
        *secs = PyFloat_AsDouble(d);
    } else if (!PyType_Check(d) && PyObject_HasAttr(d, gopy_names.timestamp)) {
        PyObject *t = PyObject_CallMethodNoArgs(d, gopy_names.timestamp);
        if (t == NULL)
            return -1;
        *secs = PyFloat_AsDouble(t);
        Py_DECREF(t);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "a deadline must be a time.time() value (int or float) or a datetime, "
                     "not %.100s",
                     Py_TYPE(d)->tp_name);
        return -1;
    }
    if (*secs == -1.0 && PyErr_Occurred())
        return -1;
    if (isnan(*secs)) {
        PyErr_SetString(PyExc_ValueError, "a deadline cannot be NaN");
        return -1;
    }
    return 0;
}

static int64_t secs_to_ns(double secs)
{
    double v = secs * 1e9;
    if (v >= 9.2e18)
        return INT64_MAX;
    if (v < 1)
        return 1; /* any time before now: past */
    return (int64_t)v;
}

/* with_deadline / with_timeout, with an optional cause on expiry. */
static PyObject *make_deadline(ContextObject *parent, double secs, int64_t ns, PyObject *cause,
                               const char *kind)
{
    gopy_context *h = gopy_context_with_deadline(parent->handle, ns);
    /* The parent's earlier deadline wins: the runtime made a plain child,
     * whose expiry is the parent's (and so is the cause). */
    if (parent->deadline != 0 && parent->deadline < secs) {
        secs = parent->deadline;
        cause = NULL;
    }
    return pair(parent, h, kind, false, secs, cause);
}

static PyObject *with_deadline_impl(PyObject *const *args, Py_ssize_t nargs, bool with_cause,
                                    const char *who)
{
    if (nargs != (with_cause ? 3 : 2)) {
        PyErr_Format(PyExc_TypeError, "%s() takes %d arguments (%zd given)", who,
                     with_cause ? 3 : 2, nargs);
        return NULL;
    }
    ContextObject *parent = context_check(args[0], who);
    double secs;
    if (parent == NULL || deadline_secs(args[1], &secs) < 0)
        return NULL;
    return make_deadline(parent, secs, secs_to_ns(secs), with_cause ? args[2] : NULL, who);
}

static PyObject *with_timeout_impl(PyObject *const *args, Py_ssize_t nargs, bool with_cause,
                                   const char *who)
{
    if (nargs != (with_cause ? 3 : 2)) {
        PyErr_Format(PyExc_TypeError, "%s() takes %d arguments (%zd given)", who,
                     with_cause ? 3 : 2, nargs);
        return NULL;
    }
    ContextObject *parent = context_check(args[0], who);
    int64_t d;
    if (parent == NULL || gopy_duration_ns(args[1], &d) < 0)
        return NULL;
    int64_t now = wall_ns();
    int64_t ns = d > INT64_MAX - now ? INT64_MAX : d < 1 - now ? 1 : now + d;
    return make_deadline(parent, (double)ns / 1e9, ns, with_cause ? args[2] : NULL, who);
}

static PyObject *ctx_with_deadline(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    (void)m;
    return with_deadline_impl(args, nargs, false, "with_deadline");
}

static PyObject *ctx_with_deadline_cause(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    (void)m;
    return with_deadline_impl(args, nargs, true, "with_deadline_cause");
}

static PyObject *ctx_with_timeout(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    (void)m;
    return with_timeout_impl(args, nargs, false, "with_timeout");
}

static PyObject *ctx_with_timeout_cause(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    (void)m;
    return with_timeout_impl(args, nargs, true, "with_timeout_cause");
}

static PyObject *ctx_with_value(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    (void)m;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "with_value() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    ContextObject *parent = context_check(args[0], "with_value");
    if (parent == NULL)
        return NULL;
    if (args[1] == Py_None) {
        PyErr_SetString(PyExc_TypeError, "with_value: the key must not be None");
        return NULL;
    }
    Py_hash_t h = PyObject_Hash(args[1]); /* Go: the key must be comparable */
    if (h == -1)
        return NULL;
    gopy_context_retain(parent->handle);
    ContextObject *c = context_new(parent, parent->handle, "with_value");
    if (c == NULL)
        return NULL;
    c->key = Py_NewRef(args[1]);
    c->value = Py_NewRef(args[2]);
    c->key_hash = h;
    return (PyObject *)c;
}

static PyObject *ctx_without_cancel(PyObject *m, PyObject *arg)
{
    (void)m;
    ContextObject *parent = context_check(arg, "without_cancel");
    if (parent == NULL)
        return NULL;
    ContextObject *c = context_new(parent, gopy_context_background(), "without_cancel");
    if (c != NULL)
        c->deadline = 0; /* no deadline either */
    return (PyObject *)c;
}

static PyObject *ctx_cause(PyObject *m, PyObject *arg)
{
    (void)m;
    ContextObject *c = context_check(arg, "cause");
    if (c == NULL)
        return NULL;
    gopy_context *origin = gopy_rt_context_cause_origin(c->handle);
    if (origin == NULL)
        Py_RETURN_NONE; /* not cancelled */
    /* The owner of the node whose cancel reached c: c's, or an ancestor's
     * (absent if that node was made in C). */
    ContextObject *o = owner_of(c);
    while (o != NULL && o->handle != origin)
        o = o->cancel_parent;
    PyObject *cause = NULL;
    if (o != NULL) {
        /* expiry_cause is set before the context is shared; cause under
         * the lock gopy_context_cancel_with holds. */
        if (gopy_context_err(origin) == GOPY_CTX_DEADLINE_EXCEEDED && o->expiry_cause != NULL)
            return Py_NewRef(o->expiry_cause);
        GOPY_BEGIN_LOCKED(o);
        cause = Py_XNewRef(o->cause);
        GOPY_END_LOCKED();
    }
    return cause != NULL ? cause : err_object(gopy_context_err(c->handle));
}

/* ---- after_func ------------------------------------------------------------------------- */

/* The call an after_func makes, owned by the runtime's after-func node
 * (through a reference to this object) until it fires or is stopped. */
typedef struct {
    PyObject_HEAD
    py_call_template *call;
} AfterFuncCallObject;

static void AfterFuncCall_dealloc(AfterFuncCallObject *a)
{
    if (a->call != NULL)
        gopy_template_release(a->call);
    PyObject_Free(a);
}

static PyTypeObject AfterFuncCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.context._AfterFuncCall",
    .tp_basicsize = sizeof(AfterFuncCallObject),
    .tp_dealloc = (destructor)AfterFuncCall_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* The node's fire: no GIL needed (gopy_template_fire starts a goroutine
 * that makes the call); the object lives until release. */
static void after_func_fire(void *arg)
{
    gopy_template_fire(((AfterFuncCallObject *)arg)->call);
}

typedef struct {
    PyObject_HEAD
    gopy_context *af; /* the runtime's after-func node */
} AfterFuncStopObject;

static void AfterFuncStop_dealloc(AfterFuncStopObject *s)
{
    gopy_context_release(s->af);
    PyObject_Free(s);
}

static PyObject *AfterFuncStop_call(AfterFuncStopObject *s, PyObject *args, PyObject *kwargs)
{
    if (!PyArg_ParseTuple(args, ":stop") || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "stop() takes no arguments");
        return NULL;
    }
    return PyBool_FromLong(gopy_rt_context_stop_after_func(s->af));
}

static PyMethodDef AfterFuncStop_methods[] = {
    {"__call__", (PyCFunction)(void (*)(void))AfterFuncStop_call,
     METH_VARARGS | METH_KEYWORDS | METH_COEXIST,
     "__call__($self, /)\n--\n\nKeep the after_func from running; True if this stopped it."},
    {NULL},
};

static PyTypeObject AfterFuncStop_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.context.AfterFuncStop",
    .tp_basicsize = sizeof(AfterFuncStopObject),
    .tp_dealloc = (destructor)AfterFuncStop_dealloc,
    .tp_call = (ternaryfunc)AfterFuncStop_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "stop() -> bool: keep the after_func from running; True if this stopped it, "
              "False if it already started or was stopped.",
    .tp_methods = AfterFuncStop_methods,
};

static PyObject *ctx_after_func(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    (void)m;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "after_func() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    ContextObject *ctx = context_check(args[0], "after_func");
    if (ctx == NULL)
        return NULL;
    if (!PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "after_func: fn must be callable");
        return NULL;
    }
    PyObject *noargs = PyTuple_New(0);
    if (noargs == NULL)
        return NULL;
    py_call_template *call = gopy_template_new(args[1], noargs);
    Py_DECREF(noargs);
    if (call == NULL)
        return NULL;
    AfterFuncCallObject *holder = PyObject_New(AfterFuncCallObject, &AfterFuncCall_Type);
    if (holder == NULL) {
        gopy_template_release(call);
        return NULL;
    }
    holder->call = call;
    AfterFuncStopObject *stop = PyObject_New(AfterFuncStopObject, &AfterFuncStop_Type);
    if (stop == NULL) {
        Py_DECREF(holder);
        return NULL;
    }
    stop->af = NULL;
    /* The node takes over our reference to holder (release_object drops
     * it); it may fire at once if ctx is already done. */
    stop->af = gopy_rt_context_after_func(ctx->handle, after_func_fire, release_object, holder);
    if (stop->af == NULL) {
        Py_DECREF(holder);
        Py_DECREF(stop);
        return PyErr_NoMemory();
    }
    return (PyObject *)stop;
}

static PyObject *ctx_live(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    return PyLong_FromLongLong(gopy_rt_context_live());
}

static PyMethodDef context_functions[] = {
    {"background", ctx_background, METH_NOARGS,
     "background($module, /)\n--\n\nThe empty root context: never cancelled, no deadline, no "
     "values."},
    {"todo", ctx_todo, METH_NOARGS,
     "todo($module, /)\n--\n\nLike background(), for code that has no context to pass yet."},
    {"with_cancel", ctx_with_cancel, METH_O,
     "with_cancel($module, parent, /)\n--\n\n(ctx, cancel): cancel() cancels ctx and every "
     "context derived from it; ctx is also cancelled with its parent.  Call cancel when done "
     "with ctx: until then it stays registered with its parent (or, never cancelled, until "
     "nothing holds it or its done())."},
    {"with_cancel_cause", ctx_with_cancel_cause, METH_O,
     "with_cancel_cause($module, parent, /)\n--\n\nLike with_cancel (returns (ctx, cancel)); "
     "cancel(cause=None) records cause, which cause(ctx) returns."},
    {"with_deadline", (PyCFunction)(void (*)(void))ctx_with_deadline, METH_FASTCALL,
     "with_deadline($module, parent, deadline, /)\n--\n\n(ctx, cancel), like with_cancel, also "
     "cancelled (DeadlineExceeded) at deadline, a time.time() value or a datetime; a parent's "
     "earlier deadline wins; a deadline already past cancels at once."},
    {"with_deadline_cause", (PyCFunction)(void (*)(void))ctx_with_deadline_cause,
     METH_FASTCALL,
     "with_deadline_cause($module, parent, deadline, cause, /)\n--\n\nwith_deadline whose expiry "
     "records cause."},
    {"with_timeout", (PyCFunction)(void (*)(void))ctx_with_timeout, METH_FASTCALL,
     "with_timeout($module, parent, d, /)\n--\n\nwith_deadline(parent, time.time() + d)."},
    {"with_timeout_cause", (PyCFunction)(void (*)(void))ctx_with_timeout_cause, METH_FASTCALL,
     "with_timeout_cause($module, parent, d, cause, /)\n--\n\nwith_deadline_cause(parent, "
     "time.time() + d, cause)."},
    {"with_value", (PyCFunction)(void (*)(void))ctx_with_value, METH_FASTCALL,
     "with_value($module, parent, key, value, /)\n--\n\nA context ctx whose ctx.value(key) finds "
     "value (keys match by equality, like dict keys); everything else is the parent's."},
    {"without_cancel", ctx_without_cancel, METH_O,
     "without_cancel($module, parent, /)\n--\n\nA context with the parent's values, without its "
     "cancellation or deadline."},
    {"after_func", (PyCFunction)(void (*)(void))ctx_after_func, METH_FASTCALL,
     "after_func($module, ctx, fn, /)\n--\n\nRun fn() in its own goroutine once ctx is done (at "
     "once if it is).  Returns stop: stop() keeps it from running and returns True if it "
     "did."},
    {"cause", ctx_cause, METH_O,
     "cause($module, ctx, /)\n--\n\nThe cause given to the cancel that cancelled ctx, else "
     "ctx.err()."},
    {"_live", ctx_live, METH_NOARGS, "runtime context nodes alive now (for leak tests)"},
    {NULL},
};

/* ---- init ---------------------------------------------------------------------------------- */

static PyObject *make_root(const char *kind)
{
    return (PyObject *)context_new(NULL, gopy_context_background(), kind);
}

/* The namespace object _gopy.<name> (gopy/<name>.py re-exports it). */
static PyObject *add_namespace(PyObject *m, const char *name, const char *qualname)
{
    PyObject *ns = PyModule_New(qualname);
    if (ns == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, name, ns) < 0) {
        Py_DECREF(ns);
        return NULL;
    }
    Py_DECREF(ns); /* m holds it */
    return ns;
}

PyObject *gopy_namespace(PyObject *m, const char *name, const char *qualname)
{
    return add_namespace(m, name, qualname);
}

int gopy_context_init(PyObject *m)
{
    PyObject *ns = add_namespace(m, "_context", "gopy.context");
    if (ns == NULL || PyModule_AddFunctions(ns, context_functions) < 0)
        return -1;
    if (gopy_add_type(ns, &Context_Type, "Context") < 0 ||
        gopy_add_type(ns, &CancelFunc_Type, "CancelFunc") < 0 ||
        gopy_add_type(ns, &AfterFuncStop_Type, "AfterFuncStop") < 0 ||
        gopy_add_type(ns, &AfterFuncCall_Type, NULL) < 0)
        return -1;
    ctxstate.Canceled = PyErr_NewExceptionWithDoc(
        "gopy.context.Canceled", "The context was cancelled (Go's context.Canceled).",
        PyExc_Exception, NULL);
    ctxstate.DeadlineExceeded = PyErr_NewExceptionWithDoc(
        "gopy.context.DeadlineExceeded",
        "The context's deadline passed (Go's context.DeadlineExceeded).", PyExc_TimeoutError,
        NULL);
    ctxstate.background = make_root("background");
    ctxstate.todo = make_root("todo");
    if (ctxstate.Canceled == NULL || ctxstate.DeadlineExceeded == NULL ||
        ctxstate.background == NULL || ctxstate.todo == NULL ||
        PyModule_AddObjectRef(ns, "Canceled", ctxstate.Canceled) < 0 ||
        PyModule_AddObjectRef(ns, "DeadlineExceeded", ctxstate.DeadlineExceeded) < 0)
        return -1;
    return 0;
}
