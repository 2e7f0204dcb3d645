/* Per-core object pools with lock-free return of objects freed on other threads. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io/alloc.h"
#include "runtime/pool.h"

/* Slabs start at 64 KiB and double with each new slab of a pool, up to
 * 2 MiB, which is allocated 2 MiB-aligned with transparent huge pages
 * advised: a small program stays small, and a pool that grows to a million
 * objects takes one page fault per 2 MiB instead of 512 (in skynet, page
 * faults were most of the time spent). */
#define AX__SLAB_MIN (64 * 1024)
#define AX__SLAB_MAX (2 * 1024 * 1024)

void ax__pool_init(ax__pool_t *p, ax__core_t *owner, uint32_t size, uint32_t cls) {
  p->owner = owner;
  p->local = NULL;
  p->slabs = NULL;
  p->next_slab = 0;
  p->size = (size + 15) & ~15u;
  p->cls = cls;
  atomic_init(&p->remote, NULL);
}

void ax__pool_destroy(ax__pool_t *p) {
  void *s = p->slabs;
  while (s != NULL) {
    void *next = *(void **)s;
    free(s);
    s = next;
  }
  p->slabs = p->local = NULL;
  atomic_store_explicit(&p->remote, NULL, memory_order_relaxed);
}

/* Carves a new slab into objects.  The slab's first 64 bytes link it into
 * the pool's slab list. */
static bool pool_grow(ax__pool_t *p) {
  size_t bytes = p->next_slab != 0 ? p->next_slab : AX__SLAB_MIN;
  while (bytes < AX__SLAB_MAX && bytes < 8 * (size_t)p->size + AX__CACHE_LINE)
    bytes *= 2; /* large objects: at least 8 per slab (16 of 128 KiB per 2 MiB) */
  char *slab = ax__aligned_alloc(bytes >= AX__SLAB_MAX ? AX__SLAB_MAX : AX__CACHE_LINE, bytes);
  if (slab == NULL)
    return false;
  if (bytes >= AX__SLAB_MAX)
    (void)madvise(slab, bytes, MADV_HUGEPAGE); /* advice only: fine if refused */
  p->next_slab = bytes * 2 <= AX__SLAB_MAX ? bytes * 2 : AX__SLAB_MAX;
  *(void **)slab = p->slabs;
  p->slabs = slab;
  /* Objects are linked from the end of the slab, so they are handed out
   * from its start: pages are touched in order. */
  size_t n = (bytes - AX__CACHE_LINE) / p->size;
  for (size_t i = n; i-- > 0;) {
    char *obj = slab + AX__CACHE_LINE + i * p->size;
    *(void **)obj = p->local;
    p->local = obj;
  }
  return true;
}

/* Owner core only. */
void *ax__pool_alloc(ax__pool_t *p) {
  if (p->local == NULL) {
    /* Acquire pairs with the release in ax__pool_free: the objects' links
     * written by the freeing threads are visible. */
    p->local = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
    if (p->local == NULL && !pool_grow(p))
      return NULL;
  }
  void *obj = p->local;
  p->local = *(void **)obj;
  return obj;
}
