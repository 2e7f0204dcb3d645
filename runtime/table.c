/* Slot tables that map the slot of a reference to its actor or port. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io/alloc.h"
#include "runtime/table.h"

#define GEN_MASK ((1u << AX__REF_GEN_BITS) - 1)
#define CHUNK_BYTES ((size_t)AX__CHUNK_SLOTS * sizeof(ax__slot_t))
/* A chunk's mapping: its slots, then what it keeps about their units. */
#define MAP_BYTES (CHUNK_BYTES + AX__UNITS_MAX * sizeof(ax__unit_t))

/* The slot at an index whose chunk is known to exist (one that was taken
 * or freed). */
static ax__slot_t *slot_at(ax__table_t *t, uint32_t index) {
  /* Relaxed: the chunk was published to this thread by whatever gave it
   * the index (the acquire that popped or took it). */
  ax__slot_t *chunk =
      atomic_load_explicit(&t->chunks[index >> AX__CHUNK_BITS], memory_order_relaxed);
  return &chunk[index & (AX__CHUNK_SLOTS - 1)];
}

static ax__unit_t *units_of(ax__slot_t *chunk) {
  return (ax__unit_t *)((char *)chunk + CHUNK_BYTES);
}

void ax__table_init(ax__table_t *t, uint32_t gen_base) {
  /* Generations start at a base that differs between runtimes, so that a
   * stale reference into a freed runtime does not name an actor of a newer
   * runtime that took the same index (except by a 1 in 2^24 chance). */
  gen_base &= GEN_MASK;
  t->gen_base = gen_base != 0 ? gen_base : 1;
  long page = sysconf(_SC_PAGESIZE);
  if (page < 4096 || (size_t)page > CHUNK_BYTES)
    page = 4096;
  t->unit_slots = (uint32_t)((size_t)page / sizeof(ax__slot_t));
  for (unsigned i = 0; i < AX__MAX_CHUNKS; i++)
    atomic_init(&t->chunks[i], NULL);
  atomic_init(&t->free_head, 0);
  atomic_init(&t->next_unused, 0);
  atomic_init(&t->dead_head, 0);
}

void ax__table_destroy(ax__table_t *t) {
  for (unsigned i = 0; i < AX__MAX_CHUNKS; i++) {
    ax__slot_t *chunk = atomic_load_explicit(&t->chunks[i], memory_order_relaxed);
    if (chunk != NULL)
      munmap(chunk, MAP_BYTES);
    atomic_store_explicit(&t->chunks[i], NULL, memory_order_relaxed);
  }
}

/* Makes sure the chunk holding index exists; several threads may race to
 * create it, and the losers unmap theirs.  The mapping is zeros and costs
 * no memory until a slot in a page of it is taken (next_unused sets the
 * slot's first generation then). */
static int ensure_chunk(ax__table_t *t, uint32_t index) {
  _Atomic(ax__slot_t *) *cp = &t->chunks[index >> AX__CHUNK_BITS];
  if (atomic_load_explicit(cp, memory_order_acquire) != NULL)
    return 0;
  if (ax__alloc_fails())
    return -ENOMEM;
  void *m = mmap(NULL, MAP_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED)
    return -ENOMEM;
  ax__slot_t *chunk = m, *none = NULL;
  /* Release: nothing to publish but the mapping itself (zeros are an empty
   * slot); acquire on failure pairs with the winner's release. */
  if (!atomic_compare_exchange_strong_explicit(cp, &none, chunk, memory_order_acq_rel,
                                               memory_order_acquire))
    munmap(chunk, MAP_BYTES);
  return 0;
}

/* Pushes a chain whose first item is numbered item (stored + 1) on the
 * tagged stack *top; *link is the chain's last link, set to the old top.
 * The free stack and the stack of given-back units both use it.  Any
 * thread. */
static void tagged_push(_Atomic uint64_t *top, uint32_t item, _Atomic uint32_t *link) {
  uint64_t head = atomic_load_explicit(top, memory_order_relaxed);
  uint64_t desired;
  do {
    atomic_store_explicit(link, (uint32_t)head, memory_order_relaxed);
    desired = ((head >> 32) + 1) << 32 | (item + 1);
    /* Release: the chain's links (and what the caller wrote before, a
     * unit's floor) are visible to the thread that pops it. */
  } while (!atomic_compare_exchange_weak_explicit(top, &head, desired, memory_order_release,
                                                  memory_order_relaxed));
}

/* Pushes the chain of free slots first..last (linked by next_free, last's
 * link about to be set) on the free stack.  Any thread. */
