/*
 * stack.c -- arenas of guarded goroutine stacks (see stack.h).
 */
#define _GNU_SOURCE
#include "stack.h"

#include "runtime.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Arenas hold at least ARENA_MIN_BYTES of stacks.
 * All state below is guarded by stack_lock. */
enum { ARENA_MIN_BYTES = 16 << 20 };

typedef struct arena {
    struct arena *next;
    char *base;
    size_t bytes;
    size_t slot;  /* stack + its guard page, or the stack alone (packed) */
    bool packed;  /* small stacks: one guard page at base, under the first */
} arena;

static rt_mutex stack_lock = RT_MUTEX_INIT(LR_STACK);
static size_t class_size[RT_STACK_NCLASSES] = {256 << 10, RT_SMALL_STACK_BYTES, 1 << 20};
static bool class_used[RT_STACK_NCLASSES];
static char *carve_next[RT_STACK_NCLASSES]; /* next unused slot */
static char *carve_end[RT_STACK_NCLASSES];
/* Newest first; also read without the lock by the fault handler. */
static _Atomic(arena *) arenas;
/* Set on first use by whichever thread gets there; every thread computes
 * the same value, but the accesses must still be atomic. */
static _Atomic size_t page_size;

/* Guard mode: 0 unknown, 1 madvise, 2 mprotect (within budget). */
static int guard_mode;
static long mprotect_budget; /* guard pages mprotect may still make */
static long mprotect_made;   /* guard pages mprotect made */
static bool guard_ran_out;
/* GOPY_GUARD=mprotect: take the fallback even where MADV_GUARD_INSTALL
 * works, to test (and see) what a kernel before 6.13 gets. */
static bool guard_force_mprotect;

size_t rt_page_size(void)
{
    size_t n = atomic_load_explicit(&page_size, memory_order_relaxed);
    if (n == 0) {
        long ps = sysconf(_SC_PAGESIZE);
        n = ps > 0 ? (size_t)ps : 4096;
        atomic_store_explicit(&page_size, n, memory_order_relaxed);
    }
    return n;
}

static size_t round_pages(size_t n)
{
    size_t ps = rt_page_size();
    return (n + ps - 1) & ~(ps - 1);
}

bool rt_stack_set_size(enum rt_stack_class cls, size_t bytes)
{
    bool ok = false;
    rt_lock(&stack_lock);
    if (cls != RT_STACK_SMALL && !class_used[cls] && bytes >= 16 * 1024) {
        class_size[cls] = round_pages(bytes);
        ok = true;
    }
    rt_unlock(&stack_lock);
    return ok;
}

size_t rt_stack_size(enum rt_stack_class cls)
{
    return class_size[cls];
}

void rt_stack_guard_init(void)
{
    const char *e = getenv("GOPY_GUARD");
    rt_lock(&stack_lock);
    guard_force_mprotect = e != NULL && strcmp(e, "mprotect") == 0;
    rt_unlock(&stack_lock);
}

static long read_max_map_count(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    return max;
}

/* A quarter of vm.max_map_count: each mprotect'ed guard splits a mapping
 * into two more, so the guards take half the budget and leave the other
 * half to the program. */
static void start_mprotect(void)
{
    guard_mode = 2;
    mprotect_budget = read_max_map_count() / 4;
}

static void install_guard(char *page)
{
    size_t ps = rt_page_size();
    if (guard_mode == 0) {
        if (!guard_force_mprotect && madvise(page, ps, MADV_GUARD_INSTALL) == 0) {
            guard_mode = 1;
            return;
        }
        start_mprotect();
    }
    if (guard_mode == 1) {
        if (madvise(page, ps, MADV_GUARD_INSTALL) == 0)
            return;
        start_mprotect(); /* e.g. a kernel that lost support: fall back */
    }
    if (mprotect_budget > 0 && mprotect(page, ps, PROT_NONE) == 0) {
        mprotect_budget--;
        mprotect_made++;
        return;
    }
    if (!guard_ran_out) {
        /* Once, on stderr (and in stats: "mprotect+none"): from here on an
         * overflow is silent memory corruption, not a fatal error. */
        guard_ran_out = true;
        fprintf(stderr,
                "gopy: warning: %ld goroutine stacks have mprotect guard pages, all that "
                "a quarter of vm.max_map_count allows; further stacks have none, so a "
                "stack overflow there goes undetected (raise vm.max_map_count, or run "
                "Linux 6.13+, whose MADV_GUARD_INSTALL needs no mapping)\n",
                mprotect_made);
    }
}

/* Small stacks have no guard page each: see stack.h. */
static size_t slot_guard(enum rt_stack_class cls)
{
    return cls == RT_STACK_SMALL ? 0 : rt_page_size();
}

static bool new_arena(enum rt_stack_class cls)
{
    bool packed = slot_guard(cls) == 0;
    size_t slot = class_size[cls] + slot_guard(cls);
    size_t n = ARENA_MIN_BYTES / slot;
    if (n < 4)
        n = 4;
    size_t bytes = n * slot + (packed ? rt_page_size() : 0);
    arena *a = malloc(sizeof *a);
    if (a == NULL)
        return false;
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        free(a);
        return false;
    }
    a->base = base;
    a->bytes = bytes;
    a->slot = slot;
    a->packed = packed;
    a->next = atomic_load_explicit(&arenas, memory_order_relaxed);
    atomic_store_explicit(&arenas, a, memory_order_release);
    carve_next[cls] = base;
    carve_end[cls] = base + bytes;
    if (packed) {
        install_guard(base);
        carve_next[cls] += rt_page_size();
    }
    return true;
}

bool rt_stack_alloc(enum rt_stack_class cls, rt_stack *s)
{
    rt_lock(&stack_lock);
    class_used[cls] = true;
    size_t guard = slot_guard(cls);
    size_t slot = class_size[cls] + guard;
    if (carve_next[cls] == NULL || carve_next[cls] + slot > carve_end[cls]) {
        if (!new_arena(cls)) {
            rt_unlock(&stack_lock);
            errno = ENOMEM;
            return false;
        }
    }
    char *at = carve_next[cls];
    carve_next[cls] += slot;
    if (guard != 0)
        install_guard(at);
    rt_unlock(&stack_lock);
    s->lo = at + guard;
    s->hi = at + slot;
    if (cls == RT_STACK_SMALL) {
        uintptr_t *w = (uintptr_t *)(void *)s->lo;
        for (int i = 0; i < RT_SMALL_CANARY_WORDS; i++)
            w[i] = rt_small_canary(s, i);
    }
    return true;
}

bool rt_stack_is_guard(const void *addr)
{
    /* Called from a fault handler: no lock.  Arenas are published with a
     * release store and never change or go away afterwards. */
    const char *p = addr;
    for (arena *a = atomic_load_explicit(&arenas, memory_order_acquire);
         a != NULL; a = a->next) {
        if (p >= a->base && p < a->base + a->bytes)
            return a->packed ? (size_t)(p - a->base) < rt_page_size()
                             : (size_t)(p - a->base) % a->slot < rt_page_size();
    }
    return false;
}

const char *rt_stack_guard_mode(void)
{
    switch (guard_mode) {
    case 1:
        return "madvise";
    case 2:
        return guard_ran_out ? "mprotect+none" : "mprotect";
    default:
        return "none";
    }
}

void rt_stack_after_fork(void)
{
    /* A thread that held the lock is gone; the arenas stay valid. */
    rt_mutex_init(&stack_lock, LR_STACK);
}
