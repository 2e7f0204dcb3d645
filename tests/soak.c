/* Soak test: mixed traffic on a multi-core runtime for a while; nothing may be lost, reordered or leaked. */

/*
 * usage: soak [-t SECONDS] [-c CORES] [-p PAIRS] [-s STREAMS] [-q]
 *
 * Runs five kinds of traffic at once for -t seconds (10), then stops them,
 * waits until every one has drained, stops the runtime and checks the
 * counts.  Each kind checks one promise of the runtime under load:
 *
 *  - pairs: P pairs (64) of actors on different cores (AX_PLACE_CORE) send
 *    each other sequence-numbered messages, at most WINDOW unacknowledged
 *    each way.  Checks the per-sender FIFO promise across cores (each
 *    message must be seq + 1 of the last, each ack too) and that none is
 *    lost (sent == received == acked).
 *  - streams: S socketpairs (16), each end adopted as a stream
 *    (ax_pipe_open) by an actor, the two actors on different cores.  The
 *    client writes chunks of a pattern derived from the byte offset, the
 *    echo actor checks and returns them, the client checks the echo.
 *    Checks that stream bytes are neither lost, duplicated nor reordered,
 *    and that credit windows and write queues keep flowing.
 *  - timers: two actors per core tick with ax_every every 1 ms; every 100
 *    ticks they cancel the timer and start a new one whose payload carries
 *    a new generation.  Checks that timers fire (not absurdly few ticks)
 *    and that cancelling is final: no tick of a cancelled timer arrives.
 *  - spawns: one spawner per core keeps a window of short-lived children
 *    (plain actors and fibers in turn, spread over the cores), each
 *    monitored from its spawn, each answering one request and stopping.
 *    Checks that every spawn gets exactly one reply and exactly one DOWN
 *    with a normal reason, and that actors do not leak (the live count
 *    returns to the fixed population).
 *  - restarts: a one_for_one supervisor whose children fail (-EIO) every K
 *    requests from their drivers.  Checks that each failure gives exactly
 *    one DOWN and exactly one restart, and that the supervisor keeps up.
 *
 * Every second (unless -q) one line: elapsed time, messages/s handled by
 * the runtime, RSS, live actors and running totals.  At the end a summary,
 * the checks, and "soak: PASS" (exit 0) or a "FAIL:" line per failed check
 * (exit 1).  The RSS after the first 25% of the run is the baseline: the
 * RSS at the end may be at most 1.5 times it and at most 16 MiB above it.
 * Under ASan or TSan the traffic is scaled down and the RSS check is
 * reported but not enforced (their allocators and shadow memory grow on
 * their own).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <axon.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SOAK_SANITIZED 1
#endif
#endif
#ifndef SOAK_SANITIZED
#define SOAK_SANITIZED 0
#endif

enum {
  MSG_GO = AX_MSG_USER, /* start the traffic */
  MSG_STOP,             /* stop the traffic, drain, then report done */
  MSG_PAIR_DATA,        /* uint64_t seq */
  MSG_PAIR_ACK,         /* uint64_t seq */
  MSG_TICK,             /* uint32_t generation */
  MSG_TICK_END,         /* the ticker's grace period after its last cancel is over */
  MSG_REQ,              /* a request to a spawned or supervised child */
  MSG_REPLY,            /* its reply; from a supervised child: bool "failing now" */
  MSG_CHILD_UP,         /* ax_ref_t: a supervised child (re)started */
};

enum {
  PAIR_WINDOW = 32,              /* unacknowledged messages each way */
  STREAM_WINDOW = 64 * 1024,     /* bytes written and not yet echoed back */
  STREAM_CHUNK = 8192,           /* the largest write */
  TICK_NS = 1000 * 1000,         /* ax_every period */
  TICKS_PER_TIMER = 100,         /* ticks before a cancel and a new timer */
  TICK_GRACE_NS = 20 * 1000 * 1000, /* how long a ticker watches for late ticks */
  SPAWN_WINDOW_MAX = 16,         /* children alive at once per spawner */
  SUP_FAIL_EVERY = 8,            /* a supervised child fails on every 8th request */
  DRAIN_TIMEOUT_S = 30,
};

/* ------------------------------------------------------------------------ */
/* Counters, completion and errors                                           */

/* A counter written by one actor and read by main while the runtime runs. */
typedef _Atomic uint64_t counter_t;

