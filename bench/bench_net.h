/* TCP pieces shared by the echo benchmarks: sockets, the echo policy, the ping-pong client. */
#ifndef AXON_BENCH_NET_H
#define AXON_BENCH_NET_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"

#define BENCH_READ_BUF (64 * 1024) /* a server's read buffer */
#define BENCH_READS_PER_EVENT 32   /* as libuv: keep reading while reads fill the buffer */
#define BENCH_PATTERN_SHIFTS 251   /* a prime: message k of connection i starts at (i*7+k) % 251 */
#define BENCH_STALL_MS 10000       /* the client gives up when nothing happens this long */

/* What an echo server counts, and sends back through its pipe when it exits. */
typedef struct bench_echo_stats {
  uint64_t bytes_in, bytes_out;
  uint64_t accepted;
  uint64_t closed; /* connections closed before SIGTERM (EOF or error) */
} bench_echo_stats_t;

/* ------------------------------------------------------------------------ */
/* Pipes and processes                                                       */

/* Writes all of buf to a blocking fd, or exits. */
static inline void bench_write_all(int fd, const void *buf, size_t len) {
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

/* Reads exactly len bytes from a server's pipe, waiting at most
 * BENCH_STALL_MS for each piece; exits naming `what` on a timeout or EOF. */
static inline void bench_read_exact(int fd, void *buf, size_t len, const char *what) {
  char *p = buf;
  while (len > 0) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, BENCH_STALL_MS);
    if (r < 0 && errno == EINTR)
      continue;
    BENCH_SYS(r);
    if (r == 0)
      bench_die("client: no %s from the server within %d ms", what, BENCH_STALL_MS);
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

/* User + system time of a struct rusage, in nanoseconds. */
static inline int64_t bench_rusage_ns(const struct rusage *ru) {
  return ((int64_t)ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) * 1000;
}

/* ------------------------------------------------------------------------ */
/* Server side                                                               */

/* Makes a non-blocking listening socket on 127.0.0.1:port (0: an ephemeral
 * port), with SO_REUSEPORT when asked (before bind, so that more sockets
 * can join the port).  *bound receives the port. */
static inline int bench_listen(uint16_t port, bool reuseport, uint16_t *bound) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  BENCH_SYS(fd);
  int one = 1;
  BENCH_SYS(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  if (reuseport)
    BENCH_SYS(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one));
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  BENCH_SYS(bind(fd, (struct sockaddr *)&sa, sizeof sa));
  BENCH_SYS(listen(fd, 1024));
  socklen_t len = sizeof sa;
  BENCH_SYS(getsockname(fd, (struct sockaddr *)&sa, &len));
  *bound = ntohs(sa.sin_port);
  return fd;
}

/* Accepts one connection: returns its fd (non-blocking, TCP_NODELAY) and
 * counts it, or returns -1 when none is pending. */
static inline int bench_accept(int lfd, bench_echo_stats_t *st) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      int one = 1;
      BENCH_SYS(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
      st->accepted++;
      return fd;
    }
    if (errno == EINTR || errno == ECONNABORTED)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return -1;
    bench_die("server: accept4: %s", strerror(errno));
  }
}

/* The echo policy of the servers written on a readiness API (libuv's
 * follows the same steps through its own calls): on readable, read and
 * write straight back, again while reads fill the buffer; what the kernel
 * does not take is queued, reading pauses and the fd waits for writability
 * (level-triggered), then reading resumes. */
typedef struct bench_echo_conn {
  int fd;
  char *pend; /* BENCH_READ_BUF bytes, allocated the first time a write blocks */
  size_t pend_off, pend_len;
} bench_echo_conn_t;

enum { BENCH_ECHO_READ, BENCH_ECHO_WRITE, BENCH_ECHO_CLOSE }; /* what to wait for next */

/* Readable: read into buf (size bytes, at most BENCH_READ_BUF) and echo
 * until a read comes back short.  Returns BENCH_ECHO_WRITE when the kernel
 * did not take everything (the rest is queued in c->pend). */
