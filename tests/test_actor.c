/* Check suite for actors: spawn and placement, hooks and stop reasons, sending, ownership, ordering, request/reply, names. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "axon/fiber.h"
#include "axon_test.h"

enum {
  MSG_PING = AX_MSG_USER,
  MSG_STOP,    /* return AX_STOP */
  MSG_FAIL,    /* return the int in the payload */
  MSG_DATA,    /* a payload to check */
  MSG_GO,      /* start whatever the actor does */
  MSG_REQUEST,
  MSG_REPLY,
  MSG_SEQ,     /* a test_seq_msg_t */
};

/* What a recording actor saw.  Everything the test thread reads while the
 * runtime runs is atomic. */
typedef struct rec {
  atomic_int handled;
  atomic_int inits;
  atomic_int terminates;
  atomic_int reason;
  atomic_int core;       /* ax_core() in the behaviour */
  atomic_int init_core;  /* ax_core() in the init hook */
  atomic_int term_core;  /* ax_core() in the terminate hook */
  atomic_int violations; /* contract breaches seen inside the actor */
  atomic_uint_fast64_t init_self; /* ax_self() in the init hook */
  atomic_long max_seq;   /* the largest MSG_SEQ seq handled, -1 if none */
  int stop_after;        /* AX_STOP after this many messages; 0 = never */
} rec_t;

static void rec_reset(rec_t *recs, size_t n) {
  memset(recs, 0, n * sizeof *recs);
  for (size_t i = 0; i < n; i++) {
    atomic_init(&recs[i].reason, 12345);
    atomic_init(&recs[i].core, -1);
    atomic_init(&recs[i].init_core, -1);
    atomic_init(&recs[i].term_core, -1);
    atomic_init(&recs[i].max_seq, -1);
  }
}

static void rec_violation(rec_t *r) {
  atomic_fetch_add(&r->violations, 1);
}

static int rec_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  rec_t *r = ax_state(self);
  if (atomic_load(&r->inits) != 1)
    rec_violation(r); /* the init hook did not run first */
  atomic_store(&r->core, (int)ax_core(self));
  int handled = atomic_fetch_add(&r->handled, 1) + 1;
  if (msg->type == MSG_SEQ) {
    test_seq_msg_t m;
    if (msg->size != sizeof m) {
      rec_violation(r);
    } else {
      memcpy(&m, msg->data, sizeof m);
      if ((long)m.seq <= atomic_load(&r->max_seq))
        rec_violation(r); /* out of order */
      atomic_store(&r->max_seq, (long)m.seq);
    }
  }
  if (msg->type == MSG_STOP)
    return AX_STOP;
  if (msg->type == MSG_FAIL) {
    int code;
    memcpy(&code, msg->data, sizeof code);
    return code;
  }
  if (r->stop_after > 0 && handled >= r->stop_after)
    return AX_STOP;
  return 0;
}

static void rec_init(ax_actor_t *self) {
  rec_t *r = ax_state(self);
  if (atomic_load(&r->handled) != 0)
    rec_violation(r);
  atomic_store(&r->init_core, (int)ax_core(self));
  atomic_store(&r->init_self, ax_self(self));
  atomic_fetch_add(&r->inits, 1);
}

static void rec_terminate(ax_actor_t *self, int reason) {
  rec_t *r = ax_state(self);
  atomic_store(&r->term_core, (int)ax_core(self));
  atomic_store(&r->reason, reason);
  atomic_fetch_add(&r->terminates, 1);
}

static ax_ref_t spawn_rec(ax_rt_t *rt, rec_t *r, ax_placement_t placement, unsigned core) {
  return test_spawn(rt, rec_behaviour, r, placement, core, rec_init, rec_terminate);
}

/* Waits until sends to ref fail with -ESRCH (the actor is gone), then checks
 * that they keep failing, and that ax_stop fails the same way. */
static void assert_ref_dead(ax_ref_t ref) {
  TEST_WAIT_UNTIL(ax_send(ref, MSG_PING, NULL, 0) == -ESRCH, 10000);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(ax_send(ref, MSG_PING, "x", 1), -ESRCH);
  ck_assert_int_eq(ax_stop(ref, 0), -ESRCH);
}

/* ------------------------------------------------------------------------ */
/* Spawn and placement                                                       */

/* Spawns a child with AX_PLACE_LOCAL and sends it a message; records the
 * child's core as ax_ref_core() reports it. */
typedef struct spawner {
  rec_t child;
  atomic_int child_core;
  atomic_int my_core;
  atomic_int rc;
} spawner_t;

static int spawner_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  spawner_t *s = ax_state(self);
  ax_spawn_opts_t opts;
  memset(&opts, 0, sizeof opts);
  opts.placement = AX_PLACE_LOCAL;
  opts.init = rec_init;
  opts.terminate = rec_terminate;
  ax_ref_t child = AX_REF_NONE;
  int rc = ax_spawn(ax_actor_rt(self), rec_behaviour, &s->child, &opts, &child);
  if (rc == 0)
    rc = ax_send(child, MSG_PING, NULL, 0);
  atomic_store(&s->my_core, (int)ax_core(self));
  atomic_store(&s->child_core, ax_ref_core(child));
  atomic_store(&s->rc, rc == 0 ? 1 : rc);
  return AX_STOP;
}

START_TEST(test_actor_spawn_placement) {
  enum { CORES = 3 };
  ax_rt_t *rt = test_rt_new(CORES, AX_RT_KEEP_ALIVE);
  rec_t recs[20];
  rec_reset(recs, 20);
  int n = 0;
  ax_ref_t refs[20];
  int want_core[20];

  /* AX_PLACE_CORE: exactly that core. */
  for (unsigned c = 0; c < CORES; c++) {
    refs[n] = spawn_rec(rt, &recs[n], AX_PLACE_CORE, c);
    ck_assert_int_eq(ax_ref_core(refs[n]), (int)c);
    want_core[n++] = (int)c;
  }
  /* AX_PLACE_ANY: round-robin, so six spawns cover every core twice. */
  int per_core[CORES] = {0, 0, 0};
  for (int i = 0; i < 2 * CORES; i++) {
    refs[n] = spawn_rec(rt, &recs[n], AX_PLACE_ANY, 0);
    int core = ax_ref_core(refs[n]);
    ck_assert_int_ge(core, 0);
    ck_assert_int_lt(core, CORES);
    per_core[core]++;
    want_core[n++] = core;
  }
  for (int c = 0; c < CORES; c++)
    ck_assert_int_eq(per_core[c], 2);
  /* AX_PLACE_LOCAL from a thread that is not a core: round-robin too. */
  int local_seen[CORES] = {0, 0, 0};
  for (int i = 0; i < CORES; i++) {
    refs[n] = spawn_rec(rt, &recs[n], AX_PLACE_LOCAL, 0);
    int core = ax_ref_core(refs[n]);
    ck_assert_int_ge(core, 0);
    ck_assert_int_lt(core, CORES);
    local_seen[core]++;
    want_core[n++] = core;
  }
  for (int c = 0; c < CORES; c++)
    ck_assert_int_eq(local_seen[c], 1);
  /* NULL options: the defaults. */
  ax_ref_t dflt = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn(rt, rec_behaviour, &recs[n], NULL, &dflt), 0);
  ck_assert(dflt != AX_REF_NONE);
  ck_assert_int_ge(ax_ref_core(dflt), 0);
  ck_assert_int_lt(ax_ref_core(dflt), CORES);
  atomic_store(&recs[n].inits, 1); /* no init hook: keep rec_behaviour quiet */
  refs[n] = dflt;
  want_core[n++] = ax_ref_core(dflt);
  /* A NULL ref pointer is fine. */
  rec_t unnamed;
  rec_reset(&unnamed, 1);
  atomic_store(&unnamed.inits, 1);
  ck_assert_int_eq(ax_spawn(rt, rec_behaviour, &unnamed, NULL, NULL), 0);

  /* Bad arguments. */
  ax_spawn_opts_t opts;
  memset(&opts, 0, sizeof opts);
  ax_ref_t ref = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn(NULL, rec_behaviour, &recs[0], NULL, &ref), -EINVAL);
  ck_assert_int_eq(ax_spawn(rt, NULL, &recs[0], NULL, &ref), -EINVAL);
  opts.placement = AX_PLACE_CORE;
  opts.core = CORES;
  ck_assert_int_eq(ax_spawn(rt, rec_behaviour, &recs[0], &opts, &ref), -EINVAL);
  opts.core = 1000;
  ck_assert_int_eq(ax_spawn(rt, rec_behaviour, &recs[0], &opts, &ref), -EINVAL);
  opts.placement = (ax_placement_t)42;
  opts.core = 0;
  ck_assert_int_eq(ax_spawn(rt, rec_behaviour, &recs[0], &opts, &ref), -EINVAL);
  ck_assert_int_eq(ax_ref_core(AX_REF_NONE), -EINVAL);

  test_rt_start(rt);
  /* AX_PLACE_LOCAL from an actor: the actor's own core. */
  spawner_t spawners[CORES];
  memset(spawners, 0, sizeof spawners);
  for (unsigned c = 0; c < CORES; c++) {
    rec_reset(&spawners[c].child, 1);
    ax_ref_t s = test_spawn(rt, spawner_behaviour, &spawners[c], AX_PLACE_CORE, c, NULL, NULL);
    test_send(s, MSG_GO, NULL, 0);
  }
  for (int i = 0; i < n; i++)
    test_send(refs[i], MSG_PING, NULL, 0);
  for (unsigned c = 0; c < CORES; c++) {
    TEST_WAIT_UNTIL(atomic_load(&spawners[c].child.handled) == 1, 10000);
    ck_assert_int_eq(atomic_load(&spawners[c].rc), 1);
    ck_assert_int_eq(atomic_load(&spawners[c].my_core), (int)c);
    ck_assert_int_eq(atomic_load(&spawners[c].child_core), (int)c);
    ck_assert_int_eq(atomic_load(&spawners[c].child.core), (int)c);
    ck_assert_int_eq(atomic_load(&spawners[c].child.init_core), (int)c);
  }
  /* Each actor runs on the core its reference names. */
  for (int i = 0; i < n; i++) {
    TEST_WAIT_UNTIL(atomic_load(&recs[i].handled) == 1, 10000);
    ck_assert_int_eq(atomic_load(&recs[i].core), want_core[i]);
    ck_assert_int_eq(atomic_load(&recs[i].violations), 0);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

/* An actor that spawns children with each placement and reports their
 * cores.  With `busy`, it first fills its own run queue past
 * AX_PLACE_SPILL (children that each have a message waiting), spawns one
 * with AX_PLACE_ANY (which starts the count of how long the queue has been
 * long) and keeps its core busy for twice AX_PLACE_SPILL_NS, so that
 * AX_PLACE_ANY must go to the idle core. */
typedef struct placer {
  bool busy;
  ax_ref_t near;        /* for AX_PLACE_NEAR */
  atomic_int any_core;  /* AX_PLACE_ANY */
  atomic_int near_core; /* AX_PLACE_NEAR */
  atomic_int spread[2]; /* two AX_PLACE_SPREAD spawns */
  atomic_int bad_near;  /* ax_spawn with a near of no core: the error */
  atomic_int done;
} placer_t;

static int quick_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

static int place_one(ax_actor_t *self, ax_placement_t placement, ax_ref_t near) {
  ax_spawn_opts_t o;
  memset(&o, 0, sizeof o);
  o.placement = placement;
  o.near = near;
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_spawn(ax_actor_rt(self), test_idle_behaviour, NULL, &o, &ref);
  return rc < 0 ? rc : ax_ref_core(ref);
}

static int spill_queue(ax_actor_t *self) {
  for (int i = 0; i < AX_PLACE_SPILL + 8; i++) {
    ax_spawn_opts_t o = {.placement = AX_PLACE_LOCAL};
    ax_ref_t ref;
    if (ax_spawn(ax_actor_rt(self), test_idle_behaviour, NULL, &o, &ref) < 0 ||
        ax_send(ref, MSG_PING, NULL, 0) < 0)
      return -EIO;
  }
  return 0;
}

static int placer_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  placer_t *p = ax_state(self);
  if (p->busy) {
    if (spill_queue(self) < 0 || place_one(self, AX_PLACE_ANY, AX_REF_NONE) != 0)
      return -EIO;
    test_spin_ns(2 * AX_PLACE_SPILL_NS);
  }
  atomic_store(&p->any_core, place_one(self, AX_PLACE_ANY, AX_REF_NONE));
  atomic_store(&p->near_core, place_one(self, AX_PLACE_NEAR, p->near));
  atomic_store(&p->spread[0], place_one(self, AX_PLACE_SPREAD, AX_REF_NONE));
  atomic_store(&p->spread[1], place_one(self, AX_PLACE_SPREAD, AX_REF_NONE));
  atomic_store(&p->bad_near, place_one(self, AX_PLACE_NEAR, AX_REF_NONE));
  atomic_store(&p->done, 1);
  return AX_STOP;
}