static void count(counter_t *c, uint64_t n) {
  /* Single writer: no read-modify-write needed; relaxed, main only samples. */
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

static uint64_t get(counter_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

static atomic_uint g_done;         /* traffic actors that drained after MSG_STOP */
static atomic_bool g_shutting;     /* main is stopping the runtime: ends are expected */
static atomic_uint g_errors;       /* unexpected results of axon calls */
static char g_first_error[160];    /* the first of them, written once */

/* An actor reports that its traffic has drained; once only. */
static void report_done(bool *done) {
  if (*done)
    return;
  *done = true;
  /* Release: main reads the actor's counters after seeing the count. */
  atomic_fetch_add_explicit(&g_done, 1, memory_order_release);
}

/* Records an axon call that failed where it must not. */
static void note_error(const char *what, int rc) {
  if (atomic_fetch_add(&g_errors, 1) == 0)
    snprintf(g_first_error, sizeof g_first_error, "%s: %s", what, ax_strerror(rc));
}

/* Memory for n states of `size` bytes each, zeroed and cache-line aligned. */
static void *alloc_states(size_t n, size_t size) {
  size_t bytes = (n * size + 63) / 64 * 64;
  void *p = aligned_alloc(64, bytes != 0 ? bytes : 64);
  if (p == NULL) {
    fprintf(stderr, "soak: out of memory\n");
    exit(1);
  }
  return memset(p, 0, bytes);
}

/* ------------------------------------------------------------------------ */
/* Cross-core pairs                                                          */

typedef struct pair_end {
  alignas(64) ax_ref_t ref, partner;
  uint64_t next_seq; /* the next seq to send (the first is 1) */
  uint64_t acked;    /* the last seq acknowledged */
  uint64_t expect;   /* the next seq expected from the partner */
  bool stopping, done;
  counter_t sent, received, disorder;
} pair_end_t;

static void pair_fill(pair_end_t *p) {
  while (!p->stopping && p->next_seq - 1 - p->acked < PAIR_WINDOW) {
    int rc = ax_send(p->partner, MSG_PAIR_DATA, &p->next_seq, sizeof p->next_seq);
    if (rc < 0) {
      note_error("pair: ax_send(data)", rc);
      return;
    }
    p->next_seq++;
    count(&p->sent, 1);
  }
}

static void pair_data(pair_end_t *p, const ax_msg_t *msg) {
  uint64_t seq;
  memcpy(&seq, msg->data, sizeof seq);
  if (seq != p->expect || msg->from != p->partner)
    count(&p->disorder, 1);
  p->expect = seq + 1;
  count(&p->received, 1);
  int rc = ax_send(p->partner, MSG_PAIR_ACK, &seq, sizeof seq);
  if (rc < 0)
    note_error("pair: ax_send(ack)", rc);
}

static void pair_ack(pair_end_t *p, const ax_msg_t *msg) {
  uint64_t seq;
  memcpy(&seq, msg->data, sizeof seq);
  if (seq != p->acked + 1)
    count(&p->disorder, 1);
  p->acked = seq;
  pair_fill(p);
}

static int pair_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  pair_end_t *p = ax_state(self);
  switch (msg->type) {
  case MSG_GO:
    pair_fill(p);
    break;
  case MSG_PAIR_DATA:
    pair_data(p, msg);
    break;
  case MSG_PAIR_ACK:
    pair_ack(p, msg);
    break;
  case MSG_STOP:
    p->stopping = true;
    break;
  }
  if (p->stopping && p->acked == p->next_seq - 1)
    report_done(&p->done);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Streams over socketpairs                                                  */

typedef struct stream_end {
  alignas(64) ax_ref_t ref;
  int fd;             /* adopted on MSG_GO */
  bool client;        /* the writer and checker of echoes; else the echo */
  bool stopping, done;
  ax_stream_t *s;
  uint64_t wr_off, rd_off;
  uint64_t rng;
  counter_t bytes_out, bytes_in, corrupt;
} stream_end_t;

/* The byte at offset off of every stream: a hash, so that a chunk moved
 * anywhere else reads wrong. */
static unsigned char pattern(uint64_t off) {
  return (unsigned char)((off * 0x9E3779B97F4A7C15ull) >> 56);
}

static void stream_fill(stream_end_t *e) {
  unsigned char buf[STREAM_CHUNK];
  while (!e->stopping) {
    e->rng ^= e->rng << 13, e->rng ^= e->rng >> 7, e->rng ^= e->rng << 17;
    size_t n = 1 + (size_t)(e->rng % STREAM_CHUNK);
    if (e->wr_off - e->rd_off + n > STREAM_WINDOW)
      return;
    for (size_t i = 0; i < n; i++)
      buf[i] = pattern(e->wr_off + i);
    int rc = ax_stream_write(e->s, buf, n);
    if (rc < 0) {
      note_error("stream: ax_stream_write(client)", rc);
      return;
    }
    e->wr_off += n;
    count(&e->bytes_out, n);
  }
}

static void stream_data(stream_end_t *e, const ax_data_t *d) {
  for (size_t i = 0; i < d->len; i++) {
    if (d->bytes[i] != pattern(e->rd_off + i)) {
      count(&e->corrupt, 1);
      break;
    }
  }
  e->rd_off += d->len;
  count(&e->bytes_in, d->len);
  if (e->client) {
    stream_fill(e);
    return;
  }
  int rc = ax_stream_write(e->s, d->bytes, d->len);
  if (rc < 0)
    note_error("stream: ax_stream_write(echo)", rc);
  else
    count(&e->bytes_out, d->len);
}

static void stream_go(ax_actor_t *self, stream_end_t *e) {
  int rc = ax_pipe_open(self, e->fd, e->fd, NULL, &e->s);
  if (rc < 0) {
    note_error("stream: ax_pipe_open", rc);
    e->stopping = true; /* nothing to drain */
    return;
  }
  if (e->client)
    stream_fill(e);
}

static int stream_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  stream_end_t *e = ax_state(self);
  const ax_stream_ev_t *ev = msg->data;
  switch (msg->type) {
  case MSG_GO:
    stream_go(self, e);
    break;
  case AX_MSG_DATA:
    stream_data(e, msg->data);
    break;
  case AX_MSG_CLOSED:
    if (!atomic_load(&g_shutting))
      note_error("stream: AX_MSG_CLOSED before the end", ev->err < 0 ? ev->err : -EPIPE);
    e->s = NULL;
    break;
  case MSG_STOP:
    e->stopping = true;
    break;
  }
  if (e->client && e->stopping && e->rd_off == e->wr_off)
    report_done(&e->done);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

typedef struct ticker {
  alignas(64) ax_ref_t ref;
  uint64_t id;      /* the current timer */
  uint32_t gen;     /* its generation, carried by its ticks */
  unsigned in_gen;  /* ticks of the current timer */
  bool stopping, done;
  counter_t ticks, late, renewals;
} ticker_t;

static void ticker_start(ax_actor_t *self, ticker_t *t) {
  t->gen++;
  t->in_gen = 0;
  int rc = ax_every(self, TICK_NS, MSG_TICK, &t->gen, sizeof t->gen, &t->id);
  if (rc < 0)
    note_error("timer: ax_every", rc);
}

static void ticker_cancel(ax_actor_t *self, ticker_t *t) {
  int rc = ax_timer_cancel(self, t->id);
  if (rc < 0)
    note_error("timer: ax_timer_cancel", rc);
}

static void ticker_tick(ax_actor_t *self, ticker_t *t, const ax_msg_t *msg) {
  uint32_t gen;
  memcpy(&gen, msg->data, sizeof gen);
  if (t->stopping || gen != t->gen) { /* a tick of a cancelled timer */
    count(&t->late, 1);
    return;
  }
  count(&t->ticks, 1);
  if (++t->in_gen == TICKS_PER_TIMER) {
    ticker_cancel(self, t);
    ticker_start(self, t);
    count(&t->renewals, 1);
  }
}

static int ticker_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  ticker_t *t = ax_state(self);
  int rc;
  switch (msg->type) {
  case MSG_GO:
    ticker_start(self, t);
    break;
  case MSG_TICK:
    ticker_tick(self, t, msg);
    break;
  case MSG_STOP: /* cancel, then watch a while for ticks that should not come */
    ticker_cancel(self, t);
    t->stopping = true;
    if ((rc = ax_after(self, TICK_GRACE_NS, MSG_TICK_END, NULL, 0, NULL)) < 0)
      note_error("timer: ax_after", rc);
    break;
  case MSG_TICK_END:
    report_done(&t->done);
    break;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Spawns and stops                                                          */

typedef struct spawn_slot {
  ax_ref_t ref;        /* AX_REF_NONE: free */
  uint64_t monitor;
  bool replied, down;
} spawn_slot_t;

typedef struct spawner {
  alignas(64) ax_ref_t ref;
  unsigned window;     /* slots in use at most */
  unsigned used;
  uint64_t launched;   /* even: a plain actor next, odd: a fiber */
  bool stopping, done;
  spawn_slot_t slot[SPAWN_WINDOW_MAX];
  counter_t spawned, replies, downs, wrong;
} spawner_t;

/* A plain child: answers one request, then stops. */
static int child_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  if (msg->type != MSG_REQ)
    return -EPROTO;
  int rc = ax_reply(self, msg, MSG_REPLY, NULL, 0);
  return rc < 0 ? rc : AX_STOP;
}

/* A fiber child: the same in straight-line code. */
static int child_fiber(ax_actor_t *self, void *arg) {
  (void)arg;
  const ax_msg_t *msg;
  int rc = ax_recv(self, ax_deadline((int64_t)DRAIN_TIMEOUT_S * AX_NSEC_PER_SEC), &msg);
  if (rc < 0)
    return rc;
  if (msg->type != MSG_REQ)
    return -EPROTO;
  rc = ax_reply(self, msg, MSG_REPLY, NULL, 0);
  return rc < 0 ? rc : 0;
}

static void spawner_launch(ax_actor_t *self, spawner_t *sp, spawn_slot_t *slot) {
  ax_rt_t *rt = ax_actor_rt(self);
  ax_ref_t ref = AX_REF_NONE;
  int rc;
  if (sp->launched++ % 2 == 0) {
    ax_spawn_opts_t o = {.placement = AX_PLACE_SPREAD, .monitor = self,
                         .monitor_id = &slot->monitor};
    rc = ax_spawn(rt, child_behaviour, NULL, &o, &ref);
  } else {
    ax_fiber_opts_t o = {.placement = AX_PLACE_SPREAD, .monitor = self,
                         .monitor_id = &slot->monitor};
    rc = ax_spawn_fiber(rt, child_fiber, NULL, &o, &ref);
  }
  if (rc == 0)
    rc = ax_request(self, ref, MSG_REQ, NULL, 0, NULL);
  if (rc < 0) {
    note_error("spawn: ax_spawn or ax_request", rc);
    return;
  }
  *slot = (spawn_slot_t){.ref = ref, .monitor = slot->monitor};
  sp->used++;
  count(&sp->spawned, 1);
}

static spawn_slot_t *spawner_find(spawner_t *sp, ax_ref_t ref) {
  for (unsigned i = 0; i < sp->window; i++)
    if (sp->slot[i].ref == ref && ref != AX_REF_NONE)
      return &sp->slot[i];
  return NULL;
}

/* A reply or a DOWN of the child in `slot`; once both came, the slot takes
 * the next child. */
static void spawner_settle(ax_actor_t *self, spawner_t *sp, spawn_slot_t *slot) {
  if (!slot->replied || !slot->down)
    return;
  slot->ref = AX_REF_NONE;
  sp->used--;
  if (!sp->stopping)
    spawner_launch(self, sp, slot);
}

static void spawner_reply(ax_actor_t *self, spawner_t *sp, const ax_msg_t *msg) {
  spawn_slot_t *slot = spawner_find(sp, msg->from);
  if (slot == NULL || slot->replied) {
    count(&sp->wrong, 1);
    return;
  }
  slot->replied = true;
  count(&sp->replies, 1);
  spawner_settle(self, sp, slot);
}

static void spawner_down(ax_actor_t *self, spawner_t *sp, const ax_down_t *d) {
  spawn_slot_t *slot = spawner_find(sp, d->ref);
  if (slot == NULL || slot->down || slot->monitor != d->id || d->reason != AX_REASON_NORMAL) {
    if (!atomic_load(&g_shutting))
      count(&sp->wrong, 1);
    return;
  }
  slot->down = true;
  count(&sp->downs, 1);
  spawner_settle(self, sp, slot);
}

static int spawner_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  spawner_t *sp = ax_state(self);
  switch (msg->type) {
  case MSG_GO:
    for (unsigned i = 0; i < sp->window; i++)
      spawner_launch(self, sp, &sp->slot[i]);
    break;
  case MSG_REPLY:
    spawner_reply(self, sp, msg);
    break;
  case AX_MSG_DOWN:
    spawner_down(self, sp, msg->data);
    break;
  case MSG_STOP:
    sp->stopping = true;
    break;
  }
  if (sp->stopping && sp->used == 0)
    report_done(&sp->done);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Supervisor restarts                                                       */

/* One supervised child and the actor that drives it with requests. */
typedef struct driver {
  alignas(64) ax_ref_t ref;
  unsigned child_core;  /* read by the start function (the supervisor's core) */
  ax_ref_t child;       /* the live incarnation; AX_REF_NONE while it restarts */
  bool outstanding;     /* a request waits for its reply */
  bool stopping, done;
  counter_t requests, replies, failures, starts, downs, wrong;
} driver_t;

typedef struct sup_child {
  uint64_t handled;
} sup_child_t;

static void sup_child_free(ax_actor_t *self, int reason) {
  (void)reason;
  free(ax_state(self));
}

/* Replies to each request; the SUP_FAIL_EVERY-th reply says so, then the
 * child fails with -EIO. */
static int sup_child_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  sup_child_t *c = ax_state(self);
  if (msg->type != MSG_REQ)
    return 0; /* AX_MSG_SHUTDOWN: the runtime's stop ends it anyway */
  bool fail = ++c->handled % SUP_FAIL_EVERY == 0;
  int rc = ax_reply(self, msg, MSG_REPLY, &fail, sizeof fail);
  if (rc < 0)
    return rc;
  return fail ? -EIO : 0;
}

/* The supervisor's start function: a fresh child on the driver's chosen
 * core, whose reference goes to the driver. */
static int sup_child_start(ax_actor_t *sup, void *arg, ax_ref_t *ref) {
  const driver_t *d = arg;
  sup_child_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = d->child_core,
                       .terminate = sup_child_free, .monitor = sup};
  int rc = ax_spawn(ax_actor_rt(sup), sup_child_behaviour, c, &o, ref);
  if (rc < 0) {
    free(c);
    return rc;
  }
  rc = ax_send(d->ref, MSG_CHILD_UP, ref, sizeof *ref);
  if (rc < 0)
    note_error("restart: ax_send(child up)", rc);
  return 0;
}

