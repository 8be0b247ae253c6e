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
 * opaque.  The names below are gopy's public C API, kept stable (docs/api.md,
 * "The C API", has the overview).
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
#define GOPY_ECLOSED 1 /* send on / close of a closed channel; a descriptor
                          netpoll-closed while waited on */
#define GOPY_ETIMEDOUT 9 /* a netpoll wait's deadline passed */

/* gopy_netpoll_wait modes. */
#define GOPY_POLL_READ 1
#define GOPY_POLL_WRITE 2

/* Select case directions. */
#define GOPY_SEND 1
#define GOPY_RECV 2

typedef struct gopy_chan gopy_chan;
typedef struct gopy_waitgroup gopy_waitgroup;
typedef struct gopy_mutex gopy_mutex;
typedef struct gopy_rwmutex gopy_rwmutex;
typedef struct gopy_once gopy_once;
typedef struct gopy_cond gopy_cond;
typedef struct gopy_pool gopy_pool;
typedef struct gopy_map gopy_map;
typedef struct gopy_context gopy_context;
typedef struct gopy_after_func gopy_after_func;

/* gopy_context_err values (Go's context.Canceled / DeadlineExceeded). */
#define GOPY_CTX_CANCELED 1
#define GOPY_CTX_DEADLINE_EXCEEDED 2

/* Go's sync.Locker: a lock given as its two operations on l. */
typedef struct {
    void (*lock)(void *l);
    void (*unlock)(void *l);
    void *l;
} gopy_locker;

/* What a gopy_map needs to know about its keys and values (opaque
 * pointers).  The map keeps its own references: retain(p, ctx) when it
 * stores a key or value, release(p, ctx) when one has left the map and no
 * reader can see it any more (perhaps later, from another thread).
 * Values the map hands back are retained for the caller, who releases
 * them.  NULL retain / release: plain pointers, nothing to do.
 * hash and key_equal must be consistent (equal keys, equal hashes); with
 * both NULL keys are compared as pointers.  value_equal (for
 * compare_and_swap / compare_and_delete) NULL compares pointers.  The
 * callbacks must not block or park, and are called with no map lock
 * held (they may use the map). */
typedef struct {
    uint64_t (*hash)(const void *key, void *ctx);
    bool (*key_equal)(const void *a, const void *b, void *ctx);
    bool (*value_equal)(const void *a, const void *b, void *ctx);
    void (*retain)(void *p, void *ctx);
    void (*release)(void *p, void *ctx);
    void *ctx;
} gopy_map_type;

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
    /* Added after version 1's first table: check size before use. */
    gopy_rwmutex *(*rwmutex_make)(void);
    void (*rwmutex_lock)(gopy_rwmutex *rw);
    bool (*rwmutex_trylock)(gopy_rwmutex *rw);
    void (*rwmutex_unlock)(gopy_rwmutex *rw);
    void (*rwmutex_rlock)(gopy_rwmutex *rw);
    bool (*rwmutex_tryrlock)(gopy_rwmutex *rw);
    void (*rwmutex_runlock)(gopy_rwmutex *rw);
    void (*rwmutex_free)(gopy_rwmutex *rw);
    gopy_once *(*once_make)(void);
    void (*once_do)(gopy_once *o, void (*fn)(void *arg), void *arg);
    void (*once_free)(gopy_once *o);
    gopy_locker (*mutex_locker)(gopy_mutex *m);
    gopy_locker (*rwmutex_locker)(gopy_rwmutex *rw);
    gopy_locker (*rwmutex_rlocker)(gopy_rwmutex *rw);
    gopy_cond *(*cond_make)(gopy_locker l);
    void (*cond_wait)(gopy_cond *c);
    void (*cond_signal)(gopy_cond *c);
    void (*cond_broadcast)(gopy_cond *c);
    void (*cond_free)(gopy_cond *c);
    gopy_pool *(*pool_make)(void *(*new_item)(void *ctx),
                            void (*release)(void *item, void *ctx), void *ctx);
    void *(*pool_get)(gopy_pool *p);
    void (*pool_put)(gopy_pool *p, void *item);
    void (*pool_free)(gopy_pool *p);
    void (*pool_cleanup)(void);
    gopy_map *(*map_make)(const gopy_map_type *type);
    bool (*map_load)(gopy_map *m, const void *key, void **value);
    void (*map_store)(gopy_map *m, void *key, void *value);
    bool (*map_load_or_store)(gopy_map *m, void *key, void *value, void **actual);
    bool (*map_load_and_delete)(gopy_map *m, const void *key, void **value);
    void (*map_delete)(gopy_map *m, const void *key);
    bool (*map_swap)(gopy_map *m, void *key, void *value, void **previous);
    bool (*map_compare_and_swap)(gopy_map *m, void *key, const void *old, void *new_value);
    bool (*map_compare_and_delete)(gopy_map *m, const void *key, const void *old);
    void (*map_range)(gopy_map *m, bool (*fn)(void *key, void *value, void *arg), void *arg);
    void (*map_clear)(gopy_map *m);
    size_t (*map_len)(gopy_map *m);
    void (*map_free)(gopy_map *m);
    /* context */
    gopy_context *(*context_background)(void);
    gopy_context *(*context_with_cancel)(gopy_context *parent);
    gopy_context *(*context_with_deadline)(gopy_context *parent, int64_t deadline_unix_ns);
    gopy_context *(*context_with_timeout)(gopy_context *parent, int64_t timeout_ns);
    void (*context_cancel)(gopy_context *ctx);
    gopy_chan *(*context_done)(gopy_context *ctx);
    int (*context_err)(gopy_context *ctx);
    bool (*context_deadline)(gopy_context *ctx, int64_t *deadline_unix_ns);
    void (*context_retain)(gopy_context *ctx);
    void (*context_release)(gopy_context *ctx);
    gopy_after_func *(*context_after_func)(gopy_context *ctx, void (*fn)(void *arg), void *arg);
    bool (*after_func_stop)(gopy_after_func *af);
    void (*after_func_release)(gopy_after_func *af);
    /* netpoller */
    int (*netpoll_wait)(int fd, int mode, int64_t deadline_ns);
    int (*netpoll_close)(int fd);
    int (*offload)(void (*fn)(void *arg), void *arg);
    int (*go_small)(void (*fn)(void *arg), void *arg);
};

