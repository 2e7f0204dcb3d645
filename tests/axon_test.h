/* Small helpers shared by the Check suites of the loop and the runtime (test-only, not installed). */
#ifndef AXON_TEST_H
#define AXON_TEST_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <malloc.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
/* True when AXON_BACKEND asks for io_uring but a loop falls back to epoll
 * (the kernel refuses io_uring, or axon was built without liburing): the
 * suites registered for that backend then report SKIP instead of checking
 * epoll a second time. */
static inline bool test_backend_missing(void) {
  const char *want = getenv("AXON_BACKEND");
  if (want == NULL || strcmp(want, "io_uring") != 0)
    return false;
  ax_loop_t *loop = NULL;
  if (ax_loop_new(NULL, &loop) < 0)
    return false; /* the suite says what is wrong */
  bool missing = strcmp(ax_loop_backend(loop), want) != 0;
  ax_loop_close(loop, 0);
  if (missing)
    printf("SKIP: the io_uring backend is not available here\n");
  return missing;
}

static inline int test_run_suite(Suite *suite) {
  if (test_backend_missing()) {
    srunner_free(srunner_create(suite)); /* frees the suite */
    return 77;
  }
  SRunner *runner = srunner_create(suite);
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ------------------------------------------------------------------------ */
/* Tests that need a capability: CTest's SKIP                               */

/* The exit status CTest reads as "skipped" (SKIP_RETURN_CODE 77 in
 * tests/CMakeLists.txt).  A program returns it when, and only when, what it
 * was asked to check needs something this machine lacks; it never passes
 * instead, and it never installs what is missing (scripts/deps.sh does). */
#define TEST_SKIP 77

/* A group of TCases that needs something a machine may lack: a program on
 * PATH, a privilege, a kernel feature.  Each TCase of the group carries the
 * group's name as its tag (tcase_set_tags), and tests/CMakeLists.txt
 * registers the program once more per group, with the name as argv[1], so
 * that each group is a CTest entry of its own that reports SKIP. */
typedef struct test_group {
  const char *name; /* the tag of its TCases, and the argument that runs them */
  /* NULL when the group can run here; otherwise what is missing, in words
   * (and where to get it), for the SKIP line. */
  const char *(*missing)(void);
} test_group_t;

/* Runs the part of `suite` that argv names, in Check's fork mode, and
 * returns the program's exit status:
 *  - no argument: every TCase that belongs to none of the n groups;
 *  - one argument, a group's name: first that group's missing(); if it
 *    names something, prints "SKIP: ..." and returns TEST_SKIP without
 *    running anything; otherwise runs the TCases tagged with the name.
 * Returns EXIT_SUCCESS when every test that ran passed and at least one
 * ran (a selection that matches nothing is a failure, never a pass), and
 * EXIT_FAILURE otherwise, or for an unknown name or extra arguments.
 * Frees the suite.  Check's CK_RUN_CASE and CK_RUN_SUITE still narrow the
 * run further. */
static inline int test_run_groups(Suite *suite, int argc, char **argv, const test_group_t *groups,
                                  size_t n) {
  if (test_backend_missing()) {
    srunner_free(srunner_create(suite)); /* frees the suite */
    return 77;
  }
  const char *only = argc > 1 ? argv[1] : NULL;
  const test_group_t *group = NULL;
  char exclude[256] = "";
  for (size_t i = 0; i < n; i++) {
    if (only != NULL && strcmp(only, groups[i].name) == 0)
      group = &groups[i];
    size_t used = strlen(exclude);
    snprintf(exclude + used, sizeof exclude - used, "%s%s", used != 0 ? " " : "",
             groups[i].name);
  }
  if (argc > 2 || (only != NULL && group == NULL)) {
    fprintf(stderr, "usage: %s [group]; the groups:", argv[0]);
    for (size_t i = 0; i < n; i++)
      fprintf(stderr, " %s", groups[i].name);
    fprintf(stderr, "\n");
    srunner_free(srunner_create(suite)); /* frees the suite */
    return EXIT_FAILURE;
  }
  if (group != NULL) {
    const char *missing = group->missing();
    if (missing != NULL) {
      printf("SKIP: %s %s: %s\n", argv[0], group->name, missing);
      srunner_free(srunner_create(suite)); /* frees the suite */
      return TEST_SKIP;
    }
  }
  SRunner *runner = srunner_create(suite);
  if (group != NULL)
    srunner_run_tagged(runner, NULL, NULL, group->name, NULL, CK_NORMAL);
  else
    srunner_run_tagged(runner, NULL, NULL, NULL, n != 0 ? exclude : NULL, CK_NORMAL);
  int ran = srunner_ntests_run(runner);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  if (ran == 0)
    fprintf(stderr, "%s: no test ran (a group without its tag, or CK_RUN_CASE naming none?)\n",
            argv[0]);
  return ran == 0 || failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* True when `program` is an executable regular file in a directory of
 * PATH (an empty entry meaning the current directory), the way execlp()
 * would find it.  False when PATH is unset. */
static inline bool test_on_path(const char *program) {
  const char *path = getenv("PATH");
  if (path == NULL)
    return false;
  for (const char *p = path;;) {
    const char *end = strchr(p, ':');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    char file[4096];
    int w = len != 0 ? snprintf(file, sizeof file, "%.*s/%s", (int)len, p, program)
                     : snprintf(file, sizeof file, "./%s", program);
    struct stat st;
    if (w > 0 && (size_t)w < sizeof file && stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
        access(file, X_OK) == 0)
      return true;
    if (end == NULL)
      return false;
    p = end + 1;
  }
}

/* Drops capability `cap` (CAP_*) from the calling thread's effective and
 * permitted sets, so that the kernel treats the thread as it treats an
 * unprivileged one for what that capability governs, even under root;
 * threads it creates afterwards inherit that.  Lowering one's own
 * capabilities needs no privilege.  Returns false if capget or capset
 * failed. */
static inline bool test_drop_capability(int cap) {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  if (syscall(SYS_capget, &hdr, data) != 0)
    return false;
  data[cap / 32].effective &= ~(1u << (cap % 32));
  data[cap / 32].permitted &= ~(1u << (cap % 32));
  return syscall(SYS_capset, &hdr, data) == 0;
}

/* ------------------------------------------------------------------------ */
/* Messages in flight, seen from inside the receiving actor                  */

/*
 * How many messages of a source are in flight (delivered to the actor and
 * not yet handled, the one being handled included), measured by the actor
 * itself, so that a window can be checked directly rather than through a
 * counter that other limits also bound (a turn's batch, a read's burst).
 * On each message of the source the actor sends itself a marker holding
 * the count handled so far; when the marker comes back, every message
 * handled in between was queued ahead of it.  That relies on an actor's
 * mailbox being one FIFO for all senders (one MPSC queue, runtime/core.c):
 * the marker never overtakes a message delivered before it, and no message
 * delivered after it comes first.  Owner core only.
 */
typedef struct test_inflight {
  uint64_t handled; /* messages of the source handled so far */
  uint64_t markers; /* markers back */
  uint64_t max;     /* the most in flight seen at any one of them */
} test_inflight_t;

/* Counts a message of the source, from the behaviour handling it, and
 * sends the actor a marker of type `marker_type`.  Returns ax_send's
 * result (0, or a negative errno code). */
static inline int test_inflight_seen(test_inflight_t *p, ax_actor_t *self, uint32_t marker_type) {
  p->handled++;
  return ax_send(ax_self(self), marker_type, &p->handled, sizeof p->handled);
}

/* Takes a marker back, from the behaviour handling it; returns how many
 * messages were in flight when it was sent (the one that sent it
 * included), and keeps the largest in p->max. */
static inline uint64_t test_inflight_marker(test_inflight_t *p, const ax_msg_t *marker) {
  uint64_t at;
  memcpy(&at, marker->data, sizeof at);
  uint64_t n = p->handled - at + 1;
  if (n > p->max)
    p->max = n;
  p->markers++;
  return n;
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

/* Bytes malloc has handed out and not had back: every arena's, and the
 * chunks it mmapped (large arrays) too.  glibc's count, so meaningless
 * under a sanitizer, whose malloc is its own: check TEST_SANITIZED. */
static inline size_t malloc_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

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

/* A behaviour that takes every message and does nothing with it. */
static inline int test_idle_behaviour(ax_actor_t *self, const ax_msg_t *msg) {
  (void)self;
  (void)msg;
  return 0;
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
static inline void test_spin_ns(int64_t ns) {
  int64_t end = ax_now() + ns;
  while (ax_now() < end) {
  }
}

static inline void test_spin_ms(long ms) { test_spin_ns((int64_t)ms * AX_NSEC_PER_MSEC); }

/* A sequence-numbered message payload, used by the ordering checks. */
typedef struct test_seq_msg {
  uint32_t sender; /* who sent it (index chosen by the test) */
  uint32_t pad;
  uint64_t seq;    /* 0, 1, 2... per sender and receiver */
} test_seq_msg_t;

#endif /* AXON_TEST_H */
