/*
 * signals.c -- turning a goroutine stack overflow into a clear fatal
 * error.  A goroutine that runs off its stack touches the guard page
 * below it; the SIGSEGV handler (on each M's alternate signal stack, since
 * the goroutine's stack is exhausted) recognises the guard page, names the
 * goroutine, and lets the signal take its default course.  Faults that are
 * not guard-page hits go to whatever handler was installed before us
 * (Python's faulthandler, say).  The runtime's threads start here, with
 * the asynchronous signals blocked, and are named here (gopy-m<id>,
 * gopy-sysmon, gopy-offload).
 */
#define _GNU_SOURCE
#include "runtime.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { ALTSTACK_SIZE = 64 * 1024 };

/* Written once by rt_signals_init (under its caller's init lock), read by
 * the handler. */
static struct sigaction prev_segv, prev_bus;

/* Async-signal-safe formatting into buf; returns the length. */
static size_t fmt_u64(char *buf, uint64_t v, int base)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % (unsigned)base];
        v /= (unsigned)base;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static void fault_handler(int sig, siginfo_t *info, void *uctx)
{
    struct sigaction *prev = sig == SIGBUS ? &prev_bus : &prev_segv;
    if (rt_stack_is_guard(info->si_addr)) {
        char num[24];
        G *g = getg();
        rt_put(STDERR_FILENO, "gopy: fatal error: stack overflow in goroutine ");
        num[fmt_u64(num, g != NULL ? (uint64_t)g->goid : 0, 10)] = '\0';
        rt_put(STDERR_FILENO, num);
        rt_put(STDERR_FILENO, " (it reached the guard page at 0x");
        num[fmt_u64(num, (uint64_t)(uintptr_t)info->si_addr, 16)] = '\0';
        rt_put(STDERR_FILENO, num);
        if (g != NULL && g->stack_class == RT_STACK_SMALL)
            rt_put(STDERR_FILENO, "); it ran on a small stack: start it with gopy_go\n");
        else
            rt_put(STDERR_FILENO, "); give goroutines bigger stacks with GOPY_STACK_SIZE (C) "
                                  "or GOPY_PYTHON_STACK_SIZE (Python)\n");
        rt_traceback(STDERR_FILENO);
    }
    if (prev->sa_flags & SA_SIGINFO) {
        if (prev->sa_sigaction != NULL) {
            prev->sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    /* Default action: returning re-runs the faulting access, which now
     * kills the process with the signal (and a core dump where enabled). */
    signal(sig, SIG_DFL);
}

void rt_signals_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fault_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    sigaction(SIGBUS, &sa, &prev_bus);
}

typedef struct {
    pthread_t *thread;
    size_t stack_size;
    void *(*fn)(void *);
    void *arg;
    int err;
} thread_start;

static void start_thread(void *arg)
{
    thread_start *t = arg;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (t->stack_size != 0)
        pthread_attr_setstacksize(&attr, t->stack_size);
    /* The new thread inherits the mask it is created under. */
    sigset_t async, old;
    sigfillset(&async);
    sigdelset(&async, SIGSEGV);
    sigdelset(&async, SIGBUS);
    sigdelset(&async, SIGFPE);
    sigdelset(&async, SIGILL);
    sigdelset(&async, SIGTRAP);
    sigdelset(&async, SIGABRT);
    pthread_sigmask(SIG_SETMASK, &async, &old);
    t->err = pthread_create(t->thread, &attr, t->fn, t->arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
}

int rt_thread_start(pthread_t *thread, size_t stack_size, void *(*fn)(void *), void *arg)
{
    thread_start t = {thread, stack_size, fn, arg, 0};
    rt_on_system_stack(start_thread, &t); /* ~800 bytes: 460 in pthread_create */
    return t.err;
}

void rt_thread_name(const char *fmt, ...)
{
    char buf[16]; /* the kernel keeps 15 bytes and a NUL */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    (void)pthread_setname_np(pthread_self(), buf);
}

void *rt_signals_thread_init(void)
{
    stack_t ss;
    ss.ss_sp = malloc(ALTSTACK_SIZE);
    if (ss.ss_sp == NULL)
        return NULL; /* an overflow then dies without the message */
    ss.ss_size = ALTSTACK_SIZE;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    return ss.ss_sp;
}
