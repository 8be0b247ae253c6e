/*
 * stack.h -- goroutine stacks.
 *
 * Each stack is a region of reserved, lazily committed virtual memory with
 * a guard page at its low end, carved from large arenas so that 100,000
 * stacks need a few hundred mappings, not 200,000 (vm.max_map_count is
 * 65,530 by default).  Guard pages are installed with MADV_GUARD_INSTALL
 * (Linux 6.13+, no extra mapping); where that is missing, with mprotect
 * while the mapping budget allows (a quarter of vm.max_map_count), and
 * without a guard beyond it (a warning on stderr says so, once; stats say
 * "mprotect+none").  GOPY_GUARD=mprotect forces the fallback, to test
 * what an older kernel gets.
 *
 * Small stacks (gopy_go_small) are the exception to the guard: two share
 * a page, so only the lowest of an arena has a guard page below it.  Each
 * keeps a canary in its lowest bytes instead, checked whenever its
 * goroutine leaves its M (proc.c): an overflow is reported there, after
 * the fact, and may already have overwritten the stack below it.
 *
 * Stacks are never returned to the OS: a finished goroutine keeps its stack
 * and goes on a free list with it (proc.c).
 */
#ifndef GOPY_RT_STACK_H
#define GOPY_RT_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

enum rt_stack_class {
    RT_STACK_C,     /* C goroutines */
    RT_STACK_SMALL, /* C goroutines that declared a small need: packed, unguarded */
    RT_STACK_HOST,  /* host (Python) goroutines: deeper C call chains */
    RT_STACK_NCLASSES
};
/* The classes of C goroutines: their free Gs are cached per P (host Gs'
 * per M). */
#define RT_STACK_C_CLASSES RT_STACK_HOST

/* A small stack's bytes, its G included.  A goroutine parked in a channel
 * receive uses 672 of them at -O2 (its G 320, its frames 352); ASan's
 * redzones make frames several times larger, and TSan's runtime runs on
 * the goroutine's stack with lazily bound calls of its own. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
enum { RT_SMALL_STACK_BYTES = 16 << 10 };
#else
enum { RT_SMALL_STACK_BYTES = 2 << 10 };
#endif
/* The canary: this many words at a small stack's low end. */
enum { RT_SMALL_CANARY_WORDS = 8 };

typedef struct {
    char *lo; /* lowest usable byte (just above the guard page) */
    char *hi; /* one past the highest byte */
} rt_stack;

/* Set the usable size of a class (bytes, rounded up to pages); only before
 * the first allocation of that class.  Returns false if too late or too
 * small. */
bool rt_stack_set_size(enum rt_stack_class cls, size_t bytes);
size_t rt_stack_size(enum rt_stack_class cls);
/* A fresh stack, or false (errno ENOMEM). */
bool rt_stack_alloc(enum rt_stack_class cls, rt_stack *s);
/* A small stack's canary word i: differs from stack to stack, so that a
 * copy of another stack's bottom does not pass for intact. */
static inline uintptr_t rt_small_canary(const rt_stack *s, int i)
{
    return ((uintptr_t)s->lo + (uintptr_t)i) ^ (uintptr_t)0x9e3779b97f4a7c15ull;
}
/* False if the goroutine on small stack s wrote over its canary. */
static inline bool rt_small_stack_intact(const rt_stack *s)
{
    const uintptr_t *w = (const uintptr_t *)(const void *)s->lo;
    for (int i = 0; i < RT_SMALL_CANARY_WORDS; i++)
        if (w[i] != rt_small_canary(s, i))
            return false;
    return true;
}
/* True if addr lies in the guard page of some goroutine stack. */
bool rt_stack_is_guard(const void *addr);
/* How guard pages are made: "madvise", "mprotect", "mprotect+none" or
 * "none" (for runtime.stats and the docs). */
const char *rt_stack_guard_mode(void);
/* Read GOPY_GUARD (rt_init, before the first stack): "mprotect" forces
 * the mprotect fallback; anything else, or unset, picks MADV_GUARD_INSTALL
 * where the kernel has it. */
void rt_stack_guard_init(void);
size_t rt_page_size(void);
/* In a fork child: reset the allocator's lock. */
void rt_stack_after_fork(void);

/* A goroutine starts (live) or has finished on s.  LeakSanitizer (ASan
 * builds) scans threads' stacks, not these mappings: a live goroutine's
 * stack is a root, so that what only a parked goroutine points to is not
 * reported as leaked at exit; a finished one's is not (its stale pointers
 * would hide leaks). */
static inline void rt_stack_lsan_root(const rt_stack *s, bool live)
{
#if defined(__SANITIZE_ADDRESS__)
    if (live)
        __lsan_register_root_region(s->lo, (size_t)(s->hi - s->lo));
    else
        __lsan_unregister_root_region(s->lo, (size_t)(s->hi - s->lo));
#else
    (void)s;
    (void)live;
#endif
}

#endif
