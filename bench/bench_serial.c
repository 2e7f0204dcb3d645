/* bench_serial: line echo over a pty pair, an axon serial actor against a blocking read/write thread.
 *
 * Usage: bench_serial [--quick] [-n LINES] [-l ROUNDS] [-m LIST] [-w WINDOW] [-r RUNS]
 *                     [-i LIST]
 *   -n LINES   lines per throughput run (default 100000; 2000 with --quick)
 *   -l ROUNDS  round trips per latency run (default 20000; 300 with --quick)
 *   -m LIST    line sizes in bytes including the '\n', comma-separated,
 *              each 10..4000 (default 16,256)
 *   -w WINDOW  lines in flight during a throughput run (default 32)
 *   -r RUNS    runs of each measurement; the median is reported (default 3,
 *              1 with --quick)
 *   -i LIST    implementations among axon,blocking (default both)
 *   --quick    a CI smoke run of a second or two
 *
 * What runs.  Each run opens a fresh pty pair.  The echo side owns the
 * slave and sends every line it receives straight back, with one write per
 * line:
 *   axon      an actor on core 0 of a one-core runtime opens the slave with
 *             ax_serial_open (115200 8N1 raw, AX_FRAME_DELIM) and answers
 *             each AX_MSG_DATA with ax_stream_write(line + '\n');
 *   blocking  a thread sets the slave raw (cfmakeraw), then loops on a
 *             blocking read() into a buffer, cuts lines at '\n' and write()s
 *             each back: the plain program one would write without axon.
 * The driver (the main thread) plays the device on the master side: it
 * writes numbered lines ("00000042 xxx...\n") and reads the echoes, keeping
 * at most WINDOW lines in flight (throughput) or one (latency), and checks
 * every echoed line byte for byte against the line it sent, in order.
 *
 * Reported per line size: lines/s, echo-side CPU per line (the process's
 * CPU time from getrusage minus the driver thread's own
 * CLOCK_THREAD_CPUTIME_ID), and the round-trip time of single lines
 * (median and 99th percentile), each the median of RUNS runs, with the
 * ratio axon/blocking.  With two or more CPUs the echo side (the runtime's
 * core, or the blocking thread) runs on the first CPU of the affinity mask
 * and the driver on the last.  Runs alternate the implementations.
 *
 * A pty is not a UART: there is no baud-rate pacing, so these numbers are
 * the software cost of the path (tty layer, loop, framing, messages), not a
 * line's capacity.  Any failed call or check exits with status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <termios.h>
#include <unistd.h>

#include <axon.h>

#include "bench_util.h"

enum { IMPL_AXON, IMPL_BLOCKING, IMPLS };
static const char *const impl_names[IMPLS] = {"axon", "blocking"};

enum { MSG_OPEN = AX_MSG_USER, MSG_CLOSE, MSG_DONE };

#define MAX_SIZES 8
#define MAX_RUNS 32
#define MAX_LINE 4000

static struct {
  bool quick;
  long lines, rounds, window, runs;
  long sizes[MAX_SIZES];
  int nsizes;
  bool impl[IMPLS];
} cfg = {.lines = 100000, .rounds = 20000, .window = 32, .runs = 3};

/* ------------------------------------------------------------------------ */
/* CPUs                                                                      */

static int first_cpu = -1, last_cpu = -1;
static cpu_set_t start_mask; /* the affinity mask the program started with */

static void find_cpus(void) {
  BENCH_SYS(sched_getaffinity(0, sizeof start_mask, &start_mask));
  for (int i = 0; i < CPU_SETSIZE; i++) {
    if (CPU_ISSET(i, &start_mask)) {
      if (first_cpu < 0)
        first_cpu = i;
      last_cpu = i;
    }
  }
}

static void pin_thread(pthread_t t, int cpu) {
  if (first_cpu == last_cpu)
    return; /* one CPU: nothing to separate */
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  int rc = pthread_setaffinity_np(t, sizeof set, &set);
  if (rc != 0)
    bench_die("pthread_setaffinity_np(CPU %d): %s", cpu, strerror(rc));
}

/* Pins the driver (the main thread) to the last CPU, or gives it the whole
 * mask back: a runtime takes its CPUs from the mask of the thread that
 * creates it, so main must not be pinned while it creates one. */
