/* Supervisors: children started in order, restarted by strategy and intensity, stopped in reverse order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "axon/supervisor.h"
#include "actors/idmap.h"
#include "actors/monitor.h"
#include "io/alloc.h"

/*
 * A supervisor is an ordinary actor whose behaviour is sup_behaviour.  Its
 * children are an array in start order (dynamic ones appended).  All that
 * waits is driven by messages: a child's end is its monitor's AX_MSG_DOWN;
 * a graceful stop is AX_MSG_SHUTDOWN to the child and a timer of the
 * child's shutdown time; a delayed restart is a timer.
 *
 * Stopping children is a sequence: the children marked `to_stop` are
 * stopped one at a time, last in the array first, each one waited for;
 * when none is left, the sequence's continuation runs: start again those
 * marked `again` (a strategy's restart), stop the supervisor normally (its
 * own shutdown), or fail it (intensity reached, a child that could not
 * start at boot, a linked actor's failure).
 */
enum {
  T_TIMEOUT = 240, /* a child's shutdown time is over: payload its ref */
  T_RESTART,       /* start what waits to be started again */
  T_START_CHILD,   /* ax_sup_start_child: payload the arg */
};

enum { C_IDLE, C_RUNNING, C_STOPPING };

_Static_assert(AX_REASON_INTENSITY == -1000, "io/error.c names the reason by its value");
enum { AFTER_RESTART, AFTER_STOP, AFTER_FAIL };

/* A running child in the supervisor's index by reference: its place in
 * the array (which moves when the array grows or is compacted). */
typedef struct ref_node {
  ax__idnode_t node; /* key: the child's ref */
  size_t index;
} ref_node_t;

typedef struct child {
  ax_child_spec_t spec;
  ax_ref_t ref;
  ref_node_t *by_ref; /* while it has a ref (not idle) */
  uint64_t mon;   /* the supervisor's monitor of it */
  uint64_t timer; /* its shutdown timer, 0: none */
  int state;
  bool again;     /* to be started again */
  bool to_stop;   /* part of the stop sequence */
  bool gone;      /* removed (temporary or dynamic child that ended): a hole */
} child_t;

typedef struct sup {
  ax_sup_opts_t o;
  ax_child_spec_t tmpl; /* AX_SIMPLE_ONE_FOR_ONE's spec */
  child_t *kids;
  size_t n, cap, holes;
  ax__idmap_t by_ref; /* the children that are not idle, by ref (find) */
  /* The children marked `again`, and an index below which none is: a
   * restart looks only there, so a storm of restarts among many children
   * costs each restart O(1), not a walk of the whole array. */
  size_t nmarked, mark_lo;
  size_t seq_at;      /* a stop sequence looks for its next child below this index */
  int64_t *times; /* the last max_restarts + 1 restarts, a ring */
  unsigned ntimes, head;
  unsigned level;         /* back-off doublings so far */
  int64_t last_restart;
  bool restart_timer;     /* a T_RESTART is on its way */
  bool in_seq;            /* a stop sequence runs */
  int after, fail_reason; /* its continuation */
  bool ending;            /* stopping itself: nothing starts any more */
  int end_now;            /* boot failed and could not stop it: the next message does */
  ax_init_t user_init;
  ax_terminate_t user_terminate;
} sup_t;

/* ------------------------------------------------------------------------ */
/* Children                                                                  */

static child_t *find(sup_t *s, ax_ref_t ref) {
  for (ax__idnode_t *n = ax__idmap_next(&s->by_ref, ref, NULL); n != NULL;
       n = ax__idmap_next(&s->by_ref, ref, n)) {
    child_t *c = &s->kids[AX_CONTAINER_OF(n, ref_node_t, node)->index];
    if (!c->gone && c->state != C_IDLE && c->ref == ref)
      return c;
  }
  return NULL;
}

