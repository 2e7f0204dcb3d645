/* Sending: looking a reference up; the rings between cores and the inbox of each core; their drain. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ck_pr.h>

#include "runtime/core.h"

/* The wake protocol, sender side: the sender's publication (a push or a
 * slot's seq), this fence, then the load of `sleeping`.  The core does the
 * mirror image (store sleeping, fence, look at its rings and inbox), so at
 * least one of the two sees the other: either the core finds the message
 * before sleeping, or this thread sees it asleep and wakes it.  A busy core
 * is never sent a syscall. */
static inline void wake(ax__core_t *c) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&c->sleeping, memory_order_relaxed) &&
      atomic_exchange_explicit(&c->sleeping, 0, memory_order_relaxed))
    ax_loop_wake(c->loop); /* only the thread whose exchange took `sleeping`: one write() per sleep */
}

/* ------------------------------------------------------------------------ */
/* Rings (core.h)                                                            */

#define RING_MSG UINT32_MAX /* ax__ring_slot_t.size of a slot that holds a pointer */

static inline ax__ring_t *ring_of(ax_rt_t *rt, unsigned from, unsigned to) {
  /* Acquire pairs with the release in ring_get: the slots' initial
   * sequence numbers are visible. */
  ax__ring_t *r = atomic_load_explicit(&rt->rings[from * rt->ncores + to], memory_order_acquire);
  return r != AX__RING_NONE ? r : NULL;
}

/* Lazy wakes (core.h) */

/* 1 once the process is registered for expedited membarrier(2).  Relaxed
 * wherever read: a producer that reads 0 only fences as before, and one
 * that reads 1 was preceded by the registration (its store follows the
 * system call's return). */
static _Atomic int lazy_ok;

static void lazy_register(void) {
#if defined(SYS_membarrier)
  long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
    atomic_store_explicit(&lazy_ok, 1, memory_order_relaxed);
#endif
}

void ax__lazy_init(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, lazy_register);
}

/* The calling thread's token, made on first use: a ring's producer
 * changes when a thread that is no core exits (its message heap and ring
 * number pass on), and `lazy` holds only for the thread whose own fence
 * followed its store (ring_arm). */
static _Thread_local uint64_t tls_token __attribute__((tls_model("initial-exec")));
static _Atomic uint64_t next_token;

static inline uint64_t my_token(void) {
  uint64_t t = tls_token;
  if (__builtin_expect(t == 0, 0))
    /* Relaxed: a unique number is all it gives. */
    tls_token = t = atomic_fetch_add_explicit(&next_token, 1, memory_order_relaxed) + 1;
  return t;
}

/* r's producer has fenced r->lazy_after sends: its next ones skip it.
 * seq_cst: `lazy`'s store before every later load of `sleeping` by this
 * thread, mirrored by the consumer (sleeping's store, fence, the look at
 * `lazy` in ax__core_settle): either that look sees 1 (and the consumer
 * fences every thread before it sleeps), or this thread's later loads see
 * that sleep's `sleeping`. */
static void ring_arm(ax__ring_t *r) {
  r->fenced = 0;
  if (!atomic_load_explicit(&lazy_ok, memory_order_relaxed))
    return;
  r->armed_by = my_token();
  r->armed_tail = r->tail;
  atomic_store_explicit(&r->lazy, 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
}

/* After a publication on r, a ring to core c: wake() with its fence, or
 * without it while r is lazy for this thread (core.h). */
static inline void ring_wake(ax__ring_t *r, ax__core_t *c) {
  /* The compiler keeps the slot's store (ring_publish) before the loads
   * below: the membarrier orders what the thread does in program order,
   * and a relaxed load may otherwise be hoisted above a release store (a
   * reviewer; membarrier(2) asks for this compiler barrier too). */
  atomic_signal_fence(memory_order_seq_cst);
  if (r->armed_by != 0) {
    uint64_t me = my_token();
    /* Relaxed: the consumer's clear is ordered by its membarrier. */
    if (r->armed_by == me && atomic_load_explicit(&r->lazy, memory_order_relaxed)) {
      /* No fence: a consumer about to sleep makes this thread fence
       * (ax__core_settle); the rest is wake()'s. */
      if (atomic_load_explicit(&c->sleeping, memory_order_relaxed) &&
          atomic_exchange_explicit(&c->sleeping, 0, memory_order_relaxed))
        ax_loop_wake(c->loop);
      return;
    }
    if (r->armed_by == me) {
      /* The consumer cleared it, with one barrier: was it worth it?  A
       * flood that sent AX__LAZY_WORTH lazily arms again after
       * AX__LAZY_AFTER; bursts that sent fewer between the core's sleeps
       * (a request and its answer, 65 messages at a time) wait four times
       * longer each time, AX__LAZY_MAX at most: 64 to 128 messages per
       * sleep ran 18-32% slower with a barrier per burst, and the IPIs
       * slowed the process's other threads by as much (a reviewer). */
      r->lazy_after = r->tail - r->armed_tail >= AX__LAZY_WORTH ? AX__LAZY_AFTER
                      : r->lazy_after >= AX__LAZY_MAX / 4 ? AX__LAZY_MAX
                                                          : 4 * r->lazy_after;
    }
    r->armed_by = 0; /* cleared by the consumer, or set by the thread before */
    r->fenced = 0;
  }
  wake(c);
  if (++r->fenced >= r->lazy_after)
    ring_arm(r);
}

/* Clears r's `lazy`: whether it was set.  Relaxed: ordered by the
 * membarrier that follows (ax__core_settle). */
static inline bool ring_unarm(ax__ring_t *r) {
  if (r == NULL || !atomic_load_explicit(&r->lazy, memory_order_relaxed))
    return false;
  atomic_store_explicit(&r->lazy, 0, memory_order_relaxed);
  return true;
}

bool ax__core_settle(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  bool any = false;
  for (unsigned from = 0; from < rt->ncores; from++)
    if (from != c->index)
      any |= ring_unarm(ring_of(rt, from, c->index));
  /* Acquire, as in ax__core_drain. */
  unsigned nf = atomic_load_explicit(&rt->nforeign, memory_order_acquire);
  for (unsigned k = 0; k < nf; k++)
    any |= ring_unarm(ring_of(rt, rt->ncores + k, c->index));
  if (!any)
    return true;
#if defined(SYS_membarrier)
  /* Every running thread of the process runs a full barrier before this
   * returns, the others have passed a context switch: a lazy send's slot
   * stored before that point is seen by the core's look that follows, and
   * its load of `sleeping` after it sees 1 (and the clears above). */
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) {
    ax__stat_add(&c->stats.barriers, 1);
    return true;
  }
  /* Refused for good (a seccomp filter installed since, a process that
   * forked without the registration): never again; a passing -ENOMEM
   * only costs this sleep its length. */
  if (errno == EPERM || errno == ENOSYS || errno == EINVAL)
#endif
    atomic_store_explicit(&lazy_ok, 0, memory_order_relaxed);
  return false;
}

