/*
 * atomic.c -- gopy.atomic: Go's sync/atomic for Python.
 *
 * Typed cells (Int32, Int64, Uint32, Uint64, Bool, Value) and functions on
 * elements of any buffer (bytearray, memoryview, array, NumPy), all
 * sequentially consistent (Go's memory model since 1.19) and lock-free:
 * C11 / GCC atomics on the memory itself, so C code sharing a buffer sees
 * the same operations.
 *
 * Integers wrap as their C types do: a Python int is reduced modulo 2^bits
 * on the way in (so Uint32(-1) holds 2^32 - 1, and an Int32 at 2^31 - 1
 * plus 1 is -2^31), and read back signed or unsigned by the type.
 */
#include "binding.h"

#include <string.h>

enum int_kind { K_INT32, K_INT64, K_UINT32, K_UINT64 };

static const char *const kind_names[] = {"int32", "int64", "uint32", "uint64"};

static inline size_t kind_size(enum int_kind k)
{
    return k == K_INT32 || k == K_UINT32 ? 4 : 8;
}

/* A Python int (or an object with __index__) as raw bits of the kind:
 * the value modulo 2^bits.  -1 with an exception set. */
static int bits_from_py(PyObject *obj, enum int_kind k, uint64_t *bits)
{
    if (!PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "an integer is required for %s, not %.100s",
                     kind_names[k], Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyObject *index = PyNumber_Index(obj);
    if (index == NULL)
        return -1;
    unsigned long long v = PyLong_AsUnsignedLongLongMask(index);
    Py_DECREF(index);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *bits = kind_size(k) == 4 ? (uint32_t)v : (uint64_t)v;
    return 0;
}

static PyObject *bits_to_py(uint64_t bits, enum int_kind k)
{
    switch (k) {
    case K_INT32:
        return PyLong_FromLong((int32_t)(uint32_t)bits);
    case K_INT64:
        return PyLong_FromLongLong((int64_t)bits);
    case K_UINT32:
        return PyLong_FromUnsignedLong((uint32_t)bits);
    case K_UINT64:
        break;
    }
    return PyLong_FromUnsignedLongLong(bits);
}

/* ---- operations on raw memory (cells and buffers share them) ------------- */

enum int_op { OP_LOAD, OP_STORE, OP_ADD, OP_SWAP, OP_CAS, OP_AND, OP_OR };

/* Perform op on the 4- or 8-byte integer at p (aligned).  Returns the
 * result bits: loaded, new (add), old (swap, and, or), or 1/0 (cas). */
static uint64_t apply(void *p, size_t size, enum int_op op, uint64_t a, uint64_t b)
{
    if (size == 4) {
        uint32_t *q = p, x = (uint32_t)a, expected = (uint32_t)a;
        switch (op) {
        case OP_LOAD:
            return __atomic_load_n(q, __ATOMIC_SEQ_CST);
        case OP_STORE:
            __atomic_store_n(q, x, __ATOMIC_SEQ_CST);
            return 0;
        case OP_ADD:
            return __atomic_add_fetch(q, x, __ATOMIC_SEQ_CST);
        case OP_SWAP:
            return __atomic_exchange_n(q, x, __ATOMIC_SEQ_CST);
        case OP_CAS:
            return __atomic_compare_exchange_n(q, &expected, (uint32_t)b, false,
                                               __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        case OP_AND:
            return __atomic_fetch_and(q, x, __ATOMIC_SEQ_CST);
        case OP_OR:
            return __atomic_fetch_or(q, x, __ATOMIC_SEQ_CST);
        }
        return 0;
    }
    uint64_t *q = p, expected = a;
    switch (op) {
    case OP_LOAD:
        return __atomic_load_n(q, __ATOMIC_SEQ_CST);
    case OP_STORE:
        __atomic_store_n(q, a, __ATOMIC_SEQ_CST);
        return 0;
    case OP_ADD:
        return __atomic_add_fetch(q, a, __ATOMIC_SEQ_CST);
    case OP_SWAP:
        return __atomic_exchange_n(q, a, __ATOMIC_SEQ_CST);
    case OP_CAS:
        return __atomic_compare_exchange_n(q, &expected, b, false, __ATOMIC_SEQ_CST,
                                           __ATOMIC_SEQ_CST);
    case OP_AND:
        return __atomic_fetch_and(q, a, __ATOMIC_SEQ_CST);
    case OP_OR:
        return __atomic_fetch_or(q, a, __ATOMIC_SEQ_CST);
    }
    return 0;
}

/* The Python result of op. */
static PyObject *op_result(enum int_op op, uint64_t r, enum int_kind k)
{
    switch (op) {
    case OP_STORE:
        Py_RETURN_NONE;
    case OP_CAS:
        return PyBool_FromLong(r != 0);
    default:
        return bits_to_py(r, k);
    }
}

/* ---- integer cells --------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    _Alignas(8) uint64_t v; /* 4-byte kinds use its first 4 bytes */
} IntCell;

static PyTypeObject Int32_Type, Int64_Type, Uint32_Type, Uint64_Type;

static enum int_kind cell_kind(PyObject *self)
{
    PyTypeObject *t = Py_TYPE(self);
    return t == &Int32_Type ? K_INT32 : t == &Int64_Type ? K_INT64
                                      : t == &Uint32_Type ? K_UINT32 : K_UINT64;
}

static PyObject *cell_op(PyObject *self, enum int_op op, PyObject *a, PyObject *b)
{
    enum int_kind k = cell_kind(self);
    uint64_t x = 0, y = 0;
    if ((a != NULL && bits_from_py(a, k, &x) < 0) || (b != NULL && bits_from_py(b, k, &y) < 0))
        return NULL;
    return op_result(op, apply(&((IntCell *)self)->v, kind_size(k), op, x, y), k);
}

static PyObject *IntCell_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O", kwlist, &value))
        return NULL;
    IntCell *self = (IntCell *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    if (value != NULL) {
        PyObject *r = cell_op((PyObject *)self, OP_STORE, value, NULL);
        if (r == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        Py_DECREF(r);
    }
    return (PyObject *)self;
}

static PyObject *IntCell_load(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return cell_op(self, OP_LOAD, NULL, NULL);
}

static PyObject *IntCell_store(PyObject *self, PyObject *v)
{
    return cell_op(self, OP_STORE, v, NULL);
}

static PyObject *IntCell_add(PyObject *self, PyObject *delta)
{
    return cell_op(self, OP_ADD, delta, NULL);
}

static PyObject *IntCell_swap(PyObject *self, PyObject *v)
{
    return cell_op(self, OP_SWAP, v, NULL);
}

static PyObject *IntCell_compare_and_swap(PyObject *self, PyObject *const *args,
                                          Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "compare_and_swap() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    return cell_op(self, OP_CAS, args[0], args[1]);
}

static PyObject *IntCell_and(PyObject *self, PyObject *mask)
{
    return cell_op(self, OP_AND, mask, NULL);
}

static PyObject *IntCell_or(PyObject *self, PyObject *mask)
{
    return cell_op(self, OP_OR, mask, NULL);
}

static PyObject *IntCell_repr(PyObject *self)
{
    PyObject *v = IntCell_load(self, NULL);
    if (v == NULL)
        return NULL;
    PyObject *r = PyUnicode_FromFormat("%s(%R)", Py_TYPE(self)->tp_name, v);
    Py_DECREF(v);
    return r;
}

static PyMethodDef IntCell_methods[] = {
    {"load", IntCell_load, METH_NOARGS, "load($self, /)\n--\n\nThe value (an int)."},
    {"store", IntCell_store, METH_O, "store($self, v, /)\n--\n\nStore v."},
    {"add", IntCell_add, METH_O,
     "add($self, delta, /)\n--\n\nAdd delta (wrapping); the new value."},
    {"swap", IntCell_swap, METH_O, "swap($self, v, /)\n--\n\nStore v; the old value."},
    {"compare_and_swap", (PyCFunction)(void (*)(void))IntCell_compare_and_swap, METH_FASTCALL,
     "compare_and_swap($self, old, new, /)\n--\n\nStore new if the value is old; True if it did."},
    {"and_", IntCell_and, METH_O, "and_($self, mask, /)\n--\n\nvalue &= mask; the old value."},
    {"or_", IntCell_or, METH_O, "or_($self, mask, /)\n--\n\nvalue |= mask; the old value."},
    {NULL},
};

#define INT_CELL_TYPE(var, name, doc)                                                      \
    static PyTypeObject var = {                                                            \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.atomic." name,                      \
        .tp_basicsize = sizeof(IntCell),                                                   \
        .tp_repr = IntCell_repr,                                                           \
        .tp_flags = Py_TPFLAGS_DEFAULT,                                                    \
        .tp_doc = name "(value=0)\n--\n\n" doc,                                            \
        .tp_methods = IntCell_methods,                                                     \
        .tp_new = IntCell_new,                                                             \
    }

INT_CELL_TYPE(Int32_Type, "Int32", "An atomic 32-bit signed integer (wraps at 2**31).");
INT_CELL_TYPE(Int64_Type, "Int64", "An atomic 64-bit signed integer (wraps at 2**63).");
INT_CELL_TYPE(Uint32_Type, "Uint32", "An atomic 32-bit unsigned integer (wraps at 2**32).");
INT_CELL_TYPE(Uint64_Type, "Uint64", "An atomic 64-bit unsigned integer (wraps at 2**64).");

/* ---- Bool ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    uint32_t v; /* 0 or 1, accessed atomically */
} BoolCell;

static int truth(PyObject *v, uint32_t *out)
{
    int t = PyObject_IsTrue(v);
    if (t < 0)
        return -1;
    *out = (uint32_t)t;
    return 0;
}

static PyObject *BoolCell_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = Py_False;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O", kwlist, &value))
        return NULL;
    uint32_t v;
    if (truth(value, &v) < 0)
        return NULL;
    BoolCell *self = (BoolCell *)type->tp_alloc(type, 0);
    if (self != NULL)
        __atomic_store_n(&self->v, v, __ATOMIC_SEQ_CST);
    return (PyObject *)self;
}

static PyObject *BoolCell_load(BoolCell *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(__atomic_load_n(&self->v, __ATOMIC_SEQ_CST));
}

static PyObject *BoolCell_store(BoolCell *self, PyObject *value)
{
    uint32_t v;
    if (truth(value, &v) < 0)
        return NULL;
    __atomic_store_n(&self->v, v, __ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *BoolCell_swap(BoolCell *self, PyObject *value)
{
    uint32_t v;
    if (truth(value, &v) < 0)
        return NULL;
    return PyBool_FromLong(__atomic_exchange_n(&self->v, v, __ATOMIC_SEQ_CST));
}

static PyObject *BoolCell_compare_and_swap(BoolCell *self, PyObject *const *args,
                                           Py_ssize_t nargs)
{
    uint32_t old, new;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "compare_and_swap() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (truth(args[0], &old) < 0 || truth(args[1], &new) < 0)
        return NULL;
    return PyBool_FromLong(__atomic_compare_exchange_n(&self->v, &old, new, false,
                                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
}

static PyObject *BoolCell_repr(BoolCell *self)
{
    return PyUnicode_FromFormat("gopy.atomic.Bool(%s)",
                                __atomic_load_n(&self->v, __ATOMIC_SEQ_CST) ? "True" : "False");
}

static PyMethodDef BoolCell_methods[] = {
    {"load", (PyCFunction)BoolCell_load, METH_NOARGS, "load($self, /)\n--\n\nThe value (a bool)."},
    {"store", (PyCFunction)BoolCell_store, METH_O,
     "store($self, v, /)\n--\n\nStore the truth of v."},
    {"swap", (PyCFunction)BoolCell_swap, METH_O,
     "swap($self, v, /)\n--\n\nStore the truth of v; the old value."},
    {"compare_and_swap", (PyCFunction)(void (*)(void))BoolCell_compare_and_swap, METH_FASTCALL,
     "compare_and_swap($self, old, new, /)\n--\n\nStore the truth of new if the value is the "
     "truth of old; True if it did."},
    {NULL},
};

static PyTypeObject Bool_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.atomic.Bool",
    .tp_basicsize = sizeof(BoolCell),
    .tp_repr = (reprfunc)BoolCell_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Bool(value=False)\n--\n\nAn atomic boolean (values are taken by truth).",
    .tp_methods = BoolCell_methods,
    .tp_new = BoolCell_new,
};

/* ---- Value ----------------------------------------------------------------- */

/* Holds one reference to the object in v.  A load takes its reference
 * holding the cell's lock (the GIL, or the cell's critical section on a
 * free-threaded build), as every change does: no other thread can swap
 * the object out and drop it between the read and the incref.  The old
 * object's reference is dropped after the lock is let go (its finalizer
 * may run any code). */
typedef struct {
    PyObject_HEAD
    PyObject *v;
    PyObject *weakreflist;
} ValueCell;

static PyObject *ValueCell_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O", kwlist, &value))
        return NULL;
    ValueCell *self = (ValueCell *)type->tp_alloc(type, 0);
    if (self != NULL)
        __atomic_store_n(&self->v, Py_NewRef(value), __ATOMIC_SEQ_CST);
    return (PyObject *)self;
}

static int ValueCell_traverse(ValueCell *self, visitproc visit, void *arg)
{
    Py_VISIT(self->v);
    return 0;
}

/* Put v (a new reference) in the cell; the old object, whose reference
 * the caller now owns (NULL once cleared). */
static PyObject *cell_exchange(ValueCell *self, PyObject *v)
{
    PyObject *old;
    GOPY_BEGIN_LOCKED(self);
    old = __atomic_exchange_n(&self->v, v, __ATOMIC_SEQ_CST);
    GOPY_END_LOCKED();
    return old;
}

static int ValueCell_clear(ValueCell *self)
{
    Py_XDECREF(cell_exchange(self, NULL));
    return 0;
}

static void ValueCell_dealloc(ValueCell *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    ValueCell_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ValueCell_load(ValueCell *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *v;
    GOPY_BEGIN_LOCKED(self);
    v = __atomic_load_n(&self->v, __ATOMIC_SEQ_CST);
    v = Py_NewRef(v != NULL ? v : Py_None);
    GOPY_END_LOCKED();
    return v;
}

static PyObject *ValueCell_swap(ValueCell *self, PyObject *value)
{
    PyObject *old = cell_exchange(self, Py_NewRef(value));
    return old != NULL ? old : Py_NewRef(Py_None); /* the cell's reference, now ours */
}

static PyObject *ValueCell_store(ValueCell *self, PyObject *value)
{
    PyObject *old = ValueCell_swap(self, value);
    Py_DECREF(old);
    Py_RETURN_NONE;
}

static PyObject *ValueCell_compare_and_swap(ValueCell *self, PyObject *const *args,
                                            Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "compare_and_swap() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *expected = args[0];
    bool swapped;
    Py_INCREF(args[1]);
    GOPY_BEGIN_LOCKED(self);
    swapped = __atomic_compare_exchange_n(&self->v, &expected, args[1], false, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST);
    GOPY_END_LOCKED();
    /* Swapped: drop the cell's reference to the old object (args[0], which
     * the caller still holds); else the one taken for the new. */
    Py_DECREF(swapped ? args[0] : args[1]);
    return PyBool_FromLong(swapped);
}

static PyObject *ValueCell_repr(ValueCell *self)
{
    PyObject *v = ValueCell_load(self, NULL);
    PyObject *r = PyUnicode_FromFormat("gopy.atomic.Value(%R)", v);
    Py_DECREF(v);
    return r;
}

static PyMethodDef ValueCell_methods[] = {
    {"load", (PyCFunction)ValueCell_load, METH_NOARGS,
     "load($self, /)\n--\n\nThe object held."},
    {"store", (PyCFunction)ValueCell_store, METH_O, "store($self, v, /)\n--\n\nHold v."},
    {"swap", (PyCFunction)ValueCell_swap, METH_O, "swap($self, v, /)\n--\n\nStore v; the old one."},
    {"compare_and_swap", (PyCFunction)(void (*)(void))ValueCell_compare_and_swap, METH_FASTCALL,
     "compare_and_swap($self, old, new, /)\n--\n\nStore new if the value is old (identity, "
     "`is`); True if it did."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "__class_getitem__($type, item, /)\n--\n\nValue[T] for annotations."},
    {NULL},
};

static PyTypeObject Value_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gopy.atomic.Value",
    .tp_basicsize = sizeof(ValueCell),
    .tp_dealloc = (destructor)ValueCell_dealloc,
    .tp_repr = (reprfunc)ValueCell_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Value(value=None)\n--\n\nAn atomic reference to any object.",
    .tp_traverse = (traverseproc)ValueCell_traverse,
    .tp_clear = (inquiry)ValueCell_clear,
    .tp_weaklistoffset = offsetof(ValueCell, weakreflist),
    .tp_methods = ValueCell_methods,
    .tp_new = ValueCell_new,
};

/* ---- functions on buffers ---------------------------------------------------------- */

/* fn(buf, i, [a, [b]]): op on element i of buf as the kind's C type. */
static PyObject *buffer_op(const char *name, PyObject *const *args, Py_ssize_t nargs,
                           enum int_op op, enum int_kind k)
{
    Py_ssize_t want = op == OP_LOAD ? 2 : op == OP_CAS ? 4 : 3;
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, want, nargs);
        return NULL;
    }
    uint64_t a = 0, b = 0;
    if ((want > 2 && bits_from_py(args[2], k, &a) < 0) ||
        (want > 3 && bits_from_py(args[3], k, &b) < 0))
        return NULL;
    if (!PyIndex_Check(args[1])) {
        PyErr_Format(PyExc_TypeError, "%s(): the index must be an int, not %.100s", name,
                     Py_TYPE(args[1])->tp_name);
        return NULL;
    }
    Py_ssize_t i = PyNumber_AsSsize_t(args[1], PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_C_CONTIGUOUS) < 0) {
        if (PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s() needs a C-contiguous buffer", name);
        }
        return NULL;
    }
    PyObject *result = NULL;
    size_t size = kind_size(k);
    char *p = (char *)view.buf + (size_t)i * size;
    if (op != OP_LOAD && view.readonly) {
        PyErr_Format(PyExc_TypeError, "%s() needs a writable buffer", name);
    } else if (i < 0 || (size_t)view.len / size <= (size_t)i) {
        PyErr_Format(PyExc_IndexError, "%s(): index %zd out of range for %zd %s elements",
                     name, i, view.len / (Py_ssize_t)size, kind_names[k]);
    } else if ((uintptr_t)p % size != 0) {
        PyErr_Format(PyExc_ValueError, "%s(): element %zd is not aligned to %zu bytes", name,
                     i, size);
    } else {
        result = op_result(op, apply(p, size, op, a, b), k);
    }
    PyBuffer_Release(&view);
    return result;
}

