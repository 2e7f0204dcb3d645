/* bench_actors: actor message latency, fan-in, skynet, spawn cost, bytes per actor, port vs libuv.
 *
 * Usage: bench_actors [--quick] [-v] [-r RUNS] [-b LIST]
 *   -r RUNS  measurements per row; the median is reported (default 5, 1 with --quick)
 *   -b LIST  rows to run, comma-separated among 1..9 (default all)
 *   -v       print every run's value, sorted, under its row
 *   --quick  small sizes and one run: a CI smoke run of a few seconds
 *
 * Rows (sizes are the full ones; --quick's are in the sizes table below):
 *   1  same-core ping-pong: two actors on core 0 bounce an 8-byte counter,
 *      10^7 messages; ns per message (one hop).  Target <= 20 ns.
 *   2  cross-core ping-pong: the same between core 0 and core 1, ns per
 *      round trip, (a) with the default spinning (5*10^5 round trips;
 *      target <= 1 us) and (b) with spin_ns = -1 (10^4 round trips), each
 *      in a runtime of its own.  Row 2f is the machine's floor, measured in
 *      each run just before 2a: two threads pinned to the first two CPUs
 *      bounce one cache line as many times; 2r is 2a over 2f, run by run
 *      (target <= 1.5).  Row 2g is a message channel's floor: the same
 *      two threads, a ring of 64-byte slots each way (one line moves per
 *      message, as in axon's rings); 2q is 2a over 2g, run by run.
 *   3  fan-in: 100 senders placed round-robin over the cores each send
 *      5*10^4 numbered messages to one receiver on core 0, which checks every
 *      sender's sequence; ns per message and messages/s at the receiver (from
 *      the moment main tells the senders to go until the receiver has the
 *      last message).  The senders keep at most 512 messages unacknowledged
 *      (the receiver acknowledges every 256), so the receiver's mailbox stays
 *      bounded and what is measured is its throughput, not memory growth.
 *      3t/3q: the same number of messages sent by 8 plain threads (no flow
 *      control of their own) round-robin to 4 actors spread over the cores:
 *      ns per message at the receivers, and the longest mailbox any of them
 *      saw, which axon's pacing of such threads keeps short.
 *   4  skynet: the root spawns 10 children, each spawns 10, down to 10^6
 *      leaves; each leaf replies its number, each parent sums its 10 replies
 *      and replies to its parent; the root's sum must be 499999500000.  An
 *      axon actor gets its arguments through a first message: each child is
 *      spawned, then sent START {num, size} by its parent, and replies SUM to
 *      the sender; the parents' state (111111 small structs) is allocated
 *      before the clock starts.  Variants: children spawned with
 *      AX_PLACE_LOCAL at every level ("local"), or spread over the cores
 *      (AX_PLACE_CORE, round-robin) at the top 1 or 2 levels and local
 *      below; the best median is reported, and which variant it was.
 *      Each variant is timed in a fresh runtime (cold: the pools grow during
 *      the run, so faulting their pages in is counted; target <= 150 ms), and
 *      as the second tree built in one runtime (4w, warm: the pools the first
 *      tree left are reused, which shows the runtime's own cost).
 *   5  creation: an actor on core 0 spawns 2^20 idle actors (AX_PLACE_LOCAL,
 *      a terminate hook that counts), ns per spawn; then calls ax_stop on
 *      each, and the time until the last terminate hook has run is the stop
 *      time.  Afterwards a sample of the references must answer -ESRCH.
 *   6  bytes per idle actor: in a fresh process (this program re-executed
 *      with --mem-child, so no heap left over from other rows is reused), an
 *      actor on core 0 spawns 10^6 actors whose behaviour does nothing; the
 *      growth of the resident set (/proc/self/statm) divided by 10^6.  The
 *      baseline is read once the runtime has started and the spawner has
 *      answered a first message, so the runtime's fixed memory is not
 *      counted.  Target <= 128 bytes.
 *   7  port round trip: the main thread (pinned to the last CPU of the
 *      affinity mask) sends an 8-byte counter to an actor on core 0 of a
 *      one-core runtime (pinned to the first CPU), which sends it back to the
 *      thread's ax_port; 2*10^4 round trips after 100 not timed.  Against
 *      libuv in the same run: two threads on the same two CPUs, each running
 *      a uv_loop_t with a uv_async_t, ping-pong through uv_async_send.  The
 *      ratio axon/libuv of the round-trip times has the target <= 0.5.
 *      7d/7e: the same round trip with the port bounded (ax_port_opts_t.max
 *      64), alternated with 7a run by run, and its ratio to 7a.
 *   8  many of one kind held by one actor (timers, monitors, children,
 *      restarts): ns per item at 10^5 and the ratio against 10^4.
 *   9  placement under AX_PLACE_ANY (the default) on the default cores,
 *      against the explicit placements in the same run.  Hub (9a, 9b): an
 *      actor that has just woken spawns 100 talkers and sends each a START
 *      in one turn; each talker then asks it 2,000 times, one question at a
 *      time, and it answers each (chameneos's shape: everything goes through
 *      one actor); ms until the last answer, ANY and ANY over LOCAL.  Burst
 *      (9c, 9d): the same actor spawns 256 independent workers, sends each
 *      one job of about 20 us of arithmetic, and waits for 256 replies; ms,
 *      ANY and ANY over SPREAD.  What ANY does with each is the policy of
 *      include/axon/actor.h; the two ratios show what it costs either way.
 *
 * Method.  Every measurement creates its own runtime (AX_RT_NO_SIGNALS |
 * AX_RT_KEEP_ALIVE, default cores unless said otherwise) and a port, starts
 * it, spawns the actors from the main thread, and waits on the port for the
 * result that an actor sends when the work is done; then ax_rt_stop,
 * ax_rt_join and ax_rt_free.  Times are ax_now() (CLOCK_MONOTONIC) read by
 * the actors themselves at the first and last event, so the start-up and
 * the wake-up of the main thread are not counted.  Every message carries a
 * sequence number or a value that its receiver checks; after each run the
 * runtime's own counters (delivered, spawned, dead letters) are checked
 * against the work done.  A failed check or call exits with status 1; a
 * result that does not arrive within 60 s prints the per-core statistics and
 * exits with status 1, and a watchdog (SIGALRM) catches hangs anywhere else
 * (ax_rt_join, say).  A missed target is printed (MISSED) but does not change
 * the exit status.
 *
 * The "context" column quotes published figures for other runtimes (other
 * machines, other years): they are not measured here and only give scale.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/port.h"
#include "axon/runtime.h"
#include "axon/supervisor.h"
#include "bench_util.h"

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif

extern char **environ;

#define RESULT_WAIT_S 60 /* the longest wait for one result on a port */
#define WATCHDOG_S 300   /* the longest one measurement may take, whatever it waits on */
#define NROWS 9

enum {
  MSG_GO = AX_MSG_USER,
  MSG_PING,
  MSG_PONG,
  MSG_RESULT,
  MSG_DATA,
  MSG_ACK,
  MSG_START,
  MSG_SUM,
  MSG_SPAWN,
  MSG_DONE,
};

/* The sizes of one measurement, full and --quick. */
typedef struct sizes {
  uint64_t same_msgs;     /* 1: messages (2 per round trip) */
  uint64_t cross_spin;    /* 2a: round trips */
  uint64_t cross_nospin;  /* 2b: round trips */
  uint64_t fan_per;       /* 3: messages per sender */
  unsigned sky_levels;    /* 4: 10^levels leaves */
  uint64_t create;        /* 5: actors */
  uint64_t idle;          /* 6: actors */
  uint64_t port_rounds;   /* 7: timed round trips, each side */
  uint64_t many;          /* 8: timers, monitors, children of one actor */
} sizes_t;

static const sizes_t full_sizes = {10000000, 500000, 10000, 50000, 6, 1u << 20, 1000000, 20000,
                                   100000};
static const sizes_t quick_sizes = {100000, 10000, 300, 500, 4, 1u << 14, 100000, 1000, 5000};

#define PORT_WARMUP 100
#define PORT_BOUND 64 /* row 7d's port bound */

/* ------------------------------------------------------------------------ */
/* Watchdog, CPUs, statistics                                                */

static cpu_set_t main_mask; /* the affinity mask the program started with */
static int ncpus, first_cpu = -1, last_cpu = -1;

static void cpus_init(void) {
  BENCH_SYS(sched_getaffinity(0, sizeof main_mask, &main_mask));
  ncpus = CPU_COUNT(&main_mask);
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &main_mask))
      continue;
    if (first_cpu < 0)
      first_cpu = cpu;
    last_cpu = cpu;
  }
}

/* Pins the calling thread to one CPU (cpu < 0: back to the starting mask). */
static void pin_self(int cpu) {
  cpu_set_t set = main_mask;
  if (cpu >= 0) {
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
  }
  int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (rc != 0)
    bench_die("pthread_setaffinity_np(CPU %d): %s", cpu, strerror(rc));
}

static int stats_warnings;

/* Checks the runtime's counters, exact after ax_rt_join, against the work
 * the run did: at least min_delivered messages handled by actors, at least
 * min_spawned actors spawned, and at most max_dead dead letters (every run
 * is built so that no message is in flight when it stops). */
static void stats_check(const char *what, const ax_core_stats_t *st, uint64_t min_delivered,
                        uint64_t min_spawned, uint64_t max_dead) {
  if (st->delivered >= min_delivered && st->spawned >= min_spawned &&
      st->dead_letters <= max_dead)
    return;
  fprintf(stderr,
          "bench: %s: runtime counters disagree with the work done: delivered %llu (>= %llu "
          "expected), spawned %llu (>= %llu expected), dead letters %llu (<= %llu expected)\n",
          what, (unsigned long long)st->delivered, (unsigned long long)min_delivered,
          (unsigned long long)st->spawned, (unsigned long long)min_spawned,
          (unsigned long long)st->dead_letters, (unsigned long long)max_dead);
  stats_warnings++;
}

/* ------------------------------------------------------------------------ */
/* One runtime and its port per measurement                                  */

typedef struct brt {
  ax_rt_t *rt;
  ax_port_t *port;
  ax_ref_t port_ref;
  unsigned cores;
  char what[128];
} brt_t;

/* The bound of the next brt_open's port (0: none; row 7d sets one). */
static uint32_t brt_port_max;

