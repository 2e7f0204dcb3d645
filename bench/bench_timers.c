/* bench_timers: the cost of starting, stopping and firing axon timers, with libuv's alongside.
 *
 * Usage: bench_timers [--quick] [-r REPS] [N [HEAP]]
 *   N       timers (and operations) per measurement; default 1000000,
 *           50000 with --quick
 *   HEAP    timers already in the heap for cases (c) and (d); default
 *           100000, 10000 with --quick
 *   -r REPS measurements per case; the median is reported (default 5)
 *   --quick small sizes, so a CI smoke run finishes in about a second
 *
 * Cases (one "op" is what the ns/op column divides by):
 *   (a) start+cancel  start N timers with random timeouts (1 ms .. 1000 s),
 *                     then stop all N in a random order; op = start + stop
 *   (b) start+fire    start N timers due within a 10 ms window and run the
 *                     loop until every one has fired; op = start + fire
 *   (c) start+stop    with HEAP timers (random 1 s .. 60 s) already in the
 *                     heap, start one more timer with a random timeout from
 *                     the same range and stop it at once, N times
 *   (d) reset         with HEAP timers in the heap, restart a randomly chosen
 *                     one of them with a 30 s timeout, N times (a server
 *                     pushing back a connection's idle timeout)
 *
 * Method.  Time is the CPU time of this thread (CLOCK_THREAD_CPUTIME_ID),
 * so time the scheduler gives to other processes on a noisy machine is not
 * counted, and neither is case (b)'s sleep until the first deadline.  Both
 * libraries get the same pseudo-random sequence (timeouts are drawn in
 * milliseconds, libuv's unit, and given to axon in nanoseconds).  Each case
 * is measured REPS times, alternating axon and libuv, and the median is
 * reported with the axon/libuv ratio.  Every measurement checks that the
 * work happened (all N timers active after the starts, none after the
 * stops, exactly N callbacks in (b), none elsewhere).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/loop.h"
#include "bench_util.h"

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif

#define MS_NS ((int64_t)1000000)
#define FIRE_WINDOW_MS 10
#define RESET_TIMEOUT_MS 30000
#define MAX_REPS 101

/* The workload, drawn once and shared by both libraries. */
typedef struct workload {
  long n;                /* timers / operations per measurement */
  long heap;             /* background timers for (c) and (d) */
  uint64_t *cancel_ms;   /* (a): n timeouts */
  uint32_t *cancel_perm; /* (a): the order of the stops, a permutation of n */
  uint64_t *fire_ms;     /* (b): n timeouts within the window */
  uint64_t *heap_ms;     /* (c), (d): heap background timeouts */
  uint64_t *probe_ms;    /* (c): n timeouts */
  uint32_t *reset_idx;   /* (d): n indices into the background timers */
} workload_t;

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (p == NULL)
    bench_die("out of memory (%zu x %zu bytes)", n, size);
  return p;
}

static void workload_make(workload_t *w, long n, long heap) {
  bench_rng_t rng = {.state = 0x6178306e74696d65u};
  size_t un = (size_t)n;
  w->n = n;
  w->heap = heap;
  w->cancel_ms = xcalloc(un, sizeof *w->cancel_ms);
  w->cancel_perm = xcalloc(un, sizeof *w->cancel_perm);
  w->fire_ms = xcalloc(un, sizeof *w->fire_ms);
  w->heap_ms = xcalloc((size_t)heap, sizeof *w->heap_ms);
  w->probe_ms = xcalloc(un, sizeof *w->probe_ms);
  w->reset_idx = xcalloc(un, sizeof *w->reset_idx);
  for (long i = 0; i < n; i++) {
    w->cancel_ms[i] = bench_rng_range(&rng, 1, 1000000);
    w->cancel_perm[i] = (uint32_t)i;
    w->fire_ms[i] = bench_rng_range(&rng, 0, FIRE_WINDOW_MS - 1);
    w->probe_ms[i] = bench_rng_range(&rng, 1000, 60000);
    w->reset_idx[i] = (uint32_t)bench_rng_range(&rng, 0, (uint64_t)heap - 1);
  }
  for (long i = n - 1; i > 0; i--) { /* Fisher-Yates */
    long j = (long)bench_rng_range(&rng, 0, (uint64_t)i);
    uint32_t t = w->cancel_perm[i];
    w->cancel_perm[i] = w->cancel_perm[j];
    w->cancel_perm[j] = t;
  }
  for (long i = 0; i < heap; i++)
    w->heap_ms[i] = bench_rng_range(&rng, 1000, 60000);
}

