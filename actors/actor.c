/* The actor API: spawn, send (copied or owned), stop, request/reply, accessors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

static unsigned pick_core(ax_rt_t *rt, const ax_spawn_opts_t *o) {
  ax__core_t *cur = ax__tls_core;
  switch (o->placement) {
  case AX_PLACE_CORE:
    return o->core;
  case AX_PLACE_LOCAL:
    if (cur != NULL && cur->rt == rt)
      return cur->index;
    break; /* not on a core of rt: round-robin */
  default:
    break;
  }
  return atomic_fetch_add_explicit(&rt->next_core, 1, memory_order_relaxed) % rt->ncores;
}

int ax_spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state, const ax_spawn_opts_t *opts,
             ax_ref_t *ref) {
  ax_spawn_opts_t o = opts != NULL ? *opts : (ax_spawn_opts_t){0};
  if (rt == NULL || behaviour == NULL || o.placement > AX_PLACE_CORE ||
      (o.placement == AX_PLACE_CORE && o.core >= rt->ncores))
    return -EINVAL;
  /* Acquire pairs with the release in ax_rt_stop. */
  if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
    return -ESHUTDOWN;
  ax__core_t *c = rt->cores[pick_core(rt, &o)];

  /* The actor's memory comes from the spawning core's pool when there is
   * one (it goes back there when the actor is reclaimed), else malloc. */
  ax__core_t *cur = ax__tls_core;
  ax_actor_t *a = NULL;
  ax__pool_t *home = NULL;
  if (cur != NULL && cur->rt == rt) {
    home = &cur->pools[AX__ACTOR_POOL];
    a = ax__pool_alloc(home);
  }
  if (a == NULL) {
    home = NULL;
    a = ax__malloc(sizeof *a);
    if (a == NULL)
      return -ENOMEM;
  }
  memset(a, 0, sizeof *a);
  a->e.kind = AX__KIND_ACTOR;
  ax__mpscq_init(&a->e.q, &a->stub, true); /* empty and idle: the first send schedules */
  a->fn = behaviour;
  a->state = state;
  a->core = c;
  a->home = home;
  atomic_init(&a->stop_req, 0);
  if (o.terminate != NULL) {
    /* Kept in the extension: most actors have no terminate hook, and the
     * actor itself stays at 96 bytes. */
    a->ext = ax__calloc(1, sizeof *a->ext);
    if (a->ext == NULL)
      goto nomem;
    a->ext->terminate = o.terminate;
  }

  ax__msg_t *init = NULL;
  if (o.init != NULL) {
    init = ax__msg_alloc(ax__ref_make(0, rt->index, 0, 0), sizeof o.init);
    if (init == NULL) {
      free(a->ext);
      goto nomem;
    }
    init->sys = AX__SYS_INIT;
    init->m.type = AX__SYS_INIT;
    init->m.size = 0;
    init->m.data = NULL;
    init->m.from = AX_REF_NONE;
    memcpy(init->payload, &o.init, sizeof o.init);
  }
  int64_t slot = ax__table_alloc(&c->table);
  if (slot < 0) {
    free(a->ext);
    if (init != NULL)
      ax__msg_free(init);
    if (home != NULL)
      ax__pool_free(home, a);
    else
      free(a);
    return (int)slot;
  }
  ax__slot_t *s = ax__table_slot(&c->table, (uint32_t)slot);
  uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
  a->ref = ax__ref_make(gen, rt->index, c->index, (uint32_t)slot);
  ax_ref_t r = a->ref;
  /* Counted alive before anyone can make it die. */
  atomic_fetch_add_explicit(&rt->live, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->stats.spawned, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->stats.actors, 1, memory_order_relaxed);
  /* Release publishes the initialised actor to every thread that resolves
   * its reference (they load ptr with acquire). */
  atomic_store_explicit(&s->ptr, &a->e, memory_order_release);
  if (init != NULL)
    ax__deliver(&a->e, init); /* a may run (and die) from here on */
  if (ref != NULL)
    *ref = r;
  return 0;

nomem:
  if (home != NULL)
    ax__pool_free(home, a);
  else
    free(a);
  return -ENOMEM;
}

static ax_ref_t current_ref(void) {
  ax__core_t *c = ax__tls_core;
  return c != NULL && c->current != NULL ? c->current->ref : AX_REF_NONE;
}

/* Builds a copied message; NULL on ENOMEM. */
/* Fills a message's header and copies the payload in. */
static void fill_msg(ax__msg_t *m, uint32_t type, const void *data, size_t size, uint64_t req,
                     ax_ref_t from) {
  m->m.type = type;
  m->m.size = (uint32_t)size;
  m->m.data = size != 0 ? m->payload : NULL;
  m->m.from = from;
  m->m.req = req;
  if (size != 0)
    memcpy(m->payload, data, size);
}

/* Builds a copied message; NULL on ENOMEM. */
static ax__msg_t *make_msg(ax_ref_t to, uint32_t type, const void *data, size_t size,
                           uint64_t req) {
  ax__msg_t *m = ax__msg_alloc(to, size);
  if (m != NULL)
    fill_msg(m, type, data, size, req, current_ref());
  return m;
}