static void brt_open(brt_t *b, const char *what, unsigned cores, int64_t spin_ns) {
  ax_rt_opts_t o = {
      .cores = cores,
      .spin_ns = spin_ns,
      .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE,
  };
  snprintf(b->what, sizeof b->what, "%s", what);
  bench_watchdog_arm("%s (from ax_rt_new to ax_rt_free)", what);
  BENCH_AX(ax_rt_new(&o, &b->rt));
  ax_port_opts_t po = {.max = brt_port_max};
  BENCH_AX(ax_port_new_opts(b->rt, &po, &b->port));
  b->port_ref = ax_port_ref(b->port);
  b->cores = ax_rt_cores(b->rt);
  if (b->cores == 0 || b->cores > AX_MAX_CORES)
    bench_die("%s: ax_rt_cores says %u", what, b->cores);
  BENCH_AX(ax_rt_start(b->rt));
}

static void brt_dump_stats(const brt_t *b) {
  fprintf(stderr, "per-core statistics of the runtime of '%s':\n", b->what);
  fprintf(stderr, "%5s %12s %12s %8s %10s %10s %9s %9s %8s\n", "core", "sent", "delivered", "dead",
          "spawned", "actors", "wakeups", "sleeps", "runq");
  for (unsigned c = 0; c < b->cores; c++) {
    ax_core_stats_t s;
    if (ax_rt_stats(b->rt, c, &s) < 0)
      continue;
    fprintf(stderr, "%5u %12llu %12llu %8llu %10llu %10llu %9llu %9llu %8llu\n", c,
            (unsigned long long)s.sent, (unsigned long long)s.delivered,
            (unsigned long long)s.dead_letters, (unsigned long long)s.spawned,
            (unsigned long long)s.actors, (unsigned long long)s.wakeups,
            (unsigned long long)s.sleeps, (unsigned long long)s.runq_len);
  }
}

/* Takes the next message from the port into *m (valid until the next call),
 * waiting at most RESULT_WAIT_S seconds. */
static void brt_recv_msg(brt_t *b, ax_msg_t *m) {
  int64_t deadline = ax_now() + RESULT_WAIT_S * AX_NSEC_PER_SEC;
  int rc;
  do
    rc = ax_port_recv(b->port, deadline, m);
  while (rc == -EINTR);
  if (rc == -ETIMEDOUT) {
    brt_dump_stats(b);
    bench_die("%s: no result on the port after %d s: the runtime looks stuck (statistics above)",
              b->what, RESULT_WAIT_S);
  }
  if (rc < 0)
    bench_die("%s: ax_port_recv: %s", b->what, ax_strerror(rc));
}

/* Takes the next message, which must have the given type and size, and
 * copies its payload to out. */
static void brt_recv(brt_t *b, uint32_t type, void *out, size_t size) {
  ax_msg_t m;
  brt_recv_msg(b, &m);
  if (m.type != type || m.size != size)
    bench_die("%s: the port got a message of type %u and %u bytes (expected type %u, %zu bytes)",
              b->what, m.type, m.size, type, size);
  memcpy(out, m.data, size);
}

/* Stops, joins and frees the runtime and its port; *st gets its totals. */
static void brt_close(brt_t *b, ax_core_stats_t *st) {
  ax_rt_stop(b->rt);
  BENCH_AX(ax_rt_join(b->rt));
  BENCH_AX(ax_rt_stats_total(b->rt, st));
  BENCH_AX(ax_port_close(b->port));
  BENCH_AX(ax_rt_free(b->rt));
  alarm(0);
}

static ax_spawn_opts_t on_core(unsigned core) {
  ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = core};
  return o;
}

static void expect_core(ax_ref_t ref, unsigned core, const char *what) {
  int c = ax_ref_core(ref);
  if (c != (int)core)
    bench_die("%s: spawned on core %u, but ax_ref_core says %d", what, core, c);
}

/* ------------------------------------------------------------------------ */
/* 1, 2: ping-pong                                                           */

/* Each on a cache line of its own: the two live side by side on main's
 * stack, and each is written on every message by its own core, so sharing
 * a line would add a transfer to every hop of the cross-core rows. */
typedef struct pp_actor {
  alignas(64) ax_ref_t peer; /* the other actor (for the ponger: set before GO) */
  ax_ref_t port;   /* pinger: where the result goes */
  uint64_t rounds; /* pinger: round trips to make */
  uint64_t next;   /* the next sequence number expected */
  int64_t t0;
} pp_actor_t;

typedef struct pp_result {
  int64_t t0, t1;
  uint64_t rounds;
} pp_result_t;

static int pp_ping(ax_actor_t *self, const ax_msg_t *m) {
  pp_actor_t *s = ax_state(self);
  uint64_t seq = 0;
  if (m->type == MSG_GO) {
    s->t0 = ax_now();
  } else {
    if (m->type != MSG_PONG || m->size != sizeof seq || m->from != s->peer)
      bench_die("ping-pong: the pinger got type %u, %u bytes from %#llx", m->type, m->size,
                (unsigned long long)m->from);
    memcpy(&seq, m->data, sizeof seq); /* payloads carry no alignment promise */
    if (seq != s->next)
      bench_die("ping-pong: pong %llu arrived, %llu expected", (unsigned long long)seq,
                (unsigned long long)s->next);
    if (++s->next == s->rounds) {
      pp_result_t r = {s->t0, ax_now(), s->next};
      BENCH_AX(ax_send(s->port, MSG_RESULT, &r, sizeof r));
      return 0;
    }
    seq = s->next;
  }
  BENCH_AX(ax_send(s->peer, MSG_PING, &seq, sizeof seq));
  return 0;
}

static int pp_pong(ax_actor_t *self, const ax_msg_t *m) {
  pp_actor_t *s = ax_state(self);
  uint64_t seq;
  if (m->type != MSG_PING || m->size != sizeof seq || m->from != s->peer)
    bench_die("ping-pong: the ponger got type %u, %u bytes from %#llx", m->type, m->size,
              (unsigned long long)m->from);
  memcpy(&seq, m->data, sizeof seq);
  if (seq != s->next)
    bench_die("ping-pong: ping %llu arrived, %llu expected", (unsigned long long)seq,
              (unsigned long long)s->next);
  s->next++;
  BENCH_AX(ax_send(m->from, MSG_PONG, &seq, sizeof seq));
  return 0;
}

/* One ping-pong between core_a and core_b: returns ns per round trip. */
static double pp_run(const char *what, unsigned core_a, unsigned core_b, int64_t spin_ns,
                     uint64_t rounds) {
  brt_t b;
  brt_open(&b, what, 0, spin_ns);
  if (core_a >= b.cores || core_b >= b.cores)
    bench_die("%s: needs core %u, the runtime has %u", what, core_a > core_b ? core_a : core_b,
              b.cores);
  pp_actor_t ping = {.port = b.port_ref, .rounds = rounds}, pong = {0};
  ax_spawn_opts_t oa = on_core(core_a), ob = on_core(core_b);
  ax_ref_t ra, rb;
  BENCH_AX(ax_spawn(b.rt, pp_pong, &pong, &ob, &rb));
  ping.peer = rb;
  BENCH_AX(ax_spawn(b.rt, pp_ping, &ping, &oa, &ra));
  pong.peer = ra; /* read by the ponger only after GO reached the pinger */
  expect_core(ra, core_a, what);
  expect_core(rb, core_b, what);
  BENCH_AX(ax_send(ra, MSG_GO, NULL, 0));
  pp_result_t r;
  brt_recv(&b, MSG_RESULT, &r, sizeof r);
  ax_core_stats_t st;
  brt_close(&b, &st);
  if (r.rounds != rounds || pong.next != rounds || r.t1 <= r.t0)
    bench_die("%s: %llu round trips reported, %llu pings seen, %llu wanted", what,
              (unsigned long long)r.rounds, (unsigned long long)pong.next,
              (unsigned long long)rounds);
  stats_check(what, &st, 2 * rounds + 1, 2, 0);
  return (double)(r.t1 - r.t0) / (double)rounds;
}

/* The machine's floor for 2a: two threads pinned to the first two CPUs (the
 * ones cores 0 and 1 run on) bounce one cache line, each spinning until the
 * other has written it.  Nothing can hand a message from one CPU to the
 * other in less than this round trip. */
typedef struct line_pp {
  alignas(64) _Atomic uint64_t turn;
  uint64_t rounds;
  int cpu;
} line_pp_t;

static void *line_pp_peer(void *arg) {
  line_pp_t *l = arg;
  pin_self(l->cpu);
  for (uint64_t i = 0; i < l->rounds; i++) {
    /* Acquire/release: the line is the message; nothing else is ordered. */
    while (atomic_load_explicit(&l->turn, memory_order_acquire) != 2 * i + 1)
      ;
    atomic_store_explicit(&l->turn, 2 * i + 2, memory_order_release);
  }
  return NULL;
}

/* The floors' two CPUs, the first two of the mask: returns the first
 * (the caller's) and stores the second (its peer thread's) in *peer_cpu. */
static int first_two_cpus(int *peer_cpu) {
  int cpus[2], n = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
    if (CPU_ISSET(cpu, &main_mask))
      cpus[n++] = cpu;
  *peer_cpu = cpus[1];
  return cpus[0];
}

/* Pins the caller to self_cpu and starts fn(arg), the peer thread. */
static pthread_t peer_start(int self_cpu, void *(*fn)(void *), void *arg) {
  pthread_t t;
  pin_self(self_cpu);
  int rc = pthread_create(&t, NULL, fn, arg);
  if (rc != 0)
    bench_die("pthread_create: %s", strerror(rc));
  return t;
}

static double line_pp_run(uint64_t rounds) {
  line_pp_t l = {.rounds = rounds};
  int self_cpu = first_two_cpus(&l.cpu);
  atomic_init(&l.turn, 0);
  pthread_t t = peer_start(self_cpu, line_pp_peer, &l);
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  for (uint64_t i = 0; i < rounds; i++) {
    atomic_store_explicit(&l.turn, 2 * i + 1, memory_order_release);
    while (atomic_load_explicit(&l.turn, memory_order_acquire) != 2 * i + 2)
      ;
  }
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  pthread_join(t, NULL);
  pin_self(-1);
  return (double)(t1 - t0) / (double)rounds;
}

/* A second floor for 2a, a message channel's: the same two threads, each
 * with a ring of 64-byte slots to the other (AX__RING_SLOTS of them, as
 * axon's rings between cores), a slot's payload written before its
 * sequence number, which the reader polls.  A message moves one line each
 * way, where 2f's single line carries both directions: this is what any
 * design with a ring per direction pays before its own code runs. */
#define CHAN_SLOTS 256u
typedef struct chan_slot {
  alignas(64) _Atomic uint64_t seq;
  uint64_t to, from, req;
  uint32_t type, size;
  unsigned char data[16];
} chan_slot_t;

typedef struct chan_pp {
  chan_slot_t *there, *back;
  uint64_t rounds;
  int cpu;
} chan_pp_t;

