/*
 * A third-party extension using gopy's runtime through the capsule
 * (GOPY_CAPSULE), as an extension author would: it spawns C goroutines
 * that share channels with Python goroutines.  Built by tests/conftest.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define GOPY_CAPSULE
#include <gopy.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    gopy_chan *in, *out;
} pipe_ends;

/* Receive int64s from in until it closes, send each doubled on out, then
 * close out. */
static void doubler(void *arg)
{
    pipe_ends *p = arg;
    int64_t v;
    while (gopy_chan_recv(p->in, &v)) {
        v *= 2;
        gopy_chan_send(p->out, &v);
    }
    gopy_chan_close(p->out);
    gopy_chan_release(p->in);
    gopy_chan_release(p->out);
    free(p);
}

static PyObject *start_doubler(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *in_h, *out_h;
    if (!PyArg_ParseTuple(args, "OO", &in_h, &out_h))
        return NULL;
    pipe_ends *p = malloc(sizeof *p);
    if (p == NULL)
        return PyErr_NoMemory();
    p->in = PyLong_AsVoidPtr(in_h);
    p->out = PyLong_AsVoidPtr(out_h);
    if (PyErr_Occurred()) {
        free(p);
        return NULL;
    }
    /* The goroutine outlives this call: it holds references of its own. */
    gopy_chan_retain(p->in);
    gopy_chan_retain(p->out);
    if (gopy_go(doubler, p) != 0) {
        gopy_chan_release(p->in);
        gopy_chan_release(p->out);
        free(p);
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

/* n C goroutines each add 1 to a counter under a gopy mutex, and a wait
 * group joins them; the GIL is released while waiting. */
static gopy_mutex *mu;
static gopy_waitgroup *wg;
static int64_t counter;

static void adder(void *arg)
{
    int64_t times = (int64_t)(intptr_t)arg;
    for (int64_t i = 0; i < times; i++) {
        gopy_mutex_lock(mu);
        counter++;
        gopy_mutex_unlock(mu);
        if (i % 64 == 0)
            gopy_yield();
    }
    gopy_waitgroup_done(wg);
}

static PyObject *count_with_mutex(PyObject *self, PyObject *args)
{
    (void)self;
    int n, small = 0; /* small: start them with gopy_go_small */
    long long times;
    if (!PyArg_ParseTuple(args, "iL|p", &n, &times, &small))
        return NULL;
    counter = 0;
    mu = gopy_mutex_make();
    wg = gopy_waitgroup_make();
    gopy_waitgroup_add(wg, n);
    for (int i = 0; i < n; i++)
        (small ? gopy_go_small : gopy_go)(adder, (void *)(intptr_t)times);
    Py_BEGIN_ALLOW_THREADS
    gopy_waitgroup_wait(wg);
    Py_END_ALLOW_THREADS
    gopy_mutex_free(mu);
    gopy_waitgroup_free(wg);
    return PyLong_FromLongLong(counter);
}

/* A C goroutine offloads a call: how often it ran, and whether on another
 * thread than the goroutine's. */
typedef struct {
    pthread_t goroutine, call;
    int calls;
    gopy_waitgroup *wg;
} offload_probe;

static void probe_call(void *arg)
{
    offload_probe *p = arg;
    p->call = pthread_self();
    p->calls++;
}

static void probe_goroutine(void *arg)
{
    offload_probe *p = arg;
    p->goroutine = pthread_self();
    gopy_offload(probe_call, p);
    gopy_waitgroup_done(p->wg);
}

static PyObject *offload_probe_run(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    offload_probe p = {.wg = gopy_waitgroup_make()};
    gopy_waitgroup_add(p.wg, 1);
    if (gopy_go(probe_goroutine, &p) != 0) {
        gopy_waitgroup_free(p.wg);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    gopy_waitgroup_wait(p.wg);
    Py_END_ALLOW_THREADS
    gopy_waitgroup_free(p.wg);
    return Py_BuildValue("(iO)", p.calls,
                         pthread_equal(p.goroutine, p.call) ? Py_False : Py_True);
}

static PyMethodDef methods[] = {
    {"start_doubler", start_doubler, METH_VARARGS, NULL},
    {"count_with_mutex", count_with_mutex, METH_VARARGS, NULL},
    {"offload_probe", offload_probe_run, METH_NOARGS, NULL},
    {NULL},
};

static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "capsule_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_capsule_ext(void)
{
    if (gopy_import() < 0)
        return NULL;
    return PyModule_Create(&def);
}
