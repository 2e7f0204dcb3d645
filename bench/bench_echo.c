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
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
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
#include "bench_util.h"

#ifdef AXON_HAVE_LIBUV
#include <uv.h>
#endif

#define READ_BUF (64 * 1024)
#define READS_PER_EVENT 32 /* as libuv: keep reading while reads fill the buffer */
#define MAX_CONFIGS 16
#define MAX_RUNS 51
#define PATTERN_SHIFTS 251 /* a prime: message k of connection i starts at (i*7 + k) % 251 */
#define STALL_MS 10000     /* the client gives up when nothing happens this long */

enum impl { IMPL_EPOLL, IMPL_AXON, IMPL_LIBUV, IMPL_COUNT };
static const char *const impl_names[IMPL_COUNT] = {"epoll", "axon", "libuv"};

/* What a server sends back through the pipe when it exits. */
typedef struct server_stats {
  uint64_t bytes_in, bytes_out;
  uint64_t accepted;
  uint64_t closed; /* connections closed before SIGTERM (EOF or error) */
} server_stats_t;

/* ------------------------------------------------------------------------ */
/* Server side, common parts                                                 */

static char read_buf[READ_BUF]; /* one server per process, one thread */
static server_stats_t stats;

/* Makes the listening socket: 127.0.0.1, ephemeral port, non-blocking. */
static int listen_socket(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BENCH_SYS(fd);
  int one = 1;
  BENCH_SYS(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  BENCH_SYS(bind(fd, (struct sockaddr *)&sa, sizeof sa));
  BENCH_SYS(listen(fd, 1024));
  socklen_t len = sizeof sa;
  BENCH_SYS(getsockname(fd, (struct sockaddr *)&sa, &len));
  *port = ntohs(sa.sin_port);
  return fd;
}

/* Accepts one connection: returns its fd (non-blocking, TCP_NODELAY) or -1
 * when none is pending. */
static int accept_one(int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      int one = 1;
      BENCH_SYS(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
      stats.accepted++;
      return fd;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -1;
    bench_die("server: accept4: %s", strerror(errno));
  }
}

static void write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    BENCH_SYS(n);
    p += n;
    len -= (size_t)n;
  }
}

/* Reports the port (at start) or the stats (at exit) to the parent. */
static void report(int pipe_fd, const void *what, size_t len) { write_all(pipe_fd, what, len); }

/* The echo policy of the epoll and axon servers (libuv's follows the same
 * steps through its own API). */
typedef struct echo_conn {
  int fd;
  char *pend; /* READ_BUF bytes, allocated the first time a write blocks */
  size_t pend_off, pend_len;
} echo_conn_t;

enum { ECHO_READ, ECHO_WRITE, ECHO_CLOSE }; /* what the fd should wait for next */

/* Readable: read and echo until a read comes back short.  Returns
 * ECHO_WRITE when the kernel did not take everything (the rest is queued). */
static int echo_readable(echo_conn_t *c) {
  for (int round = 0; round < READS_PER_EVENT; round++) {
    ssize_t n = read(c->fd, read_buf, sizeof read_buf);
    if (n == 0)
      return ECHO_CLOSE;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? ECHO_READ : ECHO_CLOSE;
    }
    stats.bytes_in += (uint64_t)n;
    ssize_t w = write(c->fd, read_buf, (size_t)n);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return ECHO_CLOSE;
      w = 0;
    }
    stats.bytes_out += (uint64_t)w;
    if (w < n) {
      if (c->pend == NULL && (c->pend = malloc(READ_BUF)) == NULL)
        bench_die("server: out of memory");
      c->pend_off = 0;
      c->pend_len = (size_t)(n - w);
      memcpy(c->pend, read_buf + w, c->pend_len);
      return ECHO_WRITE;
    }
    if ((size_t)n < sizeof read_buf)
      return ECHO_READ;
  }
  return ECHO_READ;
}

