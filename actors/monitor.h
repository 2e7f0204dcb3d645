/* Monitors inside the actor layer: what ax_spawn needs to monitor a child before it is visible. */
#ifndef AXON_ACTORS_MONITOR_H
#define AXON_ACTORS_MONITOR_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/actors.h"

/* Makes `watcher` (running, its own core) monitor `child`, which is
 * reserved but not yet published (nobody else can reach it): the DOWN of
 * the child's death is promised before it can run.  Stores the monitor's
 * id in *id.  Returns 0 or -ENOMEM (nothing is attached then). */
int ax__monitor_attach(ax_actor_t *watcher, ax_actor_t *child, uint64_t *id);

/* Whether watcher (its own core) monitors target; stores that monitor's id
 * in *id (one of them, if there are several). */
bool ax__monitor_find(ax_actor_t *watcher, ax_ref_t target, uint64_t *id);

#endif /* AXON_ACTORS_MONITOR_H */
