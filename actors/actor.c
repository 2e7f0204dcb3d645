/* The actor API: spawn, send (copied or owned), stop, request/reply, accessors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actors/actors.h"
#include "actors/fiber.h"
#include "actors/link.h"
#include "actors/monitor.h"

_Static_assert(AX_REASON_STOPPED == 1 && AX_REASON_SHUTDOWN == 2,
               "io/error.c names the stop reasons by their values");

static unsigned round_robin(ax_rt_t *rt) {
  return atomic_fetch_add_explicit(&rt->next_core, 1, memory_order_relaxed) % rt->ncores;
}

/* AX_PLACE_ANY from an actor of core cur: cur, unless it is overloaded
 * (AX_PLACE_SPILL or more actors waiting to run, and so for the runtime's
 * spill_ns: from the first such spawn on, at the end of every round) and
 * another core is much less so.  The first spawn that finds the run queue
 * that long only starts the count, so the burst of a hub that spawns its
 * talkers and starts each one stays together.  The other cores' run-queue
 * lengths are their own last report (ax__core_t.stats.runq_len, written
 * each round and zeroed when they sleep); they and the clock are read
 * only once the run queue is that long. */
static unsigned near_or_spill(ax_rt_t *rt, ax__core_t *cur) {
  uint64_t mine = cur->runq_len;
  if (mine < AX_PLACE_SPILL || rt->opts.spill_ns < 0)
    return cur->index;
  int64_t now = ax_now();
  if (cur->long_since == 0) {
    cur->long_since = now;
    return cur->index;
  }
  if (now - cur->long_since < rt->opts.spill_ns)
    return cur->index;
  unsigned best = cur->index;
  uint64_t least = mine / 2;
  for (unsigned i = 0; i < rt->ncores; i++) {
    /* Relaxed: a hint, read and written without order (core.c). */
    uint64_t n = atomic_load_explicit(&rt->cores[i]->stats.runq_len, memory_order_relaxed);
    if (i != cur->index && n < least) {
      least = n;
      best = i;
    }
  }
  return best;
}

static unsigned pick_core(ax_rt_t *rt, const ax_spawn_opts_t *o) {
  ax__core_t *cur = ax__tls_core;
  bool here = cur != NULL && cur->rt == rt;
  switch (o->placement) {
  case AX_PLACE_CORE:
    return o->core;
  case AX_PLACE_NEAR:
    return ax__ref_core(o->near); /* checked by the caller */
  case AX_PLACE_LOCAL:
    return here ? cur->index : round_robin(rt);
  case AX_PLACE_SPREAD:
    return round_robin(rt);
  default:
    return here ? near_or_spill(rt, cur) : round_robin(rt);
  }
}

int ax_spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state, const ax_spawn_opts_t *opts,
             ax_ref_t *ref) {
  return ax__spawn(rt, behaviour, state, opts, NULL, ref);
}

static int spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state, const ax_spawn_opts_t *opts,
                 const ax__spawn_extra_t *x, ax_ref_t *ref);

int ax__spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state, const ax_spawn_opts_t *opts,
              const ax__spawn_extra_t *x, ax_ref_t *ref) {
  if (rt == NULL)
    return -EINVAL;
  /* A core of rt spawns within an actor's turn, which ends before that
   * core reaches the shutdown's first barrier, past which every core
   * stops its actors: the actor is published before any core looks.
   * Another thread is counted in flight from before its look at
   * `stopping` until the actor is published (or the spawn failed), and
   * the cores wait for the count to drop before they stop their actors
   * (core.c's shutdown_core), so the join stops this actor too.  Before,
   * such an actor outlived ax_rt_join, and its terminate hook ran in
   * ax_rt_free, after the program had freed its state (a newcomer). */
  ax__core_t *cur = ax__tls_core;
  if (cur != NULL && cur->rt == rt)
    return spawn(rt, behaviour, state, opts, x, ref);
  /* seq_cst: the increment before the flag's load, mirrored by
   * ax_rt_stop's store and the shutdown's load of the count. */
  atomic_fetch_add_explicit(&rt->spawning, 1, memory_order_seq_cst);
  int rc = spawn(rt, behaviour, state, opts, x, ref);
  /* Release: the publication before a shutdown that sees the count drop. */
  atomic_fetch_sub_explicit(&rt->spawning, 1, memory_order_release);
  return rc;
}

