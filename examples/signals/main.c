/* signals: signals arrive as messages.  An "app" actor on core 0 subscribes to SIGHUP (reload),
 * SIGUSR1 (status), SIGINT and SIGTERM (graceful stop: once subscribed, they no longer stop the
 * runtime by themselves); an "audit" actor on core 1 subscribes to SIGHUP and SIGUSR1 too, so
 * each of those reaches both actors, on two cores.  Every message carries the kernel's
 * signalfd record: the sender's pid and uid, the code, a sigqueue value.  SIGUSR2 has no
 * subscriber, so the runtime's default applies to it: it stops the runtime gracefully.
 * Run: build/examples/signals     then, from another shell: kill -HUP <pid>, kill -USR1 <pid>,
 *      and kill -INT <pid> (or Ctrl-C) to stop it.  It prints its pid in the "ready" line. */
#include <axon.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct app {
  int reloads, statuses;
  atomic_int *subscribed; /* actors that have subscribed: the second one prints "ready" */
  const char *name;
  const int *signals; /* what to watch, 0-terminated */
} app_t;

static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "signals: %s: %s\n", what, ax_strerror(rc));
  return rc;
}

static const char *signame(int signo) {
  switch (signo) {
  case SIGHUP: return "SIGHUP";
  case SIGINT: return "SIGINT";
  case SIGTERM: return "SIGTERM";
  case SIGUSR1: return "SIGUSR1";
  default: return "another signal";
  }
}

/* Init hook, on the actor's core: subscribe.  A hook cannot fail, so a failure stops the actor
 * (and with it the runtime: see stop_runtime). */
static void subscribe(ax_actor_t *self) {
  app_t *a = ax_state(self);
  for (const int *s = a->signals; *s != 0; s++) {
    int rc = check(ax_signal_watch(self, *s), "ax_signal_watch");
    if (rc < 0) {
      check(ax_stop(ax_self(self), rc), "ax_stop");
      return;
    }
  }
  if (atomic_fetch_add(a->subscribed, 1) + 1 == 2)
    printf("ready: pid %d, app watches SIGHUP SIGUSR1 SIGINT SIGTERM, audit SIGHUP SIGUSR1\n",
           (int)getpid());
}

static int app(ax_actor_t *self, const ax_msg_t *msg) {
  app_t *a = ax_state(self);
  if (msg->type != AX_MSG_SIGNAL)
    return 0;
  const ax_signal_msg_t *si = msg->data;
  int signo = (int)si->ssi_signo;
  switch (signo) {
  case SIGHUP:
    printf("app: SIGHUP from pid %u: reload #%d\n", si->ssi_pid, ++a->reloads);
    return 0;
  case SIGUSR1:
    printf("app: SIGUSR1 from pid %u: status #%d, %d reload(s) so far\n", si->ssi_pid,
           ++a->statuses, a->reloads);
    return 0;
  default: /* SIGINT, SIGTERM: finish the work in hand, then stop */
    printf("app: %s from pid %u: stopping after %d reload(s)\n", signame(signo), si->ssi_pid,
           a->reloads);
    return AX_STOP;
  }
}

static int audit(ax_actor_t *self, const ax_msg_t *msg) {
  if (msg->type == AX_MSG_SIGNAL) {
    const ax_signal_msg_t *si = msg->data;
    printf("audit (core %u): %s from pid %u, uid %u\n", ax_core(self),
           signame((int)si->ssi_signo), si->ssi_pid, si->ssi_uid);
  }
  return 0;
}

/* When the app stops (or fails to subscribe), the audit actor has nothing left to watch over:
 * stop the whole runtime. */
static void stop_runtime(ax_actor_t *self, int reason) {
  app_t *a = ax_state(self);
  printf("%s stopped: %s\n", a->name, reason == AX_REASON_NORMAL     ? "normal"
                                      : reason == AX_REASON_SHUTDOWN ? "runtime shutdown"
                                                                     : ax_strerror(reason));
  ax_rt_stop(ax_actor_rt(self));
}

int main(int argc, char **argv) {
  if (argc > 1)
    return fprintf(stderr, "usage: %s   (then send it SIGHUP, SIGUSR1, SIGINT)\n", argv[0]), 2;
  static const int app_signals[] = {SIGHUP, SIGUSR1, SIGINT, SIGTERM, 0};
  static const int audit_signals[] = {SIGHUP, SIGUSR1, 0};
  atomic_int subscribed = 0;
  app_t a = {.subscribed = &subscribed, .name = "app", .signals = app_signals};
  app_t b = {.subscribed = &subscribed, .name = "audit", .signals = audit_signals};
  ax_rt_opts_t rt_opts = {.cores = 2, .flags = AX_RT_NO_PIN};
  ax_spawn_opts_t on0 = {.placement = AX_PLACE_CORE, .core = 0, .init = subscribe,
                         .terminate = stop_runtime};
  ax_spawn_opts_t on1 = {.placement = AX_PLACE_CORE, .core = 1, .init = subscribe};
  ax_rt_t *rt;
  int status = 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (check(ax_rt_new(&rt_opts, &rt), "ax_rt_new") < 0)
    return 1;
  if (check(ax_spawn(rt, app, &a, &on0, NULL), "ax_spawn(app)") >= 0 &&
      check(ax_spawn(rt, audit, &b, &on1, NULL), "ax_spawn(audit)") >= 0 &&
      check(ax_rt_run(rt), "ax_rt_run") >= 0) /* until the app stops, or SIGUSR2 */
    status = 0;
  printf("bye: %d reload(s), %d status request(s)\n", a.reloads, a.statuses);
  if (check(ax_rt_free(rt), "ax_rt_free") < 0)
    status = 1;
  return status;
}
