/* bench_savina: five benchmarks of the Savina actor suite on axon against Go, checksums compared.
 *
 * Usage: bench_savina [--quick] [-v] [-s] [-r RUNS] [-b LIST] [-n CORES] [-p LIST] [-g GO_BINARY]
 *   -r RUNS   measurements per cell; the median is printed (default 5, 1 with --quick)
 *   -b LIST   benchmarks to run, comma-separated among 1..5 (default all)
 *   -n CORES  the cores of the multi-core columns: axon's runtime gets CORES cores
 *             (ax_rt_opts_t.cores) and Go GOMAXPROCS=CORES (default 2); the one-core
 *             columns follow, unless CORES is 1
 *   -p LIST   where the benchmarks' actors are spawned, comma-separated among any (the
 *             runtime's default: AX_PLACE_ANY, the root's core unless it is overloaded) and local
 *             (AX_PLACE_LOCAL: on the core of the actor that spawns them); one row per
 *             placement and benchmark (default any)
 *   -g PATH   the Go baseline (bench/go/savina_baseline.go built), instead of the one
 *             named at build time (AX_SAVINA_GO); without either the Go columns print n/a
 *   -v        print every run's value, sorted, under its row
 *   -s        print the runtime's per-core counters after each axon run (wakeups and
 *             sleeps show how often a message found its core asleep)
 *   --quick   small sizes and one run: the CTest smoke run (checksums still checked)
 *
 * The benchmarks, after Imam and Sarkar, "Savina - An Actor Benchmark Suite"
 * (AGERE! 2014), with Savina's default parameters (its *Config.java files);
 * --quick's sizes are in the table `benches` below:
 *   1  counting (CountingConfig N = 10^6): a producer actor sends N
 *      increments to a counter actor, then asks it for the total, which the
 *      counter sends back.  Checksum: the total, N.
 *   2  fork-join throughput (ThroughputConfig A = 60 actors, N = 10^4
 *      messages each): the main thread, not an actor, sends the values
 *      0..N-1 to each of the A actors (value by value, actor by actor, as
 *      Savina's loop does), and each actor checks that they arrive in order
 *      and does a small computation on each.  Savina's is sin(37.2)^2;
 *      here it is splitmix64's step (bench_rng_next) on (actor << 32 |
 *      value), an integer hash, so that C and Go get bit-identical results.
 *      Each actor reports the sum of its hashes when it has all N; checksum:
 *      the sum over all actors, mod 2^64.
 *   3  thread ring (ThreadRingConfig N = 100 actors, R = 10^5 pings): a
 *      token goes round a ring of N actors, R hops in all; each actor passes
 *      it on with one hop fewer left and one more done.  Checksum: the hops
 *      the token counted, R.
 *   4  chameneos (ChameneosConfig 100 creatures, 2*10^5 meetings): the
 *      creatures (colours red, yellow, blue in turn) ask a mall actor for a
 *      meeting; the mall keeps the first one waiting and hands it the next
 *      one's request, and the two exchange colours (the waiting one answers
 *      the other directly) and ask again.  Once the meetings are used up the
 *      mall answers each request with "exit", and each creature reports how
 *      many meetings it took part in and stops.  Checksum: the sum of the
 *      reports, 2 * meetings.  As in Savina, the mall spawns the creatures.
 *   5  big (BigConfig W = 120 actors, N = 2*10^4 pings): each actor sends a
 *      ping to a peer drawn at random (splitmix64 seeded with 0x5eed0000 +
 *      its index, the same sequence in Go) and waits for that peer's pong
 *      before the next ping, N pings in all, while answering the others'
 *      pings.  A sink actor sums the pongs each actor counted once it has
 *      had its N.  Checksum: the total, W * N.
 *
 * Method.  Each axon measurement gets a fresh runtime (ax_rt_new with
 * .cores = CORES or 1, AX_RT_NO_SIGNALS for the watchdog and
 * AX_RT_KEEP_ALIVE, defaults otherwise: pinned threads, default spinning and
 * batch) and a port.  The main thread spawns one root actor (the default
 * placement), reads ax_now(), and sends the root "go"; the root spawns the
 * benchmark's actors with the placement of the row and starts them (the
 * root is the mall of chameneos and the sink of fork-join and big).  The
 * clock stops when the main thread has the result from its port, so it
 * counts the actors' spawning, as Savina's timings do, and not the
 * runtime's creation or its stop.  Go's baseline (savina_baseline) is a
 * child process per measurement, run with GOMAXPROCS = CORES or 1, which
 * times itself the same way: from the first goroutine started until the
 * result is known.  The four cells of a row (axon CORES, Go CORES, axon 1,
 * Go 1, and one axon cell per placement) run in turn within each run, in
 * the reverse order on odd runs, so that drift hits them alike.
 *
 * Checks.  Every checksum, axon's and Go's, must equal the expected value
 * computed here; after each axon run the runtime's counters must show no
 * dead letter and at least the messages the benchmark sends.  A failed
 * check or call prints what failed and exits with status 1; a result that
 * does not arrive within 60 s prints the per-core statistics and exits 1,
 * and a watchdog (SIGALRM) names a measurement that hangs anywhere else.
 *
 * Asymmetries to keep in mind: axon's main thread is a thread of its own
 * beside the runtime's cores, where Go's main goroutine shares GOMAXPROCS
 * with the others (it matters in fork-join, where main sends every
 * message); axon's mailboxes are unbounded, as Savina's are, where Go's
 * channels are bounded buffers (see savina_baseline.go); and axon's core
 * threads are pinned to CPUs, Go's are not.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/port.h"
#include "axon/runtime.h"
#include "bench_util.h"

#define RESULT_WAIT_S 60 /* the longest wait for one result on a port */
#define WATCHDOG_S 300   /* the longest one measurement may take, whatever it waits on */
#define NBENCH 5
#define NPLACE 2 /* any, local */