static inline int bench_echo_readable(bench_echo_conn_t *c, char *buf, size_t size,
                                      bench_echo_stats_t *st) {
  for (int round = 0; round < BENCH_READS_PER_EVENT; round++) {
    ssize_t n = read(c->fd, buf, size);
    if (n == 0)
      return BENCH_ECHO_CLOSE;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? BENCH_ECHO_READ : BENCH_ECHO_CLOSE;
    }
    st->bytes_in += (uint64_t)n;
    ssize_t w = write(c->fd, buf, (size_t)n);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return BENCH_ECHO_CLOSE;
      w = 0;
    }
    st->bytes_out += (uint64_t)w;
    if (w < n) {
      if (c->pend == NULL && (c->pend = malloc(BENCH_READ_BUF)) == NULL)
        bench_die("server: out of memory");
      c->pend_off = 0;
      c->pend_len = (size_t)(n - w);
      memcpy(c->pend, buf + w, c->pend_len);
      return BENCH_ECHO_WRITE;
    }
    if ((size_t)n < size)
      return BENCH_ECHO_READ;
  }
  return BENCH_ECHO_READ;
}

/* Writable: flush the queue.  BENCH_ECHO_READ once it is empty. */
static inline int bench_echo_writable(bench_echo_conn_t *c, bench_echo_stats_t *st) {
  while (c->pend_off < c->pend_len) {
    ssize_t w = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? BENCH_ECHO_WRITE : BENCH_ECHO_CLOSE;
    }
    st->bytes_out += (uint64_t)w;
    c->pend_off += (size_t)w;
  }
  c->pend_off = c->pend_len = 0;
  return BENCH_ECHO_READ;
}

/* Closes the fd and frees the queue. */
static inline void bench_echo_close(bench_echo_conn_t *c) {
  BENCH_SYS(close(c->fd));
  free(c->pend);
  c->pend = NULL;
}

/* The raw epoll echo server, the floor: one epoll, level-triggered,
 * serving the connections accepted on lfd with the echo policy above
 * (reading through buf, BENCH_READ_BUF bytes) until stop_fd becomes
 * readable.  stop_fd is not read, so one eventfd can stop several threads.
 * Then closes every connection and its epoll fd; lfd and stop_fd stay
 * open. */
typedef struct bench_epoll_conn {
  bench_echo_conn_t echo;
  bool out; /* registered for EPOLLOUT (instead of EPOLLIN) */
  struct bench_epoll_conn *next, *prev;
} bench_epoll_conn_t;

static inline void bench_epoll_set(int epfd, bench_epoll_conn_t *c, int op, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  BENCH_SYS(epoll_ctl(epfd, op, c->echo.fd, &ev));
}

static inline void bench_epoll_drop(bench_epoll_conn_t **list, bench_epoll_conn_t *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    *list = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  bench_echo_close(&c->echo);
  free(c);
}

static inline void bench_epoll_serve(int lfd, int stop_fd, char *buf, bench_echo_stats_t *st) {
  static const char listen_tag = 'l', stop_tag = 's'; /* epoll data of the two special fds */
  bench_epoll_conn_t *conns = NULL;
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  BENCH_SYS(epfd);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)&listen_tag};
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev));
  ev.data.ptr = (void *)&stop_tag;
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, stop_fd, &ev));
  struct epoll_event events[256];
  bool running = true;
  while (running) {
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0 && errno == EINTR)
      continue;
    BENCH_SYS(n);
    for (int i = 0; i < n; i++) {
      void *tag = events[i].data.ptr;
      if (tag == &stop_tag) {
        running = false;
      } else if (tag == &listen_tag) {
        int fd;
        while ((fd = bench_accept(lfd, st)) >= 0) {
          bench_epoll_conn_t *c = calloc(1, sizeof *c);
          if (c == NULL)
            bench_die("server: out of memory");
          c->echo.fd = fd;
          c->next = conns;
          if (conns != NULL)
            conns->prev = c;
          conns = c;
          bench_epoll_set(epfd, c, EPOLL_CTL_ADD, EPOLLIN);
        }
      } else {
        bench_epoll_conn_t *c = tag;
        int next = c->out ? bench_echo_writable(&c->echo, st)
                          : bench_echo_readable(&c->echo, buf, BENCH_READ_BUF, st);
        if (next == BENCH_ECHO_CLOSE) {
          /* Not in events[] again: each fd appears once per epoll_wait. */
          BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_DEL, c->echo.fd, NULL));
          bench_epoll_drop(&conns, c);
          st->closed++;
        } else if ((next == BENCH_ECHO_WRITE) != c->out) {
          c->out = !c->out;
          bench_epoll_set(epfd, c, EPOLL_CTL_MOD, c->out ? EPOLLOUT : EPOLLIN);
        }
      }
    }
  }
  while (conns != NULL)
    bench_epoll_drop(&conns, conns);
  BENCH_SYS(close(epfd));
}