#define GOPY_CAPSULE_NAME "gopy._gopy._C_API"

#ifndef GOPY_CAPSULE

/* ---- goroutines ---------------------------------------------------- */

/* Start fn(arg) in a new goroutine (Go's `go`).  0, or -1 with errno set
 * (ENOMEM: no memory for the goroutine or its stack; EAGAIN: the runtime
 * is shutting down). */
int gopy_go(void (*fn)(void *arg), void *arg);
/* gopy_go for a goroutine that declares a small need: fn(arg) runs on a
 * 2 KiB stack (16 KiB in ASan and TSan builds), the runtime's 320-byte
 * record of the goroutine included, and two such stacks share a page, so
 * that a parked one costs half a page where gopy_go's cost one.  There is
 * no guard page below it: a canary in its lowest bytes is checked each
 * time the goroutine parks, yields or ends, and a broken one is a fatal
 * error, but only then, and the overflow may already have overwritten
 * the goroutine below it.  For goroutines whose own frames stay within
 * 768 bytes and that call gopy's functions and little else (not stdio,
 * not the resolver): gopy's deepest call, a select, takes some 700 bytes
 * more, a channel receive 350; what gopy needs beyond that (starting a
 * thread, a fatal error) it does on its thread's own stack.  Link with
 * -Wl,-z,now where such a goroutine may be the first to call some libc
 * function: a lazily bound call runs the dynamic linker's resolver, about
 * 2 KiB of stack, on the goroutine's.  gopy's threads block asynchronous
 * signals, but a fault in the goroutine (SIGSEGV, SIGFPE) runs its handler
 * on the goroutine's stack unless the handler was installed with
 * SA_ONSTACK (gopy's own and Python's faulthandler are). */
int gopy_go_small(void (*fn)(void *arg), void *arg);
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

/* Go's sync.RWMutex: any number of readers or one writer.  A writer
 * waiting for the lock keeps new readers out (so a recursive rlock can
 * deadlock).  At most 2^30 readers at once.  Unlocking a lock not held
 * aborts the process (Go: fatal error). */
