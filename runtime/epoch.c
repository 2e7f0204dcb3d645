/* Epoch-based memory reclamation for entities that other threads may still be sending to. */
#include <stdlib.h>

#include "io/alloc.h"
#include "runtime/epoch.h"

void ax__epoch_init(ax__epoch_t *e) {
  atomic_init(&e->epoch, 0);
  atomic_init(&e->records, NULL);
}

/* Drops one reference; the last one frees the record. */
static void erec_put(ax__erec_t *r) {
  /* acq_rel: the other holder's last writes happen before the free. */
  if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
    free(r);
}

/* The runtime lets go of its records; one a thread still holds is freed by
 * that thread's ax__epoch_release(). */
void ax__epoch_destroy(ax__epoch_t *e) {
  ax__erec_t *r = atomic_load_explicit(&e->records, memory_order_acquire);
  while (r != NULL) {
    ax__erec_t *next = r->next;
    erec_put(r);
    r = next;
  }
  atomic_store_explicit(&e->records, NULL, memory_order_relaxed);
}

/* Claims a record: a released one if any, else a new one pushed on the
 * list.  Records are never unlinked while the runtime lives, so a scanner
 * can walk the list without a lock. */
ax__erec_t *ax__epoch_register(ax__epoch_t *e) {
  for (ax__erec_t *r = atomic_load_explicit(&e->records, memory_order_acquire); r != NULL;
       r = r->next) {
    int free_ = 0;
    if (atomic_compare_exchange_strong_explicit(&r->in_use, &free_, 1, memory_order_acquire,
                                                memory_order_relaxed)) {
      atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
      return r;
    }
  }
  ax__erec_t *r = ax__calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  atomic_init(&r->state, 0);
  atomic_init(&r->in_use, 1);
  atomic_init(&r->refs, 2);
  ax__erec_t *head = atomic_load_explicit(&e->records, memory_order_relaxed);
  do {
    r->next = head;
    /* Release publishes the record's initialised fields to scanners. */
  } while (!atomic_compare_exchange_weak_explicit(&e->records, &head, r, memory_order_release,
                                                  memory_order_relaxed));
  return r;
}

void ax__epoch_release(ax__erec_t *r) {
  /* Release, as in ax__epoch_exit; then the record may be claimed by
   * another thread, which sees it inactive. */
  atomic_store_explicit(&r->state, 0, memory_order_release);
  atomic_store_explicit(&r->in_use, 0, memory_order_release);
  erec_put(r);
}

void ax__epoch_enter(ax__epoch_t *e, ax__erec_t *r) {
  uint64_t now = atomic_load_explicit(&e->epoch, memory_order_relaxed);
  atomic_store_explicit(&r->state, now << 1 | 1, memory_order_relaxed);
  /* Store-load fence: the announcement above must be visible before this
   * thread reads any shared pointer (slot tables, mailboxes); it pairs with
   * the fence in ax__epoch_advance, so a reclaimer either sees this thread
   * active in this epoch or this thread sees the slot already cleared. */
  atomic_thread_fence(memory_order_seq_cst);
}

void ax__epoch_exit(ax__erec_t *r) {
  /* Release: every read this thread made of protected memory happens
   * before a reclaimer that sees it inactive frees that memory. */
  atomic_store_explicit(&r->state, 0, memory_order_release);
}

uint64_t ax__epoch_advance(ax__epoch_t *e) {
  /* Pairs with the fence in ax__epoch_enter (see there). */
  atomic_thread_fence(memory_order_seq_cst);
  uint64_t now = atomic_load_explicit(&e->epoch, memory_order_acquire);
  for (ax__erec_t *r = atomic_load_explicit(&e->records, memory_order_acquire); r != NULL;
       r = r->next) {
    /* Acquire pairs with ax__epoch_exit's release. */
    uint64_t s = atomic_load_explicit(&r->state, memory_order_acquire);
    if ((s & 1) && (s >> 1) != now)
      return now; /* a thread is still in an older epoch */
  }
  uint64_t expected = now;
  atomic_compare_exchange_strong_explicit(&e->epoch, &expected, now + 1, memory_order_acq_rel,
                                          memory_order_relaxed);
  return atomic_load_explicit(&e->epoch, memory_order_acquire);
}