enum {
  MSG_GO = AX_MSG_USER, /* main -> root: start */
  MSG_READY,            /* root -> port (fork-join): the actors exist, send */
  MSG_RESULT,           /* -> port: the checksum */
  MSG_START,            /* root -> actor */
  MSG_INCR,             /* counting */
  MSG_GET,
  MSG_TOTAL,
  MSG_WORK,             /* fork-join */
  MSG_DONE,             /* fork-join, big: an actor's sum, to the root */
  MSG_TOKEN,            /* thread ring */
  MSG_MEET,             /* chameneos: creature -> mall */
  MSG_MEET_WITH,        /* chameneos: mall -> the waiting creature */
  MSG_CHANGE,           /* chameneos: creature -> creature */
  MSG_EXIT,             /* chameneos: mall -> creature */
  MSG_FADED,            /* chameneos: creature -> mall */
  MSG_PING,             /* big */
  MSG_PONG,
};

/* ------------------------------------------------------------------------ */
/* The state of one measurement                                              */

/* The state of one of the benchmark's actors.  One type for all five
 * benchmarks; each uses the fields its comment names.  Written by its actor
 * only, and a cache line of its own, so that actors on different cores do
 * not share lines (Go's goroutines keep theirs on their own stacks). */
typedef struct sv_actor {
  alignas(64) struct sv_run *run;
  uint32_t index;   /* its place among the run's actors */
  uint32_t color;   /* chameneos: 0, 1, 2 for red, yellow, blue */
  ax_ref_t peer;    /* counting: the counter; ring: the next actor; chameneos: the mall */
  uint64_t count;   /* increments, values, meetings or pongs counted */
  uint64_t sum;     /* fork-join: the hashes */
  bench_rng_t rng;  /* big: the choice of peers */
} sv_actor_t;

/* One measurement.  The first group is written by the main thread before
 * the root gets "go" and by the root before it starts the actors, and read
 * by the actors; the second is the root's alone.  The main thread reads
 * them again once the result came (each step ordered by a message). */
typedef struct sv_run {
  uint64_t actors, msgs;  /* the sizes: what they mean is the benchmark's */
  ax_spawn_opts_t place;  /* how the root spawns the actors */
  ax_ref_t port;          /* where the result goes */
  sv_actor_t *actor;      /* the actors' states: actors + 1 of them (counting: 2) */
  ax_ref_t *ref;          /* and their references */
  /* The root's own. */
  alignas(64) uint64_t pending;       /* actors yet to report */
  uint64_t sum;           /* their reports, summed */
  uint64_t left;          /* chameneos: meetings left */
  ax_ref_t waiting;       /* chameneos: the creature waiting at the mall, or none */
} sv_run_t;

__attribute__((noreturn)) static void unexpected(const char *who, const ax_msg_t *m) {
  bench_die("%s got an unexpected message: type %u, %u bytes", who, m->type, m->size);
}

/* Copies a payload of exactly `size` bytes out of m (payloads carry no
 * alignment promise), or dies. */
static void payload(const char *who, const ax_msg_t *m, void *out, size_t size) {
  if (m->size != size)
    unexpected(who, m);
  memcpy(out, m->data, size);
}

/* Sends, or dies. */
static void sv_send(ax_ref_t to, uint32_t type, const void *data, size_t size) {
  int rc = ax_send(to, type, data, size);
  if (rc < 0)
    bench_die("ax_send(type %u): %s", type, ax_strerror(rc));
}

