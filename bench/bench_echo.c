/* bench_echo: one-core TCP echo servers (axon loop, libuv, raw epoll) under a ping-pong client.
 *
 * Usage: bench_echo [--quick] [-c LIST] [-m LIST] [-t SECONDS] [-r RUNS]
 *                   [-i LIST] [--verify]
 *   -c LIST    connection counts, comma-separated (default 1,10,100)
 *   -m LIST    message sizes in bytes (default 64,16384)
 *   -t SECONDS ping-pong time per run (default 2; decimals allowed)
 *   -r RUNS    runs per configuration; the median is reported (default 3)
 *   -i LIST    implementations among epoll,axon,libuv (default: all built)
 *   --verify   compare every echoed byte (default: the length of every
 *              message and its first and last 8 bytes)
 *   --quick    -c 1,10 -t 0.25 -r 1 --verify: a smoke run of a few seconds
 *
 * Method.  For each implementation and run, the parent forks a server
 * process that listens on 127.0.0.1 (ephemeral port, reported back through
 * a pipe) and runs on one core, pinned to the first CPU of the affinity
 * mask; the parent, the client, pins itself to the second.  The client
 * opens C connections and, over its own epoll, keeps one M-byte message in
 * flight on each: send it, read the M bytes back, check them, send the
 * next, for the given time.  It then drains the replies in flight, checks
 * that no stray byte follows, sends SIGTERM (each server handles it in its
 * loop and exits cleanly, closing everything), and takes the server's CPU
 * time (user + system) from wait4()'s rusage.  The server reports how many
 * bytes it echoed and how many connections it accepted; both must match
 * what the client saw.
 *
 * The three servers share one echo policy, so only the loop differs: on
 * readable, read (up to 64 KiB, again while reads fill the buffer) and write
 * back at once; what the kernel does not take is queued, reading pauses and
 * the fd waits for writability (level-triggered), then reading resumes.
 *   epoll  epoll_wait + read/write + signalfd: the floor
 *   axon   ax_io_t (level-triggered), ax_signal_t for SIGTERM
 *   libuv  uv_tcp_t, uv_read_start, uv_try_write then uv_write, uv_signal_t
 *
 * Reported per configuration and implementation: round trips per second,
 * server CPU ns per round trip, and the ratios of axon's CPU per round trip
 * to raw epoll's (target <= 1.05) and to libuv's.  Each is the median of the
 * runs; the runs alternate implementations so drift hits all alike.
 */
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "axon/loop.h"
#include "bench_net.h"

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif

#define READ_BUF BENCH_READ_BUF
#define MAX_CONFIGS 16
#define MAX_RUNS 51

enum impl { IMPL_EPOLL, IMPL_AXON, IMPL_LIBUV, IMPL_COUNT };
static const char *const impl_names[IMPL_COUNT] = {"epoll", "axon", "libuv"};

typedef bench_echo_stats_t server_stats_t; /* sent back through the pipe at exit */

/* ------------------------------------------------------------------------ */
/* Server side, common parts                                                 */

static char read_buf[READ_BUF]; /* one server per process, one thread */
static server_stats_t stats;

static int listen_socket(uint16_t *port) { return bench_listen(0, false, port); }
static int accept_one(int lfd) { return bench_accept(lfd, &stats); }

/* Reports the port (at start) or the stats (at exit) to the parent. */
static void report(int pipe_fd, const void *what, size_t len) {
  bench_write_all(pipe_fd, what, len);
}

/* The shared echo policy (bench_net.h) over this process's one buffer. */
typedef bench_echo_conn_t echo_conn_t;
enum { ECHO_READ = BENCH_ECHO_READ, ECHO_WRITE = BENCH_ECHO_WRITE, ECHO_CLOSE = BENCH_ECHO_CLOSE };

static int echo_readable(echo_conn_t *c) {
  return bench_echo_readable(c, read_buf, sizeof read_buf, &stats);
}
static int echo_writable(echo_conn_t *c) { return bench_echo_writable(c, &stats); }
static void echo_close(echo_conn_t *c) { bench_echo_close(c); }