static void workload_free(workload_t *w) {
  free(w->cancel_ms);
  free(w->cancel_perm);
  free(w->fire_ms);
  free(w->heap_ms);
  free(w->probe_ms);
  free(w->reset_idx);
}

static int64_t cpu_now(void) { return bench_clock_ns(CLOCK_THREAD_CPUTIME_ID); }

/* ------------------------------------------------------------------------ */
/* axon                                                                      */

typedef struct ax_side {
  ax_loop_t *loop;
  ax_timer_t *timers; /* n: cases (a) and (b) */
  ax_timer_t *heap;   /* heap: the background of (c) and (d) */
  ax_timer_t probe;   /* (c) */
} ax_side_t;

static long ax_fired;

static void ax_count_cb(ax_timer_t *timer) {
  /* A timer must never fire before its deadline. */
  if (ax_loop_now(timer->loop) < timer->deadline)
    bench_die("axon: a timer fired %lld ns early",
              (long long)(timer->deadline - ax_loop_now(timer->loop)));
  ax_fired++;
}

static void ax_never_cb(ax_timer_t *timer) {
  (void)timer;
  bench_die("axon: a timer that is always stopped in time fired");
}

static void ax_side_init(ax_side_t *s, const workload_t *w) {
  BENCH_AX(ax_loop_new(NULL, &s->loop));
  s->timers = xcalloc((size_t)w->n, sizeof *s->timers);
  s->heap = xcalloc((size_t)w->heap, sizeof *s->heap);
  for (long i = 0; i < w->n; i++)
    BENCH_AX(ax_timer_init(s->loop, &s->timers[i], ax_count_cb));
  for (long i = 0; i < w->heap; i++)
    BENCH_AX(ax_timer_init(s->loop, &s->heap[i], ax_never_cb));
  BENCH_AX(ax_timer_init(s->loop, &s->probe, ax_never_cb));
}

static void ax_side_close(ax_side_t *s) {
  BENCH_AX(ax_loop_close(s->loop, 0)); /* 0: every timer must be stopped by now */
  free(s->timers);
  free(s->heap);
}

static void ax_expect_active(const ax_side_t *s, long want, const char *where) {
  if ((long)ax_loop_active(s->loop) != want)
    bench_die("axon %s: %u active watchers, expected %ld", where, ax_loop_active(s->loop), want);
}

/* (a): returns the CPU ns for n starts and n stops. */
static int64_t ax_start_cancel(ax_side_t *s, const workload_t *w) {
  ax_fired = 0;
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++)
    BENCH_AX(ax_timer_start(&s->timers[i], (int64_t)w->cancel_ms[i] * MS_NS, 0));
  ax_expect_active(s, w->n, "start+cancel");
  for (long i = 0; i < w->n; i++)
    BENCH_AX(ax_timer_stop(&s->timers[w->cancel_perm[i]]));
  int64_t t1 = cpu_now();
  ax_expect_active(s, 0, "start+cancel");
  if (ax_fired != 0)
    bench_die("axon start+cancel: %ld timers fired", ax_fired);
  return t1 - t0;
}

/* (b): the CPU ns for n starts plus the loop run that fires them all. */
static int64_t ax_start_fire(ax_side_t *s, const workload_t *w) {
  ax_fired = 0;
  ax_loop_update_time(s->loop);
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++)
    BENCH_AX(ax_timer_start(&s->timers[i], (int64_t)w->fire_ms[i] * MS_NS, 0));
  int rc = ax_loop_run(s->loop, AX_FOREVER);
  int64_t t1 = cpu_now();
  if (rc != AX_RUN_IDLE)
    bench_die("axon start+fire: ax_loop_run returned %d (%s)", rc, rc < 0 ? ax_strerror(rc) : "");
  if (ax_fired != w->n)
    bench_die("axon start+fire: %ld of %ld timers fired", ax_fired, w->n);
  ax_expect_active(s, 0, "start+fire");
  return t1 - t0;
}

