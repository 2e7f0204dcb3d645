/* serial-device: an actor owns a serial line, reads commands as lines and answers each one.
 * Shows: ax_serial_open (rate, raw, exclusive) with line framing (AX_FRAME_DELIM, max_frame);
 * answers with ax_stream_write; AX_MSG_FRAME_ERROR for an over-long line; hang-up as
 * AX_MSG_CLOSED{-EIO}.  Commands: PING, GET TEMP, SET LED ON|OFF; anything else: "ERR ...";
 * lines end in '\n' (a '\r' before it is ignored).  Without a path, a pty pair stands in: the
 * device actor opens its slave side like a real port, then spawns a "host" actor that owns the
 * master side (ax_pipe_open), sends a script and hangs up; both stop and the runtime ends.
 * Run: build/examples/serial-device [DEVICE [BAUD]]   (e.g. /dev/ttyUSB0 9600; Ctrl-C stops it) */
#include <axon.h>
#include <pty.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MSG_START = AX_MSG_USER };
static atomic_int failed; /* any error anywhere: exit status 1 */

static int check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "serial-device: %s: %s\n", what, ax_strerror(rc));
    atomic_store(&failed, 1);
  }
  return rc;
}

static int say(ax_stream_t *s, const char *text) {
  char line[256];
  int n = snprintf(line, sizeof line, "%s\n", text);
  return check(ax_stream_write(s, line, (size_t)n), "ax_stream_write") < 0 ? AX_STOP : 0;
}

/* The simulated host's script, one line per answer; the last is longer than the device takes. */
static char big[201]; /* 200 x, filled in by main */
static const char *const script[] = {"PING", "GET TEMP", "SET LED ON", "REBOOT NOW", big, NULL};

typedef struct host {
  int master; /* the pty master, until ax_pipe_open takes it */
  unsigned step;
} host_t;

/* The simulated host: sends the script, prints the answers, then hangs up. */
static int host(ax_actor_t *self, const ax_msg_t *m) {
  host_t *h = ax_state(self);
  ax_stream_t *s;
  if (m->type == MSG_START) {
    ax_stream_opts_t o = {.frame = AX_FRAME_DELIM};
    int rc = ax_pipe_open(self, h->master, h->master, &o, &s); /* a pty master is one fd */
    h->master = -1; /* the stream's now, even when the call failed */
    if (check(rc, "ax_pipe_open") < 0)
      return AX_STOP;
  } else if (m->type == AX_MSG_DATA) {
    const ax_data_t *data = m->data;
    s = data->stream;
    printf("host< %.*s\n", (int)data->len, (const char *)data->bytes);
  } else if (m->type == AX_MSG_CLOSED) { /* the device side closed first */
    check(((const ax_stream_ev_t *)m->data)->err, "host line");
    return AX_STOP;
  } else {
    return 0;
  }
  const char *line = script[h->step++];
  if (line == NULL) {
    printf("host: done, hanging up\n");
    ax_stream_close(s); /* closes the master: the device sees the hang-up */
    return AX_STOP;
  }
  printf("host> %s\n", line != big ? line : "(a line of 200 x)");
  return say(s, line);
}

typedef struct device {
  const char *path;
  unsigned baud;
  bool led;
  host_t *sim; /* the simulated host's state, or NULL for a real device */
} device_t;

static int device(ax_actor_t *self, const ax_msg_t *m) {
  device_t *d = ax_state(self);
  const ax_stream_ev_t *ev = m->data;
  if (m->type == MSG_START) {
    ax_serial_opts_t o = {.baud = d->baud, .stream = {.frame = AX_FRAME_DELIM, .max_frame = 128}};
    ax_stream_t *s;
    ax_ref_t h;
    if (check(ax_serial_open(self, d->path, &o, &s), d->path) < 0)
      return AX_STOP;
    printf("device: %s open at %u 8N1, raw, exclusive\n", d->path, d->baud);
    if (d->sim != NULL && check(ax_spawn(ax_actor_rt(self), host, d->sim, NULL, &h), "spawn") >= 0)
      check(ax_send(h, MSG_START, NULL, 0), "ax_send");
    return atomic_load(&failed) ? AX_STOP : 0;
  }
  if (m->type == AX_MSG_DATA) { /* one line, without its '\n' */
    const ax_data_t *data = m->data;
    char cmd[129], err[160]; /* max_frame is 128 */
    size_t n = data->len - (data->len > 0 && data->bytes[data->len - 1] == '\r');
    snprintf(cmd, sizeof cmd, "%.*s", (int)n, (const char *)data->bytes);
    if (strcmp(cmd, "PING") == 0)
      return say(data->stream, "PONG");
    if (strcmp(cmd, "GET TEMP") == 0)
      return say(data->stream, "TEMP 21.5"); /* a pretend sensor */
    if (strcmp(cmd, "SET LED ON") == 0 || strcmp(cmd, "SET LED OFF") == 0) {
      d->led = cmd[9] == 'N'; /* drive the LED here */
      return say(data->stream, d->led ? "LED ON" : "LED OFF");
    }
    snprintf(err, sizeof err, "ERR unknown command: %s", cmd);
    return say(data->stream, err);
  }
  if (m->type == AX_MSG_FRAME_ERROR) /* the line was dropped; reading goes on after its '\n' */
    return say(ev->stream, "ERR line too long");
  if (m->type == AX_MSG_CLOSED) { /* hang-up or unplug: -EIO */
    printf("device: line hung up (%s)\n", ax_strerror(ev->err));
    return AX_STOP;
  }
  return 0;
}

int main(int argc, char **argv) {
  device_t d = {.baud = argc == 3 ? (unsigned)strtoul(argv[2], NULL, 10) : 115200};
  host_t h = {.master = -1};
  int slave;
  char name[64];
  if (argc > 3 || d.baud == 0)
    return fprintf(stderr, "usage: %s [DEVICE [BAUD]]\n", argv[0]), 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  memset(big, 'x', sizeof big - 1);
  if (argc >= 2) {
    d.path = argv[1];
  } else if (openpty(&h.master, &slave, name, NULL, NULL) == 0) {
    close(slave); /* the device opens the slave by name, like any port */
    d.path = name;
    d.sim = &h;
    printf("no device given: simulating one on a pty pair (device side %s)\n", name);
  } else {
    return perror("serial-device: openpty"), 1;
  }
  ax_rt_t *rt;
  ax_ref_t dev;
  if (check(ax_rt_new(NULL, &rt), "ax_rt_new") < 0)
    return 1;
  if (check(ax_spawn(rt, device, &d, NULL, &dev), "ax_spawn") >= 0 &&
      check(ax_send(dev, MSG_START, NULL, 0), "ax_send") >= 0)
    check(ax_rt_run(rt), "ax_rt_run"); /* until every actor has stopped, or SIGINT/SIGTERM */
  check(ax_rt_free(rt), "ax_rt_free");
  if (h.master >= 0)
    close(h.master); /* the host never took it */
  printf("bye\n");
  return atomic_load(&failed) ? 1 : 0;
}