/* ------------------------------------------------------------------------ */
/* Raw epoll server: the floor                                               */

static void server_epoll(int pipe_fd) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  BENCH_SYS(sigprocmask(SIG_BLOCK, &term, NULL));
  int sfd = signalfd(-1, &term, SFD_NONBLOCK | SFD_CLOEXEC); /* readable at SIGTERM */
  BENCH_SYS(sfd);
  uint16_t port;
  int lfd = listen_socket(&port);
  report(pipe_fd, &port, sizeof port);
  bench_epoll_serve(lfd, sfd, read_buf, &stats);
  BENCH_SYS(close(lfd));
  BENCH_SYS(close(sfd));
}

/* ------------------------------------------------------------------------ */
/* axon server                                                               */

typedef struct ax_conn {
  echo_conn_t echo;
  ax_io_t io;
  struct ax_conn *next, *prev;
} ax_conn_t;

static ax_conn_t *ax_conns;

static void ax_conn_close(ax_conn_t *c) {
  BENCH_AX(ax_io_stop(&c->io)); /* before close: epoll knows the fd by number */
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    ax_conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  echo_close(&c->echo);
  free(c);
}

static void ax_conn_cb(ax_io_t *io, unsigned revents) {
  ax_conn_t *c = AX_CONTAINER_OF(io, ax_conn_t, io);
  int next;
  if (io->events & AX_WRITE) /* waiting for writability only */
    next = echo_writable(&c->echo);
  else if (revents & (AX_READ | AX_HUP | AX_ERR))
    next = echo_readable(&c->echo);
  else
    return;
  if (next == ECHO_CLOSE) {
    ax_conn_close(c);
    stats.closed++;
  } else if (next == ECHO_WRITE && !(io->events & AX_WRITE)) {
    BENCH_AX(ax_io_modify(io, AX_WRITE));
  } else if (next == ECHO_READ && (io->events & AX_WRITE)) {
    BENCH_AX(ax_io_modify(io, AX_READ));
  }
}

static void ax_listen_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  int fd;
  while ((fd = accept_one(io->fd)) >= 0) {
    ax_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL)
      bench_die("server: out of memory");
    c->echo.fd = fd;
    BENCH_AX(ax_io_init(io->loop, &c->io, fd, ax_conn_cb));
    BENCH_AX(ax_io_start(&c->io, AX_READ));
    c->next = ax_conns;
    if (ax_conns != NULL)
      ax_conns->prev = c;
    ax_conns = c;
  }
}

static void ax_term_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  (void)info;
  ax_loop_stop(sig->loop);
}

static void server_axon(int pipe_fd) {
  ax_loop_t *loop;
  BENCH_AX(ax_loop_new(NULL, &loop));
  ax_signal_t term;
  BENCH_AX(ax_signal_init(loop, &term, ax_term_cb));
  BENCH_AX(ax_signal_start(&term, SIGTERM));
  uint16_t port;
  int lfd = listen_socket(&port);
  ax_io_t listener;
  BENCH_AX(ax_io_init(loop, &listener, lfd, ax_listen_cb));
  BENCH_AX(ax_io_start(&listener, AX_READ));
  report(pipe_fd, &port, sizeof port);

  int rc = ax_loop_run(loop, AX_FOREVER);
  if (rc != AX_RUN_STOPPED)
    bench_die("axon server: ax_loop_run returned %d (%s)", rc, rc < 0 ? ax_strerror(rc) : "");
  while (ax_conns != NULL)
    ax_conn_close(ax_conns);
  BENCH_AX(ax_io_stop(&listener));
  BENCH_SYS(close(lfd));
  BENCH_AX(ax_signal_stop(&term));
  BENCH_AX(ax_loop_close(loop, 0)); /* 0: fails if anything was left active */
}

/* ------------------------------------------------------------------------ */
/* libuv server                                                              */

