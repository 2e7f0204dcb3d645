/* Check suite for monitors: DOWN messages for every way an actor stops, dead targets, demonitor, races across cores. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "axon_test.h"

enum {
  MSG_GO = AX_MSG_USER, /* monitor the target (and maybe stop it) */
  MSG_STOP,             /* the target returns AX_STOP */
  MSG_FAIL,             /* the target returns the int in the payload */
  MSG_FINISH,           /* the watcher's quiet period is over */
  MSG_BUSY,             /* the watcher stays busy, then demonitors */
  MSG_PING,
};

/* How a watcher acts on MSG_GO. */
enum {
  WATCH_ONLY = 0,      /* monitor and wait */
  WATCH_AND_STOP = 1,  /* monitor, then ax_stop(target, stop_reason) */
  WATCH_TWICE = 2,     /* two monitors of the same target */
  WATCH_DEMONITOR = 3, /* monitor, then ax_demonitor at once */
  WATCH_BUSY = 4,      /* monitor; MSG_BUSY demonitors later */
};

/* A watcher: monitors `target` on MSG_GO; after `expect` DOWN messages it
 * waits `quiet_ms` more (to catch duplicates), then stops.  The test thread
 * reads the plain fields after ax_rt_join(). */
typedef struct watcher {
  ax_ref_t target;
  int mode;
  int stop_reason;
  int expect;
  int quiet_ms;
  uint64_t ids[2];
  int monitor_rc[2];
  int demonitor_rc, demonitor_again_rc, demonitor_late_rc;
  atomic_int monitoring; /* set once the monitors are in place */
  atomic_int downs;
  ax_down_t down[4];
  int bad;
  bool finishing;
  /* MSG_BUSY: spin until *target_gone, then demonitor ids[0]. */
  atomic_int *target_gone;
  atomic_int in_busy; /* MSG_BUSY is being handled */
  int busy_demonitor_rc;
} watcher_t;

static int watcher_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  watcher_t *w = ax_state(self);
  switch (msg->type) {
  case MSG_GO:
    w->monitor_rc[0] = ax_monitor(self, w->target, &w->ids[0]);
    if (w->mode == WATCH_TWICE)
      w->monitor_rc[1] = ax_monitor(self, w->target, &w->ids[1]);
    if (w->mode == WATCH_DEMONITOR) {
      w->demonitor_rc = ax_demonitor(self, w->ids[0]);
      w->demonitor_again_rc = ax_demonitor(self, w->ids[0]);
    }
    if (w->mode == WATCH_AND_STOP && ax_stop(w->target, w->stop_reason) != 0)
      w->bad++;
    atomic_store(&w->monitoring, 1);
    if (w->expect == 0 && w->mode != WATCH_BUSY && ax_after(self, (int64_t)w->quiet_ms * AX_NSEC_PER_MSEC, MSG_FINISH,
                                   NULL, 0, NULL) != 0)
      w->bad++;
    return 0;
  case AX_MSG_DOWN: {
    int n = atomic_load(&w->downs);
    ax_down_t d;
    if (msg->size != sizeof d || msg->data == NULL) {
      w->bad++;
      return 0;
    }
    memcpy(&d, msg->data, sizeof d);
    if (n < 4)
      w->down[n] = d;
    atomic_store(&w->downs, n + 1);
    if (n + 1 == w->expect && !w->finishing) {
      w->finishing = true;
      /* Delivered: the monitor is gone. */
      w->demonitor_late_rc = ax_demonitor(self, d.id);
      if (ax_after(self, (int64_t)w->quiet_ms * AX_NSEC_PER_MSEC, MSG_FINISH, NULL, 0, NULL) !=
          0)
        w->bad++;
    }
    return 0;
  }
  case MSG_BUSY: {
    atomic_store(&w->in_busy, 1);
    int64_t deadline = ax_now() + 10 * AX_NSEC_PER_SEC;
    while (!atomic_load(w->target_gone) && ax_now() < deadline) {
    }
    /* The target is gone and its DOWN message is probably queued behind
     * this one; it has certainly not been delivered yet. */
    test_spin_ms(30);
    w->busy_demonitor_rc = ax_demonitor(self, w->ids[0]);
    if (ax_after(self, (int64_t)w->quiet_ms * AX_NSEC_PER_MSEC, MSG_FINISH, NULL, 0, NULL) != 0)
      w->bad++;
    return 0;
  }
  case MSG_FINISH:
    return AX_STOP;
  default:
    w->bad++;
    return 0;
  }
}

/* A target: stops as told; its terminate hook raises `gone`. */
typedef struct target {
  atomic_int gone;
  atomic_int reason;
} target_t;

static int target_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  if (msg->type == MSG_STOP)
    return AX_STOP;
  if (msg->type == MSG_FAIL) {
    int code;
    memcpy(&code, msg->data, sizeof code);
    return code;
  }
  return 0;
}

