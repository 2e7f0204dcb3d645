/* Slot tables: what the slot of a reference resolves to, with generations and lock-free reuse. */
#ifndef AXON_RUNTIME_TABLE_H
#define AXON_RUNTIME_TABLE_H

#include <stdalign.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include "runtime/ref.h"

#define AX__CACHE_LINE 64

/*
 * A table maps slot numbers to entities (a core's actors, or the runtime's
 * ports).  It grows in chunks that are never freed before the table, so a
 * reader indexing it needs no lock.  A slot's generation is bumped when its
 * entity stops (ax__table_retire), and the slot goes back on the free stack
 * (ax__table_free) only after an epoch grace period (epoch.h), so a stale
 * reference fails the generation check and never reaches reused memory.
 * Writers: any thread allocates slots (CAS on free_head, fetch_add on
 * next_unused); the owner of the entities retires and frees them.
 */
#define AX__CHUNK_BITS 16
#define AX__CHUNK_SLOTS (1u << AX__CHUNK_BITS)
#define AX__MAX_CHUNKS (1u << (AX__REF_SLOT_BITS - AX__CHUNK_BITS))
/* A chunk is cut into units of one page, the grain in which ax__table_trim
 * gives slots' memory back; at most this many (4 KiB pages). */
#define AX__UNITS_MAX 256u

typedef struct ax__slot {
  _Atomic(void *) ptr;
  _Atomic uint32_t gen;
  _Atomic uint32_t next_free; /* index + 1 of the next free slot, 0 = none */
} ax__slot_t;

/* What a chunk keeps about each of its units, after its slots (in pages
 * that are never given back). */
typedef struct ax__unit {
  /* The generation the unit's slots start at when it comes back: the
   * highest any of them had, so no old reference matches a new occupant. */
  _Atomic uint32_t floor;
  _Atomic uint32_t next_dead; /* the next given-back unit (number + 1), 0 = none */
} ax__unit_t;

typedef struct ax__table {
  _Atomic(ax__slot_t *) chunks[AX__MAX_CHUNKS];
  alignas(AX__CACHE_LINE) _Atomic uint64_t free_head; /* tag << 32 | (index + 1) */
  _Atomic uint32_t next_unused;
  /* Units whose pages went back to the kernel: tag << 32 | (unit + 1),
   * a unit numbered chunk * AX__UNITS_MAX + its place in the chunk. */
  _Atomic uint64_t dead_head;
  uint32_t gen_base;   /* the first generation of every slot */
  uint32_t unit_slots; /* slots per unit: the page size / sizeof(ax__slot_t) */
} ax__table_t;

/* Makes an empty table whose slots start at generation gen_base (made
 * non-zero and cut to AX__REF_GEN_BITS, 23 bits).  Never fails: chunks come on demand. */
void ax__table_init(ax__table_t *t, uint32_t gen_base);
/* Frees every chunk.  No other thread may use the table any more. */
void ax__table_destroy(ax__table_t *t);
/* Takes a free slot; returns its index, or -ENOMEM (no chunk) or -ENOSPC
 * (2^28 slots in use).  Any thread. */
int64_t ax__table_alloc(ax__table_t *t);
/* Returns a retired slot to the free stack.  The entities' owner, once no
 * reader can hold the slot's old generation (a grace period). */
void ax__table_free(ax__table_t *t, uint32_t index);
/* Bumps a slot's generation (skipping 0) and clears its pointer: from
 * here on references of the old generation fail.  The entities' owner. */
void ax__table_retire(ax__table_t *t, uint32_t index);
/* Gives back to the kernel the pages whose slots are all free, so a table
 * that once held a million entities does not keep 16 MiB: the pages read
 * as zeros (an empty slot) until ax__table_alloc takes a slot of theirs
 * again, and their slots then start above every generation they had.
 * Walks the free stack (O(free slots)): meant for when a core idles after
 * a burst.  Returns the number of bytes given back.  Only one thread may
 * trim a table at a time; allocs and frees may run meanwhile. */
size_t ax__table_trim(ax__table_t *t);

/* The slot at index, or NULL when its chunk does not exist (an index no
 * alloc has returned).  Any thread. */
static inline ax__slot_t *ax__table_slot(ax__table_t *t, uint32_t index) {
  /* Acquire pairs with the release that published the chunk. */
  ax__slot_t *chunk =
      atomic_load_explicit(&t->chunks[index >> AX__CHUNK_BITS], memory_order_acquire);
  return chunk != NULL ? &chunk[index & (AX__CHUNK_SLOTS - 1)] : NULL;
}

/* What the slot `slot` holds while its generation is `gen`, or NULL (no
 * such slot, empty, or retired since).  It only reads the slot; whether
 * the caller may then use the entity is its own business (the owner, or
 * a thread under the epoch).  Any thread. */
static inline void *ax__table_get(ax__table_t *t, uint32_t slot, uint32_t gen) {
  ax__slot_t *s = ax__table_slot(t, slot);
  if (s == NULL)
    return NULL;
  /* Acquire on ptr, then on gen: a reader that sees a reused slot's new
   * occupant (published with release) also sees the generation bumped
   * when the old one died. */
  void *p = atomic_load_explicit(&s->ptr, memory_order_acquire);
  if (p != NULL && atomic_load_explicit(&s->gen, memory_order_acquire) != gen)
    p = NULL;
  return p;
}

/* Calls fn(entity, arg) for every slot that holds an entity now, in slot
 * order; slots taken after the walk began may be missed.  The entities'
 * owner (it alone empties slots), or any thread once no other runs. */
void ax__table_each(ax__table_t *t, void (*fn)(void *entity, void *arg), void *arg);

#endif /* AXON_RUNTIME_TABLE_H */