static inline void chan_put(chan_slot_t *ring, uint64_t i) {
  chan_slot_t *s = &ring[i % CHAN_SLOTS];
  s->to = 1;
  s->from = 2;
  s->req = 0;
  s->type = 3;
  s->size = sizeof i;
  memcpy(s->data, &i, sizeof i);
  /* Release: the payload before the number that says it is there. */
  atomic_store_explicit(&s->seq, i + 1, memory_order_release);
}

static inline uint64_t chan_get(chan_slot_t *ring, uint64_t i) {
  chan_slot_t *s = &ring[i % CHAN_SLOTS];
  /* Acquire pairs with chan_put's release: the payload is there. */
  while (atomic_load_explicit(&s->seq, memory_order_acquire) != i + 1)
    ;
  uint64_t v;
  memcpy(&v, s->data, sizeof v);
  return v;
}

static void *chan_pp_peer(void *arg) {
  chan_pp_t *c = arg;
  pin_self(c->cpu);
  for (uint64_t i = 0; i < c->rounds; i++)
    chan_put(c->back, chan_get(c->there, i));
  return NULL;
}

static double chan_pp_run(uint64_t rounds) {
  chan_pp_t c = {.rounds = rounds};
  int self_cpu = first_two_cpus(&c.cpu);
  c.there = aligned_alloc(64, CHAN_SLOTS * sizeof(chan_slot_t));
  c.back = aligned_alloc(64, CHAN_SLOTS * sizeof(chan_slot_t));
  if (c.there == NULL || c.back == NULL)
    bench_die("chan_pp_run: out of memory");
  memset(c.there, 0, CHAN_SLOTS * sizeof(chan_slot_t));
  memset(c.back, 0, CHAN_SLOTS * sizeof(chan_slot_t));
  pthread_t t = peer_start(self_cpu, chan_pp_peer, &c);
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  for (uint64_t i = 0; i < rounds; i++) {
    chan_put(c.there, i);
    if (chan_get(c.back, i) != i)
      bench_die("chan_pp_run: round trip %llu came back wrong", (unsigned long long)i);
  }
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  pthread_join(t, NULL);
  pin_self(-1);
  free(c.there);
  free(c.back);
  return (double)(t1 - t0) / (double)rounds;
}

/* ------------------------------------------------------------------------ */
/* 3: fan-in                                                                 */

#define FAN_SENDERS 100
#define FAN_ACK_EVERY 256
#define FAN_WINDOW (2 * FAN_ACK_EVERY)

typedef struct fan_data {
  uint32_t sender;
  uint32_t pad;
  uint64_t seq;
} fan_data_t;

typedef struct fan_sender {
  ax_ref_t receiver;
  uint32_t idx;
  uint64_t per, sent, acked;
} fan_sender_t;

typedef struct fan_receiver {
  ax_ref_t port;
  ax_ref_t senders[FAN_SENDERS]; /* set by main before GO */
  uint64_t per, got, total;
  uint64_t next[FAN_SENDERS]; /* the next sequence number expected from each */
} fan_receiver_t;

typedef struct fan_result {
  int64_t t1;
  uint64_t got;
} fan_result_t;

static int fan_send(ax_actor_t *self, const ax_msg_t *m) {
  fan_sender_t *s = ax_state(self);
  if (m->type == MSG_ACK) {
    uint64_t acked;
    if (m->size != sizeof acked)
      bench_die("fan-in: an ack of %u bytes", m->size);
    memcpy(&acked, m->data, sizeof acked);
    if (acked <= s->acked || acked > s->sent)
      bench_die("fan-in: sender %u got ack %llu after %llu, having sent %llu", s->idx,
                (unsigned long long)acked, (unsigned long long)s->acked,
                (unsigned long long)s->sent);
    s->acked = acked;
  } else if (m->type != MSG_GO) {
    bench_die("fan-in: a sender got type %u", m->type);
  }
  while (s->sent < s->per && s->sent - s->acked < FAN_WINDOW) {
    fan_data_t d = {.sender = s->idx, .seq = s->sent++};
    BENCH_AX(ax_send(s->receiver, MSG_DATA, &d, sizeof d));
  }
  return 0;
}

static int fan_recv(ax_actor_t *self, const ax_msg_t *m) {
  fan_receiver_t *r = ax_state(self);
  fan_data_t d;
  if (m->type != MSG_DATA || m->size != sizeof d)
    bench_die("fan-in: the receiver got type %u, %u bytes", m->type, m->size);
  memcpy(&d, m->data, sizeof d);
  if (d.sender >= FAN_SENDERS || m->from != r->senders[d.sender])
    bench_die("fan-in: a message claims sender %u but comes from %#llx", d.sender,
              (unsigned long long)m->from);
  if (d.seq != r->next[d.sender])
    bench_die("fan-in: sender %u's message %llu arrived, %llu expected (lost or reordered)",
              d.sender, (unsigned long long)d.seq, (unsigned long long)r->next[d.sender]);
  uint64_t n = ++r->next[d.sender];
  /* Only acks the sender needs: ack n opens the window for message n + 256,
   * so every ack is handled before the last message is sent and none is
   * left in a mailbox when the run stops. */
  if (n % FAN_ACK_EVERY == 0 && n + FAN_ACK_EVERY < r->per)
    BENCH_AX(ax_send(m->from, MSG_ACK, &n, sizeof n));
  if (++r->got == r->total) {
    fan_result_t res = {ax_now(), r->got};
    for (int i = 0; i < FAN_SENDERS; i++)
      if (r->next[i] != r->per)
        bench_die("fan-in: sender %d delivered %llu of %llu", i, (unsigned long long)r->next[i],
                  (unsigned long long)r->per);
    BENCH_AX(ax_send(r->port, MSG_RESULT, &res, sizeof res));
  }
  return 0;
}

/* Returns ns per message at the receiver; *cores_used gets the core count. */
static double fan_run(uint64_t per, unsigned *cores_used) {
  brt_t b;
  brt_open(&b, "fan-in", 0, 0);
  *cores_used = b.cores;
  fan_receiver_t *r = calloc(1, sizeof *r);
  fan_sender_t *s = calloc(FAN_SENDERS, sizeof *s);
  ax_ref_t refs[FAN_SENDERS], rr;
  if (r == NULL || s == NULL)
    bench_die("out of memory");
  r->port = b.port_ref;
  r->per = per;
  r->total = per * FAN_SENDERS;
  ax_spawn_opts_t o0 = on_core(0);
  BENCH_AX(ax_spawn(b.rt, fan_recv, r, &o0, &rr));
  for (unsigned i = 0; i < FAN_SENDERS; i++) {
    ax_spawn_opts_t o = on_core(i % b.cores);
    s[i] = (fan_sender_t){.receiver = rr, .idx = i, .per = per};
    BENCH_AX(ax_spawn(b.rt, fan_send, &s[i], &o, &refs[i]));
    r->senders[i] = refs[i];
  }
  int64_t t0 = ax_now();
  for (unsigned i = 0; i < FAN_SENDERS; i++)
    BENCH_AX(ax_send(refs[i], MSG_GO, NULL, 0));
  fan_result_t res;
  brt_recv(&b, MSG_RESULT, &res, sizeof res);
  ax_core_stats_t st;
  brt_close(&b, &st);
  if (res.got != r->total || res.t1 <= t0)
    bench_die("fan-in: %llu of %llu messages", (unsigned long long)res.got,
              (unsigned long long)r->total);
  for (unsigned i = 0; i < FAN_SENDERS; i++)
    if (s[i].sent != per)
      bench_die("fan-in: sender %u sent %llu of %llu", i, (unsigned long long)s[i].sent,
                (unsigned long long)per);
  stats_check("fan-in", &st, r->total + FAN_SENDERS, FAN_SENDERS + 1, 0);
  double ns = (double)(res.t1 - t0) / (double)r->total;
  free(r);
  free(s);
  return ns;
}

/* 3t: the same flood from threads that are no core: FT_THREADS plain
 * threads each send `per` numbered messages round-robin to FT_RECEIVERS
 * actors spread over the cores, with no flow control of their own.  They
 * are paced by axon (actors.md, "Pace"): what is measured is the receivers'
 * throughput and the longest mailbox any of them saw. */
#define FT_THREADS 8
#define FT_RECEIVERS 4

typedef struct ft_receiver {
  ax_ref_t port;
  uint64_t next[FT_THREADS], got, total;
  int64_t longest; /* ax_mailbox_len at its longest */
  _Atomic uint64_t *left; /* messages all receivers still expect */
} ft_receiver_t;

typedef struct ft_sender {
  const ax_ref_t *to;
  uint32_t idx;
  uint64_t per;
} ft_sender_t;

static int ft_recv(ax_actor_t *self, const ax_msg_t *m) {
  ft_receiver_t *r = ax_state(self);
  fan_data_t d;
  if (m->type != MSG_DATA || m->size != sizeof d)
    bench_die("thread fan-in: a receiver got type %u, %u bytes", m->type, m->size);
  memcpy(&d, m->data, sizeof d);
  if (d.sender >= FT_THREADS || d.seq != r->next[d.sender])
    bench_die("thread fan-in: thread %u's message %llu arrived out of order", d.sender,
              (unsigned long long)d.seq);
  r->next[d.sender]++;
  int64_t q = ax_mailbox_len(self);
  if (q > r->longest)
    r->longest = q;
  r->got++;
  /* acq_rel: the last receiver to finish sees every other's counts. */
  if (atomic_fetch_sub_explicit(r->left, 1, memory_order_acq_rel) == 1) {
    fan_result_t res = {ax_now(), r->got};
    BENCH_AX(ax_send(r->port, MSG_RESULT, &res, sizeof res));
  }
  return 0;
}

static void *ft_send(void *arg) {
  ft_sender_t *s = arg;
  for (uint64_t i = 0; i < s->per; i++) {
    fan_data_t d = {.sender = s->idx, .seq = i / FT_RECEIVERS};
    BENCH_AX(ax_send(s->to[i % FT_RECEIVERS], MSG_DATA, &d, sizeof d));
  }
  return NULL;
}

/* Returns ns per message at the receivers; *longest gets the longest
 * mailbox. */
