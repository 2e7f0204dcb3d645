/* Check suite for the slot table (runtime/table.c, driven directly): generations, reuse, and pages given back by trim. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "runtime/table.h"

enum { N = 3 * AX__CHUNK_SLOTS / 2 }; /* one chunk and a half */

static int dummy[1];

/* True when the page holding p is resident. */
static bool resident(const void *p) {
  long page = sysconf(_SC_PAGESIZE);
  unsigned char vec = 0;
  void *base = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
  ck_assert_int_eq(mincore(base, (size_t)page, &vec), 0);
  return (vec & 1) != 0;
}

/* Takes n slots, puts an entity in each and returns their indexes and
 * generations. */
static void fill(ax__table_t *t, uint32_t *idx, uint32_t *gen, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    int64_t s = ax__table_alloc(t);
    ck_assert_int_ge(s, 0);
    idx[i] = (uint32_t)s;
    ax__slot_t *sl = ax__table_slot(t, idx[i]);
    gen[i] = atomic_load(&sl->gen);
    atomic_store(&sl->ptr, (void *)dummy);
    ck_assert_ptr_eq(ax__table_get(t, idx[i], gen[i]), dummy);
  }
}

static void empty(ax__table_t *t, const uint32_t *idx, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    ax__table_retire(t, idx[i]);
    ax__table_free(t, idx[i]);
  }
}

START_TEST(test_table_trim_gives_back_and_revives) {
  ax__table_t t;
  ax__table_init(&t, 77);
  uint32_t *idx = calloc(N, sizeof *idx), *gen = calloc(N, sizeof *gen);
  uint32_t *idx2 = calloc(N, sizeof *idx2), *gen2 = calloc(N, sizeof *gen2);
  ck_assert(idx && gen && idx2 && gen2);
  fill(&t, idx, gen, N);
  ck_assert(resident(ax__table_slot(&t, 0)));
  /* Nothing free yet: nothing goes back. */
  ck_assert_uint_eq(ax__table_trim(&t), 0);
  /* Keep one slot in use: its page stays, every other page goes. */
  uint32_t keep = t.unit_slots * 3 + 5;
  for (uint32_t i = 0; i < N; i++)
    if (i != keep) {
      ax__table_retire(&t, idx[i]);
      ax__table_free(&t, idx[i]);
    }
  size_t page = (size_t)t.unit_slots * sizeof(ax__slot_t);
  size_t given = ax__table_trim(&t);
  ck_assert_uint_ge(given, (size_t)(N / t.unit_slots - 2) * page);
  ck_assert(!resident(ax__table_slot(&t, 0)));
  ck_assert(resident(ax__table_slot(&t, keep)));
  ck_assert_ptr_eq(ax__table_get(&t, idx[keep], gen[keep]), dummy);
  /* A second trim finds nothing more to give. */
  ck_assert_uint_eq(ax__table_trim(&t), 0);
  /* Every old reference fails, before and after the slots come back. */
  for (uint32_t i = 0; i < N; i++)
    if (i != keep)
      ck_assert_ptr_null(ax__table_get(&t, idx[i], gen[i]));
  fill(&t, idx2, gen2, N - 1);
  /* The same slots came back (nothing new was taken), each with a
   * generation none of its old references holds. */
  ck_assert_uint_eq(atomic_load(&t.next_unused), N);
  for (uint32_t i = 0; i < N; i++)
    if (i != keep)
      ck_assert_ptr_null(ax__table_get(&t, idx[i], gen[i]));
  for (uint32_t i = 0; i < N - 1; i++) {
    ck_assert_uint_ne(idx2[i], idx[keep]);
    ck_assert_uint_ne(gen2[i], 0);
    ck_assert_uint_ne(gen2[i], gen[idx2[i]]); /* idx[i] == i: the first fill took them in order */
  }
  /* Once more round: trim again after the new occupants stop. */
  empty(&t, idx2, N - 1);
  ck_assert_uint_gt(ax__table_trim(&t), 0);
  fill(&t, idx2, gen2, N - 1);
  for (uint32_t i = 0; i < N; i++)
    if (i != keep)
      ck_assert_ptr_null(ax__table_get(&t, idx[i], gen[i]));
  free(idx);
  free(gen);
  free(idx2);
  free(gen2);
  ax__table_destroy(&t);
}
END_TEST

/* A slot freed while it waits in a unit of the free stack keeps the unit:
 * a unit goes back only when all its slots are free. */
START_TEST(test_table_trim_partial_units_stay) {
  ax__table_t t;
  ax__table_init(&t, 5);
  uint32_t n = t.unit_slots * 4;
  uint32_t *idx = calloc(n, sizeof *idx), *gen = calloc(n, sizeof *gen);
  ck_assert(idx && gen);
  fill(&t, idx, gen, n);
  /* Free every other slot: no unit is all free. */
  for (uint32_t i = 0; i < n; i += 2) {
    ax__table_retire(&t, idx[i]);
    ax__table_free(&t, idx[i]);
  }
  ck_assert_uint_eq(ax__table_trim(&t), 0);
  for (uint32_t i = 1; i < n; i += 2)
    ck_assert_ptr_eq(ax__table_get(&t, idx[i], gen[i]), dummy);
  /* The free slots are all still there to take (no new slot is used). */
  for (uint32_t i = 0; i < n; i += 2)
    ck_assert_int_lt(ax__table_alloc(&t), (int64_t)n);
  ck_assert_uint_eq(atomic_load(&t.next_unused), n);
  free(idx);
  free(gen);
  ax__table_destroy(&t);
}
END_TEST

