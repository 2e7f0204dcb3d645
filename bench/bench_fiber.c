/* bench_fiber: fibers' switch, messaging, spawn and memory vs Boost.Context, ucontext, actors, Go.
 *
 * Usage: bench_fiber [--quick] [-v] [-r RUNS] [-b LIST] [-s SWITCHES] [-m MSGS] [-n FIBERS]
 *                    [-g GO_BINARY]
 *   -r RUNS      measurements per row; the median is reported (default 5, 1 with --quick)
 *   -b LIST      rows to run, comma-separated among a,b,c,d (default all)
 *   -s SWITCHES  row a: context switches per run (default 10^7; swapcontext does a tenth)
 *   -m MSGS      row b: messages per run (default 10^7)
 *   -n FIBERS    rows c and d: fibers (actors, goroutines) per run (default 10^5)
 *   -g PATH      the Go baseline (bench/go/fiber_baseline.go built), instead of the one
 *                named at build time (AX_GO_BASELINE); without either, Go's rows are n/a
 *   -v           print every run's value, sorted, under its row
 *   --quick      small sizes and one run: the CTest smoke run (under a few seconds)
 *
 * Rows:
 *   a  context switch, ns per switch: two contexts switching to each other
 *      (one round trip = 2 switches), with axon's own ax__ctx_switch
 *      (runtime/context.h, linked from the static library), with
 *      ax__coro_resume/ax__coro_suspend (runtime/coro.h: the switch plus
 *      what a fiber's core does around it), with Boost.Context's
 *      jump_fcontext (its C ABI declared here; libboost_context, when found
 *      at build time: HAVE_BOOST_CONTEXT) and with glibc's swapcontext
 *      (which saves the signal mask with a system call: a tenth of the
 *      switches).  Target: axon / Boost <= 1.2.
 *   b  same-core ping-pong, ns per message (one hop): two fibers on the core
 *      of a one-core runtime bounce an 8-byte counter with ax_send and
 *      ax_recv; two handler actors (ax_spawn behaviours) do the same; and Go
 *      (fiber_baseline pingpong: two goroutines, unbuffered channels,
 *      GOMAXPROCS=1).  Targets: fiber / handler <= 2, fiber / Go <= 0.5.
 *   c  spawn + run + exit, ns per fiber: an actor on the core spawns N
 *      fibers (AX_PLACE_LOCAL) whose function returns at once; the time
 *      from the first spawn until the last one's terminate hook ran.  The
 *      same with handler actors (spawned, sent one message, the behaviour
 *      returns AX_STOP), and Go (fiber_baseline spawn: N goroutines that call
 *      wg.Done(), then wg.Wait()).  Row c1w: the fibers spawned by a fiber
 *      in waves of 128, ax_yield between waves, so each wave's stacks come
 *      back to the core's stack cache before the next wave.
 *   d  resident memory per parked fiber: in a fresh process (this program
 *      re-executed with --mem-child), N fibers each send the spawner one
 *      message and park in ax_recv_type for a type never sent; once the
 *      spawner has all N messages, every fiber is parked.  The growth of
 *      the resident set (/proc/self/statm) over the N spawns, divided by N.
 *      The baseline is read after a first fiber parked (so what the first
 *      fiber costs once is not counted).  Target <= 8 KiB.  Should a spawn
 *      fail with -ENOMEM (vm.max_map_count reached), the child raises
 *      /proc/sys/vm/max_map_count when it runs as root, retries and says so
 *      in the notes.  Context: Go's goroutines parked in a channel receive
 *      (fiber_baseline park), measured the same way.
 *
 * Method.  The implementations alternate within each run (A B C, then
 * C B A), so drift hits all of them alike; each measurement of rows b, c,
 * d gets its own runtime (one core, AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE)
 * and a port to report to; the times are ax_now() read by the actors
 * themselves (Go's inside its process).  Every message carries a sequence
 * number its receiver checks, every terminate hook is counted, and the
 * runtime's counters must agree with the work done.  A failed check or
 * call exits with status 1; a missed target prints MISSED but does not
 * change the exit status.  A watchdog (SIGALRM) names a phase that hangs.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/fiber.h"
#include "axon/port.h"
#include "axon/runtime.h"
#include "bench_util.h"
#include "runtime/context.h"
#include "runtime/coro.h"

#define RESULT_WAIT_S 120 /* the longest wait for one result on a port */
#define WATCHDOG_S 300    /* the longest one measurement may take */
#define CS_WARMUP 1000    /* round trips not timed, row a */
#define PP_WARMUP 1000    /* round trips not timed, row b */
#define WAVE 128          /* row c1w: fibers per wave */
#define CS_STACK ((size_t)64 * 1024)

enum {
  MSG_GO = AX_MSG_USER,
  MSG_PING,
  MSG_PONG,
  MSG_RESULT,
  MSG_PARKED,
  MSG_SPAWN,
  MSG_NEVER, /* row d: the type the parked fibers wait for; nobody sends it */
};

typedef struct sizes {
  uint64_t switches; /* a */
  uint64_t msgs;     /* b */
  uint64_t fibers;   /* c, d */
} sizes_t;

static const sizes_t full_sizes = {10000000, 10000000, 100000};
static const sizes_t quick_sizes = {100000, 20000, 1000};

/* ------------------------------------------------------------------------ */
/* Watchdog and checks                                                       */

static int stats_warnings;

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
/* One runtime (one core) and its port per measurement                       */

