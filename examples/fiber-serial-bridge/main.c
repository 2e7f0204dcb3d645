/* fiber-serial-bridge: the seed's first program in axon, two workers written as plain loops.
 * The bridge reads lines from serial port A (ax_stream_read_until), numbers and upper-cases
 * each and writes it to port B (ax_stream_write_all); the sensor reads UDP datagrams with a
 * deadline and says "timeout" when none came.  A wait parks one fiber, never the thread: one
 * core drives both, as the seed's eventLoop().  Without arguments, pty pairs stand in for the
 * ports and a third fiber plays their far ends and the UDP sender (5 lines, then it hangs up).
 * Run: build/examples/fiber-serial-bridge [PORT_A PORT_B [UDP_ADDR]]  (Ctrl-C stops it), e.g.
 *   /dev/ttyUSB0 /dev/ttyUSB1, then: echo 21.5 | nc -u -q0 127.0.0.1 7001 (the default) */
#include <axon.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define QUIET_NS (500 * AX_NSEC_PER_MSEC) /* the sensor says "timeout" after this long */
#define WRITE_NS (2 * AX_NSEC_PER_SEC)    /* a port that takes nothing this long is stuck */
enum { MSG_READY = AX_MSG_USER };        /* worker to simulator: my port is open */

typedef struct app {        /* set by main before the runtime starts, then only read... */
  const char *port[2], *udp; /* A and B, and the sensor's address */
  ax_ref_t sim;              /* the simulator fiber, or AX_REF_NONE with real ports */
  int master[2]; /* ...but these: the ptys' far ends, until the simulator takes them */
} app_t;

static atomic_int failed; /* any error anywhere: exit status 1 */

/* Reports an error, stops the program, returns the error; 0 for success and -ECANCELED. */
static int report(ax_actor_t *self, int rc, const char *what) {
  if (rc >= 0 || rc == -ECANCELED) /* -ECANCELED: stopped (Ctrl-C), not failed: return now */
    return 0;
  fprintf(stderr, "fiber-serial-bridge: %s: %s\n", what, ax_strerror(rc));
  atomic_store(&failed, 1);
  if (self != NULL) /* a fiber: stop the others too (their waits return -ECANCELED) */
    ax_rt_stop(ax_actor_rt(self));
  return rc;
}

/* Worker 1: port A to port B, a line at a time: the seed's loop, nearly word for word. */
static int bridge(ax_actor_t *self, void *arg) {
  app_t *app = arg;
  ax_stream_t *a, *b;
  int rc = ax_serial_open(self, app->port[0], NULL, &a); /* NULL: 115200 8N1, raw, exclusive */
  if (rc < 0 || (rc = ax_serial_open(self, app->port[1], NULL, &b)) < 0)
    return report(self, rc, "opening the ports"); /* a, if open, is closed as we return */
  if (app->sim != AX_REF_NONE && (rc = ax_send(app->sim, MSG_READY, NULL, 0)) < 0)
    return report(self, rc, "ax_send");
  char line[4096], out[sizeof line + 16];
  for (unsigned count = 1;; count++) {
    ssize_t n = ax_stream_read_until(a, line, sizeof line, '\n', AX_FOREVER);
    if (n == 0 || n == -EIO) /* end of file, or hang-up or unplug (a tty's usual end) */
      return printf("bridge: port A hung up after %u lines\n", count - 1), 0;
    if (n < 0)
      return report(self, (int)n, "reading port A"); /* -EMSGSIZE: over 4096 bytes */
    size_t len = (size_t)n - (line[n - 1] == '\n'); /* the last line may lack its '\n' */
    for (size_t i = 0; i < len; i++)
      line[i] = (char)toupper((unsigned char)line[i]);
    int k = snprintf(out, sizeof out, "#%u %.*s\n", count, (int)len, line);
    if ((rc = ax_stream_write_all(b, out, (size_t)k, ax_deadline(WRITE_NS))) < 0)
      return report(self, rc, "writing port B");
  }
}

/* Worker 2: datagrams, with a deadline on each wait: silence is news too. */
static int sensor(ax_actor_t *self, void *arg) {
  app_t *app = arg;
  ax_dgram_t *d;
  int rc = ax_udp_bind(self, app->udp, NULL, &d), port;
  if (rc < 0 || (rc = port = ax_dgram_port(d)) < 0) /* port: the kernel's choice for 0 */
    return report(self, rc, app->udp);
  if (app->sim != AX_REF_NONE && (rc = ax_send(app->sim, MSG_READY, &port, sizeof port)) < 0)
    return report(self, rc, "ax_send");
  for (char buf[512];;) {
    ssize_t n = ax_dgram_recv(d, buf, sizeof buf, NULL, NULL, ax_deadline(QUIET_NS));
    if (n == -ETIMEDOUT)
      printf("sensor: timeout\n");
    else if (n < 0) /* -ECANCELED: stopped, by Ctrl-C or by the simulator */
      return report(self, (int)n, "ax_dgram_recv");
    else /* n > sizeof buf: the datagram was cut to fit */
      printf("sensor: %.*s\n", (int)(n < (ssize_t)sizeof buf ? n : (ssize_t)sizeof buf), buf);
  }
}

