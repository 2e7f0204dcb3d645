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

#endif /* AXON_ACTORS_FIBER_H */