static double ft_run(uint64_t per, int64_t *longest) {
  brt_t b;
  brt_open(&b, "thread fan-in", 0, 0);
  per -= per % FT_RECEIVERS;
  static ft_receiver_t r[FT_RECEIVERS];
  ft_sender_t s[FT_THREADS];
  ax_ref_t to[FT_RECEIVERS];
  _Atomic uint64_t left = per * FT_THREADS;
  for (unsigned i = 0; i < FT_RECEIVERS; i++) {
    r[i] = (ft_receiver_t){.port = b.port_ref, .left = &left};
    ax_spawn_opts_t o = on_core(i % b.cores);
    BENCH_AX(ax_spawn(b.rt, ft_recv, &r[i], &o, &to[i]));
  }
  pthread_t t[FT_THREADS];
  int64_t t0 = ax_now();
  for (unsigned i = 0; i < FT_THREADS; i++) {
    s[i] = (ft_sender_t){.to = to, .idx = i, .per = per};
    int rc = pthread_create(&t[i], NULL, ft_send, &s[i]);
    if (rc != 0)
      bench_die("pthread_create: %s", strerror(rc));
  }
  for (unsigned i = 0; i < FT_THREADS; i++)
    pthread_join(t[i], NULL);
  fan_result_t res;
  brt_recv(&b, MSG_RESULT, &res, sizeof res);
  ax_core_stats_t st;
  brt_close(&b, &st);
  *longest = 0;
  for (unsigned i = 0; i < FT_RECEIVERS; i++) {
    for (unsigned k = 0; k < FT_THREADS; k++)
      if (r[i].next[k] != per / FT_RECEIVERS)
        bench_die("thread fan-in: receiver %u got %llu of thread %u's %llu", i,
                  (unsigned long long)r[i].next[k], k, (unsigned long long)(per / FT_RECEIVERS));
    if (r[i].longest > *longest)
      *longest = r[i].longest;
  }
  stats_check("thread fan-in", &st, per * FT_THREADS, FT_RECEIVERS, 0);
  return (double)(res.t1 - t0) / (double)(per * FT_THREADS);
}

/* ------------------------------------------------------------------------ */
/* 4: skynet                                                                 */

typedef struct sk_node {
  ax_ref_t parent; /* set by the parent before the spawn; the root's is the port */
  uint64_t sum;
  uint32_t got;
  uint32_t pad;
} sk_node_t;

typedef struct sk_start {
  uint64_t num;   /* the first leaf number under this node */
  uint32_t size;  /* leaves under this node */
  uint32_t depth; /* 0 for the root */
} sk_start_t;

typedef struct sk_result {
  uint64_t sum;
  int64_t t1;
} sk_result_t;

/* Shared by every core during a run; written by main before the root is spawned. */
static struct {
  sk_node_t *nodes; /* the inner nodes, in 10-ary heap order: node i's children are 10i+1.. */
  unsigned cores;
  unsigned spread; /* nodes at depth < spread place their children round-robin over cores */
} sk;

static int sk_leaf(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  sk_start_t st;
  if (m->type != MSG_START || m->size != sizeof st)
    bench_die("skynet: a leaf got type %u, %u bytes", m->type, m->size);
  memcpy(&st, m->data, sizeof st);
  if (st.size != 1)
    bench_die("skynet: a leaf was given %u leaves", st.size);
  BENCH_AX(ax_send(m->from, MSG_SUM, &st.num, sizeof st.num));
  return AX_STOP;
}

static int sk_inner(ax_actor_t *self, const ax_msg_t *m) {
  sk_node_t *n = ax_state(self);
  if (m->type == MSG_START) {
    sk_start_t st;
    if (m->size != sizeof st)
      bench_die("skynet: START of %u bytes", m->size);
    memcpy(&st, m->data, sizeof st);
    uint32_t csize = st.size / 10;
    size_t idx = (size_t)(n - sk.nodes);
    ax_rt_t *rt = ax_actor_rt(self);
    ax_ref_t me = ax_self(self);
    ax_spawn_opts_t o = {.placement = AX_PLACE_LOCAL};
    bool spread = st.depth < sk.spread;
    for (unsigned j = 0; j < 10; j++) {
      sk_start_t cs = {.num = st.num + (uint64_t)j * csize, .size = csize, .depth = st.depth + 1};
      if (spread) {
        o.placement = AX_PLACE_CORE;
        o.core = (unsigned)((cs.num / csize) % sk.cores); /* the child's rank in its level */
      }
      ax_ref_t child;
      if (csize == 1) {
        BENCH_AX(ax_spawn(rt, sk_leaf, NULL, &o, &child));
      } else {
        sk_node_t *c = &sk.nodes[idx * 10 + 1 + j];
        c->parent = me;
        BENCH_AX(ax_spawn(rt, sk_inner, c, &o, &child));
      }
      BENCH_AX(ax_send(child, MSG_START, &cs, sizeof cs));
    }
    return 0;
  }
  uint64_t v;
  if (m->type != MSG_SUM || m->size != sizeof v)
    bench_die("skynet: a node got type %u, %u bytes", m->type, m->size);
  memcpy(&v, m->data, sizeof v);
  n->sum += v;
  if (++n->got < 10)
    return 0;
  if (n == sk.nodes) {
    sk_result_t r = {n->sum, ax_now()};
    BENCH_AX(ax_send(n->parent, MSG_RESULT, &r, sizeof r));
  } else {
    BENCH_AX(ax_send(n->parent, MSG_SUM, &n->sum, sizeof n->sum));
  }
  return AX_STOP;
}

static const char *sk_variant_name(unsigned spread) {
  return spread == 0 ? "local" : spread == 1 ? "spread 1 level" : "spread 2 levels";
}

/* Builds skynet trees of 10^levels leaves one after the other in one runtime
 * and returns the ms the last one took: trees = 1 is a fresh ("cold")
 * runtime, whose pools grow (and fault their pages in) during the run;
 * trees = 2 times a second tree ("warm") in pools the first one left. */
static double sk_run(unsigned levels, unsigned spread, unsigned trees, sk_node_t *nodes) {
  uint64_t leaves = 1, inner, total;
  for (unsigned i = 0; i < levels; i++)
    leaves *= 10;
  inner = (leaves - 1) / 9;
  total = inner + leaves;
  char what[96];
  snprintf(what, sizeof what, "skynet 10^%u, %s, %s", levels, sk_variant_name(spread),
           trees > 1 ? "warm" : "cold");
  brt_t b;
  brt_open(&b, what, 0, 0);
  sk.nodes = nodes;
  sk.cores = b.cores;
  sk.spread = spread;
  double ms = 0;
  for (unsigned t = 0; t < trees; t++) {
    memset(nodes, 0, inner * sizeof *nodes); /* also faults the pages in before the clock */
    nodes[0].parent = b.port_ref;
    ax_spawn_opts_t o0 = on_core(0);
    sk_start_t st = {.num = 0, .size = (uint32_t)leaves, .depth = 0};
    ax_ref_t root;
    int64_t t0 = ax_now();
    BENCH_AX(ax_spawn(b.rt, sk_inner, &nodes[0], &o0, &root));
    BENCH_AX(ax_send(root, MSG_START, &st, sizeof st));
    sk_result_t r;
    brt_recv(&b, MSG_RESULT, &r, sizeof r);
    uint64_t want = leaves * (leaves - 1) / 2;
    if (r.sum != want)
      bench_die("%s: tree %u: the root's sum is %llu, %llu expected", what, t + 1,
                (unsigned long long)r.sum, (unsigned long long)want);
    ms = (double)(r.t1 - t0) / 1e6;
  }
  ax_core_stats_t cs;
  brt_close(&b, &cs);
  stats_check(what, &cs, trees * (2 * total - 1), trees * total, 0);
  return ms;
}

/* ------------------------------------------------------------------------ */
/* 5, 6: creation and idle memory                                            */

typedef struct spawner {
  ax_ref_t port;
  uint64_t n;
  ax_ref_t *refs;          /* NULL: do not keep the references */
  ax_terminate_t terminate; /* the spawned actors' terminate hook, or NULL */
  bool stop;               /* ax_stop each one after spawning them all */
} spawner_t;

typedef struct spawn_times {
  int64_t t0, t1, t2; /* spawning started, spawning done, every ax_stop called */
} spawn_times_t;

static int idle_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  return 0;
}

static atomic_uint_fast64_t cr_terminated;
static uint64_t cr_target;
static ax_ref_t cr_port;

static void cr_terminate(ax_actor_t *self, int reason) {
  (void)self;
  if (reason != AX_REASON_STOPPED)
    bench_die("creation: an actor stopped with reason %d (%d expected: ax_stop)", reason,
              AX_REASON_STOPPED);
  /* Relaxed: the count is the only shared datum, and the port send orders the rest. */
  if (atomic_fetch_add_explicit(&cr_terminated, 1, memory_order_relaxed) + 1 == cr_target) {
    int64_t t = ax_now();
    BENCH_AX(ax_send(cr_port, MSG_DONE, &t, sizeof t));
  }
}

static int spawner_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  spawner_t *s = ax_state(self);
  if (m->type == MSG_PING) { /* a warm-up: answer at once */
    BENCH_AX(ax_send(s->port, MSG_PONG, NULL, 0));
    return 0;
  }
  if (m->type != MSG_SPAWN)
    bench_die("spawner: got type %u", m->type);
  ax_rt_t *rt = ax_actor_rt(self);
  ax_spawn_opts_t o = {.placement = AX_PLACE_LOCAL, .terminate = s->terminate};
  spawn_times_t t;
  t.t0 = ax_now();
  if (s->refs != NULL) {
    for (uint64_t i = 0; i < s->n; i++)
      BENCH_AX(ax_spawn(rt, idle_behaviour, NULL, &o, &s->refs[i]));
  } else {
    for (uint64_t i = 0; i < s->n; i++)
      BENCH_AX(ax_spawn(rt, idle_behaviour, NULL, &o, NULL));
  }
  t.t1 = ax_now();
  if (s->stop)
    for (uint64_t i = 0; i < s->n; i++)
      BENCH_AX(ax_stop(s->refs[i], 0));
  t.t2 = ax_now();
  BENCH_AX(ax_send(s->port, MSG_RESULT, &t, sizeof t));
  return 0;
}

typedef struct create_result {
  double spawn_ns; /* per spawn */
  double stop_ms;  /* from the first ax_stop to the last terminate hook */
} create_result_t;