/* Simulated mode: the far end of both ports, and the one who sends the datagram. */
static int simulator(ax_actor_t *self, void *arg) {
  static const char *const script[] = {"hello", "temperature 21.5", "", "set led on", "bye"};
  app_t *app = arg;
  ax_ref_t sensor_ref = AX_REF_NONE;
  int port = 0, rc = 0, ready = 0;
  for (const ax_msg_t *m; ready < 2 && rc == 0; ready++) /* until both workers are ready */
    if ((rc = ax_recv_type(self, MSG_READY, ax_deadline(5 * AX_NSEC_PER_SEC), &m)) == 0 &&
        m->size == sizeof port) /* the sensor's, with its port (payloads are aligned) */
      port = *(const int *)m->data, sensor_ref = m->from;
  ax_stream_t *end[2]; /* the far ends of A and B */
  ax_dgram_t *u;
  for (int i = 0; i < 2 && rc == 0; i++) /* a master is one fd, the stream's even on failure */
    rc = ax_pipe_open(self, app->master[i], app->master[i], NULL, &end[i]), app->master[i] = -1;
  char buf[256];
  snprintf(buf, sizeof buf, "127.0.0.1:%d", port);
  if (rc < 0 || (rc = ax_udp_bind(self, "127.0.0.1:0", NULL, &u)) < 0 ||
      (rc = ax_dgram_sendto(u, buf, "temp=21.5", 9)) < 0)
    return report(self, rc, "simulator");
  for (size_t i = 0; i < sizeof script / sizeof *script; i++) {
    printf("sim> %s\n", script[i]);
    int len = snprintf(buf, sizeof buf, "%s\n", script[i]);
    if ((rc = ax_stream_write_all(end[0], buf, (size_t)len, ax_deadline(WRITE_NS))) < 0)
      return report(self, rc, "simulator: writing port A");
    ssize_t n = ax_stream_read_until(end[1], buf, sizeof buf, '\n', ax_deadline(WRITE_NS));
    if (n <= 0)
      return report(self, n < 0 ? (int)n : -EPIPE, "simulator: reading port B");
    printf("sim< %.*s", (int)n, buf); /* n counts the '\n' */
    (void)ax_sleep(self, QUIET_NS / 2); /* the sensor times out; -ECANCELED shows next call */
  }
  printf("sim: done, hanging up\n"); /* returning closes both ends: port A hangs up */
  return report(self, ax_stop(sensor_ref, 0), "ax_stop"); /* the sensor's wait: -ECANCELED */
}

int main(int argc, char **argv) {
  bool sim = argc == 1; /* no ports given: simulate them */
  char names[2][64];    /* the simulated ports' paths */
  app_t app = {.port = {sim ? names[0] : argv[1], sim ? names[1] : argv[2]},
               .udp = sim ? "127.0.0.1:0" : argc == 4 ? argv[3] : "127.0.0.1:7001",
               .master = {-1, -1}}; /* 127.0.0.1:0: any free port; the sensor says which */
  if (argc == 2 || argc > 4)
    return fprintf(stderr, "usage: %s [PORT_A PORT_B [UDP_ADDR]]\n", argv[0]), 2;
  for (int i = 0; sim && i < 2; i++) { /* a pty pair: the master is the far end */
    int m = app.master[i] = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, names[i], sizeof names[i]) != 0)
      return perror("fiber-serial-bridge: pty"), 1; /* exiting closes what is open */
    printf("simulating port %c on %s\n", 'A' + i, names[i]);
  }
  ax_rt_t *rt; /* one core: one thread and one loop run every fiber, as the seed's eventLoop() */
  int rc = ax_rt_new(&(ax_rt_opts_t){.cores = 1}, &rt);
  if (rc < 0)
    return report(NULL, rc, "ax_rt_new"), 1;
  if (sim) /* spawned first: the workers need its reference */
    rc = ax_spawn_fiber(rt, simulator, &app, NULL, &app.sim);
  if (rc == 0 && (rc = ax_spawn_fiber(rt, bridge, &app, NULL, NULL)) == 0 &&
      (rc = ax_spawn_fiber(rt, sensor, &app, NULL, NULL)) == 0)
    rc = ax_rt_run(rt); /* until every fiber has returned, or Ctrl-C */
  report(NULL, rc, "runtime");
  report(NULL, ax_rt_free(rt), "ax_rt_free");
  for (int i = 0; i < 2; i++)
    if (app.master[i] >= 0)
      close(app.master[i]); /* the simulator never ran to take it */
  printf("bye\n");
  return atomic_load(&failed) ? 1 : 0;
}