static void ax_heap_fill(ax_side_t *s, const workload_t *w) {
  ax_loop_update_time(s->loop);
  for (long i = 0; i < w->heap; i++)
    BENCH_AX(ax_timer_start(&s->heap[i], (int64_t)w->heap_ms[i] * MS_NS, 0));
  ax_expect_active(s, w->heap, "heap fill");
}

static void ax_heap_empty(ax_side_t *s, const workload_t *w) {
  for (long i = 0; i < w->heap; i++)
    BENCH_AX(ax_timer_stop(&s->heap[i]));
  ax_expect_active(s, 0, "heap empty");
}

/* (c): n start-then-stop pairs of one timer over a filled heap. */
static int64_t ax_start_stop(ax_side_t *s, const workload_t *w) {
  ax_heap_fill(s, w);
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++) {
    BENCH_AX(ax_timer_start(&s->probe, (int64_t)w->probe_ms[i] * MS_NS, 0));
    BENCH_AX(ax_timer_stop(&s->probe));
  }
  int64_t t1 = cpu_now();
  ax_heap_empty(s, w);
  return t1 - t0;
}

/* (d): n restarts of randomly chosen timers of a filled heap. */
static int64_t ax_reset(ax_side_t *s, const workload_t *w) {
  ax_heap_fill(s, w);
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++)
    BENCH_AX(ax_timer_restart(&s->heap[w->reset_idx[i]], RESET_TIMEOUT_MS * MS_NS, 0));
  int64_t t1 = cpu_now();
  ax_expect_active(s, w->heap, "reset");
  ax_heap_empty(s, w);
  return t1 - t0;
}

/* ------------------------------------------------------------------------ */
/* libuv                                                                     */

#ifdef AXON_HAVE_LIBUV
typedef struct uv_side {
  uv_loop_t loop;
  uv_timer_t *timers;
  uv_timer_t *heap;
  uv_timer_t probe;
} uv_side_t;

static long uv_fired;

static void uv_count_cb(uv_timer_t *timer) {
  (void)timer;
  uv_fired++;
}

static void uv_never_cb(uv_timer_t *timer) {
  (void)timer;
  bench_die("libuv: a timer that is always stopped in time fired");
}

static void uv_side_init(uv_side_t *s, const workload_t *w) {
  BENCH_UV(uv_loop_init(&s->loop));
  s->timers = xcalloc((size_t)w->n, sizeof *s->timers);
  s->heap = xcalloc((size_t)w->heap, sizeof *s->heap);
  for (long i = 0; i < w->n; i++)
    BENCH_UV(uv_timer_init(&s->loop, &s->timers[i]));
  for (long i = 0; i < w->heap; i++)
    BENCH_UV(uv_timer_init(&s->loop, &s->heap[i]));
  BENCH_UV(uv_timer_init(&s->loop, &s->probe));
}

static void uv_side_close(uv_side_t *s, const workload_t *w) {
  for (long i = 0; i < w->n; i++)
    uv_close((uv_handle_t *)&s->timers[i], NULL);
  for (long i = 0; i < w->heap; i++)
    uv_close((uv_handle_t *)&s->heap[i], NULL);
  uv_close((uv_handle_t *)&s->probe, NULL);
  BENCH_UV(uv_run(&s->loop, UV_RUN_DEFAULT)); /* runs the closes */
  BENCH_UV(uv_loop_close(&s->loop));
  free(s->timers);
  free(s->heap);
}

static void uv_expect_active(const uv_side_t *s, long want, const char *where) {
  if ((long)s->loop.active_handles != want)
    bench_die("libuv %s: %u active handles, expected %ld", where, s->loop.active_handles, want);
}

