/*
 * ctx.h -- machine context switching between goroutine stacks.
 *
 * An rt_ctx is a suspended execution: on x86-64 and aarch64 just its stack
 * pointer (the callee-saved registers and the floating-point control words
 * are pushed on that stack by rt_ctx_switch), elsewhere a ucontext_t.
 *
 * rt_ctx_switch saves the running execution in *from and resumes *to.  It
 * returns when something switches back to *from.  The sanitizer fiber
 * hooks (ASan, TSan) are called around every switch in sanitizer builds.
 */
#ifndef GOPY_RT_CTX_H
#define GOPY_RT_CTX_H

#include <stddef.h>

/* GOPY_FORCE_UCONTEXT builds the fallback on x86-64/aarch64 too, to test it. */
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(GOPY_FORCE_UCONTEXT)
#define RT_CTX_ASM 1
typedef struct rt_ctx {
    void *sp;
#if defined(__SANITIZE_THREAD__)
    void *tsan_fiber;
#endif
#if defined(__SANITIZE_ADDRESS__)
    const void *asan_stack_lo;
    size_t asan_stack_size;
#endif
} rt_ctx;
#else
#include <ucontext.h>
typedef struct rt_ctx {
    ucontext_t uc;
#if defined(__SANITIZE_THREAD__)
    void *tsan_fiber;
#endif
#if defined(__SANITIZE_ADDRESS__)
    const void *asan_stack_lo;
    size_t asan_stack_size;
#endif
} rt_ctx;
#endif

/* Prepare *c so that switching to it runs fn(arg) on the stack
 * [lo, lo+size).  fn must never return: it switches away for good. */
void rt_ctx_init(rt_ctx *c, void *lo, size_t size, void (*fn)(void *), void *arg);
/* Describe the calling thread's own stack (an M's scheduler context). */
void rt_ctx_init_thread(rt_ctx *c);
/* Release what rt_ctx_init allocated (sanitizer fibers). */
void rt_ctx_destroy(rt_ctx *c);
void rt_ctx_switch(rt_ctx *from, rt_ctx *to);

#endif
