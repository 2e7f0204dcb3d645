/* timers: timers are messages.  An actor ticks with ax_every; a one-shot ax_after cancels the
 * ticker with ax_timer_cancel; a last one-shot checks that no tick arrived after the cancel, and the
 * actor stops.
 * Shows: an init hook that starts the timers (and stops the actor with ax_stop if it cannot);
 * timer ids; payloads copied when a timer is set and delivered with each of its messages;
 * ax_timer_cancel's -ENOENT for a timer that is gone (a one-shot whose message is being or was
 * handled, or one cancelled already); timers never fire early.
 * Run: build/examples/timers [period-ms [ticks]]   (default 100 ms and 5 ticks) */
#include <axon.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_TICK = AX_MSG_USER, MSG_DEADLINE, MSG_DONE };

typedef struct metronome {
  int64_t period, started;  /* ns */
  unsigned wanted, ticks;   /* ticks expected before the deadline, and received */
  unsigned ticks_at_cancel; /* ticks received when the ticker was cancelled */
  uint64_t ticker, deadline; /* timer ids, for ax_timer_cancel */
  bool ok;
} metronome_t;

static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "timers: %s: %s\n", what, ax_strerror(rc));
  return rc;
}

/* Init hook: runs on the actor's core before its first message. */
static void start_timers(ax_actor_t *self) {
  static const char label[] = "tick-tock"; /* copied by ax_every: could live on the stack */
  metronome_t *m = ax_state(self);
  int64_t now = ax_now(); /* the one-shot's payload: when it was set */
  int rc;
  m->started = now;
  if ((rc = check(ax_every(self, m->period, MSG_TICK, label, sizeof label, &m->ticker),
                  "ax_every")) < 0 ||
      (rc = check(ax_after(self, m->period * m->wanted + m->period / 2, MSG_DEADLINE, &now,
                           sizeof now, &m->deadline), "ax_after")) < 0) {
    check(ax_stop(ax_self(self), rc), "ax_stop"); /* a hook cannot return a failure */
    return;
  }
  printf("ticker is timer %" PRIu64 ", deadline is timer %" PRIu64 "\n", m->ticker, m->deadline);
}

static int on_message(ax_actor_t *self, const ax_msg_t *msg) {
  metronome_t *m = ax_state(self);
  int64_t now = ax_now(), set_at;
  int rc, rc2;
  switch (msg->type) {
  case MSG_TICK: /* every tick carries the same copy of the label */
    printf("tick %u at %" PRId64 " ms: \"%s\"\n", ++m->ticks,
           (now - m->started) / AX_NSEC_PER_MSEC, (const char *)msg->data);
    return 0;
  case MSG_DEADLINE:
    memcpy(&set_at, msg->data, sizeof set_at);
    printf("deadline: fired %" PRId64 " ms after it was set\n", (now - set_at) / AX_NSEC_PER_MSEC);
    if ((rc = check(ax_timer_cancel(self, m->ticker), "ax_timer_cancel(ticker)")) < 0)
      return rc; /* stop with the failure as reason */
    m->ticks_at_cancel = m->ticks;
    /* Both timers are gone now: the ticker cancelled, the one-shot handled (this message). */
    rc = ax_timer_cancel(self, m->ticker);
    rc2 = ax_timer_cancel(self, m->deadline);
    printf("cancel the ticker again: %s; cancel the fired deadline: %s\n", ax_err_name(rc),
           ax_err_name(rc2));
    if (rc != -ENOENT || rc2 != -ENOENT)
      return check(-EPROTO, "ax_timer_cancel of a timer that is gone");
    /* Wait three periods: even a tick that was already queued must not arrive. */
    return check(ax_after(self, 3 * m->period, MSG_DONE, NULL, 0, NULL), "ax_after");
  case MSG_DONE:
    m->ok = m->ticks == m->ticks_at_cancel && m->ticks >= 1 && m->ticks <= m->wanted;
    printf("ticks: %u of %u, %s after cancel\n", m->ticks, m->wanted,
           m->ticks == m->ticks_at_cancel ? "none" : "SOME");
    return AX_STOP;
  default:
    return 0;
  }
}

static void on_stop(ax_actor_t *self, int reason) {
  (void)self;
  printf("timer actor stopped: %s\n", reason == AX_REASON_NORMAL     ? "normal"
                                       : reason == AX_REASON_SHUTDOWN ? "runtime shutdown"
                                                                      : ax_strerror(reason));
}

int main(int argc, char **argv) {
  long ms = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
  long ticks = argc > 2 ? strtol(argv[2], NULL, 10) : 5;
  if (argc > 3 || ms < 1 || ms > 10000 || ticks < 1 || ticks > 1000)
    return fprintf(stderr, "usage: %s [period-ms [ticks]]   (default 100 5)\n", argv[0]), 2;
  metronome_t m = {.period = ms * AX_NSEC_PER_MSEC, .wanted = (unsigned)ticks};
  ax_spawn_opts_t opts = {.init = start_timers, .terminate = on_stop};
  ax_rt_opts_t rt_opts = {.cores = 1}; /* one actor needs one core */
  ax_rt_t *rt;
  int status = 1;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (check(ax_rt_new(&rt_opts, &rt), "ax_rt_new") < 0)
    return 1;
  if (check(ax_spawn(rt, on_message, &m, &opts, NULL), "ax_spawn") >= 0 &&
      check(ax_rt_run(rt), "ax_rt_run") >= 0) /* until the actor has stopped */
    status = m.ok ? 0 : 1;
  if (check(ax_rt_free(rt), "ax_rt_free") < 0)
    status = 1;
  return status;
}
