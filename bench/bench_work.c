/* bench_work: the work pool (ax_work_submit, ax_work_call) against libuv's thread pool (uv_queue_work).
 *
 * Usage: bench_work [--quick] [-v] [-r RUNS] [-b LIST] [-t THREADS] [-n TRIPS] [-m RESULTS]
 *                   [-k RESULTS] [-P]
 *   -r RUNS     measurements per row; the median is reported (default 3, 1 with --quick)
 *   -b LIST     rows to run, comma-separated among 1..5 (default all)
 *   -t THREADS  threads of both pools (default 4: axon's default work_threads, and
 *               libuv's default UV_THREADPOOL_SIZE, which this program sets to THREADS)
 *   -n TRIPS    rows 1 and 3: round trips per run (default 5*10^4)
 *   -m RESULTS  rows 2 and 5: results per run (default 3*10^5)
 *   -k RESULTS  row 4: results per run (default 10^4)
 *   -P          every axon runtime with AX_RT_NO_PIN (its cores, and so its pool's
 *               threads, not pinned to CPUs)
 *   -v          print every run's value, sorted, under its row
 *   --quick     small sizes and one run: the CTest smoke run (a few seconds)
 *
 * Rows (ns per result, the lower the better; every ratio is axon / libuv):
 *   1  round trip, one piece of work at a time: a trivial function (it
 *      returns 3 * seq + 1) is submitted, its result comes back, the next
 *      one is submitted from the result's handler.  axon: a handler actor
 *      calls ax_work_submit and gets AX_MSG_WORK (1a with the runtime's
 *      default idle spinning, 1b with spin_ns = -1: the core sleeps in
 *      epoll and the result wakes it through its eventfd, as libuv's loop
 *      is woken); libuv: uv_queue_work chained from its after_work_cb (1c).
 *   2  throughput: the same trivial function with 32 (2a-2c) and 256
 *      (2d-2f) pieces outstanding: each result's handler submits the next
 *      one.  The same number of pool threads on both sides.  2b and 2e run
 *      the axon runtime with AX_RT_NO_PIN (see the line on affinity under the
 *      table).
 *   3  a fiber's round trip: ax_work_call in a loop (3a), compared with
 *      libuv's one-at-a-time round trip (1c) and with the handler actor's
 *      (1a).
 *   4  blocking functions, 32 outstanding: nanosleep of 100 us (4a, 4b)
 *      and a spin of 20 us of the thread's own CPU time (4c, 4d, 4e;
 *      CLOCK_THREAD_CPUTIME_ID, so that threads sharing a CPU take
 *      longer, as real computations would).  A pool of T threads
 *      can do at best T results per function duration: the context column
 *      gives the functions' mean measured duration (wall clock, so a spin
 *      that was preempted counts long), that bound (the mean duration /
 *      T) and how close to it the pool came.  A spin also needs a CPU:
 *      with C < T CPUs its bound is 20 us / C, and a spinning idle core
 *      takes one of them.  4d runs the axon runtime with AX_RT_NO_PIN
 *      (see the line on affinity under the table).
 *   5  two cores: a two-core runtime, one handler actor per core with 16
 *      pieces outstanding each (32 in all), the trivial function; compared
 *      with libuv's single loop at 32 (2c).
 *
 * Method.  axon's rows run on a runtime of one core (two in row 5), made
 * for each measurement (AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE, the given
 * pool threads); the actors read ax_now() themselves after a warm-up (1000
 * results, 64 in row 4, during which the pool's threads start) and at the
 * last result, and then tell the main thread through a port.  libuv's rows
 * run a fresh uv_loop_t on the main thread; its thread pool is the
 * process's (started once, kept between runs).  The implementations
 * alternate within each run (A B C, then C B A).  Every result is checked:
 * it must come for a piece of work in flight, once, with the id its submit
 * gave (axon) and the value its function returns; each measurement must
 * end with exactly as many results as submits, and axon's pool counters
 * (ax_work_stats) must agree: done = submitted, nothing cancelled, refused,
 * queued or running.  A failed check or call exits with status 1; a
 * watchdog (SIGALRM) names a phase that hangs.  No timing is asserted.
 */
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif

#include "axon/actor.h"
#include "axon/fiber.h"
#include "axon/port.h"
#include "axon/runtime.h"
#include "axon/work.h"
#include "bench_util.h"

#define RESULT_WAIT_S 60     /* the longest wait for a measurement's end on the port */
#define WATCHDOG_S 120       /* the longest one measurement may take */
#define WARMUP_TRIVIAL 1000  /* results not timed, rows 1, 2, 3, 5 */
#define WARMUP_BLOCKING 64   /* results not timed, row 4 */
#define SLEEP_NS 100000      /* row 4: the sleeping function */
#define SPIN_NS 20000        /* row 4: the spinning function's CPU time */
#define BLOCK_DEPTH 32       /* row 4: pieces outstanding */
#define THREADS_MAX 128

enum { MSG_GO = AX_MSG_USER, MSG_DONE };