static create_result_t create_run(uint64_t n, ax_ref_t *refs) {
  memset(refs, 0xff, n * sizeof *refs); /* fault the pages in before the clock */
  brt_t b;
  brt_open(&b, "creation", 0, 0);
  atomic_store(&cr_terminated, 0);
  cr_target = n;
  cr_port = b.port_ref;
  spawner_t sp = {
      .port = b.port_ref, .n = n, .refs = refs, .terminate = cr_terminate, .stop = true};
  ax_spawn_opts_t o0 = on_core(0);
  ax_ref_t ref;
  BENCH_AX(ax_spawn(b.rt, spawner_behaviour, &sp, &o0, &ref));
  BENCH_AX(ax_send(ref, MSG_SPAWN, NULL, 0));
  spawn_times_t t = {0, 0, 0};
  int64_t done = 0;
  for (int got = 0; got < 2; got++) { /* the two results may come in either order */
    ax_msg_t m;
    brt_recv_msg(&b, &m);
    if (m.type == MSG_RESULT && m.size == sizeof t && t.t0 == 0)
      memcpy(&t, m.data, sizeof t);
    else if (m.type == MSG_DONE && m.size == sizeof done && done == 0)
      memcpy(&done, m.data, sizeof done);
    else
      bench_die("creation: unexpected message type %u, %u bytes on the port", m.type, m.size);
  }
  /* Every reference distinct from NONE, on core 0, and dead now. */
  for (uint64_t i = 0; i < n; i++)
    if (refs[i] == AX_REF_NONE || ax_ref_core(refs[i]) != 0)
      bench_die("creation: reference %llu is %#llx (core %d)", (unsigned long long)i,
                (unsigned long long)refs[i], ax_ref_core(refs[i]));
  uint64_t probes = 0;
  for (uint64_t i = 0; i < n; i += n / 64 + 1, probes++) {
    int rc = ax_send(refs[i], MSG_PING, NULL, 0);
    if (rc != -ESRCH)
      bench_die("creation: a send to stopped actor %llu returned %d (%s), -ESRCH expected",
                (unsigned long long)i, rc, ax_strerror(rc));
  }
  ax_core_stats_t st;
  brt_close(&b, &st);
  if (atomic_load(&cr_terminated) != n)
    bench_die("creation: %llu of %llu terminate hooks ran",
              (unsigned long long)atomic_load(&cr_terminated), (unsigned long long)n);
  stats_check("creation", &st, 1, n + 1, probes); /* a refused send may count */
  create_result_t r = {
      .spawn_ns = (double)(t.t1 - t.t0) / (double)n,
      .stop_ms = (double)(done - t.t1) / 1e6,
  };
  return r;
}

/* The resident set size in bytes, from /proc/self/statm. */
static long long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long long size, resident;
  if (f == NULL)
    bench_die("/proc/self/statm: %s", strerror(errno));
  if (fscanf(f, "%lld %lld", &size, &resident) != 2)
    bench_die("/proc/self/statm: unexpected contents");
  fclose(f);
  return resident * sysconf(_SC_PAGESIZE);
}

/* The child side of row 6: prints "mem N RSS_BEFORE RSS_AFTER SPAWN_NS". */
static int mem_child(uint64_t n) {
  bench_watchdog_init(WATCHDOG_S);
  brt_t b;
  brt_open(&b, "idle memory (child process)", 0, 0);
  spawner_t sp = {.port = b.port_ref, .n = n};
  ax_spawn_opts_t o0 = on_core(0);
  ax_ref_t ref;
  BENCH_AX(ax_spawn(b.rt, spawner_behaviour, &sp, &o0, &ref));
  BENCH_AX(ax_send(ref, MSG_PING, NULL, 0)); /* the runtime and the spawner are up and warm */
  ax_msg_t m;
  brt_recv_msg(&b, &m);
  if (m.type != MSG_PONG)
    bench_die("idle memory: warm-up answered with type %u", m.type);
  long long before = rss_bytes();
  BENCH_AX(ax_send(ref, MSG_SPAWN, NULL, 0));
  spawn_times_t t;
  brt_recv(&b, MSG_RESULT, &t, sizeof t);
  long long after = rss_bytes();
  ax_core_stats_t c0;
  BENCH_AX(ax_rt_stats(b.rt, 0, &c0));
  if (c0.actors < n) {
    fprintf(stderr, "bench: idle memory: core 0 counts %llu live actors after %llu spawns\n",
            (unsigned long long)c0.actors, (unsigned long long)n);
    stats_warnings++;
  }
  ax_core_stats_t st;
  brt_close(&b, &st);
  stats_check("idle memory", &st, 2, n + 1, 0);
  printf("mem %llu %lld %lld %.1f %d\n", (unsigned long long)n, before, after,
         (double)(t.t1 - t.t0) / (double)n, stats_warnings);
  return 0;
}

/* Runs mem_child in a fresh process; returns bytes per idle actor. */
static double mem_run(uint64_t n, const char *self_exe) {
  char arg0[] = "bench_actors", arg1[] = "--mem-child", arg2[32];
  snprintf(arg2, sizeof arg2, "%llu", (unsigned long long)n);
  char *args[] = {arg0, arg1, arg2, NULL};
  char buf[256];
  bench_run_capture(self_exe, args, NULL, buf, sizeof buf, "idle memory");
  unsigned long long cn;
  long long before, after;
  double spawn_ns;
  int warnings;
  if (sscanf(buf, "mem %llu %lld %lld %lf %d", &cn, &before, &after, &spawn_ns, &warnings) != 5 ||
      cn != n)
    bench_die("idle memory: the child said '%s'", buf);
  stats_warnings += warnings;
  if (after <= before)
    bench_die("idle memory: the resident set did not grow (%lld -> %lld bytes) after %llu "
              "spawns: nothing was measured",
              before, after, cn);
  return (double)(after - before) / (double)n;
}

/* ------------------------------------------------------------------------ */
/* 7: port round trip, and libuv's uv_async_send ping-pong                   */

typedef struct echo_state {
  ax_ref_t port;
  uint64_t next;
  int cpu; /* where the actor ran its first message */
} echo_state_t;

static int port_echo(ax_actor_t *self, const ax_msg_t *m) {
  echo_state_t *s = ax_state(self);
  uint64_t seq;
  if (m->type != MSG_PING || m->size != sizeof seq || m->from != AX_REF_NONE)
    bench_die("port: the echo actor got type %u, %u bytes from %#llx", m->type, m->size,
              (unsigned long long)m->from);
  memcpy(&seq, m->data, sizeof seq);
  if (seq != s->next)
    bench_die("port: ping %llu arrived, %llu expected", (unsigned long long)seq,
              (unsigned long long)s->next);
  if (s->next++ == 0)
    s->cpu = sched_getcpu();
  BENCH_AX(ax_send(s->port, MSG_PONG, &seq, sizeof seq));
  return 0;
}

/* Returns ns per round trip; *actor_cpu gets the CPU the actor ran on. */
static double port_run_axon(uint64_t rounds, uint32_t max, int *actor_cpu) {
  brt_t b;
  brt_port_max = max;
  brt_open(&b, max != 0 ? "port round trip, bounded port" : "port round trip", 1,
           0); /* started before main pins itself */
  brt_port_max = 0;
  echo_state_t es = {.port = b.port_ref, .cpu = -1};
  ax_spawn_opts_t o0 = on_core(0);
  ax_ref_t echo;
  BENCH_AX(ax_spawn(b.rt, port_echo, &es, &o0, &echo));
  if (ncpus > 1)
    pin_self(last_cpu);
  int64_t deadline = ax_now() + RESULT_WAIT_S * AX_NSEC_PER_SEC, t0 = 0;
  for (uint64_t i = 0; i < PORT_WARMUP + rounds; i++) {
    if (i == PORT_WARMUP)
      t0 = ax_now();
    BENCH_AX(ax_send(echo, MSG_PING, &i, sizeof i));
    ax_msg_t m;
    int rc;
    do
      rc = ax_port_recv(b.port, deadline, &m);
    while (rc == -EINTR);
    if (rc == -ETIMEDOUT) {
      brt_dump_stats(&b);
      bench_die("port round trip: no reply to ping %llu (statistics above)",
                (unsigned long long)i);
    }
    BENCH_AX(rc);
    uint64_t seq;
    if (m.type != MSG_PONG || m.size != sizeof seq || m.from != echo)
      bench_die("port: the port got type %u, %u bytes from %#llx", m.type, m.size,
                (unsigned long long)m.from);
    memcpy(&seq, m.data, sizeof seq);
    if (seq != i)
      bench_die("port: pong %llu arrived, %llu expected", (unsigned long long)seq,
                (unsigned long long)i);
  }
  int64_t t1 = ax_now();
  if (ncpus > 1)
    pin_self(-1);
  ax_core_stats_t st;
  brt_close(&b, &st);
  if (es.next != PORT_WARMUP + rounds)
    bench_die("port: the actor saw %llu pings", (unsigned long long)es.next);
  stats_check("port round trip", &st, PORT_WARMUP + rounds, 1, 0);
  *actor_cpu = es.cpu;
  return (double)(t1 - t0) / (double)rounds;
}

#ifdef AXON_HAVE_LIBUV
/* Thread A (main) and thread B, each with its loop and its uv_async_t. */
typedef struct uvpp {
  uv_loop_t loop_a, loop_b;
  uv_async_t async_a, async_b; /* async_x wakes loop_x */
  _Atomic uint64_t to_b, to_a; /* the counter, each way */
  atomic_bool quit;            /* tells B to close */
  uint64_t next_a, next_b;     /* A's and B's next expected counter */
  uint64_t total;              /* warm-up + timed round trips */
  int64_t t0, t1;
} uvpp_t;

static void uv_b_cb(uv_async_t *h) {
  uvpp_t *p = h->data;
  if (atomic_load_explicit(&p->quit, memory_order_acquire)) {
    uv_close((uv_handle_t *)&p->async_b, NULL);
    return;
  }
  /* Acquire: uv_async_send's wake-up already orders the store before it,
   * but say so explicitly rather than rely on libuv's internals. */
  uint64_t v = atomic_load_explicit(&p->to_b, memory_order_acquire);
  if (v != p->next_b)
    bench_die("libuv: B got %llu, %llu expected", (unsigned long long)v,
              (unsigned long long)p->next_b);
  p->next_b++;
  atomic_store_explicit(&p->to_a, v, memory_order_release);
  BENCH_UV(uv_async_send(&p->async_a));
}

static void uv_a_cb(uv_async_t *h) {
  uvpp_t *p = h->data;
  uint64_t v = atomic_load_explicit(&p->to_a, memory_order_acquire);
  if (v != p->next_a)
    bench_die("libuv: A got %llu, %llu expected", (unsigned long long)v,
              (unsigned long long)p->next_a);
  p->next_a++;
  if (p->next_a == PORT_WARMUP)
    p->t0 = ax_now();
  if (p->next_a == p->total) {
    p->t1 = ax_now();
    atomic_store_explicit(&p->quit, true, memory_order_release);
    BENCH_UV(uv_async_send(&p->async_b));
    uv_close((uv_handle_t *)&p->async_a, NULL);
    return;
  }
  atomic_store_explicit(&p->to_b, p->next_a, memory_order_release);
  BENCH_UV(uv_async_send(&p->async_b));
}

static void *uv_b_thread(void *arg) {
  uvpp_t *p = arg;
  if (ncpus > 1)
    pin_self(first_cpu);
  BENCH_UV(uv_run(&p->loop_b, UV_RUN_DEFAULT));
  return NULL;
}

