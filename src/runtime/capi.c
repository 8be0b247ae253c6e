/*
 * capi.c -- the function table behind gopy.h's capsule (GOPY_CAPSULE).
 */
#include "runtime.h"

static const struct gopy_api api = {
    .version = GOPY_API_VERSION,
    .size = sizeof(struct gopy_api),
    .go = gopy_go,
    .yield = gopy_yield,
    .sleep = gopy_sleep,
    .gomaxprocs = gopy_gomaxprocs,
    .chan_make = gopy_chan_make,
    .chan_retain = gopy_chan_retain,
    .chan_release = gopy_chan_release,
    .chan_send = gopy_chan_send,
    .chan_recv = gopy_chan_recv,
    .chan_close = gopy_chan_close,
    .chan_len = gopy_chan_len,
    .chan_cap = gopy_chan_cap,
    .select = gopy_select,
    .waitgroup_make = gopy_waitgroup_make,
    .waitgroup_add = gopy_waitgroup_add,
    .waitgroup_done = gopy_waitgroup_done,
    .waitgroup_wait = gopy_waitgroup_wait,
    .waitgroup_free = gopy_waitgroup_free,
    .mutex_make = gopy_mutex_make,
    .mutex_lock = gopy_mutex_lock,
    .mutex_trylock = gopy_mutex_trylock,
    .mutex_unlock = gopy_mutex_unlock,
    .mutex_free = gopy_mutex_free,
};

const struct gopy_api *gopy_api_table(void)
{
    return &api;
}