typedef enum fn_kind { FN_TRIVIAL, FN_SLEEP, FN_SPIN } fn_kind_t;

typedef struct sizes {
  uint64_t trips;    /* rows 1, 3 */
  uint64_t results;  /* rows 2, 5 */
  uint64_t blocking; /* row 4 */
} sizes_t;

static const sizes_t full_sizes = {50000, 300000, 10000};
static const sizes_t quick_sizes = {2000, 20000, 400};

/* ------------------------------------------------------------------------ */
/* The work and its checks (shared by both pools)                            */

typedef struct drive drive_t;

/* One piece of work in flight; a slot carries the next one once the
 * result of its last is handled.  seq is written by the submitter before
 * the submit and read by the function (the pool's lock orders them);
 * fn_ns and result are written by the function and read by the result's
 * handler (the result message, or libuv's completion queue, orders them). */
typedef struct slot {
  drive_t *d;
  uint64_t seq;   /* which piece of work this is */
  uint64_t id;    /* axon: the id ax_work_submit gave it (0 for ax_work_call) */
  int64_t result; /* libuv: the function's return value, for after_work_cb */
  int64_t fn_ns;  /* how long the function ran (row 4) */
  bool busy;      /* submitted, its result not handled yet */
#ifdef AXON_HAVE_LIBUV
  uv_work_t req;
#endif
} slot_t;

/* One submitter (an actor, a fiber or a libuv loop) and its work. */
struct drive {
  const char *what;
  fn_kind_t kind;
  unsigned depth;         /* pieces outstanding */
  uint64_t warmup, total; /* results not timed; results in all */
  uint64_t submitted, results;
  int64_t t0, t1; /* at the warm-up's last result and at the last */
  int64_t fn_ns;  /* the functions' time, timed results only */
  ax_ref_t port;  /* axon: where to say it is done */
  slot_t *slots;
#ifdef AXON_HAVE_LIBUV
  uv_loop_t *loop;
#endif
};

/* What the piece of work seq must return. */
static inline int64_t expected(uint64_t seq) { return (int64_t)(seq * 3 + 1); }

/* The function both pools run: trivial, or blocking for a while. */
static int64_t work_fn(void *arg) {
  slot_t *s = arg;
  fn_kind_t kind = s->d->kind;
  if (kind == FN_TRIVIAL)
    return expected(s->seq);
  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC), t1 = t0;
  if (kind == FN_SLEEP) {
    struct timespec ts = {0, SLEEP_NS}, rem;
    while (nanosleep(&ts, &rem) < 0 && errno == EINTR)
      ts = rem;
    t1 = bench_clock_ns(CLOCK_MONOTONIC);
  } else { /* 20 us of this thread's own CPU time: a preempted spin takes longer */
    int64_t c0 = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
    while (bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0 < SPIN_NS) {
    }
    t1 = bench_clock_ns(CLOCK_MONOTONIC);
  }
  s->fn_ns = t1 - t0;
  return expected(s->seq);
}

static void drive_init(drive_t *d, const char *what, fn_kind_t kind, unsigned depth,
                       uint64_t warmup, uint64_t n) {
  memset(d, 0, sizeof *d);
  d->what = what;
  d->kind = kind;
  d->depth = depth;
  d->warmup = warmup;
  d->total = warmup + n;
  d->slots = calloc(depth, sizeof *d->slots);
  if (d->slots == NULL)
    bench_die("out of memory");
  for (unsigned i = 0; i < depth; i++)
    d->slots[i].d = d;
}

/* The next piece of work for slot s. */
static void drive_next(drive_t *d, slot_t *s) {
  s->seq = d->submitted++;
  s->busy = true;
}

/* Checks one result (id 0: not checked) and counts it.  Returns true when
 * it was the last one. */
static bool drive_result(drive_t *d, slot_t *s, uint64_t id, int64_t result) {
  if (s < d->slots || s >= d->slots + d->depth)
    bench_die("%s: a result for an unknown argument %p", d->what, (void *)s);
  if (!s->busy)
    bench_die("%s: a second result for piece %llu", d->what, (unsigned long long)s->seq);
  if (id != 0 && id != s->id)
    bench_die("%s: piece %llu's result has id %llu, its submit gave %llu", d->what,
              (unsigned long long)s->seq, (unsigned long long)id, (unsigned long long)s->id);
  if (result != expected(s->seq))
    bench_die("%s: piece %llu returned %lld (%s), %lld expected", d->what,
              (unsigned long long)s->seq, (long long)result,
              result < 0 ? ax_strerror((int)result) : "a wrong value",
              (long long)expected(s->seq));
  s->busy = false;
  d->results++;
  if (d->results > d->warmup)
    d->fn_ns += s->fn_ns;
  if (d->results == d->warmup)
    d->t0 = ax_now();
  if (d->results < d->total)
    return false;
  d->t1 = ax_now();
  return true;
}

