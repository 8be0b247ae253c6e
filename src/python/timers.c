/*
 * timers.c -- gopy.sleep, Timer, Ticker, after, tick, after_func.
 *
 * Durations are seconds (float or int) or datetime.timedelta.  A timer's
 * channel is a RecvChan of floats (time.time() values).  after() and tick()
 * return just the channel; the channel then owns the timer, which stops
 * when the channel is dropped (Go 1.23 lets unreferenced timers go too).
 * A Timer or Ticker's channel owns its timer the same way, so that
 * `Timer(d).c` alone still fires.  An armed after_func holds a reference
 * to its Timer until it has run (Go runs it even if the Timer is dropped).
 */
#include "binding.h"

#include <math.h>
#include <time.h>

int64_t gopy_monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int gopy_duration_ns(PyObject *d, int64_t *ns)
{
    double secs;
    if (PyFloat_Check(d) || PyLong_Check(d)) {
        secs = PyFloat_AsDouble(d);
        if (secs == -1.0 && PyErr_Occurred())
            return -1;
    } else if (PyObject_HasAttr(d, gopy_names.total_seconds) && !PyType_Check(d)) {
        PyObject *t = PyObject_CallMethodNoArgs(d, gopy_names.total_seconds);
        if (t == NULL)
            return -1;
        secs = PyFloat_AsDouble(t);
        Py_DECREF(t);
        if (secs == -1.0 && PyErr_Occurred())
            return -1;
    } else {
        PyErr_Format(PyExc_TypeError,
                     "a duration must be seconds (int or float) or a timedelta, not %.100s",
                     Py_TYPE(d)->tp_name);
        return -1;
    }
    if (isnan(secs)) {
        PyErr_SetString(PyExc_ValueError, "a duration cannot be NaN");
        return -1;
    }
    double v = secs * 1e9;
    *ns = v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : (int64_t)v;
    return 0;
}

/* ---- sleep ------------------------------------------------------------------ */

static int op_sleep(void *arg, bool block)
{
    int64_t ns = *(int64_t *)arg;
    if (!block && ns > 0)
        return GOPY_EAGAIN;
    return gopy_rt_sleep(ns);
}

int gopy_sleep_ns(int64_t ns)
{
    int status = gopy_call_blocking_ex(op_sleep, &ns, false);
    if (status != GOPY_OK) {
        if (status > 0)
            gopy_status_error(status);
        return -1;
    }
    return 0;
}

PyObject *gopy_sleep_impl(PyObject *d)
{
    int64_t ns;
    if (gopy_duration_ns(d, &ns) < 0 || gopy_sleep_ns(ns) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- Timer and Ticker ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gopy_timer *t;            /* owned by c's channel, except for after_func */
    PyObject *c;              /* RecvChan, or None for after_func */
    py_call_template *call;   /* after_func: calls after_func_call, else NULL */
    PyObject *fn, *args;      /* after_func: the call to make */
    bool ticker;
} TimerObject;

/* A RecvChan over the timer's channel, which owns the timer (freed on
 * failure); the channel's Chan object keeps its own reference to the
 * runtime channel. */
static PyObject *timer_chan_view(gopy_timer *t)
{
    gopy_chan *c = gopy_rt_timer_chan(t);
    gopy_chan_retain(c);
    ChanObject *ch = gopy_chan_wrap(c, ELEM_TIME, NULL);
    if (ch == NULL) {
        gopy_rt_timer_free(t);
        return NULL;
    }
    ch->timer = t;
    PyObject *view = gopy_recv_view(ch);
    Py_DECREF(ch);
    return view;
}

static TimerObject *timer_make(PyTypeObject *type, int64_t d, int64_t period)
{
    gopy_timer *t = gopy_rt_timer_new(d, period);
    if (t == NULL)
        return (TimerObject *)PyErr_NoMemory();
    TimerObject *self = (TimerObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        gopy_rt_timer_free(t);
        return NULL;
    }
    self->ticker = period > 0;
    self->c = timer_chan_view(t); /* frees t on failure */
    if (self->c == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->t = t;
    return self;
}

static PyObject *Timer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"d", NULL};
    PyObject *dobj;
    int64_t d;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Timer", kwlist, &dobj) ||
        gopy_duration_ns(dobj, &d) < 0)
        return NULL;
    return (PyObject *)timer_make(type, d, 0);
}

