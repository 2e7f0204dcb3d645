/* Timers as messages: ax_after, ax_every and ax_timer_cancel on the actor's core loop. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actors/actors.h"
#include "actors/fiber.h"
#include "actors/idmap.h"
#include "actors/list.h"

#define AX__TIMER_PAYLOAD_MAX 256

/* A timer of an actor: lives in its AX__SLOT_TIMERS list until cancelled, until its
 * one-shot message is handled, or until the actor dies.  Owner core only. */
typedef struct ax__timer_rec {
  ax_timer_t t;
  ax__link_t link; /* the actor's AX__SLOT_TIMERS list */
  ax__idnode_t node; /* the core's index (AX__CORE_SLOT_TIMERS), by id */
  ax_actor_t *actor;
  uint64_t id;
  uint32_t type, size;
  bool periodic;
  bool queued;    /* a message of this timer waits in the mailbox (not stale);
                     a periodic timer is stopped meanwhile if it came due (fire) */
  uint32_t stale; /* messages of this timer in the mailbox from before a rearm */
  unsigned char payload[];
} ax__timer_rec_t;

/* The core's index of its actors' timers by id (ids are the core's own, so
 * one matches at most one timer; made with the core). */
static ax__idmap_t *index_of(ax__core_t *c) {
  return c->slot[AX__CORE_SLOT_TIMERS];
}

static void unlink_rec(ax_actor_t *a, ax__timer_rec_t *r) {
  ax__list_remove((ax__link_t **)&a->ext->slot[AX__SLOT_TIMERS], &r->link);
  ax__idmap_remove(index_of(a->core), &r->node);
}

/* Timer id of actor a, or NULL (none such, or another actor's). */
static ax__timer_rec_t *find_rec(ax_actor_t *a, uint64_t id) {
  ax__idnode_t *n = ax__idmap_next(index_of(a->core), id, NULL);
  ax__timer_rec_t *r = n != NULL ? AX_CONTAINER_OF(n, ax__timer_rec_t, node) : NULL;
  return r != NULL && r->actor == a ? r : NULL;
}

/* The loop fired: queue the message (one at a time for periodic timers). */
static void fire(ax_timer_t *t) {
  ax__timer_rec_t *r = AX_CONTAINER_OF(t, ax__timer_rec_t, t);
  if (r->queued) {
    /* The previous tick is not handled yet: no backlog.  A periodic timer
     * stops until it is (timer_handle starts it again, in phase), so that
     * a core whose actors are behind pays nothing more for their timers:
     * 200,000 actors ticking every 10 ms kept a core in timer passes, the
     * heap taken at every period of every timer while almost no tick was
     * handled, and its other actors waited seconds (a newcomer). */
    if (r->periodic)
      ax_timer_stop(t); /* its deadline (the next one) and period stay: unpark */
    return;
  }
  ax__msg_t *m = ax__msg_new(r->actor->ref, AX__SYS_TIMER, r->type, r->payload, r->size,
                             r->actor->ref);
  if (m == NULL) {
    /* Out of memory: a periodic timer's tick is lost and the next one
     * tries again; a one-shot has no next, so it tries again in a
     * millisecond.  (Not from the core's reserve, which is for the news
     * that has no second chance: a source's end.) */
    if (!r->periodic)
      (void)ax_timer_start(&r->t, AX_NSEC_PER_MSEC, 0);
    return;
  }
  r->queued = true;
  m->aux = r->id;
  ax__deliver(r->actor, m);
}

/* Frees a timer record of core c.  Counted for the core's malloc_trim
 * once idle (ax__core_malloc_freed): 10^6 timers armed and cancelled kept
 * 133 MiB in malloc's arenas for good, since nothing else of the core
 * asked for a trim (a newcomer). */
static void rec_free(ax__core_t *c, ax__timer_rec_t *r) {
  ax__core_malloc_freed(c, sizeof *r + r->size);
  free(r);
}