/* Puts c, started as ref, in the index.  Returns 0 or -ENOMEM. */
static int index_child(sup_t *s, child_t *c, ax_ref_t ref) {
  ref_node_t *r = ax__malloc(sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  r->node.key = ref;
  r->index = (size_t)(c - s->kids);
  if (ax__idmap_add(&s->by_ref, &r->node) < 0) {
    free(r);
    return -ENOMEM;
  }
  c->by_ref = r;
  return 0;
}

/* Takes c (going idle) out of the index. */
static void unindex_child(sup_t *s, child_t *c) {
  if (c->by_ref == NULL)
    return;
  ax__idmap_remove(&s->by_ref, &c->by_ref->node);
  free(c->by_ref);
  c->by_ref = NULL;
}

/* Marks c to be started again (or not), keeping the count and the hint. */
static void set_again(sup_t *s, child_t *c, bool again) {
  if (c->again == again)
    return;
  c->again = again;
  if (again) {
    s->nmarked++;
    size_t i = (size_t)(c - s->kids);
    if (i < s->mark_lo)
      s->mark_lo = i;
  } else {
    s->nmarked--;
  }
}

/* Once more than half the array is holes (children forgotten), moves the
 * rest down, in order, and gives back what the array no longer needs: a
 * simple_one_for_one supervisor whose 10^5 temporary children have ended
 * kept their 11 MB array.  Between messages only (or in add): nothing
 * holds a child_t pointer across it; by_ref, seq_at and mark_lo follow. */
static void compact(sup_t *s) {
  if (s->holes <= 16 || s->holes * 2 <= s->n)
    return;
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (s->kids[i].gone)
      continue;
    s->kids[k] = s->kids[i];
    if (s->kids[k].by_ref != NULL)
      s->kids[k].by_ref->index = k;
    k++;
  }
  s->n = k;
  s->holes = 0;
  s->seq_at = s->n; /* a sequence under way looks again from the end */
  s->mark_lo = 0;   /* the marked ones moved down */
  if (s->cap > 8 && s->n <= s->cap / 4) {
    size_t cap = s->n * 2 > 8 ? s->n * 2 : 8;
    child_t *kids = ax__realloc(s->kids, cap * sizeof *kids);
    if (kids != NULL) { /* else the array stays as large: never wrong */
      s->kids = kids;
      s->cap = cap;
    }
  }
}

static child_t *add(sup_t *s, const ax_child_spec_t *spec) {
  compact(s);
  if (s->n == s->cap) {
    size_t cap = s->cap != 0 ? s->cap * 2 : 8;
    child_t *k = ax__realloc(s->kids, cap * sizeof *k);
    if (k == NULL)
      return NULL;
    s->kids = k;
    s->cap = cap;
  }
  child_t *c = &s->kids[s->n++];
  memset(c, 0, sizeof *c);
  c->spec = *spec;
  return c;
}

static void forget(sup_t *s, child_t *c) {
  unindex_child(s, c);
  set_again(s, c, false);
  c->gone = true;
  c->state = C_IDLE;
  s->holes++;
}

