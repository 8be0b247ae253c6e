/* Test library for gopy.context: C goroutines honouring Python-made
 * contexts through the C API table (the gopy module's capsule), and
 * contexts made in C wrapped by Python.  Links against nothing. */
#include <stdint.h>
#include <gopy.h>

static const struct gopy_api *api;

/* 0, or -1 if the table is too old to have the context functions. */
int ctx_lib_init(const struct gopy_api *table)
{
    if (table->size < sizeof(struct gopy_api))
        return -1;
    api = table;
    return 0;
}

struct wait_job {
    gopy_context *ctx;
    gopy_chan *out; /* int64 elements */
};

/* Park in a select on ctx's done channel (next to a channel nobody sends
 * on), then send ctx's err on out. */
void wait_done(void *arg)
{
    struct wait_job *j = arg;
    gopy_chan *never = api->chan_make(sizeof(int64_t), 0);
    int64_t v;
    gopy_case cases[2] = {
        {.chan = never, .dir = GOPY_RECV, .elem = &v},
        {.chan = api->context_done(j->ctx), .dir = GOPY_RECV},
    };
    int i = api->select(cases, 2, 1);
    int64_t err = i == 1 ? api->context_err(j->ctx) : -1;
    api->chan_send(j->out, &err);
    api->chan_release(never);
}

gopy_context *ctx_make_timeout(gopy_context *parent, int64_t ns)
{
    return api->context_with_timeout(parent, ns);
}

void ctx_release(gopy_context *c)
{
    api->context_release(c);
}

void ctx_cancel(gopy_context *c)
{
    api->context_cancel(c);
}

int ctx_err(gopy_context *c)
{
    return api->context_err(c);
}

int ctx_background_is(gopy_context *c)
{
    return c == api->context_background();
}
