/* Check suite for fibers, I/O: stream reads across boundaries, exact reads, deadlines that consume nothing, write_all with a slow peer, accept and dial, datagrams, any fd, cancellation in every wait, sources closed on return, EOF and reset, a two-port pty bridge. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fiber_test.h"

/*
 * As in fiber_test.h: fibers record their first failed check in a fib_t
 * at the start of their argument, and the test thread asserts on it once
 * the fiber's terminate hook ran.  The test thread plays the peers with
 * plain sockets, pipes and ptys, and paces itself on the fiber's `phase`
 * (set by the fiber just before it waits) where the order matters.
 */

enum {
  MSG_GO = AX_MSG_USER,
};

/* n bytes read into buf must be exactly the string want. */
#define FCHECK_BYTES(f, n, buf, want)                                                     \
  do {                                                                                    \
    long n_ = (long)(n);                                                                  \
    size_t wl_ = strlen(want);                                                            \
    if (n_ != (long)wl_ || memcmp((buf), (want), wl_) != 0)                               \
      fib_fail((f), __LINE__, "read %ld (%s) \"%.*s\", want %zu \"%s\"", n_,              \
               n_ < 0 ? ax_strerror((int)n_) : "bytes", n_ > 0 ? (int)n_ : 0,             \
               (const char *)(buf), wl_, (want));                                         \
  } while (0)

static void socketpair_cloexec(int sv[2]) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* A TCP listener on 127.0.0.1, on a port the kernel chose (*port). */
static int loopback_listener(int *port) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(lfd, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(lfd, 4), 0);
  socklen_t alen = sizeof a;
  ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
  *port = ntohs(a.sin_port);
  return lfd;
}

/* Writes a whole string to a blocking fd. */
static void put(int fd, const char *s) {
  size_t len = strlen(s);
  while (len > 0) {
    ssize_t n = write(fd, s, len);
    if (n < 0 && errno == EINTR)
      continue;
    ck_assert_msg(n > 0, "write: %s", strerror(errno));
    s += n;
    len -= (size_t)n;
  }
}

/* In a fiber: opens a stream on fd (both ways); a failure is a failed check. */
static int open_fd_stream(ax_actor_t *self, fib_t *f, int fd, const ax_stream_opts_t *o,
                          ax_stream_t **s) {
  int rc = ax_pipe_open(self, fd, fd, o, s);
  FCHECK_EQ(f, rc, 0);
  return rc;
}

/* Writes the NULL-ended strings to a blocking fd one after another, pausing
 * pause_ms between them, so that the reader sees them in separate reads. */
static void put_pieces(int fd, int pause_ms, ...) {
  va_list ap;
  va_start(ap, pause_ms);
  const char *p = va_arg(ap, const char *);
  while (p != NULL) {
    put(fd, p);
    p = va_arg(ap, const char *);
    if (p != NULL)
      test_sleep_ms(pause_ms);
  }
  va_end(ap);
}

/* Reads exactly len bytes from fd within timeout_ms (poll + read). */
static void get_exact(int fd, void *buf, size_t len, int timeout_ms) {
  unsigned char *p = buf;
  int64_t end = ax_now() + (int64_t)timeout_ms * MSEC;
  size_t have = 0;
  while (have < len) {
    int64_t left = (end - ax_now()) / MSEC;
    ck_assert_msg(left > 0, "only %zu of %zu bytes within %d ms", have, len, timeout_ms);
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, (int)left);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr == 0)
      continue;
    ssize_t n = read(fd, p + have, len - have);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    ck_assert_msg(n > 0, "read after %zu of %zu bytes: %s", have, len,
                  n == 0 ? "EOF" : strerror(errno));
    have += (size_t)n;
  }
}

/* Reads fd until EOF within timeout_ms: 1 for EOF, -errno for an error,
 * 0 on timeout.  Bytes read are discarded. */
static int wait_eof(int fd, int timeout_ms) {
  int64_t end = ax_now() + (int64_t)timeout_ms * MSEC;
  char buf[4096];
  while (ax_now() < end) {
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 10) != 1)
      continue;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0)
      return 1;
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return -errno;
  }
  return 0;
}

/* The byte at offset i of the 8 MiB pattern: no short period, so a lost,
 * repeated or swapped chunk shows. */
static inline unsigned char pattern_at(uint64_t i) {
  uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull;
  return (unsigned char)(x >> 56);
}

/* ------------------------------------------------------------------------ */
/* 1. ax_stream_read_until across read boundaries                            */

/* A fiber's state: its end of a socketpair; the test thread has the other. */
typedef struct sock_fib {
  fib_t f;
  int fd;
} sock_fib_t;

/* Spawns fn on core with sf on one end of a fresh socketpair; returns the
 * test thread's end. */
static int start_sock_fiber(ax_rt_t *rt, ax_fiber_fn fn, sock_fib_t *sf, unsigned core) {
  int sv[2];
  socketpair_cloexec(sv);
  fib_init(&sf->f);
  sf->fd = sv[0];
  spawn_fiber(rt, fn, &sf->f, core, 0);
  return sv[1];
}

static int lines_fiber(ax_actor_t *self, void *arg) {
  sock_fib_t *l = arg;
  ax_stream_t *s = NULL;
  int rc = open_fd_stream(self, &l->f, l->fd, NULL, &s);
  if (rc != 0)
    return rc;
  char buf[64];
  atomic_store(&l->f.phase, 1);
  ssize_t n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&l->f, n, buf, "hello\n");
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&l->f, n, buf, "world\n");
  /* an empty line */
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&l->f, n, buf, "\n");
  /* a line longer than max: its first max bytes, then the rest */
  memset(buf, '#', sizeof buf);
  n = ax_stream_read_until(s, buf, 4, '\n', ax_deadline(LONG_WAIT));
  FCHECK_EQ(&l->f, n, -EMSGSIZE);
  FCHECK(&l->f, memcmp(buf, "abcd", 4) == 0);
  FCHECK(&l->f, buf[4] == '#'); /* nothing written beyond max */
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&l->f, n, buf, "efghij\n");
  /* another delimiter: NUL */
  n = ax_stream_read_until(s, buf, sizeof buf, 0, ax_deadline(LONG_WAIT));
  FCHECK(&l->f, n == 4 && memcmp(buf, "nul", 4) == 0);
  /* a line exactly max long, delimiter included */
  n = ax_stream_read_until(s, buf, 6, '\n', ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&l->f, n, buf, "exact\n");
  /* the end of the stream: the partial line without delimiter, then 0 */
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&l->f, n, buf, "tail");
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_EQ(&l->f, n, 0);
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_EQ(&l->f, n, 0);
  n = ax_stream_read(s, buf, sizeof buf, ax_deadline(LONG_WAIT));
  FCHECK_EQ(&l->f, n, 0);
  FCHECK_EQ(&l->f, ax_stream_close(s), 0);
  return 0;
}

