/* Check suite for fibers, messages: ping-pong, selective receive, deadlines, sleep and yield, stop reasons, cancellation, misuse, owned buffers, many parked fibers, stack overflow. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "fiber_test.h"

enum {
  MSG_PING = AX_MSG_USER,
  MSG_PONG,
  MSG_GO,       /* start whatever the actor does */
  MSG_CONTINUE, /* a noise actor's own timer: the second half of a phase */
  MSG_NOISE_A,  /* noise: a noise_t */
  MSG_NOISE_B,
  MSG_NOISE_C,
  MSG_WANT,     /* what ax_recv_type waits for */
  MSG_REQ,      /* a request */
  MSG_REPLY,    /* the reply's type; noise of this type carries no req */
  MSG_MATCH,    /* what ax_recv_match waits for (magic 3); noise too (magic 0) */
  MSG_DONE,     /* the noise actor's last message: a noise_t whose seq is the count */
  MSG_GOODBYE,  /* a cancelled fiber's farewell */
  MSG_NEVER,    /* a type nobody sends */
  MSG_SELF,     /* sent by a fiber to itself */
  MSG_OWNED,    /* an ax_send_owned buffer */
  MSG_COPIED,   /* a copied payload */
  MSG_QUIT,     /* tells a parked fiber to return */
};

/* ------------------------------------------------------------------------ */
/* 1. Ping-pong with a handler actor, same core and across cores             */

/* Answers MSG_PING with MSG_PONG carrying the same payload. */
static int echo_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_PING)
    (void)ax_send(m->from, MSG_PONG, m->data, m->size);
  return 0;
}

typedef struct pingpong {
  fib_t f;
  ax_ref_t echo;
  uint64_t rounds;
  unsigned core;
  atomic_uint_fast64_t done_rounds;
} pingpong_t;

static int pingpong_fiber(ax_actor_t *self, void *arg) {
  pingpong_t *p = arg;
  atomic_store(&p->f.ran, 1);
  FCHECK(&p->f, ax_is_fiber(self));
  FCHECK(&p->f, ax_state(self) == arg);
  FCHECK_EQ(&p->f, ax_core(self), p->core);
  for (uint64_t i = 0; i < p->rounds; i++) {
    int rc = ax_send(p->echo, MSG_PING, &i, sizeof i);
    if (rc != 0) {
      fib_fail(&p->f, __LINE__, "round %llu: ax_send: %s", (unsigned long long)i,
               ax_strerror(rc));
      return rc;
    }
    const ax_msg_t *m = NULL;
    rc = ax_recv(self, ax_deadline(LONG_WAIT), &m);
    if (rc != 0) {
      fib_fail(&p->f, __LINE__, "round %llu: ax_recv: %s", (unsigned long long)i,
               ax_strerror(rc));
      return rc;
    }
    uint64_t v = UINT64_MAX;
    if (m->size == sizeof v)
      memcpy(&v, m->data, sizeof v);
    if (m->type != MSG_PONG || m->from != p->echo || v != i) {
      fib_fail(&p->f, __LINE__, "round %llu: got type %u size %u value %llu",
               (unsigned long long)i, (unsigned)m->type, (unsigned)m->size,
               (unsigned long long)v);
      return -EPROTO;
    }
    atomic_fetch_add(&p->done_rounds, 1);
  }
  return 0;
}

/* 10,000 round trips from a fiber to a handler actor on its own core and,
 * at the same time, from a fiber on the other core. */
START_TEST(test_fiber_ping_pong) {
  ax_rt_t *rt = rt_new();
  ax_ref_t echo = test_spawn(rt, echo_behaviour, NULL, AX_PLACE_CORE, 0, NULL, NULL);
  const uint64_t rounds = 10000;
  static pingpong_t p[2];
  for (unsigned i = 0; i < 2; i++) {
    memset(&p[i], 0, sizeof p[i]);
    fib_init(&p[i].f);
    p[i].echo = echo;
    p[i].rounds = rounds;
    p[i].core = i; /* 0: the echo's core; 1: across cores */
  }
  for (unsigned i = 0; i < 2; i++)
    spawn_fiber(rt, pingpong_fiber, &p[i].f, i, 0);
  for (unsigned i = 0; i < 2; i++) {
    fib_wait(&p[i].f, 60000);
    ck_assert_uint_eq(atomic_load(&p[i].done_rounds), rounds);
    ck_assert_int_eq(atomic_load(&p[i].f.reason), AX_REASON_NORMAL);
  }
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 2. Selective receive while other messages arrive                          */

/* The noise actor's payload: seq numbers the noise (0, 1, 2, ... across
 * every type); magic marks what a selective call waits for (0 for noise). */
typedef struct noise {
  uint32_t seq;
  uint32_t magic;
} noise_t;

enum { NOISE_BATCH = 40, NOISE_PHASES = 3 };

typedef struct noisy {
  fib_t f;            /* the noise actor's own failures (no terminate hook) */
  ax_ref_t fiber;
  uint32_t next_seq;
  int phase;
  ax_ref_t req_from;  /* phase 2: the request to answer in the second half */
  uint64_t req_id;
} noisy_t;

static const uint32_t noise_types[] = {MSG_NOISE_A, MSG_NOISE_B, MSG_MATCH, MSG_NOISE_C,
                                       MSG_REPLY};

static void noise_batch(noisy_t *n, int count) {
  for (int i = 0; i < count; i++) {
    noise_t x = {n->next_seq, 0};
    uint32_t type = noise_types[n->next_seq % (sizeof noise_types / sizeof noise_types[0])];
    int rc = ax_send(n->fiber, type, &x, sizeof x);
    FCHECK_EQ(&n->f, rc, 0);
    n->next_seq++;
  }
}

/* Phases (each started by the fiber): noise, then (5 ms later, on its own
 * timer, so the fiber is parked meanwhile) more noise, what the fiber waits
 * for, and more noise.  Phase 1: MSG_WANT.  Phase 2 (a request): a decoy of
 * the reply's type without req, then the reply.  Phase 3: MSG_MATCH with
 * magic 3, then MSG_DONE last. */
static int noise_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  noisy_t *n = ax_state(self);
  if (m->type == MSG_GO || m->type == MSG_REQ) {
    int phase = 0;
    if (m->size == sizeof phase)
      memcpy(&phase, m->data, sizeof phase);
    if (n->fiber == AX_REF_NONE)
      n->fiber = m->from; /* the fiber's first message names it */
    FCHECK(&n->f, m->from == n->fiber);
    FCHECK_EQ(&n->f, phase, n->phase + 1);
    n->phase = phase;
    if (m->type == MSG_REQ) {
      FCHECK(&n->f, m->req != 0);
      n->req_from = m->from;
      n->req_id = m->req;
    }
    noise_batch(n, NOISE_BATCH);
    FCHECK_EQ(&n->f, ax_after(self, 5 * MSEC, MSG_CONTINUE, &phase, sizeof phase, NULL), 0);
    return 0;
  }
  if (m->type == MSG_CONTINUE) {
    noise_batch(n, NOISE_BATCH);
    if (n->phase == 1) {
      noise_t w = {UINT32_MAX, 1};
      FCHECK_EQ(&n->f, ax_send(n->fiber, MSG_WANT, &w, sizeof w), 0);
    } else if (n->phase == 2) {
      /* a decoy: the reply's type, numbered noise, no req */
      noise_t d = {n->next_seq++, 0};
      FCHECK_EQ(&n->f, ax_send(n->fiber, MSG_REPLY, &d, sizeof d), 0);
      ax_msg_t req;
      memset(&req, 0, sizeof req);
      req.from = n->req_from;
      req.req = n->req_id;
      noise_t w = {UINT32_MAX, 2};
      FCHECK_EQ(&n->f, ax_reply(self, &req, MSG_REPLY, &w, sizeof w), 0);
    } else {
      noise_t w = {UINT32_MAX, 3};
      FCHECK_EQ(&n->f, ax_send(n->fiber, MSG_MATCH, &w, sizeof w), 0);
    }
    noise_batch(n, NOISE_BATCH);
    if (n->phase == NOISE_PHASES) {
      noise_t d = {n->next_seq, 0}; /* the count, not numbered itself */
      FCHECK_EQ(&n->f, ax_send(n->fiber, MSG_DONE, &d, sizeof d), 0);
    }
    return 0;
  }
  fib_fail(&n->f, __LINE__, "unexpected message %u", (unsigned)m->type);
  return 0;
}

typedef struct selective {
  fib_t f;
  ax_ref_t noise;
  atomic_int match_calls; /* the predicate's calls */
  uint32_t received;      /* noise taken with ax_recv */
  uint32_t total;         /* MSG_DONE's count */
} selective_t;

static bool match_magic3(const ax_msg_t *m, void *arg) {
  selective_t *s = arg;
  atomic_fetch_add(&s->match_calls, 1);
  if (m->type != MSG_MATCH || m->size != sizeof(noise_t))
    return false;
  noise_t x;
  memcpy(&x, m->data, sizeof x);
  return x.magic == 3;
}

static bool match_never(const ax_msg_t *m, void *arg) {
  (void)m;
  (void)arg;
  return false;
}

/* Checks a message that a selective call returned: type, sender, magic. */
static void check_wanted(fib_t *f, int line, const ax_msg_t *m, uint32_t type, ax_ref_t from,
                         uint32_t magic) {
  noise_t x = {0, 0};
  if (m == NULL) {
    fib_fail(f, line, "no message");
    return;
  }
  if (m->size == sizeof x)
    memcpy(&x, m->data, sizeof x);
  if (m->type != type || m->from != from || x.magic != magic || x.seq != UINT32_MAX)
    fib_fail(f, line, "got type %u (want %u) magic %u (want %u) seq %u", (unsigned)m->type,
             (unsigned)type, (unsigned)x.magic, (unsigned)magic, (unsigned)x.seq);
}