/* Makes a timer of self with the given id (0: a new one), starts it and
 * lists it.  Returns 0 or -ENOMEM (or the loop's error). */
static int arm(ax_actor_t *self, uint64_t id, int64_t ns, bool periodic, uint32_t type,
               const void *data, size_t size, uint64_t *id_out) {
  ax__actor_ext_t *ext = ax__actor_ext(self);
  ax__timer_rec_t *r = ax__malloc(sizeof *r + size);
  if (ext == NULL || r == NULL) {
    free(r);
    return -ENOMEM;
  }
  ax__core_t *c = self->core;
  ax_timer_init(c->loop, &r->t, fire);
  r->actor = self;
  r->id = id != 0 ? id : ax__core_next_id(c);
  r->type = type;
  r->size = (uint32_t)size;
  r->periodic = periodic;
  r->queued = false;
  r->stale = 0;
  if (size != 0)
    memcpy(r->payload, data, size);
  r->node.key = r->id;
  if (ax__idmap_add(index_of(c), &r->node) < 0) {
    free(r);
    return -ENOMEM;
  }
  ax_loop_update_time(c->loop);
  int rc = ax_timer_start(&r->t, ns, periodic ? ns : 0);
  if (rc < 0) {
    ax__idmap_remove(index_of(c), &r->node);
    free(r);
    return rc;
  }
  ax__list_push((ax__link_t **)&ext->slot[AX__SLOT_TIMERS], &r->link);
  if (id_out != NULL)
    *id_out = r->id;
  return 0;
}

static int start(ax_actor_t *self, int64_t ns, bool periodic, uint32_t type, const void *data,
                 size_t size, uint64_t *id) {
  if (self == NULL || ns < 0 || (periodic && ns == 0) || type == 0 ||
      size > AX__TIMER_PAYLOAD_MAX || (size != 0 && data == NULL))
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  return arm(self, 0, ns, periodic, type, data, size, id);
}

/* A fiber keeps the messages handed to it until it receives them: the
 * ticks of timer id it has not received yet are dropped (returns how
 * many), so that a cancel or a rearm covers them too.  Nothing for other
 * actors. */
static unsigned drop_saved(ax_actor_t *self, uint64_t id) {
  unsigned n = 0;
  for (ax__msg_t *m; (m = ax__fiber_take_sys(self, AX__SYS_TIMER, id)) != NULL; n++)
    ax__msg_unkeep(self, m);
  return n;
}

int ax_after(ax_actor_t *self, int64_t ns, uint32_t type, const void *data, size_t size,
             uint64_t *id) {
  return start(self, ns, false, type, data, size, id);
}

int ax_every(ax_actor_t *self, int64_t period_ns, uint32_t type, const void *data, size_t size,
             uint64_t *id) {
  return start(self, period_ns, true, type, data, size, id);
}

int ax_timer_cancel(ax_actor_t *self, uint64_t id) {
  if (self == NULL)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax__timer_rec_t *r = find_rec(self, id);
  /* A fiber may hold a one-shot's message that it has not received: the
   * timer is gone from the list, but cancelling it still means no message. */
  unsigned dropped = drop_saved(self, id);
  if (r == NULL)
    return dropped != 0 ? 0 : -ENOENT;
  ax_timer_stop(&r->t);
  unlink_rec(self, r);
  rec_free(self->core, r); /* a queued message finds no record and is dropped */
  return 0;
}