static void pin_driver(bool on) {
  if (on) {
    pin_thread(pthread_self(), last_cpu);
    return;
  }
  int rc = pthread_setaffinity_np(pthread_self(), sizeof start_mask, &start_mask);
  if (rc != 0)
    bench_die("pthread_setaffinity_np: %s", strerror(rc));
}

static double process_cpu_ns(void) {
  struct rusage ru;
  BENCH_SYS(getrusage(RUSAGE_SELF, &ru));
  return ((double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec) * 1e9 +
         ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e3;
}

/* ------------------------------------------------------------------------ */
/* The axon echo side                                                        */

typedef struct echo {
  ax_ref_t port;
  ax_stream_t *s;
  unsigned char buf[MAX_LINE + 1];
} echo_t;

/* Opens the path in MSG_OPEN, echoes lines, closes on MSG_CLOSE; every
 * outcome goes to the port as MSG_DONE with an int (0 or -errno). */
static int echo_behaviour(ax_actor_t *self, const ax_msg_t *m) {
  echo_t *e = ax_state(self);
  int rc = 0;
  switch (m->type) {
  case MSG_OPEN: {
    ax_serial_opts_t o = {.stream = {.frame = AX_FRAME_DELIM, .max_frame = MAX_LINE}};
    rc = ax_serial_open(self, m->data, &o, &e->s);
    break;
  }
  case AX_MSG_DATA: {
    const ax_data_t *d = m->data;
    memcpy(e->buf, d->bytes, d->len);
    e->buf[d->len] = '\n';
    if ((rc = ax_stream_write(d->stream, e->buf, d->len + 1)) == 0)
      return 0;
    break;
  }
  case MSG_CLOSE:
    rc = ax_stream_close(e->s);
    e->s = NULL;
    break;
  case AX_MSG_FRAME_ERROR:
  case AX_MSG_CLOSED: { /* neither may happen here */
    const ax_stream_ev_t *ev = m->data;
    rc = ev->err != 0 ? ev->err : -EPROTO;
    if (m->type == AX_MSG_CLOSED)
      e->s = NULL; /* the handle dies when this returns */
    break;
  }
  default:
    rc = -EPROTO;
    break;
  }
  BENCH_AX(ax_send(e->port, MSG_DONE, &rc, sizeof rc));
  return 0;
}

typedef struct axon_side {
  ax_rt_t *rt;
  ax_port_t *port;
  ax_ref_t actor;
  echo_t e;
} axon_side_t;

static void port_wait(ax_port_t *port, const char *what) {
  ax_msg_t m;
  int rc = ax_port_recv(port, ax_now() + 30 * AX_NSEC_PER_SEC, &m);
  if (rc < 0)
    bench_die("%s: %s", what, ax_strerror(rc));
  int result;
  memcpy(&result, m.data, sizeof result);
  if (m.type != MSG_DONE || result < 0)
    bench_die("%s: %s", what, ax_strerror(result));
}

static void axon_start(axon_side_t *a, const char *slave) {
  ax_rt_opts_t o = {.cores = 1, .flags = AX_RT_NO_SIGNALS | AX_RT_KEEP_ALIVE};
  BENCH_AX(ax_rt_new(&o, &a->rt));
  BENCH_AX(ax_port_new(a->rt, &a->port));
  a->e.port = ax_port_ref(a->port);
  BENCH_AX(ax_spawn(a->rt, echo_behaviour, &a->e, NULL, &a->actor));
  BENCH_AX(ax_rt_start(a->rt)); /* its core pins itself to the first CPU */
  BENCH_AX(ax_send(a->actor, MSG_OPEN, slave, strlen(slave) + 1));
  port_wait(a->port, "ax_serial_open");
}

static void axon_stop(axon_side_t *a) {
  BENCH_AX(ax_send(a->actor, MSG_CLOSE, NULL, 0));
  port_wait(a->port, "ax_stream_close");
  ax_rt_stop(a->rt);
  BENCH_AX(ax_rt_join(a->rt));
  BENCH_AX(ax_port_close(a->port));
  BENCH_AX(ax_rt_free(a->rt));
}

/* ------------------------------------------------------------------------ */
/* The blocking echo side                                                    */

typedef struct blocking_side {
  pthread_t thread;
  int fd;
  unsigned long lines;
} blocking_side_t;

/* Reads until the master hangs up, writing each complete line back. */
static void *blocking_echo(void *arg) {
  blocking_side_t *b = arg;
  static __thread unsigned char in[65536];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(b->fd, in + have, sizeof in - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return NULL; /* 0 or EIO: the master is gone */
    have += (size_t)n;
    size_t start = 0;
    for (unsigned char *nl; (nl = memchr(in + start, '\n', have - start)) != NULL;) {
      size_t len = (size_t)(nl - (in + start)) + 1;
      for (size_t off = 0; off < len;) {
        ssize_t w = write(b->fd, in + start + off, len - off);
        if (w < 0 && errno == EINTR)
          continue;
        if (w < 0)
          return NULL;
        off += (size_t)w;
      }
      b->lines++;
      start += len;
    }
    memmove(in, in + start, have - start);
    have -= start;
    if (have == sizeof in)
      bench_die("blocking echo: a line longer than %zu bytes", sizeof in);
  }
}

static void blocking_start(blocking_side_t *b, const char *slave) {
  b->fd = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
  BENCH_SYS(b->fd);
  struct termios t;
  BENCH_SYS(tcgetattr(b->fd, &t));
  cfmakeraw(&t);
  BENCH_SYS(cfsetspeed(&t, B115200));
  BENCH_SYS(tcsetattr(b->fd, TCSANOW, &t));
  b->lines = 0;
  int rc = pthread_create(&b->thread, NULL, blocking_echo, b);
  if (rc != 0)
    bench_die("pthread_create: %s", strerror(rc));
  pin_thread(b->thread, first_cpu);
}

/* The master is closed by now: the thread sees the hang-up and ends. */
static void blocking_stop(blocking_side_t *b) {
  int rc = pthread_join(b->thread, NULL);
  if (rc != 0)
    bench_die("pthread_join: %s", strerror(rc));
  close(b->fd);
}

/* ------------------------------------------------------------------------ */
/* The driver                                                                */

/* Line seq of `size` bytes: 8 digits, a space, a pattern, '\n'. */
static void make_line(unsigned char *p, size_t size, unsigned long seq) {
  char digits[16];
  snprintf(digits, sizeof digits, "%08lu", seq % 100000000ul);
  memcpy(p, digits, 8);
  p[8] = ' ';
  for (size_t i = 9; i + 1 < size; i++)
    p[i] = (unsigned char)('a' + (seq + i) % 26);
  p[size - 1] = '\n';
}

typedef struct drive_result {
  double secs;       /* wall time of the run */
  double echo_cpu_ns; /* CPU of everything but the driver */
} drive_result_t;

/* Sends n lines of `size` bytes with at most `window` in flight and checks
 * every echo.  rtt_us, when not NULL, gets each line's round trip. */
static drive_result_t drive(int master, long n, size_t size, long window, double *rtt_us) {
  static unsigned char want[MAX_LINE], out[MAX_LINE], in[65536];
  int64_t *sent_at = rtt_us != NULL ? calloc((size_t)n, sizeof *sent_at) : NULL;
  if (rtt_us != NULL && sent_at == NULL)
    bench_die("out of memory");
  long sent = 0, done = 0;
  size_t out_off = size, have = 0; /* out_off == size: no line being written */
  double cpu0 = process_cpu_ns();
  int64_t drv0 = bench_clock_ns(CLOCK_THREAD_CPUTIME_ID), t0 = ax_now();
  while (done < n) {
    if (out_off == size && sent < n && sent - done < window) {
      make_line(out, size, (unsigned long)sent);
      out_off = 0;
      if (sent_at != NULL)
        sent_at[sent] = ax_now();
      sent++;
    }
    if (out_off < size) {
      ssize_t w = write(master, out + out_off, size - out_off);
      if (w < 0 && errno != EAGAIN && errno != EINTR)
        bench_die("write to the master: %s", strerror(errno));
      if (w > 0)
        out_off += (size_t)w;
      if (out_off == size && sent < n && sent - done < window)
        continue; /* the next line at once */
    }
    struct pollfd p = {.fd = master, .events = POLLIN | (out_off < size ? POLLOUT : 0)};
    int ready = poll(&p, 1, 10000);
    if (ready == 0)
      bench_die("no echo for 10 s (line %ld of %ld)", done, n);
    if (ready < 0 && errno != EINTR)
      bench_die("poll: %s", strerror(errno));
    if (!(p.revents & POLLIN))
      continue;
    ssize_t r = read(master, in + have, sizeof in - have);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
      continue;
    if (r <= 0)
      bench_die("read from the master: %s", r == 0 ? "end of file" : strerror(errno));
    have += (size_t)r;
    size_t pos = 0;
    while (have - pos >= size && done < n) {
      make_line(want, size, (unsigned long)done);
      if (memcmp(in + pos, want, size) != 0)
        bench_die("echo of line %ld (%zu bytes) differs: '%.*s'", done, size, (int)size - 1,
                  (const char *)in + pos);
      if (sent_at != NULL)
        rtt_us[done] = (double)(ax_now() - sent_at[done]) / 1e3;
      done++;
      pos += size;
    }
    memmove(in, in + pos, have - pos);
    have -= pos;
  }
  drive_result_t res;
  res.secs = (double)(ax_now() - t0) / 1e9;
  double drv = (double)(bench_clock_ns(CLOCK_THREAD_CPUTIME_ID) - drv0);
  res.echo_cpu_ns = process_cpu_ns() - cpu0 - drv;
  if (have != 0)
    bench_die("%zu stray bytes after the last echo", have);
  free(sent_at);
  return res;
}

/* ------------------------------------------------------------------------ */
/* Runs and the table                                                        */

typedef struct sample {
  double lines_per_s, cpu_ns_per_line, rtt_p50_us, rtt_p99_us;
} sample_t;

/* One run of one implementation: a throughput pass and a latency pass on a
 * fresh pty pair. */
static sample_t run_once(int impl, size_t size) {
  int master, slave;
  char name[64];
  BENCH_SYS(openpty(&master, &slave, name, NULL, NULL));
  BENCH_SYS(fcntl(master, F_SETFL, O_NONBLOCK));
  axon_side_t a;
  blocking_side_t b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  pin_driver(false);
  if (impl == IMPL_AXON)
    axon_start(&a, name);
  pin_driver(true);
  if (impl == IMPL_BLOCKING)
    blocking_start(&b, name);
  close(slave); /* the echo side has its own fd */

  sample_t s;
  drive_result_t t = drive(master, cfg.lines, size, cfg.window, NULL);
  s.lines_per_s = (double)cfg.lines / t.secs;
  s.cpu_ns_per_line = t.echo_cpu_ns / (double)cfg.lines;
  double *rtt = malloc((size_t)cfg.rounds * sizeof *rtt);
  if (rtt == NULL)
    bench_die("out of memory");
  drive(master, cfg.rounds, size, 1, rtt);
  s.rtt_p50_us = bench_median(rtt, (int)cfg.rounds); /* sorts rtt */
  s.rtt_p99_us = rtt[(size_t)((double)(cfg.rounds - 1) * 0.99)];
  free(rtt);

  if (impl == IMPL_AXON) {
    axon_stop(&a);
    close(master);
  } else {
    close(master); /* the hang-up ends the thread's read loop */
    blocking_stop(&b);
    if (b.lines != (unsigned long)(cfg.lines + cfg.rounds))
      bench_die("blocking echo: %lu lines echoed, expected %ld", b.lines,
                cfg.lines + cfg.rounds);
  }
  return s;
}

static void parse_list(const char *arg, const char *what, long *out, int max, int *n) {
  char *copy = strdup(arg), *save = NULL;
  if (copy == NULL)
    bench_die("out of memory");
  *n = 0;
  for (char *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
    if (*n == max)
      bench_die("%s: at most %d values", what, max);
    out[(*n)++] = bench_parse_count(tok, what);
  }
  free(copy);
}

static void parse_args(int argc, char **argv) {
  bool set_n = false, set_l = false, set_r = false, set_i = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--quick") == 0) {
      cfg.quick = true;
      continue;
    }
    if (v == NULL || a[0] != '-' || a[1] == '\0' || a[2] != '\0')
      bench_die("usage: bench_serial [--quick] [-n LINES] [-l ROUNDS] [-m LIST] [-w WINDOW] "
                "[-r RUNS] [-i axon,blocking]");
    i++;
    switch (a[1]) {
    case 'n': cfg.lines = bench_parse_count(v, "-n"); set_n = true; break;
    case 'l': cfg.rounds = bench_parse_count(v, "-l"); set_l = true; break;
    case 'w': cfg.window = bench_parse_count(v, "-w"); break;
    case 'r': cfg.runs = bench_parse_count(v, "-r"); set_r = true; break;
    case 'm': parse_list(v, "-m", cfg.sizes, MAX_SIZES, &cfg.nsizes); break;
    case 'i':
      set_i = true;
      for (const char *p = v; *p != '\0'; p += strcspn(p, ","), p += *p == ',') {
        size_t len = strcspn(p, ",");
        int k = 0;
        while (k < IMPLS && (strlen(impl_names[k]) != len || strncmp(p, impl_names[k], len)))
          k++;
        if (k == IMPLS)
          bench_die("-i: unknown implementation '%.*s'", (int)len, p);
        cfg.impl[k] = true;
      }
      break;
    default: bench_die("unknown option %s", a);
    }
  }
  if (cfg.quick) {
    cfg.lines = set_n ? cfg.lines : 2000;
    cfg.rounds = set_l ? cfg.rounds : 300;
    cfg.runs = set_r ? cfg.runs : 1;
  }
  if (cfg.nsizes == 0) {
    cfg.sizes[0] = 16;
    cfg.sizes[1] = 256;
    cfg.nsizes = 2;
  }
  for (int i = 0; i < cfg.nsizes; i++)
    if (cfg.sizes[i] < 10 || cfg.sizes[i] > MAX_LINE)
      bench_die("-m: a line size must be 10..%d bytes", MAX_LINE);
  if (cfg.runs > MAX_RUNS)
    bench_die("-r: at most %d runs", MAX_RUNS);
  if (!set_i)
    cfg.impl[IMPL_AXON] = cfg.impl[IMPL_BLOCKING] = true;
}

