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

/* What runs on the owner's core when the result message of
 * ax__work_start_msg reaches the behaviour, just before it does: arg is
 * the caller's again. */
typedef void (*ax__work_delivered_fn)(void *arg);

/* A result message for ax__work_start_msg: `size` bytes of payload, the
 * first 8 of which receive the work's id (the rest is the caller's, and
 * fn's to fill), of user type `type`.  NULL when out of memory.  owner's
 * core. */
ax__msg_t *ax__work_msg(ax_actor_t *owner, uint32_t type, size_t size);

/* Queues fn(arg) whose result is the message m (ax__work_msg) that fn
 * fills; the pool sends it as it is once fn returned, and the behaviour
 * gets it after delivered(arg).  Not delivered (cancelled, the owner
 * died): dispose(arg), m freed.  held: the work is made but waits out of
 * the queue (and out of its bound) until ax__work_release.  owner's core.
 * Returns 0, or the errors of ax_work_submit (-EAGAIN never when held);
 * m is the caller's to free then. */
int ax__work_start_msg(ax_actor_t *owner, ax_work_fn fn, void *arg, ax_work_dispose_fn dispose,
                       ax__work_delivered_fn delivered, ax__msg_t *m, bool held, uint64_t *id);

/* Queues the held work id of owner (whatever the queue's bound).  owner's
 * core. */
void ax__work_release(ax_actor_t *owner, uint64_t id);

/* A fresh id for a request of rt (work's ids and other requests' share
 * one sequence: never 0, unique within the runtime).  Any thread. */
uint64_t ax__work_next_id(ax_rt_t *rt);

/* The most work rt's pool queues (ax_rt_opts_t.work_queue, resolved):
 * the bound other request queues share.  Any thread. */
unsigned ax__work_queue_max(ax_rt_t *rt);

/* ax_work_cancel for axon's own work too (ax__work_start's), which the
 * public call refuses.  owner's core. */
int ax__work_cancel(ax_actor_t *owner, uint64_t id);

/* ax_work_cancel, then, when fn is running, waits (blocking the thread)
 * until it returned: arg is free to go when this returns.  owner's core.
 * Returns as ax_work_cancel. */
int ax__work_cancel_wait(ax_actor_t *owner, uint64_t id);

#endif /* AXON_ACTORS_WORK_H */