/* After the measurement: every submit got its result. */
static void drive_check(const drive_t *d) {
  if (d->submitted != d->total || d->results != d->total)
    bench_die("%s: %llu submitted, %llu results, %llu expected", d->what,
              (unsigned long long)d->submitted, (unsigned long long)d->results,
              (unsigned long long)d->total);
  for (unsigned i = 0; i < d->depth; i++)
    if (d->slots[i].busy)
      bench_die("%s: piece %llu never got its result", d->what,
                (unsigned long long)d->slots[i].seq);
  if (d->t1 <= d->t0)
    bench_die("%s: no time passed", d->what);
}

/* What one measurement gives. */
typedef struct outcome {
  double ns;       /* per result */
  double fn_ns;    /* the functions' mean duration (row 4) */
  unsigned threads;
} outcome_t;

static unsigned pool_threads = 4;
static unsigned extra_flags; /* -P: AX_RT_NO_PIN for every axon runtime */
static int ncpu = 1;         /* CPUs in the process's affinity mask */
static uint64_t checked_axon, checked_uv; /* results checked, all measurements */

static outcome_t drives_outcome(drive_t *d, unsigned nd) {
  int64_t t0 = d[0].t0, t1 = d[0].t1, fn = 0;
  uint64_t n = 0;
  for (unsigned i = 0; i < nd; i++) {
    drive_check(&d[i]);
    t0 = d[i].t0 < t0 ? d[i].t0 : t0;
    t1 = d[i].t1 > t1 ? d[i].t1 : t1;
    fn += d[i].fn_ns;
    n += d[i].total - d[i].warmup;
  }
  outcome_t o = {
      .ns = (double)(t1 - t0) / (double)n,
      .fn_ns = (double)fn / (double)n,
  };
  return o;
}

static void drives_free(drive_t *d, unsigned nd) {
  for (unsigned i = 0; i < nd; i++)
    free(d[i].slots);
}

/* ------------------------------------------------------------------------ */
/* axon                                                                      */

static void ax_submit_slot(ax_actor_t *self, drive_t *d, slot_t *s) {
  drive_next(d, s);
  int rc = ax_work_submit(self, work_fn, s, NULL, &s->id);
  if (rc < 0)
    bench_die("%s: ax_work_submit of piece %llu: %s", d->what, (unsigned long long)s->seq,
              ax_strerror(rc));
}

/* A handler actor keeping d->depth pieces outstanding. */
static int submitter(ax_actor_t *self, const ax_msg_t *m) {
  drive_t *d = ax_state(self);
  if (m->type == MSG_GO) {
    for (unsigned i = 0; i < d->depth && d->submitted < d->total; i++)
      ax_submit_slot(self, d, &d->slots[i]);
    return 0;
  }
  if (m->type != AX_MSG_WORK || m->size != sizeof(ax_work_done_t))
    bench_die("%s: the actor got type %u, %u bytes", d->what, m->type, m->size);
  const ax_work_done_t *w = m->data;
  slot_t *s = w->arg;
  if (drive_result(d, s, w->id, w->result)) {
    BENCH_AX(ax_send(d->port, MSG_DONE, NULL, 0));
    return AX_STOP;
  }
  if (d->submitted < d->total)
    ax_submit_slot(self, d, s);
  return 0;
}

/* A fiber calling ax_work_call once at a time. */
static int caller(ax_actor_t *self, void *arg) {
  drive_t *d = arg;
  slot_t *s = &d->slots[0];
  while (d->submitted < d->total) {
    drive_next(d, s);
    s->id = 0;
    (void)drive_result(d, s, 0, ax_work_call(self, work_fn, s));
  }
  BENCH_AX(ax_send(d->port, MSG_DONE, NULL, 0));
  return 0;
}

/* One measurement on a fresh runtime of `cores` cores, one submitter per
 * core sharing depth and n; fiber: one fiber calling ax_work_call. */