START_TEST(test_actor_spawn_placement_from_actor) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t on1 = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  /* An actor on core 0 with nothing else to run: AX_PLACE_ANY keeps its
   * children next to it; AX_PLACE_NEAR follows the reference; two
   * AX_PLACE_SPREAD spawns land on both cores. */
  placer_t calm = {.busy = false, .near = on1};
  test_send(test_spawn(rt, placer_behaviour, &calm, AX_PLACE_CORE, 0, NULL, NULL), MSG_GO, NULL,
            0);
  TEST_WAIT_UNTIL(atomic_load(&calm.done) == 1, 10000);
  ck_assert_int_eq(atomic_load(&calm.any_core), 0);
  ck_assert_int_eq(atomic_load(&calm.near_core), 1);
  ck_assert_int_ne(atomic_load(&calm.spread[0]), atomic_load(&calm.spread[1]));
  ck_assert_int_eq(atomic_load(&calm.bad_near), -EINVAL);
  /* More than AX_PLACE_SPILL actors waiting on its core, core 1 idle, the
   * queue long for twice AX_PLACE_SPILL_NS: AX_PLACE_ANY spills to core 1
   * (test_actor_spawn_spill_needs_lasting_queue has the other cases). */
  placer_t busy = {.busy = true, .near = on1};
  test_send(test_spawn(rt, placer_behaviour, &busy, AX_PLACE_CORE, 0, NULL, NULL), MSG_GO, NULL,
            0);
  TEST_WAIT_UNTIL(atomic_load(&busy.done) == 1, 10000);
  ck_assert_int_eq(atomic_load(&busy.any_core), 1);
  ck_assert_int_eq(atomic_load(&busy.near_core), 1);

  /* From a thread that is no core: NEAR too; a reference of another
   * runtime or of no core is -EINVAL. */
  ax_spawn_opts_t o;
  memset(&o, 0, sizeof o);
  o.placement = AX_PLACE_NEAR;
  o.near = on1;
  ax_ref_t ref;
  ck_assert_int_eq(ax_spawn(rt, test_idle_behaviour, NULL, &o, &ref), 0);
  ck_assert_int_eq(ax_ref_core(ref), 1);
  /* A fiber takes the same placements (ax_fiber_opts_t.near). */
  ax_fiber_opts_t fo = {.placement = AX_PLACE_NEAR, .near = on1};
  ck_assert_int_eq(ax_spawn_fiber(rt, quick_fiber, NULL, &fo, &ref), 0);
  ck_assert_int_eq(ax_ref_core(ref), 1);
  fo.near = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn_fiber(rt, quick_fiber, NULL, &fo, &ref), -EINVAL);
  ax_rt_t *other = test_rt_new(1, AX_RT_KEEP_ALIVE);
  o.near = test_spawn(other, test_idle_behaviour, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  ck_assert_int_eq(ax_spawn(rt, test_idle_behaviour, NULL, &o, &ref), -EINVAL);
  ck_assert_int_eq(ax_rt_free(other), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

/* AX_PLACE_ANY and the runtime's spill_ns: a run queue of AX_PLACE_SPILL
 * or more is load only once it has lasted spill_ns, counted from the first
 * spawn that found it so and only while it is that long at the end of
 * every round.  The spawner (on core 0; core 1 idle) queues
 * AX_PLACE_SPILL + 8 children with a message each, then spawns with
 * AX_PLACE_ANY as its case says. */
typedef struct spiller {
  int64_t prework;     /* busy this long before anything (a hub that computes first) */
  int64_t between;     /* busy this long between two AX_PLACE_ANY spawns (-1: one spawn) */
  bool again;          /* one spawn, then the same again in a later turn, after a busy
                          2 * AX_PLACE_SPILL_NS (the queue went short between) */
  int phase;
  atomic_int core;     /* where the last AX_PLACE_ANY spawn went */
  atomic_int done;
} spiller_t;

static int spiller_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  spiller_t *p = ax_state(self);
  if (p->phase++ == 0) {
    test_spin_ns(p->prework);
    if (spill_queue(self) < 0)
      return -EIO;
    atomic_store(&p->core, place_one(self, AX_PLACE_ANY, AX_REF_NONE));
    if (p->between >= 0) {
      test_spin_ns(p->between);
      atomic_store(&p->core, place_one(self, AX_PLACE_ANY, AX_REF_NONE));
    }
    if (p->again) /* behind the children: their round ends with the queue short */
      return ax_send(ax_self(self), MSG_GO, NULL, 0) < 0 ? -EIO : 0;
  } else {
    test_spin_ns(2 * AX_PLACE_SPILL_NS);
    if (spill_queue(self) < 0)
      return -EIO;
    atomic_store(&p->core, place_one(self, AX_PLACE_ANY, AX_REF_NONE));
  }
  atomic_store(&p->done, 1);
  return AX_STOP;
}

START_TEST(test_actor_spawn_spill_needs_lasting_queue) {
  static const struct {
    const char *what;
    int64_t spill_ns, prework, between;
    bool again;
    int want; /* the core of the last AX_PLACE_ANY child */
  } cases[] = {
      /* the queue has lasted twice spill_ns: spills */
      {"lasted", 0, 0, 2 * AX_PLACE_SPILL_NS, false, 1},
      {"lasted, spill_ns 1 us", 1000, 0, 2000, false, 1},
      /* the turn has just made it long (a hub that starts its talkers),
       * even after working long itself: stays */
      {"just made", 0, 0, -1, false, 0},
      {"just made after work", 0, 2 * AX_PLACE_SPILL_NS, -1, false, 0},
      /* shorter than spill_ns, or never: stays */
      {"lasted less than 10 s", 10 * 1000000000LL, 0, 2 * AX_PLACE_SPILL_NS, false, 0},
      {"never", -1, 0, 2 * AX_PLACE_SPILL_NS, false, 0},
      /* long, then short at a round's end, long again much later: the
       * count starts anew, so it stays */
      {"long again", 0, 0, -1, true, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    ax_rt_opts_t o = {.cores = 2, .spill_ns = cases[k].spill_ns,
                      .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
    ax_rt_t *rt;
    ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
    test_rt_start(rt);
    (void)test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_CORE, 1, NULL, NULL);
    spiller_t p = {.prework = cases[k].prework, .between = cases[k].between,
                   .again = cases[k].again};
    test_send(test_spawn(rt, spiller_behaviour, &p, AX_PLACE_CORE, 0, NULL, NULL), MSG_GO, NULL,
              0);
    TEST_WAIT_UNTIL(atomic_load(&p.done) == 1, 10000);
    int core = atomic_load(&p.core);
    ck_assert_msg(core == cases[k].want, "%s: the AX_PLACE_ANY child is on core %d, not %d",
                  cases[k].what, core, cases[k].want);
    test_rt_stop_join_free(rt);
  }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Hooks and stop reasons                                                    */

START_TEST(test_actor_init_before_first_message) {
  enum { N = 64 };
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  rec_t recs[N];
  rec_reset(recs, N);
  ax_ref_t refs[N];
  /* Half spawned before the start with messages already queued... */
  for (int i = 0; i < N / 2; i++) {
    refs[i] = spawn_rec(rt, &recs[i], AX_PLACE_ANY, 0);
    for (int k = 0; k < 5; k++)
      test_send(refs[i], MSG_PING, NULL, 0);
  }
  test_rt_start(rt);
  /* ...half after, with a message sent right after the spawn. */
  for (int i = N / 2; i < N; i++) {
    refs[i] = spawn_rec(rt, &recs[i], AX_PLACE_ANY, 0);
    for (int k = 0; k < 5; k++)
      test_send(refs[i], MSG_PING, NULL, 0);
  }
  for (int i = 0; i < N; i++) {
    TEST_WAIT_UNTIL(atomic_load(&recs[i].handled) == 5, 10000);
    ck_assert_int_eq(atomic_load(&recs[i].inits), 1);
    ck_assert_int_eq(atomic_load(&recs[i].violations), 0);
    ck_assert_int_eq(atomic_load(&recs[i].init_core), ax_ref_core(refs[i]));
    ck_assert(atomic_load(&recs[i].init_self) == refs[i]);
    ck_assert_int_eq(atomic_load(&recs[i].terminates), 0);
  }
  test_rt_stop_join_free(rt);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(atomic_load(&recs[i].terminates), 1);
    ck_assert_int_eq(atomic_load(&recs[i].reason), AX_REASON_SHUTDOWN);
    ck_assert_int_eq(atomic_load(&recs[i].term_core), ax_ref_core(refs[i]));
  }
}
END_TEST

START_TEST(test_actor_terminate_reasons) {
  enum { CASES = 6 };
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  rec_t recs[CASES];
  rec_reset(recs, CASES);
  ax_ref_t refs[CASES];
  for (int i = 0; i < CASES; i++)
    refs[i] = spawn_rec(rt, &recs[i], AX_PLACE_CORE, (unsigned)i % 2);
  test_rt_start(rt);
  for (int i = 0; i < CASES; i++)
    test_send(refs[i], MSG_PING, NULL, 0);
  for (int i = 0; i < CASES; i++)
    TEST_WAIT_UNTIL(atomic_load(&recs[i].handled) == 1, 10000);

  /* 0: the behaviour returns AX_STOP. */
  test_send(refs[0], MSG_STOP, NULL, 0);
  /* 1: the behaviour returns a negative code. */
  int code = -EIO;
  test_send(refs[1], MSG_FAIL, &code, sizeof code);
  /* 2: ax_stop with reason 0. */
  ck_assert_int_eq(ax_stop(refs[2], 0), 0);
  /* 3: ax_stop with a negative reason. */
  ck_assert_int_eq(ax_stop(refs[3], -ECONNRESET), 0);
  /* 4: a positive reason is refused and changes nothing. */
  ck_assert_int_eq(ax_stop(refs[4], 1), -EINVAL);
  ck_assert_int_eq(ax_stop(refs[4], AX_REASON_SHUTDOWN), -EINVAL);
  ck_assert_int_eq(ax_stop(AX_REF_NONE, 0), -ESRCH);
  /* 5: a behaviour that returns a code other than those: any negative. */
  code = -1;
  test_send(refs[5], MSG_FAIL, &code, sizeof code);

  int want[CASES] = {AX_REASON_NORMAL, -EIO, AX_REASON_STOPPED, -ECONNRESET, 0, -1};
  for (int i = 0; i < CASES; i++) {
    if (i == 4)
      continue;
    TEST_WAIT_UNTIL(atomic_load(&recs[i].terminates) == 1, 10000);
    ck_assert_int_eq(atomic_load(&recs[i].reason), want[i]);
    ck_assert_int_eq(atomic_load(&recs[i].term_core), i % 2);
    assert_ref_dead(refs[i]);
  }
  /* The actor that was refused a positive reason still works. */
  test_send(refs[4], MSG_PING, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&recs[4].handled) == 2, 10000);
  ck_assert_int_eq(atomic_load(&recs[4].terminates), 0);
  test_rt_stop_join_free(rt);
  for (int i = 0; i < CASES; i++) {
    ck_assert_int_eq(atomic_load(&recs[i].terminates), 1);
    ck_assert_int_eq(atomic_load(&recs[i].violations), 0);
  }
  ck_assert_int_eq(atomic_load(&recs[4].reason), AX_REASON_SHUTDOWN);
}
END_TEST

/* Calls ax_stop on itself on its first message with the reason in its
 * state, then returns 0. */
typedef struct self_stopper {
  rec_t rec;
  int reason;
  atomic_int stop_rc;
} self_stopper_t;

static int self_stopper_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  self_stopper_t *s = ax_state(self);
  atomic_fetch_add(&s->rec.handled, 1);
  atomic_store(&s->stop_rc, ax_stop(ax_self(self), s->reason));
  return 0;
}

