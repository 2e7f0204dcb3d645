/* Spawn + exit round trips of /bin/true: axon's ax_process_spawn against libuv's uv_spawn. */
/*
 * Each side runs `n` children of /bin/true, keeping `j` of them alive at
 * once, and a child counts when its end has been seen: the exit message
 * (axon's AX_MSG_EXIT, libuv's exit callback) and, with a stdout pipe,
 * the end of file on it too; the handle is then closed and the next child
 * spawned.  Two kinds of stdio:
 *
 *   null   fds 0, 1 and 2 on /dev/null (axon AX_STDIO_NULL, libuv UV_IGNORE)
 *   pipe   stdout a pipe read to its end (axon AX_STDIO_PIPE, libuv
 *          UV_CREATE_PIPE), the others /dev/null
 *
 * axon runs one core (a handler actor drives the children; the main thread
 * waits on a port), libuv its default loop on the main thread.  The sides
 * take turns, run after run, in one process: the runtime is made with
 * AX_RT_NO_SIGNALS, so the main thread keeps SIGCHLD for libuv's handler,
 * and neither side ever waits for a child of the other (axon waits on its
 * pidfds, libuv on its own pids).  A third column is the machine's floor:
 * the main thread alone calling posix_spawn and waitpid (stdio as for the
 * others, a pipe drained with blocking reads), with no event loop at all.
 * The table gives microseconds per child (the run's wall time over n),
 * medians of -r runs, and axon's time over libuv's and over the floor.  No figure is asserted; --quick runs a few children and checks
 * that every one of them exited 0 on both sides.
 *
 *   bench_process [--quick] [-n children] [-j in-flight] [-r runs]
 */
#include <axon.h>

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif

#include "bench_util.h"

#define PROGRAM "/bin/true"
enum { MAX_FLIGHT = 64 };
enum { MSG_GO = AX_MSG_USER, MSG_DONE };

static struct {
  long n, runs, inflight;
  bool quick;
} cfg = {2000, 5, 16, false};

/* What one run does. */
typedef struct job {
  bool pipe;
  long n, inflight;
} job_t;

/* ------------------------------------------------------------------------ */
/* axon                                                                      */

typedef struct axon_child {
  ax_process_t *p; /* NULL: a free slot */
  ax_stream_t *out;
  bool exited, eof;
} axon_child_t;

typedef struct driver {
  ax_ref_t port;
  job_t job;
  long started, finished, bad;
  axon_child_t kids[MAX_FLIGHT];
} driver_t;

static void axon_start(ax_actor_t *self, driver_t *d, axon_child_t *k) {
  static const char *const argv[] = {PROGRAM, NULL};
  ax_process_opts_t o = {.in = AX_STDIO_NULL, .out = d->job.pipe ? AX_STDIO_PIPE : AX_STDIO_NULL,
                         .err = AX_STDIO_NULL};
  BENCH_AX(ax_process_spawn(self, argv, &o, &k->p));
  k->out = ax_process_stream(k->p, 1);
  k->exited = false;
  k->eof = !d->job.pipe;
  d->started++;
}

/* A child whose exit (and end of output) came: close it, start the next. */
static void axon_settle(ax_actor_t *self, driver_t *d, axon_child_t *k) {
  if (!k->exited || !k->eof)
    return;
  BENCH_AX(ax_process_close(k->p));
  k->p = NULL;
  k->out = NULL;
  d->finished++;
  if (d->started < d->job.n)
    axon_start(self, d, k);
  else if (d->finished == d->job.n)
    BENCH_AX(ax_send(d->port, MSG_DONE, &d->bad, sizeof d->bad));
}

static int driver_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  driver_t *d = ax_state(self);
  if (m->type == MSG_GO) {
    memcpy(&d->job, m->data, sizeof d->job);
    d->started = d->finished = d->bad = 0;
    for (long i = 0; i < d->job.inflight && i < d->job.n; i++)
      axon_start(self, d, &d->kids[i]);
  } else if (m->type == AX_MSG_EXIT) {
    const ax_process_exit_t *x = m->data;
    for (int i = 0; i < MAX_FLIGHT; i++)
      if (d->kids[i].p == x->process) {
        d->kids[i].exited = true;
        d->bad += x->code != 0;
        axon_settle(self, d, &d->kids[i]);
        break;
      }
  } else if (m->type == AX_MSG_CLOSED) {
    const ax_stream_ev_t *e = m->data; /* the stream is freed once this returns */
    for (int i = 0; i < MAX_FLIGHT; i++)
      if (d->kids[i].p != NULL && d->kids[i].out == e->stream) {
        d->kids[i].eof = true;
        d->kids[i].out = NULL;
        axon_settle(self, d, &d->kids[i]);
        break;
      }
  }
  return 0; /* AX_MSG_DATA: /bin/true writes nothing */
}

