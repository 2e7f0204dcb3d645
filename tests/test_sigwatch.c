/* Check suite for signals as messages: fan-out across cores, defaults without subscribers, unwatch, dead subscribers, masks. */
#include <pthread.h>
#include <signal.h>

#include "source_test.h"

/* True when signo is blocked in the calling thread. */
static bool blocked_here(int signo) {
  sigset_t cur;
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &cur), 0);
  return sigismember(&cur, signo) == 1;
}

/* Waits for the next event and checks it is signal signo from this process. */
static const sa_event_t *expect_signal(sa_env_t *env, int signo) {
  const sa_event_t *ev = sa_event(env, 10000);
  ck_assert_uint_eq(ev->type, AX_MSG_SIGNAL);
  ck_assert_int_eq(ev->signo, signo);
  ck_assert_int_eq(ev->pid, (int32_t)getpid());
  return ev;
}

/* ------------------------------------------------------------------------ */
/* Subscribing                                                               */

START_TEST(test_sigwatch_errors) {
  ck_assert_int_eq(ax_signal_watch(NULL, SIGUSR1), -EINVAL);
  ck_assert_int_eq(ax_signal_unwatch(NULL, SIGUSR1), -EINVAL);
  sa_env_t env;
  sa_env_new(&env, 1, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  int bad[] = {0, -1, SIGKILL, SIGSTOP, SIGSEGV, SIGPIPE, SIGPROF, 65, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, bad[i], 0, NULL, NULL), -EINVAL);
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_UNWATCH, 0, bad[i], 0, NULL, NULL), -EINVAL);
  }
  int good[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCHLD, SIGWINCH,
                SIGRTMIN, SIGRTMAX};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_UNWATCH, 0, good[i], 0, NULL, NULL), -ENOENT);
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, good[i], 0, NULL, NULL), 0);
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, good[i], 0, NULL, NULL), 0);
  }
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_UNWATCH, 0, good[i], 0, NULL, NULL), 0);
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_UNWATCH, 0, good[i], 0, NULL, NULL), -ENOENT);
  }
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
}
END_TEST

START_TEST(test_sigwatch_fan_out) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  /* The set is blocked in the thread that started the runtime. */
  ck_assert(blocked_here(SIGUSR1) && blocked_here(SIGINT) && blocked_here(SIGRTMIN));
  sa_actor_t a, b;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 1);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_SIG_WATCH, 0, SIGUSR1, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_SIG_WATCH, 0, SIGUSR1, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_SIG_WATCH, 0, SIGRTMIN + 1, 0, NULL, NULL), 0);

  for (int round = 0; round < 3; round++) {
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 2; i++) {
      const sa_event_t *ev = expect_signal(&env, SIGUSR1);
      ck_assert_int_eq(ev->ssi_code, SI_USER);
      ck_assert(!seen[ev->tag]);
      seen[ev->tag] = true;
      ck_assert_int_eq(ev->core, ev->tag == 1 ? 0 : 1);
    }
    ck_assert(sa_no_event(&env, 50));
  }

  /* Realtime signals queue: every one arrives, with its value. */
  int n = 40;
  for (int i = 0; i < n; i++) {
    union sigval v = {.sival_int = i};
    ck_assert_int_eq(sigqueue(getpid(), SIGRTMIN + 1, v), 0);
  }
  for (int i = 0; i < n; i++) {
    const sa_event_t *ev = expect_signal(&env, SIGRTMIN + 1);
    ck_assert_int_eq(ev->tag, 2);
    ck_assert_int_eq(ev->ssi_code, SI_QUEUE);
    ck_assert_int_eq(ev->ssi_int, i);
  }
  ck_assert(sa_no_event(&env, 50));

  /* The runtime kept running. */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_NOP, 0, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
  /* join gave the thread its mask back */
  ck_assert(!blocked_here(SIGUSR1) && !blocked_here(SIGRTMIN));
}
END_TEST