static void self_stopper_terminate(ax_actor_t *self, int reason) {
  self_stopper_t *s = ax_state(self);
  atomic_store(&s->rec.reason, reason);
  atomic_fetch_add(&s->rec.terminates, 1);
}

START_TEST(test_actor_stop_self_drops_mailbox) {
  /* ax_stop from inside: the actor stops before handling any further
   * message, and what was queued becomes dead letters. */
  enum { QUEUED = 100 };
  ax_rt_t *rt = test_rt_new(2, 0);
  self_stopper_t s[2];
  memset(s, 0, sizeof s);
  s[0].reason = 0;
  s[1].reason = -EPIPE;
  for (int i = 0; i < 2; i++) {
    ax_ref_t ref = test_spawn(rt, self_stopper_behaviour, &s[i], AX_PLACE_CORE, (unsigned)i,
                              NULL, self_stopper_terminate);
    for (int k = 0; k < QUEUED; k++)
      test_send(ref, MSG_PING, &k, sizeof k);
  }
  ck_assert_int_eq(ax_rt_run(rt), 0);
  ck_assert_int_eq(atomic_load(&s[0].stop_rc), 0);
  ck_assert_int_eq(atomic_load(&s[1].stop_rc), 0);
  ck_assert_int_eq(atomic_load(&s[0].rec.handled), 1);
  ck_assert_int_eq(atomic_load(&s[1].rec.handled), 1);
  ck_assert_int_eq(atomic_load(&s[0].rec.terminates), 1);
  ck_assert_int_eq(atomic_load(&s[1].rec.terminates), 1);
  ck_assert_int_eq(atomic_load(&s[0].rec.reason), AX_REASON_STOPPED);
  ck_assert_int_eq(atomic_load(&s[1].rec.reason), -EPIPE);
  ax_core_stats_t stats;
  ck_assert_int_eq(ax_rt_stats_total(rt, &stats), 0);
  ck_assert_uint_ge(stats.dead_letters, 2 * (QUEUED - 1));
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* A send to a stopped actor is refused with -ESRCH and accepted nothing:
 * it is no dead letter (from main, and from an actor of either core). */
static _Atomic int refused_bad;

static int refused_sender(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  ax_ref_t to;
  memcpy(&to, msg->data, sizeof to);
  for (int i = 0; i < 100; i++)
    if (ax_send(to, AX_MSG_USER, NULL, 0) != -ESRCH)
      atomic_fetch_add(&refused_bad, 1);
  return AX_STOP;
}

START_TEST(test_actor_refused_no_dead_letter) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  ax_ref_t gone = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  ck_assert_int_eq(ax_stop(gone, 0), 0);
  TEST_WAIT_UNTIL(ax_send(gone, AX_MSG_USER, NULL, 0) == -ESRCH, 10000);
  ax_core_stats_t before, after;
  ck_assert_int_eq(ax_rt_stats_total(rt, &before), 0);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(ax_send(gone, AX_MSG_USER, NULL, 0), -ESRCH);
  for (unsigned core = 0; core < 2; core++) {
    ax_ref_t s = test_spawn(rt, refused_sender, NULL, AX_PLACE_CORE, core, NULL, NULL);
    test_send(s, AX_MSG_USER, &gone, sizeof gone);
  }
  TEST_WAIT_UNTIL(({
                    ck_assert_int_eq(ax_rt_stats_total(rt, &after), 0);
                    after.actors == 0;
                  }),
                  10000);
  ck_assert_int_eq(atomic_load(&refused_bad), 0);
  ck_assert_uint_eq(after.dead_letters, before.dead_letters);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Once ax_rt_stop was called, sends from a thread that is no core are
 * refused (a flood from such threads kept ax_rt_join waiting and filled
 * memory with dead letters): small, large and owned payloads alike. */
static _Atomic int stop_released;
static void stop_release(void *p) {
  free(p);
  atomic_fetch_add(&stop_released, 1);
}

START_TEST(test_actor_send_after_rt_stop) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_ref_t a = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);
  test_send(a, AX_MSG_USER, "x", 1);
  ax_rt_stop(rt);
  static char big[4096];
  ck_assert_int_eq(ax_send(a, AX_MSG_USER, "x", 1), -ESRCH);
  ck_assert_int_eq(ax_send(a, AX_MSG_USER, big, sizeof big), -ESRCH);
  void *owned = malloc(64);
  ck_assert_ptr_nonnull(owned);
  ck_assert_int_eq(ax_send_owned(a, AX_MSG_USER, owned, 64, stop_release), -ESRCH);
  ck_assert_int_eq(atomic_load(&stop_released), 1); /* a refused buffer is released at once */
  test_rt_join_free(rt);
}
END_TEST

/* Many names (the registry hashes them), half of their actors stopped,
 * then more registrations (a sweep runs): live names resolve, dead ones
 * do not and can be taken again, unregister works on either half. */
enum { MANY_NAMES = 500 };

START_TEST(test_actor_registry_many) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  static ax_ref_t refs[MANY_NAMES];
  char name[32];
  for (int i = 0; i < MANY_NAMES; i++) {
    refs[i] = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_ANY, 0, NULL, NULL);
    snprintf(name, sizeof name, "n%d", i);
    ck_assert_int_eq(ax_register(rt, name, refs[i]), 0);
    ck_assert_int_eq(ax_register(rt, name, refs[i]), -EEXIST);
  }
  for (int i = 0; i < MANY_NAMES; i += 2)
    ck_assert_int_eq(ax_stop(refs[i], 0), 0);
  for (int i = 0; i < MANY_NAMES; i += 2)
    TEST_WAIT_UNTIL(ax_send(refs[i], AX_MSG_USER, NULL, 0) == -ESRCH, 10000);
  for (int i = 0; i < MANY_NAMES; i++) { /* enough registrations for a sweep */
    snprintf(name, sizeof name, "m%d", i);
    ck_assert_int_eq(ax_register(rt, name, refs[i | 1]), 0);
  }
  for (int i = 0; i < MANY_NAMES; i++) {
    snprintf(name, sizeof name, "n%d", i);
    if (i % 2 == 0) {
      ck_assert(ax_whereis(rt, name) == AX_REF_NONE);
      ck_assert_int_eq(ax_register(rt, name, refs[i + 1]), 0); /* taken over */
      ck_assert(ax_whereis(rt, name) == refs[i + 1]);
    } else {
      ck_assert(ax_whereis(rt, name) == refs[i]);
    }
    ck_assert_int_eq(ax_unregister(rt, name), 0);
    ck_assert_int_eq(ax_unregister(rt, name), -ENOENT);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

START_TEST(test_actor_stop_no_message_after) {
  /* Once ax_stop() has returned, the actor handles at most the message it
   * was already in the middle of, and none sent after the stop. */
  enum { ACTORS = 8, BEFORE = 2000, AFTER = 2000 };
  ax_rt_t *rt = test_rt_new(2, 0);
  rec_t recs[ACTORS];
  rec_reset(recs, ACTORS);
  ax_ref_t refs[ACTORS];
  for (int a = 0; a < ACTORS; a++)
    refs[a] = spawn_rec(rt, &recs[a], AX_PLACE_CORE, (unsigned)a % 2);
  test_rt_start(rt);
  for (int a = 0; a < ACTORS; a++) {
    test_seq_msg_t m = {0, 0, 0};
    for (m.seq = 0; m.seq < BEFORE; m.seq++)
      test_send(refs[a], MSG_SEQ, &m, sizeof m);
    if (a % 2 == 1)
      test_sleep_ms(1); /* some stop with an empty mailbox, some not */
    ck_assert_int_eq(ax_stop(refs[a], 0), 0);
    int at_stop = atomic_load(&recs[a].handled);
    for (; m.seq < BEFORE + AFTER; m.seq++) {
      int rc = ax_send(refs[a], MSG_SEQ, &m, sizeof m);
      ck_assert_msg(rc == 0 || rc == -ESRCH, "send after stop: %s", ax_strerror(rc));
    }
    TEST_WAIT_UNTIL(atomic_load(&recs[a].terminates) == 1, 10000);
    ck_assert_int_le(atomic_load(&recs[a].handled), at_stop + 1);
    ck_assert_int_lt(atomic_load(&recs[a].max_seq), BEFORE);
  }
  test_rt_join_free(rt);
  for (int a = 0; a < ACTORS; a++) {
    ck_assert_int_eq(atomic_load(&recs[a].reason), AX_REASON_STOPPED);
    ck_assert_int_eq(atomic_load(&recs[a].violations), 0);
    ck_assert_int_eq(atomic_load(&recs[a].terminates), 1);
  }
}
END_TEST

/* Checks ax_self, ax_state, ax_core and ax_actor_rt against what the test
 * wrote into its state before the start. */
typedef struct identity {
  ax_ref_t ref;
  ax_rt_t *rt;
  atomic_int checked;
  atomic_int wrong;
} identity_t;

static int identity_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  identity_t *id = ax_state(self);
  if (ax_self(self) != id->ref)
    atomic_fetch_add(&id->wrong, 1);
  if (ax_actor_rt(self) != id->rt)
    atomic_fetch_add(&id->wrong, 1);
  if ((int)ax_core(self) != ax_ref_core(id->ref))
    atomic_fetch_add(&id->wrong, 1);
  atomic_fetch_add(&id->checked, 1);
  return AX_STOP;
}

