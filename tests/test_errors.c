/* Check suite for error paths: every bad argument in loop.h is -EINVAL and changes nothing; error names and strings. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>

#include "axon_test.h"

/* The byte that fills watcher structs before a failing call, so the test can
 * see whether the call wrote to them. */
#define POISON 0xa5

static int timer_calls;
static int io_calls;
static int signal_calls;
static int event_calls;

static void timer_cb(ax_timer_t *timer) {
  (void)timer;
  timer_calls++;
}

static void io_cb(ax_io_t *io, unsigned revents) {
  (void)io;
  (void)revents;
  io_calls++;
}

static void signal_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  (void)sig;
  (void)info;
  signal_calls++;
}

static void event_cb(ax_event_t *ev, uint64_t count) {
  (void)ev;
  (void)count;
  event_calls++;
}

/* The lowest free fd number: a failing call that leaked an fd moves it. */
static int lowest_free_fd(void) {
  int fd = dup(STDERR_FILENO);
  ck_assert_int_ge(fd, 0);
  close(fd);
  return fd;
}

/* True when the n bytes at p all hold POISON. */
static bool untouched(const void *p, size_t n) {
  const unsigned char *bytes = p;
  for (size_t i = 0; i < n; i++) {
    if (bytes[i] != POISON) {
      return false;
    }
  }
  return true;
}

/* The calling thread's signal mask. */
static sigset_t current_mask(void) {
  sigset_t mask;
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &mask), 0);
  return mask;
}

