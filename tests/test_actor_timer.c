/* Check suite for timers as messages: ax_after, ax_every, ax_timer_cancel, and timers of stopping actors. */
#include <pthread.h>
#include <stdatomic.h>

#include "axon/fiber.h"
#include "axon_test.h"
#include "fiber_test.h"

enum {
  MSG_GO = AX_MSG_USER,
  MSG_TICK,
  MSG_FINISH,
  MSG_A,
  MSG_B,
  MSG_C,
  MSG_NEVER,
};

/* Everything a timer test actor records; the test thread reads it after
 * ax_rt_run() has returned. */
typedef struct timed {
  int64_t start;
  uint64_t id, id2;
  int setup_rc, setup_rc2;
  int ticks;
  int after_cancel;
  int bad;
  int cancel_rc, cancel_again_rc;
  int64_t first_tick_ns;
  int order[8];
  int norder;
  bool cancelled;
  int finished;
} timed_t;

static ax_rt_t *run_one(ax_behaviour_t behaviour, ax_init_t init, void *state) {
  ax_rt_t *rt = test_rt_new(2, 0);
  test_spawn(rt, behaviour, state, AX_PLACE_CORE, 1, init, NULL);
  ck_assert_int_eq(ax_rt_run(rt), 0);
  return rt;
}

/* ------------------------------------------------------------------------ */
/* ax_after                                                                  */

static void after_once_init(ax_actor_t *self) {
  timed_t *t = ax_state(self);
  t->start = ax_now();
  char hello[6] = "hello";
  t->setup_rc = ax_after(self, 20 * AX_NSEC_PER_MSEC, MSG_TICK, hello, sizeof hello, &t->id);
  memset(hello, 'x', sizeof hello); /* the payload was copied */
  t->setup_rc2 = ax_after(self, 200 * AX_NSEC_PER_MSEC, MSG_FINISH, NULL, 0, &t->id2);
}

static int after_once_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  timed_t *t = ax_state(self);
  if (msg->type == MSG_TICK) {
    if (t->ticks++ == 0)
      t->first_tick_ns = ax_now() - t->start;
    if (msg->size != 6 || memcmp(msg->data, "hello", 6) != 0)
      t->bad++;
    return 0;
  }
  if (msg->type == MSG_FINISH) {
    if (msg->size != 0 || msg->data != NULL)
      t->bad++;
    /* Both one-shots fired: nothing left to cancel. */
    t->cancel_rc = ax_timer_cancel(self, t->id);
    t->cancel_again_rc = ax_timer_cancel(self, t->id2);
    t->finished++;
    return AX_STOP;
  }
  t->bad++;
  return 0;
}

