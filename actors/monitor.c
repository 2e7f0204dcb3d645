/* Monitors: AX_MSG_DOWN when a watched actor stops, for whatever reason. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "actors/idmap.h"
#include "actors/list.h"
#include "actors/monitor.h"

/*
 * A monitor is kept twice: by the target (who watches me: AX__SLOT_MON_IN,
 * to send DOWN when it dies) and by the watcher (whom I watch:
 * AX__SLOT_MON_OUT, so that ax_demonitor and a DOWN already on its way can
 * be filtered).  Each list belongs to its actor's core.  The target learns
 * of a monitor through an AX__SYS_MONITOR message; one that reaches it
 * dead (or finds no such actor) is answered with DOWN at once.
 *
 * The DOWN message is made with the monitor, by the watcher (it travels in
 * the MONITOR request's aux, then waits in the target's record), so that a
 * death never needs memory to be reported: no DOWN is lost to an
 * allocation failure, which a supervisor could not recover from.
 */
typedef struct ax__mon {
  ax__link_t link;        /* its actor's list: AX__SLOT_MON_IN or AX__SLOT_MON_OUT */
  ax__idnode_t by_id;     /* the core's index: out: id; in: in_key(id, watcher) */
  ax__idnode_t by_target; /* out only: the core's index: target_key(target, watcher) */
  ax_actor_t *owner;      /* the actor whose list holds it */
  ax_ref_t other; /* in: the watcher; out: the target */
  uint64_t id;
  ax__msg_t *down; /* in: the DOWN to send */
  bool out;
  bool indexed; /* in the core's index; not a spawn's record made on another core */
} ax__mon_t;

/* A core's index of its actors' monitor records (made with the core): out
 * records by id (the watcher core's own ids) and by target and watcher,
 * in records by id and watcher (ids of other cores may be equal). */
typedef struct mon_index {
  ax__idmap_t ids, targets;
} mon_index_t;

typedef struct ax__monitor_req {
  ax_ref_t watcher;
  uint64_t id;
} ax__monitor_req_t;

static mon_index_t *index_of(ax__core_t *c) {
  return c->slot[AX__CORE_SLOT_MONITORS];
}

static uint64_t in_key(uint64_t id, ax_ref_t watcher) {
  return id ^ ((uint64_t)watcher * 0xc2b2ae3d27d4eb4full);
}

/* The key of an out record by its target: the watcher is part of it, so
 * that many watchers of one target (sessions of one server) spread over
 * the buckets, where a look for one watcher's record (ax__monitor_find)
 * walked all of them (a newcomer: 80,000 watchers, 87-180 us a DOWN). */
static uint64_t target_key(ax_ref_t target, ax_ref_t watcher) {
  return (uint64_t)target ^ (((uint64_t)watcher * 0x9e3779b97f4a7c15ull) >> 7);
}

/* Adds a record to one of a's lists and, when the caller runs a's core,
 * to that core's index; -ENOMEM when out of memory.  The one record made
 * elsewhere (a child spawned with a monitor onto another core, before it
 * runs) stays out of the index, which only its own core may write: a
 * lookup that misses the index looks for it on the list (mon_take). */
static int mon_add(ax_actor_t *a, unsigned slot, ax_ref_t other, uint64_t id, ax__msg_t *down) {
  ax__actor_ext_t *ext = ax__actor_ext(a);
  ax__mon_t *r = ext != NULL ? ax__malloc(sizeof *r) : NULL;
  if (r == NULL)
    return -ENOMEM;
  mon_index_t *x = index_of(a->core);
  r->owner = a;
  r->other = other;
  r->id = id;
  r->down = down;
  r->out = slot == AX__SLOT_MON_OUT;
  r->by_id.key = r->out ? id : in_key(id, other);
  r->by_target.key = target_key(other, a->ref);
  r->indexed = a->core == ax__tls_core;
  if (r->indexed && ax__idmap_add(&x->ids, &r->by_id) < 0) {
    free(r);
    return -ENOMEM;
  }
  if (r->indexed && r->out && ax__idmap_add(&x->targets, &r->by_target) < 0) {
    ax__idmap_remove(&x->ids, &r->by_id);
    free(r);
    return -ENOMEM;
  }
  ax__list_push((ax__link_t **)&ext->slot[slot], &r->link);
  return 0;
}

