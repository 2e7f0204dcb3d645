/*
 * fiber-echo: a TCP line echo server written with fibers, as straight-line code.
 *
 * One acceptor fiber listens and loops on ax_listener_accept; each connection gets a fiber
 * of its own, spread over the cores, and the acceptor hands it the stream with
 * ax_stream_give.  A session waits for AX_MSG_GIVEN, then loops: read a line with
 * ax_stream_read_until, write it back with ax_stream_write_all.  Each of those calls parks
 * the fiber, never the core, so thousands of sessions share a few threads.  Compare with
 * examples/tcp-echo-cores, the same server as handler actors.  Ctrl-C (SIGINT) stops the
 * runtime: every fiber's waiting call returns -ECANCELED, and each one returns.
 *
 *   build/examples/fiber-echo            # port 7000; then: nc 127.0.0.1 7000
 *   build/examples/fiber-echo 0          # any free port (printed)
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <axon.h>

#define IDLE_NS (60 * AX_NSEC_PER_SEC)  /* a client silent this long is dropped */
#define WRITE_NS (10 * AX_NSEC_PER_SEC) /* a client that reads nothing this long too */

static atomic_ulong sessions; /* connections served, printed at exit */
static atomic_int failed;     /* an error the server itself met: exit status 1 */

/* One connection.  Its code reads like a blocking server's, but every call that waits
 * parks this fiber only; the other fibers of its core run meanwhile. */
static int session(ax_actor_t *self, void *arg) {
  (void)arg;
  /* The acceptor gives us the stream: its first message to us says so.  If the hand-over
   * fails, the acceptor stops us instead, and this returns -ECANCELED. */
  const ax_msg_t *m;
  int rc = ax_recv_type(self, AX_MSG_GIVEN, AX_FOREVER, &m);
  if (rc < 0)
    return rc == -ECANCELED ? 0 : rc;
  ax_stream_t *s = ((const ax_stream_ev_t *)m->data)->stream;
  atomic_fetch_add(&sessions, 1);

  char line[4096]; /* on the fiber's stack: 64 KiB by default is plenty */
  for (;;) {
    ssize_t n = ax_stream_read_until(s, line, sizeof line, '\n', ax_deadline(IDLE_NS));
    if (n == -EMSGSIZE) /* a longer line: its first 4096 bytes are in line, echo them */
      n = (ssize_t)sizeof line;
    if (n == 0 || n == -ECANCELED) /* the client is done sending, or Ctrl-C */
      break;
    if (n < 0) { /* -ETIMEDOUT (idle), -ECONNRESET, ...: that client's problem, not ours */
      fprintf(stderr, "fiber-echo: client: %s\n", ax_strerror((int)n));
      break;
    }
    /* n counts the '\n'; only a last line cut short by the client's end has none. */
    rc = ax_stream_write_all(s, line, (size_t)n, ax_deadline(WRITE_NS));
    if (rc < 0) {
      if (rc != -ECANCELED)
        fprintf(stderr, "fiber-echo: client: %s\n", ax_strerror(rc));
      break;
    }
  }
  return 0; /* the stream is ours: axon closes it as the fiber returns */
}

/* The acceptor: listens, and gives each new connection to a new session fiber. */
static int acceptor(ax_actor_t *self, void *arg) {
  const char *addr = arg;
  /* HALF_OPEN: a client that shuts down its side (nc -N, say) still gets its last line
   * back; without it, the peer's end of file ends the stream, writes included. */
  ax_stream_opts_t opts = {.flags = AX_STREAM_HALF_OPEN | AX_STREAM_NODELAY};
  ax_listener_t *l;
  int rc = ax_tcp_listen(self, addr, 0, &opts, &l); /* backlog 0: SOMAXCONN */
  if (rc < 0) {
    fprintf(stderr, "fiber-echo: listen %s: %s\n", addr, ax_strerror(rc));
    atomic_store(&failed, 1);
    return rc;
  }
  printf("listening on 127.0.0.1:%d\n", ax_listener_port(l));
  for (;;) {
    ax_stream_t *s;
    rc = ax_listener_accept(l, AX_FOREVER, &s, NULL, NULL);
    if (rc == -ECANCELED) /* Ctrl-C: the runtime is stopping */
      return 0;
    if (rc < 0) {
      fprintf(stderr, "fiber-echo: accept: %s\n", ax_strerror(rc));
      atomic_store(&failed, 1);
      return rc; /* the listener is closed as we return */
    }
    /* The accepted stream is ours; AX_PLACE_SPREAD puts the session fiber on
     * the next core in turn (the default would keep it next to this one), and
     * ax_stream_give moves the stream's fd to that core's loop. */
    ax_fiber_opts_t spread = {.placement = AX_PLACE_SPREAD};
    ax_ref_t ref = AX_REF_NONE;
    rc = ax_spawn_fiber(ax_actor_rt(self), session, NULL, &spread, &ref);
    if (rc == 0)
      rc = ax_stream_give(s, ref);
    if (rc < 0) { /* too many connections for memory, say: refuse this one, go on */
      fprintf(stderr, "fiber-echo: new session: %s\n", ax_strerror(rc));
      ax_stream_close(s); /* still ours after a failed give: the client sees it close */
      if (ref != AX_REF_NONE)
        ax_stop(ref, 0); /* it waits for a GIVEN that will never come */
    }
  }
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc >= 2 ? strtol(argv[1], &end, 10) : 7000;
  if (argc > 2 || (end != NULL && (*end != '\0' || end == argv[1])) || port < 0 ||
      port > 65535) {
    fprintf(stderr, "usage: %s [PORT]   (default 7000; 0: any free port)\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear at once, even into a pipe */
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);

  ax_rt_t *rt;
  int rc = ax_rt_new(NULL, &rt); /* one core per CPU */
  if (rc < 0) {
    fprintf(stderr, "fiber-echo: ax_rt_new: %s\n", ax_strerror(rc));
    return 1;
  }
  rc = ax_spawn_fiber(rt, acceptor, addr, NULL, NULL); /* addr outlives the runtime */
  if (rc == 0)
    rc = ax_rt_run(rt); /* until SIGINT/SIGTERM, or no fiber is left (listen failed) */
  if (rc < 0) {
    fprintf(stderr, "fiber-echo: %s\n", ax_strerror(rc));
    atomic_store(&failed, 1);
  }
  rc = ax_rt_free(rt);
  if (rc < 0) {
    fprintf(stderr, "fiber-echo: ax_rt_free: %s\n", ax_strerror(rc));
    atomic_store(&failed, 1);
  }
  printf("served %lu connections\nbye\n", atomic_load(&sessions));
  return atomic_load(&failed) ? 1 : 0;
}