START_TEST(test_sigwatch_unwatch) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a, b;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 0);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 1);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_SIG_WATCH, 0, SIGUSR2, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_SIG_WATCH, 0, SIGHUP, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_SIG_WATCH, 0, SIGUSR2, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_SIG_UNWATCH, 0, SIGUSR2, 0, NULL, NULL), 0);
  for (int round = 0; round < 3; round++) {
    ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
    const sa_event_t *ev = expect_signal(&env, SIGUSR2);
    ck_assert_int_eq(ev->tag, 2);
    ck_assert(sa_no_event(&env, 50));
  }
  /* a still has SIGHUP. */
  ck_assert_int_eq(kill(getpid(), SIGHUP), 0);
  const sa_event_t *ev = expect_signal(&env, SIGHUP);
  ck_assert_int_eq(ev->tag, 1);
  /* b unwatches too: SIGUSR2 has no subscriber and stops the runtime. */
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_SIG_UNWATCH, 0, SIGUSR2, 0, NULL, NULL), 0);
  ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
  ck_assert_int_eq(ax_rt_join(env.rt), 0);
  ck_assert(sa_no_event(&env, 20));
  ck_assert_int_eq(atomic_load(&a.terminated) + atomic_load(&b.terminated), 2);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations), 0);
  sa_env_free(&env);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Defaults                                                                  */

START_TEST(test_sigwatch_default_stops) {
  /* With no subscriber, each of these stops the runtime gracefully. */
  int stoppers[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGQUIT, SIGALRM, SIGTERM, SIGINT};
  for (size_t i = 0; i < sizeof stoppers / sizeof stoppers[0]; i++) {
    sa_env_t env;
    sa_env_new(&env, 2, 0);
    sa_actor_t a;
    ax_ref_t ref = sa_spawn(&env, &a, 0, 1);
    /* subscribed to something else: that does not count */
    ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, SIGWINCH, 0, NULL, NULL), 0);
    ck_assert_int_eq(kill(getpid(), stoppers[i]), 0);
    ck_assert_int_eq(ax_rt_join(env.rt), 0);
    ck_assert_int_eq(atomic_load(&a.terminated), 1);
    ck_assert(sa_no_event(&env, 10));
    sa_env_free(&env);
  }
}
END_TEST

START_TEST(test_sigwatch_default_ignores) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 1);
  int ignored[] = {SIGCHLD, SIGWINCH, SIGRTMIN, SIGRTMAX};
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
    ck_assert_int_eq(kill(getpid(), ignored[i]), 0);
  /* A subscriber on SIGUSR1 gets its signal after them: they were read. */
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, SIGUSR1, 0, NULL, NULL), 0);
  ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
  expect_signal(&env, SIGUSR1);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_NOP, 0, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(atomic_load(&a.terminated), 0);
  sa_env_free(&env);
}
END_TEST

START_TEST(test_sigwatch_sigint_subscribed) {
  /* While SIGINT and SIGTERM have a subscriber, they do not stop the
   * runtime; they are messages like any other. */
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 1);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, SIGINT, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, SIGTERM, 0, NULL, NULL), 0);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(kill(getpid(), SIGINT), 0);
    expect_signal(&env, SIGINT);
    ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
    expect_signal(&env, SIGTERM);
  }
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_NOP, 0, 0, 0, NULL, NULL), 0);
  ck_assert_int_eq(atomic_load(&a.terminated), 0);
  /* Unsubscribed, SIGINT stops it again. */
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_UNWATCH, 0, SIGINT, 0, NULL, NULL), 0);
  ck_assert_int_eq(kill(getpid(), SIGINT), 0);
  ck_assert_int_eq(ax_rt_join(env.rt), 0);
  ck_assert_int_eq(atomic_load(&a.terminated), 1);
  ck_assert_int_eq(atomic_load(&a.violations), 0);
  sa_env_free(&env);
}
END_TEST

START_TEST(test_sigwatch_dead_subscriber) {
  sa_env_t env;
  sa_env_new(&env, 2, 0);
  sa_actor_t a, b, c;
  ax_ref_t ra = sa_spawn(&env, &a, 1, 1);
  ax_ref_t rb = sa_spawn(&env, &b, 2, 0);
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_SIG_WATCH, 0, SIGUSR1, 0, NULL, NULL), 0);
  ck_assert_int_eq(sa_cmd(&env, rb, CMD_SIG_WATCH, 0, SIGUSR2, 0, NULL, NULL), 0);
  ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
  ck_assert_int_eq(expect_signal(&env, SIGUSR1)->tag, 1);
  /* a stops; c is new on its core and subscribes to nothing. */
  ck_assert_int_eq(sa_cmd(&env, ra, CMD_STOP, 0, 0, 0, NULL, NULL), 0);
  TEST_WAIT_UNTIL(atomic_load(&a.terminated) == 1, 5000);
  ax_ref_t rc = sa_spawn(&env, &c, 3, 1);
  ck_assert_int_eq(sa_cmd(&env, rc, CMD_NOP, 0, 0, 0, NULL, NULL), 0);
  /* SIGUSR2 still reaches b. */
  ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
  ck_assert_int_eq(expect_signal(&env, SIGUSR2)->tag, 2);
  /* SIGUSR1 reaches nobody: its subscription died with a, so the
   * default applies and the runtime stops. */
  ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
  ck_assert_int_eq(ax_rt_join(env.rt), 0);
  ck_assert(sa_no_event(&env, 20));
  ck_assert_int_eq(atomic_load(&b.terminated) + atomic_load(&c.terminated), 2);
  ck_assert_int_eq(atomic_load(&a.violations) + atomic_load(&b.violations) +
                       atomic_load(&c.violations),
                   0);
  sa_env_free(&env);
}
END_TEST

