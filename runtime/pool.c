/* Per-core object pools with lock-free return of objects freed on other threads. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "runtime/internal.h"

/* Slabs start at 64 KiB and double with each new slab of a pool, up to
 * 2 MiB, which is allocated 2 MiB-aligned with transparent huge pages
 * advised: a small program stays small, and a pool that grows to a million
 * objects takes one page fault per 2 MiB instead of 512 (in skynet, page
 * faults were most of the time spent). */
#define AX__SLAB_MIN (64 * 1024)
#define AX__SLAB_MAX (2 * 1024 * 1024)

_Thread_local ax__core_t *ax__tls_core __attribute__((tls_model("initial-exec")));

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

/* The large classes hold a power of two of payload plus the message
 * header, so that a stream reading straight into a message (actors/
 * stream.c) gets a whole 8, 16, ... 128 KiB. */
#define AX__BIG(kib) ((kib) * 1024u + 256u)
static const uint32_t class_size[AX__MSG_CLASSES] = {
    AX__MSG_SMALL, 256, 512, 1024, 2048, 4096, AX__BIG(8), AX__BIG(16), AX__BIG(32), AX__BIG(64),
    AX__BIG(128)};

/* Allocates a message for `to` with room for payload bytes inline: from the
 * calling core's pool when `to` belongs to the same runtime (a pool dies
 * with its runtime, and another runtime may outlive it), else from malloc,
 * as on threads that are not cores and for large payloads. */
ax__msg_t *ax__msg_alloc(ax_ref_t to, size_t payload) {
  if (payload > UINT32_MAX - sizeof(ax__msg_t))
    return NULL; /* ax_msg_t.size could not say it (and need could wrap) */
  size_t need = sizeof(ax__msg_t) + payload;
  ax__core_t *c = ax__tls_core;
  ax__msg_t *m = NULL;
  if (c != NULL && ax__ref_rt(to) == c->rt->index) {
    for (unsigned i = 0; i < AX__MSG_CLASSES; i++) {
      if (need <= class_size[i]) {
        m = ax__pool_alloc(&c->pools[i]);
        if (m != NULL)
          m->home = &c->pools[i];
        break;
      }
    }
  }
  if (m == NULL) {
    m = ax__malloc(need);
    if (m == NULL)
      return NULL;
    m->home = NULL;
  }
  m->sys = 0;
  m->flags = 0;
  m->release = NULL;
  m->m.req = 0;
  return m;
}


uint32_t ax__pool_class_size(unsigned cls) { return class_size[cls]; }
