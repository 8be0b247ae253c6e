/*
 * ebr.h -- epoch-based reclamation: when may memory that lock-free
 * readers could still be looking at be freed?
 *
 * Readers bracket their look at shared nodes with ebr_enter / ebr_exit
 * (a *critical section*; they nest).  A writer that unlinks a node hands
 * it to ebr_retire; the node is freed once every critical section that
 * could have seen it has ended: two advances of the global epoch after
 * its retirement, an advance needing every active section to have begun
 * in the current epoch.
 *
 * Records are per OS thread.  A critical section must not span a park
 * (a C goroutine could resume on another thread); host goroutines never
 * change threads, so their sections may (reclamation only waits longer).
 */
#ifndef GOPY_RT_EBR_H
#define GOPY_RT_EBR_H

#include "lock.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ebr_rec ebr_rec;

/* A retired object embeds one of these. */
typedef struct ebr_node {
    struct ebr_node *next;
    void (*free)(struct ebr_node *node, void *ctx);
} ebr_node;

/* The retired objects of one structure (a map), not yet freed: one list
 * per epoch modulo 3 (an object retired in epoch e can go at e + 2, when
 * e's list is reused for e + 3 at the latest). */
typedef struct {
    rt_mutex lock;
    struct {
        ebr_node *head;
        uint64_t epoch; /* the epoch its nodes were retired in */
    } bucket[3];
} ebr_limbo;

ebr_rec *ebr_enter(void);
void ebr_exit(ebr_rec *rec);
/* Retire node (already unreachable for new readers); free(node, ctx) runs
 * later, or now if no reader can see it.  Call it outside any critical
 * section of the caller's so that it can free at once when nobody else
 * reads; free runs with no lock held. */
void ebr_retire(ebr_limbo *limbo, ebr_node *node, void (*free)(ebr_node *, void *),
                void *ctx);
/* Free everything in limbo now: the structure is being destroyed, so no
 * reader can be looking. */
void ebr_drain(ebr_limbo *limbo, void *ctx);

#endif