static void driver_send(ax_actor_t *self, driver_t *d) {
  if (d->stopping || d->outstanding || d->child == AX_REF_NONE)
    return;
  int rc = ax_request(self, d->child, MSG_REQ, NULL, 0, NULL);
  if (rc < 0) {
    note_error("restart: ax_request", rc);
    return;
  }
  d->outstanding = true;
  count(&d->requests, 1);
}

static void driver_child_up(ax_actor_t *self, driver_t *d, const ax_msg_t *msg) {
  memcpy(&d->child, msg->data, sizeof d->child);
  count(&d->starts, 1);
  int rc = ax_monitor(self, d->child, NULL);
  if (rc < 0)
    note_error("restart: ax_monitor", rc);
}

static void driver_reply(driver_t *d, const ax_msg_t *msg) {
  bool fail;
  memcpy(&fail, msg->data, sizeof fail);
  d->outstanding = false;
  count(&d->replies, 1);
  if (!fail)
    return;
  count(&d->failures, 1);
  if (msg->from == d->child) /* else the new incarnation came up first */
    d->child = AX_REF_NONE;
}

static void driver_down(driver_t *d, const ax_down_t *down) {
  if (atomic_load(&g_shutting))
    return;
  count(&d->downs, 1);
  if (down->reason != -EIO)
    count(&d->wrong, 1);
}

