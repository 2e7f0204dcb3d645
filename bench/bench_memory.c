/* bench_memory: what idle actors and connections cost in resident memory, and whether it goes back.
 *
 * Usage: bench_memory [--quick] [-a ACTORS] [-c CONNS] [-b LIST] [-r RUNS]
 *   -a ACTORS  actors per row-1 measurement (default 100000; 2000 with --quick); row 3a
 *              spawns ten times as many (10^6 by default)
 *   -c CONNS   connections in rows 2 and 3b (default 10000; 100 with --quick); each
 *              process needs CONNS + 64 fds: the program raises RLIMIT_NOFILE to that
 *              (as root up to /proc/sys/fs/nr_open), or exits saying so
 *   -b LIST    rows to run, comma-separated among 1..4 (default all)
 *   -r RUNS    row 4: skynet runs, the median is reported (default 5; 1 with --quick)
 *   --quick    small sizes (skynet 10^4): the CTest smoke run, under 3 s
 *
 * Memory is VmRSS from /proc/<pid>/status (user-space resident memory; what the
 * kernel holds for sockets is not in it), read once it has settled: it is read
 * every 20 ms until three reads in a row agree (5 ms and two with --quick), or
 * 2 s passed (a note under the table says when that happened).  Every
 * measurement runs in a fresh process forked from this one, which never starts
 * a runtime itself, so no measurement reuses memory that another one freed.
 *
 * Rows:
 *   1   idle actor after one message: an actor on core 0 spawns N actors
 *       (AX_PLACE_LOCAL, no state of their own), then sends each one message of
 *       8, 100, 1000 or 4000 bytes (1a..1d) with ax_send; each actor checks its
 *       payload (its number, then a pattern), sends the spawner an empty ACK and
 *       returns 0.  At most 256 messages are in flight at a time (the next one
 *       goes out for each ACK), so what is measured is what an idle actor keeps
 *       after its message, not the high-water mark of a burst.  Value: (RSS
 *       once every actor has handled its message - RSS before the spawns) / N.
 *       Baseline (row 1, in a fresh process too): the same actors never sent
 *       anything.  Target <= 128 B.
 *   1m  the baseline's actors, but spawned by main (a thread that is no core)
 *       with the default placement, so over every core.  Target <= 128 B.
 *   2   idle keep-alive TCP connection: a server process and a client process
 *       (forked, so each holds about CONNS fds).  The client opens CONNS
 *       connections to 127.0.0.1, sends one request of 64 B (or 16 KiB) on
 *       each, reads the echo and checks every byte; the server's RSS is read;
 *       then 3 more rounds (4 requests per connection), RSS again.  Value: (RSS
 *       - RSS before the first connection) / CONNS, after 1 and after 4
 *       requests.  Servers: axon's ax_tcp_serve with handler sessions that echo
 *       each AX_MSG_DATA with ax_stream_write (2a-2b, 64 B; 2e-2f, 16 KiB), and
 *       sessions that hand the stream to a fiber on their core, which loops
 *       ax_stream_read into a 4 KiB buffer on its stack and ax_stream_write_all
 *       (2c-2d, 2g-2h), both on one core per CPU with default stream options
 *       but AX_STREAM_NODELAY.  2i-2j (64 B): the fibers, but each request's
 *       handling also calls a function that writes a 32 KiB array on the
 *       stack (a parser's or a formatter's scratch), so every fiber once went
 *       that deep before it waits.  Baseline: a one-thread level-triggered epoll
 *       echo server whose only per-connection state is the fd (epoll's data),
 *       reading into one 64 KiB buffer; a short write waits in poll() for that
 *       fd, so nothing is queued per connection.  Target <= 1 KiB (nginx
 *       measures about 526 B per idle keep-alive connection).
 *   3a  memory goes back, actors: 10 N actors spawned as in row 1 (never sent
 *       to, a terminate hook that counts), then ax_stop on each; RSS before,
 *       after the spawns, at peak (VmHWM: the stops included) and after the
 *       last terminate hook ran and RSS settled.  The array of references
 *       (8 B per actor) is in the peak only.  Target: after <= 2x before.
 *   3c  the same, but main spawns the actors (default placement: every core)
 *       and stops them: what a thread that is no core allocates must go back
 *       as well (its actors, carved from chunks per core, runtime/actor.c;
 *       its STOP messages, from its own message pools, runtime/msg.c).
 *   3d  the same as 3c, and main sends each actor one message of 100, 400,
 *       1,000 or 4,000 B before the stops: main's message pools, one per
 *       size class, must not keep more than their cap (runtime/msg.c).
 *   3b  memory goes back, connections: the 64 B runs of row 2 go on: the
 *       client closes every connection, the server reports once every session
 *       saw its end, and its RSS is read; before, peak (VmHWM) and after
 *       closing, with the epoll server's as the baseline.  Target: after <= 2x
 *       before, as 3a.
 *   4   cold start: skynet (bench_actors' row 4: 10 children per actor down to
 *       10^6 leaves, each child spawned with AX_PLACE_LOCAL and then sent
 *       START {num, size}, each replying SUM; the root's sum is checked) in a
 *       fresh runtime of a fresh process (cold: the first tree), then a second
 *       tree in the same runtime (warm); ms each, medians of RUNS processes,
 *       and the median of each process's ratio cold / warm (the two trees of
 *       one process run back to back, so the ratio cancels load that changes
 *       between processes; the notes list every run).  Target <= 1.3.
 *
 * Output: one table, row | value | baseline | target | status (ok, MISSED, or
 * "-" without a target).  A missed target prints MISSED but leaves the exit
 * status 0; a failed call or check (an echo that differs, a wrong skynet sum,
 * a connection lost, the runtime's counters disagreeing with the work done)
 * exits with status 1.  A watchdog (SIGALRM) names a phase that hangs.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "axon/actor.h"
#include "axon/fiber.h"
#include "axon/port.h"
#include "axon/runtime.h"
#include "axon/stream.h"
#include "bench_net.h"

#define WATCHDOG_S 300 /* the longest one measurement may take */
#define WAIT_MS 120000 /* the longest wait for one message from a child process */
#define WINDOW 256     /* row 1: messages in flight */
#define FIBER_BUF 4096 /* row 2: the fiber's read buffer, on its stack */
#define DEEP_STACK (32 * 1024) /* rows 2i-2j: the scratch array of a request's call */
#define EPOLL_BUF (64 * 1024)
#define NROWS 4

