/* Check suite for the work pool: results as messages, bounds, cancellation, owners that stop, fibers, shutdown. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "axon_test.h"

enum {
  MSG_GO = AX_MSG_USER, /* start the scenario in the actor's state */
  MSG_MARK,             /* the actor's own marker: what came before it was handled */
  MSG_REPORT,           /* report_t, to the test's port */
  MSG_OTHER,            /* an ordinary message for a fiber that waits on work */
};

typedef struct report {
  int code;       /* what the scenario says (per test) */
  int64_t value;  /* a result, a count */
  unsigned core;  /* the core the report was made on */
  uint64_t id;
} report_t;

/* A gate a pool function waits at, so that a test knows what runs. */
static atomic_int gate_open;
static atomic_int running_now, running_most, ran, disposed;

static void gate_reset(void) {
  atomic_store(&gate_open, 0);
  atomic_store(&running_now, 0);
  atomic_store(&running_most, 0);
  atomic_store(&ran, 0);
  atomic_store(&disposed, 0);
}

/* Doubles *(int64_t *)arg. */
static int64_t twice(void *arg) {
  atomic_fetch_add(&ran, 1);
  return 2 * *(int64_t *)arg;
}

/* Waits for the gate, then returns 7. */
static int64_t held(void *arg) {
  (void)arg;
  int now = atomic_fetch_add(&running_now, 1) + 1;
  for (int most = atomic_load(&running_most); now > most;)
    if (atomic_compare_exchange_weak(&running_most, &most, now))
      break;
  while (!atomic_load(&gate_open))
    test_sleep_ms(1);
  atomic_fetch_sub(&running_now, 1);
  atomic_fetch_add(&ran, 1);
  return 7;
}

static void count_dispose(void *arg) {
  (void)arg;
  atomic_fetch_add(&disposed, 1);
}

static void free_dispose(void *arg) {
  free(arg);
  atomic_fetch_add(&disposed, 1);
}

static void report(ax_ref_t port, ax_actor_t *self, int code, int64_t value, uint64_t id) {
  report_t r = {code, value, ax_core(self), id};
  ck_assert_int_eq(ax_send(port, MSG_REPORT, &r, sizeof r), 0);
}

static report_t expect_report(ax_port_t *port, int64_t within_ns) {
  ax_msg_t m;
  int rc = ax_port_recv(port, ax_deadline(within_ns), &m);
  ck_assert_msg(rc == 0, "no report: %s", ax_strerror(rc));
  ck_assert_uint_eq(m.type, MSG_REPORT);
  report_t r;
  memcpy(&r, m.data, sizeof r);
  return r;
}

static void expect_no_report(ax_port_t *port, int64_t for_ns) {
  ax_msg_t m;
  ck_assert_int_eq(ax_port_recv(port, ax_deadline(for_ns), &m), -ETIMEDOUT);
}