static outcome_t axon_run(const char *what, fn_kind_t kind, unsigned depth, uint64_t n,
                          uint64_t warmup, unsigned cores, int64_t spin_ns, unsigned flags,
                          bool fiber) {
  bench_watchdog_arm("%s (from ax_rt_new to ax_rt_free)", what);
  ax_rt_opts_t ro = {.cores = cores,
                     .spin_ns = spin_ns,
                     .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE | flags | extra_flags,
                     .work_threads = pool_threads};
  ax_rt_t *rt;
  ax_port_t *port;
  BENCH_AX(ax_rt_new(&ro, &rt));
  BENCH_AX(ax_port_new(rt, &port));
  BENCH_AX(ax_rt_start(rt));
  drive_t d[2];
  for (unsigned c = 0; c < cores; c++) {
    drive_init(&d[c], what, kind, depth / cores, warmup / cores, n / cores);
    d[c].port = ax_port_ref(port);
  }
  for (unsigned c = 0; c < cores; c++) {
    ax_ref_t ref;
    if (fiber) {
      ax_fiber_opts_t fo = {.placement = AX_PLACE_CORE, .core = c};
      BENCH_AX(ax_spawn_fiber(rt, caller, &d[c], &fo, &ref));
    } else {
      ax_spawn_opts_t so = {.placement = AX_PLACE_CORE, .core = c};
      BENCH_AX(ax_spawn(rt, submitter, &d[c], &so, &ref));
      BENCH_AX(ax_send(ref, MSG_GO, NULL, 0));
    }
  }
  for (unsigned c = 0; c < cores; c++) {
    ax_msg_t m;
    int rc;
    do
      rc = ax_port_recv(port, ax_now() + RESULT_WAIT_S * AX_NSEC_PER_SEC, &m);
    while (rc == -EINTR);
    if (rc < 0) {
      ax_work_stats_t ws;
      if (ax_work_stats(rt, &ws) == 0)
        fprintf(stderr,
                "work pool: threads %u idle %u queued %u running %u done %llu cancelled %llu "
                "refused %llu\n",
                ws.threads, ws.idle, ws.queued, ws.running, (unsigned long long)ws.done,
                (unsigned long long)ws.cancelled, (unsigned long long)ws.refused);
      bench_die("%s: no end after %d s: %s (results %llu of %llu)", what, RESULT_WAIT_S,
                ax_strerror(rc), (unsigned long long)d[c].results,
                (unsigned long long)d[c].total);
    }
    if (m.type != MSG_DONE)
      bench_die("%s: the port got type %u", what, m.type);
  }
  ax_rt_stop(rt);
  BENCH_AX(ax_rt_join(rt));
  /* Joined: the pool is quiet (each core waited for the functions running),
   * so its counters are exact. */
  ax_work_stats_t ws;
  BENCH_AX(ax_work_stats(rt, &ws));
  uint64_t want = 0;
  for (unsigned c = 0; c < cores; c++)
    want += d[c].total;
  if (ws.done != want || ws.cancelled != 0 || ws.refused != 0 || ws.queued != 0 ||
      ws.running != 0 || ws.threads == 0 || ws.threads > pool_threads)
    bench_die("%s: the pool's counters disagree: done %llu (%llu submitted), cancelled %llu, "
              "refused %llu, queued %u, running %u, threads %u (at most %u)",
              what, (unsigned long long)ws.done, (unsigned long long)want,
              (unsigned long long)ws.cancelled, (unsigned long long)ws.refused, ws.queued,
              ws.running, ws.threads, pool_threads);
  ax_core_stats_t st;
  BENCH_AX(ax_rt_stats_total(rt, &st));
  if (st.delivered < want)
    bench_die("%s: the cores delivered %llu messages, %llu results at least expected", what,
              (unsigned long long)st.delivered, (unsigned long long)want);
  BENCH_AX(ax_port_close(port));
  BENCH_AX(ax_rt_free(rt));
  alarm(0);
  outcome_t o = drives_outcome(d, cores);
  o.threads = ws.threads;
  checked_axon += want;
  drives_free(d, cores);
  return o;
}

/* Run on a pool thread: how many CPUs it may run on. */
static int64_t affinity_fn(void *arg) {
  (void)arg;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return -errno;
  return CPU_COUNT(&set);
}

static int64_t affinity_seen;

static int affinity_caller(ax_actor_t *self, void *arg) {
  affinity_seen = ax_work_call(self, affinity_fn, NULL);
  BENCH_AX(ax_send(*(ax_ref_t *)arg, MSG_DONE, NULL, 0));
  return 0;
}

/* The CPUs a pool thread of a one-core runtime (flags: AX_RT_NO_PIN or
 * not) may run on. */
static int64_t axon_pool_cpus(unsigned flags) {
  bench_watchdog_arm("the pool threads' affinity");
  ax_rt_opts_t ro = {.cores = 1, .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE | flags};
  ax_rt_t *rt;
  ax_port_t *port;
  BENCH_AX(ax_rt_new(&ro, &rt));
  BENCH_AX(ax_port_new(rt, &port));
  BENCH_AX(ax_rt_start(rt));
  ax_ref_t pref = ax_port_ref(port);
  BENCH_AX(ax_spawn_fiber(rt, affinity_caller, &pref, NULL, NULL));
  ax_msg_t m;
  int rc;
  do
    rc = ax_port_recv(port, ax_now() + RESULT_WAIT_S * AX_NSEC_PER_SEC, &m);
  while (rc == -EINTR);
  BENCH_AX(rc);
  ax_rt_stop(rt);
  BENCH_AX(ax_rt_join(rt));
  BENCH_AX(ax_port_close(port));
  BENCH_AX(ax_rt_free(rt));
  alarm(0);
  return affinity_seen;
}

/* ------------------------------------------------------------------------ */
/* libuv                                                                     */

#ifdef AXON_HAVE_LIBUV
static void uv_submit_slot(drive_t *d, slot_t *s);

static void uv_work(uv_work_t *req) {
  slot_t *s = req->data;
  s->result = work_fn(s);
}

