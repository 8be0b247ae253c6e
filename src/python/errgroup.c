/*
 * errgroup.c -- gopy.errgroup: golang.org/x/sync/errgroup's Group for
 * Python, on the runtime's errgroup (src/runtime/errgroup.c).
 *
 * A goroutine of the group runs a GroupTask: it calls fn(*args, **kwargs)
 * and reports how it ended.  A failure is a raised exception or a
 * returned exception instance; the runtime says which failure came first
 * (gopy_rt_errgroup_fail): that one is kept in the Group (first_error)
 * and cancels the group's context with it as cause, before the goroutine
 * counts as done; later ones are dropped, as in Go.
 * wait() raises the first failure itself -- the very object, with the
 * traceback it was raised with.
 *
 * References: a Group owns its first_error and its derived Context (both
 * visible to the cycle collector: a failure whose traceback reaches the
 * frame holding the group is a collectable cycle).  A GroupTask owns fn,
 * args, kwargs and a reference to its Group until it has run; so a Group
 * outlives its goroutines, and the runtime group is freed only when none
 * is active.
 */
#include "binding.h"

typedef struct {
    PyObject_HEAD
    gopy_errgroup *g;
    PyObject *ctx;         /* with_context: the derived Context, else NULL */
    PyObject *first_error; /* the first failure, or NULL */
    PyObject *weakreflist;
} GroupObject;

typedef struct {
    PyObject_HEAD
    GroupObject *group;
    gopy_chan *slot; /* from gopy_rt_errgroup_acquire */
    PyObject *fn, *args, *kwargs;
} GroupTaskObject;

static PyTypeObject Group_Type, GroupTask_Type;

/* ---- the goroutine body ---------------------------------------------------------- */

static PyObject *GroupTask_call(GroupTaskObject *t, PyObject *args, PyObject *kwargs)
{
    (void)args;
    (void)kwargs;
    if (t->group == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "errgroup task ran twice");
        return NULL;
    }
    PyObject *failure = NULL;
    PyObject *r = PyObject_Call(t->fn, t->args, t->kwargs);
    if (r == NULL) {
        failure = gopy_err_fetch(); /* with its traceback */
    } else if (PyExceptionInstance_Check(r)) {
        failure = r;
        r = NULL;
    }
    Py_XDECREF(r);
    GroupObject *group = t->group;
    if (failure != NULL && gopy_rt_errgroup_fail(group->g)) {
        /* The first failure: kept, and the context cancelled with it. */
        __atomic_store_n(&group->first_error, failure, __ATOMIC_RELEASE); /* see Group_repr */
        if (group->ctx != NULL)
            gopy_context_cancel_with(group->ctx, failure);
        failure = NULL;
    }
    Py_XDECREF(failure); /* a later one: dropped, as in Go */
    gopy_rt_errgroup_done(group->g, t->slot);
    t->slot = NULL;
    Py_CLEAR(t->fn);
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
    Py_CLEAR(t->group);
    Py_RETURN_NONE;
}

static void GroupTask_dealloc(GroupTaskObject *t)
{
    Py_XDECREF(t->fn);
    Py_XDECREF(t->args);
    Py_XDECREF(t->kwargs);
    Py_XDECREF(t->group);
    PyObject_Free(t);
}

static PyTypeObject GroupTask_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.errgroup._Task",
    .tp_basicsize = sizeof(GroupTaskObject),
    .tp_dealloc = (destructor)GroupTask_dealloc,
    .tp_call = (ternaryfunc)GroupTask_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
};

/* ---- Group ------------------------------------------------------------------------- */

static GroupObject *group_new(PyTypeObject *type, PyObject *ctx)
{
    GroupObject *self = (GroupObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->g = gopy_rt_errgroup_new();
    if (self->g == NULL) {
        Py_DECREF(self);
        return (GroupObject *)PyErr_NoMemory();
    }
    self->ctx = Py_XNewRef(ctx);
    return self;
}

static PyObject *Group_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (!PyArg_ParseTuple(args, ":Group") || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Group() takes no arguments");
        return NULL;
    }
    return (PyObject *)group_new(type, NULL);
}

static int Group_traverse(GroupObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->ctx);
    Py_VISIT(self->first_error);
    return 0;
}

static int Group_clear(GroupObject *self)
{
    Py_CLEAR(self->ctx);
    Py_CLEAR(self->first_error);
    return 0;
}

