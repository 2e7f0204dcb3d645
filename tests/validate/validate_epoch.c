/* Validates runtime/epoch.c under many threads: no reader ever sees an object its grace period freed, and records come and go with short-lived threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/epoch.h"
#include "validate.h"

enum {
  READERS = 4,
  QUARANTINE = 1024, /* reclaimed objects kept poisoned before free() */
  WAVE = 4,          /* short-lived threads alive at once */
};

#define OBJ_LIVE 0x11fe11fe11fe11feull
#define OBJ_DEAD 0xdeaddeaddeaddeadull

/* The shared object.  The reclaimer writes every field before publishing
 * it and again (the poison) once its grace period is over; readers only
 * read, inside a critical section. */
typedef struct obj {
  uint64_t magic;  /* OBJ_LIVE until reclaimed, then OBJ_DEAD */
  uint64_t serial;
  uint64_t check;  /* ~serial */
  struct obj *next_retired;
  uint64_t retired_epoch;
} obj_t;

/* What the reclaimer owns: the retired list, waiting for its grace
 * period, and the quarantine of poisoned objects.  The quarantine keeps a
 * reclaimed object's memory from being reused at once, so a reader that
 * reached it too late reads the poison instead of a new object that
 * happens to sit at the same address. */
typedef struct reclaimer {
  obj_t *retired_head, *retired_tail;
  obj_t *quarantine[QUARANTINE];
  uint64_t quarantined; /* objects ever put in quarantine */
  uint64_t retired, reclaimed, serial;
} reclaimer_t;

typedef struct shared {
  ax__epoch_t epoch;
  _Atomic(obj_t *) current;
  _Atomic int stop;
  _Atomic uint64_t reads; /* critical sections run, summed at thread exit */
  reclaimer_t rec;        /* the reclaiming thread's only */
} shared_t;

static obj_t *obj_new(reclaimer_t *rec) {
  obj_t *o = malloc(sizeof *o);
  VALIDATE_CHECK(o != NULL, "out of memory");
  o->magic = OBJ_LIVE;
  o->serial = rec->serial++;
  o->check = ~o->serial;
  o->next_retired = NULL;
  o->retired_epoch = 0;
  return o;
}

/* Poisons a reclaimed object and parks it in the quarantine; the object it
 * pushes out is freed for real. */
static void obj_reclaim(reclaimer_t *rec, obj_t *o) {
  o->magic = OBJ_DEAD;
  o->serial = UINT64_MAX;
  o->check = 0;
  obj_t **cell = &rec->quarantine[rec->quarantined++ % QUARANTINE];
  free(*cell);
  *cell = o;
  rec->reclaimed++;
}

/* Replaces the shared object and retires the old one, the way the runtime
 * does: the epoch is read after the object was unlinked. */
static void swap_and_retire(shared_t *s) {
  reclaimer_t *rec = &s->rec;
  obj_t *fresh = obj_new(rec);
  /* acq_rel: release publishes fresh's fields to readers that load the
   * pointer with acquire; acquire orders this after the old object's
   * publication (it was written by this thread anyway). */
  obj_t *old = atomic_exchange_explicit(&s->current, fresh, memory_order_acq_rel);
  /* Acquire, as the runtime retires an actor: read after the exchange
   * (program order), so the grace period counts from at least the epoch
   * in which the object stopped being reachable. */
  old->retired_epoch = atomic_load_explicit(&s->epoch.epoch, memory_order_acquire);
  if (rec->retired_tail != NULL)
    rec->retired_tail->next_retired = old;
  else
    rec->retired_head = old;
  rec->retired_tail = old;
  rec->retired++;
}

/* Reclaims what has had its grace period, as ax__reclaim does: two
 * advances, then everything retired at least two epochs ago.  all: the
 * readers are gone, reclaim everything. */