static int driver_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  driver_t *d = ax_state(self);
  switch (msg->type) {
  case MSG_CHILD_UP:
    driver_child_up(self, d, msg);
    break;
  case MSG_REPLY:
    driver_reply(d, msg);
    break;
  case AX_MSG_DOWN:
    driver_down(d, msg->data);
    break;
  case MSG_STOP:
    d->stopping = true;
    break;
  }
  driver_send(self, d);
  uint64_t failures = get(&d->failures);
  if (d->stopping && !d->outstanding && get(&d->starts) == failures + 1 &&
      get(&d->downs) == failures)
    report_done(&d->done);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */

typedef struct soak {
  int seconds;
  unsigned cores;
  unsigned npairs, nstreams, ntickers, nspawners, ndrivers;
  bool quiet;
  ax_rt_t *rt;
  pair_end_t *pairs;     /* 2 * npairs: a pair is [2i], [2i+1] */
  stream_end_t *streams; /* 2 * nstreams: client [2i], echo [2i+1] */
  ticker_t *tickers;
  spawner_t *spawners;
  driver_t *drivers;
  ax_ref_t sup;
} soak_t;

static ax_ref_t spawn_on(soak_t *s, ax_behaviour_t b, void *state, unsigned core) {
  ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = core % s->cores};
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_spawn(s->rt, b, state, &o, &ref);
  if (rc < 0) {
    fprintf(stderr, "soak: ax_spawn: %s\n", ax_strerror(rc));
    exit(1);
  }
  return ref;
}

