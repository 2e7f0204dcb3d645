/* Signals as messages: the runtime's signal hook fans each claimed signal out to the actors subscribed to it. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "actors/io/src.h"
#include "axon/source.h"

/*
 * The runtime claims a fixed set of signals and reads them on core 0
 * (runtime/signals.c); this feature is its signal hook.  Each signal is
 * sent as AX_MSG_SIGNAL to every actor subscribed to it; a signal nobody
 * received takes the runtime's default (SIGINT, SIGTERM, ... stop it).
 *
 * A subscription is a source of its actor (ax__sigsub_t: one per actor
 * with any signal watched, holding a mask of its signals), so the actor's
 * death closes it like any other source and takes it out of the table
 * before the actor's reference stops resolving: a new actor never sees
 * an old one's signals.  The table (AX__RT_SLOT_SIGNALS) is a list under a
 * mutex: watch, unwatch and death (on any core) change it, core 0 walks it
 * per signal.  Nothing here is on a hot path.
 */
typedef struct ax__sigsub ax__sigsub_t;

struct ax__sigsub {
  ax__src_t src; /* first: ties the subscription to its actor's life */
  struct ax__sigwatch *w;
  ax_ref_t ref;
  uint64_t mask;                 /* bit signo - 1; under w->lock */
  ax__link_t link;               /* w->subs; under w->lock */
};
_Static_assert(offsetof(struct ax__sigsub, src) == 0, "a handle is its source (ax__src_close_handle)");

struct ax__sigwatch {
  pthread_mutex_t lock;
  ax__link_t *subs; /* the subscriptions (ax__sigsub_t.link); under lock */
};

static uint64_t bit(int signo) { return (uint64_t)1 << (signo - 1); }

/* True for a signal the runtime claims. */
static bool watchable(int signo) {
  if (signo <= 0 || signo > 64)
    return false;
  sigset_t set;
  ax__signals_claimed(&set);
  return sigismember(&set, signo) == 1;
}

/* The runtime's signal hook (core 0): sends one signal to each of its
 * subscribers.  Returns true when someone had subscribed to it. */
static bool fan_out(ax_rt_t *rt, const struct signalfd_siginfo *si) {
  struct ax__sigwatch *w = rt->slot[AX__RT_SLOT_SIGNALS];
  int signo = (int)si->ssi_signo;
  if (w == NULL || signo <= 0 || signo > 64)
    return false;
  bool received = false;
  pthread_mutex_lock(&w->lock);
  for (ax__link_t *l = w->subs; l != NULL; l = l->next) {
    ax__sigsub_t *s = AX_CONTAINER_OF(l, ax__sigsub_t, link);
    if (!(s->mask & bit(signo)))
      continue;
    /* News of axon's own, as a timer's tick: a bounded mailbox does not
     * refuse it (mailbox_max counts what actors send).  -ESRCH only in the
     * instant between a death and its source closing (the table entry goes
     * then); any other failure (-ENOMEM) still means a subscriber exists,
     * so the default does not apply. */
    ax__msg_t *m = ax__msg_new_vital(s->ref, AX__SYS_NEWS, AX_MSG_SIGNAL, si, sizeof *si,
                                     AX_REF_NONE);
    if (m == NULL || ax__send_msg(s->ref, m) != -ESRCH)
      received = true;
  }
  pthread_mutex_unlock(&w->lock);
  return received;
}

static int sigwatch_init(ax_rt_t *rt) {
  if (rt->opts.flags & AX_RT_NO_SIGNALS)
    return 0; /* nothing to subscribe to: ax_signal_watch says -ENOTSUP */
  struct ax__sigwatch *w = ax__calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  pthread_mutex_init(&w->lock, NULL);
  rt->slot[AX__RT_SLOT_SIGNALS] = w;
  return 0;
}