static int selective_fiber(ax_actor_t *self, void *arg) {
  selective_t *s = arg;
  const ax_msg_t *m = NULL;
  int phase = 1;

  /* ax_recv_type: MSG_WANT comes after 80 other messages, half of them
   * arriving while the fiber is parked. */
  FCHECK_EQ(&s->f, ax_send(s->noise, MSG_GO, &phase, sizeof phase), 0);
  int rc = ax_recv_type(self, MSG_WANT, ax_deadline(LONG_WAIT), &m);
  FCHECK_EQ(&s->f, rc, 0);
  if (rc == 0)
    check_wanted(&s->f, __LINE__, m, MSG_WANT, s->noise, 1);

  /* ax_recv_reply: a message of the reply's type without req (the decoy)
   * comes first and must stay queued. */
  phase = 2;
  uint64_t req = 0;
  FCHECK_EQ(&s->f, ax_request(self, s->noise, MSG_REQ, &phase, sizeof phase, &req), 0);
  FCHECK(&s->f, req != 0);
  m = NULL;
  rc = ax_recv_reply(self, req, ax_deadline(LONG_WAIT), &m);
  FCHECK_EQ(&s->f, rc, 0);
  if (rc == 0) {
    check_wanted(&s->f, __LINE__, m, MSG_REPLY, s->noise, 2);
    FCHECK(&s->f, m->req == req);
  }

  /* ax_recv_match: noise of the same type (magic 0) must be passed over. */
  phase = 3;
  FCHECK_EQ(&s->f, ax_send(s->noise, MSG_GO, &phase, sizeof phase), 0);
  m = NULL;
  rc = ax_recv_match(self, match_magic3, s, ax_deadline(LONG_WAIT), &m);
  FCHECK_EQ(&s->f, rc, 0);
  if (rc == 0)
    check_wanted(&s->f, __LINE__, m, MSG_MATCH, s->noise, 3);
  FCHECK(&s->f, atomic_load(&s->match_calls) >= 1);

  /* Selective calls that time out lose nothing either. */
  int64_t dl = ax_deadline(20 * MSEC);
  FCHECK_EQ(&s->f, ax_recv_type(self, MSG_NEVER, dl, &m), -ETIMEDOUT);
  FCHECK(&s->f, ax_now() >= dl);
  FCHECK_EQ(&s->f, ax_recv_match(self, match_never, NULL, ax_deadline(5 * MSEC), &m),
            -ETIMEDOUT);
  FCHECK_EQ(&s->f, ax_recv_reply(self, req + 1000000, ax_deadline(5 * MSEC), &m), -ETIMEDOUT);

  /* Everything else, with ax_recv, in the order it was sent. */
  uint32_t expect = 0;
  for (;;) {
    m = NULL;
    rc = ax_recv(self, ax_deadline(LONG_WAIT), &m);
    if (rc != 0) {
      fib_fail(&s->f, __LINE__, "ax_recv after %u noise: %s", (unsigned)expect,
               ax_strerror(rc));
      break;
    }
    noise_t x = {0, 0};
    if (m->size == sizeof x)
      memcpy(&x, m->data, sizeof x);
    if (m->from != s->noise || m->req != 0 || m->size != sizeof x) {
      fib_fail(&s->f, __LINE__, "message %u: from/req/size wrong (type %u)", (unsigned)expect,
               (unsigned)m->type);
      break;
    }
    if (m->type == MSG_DONE) {
      s->total = x.seq;
      break;
    }
    uint32_t want_type = noise_types[expect % (sizeof noise_types / sizeof noise_types[0])];
    if (x.seq != expect || x.magic != 0) {
      fib_fail(&s->f, __LINE__, "noise out of order or lost: got seq %u magic %u, want %u",
               (unsigned)x.seq, (unsigned)x.magic, (unsigned)expect);
      break;
    }
    /* the decoy of phase 2 is MSG_REPLY whatever its number */
    if (m->type != want_type && m->type != MSG_REPLY) {
      fib_fail(&s->f, __LINE__, "noise %u: type %u, want %u", (unsigned)expect,
               (unsigned)m->type, (unsigned)want_type);
      break;
    }
    expect++;
  }
  s->received = expect;
  /* Nothing more: no duplicate, nothing left. */
  FCHECK_EQ(&s->f, ax_recv(self, 0, &m), -ETIMEDOUT);
  return 0;
}

START_TEST(test_fiber_selective_receive) {
  ax_rt_t *rt = rt_new();
  static noisy_t n;
  static selective_t s;
  memset(&n, 0, sizeof n);
  memset(&s, 0, sizeof s);
  fib_init(&n.f);
  fib_init(&s.f);
  s.noise = test_spawn(rt, noise_behaviour, &n, AX_PLACE_CORE, 1, NULL, NULL);
  spawn_fiber(rt, selective_fiber, &s.f, 0, 0);
  fib_wait(&s.f, 60000);
  fib_assert_clean(&n.f);
  ck_assert_uint_eq(s.total, NOISE_PHASES * 3 * NOISE_BATCH + 1);
  ck_assert_uint_eq(s.received, s.total);
  ck_assert_int_eq(atomic_load(&s.f.reason), AX_REASON_NORMAL);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 3. Deadlines, sleep, yield                                                */

/* Counts its messages; on MSG_GO sends MSG_PONG back, then raises `sent`. */
typedef struct helper {
  atomic_int handled;
  atomic_int sent;
} helper_t;

static int helper_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  helper_t *h = ax_state(self);
  atomic_fetch_add(&h->handled, 1);
  if (m->type == MSG_GO) {
    (void)ax_send(m->from, MSG_PONG, NULL, 0);
    atomic_store(&h->sent, 1);
  }
  return 0;
}

typedef struct deadlines {
  fib_t f;
  ax_ref_t remote; /* a helper on the other core */
  ax_ref_t local;  /* a helper on the fiber's core */
  helper_t *remote_h, *local_h;
  int yields_needed; /* yields until the local helper ran (1 expected) */
} deadlines_t;

static int deadlines_fiber(ax_actor_t *self, void *arg) {
  deadlines_t *d = arg;
  const ax_msg_t *m = NULL;

  /* Deadline 0 on an empty mailbox. */
  FCHECK_EQ(&d->f, ax_recv(self, 0, &m), -ETIMEDOUT);
  FCHECK_EQ(&d->f, ax_recv_type(self, MSG_SELF, 0, &m), -ETIMEDOUT);
  FCHECK_EQ(&d->f, ax_recv_match(self, match_never, NULL, 0, &m), -ETIMEDOUT);
  FCHECK_EQ(&d->f, ax_recv_reply(self, 77, 0, &m), -ETIMEDOUT);

  /* Deadline 0 with a message sent (to itself) before the call. */
  int one = 1;
  FCHECK_EQ(&d->f, ax_send(ax_self(self), MSG_SELF, &one, sizeof one), 0);
  m = NULL;
  FCHECK_EQ(&d->f, ax_recv(self, 0, &m), 0);
  FCHECK(&d->f, m != NULL && m->type == MSG_SELF && m->from == ax_self(self));

  /* Deadline 0 with a message another core sent before the call (the
   * helper raises `sent` after its ax_send returned).  Spins without
   * waiting: nothing here may take the message before the call. */
  FCHECK_EQ(&d->f, ax_send(d->remote, MSG_GO, NULL, 0), 0);
  int64_t limit = ax_now() + LONG_WAIT;
  while (atomic_load(&d->remote_h->sent) == 0 && ax_now() < limit) {
  }
  FCHECK(&d->f, atomic_load(&d->remote_h->sent) == 1);
  m = NULL;
  FCHECK_EQ(&d->f, ax_recv(self, 0, &m), 0);
  FCHECK(&d->f, m != NULL && m->type == MSG_PONG && m->from == d->remote);

  /* Deadline 0, selective: the second of two queued messages, then the
   * first, then nothing. */
  int two = 2;
  FCHECK_EQ(&d->f, ax_send(ax_self(self), MSG_NOISE_A, &one, sizeof one), 0);
  FCHECK_EQ(&d->f, ax_send(ax_self(self), MSG_NOISE_B, &two, sizeof two), 0);
  m = NULL;
  FCHECK_EQ(&d->f, ax_recv_type(self, MSG_NOISE_B, 0, &m), 0);
  FCHECK(&d->f, m != NULL && m->type == MSG_NOISE_B);
  m = NULL;
  FCHECK_EQ(&d->f, ax_recv(self, 0, &m), 0);
  FCHECK(&d->f, m != NULL && m->type == MSG_NOISE_A);
  FCHECK_EQ(&d->f, ax_recv(self, 0, &m), -ETIMEDOUT);

  /* A deadline 20 ms ahead: -ETIMEDOUT, not before the deadline. */
  int64_t dl = ax_deadline(20 * MSEC);
  FCHECK_EQ(&d->f, ax_recv(self, dl, &m), -ETIMEDOUT);
  FCHECK(&d->f, ax_now() >= dl);
  dl = ax_deadline(20 * MSEC);
  FCHECK_EQ(&d->f, ax_recv_reply(self, 77, dl, &m), -ETIMEDOUT);
  FCHECK(&d->f, ax_now() >= dl);
  /* A deadline already past. */
  FCHECK_EQ(&d->f, ax_recv(self, ax_now() - MSEC, &m), -ETIMEDOUT);

  /* ax_sleep: not shorter than asked; a message that comes meanwhile
   * stays queued. */
  FCHECK_EQ(&d->f, ax_send(ax_self(self), MSG_SELF, &two, sizeof two), 0);
  int64_t t0 = ax_now();
  FCHECK_EQ(&d->f, ax_sleep(self, 20 * MSEC), 0);
  FCHECK(&d->f, ax_now() - t0 >= 20 * MSEC);
  m = NULL;
  FCHECK_EQ(&d->f, ax_recv(self, 0, &m), 0);
  FCHECK(&d->f, m != NULL && m->type == MSG_SELF && m->size == sizeof two &&
                    memcmp(m->data, &two, sizeof two) == 0);
  dl = ax_deadline(20 * MSEC);
  FCHECK_EQ(&d->f, ax_sleep_until(self, dl), 0);
  FCHECK(&d->f, ax_now() >= dl);
  FCHECK_EQ(&d->f, ax_sleep(self, 0), 0);
  FCHECK_EQ(&d->f, ax_sleep_until(self, ax_now() - MSEC), 0);

  /* ax_yield: the helper on this core cannot run while the fiber does;
   * one yield lets it handle the message sent before. */
  FCHECK_EQ(&d->f, ax_send(d->local, MSG_PING, NULL, 0), 0);
  FCHECK_EQ(&d->f, atomic_load(&d->local_h->handled), 0);
  FCHECK_EQ(&d->f, ax_yield(self), 0);
  d->yields_needed = 1;
  while (atomic_load(&d->local_h->handled) == 0 && d->yields_needed < 100) {
    FCHECK_EQ(&d->f, ax_yield(self), 0);
    d->yields_needed++;
  }
  FCHECK_EQ(&d->f, atomic_load(&d->local_h->handled), 1);
  return 0;
}

