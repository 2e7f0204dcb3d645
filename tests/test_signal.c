/* Check suite for signal watchers: delivery through signalfd, several watchers, masks, start inside callbacks. */
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>

#include "axon_test.h"

/* A signal watcher that records its deliveries. */
typedef struct catcher {
  ax_signal_t sig;
  int calls;
  int last_signo;
  int last_pid;
  int last_code;
} catcher_t;

static void catcher_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  catcher_t *c = AX_CONTAINER_OF(sig, catcher_t, sig);
  ck_assert_ptr_nonnull(info);
  c->calls++;
  c->last_signo = (int)info->ssi_signo;
  c->last_pid = (int)info->ssi_pid;
  c->last_code = info->ssi_code;
}

static void catcher_init(ax_loop_t *loop, catcher_t *c) {
  memset(c, 0, sizeof *c);
  ck_assert_int_eq(ax_signal_init(loop, &c->sig, catcher_cb), 0);
  ck_assert(!ax_signal_active(&c->sig));
}

/* Runs short passes until the catcher has been called or about two seconds
 * have passed. */
static void run_until_caught(ax_loop_t *loop, const catcher_t *c, int calls) {
  for (int i = 0; i < 200 && c->calls < calls; i++) {
    ck_assert_int_ge(ax_loop_run(loop, 10 * AX_NSEC_PER_MSEC), 0);
  }
}

/* True when signo is blocked in the calling thread. */
static bool blocked(int signo) {
  sigset_t mask;
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &mask), 0);
  return sigismember(&mask, signo) == 1;
}

/* ------------------------------------------------------------------------ */
/* Delivery                                                                  */