START_TEST(test_actor_timer_after_once) {
  timed_t t;
  memset(&t, 0, sizeof t);
  ax_rt_t *rt = run_one(after_once_behaviour, after_once_init, &t);
  ck_assert_int_eq(t.setup_rc, 0);
  ck_assert_int_eq(t.setup_rc2, 0);
  ck_assert(t.id != t.id2);
  ck_assert_int_eq(t.finished, 1);
  ck_assert_int_eq(t.ticks, 1);
  ck_assert_int_eq(t.bad, 0);
  /* Coarse: not noticeably early, not absurdly late. */
  ck_assert_int_ge(t.first_tick_ns, 15 * AX_NSEC_PER_MSEC);
  ck_assert_int_lt(t.first_tick_ns, 10 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(t.cancel_rc, -ENOENT);
  ck_assert_int_eq(t.cancel_again_rc, -ENOENT);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Three timers started out of order, and a zero-delay one. */
static void order_init(ax_actor_t *self) {
  timed_t *t = ax_state(self);
  int a = MSG_A, b = MSG_B, c = MSG_C;
  t->setup_rc = ax_after(self, 150 * AX_NSEC_PER_MSEC, MSG_C, &c, sizeof c, NULL);
  t->setup_rc |= ax_after(self, 60 * AX_NSEC_PER_MSEC, MSG_B, &b, sizeof b, NULL);
  t->setup_rc |= ax_after(self, 10 * AX_NSEC_PER_MSEC, MSG_A, &a, sizeof a, NULL);
  t->setup_rc |= ax_after(self, 0, MSG_TICK, NULL, 0, NULL);
}

static int order_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  timed_t *t = ax_state(self);
  if (msg->type != MSG_TICK) {
    /* Each payload is its own type. */
    int type = 0;
    if (msg->size == sizeof type)
      memcpy(&type, msg->data, sizeof type);
    if (type != (int)msg->type)
      t->bad++;
  }
  if (t->norder < 8)
    t->order[t->norder++] = (int)msg->type;
  return msg->type == MSG_C ? AX_STOP : 0;
}

START_TEST(test_actor_timer_after_order) {
  timed_t t;
  memset(&t, 0, sizeof t);
  ax_rt_t *rt = run_one(order_behaviour, order_init, &t);
  ck_assert_int_eq(t.setup_rc, 0);
  ck_assert_int_eq(t.bad, 0);
  ck_assert_int_eq(t.norder, 4);
  ck_assert_int_eq(t.order[0], MSG_TICK);
  ck_assert_int_eq(t.order[1], MSG_A);
  ck_assert_int_eq(t.order[2], MSG_B);
  ck_assert_int_eq(t.order[3], MSG_C);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Many one-shots with scattered delays: each fires exactly once. */
enum { MANY_TIMERS = 1000 };

typedef struct many {
  unsigned char fired[MANY_TIMERS];
  int total;
  int bad;
  int setup_failed;
} many_t;

static void many_init(ax_actor_t *self) {
  many_t *m = ax_state(self);
  for (int i = 0; i < MANY_TIMERS; i++) {
    int64_t delay = (int64_t)((i * 37) % 50) * AX_NSEC_PER_MSEC;
    if (ax_after(self, delay, MSG_TICK, &i, sizeof i, NULL) != 0)
      m->setup_failed++;
  }
}

static int many_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  many_t *m = ax_state(self);
  int i;
  if (msg->size != sizeof i) {
    m->bad++;
    return AX_STOP;
  }
  memcpy(&i, msg->data, sizeof i);
  if (i < 0 || i >= MANY_TIMERS || m->fired[i]++ != 0)
    m->bad++;
  return ++m->total == MANY_TIMERS ? AX_STOP : 0;
}

START_TEST(test_actor_timer_many) {
  many_t m;
  memset(&m, 0, sizeof m);
  ax_rt_t *rt = run_one(many_behaviour, many_init, &m);
  ck_assert_int_eq(m.setup_failed, 0);
  ck_assert_int_eq(m.bad, 0);
  ck_assert_int_eq(m.total, MANY_TIMERS);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Many actors on both cores each arm a short one-shot when told to, and
 * stop when it fires; the test thread keeps both cores busy with messages
 * meanwhile.  Every timer must fire: a lost one leaves its actor alive. */
typedef struct short_fuse {
  atomic_int armed;
  atomic_int fired;
  atomic_int pings;
} short_fuse_t;

static int short_fuse_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  short_fuse_t *f = ax_state(self);
  if (msg->type == MSG_GO) {
    atomic_store(&f->armed, ax_after(self, 1 * AX_NSEC_PER_MSEC, MSG_FINISH, NULL, 0, NULL) == 0);
    return 0;
  }
  if (msg->type == MSG_FINISH) {
    atomic_store(&f->fired, 1);
    return AX_STOP;
  }
  atomic_fetch_add(&f->pings, 1);
  return 0;
}

START_TEST(test_actor_timer_after_many_actors) {
  enum { N = 200 };
  for (int round = 0; round < 5; round++) {
    ax_rt_t *rt = test_rt_new(2, 0);
    short_fuse_t *fuses = calloc(N, sizeof *fuses);
    ck_assert_ptr_nonnull(fuses);
    ax_ref_t refs[N];
    for (int i = 0; i < N; i++)
      refs[i] = test_spawn(rt, short_fuse_behaviour, &fuses[i], AX_PLACE_CORE, (unsigned)i % 2,
                           NULL, NULL);
    test_rt_start(rt);
    for (int i = 0; i < N; i++)
      test_send(refs[i], MSG_GO, NULL, 0);
    for (int i = 0; i < N; i++) {
      int64_t deadline = ax_now() + 10 * AX_NSEC_PER_SEC;
      while (ax_send(refs[i], MSG_A, NULL, 0) == 0 && ax_now() < deadline)
        test_sleep_ms(1);
      ck_assert_msg(atomic_load(&fuses[i].fired) == 1,
                    "round %d, actor %d (core %d): armed %d, timer never fired (%d messages "
                    "handled after arming)",
                    round, i, i % 2, atomic_load(&fuses[i].armed), atomic_load(&fuses[i].pings));
    }
    test_rt_join_free(rt);
    free(fuses);
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_every and ax_timer_cancel                                                    */

static void every_init(ax_actor_t *self) {
  timed_t *t = ax_state(self);
  int seven = 7;
  t->setup_rc = ax_every(self, 1 * AX_NSEC_PER_MSEC, MSG_TICK, &seven, sizeof seven, &t->id);
}

static int every_cancel_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  timed_t *t = ax_state(self);
  if (msg->type == MSG_FINISH) {
    t->cancel_again_rc = ax_timer_cancel(self, t->id);
    t->finished++;
    return AX_STOP;
  }
  if (msg->type != MSG_TICK)
    return 0;
  if (msg->size != sizeof(int) || *(const int *)msg->data != 7)
    t->bad++;
  if (t->cancelled) {
    t->after_cancel++;
    return 0;
  }
  if (++t->ticks == 5) {
    /* Stay busy for many periods, so that the next tick is due (and may
     * already sit in the mailbox) when the timer is cancelled. */
    test_spin_ms(20);
    t->cancel_rc = ax_timer_cancel(self, t->id);
    t->cancelled = true;
    if (ax_after(self, 100 * AX_NSEC_PER_MSEC, MSG_FINISH, NULL, 0, NULL) != 0)
      t->bad++;
  }
  return 0;
}

START_TEST(test_actor_timer_every_cancel) {
  timed_t t;
  memset(&t, 0, sizeof t);
  ax_rt_t *rt = run_one(every_cancel_behaviour, every_init, &t);
  ck_assert_int_eq(t.setup_rc, 0);
  ck_assert_int_eq(t.finished, 1);
  ck_assert_int_eq(t.bad, 0);
  ck_assert_int_eq(t.ticks, 5);
  ck_assert_int_eq(t.cancel_rc, 0);
  ck_assert_msg(t.after_cancel == 0, "%d ticks delivered after ax_timer_cancel returned 0",
                t.after_cancel);
  ck_assert_int_eq(t.cancel_again_rc, -ENOENT);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Slow handling: the first ticks each take 30 ms with a 2 ms period.  A
 * backlog would then deliver dozens of ticks back to back before a message
 * queued behind them; without one, a 20 ms window sees about ten. */
static void backlog_init(ax_actor_t *self) {
  timed_t *t = ax_state(self);
  t->setup_rc = ax_every(self, 2 * AX_NSEC_PER_MSEC, MSG_TICK, NULL, 0, &t->id);
}

static int backlog_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  timed_t *t = ax_state(self);
  if (msg->type == MSG_FINISH) {
    t->cancel_rc = ax_timer_cancel(self, t->id);
    t->finished++;
    return AX_STOP;
  }
  t->ticks++;
  if (t->ticks <= 5) {
    test_spin_ms(30);
  } else if (t->ticks == 6) {
    t->first_tick_ns = ax_now();
    if (ax_after(self, 20 * AX_NSEC_PER_MSEC, MSG_FINISH, NULL, 0, NULL) != 0)
      t->bad++;
  } else {
    t->after_cancel++; /* here: ticks inside the window */
  }
  return 0;
}

START_TEST(test_actor_timer_every_no_backlog) {
  timed_t t;
  memset(&t, 0, sizeof t);
  ax_rt_t *rt = run_one(backlog_behaviour, backlog_init, &t);
  ck_assert_int_eq(t.setup_rc, 0);
  ck_assert_int_eq(t.finished, 1);
  ck_assert_int_eq(t.bad, 0);
  ck_assert_int_eq(t.cancel_rc, 0);
  ck_assert_msg(t.after_cancel <= 30, "%d ticks in a 20 ms window with a 2 ms period",
                t.after_cancel);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* Argument checks, made from inside an actor (ax_after & co. take self). */
typedef struct errors {
  int rc[16];
  int fired_full, fired_zero;
  int bad;
  uint64_t ids[3];
} errors_t;

static void errors_init(ax_actor_t *self) {
  errors_t *e = ax_state(self);
  unsigned char full[257];
  memset(full, 0xab, sizeof full);
  int i = 0;
  e->rc[i++] = ax_after(NULL, 0, MSG_TICK, NULL, 0, NULL);
  e->rc[i++] = ax_after(self, -1, MSG_TICK, NULL, 0, NULL);
  e->rc[i++] = ax_after(self, 0, 0, NULL, 0, NULL);
  e->rc[i++] = ax_after(self, 0, MSG_TICK, full, 257, NULL);
  e->rc[i++] = ax_after(self, 0, MSG_TICK, NULL, 4, NULL);
  e->rc[i++] = ax_every(NULL, AX_NSEC_PER_MSEC, MSG_TICK, NULL, 0, NULL);
  e->rc[i++] = ax_every(self, 0, MSG_TICK, NULL, 0, NULL);
  e->rc[i++] = ax_every(self, -5, MSG_TICK, NULL, 0, NULL);
  e->rc[i++] = ax_every(self, AX_NSEC_PER_MSEC, 0, NULL, 0, NULL);
  e->rc[i++] = ax_every(self, AX_NSEC_PER_MSEC, MSG_TICK, full, 257, NULL);
  e->rc[i++] = ax_timer_cancel(NULL, 1);
  e->rc[i++] = ax_timer_cancel(self, 0x5eed5eed5eedULL);
  /* Those that work: the largest payload, a zero delay, a long timer. */
  e->rc[i++] = ax_after(self, 0, MSG_A, full, 256, &e->ids[0]);
  memset(full, 0, sizeof full);
  e->rc[i++] = ax_after(self, 0, MSG_B, NULL, 0, &e->ids[1]);
  e->rc[i++] = ax_after(self, 3600 * AX_NSEC_PER_SEC, MSG_NEVER, NULL, 0, &e->ids[2]);
  /* A cancelled timer cannot be cancelled again. */
  e->rc[i++] = ax_timer_cancel(self, e->ids[2]) == 0 ? ax_timer_cancel(self, e->ids[2]) : -1000;
}

static int errors_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  errors_t *e = ax_state(self);
  if (msg->type == MSG_A) {
    const unsigned char *data = msg->data;
    bool ok = msg->size == 256;
    for (size_t k = 0; ok && k < 256; k++)
      ok = data[k] == 0xab;
    if (!ok)
      e->bad++;
    e->fired_full++;
  } else if (msg->type == MSG_B) {
    e->fired_zero++;
  } else {
    e->bad++;
  }
  return e->fired_full + e->fired_zero == 2 ? AX_STOP : 0;
}

START_TEST(test_actor_timer_errors) {
  errors_t e;
  memset(&e, 0, sizeof e);
  ax_rt_t *rt = run_one(errors_behaviour, errors_init, &e);
  int want[16] = {-EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL, -EINVAL,
                  -EINVAL, -EINVAL, -EINVAL, -ENOENT, 0,       0,       0,       -ENOENT};
  for (int i = 0; i < 16; i++)
    ck_assert_msg(e.rc[i] == want[i], "call %d returned %d (%s), expected %d", i, e.rc[i],
                  ax_err_name(e.rc[i]), want[i]);
  ck_assert(e.ids[0] != e.ids[1]);
  ck_assert(e.ids[1] != e.ids[2]);
  ck_assert(e.ids[0] != e.ids[2]);
  ck_assert_int_eq(e.fired_full, 1);
  ck_assert_int_eq(e.fired_zero, 1);
  ck_assert_int_eq(e.bad, 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Timers of actors that stop                                                */

typedef struct ticking {
  atomic_int ticks;
  atomic_int terminates;
  int stop_after; /* AX_STOP after this many ticks; 0 = never */
  int setup_rc;
} ticking_t;

static void ticking_init(ax_actor_t *self) {
  ticking_t *t = ax_state(self);
  char payload[64] = "timer payload that must be freed with the actor";
  t->setup_rc = ax_every(self, 1 * AX_NSEC_PER_MSEC, MSG_TICK, payload, sizeof payload, NULL);
  t->setup_rc |= ax_after(self, 5 * AX_NSEC_PER_MSEC, MSG_A, payload, sizeof payload, NULL);
  t->setup_rc |= ax_after(self, 3600 * AX_NSEC_PER_SEC, MSG_NEVER, payload, 10, NULL);
}

static int ticking_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  ticking_t *t = ax_state(self);
  if (msg->type != MSG_TICK)
    return 0;
  int ticks = atomic_fetch_add(&t->ticks, 1) + 1;
  return t->stop_after > 0 && ticks >= t->stop_after ? AX_STOP : 0;
}

static void ticking_terminate(ax_actor_t *self, int reason) {
  ticking_t *t = ax_state(self);
  (void)reason;
  atomic_fetch_add(&t->terminates, 1);
}

START_TEST(test_actor_timer_cancelled_on_stop) {
  /* Actors with pending timers (one an hour away) stop by returning
   * AX_STOP or through ax_stop(): their timers die with them, nothing
   * fires into the dead actors, and the runtime ends with the last one. */
  enum { N = 40 };
  ax_rt_t *rt = test_rt_new(2, 0);
  ticking_t ts[N];
  memset(ts, 0, sizeof ts);
  ax_ref_t refs[N];
  for (int i = 0; i < N; i++) {
    ts[i].stop_after = i % 2 == 0 ? 3 : 0;
    refs[i] = test_spawn(rt, ticking_behaviour, &ts[i], AX_PLACE_ANY, 0, ticking_init,
                         ticking_terminate);
  }
  int64_t start = ax_now();
  test_rt_start(rt);
  for (int i = 1; i < N; i += 2) {
    TEST_WAIT_UNTIL(atomic_load(&ts[i].ticks) >= 2, 10000);
    ck_assert_int_eq(ax_stop(refs[i], 0), 0);
  }
  test_rt_join_free(rt);
  /* The hour-long timers did not keep anything alive. */
  ck_assert_int_lt(ax_now() - start, 60 * AX_NSEC_PER_SEC);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(ts[i].setup_rc, 0);
    ck_assert_int_eq(atomic_load(&ts[i].terminates), 1);
    if (i % 2 == 0)
      ck_assert_int_eq(atomic_load(&ts[i].ticks), 3);
  }
}
END_TEST

START_TEST(test_actor_timer_pending_at_shutdown) {
  /* The runtime stops while timers are pending and ticking. */
  enum { N = 16 };
  ax_rt_t *rt = test_rt_new(2, 0);
  ticking_t ts[N];
  memset(ts, 0, sizeof ts);
  for (int i = 0; i < N; i++)
    test_spawn(rt, ticking_behaviour, &ts[i], AX_PLACE_ANY, 0, ticking_init, ticking_terminate);
  test_rt_start(rt);
  for (int i = 0; i < N; i++)
    TEST_WAIT_UNTIL(atomic_load(&ts[i].ticks) >= 2, 10000);
  test_rt_stop_join_free(rt);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(atomic_load(&ts[i].terminates), 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_timer_rearm                                                            */

/* An idle timeout: a one-shot of 100 ms, rearmed on every tick of a 20 ms
 * ticker for ten ticks.  It must fire once, 100 ms or more after the last
 * rearm (without the rearms it would fire while the ticks go on). */
typedef struct idle {
  uint64_t idle_id, tick_id;
  int ticks, idles, bad, rearm_bad;
  int64_t last_rearm, idle_at;
  int after_rc, zero_rc, neg_rc, every_zero_rc, unknown_rc;
} idle_t;

static void idle_init(ax_actor_t *self) {
  idle_t *t = ax_state(self);
  if (ax_after(self, 100 * AX_NSEC_PER_MSEC, MSG_C, "idle", 4, &t->idle_id) != 0 ||
      ax_every(self, 20 * AX_NSEC_PER_MSEC, MSG_TICK, NULL, 0, &t->tick_id) != 0)
    t->bad++;
  t->last_rearm = ax_now();
}

static int idle_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  idle_t *t = ax_state(self);
  switch (msg->type) {
  case MSG_TICK:
    if (++t->ticks < 10) {
      if (ax_timer_rearm(self, t->idle_id, 100 * AX_NSEC_PER_MSEC) != 0)
        t->rearm_bad++;
      t->last_rearm = ax_now();
    } else if (ax_timer_cancel(self, t->tick_id) != 0) {
      t->bad++;
    }
    return 0;
  case MSG_C:
    t->idle_at = ax_now();
    if (msg->size != 4 || memcmp(msg->data, "idle", 4) != 0)
      t->bad++; /* the payload stays the timer's */
    if (++t->idles == 1) {
      /* The one-shot is gone once handled; a periodic one needs a period. */
      t->after_rc = ax_timer_rearm(self, t->idle_id, AX_NSEC_PER_MSEC);
      t->neg_rc = ax_timer_rearm(self, t->idle_id, -1);
      t->unknown_rc = ax_timer_rearm(self, 987654321, AX_NSEC_PER_MSEC);
      uint64_t p;
      if (ax_every(self, AX_NSEC_PER_SEC, MSG_NEVER, NULL, 0, &p) != 0)
        t->bad++;
      t->every_zero_rc = ax_timer_rearm(self, p, 0);
      t->zero_rc = ax_timer_rearm(NULL, p, 1);
      (void)ax_after(self, 150 * AX_NSEC_PER_MSEC, MSG_FINISH, NULL, 0, NULL);
    }
    return 0;
  case MSG_FINISH:
    return AX_STOP;
  default:
    t->bad++;
    return 0;
  }
}

START_TEST(test_actor_timer_rearm_idle_timeout) {
  idle_t t;
  memset(&t, 0, sizeof t);
  ax_rt_t *rt = run_one(idle_behaviour, idle_init, &t);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(t.bad, 0);
  ck_assert_int_eq(t.rearm_bad, 0);
  ck_assert_int_ge(t.ticks, 10);
  ck_assert_int_eq(t.idles, 1);
  ck_assert_msg(t.idle_at - t.last_rearm >= 100 * AX_NSEC_PER_MSEC,
                "the idle timeout fired %lld ns after the last rearm",
                (long long)(t.idle_at - t.last_rearm));
  ck_assert_int_eq(t.after_rc, -ENOENT);
  ck_assert_int_eq(t.neg_rc, -EINVAL);
  ck_assert_int_eq(t.unknown_rc, -ENOENT);
  ck_assert_int_eq(t.every_zero_rc, -EINVAL);
  ck_assert_int_eq(t.zero_rc, -EINVAL);
}
END_TEST

/* A rearm drops a message of the timer that already waits in the mailbox:
 * a fiber lets its one-shot fire while it sleeps (the message waits), then
 * rearms it for 50 ms.  One message comes, 50 ms or more after the rearm. */
static int rearm_queued_fiber(ax_actor_t *self, void *arg) {
  fib_t *f = arg;
  uint64_t id;
  FCHECK_EQ(f, ax_after(self, AX_NSEC_PER_MSEC, MSG_A, NULL, 0, &id), 0);
  FCHECK_EQ(f, ax_sleep(self, 30 * AX_NSEC_PER_MSEC), 0); /* MSG_A fires and waits */
  int64_t t0 = ax_now();
  FCHECK_EQ(f, ax_timer_rearm(self, id, 50 * AX_NSEC_PER_MSEC), 0);
  const ax_msg_t *m = NULL;
  FCHECK_EQ(f, ax_recv_type(self, MSG_A, ax_deadline(5 * AX_NSEC_PER_SEC), &m), 0);
  int64_t waited = ax_now() - t0;
  if (waited < 50 * AX_NSEC_PER_MSEC)
    fib_fail(f, __LINE__, "the message came %lld ns after the rearm: the stale one",
             (long long)waited);
  /* And only that one. */
  FCHECK_EQ(f, ax_recv_type(self, MSG_A, ax_deadline(100 * AX_NSEC_PER_MSEC), &m), -ETIMEDOUT);
  /* Handled: the one-shot is gone. */
  FCHECK_EQ(f, ax_timer_rearm(self, id, AX_NSEC_PER_MSEC), -ENOENT);
  return 0;
}

/* The same for a cancel: a one-shot that fired while the fiber slept is
 * cancelled (0), and its message never comes. */
static int cancel_queued_fiber(ax_actor_t *self, void *arg) {
  fib_t *f = arg;
  uint64_t id;
  FCHECK_EQ(f, ax_after(self, AX_NSEC_PER_MSEC, MSG_A, NULL, 0, &id), 0);
  FCHECK_EQ(f, ax_sleep(self, 30 * AX_NSEC_PER_MSEC), 0);
  FCHECK_EQ(f, ax_timer_cancel(self, id), 0);
  const ax_msg_t *m = NULL;
  FCHECK_EQ(f, ax_recv_type(self, MSG_A, ax_deadline(100 * AX_NSEC_PER_MSEC), &m), -ETIMEDOUT);
  FCHECK_EQ(f, ax_timer_cancel(self, id), -ENOENT);
  return 0;
}

START_TEST(test_actor_timer_rearm_drops_queued) {
  ax_rt_t *rt = rt_new();
  fib_t f;
  fib_init(&f);
  spawn_fiber(rt, rearm_queued_fiber, &f, 1, 0);
  fib_wait(&f, 10000);
  fib_t g;
  fib_init(&g);
  spawn_fiber(rt, cancel_queued_fiber, &g, 0, 0);
  fib_wait(&g, 10000);
  test_rt_stop_join_free(rt);
}
END_TEST

/* More periodic timers on one core than it can tick: each actor sees
 * fewer ticks, and the core's other actors still get their turns.  A
 * timer whose tick was not handled yet was put back in the heap at every
 * period all the same: 200,000 actors ticking every 10 ms kept a core in
 * timer passes, almost no tick was handled, and a neighbour's messages
 * waited seconds (a newcomer).  Now such a timer waits for its tick. */
enum { MSG_OVER_TICK = AX_MSG_USER + 80, MSG_OVER_PROBE, OVER_PROBES = 50 };
static _Atomic uint64_t over_ticks;
static _Atomic int over_probed;
static _Atomic int64_t over_lat_max;

static void over_init(ax_actor_t *self) {
  ck_assert_int_eq(ax_every(self, AX_NSEC_PER_MSEC, MSG_OVER_TICK, NULL, 0, NULL), 0);
}

static int over_ticker(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_OVER_TICK)
    atomic_fetch_add_explicit(&over_ticks, 1, memory_order_relaxed);
  return 0;
}

static int over_probe(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type != MSG_OVER_PROBE)
    return 0;
  int64_t sent;
  memcpy(&sent, m->data, sizeof sent);
  int64_t lat = ax_now() - sent;
  if (lat > atomic_load(&over_lat_max))
    atomic_store(&over_lat_max, lat);
  atomic_fetch_add(&over_probed, 1);
  return 0;
}

START_TEST(test_actor_timer_every_overloaded_core) {
  int n = TEST_SANITIZED ? 20000 : 100000;
  atomic_store(&over_ticks, 0);
  atomic_store(&over_probed, 0);
  atomic_store(&over_lat_max, 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_ref_t probe = test_spawn(rt, over_probe, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  for (int k = 0; k < n; k++)
    (void)test_spawn(rt, over_ticker, NULL, AX_PLACE_CORE, 0, over_init, NULL);
  test_rt_start(rt);
  for (int k = 0; k < OVER_PROBES; k++) {
    int64_t now = ax_now();
    test_send(probe, MSG_OVER_PROBE, &now, sizeof now);
    test_sleep_ms(20);
  }
  TEST_WAIT_UNTIL(atomic_load(&over_probed) == OVER_PROBES, 30000);
  /* n ticks a millisecond were asked for: far more than a core handles,
   * yet it handles ticks all along and the probe waits at most a few of
   * its rounds through every ticker (tens of ms here). */
  ck_assert_uint_gt(atomic_load(&over_ticks), (uint64_t)n);
  ck_assert_msg(atomic_load(&over_lat_max) < 5 * AX_NSEC_PER_SEC,
                "a neighbour's message waited %lld ms", (long long)(atomic_load(&over_lat_max) / 1000000));
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *actor_timer_suite(void) {
  Suite *suite = suite_create("actor_timer");

  TCase *tc = tcase_create("after");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_actor_timer_after_once);
  tcase_add_test(tc, test_actor_timer_after_order);
  tcase_add_test(tc, test_actor_timer_many);
  tcase_add_test(tc, test_actor_timer_after_many_actors);
  suite_add_tcase(suite, tc);

  tc = tcase_create("every");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_actor_timer_every_cancel);
  tcase_add_test(tc, test_actor_timer_every_no_backlog);
  tcase_add_test(tc, test_actor_timer_every_overloaded_core);
  tcase_add_test(tc, test_actor_timer_errors);
  suite_add_tcase(suite, tc);

  tc = tcase_create("rearm");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_actor_timer_rearm_idle_timeout);
  tcase_add_test(tc, test_actor_timer_rearm_drops_queued);
  suite_add_tcase(suite, tc);

  tc = tcase_create("stop");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_actor_timer_cancelled_on_stop);
  tcase_add_test(tc, test_actor_timer_pending_at_shutdown);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(actor_timer_suite());
}
