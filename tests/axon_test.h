/* Small helpers shared by the Check suites of the io/ loop (test-only, not installed). */
#ifndef AXON_TEST_H
#define AXON_TEST_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <axon.h>

/* Creates a loop with the default options (so AXON_BACKEND picks the backend)
 * and fails the test if that does not work. */
static inline ax_loop_t *test_loop_new(void) {
  ax_loop_t *loop = NULL;
  ck_assert_int_eq(ax_loop_new(&loop, NULL), 0);
  ck_assert_ptr_nonnull(loop);
  return loop;
}

/* True when the loop runs on the poll backend, which has no edge mode and
 * accepts regular files. */
static inline bool test_loop_is_poll(const ax_loop_t *loop) {
  return strcmp(ax_loop_backend(loop), "poll") == 0;
}

/* Checks the result of ax_loop_run(loop, 0) when the pass may have left no
 * active watcher: the contract allows AX_RUN_IDLE or AX_RUN_TIMEOUT then. */
static inline void test_assert_pass_ended(int result) {
  ck_assert_msg(result == AX_RUN_IDLE || result == AX_RUN_TIMEOUT,
                "ax_loop_run(loop, 0) returned %d", result);
}

/* Sleeps for ms milliseconds, resuming after signal interruptions. */
static inline void test_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Creates a non-blocking, close-on-exec pipe and fails the test otherwise. */
static inline void test_pipe(int fds[2]) {
  ck_assert_int_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

/* Writes one byte to fd and fails the test if it was not written. */
static inline void test_write_byte(int fd) {
  ck_assert_int_eq((int)write(fd, "x", 1), 1);
}

/* Reads everything available on a non-blocking fd; returns the byte count. */
static inline size_t test_drain(int fd) {
  char buf[256];
  size_t total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    total += (size_t)n;
  }
  return total;
}

/* True when fd is an open file descriptor. */
static inline bool test_fd_open(int fd) {
  return fcntl(fd, F_GETFD) != -1;
}

/* Runs a suite in Check's default fork mode and turns the result into an
 * exit status: 0 when every test passed. */
static inline int test_run_suite(Suite *suite) {
  SRunner *runner = srunner_create(suite);
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* AXON_TEST_H */
