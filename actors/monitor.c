/* Monitors: AX_MSG_DOWN when a watched actor stops, for whatever reason. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

/* Who watches an actor (kept by the target) and whom an actor watches (kept
 * by the watcher, so that ax_demonitor and late DOWNs can be filtered).
 * Both lists belong to their actor's core. */
typedef struct ax__mon_in {
  struct ax__mon_in *next;
  ax_ref_t watcher;
  uint64_t id;
} ax__mon_in_t;

typedef struct ax__mon_out {
  struct ax__mon_out *next;
  ax_ref_t target;
  uint64_t id;
} ax__mon_out_t;

static ax__msg_t *sys_msg(ax_ref_t to, uint16_t sys, const void *data, size_t size,
                          ax_ref_t from) {
  ax__msg_t *m = ax__msg_alloc(to, size);
  if (m == NULL)
    return NULL;
  m->sys = sys;
  m->m.type = sys == AX__SYS_DOWN ? AX_MSG_DOWN : sys;
  m->m.size = (uint32_t)size;
  m->m.data = m->payload;
  m->m.from = from;
  memcpy(m->payload, data, size);
  return m;
}

static void send_down(ax_ref_t watcher, ax_ref_t target, uint64_t id, int reason) {
  ax_down_t d = {.ref = target, .id = id, .reason = reason};
  ax__msg_t *m = sys_msg(watcher, AX__SYS_DOWN, &d, sizeof d, target);
  if (m != NULL)
    ax__send_msg(watcher, m); /* a watcher that is gone needs no news */
}

int ax_monitor(ax_actor_t *self, ax_ref_t target, uint64_t *id) {
  if (self == NULL || target == AX_REF_NONE)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax__actor_ext_t *ext = ax__ext(self);
  ax__mon_out_t *out = ax__malloc(sizeof *out);
  if (ext == NULL || out == NULL) {
    free(out);
    return -ENOMEM;
  }
  ax__monitor_req_t req = {.watcher = self->ref, .id = ++self->core->next_id};
  ax__msg_t *m = sys_msg(target, AX__SYS_MONITOR, &req, sizeof req, self->ref);
  if (m == NULL) {
    free(out);
    return -ENOMEM;
  }
  out->target = target;
  out->id = req.id;
  out->next = ext->mon_out;
  ext->mon_out = out;
  int rc = ax__send_msg(target, m);
  if (rc == -ENOMEM) { /* the request never left: forget it */
    ext->mon_out = out->next;
    free(out);
    return rc;
  }
  if (rc < 0)
    send_down(self->ref, target, req.id, -ESRCH); /* no such actor: DOWN at once */
  if (id != NULL)
    *id = req.id;
  return 0;
}

/* Unlinks and returns self's record of monitor id, or NULL. */
static ax__mon_out_t *take_out(ax_actor_t *a, uint64_t id) {
  if (a->ext == NULL)
    return NULL;
  for (ax__mon_out_t **p = &a->ext->mon_out; *p != NULL; p = &(*p)->next) {
    if ((*p)->id == id) {
      ax__mon_out_t *o = *p;
      *p = o->next;
      return o;
    }
  }
  return NULL;
}

int ax_demonitor(ax_actor_t *self, uint64_t id) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax__mon_out_t *o = take_out(self, id);
  if (o == NULL)
    return -ENOENT;
  ax__monitor_req_t req = {.watcher = self->ref, .id = id};
  ax__msg_t *m = sys_msg(o->target, AX__SYS_DEMONITOR, &req, sizeof req, self->ref);
  if (m != NULL)
    ax__send_msg(o->target, m); /* best effort: the DOWN is filtered anyway */
  free(o);
  return 0;
}

/* MONITOR and DEMONITOR requests reaching the target. */
void ax__monitor_handle(ax_actor_t *a, ax__msg_t *m) {
  ax__monitor_req_t req;
  memcpy(&req, m->payload, sizeof req);
  ax__actor_ext_t *ext = ax__ext(a);
  if (m->sys == AX__SYS_MONITOR) {
    ax__mon_in_t *in = ext != NULL ? ax__malloc(sizeof *in) : NULL;
    if (in == NULL) {
      send_down(req.watcher, a->ref, req.id, -ENOMEM); /* cannot keep the promise */
      return;
    }
    in->watcher = req.watcher;
    in->id = req.id;
    in->next = ext->mon_in;
    ext->mon_in = in;
    return;
  }
  if (ext == NULL)
    return;
  for (ax__mon_in_t **p = &ext->mon_in; *p != NULL; p = &(*p)->next) {
    if ((*p)->id == req.id && (*p)->watcher == req.watcher) {
      ax__mon_in_t *in = *p;
      *p = in->next;
      free(in);
      return;
    }
  }
}

/* A MONITOR request that reached an actor too late: answer with DOWN. */
void ax__monitor_refuse(ax__msg_t *m, ax_ref_t target, int reason) {
  ax__monitor_req_t req;
  memcpy(&req, m->payload, sizeof req);
  send_down(req.watcher, target, req.id, reason);
}

/* A DOWN reached the watcher: deliver it once, and only if the monitor
 * was not removed meanwhile. */
bool ax__down_msg_live(ax_actor_t *a, ax__msg_t *m) {
  ax_down_t d;
  memcpy(&d, m->payload, sizeof d);
  ax__mon_out_t *o = take_out(a, d.id);
  if (o == NULL)
    return false;
  free(o);
  return true;
}

void ax__monitors_on_death(ax_actor_t *a, int reason) {
  if (a->ext == NULL)
    return;
  ax__mon_in_t *in = a->ext->mon_in;
  while (in != NULL) {
    ax__mon_in_t *next = in->next;
    send_down(in->watcher, a->ref, in->id, reason);
    free(in);
    in = next;
  }
  a->ext->mon_in = NULL;
  ax__mon_out_t *o = a->ext->mon_out;
  while (o != NULL) {
    ax__mon_out_t *next = o->next;
    free(o);
    o = next;
  }
  a->ext->mon_out = NULL;
}
