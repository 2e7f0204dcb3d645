/* The loop itself: creation, the run/stop cycle, the cached clock and close. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "io/internal.h"

#define AX__DEFAULT_EVENTS 256u
#define AX__MAX_EVENTS 4096u

/* Drains the stop eventfd.  The stop flag itself is examined by the run
 * cycle; this watcher only exists so that a sleeping loop wakes up. */
static void wake_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  uint64_t n;
  /* One read takes the whole count and resets it (not a semaphore
   * eventfd); EAGAIN when a stop's wake-up was drained already. */
  ssize_t r = read(io->fd, &n, sizeof n);
  (void)r;
}

static int pick_backend(const ax_loop_opts_t *opts, const ax__backend_t **out) {
  ax_backend_t b = opts != NULL ? opts->backend : AX_BACKEND_DEFAULT;
  if (b == AX_BACKEND_DEFAULT) {
    const char *env = getenv("AXON_BACKEND");
    if (env == NULL || *env == '\0' || strcmp(env, "epoll") == 0)
      b = AX_BACKEND_EPOLL;
    else if (strcmp(env, "poll") == 0)
      b = AX_BACKEND_POLL;
    else if (strcmp(env, "io_uring") == 0)
      b = AX_BACKEND_IO_URING;
    else {
      /* -EINVAL alone reads as a bad argument of the caller's. */
      fprintf(stderr, "axon: AXON_BACKEND=\"%.64s\" names no backend (epoll, poll, io_uring)\n",
              env);
      return -EINVAL;
    }
  }
  switch (b) {
  case AX_BACKEND_EPOLL:
    *out = &ax__backend_epoll;
    return 0;
  case AX_BACKEND_POLL:
    *out = &ax__backend_poll;
    return 0;
  case AX_BACKEND_IO_URING:
    *out = &ax__backend_uring;
    return 0;
  default:
    return -EINVAL;
  }
}

int ax_loop_new(const ax_loop_opts_t *opts, ax_loop_t **out) {
  if (out == NULL)
    return -EINVAL;
  const ax__backend_t *backend;
  int rc = pick_backend(opts, &backend);
  if (rc < 0)
    return rc;
  unsigned max_events = opts != NULL ? opts->max_events : 0;
  if (max_events == 0)
    max_events = AX__DEFAULT_EVENTS;
  unsigned flags = opts != NULL ? opts->flags : 0;
  if (max_events > AX__MAX_EVENTS || (flags & ~(unsigned)AX_LOOP_KEEP_ALIVE) != 0)
    return -EINVAL;

  ax_loop_t *loop = ax__calloc(1, sizeof *loop);
  if (loop == NULL)
    return -ENOMEM;
  loop->ready = ax__calloc(max_events, sizeof *loop->ready);
  if (loop->ready == NULL) {
    free(loop);
    return -ENOMEM;
  }
  loop->backend = backend;
  loop->max_events = max_events;
  loop->flags = flags;
  loop->owner = pthread_self();
  loop->wake_fd = -1;
  loop->sig_fd = -1;
  sigemptyset(&loop->sig_mask);
  sigemptyset(&loop->sig_we_blocked);
  atomic_init(&loop->stop_requested, 0);
  loop->now = ax_now();

  rc = backend->init(loop);
  /* Out of fds is the caller's error, not a refusal: the one message
   * below must not be spent on it (a reviewer's EMFILE printed "io_uring
   * backend unavailable" and hid a later real refusal).  -ENOMEM stays a
   * refusal: kernels before 5.12 count a ring against RLIMIT_MEMLOCK. */
  if (rc < 0 && backend == &ax__backend_uring && rc != -EMFILE && rc != -ENFILE) {
    /* Refused (an old kernel, kernel.io_uring_disabled, a seccomp filter)
     * or not built: epoll does the same job. */
    static atomic_bool told;
    if (!atomic_exchange_explicit(&told, true, memory_order_relaxed)) /* once: orders nothing */
      fprintf(stderr, "axon: io_uring backend unavailable (%s): the loop uses epoll\n",
              strerror(-rc));
    loop->backend = backend = &ax__backend_epoll;
    rc = backend->init(loop);
  }
  if (rc < 0)
    goto fail;
  loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wake_fd < 0) {
    rc = -errno;
    backend->destroy(loop);
    goto fail;
  }
  ax_io_init(loop, &loop->wake_io, loop->wake_fd, wake_cb);
  loop->wake_io.flags_ = AX__INTERNAL;
  rc = ax__io_start_internal(&loop->wake_io, AX_READ);
  if (rc < 0) {
    close(loop->wake_fd);
    backend->destroy(loop);
    goto fail;
  }
  *out = loop;
  return 0;