static void target_terminate(ax_actor_t *self, int reason) {
  target_t *t = ax_state(self);
  atomic_store(&t->reason, reason);
  atomic_store(&t->gone, 1);
}

static ax_ref_t spawn_target(ax_rt_t *rt, target_t *t, unsigned core) {
  atomic_init(&t->gone, 0);
  atomic_init(&t->reason, 12345);
  return test_spawn(rt, target_behaviour, t, AX_PLACE_CORE, core, NULL, target_terminate);
}

static ax_ref_t spawn_watcher(ax_rt_t *rt, watcher_t *w, ax_ref_t target, unsigned core) {
  w->target = target;
  if (w->quiet_ms == 0)
    w->quiet_ms = 30;
  return test_spawn(rt, watcher_behaviour, w, AX_PLACE_CORE, core, NULL, NULL);
}

/* Checks that w saw exactly one DOWN for its first monitor with `reason`. */
static void assert_one_down(const watcher_t *w, int reason) {
  ck_assert_int_eq(w->bad, 0);
  ck_assert_int_eq(w->monitor_rc[0], 0);
  ck_assert_int_eq(atomic_load(&w->downs), 1);
  ck_assert(w->down[0].ref == w->target);
  ck_assert(w->down[0].id == w->ids[0]);
  ck_assert_int_eq(w->down[0].reason, reason);
  ck_assert_int_eq(w->demonitor_late_rc, -ENOENT);
}

/* ------------------------------------------------------------------------ */
/* DOWN for every way of stopping                                            */

START_TEST(test_monitor_down_reasons) {
  enum { CASES = 6 };
  ax_rt_t *rt = test_rt_new(2, 0);
  target_t targets[CASES];
  watcher_t watchers[CASES];
  memset(watchers, 0, sizeof watchers);
  ax_ref_t t[CASES], w[CASES];
  for (int i = 0; i < CASES; i++) {
    /* Cross-core pairs, and one on the same core (case 5). */
    t[i] = spawn_target(rt, &targets[i], i == 5 ? 0 : 1);
    watchers[i].expect = 1;
    w[i] = spawn_watcher(rt, &watchers[i], t[i], 0);
  }
  watchers[4].mode = WATCH_AND_STOP;
  watchers[4].stop_reason = -ECANCELED;
  test_rt_start(rt);
  for (int i = 0; i < CASES; i++)
    test_send(w[i], MSG_GO, NULL, 0);
  for (int i = 0; i < CASES; i++)
    TEST_WAIT_UNTIL(atomic_load(&watchers[i].monitoring) == 1, 10000);

  test_send(t[0], MSG_STOP, NULL, 0);
  int code = -EPIPE;
  test_send(t[1], MSG_FAIL, &code, sizeof code);
  ck_assert_int_eq(ax_stop(t[2], 0), 0);
  ck_assert_int_eq(ax_stop(t[3], -ETIMEDOUT), 0);
  /* t[4] is stopped by its watcher. */
  test_send(t[5], MSG_STOP, NULL, 0);

  test_rt_join_free(rt);
  int want[CASES] = {AX_REASON_NORMAL, -EPIPE,     AX_REASON_STOPPED,
                     -ETIMEDOUT,       -ECANCELED, AX_REASON_NORMAL};
  for (int i = 0; i < CASES; i++) {
    assert_one_down(&watchers[i], want[i]);
    ck_assert_int_eq(atomic_load(&targets[i].reason), want[i]);
  }
}
END_TEST

START_TEST(test_monitor_dead_target) {
  /* Monitoring a reference that names no live actor: DOWN at once, with
   * reason -ESRCH. */
  ax_rt_t *rt = test_rt_new(2, 0);
  target_t gone_target;
  ax_ref_t gone = spawn_target(rt, &gone_target, 1);
  watcher_t watchers[3];
  memset(watchers, 0, sizeof watchers);
  watchers[0].expect = watchers[1].expect = 1;
  ax_ref_t w0 = spawn_watcher(rt, &watchers[0], gone, 0);
  ax_ref_t w1 = spawn_watcher(rt, &watchers[1], (ax_ref_t)0x7357ba5eba11ULL, 1);
  test_rt_start(rt);
  test_send(gone, MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(ax_send(gone, MSG_PING, NULL, 0) == -ESRCH, 10000);
  test_send(w0, MSG_GO, NULL, 0);
  test_send(w1, MSG_GO, NULL, 0);
  test_rt_join_free(rt);
  assert_one_down(&watchers[0], -ESRCH);
  assert_one_down(&watchers[1], -ESRCH);
}
END_TEST

/* Checks the argument errors of ax_monitor and ax_demonitor. */
typedef struct arg_checker {
  int rc[7];
  ax_ref_t port; /* a port's reference: neither monitored nor linked */
} arg_checker_t;

static int arg_checker_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  arg_checker_t *a = ax_state(self);
  uint64_t id = 0;
  a->rc[0] = ax_monitor(self, AX_REF_NONE, &id);
  a->rc[1] = ax_monitor(NULL, ax_self(self), &id);
  a->rc[2] = ax_demonitor(NULL, 1);
  a->rc[3] = ax_demonitor(self, 0xabcdef12345ULL);
  /* A NULL id pointer is allowed (the DOWN comes at once and is dropped
   * with this actor). */
  a->rc[4] = ax_monitor(self, (ax_ref_t)0x7357ba5eba11ULL, NULL);
  a->rc[5] = ax_monitor(self, a->port, &id);
  a->rc[6] = ax_link(self, a->port);
  return AX_STOP;
}

