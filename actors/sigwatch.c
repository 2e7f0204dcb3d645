/* Signals as messages: core 0 reads one signalfd and fans each signal out to its subscribers. */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "actors/src.h"
#include "axon/source.h"

/* Signals taken from one read of the signalfd; the rest wait for the next
 * pass (the fd is level-triggered), so a storm cannot starve other fds. */
#define AX__SIG_BATCH 16

/*
 * A runtime (unless AX_RT_NO_SIGNALS) claims a fixed set of signals
 * (ax__sig_set): every core thread and the thread that started it block
 * them, and core 0 reads them from one signalfd.  Each signal read is sent
 * as AX_MSG_SIGNAL to every actor subscribed to it; a signal nobody
 * received takes the runtime's default: SIGHUP, SIGINT, SIGQUIT, SIGUSR1,
 * SIGUSR2, SIGALRM and SIGTERM stop the runtime gracefully (their own
 * default would end the process), the others are ignored.
 *
 * A subscription is a source of its actor (ax__sigsub_t: one per actor
 * with any signal watched, holding a mask of its signals), so the actor's
 * death closes it like any other source and takes it out of the table
 * before the actor's reference stops resolving: a new actor never sees
 * an old one's signals.  The table is a list under a mutex: watch,
 * unwatch and death (on any core) change it, core 0 walks it per signal.
 * Nothing here is on a hot path.
 */
typedef struct ax__sigsub ax__sigsub_t;

struct ax__sigsub {
  ax__src_t src; /* first: ties the subscription to its actor's life */
  struct ax__sigwatch *w;
  ax_ref_t ref;
  uint64_t mask;                 /* bit signo - 1; under w->lock */
  ax__sigsub_t *next, *prev;     /* w->subs; under w->lock */
};

struct ax__sigwatch {
  pthread_mutex_t lock;
  ax__sigsub_t *subs; /* under lock */
  ax_rt_t *rt;
  int fd;    /* the signalfd, -1 with AX_RT_NO_SIGNALS; set before any thread starts */
  ax_io_t io; /* on core 0's loop; core 0 only */
};

/* True for the signals whose default (with no subscriber) stops the runtime. */
static bool stops_runtime(int signo) {
  switch (signo) {
  case SIGHUP:
  case SIGINT:
  case SIGQUIT:
  case SIGUSR1:
  case SIGUSR2:
  case SIGALRM:
  case SIGTERM:
    return true;
  default:
    return false;
  }
}

/* The signals the runtime claims: those that stop it by default, two that
 * are ignored by default, and the realtime ones (within signalfd's 64). */
static bool watchable(int signo) {
  return stops_runtime(signo) || signo == SIGCHLD || signo == SIGWINCH ||
         (signo >= SIGRTMIN && signo <= SIGRTMAX && signo <= 64);
}

static uint64_t bit(int signo) { return (uint64_t)1 << (signo - 1); }

/* Fills set with the signals a runtime claims.  Any thread. */
void ax__sig_set(sigset_t *set) {
  sigemptyset(set);
  for (int signo = 1; signo <= SIGRTMAX && signo <= 64; signo++)
    if (watchable(signo))
      sigaddset(set, signo);
}

/* ------------------------------------------------------------------------ */
/* Core 0: reading and fanning out.                                          */

/* Sends one signal to each of its subscribers; with none, applies the
 * default.  Core 0. */
static void fan_out(struct ax__sigwatch *w, const struct signalfd_siginfo *si) {
  int signo = (int)si->ssi_signo;
  if (signo <= 0 || signo > 64)
    return;
  bool received = false;
  pthread_mutex_lock(&w->lock);
  for (ax__sigsub_t *s = w->subs; s != NULL; s = s->next) {
    if (!(s->mask & bit(signo)))
      continue;
    /* ax_send from a loop callback: from is AX_REF_NONE.  -ESRCH only in
     * the instant between a death and its source closing (the table entry
     * goes then); any other failure (-ENOMEM) still means a subscriber
     * exists, so the default does not apply. */
    if (ax_send(s->ref, AX_MSG_SIGNAL, si, sizeof *si) != -ESRCH)
      received = true;
  }
  pthread_mutex_unlock(&w->lock);
  if (!received && stops_runtime(signo))
    ax_rt_stop(w->rt);
}