fail:
  free(loop->ready);
  free(loop);
  return rc;
}

int64_t ax_loop_now(const ax_loop_t *loop) { return loop != NULL ? loop->now : 0; }

void ax_loop_update_time(ax_loop_t *loop) {
  if (loop != NULL)
    loop->now = ax_now();
}

int64_t ax_loop_timeout(const ax_loop_t *loop) {
  if (loop == NULL)
    return AX_FOREVER;
  int64_t next = ax__timer_next(loop);
  if (next == AX_FOREVER)
    return AX_FOREVER;
  return next > loop->now ? next - loop->now : 0;
}

const char *ax_loop_backend(const ax_loop_t *loop) {
  return loop != NULL ? loop->backend->name : NULL;
}

unsigned ax_loop_active(const ax_loop_t *loop) { return loop != NULL ? loop->nactive : 0; }

int ax_loop_fd(const ax_loop_t *loop) {
  if (loop == NULL)
    return -EINVAL;
  return loop->backend->fd(loop);
}

void ax_loop_stop(ax_loop_t *loop) {
  if (loop == NULL)
    return;
  /* Release: a callback that stored data before calling stop has it visible
   * to whoever observes the flag (the loop thread after its wait).  The
   * write below is the wake-up; it is needed only when the loop sleeps, but
   * testing that would need a second flag and a full fence on both sides,
   * and stop is rare, so it is always made. */
  atomic_store_explicit(&loop->stop_requested, 1, memory_order_release);
  ax_loop_wake(loop);
}

void ax_loop_wake(ax_loop_t *loop) {
  if (loop == NULL)
    return;
  /* The kernel orders this write before the loop's read of the eventfd;
   * what the caller wrote to memory before, it publishes itself. */
  uint64_t one = 1;
  ssize_t w = write(loop->wake_fd, &one, sizeof one);
  (void)w; /* EAGAIN: the counter is already non-zero, the loop will wake */
}

void ax_loop_adopt(ax_loop_t *loop) {
  if (loop != NULL)
    loop->owner = pthread_self();
}

/* True when a run has nothing left to wait for. */
static bool idle(const ax_loop_t *loop) {
  return loop->nactive == 0 && !(loop->flags & AX_LOOP_KEEP_ALIVE);
}

static bool stop_pending(ax_loop_t *loop) {
  return atomic_load_explicit(&loop->stop_requested, memory_order_relaxed) != 0;
}

/* Consumes a stop request.  Acquire pairs with the release in
 * ax_loop_stop(): what the stopping thread wrote before is visible. */
static bool take_stop(ax_loop_t *loop) {
  /* The stop's wake-up may still be unread (a stop from a callback needs
   * none).  It stays: the eventfd also counts the wake-ups of other
   * threads (ax_loop_wake), and draining it here lost one that came in the
   * same pass.  The next run takes it, a wake-up for nothing at worst. */
  return atomic_exchange_explicit(&loop->stop_requested, 0, memory_order_acquire) != 0;
}

/* How long the next wait may block: until the earliest timer, the run's end,
 * or not at all when a stop is pending. */
static int64_t wait_time(ax_loop_t *loop, int64_t timeout_ns, int64_t end) {
  if (timeout_ns == 0 || stop_pending(loop))
    return 0;
  int64_t until = ax__timer_next(loop);
  if (end != INT64_MAX && (until == AX_FOREVER || end < until))
    until = end;
  if (until == AX_FOREVER)
    return AX_FOREVER;
  /* The time cached when the loop last woke up is late by whatever the
   * callbacks took since: a wait computed from it overslept by that much
   * (a 100 ms timer behind a 200 ms callback fired at 300 ms, not at
   * 220; a newcomer).  One clock read per wait that has a deadline. */
  loop->now = ax_now();
  return until > loop->now ? until - loop->now : 0;
}