START_TEST(test_signal_raise_delivers) {
  ax_loop_t *loop = test_loop_new();
  catcher_t c;
  catcher_init(loop, &c);
  ck_assert_int_eq(ax_signal_start(&c.sig, SIGUSR1), 0);
  ck_assert(ax_signal_active(&c.sig));
  ck_assert_int_eq(c.sig.signo, SIGUSR1);
  ck_assert_ptr_eq(c.sig.loop, loop);
  ck_assert_uint_eq(ax_loop_active(loop), 1);

  /* No signal yet: no call. */
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 0);

  ck_assert_int_eq(raise(SIGUSR1), 0);
  run_until_caught(loop, &c, 1);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(c.last_signo, SIGUSR1);
  ck_assert_int_eq(c.last_pid, getpid());
  ck_assert_int_eq(c.last_code, SI_TKILL);
  /* Delivered once only. */
  ck_assert_int_eq(ax_loop_run(loop, 20 * AX_NSEC_PER_MSEC), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c.calls, 1);

  ck_assert_int_eq(ax_signal_stop(&c.sig), 0);
  ck_assert(!ax_signal_active(&c.sig));
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_signal_kill_delivers) {
  ax_loop_t *loop = test_loop_new();
  catcher_t c;
  catcher_init(loop, &c);
  ck_assert_int_eq(ax_signal_start(&c.sig, SIGUSR2), 0);
  ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
  run_until_caught(loop, &c, 1);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(c.last_signo, SIGUSR2);
  ck_assert_int_eq(c.last_pid, getpid());
  ck_assert_int_eq(c.last_code, SI_USER);
  ck_assert_int_eq(ax_signal_stop(&c.sig), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_signal_realtime_delivers) {
  ax_loop_t *loop = test_loop_new();
  catcher_t c;
  catcher_init(loop, &c);
  ck_assert_int_eq(ax_signal_start(&c.sig, SIGRTMAX), 0);
  union sigval value = {.sival_int = 42};
  ck_assert_int_eq(sigqueue(getpid(), SIGRTMAX, value), 0);
  run_until_caught(loop, &c, 1);
  ck_assert_int_eq(c.calls, 1);
  ck_assert_int_eq(c.last_signo, SIGRTMAX);
  ck_assert_int_eq(c.last_pid, getpid());
  ck_assert_int_eq(ax_signal_stop(&c.sig), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* Stops the loop from a signal callback, so a blocking run returns. */
static void stop_loop_signal_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  ck_assert_int_eq((int)info->ssi_signo, SIGUSR1);
  ++*(int *)sig->data;
  ax_loop_stop(sig->loop);
}

/* Sends SIGUSR1 to the process after a short wait. */
static void *kill_later_thread(void *arg) {
  (void)arg;
  test_sleep_ms(50);
  kill(getpid(), SIGUSR1);
  return NULL;
}

START_TEST(test_signal_wakes_blocked_loop) {
  ax_loop_t *loop = test_loop_new();
  ax_signal_t sig;
  int calls = 0;
  ck_assert_int_eq(ax_signal_init(loop, &sig, stop_loop_signal_cb), 0);
  sig.data = &calls;
  ck_assert_int_eq(ax_signal_start(&sig, SIGUSR1), 0);
  /* The helper thread inherits the blocked mask, so the signal stays for the
   * loop's signalfd. */
  pthread_t thread;
  ck_assert_int_eq(pthread_create(&thread, NULL, kill_later_thread, NULL), 0);
  int64_t start = ax_now();
  ck_assert_int_eq(ax_loop_run(loop, AX_FOREVER), AX_RUN_STOPPED);
  ck_assert_int_lt(ax_now() - start, 5 * AX_NSEC_PER_SEC);
  ck_assert_int_eq(pthread_join(thread, NULL), 0);
  ck_assert_int_eq(calls, 1);
  ck_assert_int_eq(ax_signal_stop(&sig), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

START_TEST(test_signal_several_watchers) {
  ax_loop_t *loop = test_loop_new();
  catcher_t c[3], other;
  for (int i = 0; i < 3; i++) {
    catcher_init(loop, &c[i]);
    ck_assert_int_eq(ax_signal_start(&c[i].sig, SIGUSR1), 0);
  }
  catcher_init(loop, &other);
  ck_assert_int_eq(ax_signal_start(&other.sig, SIGUSR2), 0);
  ck_assert_uint_eq(ax_loop_active(loop), 4);

  ck_assert_int_eq(raise(SIGUSR1), 0);
  run_until_caught(loop, &c[2], 1);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(c[i].calls, 1);
    ck_assert_int_eq(c[i].last_signo, SIGUSR1);
  }
  ck_assert_int_eq(other.calls, 0);

  /* With one of them stopped, the other two still get every delivery. */
  ck_assert_int_eq(ax_signal_stop(&c[1].sig), 0);
  ck_assert(blocked(SIGUSR1));
  ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
  run_until_caught(loop, &c[2], 2);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(c[0].calls, 2);
  ck_assert_int_eq(c[1].calls, 1);
  ck_assert_int_eq(c[2].calls, 2);
  ck_assert_int_eq(other.calls, 0);

  ck_assert_int_eq(ax_signal_stop(&c[0].sig), 0);
  ck_assert_int_eq(ax_signal_stop(&c[2].sig), 0);
  ck_assert_int_eq(ax_signal_stop(&other.sig), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The signal mask                                                           */

START_TEST(test_signal_stop_restores_mask) {
  ax_loop_t *loop = test_loop_new();
  catcher_t a, b;
  catcher_init(loop, &a);
  catcher_init(loop, &b);
  ck_assert(!blocked(SIGUSR1));
  ck_assert_int_eq(ax_signal_start(&a.sig, SIGUSR1), 0);
  ck_assert(blocked(SIGUSR1));
  ck_assert_int_eq(ax_signal_start(&b.sig, SIGUSR1), 0);
  ck_assert(blocked(SIGUSR1));
  /* Still blocked while one watcher is left... */
  ck_assert_int_eq(ax_signal_stop(&a.sig), 0);
  ck_assert(blocked(SIGUSR1));
  /* ...restored after the last one. */
  ck_assert_int_eq(ax_signal_stop(&b.sig), 0);
  ck_assert(!blocked(SIGUSR1));
  /* Stopping again changes nothing. */
  ck_assert_int_eq(ax_signal_stop(&b.sig), 0);
  ck_assert(!blocked(SIGUSR1));

  /* A signal that was blocked before the first watcher stays blocked. */
  sigset_t usr2;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &usr2, NULL), 0);
  ck_assert_int_eq(ax_signal_start(&a.sig, SIGUSR2), 0);
  ck_assert(blocked(SIGUSR2));
  ck_assert_int_eq(ax_signal_stop(&a.sig), 0);
  ck_assert(blocked(SIGUSR2));
  ck_assert(!blocked(SIGUSR1));
  ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &usr2, NULL), 0);

  /* Other signals are left alone throughout. */
  ck_assert(!blocked(SIGALRM));
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* Set by the ordinary handler of test_signal_pending_gets_disposition. */
static volatile sig_atomic_t handler_ran;

static void plain_handler(int signo) {
  (void)signo;
  handler_ran = 1;
}

START_TEST(test_signal_pending_gets_disposition) {
  ax_loop_t *loop = test_loop_new();
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = plain_handler;
  sigemptyset(&action.sa_mask);
  ck_assert_int_eq(sigaction(SIGUSR1, &action, NULL), 0);
  handler_ran = 0;

  catcher_t c;
  catcher_init(loop, &c);
  ck_assert_int_eq(ax_signal_start(&c.sig, SIGUSR1), 0);
  /* The signal is blocked, so it stays pending instead of running the handler. */
  ck_assert_int_eq(raise(SIGUSR1), 0);
  ck_assert_int_eq(handler_ran, 0);
  /* Stopping the last watcher unblocks it: the normal disposition runs. */
  ck_assert_int_eq(ax_signal_stop(&c.sig), 0);
  ck_assert_int_eq(handler_ran, 1);
  ck_assert_int_eq(c.calls, 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Starting watchers inside callbacks                                        */

/* The first watcher starts the late one during its first delivery. */
static catcher_t late;

static void starter_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  catcher_cb(sig, info);
  catcher_t *self = AX_CONTAINER_OF(sig, catcher_t, sig);
  if (self->calls == 1) {
    ck_assert_int_eq(ax_signal_start(&late.sig, SIGUSR1), 0);
  }
}

START_TEST(test_signal_start_inside_callback_sees_next) {
  ax_loop_t *loop = test_loop_new();
  catcher_t first, bystander;
  memset(&first, 0, sizeof first);
  ck_assert_int_eq(ax_signal_init(loop, &first.sig, starter_cb), 0);
  catcher_init(loop, &late);
  /* A second watcher, started after the first, keeps the delivery going
   * after the starter's callback, so a late watcher queued behind it would
   * be reached in the same delivery. */
  catcher_init(loop, &bystander);
  ck_assert_int_eq(ax_signal_start(&first.sig, SIGUSR1), 0);
  ck_assert_int_eq(ax_signal_start(&bystander.sig, SIGUSR1), 0);

  ck_assert_int_eq(raise(SIGUSR1), 0);
  run_until_caught(loop, &first, 1);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(first.calls, 1);
  ck_assert_int_eq(bystander.calls, 1);
  ck_assert(ax_signal_active(&late.sig));
  /* The late watcher does not see the delivery during which it started. */
  ck_assert_int_eq(late.calls, 0);

  ck_assert_int_eq(raise(SIGUSR1), 0);
  run_until_caught(loop, &late, 1);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(first.calls, 2);
  ck_assert_int_eq(bystander.calls, 2);
  ck_assert_int_eq(late.calls, 1);

  ck_assert_int_eq(ax_signal_stop(&first.sig), 0);
  ck_assert_int_eq(ax_signal_stop(&bystander.sig), 0);
  ck_assert_int_eq(ax_signal_stop(&late.sig), 0);
  ck_assert(!blocked(SIGUSR1));
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

/* A watcher that stops itself in its callback; the other must still get the
 * same delivery. */
static void self_stop_cb(ax_signal_t *sig, const struct signalfd_siginfo *info) {
  catcher_cb(sig, info);
  ck_assert_int_eq(ax_signal_stop(sig), 0);
}

START_TEST(test_signal_stop_inside_callback) {
  ax_loop_t *loop = test_loop_new();
  catcher_t quitter, stayer;
  memset(&quitter, 0, sizeof quitter);
  ck_assert_int_eq(ax_signal_init(loop, &quitter.sig, self_stop_cb), 0);
  catcher_init(loop, &stayer);
  ck_assert_int_eq(ax_signal_start(&quitter.sig, SIGUSR1), 0);
  ck_assert_int_eq(ax_signal_start(&stayer.sig, SIGUSR1), 0);

  ck_assert_int_eq(raise(SIGUSR1), 0);
  run_until_caught(loop, &stayer, 1);
  ck_assert_int_eq(ax_loop_run(loop, 0), AX_RUN_TIMEOUT);
  ck_assert_int_eq(quitter.calls, 1);
  ck_assert_int_eq(stayer.calls, 1);
  ck_assert(!ax_signal_active(&quitter.sig));

  ck_assert_int_eq(raise(SIGUSR1), 0);
  run_until_caught(loop, &stayer, 2);
  ck_assert_int_eq(quitter.calls, 1);
  ck_assert_int_eq(stayer.calls, 2);

  ck_assert_int_eq(ax_signal_stop(&stayer.sig), 0);
  ck_assert_int_eq(ax_loop_close(loop, 0), 0);
}
END_TEST

static Suite *signal_suite(void) {
  Suite *suite = suite_create("signal");

  TCase *tc = tcase_create("delivery");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_signal_raise_delivers);
  tcase_add_test(tc, test_signal_kill_delivers);
  tcase_add_test(tc, test_signal_realtime_delivers);
  tcase_add_test(tc, test_signal_wakes_blocked_loop);
  tcase_add_test(tc, test_signal_several_watchers);
  suite_add_tcase(suite, tc);

  tc = tcase_create("mask");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_signal_stop_restores_mask);
  tcase_add_test(tc, test_signal_pending_gets_disposition);
  suite_add_tcase(suite, tc);

  tc = tcase_create("callbacks");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, test_signal_start_inside_callback_sees_next);
  tcase_add_test(tc, test_signal_stop_inside_callback);
  suite_add_tcase(suite, tc);

  return suite;
}

int main(void) {
  return test_run_suite(signal_suite());
}