static int64_t uv_start_cancel(uv_side_t *s, const workload_t *w) {
  uv_fired = 0;
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++)
    BENCH_UV(uv_timer_start(&s->timers[i], uv_count_cb, w->cancel_ms[i], 0));
  uv_expect_active(s, w->n, "start+cancel");
  for (long i = 0; i < w->n; i++)
    BENCH_UV(uv_timer_stop(&s->timers[w->cancel_perm[i]]));
  int64_t t1 = cpu_now();
  uv_expect_active(s, 0, "start+cancel");
  if (uv_fired != 0)
    bench_die("libuv start+cancel: %ld timers fired", uv_fired);
  return t1 - t0;
}

static int64_t uv_start_fire(uv_side_t *s, const workload_t *w) {
  uv_fired = 0;
  uv_update_time(&s->loop);
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++)
    BENCH_UV(uv_timer_start(&s->timers[i], uv_count_cb, w->fire_ms[i], 0));
  int rc = uv_run(&s->loop, UV_RUN_DEFAULT);
  int64_t t1 = cpu_now();
  if (rc != 0)
    bench_die("libuv start+fire: uv_run returned %d", rc);
  if (uv_fired != w->n)
    bench_die("libuv start+fire: %ld of %ld timers fired", uv_fired, w->n);
  uv_expect_active(s, 0, "start+fire");
  return t1 - t0;
}

static void uv_heap_fill(uv_side_t *s, const workload_t *w) {
  uv_update_time(&s->loop);
  for (long i = 0; i < w->heap; i++)
    BENCH_UV(uv_timer_start(&s->heap[i], uv_never_cb, w->heap_ms[i], 0));
  uv_expect_active(s, w->heap, "heap fill");
}

static void uv_heap_empty(uv_side_t *s, const workload_t *w) {
  for (long i = 0; i < w->heap; i++)
    BENCH_UV(uv_timer_stop(&s->heap[i]));
  uv_expect_active(s, 0, "heap empty");
}

static int64_t uv_start_stop(uv_side_t *s, const workload_t *w) {
  uv_heap_fill(s, w);
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++) {
    BENCH_UV(uv_timer_start(&s->probe, uv_never_cb, w->probe_ms[i], 0));
    BENCH_UV(uv_timer_stop(&s->probe));
  }
  int64_t t1 = cpu_now();
  uv_heap_empty(s, w);
  return t1 - t0;
}

/* uv_timer_start() on an active timer stops it first: libuv's restart. */
static int64_t uv_reset(uv_side_t *s, const workload_t *w) {
  uv_heap_fill(s, w);
  int64_t t0 = cpu_now();
  for (long i = 0; i < w->n; i++)
    BENCH_UV(uv_timer_start(&s->heap[w->reset_idx[i]], uv_never_cb, RESET_TIMEOUT_MS, 0));
  int64_t t1 = cpu_now();
  uv_expect_active(s, w->heap, "reset");
  uv_heap_empty(s, w);
  return t1 - t0;
}
#endif /* AXON_HAVE_LIBUV */

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

typedef struct bench_case {
  const char *name;
  int64_t (*ax_fn)(ax_side_t *, const workload_t *);
#ifdef AXON_HAVE_LIBUV
  int64_t (*uv_fn)(uv_side_t *, const workload_t *);
#endif
  double target; /* the axon/libuv ratio to stay under, or 0 for none */
} bench_case_t;

static void usage(void) {
  fputs("usage: bench_timers [--quick] [-r REPS] [N [HEAP]]\n", stderr);
  exit(2);
}

int main(int argc, char **argv) {
  bool quick = false;
  long n = 0, heap = 0, reps = 5;
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
      reps = bench_parse_count(argv[++i], "-r");
    } else if (argv[i][0] == '-') {
      usage();
    } else if (npos == 0) {
      n = bench_parse_count(argv[i], "N");
      npos++;
    } else if (npos == 1) {
      heap = bench_parse_count(argv[i], "HEAP");
      npos++;
    } else {
      usage();
    }
  }
  if (n == 0)
    n = quick ? 50000 : 1000000;
  if (heap == 0)
    heap = quick ? 10000 : 100000;
  if (reps > MAX_REPS || n > UINT32_MAX || heap > UINT32_MAX)
    bench_die("too large: at most %d reps and 2^32 timers", MAX_REPS);

  workload_t w;
  workload_make(&w, n, heap);
  ax_side_t ax;
  ax_side_init(&ax, &w);
