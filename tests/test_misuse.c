/* Check suite for misuse that debug builds catch: closed handles, calls from the wrong thread (skipped when assertions are compiled out). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "axon_test.h"

enum {
  MSG_OPEN = AX_MSG_USER + 1, /* open a stream over the socketpair, publish it */
  MSG_CLOSE_TWICE_NOW,        /* open, close, close again in the same turn */
};

static int sv[2];
static ax_stream_t *_Atomic published;
static ax_actor_t *_Atomic published_self;

static int owner(ax_actor_t *self, const ax_msg_t *m) {
  atomic_store(&published_self, self);
  if (m->type == AX_MSG_DATA) {
    /* Closing a stream in the handler of its own message, then closing it
     * again: its memory is still there (the message holds it), and the
     * second call must trip the closed-handle assertion. */
    const ax_data_t *d = m->data;
    ax_stream_close(d->stream);
    ax_stream_close(d->stream);
    return 0;
  }
  if (m->type == MSG_OPEN) {
    ax_stream_t *s = NULL;
    if (ax_pipe_open(self, sv[0], sv[0], NULL, &s) == 0)
      atomic_store(&published, s);
  }
  return 0;
}

static ax_rt_t *start_owner(ax_ref_t *ref) {
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  *ref = test_spawn(rt, owner, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(*ref, MSG_OPEN, NULL, 0);
  TEST_WAIT_UNTIL(atomic_load(&published) != NULL, 10000);
  return rt;
}

/* A second ax_stream_close: aborts (debug builds). */
START_TEST(test_misuse_close_twice) {
  ax_ref_t a;
  start_owner(&a);
  ck_assert_int_eq((int)write(sv[1], "x", 1), 1);
  test_sleep_ms(5000); /* the abort comes first */
}
END_TEST

/* An owner-only call from a thread that is not the owner's core aborts
 * (debug builds): a write, a monitor, a timer. */
START_TEST(test_misuse_write_wrong_thread) {
  ax_ref_t a;
  start_owner(&a);
  ax_stream_write(atomic_load(&published), "x", 1);
}
END_TEST

START_TEST(test_misuse_monitor_wrong_thread) {
  ax_ref_t a;
  start_owner(&a);
  ax_monitor(atomic_load(&published_self), a, NULL);
}
END_TEST

START_TEST(test_misuse_timer_wrong_thread) {
  ax_ref_t a;
  start_owner(&a);
  ax_after(atomic_load(&published_self), 1000, MSG_OPEN, NULL, 0, NULL);
}
END_TEST

/* A loop call from a thread that is not the loop's, while the loop is not
 * running at all (the loop's own check missed that before). */
static void on_tick(ax_timer_t *t) { (void)t; }
static void *start_timer_elsewhere(void *arg) {
  ax_timer_start(arg, AX_NSEC_PER_SEC, 0);
  return NULL;
}

START_TEST(test_misuse_loop_wrong_thread) {
  ax_loop_t *loop = NULL;
  ck_assert_int_eq(ax_loop_new(NULL, &loop), 0);
  static ax_timer_t t;
  ck_assert_int_eq(ax_timer_init(loop, &t, on_tick), 0);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, start_timer_elsewhere, &t), 0);
  pthread_join(th, NULL);
}
END_TEST

static Suite *misuse_suite(void) {
  Suite *s = suite_create("misuse");
  TCase *tc = tcase_create("asserts");
  tcase_set_timeout(tc, 30);
  tcase_add_test_raise_signal(tc, test_misuse_close_twice, SIGABRT);
  tcase_add_test_raise_signal(tc, test_misuse_write_wrong_thread, SIGABRT);
  tcase_add_test_raise_signal(tc, test_misuse_monitor_wrong_thread, SIGABRT);
  tcase_add_test_raise_signal(tc, test_misuse_timer_wrong_thread, SIGABRT);
  tcase_add_test_raise_signal(tc, test_misuse_loop_wrong_thread, SIGABRT);
  suite_add_tcase(s, tc);
  return s;
}

#ifdef NDEBUG
static const bool asserts_on = false; /* the library of this build has none */
#else
static const bool asserts_on = true;
#endif

int main(void) {
  if (!asserts_on)
    return 77; /* skipped: nothing to check */
  return test_run_suite(misuse_suite());
}