typedef struct brt {
  ax_rt_t *rt;
  ax_port_t *port;
  ax_ref_t port_ref;
  char what[128];
} brt_t;

static void brt_open(brt_t *b, const char *what) {
  ax_rt_opts_t o = {.cores = 1, .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  snprintf(b->what, sizeof b->what, "%s", what);
  bench_watchdog_arm("%s (from ax_rt_new to ax_rt_free)", what);
  BENCH_AX(ax_rt_new(&o, &b->rt));
  BENCH_AX(ax_port_new(b->rt, &b->port));
  b->port_ref = ax_port_ref(b->port);
  BENCH_AX(ax_rt_start(b->rt));
}

static void brt_recv(brt_t *b, uint32_t type, void *out, size_t size) {
  int64_t deadline = ax_now() + RESULT_WAIT_S * AX_NSEC_PER_SEC;
  ax_msg_t m;
  int rc;
  do
    rc = ax_port_recv(b->port, deadline, &m);
  while (rc == -EINTR);
  if (rc < 0) {
    ax_core_stats_t s;
    if (ax_rt_stats(b->rt, 0, &s) == 0)
      fprintf(stderr,
              "core 0: sent %llu delivered %llu dead %llu spawned %llu actors %llu runq %llu\n",
              (unsigned long long)s.sent, (unsigned long long)s.delivered,
              (unsigned long long)s.dead_letters, (unsigned long long)s.spawned,
              (unsigned long long)s.actors, (unsigned long long)s.runq_len);
    bench_die("%s: ax_port_recv: %s", b->what, ax_strerror(rc));
  }
  if (m.type != type || m.size != size)
    bench_die("%s: the port got type %u, %u bytes (expected type %u, %zu bytes)", b->what,
              m.type, m.size, type, size);
  memcpy(out, m.data, size);
}

/* Stops, joins and frees; *st gets the totals, *stop_ns how long stop + join took. */
static void brt_close(brt_t *b, ax_core_stats_t *st, int64_t *stop_ns) {
  int64_t t0 = ax_now();
  ax_rt_stop(b->rt);
  BENCH_AX(ax_rt_join(b->rt));
  if (stop_ns != NULL)
    *stop_ns = ax_now() - t0;
  BENCH_AX(ax_rt_stats_total(b->rt, st));
  BENCH_AX(ax_port_close(b->port));
  BENCH_AX(ax_rt_free(b->rt));
  alarm(0);
}

typedef struct span {
  int64_t t0, t1;
} span_t;

/* ------------------------------------------------------------------------ */
/* a: context switches                                                       */

static void *stack_alloc(void) {
  void *p = mmap(NULL, CS_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    bench_die("mmap: %s", strerror(errno));
  return p;
}

static void check_count(const char *what, uint64_t got, uint64_t want) {
  if (got != want)
    bench_die("%s: the other context ran %llu times, %llu expected", what,
              (unsigned long long)got, (unsigned long long)want);
}

static ax__ctx_t cs_main, cs_co;
static uint64_t cs_count;

static void cs_entry(void *arg) {
  (void)arg;
  for (;;) {
    cs_count++;
    ax__ctx_switch(&cs_co, &cs_main);
  }
}

/* Returns ns per switch. */
static double cs_axon(uint64_t switches) {
  uint64_t rounds = switches / 2;
  void *stack = stack_alloc();
  cs_count = 0;
  ax__ctx_make(&cs_co, stack, CS_STACK, cs_entry, NULL);
  for (int i = 0; i < CS_WARMUP; i++)
    ax__ctx_switch(&cs_main, &cs_co);
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  for (uint64_t i = 0; i < rounds; i++)
    ax__ctx_switch(&cs_main, &cs_co);
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  check_count("ax__ctx_switch", cs_count, CS_WARMUP + rounds);
  munmap(stack, CS_STACK);
  return (double)(t1 - t0) / (double)(2 * rounds);
}

static ax__coro_t cr_co;
static uint64_t cr_count;

static void cr_entry(void *arg) {
  ax__coro_t *co = arg;
  ax__coro_enter(co);
  for (;;) {
    cr_count++;
    ax__coro_suspend(co);
  }
}

static double cs_coro(uint64_t switches) {
  uint64_t rounds = switches / 2;
  cr_count = 0;
  BENCH_AX(ax__coro_init(&cr_co, 0, cr_entry, &cr_co));
  for (int i = 0; i < CS_WARMUP; i++)
    ax__coro_resume(&cr_co);
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  for (uint64_t i = 0; i < rounds; i++)
    ax__coro_resume(&cr_co);
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  check_count("ax__coro_resume", cr_count, CS_WARMUP + rounds);
  ax__coro_free(&cr_co); /* suspended, not running: its stack may go */
  return (double)(t1 - t0) / (double)(2 * rounds);
}

#ifdef HAVE_BOOST_CONTEXT
/* Boost.Context's C ABI (boost/context/detail/fcontext.hpp is C++). */
typedef void *fcontext_t;
typedef struct {
  fcontext_t fctx;
  void *data;
} transfer_t;
extern transfer_t jump_fcontext(fcontext_t const to, void *vp);
extern fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

static uint64_t bc_count;

static void bc_entry(transfer_t t) {
  for (;;) {
    bc_count++;
    t = jump_fcontext(t.fctx, NULL);
  }
}

static double cs_boost(uint64_t switches) {
  uint64_t rounds = switches / 2;
  void *stack = stack_alloc();
  bc_count = 0;
  transfer_t t = {make_fcontext((char *)stack + CS_STACK, CS_STACK, bc_entry), NULL};
  for (int i = 0; i < CS_WARMUP; i++)
    t = jump_fcontext(t.fctx, NULL);
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  for (uint64_t i = 0; i < rounds; i++)
    t = jump_fcontext(t.fctx, NULL);
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  check_count("jump_fcontext", bc_count, CS_WARMUP + rounds);
  munmap(stack, CS_STACK);
  return (double)(t1 - t0) / (double)(2 * rounds);
}
#endif

static ucontext_t uc_main, uc_co;
static uint64_t uc_count;

static void uc_entry(void) {
  for (;;) {
    uc_count++;
    BENCH_SYS(swapcontext(&uc_co, &uc_main));
  }
}

static double cs_ucontext(uint64_t switches) {
  uint64_t rounds = switches / 2;
  void *stack = stack_alloc();
  uc_count = 0;
  BENCH_SYS(getcontext(&uc_co));
  uc_co.uc_stack.ss_sp = stack;
  uc_co.uc_stack.ss_size = CS_STACK;
  uc_co.uc_link = NULL;
  makecontext(&uc_co, uc_entry, 0);
  for (int i = 0; i < CS_WARMUP; i++)
    BENCH_SYS(swapcontext(&uc_main, &uc_co));
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  for (uint64_t i = 0; i < rounds; i++)
    BENCH_SYS(swapcontext(&uc_main, &uc_co));
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  check_count("swapcontext", uc_count, CS_WARMUP + rounds);
  munmap(stack, CS_STACK);
  return (double)(t1 - t0) / (double)(2 * rounds);
}

/* ------------------------------------------------------------------------ */
/* b: same-core ping-pong                                                    */

typedef struct pp {
  ax_ref_t peer;   /* the pinger's: the ponger */
  ax_ref_t port;
  uint64_t total;  /* round trips, warm-up included */
  uint64_t next;   /* the next sequence number expected */
  int64_t t0;
} pp_t;

static uint64_t pp_check(const char *who, const ax_msg_t *m, uint32_t type, uint64_t want) {
  uint64_t seq;
  if (m->type != type || m->size != sizeof seq)
    bench_die("ping-pong: the %s got type %u, %u bytes", who, m->type, m->size);
  memcpy(&seq, m->data, sizeof seq);
  if (seq != want)
    bench_die("ping-pong: the %s got %llu, %llu expected", who, (unsigned long long)seq,
              (unsigned long long)want);
  return seq;
}

static int fpp_ponger(ax_actor_t *self, void *arg) {
  pp_t *s = arg;
  ax_ref_t from = AX_REF_NONE;
  for (uint64_t i = 0; i < s->total; i++) {
    const ax_msg_t *m;
    BENCH_AX(ax_recv(self, AX_FOREVER, &m));
    uint64_t seq = pp_check("ponger fiber", m, MSG_PING, i);
    if (from == AX_REF_NONE)
      from = m->from;
    else if (m->from != from)
      bench_die("ping-pong: a ping from %#llx", (unsigned long long)m->from);
    BENCH_AX(ax_send(from, MSG_PONG, &seq, sizeof seq));
  }
  s->next = s->total;
  return 0;
}

static int fpp_pinger(ax_actor_t *self, void *arg) {
  pp_t *s = arg;
  int64_t t0 = 0;
  for (uint64_t i = 0; i < s->total; i++) {
    if (i == PP_WARMUP)
      t0 = ax_now();
    BENCH_AX(ax_send(s->peer, MSG_PING, &i, sizeof i));
    const ax_msg_t *m;
    BENCH_AX(ax_recv(self, AX_FOREVER, &m));
    pp_check("pinger fiber", m, MSG_PONG, i);
    if (m->from != s->peer)
      bench_die("ping-pong: a pong from %#llx", (unsigned long long)m->from);
  }
  span_t r = {t0, ax_now()};
  BENCH_AX(ax_send(s->port, MSG_RESULT, &r, sizeof r));
  return 0;
}

static int hpp_ping(ax_actor_t *self, const ax_msg_t *m) {
  pp_t *s = ax_state(self);
  uint64_t seq = 0;
  if (m->type != MSG_GO) {
    pp_check("pinger actor", m, MSG_PONG, s->next);
    if (m->from != s->peer)
      bench_die("ping-pong: a pong from %#llx", (unsigned long long)m->from);
    if (++s->next == s->total) {
      span_t r = {s->t0, ax_now()};
      BENCH_AX(ax_send(s->port, MSG_RESULT, &r, sizeof r));
      return AX_STOP;
    }
    seq = s->next;
    if (seq == PP_WARMUP)
      s->t0 = ax_now();
  }
  BENCH_AX(ax_send(s->peer, MSG_PING, &seq, sizeof seq));
  return 0;
}

static int hpp_pong(ax_actor_t *self, const ax_msg_t *m) {
  pp_t *s = ax_state(self);
  uint64_t seq = pp_check("ponger actor", m, MSG_PING, s->next);
  s->next++;
  BENCH_AX(ax_send(m->from, MSG_PONG, &seq, sizeof seq));
  return s->next == s->total ? AX_STOP : 0;
}

/* Returns ns per message (one hop). */
static double pp_run(bool fibers, uint64_t msgs) {
  uint64_t rounds = msgs / 2 > 0 ? msgs / 2 : 1;
  brt_t b;
  brt_open(&b, fibers ? "ping-pong, fibers" : "ping-pong, handler actors");
  pp_t ping = {.port = b.port_ref, .total = PP_WARMUP + rounds},
       pong = {.total = PP_WARMUP + rounds};
  ax_ref_t ra;
  if (fibers) {
    ax_fiber_opts_t o = {.placement = AX_PLACE_CORE, .core = 0};
    BENCH_AX(ax_spawn_fiber(b.rt, fpp_ponger, &pong, &o, &ping.peer));
    BENCH_AX(ax_spawn_fiber(b.rt, fpp_pinger, &ping, &o, &ra));
  } else {
    ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = 0};
    BENCH_AX(ax_spawn(b.rt, hpp_pong, &pong, &o, &ping.peer));
    BENCH_AX(ax_spawn(b.rt, hpp_ping, &ping, &o, &ra));
    BENCH_AX(ax_send(ra, MSG_GO, NULL, 0));
  }
  span_t r;
  brt_recv(&b, MSG_RESULT, &r, sizeof r);
  ax_core_stats_t st;
  brt_close(&b, &st, NULL);
  if (!fibers && (ping.next != ping.total || pong.next != pong.total))
    bench_die("ping-pong: %llu pongs, %llu pings seen of %llu", (unsigned long long)ping.next,
              (unsigned long long)pong.next, (unsigned long long)ping.total);
  if (fibers && pong.next != pong.total)
    bench_die("ping-pong: the ponger fiber did not finish");
  if (r.t1 <= r.t0)
    bench_die("ping-pong: no time passed");
  stats_check(b.what, &st, 2 * ping.total, 2, 0);
  return (double)(r.t1 - r.t0) / (double)(2 * rounds);
}

/* ------------------------------------------------------------------------ */
/* c: spawn + run + exit                                                     */

typedef struct sp {
  ax_ref_t port;
  uint64_t n, dead;
  int64_t t0;
  bool fibers, waves;
} sp_t;

static sp_t sp_state; /* one measurement at a time, all on core 0 */

static void sp_terminate(ax_actor_t *self, int reason) {
  (void)self;
  if (reason != AX_REASON_NORMAL)
    bench_die("spawn: an actor stopped with reason %d", reason);
  if (++sp_state.dead == sp_state.n) {
    span_t r = {sp_state.t0, ax_now()};
    BENCH_AX(ax_send(sp_state.port, MSG_RESULT, &r, sizeof r));
  }
}

static int sp_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  (void)arg;
  return 0;
}

