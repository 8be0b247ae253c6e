/*
 * ctx.c -- building new contexts and switching between them, with the
 * sanitizers told about every stack switch (ASan fiber API, TSan fibers)
 * so that instrumented builds see goroutine stacks as separate stacks.
 */
#define _GNU_SOURCE
#include "ctx.h"
#include "runtime.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || !defined(RT_CTX_ASM)
#define CTX_HAS_ENTRY_WRAPPER 1
/* A new context first runs ctx_entry, which tells the sanitizers the switch
 * has finished and then calls the real function.  Nothing else needs the
 * function and argument, so they travel in a small heap cell. */
typedef struct {
    void (*fn)(void *);
    void *arg;
} ctx_entry_cell;

static void ctx_entry(void *p)
{
    ctx_entry_cell cell = *(ctx_entry_cell *)p;
    free(p);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    cell.fn(cell.arg);
    rt_throw("a goroutine's entry function returned");
}
#endif

#ifdef RT_CTX_ASM
void rt_ctx_switch_sp(void **save_sp, void *load_sp);
void rt_ctx_start(void);

void rt_ctx_init(rt_ctx *c, void *lo, size_t size, void (*fn)(void *), void *arg)
{
    memset(c, 0, sizeof *c);
#ifdef CTX_HAS_ENTRY_WRAPPER
    ctx_entry_cell *cell = malloc(sizeof *cell);
    if (cell == NULL)
        rt_throw("out of memory");
    cell->fn = fn;
    cell->arg = arg;
    fn = ctx_entry;
    arg = cell;
#endif
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* The frame rt_ctx_switch_sp pops; see switch_x86_64.S.  The return
     * slot sits at top-8 so rt_ctx_start runs with a 16-aligned rsp. */
    uint64_t *f = (uint64_t *)(top - 64);
    f[0] = 0x1F80 | ((uint64_t)0x037F << 32); /* default MXCSR, x87 cw */
    f[1] = 0;                                  /* r15 */
    f[2] = 0;                                  /* r14 */
    f[3] = (uint64_t)(uintptr_t)fn;            /* r13 */
    f[4] = (uint64_t)(uintptr_t)arg;           /* r12 */
    f[5] = 0;                                  /* rbx */
    f[6] = 0;                                  /* rbp: ends frame chains */
    f[7] = (uint64_t)(uintptr_t)rt_ctx_start;  /* return address */
    c->sp = f;
#elif defined(__aarch64__)
    /* The 176-byte frame of switch_aarch64.S, 16-aligned. */
    uint64_t *f = (uint64_t *)(top - 176);
    memset(f, 0, 176);
    f[0] = (uint64_t)(uintptr_t)fn;           /* x19 */
    f[1] = (uint64_t)(uintptr_t)arg;          /* x20 */
    f[11] = (uint64_t)(uintptr_t)rt_ctx_start; /* x30 */
    c->sp = f;
#endif
#if defined(__SANITIZE_THREAD__)
    c->tsan_fiber = __tsan_create_fiber(0);
#endif
#if defined(__SANITIZE_ADDRESS__)
    c->asan_stack_lo = lo;
    c->asan_stack_size = size;
    /* A recycled stack still carries the poisoned redzones of the frames
     * its last goroutine never returned from (it left for good through
     * rt_ctx_switch); the new goroutine's frames would trip on them. */
    __asan_unpoison_memory_region(lo, size);
#endif
}

static inline void ctx_raw_switch(rt_ctx *from, rt_ctx *to)
{
    rt_ctx_switch_sp(&from->sp, to->sp);
}

#else /* ucontext fallback */

static void ctx_uc_trampoline(unsigned hi, unsigned lo)
{
    ctx_entry((void *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}

void rt_ctx_init(rt_ctx *c, void *lo, size_t size, void (*fn)(void *), void *arg)
{
    memset(c, 0, sizeof *c);
    ctx_entry_cell *cell = malloc(sizeof *cell);
    if (cell == NULL)
        rt_throw("out of memory");
    if (getcontext(&c->uc) != 0)
        rt_throw("getcontext failed");
    cell->fn = fn;
    cell->arg = arg;
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)cell;
    makecontext(&c->uc, (void (*)(void))ctx_uc_trampoline, 2,
                (unsigned)((uint64_t)p >> 32), (unsigned)(p & 0xffffffffu));
#if defined(__SANITIZE_THREAD__)
    c->tsan_fiber = __tsan_create_fiber(0);
#endif
#if defined(__SANITIZE_ADDRESS__)
    c->asan_stack_lo = lo;
    c->asan_stack_size = size;
    /* A recycled stack still carries the poisoned redzones of the frames
     * its last goroutine never returned from (it left for good through
     * rt_ctx_switch); the new goroutine's frames would trip on them. */
    __asan_unpoison_memory_region(lo, size);
#endif
}

static inline void ctx_raw_switch(rt_ctx *from, rt_ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
#endif

void rt_ctx_init_thread(rt_ctx *c)
{
    memset(c, 0, sizeof *c);
#if defined(__SANITIZE_THREAD__)
    c->tsan_fiber = __tsan_get_current_fiber();
#endif
#if defined(__SANITIZE_ADDRESS__)
    /* ASan must be told the bounds of the stack we switch back to. */
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
            c->asan_stack_lo = lo;
            c->asan_stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
#endif
}

void rt_ctx_destroy(rt_ctx *c)
{
#if defined(__SANITIZE_THREAD__)
    if (c->tsan_fiber != NULL)
        __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
#else
    (void)c;
#endif
}

void rt_ctx_switch(rt_ctx *from, rt_ctx *to)
{
#if defined(__SANITIZE_ADDRESS__)
    void *fake_stack = NULL;
    __sanitizer_start_switch_fiber(&fake_stack, to->asan_stack_lo,
                                   to->asan_stack_size);
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    ctx_raw_switch(from, to);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake_stack, NULL, NULL);
#endif
}
