/* Per-core object pools: pages carved from 2 MiB segments, lock-free return from other threads, empty pages given back to the kernel. */
#ifndef AXON_RUNTIME_POOL_H
#define AXON_RUNTIME_POOL_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/table.h" /* AX__CACHE_LINE */

typedef struct ax__core ax__core_t;

/* The core the calling thread runs, or NULL on a thread that is not a
 * core.  initial-exec: read with one instruction instead of a
 * __tls_get_addr call (it is on the path of every send and every free). */
extern _Thread_local ax__core_t *ax__tls_core __attribute__((tls_model("initial-exec")));

/*
 * Memory layout.  A core's heap is a list of segments: 2 MiB of address
 * space each, aligned to 2 MiB, cut into 32 pages of 64 KiB.  Page 0 holds
 * the segment's header (its page records); the others are handed to pools
 * in spans of one or more pages.  Any object's page record is found from
 * its address alone (mask to the segment, shift to the page), so an object
 * needs no header and a free needs no lookup.
 *
 * A pool hands out objects of one size from its spans.  A span's objects
 * are carved lazily (a bump pointer), so only the pages actually used are
 * ever touched: a small program stays small.  Each span keeps its own free
 * list and count of objects in use.  A span whose last object comes back
 * waits on its pool's empty list, the first place the pool looks for room,
 * and is given back once it has stayed empty for AX__PURGE_NS: its pages
 * go back to the kernel (MADV_DONTNEED, so the resident set shrinks at
 * once), the span to its segment, and a segment with nothing in use is
 * unmapped (but the core's last).  The delay keeps a burst that repeats
 * (a tree of actors built again, a wave of connections) from paying the
 * page faults each time; the core purges when it goes idle
 * (ax__heap_purge), never on the path of a send.
 *
 * Threads.  The owning core allocates and frees with no atomics.  Another
 * thread frees by pushing onto the pool's remote stack, which the owner
 * takes whole (an exchange with NULL, so there is no ABA) when it runs out
 * of room or goes idle (ax__pool_tidy).
 */
#define AX__SEG_SHIFT 21
#define AX__SEG_SIZE ((size_t)1 << AX__SEG_SHIFT)
#define AX__PAGE_SHIFT 16
#define AX__PAGE_SIZE ((size_t)1 << AX__PAGE_SHIFT)
#define AX__SEG_PAGES (AX__SEG_SIZE / AX__PAGE_SIZE)

typedef struct ax__pool ax__pool_t;
typedef struct ax__seg ax__seg_t;

/* A page's record.  For the first page of a span it describes the span;
 * the other pages of a span only point at their first. */
typedef struct ax__page {
  void *free;      /* freed objects, linked through their first word */
  char *bump;      /* objects never handed out: [bump, end) */
  char *end;
  uint32_t used;   /* objects handed out and not freed */
  uint16_t first;  /* the index of the span's first page */
  uint16_t npages; /* the span's length (first page) */
  bool listed;     /* the pool's current span, or on one of its lists */
  bool empty;      /* on the pool's empty list */
  ax__pool_t *pool; /* NULL: a free span of the segment */
  struct ax__page *next, *prev; /* the pool's list of spans with room, or of empty ones */
  int64_t emptied; /* when it went on the empty list (ax__heap_t.now) */
} ax__page_t;

struct ax__seg {
  ax__seg_t *next, *prev; /* the heap's segments */
  unsigned used_pages;    /* pages in spans that pools hold */
  bool huge;              /* advised onto a transparent huge page, not yet split */
  ax__page_t pages[AX__SEG_PAGES];
};

/* How long a span stays empty before it is given back. */
#define AX__PURGE_NS (250 * 1000 * 1000)

/* A core's segments (or a thread heap's: msg.c).  Owner only. */
typedef struct ax__heap {
  ax__seg_t *segs;
  unsigned nsegs;
  int64_t now;      /* the core's clock as last read (stamps empty spans) */
  int64_t purge_at; /* when the oldest empty span is due (0: none) */
  /* Pages in the spans its pools hold.  A heap whose pools never give
   * spans back (a thread heap, which nobody purges) may be capped: its
   * pools stop growing once their spans hold cap_pages pages (0: no cap);
   * then an allocation fails and the caller takes malloc, whose memory
   * goes back.  A capped heap's segments stay on small pages, so that only
   * the pages its spans touched are resident. */
  size_t pages, cap_pages;
} ax__heap_t;

struct ax__pool {
  ax__page_t *cur;   /* owner: the span allocations come from (never NULL) */
  ax__page_t *avail; /* owner: other spans with room (through next/prev) */
  ax__page_t *empty, *empty_old; /* owner: empty spans, newest first */
  ax__heap_t *heap;
  uint32_t size;    /* object size */
  uint32_t npages;  /* pages per span */
  const void *owner; /* the core (ax__tls_core) or thread heap that allocates */
  /* A pool that never gives spans back (a thread heap's, nobody purges
   * it) takes what others freed as one loose list, without walking it:
   * each object is touched only when it is handed out again, and the
   * spans' counts no longer matter. */
  bool keep;
  void *loose;
  alignas(AX__CACHE_LINE) _Atomic(void *) remote; /* other threads push */
};