static void push_free(ax__table_t *t, uint32_t first, ax__slot_t *last) {
  tagged_push(&t->free_head, first, &last->next_free);
}

/* The first slot of unit u (numbered chunk * AX__UNITS_MAX + place). */
static uint32_t unit_first(const ax__table_t *t, uint32_t u) {
  return (u / AX__UNITS_MAX) * AX__CHUNK_SLOTS + (u % AX__UNITS_MAX) * t->unit_slots;
}

/* Links the slots of unit u from `from` on in order, gives them generation
 * gen unless it is 0, and pushes them on the free stack.  The caller owns
 * them: no reader can find them (their pointers are NULL) and none is on
 * the free stack. */
static void push_unit(ax__table_t *t, uint32_t u, uint32_t from, uint32_t gen) {
  uint32_t n = t->unit_slots, first = unit_first(t, u);
  ax__slot_t *s = slot_at(t, first);
  for (uint32_t i = from; i < n; i++) {
    if (gen != 0)
      atomic_store_explicit(&s[i].gen, gen, memory_order_relaxed);
    if (i + 1 < n)
      atomic_store_explicit(&s[i].next_free, first + i + 2, memory_order_relaxed);
  }
  if (from < n)
    push_free(t, first + from, &s[n - 1]);
}

/* Takes a unit whose pages were given back, gives its slots their first
 * generation, keeps the first slot and pushes the rest on the free stack.
 * Returns the slot's index, or -1 when no unit is dead. */
static int64_t revive_unit(ax__table_t *t) {
  /* Acquire: the unit's floor and link, written before trim pushed it. */
  uint64_t head = atomic_load_explicit(&t->dead_head, memory_order_acquire);
  uint32_t u;
  for (;;) {
    if ((uint32_t)head == 0)
      return -1;
    u = (uint32_t)head - 1;
    ax__slot_t *chunk =
        atomic_load_explicit(&t->chunks[u / AX__UNITS_MAX], memory_order_acquire);
    uint32_t next = atomic_load_explicit(&units_of(chunk)[u % AX__UNITS_MAX].next_dead,
                                         memory_order_relaxed);
    /* The tag makes a unit popped and pushed back meanwhile fail this. */
    uint64_t desired = ((head >> 32) + 1) << 32 | next;
    if (atomic_compare_exchange_weak_explicit(&t->dead_head, &head, desired,
                                              memory_order_acq_rel, memory_order_acquire))
      break;
  }
  ax__slot_t *chunk = atomic_load_explicit(&t->chunks[u / AX__UNITS_MAX], memory_order_relaxed);
  uint32_t gen = atomic_load_explicit(&units_of(chunk)[u % AX__UNITS_MAX].floor,
                                      memory_order_relaxed);
  uint32_t first = unit_first(t, u);
  atomic_store_explicit(&slot_at(t, first)->gen, gen, memory_order_relaxed);
  push_unit(t, u, 1, gen);
  return first;
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
  int64_t revived = revive_unit(t);
  if (revived >= 0)
    return revived;
  uint32_t index = atomic_fetch_add_explicit(&t->next_unused, 1, memory_order_relaxed);
  if (index >= (1u << AX__REF_SLOT_BITS))
    return -ENOSPC;
  int rc = ensure_chunk(t, index);
  if (rc < 0)
    return rc;
  /* A slot never used before: only this thread has its index. */
  atomic_store_explicit(&slot_at(t, index)->gen, t->gen_base, memory_order_relaxed);
  return index;
}

void ax__table_free(ax__table_t *t, uint32_t index) {
  push_free(t, index, slot_at(t, index));
}

void ax__table_retire(ax__table_t *t, uint32_t index) {
  ax__slot_t *s = ax__table_slot(t, index);
  atomic_store_explicit(&s->ptr, NULL, memory_order_relaxed);
  uint32_t gen = (atomic_load_explicit(&s->gen, memory_order_relaxed) + 1) & GEN_MASK;
  if (gen == 0)
    gen = 1;
  /* Release: a reader that sees the new generation also sees ptr NULL. */
  atomic_store_explicit(&s->gen, gen, memory_order_release);
  /* seq_cst: the stores above are visible to every thread before this one
   * reads the epoch to start the entry's grace period (its callers do so
   * next).  A store followed by a load is not ordered otherwise: the read
   * could pass the stores still in the store buffer, and a sender that
   * entered the next epoch could still find the entry, yet not be waited
   * for (a port freed under a sender's push; reproduced with these calls,
   * about 1 round in 2,000 of a tight loop). */
  atomic_thread_fence(memory_order_seq_cst);
}

