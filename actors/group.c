/* Shared payloads (a reference count in front of the bytes) and process groups (a locked hash set of references). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "axon/group.h"

#include "actors/actors.h"
#include "io/alloc.h"
#include "runtime/msg.h"
#include "runtime/ref.h"

/* ---- shared payloads ---------------------------------------------------- */

/* What sits in front of a shared buffer's bytes: 16 bytes, so the bytes
 * keep malloc's 16-byte alignment. */
typedef struct ax__shared {
  _Atomic uint64_t refs;
  uint64_t size;
} ax__shared_t;
_Static_assert(sizeof(ax__shared_t) == 16, "the bytes must stay 16-byte aligned");

static ax__shared_t *shared_of(const void *buf) {
  return (ax__shared_t *)((char *)(uintptr_t)buf - sizeof(ax__shared_t));
}

void *ax_shared_new(size_t size) {
  if (size == 0 || size > AX_MSG_MAX) {
    errno = EINVAL;
    return NULL;
  }
  ax__shared_t *s = ax__malloc(sizeof *s + size);
  if (s == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  atomic_init(&s->refs, 1);
  s->size = size;
  return s + 1;
}

static void refs_add(const void *buf, uint64_t n) {
  /* Relaxed: whoever adds a reference already holds one, so the buffer
   * cannot be freed meanwhile; what the new holder reads was published by
   * the message (or thread hand-over) that carries the pointer to it. */
  atomic_fetch_add_explicit(&shared_of(buf)->refs, n, memory_order_relaxed);
}

void *ax_shared_ref(const void *buf) {
  if (buf == NULL)
    return NULL;
  refs_add(buf, 1);
  return (void *)(uintptr_t)buf;
}

void ax_shared_unref(const void *buf) {
  if (buf == NULL)
    return;
  ax__shared_t *s = shared_of(buf);
  /* Acquire-release: this holder's reads of the bytes happen before the
   * decrement, and the holder that takes the count to zero sees every
   * other holder's decrement (and so their reads) before it frees.  A
   * release decrement plus an acquire fence would do on weak CPUs, but
   * ThreadSanitizer does not model fences; on x86 both are one lock xadd. */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
    free(s);
}

size_t ax_shared_size(const void *buf) { return buf != NULL ? shared_of(buf)->size : 0; }

/* The release function of a message carrying a shared buffer: drops the
 * message's reference.  Also how ax_msg_shared recognises one. */
static void shared_release(void *buf) { ax_shared_unref(buf); }

static bool shared_args_ok(uint32_t type, const void *buf, size_t size) {
  return type != 0 && buf != NULL && size <= ax_shared_size(buf);
}

/* Sends a shared buffer for which the caller has already added the
 * message's reference; every error drops that reference. */
static int send_shared_ref(ax_ref_t to, uint32_t type, const void *buf, size_t size) {
  return ax_send_owned(to, type, (void *)(uintptr_t)buf, size, shared_release);
}

int ax_send_shared(ax_ref_t to, uint32_t type, const void *buf, size_t size) {
  if (!shared_args_ok(type, buf, size))
    return -EINVAL;
  refs_add(buf, 1);
  return send_shared_ref(to, type, buf, size);
}

bool ax_msg_shared(const ax_msg_t *msg) {
  const ax__msg_t *m = ax__msg_of(msg);
  return m != NULL && (m->flags & AX__MSG_OWNED) && m->release == shared_release;
}

/* ---- groups ------------------------------------------------------------- */

/*
 * The members are a dense array in the order they joined (a leave moves
 * the last member into the gap), so a send walks memory in order, as a
 * program's own loop over an array of references would; and an index from
 * reference to position, an open-addressing hash table with linear
 * probing over positions (EMPTY: never used; GONE: a removed entry).  The
 * index keeps at most half of its slots used; rebuilding it drops the
 * GONE ones.  A member found dead (a send said -ESRCH, a listing or
 * ax_group_has saw it) is marked in the array and, once the pass is over,
 * the array is compacted and the index rebuilt, so a group holds about
 * 8 bytes of array and 8 to 16 of index per live member.
 */
#define EMPTY 0u          /* an index slot never used */
#define GONE UINT32_MAX   /* an index slot whose member left */
#define DEAD AX_REF_NONE  /* an array entry found dead, until compacted */
#define MIN_INDEX 16u
#define MAX_MEMBERS (UINT32_MAX / 4) /* positions + 1 must stay below GONE */

struct ax_group {
  pthread_mutex_t lock;
  ax_ref_t *ref;    /* the members, [0, n); under lock */
  size_t n, cap;    /* members, and room in ref */
  uint32_t *index;  /* icap slots: EMPTY, GONE or position + 1; under lock */
  size_t icap;      /* a power of two, or 0 before the first join */
  size_t iused;     /* slots that are not EMPTY */
};

static size_t hash_ref(ax_ref_t r) {
  /* A 64-bit finaliser (murmur3's): slot, core and generation bits all move
   * every output bit, so neighbouring slots spread over the table. */
  r ^= r >> 33;
  r *= 0xff51afd7ed558ccdull;
  r ^= r >> 33;
  r *= 0xc4ceb9fe1a85ec53ull;
  r ^= r >> 33;
  return (size_t)r;
}

/* The index slot that holds ref, or NULL.  Under lock. */
static uint32_t *find(ax_group_t *g, ax_ref_t ref) {
  if (g->icap == 0)
    return NULL;
  size_t mask = g->icap - 1;
  for (size_t i = hash_ref(ref) & mask;; i = (i + 1) & mask) {
    uint32_t v = g->index[i];
    if (v == EMPTY)
      return NULL;
    if (v != GONE && g->ref[v - 1] == ref)
      return &g->index[i];
  }
}

/* Puts position pos (whose reference is not in the index) in an index
 * with a free slot. */
static void index_put(uint32_t *index, size_t icap, ax_ref_t ref, size_t pos) {
  size_t mask = icap - 1;
  size_t i = hash_ref(ref) & mask;
  while (index[i] != EMPTY && index[i] != GONE)
    i = (i + 1) & mask;
  index[i] = (uint32_t)pos + 1;
}

/* Rebuilds the index for `need` members from the array, dropping every
 * GONE slot.  Under lock.  -ENOMEM leaves the group as it was. */
static int reindex(ax_group_t *g, size_t need) {
  size_t icap = MIN_INDEX;
  while (icap < need * 2 + 2)
    icap *= 2;
  uint32_t *index = ax__calloc(icap, sizeof *index);
  if (index == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < g->n; i++)
    index_put(index, icap, g->ref[i], i);
  free(g->index);
  g->index = index;
  g->icap = icap;
  g->iused = g->n;
  return 0;
}

/* Removes the member at position pos, whose index slot is slot: the last
 * member takes its place.  Under lock. */
static void remove_at(ax_group_t *g, uint32_t *slot, size_t pos) {
  *slot = GONE;
  size_t last = --g->n;
  if (pos != last) {
    ax_ref_t moved = g->ref[last];
    *find(g, moved) = (uint32_t)pos + 1; /* found through the array: before the move */
    g->ref[pos] = moved;
  }
}

/* Drops the members marked DEAD, keeping the others' order, and rebuilds
 * the index.  Under lock.  Out of memory for the index, it is rebuilt in
 * place over the old slots (it is never smaller than it must be). */
static void compact(ax_group_t *g) {
  size_t k = 0;
  for (size_t i = 0; i < g->n; i++)
    if (g->ref[i] != DEAD)
      g->ref[k++] = g->ref[i];
  g->n = k;
  if (reindex(g, k) < 0) {
    memset(g->index, 0, g->icap * sizeof *g->index);
    for (size_t i = 0; i < g->n; i++)
      index_put(g->index, g->icap, g->ref[i], i);
    g->iused = g->n;
  }
}

/* Gives memory back when most members have gone.  Best effort. */
static void shrink(ax_group_t *g) {
  if (g->cap > 64 && g->n * 4 < g->cap) {
    ax_ref_t *r = ax__realloc(g->ref, (g->cap / 2) * sizeof *r);
    if (r != NULL) {
      g->ref = r;
      g->cap /= 2;
    }
  }
  if (g->icap > MIN_INDEX && g->n * 8 < g->icap)
    (void)reindex(g, g->n);
}

/* 0 when ref names something alive, -ESRCH when not, -ENOMEM when that
 * cannot be told (no epoch record for this thread). */
static int liveness(ax_ref_t ref) {
  ax_rt_t *rt;
  ax__erec_t *erec;
  void *e;
  int rc = ax__ref_enter(ref, &e, &rt, &erec);
  ax__ref_leave(erec);
  return rc;
}

int ax_group_new(ax_group_t **group) {
  if (group == NULL)
    return -EINVAL;
  ax_group_t *g = ax__calloc(1, sizeof *g);
  if (g == NULL)
    return -ENOMEM;
  pthread_mutex_init(&g->lock, NULL);
  *group = g;
  return 0;
}

void ax_group_free(ax_group_t *g) {
  if (g == NULL)
    return;
  pthread_mutex_destroy(&g->lock);
  free(g->ref);
  free(g->index);
  free(g);
}

/* Makes room for one more member in the array and the index. */
static int room_for_one(ax_group_t *g) {
  if (g->n >= MAX_MEMBERS)
    return -ENOMEM;
  bool need_grow = false;
  if (g->n == g->cap && g->n >= 8) {
    /* Before the array doubles, drop whoever stopped: a group whose
     * members stop and are replaced without a send in between stays the
     * size of its live members (amortised: one look per member per
     * doubling). */
    size_t dead = 0;
    for (size_t i = 0; i < g->n; i++)
      if (liveness(g->ref[i]) == -ESRCH) {
        g->ref[i] = DEAD;
        dead++;
      }
    if (dead > 0)
      compact(g);
    /* Grow unless a quarter came free, so that sweeps stay rare. */
    if (g->n * 4 > g->cap * 3)
      need_grow = true;
  }
  if (g->n == g->cap || need_grow) {
    size_t cap = g->cap != 0 ? g->cap * 2 : 8;
    ax_ref_t *r = ax__realloc(g->ref, cap * sizeof *r);
    if (r == NULL)
      return -ENOMEM;
    g->ref = r;
    g->cap = cap;
  }
  if ((g->iused + 1) * 2 > g->icap)
    return reindex(g, g->n + 1);
  return 0;
}

int ax_group_join(ax_group_t *g, ax_ref_t ref) {
  if (g == NULL || ref == AX_REF_NONE)
    return -EINVAL;
  int rc = liveness(ref);
  if (rc < 0)
    return rc;
  pthread_mutex_lock(&g->lock);
  if (find(g, ref) != NULL) {
    rc = -EEXIST;
  } else if ((rc = room_for_one(g)) == 0) {
    g->ref[g->n] = ref;
    index_put(g->index, g->icap, ref, g->n);
    g->n++;
    g->iused++;
  }
  pthread_mutex_unlock(&g->lock);
  return rc;
}

int ax_group_leave(ax_group_t *g, ax_ref_t ref) {
  if (g == NULL)
    return -EINVAL;
  if (ref == AX_REF_NONE)
    return -ENOENT;
  pthread_mutex_lock(&g->lock);
  uint32_t *slot = find(g, ref);
  if (slot != NULL) {
    remove_at(g, slot, *slot - 1);
    shrink(g);
  }
  pthread_mutex_unlock(&g->lock);
  return slot != NULL ? 0 : -ENOENT;
}

bool ax_group_has(ax_group_t *g, ax_ref_t ref) {
  if (g == NULL || ref == AX_REF_NONE)
    return false;
  pthread_mutex_lock(&g->lock);
  uint32_t *slot = find(g, ref);
  if (slot != NULL && liveness(ref) == -ESRCH) {
    remove_at(g, slot, *slot - 1);
    slot = NULL;
  }
  pthread_mutex_unlock(&g->lock);
  return slot != NULL;
}

int ax_group_members(ax_group_t *g, ax_ref_t *out, size_t max) {
  if (g == NULL || (out == NULL && max > 0))
    return -EINVAL;
  size_t n = 0, dead = 0;
  pthread_mutex_lock(&g->lock);
  for (size_t i = 0; i < g->n; i++) {
    if (liveness(g->ref[i]) == -ESRCH) {
      g->ref[i] = DEAD;
      dead++;
      continue;
    }
    if (n < max)
      out[n] = g->ref[i];
    n++;
  }
  if (dead > 0) {
    compact(g);
    shrink(g);
  }
  pthread_mutex_unlock(&g->lock);
  return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* Members a send copies onto its caller's stack; larger groups are
 * copied into a malloc'ed array. */
#define SEND_STACK 64u

/* Sends to every member, shared (data is a shared buffer: one reference
 * is added per member up front, and each failed send drops its own) or
 * copied.  The members are copied under the lock and sent to after it is
 * released: a send from a thread that is no core may wait for a receiving
 * core (actor.h), and that core's actors must be able to join, leave or
 * look at the group meanwhile (a reviewer: a broadcast to 10^5 members of
 * one core from main held the lock for 80 ms, and an actor of that core
 * that called ax_group_has stalled its core until the broadcast ended).
 * Members found dead are dropped under the lock afterwards.  Out of memory
 * for the copy, the send holds the lock throughout, as before.  Returns
 * how many members it reached. */
static int send_all(ax_group_t *g, uint32_t type, const void *data, size_t size, bool shared) {
  ax_ref_t stack[SEND_STACK], *to = stack;
  size_t sent = 0, dead = 0;
  pthread_mutex_lock(&g->lock);
  size_t n = g->n;
  if (n > SEND_STACK)
    to = ax__malloc(n * sizeof *to);
  bool copied = to != NULL, locked = !copied;
  if (copied) {
    if (n > 0)
      memcpy(to, g->ref, n * sizeof *to);
    pthread_mutex_unlock(&g->lock);
  }
  if (shared && n > 0)
    refs_add(data, n);
  for (size_t i = 0; i < n; i++) {
    ax_ref_t r = copied ? to[i] : g->ref[i];
    int rc = shared ? send_shared_ref(r, type, data, size) : ax_send(r, type, data, size);
    if (rc == 0) {
      sent++;
    } else if (rc == -ESRCH) {
      if (copied)
        to[dead] = r; /* dead <= i: the entries still to send to are intact */
      else
        g->ref[i] = DEAD;
      dead++;
    }
  }
  if (copied && dead > 0) {
    /* Mark the dead in the array (a leave may have removed one meanwhile;
     * nothing dead joins again), then compact it below. */
    pthread_mutex_lock(&g->lock);
    locked = true;
    size_t marked = 0;
    for (size_t k = 0; k < dead; k++) {
      uint32_t *slot = find(g, to[k]);
      if (slot != NULL) {
        g->ref[*slot - 1] = DEAD;
        marked++;
      }
    }
    dead = marked;
  }
  if (dead > 0) {
    compact(g);
    shrink(g);
  }
  if (locked)
    pthread_mutex_unlock(&g->lock);
  if (copied && to != stack)
    free(to);
  return sent > INT32_MAX ? INT32_MAX : (int)sent;
}

int ax_group_send(ax_group_t *g, uint32_t type, const void *data, size_t size) {
  if (g == NULL || type == 0 || size > AX_MSG_MAX || (size > 0 && data == NULL))
    return -EINVAL;
  if (size <= AX_GROUP_COPY_MAX)
    return send_all(g, type, data, size, false);
  void *buf = ax_shared_new(size);
  if (buf == NULL)
    return -ENOMEM;
  memcpy(buf, data, size);
  int n = send_all(g, type, buf, size, true);
  ax_shared_unref(buf);
  return n;
}

int ax_group_send_shared(ax_group_t *g, uint32_t type, const void *buf, size_t size) {
  if (g == NULL || !shared_args_ok(type, buf, size))
    return -EINVAL;
  return send_all(g, type, buf, size, true);
}
