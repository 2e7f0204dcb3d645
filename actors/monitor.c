/* Monitors: AX_MSG_DOWN when a watched actor stops, for whatever reason. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
  struct ax__mon *next;
  ax_ref_t other; /* in: the watcher; out: the target */
  uint64_t id;
  ax__msg_t *down; /* in: the DOWN to send */
} ax__mon_t;

typedef struct ax__monitor_req {
  ax_ref_t watcher;
  uint64_t id;
} ax__monitor_req_t;

/* Pushes a record on one of a's lists; -ENOMEM when out of memory. */
static int mon_add(ax_actor_t *a, unsigned slot, ax_ref_t other, uint64_t id, ax__msg_t *down) {
  ax__actor_ext_t *ext = ax__actor_ext(a);
  ax__mon_t *r = ext != NULL ? ax__malloc(sizeof *r) : NULL;
  if (r == NULL)
    return -ENOMEM;
  r->other = other;
  r->id = id;
  r->down = down;
  r->next = ext->slot[slot];
  ext->slot[slot] = r;
  return 0;
}

/* Unlinks and returns the record of monitor id (and, when other is not
 * AX_REF_NONE, of that actor) from one of a's lists, or NULL. */
static ax__mon_t *mon_take(ax_actor_t *a, unsigned slot, uint64_t id, ax_ref_t other) {
  if (a->ext == NULL)
    return NULL;
  for (ax__mon_t **p = (ax__mon_t **)&a->ext->slot[slot]; *p != NULL; p = &(*p)->next) {
    if ((*p)->id == id && (other == AX_REF_NONE || (*p)->other == other)) {
      ax__mon_t *r = *p;
      *p = r->next;
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
  ax__mon_t *r = ax__slot_get(watcher, AX__SLOT_MON_OUT);
  for (; r != NULL; r = r->next) {
    if (r->other == target) {
      *id = r->id;
      return true;
    }
  }
  return false;
}

int ax_demonitor(ax_actor_t *self, uint64_t id) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax__mon_t *o = mon_take(self, AX__SLOT_MON_OUT, id, AX_REF_NONE);
  if (o == NULL)
    return -ENOENT;
  ax__monitor_req_t req = {.watcher = self->ref, .id = id};
  ax__msg_t *m = ax__msg_new(o->other, AX__SYS_DEMONITOR, AX__SYS_DEMONITOR, &req, sizeof req,
                             self->ref);
  if (m != NULL)
    (void)ax__send_msg(o->other, m); /* best effort: the DOWN is filtered anyway */
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

static void free_list(ax__mon_t *r) {
  while (r != NULL) {
    ax__mon_t *next = r->next;
    free(r);
    r = next;
  }
}

/* The actor died: tell its watchers, forget whom it watched. */
static void monitors_on_death(ax_actor_t *a, int reason) {
  if (a->ext == NULL)
    return;
  for (ax__mon_t *in = a->ext->slot[AX__SLOT_MON_IN]; in != NULL; in = in->next)
    send_down(in->down, in->other, reason);
  free_list(a->ext->slot[AX__SLOT_MON_IN]);
  free_list(a->ext->slot[AX__SLOT_MON_OUT]);
  a->ext->slot[AX__SLOT_MON_IN] = a->ext->slot[AX__SLOT_MON_OUT] = NULL;
}

static const ax__kind_t monitor_kind = {.handle = monitor_handle, .drop = monitor_drop};
static const ax__kind_t demonitor_kind = {.handle = demonitor_handle};
static const ax__kind_t down_kind = {.handle = down_handle, .drop = down_drop};

static ax__feature_t monitors = {
    .name = "monitors",
    .order = AX__ORDER_MONITORS,
    .actor_death = monitors_on_death,
};

AX__FEATURE_INIT(monitors) {
  ax__kind_register(AX__SYS_MONITOR, &monitor_kind);
  ax__kind_register(AX__SYS_DEMONITOR, &demonitor_kind);
  ax__kind_register(AX__SYS_DOWN, &down_kind);
  ax__feature_register(&monitors);
}
