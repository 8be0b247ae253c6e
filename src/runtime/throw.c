/*
 * throw.c -- the runtime's one way to die (Go's throw): a corrupted
 * state or a fatal misuse prints "gopy: fatal error: <message>", under
 * GOPY_TRACEBACK=all every goroutine (dump.c), and aborts.  It may run
 * with any runtime lock held and on any thread, so it takes no lock and
 * allocates nothing: the message is formatted on the stack and written
 * with write(2).
 */
#include "runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rt_traceback_init(void)
{
    const char *tb = getenv("GOPY_TRACEBACK");
    sched.traceback_all = tb != NULL && (strcmp(tb, "all") == 0 || strcmp(tb, "1") == 0);
}

void rt_traceback(int fd)
{
    if (!sched.traceback_all)
        return;
    rt_put(fd, "\n");
    rt_dump_goroutines(fd, NULL);
}

typedef struct {
    const char *fmt;
    va_list *args;
} throw_call;

static _Noreturn void vthrow(void *arg)
{
    throw_call *t = arg;
    static const char prefix[] = "gopy: fatal error: ";
    char buf[512];
    memcpy(buf, prefix, sizeof prefix - 1);
    size_t n = sizeof prefix - 1;
    size_t room = sizeof buf - n - 2; /* keeps two bytes: newline, NUL */
    int k = vsnprintf(buf + n, room, t->fmt, *t->args);
    if (k > 0)
        n += (size_t)k < room ? (size_t)k : room - 1; /* truncated */
    buf[n++] = '\n';
    buf[n] = '\0';
    rt_put(STDERR_FILENO, buf);
    rt_traceback(STDERR_FILENO);
    abort();
}

_Noreturn void rt_throw(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    throw_call t = {fmt, &ap};
    rt_on_system_stack(vthrow, &t); /* the arguments stay in this frame */
    abort();                        /* not reached */
}
