/*
 * device-gateway: axon's demo, a gateway between serial devices and TCP clients.
 *
 * Three simulated devices sit on pty pairs, played by an ordinary thread (a reading every
 * 10 ms, answers to commands).  The gateway opens each pty as a serial port and reads it in a
 * fiber of its own: a loop that looks blocking but parks only that fiber.  Readings go to a hub
 * actor that forwards them to subscribed TCP clients; the TCP service runs on every core
 * (ax_tcp_serve), a small handler actor per connection.  A client that does not read is held
 * back by its stream's write window: its lines are dropped and counted, its memory bounded.  A
 * slow statistic runs on an ordinary thread bridged with a port.  An unplugged device shows up
 * as its read's error.  Ctrl-C stops it all; main prints per-core statistics.  docs/demo.md
 * walks through it.  Clients send lines: sub | unsub | cmd DEV TEXT | avg DEV | quit.
 *   build/examples/device-gateway 7000     # then: nc 127.0.0.1 7000, and type sub
 *   build/examples/device-gateway --demo   # drives its own clients for ~3 s, then Ctrl-C
 */
#include <axon.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NDEV 3
#define SAMPLE_NS (10 * AX_NSEC_PER_MSEC) /* each device sends a reading this often */
#define HISTORY 256                       /* readings per device the hub keeps, for avg */
#define STATS_MAX 64 /* jobs that may wait for the statistics thread (its port's bound) */
#define HIGH_WATER 1024                   /* bytes queued for a client before lines drop */
#define MAX_SUBS 32
#define PENDING 8                         /* commands a device has not answered yet */
#define WAIT_NS (50 * AX_NSEC_PER_MSEC)   /* a device fiber looks for commands this often */

enum { MSG_READING = AX_MSG_USER, MSG_UNPLUGGED, MSG_SUB, MSG_UNSUB, MSG_CMD, MSG_AVG,
       MSG_JOB, MSG_LINE, MSG_TICK };

typedef struct device {   /* a simulated device, and what the gateway knows of it */
  const char *name, *key; /* "temp0", and what its readings say: "temp=21.43" */
  double base;
  char path[64];  /* the pty's slave side: the gateway's serial port */
  int master;     /* the pty's master side: the device's end, the simulator's */
  bool streaming; /* the simulator's: the gateway said "start" */
} device_t;

static device_t devices[NDEV] = {{.name = "temp0", .key = "temp", .base = 21.4},
                                 {.name = "hum0", .key = "hum", .base = 40.0},
                                 {.name = "volt0", .key = "volt", .base = 229.5}};

static struct {        /* set by main before the runtime starts, then only read... */
  ax_rt_t *rt;
  ax_ref_t hub, stats; /* the hub actor, and the statistics thread's port */
  atomic_int unplug;   /* ...but these: the device the simulator is to unplug (-1: none), */
  atomic_bool quit;    /* the simulator's stop, */
  atomic_uint clients; /* the clients numbered so far, */
  atomic_uint gone;    /* the subscribers whose client went (their DOWN came), */
  atomic_int failed;   /* and any error anywhere: exit status 1 */
} app = {.unplug = -1};

typedef struct reading { int dev; double value; char text[48]; } reading_t; /* device -> hub */
typedef struct job { ax_ref_t reply_to; int dev; unsigned n; double v[HISTORY]; } job_t;

/* Reports an error and stops the gateway; returns rc.  -ECANCELED means "stopping": no error. */
static int report(int rc, const char *what) {
  if (rc < 0 && rc != -ECANCELED) {
    fprintf(stderr, "device-gateway: %s: %s\n", what, ax_strerror(rc));
    if (!atomic_exchange(&app.failed, 1) && app.rt != NULL)
      ax_rt_stop(app.rt); /* any thread */
  }
  return rc;
}

/* Sends a session a line for its client.  A session that has gone (-ESRCH) is no error. */
static void tell(ax_ref_t session, const char *text, size_t len) {
  int rc = ax_send(session, MSG_LINE, text, len); /* the text is copied */
  report(rc == -ESRCH ? 0 : rc, "ax_send(line)");
}

/* ---- 1. The hardware: an ordinary thread plays every device on its pty master. ---- */