static void uv_after(uv_work_t *req, int status) {
  slot_t *s = req->data;
  drive_t *d = s->d;
  if (status != 0)
    bench_die("%s: after_work_cb status %s", d->what, uv_strerror(status));
  if (drive_result(d, s, 0, s->result))
    return; /* nothing left: uv_run returns */
  if (d->submitted < d->total)
    uv_submit_slot(d, s);
}

static void uv_submit_slot(drive_t *d, slot_t *s) {
  drive_next(d, s);
  s->req.data = s;
  BENCH_UV(uv_queue_work(d->loop, &s->req, uv_work, uv_after));
}

/* One measurement on a fresh loop (the main thread's) and the process's pool. */
static outcome_t uv_measure(const char *what, fn_kind_t kind, unsigned depth, uint64_t n,
                            uint64_t warmup) {
  bench_watchdog_arm("%s", what);
  uv_loop_t loop;
  BENCH_UV(uv_loop_init(&loop));
  drive_t d;
  drive_init(&d, what, kind, depth, warmup, n);
  d.loop = &loop;
  for (unsigned i = 0; i < depth && d.submitted < d.total; i++)
    uv_submit_slot(&d, &d.slots[i]);
  (void)uv_run(&loop, UV_RUN_DEFAULT);
  BENCH_UV(uv_loop_close(&loop));
  alarm(0);
  outcome_t o = drives_outcome(&d, 1);
  o.threads = pool_threads;
  checked_uv += d.total;
  drives_free(&d, 1);
  return o;
}
#define HAVE_UV 1
#else
static outcome_t uv_measure(const char *what, fn_kind_t kind, unsigned depth, uint64_t n,
                            uint64_t warmup) {
  (void)what, (void)kind, (void)depth, (void)n, (void)warmup;
  bench_die("libuv not found at build time");
}
#define HAVE_UV 0
#endif

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

static bench_table_t table = {.id_w = 3, .name_w = 58, .unit_w = 9};

static const char *no_uv = "libuv not found at build time";

static double row_series(const char *id, const char *name, bench_series_t *s, int prec,
                         const char *unit, const char *context) {
  double spread, med = bench_series_median(&table, s, &spread);
  bench_row(&table, id, name, med, prec, unit, spread, 0, context);
  return med;
}

static void row_na(const char *id, const char *name) {
  bench_table_line(&table, id, name, "n/a", "", "", "", "", no_uv);
}

static void row_ratio(const char *id, const char *name, double num, double den, bool have,
                      const char *context) {
  if (have && den > 0)
    bench_row(&table, id, name, num / den, 2, "ratio", -1, 0, context);
  else
    row_na(id, name);
}

/* The median of the runs' values of a field, for the context column. */
static double median_of(const outcome_t *o, int n, size_t field) {
  double v[BENCH_MAX_RUNS];
  for (int i = 0; i < n; i++)
    v[i] = *(const double *)(const void *)((const char *)&o[i] + field);
  return bench_median(v, n);
}

/* The k-th implementation to run in run r: in order on even runs, reversed on odd ones. */
static int alt(long r, int count, int i) { return r % 2 == 0 ? i : count - 1 - i; }

static void usage(void) {
  fputs("usage: bench_work [--quick] [-v] [-r RUNS] [-b LIST] [-t THREADS] [-n TRIPS] "
        "[-m RESULTS] [-k RESULTS] [-P]   (LIST: rows among 1..5)\n",
        stderr);
  exit(2);
}

/* A blocking row's context: the functions' mean duration, the best a
 * pool of pool_threads threads could do (for a spin, one that has a CPU
 * for each thread it runs at once), and how close to that it came. */
static void blocking_context(char *buf, size_t cap, fn_kind_t kind, const outcome_t *o, int n,
                             uint64_t results) {
  double fn = median_of(o, n, offsetof(outcome_t, fn_ns));
  double ns = median_of(o, n, offsetof(outcome_t, ns));
  unsigned par = pool_threads;
  if (kind == FN_SPIN && ncpu < (int)par)
    par = (unsigned)ncpu;
  double bound = (kind == FN_SPIN ? (double)SPIN_NS : fn) / par;
  snprintf(buf, cap, "fn %.1f us; bound %.0f ns (%s/%u %s), %.0f%% of it; %llu/%llu ok",
           fn / 1000, bound, kind == FN_SPIN ? "20 us" : "fn", par,
           par < pool_threads ? "CPUs" : "threads", bound / ns * 100,
           (unsigned long long)results, (unsigned long long)results);
}