static int sp_actor(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type != MSG_GO)
    bench_die("spawn: an actor got type %u", m->type);
  return AX_STOP;
}

static void sp_one(ax_rt_t *rt) {
  if (sp_state.fibers) {
    ax_fiber_opts_t o = {.placement = AX_PLACE_LOCAL, .terminate = sp_terminate};
    BENCH_AX(ax_spawn_fiber(rt, sp_fiber, NULL, &o, NULL));
  } else {
    ax_spawn_opts_t o = {.placement = AX_PLACE_LOCAL, .terminate = sp_terminate};
    ax_ref_t ref;
    BENCH_AX(ax_spawn(rt, sp_actor, NULL, &o, &ref));
    BENCH_AX(ax_send(ref, MSG_GO, NULL, 0));
  }
}

static int sp_spawner(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type != MSG_GO)
    bench_die("spawn: the spawner got type %u", m->type);
  ax_rt_t *rt = ax_actor_rt(self);
  sp_state.t0 = ax_now();
  for (uint64_t i = 0; i < sp_state.n; i++)
    sp_one(rt);
  return AX_STOP;
}

static int sp_wave_spawner(ax_actor_t *self, void *arg) {
  (void)arg;
  ax_rt_t *rt = ax_actor_rt(self);
  sp_state.t0 = ax_now();
  for (uint64_t i = 0; i < sp_state.n;) {
    for (unsigned k = 0; k < WAVE && i < sp_state.n; k++, i++)
      sp_one(rt);
    BENCH_AX(ax_yield(self));
  }
  return 0;
}

