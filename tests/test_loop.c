/* Check suite for the loop itself: creation, run/stop/close, return values and active counts. */
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/signalfd.h>
#include <sys/eventfd.h>
#include <sys/time.h>

#include "axon_test.h"

/* A timer callback that only counts its calls through the data pointer. */
static void count_timer_cb(ax_timer_t *timer) {
  ++*(int *)timer->data;
}

/* A timer callback that asks its loop to stop. */
static void stop_timer_cb(ax_timer_t *timer) {
  ++*(int *)timer->data;
  ax_loop_stop(timer->loop);
}

/* An fd callback that counts its calls through the data pointer. */
static void count_io_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  ++*(int *)io->data;
}

static void ignore_signal_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  (void)sig;
  (void)info;
}

static void ignore_event_cb(ax_event_t *ev, uint64_t count) {
  (void)ev;
  (void)count;
}

/* ------------------------------------------------------------------------ */
/* Creation and backends                                                     */

START_TEST(test_loop_new_close) {
  ax_loop_t *loop = test_loop_new();
  ck_assert_uint_eq(ax_loop_active(loop), 0);
  const char *backend = ax_loop_backend(loop);
  ck_assert_ptr_nonnull(backend);
  /* The default backend follows AXON_BACKEND, which CTest sets. */
  const char *wanted = getenv("AXON_BACKEND");
  ck_assert_str_eq(backend, wanted != NULL && wanted[0] != '\0' ? wanted : "epoll");
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_new_explicit_backend) {
  ax_loop_opts_t opts;
  memset(&opts, 0, sizeof opts);
  opts.backend = AX_BACKEND_EPOLL;
  ax_loop_t *loop = NULL;
  ck_assert_int_eq(ax_loop_new(&opts, &loop), 0);
  ck_assert_str_eq(ax_loop_backend(loop), "epoll");
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);

  opts.backend = AX_BACKEND_POLL;
  opts.max_events = 4096;
  loop = NULL;
  ck_assert_int_eq(ax_loop_new(&opts, &loop), 0);
  ck_assert_str_eq(ax_loop_backend(loop), "poll");
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);

  /* Two loops may live side by side in one thread while not running. */
  ax_loop_t *first = test_loop_new();
  ax_loop_t *second = test_loop_new();
  ck_assert_ptr_ne(first, second);
  ck_assert_int_eq(ax_loop_close(first, 0), 0);
  ck_assert_int_eq(ax_loop_close(second, 0), 0);
}
END_TEST

