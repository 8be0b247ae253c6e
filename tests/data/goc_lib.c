/* Test library for gopy.go_c: C functions run as goroutines.  It links
 * against nothing; functions that use the runtime get the C API table
 * (the gopy module's capsule pointer) in their argument. */
#include <stdint.h>
#include <gopy.h>

/* arg: int64 a[2 + n]: a[1] = n; fills a[2 + i] = i * i, then a[0] = 1. */
void fill_squares(void *arg)
{
    int64_t *a = arg;
    int64_t n = a[1];
    for (int64_t i = 0; i < n; i++)
        a[2 + i] = i * i;
    __atomic_store_n(&a[0], 1, __ATOMIC_SEQ_CST);
}

/* Sets *(int64_t *)arg to 1 if arg is NULL-checked correctly: for go_c(fn, None). */
static int64_t null_calls;
void count_null(void *arg)
{
    if (arg == NULL)
        __atomic_add_fetch(&null_calls, 1, __ATOMIC_SEQ_CST);
}
int64_t get_null_calls(void)
{
    return __atomic_load_n(&null_calls, __ATOMIC_SEQ_CST);
}

struct job {
    const struct gopy_api *api;
    gopy_chan *in;   /* int64 elements */
    gopy_chan *out;  /* int64 elements */
    int64_t n;
    int64_t delay_ns;
};

/* Sends 0..n-1 on out (after sleeping delay_ns), then closes it. */
void send_range(void *arg)
{
    struct job *j = arg;
    if (j->delay_ns > 0)
        j->api->sleep(j->delay_ns);
    for (int64_t i = 0; i < j->n; i++)
        j->api->chan_send(j->out, &i);
    j->api->chan_close(j->out);
}

/* Receives int64s from in until it is closed; sends their sum and count
 * on out. */
void sum_until_closed(void *arg)
{
    struct job *j = arg;
    int64_t v, sum = 0, count = 0;
    while (j->api->chan_recv(j->in, &v)) {
        sum += v;
        count++;
    }
    j->api->chan_send(j->out, &sum);
    j->api->chan_send(j->out, &count);
}

/* Echo: receives from in, sends v * 2 on out, until in is closed; then
 * closes out. */
void doubler(void *arg)
{
    struct job *j = arg;
    int64_t v;
    while (j->api->chan_recv(j->in, &v)) {
        v *= 2;
        j->api->chan_send(j->out, &v);
    }
    j->api->chan_close(j->out);
}

/* Selects between in and a never-ready nil case; sends what it got (or -1
 * when in was closed) on out. */
void select_once(void *arg)
{
    struct job *j = arg;
    int64_t v = 0;
    gopy_case cases[2] = {
        {NULL, GOPY_RECV, NULL, false},
        {j->in, GOPY_RECV, &v, false},
    };
    int i = j->api->select(cases, 2, true);
    int64_t r = i == 1 && cases[1].ok ? v : -1;
    j->api->chan_send(j->out, &r);
}

/* Sleeps delay_ns, then drops the reference to out the caller took for us
 * (api->chan_retain), then sets n = 1. */
void release_later(void *arg)
{
    struct job *j = arg;
    j->api->sleep(j->delay_ns);
    j->api->chan_release(j->out);
    __atomic_store_n(&j->n, 1, __ATOMIC_SEQ_CST);
}

/* Retain a channel for release_later (a C caller of the API would). */
void retain_chan(const struct gopy_api *api, gopy_chan *c)
{
    api->chan_retain(c);
}

/* Drop a reference retain_chan took. */
void release_chan(const struct gopy_api *api, gopy_chan *c)
{
    api->chan_release(c);
}
