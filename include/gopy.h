/*
 * gopy.h -- the C API of gopy's concurrency runtime.
 *
 * Two ways to use it:
 *
 *  1. Plain C programs link the static runtime:
 *         make -C src/runtime
 *         cc prog.c -Iinclude build/libgopyrt.a -lpthread
 *
 *  2. Python extensions use the runtime that the `gopy` module already runs,
 *     through a capsule (never link a second copy of the runtime into an
 *     extension: goroutines, channels and Ms must all belong to one runtime):
 *         #define GOPY_CAPSULE
 *         #include <Python.h>
 *         #include <gopy.h>          (folder: gopy.get_include())
 *         ... in PyInit_xxx:  if (gopy_import() < 0) return NULL;
 *     Each translation unit that calls the API must call gopy_import() once.
 *
 * Every function may be called from a goroutine (it parks the goroutine when
 * it blocks) or from an ordinary thread (it blocks that thread).  Handles are
 * opaque.  The names below are the contract (see API.md).
 */
#ifndef GOPY_H
#define GOPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GOPY_API_VERSION 1

/* Result codes. */
#define GOPY_OK 0
#define GOPY_ECLOSED 1 /* send on / close of a closed channel */

/* Select case directions. */
#define GOPY_SEND 1
#define GOPY_RECV 2

typedef struct gopy_chan gopy_chan;
typedef struct gopy_waitgroup gopy_waitgroup;
typedef struct gopy_mutex gopy_mutex;

/* A select case: chan NULL is Go's nil channel (the case never proceeds).
 * For GOPY_SEND, elem points at the value to send; for GOPY_RECV at the
 * buffer receiving it (or NULL to discard).  After gopy_select returns, ok
 * of the chosen case is false for a receive from a closed, drained channel
 * and for a send on a closed channel. */
typedef struct {
    gopy_chan *chan;
    int dir;
    void *elem;
    bool ok;
} gopy_case;

/* The API as a table of functions: what the capsule exports. */
struct gopy_api {
    unsigned version; /* GOPY_API_VERSION */
    size_t size;      /* sizeof(struct gopy_api) of the exporting runtime */
    int (*go)(void (*fn)(void *arg), void *arg);
    void (*yield)(void);
    void (*sleep)(int64_t ns);
    int (*gomaxprocs)(int n);
    gopy_chan *(*chan_make)(size_t elem_size, size_t cap);
    void (*chan_retain)(gopy_chan *c);
    void (*chan_release)(gopy_chan *c);
    int (*chan_send)(gopy_chan *c, const void *elem);
    bool (*chan_recv)(gopy_chan *c, void *elem);
    int (*chan_close)(gopy_chan *c);
    size_t (*chan_len)(gopy_chan *c);
    size_t (*chan_cap)(gopy_chan *c);
    int (*select)(gopy_case *cases, int n, bool block);
    gopy_waitgroup *(*waitgroup_make)(void);
    void (*waitgroup_add)(gopy_waitgroup *wg, int delta);
    void (*waitgroup_done)(gopy_waitgroup *wg);
    void (*waitgroup_wait)(gopy_waitgroup *wg);
    void (*waitgroup_free)(gopy_waitgroup *wg);
    gopy_mutex *(*mutex_make)(void);
    void (*mutex_lock)(gopy_mutex *m);
    bool (*mutex_trylock)(gopy_mutex *m);
    void (*mutex_unlock)(gopy_mutex *m);
    void (*mutex_free)(gopy_mutex *m);
};

#define GOPY_CAPSULE_NAME "gopy._gopy._C_API"

#ifndef GOPY_CAPSULE

/* ---- goroutines ---------------------------------------------------- */

/* Start fn(arg) in a new goroutine (Go's `go`).  0, or -1 with errno set
 * (ENOMEM: no memory for the goroutine or its stack; EAGAIN: the runtime
 * is shutting down). */
int gopy_go(void (*fn)(void *arg), void *arg);
/* Go's runtime.Gosched: let other goroutines run. */
void gopy_yield(void);
/* Park the calling goroutine (or block the calling thread) for ns
 * nanoseconds; ns <= 0 returns at once. */
void gopy_sleep(int64_t ns);
/* Set the number of Ps when n >= 1; always return the previous number. */
int gopy_gomaxprocs(int n);

/* ---- channels ------------------------------------------------------ */

/* A channel of elem_size-byte values (elem_size may be 0) with a buffer of
 * cap values; cap 0 is unbuffered.  Reference counted: the creator holds
 * one reference.  NULL with errno ENOMEM or EINVAL on error. */
