/*
 * loop-embed: an axon loop inside a host program's own poll() loop.
 *
 * The host (think of a GUI toolkit or another library's main loop) owns the
 * thread and polls its own fd, here a timerfd ticking once a second.  It adds
 * one more fd to its poll set, ax_loop_fd(loop), bounds its wait with
 * ax_loop_timeout(loop), and after every wait calls ax_loop_run_once(loop, 0):
 * one non-blocking pass of the axon loop.  Everything the axon loop watches
 * (a pipe, a signal, its timers) is then served as it happens, never at the
 * host's next tick.
 *
 * A producer thread writes N lines into a pipe, each carrying the time it
 * was written (ax_now()); the axon loop's pipe watcher reads them and
 * measures how long each one waited.  An axon timer fires once after 250 ms,
 * and SIGINT (a signal watcher) ends the run early.  At the end the program
 * prints the host's ticks and the lines' latencies.
 *
 *   build/examples/loop-embed 40        # 40 lines, 37 ms apart
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <axon.h>

typedef struct app {
  int lines_expected, lines;
  int64_t worst_ns, total_ns;
  bool timer_fired, interrupted;
} app_t;

/* The producer: one line every 37 ms, "<ax_now() when written>\n". */
typedef struct producer {
  int fd, n;
} producer_t;

static void *produce(void *arg) {
  producer_t *p = arg;
  for (int i = 0; i < p->n; i++) {
    struct timespec gap = {0, 37 * 1000 * 1000};
    nanosleep(&gap, NULL);
    char line[32];
    int len = snprintf(line, sizeof line, "%" PRId64 "\n", ax_now());
    if (write(p->fd, line, (size_t)len) != len)
      break;
  }
  close(p->fd);
  return NULL;
}

/* axon side: a line arrived (or the producer closed its end). */
static void on_line(ax_io_t *io, unsigned revents) {
  (void)revents;
  app_t *app = io->data;
  char buf[512];
  ssize_t n = read(io->fd, buf, sizeof buf - 1);
  if (n <= 0) { /* end of file (or an error): nothing more will come */
    ax_io_stop(io);
    return;
  }
  buf[n] = '\0';
  int64_t now = ax_now();
  for (char *s = buf, *nl; (nl = strchr(s, '\n')) != NULL; s = nl + 1) {
    int64_t waited = now - strtoll(s, NULL, 10);
    app->total_ns += waited;
    if (waited > app->worst_ns)
      app->worst_ns = waited;
    app->lines++;
  }
}

static void on_timer(ax_timer_t *t) {
  ((app_t *)t->data)->timer_fired = true;
  printf("axon timer fired (250 ms)\n");
}

static void on_sigint(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  (void)info;
  ((app_t *)sig->data)->interrupted = true;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20;
  if (n <= 0 || n > 100000) {
    fprintf(stderr, "usage: %s [LINES]\n", argv[0]);
    return 2;
  }
  /* Block SIGINT before any thread starts, so only the loop's signalfd
   * sees it. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  ax_loop_t *loop;
  int rc = ax_loop_new(NULL, &loop);
  if (rc < 0) {
    fprintf(stderr, "loop-embed: ax_loop_new: %s\n", ax_strerror(rc));
    return 1;
  }
  int loop_fd = ax_loop_fd(loop); /* -ENOTSUP on the poll backend */
  if (loop_fd < 0) {
    fprintf(stderr, "loop-embed: ax_loop_fd: %s\n", ax_strerror(loop_fd));
    ax_loop_close(loop, 0);
    return 1;
  }

  app_t app = {.lines_expected = n};
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
    perror("loop-embed: pipe2");
    return 1;
  }
  ax_io_t io;
  ax_timer_t timer;
  ax_signal_t sig;
  ax_io_init(loop, &io, p[0], on_line);
  io.data = &app;
  ax_timer_init(loop, &timer, on_timer);
  timer.data = &app;
  ax_signal_init(loop, &sig, on_sigint);
  sig.data = &app;
  if ((rc = ax_io_start(&io, AX_READ)) < 0 ||
      (rc = ax_timer_start(&timer, 250 * AX_NSEC_PER_MSEC, 0)) < 0 ||
      (rc = ax_signal_start(&sig, SIGINT)) < 0) {
    fprintf(stderr, "loop-embed: start: %s\n", ax_strerror(rc));
    return 1;
  }

  /* The host's own work: a tick every second. */
  int tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  struct itimerspec every = {.it_interval = {1, 0}, .it_value = {1, 0}};
  if (tick_fd < 0 || timerfd_settime(tick_fd, 0, &every, NULL) < 0) {
    perror("loop-embed: timerfd");
    return 1;
  }

  producer_t prod = {.fd = p[1], .n = n};
  pthread_t th;
  if (pthread_create(&th, NULL, produce, &prod) != 0) {
    fprintf(stderr, "loop-embed: pthread_create failed\n");
    return 1;
  }
  printf("host loop: polling its timerfd and axon's fd %d\n", loop_fd);

  /* The host's loop. */
  unsigned long ticks = 0;
  while (ax_io_active(&io) && !app.interrupted) {
    struct pollfd fds[2] = {{.fd = tick_fd, .events = POLLIN}, {.fd = loop_fd, .events = POLLIN}};
    int64_t t = ax_loop_timeout(loop); /* until axon's next timer, or AX_FOREVER */
    int ms = t == AX_FOREVER           ? -1
             : t / 1000000 >= INT_MAX ? INT_MAX /* a timer 25 days away: wake and look again */
                                      : (int)((t + 999999) / 1000000); /* rounded up */
    if (poll(fds, 2, ms) < 0 && errno != EINTR) {
      perror("loop-embed: poll");
      break;
    }
    if (fds[0].revents & POLLIN) { /* the host's own work */
      uint64_t expirations;
      if (read(tick_fd, &expirations, sizeof expirations) == sizeof expirations)
        ticks += expirations;
    }
    ax_loop_run_once(loop, 0); /* axon's share: what is ready or due, without blocking */
  }
  pthread_join(th, NULL);

  printf("host ticks: %lu\n", ticks);
  printf("lines: %d of %d\n", app.lines, app.lines_expected);
  if (app.lines > 0)
    printf("latency: mean %" PRId64 " us, max %" PRId64 " us\n",
           app.total_ns / app.lines / 1000, app.worst_ns / 1000);
  printf("axon timer: %s\n", app.timer_fired ? "fired" : "did not fire");
  if (app.interrupted)
    printf("interrupted by SIGINT\n");

  ax_signal_stop(&sig);
  ax_timer_stop(&timer);
  ax_io_stop(&io);
  close(p[0]);
  close(tick_fd);
  rc = ax_loop_close(loop, 0);
  if (rc < 0) {
    fprintf(stderr, "loop-embed: ax_loop_close: %s\n", ax_strerror(rc));
    return 1;
  }
  return app.interrupted || app.lines == n ? 0 : 1;
}
