/* Check suite run in AXON_FAULT_INJECTION builds: out of memory is reported as -ENOMEM, never as something else, and nothing reported as sent is lost. */
#include <pthread.h>
#include <stdatomic.h>

#include "axon_test.h"

/* io/alloc.h: exported by fault-injection builds only. */
uint64_t ax__fault_alloc(uint64_t nth, uint64_t every);

enum { MSG_COUNT = AX_MSG_USER + 1 };

static _Atomic uint64_t received;

static int counter(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  if (m->type == MSG_COUNT)
    atomic_fetch_add(&received, 1);
  return 0;
}

typedef enum { OP_SEND, OP_STOP, OP_REGISTER } op_t;

typedef struct job {
  op_t op;
  ax_rt_t *rt;
  ax_ref_t to;
  uint64_t nth;
  int rc;
  uint64_t failed;
} job_t;

/* A thread that never used the runtime: its first call must allocate its
 * epoch record, and that allocation (or any other) may be the one that
 * fails. */
static void *fresh_thread(void *arg) {
  job_t *j = arg;
  ax__fault_alloc(j->nth, 0);
  switch (j->op) {
  case OP_SEND:
    j->rc = ax_send(j->to, MSG_COUNT, "x", 1);
    break;
  case OP_STOP:
    j->rc = ax_stop(j->to, 0);
    break;
  case OP_REGISTER:
    j->rc = ax_register(j->rt, "target", j->to);
    break;
  }
  j->failed = ax__fault_alloc(0, 0);
  return NULL;
}

static job_t run_job(op_t op, ax_rt_t *rt, ax_ref_t to, uint64_t nth) {
  job_t j = {.op = op, .rt = rt, .to = to, .nth = nth};
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, fresh_thread, &j), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  return j;
}

/* ax_send from a thread that is not a core, with each of its first
 * allocations failing in turn: 0 or -ENOMEM, never -ESRCH for the live
 * actor, and every send that returned 0 arrives.  Such a send allocates
 * only its message, from the thread's own pools (made on its first send,
 * adopted from a thread that exited when there is one); it needs no epoch
 * record. */
START_TEST(test_faults_foreign_send) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  atomic_store(&received, 0);
  ax_ref_t a = test_spawn(rt, counter, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  uint64_t sent = 0, enomem = 0;
  for (uint64_t nth = 1; nth <= 6; nth++) {
    job_t j = run_job(OP_SEND, rt, a, nth);
    ck_assert_msg(j.rc == 0 || j.rc == -ENOMEM, "allocation %llu failing: ax_send gave %s",
                  (unsigned long long)nth, ax_strerror(j.rc));
    ck_assert_msg(j.rc == 0 || j.failed == 1, "-ENOMEM with no failed allocation");
    sent += j.rc == 0;
    enomem += j.rc == -ENOMEM;
  }
  ck_assert_uint_ge(enomem, 1); /* the thread's message pools, or the message */
  TEST_WAIT_UNTIL(atomic_load(&received) == sent, 10000);
  test_sleep_ms(20);
  ck_assert_uint_eq(atomic_load(&received), sent);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ax_stop and ax_register likewise: -ENOMEM, never -ESRCH for a live
 * actor. */
START_TEST(test_faults_foreign_stop_register) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  ax_ref_t a = test_spawn(rt, counter, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  for (uint64_t nth = 1; nth <= 4; nth++) {
    job_t j = run_job(OP_REGISTER, rt, a, nth);
    ck_assert_msg(j.rc == 0 || j.rc == -ENOMEM || j.rc == -EEXIST,
                  "allocation %llu failing: ax_register gave %s", (unsigned long long)nth,
                  ax_strerror(j.rc));
  }
  ck_assert_uint_eq(ax_whereis(rt, "target"), a);
  for (uint64_t nth = 1; nth <= 4; nth++) {
    job_t j = run_job(OP_STOP, rt, a, nth);
    ck_assert_msg(j.rc == 0 || j.rc == -ENOMEM, "allocation %llu failing: ax_stop gave %s",
                  (unsigned long long)nth, ax_strerror(j.rc));
    if (j.rc == 0)
      break; /* stopped */
  }
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *faults_suite(void) {
  Suite *s = suite_create("faults");
  TCase *tc = tcase_create("foreign");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_faults_foreign_send);
  tcase_add_test(tc, test_faults_foreign_stop_register);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(faults_suite()); }
