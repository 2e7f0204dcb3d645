/* Check suite for event watchers: cross-thread wake-up, coalescing, notifications while stopped, close. */
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/wait.h>

#include "axon_test.h"

/* An event watcher that records its calls and the counts it was given. */
typedef struct counter {
  ax_event_t ev;
  int calls;
  uint64_t total;
  uint64_t last;
  bool stop_loop; /* stop the loop on each call */
} counter_t;

static void counter_cb(ax_event_t *ev, uint64_t count) {
  counter_t *c = AX_CONTAINER_OF(ev, counter_t, ev);
  c->calls++;
  c->last = count;
  c->total += count;
  if (c->stop_loop) {
    ax_loop_stop(ev->loop);
  }
}

static void counter_init(ax_loop_t *loop, counter_t *c) {
  memset(c, 0, sizeof *c);
  ck_assert_int_eq(ax_event_init(loop, &c->ev, counter_cb), 0);
  ck_assert_int_ge(c->ev.fd, 0);
  ck_assert(test_fd_open(c->ev.fd));
  ck_assert_ptr_eq(c->ev.loop, loop);
  ck_assert(!ax_event_active(&c->ev));
  /* The eventfd is non-blocking and close-on-exec. */
  ck_assert(fcntl(c->ev.fd, F_GETFL) & O_NONBLOCK);
  ck_assert(fcntl(c->ev.fd, F_GETFD) & FD_CLOEXEC);
}

/* ------------------------------------------------------------------------ */
/* Waking the loop                                                           */

/* Notifies the event after a short wait, from another thread. */
static void *notify_later_thread(void *arg) {
  test_sleep_ms(50);
  int *result = malloc(sizeof *result);
  if (result != NULL) {
    *result = ax_event_notify(arg);
  }
  return result;
}

