/* Messages: size classes, allocation from the sending core's pools or malloc, filled headers. */
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "runtime/core.h"

/* The large classes hold a power of two of payload plus the message
 * header, so that a stream reading straight into a message gets a whole
 * 8, 16, ... 128 KiB. */
#define AX__BIG(kib) ((kib) * 1024u + 256u)
static const uint32_t class_size[AX__MSG_CLASSES] = {
    AX__MSG_TINY, AX__MSG_SMALL, 256, 512, 1024, 2048, 4096, AX__BIG(8), AX__BIG(16),
    AX__BIG(32), AX__BIG(64), AX__BIG(128)};

uint32_t ax__msg_class_size(unsigned cls) { return class_size[cls]; }

/* ------------------------------------------------------------------------ */
/* Message pools of threads that are no core                                 */

/* A thread that sends from outside the runtime (main, a worker of another
 * library) allocates its messages from pools of its own, which the cores
 * free into (pool.h); a heap outlives its thread, since its messages may
 * still be in flight, and the next such thread adopts it.  Nobody purges
 * these pools (their thread may never call axon again), so the heap stops
 * growing once its pools hold THREAD_HEAP_CAP in all, on small pages: a
 * burst beyond it (main stopping 10^6 actors faster than they die) takes
 * malloc, whose memory the cores' trim gives back once it is over
 * (bench_memory row 3c).  The cap was per size class, on transparent huge
 * pages past the first segment: a burst from main that used two classes
 * (a 100-byte payload and the stops) kept 4 MiB, three times the process's
 * memory before it (a newcomer).  512 KiB, not 1 MiB: main stopping 10^7
 * actors fills the cap with STOP messages, and 1 MiB of them left 2.1
 * times the 2.1 MiB the process held before (1.8 times now).  What a
 * thread keeps in flight at once when it sends small messages is less:
 * its overflow queue waits at 256 messages per core (24 KiB of them), and
 * larger payloads past the cap come from malloc. */
#define THREAD_HEAP_CAP ((size_t)512 << 10)
typedef struct thread_heap {
  ax__pool_t pools[AX__MSG_CLASSES];
  ax__heap_t heap;
  unsigned id;              /* 0, 1, ... in order of creation: the thread's ring number (send.c) */
  void *chunks[AX__THREAD_CHUNKS]; /* actor chunks being carved (actor.c) */
  struct thread_heap *next; /* on the abandoned list */
} thread_heap_t;

static unsigned heaps_made; /* under abandoned_lock */

static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static thread_heap_t *abandoned; /* under abandoned_lock */
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t heap_key;
static _Thread_local thread_heap_t *tls_heap;

/* The heap's thread gives it up (it exits: the key's destructor, on that
 * thread).  The thread forgets it and its ring first: another thread may
 * adopt both at once, and a later destructor of this thread that sends
 * must not use them beside it (it takes a heap of its own again, which
 * the key's destructor, run once more, gives up in turn). */
static void abandon(void *arg) {
  thread_heap_t *h = arg;
  tls_heap = NULL;
  ax__fring_forget();
  pthread_mutex_lock(&abandoned_lock);
  h->next = abandoned;
  abandoned = h;
  pthread_mutex_unlock(&abandoned_lock);
}

static void make_key(void) {
  if (pthread_key_create(&heap_key, abandon) != 0)
    heap_key = (pthread_key_t)-1; /* no key: such threads use malloc */
}

/* The calling thread's heap: its own, or an abandoned one it adopts, or a
 * new one.  NULL when out of memory (or no key for the heaps). */
static thread_heap_t *thread_heap(void) {
  if (tls_heap != NULL)
    return tls_heap;
  pthread_once(&key_once, make_key);
  if (heap_key == (pthread_key_t)-1)
    return NULL;
  pthread_mutex_lock(&abandoned_lock);
  thread_heap_t *h = abandoned;
  if (h != NULL)
    abandoned = h->next;
  pthread_mutex_unlock(&abandoned_lock);
  if (h == NULL) {
    h = ax__aligned_alloc(AX__CACHE_LINE, sizeof *h);
    if (h == NULL)
      return NULL;
    ax__heap_init(&h->heap);
    h->heap.cap_pages = THREAD_HEAP_CAP / AX__PAGE_SIZE;
    memset(h->chunks, 0, sizeof h->chunks);
    pthread_mutex_lock(&abandoned_lock);
    h->id = heaps_made++;
    pthread_mutex_unlock(&abandoned_lock);
    for (unsigned i = 0; i < AX__MSG_CLASSES; i++) {
      ax__pool_init(&h->pools[i], &h->heap, h, class_size[i]);
      h->pools[i].keep = true;
    }
  }
  if (pthread_setspecific(heap_key, h) != 0) {
    abandon(h);
    return NULL;
  }
  tls_heap = h;
  return h;
}

