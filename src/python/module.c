/*
 * module.c -- the gopy._gopy extension module: module functions, types,
 * exceptions, the C API capsule, and lifecycle (subinterpreters refused,
 * fork, interpreter exit).
 */
#include "binding.h"

gopy_state_t gopy_state;
gopy_names_t gopy_names;

static int names_init(void)
{
    static const struct {
        PyObject **slot;
        const char *name;
    } names[] = {
        {&gopy_names.add_note, "add_note"},
        {&gopy_names.excepthook, "excepthook"},
        {&gopy_names._others_can_act, "_others_can_act"},
        {&gopy_names.from_buffer_copy, "from_buffer_copy"},
        {&gopy_names.value, "value"},
        {&gopy_names.sizeof_, "sizeof"},
        {&gopy_names._SimpleCData, "_SimpleCData"},
        {&gopy_names.timestamp, "timestamp"},
        {&gopy_names.total_seconds, "total_seconds"},
        {&gopy_names._run, "_run"},
        {&gopy_names.fileno, "fileno"},
        {&gopy_names.gettimeout, "gettimeout"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((*names[i].slot = PyUnicode_InternFromString(names[i].name)) == NULL)
            return -1;
    return 0;
}

/* ---- goroutines -------------------------------------------------------------- */

static PyObject *mod_go(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                        PyObject *kwnames)
{
    (void)self;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "go() needs a function to run");
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "go(): %.100s object is not callable",
                     Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    PyObject *pargs = PyTuple_New(nargs - 1);
    if (pargs == NULL)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++)
        PyTuple_SET_ITEM(pargs, i - 1, Py_NewRef(args[i]));
    PyObject *kwargs = NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        kwargs = PyDict_New();
        if (kwargs == NULL) {
            Py_DECREF(pargs);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                Py_DECREF(pargs);
                Py_DECREF(kwargs);
                return NULL;
            }
        }
    }
    int r = gopy_spawn(args[0], pargs, kwargs);
    Py_DECREF(pargs);
    Py_XDECREF(kwargs);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* go_c: a C function run as a goroutine.  keep holds the Python objects
 * the pointers came from (a ctypes function must outlive its calls); it
 * is dropped when fn returns, from wherever that is. */
typedef struct {
    void (*fn)(void *);
    void *arg;
    PyObject *keep;
} c_call;

static void run_c_call(void *p)
{
    c_call call = *(c_call *)p;
    free(p);
    call.fn(call.arg);
    gopy_decref_anywhere(call.keep);
}

static PyObject *mod_go_c(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *fnobj, *argobj, *keep;
    if (!PyArg_ParseTuple(args, "O!OO:_go_c", &PyLong_Type, &fnobj, &argobj, &keep))
        return NULL;
    if (gopy_long_is_negative(fnobj) ||
        (argobj != Py_None && (!PyLong_Check(argobj) || gopy_long_is_negative(argobj)))) {
        PyErr_SetString(PyExc_ValueError, "go_c: addresses must be non-negative ints");
        return NULL;
    }
    void *fn = PyLong_AsVoidPtr(fnobj);
    if (fn == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "go_c: null function pointer");
        return NULL;
    }
    void *arg = argobj == Py_None ? NULL : PyLong_AsVoidPtr(argobj);
    if (arg == NULL && PyErr_Occurred())
        return NULL;
    c_call *call = malloc(sizeof *call);
    if (call == NULL)
        return PyErr_NoMemory();
    /* A data pointer to a function pointer: fine on every platform gopy
     * runs on (POSIX requires it for dlsym). */
    *(void **)&call->fn = fn;
    call->arg = arg;
    call->keep = Py_NewRef(keep);
    if (gopy_go(run_c_call, call) != 0) {
        Py_DECREF(keep);
        free(call);
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *mod_offload(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    (void)self;
    return gopy_offload_impl(args, nargs, kwnames);
}

static PyObject *mod_select(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames)
{
    (void)self;
    bool block = true;
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            if (!PyUnicode_Check(name) || PyUnicode_CompareWithASCIIString(name, "default") != 0) {
                PyErr_Format(PyExc_TypeError, "select() got an unexpected keyword argument %R",
                             name);
                return NULL;
            }
            int t = PyObject_IsTrue(args[nargs + i]);
            if (t < 0)
                return NULL;
            block = !t;
        }
    }
    return gopy_select_impl(args, nargs, block);
}

static PyObject *mod_sleep(PyObject *self, PyObject *d)
{
    (void)self;
    return gopy_sleep_impl(d);
}