/*
 * A core batches what it frees into other threads' pools: up to
 * AX__RFREE_BATCH objects per pool are linked locally and pushed onto the
 * pool's remote stack with one CAS, instead of one CAS (and one trip of
 * the stack's cache line) per object.  A few pools at a time, by address;
 * a batch is pushed when full, when its place is needed, and whenever the
 * core goes idle or exits (ax__pool_rfree_flush), so nothing stays away
 * from its pool for long.  Threads that are no core push at once (a batch
 * of theirs could outlive the runtime whose pool it names).
 */
#define AX__RFREE_WAYS 8
#define AX__RFREE_BATCH 32
typedef struct ax__rfree {
  struct {
    ax__pool_t *pool;
    void *head, *tail;
    unsigned n;
  } way[AX__RFREE_WAYS];
} ax__rfree_t;

/* The calling core's batches (NULL on a thread that is no core). */
extern _Thread_local ax__rfree_t *ax__tls_rfree __attribute__((tls_model("initial-exec")));

/* Pushes every batch.  Its core. */
void ax__pool_rfree_flush(ax__rfree_t *rf);
/* Frees obj into a pool the calling thread does not own. */
void ax__pool_free_remote(ax__pool_t *home, void *obj);

void ax__heap_init(ax__heap_t *h);
/* Unmaps every segment.  No object of the heap's pools may be in use. */
void ax__heap_destroy(ax__heap_t *h);

void ax__pool_init(ax__pool_t *p, ax__heap_t *heap, const void *owner, uint32_t size);
/* An object, or NULL when out of memory.  Owner core only. */
void *ax__pool_alloc_slow(ax__pool_t *p);
/* A free that changes the span's state (it was full, or is now empty). */
void ax__pool_free_slow(ax__pool_t *p, ax__page_t *pg);
/* Takes what other threads freed into p, so that spans they emptied can
 * be given back.  Owner core only (when idle). */
void ax__pool_tidy(ax__pool_t *p);
/* Gives back p's spans that have been empty for AX__PURGE_NS at h->now,
 * and lowers h->purge_at to when the next one is due.  Returns about the
 * bytes given back (the spans' touched pages; non-zero when a span went).
 * Owner core only. */
size_t ax__pool_purge(ax__pool_t *p);

/* The record of the span that holds obj. */
static inline ax__page_t *ax__page_of(const void *obj) {
  uintptr_t a = (uintptr_t)obj;
  ax__seg_t *s = (ax__seg_t *)(a & ~(uintptr_t)(AX__SEG_SIZE - 1));
  ax__page_t *pg = &s->pages[(a >> AX__PAGE_SHIFT) & (AX__SEG_PAGES - 1)];
  return &s->pages[pg->first];
}

/* An object, or NULL when out of memory.  Owner core only. */
static inline void *ax__pool_alloc(ax__pool_t *p) {
  ax__page_t *pg = p->cur;
  void *obj = pg->free;
  if (__builtin_expect(obj != NULL, 1)) {
    pg->free = *(void **)obj;
    pg->used++;
    return obj;
  }
  return ax__pool_alloc_slow(p);
}

/* Gives an object back to its pool.  Any thread: the owner core puts it
 * on its span's list, another thread on the pool's remote stack. */
static inline void ax__pool_free(ax__pool_t *home, void *obj) {
  if (home->owner == (const void *)ax__tls_core) {
    ax__page_t *pg = ax__page_of(obj);
    *(void **)obj = pg->free;
    pg->free = obj;
    uint32_t left = --pg->used;
    if (__builtin_expect(!pg->listed || (left == 0 && pg != home->cur), 0))
      ax__pool_free_slow(home, pg);
    return;
  }
  ax__pool_free_remote(home, obj);
}

/* The calling thread's message pools when it is no core (msg.c):
 * created on first use, handed to the next such thread when it exits. */
ax__pool_t *ax__thread_pools(void);
/* The calling thread's current actor chunks (actor.c), one per target
 * core index modulo AX__THREAD_CHUNKS, kept with its message heap so that
 * they pass to the next such thread with it (all NULL in a new heap).
 * NULL when out of memory.  A thread that is no core. */
#define AX__THREAD_CHUNKS 64
void **ax__thread_actor_chunks(void);

/* The number of the calling thread's message heap (made on first use):
 * 0, 1, ... in the order the heaps were made, passed on with the heap, so
 * that no two live threads have the same.  UINT_MAX when out of memory.
 * A thread that is no core. */
unsigned ax__thread_heap_id(void);

#endif /* AXON_RUNTIME_POOL_H */