static int positive_period(PyObject *dobj, int64_t *d, const char *who)
{
    if (gopy_duration_ns(dobj, d) < 0)
        return -1;
    if (*d <= 0) {
        PyErr_Format(PyExc_ValueError, "non-positive interval for %s", who);
        return -1;
    }
    return 0;
}

static PyObject *Ticker_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"d", NULL};
    PyObject *dobj;
    int64_t d;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Ticker", kwlist, &dobj) ||
        positive_period(dobj, &d, "Ticker") < 0)
        return NULL;
    return (PyObject *)timer_make(type, d, d);
}

static void Timer_dealloc(TimerObject *self)
{
    /* A channel timer goes with its channel (c); an after_func is not
     * armed any more (an armed one holds a reference to us). */
    if (self->call != NULL) {
        if (self->t != NULL)
            gopy_rt_timer_free(self->t);
        gopy_template_release(self->call);
    }
    PyObject_GC_UnTrack(self);
    Py_XDECREF(self->fn);
    Py_XDECREF(self->args);
    Py_XDECREF(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* after_func's fn may refer to its Timer (a callback that resets it):
 * the collector must see the call. */
static int Timer_traverse(TimerObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fn);
    Py_VISIT(self->args);
    Py_VISIT(self->c);
    return 0;
}

static int Timer_clear(TimerObject *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->args);
    return 0;
}

static PyObject *Timer_stop(TimerObject *self, PyObject *Py_UNUSED(ignored))
{
    bool pending = gopy_rt_timer_stop(self->t);
    if (pending && self->call != NULL)
        Py_DECREF(self); /* the armed after_func's reference (ours is the caller's) */
    if (self->ticker)
        Py_RETURN_NONE;
    return PyBool_FromLong(pending);
}

static PyObject *Timer_reset(TimerObject *self, PyObject *dobj)
{
    int64_t d;
    if (self->ticker) {
        if (positive_period(dobj, &d, "Ticker.reset") < 0)
            return NULL;
        gopy_rt_timer_reset(self->t, d, d);
        Py_RETURN_NONE;
    }
    if (gopy_duration_ns(dobj, &d) < 0)
        return NULL;
    bool pending = gopy_rt_timer_reset(self->t, d, 0);
    if (!pending && self->call != NULL)
        Py_INCREF(self); /* armed again: a reference until it has run */
    return PyBool_FromLong(pending);
}

static PyObject *Timer_get_c(TimerObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->c != NULL ? self->c : Py_None);
}

static PyMethodDef Timer_methods[] = {
    {"stop", (PyCFunction)Timer_stop, METH_NOARGS,
     "stop($self, /)\n--\n\nStop the timer; True if that stopped it from firing.  No value sent "
     "before the stop can be received after it."},
    {"reset", (PyCFunction)Timer_reset, METH_O,
     "reset($self, d, /)\n--\n\nRe-arm the timer to fire after d; True if it was pending."},
    {NULL},
};

static PyMethodDef Ticker_methods[] = {
    {"stop", (PyCFunction)Timer_stop, METH_NOARGS, "stop($self, /)\n--\n\nStop the ticks."},
    {"reset", (PyCFunction)Timer_reset, METH_O,
     "reset($self, d, /)\n--\n\nTick every d from now on."},
    {NULL},
};

static PyGetSetDef Timer_getset[] = {
    {"c", (getter)Timer_get_c, NULL, "the RecvChan the time is delivered on (None for after_func)",
     NULL},
    {NULL},
};

