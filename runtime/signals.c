/* The signals a runtime claims: read on core 0 through the loop's signal watchers, offered to features, else the default. */
#include <errno.h>
#include <stdlib.h>

#include "runtime/core.h"

/*
 * A runtime (unless AX_RT_NO_SIGNALS) claims a fixed set of signals: every
 * core thread and the thread that started it block them (rt.c), and core
 * 0's loop reads them, one ax_signal_t watcher per signal (io/signal.c:
 * the loop's one signalfd).  Each signal read is offered to the features'
 * signal hooks (the actor layer sends it to subscribed actors); one that
 * no feature took gets the runtime's default: SIGHUP, SIGINT, SIGQUIT,
 * SIGUSR1, SIGUSR2, SIGALRM and SIGTERM stop the runtime gracefully (their
 * own default would end the process), the others are ignored.
 */

bool ax__signal_stops_runtime(int signo) {
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

/* Those that stop it by default, two that are ignored by default, and the
 * realtime ones (within signalfd's 64). */
static bool claimed(int signo) {
  return ax__signal_stops_runtime(signo) || signo == SIGCHLD || signo == SIGWINCH ||
         (signo >= SIGRTMIN && signo <= SIGRTMAX && signo <= 64);
}

void ax__signals_claimed(sigset_t *set) {
  sigemptyset(set);
  for (int signo = 1; signo <= SIGRTMAX && signo <= 64; signo++)
    if (claimed(signo))
      sigaddset(set, signo);
}

/* A claimed signal arrived on core 0. */
static void on_signal(ax_signal_t *w, const struct signalfd_siginfo *si) {
  ax_rt_t *rt = w->data;
  bool taken = false;
  for (ax__feature_t *f = ax__features; f != NULL; f = f->next)
    if (f->signal != NULL && f->signal(rt, si))
      taken = true;
  if (!taken && ax__signal_stops_runtime((int)si->ssi_signo))
    ax_rt_stop(rt);
}

int ax__signals_start(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  if (rt->opts.flags & AX_RT_NO_SIGNALS)
    return 0;
  sigset_t set;
  ax__signals_claimed(&set);
  unsigned n = 0;
  for (int signo = 1; signo <= 64; signo++)
    n += sigismember(&set, signo) == 1;
  rt->sigw = ax__calloc(n, sizeof *rt->sigw);
  if (rt->sigw == NULL)
    return -ENOMEM;
  for (int signo = 1; signo <= 64; signo++) {
    if (sigismember(&set, signo) != 1)
      continue;
    ax_signal_t *w = &rt->sigw[rt->nsigw];
    ax_signal_init(c->loop, w, on_signal);
    w->data = rt;
    int rc = ax_signal_start(w, signo);
    if (rc < 0) {
      ax__signals_stop(c);
      return rc;
    }
    rt->nsigw++;
  }
  return 0;
}

void ax__signals_stop(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  /* The signals stay blocked: pending ones wait for ax_rt_join, which
   * gives the starting thread its mask back. */
  for (unsigned i = 0; i < rt->nsigw; i++)
    ax_signal_stop(&rt->sigw[i]);
  free(rt->sigw);
  rt->sigw = NULL;
  rt->nsigw = 0;
}