static bool msg_args_ok(uint32_t type, const void *data, size_t size) {
  return type != 0 && size <= AX_MSG_MAX && (size == 0 || data != NULL);
}

/* The hot case: a small message from an actor to an actor of its own core.
 * No runtime lookup, no epoch, no atomic but the mailbox exchange.
 * Returns 1 when the message is not of that kind (use the generic path). */
static int send_local(ax__core_t *c, ax_ref_t to, uint32_t type, const void *data, size_t size,
                      uint64_t req) {
  if (size > AX__MSG_SMALL - sizeof(ax__msg_t) || !ax__ref_on_core(c, to))
    return 1;
  ax__entity_t *e = ax__lookup_local(c, to);
  if (e == NULL) {
    ax__stat_add(&c->stats.dead_letters, 1);
    return -ESRCH;
  }
  ax__msg_t *m = ax__msg_alloc_local(c);
  if (m == NULL)
    return -ENOMEM;
  fill_msg(m, type, data, size, req, c->current != NULL ? c->current->ref : AX_REF_NONE);
  ax__deliver(e, m);
  ax__stat_add(&c->stats.sent, 1);
  return 0;
}

static int send_copy(ax_ref_t to, uint32_t type, const void *data, size_t size, uint64_t req) {
  if (!msg_args_ok(type, data, size))
    return -EINVAL;
  ax__core_t *c = ax__tls_core;
  if (c != NULL) {
    int rc = send_local(c, to, type, data, size, req);
    if (rc <= 0)
      return rc;
  }
  if (to == AX_REF_NONE)
    return -ESRCH;
  ax__msg_t *m = make_msg(to, type, data, size, req);
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
  ax__msg_t *m = ax__msg_alloc(to, 0);
  if (m == NULL) {
    if (release != NULL)
      release(buf);
    return -ENOMEM;
  }
  m->m.type = type;
  m->m.size = (uint32_t)size;
  m->m.data = buf;
  m->m.from = current_ref();
  m->flags = AX__MSG_OWNED;
  m->release = release;
  return ax__send_msg(to, m); /* on failure the message is dropped: release runs */
}

void *ax_msg_take(const ax_msg_t *msg) {
  if (msg == NULL)
    return NULL;
  ax__msg_t *m = AX_CONTAINER_OF(msg, ax__msg_t, m);
  if (!(m->flags & AX__MSG_OWNED) || (m->flags & AX__MSG_TAKEN))
    return NULL;
  m->flags |= AX__MSG_TAKEN;
  return (void *)msg->data;
}

int ax_stop(ax_ref_t ref, int reason) {
  if (reason > 0)
    return -EINVAL;
  ax__msg_t *m = ax__msg_alloc(ref, 0);
  if (m == NULL)
    return -ENOMEM;
  m->sys = AX__SYS_STOP;
  m->m.type = AX__SYS_STOP;
  m->m.size = 0;
  m->m.data = NULL;
  m->m.from = current_ref();
  ax_rt_t *rt;
  ax__erec_t *erec;
  ax__entity_t *e;
  int rc = ax__ref_enter(ref, &e, &rt, &erec);
  if (rc == 0 && e->kind != AX__KIND_ACTOR)
    rc = -ESRCH;
  if (rc < 0) {
    ax__ref_leave(erec);
    ax__msg_free(m);
    return rc;
  }
  ax_actor_t *a = AX_CONTAINER_OF(e, ax_actor_t, e);
  int64_t want = (int64_t)(reason == 0 ? AX_REASON_STOPPED : reason) * 2 + 1, none = 0;
  /* The first request wins.  Release orders it before the STOP message,
   * whose handler reads it with acquire. */
  atomic_compare_exchange_strong_explicit(&a->stop_req, &none, want, memory_order_release,
                                          memory_order_relaxed);
  ax__deliver(e, m);
  ax__ref_leave(erec);
  return 0;
}

unsigned ax_core(const ax_actor_t *self) { return self != NULL ? self->core->index : 0; }
ax_rt_t *ax_actor_rt(const ax_actor_t *self) { return self != NULL ? self->core->rt : NULL; }

int ax_ref_core(ax_ref_t ref) {
  if (ref == AX_REF_NONE || ax__ref_core(ref) == AX__PORT_CORE)
    return -EINVAL;
  return (int)ax__ref_core(ref);
}

int ax_request(ax_actor_t *self, ax_ref_t to, uint32_t type, const void *data, size_t size,
               uint64_t *req) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  uint64_t id = ++self->core->next_id;
  int rc = send_copy(to, type, data, size, id);
  if (rc == 0 && req != NULL)
    *req = id;
  return rc;
}

int ax_reply(ax_actor_t *self, const ax_msg_t *request, uint32_t type, const void *data,
             size_t size) {
  (void)self; /* the sender is whoever runs; self only documents the call site */
  if (request == NULL || request->req == 0)
    return -EINVAL;
  return send_copy(request->from, type, data, size, request->req);
}

ax__actor_ext_t *ax__ext(ax_actor_t *a) {
  if (a->ext == NULL)
    a->ext = ax__calloc(1, sizeof *a->ext);
  return a->ext;
}