/* The ring from core `from` to core `to`, made on first use; NULL when
 * there is none: out of memory now or at its first use (AX__RING_NONE),
 * and the caller sends through the inbox.  from's thread (the ring's only
 * producer). */
static ax__ring_t *ring_get(ax_rt_t *rt, unsigned from, unsigned to) {
  ax__ring_t *r = atomic_load_explicit(&rt->rings[from * rt->ncores + to], memory_order_relaxed);
  if (r != NULL)
    return r != AX__RING_NONE ? r : NULL;
  r = ax__aligned_alloc(AX__CACHE_LINE, sizeof *r);
  if (r == NULL) {
    /* Relaxed: only this producer reads it for the pair's sends; the
     * consumers that load it take it for no ring (ring_of). */
    atomic_store_explicit(&rt->rings[from * rt->ncores + to], AX__RING_NONE,
                          memory_order_relaxed);
    return NULL;
  }
  r->tail = r->seen_head = 0;
  atomic_init(&r->head, 0);
  r->over_head = r->over_tail = NULL;
  r->fgave_up = false;
  r->armed_by = 0;
  r->fenced = 0;
  r->lazy_after = AX__LAZY_AFTER;
  r->armed_tail = 0;
  atomic_init(&r->lazy, 0);
  atomic_init(&r->fover_n, 0);
  atomic_init(&r->fwait, 0);
  ax__mpscq_init(&r->fover, &r->fover_stub, false);
  for (unsigned i = 0; i < AX__RING_SLOTS; i++)
    atomic_init(&r->slot[i].seq, 0); /* never head + 1 before a publish */
  /* Release: the consumer that loads the pointer sees the slots set up. */
  atomic_store_explicit(&rt->rings[from * rt->ncores + to], r, memory_order_release);
  return r;
}

/* The slot for the producer's next message, or NULL when the ring is full. */
static inline ax__ring_slot_t *ring_claim(ax__ring_t *r) {
  if (r->tail - r->seen_head >= AX__RING_SLOTS) {
    /* Acquire pairs with the consumer's release of head: its reads of the
     * slots it has taken are done before they are written again. */
    r->seen_head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (r->tail - r->seen_head >= AX__RING_SLOTS)
      return NULL;
  }
  return &r->slot[r->tail & (AX__RING_SLOTS - 1)];
}

/* Hands a filled slot to the consumer. */
static inline void ring_publish(ax__ring_t *r, ax__ring_slot_t *sl) {
  /* Release: the slot's contents (and the message it points to) before the
   * consumer can see the sequence number. */
  atomic_store_explicit(&sl->seq, r->tail + 1, memory_order_release);
  r->tail++;
}

static inline void ring_put_msg(ax__ring_slot_t *sl, ax__msg_t *m) {
  sl->to = m->to;
  sl->size = RING_MSG;
  sl->msg = m;
}

/* A small message copied into the slot itself (size <= AX__RING_INLINE). */
static inline void ring_put_inline(ax__ring_slot_t *sl, ax_ref_t to, ax_ref_t from, uint32_t type,
                                   const void *data, uint32_t size, uint64_t req) {
  sl->to = to;
  sl->from = from;
  sl->type = type;
  sl->size = size;
  sl->req = req;
  if (size != 0)
    memcpy(sl->data, data, size);
}

/* Moves what waits on r's overflow list (a ring of core `from`) into the
 * ring's free slots, in order.  Returns whether it moved any (the caller
 * wakes the consumer).  At every send to a ring with an overflow, and
 * between rounds: a turn that floods another core keeps it busy instead of
 * leaving the list to the end of its round while that core sleeps. */