START_TEST(test_fiber_io_read_until) {
  ax_rt_t *rt = rt_new();
  static sock_fib_t l;
  int peer = start_sock_fiber(rt, lines_fiber, &l, 1);
  wait_phase(&l.f, 1);
  put_pieces(peer, 20, "hel", "lo\nwor", "ld\n", (const char *)NULL);
  test_sleep_ms(10);
  put(peer, "\n");
  put(peer, "abcdefg");
  test_sleep_ms(10);
  put(peer, "hij\n");
  ck_assert_int_eq((int)write(peer, "nul\0", 4), 4);
  put(peer, "exact\n");
  put_pieces(peer, 10, "ta", "il", (const char *)NULL);
  test_sleep_ms(10);
  close(peer);
  fib_wait(&l.f, 20000);
  ck_assert_int_eq(atomic_load(&l.f.reason), AX_REASON_NORMAL);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 2. read_exact, and deadlines that consume nothing                         */

static int exact_fiber(ax_actor_t *self, void *arg) {
  sock_fib_t *e = arg;
  ax_stream_t *s = NULL;
  int rc = open_fd_stream(self, &e->f, e->fd, NULL, &s);
  if (rc != 0)
    return rc;
  char buf[128];

  /* 10 bytes that come in three pieces */
  atomic_store(&e->f.phase, 1);
  ssize_t n = ax_stream_read_exact(s, buf, 10, ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&e->f, n, buf, "0123456789");

  /* a read whose deadline passes: -ETIMEDOUT, not before the deadline;
   * what comes afterwards is read intact */
  int64_t dl = ax_deadline(30 * MSEC);
  n = ax_stream_read(s, buf, sizeof buf, dl);
  FCHECK_EQ(&e->f, n, -ETIMEDOUT);
  FCHECK(&e->f, ax_now() >= dl);
  atomic_store(&e->f.phase, 2); /* the test writes "after" */
  n = ax_stream_read(s, buf, sizeof buf, ax_deadline(LONG_WAIT));
  FCHECK(&e->f, n >= 1 && n <= 5);
  if (n >= 1 && n < 5) {
    ssize_t more = ax_stream_read_exact(s, buf + n, (size_t)(5 - n), ax_deadline(LONG_WAIT));
    n = more > 0 ? n + more : more;
  }
  FCHECK_BYTES(&e->f, n, buf, "after");

  /* read_exact that times out with part of its bytes: consumes nothing */
  atomic_store(&e->f.phase, 3); /* the test writes "ABCD" */
  n = ax_stream_read_exact(s, buf, 10, ax_deadline(300 * MSEC));
  FCHECK_EQ(&e->f, n, -ETIMEDOUT);
  atomic_store(&e->f.phase, 4); /* the test writes "EFGHIJ" */
  n = ax_stream_read_exact(s, buf, 10, ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&e->f, n, buf, "ABCDEFGHIJ");

  /* read_until likewise */
  atomic_store(&e->f.phase, 5); /* the test writes "par" */
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(300 * MSEC));
  FCHECK_EQ(&e->f, n, -ETIMEDOUT);
  atomic_store(&e->f.phase, 6); /* the test writes "tial\n" */
  n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&e->f, n, buf, "partial\n");

  /* deadline 0 with nothing there */
  FCHECK_EQ(&e->f, ax_stream_read(s, buf, sizeof buf, 0), -ETIMEDOUT);

  /* the stream ends before len bytes: the bytes there were, then 0 */
  atomic_store(&e->f.phase, 7); /* the test writes "xyz" and closes */
  n = ax_stream_read_exact(s, buf, 10, ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&e->f, n, buf, "xyz");
  n = ax_stream_read_exact(s, buf, 10, ax_deadline(LONG_WAIT));
  FCHECK_EQ(&e->f, n, 0);
  n = ax_stream_read(s, buf, 10, ax_deadline(LONG_WAIT));
  FCHECK_EQ(&e->f, n, 0);
  /* the fiber returns with the stream open: it is closed for it */
  return 0;
}

