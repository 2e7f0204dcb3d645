/* Check suite for the index of records by key (actors/idmap.c, driven directly): chains of one key, removal from anywhere, filter, growth and shrinking. */
#include "axon_test.h"
#include "actors/idmap.h"

enum { NODES = 20000 };

typedef struct rec {
  ax__idnode_t node;
  bool in; /* the model: whether the index holds it */
} rec_t;

static rec_t recs[NODES];

/* How many members with key `key` a walk finds; each must be in the model. */
static size_t walk(const ax__idmap_t *m, uint64_t key) {
  size_t n = 0;
  for (ax__idnode_t *x = ax__idmap_next(m, key, NULL); x != NULL; x = ax__idmap_next(m, key, x)) {
    rec_t *r = (rec_t *)x;
    ck_assert_uint_eq(x->key, key);
    ck_assert_msg(r->in, "a removed record is still in the index");
    n++;
  }
  return n;
}

/* Checks the index against the model: every key's chain and the count. */
static void check_model(const ax__idmap_t *m, uint64_t shared_key) {
  size_t shared = 0, total = 0;
  for (size_t i = 0; i < NODES; i++) {
    if (!recs[i].in)
      continue;
    total++;
    if (recs[i].node.key == shared_key)
      shared++;
    else
      ck_assert_uint_eq(walk(m, recs[i].node.key), 1);
  }
  ck_assert_uint_eq(walk(m, shared_key), shared);
  ck_assert_uint_eq(m->count, total);
}

static bool drop_odd(ax__idnode_t *n, void *arg) {
  (void)arg;
  rec_t *r = (rec_t *)n;
  size_t i = (size_t)(r - recs);
  if (i % 2 == 1) {
    r->in = false;
    return false;
  }
  return true;
}

/* Half the records share one key (many monitors of one target), half
 * have keys of their own; records leave from the middle of the shared
 * chain, by filter, and in a random order, with the buckets growing and
 * shrinking on the way: the index always holds exactly the model. */
START_TEST(test_idmap_shared_key) {
  ax__idmap_t m = {0};
  const uint64_t shared_key = 0xabcdef;
  for (size_t i = 0; i < NODES; i++) {
    recs[i].node.key = i % 2 == 0 ? shared_key : 1000000 + i;
    ck_assert_int_eq(ax__idmap_add(&m, &recs[i].node), 0);
    recs[i].in = true;
  }
  check_model(&m, shared_key);
  /* Every fourth of the shared chain, from its middle. */
  for (size_t i = 0; i < NODES; i += 8) {
    ax__idmap_remove(&m, &recs[i].node);
    recs[i].in = false;
  }
  check_model(&m, shared_key);
  /* The records with keys of their own, by filter. */
  ax__idmap_filter(&m, drop_odd, NULL);
  check_model(&m, shared_key);
  /* The rest in a pseudo-random order; the buckets shrink meanwhile. */
  uint64_t x = 88172645463325252ull;
  size_t left = m.count;
  while (left > 0) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    size_t i = (size_t)(x % NODES);
    if (!recs[i].in)
      continue;
    ax__idmap_remove(&m, &recs[i].node);
    recs[i].in = false;
    left--;
    if (left % 997 == 0)
      check_model(&m, shared_key);
  }
  check_model(&m, shared_key);
  ck_assert_uint_le(m.bits, 4);
  /* Added again after it shrank: as at first. */
  for (size_t i = 0; i < 100; i++) {
    ck_assert_int_eq(ax__idmap_add(&m, &recs[i].node), 0);
    recs[i].in = true;
  }
  check_model(&m, shared_key);
  for (size_t i = 0; i < 100; i++) {
    ax__idmap_remove(&m, &recs[i].node);
    recs[i].in = false;
  }
  ck_assert_uint_eq(m.count, 0);
  ax__idmap_destroy(&m);
}
END_TEST

int main(void) {
  Suite *s = suite_create("idmap");
  TCase *tc = tcase_create("idmap");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_idmap_shared_key);
  suite_add_tcase(s, tc);
  return test_run_suite(s);
}