enum {
  MSG_PING = AX_MSG_USER,
  MSG_PONG,
  MSG_SPAWN,   /* spawner: spawn the actors */
  MSG_LOAD,    /* spawner: send each actor its message */
  MSG_STOP,    /* spawner: ax_stop each actor */
  MSG_PAYLOAD, /* an idle actor's one message */
  MSG_NOTE,    /* row 3d: main's message to an idle actor, ignored */
  MSG_ACK,
  MSG_DONE,
  MSG_START,
  MSG_SUM,
};

static bool quick;

/* ------------------------------------------------------------------------ */
/* Resident memory and child processes                                       */

/* A field of /proc/<pid>/status in bytes (pid 0: this process), e.g. "VmRSS". */
static long long status_bytes(pid_t pid, const char *field) {
  char path[64], line[256];
  if (pid == 0)
    snprintf(path, sizeof path, "/proc/self/status");
  else
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    bench_die("%s: %s", path, strerror(errno));
  size_t flen = strlen(field);
  long long kb = -1;
  while (kb < 0 && fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, field, flen) == 0 && line[flen] == ':')
      kb = strtoll(line + flen + 1, NULL, 10);
  fclose(f);
  if (kb < 0)
    bench_die("%s: no %s", path, field);
  return kb * 1024;
}

static int unsettled; /* reads that were still moving after 2 s */

/* How long an "after" read (and a read of idle connections) waits first: a
 * core gives back pool memory that has stayed unused for 250 ms
 * (AX__PURGE_NS in runtime/pool.h) once it is idle, so what a user sees a
 * moment after a burst is what is read. */
#define AFTER_WAIT_MS 500

/* VmRSS of pid (0: this process) once it holds still: three equal reads in
 * a row 20 ms apart (two, 5 ms apart, with --quick), or the last read after
 * 2 s. */
static long long rss_settled(pid_t pid) {
  int step_ms = quick ? 5 : 20, same = 0, enough = quick ? 1 : 2;
  long long last = status_bytes(pid, "VmRSS");
  for (int waited = 0; waited < 2000; waited += step_ms) {
    usleep((useconds_t)step_ms * 1000);
    long long now = status_bytes(pid, "VmRSS");
    same = now == last ? same + 1 : 0;
    last = now;
    if (same == enough)
      return last;
  }
  unsettled++;
  return last;
}

/* Reads exactly len bytes from a pipe to another process of the bench,
 * waiting at most WAIT_MS for each piece; exits naming `what` on a timeout,
 * or when the other end is gone. */
static void read_pipe(int fd, void *buf, size_t len, const char *what) {
  char *p = buf;
  while (len > 0) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, WAIT_MS);
    if (r < 0 && errno == EINTR)
      continue;
    BENCH_SYS(r);
    if (r == 0)
      bench_die("no %s within %d s", what, WAIT_MS / 1000);
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    BENCH_SYS(n);
    if (n == 0)
      bench_die("no %s: the process that was to send it ended (its messages are above)", what);
    p += n;
    len -= (size_t)n;
  }
}


/* Forks a child that dies with this process; returns its pid (0 in it). */
static pid_t fork_child(void) {
  pid_t parent = getpid();
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  BENCH_SYS(pid);
  if (pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent))
    _exit(1); /* no child may outlive the bench */
  return pid;
}

/* Runs fn(arg, out) in a fresh child process and copies its result (size
 * bytes at out) back. */
static void run_child(const char *what, void (*fn)(const void *arg, void *out), const void *arg,
                      void *out, size_t size) {
  int fds[2];
  BENCH_SYS(pipe2(fds, O_CLOEXEC));
  pid_t pid = fork_child();
  if (pid == 0) {
    close(fds[0]);
    fn(arg, out);
    bench_write_all(fds[1], out, size);
    _exit(0);
  }
  BENCH_SYS(close(fds[1]));
  char what_result[96];
  snprintf(what_result, sizeof what_result, "result of %s", what);
  read_pipe(fds[0], out, size, what_result);
  BENCH_SYS(close(fds[0]));
  bench_reap(pid, what);
}

/* ------------------------------------------------------------------------ */
/* A runtime and its port, in a child process                                */

typedef struct brt {
  ax_rt_t *rt;
  ax_port_t *port;
  ax_ref_t port_ref;
} brt_t;