START_TEST(test_fiber_deadlines) {
  ax_rt_t *rt = rt_new();
  static helper_t remote_h, local_h;
  static deadlines_t d;
  memset(&remote_h, 0, sizeof remote_h);
  memset(&local_h, 0, sizeof local_h);
  memset(&d, 0, sizeof d);
  fib_init(&d.f);
  d.remote_h = &remote_h;
  d.local_h = &local_h;
  d.remote = test_spawn(rt, helper_behaviour, &remote_h, AX_PLACE_CORE, 1, NULL, NULL);
  d.local = test_spawn(rt, helper_behaviour, &local_h, AX_PLACE_CORE, 0, NULL, NULL);
  spawn_fiber(rt, deadlines_fiber, &d.f, 0, 0);
  fib_wait(&d.f, 30000);
  ck_assert_msg(d.yields_needed == 1, "the helper ran after %d yields, not 1",
                d.yields_needed);
  ck_assert_int_eq(atomic_load(&d.f.reason), AX_REASON_NORMAL);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Polls (a deadline of 0) in a fiber whose mailbox is bounded and full:
 * the poll's message to itself is axon's own, so no bound refuses it (the
 * polls failed with -ENOMEM), and ax_mailbox_len leaves it out (it read 3
 * after three messages had been taken). */
enum { BOUND = 3 };

typedef struct bounded_poll {
  fib_t f;
  atomic_int sent; /* the test thread sent a round of BOUND messages */
  int len[BOUND + 1];
} bounded_poll_t;

/* Spins (the core waits) until the test thread sent round `round`. */
static void await_round(bounded_poll_t *b, int round) {
  int64_t limit = ax_now() + LONG_WAIT;
  while (atomic_load(&b->sent) < round && ax_now() < limit) {
  }
  FCHECK(&b->f, atomic_load(&b->sent) >= round);
}

static int bounded_poll_fiber(ax_actor_t *self, void *arg) {
  bounded_poll_t *b = arg;
  const ax_msg_t *m = NULL;
  /* Round 1: three messages, taken by polls; then the fourth poll finds
   * nothing. */
  atomic_store(&b->f.phase, 1);
  await_round(b, 1);
  for (int i = 0; i < BOUND; i++) {
    m = NULL;
    FCHECK_EQ(&b->f, ax_recv(self, 0, &m), 0);
    FCHECK(&b->f, m != NULL && m->type == MSG_SELF && *(const int *)m->data == i);
    b->len[i] = (int)ax_mailbox_len(self);
  }
  FCHECK_EQ(&b->f, ax_recv(self, 0, &m), -ETIMEDOUT);
  b->len[BOUND] = (int)ax_mailbox_len(self);
  /* Round 2: with the mailbox full, the calls that poll still work. */
  atomic_store(&b->f.phase, 2);
  await_round(b, 2);
  FCHECK_EQ(&b->f, ax_yield(self), 0);
  FCHECK_EQ(&b->f, ax_sleep(self, 0), 0);
  FCHECK_EQ(&b->f, ax_sleep_until(self, 1), 0);
  FCHECK_EQ(&b->f, ax_recv_type(self, MSG_NEVER, 0, &m), -ETIMEDOUT);
  FCHECK_EQ(&b->f, ax_mailbox_len(self), BOUND); /* kept aside by the last call */
  for (int i = 0; i < BOUND; i++)
    FCHECK_EQ(&b->f, ax_recv_type(self, MSG_SELF, 0, &m), 0);
  FCHECK_EQ(&b->f, ax_recv(self, 0, &m), -ETIMEDOUT);
  FCHECK_EQ(&b->f, ax_mailbox_len(self), 0);
  atomic_store(&b->f.phase, 3);
  /* Round 3: the bound has room for BOUND again; wait for the quit. */
  FCHECK_EQ(&b->f, ax_recv_type(self, MSG_QUIT, ax_deadline(LONG_WAIT), &m), 0);
  /* AX_FOREVER parks until the stop (it returned 0 at once). */
  atomic_store(&b->f.phase, 4);
  FCHECK_EQ(&b->f, ax_sleep(self, AX_FOREVER), -ECANCELED);
  return 0;
}

START_TEST(test_fiber_poll_bounded_mailbox) {
  ax_rt_t *rt = rt_new();
  static bounded_poll_t b;
  memset(&b, 0, sizeof b);
  fib_init(&b.f);
  ax_fiber_opts_t o = fib_core_opts(0);
  o.mailbox_max = BOUND;
  ax_ref_t ref = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn_fiber(rt, bounded_poll_fiber, &b, &o, &ref), 0);
  for (int round = 1; round <= 2; round++) {
    wait_phase(&b.f, round);
    for (int i = 0; i < BOUND; i++)
      ck_assert_int_eq(ax_send(ref, MSG_SELF, &i, sizeof i), 0);
    ck_assert_int_eq(ax_send(ref, MSG_SELF, &round, sizeof round), -EAGAIN);
    atomic_store(&b.sent, round);
  }
  wait_phase(&b.f, 3);
  for (int i = 0; i < BOUND - 1; i++)
    ck_assert_int_eq(ax_send(ref, MSG_SELF, &i, sizeof i), 0);
  ck_assert_int_eq(ax_send(ref, MSG_QUIT, NULL, 0), 0);
  wait_phase(&b.f, 4);
  test_sleep_ms(50);
  ck_assert_int_eq(atomic_load(&b.f.terminated), 0);
  ck_assert_int_eq(ax_stop(ref, 0), 0);
  fib_wait(&b.f, 20000);
  for (int i = 0; i <= BOUND; i++)
    ck_assert_msg(b.len[i] == (i < BOUND ? BOUND - 1 - i : 0),
                  "ax_mailbox_len after %d polls: %d", i + 1, b.len[i]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A stop asked for while the fiber runs (here by itself) keeps its reason:
 * the fiber's next wait is -ECANCELED and it returns 0, as the docs ask,
 * and its monitors and terminate hook hear -EIO, not a normal stop. */
static int self_stopper(ax_actor_t *self, void *arg) {
  fib_t *f = arg;
  FCHECK_EQ(f, ax_stop(ax_self(self), -EIO), 0);
  FCHECK_EQ(f, ax_yield(self), -ECANCELED);
  return 0;
}

START_TEST(test_fiber_stop_reason_while_running) {
  ax_rt_t *rt = rt_new();
  static fib_t f;
  fib_init(&f);
  spawn_fiber(rt, self_stopper, &f, 0, 0);
  fib_wait(&f, 10000);
  ck_assert_int_eq(atomic_load(&f.reason), -EIO);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 4. The return value is the stop reason                                    */

typedef struct retcase {
  fib_t f;
  int ret;
} retcase_t;

static int return_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  retcase_t *r = arg;
  atomic_store(&r->f.ran, 1);
  return r->ret;
}

/* A handler actor that, on MSG_GO, spawns the fiber of case `next` with
 * itself as monitor, and records the DOWN messages. */
typedef struct mon {
  retcase_t *cases;
  unsigned cores[2];
  int next;
  ax_ref_t refs[2];
  uint64_t ids[2];
  atomic_int spawn_rc[2];
  atomic_int downs;
  atomic_int down_reason[2];
  atomic_int down_matched[2]; /* DOWN's ref and id were those of the spawn */
} mon_t;

static int mon_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  mon_t *w = ax_state(self);
  if (m->type == MSG_GO) {
    int i = w->next++;
    ax_fiber_opts_t o = fib_core_opts(w->cores[i]);
    o.monitor = self;
    o.monitor_id = &w->ids[i];
    int rc = ax_spawn_fiber(ax_actor_rt(self), return_fiber, &w->cases[i], &o, &w->refs[i]);
    atomic_store(&w->spawn_rc[i], rc);
    return 0;
  }
  if (m->type == AX_MSG_DOWN) {
    ax_down_t down;
    memcpy(&down, m->data, sizeof down);
    for (int i = 0; i < 2; i++) {
      if (down.ref == w->refs[i]) {
        atomic_store(&w->down_matched[i], down.id == w->ids[i] && m->from == w->refs[i]);
        atomic_store(&w->down_reason[i], down.reason);
      }
    }
    atomic_fetch_add(&w->downs, 1);
  }
  return 0;
}

START_TEST(test_fiber_return_is_reason) {
  ax_rt_t *rt = rt_new();
  static retcase_t cases[2];
  static mon_t w;
  memset(cases, 0, sizeof cases);
  memset(&w, 0, sizeof w);
  for (int i = 0; i < 2; i++) {
    fib_init(&cases[i].f);
    atomic_init(&w.down_reason[i], 12345);
  }
  cases[0].ret = 0;
  cases[1].ret = -EIO;
  w.cases = cases;
  w.cores[0] = 0; /* the monitor's core */
  w.cores[1] = 1;
  ax_ref_t watcher = test_spawn(rt, mon_behaviour, &w, AX_PLACE_CORE, 0, NULL, NULL);
  for (int i = 0; i < 2; i++) {
    test_send(watcher, MSG_GO, NULL, 0);
    TEST_WAIT_UNTIL(atomic_load(&w.downs) == i + 1, 10000);
    ck_assert_int_eq(atomic_load(&w.spawn_rc[i]), 0);
    fib_wait(&cases[i].f, 10000);
    ck_assert_int_eq(atomic_load(&cases[i].f.ran), 1);
    ck_assert_int_eq(atomic_load(&w.down_matched[i]), 1);
  }
  ck_assert_int_eq(atomic_load(&w.down_reason[0]), AX_REASON_NORMAL);
  ck_assert_int_eq(atomic_load(&cases[0].f.reason), AX_REASON_NORMAL);
  ck_assert_int_eq(atomic_load(&w.down_reason[1]), -EIO);
  ck_assert_int_eq(atomic_load(&cases[1].f.reason), -EIO);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 5. Cancellation                                                           */

/* Records the goodbye it receives. */
typedef struct watcher {
  atomic_int goodbyes;
  int bye[8]; /* the goodbye's payload (read after `goodbyes`) */
  atomic_uint_fast64_t bye_from;
} watcher_t;

static int watcher_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  watcher_t *w = ax_state(self);
  if (m->type == MSG_GOODBYE && m->size == sizeof w->bye) {
    memcpy(w->bye, m->data, sizeof w->bye);
    atomic_store(&w->bye_from, m->from);
    atomic_fetch_add(&w->goodbyes, 1);
  }
  return 0;
}

typedef struct cancel {
  fib_t f;
  ax_ref_t watcher;
  _Atomic(ax_actor_t *) self;
  atomic_int parked;       /* about to wait */
  atomic_int goodbye_sent; /* ax_send of the goodbye returned 0 */
  atomic_int term_saw_goodbye; /* the terminate hook found goodbye_sent */
} cancel_t;

static void cancel_terminate(ax_actor_t *self, int reason) {
  cancel_t *c = ax_state(self);
  atomic_store(&c->term_saw_goodbye, atomic_load(&c->goodbye_sent));
  fib_terminate(self, reason);
}

static int cancel_fiber(ax_actor_t *self, void *arg) {
  cancel_t *c = arg;
  atomic_store(&c->f.ran, 1);
  atomic_store(&c->self, self);
  const ax_msg_t *m = NULL;
  int bye[8];
  memset(bye, 0, sizeof bye);
  atomic_store(&c->parked, 1);
  bye[0] = ax_recv(self, AX_FOREVER, &m);
  /* every later waiting call: -ECANCELED at once */
  int64_t t0 = ax_now();
  bye[1] = ax_recv(self, AX_FOREVER, &m);
  bye[2] = ax_recv_type(self, MSG_NEVER, AX_FOREVER, &m);
  bye[3] = ax_sleep(self, 3600 * SEC);
  bye[4] = ax_yield(self);
  bye[5] = ax_recv(self, 0, &m);
  bye[6] = ax_recv_match(self, match_never, NULL, ax_deadline(3600 * SEC), &m);
  bye[7] = (int)((ax_now() - t0) / MSEC); /* not a bound: shown on failure */
  /* ax_send still works */
  int rc = ax_send(c->watcher, MSG_GOODBYE, bye, sizeof bye);
  FCHECK_EQ(&c->f, rc, 0);
  if (rc == 0)
    atomic_store(&c->goodbye_sent, 1);
  return 0;
}

/* A fiber parked in ax_recv(AX_FOREVER) is stopped with ax_stop: the call
 * and every later waiting call return -ECANCELED, ax_send still works, the
 * terminate hook runs after the fiber returned. */
START_TEST(test_fiber_cancel_stop) {
  ax_rt_t *rt = rt_new();
  static watcher_t w;
  static cancel_t c;
  memset(&w, 0, sizeof w);
  memset(&c, 0, sizeof c);
  fib_init(&c.f);
  c.watcher = test_spawn(rt, watcher_behaviour, &w, AX_PLACE_CORE, 1, NULL, NULL);
  ax_fiber_opts_t o = fib_core_opts(0);
  o.terminate = cancel_terminate;
  ax_ref_t ref = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn_fiber(rt, cancel_fiber, &c, &o, &ref), 0);
  TEST_WAIT_UNTIL(atomic_load(&c.parked) == 1, 10000);
  test_sleep_ms(20); /* most likely parked by now; either way -ECANCELED */
  ck_assert_int_eq(ax_stop(ref, 0), 0);
  fib_wait(&c.f, 10000);
  TEST_WAIT_UNTIL(atomic_load(&w.goodbyes) == 1, 10000);
  ck_assert_uint_eq(atomic_load(&w.bye_from), ref);
  const char *names[] = {"ax_recv (parked)", "ax_recv again", "ax_recv_type", "ax_sleep",
                         "ax_yield", "ax_recv deadline 0", "ax_recv_match"};
  for (int i = 0; i < 7; i++)
    ck_assert_msg(w.bye[i] == -ECANCELED, "%s after the stop: %d (%s), want -ECANCELED",
                  names[i], w.bye[i], ax_strerror(w.bye[i]));
  ck_assert_int_eq(atomic_load(&c.term_saw_goodbye), 1);
  ck_assert_int_eq(atomic_load(&c.f.reason), AX_REASON_STOPPED);
  /* The terminate hook runs before the reference stops resolving (the
   * actor's death retires its slot after its hooks): -ESRCH follows. */
  TEST_WAIT_UNTIL(ax_send(ref, MSG_PING, NULL, 0) == -ESRCH, 10000);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Parks in one of several waiting calls (by index), forever; records what
 * the call and the next one returned. */
typedef struct parked {
  fib_t f;
  int kind;
  ax_ref_t sink; /* a handler that never replies */
  uint64_t req;  /* kind 3: the request whose reply never comes */
  atomic_int started;
  atomic_int rc1, rc2;
} parked_t;

enum { PARK_KINDS = 6 };

static int park_once(ax_actor_t *self, parked_t *p) {
  const ax_msg_t *m = NULL;
  switch (p->kind % PARK_KINDS) {
  case 0:
    return ax_recv(self, AX_FOREVER, &m);
  case 1:
    return ax_recv_type(self, MSG_NEVER, AX_FOREVER, &m);
  case 2:
    return ax_recv_match(self, match_never, NULL, AX_FOREVER, &m);
  case 3:
    /* The request once; the sink may be gone by the second call (the
     * runtime is stopping), which waits for the same reply. */
    if (p->req == 0) {
      int rc = ax_request(self, p->sink, MSG_REQ, NULL, 0, &p->req);
      if (rc != 0)
        return 1000 + rc;
    }
    return ax_recv_reply(self, p->req, AX_FOREVER, &m);
  case 4:
    return ax_sleep(self, 3600 * SEC);
  default:
    return ax_sleep_until(self, ax_now() + 3600 * SEC);
  }
}

static int parked_fiber(ax_actor_t *self, void *arg) {
  parked_t *p = arg;
  atomic_store(&p->started, 1);
  atomic_store(&p->rc1, park_once(self, p));
  atomic_store(&p->rc2, park_once(self, p));
  return 0;
}

static int sink_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  return 0;
}