START_TEST(test_fiber_io_read_exact_deadlines) {
  ax_rt_t *rt = rt_new();
  static sock_fib_t e;
  int peer = start_sock_fiber(rt, exact_fiber, &e, 0);
  wait_phase(&e.f, 1);
  put_pieces(peer, 20, "012", "3456", "789", (const char *)NULL);
  wait_phase(&e.f, 2);
  put(peer, "after");
  wait_phase(&e.f, 3);
  put(peer, "ABCD");
  wait_phase(&e.f, 4);
  put(peer, "EFGHIJ");
  wait_phase(&e.f, 5);
  put(peer, "par");
  wait_phase(&e.f, 6);
  put(peer, "tial\n");
  wait_phase(&e.f, 7);
  put(peer, "xyz");
  close(peer);
  fib_wait(&e.f, 20000);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 3. ax_stream_write_all to a slow reader                                   */

enum { BIG = 8 << 20 };

typedef struct slow_reader {
  int fd;
  uint64_t got;
  uint64_t bad_at; /* first mismatching offset + 1, 0 if none */
  int err;
  bool eof;
} slow_reader_t;

static void *slow_reader_main(void *arg) {
  slow_reader_t *r = arg;
  static unsigned char buf[64 * 1024];
  int reads = 0;
  for (;;) {
    struct pollfd pfd = {r->fd, POLLIN, 0};
    int pr = poll(&pfd, 1, 20000);
    if (pr == 0) {
      r->err = ETIMEDOUT;
      return NULL;
    }
    ssize_t n = read(r->fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0) {
      r->err = errno;
      return NULL;
    }
    if (n == 0) {
      r->eof = true;
      return NULL;
    }
    for (ssize_t i = 0; i < n && r->bad_at == 0; i++)
      if (buf[i] != pattern_at(r->got + (uint64_t)i))
        r->bad_at = r->got + (uint64_t)i + 1;
    r->got += (uint64_t)n;
    if (++reads % 4 == 0)
      test_sleep_ms(2); /* slow: the writer meets its high-water mark */
  }
}

typedef struct writer {
  fib_t f;
  int fd;
  int64_t deadline_ns; /* 0: LONG_WAIT * 6 */
  atomic_int rc;
} writer_t;

static int writer_fiber(ax_actor_t *self, void *arg) {
  writer_t *w = arg;
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  o.linger = AX_FOREVER;
  o.high_water = 256 * 1024;
  ax_stream_t *s = NULL;
  int rc = open_fd_stream(self, &w->f, w->fd, &o, &s);
  if (rc != 0)
    return rc;
  unsigned char *buf = malloc(BIG);
  FCHECK(&w->f, buf != NULL);
  if (buf == NULL)
    return -ENOMEM;
  for (uint64_t i = 0; i < BIG; i++)
    buf[i] = pattern_at(i);
  rc = ax_stream_write_all(s, buf, BIG, ax_deadline(w->deadline_ns != 0 ? w->deadline_ns : 6 * LONG_WAIT));
  atomic_store(&w->rc, rc);
  free(buf);
  FCHECK_EQ(&w->f, ax_stream_close(s), 0);
  return 0;
}

START_TEST(test_fiber_io_write_all_slow_peer) {
  ax_rt_t *rt = rt_new();
  int sv[2];
  socketpair_cloexec(sv);
  static writer_t w;
  fib_init(&w.f);
  atomic_init(&w.rc, 12345);
  w.fd = sv[0];
  static slow_reader_t r;
  memset(&r, 0, sizeof r);
  r.fd = sv[1];
  pthread_t tid;
  ck_assert_int_eq(pthread_create(&tid, NULL, slow_reader_main, &r), 0);
  spawn_fiber(rt, writer_fiber, &w.f, 1, 0);
  fib_wait(&w.f, 60000);
  ck_assert_int_eq(atomic_load(&w.rc), 0);
  ck_assert_int_eq(pthread_join(tid, NULL), 0);
  ck_assert_msg(r.err == 0, "reader: %s", strerror(r.err));
  ck_assert_msg(r.bad_at == 0, "pattern broken at offset %llu",
                (unsigned long long)(r.bad_at - 1));
  ck_assert_uint_eq(r.got, BIG);
  ck_assert(r.eof);
  close(sv[1]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* write_all to a peer that never reads: -ETIMEDOUT at the deadline. */
START_TEST(test_fiber_io_write_all_deadline) {
  ax_rt_t *rt = rt_new();
  int sv[2];
  socketpair_cloexec(sv);
  static writer_t w;
  fib_init(&w.f);
  atomic_init(&w.rc, 12345);
  w.fd = sv[0];
  w.deadline_ns = 100 * MSEC;
  spawn_fiber(rt, writer_fiber, &w.f, 0, 0);
  fib_wait(&w.f, 20000);
  ck_assert_int_eq(atomic_load(&w.rc), -ETIMEDOUT);
  close(sv[1]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 4. Accept and dial between two fibers                                     */

typedef struct server {
  fib_t f;
  atomic_int port;
  char unix_path[64];
  int lines; /* echoed */
} server_t;

/* Echoes lines on s until EOF; returns the count. */
static int echo_lines(fib_t *f, ax_stream_t *s) {
  char buf[256];
  int lines = 0;
  for (;;) {
    ssize_t n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
    if (n == 0)
      break;
    if (n < 0) {
      fib_fail(f, __LINE__, "echo read: %s", ax_strerror((int)n));
      break;
    }
    int rc = ax_stream_write_all(s, buf, (size_t)n, ax_deadline(LONG_WAIT));
    if (rc != 0) {
      fib_fail(f, __LINE__, "echo write: %s", ax_strerror(rc));
      break;
    }
    lines++;
  }
  return lines;
}

static int server_fiber(ax_actor_t *self, void *arg) {
  server_t *sv = arg;
  ax_listener_t *l = NULL, *ul = NULL;
  int rc = ax_tcp_listen(self, "127.0.0.1:0", 0, NULL, &l);
  FCHECK_EQ(&sv->f, rc, 0);
  if (rc != 0)
    return rc;
  rc = ax_unix_listen(self, sv->unix_path, 0, NULL, &ul);
  FCHECK_EQ(&sv->f, rc, 0);
  if (rc != 0)
    return rc;
  int port = ax_listener_port(l);
  FCHECK(&sv->f, port > 0);
  atomic_store(&sv->port, port);

  ax_stream_t *s = NULL;
  struct sockaddr_storage peer;
  memset(&peer, 0, sizeof peer);
  socklen_t peer_len = 0;
  rc = ax_listener_accept(l, ax_deadline(LONG_WAIT), &s, &peer, &peer_len);
  FCHECK_EQ(&sv->f, rc, 0);
  if (rc == 0) {
    FCHECK(&sv->f, s != NULL);
    FCHECK_EQ(&sv->f, peer.ss_family, AF_INET);
    FCHECK_EQ(&sv->f, peer_len, sizeof(struct sockaddr_in));
    const struct sockaddr_in *in = (const struct sockaddr_in *)&peer;
    FCHECK(&sv->f, in->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    FCHECK(&sv->f, ntohs(in->sin_port) != 0);
    sv->lines += echo_lines(&sv->f, s);
    FCHECK_EQ(&sv->f, ax_stream_close(s), 0);
  }
  /* Unix: the peer's address is not asked for. */
  s = NULL;
  rc = ax_listener_accept(ul, ax_deadline(LONG_WAIT), &s, NULL, NULL);
  FCHECK_EQ(&sv->f, rc, 0);
  if (rc == 0) {
    sv->lines += echo_lines(&sv->f, s);
    FCHECK_EQ(&sv->f, ax_stream_close(s), 0);
  }
  /* Nobody else comes: the deadline. */
  int64_t dl = ax_deadline(30 * MSEC);
  FCHECK_EQ(&sv->f, ax_listener_accept(l, dl, &s, NULL, NULL), -ETIMEDOUT);
  FCHECK(&sv->f, ax_now() >= dl);
  FCHECK_EQ(&sv->f, ax_listener_close(l), 0);
  FCHECK_EQ(&sv->f, ax_listener_close(ul), 0);
  return 0;
}

typedef struct client {
  fib_t f;
  int port;
  char unix_path[64];
  int refused_port; /* bound, not listening */
  atomic_int refused_rc;
} client_t;

static void client_lines(client_t *c, ax_stream_t *s) {
  const char *lines[] = {"one\n", "two two\n", "three three three\n", "\n"};
  char buf[64];
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
    FCHECK_EQ(&c->f, ax_stream_write_all(s, lines[i], strlen(lines[i]), ax_deadline(LONG_WAIT)),
              0);
    ssize_t n = ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(LONG_WAIT));
    FCHECK_BYTES(&c->f, n, buf, lines[i]);
  }
}

static int client_fiber(ax_actor_t *self, void *arg) {
  client_t *c = arg;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", c->port);
  ax_stream_t *s = NULL;
  int rc = ax_tcp_dial(self, addr, NULL, ax_deadline(LONG_WAIT), &s);
  FCHECK_EQ(&c->f, rc, 0);
  if (rc == 0) {
    client_lines(c, s);
    FCHECK_EQ(&c->f, ax_stream_close(s), 0);
  }
  s = NULL;
  rc = ax_unix_dial(self, c->unix_path, NULL, ax_deadline(LONG_WAIT), &s);
  FCHECK_EQ(&c->f, rc, 0);
  if (rc == 0) {
    client_lines(c, s);
    FCHECK_EQ(&c->f, ax_stream_close(s), 0);
  }
  /* A port where nobody listens. */
  snprintf(addr, sizeof addr, "127.0.0.1:%d", c->refused_port);
  s = NULL;
  atomic_store(&c->refused_rc, ax_tcp_dial(self, addr, NULL, ax_deadline(LONG_WAIT), &s));
  return 0;
}

START_TEST(test_fiber_io_accept_dial) {
  ax_rt_t *rt = rt_new();
  static server_t sv;
  static client_t c;
  fib_init(&sv.f);
  snprintf(sv.unix_path, sizeof sv.unix_path, "@axon-test-fiber-%d", (int)getpid());
  spawn_fiber(rt, server_fiber, &sv.f, 0, 0);
  TEST_WAIT_UNTIL(atomic_load(&sv.port) != 0 || atomic_load(&sv.f.terminated) != 0, 10000);
  ck_assert_msg(atomic_load(&sv.port) > 0, "no listener: %s", sv.f.what);

  /* A bound TCP socket that does not listen: its port refuses. */
  int closed = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(closed, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(closed, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t alen = sizeof a;
  ck_assert_int_eq(getsockname(closed, (struct sockaddr *)&a, &alen), 0);

  fib_init(&c.f);
  atomic_init(&c.refused_rc, 12345);
  c.port = atomic_load(&sv.port);
  c.refused_port = ntohs(a.sin_port);
  memcpy(c.unix_path, sv.unix_path, sizeof c.unix_path);
  spawn_fiber(rt, client_fiber, &c.f, 1, 0);
  fib_wait(&c.f, 30000);
  fib_wait(&sv.f, 30000);
  ck_assert_int_eq(sv.lines, 8);
  ck_assert_int_eq(atomic_load(&c.refused_rc), -ECONNREFUSED);
  close(closed);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 5. Datagrams                                                              */

typedef struct udp {
  fib_t f;
  int sender_port; /* the test thread's socket */
  atomic_int port; /* the fiber's */
} udp_t;

static int udp_fiber(ax_actor_t *self, void *arg) {
  udp_t *u = arg;
  ax_dgram_t *d = NULL;
  int rc = ax_udp_bind(self, "127.0.0.1:0", NULL, &d);
  FCHECK_EQ(&u->f, rc, 0);
  if (rc != 0)
    return rc;
  atomic_store(&u->port, ax_dgram_port(d));
  unsigned char buf[64];
  struct sockaddr_storage from;
  memset(&from, 0, sizeof from);
  socklen_t from_len = 0;
  /* "hello", with its sender */
  ssize_t n = ax_dgram_recv(d, buf, sizeof buf, &from, &from_len, ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&u->f, n, buf, "hello");
  FCHECK_EQ(&u->f, from.ss_family, AF_INET);
  FCHECK_EQ(&u->f, from_len, sizeof(struct sockaddr_in));
  const struct sockaddr_in *in = (const struct sockaddr_in *)&from;
  FCHECK_EQ(&u->f, ntohs(in->sin_port), u->sender_port);
  FCHECK(&u->f, in->sin_addr.s_addr == htonl(INADDR_LOOPBACK));
  /* the answer goes to that address */
  FCHECK_EQ(&u->f, ax_dgram_send(d, (const struct sockaddr *)&from, from_len, "olleh", 5), 0);
  /* 100 bytes into 10: the full length, 10 bytes copied, no more */
  memset(buf, '#', sizeof buf);
  n = ax_dgram_recv(d, buf, 10, NULL, NULL, ax_deadline(LONG_WAIT));
  FCHECK_EQ(&u->f, n, 100);
  for (int i = 0; i < 10; i++)
    FCHECK_EQ(&u->f, buf[i], 'a' + i);
  FCHECK_EQ(&u->f, buf[10], '#');
  /* the cut datagram is gone whole: the next one follows */
  n = ax_dgram_recv(d, buf, sizeof buf, NULL, NULL, ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&u->f, n, buf, "next");
  /* an empty datagram */
  n = ax_dgram_recv(d, buf, sizeof buf, NULL, NULL, ax_deadline(LONG_WAIT));
  FCHECK_EQ(&u->f, n, 0);
  /* nothing more: the deadline */
  int64_t dl = ax_deadline(30 * MSEC);
  n = ax_dgram_recv(d, buf, sizeof buf, NULL, NULL, dl);
  FCHECK_EQ(&u->f, n, -ETIMEDOUT);
  FCHECK(&u->f, ax_now() >= dl);
  FCHECK_EQ(&u->f, ax_dgram_close(d), 0);
  return 0;
}

START_TEST(test_fiber_io_dgram) {
  ax_rt_t *rt = rt_new();
  int us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(us, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(us, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t alen = sizeof a;
  ck_assert_int_eq(getsockname(us, (struct sockaddr *)&a, &alen), 0);
  static udp_t u;
  fib_init(&u.f);
  u.sender_port = ntohs(a.sin_port);
  spawn_fiber(rt, udp_fiber, &u.f, 1, 0);
  TEST_WAIT_UNTIL(atomic_load(&u.port) != 0 || atomic_load(&u.f.terminated) != 0, 10000);
  ck_assert_msg(atomic_load(&u.port) > 0, "no socket: %s", u.f.what);
  struct sockaddr_in to = a;
  to.sin_port = htons((uint16_t)atomic_load(&u.port));
  ck_assert_int_eq((int)sendto(us, "hello", 5, 0, (struct sockaddr *)&to, sizeof to), 5);
  char back[16] = {0};
  struct pollfd pfd = {us, POLLIN, 0};
  ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
  ck_assert_int_eq((int)recv(us, back, sizeof back, 0), 5);
  ck_assert(memcmp(back, "olleh", 5) == 0);
  char big[100];
  for (int i = 0; i < 100; i++)
    big[i] = (char)('a' + i % 26);
  ck_assert_int_eq((int)sendto(us, big, sizeof big, 0, (struct sockaddr *)&to, sizeof to), 100);
  ck_assert_int_eq((int)sendto(us, "next", 4, 0, (struct sockaddr *)&to, sizeof to), 4);
  ck_assert_int_eq((int)sendto(us, "", 0, 0, (struct sockaddr *)&to, sizeof to), 0);
  fib_wait(&u.f, 20000);
  close(us);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 6. ax_fd_wait                                                             */

typedef struct fdw {
  fib_t f;
  int rfd, wfd;
  atomic_int hup_events;
} fdw_t;

static int fdw_fiber(ax_actor_t *self, void *arg) {
  fdw_t *w = arg;
  /* nothing to read: the deadline, not before it */
  int64_t dl = ax_deadline(30 * MSEC);
  FCHECK_EQ(&w->f, ax_fd_wait(self, w->rfd, AX_READ, dl), -ETIMEDOUT);
  FCHECK(&w->f, ax_now() >= dl);
  FCHECK_EQ(&w->f, ax_fd_wait(self, w->rfd, AX_READ, 0), -ETIMEDOUT);
  /* an empty pipe is writable at once */
  int rc = ax_fd_wait(self, w->wfd, AX_WRITE, ax_deadline(LONG_WAIT));
  FCHECK(&w->f, rc > 0 && (rc & AX_WRITE) != 0);
  /* a byte another thread writes, twice (the fd is watched anew) */
  for (int round = 1; round <= 2; round++) {
    atomic_store(&w->f.phase, round);
    rc = ax_fd_wait(self, w->rfd, AX_READ, ax_deadline(LONG_WAIT));
    FCHECK(&w->f, rc > 0 && (rc & AX_READ) != 0);
    char c = 0;
    FCHECK_EQ(&w->f, read(w->rfd, &c, 1), 1); /* axon never reads it */
    FCHECK_EQ(&w->f, c, '0' + round);
  }
  /* the writer goes: a hang-up */
  atomic_store(&w->f.phase, 3);
  rc = ax_fd_wait(self, w->rfd, AX_READ, ax_deadline(LONG_WAIT));
  atomic_store(&w->hup_events, rc);
  FCHECK(&w->f, rc > 0 && (rc & (AX_HUP | AX_READ)) != 0);
  /* bad arguments */
  FCHECK_EQ(&w->f, ax_fd_wait(self, -1, AX_READ, 0), -EINVAL);
  FCHECK_EQ(&w->f, ax_fd_wait(self, w->rfd, 0, 0), -EINVAL);
  return 0;
}

START_TEST(test_fiber_io_fd_wait) {
  ax_rt_t *rt = rt_new();
  int p[2], q[2];
  test_pipe(p);
  test_pipe(q);
  static fdw_t w;
  fib_init(&w.f);
  w.rfd = p[0];
  w.wfd = q[1];
  spawn_fiber(rt, fdw_fiber, &w.f, 0, 0);
  wait_phase(&w.f, 1);
  test_sleep_ms(20);
  ck_assert_int_eq((int)write(p[1], "1", 1), 1);
  wait_phase(&w.f, 2);
  test_sleep_ms(20);
  ck_assert_int_eq((int)write(p[1], "2", 1), 1);
  wait_phase(&w.f, 3);
  test_sleep_ms(20);
  close(p[1]);
  fib_wait(&w.f, 20000);
  ck_assert_msg((atomic_load(&w.hup_events) & AX_HUP) != 0, "no AX_HUP: events %#x",
                (unsigned)atomic_load(&w.hup_events));
  /* axon never closes it */
  ck_assert(test_fd_open(p[0]));
  close(p[0]);
  close(q[0]);
  close(q[1]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 7. Cancellation in every blocking call                                    */

enum {
  CW_READ,
  CW_READ_UNTIL,
  CW_READ_EXACT,
  CW_WRITE_ALL,
  CW_ACCEPT,
  CW_DGRAM,
  CW_FD_WAIT,
  CW_SLEEP,
  CW_KINDS,
};

static const char *const cw_names[CW_KINDS] = {
    "ax_stream_read",  "ax_stream_read_until", "ax_stream_read_exact", "ax_stream_write_all",
    "ax_listener_accept", "ax_dgram_recv",     "ax_fd_wait",           "ax_sleep"};

typedef struct cw {
  fib_t f;
  int kind;
  int fd;      /* the stream's socket, or the pipe's read end */
  atomic_int started;
  atomic_int rc1, rc2;
  atomic_int write_rc, close_rc; /* after the cancellation */
} cw_t;

static int cw_wait(ax_actor_t *self, cw_t *c, ax_stream_t *s, ax_listener_t *l, ax_dgram_t *d,
                   unsigned char *big) {
  char buf[64];
  switch (c->kind) {
  case CW_READ:
    return (int)ax_stream_read(s, buf, sizeof buf, AX_FOREVER);
  case CW_READ_UNTIL:
    return (int)ax_stream_read_until(s, buf, sizeof buf, '\n', AX_FOREVER);
  case CW_READ_EXACT:
    return (int)ax_stream_read_exact(s, buf, sizeof buf, AX_FOREVER);
  case CW_WRITE_ALL:
    return ax_stream_write_all(s, big, BIG, AX_FOREVER);
  case CW_ACCEPT: {
    ax_stream_t *out = NULL;
    return ax_listener_accept(l, AX_FOREVER, &out, NULL, NULL);
  }
  case CW_DGRAM:
    return (int)ax_dgram_recv(d, buf, sizeof buf, NULL, NULL, AX_FOREVER);
  case CW_FD_WAIT:
    return ax_fd_wait(self, c->fd, AX_READ, AX_FOREVER);
  default:
    return ax_sleep(self, 3600 * SEC);
  }
}

static int cw_fiber(ax_actor_t *self, void *arg) {
  cw_t *c = arg;
  ax_stream_t *s = NULL;
  ax_listener_t *l = NULL;
  ax_dgram_t *d = NULL;
  unsigned char *big = NULL;
  int rc = 0;
  if (c->kind <= CW_WRITE_ALL) {
    ax_stream_opts_t o;
    memset(&o, 0, sizeof o);
    o.linger = AX_LINGER_NONE;
    o.high_water = 64 * 1024;
    rc = ax_pipe_open(self, c->fd, c->fd, &o, &s);
  } else if (c->kind == CW_ACCEPT) {
    rc = ax_tcp_listen(self, "127.0.0.1:0", 0, NULL, &l);
  } else if (c->kind == CW_DGRAM) {
    rc = ax_udp_bind(self, "127.0.0.1:0", NULL, &d);
  }
  FCHECK_EQ(&c->f, rc, 0);
  if (rc != 0)
    return rc;
  if (c->kind == CW_WRITE_ALL) {
    big = calloc(1, BIG);
    FCHECK(&c->f, big != NULL);
    if (big == NULL)
      return -ENOMEM;
  }
  atomic_store(&c->started, 1);
  atomic_store(&c->rc1, cw_wait(self, c, s, l, d, big));
  atomic_store(&c->rc2, cw_wait(self, c, s, l, d, big));
  free(big);
  /* calls that do not wait still work */
  if (s != NULL) {
    if (c->kind == CW_READ)
      atomic_store(&c->write_rc, ax_stream_write(s, "bye", 3));
    atomic_store(&c->close_rc, ax_stream_close(s));
  }
  if (l != NULL)
    atomic_store(&c->close_rc, ax_listener_close(l));
  if (d != NULL)
    atomic_store(&c->close_rc, ax_dgram_close(d));
  return 0;
}

START_TEST(test_fiber_io_cancel_every_wait) {
  ax_rt_t *rt = rt_new();
  static cw_t c[CW_KINDS];
  ax_ref_t refs[CW_KINDS];
  int peer[CW_KINDS];
  for (int k = 0; k < CW_KINDS; k++) {
    memset(&c[k], 0, sizeof c[k]);
    fib_init(&c[k].f);
    c[k].kind = k;
    c[k].fd = -1;
    peer[k] = -1;
    atomic_init(&c[k].rc1, 12345);
    atomic_init(&c[k].rc2, 12345);
    atomic_init(&c[k].write_rc, 12345);
    atomic_init(&c[k].close_rc, 12345);
    if (k <= CW_WRITE_ALL) {
      int sv[2];
      socketpair_cloexec(sv);
      c[k].fd = sv[0];
      peer[k] = sv[1];
    } else if (k == CW_FD_WAIT) {
      int p[2];
      test_pipe(p);
      c[k].fd = p[0];
      peer[k] = p[1];
    }
    if (k == CW_READ_UNTIL)
      put(peer[k], "no newline yet"); /* a partial line: it still waits */
    if (k == CW_READ_EXACT)
      put(peer[k], "short"); /* fewer than asked */
    refs[k] = spawn_fiber(rt, cw_fiber, &c[k].f, (unsigned)k % 2, 0);
  }
  for (int k = 0; k < CW_KINDS; k++)
    TEST_WAIT_UNTIL(atomic_load(&c[k].started) == 1 || atomic_load(&c[k].f.terminated) != 0,
                    10000);
  test_sleep_ms(50); /* most likely parked by now; either way -ECANCELED */
  for (int k = 0; k < CW_KINDS; k++)
    ck_assert_int_eq(ax_stop(refs[k], 0), 0);
  for (int k = 0; k < CW_KINDS; k++) {
    fib_wait(&c[k].f, 10000);
    ck_assert_msg(atomic_load(&c[k].rc1) == -ECANCELED,
                  "%s: the parked call returned %d (%s), want -ECANCELED", cw_names[k],
                  atomic_load(&c[k].rc1), ax_strerror(atomic_load(&c[k].rc1)));
    ck_assert_msg(atomic_load(&c[k].rc2) == -ECANCELED,
                  "%s: the next call returned %d (%s), want -ECANCELED", cw_names[k],
                  atomic_load(&c[k].rc2), ax_strerror(atomic_load(&c[k].rc2)));
    if (k != CW_FD_WAIT && k != CW_SLEEP)
      ck_assert_msg(atomic_load(&c[k].close_rc) == 0, "%s: closing afterwards: %d",
                    cw_names[k], atomic_load(&c[k].close_rc));
    ck_assert_int_eq(atomic_load(&c[k].f.reason), AX_REASON_STOPPED);
  }
  /* the goodbye written after the cancellation arrives, then EOF */
  ck_assert_int_eq(atomic_load(&c[CW_READ].write_rc), 0);
  char bye[3];
  get_exact(peer[CW_READ], bye, 3, 10000);
  ck_assert(memcmp(bye, "bye", 3) == 0);
  ck_assert_int_eq(wait_eof(peer[CW_READ], 10000), 1);
  /* ax_fd_wait never closes the fd */
  ck_assert(test_fd_open(c[CW_FD_WAIT].fd));
  close(c[CW_FD_WAIT].fd);
  for (int k = 0; k < CW_KINDS; k++)
    if (peer[k] >= 0)
      close(peer[k]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 8. What a fiber owns is closed when it returns (or is stopped)            */

typedef struct owner {
  fib_t f;
  int sock;          /* a socketpair end: a stream */
  int rfd, wfd;      /* a pipe pair: a stream */
  int unread_sock;   /* a stream with bytes the fiber never reads */
  bool park;         /* park in a read until stopped, then return */
  atomic_int port;   /* the TCP listener's */
  atomic_int udp_port;
  atomic_int opened;
} owner_t;

static int owner_fiber(ax_actor_t *self, void *arg) {
  owner_t *o = arg;
  ax_stream_t *a = NULL, *b = NULL, *u = NULL;
  ax_listener_t *l = NULL;
  ax_dgram_t *d = NULL;
  FCHECK_EQ(&o->f, ax_pipe_open(self, o->sock, o->sock, NULL, &a), 0);
  FCHECK_EQ(&o->f, ax_pipe_open(self, o->rfd, o->wfd, NULL, &b), 0);
  FCHECK_EQ(&o->f, ax_pipe_open(self, o->unread_sock, o->unread_sock, NULL, &u), 0);
  FCHECK_EQ(&o->f, ax_tcp_listen(self, "127.0.0.1:0", 0, NULL, &l), 0);
  FCHECK_EQ(&o->f, ax_udp_bind(self, "127.0.0.1:0", NULL, &d), 0);
  if (o->f.fails != 0)
    return -EIO;
  /* a write still queued or just written when the fiber returns */
  FCHECK_EQ(&o->f, ax_stream_write(a, "last words", 10), 0);
  atomic_store(&o->port, ax_listener_port(l));
  atomic_store(&o->udp_port, ax_dgram_port(d));
  atomic_store(&o->opened, 1);
  if (o->park) {
    char buf[8];
    FCHECK_EQ(&o->f, ax_stream_read(b, buf, sizeof buf, AX_FOREVER), -ECANCELED);
  } else {
    /* wait for the unread stream's bytes to be there (they stay unread) */
    FCHECK_EQ(&o->f, ax_sleep(self, 50 * MSEC), 0);
  }
  return 0; /* everything still open */
}

/* True within timeout_ms once a TCP connect to 127.0.0.1:port is refused. */
static bool refused_soon(int port, int timeout_ms) {
  int64_t end = ax_now() + (int64_t)timeout_ms * MSEC;
  while (ax_now() < end) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int err = errno;
    close(fd);
    if (rc != 0 && err == ECONNREFUSED)
      return true;
    test_sleep_ms(10);
  }
  return false;
}

static void owner_case(bool park) {
  ax_rt_t *rt = rt_new();
  int sv[2], uv[2], p[2], q[2];
  socketpair_cloexec(sv);
  socketpair_cloexec(uv);
  ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0); /* the fiber reads p[0] */
  ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0); /* the fiber writes q[1] */
  static owner_t o;
  memset(&o, 0, sizeof o);
  fib_init(&o.f);
  o.sock = sv[0];
  o.rfd = p[0];
  o.wfd = q[1];
  o.unread_sock = uv[0];
  o.park = park;
  put(uv[1], "never read by anyone");
  ax_ref_t ref = spawn_fiber(rt, owner_fiber, &o.f, 1, 0);
  TEST_WAIT_UNTIL(atomic_load(&o.opened) == 1 || atomic_load(&o.f.terminated) != 0, 10000);
  if (park) {
    test_sleep_ms(20);
    ck_assert_int_eq(ax_stop(ref, 0), 0);
  }
  fib_wait(&o.f, 10000);
  /* the socket's peer: the last words, then EOF */
  char buf[10];
  get_exact(sv[1], buf, 10, 10000);
  ck_assert(memcmp(buf, "last words", 10) == 0);
  ck_assert_int_eq(wait_eof(sv[1], 10000), 1);
  /* the pipe pair: its write end closed (EOF), its read end closed (EPIPE) */
  ck_assert_int_eq(wait_eof(q[0], 10000), 1);
  signal(SIGPIPE, SIG_IGN);
  TEST_WAIT_UNTIL(write(p[1], "x", 1) < 0 && errno == EPIPE, 10000);
  /* the unread stream: closed too */
  ck_assert_int_eq(wait_eof(uv[1], 10000), 1);
  /* the listener: connections refused */
  ck_assert_msg(refused_soon(atomic_load(&o.port), 10000), "port %d still accepts",
                atomic_load(&o.port));
  /* the UDP port is free again: it can be bound */
  int us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(us, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons((uint16_t)atomic_load(&o.udp_port));
  int64_t end = ax_now() + 10 * SEC;
  int bound = -1, bind_err = 0;
  while ((bound = bind(us, (struct sockaddr *)&a, sizeof a)) != 0 && ax_now() < end) {
    bind_err = errno;
    test_sleep_ms(10);
  }
  ck_assert_msg(bound == 0, "UDP port %d still bound: %s", atomic_load(&o.udp_port),
                strerror(bind_err));
  close(us);
  close(sv[1]);
  close(uv[1]);
  close(p[1]);
  close(q[0]);
  test_rt_stop_join_free(rt);
}

START_TEST(test_fiber_io_closed_on_return) {
  owner_case(false);
}
END_TEST

START_TEST(test_fiber_io_closed_on_stop) {
  owner_case(true);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 9. The peer closes, or resets, while the fiber reads                      */

typedef struct ender {
  fib_t f;
  int fd;     /* socketpair end (first part) */
  int port;   /* the test's TCP listener (second part) */
  atomic_int eof_rc, eof_rc2;
  atomic_int reset_rc, reset_rc2;
} ender_t;

static int ender_fiber(ax_actor_t *self, void *arg) {
  ender_t *e = arg;
  ax_stream_t *s = NULL;
  char buf[64];
  FCHECK_EQ(&e->f, ax_pipe_open(self, e->fd, e->fd, NULL, &s), 0);
  if (s != NULL) {
    atomic_store(&e->f.phase, 1); /* the test closes its end */
    atomic_store(&e->eof_rc, (int)ax_stream_read(s, buf, sizeof buf, ax_deadline(LONG_WAIT)));
    atomic_store(&e->eof_rc2, (int)ax_stream_read(s, buf, sizeof buf, ax_deadline(LONG_WAIT)));
    FCHECK_EQ(&e->f, ax_stream_close(s), 0);
  }
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", e->port);
  s = NULL;
  int rc = ax_tcp_dial(self, addr, NULL, ax_deadline(LONG_WAIT), &s);
  FCHECK_EQ(&e->f, rc, 0);
  if (rc != 0)
    return rc;
  atomic_store(&e->f.phase, 2); /* the test resets the connection */
  atomic_store(&e->reset_rc, (int)ax_stream_read(s, buf, sizeof buf, ax_deadline(LONG_WAIT)));
  atomic_store(&e->reset_rc2, (int)ax_stream_read(s, buf, sizeof buf, ax_deadline(LONG_WAIT)));
  FCHECK_EQ(&e->f, ax_stream_close(s), 0);
  return 0;
}

START_TEST(test_fiber_io_eof_and_reset) {
  ax_rt_t *rt = rt_new();
  int sv[2];
  socketpair_cloexec(sv);
  int port;
  int lfd = loopback_listener(&port);
  static ender_t e;
  fib_init(&e.f);
  atomic_init(&e.eof_rc, 12345);
  atomic_init(&e.eof_rc2, 12345);
  atomic_init(&e.reset_rc, 12345);
  atomic_init(&e.reset_rc2, 12345);
  e.fd = sv[0];
  e.port = port;
  spawn_fiber(rt, ender_fiber, &e.f, 0, 0);
  wait_phase(&e.f, 1);
  test_sleep_ms(20);
  close(sv[1]);
  struct pollfd pfd = {lfd, POLLIN, 0};
  ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
  int cfd = accept(lfd, NULL, NULL);
  ck_assert_int_ge(cfd, 0);
  wait_phase(&e.f, 2);
  test_sleep_ms(20);
  struct linger lg = {1, 0};
  ck_assert_int_eq(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(cfd); /* RST */
  fib_wait(&e.f, 20000);
  ck_assert_int_eq(atomic_load(&e.eof_rc), 0);
  ck_assert_int_eq(atomic_load(&e.eof_rc2), 0);
  int r1 = atomic_load(&e.reset_rc), r2 = atomic_load(&e.reset_rc2);
  ck_assert_msg(r1 < 0, "read on a reset connection: %d (%s)", r1, ax_strerror(r1));
  ck_assert_msg(r2 < 0, "second read on a reset connection: %d (%s)", r2, ax_strerror(r2));
  ck_assert_msg(r1 != -ETIMEDOUT && r1 != -ECANCELED, "reset read: %s", ax_strerror(r1));
  close(lfd);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A stream's end taken with ax_recv_type, not by a stream call: the stream
 * calls still read the bytes before it, then report that end (they waited
 * for an end that had already come: -ETIMEDOUT, or forever). */
typedef struct taker {
  fib_t f;
  int fd;   /* socketpair end: the test writes "abc" and shuts its side */
  int port; /* the test's TCP listener: the test resets the connection */
  int rc[7];
  char got[8];
} taker_t;

static int taker_fiber(ax_actor_t *self, void *arg) {
  taker_t *t = arg;
  ax_stream_t *s = NULL;
  const ax_msg_t *m;
  char buf[64];
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  o.flags = AX_STREAM_HALF_OPEN; /* the peer's end is an EOF, not CLOSED */
  FCHECK_EQ(&t->f, ax_pipe_open(self, t->fd, t->fd, &o, &s), 0);
  if (s == NULL)
    return -1;
  atomic_store(&t->f.phase, 1);
  /* The EOF, past the DATA before it (which stays queued). */
  FCHECK_EQ(&t->f, ax_recv_type(self, AX_MSG_EOF, ax_deadline(LONG_WAIT), &m), 0);
  t->rc[0] = (int)ax_stream_read_until(s, t->got, sizeof t->got, '\n', ax_deadline(2 * SEC));
  t->rc[1] = (int)ax_stream_read(s, buf, sizeof buf, ax_deadline(2 * SEC));
  t->rc[2] = (int)ax_stream_read_exact(s, buf, 4, ax_deadline(2 * SEC));
  FCHECK_EQ(&t->f, ax_stream_close(s), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", t->port);
  s = NULL;
  int rc = ax_tcp_dial(self, addr, NULL, ax_deadline(LONG_WAIT), &s);
  FCHECK_EQ(&t->f, rc, 0);
  if (rc != 0)
    return rc;
  atomic_store(&t->f.phase, 2);
  /* The CLOSED of a reset, taken the same way. */
  FCHECK_EQ(&t->f, ax_recv_type(self, AX_MSG_CLOSED, ax_deadline(LONG_WAIT), &m), 0);
  t->rc[3] = (int)((const ax_stream_ev_t *)m->data)->err;
  t->rc[4] = (int)ax_stream_read(s, buf, sizeof buf, ax_deadline(2 * SEC));
  t->rc[5] = (int)ax_stream_read_until(s, buf, sizeof buf, '\n', ax_deadline(2 * SEC));
  t->rc[6] = ax_stream_write_all(s, "x", 1, ax_deadline(2 * SEC)); /* the end reason too */
  FCHECK_EQ(&t->f, ax_stream_close(s), 0);
  return 0;
}

START_TEST(test_fiber_io_end_taken_by_recv) {
  ax_rt_t *rt = rt_new();
  int sv[2];
  socketpair_cloexec(sv);
  int port;
  int lfd = loopback_listener(&port);
  static taker_t t;
  memset(&t, 0, sizeof t);
  fib_init(&t.f);
  t.fd = sv[0];
  t.port = port;
  spawn_fiber(rt, taker_fiber, &t.f, 0, 0);
  wait_phase(&t.f, 1);
  ck_assert_int_eq(write(sv[1], "abc", 3), 3);
  ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
  struct pollfd pfd = {lfd, POLLIN, 0};
  ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
  int cfd = accept(lfd, NULL, NULL);
  ck_assert_int_ge(cfd, 0);
  wait_phase(&t.f, 2);
  struct linger lg = {1, 0};
  ck_assert_int_eq(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  close(cfd); /* RST */
  fib_wait(&t.f, 30000);
  ck_assert_msg(t.rc[0] == 3 && memcmp(t.got, "abc", 3) == 0,
                "the bytes before the EOF: %d (%s)", t.rc[0], ax_strerror(t.rc[0]));
  ck_assert_msg(t.rc[1] == 0 && t.rc[2] == 0, "reads after an EOF taken by ax_recv_type: %d (%s), "
                "%d (%s), want 0", t.rc[1], ax_strerror(t.rc[1]), t.rc[2], ax_strerror(t.rc[2]));
  ck_assert_msg(t.rc[3] < 0, "CLOSED of a reset carries %d", t.rc[3]);
  ck_assert_msg(t.rc[4] == t.rc[3] && t.rc[5] == t.rc[3] && t.rc[6] == t.rc[3],
                "reads and a write after a CLOSED taken by ax_recv_type: %d (%s), %d (%s), "
                "%d (%s), want %d (%s)",
                t.rc[4], ax_strerror(t.rc[4]), t.rc[5], ax_strerror(t.rc[5]), t.rc[6],
                ax_strerror(t.rc[6]), t.rc[3], ax_strerror(t.rc[3]));
  close(sv[1]);
  close(lfd);
  test_rt_stop_join_free(rt);
}
END_TEST

/* A fiber closes a source while messages of it wait kept aside (they came
 * while it slept): none of them reaches it afterwards, and an ACCEPT's
 * connection closes with its listener.  Before, a later ax_recv returned
 * the closed stream's DATA, and the accepted connection stayed open until
 * the fiber returned. */
typedef struct aside {
  fib_t f;
  int fd;           /* socketpair end: the test writes to the other one */
  atomic_int port;  /* the listener's, for the test to connect to */
  int recv_rc;
} aside_t;

static int aside_fiber(ax_actor_t *self, void *arg) {
  aside_t *a = arg;
  ax_stream_t *s = NULL;
  FCHECK_EQ(&a->f, ax_pipe_open(self, a->fd, a->fd, NULL, &s), 0);
  atomic_store(&a->f.phase, 1); /* the test writes */
  FCHECK_EQ(&a->f, ax_sleep(self, 200 * MSEC), 0); /* the DATA is kept aside */
  FCHECK_EQ(&a->f, ax_stream_close(s), 0);
  const ax_msg_t *m;
  a->recv_rc = ax_recv(self, ax_deadline(100 * MSEC), &m);
  ax_listener_t *l = NULL;
  FCHECK_EQ(&a->f, ax_tcp_listen(self, "127.0.0.1:0", 0, NULL, &l), 0);
  if (l == NULL)
    return -1;
  atomic_store(&a->port, ax_listener_port(l));
  atomic_store(&a->f.phase, 2); /* the test connects */
  FCHECK_EQ(&a->f, ax_sleep(self, 300 * MSEC), 0); /* the ACCEPT is kept aside */
  FCHECK_EQ(&a->f, ax_listener_close(l), 0);
  atomic_store(&a->f.phase, 3); /* the test sees its connection end, while... */
  (void)ax_sleep(self, 10 * SEC); /* ...the fiber still runs (the stop ends this) */
  return 0;
}

START_TEST(test_fiber_io_close_drops_kept_aside) {
  ax_rt_t *rt = rt_new();
  int sv[2];
  socketpair_cloexec(sv);
  static aside_t a;
  memset(&a, 0, sizeof a);
  fib_init(&a.f);
  a.fd = sv[0];
  ax_ref_t f = spawn_fiber(rt, aside_fiber, &a.f, 0, 0);
  wait_phase(&a.f, 1);
  ck_assert_int_eq(write(sv[1], "hello", 5), 5);
  wait_phase(&a.f, 2);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in to;
  memset(&to, 0, sizeof to);
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons((uint16_t)atomic_load(&a.port));
  ck_assert_int_eq(connect(c, (struct sockaddr *)&to, sizeof to), 0);
  wait_phase(&a.f, 3);
  struct pollfd p = {c, POLLIN, 0};
  ck_assert_msg(poll(&p, 1, 3000) == 1, "the accepted connection is still open");
  char b;
  ck_assert_int_le(read(c, &b, 1), 0); /* its end: EOF or a reset */
  ck_assert_int_eq(atomic_load(&a.f.terminated), 0); /* while the fiber lives */
  ck_assert_int_eq(ax_stop(f, 0), 0);
  fib_wait(&a.f, 10000);
  ck_assert_msg(a.recv_rc == -ETIMEDOUT, "ax_recv after the close: %d (%s), want -ETIMEDOUT",
                a.recv_rc, ax_strerror(a.recv_rc));
  close(c);
  close(sv[1]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Misuse: the stream calls' own errors                                      */

typedef struct handler_io {
  int fd;
  atomic_int done;
  int rc[6];
} handler_io_t;

/* A handler actor with a stream of its own, calling the fiber calls on
 * it: -EPERM. */
static int handler_io_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  handler_io_t *h = ax_state(self);
  if (msg->type != MSG_GO)
    return 0;
  ax_stream_t *s = NULL;
  ax_listener_t *l = NULL;
  char buf[8];
  if (ax_pipe_open(self, h->fd, h->fd, NULL, &s) != 0 ||
      ax_tcp_listen(self, "127.0.0.1:0", 0, NULL, &l) != 0) {
    h->rc[0] = 99999;
    atomic_store(&h->done, 1);
    return 0;
  }
  h->rc[0] = (int)ax_stream_read(s, buf, sizeof buf, 0);
  h->rc[1] = (int)ax_stream_read_until(s, buf, sizeof buf, '\n', 0);
  h->rc[2] = ax_stream_write_all(s, "x", 1, 0);
  ax_stream_t *out = NULL;
  h->rc[3] = ax_listener_accept(l, 0, &out, NULL, NULL);
  h->rc[4] = ax_tcp_dial(self, "127.0.0.1:1", NULL, 0, &out);
  h->rc[5] = ax_fd_wait(self, h->fd, AX_READ, 0);
  ax_stream_close(s);
  ax_listener_close(l);
  atomic_store(&h->done, 1);
  return 0;
}

typedef struct badio {
  fib_t f;
  int fd;       /* its own stream */
  int framed_fd;
  ax_stream_t *_Atomic published; /* its stream, for the thief */
  atomic_int release;             /* the thief is done */
} badio_t;

static int badio_fiber(ax_actor_t *self, void *arg) {
  badio_t *b = arg;
  ax_stream_t *s = NULL, *framed = NULL;
  char buf[16];
  FCHECK_EQ(&b->f, ax_pipe_open(self, b->fd, b->fd, NULL, &s), 0);
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  o.frame = AX_FRAME_DELIM;
  FCHECK_EQ(&b->f, ax_pipe_open(self, b->framed_fd, b->framed_fd, &o, &framed), 0);
  if (s == NULL || framed == NULL)
    return -EIO;
  /* NULL arguments */
  FCHECK_EQ(&b->f, ax_stream_read(NULL, buf, sizeof buf, 0), -EINVAL);
  FCHECK_EQ(&b->f, ax_stream_read(s, NULL, sizeof buf, 0), -EINVAL);
  FCHECK_EQ(&b->f, ax_stream_read(s, buf, 0, 0), -EINVAL); /* 0 would read as the end */
  FCHECK_EQ(&b->f, ax_stream_read_exact(NULL, buf, sizeof buf, 0), -EINVAL);
  FCHECK_EQ(&b->f, ax_stream_read_until(NULL, buf, sizeof buf, '\n', 0), -EINVAL);
  FCHECK_EQ(&b->f, ax_stream_read_until(s, NULL, sizeof buf, '\n', 0), -EINVAL);
  FCHECK_EQ(&b->f, ax_stream_write_all(NULL, "x", 1, 0), -EINVAL);
  FCHECK_EQ(&b->f, ax_listener_accept(NULL, 0, NULL, NULL, NULL), -EINVAL);
  FCHECK_EQ(&b->f, ax_dgram_recv(NULL, buf, sizeof buf, NULL, NULL, 0), -EINVAL);
  ax_stream_t *none = NULL;
  FCHECK_EQ(&b->f, ax_tcp_dial(self, NULL, NULL, 0, &none), -EINVAL);
  FCHECK_EQ(&b->f, ax_tcp_dial(self, "no port here", NULL, ax_deadline(LONG_WAIT), &none),
            -EINVAL);
  /* a framed stream */
  FCHECK_EQ(&b->f, ax_stream_read(framed, buf, sizeof buf, 0), -EINVAL);
  FCHECK_EQ(&b->f, ax_stream_read_until(framed, buf, sizeof buf, '\n', 0), -EINVAL);
  /* an fd a stream of this core watches already */
  FCHECK_EQ(&b->f, ax_fd_wait(self, b->fd, AX_READ, 0), -EEXIST);
  /* none of it consumed anything: the bytes written before are there */
  ssize_t n = ax_stream_read_exact(s, buf, 5, ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&b->f, n, buf, "ready");
  /* let a thief on this core try the stream */
  atomic_store(&b->published, s);
  atomic_store(&b->f.phase, 1);
  while (atomic_load(&b->release) == 0) {
    int rc = ax_sleep(self, MSEC);
    if (rc != 0) {
      fib_fail(&b->f, __LINE__, "ax_sleep: %s", ax_strerror(rc));
      break;
    }
  }
  /* still ours and intact */
  n = ax_stream_read_exact(s, buf, 5, ax_deadline(LONG_WAIT));
  FCHECK_BYTES(&b->f, n, buf, "still");
  return 0;
}

typedef struct thief {
  fib_t f;
  badio_t *victim;
} thief_t;

static int thief_fiber(ax_actor_t *self, void *arg) {
  (void)self;
  thief_t *t = arg;
  ax_stream_t *s = atomic_load(&t->victim->published);
  char buf[8];
  FCHECK_EQ(&t->f, ax_stream_read(s, buf, sizeof buf, 0), -EPERM);
  FCHECK_EQ(&t->f, ax_stream_read_until(s, buf, sizeof buf, '\n', 0), -EPERM);
  FCHECK_EQ(&t->f, ax_stream_read_exact(s, buf, sizeof buf, 0), -EPERM);
  FCHECK_EQ(&t->f, ax_stream_write_all(s, "x", 1, 0), -EPERM);
  atomic_store(&t->victim->release, 1);
  return 0;
}

START_TEST(test_fiber_io_misuse) {
  ax_rt_t *rt = rt_new();
  /* from a handler actor */
  int hv[2];
  socketpair_cloexec(hv);
  static handler_io_t h;
  memset(&h, 0, sizeof h);
  h.fd = hv[0];
  ax_ref_t a = test_spawn(rt, handler_io_behaviour, &h, AX_PLACE_CORE, 0, NULL, NULL);
  test_send(a, MSG_GO, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&h.done) == 1, 10000);
  const char *names[] = {"ax_stream_read",     "ax_stream_read_until", "ax_stream_write_all",
                         "ax_listener_accept", "ax_tcp_dial",          "ax_fd_wait"};
  for (int i = 0; i < 6; i++)
    ck_assert_msg(h.rc[i] == -EPERM, "%s from a handler: %d (%s), want -EPERM", names[i],
                  h.rc[i], ax_strerror(h.rc[i]));
  close(hv[1]);

  /* inside a fiber; then another fiber of the same core tries its stream */
  int sv[2], fv[2];
  socketpair_cloexec(sv);
  socketpair_cloexec(fv);
  put(sv[1], "ready");
  static badio_t b;
  static thief_t t;
  memset(&b, 0, sizeof b);
  fib_init(&b.f);
  b.fd = sv[0];
  b.framed_fd = fv[0];
  spawn_fiber(rt, badio_fiber, &b.f, 1, 0);
  wait_phase(&b.f, 1);
  put(sv[1], "still");
  memset(&t, 0, sizeof t);
  fib_init(&t.f);
  t.victim = &b;
  spawn_fiber(rt, thief_fiber, &t.f, 1, 0);
  fib_wait(&t.f, 10000);
  fib_wait(&b.f, 10000);
  close(sv[1]);
  close(fv[1]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 10. The two-port bridge on ptys                                           */

typedef struct pty {
  int master, slave;
  char name[64];
} pty_t;

/* Opens a pty pair by hand; returns 0 or an errno value. */
static int pty_try_open(pty_t *p) {
  p->master = p->slave = -1;
  p->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (p->master < 0)
    return errno;
  if (grantpt(p->master) != 0 || unlockpt(p->master) != 0 ||
      ptsname_r(p->master, p->name, sizeof p->name) != 0) {
    int err = errno;
    close(p->master);
    p->master = -1;
    return err;
  }
  /* The test holds the slave open too, so that the master keeps reading
   * what the fiber wrote after the fiber closed its side. */
  p->slave = open(p->name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (p->slave < 0) {
    int err = errno;
    close(p->master);
    p->master = -1;
    return err;
  }
  return 0;
}

static void pty_close(pty_t *p) {
  if (p->master >= 0)
    close(p->master);
  if (p->slave >= 0)
    close(p->slave);
  p->master = p->slave = -1;
}

static char pty_why[160];

static const char *pty_missing(void) {
  pty_t p;
  int err = pty_try_open(&p);
  if (err != 0) {
    snprintf(pty_why, sizeof pty_why, "no pseudo-terminal (posix_openpt/grantpt/unlockpt/open: %s)",
             strerror(err));
    return pty_why;
  }
  pty_close(&p);
  return NULL;
}

typedef struct bridge {
  fib_t f;
  char a[64], b[64];
  int lines;
} bridge_t;

static int bridge_fiber(ax_actor_t *self, void *arg) {
  bridge_t *br = arg;
  ax_stream_t *a = NULL, *b = NULL;
  int rc = ax_serial_open(self, br->a, NULL, &a);
  FCHECK_EQ(&br->f, rc, 0);
  if (rc != 0)
    return rc;
  rc = ax_serial_open(self, br->b, NULL, &b);
  FCHECK_EQ(&br->f, rc, 0);
  if (rc != 0)
    return rc;
  atomic_store(&br->f.phase, 1);
  char line[256];
  for (;;) {
    ssize_t n = ax_stream_read_until(a, line, sizeof line, '\n', ax_deadline(LONG_WAIT));
    if (n <= 0) {
      fib_fail(&br->f, __LINE__, "read_until on port A: %zd (%s)", n,
               n < 0 ? ax_strerror((int)n) : "EOF");
      break;
    }
    if (n == 4 && memcmp(line, "END\n", 4) == 0)
      break;
    for (ssize_t i = 0; i < n; i++)
      line[i] = (char)toupper((unsigned char)line[i]);
    rc = ax_stream_write_all(b, line, (size_t)n, ax_deadline(LONG_WAIT));
    if (rc != 0) {
      fib_fail(&br->f, __LINE__, "write_all on port B: %s", ax_strerror(rc));
      break;
    }
    br->lines++;
  }
  FCHECK_EQ(&br->f, ax_stream_write_all(b, "BYE\n", 4, ax_deadline(LONG_WAIT)), 0);
  FCHECK_EQ(&br->f, ax_stream_close(a), 0);
  FCHECK_EQ(&br->f, ax_stream_close(b), 0);
  return 0;
}

START_TEST(test_fiber_io_pty_bridge) {
  pty_t pa, pb;
  ck_assert_int_eq(pty_try_open(&pa), 0);
  ck_assert_int_eq(pty_try_open(&pb), 0);
  ax_rt_t *rt = rt_new();
  static bridge_t br;
  memset(&br, 0, sizeof br);
  fib_init(&br.f);
  memcpy(br.a, pa.name, sizeof br.a);
  memcpy(br.b, pb.name, sizeof br.b);
  spawn_fiber(rt, bridge_fiber, &br.f, 1, 0);
  wait_phase(&br.f, 1);
  enum { LINES = 20 };
  static char want[LINES * 64];
  size_t want_len = 0;
  for (int i = 0; i < LINES; i++) {
    char line[64];
    int len = snprintf(line, sizeof line, "line %02d: hello, world %d\n", i, i * 7);
    /* some lines in two writes, some writes with two lines */
    if (i % 3 == 0) {
      char first[64];
      memcpy(first, line, 5);
      first[5] = '\0';
      put(pa.master, first);
      test_sleep_ms(5);
      put(pa.master, line + 5);
    } else if (i % 3 == 1) {
      put(pa.master, line);
    } else {
      put(pa.master, line);
      test_sleep_ms(2);
    }
    for (int k = 0; k < len; k++)
      want[want_len + (size_t)k] = (char)toupper((unsigned char)line[k]);
    want_len += (size_t)len;
  }
  static char got[LINES * 64];
  get_exact(pb.master, got, want_len, 20000);
  ck_assert_msg(memcmp(got, want, want_len) == 0, "port B got:\n%.*s\nwant:\n%.*s",
                (int)want_len, got, (int)want_len, want);
  put(pa.master, "END\n");
  char bye[4];
  get_exact(pb.master, bye, 4, 10000);
  ck_assert(memcmp(bye, "BYE\n", 4) == 0);
  fib_wait(&br.f, 10000);
  ck_assert_int_eq(br.lines, LINES);
  test_rt_stop_join_free(rt);
  pty_close(&pa);
  pty_close(&pb);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *fiber_io_suite(void) {
  Suite *suite = suite_create("fiber_io");

  TCase *tc = tcase_create("read");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_io_read_until);
  tcase_add_test(tc, test_fiber_io_read_exact_deadlines);
  tcase_add_test(tc, test_fiber_io_eof_and_reset);
  tcase_add_test(tc, test_fiber_io_end_taken_by_recv);
  tcase_add_test(tc, test_fiber_io_close_drops_kept_aside);
  suite_add_tcase(suite, tc);

  tc = tcase_create("write");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_fiber_io_write_all_slow_peer);
  tcase_add_test(tc, test_fiber_io_write_all_deadline);
  suite_add_tcase(suite, tc);

  tc = tcase_create("sockets");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_io_accept_dial);
  tcase_add_test(tc, test_fiber_io_dgram);
  tcase_add_test(tc, test_fiber_io_fd_wait);
  suite_add_tcase(suite, tc);

  tc = tcase_create("cancel");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_io_cancel_every_wait);
  tcase_add_test(tc, test_fiber_io_closed_on_return);
  tcase_add_test(tc, test_fiber_io_closed_on_stop);
  suite_add_tcase(suite, tc);

  tc = tcase_create("misuse");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_io_misuse);
  suite_add_tcase(suite, tc);

  /* Group "pty": its own CTest entry, SKIP where no pty can be opened. */
  tc = tcase_create("pty");
  tcase_set_tags(tc, "pty");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fiber_io_pty_bridge);
  suite_add_tcase(suite, tc);

  return suite;
}

/* Without an argument: every TCase but the groups'; "pty": the two-port
 * bridge on ptys, or SKIP (77) where ptys cannot be opened. */
int main(int argc, char **argv) {
  static const test_group_t groups[] = {{"pty", pty_missing}};
  return test_run_groups(fiber_io_suite(), argc, argv, groups, sizeof groups / sizeof groups[0]);
}
