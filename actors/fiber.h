/* Fibers inside axon: what the sources ask of them. */
#ifndef AXON_ACTORS_FIBER_H
#define AXON_ACTORS_FIBER_H

#include <stdbool.h>

#include "actors/actors.h"

/* Every fiber's behaviour (fiber.c): it hands messages to the fiber. */
int ax__fiber_behaviour(ax_actor_t *a, const ax_msg_t *msg);

/* True when a is a fiber.  A fiber closes its sources itself: their
 * AX_MSG_CLOSED does not close them (io/src.c). */
static inline bool ax__fiber_is(const ax_actor_t *a) { return a->fn == ax__fiber_behaviour; }

/* What the sources ask of a fiber that owns one (io/src.c): */
typedef struct ax__src ax__src_t;

/* True when the fiber a holds bytes or messages of s that a hand-over
 * could not carry; false for other actors.  a's core. */
bool ax__fiber_holds(const ax_actor_t *a, const ax__src_t *s);
/* Gives back the message of s that fiber a's last call returned, if it is
 * one (a hand-over ends it); nothing for other actors.  a's core. */
void ax__fiber_release(ax_actor_t *a, const ax__src_t *s);
/* s closes: gives back what a fiber had read of it in part and frees its
 * read state.  s's core, before s leaves its owner. */
void ax__fiber_rd_free(ax__src_t *s);

/* Takes out of fiber a's saved messages (handed to it, not yet received)
 * the oldest system message of kind sys whose aux is aux, and returns it
 * (the caller gives it back with ax__msg_unkeep); NULL when there is none
 * or a is no fiber.  A timer cancelled or rearmed drops its ticks this
 * way.  a's core. */
ax__msg_t *ax__fiber_take_sys(ax_actor_t *a, unsigned sys, uint64_t aux);

/* The message ax__fiber_take_sys would take, left where it is; NULL as
 * there.  a's core. */
const ax__msg_t *ax__fiber_find_sys(const ax_actor_t *a, unsigned sys, uint64_t aux);

/* True when the caller runs on the stack of fiber self (what every
 * waiting call of a fiber checks).  Any thread. */
bool ax__fiber_running(const ax_actor_t *self);

/* What a fiber's blocking call returns for a request the runtime refused
 * because it is stopping (-ESHUTDOWN: the work pool, the resolver, the
 * pool's files): -ECANCELED, what every waiting call of a fiber returns
 * once it is being stopped, which a stopping runtime is about to do (a
 * newcomer's fibers got either, by the backend and the timing). */
static inline int ax__fiber_refused(int rc) { return rc == -ESHUTDOWN ? -ECANCELED : rc; }

/* What ax_mailbox_len adds to a's mailbox length: the messages fiber a
 * keeps aside (handed to it and not received yet), less its own poll
 * wake-ups still in the mailbox; 0 for other actors.  a's core. */
int64_t ax__fiber_mailbox_delta(const ax_actor_t *a);

#endif /* AXON_ACTORS_FIBER_H */
