/* ping-pong: two actors on two cores bounce a counter, and the program prints messages/s.
 * Shows: AX_PLACE_CORE placement; replying to msg->from; payloads copied out with memcpy; a
 * monitor, so that the pinger learns from an AX_MSG_DOWN message when the ponger has stopped;
 * a failure inside a behaviour that stops the whole runtime with ax_rt_stop; terminate hooks;
 * per-core statistics after the run.  Ctrl-C (SIGINT) stops the runtime early: the actors
 * still alive stop with AX_REASON_SHUTDOWN and the program reports how far it got.
 * Run: build/examples/ping-pong [round-trips]   (default 1000000; needs 2 CPUs for 2 cores) */
#include <axon.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_START = AX_MSG_USER, MSG_PING, MSG_PONG, MSG_QUIT };

typedef struct pinger {
  ax_ref_t ponger;
  uint64_t rounds, done; /* round trips wanted and completed */
  int64_t started, elapsed;
  int reason; /* why the pinger stopped, from its terminate hook */
} pinger_t;

static atomic_int failed; /* set by any core that hit an error */

static const char *reason_name(int reason) {
  return reason == AX_REASON_NORMAL    ? "normal"
         : reason == AX_REASON_STOPPED  ? "stopped"
         : reason == AX_REASON_SHUTDOWN ? "runtime shutdown"
                                        : ax_strerror(reason);
}

/* Reports a failed call inside a behaviour and stops the whole runtime (the other actor then
 * stops with AX_REASON_SHUTDOWN).  Returns rc: the failing actor stops with it as reason. */
static int fail(ax_actor_t *self, const char *what, int rc) {
  fprintf(stderr, "ping-pong: %s: %s\n", what, ax_strerror(rc));
  atomic_store(&failed, 1);
  ax_rt_stop(ax_actor_rt(self));
  return rc;
}

static int ping(ax_actor_t *self, const ax_msg_t *msg) {
  pinger_t *p = ax_state(self);
  uint64_t n = 1;
  ax_down_t down;
  int rc;
  switch (msg->type) {
  case MSG_START: /* from main: watch the ponger, start the clock, send the first ping */
    if ((rc = ax_monitor(self, p->ponger, NULL)) < 0)
      return fail(self, "ax_monitor", rc);
    p->started = ax_now();
    break;
  case MSG_PONG:
    if (msg->size != sizeof n)
      return fail(self, "pong", -EPROTO);
    memcpy(&n, msg->data, sizeof n); /* copy out: payloads carry no alignment promise */
    if (n != p->done + 1)
      return fail(self, "pong out of order", -EPROTO); /* one sender, one receiver: in order */
    if ((p->done = n++) < p->rounds)
      break; /* send ping n */
    p->elapsed = ax_now() - p->started; /* all done: ask the ponger to stop, wait for DOWN */
    rc = ax_send(p->ponger, MSG_QUIT, NULL, 0);
    return rc < 0 ? fail(self, "ax_send(QUIT)", rc) : 0;
  case AX_MSG_DOWN: /* the ponger has stopped, for whatever reason */
    memcpy(&down, msg->data, sizeof down);
    printf("ponger stopped: %s\n", reason_name(down.reason));
    return AX_STOP;
  default:
    return 0;
  }
  rc = ax_send(p->ponger, MSG_PING, &n, sizeof n);
  return rc < 0 ? fail(self, "ax_send(PING)", rc) : 0;
}

static int pong(ax_actor_t *self, const ax_msg_t *msg) {
  if (msg->type == MSG_QUIT)
    return AX_STOP;
  if (msg->type != MSG_PING)
    return 0;
  int rc = ax_send(msg->from, MSG_PONG, msg->data, msg->size); /* the same counter back */
  return rc < 0 ? fail(self, "ax_send(PONG)", rc) : 0;
}

static void pinger_stopped(ax_actor_t *self, int reason) {
  pinger_t *p = ax_state(self);
  p->reason = reason; /* main reads it after ax_rt_run(), once every core thread has exited */
}

static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "ping-pong: %s: %s\n", what, ax_strerror(rc));
  return rc;
}

int main(int argc, char **argv) {
  unsigned long long rounds = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
  if (argc > 2 || rounds == 0)
    return fprintf(stderr, "usage: %s [round-trips]   (default 1000000)\n", argv[0]), 2;
  pinger_t p = {.rounds = rounds, .reason = AX_REASON_NORMAL};
  ax_spawn_opts_t on0 = {.placement = AX_PLACE_CORE, .core = 0, .terminate = pinger_stopped};
  ax_spawn_opts_t on1 = {.placement = AX_PLACE_CORE}; /* .core is set below */
  ax_ref_t pinger;
  ax_rt_t *rt;
  int status = 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (check(ax_rt_new(NULL, &rt), "ax_rt_new") < 0)
    return 1;
  on1.core = 1 % ax_rt_cores(rt); /* core 1, or core 0 on a one-CPU machine */
  if (check(ax_spawn(rt, pong, NULL, &on1, &p.ponger), "ax_spawn(pong)") >= 0 &&
      check(ax_spawn(rt, ping, &p, &on0, &pinger), "ax_spawn(ping)") >= 0 &&
      check(ax_send(pinger, MSG_START, NULL, 0), "ax_send(START)") >= 0) {
    printf("pinger on core 0, ponger on core %u of %u\n", on1.core, ax_rt_cores(rt));
    status = check(ax_rt_run(rt), "ax_rt_run") < 0 || atomic_load(&failed) ? 1 : 0;
  }
  if (status == 0 && p.done == p.rounds) {
    double s = (double)p.elapsed / AX_NSEC_PER_SEC;
    printf("%" PRIu64 " round trips between core 0 and core %u in %.3f s: %.0f messages/s\n",
           p.done, on1.core, s, 2.0 * (double)p.done / s);
  } else if (status == 0) { /* SIGINT or SIGTERM: the runtime stopped both actors */
    printf("interrupted after %" PRIu64 " of %" PRIu64 " round trips (pinger: %s)\n", p.done,
           p.rounds, reason_name(p.reason));
  }
  for (unsigned core = 0; status == 0 && core <= on1.core; core++) { /* the cores used */
    ax_core_stats_t st; /* exact now: every core thread has exited */
    if (check(ax_rt_stats(rt, core, &st), "ax_rt_stats") < 0)
      status = 1;
    else
      printf("core %u: %" PRIu64 " sent, %" PRIu64 " delivered, %" PRIu64 " wake-ups, %" PRIu64
             " sleeps\n", core, st.sent, st.delivered, st.wakeups, st.sleeps);
  }
  if (check(ax_rt_free(rt), "ax_rt_free") < 0)
    status = 1;
  return status;
}