/* One pass of the loop: due timers, a wait of at most `wait` ns, the fd
 * callbacks.  Returns the backend's count of events or -errno. */
static int loop_pass(ax_loop_t *loop, int64_t timeout_ns, int64_t end) {
  int n = loop->backend->wait(loop, wait_time(loop, timeout_ns, end));
  loop->now = ax_now();
  if (n < 0)
    return n;
  ax__io_dispatch(loop, (unsigned)n);
  if (loop->backend->after != NULL)
    loop->backend->after(loop);
  return n;
}

static int run_enter(ax_loop_t *loop, int64_t timeout_ns) {
  if (loop == NULL || (timeout_ns < 0 && timeout_ns != AX_FOREVER))
    return -EINVAL;
  if (atomic_exchange_explicit(&loop->running, true, memory_order_acquire))
    return -EBUSY; /* acquire: the last runner's work on the loop is seen */
  loop->owner = pthread_self();
  loop->now = ax_now();
  return 0;
}

int ax_loop_run(ax_loop_t *loop, int64_t timeout_ns) {
  int rc = run_enter(loop, timeout_ns);
  if (rc < 0)
    return rc;
  int64_t end = timeout_ns == AX_FOREVER ? INT64_MAX : ax__add_sat(loop->now, timeout_ns);
  for (;;) {
    ax__timer_run_due(loop);
    if (idle(loop) && !stop_pending(loop)) {
      rc = AX_RUN_IDLE;
      break;
    }
    rc = loop_pass(loop, timeout_ns, end);
    if (rc < 0)
      break;
    if (take_stop(loop)) {
      rc = AX_RUN_STOPPED;
      break;
    }
    if (timeout_ns == 0 || loop->now >= end) {
      ax__timer_run_due(loop);
      rc = idle(loop) ? AX_RUN_IDLE : AX_RUN_TIMEOUT;
      break;
    }
  }
  /* Release: this run's work on the loop before the next runner's. */
  atomic_store_explicit(&loop->running, false, memory_order_release);
  return rc;
}

int ax_loop_run_once(ax_loop_t *loop, int64_t timeout_ns) {
  int rc = run_enter(loop, timeout_ns);
  if (rc < 0)
    return rc;
  int64_t end = timeout_ns == AX_FOREVER ? INT64_MAX : ax__add_sat(loop->now, timeout_ns);
  /* Timer callbacks that ran before the wait did work the caller may need
   * to see (axon's runtime queues actors in them): the wait does not block
   * then. */
  if (ax__timer_run_due(loop) > 0)
    timeout_ns = 0;
  if (idle(loop) && !stop_pending(loop)) {
    rc = AX_RUN_IDLE;
  } else {
    rc = loop_pass(loop, timeout_ns, end);
    if (rc >= 0) {
      ax__timer_run_due(loop);
      rc = take_stop(loop)          ? AX_RUN_STOPPED
           : idle(loop)          ? AX_RUN_IDLE
                                 : AX_RUN_TIMEOUT;
    }
  }
  /* Release: this run's work on the loop before the next runner's. */
  atomic_store_explicit(&loop->running, false, memory_order_release);
  return rc;
}

int ax_loop_close(ax_loop_t *loop, unsigned flags) {
  if (loop == NULL || (flags & ~(unsigned)AX_CLOSE_FORCE) != 0)
    return -EINVAL;
  if (atomic_load_explicit(&loop->running, memory_order_relaxed)) /* a close from a callback */
    return -EBUSY;
  if (loop->nactive != 0) {
    if (!(flags & AX_CLOSE_FORCE))
      return -EBUSY;
    while (loop->io_list != NULL)
      ax_io_stop(loop->io_list);
    ax__timer_stop_all(loop);
    ax__signal_stop_all(loop);
  }
  ax__signal_close(loop);
  loop->backend->del(loop, &loop->wake_io);
  close(loop->wake_fd);
  loop->backend->destroy(loop);
  free(loop->ready);
  free(loop);
  return 0;
}