static void brt_open(brt_t *b) {
  ax_rt_opts_t o = {.flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  BENCH_AX(ax_rt_new(&o, &b->rt));
  BENCH_AX(ax_port_new(b->rt, &b->port));
  b->port_ref = ax_port_ref(b->port);
  BENCH_AX(ax_rt_start(b->rt));
}

/* Takes the next message from the port, which must be of the given type,
 * and copies its payload (size bytes) to out. */
static void brt_expect(brt_t *b, uint32_t type, void *out, size_t size) {
  int64_t deadline = ax_now() + (int64_t)WAIT_MS * AX_NSEC_PER_MSEC;
  ax_msg_t m;
  int rc;
  do
    rc = ax_port_recv(b->port, deadline, &m);
  while (rc == -EINTR);
  if (rc < 0)
    bench_die("waiting for message type %u on the port: %s", type, ax_strerror(rc));
  if (m.type != type || m.size != size)
    bench_die("the port got type %u, %u bytes (type %u, %zu bytes expected)", m.type, m.size, type,
              size);
  if (size > 0)
    memcpy(out, m.data, size);
}

/* Stops, joins and frees the runtime; *st gets its counters. */
static void brt_close(brt_t *b, ax_core_stats_t *st) {
  ax_rt_stop(b->rt);
  BENCH_AX(ax_rt_join(b->rt));
  BENCH_AX(ax_rt_stats_total(b->rt, st));
  BENCH_AX(ax_port_close(b->port));
  BENCH_AX(ax_rt_free(b->rt));
}

/* Checks the runtime's counters (exact after ax_rt_join) against the work
 * done: at least min_delivered messages handled, at least min_spawned
 * actors spawned, at most max_dead dead letters. */
static void stats_check(const char *what, const ax_core_stats_t *st, uint64_t min_delivered,
                        uint64_t min_spawned, uint64_t max_dead) {
  if (st->delivered < min_delivered || st->spawned < min_spawned || st->dead_letters > max_dead)
    bench_die("%s: the runtime counted %llu delivered (>= %llu expected), %llu spawned (>= %llu "
              "expected), %llu dead letters (<= %llu expected)",
              what, (unsigned long long)st->delivered, (unsigned long long)min_delivered,
              (unsigned long long)st->spawned, (unsigned long long)min_spawned,
              (unsigned long long)st->dead_letters, (unsigned long long)max_dead);
}

/* ------------------------------------------------------------------------ */
/* 1, 3a: idle actors                                                        */

/* The spawner, on core 0; its state.  Everything it needs is allocated (and
 * its pages touched) before the first RSS read, but row 3a's references
 * (see idle_child). */
typedef struct spawner {
  ax_ref_t port;
  uint64_t n;
  ax_ref_t *refs;
  size_t payload;     /* row 1: bytes of each actor's message */
  unsigned char *buf; /* payload bytes, rebuilt for each actor */
  uint64_t sent, acked;
  ax_terminate_t terminate;
} spawner_t;

static size_t idle_payload; /* what each idle actor expects; set before the runtime starts */

/* Message i: its number, then a pattern that depends on it. */
static void payload_fill(unsigned char *p, size_t size, uint64_t i) {
  memcpy(p, &i, sizeof i);
  for (size_t j = sizeof i; j < size; j++)
    p[j] = (unsigned char)(i * 131 + j);
}

/* An idle actor; its state pointer is its number, not a pointer. */
static int idle_actor(ax_actor_t *self, const ax_msg_t *m) {
  uint64_t i = (uint64_t)(uintptr_t)ax_state(self), got;
  if (m->type == MSG_NOTE)
    return 0;
  if (m->type != MSG_PAYLOAD || m->size != idle_payload)
    bench_die("idle actor %llu: got type %u, %u bytes (%zu expected)", (unsigned long long)i,
              m->type, m->size, idle_payload);
  const unsigned char *p = m->data;
  memcpy(&got, p, sizeof got);
  for (size_t j = sizeof got; j < m->size && got == i; j++)
    if (p[j] != (unsigned char)(i * 131 + j))
      got = ~i;
  if (got != i)
    bench_die("idle actor %llu: its payload differs from what was sent", (unsigned long long)i);
  BENCH_AX(ax_send(m->from, MSG_ACK, NULL, 0));
  return 0;
}

static void spawner_send_next(spawner_t *s) {
  payload_fill(s->buf, s->payload, s->sent);
  BENCH_AX(ax_send(s->refs[s->sent], MSG_PAYLOAD, s->buf, s->payload));
  s->sent++;
}

static int spawner(ax_actor_t *self, const ax_msg_t *m) {
  spawner_t *s = ax_state(self);
  switch (m->type) {
  case MSG_PING: /* the runtime and the spawner are up */
    BENCH_AX(ax_send(s->port, MSG_PONG, NULL, 0));
    return 0;
  case MSG_SPAWN: {
    ax_spawn_opts_t o = {.placement = AX_PLACE_LOCAL, .terminate = s->terminate};
    for (uint64_t i = 0; i < s->n; i++)
      BENCH_AX(ax_spawn(ax_actor_rt(self), idle_actor, (void *)(uintptr_t)i, &o, &s->refs[i]));
    BENCH_AX(ax_send(s->port, MSG_DONE, NULL, 0));
    return 0;
  }
  case MSG_LOAD:
    while (s->sent < s->n && s->sent < WINDOW)
      spawner_send_next(s);
    return 0;
  case MSG_ACK:
    if (++s->acked > s->sent)
      bench_die("row 1: %llu acks for %llu messages", (unsigned long long)s->acked,
                (unsigned long long)s->sent);
    if (s->sent < s->n)
      spawner_send_next(s);
    else if (s->acked == s->n)
      BENCH_AX(ax_send(s->port, MSG_DONE, NULL, 0));
    return 0;
  case MSG_STOP:
    for (uint64_t i = 0; i < s->n; i++)
      BENCH_AX(ax_stop(s->refs[i], 0));
    return 0;
  default:
    bench_die("spawner: got type %u", m->type);
  }
}

static atomic_uint_fast64_t stopped; /* row 3a: terminate hooks run */
static uint64_t stop_target;
static ax_ref_t stop_port;

static void count_stop(ax_actor_t *self, int reason) {
  (void)self;
  if (reason != AX_REASON_STOPPED)
    bench_die("row 3a: an actor stopped with reason %d", reason);
  /* Relaxed: the count is the only datum, and the port message orders the rest. */
  if (atomic_fetch_add_explicit(&stopped, 1, memory_order_relaxed) + 1 == stop_target)
    BENCH_AX(ax_send(stop_port, MSG_DONE, NULL, 0));
}

typedef struct idle_args {
  uint64_t n;
  size_t payload; /* 0: never sent anything */
  bool stop;      /* rows 3a, 3c */
  bool from_main; /* rows 1m, 3c: main spawns (and stops) them, on every core */
  bool main_sends; /* row 3d: main also sends each a message of 100 to 4,000 B */
} idle_args_t;

typedef struct idle_result {
  long long before, loaded, after, peak; /* bytes; after and peak: row 3a */
  int unsettled;                         /* RSS reads still moving after 2 s */
} idle_result_t;

/* In a fresh process: the spawner, the warm-up, RSS, the spawns (and the
 * messages, or the stops), RSS again.  Row 1 needs the references to send
 * to, so their array is in RSS before and after alike.  Row 3a's array is
 * mapped but untouched before, is in the peak, and is unmapped before the
 * last read (a sample is kept, to check that the stopped actors are gone). */
static void idle_child(const void *arg, void *out) {
  const idle_args_t *a = arg;
  idle_result_t *r = out;
  spawner_t s = {.n = a->n, .payload = a->payload, .terminate = a->stop ? count_stop : NULL};
  size_t refs_size = a->n * sizeof *s.refs;
  s.refs = mmap(NULL, refs_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  s.buf = malloc(a->payload + 1);
  if (s.refs == MAP_FAILED || s.buf == NULL)
    bench_die("out of memory");
  if (!a->stop)
    memset(s.refs, 0, refs_size);
  memset(s.buf, 0, a->payload + 1);
  idle_payload = a->payload;
  stop_target = a->n;
  brt_t b;
  brt_open(&b);
  s.port = stop_port = b.port_ref;
  ax_spawn_opts_t o0 = {.placement = AX_PLACE_CORE, .core = 0};
  ax_ref_t sp;
  BENCH_AX(ax_spawn(b.rt, spawner, &s, &o0, &sp));
  BENCH_AX(ax_send(sp, MSG_PING, NULL, 0));
  brt_expect(&b, MSG_PONG, NULL, 0);
  r->before = rss_settled(0);
  if (a->from_main) {
    /* Default placement: round robin over the cores, as a program's main
     * makes the workers of every core. */
    ax_spawn_opts_t o = {.terminate = s.terminate};
    for (uint64_t i = 0; i < a->n; i++)
      BENCH_AX(ax_spawn(b.rt, idle_actor, (void *)(uintptr_t)i, &o, &s.refs[i]));
  } else {
    BENCH_AX(ax_send(sp, MSG_SPAWN, NULL, 0));
    brt_expect(&b, MSG_DONE, NULL, 0);
  }
  if (a->main_sends) {
    /* Payloads past the ring slots' 24 bytes, in four size classes: main's
     * own message pools take them (runtime/msg.c). */
    static const size_t sizes[] = {100, 400, 1000, 4000};
    static unsigned char note[4000];
    for (uint64_t i = 0; i < a->n; i++)
      BENCH_AX(ax_send(s.refs[i], MSG_NOTE, note, sizes[i % 4]));
  }
  if (a->payload > 0) {
    BENCH_AX(ax_send(sp, MSG_LOAD, NULL, 0));
    brt_expect(&b, MSG_DONE, NULL, 0);
  }
  r->loaded = rss_settled(0);
  ax_core_stats_t c0;
  if (a->from_main)
    BENCH_AX(ax_rt_stats_total(b.rt, &c0));
  else
    BENCH_AX(ax_rt_stats(b.rt, 0, &c0));
  if (c0.actors < a->n)
    bench_die("the cores count %llu live actors after %llu spawns", (unsigned long long)c0.actors,
              (unsigned long long)a->n);
  r->after = r->peak = r->loaded;
  uint64_t probes = 0;
  if (a->stop) {
    if (a->from_main)
      for (uint64_t i = 0; i < a->n; i++)
        BENCH_AX(ax_stop(s.refs[i], 0));
    else
      BENCH_AX(ax_send(sp, MSG_STOP, NULL, 0));
    brt_expect(&b, MSG_DONE, NULL, 0);
    ax_ref_t sample[64];
    for (uint64_t i = 0; i < a->n && probes < 64; i += a->n / 64 + 1)
      sample[probes++] = s.refs[i];
    BENCH_SYS(munmap(s.refs, refs_size));
    s.refs = NULL;
    usleep(AFTER_WAIT_MS * 1000);
    r->after = rss_settled(0);
    r->peak = status_bytes(0, "VmHWM");
    for (uint64_t i = 0; i < probes; i++) {
      int rc = ax_send(sample[i], MSG_PAYLOAD, NULL, 0);
      if (rc != -ESRCH)
        bench_die("row 3a: a send to a stopped actor returned %s, -ESRCH expected",
                  ax_strerror(rc));
    }
  }
  ax_core_stats_t st;
  brt_close(&b, &st);
  if (a->payload > 0 && s.acked != a->n)
    bench_die("row 1: %llu of %llu messages handled", (unsigned long long)s.acked,
              (unsigned long long)a->n);
  if (a->stop && atomic_load(&stopped) != a->n)
    bench_die("row 3a: %llu of %llu terminate hooks ran", (unsigned long long)atomic_load(&stopped),
              (unsigned long long)a->n);
  uint64_t msgs = a->from_main ? 1 : 2 + (a->payload > 0 ? 1 + 2 * a->n : 0) + (a->stop ? 1 : 0);
  stats_check("idle actors", &st, msgs, a->n + 1, probes); /* a refused send may count */
  if (s.refs != NULL)
    BENCH_SYS(munmap(s.refs, refs_size));
  free(s.buf);
  r->unsettled = unsettled;
}

/* ------------------------------------------------------------------------ */
/* 2, 3b: servers                                                            */

enum impl { IMPL_EPOLL, IMPL_AXON, IMPL_FIBER, IMPL_FIBER_DEEP, IMPL_COUNT };
static const char *const impl_names[IMPL_COUNT] = {"raw epoll", "handler sessions", "fibers",
                                                   "fibers, 32 KiB deep"};

/* What a server reports when SIGTERM ends it. */
typedef struct srv_report {
  uint64_t accepted, bytes_in, bytes_out, closed, errors;
} srv_report_t;

/* The server's counters.  Sessions on every core add to them (relaxed: each
 * is a count, read by the pipe-writing session only to compare with the
 * total, and read whole after ax_rt_join, which orders every core's writes
 * before it). */
static struct {
  atomic_uint_fast64_t accepted, bytes_in, bytes_out, closed, errors;
  uint64_t conns; /* connections the client opens */
  int pipe_fd;    /* to the parent */
  bool deep;      /* IMPL_FIBER_DEEP: each request calls deep_call */
} sv;

/* One connection has ended: the last one tells the parent. */
static void sv_closed_one(void) {
  if (atomic_fetch_add_explicit(&sv.closed, 1, memory_order_relaxed) + 1 == sv.conns) {
    char c = 'c';
    bench_write_all(sv.pipe_fd, &c, 1);
  }
}

static void sv_add(atomic_uint_fast64_t *counter, uint64_t v) {
  atomic_fetch_add_explicit(counter, v, memory_order_relaxed);
}

/* --- axon, handler sessions --------------------------------------------- */

static int echo_session(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  switch (m->type) {
  case AX_MSG_GIVEN:
    sv_add(&sv.accepted, 1);
    return 0;
  case AX_MSG_DATA: {
    const ax_data_t *d = m->data;
    sv_add(&sv.bytes_in, d->len);
    if (ax_stream_write(d->stream, d->bytes, d->len) < 0) { /* the stream has ended */
      sv_add(&sv.errors, 1);
      sv_closed_one();
      return AX_STOP;
    }
    sv_add(&sv.bytes_out, d->len);
    return 0;
  }
  case AX_MSG_CLOSED: {
    const ax_stream_ev_t *ev = m->data;
    if (ev->err != 0)
      sv_add(&sv.errors, 1);
    sv_closed_one();
    return AX_STOP;
  }
  default:
    return 0;
  }
}

/* --- axon, fibers: the session gives its stream to a fiber of its core --- */

/* Rows 2i-2j: a call that writes DEEP_STACK bytes of stack, as a parser or a
 * formatter with a large scratch array does.  Returns a byte of it, so the
 * array cannot be left out. */
static __attribute__((noinline)) char deep_call(const char *buf, size_t n) {
  char scratch[DEEP_STACK];
  memset(scratch, buf[0], sizeof scratch);
  scratch[n % sizeof scratch] = buf[n - 1];
  __asm__ volatile("" : : "r"(scratch) : "memory"); /* the whole array is used */
  return scratch[(n * 7) % sizeof scratch];
}

static int echo_fiber(ax_actor_t *self, void *arg) {
  (void)arg;
  const ax_msg_t *m;
  int rc = ax_recv_type(self, AX_MSG_GIVEN, AX_FOREVER, &m);
  if (rc < 0) {
    sv_add(&sv.errors, 1);
    return 0;
  }
  ax_stream_t *s = ((const ax_stream_ev_t *)m->data)->stream;
  sv_add(&sv.accepted, 1);
  char buf[FIBER_BUF];
  for (;;) {
    ssize_t n = ax_stream_read(s, buf, sizeof buf, AX_FOREVER);
    if (n == -ECANCELED)
      return 0; /* SIGTERM, after every connection ended */
    if (n <= 0) {
      if (n < 0)
        sv_add(&sv.errors, 1);
      sv_closed_one();
      return 0; /* the stream is closed as the fiber returns */
    }
    sv_add(&sv.bytes_in, (uint64_t)n);
    if (sv.deep && deep_call(buf, (size_t)n) != buf[0] && (size_t)n % DEEP_STACK != 0)
      sv_add(&sv.errors, 1); /* every byte but the one at n is buf[0] */
    rc = ax_stream_write_all(s, buf, (size_t)n, AX_FOREVER);
    if (rc == -ECANCELED)
      return 0;
    if (rc < 0) {
      sv_add(&sv.errors, 1);
      sv_closed_one();
      return 0;
    }
    sv_add(&sv.bytes_out, (uint64_t)n);
  }
}

/* Serves until SIGTERM, which the runtime claims and turns into a stop. */
static void serve_axon(bool fibers) {
  ax_rt_t *rt;
  ax_rt_opts_t ro = {.flags = AX_RT_KEEP_ALIVE};
  BENCH_AX(ax_rt_new(&ro, &rt));
  BENCH_AX(ax_rt_start(rt));
  ax_serve_opts_t so = {.stream = {.flags = AX_STREAM_NODELAY},
                       .fiber = fibers ? echo_fiber : NULL}; /* fiber sessions */
  ax_server_t *srv;
  BENCH_AX(ax_tcp_serve(rt, "127.0.0.1:0", fibers ? NULL : echo_session, &so, &srv));
  int port = ax_server_port(srv);
  BENCH_AX(port);
  uint16_t p16 = (uint16_t)port;
  bench_write_all(sv.pipe_fd, &p16, sizeof p16);
  BENCH_AX(ax_rt_join(rt));
  BENCH_AX(ax_server_close(srv));
  BENCH_AX(ax_rt_free(rt));
}

/* --- raw epoll: the fd is all it keeps per connection -------------------- */

/* Writes all of buf to a non-blocking socket, waiting in poll() when the
 * kernel takes only part.  Returns false when the connection failed. */
static bool ep_write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      if (poll(&p, 1, BENCH_STALL_MS) <= 0)
        return false;
      continue;
    }
    if (w < 0)
      return false;
    buf += w;
    len -= (size_t)w;
  }
  return true;
}