int ax_timer_rearm(ax_actor_t *self, uint64_t id, int64_t ns) {
  if (self == NULL || ns < 0)
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax__timer_rec_t *r = find_rec(self, id);
  if (r == NULL) {
    /* A fiber's one-shot whose message it holds but has not received: it
     * starts over from that message (same id, type and payload). */
    const ax__msg_t *held = ax__fiber_find_sys(self, AX__SYS_TIMER, id);
    if (held == NULL)
      return -ENOENT;
    int rc = arm(self, id, ns, false, held->m.type, held->m.data, held->m.size, NULL);
    if (rc == 0) /* out of memory, the tick stays: the timer is not lost */
      ax__msg_unkeep(self, ax__fiber_take_sys(self, AX__SYS_TIMER, id));
    return rc;
  }
  if (r->periodic && ns == 0)
    return -EINVAL;
  (void)drop_saved(self, id); /* a fiber's ticks from before the rearm */
  /* A message it queued before is stale now: the mailbox is in order, so
   * the next `stale` messages of this timer are dropped when they come up,
   * and a new tick may be queued behind them meanwhile. */
  if (r->queued) {
    r->stale++;
    r->queued = false;
  }
  ax_loop_update_time(self->core->loop);
  return ax_timer_restart(&r->t, ns, r->periodic ? ns : 0);
}

/* The tick of a periodic timer that fire() stopped was handled: it starts
 * again at its next deadline, in phase, the periods missed meanwhile
 * skipped (as the loop skips them for a core that fell behind).  A
 * stopped timer keeps its deadline and period (loop.h). */
static void unpark(ax_actor_t *a, ax__timer_rec_t *r) {
  ax_loop_update_time(a->core->loop);
  int64_t now = ax_loop_now(a->core->loop), due = r->t.deadline, period = r->t.repeat;
  if (due <= now) {
    int64_t skip = (now - due) / period + 1;
    due = skip > (INT64_MAX - due) / period ? INT64_MAX : due + skip * period;
  }
  (void)ax_timer_start_at(&r->t, due, period); /* valid arguments: cannot fail */
}

/* A timer message reached the front of the mailbox: delivered only if its
 * timer still exists and it is not from before a rearm; a one-shot timer
 * ends here. */
static int timer_handle(ax_actor_t *a, ax__msg_t *m) {
  ax__timer_rec_t *r = find_rec(a, m->aux);
  if (r == NULL)
    return 0; /* cancelled meanwhile */
  if (r->stale > 0) {
    r->stale--; /* queued before a rearm */
    return 0;
  }
  r->queued = false;
  if (!r->periodic) {
    unlink_rec(a, r);
    rec_free(a->core, r);
  } else if (!ax_timer_active(&r->t)) { /* stopped by fire() while this waited */
    unpark(a, r);
  }
  return ax__invoke(a, m);
}

/* The actor died: stop and free its timers (queued messages die with its
 * mailbox). */
static void timers_on_death(ax_actor_t *a, int reason) {
  (void)reason;
  ax__link_t *l = ax__slot_get(a, AX__SLOT_TIMERS);
  while (l != NULL) {
    ax__timer_rec_t *r = AX_CONTAINER_OF(l, ax__timer_rec_t, link);
    l = l->next;
    ax_timer_stop(&r->t);
    ax__idmap_remove(index_of(a->core), &r->node);
    rec_free(a->core, r);
  }
  if (a->ext != NULL)
    a->ext->slot[AX__SLOT_TIMERS] = NULL;
}

static int timers_core_init(ax__core_t *c) {
  c->slot[AX__CORE_SLOT_TIMERS] = ax__calloc(1, sizeof(ax__idmap_t));
  return c->slot[AX__CORE_SLOT_TIMERS] != NULL ? 0 : -ENOMEM;
}

static void timers_core_free(ax__core_t *c) {
  ax__idmap_t *m = c->slot[AX__CORE_SLOT_TIMERS];
  if (m != NULL)
    ax__idmap_destroy(m); /* every actor, with its timers, is gone */
  free(m);
  c->slot[AX__CORE_SLOT_TIMERS] = NULL;
}

static const ax__kind_t timer_kind = {.handle = timer_handle};

static ax__feature_t timers = {
    .name = "timers",
    .order = AX__ORDER_TIMERS,
    .core_init = timers_core_init,
    .core_free = timers_core_free,
    .actor_death = timers_on_death,
};

AX__FEATURE_INIT(timers) {
  ax__kind_register(AX__SYS_TIMER, &timer_kind);
  ax__feature_register(&timers);
}