/* Returns ns per fiber (actor). */
static double sp_run(bool fibers, bool waves, uint64_t n) {
  brt_t b;
  brt_open(&b, !fibers ? "spawn, handler actors"
               : waves ? "spawn, fibers in waves"
                       : "spawn, fibers");
  sp_state = (sp_t){.port = b.port_ref, .n = n, .fibers = fibers, .waves = waves};
  if (waves) {
    ax_fiber_opts_t o = {.placement = AX_PLACE_CORE, .core = 0};
    BENCH_AX(ax_spawn_fiber(b.rt, sp_wave_spawner, NULL, &o, NULL));
  } else {
    ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = 0};
    ax_ref_t ref;
    BENCH_AX(ax_spawn(b.rt, sp_spawner, NULL, &o, &ref));
    BENCH_AX(ax_send(ref, MSG_GO, NULL, 0));
  }
  span_t r;
  brt_recv(&b, MSG_RESULT, &r, sizeof r);
  ax_core_stats_t st;
  brt_close(&b, &st, NULL);
  if (sp_state.dead != n)
    bench_die("spawn: %llu of %llu terminate hooks ran", (unsigned long long)sp_state.dead,
              (unsigned long long)n);
  stats_check(b.what, &st, fibers ? 0 : n, n + 1, 0);
  return (double)(r.t1 - r.t0) / (double)n;
}