/* ax_rt_stop with fibers parked in every kind of message wait: each call
 * returns -ECANCELED (and the next one too), and the runtime joins. */
START_TEST(test_fiber_cancel_shutdown) {
  ax_rt_t *rt = rt_new();
  enum { N = 4 * PARK_KINDS };
  static parked_t p[N];
  ax_ref_t sink = test_spawn(rt, sink_behaviour, NULL, AX_PLACE_CORE, 1, NULL, NULL);
  for (int i = 0; i < N; i++) {
    memset(&p[i], 0, sizeof p[i]);
    fib_init(&p[i].f);
    p[i].kind = i;
    p[i].sink = sink;
    atomic_init(&p[i].rc1, 12345);
    atomic_init(&p[i].rc2, 12345);
    spawn_fiber(rt, parked_fiber, &p[i].f, (unsigned)(i / PARK_KINDS) % 2, 0);
  }
  for (int i = 0; i < N; i++)
    TEST_WAIT_UNTIL(atomic_load(&p[i].started) == 1, 10000);
  test_sleep_ms(20);
  ax_rt_stop(rt);
  test_rt_join_free(rt);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(atomic_load(&p[i].f.terminated), 1);
    ck_assert_msg(atomic_load(&p[i].rc1) == -ECANCELED,
                  "fiber %d (kind %d): the parked call returned %d, want -ECANCELED", i,
                  i % PARK_KINDS, atomic_load(&p[i].rc1));
    ck_assert_msg(atomic_load(&p[i].rc2) == -ECANCELED,
                  "fiber %d (kind %d): the next call returned %d, want -ECANCELED", i,
                  i % PARK_KINDS, atomic_load(&p[i].rc2));
    ck_assert_int_eq(atomic_load(&p[i].f.reason), AX_REASON_SHUTDOWN);
  }
}
END_TEST

/* A fiber stopped before it ever ran does not run; its terminate hook
 * runs.  The stop comes from a handler on the fiber's core, in the same
 * turn as the spawn, so the fiber cannot have run. */
typedef struct early {
  fib_t f;
  atomic_int spawn_rc, stop_rc;
} early_t;

static int early_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  early_t *e = arg;
  atomic_store(&e->f.ran, 1);
  return 0;
}

static int early_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  early_t *e = ax_state(self);
  if (m->type != MSG_GO)
    return 0;
  ax_fiber_opts_t o;
  memset(&o, 0, sizeof o);
  o.placement = AX_PLACE_LOCAL;
  o.terminate = fib_terminate;
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_spawn_fiber(ax_actor_rt(self), early_fiber, e, &o, &ref);
  atomic_store(&e->spawn_rc, rc);
  if (rc == 0)
    atomic_store(&e->stop_rc, ax_stop(ref, 0));
  return 0;
}