gopy_rwmutex *gopy_rwmutex_make(void);
void gopy_rwmutex_lock(gopy_rwmutex *rw);
bool gopy_rwmutex_trylock(gopy_rwmutex *rw);
void gopy_rwmutex_unlock(gopy_rwmutex *rw);
void gopy_rwmutex_rlock(gopy_rwmutex *rw);
bool gopy_rwmutex_tryrlock(gopy_rwmutex *rw);
void gopy_rwmutex_runlock(gopy_rwmutex *rw);
void gopy_rwmutex_free(gopy_rwmutex *rw);

/* Lockers for gopy_cond_make: a mutex, an RWMutex's write lock, and its
 * read lock (Go's RLocker). */
gopy_locker gopy_mutex_locker(gopy_mutex *m);
gopy_locker gopy_rwmutex_locker(gopy_rwmutex *rw);
gopy_locker gopy_rwmutex_rlocker(gopy_rwmutex *rw);

/* Go's sync.Once: the first gopy_once_do runs fn(arg); concurrent callers
 * wait until it has returned; later calls return at once.  fn calling
 * gopy_once_do on the same once deadlocks. */
gopy_once *gopy_once_make(void);
void gopy_once_do(gopy_once *o, void (*fn)(void *arg), void *arg);
void gopy_once_free(gopy_once *o);

/* Go's sync.Cond over the locker l.  wait: unlock l, park until
 * signalled, lock l again (the caller holds l).  signal wakes the
 * longest-waiting waiter, broadcast all of them; a wait that began
 * before a signal is never missed by it. */
gopy_cond *gopy_cond_make(gopy_locker l);
void gopy_cond_wait(gopy_cond *c);
void gopy_cond_signal(gopy_cond *c);
void gopy_cond_broadcast(gopy_cond *c);
void gopy_cond_free(gopy_cond *c); /* nobody may be waiting */

/* Go's sync.Pool of opaque items, cached per P.  get: a pooled item,
 * else new_item(ctx) (when given), else NULL.  put(NULL) does nothing.
 * The pool may drop items at any time, calling release(item, ctx) (when
 * given): gopy_pool_cleanup (Go does it at each GC) drops what was
 * already in the victim cache and moves every pool's items there, so an
 * item survives one cleanup.  Freeing a pool releases its items. */
gopy_pool *gopy_pool_make(void *(*new_item)(void *ctx), void (*release)(void *item, void *ctx),
                          void *ctx);
void *gopy_pool_get(gopy_pool *p);
void gopy_pool_put(gopy_pool *p, void *item);
void gopy_pool_free(gopy_pool *p);
void gopy_pool_cleanup(void);

/* Go's sync.Map, for concurrent use: loads take no lock (see
 * gopy_map_type for keys, values and their references).  The bool
 * results say whether the key was present (loaded) or the swap/delete
 * happened.  range calls fn(key, value, arg) for the entries present
 * when it started (a snapshot), until fn returns false; fn may use the
 * map. */
gopy_map *gopy_map_make(const gopy_map_type *type);
bool gopy_map_load(gopy_map *m, const void *key, void **value);
void gopy_map_store(gopy_map *m, void *key, void *value);
bool gopy_map_load_or_store(gopy_map *m, void *key, void *value, void **actual);
bool gopy_map_load_and_delete(gopy_map *m, const void *key, void **value);
void gopy_map_delete(gopy_map *m, const void *key);
bool gopy_map_swap(gopy_map *m, void *key, void *value, void **previous);
bool gopy_map_compare_and_swap(gopy_map *m, void *key, const void *old, void *new_value);
bool gopy_map_compare_and_delete(gopy_map *m, const void *key, const void *old);
void gopy_map_range(gopy_map *m, bool (*fn)(void *key, void *value, void *arg), void *arg);
void gopy_map_clear(gopy_map *m);
size_t gopy_map_len(gopy_map *m); /* entries now (racy under concurrent use) */
void gopy_map_free(gopy_map *m);

/* ---- context (Go's context package) --------------------------------
 *
 * A tree of cancellable contexts: cancelling one cancels every context
 * derived from it.  Handles are reference counted (the creator holds one
 * reference) and thread-safe.  NULL stands for the background context
 * wherever a context is expected.  Values and causes are not part of the
 * C API (Python keeps them in its context objects).  A Python context's
 * handle is its `handle` property: C goroutines can honour it (retain it
 * first if it may outlive the Python object).
 *
 * As in Go, a derived context stays registered with its parent until it
 * is cancelled: call gopy_context_cancel when done with it (then release).
 * One released without a cancel is freed once no reference to it is left
 * (its deadline's timer holds one until it fires); an after-func stays
 * registered until it runs or is stopped. */