/* Readable: echo until a read comes back short.  A connection that ends is
 * closed (which also takes it out of the epoll set) and counted. */
static void ep_readable(int fd, char *buf) {
  for (;;) {
    ssize_t n = read(fd, buf, EPOLL_BUF);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return;
    if (n > 0) {
      sv_add(&sv.bytes_in, (uint64_t)n);
      if (ep_write_all(fd, buf, (size_t)n)) {
        sv_add(&sv.bytes_out, (uint64_t)n);
        if (n < EPOLL_BUF)
          return;
        continue;
      }
    }
    if (n != 0)
      sv_add(&sv.errors, 1);
    BENCH_SYS(close(fd));
    sv_closed_one();
    return;
  }
}

static void serve_epoll(void) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  BENCH_SYS(sigprocmask(SIG_BLOCK, &term, NULL));
  int sfd = signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK);
  BENCH_SYS(sfd);
  uint16_t port;
  int lfd = bench_listen(0, false, &port);
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  BENCH_SYS(epfd);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev));
  ev.data.fd = sfd;
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev));
  char *buf = malloc(EPOLL_BUF);
  if (buf == NULL)
    bench_die("server: out of memory");
  bench_write_all(sv.pipe_fd, &port, sizeof port);
  struct epoll_event evs[64];
  bench_echo_stats_t acc = {0};
  for (bool running = true; running;) {
    int n = epoll_wait(epfd, evs, 64, -1);
    if (n < 0 && errno == EINTR)
      continue;
    BENCH_SYS(n);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == sfd) {
        running = false;
      } else if (fd == lfd) {
        int cfd;
        while ((cfd = bench_accept(lfd, &acc)) >= 0) {
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
          BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev));
        }
      } else {
        ep_readable(fd, buf);
      }
    }
  }
  sv_add(&sv.accepted, acc.accepted);
  free(buf);
  BENCH_SYS(close(epfd));
  BENCH_SYS(close(lfd));
  BENCH_SYS(close(sfd));
}