START_TEST(test_fiber_stopped_before_running) {
  ax_rt_t *rt = rt_new();
  static early_t e, pre;
  memset(&e, 0, sizeof e);
  fib_init(&e.f);
  atomic_init(&e.stop_rc, 12345);
  ax_ref_t a = test_spawn(rt, early_behaviour, &e, AX_PLACE_CORE, 1, NULL, NULL);
  test_send(a, MSG_GO, NULL, 0);
  fib_wait(&e.f, 10000);
  ck_assert_int_eq(atomic_load(&e.spawn_rc), 0);
  ck_assert_int_eq(atomic_load(&e.stop_rc), 0);
  ck_assert_int_eq(atomic_load(&e.f.ran), 0);
  ck_assert_int_eq(atomic_load(&e.f.reason), AX_REASON_STOPPED);
  test_rt_stop_join_free(rt);

  /* The same before the runtime starts. */
  rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  memset(&pre, 0, sizeof pre);
  fib_init(&pre.f);
  ax_ref_t ref = spawn_fiber(rt, early_fiber, &pre.f, 0, 0);
  ck_assert_int_eq(ax_stop(ref, 0), 0);
  test_rt_start(rt);
  fib_wait(&pre.f, 10000);
  ck_assert_int_eq(atomic_load(&pre.f.ran), 0);
  ck_assert_int_eq(atomic_load(&pre.f.reason), AX_REASON_STOPPED);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 6. Misuse                                                                 */

/* A handler actor calling the fibers' waiting calls: -EPERM. */
typedef struct handler_calls {
  atomic_int done;
  int rc[10];
  bool is_fiber;
} handler_calls_t;

static int handler_calls_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  handler_calls_t *h = ax_state(self);
  if (msg->type != MSG_GO)
    return 0;
  const ax_msg_t *m = NULL;
  h->rc[0] = ax_recv(self, 0, &m);
  h->rc[1] = ax_recv(self, AX_FOREVER, &m);
  h->rc[2] = ax_recv_type(self, MSG_NEVER, ax_deadline(MSEC), &m);
  h->rc[3] = ax_recv_reply(self, 1, 0, &m);
  h->rc[4] = ax_recv_match(self, match_never, NULL, 0, &m);
  h->rc[5] = ax_sleep(self, MSEC);
  h->rc[6] = ax_sleep_until(self, ax_deadline(MSEC));
  h->rc[7] = ax_yield(self);
  h->rc[8] = ax_recv(self, ax_deadline(MSEC), &m);
  h->rc[9] = ax_recv(self, 0, NULL);
  h->is_fiber = ax_is_fiber(self);
  atomic_store(&h->done, 1);
  return 0;
}

START_TEST(test_fiber_misuse_from_handler) {
  ax_rt_t *rt = rt_new();
  static handler_calls_t h;
  memset(&h, 0, sizeof h);
  ax_ref_t a = test_spawn(rt, handler_calls_behaviour, &h, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(a, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&h.done) == 1, 10000);
  for (int i = 0; i < 9; i++)
    ck_assert_msg(h.rc[i] == -EPERM, "call %d from a handler: %d (%s), want -EPERM", i,
                  h.rc[i], ax_strerror(h.rc[i]));
  /* NULL msg from a handler: either error, never success */
  ck_assert_msg(h.rc[9] == -EPERM || h.rc[9] == -EINVAL, "ax_recv(NULL) from a handler: %d",
                h.rc[9]);
  ck_assert(!h.is_fiber);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Bad arguments inside a fiber: -EINVAL, and the fiber goes on working. */
typedef struct badargs {
  fib_t f;
} badargs_t;

static int badargs_fiber(ax_actor_t *self, void *arg) {
  badargs_t *b = arg;
  const ax_msg_t *m = NULL;
  FCHECK(&b->f, ax_is_fiber(self));
  FCHECK_EQ(&b->f, ax_recv(self, 0, NULL), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv(self, AX_FOREVER, NULL), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv_type(self, 0, 0, &m), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv_type(self, MSG_SELF, 0, NULL), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv_reply(self, 0, 0, &m), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv_reply(self, 0, AX_FOREVER, &m), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv_match(self, NULL, NULL, 0, &m), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv_match(self, NULL, NULL, AX_FOREVER, &m), -EINVAL);
  /* none of them took or lost a message */
  int v = 42;
  FCHECK_EQ(&b->f, ax_send(ax_self(self), MSG_SELF, &v, sizeof v), 0);
  FCHECK_EQ(&b->f, ax_recv(self, 0, NULL), -EINVAL);
  FCHECK_EQ(&b->f, ax_recv_type(self, 0, 0, &m), -EINVAL);
  m = NULL;
  FCHECK_EQ(&b->f, ax_recv(self, ax_deadline(LONG_WAIT), &m), 0);
  FCHECK(&b->f, m != NULL && m->type == MSG_SELF && m->size == sizeof v &&
                    memcmp(m->data, &v, sizeof v) == 0);
  return 0;
}

START_TEST(test_fiber_misuse_bad_args) {
  ax_rt_t *rt = rt_new();
  static badargs_t b;
  memset(&b, 0, sizeof b);
  fib_init(&b.f);
  spawn_fiber(rt, badargs_fiber, &b.f, 1, 0);
  fib_wait(&b.f, 10000);
  ck_assert_int_eq(atomic_load(&b.f.reason), AX_REASON_NORMAL);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Another fiber's self, used by a fiber (on either core) or by a thread
 * that is no core: -EPERM. */
typedef struct victim {
  fib_t f;
  _Atomic(ax_actor_t *) self;
  atomic_int got; /* the message that ended its wait */
} victim_t;

static int victim_fiber(ax_actor_t *self, void *arg) {
  victim_t *v = arg;
  atomic_store(&v->self, self);
  const ax_msg_t *m = NULL;
  int rc = ax_recv(self, AX_FOREVER, &m);
  FCHECK_EQ(&v->f, rc, 0);
  if (rc == 0)
    atomic_store(&v->got, (int)m->type);
  return 0;
}

typedef struct intruder {
  fib_t f;
  ax_actor_t *victim;
} intruder_t;

static int intruder_fiber(ax_actor_t *self, void *arg) {
  intruder_t *in = arg;
  const ax_msg_t *m = NULL;
  FCHECK(&in->f, self != in->victim);
  FCHECK_EQ(&in->f, ax_recv(in->victim, 0, &m), -EPERM);
  FCHECK_EQ(&in->f, ax_recv(in->victim, ax_deadline(MSEC), &m), -EPERM);
  FCHECK_EQ(&in->f, ax_recv_type(in->victim, MSG_NEVER, 0, &m), -EPERM);
  FCHECK_EQ(&in->f, ax_sleep(in->victim, MSEC), -EPERM);
  FCHECK_EQ(&in->f, ax_yield(in->victim), -EPERM);
  return 0;
}

START_TEST(test_fiber_misuse_other_fiber) {
  ax_rt_t *rt = rt_new();
  static victim_t v;
  static intruder_t in[2];
  memset(&v, 0, sizeof v);
  fib_init(&v.f);
  ax_ref_t vref = spawn_fiber(rt, victim_fiber, &v.f, 0, 0);
  TEST_WAIT_UNTIL(atomic_load(&v.self) != NULL, 10000);
  test_sleep_ms(20);
  ax_actor_t *vself = atomic_load(&v.self);
  for (unsigned i = 0; i < 2; i++) {
    memset(&in[i], 0, sizeof in[i]);
    fib_init(&in[i].f);
    in[i].victim = vself;
    spawn_fiber(rt, intruder_fiber, &in[i].f, i, 0);
    fib_wait(&in[i].f, 10000);
  }
  /* From the test thread (no core at all). */
  const ax_msg_t *m = NULL;
  ck_assert_int_eq(ax_recv(vself, 0, &m), -EPERM);
  ck_assert_int_eq(ax_sleep(vself, MSEC), -EPERM);
  ck_assert_int_eq(ax_yield(vself), -EPERM);
  ck_assert_int_eq(ax_fd_wait(vself, 0, AX_READ, 0), -EPERM);
  /* The victim still waits, unharmed, and takes the next message. */
  ck_assert_int_eq(atomic_load(&v.f.terminated), 0);
  test_send(vref, MSG_QUIT, NULL, 0);
  fib_wait(&v.f, 10000);
  ck_assert_int_eq(atomic_load(&v.got), MSG_QUIT);
  test_rt_stop_join_free(rt);
}
END_TEST

static int nop_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

/* Tries ax_spawn_fiber with opts on the monitor's core (a runtime other
 * than the fiber's): -EINVAL. */
typedef struct foreign {
  ax_rt_t *other;
  atomic_int rc;
  atomic_int done;
} foreign_t;

static int foreign_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  foreign_t *fo = ax_state(self);
  if (m->type != MSG_GO)
    return 0;
  ax_fiber_opts_t o;
  memset(&o, 0, sizeof o);
  o.monitor = self;
  atomic_store(&fo->rc, ax_spawn_fiber(fo->other, nop_fiber, NULL, &o, NULL));
  atomic_store(&fo->done, 1);
  return 0;
}

/* Depth-first use of a big stack: `frames` frames of 8 KiB each. */
static int use_stack(int frames) {
  volatile char pad[8192];
  pad[0] = (char)frames;
  pad[sizeof pad - 1] = (char)frames;
  if (frames <= 1)
    return pad[0];
  return use_stack(frames - 1) + pad[sizeof pad - 1];
}

typedef struct bigstack {
  fib_t f;
  atomic_int sum;
} bigstack_t;

static int bigstack_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  bigstack_t *b = arg;
  atomic_store(&b->sum, use_stack(64)); /* 512 KiB of a 1 MiB stack */
  return 0;
}