static PyObject *mod_after(PyObject *self, PyObject *d)
{
    (void)self;
    return gopy_after_impl(d);
}

static PyObject *mod_tick(PyObject *self, PyObject *d)
{
    (void)self;
    return gopy_tick_impl(d);
}

static PyObject *mod_after_func(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    return gopy_after_func_impl(args, nargs);
}

/* ---- gopy.runtime ---------------------------------------------------------------- */

static PyObject *mod_ts_impl_shift(PyObject *Py_UNUSED(self), PyObject *args)
{
    unsigned long built_with, running;
    if (!PyArg_ParseTuple(args, "kk:_ts_impl_shift", &built_with, &running))
        return NULL;
    return PyLong_FromSsize_t(gopy_ts_impl_shift(built_with, running));
}

static PyObject *mod_gomaxprocs(PyObject *self, PyObject *args)
{
    (void)self;
    int n = 0;
    if (!PyArg_ParseTuple(args, "|i:gomaxprocs", &n))
        return NULL;
    return PyLong_FromLong(gopy_gomaxprocs(n));
}

static PyObject *mod_num_cpu(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLong(gopy_rt_num_cpu());
}

static PyObject *mod_num_goroutine(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLongLong(gopy_rt_num_goroutine());
}

static int op_yield(void *arg, bool block)
{
    (void)arg;
    if (!block)
        return GOPY_EAGAIN; /* yield with the GIL released */
    gopy_yield();
    return GOPY_OK;
}

static PyObject *mod_gosched(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    gopy_call_blocking(op_yield, NULL);
    Py_RETURN_NONE;
}

static PyObject *mod_lock_os_thread(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    gopy_rt_lock_os_thread();
    Py_RETURN_NONE;
}

static PyObject *mod_unlock_os_thread(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    gopy_rt_unlock_os_thread();
    Py_RETURN_NONE;
}

static PyObject *mod_set_stall_warning(PyObject *self, PyObject *d)
{
    (void)self;
    int64_t ns;
    if (gopy_duration_ns(d, &ns) < 0)
        return NULL;
    gopy_rt_set_stall_warning(ns > 0 ? ns : 0);
    Py_RETURN_NONE;
}

static PyObject *mod_set_preempt_slice(PyObject *self, PyObject *d)
{
    (void)self;
    int64_t ns;
    if (gopy_duration_ns(d, &ns) < 0)
        return NULL;
    int64_t old = gopy_rt_preempt_slice();
    gopy_rt_set_preempt_slice(ns > 0 ? ns : 0);
    return PyFloat_FromDouble((double)old / 1e9);
}

static PyObject *mod_goid(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    return PyLong_FromLongLong(gopy_rt_goid());
}

static PyObject *mod_stats(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    gopy_rt_stats s;
    gopy_rt_get_stats(&s);
    return Py_BuildValue(
        "{sLsLsLsLsLsLsLsLsLsLsLsLsssLsLsLsLsLsL}", "goroutines", (long long)s.goroutines, "ms",
        (long long)s.ms, "ms_idle", (long long)s.ms_idle, "ps", (long long)s.ps, "gomaxprocs",
        (long long)s.gomaxprocs, "context_switches", (long long)s.context_switches, "steals",
        (long long)s.steals, "handoffs", (long long)s.handoffs, "host_recruits",
        (long long)s.host_recruits, "timers", (long long)s.timers, "host_queue",
        (long long)s.host_queue, "preemptions", (long long)s.preemptions, "stack_guard", s.stack_guard, "stack_size_c",
        (long long)s.stack_size_c, "stack_size_python", (long long)s.stack_size_host,
        "netpoll_waiters", (long long)s.netpoll_waiters, "offload_threads",
        (long long)s.offload_threads, "offload_busy", (long long)s.offload_busy,
        "offload_queued", (long long)s.offload_queued);
}

typedef struct {
    PyObject *list;
    int failed;
} goroutine_walk;

static void collect_goroutine(const gopy_goroutine_info *info, void *arg)
{
    goroutine_walk *w = arg;
    if (w->failed)
        return;
    PyObject *where;
    if (info->host && info->gstate != NULL) {
        where = gopy_goroutine_where(info->gstate);
        if (where == NULL) {
            w->failed = 1;
            return;
        }
    } else {
        where = Py_BuildValue("(OO)", Py_None, Py_None);
    }
    PyObject *d = where == NULL ? NULL : Py_BuildValue(
        "{sLsssssKsdsdsLsOsOsO}", "id", (long long)info->goid, "state", info->state, "wait",
        gopy_rt_wait_reason_string(info->wait_reason), "wait_obj",
        (unsigned long long)(uintptr_t)info->wait_obj, "wait_seconds", info->wait_ns / 1e9,
        "sleep_until", info->sleep_until_ns / 1e9, "home_m", (long long)info->home_m,
        "python", info->host ? Py_True : Py_False, "frames", PyTuple_GET_ITEM(where, 0),
        "created_by", PyTuple_GET_ITEM(where, 1));
    Py_XDECREF(where);
    if (d == NULL || PyList_Append(w->list, d) < 0)
        w->failed = 1;
    Py_XDECREF(d);
}