static void reclaim(shared_t *s, bool all) {
  reclaimer_t *rec = &s->rec;
  uint64_t now = UINT64_MAX;
  if (!all) {
    ax__epoch_advance(&s->epoch);
    now = ax__epoch_advance(&s->epoch);
  }
  while (rec->retired_head != NULL && (all || rec->retired_head->retired_epoch + 2 <= now)) {
    obj_t *o = rec->retired_head;
    rec->retired_head = o->next_retired;
    if (rec->retired_head == NULL)
      rec->retired_tail = NULL;
    obj_reclaim(rec, o);
  }
}

static void reclaimer_finish(shared_t *s) {
  reclaim(s, true);
  /* Relaxed: every reader is joined. */
  obj_t *o = atomic_load_explicit(&s->current, memory_order_relaxed);
  free(o);
  for (unsigned i = 0; i < QUARANTINE; i++)
    free(s->rec.quarantine[i]);
}

/* One critical section: enter, load the shared object, check it, dwell a
 * little (so a reclaimer that frees too early overlaps), check again,
 * exit.  Fails the test on a reclaimed object. */
static void read_once(shared_t *s, ax__erec_t *r, uint32_t dwell) {
  ax__epoch_enter(&s->epoch, r);
  /* Acquire pairs with the reclaimer's exchange: the object's fields. */
  obj_t *o = atomic_load_explicit(&s->current, memory_order_acquire);
  uint64_t serial = o->serial;
  VALIDATE_CHECK(o->magic == OBJ_LIVE && o->check == ~serial,
                 "a reader reached object %llu after its grace period (magic %llx)",
                 (unsigned long long)serial, (unsigned long long)o->magic);
  for (volatile uint32_t spin = 0; spin < dwell; spin++) {
  }
  VALIDATE_CHECK(o->magic == OBJ_LIVE && o->serial == serial && o->check == ~serial,
                 "object %llu was reclaimed while a reader was inside its critical section",
                 (unsigned long long)serial);
  ax__epoch_exit(r);
}

static ax__erec_t *register_or_fail(ax__epoch_t *e) {
  ax__erec_t *r = ax__epoch_register(e);
  VALIDATE_CHECK(r != NULL, "ax__epoch_register: out of memory");
  return r;
}

/* ------------------------------------------------------------------------ */
/* Readers against a reclaimer.                                             */

typedef struct reader_arg {
  shared_t *s;
  uint32_t id;
} reader_arg_t;

static void *reader(void *arg) {
  reader_arg_t *ra = arg;
  shared_t *s = ra->s;
  validate_rng_t rng = validate_rng_new(ra->id + 1);
  ax__erec_t *r = register_or_fail(&s->epoch);
  uint64_t reads = 0;
  /* Relaxed: the flag only ends the loop; the join orders the rest. */
  while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
    read_once(s, r, validate_rng_below(&rng, 64));
    /* Now and then give the record back and claim one again (maybe another
     * thread's old one) while the reclaimer scans the list. */
    if (++reads % 4096 == 0) {
      ax__epoch_release(r);
      r = register_or_fail(&s->epoch);
    }
    if (validate_rng_below(&rng, 256) == 0)
      sched_yield();
  }
  ax__epoch_release(r);
  /* Relaxed: summed after every reader is joined. */
  atomic_fetch_add_explicit(&s->reads, reads, memory_order_relaxed);
  return NULL;
}

static shared_t *shared_new(void) {
  shared_t *s = validate_zalloc(sizeof *s);
  ax__epoch_init(&s->epoch);
  atomic_init(&s->current, obj_new(&s->rec));
  atomic_init(&s->stop, 0);
  atomic_init(&s->reads, 0);
  return s;
}

static void shared_free(shared_t *s) {
  reclaimer_finish(s);
  ax__epoch_destroy(&s->epoch);
  free(s);
}