/* Generations wrap (1 .. 2^23 - 1, then 1 again).  A table whose first
 * generation is near the top: every slot of a page takes one occupant,
 * then one slot is reused 20 times and wraps while the others do not; the
 * page goes back and comes back.  No reference of any of the hot slot's
 * occupants may name the new one.  The page's floor used to be the
 * highest value, not the furthest generation: the hot slot came back at
 * its first occupant's generation. */
START_TEST(test_table_trim_after_wrap) {
  const uint32_t top = (1u << AX__REF_GEN_BITS) - 1;
  ax__table_t t;
  ax__table_init(&t, top - 8);
  uint32_t n = t.unit_slots;
  uint32_t *idx = calloc(n, sizeof *idx), *gen = calloc(n, sizeof *gen);
  ck_assert(idx && gen);
  fill(&t, idx, gen, n);
  empty(&t, idx, n);
  enum { HOT = 20 };
  uint32_t hot = 0, old[HOT];
  for (int k = 0; k < HOT; k++) {
    int64_t s = ax__table_alloc(&t);
    ck_assert_int_ge(s, 0);
    hot = (uint32_t)s;
    old[k] = atomic_load(&ax__table_slot(&t, hot)->gen);
    atomic_store(&ax__table_slot(&t, hot)->ptr, (void *)dummy);
    ax__table_retire(&t, hot);
    ax__table_free(&t, hot);
  }
  ck_assert_uint_lt(old[HOT - 1], old[0]); /* it wrapped */
  ck_assert_uint_gt(ax__table_trim(&t), 0);
  fill(&t, idx, gen, n);
  for (uint32_t i = 0; i < n; i++) {
    if (idx[i] != hot)
      continue;
    for (int k = 0; k < HOT; k++)
      ck_assert_msg(ax__table_get(&t, hot, old[k]) == NULL,
                    "occupant %d's reference (generation %u) names the new occupant", k, old[k]);
  }
  free(idx);
  free(gen);
  ax__table_destroy(&t);
}
END_TEST

/* Threads take and free slots while another trims: no slot is lost or
 * handed out twice (run under ThreadSanitizer too). */
enum { THREADS = 3, ROUNDS = 2000, HOLD = 300, MAX_SLOTS = 1 << 22 };

typedef struct worker {
  ax__table_t *t;
  atomic_int *owner; /* per slot: the worker holding it + 1, or 0 */
  atomic_int bad;
} worker_t;

static atomic_bool stop_trim;

typedef struct job {
  worker_t *w;
  int id;
} job_t;

static void *churn_job(void *arg) {
  job_t *j = arg;
  uint32_t held[HOLD];
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < HOLD; i++) {
      int64_t s = ax__table_alloc(j->w->t);
      if (s < 0 || s >= MAX_SLOTS) {
        atomic_fetch_add(&j->w->bad, 1);
        return NULL;
      }
      int none = 0;
      if (!atomic_compare_exchange_strong(&j->w->owner[s], &none, j->id + 1))
        atomic_fetch_add(&j->w->bad, 1); /* handed out twice */
      held[i] = (uint32_t)s;
    }
    for (int i = 0; i < HOLD; i++) {
      atomic_store(&j->w->owner[held[i]], 0);
      ax__table_retire(j->w->t, held[i]);
      ax__table_free(j->w->t, held[i]);
    }
  }
  return NULL;
}

static void *trimmer(void *arg) {
  ax__table_t *t = arg;
  while (!atomic_load(&stop_trim))
    (void)ax__table_trim(t);
  return NULL;
}

START_TEST(test_table_trim_concurrent) {
  ax__table_t t;
  ax__table_init(&t, 9);
  worker_t w = {.t = &t};
  w.owner = calloc(MAX_SLOTS, sizeof *w.owner);
  ck_assert_ptr_nonnull(w.owner);
  atomic_store(&stop_trim, false);
  pthread_t tr, th[THREADS];
  job_t jobs[THREADS];
  ck_assert_int_eq(pthread_create(&tr, NULL, trimmer, &t), 0);
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (job_t){&w, i};
    ck_assert_int_eq(pthread_create(&th[i], NULL, churn_job, &jobs[i]), 0);
  }
  for (int i = 0; i < THREADS; i++)
    pthread_join(th[i], NULL);
  atomic_store(&stop_trim, true);
  pthread_join(tr, NULL);
  ck_assert_int_eq(atomic_load(&w.bad), 0);
  /* Every slot is free again: each can be taken exactly once more (while
   * a trim holds the free stack, allocs take new slots: the table grows). */
  uint32_t used = atomic_load(&t.next_unused);
  for (uint32_t i = 0; i < used; i++) {
    int64_t s = ax__table_alloc(&t);
    ck_assert_int_ge(s, 0);
    ck_assert_int_lt(s, (int64_t)used);
    int none = 0;
    ck_assert(atomic_compare_exchange_strong(&w.owner[s], &none, 99));
  }
  free(w.owner);
  ax__table_destroy(&t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("table");
  TCase *tc = tcase_create("trim");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_table_trim_gives_back_and_revives);
  tcase_add_test(tc, test_table_trim_partial_units_stay);
  tcase_add_test(tc, test_table_trim_after_wrap);
  tcase_add_test(tc, test_table_trim_concurrent);
  suite_add_tcase(s, tc);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