#ifdef AXON_HAVE_LIBUV
typedef struct uv_conn {
  uv_tcp_t tcp;
  uv_write_t req;
  char *pend; /* READ_BUF bytes, allocated the first time a write blocks */
} uv_conn_t;

static void uv_conn_closed(uv_handle_t *h) {
  uv_conn_t *c = AX_CONTAINER_OF(h, uv_conn_t, tcp);
  free(c->pend);
  free(c);
}

static void uv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(read_buf, sizeof read_buf);
}

static void uv_read_done(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void uv_write_done(uv_write_t *req, int status) {
  uv_conn_t *c = AX_CONTAINER_OF(req, uv_conn_t, req);
  if (status < 0) { /* UV_ECANCELED when the connection is being closed */
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
      uv_close((uv_handle_t *)&c->tcp, uv_conn_closed);
      stats.closed++;
    }
    return;
  }
  BENCH_UV(uv_read_start((uv_stream_t *)&c->tcp, uv_alloc, uv_read_done));
}

static void uv_read_done(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  uv_conn_t *c = AX_CONTAINER_OF(s, uv_conn_t, tcp);
  if (nread < 0) { /* UV_EOF or an error */
    uv_close((uv_handle_t *)&c->tcp, uv_conn_closed);
    stats.closed++;
    return;
  }
  if (nread == 0)
    return;
  stats.bytes_in += (uint64_t)nread;
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
  int w = uv_try_write(s, &out, 1);
  if (w == UV_EAGAIN) {
    w = 0;
  } else if (w < 0) {
    uv_close((uv_handle_t *)&c->tcp, uv_conn_closed);
    stats.closed++;
    return;
  }
  stats.bytes_out += (uint64_t)w;
  if (w < nread) {
    /* Queue the rest and stop reading until it is written, as the others. */
    if (c->pend == NULL && (c->pend = malloc(READ_BUF)) == NULL)
      bench_die("server: out of memory");
    size_t rest = (size_t)(nread - w);
    memcpy(c->pend, buf->base + w, rest);
    out = uv_buf_init(c->pend, (unsigned)rest);
    BENCH_UV(uv_read_stop(s));
    BENCH_UV(uv_write(&c->req, s, &out, 1, uv_write_done));
    stats.bytes_out += rest; /* uv_write_done reports failure by closing */
  }
}

static void uv_accept_cb(uv_stream_t *server, int status) {
  BENCH_UV(status);
  uv_conn_t *c = calloc(1, sizeof *c);
  if (c == NULL)
    bench_die("server: out of memory");
  BENCH_UV(uv_tcp_init(server->loop, &c->tcp));
  BENCH_UV(uv_accept(server, (uv_stream_t *)&c->tcp));
  BENCH_UV(uv_tcp_nodelay(&c->tcp, 1));
  stats.accepted++;
  BENCH_UV(uv_read_start((uv_stream_t *)&c->tcp, uv_alloc, uv_read_done));
}

static void uv_close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h))
    return;
  if (h->type == UV_TCP && h->data == NULL) /* a connection, not the listener */
    uv_close(h, uv_conn_closed);
  else
    uv_close(h, NULL);
}

static void uv_term_cb(uv_signal_t *sig, int signo) {
  (void)signo;
  uv_walk(sig->loop, uv_close_any, NULL); /* the loop returns once all are closed */
}

static void server_libuv(int pipe_fd) {
  uv_loop_t loop;
  BENCH_UV(uv_loop_init(&loop));
  uv_signal_t term;
  BENCH_UV(uv_signal_init(&loop, &term));
  BENCH_UV(uv_signal_start(&term, uv_term_cb, SIGTERM));
  uv_tcp_t listener;
  BENCH_UV(uv_tcp_init(&loop, &listener));
  listener.data = &listener; /* marks the listener for uv_close_any */
  struct sockaddr_in sa;
  BENCH_UV(uv_ip4_addr("127.0.0.1", 0, &sa));
  BENCH_UV(uv_tcp_bind(&listener, (const struct sockaddr *)&sa, 0));
  BENCH_UV(uv_listen((uv_stream_t *)&listener, 1024, uv_accept_cb));
  int len = sizeof sa;
  BENCH_UV(uv_tcp_getsockname(&listener, (struct sockaddr *)&sa, &len));
  uint16_t port = ntohs(sa.sin_port);
  report(pipe_fd, &port, sizeof port);

  BENCH_UV(uv_run(&loop, UV_RUN_DEFAULT));
  BENCH_UV(uv_loop_close(&loop)); /* fails with UV_EBUSY if a handle was left */
}
#endif /* AXON_HAVE_LIBUV */