static PyObject *mod_goroutines(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    goroutine_walk w = {PyList_New(0), 0};
    if (w.list == NULL)
        return NULL;
    gopy_rt_foreach_goroutine(collect_goroutine, &w);
    if (w.failed) {
        Py_DECREF(w.list);
        return NULL;
    }
    return w.list;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static PyObject *mod_shutdown(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    gopy_host_stop();
    Py_RETURN_NONE;
}

static PyObject *mod_after_fork_child(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    /* The child's threads are gone, and CPython has deleted their thread
     * states: start a fresh runtime; the new Ms make new ones. */
    gopy_rt_after_fork_child();
    gopy_preempt_after_fork_child();
    gopy_state.main_thread = PyThread_get_thread_ident();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"go", (PyCFunction)(void (*)(void))mod_go, METH_FASTCALL | METH_KEYWORDS,
     "go($module, fn, /, *args, **kwargs)\n--\n\nRun fn(*args, **kwargs) in a new goroutine, in "
     "a copy of the current contextvars context."},
    {"_go_c", mod_go_c, METH_VARARGS, "_go_c(fn_address, arg_address, keep): see gopy.go_c"},
    {"_ts_impl_shift", mod_ts_impl_shift, METH_VARARGS,
     "_ts_impl_shift(built_with, running) -> int: how far the thread state's internal fields "
     "lie from where the headers of CPython built_with put them, in CPython running "
     "(PY_VERSION_HEX values); for the tests."},
    {"offload", (PyCFunction)(void (*)(void))mod_offload, METH_FASTCALL | METH_KEYWORDS,
     "offload($module, fn, /, *args, **kwargs)\n--\n\nIn a goroutine: call fn(*args, **kwargs) "
     "on a helper thread, in a copy of the current contextvars context, and park the goroutine "
     "until it returns; return its value or raise its exception.  For calls gopy cannot see into "
     "(a C library that blocks, a long computation that releases the GIL).  Elsewhere: call fn "
     "directly."},
    {"select", (PyCFunction)(void (*)(void))mod_select, METH_FASTCALL | METH_KEYWORDS,
     "select($module, /, *cases, default=False)\n--\n\nGo's select over Recv and Send cases: "
     "returns (index, value, ok).  With default=True and nothing ready, returns (-1, None, "
     "False)."},
    {"sleep", mod_sleep, METH_O,
     "sleep($module, d, /)\n--\n\nPause the calling goroutine for d seconds."},
    {"after", mod_after, METH_O,
     "after($module, d, /)\n--\n\nA RecvChan that receives time.time() once, after d."},
    {"tick", mod_tick, METH_O,
     "tick($module, d, /)\n--\n\nA RecvChan that receives the time every d (None when d <= 0)."},
    {"after_func", (PyCFunction)(void (*)(void))mod_after_func, METH_FASTCALL,
     "after_func($module, d, fn, /, *args)\n--\n\nRun fn(*args) in its own goroutine after d; "
     "returns the Timer."},
    {"gomaxprocs", mod_gomaxprocs, METH_VARARGS,
     "gomaxprocs($module, n=0, /)\n--\n\nSet the number of Ps when n >= 1; return the previous "
     "one."},
    {"num_cpu", mod_num_cpu, METH_NOARGS,
     "num_cpu($module, /)\n--\n\nThe number of logical CPUs (an int)."},
    {"num_goroutine", mod_num_goroutine, METH_NOARGS,
     "num_goroutine($module, /)\n--\n\nThe number of live goroutines (an int)."},
    {"gosched", mod_gosched, METH_NOARGS, "gosched($module, /)\n--\n\nLet other goroutines run."},
    {"lock_os_thread", mod_lock_os_thread, METH_NOARGS,
     "lock_os_thread($module, /)\n--\n\nDedicate the current OS thread to this goroutine."},
    {"unlock_os_thread", mod_unlock_os_thread, METH_NOARGS,
     "unlock_os_thread($module, /)\n--\n\nUndo lock_os_thread()."},
    {"goid", mod_goid, METH_NOARGS, "goid($module, /)\n--\n\nThis goroutine's id (0 outside one)."},
    {"set_stall_warning", mod_set_stall_warning, METH_O,
     "set_stall_warning($module, d, /)\n--\n\nWarn on stderr when a thread stays in one call "
     "longer than d seconds while goroutines bound to it wait (0: never; default 5 s, or the "
     "GOPY_STALL_WARNING environment variable)."},
    {"set_preempt_slice", mod_set_preempt_slice, METH_O,
     "set_preempt_slice($module, d, /)\n--\n\nPreempt a goroutine computing in Python for longer "
     "than d seconds while goroutines of its thread wait (0: never; default 0.01, or the "
     "GOPY_PREEMPT_SLICE environment variable).  Returns the previous slice."},
    {"stats", mod_stats, METH_NOARGS,
     "stats($module, /)\n--\n\nThe runtime's counters, as a dict."},
    {"_goroutines", mod_goroutines, METH_NOARGS, "live goroutines, for runtime.stack()"},
    {"_shutdown", mod_shutdown, METH_NOARGS, "interpreter exit: start no more Python work"},
    {"_after_fork_child", mod_after_fork_child, METH_NOARGS, "fresh runtime in a fork child"},
    {NULL},
};

