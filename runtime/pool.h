/* Per-core pools of fixed-size objects, with lock-free return from other threads. */
#ifndef AXON_RUNTIME_POOL_H
#define AXON_RUNTIME_POOL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/table.h" /* AX__CACHE_LINE */

typedef struct ax__core ax__core_t;

/* The core the calling thread runs, or NULL on a thread that is not a
 * core.  initial-exec: read with one instruction instead of a
 * __tls_get_addr call (it is on the path of every send and every free). */
extern _Thread_local ax__core_t *ax__tls_core __attribute__((tls_model("initial-exec")));

/*
 * A pool hands out objects of one size.  The owning core allocates and
 * frees through its private list with no atomics; another thread frees by
 * pushing onto the remote stack, which the owner takes whole (an exchange
 * with NULL, so there is no ABA).  Memory comes in slabs that start at
 * 64 KiB and double up to 2 MiB (those on transparent huge pages), kept
 * until the pool is destroyed.
 */
typedef struct ax__pool {
  void *local;      /* owner only: free objects, linked through their first word */
  void *slabs;      /* owner only: slab list, linked through their first word */
  size_t next_slab; /* owner only: the size of the next slab */
  uint32_t size;    /* object size */
  uint32_t cls;     /* index in the core's pool array */
  ax__core_t *owner;
  alignas(AX__CACHE_LINE) _Atomic(void *) remote; /* other threads push */
} ax__pool_t;

void ax__pool_init(ax__pool_t *p, ax__core_t *owner, uint32_t size, uint32_t cls);
/* Frees every slab.  No object of the pool may be in use any more. */
void ax__pool_destroy(ax__pool_t *p);
/* An object, or NULL when out of memory.  Owner core only. */
void *ax__pool_alloc(ax__pool_t *p);

/* Gives an object back to its pool.  Any thread: the owner core pushes it
 * on its private list, another thread on the pool's remote stack. */
static inline void ax__pool_free(ax__pool_t *home, void *obj) {
  if (home->owner == ax__tls_core) {
    *(void **)obj = home->local;
    home->local = obj;
    return;
  }
  void *head = atomic_load_explicit(&home->remote, memory_order_relaxed);
  do {
    *(void **)obj = head;
    /* Release: the link above is visible to the owner that takes the list. */
  } while (!atomic_compare_exchange_weak_explicit(&home->remote, &head, obj,
                                                  memory_order_release, memory_order_relaxed));
}

#endif /* AXON_RUNTIME_POOL_H */