START_TEST(test_actor_identity) {
  ax_rt_t *rt = test_rt_new(2, 0);
  identity_t ids[4];
  memset(ids, 0, sizeof ids);
  for (int i = 0; i < 4; i++) {
    ids[i].rt = rt;
    ids[i].ref = test_spawn(rt, identity_behaviour, &ids[i], AX_PLACE_ANY, 0, NULL, NULL);
    test_send(ids[i].ref, MSG_PING, NULL, 0);
  }
  ck_assert(ids[0].ref != ids[1].ref);
  ck_assert_int_eq(ax_rt_run(rt), 0);
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(atomic_load(&ids[i].checked), 1);
    ck_assert_int_eq(atomic_load(&ids[i].wrong), 0);
  }
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Payloads                                                                  */

/* Checks that message i carries (i % 251) + 1 bytes of value i & 0xff, and
 * forwards a copy to `forward` when set, reusing one buffer. */
typedef struct checker {
  atomic_int handled;
  atomic_int bad;
  atomic_int zero_ok;
  int expect;        /* messages before AX_STOP */
  ax_ref_t forward;  /* sends each payload on, from its own buffer */
  ax_ref_t expected_from;
  unsigned char buf[256];
} checker_t;

static int checker_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  checker_t *c = ax_state(self);
  if (msg->type == MSG_PING) {
    /* The zero-size messages: no data. */
    if (msg->size == 0 && msg->data == NULL)
      atomic_fetch_add(&c->zero_ok, 1);
    else
      atomic_fetch_add(&c->bad, 1);
    return 0;
  }
  int i = atomic_load(&c->handled);
  size_t want = (size_t)(i % 251) + 1;
  const unsigned char *data = msg->data;
  bool ok = msg->type == MSG_DATA && msg->size == want && data != NULL &&
            msg->from == c->expected_from;
  for (size_t k = 0; ok && k < want; k++)
    ok = data[k] == (unsigned char)(i & 0xff);
  if (!ok)
    atomic_fetch_add(&c->bad, 1);
  if (c->forward != AX_REF_NONE) {
    memcpy(c->buf, msg->data, msg->size);
    if (ax_send(c->forward, MSG_DATA, c->buf, msg->size) != 0)
      atomic_fetch_add(&c->bad, 1);
    memset(c->buf, 0xee, sizeof c->buf);
  }
  if (atomic_fetch_add(&c->handled, 1) + 1 == c->expect)
    return AX_STOP;
  return 0;
}

START_TEST(test_actor_payload_copied) {
  enum { N = 2000 };
  ax_rt_t *rt = test_rt_new(2, 0);
  checker_t first, second;
  memset(&first, 0, sizeof first);
  memset(&second, 0, sizeof second);
  first.expect = second.expect = N;
  ax_ref_t a = test_spawn(rt, checker_behaviour, &first, AX_PLACE_CORE, 0, NULL, NULL);
  ax_ref_t b = test_spawn(rt, checker_behaviour, &second, AX_PLACE_CORE, 1, NULL, NULL);
  first.forward = b;
  first.expected_from = AX_REF_NONE;
  second.expected_from = a;
  test_rt_start(rt);
  /* One buffer, overwritten right after every send. */
  unsigned char buf[256];
  for (int i = 0; i < N; i++) {
    size_t size = (size_t)(i % 251) + 1;
    memset(buf, i & 0xff, size);
    test_send(a, MSG_DATA, buf, size);
    memset(buf, 0x5a, sizeof buf);
    if (i % 500 == 0) {
      /* Zero-size messages, with and without a pointer: data is NULL. */
      test_send(a, MSG_PING, NULL, 0);
      test_send(a, MSG_PING, buf, 0);
    }
  }
  test_rt_join_free(rt);
  ck_assert_int_eq(atomic_load(&first.handled), N);
  ck_assert_int_eq(atomic_load(&second.handled), N);
  ck_assert_int_eq(atomic_load(&first.bad), 0);
  ck_assert_int_eq(atomic_load(&second.bad), 0);
  ck_assert_int_eq(atomic_load(&first.zero_ok), 2 * ((N + 499) / 500));
}
END_TEST

enum { BIG = 1 << 20 };

static unsigned char big_byte(size_t i) {
  return (unsigned char)((i * 7 + 3) ^ (i >> 11));
}

/* Checks 1 MiB payloads; on MSG_GO builds one itself and sends it to
 * `forward`. */
typedef struct big_checker {
  atomic_int good;
  atomic_int bad;
  ax_ref_t forward;
} big_checker_t;

static int big_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  big_checker_t *b = ax_state(self);
  if (msg->type == MSG_GO) {
    unsigned char *buf = malloc(BIG);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < BIG; i++)
      buf[i] = big_byte(i);
    int rc = ax_send(b->forward, MSG_DATA, buf, BIG);
    memset(buf, 0, BIG);
    free(buf);
    if (rc != 0)
      atomic_fetch_add(&b->bad, 1);
    return AX_STOP;
  }
  const unsigned char *data = msg->data;
  bool ok = msg->size == BIG && data != NULL;
  for (size_t i = 0; ok && i < BIG; i++)
    ok = data[i] == big_byte(i);
  atomic_fetch_add(ok ? &b->good : &b->bad, 1);
  return atomic_load(&b->good) + atomic_load(&b->bad) == 2 ? AX_STOP : 0;
}

