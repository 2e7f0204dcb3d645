/* Per-core object pools: spans of pages from 2 MiB segments, carved lazily, given back when empty. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io/alloc.h"
#include "runtime/pool.h"

_Thread_local ax__rfree_t *ax__tls_rfree __attribute__((tls_model("initial-exec")));

/* The current span of a pool that has none yet: no room, no objects. */
static ax__page_t no_room = {.listed = true};

/* Objects per span at least (large classes span several pages). */
#define AX__SPAN_MIN_OBJECTS 8u

void ax__heap_init(ax__heap_t *h) {
  h->segs = NULL;
  h->nsegs = 0;
  h->now = 0;
  h->purge_at = 0;
  h->pages = h->cap_pages = 0;
}

void ax__heap_destroy(ax__heap_t *h) {
  while (h->segs != NULL) {
    ax__seg_t *s = h->segs;
    h->segs = s->next;
    munmap(s, AX__SEG_SIZE);
  }
  h->nsegs = 0;
}

/* A new segment: 2 MiB mapped at a 2 MiB boundary (4 MiB mapped, the
 * excess unmapped), page 0 its header, the rest free. */
static ax__seg_t *seg_new(ax__heap_t *h) {
  if (ax__alloc_fails())
    return NULL;
  char *raw = mmap(NULL, 2 * AX__SEG_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
  if (raw == MAP_FAILED)
    return NULL;
  char *base = (char *)(((uintptr_t)raw + AX__SEG_SIZE - 1) & ~(uintptr_t)(AX__SEG_SIZE - 1));
  if (base > raw)
    munmap(raw, (size_t)(base - raw));
  munmap(base + AX__SEG_SIZE, (size_t)(raw + 2 * AX__SEG_SIZE - (base + AX__SEG_SIZE)));
  /* A core's first segment uses small pages, so a small program stays
   * small; once a core needs more, its segments are advised onto
   * transparent huge pages: one fault per 2 MiB instead of 512 (page
   * faults were most of a cold skynet's time on this project's VM).
   * Advice only: fine if refused.  Giving back part of one splits it. */
  ax__seg_t *s = (ax__seg_t *)base; /* fresh pages: zeroed */
  if (h->nsegs > 0 && h->cap_pages == 0)
    s->huge = madvise(base, AX__SEG_SIZE, MADV_HUGEPAGE) == 0;
  for (unsigned i = 0; i < AX__SEG_PAGES; i++)
    s->pages[i].first = (uint16_t)i;
  s->used_pages = 1; /* the header's page (seg_find never looks at it) */
  s->next = h->segs;
  if (h->segs != NULL)
    h->segs->prev = s;
  h->segs = s;
  h->nsegs++;
  return s;
}

static void seg_unmap(ax__heap_t *h, ax__seg_t *s) {
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    h->segs = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  h->nsegs--;
  munmap(s, AX__SEG_SIZE);
}

/* The first run of n free pages in s, or 0 (page 0 is never free). */
static unsigned seg_find(const ax__seg_t *s, unsigned n) {
  unsigned run = 0;
  for (unsigned i = 1; i < AX__SEG_PAGES; i++) {
    run = s->pages[i].pool == NULL ? run + 1 : 0;
    if (run == n)
      return i + 1 - n;
  }
  return 0;
}

/* A new span of p->npages pages for p, or NULL when out of memory. */
static ax__page_t *span_new(ax__pool_t *p) {
  ax__heap_t *h = p->heap;
  ax__seg_t *s;
  unsigned at = 0;
  for (s = h->segs; s != NULL; s = s->next)
    if (AX__SEG_PAGES - s->used_pages >= p->npages && (at = seg_find(s, p->npages)) != 0)
      break;
  if (s == NULL) {
    if ((s = seg_new(h)) == NULL)
      return NULL;
    at = 1;
  }
  for (unsigned i = at; i < at + p->npages; i++) {
    s->pages[i].first = (uint16_t)at;
    s->pages[i].pool = p;
  }
  ax__page_t *pg = &s->pages[at];
  char *start = (char *)s + ((size_t)at << AX__PAGE_SHIFT);
  pg->free = NULL;
  pg->bump = start;
  pg->end = start + ((size_t)p->npages * AX__PAGE_SIZE / p->size) * p->size;
  pg->used = 0;
  pg->npages = (uint16_t)p->npages;
  pg->next = pg->prev = NULL;
  pg->listed = true;
  pg->empty = false;
  s->used_pages += p->npages;
  h->pages += p->npages;
  return pg;
}

/* Gives an empty span back: its touched pages to the kernel, its pages to
 * the segment, and the segment itself when nothing else is in use there
 * and the heap has another. */
/* Gives a span back; returns the bytes of it that had been touched. */
static size_t span_release(ax__pool_t *p, ax__page_t *pg) {
  ax__heap_t *h = p->heap;
  ax__seg_t *s = (ax__seg_t *)((uintptr_t)pg & ~(uintptr_t)(AX__SEG_SIZE - 1));
  unsigned at = (unsigned)(pg - s->pages), n = pg->npages;
  char *start = (char *)s + ((size_t)at << AX__PAGE_SHIFT);
  size_t touched = ((size_t)(pg->bump - start) + 4095) & ~(size_t)4095;
  for (unsigned i = at; i < at + n; i++) {
    s->pages[i].pool = NULL;
    s->pages[i].first = (uint16_t)i;
  }
  s->used_pages -= n;
  h->pages -= n;
  if (s->used_pages == 1 && h->nsegs > 1) {
    seg_unmap(h, s);
    return touched;
  }
  if (s->huge) {
    /* The first span given back from a huge segment splits its huge page,
     * whose fault made all 2 MiB resident, the pages that no span has
     * used yet included: give back every free page of the segment (this
     * span's among them), and keep the segment on small pages from now
     * on, so that khugepaged does not fill it again.  (Without this, one
     * live message in a burst's last segment kept 1.7 MiB resident:
     * bench_memory row 3a.) */
    s->huge = false;
    (void)madvise(s, AX__SEG_SIZE, MADV_NOHUGEPAGE);
    for (unsigned i = 1; i < AX__SEG_PAGES;) {
      unsigned j = i;
      while (j < AX__SEG_PAGES && s->pages[j].pool == NULL)
        j++;
      if (j > i)
        (void)madvise((char *)s + ((size_t)i << AX__PAGE_SHIFT), (size_t)(j - i) << AX__PAGE_SHIFT,
                      MADV_DONTNEED);
      i = j < AX__SEG_PAGES ? j + s->pages[j].npages : j;
    }
    return touched;
  }
  if (touched != 0)
    (void)madvise(start, touched, MADV_DONTNEED); /* advice: memory stays valid either way */
  return touched;
}

static void avail_remove(ax__pool_t *p, ax__page_t *pg) {
  if (pg->prev != NULL)
    pg->prev->next = pg->next;
  else
    p->avail = pg->next;
  if (pg->next != NULL)
    pg->next->prev = pg->prev;
  pg->next = pg->prev = NULL;
}

/* The empty list: newest at p->empty, oldest at p->empty_old. */
static void empty_remove(ax__pool_t *p, ax__page_t *pg) {
  if (pg->prev != NULL)
    pg->prev->next = pg->next;
  else
    p->empty = pg->next;
  if (pg->next != NULL)
    pg->next->prev = pg->prev;
  else
    p->empty_old = pg->prev;
  pg->next = pg->prev = NULL;
  pg->empty = false;
}

static void empty_push(ax__pool_t *p, ax__page_t *pg) {
  pg->empty = true;
  pg->emptied = p->heap->now;
  pg->prev = NULL;
  pg->next = p->empty;
  if (p->empty != NULL)
    p->empty->prev = pg;
  else
    p->empty_old = pg;
  p->empty = pg;
  if (p->heap->purge_at == 0)
    p->heap->purge_at = pg->emptied + AX__PURGE_NS;
}

void ax__pool_init(ax__pool_t *p, ax__heap_t *heap, const void *owner, uint32_t size) {
  p->cur = &no_room;
  p->avail = NULL;
  p->empty = p->empty_old = NULL;
  p->heap = heap;
  p->size = (size + 15) & ~15u;
  unsigned n = 1;
  while ((size_t)n * AX__PAGE_SIZE < (size_t)AX__SPAN_MIN_OBJECTS * p->size &&
         n < AX__SEG_PAGES - 1)
    n++;
  p->npages = n;
  p->owner = owner;
  p->keep = false;
  p->loose = NULL;
  atomic_init(&p->remote, NULL);
}

void ax__pool_free_slow(ax__pool_t *p, ax__page_t *pg) {
  if (!pg->listed) { /* it was full: it has room again */
    pg->listed = true;
    pg->prev = NULL;
    pg->next = p->avail;
    if (p->avail != NULL)
      p->avail->prev = pg;
    p->avail = pg;
  }
  if (pg->used != 0 || pg == p->cur)
    return;
  avail_remove(p, pg);
  empty_push(p, pg);
}

size_t ax__pool_purge(ax__pool_t *p) {
  ax__heap_t *h = p->heap;
  ax__page_t *pg;
  size_t n = 0;
  while ((pg = p->empty_old) != NULL && h->now - pg->emptied >= AX__PURGE_NS) {
    empty_remove(p, pg);
    n += span_release(p, pg) + 1; /* + 1: an untouched span counts as given back */
  }
  if (pg != NULL && (h->purge_at == 0 || pg->emptied + AX__PURGE_NS < h->purge_at))
    h->purge_at = pg->emptied + AX__PURGE_NS;
  return n;
}

/* Puts what other threads freed into p back on its spans. */
static void take_remote(ax__pool_t *p, void *obj) {
  while (obj != NULL) {
    void *next = *(void **)obj;
    ax__page_t *pg = ax__page_of(obj);
    *(void **)obj = pg->free;
    pg->free = obj;
    if (--pg->used == 0 || !pg->listed)
      ax__pool_free_slow(p, pg);
    obj = next;
  }
}

void ax__pool_tidy(ax__pool_t *p) {
  if (atomic_load_explicit(&p->remote, memory_order_relaxed) == NULL)
    return;
  /* Acquire pairs with the release in ax__pool_free: the objects' links
   * written by the freeing threads are visible. */
  take_remote(p, atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire));
}