/* The server process: reports its port, then "c" once every connection
 * ended, then its counts when SIGTERM ends it. */
_Noreturn static void server_main(enum impl impl, int pipe_fd, int conns) {
  signal(SIGPIPE, SIG_IGN);
  sv.pipe_fd = pipe_fd;
  sv.conns = (uint64_t)conns;
  sv.deep = impl == IMPL_FIBER_DEEP;
  if (impl == IMPL_EPOLL)
    serve_epoll();
  else
    serve_axon(impl != IMPL_AXON);
  srv_report_t rep = {atomic_load(&sv.accepted), atomic_load(&sv.bytes_in),
                      atomic_load(&sv.bytes_out), atomic_load(&sv.closed), atomic_load(&sv.errors)};
  bench_write_all(pipe_fd, &rep, sizeof rep);
  _exit(0);
}

/* ------------------------------------------------------------------------ */
/* 2, 3b: the client and the run                                             */

#define ROUNDS 4

/* The client process: connects, makes one round trip on every connection,
 * says '1' and waits; three more rounds, says '4' and waits; closes every
 * connection and says 'x'.  Every echoed byte is checked. */
_Noreturn static void client_main(uint16_t port, int conns, size_t msg, const char *server, int up,
                                  int down) {
  unsigned char *pattern = bench_pattern_new(msg, 0x6d656d6f);
  bench_pp_conn_t *cs = calloc((size_t)conns, sizeof *cs);
  unsigned char *rbufs = malloc((size_t)conns * msg);
  if (cs == NULL || rbufs == NULL)
    bench_die("client: out of memory");
  const bench_pp_t pp = {.pattern = pattern, .msg = msg, .verify = true, .server = server};
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  BENCH_SYS(epfd);
  for (int i = 0; i < conns; i++)
    bench_pp_open(&cs[i], i, port, epfd, rbufs + (size_t)i * msg);
  char c;
  for (int round = 0; round < ROUNDS; round++) {
    uint64_t done = bench_pp_run(&pp, epfd, cs, conns, 0); /* one round trip each */
    if (done != (uint64_t)conns)
      bench_die("client: %llu round trips in a round of %d", (unsigned long long)done, conns);
    bench_pp_check_quiet(&pp, cs, conns);
    if (round == 0 || round == ROUNDS - 1) {
      c = round == 0 ? '1' : '4';
      bench_write_all(up, &c, 1);
      read_pipe(down, &c, 1, "go-ahead"); /* the parent read the server's memory */
    }
  }
  for (int i = 0; i < conns; i++)
    BENCH_SYS(close(cs[i].fd));
  BENCH_SYS(close(epfd));
  c = 'x';
  bench_write_all(up, &c, 1);
  _exit(0);
}