START_TEST(test_sigwatch_no_signals_flag) {
  sigset_t before;
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &before), 0);
  sa_env_t env;
  sa_env_new(&env, 1, AX_RT_NO_SIGNALS);
  /* the runtime claimed nothing in this thread */
  ck_assert(!blocked_here(SIGUSR1) && !blocked_here(SIGINT));
  sa_actor_t a;
  ax_ref_t ref = sa_spawn(&env, &a, 0, 0);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, SIGUSR1, 0, NULL, NULL), -ENOTSUP);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_UNWATCH, 0, SIGUSR1, 0, NULL, NULL), -ENOENT);
  ck_assert_int_eq(sa_cmd(&env, ref, CMD_SIG_WATCH, 0, SIGKILL, 0, NULL, NULL), -EINVAL);
  sa_env_free(&env);
}
END_TEST

/* A subscriber whose mailbox is bounded (mailbox_max = 1) and full (one
 * message in a long turn) still gets its signal: a signal is axon's news,
 * which no bound counts, as a timer's tick.  It used to be refused by the
 * bound, and counted as received all the same: lost, and the default
 * (SIGUSR1 stops the runtime) did not apply either. */
enum { SW_BUSY = AX_MSG_USER + 60 };
static _Atomic int sw_signals, sw_watch = 1;

static void sw_init(ax_actor_t *self) { atomic_store(&sw_watch, ax_signal_watch(self, SIGUSR1)); }

static int sw_actor(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == SW_BUSY)
    test_sleep_ms(300); /* the bound is full until this turn ends */
  else if (m->type == AX_MSG_SIGNAL)
    atomic_fetch_add(&sw_signals, 1);
  return 0;
}

START_TEST(test_sigwatch_bounded_subscriber) {
  ax_rt_opts_t o = {.cores = 2, .spin_ns = -1, .flags = AX_RT_KEEP_ALIVE};
  ax_rt_t *rt;
  ck_assert_int_eq(ax_rt_new(&o, &rt), 0);
  ck_assert_int_eq(ax_rt_start(rt), 0);
  ax_spawn_opts_t so = {.init = sw_init, .placement = AX_PLACE_CORE, .core = 1,
                        .mailbox_max = 1};
  ax_ref_t a;
  ck_assert_int_eq(ax_spawn(rt, sw_actor, NULL, &so, &a), 0);
  TEST_WAIT_UNTIL(atomic_load(&sw_watch) != 1, 10000);
  ck_assert_int_eq(atomic_load(&sw_watch), 0);
  test_send(a, SW_BUSY, NULL, 0);
  test_sleep_ms(50);
  ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
  TEST_WAIT_UNTIL(atomic_load(&sw_signals) == 1, 10000);
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *sigwatch_suite(void) {
  Suite *s = suite_create("sigwatch");
  TCase *tc = tcase_create("subscribe");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sigwatch_errors);
  tcase_add_test(tc, test_sigwatch_fan_out);
  tcase_add_test(tc, test_sigwatch_unwatch);
  tcase_add_test(tc, test_sigwatch_dead_subscriber);
  tcase_add_test(tc, test_sigwatch_no_signals_flag);
  tcase_add_test(tc, test_sigwatch_bounded_subscriber);
  suite_add_tcase(s, tc);
  tc = tcase_create("defaults");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_sigwatch_default_stops);
  tcase_add_test(tc, test_sigwatch_default_ignores);
  tcase_add_test(tc, test_sigwatch_sigint_subscribed);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(sigwatch_suite()); }