/* True when both masks agree on every signal 1..SIGRTMAX. */
static bool same_mask(const sigset_t *a, const sigset_t *b) {
  for (int signo = 1; signo <= SIGRTMAX; signo++) {
    if (sigismember(a, signo) != sigismember(b, signo)) {
      return false;
    }
  }
  return true;
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                  */

START_TEST(test_errors_loop_new) {
  int sentinel;
  ax_loop_t *const marker = (ax_loop_t *)(void *)&sentinel;
  ax_loop_t *loop = marker;
  int free_fd = lowest_free_fd();
  ax_loop_opts_t opts;

  ck_assert_int_eq(ax_loop_new(NULL, NULL), -EINVAL);
  memset(&opts, 0, sizeof opts);
  ck_assert_int_eq(ax_loop_new(&opts, NULL), -EINVAL);

  opts.backend = (ax_backend_t)4;
  ck_assert_int_eq(ax_loop_new(&opts, &loop), -EINVAL);
  ck_assert_ptr_eq(loop, marker);
  opts.backend = (ax_backend_t)-1;
  ck_assert_int_eq(ax_loop_new(&opts, &loop), -EINVAL);
  ck_assert_ptr_eq(loop, marker);
  opts.backend = (ax_backend_t)1000;
  ck_assert_int_eq(ax_loop_new(&opts, &loop), -EINVAL);
  ck_assert_ptr_eq(loop, marker);

  memset(&opts, 0, sizeof opts);
  opts.max_events = 4097;
  ck_assert_int_eq(ax_loop_new(&opts, &loop), -EINVAL);
  ck_assert_ptr_eq(loop, marker);
  opts.max_events = UINT_MAX;
  ck_assert_int_eq(ax_loop_new(&opts, &loop), -EINVAL);
  ck_assert_ptr_eq(loop, marker);

  /* An unknown AXON_BACKEND value with the default backend. */
  ck_assert_int_eq(setenv("AXON_BACKEND", "kqueue", 1), 0);
  ck_assert_int_eq(ax_loop_new(NULL, &loop), -EINVAL);
  ck_assert_ptr_eq(loop, marker);
  memset(&opts, 0, sizeof opts);
  ck_assert_int_eq(ax_loop_new(&opts, &loop), -EINVAL);
  ck_assert_ptr_eq(loop, marker);

  /* No failed attempt kept an fd open. */
  ck_assert_int_eq(lowest_free_fd(), free_fd);
}
END_TEST

START_TEST(test_errors_loop_run_and_close) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t due;
  timer_calls = 0;
  ck_assert_int_eq(ax_timer_init(loop, &due, timer_cb), 0);
  ck_assert_int_eq(ax_timer_start(&due, 0, 0), 0);

  ck_assert_int_eq(ax_loop_run(NULL, 0), -EINVAL);
  ck_assert_int_eq(ax_loop_run(NULL, AX_FOREVER), -EINVAL);
  ck_assert_int_eq(ax_loop_run(loop, -2), -EINVAL);
  ck_assert_int_eq(ax_loop_run(loop, -AX_NSEC_PER_SEC), -EINVAL);
  ck_assert_int_eq(ax_loop_run(loop, INT64_MIN), -EINVAL);
  /* The refused runs did not run the due timer. */
  ck_assert_int_eq(timer_calls, 0);
  ck_assert(ax_timer_active(&due));

  ck_assert_int_eq(ax_loop_close(NULL, 0), -EINVAL);
  ck_assert_int_eq(ax_loop_close(NULL, AX_CLOSE_FORCE), -EINVAL);
  ck_assert_int_eq(ax_loop_close(loop, 2), -EINVAL);
  ck_assert_int_eq(ax_loop_close(loop, 0x80000000u), -EINVAL);
  /* Unknown flags next to AX_CLOSE_FORCE must not stop anything either. */
  ck_assert_int_eq(ax_loop_close(loop, AX_CLOSE_FORCE | 2), -EINVAL);
  ck_assert(ax_timer_active(&due));
  ck_assert_uint_eq(ax_loop_active(loop), 1);

  /* A stop for a NULL loop is ignored rather than a crash. */
  ax_loop_stop(NULL);

  /* The loop still works. */
  test_assert_pass_ended(ax_loop_run(loop, 0));
  ck_assert_int_eq(timer_calls, 1);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* fd watchers                                                               */

START_TEST(test_errors_io) {
  ax_loop_t *loop = test_loop_new();
  int fds[2];
  test_pipe(fds);
  ax_io_t io;
  io_calls = 0;

  /* Failing initialisations leave the struct alone. */
  memset(&io, POISON, sizeof io);
  ck_assert_int_eq(ax_io_init(NULL, &io, fds[0], io_cb), -EINVAL);
  ck_assert(untouched(&io, sizeof io));
  ck_assert_int_eq(ax_io_init(loop, NULL, fds[0], io_cb), -EINVAL);
  ck_assert_int_eq(ax_io_init(loop, &io, fds[0], NULL), -EINVAL);
  ck_assert(untouched(&io, sizeof io));
  ck_assert_int_eq(ax_io_init(loop, &io, -1, io_cb), -EINVAL);
  ck_assert(untouched(&io, sizeof io));
  ck_assert_int_eq(ax_io_init(loop, &io, INT_MIN, io_cb), -EINVAL);
  ck_assert(untouched(&io, sizeof io));

  ck_assert_int_eq(ax_io_init(loop, &io, fds[0], io_cb), 0);
  ck_assert_int_eq(ax_io_start(NULL, AX_READ), -EINVAL);
  ck_assert_int_eq(ax_io_start(&io, 0), -EINVAL);
  ck_assert_int_eq(ax_io_start(&io, AX_EDGE), -EINVAL);
  ck_assert_int_eq(ax_io_start(&io, 0x200), -EINVAL);
  ck_assert_int_eq(ax_io_start(&io, AX_READ | 0x200), -EINVAL);
  ck_assert_int_eq(ax_io_start(&io, AX_READ | 0x80000000u), -EINVAL);
  ck_assert(!ax_io_active(&io));
  ck_assert_uint_eq(ax_loop_active(loop), 0);

  /* Modify of an inactive watcher. */
  ck_assert_int_eq(ax_io_modify(NULL, AX_READ), -EINVAL);
  ck_assert_int_eq(ax_io_modify(&io, AX_READ), -EINVAL);
  ck_assert(!ax_io_active(&io));

  /* Starting a started watcher, and bad modifies of it, change nothing. */
  ck_assert_int_eq(ax_io_start(&io, AX_READ), 0);
  ck_assert_int_eq(ax_io_start(&io, AX_READ), -EINVAL);
  ck_assert_int_eq(ax_io_start(&io, AX_WRITE), -EINVAL);
  ck_assert_int_eq(ax_io_modify(&io, 0), -EINVAL);
  ck_assert_int_eq(ax_io_modify(&io, AX_EDGE), -EINVAL);
  ck_assert_int_eq(ax_io_modify(&io, AX_READ | 0x400), -EINVAL);
  ck_assert(ax_io_active(&io));
  ck_assert_uint_eq(io.events, AX_READ);
  ck_assert_uint_eq(ax_loop_active(loop), 1);
  /* It still delivers exactly what it was started with. */
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(io_calls, 0);
  test_write_byte(fds[1]);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(io_calls, 1);

  ck_assert_int_eq(ax_io_stop(NULL), -EINVAL);
  ck_assert(!ax_io_active(NULL));
  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_int_eq(ax_io_stop(&io), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
  close(fds[0]);
  close(fds[1]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

START_TEST(test_errors_timer) {
  ax_loop_t *loop = test_loop_new();
  ax_timer_t timer;
  timer_calls = 0;

  memset(&timer, POISON, sizeof timer);
  ck_assert_int_eq(ax_timer_init(NULL, &timer, timer_cb), -EINVAL);
  ck_assert(untouched(&timer, sizeof timer));
  ck_assert_int_eq(ax_timer_init(loop, NULL, timer_cb), -EINVAL);
  ck_assert_int_eq(ax_timer_init(loop, &timer, NULL), -EINVAL);
  ck_assert(untouched(&timer, sizeof timer));

  ck_assert_int_eq(ax_timer_init(loop, &timer, timer_cb), 0);
  ck_assert_int_eq(ax_timer_start(NULL, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_start(&timer, -1, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_start(&timer, INT64_MIN, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_start(&timer, 0, -1), -EINVAL);
  ck_assert_int_eq(ax_timer_start(&timer, 0, INT64_MIN), -EINVAL);
  ck_assert_int_eq(ax_timer_start_at(NULL, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_start_at(&timer, -1, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_start_at(&timer, INT64_MIN, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_start_at(&timer, 0, -1), -EINVAL);
  ck_assert_int_eq(ax_timer_restart(NULL, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_restart(&timer, -1, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_restart(&timer, 0, -1), -EINVAL);
  ck_assert_int_eq(ax_timer_stop(NULL), -EINVAL);
  ck_assert(!ax_timer_active(&timer));
  ck_assert_uint_eq(ax_loop_active(loop), 0);

  /* Starting a started timer, or restarting it with bad arguments, leaves
   * it running with its deadline. */
  ck_assert_int_eq(ax_timer_start(&timer, 10 * AX_NSEC_PER_SEC, 0), 0);
  int64_t deadline = timer.deadline;
  ck_assert_int_eq(ax_timer_start(&timer, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_start_at(&timer, 0, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_restart(&timer, -1, 0), -EINVAL);
  ck_assert_int_eq(ax_timer_restart(&timer, 0, -5), -EINVAL);
  ck_assert(ax_timer_active(&timer));
  ck_assert_int_eq(timer.deadline, deadline);
  ck_assert_int_eq(timer.repeat, 0);
  ck_assert_uint_eq(ax_loop_active(loop), 1);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(timer_calls, 0);

  ck_assert_int_eq(ax_timer_stop(&timer), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Signals                                                                   */

START_TEST(test_errors_signal) {
  ax_loop_t *loop = test_loop_new();
  ax_signal_t sig;
  signal_calls = 0;
  int free_fd = lowest_free_fd();
  sigset_t before = current_mask();

  memset(&sig, POISON, sizeof sig);
  ck_assert_int_eq(ax_signal_init(NULL, &sig, signal_cb), -EINVAL);
  ck_assert(untouched(&sig, sizeof sig));
  ck_assert_int_eq(ax_signal_init(loop, NULL, signal_cb), -EINVAL);
  ck_assert_int_eq(ax_signal_init(loop, &sig, NULL), -EINVAL);
  ck_assert(untouched(&sig, sizeof sig));

  ck_assert_int_eq(ax_signal_init(loop, &sig, signal_cb), 0);
  ck_assert_int_eq(ax_signal_start(NULL, SIGUSR1), -EINVAL);
  const int bad[] = {0, -1, SIGKILL, SIGSTOP, 65, SIGRTMAX + 1, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_msg(ax_signal_start(&sig, bad[i]) == -EINVAL, "signo %d accepted", bad[i]);
    ck_assert(!ax_signal_active(&sig));
  }
  ck_assert_int_eq(ax_signal_stop(NULL), -EINVAL);
  ck_assert_uint_eq(ax_loop_active(loop), 0);
  sigset_t after = current_mask();
  ck_assert(same_mask(&before, &after));
  ck_assert_int_eq(lowest_free_fd(), free_fd);

  /* Starting a started watcher, even for another signal, changes nothing. */
  ck_assert_int_eq(ax_signal_start(&sig, SIGUSR1), 0);
  sigset_t started = current_mask();
  ck_assert_int_eq(ax_signal_start(&sig, SIGUSR1), -EINVAL);
  ck_assert_int_eq(ax_signal_start(&sig, SIGUSR2), -EINVAL);
  ck_assert(ax_signal_active(&sig));
  ck_assert_int_eq(sig.signo, SIGUSR1);
  after = current_mask();
  ck_assert(same_mask(&started, &after));
  ck_assert(!sigismember(&after, SIGUSR2));
  ck_assert_uint_eq(ax_loop_active(loop), 1);

  ck_assert_int_eq(ax_signal_stop(&sig), 0);
  after = current_mask();
  ck_assert(same_mask(&before, &after));
  ck_assert_int_eq(signal_calls, 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

START_TEST(test_errors_event) {
  ax_loop_t *loop = test_loop_new();
  ax_event_t ev;
  event_calls = 0;
  int free_fd = lowest_free_fd();

  memset(&ev, POISON, sizeof ev);
  ck_assert_int_eq(ax_event_init(NULL, &ev, event_cb), -EINVAL);
  ck_assert(untouched(&ev, sizeof ev));
  ck_assert_int_eq(ax_event_init(loop, NULL, event_cb), -EINVAL);
  ck_assert_int_eq(ax_event_init(loop, &ev, NULL), -EINVAL);
  ck_assert(untouched(&ev, sizeof ev));
  /* Failed initialisations created no eventfd. */
  ck_assert_int_eq(lowest_free_fd(), free_fd);

  ck_assert_int_eq(ax_event_start(NULL), -EINVAL);
  ck_assert_int_eq(ax_event_stop(NULL), -EINVAL);
  ck_assert_int_eq(ax_event_notify(NULL), -EINVAL);
  ck_assert_int_eq(ax_event_close(NULL), -EINVAL);
  ck_assert(!ax_event_active(NULL));

  ck_assert_int_eq(ax_event_init(loop, &ev, event_cb), 0);
  ck_assert_int_eq(ax_event_start(&ev), 0);
  ck_assert_int_eq(ax_event_start(&ev), -EINVAL);
  ck_assert(ax_event_active(&ev));
  ck_assert_uint_eq(ax_loop_active(loop), 1);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(event_calls, 0);

  ck_assert_int_eq(ax_event_close(&ev), 0);
  ck_assert_int_eq(ax_event_start(&ev), -EINVAL);
  ck_assert_int_eq(ax_event_notify(&ev), -EINVAL);
  ck_assert(!ax_event_active(&ev));
  ck_assert_uint_eq(ax_loop_active(loop), 0);
  ck_assert_int_eq(lowest_free_fd(), free_fd);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Error names and strings, version                                          */

START_TEST(test_errors_strings) {
  const char *unknown = ax_strerror(-99999);
  ck_assert_ptr_nonnull(unknown);
  ck_assert(strcasestr(unknown, "unknown") != NULL);
  const char *success = ax_strerror(0);
  ck_assert_ptr_nonnull(success);
  /* The name and the text of 0 agree. */
  ck_assert_str_eq(ax_err_name(0), "OK");
  ck_assert_msg(strncmp(success, "OK", 2) == 0, "ax_strerror(0) = \"%s\"", success);

  /* axon's own conditions read as axon means them, not as the C
   * library's text for the errno value axon borrowed. */
  static const struct {
    int code;
    const char *says, *libc;
  } own[] = {
      {-ESRCH, "actor", "No such process"},
      {-ENOTTY, "serial", "Inappropriate ioctl for device"},
      {-ENOBUFS, "write queue", "No buffer space available"},
      {-ETIMEDOUT, "deadline", "Connection timed out"},
      {-ESHUTDOWN, "runtime", "Cannot send after transport endpoint shutdown"},
  };
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
    const char *text = ax_strerror(own[i].code);
    ck_assert_msg(strstr(text, own[i].says) != NULL && strcmp(text, own[i].libc) != 0,
                  "ax_strerror(%s) = \"%s\"", ax_err_name(own[i].code), text);
  }

  const char *einval = ax_strerror(-EINVAL);
  ck_assert_ptr_nonnull(einval);
  ck_assert_uint_gt(strlen(einval), 0);
  ck_assert_str_ne(einval, unknown);
  ck_assert_str_ne(einval, success);
  ck_assert_str_eq(ax_err_name(-EINVAL), "EINVAL");

  /* Every code that loop.h documents has its own name and a description. */
  static const struct {
    int code;
    const char *name;
  } codes[] = {
      {-EINVAL, "EINVAL"}, {-ENOMEM, "ENOMEM"}, {-EBUSY, "EBUSY"},   {-EEXIST, "EEXIST"},
      {-EPERM, "EPERM"},   {-EBADF, "EBADF"},   {-EAGAIN, "EAGAIN"}, {-EMFILE, "EMFILE"},
      {-ENFILE, "ENFILE"}, {-ESRCH, "ESRCH"},   {-ENOTSUP, "ENOTSUP"}, /* not EOPNOTSUPP */
      {-1000, "AX_REASON_INTENSITY"}, /* supervisor.h, which loop programs need not include */
  };
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    ck_assert_str_eq(ax_err_name(codes[i].code), codes[i].name);
    const char *text = ax_strerror(codes[i].code);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strlen(text) > 0 && strcmp(text, unknown) != 0,
                  "ax_strerror(-%s) = \"%s\"", codes[i].name, text);
  }

  /* The positive stop reasons a terminate hook gets (actor.h). */
  ck_assert_str_eq(ax_err_name(AX_REASON_STOPPED), "AX_REASON_STOPPED");
  ck_assert_str_eq(ax_err_name(AX_REASON_SHUTDOWN), "AX_REASON_SHUTDOWN");
  ck_assert(strstr(ax_strerror(AX_REASON_STOPPED), "ax_stop") != NULL);
  ck_assert(strstr(ax_strerror(AX_REASON_SHUTDOWN), "runtime stopped") != NULL);

  /* Codes that are not negated errno values. */
  const int strange[] = {-99999, 12345, EINVAL, 3, INT_MIN, INT_MAX, -4096};
  for (size_t i = 0; i < sizeof strange / sizeof strange[0]; i++) {
    const char *text = ax_strerror(strange[i]);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strcasestr(text, "unknown") != NULL, "ax_strerror(%d) = \"%s\"", strange[i],
                  text);
    ck_assert_str_eq(ax_err_name(strange[i]), "UNKNOWN");
  }
}
END_TEST

START_TEST(test_errors_version_and_clock) {
  ck_assert_uint_eq(ax_version(), AX_VERSION_HEX);
  ck_assert_str_eq(ax_version_string(), AX_VERSION_STRING);
  int64_t a = ax_now();
  int64_t b = ax_now();
  ck_assert_int_gt(a, 0);
  ck_assert_int_ge(b, a);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t mono = (int64_t)ts.tv_sec * AX_NSEC_PER_SEC + ts.tv_nsec;
  ck_assert_int_ge(mono, b);
  ck_assert_int_lt(mono - b, AX_NSEC_PER_SEC);
}
END_TEST

static Suite *errors_suite(void) {
  Suite *suite = suite_create("errors");

  TCase *tc = tcase_create("loop");
  tcase_add_test(tc, test_errors_loop_new);
  tcase_add_test(tc, test_errors_loop_run_and_close);
  suite_add_tcase(suite, tc);

  tc = tcase_create("watchers");
  tcase_add_test(tc, test_errors_io);
  tcase_add_test(tc, test_errors_timer);
  tcase_add_test(tc, test_errors_signal);
  tcase_add_test(tc, test_errors_event);
  suite_add_tcase(suite, tc);

  tc = tcase_create("strings");
  tcase_add_test(tc, test_errors_strings);
  tcase_add_test(tc, test_errors_version_and_clock);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(errors_suite());
}