static int spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state, const ax_spawn_opts_t *opts,
                 const ax__spawn_extra_t *x, ax_ref_t *ref) {
  ax_spawn_opts_t o = opts != NULL ? *opts : (ax_spawn_opts_t){0};
  if (behaviour == NULL || o.placement > AX_PLACE_SPREAD || /* rt: ax__spawn */
      (o.placement == AX_PLACE_CORE && o.core >= rt->ncores) ||
      (o.placement == AX_PLACE_NEAR &&
       (o.near == AX_REF_NONE || ax__ref_rt(o.near) != rt->index ||
        ax__ref_core(o.near) >= rt->ncores)) ||
      (o.monitor != NULL && o.monitor->core->rt != rt) ||
      (o.link != NULL && o.link->core->rt != rt))
    return -EINVAL;
  if (o.monitor != NULL)
    AX__ASSERT_OWNER(o.monitor);
  if (o.link != NULL)
    AX__ASSERT_OWNER(o.link);
  /* seq_cst: see ax__spawn. */
  if (atomic_load_explicit(&rt->stopping, memory_order_seq_cst))
    return -ESHUTDOWN;
  ax__core_t *c = rt->cores[pick_core(rt, &o)];
  ax_actor_t *a = ax__actor_new(c, behaviour, state);
  if (a == NULL)
    return -ENOMEM;
  a->mbox_max = o.mailbox_max; /* before the reference is made: it carries the bound's bit */
  /* Kept in the extension: most actors have no terminate hook, and the
   * actor itself stays at 80 bytes. */
  if (o.terminate != NULL) {
    ax__actor_ext_t *ext = ax__actor_ext(a);
    if (ext == NULL) {
      ax__actor_discard(a);
      return -ENOMEM;
    }
    ext->terminate = o.terminate;
  }
  if (x != NULL) {
    int rc = x->setup(a, x->arg);
    if (rc < 0) {
      ax__actor_discard(a);
      return rc;
    }
  }
  ax__msg_t *init = NULL;
  if (x != NULL) {
    init = ax__msg_new(ax__ref_make(0, rt->index, 0, 0), AX__SYS_NONE, x->first_type, NULL, 0,
                       AX_REF_NONE);
    if (init == NULL) {
      x->undo(a, x->arg);
      ax__actor_discard(a);
      return -ENOMEM;
    }
  } else if (o.init != NULL) {
    /* A reference of rt (any), so that the message comes from a pool of
     * the runtime it is for. */
    init = ax__msg_new(ax__ref_make(0, rt->index, 0, 0), AX__SYS_INIT, AX__SYS_INIT, NULL, 0,
                       AX_REF_NONE);
    if (init == NULL) {
      ax__actor_discard(a);
      return -ENOMEM;
    }
    _Static_assert(sizeof o.init <= sizeof init->aux, "the init hook fits in aux");
    memcpy(&init->aux, &o.init, sizeof o.init);
  }
  int rc = ax__actor_reserve(a);
  uint64_t mid = 0;
  if (rc == 0 && o.link != NULL)
    rc = ax__link_attach(o.link, a); /* before anyone can see it */
  if (rc == 0 && o.monitor != NULL) {
    rc = ax__monitor_attach(o.monitor, a, &mid);
    if (rc < 0 && o.link != NULL)
      ax__link_detach(o.link, a);
  }
  if (rc < 0) {
    if (init != NULL)
      ax__msg_free(init);
    if (x != NULL)
      x->undo(a, x->arg);
    ax__actor_discard(a);
    return rc;
  }
  ax_ref_t r = a->ref;
  if (x != NULL)
    init->m.from = r; /* the first message comes from the actor itself */
  ax__actor_publish(a, init); /* a may run (and die) from here on */
  if (o.monitor_id != NULL)
    *o.monitor_id = mid;
  if (ref != NULL)
    *ref = r;
  return 0;
}

static ax_ref_t current_ref(void) {
  ax__core_t *c = ax__tls_core;
  return c != NULL && c->current != NULL ? c->current->ref : AX_REF_NONE;
}

static bool msg_args_ok(uint32_t type, const void *data, size_t size) {
  return type != 0 && size <= AX_MSG_MAX && (size == 0 || data != NULL);
}

/* The hot case: a small message from an actor to an actor of its own core.
 * No runtime lookup, no epoch, no locked instruction.
 * Returns 1 when the message is not of that kind (use the generic path). */
static inline __attribute__((always_inline)) int
send_local(ax__core_t *c, ax_ref_t to, uint32_t type, const void *data, size_t size, uint64_t req) {
  if (size > AX__MSG_SMALL - sizeof(ax__msg_t) || !ax__ref_on_core(c, to))
    return 1;
  ax_actor_t *a = ax__lookup_local(c, to);
  if (a == NULL)
    return -ESRCH; /* refused: no dead letter (ax__send_msg) */
  ax__msg_t *m = ax__msg_alloc_local(c, size);
  if (m == NULL)
    return -ENOMEM;
  ax__msg_fill(m, type, data, size, req, c->current != NULL ? c->current->ref : AX_REF_NONE);
  ax__mailbox_push(c, a, m);
  ax__stat_add(&c->stats.sent, 1);
  return 0;
}