static ax_rt_t *rt_with(unsigned cores, unsigned threads, unsigned queue) {
  ax_rt_opts_t o = {.cores = cores, .work_threads = threads, .work_queue = queue,
                    .flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  ck_assert_int_eq(ax_rt_start(rt), 0);
  return rt;
}

static void rt_done(ax_rt_t *rt) {
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}

/* ------------------------------------------------------------------------ */
/* Results come back as messages, on the owner's core                        */

typedef struct many {
  ax_ref_t port;
  int n, got;
  int64_t *args;
  uint64_t *ids;
  int64_t sum;
} many_t;

static int many_actor(ax_actor_t *self, const ax_msg_t *msg) {
  many_t *s = ax_state(self);
  if (msg->type == MSG_GO) {
    for (int i = 0; i < s->n; i++) {
      int rc;
      while ((rc = ax_work_submit(self, twice, &s->args[i], NULL, &s->ids[i])) == -EAGAIN)
        test_sleep_ms(1); /* the queue's bound: a test of its own below */
      ck_assert_int_eq(rc, 0);
      ck_assert(s->ids[i] != 0);
      ck_assert(i == 0 || s->ids[i] != s->ids[i - 1]);
    }
  } else if (msg->type == AX_MSG_WORK) {
    const ax_work_done_t *d = msg->data;
    ck_assert_uint_eq(msg->size, sizeof *d);
    int i = (int)((int64_t *)d->arg - s->args);
    ck_assert(i >= 0 && i < s->n);
    ck_assert_uint_eq(d->id, s->ids[i]);
    ck_assert_int_eq(d->result, 2 * s->args[i]);
    s->ids[i] = 0; /* a second result for it would fail above */
    s->sum += d->result;
    if (++s->got == s->n)
      report(s->port, self, 0, s->sum, 0);
  }
  return 0;
}

START_TEST(test_work_results) {
  gate_reset();
  ax_rt_t *rt = rt_with(2, 3, 64);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  enum { N = 2000 };
  many_t s = {.port = ax_port_ref(port), .n = N};
  s.args = calloc(N, sizeof *s.args);
  s.ids = calloc(N, sizeof *s.ids);
  int64_t want = 0;
  for (int i = 0; i < N; i++) {
    s.args[i] = i + 1;
    want += 2 * (i + 1);
  }
  ax_ref_t a;
  ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 1};
  ck_assert_int_eq(ax_spawn(rt, many_actor, &s, &so, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  report_t r = expect_report(port, 30 * 1000000000LL);
  ck_assert_int_eq(r.value, want);
  ck_assert_uint_eq(r.core, 1);
  ck_assert_int_eq(atomic_load(&ran), N);
  ax_work_stats_t st;
  ck_assert_int_eq(ax_work_stats(rt, &st), 0);
  ck_assert_uint_le(st.threads, 3);
  ck_assert_uint_ge(st.threads, 1);
  ck_assert_uint_eq(st.done, N);
  ck_assert_uint_eq(st.queued, 0);
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
  free(s.args);
  free(s.ids);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Bounds: threads and queue                                                 */

typedef struct bound {
  ax_ref_t port;
  int accepted, results;
} bound_t;

static int bound_actor(ax_actor_t *self, const ax_msg_t *msg) {
  bound_t *s = ax_state(self);
  if (msg->type == MSG_GO) {
    /* 2 threads, a queue of 3: at most 2 run and 3 wait, so of 6 submits
     * in one turn at least 1 is refused, and at least 3 are accepted (the
     * queue alone holds 3). */
    int rcs[6];
    for (int i = 0; i < 6; i++) {
      rcs[i] = ax_work_submit(self, held, NULL, NULL, NULL);
      if (rcs[i] == 0)
        s->accepted++;
    }
    for (int i = 0; i < 6; i++)
      report(s->port, self, rcs[i], i, 0);
    return 0;
  }
  if (msg->type == AX_MSG_WORK) {
    ck_assert_int_eq(((const ax_work_done_t *)msg->data)->result, 7);
    if (++s->results == s->accepted)
      report(s->port, self, 100, s->results, 0);
  }
  return 0;
}

START_TEST(test_work_bounds) {
  gate_reset();
  ax_rt_t *rt = rt_with(1, 2, 3);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  bound_t s = {.port = ax_port_ref(port)};
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, bound_actor, &s, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 6; i++) {
    report_t r = expect_report(port, 10 * 1000000000LL);
    ck_assert_int_eq(r.value, i);
    ck_assert_msg(r.code == 0 || r.code == -EAGAIN, "submit %d: %d", i, r.code);
    if (r.code == 0)
      accepted++;
    else
      refused++;
  }
  ck_assert_int_ge(accepted, 3);
  ck_assert_int_ge(refused, 1);
  test_sleep_ms(50);
  ax_work_stats_t st;
  ck_assert_int_eq(ax_work_stats(rt, &st), 0);
  ck_assert_uint_le(st.threads, 2);
  ck_assert_int_le(atomic_load(&running_most), 2);
  ck_assert_uint_eq(st.refused, (unsigned)refused);
  ck_assert_uint_eq(st.queued + st.running, (unsigned)accepted);
  atomic_store(&gate_open, 1);
  report_t r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, 100);
  ck_assert_int_eq(r.value, accepted);
  ck_assert_int_eq(atomic_load(&ran), accepted);
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

START_TEST(test_work_bad_input) {
  ax_rt_opts_t o = {.work_threads = AX_WORK_THREADS_MAX + 1};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), -EINVAL);
  o = (ax_rt_opts_t){.work_queue = AX_WORK_QUEUE_MAX + 1};
  ck_assert_int_eq(ax_rt_new(&o, &rt), -EINVAL);
  ck_assert_int_eq(ax_work_submit(NULL, twice, NULL, NULL, NULL), -EINVAL);
  ck_assert_int_eq(ax_work_cancel(NULL, 1), -EINVAL);
  ck_assert_int_eq(ax_work_call(NULL, twice, NULL), -EPERM);
  ck_assert_int_eq(ax_work_stats(NULL, NULL), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misuse from the wrong place                                               */

typedef struct misuse {
  ax_ref_t port;
  ax_actor_t *self;
} misuse_t;

static int misuse_actor(ax_actor_t *self, const ax_msg_t *msg) {
  misuse_t *s = ax_state(self);
  if (msg->type == MSG_GO) {
    s->self = self;
    report(s->port, self, (int)ax_work_submit(self, NULL, NULL, NULL, NULL), 0, 0);
    report(s->port, self, (int)ax_work_cancel(self, 0), 0, 0);
    report(s->port, self, (int)ax_work_cancel(self, 12345), 0, 0);
    report(s->port, self, (int)ax_work_call(self, twice, NULL), 0, 0); /* no fiber */
  }
  return 0;
}

START_TEST(test_work_misuse) {
  ax_rt_t *rt = rt_with(1, 0, 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  misuse_t s = {.port = ax_port_ref(port)};
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, misuse_actor, &s, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  ck_assert_int_eq(expect_report(port, 5 * 1000000000LL).code, -EINVAL);
  ck_assert_int_eq(expect_report(port, 5 * 1000000000LL).code, -EINVAL);
  ck_assert_int_eq(expect_report(port, 5 * 1000000000LL).code, -ENOENT);
  ck_assert_int_eq(expect_report(port, 5 * 1000000000LL).code, -EPERM);
  /* From a thread that is not the actor's core. */
  int64_t x = 1;
  ck_assert_int_eq(ax_work_submit(s.self, twice, &x, NULL, NULL), -EPERM);
  ck_assert_int_eq(ax_work_cancel(s.self, 1), -EPERM);
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Cancellation                                                              */

typedef struct canc {
  ax_ref_t port;
  uint64_t id_run, id_wait, id_done;
  int64_t x;
  int work_msgs;
} canc_t;

static int cancel_actor(ax_actor_t *self, const ax_msg_t *msg) {
  canc_t *s = ax_state(self);
  switch (msg->type) {
  case MSG_GO: {
    /* One thread: the first runs (held), the second waits in the queue. */
    ck_assert_int_eq(ax_work_submit(self, held, NULL, count_dispose, &s->id_run), 0);
    ck_assert_int_eq(ax_work_submit(self, held, NULL, count_dispose, &s->id_wait), 0);
    while (atomic_load(&running_now) == 0)
      test_sleep_ms(1);
    int queued = ax_work_cancel(self, s->id_wait); /* never runs */
    int disposed_then = atomic_load(&disposed);
    int running = ax_work_cancel(self, s->id_run); /* runs on, result dropped */
    int again = ax_work_cancel(self, s->id_run);
    report(s->port, self, queued, disposed_then, 0);
    report(s->port, self, running, atomic_load(&disposed), 0);
    report(s->port, self, again, 0, 0);
    atomic_store(&gate_open, 1);
    /* A third finishes (the pool sends its result) before it is handled:
     * cancelled now, its message in the mailbox is dropped. */
    int64_t before = 0;
    ax_work_stats_t st;
    ck_assert_int_eq(ax_work_stats(ax_actor_rt(self), &st), 0);
    before = (int64_t)st.done;
    s->x = 21;
    ck_assert_int_eq(ax_work_submit(self, twice, &s->x, count_dispose, &s->id_done), 0);
    do {
      test_sleep_ms(1);
      ck_assert_int_eq(ax_work_stats(ax_actor_rt(self), &st), 0);
    } while ((int64_t)st.done == before);
    report(s->port, self, ax_work_cancel(self, s->id_done), atomic_load(&disposed), 0);
    ck_assert_int_eq(ax_send(ax_self(self), MSG_MARK, NULL, 0), 0);
    return 0;
  }
  case AX_MSG_WORK:
    s->work_msgs++;
    return 0;
  case MSG_MARK:
    report(s->port, self, s->work_msgs, atomic_load(&disposed), 0);
    return 0;
  }
  return 0;
}

START_TEST(test_work_cancel) {
  gate_reset();
  ax_rt_t *rt = rt_with(1, 1, 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  canc_t s = {.port = ax_port_ref(port)};
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, cancel_actor, &s, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  report_t r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, 0);  /* the queued one: never ran */
  ck_assert_int_eq(r.value, 1); /* and its dispose ran at once */
  r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, 1);  /* the running one */
  ck_assert_int_eq(r.value, 1); /* its dispose waits for fn */
  r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, -ENOENT); /* cancelled already */
  r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, 1); /* finished, not handled */
  r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, 0); /* no result message reached the behaviour */
  /* Each of the three disposed exactly once, the running one after fn. */
  for (int i = 0; i < 1000 && atomic_load(&disposed) < 3; i++)
    test_sleep_ms(1);
  ck_assert_int_eq(atomic_load(&disposed), 3);
  ck_assert_int_eq(atomic_load(&ran), 2); /* held once, twice once */
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* An owner that stops: nothing runs that had not started, nothing lost      */

typedef struct dying {
  ax_ref_t port;
} dying_t;

static int dying_actor(ax_actor_t *self, const ax_msg_t *msg) {
  dying_t *s = ax_state(self);
  if (msg->type == MSG_GO) {
    for (int i = 0; i < 4; i++) {
      int64_t *x = malloc(sizeof *x); /* freed by dispose: ASan sees leaks */
      ck_assert_int_eq(ax_work_submit(self, held, x, free_dispose, NULL), 0);
    }
    while (atomic_load(&running_now) < 2)
      test_sleep_ms(1);
    report(s->port, self, 0, 0, 0);
    return AX_STOP; /* 2 running, 2 queued */
  }
  if (msg->type == AX_MSG_WORK)
    report(s->port, self, -1, 0, 0); /* never: it stopped */
  return 0;
}

START_TEST(test_work_owner_stops) {
  gate_reset();
  ax_rt_t *rt = rt_with(1, 2, 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  dying_t s = {.port = ax_port_ref(port)};
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, dying_actor, &s, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  ck_assert_int_eq(expect_report(port, 10 * 1000000000LL).code, 0);
  for (int i = 0; i < 1000 && atomic_load(&disposed) < 2; i++)
    test_sleep_ms(1);
  ck_assert_int_eq(atomic_load(&disposed), 2); /* the queued two, at the death */
  atomic_store(&gate_open, 1);
  for (int i = 0; i < 1000 && atomic_load(&disposed) < 4; i++)
    test_sleep_ms(1);
  ck_assert_int_eq(atomic_load(&disposed), 4); /* the running two, after fn */
  ck_assert_int_eq(atomic_load(&ran), 2);
  expect_no_report(port, 100 * 1000000LL);
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The runtime waits for running work when it stops                          */

static atomic_int slow_done;

static int64_t slow(void *arg) {
  (void)arg;
  test_sleep_ms(200);
  atomic_store(&slow_done, 1);
  return 0;
}

static int stopper(ax_actor_t *self, const ax_msg_t *msg) {
  (void)msg;
  ck_assert_int_eq(ax_work_submit(self, slow, NULL, NULL, NULL), 0);
  test_sleep_ms(20); /* let a thread take it */
  ax_rt_stop(ax_actor_rt(self));
  return 0;
}

START_TEST(test_work_shutdown_waits) {
  atomic_store(&slow_done, 0);
  ax_rt_t *rt = rt_with(2, 0, 0);
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, stopper, NULL, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(atomic_load(&slow_done), 1);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Fibers                                                                    */

typedef struct fib {
  ax_ref_t port;
  int64_t value;
} fib_t;

/* Doubles a number on the pool while messages pile up; they stay queued
 * in order. */
static int call_fiber(ax_actor_t *self, void *arg) {
  fib_t *s = arg;
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(ax_send(ax_self(self), MSG_OTHER, &i, sizeof i), 0);
  int64_t x = 40;
  int64_t r = ax_work_call(self, twice, &x);
  report(s->port, self, 0, r, 0);
  for (int i = 0; i < 3; i++) {
    const ax_msg_t *m;
    ck_assert_int_eq(ax_recv(self, ax_deadline(1000000000LL), &m), 0);
    ck_assert_uint_eq(m->type, MSG_OTHER);
    ck_assert_int_eq(*(const int *)m->data, i);
  }
  report(s->port, self, 1, 0, 0);
  return 0;
}

START_TEST(test_work_fiber_call) {
  gate_reset();
  ax_rt_t *rt = rt_with(2, 0, 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  fib_t s = {.port = ax_port_ref(port)};
  ck_assert_int_eq(ax_spawn_fiber(rt, call_fiber, &s, NULL, NULL), 0);
  report_t r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, 0);
  ck_assert_int_eq(r.value, 80);
  ck_assert_int_eq(expect_report(port, 10 * 1000000000LL).code, 1);
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

/* Fills a buffer on the caller's stack, slowly. */
typedef struct stack_job {
  atomic_int started;
  char buf[64];
} stack_job_t;

static int64_t fill_slowly(void *arg) {
  stack_job_t *j = arg;
  atomic_store(&j->started, 1);
  test_sleep_ms(150);
  memset(j->buf, 'z', sizeof j->buf); /* the fiber's frame must still be there */
  return 1;
}

static _Atomic(stack_job_t *) job_seen; /* published once the job is set up */

static int stopped_fiber(ax_actor_t *self, void *arg) {
  fib_t *s = arg;
  stack_job_t job = {.started = 0};
  atomic_store(&job_seen, &job);
  int64_t r = ax_work_call(self, fill_slowly, &job);
  /* Stopped while fill_slowly ran: it has returned by now. */
  report(s->port, self, (int)r, job.buf[0] == 'z' && job.buf[63] == 'z', 0);
  return 0;
}

START_TEST(test_work_fiber_stopped) {
  ax_rt_t *rt = rt_with(1, 0, 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  fib_t s = {.port = ax_port_ref(port)};
  ax_ref_t f;
  atomic_store(&job_seen, NULL);
  ck_assert_int_eq(ax_spawn_fiber(rt, stopped_fiber, &s, NULL, &f), 0);
  stack_job_t *j;
  while ((j = atomic_load(&job_seen)) == NULL || !atomic_load(&j->started))
    test_sleep_ms(1);
  ck_assert_int_eq(ax_stop(f, 0), 0);
  report_t r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, -ECANCELED);
  ck_assert_int_eq(r.value, 1);
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

/* A fiber with a work item of its own running is stopped inside
 * ax_work_call: its stop waits for the called function, and the other
 * item ends meanwhile, its result refused by the dying owner.  That item
 * must be freed once (it was freed by the pool while still on the owner's
 * list, which its death walked next: a use after free under ASan, when
 * the reference failed before the work's death hook ran). */
static int64_t short_sleep(void *arg) {
  (void)arg;
  test_sleep_ms(20);
  return 1;
}

static int64_t long_sleep(void *arg) {
  (void)arg;
  test_sleep_ms(150);
  return 2;
}

static atomic_int two_started;

static int two_works_fiber(ax_actor_t *self, void *arg) {
  (void)arg;
  uint64_t id;
  if (ax_work_submit(self, short_sleep, NULL, NULL, &id) != 0)
    return -EIO;
  atomic_store(&two_started, 1);
  int local = 0;
  return ax_work_call(self, long_sleep, &local) == -ECANCELED ? 0 : -EIO;
}

START_TEST(test_work_fiber_stopped_other_work_ends) {
  for (int round = 0; round < 3; round++) {
    ax_rt_t *rt = rt_with(1, 2, 0);
    ax_ref_t f;
    atomic_store(&two_started, 0);
    ck_assert_int_eq(ax_spawn_fiber(rt, two_works_fiber, NULL, NULL, &f), 0);
    while (!atomic_load(&two_started))
      test_sleep_ms(1);
    test_sleep_ms(5);
    ck_assert_int_eq(ax_stop(f, 0), 0);
    rt_done(rt);
  }
}
END_TEST

/* A fiber stopped while its work waits in the queue: dropped at once. */
static int queued_fiber(ax_actor_t *self, void *arg) {
  fib_t *s = arg;
  report(s->port, self, 2, 0, 0);
  int64_t r = ax_work_call(self, twice, &s->value);
  report(s->port, self, (int)r, atomic_load(&ran), 0);
  return 0;
}

/* Holds the pool's one thread until the gate opens. */
static int holder(ax_actor_t *self, const ax_msg_t *msg) {
  if (msg->type == MSG_GO)
    ck_assert_int_eq(ax_work_submit(self, held, NULL, NULL, NULL), 0);
  return 0;
}

START_TEST(test_work_fiber_stopped_queued) {
  gate_reset();
  ax_rt_t *rt = rt_with(1, 1, 0);
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  fib_t s = {.port = ax_port_ref(port), .value = 5};
  ax_ref_t h, f;
  ck_assert_int_eq(ax_spawn(rt, holder, NULL, NULL, &h), 0);
  ck_assert_int_eq(ax_send(h, MSG_GO, NULL, 0), 0);
  while (atomic_load(&running_now) == 0)
    test_sleep_ms(1);
  ck_assert_int_eq(ax_spawn_fiber(rt, queued_fiber, &s, NULL, &f), 0);
  ck_assert_int_eq(expect_report(port, 10 * 1000000000LL).code, 2);
  test_sleep_ms(20); /* the fiber parks with its work queued */
  ck_assert_int_eq(ax_stop(f, 0), 0);
  report_t r = expect_report(port, 10 * 1000000000LL);
  ck_assert_int_eq(r.code, -ECANCELED);
  ck_assert_int_eq(r.value, 0); /* nothing ran: held waits at the gate */
  atomic_store(&gate_open, 1);
  for (int i = 0; i < 1000 && atomic_load(&ran) < 1; i++)
    test_sleep_ms(1);
  test_sleep_ms(20);
  ck_assert_int_eq(atomic_load(&ran), 1); /* held only: twice never ran */
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

/* Pool threads run on every CPU of the process, not on the one CPU of the
 * (pinned) core that started them. */
static int64_t cpus_here(void *arg) {
  (void)arg;
  cpu_set_t set;
  return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -errno;
}

static int affinity_actor(ax_actor_t *self, const ax_msg_t *msg) {
  ax_ref_t port = *(ax_ref_t *)ax_state(self);
  if (msg->type == MSG_GO)
    ck_assert_int_eq(ax_work_submit(self, cpus_here, NULL, NULL, NULL), 0);
  else if (msg->type == AX_MSG_WORK)
    report(port, self, 0, ((const ax_work_done_t *)msg->data)->result, 0);
  return 0;
}

START_TEST(test_work_affinity) {
  cpu_set_t set;
  ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
  ax_rt_t *rt = rt_with(1, 0, 0); /* core 0 pinned to one CPU */
  ax_port_t *port;
  ck_assert_int_eq(ax_port_new(rt, &port), 0);
  ax_ref_t pref = ax_port_ref(port), a;
  ck_assert_int_eq(ax_spawn(rt, affinity_actor, &pref, NULL, &a), 0);
  ck_assert_int_eq(ax_send(a, MSG_GO, NULL, 0), 0);
  ck_assert_int_eq(expect_report(port, 10 * 1000000000LL).value, CPU_COUNT(&set));
  ck_assert_int_eq(ax_port_close(port), 0);
  rt_done(rt);
}
END_TEST

/* A submit from a terminate hook at the runtime's shutdown: -ESHUTDOWN,
 * and neither the function nor its dispose runs (it returned 0, the work
 * was then dropped). */
static _Atomic int late_rc = 1, late_ran, late_disposed;

static int64_t late_fn(void *arg) {
  (void)arg;
  atomic_fetch_add(&late_ran, 1);
  return 0;
}

static void late_dispose(void *arg) {
  (void)arg;
  atomic_fetch_add(&late_disposed, 1);
}

static void late_terminate(ax_actor_t *self, int reason) {
  if (reason == AX_REASON_SHUTDOWN)
    atomic_store(&late_rc, ax_work_submit(self, late_fn, NULL, late_dispose, NULL));
}

START_TEST(test_work_submit_at_shutdown) {
  ax_rt_t *rt = rt_with(1, 0, 0);
  ax_spawn_opts_t so = {.terminate = late_terminate};
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, test_idle_behaviour, NULL, &so, &a), 0);
  rt_done(rt);
  ck_assert_int_eq(atomic_load(&late_rc), -ESHUTDOWN);
  ck_assert_int_eq(atomic_load(&late_ran), 0);
  ck_assert_int_eq(atomic_load(&late_disposed), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("work");
  TCase *tc = tcase_create("pool");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_work_results);
  tcase_add_test(tc, test_work_bounds);
  tcase_add_test(tc, test_work_bad_input);
  tcase_add_test(tc, test_work_misuse);
  tcase_add_test(tc, test_work_cancel);
  tcase_add_test(tc, test_work_owner_stops);
  tcase_add_test(tc, test_work_shutdown_waits);
  tcase_add_test(tc, test_work_affinity);
  suite_add_tcase(s, tc);
  tc = tcase_create("fiber");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_work_fiber_call);
  tcase_add_test(tc, test_work_fiber_stopped);
  tcase_add_test(tc, test_work_fiber_stopped_other_work_ends);
  tcase_add_test(tc, test_work_fiber_stopped_queued);
  tcase_add_test(tc, test_work_submit_at_shutdown);
  suite_add_tcase(s, tc);
  return test_run_suite(s);
}