static void *simulator(void *arg) {
  char buf[256], line[96], *save;
  (void)arg;
  for (unsigned tick = 0; !atomic_load(&app.quit); tick++) {
    for (int i = 0; i < NDEV; i++) {
      device_t *d = &devices[i];
      if (d->master >= 0 && atomic_load(&app.unplug) == i) {
        printf("simulator: unplugging %s\n", d->name);
        close(d->master); /* the gateway's side of the pty hangs up */
        d->master = -1;
      }
      ssize_t n = d->master < 0 ? 0 : read(d->master, buf, sizeof buf - 1); /* non-blocking */
      if (n < 0 && errno == EIO) /* no gateway on the other side (any more) */
        d->streaming = false;
      buf[n > 0 ? n : 0] = '\0';
      for (char *cmd = strtok_r(buf, "\n", &save); cmd; cmd = strtok_r(NULL, "\n", &save)) {
        if (strcmp(cmd, "start") == 0) { /* the gateway opened its port: readings may flow */
          d->streaming = true;
          continue;
        }
        bool known = strcmp(cmd, "led on") == 0 || strcmp(cmd, "led off") == 0;
        n = snprintf(line, sizeof line, "%s%.60s\n", known ? "ok " : "err unknown command: ", cmd);
        if (write(d->master, line, (size_t)n) < 0) { /* the gateway is gone: nobody to tell */
        }
      }
      n = snprintf(line, sizeof line, "%s=%.2f\n", d->key, d->base + 0.01 * (tick % 50));
      if (d->streaming && write(d->master, line, (size_t)n) < 0) { /* full: that sample lost */
      }
    }
    nanosleep(&(struct timespec){.tv_nsec = SAMPLE_NS}, NULL);
  }
  return NULL;
}

/* ---- 2. A fiber per device: its serial port read line by line, commands written to it. ---- */

static int device_fiber(ax_actor_t *self, void *arg) {
  device_t *d = arg;
  reading_t r = {.dev = (int)(d - devices)};
  ax_ref_t waiting[PENDING]; /* the sessions waiting for the device's answers, oldest first */
  unsigned first = 0, count = 0, readings = 0;
  char line[128], out[192];
  ssize_t n;
  ax_stream_t *s;
  int rc = ax_serial_open(self, d->path, NULL, &s); /* NULL: 115200 8N1, raw, exclusive */
  if (rc < 0 || (rc = ax_register(app.rt, d->name, ax_self(self))) < 0 ||
      (rc = ax_stream_write(s, "start\n", 6)) < 0)
    return report(rc, d->name); /* the port, if open, is closed as the fiber returns */
  printf("device %s: serial port %s open, fiber on core %u\n", d->name, d->path, ax_core(self));
  for (;;) {
    /* Waits for a line, at most WAIT_NS; then looks for commands from clients. */
    n = ax_stream_read_until(s, line, sizeof line - 1, '\n', ax_deadline(WAIT_NS));
    if (n == 0 || n == -EIO) /* end of file, or hang-up: the device was unplugged */
      break;
    if (n < 0 && n != -ETIMEDOUT && n != -EMSGSIZE) /* -EMSGSIZE: a garbled line, skipped */
      return report((int)n, d->name) == -ECANCELED ? 0 : (int)n;
    if (n > 0)
      line[n - (line[n - 1] == '\n')] = '\0';
    if (n > 0 && (strncmp(line, "ok ", 3) == 0 || strncmp(line, "err ", 4) == 0)) {
      if (count > 0) { /* an answer: to the oldest command */
        tell(waiting[first], out, (size_t)snprintf(out, sizeof out, "%s: %s\n", d->name, line));
        first = (first + 1) % PENDING, count--;
      }
    } else if (n > 0) { /* a reading: "temp=21.43" */
      if (readings++ == 0)
        printf("device %s says %s (and again every 10 ms)\n", d->name, line);
      r.value = strchr(line, '=') ? strtod(strchr(line, '=') + 1, NULL) : 0;
      snprintf(r.text, sizeof r.text, "%.47s", line);
      if ((rc = report(ax_send(app.hub, MSG_READING, &r, sizeof r), "ax_send(reading)")) < 0)
        return rc;
    }
    const ax_msg_t *m; /* commands that came meanwhile, taken without waiting (deadline 0) */
    while ((rc = ax_recv_type(self, MSG_CMD, 0, &m)) == 0) {
      int k = snprintf(out, sizeof out, "%.*s\n", (int)m->size, (const char *)m->data);
      if (count < PENDING && ax_stream_write(s, out, (size_t)k) == 0)
        waiting[(first + count++) % PENDING] = m->from;
      else
        tell(m->from, out, (size_t)snprintf(out, sizeof out, "%s: err busy\n", d->name));
    }
    if (rc != -ETIMEDOUT) /* -ECANCELED: the gateway is stopping */
      return report(rc, "ax_recv_type") == -ECANCELED ? 0 : rc;
  }
  printf("device %s unplugged: its read says %s\n", d->name, n ? ax_err_name((int)n) : "EOF");
  for (; count > 0; count--, first = (first + 1) % PENDING) /* nobody will answer these */
    tell(waiting[first], out, (size_t)snprintf(out, sizeof out, "%s: err unplugged\n", d->name));
  report(ax_send(app.hub, MSG_UNPLUGGED, &r.dev, sizeof r.dev), "ax_send(unplugged)");
  return 0; /* returning closes the port and removes the device's name */
}