START_TEST(test_monitor_arguments) {
  ax_rt_t *rt = test_rt_new(1, 0);
  arg_checker_t a;
  memset(&a, 0, sizeof a);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  a.port = ax_port_ref(port);
  ax_ref_t ref = test_spawn(rt, arg_checker_behaviour, &a, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(ref, MSG_GO, NULL, 0);
  ck_assert_int_eq(ax_rt_run(rt), 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  ck_assert_int_eq(a.rc[5], -EINVAL);
  ck_assert_int_eq(a.rc[6], -EINVAL);
  ck_assert_int_eq(a.rc[0], -EINVAL);
  ck_assert_int_eq(a.rc[1], -EINVAL);
  ck_assert_int_eq(a.rc[2], -EINVAL);
  ck_assert_int_eq(a.rc[3], -ENOENT);
  ck_assert_int_eq(a.rc[4], 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Demonitor                                                                 */

START_TEST(test_monitor_demonitor) {
  ax_rt_t *rt = test_rt_new(2, 0);
  target_t target;
  ax_ref_t t = spawn_target(rt, &target, 1);
  watcher_t w;
  memset(&w, 0, sizeof w);
  w.mode = WATCH_DEMONITOR;
  w.expect = 0;
  w.quiet_ms = 150;
  ax_ref_t wr = spawn_watcher(rt, &w, t, 0);
  test_rt_start(rt);
  test_send(wr, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&w.monitoring) == 1, 10000);
  test_send(t, MSG_STOP, NULL, 0);
  test_rt_join_free(rt);
  ck_assert_int_eq(w.bad, 0);
  ck_assert_int_eq(w.monitor_rc[0], 0);
  ck_assert_int_eq(w.demonitor_rc, 0);
  ck_assert_int_eq(w.demonitor_again_rc, -ENOENT);
  ck_assert_int_eq(atomic_load(&w.downs), 0);
  ck_assert_int_eq(atomic_load(&target.gone), 1);
}
END_TEST

START_TEST(test_monitor_demonitor_queued_down) {
  /* The watcher is busy while its target stops, so the DOWN message is
   * waiting (not delivered) when it demonitors: the demonitor succeeds and
   * the DOWN message is never delivered. */
  enum { ROUNDS = 5 };
  for (int round = 0; round < ROUNDS; round++) {
    ax_rt_t *rt = test_rt_new(2, 0);
    /* The target's core must stay free while the watcher's is busy. */
    target_t target;
    ax_ref_t t = spawn_target(rt, &target, 1);
    watcher_t w;
    memset(&w, 0, sizeof w);
    w.mode = WATCH_BUSY;
    w.expect = 0;
    w.quiet_ms = 100;
    w.target_gone = &target.gone;
    ax_ref_t wr = spawn_watcher(rt, &w, t, 0);
    test_rt_start(rt);
    test_send(wr, MSG_GO, NULL, 0);
    TEST_WAIT_UNTIL(atomic_load(&w.monitoring) == 1, 10000);
    test_send(wr, MSG_BUSY, NULL, 0);
    /* Messages from different senders (this thread's MSG_BUSY, the DOWN
     * from the target's core) have no order: wait until the watcher is
     * busy, then stop the target. */
    TEST_WAIT_UNTIL(atomic_load(&w.in_busy) == 1, 10000);
    test_sleep_ms(round); /* vary the moment of the stop a little */
    ck_assert_int_eq(ax_stop(t, 0), 0);
    test_rt_join_free(rt);
    ck_assert_int_eq(w.bad, 0);
    ck_assert_int_eq(w.monitor_rc[0], 0);
    ck_assert_int_eq(atomic_load(&target.gone), 1);
    ck_assert_int_eq(w.busy_demonitor_rc, 0);
    ck_assert_msg(atomic_load(&w.downs) == 0, "round %d: DOWN delivered after ax_demonitor",
                  round);
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Several monitors, races, watchers that die first                          */

START_TEST(test_monitor_multiple) {
  ax_rt_t *rt = test_rt_new(2, 0);
  target_t target;
  ax_ref_t t = spawn_target(rt, &target, 1);
  watcher_t twice, once;
  memset(&twice, 0, sizeof twice);
  memset(&once, 0, sizeof once);
  twice.mode = WATCH_TWICE;
  twice.expect = 2;
  once.expect = 1;
  ax_ref_t w1 = spawn_watcher(rt, &twice, t, 0);
  ax_ref_t w2 = spawn_watcher(rt, &once, t, 1);
  test_rt_start(rt);
  test_send(w1, MSG_GO, NULL, 0);
  test_send(w2, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&twice.monitoring) == 1, 10000);
  TEST_WAIT_UNTIL(atomic_load(&once.monitoring) == 1, 10000);
  int code = -ENOTCONN;
  test_send(t, MSG_FAIL, &code, sizeof code);
  test_rt_join_free(rt);

  assert_one_down(&once, -ENOTCONN);
  ck_assert_int_eq(twice.bad, 0);
  ck_assert_int_eq(twice.monitor_rc[0], 0);
  ck_assert_int_eq(twice.monitor_rc[1], 0);
  ck_assert(twice.ids[0] != twice.ids[1]);
  ck_assert_int_eq(atomic_load(&twice.downs), 2);
  /* One DOWN per monitor, each with its own id. */
  ck_assert(twice.down[0].id != twice.down[1].id);
  for (int i = 0; i < 2; i++) {
    ck_assert(twice.down[i].id == twice.ids[0] || twice.down[i].id == twice.ids[1]);
    ck_assert(twice.down[i].ref == t);
    ck_assert_int_eq(twice.down[i].reason, -ENOTCONN);
  }
}
END_TEST

START_TEST(test_monitor_race_cross_core) {
  /* Targets on one core stop at the moment their watchers on the other
   * core monitor them: each watcher gets exactly one DOWN, either with the
   * target's reason (monitored in time) or -ESRCH (too late). */
  int pairs = (int)test_scaled(400);
  ax_rt_t *rt = test_rt_new(2, 0);
  target_t *targets = calloc((size_t)pairs, sizeof *targets);
  watcher_t *watchers = calloc((size_t)pairs, sizeof *watchers);
  ax_ref_t *t = calloc((size_t)pairs, sizeof *t);
  ax_ref_t *w = calloc((size_t)pairs, sizeof *w);
  ck_assert(targets != NULL && watchers != NULL && t != NULL && w != NULL);
  for (int i = 0; i < pairs; i++) {
    t[i] = spawn_target(rt, &targets[i], 1);
    watchers[i].expect = 1;
    watchers[i].quiet_ms = 20;
    w[i] = spawn_watcher(rt, &watchers[i], t[i], 0);
  }
  test_rt_start(rt);
  int code = -EIO;
  for (int i = 0; i < pairs; i++) {
    if (i % 2 == 0) {
      test_send(w[i], MSG_GO, NULL, 0);
      test_send(t[i], MSG_FAIL, &code, sizeof code);
    } else {
      test_send(t[i], MSG_FAIL, &code, sizeof code);
      test_send(w[i], MSG_GO, NULL, 0);
    }
  }
  test_rt_join_free(rt);
  int in_time = 0;
  for (int i = 0; i < pairs; i++) {
    const watcher_t *wi = &watchers[i];
    ck_assert_int_eq(wi->bad, 0);
    ck_assert_int_eq(wi->monitor_rc[0], 0);
    ck_assert_msg(atomic_load(&wi->downs) == 1, "pair %d: %d DOWN messages", i,
                  atomic_load(&wi->downs));
    ck_assert(wi->down[0].ref == t[i]);
    ck_assert(wi->down[0].id == wi->ids[0]);
    ck_assert_msg(wi->down[0].reason == -EIO || wi->down[0].reason == -ESRCH,
                  "pair %d: reason %d", i, wi->down[0].reason);
    in_time += wi->down[0].reason == -EIO;
    ck_assert_int_eq(atomic_load(&targets[i].reason), -EIO);
  }
  (void)in_time; /* how many were in time depends on scheduling */
  free(targets);
  free(watchers);
  free(t);
  free(w);
}
END_TEST

START_TEST(test_monitor_watchers_stop_first) {
  /* Many watchers monitor one target, then stop; the target stops later.
   * The DOWN messages have nowhere to go: no crash, nothing leaked. */
  enum { WATCHERS = 100 };
  ax_rt_t *rt = test_rt_new(2, 0);
  target_t target;
  ax_ref_t t = spawn_target(rt, &target, 1);
  watcher_t *watchers = calloc(WATCHERS, sizeof *watchers);
  ck_assert_ptr_nonnull(watchers);
  ax_ref_t refs[WATCHERS];
  for (int i = 0; i < WATCHERS; i++) {
    watchers[i].expect = 0; /* stop after the quiet period */
    watchers[i].quiet_ms = 1;
    refs[i] = spawn_watcher(rt, &watchers[i], t, (unsigned)i % 2);
  }
  test_rt_start(rt);
  for (int i = 0; i < WATCHERS; i++)
    test_send(refs[i], MSG_GO, NULL, 0);
  for (int i = 0; i < WATCHERS; i++)
    TEST_WAIT_UNTIL(ax_send(refs[i], MSG_PING, NULL, 0) == -ESRCH, 10000);
  test_send(t, MSG_STOP, NULL, 0);
  test_rt_join_free(rt);
  for (int i = 0; i < WATCHERS; i++) {
    ck_assert_int_eq(watchers[i].monitor_rc[0], 0);
    ck_assert_int_eq(atomic_load(&watchers[i].downs), 0);
  }
  ck_assert_int_eq(atomic_load(&target.reason), AX_REASON_NORMAL);
  free(watchers);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Spawn with a monitor                                                      */

enum { MSG_SPAWN = AX_MSG_USER + 100 };

typedef struct spawner {
  int rounds;
  _Atomic int downs;       /* DOWNs received */
  _Atomic int wrong;       /* DOWNs with another reason, ref or id */
  _Atomic int spawn_fails;
  ax_ref_t child;
  uint64_t id;
} spawner_t;

/* The child fails in its init hook, before any message: a monitor taken
 * after ax_spawn returns often finds it gone (-ESRCH, reason lost). */
static void failing_init(ax_actor_t *self) { ax_stop(ax_self(self), -EIO); }

static int never_called(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  return 0;
}

static int spawner_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  spawner_t *sp = ax_state(self);
  if (m->type == MSG_SPAWN) {
    ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = 1, .init = failing_init,
                         .monitor = self, .monitor_id = &sp->id};
    if (ax_spawn(ax_actor_rt(self), never_called, NULL, &o, &sp->child) != 0)
      atomic_fetch_add(&sp->spawn_fails, 1);
    return 0;
  }
  if (m->type == AX_MSG_DOWN) {
    const ax_down_t *d = m->data;
    if (d->reason != -EIO || d->ref != sp->child || d->id != sp->id || sp->id == 0)
      atomic_fetch_add(&sp->wrong, 1);
    if (atomic_fetch_add(&sp->downs, 1) + 1 < sp->rounds)
      return ax_send(ax_self(self), MSG_SPAWN, NULL, 0) == 0 ? 0 : -EIO;
  }
  return 0;
}

/* ax_spawn with opts.monitor: the DOWN of a child that dies at once, on
 * another core, always comes, with the child's own reason, every time. */
START_TEST(test_monitor_spawn_atomic) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  spawner_t sp;
  memset(&sp, 0, sizeof sp);
  sp.rounds = (int)test_scaled(2000);
  ax_ref_t a = test_spawn(rt, spawner_behaviour, &sp, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(a, MSG_SPAWN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&sp.downs) == sp.rounds, 30000);
  ck_assert_int_eq(atomic_load(&sp.wrong), 0);
  ck_assert_int_eq(atomic_load(&sp.spawn_fails), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Misuse: a monitor of another runtime is -EINVAL, and nothing is spawned. */
static _Atomic int other_rc = 1;
static ax_rt_t *other_rt;
static _Atomic int other_monitor_rc = 1, other_link_rc = 1;
static ax_ref_t other_actor; /* an actor of other_rt */
static int cross_spawner(ax_actor_t *self, const ax_msg_t *m) {
  (void)m;
  ax_spawn_opts_t o = {.monitor = self};
  atomic_store(&other_rc, ax_spawn(other_rt, never_called, NULL, &o, NULL));
  /* ax_monitor and ax_link of an actor of another runtime too: the target
   * kept a DOWN made from this runtime's pools, which outlived them (a use
   * after free at the target's death, once this runtime was freed). */
  uint64_t id;
  atomic_store(&other_monitor_rc, ax_monitor(self, other_actor, &id));
  atomic_store(&other_link_rc, ax_link(self, other_actor));
  return 0;
}

START_TEST(test_monitor_spawn_other_runtime) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  other_rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  other_actor = test_spawn(other_rt, never_called, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, cross_spawner, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(a, MSG_SPAWN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&other_link_rc) != 1, 10000);
  ck_assert_int_eq(atomic_load(&other_rc), -EINVAL);
  ck_assert_int_eq(atomic_load(&other_monitor_rc), -EINVAL);
  ck_assert_int_eq(atomic_load(&other_link_rc), -EINVAL);
  ax_core_stats_t st;
  ck_assert_int_eq(ax_rt_stats_total(other_rt, &st), 0);
  ck_assert_uint_eq(st.spawned, 1); /* other_actor only */
  test_rt_stop_join_free(rt);
  ck_assert_int_eq(ax_rt_free(other_rt), 0);
}
END_TEST

/* An actor on core 0 spawns a target on core 1, monitors it twice and
 * stops it with -EIO: the target was alive when both monitors were asked
 * for, so both DOWNs say -EIO.  The requests travel on the ring between
 * the cores while ax_stop reaches the target at once; a request still on
 * the ring when the target died was answered with -ESRCH ("did not
 * exist"). */
enum { TWICE_ROUNDS = 3000, TWICE_BATCH = 50, MSG_TWICE = AX_MSG_USER + 40 };
static _Atomic long twice_eio, twice_other, twice_downs;
static long twice_started;

static int twice_target(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  return 0;
}

static int twice_watcher(ax_actor_t *self, const ax_msg_t *m) {
  /* A batch at a time (the next once its DOWNs are in), so that the ring
   * to core 1 never fills: a stop still overtakes what waits for room. */
  if (m->type == MSG_TWICE ||
      (m->type == AX_MSG_DOWN && atomic_load(&twice_downs) + 1 == 2 * twice_started &&
       twice_started < TWICE_ROUNDS)) {
    ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 1};
    twice_started += TWICE_BATCH;
    for (int i = 0; i < TWICE_BATCH; i++) {
      ax_ref_t t;
      uint64_t id;
      if (ax_spawn(ax_actor_rt(self), twice_target, NULL, &so, &t) != 0 ||
          ax_monitor(self, t, &id) != 0 || ax_monitor(self, t, &id) != 0 ||
          ax_stop(t, -EIO) != 0)
        atomic_fetch_add(&twice_other, 1);
    }
  }
  if (m->type == AX_MSG_DOWN) {
    const ax_down_t *d = m->data;
    atomic_fetch_add(d->reason == -EIO ? &twice_eio : &twice_other, 1);
    atomic_fetch_add(&twice_downs, 1);
  }
  return 0;
}

START_TEST(test_monitor_twice_then_stop_cross_core) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_ref_t w = test_spawn(rt, twice_watcher, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_rt_start(rt);
  test_send(w, MSG_TWICE, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&twice_downs) == 2 * TWICE_ROUNDS, 30000);
  long other = atomic_load(&twice_other), eio = atomic_load(&twice_eio);
  ck_assert_int_eq(other, 0);
  ck_assert_int_eq(eio, 2 * TWICE_ROUNDS);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Children spawned with a monitor onto core 1 while an actor of core 1
 * monitors actors of its own in a loop: the spawn's record is made by core
 * 0 (ThreadSanitizer sees any write of core 1's state from there); half of
 * those monitors are then removed (found on the child's list), and exactly
 * the other half bring a DOWN when the children stop. */
enum { XS_CHILDREN = 1000, MSG_XS_GO = AX_MSG_USER + 41, MSG_XS_CHURN };
static _Atomic int xs_downs, xs_bad, xs_churned;

static int xs_churner(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_XS_CHURN) {
    ax_spawn_opts_t lo = {.placement = AX_PLACE_LOCAL};
    for (int i = 0; i < XS_CHILDREN; i++) {
      ax_ref_t t;
      uint64_t id;
      if (ax_spawn(ax_actor_rt(self), test_idle_behaviour, NULL, &lo, &t) != 0 ||
          ax_monitor(self, t, &id) != 0 || ax_demonitor(self, id) != 0 || ax_stop(t, 0) != 0)
        atomic_fetch_add(&xs_bad, 1);
    }
    atomic_store(&xs_churned, 1);
  }
  return 0;
}

static int xs_spawner(ax_actor_t *self, const ax_msg_t *m) {
  static ax_ref_t kids[XS_CHILDREN];
  static uint64_t ids[XS_CHILDREN];
  if (m->type == MSG_XS_GO) {
    for (int i = 0; i < XS_CHILDREN; i++) {
      ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = 1, .monitor = self,
                           .monitor_id = &ids[i]};
      if (ax_spawn(ax_actor_rt(self), test_idle_behaviour, NULL, &o, &kids[i]) != 0)
        atomic_fetch_add(&xs_bad, 1);
    }
    for (int i = 0; i < XS_CHILDREN; i += 2)
      if (ax_demonitor(self, ids[i]) != 0)
        atomic_fetch_add(&xs_bad, 1);
    for (int i = 0; i < XS_CHILDREN; i++)
      if (ax_stop(kids[i], 0) != 0)
        atomic_fetch_add(&xs_bad, 1);
  } else if (m->type == AX_MSG_DOWN) {
    const ax_down_t *d = m->data;
    int i = 0;
    while (i < XS_CHILDREN && ids[i] != d->id)
      i++;
    if (i == XS_CHILDREN || i % 2 == 0 || d->ref != kids[i] || d->reason != AX_REASON_STOPPED)
      atomic_fetch_add(&xs_bad, 1);
    atomic_fetch_add(&xs_downs, 1);
  }
  return 0;
}

START_TEST(test_monitor_spawn_cross_core_index) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_ref_t sp = test_spawn(rt, xs_spawner, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  ax_ref_t ch = test_spawn(rt, xs_churner, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);
  test_send(ch, MSG_XS_CHURN, NULL, 0);
  test_send(sp, MSG_XS_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&xs_downs) == XS_CHILDREN / 2 && atomic_load(&xs_churned), 30000);
  test_sleep_ms(50);
  ck_assert_int_eq(atomic_load(&xs_downs), XS_CHILDREN / 2);
  ck_assert_int_eq(atomic_load(&xs_bad), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A DOWN is news of a death: the reference it names fails by the time the
 * watcher reads it.  The watcher (core 1) spawns children on core 0 that
 * stop at once (returning AX_STOP, or by the watcher's ax_stop), and on
 * each DOWN sends to the child, stops it and registers a name for it, then
 * spawns the next one: -ESRCH every time (before, the child's core sent the DOWN before it
 * retired the reference: about 1 send in 1,000 was accepted). */
enum { DR_CHILDREN = 30000, MSG_DR_SPAWN = AX_MSG_USER + 50 };

typedef struct down_ref {
  int spawned, downs;
  int accepted; /* a send, stop or register that did not say -ESRCH */
  int spawn_failed;
  atomic_int done;
} down_ref_t;

static int dr_child(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  return m->type == MSG_STOP ? AX_STOP : 0;
}

static void dr_spawn(ax_actor_t *self, down_ref_t *d) {
  ax_spawn_opts_t o;
  memset(&o, 0, sizeof o);
  o.placement = AX_PLACE_CORE;
  o.core = 0;
  o.monitor = self;
  ax_ref_t c;
  if (ax_spawn(ax_actor_rt(self), dr_child, NULL, &o, &c) != 0) {
    d->spawn_failed++;
    return;
  }
  int i = d->spawned++;
  if (i % 2 == 0)
    (void)ax_send(c, MSG_STOP, NULL, 0);
  else
    (void)ax_stop(c, 0);
}

static int dr_watcher(ax_actor_t *self, const ax_msg_t *m) {
  down_ref_t *d = ax_state(self);
  if (m->type == MSG_DR_SPAWN) {
    dr_spawn(self, d);
    return 0;
  }
  if (m->type == AX_MSG_DOWN) { /* at once: the window was the child's core's next steps */
    ax_down_t down;
    memcpy(&down, m->data, sizeof down);
    int x = 0;
    d->accepted += ax_send(down.ref, MSG_PING, &x, sizeof x) != -ESRCH;
    d->accepted += ax_stop(down.ref, 0) != -ESRCH;
    d->accepted += ax_register(ax_actor_rt(self), "dr-dead", down.ref) != -ESRCH;
    if (++d->downs == DR_CHILDREN)
      atomic_store(&d->done, 1);
    else if (d->spawned < DR_CHILDREN)
      dr_spawn(self, d); /* one child at a time */
  }
  return 0;
}

START_TEST(test_monitor_down_ref_dead) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  static down_ref_t d;
  memset(&d, 0, sizeof d);
  ax_ref_t w = test_spawn(rt, dr_watcher, &d, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);
  test_send(w, MSG_DR_SPAWN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&d.done) == 1, 60000);
  test_rt_stop_join_free(rt);
  ck_assert_int_eq(d.spawn_failed, 0);
  ck_assert_msg(d.accepted == 0, "%d of %d calls with a DOWN's reference did not fail", d.accepted,
                3 * DR_CHILDREN);
}
END_TEST

/* A watcher that stops takes its monitors with it: the target forgets it.
 * Before, a long-lived target kept a record (malloc'd, 88 B) and a ready
 * DOWN for every watcher that had died, until it died itself: what malloc
 * holds grew by about that much per watcher.  (Under a sanitizer malloc's
 * own count is not glibc's: the test then only runs the motions.) */
enum { SHORT_WATCHERS = 5000, MSG_WATCH_AND_GO = AX_MSG_USER + 60 };
static ax_ref_t long_target;
static atomic_int watchers_ended;

static int short_watcher(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type != MSG_WATCH_AND_GO)
    return 0;
  uint64_t id;
  return ax_monitor(self, long_target, &id) == 0 ? AX_STOP : -EIO;
}

static void short_watcher_end(ax_actor_t *self, int reason) {
  (void)self;
  if (reason == AX_REASON_NORMAL)
    atomic_fetch_add(&watchers_ended, 1);
}

static atomic_int long_target_ended;
static void long_target_end(ax_actor_t *self, int reason) {
  (void)self;
  (void)reason;
  atomic_store(&long_target_ended, 1);
}

START_TEST(test_monitor_watcher_death_forgets) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  atomic_store(&watchers_ended, 0);
  atomic_store(&long_target_ended, 0);
  long_target = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_CORE, 1, NULL, long_target_end);
  for (int i = 0; i < SHORT_WATCHERS; i++) {
    ax_ref_t w = test_spawn(rt, short_watcher, NULL, AX_PLACE_CORE, 0, NULL, short_watcher_end);
    test_send(w, MSG_WATCH_AND_GO, NULL, 0);
  }
  TEST_WAIT_UNTIL(atomic_load(&watchers_ended) == SHORT_WATCHERS, 30000);
  test_sleep_ms(TEST_SANITIZED ? 2000 : 300); /* their demonitors reach the target */
  size_t held = mallinfo2().uordblks;
  ck_assert_int_eq(ax_stop(long_target, 0), 0);
  TEST_WAIT_UNTIL(atomic_load(&long_target_ended) == 1, 10000);
  size_t freed = held > mallinfo2().uordblks ? held - mallinfo2().uordblks : 0;
  /* The target's death frees what it still held for its watchers. */
  if (!TEST_SANITIZED)
    ck_assert_msg(freed < SHORT_WATCHERS * 40, "the target held %zu B for %d watchers that had "
                  "stopped", freed, SHORT_WATCHERS);
  test_rt_stop_join_free(rt);
}
END_TEST