/* Gives unit u's pages back: trim found all its slots free and took
 * them off the free stack.  Returns the bytes given back. */
/* How many steps generation g is past the table's first, gen_base,
 * counting through the wrap (generations run 1 .. GEN_MASK, 0 skipped):
 * the order in which a slot's generations come, which their values do not
 * keep once one has wrapped. */
static uint32_t gen_dist(const ax__table_t *t, uint32_t g) {
  return (g + GEN_MASK - t->gen_base) % GEN_MASK;
}

static size_t bury_unit(ax__table_t *t, uint32_t u) {
  ax__slot_t *chunk = atomic_load_explicit(&t->chunks[u / AX__UNITS_MAX], memory_order_relaxed);
  uint32_t n = t->unit_slots;
  ax__slot_t *s = slot_at(t, unit_first(t, u));
  /* A free slot's generation is the one its next occupant gets, so the
   * furthest of them (in the order generations come, not by value: one
   * may have wrapped) is past every generation a reference to this unit
   * holds.  Every slot starts there when the unit comes back.  A slot far
   * behind the furthest would then come back to its old generations within
   * fewer than half the cycle's reuses: such a unit stays, as it is. */
  uint32_t floor = 0, far = 0, near = GEN_MASK;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t g = atomic_load_explicit(&s[i].gen, memory_order_relaxed);
    if (g == 0)
      continue;
    uint32_t d = gen_dist(t, g);
    if (floor == 0 || d > far) {
      far = d;
      floor = g;
    }
    if (d < near)
      near = d;
  }
  if (floor == 0 || far - near > GEN_MASK / 2 ||
      madvise(s, (size_t)n * sizeof *s, MADV_DONTNEED) != 0) {
    push_unit(t, u, 0, 0); /* keep it, free as it was */
    return 0;
  }
  ax__unit_t *meta = &units_of(chunk)[u % AX__UNITS_MAX];
  atomic_store_explicit(&meta->floor, floor, memory_order_relaxed);
  tagged_push(&t->dead_head, u, &meta->next_dead);
  return (size_t)n * sizeof *s;
}

size_t ax__table_trim(ax__table_t *t) {
  /* Take the whole free stack: from here its slots are this thread's.
   * Allocs meanwhile find it empty (they revive units or take new slots);
   * frees meanwhile push on the new, empty stack.  Acquire: the links of
   * the slots taken. */
  uint64_t head = atomic_load_explicit(&t->free_head, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(&t->free_head, &head, ((head >> 32) + 1) << 32,
                                                memory_order_acquire, memory_order_relaxed)) {
  }
  uint32_t first = (uint32_t)head;
  if (first == 0)
    return 0;
  uint32_t used = atomic_load_explicit(&t->next_unused, memory_order_relaxed);
  if (used > (1u << AX__REF_SLOT_BITS))
    used = 1u << AX__REF_SLOT_BITS;
  uint32_t n = t->unit_slots;
  uint32_t nunits = (used + AX__CHUNK_SLOTS - 1) / AX__CHUNK_SLOTS * AX__UNITS_MAX;
  /* Free slots counted per unit: a unit with n of them is all free, and
   * goes back.  Without the counts (no memory) nothing does. */
  uint16_t *count = ax__calloc(nunits, sizeof *count);
#define UNIT_OF(index) (((index) / AX__CHUNK_SLOTS) * AX__UNITS_MAX + ((index) % AX__CHUNK_SLOTS) / n)
  if (count != NULL)
    for (uint32_t i = first; i != 0;) {
      count[UNIT_OF(i - 1)]++;
      i = atomic_load_explicit(&slot_at(t, i - 1)->next_free, memory_order_relaxed);
    }
  /* Relink the slots of the units that stay and push them back in one
   * chain (a link is read before it is rewritten). */
  uint32_t keep_first = 0;
  ax__slot_t *keep_last = NULL;
  for (uint32_t i = first; i != 0;) {
    uint32_t index = i - 1;
    ax__slot_t *s = slot_at(t, index);
    i = atomic_load_explicit(&s->next_free, memory_order_relaxed);
    if (count != NULL && count[UNIT_OF(index)] == n)
      continue; /* its unit goes back */
    if (keep_last != NULL)
      atomic_store_explicit(&keep_last->next_free, index + 1, memory_order_relaxed);
    else
      keep_first = index;
    keep_last = s;
  }
#undef UNIT_OF
  if (keep_last != NULL)
    push_free(t, keep_first, keep_last);
  size_t given = 0;
  for (uint32_t u = 0; count != NULL && u < nunits; u++)
    if (count[u] == n)
      given += bury_unit(t, u);
  free(count);
  return given;
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