gopy_chan *gopy_chan_make(size_t elem_size, size_t cap);
void gopy_chan_retain(gopy_chan *c);
void gopy_chan_release(gopy_chan *c);
/* Send *elem (elem_size bytes are copied).  0, or GOPY_ECLOSED if the
 * channel is closed (also when it is closed while the sender waits). */
int gopy_chan_send(gopy_chan *c, const void *elem);
/* Receive into *elem (may be NULL to discard).  false when the channel is
 * closed and drained; *elem is then zeroed. */
bool gopy_chan_recv(gopy_chan *c, void *elem);
/* Close: wakes every waiting receiver (ok false) and sender (GOPY_ECLOSED).
 * 0, or GOPY_ECLOSED if it was already closed. */
int gopy_chan_close(gopy_chan *c);
size_t gopy_chan_len(gopy_chan *c);
size_t gopy_chan_cap(gopy_chan *c);

/* Go's select over n cases: blocks until one can proceed and performs
 * exactly that one, chosen uniformly at random among the ready ones.
 * Returns its index, or -1 when !block and nothing was ready.  With n == 0
 * (or only nil cases) and block, it blocks forever (Go's `select {}`). */
int gopy_select(gopy_case *cases, int n, bool block);

/* ---- sync ---------------------------------------------------------- */

gopy_waitgroup *gopy_waitgroup_make(void);
/* Adding to a negative counter aborts the process (Go panics). */
void gopy_waitgroup_add(gopy_waitgroup *wg, int delta);
void gopy_waitgroup_done(gopy_waitgroup *wg);
void gopy_waitgroup_wait(gopy_waitgroup *wg);
void gopy_waitgroup_free(gopy_waitgroup *wg);

gopy_mutex *gopy_mutex_make(void);
void gopy_mutex_lock(gopy_mutex *m);
bool gopy_mutex_trylock(gopy_mutex *m);
/* Unlocking an unlocked mutex aborts the process (Go: fatal error). */
void gopy_mutex_unlock(gopy_mutex *m);
void gopy_mutex_free(gopy_mutex *m);

/* The table above, filled with this runtime's functions. */
const struct gopy_api *gopy_api_table(void);

#else /* GOPY_CAPSULE: call through the table the gopy module exports. */

static const struct gopy_api *gopy_api_ptr;

#define gopy_go (gopy_api_ptr->go)
#define gopy_yield (gopy_api_ptr->yield)
#define gopy_sleep (gopy_api_ptr->sleep)
#define gopy_gomaxprocs (gopy_api_ptr->gomaxprocs)
#define gopy_chan_make (gopy_api_ptr->chan_make)
#define gopy_chan_retain (gopy_api_ptr->chan_retain)
#define gopy_chan_release (gopy_api_ptr->chan_release)
#define gopy_chan_send (gopy_api_ptr->chan_send)
#define gopy_chan_recv (gopy_api_ptr->chan_recv)
#define gopy_chan_close (gopy_api_ptr->chan_close)
#define gopy_chan_len (gopy_api_ptr->chan_len)
#define gopy_chan_cap (gopy_api_ptr->chan_cap)
#define gopy_select (gopy_api_ptr->select)
#define gopy_waitgroup_make (gopy_api_ptr->waitgroup_make)
#define gopy_waitgroup_add (gopy_api_ptr->waitgroup_add)
#define gopy_waitgroup_done (gopy_api_ptr->waitgroup_done)
#define gopy_waitgroup_wait (gopy_api_ptr->waitgroup_wait)
#define gopy_waitgroup_free (gopy_api_ptr->waitgroup_free)
#define gopy_mutex_make (gopy_api_ptr->mutex_make)
#define gopy_mutex_lock (gopy_api_ptr->mutex_lock)
#define gopy_mutex_trylock (gopy_api_ptr->mutex_trylock)
#define gopy_mutex_unlock (gopy_api_ptr->mutex_unlock)
#define gopy_mutex_free (gopy_api_ptr->mutex_free)

/* Import the table from the gopy module.  0, or -1 with a Python exception
 * set.  Needs Python.h included first. */
static inline int gopy_import(void)
{
    const struct gopy_api *api =
        (const struct gopy_api *)PyCapsule_Import(GOPY_CAPSULE_NAME, 0);
    if (api == NULL)
        return -1;
    if (api->version != GOPY_API_VERSION ||
        api->size < sizeof(struct gopy_api)) {
        PyErr_SetString(PyExc_ImportError,
                        "gopy: the gopy module's C API is incompatible with "
                        "the gopy.h this extension was built with");
        return -1;
    }
    gopy_api_ptr = api;
    return 0;
}

#endif /* GOPY_CAPSULE */

#ifdef __cplusplus
}
#endif
#endif /* GOPY_H */