/* ---- 3. The hub: one actor owns the subscribers and the readings' history. ---- */

typedef struct hub {
  struct { ax_ref_t ref; unsigned client; uint64_t monitor; } subs[MAX_SUBS];
  unsigned nsubs;
  double history[NDEV][HISTORY];
  unsigned seen[NDEV];  /* readings so far, per device */
  uint64_t per_second; /* readings since the last tick */
} hub_t;

static void hub_init(ax_actor_t *self) { /* a tick a second: the hub says how it goes */
  report(ax_every(self, AX_NSEC_PER_SEC, MSG_TICK, NULL, 0, NULL), "ax_every");
}

/* Removes a subscriber; with self (on "unsub"), its monitor too: no DOWN will come for it. */
static void drop(ax_actor_t *self, hub_t *h, ax_ref_t ref, const char *why) {
  for (unsigned i = 0; i < h->nsubs; i++)
    if (h->subs[i].ref == ref) {
      int rc = self != NULL ? ax_demonitor(self, h->subs[i].monitor) : 0;
      report(rc == -ENOENT ? 0 : rc, "ax_demonitor"); /* -ENOENT: the DOWN came already */
      printf("hub: client %u %s, %u subscriber(s) left\n", h->subs[i].client, why, h->nsubs - 1);
      h->subs[i] = h->subs[--h->nsubs];
      return;
    }
}

static int hub(ax_actor_t *self, const ax_msg_t *m) {
  hub_t *h = ax_state(self);
  char text[128];
  int dev, len = 0;
  reading_t r;
  switch (m->type) {
  case MSG_READING: /* from a device fiber: keep it, and pass it on */
    memcpy(&r, m->data, sizeof r);
    h->history[r.dev][h->seen[r.dev]++ % HISTORY] = r.value;
    h->per_second++;
    len = snprintf(text, sizeof text, "%s %s\n", devices[r.dev].name, r.text);
    break;
  case MSG_UNPLUGGED:
    memcpy(&dev, m->data, sizeof dev);
    len = snprintf(text, sizeof text, "device %s unplugged\n", devices[dev].name);
    break;
  case MSG_SUB: /* from a session; a monitor says when it stops, whatever the reason */
    if (h->nsubs == MAX_SUBS)
      return tell(m->from, "err too many subscribers\n", 25), 0;
    memcpy(&h->subs[h->nsubs].client, m->data, sizeof(unsigned));
    h->subs[h->nsubs].ref = m->from;
    if (report(ax_monitor(self, m->from, &h->subs[h->nsubs].monitor), "ax_monitor") < 0)
      return 0;
    h->nsubs++;
    printf("hub: client %u subscribed, %u subscriber(s)\n", h->subs[h->nsubs - 1].client,
           h->nsubs);
    return 0;
  case MSG_UNSUB:
    return drop(self, h, m->from, "unsubscribed"), 0;
  case AX_MSG_DOWN: /* a subscriber's session stopped: its client has gone */
    drop(NULL, h, ((const ax_down_t *)m->data)->ref, "has gone (its monitor said so)");
    atomic_fetch_add(&app.gone, 1); /* for the demo, which waits for it */
    return 0;
  case MSG_AVG: { /* too slow for a core: the history goes to the statistics thread */
    memcpy(&dev, m->data, sizeof dev);
    job_t job = {m->from, dev, h->seen[dev] < HISTORY ? h->seen[dev] : HISTORY, {0}};
    memcpy(job.v, h->history[dev], sizeof job.v);
    int rc = ax_send(app.stats, MSG_JOB, &job, sizeof job);
    if (rc == -EAGAIN) /* STATS_MAX jobs wait already: the client hears it, nothing piles up */
      tell(m->from, "avg: busy, try again\n", 21);
    else
      report(rc, "ax_send(job)");
    return 0;
  }
  case MSG_TICK:
    printf("hub: %" PRIu64 " readings in the last second, for %u subscriber(s)\n",
           h->per_second, h->nsubs);
    h->per_second = 0;
    return 0;
  }
  for (unsigned i = 0; i < h->nsubs; i++) /* a reading or a notice, for every subscriber */
    tell(h->subs[i].ref, text, (size_t)len); /* -ESRCH: gone, its DOWN is on its way */
  return 0;
}