/* Returns ns per round trip. */
static double port_run_uv(uint64_t rounds) {
  uvpp_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    bench_die("out of memory");
  bench_watchdog_arm("libuv uv_async ping-pong");
  p->total = PORT_WARMUP + rounds;
  BENCH_UV(uv_loop_init(&p->loop_a));
  BENCH_UV(uv_loop_init(&p->loop_b));
  BENCH_UV(uv_async_init(&p->loop_a, &p->async_a, uv_a_cb));
  BENCH_UV(uv_async_init(&p->loop_b, &p->async_b, uv_b_cb));
  p->async_a.data = p->async_b.data = p;
  if (ncpus > 1)
    pin_self(last_cpu);
  pthread_t tb;
  int rc = pthread_create(&tb, NULL, uv_b_thread, p);
  if (rc != 0)
    bench_die("pthread_create: %s", strerror(rc));
  atomic_store_explicit(&p->to_b, 0, memory_order_release);
  BENCH_UV(uv_async_send(&p->async_b));
  BENCH_UV(uv_run(&p->loop_a, UV_RUN_DEFAULT));
  rc = pthread_join(tb, NULL);
  if (rc != 0)
    bench_die("pthread_join: %s", strerror(rc));
  if (ncpus > 1)
    pin_self(-1);
  BENCH_UV(uv_loop_close(&p->loop_a));
  BENCH_UV(uv_loop_close(&p->loop_b));
  alarm(0);
  if (p->next_a != p->total || p->next_b != p->total)
    bench_die("libuv: %llu and %llu of %llu round trips", (unsigned long long)p->next_a,
              (unsigned long long)p->next_b, (unsigned long long)p->total);
  double ns = (double)(p->t1 - p->t0) / (double)rounds;
  free(p);
  return ns;
}
#endif

/* ------------------------------------------------------------------------ */
/* 8: one actor with many timers, monitors or children                       */

/* What one actor's bookkeeping costs per item when it holds n of them, run
 * at the row's n and at a tenth of it: equal costs mean that nothing
 * searches a list (a search through the items makes the ratio 10).  a: n timers armed (an hour away) then cancelled in arming order;
 * b: n targets monitored, then stopped, until the n-th DOWN; c: a simple
 * one-for-one supervisor with n children, stopped until its DOWN; d: every
 * 10th of those children failing and restarted; e: n monitors of one
 * target made, then removed (ax_demonitor). */
enum { MANY_TIMERS, MANY_MONITORS, MANY_CHILDREN, MANY_RESTARTS, MANY_ONE_TARGET };

typedef struct many_run {
  int kind;
  uint64_t n, downs;
  uint64_t started, restarts; /* MANY_RESTARTS: children started, restarts to make */
  ax_ref_t self;
  ax_ref_t port, sup;
  ax_ref_t *refs;
  int64_t t0;
} many_run_t;

static int many_idle(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  return 0;
}

/* A supervisor's child: stops when asked to (AX_MSG_SHUTDOWN). */
static int many_child(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  return m->type == AX_MSG_SHUTDOWN ? AX_STOP : 0;
}

static void many_report(many_run_t *r, int64_t t1);

static int many_child_start(ax_actor_t *sup, void *arg, ax_ref_t *ref) {
  ax_spawn_opts_t o = {.placement = AX_PLACE_LOCAL};
  int rc = ax_spawn(ax_actor_rt(sup), many_child, NULL, &o, ref);
  many_run_t *r = arg;
  if (rc == 0 && r != NULL) { /* MANY_RESTARTS: counts starts and restarts */
    uint64_t k = r->started++;
    if (k < r->n)
      r->refs[k] = *ref; /* the first start of child k */
    if (k + 1 == r->n)
      BENCH_AX(ax_send(r->self, MSG_START, NULL, 0)); /* all up: stop some */
    else if (k + 1 == r->n + r->restarts)
      many_report(r, ax_now()); /* the last restart */
  }
  return rc;
}

static void many_report(many_run_t *r, int64_t t1) {
  pp_result_t res = {.t0 = r->t0, .t1 = t1, .rounds = r->n};
  BENCH_AX(ax_send(r->port, MSG_RESULT, &res, sizeof res));
}

static int many_actor(ax_actor_t *self, const ax_msg_t *m) {
  many_run_t *r = ax_state(self);
  if (m->type == AX_MSG_DOWN) {
    if (r->kind == MANY_CHILDREN || ++r->downs == r->n)
      many_report(r, ax_now());
    return 0;
  }
  if (m->type == MSG_START) { /* MANY_RESTARTS: every 10th child fails, and is restarted */
    r->t0 = ax_now();
    for (uint64_t i = 0; i < r->n; i += 10)
      BENCH_AX(ax_stop(r->refs[i], -EIO));
    return 0;
  }
  if (m->type != MSG_GO)
    return 0;
  ax_spawn_opts_t local = {.placement = AX_PLACE_LOCAL};
  switch (r->kind) {
  case MANY_TIMERS: {
    uint64_t *ids = malloc(r->n * sizeof *ids);
    if (ids == NULL)
      bench_die("out of memory");
    r->t0 = ax_now();
    for (uint64_t i = 0; i < r->n; i++)
      BENCH_AX(ax_after(self, 3600 * AX_NSEC_PER_SEC, MSG_DATA, NULL, 0, &ids[i]));
    for (uint64_t i = 0; i < r->n; i++)
      BENCH_AX(ax_timer_cancel(self, ids[i]));
    many_report(r, ax_now());
    free(ids);
    break;
  }
  case MANY_MONITORS:
    for (uint64_t i = 0; i < r->n; i++) {
      BENCH_AX(ax_spawn(ax_actor_rt(self), many_idle, NULL, &local, &r->refs[i]));
      BENCH_AX(ax_monitor(self, r->refs[i], NULL));
    }
    r->t0 = ax_now();
    for (uint64_t i = 0; i < r->n; i++)
      BENCH_AX(ax_stop(r->refs[i], 0));
    break;
  case MANY_ONE_TARGET: {
    uint64_t *ids = malloc(r->n * sizeof *ids);
    if (ids == NULL)
      bench_die("out of memory");
    ax_ref_t target;
    BENCH_AX(ax_spawn(ax_actor_rt(self), many_idle, NULL, &local, &target));
    r->t0 = ax_now();
    for (uint64_t i = 0; i < r->n; i++)
      BENCH_AX(ax_monitor(self, target, &ids[i]));
    for (uint64_t i = 0; i < r->n; i++)
      BENCH_AX(ax_demonitor(self, ids[i]));
    many_report(r, ax_now());
    free(ids);
    BENCH_AX(ax_stop(target, 0));
    break;
  }
  case MANY_CHILDREN: {
    ax_child_spec_t spec = {.start = many_child_start};
    ax_sup_opts_t so = {.strategy = AX_SIMPLE_ONE_FOR_ONE, .children = &spec, .nchildren = 1};
    BENCH_AX(ax_sup_start(ax_actor_rt(self), &so, &local, &r->sup));
    for (uint64_t i = 0; i < r->n; i++)
      BENCH_AX(ax_sup_start_child(r->sup, NULL));
    BENCH_AX(ax_monitor(self, r->sup, NULL));
    r->t0 = ax_now(); /* the children start as the supervisor takes the requests */
    BENCH_AX(ax_sup_stop(r->sup));
    break;
  }
  case MANY_RESTARTS: {
    ax_child_spec_t spec = {.start = many_child_start, .arg = r, .restart = AX_PERMANENT};
    ax_sup_opts_t so = {.strategy = AX_SIMPLE_ONE_FOR_ONE, .children = &spec, .nchildren = 1,
                        .max_restarts = (unsigned)r->n, .period_ns = AX_NSEC_PER_SEC};
    r->self = ax_self(self);
    r->restarts = (r->n + 9) / 10;
    BENCH_AX(ax_sup_start(ax_actor_rt(self), &so, &local, &r->sup));
    for (uint64_t i = 0; i < r->n; i++)
      BENCH_AX(ax_sup_start_child(r->sup, r));
    break;
  }
  }
  return 0;
}

