/* Validates the start of a grace period: a slot retired (ax__table_retire), then the epoch read, is never still found by a reader the grace period does not wait for. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "runtime/epoch.h"
#include "runtime/table.h"
#include "validate.h"

/*
 * Two threads in lock-step rounds (a spinning barrier), as ax_port_close
 * and a sender meet:
 *  - the closer retires the slot, reads the epoch and waits for two more
 *    (ax_port_close; an actor's death does the same through retire());
 *  - the sender advances the epoch (as another core's reclaim may at that
 *    moment), enters it and looks the slot up (ax__ref_enter), then stays
 *    inside until the closer has decided.
 * If the sender found the entry, the closer's grace period must not end
 * while the sender is inside: it may only when the closer's epoch read
 * came before the sender's advance, so the sender's epoch is one the wait
 * does not count.  Without a full fence between the retire's stores and
 * the epoch's load, the load can pass the stores still in the store
 * buffer: the closer reads the old epoch while the sender, one epoch on,
 * still sees the entry (about 1 round in 2,000 on the machine this was
 * found on).
 */

enum { ROUNDS = 400000 };

typedef struct lockstep {
  _Atomic unsigned count, sense;
} lockstep_t;

/* Both threads pass together; local flips each time. */
static void lockstep_pass(lockstep_t *b, unsigned *local) {
  *local ^= 1u;
  if (atomic_fetch_add(&b->count, 1) == 1) {
    atomic_store(&b->count, 0);
    atomic_store(&b->sense, *local);
    return;
  }
  for (unsigned n = 0; atomic_load(&b->sense) != *local; n++)
    if ((n & 1023) == 1023)
      sched_yield();
}

typedef struct round_state {
  ax__table_t *table;
  ax__epoch_t *epoch;
  ax__erec_t *reader;
  uint32_t slot;
  uint64_t rounds;
  lockstep_t step;
  /* written by one thread between two passes, read by the other after */
  uint32_t gen;
  void *found; /* what the sender's lookup returned */
} round_state_t;

static void *sender_main(void *arg) {
  round_state_t *r = arg;
  unsigned local = 0;
  for (uint64_t i = 0; i < r->rounds; i++) {
    lockstep_pass(&r->step, &local);
    ax__epoch_advance(r->epoch);
    ax__epoch_enter(r->epoch, r->reader);
    r->found = ax__table_get(r->table, r->slot, r->gen);
    lockstep_pass(&r->step, &local); /* the closer decides while this is inside */
    lockstep_pass(&r->step, &local);
    ax__epoch_exit(r->reader);
  }
  return NULL;
}

START_TEST(test_retire_then_epoch) {
  static int entity;
  round_state_t *r = validate_zalloc(sizeof *r);
  r->table = validate_zalloc(sizeof *r->table);
  r->epoch = validate_zalloc(sizeof *r->epoch);
  ax__table_init(r->table, 1);
  ax__epoch_init(r->epoch);
  r->reader = ax__epoch_register(r->epoch);
  ck_assert_ptr_nonnull(r->reader);
  int64_t slot = ax__table_alloc(r->table);
  ck_assert_int_ge(slot, 0);
  r->slot = (uint32_t)slot;
  r->rounds = test_scaled(ROUNDS);
  ax__slot_t *s = ax__table_slot(r->table, r->slot);
  pthread_t sender;
  validate_thread_start(&sender, sender_main, r);
  unsigned local = 0;
  uint64_t found = 0, ended_inside = 0;
  for (uint64_t i = 0; i < r->rounds; i++) {
    r->gen = atomic_load(&s->gen);
    atomic_store(&s->ptr, (void *)&entity); /* the entry lives again, same slot */
    lockstep_pass(&r->step, &local);
    ax__table_retire(r->table, r->slot);
    uint64_t target = atomic_load_explicit(&r->epoch->epoch, memory_order_acquire) + 2;
    lockstep_pass(&r->step, &local);
    if (r->found != NULL) {
      found++;
      /* The wait of ax_port_close, tried a few times: the sender is inside
       * with the entry, so the grace period must not be over. */
      for (int k = 0; k < 4; k++)
        if (ax__epoch_advance(r->epoch) >= target) {
          ended_inside++;
          break;
        }
    }
    lockstep_pass(&r->step, &local);
  }
  validate_thread_join(sender);
  ck_assert_msg(ended_inside == 0,
                "%llu of %llu rounds: the grace period ended with a reader inside that had "
                "found the retired entry (%llu found it)",
                (unsigned long long)ended_inside, (unsigned long long)r->rounds,
                (unsigned long long)found);
  ax__epoch_release(r->reader);
  ax__epoch_destroy(r->epoch);
  ax__table_destroy(r->table);
  free(r->table);
  free(r->epoch);
  free(r);
}
END_TEST

int main(void) {
  Suite *s = suite_create("validate_retire");
  TCase *tc = tcase_create("retire");
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, test_retire_then_epoch);
  suite_add_tcase(s, tc);
  return test_run_suite(s);
}
