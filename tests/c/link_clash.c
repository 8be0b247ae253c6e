/*
 * A program whose own globals have the names of the runtime's internals
 * (sched, getg, newproc: a variable and functions).  It must link against
 * build/libgopyrt.a, which exports only gopy_*, and its definitions must be
 * the ones it uses while the runtime keeps its own.  Built and run by
 * tests/test_runtime_c.py (test_program_with_runtime_names_links).
 */
#include <gopy.h>

#include <stdint.h>
#include <stdio.h>

int sched = 7;

int getg(void)
{
    return 35;
}

static int spawned;

void newproc(void)
{
    spawned++;
}

static void producer(void *arg)
{
    gopy_chan *c = arg;
    for (int64_t i = 1; i <= 3; i++)
        gopy_chan_send(c, &i);
    gopy_chan_close(c);
    gopy_chan_release(c);
}

int main(void)
{
    gopy_chan *c = gopy_chan_make(sizeof(int64_t), 0);
    newproc();
    gopy_chan_retain(c); /* the producer's reference */
    if (gopy_go(producer, c) != GOPY_OK)
        return 1;
    int64_t v, sum = 0;
    while (gopy_chan_recv(c, &v))
        sum += v;
    gopy_chan_release(c);
    printf("sum=%lld sched=%d getg=%d newproc=%d\n", (long long)sum, sched, getg(), spawned);
    return 0;
}