START_TEST(test_epoch_readers_never_see_reclaimed) {
  shared_t *s = shared_new();
  pthread_t threads[READERS];
  reader_arg_t args[READERS];
  for (uint32_t i = 0; i < READERS; i++) {
    args[i] = (reader_arg_t){s, i};
    validate_thread_start(&threads[i], reader, &args[i]);
  }

  /* The reclaimer: this thread swaps, retires and reclaims. */
  uint64_t swaps = test_scaled(3000000);
  for (uint64_t i = 0; i < swaps; i++) {
    swap_and_retire(s);
    reclaim(s, false);
  }
  uint64_t reclaimed_while_reading = s->rec.reclaimed;
  /* Relaxed: see the readers' loop. */
  atomic_store_explicit(&s->stop, 1, memory_order_relaxed);
  for (uint32_t i = 0; i < READERS; i++)
    validate_thread_join(threads[i]);

  /* The epoch did move while readers were busy, and with no reader left
   * two advances give everything its grace period. */
  ck_assert_uint_gt(reclaimed_while_reading, 0);
  reclaim(s, false);
  ck_assert_msg(s->rec.retired_head == NULL, "%llu objects still waiting with no reader",
                (unsigned long long)(s->rec.retired - s->rec.reclaimed));
  ck_assert_uint_eq(s->rec.reclaimed, swaps);
  /* Relaxed: every reader is joined. */
  ck_assert_uint_gt(atomic_load_explicit(&s->reads, memory_order_relaxed), 0);
  shared_free(s);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Records claimed and given back by short-lived threads, while a           */
/* reclaimer advances the epoch.                                            */

/* Which records are held now, keyed by address (records live as long as
 * the epoch): a record claimed by two live threads at once shows as a
 * holder count above 1. */
enum { HOLDERS = 256 };

typedef struct holders {
  _Atomic(ax__erec_t *) key[HOLDERS];
  _Atomic int count[HOLDERS];
} holders_t;

/* The holder counter of record r, inserted on first use. */
static _Atomic int *holders_of(holders_t *h, ax__erec_t *r) {
  uint32_t i = (uint32_t)(((uintptr_t)r >> 4) * 2654435761u) % HOLDERS;
  for (uint32_t n = 0; n < HOLDERS; n++, i = (i + 1) % HOLDERS) {
    ax__erec_t *none = NULL;
    /* Relaxed: the key only names a counter; the counter's own RMWs are
     * what the check relies on. */
    if (atomic_compare_exchange_strong_explicit(&h->key[i], &none, r, memory_order_relaxed,
                                                memory_order_relaxed) ||
        none == r)
      return &h->count[i];
  }
  VALIDATE_CHECK(0, "more than %d epoch records", HOLDERS);
  return NULL;
}

typedef struct churn {
  shared_t *s;
  holders_t holders;
  uint64_t sections; /* critical sections per short-lived thread */
} churn_t;

typedef struct churn_arg {
  churn_t *c;
  uint32_t id;
} churn_arg_t;

static void *short_lived(void *arg) {
  churn_arg_t *ca = arg;
  churn_t *c = ca->c;
  validate_rng_t rng = validate_rng_new(ca->id + 1000);
  ax__erec_t *r = register_or_fail(&c->s->epoch);
  _Atomic int *held = holders_of(&c->holders, r);
  /* Relaxed: a counter of claims; two live holders of one record see
   * each other whatever the order. */
  int before = atomic_fetch_add_explicit(held, 1, memory_order_relaxed);
  VALIDATE_CHECK(before == 0, "an epoch record was handed to two live threads");
  for (uint64_t i = 0; i < c->sections; i++)
    read_once(c->s, r, validate_rng_below(&rng, 64));
  /* Relaxed: as above; this happens before the release below. */
  atomic_fetch_sub_explicit(held, 1, memory_order_relaxed);
  ax__epoch_release(r);
  return NULL;
}

static void *churn_reclaimer(void *arg) {
  shared_t *s = arg;
  /* Relaxed: the flag only ends the loop; the join orders the rest. */
  while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
    swap_and_retire(s);
    reclaim(s, false);
  }
  return NULL;
}