/* Runs in the forked child: pin, serve until SIGTERM, report, exit. */
_Noreturn static void server_main(enum impl impl, int pipe_fd, int cpu) {
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    BENCH_SYS(sched_setaffinity(0, sizeof set, &set));
  }
  signal(SIGPIPE, SIG_IGN); /* a peer that vanishes is an error return, not a kill */
  switch (impl) {
  case IMPL_EPOLL:
    server_epoll(pipe_fd);
    break;
  case IMPL_AXON:
    server_axon(pipe_fd);
    break;
  case IMPL_LIBUV:
#ifdef AXON_HAVE_LIBUV
    server_libuv(pipe_fd);
#endif
    break;
  default:
    bench_die("unknown implementation");
  }
  report(pipe_fd, &stats, sizeof stats);
  _exit(0);
}

/* ------------------------------------------------------------------------ */
/* Client                                                                    */

typedef struct run_result {
  double rt_per_sec;
  double srv_ns_per_rt;
} run_result_t;

static unsigned char *pattern; /* the largest message + BENCH_PATTERN_SHIFTS bytes */

typedef struct bench_opts {
  int server_cpu, client_cpu; /* -1: not pinned */
  double seconds;
  bool verify;
} bench_opts_t;

/* One run: fork the server, drive it, stop it, measure it. */
static run_result_t run_once(enum impl impl, int conns, size_t msg, const bench_opts_t *o) {
  int pfd[2];
  BENCH_SYS(pipe2(pfd, O_CLOEXEC));
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  BENCH_SYS(pid);
  if (pid == 0) {
    close(pfd[0]);
    server_main(impl, pfd[1], o->server_cpu);
  }
  BENCH_SYS(close(pfd[1]));
  uint16_t port;
  bench_read_exact(pfd[0], &port, sizeof port, "port");

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  BENCH_SYS(epfd);
  bench_pp_conn_t *cs = calloc((size_t)conns, sizeof *cs);
  unsigned char *rbufs = malloc((size_t)conns * msg);
  if (cs == NULL || rbufs == NULL)
    bench_die("client: out of memory");
  for (int i = 0; i < conns; i++)
    bench_pp_open(&cs[i], i, port, epfd, rbufs + (size_t)i * msg);
  const bench_pp_t pp = {
      .pattern = pattern, .msg = msg, .verify = o->verify, .server = impl_names[impl]};

  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  uint64_t round_trips = bench_pp_run(&pp, epfd, cs, conns, t0 + (int64_t)(o->seconds * 1e9));
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);
  bench_pp_check_quiet(&pp, cs, conns);

  BENCH_SYS(kill(pid, SIGTERM));
  int status;
  struct rusage ru;
  pid_t w;
  while ((w = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR) {
  }
  BENCH_SYS(w);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    bench_die("%s server did not exit cleanly (status 0x%x)", impl_names[impl], status);
  server_stats_t st;
  bench_read_exact(pfd[0], &st, sizeof st, "stats");
  BENCH_SYS(close(pfd[0]));

  uint64_t bytes = round_trips * msg;
  if (st.accepted != (uint64_t)conns || st.closed != 0 || st.bytes_in != bytes ||
      st.bytes_out != bytes)
    bench_die("%s server: accepted %llu of %d, closed %llu early, echoed %llu/%llu of %llu bytes",
              impl_names[impl], (unsigned long long)st.accepted, conns,
              (unsigned long long)st.closed, (unsigned long long)st.bytes_in,
              (unsigned long long)st.bytes_out, (unsigned long long)bytes);
  if (round_trips == 0)
    bench_die("%s: no round trip completed", impl_names[impl]);

  for (int i = 0; i < conns; i++)
    BENCH_SYS(close(cs[i].fd));
  BENCH_SYS(close(epfd));
  free(rbufs);
  free(cs);

  run_result_t r = {
      .rt_per_sec = (double)round_trips / ((double)(t1 - t0) / 1e9),
      .srv_ns_per_rt = (double)bench_rusage_ns(&ru) / (double)round_trips,
  };
  return r;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

static void usage(void) {
  fputs("usage: bench_echo [--quick] [-c LIST] [-m LIST] [-t SECONDS] [-r RUNS] [-i LIST]"
        " [--verify]\n",
        stderr);
  exit(2);
}

/* Picks the first two CPUs of the affinity mask: server, client. */
static void pick_cpus(bench_opts_t *o) {
  cpu_set_t set;
  BENCH_SYS(sched_getaffinity(0, sizeof set, &set));
  o->server_cpu = o->client_cpu = -1;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set))
      continue;
    if (o->server_cpu < 0) {
      o->server_cpu = cpu;
    } else {
      o->client_cpu = cpu;
      break;
    }
  }
  if (o->client_cpu < 0) {
    o->server_cpu = -1; /* one CPU: nothing to pin apart */
    return;
  }
  CPU_ZERO(&set);
  CPU_SET(o->client_cpu, &set);
  BENCH_SYS(sched_setaffinity(0, sizeof set, &set));
}