START_TEST(test_actor_big_payload) {
  ax_rt_t *rt = test_rt_new(2, 0);
  big_checker_t sender, receiver;
  memset(&sender, 0, sizeof sender);
  memset(&receiver, 0, sizeof receiver);
  ax_ref_t s = test_spawn(rt, big_behaviour, &sender, AX_PLACE_CORE, 0, NULL, NULL);
  ax_ref_t r = test_spawn(rt, big_behaviour, &receiver, AX_PLACE_CORE, 1, NULL, NULL);
  sender.forward = r;
  unsigned char *buf = malloc(BIG);
  ck_assert_ptr_nonnull(buf);
  for (size_t i = 0; i < BIG; i++)
    buf[i] = big_byte(i);
  /* Over the limit: refused before anything is read. */
  ck_assert_int_eq(ax_send(r, MSG_DATA, buf, AX_MSG_MAX + 1), -EINVAL);
  test_rt_start(rt);
  /* From a thread, then from an actor on the other core. */
  test_send(r, MSG_DATA, buf, BIG);
  memset(buf, 0, BIG);
  test_send(s, MSG_GO, NULL, 0);
  test_rt_join_free(rt);
  free(buf);
  ck_assert_int_eq(atomic_load(&receiver.good), 2);
  ck_assert_int_eq(atomic_load(&receiver.bad), 0);
  ck_assert_int_eq(atomic_load(&sender.bad), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_send_owned                                                             */

enum { OWNED_MAX = 64 };

/* Release calls per buffer index (the first int of each buffer), and the
 * thread of the last one. */
static atomic_int owned_released[OWNED_MAX];
static atomic_int owned_release_on_actor_thread;
static _Atomic(pthread_t) owned_actor_thread;

static void *owned_buf(int index) {
  int *buf = malloc(64);
  ck_assert_ptr_nonnull(buf);
  memset(buf, 0, 64);
  buf[0] = index;
  return buf;
}

static void owned_release(void *buf) {
  int index = *(int *)buf;
  ck_assert_int_ge(index, 0);
  ck_assert_int_lt(index, OWNED_MAX);
  if (index == 1 && pthread_equal(pthread_self(), atomic_load(&owned_actor_thread)))
    atomic_store(&owned_release_on_actor_thread, 1);
  atomic_fetch_add(&owned_released[index], 1);
  free(buf);
}

/* Buffer 1 is handled and released by axon; buffer 2 is taken and freed
 * here; a copied message has nothing to take. */
typedef struct owner {
  void *expect_ptr[OWNED_MAX];
  atomic_int handled;
  atomic_int bad;
  atomic_int took;
} owner_t;

static int owner_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  owner_t *o = ax_state(self);
  atomic_fetch_add(&o->handled, 1);
  if (msg->type == MSG_STOP)
    return AX_STOP;
  if (msg->type == MSG_PING) {
    if (ax_msg_take(msg) != NULL)
      atomic_fetch_add(&o->bad, 1);
    return 0;
  }
  int index = *(const int *)msg->data;
  if (index < 0 || index >= OWNED_MAX || msg->data != o->expect_ptr[index] || msg->size != 64) {
    atomic_fetch_add(&o->bad, 1);
    return 0;
  }
  /* Not released while the behaviour runs. */
  if (atomic_load(&owned_released[index]) != 0)
    atomic_fetch_add(&o->bad, 1);
  if (index == 1) {
    atomic_store(&owned_actor_thread, pthread_self());
  } else if (index == 2) {
    void *taken = ax_msg_take(msg);
    if (taken != o->expect_ptr[2])
      atomic_fetch_add(&o->bad, 1);
    free(taken);
    atomic_fetch_add(&o->took, 1);
  }
  return 0;
}

START_TEST(test_actor_send_owned) {
  ax_rt_t *rt = test_rt_new(2, 0);
  owner_t owner;
  memset(&owner, 0, sizeof owner);
  for (int i = 0; i < OWNED_MAX; i++)
    atomic_store(&owned_released[i], 0);
  ax_ref_t ref = test_spawn(rt, owner_behaviour, &owner, AX_PLACE_CORE, 1, NULL, NULL);
  test_rt_start(rt);

  /* Handled: the receiver sees the very buffer, released once after. */
  void *one = owned_buf(1);
  owner.expect_ptr[1] = one;
  void *two = owned_buf(2);
  owner.expect_ptr[2] = two;
  ck_assert_int_eq(ax_send_owned(ref, MSG_DATA, one, 64, owned_release), 0);
  /* Taken with ax_msg_take: never released by axon. */
  ck_assert_int_eq(ax_send_owned(ref, MSG_DATA, two, 64, owned_release), 0);
  /* A copied message: nothing to take. */
  test_send(ref, MSG_PING, "copy", 4);
  /* No release function: nothing to free. */
  static int quiet[16] = {3};
  owner.expect_ptr[3] = quiet;
  ck_assert_int_eq(ax_send_owned(ref, MSG_DATA, quiet, 64, NULL), 0);
  TEST_WAIT_UNTIL(atomic_load(&owner.handled) == 4, 10000);
  TEST_WAIT_UNTIL(atomic_load(&owned_released[1]) == 1, 10000);
  ck_assert_int_eq(atomic_load(&owner.took), 1);
  ck_assert_int_eq(atomic_load(&owner.bad), 0);

  /* Undeliverable: released before the error is returned. */
  ck_assert_int_eq(ax_send_owned(AX_REF_NONE, MSG_DATA, owned_buf(10), 64, owned_release),
                   -ESRCH);
  ck_assert_int_eq(atomic_load(&owned_released[10]), 1);
  ck_assert_int_eq(ax_send_owned(ref, 0, owned_buf(11), 64, owned_release), -EINVAL);
  ck_assert_int_eq(atomic_load(&owned_released[11]), 1);
  ck_assert_int_eq(
      ax_send_owned((ax_ref_t)0x0123456789abcdefULL, MSG_DATA, owned_buf(12), 64, owned_release),
      -ESRCH);
  ck_assert_int_eq(atomic_load(&owned_released[12]), 1);
  ck_assert_int_eq(ax_send_owned(ref, MSG_DATA, NULL, 64, NULL), -EINVAL);

  /* To a stopped actor. */
  test_send(ref, MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(ax_send(ref, MSG_PING, NULL, 0) == -ESRCH, 10000);
  ck_assert_int_eq(ax_send_owned(ref, MSG_DATA, owned_buf(13), 64, owned_release), -ESRCH);
  ck_assert_int_eq(atomic_load(&owned_released[13]), 1);

  test_rt_join_free(rt);
  ck_assert_int_eq(atomic_load(&owned_released[1]), 1);
  ck_assert_int_eq(atomic_load(&owned_release_on_actor_thread), 1);
  ck_assert_int_eq(atomic_load(&owned_released[2]), 0);
  for (int i = 10; i <= 13; i++)
    ck_assert_int_eq(atomic_load(&owned_released[i]), 1);
}
END_TEST

START_TEST(test_actor_send_owned_dropped) {
  /* Buffers queued for an actor that stops on its first message are
   * released exactly once: one after handling, the rest when dropped. */
  enum { QUEUED = 40 };
  ax_rt_t *rt = test_rt_new(2, 0);
  rec_t rec;
  rec_reset(&rec, 1);
  rec.stop_after = 1;
  ax_ref_t ref = spawn_rec(rt, &rec, AX_PLACE_CORE, 1);
  for (int i = 0; i < OWNED_MAX; i++)
    atomic_store(&owned_released[i], 0);
  for (int i = 0; i < QUEUED; i++)
    ck_assert_int_eq(ax_send_owned(ref, MSG_DATA, owned_buf(i), 64, owned_release), 0);
  ck_assert_int_eq(ax_rt_run(rt), 0);
  ck_assert_int_eq(atomic_load(&rec.handled), 1);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  for (int i = 0; i < QUEUED; i++)
    ck_assert_int_eq(atomic_load(&owned_released[i]), 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Ordering and the sender                                                   */

enum { ORDER_SENDERS = 5, ORDER_ACTOR_SENDERS = 2 };

/* The receiver: per-sender sequences must arrive 0, 1, 2... */
typedef struct order_rx {
  uint64_t next[ORDER_SENDERS];
  ax_ref_t from[ORDER_SENDERS]; /* expected msg->from per sender */
  uint64_t per_sender;
  uint64_t total;
  atomic_int bad_seq;
  atomic_int bad_from;
  atomic_long received;
} order_rx_t;

static int order_rx_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  order_rx_t *rx = ax_state(self);
  test_seq_msg_t m;
  if (msg->type != MSG_SEQ || msg->size != sizeof m) {
    atomic_fetch_add(&rx->bad_seq, 1);
    return 0;
  }
  memcpy(&m, msg->data, sizeof m);
  if (m.sender >= ORDER_SENDERS || m.seq != rx->next[m.sender])
    atomic_fetch_add(&rx->bad_seq, 1);
  if (m.sender < ORDER_SENDERS) {
    rx->next[m.sender] = m.seq + 1;
    if (msg->from != rx->from[m.sender])
      atomic_fetch_add(&rx->bad_from, 1);
  }
  long received = atomic_fetch_add(&rx->received, 1) + 1;
  return (uint64_t)received == rx->total ? AX_STOP : 0;
}

/* An actor sender: sends its sequence in chunks, re-arming itself with a
 * message to itself between chunks so other work interleaves. */
typedef struct order_tx {
  ax_ref_t to;
  uint32_t id;
  uint64_t seq, count;
  atomic_int bad;
} order_tx_t;

static int order_tx_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  order_tx_t *tx = ax_state(self);
  for (int k = 0; k < 64 && tx->seq < tx->count; k++, tx->seq++) {
    test_seq_msg_t m = {tx->id, 0, tx->seq};
    if (ax_send(tx->to, MSG_SEQ, &m, sizeof m) != 0)
      atomic_fetch_add(&tx->bad, 1);
  }
  if (tx->seq == tx->count)
    return AX_STOP;
  if (ax_send(ax_self(self), MSG_GO, NULL, 0) != 0)
    atomic_fetch_add(&tx->bad, 1);
  return 0;
}

typedef struct order_thread {
  ax_ref_t to;
  uint32_t id;
  uint64_t count;
  int bad;
} order_thread_t;

static void *order_thread_main(void *arg) {
  order_thread_t *t = arg;
  for (uint64_t seq = 0; seq < t->count; seq++) {
    test_seq_msg_t m = {t->id, 0, seq};
    if (ax_send(t->to, MSG_SEQ, &m, sizeof m) != 0)
      t->bad++;
  }
  return NULL;
}

START_TEST(test_actor_ordering_per_sender) {
  uint64_t per_sender = test_scaled(50000);
  ax_rt_t *rt = test_rt_new(2, 0);
  order_rx_t rx;
  memset(&rx, 0, sizeof rx);
  rx.per_sender = per_sender;
  rx.total = per_sender * ORDER_SENDERS;
  ax_ref_t rx_ref = test_spawn(rt, order_rx_behaviour, &rx, AX_PLACE_CORE, 0, NULL, NULL);

  /* Senders 0 and 1 are actors on cores 0 and 1; 2..4 are threads. */
  order_tx_t txs[ORDER_ACTOR_SENDERS];
  memset(txs, 0, sizeof txs);
  for (uint32_t i = 0; i < ORDER_ACTOR_SENDERS; i++) {
    txs[i].to = rx_ref;
    txs[i].id = i;
    txs[i].count = per_sender;
    ax_ref_t tx = test_spawn(rt, order_tx_behaviour, &txs[i], AX_PLACE_CORE, i, NULL, NULL);
    rx.from[i] = tx;
    test_send(tx, MSG_GO, NULL, 0);
  }
  order_thread_t threads[ORDER_SENDERS - ORDER_ACTOR_SENDERS];
  pthread_t tids[ORDER_SENDERS - ORDER_ACTOR_SENDERS];
  for (uint32_t i = 0; i < ORDER_SENDERS - ORDER_ACTOR_SENDERS; i++) {
    threads[i].to = rx_ref;
    threads[i].id = ORDER_ACTOR_SENDERS + i;
    threads[i].count = per_sender;
    threads[i].bad = 0;
    rx.from[threads[i].id] = AX_REF_NONE;
  }
  test_rt_start(rt);
  for (int i = 0; i < ORDER_SENDERS - ORDER_ACTOR_SENDERS; i++)
    ck_assert_int_eq(pthread_create(&tids[i], NULL, order_thread_main, &threads[i]), 0);
  for (int i = 0; i < ORDER_SENDERS - ORDER_ACTOR_SENDERS; i++) {
    ck_assert_int_eq(pthread_join(tids[i], NULL), 0);
    ck_assert_int_eq(threads[i].bad, 0);
  }
  test_rt_join_free(rt);
  ck_assert_int_eq(atomic_load(&rx.bad_seq), 0);
  ck_assert_int_eq(atomic_load(&rx.bad_from), 0);
  ck_assert_int_eq(atomic_load(&rx.received), (long)rx.total);
  for (int i = 0; i < ORDER_SENDERS; i++)
    ck_assert_uint_eq(rx.next[i], per_sender);
  for (int i = 0; i < ORDER_ACTOR_SENDERS; i++)
    ck_assert_int_eq(atomic_load(&txs[i].bad), 0);
}
END_TEST

/* One turn of an actor on core 1 sends a burst to an actor on core 0,
 * far more than the ring between the two cores holds, cycling through the
 * three ways a message crosses: copied into a ring slot (8 bytes), carried
 * as a pointer (200 bytes), and owned (ax_send_owned).  Every message
 * arrives once, in order, intact, and every owned buffer is released. */
#define BURST_BIG 200
typedef struct burst {
  ax_ref_t to;
  uint64_t count;
  atomic_long received, bad, released;
} burst_t;

static atomic_long burst_released;

static void burst_release(void *buf) {
  atomic_fetch_add(&burst_released, 1);
  free(buf);
}

static int burst_tx(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  burst_t *b = ax_state(self);
  for (uint64_t i = 0; i < b->count; i++) {
    int rc;
    if (i % 3 == 0) {
      rc = ax_send(b->to, MSG_SEQ, &i, sizeof i);
    } else if (i % 3 == 1) {
      unsigned char big[BURST_BIG];
      memset(big, (int)(i & 0xff), sizeof big);
      memcpy(big, &i, sizeof i);
      rc = ax_send(b->to, MSG_DATA, big, sizeof big);
    } else {
      uint64_t *own = malloc(sizeof *own);
      if (own == NULL)
        return -ENOMEM;
      *own = i;
      rc = ax_send_owned(b->to, MSG_PING, own, sizeof *own, burst_release);
    }
    if (rc != 0)
      atomic_fetch_add(&b->bad, 1);
  }
  return AX_STOP;
}

static int burst_rx(ax_actor_t *self, const ax_msg_t *msg) {
  burst_t *b = ax_state(self);
  uint64_t want = (uint64_t)atomic_load(&b->received), got;
  uint32_t type = want % 3 == 0 ? MSG_SEQ : want % 3 == 1 ? MSG_DATA : MSG_PING;
  size_t size = want % 3 == 1 ? BURST_BIG : sizeof got;
  if (msg->type != type || msg->size != size || ax_core(self) != 0) {
    atomic_fetch_add(&b->bad, 1);
  } else {
    memcpy(&got, msg->data, sizeof got);
    const unsigned char *p = msg->data;
    if (got != want || (size == BURST_BIG && p[BURST_BIG - 1] != (unsigned char)(want & 0xff)))
      atomic_fetch_add(&b->bad, 1);
  }
  atomic_fetch_add(&b->received, 1);
  return 0;
}

START_TEST(test_actor_burst_across_cores) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  atomic_store(&burst_released, 0);
  burst_t b;
  memset(&b, 0, sizeof b);
  b.count = test_scaled(30000);
  b.to = test_spawn(rt, burst_rx, &b, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(test_spawn(rt, burst_tx, &b, AX_PLACE_CORE, 1, NULL, NULL), MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&b.received) == (long)b.count, 30000);
  ck_assert_int_eq(atomic_load(&b.bad), 0);
  TEST_WAIT_UNTIL(atomic_load(&burst_released) == (long)(b.count / 3), 10000);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors of ax_send and ax_stop                                             */

/* A small xorshift generator for garbage references. */
static uint64_t xorshift(uint64_t *state) {
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *state = x;
}

START_TEST(test_actor_send_errors) {
  ax_rt_t *rt = test_rt_new(2, 0);
  rec_t rec;
  rec_reset(&rec, 1);
  ax_ref_t ref = spawn_rec(rt, &rec, AX_PLACE_CORE, 1);
  test_rt_start(rt);

  char data[8] = "payload";
  ck_assert_int_eq(ax_send(AX_REF_NONE, MSG_PING, data, sizeof data), -ESRCH);
  ck_assert_int_eq(ax_send(ref, 0, data, sizeof data), -EINVAL);
  ck_assert_int_eq(ax_send(ref, MSG_PING, NULL, 5), -EINVAL);
  ck_assert_int_eq(ax_send(ref, MSG_PING, data, AX_MSG_MAX + 1), -EINVAL);

  /* Garbage references never reach anything, never crash. */
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  ax_ref_t fixed[] = {~(ax_ref_t)0, 1, 2, (ax_ref_t)1 << 63, 0x00000000ffffffffULL,
                      0xffffffff00000000ULL};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (fixed[i] == ref)
      continue;
    ck_assert_int_eq(ax_send(fixed[i], MSG_PING, data, sizeof data), -ESRCH);
    ck_assert_int_eq(ax_stop(fixed[i], 0), -ESRCH);
  }
  for (int i = 0; i < 20000; i++) {
    ax_ref_t garbage = xorshift(&state);
    if (garbage == ref || garbage == AX_REF_NONE)
      continue;
    int rc = ax_send(garbage, MSG_PING, data, sizeof data);
    ck_assert_msg(rc == -ESRCH, "send to garbage ref %#llx: %s", (unsigned long long)garbage,
                  ax_strerror(rc));
    if (i % 16 == 0)
      ck_assert_int_eq(ax_stop(garbage, 0), -ESRCH);
  }
  /* References one bit away from a live one: refused or delivered, never
   * a crash (some bits may be unused). */
  for (int bit = 0; bit < 64; bit++) {
    int rc = ax_send(ref ^ ((ax_ref_t)1 << bit), MSG_PING, data, sizeof data);
    ck_assert_msg(rc == 0 || rc == -ESRCH, "bit %d: %s", bit, ax_strerror(rc));
  }
  ck_assert_int_eq(atomic_load(&rec.terminates), 0);
  test_send(ref, MSG_STOP, NULL, 0);
  test_rt_join_free(rt);
  ck_assert_int_eq(atomic_load(&rec.terminates), 1);
}
END_TEST

START_TEST(test_actor_send_to_stopped) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  rec_t recs[2];
  rec_reset(recs, 2);
  ax_ref_t dead = spawn_rec(rt, &recs[0], AX_PLACE_CORE, 0);
  test_rt_start(rt);
  test_send(dead, MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&recs[0].terminates) == 1, 10000);
  assert_ref_dead(dead);
  /* A new actor, maybe in the same slot, does not answer to the old ref. */
  ax_ref_t live = spawn_rec(rt, &recs[1], AX_PLACE_CORE, 0);
  ck_assert(live != dead);
  for (int i = 0; i < 1000; i++)
    ck_assert_int_eq(ax_send(dead, MSG_PING, NULL, 0), -ESRCH);
  test_send(live, MSG_PING, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&recs[1].handled) == 1, 10000);
  test_sleep_ms(20);
  ck_assert_int_eq(atomic_load(&recs[1].handled), 1);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Once a burst of actors is over and the core idles, the pages of their
 * slots go back to the kernel (ax_core_stats_t.released grows); the slots
 * come back for new actors, and no old reference names a new actor. */