/* A small message to an actor of another core of the caller's runtime:
 * copied straight into the ring between the two cores, nothing allocated.
 * Returns 1 when the message is not of that kind or the ring has no room
 * (the general path queues it behind what waits). */
static inline __attribute__((always_inline)) int
send_ring(ax__core_t *c, ax_ref_t to, uint32_t type, const void *data, size_t size, uint64_t req) {
  unsigned ci = ax__ref_core(to);
  if (size > AX__RING_INLINE || ax__ref_rt(to) != c->rt->index || ci >= c->rt->ncores)
    return 1;
  ax__core_t *d = c->rt->cores[ci];
  if (!ax__ref_alive(d, to))
    return -ESRCH; /* refused: no dead letter (ax__send_msg) */
  if (!ax__ring_send_inline(c, d, to, c->current != NULL ? c->current->ref : AX_REF_NONE, type,
                            data, (uint32_t)size, req))
    return 1;
  ax__stat_add(&c->stats.sent, 1);
  return 0;
}

/* A small message from a thread that is no core: copied into the
 * thread's ring to the receiver's core (core.h), nothing allocated.
 * Returns 1 when the message is not of that kind or the ring cannot take
 * it now. */
static inline __attribute__((always_inline)) int
send_foreign(ax_ref_t to, uint32_t type, const void *data, size_t size, uint64_t req) {
  if (size > AX__RING_INLINE || to == AX_REF_NONE)
    return 1;
  ax_rt_t *rt = ax__rt_lookup(ax__ref_rt(to));
  unsigned ci = ax__ref_core(to);
  if (rt == NULL || ci >= rt->ncores)
    return 1; /* no such runtime, a port: the general path says so */
  ax__core_t *d = rt->cores[ci];
  if (!ax__ref_alive(d, to) || ax__rt_stopping(rt))
    return -ESRCH; /* refused: no dead letter (ax__send_msg) */
  return ax__fring_send_inline(rt, d, to, type, data, (uint32_t)size, req) ? 0 : 1;
}

/* A send from a thread that is no core to an actor of a runtime that is
 * stopping: refused (ax__rt_stopping). */
static bool refused_stopping(ax_ref_t to) {
  if (ax__tls_core != NULL || to == AX_REF_NONE || ax__ref_core(to) == AX__REF_NO_CORE)
    return false;
  ax_rt_t *rt = ax__rt_lookup(ax__ref_rt(to));
  return rt != NULL && ax__rt_stopping(rt);
}

/* The general path: another core, another runtime, a thread that is not
 * a core, or a large payload. */
static inline __attribute__((always_inline)) int
send_general(ax_ref_t to, uint32_t type, const void *data, size_t size, uint64_t req) {
  if (to == AX_REF_NONE || refused_stopping(to))
    return -ESRCH;
  /* ax__msg_alloc and ax__msg_fill rather than ax__msg_new: both inline here
   * (measured with callgrind: a dozen instructions less per message). */
  ax__msg_t *m = ax__msg_alloc(to, size);
  if (m == NULL)
    return -ENOMEM;
  ax__msg_fill(m, type, data, size, req, current_ref());
  return ax__send_msg(to, m);
}

static inline __attribute__((always_inline)) int
send_copy(ax_ref_t to, uint32_t type, const void *data, size_t size, uint64_t req) {
  if (!msg_args_ok(type, data, size))
    return -EINVAL;
  ax__core_t *c = ax__tls_core;
  /* A bounded mailbox counts every message: the general path does. */
  if (c != NULL && !ax__ref_bounded(to)) {
    int rc = send_local(c, to, type, data, size, req);
    if (rc <= 0)
      return rc;
    if ((rc = send_ring(c, to, type, data, size, req)) <= 0)
      return rc;
  } else if (c == NULL && !ax__ref_bounded(to)) {
    int rc = send_foreign(to, type, data, size, req);
    if (rc <= 0)
      return rc;
  }
  return send_general(to, type, data, size, req);
}

/* AX__SYS_NEWS: handed to the behaviour as it is; one for an actor that
 * died meanwhile is a dead letter.  Registered here, where every program
 * that sends anything links: supervisors and signals both send news. */
static int news_handle(ax_actor_t *a, ax__msg_t *m) { return ax__invoke(a, m); }

static bool news_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)self;
  (void)reason;
  (void)m;
  return true;
}

static const ax__kind_t news_kind = {.handle = news_handle, .drop = news_drop};