/* Starts c.  Returns 0 or the start's error (c stays idle). */
static int start_one(ax_actor_t *self, child_t *c) {
  ax_ref_t ref = AX_REF_NONE;
  int rc = c->spec.start(self, c->spec.arg, &ref);
  if (rc == 0 && ref == AX_REF_NONE)
    rc = -EINVAL; /* a start that started nothing */
  if (rc < 0)
    return rc;
  /* The spawn's own monitor if the start gave it one, else ours now. */
  if (!ax__monitor_find(self, ref, &c->mon)) {
    rc = ax_monitor(self, ref, &c->mon);
    if (rc < 0) {
      (void)ax_stop(ref, 0);
      return rc;
    }
  }
  rc = index_child(ax_state(self), c, ref);
  if (rc < 0) {
    (void)ax_demonitor(self, c->mon);
    (void)ax_stop(ref, 0);
    return rc;
  }
  c->ref = ref;
  c->state = C_RUNNING;
  set_again(ax_state(self), c, false);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Intensity and back-off                                                    */

/* Records a restart now; true when that makes more than max_restarts
 * within period_ns. */
static bool too_many(sup_t *s, int64_t now) {
  unsigned cap = s->o.max_restarts + 1;
  s->times[s->head] = now;
  s->head = (s->head + 1) % cap;
  if (s->ntimes < cap)
    s->ntimes++;
  if (s->ntimes < cap)
    return false;
  /* The oldest of the last cap restarts is at head now. */
  return now - s->times[s->head] < s->o.period_ns;
}

static int64_t backoff(sup_t *s, int64_t now) {
  if (s->o.backoff_ns == 0)
    return 0;
  if (now - s->last_restart >= s->o.period_ns)
    s->level = 0;
  int64_t d = s->o.backoff_ns;
  for (unsigned i = 0; i < s->level && d < s->o.backoff_max_ns; i++)
    d = d > INT64_MAX / 2 ? INT64_MAX : d * 2; /* saturates: a huge back-off must not wrap */
  if (d > s->o.backoff_max_ns)
    d = s->o.backoff_max_ns;
  s->level++;
  s->last_restart = now;
  return d;
}

/* ------------------------------------------------------------------------ */
/* The stop sequence                                                         */

static int seq_next(ax_actor_t *self, sup_t *s);
static int end_all(ax_actor_t *self, sup_t *s, int reason);

/* Starts again, in order, every child marked so (after a back-off when
 * one is set).  Returns what the behaviour returns. */
static int restart_marked(ax_actor_t *self, sup_t *s, bool waited) {
  if (s->ending || s->in_seq || s->restart_timer)
    return 0;
  if (!waited) {
    int64_t d = backoff(s, ax_now());
    if (d > 0) {
      if (ax_after(self, d, T_RESTART, NULL, 0, NULL) == 0) {
        s->restart_timer = true;
        return 0;
      } /* no timer: at once */
    }
  }
  size_t lo = s->n; /* the first child left marked */
  for (size_t i = s->mark_lo; i < s->n && s->nmarked > 0; i++) {
    child_t *c = &s->kids[i];
    if (c->gone || !c->again)
      continue;
    if (c->state != C_IDLE) { /* still stopping: started after the sequence */
      if (lo == s->n)
        lo = i;
      continue;
    }
    int rc = start_one(self, c);
    if (rc == 0)
      continue;
    s->mark_lo = lo < i ? lo : i;
    /* A failed start is a failure of the child: counted, and tried again
     * by a message of its own (or given up on with the others).  Giving up
     * goes through end_all, which marks the supervisor as ending: a
     * shutdown asked for meanwhile must not turn the failure into a normal
     * stop, nor may a dynamic child start while the others are stopped. */
    if (too_many(s, ax_now()))
      return end_all(self, s, AX_REASON_INTENSITY);
    int64_t d = backoff(s, ax_now());
    rc = ax_after(self, d > 0 ? d : 1, T_RESTART, NULL, 0, NULL);
    if (rc < 0) /* no timer, nothing would ever try again: give up, as on intensity */
      return end_all(self, s, rc);
    s->restart_timer = true;
    return 0;
  }
  s->mark_lo = lo;
  return 0;
}

/* Stops the next marked child (the last one in the array), or runs the
 * continuation when none is left. */
static int seq_next(ax_actor_t *self, sup_t *s) {
  s->in_seq = true;
  /* The children above seq_at are done: the sequence goes down the array
   * once, not once per child. */
  for (size_t i = s->seq_at < s->n ? s->seq_at : s->n; i-- > 0;) {
    s->seq_at = i + 1;
    child_t *c = &s->kids[i];
    if (c->gone || !c->to_stop)
      continue;
    if (c->state == C_STOPPING)
      return 0; /* waiting for it */
    if (c->state != C_RUNNING) {
      c->to_stop = false;
      continue;
    }
    c->state = C_STOPPING;
    int64_t t = c->spec.shutdown_ns != 0 ? c->spec.shutdown_ns : AX_SHUTDOWN_DEFAULT;
    /* As news: a child whose bounded mailbox is full still gets it (it
     * used to be stopped by force then, a reviewer). */
    if (t == AX_SHUTDOWN_BRUTAL ||
        ax__send_news(c->ref, AX_MSG_SHUTDOWN, NULL, 0) < 0) {
      (void)ax_stop(c->ref, 0); /* gone already (or no memory): its DOWN is on the way */
    } else if (t != AX_FOREVER &&
               ax_after(self, t, T_TIMEOUT, &c->ref, sizeof c->ref, &c->timer) < 0) {
      (void)ax_stop(c->ref, -ETIMEDOUT); /* no timer: no waiting */
    }
    return 0;
  }
  s->in_seq = false;
  switch (s->after) {
  case AFTER_STOP:
    return AX_STOP;
  case AFTER_FAIL:
    return s->fail_reason;
  default:
    return restart_marked(self, s, false);
  }
}

/* Marks every running child from index `from` on to be stopped (and, if
 * again, started afterwards unless temporary) and starts the sequence. */
static int stop_from(ax_actor_t *self, sup_t *s, size_t from, int after, bool again) {
  s->after = after;
  s->seq_at = s->n;
  for (size_t i = from; i < s->n; i++) {
    child_t *c = &s->kids[i];
    if (c->gone)
      continue;
    if (c->state != C_IDLE)
      c->to_stop = true;
    set_again(s, c, again && c->spec.restart != AX_TEMPORARY && (c->state != C_IDLE || c->again));
  }
  return seq_next(self, s);
}

/* Stops everything, then stops normally (reason 0) or fails. */
static int end_all(ax_actor_t *self, sup_t *s, int reason) {
  if (s->ending && s->in_seq)
    return 0; /* already on its way */
  s->ending = true;
  s->fail_reason = reason;
  return stop_from(self, s, 0, reason < 0 ? AFTER_FAIL : AFTER_STOP, false);
}

/* ------------------------------------------------------------------------ */
/* The behaviour                                                             */

/* A child ended: by the stop sequence, or on its own. */
static int child_down(ax_actor_t *self, sup_t *s, child_t *c, int reason) {
  if (c->timer != 0)
    (void)ax_timer_cancel(self, c->timer);
  c->timer = 0;
  bool planned = c->state == C_STOPPING || c->to_stop;
  c->state = C_IDLE;
  unindex_child(s, c);
  c->ref = AX_REF_NONE;
  c->to_stop = false;
  if (planned) {
    if (!c->again && (c->spec.restart == AX_TEMPORARY || s->o.strategy == AX_SIMPLE_ONE_FOR_ONE))
      forget(s, c);
    return s->in_seq ? seq_next(self, s) : 0;
  }
  bool again = c->spec.restart == AX_PERMANENT ||
               (c->spec.restart == AX_TRANSIENT && reason < 0);
  if (!again || s->ending) {
    /* A temporary or dynamic child is forgotten; a static one that needs
     * no restart (transient, ended normally) stays, idle. */
    if (c->spec.restart == AX_TEMPORARY || s->o.strategy == AX_SIMPLE_ONE_FOR_ONE)
      forget(s, c);
    return 0;
  }
  if (too_many(s, ax_now()))
    return end_all(self, s, AX_REASON_INTENSITY);
  set_again(s, c, true);
  size_t i = (size_t)(c - s->kids);
  switch (s->o.strategy) {
  case AX_ONE_FOR_ALL:
    return stop_from(self, s, 0, AFTER_RESTART, true);
  case AX_REST_FOR_ONE:
    return stop_from(self, s, i, AFTER_RESTART, true);
  default:
    return s->in_seq ? 0 : restart_marked(self, s, false); /* after the sequence otherwise */
  }
}

/* Starts the static children, in order, in the init hook: before any
 * message, so that a request that came early (a dynamic child, a stop)
 * finds them started.  Returns what the behaviour would return. */
static int boot(ax_actor_t *self, sup_t *s) {
  int rc = ax_trap_exits(self, true);
  size_t n = s->o.strategy == AX_SIMPLE_ONE_FOR_ONE ? 0 : s->n;
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = start_one(self, &s->kids[i]);
  if (rc < 0)
    return end_all(self, s, rc);
  return 0;
}

static int sup_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  sup_t *s = ax_state(self);
  if (s->end_now != 0)
    return s->end_now;
  switch (m->type) {
  case AX_MSG_DOWN: {
    if (m->size != sizeof(ax_down_t))
      return 0; /* not axon's: anyone may send any type (fuzz_api found one) */
    const ax_down_t *d = m->data;
    child_t *c = find(s, d->ref);
    int rc = c != NULL && c->mon == d->id ? child_down(self, s, c, d->reason) : 0;
    compact(s); /* the child may have been forgotten */
    return rc;
  }
  case AX_MSG_SHUTDOWN:
    return end_all(self, s, 0);
  case AX_MSG_LINK_DOWN: { /* trapped: a linked actor (a parent) failed */
    if (m->size != sizeof(ax_link_down_t))
      return 0;
    const ax_link_down_t *d = m->data;
    return d->reason < 0 && find(s, d->ref) == NULL ? end_all(self, s, d->reason) : 0;
  }
  case T_TIMEOUT: {
    ax_ref_t ref;
    if (m->size != sizeof ref)
      return 0;
    memcpy(&ref, m->data, sizeof ref);
    child_t *c = find(s, ref);
    if (c != NULL && c->state == C_STOPPING) {
      c->timer = 0;
      (void)ax_stop(ref, -ETIMEDOUT); /* it did not stop when asked */
    }
    return 0;
  }
  case T_RESTART:
    s->restart_timer = false;
    return restart_marked(self, s, true);
  case T_START_CHILD: {
    void *arg;
    if (m->size != sizeof arg)
      return 0;
    memcpy(&arg, m->data, sizeof arg);
    if (s->o.strategy != AX_SIMPLE_ONE_FOR_ONE || s->ending)
      return 0;
    ax_child_spec_t spec = s->tmpl;
    spec.arg = arg;
    child_t *c = add(s, &spec);
    if (c == NULL || start_one(self, c) < 0) {
      if (c != NULL)
        forget(s, c);
      if (too_many(s, ax_now()))
        return end_all(self, s, AX_REASON_INTENSITY);
    }
    return 0;
  }
  default:
    return 0;
  }
}