static void setup_pairs(soak_t *s) {
  s->pairs = alloc_states(2 * (size_t)s->npairs, sizeof *s->pairs);
  for (unsigned i = 0; i < s->npairs; i++) {
    pair_end_t *a = &s->pairs[2 * i], *b = a + 1;
    a->ref = spawn_on(s, pair_behaviour, a, i);
    b->ref = spawn_on(s, pair_behaviour, b, i + 1); /* the next core */
    a->partner = b->ref, b->partner = a->ref;
    a->next_seq = b->next_seq = 1;
    a->expect = b->expect = 1;
  }
}

static void setup_streams(soak_t *s) {
  s->streams = alloc_states(2 * (size_t)s->nstreams, sizeof *s->streams);
  for (unsigned i = 0; i < s->nstreams; i++) {
    stream_end_t *c = &s->streams[2 * i], *e = c + 1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      perror("soak: socketpair");
      exit(1);
    }
    c->fd = sv[0], e->fd = sv[1];
    c->client = true;
    c->rng = 0x2545F4914F6CDD1Dull + i;
    c->ref = spawn_on(s, stream_behaviour, c, i);
    e->ref = spawn_on(s, stream_behaviour, e, i + 1);
  }
}

static void setup_tickers(soak_t *s) {
  s->tickers = alloc_states(s->ntickers, sizeof *s->tickers);
  for (unsigned i = 0; i < s->ntickers; i++)
    s->tickers[i].ref = spawn_on(s, ticker_behaviour, &s->tickers[i], i);
}

static void setup_spawners(soak_t *s) {
  s->spawners = alloc_states(s->nspawners, sizeof *s->spawners);
  for (unsigned i = 0; i < s->nspawners; i++) {
    s->spawners[i].window = SOAK_SANITIZED ? 4 : SPAWN_WINDOW_MAX;
    s->spawners[i].ref = spawn_on(s, spawner_behaviour, &s->spawners[i], i);
  }
}

static void setup_supervisor(soak_t *s) {
  s->drivers = alloc_states(s->ndrivers, sizeof *s->drivers);
  ax_child_spec_t specs[8];
  for (unsigned i = 0; i < s->ndrivers; i++) {
    driver_t *d = &s->drivers[i];
    d->child_core = (i + 1) % s->cores;
    d->ref = spawn_on(s, driver_behaviour, d, i);
    specs[i] = (ax_child_spec_t){.name = "failing", .start = sup_child_start, .arg = d,
                                 .restart = AX_PERMANENT, .shutdown_ns = AX_SHUTDOWN_BRUTAL};
  }
  ax_sup_opts_t o = {.strategy = AX_ONE_FOR_ONE, .max_restarts = AX_SUP_RESTARTS_MAX,
                     .period_ns = AX_NSEC_PER_SEC, .children = specs,
                     .nchildren = s->ndrivers};
  ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = 0};
  int rc = ax_sup_start(s->rt, &o, &so, &s->sup);
  if (rc < 0) {
    fprintf(stderr, "soak: ax_sup_start: %s\n", ax_strerror(rc));
    exit(1);
  }
}