/* The background context: never cancelled, no deadline.  Retain and
 * release do nothing to it. */
gopy_context *gopy_context_background(void);
/* A child cancelled by gopy_context_cancel or with its parent.  NULL with
 * errno ENOMEM on error. */
gopy_context *gopy_context_with_cancel(gopy_context *parent);
/* A child also cancelled (with GOPY_CTX_DEADLINE_EXCEEDED) at the wall-
 * clock time deadline_unix_ns (ns since the epoch); a parent's earlier
 * deadline wins; a deadline already past cancels it at once. */
gopy_context *gopy_context_with_deadline(gopy_context *parent, int64_t deadline_unix_ns);
/* gopy_context_with_deadline(parent, now + timeout_ns). */
gopy_context *gopy_context_with_timeout(gopy_context *parent, int64_t timeout_ns);
/* Cancel ctx and every context derived from it (GOPY_CTX_CANCELED);
 * later calls do nothing.  Returns once all of them are done (derived
 * ones first: whoever sees a context done sees its descendants done).
 * Frees the registration with the parent. */
void  gopy_context_cancel(gopy_context *ctx);
/* A channel (elem_size 0) closed when ctx is cancelled, for gopy_select
 * or gopy_chan_recv; borrowed: valid while ctx is held.  NULL for a
 * context that can never be cancelled (a nil case in select). */
gopy_chan *gopy_context_done(gopy_context *ctx);
/* 0 while not cancelled, then GOPY_CTX_CANCELED or
 * GOPY_CTX_DEADLINE_EXCEEDED: non-zero exactly when done is closed. */
int   gopy_context_err(gopy_context *ctx);
/* true and *deadline_unix_ns if ctx has a deadline (its own or an
 * ancestor's). */
bool  gopy_context_deadline(gopy_context *ctx, int64_t *deadline_unix_ns);
void  gopy_context_retain(gopy_context *ctx);
void  gopy_context_release(gopy_context *ctx);
/* Go's context.AfterFunc: run fn(arg) in a new goroutine once ctx is done
 * (at once if it is already).  NULL with errno on error. */
gopy_after_func *gopy_context_after_func(gopy_context *ctx, void (*fn)(void *arg), void *arg);
/* Stop fn from being run: true if this stopped it, false if it already
 * started (or was stopped before). */
bool  gopy_after_func_stop(gopy_after_func *af);
/* Drop the handle (does not stop fn). */
void  gopy_after_func_release(gopy_after_func *af);

/* ---- the netpoller (Go's runtime/netpoll) ---------------------------
 *
 * Wait for fd to become ready for mode (GOPY_POLL_READ or
 * GOPY_POLL_WRITE): a goroutine parks (its thread runs other goroutines
 * meanwhile), a plain thread blocks.  deadline_ns: CLOCK_MONOTONIC ns (the
 * clock of Python's time.monotonic_ns), < 0 for none; a deadline already
 * past returns GOPY_ETIMEDOUT at once unless fd is ready.  Any number of
 * goroutines and threads may wait on one fd, in either mode.  Returns
 * GOPY_OK (ready: retry the operation, which may still find it would
 * block: readiness wakes every waiter of that mode), GOPY_ETIMEDOUT,
 * GOPY_ECLOSED (gopy_netpoll_close(fd) was called meanwhile), or -1 with
 * errno EBADF (fd not open), EINVAL (bad mode) or EPERM (fd cannot be
 * polled: a regular file, a directory). */
int gopy_netpoll_wait(int fd, int mode, int64_t deadline_ns);
/* Call before close(fd): wakes its waiters with GOPY_ECLOSED and drops its
 * registration.  0, or -1 with errno EBADF (fd < 0).  Closed without it,
 * fd's waiters wait on until their deadline, or until a new wait on that
 * number finds it closed (a number reused by a new file works). */
int gopy_netpoll_close(int fd);
/* ---- calls gopy cannot see into ------------------------------------------ */

/* In a goroutine: run fn(arg) on a helper thread and park the goroutine
 * until it returns, so that its thread runs other goroutines meanwhile
 * (for a C library call that blocks, or a long computation).  Elsewhere
 * (an ordinary thread): call fn(arg) directly.  0, or -1 with errno only
 * if fn was not run at all (EINVAL: fn is NULL).  The helpers are a pool
 * of threads made on demand, at most 64 at once (the environment's
 * GOPY_OFFLOAD_THREADS), further calls waiting their turn in order. */