enum { BURST = 40000 };

static atomic_int burst_handled;

static int burst_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  atomic_fetch_add(&burst_handled, 1);
  return msg->type == MSG_STOP ? AX_STOP : 0;
}

static void spawn_burst(ax_rt_t *rt, ax_ref_t *refs) {
  for (int i = 0; i < BURST; i++)
    refs[i] = test_spawn(rt, burst_behaviour, NULL, AX_PLACE_CORE, 0, NULL, NULL);
}

START_TEST(test_actor_slots_given_back) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t *old = calloc(BURST, sizeof *old), *young = calloc(BURST, sizeof *young);
  ck_assert_ptr_nonnull(old);
  ck_assert_ptr_nonnull(young);
  atomic_store(&burst_handled, 0);
  spawn_burst(rt, old);
  for (int i = 0; i < BURST; i++)
    test_send(old[i], MSG_STOP, NULL, 0);
  ax_core_stats_t st;
  TEST_WAIT_UNTIL(ax_rt_stats(rt, 0, &st) == 0 && st.actors == 0, 20000);
  /* Idle for longer than the purge delay (250 ms): the core gives back. */
  TEST_WAIT_UNTIL(ax_rt_stats(rt, 0, &st) == 0 && st.released >= BURST * 8, 20000);
  spawn_burst(rt, young);
  for (int i = 0; i < BURST; i++)
    ck_assert_msg(ax_send(old[i], MSG_PING, NULL, 0) == -ESRCH, "old ref %d answers", i);
  for (int i = 0; i < BURST; i++)
    for (int j = i + 1; j < BURST && j < i + 4; j++)
      ck_assert(young[i] != young[j]);
  for (int i = 0; i < BURST; i++)
    test_send(young[i], MSG_PING, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&burst_handled) == 2 * BURST, 20000);
  for (int i = 0; i < BURST; i++)
    test_send(young[i], MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(ax_rt_stats(rt, 0, &st) == 0 && st.actors == 0, 20000);
  for (int i = 0; i < BURST; i++)
    ck_assert_int_eq(ax_send(young[i], MSG_PING, NULL, 0), -ESRCH);
  free(old);
  free(young);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Mailbox length and bound                                                  */

enum { SELF_SENDS = 10 };

typedef struct lenrec {
  int64_t seen[SELF_SENDS + 1]; /* ax_mailbox_len: after the sends, then in each PING */
  atomic_int handled;
  int64_t null_rc;
} lenrec_t;

static int len_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  lenrec_t *r = ax_state(self);
  if (msg->type == MSG_GO) {
    for (int i = 0; i < SELF_SENDS; i++)
      (void)ax_send(ax_self(self), MSG_PING, NULL, 0);
    r->seen[0] = ax_mailbox_len(self);
    r->null_rc = ax_mailbox_len(NULL);
    return 0;
  }
  int n = atomic_load(&r->handled);
  r->seen[n + 1] = ax_mailbox_len(self);
  atomic_fetch_add(&r->handled, 1);
  return 0;
}

START_TEST(test_actor_mailbox_len) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  lenrec_t r;
  memset(&r, 0, sizeof r);
  ax_ref_t a = test_spawn(rt, len_behaviour, &r, AX_PLACE_CORE, 1, NULL, NULL);
  test_send(a, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&r.handled) == SELF_SENDS, 10000);
  ck_assert_int_eq(r.seen[0], SELF_SENDS);
  for (int i = 1; i <= SELF_SENDS; i++)
    ck_assert_int_eq(r.seen[i], SELF_SENDS - i); /* the one handled is out of the mailbox */
  ck_assert_int_eq(r.null_rc, -EINVAL);
  test_rt_stop_join_free(rt);
}
END_TEST

enum { BOUND = 4 };

/* A bounded actor: MSG_GO holds its core until `hold` drops to 0. */
typedef struct bounded {
  atomic_int hold, handled, bad;
} bounded_t;

static int bounded_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  bounded_t *b = ax_state(self);
  (void)self;
  if (msg->type == MSG_GO) {
    int64_t end = ax_now() + 20 * AX_NSEC_PER_SEC;
    while (atomic_load(&b->hold) != 0 && ax_now() < end) {
    }
  }
  atomic_fetch_add(&b->handled, 1);
  return 0;
}

/* Sends to a bounded actor from its own core in one turn: the first BOUND
 * go, the rest are refused. */
typedef struct flooder {
  ax_ref_t target;
  int ok, again, other;
  atomic_int done;
} flooder_t;

static int flooder_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  flooder_t *f = ax_state(self);
  for (int i = 0; i < 3 * BOUND; i++) {
    int rc = ax_send(f->target, MSG_PING, "p", 1);
    if (rc == 0)
      f->ok++;
    else if (rc == -EAGAIN)
      f->again++;
    else
      f->other++;
  }
  atomic_store(&f->done, 1);
  return AX_STOP;
}

static atomic_int bound_released;
static void count_release(void *buf) {
  free(buf);
  atomic_fetch_add(&bound_released, 1);
}