ax__pool_t *ax__thread_pools(void) {
  thread_heap_t *h = thread_heap();
  return h != NULL ? h->pools : NULL;
}

void **ax__thread_actor_chunks(void) {
  thread_heap_t *h = thread_heap();
  return h != NULL ? h->chunks : NULL;
}

unsigned ax__thread_heap_id(void) {
  thread_heap_t *h = thread_heap();
  return h != NULL ? h->id : UINT_MAX;
}

ax__msg_t *ax__msg_alloc(ax_ref_t to, size_t payload) {
  if (payload > UINT32_MAX - sizeof(ax__msg_t))
    return NULL; /* ax_msg_t.size could not say it (and need could wrap) */
  /* Fault-injection builds count every message as an allocation (pools
   * would otherwise fail only when they map a new segment), so that a
   * sweep reaches each path that makes one; others compile this away. */
  if (ax__alloc_fails())
    return NULL;
  size_t need = sizeof(ax__msg_t) + payload;
  ax__core_t *c = ax__tls_core;
  ax__msg_t *m = NULL;
  ax__pool_t *pools = NULL;
  if (c != NULL && ax__ref_rt(to) == c->rt->index)
    pools = c->pools;
  else if (c == NULL && (pools = ax__thread_pools()) == NULL)
    return NULL;
  if (pools != NULL) {
    for (unsigned i = 0; i < AX__MSG_CLASSES; i++) {
      if (need <= class_size[i]) {
        m = ax__pool_alloc(&pools[i]);
        if (m != NULL)
          m->home = &pools[i];
        else if (c != NULL)
          return NULL; /* a core's pool: out of memory */
        /* else a thread's pool at its cap (or out of memory): malloc below */
        break;
      }
    }
  }
  if (m == NULL) { /* larger than every class, or a core of another runtime */
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

/* The header fields and payload that ax__msg_new fills. */
static ax__msg_t *fill_new(ax__msg_t *m, unsigned sys, uint32_t type, const void *data,
                           size_t size, ax_ref_t from) {
  m->sys = (uint16_t)sys;
  m->m.type = type;
  m->m.size = (uint32_t)size;
  m->m.data = size != 0 ? m->payload : NULL;
  m->m.from = from;
  if (data != NULL && size != 0)
    memcpy(m->payload, data, size);
  return m;
}

ax__msg_t *ax__msg_new(ax_ref_t to, unsigned sys, uint32_t type, const void *data, size_t size,
                       ax_ref_t from) {
  ax__msg_t *m = ax__msg_alloc(to, size);
  return m != NULL ? fill_new(m, sys, type, data, size, from) : NULL;
}

/* One more message for c's reserve; false when the pools have none. */
static bool vital_add(ax__core_t *c) {
  /* Room for the largest payload a vital message may have. */
  ax__msg_t *m = ax__msg_alloc(ax__ref_make(0, c->rt->index, 0, 0), AX__MSG_SMALL - sizeof *m);
  if (m == NULL)
    return false;
  m->aux = (uint64_t)(uintptr_t)c->vital;
  c->vital = m;
  c->nvital++;
  return true;
}

void ax__vital_fill(ax__core_t *c) {
  while (c->nvital < AX__VITAL && vital_add(c)) {
  }
}

ax__msg_t *ax__msg_new_vital(ax_ref_t to, unsigned sys, uint32_t type, const void *data,
                             size_t size, ax_ref_t from) {
  ax__msg_t *m = ax__msg_new(to, sys, type, data, size, from);
  ax__core_t *c = ax__tls_core;
  if (c == NULL || ax__ref_rt(to) != c->rt->index || sizeof(ax__msg_t) + size > AX__MSG_SMALL)
    return m;
  if (m != NULL) {
    if (c->nvital < AX__VITAL)
      (void)vital_add(c); /* one at a time: the reserve refills as the pools recover */
    return m;
  }
  m = c->vital;
  if (m == NULL)
    return NULL;
  c->vital = (ax__msg_t *)(uintptr_t)m->aux;
  c->nvital--;
  /* As ax__msg_alloc leaves a message (its home pool is set), then filled
   * as ax__msg_new fills it. */
  m->flags = 0;
  m->release = NULL;
  m->m.req = 0;
  return fill_new(m, sys, type, data, size, from);
}