/* ------------------------------------------------------------------------ */
/* Client: ping-pong over connections, one message in flight on each         */

/* Message k of connection i is `msg` bytes of a pseudo-random pattern
 * starting at offset (i*7 + k) % BENCH_PATTERN_SHIFTS, so that stale or
 * crossed data is caught. */
typedef struct bench_pp {
  const unsigned char *pattern; /* msg + BENCH_PATTERN_SHIFTS bytes */
  size_t msg;                   /* message size */
  bool verify;                  /* compare every byte (else length + first/last 8) */
  const char *server;           /* the server's name, for messages */
} bench_pp_t;

typedef struct bench_pp_conn {
  int fd;
  int index;
  size_t sent, recvd;
  uint64_t seq; /* messages completed */
  bool want_out, done;
  unsigned char *rbuf; /* msg bytes */
} bench_pp_conn_t;

/* A pattern of len + BENCH_PATTERN_SHIFTS pseudo-random bytes (malloc'd). */
static inline unsigned char *bench_pattern_new(size_t len, uint64_t seed) {
  unsigned char *p = malloc(len + BENCH_PATTERN_SHIFTS);
  if (p == NULL)
    bench_die("out of memory");
  bench_rng_t rng = {.state = seed};
  for (size_t i = 0; i < len + BENCH_PATTERN_SHIFTS; i++)
    p[i] = (unsigned char)bench_rng_next(&rng);
  return p;
}

/* Connects conn `index` to 127.0.0.1:port (blocking connect, then
 * non-blocking, TCP_NODELAY) and registers it with epfd for reading. */
static inline void bench_pp_open(bench_pp_conn_t *c, int index, uint16_t port, int epfd,
                                 unsigned char *rbuf) {
  *c = (bench_pp_conn_t){.index = index, .rbuf = rbuf};
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  BENCH_SYS(c->fd);
  struct sockaddr_in sa = {
      .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  BENCH_SYS(connect(c->fd, (struct sockaddr *)&sa, sizeof sa));
  int one = 1;
  BENCH_SYS(setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
  int fl = fcntl(c->fd, F_GETFL);
  BENCH_SYS(fl);
  BENCH_SYS(fcntl(c->fd, F_SETFL, fl | O_NONBLOCK));
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev));
}

static inline const unsigned char *bench_pp_message(const bench_pp_t *pp,
                                                    const bench_pp_conn_t *c) {
  return pp->pattern + ((uint64_t)c->index * 7 + c->seq) % BENCH_PATTERN_SHIFTS;
}

static inline void bench_pp_want_out(int epfd, bench_pp_conn_t *c, bool on) {
  if (c->want_out == on)
    return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  BENCH_SYS(epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev));
  c->want_out = on;
}

/* Sends what is left of the current message; waits for writability if the
 * kernel does not take it all. */
static inline void bench_pp_send(const bench_pp_t *pp, int epfd, bench_pp_conn_t *c) {
  const unsigned char *m = bench_pp_message(pp, c);
  while (c->sent < pp->msg) {
    ssize_t n = write(c->fd, m + c->sent, pp->msg - c->sent);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      bench_die("client: write: %s", strerror(errno));
    }
    c->sent += (size_t)n;
  }
  bench_pp_want_out(epfd, c, c->sent < pp->msg);
}