START_TEST(test_actor_mailbox_bound) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  bounded_t b;
  memset(&b, 0, sizeof b);
  ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = 1, .mailbox_max = BOUND};
  ax_ref_t ref;
  ck_assert_int_eq(ax_spawn(rt, bounded_behaviour, &b, &o, &ref), 0);
  /* From a thread that is no core, while the actor holds its core: the
   * message being handled still counts until its handler returns. */
  atomic_store(&b.hold, 1);
  test_send(ref, MSG_GO, NULL, 0);
  for (int i = 1; i < BOUND; i++)
    test_send(ref, MSG_PING, "x", 1);
  ck_assert_int_eq(ax_send(ref, MSG_PING, "x", 1), -EAGAIN);
  ck_assert_int_eq(ax_send(ref, MSG_PING, NULL, 0), -EAGAIN);
  atomic_store(&bound_released, 0);
  ck_assert_int_eq(ax_send_owned(ref, MSG_DATA, malloc(16), 16, count_release), -EAGAIN);
  ck_assert_int_eq(atomic_load(&bound_released), 1); /* refused: released, not leaked */
  ck_assert_ptr_nonnull(strstr(ax_strerror(-EAGAIN), "bounded"));
  atomic_store(&b.hold, 0);
  TEST_WAIT_UNTIL(atomic_load(&b.handled) == BOUND, 10000);
  /* Room again, and again the bound. */
  for (int i = 0; i < BOUND; i++)
    test_send(ref, MSG_PING, "y", 1);
  TEST_WAIT_UNTIL(atomic_load(&b.handled) == 2 * BOUND, 10000);
  /* From an actor of the same core, in one turn (the target cannot run
   * meanwhile), and from an actor of the other core while the target holds
   * its core: BOUND go, the rest are -EAGAIN. */
  for (unsigned core = 1; core < 3; core++) {
    int before = atomic_load(&b.handled);
    flooder_t f = {.target = ref};
    if (core == 2) { /* core 0, with the target held */
      atomic_store(&b.hold, 1);
      test_send(ref, MSG_GO, NULL, 0);
      test_send(ref, MSG_PING, "z", 1);
    }
    ax_ref_t fl = test_spawn(rt, flooder_behaviour, &f, AX_PLACE_CORE, core == 1 ? 1 : 0, NULL,
                             NULL);
    test_send(fl, MSG_GO, NULL, 0);
    if (core == 2) {
      TEST_WAIT_UNTIL(atomic_load(&f.done) == 1, 10000);
      atomic_store(&b.hold, 0);
    }
    TEST_WAIT_UNTIL(atomic_load(&f.done) == 1, 10000);
    ck_assert_int_eq(f.other, 0);
    int queued_before = core == 2 ? 2 : 0; /* GO and the test's z */
    ck_assert_int_eq(f.ok, BOUND - queued_before);
    ck_assert_int_eq(f.again, 3 * BOUND - (BOUND - queued_before));
    TEST_WAIT_UNTIL(atomic_load(&b.handled) == before + BOUND, 10000);
  }
  ck_assert_int_eq(atomic_load(&b.bad), 0);
  /* Unbounded actors are untouched by all this. */
  rec_t rec;
  rec_reset(&rec, 1);
  ax_ref_t free_ref = spawn_rec(rt, &rec, AX_PLACE_CORE, 1);
  for (int i = 0; i < 100; i++)
    test_send(free_ref, MSG_PING, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&rec.handled) == 100, 10000);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A fiber's bound counts what it keeps aside while it waits for another
 * type: three PINGs fill it while it waits for MSG_DATA. */
typedef struct fbound {
  atomic_int phase;
  int64_t len_after_wait;
  int wait_rc, recv_ok;
} fbound_t;

static int fbound_fiber(ax_actor_t *self, void *arg) {
  fbound_t *f = arg;
  const ax_msg_t *m;
  atomic_store(&f->phase, 1);
  f->wait_rc = ax_recv_type(self, MSG_DATA, ax_deadline(300 * AX_NSEC_PER_MSEC), &m);
  f->len_after_wait = ax_mailbox_len(self);
  atomic_store(&f->phase, 2);
  while (atomic_load(&f->phase) != 3)
    ax_sleep(self, AX_NSEC_PER_MSEC);
  for (int i = 0; i < BOUND - 1; i++)
    if (ax_recv(self, ax_deadline(AX_NSEC_PER_SEC), &m) == 0 && m->type == MSG_PING)
      f->recv_ok++;
  ax_yield(self); /* the last one received is given back at the next call */
  atomic_store(&f->phase, 4);
  while (atomic_load(&f->phase) != 5)
    ax_sleep(self, AX_NSEC_PER_MSEC);
  return 0;
}

START_TEST(test_actor_mailbox_bound_fiber) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  fbound_t f;
  memset(&f, 0, sizeof f);
  ax_fiber_opts_t o = {.placement = AX_PLACE_CORE, .core = 1, .mailbox_max = BOUND - 1};
  ax_ref_t ref;
  ck_assert_int_eq(ax_spawn_fiber(rt, fbound_fiber, &f, &o, &ref), 0);
  TEST_WAIT_UNTIL(atomic_load(&f.phase) == 1, 10000);
  for (int i = 0; i < BOUND - 1; i++)
    test_send(ref, MSG_PING, NULL, 0);
  ck_assert_int_eq(ax_send(ref, MSG_PING, NULL, 0), -EAGAIN);
  ck_assert_int_eq(ax_send(ref, MSG_DATA, NULL, 0), -EAGAIN); /* full, whatever the type */
  TEST_WAIT_UNTIL(atomic_load(&f.phase) == 2, 10000);
  ck_assert_int_eq(f.wait_rc, -ETIMEDOUT);
  ck_assert_int_eq(f.len_after_wait, BOUND - 1);
  atomic_store(&f.phase, 3);
  TEST_WAIT_UNTIL(atomic_load(&f.phase) == 4, 10000);
  ck_assert_int_eq(f.recv_ok, BOUND - 1);
  /* Received and given back: room again. */
  test_send(ref, MSG_PING, NULL, 0);
  atomic_store(&f.phase, 5);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Request and reply                                                         */

enum { REQUESTS = 200 };

typedef struct client {
  ax_ref_t server;
  ax_ref_t dead;
  uint64_t ids[REQUESTS];
  int replies;
  atomic_int bad;
  atomic_int done;
  atomic_int null_self_rc, dead_rc;
} client_t;

static int client_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  client_t *c = ax_state(self);
  if (msg->type == MSG_GO) {
    for (int i = 0; i < REQUESTS; i++) {
      uint64_t id = 0;
      int rc = ax_request(self, c->server, MSG_REQUEST, &i, sizeof i, &id);
      if (rc != 0 || id == 0)
        atomic_fetch_add(&c->bad, 1);
      for (int k = 0; k < i; k++)
        if (c->ids[k] == id)
          atomic_fetch_add(&c->bad, 1); /* ids must be fresh */
      c->ids[i] = id;
    }
    /* A NULL id pointer is allowed. */
    int extra = -1;
    if (ax_request(self, c->server, MSG_REQUEST, &extra, sizeof extra, NULL) != 0)
      atomic_fetch_add(&c->bad, 1);
    atomic_store(&c->null_self_rc, ax_request(NULL, c->server, MSG_REQUEST, NULL, 0, NULL));
    atomic_store(&c->dead_rc, ax_request(self, c->dead, MSG_REQUEST, NULL, 0, NULL));
    return 0;
  }
  if (msg->type != MSG_REPLY || msg->from != c->server || msg->size != sizeof(int)) {
    atomic_fetch_add(&c->bad, 1);
    return 0;
  }
  int value;
  memcpy(&value, msg->data, sizeof value);
  if (c->replies < REQUESTS) {
    /* One server, one sender: the replies come in request order. */
    if (msg->req != c->ids[c->replies] || value != 2 * c->replies)
      atomic_fetch_add(&c->bad, 1);
  } else if (msg->req == 0 || value != -2) {
    atomic_fetch_add(&c->bad, 1);
  }
  if (++c->replies == REQUESTS + 1) {
    atomic_store(&c->done, 1);
    (void)ax_send(c->server, MSG_STOP, NULL, 0);
    return AX_STOP;
  }
  return 0;
}

typedef struct server {
  ax_ref_t client;
  atomic_int bad;
  atomic_int plain_rc, null_rc;
} server_t;

static int server_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  server_t *s = ax_state(self);
  if (msg->type == MSG_STOP)
    return AX_STOP;
  if (msg->type == MSG_PING) {
    /* Not a request: nothing to reply to. */
    atomic_store(&s->plain_rc, ax_reply(self, msg, MSG_REPLY, NULL, 0));
    atomic_store(&s->null_rc, ax_reply(self, NULL, MSG_REPLY, NULL, 0));
    return 0;
  }
  int value;
  if (msg->type != MSG_REQUEST || msg->req == 0 || msg->from != s->client ||
      msg->size != sizeof value) {
    atomic_fetch_add(&s->bad, 1);
    return 0;
  }
  memcpy(&value, msg->data, sizeof value);
  value *= 2;
  if (ax_reply(self, msg, MSG_REPLY, &value, sizeof value) != 0)
    atomic_fetch_add(&s->bad, 1);
  return 0;
}