START_TEST(test_fiber_spawn_errors) {
  ax_rt_t *rt = rt_new();
  ax_fiber_opts_t o;
  memset(&o, 0, sizeof o);
  ax_ref_t ref = AX_REF_NONE;
  ck_assert_int_eq(ax_spawn_fiber(rt, NULL, NULL, NULL, &ref), -EINVAL);
  ck_assert_int_eq(ax_spawn_fiber(NULL, nop_fiber, NULL, NULL, &ref), -EINVAL);
  o.stack_size = 1000;
  ck_assert_int_eq(ax_spawn_fiber(rt, nop_fiber, NULL, &o, &ref), -EINVAL);
  o.stack_size = AX_FIBER_STACK_MIN - 1;
  ck_assert_int_eq(ax_spawn_fiber(rt, nop_fiber, NULL, &o, &ref), -EINVAL);
  o.stack_size = ((size_t)1 << 30) + 4096 * 16;
  ck_assert_int_eq(ax_spawn_fiber(rt, nop_fiber, NULL, &o, &ref), -EINVAL);
  o.stack_size = 0;
  o.placement = AX_PLACE_CORE;
  o.core = 2; /* two cores: 0 and 1 */
  ck_assert_int_eq(ax_spawn_fiber(rt, nop_fiber, NULL, &o, &ref), -EINVAL);
  o.placement = (ax_placement_t)77;
  o.core = 0;
  ck_assert_int_eq(ax_spawn_fiber(rt, nop_fiber, NULL, &o, &ref), -EINVAL);

  /* A monitor of another runtime. */
  ax_rt_opts_t ro;
  memset(&ro, 0, sizeof ro);
  ro.cores = 1;
  ro.flags = AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS | AX_RT_NO_PIN;
  ax_rt_t *rt2 = NULL;
  ck_assert_int_eq(ax_rt_new(&ro, &rt2), 0);
  test_rt_start(rt2);
  static foreign_t fo;
  memset(&fo, 0, sizeof fo);
  fo.other = rt;
  ax_ref_t fa = test_spawn(rt2, foreign_behaviour, &fo, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(fa, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&fo.done) == 1, 10000);
  ck_assert_int_eq(atomic_load(&fo.rc), -EINVAL);
  test_rt_stop_join_free(rt2);

  /* The smallest stack, one just above (rounded up to pages), a big one
   * that is really used: accepted, and they run. */
  static fib_t f1, f2;
  static bigstack_t big;
  fib_init(&f1);
  fib_init(&f2);
  memset(&big, 0, sizeof big);
  fib_init(&big.f);
  spawn_fiber(rt, nop_fiber, &f1, 0, AX_FIBER_STACK_MIN);
  spawn_fiber(rt, nop_fiber, &f2, 1, AX_FIBER_STACK_MIN + 1);
  spawn_fiber(rt, bigstack_fiber, &big.f, 1, (size_t)1 << 20);
  fib_wait(&f1, 10000);
  fib_wait(&f2, 10000);
  fib_wait(&big.f, 10000);
  ck_assert_int_eq(atomic_load(&big.sum), 64 * 65 / 2); /* 1 + 2 + ... + 64 */
  test_rt_stop_join_free(rt);
}
END_TEST

/* Light use of the stack: `frames` frames of 512 bytes. */
static int use_stack_lightly(int frames) {
  volatile char pad[512];
  pad[0] = (char)frames;
  pad[sizeof pad - 1] = (char)frames;
  if (frames <= 1)
    return pad[0];
  return use_stack_lightly(frames - 1) + pad[sizeof pad - 1];
}

static atomic_int seq_done, seq_sum;

/* Uses some of its stack when arg is not NULL; else nothing at all. */
static int seq_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  if (arg != NULL)
    atomic_fetch_add(&seq_sum, use_stack_lightly(4)); /* 4 + 3 + 2 + 1 */
  return 0;
}

static void seq_terminate(ax_actor_t *self, int reason) {
  (void)self;
  if (reason == AX_REASON_NORMAL)
    atomic_fetch_add(&seq_done, 1);
}

/* Fibers one after another on one core, with stacks of every kind of size
 * (the default, the smallest, odd ones, a big one): each runs and ends
 * normally, whatever stack memory it gets after the ones before. */