AX__FEATURE_INIT(news) { ax__kind_register(AX__SYS_NEWS, &news_kind); }

int ax__send_news(ax_ref_t to, uint32_t type, const void *data, size_t size) {
  ax__msg_t *m = ax__msg_new(to, AX__SYS_NEWS, type, data, size, current_ref());
  if (m == NULL)
    return -ENOMEM;
  return ax__send_msg(to, m);
}

int ax_send(ax_ref_t to, uint32_t type, const void *data, size_t size) {
  return send_copy(to, type, data, size, 0);
}

int ax_send_owned(ax_ref_t to, uint32_t type, void *buf, size_t size,
                  void (*release)(void *buf)) {
  if (type == 0 || size > UINT32_MAX || (size != 0 && buf == NULL)) {
    if (release != NULL && buf != NULL)
      release(buf);
    return -EINVAL;
  }
  if (refused_stopping(to)) {
    if (release != NULL)
      release(buf);
    return -ESRCH;
  }
  ax__msg_t *m = ax__msg_new(to, AX__SYS_NONE, type, NULL, 0, current_ref());
  if (m == NULL) {
    if (release != NULL)
      release(buf);
    return -ENOMEM;
  }
  m->m.size = (uint32_t)size;
  m->m.data = buf;
  m->flags = AX__MSG_OWNED;
  m->release = release;
  return ax__send_msg(to, m); /* on failure the message is dropped: release runs */
}

void *ax_msg_take(const ax_msg_t *msg) {
  ax__msg_t *m = ax__msg_of(msg);
  if (m == NULL || !(m->flags & AX__MSG_OWNED) || (m->flags & AX__MSG_TAKEN))
    return NULL;
  m->flags |= AX__MSG_TAKEN;
  return (void *)msg->data;
}

int ax_stop(ax_ref_t ref, int reason) {
  if (reason > 0)
    return -EINVAL;
  ax_rt_t *rt;
  ax__erec_t *erec;
  void *obj;
  int rc = ax__ref_enter(ref, &obj, &rt, &erec);
  if (rc == 0 && ax__ref_core(ref) == AX__REF_NO_CORE)
    rc = -ESRCH; /* a port, not an actor */
  /* The message once the actor is known to exist: a stop of a dead actor
   * says -ESRCH, never -ENOMEM. */
  ax__msg_t *m = NULL;
  if (rc == 0 && (m = ax__msg_new(ref, AX__SYS_STOP, AX__SYS_STOP, NULL, 0, current_ref())) == NULL)
    rc = -ENOMEM;
  if (rc < 0) {
    ax__ref_leave(erec);
    return rc;
  }
  ax_actor_t *a = obj;
  int64_t want = (int64_t)(reason == 0 ? AX_REASON_STOPPED : reason) * 2 + 1, none = 0;
  /* The first request wins.  Release orders it before the STOP message,
   * whose handler reads it with acquire. */
  atomic_compare_exchange_strong_explicit(&a->stop_req, &none, want, memory_order_release,
                                          memory_order_relaxed);
  ax__deliver(a, m);
  ax__ref_leave(erec);
  return 0;
}

int64_t ax_mailbox_len(const ax_actor_t *self) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  return (int64_t)self->mq_len + ax__fiber_mailbox_delta(self);
}

unsigned ax_core(const ax_actor_t *self) { return self != NULL ? self->core->index : 0; }
ax_rt_t *ax_actor_rt(const ax_actor_t *self) { return self != NULL ? self->core->rt : NULL; }

int ax_ref_core(ax_ref_t ref) {
  if (ref == AX_REF_NONE || ax__ref_core(ref) == AX__REF_NO_CORE)
    return -EINVAL;
  return (int)ax__ref_core(ref);
}

int ax__request(ax_actor_t *self, ax_ref_t to, uint32_t type, const void *data, size_t size,
                uint64_t bits, uint64_t *req) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  uint64_t id = ax__core_next_id(self->core) | bits;
  int rc = send_copy(to, type, data, size, id);
  if (rc == 0 && req != NULL)
    *req = id;
  return rc;
}

int ax_request(ax_actor_t *self, ax_ref_t to, uint32_t type, const void *data, size_t size,
               uint64_t *req) {
  return ax__request(self, to, type, data, size, 0, req);
}

int ax_reply(ax_actor_t *self, const ax_msg_t *request, uint32_t type, const void *data,
             size_t size) {
  (void)self; /* the sender is whoever runs; self only documents the call site */
  if (request == NULL || request->req == 0)
    return -EINVAL;
  uint64_t req = request->req;
  if (req & AX__ID_CALL)
    req |= AX__ID_REPLY; /* the answer to an ax_call (fiber.c) */
  return send_copy(request->from, type, data, size, req);
}