static void print_row(const char *what, const double *med, const char *fmt) {
  printf("  %-22s", what);
  for (int k = 0; k < IMPLS; k++) {
    if (cfg.impl[k])
      printf(fmt, med[k]);
    else
      printf("%14s", "-");
  }
  if (cfg.impl[IMPL_AXON] && cfg.impl[IMPL_BLOCKING] && med[IMPL_BLOCKING] > 0)
    printf("%14.2f", med[IMPL_AXON] / med[IMPL_BLOCKING]);
  printf("\n");
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  find_cpus();
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("bench_serial: line echo over a pty; %ld lines (window %ld) + %ld single round trips "
         "per run, median of %ld run(s)\n",
         cfg.lines, cfg.window, cfg.rounds, cfg.runs);
  if (first_cpu != last_cpu)
    printf("echo side on CPU %d, driver on CPU %d\n", first_cpu, last_cpu);
  else
    printf("one CPU: echo side and driver share it\n");
  for (int si = 0; si < cfg.nsizes; si++) {
    size_t size = (size_t)cfg.sizes[si];
    double v[4][IMPLS][MAX_RUNS];
    for (long r = 0; r < cfg.runs; r++) {
      for (int j = 0; j < IMPLS; j++) {
        int k = (int)((j + r) % IMPLS); /* alternate who goes first */
        if (!cfg.impl[k])
          continue;
        sample_t s = run_once(k, size);
        v[0][k][r] = s.lines_per_s;
        v[1][k][r] = s.cpu_ns_per_line;
        v[2][k][r] = s.rtt_p50_us;
        v[3][k][r] = s.rtt_p99_us;
      }
    }
    double med[4][IMPLS];
    for (int q = 0; q < 4; q++)
      for (int k = 0; k < IMPLS; k++)
        med[q][k] = cfg.impl[k] ? bench_median(v[q][k], (int)cfg.runs) : 0;
    char title[32];
    snprintf(title, sizeof title, "%zu-byte lines", size);
    printf("\n%-24s%14s%14s%14s\n", title, "axon", "blocking", "axon/blocking");
    print_row("lines/s", med[0], "%14.0f");
    print_row("echo CPU ns/line", med[1], "%14.0f");
    print_row("round trip p50 us", med[2], "%14.1f");
    print_row("round trip p99 us", med[3], "%14.1f");
  }
  printf("\nevery echoed line checked: ok\n");
  return 0;
}