/* ------------------------------------------------------------------------ */
/* d: memory per parked fiber (a fresh process)                              */

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

static long count_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL)
    bench_die("/proc/self/maps: %s", strerror(errno));
  long n = 0;
  int c;
  while ((c = getc(f)) != EOF)
    n += c == '\n';
  fclose(f);
  return n;
}

static long read_max_map_count(void) {
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  long v = -1;
  if (f != NULL) {
    if (fscanf(f, "%ld", &v) != 1)
      v = -1;
    fclose(f);
  }
  return v;
}

typedef struct mc {
  ax_ref_t port, spawner;
  uint64_t n, parked, want, dead;
  int64_t spawn_ns;
  long raised; /* the new vm.max_map_count, 0: not raised */
} mc_t;

static mc_t mc;

static void mc_terminate(ax_actor_t *self, int reason) {
  (void)self;
  (void)reason;
  mc.dead++;
}

static int mc_parker(ax_actor_t *self, void *arg) {
  (void)arg;
  const ax_msg_t *m;
  BENCH_AX(ax_send(mc.spawner, MSG_PARKED, NULL, 0));
  int rc = ax_recv_type(self, MSG_NEVER, AX_FOREVER, &m);
  if (rc != -ECANCELED)
    bench_die("memory: a parked fiber's ax_recv_type returned %d (%s), -ECANCELED expected", rc,
              ax_strerror(rc));
  return 0;
}

static void mc_spawn_one(ax_rt_t *rt, uint64_t i) {
  ax_fiber_opts_t o = {.placement = AX_PLACE_LOCAL, .terminate = mc_terminate};
  int rc = ax_spawn_fiber(rt, mc_parker, NULL, &o, NULL);
  if (rc == -ENOMEM && mc.raised == 0) {
    long cur = read_max_map_count();
    if (geteuid() != 0)
      bench_die("memory: ax_spawn_fiber: -ENOMEM after %llu fibers (vm.max_map_count %ld; not "
                "root, so it was not raised)",
                (unsigned long long)i, cur);
    long want = cur + 4 * (long)mc.n + 65536;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "w");
    if (f == NULL || fprintf(f, "%ld\n", want) < 0 || fclose(f) != 0)
      bench_die("memory: -ENOMEM after %llu fibers, and raising vm.max_map_count from %ld "
                "failed: %s",
                (unsigned long long)i, cur, strerror(errno));
    mc.raised = want;
    rc = ax_spawn_fiber(rt, mc_parker, NULL, &o, NULL);
  }
  if (rc < 0)
    bench_die("memory: ax_spawn_fiber after %llu fibers: %s", (unsigned long long)i,
              ax_strerror(rc));
}

static int mc_spawner(ax_actor_t *self, const ax_msg_t *m) {
  ax_rt_t *rt = ax_actor_rt(self);
  if (m->type == MSG_GO) { /* the first fiber, before the baseline */
    mc.want = 1;
    mc_spawn_one(rt, 0);
  } else if (m->type == MSG_SPAWN) {
    mc.want = 1 + mc.n;
    int64_t t0 = ax_now();
    for (uint64_t i = 0; i < mc.n; i++)
      mc_spawn_one(rt, i);
    mc.spawn_ns = ax_now() - t0;
  } else if (m->type == MSG_PARKED) {
    /* The fiber that sent this parked before this turn began. */
    if (++mc.parked == mc.want)
      BENCH_AX(ax_send(mc.port, MSG_RESULT, &mc.parked, sizeof mc.parked));
  } else {
    bench_die("memory: the spawner got type %u", m->type);
  }
  return 0;
}

/* The child side of row d: prints
 * "mem N RSS_BEFORE RSS_AFTER MAPS_BEFORE MAPS_AFTER SPAWN_NS STOP_NS RAISED WARNINGS". */
static int mem_child(uint64_t n) {
  bench_watchdog_init(WATCHDOG_S);
  brt_t b;
  brt_open(&b, "memory per parked fiber (child process)");
  mc = (mc_t){.port = b.port_ref, .n = n};
  ax_spawn_opts_t o = {.placement = AX_PLACE_CORE, .core = 0};
  BENCH_AX(ax_spawn(b.rt, mc_spawner, NULL, &o, &mc.spawner));
  BENCH_AX(ax_send(mc.spawner, MSG_GO, NULL, 0));
  uint64_t parked;
  brt_recv(&b, MSG_RESULT, &parked, sizeof parked);
  long long before = rss_bytes();
  long maps_before = count_maps();
  BENCH_AX(ax_send(mc.spawner, MSG_SPAWN, NULL, 0));
  brt_recv(&b, MSG_RESULT, &parked, sizeof parked);
  long long after = rss_bytes();
  long maps_after = count_maps();
  if (parked != n + 1)
    bench_die("memory: %llu fibers parked, %llu expected", (unsigned long long)parked,
              (unsigned long long)n + 1);
  ax_core_stats_t c0;
  BENCH_AX(ax_rt_stats(b.rt, 0, &c0));
  if (c0.actors < n + 2) {
    fprintf(stderr, "bench: memory: core 0 counts %llu live actors, %llu expected\n",
            (unsigned long long)c0.actors, (unsigned long long)n + 2);
    stats_warnings++;
  }
  ax_core_stats_t st;
  int64_t stop_ns;
  brt_close(&b, &st, &stop_ns);
  if (mc.dead != n + 1)
    bench_die("memory: %llu of %llu fibers' terminate hooks ran at shutdown",
              (unsigned long long)mc.dead, (unsigned long long)n + 1);
  stats_check(b.what, &st, n + 1, n + 2, 0);
  printf("mem %llu %lld %lld %ld %ld %lld %lld %ld %d\n", (unsigned long long)n, before, after,
         maps_before, maps_after, (long long)mc.spawn_ns, (long long)stop_ns, mc.raised,
         stats_warnings);
  return 0;
}