int main(int argc, char **argv) {
  bool quick = false, want[5] = {true, true, true, true, true};
  long runs = 0, opt_n = 0, opt_m = 0, opt_k = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "-v") == 0) {
      table.verbose = true;
    } else if (strcmp(a, "-P") == 0) {
      extra_flags = AX_RT_NO_PIN;
    } else if (strcmp(a, "-r") == 0 && i + 1 < argc) {
      runs = bench_parse_count(argv[++i], "-r");
    } else if (strcmp(a, "-t") == 0 && i + 1 < argc) {
      long t = bench_parse_count(argv[++i], "-t");
      if (t > THREADS_MAX)
        bench_die("-t: at most %d", THREADS_MAX);
      pool_threads = (unsigned)t;
    } else if (strcmp(a, "-n") == 0 && i + 1 < argc) {
      opt_n = bench_parse_count(argv[++i], "-n");
    } else if (strcmp(a, "-m") == 0 && i + 1 < argc) {
      opt_m = bench_parse_count(argv[++i], "-m");
    } else if (strcmp(a, "-k") == 0 && i + 1 < argc) {
      opt_k = bench_parse_count(argv[++i], "-k");
    } else if (strcmp(a, "-b") == 0 && i + 1 < argc) {
      long l[5];
      int nl = bench_parse_list(argv[++i], l, 5, "-b");
      for (int k = 0; k < 5; k++)
        want[k] = false;
      for (int k = 0; k < nl; k++) {
        if (l[k] > 5)
          bench_die("-b: rows are 1..5");
        want[l[k] - 1] = true;
      }
    } else {
      usage();
    }
  }
  if (runs == 0)
    runs = quick ? 1 : 3;
  if (runs > BENCH_MAX_RUNS)
    bench_die("-r: at most %d", BENCH_MAX_RUNS);
  sizes_t z = quick ? quick_sizes : full_sizes;
  if (opt_n > 0)
    z.trips = (uint64_t)opt_n;
  if (opt_m > 0)
    z.results = (uint64_t)opt_m;
  if (opt_k > 0)
    z.blocking = (uint64_t)opt_k;
  z.results += z.results % 2; /* row 5 splits it over two cores */
  bench_watchdog_init(WATCHDOG_S);
  /* libuv reads it once, when its pool starts (the first uv_queue_work). */
  char env[16];
  snprintf(env, sizeof env, "%u", pool_threads);
  BENCH_SYS(setenv("UV_THREADPOOL_SIZE", env, 1));
  cpu_set_t cpus;
  BENCH_SYS(sched_getaffinity(0, sizeof cpus, &cpus));
  ncpu = CPU_COUNT(&cpus);

  printf("command:");
  for (int i = 0; i < argc; i++)
    printf(" %s", argv[i]);
  printf("\nbench_work: median of %ld run%s%s; axon %s; libuv %s; %u pool threads on both "
         "sides (UV_THREADPOOL_SIZE=%u); %d CPUs in the affinity mask\n",
         runs, runs == 1 ? "" : "s", quick ? " (--quick: small sizes)" : "", ax_version_string(),
#ifdef AXON_HAVE_LIBUV
         uv_version_string(),
#else
         "not found at build time",
#endif
         pool_threads, pool_threads, ncpu);
  printf("axon: a 1-core runtime (libuv runs one loop; row 5 has 2 cores), default idle spin "
         "unless said, %s; libuv: a uv_loop_t on the main thread\n",
         extra_flags != 0 ? "AX_RT_NO_PIN everywhere (-P)" : "pinned cores unless AX_RT_NO_PIN");
  FILE *lf = fopen("/proc/loadavg", "r");
  char load[64] = "unknown";
  if (lf != NULL) {
    if (fgets(load, sizeof load, lf) == NULL)
      snprintf(load, sizeof load, "unknown");
    load[strcspn(load, "\n")] = '\0';
    fclose(lf);
  }
  printf("load average at the start (/proc/loadavg): %s\n", load);
  printf("spread = (max-min)/median over the runs; ratios are axon/libuv of the medians "
         "(< 1: axon faster)\n\n");
  bench_table_line(&table, "row", "benchmark", "median", "unit", "spread", "target", "status",
                   "context");

  char name[128], ctx[160];
  outcome_t o[6][BENCH_MAX_RUNS];
  double uv_rt = 0, uv_tp32 = 0, ax_rt = 0;

  if (want[0] || want[2]) { /* 1 (and 3's references): round trips */
    bench_series_t s[3] = {{.n = 0}, {.n = 0}, {.n = 0}};
    int nimpl = HAVE_UV ? 3 : 2;
    for (long r = 0; r < runs; r++) {
      for (int i = 0; i < nimpl; i++) {
        int k = alt(r, nimpl, i);
        if (k == 0)
          o[0][r] = axon_run("row 1a: axon round trip", FN_TRIVIAL, 1, z.trips, WARMUP_TRIVIAL,
                             1, 0, 0, false);
        else if (k == 1)
          o[1][r] = axon_run("row 1b: axon round trip, no spin", FN_TRIVIAL, 1, z.trips,
                             WARMUP_TRIVIAL, 1, -1, 0, false);
        else
          o[2][r] = uv_measure("row 1c: libuv round trip", FN_TRIVIAL, 1, z.trips,
                               WARMUP_TRIVIAL);
        bench_series_add(&s[k], o[k][r].ns);
      }
    }
    snprintf(ctx, sizeof ctx, "%llu/%llu ok; threads %u", (unsigned long long)z.trips,
             (unsigned long long)z.trips, o[0][0].threads);
    snprintf(name, sizeof name, "round trip: axon actor, ax_work_submit -> AX_MSG_WORK");
    ax_rt = row_series("1a", name, &s[0], 0, "ns/trip", ctx);
    snprintf(ctx, sizeof ctx, "%llu/%llu ok; threads %u", (unsigned long long)z.trips,
             (unsigned long long)z.trips, o[1][0].threads);
    snprintf(name, sizeof name, "round trip: axon actor, spin_ns = -1 (core sleeps)");
    double ax_ns = row_series("1b", name, &s[1], 0, "ns/trip", ctx);
    snprintf(name, sizeof name, "round trip: libuv uv_queue_work from after_work_cb");
    snprintf(ctx, sizeof ctx, "%llu/%llu ok", (unsigned long long)z.trips,
             (unsigned long long)z.trips);
    if (HAVE_UV)
      uv_rt = row_series("1c", name, &s[2], 0, "ns/trip", ctx);
    else
      row_na("1c", name);
    row_ratio("1r", "round trip ratio: axon / libuv (1a / 1c)", ax_rt, uv_rt, HAVE_UV, "");
    row_ratio("1s", "round trip ratio: axon no spin / libuv (1b / 1c)", ax_ns, uv_rt, HAVE_UV,
              "");
  }

  if (want[1] || want[4]) { /* 2 (and 5's reference): throughput */
    static const unsigned depths[2] = {32, 256};
    static const char *const ids[2][5] = {{"2a", "2b", "2c", "2r", "2s"},
                                          {"2d", "2e", "2f", "2t", "2u"}};
    static const char *const impl[3] = {"axon actor", "axon actor, AX_RT_NO_PIN",
                                        "libuv uv_queue_work"};
    for (int di = 0; di < (want[1] ? 2 : 1); di++) {
      unsigned depth = depths[di];
      bench_series_t s[3] = {{.n = 0}, {.n = 0}, {.n = 0}};
      int nimpl = HAVE_UV ? 3 : 2;
      for (long r = 0; r < runs; r++) {
        for (int i = 0; i < nimpl; i++) {
          int k = alt(r, nimpl, i);
          snprintf(name, sizeof name, "row 2: %s, depth %u", impl[k], depth);
          if (k < 2)
            o[k][r] = axon_run(name, FN_TRIVIAL, depth, z.results, WARMUP_TRIVIAL, 1, 0,
                               k == 1 ? AX_RT_NO_PIN : 0, false);
          else
            o[2][r] = uv_measure(name, FN_TRIVIAL, depth, z.results, WARMUP_TRIVIAL);
          bench_series_add(&s[k], o[k][r].ns);
        }
      }
      double v[3] = {0};
      for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "throughput, %u outstanding: %s", depth, impl[k]);
        if (k == 2 && !HAVE_UV) {
          row_na(ids[di][k], name);
          continue;
        }
        double med = bench_median(s[k].v, s[k].n);
        if (k < 2)
          snprintf(ctx, sizeof ctx, "%.2f M results/s; %llu/%llu ok; threads %u", 1000 / med,
                   (unsigned long long)z.results, (unsigned long long)z.results,
                   o[k][0].threads);
        else
          snprintf(ctx, sizeof ctx, "%.2f M results/s; %llu/%llu ok", 1000 / med,
                   (unsigned long long)z.results, (unsigned long long)z.results);
        v[k] = row_series(ids[di][k], name, &s[k], 0, "ns/result", ctx);
      }
      if (di == 0)
        uv_tp32 = v[2];
      snprintf(name, sizeof name, "throughput ratio, %u outstanding: axon / libuv", depth);
      row_ratio(ids[di][3], name, v[0], v[2], HAVE_UV, "");
      snprintf(name, sizeof name, "throughput ratio, %u outstanding: axon NO_PIN / libuv", depth);
      row_ratio(ids[di][4], name, v[1], v[2], HAVE_UV, "");
    }
  }

  if (want[2]) { /* 3: a fiber's ax_work_call */
    bench_series_t s = {.n = 0};
    for (long r = 0; r < runs; r++) {
      o[0][r] = axon_run("row 3a: axon fiber ax_work_call", FN_TRIVIAL, 1, z.trips,
                         WARMUP_TRIVIAL, 1, 0, 0, true);
      bench_series_add(&s, o[0][r].ns);
    }
    snprintf(ctx, sizeof ctx, "%llu/%llu ok; threads %u", (unsigned long long)z.trips,
             (unsigned long long)z.trips, o[0][0].threads);
    double fi = row_series("3a", "round trip: axon fiber, ax_work_call", &s, 0, "ns/trip", ctx);
    row_ratio("3r", "fiber round trip ratio: axon fiber / libuv (3a / 1c)", fi, uv_rt, HAVE_UV,
              "");
    bench_row(&table, "3h", "fiber round trip ratio: fiber / handler actor (3a / 1a)",
              fi / ax_rt, 2, "ratio", -1, 0, "");
  }

  if (want[3]) { /* 4: blocking functions */
    bench_series_t s[5] = {{.n = 0}, {.n = 0}, {.n = 0}, {.n = 0}, {.n = 0}};
    int nimpl = HAVE_UV ? 5 : 3;
    static const int impls_uv[5] = {0, 1, 2, 3, 4}, impls_ax[3] = {0, 2, 3};
    for (long r = 0; r < runs; r++) {
      for (int i = 0; i < nimpl; i++) {
        int k = HAVE_UV ? impls_uv[alt(r, nimpl, i)] : impls_ax[alt(r, nimpl, i)];
        if (k == 0)
          o[0][r] = axon_run("row 4a: axon, sleeping functions", FN_SLEEP, BLOCK_DEPTH,
                             z.blocking, WARMUP_BLOCKING, 1, 0, 0, false);
        else if (k == 1)
          o[1][r] = uv_measure("row 4b: libuv, sleeping functions", FN_SLEEP, BLOCK_DEPTH,
                               z.blocking, WARMUP_BLOCKING);
        else if (k == 2)
          o[2][r] = axon_run("row 4c: axon, spinning functions", FN_SPIN, BLOCK_DEPTH,
                             z.blocking, WARMUP_BLOCKING, 1, 0, 0, false);
        else if (k == 3)
          o[3][r] = axon_run("row 4d: axon, spinning functions, AX_RT_NO_PIN", FN_SPIN,
                             BLOCK_DEPTH, z.blocking, WARMUP_BLOCKING, 1, 0, AX_RT_NO_PIN,
                             false);
        else
          o[4][r] = uv_measure("row 4e: libuv, spinning functions", FN_SPIN, BLOCK_DEPTH,
                               z.blocking, WARMUP_BLOCKING);
        bench_series_add(&s[k], o[k][r].ns);
      }
    }
    double v[5] = {0};
    static const char *const ids[5] = {"4a", "4b", "4c", "4d", "4e"};
    static const char *const names[5] = {
        "blocking, 32 outstanding: axon, nanosleep 100 us",
        "blocking, 32 outstanding: libuv, nanosleep 100 us",
        "blocking, 32 outstanding: axon, 20 us spin",
        "blocking, 32 outstanding: axon, 20 us spin, AX_RT_NO_PIN",
        "blocking, 32 outstanding: libuv, 20 us spin",
    };
    for (int k = 0; k < 5; k++) {
      if (s[k].n == 0) {
        row_na(ids[k], names[k]);
        continue;
      }
      blocking_context(ctx, sizeof ctx, k < 2 ? FN_SLEEP : FN_SPIN, o[k], (int)runs,
                       z.blocking);
      v[k] = row_series(ids[k], names[k], &s[k], 0, "ns/result", ctx);
    }
    row_ratio("4r", "blocking ratio, sleep: axon / libuv (4a / 4b)", v[0], v[1], HAVE_UV, "");
    row_ratio("4s", "blocking ratio, spin: axon / libuv (4c / 4e)", v[2], v[4], HAVE_UV, "");
    row_ratio("4t", "blocking ratio, spin: axon NO_PIN / libuv (4d / 4e)", v[3], v[4], HAVE_UV,
              "");
  }

  if (want[4]) { /* 5: two cores */
    bench_series_t s = {.n = 0};
    for (long r = 0; r < runs; r++) {
      o[0][r] = axon_run("row 5a: axon, 2 cores, 16 outstanding each", FN_TRIVIAL, 32,
                         z.results, WARMUP_TRIVIAL, 2, 0, 0, false);
      bench_series_add(&s, o[0][r].ns);
    }
    double ax = bench_median(s.v, s.n);
    snprintf(ctx, sizeof ctx, "%.2f M results/s; %llu/%llu ok; threads %u", 1000 / ax,
             (unsigned long long)z.results, (unsigned long long)z.results, o[0][0].threads);
    ax = row_series("5a", "throughput, 2 cores x 16 outstanding: axon actors", &s, 0,
                    "ns/result", ctx);
    row_ratio("5r", "throughput ratio: axon 2 cores / libuv one loop, 32 (5a / 2c)", ax,
              uv_tp32, HAVE_UV, "");
  }

  /* Where the pool's threads may run: they are made by the core thread
   * that first needs them. */
  int64_t pinned = axon_pool_cpus(0), unpinned = axon_pool_cpus(AX_RT_NO_PIN);
  printf("\naffinity: an axon pool thread may run on %lld of %d CPUs (pinned cores, the "
         "default), %lld with AX_RT_NO_PIN\n",
         (long long)pinned, ncpu, (long long)unpinned);
  printf("checks: every result arrived once, with its id and value: %llu axon results, %llu "
         "libuv results; the pool's counters agreed every time\n",
         (unsigned long long)checked_axon, (unsigned long long)checked_uv);
  if (!HAVE_UV)
    printf("libuv not found at build time: its rows and the ratios are n/a\n");
  return 0;
}