static bool over_move(ax__core_t *from, ax__ring_t *r) {
  bool moved = false;
  ax__ring_slot_t *sl;
  while (r->over_head != NULL && (sl = ring_claim(r)) != NULL) {
    ax__msg_t *m = r->over_head;
    r->over_head = (ax__msg_t *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
    ring_put_msg(sl, m);
    ring_publish(r, sl);
    moved = true;
  }
  if (moved && r->over_head == NULL) {
    r->over_tail = NULL;
    from->nover--;
  }
  return moved;
}

static void over_append(ax__core_t *from, ax__ring_t *r, ax__msg_t *m) {
  atomic_store_explicit(&m->node.next, NULL, memory_order_relaxed);
  if (r->over_tail != NULL)
    atomic_store_explicit(&r->over_tail->node.next, &m->node, memory_order_relaxed);
  else {
    r->over_head = m;
    from->nover++;
  }
  r->over_tail = m;
}

bool ax__ring_send_inline(ax__core_t *from, ax__core_t *c, ax_ref_t to, ax_ref_t sender,
                          uint32_t type, const void *data, uint32_t size, uint64_t req) {
  ax__ring_t *r = ring_get(from->rt, from->index, c->index);
  if (r == NULL)
    return false;
  if (__builtin_expect(r->over_head != NULL, 0)) {
    if (over_move(from, r))
      wake(c); /* whatever follows: the ring may be full again, and only
                  a move wakes the core (a reviewer's lost wake-up) */
    if (r->over_head != NULL)
      return false; /* behind the list: the caller allocates and appends */
  }
  ax__ring_slot_t *sl = ring_claim(r);
  if (sl == NULL)
    return false;
  ring_put_inline(sl, to, sender, type, data, size, req);
  ring_publish(r, sl);
  ring_wake(r, c);
  return true;
}

/* ------------------------------------------------------------------------ */
/* Rings of threads that are no core (core.h)                                */

/* The calling thread's ring number + 1 (its message heap's number), 0
 * before it first needed one or when it has none. */
static _Thread_local unsigned tls_ring_no __attribute__((tls_model("initial-exec")));

void ax__fring_forget(void) { tls_ring_no = 0; }

/* The calling thread's ring to core c of rt, made on first use, or NULL:
 * the thread is a core (of another runtime), has no ring number, or no
 * memory for the ring. */
static ax__ring_t *fring_get(ax_rt_t *rt, ax__core_t *c) {
  unsigned k = tls_ring_no;
  ax__ring_t *r;
  if (__builtin_expect(k != 0, 1) && (r = ring_of(rt, rt->ncores + k - 1, c->index)) != NULL)
    return r;
  if (ax__tls_core != NULL)
    return NULL; /* a core of another runtime: its messages go through the inbox */
  k = ax__thread_heap_id();
  if (k >= AX__FOREIGN_RINGS)
    return NULL;
  tls_ring_no = k + 1;
  r = ring_get(rt, rt->ncores + k, c->index);
  if (r == NULL)
    return NULL;
  /* Raise the number of rings the cores look at to cover k.  Release
   * pairs with the cores' acquire: they see the ring pointer stored
   * above (ring_get's own release store covers the slots). */
  unsigned n = atomic_load_explicit(&rt->nforeign, memory_order_relaxed);
  while (n <= k && !atomic_compare_exchange_weak_explicit(&rt->nforeign, &n, k + 1,
                                                          memory_order_release,
                                                          memory_order_relaxed))
    ;
  return r;
}

/* The low half of a 64-bit count, the word a futex sleeps on (a count
 * never moves by 2^32 between two looks): its first four bytes on a
 * little-endian machine, its last four on a big-endian one. */
static inline uint32_t *low_half(_Atomic uint64_t *count) {
  return (uint32_t *)(void *)count + (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
}

/* The low half of r->head, which a producer sleeps on. */
static inline uint32_t *head_word(ax__ring_t *r) { return low_half(&r->head); }

/* A producer that is no core waits for its core (fring_claim, fring_pace)
 * in steps: 64 short spins first (none where the cores do not spin), then
 * sleeps on a word of the ring that the core's take changes. */
static inline void fwait_spin(void) {
  for (int i = 0; i < 32; i++)
    ck_pr_stall();
}

/* ax__ring_t.fwait: 0, or the word a producer is about to sleep on. */
enum { FWAIT_HEAD = 1, FWAIT_COUNT = 2 };

/* Before the producer looks a last time and sleeps on `word` (FWAIT_*):
 * the flag that asks the consumer to wake it there.  seq_cst: the flag's
 * store before the producer's look (at head or the queue's count),
 * mirrored by the consumer (fring_wake_producer: what it took, fence, the
 * flag's load): either the consumer sees the flag and wakes the producer,
 * or the producer sees what it took and does not sleep. */
static inline void fwait_ask(ax__ring_t *r, uint32_t word) {
  atomic_store_explicit(&r->fwait, word, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
}

/* Sleeps at most `left` ns unless *word no longer holds `seen` (the look
 * after fwait_ask). */
static inline void fwait_sleep(uint32_t *word, uint32_t seen, int64_t left) {
  struct timespec ts = {0, (long)left};
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
}

/* c's delivered count: a waiting thread's sign that the core makes
 * progress.  Relaxed: a count to pace by, it orders nothing. */
static inline uint64_t core_beat(const ax__core_t *c) {
  return atomic_load_explicit(&c->stats.delivered, memory_order_relaxed);
}

/* How long a thread that is no core waits for c to show progress before
 * it calls c stuck: AX__FOREIGN_WAIT_NS, or 16 of c's recent messages
 * when those are slow (ax__core_t.msg_ns), AX__FOREIGN_WAIT_MAX_NS at
 * most.  The core counts its progress every 8 messages. */
static inline int64_t stuck_window(const ax__core_t *c) {
  /* Relaxed: an estimate (core.c's run_actor). */
  int64_t w = 16 * atomic_load_explicit(&c->msg_ns, memory_order_relaxed);
  return w <= AX__FOREIGN_WAIT_NS ? AX__FOREIGN_WAIT_NS
         : w >= AX__FOREIGN_WAIT_MAX_NS ? AX__FOREIGN_WAIT_MAX_NS
                                         : w;
}

/* Whether c's stuck gate is open at `beat` (the core found stuck there
 * and messages left to let through): a thread then goes on at once. */
static inline bool stuck_open(ax__core_t *c, uint64_t beat) {
  /* Relaxed, as all of the gate: it paces, the messages' order is their
   * queues'. */
  return atomic_load_explicit(&c->stuck_beat, memory_order_relaxed) == beat + 1 &&
         atomic_load_explicit(&c->stuck_left, memory_order_relaxed) > 0 &&
         atomic_fetch_sub_explicit(&c->stuck_left, 1, memory_order_relaxed) > 0;
}

/* A thread that is no core waited AX__FOREIGN_WAIT_NS for c, whose
 * delivered count stayed at `beat`: whether it goes on.  The first such
 * thread of a stuck spell, and the first one a whole wait after the last
 * refill, refills the gate with AX__RING_SLOTS messages; every thread
 * takes one from it.  So a stuck core gets AX__RING_SLOTS more messages
 * per AX__FOREIGN_WAIT_NS from all its waiting threads together, where
 * each thread used to send that many (24 threads whose cores were
 * descheduled now and then queued 300,000 messages). */
static bool stuck_pass(ax__core_t *c, uint64_t beat) {
  int64_t now = ax_now();
  int64_t at = atomic_load_explicit(&c->stuck_at, memory_order_relaxed);
  if ((atomic_load_explicit(&c->stuck_beat, memory_order_relaxed) != beat + 1 ||
       now - at >= stuck_window(c)) &&
      atomic_compare_exchange_strong_explicit(&c->stuck_at, &at, now, memory_order_relaxed,
                                              memory_order_relaxed)) {
    atomic_store_explicit(&c->stuck_left, AX__RING_SLOTS, memory_order_relaxed);
    atomic_store_explicit(&c->stuck_beat, beat + 1, memory_order_relaxed);
  }
  return atomic_fetch_sub_explicit(&c->stuck_left, 1, memory_order_relaxed) > 0;
}

/* The next slot of r, a ring of rt, waiting while the core makes room: a
 * short spin (the core usually frees a batch within microseconds), then
 * sleep on head until the core publishes it (fring_drain wakes the
 * sleeper).  No spin where the runtime's cores do not spin either (one
 * CPU: the spin would take the time the core needs to make the room;
 * measured with bench_savina's fork-join under `taskset -c 0`, 321-328 ms
 * with the spin).  NULL once the core has taken nothing for
 * AX__FOREIGN_WAIT_NS: the caller overflows instead. */
static ax__ring_slot_t *fring_claim(ax__core_t *c, ax__ring_t *r) {
  ax__ring_slot_t *sl = ring_claim(r);
  if (sl != NULL)
    return sl;
  uint64_t beat = core_beat(c);
  if (stuck_open(c, beat))
    return NULL;
  int64_t since = ax_now();
  uint64_t seen = r->seen_head;
  for (unsigned spins = c->rt->opts.spin_ns > 0 ? 0 : 64;; spins++) {
    if (spins < 64) {
      fwait_spin();
    } else {
      fwait_ask(r, FWAIT_HEAD);
      if ((sl = ring_claim(r)) != NULL) /* its look at head */
        return sl;
      int64_t left = stuck_window(c) - (ax_now() - since);
      if (left > 0)
        fwait_sleep(head_word(r), (uint32_t)r->seen_head, left);
    }
    if ((sl = ring_claim(r)) != NULL)
      return sl;
    uint64_t now_beat = core_beat(c);
    if (r->seen_head != seen || now_beat != beat) { /* progress: keep pace with the core */
      seen = r->seen_head;
      beat = now_beat;
      since = ax_now();
    } else if (ax_now() - since > stuck_window(c)) {
      if (stuck_pass(c, beat))
        return NULL;
      since = ax_now();
    }
  }
}

/* The low half of r->fover_n, which a producer pacing its queue sleeps
 * on. */
static inline uint32_t *fover_word(ax__ring_t *r) { return low_half(&r->fover_n); }

/* The consumer has taken from r (slots or queue): wakes its producer on
 * the word it sleeps on, if it does (fring_claim: head; fring_pace: the
 * queue's count), one system call. */
static void fring_wake_producer(ax__ring_t *r) {
  /* seq_cst: what the consumer took (head's store, the queue's count)
   * before the flag's load, the mirror of fwait_ask's fence. */
  atomic_thread_fence(memory_order_seq_cst);
  uint32_t word;
  if (atomic_load_explicit(&r->fwait, memory_order_relaxed) != 0 &&
      (word = atomic_exchange_explicit(&r->fwait, 0, memory_order_relaxed)) != 0)
    syscall(SYS_futex, word == FWAIT_HEAD ? head_word(r) : fover_word(r), FUTEX_WAKE_PRIVATE, 1,
            NULL, NULL, 0);
}

/* The depth of a producer's overflow queue from which its sends wait. */
#define FOVER_PACE AX__RING_SLOTS

/* A thread that is no core waits while the count of messages it shares
 * with core c (its overflow queue's, or c's inbox's) holds `limit` or
 * more: a short spin, then a futex sleep on the count's low half, which
 * the core ends after its take when it finds *flag set (to `ask`).
 * Progress is the count going down or the core handling messages at all
 * (its delivered count, which it adds to every 8 messages and at the end
 * of each turn): a core that is alive but slow, its rounds longer than the
 * wait (the credit keeps what it has not handled in the queue), is waited
 * for; one that shows none for stuck_window (a long behaviour call, a
 * runtime not started, a core descheduled) is stuck, and its gate decides
 * (stuck_pass). */
static void pace_wait(ax__core_t *c, _Atomic uint64_t *count, uint64_t limit,
                      _Atomic uint32_t *flag, uint32_t ask) {
  /* Relaxed: counts to pace by; the messages' order is their queue's. */
  uint64_t n = atomic_load_explicit(count, memory_order_relaxed);
  if (n < limit)
    return;
  uint64_t beat = core_beat(c);
  if (stuck_open(c, beat))
    return;
  int64_t since = ax_now();
  for (unsigned spins = c->rt->opts.spin_ns > 0 ? 0 : 64;; spins++) {
    uint64_t was = n;
    if (spins < 64) {
      fwait_spin();
    } else {
      /* seq_cst: the flag's store before the look at the count, mirrored
       * by the consumer (its decrement, fence, the flag's load): either it
       * sees the flag and wakes this thread, or this thread sees what it
       * took and does not sleep. */
      atomic_store_explicit(flag, ask, memory_order_relaxed);
      atomic_thread_fence(memory_order_seq_cst);
      n = atomic_load_explicit(count, memory_order_relaxed);
      if (n < limit)
        return;
      int64_t left = stuck_window(c) - (ax_now() - since);
      if (left > 0)
        fwait_sleep(low_half(count), (uint32_t)n, left);
    }
    n = atomic_load_explicit(count, memory_order_relaxed);
    if (n < limit)
      return;
    uint64_t now_beat = core_beat(c);
    if (n < was || now_beat != beat) { /* progress: keep pace with it */
      beat = now_beat;
      since = ax_now();
    } else if (ax_now() - since > stuck_window(c)) {
      if (stuck_pass(c, beat))
        return;
      since = ax_now();
    }
  }
}

/* A producer that is no core, about to append to its overflow queue:
 * with FOVER_PACE messages or more in it, waits while the core takes
 * them, as fring_claim waits for slots.  While it waits it appends
 * nothing, so the count goes down only by the core's take. */
static void fring_pace(ax__core_t *c, ax__ring_t *r) {
  pace_wait(c, &r->fover_n, FOVER_PACE, &r->fwait, FWAIT_COUNT);
}

/* True while r's producer must append to its overflow queue: the core
 * has not taken all of it yet. */
static inline bool fring_overflowing(ax__ring_t *r) {
  /* Acquire pairs with the consumer's release decrement (fring_drain):
   * once 0 is read, the queue's messages have arrived, and what is
   * written to the slots next comes after them. */
  return atomic_load_explicit(&r->fover_n, memory_order_acquire) != 0;
}

static void fring_overflow(ax__core_t *c, ax__ring_t *r, ax__msg_t *m) {
  if (fring_overflowing(r))
    fring_pace(c, r);
  /* Release: the slots published before are visible to a consumer that
   * reads the count with acquire (it drains them before the queue). */
  atomic_fetch_add_explicit(&r->fover_n, 1, memory_order_release);
  ax__mpscq_push(&r->fover, &m->node);
  wake(c);
}

bool ax__fring_send_inline(ax_rt_t *rt, ax__core_t *c, ax_ref_t to, uint32_t type,
                           const void *data, uint32_t size, uint64_t req) {
  ax__ring_t *r = fring_get(rt, c);
  if (r == NULL || fring_overflowing(r) || r->fgave_up)
    return false;
  ax__ring_slot_t *sl = fring_claim(c, r);
  if (sl == NULL) {
    r->fgave_up = true; /* the same message's second try (fring_push) waits no more */
    return false;
  }
  ring_put_inline(sl, to, AX_REF_NONE, type, data, size, req);
  ring_publish(r, sl);
  ring_wake(r, c);
  return true;
}

/* ------------------------------------------------------------------------ */
/* The inbox                                                                 */

/* The low half of c->inbox_n, which pushers that wait sleep on. */
static inline uint32_t *inbox_word(ax__core_t *c) { return low_half(&c->inbox_n); }

/* A thread that is no core pushed to c's inbox: from AX__INBOX_PACE
 * messages in it, it waits while the core takes them (pace_wait, woken
 * by inbox_drain).  Threads beyond the first AX__FOREIGN_RINGS (no ring
 * of their own) share the inbox, and unpaced they filled memory: 633 MB
 * with 24 threads flooding 4 actors. */
static void inbox_pace(ax__core_t *c) {
  pace_wait(c, &c->inbox_n, AX__INBOX_PACE, &c->inbox_wait, 1);
}

/* m into c's inbox (any thread); a thread that is no core then keeps pace
 * with the core (inbox_pace).  The count goes up before the push, so the
 * core's decrement, after its take, never finds it lower than what it
 * took. */
static void inbox_push(ax__core_t *c, ax__msg_t *m) {
  /* Relaxed: a count; the push's release and the take's acquire order
   * this increment before the core's decrement of the same message. */
  uint64_t n = atomic_fetch_add_explicit(&c->inbox_n, 1, memory_order_relaxed) + 1;
  ax__mpscq_push(&c->inbox, &m->node);
  wake(c);
  if (n >= AX__INBOX_PACE && ax__tls_core == NULL)
    inbox_pace(c);
}

/* m from a thread that is no core: onto its ring, else the inbox. */
static void fring_push(ax__core_t *c, ax__msg_t *m) {
  ax__ring_t *r = fring_get(c->rt, c);
  if (r == NULL) {
    /* No ring (a later thread, no memory for it when first needed, a
     * core of another runtime): the inbox, and never a ring later for
     * this thread and core (AX__RING_NONE), so that order is kept. */
    inbox_push(c, m);
    return;
  }
  ax__ring_slot_t *sl;
  if (fring_overflowing(r) || r->fgave_up || (sl = fring_claim(c, r)) == NULL) {
    r->fgave_up = false; /* the overflow queue takes over until the core took it all */
    fring_overflow(c, r, m);
    return;
  }
  ring_put_msg(sl, m);
  ring_publish(r, sl);
  ring_wake(r, c);
}

void ax__remote_push(ax__core_t *c, ax__msg_t *m) {
  ax__core_t *from = ax__tls_core;
  ax__ring_t *r;
  if (from == NULL || from->rt != c->rt) {
    fring_push(c, m);
    return;
  }
  if ((r = ring_get(c->rt, from->index, c->index)) == NULL) {
    /* No memory for the ring when it was first needed: the inbox, for
     * this pair's messages from then on (AX__RING_NONE keeps their order). */
    inbox_push(c, m);
    return;
  }
  ax__ring_slot_t *sl;
  bool moved = r->over_head != NULL && over_move(from, r);
  if (r->over_head != NULL || (sl = ring_claim(r)) == NULL) {
    over_append(from, r, m); /* moved on at a later send or between rounds */
    if (moved)
      wake(c);
    return;
  }
  ring_put_msg(sl, m);
  ring_publish(r, sl);
  ring_wake(r, c);
}

void ax__ring_flush(ax__core_t *from) {
  ax_rt_t *rt = from->rt;
  for (unsigned to = 0; to < rt->ncores && from->nover > 0; to++) {
    ax__ring_t *r = to != from->index ? ring_of(rt, from->index, to) : NULL;
    if (r != NULL && r->over_head != NULL && over_move(from, r))
      wake(rt->cores[to]);
  }
}

uint64_t ax__msg_drop(ax__msg_t *m, ax_ref_t self, int reason) {
  uint64_t dead;
  if (m->sys == AX__SYS_NONE)
    dead = 1;
  else if (ax__kinds[m->sys] != NULL && ax__kinds[m->sys]->drop != NULL)
    dead = ax__kinds[m->sys]->drop(self, reason, m);
  else
    dead = 0;
  ax__msg_release(m);
  return dead;
}

/* A slot's payload into m (its size and data set): whole 8-byte words,
 * so that each copy has a constant size and is a few moves, not a call to
 * memcpy on every cross-core hand-off.  The slot holds AX__RING_INLINE
 * bytes; m's payload, of the class ax__msg_alloc_local chose for the
 * size, holds at least the size rounded up to 8: the first class's
 * payload is a multiple of 8 and holds 16 or more, and a size above it
 * goes to the second, which holds a whole slot's. */
_Static_assert(AX__RING_INLINE == 24, "slot_copy copies at most 24 bytes");
_Static_assert(AX__MSG_TINY - sizeof(ax__msg_t) >= 16 && (AX__MSG_TINY - sizeof(ax__msg_t)) % 8 == 0,
               "the first class's payload takes slot_copy's 16-byte copy");
_Static_assert(AX__MSG_SMALL - sizeof(ax__msg_t) >= AX__RING_INLINE,
               "the second class's payload takes a whole slot's");
static inline void slot_copy(ax__msg_t *m, const ax__ring_slot_t *sl) {
  m->m.size = sl->size;
  m->m.data = m->payload;
  if (sl->size <= 8)
    memcpy(m->payload, sl->data, 8);
  else if (sl->size <= 16)
    memcpy(m->payload, sl->data, 16);
  else
    memcpy(m->payload, sl->data, 24);
}

/* A message from another core or thread reached core c: into its
 * receiver's mailbox, or dropped when the receiver is gone. */
static void arrive(ax__core_t *c, ax__msg_t *m, uint64_t *dead) {
  ax_actor_t *a = ax__lookup_local(c, m->to);
  if (a == NULL) {
    *dead += ax__msg_drop(m, m->to, -ESRCH);
    ax__msg_free(m);
    return;
  }
  if (!(m->flags & AX__MSG_FIRST)) {
    ax__mailbox_push(c, a, m);
    return;
  }
  /* The actor's first message (ax__actor_publish): in front of whatever
   * this core's actors sent it meanwhile.  It was published queued, so
   * nothing has run it yet. */
  m->flags &= (uint16_t)~AX__MSG_FIRST;
  ax__mailbox_link(a, m, true);
  /* Acquire pairs with the release store in ax_rt_stop. */
  if (!atomic_load_explicit(&c->rt->stopping, memory_order_acquire))
    ax__runq_push(c, a);
}

/* Takes what the ring r holds for core c, max messages at most (an out
 * of memory leaves the rest in its slots, for a later drain). */
static unsigned ring_drain(ax__core_t *c, ax__ring_t *r, uint64_t *dead, unsigned max) {
  unsigned n = 0;
  uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed); /* this thread's */
  /* head is published once, after the batch: a producer waiting for room
   * (fring_claim) reads its line, which so moves once per batch instead of
   * once per message, and the producer refills the ring while the core
   * handles what it took.  A drain takes at most a ring's worth, since the
   * producer sees no room before this store. */
  while (n < max) {
    ax__ring_slot_t *sl = &r->slot[head & (AX__RING_SLOTS - 1)];
    /* Acquire pairs with the producer's release in ring_publish. */
    if (atomic_load_explicit(&sl->seq, memory_order_acquire) != head + 1)
      break;
    ax__msg_t *m;
    if (sl->size == RING_MSG) {
      m = sl->msg;
    } else {
      m = ax__msg_alloc_local(c, sl->size);
      if (m == NULL)
        break; /* out of memory: the message stays in its slot until later */
      ax__msg_fill(m, sl->type, NULL, 0, sl->req, sl->from);
      if (sl->size != 0)
        slot_copy(m, sl);
      m->to = sl->to;
    }
    head++;
    n++;
    arrive(c, m, dead);
  }
  /* Release: the reads of the slots taken are done before the producer,
   * which reads head with acquire, writes them again. */
  if (n != 0)
    atomic_store_explicit(&r->head, head, memory_order_release);
  return n;
}

/* Whether r holds a message for its consumer (the consumer's thread). */
static inline bool ring_pending(ax__ring_t *r) {
  uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed); /* this thread's */
  /* Acquire, as in ring_drain. */
  return atomic_load_explicit(&r->slot[head & (AX__RING_SLOTS - 1)].seq, memory_order_acquire) ==
         head + 1;
}

/* Takes what a thread that is no core sent on r: the slots, then (when
 * it overflowed) the overflow queue, all of which came after the slots. */
static unsigned fring_drain(ax__core_t *c, ax__ring_t *r, uint64_t *dead, unsigned max) {
  unsigned n = ring_drain(c, r, dead, max);
  if (n != 0)
    fring_wake_producer(r);
  if (!fring_overflowing(r))
    return n;
  /* The count's acquire made every slot published before the queue's
   * first message visible: take those first.  The producer publishes no
   * slot while its queue holds anything, so a slot still published after
   * this drain is one that an out of memory left: the queue waits behind
   * it. */
  n += ring_drain(c, r, dead, max - n);
  if (ring_pending(r))
    return n;
  ax__mpscq_node_t *node;
  bool took = false;
  while (n < max && (node = ax__mpscq_take(&r->fover, &r->fover_stub)) != NULL) {
    n++;
    took = true;
    arrive(c, (ax__msg_t *)node, dead);
    /* Release pairs with the producer's acquire (fring_overflowing): the
     * message has arrived before the producer may write slots again. */
    atomic_fetch_sub_explicit(&r->fover_n, 1, memory_order_release);
  }
  if (took)
    fring_wake_producer(r); /* it may pace its queue (fring_pace) */
  return n;
}

/* Takes up to max messages from c's inbox.  Returns how many. */
static unsigned inbox_drain(ax__core_t *c, uint64_t *dead, unsigned max) {
  unsigned n = 0;
  ax__mpscq_node_t *node;
  while (n < max && (node = ax__mpscq_take(&c->inbox, &c->inbox_stub)) != NULL) {
    n++;
    arrive(c, (ax__msg_t *)node, dead);
  }
  if (n == 0)
    return 0;
  /* Relaxed: a count (inbox_push).  Then seq_cst: the decrement before
   * the flag's load, the mirror of inbox_pace's fence; every thread that
   * sleeps on the count wakes and looks again. */
  atomic_fetch_sub_explicit(&c->inbox_n, n, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&c->inbox_wait, memory_order_relaxed) != 0 &&
      atomic_exchange_explicit(&c->inbox_wait, 0, memory_order_relaxed) != 0)
    syscall(SYS_futex, inbox_word(c), FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  return n;
}

/* Takes what the other cores' rings hold, whole: their senders never
 * wait, so what is left in a ring would only move to their overflow lists. */
static unsigned cores_drain(ax__core_t *c, uint64_t *dead) {
  ax_rt_t *rt = c->rt;
  unsigned n = 0;
  for (unsigned from = 0; from < rt->ncores; from++) {
    ax__ring_t *r = from != c->index ? ring_of(rt, from, c->index) : NULL;
    if (r != NULL)
      n += ring_drain(c, r, dead, AX__RING_SLOTS);
  }
  return n;
}

/* ax__core_drain and ax__core_drain_some: at most *max messages of
 * threads that are no core, *max lowered by what it took. */
static unsigned drain(ax__core_t *c, unsigned *max) {
  ax_rt_t *rt = c->rt;
  uint64_t dead = 0;
  unsigned n = cores_drain(c, &dead);
  /* Threads that are no core: what is left waits in their rings and
   * queues, where it makes them wait (fring_claim, fring_pace), so they
   * send at the pace the actors handle their messages.  The inbox first,
   * up to half the budget (its senders never wait, and after the rings it
   * got nothing while they flooded), then the rings, each call starting
   * one ring further so that every thread gets its turn, then the inbox
   * again with what is left. */
  unsigned left = *max, got;
  got = inbox_drain(c, &dead, left - left / 2);
  n += got;
  left -= got;
  /* Acquire pairs with fring_get's release: the rings below are there. */
  unsigned nf = atomic_load_explicit(&rt->nforeign, memory_order_acquire);
  unsigned first = nf != 0 && left > 0 ? c->fdrain_next++ % nf : 0;
  for (unsigned i = 0; i < nf && left > 0; i++) {
    unsigned k = first + i < nf ? first + i : first + i - nf;
    ax__ring_t *r = ring_of(rt, rt->ncores + k, c->index);
    if (r != NULL) {
      got = fring_drain(c, r, &dead, left);
      n += got;
      left -= got;
    }
  }
  got = inbox_drain(c, &dead, left);
  n += got;
  left -= got;
  if (dead != 0)
    ax__stat_add(&c->stats.dead_letters, dead);
  *max = left;
  return n;
}

unsigned ax__core_drain(ax__core_t *c) {
  unsigned all = UINT_MAX;
  return drain(c, &all);
}

/* How many messages r holds for its consumer now: the slots published in
 * a row from head, and the queue.  The consumer's thread. */
static unsigned fring_held(ax__ring_t *r) {
  uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed); /* this thread's */
  unsigned n = 0;
  /* Acquire, as in ring_drain. */
  while (n < AX__RING_SLOTS &&
         atomic_load_explicit(&r->slot[(head + n) & (AX__RING_SLOTS - 1)].seq,
                              memory_order_acquire) == head + n + 1)
    n++;
  /* Acquire pairs with the producer's release increment (fring_overflow). */
  uint64_t q = atomic_load_explicit(&r->fover_n, memory_order_acquire);
  return q < UINT_MAX - n ? n + (unsigned)q : UINT_MAX;
}