void *ax__pool_alloc_slow(ax__pool_t *p) {
  if (p->keep) {
    if (p->loose == NULL && atomic_load_explicit(&p->remote, memory_order_relaxed) != NULL)
      /* Acquire pairs with the release of the pushes: the links are visible. */
      p->loose = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
    if (p->loose != NULL) {
      void *obj = p->loose;
      p->loose = *(void **)obj;
      return obj;
    }
  }
  for (;;) {
    ax__page_t *pg = p->cur;
    if (pg->free != NULL) {
      void *obj = pg->free;
      pg->free = *(void **)obj;
      pg->used++;
      return obj;
    }
    if ((size_t)(pg->end - pg->bump) >= p->size) {
      void *obj = pg->bump;
      pg->bump += p->size;
      pg->used++;
      return obj;
    }
    /* The current span is full: it leaves the lists until a free. */
    if (pg != &no_room)
      pg->listed = false;
    p->cur = &no_room;
    if (!p->keep && atomic_load_explicit(&p->remote, memory_order_relaxed) != NULL)
      ax__pool_tidy(p);
    if (p->avail != NULL) {
      pg = p->avail;
      avail_remove(p, pg);
    } else if (p->empty != NULL) {
      pg = p->empty; /* the newest: the likeliest to be in the caches */
      empty_remove(p, pg);
    } else if (p->heap->cap_pages != 0 && p->heap->pages + p->npages > p->heap->cap_pages) {
      return NULL; /* the heap is at its cap: the caller takes malloc */
    } else if ((pg = span_new(p)) == NULL) {
      return NULL;
    }
    p->cur = pg;
  }
}