/* Takes r out of its actor's list and the core's index. */
static void mon_unlink(ax__mon_t *r) {
  ax_actor_t *a = r->owner;
  mon_index_t *x = index_of(a->core);
  ax__list_remove((ax__link_t **)&a->ext->slot[r->out ? AX__SLOT_MON_OUT : AX__SLOT_MON_IN],
                  &r->link);
  if (!r->indexed)
    return;
  ax__idmap_remove(&x->ids, &r->by_id);
  if (r->out)
    ax__idmap_remove(&x->targets, &r->by_target);
}

static bool mon_is(const ax__mon_t *r, const ax_actor_t *a, bool out, uint64_t id,
                   ax_ref_t other) {
  return r->owner == a && r->out == out && r->id == id && (out || r->other == other);
}

/* Unlinks and returns a's record of monitor id from one of its lists (the
 * in list: the one of watcher `other`), or NULL. */
static ax__mon_t *mon_take(ax_actor_t *a, unsigned slot, uint64_t id, ax_ref_t other) {
  bool out = slot == AX__SLOT_MON_OUT;
  const ax__idmap_t *ids = &index_of(a->core)->ids;
  uint64_t key = out ? id : in_key(id, other);
  for (ax__idnode_t *n = ax__idmap_next(ids, key, NULL); n != NULL;
       n = ax__idmap_next(ids, key, n)) {
    ax__mon_t *r = AX_CONTAINER_OF(n, ax__mon_t, by_id);
    if (mon_is(r, a, out, id, other)) {
      mon_unlink(r);
      return r;
    }
  }
  /* The record a spawn made on another core is on the list only: rare
   * (a demonitor of such a child, once), and then a walk. */
  if (!out && a->ext != NULL)
    for (ax__link_t *l = a->ext->slot[slot]; l != NULL; l = l->next) {
      ax__mon_t *r = AX_CONTAINER_OF(l, ax__mon_t, link);
      if (!r->indexed && mon_is(r, a, out, id, other)) {
        mon_unlink(r);
        return r;
      }
    }
  return NULL;
}

/* The DOWN of monitor id, made in advance: its reason is written when it
 * is sent.  NULL when out of memory. */
static ax__msg_t *down_new(ax_ref_t watcher, ax_ref_t target, uint64_t id) {
  ax_down_t d = {.ref = target, .id = id, .reason = 0};
  return ax__msg_new(watcher, AX__SYS_DOWN, AX_MSG_DOWN, &d, sizeof d, target);
}

/* Sends a DOWN made by down_new with its reason. */
static void send_down(ax__msg_t *m, ax_ref_t watcher, int reason) {
  ax_down_t *d = (ax_down_t *)(void *)m->payload;
  d->reason = reason; /* published by the send */
  (void)ax__send_msg(watcher, m); /* a watcher that is gone needs no news */
}

