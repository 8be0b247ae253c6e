/*
 * sync.c -- gopy's sync types: Mutex, RWMutex (and its rlocker()),
 * WaitGroup, Once, once_func / once_value, Cond, Pool and Map.
 *
 * Each wraps its runtime object (src/runtime: mutex.c, rwmutex.c,
 * waitgroup.c, once.c, cond.c, pool.c, map.c); every operation that can
 * block goes through gopy_call_blocking, so that a goroutine parks and a
 * thread blocks with the GIL released (Ctrl-C works on the main thread).
 *
 * gopy_call_blocking may return -1 with an exception although the
 * operation itself completed (a signal handler raised while it did):
 * each blocking operation here records that it completed and undoes it
 * then (unlocks what it locked, gives up a Cond ticket), so that an
 * exception always means "nothing happened".
 *
 * Go panics on misuse; these raise: RuntimeError for unlocking what is
 * not locked, ValueError for a negative WaitGroup counter.
 */
#include "binding.h"

#include "structmember.h"

/* For constructors and calls that take no arguments: 0, or -1 with a
 * TypeError set. */
static int no_arguments(const char *name, PyObject *args, PyObject *kwds)
{
    if ((args == NULL || PyTuple_GET_SIZE(args) == 0) && (kwds == NULL || PyDict_GET_SIZE(kwds) == 0))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes no arguments", name);
    return -1;
}

/* ---- Mutex ----------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gopy_mutex *m;
    PyObject *weakreflist;
} MutexObject;

typedef struct {
    gopy_mutex *m;
    bool locked; /* the operation took the lock */
} mutex_op;

static int op_mutex_lock(void *arg, bool block)
{
    mutex_op *op = arg;
    int status = GOPY_OK;
    if (!block)
        status = gopy_mutex_trylock(op->m) ? GOPY_OK : GOPY_EAGAIN;
    else
        status = gopy_rt_mutex_lock(op->m);
    op->locked = status == GOPY_OK;
    return status;
}

/* Lock m, parking or blocking as the caller's kind says.  0, or -1 with an
 * exception set and m not locked. */
static int mutex_lock(gopy_mutex *m)
{
    if (gopy_mutex_trylock(m))
        return 0;
    mutex_op op = {m, false};
    int status = gopy_call_blocking(op_mutex_lock, &op);
    if (status == GOPY_OK)
        return 0;
    if (op.locked)
        (void)gopy_rt_mutex_unlock(m); /* completed, but we raise */
    if (status > 0)
        gopy_status_error(status);
    return -1;
}

static int mutex_unlock(gopy_mutex *m)
{
    int status = gopy_rt_mutex_unlock(m);
    return status == GOPY_OK ? 0 : gopy_status_error(status);
}