/* ------------------------------------------------------------------------ */
/* Frees into pools of other threads                                         */

/* Pushes the list head..tail onto the pool's remote stack. */
static void push_remote(ax__pool_t *p, void *head, void *tail) {
  void *top = atomic_load_explicit(&p->remote, memory_order_relaxed);
  do {
    *(void **)tail = top;
    /* Release: the links of the list are visible to the owner that takes
     * the stack (acquire). */
  } while (!atomic_compare_exchange_weak_explicit(&p->remote, &top, head, memory_order_release,
                                                  memory_order_relaxed));
}

static void way_flush(ax__rfree_t *rf, unsigned w) {
  if (rf->way[w].n != 0)
    push_remote(rf->way[w].pool, rf->way[w].head, rf->way[w].tail);
  rf->way[w].pool = NULL;
  rf->way[w].n = 0;
}

void ax__pool_rfree_flush(ax__rfree_t *rf) {
  for (unsigned w = 0; w < AX__RFREE_WAYS; w++)
    way_flush(rf, w);
}

void ax__pool_free_remote(ax__pool_t *home, void *obj) {
  ax__rfree_t *rf = ax__tls_rfree;
  if (rf == NULL) {
    push_remote(home, obj, obj);
    return;
  }
  unsigned w = (unsigned)(((uintptr_t)home >> 6) % AX__RFREE_WAYS);
  if (rf->way[w].pool != home) {
    way_flush(rf, w);
    rf->way[w].pool = home;
  }
  if (rf->way[w].n == 0) {
    rf->way[w].head = rf->way[w].tail = obj;
  } else {
    *(void **)obj = rf->way[w].head;
    rf->way[w].head = obj;
  }
  if (++rf->way[w].n == AX__RFREE_BATCH)
    way_flush(rf, w);
}
