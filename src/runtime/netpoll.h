/*
 * netpoll.h -- between the portable netpoller (netpoll.c) and the OS's
 * readiness API behind it (netpoll_epoll.c; a kqueue file would implement
 * the same five functions).  The scheduler's side is in runtime.h.
 *
 * netpoll.c serialises netpoll_os_init and calls the others only after it
 * has succeeded; arm and disarm of one descriptor are serialised by that
 * descriptor's lock; wait and break may run in any threads at once.
 */
#ifndef GOPY_RT_NETPOLL_H
#define GOPY_RT_NETPOLL_H

#include <stdbool.h>
#include <stdint.h>

/* A readiness report: the token its registration was armed with, and the
 * modes (GOPY_POLL_READ | GOPY_POLL_WRITE) it reports.  An error or a
 * hang-up reports both: whoever waits learns it from their next call. */
typedef struct {
    uint64_t token;
    int modes;
} netpoll_event;

/* Make the poller and the channel that breaks a blocked wait.  0, or -1
 * with errno. */
int netpoll_os_init(void);
/* Fork child: close the inherited poller, which the parent still uses,
 * without changing its registrations. */
void netpoll_os_forget(void);
/* Watch fd once for modes (0: for nothing but errors): the first readiness
 * is reported once, then the registration stays disarmed until armed
 * again.  Never trusts an earlier registration to exist (fd may have been
 * closed and its number reused): `registered`, whether one may exist, only
 * says which call to try first.  0, or -1 with errno: EBADF, EPERM (fd
 * cannot be watched: a regular file), ENOMEM... */
int netpoll_os_arm(int fd, int modes, uint64_t token, bool registered);
/* Forget fd's registration, if it has one (fd is about to be closed). */
void netpoll_os_disarm(int fd);
/* Make a wait blocked now, or the next blocking one, return at once. */
void netpoll_os_break(void);
/* Wait up to delay ns (< 0: until an event or a break; 0: do not block)
 * and return up to max events in evs (none on a break, a signal or the
 * timeout).  Only a blocking wait consumes a break. */
int netpoll_os_wait(int64_t delay, netpoll_event *evs, int max);

#endif