/* ns per item of one measurement. */
static double many_once(int kind, uint64_t n) {
  static const char *what[] = {"timers of one actor", "monitors of one actor",
                               "children of one supervisor", "restarts among a supervisor's children",
                               "monitors of one target"};
  brt_t b;
  brt_open(&b, what[kind], 1, 0);
  many_run_t r = {.kind = kind, .n = n, .port = b.port_ref};
  r.refs = calloc(n, sizeof *r.refs);
  if (r.refs == NULL)
    bench_die("out of memory");
  ax_ref_t a;
  BENCH_AX(ax_spawn(b.rt, many_actor, &r, NULL, &a));
  BENCH_AX(ax_send(a, MSG_GO, NULL, 0));
  pp_result_t res;
  brt_recv(&b, MSG_RESULT, &res, sizeof res);
  ax_core_stats_t st;
  brt_close(&b, &st);
  free(r.refs);
  return (double)(res.t1 - res.t0) / (double)(kind == MANY_RESTARTS ? r.restarts : n);
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

/* ------------------------------------------------------------------------ */
/* 9: placement under AX_PLACE_ANY                                           */

#define PL_TALKERS 100
#define PL_ASKS 2000
#define PL_WORKERS 256
#define PL_WORK_STEPS 20000 /* about 20 us of arithmetic on the 2-vCPU VM */

typedef struct pl_run {
  ax_placement_t placement;
  bool burst;      /* 9c/9d: independent workers; else 9a/9b: the hub */
  ax_ref_t port;
  uint64_t left;   /* talkers (hub) or workers (burst) not finished yet */
  uint64_t check;  /* burst: the sum of the workers' results */
  int64_t t0;
  uint64_t cores_used; /* a bit per core the children landed on */
} pl_run_t;

typedef struct pl_result {
  int64_t ns;
  uint64_t check;
  uint64_t cores_used;
} pl_result_t;

static uint64_t pl_work(uint64_t seed) {
  bench_rng_t r = {seed};
  uint64_t x = 0;
  for (int i = 0; i < PL_WORK_STEPS; i++)
    x += bench_rng_next(&r);
  return x;
}

/* Asks the hub (the sender of START) PL_ASKS times, one at a time, then
 * tells it DONE and stops. */
static int pl_talker(ax_actor_t *self, const ax_msg_t *m) {
  uint64_t *left = ax_state(self);
  if (m->type != MSG_START && m->type != MSG_PONG)
    bench_die("placement: a talker got message type %u", m->type);
  if (*left == 0) {
    BENCH_AX(ax_send(m->from, MSG_DONE, NULL, 0));
    return AX_STOP;
  }
  (*left)--;
  BENCH_AX(ax_send(m->from, MSG_PING, NULL, 0));
  return 0;
}

static int pl_worker(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  uint64_t seed;
  if (m->type != MSG_DATA || m->size != sizeof seed)
    bench_die("placement: a worker got message type %u", m->type);
  memcpy(&seed, m->data, sizeof seed);
  uint64_t r = pl_work(seed);
  BENCH_AX(ax_send(m->from, MSG_SUM, &r, sizeof r));
  return AX_STOP;
}

static int pl_root(ax_actor_t *self, const ax_msg_t *m) {
  pl_run_t *run = ax_state(self);
  static uint64_t talker_left[PL_TALKERS];
  ax_spawn_opts_t o = {.placement = run->placement};
  ax_ref_t ref;
  switch (m->type) {
  case MSG_GO:
    run->t0 = ax_now();
    if (run->burst) {
      run->left = PL_WORKERS;
      for (uint64_t k = 0; k < PL_WORKERS; k++) {
        BENCH_AX(ax_spawn(ax_actor_rt(self), pl_worker, NULL, &o, &ref));
        run->cores_used |= (uint64_t)1 << ax_ref_core(ref);
        BENCH_AX(ax_send(ref, MSG_DATA, &k, sizeof k));
      }
    } else {
      run->left = PL_TALKERS;
      for (unsigned k = 0; k < PL_TALKERS; k++) {
        talker_left[k] = PL_ASKS;
        BENCH_AX(ax_spawn(ax_actor_rt(self), pl_talker, &talker_left[k], &o, &ref));
        run->cores_used |= (uint64_t)1 << ax_ref_core(ref);
        BENCH_AX(ax_send(ref, MSG_START, NULL, 0));
      }
    }
    return 0;
  case MSG_PING:
    BENCH_AX(ax_send(m->from, MSG_PONG, NULL, 0));
    return 0;
  case MSG_DONE:
    break;
  case MSG_SUM: {
    uint64_t r;
    memcpy(&r, m->data, sizeof r);
    run->check += r;
    break;
  }
  default:
    bench_die("placement: the root got message type %u", m->type);
  }
  if (--run->left == 0) {
    pl_result_t res = {ax_now() - run->t0, run->check, run->cores_used};
    BENCH_AX(ax_send(run->port, MSG_RESULT, &res, sizeof res));
  }
  return 0;
}

/* One run of the hub or the burst with the children's placement p, in a
 * fresh runtime of the default cores; ms.  The root waits on core 0, asleep,
 * until main's GO. */
static double pl_run(bool burst, ax_placement_t p, uint64_t *cores_used) {
  static const char *pnames[] = {"any", "local", "core", "near", "spread"};
  char what[96];
  snprintf(what, sizeof what, "placement: %s, %s", burst ? "burst" : "hub", pnames[p]);
  brt_t b;
  brt_open(&b, what, 0, 0);
  pl_run_t run = {.placement = p, .burst = burst, .port = b.port_ref};
  ax_spawn_opts_t o = on_core(0);
  ax_ref_t root;
  BENCH_AX(ax_spawn(b.rt, pl_root, &run, &o, &root));
  usleep(2000); /* the root's core asleep: GO starts a fresh busy period */
  BENCH_AX(ax_send(root, MSG_GO, NULL, 0));
  pl_result_t res;
  brt_recv(&b, MSG_RESULT, &res, sizeof res);
  if (burst) {
    uint64_t want = 0;
    for (uint64_t k = 0; k < PL_WORKERS; k++)
      want += pl_work(k);
    if (res.check != want)
      bench_die("%s: the workers' sum is %llu, %llu expected", what,
                (unsigned long long)res.check, (unsigned long long)want);
  }
  ax_core_stats_t st;
  brt_close(&b, &st);
  /* GO; a job and its reply per worker, or START, the asks, their
   * answers and DONE per talker. */
  uint64_t msgs = 1 + (burst ? 2 * PL_WORKERS : 2 * (uint64_t)PL_TALKERS * (PL_ASKS + 1));
  stats_check(what, &st, msgs, burst ? PL_WORKERS : PL_TALKERS, 0);
  *cores_used = res.cores_used;
  return (double)res.ns / 1e6;
}

static bench_table_t table = {.id_w = 3, .name_w = 50, .unit_w = 8};

/* One line of the table.  target <= 0: none.  spread < 0: not applicable. */
static void row(const char *id, const char *name, double value, int prec, const char *unit,
                double spread, double target, const char *context) {
  bench_row(&table, id, name, value, prec, unit, spread, target, context);
}

static void row_na(const char *id, const char *name, const char *why) {
  bench_table_line(&table, id, name, "n/a", "", "", "", "", why);
  fflush(stdout);
}

static void usage(void) {
  fputs("usage: bench_actors [--quick] [-v] [-r RUNS] [-b LIST]   (LIST: rows among 1..9, "
        "comma-separated)\n",
        stderr);
  exit(2);
}

int main(int argc, char **argv) {
  bool quick = false, want[NROWS + 1];
  long runs = 0;
  for (int i = 0; i <= NROWS; i++)
    want[i] = true;
  if (argc == 3 && strcmp(argv[1], "--mem-child") == 0)
    return mem_child((uint64_t)bench_parse_count(argv[2], "--mem-child"));
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "-v") == 0) {
      table.verbose = true;
    } else if (strcmp(a, "-r") == 0 && i + 1 < argc) {
      runs = bench_parse_count(argv[++i], "-r");
    } else if (strcmp(a, "-b") == 0 && i + 1 < argc) {
      char *copy = strdup(argv[++i]), *save = NULL;
      if (copy == NULL)
        bench_die("out of memory");
      for (int k = 0; k <= NROWS; k++)
        want[k] = false;
      for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long k = bench_parse_count(tok, "-b");
        if (k > NROWS)
          bench_die("-b: rows are 1..%d", NROWS);
        want[k] = true;
      }
      free(copy);
    } else {
      usage();
    }
  }
  if (runs == 0)
    runs = quick ? 1 : 5;
  if (runs > BENCH_MAX_RUNS)
    bench_die("-r: at most %d", BENCH_MAX_RUNS);
  const sizes_t *z = quick ? &quick_sizes : &full_sizes;
  bench_watchdog_init(WATCHDOG_S);
  cpus_init();
  char self_exe[4096];
  ssize_t len = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  BENCH_SYS(len);
  self_exe[len] = '\0';

  printf("command:");
  for (int i = 0; i < argc; i++)
    printf(" %s", argv[i]);
  printf("\nbench_actors: median of %ld run%s%s; axon %s; %d CPU%s in the affinity mask", runs,
         runs == 1 ? "" : "s", quick ? " (--quick: small sizes)" : "", ax_version_string(), ncpus,
         ncpus == 1 ? "" : "s");
#ifdef AXON_HAVE_LIBUV
  printf("; libuv %s\n", uv_version_string());
#else
  printf("; libuv not found at build time: no libuv row\n");