typedef struct mem_result {
  double bytes;     /* per fiber */
  long maps_delta;  /* mappings added by the N fibers */
  double spawn_ns;  /* per fiber */
  double stop_ns;   /* per fiber: ax_rt_stop + join, every fiber cancelled */
  long raised;
} mem_result_t;

static mem_result_t mem_run(uint64_t n, const char *self_exe) {
  bench_watchdog_arm("memory per parked fiber (child process)");
  char arg0[] = "bench_fiber", arg1[] = "--mem-child", arg2[32], buf[512];
  snprintf(arg2, sizeof arg2, "%llu", (unsigned long long)n);
  char *args[] = {arg0, arg1, arg2, NULL};
  bench_run_capture(self_exe, args, NULL, buf, sizeof buf, "memory");
  alarm(0);
  unsigned long long cn;
  long long before, after, spawn_ns, stop_ns;
  long maps_before, maps_after, raised;
  int warnings;
  if (sscanf(buf, "mem %llu %lld %lld %ld %ld %lld %lld %ld %d", &cn, &before, &after,
             &maps_before, &maps_after, &spawn_ns, &stop_ns, &raised, &warnings) != 9 ||
      cn != n)
    bench_die("memory: the child said '%s'", buf);
  stats_warnings += warnings;
  if (after <= before)
    bench_die("memory: the resident set did not grow (%lld -> %lld bytes) over %llu fibers",
              before, after, (unsigned long long)n);
  mem_result_t r = {
      .bytes = (double)(after - before) / (double)n,
      .maps_delta = maps_after - maps_before,
      .spawn_ns = (double)spawn_ns / (double)n,
      .stop_ns = (double)stop_ns / (double)n,
      .raised = raised,
  };
  return r;
}

/* ------------------------------------------------------------------------ */
/* Go                                                                        */

static const char *go_path;  /* NULL: no Go rows */
static const char *go_why;   /* why not */

static void go_init(const char *opt) {
#ifdef AX_GO_BASELINE
  go_path = bench_go_find(opt, AX_GO_BASELINE, &go_why);
#else
  go_path = bench_go_find(opt, NULL, &go_why);
#endif
}