PyTypeObject Timer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Timer",
    .tp_basicsize = sizeof(TimerObject),
    .tp_dealloc = (destructor)Timer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Timer(d)\n--\n\nSends the time.time() value on .c once, after d seconds.",
    .tp_traverse = (traverseproc)Timer_traverse,
    .tp_clear = (inquiry)Timer_clear,
    .tp_methods = Timer_methods,
    .tp_getset = Timer_getset,
    .tp_new = Timer_new,
};

PyTypeObject Ticker_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Ticker",
    .tp_basicsize = sizeof(TimerObject),
    .tp_dealloc = (destructor)Timer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Timer_traverse,
    .tp_clear = (inquiry)Timer_clear,
    .tp_doc = "Ticker(d)\n--\n\nSends the time on .c every d seconds, dropping ticks for a slow "
              "reader.",
    .tp_methods = Ticker_methods,
    .tp_getset = Timer_getset,
    .tp_new = Ticker_new,
};

/* ---- after, tick, after_func ------------------------------------------------------ */

PyObject *gopy_after_impl(PyObject *dobj)
{
    int64_t d;
    if (gopy_duration_ns(dobj, &d) < 0)
        return NULL;
    gopy_timer *t = gopy_rt_timer_new(d, 0);
    if (t == NULL)
        return PyErr_NoMemory();
    return timer_chan_view(t);
}

PyObject *gopy_tick_impl(PyObject *dobj)
{
    int64_t d;
    if (gopy_duration_ns(dobj, &d) < 0)
        return NULL;
    if (d <= 0)
        Py_RETURN_NONE; /* Go: Tick(d <= 0) is nil */
    gopy_timer *t = gopy_rt_timer_new(d, d);
    if (t == NULL)
        return PyErr_NoMemory();
    return timer_chan_view(t);
}

/* The call an after_func's goroutine makes: fn(*args), then drop the
 * reference its arming held (m_self: the TimerObject's address). */
static PyObject *after_func_call(PyObject *m_self, PyObject *Py_UNUSED(ignored))
{
    TimerObject *self = PyLong_AsVoidPtr(m_self);
    /* Armed, the Timer holds itself: the collector cannot have cleared it. */
    PyObject *r = PyObject_Call(self->fn, self->args, NULL);
    PyObject *exc = gopy_err_fetch();
    Py_DECREF(self);
    gopy_err_restore(exc);
    return r;
}

static PyMethodDef after_func_call_def = {"after_func_call", after_func_call, METH_NOARGS, NULL};

PyObject *gopy_after_func_impl(PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "after_func(d, fn, *args) needs d and fn");
        return NULL;
    }
    int64_t d;
    if (gopy_duration_ns(args[0], &d) < 0)
        return NULL;
    if (!PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "after_func: fn must be callable");
        return NULL;
    }
    PyObject *fargs = PyTuple_New(nargs - 2);
    if (fargs == NULL)
        return NULL;
    for (Py_ssize_t i = 2; i < nargs; i++)
        PyTuple_SET_ITEM(fargs, i - 2, Py_NewRef(args[i]));
    TimerObject *self = (TimerObject *)Timer_Type.tp_alloc(&Timer_Type, 0);
    if (self == NULL) {
        Py_DECREF(fargs);
        return NULL;
    }
    self->fn = Py_NewRef(args[1]);
    self->args = fargs;
    self->c = Py_NewRef(Py_None);
    PyObject *addr = PyLong_FromVoidPtr(self);
    PyObject *fire = addr != NULL ? PyCFunction_New(&after_func_call_def, addr) : NULL;
    Py_XDECREF(addr);
    PyObject *empty = fire != NULL ? PyTuple_New(0) : NULL;
    self->call = empty != NULL ? gopy_template_new(fire, empty) : NULL;
    Py_XDECREF(fire);
    Py_XDECREF(empty);
    if (self->call == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->t = gopy_rt_timer_func(d, gopy_template_fire, self->call);
    if (self->t == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    Py_INCREF(self); /* armed: a reference until it has run */
    return (PyObject *)self;
}