/* Spawns run->actor[k] with behaviour b and the run's placement, from the
 * root (self). */
static void spawn_actor(ax_actor_t *self, sv_run_t *run, uint64_t k, ax_behaviour_t b) {
  run->actor[k].run = run;
  run->actor[k].index = (uint32_t)k;
  int rc = ax_spawn(ax_actor_rt(self), b, &run->actor[k], &run->place, &run->ref[k]);
  if (rc < 0)
    bench_die("ax_spawn: %s", ax_strerror(rc));
}

/* The root's report of one actor (fork-join, big): the result goes to the
 * port with the last one. */
static void root_collect(sv_run_t *run, const ax_msg_t *m) {
  uint64_t v;
  payload("root", m, &v, sizeof v);
  run->sum += v;
  if (--run->pending == 0)
    sv_send(run->port, MSG_RESULT, &run->sum, sizeof run->sum);
}

/* ------------------------------------------------------------------------ */
/* 1: counting                                                               */

static int count_counter(ax_actor_t *self, const ax_msg_t *m) {
  sv_actor_t *a = ax_state(self);
  if (m->type == MSG_INCR)
    a->count++;
  else if (m->type == MSG_GET)
    sv_send(m->from, MSG_TOTAL, &a->count, sizeof a->count);
  else
    unexpected("counter", m);
  return 0;
}

static int count_producer(ax_actor_t *self, const ax_msg_t *m) {
  sv_actor_t *a = ax_state(self);
  if (m->type == MSG_START) {
    for (uint64_t i = 0; i < a->run->msgs; i++)
      sv_send(a->peer, MSG_INCR, NULL, 0);
    sv_send(a->peer, MSG_GET, NULL, 0);
  } else if (m->type == MSG_TOTAL) {
    uint64_t total;
    payload("producer", m, &total, sizeof total);
    sv_send(a->run->port, MSG_RESULT, &total, sizeof total);
  } else {
    unexpected("producer", m);
  }
  return 0;
}