static PyObject *Mutex_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (no_arguments(type->tp_name, args, kwds) < 0)
        return NULL;
    MutexObject *self = (MutexObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if ((self->m = gopy_mutex_make()) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void Mutex_dealloc(MutexObject *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    gopy_mutex_free(self->m);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Mutex_lock(MutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (mutex_lock(self->m) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Mutex_unlock(MutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (mutex_unlock(self->m) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Mutex_try_lock(MutexObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(gopy_mutex_trylock(self->m));
}

static PyObject *Mutex_enter(MutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (mutex_lock(self->m) < 0)
        return NULL;
    return Py_NewRef(self);
}

static PyObject *Mutex_exit(MutexObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (mutex_unlock(self->m) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef Mutex_methods[] = {
    {"lock", (PyCFunction)Mutex_lock, METH_NOARGS,
     "lock($self, /)\n--\n\nLock the mutex, parking the goroutine (blocking the thread) until it "
     "is free."},
    {"unlock", (PyCFunction)Mutex_unlock, METH_NOARGS,
     "unlock($self, /)\n--\n\nUnlock it; RuntimeError if it is not locked.  Any goroutine or "
     "thread may unlock a mutex another one locked (as in Go)."},
    {"try_lock", (PyCFunction)Mutex_try_lock, METH_NOARGS,
     "try_lock($self, /)\n--\n\nLock it if that is possible without waiting; True if it did."},
    {"__enter__", (PyCFunction)Mutex_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nlock(); returns the mutex."},
    {"__exit__", (PyCFunction)(void (*)(void))Mutex_exit, METH_FASTCALL,
     "__exit__($self, /, *exc)\n--\n\nunlock()."},
    {NULL},
};

PyTypeObject Mutex_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Mutex",
    .tp_basicsize = sizeof(MutexObject),
    .tp_dealloc = (destructor)Mutex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Mutex()\n--\n\nGo's sync.Mutex: a mutual exclusion lock whose waiters park (normal "
              "and starvation modes: no waiter waits more than about a millisecond once others "
              "hammer it).  `with m:` locks and unlocks.",
    .tp_weaklistoffset = offsetof(MutexObject, weakreflist),
    .tp_methods = Mutex_methods,
    .tp_new = Mutex_new,
};

/* ---- RWMutex ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gopy_rwmutex *rw;
    PyObject *weakreflist;
} RWMutexObject;

typedef struct {
    gopy_rwmutex *rw;
    bool locked;
} rwmutex_op;

static int op_rw_lock(void *arg, bool block)
{
    rwmutex_op *op = arg;
    int status = !block ? (gopy_rwmutex_trylock(op->rw) ? GOPY_OK : GOPY_EAGAIN)
                        : gopy_rt_rwmutex_lock(op->rw);
    op->locked = status == GOPY_OK;
    return status;
}

static int op_rw_rlock(void *arg, bool block)
{
    rwmutex_op *op = arg;
    int status = !block ? (gopy_rwmutex_tryrlock(op->rw) ? GOPY_OK : GOPY_EAGAIN)
                        : gopy_rt_rwmutex_rlock(op->rw);
    op->locked = status == GOPY_OK;
    return status;
}

/* write: the write lock, else the read lock.  0, or -1 with an exception
 * set and nothing held. */
static int rw_lock(gopy_rwmutex *rw, bool write)
{
    if (write ? gopy_rwmutex_trylock(rw) : gopy_rwmutex_tryrlock(rw))
        return 0;
    rwmutex_op op = {rw, false};
    int status = gopy_call_blocking(write ? op_rw_lock : op_rw_rlock, &op);
    if (status == GOPY_OK)
        return 0;
    if (op.locked)
        (void)(write ? gopy_rt_rwmutex_unlock(rw) : gopy_rt_rwmutex_runlock(rw));
    if (status > 0)
        gopy_status_error(status);
    return -1;
}

static int rw_unlock(gopy_rwmutex *rw, bool write)
{
    int status = write ? gopy_rt_rwmutex_unlock(rw) : gopy_rt_rwmutex_runlock(rw);
    if (status == GOPY_OK)
        return 0;
    if (status == GOPY_ENOTLOCKED) {
        PyErr_SetString(PyExc_RuntimeError, write ? "sync: Unlock of unlocked RWMutex"
                                                  : "sync: RUnlock of unlocked RWMutex");
        return -1;
    }
    return gopy_status_error(status);
}

static PyObject *RWMutex_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (no_arguments(type->tp_name, args, kwds) < 0)
        return NULL;
    RWMutexObject *self = (RWMutexObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if ((self->rw = gopy_rwmutex_make()) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void RWMutex_dealloc(RWMutexObject *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    gopy_rwmutex_free(self->rw);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *RWMutex_lock(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_lock(self->rw, true) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *RWMutex_unlock(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_unlock(self->rw, true) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *RWMutex_rlock(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_lock(self->rw, false) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *RWMutex_runlock(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_unlock(self->rw, false) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *RWMutex_try_lock(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(gopy_rwmutex_trylock(self->rw));
}

static PyObject *RWMutex_try_rlock(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(gopy_rwmutex_tryrlock(self->rw));
}

static PyObject *RWMutex_enter(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_lock(self->rw, true) < 0)
        return NULL;
    return Py_NewRef(self);
}

static PyObject *RWMutex_exit(RWMutexObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (rw_unlock(self->rw, true) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* rlocker(): Go's RLocker, a Locker whose lock/unlock are rlock/runlock. */
typedef struct {
    PyObject_HEAD
    RWMutexObject *rw;
} RLockerObject;

PyTypeObject RLocker_Type;

static PyObject *RWMutex_rlocker(RWMutexObject *self, PyObject *Py_UNUSED(ignored))
{
    RLockerObject *r = PyObject_New(RLockerObject, &RLocker_Type);
    if (r == NULL)
        return NULL;
    r->rw = (RWMutexObject *)Py_NewRef(self);
    return (PyObject *)r;
}

static PyMethodDef RWMutex_methods[] = {
    {"lock", (PyCFunction)RWMutex_lock, METH_NOARGS,
     "lock($self, /)\n--\n\nTake the write lock.  From the moment a writer waits, new readers "
     "wait behind it."},
    {"unlock", (PyCFunction)RWMutex_unlock, METH_NOARGS,
     "unlock($self, /)\n--\n\nRelease the write lock; RuntimeError if it is not held."},
    {"rlock", (PyCFunction)RWMutex_rlock, METH_NOARGS,
     "rlock($self, /)\n--\n\nTake a read lock (shared with other readers)."},
    {"runlock", (PyCFunction)RWMutex_runlock, METH_NOARGS,
     "runlock($self, /)\n--\n\nRelease a read lock; RuntimeError if none is held."},
    {"try_lock", (PyCFunction)RWMutex_try_lock, METH_NOARGS,
     "try_lock($self, /)\n--\n\nTake the write lock if that is possible without waiting; True if "
     "it did."},
    {"try_rlock", (PyCFunction)RWMutex_try_rlock, METH_NOARGS,
     "try_rlock($self, /)\n--\n\nTake a read lock if that is possible without waiting; True if "
     "it did."},
    {"rlocker", (PyCFunction)RWMutex_rlocker, METH_NOARGS,
     "rlocker($self, /)\n--\n\nAn object (an RLocker) whose lock/unlock are this RWMutex's "
     "rlock/runlock (usable in `with` and as a Cond's locker)."},
    {"__enter__", (PyCFunction)RWMutex_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nlock() (the write lock); returns the RWMutex."},
    {"__exit__", (PyCFunction)(void (*)(void))RWMutex_exit, METH_FASTCALL,
     "__exit__($self, /, *exc)\n--\n\nunlock()."},
    {NULL},
};

PyTypeObject RWMutex_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.RWMutex",
    .tp_basicsize = sizeof(RWMutexObject),
    .tp_dealloc = (destructor)RWMutex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "RWMutex()\n--\n\nGo's sync.RWMutex: many readers or one writer; a waiting writer "
              "keeps new readers out (so do not rlock recursively).  `with rw:` takes the write "
              "lock, `with rw.rlocker():` a read lock.",
    .tp_weaklistoffset = offsetof(RWMutexObject, weakreflist),
    .tp_methods = RWMutex_methods,
    .tp_new = RWMutex_new,
};

static void RLocker_dealloc(RLockerObject *self)
{
    Py_DECREF(self->rw);
    PyObject_Free(self);
}

static PyObject *RLocker_lock(RLockerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_lock(self->rw->rw, false) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *RLocker_unlock(RLockerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_unlock(self->rw->rw, false) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *RLocker_enter(RLockerObject *self, PyObject *Py_UNUSED(ignored))
{
    if (rw_lock(self->rw->rw, false) < 0)
        return NULL;
    return Py_NewRef(self);
}

static PyObject *RLocker_exit(RLockerObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)args;
    (void)nargs;
    if (rw_unlock(self->rw->rw, false) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef RLocker_methods[] = {
    {"lock", (PyCFunction)RLocker_lock, METH_NOARGS,
     "lock($self, /)\n--\n\nThe RWMutex's rlock()."},
    {"unlock", (PyCFunction)RLocker_unlock, METH_NOARGS,
     "unlock($self, /)\n--\n\nThe RWMutex's runlock()."},
    {"__enter__", (PyCFunction)RLocker_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nlock(): the RWMutex's rlock(); returns the RLocker."},
    {"__exit__", (PyCFunction)(void (*)(void))RLocker_exit, METH_FASTCALL,
     "__exit__($self, /, *exc)\n--\n\nunlock(): the RWMutex's runlock()."},
    {NULL},
};

PyTypeObject RLocker_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.RLocker",
    .tp_basicsize = sizeof(RLockerObject),
    .tp_dealloc = (destructor)RLocker_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The read side of an RWMutex, from RWMutex.rlocker().",
    .tp_methods = RLocker_methods,
};

/* ---- WaitGroup --------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gopy_waitgroup *wg;
    PyObject *weakreflist;
} WaitGroupObject;

static int waitgroup_add(WaitGroupObject *self, int64_t delta)
{
    int status = gopy_rt_waitgroup_add(self->wg, delta);
    return status == GOPY_OK ? 0 : gopy_status_error(status);
}

static int op_wg_wait(void *arg, bool block)
{
    gopy_waitgroup *wg = arg;
    if (!block)
        return gopy_rt_waitgroup_count(wg) == 0 ? GOPY_OK : GOPY_EAGAIN;
    return gopy_rt_waitgroup_wait(wg);
}

static PyObject *WaitGroup_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (no_arguments(type->tp_name, args, kwds) < 0)
        return NULL;
    WaitGroupObject *self = (WaitGroupObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if ((self->wg = gopy_waitgroup_make()) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void WaitGroup_dealloc(WaitGroupObject *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    gopy_waitgroup_free(self->wg);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *WaitGroup_add(WaitGroupObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "add() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    long long delta = 1;
    if (nargs == 1) {
        if (!PyLong_Check(args[0])) {
            PyErr_Format(PyExc_TypeError, "WaitGroup.add() needs an int, not %.100s",
                         Py_TYPE(args[0])->tp_name);
            return NULL;
        }
        int overflow;
        delta = PyLong_AsLongLongAndOverflow(args[0], &overflow);
        if (delta == -1 && PyErr_Occurred())
            return NULL;
        if (overflow != 0 || delta > INT32_MAX || delta < -(long long)INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "sync: WaitGroup delta out of range");
            return NULL;
        }
    }
    if (waitgroup_add(self, delta) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *WaitGroup_done(WaitGroupObject *self, PyObject *Py_UNUSED(ignored))
{
    if (waitgroup_add(self, -1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *WaitGroup_wait(WaitGroupObject *self, PyObject *Py_UNUSED(ignored))
{
    int status = gopy_call_blocking(op_wg_wait, self->wg);
    if (status == GOPY_OK)
        Py_RETURN_NONE;
    /* A wait that completed while a signal handler raised needs no undo. */
    if (status > 0)
        gopy_status_error(status);
    return NULL;
}

/* The body of a WaitGroup.go goroutine: fn(*args, **kwargs), an escaping
 * exception reported (gopy.excepthook) before Done, so that nothing
 * waiting on the group can run on before the report. */
static PyObject *WaitGroup_run(WaitGroupObject *self, PyObject *args)
{
    PyObject *fn, *fargs, *fkwargs;
    if (!PyArg_ParseTuple(args, "OO!O:_run", &fn, &PyTuple_Type, &fargs, &fkwargs))
        return NULL;
    PyObject *r = PyObject_Call(fn, fargs, fkwargs == Py_None ? NULL : fkwargs);
    if (r == NULL)
        gopy_report_exception();
    Py_XDECREF(r);
    if (waitgroup_add(self, -1) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *WaitGroup_go(WaitGroupObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames)
{
    if (nargs < 1 || !PyCallable_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "WaitGroup.go() needs a function to run");
        return NULL;
    }
    PyObject *fargs = PyTuple_New(nargs - 1);
    if (fargs == NULL)
        return NULL;
    for (Py_ssize_t i = 1; i < nargs; i++)
        PyTuple_SET_ITEM(fargs, i - 1, Py_NewRef(args[i]));
    PyObject *kwargs = Py_NewRef(Py_None);
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nkw > 0) {
        Py_SETREF(kwargs, PyDict_New());
        for (Py_ssize_t i = 0; kwargs != NULL && i < nkw; i++)
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                Py_CLEAR(kwargs);
    }
    PyObject *run = kwargs != NULL ? PyObject_GetAttr((PyObject *)self, gopy_names._run) : NULL;
    PyObject *call = run != NULL ? PyTuple_Pack(3, args[0], fargs, kwargs) : NULL;
    Py_DECREF(fargs);
    Py_XDECREF(kwargs);
    PyObject *result = NULL;
    /* Add before the goroutine exists (Go: Add happens before Wait). */
    if (call != NULL && waitgroup_add(self, 1) == 0) {
        if (gopy_spawn(run, call, NULL) == 0)
            result = Py_NewRef(Py_None);
        else
            (void)gopy_rt_waitgroup_add(self->wg, -1); /* it never started */
    }
    Py_XDECREF(run);
    Py_XDECREF(call);
    return result;
}

static PyMethodDef WaitGroup_methods[] = {
    {"add", (PyCFunction)(void (*)(void))WaitGroup_add, METH_FASTCALL,
     "add($self, delta=1, /)\n--\n\nAdd delta to the counter; ValueError if it would go "
     "negative.  Waiters are released when it reaches 0."},
    {"done", (PyCFunction)WaitGroup_done, METH_NOARGS, "done($self, /)\n--\n\nadd(-1)."},
    {"wait", (PyCFunction)WaitGroup_wait, METH_NOARGS,
     "wait($self, /)\n--\n\nBlock until the counter is 0."},
    {"go", (PyCFunction)(void (*)(void))WaitGroup_go, METH_FASTCALL | METH_KEYWORDS,
     "go($self, fn, /, *args, **kwargs)\n--\n\nadd(1), run fn(*args, **kwargs) in a new "
     "goroutine, done() when it returns (an exception it raises goes to gopy.excepthook first)."},
    {"_run", (PyCFunction)WaitGroup_run, METH_VARARGS, "the body of go()'s goroutines"},
    {NULL},
};

PyTypeObject WaitGroup_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.WaitGroup",
    .tp_basicsize = sizeof(WaitGroupObject),
    .tp_dealloc = (destructor)WaitGroup_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "WaitGroup()\n--\n\nGo's sync.WaitGroup: wait for a collection of goroutines.",
    .tp_weaklistoffset = offsetof(WaitGroupObject, weakreflist),
    .tp_methods = WaitGroup_methods,
    .tp_new = WaitGroup_new,
};

/* ---- Once ---------------------------------------------------------------------- */

/* Who is calling: the goroutine, or the thread outside goroutines (a
 * recursive do() would deadlock, as in Go; we raise instead). */
static long long caller_id(void)
{
    int64_t goid = gopy_rt_goid();
    return goid != 0 ? goid : -(long long)PyThread_get_thread_ident();
}

typedef struct {
    gopy_once *o;
    bool run; /* begin said: run f */
} once_op;

static int op_once_begin(void *arg, bool block)
{
    once_op *op = arg;
    return gopy_rt_once_begin(op->o, block, &op->run);
}

/* Enter the once: 1 if the caller must run f (then call once_end), 0 if
 * f has run, -1 with an exception set.  *running_in is the id of the
 * caller running f (0: none), for the recursion check. */
static int once_begin(gopy_once *o, long long *running_in)
{
    if (gopy_rt_once_done(o))
        return 0;
    long long me = caller_id();
    if (__atomic_load_n(running_in, __ATOMIC_RELAXED) == me) {
        PyErr_SetString(PyExc_RuntimeError,
                        "sync: Once.do called from its own function (Go would deadlock)");
        return -1;
    }
    once_op op = {o, false};
    int status = gopy_call_blocking(op_once_begin, &op);
    if (status != GOPY_OK) {
        if (op.run)
            gopy_rt_once_end(o, false); /* won it, but we raise: the next one runs f */
        if (status > 0)
            gopy_status_error(status);
        return -1;
    }
    /* Atomic: other callers read it (free-threaded builds) while f runs. */
    if (op.run)
        __atomic_store_n(running_in, me, __ATOMIC_RELAXED);
    return op.run ? 1 : 0;
}

static void once_end(gopy_once *o, long long *running_in)
{
    __atomic_store_n(running_in, 0, __ATOMIC_RELAXED);
    gopy_rt_once_end(o, true);
}

typedef struct {
    PyObject_HEAD
    gopy_once *o;
    long long running_in;
    PyObject *weakreflist;
} OnceObject;

static PyObject *Once_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (no_arguments(type->tp_name, args, kwds) < 0)
        return NULL;
    OnceObject *self = (OnceObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if ((self->o = gopy_once_make()) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void Once_dealloc(OnceObject *self)
{
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    gopy_once_free(self->o);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Once_do(OnceObject *self, PyObject *fn)
{
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "Once.do() needs a callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    int run = once_begin(self->o, &self->running_in);
    if (run <= 0)
        return run < 0 ? NULL : Py_NewRef(Py_None);
    PyObject *r = PyObject_CallNoArgs(fn);
    /* Done even if fn raised (Go: a panicking f counts as done). */
    once_end(self->o, &self->running_in);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *Once_get_done(OnceObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(gopy_rt_once_done(self->o));
}

static PyMethodDef Once_methods[] = {
    {"do", (PyCFunction)Once_do, METH_O,
     "do($self, fn, /)\n--\n\nCall fn() if this is the first do() on this Once.  Callers "
     "arriving while it runs wait until it has returned; later calls return at once.  If fn "
     "raises, the Once still counts as done and the exception propagates to this caller."},
    {NULL},
};

static PyGetSetDef Once_getset[] = {
    {"done", (getter)Once_get_done, NULL, "True once fn has run", NULL},
    {NULL},
};

PyTypeObject Once_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Once",
    .tp_basicsize = sizeof(OnceObject),
    .tp_dealloc = (destructor)Once_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Once()\n--\n\nGo's sync.Once: do(fn) runs fn exactly once.",
    .tp_weaklistoffset = offsetof(OnceObject, weakreflist),
    .tp_methods = Once_methods,
    .tp_getset = Once_getset,
    .tp_new = Once_new,
};

/* once_func(fn) / once_value(fn): Go 1.21's OnceFunc / OnceValue.  The
 * first call runs fn; every call returns its value (once_value) or None
 * (once_func), or re-raises the exception fn raised, the same object each
 * time, with fn's own traceback. */
typedef struct {
    PyObject_HEAD
    gopy_once *o;
    long long running_in;
    bool returns_value;
    PyObject *fn;    /* until it has run */
    PyObject *value; /* what it returned, once run (once_value) */
    PyObject *exc;   /* what it raised, once run, else NULL */
    PyObject *tb;    /* exc's traceback as fn left it */
} OnceCallObject;

PyTypeObject OnceCall_Type;

static PyObject *once_call_make(PyObject *fn, bool returns_value)
{
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "%s() needs a callable, not %.100s",
                     returns_value ? "once_value" : "once_func", Py_TYPE(fn)->tp_name);
        return NULL;
    }
    OnceCallObject *self = PyObject_GC_New(OnceCallObject, &OnceCall_Type);
    if (self == NULL)
        return NULL;
    self->o = gopy_once_make();
    self->running_in = 0;
    self->returns_value = returns_value;
    self->fn = Py_NewRef(fn);
    self->value = self->exc = self->tb = NULL;
    PyObject_GC_Track(self);
    if (self->o == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static PyObject *gopy_once_func(PyObject *self, PyObject *fn)
{
    (void)self;
    return once_call_make(fn, false);
}

static PyObject *gopy_once_value(PyObject *self, PyObject *fn)
{
    (void)self;
    return once_call_make(fn, true);
}

static int OnceCall_traverse(OnceCallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fn);
    Py_VISIT(self->value);
    Py_VISIT(self->exc);
    Py_VISIT(self->tb);
    return 0;
}

static int OnceCall_clear(OnceCallObject *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->value);
    Py_CLEAR(self->exc);
    Py_CLEAR(self->tb);
    return 0;
}

static void OnceCall_dealloc(OnceCallObject *self)
{
    PyObject_GC_UnTrack(self);
    OnceCall_clear(self);
    gopy_once_free(self->o);
    PyObject_GC_Del(self);
}

static PyObject *OnceCall_call(OnceCallObject *self, PyObject *args, PyObject *kwds)
{
    if (no_arguments("a once function", args, kwds) < 0)
        return NULL;
    int run = once_begin(self->o, &self->running_in);
    if (run < 0)
        return NULL;
    if (run > 0) {
        /* Ours to run; what it leaves is published by once_end. */
        PyObject *fn = self->fn;
        self->fn = NULL;
        PyObject *r = fn != NULL ? PyObject_CallNoArgs(fn) : NULL;
        if (fn == NULL) /* cleared by the collector (a cycle being freed) */
            PyErr_SetString(PyExc_RuntimeError, "once function called after being cleared");
        Py_XDECREF(fn);
        if (r == NULL) {
            self->exc = gopy_err_fetch();
            self->tb = PyException_GetTraceback(self->exc);
        } else {
            self->value = r;
        }
        once_end(self->o, &self->running_in);
    }
    if (self->exc != NULL) {
        /* The same exception each time, with fn's traceback (not one that
         * grows by a frame per call); callers on other threads reset it
         * too, so under the lock. */
        GOPY_BEGIN_LOCKED(self);
        PyException_SetTraceback(self->exc, self->tb != NULL ? self->tb : Py_None);
        GOPY_END_LOCKED();
        gopy_err_restore(Py_NewRef(self->exc));
        return NULL;
    }
    return Py_NewRef(self->returns_value && self->value != NULL ? self->value : Py_None);
}

/* __call__ as a method too, for its text signature (see context.c). */
static PyMethodDef OnceCall_methods[] = {
    {"__call__", (PyCFunction)(void (*)(void))OnceCall_call,
     METH_VARARGS | METH_KEYWORDS | METH_COEXIST,
     "__call__($self, /)\n--\n\nRun the wrapped function the first time; its result (once_value) "
     "or None (once_func), or the exception it raised, every time."},
    {NULL},
};

PyTypeObject OnceCall_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.OnceFunc",
    .tp_basicsize = sizeof(OnceCallObject),
    .tp_dealloc = (destructor)OnceCall_dealloc,
    .tp_call = (ternaryfunc)OnceCall_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A function made by once_func / once_value: runs the wrapped function once.",
    .tp_methods = OnceCall_methods,
    .tp_traverse = (traverseproc)OnceCall_traverse,
    .tp_clear = (inquiry)OnceCall_clear,
};

/* ---- Cond ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gopy_cond *c;
    PyObject *l; /* the locker */
    PyObject *weakreflist;
} CondObject;

static PyObject *str_lock, *str_unlock;

/* l.lock() / l.unlock(), straight to the runtime for gopy's own locks. */
static int locker_call(PyObject *l, bool lock)
{
    if (Py_IS_TYPE(l, &Mutex_Type))
        return lock ? mutex_lock(((MutexObject *)l)->m) : mutex_unlock(((MutexObject *)l)->m);
    if (Py_IS_TYPE(l, &RWMutex_Type))
        return lock ? rw_lock(((RWMutexObject *)l)->rw, true)
                    : rw_unlock(((RWMutexObject *)l)->rw, true);
    if (Py_IS_TYPE(l, &RLocker_Type))
        return lock ? rw_lock(((RLockerObject *)l)->rw->rw, false)
                    : rw_unlock(((RLockerObject *)l)->rw->rw, false);
    PyObject *r = PyObject_CallMethodNoArgs(l, lock ? str_lock : str_unlock);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *Cond_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"l", NULL};
    PyObject *l;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Cond", kwlist, &l))
        return NULL;
    int has_lock = PyObject_HasAttr(l, str_lock), has_unlock = PyObject_HasAttr(l, str_unlock);
    if (!has_lock || !has_unlock) {
        PyErr_Format(PyExc_TypeError,
                     "Cond() needs a locker with lock() and unlock() (a Mutex, an RWMutex, "
                     "an rlocker()), not %.100s",
                     Py_TYPE(l)->tp_name);
        return NULL;
    }
    CondObject *self = (CondObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    /* The binding locks and unlocks l itself: no locker for the runtime. */
    if ((self->c = gopy_cond_make((gopy_locker){NULL, NULL, NULL})) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->l = Py_NewRef(l);
    return (PyObject *)self;
}

static int Cond_traverse(CondObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->l);
    return 0;
}

static int Cond_clear(CondObject *self)
{
    Py_CLEAR(self->l);
    return 0;
}

static void Cond_dealloc(CondObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Cond_clear(self);
    gopy_cond_free(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

typedef struct {
    gopy_cond *c;
    uint32_t ticket;
    bool woken;
} cond_op;

static int op_cond_wait(void *arg, bool block)
{
    cond_op *op = arg;
    int status = gopy_rt_cond_wait_ticket(op->c, op->ticket, block);
    op->woken = status == GOPY_OK;
    return status;
}

static PyObject *Cond_wait(CondObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->l == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Cond has no locker");
        return NULL;
    }
    PyObject *l = Py_NewRef(self->l);
    /* The ticket first, while the caller holds l: no signal sent after
     * this (by someone holding l) can be missed. */
    cond_op op = {self->c, gopy_rt_cond_ticket(self->c), false};
    if (locker_call(l, false) < 0) {
        gopy_rt_cond_abandon_ticket(self->c, op.ticket);
        Py_DECREF(l);
        return NULL;
    }
    int status = gopy_call_blocking(op_cond_wait, &op);
    if (status != GOPY_OK) {
        /* Interrupted (its ticket given up already), or woken as a signal
         * handler raised: then pass the signal on. */
        if (op.woken)
            gopy_rt_cond_abandon_ticket(self->c, op.ticket);
        if (status > 0)
            gopy_status_error(status);
    }
    /* Locked again on every path, as threading.Condition does. */
    PyObject *exc = status != GOPY_OK ? gopy_err_fetch() : NULL;
    int relocked = locker_call(l, true);
    Py_DECREF(l);
    if (relocked < 0) {
        if (exc != NULL) {
            PyObject *now = gopy_err_fetch();
            PyException_SetContext(now, exc); /* steals exc */
            gopy_err_restore(now);
        }
        return NULL;
    }
    if (exc != NULL) {
        gopy_err_restore(exc);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Cond_signal(CondObject *self, PyObject *Py_UNUSED(ignored))
{
    gopy_cond_signal(self->c);
    Py_RETURN_NONE;
}

static PyObject *Cond_broadcast(CondObject *self, PyObject *Py_UNUSED(ignored))
{
    gopy_cond_broadcast(self->c);
    Py_RETURN_NONE;
}

static PyMethodDef Cond_methods[] = {
    {"wait", (PyCFunction)Cond_wait, METH_NOARGS,
     "wait($self, /)\n--\n\nUnlock l, park until signal() or broadcast() (a wait begun before a "
     "signal is never missed by it), lock l again.  The caller holds l.  Wakeups can be "
     "spurious: re-check the condition in a loop."},
    {"signal", (PyCFunction)Cond_signal, METH_NOARGS,
     "signal($self, /)\n--\n\nWake the longest-waiting waiter, if any."},
    {"broadcast", (PyCFunction)Cond_broadcast, METH_NOARGS,
     "broadcast($self, /)\n--\n\nWake every waiter."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nCond[L] for annotations."},
    {NULL},
};

static PyMemberDef Cond_members[] = {
    {"l", T_OBJECT, offsetof(CondObject, l), READONLY, "the locker"},
    {NULL},
};

PyTypeObject Cond_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Cond",
    .tp_basicsize = sizeof(CondObject),
    .tp_dealloc = (destructor)Cond_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Cond(l)\n--\n\nGo's sync.Cond over the locker l (anything with lock() and "
              "unlock(): a Mutex, an RWMutex, an rlocker()).",
    .tp_traverse = (traverseproc)Cond_traverse,
    .tp_clear = (inquiry)Cond_clear,
    .tp_weaklistoffset = offsetof(CondObject, weakreflist),
    .tp_methods = Cond_methods,
    .tp_members = Cond_members,
    .tp_new = Cond_new,
};

/* ---- Pool -------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    gopy_pool *p; /* holds one reference per pooled object */
    PyObject *new_fn;
    PyObject *weakreflist;
} PoolObject;

static void release_pooled(void *item, void *ctx)
{
    (void)ctx;
    gopy_decref_anywhere(item);
}

static PyObject *Pool_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"new", NULL};
    PyObject *new_fn = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Pool", kwlist, &new_fn))
        return NULL;
    if (new_fn != Py_None && !PyCallable_Check(new_fn)) {
        PyErr_Format(PyExc_TypeError, "Pool(new=...) needs a callable or None, not %.100s",
                     Py_TYPE(new_fn)->tp_name);
        return NULL;
    }
    PoolObject *self = (PoolObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if ((self->p = gopy_pool_make(NULL, release_pooled, NULL)) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    self->new_fn = Py_NewRef(new_fn);
    return (PyObject *)self;
}

/* Pooled objects are not traversed: a cycle through the pool ends when a
 * cleanup (every full collection, gc.callbacks) drops them. */
static int Pool_traverse(PoolObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->new_fn);
    return 0;
}

static int Pool_clear(PoolObject *self)
{
    Py_CLEAR(self->new_fn);
    return 0;
}

static void Pool_dealloc(PoolObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Pool_clear(self);
    gopy_pool_free(self->p); /* releases what is pooled */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Pool.new, a new reference (None if unset); set under the pool's lock. */
static PyObject *new_fn_of(PoolObject *self)
{
    PyObject *fn;
    GOPY_BEGIN_LOCKED(self);
    fn = Py_NewRef(self->new_fn != NULL ? self->new_fn : Py_None);
    GOPY_END_LOCKED();
    return fn;
}

static PyObject *Pool_get(PoolObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *item = gopy_pool_get(self->p); /* the pool's reference, now ours */
    if (item != NULL)
        return item;
    PyObject *new_fn = new_fn_of(self);
    item = new_fn != Py_None ? PyObject_CallNoArgs(new_fn) : Py_NewRef(Py_None);
    Py_DECREF(new_fn);
    return item;
}

static PyObject *Pool_put(PoolObject *self, PyObject *x)
{
    if (x != Py_None) /* Go: Put(nil) does nothing */
        gopy_pool_put(self->p, Py_NewRef(x));
    Py_RETURN_NONE;
}

static PyObject *Pool_get_new(PoolObject *self, void *Py_UNUSED(closure))
{
    return new_fn_of(self);
}

static int Pool_set_new(PoolObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL)
        value = Py_None;
    if (value != Py_None && !PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "Pool.new must be a callable or None");
        return -1;
    }
    PyObject *old;
    GOPY_BEGIN_LOCKED(self);
    old = self->new_fn;
    self->new_fn = Py_NewRef(value);
    GOPY_END_LOCKED();
    Py_XDECREF(old); /* outside the lock: it may run any code */
    return 0;
}

static PyMethodDef Pool_methods[] = {
    {"get", (PyCFunction)Pool_get, METH_NOARGS,
     "get($self, /)\n--\n\nA pooled object (removed from the pool), else new() if the pool has "
     "one, else None."},
    {"put", (PyCFunction)Pool_put, METH_O,
     "put($self, x, /)\n--\n\nAdd x to the pool (None is ignored).  The pool may drop it at any "
     "time (every full garbage collection moves the pool's objects to a victim cache, the next "
     "one drops them)."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nPool[T] for annotations."},
    {NULL},
};

static PyGetSetDef Pool_getset[] = {
    {"new", (getter)Pool_get_new, (setter)Pool_set_new,
     "called by get() when the pool is empty (None: get() returns None)", NULL},
    {NULL},
};

PyTypeObject Pool_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Pool",
    .tp_basicsize = sizeof(PoolObject),
    .tp_dealloc = (destructor)Pool_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Pool(new=None)\n--\n\nGo's sync.Pool: a cache of interchangeable objects, kept per "
              "processor.",
    .tp_traverse = (traverseproc)Pool_traverse,
    .tp_clear = (inquiry)Pool_clear,
    .tp_weaklistoffset = offsetof(PoolObject, weakreflist),
    .tp_methods = Pool_methods,
    .tp_getset = Pool_getset,
    .tp_new = Pool_new,
};

/* gc.callbacks entry: Go empties pools' victim caches at each GC; we do it
 * at the start of each full (generation 2) collection. */
static PyObject *pool_gc_callback(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *phase, *info;
    if (!PyArg_ParseTuple(args, "OO", &phase, &info))
        return NULL;
    if (!PyUnicode_Check(phase) || PyUnicode_CompareWithASCIIString(phase, "start") != 0 ||
        !PyDict_Check(info))
        Py_RETURN_NONE;
    PyObject *gen = PyDict_GetItemString(info, "generation"); /* borrowed */
    if (gen != NULL && PyLong_Check(gen) && PyLong_AsLong(gen) == 2)
        gopy_pool_cleanup();
    Py_RETURN_NONE;
}

static PyMethodDef pool_gc_callback_def = {
    "_pool_gc_callback", pool_gc_callback, METH_VARARGS,
    "gc.callbacks hook: a full collection drops pools' victims and makes the rest victims"};

/* ---- Map ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    gopy_map *m; /* one reference per key and value it holds */
    PyObject *weakreflist;
} MapObject;

/* The callbacks run with the GIL held (every Map operation holds it) and
 * with no map lock held: __eq__ may run any code. */
static int py_equal(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    return PyObject_RichCompareBool((PyObject *)a, (PyObject *)b, Py_EQ);
}

static void py_retain(void *p, void *ctx)
{
    (void)ctx;
    Py_INCREF((PyObject *)p);
}

static void py_release(void *p, void *ctx)
{
    (void)ctx;
    gopy_decref_anywhere(p);
}

static const gopy_rt_map_type py_map_type = {py_equal, py_equal, py_retain, py_release, NULL};

static PyObject *Map_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (no_arguments(type->tp_name, args, kwds) < 0)
        return NULL;
    MapObject *self = (MapObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if ((self->m = gopy_rt_map_make(&py_map_type)) == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

typedef struct {
    visitproc visit;
    void *arg;
} map_visit;

static int map_visit_one(void *p, void *arg)
{
    map_visit *v = arg;
    return v->visit((PyObject *)p, v->arg);
}

static int Map_traverse(MapObject *self, visitproc visit, void *arg)
{
    if (self->m == NULL)
        return 0;
    map_visit v = {visit, arg};
    return gopy_rt_map_visit(self->m, map_visit_one, &v);
}

static int Map_clear(MapObject *self)
{
    if (self->m != NULL)
        gopy_map_clear(self->m);
    return 0;
}

static void Map_dealloc(MapObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    gopy_map_free(self->m); /* releases keys and values */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The key's hash as the map takes it; -1 with an exception set. */
static int key_hash(PyObject *key, uint64_t *hash)
{
    Py_hash_t h = PyObject_Hash(key);
    if (h == -1)
        return -1;
    *hash = (uint64_t)h;
    return 0;
}

/* A map status as a Python result: 0, or -1 (the callback's exception is
 * set already). */
static int map_status(int status)
{
    if (status == GOPY_OK)
        return 0;
    if (status == GOPY_ECALLBACK && PyErr_Occurred())
        return -1;
    return gopy_status_error(status);
}

/* (value, flag) with value a reference we own (NULL: None). */
static PyObject *pair(PyObject *value, bool flag)
{
    return Py_BuildValue("(NO)", value != NULL ? value : Py_NewRef(Py_None),
                         flag ? Py_True : Py_False);
}

static PyObject *Map_load(MapObject *self, PyObject *key)
{
    uint64_t hash;
    void *value = NULL;
    bool loaded;
    if (key_hash(key, &hash) < 0 ||
        map_status(gopy_rt_map_load(self->m, hash, key, &value, &loaded)) < 0)
        return NULL;
    return pair(loaded ? value : NULL, loaded);
}

static int two_args(const char *name, Py_ssize_t nargs, Py_ssize_t want)
{
    if (nargs == want)
        return 0;
    PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", name, want,
                 nargs);
    return -1;
}

static PyObject *Map_store(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t hash;
    if (two_args("store", nargs, 2) < 0 || key_hash(args[0], &hash) < 0 ||
        map_status(gopy_rt_map_store(self->m, hash, args[0], args[1])) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Map_load_or_store(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t hash;
    void *actual = NULL;
    bool loaded;
    if (two_args("load_or_store", nargs, 2) < 0 || key_hash(args[0], &hash) < 0 ||
        map_status(gopy_rt_map_load_or_store(self->m, hash, args[0], args[1], &actual,
                                             &loaded)) < 0)
        return NULL;
    return pair(actual, loaded);
}

static PyObject *Map_load_and_delete(MapObject *self, PyObject *key)
{
    uint64_t hash;
    void *value = NULL;
    bool loaded;
    if (key_hash(key, &hash) < 0 ||
        map_status(gopy_rt_map_load_and_delete(self->m, hash, key, &value, &loaded)) < 0)
        return NULL;
    return pair(loaded ? value : NULL, loaded);
}

static PyObject *Map_delete(MapObject *self, PyObject *key)
{
    uint64_t hash;
    bool loaded;
    if (key_hash(key, &hash) < 0 ||
        map_status(gopy_rt_map_load_and_delete(self->m, hash, key, NULL, &loaded)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Map_swap(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t hash;
    void *previous = NULL;
    bool loaded;
    if (two_args("swap", nargs, 2) < 0 || key_hash(args[0], &hash) < 0 ||
        map_status(gopy_rt_map_swap(self->m, hash, args[0], args[1], &previous, &loaded)) < 0)
        return NULL;
    return pair(loaded ? previous : NULL, loaded);
}

static PyObject *Map_compare_and_swap(MapObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint64_t hash;
    bool swapped;
    if (two_args("compare_and_swap", nargs, 3) < 0 || key_hash(args[0], &hash) < 0 ||
        map_status(gopy_rt_map_compare_and_swap(self->m, hash, args[0], args[1], args[2],
                                                &swapped)) < 0)
        return NULL;
    return PyBool_FromLong(swapped);
}

static PyObject *Map_compare_and_delete(MapObject *self, PyObject *const *args,
                                        Py_ssize_t nargs)
{
    uint64_t hash;
    bool deleted;
    if (two_args("compare_and_delete", nargs, 2) < 0 || key_hash(args[0], &hash) < 0 ||
        map_status(gopy_rt_map_compare_and_delete(self->m, hash, args[0], args[1],
                                                  &deleted)) < 0)
        return NULL;
    return PyBool_FromLong(deleted);
}

/* range's fn: stops on a false result (None, the result of a function
 * without a return, goes on). */
static int range_call(void *key, void *value, void *arg)
{
    PyObject *r = PyObject_CallFunctionObjArgs(arg, (PyObject *)key, (PyObject *)value, NULL);
    if (r == NULL)
        return -1;
    int go_on = r == Py_None ? 1 : PyObject_IsTrue(r);
    Py_DECREF(r);
    return go_on;
}

static PyObject *Map_range(MapObject *self, PyObject *fn)
{
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "Map.range() needs a callable, not %.100s",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (map_status(gopy_rt_map_range(self->m, range_call, fn)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Map_clear_method(MapObject *self, PyObject *Py_UNUSED(ignored))
{
    gopy_map_clear(self->m);
    Py_RETURN_NONE;
}

static PyMethodDef Map_methods[] = {
    {"load", (PyCFunction)Map_load, METH_O,
     "load($self, key, /)\n--\n\n(value, ok): the value stored for key and True, or (None, "
     "False)."},
    {"store", (PyCFunction)(void (*)(void))Map_store, METH_FASTCALL,
     "store($self, key, value, /)\n--\n\nSet the value for key."},
    {"load_or_store", (PyCFunction)(void (*)(void))Map_load_or_store, METH_FASTCALL,
     "load_or_store($self, key, value, /)\n--\n\n(actual, loaded): the existing value and True, "
     "or store value and return (value, False)."},
    {"load_and_delete", (PyCFunction)Map_load_and_delete, METH_O,
     "load_and_delete($self, key, /)\n--\n\nDelete key, returning (value, loaded): its previous "
     "value and whether there was one."},
    {"delete", (PyCFunction)Map_delete, METH_O,
     "delete($self, key, /)\n--\n\nDelete key (nothing happens if it is absent)."},
    {"swap", (PyCFunction)(void (*)(void))Map_swap, METH_FASTCALL,
     "swap($self, key, value, /)\n--\n\nStore value, returning (previous, loaded): the previous "
     "value and whether there was one."},
    {"compare_and_swap", (PyCFunction)(void (*)(void))Map_compare_and_swap, METH_FASTCALL,
     "compare_and_swap($self, key, old, new, /)\n--\n\nStore new if key's value == old; True if "
     "it did."},
    {"compare_and_delete", (PyCFunction)(void (*)(void))Map_compare_and_delete, METH_FASTCALL,
     "compare_and_delete($self, key, old, /)\n--\n\nDelete key if its value == old; True if it "
     "did."},
    {"range", (PyCFunction)Map_range, METH_O,
     "range($self, fn, /)\n--\n\nCall fn(key, value) for each entry (those present when range "
     "began) until fn returns a false value other than None.  fn may use the map."},
    {"clear", (PyCFunction)Map_clear_method, METH_NOARGS,
     "clear($self, /)\n--\n\nDelete every entry."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nMap[K, V] for annotations."},
    {NULL},
};

PyTypeObject Map_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.Map",
    .tp_basicsize = sizeof(MapObject),
    .tp_dealloc = (destructor)Map_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Map()\n--\n\nGo's sync.Map: a map safe for concurrent use, loads without locks.  "
              "Keys are compared by hash and ==, as a dict's.",
    .tp_traverse = (traverseproc)Map_traverse,
    .tp_clear = (inquiry)Map_clear,
    .tp_weaklistoffset = offsetof(MapObject, weakreflist),
    .tp_methods = Map_methods,
    .tp_new = Map_new,
};

/* ---- registration -------------------------------------------------------------- */

static PyMethodDef sync_functions[] = {
    {"once_func", gopy_once_func, METH_O,
     "once_func($module, fn, /)\n--\n\nGo's OnceFunc: a function that calls fn() the first time "
     "and does nothing later; if fn raised, every call raises that exception again."},
    {"once_value", gopy_once_value, METH_O,
     "once_value($module, fn, /)\n--\n\nGo's OnceValue: a function that calls fn() the first "
     "time and returns its result every time; if fn raised, every call raises it again."},
    {NULL},
};

int gopy_sync_init(PyObject *m)
{
    if ((str_lock = PyUnicode_InternFromString("lock")) == NULL ||
        (str_unlock = PyUnicode_InternFromString("unlock")) == NULL)
        return -1;
    if (gopy_add_type(m, &Mutex_Type, "Mutex") < 0 || gopy_add_type(m, &RWMutex_Type, "RWMutex") < 0 ||
        gopy_add_type(m, &RLocker_Type, "RLocker") < 0 ||
        gopy_add_type(m, &WaitGroup_Type, "WaitGroup") < 0 || gopy_add_type(m, &Once_Type, "Once") < 0 ||
        gopy_add_type(m, &OnceCall_Type, NULL) < 0 || gopy_add_type(m, &Cond_Type, "Cond") < 0 ||
        gopy_add_type(m, &Pool_Type, "Pool") < 0 || gopy_add_type(m, &Map_Type, "Map") < 0 ||
        PyModule_AddFunctions(m, sync_functions) < 0)
        return -1;
    /* Pools' victims go at full collections: hook gc.callbacks. */
    PyObject *gc = PyImport_ImportModule("gc");
    PyObject *callbacks = gc != NULL ? PyObject_GetAttrString(gc, "callbacks") : NULL;
    PyObject *hook = callbacks != NULL ? PyCFunction_New(&pool_gc_callback_def, NULL) : NULL;
    int r = hook != NULL ? PyList_Append(callbacks, hook) : -1;
    Py_XDECREF(hook);
    Py_XDECREF(callbacks);
    Py_XDECREF(gc);
    return r;
}