/* Writable: flush the queue.  ECHO_READ once it is empty. */
static int echo_writable(echo_conn_t *c) {
  while (c->pend_off < c->pend_len) {
    ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? ECHO_WRITE : ECHO_CLOSE;
    }
    stats.bytes_out += (uint64_t)w;
    c->pend_off += (size_t)w;
  }
  c->pend_off = c->pend_len = 0;
  return ECHO_READ;
}

static void echo_close(echo_conn_t *c) {
  BENCH_SYS(close(c->fd));
  free(c->pend);
}

/* ------------------------------------------------------------------------ */
/* Raw epoll server: the floor                                               */

typedef struct raw_conn {
  echo_conn_t echo;
  bool out; /* registered for EPOLLOUT (instead of EPOLLIN) */
  struct raw_conn *next, *prev;
} raw_conn_t;

static raw_conn_t *raw_conns;
static char raw_listen_tag, raw_signal_tag; /* epoll data for the two special fds */

static void raw_unlink(raw_conn_t *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    raw_conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
}

static void raw_set(int epfd, raw_conn_t *c, int op, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  BENCH_SYS(epoll_ctl(epfd, op, c->echo.fd, &ev));
}

static void server_epoll(int pipe_fd) {
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  BENCH_SYS(sigprocmask(SIG_BLOCK, &term, NULL));
  int sfd = signalfd(-1, &term, SFD_NONBLOCK | SFD_CLOEXEC);
  BENCH_SYS(sfd);
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  BENCH_SYS(epfd);
  uint16_t port;
  int lfd = listen_socket(&port);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &raw_listen_tag};
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev));
  ev.data.ptr = &raw_signal_tag;
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev));
  report(pipe_fd, &port, sizeof port);

  struct epoll_event events[256];
  bool running = true;
  while (running) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0 && errno == EINTR)
      continue;
    BENCH_SYS(n);
    for (int i = 0; i < n; i++) {
      void *tag = events[i].data.ptr;
      if (tag == &raw_listen_tag) {
        int fd;
        while ((fd = accept_one(lfd)) >= 0) {
          raw_conn_t *c = calloc(1, sizeof *c);
          if (c == NULL)
            bench_die("server: out of memory");
          c->echo.fd = fd;
          c->next = raw_conns;
          if (raw_conns != NULL)
            raw_conns->prev = c;
          raw_conns = c;
          raw_set(epfd, c, EPOLL_CTL_ADD, EPOLLIN);
        }
        continue;
      }
      if (tag == &raw_signal_tag) {
        struct signalfd_siginfo si;
        BENCH_SYS(read(sfd, &si, sizeof si));
        running = false;
        continue;
      }
      raw_conn_t *c = tag;
      int next;
      if (c->out)
        next = echo_writable(&c->echo);
      else
        next = echo_readable(&c->echo);
      if (next == ECHO_CLOSE) {
        /* Not in events[] again: each fd appears once per epoll_wait. */
        raw_unlink(c);
        BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_DEL, c->echo.fd, NULL));
        echo_close(&c->echo);
        free(c);
        stats.closed++;
      } else if (next == ECHO_WRITE && !c->out) {
        raw_set(epfd, c, EPOLL_CTL_MOD, EPOLLOUT);
        c->out = true;
      } else if (next == ECHO_READ && c->out) {
        raw_set(epfd, c, EPOLL_CTL_MOD, EPOLLIN);
        c->out = false;
      }
    }
  }
  while (raw_conns != NULL) {
    raw_conn_t *c = raw_conns;
    raw_unlink(c);
    echo_close(&c->echo);
    free(c);
  }
  BENCH_SYS(close(lfd));
  BENCH_SYS(close(sfd));
  BENCH_SYS(close(epfd));
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
  BENCH_AX(ax_loop_new(&loop, NULL));
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

typedef struct client_conn {
  int fd;
  int index;
  size_t sent, recvd;
  uint64_t seq; /* messages completed */
  bool want_out, done;
  unsigned char *rbuf;
} client_conn_t;

