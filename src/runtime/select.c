/*
 * select.c -- Go's selectgo.
 *
 *  1. pollorder: the non-nil cases in random order (uniform choice among
 *     ready cases); lockorder: the cases sorted by channel address.
 *  2. Lock every channel (in address order, each once).
 *  3. Pass 1: the first case in pollorder that can proceed, proceeds.
 *  4. Nothing ready: without block, unlock and return -1.
 *  5. Pass 2: queue a sudog on every channel and park; the channels are
 *     unlocked once the G is parked.  The first waker to claim the G (CAS
 *     on g->wait_claim) completes its case and leaves g->param at its
 *     sudog; others skip our sudogs.
 *  6. Pass 3: relock, unlink the sudogs of the other cases, unlock.
 *
 * A send case on a closed channel is chosen like any ready case and
 * reports ok = false.
 */
#include "chan.h"

#include <stdlib.h>
#include <string.h>

enum { SMALL_SELECT = 16 };

typedef struct {
    gopy_case *cases;
    int32_t *lockorder;
    int n; /* entries in lockorder */
} selstate;

static void sellock(selstate *s)
{
    gopy_chan *prev = NULL;
    for (int i = 0; i < s->n; i++) {
        gopy_chan *c = s->cases[s->lockorder[i]].chan;
        if (c != prev)
            rt_lock(&c->lock);
        prev = c;
    }
}

static void selunlock(selstate *s)
{
    /* Reverse order; duplicate channels are adjacent in lockorder and are
     * unlocked once, at their first occurrence from the top. */
    for (int i = s->n - 1; i >= 0; i--) {
        gopy_chan *c = s->cases[s->lockorder[i]].chan;
        if (i > 0 && c == s->cases[s->lockorder[i - 1]].chan)
            continue;
        rt_unlock(&c->lock);
    }
}

static bool selpark_unlock(G *g, void *arg)
{
    (void)g;
    selunlock(arg);
    return true;
}

static void sort_lockorder(gopy_case *cases, int32_t *order, int n)
{
    /* Heap sort by channel address, as Go does: no recursion, no extra
     * memory, n log n for large selects. */
#define ADDR(k) ((uintptr_t)cases[order[k]].chan)
    for (int i = 1; i < n; i++) {
        int j = i;
        int32_t v = order[j];
        uintptr_t a = (uintptr_t)cases[v].chan;
        while (j > 0 && ADDR((j - 1) / 2) < a) {
            order[j] = order[(j - 1) / 2];
            j = (j - 1) / 2;
        }
        order[j] = v;
    }
    for (int i = n - 1; i > 0; i--) {
        int32_t v = order[i];
        uintptr_t a = (uintptr_t)cases[v].chan;
        order[i] = order[0];
        int j = 0;
        for (;;) {
            int k = j * 2 + 1;
            if (k >= i)
                break;
            if (k + 1 < i && ADDR(k) < ADDR(k + 1))
                k++;
            if (a < ADDR(k)) {
                order[j] = order[k];
                j = k;
                continue;
            }
            break;
        }
        order[j] = v;
    }
#undef ADDR
}

int gopy_rt_select(gopy_case *cases, int n, bool block, int *chosen)
{
    *chosen = -1;
    /* Sized to n: a small stack (gopy_go_small) has room for a few
     * cases' sudogs, not for SMALL_SELECT's (1,152 bytes). */
    int nstack = n >= 1 && n <= SMALL_SELECT ? n : 1;
    int32_t small_orders[2 * nstack];
    sudog small_sudogs[nstack];
    int32_t *pollorder = small_orders, *lockorder = small_orders + nstack;
    sudog *sgs = small_sudogs;
    void *heap = NULL;
    if (n > SMALL_SELECT) {
        heap = malloc((size_t)n * (2 * sizeof(int32_t) + sizeof(sudog)));
        if (heap == NULL)
            return GOPY_EAGAIN;
        sgs = heap;
        pollorder = (int32_t *)(sgs + n);
        lockorder = pollorder + n;
    }

    /* pollorder: incremental Fisher-Yates over the non-nil cases. */
    int np = 0;
    for (int i = 0; i < n; i++) {
        cases[i].ok = false;
        if (cases[i].chan == NULL)
            continue;
        int j = (int)rt_fastrandn((uint32_t)np + 1);
        pollorder[np] = pollorder[j];
        pollorder[j] = i;
        np++;
    }
    memcpy(lockorder, pollorder, (size_t)np * sizeof *lockorder);
    sort_lockorder(cases, lockorder, np);
    selstate st = {cases, lockorder, np};

    int result = GOPY_OK;
    if (np == 0) {
        if (block) {
            rt_init();
            G *g = getg_or_foreign();
            g_prepare_wait(g);
            while ((result = gopark(NULL, NULL, GOPY_WAIT_SELECT_NO_CASES, NULL)) == 0) {
            }
        }
        goto out;
    }

    sellock(&st);
    /* Pass 1: the first ready case in poll order. */
    for (int k = 0; k < np; k++) {
        int i = pollorder[k];
        gopy_case *cas = &cases[i];
        gopy_chan *c = cas->chan;
        G *wake = NULL;
        bool done;
        if (cas->dir == GOPY_RECV) {
            done = chan_recv_locked(c, cas->elem, &cas->ok, &wake);
        } else if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
            cas->ok = false;
            done = true;
        } else {
            done = chan_send_locked(c, cas->elem, &wake);
            cas->ok = done;
        }
        if (done) {
            selunlock(&st);
            if (wake != NULL && cas->dir == GOPY_RECV)
                goready_sender(wake);
            else if (wake != NULL)
                goready(wake);
            *chosen = i;
            goto out;
        }
    }
    if (!block) {
        selunlock(&st);
        goto out;
    }

    /* Pass 2: wait on every channel. */
    rt_init();
    G *g = getg_or_foreign();
    g_prepare_wait(g);
    for (int k = 0; k < np; k++) {
        int i = lockorder[k];
        sudog *sg = &sgs[i];
        memset(sg, 0, sizeof *sg);
        sg->g = g;
        sg->c = cases[i].chan;
        sg->elem = cases[i].elem;
        sg->case_index = i;
        chan_enqueue(sg->c, cases[i].dir == GOPY_RECV ? &sg->c->recvq : &sg->c->sendq, sg);
    }
    result = gopark(selpark_unlock, &st, GOPY_WAIT_SELECT, NULL);

    /* Pass 3: unlink the losers (all of them if we gave up). */
    sellock(&st);
    sudog *won = result == 0 ? g->param : NULL;
    /* Woken, the G must have been completed through one of its cases. */
    rt_assert(result != 0 || (won >= sgs && won < sgs + n && won == &sgs[won->case_index]),
              "selectgo: bad wakeup");
    for (int k = 0; k < np; k++) {
        int i = lockorder[k];
        if (&sgs[i] == won)
            continue;
        waitq_remove(cases[i].dir == GOPY_RECV ? &sgs[i].c->recvq : &sgs[i].c->sendq,
                     &sgs[i]);
    }
    selunlock(&st);
    if (won != NULL) {
        *chosen = won->case_index;
        /* A receive is ok unless woken by close; a send that lost to
         * close reports ok = false. */
        cases[won->case_index].ok = won->success;
    }
out:
    free(heap);
    return result;
}

int gopy_select(gopy_case *cases, int n, bool block)
{
    int chosen, r;
    do
        r = gopy_rt_select(cases, n, block, &chosen);
    while (r == GOPY_EINTR);
    return chosen;
}