static int count_root(ax_actor_t *self, const ax_msg_t *m) {
  sv_run_t *run = ax_state(self);
  if (m->type != MSG_GO)
    unexpected("counting root", m);
  spawn_actor(self, run, 0, count_counter);
  spawn_actor(self, run, 1, count_producer);
  run->actor[1].peer = run->ref[0]; /* the producer gets no message before START */
  sv_send(run->ref[1], MSG_START, NULL, 0);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* 2: fork-join throughput                                                   */

/* The work on one value: a hash that C and Go compute bit for bit alike. */
static uint64_t fj_work(uint32_t actor, uint64_t value) {
  bench_rng_t r = {(uint64_t)actor << 32 | value};
  return bench_rng_next(&r);
}

static int fj_actor(ax_actor_t *self, const ax_msg_t *m) {
  sv_actor_t *a = ax_state(self);
  uint64_t v;
  if (m->type != MSG_WORK)
    unexpected("fork-join actor", m);
  payload("fork-join actor", m, &v, sizeof v);
  if (v != a->count) /* one sender (main) to one receiver: in order */
    bench_die("fork-join: actor %u got value %llu, %llu expected", a->index,
              (unsigned long long)v, (unsigned long long)a->count);
  a->sum += fj_work(a->index, v);
  if (++a->count == a->run->msgs)
    sv_send(a->run->ref[a->run->actors], MSG_DONE, &a->sum, sizeof a->sum);
  return 0;
}

static int fj_root(ax_actor_t *self, const ax_msg_t *m) {
  sv_run_t *run = ax_state(self);
  if (m->type == MSG_DONE) {
    root_collect(run, m);
    return 0;
  }
  if (m->type != MSG_GO)
    unexpected("fork-join root", m);
  run->ref[run->actors] = ax_self(self); /* where the actors report */
  run->pending = run->actors;
  for (uint64_t k = 0; k < run->actors; k++)
    spawn_actor(self, run, k, fj_actor);
  sv_send(run->port, MSG_READY, NULL, 0); /* main reads run->ref after this */
  return 0;
}

/* Main's part: the messages, from a thread that is not an actor. */
static void fj_feed(const sv_run_t *run) {
  for (uint64_t i = 0; i < run->msgs; i++)
    for (uint64_t k = 0; k < run->actors; k++)
      sv_send(run->ref[k], MSG_WORK, &i, sizeof i);
}

static uint64_t fj_expected(uint64_t actors, uint64_t msgs) {
  uint64_t sum = 0;
  for (uint64_t k = 0; k < actors; k++)
    for (uint64_t i = 0; i < msgs; i++)
      sum += fj_work((uint32_t)k, i);
  return sum;
}

/* ------------------------------------------------------------------------ */
/* 3: thread ring                                                            */

typedef struct token {
  uint64_t left; /* hops still to go */
  uint64_t hops; /* hops made */
} token_t;

static int ring_actor(ax_actor_t *self, const ax_msg_t *m) {
  sv_actor_t *a = ax_state(self);
  token_t t;
  if (m->type != MSG_TOKEN)
    unexpected("ring actor", m);
  payload("ring actor", m, &t, sizeof t);
  if (t.left == 0) {
    sv_send(a->run->port, MSG_RESULT, &t.hops, sizeof t.hops);
    return 0;
  }
  t.left--;
  t.hops++;
  sv_send(a->peer, MSG_TOKEN, &t, sizeof t);
  return 0;
}

static int ring_root(ax_actor_t *self, const ax_msg_t *m) {
  sv_run_t *run = ax_state(self);
  if (m->type != MSG_GO)
    unexpected("ring root", m);
  for (uint64_t k = 0; k < run->actors; k++)
    spawn_actor(self, run, k, ring_actor);
  /* The actors read peer only on a token, which comes after these writes
   * through a chain of messages. */
  for (uint64_t k = 0; k < run->actors; k++)
    run->actor[k].peer = run->ref[(k + 1) % run->actors];
  token_t t = {run->msgs, 0};
  sv_send(run->ref[0], MSG_TOKEN, &t, sizeof t);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* 4: chameneos                                                              */

/* MSG_MEET_WITH's payload: the creature that asked to meet the waiting one. */
typedef struct meet {
  uint32_t color;
  ax_ref_t who;
} meet_t;

/* The colour of a creature of colour a after it met one of colour b. */
static uint32_t complement(uint32_t a, uint32_t b) { return a == b ? a : 3 - a - b; }

static int cham_creature(ax_actor_t *self, const ax_msg_t *m) {
  sv_actor_t *a = ax_state(self);
  meet_t with;
  switch (m->type) {
  case MSG_START:
    break;
  case MSG_MEET_WITH: /* we waited; the other one learns our new colour from us */
    payload("creature", m, &with, sizeof with);
    a->color = complement(a->color, with.color);
    a->count++;
    sv_send(with.who, MSG_CHANGE, &a->color, sizeof a->color);
    break;
  case MSG_CHANGE:
    payload("creature", m, &a->color, sizeof a->color);
    a->count++;
    break;
  case MSG_EXIT:
    sv_send(a->peer, MSG_FADED, &a->count, sizeof a->count);
    return AX_STOP;
  default:
    unexpected("creature", m);
  }
  sv_send(a->peer, MSG_MEET, &a->color, sizeof a->color);
  return 0;
}

/* The root is the mall. */
static int cham_mall(ax_actor_t *self, const ax_msg_t *m) {
  sv_run_t *run = ax_state(self);
  switch (m->type) {
  case MSG_GO:
    run->left = run->msgs;
    run->waiting = AX_REF_NONE;
    run->pending = run->actors;
    for (uint64_t k = 0; k < run->actors; k++) {
      run->actor[k].color = (uint32_t)(k % 3);
      run->actor[k].peer = ax_self(self);
      spawn_actor(self, run, k, cham_creature);
      sv_send(run->ref[k], MSG_START, NULL, 0);
    }
    break;
  case MSG_MEET:
    if (run->left == 0) {
      sv_send(m->from, MSG_EXIT, NULL, 0);
    } else if (run->waiting == AX_REF_NONE) {
      run->waiting = m->from;
    } else {
      meet_t with = {.who = m->from};
      payload("mall", m, &with.color, sizeof with.color);
      run->left--;
      sv_send(run->waiting, MSG_MEET_WITH, &with, sizeof with);
      run->waiting = AX_REF_NONE;
    }
    break;
  case MSG_FADED:
    root_collect(run, m);
    break;
  default:
    unexpected("mall", m);
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* 5: big                                                                    */

static void big_ping(sv_actor_t *a) {
  uint64_t peer = bench_rng_next(&a->rng) % (a->run->actors - 1);
  if (peer >= a->index)
    peer++; /* anyone but itself */
  sv_send(a->run->ref[peer], MSG_PING, NULL, 0);
}

static int big_actor(ax_actor_t *self, const ax_msg_t *m) {
  sv_actor_t *a = ax_state(self);
  switch (m->type) {
  case MSG_START:
    big_ping(a);
    break;
  case MSG_PING:
    sv_send(m->from, MSG_PONG, NULL, 0);
    break;
  case MSG_PONG:
    if (++a->count == a->run->msgs)
      sv_send(a->run->ref[a->run->actors], MSG_DONE, &a->count, sizeof a->count);
    else
      big_ping(a);
    break;
  default:
    unexpected("big actor", m);
  }
  return 0;
}

/* The root is the sink. */
static int big_root(ax_actor_t *self, const ax_msg_t *m) {
  sv_run_t *run = ax_state(self);
  if (m->type == MSG_DONE) {
    root_collect(run, m);
    return 0;
  }
  if (m->type != MSG_GO)
    unexpected("big root", m);
  run->ref[run->actors] = ax_self(self);
  run->pending = run->actors;
  for (uint64_t k = 0; k < run->actors; k++) {
    run->actor[k].rng.state = 0x5eed0000u + k;
    spawn_actor(self, run, k, big_actor);
  }
  /* Every reference is in run->ref before the first START: the actors
   * read the array only after a message from here. */
  for (uint64_t k = 0; k < run->actors; k++)
    sv_send(run->ref[k], MSG_START, NULL, 0);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The benchmarks                                                            */

typedef struct bench_def {
  const char *name;        /* also the Go baseline's */
  ax_behaviour_t root;
  bool feed;               /* fork-join: main sends the work */
  uint64_t actors, msgs;   /* Savina's defaults */
  uint64_t q_actors, q_msgs; /* --quick */
} bench_def_t;

static const bench_def_t benches[NBENCH] = {
    {"counting", count_root, false, 1, 1000000, 1, 20000},
    {"fjthrput", fj_root, true, 60, 10000, 60, 200},
    {"threadring", ring_root, false, 100, 100000, 100, 2000},
    {"chameneos", cham_mall, false, 100, 200000, 100, 2000},
    {"big", big_root, false, 120, 20000, 120, 200},
};

/* What the checksum must be. */
static uint64_t expected_checksum(int b, uint64_t actors, uint64_t msgs) {
  switch (b) {
  case 0:
    return msgs;
  case 1:
    return fj_expected(actors, msgs);
  case 2:
    return msgs;
  case 3:
    return 2 * msgs;
  default:
    return actors * msgs;
  }
}

/* The fewest messages the benchmark's actors handle in one run. */
static uint64_t min_messages(int b, uint64_t actors, uint64_t msgs) {
  switch (b) {
  case 0:
    return msgs;
  case 1:
    return actors * msgs;
  case 2:
    return msgs;
  case 3:
    return 2 * msgs;
  default:
    return 2 * actors * msgs;
  }
}

static void bench_label(int b, uint64_t actors, uint64_t msgs, char *out, size_t cap) {
  unsigned long long a = actors, n = msgs;
  switch (b) {
  case 0:
    snprintf(out, cap, "1 counting: %llu msgs", n);
    break;
  case 1:
    snprintf(out, cap, "2 fork-join: %llu actors x %llu msgs", a, n);
    break;
  case 2:
    snprintf(out, cap, "3 thread ring: %llu actors, %llu hops", a, n);
    break;
  case 3:
    snprintf(out, cap, "4 chameneos: %llu creatures, %llu meetings", a, n);
    break;
  default:
    snprintf(out, cap, "5 big: %llu actors x %llu pings", a, n);
    break;
  }
}

/* ------------------------------------------------------------------------ */
/* One axon measurement                                                      */

static const char *const place_names[NPLACE] = {"any", "local"};

static bool show_stats; /* -s */

/* Prints the runtime's counters, a line per core. */
static void print_stats(FILE *f, ax_rt_t *rt) {
  fprintf(f, "  per-core statistics:\n  %5s %12s %12s %8s %10s %9s %9s %8s\n", "core", "sent",
          "delivered", "dead", "actors", "wakeups", "sleeps", "runq");
  for (unsigned c = 0; c < ax_rt_cores(rt); c++) {
    ax_core_stats_t s;
    if (ax_rt_stats(rt, c, &s) < 0)
      continue;
    fprintf(f, "  %5u %12llu %12llu %8llu %10llu %9llu %9llu %8llu\n", c,
            (unsigned long long)s.sent, (unsigned long long)s.delivered,
            (unsigned long long)s.dead_letters, (unsigned long long)s.actors,
            (unsigned long long)s.wakeups, (unsigned long long)s.sleeps,
            (unsigned long long)s.runq_len);
  }
}

/* Takes the next message from the port, which must be of the given type and
 * size, into out. */
static void port_take(ax_rt_t *rt, ax_port_t *port, uint32_t type, void *out, size_t size,
                      const char *what) {
  int64_t deadline = ax_now() + RESULT_WAIT_S * AX_NSEC_PER_SEC;
  ax_msg_t m;
  int rc;
  do
    rc = ax_port_recv(port, deadline, &m);
  while (rc == -EINTR);
  if (rc == -ETIMEDOUT) {
    print_stats(stderr, rt);
    bench_die("%s: no result after %d s: the runtime looks stuck (statistics above)", what,
              RESULT_WAIT_S);
  }
  if (rc < 0)
    bench_die("%s: ax_port_recv: %s", what, ax_strerror(rc));
  if (m.type != type || m.size != size)
    bench_die("%s: the port got type %u, %u bytes (type %u, %zu bytes expected)", what, m.type,
              m.size, type, size);
  if (size > 0)
    memcpy(out, m.data, size);
}

/* Runs benchmark b once on a runtime of `cores` cores with the actors
 * spawned by `place`; returns the milliseconds and stores the checksum. */
static double axon_run(int b, uint64_t actors, uint64_t msgs, unsigned cores,
                       ax_placement_t place, uint64_t *checksum) {
  const bench_def_t *d = &benches[b];
  char what[128];
  snprintf(what, sizeof what, "axon %s, %u core%s, placement %s", d->name, cores,
           cores == 1 ? "" : "s", place_names[place]);
  bench_watchdog_arm("%s", what);
  sv_run_t run = {.actors = actors, .msgs = msgs, .place = {.placement = place}};
  uint64_t slots = actors + 1 > 2 ? actors + 1 : 2;
  run.actor = aligned_alloc(64, slots * sizeof *run.actor);
  run.ref = calloc(slots, sizeof *run.ref);
  if (run.actor == NULL || run.ref == NULL)
    bench_die("out of memory");
  memset(run.actor, 0, slots * sizeof *run.actor);

  ax_rt_opts_t o = {.cores = cores, .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  ax_rt_t *rt;
  ax_port_t *port;
  ax_ref_t root;
  BENCH_AX(ax_rt_new(&o, &rt));
  BENCH_AX(ax_port_new(rt, &port));
  run.port = ax_port_ref(port);
  BENCH_AX(ax_rt_start(rt));
  BENCH_AX(ax_spawn(rt, d->root, &run, NULL, &root));

  int64_t t0 = ax_now();
  sv_send(root, MSG_GO, NULL, 0);
  if (d->feed) {
    port_take(rt, port, MSG_READY, NULL, 0, what);
    fj_feed(&run);
  }
  port_take(rt, port, MSG_RESULT, checksum, sizeof *checksum, what);
  int64_t t1 = ax_now();

  ax_core_stats_t st;
  ax_rt_stop(rt);
  BENCH_AX(ax_rt_join(rt));
  if (show_stats) {
    printf("%s: %.3f ms\n", what, (double)(t1 - t0) / 1e6);
    print_stats(stdout, rt);
  }
  BENCH_AX(ax_rt_stats_total(rt, &st));
  BENCH_AX(ax_port_close(port));
  BENCH_AX(ax_rt_free(rt));
  alarm(0);
  uint64_t min = min_messages(b, actors, msgs);
  if (st.dead_letters != 0 || st.delivered < min)
    bench_die("%s: the runtime's counters disagree with the work done: %llu delivered "
              "(>= %llu expected), %llu dead letters (0 expected)",
              what, (unsigned long long)st.delivered, (unsigned long long)min,
              (unsigned long long)st.dead_letters);
  free(run.actor);
  free(run.ref);
  return (double)(t1 - t0) / 1e6;
}

/* ------------------------------------------------------------------------ */
/* One Go measurement                                                        */

static const char *go_path; /* NULL: no Go columns */
static const char *go_why;  /* why not */

static void go_init(const char *opt) {
#ifdef AX_SAVINA_GO
  go_path = bench_go_find(opt, AX_SAVINA_GO, &go_why);
#else
  go_path = bench_go_find(opt, NULL, &go_why);
#endif
}

/* Runs "savina_baseline NAME ACTORS MSGS" with GOMAXPROCS=procs; returns
 * the milliseconds it printed and stores its checksum. */
static double go_run(int b, uint64_t actors, uint64_t msgs, unsigned procs, uint64_t *checksum) {
  const bench_def_t *d = &benches[b];
  bench_watchdog_arm("Go %s, GOMAXPROCS=%u: %s", d->name, procs, go_path);
  size_t n = 0;
  while (environ[n] != NULL)
    n++;
  char **envp = calloc(n + 2, sizeof *envp), maxprocs[32];
  if (envp == NULL)
    bench_die("out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (strncmp(environ[i], "GOMAXPROCS=", 11) != 0)
      envp[k++] = environ[i];
  snprintf(maxprocs, sizeof maxprocs, "GOMAXPROCS=%u", procs);
  envp[k] = maxprocs;

  char arg0[] = "savina_baseline", arg1[32], arg2[32], arg3[32], buf[256];
  snprintf(arg1, sizeof arg1, "%s", d->name);
  snprintf(arg2, sizeof arg2, "%llu", (unsigned long long)actors);
  snprintf(arg3, sizeof arg3, "%llu", (unsigned long long)msgs);
  char *args[] = {arg0, arg1, arg2, arg3, NULL};
  bench_run_capture(go_path, args, envp, buf, sizeof buf, "Go baseline");
  alarm(0);
  free(envp);
  char got[32];
  double ms;
  unsigned long long sum;
  if (sscanf(buf, "%31s %lf %llu", got, &ms, &sum) != 3 || strcmp(got, d->name) != 0 ||
      !(ms > 0))
    bench_die("Go baseline %s %s %s said '%s'", arg1, arg2, arg3, buf);
  *checksum = sum;
  return ms;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

/* A cell of a row: one implementation on one core count. */
typedef struct cell {
  bool go;
  unsigned cores;
  ax_placement_t place;
  bench_series_t s;
} cell_t;

static bool verbose;

static void print_ms(double ms, int width) {
  if (ms >= 100)
    printf(" %*.0f", width, ms);
  else
    printf(" %*.2f", width, ms);
}

/* The median of a cell, printed in a column of `width`; "n/a" for Go
 * without Go.  Returns the median (0: none). */
static double print_cell(cell_t *c, int width, bench_table_t *t) {
  if (c == NULL || c->s.n == 0) {
    printf(" %*s", width, c != NULL && c->go && go_path == NULL ? "n/a" : "-");
    return 0;
  }
  double spread, med = bench_series_median(t, &c->s, &spread);
  print_ms(med, width);
  return med;
}

static void print_runs(const char *what, cell_t *c) {
  if (c == NULL || c->s.n == 0)
    return;
  printf("      %s runs, sorted:", what);
  for (int i = 0; i < c->s.n; i++)
    printf(" %.3f", c->s.v[i]);
  printf("\n");
}

static void usage(void) {
  fputs("usage: bench_savina [--quick] [-v] [-s] [-r RUNS] [-b LIST] [-n CORES] [-p any,local] "
        "[-g GO_BINARY]   (LIST: benchmarks among 1..5)\n",
        stderr);
  exit(2);
}

int main(int argc, char **argv) {
  bool quick = false, want[NBENCH] = {true, true, true, true, true};
  bool place_use[NPLACE] = {true, false};
  long runs = 0, cores = 2;
  const char *opt_go = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "-v") == 0) {
      verbose = true;
    } else if (strcmp(a, "-s") == 0) {
      show_stats = true;
    } else if (strcmp(a, "-r") == 0 && i + 1 < argc) {
      runs = bench_parse_count(argv[++i], "-r");
    } else if (strcmp(a, "-n") == 0 && i + 1 < argc) {
      cores = bench_parse_count(argv[++i], "-n");
    } else if (strcmp(a, "-g") == 0 && i + 1 < argc) {
      opt_go = argv[++i];
    } else if (strcmp(a, "-p") == 0 && i + 1 < argc) {
      place_use[0] = place_use[1] = true;
      bench_parse_names(argv[++i], place_names, place_use, NPLACE, "-p");
    } else if (strcmp(a, "-b") == 0 && i + 1 < argc) {
      long list[NBENCH];
      int n = bench_parse_list(argv[++i], list, NBENCH, "-b");
      for (int k = 0; k < NBENCH; k++)
        want[k] = false;
      for (int k = 0; k < n; k++) {
        if (list[k] < 1 || list[k] > NBENCH)
          bench_die("-b: benchmarks are 1..%d", NBENCH);
        want[list[k] - 1] = true;
      }
    } else {
      usage();
    }
  }
  if (runs == 0)
    runs = quick ? 1 : 5;
  if (runs > BENCH_MAX_RUNS)
    bench_die("-r: at most %d", BENCH_MAX_RUNS);
  if (cores > AX_MAX_CORES)
    bench_die("-n: at most %d", AX_MAX_CORES);
  bench_watchdog_init(WATCHDOG_S);
  go_init(opt_go);

  printf("command:");
  for (int i = 0; i < argc; i++)
    printf(" %s", argv[i]);
  printf("\nbench_savina: median of %ld run%s%s; axon %s; Go baseline: %s\n", runs,
         runs == 1 ? "" : "s", quick ? " (--quick: small sizes)" : "", ax_version_string(),
         go_path != NULL ? go_path : go_why);
  printf("times in ms, from the start (spawning included) until the result is known; "
         "place: where the actors are spawned (any: the default)\n\n");

  /* The columns: CORES for both, then 1 core for both unless CORES is 1. */
  bool one = cores > 1;
  char h_axn[48], h_gon[48];
  snprintf(h_axn, sizeof h_axn, "axon ms (%ld cores)", cores);
  snprintf(h_gon, sizeof h_gon, "Go ms (GOMAXPROCS=%ld)", cores);
  if (cores == 1) {
    snprintf(h_axn, sizeof h_axn, "axon ms (1 core)");
    snprintf(h_gon, sizeof h_gon, "Go ms (1 core)");
  }
  const int name_w = 43, place_w = 5;
  int w_axn = (int)strlen(h_axn), w_gon = (int)strlen(h_gon), w_r = 7, w_ax1 = 16, w_go1 = 14;
  printf("%-*s %-*s %s %s %*s", name_w, "benchmark", place_w, "place", h_axn, h_gon, w_r,
         "axon/Go");
  if (one)
    printf(" %*s %*s %*s", w_ax1, "axon ms (1 core)", w_go1, "Go ms (1 core)", w_r, "axon/Go");
  printf("  checksum\n");
  fflush(stdout);

  bench_table_t table = {.verbose = false};
  for (int b = 0; b < NBENCH; b++) {
    if (!want[b])
      continue;
    const bench_def_t *d = &benches[b];
    uint64_t actors = quick ? d->q_actors : d->actors, msgs = quick ? d->q_msgs : d->msgs;
    uint64_t expect = expected_checksum(b, actors, msgs);

    /* The cells of this benchmark, in the order of an even run. */
    cell_t cells[2 * (NPLACE + 1)];
    int ncells = 0;
    int ax_cell[2][NPLACE], go_cell[2] = {-1, -1};
    for (int half = 0; half < (one ? 2 : 1); half++) {
      unsigned c = half == 0 ? (unsigned)cores : 1;
      for (int p = 0; p < NPLACE; p++) {
        ax_cell[half][p] = -1;
        if (!place_use[p])
          continue;
        ax_cell[half][p] = ncells;
        cells[ncells++] = (cell_t){.go = false, .cores = c, .place = (ax_placement_t)p};
      }
      if (go_path != NULL) {
        go_cell[half] = ncells;
        cells[ncells++] = (cell_t){.go = true, .cores = c};
      }
    }
    for (long r = 0; r < runs; r++) {
      for (int i = 0; i < ncells; i++) {
        cell_t *c = &cells[r % 2 == 0 ? i : ncells - 1 - i];
        uint64_t sum = 0;
        double ms = c->go ? go_run(b, actors, msgs, c->cores, &sum)
                          : axon_run(b, actors, msgs, c->cores, c->place, &sum);
        if (sum != expect)
          bench_die("%s: %s with %u core%s: checksum %llu, %llu expected", d->name,
                    c->go ? "Go" : "axon", c->cores, c->cores == 1 ? "" : "s",
                    (unsigned long long)sum, (unsigned long long)expect);
        bench_series_add(&c->s, ms);
      }
    }

    char label[96];
    bench_label(b, actors, msgs, label, sizeof label);
    int rows = 0;
    for (int p = 0; p < NPLACE; p++) {
      if (!place_use[p])
        continue;
      printf("%-*s %-*s", name_w, rows++ == 0 ? label : "", place_w, place_names[p]);
      cell_t *axn = &cells[ax_cell[0][p]];
      cell_t *gon = go_cell[0] >= 0 ? &cells[go_cell[0]] : NULL;
      cell_t no_go = {.go = true};
      double a = print_cell(axn, w_axn, &table);
      double g = print_cell(gon != NULL ? gon : &no_go, w_gon, &table);
      bench_print_ratio(a, g, g > 0, w_r);
      cell_t *ax1 = NULL, *go1 = NULL;
      if (one) {
        ax1 = &cells[ax_cell[1][p]];
        go1 = go_cell[1] >= 0 ? &cells[go_cell[1]] : NULL;
        a = print_cell(ax1, w_ax1, &table);
        g = print_cell(go1 != NULL ? go1 : &no_go, w_go1, &table);
        bench_print_ratio(a, g, g > 0, w_r);
      }
      printf("  ok %llu%s\n", (unsigned long long)expect, go_path != NULL ? "" : " (axon only)");
      if (verbose) {
        char what[48];
        snprintf(what, sizeof what, "axon %ld core%s", cores, cores == 1 ? "" : "s");
        print_runs(what, axn);
        if (rows == 1)
          print_runs(h_gon, gon);
        print_runs("axon 1 core", ax1);
        if (rows == 1)
          print_runs("Go 1 core", go1);
      }
      fflush(stdout);
    }
  }
  return 0;
}