int ax_monitor(ax_actor_t *self, ax_ref_t target, uint64_t *id) {
  if (self == NULL || target == AX_REF_NONE || ax__ref_core(target) == AX__REF_NO_CORE)
    return -EINVAL; /* a port's thread has no life to watch: it closes the port */
  if (ax__ref_other_rt(self->core->rt, target))
    return -EINVAL; /* the target would keep a DOWN made from self's runtime's pools */
  AX__ASSERT_OWNER(self);
  ax__monitor_req_t req = {.watcher = self->ref, .id = ax__core_next_id(self->core)};
  ax__msg_t *m = ax__msg_new(target, AX__SYS_MONITOR, AX__SYS_MONITOR, &req, sizeof req,
                             self->ref);
  ax__msg_t *down = m != NULL ? down_new(self->ref, target, req.id) : NULL;
  if (down == NULL || mon_add(self, AX__SLOT_MON_OUT, target, req.id, NULL) < 0) {
    if (down != NULL)
      ax__msg_free(down);
    if (m != NULL)
      ax__msg_free(m);
    return -ENOMEM;
  }
  m->aux = (uint64_t)(uintptr_t)down; /* the target keeps it, or answers with it */
  int rc = ax__send_msg(target, m);
  if (rc == -ENOMEM) { /* the request never left: forget it */
    free(mon_take(self, AX__SLOT_MON_OUT, req.id, AX_REF_NONE));
    ax__msg_free(down);
    return rc;
  }
  if (rc < 0)
    send_down(down, self->ref, -ESRCH); /* no such actor: DOWN at once */
  if (id != NULL)
    *id = req.id;
  return 0;
}

int ax__monitor_attach(ax_actor_t *watcher, ax_actor_t *child, uint64_t *id) {
  uint64_t mid = ax__core_next_id(watcher->core);
  ax__msg_t *down = down_new(watcher->ref, child->ref, mid);
  if (down == NULL)
    return -ENOMEM;
  if (mon_add(watcher, AX__SLOT_MON_OUT, child->ref, mid, NULL) < 0) {
    ax__msg_free(down);
    return -ENOMEM;
  }
  if (mon_add(child, AX__SLOT_MON_IN, watcher->ref, mid, down) < 0) {
    free(mon_take(watcher, AX__SLOT_MON_OUT, mid, AX_REF_NONE));
    ax__msg_free(down);
    return -ENOMEM;
  }
  *id = mid;
  return 0;
}

bool ax__monitor_find(ax_actor_t *watcher, ax_ref_t target, uint64_t *id) {
  const ax__idmap_t *targets = &index_of(watcher->core)->targets;
  uint64_t key = target_key(target, watcher->ref);
  for (ax__idnode_t *n = ax__idmap_next(targets, key, NULL); n != NULL;
       n = ax__idmap_next(targets, key, n)) {
    ax__mon_t *r = AX_CONTAINER_OF(n, ax__mon_t, by_target);
    if (r->owner == watcher && r->other == target) {
      *id = r->id;
      return true;
    }
  }
  return false;
}

/* Tells target to forget watcher's monitor id.  Best effort: a DOWN on
 * its way is filtered by the watcher anyway, and a target that is gone
 * keeps nothing. */
static void send_demonitor(ax_ref_t watcher, ax_ref_t target, uint64_t id) {
  ax__monitor_req_t req = {.watcher = watcher, .id = id};
  ax__msg_t *m =
      ax__msg_new(target, AX__SYS_DEMONITOR, AX__SYS_DEMONITOR, &req, sizeof req, watcher);
  if (m != NULL)
    (void)ax__send_msg(target, m);
}

int ax_demonitor(ax_actor_t *self, uint64_t id) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax__mon_t *o = mon_take(self, AX__SLOT_MON_OUT, id, AX_REF_NONE);
  if (o == NULL)
    return -ENOENT;
  send_demonitor(self->ref, o->other, id);
  free(o);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The kinds                                                                 */

/* MONITOR reaching the target: remember the watcher with its DOWN (or
 * answer at once with DOWN{-ENOMEM}: the promise cannot be kept). */
static int monitor_handle(ax_actor_t *a, ax__msg_t *m) {
  ax__monitor_req_t req;
  memcpy(&req, m->payload, sizeof req);
  ax__msg_t *down = (ax__msg_t *)(uintptr_t)m->aux;
  if (mon_add(a, AX__SLOT_MON_IN, req.watcher, req.id, down) < 0)
    send_down(down, req.watcher, -ENOMEM);
  return 0;
}