START_TEST(test_fiber_stacks_one_after_another) {
  atomic_store(&seq_done, 0);
  atomic_store(&seq_sum, 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  const size_t sizes[] = {0, AX_FIBER_STACK_MIN, AX_FIBER_STACK_MIN + 1, 0, (size_t)1 << 20,
                          3 * AX_FIBER_STACK_MIN, AX_FIBER_STACK_MIN};
  const int n = 300;
  for (int i = 0; i < n; i++) {
    ax_fiber_opts_t o;
    memset(&o, 0, sizeof o);
    o.terminate = seq_terminate;
    o.stack_size = sizes[i % (int)(sizeof sizes / sizeof sizes[0])];
    void *use = i % 3 == 2 ? &seq_sum : NULL;
    int rc = ax_spawn_fiber(rt, seq_fiber, use, &o, NULL);
    ck_assert_msg(rc == 0, "fiber %d: ax_spawn_fiber: %s", i, ax_strerror(rc));
    TEST_WAIT_UNTIL(atomic_load(&seq_done) == i + 1, 10000);
  }
  ck_assert_int_eq(atomic_load(&seq_sum), n / 3 * 10);
  test_rt_stop_join_free(rt);
}
END_TEST

/* After the runtime stopped: -ESHUTDOWN. */
START_TEST(test_fiber_spawn_after_stop) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  ck_assert_int_eq(ax_spawn_fiber(rt, nop_fiber, NULL, NULL, NULL), -ESHUTDOWN);
  ck_assert_int_eq(ax_rt_free(rt), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 7. ax_msg_take on what ax_recv returned                                   */

static atomic_int released;

static void count_release(void *buf) {
  atomic_fetch_add(&released, 1);
  free(buf);
}

typedef struct take {
  fib_t f;
  void *sent_buf;   /* the buffer given to ax_send_owned (taken) */
  void *sent_buf2;  /* a second one, not taken */
  atomic_int released_after_take; /* `released` after the next wait */
  atomic_int released_before_return; /* after the second buffer's next wait */
} take_t;

static int take_fiber(ax_actor_t *self, void *arg) {
  take_t *t = arg;
  const ax_msg_t *m = NULL;
  /* 1: the owned buffer, taken. */
  int rc = ax_recv_type(self, MSG_OWNED, ax_deadline(LONG_WAIT), &m);
  FCHECK_EQ(&t->f, rc, 0);
  char *got = NULL;
  if (rc == 0) {
    FCHECK(&t->f, m->data == t->sent_buf);
    FCHECK(&t->f, m->size == 16 && memcmp(m->data, "owned buffer 01", 16) == 0);
    got = ax_msg_take(m);
    FCHECK(&t->f, got == t->sent_buf);
  }
  /* 2: a copied payload: NULL (after a selective skip over nothing). */
  m = NULL;
  rc = ax_recv(self, ax_deadline(LONG_WAIT), &m);
  FCHECK_EQ(&t->f, rc, 0);
  if (rc == 0) {
    FCHECK_EQ(&t->f, m->type, MSG_COPIED);
    FCHECK(&t->f, ax_msg_take(m) == NULL);
  }
  /* The taken buffer is the fiber's: release never ran. */
  atomic_store(&t->released_after_take, atomic_load(&released));
  if (got != NULL) {
    FCHECK(&t->f, memcmp(got, "owned buffer 01", 16) == 0);
    free(got);
  }
  /* 3: an owned buffer that is not taken: released after the next wait
   * (or the return), once. */
  m = NULL;
  rc = ax_recv(self, ax_deadline(LONG_WAIT), &m);
  FCHECK_EQ(&t->f, rc, 0);
  if (rc == 0)
    FCHECK(&t->f, m->type == MSG_OWNED && m->data == t->sent_buf2);
  FCHECK_EQ(&t->f, ax_recv(self, 0, &m), -ETIMEDOUT);
  atomic_store(&t->released_before_return, atomic_load(&released));
  return 0;
}

START_TEST(test_fiber_msg_take) {
  atomic_store(&released, 0);
  ax_rt_t *rt = rt_new();
  static take_t t;
  memset(&t, 0, sizeof t);
  fib_init(&t.f);
  atomic_init(&t.released_after_take, -1);
  atomic_init(&t.released_before_return, -1);
  char *buf = malloc(16);
  char *buf2 = malloc(16);
  ck_assert_ptr_nonnull(buf);
  ck_assert_ptr_nonnull(buf2);
  memcpy(buf, "owned buffer 01", 16);
  memcpy(buf2, "owned buffer 02", 16);
  t.sent_buf = buf;
  t.sent_buf2 = buf2;
  /* The copied message first: ax_recv_type must skip it and keep it. */
  ax_ref_t ref = spawn_fiber(rt, take_fiber, &t.f, 1, 0);
  test_send(ref, MSG_COPIED, "copied", 7);
  ck_assert_int_eq(ax_send_owned(ref, MSG_OWNED, buf, 16, count_release), 0);
  ck_assert_int_eq(ax_send_owned(ref, MSG_OWNED, buf2, 16, count_release), 0);
  fib_wait(&t.f, 10000);
  ck_assert_int_eq(atomic_load(&t.released_after_take), 0);
  /* buf2 was released at the fiber's next waiting call at the latest */
  ck_assert_int_eq(atomic_load(&t.released_before_return), 1);
  test_rt_stop_join_free(rt);
  ck_assert_int_eq(atomic_load(&released), 1);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 8. Many parked fibers, then shutdown                                      */

typedef struct many {
  atomic_int started;
  atomic_int cancelled;   /* waits that returned -ECANCELED */
  atomic_int other;       /* anything else */
  atomic_int terminated;
  atomic_int udp_failed;  /* UDP sockets that could not be opened */
} many_t;

static many_t many;

/* One fiber in this many waits on a UDP socket of its own: every one of
 * them when the fd limit allows (raised to its hard limit by the test),
 * else one in a hundred, the others in ax_sleep and ax_recv_type. */
static uintptr_t many_udp_every;

static int many_fiber(ax_actor_t *self, void *arg) {
  uintptr_t i = (uintptr_t)arg;
  const ax_msg_t *m = NULL;
  int rc;
  if (i % many_udp_every == 0) {
    ax_dgram_t *d = NULL;
    rc = ax_udp_bind(self, "127.0.0.1:0", NULL, &d);
    atomic_fetch_add(&many.started, 1);
    if (rc != 0) {
      atomic_fetch_add(&many.udp_failed, 1);
      rc = ax_recv_type(self, MSG_NEVER, AX_FOREVER, &m);
    } else {
      char buf[16];
      rc = (int)ax_dgram_recv(d, buf, sizeof buf, NULL, NULL, AX_FOREVER);
      /* d is left open: the fiber's return closes it */
    }
  } else if (i % 3 == 1) {
    atomic_fetch_add(&many.started, 1);
    rc = ax_sleep(self, 3600 * SEC);
  } else {
    atomic_fetch_add(&many.started, 1);
    rc = ax_recv_type(self, MSG_NEVER, AX_FOREVER, &m);
  }
  if (rc == -ECANCELED)
    atomic_fetch_add(&many.cancelled, 1);
  else
    atomic_fetch_add(&many.other, 1);
  return 0;
}

static void many_terminate(ax_actor_t *self, int reason) {
  (void)self;
  if (reason == AX_REASON_SHUTDOWN)
    atomic_fetch_add(&many.terminated, 1);
}

/* ThreadSanitizer counts each fiber as a thread of its own (it dies past
 * 8128 of them at once, and each costs milliseconds): 500 there. */
#if defined(__SANITIZE_THREAD__)
#define MANY_FIBERS 500
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MANY_FIBERS 500
#endif
#endif
#ifndef MANY_FIBERS
#define MANY_FIBERS 10000
#endif

START_TEST(test_fiber_many_parked) {
  memset(&many, 0, sizeof many);
  const int n = MANY_FIBERS;
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  rl.rlim_cur = rl.rlim_max;
  (void)setrlimit(RLIMIT_NOFILE, &rl);
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  many_udp_every = rl.rlim_cur >= (rlim_t)n + 512 ? 1 : 100;
  ax_rt_t *rt = rt_new();
  ax_fiber_opts_t o;
  memset(&o, 0, sizeof o);
  o.terminate = many_terminate;
  o.stack_size = AX_FIBER_STACK_MIN;
  for (int i = 0; i < n; i++) {
    int rc = ax_spawn_fiber(rt, many_fiber, (void *)(uintptr_t)i, &o, NULL);
    ck_assert_msg(rc == 0, "fiber %d: ax_spawn_fiber: %s", i, ax_strerror(rc));
  }
  TEST_WAIT_UNTIL(atomic_load(&many.started) == n, 60000);
  test_sleep_ms(50);
  ck_assert_int_eq(atomic_load(&many.other), 0); /* nothing returned early */
  ax_rt_stop(rt);
  test_rt_join_free(rt);
  ck_assert_int_eq(atomic_load(&many.udp_failed), 0);
  ck_assert_int_eq(atomic_load(&many.cancelled), n);
  ck_assert_int_eq(atomic_load(&many.other), 0);
  ck_assert_int_eq(atomic_load(&many.terminated), n);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 9. Stack overflow: reported, then abort                                   */

static volatile int overflow_limit = 1 << 30; /* never reached: defeats "infinite recursion" */

static int overflow_recurse(int depth) {
  volatile char pad[256];
  pad[0] = (char)depth;
  pad[sizeof pad - 1] = (char)depth;
  if (depth >= overflow_limit)
    return pad[0];
  return overflow_recurse(depth + 1) + pad[sizeof pad - 1];
}

static int overflow_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  (void)arg;
  return overflow_recurse(0) == 12345 ? 1 : 0;
}

/* A fiber on the default stack that waits for a message, then writes the
 * lowest byte of a frame 100 KiB deep: 36 KiB below its 64 KiB stack.  A
 * one-page guard let that write land in the stack mapped below, another
 * fiber's, without a fault (a reviewer); the 64 KiB guard catches it. */
enum { MSG_BIG_FRAME = AX_MSG_USER + 90 };

__attribute__((noinline)) static int big_frame(void) {
  volatile char big[100 * 1024];
  big[0] = 1;
  return big[0];
}

static int big_frame_fiber(ax_actor_t *self, void *arg) {
  (void)arg;
  const ax_msg_t *m;
  if (ax_recv_type(self, MSG_BIG_FRAME, AX_FOREVER, &m) != 0)
    return 0;
  return big_frame() == 12345 ? 1 : 0;
}

static int big_frame_neighbour(ax_actor_t *self, void *arg) {
  (void)arg;
  const ax_msg_t *m;
  (void)ax_recv(self, AX_FOREVER, &m);
  return 0;
}

/* The runtime of an overflow test's child: one core, started; the child
 * exits 10 (made) or 11 (started) when it cannot have it. */
static ax_rt_t *overflow_child_rt(void) {
  ax_rt_opts_t ro;
  memset(&ro, 0, sizeof ro);
  ro.cores = 1;
  ro.flags = AX_RT_NO_SIGNALS | AX_RT_NO_PIN | AX_RT_KEEP_ALIVE;
  ax_rt_t *rt = NULL;
  if (ax_rt_new(&ro, &rt) != 0)
    _exit(10);
  if (ax_rt_start(rt) != 0)
    _exit(11);
  return rt;
}

/* The child of the large-frame test: the fiber's stack between two parked
 * fibers' (whichever way stacks are laid out, one lies just below it). */
static void big_frame_child(void) {
  ax_rt_t *rt = overflow_child_rt();
  ax_ref_t big;
  if (ax_spawn_fiber(rt, big_frame_neighbour, NULL, NULL, NULL) != 0 ||
      ax_spawn_fiber(rt, big_frame_fiber, NULL, NULL, &big) != 0 ||
      ax_spawn_fiber(rt, big_frame_neighbour, NULL, NULL, NULL) != 0)
    _exit(12);
  test_sleep_ms(100); /* all three stacks are mapped */
  if (ax_send(big, MSG_BIG_FRAME, NULL, 0) != 0)
    _exit(14);
  test_sleep_ms(5000); /* the abort comes first */
  _exit(13);
}

/* The child: a runtime with a fiber that overflows its smallest stack.
 * Must die by SIGABRT before it gets to exit. */
static void overflow_child(void) {
  ax_rt_t *rt = overflow_child_rt();
  ax_fiber_opts_t o;
  memset(&o, 0, sizeof o);
  o.stack_size = AX_FIBER_STACK_MIN;
  if (ax_spawn_fiber(rt, overflow_fiber, NULL, &o, NULL) != 0)
    _exit(12);
  test_sleep_ms(20000); /* the abort comes first */
  _exit(13);
}

static void check_overflow_child(void (*child)(void));

START_TEST(test_fiber_stack_overflow) {
  check_overflow_child(overflow_child);
}
END_TEST

START_TEST(test_fiber_stack_overflow_large_frame) {
  check_overflow_child(big_frame_child);
}
END_TEST

/* Runs child in a process of its own: it must die by SIGABRT with the
 * overflow report on its stderr. */
static void check_overflow_child(void (*child)(void)) {
  int pfd[2];
  ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dup2(pfd[1], STDERR_FILENO);
    close(pfd[0]);
    close(pfd[1]);
    child();
  }
  close(pfd[1]);
  static char out[65536];
  size_t have = 0;
  for (;;) {
    ssize_t r = read(pfd[0], out + have, sizeof out - 1 - have);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    have += (size_t)r;
    if (have == sizeof out - 1)
      break;
  }
  out[have] = '\0';
  close(pfd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                "the child did not die by SIGABRT (%s %d); its stderr:\n%s",
                WIFSIGNALED(status) ? "signal" : "exit status",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), out);
  ck_assert_msg(strstr(out, "overflowed its stack of") != NULL,
                "no overflow report on stderr:\n%s", out);
}

/* The overflow test needs the guard page's fault to reach axon's handler,
 * which ThreadSanitizer's own signal handling gets in the way of. */
static const char *overflow_missing(void) {
#if defined(__SANITIZE_THREAD__)
  return "a ThreadSanitizer build (the guard page's fault goes through TSan's handler)";
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  return "a ThreadSanitizer build (the guard page's fault goes through TSan's handler)";
#else
  return NULL;
#endif
#else
  return NULL;
#endif
}

/* ------------------------------------------------------------------------ */
/* 10. A parked fiber gives back the stack pages a deeper call touched        */

#define DEEP_BYTES (40 * 1024) /* the deep call's array: 10 pages of the 64 KiB stack */
#define KEEP_BYTES 3000        /* the fiber's own frame: live across the wait */

typedef struct deep {
  fib_t f;
  ax_ref_t self;
  unsigned char *_Atomic page; /* the lowest whole page the deep call wrote */
} deep_t;

/* Writes DEEP_BYTES of stack with `seed`, notes its lowest whole page and
 * returns a sum of what it reads back. */
static __attribute__((noinline)) unsigned deep_touch(deep_t *d, unsigned char seed) {
  unsigned char scratch[DEEP_BYTES];
  memset(scratch, seed, sizeof scratch);
  __asm__ volatile("" : : "r"(scratch) : "memory"); /* the writes happen */
  long pg = sysconf(_SC_PAGESIZE);
  atomic_store(&d->page, (unsigned char *)(((uintptr_t)scratch + (uintptr_t)pg - 1) &
                                           ~((uintptr_t)pg - 1)));
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof scratch; i += 512)
    sum += scratch[i];
  return sum;
}

/* Whether the page at p is resident (-1: mincore failed). */
static int resident(const unsigned char *p) {
  unsigned char v = 0;
  if (mincore((void *)p, 1, &v) != 0)
    return -1;
  return v & 1;
}

static int deep_fiber(ax_actor_t *self, void *arg) {
  deep_t *d = arg;
  unsigned char keep[KEEP_BYTES];
  for (size_t i = 0; i < sizeof keep; i++)
    keep[i] = (unsigned char)(i * 7 + 1);
  FCHECK_EQ(&d->f, deep_touch(d, 3), 3 * (DEEP_BYTES / 512));
  /* Checked here, before the wait: once parked, the trim may come any
   * time after 250 ms (a loaded machine can delay the test thread that
   * long). */
  FCHECK_EQ(&d->f, resident(atomic_load(&d->page)), 1);
  atomic_store(&d->f.phase, 1);
  const ax_msg_t *m;
  /* Parked: the core trims it.  Ticks first, each a park of a fiber the
   * core has listed already: the trim still comes once they stop. */
  do
    FCHECK_EQ(&d->f, ax_recv(self, AX_FOREVER, &m), 0);
  while (m->type == AX_MSG_USER + 1);
  size_t bad = 0;
  for (size_t i = 0; i < sizeof keep; i++)
    bad += keep[i] != (unsigned char)(i * 7 + 1);
  FCHECK_EQ(&d->f, bad, 0);                                /* its own frame is intact */
  FCHECK_EQ(&d->f, deep_touch(d, 5), 5 * (DEEP_BYTES / 512)); /* and it goes deep again */
  return 0;
}

/* A fiber writes 40 KiB of stack in a call, returns from it and parks,
 * woken by a few ticks first: once it has waited about 250 ms on an idle
 * core, the pages below its frame are no longer resident; its frame is
 * intact when it resumes, and it can go as deep again. */