int main(int argc, char **argv) {
  long conns[MAX_CONFIGS] = {1, 10, 100}, sizes[MAX_CONFIGS] = {64, 16384};
  int nconns = 3, nsizes = 2;
  long runs = 3;
  bool quick = false, conns_set = false, runs_set = false, secs_set = false;
  bench_opts_t o = {.seconds = 2, .verify = false};
  bool use[IMPL_COUNT] = {true, true, true};
#ifndef AXON_HAVE_LIBUV
  use[IMPL_LIBUV] = false;
#endif
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_val = i + 1 < argc;
    if (strcmp(a, "--quick") == 0) {
      quick = true;
    } else if (strcmp(a, "--verify") == 0) {
      o.verify = true;
    } else if (strcmp(a, "-c") == 0 && has_val) {
      nconns = bench_parse_list(argv[++i], conns, MAX_CONFIGS, "-c");
      conns_set = true;
    } else if (strcmp(a, "-m") == 0 && has_val) {
      nsizes = bench_parse_list(argv[++i], sizes, MAX_CONFIGS, "-m");
    } else if (strcmp(a, "-r") == 0 && has_val) {
      runs = bench_parse_count(argv[++i], "-r");
      runs_set = true;
    } else if (strcmp(a, "-t") == 0 && has_val) {
      char *end;
      o.seconds = strtod(argv[++i], &end);
      if (*end != '\0' || !(o.seconds > 0 && o.seconds < 3600))
        bench_die("-t: not a duration in seconds: '%s'", argv[i]);
      secs_set = true;
    } else if (strcmp(a, "-i") == 0 && has_val) {
      bench_parse_names(argv[++i], impl_names, use, IMPL_COUNT, "-i");
    } else {
      usage();
    }
  }
  if (quick) {
    if (!conns_set) {
      conns[0] = 1;
      conns[1] = 10;
      nconns = 2;
    }
    if (!secs_set)
      o.seconds = 0.25;
    if (!runs_set)
      runs = 1;
    o.verify = true;
  }
  if (runs > MAX_RUNS)
    bench_die("-r: at most %d", MAX_RUNS);
  long max_msg = 0;
  for (int i = 0; i < nsizes; i++)
    max_msg = sizes[i] > max_msg ? sizes[i] : max_msg;
  if (max_msg > 64L * 1024 * 1024)
    bench_die("-m: at most 64 MiB");
  pattern = bench_pattern_new((size_t)max_msg, 0x6563686f);
  signal(SIGPIPE, SIG_IGN);
  pick_cpus(&o);

  printf("bench_echo: %.2f s per run, median of %ld run%s%s, content check: %s\n", o.seconds, runs,
         runs == 1 ? "" : "s", quick ? " (--quick)" : "",
         o.verify ? "every byte" : "length + first/last 8 bytes");
  if (o.server_cpu >= 0)
    printf("server pinned to CPU %d, client to CPU %d\n", o.server_cpu, o.client_cpu);
  else
    printf("one CPU available: no pinning (server and client share it)\n");
  printf("axon %s", ax_version_string());
