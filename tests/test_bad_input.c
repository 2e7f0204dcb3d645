/* Check suite for bad input to the stream calls: sizes that would wrap, references to nothing; each a clear error with nothing lost. */
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "stream_test.h"

enum {
  MSG_RUN = AX_MSG_USER + 1, /* run the test's step on the owner's core */
};

typedef void (*step_t)(ax_actor_t *self);

static int runner(ax_actor_t *self, const ax_msg_t *m) {
  if (m->type == MSG_RUN) {
    step_t step;
    memcpy(&step, m->data, sizeof step);
    step(self);
  }
  return 0;
}

static _Atomic int step_done;
static int sv[2];
static int results[16];

/* Runs step on an actor's core and waits for it. */
static void on_core(ax_ref_t a, step_t step) {
  atomic_store(&step_done, 0);
  test_send(a, MSG_RUN, &step, sizeof step);
  TEST_WAIT_UNTIL(atomic_load(&step_done) == 1, 10000);
}

static ax_rt_t *start(ax_ref_t *a) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  *a = test_spawn(rt, runner, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  return rt;
}

/* ------------------------------------------------------------------------ */
/* Write sizes                                                               */

/* With bytes queued, writes whose length would wrap the queue's size
 * arithmetic are refused whole with -EINVAL; what was queued still
 * arrives intact (ASan saw a heap overflow here before the bound). */
static void huge_writes(ax_actor_t *self) {
  ax_stream_opts_t o;
  memset(&o, 0, sizeof o);
  o.high_water = 4 << 20;
  ax_stream_t *s;
  int k = 0;
  results[k++] = ax_pipe_open(self, sv[0], sv[0], &o, &s);
  static unsigned char buf[1 << 20];
  st_fill_pattern(buf, 0, sizeof buf);
  results[k++] = ax_stream_write(s, buf, sizeof buf);
  results[k++] = ax_stream_queued(s) > 0 ? 0 : -1; /* the small socket buffer is full */
  size_t before = ax_stream_queued(s);
  results[k++] = ax_stream_write(s, buf, SIZE_MAX - 8);
  results[k++] = ax_stream_write(s, buf, SIZE_MAX / 2);
  results[k++] = ax_stream_write(s, buf, AX_MSG_MAX + 1);
  results[k++] = ax_stream_queued(s) == before ? 0 : -1;
  results[k++] = ax_stream_close(s); /* lingers until the peer has it all */
  atomic_store(&step_done, 1);
}

START_TEST(test_bad_input_write_sizes) {
  ax_ref_t a;
  ax_rt_t *rt = start(&a);
  st_socketpair(sv);
  int small = 4096;
  ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  on_core(a, huge_writes);
  ck_assert_int_eq(results[0], 0);
  ck_assert_int_eq(results[1], 0);
  ck_assert_int_eq(results[2], 0);
  ck_assert_int_eq(results[3], -EINVAL);
  ck_assert_int_eq(results[4], -EINVAL);
  ck_assert_int_eq(results[5], -EINVAL);
  ck_assert_int_eq(results[6], 0);
  ck_assert_int_eq(results[7], 0);
  bool eof = false;
  ck_assert_uint_eq(st_read_pattern(sv[1], (1 << 20) + 1, 10000, &eof, 0), 1 << 20);
  ck_assert(eof);
  close(sv[1]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Giving a stream to nobody                                                 */

static ax_ref_t give_to[4];

static void give_to_nobody(ax_actor_t *self) {
  ax_stream_t *s;
  results[0] = ax_pipe_open(self, sv[0], sv[0], NULL, &s);
  for (int i = 0; i < 4; i++)
    results[1 + i] = ax_stream_give(s, give_to[i]);
  /* Still ours after every refusal: it still writes. */
  results[5] = ax_stream_write(s, "ok", 2);
  results[6] = ax_stream_close(s);
  atomic_store(&step_done, 1);
}

static int quitter(ax_actor_t *self, const ax_msg_t *m) {
  (void)self;
  (void)m;
  return AX_STOP;
}

START_TEST(test_bad_input_give_to_nobody) {
  ax_ref_t a;
  ax_rt_t *rt = start(&a);
  st_socketpair(sv);
  ax_ref_t dead = test_spawn(rt, quitter, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  test_send(dead, MSG_RUN, NULL, 0);
  TEST_WAIT_UNTIL(ax_send(dead, MSG_RUN, NULL, 0) == -ESRCH, 10000);
  give_to[0] = 0x0123456789abcdefull; /* garbage naming runtime 6: none */
  give_to[1] = 0x0000deadbeef1234ull; /* runtime 13, core 219: none */
  give_to[2] = dead;
  give_to[3] = AX_REF_NONE;
  on_core(a, give_to_nobody);
  ck_assert_int_eq(results[0], 0);
  ck_assert_int_eq(results[1], -ESRCH);
  ck_assert_int_eq(results[2], -ESRCH);
  ck_assert_int_eq(results[3], -ESRCH);
  ck_assert_int_eq(results[4], -EINVAL);
  ck_assert_int_eq(results[5], 0);
  ck_assert_int_eq(results[6], 0);
  char got[3] = {0};
  struct pollfd pfd = {sv[1], POLLIN, 0};
  ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
  ck_assert_int_eq((int)read(sv[1], got, 2), 2);
  ck_assert_str_eq(got, "ok");
  ck_assert_int_eq(st_wait_eof(sv[1], 10000), 1);
  close(sv[1]);
  test_rt_stop_join_free(rt);
}
END_TEST

/* Giving to an actor of another runtime is -EXDEV. */
static void give_across(ax_actor_t *self) {
  ax_stream_t *s;
  results[0] = ax_pipe_open(self, sv[0], sv[0], NULL, &s);
  results[1] = ax_stream_give(s, give_to[0]);
  results[2] = ax_stream_close(s);
  atomic_store(&step_done, 1);
}

START_TEST(test_bad_input_give_other_runtime) {
  ax_ref_t a;
  ax_rt_t *rt = start(&a);
  ax_ref_t b;
  ax_rt_t *rt2 = test_rt_new(1, AX_RT_KEEP_ALIVE | AX_RT_NO_SIGNALS);
  test_rt_start(rt2);
  b = test_spawn(rt2, runner, NULL, AX_PLACE_ANY, 0, NULL, NULL);
  st_socketpair(sv);
  give_to[0] = b;
  on_core(a, give_across);
  ck_assert_int_eq(results[0], 0);
  ck_assert_int_eq(results[1], -EXDEV);
  ck_assert_int_eq(results[2], 0);
  close(sv[1]);
  test_rt_stop_join_free(rt2);
  test_rt_stop_join_free(rt);
}
END_TEST

static Suite *bad_input_suite(void) {
  Suite *s = suite_create("bad_input");
  TCase *tc = tcase_create("streams");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_bad_input_write_sizes);
  tcase_add_test(tc, test_bad_input_give_to_nobody);
  tcase_add_test(tc, test_bad_input_give_other_runtime);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(bad_input_suite()); }