/* An actor linked to many that have ended gives their array back: before,
 * a hub once linked to 10^5 short-lived actors kept a 1.5 MB array (and
 * its index) for good.  (Under a sanitizer malloc's own count is not
 * glibc's: the test then only runs the motions.) */
enum { LINKED_MANY = 20000, MSG_LINK_TO = AX_MSG_USER + 61, MSG_LINK_PROBE };
static atomic_int linked_count, linked_ended, link_probed;

static int link_hub(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_LINK_TO) {
    ax_ref_t r;
    memcpy(&r, m->data, sizeof r);
    ck_assert_int_eq(ax_link(self, r), 0);
    atomic_fetch_add(&linked_count, 1);
  } else if (m->type == MSG_LINK_PROBE) {
    atomic_store(&link_probed, 1);
  }
  return 0;
}

static void linked_end(ax_actor_t *self, int reason) {
  (void)self;
  if (reason == AX_REASON_STOPPED)
    atomic_fetch_add(&linked_ended, 1);
}

START_TEST(test_link_set_shrinks) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  atomic_store(&linked_count, 0);
  atomic_store(&linked_ended, 0);
  atomic_store(&link_probed, 0);
  ax_ref_t hub = test_spawn(rt, link_hub, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  test_sleep_ms(10); /* the hub is spawned */
  size_t before = malloc_in_use();
  static ax_ref_t others[LINKED_MANY];
  for (int i = 0; i < LINKED_MANY; i++)
    others[i] = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_CORE, 0, NULL, linked_end);
  for (int i = 0; i < LINKED_MANY; i++)
    test_send(hub, MSG_LINK_TO, &others[i], sizeof others[i]);
  TEST_WAIT_UNTIL(atomic_load(&linked_count) == LINKED_MANY, 30000);
  size_t linked = malloc_in_use();
  for (int i = 0; i < LINKED_MANY; i++)
    ck_assert_int_eq(ax_stop(others[i], 0), 0);
  TEST_WAIT_UNTIL(atomic_load(&linked_ended) == LINKED_MANY, 30000);
  test_send(hub, MSG_LINK_PROBE, NULL, 0); /* after every exit reached the hub */
  TEST_WAIT_UNTIL(atomic_load(&link_probed) == 1, 10000);
  size_t after = malloc_in_use();
  size_t kept = after > before ? after - before : 0;
  if (!TEST_SANITIZED) {
    ck_assert_msg(linked > before + LINKED_MANY * 16, "linking %d actors took %zu B", LINKED_MANY,
                  linked - before);
    ck_assert_msg(kept < LINKED_MANY * 4, "the hub kept %zu B after its %d links ended", kept,
                  LINKED_MANY);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *monitor_suite(void) {
  Suite *suite = suite_create("monitor");

  TCase *tc = tcase_create("down");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_monitor_down_reasons);
  tcase_add_test(tc, test_monitor_dead_target);
  tcase_add_test(tc, test_monitor_arguments);
  suite_add_tcase(suite, tc);

  tc = tcase_create("demonitor");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_monitor_demonitor);
  tcase_add_test(tc, test_monitor_demonitor_queued_down);
  suite_add_tcase(suite, tc);

  tc = tcase_create("many");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_monitor_multiple);
  tcase_add_test(tc, test_monitor_race_cross_core);
  tcase_add_test(tc, test_monitor_watchers_stop_first);
  tcase_add_test(tc, test_monitor_spawn_atomic);
  tcase_add_test(tc, test_monitor_spawn_other_runtime);
  tcase_add_test(tc, test_monitor_twice_then_stop_cross_core);
  tcase_add_test(tc, test_monitor_spawn_cross_core_index);
  tcase_add_test(tc, test_monitor_down_ref_dead);
  tcase_add_test(tc, test_monitor_watcher_death_forgets);
  tcase_add_test(tc, test_link_set_shrinks);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(monitor_suite());
}