/* ---- 4. The TCP service: a handler actor per connection, on every core. ---- */

typedef struct session { /* per connection: zeroed by ax_tcp_serve, freed after session_end */
  unsigned id;
  ax_stream_t *stream;
  bool subscribed, behind; /* behind: a line was refused, the client does not read */
  uint64_t sent, dropped;
  size_t peak; /* the most bytes ever queued for the client */
} session_t;

static void session_init(ax_actor_t *self, void *shared) {
  (void)shared;
  ((session_t *)ax_state(self))->id = atomic_fetch_add(&app.clients, 1) + 1;
}

static void send_line(session_t *c, const char *text, size_t len) {
  int rc = ax_stream_write(c->stream, text, len); /* never waits: the kernel's excess is queued */
  if (rc == -ENOBUFS && !c->behind) /* HIGH_WATER bytes wait already */
    printf("client %u does not read: %zu bytes wait for it, its lines are dropped now\n",
           c->id, ax_stream_queued(c->stream));
  c->behind |= rc == -ENOBUFS;
  c->dropped += rc == -ENOBUFS;
  c->sent += rc == 0; /* another error ends the stream: AX_MSG_CLOSED follows */
  c->peak = ax_stream_queued(c->stream) > c->peak ? ax_stream_queued(c->stream) : c->peak;
}

static int command(ax_actor_t *self, session_t *c, const ax_data_t *d) {
  char line[160], dev[16], text[96], out[160];
  int rc = 0, i = 0, k = 0;
  snprintf(line, sizeof line, "%.*s", (int)d->len, (const char *)d->bytes);
  line[strcspn(line, "\r")] = '\0'; /* nc and terminals may end lines with \r\n */
  if (strcmp(line, "sub") == 0 || strcmp(line, "unsub") == 0) {
    if (c->subscribed != (line[0] == 's')) /* a change: tell the hub */
      rc = ax_send(app.hub, (c->subscribed = line[0] == 's') ? MSG_SUB : MSG_UNSUB, &c->id,
                   sizeof c->id);
    k = snprintf(out, sizeof out, "ok %s\n", line);
  } else if (sscanf(line, "cmd %15s %95[^\n]", dev, text) == 2) {
    printf("client %u asks %s: %s\n", c->id, dev, text);
    ax_ref_t to = ax_whereis(ax_actor_rt(self), dev); /* the name the device's fiber took */
    if (to == AX_REF_NONE || (rc = ax_send(to, MSG_CMD, text, strlen(text))) == -ESRCH)
      k = snprintf(out, sizeof out, "err no device %s\n", dev), rc = 0;
  } else if (sscanf(line, "avg %15s", dev) == 1) {
    while (i < NDEV && strcmp(devices[i].name, dev) != 0)
      i++;
    if (i < NDEV)
      rc = ax_send(app.hub, MSG_AVG, &i, sizeof i);
    else
      k = snprintf(out, sizeof out, "err no device %s\n", dev);
  } else if (strcmp(line, "quit") == 0) {
    return AX_STOP; /* the stream is closed as the session stops */
  } else {
    k = snprintf(out, sizeof out, "err commands: sub, unsub, cmd DEV TEXT, avg DEV, quit\n");
  }
  if (k > 0)
    send_line(c, out, (size_t)k);
  return report(rc, "ax_send") < 0 ? rc : 0;
}