int gopy_offload(void (*fn)(void *arg), void *arg);

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
#define gopy_rwmutex_make (gopy_api_ptr->rwmutex_make)
#define gopy_rwmutex_lock (gopy_api_ptr->rwmutex_lock)
#define gopy_rwmutex_trylock (gopy_api_ptr->rwmutex_trylock)
#define gopy_rwmutex_unlock (gopy_api_ptr->rwmutex_unlock)
#define gopy_rwmutex_rlock (gopy_api_ptr->rwmutex_rlock)
#define gopy_rwmutex_tryrlock (gopy_api_ptr->rwmutex_tryrlock)
#define gopy_rwmutex_runlock (gopy_api_ptr->rwmutex_runlock)
#define gopy_rwmutex_free (gopy_api_ptr->rwmutex_free)
#define gopy_once_make (gopy_api_ptr->once_make)
#define gopy_once_do (gopy_api_ptr->once_do)
#define gopy_once_free (gopy_api_ptr->once_free)
#define gopy_mutex_locker (gopy_api_ptr->mutex_locker)
#define gopy_rwmutex_locker (gopy_api_ptr->rwmutex_locker)
#define gopy_rwmutex_rlocker (gopy_api_ptr->rwmutex_rlocker)
#define gopy_cond_make (gopy_api_ptr->cond_make)
#define gopy_cond_wait (gopy_api_ptr->cond_wait)
#define gopy_cond_signal (gopy_api_ptr->cond_signal)
#define gopy_cond_broadcast (gopy_api_ptr->cond_broadcast)
#define gopy_cond_free (gopy_api_ptr->cond_free)
#define gopy_pool_make (gopy_api_ptr->pool_make)
#define gopy_pool_get (gopy_api_ptr->pool_get)
#define gopy_pool_put (gopy_api_ptr->pool_put)
#define gopy_pool_free (gopy_api_ptr->pool_free)
#define gopy_pool_cleanup (gopy_api_ptr->pool_cleanup)
#define gopy_map_make (gopy_api_ptr->map_make)
#define gopy_map_load (gopy_api_ptr->map_load)
#define gopy_map_store (gopy_api_ptr->map_store)
#define gopy_map_load_or_store (gopy_api_ptr->map_load_or_store)
#define gopy_map_load_and_delete (gopy_api_ptr->map_load_and_delete)
#define gopy_map_delete (gopy_api_ptr->map_delete)
#define gopy_map_swap (gopy_api_ptr->map_swap)
#define gopy_map_compare_and_swap (gopy_api_ptr->map_compare_and_swap)
#define gopy_map_compare_and_delete (gopy_api_ptr->map_compare_and_delete)
#define gopy_map_range (gopy_api_ptr->map_range)
#define gopy_map_clear (gopy_api_ptr->map_clear)
#define gopy_map_len (gopy_api_ptr->map_len)
#define gopy_map_free (gopy_api_ptr->map_free)

#define gopy_context_background (gopy_api_ptr->context_background)
#define gopy_context_with_cancel (gopy_api_ptr->context_with_cancel)
#define gopy_context_with_deadline (gopy_api_ptr->context_with_deadline)
#define gopy_context_with_timeout (gopy_api_ptr->context_with_timeout)
#define gopy_context_cancel (gopy_api_ptr->context_cancel)
#define gopy_context_done (gopy_api_ptr->context_done)
#define gopy_context_err (gopy_api_ptr->context_err)
#define gopy_context_deadline (gopy_api_ptr->context_deadline)
#define gopy_context_retain (gopy_api_ptr->context_retain)
#define gopy_context_release (gopy_api_ptr->context_release)
#define gopy_context_after_func (gopy_api_ptr->context_after_func)
#define gopy_after_func_stop (gopy_api_ptr->after_func_stop)
#define gopy_after_func_release (gopy_api_ptr->after_func_release)
#define gopy_netpoll_wait (gopy_api_ptr->netpoll_wait)
#define gopy_netpoll_close (gopy_api_ptr->netpoll_close)
#define gopy_offload (gopy_api_ptr->offload)
#define gopy_go_small (gopy_api_ptr->go_small)

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
