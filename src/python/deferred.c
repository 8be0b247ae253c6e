/*
 * deferred.c -- references dropped by threads that do not hold the GIL
 * (a C goroutine releasing the last reference to a channel with Python
 * values buffered, say).  They wait on a lock-free stack until a thread
 * holding the GIL drains it: every blocking call and every goroutine
 * start looks.
 */
#include "binding.h"

#include <stdlib.h>

typedef struct deferred {
    struct deferred *next;
    PyObject *obj;
} deferred;

static _Atomic(deferred *) pending;

void gopy_decref_anywhere(PyObject *o)
{
    if (o == NULL)
        return;
    if (PyGILState_Check()) {
        Py_DECREF(o);
        return;
    }
    deferred *d = malloc(sizeof *d);
    if (d == NULL)
        return; /* leak rather than touch a refcount without the GIL */
    d->obj = o;
    d->next = atomic_load(&pending);
    while (!atomic_compare_exchange_weak(&pending, &d->next, d)) {
    }
}

void gopy_drain_deferred(void)
{
    if (atomic_load_explicit(&pending, memory_order_relaxed) == NULL)
        return;
    deferred *d = atomic_exchange(&pending, NULL);
    while (d != NULL) {
        deferred *next = d->next;
        Py_DECREF(d->obj);
        free(d);
        d = next;
    }
}
