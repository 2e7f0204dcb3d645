/* An idle core gives glibc's free heap back with malloc_trim, and only
 * when glibc's malloc is the process's malloc.
 *
 * This program defines malloc_trim itself (it counts the calls), so the
 * library's call lands here.  Built twice:
 *  - test_trim: the process uses glibc's malloc; a burst of actors spawned
 *    and stopped must end in a trim;
 *  - test_trim_foreign (TRIM_FOREIGN): the program also defines malloc and
 *    its family, forwarding to glibc's, as jemalloc or a sanitizer would
 *    replace them; the same burst must end in no call.  glibc sets its own
 *    heap up inside the first malloc_trim when nothing else did, and two
 *    cores doing that at once abort the process at thread exit.
 * Under a sanitizer, which replaces malloc itself, test_trim expects what
 * test_trim_foreign does (test_trim_foreign is not built there). */
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "axon_test.h"

static _Atomic int trims;

/* Exported (the build hides symbols by default), so that they take the
 * place of glibc's for the library. */
#define TRIM_EXPORT __attribute__((visibility("default")))

TRIM_EXPORT int malloc_trim(size_t pad) {
  (void)pad;
  atomic_fetch_add_explicit(&trims, 1, memory_order_relaxed);
  return 0;
}

extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

#ifdef TRIM_FOREIGN
TRIM_EXPORT void *malloc(size_t n) { return __libc_malloc(n); }
TRIM_EXPORT void free(void *p) { __libc_free(p); }
TRIM_EXPORT void *calloc(size_t n, size_t size) { return __libc_calloc(n, size); }
TRIM_EXPORT void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
TRIM_EXPORT void *memalign(size_t align, size_t n) { return __libc_memalign(align, n); }
TRIM_EXPORT void *aligned_alloc(size_t align, size_t n) { return __libc_memalign(align, n); }
TRIM_EXPORT int posix_memalign(void **out, size_t align, size_t n) {
  void *p = __libc_memalign(align, n);
  if (p == NULL)
    return ENOMEM;
  *out = p;
  return 0;
}
#endif

enum { BURST = 10000 };

static _Atomic long ended;

static void count_end(ax_actor_t *self, int reason) {
  (void)self;
  (void)reason;
  atomic_fetch_add_explicit(&ended, 1, memory_order_relaxed);
}

/* malloc_trim was called since the program started, after `what`: at
 * least once under glibc's own malloc, never under another one. */
static void assert_trimmed(const char *what) {
  int calls = atomic_load_explicit(&trims, memory_order_relaxed);
#if defined(TRIM_FOREIGN) || TEST_SANITIZED
  (void)what;
  ck_assert_msg(calls == 0, "malloc_trim called %d times under another malloc", calls);
#else
  ck_assert_msg(calls >= 1, "no malloc_trim after %s", what);
#endif
}

static uint64_t released(ax_rt_t *rt) {
  uint64_t sum = 0;
  for (unsigned i = 0; i < ax_rt_cores(rt); i++) {
    ax_core_stats_t st;
    ck_assert_int_eq(ax_rt_stats(rt, i, &st), 0);
    sum += st.released;
  }
  return sum;
}

/* BURST actors spawned by main and stopped free more than AX__TRIM_SLOTS
 * slots on each core: both cores' purges run the trim once idle (the
 * released statistic says so), then the count of malloc_trim calls. */
START_TEST(test_trim_after_burst) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  static ax_ref_t refs[BURST];
  for (int i = 0; i < BURST; i++)
    refs[i] = test_spawn(rt, test_idle_behaviour, NULL, AX_PLACE_ANY, 0, NULL, count_end);
  for (int i = 0; i < BURST; i++)
    ck_assert_int_eq(ax_stop(refs[i], 0), 0);
  TEST_WAIT_UNTIL(atomic_load_explicit(&ended, memory_order_relaxed) == BURST, 30000);
  TEST_WAIT_UNTIL(released(rt) != 0, 10000);
  test_sleep_ms(300); /* the other core's purge, if it lags */
  assert_trimmed("a burst of actors");
  test_rt_stop_join_free(rt);
}
END_TEST

/* Timers armed and cancelled: their records are malloc's, and the core
 * counts them toward its trim once idle.  10^6 of them kept 133 MiB in
 * malloc's arenas for good before (a newcomer). */
enum { TIMERS = 20000, MSG_ARM = AX_MSG_USER + 90 };
static _Atomic int armed;

static int timer_owner(ax_actor_t *self, const ax_msg_t *m) {
  (void)m;
  static uint64_t ids[TIMERS];
  for (int i = 0; i < TIMERS; i++)
    if (ax_after(self, 3600 * AX_NSEC_PER_SEC, MSG_ARM, NULL, 0, &ids[i]) < 0)
      return -ENOMEM;
  for (int i = 0; i < TIMERS; i++)
    if (ax_timer_cancel(self, ids[i]) < 0)
      return -EIO;
  atomic_store(&armed, 1);
  return 0;
}

