/* Helpers shared by the benchmarks: error exits, clocks, medians, a PRNG, a watchdog, children. */
#ifndef AXON_BENCH_UTIL_H
#define AXON_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "axon/common.h"

/* Prints "bench: <message>" to stderr and exits with status 1.  Benchmarks
 * have no error recovery: a failed call means the numbers are meaningless. */
__attribute__((format(printf, 1, 2), noreturn)) static inline void bench_die(const char *fmt,
                                                                              ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

/* Checks a system call that returns -1 and sets errno on failure. */
#define BENCH_SYS(expr)                                                                  \
  do {                                                                                   \
    if ((expr) < 0)                                                                      \
      bench_die("%s:%d: %s: %s", __FILE__, __LINE__, #expr, strerror(errno));            \
  } while (0)

/* Checks an axon call (>= 0 success, -errno failure). */
#define BENCH_AX(expr)                                                                   \
  do {                                                                                   \
    int bench_rc_ = (expr);                                                              \
    if (bench_rc_ < 0)                                                                   \
      bench_die("%s:%d: %s: %s", __FILE__, __LINE__, #expr, ax_strerror(bench_rc_));     \
  } while (0)

/* Checks a libuv call (0 success, negative UV_E* failure). */
#define BENCH_UV(expr)                                                                   \
  do {                                                                                   \
    int bench_rc_ = (expr);                                                              \
    if (bench_rc_ < 0)                                                                   \
      bench_die("%s:%d: %s: %s", __FILE__, __LINE__, #expr, uv_strerror(bench_rc_));     \
  } while (0)

/* Reads a clock in nanoseconds. */
static inline int64_t bench_clock_ns(clockid_t clock) {
  struct timespec ts;
  if (clock_gettime(clock, &ts) < 0)
    bench_die("clock_gettime: %s", strerror(errno));
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The median of n values (the mean of the middle two when n is even); the
 * array is sorted in place. */
static inline double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* splitmix64: a small, fast, deterministic PRNG, so that every library is
 * given exactly the same sequence of timeouts and choices. */
typedef struct bench_rng {
  uint64_t state;
} bench_rng_t;

static inline uint64_t bench_rng_next(bench_rng_t *r) {
  uint64_t z = (r->state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

/* A uniform value in [lo, hi] (the tiny modulo bias does not matter here). */
static inline uint64_t bench_rng_range(bench_rng_t *r, uint64_t lo, uint64_t hi) {
  return lo + bench_rng_next(r) % (hi - lo + 1);
}

/* Parses a positive integer argument or exits. */
static inline long bench_parse_count(const char *s, const char *what) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v <= 0)
    bench_die("%s: not a positive integer: '%s'", what, s);
  return v;
}

/* Parses a comma-separated list of positive integers into out (at most
 * max values) or exits.  Returns how many there were. */
static inline int bench_parse_list(const char *s, long *out, int max, const char *what) {
  char *copy = strdup(s);
  if (copy == NULL)
    bench_die("out of memory");
  int n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    if (n == max)
      bench_die("%s: at most %d values", what, max);
    out[n++] = bench_parse_count(tok, what);
  }
  free(copy);
  if (n == 0)
    bench_die("%s: empty list", what);
  return n;
}

/* Parses a comma-separated list of names among names[0..n-1] (e.g. "-i
 * epoll,axon") and clears use[k] for every name not listed, or exits on an
 * unknown name. */
static inline void bench_parse_names(const char *s, const char *const *names, bool *use, int n,
                                     const char *what) {
  char *copy = strdup(s), *save = NULL;
  bool *want = calloc((size_t)n, sizeof *want);
  if (copy == NULL || want == NULL)
    bench_die("out of memory");
  for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < n && strcmp(tok, names[k]) != 0)
      k++;
    if (k == n)
      bench_die("%s: unknown name '%s'", what, tok);
    want[k] = true;
  }
  for (int k = 0; k < n; k++)
    use[k] = use[k] && want[k];
  free(want);
  free(copy);
}

/* Prints num/den in a column of `width` characters, or "-" when there is
 * nothing to compare with. */
static inline void bench_print_ratio(double num, double den, bool have, int width) {
  if (have && den > 0)
    printf(" %*.3f", width, num / den);
  else
    printf(" %*s", width, "-");
}

/* ------------------------------------------------------------------------ */
/* A table of medians (bench_actors, bench_fiber): one row per measurement,  */
/* its spread, its target and met/MISSED, every run under it with -v.        */

#define BENCH_MAX_RUNS 101

typedef struct bench_series {
  double v[BENCH_MAX_RUNS];
  int n;
} bench_series_t;

typedef struct bench_table {
  int id_w, name_w, unit_w; /* column widths */
  bool verbose;             /* -v: print every run under its row */
  bool missed;              /* some row missed its target */
  char runs[1024];          /* the runs of the last median, for the next row */
} bench_table_t;

static inline void bench_series_add(bench_series_t *s, double v) {
  if (s->n < BENCH_MAX_RUNS)
    s->v[s->n++] = v;
}

/* The series' median (it sorts the runs) and its spread: (max - min) /
 * median in percent.  With -v the runs are kept for the next row. */
static inline double bench_series_median(bench_table_t *t, bench_series_t *s, double *spread) {
  double med = bench_median(s->v, s->n);
  *spread = med > 0 ? (s->v[s->n - 1] - s->v[0]) / med * 100 : 0;
  size_t off = 0;
  t->runs[0] = '\0';
  for (int i = 0; t->verbose && i < s->n && off < sizeof t->runs; i++)
    off += (size_t)snprintf(t->runs + off, sizeof t->runs - off, " %.6g", s->v[i]);
  return med;
}

/* One line of the table, every column already a string. */
static inline void bench_table_line(const bench_table_t *t, const char *id, const char *name,
                                    const char *val, const char *unit, const char *spread,
                                    const char *target, const char *status, const char *context) {
  printf("%-*s %-*s %10s %-*s %6s %-8s %-7s %s\n", t->id_w, id, t->name_w, name, val, t->unit_w,
         unit, spread, target, status, context);
  fflush(stdout);
}

/* One row: value with prec decimals; target <= 0: none (else met when
 * value <= target); spread < 0: not applicable. */
static inline void bench_row(bench_table_t *t, const char *id, const char *name, double value,
                             int prec, const char *unit, double spread, double target,
                             const char *context) {
  char val[32], spr[16], tgt[24];
  const char *status = "-";
  snprintf(val, sizeof val, "%.*f", prec, value);
  if (spread >= 0)
    snprintf(spr, sizeof spr, "%.0f%%", spread);
  else
    snprintf(spr, sizeof spr, "-");
  if (target > 0) {
    snprintf(tgt, sizeof tgt, "<= %g", target);
    status = value <= target ? "met" : "MISSED";
    t->missed |= value > target;
  } else {
    snprintf(tgt, sizeof tgt, "-");
  }
  bench_table_line(t, id, name, val, unit, spr, tgt, status, context);
  if (t->runs[0] != '\0')
    printf("      runs, sorted:%s\n", t->runs);
  t->runs[0] = '\0';
  fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* A watchdog: a phase that hangs ends the program with its name.            */

static char bench_watchdog_what[256];
static unsigned bench_watchdog_s;

static inline void bench_watchdog_fire(int sig) {
  (void)sig;
  static const char head[] = "bench: watchdog: no progress for a long time in: ";
  ssize_t rc = write(STDERR_FILENO, head, sizeof head - 1);
  rc = write(STDERR_FILENO, bench_watchdog_what, strlen(bench_watchdog_what));
  rc = write(STDERR_FILENO, "\n", 1);
  (void)rc;
  _exit(1);
}

/* Names the phase about to run and gives it the watchdog's seconds. */
__attribute__((format(printf, 1, 2))) static inline void bench_watchdog_arm(const char *fmt,
                                                                             ...) {
  alarm(0);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(bench_watchdog_what, sizeof bench_watchdog_what, fmt, ap);
  va_end(ap);
  alarm(bench_watchdog_s);
}

/* Installs the watchdog (SIGALRM): each phase gets `seconds`. */
static inline void bench_watchdog_init(unsigned seconds) {
  bench_watchdog_s = seconds;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = bench_watchdog_fire;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGALRM, &sa, NULL) < 0)
    bench_die("sigaction: %s", strerror(errno));
}

/* ------------------------------------------------------------------------ */
/* A child process whose output is the result (bench_fiber's memory and Go   */
/* rows, bench_savina's Go baseline).                                        */

extern char **environ;

/* Waits for the child pid and dies unless it exited with status 0; `what`
 * names it in the message. */
static inline void bench_reap(pid_t pid, const char *what) {
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      bench_die("waitpid: %s", strerror(errno));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    bench_die("%s: the child process failed (%s %d; its messages are above)", what,
              WIFEXITED(status) ? "exit status" : "signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* The Go baseline to run: `opt` (a -g option; NULL: none given), else
 * `built` (found at build time; NULL or "": none).  NULL when there is
 * none or it is not executable, with *why saying which. */
static inline const char *bench_go_find(const char *opt, const char *built, const char **why) {
  const char *p = opt != NULL ? opt : built;
  if (p == NULL || p[0] == '\0') {
    *why = "Go not found at build time";
    return NULL;
  }
  if (access(p, X_OK) != 0) {
    static char msg[160];
    snprintf(msg, sizeof msg, "no Go baseline at %.120s", p);
    *why = msg;
    return NULL;
  }
  return p;
}

/* Runs the program at path with argv and the environment envp (NULL: this
 * process's), and its stdout into buf (NUL-terminated, at most cap - 1
 * bytes); its stderr is ours.  Dies unless it exits with status 0. */
static inline void bench_run_capture(const char *path, char *const argv[], char *const envp[],
                                     char *buf, size_t cap, const char *what) {
  int fds[2];
  BENCH_SYS(pipe2(fds, O_CLOEXEC));
  posix_spawn_file_actions_t fa;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc == 0)
    rc = posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  if (rc != 0)
    bench_die("posix_spawn_file_actions: %s", strerror(rc));
  pid_t pid;
  fflush(stdout);
  rc = posix_spawn(&pid, path, &fa, NULL, argv, envp != NULL ? envp : environ);
  if (rc != 0)
    bench_die("posix_spawn(%s): %s", path, strerror(rc));
  posix_spawn_file_actions_destroy(&fa);
  BENCH_SYS(close(fds[1]));
  size_t len = 0;
  for (;;) {
    ssize_t k = read(fds[0], buf + len, cap - 1 - len);
    if (k < 0 && errno == EINTR)
      continue;
    BENCH_SYS(k);
    len += (size_t)k;
    if (k == 0 || len == cap - 1)
      break;
  }
  buf[len] = '\0';
  BENCH_SYS(close(fds[0]));
  bench_reap(pid, what);
}

#endif /* AXON_BENCH_UTIL_H */