/* The server's RSS along one run (bytes). */
typedef struct tcp_result {
  long long before, after1, after4, closed, peak;
} tcp_result_t;

static tcp_result_t tcp_run(enum impl impl, int conns, size_t msg) {
  bench_watchdog_arm("row 2: %s server, %d connections, %zu B", impl_names[impl], conns, msg);
  int sp[2], up[2], down[2];
  BENCH_SYS(pipe2(sp, O_CLOEXEC));
  pid_t srv = fork_child();
  if (srv == 0) {
    close(sp[0]);
    server_main(impl, sp[1], conns);
  }
  BENCH_SYS(close(sp[1]));
  uint16_t port;
  read_pipe(sp[0], &port, sizeof port, "server's port");
  tcp_result_t r;
  r.before = rss_settled(srv);

  BENCH_SYS(pipe2(up, O_CLOEXEC));
  BENCH_SYS(pipe2(down, O_CLOEXEC));
  pid_t cli = fork_child();
  if (cli == 0) {
    close(up[0]);
    close(down[1]);
    close(sp[0]);
    client_main(port, conns, msg, impl_names[impl], up[1], down[0]);
  }
  BENCH_SYS(close(up[1]));
  BENCH_SYS(close(down[0]));
  char c = 0, go = 'g';
  read_pipe(up[0], &c, 1, "client's first round");
  usleep(AFTER_WAIT_MS * 1000);
  r.after1 = rss_settled(srv);
  bench_write_all(down[1], &go, 1);
  read_pipe(up[0], &c, 1, "client's fourth round");
  usleep(AFTER_WAIT_MS * 1000);
  r.after4 = rss_settled(srv);
  bench_write_all(down[1], &go, 1);
  read_pipe(up[0], &c, 1, "client's close");
  bench_reap(cli, "client");
  read_pipe(sp[0], &c, 1, "server's word that every connection ended");
  usleep(AFTER_WAIT_MS * 1000);
  r.closed = rss_settled(srv);
  r.peak = status_bytes(srv, "VmHWM");

  BENCH_SYS(kill(srv, SIGTERM));
  srv_report_t rep;
  read_pipe(sp[0], &rep, sizeof rep, "server's counts");
  bench_reap(srv, "server");
  BENCH_SYS(close(sp[0]));
  BENCH_SYS(close(up[0]));
  BENCH_SYS(close(down[1]));
  uint64_t bytes = (uint64_t)conns * ROUNDS * msg;
  if (rep.accepted != (uint64_t)conns || rep.closed != (uint64_t)conns || rep.errors != 0 ||
      rep.bytes_in != bytes || rep.bytes_out != bytes)
    bench_die("%s server: accepted %llu of %d, %llu ended (%llu with errors), echoed %llu/%llu "
              "of %llu bytes",
              impl_names[impl], (unsigned long long)rep.accepted, conns,
              (unsigned long long)rep.closed, (unsigned long long)rep.errors,
              (unsigned long long)rep.bytes_in, (unsigned long long)rep.bytes_out,
              (unsigned long long)bytes);
  alarm(0);
  return r;
}

/* Raises RLIMIT_NOFILE to at least need (as root past the hard limit, up to
 * fs.nr_open), or exits. */
static void raise_nofile(long need) {
  struct rlimit rl;
  BENCH_SYS(getrlimit(RLIMIT_NOFILE, &rl));
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)need) {
    rl.rlim_cur = (rlim_t)need;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)need)
      rl.rlim_max = (rlim_t)need;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
      bench_die("-c: %ld fds per process needed, and RLIMIT_NOFILE cannot be raised to that "
                "(%s): raise ulimit -n or use a smaller -c",
                need, strerror(errno));
  }
}

/* ------------------------------------------------------------------------ */
/* 4: skynet, cold and warm                                                  */

typedef struct sk_node {
  ax_ref_t parent; /* the root's is the port */
  uint64_t sum;
  uint32_t got;
} sk_node_t;

typedef struct sk_start {
  uint64_t num;  /* the first leaf number under this node */
  uint64_t size; /* leaves under it */
} sk_start_t;

typedef struct sk_result {
  uint64_t sum;
  int64_t t1;
} sk_result_t;

static sk_node_t *sk_nodes; /* inner nodes in 10-ary heap order: node i's children are 10i+1.. */