/* Runs "fiber_baseline MODE N" and returns the number it prints. */
static double go_run(const char *mode, uint64_t n) {
  bench_watchdog_arm("Go baseline: %s %s %llu", go_path, mode, (unsigned long long)n);
  char arg0[] = "fiber_baseline", arg1[16], arg2[32], buf[256];
  snprintf(arg1, sizeof arg1, "%s", mode);
  snprintf(arg2, sizeof arg2, "%llu", (unsigned long long)n);
  char *args[] = {arg0, arg1, arg2, NULL};
  bench_run_capture(go_path, args, NULL, buf, sizeof buf, "Go baseline");
  alarm(0);
  char got[16];
  unsigned long long cn;
  double v;
  if (sscanf(buf, "%15s %llu %lf", got, &cn, &v) != 3 || strcmp(got, mode) != 0 || cn != n ||
      !(v > 0))
    bench_die("Go baseline %s %llu said '%s'", mode, (unsigned long long)n, buf);
  return v;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

static bench_table_t table = {.id_w = 4, .name_w = 56, .unit_w = 10};

static void row(const char *id, const char *name, double value, int prec, const char *unit,
                double spread, double target, const char *context) {
  bench_row(&table, id, name, value, prec, unit, spread, target, context);
}

static void row_na(const char *id, const char *name, double target, const char *why) {
  char tgt[24] = "";
  if (target > 0)
    snprintf(tgt, sizeof tgt, "<= %g", target);
  bench_table_line(&table, id, name, "n/a", "", "", tgt, "", why);
  fflush(stdout);
}

/* One row from a series: its median, spread and runs. */
static double row_series(const char *id, const char *name, bench_series_t *s, int prec,
                         const char *unit, double target, const char *context) {
  double spread, med = bench_series_median(&table, s, &spread);
  row(id, name, med, prec, unit, spread, target, context);
  return med;
}

static void usage(void) {
  fputs("usage: bench_fiber [--quick] [-v] [-r RUNS] [-b LIST] [-s SWITCHES] [-m MSGS] "
        "[-n FIBERS] [-g GO_BINARY]   (LIST: rows among a,b,c,d)\n",
        stderr);
  exit(2);
}

/* The k-th implementation to run in run r: in order on even runs, reversed on odd ones. */
static int alt(long r, int count, int i) { return r % 2 == 0 ? i : count - 1 - i; }

int main(int argc, char **argv) {
  bool quick = false, want[4] = {true, true, true, true};
  long runs = 0, opt_s = 0, opt_m = 0, opt_n = 0;
  const char *opt_go = NULL;
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
    } else if (strcmp(a, "-s") == 0 && i + 1 < argc) {
      opt_s = bench_parse_count(argv[++i], "-s");
    } else if (strcmp(a, "-m") == 0 && i + 1 < argc) {
      opt_m = bench_parse_count(argv[++i], "-m");
    } else if (strcmp(a, "-n") == 0 && i + 1 < argc) {
      opt_n = bench_parse_count(argv[++i], "-n");
    } else if (strcmp(a, "-g") == 0 && i + 1 < argc) {
      opt_go = argv[++i];
    } else if (strcmp(a, "-b") == 0 && i + 1 < argc) {
      const char *l = argv[++i];
      for (int k = 0; k < 4; k++)
        want[k] = false;
      for (const char *p = l; *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'd' && (p[1] == ',' || p[1] == '\0'))
          want[*p - 'a'] = true;
        else if (*p != ',')
          bench_die("-b: rows are a,b,c,d: '%s'", l);
      }
    } else {
      usage();
    }
  }
  if (runs == 0)
    runs = quick ? 1 : 5;
  if (runs > BENCH_MAX_RUNS)
    bench_die("-r: at most %d", BENCH_MAX_RUNS);
  sizes_t z = quick ? quick_sizes : full_sizes;
  if (opt_s > 0)
    z.switches = (uint64_t)opt_s;
  if (opt_m > 0)
    z.msgs = (uint64_t)opt_m;
  if (opt_n > 0)
    z.fibers = (uint64_t)opt_n;
  if (z.switches < 20)
    z.switches = 20;
  bench_watchdog_init(WATCHDOG_S);
  go_init(opt_go);
  char self_exe[4096];
  ssize_t len = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  BENCH_SYS(len);
  self_exe[len] = '\0';

  printf("command:");
  for (int i = 0; i < argc; i++)
    printf(" %s", argv[i]);
  printf("\nbench_fiber: median of %ld run%s%s; axon %s; Boost.Context %s; Go baseline: %s\n",
         runs, runs == 1 ? "" : "s", quick ? " (--quick: small sizes)" : "", ax_version_string(),
#ifdef HAVE_BOOST_CONTEXT
         "linked",
#else
         "not found at build time",
#endif
         go_path != NULL ? go_path : "none");
  printf("spread = (max-min)/median over the runs; ratios are of the medians; one-core "
         "runtimes\n\n");
  bench_table_line(&table, "row", "benchmark", "median", "unit", "spread", "target", "status", "context");

  char notes[8][320];
  int nnotes = 0;
  char name[96];

  if (want[0]) { /* a: context switches */
    uint64_t uc_switches = z.switches / 10 >= 20 ? z.switches / 10 : 20;
    bench_series_t s[4] = {{.n = 0}, {.n = 0}, {.n = 0}, {.n = 0}};
    bench_watchdog_arm("row a: context switches");
    for (long r = 0; r < runs; r++) {
      for (int i = 0; i < 4; i++) {
        int k = alt(r, 4, i);
        if (k == 0)
          bench_series_add(&s[0], cs_axon(z.switches));
        else if (k == 1)
          bench_series_add(&s[1], cs_coro(z.switches));
        else if (k == 3)
          bench_series_add(&s[3], cs_ucontext(uc_switches));
#ifdef HAVE_BOOST_CONTEXT
        else
          bench_series_add(&s[2], cs_boost(z.switches));
#endif
      }
    }
    alarm(0);
    snprintf(name, sizeof name, "switch: axon ax__ctx_switch, %llu switches",
             (unsigned long long)z.switches);
    double ax = row_series("a1", name, &s[0], 2, "ns/switch", 0, "");
    snprintf(name, sizeof name, "switch: axon ax__coro_resume/suspend, %llu switches",
             (unsigned long long)z.switches);
    row_series("a1c", name, &s[1], 2, "ns/switch", 0, "what a fiber's core pays");
    snprintf(name, sizeof name, "switch: Boost.Context jump_fcontext, %llu switches",
             (unsigned long long)z.switches);
#ifdef HAVE_BOOST_CONTEXT
    double bo = row_series("a2", name, &s[2], 2, "ns/switch", 0, "");
#else
    row_na("a2", name, 0, "Boost.Context not found at build time");
#endif
    snprintf(name, sizeof name, "switch: glibc swapcontext, %llu switches",
             (unsigned long long)uc_switches);
    double uc = row_series("a3", name, &s[3], 2, "ns/switch", 0, "saves the signal mask");
#ifdef HAVE_BOOST_CONTEXT
    row("a4", "switch ratio: axon / Boost.Context", ax / bo, 2, "ratio", -1, 1.2, "");
#else
    row_na("a4", "switch ratio: axon / Boost.Context", 1.2,
           "Boost.Context not found at build time");
#endif
    row("a5", "switch ratio: axon / swapcontext", ax / uc, 3, "ratio", -1, 0, "");
  }

  if (want[1]) { /* b: ping-pong */
    bench_series_t s[3] = {{.n = 0}, {.n = 0}, {.n = 0}};
    int nimpl = go_path != NULL ? 3 : 2;
    for (long r = 0; r < runs; r++) {
      for (int i = 0; i < nimpl; i++) {
        int k = alt(r, nimpl, i);
        if (k == 0)
          bench_series_add(&s[0], pp_run(true, z.msgs));
        else if (k == 1)
          bench_series_add(&s[1], pp_run(false, z.msgs));
        else
          bench_series_add(&s[2], go_run("pingpong", z.msgs));
      }
    }
    snprintf(name, sizeof name, "ping-pong: fibers, ax_send + ax_recv, %llu msgs",
             (unsigned long long)z.msgs);
    double fi = row_series("b1", name, &s[0], 1, "ns/msg", 0, "");
    snprintf(name, sizeof name, "ping-pong: handler actors, %llu msgs",
             (unsigned long long)z.msgs);
    double ha = row_series("b2", name, &s[1], 1, "ns/msg", 0, "");
    snprintf(name, sizeof name, "ping-pong: Go, unbuffered chans, GOMAXPROCS=1, %llu msgs",
             (unsigned long long)z.msgs);
    double go = 0;
    if (go_path != NULL)
      go = row_series("b3", name, &s[2], 1, "ns/msg", 0, "");
    else
      row_na("b3", name, 0, go_why);
    row("b4", "ping-pong ratio: fiber / handler", fi / ha, 2, "ratio", -1, 2, "");
    if (go_path != NULL)
      row("b5", "ping-pong ratio: fiber / Go", fi / go, 2, "ratio", -1, 0.5, "");
    else
      row_na("b5", "ping-pong ratio: fiber / Go", 0.5, go_why);
  }

  if (want[2]) { /* c: spawn + run + exit */
    bench_series_t s[4] = {{.n = 0}, {.n = 0}, {.n = 0}, {.n = 0}};
    int nimpl = go_path != NULL ? 4 : 3;
    for (long r = 0; r < runs; r++) {
      for (int i = 0; i < nimpl; i++) {
        int k = alt(r, nimpl, i);
        if (k == 0)
          bench_series_add(&s[0], sp_run(true, false, z.fibers));
        else if (k == 1)
          bench_series_add(&s[1], sp_run(true, true, z.fibers));
        else if (k == 2)
          bench_series_add(&s[2], sp_run(false, false, z.fibers));
        else
          bench_series_add(&s[3], go_run("spawn", z.fibers));
      }
    }
    snprintf(name, sizeof name, "spawn+run+exit: fibers, %llu from an actor",
             (unsigned long long)z.fibers);
    double fi = row_series("c1", name, &s[0], 0, "ns/fiber", 0, "");
    snprintf(name, sizeof name, "spawn+run+exit: fibers, waves of %d from a fiber", WAVE);
    row_series("c1w", name, &s[1], 0, "ns/fiber", 0, "stacks reused from the cache");
    snprintf(name, sizeof name, "spawn+run+exit: handler actors (spawn, send, AX_STOP)");
    double ha = row_series("c2", name, &s[2], 0, "ns/actor", 0, "");
    snprintf(name, sizeof name, "spawn+run+exit: Go goroutines (wg.Done), GOMAXPROCS=1");
    double go = 0;
    if (go_path != NULL)
      go = row_series("c3", name, &s[3], 0, "ns/gorout", 0, "");
    else
      row_na("c3", name, 0, go_why);
    row("c4", "spawn ratio: fiber / handler", fi / ha, 2, "ratio", -1, 0, "");
    if (go_path != NULL)
      row("c5", "spawn ratio: fiber / Go", fi / go, 2, "ratio", -1, 0, "");
    else
      row_na("c5", "spawn ratio: fiber / Go", 0, go_why);
  }

  if (want[3]) { /* d: memory per parked fiber */
    bench_series_t s[2] = {{.n = 0}, {.n = 0}}, spawn = {.n = 0}, stop = {.n = 0};
    long maps_delta = 0, raised = 0;
    int nimpl = go_path != NULL ? 2 : 1;
    for (long r = 0; r < runs; r++) {
      for (int i = 0; i < nimpl; i++) {
        int k = alt(r, nimpl, i);
        if (k == 0) {
          mem_result_t m = mem_run(z.fibers, self_exe);
          bench_series_add(&s[0], m.bytes);
          bench_series_add(&spawn, m.spawn_ns);
          bench_series_add(&stop, m.stop_ns);
          maps_delta = m.maps_delta;
          raised = m.raised > raised ? m.raised : raised;
        } else {
          bench_series_add(&s[1], go_run("park", z.fibers));
        }
      }
    }
    snprintf(name, sizeof name, "memory: RSS per fiber parked in ax_recv_type, %llu fibers",
             (unsigned long long)z.fibers);
    row_series("d1", name, &s[0], 0, "B/fiber", 8192, "");
    snprintf(name, sizeof name, "memory: Go, RSS per goroutine parked in a receive");
    if (go_path != NULL)
      row_series("d2", name, &s[1], 0, "B/gorout", 0, "");
    else
      row_na("d2", name, 0, go_why);
    double sp_spread, st_spread;
    double sp_med = bench_series_median(&table, &spawn, &sp_spread), st_med = bench_series_median(&table, &stop, &st_spread);
    table.runs[0] = '\0';
    snprintf(notes[nnotes++], sizeof notes[0],
             "row d: spawning the parked fibers took %.0f ns each (median), stopping the "
             "runtime with all of them parked %.0f ns each; the last run's %llu fibers added "
             "%ld mappings",
             sp_med, st_med, (unsigned long long)z.fibers, maps_delta);
    if (raised > 0)
      snprintf(notes[nnotes++], sizeof notes[0],
               "row d: a spawn failed with -ENOMEM, so the child raised vm.max_map_count to %ld "
               "(it stays raised)",
               raised);
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