unsigned ax__core_drain_sent(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  uint64_t dead = 0;
  unsigned n = cores_drain(c, &dead);
  /* Acquire pairs with fring_get's release: the rings below are there. */
  unsigned nf = atomic_load_explicit(&rt->nforeign, memory_order_acquire);
  for (unsigned k = 0; k < nf; k++) {
    ax__ring_t *r = ring_of(rt, rt->ncores + k, c->index);
    if (r != NULL) {
      /* What it holds now, not what its producer adds while this takes
       * it: taking that too would let the producer, which waits only
       * while its queue is long, go on without end. */
      unsigned held = fring_held(r);
      if (held != 0)
        n += fring_drain(c, r, &dead, held);
    }
  }
  /* The inbox whole: its senders never wait, so taking it feeds nobody. */
  n += inbox_drain(c, &dead, UINT_MAX);
  if (dead != 0)
    ax__stat_add(&c->stats.dead_letters, dead);
  return n;
}

unsigned ax__core_drain_some(ax__core_t *c) { return drain(c, &c->fcredit); }

unsigned ax__core_drain_cores(ax__core_t *c) {
  unsigned none = 0;
  return drain(c, &none);
}

bool ax__core_pending(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  for (unsigned from = 0; from < rt->ncores; from++) {
    ax__ring_t *r = from != c->index ? ring_of(rt, from, c->index) : NULL;
    if (r != NULL && ring_pending(r))
      return true;
  }
  /* Acquire, as in ax__core_drain. */
  unsigned nf = atomic_load_explicit(&rt->nforeign, memory_order_acquire);
  for (unsigned k = 0; k < nf; k++) {
    ax__ring_t *r = ring_of(rt, rt->ncores + k, c->index);
    if (r != NULL && (ring_pending(r) || fring_overflowing(r)))
      return true;
  }
  return ax__mpscq_pending(&c->inbox);
}

