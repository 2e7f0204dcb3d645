/* Supervisors: actors that start children in order, restart them when they fail, and stop them in reverse order. */
#ifndef AXON_SUPERVISOR_H
#define AXON_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#include "axon/actor.h"
#include "axon/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A supervisor is an actor axon runs for you, with Erlang/OTP's semantics:
 * it starts its children in the order of their specs, watches them (a
 * monitor made atomically with each spawn, see ax_child_start_t), restarts
 * those that end according to their restart type and the strategy, and
 * gives up when they fail too often: it then stops every child, last
 * started first, and fails itself, so that its own supervisor (or whoever
 * monitors or is linked to it) sees the failure.  A supervisor can be a
 * child of another: start it from a child spec with ax_sup_start.
 *
 * What counts as a failure is a negative stop reason: a behaviour or a
 * fiber returning a negative code, ax_stop with a negative reason, a linked
 * actor's failure.  AX_STOP, ax_stop(ref, 0) and the runtime's own stop are
 * normal ends.  A crash of the process (SIGSEGV, abort) ends every actor at
 * once: no in-process supervisor survives it; run the program under
 * systemd (Restart=on-failure) or a supervising process for that.
 *
 * Children may live on any core; the supervisor runs on one.  All its
 * bookkeeping runs there, as messages, so none of these calls blocks.
 */

/* How a failure of one child touches its siblings. */
typedef enum ax_sup_strategy {
  AX_ONE_FOR_ONE = 0,    /* only that child is restarted */
  AX_ONE_FOR_ALL,        /* every child is stopped (in reverse order) and all are started again */
  AX_REST_FOR_ONE,       /* the children started after it are stopped, then it and they start */
  AX_SIMPLE_ONE_FOR_ONE, /* dynamic children of one spec (ax_sup_start_child), as one_for_one */
} ax_sup_strategy_t;

/* When a child that ended is started again. */
typedef enum ax_restart {
  AX_PERMANENT = 0, /* always */
  AX_TRANSIENT,     /* only after a failure (a negative reason) */
  AX_TEMPORARY,     /* never: the child is forgotten when it ends */
} ax_restart_t;

/* Starts one child: spawn it (ax_spawn or ax_spawn_fiber, on any core),
 * build its state afresh (a restart calls this again, so nothing of the
 * failed incarnation is reused unless arg keeps it on purpose), and store
 * its reference in *ref.  Pass `sup` as the spawn's `monitor` option so
 * that a child that dies at once is still seen with its reason; a child
 * spawned without it is monitored right after (its reason may then read
 * -ESRCH).  Runs on the supervisor's core, in the supervisor.  Returns 0,
 * or a negative code: the start failed, which counts as a failure of the
 * child. */
typedef int (*ax_child_start_t)(ax_actor_t *sup, void *arg, ax_ref_t *ref);

/* A child's stop time: wait this long after AX_MSG_SHUTDOWN, then stop it
 * by force (ax_stop with -ETIMEDOUT: a fiber parked in I/O gets
 * -ECANCELED).  0 in a spec means AX_SHUTDOWN_DEFAULT. */
#define AX_SHUTDOWN_DEFAULT ((int64_t)5 * 1000 * 1000 * 1000) /* 5 s, OTP's */
#define AX_SHUTDOWN_BRUTAL ((int64_t)-2) /* no AX_MSG_SHUTDOWN: ax_stop(child, 0) at once,
                                            so the child ends with AX_REASON_STOPPED */
/* (AX_FOREVER, -1: wait as long as it takes, for a child that is a supervisor.) */

/* One child. */
typedef struct ax_child_spec {
  const char *name;        /* a label for your own logs (not read by axon; may be NULL) */
  ax_child_start_t start;  /* required */
  void *arg;               /* start's argument: yours, never freed by axon */
  ax_restart_t restart;
  int64_t shutdown_ns;     /* 0: AX_SHUTDOWN_DEFAULT; AX_SHUTDOWN_BRUTAL; AX_FOREVER */
} ax_child_spec_t;