START_TEST(test_epoch_records_of_short_lived_threads) {
  churn_t *c = calloc(1, sizeof *c);
  ck_assert_ptr_nonnull(c);
  c->s = shared_new();
  c->sections = 200;
  pthread_t rec;
  validate_thread_start(&rec, churn_reclaimer, c->s);

  uint64_t waves = test_scaled(1000);
  uint32_t id = 0;
  for (uint64_t w = 0; w < waves; w++) {
    pthread_t threads[WAVE];
    churn_arg_t args[WAVE];
    for (uint32_t i = 0; i < WAVE; i++) {
      args[i] = (churn_arg_t){c, id++};
      validate_thread_start(&threads[i], short_lived, &args[i]);
    }
    for (uint32_t i = 0; i < WAVE; i++)
      validate_thread_join(threads[i]);
  }
  /* Relaxed: see churn_reclaimer. */
  atomic_store_explicit(&c->s->stop, 1, memory_order_relaxed);
  validate_thread_join(rec);

  /* Every record is back: inactive, unclaimed, held by the list alone.
   * Released records were reused, so there are few of them.  Acquire
   * pairs with the release that pushed the last record (all threads are
   * joined anyway). */
  unsigned records = 0;
  for (ax__erec_t *r = atomic_load_explicit(&c->s->epoch.records, memory_order_acquire);
       r != NULL; r = r->next) {
    records++;
    /* Relaxed: every thread that wrote the record is joined. */
    ck_assert_uint_eq(atomic_load_explicit(&r->state, memory_order_relaxed), 0);
    ck_assert_int_eq(atomic_load_explicit(&r->in_use, memory_order_relaxed), 0);
    ck_assert_int_eq(atomic_load_explicit(&r->refs, memory_order_relaxed), 1);
  }
  ck_assert_uint_ge(records, 1);
  ck_assert_msg(records <= 4 * WAVE, "%u records for %d threads at a time: released ones are "
                "not reused", records, WAVE);
  /* The reclaimer got through: the epoch kept moving. */
  ck_assert_uint_gt(c->s->rec.reclaimed, 0);
  shared_free(c->s);
  free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A thread's release may come after the epoch is destroyed (a foreign     */
/* thread that outlives the runtime): the last of the two frees the record. */

typedef struct late {
  ax__epoch_t *epoch;
  _Atomic int registered;
  _Atomic int go;
} late_t;

static void *late_releaser(void *arg) {
  late_t *l = arg;
  ax__erec_t *r = register_or_fail(l->epoch);
  /* Release: the registration happens before the destroy that waits for
   * this count. */
  atomic_fetch_add_explicit(&l->registered, 1, memory_order_release);
  uint64_t spins = 0;
  /* Relaxed: only a start signal, so that releases race with the destroy;
   * the record's reference count orders the frees. */
  while (!atomic_load_explicit(&l->go, memory_order_relaxed))
    validate_backoff(&spins);
  ax__epoch_release(r);
  return NULL;
}

START_TEST(test_epoch_release_races_destroy) {
  uint64_t rounds = test_scaled(2000);
  for (uint64_t round = 0; round < rounds; round++) {
    ax__epoch_t *e = validate_zalloc(sizeof *e);
    ax__epoch_init(e);
    late_t l = {.epoch = e};
    atomic_init(&l.registered, 0);
    atomic_init(&l.go, 0);
    pthread_t threads[2];
    for (unsigned i = 0; i < 2; i++)
      validate_thread_start(&threads[i], late_releaser, &l);
    uint64_t spins = 0;
    /* Acquire pairs with the threads' release: both records are on the
     * list before it is destroyed. */
    while (atomic_load_explicit(&l.registered, memory_order_acquire) < 2)
      validate_backoff(&spins);
    /* Relaxed: see late_releaser. */
    atomic_store_explicit(&l.go, 1, memory_order_relaxed);
    ax__epoch_destroy(e);
    free(e); /* release must never touch the epoch itself */
    for (unsigned i = 0; i < 2; i++)
      validate_thread_join(threads[i]);
  }
}
END_TEST

static Suite *epoch_suite(void) {
  Suite *suite = suite_create("validate_epoch");
  TCase *tc = tcase_create("reclaim");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_epoch_readers_never_see_reclaimed);
  suite_add_tcase(suite, tc);
  tc = tcase_create("records");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_epoch_records_of_short_lived_threads);
  tcase_add_test(tc, test_epoch_release_races_destroy);
  suite_add_tcase(suite, tc);
  return suite;
}

int main(void) {
  return test_run_suite(epoch_suite());
}