typedef struct axon_side {
  ax_rt_t *rt;
  ax_port_t *port;
  ax_ref_t driver;
  driver_t state;
} axon_side_t;

static void axon_side_open(axon_side_t *s) {
  ax_rt_opts_t o = {.cores = 1, .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  BENCH_AX(ax_rt_new(&o, &s->rt));
  BENCH_AX(ax_port_new(s->rt, &s->port));
  memset(&s->state, 0, sizeof s->state);
  s->state.port = ax_port_ref(s->port);
  BENCH_AX(ax_spawn(s->rt, driver_behaviour, &s->state, NULL, &s->driver));
  BENCH_AX(ax_rt_start(s->rt));
}

static void axon_side_close(axon_side_t *s) {
  ax_rt_stop(s->rt);
  BENCH_AX(ax_rt_join(s->rt));
  BENCH_AX(ax_port_close(s->port));
  BENCH_AX(ax_rt_free(s->rt));
}

/* One run; returns microseconds per child. */
static double axon_run(axon_side_t *s, const job_t *job) {
  int64_t t0 = ax_now();
  BENCH_AX(ax_send(s->driver, MSG_GO, job, sizeof *job));
  ax_msg_t m;
  BENCH_AX(ax_port_recv(s->port, ax_now() + 120 * AX_NSEC_PER_SEC, &m));
  double us = (double)(ax_now() - t0) / 1e3 / (double)job->n;
  long bad;
  memcpy(&bad, m.data, sizeof bad);
  if (bad != 0)
    bench_die("axon: %ld children of %s did not exit 0", bad, PROGRAM);
  return us;
}

/* ------------------------------------------------------------------------ */
/* libuv                                                                     */

#ifdef AXON_HAVE_LIBUV
typedef struct luv_side luv_side_t;

typedef struct luv_child {
  uv_process_t proc;
  uv_pipe_t out;
  int open; /* handles not closed yet */
  luv_side_t *side;
} luv_child_t;

struct luv_side {
  uv_loop_t *loop;
  job_t job;
  long started, finished, bad;
  luv_child_t kids[MAX_FLIGHT];
  char buf[256];
};

static void luv_start(luv_side_t *s, luv_child_t *k);

static void luv_closed(uv_handle_t *h) {
  luv_child_t *k = h->data;
  if (--k->open > 0)
    return;
  luv_side_t *s = k->side;
  s->finished++;
  if (s->started < s->job.n)
    luv_start(s, k);
}

static void luv_exited(uv_process_t *p, int64_t status, int signo) {
  luv_child_t *k = p->data;
  k->side->bad += status != 0 || signo != 0;
  uv_close((uv_handle_t *)p, luv_closed);
}

static void luv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  luv_child_t *k = h->data;
  *buf = uv_buf_init(k->side->buf, sizeof k->side->buf);
}

static void luv_got(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n < 0) /* UV_EOF, or an error: the pipe is done either way */
    uv_close((uv_handle_t *)st, luv_closed);
}

static void luv_start(luv_side_t *s, luv_child_t *k) {
  static char *argv[] = {PROGRAM, NULL};
  uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE}, {.flags = UV_IGNORE},
                                   {.flags = UV_IGNORE}};
  k->side = s;
  k->proc.data = k;
  k->open = 1;
  if (s->job.pipe) {
    BENCH_UV(uv_pipe_init(s->loop, &k->out, 0));
    k->out.data = k;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&k->out;
    k->open = 2;
  }
  uv_process_options_t o = {.exit_cb = luv_exited, .file = PROGRAM, .args = argv,
                            .stdio_count = 3, .stdio = stdio};
  BENCH_UV(uv_spawn(s->loop, &k->proc, &o));
  if (s->job.pipe)
    BENCH_UV(uv_read_start((uv_stream_t *)&k->out, luv_alloc, luv_got));
  s->started++;
}

static double luv_run_job(luv_side_t *s, const job_t *job) {
  s->loop = uv_default_loop();
  s->job = *job;
  s->started = s->finished = s->bad = 0;
  int64_t t0 = ax_now();
  for (long i = 0; i < job->inflight && i < job->n; i++)
    luv_start(s, &s->kids[i]);
  BENCH_UV(uv_run(s->loop, UV_RUN_DEFAULT));
  double us = (double)(ax_now() - t0) / 1e3 / (double)job->n;
  if (s->finished != job->n || s->bad != 0)
    bench_die("libuv: %ld of %ld children finished, %ld did not exit 0", s->finished, job->n,
              s->bad);
  return us;
}
#endif

/* ------------------------------------------------------------------------ */
/* The floor: posix_spawn and waitpid, nothing else                          */

extern char **environ;

/* One run; returns microseconds per child.  No child of axon or libuv
 * exists meanwhile (each side's run has ended), so waitpid(-1) takes only
 * the floor's own. */
