/* Check suite for messages kept beyond their turn (runtime/core.h: ax__msg_keep, ax__msg_unkeep): intact until given back, released exactly once. */
#include <stdatomic.h>
#include <stdio.h>

#include "axon_test.h"
#include "runtime/core.h" /* internal: the test links the static library */

enum {
  MSG_DATA = AX_MSG_USER + 1, /* payload: an owned buffer "msg <i>" */
  MSG_FLUSH,                  /* check every kept message, give them back */
};

#define KEEP_MAX 4096

typedef struct keeper {
  ax__msg_t *kept[KEEP_MAX];
  unsigned nkept;
  unsigned every;          /* keep every every-th message */
  unsigned seen;
  _Atomic unsigned bad;    /* kept payloads that changed, early releases */
  _Atomic unsigned flushes;
} keeper_t;

static _Atomic unsigned released;
static _Atomic unsigned released_early; /* releases of buffers still kept */

typedef struct buf {
  _Atomic int kept;
  char text[32];
} buf_t;

static void release_buf(void *p) {
  buf_t *b = p;
  if (atomic_load(&b->kept))
    atomic_fetch_add(&released_early, 1);
  atomic_fetch_add(&released, 1);
  free(b);
}

static int keeper_actor(ax_actor_t *self, const ax_msg_t *m) {
  keeper_t *k = ax_state(self);
  if (m->type == MSG_DATA) {
    buf_t *b = (buf_t *)m->data;
    if (k->seen++ % k->every == 0 && k->nkept < KEEP_MAX) {
      atomic_store(&b->kept, 1);
      k->kept[k->nkept++] = ax__msg_keep(m);
    }
    return 0;
  }
  if (m->type == MSG_FLUSH) {
    for (unsigned i = 0; i < k->nkept; i++) {
      ax__msg_t *km = k->kept[i];
      buf_t *b = (buf_t *)km->m.data;
      unsigned n;
      if (sscanf(b->text, "msg %u", &n) != 1 || km->m.type != MSG_DATA)
        atomic_fetch_add(&k->bad, 1);
      atomic_store(&b->kept, 0);
      ax__msg_unkeep(self, km);
    }
    k->nkept = 0;
    atomic_fetch_add(&k->flushes, 1);
  }
  return 0;
}

static void send_data(ax_ref_t to, unsigned i) {
  buf_t *b = calloc(1, sizeof *b);
  ck_assert_ptr_nonnull(b);
  snprintf(b->text, sizeof b->text, "msg %u", i);
  ck_assert_int_eq(ax_send_owned(to, MSG_DATA, b, sizeof *b, release_buf), 0);
}

/* Messages kept across many later ones (and across idle periods, when the
 * last one is the mailbox's stub) stay intact; their owned buffers are
 * released when given back, not before, and every buffer exactly once. */
START_TEST(test_keep_outlives_turn) {
  ax_rt_t *rt = test_rt_new(1, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  static keeper_t k;
  memset(&k, 0, sizeof k);
  k.every = 3;
  atomic_store(&released, 0);
  atomic_store(&released_early, 0);
  ax_ref_t a = test_spawn(rt, keeper_actor, &k, AX_PLACE_ANY, 0, NULL, NULL);
  unsigned n = (unsigned)test_scaled(3000), flushes = 0;
  for (unsigned i = 0; i < n; i++) {
    send_data(a, i);
    if (i % 500 == 499) {
      test_sleep_ms(5); /* idle: a kept message may be the mailbox's stub */
      test_send(a, MSG_FLUSH, NULL, 0);
      flushes++;
    }
  }
  test_send(a, MSG_FLUSH, NULL, 0);
  flushes++;
  TEST_WAIT_UNTIL(atomic_load(&k.flushes) == flushes, 10000);
  TEST_WAIT_UNTIL(atomic_load(&released) == n, 10000);
  ck_assert_uint_eq(atomic_load(&k.bad), 0);
  ck_assert_uint_eq(atomic_load(&released_early), 0);
  test_rt_stop_join_free(rt);
  ck_assert_uint_eq(atomic_load(&released), n);
}
END_TEST

static Suite *keep_suite(void) {
  Suite *s = suite_create("keep");
  TCase *tc = tcase_create("keep");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_keep_outlives_turn);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(keep_suite()); }
