/* Small helpers shared by the Check suites of the loop and the runtime (test-only, not installed). */
#ifndef AXON_TEST_H
#define AXON_TEST_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
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
  ck_assert_int_eq(ax_loop_new(NULL, &loop), 0);
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

/* ------------------------------------------------------------------------ */
/* Runtime and actor helpers                                                 */

/* TEST_SANITIZED is 1 when the suite is built with AddressSanitizer or
 * ThreadSanitizer, which slow code down 2-15 times: big loops shrink. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TEST_SANITIZED 1
#endif
#endif
#ifndef TEST_SANITIZED
#define TEST_SANITIZED 0
#endif

/* Scales an iteration count for the build: plain builds use `plain`,
 * sanitizer builds a tenth of it; the AXON_TEST_SCALE environment variable
 * (a positive number, 1 = unchanged) multiplies either.  Never below 1. */
static inline uint64_t test_scaled(uint64_t plain) {
  double n = (double)plain;
  if (TEST_SANITIZED)
    n /= 10.0;
  const char *env = getenv("AXON_TEST_SCALE");
  if (env != NULL && env[0] != '\0') {
    double scale = strtod(env, NULL);
    if (scale > 0.0)
      n *= scale;
  }
  return n < 1.0 ? 1 : (uint64_t)n;
}

/* The number of CPUs this process may run on. */
static inline unsigned test_cpu_count(void) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0)
    return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? (unsigned)n : 1;
}

/* Creates a runtime with `cores` threads and the given AX_RT_* flags (the
 * other options default) and fails the test if that does not work.  Core
 * threads are not pinned when there are more cores than CPUs. */
static inline ax_rt_t *test_rt_new(unsigned cores, unsigned flags) {
  ax_rt_opts_t opts;
  memset(&opts, 0, sizeof opts);
  opts.cores = cores;
  opts.flags = flags;
  if (cores > test_cpu_count())
    opts.flags |= AX_RT_NO_PIN;
  ax_rt_t *rt = NULL;
  int rc = ax_rt_new(&opts, &rt);
  ck_assert_msg(rc == 0, "ax_rt_new(cores %u): %s", cores, ax_strerror(rc));
  ck_assert_ptr_nonnull(rt);
  if (cores != 0)
    ck_assert_uint_eq(ax_rt_cores(rt), cores);
  return rt;
}

/* Starts a runtime and fails the test if that does not work. */
static inline void test_rt_start(ax_rt_t *rt) {
  int rc = ax_rt_start(rt);
  ck_assert_msg(rc == 0, "ax_rt_start: %s", ax_strerror(rc));
}

/* Waits for a runtime to stop, then frees it; both must succeed. */
static inline void test_rt_join_free(ax_rt_t *rt) {
  int rc = ax_rt_join(rt);
  ck_assert_msg(rc == 0, "ax_rt_join: %s", ax_strerror(rc));
  rc = ax_rt_free(rt);
  ck_assert_msg(rc == 0, "ax_rt_free: %s", ax_strerror(rc));
}

/* Asks a runtime to stop, waits for it and frees it. */
static inline void test_rt_stop_join_free(ax_rt_t *rt) {
  ax_rt_stop(rt);
  test_rt_join_free(rt);
}

/* Spawns an actor with the given hooks and placement and fails the test if
 * that does not work.  Returns its reference. */
static inline ax_ref_t test_spawn(ax_rt_t *rt, ax_behaviour_t behaviour, void *state,
                                  ax_placement_t placement, unsigned core, ax_init_t init,
                                  ax_terminate_t terminate) {
  ax_spawn_opts_t opts;
  memset(&opts, 0, sizeof opts);
  opts.placement = placement;
  opts.core = core;
  opts.init = init;
  opts.terminate = terminate;
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_spawn(rt, behaviour, state, &opts, &ref);
  ck_assert_msg(rc == 0, "ax_spawn: %s", ax_strerror(rc));
  ck_assert_msg(ref != AX_REF_NONE, "ax_spawn stored AX_REF_NONE");
  return ref;
}

/* Sends a message and fails the test unless ax_send() returns 0. */
static inline void test_send(ax_ref_t to, uint32_t type, const void *data, size_t size) {
  int rc = ax_send(to, type, data, size);
  ck_assert_msg(rc == 0, "ax_send(type %u): %s", (unsigned)type, ax_strerror(rc));
}

/* Waits until `cond` holds, re-evaluating it every millisecond, and fails
 * the test if it still does not after timeout_ms milliseconds. */
#define TEST_WAIT_UNTIL(cond, timeout_ms)                                                 \
  do {                                                                                    \
    int64_t test_deadline_ = ax_now() + (int64_t)(timeout_ms) * AX_NSEC_PER_MSEC;         \
    while (!(cond) && ax_now() < test_deadline_)                                          \
      test_sleep_ms(1);                                                                   \
    ck_assert_msg((cond), "waited %d ms in vain for: %s", (int)(timeout_ms), #cond);     \
  } while (0)

/* Busy-waits for ms milliseconds without sleeping (inside a behaviour, to
 * keep its core occupied). */
static inline void test_spin_ms(long ms) {
  int64_t end = ax_now() + (int64_t)ms * AX_NSEC_PER_MSEC;
  while (ax_now() < end) {
  }
}

/* A sequence-numbered message payload, used by the ordering checks. */
typedef struct test_seq_msg {
  uint32_t sender; /* who sent it (index chosen by the test) */
  uint32_t pad;
  uint64_t seq;    /* 0, 1, 2... per sender and receiver */
} test_seq_msg_t;

#endif /* AXON_TEST_H */
