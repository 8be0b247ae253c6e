/*
 * netpoll_epoll.c -- the netpoller's OS side on Linux: one epoll instance,
 * registrations armed one-shot (EPOLLONESHOT, see netpoll.c for why), and
 * an eventfd that breaks a blocked epoll_wait (Go's netpoll_epoll.go).
 */
#define _GNU_SOURCE
#include "netpoll.h"

#include "runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The epoll instance and the eventfd registered in it (level-triggered)
 * to break a blocked wait; -1 until netpoll_os_init.  Written only there
 * and in a fork child, both before netpoll.c publishes the poller. */
static int epfd = -1;
static int breakfd = -1;
/* 1 from a break's write until a blocking wait drains it: one pending
 * write is enough, however many breaks come meanwhile. */
static _Atomic uint32_t break_pending;
/* epoll_pwait2 (Linux 5.11) takes a timeout in ns; where it is missing
 * (ENOSYS) this turns false and timeouts round up to whole ms. */
static _Atomic bool have_pwait2 = true;

/* The token of the break's registration: netpoll.c's tokens carry a
 * descriptor number (< 2^31) in their low half, never all ones. */
#define BREAK_TOKEN UINT64_MAX

int netpoll_os_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return -1;
    breakfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = BREAK_TOKEN};
    if (breakfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, breakfd, &ev) < 0) {
        int err = errno;
        if (breakfd >= 0)
            close(breakfd);
        close(epfd);
        epfd = breakfd = -1;
        errno = err;
        return -1;
    }
    return 0;
}

void netpoll_os_forget(void)
{
    if (epfd >= 0)
        close(epfd);
    if (breakfd >= 0)
        close(breakfd);
    epfd = breakfd = -1;
    atomic_store(&break_pending, 0);
}

int netpoll_os_arm(int fd, int modes, uint64_t token, bool registered)
{
    if (fd == epfd || fd == breakfd) {
        /* The caller's descriptor was closed and its number is ours now. */
        errno = EBADF;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLONESHOT, .data.u64 = token};
    if (modes & GOPY_POLL_READ)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (modes & GOPY_POLL_WRITE)
        ev.events |= EPOLLOUT;
    /* The call the caller's hint says will do, first; the other if epoll
     * says otherwise.  ENOENT: never registered, or its file was closed
     * (epoll dropped it) and the number perhaps reused by a new file.
     * EEXIST: registered though the hint said not (the hint is only the
     * caller's bookkeeping: trusted for speed, never for correctness). */
    if (registered) {
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
            return 0;
        if (errno != ENOENT)
            return -1;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

void netpoll_os_disarm(int fd)
{
    /* ENOENT / EBADF: nothing registered, or already closed; either way
     * nothing is left to forget. */
    (void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

void netpoll_os_break(void)
{
    uint32_t idle = 0;
    if (!atomic_compare_exchange_strong(&break_pending, &idle, 1))
        return;
    uint64_t one = 1;
    while (write(breakfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static int wait_ms(int64_t delay, struct epoll_event *evs, int max)
{
    int ms = -1;
    if (delay >= 0) {
        /* Round up: waking before a timer is due would only poll again. */
        int64_t m = delay / 1000000 + (delay % 1000000 != 0);
        ms = m > INT_MAX ? INT_MAX : (int)m;
    }
    return epoll_wait(epfd, evs, max, ms);
}

static int wait_os(int64_t delay, struct epoll_event *evs, int max)
{
    if (delay <= 0 || !atomic_load_explicit(&have_pwait2, memory_order_relaxed))
        return wait_ms(delay, evs, max);
#ifdef SYS_epoll_pwait2
    struct timespec ts = {(time_t)(delay / 1000000000), (long)(delay % 1000000000)};
    int n = (int)syscall(SYS_epoll_pwait2, epfd, evs, max, &ts, NULL, 0);
    if (n >= 0 || errno != ENOSYS)
        return n;
    atomic_store_explicit(&have_pwait2, false, memory_order_relaxed);
#endif
    return wait_ms(delay, evs, max);
}

enum { WAIT_MAX = 128 };

int netpoll_os_wait(int64_t delay, netpoll_event *out, int max)
{
    struct epoll_event evs[WAIT_MAX];
    if (max > WAIT_MAX)
        max = WAIT_MAX;
    int n = wait_os(delay, evs, max);
    if (n < 0)
        return 0; /* EINTR: the caller looks again */
    int k = 0;
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events;
        if (evs[i].data.u64 == BREAK_TOKEN) {
            /* A non-blocking poll leaves it for the blocked one it is
             * meant for. */
            if (delay != 0) {
                uint64_t v;
                while (read(breakfd, &v, sizeof v) < 0 && errno == EINTR) {
                }
                atomic_store(&break_pending, 0);
            }
            continue;
        }
        int modes = 0;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            modes |= GOPY_POLL_READ;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            modes |= GOPY_POLL_WRITE;
        out[k++] = (netpoll_event){evs[i].data.u64, modes};
    }
    return k;
}