#ifdef AXON_HAVE_LIBUV
  uv_side_t uv;
  uv_side_init(&uv, &w);
#endif

  const bench_case_t cases[] = {
#ifdef AXON_HAVE_LIBUV
#define CASE(name, ax_fn, uv_fn, target) {name, ax_fn, uv_fn, target}
#else
#define CASE(name, ax_fn, uv_fn, target) {name, ax_fn, target}
#endif
      CASE("(a) start+cancel", ax_start_cancel, uv_start_cancel, 0.5),
      CASE("(b) start+fire", ax_start_fire, uv_start_fire, 0),
      CASE("(c) start+stop on heap", ax_start_stop, uv_start_stop, 0),
      CASE("(d) reset on heap", ax_reset, uv_reset, 0),
#undef CASE
  };

  printf("bench_timers: N=%ld, heap=%ld, median of %ld runs, thread CPU time%s\n", n, heap, reps,
         quick ? " (--quick)" : "");
  printf("axon %s (backend %s)", ax_version_string(), ax_loop_backend(ax.loop));
#ifdef AXON_HAVE_LIBUV
  printf(", libuv %s\n", uv_version_string());
#else
  printf("; libuv not found at build time: no libuv columns\n");
#endif
  printf("(a) start N random timeouts then stop all in random order; (b) start N within a %d ms\n"
         "window and run until all fired; (c) start+stop one timer, heap of %ld; (d) restart a\n"
         "random timer of a heap of %ld with a %d s timeout.  op = (a) start+stop, (b) start+fire,\n"
         "(c) start+stop, (d) restart.  spread = (max-min)/median over the runs.\n\n",
         FIRE_WINDOW_MS, heap, heap, RESET_TIMEOUT_MS / 1000);
  printf("%-24s %12s %7s %12s %7s %11s %s\n", "case", "axon ns/op", "spread", "libuv ns/op",
         "spread", "axon/libuv", "target");

  bool missed = false;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    double ax_ns[MAX_REPS];
#ifdef AXON_HAVE_LIBUV
    double uv_ns[MAX_REPS];
#endif
    for (long r = 0; r < reps; r++) { /* alternate, so drift hits both alike */
      ax_ns[r] = (double)cases[c].ax_fn(&ax, &w) / (double)n;
#ifdef AXON_HAVE_LIBUV
      uv_ns[r] = (double)cases[c].uv_fn(&uv, &w) / (double)n;
#endif
    }
    double ax_med = bench_median(ax_ns, (int)reps);
    double ax_spread = ax_med > 0 ? (ax_ns[reps - 1] - ax_ns[0]) / ax_med * 100 : 0;
    printf("%-24s %12.1f %6.0f%%", cases[c].name, ax_med, ax_spread);
#ifdef AXON_HAVE_LIBUV
    double uv_med = bench_median(uv_ns, (int)reps);
    double uv_spread = uv_med > 0 ? (uv_ns[reps - 1] - uv_ns[0]) / uv_med * 100 : 0;
    double ratio = ax_med / uv_med;
    printf(" %12.1f %6.0f%% %11.2f", uv_med, uv_spread, ratio);
    if (cases[c].target > 0) {
      bool ok = ratio <= cases[c].target;
      missed |= !ok;
      printf(" <= %.2f %s", cases[c].target, ok ? "met" : "MISSED");
    }
#else
    printf(" %12s %7s %11s", "n/a", "n/a", "n/a");
#endif
    printf("\n");
    fflush(stdout);
  }
  if (missed)
    printf("\naxon missed a target (see the target column)\n");

  ax_side_close(&ax);
#ifdef AXON_HAVE_LIBUV
  uv_side_close(&uv, &w);
#endif
  workload_free(&w);
  return 0;
}