/* ------------------------------------------------------------------------ */
/* Start and end                                                             */

static void sup_init(ax_actor_t *self) {
  sup_t *s = ax_state(self);
  int rc = boot(self, s);
  /* A child failed to start and no other had to be waited for: the
   * supervisor ends now, or with its first message if even the stop
   * cannot be sent. */
  if (rc != 0 && ax_stop(self->ref, rc < 0 ? rc : 0) < 0)
    s->end_now = rc;
  if (s->user_init != NULL)
    s->user_init(self);
}

/* The supervisor ended (by the sequence, or stopped from outside): what
 * still runs is stopped at once. */
static void sup_terminate(ax_actor_t *self, int reason) {
  sup_t *s = ax_state(self);
  if (s->user_terminate != NULL)
    s->user_terminate(self, reason);
  for (size_t i = 0; i < s->n; i++) {
    if (!s->kids[i].gone && s->kids[i].state != C_IDLE)
      (void)ax_stop(s->kids[i].ref, 0);
    free(s->kids[i].by_ref);
  }
  ax__idmap_destroy(&s->by_ref);
  free(s->kids);
  free(s->times);
  free(s);
}

static bool spec_ok(const ax_child_spec_t *c) {
  return c->start != NULL && (unsigned)c->restart <= AX_TEMPORARY && c->shutdown_ns >= -2;
}