#ifdef AXON_HAVE_LIBUV
  printf(", libuv %s\n", uv_version_string());
#else
  printf("; libuv not found at build time: no libuv rows\n");
#endif
  printf("srv ns/rt = server CPU (user+sys, from wait4) per round trip; spread = its\n"
         "(max-min)/median over the runs; x/epoll, x/libuv = srv ns/rt ratio to the raw epoll\n"
         "floor and to libuv; the rt/s ratio on axon's line is axon's vs epoll's\n\n");
  printf("%6s %7s  %-6s %11s %11s %7s %8s %8s\n", "conns", "msg", "impl", "rt/s", "srv ns/rt",
         "spread", "x/epoll", "x/libuv");

  bool missed = false, checked = false;
  for (int ci = 0; ci < nconns; ci++) {
    for (int si = 0; si < nsizes; si++) {
      double rts[IMPL_COUNT][MAX_RUNS], cpu[IMPL_COUNT][MAX_RUNS];
      double med_rt[IMPL_COUNT] = {0}, med_cpu[IMPL_COUNT] = {0}, spread[IMPL_COUNT] = {0};
      for (long r = 0; r < runs; r++) {
        for (int k = 0; k < IMPL_COUNT; k++) {
          if (!use[k])
            continue;
          run_result_t res = run_once((enum impl)k, (int)conns[ci], (size_t)sizes[si], &o);
          rts[k][r] = res.rt_per_sec;
          cpu[k][r] = res.srv_ns_per_rt;
        }
      }
      for (int k = 0; k < IMPL_COUNT; k++) {
        if (!use[k])
          continue;
        med_rt[k] = bench_median(rts[k], (int)runs);
        med_cpu[k] = bench_median(cpu[k], (int)runs); /* sorts cpu[k] */
        spread[k] = (cpu[k][runs - 1] - cpu[k][0]) / med_cpu[k] * 100;
      }
      for (int k = 0; k < IMPL_COUNT; k++) {
        if (!use[k])
          continue;
        printf("%6ld %7ld  %-6s %11.0f %11.0f %6.1f%%", conns[ci], sizes[si], impl_names[k],
               med_rt[k], med_cpu[k], spread[k]);
        bench_print_ratio(med_cpu[k], med_cpu[IMPL_EPOLL], use[IMPL_EPOLL] && k != IMPL_EPOLL, 8);
        bench_print_ratio(med_cpu[k], med_cpu[IMPL_LIBUV], use[IMPL_LIBUV] && k != IMPL_LIBUV, 8);
        if (k == IMPL_AXON && use[IMPL_EPOLL]) {
          double ratio = med_cpu[IMPL_AXON] / med_cpu[IMPL_EPOLL];
          bool ok = ratio <= 1.05;
          checked = true;
          missed |= !ok;
          printf("  target <= 1.05 %s; rt/s %.3f of epoll", ok ? "met" : "MISSED",
                 med_rt[IMPL_AXON] / med_rt[IMPL_EPOLL]);
        }
        printf("\n");
        fflush(stdout);
      }
    }
  }
  if (checked)
    printf("\n%s\n", missed ? "axon missed the CPU target (<= 1.05x raw epoll) somewhere above"
                            : "axon met the CPU target (<= 1.05x raw epoll) everywhere above");
  free(pattern);
  return 0;
}