/* A supervisor's options; zero-initialise.  The defaults are OTP's. */
typedef struct ax_sup_opts {
  ax_sup_strategy_t strategy;
  /* Restart intensity: more than max_restarts restarts within period_ns
   * and the supervisor gives up (stops its children, last first, and
   * stops with AX_REASON_INTENSITY).  0 and 0: 1 restart in 5 s; a period
 * of 0 with max_restarts > 0: that many in 5 s. */
  unsigned max_restarts;
  int64_t period_ns;
  /* Back-off (0: none): a child that must be restarted waits backoff_ns,
   * doubled at each restart that follows within period_ns, at most
   * backoff_max_ns (0: 64 times backoff_ns).  When a start failed and the
   * timer of its next try cannot be made, the supervisor stops with
   * -ENOMEM (docs/supervision.md). */
  int64_t backoff_ns, backoff_max_ns;
  /* The children, started in this order (copied).  With
   * AX_SIMPLE_ONE_FOR_ONE exactly one, the template of the dynamic
   * children, none of which starts until ax_sup_start_child. */
  const ax_child_spec_t *children;
  size_t nchildren;
} ax_sup_opts_t;

/* The reason a supervisor stops with when its children failed more often
 * than its intensity allows: a failure, so that it escalates. */
#define AX_REASON_INTENSITY (-1000)
#define AX_SUP_CHILDREN_MAX 4096 /* static children at most */
#define AX_SUP_RESTARTS_MAX 1000000 /* max_restarts at most */

/* Starts a supervisor: spawns it with `spawn` (its placement, its monitor
 * and link, and a terminate hook of yours if you want one), and its
 * children start, in order, on its core before it handles any message.  If
 * one of them fails to start, those started are stopped (last first) and
 * the supervisor stops with that child's error.  Stores its reference in
 * *ref (ref may be NULL, as ax_spawn's).  Any thread, as ax_spawn.  Errors: -EINVAL (NULL rt or opts, no
 * children or more than AX_SUP_CHILDREN_MAX, max_restarts above
 * AX_SUP_RESTARTS_MAX, a spec without start, an
 * unknown strategy or restart type, AX_SIMPLE_ONE_FOR_ONE without exactly
 * one spec, a negative period or back-off, a shutdown_ns below -2), and
 * ax_spawn's. */
AX_API int ax_sup_start(ax_rt_t *rt, const ax_sup_opts_t *opts, const ax_spawn_opts_t *spawn,
                        ax_ref_t *ref);

/* Asks an AX_SIMPLE_ONE_FOR_ONE supervisor for one more child of its
 * spec, started with arg instead of the spec's (arg stays yours; a
 * restart passes it again).  Asynchronous: the child starts when the
 * supervisor handles the request; its start function is where to tell
 * someone its reference.  A request the supervisor cannot honour (out of
 * memory) counts as a failed start of a child; one sent to a supervisor of
 * another strategy, or to one that is stopping, is ignored; sent to an
 * actor that is no supervisor, it is a message of type 242 to that actor
 * (actor.h).  Any thread.  Errors: -ESRCH (no such actor), -EAGAIN (the
 * supervisor was spawned with a mailbox_max, and that many messages wait
 * for it), -ENOMEM. */
AX_API int ax_sup_start_child(ax_ref_t sup, void *arg);

/* Asks a supervisor to stop: its children stop gracefully, last started
 * first (AX_MSG_SHUTDOWN, their shutdown time, then by force), then the
 * supervisor stops normally (AX_REASON_NORMAL).  The same as sending it
 * AX_MSG_SHUTDOWN, except that no mailbox_max refuses it (nor the
 * AX_MSG_SHUTDOWN a supervisor sends its children).  A supervisor that
 * traps a failure of an actor it is linked to (not a child) stops the same
 * way, then fails with that reason.  Any thread.  Errors: -ESRCH,
 * -ENOMEM. */
AX_API int ax_sup_stop(ax_ref_t sup);

#ifdef __cplusplus
}
#endif

#endif /* AXON_SUPERVISOR_H */