int ax__ref_enter(ax_ref_t to, void **obj, ax_rt_t **rt_out, ax__erec_t **erec) {
  *erec = NULL;
  *obj = NULL;
  *rt_out = NULL;
  ax__core_t *cur = ax__tls_core;
  if (cur != NULL && ax__ref_on_core(cur, to)) {
    /* This core's own actor: only this thread frees it, no epoch needed. */
    *rt_out = cur->rt;
    *obj = ax__lookup_local(cur, to);
    return *obj != NULL ? 0 : -ESRCH;
  }
  if (to == AX_REF_NONE)
    return -ESRCH;
  ax_rt_t *rt = ax__rt_lookup(ax__ref_rt(to));
  if (rt == NULL)
    return -ESRCH;
  *rt_out = rt;
  unsigned ci = ax__ref_core(to);
  ax__table_t *table;
  if (ci == AX__REF_NO_CORE)
    table = &rt->ports;
  else if (ci < rt->ncores)
    table = &rt->cores[ci]->table;
  else
    return -ESRCH;
  ax__erec_t *r = ax__rt_erec(rt);
  if (r == NULL)
    return -ENOMEM; /* not "no such actor": the actor may well be alive */
  ax__epoch_enter(&rt->epoch, r);
  void *p = ax__table_get(table, ax__ref_slot(to), ax__ref_gen(to));
  if (p == NULL) {
    ax__epoch_exit(r);
    return -ESRCH;
  }
  *erec = r;
  *obj = p;
  return 0;
}