static int session(ax_actor_t *self, const ax_msg_t *m) {
  session_t *c = ax_state(self);
  char hello[128];
  switch (m->type) {
  case AX_MSG_GIVEN: /* the first message: the connection is ours */
    c->stream = ((const ax_stream_ev_t *)m->data)->stream;
    printf("client %u connected, its session on core %u\n", c->id, ax_core(self));
    send_line(c, hello, (size_t)snprintf(hello, sizeof hello, "hello, client %u: devices temp0"
              " hum0 volt0; sub, unsub, cmd DEV TEXT, avg DEV, quit\n", c->id));
    return 0;
  case AX_MSG_DATA: /* a line from the client, without its '\n' */
    return command(self, c, m->data);
  case MSG_LINE: /* for the client: a reading, an answer, a notice */
    send_line(c, m->data, m->size);
    return 0;
  case AX_MSG_WRITABLE: /* the queue drained below half of HIGH_WATER */
    printf("client %u reads again, after %" PRIu64 " dropped lines\n", c->id, c->dropped);
    c->behind = false;
    return 0;
  case AX_MSG_CLOSED: /* the client hung up */
    return AX_STOP;
  }
  return 0;
}

static void session_end(ax_actor_t *self, int reason) {
  session_t *c = ax_state(self);
  printf("client %u %s: %" PRIu64 " lines sent, %" PRIu64 " dropped, at most %zu bytes queued\n",
         c->id, reason == AX_REASON_SHUTDOWN ? "stopped at shutdown" : "left", c->sent,
         c->dropped, c->peak);
}

/* ---- 5. Blocking work on an ordinary thread, bridged with a port. ---- */

/* The statistic: deliberately slow, as a real one over much data would be.  On a core it
 * would hold up every actor there for 300 ms; on this thread it holds up nobody. */
static double slow_average(const job_t *job, double *lo, double *hi) {
  double sum = 0;
  nanosleep(&(struct timespec){.tv_nsec = 300 * AX_NSEC_PER_MSEC}, NULL);
  *lo = *hi = job->v[0];
  for (unsigned i = 0; i < job->n; i++) {
    sum += job->v[i];
    *lo = job->v[i] < *lo ? job->v[i] : *lo;
    *hi = job->v[i] > *hi ? job->v[i] : *hi;
  }
  return job->n > 0 ? sum / job->n : 0;
}

static void *stats_thread(void *arg) {
  ax_port_t *port = arg;
  ax_msg_t m;
  job_t job;
  char out[128];
  for (;;) {
    int rc = ax_port_recv(port, AX_FOREVER, &m); /* blocks this thread, no core */
    if (rc == -EINTR)
      continue;
    if (rc == -ESHUTDOWN) /* the runtime stopped and every job queued is done */
      return NULL;
    if (rc < 0)
      return report(rc, "ax_port_recv"), NULL;
    if (m.type != MSG_JOB || m.size != sizeof job)
      continue;
    memcpy(&job, m.data, sizeof job); /* m.data is valid until the next ax_port_recv */
    double lo, hi, avg = slow_average(&job, &lo, &hi);
    int k = snprintf(out, sizeof out, "avg %s: %.3f over %u readings (min %.2f, max %.2f)\n",
                     devices[job.dev].name, avg, job.n, lo, hi);
    printf("stats thread: %s", out);
    tell(job.reply_to, out, (size_t)k); /* ax_send works from any thread */
  }
}

/* ---- 6. --demo: three clients on plain sockets, driven by an ordinary thread. ---- */

typedef struct client {
  char name;
  int fd;
  unsigned readings; /* lines with a '=' received */
  size_t len;        /* bytes of a line received in part, in buf */
  char buf[4096];
} client_t;

/* Connects (rcvbuf > 0: with that receive buffer) and prints the greeting; returns 0 or -1. */
static int dial(client_t *c, int port, int rcvbuf) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  size_t n = 0;
  if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
      (rcvbuf > 0 && setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) ||
      connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    return report(-errno, "demo: connect") < 0 ? -1 : 0;
  while (n < sizeof c->buf - 1 && read(c->fd, c->buf + n, 1) == 1 && c->buf[n] != '\n')
    n++;
  printf("demo: %c got \"%.*s\"\n", c->name, (int)n, c->buf);
  return 0;
}

static void say(client_t *c, const char *line) {
  if (c->fd < 0) /* closed: the gateway has stopped */
    return;
  printf("demo: %c says \"%s\"\n", c->name, line);
  if (write(c->fd, line, strlen(line)) < 0 || write(c->fd, "\n", 1) < 0)
    report(-errno, "demo: write");
}