typedef struct run_result {
  double rt_per_sec;
  double srv_ns_per_rt;
} run_result_t;

static unsigned char *pattern; /* msg + PATTERN_SHIFTS bytes */

static const unsigned char *message_of(const client_conn_t *c) {
  return pattern + ((uint64_t)c->index * 7 + c->seq) % PATTERN_SHIFTS;
}

static void client_want_out(int epfd, client_conn_t *c, bool on) {
  if (c->want_out == on)
    return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev));
  c->want_out = on;
}

/* Sends what is left of the current message. */
static void client_send(int epfd, client_conn_t *c, size_t msg) {
  const unsigned char *m = message_of(c);
  while (c->sent < msg) {
    ssize_t n = write(c->fd, m + c->sent, msg - c->sent);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      bench_die("client: write: %s", strerror(errno));
    }
    c->sent += (size_t)n;
  }
  client_want_out(epfd, c, c->sent < msg);
}

static void client_check(const client_conn_t *c, size_t msg, bool verify) {
  const unsigned char *m = message_of(c);
  size_t edge = msg < 8 ? msg : 8;
  if (verify ? memcmp(c->rbuf, m, msg) != 0
             : memcmp(c->rbuf, m, edge) != 0 || memcmp(c->rbuf + msg - edge, m + msg - edge, edge) != 0)
    bench_die("client: connection %d, message %llu: echoed bytes differ from those sent", c->index,
              (unsigned long long)c->seq);
}

/* Reads what the socket has of the reply; completes the round trip and
 * starts the next one while before the deadline.  Returns round trips done. */
static unsigned client_recv(int epfd, client_conn_t *c, size_t msg, bool verify, int64_t deadline) {
  while (c->recvd < msg) {
    ssize_t n = read(c->fd, c->rbuf + c->recvd, msg - c->recvd);
    if (n == 0)
      bench_die("client: the server closed connection %d", c->index);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      bench_die("client: read: %s", strerror(errno));
    }
    c->recvd += (size_t)n;
  }
  if (c->sent != msg)
    bench_die("client: connection %d got a reply before its message was sent", c->index);
  client_check(c, msg, verify);
  c->seq++;
  c->sent = c->recvd = 0;
  if (bench_clock_ns(CLOCK_MONOTONIC) < deadline)
    client_send(epfd, c, msg);
  else
    c->done = true;
  return 1;
}

static int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BENCH_SYS(fd);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  BENCH_SYS(connect(fd, (struct sockaddr *)&sa, sizeof sa));
  int one = 1;
  BENCH_SYS(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
  int fl = fcntl(fd, F_GETFL);
  BENCH_SYS(fl);
  BENCH_SYS(fcntl(fd, F_SETFL, fl | O_NONBLOCK));
  return fd;
}

