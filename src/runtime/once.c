/*
 * once.c -- Go's sync.Once: a done flag for the fast path and a Mutex that
 * callers arriving while f runs wait on.
 *
 * done is set only after f has returned (a caller seeing done == 1 sees
 * all f did: the store is seq_cst and so is the load).  It is set even
 * when f fails (Go: a panicking f counts as done); the binding decides
 * what a failure means for later calls.
 */
#include "sync.h"

#include <stdlib.h>

struct gopy_once {
    _Atomic uint32_t done;
    gopy_mutex m; /* held while f runs */
};

gopy_once *gopy_once_make(void)
{
    gopy_once *o = calloc(1, sizeof *o);
    if (o != NULL)
        sema_init(&o->m.sema);
    return o;
}

void gopy_once_free(gopy_once *o)
{
    if (o == NULL)
        return;
    /* The caller that ran f may still be waking the others. */
    sync_await_idle(&o->m.sema.busy);
    free(o);
}

bool gopy_rt_once_done(gopy_once *o)
{
    return atomic_load(&o->done) != 0;
}

int gopy_rt_once_begin(gopy_once *o, bool block, bool *run)
{
    *run = false;
    if (atomic_load(&o->done) != 0)
        return GOPY_OK;
    if (!block) {
        if (!gopy_mutex_trylock(&o->m))
            return GOPY_EAGAIN;
    } else {
        int r = gopy_rt_mutex_lock(&o->m);
        if (r != GOPY_OK)
            return r;
    }
    /* Holding m: either f already ran while we waited, or it is ours. */
    if (atomic_load(&o->done) != 0) {
        (void)gopy_rt_mutex_unlock(&o->m);
        return GOPY_OK;
    }
    *run = true;
    return GOPY_OK;
}

void gopy_rt_once_end(gopy_once *o, bool done)
{
    if (done)
        atomic_store(&o->done, 1);
    (void)gopy_rt_mutex_unlock(&o->m);
}

void gopy_once_do(gopy_once *o, void (*fn)(void *arg), void *arg)
{
    bool run;
    while (gopy_rt_once_begin(o, true, &run) != GOPY_OK) {
    }
    if (run) {
        fn(arg);
        gopy_rt_once_end(o, true);
    }
}
