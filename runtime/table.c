/* Slot tables that map the slot of a reference to its actor or port. */
#include <errno.h>
#include <stdlib.h>

#include "io/alloc.h"
#include "runtime/table.h"

void ax__table_init(ax__table_t *t, uint32_t gen_base) {
  /* Generations start at a base that differs between runtimes, so that a
   * stale reference into a freed runtime does not name an actor of a newer
   * runtime that took the same index (except by a 1 in 2^24 chance). */
  gen_base &= (1u << AX__REF_GEN_BITS) - 1;
  t->gen_base = gen_base != 0 ? gen_base : 1;
  for (unsigned i = 0; i < AX__MAX_CHUNKS; i++)
    atomic_init(&t->chunks[i], NULL);
  atomic_init(&t->free_head, 0);
  atomic_init(&t->next_unused, 0);
}

void ax__table_destroy(ax__table_t *t) {
  for (unsigned i = 0; i < AX__MAX_CHUNKS; i++) {
    free(atomic_load_explicit(&t->chunks[i], memory_order_relaxed));
    atomic_store_explicit(&t->chunks[i], NULL, memory_order_relaxed);
  }
}

/* Makes sure the chunk holding index exists; several threads may race to
 * create it, and the losers free theirs. */
static int ensure_chunk(ax__table_t *t, uint32_t index) {
  _Atomic(ax__slot_t *) *cp = &t->chunks[index >> AX__CHUNK_BITS];
  if (atomic_load_explicit(cp, memory_order_acquire) != NULL)
    return 0;
  ax__slot_t *chunk = ax__malloc(AX__CHUNK_SLOTS * sizeof *chunk);
  if (chunk == NULL)
    return -ENOMEM;
  for (uint32_t i = 0; i < AX__CHUNK_SLOTS; i++) {
    atomic_init(&chunk[i].ptr, NULL);
    atomic_init(&chunk[i].gen, t->gen_base);
    atomic_init(&chunk[i].next_free, 0);
  }
  ax__slot_t *none = NULL;
  /* Release publishes the initialised slots to readers of the chunk. */
  if (!atomic_compare_exchange_strong_explicit(cp, &none, chunk, memory_order_acq_rel,
                                               memory_order_acquire))
    free(chunk);
  return 0;
}

int64_t ax__table_alloc(ax__table_t *t) {
  /* Acquire: the free slot's next_free, written before it was pushed. */
  uint64_t head = atomic_load_explicit(&t->free_head, memory_order_acquire);
  while ((uint32_t)head != 0) {
    uint32_t index = (uint32_t)head - 1;
    ax__slot_t *s = ax__table_slot(t, index);
    if (s == NULL)
      return -ENOSPC; /* never: a freed slot's chunk exists (and says so to the compiler) */
    uint32_t next = atomic_load_explicit(&s->next_free, memory_order_relaxed);
    /* The tag in the high half changes on every pop, so a slot popped and
     * pushed back meanwhile (ABA) makes this CAS fail. */
    uint64_t desired = ((head >> 32) + 1) << 32 | next;
    if (atomic_compare_exchange_weak_explicit(&t->free_head, &head, desired,
                                              memory_order_acq_rel, memory_order_acquire))
      return index;
  }
  uint32_t index = atomic_fetch_add_explicit(&t->next_unused, 1, memory_order_relaxed);
  if (index >= (1u << AX__REF_SLOT_BITS))
    return -ENOSPC;
  int rc = ensure_chunk(t, index);
  return rc < 0 ? (int64_t)rc : (int64_t)index;
}

void ax__table_free(ax__table_t *t, uint32_t index) {
  ax__slot_t *s = ax__table_slot(t, index);
  uint64_t head = atomic_load_explicit(&t->free_head, memory_order_relaxed);
  uint64_t desired;
  do {
    atomic_store_explicit(&s->next_free, (uint32_t)head, memory_order_relaxed);
    desired = ((head >> 32) + 1) << 32 | (index + 1);
    /* Release: next_free is visible to the thread that pops this slot. */
  } while (!atomic_compare_exchange_weak_explicit(&t->free_head, &head, desired,
                                                  memory_order_release, memory_order_relaxed));
}

void ax__table_retire(ax__table_t *t, uint32_t index) {
  ax__slot_t *s = ax__table_slot(t, index);
  atomic_store_explicit(&s->ptr, NULL, memory_order_relaxed);
  uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
  gen = (gen + 1) & ((1u << AX__REF_GEN_BITS) - 1);
  if (gen == 0)
    gen = 1;
  /* Release: a reader that sees the new generation also sees ptr NULL. */
  atomic_store_explicit(&s->gen, gen, memory_order_release);
}

void ax__table_each(ax__table_t *t, void (*fn)(void *entity, void *arg), void *arg) {
  /* Acquire pairs with the release that published each entity (its
   * creator may be another thread); slots taken after this load are not
   * visited. */
  uint32_t used = atomic_load_explicit(&t->next_unused, memory_order_acquire);
  for (uint32_t i = 0; i < used; i++) {
    ax__slot_t *s = ax__table_slot(t, i);
    void *e = s != NULL ? atomic_load_explicit(&s->ptr, memory_order_acquire) : NULL;
    if (e != NULL)
      fn(e, arg);
  }
}