static void sigfd_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  struct ax__sigwatch *w = io->data;
  struct signalfd_siginfo info[AX__SIG_BATCH];
  ssize_t n;
  do
    n = read(w->fd, info, sizeof info);
  while (n < 0 && errno == EINTR);
  if (n <= 0)
    return; /* EAGAIN: another reader (a second runtime) took it */
  for (size_t i = 0; i < (size_t)n / sizeof info[0]; i++)
    fan_out(w, &info[i]);
}

/* Makes rt's subscriber table and, unless AX_RT_NO_SIGNALS, the signalfd
 * for the claimed set (read by core 0 once it runs).  ax_rt_new, before
 * any thread starts.  Returns 0, or -ENOMEM, -EMFILE/-ENFILE (signalfd). */
int ax__sig_init(ax_rt_t *rt) {
  struct ax__sigwatch *w = ax__calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  pthread_mutex_init(&w->lock, NULL);
  w->rt = rt;
  w->fd = -1;
  if (!(rt->opts.flags & AX_RT_NO_SIGNALS)) {
    sigset_t set;
    ax__sig_set(&set);
    w->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (w->fd < 0) {
      int rc = -errno;
      pthread_mutex_destroy(&w->lock);
      free(w);
      return rc;
    }
  }
  rt->sigs = w;
  return 0;
}

/* Frees what ax__sig_init made.  ax_rt_free (every thread joined, every
 * actor dead) or a failed ax_rt_new; NULL-safe (rt->sigs NULL). */
void ax__sig_destroy(ax_rt_t *rt) {
  struct ax__sigwatch *w = rt->sigs;
  if (w == NULL)
    return;
  /* Every actor died first, and its subscription with it; whatever is
   * left belongs to no live actor. */
  while (w->subs != NULL) {
    ax__sigsub_t *s = w->subs;
    w->subs = s->next;
    s->next = s->prev = NULL;
    s->w = NULL;
  }
  if (w->fd >= 0)
    close(w->fd);
  pthread_mutex_destroy(&w->lock);
  free(w);
  rt->sigs = NULL;
}

/* Starts reading the signalfd on core c's loop.  Core 0's thread, before
 * its first pass; nothing to do with AX_RT_NO_SIGNALS. */
void ax__sig_start(ax__core_t *c) {
  struct ax__sigwatch *w = c->rt->sigs;
  if (w == NULL || w->fd < 0)
    return;
  ax_io_init(c->loop, &w->io, w->fd, sigfd_cb);
  w->io.data = w;
  /* Can fail only for lack of memory; the signals then stay pending
   * (blocked) and are never read, which is the safe way to fail. */
  (void)ax_io_start(&w->io, AX_READ);
}

/* Stops reading (signals stay pending until ax_rt_join restores the
 * starting thread's mask).  Core 0's thread, at shutdown. */
void ax__sig_stop(ax__core_t *c) {
  struct ax__sigwatch *w = c->rt->sigs;
  if (w != NULL && w->fd >= 0)
    ax_io_stop(&w->io);
}

/* ------------------------------------------------------------------------ */
/* Subscriptions.                                                            */

static void sub_unlink(ax__sigsub_t *s) {
  struct ax__sigwatch *w = s->w;
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->lock);
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    w->subs = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  s->next = s->prev = NULL;
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
  if (self->ext == NULL)
    return NULL;
  for (ax__src_t *s = self->ext->srcs; s != NULL; s = s->onext)
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
  struct ax__sigwatch *w = self->core->rt->sigs;
  if (w == NULL || w->fd < 0)
    return -ENOTSUP;
  ax__sigsub_t *s = find_sub(self);
  if (s == NULL) {
    s = ax__calloc(1, sizeof *s);
    if (s == NULL)
      return -ENOMEM;
    if (ax__src_init(&s->src, &sigsub_ops, self, 0) < 0) {
      free(s);
      return -ENOMEM;
    }
    s->w = w;
    s->ref = self->ref;
    pthread_mutex_lock(&w->lock);
    s->next = w->subs;
    if (s->next != NULL)
      s->next->prev = s;
    w->subs = s;
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
