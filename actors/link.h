/* Links inside the actor layer: what ax_spawn needs to link a child before it is visible. */
#ifndef AXON_ACTORS_LINK_H
#define AXON_ACTORS_LINK_H

#include "actors/actors.h"
#include "io/alloc.h"

/* Links `parent` (running, its own core) and `child`, which is reserved
 * but not yet published (nobody else can reach it).  Returns 0 or -ENOMEM
 * (nothing is linked then). */
int ax__link_attach(ax_actor_t *parent, ax_actor_t *child);

/* Undoes ax__link_attach, for a spawn that fails after it. */
void ax__link_detach(ax_actor_t *parent, ax_actor_t *child);

#endif /* AXON_ACTORS_LINK_H */