/* Sends `type` to every actor that drives traffic (not the echoes: they follow). */
static void broadcast(soak_t *s, uint32_t type) {
  int rc = 0;
  for (unsigned i = 0; i < 2 * s->npairs; i++)
    rc |= ax_send(s->pairs[i].ref, type, NULL, 0);
  for (unsigned i = 0; i < 2 * s->nstreams; i++)
    if (type == MSG_GO || s->streams[i].client)
      rc |= ax_send(s->streams[i].ref, type, NULL, 0);
  for (unsigned i = 0; i < s->ntickers; i++)
    rc |= ax_send(s->tickers[i].ref, type, NULL, 0);
  for (unsigned i = 0; i < s->nspawners; i++)
    rc |= ax_send(s->spawners[i].ref, type, NULL, 0);
  for (unsigned i = 0; i < s->ndrivers && type == MSG_STOP; i++)
    rc |= ax_send(s->drivers[i].ref, type, NULL, 0); /* they start on MSG_CHILD_UP */
  if (rc != 0)
    note_error("main: ax_send(go/stop)", -ESRCH);
}

static unsigned traffic_actors(const soak_t *s) {
  return 2 * s->npairs + s->nstreams + s->ntickers + s->nspawners + s->ndrivers;
}

/* Actors alive when no child of a spawner is: the traffic actors, the
 * echoes, the supervisor and its children. */
static uint64_t population(const soak_t *s) {
  return (uint64_t)traffic_actors(s) + s->nstreams + 1 + s->ndrivers;
}

/* ------------------------------------------------------------------------ */
/* Sampling and reporting                                                    */

typedef struct totals {
  uint64_t pair_msgs, pair_disorder;
  uint64_t stream_bytes, stream_corrupt;
  uint64_t ticks, late_ticks;
  uint64_t spawned, spawn_replies, spawn_downs, spawn_wrong;
  uint64_t sup_requests, sup_replies, sup_failures, sup_restarts, sup_downs, sup_wrong;
} totals_t;

static totals_t sum_totals(soak_t *s) {
  totals_t t = {0};
  for (unsigned i = 0; i < 2 * s->npairs; i++) {
    t.pair_msgs += get(&s->pairs[i].received);
    t.pair_disorder += get(&s->pairs[i].disorder);
  }
  for (unsigned i = 0; i < 2 * s->nstreams; i++) {
    if (s->streams[i].client)
      t.stream_bytes += get(&s->streams[i].bytes_in);
    t.stream_corrupt += get(&s->streams[i].corrupt);
  }
  for (unsigned i = 0; i < s->ntickers; i++) {
    t.ticks += get(&s->tickers[i].ticks);
    t.late_ticks += get(&s->tickers[i].late);
  }
  for (unsigned i = 0; i < s->nspawners; i++) {
    t.spawned += get(&s->spawners[i].spawned);
    t.spawn_replies += get(&s->spawners[i].replies);
    t.spawn_downs += get(&s->spawners[i].downs);
    t.spawn_wrong += get(&s->spawners[i].wrong);
  }
  for (unsigned i = 0; i < s->ndrivers; i++) {
    driver_t *d = &s->drivers[i];
    uint64_t starts = get(&d->starts);
    t.sup_requests += get(&d->requests);
    t.sup_replies += get(&d->replies);
    t.sup_failures += get(&d->failures);
    t.sup_restarts += starts > 0 ? starts - 1 : 0;
    t.sup_downs += get(&d->downs);
    t.sup_wrong += get(&d->wrong);
  }
  return t;
}