static void Group_dealloc(GroupObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Group_clear(self);
    gopy_rt_errgroup_free(self->g); /* no goroutine is active: each holds us */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

typedef struct {
    gopy_errgroup *g;
    gopy_chan *slot;
} acquire_op;

static int op_acquire(void *arg, bool block)
{
    acquire_op *op = arg;
    return gopy_rt_errgroup_acquire(op->g, block, &op->slot);
}

/* Start fn(*args[1:], **kwargs) in the group.  1: started; 0: no free slot
 * (block false); -1: error. */
static int group_start(GroupObject *self, PyObject *args, PyObject *kwargs, bool block,
                       const char *who)
{
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_Format(PyExc_TypeError, "%s() needs a function to run", who);
        return -1;
    }
    PyObject *fn = PyTuple_GET_ITEM(args, 0);
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "%s(): %.100s object is not callable", who,
                     Py_TYPE(fn)->tp_name);
        return -1;
    }
    GroupTaskObject *t = PyObject_New(GroupTaskObject, &GroupTask_Type);
    if (t == NULL)
        return -1;
    t->group = NULL;
    t->slot = NULL;
    t->fn = Py_NewRef(fn);
    t->args = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    t->kwargs = kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0 ? PyDict_Copy(kwargs) : NULL;
    if (t->args == NULL || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0 && t->kwargs == NULL)) {
        Py_DECREF(t);
        return -1;
    }
    acquire_op op = {self->g, NULL};
    int status = block ? gopy_call_blocking(op_acquire, &op) : op_acquire(&op, false);
    if (status != GOPY_OK) {
        Py_DECREF(t);
        if (status == GOPY_EAGAIN && !block)
            return 0;
        if (status > 0)
            gopy_status_error(status);
        return -1;
    }
    t->slot = op.slot;
    t->group = (GroupObject *)Py_NewRef(self);
    PyObject *noargs = PyTuple_New(0);
    int r = noargs != NULL ? gopy_spawn((PyObject *)t, noargs, NULL) : -1;
    Py_XDECREF(noargs);
    if (r < 0) {
        /* Not started: give the slot back as a goroutine that succeeded. */
        gopy_rt_errgroup_done(self->g, t->slot);
        t->slot = NULL;
        Py_DECREF(t);
        return -1;
    }
    Py_DECREF(t); /* the goroutine holds it */
    return 1;
}