START_TEST(test_trim_after_cancelled_timers) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  test_send(test_spawn(rt, timer_owner, NULL, AX_PLACE_CORE, 0, NULL, NULL), MSG_ARM, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&armed) == 1, 30000);
  test_sleep_ms(600); /* idle past the purge delay (250 ms) */
  assert_trimmed("timers were cancelled");
  test_rt_stop_join_free(rt);
}
END_TEST

/* ax_rt_free trims too: what the runtime's threads freed into their arenas
 * (4 x 10^5 fibers left 182 MB resident after the free) goes back, though
 * no core is left to idle. */
START_TEST(test_trim_at_free) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_NO_SIGNALS);
  test_rt_start(rt);
  ax_rt_stop(rt);
  ck_assert_int_eq(ax_rt_join(rt), 0);
  int before = atomic_load_explicit(&trims, memory_order_relaxed);
  ck_assert_int_eq(ax_rt_free(rt), 0);
  int calls = atomic_load_explicit(&trims, memory_order_relaxed) - before;
#if defined(TRIM_FOREIGN) || TEST_SANITIZED
  ck_assert_msg(calls == 0, "malloc_trim called %d times under another malloc", calls);
#else
  ck_assert_msg(calls == 1, "ax_rt_free called malloc_trim %d times, not once", calls);
#endif
}
END_TEST

/* Sessions with a block of their own and line framing, opened, sent a
 * line and closed: their memory (small blocks that glibc keeps in each
 * core's arena, merged into its top once freed) goes back once the cores
 * idle.  malloc_trim (counted here, not run) cannot shrink a thread
 * arena's top: the core's own free of a large block does (core.c's
 * ax__trim_malloc).  A newcomer's 9,000 such sessions left 8.5 MB of RSS
 * after all closed, against 2.2 MB before them and 10 MB while open. */
enum { CONNS = 3000 };

static int line_session(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  return m->type == AX_MSG_CLOSED ? AX_STOP : 0;
}

static long rss_kib(void) {
  long pages = 0, res = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fscanf(f, "%ld %ld", &pages, &res), 2);
  fclose(f);
  return res * (sysconf(_SC_PAGESIZE) / 1024);
}

START_TEST(test_trim_after_sessions) {
  struct rlimit rl;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 3 * CONNS && rl.rlim_max >= 3 * CONNS) {
    rl.rlim_cur = 3 * CONNS;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  if (rl.rlim_cur < 3 * CONNS) {
    fprintf(stderr, "SKIP: %d connections need %d fds\n", CONNS, 3 * CONNS);
    exit(77);
  }
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  ax_serve_opts_t o;
  memset(&o, 0, sizeof o);
  o.stream.frame = AX_FRAME_DELIM;
  o.session_size = 8;
  o.backlog = 4096;
  ax_server_t *srv;
  ck_assert_int_eq(ax_tcp_serve(rt, "127.0.0.1:0", line_session, &o, &srv), 0);
  test_rt_start(rt);
  test_sleep_ms(50);
  long before = rss_kib();
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)ax_server_port(srv)),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  static int fds[CONNS];
  for (int i = 0; i < CONNS; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fds[i], 0);
    ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(write(fds[i], "hello\n", 6), 6);
  }
  ax_core_stats_t st;
  for (int i = 0; i < 10000; i++) {
    ck_assert_int_eq(ax_rt_stats_total(rt, &st), 0);
    if (st.actors >= 2 + CONNS) /* the listeners' acceptors and the sessions */
      break;
    test_sleep_ms(1);
  }
  test_sleep_ms(200); /* every line read */
  long open = rss_kib();
  for (int i = 0; i < CONNS; i++)
    close(fds[i]);
  for (int i = 0; i < 10000; i++) {
    ck_assert_int_eq(ax_rt_stats_total(rt, &st), 0);
    if (st.actors <= 2)
      break;
    test_sleep_ms(1);
  }
  test_sleep_ms(1000); /* idle past the purge delay (250 ms), both cores */
  long after = rss_kib();
  fprintf(stderr, "sessions: RSS %ld KiB before, %ld with %d open, %ld after all closed\n", before,
          open, CONNS, after);
#if !defined(TRIM_FOREIGN) && !TEST_SANITIZED
  ck_assert_msg(after - before < (open - before) / 2,
                "%ld KiB of the %ld the sessions took stayed after they closed", after - before,
                open - before);
#endif
  ck_assert_int_eq(ax_server_close(srv), 0);
  test_rt_stop_join_free(rt);
}
END_TEST

int main(void) {
  Suite *s = suite_create("trim");
  TCase *tc = tcase_create("trim");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_trim_after_burst);
  tcase_add_test(tc, test_trim_at_free);
  tcase_add_test(tc, test_trim_after_cancelled_timers);
  tcase_add_test(tc, test_trim_after_sessions);
  suite_add_tcase(s, tc);
  return test_run_suite(s);
}