void ax__ref_leave(ax__erec_t *erec) {
  if (erec != NULL)
    ax__epoch_exit(erec);
}

/* A send to an actor of another core (or from a thread that is no core):
 * the actor itself is never touched, so no epoch is needed (ax__ref_alive). */
static int send_remote(ax_ref_t to, ax__msg_t *m) {
  if (to == AX_REF_NONE)
    return -ESRCH;
  ax_rt_t *rt = ax__rt_lookup(ax__ref_rt(to));
  if (rt == NULL)
    return -ESRCH;
  unsigned ci = ax__ref_core(to);
  if (ci >= rt->ncores || !ax__ref_alive(rt->cores[ci], to))
    return -ESRCH;
  m->to = to;
  ax__remote_push(rt->cores[ci], m);
  return 0;
}

/* A user message to an actor with a bounded mailbox: counted in the
 * actor's inflight under the epoch (the actor's memory stays while the
 * sender looks), or refused with -EAGAIN when the bound is reached. */
static int send_bounded(ax_ref_t to, ax__msg_t *m) {
  ax_rt_t *rt;
  ax__erec_t *erec;
  void *obj;
  int rc = ax__ref_enter(to, &obj, &rt, &erec);
  if (rc == 0 && ax__ref_core(to) == AX__REF_NO_CORE)
    rc = -ESRCH; /* never: a port's reference has no bound */
  if (rc < 0) {
    ax__ref_leave(erec);
    return rc;
  }
  ax_actor_t *a = obj;
  if (a->ref != to) { /* the bit set on a reference to an unbounded actor: no such actor */
    ax__ref_leave(erec);
    return -ESRCH;
  }
  if (!ax__bound_take(&a->inflight, a->mbox_max, m)) {
    ax__ref_leave(erec);
    return -EAGAIN;
  }
  ax__deliver(a, m);
  ax__ref_leave(erec);
  return 0;
}

