/* The actor layer's shared numbers: its system-message kinds, extension slots and hook order. */
#ifndef AXON_ACTORS_ACTORS_H
#define AXON_ACTORS_ACTORS_H

#include "runtime/core.h"

/*
 * Each feature of the actor layer (timers, monitors, names, ports, I/O
 * sources, signal subscriptions) plugs into the runtime through
 * runtime/ext.h and runtime/msg.h; the numbers they claim there are all
 * listed here, so that two features never take the same one.  Features
 * register from a constructor (AX__FEATURE_INIT), so a statically linked
 * program carries exactly the features it uses.
 */

/* System-message kinds (ax__msg_t.sys). */
enum {
  AX__SYS_MONITOR = AX__SYS_FEATURES, /* payload: ax__monitor_req_t (monitor.c) */
  AX__SYS_DEMONITOR,                  /* payload: ax__monitor_req_t */
  AX__SYS_DOWN,                       /* payload: ax_down_t; delivered as AX_MSG_DOWN */
  AX__SYS_TIMER,                      /* aux: the timer id (timer.c) */
  AX__SYS_IO,                         /* aux: the I/O source (io/src.h) */
  AX__SYS_WORK,                       /* aux: the work (work.c); delivered as AX_MSG_WORK */
  AX__SYS_LINK,                       /* payload: the requester's ax_ref_t (link.c) */
  AX__SYS_UNLINK,                     /* payload: the requester's ax_ref_t */
  AX__SYS_LINK_EXIT,                  /* payload: ax_link_down_t; may be AX_MSG_LINK_DOWN */
  AX__SYS_NEWS, /* axon's news for the behaviour as it is (a signal): no bound counts it */
};
_Static_assert((int)AX__SYS_NEWS < (int)AX__SYS_KINDS, "the runtime's kind table is too small");

/* Per-actor slots (ax__actor_ext_t.slot). */
enum {
  AX__SLOT_TIMERS,  /* timer.c: the actor's timers */
  AX__SLOT_MON_IN,  /* monitor.c: who monitors the actor */
  AX__SLOT_MON_OUT, /* monitor.c: whom the actor monitors */
  AX__SLOT_SOURCES, /* io/src.c: the sources the actor owns */
  AX__SLOT_FIBER,   /* fiber.c: the fiber, for an actor that is one */
  AX__SLOT_WORK,    /* work.c: the actor's work not yet handled */
  AX__SLOT_FILES,   /* io/file.c: the files the actor owns */
  AX__SLOT_LINKS,   /* link.c: the actor's links and whether it traps exits */
  AX__SLOT_COUNT
};
_Static_assert(AX__SLOT_COUNT <= AX__ACTOR_SLOTS, "more actor slots than the runtime keeps");

/* Per-core slots (ax__core_t.slot). */
enum {
  AX__CORE_SLOT_IO,      /* io/src.c: the core's source state (lingering, scratch) */
  AX__CORE_SLOT_TCP,     /* io/tcp.c: the core's accept error count */
  AX__CORE_SLOT_FDWATCH, /* io/fdwatch.c: the core's list of fd watches */
  AX__CORE_SLOT_URING,   /* io/uring.c: the core's io_uring for file requests */
  AX__CORE_SLOT_FIBERS,  /* fiber.c: the core's fibers parked and not trimmed yet */
  AX__CORE_SLOT_TIMERS,  /* timer.c: the core's index of actor timers by id */
  AX__CORE_SLOT_MONITORS, /* monitor.c: the core's index of monitors */
  AX__CORE_SLOT_COUNT
};
_Static_assert(AX__CORE_SLOT_COUNT <= AX__CORE_SLOTS, "more core slots than the runtime keeps");

/* Per-runtime slots (ax_rt.slot). */
enum {
  AX__RT_SLOT_NAMES,   /* registry.c: the name registry */
  AX__RT_SLOT_SIGNALS, /* io/sigwatch.c: the signal subscribers */
  AX__RT_SLOT_WORK,    /* work.c: the work pool */
  AX__RT_SLOT_PORTS,   /* port.c: the open ports, and whether the runtime stopped */
  AX__RT_SLOT_COUNT
};
_Static_assert(AX__RT_SLOT_COUNT <= AX__RT_SLOTS, "more runtime slots than the runtime keeps");

/* The order of the features' hooks (ax__feature_t.order): a dying actor's
 * sources close first, then its timers stop, then its links and its
 * monitors hear of its death. */
enum {
  AX__ORDER_FIBERS = 5, /* no death hook: the fiber's terminate hook runs first */
  AX__ORDER_SOURCES = 10,
  AX__ORDER_WORK = 15, /* after the sources: a connect's lookup is cancelled by its stream */
  AX__ORDER_FILES = 16, /* after the work: their requests are cancelled first */
  AX__ORDER_TIMERS = 20,
  AX__ORDER_NAMES = 30,
  AX__ORDER_PORTS = 40,
  AX__ORDER_LINKS = 85,
  AX__ORDER_MONITORS = 90,
};

/* Defines a constructor that registers a feature's hooks and kinds before
 * main: AX__FEATURE_INIT(timers) { ax__feature_register(&...); } */
#define AX__FEATURE_INIT(name) \
  __attribute__((constructor)) static void ax__feature_init_##name(void)

/* What a kind of actor built on ax_spawn (fibers) adds to it: setup runs
 * once the actor is made, before anyone can see it (< 0 fails the spawn
 * with that code; setup undoes its own work then), undo if the spawn fails
 * after it; and the actor's first message, ahead of any other, is an
 * empty one of type first_type from the actor itself (instead of the init
 * hook's). */
typedef struct ax__spawn_extra {
  int (*setup)(ax_actor_t *a, void *arg);
  void (*undo)(ax_actor_t *a, void *arg);
  void *arg;
  uint32_t first_type;
} ax__spawn_extra_t;

/* Sends axon's own news (a supervisor's AX_MSG_SHUTDOWN, a signal) to
 * the actor `to` as an AX__SYS_NEWS message (a port drops it): handed to the
 * behaviour as it is, and never refused by a bounded mailbox
 * (mailbox_max bounds what actors send each other, and a full one must
 * not turn a graceful stop into a forced one).  From the calling actor,
 * as ax_send.  0, -ESRCH, -ENOMEM.  Any thread. */
int ax__send_news(ax_ref_t to, uint32_t type, const void *data, size_t size);

/* ax_request with `bits` (AX__ID_CALL or 0) set in the request's id.
 * actor.c. */
int ax__request(ax_actor_t *self, ax_ref_t to, uint32_t type, const void *data, size_t size,
                uint64_t bits, uint64_t *req);

/* ax_spawn, with x (NULL: a plain actor).  actor.c. */
int ax__spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state, const ax_spawn_opts_t *opts,
              const ax__spawn_extra_t *x, ax_ref_t *ref);

/* The actor's slot i, or NULL when it has none (no extension yet). */
static inline void *ax__slot_get(const ax_actor_t *a, unsigned i) {
  return a->ext != NULL ? a->ext->slot[i] : NULL;
}

/* The message a behaviour (or a fiber) got msg from, or NULL when the
 * caller is no actor: a port's thread has a copy of the message, not the
 * message, and nothing may be read around it. */
static inline ax__msg_t *ax__msg_of(const ax_msg_t *msg) {
  ax__core_t *c = ax__tls_core;
  if (msg == NULL || c == NULL || c->current == NULL)
    return NULL;
  return AX_CONTAINER_OF(msg, ax__msg_t, m);
}

#endif /* AXON_ACTORS_ACTORS_H */
