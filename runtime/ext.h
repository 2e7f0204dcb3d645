/* What features plug into: hooks for the life of runtimes, cores and actors, and extension slots. */
#ifndef AXON_RUNTIME_EXT_H
#define AXON_RUNTIME_EXT_H

#include <stdbool.h>
#include <sys/signalfd.h>

#include "axon/actor.h"
#include "axon/runtime.h"

/*
 * The runtime knows actors, mailboxes, cores and references, and nothing
 * of what the actor layer builds on them (timers, monitors, names, ports,
 * I/O sources, signal subscriptions).  A feature plugs in here:
 *  - its system-message kinds (msg.h: ax__kind_register);
 *  - an ax__feature_t of hooks the runtime calls at fixed points of the
 *    life of runtimes, cores and actors;
 *  - slots for its state: a pointer per actor (in the actor's extension,
 *    allocated the first time any feature needs it), per core and per
 *    runtime.  The slot numbers are the actor layer's (actors/actors.h);
 *    the runtime only keeps the room.
 * Features register from constructors (__attribute__((constructor))), so a
 * program linked statically carries exactly the features it uses.
 */
typedef struct ax__core ax__core_t;

#define AX__ACTOR_SLOTS 8
#define AX__CORE_SLOTS 8
#define AX__RT_SLOTS 4

/* An actor's extension: what most actors never need, allocated on first
 * use (ax__actor_ext).  Owner core only. */
typedef struct ax__actor_ext {
  ax_terminate_t terminate;
  void *slot[AX__ACTOR_SLOTS];
} ax__actor_ext_t;

typedef struct ax__feature ax__feature_t;
struct ax__feature {
  const char *name;
  /* Hooks of the same point run in ascending order (actor_death: the
   * order in which a dead actor's things are cleaned up). */
  int order;
  /* ax_rt_new, before any thread starts: make the feature's runtime
   * state.  Returns 0 or -errno (the runtime is not made). */
  int (*rt_init)(ax_rt_t *rt);
  /* ax_rt_free (every actor dead, every thread joined) or a failed
   * ax_rt_new: free it.  Must cope with a failed or skipped rt_init. */
  void (*rt_free)(ax_rt_t *rt);
  /* Likewise for each core, on the thread that makes or frees the
   * runtime (core_free also after a failed core_init). */
  int (*core_init)(ax__core_t *c);
  void (*core_free)(ax__core_t *c);
  /* On the core's own thread: before its first pass, and at shutdown once
   * every actor of every core has died. */
  void (*core_start)(ax__core_t *c);
  /* The runtime has stopped: every core has finished every actor and its
   * core_stop hooks (core 0's thread, once, after the others).  Nothing
   * of the runtime's sends any more. */
  void (*rt_stopped)(ax_rt_t *rt);
  void (*core_stop)(ax__core_t *c);
  /* An actor died (its core, after its terminate hook): let go of what
   * the feature keeps for it.
   * Called only for actors with an extension: a feature keeps its
   * per-actor state there (in its slot), so an actor without one has
   * nothing to let go of. */
  void (*actor_death)(ax_actor_t *a, int reason);
  /* actor_death tells other actors of the death (a DOWN, a LINK_DOWN): it
   * runs once the actor's reference fails, after every hook that does not
   * (which run while it still resolves, as the terminate hook does). */
  bool announces;
  /* The core is idle and the time the feature asked for with
   * ax__core_trim_at (core.h) has come: give back memory held for what has
   * stayed unused long enough.  Returns when to be called again (a time
   * of ax_now; 0: not unless asked again).  Owner core. */
  int64_t (*core_trim)(ax__core_t *c, int64_t now);
  /* A signal the runtime claims arrived (core 0).  Returns true when the
   * feature delivered it to someone, so the runtime's default (stop on
   * SIGINT, SIGTERM, ...) does not apply. */
  bool (*signal)(ax_rt_t *rt, const struct signalfd_siginfo *si);
  /* ax_rt_stats: add the feature's counters of core c to *out.  Any
   * thread. */
  void (*stats)(const ax__core_t *c, ax_core_stats_t *out);
  ax__feature_t *next; /* the registry's list (set by ax__feature_register) */
};

/* Adds a feature.  From a constructor only (single-threaded, before any
 * runtime exists). */
void ax__feature_register(ax__feature_t *f);

/* The registered features in order, for the runtime's own calls. */
extern ax__feature_t *ax__features;

/* The actor's extension, made on first use.  NULL when out of memory.
 * Owner core only. */
ax__actor_ext_t *ax__actor_ext(ax_actor_t *a);

#endif /* AXON_RUNTIME_EXT_H */