#endif
  printf("spread = (max-min)/median over the runs; context = published figures for other\n"
         "runtimes, not measured here (other machines), for scale only; skynet cold = in a\n"
         "fresh runtime, warm = the second tree built in one runtime (its pools reused)\n\n");
  bench_table_line(&table, "row", "benchmark", "median", "unit", "spread", "target", "status",
         "context");

  char notes[8][256];
  int nnotes = 0;
  double spread;
  unsigned cores = 0;

  if (want[1]) {
    bench_series_t s = {.n = 0};
    for (long r = 0; r < runs; r++)
      bench_series_add(&s, pp_run("same-core ping-pong", 0, 0, 0, z->same_msgs / 2) / 2);
    double med = bench_series_median(&table, &s, &spread);
    char name[64];
    snprintf(name, sizeof name, "same-core ping-pong, %llu msgs",
             (unsigned long long)z->same_msgs);
    row("1", name, med, 1, "ns/msg", spread, 20,
        "Go chan ~100 ns, Erlang ~185 ns, CAF ~400 ns");
  }

  if (want[2] && ncpus < 2) {
    row_na("2a", "cross-core ping-pong, spinning", "needs 2 CPUs");
    row_na("2b", "cross-core ping-pong, spin_ns = -1", "needs 2 CPUs");
  } else if (want[2]) {
    bench_series_t a = {.n = 0}, b = {.n = 0}, f = {.n = 0}, ratio = {.n = 0}, g = {.n = 0},
                   gratio = {.n = 0};
    for (long r = 0; r < runs; r++) {
      double floor_rt = line_pp_run(z->cross_spin);
      double chan_rt = chan_pp_run(z->cross_spin);
      double rt = pp_run("cross-core ping-pong, spinning", 0, 1, 0, z->cross_spin);
      bench_series_add(&f, floor_rt);
      bench_series_add(&g, chan_rt);
      bench_series_add(&a, rt);
      bench_series_add(&ratio, rt / floor_rt);
      bench_series_add(&gratio, rt / chan_rt);
      bench_series_add(&b, pp_run("cross-core ping-pong, no spinning", 0, 1, -1, z->cross_nospin));
    }
    char name[64];
    snprintf(name, sizeof name, "cross-core ping-pong 0<->1, spinning, %llu rt",
             (unsigned long long)z->cross_spin);
    double med = bench_series_median(&table, &a, &spread); /* before row(): it sets spread */
    row("2a", name, med, 0, "ns/rt", spread, 1000, "");
    med = bench_series_median(&table, &f, &spread);
    row("2f", "floor: one cache line bounced between the CPUs", med, 0, "ns/rt", spread, 0,
        "two pinned threads, same run");
    med = bench_series_median(&table, &ratio, &spread);
    row("2r", "2a / 2f, each run against its own floor", med, 2, "ratio", spread, 1.5, "");
    med = bench_series_median(&table, &g, &spread);
    row("2g", "floor: two rings of 64-byte slots, no runtime", med, 0, "ns/rt", spread, 0,
        "a line each way, same run");
    med = bench_series_median(&table, &gratio, &spread);
    row("2q", "2a / 2g, each run against its own channel", med, 2, "ratio", spread, 0, "");
    snprintf(name, sizeof name, "cross-core ping-pong, spin_ns = -1, %llu rt",
             (unsigned long long)z->cross_nospin);
    med = bench_series_median(&table, &b, &spread);
    row("2b", name, med, 0, "ns/rt", spread, 0, "");
  }

  if (want[3]) {
    bench_series_t s = {.n = 0};
    for (long r = 0; r < runs; r++)
      bench_series_add(&s, fan_run(z->fan_per, &cores));
    double med = bench_series_median(&table, &s, &spread);
    char name[80];
    snprintf(name, sizeof name, "fan-in %d->1 over %u cores, %llu msgs each", FAN_SENDERS, cores,
             (unsigned long long)z->fan_per);
    row("3", name, med, 1, "ns/msg", spread, 0, "");
    row("", "fan-in: throughput at the receiver", 1e3 / med, 2, "Mmsg/s", -1, 0, "");
    bench_series_t tl = {.n = 0}, tq = {.n = 0};
    for (long r = 0; r < runs; r++) {
      int64_t longest;
      bench_series_add(&tl, ft_run(z->fan_per * FAN_SENDERS / FT_THREADS, &longest));
      bench_series_add(&tq, (double)longest);
    }
    med = bench_series_median(&table, &tl, &spread);
    snprintf(name, sizeof name, "fan-in from %d threads (no core) to %d actors, %llu msgs", FT_THREADS,
             FT_RECEIVERS, (unsigned long long)(z->fan_per * FAN_SENDERS));
    row("3t", name, med, 1, "ns/msg", spread, 0, "");
    med = bench_series_median(&table, &tq, &spread);
    row("3q", "  the longest mailbox of those actors (paced threads)", med, 0, "msgs", spread, 0, "");
  }

  if (want[4]) {
    unsigned levels = z->sky_levels, nvariants = ncpus < 2 ? 1 : 3;
    uint64_t leaves = 1;
    for (unsigned i = 0; i < levels; i++)
      leaves *= 10;
    sk_node_t *nodes = malloc((size_t)((leaves - 1) / 9) * sizeof *nodes);
    if (nodes == NULL)
      bench_die("out of memory");
    bench_series_t cold[3] = {{.n = 0}, {.n = 0}, {.n = 0}}, warm[3] = {{.n = 0}, {.n = 0}, {.n = 0}};
    for (long r = 0; r < runs; r++) { /* alternate the variants so drift hits all alike */
      for (unsigned k = 0; k < nvariants; k++) {
        bench_series_add(&cold[k], sk_run(levels, k, 1, nodes));
        bench_series_add(&warm[k], sk_run(levels, k, 2, nodes));
      }
    }
    free(nodes);
    double cmed[3], cspr[3], wmed[3], wspr[3];
    unsigned cbest = 0, wbest = 0;
    int off = snprintf(notes[nnotes], sizeof notes[nnotes], "row 4 skynet medians, cold/warm:");
    for (unsigned k = 0; k < nvariants; k++) {
      cmed[k] = bench_series_median(&table, &cold[k], &cspr[k]);
      wmed[k] = bench_series_median(&table, &warm[k], &wspr[k]);
      cbest = cmed[k] < cmed[cbest] ? k : cbest;
      wbest = wmed[k] < wmed[wbest] ? k : wbest;
      off += snprintf(notes[nnotes] + off, sizeof notes[nnotes] - (size_t)off,
                      "%s %s %.1f/%.1f ms", k ? ";" : "", sk_variant_name(k), cmed[k], wmed[k]);
    }
    nnotes++;
    table.runs[0] = '\0'; /* the variants' medians are in the notes */
    char name[80];
    snprintf(name, sizeof name, "skynet 10^%u cold, best: %s", levels, sk_variant_name(cbest));
    row("4", name, cmed[cbest], 1, "ms", cspr[cbest], levels == 6 ? 150 : 0,
        "Go ~650 ms, CAF ~1.6 s, Erlang ~3 s");
    snprintf(name, sizeof name, "skynet warm (2nd tree), best: %s", sk_variant_name(wbest));
    row("4w", name, wmed[wbest], 1, "ms", wspr[wbest], 0, "");
  }

  if (want[5]) {
    ax_ref_t *refs = malloc(z->create * sizeof *refs);
    if (refs == NULL)
      bench_die("out of memory");
    bench_series_t sp = {.n = 0}, st = {.n = 0};
    for (long r = 0; r < runs; r++) {
      create_result_t c = create_run(z->create, refs);
      bench_series_add(&sp, c.spawn_ns);
      bench_series_add(&st, c.stop_ms);
    }
    free(refs);
    char name[80];
    snprintf(name, sizeof name, "spawn %llu actors (LOCAL, from an actor)",
             (unsigned long long)z->create);
    double ns = bench_series_median(&table, &sp, &spread);
    row("5a", name, ns, 1, "ns/spawn", spread, 0, "");
    double ms = bench_series_median(&table, &st, &spread);
    snprintf(name, sizeof name, "stop them: ax_stop each until last terminate");
    row("5b", name, ms, 1, "ms", spread, 0, "");
    snprintf(notes[nnotes++], sizeof notes[0], "row 5b: %.1f ns per actor stopped",
             ms * 1e6 / (double)z->create);
  }

  if (want[6]) {
    bench_series_t s = {.n = 0};
    for (long r = 0; r < runs; r++)
      bench_series_add(&s, mem_run(z->idle, self_exe));
    char name[80];
    snprintf(name, sizeof name, "bytes per idle actor, %llu actors (RSS growth)",
             (unsigned long long)z->idle);
    double med = bench_series_median(&table, &s, &spread);
    row("6", name, med, 1, "B/actor", spread, 128,
        "Erlang ~2.6 KB, Pony ~320 B");
  }

  if (want[7]) {
    bench_series_t a = {.n = 0}, bd = {.n = 0}, bdr = {.n = 0};
    int actor_cpu = -1;
#ifdef AXON_HAVE_LIBUV
    bench_series_t u = {.n = 0};
#endif
    for (long r = 0; r < runs; r++) {
      double plain = port_run_axon(z->port_rounds, 0, &actor_cpu);
      double bounded = port_run_axon(z->port_rounds, PORT_BOUND, &actor_cpu);
      bench_series_add(&a, plain);
      bench_series_add(&bd, bounded);
      bench_series_add(&bdr, bounded / plain);
#ifdef AXON_HAVE_LIBUV
      bench_series_add(&u, port_run_uv(z->port_rounds));
#endif
    }
    double ax_med = bench_series_median(&table, &a, &spread);
    char name[80];
    snprintf(name, sizeof name, "port round trip: thread <-> actor, %llu rt",
             (unsigned long long)z->port_rounds);
    row("7a", name, ax_med, 0, "ns/rt", spread, 0, "");
    if (ncpus > 1)
      snprintf(notes[nnotes++], sizeof notes[0],
               "row 7: port thread and libuv's A pinned to CPU %d; echo actor ran on CPU %d, "
               "libuv's B pinned to CPU %d",
               last_cpu, actor_cpu, first_cpu);
#ifdef AXON_HAVE_LIBUV
    double uv_med = bench_series_median(&table, &u, &spread);
    row("7b", "libuv: uv_async_send ping-pong, 2 threads", uv_med, 0, "ns/rt", spread, 0, "");
    row("7c", "port round trip, axon / libuv", ax_med / uv_med, 2, "ratio", -1, 0.5, "");
#else
    row_na("7b", "libuv: uv_async_send ping-pong, 2 threads", "libuv not found at build time");
    row_na("7c", "port round trip, axon / libuv", "libuv not found at build time");
#endif
    snprintf(name, sizeof name, "the same, the port bounded (max %d)", PORT_BOUND);
    row("7d", name, bench_series_median(&table, &bd, &spread), 0, "ns/rt", spread, 0, "");
    row("7e", "7d / 7a, run by run: what a port's bound costs",
        bench_series_median(&table, &bdr, &spread), 2, "ratio", spread, 0, "");
  }

  if (want[8]) {
    static const char *names[] = {"timers of one actor: arm, cancel",
                                  "monitors of one actor: targets stopped, DOWNs",
                                  "one supervisor's children: start, stop all",
                                  "restarts of every 10th of a supervisor's children",
                                  "one actor's monitors of one target: made, removed"};
    static const char *ids[][2] = {
        {"8a", "8b"}, {"8c", "8d"}, {"8e", "8f"}, {"8g", "8h"}, {"8i", "8j"}};
    for (int k = 0; k < 5; k++) {
      bench_series_t big = {.n = 0}, ratio = {.n = 0};
      for (long r = 0; r < runs; r++) {
        double small = many_once(k, z->many / 10), large = many_once(k, z->many);
        bench_series_add(&big, large);
        bench_series_add(&ratio, large / small);
      }
      char name[96];
      snprintf(name, sizeof name, "%s, %llu", names[k], (unsigned long long)z->many);
      double med = bench_series_median(&table, &big, &spread);
      row(ids[k][0], name, med, 0, "ns/item", spread, 0, "");
      med = bench_series_median(&table, &ratio, &spread);
      snprintf(name, sizeof name, "  per item, %llu against %llu", (unsigned long long)z->many,
               (unsigned long long)z->many / 10);
      row(ids[k][1], name, med, 2, "ratio", spread, 0, "1: no search; 10: a list searched");
    }
  }

  if (want[9]) {
    static const struct {
      bool burst;
      ax_placement_t other;
      const char *ids[2], *name, *other_name;
    } pls[] = {
        {false, AX_PLACE_LOCAL, {"9a", "9b"}, "hub: 100 talkers x 2000 asks, AX_PLACE_ANY", "LOCAL"},
        {true, AX_PLACE_SPREAD, {"9c", "9d"}, "burst: 256 workers x ~20 us, AX_PLACE_ANY", "SPREAD"},
    };
    for (int k = 0; k < 2; k++) {
      bench_series_t any = {.n = 0}, ratio = {.n = 0};
      uint64_t used_any = 0, used_other = 0, u;
      for (long r = 0; r < runs; r++) {
        double a = pl_run(pls[k].burst, AX_PLACE_ANY, &u);
        used_any |= u;
        double o = pl_run(pls[k].burst, pls[k].other, &u);
        used_other |= u;
        bench_series_add(&any, a);
        bench_series_add(&ratio, a / o);
      }
      double med = bench_series_median(&table, &any, &spread);
      char ctx[64];
      snprintf(ctx, sizeof ctx, "children on %d core(s)", __builtin_popcountll(used_any));
      row(pls[k].ids[0], pls[k].name, med, 2, "ms", spread, 0, ctx);
      med = bench_series_median(&table, &ratio, &spread);
      char name[64];
      snprintf(name, sizeof name, "  ANY against %s, run by run", pls[k].other_name);
      snprintf(ctx, sizeof ctx, "%s: children on %d core(s)", pls[k].other_name,
               __builtin_popcountll(used_other));
      row(pls[k].ids[1], name, med, 2, "ratio", spread, 0, ctx);
    }
  }

  if (nnotes > 0)
    printf("\n");
  for (int i = 0; i < nnotes; i++)
    printf("%s\n", notes[i]);
  if (table.missed)
    printf("\naxon missed a target (see the status column)\n");
  if (stats_warnings > 0) {
    fprintf(stderr, "bench: %d run(s) where the runtime's counters disagreed with the work done\n",
            stats_warnings);
    return 1;
  }
  return 0;
}
