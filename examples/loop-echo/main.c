/* loop-echo: a TCP echo server on axon's callback loop, without the actor runtime.
 * Shows: a listener watched by an ax_io_t; one heap-allocated conn_t per client that embeds its
 * ax_io_t and gets back to itself with AX_CONTAINER_OF; a send that would block keeps the rest
 * and watches AX_WRITE until it is drained, then AX_READ again; SIGINT and SIGTERM watchers that
 * stop the loop; a repeating 10 s timer; a shutdown after which ax_loop_close(loop, 0) succeeds.
 * Run: build/examples/loop-echo [port] (on 127.0.0.1; default 7000; 0 = a free port), then type
 * lines into `nc 127.0.0.1 7000`; Ctrl-C stops the server, which prints "bye" and exits 0. */
#include <axon.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct conn {
  ax_io_t io;                 /* the embedded watcher */
  struct conn *next, **pprev; /* the server's list of open connections */
  size_t off, len;            /* buf[off..len) has been read but not yet echoed */
  char buf[4096];
} conn_t;

typedef struct server {
  ax_loop_t *loop;
  ax_io_t listener;
  ax_signal_t sigint, sigterm;
  ax_timer_t stats;
  conn_t *conns;
  unsigned long served;
} server_t;

/* Reports a failure (rc is a negated errno value, as axon returns) and passes rc through. */
static int check(int rc, const char *what) {
  if (rc < 0)
    fprintf(stderr, "loop-echo: %s: %s\n", what, ax_strerror(rc));
  return rc;
}
#define CHECK(call) check((call), #call)

/* Turns a system call's -1 into -errno, the convention axon uses. */
static int sys(int rc) { return rc < 0 ? -errno : rc; }

/* Stops the watcher (always before closing its fd), closes, unlinks and frees c. */
static void conn_close(conn_t *c) {
  CHECK(ax_io_stop(&c->io));
  CHECK(sys(close(c->io.fd)));
  *c->pprev = c->next;
  if (c->next != NULL)
    c->next->pprev = c->pprev;
  free(c);
}

/* Echoes what it can.  Returns 0 to keep the connection, 1 at its end, or -errno. */
static int echo(conn_t *c, unsigned revents) {
  ssize_t n = 0;
  if (revents & (AX_HUP | AX_ERR))
    return 1;
  if (revents & AX_READ) { /* requested only while nothing is pending */
    if ((n = recv(c->io.fd, c->buf, sizeof c->buf, 0)) <= 0) /* 0: the client closed */
      return n == 0 ? 1 : errno == EAGAIN || errno == EINTR ? 0 : -errno;
    c->off = 0;
    c->len = (size_t)n;
  }
  while (c->off < c->len && /* MSG_NOSIGNAL: a vanished client gives EPIPE, not SIGPIPE */
         (n = send(c->io.fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL)) > 0)
    c->off += (size_t)n;
  if (n < 0 && errno != EAGAIN && errno != EINTR)
    return -errno;
  unsigned want = c->off < c->len ? AX_WRITE : AX_READ; /* the rest waits for AX_WRITE */
  return want == c->io.events ? 0 : ax_io_modify(&c->io, want);
}

static void conn_cb(ax_io_t *io, unsigned revents) {
  conn_t *c = AX_CONTAINER_OF(io, conn_t, io);
  if (check(echo(c, revents), "connection") != 0)
    conn_close(c); /* a callback may stop and free its own watcher */
}

/* The listener is level-triggered: one accept per call, the loop calls again while more wait. */
static void accept_cb(ax_io_t *io, unsigned revents) {
  server_t *srv = AX_CONTAINER_OF(io, server_t, listener);
  int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  (void)revents;
  if (check(fd < 0 && errno != EAGAIN ? -errno : 0, "accept4") < 0 || fd < 0)
    return;
  conn_t *c = calloc(1, sizeof *c);
  if (check(c != NULL ? 0 : -ENOMEM, "calloc") < 0 ||
      CHECK(ax_io_init(srv->loop, &c->io, fd, conn_cb)) < 0 ||
      CHECK(ax_io_start(&c->io, AX_READ)) < 0) {
    CHECK(sys(close(fd)));
    free(c);
    return;
  }
  if ((c->next = srv->conns) != NULL)
    c->next->pprev = &c->next;
  c->pprev = &srv->conns;
  srv->conns = c;
  srv->served++;
}

static void signal_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  (void)info;
  ax_loop_stop(sig->loop); /* run() returns AX_RUN_STOPPED at the end of this pass */
}

static void stats_cb(ax_timer_t *timer) {
  server_t *srv = AX_CONTAINER_OF(timer, server_t, stats);
  printf("%lu connections served\n", srv->served);
}

int main(int argc, char **argv) {
  unsigned long port = argc > 1 ? strtoul(argv[1], NULL, 10) : 7000;
  if (argc > 2 || port > 65535)
    return fprintf(stderr, "usage: %s [port]   (default 7000; 0 = a free port)\n", argv[0]), 2;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  server_t srv = {0};
  setvbuf(stdout, NULL, _IOLBF, 0); /* each line out at once, even into a pipe or a file */
  if (CHECK(ax_loop_new(NULL, &srv.loop)) < 0)
    return 1;
  int status = 1, one = 1;
  int lfd = CHECK(sys(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)));
  int ready = lfd >= 0 && /* set up the socket and init every watcher before starting any */
              CHECK(sys(setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one))) == 0 &&
              CHECK(sys(bind(lfd, (struct sockaddr *)&sa, sizeof sa))) == 0 &&
              CHECK(sys(listen(lfd, SOMAXCONN))) == 0 &&
              CHECK(sys(getsockname(lfd, (struct sockaddr *)&sa, &(socklen_t){sizeof sa}))) == 0 &&
              CHECK(ax_io_init(srv.loop, &srv.listener, lfd, accept_cb)) == 0 &&
              CHECK(ax_signal_init(srv.loop, &srv.sigint, signal_cb)) == 0 &&
              CHECK(ax_signal_init(srv.loop, &srv.sigterm, signal_cb)) == 0 &&
              CHECK(ax_timer_init(srv.loop, &srv.stats, stats_cb)) == 0;
  if (ready && CHECK(ax_io_start(&srv.listener, AX_READ)) == 0 &&
      CHECK(ax_signal_start(&srv.sigint, SIGINT)) == 0 &&
      CHECK(ax_signal_start(&srv.sigterm, SIGTERM)) == 0 &&
      CHECK(ax_timer_start(&srv.stats, 10 * AX_NSEC_PER_SEC, 10 * AX_NSEC_PER_SEC)) == 0) {
    printf("listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
    status = CHECK(ax_loop_run(srv.loop, AX_FOREVER)) == AX_RUN_STOPPED ? 0 : 1;
  }
  /* Clean shutdown: every watcher stopped, every fd closed, every connection freed. */
  while (srv.conns != NULL)
    conn_close(srv.conns);
  if (ready && (CHECK(ax_io_stop(&srv.listener)) < 0 || CHECK(ax_signal_stop(&srv.sigint)) < 0 ||
                CHECK(ax_signal_stop(&srv.sigterm)) < 0 || CHECK(ax_timer_stop(&srv.stats)) < 0))
    status = 1;
  if (lfd >= 0 && CHECK(sys(close(lfd))) < 0)
    status = 1;
  /* Succeeds only if no watcher is left active: the proof that nothing was forgotten. */
  return CHECK(ax_loop_close(srv.loop, 0)) == 0 && status == 0 && puts("bye") != EOF ? 0 : 1;
}