static int check(const ax_sup_opts_t *o) {
  if (o == NULL || o->children == NULL || o->nchildren == 0 ||
      o->nchildren > AX_SUP_CHILDREN_MAX || o->max_restarts > AX_SUP_RESTARTS_MAX ||
      (unsigned)o->strategy > AX_SIMPLE_ONE_FOR_ONE ||
      (o->strategy == AX_SIMPLE_ONE_FOR_ONE && o->nchildren != 1) || o->period_ns < 0 ||
      o->backoff_ns < 0 || o->backoff_max_ns < 0)
    return -EINVAL;
  for (size_t i = 0; i < o->nchildren; i++)
    if (!spec_ok(&o->children[i]))
      return -EINVAL;
  return 0;
}

int ax_sup_start(ax_rt_t *rt, const ax_sup_opts_t *opts, const ax_spawn_opts_t *spawn,
                 ax_ref_t *ref) {
  if (rt == NULL || check(opts) < 0)
    return -EINVAL;
  sup_t *s = ax__calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->o = *opts;
  if (s->o.max_restarts == 0 && s->o.period_ns == 0)
    s->o.max_restarts = 1;
  if (s->o.period_ns == 0) /* a period of nothing would never see too many restarts */
    s->o.period_ns = (int64_t)5 * 1000 * 1000 * 1000;
  if (s->o.backoff_ns != 0 && s->o.backoff_max_ns == 0)
    s->o.backoff_max_ns = s->o.backoff_ns > INT64_MAX / 64 ? INT64_MAX : s->o.backoff_ns * 64;
  s->o.children = NULL; /* copied below */
  s->times = ax__calloc((size_t)s->o.max_restarts + 1, sizeof *s->times);
  int rc = s->times != NULL ? 0 : -ENOMEM;
  if (opts->strategy == AX_SIMPLE_ONE_FOR_ONE)
    s->tmpl = opts->children[0];
  else
    for (size_t i = 0; rc == 0 && i < opts->nchildren; i++)
      rc = add(s, &opts->children[i]) != NULL ? 0 : -ENOMEM;
  ax_spawn_opts_t so = spawn != NULL ? *spawn : (ax_spawn_opts_t){0};
  s->user_init = so.init;
  s->user_terminate = so.terminate;
  so.init = sup_init;
  so.terminate = sup_terminate;
  if (rc == 0)
    rc = ax_spawn(rt, sup_behaviour, s, &so, ref);
  if (rc < 0) {
    free(s->kids);
    free(s->times);
    free(s);
  }
  return rc;
}

int ax_sup_start_child(ax_ref_t sup, void *arg) {
  return ax_send(sup, T_START_CHILD, &arg, sizeof arg);
}

int ax_sup_stop(ax_ref_t sup) {
  return ax__send_news(sup, AX_MSG_SHUTDOWN, NULL, 0); /* no bound refuses a stop */
}