START_TEST(test_loop_now_and_update_time) {
  ax_loop_t *loop = test_loop_new();
  int64_t before = ax_now();
  ax_loop_update_time(loop);
  int64_t cached = ax_loop_now(loop);
  ck_assert_int_ge(cached, before);
  ck_assert_int_le(cached, ax_now());
  test_sleep_ms(5);
  /* The cached time does not move by itself... */
  ck_assert_int_eq(ax_loop_now(loop), cached);
  /* ...and ax_loop_update_time() brings it forward. */
  ax_loop_update_time(loop);
  ck_assert_int_ge(ax_loop_now(loop), cached + 5 * AX_NSEC_PER_MSEC);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_loop_run() and its return values                                       */

START_TEST(test_loop_run_idle_without_watchers) {
  ax_loop_t *loop = test_loop_new();
  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(ax_loop_run(loop, 1000 * AX_NSEC_PER_MSEC), AX_RUN_IDLE);
  /* Nothing to wait for means no waiting at all. */
  ck_assert_int_lt(ax_now() - start, 500 * AX_NSEC_PER_MSEC);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_run_idle_after_last_watcher) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t timer;
  int fired = 0;
  ck_assert_int_eq(ax_timer_init(loop, &timer, count_timer_cb), 0);
  timer.data = &fired;
  ck_assert_int_eq(ax_timer_start(&timer, 1 * AX_NSEC_PER_MSEC, 0), 0);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(fired, 1);
  ck_assert_uint_eq(ax_loop_active(loop), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_run_timeout_on_time) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t timer;
  int fired = 0;
  ck_assert_int_eq(ax_timer_init(loop, &timer, count_timer_cb), 0);
  timer.data = &fired;
  ck_assert_int_eq(ax_timer_start(&timer, 10 * AX_NSEC_PER_SEC, 0), 0);

  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run(loop, 50 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);
  int64_t elapsed = ax_now() - start;
  ck_assert_int_ge(elapsed, 50 * AX_NSEC_PER_MSEC);
  ck_assert_int_lt(elapsed, 5 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(fired, 0);
  ck_assert(ax_timer_active(&timer));

  ck_assert_int_eq(ax_timer_stop(&timer), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_run_zero_is_one_pass) {
  ax_loop_t *loop = test_loop_new();
  int fds[2];
  test_pipe(fds);
  test_write_byte(fds[1]);

  ax_timer_t due, late;
  ax_io_t io;
  int due_fired = 0, late_fired = 0, io_calls = 0;
  ck_assert_int_eq(ax_timer_init(loop, &due, count_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &late, count_timer_cb), 0);
  ck_assert_int_eq(ax_io_init(loop, &io, fds[0], count_io_cb), 0);
  due.data = &due_fired;
  late.data = &late_fired;
  io.data = &io_calls;
  ck_assert_int_eq(ax_timer_start(&due, 0, 0), 0);
  ck_assert_int_eq(ax_timer_start(&late, 10 * AX_NSEC_PER_SEC, 0), 0);
  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);

  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(due_fired, 1);
  ck_assert_int_eq(io_calls, 1);
  ck_assert_int_eq(late_fired, 0);
  /* A second pass sees the still-readable pipe again (level-triggered). */
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(io_calls, 2);
  ck_assert_int_eq(due_fired, 1);
  /* Neither pass may block. */
  ck_assert_int_lt(ax_now() - start, 2 * AX_NSEC_PER_SEC);

  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_int_eq(ax_timer_stop(&late), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

/* A timer callback that calls ax_loop_run() and ax_loop_close() on its own,
 * running loop; both must refuse with -EBUSY. */
static void reenter_timer_cb(ax_timer_t *timer) {
  int *results = timer->data;
  results[0] = ax_loop_run(timer->loop, 0);
  results[1] = ax_loop_close(timer->loop, 0);
  results[2] = ax_loop_close(timer->loop, AX_CLOSE_FORCE);
  results[3] = 1;
}

START_TEST(test_loop_run_not_reentrant) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t timer;
  int results[4] = {0, 0, 0, 0};
  ck_assert_int_eq(ax_timer_init(loop, &timer, reenter_timer_cb), 0);
  timer.data = results;
  ck_assert_int_eq(ax_timer_start(&timer, 0, 0), 0);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(results[3], 1);
  ck_assert_int_eq(results[0], -EBUSY);
  ck_assert_int_eq(results[1], -EBUSY);
  ck_assert_int_eq(results[2], -EBUSY);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* Two threads call ax_loop_run_once on one loop at once (misuse): one of
 * them must get -EBUSY each time, never a dispatch beside the other's.
 * The check of `running` and its setting were two steps: a newcomer saw
 * 376 overlapping callbacks in 2 s. */
static atomic_int race_inside, race_overlaps;
static atomic_bool race_stop;

static void race_cb(ax_io_t *io, unsigned revents) {
  (void)io;
  (void)revents;
  if (atomic_fetch_add(&race_inside, 1) != 0)
    atomic_fetch_add(&race_overlaps, 1);
  for (volatile int i = 0; i < 200; i++) {
  }
  atomic_fetch_sub(&race_inside, 1);
}

static atomic_int race_go;

static void *race_runner(void *arg) {
  ax_loop_t *loop = arg;
  atomic_fetch_add(&race_go, 1);
  while (atomic_load(&race_go) < 2) { /* both start together */
  }
  int64_t end = ax_now() + AX_NSEC_PER_SEC;
  while (ax_now() < end) {
    int rc = ax_loop_run_once(loop, 0);
    if (rc < 0 && rc != -EBUSY)
      atomic_store(&race_stop, true); /* an unexpected error: reported below */
  }
  return NULL;
}

START_TEST(test_loop_run_two_threads_busy) {
  ax_loop_t *loop = test_loop_new();
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  ck_assert_int_eq(write(p[1], "x", 1), 1); /* readable for good: every pass dispatches */
  ax_io_t io;
  ck_assert_int_eq(ax_io_init(loop, &io, p[0], race_cb), 0);
  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);
  atomic_store(&race_inside, 0);
  atomic_store(&race_overlaps, 0);
  atomic_store(&race_stop, false);
  atomic_store(&race_go, 0);
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, race_runner, loop), 0);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
  ck_assert(!atomic_load(&race_stop));
  ck_assert_int_eq(atomic_load(&race_overlaps), 0);
  ax_loop_adopt(loop);
  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  close(p[0]);
  close(p[1]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_loop_stop()                                                            */

START_TEST(test_loop_stop_from_callback) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t stopper, keeper;
  int stops = 0, kept = 0;
  ck_assert_int_eq(ax_timer_init(loop, &stopper, stop_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &keeper, count_timer_cb), 0);
  stopper.data = &stops;
  keeper.data = &kept;
  ck_assert_int_eq(ax_timer_start(&stopper, 1 * AX_NSEC_PER_MSEC, 0), 0);
  ck_assert_int_eq(ax_timer_start(&keeper, 10 * AX_NSEC_PER_SEC, 0), 0);

  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_eq(stops, 1);
  ck_assert_int_eq(kept, 0);
  /* The stop request was consumed: the next run times out normally. */
  ck_assert_int_eq(ax_loop_run(loop, 20 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);

  ck_assert_int_eq(ax_timer_stop(&keeper), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_stop_before_run) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t due, keeper;
  int due_fired = 0, kept = 0;
  ck_assert_int_eq(ax_timer_init(loop, &due, count_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &keeper, count_timer_cb), 0);
  due.data = &due_fired;
  keeper.data = &kept;
  ck_assert_int_eq(ax_timer_start(&due, 0, 0), 0);
  ck_assert_int_eq(ax_timer_start(&keeper, 10 * AX_NSEC_PER_SEC, 0), 0);

  ax_loop_stop(loop);
  int64_t start = ax_now();
  /* One non-blocking pass (the due timer fires), then AX_RUN_STOPPED. */
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_lt(ax_now() - start, 2 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(due_fired, 1);
  ck_assert_int_eq(kept, 0);
  /* The request was consumed. */
  ck_assert_int_eq(ax_loop_run(loop, 20 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);

  /* Several stops before a run still give one stopped run. */
  ax_loop_stop(loop);
  ax_loop_stop(loop);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_eq(ax_loop_run(loop, 20 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);

  ck_assert_int_eq(ax_timer_stop(&keeper), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* The other thread of test_loop_stop_from_thread: waits, then stops the loop. */
static void *stop_later_thread(void *arg) {
  test_sleep_ms(50);
  ax_loop_stop(arg);
  return NULL;
}

START_TEST(test_loop_stop_from_thread) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t keeper;
  int kept = 0;
  ck_assert_int_eq(ax_timer_init(loop, &keeper, count_timer_cb), 0);
  keeper.data = &kept;
  ck_assert_int_eq(ax_timer_start(&keeper, 30 * AX_NSEC_PER_SEC, 0), 0);

  pthread_t thread;
  int64_t start = ax_now();
  ck_assert_int_eq(pthread_create(&thread, NULL, stop_later_thread, loop), 0);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  int64_t elapsed = ax_now() - start;
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_int_lt(elapsed, 5 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(kept, 0);

  ck_assert_int_eq(ax_timer_stop(&keeper), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Waking without stopping, and keeping a loop alive                          */

static void *wake_later_thread(void *arg) {
  test_sleep_ms(50);
  ax_loop_wake(arg);
  return NULL;
}

/* AX_LOOP_KEEP_ALIVE: with no watcher, run_once waits (where it would
 * return AX_RUN_IDLE at once) until ax_loop_wake, which ends the wait but
 * stops nothing; run waits until a stop. */
START_TEST(test_loop_keep_alive_and_wake) {
  ax_loop_opts_t o = {.flags = AX_LOOP_KEEP_ALIVE};
  ax_loop_t *loop = NULL;
  ck_assert_int_eq(ax_loop_new(&o, &loop), 0);
  ck_assert_int_eq(ax_loop_run_once(loop, 0), AX_RUN_TIMEOUT);
  pthread_t thread;
  int64_t start = ax_now();
  ck_assert_int_eq(pthread_create(&thread, NULL, wake_later_thread, loop), 0);
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_TIMEOUT);
  int64_t waited = ax_now() - start;
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_int_ge(waited, 40 * AX_NSEC_PER_MSEC);
  ck_assert_int_lt(waited, 5 * AX_NSEC_PER_SEC);
  /* A wake before the wait is not lost: the wait returns at once. */
  ax_loop_wake(loop);
  start = ax_now();
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_TIMEOUT);
  ck_assert_int_lt(ax_now() - start, 5 * AX_NSEC_PER_SEC);
  /* run: a wake does not end it, a stop does. */
  ck_assert_int_eq(pthread_create(&thread, NULL, wake_later_thread, loop), 0);
  ck_assert_int_eq(ax_loop_run(loop, 200 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_int_eq(pthread_create(&thread, NULL, stop_later_thread, loop), 0);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  /* Without the flag the same loop would have nothing to wait for. */
  ck_assert_int_eq(ax_loop_new(NULL, &loop), 0);
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  o.flags = 0x80;
  ck_assert_int_eq(ax_loop_new(&o, &loop), -EINVAL);
}
END_TEST

/* A wake-up from another thread during a pass whose callback then stops
 * the run: the run returns AX_RUN_STOPPED, and the wake-up still ends the
 * next wait.  Taking the stop used to drain the loop's eventfd, which
 * holds both, and the next wait slept its whole timeout. */
static void *wake_now_thread(void *arg) {
  ax_loop_wake(arg);
  return NULL;
}

static void wake_then_stop_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  char b[8];
  (void)!read(io->fd, b, sizeof b);
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, wake_now_thread, io->loop), 0);
  ck_assert_int_eq(pthread_join(thread, NULL), 0); /* its wake-up is in */
  ax_loop_stop(io->loop);
}

START_TEST(test_loop_wake_survives_stop) {
  ax_loop_opts_t o = {.flags = AX_LOOP_KEEP_ALIVE};
  ax_loop_t *loop = NULL;
  ck_assert_int_eq(ax_loop_new(&o, &loop), 0);
  int p[2];
  ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  ax_io_t io;
  ck_assert_int_eq(ax_io_init(loop, &io, p[0], wake_then_stop_cb), 0);
  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);
  ck_assert_int_eq((int)write(p[1], "x", 1), 1);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run_once(loop, 2 * AX_NSEC_PER_SEC), AX_RUN_TIMEOUT);
  int64_t waited = ax_now() - start;
  ck_assert_msg(waited < AX_NSEC_PER_SEC, "the wake-up was lost: waited %lld ms (%s)",
                (long long)(waited / AX_NSEC_PER_MSEC), ax_loop_backend(loop));
  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  close(p[0]);
  close(p[1]);
}
END_TEST

/* The loop that the SIGALRM handler of test_loop_stop_from_signal_handler stops. */
static ax_loop_t *alarm_loop;

static void stop_on_alarm(int signo) {
  (void)signo;
  ax_loop_stop(alarm_loop);
}

START_TEST(test_loop_stop_from_signal_handler) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t keeper;
  int kept = 0;
  ck_assert_int_eq(ax_timer_init(loop, &keeper, count_timer_cb), 0);
  keeper.data = &kept;
  ck_assert_int_eq(ax_timer_start(&keeper, 30 * AX_NSEC_PER_SEC, 0), 0);

  alarm_loop = loop;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = stop_on_alarm;
  sigemptyset(&action.sa_mask);
  ck_assert_int_eq(sigaction(SIGALRM, &action, NULL), 0);
  struct itimerval alarm_in = {{0, 0}, {0, 50000}};
  ck_assert_int_eq(setitimer(ITIMER_REAL, &alarm_in, NULL), 0);

  int64_t start = ax_now();
  /* The handler interrupts the wait (EINTR is never returned) and its stop
   * request must end the run. */
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_lt(ax_now() - start, 5 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(kept, 0);

  ck_assert_int_eq(ax_timer_stop(&keeper), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_loop_run_once()                                                        */

START_TEST(test_loop_run_once_idle_without_watchers) {
  ax_loop_t *loop = test_loop_new();
  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(ax_loop_run_once(loop, 1000 * AX_NSEC_PER_MSEC), AX_RUN_IDLE);
  ck_assert_int_eq(ax_loop_run_once(loop, 0), AX_RUN_IDLE);
  /* Nothing to wait for: no waiting. */
  ck_assert_int_lt(ax_now() - start, 500 * AX_NSEC_PER_MSEC);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_run_once_arguments) {
  ck_assert_int_eq(ax_loop_run_once(NULL, 0), -EINVAL);
  ax_loop_t *loop = test_loop_new();
  ck_assert_int_eq(ax_loop_run_once(loop, -2), -EINVAL);
  ck_assert_int_eq(ax_loop_run_once(loop, INT64_MIN), -EINVAL);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_run_once_waits_at_most_timeout) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t timer;
  int fired = 0;
  ck_assert_int_eq(ax_timer_init(loop, &timer, count_timer_cb), 0);
  timer.data = &fired;
  ck_assert_int_eq(ax_timer_start(&timer, 10 * AX_NSEC_PER_SEC, 0), 0);

  /* Nothing happens: one pass waits for the timeout, then returns. */
  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run_once(loop, 50 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);
  int64_t elapsed = ax_now() - start;
  ck_assert_int_ge(elapsed, 40 * AX_NSEC_PER_MSEC);
  ck_assert_int_lt(elapsed, 5 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(fired, 0);

  /* Zero: no waiting at all. */
  start = ax_now();
  for (int i = 0; i < 10; i++)
    ck_assert_int_eq(ax_loop_run_once(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_lt(ax_now() - start, 1 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(fired, 0);
  ck_assert(ax_timer_active(&timer));

  ck_assert_int_eq(ax_timer_stop(&timer), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_run_once_runs_due_timers) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t soon, later, keeper;
  int soon_fired = 0, later_fired = 0, kept = 0;
  ck_assert_int_eq(ax_timer_init(loop, &soon, count_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &later, count_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &keeper, count_timer_cb), 0);
  soon.data = &soon_fired;
  later.data = &later_fired;
  keeper.data = &kept;
  ck_assert_int_eq(ax_timer_start(&keeper, 10 * AX_NSEC_PER_SEC, 0), 0);

  /* A timer already due runs in a non-blocking pass. */
  ck_assert_int_eq(ax_timer_start(&soon, 0, 0), 0);
  ck_assert_int_eq(ax_loop_run_once(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(soon_fired, 1);

  /* AX_FOREVER waits until the next timer is due, and that pass runs it. */
  ck_assert_int_eq(ax_timer_start(&later, 20 * AX_NSEC_PER_MSEC, 0), 0);
  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_TIMEOUT);
  int64_t elapsed = ax_now() - start;
  ck_assert_int_eq(later_fired, 1);
  ck_assert_int_ge(elapsed, 15 * AX_NSEC_PER_MSEC);
  ck_assert_int_lt(elapsed, 5 * AX_NSEC_PER_SEC);

  /* A timeout longer than the next timer: the pass ends with the timer. */
  ck_assert_int_eq(ax_timer_start(&later, 20 * AX_NSEC_PER_MSEC, 0), 0);
  start = ax_now();
  ck_assert_int_eq(ax_loop_run_once(loop, 5 * AX_NSEC_PER_SEC), AX_RUN_TIMEOUT);
  ck_assert_int_eq(later_fired, 2);
  ck_assert_int_lt(ax_now() - start, 4 * AX_NSEC_PER_SEC);

  /* The last watcher fires in the pass: nothing is left after it. */
  ck_assert_int_eq(ax_timer_stop(&keeper), 0);
  ck_assert_int_eq(ax_timer_start(&soon, 5 * AX_NSEC_PER_MSEC, 0), 0);
  test_assert_pass_ended(ax_loop_run_once(loop, AX_FOREVER));
  ck_assert_int_eq(soon_fired, 2);
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(kept, 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* Writes one byte to the pipe end in *arg after 50 ms. */
static void *write_later_thread(void *arg) {
  test_sleep_ms(50);
  test_write_byte(*(int *)arg);
  return NULL;
}

START_TEST(test_loop_run_once_fd_event) {
  ax_loop_t *loop = test_loop_new();
  int fds[2];
  test_pipe(fds);
  ax_io_t io;
  int io_calls = 0;
  ck_assert_int_eq(ax_io_init(loop, &io, fds[0], count_io_cb), 0);
  io.data = &io_calls;
  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);

  /* An fd event during the wait ends it: one callback, one pass. */
  pthread_t thread;
  int64_t start = ax_now();
  ck_assert_int_eq(pthread_create(&thread, NULL, write_later_thread, &fds[1]), 0);
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_TIMEOUT);
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_int_eq(io_calls, 1);
  ck_assert_int_lt(ax_now() - start, 5 * AX_NSEC_PER_SEC);
  /* Still readable (level-triggered): each pass calls it once more. */
  ck_assert_int_eq(ax_loop_run_once(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(io_calls, 2);
  ck_assert_uint_eq(test_drain(fds[0]), 1);
  ck_assert_int_eq(ax_loop_run_once(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(io_calls, 2);

  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

START_TEST(test_loop_run_once_stop) {
  ax_loop_t *loop = test_loop_new();
  /* With no watcher at all, a pending stop is still reported, once. */
  ax_loop_stop(loop);
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_IDLE);

  ax_timer_t due, keeper;
  int due_fired = 0, kept = 0;
  ck_assert_int_eq(ax_timer_init(loop, &due, count_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &keeper, count_timer_cb), 0);
  due.data = &due_fired;
  keeper.data = &kept;
  ck_assert_int_eq(ax_timer_start(&keeper, 30 * AX_NSEC_PER_SEC, 0), 0);

  /* Stop before the pass: no waiting, due timers still run, consumed. */
  ck_assert_int_eq(ax_timer_start(&due, 0, 0), 0);
  ax_loop_stop(loop);
  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_lt(ax_now() - start, 2 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(due_fired, 1);
  ck_assert_int_eq(ax_loop_run_once(loop, 20 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);

  /* Stop from a callback in the pass. */
  ck_assert_int_eq(ax_timer_init(loop, &due, stop_timer_cb), 0);
  due.data = &due_fired;
  ck_assert_int_eq(ax_timer_start(&due, 1 * AX_NSEC_PER_MSEC, 0), 0);
  ck_assert_int_eq(ax_loop_run_once(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_eq(due_fired, 2);

  /* Stop from another thread wakes a blocked pass.  A pass waits "at
   * most" its timeout, so one may end early (say, on the wake-up left by
   * the stop above) before the one that sees the stop. */
  pthread_t thread;
  start = ax_now();
  ck_assert_int_eq(pthread_create(&thread, NULL, stop_later_thread, loop), 0);
  int rc, passes = 0;
  while ((rc = ax_loop_run_once(loop, AX_FOREVER)) == AX_RUN_TIMEOUT && passes < 3)
    passes++;
  ck_assert_int_eq(rc, AX_RUN_STOPPED);
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_int_lt(ax_now() - start, 5 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(kept, 0);

  ck_assert_int_eq(ax_timer_stop(&keeper), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* A timer callback that calls ax_loop_run_once() on its own running loop. */
static void reenter_once_cb(ax_timer_t *timer) {
  int *result = timer->data;
  *result = ax_loop_run_once(timer->loop, 0);
}

START_TEST(test_loop_timeout_reports_next_timer) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t near, far;
  ck_assert(ax_loop_timeout(NULL) == AX_FOREVER);
  ck_assert(ax_loop_timeout(loop) == AX_FOREVER); /* no timer */
  ck_assert_int_eq(ax_timer_init(loop, &near, count_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &far, count_timer_cb), 0);
  ax_loop_update_time(loop);
  ck_assert_int_eq(ax_timer_start(&far, 10 * AX_NSEC_PER_SEC, 0), 0);
  ck_assert_int_eq(ax_timer_start(&near, 2 * AX_NSEC_PER_SEC, 0), 0);
  /* Counted from the cached time, which has not moved since the starts. */
  ck_assert(ax_loop_timeout(loop) == 2 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(ax_timer_stop(&near), 0);
  ck_assert(ax_loop_timeout(loop) == 10 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(ax_timer_restart(&near, 0, 0), 0);
  ck_assert(ax_loop_timeout(loop) == 0); /* due now */
  ck_assert_int_eq(ax_timer_stop(&near), 0);
  ck_assert_int_eq(ax_timer_stop(&far), 0);
  ck_assert(ax_loop_timeout(loop) == AX_FOREVER);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_run_once_not_reentrant) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t timer;
  int result = 0;
  ck_assert_int_eq(ax_timer_init(loop, &timer, reenter_once_cb), 0);
  timer.data = &result;
  ck_assert_int_eq(ax_timer_start(&timer, 0, 0), 0);
  test_assert_pass_ended(ax_loop_run_once(loop, 0));
  ck_assert_int_eq(result, -EBUSY);
  /* And from inside ax_loop_run() too. */
  result = 0;
  ck_assert_int_eq(ax_timer_start(&timer, 0, 0), 0);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(result, -EBUSY);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* ax_loop_close() and ax_loop_active()                                      */

START_TEST(test_loop_close_busy_and_force) {
  ax_loop_t *loop = test_loop_new();
  int fds[2];
  test_pipe(fds);
  sigset_t before, during, after;
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &before), 0);
  ck_assert(!sigismember(&before, SIGUSR1));

  ax_timer_t timer;
  ax_io_t io;
  ax_signal_t sig;
  ax_event_t ev;
  int fired = 0, io_calls = 0;
  ck_assert_int_eq(ax_timer_init(loop, &timer, count_timer_cb), 0);
  timer.data = &fired;
  ck_assert_int_eq(ax_io_init(loop, &io, fds[0], count_io_cb), 0);
  io.data = &io_calls;
  ck_assert_int_eq(ax_signal_init(loop, &sig, ignore_signal_cb), 0);
  ck_assert_int_eq(ax_event_init(loop, &ev, ignore_event_cb), 0);

  ck_assert_int_eq(ax_timer_start(&timer, 10 * AX_NSEC_PER_SEC, 0), 0);
  /* One active watcher is enough to refuse, and the refusal frees nothing. */
  ck_assert_int_eq(ax_loop_close(loop, 0), -EBUSY);
  ck_assert(ax_timer_active(&timer));
  ck_assert_uint_eq(ax_loop_active(loop), 1);

  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);
  ck_assert_int_eq(ax_signal_start(&sig, SIGUSR1), 0);
  ck_assert_int_eq(ax_event_start(&ev), 0);
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &during), 0);
  ck_assert(sigismember(&during, SIGUSR1));
  ck_assert_uint_eq(ax_loop_active(loop), 4);
  ck_assert_int_eq(ax_loop_close(loop, 0), -EBUSY);

  /* The loop still works after the refusal. */
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_uint_eq(ax_loop_active(loop), 4);

  int event_fd = ev.fd;
  ck_assert(test_fd_open(event_fd));
  ck_assert_int_eq(ax_loop_close(loop, AX_CLOSE_FORCE), 0);
  /* Every watcher was stopped; their memory is still ours. */
  ck_assert(!ax_timer_active(&timer));
  ck_assert(!ax_io_active(&io));
  ck_assert(!ax_signal_active(&sig));
  ck_assert(!ax_event_active(&ev));
  /* Stopping the last signal watcher restored the mask. */
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &after), 0);
  ck_assert(!sigismember(&after, SIGUSR1));
  /* The event's eventfd outlives the loop until ax_event_close(). */
  ck_assert(test_fd_open(event_fd));
  ck_assert_int_eq(ax_event_close(&ev), 0);
  ck_assert(!test_fd_open(event_fd));
  /* axon never closes the caller's fd. */
  ck_assert(test_fd_open(fds[0]));
  ck_assert_int_eq(fired, 0);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

START_TEST(test_loop_close_force_without_watchers) {
  ax_loop_t *loop = test_loop_new();
  ck_assert_int_eq(ax_loop_close(loop, AX_CLOSE_FORCE), 0);
  loop = test_loop_new();
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_loop_active_counts) {
  ax_loop_t *loop = test_loop_new();
  int fds[2];
  test_pipe(fds);
  ax_timer_t once, repeat;
  ax_io_t io;
  ax_signal_t sig;
  ax_event_t ev;
  int once_fired = 0, repeat_fired = 0, io_calls = 0;
  ck_assert_int_eq(ax_timer_init(loop, &once, count_timer_cb), 0);
  ck_assert_int_eq(ax_timer_init(loop, &repeat, count_timer_cb), 0);
  ck_assert_int_eq(ax_io_init(loop, &io, fds[0], count_io_cb), 0);
  ck_assert_int_eq(ax_signal_init(loop, &sig, ignore_signal_cb), 0);
  ck_assert_int_eq(ax_event_init(loop, &ev, ignore_event_cb), 0);
  once.data = &once_fired;
  repeat.data = &repeat_fired;
  io.data = &io_calls;
  /* Initialised watchers are not active. */
  ck_assert_uint_eq(ax_loop_active(loop), 0);

  ck_assert_int_eq(ax_timer_start(&once, 0, 0), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 1);
  ck_assert_int_eq(ax_timer_start(&repeat, 0, 10 * AX_NSEC_PER_SEC), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 2);
  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 3);
  ck_assert_int_eq(ax_signal_start(&sig, SIGUSR2), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 4);
  ck_assert_int_eq(ax_event_start(&ev), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 5);

  /* A fired one-shot timer no longer counts; a repeating one still does. */
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(once_fired, 1);
  ck_assert_int_eq(repeat_fired, 1);
  ck_assert_uint_eq(ax_loop_active(loop), 4);

  /* Stopping an inactive watcher changes nothing. */
  ck_assert_int_eq(ax_timer_stop(&once), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 4);

  ck_assert_int_eq(ax_io_modify(&io, AX_READ | AX_WRITE), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 4);
  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 3);
  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 3);
  ck_assert_int_eq(ax_signal_stop(&sig), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 2);
  ck_assert_int_eq(ax_event_stop(&ev), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 1);
  ck_assert_int_eq(ax_timer_restart(&repeat, 10 * AX_NSEC_PER_SEC, 0), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 1);
  ck_assert_int_eq(ax_timer_stop(&repeat), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 0);

  /* An event that is active when closed stops counting. */
  ck_assert_int_eq(ax_event_start(&ev), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 1);
  ck_assert_int_eq(ax_event_close(&ev), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 0);

  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Embedding in a host's poll loop: ax_loop_fd                               */

typedef struct host {
  int fired_io, fired_sig, fired_timer;
} host_t;

static void host_io_cb(ax_io_t *io, unsigned revents) {
  (void)revents;
  host_t *h = io->data;
  char b;
  while (read(io->fd, &b, 1) == 1)
    h->fired_io++;
}

static void host_sig_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  (void)info;
  ((host_t *)sig->data)->fired_sig++;
}

static void host_timer_cb(ax_timer_t *t) { ((host_t *)t->data)->fired_timer++; }

/* One turn of a host's loop: poll() on the loop's fd for at most what
 * ax_loop_timeout() says (capped at cap_ms, so a broken fd fails the test
 * instead of hanging it), then one non-blocking pass.  Returns poll's
 * revents (0: it timed out) and the pass's result in *run. */
static short host_turn(ax_loop_t *loop, int cap_ms, int *run) {
  int64_t t = ax_loop_timeout(loop);
  int ms = t == AX_FOREVER ? cap_ms : (int)((t + 999999) / 1000000);
  if (ms > cap_ms)
    ms = cap_ms;
  struct pollfd pfd = {.fd = ax_loop_fd(loop), .events = POLLIN};
  int n = poll(&pfd, 1, ms);
  ck_assert_int_ge(n, 0);
  *run = ax_loop_run_once(loop, 0);
  return n > 0 ? pfd.revents : 0;
}

typedef struct later {
  ax_loop_t *loop;
  int fd;     /* write a byte here, or -1 */
  bool stop;  /* then ax_loop_stop, else ax_loop_wake */
} later_t;

static void *act_later(void *arg) {
  later_t *l = arg;
  test_sleep_ms(30);
  if (l->fd >= 0)
    test_write_byte(l->fd);
  else if (l->stop)
    ax_loop_stop(l->loop);
  else
    ax_loop_wake(l->loop);
  return NULL;
}

/* A host that waits only on ax_loop_fd() (and ax_loop_timeout()) sees every
 * kind of work: an fd written by another thread, a signal, a timer, a wake
 * and a stop; each wakes its poll() as it happens, never after the cap. */
START_TEST(test_loop_backend_fd_embeds) {
  ax_loop_t *loop = test_loop_new();
  ck_assert_int_eq(ax_loop_fd(NULL), -EINVAL);
  if (test_loop_is_poll(loop)) {
    ck_assert_int_eq(ax_loop_fd(loop), -ENOTSUP);
    ck_assert_int_eq(ax_loop_close(loop, 0), 0);
    return;
  }
  int fd = ax_loop_fd(loop);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ax_loop_fd(loop), fd);
  host_t h = {0};
  int p[2];
  test_pipe(p);
  ax_io_t io;
  ck_assert_int_eq(ax_io_init(loop, &io, p[0], host_io_cb), 0);
  io.data = &h;
  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);
  int run;
  /* Nothing to do: the host's poll times out (here at its 50 ms cap). */
  ck_assert_int_eq(host_turn(loop, 50, &run), 0);
  /* A byte written by another thread while the host sleeps. */
  later_t l = {.loop = loop, .fd = p[1]};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, act_later, &l), 0);
  ck_assert(host_turn(loop, 10000, &run) & POLLIN);
  pthread_join(th, NULL);
  ck_assert_int_eq(h.fired_io, 1);
  /* A signal: its signalfd is behind the same fd. */
  ax_signal_t sig;
  ck_assert_int_eq(ax_signal_init(loop, &sig, host_sig_cb), 0);
  sig.data = &h;
  ck_assert_int_eq(ax_signal_start(&sig, SIGUSR1), 0);
  ck_assert_int_eq(raise(SIGUSR1), 0);
  ck_assert(host_turn(loop, 10000, &run) & POLLIN);
  ck_assert_int_eq(h.fired_sig, 1);
  /* A timer: not on the fd, but ax_loop_timeout() bounds the host's wait. */
  ax_timer_t timer;
  ck_assert_int_eq(ax_timer_init(loop, &timer, host_timer_cb), 0);
  timer.data = &h;
  ck_assert_int_eq(ax_timer_start(&timer, 20 * AX_NSEC_PER_MSEC, 0), 0);
  for (int i = 0; i < 100 && h.fired_timer == 0; i++)
    (void)host_turn(loop, 10000, &run);
  ck_assert_int_eq(h.fired_timer, 1);
  /* A wake from another thread ends the host's wait; a stop does too, and
   * the pass then reports it. */
  l = (later_t){.loop = loop, .fd = -1};
  ck_assert_int_eq(pthread_create(&th, NULL, act_later, &l), 0);
  ck_assert(host_turn(loop, 10000, &run) & POLLIN);
  pthread_join(th, NULL);
  l = (later_t){.loop = loop, .fd = -1, .stop = true};
  ck_assert_int_eq(pthread_create(&th, NULL, act_later, &l), 0);
  ck_assert(host_turn(loop, 10000, &run) & POLLIN);
  pthread_join(th, NULL);
  ck_assert_int_eq(run, AX_RUN_STOPPED);
  ck_assert_int_eq(ax_signal_stop(&sig), 0);
  ck_assert_int_eq(ax_io_stop(&io), 0);
  close(p[0]);
  close(p[1]);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

static Suite *loop_suite(void) {
  Suite *suite = suite_create("loop");

  TCase *tc = tcase_create("new");
  tcase_add_test(tc, test_loop_new_close);
  tcase_add_test(tc, test_loop_new_explicit_backend);
  tcase_add_test(tc, test_loop_now_and_update_time);
  suite_add_tcase(suite, tc);

  tc = tcase_create("run");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_loop_run_idle_without_watchers);
  tcase_add_test(tc, test_loop_run_idle_after_last_watcher);
  tcase_add_test(tc, test_loop_run_timeout_on_time);
  tcase_add_test(tc, test_loop_run_zero_is_one_pass);
  tcase_add_test(tc, test_loop_run_not_reentrant);
  tcase_add_test(tc, test_loop_run_two_threads_busy);
  suite_add_tcase(suite, tc);

  tc = tcase_create("stop");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_loop_stop_from_callback);
  tcase_add_test(tc, test_loop_stop_before_run);
  tcase_add_test(tc, test_loop_stop_from_thread);
  tcase_add_test(tc, test_loop_keep_alive_and_wake);
  tcase_add_test(tc, test_loop_wake_survives_stop);
  tcase_add_test(tc, test_loop_stop_from_signal_handler);
  suite_add_tcase(suite, tc);

  tc = tcase_create("run_once");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_loop_run_once_idle_without_watchers);
  tcase_add_test(tc, test_loop_run_once_arguments);
  tcase_add_test(tc, test_loop_run_once_waits_at_most_timeout);
  tcase_add_test(tc, test_loop_run_once_runs_due_timers);
  tcase_add_test(tc, test_loop_run_once_fd_event);
  tcase_add_test(tc, test_loop_run_once_stop);
  tcase_add_test(tc, test_loop_run_once_not_reentrant);
  tcase_add_test(tc, test_loop_timeout_reports_next_timer);
  tcase_add_test(tc, test_loop_backend_fd_embeds);
  suite_add_tcase(suite, tc);

  tc = tcase_create("close");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_loop_close_busy_and_force);
  tcase_add_test(tc, test_loop_close_force_without_watchers);
  tcase_add_test(tc, test_loop_active_counts);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(loop_suite());
}