/* For ms milliseconds, reads what the n (1 or 2) clients at c are sent, and prints it; of the
 * readings (the lines with a '='), only the first three.  Returns false if the gateway was
 * stopped otherwise meanwhile (Ctrl-C, an error). */
static bool listen_to(client_t *c, int n, int ms) {
  struct pollfd p[2];
  int64_t now, end = ax_now() + ms * AX_NSEC_PER_MSEC;
  while ((now = ax_now()) < end && !atomic_load(&app.quit) && !atomic_load(&app.failed)) {
    int wait_ms = (int)((end - now) / AX_NSEC_PER_MSEC) + 1;
    for (int i = 0; i < n; i++)
      p[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
    if (poll(p, (nfds_t)n, wait_ms < 100 ? wait_ms : 100) < 0) /* 100: look at quit often */
      return report(-errno, "demo: poll"), false;
    for (int i = 0; i < n; i++) {
      ssize_t k = p[i].revents ? read(c[i].fd, c[i].buf + c[i].len, sizeof c[i].buf - c[i].len) : 0;
      if (p[i].revents && k <= 0) /* the gateway closed it: stop watching */
        close(c[i].fd), c[i].fd = -1;
      c[i].len += k > 0 ? (size_t)k : 0;
      char *s = c[i].buf, *nl;
      for (; (nl = memchr(s, '\n', c[i].len - (size_t)(s - c[i].buf))) != NULL; s = nl + 1) {
        *nl = '\0';
        if (strchr(s, '=') == NULL || c[i].readings++ < 3)
          printf("demo: %c got \"%s\"\n", c[i].name, s);
      }
      c[i].len -= (size_t)(s - c[i].buf);
      memmove(c[i].buf, s, c[i].len);
    }
  }
  return !atomic_load(&app.quit) && !atomic_load(&app.failed);
}

/* The demo's script.  Returns early when the gateway stops otherwise. */
static void script(client_t *a, client_t *b, client_t *c) {
  printf("demo: A reads all it is sent; B never reads, with the smallest socket buffer it "
         "can ask for; C sends commands\n");
  say(a, "sub");
  say(b, "sub");
  if (!listen_to(a, 2, 500))
    return;
  say(c, "cmd temp0 led on");
  say(c, "avg temp0");
  if (!listen_to(a, 2, 1000))
    return;
  printf("demo: unplugging hum0\n");
  atomic_store(&app.unplug, 1);
  if (!listen_to(a, 2, 400))
    return;
  say(c, "cmd hum0 led on");
  if (!listen_to(a, 2, 300))
    return;
  printf("demo: A got %u readings, and hangs up\n", a->readings);
  close(a->fd), a->fd = -1;
  for (int i = 0; i < 50 && atomic_load(&app.gone) == 0; i++) /* the hub hears of it: 5 s at most */
    if (!listen_to(c, 1, 100))
      return;
  printf("demo: done; Ctrl-C (SIGINT) to the gateway\n");
  kill(getpid(), SIGINT); /* to the process, as a real Ctrl-C: the runtime reads it */
}

static void *demo(void *arg) {
  client_t cl[3] = {{.name = 'A', .fd = -1}, {.name = 'C', .fd = -1}, {.name = 'B', .fd = -1}};
  client_t *a = &cl[0], *c = &cl[1], *b = &cl[2]; /* A and C side by side: listen_to(a, 2) */
  int port = *(const int *)arg;
  if (dial(a, port, 0) == 0 && dial(b, port, 1) == 0 && dial(c, port, 0) == 0)
    script(a, b, c);
  for (int i = 0; i < 3; i++)
    if (cl[i].fd >= 0)
      close(cl[i].fd);
  return NULL;
}

/* ---- 7. main: ptys, the runtime and its actors, the server; start, threads, join. ---- */

int main(int argc, char **argv) {
  bool demo_mode = argc == 2 && strcmp(argv[1], "--demo") == 0;
  char *end = "", addr[32];
  long port = demo_mode ? 0 : argc == 2 ? strtol(argv[1], &end, 10) : -1;
  if (*end != '\0' || port < 0 || port > 65535)
    return fprintf(stderr, "usage: %s PORT | --demo   (PORT 0: any free port)\n", argv[0]), 2;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 0; i < NDEV; i++) { /* a pty pair per device: the slave is the "serial port" */
    device_t *d = &devices[i];
    if ((d->master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)) < 0 ||
        grantpt(d->master) < 0 || unlockpt(d->master) < 0 ||
        ptsname_r(d->master, d->path, sizeof d->path) != 0)
      return perror("device-gateway: cannot make a pty"), 1; /* exiting closes the others */
    printf("simulating device %s on %s\n", d->name, d->path);
  }
  static hub_t hub_state; /* 6 KiB of history: not on main's stack */
  /* Each session's stream: lines in; at most HIGH_WATER bytes queued, over the kernel's least
   * send buffer (sndbuf 1), so that the demo's client B, which never reads, soon reaches it. */
  ax_serve_opts_t opts = {
      .stream = {.frame = AX_FRAME_DELIM, .max_frame = 256, .flags = AX_STREAM_NODELAY,
                 .high_water = HIGH_WATER, .sndbuf = 1},
      .session_size = sizeof(session_t), .session_init = session_init, .terminate = session_end};
  ax_server_t *srv = NULL;
  ax_port_t *stats = NULL;
  pthread_t threads[3];
  int nthreads = 0, srv_port = 0, rc = report(ax_rt_new(NULL, &app.rt), "ax_rt_new");
  snprintf(addr, sizeof addr, "127.0.0.1:%ld", port);
  if (rc == 0)
    rc = report(ax_spawn(app.rt, hub, &hub_state, &(ax_spawn_opts_t){.init = hub_init},
                         &app.hub), "ax_spawn(hub)");
  ax_port_opts_t stats_opts = {.max = STATS_MAX}; /* a slow thread refuses jobs, never piles them */
  if (rc == 0 && (rc = report(ax_port_new_opts(app.rt, &stats_opts, &stats), "ax_port_new")) == 0)
    app.stats = ax_port_ref(stats);
  for (int i = 0; i < NDEV && rc == 0; i++) /* each fiber opens its port as it starts */
    rc = report(ax_spawn_fiber(app.rt, device_fiber, &devices[i], NULL, NULL), "ax_spawn_fiber");
  if (rc == 0 && (rc = report(ax_tcp_serve(app.rt, addr, session, &opts, &srv), addr)) == 0) {
    srv_port = ax_server_port(srv); /* the kernel's choice for port 0 */
    printf("gateway listening on 127.0.0.1:%d with %u cores\n", srv_port, ax_rt_cores(app.rt));
    if (!demo_mode)
      printf("try: nc 127.0.0.1 %d, then type sub; Ctrl-C stops the gateway\n", srv_port);
  }
  if (rc == 0 && (rc = report(ax_rt_start(app.rt), "ax_rt_start")) == 0) {
    /* Made after ax_rt_start, the threads inherit its signal mask: Ctrl-C goes to the runtime. */
    void *(*fn[3])(void *) = {simulator, stats_thread, demo}, *args[3] = {NULL, stats, &srv_port};
    for (int i = 0; i < (demo_mode ? 3 : 2); i++)
      if (report(-pthread_create(&threads[nthreads], NULL, fn[i], args[i]), "pthread_create") == 0)
        nthreads++;
    report(ax_rt_join(app.rt), "ax_rt_join"); /* until Ctrl-C (SIGINT), SIGTERM or an error */
    atomic_store(&app.quit, true); /* the simulator's stop (the statistics thread's is the runtime's) */
    for (int i = 0; i < nthreads; i++)
      report(-pthread_join(threads[i], NULL), "pthread_join");
    for (unsigned i = 0; i < ax_rt_cores(app.rt); i++) {
      ax_core_stats_t st; /* exact now that the runtime has stopped */
      if (report(ax_rt_stats(app.rt, i, &st), "ax_rt_stats") == 0)
        printf("core %u: %" PRIu64 " messages handled, %" PRIu64 " sent, %" PRIu64
               " actors spawned, %" PRIu64 " dead letters, %" PRIu64 " wake-ups\n",
               i, st.delivered, st.sent, st.spawned, st.dead_letters, st.wakeups);
    }
  }
  if (srv != NULL)
    report(ax_server_close(srv), "ax_server_close");
  if (stats != NULL)
    report(ax_port_close(stats), "ax_port_close"); /* before ax_rt_free */
  if (app.rt != NULL)
    report(ax_rt_free(app.rt), "ax_rt_free");
  for (int i = 0; i < NDEV; i++)
    if (devices[i].master >= 0)
      close(devices[i].master);
  printf("bye\n");
  return atomic_load(&app.failed) ? 1 : 0;
}