static int sk_leaf(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  sk_start_t st;
  if (m->type != MSG_START || m->size != sizeof st)
    bench_die("skynet: a leaf got type %u, %u bytes", m->type, m->size);
  memcpy(&st, m->data, sizeof st);
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
    size_t idx = (size_t)(n - sk_nodes);
    ax_spawn_opts_t o = {.placement = AX_PLACE_LOCAL};
    for (unsigned j = 0; j < 10; j++) {
      sk_start_t cs = {.num = st.num + j * (st.size / 10), .size = st.size / 10};
      ax_ref_t child;
      if (cs.size == 1) {
        BENCH_AX(ax_spawn(ax_actor_rt(self), sk_leaf, NULL, &o, &child));
      } else {
        sk_node_t *c = &sk_nodes[idx * 10 + 1 + j];
        c->parent = ax_self(self);
        BENCH_AX(ax_spawn(ax_actor_rt(self), sk_inner, c, &o, &child));
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
  if (n == sk_nodes) {
    sk_result_t r = {n->sum, ax_now()};
    BENCH_AX(ax_send(n->parent, MSG_DONE, &r, sizeof r));
  } else {
    BENCH_AX(ax_send(n->parent, MSG_SUM, &n->sum, sizeof n->sum));
  }
  return AX_STOP;
}

typedef struct sk_times {
  double ms[2]; /* the first tree in a fresh runtime, the second in the same one */
} sk_times_t;

/* In a fresh process: two trees of 10^levels leaves, one after the other. */
static void sk_child(const void *arg, void *out) {
  unsigned levels = *(const unsigned *)arg;
  sk_times_t *r = out;
  uint64_t leaves = 1;
  for (unsigned i = 0; i < levels; i++)
    leaves *= 10;
  uint64_t inner = (leaves - 1) / 9;
  sk_nodes = malloc(inner * sizeof *sk_nodes);
  if (sk_nodes == NULL)
    bench_die("out of memory");
  brt_t b;
  brt_open(&b);
  for (int t = 0; t < 2; t++) {
    memset(sk_nodes, 0, inner * sizeof *sk_nodes); /* faults the pages in before the clock */
    sk_nodes[0].parent = b.port_ref;
    ax_spawn_opts_t o0 = {.placement = AX_PLACE_CORE, .core = 0};
    sk_start_t st = {.num = 0, .size = leaves};
    ax_ref_t root;
    int64_t t0 = ax_now();
    BENCH_AX(ax_spawn(b.rt, sk_inner, &sk_nodes[0], &o0, &root));
    BENCH_AX(ax_send(root, MSG_START, &st, sizeof st));
    sk_result_t res;
    brt_expect(&b, MSG_DONE, &res, sizeof res);
    if (res.sum != leaves * (leaves - 1) / 2)
      bench_die("skynet 10^%u, tree %d: the root's sum is %llu, %llu expected", levels, t + 1,
                (unsigned long long)res.sum, (unsigned long long)(leaves * (leaves - 1) / 2));
    r->ms[t] = (double)(res.t1 - t0) / 1e6;
  }
  ax_core_stats_t st;
  brt_close(&b, &st);
  stats_check("skynet", &st, 2 * (2 * (inner + leaves) - 1), 2 * (inner + leaves), 0);
  free(sk_nodes);
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

static bool missed;

/* One line: id, what, value, baseline, target, status. */
static void line(const char *id, const char *what, const char *value, const char *base,
                 const char *target, const char *status) {
  printf("%-3s %-58s %11s %11s %13s  %s\n", id, what, value, base, target, status);
  fflush(stdout);
}

/* A row; have_target: met when value <= limit. */
static void row(const char *id, const char *what, const char *value, const char *base,
                const char *target, bool have_target, double v, double limit) {
  const char *status = "-";
  if (have_target) {
    status = v <= limit ? "ok" : "MISSED";
    missed |= v > limit;
  }
  line(id, what, value, base, have_target ? target : "-", status);
}

#define MIB(x) ((double)(x) / (1024.0 * 1024.0))

static void usage(void) {
  fputs("usage: bench_memory [--quick] [-a ACTORS] [-c CONNS] [-b LIST] [-r RUNS]   (LIST: rows "
        "among 1..4)\n",
        stderr);
  exit(2);
}


/* Rows 2x and 2x+1: what an idle connection of server r costs after one
 * request and after ROUNDS, against the raw epoll server e. */
static void conn_rows(const char *id, const tcp_result_t *r, const tcp_result_t *e,
                      const char *impl, long conns, size_t msg) {
  char v[32], bl[32], what[128], rid[4] = {id[0], id[1], 0, 0};
  for (int after = 0; after < 2; after++) {
    long long ra = after ? r->after4 : r->after1, ea = after ? e->after4 : e->after1;
    double b = (double)(ra - r->before) / (double)conns;
    snprintf(v, sizeof v, "%.0f B", b);
    snprintf(bl, sizeof bl, "%.0f B", (double)(ea - e->before) / (double)conns);
    snprintf(what, sizeof what, "idle connection, %s, %zu B, after %d request%s", impl, msg,
             after ? ROUNDS : 1, after ? "s" : "");
    row(rid, what, v, bl, "<= 1024 B", true, b, 1024);
    rid[1]++;
  }
}

/* Rows 3a, 3c and 3d: RSS before, after the spawns, at peak and after the stops. */
static void goes_back_rows(const char *id, const char *first, const idle_result_t *r) {
  char v[32];
  snprintf(v, sizeof v, "%.1f MiB", MIB(r->before));
  line(id, first, v, "-", "-", "-");
  snprintf(v, sizeof v, "%.1f MiB", MIB(r->loaded));
  line(id, "  after spawning them", v, "-", "-", "-");
  snprintf(v, sizeof v, "%.1f MiB", MIB(r->peak));
  line(id, "  peak (VmHWM)", v, "-", "-", "-");
  snprintf(v, sizeof v, "%.1f MiB", MIB(r->after));
  row(id, "  after every one stopped", v, "-", "<= 2x before", true, (double)r->after,
      2.0 * (double)r->before);
}

int main(int argc, char **argv) {
  long actors = 0, conns = 0, runs = 0, list[NROWS];
  bool want[NROWS + 1] = {false, true, true, true, true};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool val = i + 1 < argc;
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "-a") == 0 && val) {
      actors = bench_parse_count(argv[++i], "-a");
    } else if (strcmp(a, "-c") == 0 && val) {
      conns = bench_parse_count(argv[++i], "-c");
    } else if (strcmp(a, "-r") == 0 && val) {
      runs = bench_parse_count(argv[++i], "-r");
    } else if (strcmp(a, "-b") == 0 && val) {
      int n = bench_parse_list(argv[++i], list, NROWS, "-b");
      memset(want, 0, sizeof want);
      for (int k = 0; k < n; k++) {
        if (list[k] > NROWS)
          bench_die("-b: rows are 1..%d", NROWS);
        want[list[k]] = true;
      }
    } else {
      usage();
    }
  }
  if (actors == 0)
    actors = quick ? 2000 : 100000;
  if (conns == 0)
    conns = quick ? 100 : 10000;
  if (runs == 0)
    runs = quick ? 1 : 5;
  if (runs > BENCH_MAX_RUNS || conns > 1000000)
    bench_die("-r: at most %d; -c: at most 1000000", BENCH_MAX_RUNS);
  unsigned sky_levels = quick ? 4 : 6;
  bench_watchdog_init(WATCHDOG_S);
  signal(SIGPIPE, SIG_IGN);
  if (want[2] || want[3])
    raise_nofile(conns + 64);

  printf("command:");
  for (int i = 0; i < argc; i++)
    printf(" %s", argv[i]);
  printf("\nbench_memory%s: axon %s; %ld CPUs online; VmRSS once settled, each measurement in a "
         "fresh process\n",
         quick ? " (--quick: small sizes)" : "", ax_version_string(),
         sysconf(_SC_NPROCESSORS_ONLN));
  printf("baseline: row 1 actors never sent anything; rows 2, 3b the raw epoll server (state per\n"
         "connection: the fd); row 4 the warm (second) tree.  Per-item values are RSS growth\n"
         "divided by the item count.\n\n");
  line("row", "measurement", "value", "baseline", "target", "status");

  char v[32], bl[32], what[96], notes[BENCH_MAX_RUNS * 24] = "";
  if (want[1]) {
    static const size_t sizes[] = {8, 100, 1000, 4000};
    idle_args_t a = {.n = (uint64_t)actors};
    idle_result_t base, r;
    bench_watchdog_arm("row 1: idle actors, never sent anything");
    run_child("row 1 baseline", idle_child, &a, &base, sizeof base);
    unsettled += base.unsettled;
    double base_b = (double)(base.loaded - base.before) / (double)actors;
    snprintf(bl, sizeof bl, "%.1f B", base_b);
    snprintf(what, sizeof what, "idle actor, never sent a message (%ld actors)", actors);
    line("1", what, bl, "-", "-", "-");
    for (int k = 0; k < 4; k++) {
      a.payload = sizes[k];
      bench_watchdog_arm("row 1: idle actors after one %zu B message", sizes[k]);
      run_child("row 1", idle_child, &a, &r, sizeof r);
      unsettled += r.unsettled;
      double b = (double)(r.loaded - r.before) / (double)actors;
      snprintf(v, sizeof v, "%.1f B", b);
      char id[4] = {'1', (char)('a' + k), 0, 0};
      snprintf(what, sizeof what, "idle actor after one %zu B message", sizes[k]);
      row(id, what, v, bl, "<= 128 B", true, b, 128);
    }
    idle_args_t m = {.n = (uint64_t)actors, .from_main = true};
    bench_watchdog_arm("row 1m: idle actors spawned by main");
    run_child("row 1m", idle_child, &m, &r, sizeof r);
    unsettled += r.unsettled;
    double b = (double)(r.loaded - r.before) / (double)actors;
    snprintf(v, sizeof v, "%.1f B", b);
    row("1m", "idle actor spawned by main, every core", v, bl, "<= 128 B", true, b, 128);
  }

  if (want[2] || want[3]) {
    static const size_t msgs[] = {64, 16384};
    tcp_result_t res[2][IMPL_COUNT];
    int nsizes = want[2] ? 2 : 1;
    for (int s = 0; s < nsizes; s++)
      for (int k = 0; k < IMPL_COUNT; k++)
        if (k != IMPL_FIBER_DEEP || (s == 0 && want[2])) /* 2i-2j: 64 B only */
          res[s][k] = tcp_run((enum impl)k, (int)conns, msgs[s]);
    char id[4] = "2a";
    for (int s = 0; s < nsizes && want[2]; s++) {
      for (int k = IMPL_AXON; k < IMPL_COUNT; k++) {
        if (k == IMPL_FIBER_DEEP)
          continue; /* printed last, as 2i-2j */
        conn_rows(id, &res[s][k], &res[s][IMPL_EPOLL], impl_names[k], conns, msgs[s]);
        id[1] += 2;
      }
    }
    if (want[2])
      conn_rows(id, &res[0][IMPL_FIBER_DEEP], &res[0][IMPL_EPOLL], impl_names[IMPL_FIBER_DEEP],
                conns, msgs[0]);
    if (want[3]) {
      for (int k = IMPL_AXON; k < IMPL_FIBER_DEEP; k++) {
        const tcp_result_t *r = &res[0][k], *e = &res[0][IMPL_EPOLL];
        snprintf(what, sizeof what, "%ld connections, %s: server RSS before", conns, impl_names[k]);
        snprintf(v, sizeof v, "%.1f MiB", MIB(r->before));
        snprintf(bl, sizeof bl, "%.1f MiB", MIB(e->before));
        line("3b", what, v, bl, "-", "-");
        snprintf(what, sizeof what, "  peak (VmHWM), %d requests each", ROUNDS);
        snprintf(v, sizeof v, "%.1f MiB", MIB(r->peak));
        snprintf(bl, sizeof bl, "%.1f MiB", MIB(e->peak));
        line("3b", what, v, bl, "-", "-");
        snprintf(v, sizeof v, "%.1f MiB", MIB(r->closed));
        snprintf(bl, sizeof bl, "%.1f MiB", MIB(e->closed));
        row("3b", "  after every connection closed", v, bl, "<= 2x before", true, (double)r->closed,
            2.0 * (double)r->before);
      }
    }
  }

  if (want[3]) {
    idle_args_t a = {.n = 10 * (uint64_t)actors, .stop = true};
    idle_result_t r;
    bench_watchdog_arm("row 3a: %llu actors spawned and stopped", (unsigned long long)a.n);
    run_child("row 3a", idle_child, &a, &r, sizeof r);
    unsettled += r.unsettled;
    snprintf(what, sizeof what, "%llu actors spawned, then stopped: RSS before",
             (unsigned long long)a.n);
    goes_back_rows("3a", what, &r);
    a.from_main = true;
    bench_watchdog_arm("row 3c: %llu actors spawned and stopped by main", (unsigned long long)a.n);
    run_child("row 3c", idle_child, &a, &r, sizeof r);
    unsettled += r.unsettled;
    goes_back_rows("3c", "the same, spawned and stopped by main: RSS before", &r);
    a.main_sends = true;
    bench_watchdog_arm("row 3d: %llu actors spawned, sent to and stopped by main",
                       (unsigned long long)a.n);
    run_child("row 3d", idle_child, &a, &r, sizeof r);
    unsettled += r.unsettled;
    goes_back_rows("3d", "the same, main sends each 100-4,000 B: RSS before", &r);
  }

  if (want[4]) {
    double cold[BENCH_MAX_RUNS], warm[BENCH_MAX_RUNS], ratio[BENCH_MAX_RUNS];
    for (long k = 0; k < runs; k++) {
      sk_times_t t;
      bench_watchdog_arm("row 4: skynet 10^%u, run %ld", sky_levels, k + 1);
      run_child("row 4", sk_child, &sky_levels, &t, sizeof t);
      cold[k] = t.ms[0];
      warm[k] = t.ms[1];
      ratio[k] = t.ms[0] / t.ms[1];
    }
    int off = snprintf(notes, sizeof notes, "row 4, every run, cold/warm ms:");
    for (long k = 0; k < runs && off < (int)sizeof notes; k++)
      off += snprintf(notes + off, sizeof notes - (size_t)off, " %.1f/%.1f", cold[k], warm[k]);
    double c = bench_median(cold, (int)runs), w = bench_median(warm, (int)runs);
    double cw = bench_median(ratio, (int)runs);
    snprintf(what, sizeof what, "skynet 10^%u, first tree in a fresh runtime (median of %ld)",
             sky_levels, runs);
    snprintf(v, sizeof v, "%.1f ms", c);
    snprintf(bl, sizeof bl, "%.1f ms", w);
    line("4", what, v, bl, "-", "-");
    snprintf(v, sizeof v, "%.2f", cw);
    row("4", "  cold / warm, median of each run's ratio", v, "-", "<= 1.3", true, cw, 1.3);
  }
  alarm(0);

  if (notes[0] != '\0')
    printf("\n%s\n", notes);
  if (unsettled > 0)
    printf("\nnote: %d RSS reading%s still moving after 2 s (the last value was used)\n", unsettled,
           unsettled == 1 ? " was" : "s were");
  if (missed)
    printf("\naxon missed a target (see the status column)\n");
  return 0;
}