#define BUFFER_FN(opname, OP, kind, KIND)                                                   \
    static PyObject *fn_##opname##_##kind(PyObject *self, PyObject *const *args,            \
                                          Py_ssize_t nargs)                                 \
    {                                                                                       \
        (void)self;                                                                         \
        return buffer_op(#opname "_" #kind, args, nargs, OP, KIND);                         \
    }

#define BUFFER_FNS(kind, KIND)                                                              \
    BUFFER_FN(load, OP_LOAD, kind, KIND)                                                    \
    BUFFER_FN(store, OP_STORE, kind, KIND)                                                  \
    BUFFER_FN(add, OP_ADD, kind, KIND)                                                      \
    BUFFER_FN(swap, OP_SWAP, kind, KIND)                                                    \
    BUFFER_FN(compare_and_swap, OP_CAS, kind, KIND)

BUFFER_FNS(int32, K_INT32)
BUFFER_FNS(int64, K_INT64)
BUFFER_FNS(uint32, K_UINT32)
BUFFER_FNS(uint64, K_UINT64)

#define BUFFER_DEF(opname, kind, doc)                                                       \
    {#opname "_" #kind, (PyCFunction)(void (*)(void))fn_##opname##_##kind, METH_FASTCALL,    \
     #opname "_" #kind doc}

#define BUFFER_DEFS(kind)                                                                   \
    BUFFER_DEF(load, kind, "($module, buf, i, /)\n--\n\nAtomically load element i of buf."), \
    BUFFER_DEF(store, kind,                                                                 \
               "($module, buf, i, v, /)\n--\n\nAtomically store v at element i."),          \
    BUFFER_DEF(add, kind,                                                                   \
               "($module, buf, i, delta, /)\n--\n\nAtomically add delta; the new value."),  \
    BUFFER_DEF(swap, kind,                                                                  \
               "($module, buf, i, v, /)\n--\n\nAtomically store v; the old value."),        \
    BUFFER_DEF(compare_and_swap, kind,                                                      \
               "($module, buf, i, old, new, /)\n--\n\nStore new at element i if it holds "  \
               "old; True if it did.")

static PyMethodDef atomic_functions[] = {
    BUFFER_DEFS(int32),
    BUFFER_DEFS(int64),
    BUFFER_DEFS(uint32),
    BUFFER_DEFS(uint64),
    {NULL},
};

static struct PyModuleDef atomic_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gopy.atomic",
    .m_doc = "Go's sync/atomic: sequentially consistent, lock-free atomic cells and "
             "operations on buffer elements.",
    .m_size = -1,
    .m_methods = atomic_functions,
};

int gopy_atomic_init(PyObject *m)
{
    PyObject *mod = PyModule_Create(&atomic_def);
    if (mod == NULL)
        return -1;
    PyTypeObject *types[] = {&Int32_Type, &Int64_Type, &Uint32_Type, &Uint64_Type,
                             &Bool_Type, &Value_Type};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
        const char *name = strrchr(types[i]->tp_name, '.') + 1;
        if (gopy_add_type(mod, types[i], name) < 0) {
            Py_DECREF(mod);
            return -1;
        }
    }
    /* gopy/atomic.py re-exports it as gopy.atomic. */
    if (PyModule_AddObject(m, "_atomic", mod) < 0) {
        Py_DECREF(mod);
        return -1;
    }
    return 0;
}
