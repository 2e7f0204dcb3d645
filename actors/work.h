/* The work pool inside axon: what the resolver and the fiber call build on. */
#ifndef AXON_ACTORS_WORK_H
#define AXON_ACTORS_WORK_H

#include "actors/actors.h"
#include "axon/work.h"

/* What runs on the owner's core instead of delivering AX_MSG_WORK: it
 * gets arg (and owns it from then on) and fn's result.  The owner is alive
 * and is the actor running. */
typedef void (*ax__work_done_fn)(void *arg, int64_t result);

/* ax_work_submit, with done (NULL: deliver AX_MSG_WORK to the behaviour).
 * owner's core.  Returns 0 or the errors of ax_work_submit. */
int ax__work_start(ax_actor_t *owner, ax_work_fn fn, void *arg, ax_work_dispose_fn dispose,
                   ax__work_done_fn done, uint64_t *id);

/* ax_work_cancel, then, when fn is running, waits (blocking the thread)
 * until it returned: arg is free to go when this returns.  owner's core.
 * Returns as ax_work_cancel. */
int ax__work_cancel_wait(ax_actor_t *owner, uint64_t id);

#endif /* AXON_ACTORS_WORK_H */