/* MONITOR reaching a dead actor: DOWN with its reason. */
static bool monitor_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)self;
  ax__monitor_req_t req;
  memcpy(&req, m->payload, sizeof req);
  send_down((ax__msg_t *)(uintptr_t)m->aux, req.watcher, reason);
  return false;
}

static int demonitor_handle(ax_actor_t *a, ax__msg_t *m) {
  ax__monitor_req_t req;
  memcpy(&req, m->payload, sizeof req);
  ax__mon_t *r = mon_take(a, AX__SLOT_MON_IN, req.id, req.watcher);
  if (r != NULL) {
    ax__msg_free(r->down);
    free(r);
  }
  return 0;
}

/* DOWN reaching the watcher: delivered once, and only if the monitor was
 * not removed meanwhile. */
static int down_handle(ax_actor_t *a, ax__msg_t *m) {
  ax_down_t d;
  memcpy(&d, m->payload, sizeof d);
  ax__mon_t *o = mon_take(a, AX__SLOT_MON_OUT, d.id, AX_REF_NONE);
  if (o == NULL)
    return 0;
  free(o);
  return ax__invoke(a, m);
}

/* A DOWN for a watcher that died meanwhile: a dead letter. */
static bool down_drop(ax_ref_t self, int reason, ax__msg_t *m) {
  (void)self;
  (void)reason;
  (void)m;
  return true;
}

/* Frees the records of one of a's lists: the in list's send the DOWNs
 * they hold, with `reason`; the out list's tell their targets to forget
 * a (best effort, as ax_demonitor): a long-lived target that short-lived
 * watchers monitor kept a record and a DOWN per dead watcher until it
 * died itself (about 100 B each). */
static void free_list(ax_actor_t *a, unsigned slot, int reason) {
  ax__link_t *l;
  while ((l = a->ext->slot[slot]) != NULL) {
    ax__mon_t *r = AX_CONTAINER_OF(l, ax__mon_t, link);
    mon_unlink(r);
    if (r->down != NULL)
      send_down(r->down, r->other, reason);
    else if (slot == AX__SLOT_MON_OUT)
      send_demonitor(a->ref, r->other, r->id);
    free(r);
  }
}

/* The actor died: tell its watchers, forget whom it watched. */
static void monitors_on_death(ax_actor_t *a, int reason) {
  if (a->ext == NULL)
    return;
  free_list(a, AX__SLOT_MON_IN, reason);
  free_list(a, AX__SLOT_MON_OUT, reason);
}

static int monitors_core_init(ax__core_t *c) {
  c->slot[AX__CORE_SLOT_MONITORS] = ax__calloc(1, sizeof(mon_index_t));
  return c->slot[AX__CORE_SLOT_MONITORS] != NULL ? 0 : -ENOMEM;
}

static void monitors_core_free(ax__core_t *c) {
  mon_index_t *x = c->slot[AX__CORE_SLOT_MONITORS];
  if (x != NULL) { /* every actor, with its monitors, is gone */
    ax__idmap_destroy(&x->ids);
    ax__idmap_destroy(&x->targets);
  }
  free(x);
  c->slot[AX__CORE_SLOT_MONITORS] = NULL;
}

static const ax__kind_t monitor_kind = {.handle = monitor_handle, .drop = monitor_drop};
static const ax__kind_t demonitor_kind = {.handle = demonitor_handle};
static const ax__kind_t down_kind = {.handle = down_handle, .drop = down_drop};

static ax__feature_t monitors = {
    .name = "monitors",
    .order = AX__ORDER_MONITORS,
    .core_init = monitors_core_init,
    .core_free = monitors_core_free,
    .actor_death = monitors_on_death,
    .announces = true,
};

AX__FEATURE_INIT(monitors) {
  ax__kind_register(AX__SYS_MONITOR, &monitor_kind);
  ax__kind_register(AX__SYS_DEMONITOR, &demonitor_kind);
  ax__kind_register(AX__SYS_DOWN, &down_kind);
  ax__feature_register(&monitors);
}