START_TEST(test_event_notify_from_thread_wakes_loop) {
  ax_loop_t *loop = test_loop_new();
  counter_t c;
  counter_init(loop, &c);
  c.stop_loop = true;
  ck_assert_int_eq(ax_event_start(&c.ev), 0);
  ck_assert(ax_event_active(&c.ev));
  ck_assert_uint_eq(ax_loop_active(loop), 1);

  pthread_t thread;
  int64_t start = ax_now();
  ck_assert_int_eq(pthread_create(&thread, NULL, notify_later_thread, &c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_lt(ax_now() - start, 5 * AX_NSEC_PER_SEC);
  void *result = NULL;
  ck_assert_int_eq(pthread_join(thread, &result), 0);
  ck_assert_ptr_nonnull(result);
  ck_assert_int_eq(*(int *)result, 0);
  free(result);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_uint_eq(c.last, 1);

  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* The event the SIGALRM handler of test_event_notify_from_signal_handler notifies. */
static ax_event_t *alarm_event;

static void notify_on_alarm(int signo) {
  (void)signo;
  ax_event_notify(alarm_event);
}

START_TEST(test_event_notify_from_signal_handler) {
  ax_loop_t *loop = test_loop_new();
  counter_t c;
  counter_init(loop, &c);
  c.stop_loop = true;
  ck_assert_int_eq(ax_event_start(&c.ev), 0);
  alarm_event = &c.ev;
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = notify_on_alarm;
  sigemptyset(&action.sa_mask);
  ck_assert_int_eq(sigaction(SIGALRM, &action, NULL), 0);
  struct itimerval alarm_in = {{0, 0}, {0, 50000}};
  ck_assert_int_eq(setitimer(ITIMER_REAL, &alarm_in, NULL), 0);

  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_uint_eq(c.last, 1);
  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Counting                                                                  */

START_TEST(test_event_notifies_coalesce) {
  ax_loop_t *loop = test_loop_new();
  counter_t c;
  counter_init(loop, &c);
  ck_assert_int_eq(ax_event_start(&c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 0);

  for (int i = 0; i < 10; i++) {
    ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  }
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_uint_eq(c.last, 10);
  /* The count was consumed. */
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 1);

  ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 2);
  ck_assert_uint_eq(c.last, 1);

  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_event_notifies_kept_while_stopped) {
  ax_loop_t *loop = test_loop_new();
  counter_t c;
  counter_init(loop, &c);
  /* Before the first start. */
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  }
  test_assert_pass_ended(ax_loop_run(loop, 0));
  ck_assert_int_eq(c.calls, 0);
  ck_assert_int_eq(ax_event_start(&c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_uint_eq(c.last, 3);

  /* Between a stop and the next start. */
  ck_assert_int_eq(ax_event_stop(&c.ev), 0);
  ck_assert(!ax_event_active(&c.ev));
  ck_assert_uint_eq(ax_loop_active(loop), 0);
  ck_assert_int_eq(ax_event_stop(&c.ev), 0);
  ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  test_assert_pass_ended(ax_loop_run(loop, 0));
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(ax_event_start(&c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 2);
  ck_assert_uint_eq(c.last, 2);

  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_event_external_write_counts) {
  ax_loop_t *loop = test_loop_new();
  counter_t c;
  counter_init(loop, &c);
  ck_assert_int_eq(ax_event_start(&c.ev), 0);

  /* A plain write of the eventfd from this thread. */
  uint64_t five = 5;
  ck_assert_int_eq((int)write(c.ev.fd, &five, sizeof five), (int)sizeof five);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_uint_eq(c.last, 5);

  /* From another process sharing the fd. */
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    uint64_t seven = 7;
    _exit(write(c.ev.fd, &seven, sizeof seven) == (ssize_t)sizeof seven ? 0 : 1);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(child, &status, 0), child);
  ck_assert(WIFEXITED(status));
  ck_assert_int_eq(WEXITSTATUS(status), 0);
  ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 2);
  ck_assert_uint_eq(c.last, 8);

  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_event_counter_overflow) {
  ax_loop_t *loop = test_loop_new();
  counter_t c;
  counter_init(loop, &c);
  /* The eventfd counter holds at most 2^64 - 2. */
  uint64_t most = UINT64_MAX - 1;
  ck_assert_int_eq((int)write(c.ev.fd, &most, sizeof most), (int)sizeof most);
  ck_assert_int_eq(ax_event_notify(&c.ev), -EAGAIN);
  ck_assert_int_eq(ax_event_start(&c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 1);
  ck_assert(c.last == UINT64_MAX - 1);
  /* Room again. */
  ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 2);
  ck_assert_uint_eq(c.last, 1);
  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* Two events: whichever is called first stops the other, which then must not
 * be called in that pass; its notification is kept. */
typedef struct pair_event {
  ax_event_t ev;
  struct pair_event *other;
  int calls;
} pair_event_t;

static pair_event_t *pair_first;

static void pair_cb(ax_event_t *ev, uint64_t count) {
  (void)count;
  pair_event_t *self = AX_CONTAINER_OF(ev, pair_event_t, ev);
  self->calls++;
  if (pair_first == NULL) {
    pair_first = self;
    ck_assert_int_eq(ax_event_stop(&self->other->ev), 0);
  }
}

START_TEST(test_event_stop_other_in_same_pass) {
  ax_loop_t *loop = test_loop_new();
  pair_event_t a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.other = &b;
  b.other = &a;
  pair_first = NULL;
  ck_assert_int_eq(ax_event_init(loop, &a.ev, pair_cb), 0);
  ck_assert_int_eq(ax_event_init(loop, &b.ev, pair_cb), 0);
  ck_assert_int_eq(ax_event_start(&a.ev), 0);
  ck_assert_int_eq(ax_event_start(&b.ev), 0);
  ck_assert_int_eq(ax_event_notify(&a.ev), 0);
  ck_assert_int_eq(ax_event_notify(&b.ev), 0);
  test_assert_pass_ended(ax_loop_run(loop, 0));
  ck_assert_ptr_nonnull(pair_first);
  pair_event_t *second = pair_first->other;
  ck_assert_int_eq(pair_first->calls, 1);
  ck_assert_int_eq(second->calls, 0);
  /* Restarted, the stopped one gets its kept notification. */
  ck_assert_int_eq(ax_event_start(&second->ev), 0);
  test_assert_pass_ended(ax_loop_run(loop, 0));
  ck_assert_int_eq(second->calls, 1);
  ck_assert_int_eq(ax_event_close(&a.ev), 0);
  ck_assert_int_eq(ax_event_close(&b.ev), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

START_TEST(test_event_close) {
  ax_loop_t *loop = test_loop_new();
  counter_t c;
  counter_init(loop, &c);
  int fd = c.ev.fd;
  ck_assert_int_eq(ax_event_start(&c.ev), 0);
  ck_assert_int_eq(ax_event_notify(&c.ev), 0);
  /* Closing an active event stops it and closes the eventfd; the pending
   * notification is never delivered. */
  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert(!ax_event_active(&c.ev));
  ck_assert(!test_fd_open(fd));
  ck_assert_uint_eq(ax_loop_active(loop), 0);
  test_assert_pass_ended(ax_loop_run(loop, 0));
  ck_assert_int_eq(c.calls, 0);
  /* A closed event refuses everything but stop and close. */
  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert_int_eq(ax_event_notify(&c.ev), -EINVAL);
  ck_assert_int_eq(ax_event_start(&c.ev), -EINVAL);
  ck_assert(!ax_event_active(&c.ev));
  ck_assert_int_eq(ax_event_stop(&c.ev), 0);

  /* Closing an event that was never started. */
  counter_init(loop, &c);
  fd = c.ev.fd;
  ck_assert_int_eq(ax_event_close(&c.ev), 0);
  ck_assert(!test_fd_open(fd));
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* Closes its own event from the callback. */
static void close_self_cb(ax_event_t *ev, uint64_t count) {
  (void)count;
  ++*(int *)ev->data;
  ck_assert_int_eq(ax_event_close(ev), 0);
  ck_assert(!ax_event_active(ev));
}

START_TEST(test_event_close_inside_callback) {
  ax_loop_t *loop = test_loop_new();
  ax_event_t ev;
  int calls = 0;
  ck_assert_int_eq(ax_event_init(loop, &ev, close_self_cb), 0);
  ev.data = &calls;
  int fd = ev.fd;
  ck_assert_int_eq(ax_event_start(&ev), 0);
  ck_assert_int_eq(ax_event_notify(&ev), 0);
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_IDLE);
  ck_assert_int_eq(calls, 1);
  ck_assert(!test_fd_open(fd));
  ck_assert_uint_eq(ax_loop_active(loop), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

static Suite *event_suite(void) {
  Suite *suite = suite_create("event");

  TCase *tc = tcase_create("wake");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_event_notify_from_thread_wakes_loop);
  tcase_add_test(tc, test_event_notify_from_signal_handler);
  suite_add_tcase(suite, tc);

  tc = tcase_create("count");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_event_notifies_coalesce);
  tcase_add_test(tc, test_event_notifies_kept_while_stopped);
  tcase_add_test(tc, test_event_external_write_counts);
  tcase_add_test(tc, test_event_counter_overflow);
  tcase_add_test(tc, test_event_stop_other_in_same_pass);
  suite_add_tcase(suite, tc);

  tc = tcase_create("close");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_event_close);
  tcase_add_test(tc, test_event_close_inside_callback);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(event_suite());
}