static PyObject *Group_go(GroupObject *self, PyObject *args, PyObject *kwargs)
{
    if (group_start(self, args, kwargs, true, "go") < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Group_try_go(GroupObject *self, PyObject *args, PyObject *kwargs)
{
    int r = group_start(self, args, kwargs, false, "try_go");
    if (r < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *Group_set_limit(GroupObject *self, PyObject *arg)
{
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_limit: n must be an int, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(arg, &overflow);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (overflow != 0)
        n = overflow < 0 ? -1 : INT64_MAX;
    int64_t active = 0;
    int r = gopy_rt_errgroup_set_limit(self->g, n, &active);
    if (r == GOPY_EAGAIN) {
        PyErr_Format(PyExc_RuntimeError,
                     "errgroup: modify limit while %lld goroutines in the group are still "
                     "active",
                     (long long)active);
        return NULL;
    }
    if (r != GOPY_OK)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static int op_wait(void *arg, bool block)
{
    return gopy_rt_errgroup_wait(arg, block);
}

/* Wait, cancel the context (with the first failure as cause), then raise
 * that failure.  body_failed: do not raise it (the caller's own exception
 * wins). */
static PyObject *group_wait(GroupObject *self, bool body_failed)
{
    int status = gopy_call_blocking(op_wait, self->g);
    if (status != GOPY_OK) {
        if (status > 0)
            gopy_status_error(status);
        return NULL;
    }
    if (self->ctx != NULL)
        gopy_context_cancel_with(self->ctx, self->first_error);
    if (self->first_error != NULL && !body_failed) {
        gopy_err_restore(Py_NewRef(self->first_error));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Group_wait(GroupObject *self, PyObject *Py_UNUSED(ignored))
{
    return group_wait(self, false);
}

static PyObject *Group_enter(GroupObject *self, PyObject *Py_UNUSED(ignored))
{
    return Py_NewRef(self);
}

static PyObject *Group_exit(GroupObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes 3 arguments");
        return NULL;
    }
    PyObject *exc = args[1];
    bool body_failed = exc != Py_None;
    if (body_failed && self->ctx != NULL) {
        /* The body raised: stop the goroutines that honour the context,
         * so that waiting for them cannot hang. */
        gopy_context_cancel_with(self->ctx, exc);
    }
    PyObject *r = group_wait(self, body_failed);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_FALSE; /* never swallow the body's exception */
}

static PyObject *Group_repr(GroupObject *self)
{
    /* Not waited for: a goroutine may store the first failure meanwhile
     * (wait() sees it through the runtime's own ordering). */
    bool failed = __atomic_load_n(&self->first_error, __ATOMIC_ACQUIRE) != NULL;
    return PyUnicode_FromFormat("<gopy.errgroup.Group%s active=%lld%s>",
                                self->ctx != NULL ? " with context" : "",
                                (long long)gopy_rt_errgroup_active(self->g),
                                failed ? " failed" : "");
}

static PyMethodDef Group_methods[] = {
    {"go", (PyCFunction)(void (*)(void))Group_go, METH_VARARGS | METH_KEYWORDS,
     "go($self, fn, /, *args, **kwargs)\n--\n\nRun fn in a goroutine of the group.  It fails by "
     "raising or by returning an exception instance; the first failure cancels the group's "
     "context.  With a limit set, blocks until a slot is free."},
    {"try_go", (PyCFunction)(void (*)(void))Group_try_go, METH_VARARGS | METH_KEYWORDS,
     "try_go($self, fn, /, *args, **kwargs)\n--\n\nStart fn only if a slot is free; True if it "
     "started."},
    {"set_limit", (PyCFunction)Group_set_limit, METH_O,
     "set_limit($self, n, /)\n--\n\nAt most n active goroutines (n < 0: no limit).  Changing the "
     "limit while goroutines are active raises RuntimeError."},
    {"wait", (PyCFunction)Group_wait, METH_NOARGS,
     "wait($self, /)\n--\n\nBlock until every goroutine has returned, then raise the first "
     "failure (the exception object itself, with its traceback), if any."},
    {"__enter__", (PyCFunction)Group_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nThe group itself."},
    {"__exit__", (PyCFunction)(void (*)(void))Group_exit, METH_FASTCALL,
     "__exit__($self, exc_type, exc, tb, /)\n--\n\nwait() on leaving the block; if the block "
     "raised, the group's context is cancelled first and the block's exception propagates."},
    {NULL},
};

static PyTypeObject Group_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.errgroup.Group",
    .tp_basicsize = sizeof(GroupObject),
    .tp_dealloc = (destructor)Group_dealloc,
    .tp_repr = (reprfunc)Group_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Group_traverse,
    .tp_clear = (inquiry)Group_clear,
    .tp_doc = "Group()\n--\n\nA group of goroutines working on parts of one task (Go's "
              "errgroup.Group); the zero group has no context and no limit.",
    .tp_weaklistoffset = offsetof(GroupObject, weakreflist),
    .tp_methods = Group_methods,
    .tp_new = Group_new,
};

static PyObject *eg_with_context(PyObject *m, PyObject *arg)
{
    (void)m;
    gopy_context *parent = gopy_context_handle_of(arg, "with_context");
    if (parent == NULL)
        return NULL;
    gopy_context *h = gopy_context_with_cancel(parent);
    if (h == NULL)
        return PyErr_NoMemory();
    PyObject *ctx = gopy_context_derived(arg, h, "errgroup.with_context");
    if (ctx == NULL)
        return NULL;
    GroupObject *g = group_new(&Group_Type, ctx);
    if (g == NULL) {
        gopy_context_cancel_with(ctx, NULL);
        Py_DECREF(ctx);
        return NULL;
    }
    return Py_BuildValue("(NN)", g, ctx);
}

static PyMethodDef errgroup_functions[] = {
    {"with_context", eg_with_context, METH_O,
     "with_context($module, ctx, /)\n--\n\n(group, ctx): a Group and a context derived from ctx, "
     "cancelled when a goroutine of the group first fails or when wait returns."},
    {NULL},
};

int gopy_errgroup_init(PyObject *m)
{
    PyObject *ns = gopy_namespace(m, "_errgroup", "gopy.errgroup");
    if (ns == NULL || PyModule_AddFunctions(ns, errgroup_functions) < 0 ||
        gopy_add_type(ns, &GroupTask_Type, NULL) < 0 || gopy_add_type(ns, &Group_Type, "Group") < 0)
        return -1;
    return 0;
}