int gopy_add_type(PyObject *m, PyTypeObject *type, const char *name)
{
    if (PyType_Ready(type) < 0)
        return -1;
    return name != NULL ? PyModule_AddObjectRef(m, name, (PyObject *)type) : 0;
}

static int module_exec(PyObject *m)
{
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "gopy cannot be imported in a subinterpreter: its runtime is "
                        "process-wide");
        return -1;
    }
    if (gopy_state.module != NULL) {
        PyErr_SetString(PyExc_ImportError, "gopy._gopy cannot be loaded twice");
        return -1;
    }
    if (names_init() < 0)
        return -1;
    gopy_state.ClosedChannelError = PyErr_NewExceptionWithDoc(
        "gopy.ClosedChannelError", "Send on, or second close of, a closed channel.",
        PyExc_RuntimeError, NULL);
    gopy_state.DeadlockError = PyErr_NewExceptionWithDoc(
        "gopy.DeadlockError",
        "All goroutines are asleep: the blocked call can never return.", PyExc_RuntimeError,
        NULL);
    if (gopy_state.ClosedChannelError == NULL || gopy_state.DeadlockError == NULL ||
        PyModule_AddObjectRef(m, "ClosedChannelError", gopy_state.ClosedChannelError) < 0 ||
        PyModule_AddObjectRef(m, "DeadlockError", gopy_state.DeadlockError) < 0)
        return -1;
    if (gopy_add_type(m, &Chan_Type, "Chan") < 0 || gopy_add_type(m, &SendChan_Type, "SendChan") < 0 ||
        gopy_add_type(m, &RecvChan_Type, "RecvChan") < 0 || gopy_add_type(m, &Recv_Type, "Recv") < 0 ||
        gopy_add_type(m, &Send_Type, "Send") < 0 || gopy_add_type(m, &Timer_Type, "Timer") < 0 ||
        gopy_add_type(m, &Ticker_Type, "Ticker") < 0)
        return -1;
    if (gopy_sync_init(m) < 0 || gopy_atomic_init(m) < 0 || gopy_netpoll_init(m) < 0)
        return -1;
    PyObject *capsule =
        PyCapsule_New((void *)gopy_api_table(), GOPY_CAPSULE_NAME, NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        return -1;
    }
    /* Signals are handled by the main thread: remember which it is. */
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *main = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = main ? PyObject_GetAttrString(main, "ident") : NULL;
    Py_XDECREF(threading);
    Py_XDECREF(main);
    if (ident == NULL)
        return -1;
    gopy_state.main_thread = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    if (PyErr_Occurred())
        return -1;
    gopy_state.module = m;
    gopy_state.interp = PyInterpreterState_Get();
    if (gopy_compat_init() < 0 || gopy_context_init(m) < 0 || gopy_errgroup_init(m) < 0 ||
        gopy_hooks_init(m) < 0 || gopy_preempt_init() < 0)
        return -1;
    return gopy_goroutine_init();
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    /* Safe without the GIL (docs/free-threading.md): a free-threaded
     * build keeps it off, and Python goroutines run in parallel. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gopy._gopy",
    .m_doc = "gopy's C runtime binding; use the gopy package.",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC PyInit__gopy(void); /* found by name by the import system */

PyMODINIT_FUNC PyInit__gopy(void)
{
    return PyModuleDef_Init(&module_def);
}
