/*
 * tcp-echo-cores: a line echo server on every core with ax_tcp_serve.
 *
 * Each core has its own listener on the port, so the kernel spreads the
 * connections over the cores; each connection gets a session actor on the
 * core that accepted it.  The server is set up before the runtime starts,
 * and ax_rt_run then runs it on main's behalf.  The stream cuts the bytes into lines
 * (AX_FRAME_DELIM); a session echoes each line, answers "cores" with the core
 * it runs on, and closes the connection on "quit".  Ctrl-C (SIGINT) stops the
 * runtime; main then prints how many sessions each core served.
 *
 *   build/examples/tcp-echo-cores 7000        # then: nc 127.0.0.1 7000
 *   build/examples/tcp-echo-cores 0           # any free port (printed)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <axon.h>

#define MAX_CORES 256

static _Atomic unsigned long served[MAX_CORES]; /* sessions ended, per core */

static int session(ax_actor_t *self, const ax_msg_t *m) {
  switch (m->type) {
  case AX_MSG_GIVEN: { /* the first message: this actor now owns the connection */
    const ax_stream_ev_t *ev = m->data;
    return ax_stream_write(ev->stream, "hello\n", 6) < 0 ? AX_STOP : 0;
  }
  case AX_MSG_DATA: { /* one line, without its '\n' */
    const ax_data_t *d = m->data;
    char reply[64];
    if (d->len == 4 && memcmp(d->bytes, "quit", 4) == 0) {
      ax_stream_write(d->stream, "bye\n", 4); /* if it cannot be queued, the client is gone */
      ax_stream_close(d->stream); /* what is queued is still written */
      return AX_STOP;
    }
    if (d->len == 5 && memcmp(d->bytes, "cores", 5) == 0) {
      int n = snprintf(reply, sizeof reply, "core %u\n", ax_core(self));
      return ax_stream_write(d->stream, reply, (size_t)n) < 0 ? AX_STOP : 0;
    }
    /* -ENOBUFS would mean the client does not read its echoes: drop it. */
    if (ax_stream_write(d->stream, d->bytes, d->len) < 0 ||
        ax_stream_write(d->stream, "\n", 1) < 0)
      return AX_STOP;
    return 0;
  }
  case AX_MSG_FRAME_ERROR: { /* a line over max_frame was skipped */
    const ax_stream_ev_t *ev = m->data;
    return ax_stream_write(ev->stream, "line too long\n", 14) < 0 ? AX_STOP : 0;
  }
  case AX_MSG_CLOSED: /* peer gone: the stream is finished */
    return AX_STOP;
  default:
    return 0;
  }
}

static void session_end(ax_actor_t *self, int reason) {
  (void)reason;
  unsigned core = ax_core(self);
  if (core < MAX_CORES)
    atomic_fetch_add_explicit(&served[core], 1, memory_order_relaxed);
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
  if (argc != 2 || *end != '\0' || port < 0 || port > 65535) {
    fprintf(stderr, "usage: %s PORT   (0: any free port)\n", argv[0]);
    return 2;
  }
  ax_rt_t *rt;
  int rc = ax_rt_new(NULL, &rt);
  if (rc < 0) {
    fprintf(stderr, "tcp-echo-cores: runtime: %s\n", ax_strerror(rc));
    return 1;
  }
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);
  ax_serve_opts_t opts = {
      .stream = {.frame = AX_FRAME_DELIM, .max_frame = 1024, .flags = AX_STREAM_NODELAY},
      .terminate = session_end,
  };
  ax_server_t *srv;
  rc = ax_tcp_serve(rt, addr, session, &opts, &srv); /* -EADDRINUSE if anyone has the port */
  if (rc < 0) {
    fprintf(stderr, "tcp-echo-cores: serve %s: %s\n", addr, ax_strerror(rc));
    ax_rt_free(rt);
    return 1;
  }
  printf("listening on 127.0.0.1:%d with %u cores\n", ax_server_port(srv), ax_rt_cores(rt));
  fflush(stdout);
  rc = ax_rt_run(rt); /* until SIGINT or SIGTERM */
  ax_server_close(srv);
  for (unsigned i = 0; i < ax_rt_cores(rt) && i < MAX_CORES; i++)
    printf("core %u served %lu sessions\n", i, atomic_load(&served[i]));
  int frc = ax_rt_free(rt);
  if (rc < 0 || frc < 0) {
    fprintf(stderr, "tcp-echo-cores: %s\n", ax_strerror(rc < 0 ? rc : frc));
    return 1;
  }
  printf("bye\n");
  return 0;
}