static double floor_run(const job_t *job) {
  static char *argv[] = {PROGRAM, NULL};
  int64_t t0 = ax_now();
  long started = 0, finished = 0;
  while (finished < job->n) {
    while (started < job->n && started - finished < job->inflight) {
      posix_spawn_file_actions_t fa;
      int fds[2] = {-1, -1};
      BENCH_SYS(-posix_spawn_file_actions_init(&fa));
      for (int i = 0; i < 3; i++)
        BENCH_SYS(-posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i ? O_WRONLY : O_RDONLY,
                                                     0));
      if (job->pipe) {
        BENCH_SYS(pipe2(fds, O_CLOEXEC));
        BENCH_SYS(-posix_spawn_file_actions_adddup2(&fa, fds[1], 1));
      }
      pid_t pid;
      int rc = posix_spawn(&pid, PROGRAM, &fa, NULL, argv, environ);
      if (rc != 0)
        bench_die("posix_spawn: %s", strerror(rc));
      posix_spawn_file_actions_destroy(&fa);
      if (job->pipe) { /* a serial drain: the floor is meant for one in flight */
        close(fds[1]);
        char buf[256];
        while (read(fds[0], buf, sizeof buf) > 0) {
        }
        close(fds[0]);
      }
      started++;
    }
    int status;
    if (waitpid(-1, &status, 0) < 0)
      bench_die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      bench_die("floor: a child of %s did not exit 0", PROGRAM);
    finished++;
  }
  return (double)(ax_now() - t0) / 1e3 / (double)job->n;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      cfg.quick = true;
      cfg.n = 40;
      cfg.runs = 1;
    } else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      cfg.n = bench_parse_count(argv[++i], "-n");
    } else if (strcmp(argv[i], "-j") == 0 && i + 1 < argc) {
      cfg.inflight = bench_parse_count(argv[++i], "-j");
    } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
      cfg.runs = bench_parse_count(argv[++i], "-r");
    } else {
      fprintf(stderr, "usage: %s [--quick] [-n children] [-j in-flight] [-r runs]\n", argv[0]);
      return 2;
    }
  }
  if (cfg.inflight > MAX_FLIGHT || cfg.runs > 15)
    bench_die("-j is at most %d and -r at most 15", MAX_FLIGHT);
  bench_watchdog_init(300);
  axon_side_t axs;
  axon_side_open(&axs);
#ifdef AXON_HAVE_LIBUV
  static luv_side_t uvs;
  const bool have_uv = true;
#else
  const bool have_uv = false;
  printf("libuv not found at build time: its column is empty\n");
#endif
  printf("spawn + exit of %s: %ld children per run, median of %ld runs\n", PROGRAM, cfg.n,
         cfg.runs);
  printf("%-6s %9s %14s %15s %15s %11s %11s\n", "stdio", "in flight", "axon us/child",
         "libuv us/child", "floor us/child", "axon/libuv", "axon/floor");
  const long flights[] = {1, cfg.inflight};
  for (int pipe = 0; pipe < 2; pipe++) {
    for (int f = 0; f < 2; f++) {
      job_t job = {.pipe = pipe != 0, .n = cfg.n, .inflight = flights[f]};
      double ta[15], tu[15], tf[15];
      for (long r = 0; r < cfg.runs; r++) {
        bench_watchdog_arm("axon, %s, %ld in flight", pipe ? "pipe" : "null", job.inflight);
        ta[r] = axon_run(&axs, &job);
#ifdef AXON_HAVE_LIBUV
        bench_watchdog_arm("libuv, %s, %ld in flight", pipe ? "pipe" : "null", job.inflight);
        tu[r] = luv_run_job(&uvs, &job);
#else
        tu[r] = 0;
#endif
        bench_watchdog_arm("floor, %s, %ld in flight", pipe ? "pipe" : "null", job.inflight);
        tf[r] = floor_run(&job);
      }
      double ma = bench_median(ta, (int)cfg.runs), mu = bench_median(tu, (int)cfg.runs);
      double mf = bench_median(tf, (int)cfg.runs);
      printf("%-6s %9ld %14.1f", pipe ? "pipe" : "null", job.inflight, ma);
      if (have_uv)
        printf(" %15.1f", mu);
      else
        printf(" %15s", "-");
      printf(" %15.1f", mf);
      bench_print_ratio(ma, mu, have_uv, 11);
      bench_print_ratio(ma, mf, true, 11);
      printf("\n");
      fflush(stdout);
    }
  }
  alarm(0);
  axon_side_close(&axs);
#ifdef AXON_HAVE_LIBUV
  BENCH_UV(uv_loop_close(uv_default_loop()));
#endif
  if (cfg.quick)
    printf("quick: every child exited 0, on both sides\n");
  return 0;
}