/* ax_rt_free: every actor died first, and its subscription with it. */
static void sigwatch_free(ax_rt_t *rt) {
  struct ax__sigwatch *w = rt->slot[AX__RT_SLOT_SIGNALS];
  if (w == NULL)
    return;
  while (w->subs != NULL) { /* whatever is left belongs to no live actor */
    ax__sigsub_t *s = AX_CONTAINER_OF(w->subs, ax__sigsub_t, link);
    ax__list_remove(&w->subs, &s->link);
    s->w = NULL;
  }
  pthread_mutex_destroy(&w->lock);
  free(w);
  rt->slot[AX__RT_SLOT_SIGNALS] = NULL;
}

/* ------------------------------------------------------------------------ */
/* Subscriptions.                                                            */

static void sub_unlink(ax__sigsub_t *s) {
  struct ax__sigwatch *w = s->w;
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->lock);
  ax__list_remove(&w->subs, &s->link);
  s->mask = 0;
  pthread_mutex_unlock(&w->lock);
  s->w = NULL;
}

static void op_close(ax__src_t *src) { sub_unlink((ax__sigsub_t *)src); }

static void op_free(ax__src_t *src) { free(src); }

static const ax__src_ops_t sigsub_ops = {
    .close = op_close,
    .free = op_free,
};

/* The actor's subscription record, or NULL. */
static ax__sigsub_t *find_sub(ax_actor_t *self) {
  for (ax__src_t *s = ax__src_first(self); s != NULL; s = ax__src_next(s))
    if (s->ops == &sigsub_ops)
      return (ax__sigsub_t *)s;
  return NULL;
}

/* Subscribes self to signo (see source.h).  Subscribing twice is one
 * subscription.  Owner's core.  Returns 0, or -EINVAL (NULL self, a signal
 * the runtime does not claim), -ENOTSUP (AX_RT_NO_SIGNALS), -ENOMEM. */
int ax_signal_watch(ax_actor_t *self, int signo) {
  if (self == NULL || !watchable(signo))
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  struct ax__sigwatch *w = self->core->rt->slot[AX__RT_SLOT_SIGNALS];
  if (w == NULL)
    return -ENOTSUP;
  ax__sigsub_t *s = find_sub(self);
  if (s == NULL) {
    s = ax__src_new(sizeof *s, &sigsub_ops, self, 0);
    if (s == NULL)
      return -ENOMEM;
    s->w = w;
    s->ref = self->ref;
    pthread_mutex_lock(&w->lock);
    ax__list_push(&w->subs, &s->link);
    pthread_mutex_unlock(&w->lock);
  }
  pthread_mutex_lock(&w->lock);
  s->mask |= bit(signo);
  pthread_mutex_unlock(&w->lock);
  return 0;
}

/* Ends self's subscription to signo.  A signal fanned out before this call
 * may still be in the mailbox.  Owner's core.  Returns 0, or -EINVAL (NULL
 * self, a signal outside the set), -ENOENT (not subscribed). */
int ax_signal_unwatch(ax_actor_t *self, int signo) {
  if (self == NULL || !watchable(signo))
    return -EINVAL;
  AX__ASSERT_OWNER(self);
  ax__sigsub_t *s = find_sub(self);
  if (s == NULL || s->w == NULL)
    return -ENOENT;
  pthread_mutex_lock(&s->w->lock);
  bool had = (s->mask & bit(signo)) != 0;
  s->mask &= ~bit(signo);
  bool empty = s->mask == 0;
  pthread_mutex_unlock(&s->w->lock);
  if (!had)
    return -ENOENT;
  if (empty)
    ax__src_close(&s->src); /* the last signal: the record goes */
  return 0;
}

static ax__feature_t sigwatch = {
    .name = "signals",
    .order = AX__ORDER_SOURCES,
    .rt_init = sigwatch_init,
    .rt_free = sigwatch_free,
    .signal = fan_out,
};

AX__FEATURE_INIT(sigwatch) { ax__feature_register(&sigwatch); }