/* Resident memory in KiB, from /proc/self/statm. */
static uint64_t rss_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f != NULL) {
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

static ax_core_stats_t rt_totals(soak_t *s) {
  ax_core_stats_t st = {0};
  ax_rt_stats_total(s->rt, &st);
  return st;
}

static void print_second(soak_t *s, double elapsed, double msgs_per_s) {
  totals_t t = sum_totals(s);
  ax_core_stats_t st = rt_totals(s);
  printf("%5.0fs msgs/s %9.0f rss %7" PRIu64 " KiB actors %5" PRIu64 " | pairs %" PRIu64
         " stream KiB %" PRIu64 " ticks %" PRIu64 " spawns %" PRIu64 " restarts %" PRIu64 "\n",
         elapsed, msgs_per_s, rss_kib(), st.actors, t.pair_msgs, t.stream_bytes / 1024, t.ticks,
         t.spawned, t.sup_restarts);
  fflush(stdout);
}

static void sleep_until(int64_t when) {
  struct timespec ts = {when / AX_NSEC_PER_SEC, when % AX_NSEC_PER_SEC};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* Runs the traffic for s->seconds, printing a line a second; stores the
 * RSS after the warm-up and at the end. */
static void run_traffic(soak_t *s, uint64_t *rss_warm, uint64_t *rss_end) {
  int64_t start = ax_now();
  int64_t warm_at = start + (int64_t)s->seconds * AX_NSEC_PER_SEC / 4;
  uint64_t last_delivered = rt_totals(s).delivered;
  int64_t last = start;
  *rss_warm = 0;
  for (int sec = 1; sec <= s->seconds; sec++) {
    int64_t next = start + (int64_t)sec * AX_NSEC_PER_SEC;
    if (*rss_warm == 0 && warm_at <= next) {
      sleep_until(warm_at);
      *rss_warm = rss_kib();
    }
    sleep_until(next);
    uint64_t delivered = rt_totals(s).delivered;
    int64_t now = ax_now();
    if (!s->quiet)
      print_second(s, (double)(now - start) / 1e9,
                   (double)(delivered - last_delivered) * 1e9 / (double)(now - last));
    last_delivered = delivered, last = now;
  }
  *rss_end = rss_kib();
}

/* Waits until every traffic actor drained; false after DRAIN_TIMEOUT_S. */
static bool wait_drained(soak_t *s) {
  int64_t deadline = ax_now() + (int64_t)DRAIN_TIMEOUT_S * AX_NSEC_PER_SEC;
  /* Acquire: pairs with report_done, so the counters read next are final. */
  while (atomic_load_explicit(&g_done, memory_order_acquire) < traffic_actors(s)) {
    if (ax_now() > deadline)
      return false;
    sleep_until(ax_now() + 5 * AX_NSEC_PER_MSEC);
  }
  return true;
}

/* Waits (up to 2 s) for the live actor count to settle at the population;
 * returns the last count seen. */
static uint64_t wait_population(soak_t *s) {
  int64_t deadline = ax_now() + 2 * AX_NSEC_PER_SEC;
  uint64_t live;
  while ((live = rt_totals(s).actors) != population(s) && ax_now() < deadline)
    sleep_until(ax_now() + 5 * AX_NSEC_PER_MSEC);
  return live;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */

static int g_failed;

/* Prints the check's line; counts it as failed unless ok. */
static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check(bool ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("%s", ok ? "  ok    " : "FAIL: ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  g_failed += !ok;
}

static void check_pairs(soak_t *s, const totals_t *t) {
  uint64_t lost = 0;
  for (unsigned i = 0; i < 2 * s->npairs; i++) {
    pair_end_t *p = &s->pairs[i], *q = &s->pairs[i ^ 1];
    uint64_t sent = get(&p->sent);
    lost += (sent - get(&q->received)) + (sent - p->acked);
  }
  check(t->pair_disorder == 0, "pairs: %" PRIu64 " messages, %" PRIu64 " out of order",
        t->pair_msgs, t->pair_disorder);
  check(lost == 0, "pairs: %" PRIu64 " lost (sent minus received, sent minus acked)", lost);
}

static void check_streams(soak_t *s, const totals_t *t) {
  uint64_t lost = 0;
  for (unsigned i = 0; i < s->nstreams; i++) {
    stream_end_t *c = &s->streams[2 * i], *e = c + 1;
    uint64_t out = get(&c->bytes_out);
    lost += (out - get(&e->bytes_in)) + (get(&e->bytes_out) - get(&c->bytes_in)) +
            (out - get(&c->bytes_in));
  }
  check(t->stream_corrupt == 0, "streams: %" PRIu64 " KiB echoed, %" PRIu64 " corrupt chunks",
        t->stream_bytes / 1024, t->stream_corrupt);
  check(lost == 0, "streams: %" PRIu64 " bytes lost", lost);
}

static void check_timers(soak_t *s, const totals_t *t) {
  uint64_t expected = (uint64_t)s->seconds * (AX_NSEC_PER_SEC / TICK_NS) * s->ntickers;
  uint64_t renewals = 0;
  for (unsigned i = 0; i < s->ntickers; i++)
    renewals += get(&s->tickers[i].renewals);
  check(t->ticks >= expected / 20, "timers: %" PRIu64 " ticks (%" PRIu64 " at most), %" PRIu64
        " renewals, at least %" PRIu64 " needed", t->ticks, expected, renewals, expected / 20);
  check(t->late_ticks == 0, "timers: %" PRIu64 " ticks after their timer was cancelled",
        t->late_ticks);
}

static void check_spawns(const totals_t *t) {
  check(t->spawned == t->spawn_replies && t->spawned == t->spawn_downs && t->spawn_wrong == 0,
        "spawns: %" PRIu64 " spawned, %" PRIu64 " replies, %" PRIu64 " DOWNs, %" PRIu64
        " unexpected replies or DOWNs", t->spawned, t->spawn_replies, t->spawn_downs,
        t->spawn_wrong);
}

static void check_restarts(const totals_t *t) {
  check(t->sup_requests == t->sup_replies && t->sup_failures == t->sup_restarts &&
        t->sup_failures == t->sup_downs && t->sup_wrong == 0,
        "restarts: %" PRIu64 " requests, %" PRIu64 " replies, %" PRIu64 " failures, %" PRIu64
        " restarts, %" PRIu64 " DOWNs, %" PRIu64 " with a wrong reason", t->sup_requests,
        t->sup_replies, t->sup_failures, t->sup_restarts, t->sup_downs, t->sup_wrong);
}

static void check_rss(uint64_t warm, uint64_t end) {
  bool ok = end * 2 <= warm * 3 && end <= warm + 16 * 1024;
  if (SOAK_SANITIZED) {
    printf("  info  rss: %" PRIu64 " KiB after warm-up, %" PRIu64
           " KiB at the end (not checked under a sanitizer)\n", warm, end);
    return;
  }
  check(ok, "rss: %" PRIu64 " KiB after warm-up, %" PRIu64 " KiB at the end (limit %" PRIu64
        " KiB)", warm, end, warm * 3 / 2 < warm + 16 * 1024 ? warm * 3 / 2 : warm + 16 * 1024);
}

/* ------------------------------------------------------------------------ */
/* main                                                                      */

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s [-t SECONDS] [-c CORES] [-p PAIRS] [-s STREAMS] [-q]\n", argv0);
  exit(2);
}

static unsigned cpu_count(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? (unsigned)n : 1;
}

static void parse_args(soak_t *s, int argc, char **argv) {
  int opt;
  s->seconds = 10;
  s->npairs = SOAK_SANITIZED ? 16 : 64;
  s->nstreams = SOAK_SANITIZED ? 4 : 16;
  while ((opt = getopt(argc, argv, "t:c:p:s:q")) != -1) {
    switch (opt) {
    case 't': s->seconds = atoi(optarg); break;
    case 'c': s->cores = (unsigned)atoi(optarg); break;
    case 'p': s->npairs = (unsigned)atoi(optarg); break;
    case 's': s->nstreams = (unsigned)atoi(optarg); break;
    case 'q': s->quiet = true; break;
    default: usage(argv[0]);
    }
  }
  if (optind != argc || s->seconds < 1 || s->cores > AX_MAX_CORES)
    usage(argv[0]);
}

static void start_runtime(soak_t *s) {
  ax_rt_opts_t o = {.cores = s->cores, .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  if (s->cores > cpu_count())
    o.flags |= AX_RT_NO_PIN;
  int rc = ax_rt_new(&o, &s->rt);
  if (rc == 0)
    rc = ax_rt_start(s->rt);
  if (rc < 0) {
    fprintf(stderr, "soak: starting the runtime: %s\n", ax_strerror(rc));
    exit(1);
  }
  s->cores = ax_rt_cores(s->rt);
  s->ntickers = 2 * s->cores;
  s->nspawners = s->cores;
  s->ndrivers = 4;
}

static void free_states(soak_t *s) {
  free(s->pairs);
  free(s->streams);
  free(s->tickers);
  free(s->spawners);
  free(s->drivers);
}

int main(int argc, char **argv) {
  soak_t s = {0};
  uint64_t rss_warm, rss_end;
  parse_args(&s, argc, argv);
  start_runtime(&s);
  setup_pairs(&s);
  setup_streams(&s);
  setup_tickers(&s);
  setup_spawners(&s);
  setup_supervisor(&s);
  printf("soak: %d s on %u cores: %u pairs, %u streams, %u timers, %u spawners, %u restarting "
         "children%s\n", s.seconds, s.cores, s.npairs, s.nstreams, s.ntickers, s.nspawners,
         s.ndrivers, SOAK_SANITIZED ? " (scaled down for a sanitizer)" : "");
  fflush(stdout);
  broadcast(&s, MSG_GO);
  run_traffic(&s, &rss_warm, &rss_end);

  broadcast(&s, MSG_STOP);
  bool drained = wait_drained(&s);
  uint64_t live = wait_population(&s);
  ax_core_stats_t st = rt_totals(&s);
  atomic_store(&g_shutting, true);
  ax_rt_stop(s.rt);
  int rc_join = ax_rt_join(s.rt);
  int rc_free = ax_rt_free(s.rt);

  totals_t t = sum_totals(&s);
  printf("soak: summary after %d s: %" PRIu64 " messages handled, %" PRIu64 " dead letters, "
         "%" PRIu64 " actors spawned\n", s.seconds, st.delivered, st.dead_letters, st.spawned);
  check(drained, "drain: %u of %u traffic actors drained within %d s", atomic_load(&g_done),
        traffic_actors(&s), DRAIN_TIMEOUT_S);
  check(atomic_load(&g_errors) == 0, "api: %u unexpected errors%s%s", atomic_load(&g_errors),
        g_errors ? ", the first: " : "", g_first_error);
  check_pairs(&s, &t);
  check_streams(&s, &t);
  check_timers(&s, &t);
  check_spawns(&t);
  check_restarts(&t);
  check(st.dead_letters == 0, "runtime: %" PRIu64 " dead letters before the stop", st.dead_letters);
  check(live == population(&s), "actors: %" PRIu64 " alive after the drain, %" PRIu64
        " expected", live, population(&s));
  check(rc_join == 0 && rc_free == 0, "runtime: join %d, free %d", rc_join, rc_free);
  check_rss(rss_warm, rss_end);
  free_states(&s);
  printf("soak: %s\n", g_failed == 0 ? "PASS" : "FAIL");
  return g_failed == 0 ? 0 : 1;
}