START_TEST(test_fiber_deep_stack_goes_back) {
  ax_rt_t *rt = rt_new();
  static deep_t d;
  memset(&d, 0, sizeof d);
  fib_init(&d.f);
  d.self = spawn_fiber(rt, deep_fiber, &d.f, 0, 0);
  wait_phase(&d.f, 1);
  unsigned char *page = atomic_load(&d.page);
  ck_assert_ptr_nonnull(page);
  fib_assert_clean(&d.f); /* the page was resident before the wait */
  for (int i = 0; i < 3; i++) {
    test_sleep_ms(100);
    ck_assert_int_eq(ax_send(d.self, AX_MSG_USER + 1, NULL, 0), 0);
  }
  int64_t end = ax_now() + LONG_WAIT;
  while (resident(page) != 0 && ax_now() < end)
    test_sleep_ms(20);
  ck_assert_msg(resident(page) == 0, "the parked fiber's deep page is still resident after %d s",
                (int)(LONG_WAIT / SEC));
  ck_assert_int_eq(ax_send(d.self, AX_MSG_USER, NULL, 0), 0);
  fib_wait(&d.f, 10000);
  ck_assert_int_eq(atomic_load(&d.f.reason), AX_REASON_NORMAL);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */

/* ax_call: a reply comes back; a target that ignores the request runs
 * into the deadline; one that fails before replying ends the wait at
 * once with -ESRCH (it used to take the whole deadline with ax_request
 * and ax_recv_reply); a dead one is -ESRCH; one that replies and then
 * fails leaves no DOWN behind; the fiber's other messages stay queued. */
enum { CALL_ECHO = AX_MSG_USER + 70, CALL_IGNORE, CALL_DIE, CALL_ECHO_DIE, CALL_REPLY,
       CALL_OTHER, CALL_SLOW, CALL_ASK, CALL_ASKED };

enum { CALL_ASKS = 50 };

static int call_server(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == CALL_SLOW) { /* answers after the caller gave up */
    test_sleep_ms(10);
    (void)ax_reply(self, m, CALL_REPLY, m->data, m->size);
  }
  if (m->type == CALL_ASK) { /* sends the caller requests of its own core's numbering */
    ax_ref_t to;
    memcpy(&to, m->data, sizeof to);
    for (int i = 0; i < CALL_ASKS; i++)
      (void)ax_request(self, to, CALL_ASKED, NULL, 0, NULL);
  }
  if (m->type == CALL_ECHO || m->type == CALL_ECHO_DIE)
    (void)ax_reply(self, m, CALL_REPLY, m->data, m->size);
  if (m->type == CALL_DIE || m->type == CALL_ECHO_DIE)
    return -EIO;
  return 0;
}

typedef struct call_test {
  fib_t f;
  ax_ref_t server[3];
  ax_ref_t fserver; /* a fiber on the caller's core that answers calls */
} call_test_t;

/* A server that is a fiber: the requests of another fiber's ax_call reach
 * it (they are not replies to a call of its own). */
static int call_fiber_server(ax_actor_t *self, void *arg) {
  (void)arg;
  const ax_msg_t *m;
  while (ax_recv(self, AX_FOREVER, &m) == 0 && m->type == CALL_ECHO)
    (void)ax_reply(self, m, CALL_REPLY, m->data, m->size);
  return 0;
}

static int call_fiber(ax_actor_t *self, void *arg) {
  call_test_t *c = arg;
  fib_t *f = &c->f;
  const ax_msg_t *r;
  FCHECK_EQ(f, ax_send(ax_self(self), CALL_OTHER, NULL, 0), 0); /* waits its turn */
  FCHECK_EQ(f, ax_call(self, c->server[0], CALL_ECHO, "hi", 2, ax_deadline(LONG_WAIT), &r), 0);
  FCHECK_EQ(f, r->type, CALL_REPLY);
  FCHECK(f, r->size == 2 && memcmp(r->data, "hi", 2) == 0);
  FCHECK_EQ(f, ax_call(self, c->server[0], CALL_IGNORE, NULL, 0, ax_deadline(50 * MSEC), &r),
            -ETIMEDOUT);
  /* Requests from another core arrive first: none is taken for the reply
   * (request ids of different cores used to be the same numbers). */
  ax_ref_t me = ax_self(self);
  FCHECK_EQ(f, ax_send(c->server[0], CALL_ASK, &me, sizeof me), 0);
  for (int i = 0; i < CALL_ASKS; i++)
    FCHECK_EQ(f, ax_call(self, c->server[2], CALL_IGNORE, NULL, 0, ax_deadline(MSEC), &r),
              -ETIMEDOUT);
  /* Replies that come after their calls gave up are dropped, however
   * many calls gave up (the fiber used to remember its last four). */
  for (int i = 0; i < 8; i++)
    FCHECK_EQ(f, ax_call(self, c->server[2], CALL_SLOW, "z", 1, ax_deadline(MSEC), &r),
              -ETIMEDOUT);
  FCHECK_EQ(f, ax_call(self, c->fserver, CALL_ECHO, "f", 1, ax_deadline(LONG_WAIT), &r), 0);
  FCHECK(f, r->type == CALL_REPLY && r->size == 1 && memcmp(r->data, "f", 1) == 0);
  FCHECK_EQ(f, ax_send(c->fserver, CALL_DIE, NULL, 0), 0);
  int64_t t0 = ax_now();
  FCHECK_EQ(f, ax_call(self, c->server[0], CALL_DIE, NULL, 0, ax_deadline(LONG_WAIT), &r),
            -ESRCH);
  FCHECK(f, ax_now() - t0 < LONG_WAIT / 2);
  FCHECK_EQ(f, ax_call(self, c->server[0], CALL_ECHO, "x", 1, ax_deadline(LONG_WAIT), &r),
            -ESRCH); /* gone */
  FCHECK_EQ(f, ax_call(self, c->server[1], CALL_ECHO_DIE, "y", 1, ax_deadline(LONG_WAIT), &r), 0);
  FCHECK_EQ(f, r->type, CALL_REPLY);
  FCHECK_EQ(f, ax_call(self, AX_REF_NONE, CALL_ECHO, NULL, 0, AX_FOREVER, &r), -EINVAL);
  FCHECK_EQ(f, ax_call(self, ax_self(self), CALL_ECHO, NULL, 0, AX_FOREVER, &r), -EINVAL);
  FCHECK_EQ(f, ax_call(self, c->server[2], CALL_ECHO, NULL, 0, AX_FOREVER, NULL), -EINVAL);
  /* What is left: the message sent before the calls, the other core's
   * requests, and no DOWN and no late reply. */
  FCHECK_EQ(f, ax_recv(self, ax_deadline(LONG_WAIT), &r), 0);
  FCHECK_EQ(f, r->type, CALL_OTHER);
  for (int i = 0; i < CALL_ASKS; i++) {
    FCHECK_EQ(f, ax_recv(self, ax_deadline(LONG_WAIT), &r), 0);
    FCHECK_EQ(f, r->type, CALL_ASKED);
  }
  FCHECK_EQ(f, ax_recv(self, ax_deadline(300 * MSEC), &r), -ETIMEDOUT);
  return 0;
}

START_TEST(test_fiber_call) {
  ax_rt_t *rt = rt_new();
  static call_test_t c;
  fib_init(&c.f);
  for (int i = 0; i < 3; i++) /* on the other core, and on the fiber's own */
    c.server[i] = test_spawn(rt, call_server, NULL, AX_PLACE_CORE, i == 1 ? 0 : 1, NULL, NULL);
  ax_fiber_opts_t o = {.placement = AX_PLACE_CORE, .core = 0};
  ck_assert_int_eq(ax_spawn_fiber(rt, call_fiber_server, NULL, &o, &c.fserver), 0);
  spawn_fiber(rt, call_fiber, &c.f, 0, 0);
  fib_wait(&c.f, 20000);
  ck_assert_int_eq(ax_call(NULL, c.server[2], CALL_ECHO, NULL, 0, 0, NULL), -EPERM);
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *fiber_suite(void) {
  Suite *suite = suite_create("fiber");

  TCase *tc = tcase_create("messages");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_fiber_ping_pong);
  tcase_add_test(tc, test_fiber_selective_receive);
  tcase_add_test(tc, test_fiber_msg_take);
  tcase_add_test(tc, test_fiber_call);
  suite_add_tcase(suite, tc);

  tc = tcase_create("deadlines");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_deadlines);
  tcase_add_test(tc, test_fiber_poll_bounded_mailbox);
  suite_add_tcase(suite, tc);

  tc = tcase_create("stop");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_fiber_return_is_reason);
  tcase_add_test(tc, test_fiber_cancel_stop);
  tcase_add_test(tc, test_fiber_stop_reason_while_running);
  tcase_add_test(tc, test_fiber_cancel_shutdown);
  tcase_add_test(tc, test_fiber_stopped_before_running);
  tcase_add_test(tc, test_fiber_many_parked);
  suite_add_tcase(suite, tc);

  tc = tcase_create("memory");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_deep_stack_goes_back);
  suite_add_tcase(suite, tc);

  tc = tcase_create("misuse");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_misuse_from_handler);
  tcase_add_test(tc, test_fiber_misuse_bad_args);
  tcase_add_test(tc, test_fiber_misuse_other_fiber);
  tcase_add_test(tc, test_fiber_spawn_errors);
  tcase_add_test(tc, test_fiber_stacks_one_after_another);
  tcase_add_test(tc, test_fiber_spawn_after_stop);
  suite_add_tcase(suite, tc);

  /* Group "overflow": its own CTest entry, SKIP under ThreadSanitizer. */
  tc = tcase_create("overflow");
  tcase_set_tags(tc, "overflow");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_stack_overflow);
  tcase_add_test(tc, test_fiber_stack_overflow_large_frame);
  suite_add_tcase(suite, tc);

  return suite;
}

/* Without an argument: every TCase but the groups'; "overflow": the stack
 * overflow death test, or SKIP (77) in a ThreadSanitizer build. */
int main(int argc, char **argv) {
  static const test_group_t groups[] = {{"overflow", overflow_missing}};
  return test_run_groups(fiber_suite(), argc, argv, groups, sizeof groups / sizeof groups[0]);
}