static inline void bench_pp_check(const bench_pp_t *pp, const bench_pp_conn_t *c) {
  const unsigned char *m = bench_pp_message(pp, c);
  size_t msg = pp->msg, edge = msg < 8 ? msg : 8;
  bool ok = pp->verify ? memcmp(c->rbuf, m, msg) == 0
                       : memcmp(c->rbuf, m, edge) == 0 &&
                             memcmp(c->rbuf + msg - edge, m + msg - edge, edge) == 0;
  if (!ok)
    bench_die("client: %s: connection %d, message %llu: echoed bytes differ from those sent",
              pp->server, c->index, (unsigned long long)c->seq);
}

/* Reads what the socket has of the reply; completes the round trip and
 * starts the next one while before the deadline.  Returns round trips done
 * (0 or 1). */
static inline unsigned bench_pp_recv(const bench_pp_t *pp, int epfd, bench_pp_conn_t *c,
                                     int64_t deadline) {
  while (c->recvd < pp->msg) {
    ssize_t n = read(c->fd, c->rbuf + c->recvd, pp->msg - c->recvd);
    if (n == 0)
      bench_die("client: %s server closed connection %d", pp->server, c->index);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      bench_die("client: read: %s", strerror(errno));
    }
    c->recvd += (size_t)n;
  }
  if (c->sent != pp->msg)
    bench_die("client: connection %d got a reply before its message was sent", c->index);
  bench_pp_check(pp, c);
  c->seq++;
  c->sent = c->recvd = 0;
  if (bench_clock_ns(CLOCK_MONOTONIC) < deadline)
    bench_pp_send(pp, epfd, c);
  else
    c->done = true;
  return 1;
}

/* Runs ping-pong on the n connections registered with epfd (and only
 * those) until `deadline` (CLOCK_MONOTONIC ns): each keeps one message in
 * flight; after the deadline each finishes the round trip it has started.
 * A deadline already past makes exactly one round trip per connection (a
 * warm-up).  Returns the round trips completed; exits on any error, wrong
 * byte or a server silent for BENCH_STALL_MS. */
static inline uint64_t bench_pp_run(const bench_pp_t *pp, int epfd, bench_pp_conn_t *cs, int n,
                                    int64_t deadline) {
  if (n == 0)
    return 0;
  struct epoll_event *evs = calloc((size_t)n, sizeof *evs);
  if (evs == NULL)
    bench_die("client: out of memory");
  for (int i = 0; i < n; i++) {
    cs[i].done = false;
    bench_pp_send(pp, epfd, &cs[i]);
  }
  uint64_t round_trips = 0;
  int busy = n;
  while (busy > 0) {
    int k = epoll_wait(epfd, evs, n, BENCH_STALL_MS);
    if (k < 0 && errno == EINTR)
      continue;
    BENCH_SYS(k);
    if (k == 0)
      bench_die("client: %s server stalled (%d connections waiting for %d ms)", pp->server, busy,
                BENCH_STALL_MS);
    for (int i = 0; i < k; i++) {
      bench_pp_conn_t *c = evs[i].data.ptr;
      if (c->done)
        bench_die("client: %s: connection %d: bytes after the last reply", pp->server, c->index);
      if (evs[i].events & EPOLLOUT)
        bench_pp_send(pp, epfd, c);
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        unsigned done = bench_pp_recv(pp, epfd, c, deadline);
        round_trips += done;
        if (done && c->done)
          busy--;
      }
    }
  }
  free(evs);
  return round_trips;
}

/* Checks that no byte (nor EOF, nor an error) follows the last reply on
 * any of the n connections. */
static inline void bench_pp_check_quiet(const bench_pp_t *pp, const bench_pp_conn_t *cs, int n) {
  for (int i = 0; i < n; i++) {
    char extra;
    ssize_t r = read(cs[i].fd, &extra, 1);
    if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
      bench_die("client: %s: connection %d: %s after the last reply", pp->server, cs[i].index,
                r > 0 ? "extra bytes" : r == 0 ? "EOF" : strerror(errno));
  }
}

#endif /* AXON_BENCH_NET_H */
