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

#include <math.h>

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

static PyMethodDef hooks_methods[] = {
    {"in_goroutine", in_goroutine, METH_NOARGS,
     "in_goroutine() -> bool\n\nIs the caller a Python goroutine (one that can park)?"},
    {"wrap_time_sleep", wrap_time_sleep, METH_O,
     "wrap_time_sleep(original) -> function\n\ntime.sleep's replacement: parks inside a "
     "goroutine, calls original elsewhere."},
    {NULL},
};

int gopy_hooks_init(PyObject *m)
{
    return PyModule_AddFunctions(m, hooks_methods);
}