START_TEST(test_actor_request_reply) {
  ax_rt_t *rt = test_rt_new(2, 0);
  client_t client;
  server_t server;
  memset(&client, 0, sizeof client);
  memset(&server, 0, sizeof server);
  /* A reference that is certainly dead: an actor stopped before start. */
  rec_t gone;
  rec_reset(&gone, 1);
  ax_ref_t dead = spawn_rec(rt, &gone, AX_PLACE_CORE, 0);
  ck_assert_int_eq(ax_stop(dead, 0), 0);
  ax_ref_t c = test_spawn(rt, client_behaviour, &client, AX_PLACE_CORE, 0, NULL, NULL);
  ax_ref_t s = test_spawn(rt, server_behaviour, &server, AX_PLACE_CORE, 1, NULL, NULL);
  client.server = s;
  client.dead = dead;
  server.client = c;
  test_send(s, MSG_PING, NULL, 0);
  test_rt_start(rt);
  TEST_WAIT_UNTIL(ax_send(dead, MSG_PING, NULL, 0) == -ESRCH, 10000);
  test_send(c, MSG_GO, NULL, 0);
  test_rt_join_free(rt);
  ck_assert_int_eq(atomic_load(&client.done), 1);
  ck_assert_int_eq(client.replies, REQUESTS + 1);
  ck_assert_int_eq(atomic_load(&client.bad), 0);
  ck_assert_int_eq(atomic_load(&server.bad), 0);
  ck_assert_int_eq(atomic_load(&client.null_self_rc), -EINVAL);
  ck_assert_int_eq(atomic_load(&client.dead_rc), -ESRCH);
  ck_assert_int_eq(atomic_load(&server.plain_rc), -EINVAL);
  ck_assert_int_eq(atomic_load(&server.null_rc), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

START_TEST(test_actor_registry) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  rec_t recs[3];
  rec_reset(recs, 3);
  ax_ref_t a = spawn_rec(rt, &recs[0], AX_PLACE_CORE, 0);
  ax_ref_t b = spawn_rec(rt, &recs[1], AX_PLACE_CORE, 1);
  test_rt_start(rt);

  ck_assert(ax_whereis(rt, "alpha") == AX_REF_NONE);
  ck_assert_int_eq(ax_register(rt, "alpha", a), 0);
  ck_assert(ax_whereis(rt, "alpha") == a);
  ck_assert_int_eq(ax_register(rt, "alpha", b), -EEXIST);
  ck_assert_int_eq(ax_register(rt, "alpha", a), -EEXIST);
  ck_assert(ax_whereis(rt, "alpha") == a);
  ck_assert_int_eq(ax_register(rt, "beta", b), 0);
  ck_assert(ax_whereis(rt, "beta") == b);
  /* Names are exact strings. */
  ck_assert(ax_whereis(rt, "alph") == AX_REF_NONE);
  ck_assert(ax_whereis(rt, "alphaa") == AX_REF_NONE);
  ck_assert(ax_whereis(rt, "Alpha") == AX_REF_NONE);

  ck_assert_int_eq(ax_unregister(rt, "alpha"), 0);
  ck_assert(ax_whereis(rt, "alpha") == AX_REF_NONE);
  ck_assert_int_eq(ax_unregister(rt, "alpha"), -ENOENT);
  ck_assert_int_eq(ax_register(rt, "alpha", b), 0);
  ck_assert(ax_whereis(rt, "alpha") == b);

  /* Lengths: AX_NAME_MAX characters fit, one more does not. */
  char name[AX_NAME_MAX + 2];
  memset(name, 'n', sizeof name);
  name[AX_NAME_MAX] = '\0';
  ck_assert_int_eq(ax_register(rt, name, a), 0);
  ck_assert(ax_whereis(rt, name) == a);
  ck_assert_int_eq(ax_unregister(rt, name), 0);
  name[AX_NAME_MAX] = 'n';
  name[AX_NAME_MAX + 1] = '\0';
  ck_assert_int_eq(ax_register(rt, name, a), -EINVAL);
  ck_assert(ax_whereis(rt, name) == AX_REF_NONE);
  ck_assert_int_eq(ax_register(rt, "", a), -EINVAL);
  ck_assert_int_eq(ax_register(rt, NULL, a), -EINVAL);
  ck_assert_int_eq(ax_register(NULL, "gamma", a), -EINVAL);
  ck_assert_int_eq(ax_unregister(NULL, "alpha"), -EINVAL);
  ck_assert_int_eq(ax_unregister(rt, NULL), -EINVAL);
  ck_assert(ax_whereis(rt, NULL) == AX_REF_NONE);
  ck_assert(ax_whereis(NULL, "alpha") == AX_REF_NONE);
  int rc = ax_register(rt, "none", AX_REF_NONE);
  ck_assert_msg(rc == -EINVAL || rc == -ESRCH, "register AX_REF_NONE: %s", ax_strerror(rc));
  ck_assert(ax_whereis(rt, "none") == AX_REF_NONE);

  /* An actor of another runtime is not one of rt's. */
  ax_rt_t *other = test_rt_new(1, 0);
  ax_ref_t foreign = spawn_rec(other, &recs[2], AX_PLACE_ANY, 0);
  ck_assert_int_eq(ax_register(rt, "foreign", foreign), -EINVAL);
  ck_assert(ax_whereis(rt, "foreign") == AX_REF_NONE);
  ck_assert_int_eq(ax_rt_free(other), 0);

  /* The name goes away with its actor and can then be taken again. */
  ck_assert_int_eq(ax_register(rt, "gamma", a), 0);
  test_send(a, MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&recs[0].terminates) == 1, 10000);
  TEST_WAIT_UNTIL(ax_whereis(rt, "gamma") == AX_REF_NONE, 10000);
  assert_ref_dead(a);
  ck_assert_int_eq(ax_register(rt, "delta", a), -ESRCH);
  ck_assert(ax_whereis(rt, "delta") == AX_REF_NONE);
  ck_assert_int_eq(ax_register(rt, "gamma", b), 0);
  ck_assert(ax_whereis(rt, "gamma") == b);
  /* b holds three names; all go when it stops. */
  test_send(b, MSG_STOP, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&recs[1].terminates) == 1, 10000);
  TEST_WAIT_UNTIL(ax_whereis(rt, "alpha") == AX_REF_NONE, 10000);
  TEST_WAIT_UNTIL(ax_whereis(rt, "beta") == AX_REF_NONE, 10000);
  TEST_WAIT_UNTIL(ax_whereis(rt, "gamma") == AX_REF_NONE, 10000);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Looks up a name from inside an actor and sends to it. */
typedef struct looker {
  ax_rt_t *rt;
  atomic_int found;
} looker_t;

static int looker_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  looker_t *l = ax_state(self);
  ax_ref_t target = ax_whereis(l->rt, "target");
  if (target != AX_REF_NONE && ax_send(target, MSG_STOP, NULL, 0) == 0)
    atomic_store(&l->found, 1);
  return AX_STOP;
}

START_TEST(test_actor_registry_from_actor) {
  ax_rt_t *rt = test_rt_new(2, 0);
  rec_t target;
  rec_reset(&target, 1);
  looker_t looker;
  looker.rt = rt;
  atomic_init(&looker.found, 0);
  ax_ref_t t = spawn_rec(rt, &target, AX_PLACE_CORE, 1);
  ck_assert_int_eq(ax_register(rt, "target", t), 0);
  ax_ref_t l = test_spawn(rt, looker_behaviour, &looker, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(l, MSG_GO, NULL, 0);
  ck_assert_int_eq(ax_rt_run(rt), 0);
  ck_assert_int_eq(atomic_load(&looker.found), 1);
  ck_assert_int_eq(atomic_load(&target.terminates), 1);
  ck_assert_int_eq(atomic_load(&target.reason), AX_REASON_NORMAL);
  ck_assert(ax_whereis(rt, "target") == AX_REF_NONE);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

enum { RACE_THREADS = 4, RACE_NAMES = 200 };

typedef struct race {
  ax_rt_t *rt;
  ax_ref_t refs[RACE_THREADS];
  atomic_int winners[RACE_NAMES];
  atomic_int others;
  atomic_int go;
} race_t;

typedef struct racer {
  race_t *race;
  int index;
} racer_t;

/* Every racer registers every name; exactly one may win each. */
static void *racer_main(void *arg) {
  racer_t *r = arg;
  race_t *race = r->race;
  while (!atomic_load(&race->go)) {
  }
  for (int i = 0; i < RACE_NAMES; i++) {
    char name[32];
    snprintf(name, sizeof name, "name-%d", i);
    int rc = ax_register(race->rt, name, race->refs[r->index]);
    if (rc == 0)
      atomic_fetch_add(&race->winners[i], 1);
    else if (rc != -EEXIST)
      atomic_fetch_add(&race->others, 1);
  }
  return NULL;
}

START_TEST(test_actor_registry_race) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  race_t race;
  memset(&race, 0, sizeof race);
  race.rt = rt;
  rec_t recs[RACE_THREADS];
  rec_reset(recs, RACE_THREADS);
  for (int i = 0; i < RACE_THREADS; i++)
    race.refs[i] = spawn_rec(rt, &recs[i], AX_PLACE_ANY, 0);
  test_rt_start(rt);
  racer_t racers[RACE_THREADS];
  pthread_t tids[RACE_THREADS];
  for (int i = 0; i < RACE_THREADS; i++) {
    racers[i].race = &race;
    racers[i].index = i;
    ck_assert_int_eq(pthread_create(&tids[i], NULL, racer_main, &racers[i]), 0);
  }
  atomic_store(&race.go, 1);
  for (int i = 0; i < RACE_THREADS; i++)
    ck_assert_int_eq(pthread_join(tids[i], NULL), 0);
  ck_assert_int_eq(atomic_load(&race.others), 0);
  for (int i = 0; i < RACE_NAMES; i++) {
    ck_assert_int_eq(atomic_load(&race.winners[i]), 1);
    char name[32];
    snprintf(name, sizeof name, "name-%d", i);
    ax_ref_t owner = ax_whereis(rt, name);
    bool known = false;
    for (int k = 0; k < RACE_THREADS; k++)
      known = known || owner == race.refs[k];
    ck_assert(known);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *actor_suite(void) {
  Suite *suite = suite_create("actor");

  TCase *tc = tcase_create("spawn");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_actor_spawn_placement);
  tcase_add_test(tc, test_actor_spawn_placement_from_actor);
  tcase_add_test(tc, test_actor_spawn_spill_needs_lasting_queue);
  tcase_add_test(tc, test_actor_identity);
  suite_add_tcase(suite, tc);

  tc = tcase_create("hooks");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_actor_init_before_first_message);
  tcase_add_test(tc, test_actor_terminate_reasons);
  tcase_add_test(tc, test_actor_stop_self_drops_mailbox);
  tcase_add_test(tc, test_actor_stop_no_message_after);
  suite_add_tcase(suite, tc);

  tc = tcase_create("payload");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_actor_payload_copied);
  tcase_add_test(tc, test_actor_big_payload);
  tcase_add_test(tc, test_actor_send_owned);
  tcase_add_test(tc, test_actor_send_owned_dropped);
  suite_add_tcase(suite, tc);

  tc = tcase_create("send");
  tcase_set_timeout(tc, 180);
  tcase_add_test(tc, test_actor_ordering_per_sender);
  tcase_add_test(tc, test_actor_burst_across_cores);
  tcase_add_test(tc, test_actor_send_errors);
  tcase_add_test(tc, test_actor_send_to_stopped);
  tcase_add_test(tc, test_actor_slots_given_back);
  tcase_add_test(tc, test_actor_mailbox_len);
  tcase_add_test(tc, test_actor_mailbox_bound);
  tcase_add_test(tc, test_actor_mailbox_bound_fiber);
  suite_add_tcase(suite, tc);

  tc = tcase_create("request");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_actor_request_reply);
  suite_add_tcase(suite, tc);

  tc = tcase_create("names");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_actor_registry);
  tcase_add_test(tc, test_actor_registry_from_actor);
  tcase_add_test(tc, test_actor_registry_race);
  tcase_add_test(tc, test_actor_refused_no_dead_letter);
  tcase_add_test(tc, test_actor_send_after_rt_stop);
  tcase_add_test(tc, test_actor_registry_many);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(actor_suite());
}