/* Reads exactly len bytes from the server's pipe, waiting at most STALL_MS. */
static void read_pipe(int fd, void *buf, size_t len, const char *what) {
  char *p = buf;
  while (len > 0) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, STALL_MS);
    if (r < 0 && errno == EINTR)
      continue;
    BENCH_SYS(r);
    if (r == 0)
      bench_die("client: no %s from the server within %d ms", what, STALL_MS);
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    BENCH_SYS(n);
    if (n == 0)
      bench_die("client: the server exited before sending its %s", what);
    p += n;
    len -= (size_t)n;
  }
}

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
  read_pipe(pfd[0], &port, sizeof port, "port");

  int epfd = epoll_create1(EPOLL_CLOEXEC);
  BENCH_SYS(epfd);
  client_conn_t *cs = calloc((size_t)conns, sizeof *cs);
  unsigned char *rbufs = malloc((size_t)conns * msg);
  if (cs == NULL || rbufs == NULL)
    bench_die("client: out of memory");
  for (int i = 0; i < conns; i++) {
    client_conn_t *c = &cs[i];
    c->fd = connect_to(port);
    c->index = i;
    c->rbuf = rbufs + (size_t)i * msg;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev));
  }

  int64_t t0 = bench_clock_ns(CLOCK_MONOTONIC);
  int64_t deadline = t0 + (int64_t)(o->seconds * 1e9);
  for (int i = 0; i < conns; i++)
    client_send(epfd, &cs[i], msg);
  uint64_t round_trips = 0;
  int busy = conns;
  struct epoll_event *evs = calloc((size_t)conns, sizeof *evs);
  if (evs == NULL)
    bench_die("client: out of memory");
  while (busy > 0) {
    int n = epoll_wait(epfd, evs, conns, STALL_MS);
    if (n < 0 && errno == EINTR)
      continue;
    BENCH_SYS(n);
    if (n == 0)
      bench_die("client: %s server stalled (%d connections waiting for %d ms)", impl_names[impl],
                busy, STALL_MS);
    for (int i = 0; i < n; i++) {
      client_conn_t *c = evs[i].data.ptr;
      if (c->done)
        bench_die("client: connection %d: bytes after the last reply", c->index);
      if (evs[i].events & EPOLLOUT)
        client_send(epfd, c, msg);
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        unsigned done = client_recv(epfd, c, msg, o->verify, deadline);
        round_trips += done;
        if (done && c->done)
          busy--;
      }
    }
  }
  int64_t t1 = bench_clock_ns(CLOCK_MONOTONIC);

  /* No stray byte may follow the last reply. */
  for (int i = 0; i < conns; i++) {
    char extra;
    ssize_t n = read(cs[i].fd, &extra, 1);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      bench_die("client: connection %d: %s after the last reply", i,
                n > 0 ? "extra bytes" : n == 0 ? "EOF" : strerror(errno));
  }

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
  read_pipe(pfd[0], &st, sizeof st, "stats");
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
  free(evs);
  free(rbufs);
  free(cs);

  int64_t cpu_ns = ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
                   ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
  run_result_t r = {
      .rt_per_sec = (double)round_trips / ((double)(t1 - t0) / 1e9),
      .srv_ns_per_rt = (double)cpu_ns / (double)round_trips,
  };
  return r;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */

static int parse_list(const char *s, long *out, int max, const char *what) {
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

static void print_ratio(double num, double den, bool have) {
  if (have && den > 0)
    printf(" %8.3f", num / den);
  else
    printf(" %8s", "-");
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
      nconns = parse_list(argv[++i], conns, MAX_CONFIGS, "-c");
      conns_set = true;
    } else if (strcmp(a, "-m") == 0 && has_val) {
      nsizes = parse_list(argv[++i], sizes, MAX_CONFIGS, "-m");
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
      char *copy = strdup(argv[++i]), *save = NULL;
      if (copy == NULL)
        bench_die("out of memory");
      bool want[IMPL_COUNT] = {false, false, false};
      for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < IMPL_COUNT && strcmp(tok, impl_names[k]) != 0)
          k++;
        if (k == IMPL_COUNT)
          bench_die("-i: unknown implementation '%s' (epoll, axon, libuv)", tok);
        want[k] = true;
      }
      free(copy);
      for (int k = 0; k < IMPL_COUNT; k++)
        use[k] = use[k] && want[k];
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
  pattern = malloc((size_t)max_msg + PATTERN_SHIFTS);
  if (pattern == NULL)
    bench_die("out of memory");
  bench_rng_t rng = {.state = 0x6563686f};
  for (long i = 0; i < max_msg + PATTERN_SHIFTS; i++)
    pattern[i] = (unsigned char)bench_rng_next(&rng);
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
        print_ratio(med_cpu[k], med_cpu[IMPL_EPOLL], use[IMPL_EPOLL] && k != IMPL_EPOLL);
        print_ratio(med_cpu[k], med_cpu[IMPL_LIBUV], use[IMPL_LIBUV] && k != IMPL_LIBUV);
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
