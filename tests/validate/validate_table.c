/* Validates runtime/table.c under many threads: a slot is never handed out twice, the tagged free stack survives ABA, and a retired slot's generation turns stale references away. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/epoch.h"
#include "runtime/table.h"
#include "validate.h"

enum {
  THREADS = 6,      /* more than the CPUs of a small machine */
  MAX_SLOTS = 4096, /* the most slots a test may create */
};

/* ------------------------------------------------------------------------ */
/* Allocation: every slot has at most one holder, and no slot is lost.      */

typedef struct alloc_test {
  ax__table_t table;
  /* owner[i]: 1 + the thread holding slot i, 0 when nobody holds it.  A
   * slot handed to a second thread while the first holds it fails the
   * claim. */
  _Atomic uint32_t owner[MAX_SLOTS];
  uint64_t iterations; /* per thread */
  uint32_t hold;       /* slots a thread holds at most */
  _Atomic int64_t max_index;
} alloc_test_t;

typedef struct alloc_arg {
  alloc_test_t *t;
  uint32_t id;
} alloc_arg_t;

/* Claims a slot that alloc just returned; fails if someone holds it. */
static void claim(alloc_test_t *t, int64_t index, uint32_t id) {
  VALIDATE_CHECK(index >= 0, "ax__table_alloc: %s", ax_strerror((int)index));
  VALIDATE_CHECK(index < MAX_SLOTS, "slot %lld: slots are leaking", (long long)index);
  uint32_t none = 0;
  /* acq_rel: acquire orders this claim after the previous holder's
   * release of the slot (below); release is for the next claimant. */
  bool claimed = atomic_compare_exchange_strong_explicit(&t->owner[index], &none, id + 1,
                                                         memory_order_acq_rel, memory_order_acquire);
  VALIDATE_CHECK(claimed, "slot %lld handed to thread %u while thread %u holds it",
                 (long long)index, id, none - 1);
  /* Relaxed, the load and the CAS: a maximum read after every thread is
   * joined. */
  int64_t seen = atomic_load_explicit(&t->max_index, memory_order_relaxed);
  while (index > seen &&
         !atomic_compare_exchange_weak_explicit(&t->max_index, &seen, index,
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* Gives a held slot back, as the runtime does: generation bumped, then
 * back on the free stack. */
static void unclaim(alloc_test_t *t, uint32_t index, uint32_t id) {
  ax__slot_t *s = ax__table_slot(&t->table, index);
  VALIDATE_CHECK(s != NULL, "no chunk holds slot %u", index);
  /* Relaxed: this thread holds the slot, so nobody else writes gen. */
  uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
  ax__table_retire(&t->table, index);
  VALIDATE_CHECK(atomic_load_explicit(&s->gen, memory_order_relaxed) != gen,
                 "retire left slot %u at generation %u", index, gen);
  uint32_t mine = id + 1;
  /* Release: pairs with the next claimant's acquire; this holder is done
   * with the slot before the free below makes it available again. */
  bool released = atomic_compare_exchange_strong_explicit(&t->owner[index], &mine, 0,
                                                          memory_order_release, memory_order_relaxed);
  VALIDATE_CHECK(released, "slot %u held by thread %u was taken over by thread %u", index, id,
                 mine - 1);
  ax__table_free(&t->table, index);
}

static void *alloc_worker(void *arg) {
  alloc_arg_t *aa = arg;
  alloc_test_t *t = aa->t;
  validate_rng_t rng = validate_rng_new(aa->id + 7);
  uint32_t held[64];
  uint32_t count = 0;
  VALIDATE_CHECK(t->hold <= 64, "hold %u > 64", t->hold);
  for (uint64_t i = 0; i < t->iterations; i++) {
    bool take = count == 0 || (count < t->hold && validate_rng_below(&rng, 2) == 0);
    if (take) {
      int64_t index = ax__table_alloc(&t->table);
      claim(t, index, aa->id);
      held[count++] = (uint32_t)index;
    } else {
      /* Give back a random one: the free stack's order gets mixed. */
      uint32_t k = validate_rng_below(&rng, count);
      unclaim(t, held[k], aa->id);
      held[k] = held[--count];
    }
    if (validate_rng_below(&rng, 1024) == 0)
      sched_yield();
  }
  while (count > 0)
    unclaim(t, held[--count], aa->id);
  return NULL;
}

/* Runs THREADS workers, each holding up to `hold` slots, then checks that
 * every slot ever created is back on the free stack exactly once. */
static void run_alloc_test(uint32_t hold, uint64_t iterations) {
  alloc_test_t *t = validate_zalloc(sizeof *t);
  ax__table_init(&t->table, 12345);
  t->iterations = iterations;
  t->hold = hold;
  atomic_init(&t->max_index, -1);
  pthread_t threads[THREADS];
  alloc_arg_t args[THREADS];
  for (uint32_t i = 0; i < THREADS; i++) {
    args[i] = (alloc_arg_t){t, i};
    validate_thread_start(&threads[i], alloc_worker, &args[i]);
  }
  for (uint32_t i = 0; i < THREADS; i++)
    validate_thread_join(threads[i]);

  /* Relaxed: every thread is joined. */
  int64_t created = atomic_load_explicit(&t->max_index, memory_order_relaxed) + 1;
  ck_assert_int_gt(created, 0);
  /* At most every thread's holding plus one in flight each; more means the
   * free stack lost slots and alloc had to make new ones. */
  ck_assert_msg(created <= (int64_t)THREADS * (hold + 2),
                "%lld slots created for %d threads holding %u each", (long long)created,
                THREADS, hold);
  /* Single-threaded now: the free stack must give back each created slot
   * once, and then a new one. */
  for (int64_t n = 0; n < created; n++) {
    int64_t index = ax__table_alloc(&t->table);
    VALIDATE_CHECK(index >= 0 && index < created, "free stack gave slot %lld of %lld",
                   (long long)index, (long long)created);
    claim(t, index, 0);
  }
  ck_assert_int_eq(ax__table_alloc(&t->table), created);
  ax__table_destroy(&t->table);
  free(t);
}

START_TEST(test_table_alloc_unique) {
  run_alloc_test(32, test_scaled(300000));
}
END_TEST

/* Two slots at most per thread, so a dozen slots in all: the free stack's
 * head is popped and pushed back all the time, the same few slots over and
 * over, which is where an untagged stack lets a stale CAS through (ABA).
 * (Measured on 2 CPUs with the tag taken out of ax__table_alloc and
 * ax__table_free: 9 failures in 10 runs, plain and ThreadSanitizer.) */
START_TEST(test_table_free_stack_aba) {
  run_alloc_test(2, test_scaled(600000));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Generations, alone and under readers.                                    */

/* A slot's generation now (relaxed: these checks run on one thread). */
static uint32_t gen_of(ax__slot_t *s) {
  return atomic_load_explicit(&s->gen, memory_order_relaxed);
}

START_TEST(test_table_generation_wraps) {
  ax__table_t *t = validate_zalloc(sizeof *t);
  /* The last generation wraps to 1, never 0. */
  ax__table_init(t, (1u << AX__REF_GEN_BITS) - 1);
  int64_t index = ax__table_alloc(t);
  ck_assert_int_ge(index, 0);
  ax__slot_t *s = ax__table_slot(t, (uint32_t)index);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(gen_of(s), (1u << AX__REF_GEN_BITS) - 1);
  int marker;
  /* Relaxed: one thread. */
  atomic_store_explicit(&s->ptr, &marker, memory_order_relaxed);
  ax__table_retire(t, (uint32_t)index);
  ck_assert_uint_eq(gen_of(s), 1);
  /* Relaxed: one thread. */
  ck_assert_ptr_null(atomic_load_explicit(&s->ptr, memory_order_relaxed));
  ax__table_free(t, (uint32_t)index);
  ck_assert_int_eq(ax__table_alloc(t), index);
  ax__table_retire(t, (uint32_t)index);
  ck_assert_uint_eq(gen_of(s), 2);
  ax__table_destroy(t);

  /* A base of 0 becomes 1: generation 0 is never valid. */
  ax__table_init(t, 0);
  index = ax__table_alloc(t);
  ck_assert_int_ge(index, 0);
  s = ax__table_slot(t, (uint32_t)index);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(gen_of(s), 1);
  ax__table_destroy(t);
  free(t);
}
END_TEST

enum {
  READERS = 4,
  LIVE = 16,         /* entities alive at once */
  PUBLISHED = 64,    /* references readers pick from (stale ones too) */
  QUARANTINE = 1024, /* reclaimed entities kept poisoned before free() */
};

#define ENT_LIVE 0x0b1ec70b1ec70b1eull
#define ENT_DEAD 0xdeaddeaddeaddeadull

/* An entity a slot points to while it is alive. */
typedef struct ent {
  uint64_t magic; /* ENT_LIVE until reclaimed, then ENT_DEAD */
  uint32_t index, gen; /* the slot and generation it was created with */
  struct ent *next_retired;
  uint64_t retired_epoch;
} ent_t;

typedef struct gen_test {
  ax__table_t table;
  ax__epoch_t epoch;
  /* References as (gen << 32 | index), newest over oldest; 0 = none yet. */
  _Atomic uint64_t published[PUBLISHED];
  _Atomic int stop;
  _Atomic uint64_t hits, stale; /* summed by readers at exit */
} gen_test_t;

static uint64_t ref_of(uint32_t gen, uint32_t index) {
  return (uint64_t)gen << 32 | index;
}

/* Resolves a reference the way ax__ref_enter does (ptr, then gen, both
 * acquire) inside an epoch section, and checks what it reaches: only the
 * entity of that very generation, alive. */
static void resolve(gen_test_t *g, ax__erec_t *r, uint64_t ref, uint64_t *hits,
                    uint64_t *stale) {
  uint32_t index = (uint32_t)ref, gen = (uint32_t)(ref >> 32);
  ax__epoch_enter(&g->epoch, r);
  ax__slot_t *s = ax__table_slot(&g->table, index);
  VALIDATE_CHECK(s != NULL, "no chunk holds slot %u", index);
  /* Acquire pairs with the writer's release of ptr: the entity's fields.
   * Then gen, acquire as well: a reader that sees a reused slot's new
   * entity also sees the generation bumped when the old one died. */
  ent_t *e = atomic_load_explicit(&s->ptr, memory_order_acquire);
  if (e != NULL && atomic_load_explicit(&s->gen, memory_order_acquire) != gen)
    e = NULL;
  if (e == NULL) {
    (*stale)++;
  } else {
    VALIDATE_CHECK(e->magic == ENT_LIVE, "reference %u/%u reached a reclaimed entity", index, gen);
    VALIDATE_CHECK(e->index == index && e->gen == gen,
                   "stale reference %u/%u reached the entity of generation %u (slot %u)", index,
                   gen, e->gen, e->index);
    (*hits)++;
  }
  ax__epoch_exit(r);
}

typedef struct gen_reader_arg {
  gen_test_t *g;
  uint32_t id;
} gen_reader_arg_t;

static void *gen_reader(void *arg) {
  gen_reader_arg_t *ra = arg;
  gen_test_t *g = ra->g;
  validate_rng_t rng = validate_rng_new(ra->id + 31);
  ax__erec_t *r = ax__epoch_register(&g->epoch);
  VALIDATE_CHECK(r != NULL, "ax__epoch_register: out of memory");
  uint64_t kept[16] = {0}; /* references this reader saw earlier */
  uint64_t hits = 0, stale = 0;
  /* Relaxed: the flag only ends the loop; the join orders the rest. */
  while (!atomic_load_explicit(&g->stop, memory_order_relaxed)) {
    uint32_t k = validate_rng_below(&rng, 16);
    uint64_t ref;
    if (validate_rng_below(&rng, 2) == 0 && kept[k] != 0) {
      ref = kept[k]; /* an old reference, likely stale by now */
    } else {
      /* Acquire pairs with the writer's release: the slot's entity was
       * stored before its reference was published. */
      ref = atomic_load_explicit(&g->published[validate_rng_below(&rng, PUBLISHED)],
                                 memory_order_acquire);
      if (ref == 0)
        continue;
      kept[k] = ref;
    }
    resolve(g, r, ref, &hits, &stale);
  }
  ax__epoch_release(r);
  /* Relaxed: summed after every reader is joined. */
  atomic_fetch_add_explicit(&g->hits, hits, memory_order_relaxed);
  atomic_fetch_add_explicit(&g->stale, stale, memory_order_relaxed);
  return NULL;
}

/* The owner: creates entities in fresh slots, kills the oldest (retire),
 * and after an epoch grace period frees the entity and the slot, as the
 * runtime does for a dead actor (retire, then ax__reclaim). */
typedef struct owner {
  ent_t *live[LIVE];
  uint32_t live_count, live_first;
  ent_t *retired_head, *retired_tail;
  ent_t *quarantine[QUARANTINE];
  uint64_t quarantined;
  uint64_t *issued; /* every reference ever published */
  uint64_t issued_count;
} owner_t;

static void owner_reclaim(gen_test_t *g, owner_t *o, bool all) {
  uint64_t now = UINT64_MAX;
  if (!all) {
    ax__epoch_advance(&g->epoch);
    now = ax__epoch_advance(&g->epoch);
  }
  while (o->retired_head != NULL && (all || o->retired_head->retired_epoch + 2 <= now)) {
    ent_t *e = o->retired_head;
    o->retired_head = e->next_retired;
    if (o->retired_head == NULL)
      o->retired_tail = NULL;
    uint32_t index = e->index;
    e->magic = ENT_DEAD;
    e->gen = UINT32_MAX;
    ent_t **cell = &o->quarantine[o->quarantined++ % QUARANTINE];
    free(*cell);
    *cell = e;
    ax__table_free(&g->table, index);
  }
}

static void owner_spawn(gen_test_t *g, owner_t *o) {
  int64_t index = ax__table_alloc(&g->table);
  VALIDATE_CHECK(index >= 0, "ax__table_alloc: %s", ax_strerror((int)index));
  ax__slot_t *s = ax__table_slot(&g->table, (uint32_t)index);
  VALIDATE_CHECK(s != NULL, "no chunk holds slot %lld", (long long)index);
  ent_t *e = calloc(1, sizeof *e);
  VALIDATE_CHECK(e != NULL, "out of memory");
  e->magic = ENT_LIVE;
  e->index = (uint32_t)index;
  /* Relaxed: the owner alone writes gen (retire). */
  e->gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
  /* A slot just taken holds no entity. */
  VALIDATE_CHECK(atomic_load_explicit(&s->ptr, memory_order_relaxed) == NULL,
                 "slot %lld was handed out still pointing to an entity", (long long)index);
  /* Release: e's fields happen before a reader's acquire load of ptr. */
  atomic_store_explicit(&s->ptr, e, memory_order_release);
  uint64_t ref = ref_of(e->gen, e->index);
  o->issued[o->issued_count] = ref;
  /* Release: readers that load the reference see ptr stored (above). */
  atomic_store_explicit(&g->published[o->issued_count % PUBLISHED], ref, memory_order_release);
  o->issued_count++;
  o->live[(o->live_first + o->live_count++) % LIVE] = e;
}

static void owner_kill_oldest(gen_test_t *g, owner_t *o) {
  ent_t *e = o->live[o->live_first];
  o->live_first = (o->live_first + 1) % LIVE;
  o->live_count--;
  ax__slot_t *s = ax__table_slot(&g->table, e->index);
  ax__table_retire(&g->table, e->index);
  /* Relaxed: the owner alone writes gen. */
  uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
  VALIDATE_CHECK(gen != e->gen && gen != 0, "retire left generation %u (was %u)", gen, e->gen);
  e->next_retired = NULL;
  /* Acquire, as the runtime retires an actor: read after the slot was
   * retired, so the grace period counts from at least the epoch in which
   * it went stale. */
  e->retired_epoch = atomic_load_explicit(&g->epoch.epoch, memory_order_acquire);
  if (o->retired_tail != NULL)
    o->retired_tail->next_retired = e;
  else
    o->retired_head = e;
  o->retired_tail = e;
}

START_TEST(test_table_generation_turns_stale_refs_away) {
  gen_test_t *g = validate_zalloc(sizeof *g);
  ax__table_init(&g->table, 77);
  ax__epoch_init(&g->epoch);
  owner_t *o = calloc(1, sizeof *o);
  ck_assert_ptr_nonnull(o);
  uint64_t spawns = test_scaled(200000);
  o->issued = calloc(spawns, sizeof *o->issued);
  ck_assert_ptr_nonnull(o->issued);

  pthread_t threads[READERS];
  gen_reader_arg_t args[READERS];
  for (uint32_t i = 0; i < READERS; i++) {
    args[i] = (gen_reader_arg_t){g, i};
    validate_thread_start(&threads[i], gen_reader, &args[i]);
  }
  for (uint64_t i = 0; i < spawns; i++) {
    if (o->live_count == LIVE) {
      owner_kill_oldest(g, o);
      owner_reclaim(g, o, false);
    }
    owner_spawn(g, o);
  }
  /* Relaxed: see gen_reader. */
  atomic_store_explicit(&g->stop, 1, memory_order_relaxed);
  for (uint32_t i = 0; i < READERS; i++)
    validate_thread_join(threads[i]);

  /* Relaxed: every reader is joined. */
  uint64_t hits = atomic_load_explicit(&g->hits, memory_order_relaxed);
  uint64_t stale = atomic_load_explicit(&g->stale, memory_order_relaxed);
  ck_assert_uint_gt(hits, 0);
  ck_assert_uint_gt(stale, 0);

  /* Every reference issued: the live ones resolve, every dead one's slot
   * has another generation now (slots were reused many times, far fewer
   * than 2^24, so no generation came round again). */
  ax__erec_t *r = ax__epoch_register(&g->epoch);
  ck_assert_ptr_nonnull(r);
  uint64_t live_hits = 0, dead = 0;
  for (uint64_t i = 0; i < o->issued_count; i++) {
    uint64_t h = 0, st = 0;
    resolve(g, r, o->issued[i], &h, &st);
    bool alive = i + o->live_count >= o->issued_count;
    VALIDATE_CHECK(alive ? h == 1 : st == 1, "reference %llu of %llu: %s", (unsigned long long)i,
                   (unsigned long long)o->issued_count,
                   alive ? "alive but not found" : "dead but still resolves");
    live_hits += h;
    dead += st;
  }
  ck_assert_uint_eq(live_hits, o->live_count);
  ck_assert_uint_eq(dead, o->issued_count - o->live_count);
  ax__epoch_release(r);

  while (o->live_count > 0)
    owner_kill_oldest(g, o);
  owner_reclaim(g, o, true);
  for (unsigned i = 0; i < QUARANTINE; i++)
    free(o->quarantine[i]);
  free(o->issued);
  free(o);
  ax__epoch_destroy(&g->epoch);
  ax__table_destroy(&g->table);
  free(g);
}
END_TEST

static Suite *table_suite(void) {
  Suite *suite = suite_create("validate_table");
  TCase *tc = tcase_create("alloc");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_table_alloc_unique);
  tcase_add_test(tc, test_table_free_stack_aba);
  suite_add_tcase(suite, tc);
  tc = tcase_create("generation");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_table_generation_wraps);
  tcase_add_test(tc, test_table_generation_turns_stale_refs_away);
  suite_add_tcase(suite, tc);
  return suite;
}

int main(void) {
  return test_run_suite(table_suite());
}