int ax__send_msg(ax_ref_t to, ax__msg_t *m) {
  ax__core_t *cur = ax__tls_core;
  int rc;
  if (ax__ref_bounded(to) && m->sys == AX__SYS_NONE) {
    rc = send_bounded(to, m);
  } else if (cur != NULL && ax__ref_on_core(cur, to)) {
    ax_actor_t *a = ax__lookup_local(cur, to);
    if (a != NULL) {
      ax__mailbox_push(cur, a, m);
      rc = 0;
    } else {
      rc = -ESRCH;
    }
  } else if (to != AX_REF_NONE && ax__ref_core(to) == AX__REF_NO_CORE) {
    ax_rt_t *rt;
    ax__erec_t *erec;
    void *e;
    rc = ax__ref_enter(to, &e, &rt, &erec);
    if (rc == 0)
      rc = ax__deliver_port(e, m);
    ax__ref_leave(erec);
  } else {
    rc = send_remote(to, m);
  }
  if (rc < 0) {
    /* Refused, not a dead letter: the caller hears of it and nothing was
     * accepted (a dead letter is one accepted and then dropped). */
    ax__msg_release(m);
    ax__msg_free(m);
    return rc;
  }
  if (cur != NULL)
    ax__stat_add(&cur->stats.sent, 1);
  return 0;
}

int ax__call_send(ax_ref_t to, ax__call_t *call) {
  ax__msg_t *m = ax__msg_new(to, AX__SYS_CALL, AX__SYS_CALL, NULL, 0, AX_REF_NONE);
  if (m == NULL) {
    call->fn(call, NULL);
    return -ENOMEM;
  }
  m->aux = (uint64_t)(uintptr_t)call;
  int rc = ax__send_msg(to, m); /* frees m when it fails */
  if (rc < 0)
    call->fn(call, NULL);
  return rc;
}
