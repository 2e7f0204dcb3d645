/* Actors, cores and the runtime: the structures, the send and schedule fast paths, the invoke path. */
#ifndef AXON_RUNTIME_CORE_H
#define AXON_RUNTIME_CORE_H

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ck_pr.h>

#include "axon/actor.h"
#include "axon/loop.h"
#include "axon/runtime.h"
#include "io/alloc.h"
#include "runtime/epoch.h"
#include "runtime/ext.h"
#include "runtime/mpscq.h"
#include "runtime/msg.h"
#include "runtime/pool.h"
#include "runtime/ref.h"
#include "runtime/table.h"

/* ------------------------------------------------------------------------ */
/* Entities and actors                                                       */

/*
 * An entity is what a reference to a port names: a mailbox that any
 * thread pushes to, plus how to wake the thread that consumes it.  Actors
 * are not entities: a reference to an actor names the actor itself.
 */
typedef struct ax__entity ax__entity_t;
struct ax__entity {
  ax__mpscq_t q;                 /* the mailbox */
  void (*wake)(ax__entity_t *e); /* wakes the consumer after the first push */
  /* A bound (0: none): at most `max` user messages sent and not yet taken
   * by the consumer; one more send is refused with -EAGAIN
   * (ax__deliver_port).  inflight counts them (ax__bound_take), only when
   * bounded. */
  uint32_t max;
  _Atomic uint32_t inflight;
};

/*
 * An actor.  Only its core's thread writes it, except stop_req (any thread
 * sets it once, under the epoch); the generation check in the slot table
 * keeps everyone else away from it after it dies.
 *
 * The mailbox is private to the core: a circular list of messages through
 * their node.next, with mq_tail->next the oldest, so that an empty mailbox
 * holds no message at all.  Only the actor's own core pushes to it (a send
 * from another core or thread goes to the core's inbox first, which the
 * core moves to the mailbox), so neither a push nor a pop takes a locked
 * instruction.  `queued` is true while the actor is on the run queue or
 * running (a push to a queued actor schedules nothing), and is set before
 * the actor is published when its first message travels through the inbox,
 * so that nothing can run it before that message arrives.
 *
 * Kept small (80 bytes): what most actors never need lives in ext,
 * allocated on first use (ext.h).
 */
struct ax_actor {
  void *state;  /* first two fields: struct ax__actor_head in actor.h */
  ax_ref_t ref;
  ax__msg_t *mq_tail;   /* the mailbox (NULL: empty) */
  ax_actor_t *rq_next;  /* the run queue's link */
  union {
    struct { /* alive */
      ax_behaviour_t fn;
      ax__actor_ext_t *ext; /* freed and unused once dead */
    };
    ax__retired_t retired; /* dead, waiting for its grace period */
  };
  ax__core_t *core;
  _Atomic int64_t stop_req; /* 0, or reason << 1 | 1 */
  bool queued;
  bool ext_pooled; /* ext came from a core's pool (ext.c) */
  uint8_t mem;     /* where its memory came from: AX__ACTOR_MEM_* (actor.c) */
  uint8_t chunk_slot; /* AX__ACTOR_MEM_CHUNK: its index in the chunk */
  uint32_t mq_len; /* messages in the mailbox (owner core) */
  /* A bounded mailbox (its reference has AX__REF_BOUNDED): at most
   * mbox_max user messages sent and not yet done with (handled, or given
   * back once kept); senders count them in `inflight` under the epoch. */
  uint32_t mbox_max;
  _Atomic uint32_t inflight;
};

_Static_assert(offsetof(struct ax_actor, state) == offsetof(struct ax__actor_head, state) &&
                   offsetof(struct ax_actor, ref) == offsetof(struct ax__actor_head, ref),
               "actor.h's inline accessors read these two fields");

/* Misuse check of the calls that belong to an actor (debug builds): the
 * calling thread runs the actor's core. */
#define AX__ASSERT_OWNER(actor) assert((actor)->core == ax__tls_core)

/* ------------------------------------------------------------------------ */
/* Rings between cores                                                       */

/*
 * Messages from one core to another of the same runtime travel on a ring
 * of that pair (one producer, one consumer), made by the producer the
 * first time it sends there.  A slot is one cache line: a small message
 * (at most AX__RING_INLINE bytes of payload, no release, not a system
 * message) is copied into the slot itself, so that the line that tells the
 * consumer a message is there also carries it, and the sender allocates
 * nothing; any other message travels as a pointer.  The producer's
 * message number t goes to slot t % AX__RING_SLOTS, whose seq it sets to
 * t + 1 last: the consumer polls the seq of the slot it expects next, and
 * never writes a slot.  It publishes how far it has taken (head) on a line
 * of its own, which the producer reads only when its cached copy says the
 * ring is full.  So in the common case one line moves per message, the
 * slot, from the producer to the consumer.  When a ring is full, the
 * producer keeps the messages in order on its own overflow list and moves
 * them on as room appears (ax__ring_flush).
 */
#define AX__RING_SLOTS 256u
#define AX__RING_INLINE 24u
/* What rt->rings holds for a pair whose ring could not be made (out of
 * memory): that pair sends through the consumer's inbox from then on.  A
 * ring made later would let its messages overtake those still waiting in
 * the inbox (a core takes its rings first), so none is. */
#define AX__RING_NONE ((ax__ring_t *)(uintptr_t)1)

/*
 * Threads that are no core (main, a foreign library's worker) have rings
 * too: the first AX__FOREIGN_RINGS such threads of the process, numbered
 * by their message heaps (msg.c: a heap, and so its number, passes to the
 * next such thread when its thread exits, so each ring keeps one producer
 * at a time).  A later thread uses the core's inbox.  Such a thread has
 * no loop to move an overflow list on, so when its ring is full it waits
 * while the core makes room (a short spin, then a futex sleep that the
 * core's drain ends; AX__FOREIGN_WAIT_NS without progress at most: a core
 * that does not drain, a runtime not started yet, is never waited for
 * longer), and then appends to an overflow queue that the core itself
 * drains after the ring's slots; the thread writes slots again only once
 * the core has taken the whole queue.  That queue is paced as well: from
 * AX__RING_SLOTS messages in it, the thread waits for the core the same
 * way.  A core that handled nothing for AX__FOREIGN_WAIT_NS is stuck (a
 * long turn, a runtime not started, a core descheduled): then
 * AX__RING_SLOTS messages go on past the waits per AX__FOREIGN_WAIT_NS,
 * shared by all the threads that wait for that core (ax__core_t's
 * stuck gate), so that neither a slow core nor more threads than CPUs
 * let the queues grow without bound.  The wait is the
 * back-pressure that Go's channels and Pony's muting give: a thread that
 * floods a core sends at the core's pace, and its messages stay in the
 * cache instead of piling up in fresh memory.
 */
#define AX__FOREIGN_RINGS 16u
/* The inbox's depth from which a thread that is no core waits for the
 * core before it pushes more (send.c's inbox_pace), the same way. */
#define AX__INBOX_PACE (4 * AX__RING_SLOTS)
#define AX__FOREIGN_WAIT_NS (200 * 1000)
#define AX__FOREIGN_WAIT_MAX_NS (10 * 1000 * 1000)

typedef struct ax__ring_slot {
  _Atomic uint64_t seq;
  ax_ref_t to;
  ax_ref_t from;
  uint32_t type;
  uint32_t size; /* > AX__RING_INLINE: msg holds the message */
  uint64_t req;
  union {
    unsigned char data[AX__RING_INLINE];
    ax__msg_t *msg;
  };
} ax__ring_slot_t;

_Static_assert(sizeof(ax__ring_slot_t) == 64, "a ring slot is one cache line");

typedef struct ax__ring {
  /* the producer's */
  alignas(AX__CACHE_LINE) uint64_t tail;
  uint64_t seen_head; /* head as last read */
  ax__msg_t *over_head, *over_tail; /* messages waiting for room, in order */
  /* Lazy wakes (send.c's ring_wake): the producer that set `lazy` (its
   * thread's token; 0: none), tail when it did (the sends since went
   * without a fence), its sends with a fence since it last found `lazy`
   * cleared, and how many it makes before it arms again. */
  uint64_t armed_by, armed_tail;
  uint32_t fenced, lazy_after;
  bool fgave_up; /* a producer that is no core waited its longest in vain:
                    its next message overflows without waiting again */
  /* 1: the producer's sends skip the wake fence, and the consumer, before
   * it sleeps, clears this and makes every thread of the process fence
   * (ax__core_settle).  Set by the producer, cleared by the consumer. */
  _Atomic uint8_t lazy;
  /* the consumer's */
  alignas(AX__CACHE_LINE) _Atomic uint64_t head;
  /* A producer that is no core sleeps on head's low half while the ring
   * is full (fring_claim), or on the queue count's while its queue is long
   * (fring_pace): which one (send.c's FWAIT_*), set by it, cleared by the
   * consumer that wakes it.  Read once per drain of such a ring. */
  _Atomic uint32_t fwait;
  /* A producer that is no core: its overflow queue (the consumer drains
   * it) and how many messages it holds (the producer goes back to the
   * slots at 0).  Written by both sides, on a line of its own. */
  alignas(AX__CACHE_LINE) _Atomic uint64_t fover_n;
  ax__mpscq_t fover;
  ax__mpscq_node_t fover_stub;
  alignas(AX__CACHE_LINE) ax__ring_slot_t slot[AX__RING_SLOTS];
} ax__ring_t;

/* ------------------------------------------------------------------------ */
/* Cores and the runtime                                                     */

#define AX__ACTOR_POOL AX__MSG_CLASSES
#define AX__EXT_POOL (AX__MSG_CLASSES + 1)
#define AX__POOLS (AX__MSG_CLASSES + 2)

/* Slots freed after which a core trims its slot table once it idles
 * (ax__table_trim), even when no pool span went empty: actors spawned by
 * other threads live in malloc's memory, not the core's pools. */
#define AX__TRIM_SLOTS 4096u

/* Bytes that features gave back to malloc (a stream's write queue, say)
 * after which an idle core calls malloc_trim, even when no pool span went
 * empty: glibc keeps what is freed in the middle of its arenas. */
#define AX__TRIM_MALLOC ((uint64_t)1 << 20)

/* The counters of ax_core_stats_t that the runtime keeps (features add
 * theirs through ax__feature_t.stats).  Written by the core (ax__stat_add)
 * except spawned and actors (any thread). */
typedef struct ax__stats_atomic {
  _Atomic uint64_t sent, delivered, dead_letters, spawned, actors, wakeups, sleeps, polls,
      runq_len, turn_max, released, barriers;
} ax__stats_atomic_t;

/*
 * A core.  Fields are grouped by the threads that write them, with a cache
 * line between groups so that senders on other cores do not slow the owner.
 */
struct ax__core {
  /* set before the core runs: read by every thread that sends here, so
   * on a line that the owner's writes below never touch (sharing it with
   * the run queue cost a cache miss per message sent from another CPU) */
  ax_rt_t *rt;
  unsigned index;
  pthread_t thread;
  bool started;
  ax_loop_t *loop; /* woken by other threads with ax_loop_wake */

  /* written by the owner core */
  alignas(AX__CACHE_LINE) ax_actor_t *runq_head, *runq_tail; /* linked through rq_next */
  uint64_t runq_len;
  ax_actor_t *current;
  ax__msg_t *handling; /* the message of the current turn being handled */
  ax__erec_t *erec;
  ax__retired_t *retired_head, *retired_tail;
  uint64_t retired_count;
  uint64_t next_id;  /* ids handed out by features (timers, monitors, requests) */
  unsigned nover;    /* rings from this core with messages on their overflow list */
  unsigned fdrain_next; /* the foreign ring the next drain starts with */
  /* Messages of threads that are no core the core may take before its
   * next round: as many as its last round handled, AX__FCREDIT_MIN at
   * least (and whenever it has nothing to run).  Many threads that each
   * filled a ring used to have their messages moved into mailboxes faster
   * than the actors handled them (1.95 million queued with 16 threads). */
  unsigned fcredit;
  int64_t last_poll;
  int64_t spin_end; /* when the idle spin under way ends (0: none; core.c's idle) */
  unsigned unlooked; /* messages of long turns since the clock was last read (core.c) */
  int64_t looked_at; /* that read (0: none since the core last idled) */
  int64_t early_at;  /* the 8th message of the turn being timed (core.c's time_early) */
  /* When a spawn with AX_PLACE_ANY first found AX_PLACE_SPILL or more
   * actors waiting to run here, the run queue having had that many at
   * the end of every round since; 0 when it had fewer at the last round's
   * end or the core idled.  Such a spawn goes to another core only once
   * that is the runtime's spill_ns ago (actor.c's near_or_spill): a long
   * run queue that lasts is load, one that a turn has just made is not.
   * Owner core. */
  int64_t long_since;
  unsigned nio;      /* fds served for this core's actors (ax__core_count_io) */
  /* A feature's batch to hand over before the core polls or sleeps (the
   * io_uring submissions of the round: actors/io/uring.c); NULL: none.
   * The core clears it, then calls it.  Owner core. */
  void (*flush)(ax__core_t *c);
  void *slot[AX__CORE_SLOTS]; /* features' per-core state (ext.h) */
  ax__heap_t heap; /* the pools' memory */
  uint32_t slots_freed; /* slots freed since the table was last trimmed (AX__TRIM_SLOTS) */
  uint64_t malloc_freed; /* bytes given back to malloc since the last trim (AX__TRIM_MALLOC) */
  int64_t trim_at; /* when an idle core calls the features' core_trim (0: never) */
  /* An idle core whose pools hold much memory with nothing due to give it
   * back looks again after recheck_ns (core.c's idle), doubling while
   * heap.pages stays at recheck_pages. */
  int64_t recheck_ns;
  size_t recheck_pages;
  ax__rfree_t rfree; /* batches of frees into other threads' pools */
  ax__pool_t pools[AX__POOLS];
  /* A reserve of small messages for news that must not be lost when the
   * pools fail (ax__msg_new_vital, msg.c), linked through `aux`. */
  ax__msg_t *vital;
  unsigned nvital;

  /* written by any thread: messages for this core's actors from other
   * cores and threads (each carries its receiver in `to`) */
  alignas(AX__CACHE_LINE) ax__mpscq_t inbox;
  ax__mpscq_node_t inbox_stub;
  /* Messages pushed to the inbox and not taken yet, and a flag that a
   * thread that is no core sleeps on the count's low half until the core
   * takes some (send.c's inbox_pace: the inbox is paced like the rings of
   * such threads).  Written by the pushers and the core. */
  alignas(AX__CACHE_LINE) _Atomic uint64_t inbox_n;
  _Atomic uint32_t inbox_wait;
  /* The gate of those threads while this core is stuck (it handled
   * nothing for AX__FOREIGN_WAIT_NS: a long turn, a runtime not started,
   * a core descheduled), send.c's stuck_pass: AX__RING_SLOTS messages
   * through per such wait, for all the threads together.  The gate is
   * written by those threads only, msg_ns (below, which they read) by the
   * core. */
  alignas(AX__CACHE_LINE) _Atomic uint64_t stuck_beat; /* delivered + 1 when found stuck; 0: never */
  _Atomic int64_t stuck_at;   /* when the gate was last refilled */
  _Atomic int32_t stuck_left; /* messages it still lets through */
  /* ns per message of this core's long turns, as it last measured them
   * (core.c's run_actor, every 64 such messages, and time_early; 0: not
   * measured since the core last idled; at least 1 once measured).  Those
   * threads call the core stuck only after 16 such messages' time with
   * no progress, 200 us at least and 10 ms at most (send.c's
   * stuck_window): a core whose messages take 100 us counts 8 of them
   * every 800 us, and was called stuck although it worked. */
  _Atomic int64_t msg_ns;
  alignas(AX__CACHE_LINE) _Atomic int sleeping;
  alignas(AX__CACHE_LINE) ax__stats_atomic_t stats;
  alignas(AX__CACHE_LINE) ax__table_t table;
};

struct ax_rt {
  /* set before the threads start, read-only after */
  ax_rt_opts_t opts;
  unsigned ncores;
  unsigned index; /* in the process-wide table of runtimes */
  uint64_t serial;
  bool started;
  bool joined;
  ax__core_t **cores;
  /* [from * ncores + to], made by the producer: from < ncores is a core,
   * ncores + k the thread whose message heap is number k */
  _Atomic(ax__ring_t *) *rings;
  pthread_barrier_t barrier;  /* the cores' shutdown steps */
  pthread_mutex_t ready_lock; /* ax_rt_start waits for every core to run */
  pthread_mutex_t join_lock;  /* one ax_rt_join joins the threads; a second waits for it */
  pthread_cond_t ready_cond;
  unsigned ready;             /* cores running (under ready_lock) */
  sigset_t caller_mask; /* the starting thread's mask, restored by join */
  ax_signal_t *sigw;    /* core 0's watchers of the claimed signals (signals.c) */
  unsigned nsigw;
  void *slot[AX__RT_SLOTS]; /* features' per-runtime state (ext.h) */

  /* written by any thread; stopping is read on every spawn and live is
   * written on every spawn and death, so they live on separate lines */
  alignas(AX__CACHE_LINE) _Atomic int stopping;
  _Atomic unsigned nforeign; /* rings of threads that are no core: numbers below this */
  _Atomic unsigned next_core;
  /* Spawns by threads that are no core of this runtime, between their
   * look at `stopping` and the actor's publication: a core's shutdown
   * waits for none to be left before it stops its actors, so that a spawn
   * the stop did not refuse is stopped by the join like any other
   * (actors/actor.c).  A line of its own: main spawning 10^7 actors writes
   * it twice per spawn, and the cores' spawns read `stopping`. */
  alignas(AX__CACHE_LINE) _Atomic unsigned spawning;
  alignas(AX__CACHE_LINE) _Atomic uint64_t live; /* actors alive */
  ax__epoch_t epoch;
  ax__table_t ports; /* entities of no core (AX__REF_NO_CORE) */
  _Atomic uint64_t dead_letters_other; /* refused sends from non-core threads, port drops */
};

/* rt.c: the runtime a reference's index names, or NULL.  Any thread. */
ax_rt_t *ax__rt_lookup(unsigned index);
/* rt.c: the calling thread's epoch record for rt (registered on first
 * use; NULL when out of memory).  Any thread. */
ax__erec_t *ax__rt_erec(ax_rt_t *rt);

/* Adds to a counter only its core writes: a relaxed load and store, no
 * locked instruction (readers on other threads see a recent value). */
static inline void ax__stat_add(_Atomic uint64_t *s, uint64_t n) {
  atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

/* Counts an fd served on core c for its actors (on), or one less (off): a
 * core with fds to serve sleeps straight in its blocking poll when idle.
 * Owner core. */
static inline void ax__core_count_io(ax__core_t *c, bool on) {
  if (on)
    c->nio++;
  else
    c->nio--;
}

/* Asks the core to call the features' core_trim hooks (ext.h) once it is
 * idle at time `when` (ax_now's clock) or later; an earlier request
 * stands.  Owner core. */
static inline void ax__core_trim_at(ax__core_t *c, int64_t when) {
  if (c->trim_at == 0 || when < c->trim_at)
    c->trim_at = when;
}

/* Gives malloc's free pages back to the kernel (malloc_trim), only where
 * glibc's malloc is the process's (core.c says why).  Any thread. */
void ax__trim_malloc(void);

/* A feature gave n bytes back to malloc: past AX__TRIM_MALLOC, the core
 * trims malloc's arenas once it has been idle for AX__PURGE_NS.  Owner
 * core. */
static inline void ax__core_malloc_freed(ax__core_t *c, size_t n) {
  c->malloc_freed += n;
  if (c->malloc_freed >= AX__TRIM_MALLOC && c->heap.purge_at == 0)
    c->heap.purge_at = c->heap.now + AX__PURGE_NS;
}

/* Whether ref names an actor of a runtime other than rt that exists (a
 * reference of no runtime names no actor at all).  Monitors and links
 * refuse those: what they keep for each other comes from one runtime's
 * pools, which that runtime frees.  Any thread. */
static inline bool ax__ref_other_rt(const ax_rt_t *rt, ax_ref_t ref) {
  return ax__ref_rt(ref) != rt->index && ax__rt_lookup(ax__ref_rt(ref)) != NULL;
}

/* A fresh id (timers, monitors, requests), never 0.  Owner core.  Ids of
 * different cores and runtimes differ too: they count up from
 * AX__ID_BASE(rt, core), so a reply is never taken for the answer to a
 * request of another core that happens to have the same count. */
#define AX__ID_BASE(rt_index, core_index) \
  (((uint64_t)(rt_index) << 60) | ((uint64_t)(core_index) << 52))
/* Two bits below the base that no count reaches (2^50 ids per core: 13
 * days at 10^9 ids a second, centuries at any real rate): a
 * request of ax_call carries AX__ID_CALL, and ax_reply adds AX__ID_REPLY
 * to the id of its reply, so that a fiber tells a reply to one of its
 * calls (which only the call waiting for it may take: fiber.c) from a
 * request that another fiber's call sends it. */
#define AX__ID_CALL (1ull << 51)
#define AX__ID_REPLY (1ull << 50)
static inline uint64_t ax__core_next_id(ax__core_t *c) { return ++c->next_id; }

/* One step of a spin that waits for another CPU's write (an idle core,
 * a port's reader, the work pool's spinner): the first AX__SPIN_TIGHT
 * steps look again at once, later ones pause first.  A round trip between
 * two actors of different cores is a few hundred ns, and a pause on each
 * look added up to one pause's time (47-54 ns on this project's 2-vCPU
 * AMD VM, against 10 ns for rdtsc) to each hand-off; beyond the first few
 * microseconds the pause keeps a long spin gentle on the sibling
 * hyperthread and on power. */
#define AX__SPIN_TIGHT 256u
static inline void ax__spin_step(unsigned i) {
  if (i > AX__SPIN_TIGHT)
    ck_pr_stall();
}

/* Whether ax_rt_stop was called on rt.  ax_send and ax_send_owned from a
 * thread that is no core are refused (-ESRCH) from then on (actor.c): the
 * actors are about to die, and such a thread flooding them would fill
 * memory with dead letters and hold ax_rt_join up while it kept sending.
 * The runtime's own threads (the work pool's results) and the cores still
 * send until they stop; new work is refused (-ESHUTDOWN, work.c).  Relaxed:
 * a hint; a call that reads it late is accepted and its message dropped at
 * the shutdown, as before. */
static inline bool ax__rt_stopping(const ax_rt_t *rt) {
  return atomic_load_explicit(&rt->stopping, memory_order_relaxed) != 0;
}

/* ------------------------------------------------------------------------ */
/* Finding and delivering (send.c)                                           */

/* True when `to` names an entity of core c (of c's runtime). */
static inline bool ax__ref_on_core(const ax__core_t *c, ax_ref_t to) {
  return ax__ref_rt(to) == c->rt->index && ax__ref_core(to) == c->index;
}

/* The live actor `to` names on core c, or NULL; for the thread running c,
 * which alone frees c's actors, so no epoch is needed. */
static inline ax_actor_t *ax__lookup_local(ax__core_t *c, ax_ref_t to) {
  return ax__table_get(&c->table, ax__ref_slot(to), ax__ref_gen(to));
}

/* Whether `to`, an actor of core c, is alive now, from any thread and
 * without the epoch: only its slot is read (the table's chunks live as long
 * as the runtime), never the actor.  A death right after the look makes a
 * message sent on this word a dead letter when c drains it. */
static inline bool ax__ref_alive(ax__core_t *c, ax_ref_t to) {
  return ax__table_get(&c->table, ax__ref_slot(to), ax__ref_gen(to)) != NULL;
}

/* Looks a reference up to use what it names: 0 with *obj (alive: an
 * ax_actor_t, or an ax__entity_t when ax__ref_core(to) is AX__REF_NO_CORE)
 * and, when the caller had to enter the runtime's epoch, *erec (leave it
 * with ax__ref_leave once done with *obj); -ESRCH (stale, invalid) or
 * -ENOMEM (no epoch record for a new thread) otherwise.  *rt is the
 * reference's runtime when it names one.  Any thread. */
int ax__ref_enter(ax_ref_t to, void **obj, ax_rt_t **rt, ax__erec_t **erec);
void ax__ref_leave(ax__erec_t *erec);

/* Appends a runnable actor to its own core's run queue.  Owner core only. */
static inline void ax__runq_push(ax__core_t *c, ax_actor_t *a) {
  a->rq_next = NULL;
  if (c->runq_tail != NULL)
    c->runq_tail->rq_next = a;
  else
    c->runq_head = a;
  c->runq_tail = a;
  c->runq_len++;
}

/* Links m into a's mailbox: at the back, or in front of everything when
 * `front` (an actor's first message, ax__actor_publish).  Relaxed: the
 * mailbox is its core's alone; the link is atomic only because the
 * inbox links the same nodes.  Owner core only. */
static inline void ax__mailbox_link(ax_actor_t *a, ax__msg_t *m, bool front) {
  ax__msg_t *t = a->mq_tail;
  ax__mpscq_node_t *n = &m->node;
  if (t == NULL) {
    atomic_store_explicit(&n->next, n, memory_order_relaxed);
    a->mq_tail = m;
    a->mq_len++;
    return;
  }
  a->mq_len++;
  atomic_store_explicit(&n->next, atomic_load_explicit(&t->node.next, memory_order_relaxed),
                        memory_order_relaxed);
  atomic_store_explicit(&t->node.next, n, memory_order_relaxed);
  if (!front)
    a->mq_tail = m;
}

/* Takes the oldest message of a's mailbox, or NULL when it is empty.
 * Owner core only. */
static inline ax__msg_t *ax__mailbox_pop(ax_actor_t *a) {
  ax__msg_t *t = a->mq_tail;
  if (t == NULL)
    return NULL;
  ax__msg_t *h = (ax__msg_t *)atomic_load_explicit(&t->node.next, memory_order_relaxed);
  a->mq_len--;
  if (h == t)
    a->mq_tail = NULL;
  else
    atomic_store_explicit(&t->node.next, atomic_load_explicit(&h->node.next, memory_order_relaxed),
                          memory_order_relaxed);
  return h;
}

/* Bounds (an actor's mailbox_max, a port's max): a sender takes a place
 * for the user message m, which is marked AX__MSG_COUNTED, or is refused
 * (false, nothing taken) when all `max` places are taken; the receiver
 * gives m's place back once done with it (ax__bound_give).  Relaxed, both:
 * the count orders nothing, it only bounds (m itself is ordered by the
 * queue it goes through).  Any thread. */
static inline bool ax__bound_take(_Atomic uint32_t *inflight, uint32_t max, ax__msg_t *m) {
  if (atomic_fetch_add_explicit(inflight, 1, memory_order_relaxed) >= max) {
    atomic_fetch_sub_explicit(inflight, 1, memory_order_relaxed);
    return false;
  }
  m->flags |= AX__MSG_COUNTED;
  return true;
}

/* Gives back the place m holds, if it holds one.  The receiver's thread. */
static inline void ax__bound_give(_Atomic uint32_t *inflight, ax__msg_t *m) {
  if (__builtin_expect((m->flags & AX__MSG_COUNTED) != 0, 0)) {
    m->flags &= (uint16_t)~AX__MSG_COUNTED;
    atomic_fetch_sub_explicit(inflight, 1, memory_order_relaxed); /* relaxed: see above */
  }
}

/* The actor is done with m (handled, or given back once kept): a bounded
 * mailbox has room for one more.  Owner core. */
static inline void ax__msg_uncount(ax_actor_t *a, ax__msg_t *m) { ax__bound_give(&a->inflight, m); }

/* Appends m to the mailbox of a, an actor of the calling core, and makes
 * a runnable unless it is queued already.  Once the runtime stops no
 * actor gets another turn (the message waits in the mailbox and is dropped
 * when the actor is finished).  Owner core only. */
static inline void ax__mailbox_push(ax__core_t *c, ax_actor_t *a, ax__msg_t *m) {
  ax__mailbox_link(a, m, false);
  if (!a->queued) {
    a->queued = true;
    /* Acquire pairs with the release store in ax_rt_stop. */
    if (!atomic_load_explicit(&c->rt->stopping, memory_order_acquire))
      ax__runq_push(c, a);
  }
}

/* Queues m (its `to` set) for core c, from another thread: on the ring
 * from the calling core when it is a core of c's runtime, else on c's
 * inbox; wakes c if it sleeps.  Any thread but c's. */
void ax__remote_push(ax__core_t *c, ax__msg_t *m);

/* Copies a small message (size <= AX__RING_INLINE, data readable) into the
 * ring from core `from` to core c, for the actor `to`.  Returns false, with
 * nothing sent, when the ring has no room or messages wait on its overflow
 * list (the caller sends a message through ax__remote_push instead).
 * from's thread. */
bool ax__ring_send_inline(ax__core_t *from, ax__core_t *c, ax_ref_t to, ax_ref_t sender,
                          uint32_t type, const void *data, uint32_t size, uint64_t req);

/* Moves the messages waiting on c's overflow lists onto their rings, as
 * far as there is room.  c's thread. */
void ax__ring_flush(ax__core_t *c);

/* Copies a small message (at most AX__RING_INLINE bytes of payload) from
 * the calling thread, which is no core of rt, into its ring to core c.
 * Returns false when the thread has no ring or the ring cannot take it
 * now (the caller sends through ax__remote_push, which keeps the order). */
bool ax__fring_send_inline(ax_rt_t *rt, ax__core_t *c, ax_ref_t to, uint32_t type,
                           const void *data, uint32_t size, uint64_t req);

/* The calling thread forgets its ring number (its message heap, which
 * names the ring, goes to another thread: msg.c); a later send takes the
 * number of the heap it gets then. */
void ax__fring_forget(void);

/* Delivers m to actor a, whose memory the caller guarantees (its own core,
 * or a reference held under the epoch): into the mailbox when a belongs to
 * the calling thread's core, else through ax__remote_push, where a death
 * meanwhile makes m a dead letter.  Any thread. */
static inline void ax__deliver(ax_actor_t *a, ax__msg_t *m) {
  ax__core_t *c = a->core;
  if (c == ax__tls_core) {
    ax__mailbox_push(c, a, m);
  } else {
    m->to = a->ref;
    ax__remote_push(c, m);
  }
}

/* Delivers m to a port's entity (any thread; the caller holds the epoch):
 * pushes it and wakes the port's thread if the mailbox was idle.  Returns
 * -EAGAIN, with nothing sent, when m is a user message and the entity's
 * bound is reached; else 0. */
static inline int ax__deliver_port(ax__entity_t *e, ax__msg_t *m) {
  if (e->max != 0 && m->sys == AX__SYS_NONE && !ax__bound_take(&e->inflight, e->max, m))
    return -EAGAIN;
  if (ax__mpscq_push(&e->q, &m->node))
    e->wake(e);
  return 0;
}

/* A message for a payload of `size` bytes, at most AX__MSG_SMALL minus
 * the header, from the calling core's own pool of one of the two smallest
 * classes. */
static inline ax__msg_t *ax__msg_alloc_local(ax__core_t *c, size_t size) {
  ax__pool_t *p = &c->pools[size > AX__MSG_TINY - sizeof(ax__msg_t)];
  ax__msg_t *m = ax__pool_alloc(p);
  if (m == NULL)
    return NULL;
  m->home = p;
  m->sys = 0;
  m->flags = 0;
  m->release = NULL;
  return m;
}

/* Resolves `to` and delivers m, or frees m (running its release) and
 * returns -ESRCH or -ENOMEM.  A send to an actor of another core reads
 * its slot (for -ESRCH) without the epoch and queues m on that core's
 * inbox.  Any thread. */
int ax__send_msg(ax_ref_t to, ax__msg_t *m);

/* Moves what other cores and threads sent to c (its rings and its inbox)
 * into its actors' mailboxes (a message for an actor that died meanwhile is
 * dropped as a dead letter).  Returns the number of messages taken.  c's
 * thread. */
unsigned ax__core_drain(ax__core_t *c);

/* Moves what other cores and threads had sent to c when the call began
 * (what threads that are no core add meanwhile stays) into the mailboxes,
 * beyond c->fcredit: for a call that must see every message sent before
 * it (a fiber's poll, a stop), without letting a thread that keeps sending
 * feed the call without end.  Returns the messages taken.  c's thread. */
unsigned ax__core_drain_sent(ax__core_t *c);

/* ax__core_t.fcredit's floor: 16 rings' worth (core.c lowers it to what
 * one round can handle when the runtime's batch is small). */
#define AX__FCREDIT_MIN (16 * AX__RING_SLOTS)

/* The same, taking at most c->fcredit messages of threads that are no
 * core (their rings, queues and the inbox; other cores' rings are taken
 * whole), and lowering the credit by what it took.  The core's loop: what
 * is left waits in those threads' rings, where it makes them wait, so they
 * send at the pace the actors handle messages rather than the pace of the
 * drain (ax__core_t.fcredit). */
unsigned ax__core_drain_some(ax__core_t *c);

/* The same with no credit: only the other cores' rings.  Within a round
 * (core.c's poll after long turns), where taking those threads' messages
 * would wake them once per poll instead of once per round: with more
 * threads than CPUs they then spun for room while the core they waited
 * for was descheduled, and counted it stuck. */
unsigned ax__core_drain_cores(ax__core_t *c);

/* True when another core or thread has sent c something it has not yet
 * drained.  c's thread. */
bool ax__core_pending(ax__core_t *c);

/*
 * Lazy wakes.  A send's wake fence (send.c's wake) orders the slot's
 * publication before the load of `sleeping`, and waits for the slot's
 * cache line, which the consumer keeps reading: a thread that floods a
 * core spends most of each send there (Savina's fork-join: 84% of main's
 * send on the load after the fence).  A producer that has sent
 * AX__LAZY_AFTER messages on a ring with the fence sets the ring's `lazy`
 * and sends without it; the consumer, once it has stored `sleeping` and
 * fenced, and before it looks at its queues a last time, clears every
 * `lazy` of its rings and, when one was set, calls membarrier(2)
 * (MEMBARRIER_CMD_PRIVATE_EXPEDITED): every thread of the process then
 * runs a full barrier, so a slot stored before it is seen by that look,
 * and a load of `sleeping` after it sees 1.  The cost moves to a sleep
 * that follows a flood, once; a producer whose ring was cleared fences
 * again until its next AX__LAZY_AFTER sends, or, when the barrier bought
 * fewer than AX__LAZY_WORTH sends without a fence (bursts between the
 * core's sleeps, requests and answers), four times as many each time
 * (AX__LAZY_MAX at most), since a barrier costs about a microsecond and
 * an interrupt of every CPU that runs one of the process's threads.  The
 * core does its last look once before the barrier too, and skips it when
 * that look finds work.  Where the kernel refuses to register the
 * process, producers always fence.
 */
#define AX__LAZY_AFTER 64u
/* Lazy sends that make a barrier worth it: fewer between the consumer's
 * clears, and the producer waits four times longer before it arms again,
 * up to AX__LAZY_MAX fenced sends (send.c's ring_wake). */
#define AX__LAZY_WORTH 1024u
#define AX__LAZY_MAX 65536u

/* Registers the process for expedited membarrier(2), once (ax_rt_new). */
void ax__lazy_init(void);

/* c, about to sleep, after its store of `sleeping` and its fence: clears
 * the `lazy` of its rings and, when one was set, makes every thread of
 * the process run a barrier.  Returns false when that failed: c must not
 * sleep for long (a lazy send may be unseen).  c's thread. */
bool ax__core_settle(ax__core_t *c);

/* Drops one message that cannot be delivered to `self` (dead with
 * `reason`): a system message through its kind's drop, an owned buffer
 * released; the memory stays the caller's to free.  Returns 1 when it
 * counts as a dead letter.  The core of self, or any thread once no core
 * runs. */
uint64_t ax__msg_drop(ax__msg_t *m, ax_ref_t self, int reason);

/* A function run on the receiving actor's core (AX__SYS_CALL): with a the
 * actor when it pops the message, with a NULL when the message is dropped
 * instead.  Either way exactly once; the call owns what it points to. */
typedef struct ax__call ax__call_t;
struct ax__call {
  void (*fn)(ax__call_t *call, ax_actor_t *a);
};

/* Sends an AX__SYS_CALL message to `to`; if it cannot be delivered, runs
 * call->fn(call, NULL) before returning -ESRCH or -ENOMEM.  Any thread. */
int ax__call_send(ax_ref_t to, ax__call_t *call);

/* ------------------------------------------------------------------------ */
/* The invoke path (core.c)                                                  */

/* Every call of user code for an actor goes through these three: its
 * behaviour with a message, its init hook, its terminate hook.  The core
 * sets c->current first, so that sends and spawns inside come from the
 * actor.  (Fibers switch stacks here.)  Owner core. */
static inline int ax__invoke(ax_actor_t *a, ax__msg_t *m) { return a->fn(a, &m->m); }
void ax__invoke_init(ax_actor_t *a, ax_init_t init);
void ax__invoke_terminate(ax_actor_t *a, int reason);

/* Keeps the message being handled beyond its turn: the runtime neither
 * frees it nor runs its release when the behaviour returns.  Give it back
 * with ax__msg_unkeep, exactly once, before the receiver is freed (a
 * feature that keeps messages gives them back in its actor_death hook);
 * until then its memory and payload stay valid.  Returns the message.
 * From the behaviour (or kind) handling it, on the receiver's core. */
ax__msg_t *ax__msg_keep(const ax_msg_t *msg);

/* Gives a kept message back: its kind finishes it (ax__kind_t.unkept), it
 * is released (ax_send_owned's release runs) and freed, at once or, when
 * it is the message whose handling is under way (a fiber done with it
 * before its turn ends), by the turn once the handling returns.  The
 * receiver's core; a (the receiver) may be dying but not yet freed. */
void ax__msg_unkeep(ax_actor_t *a, ax__msg_t *m);

/* ------------------------------------------------------------------------ */
/* Life and death (core.c)                                                   */

/* ax_rt_new, for each core: makes it (its loop, pools, table) and stores
 * it in *out.  The calling thread.  Returns 0 or -errno. */
int ax__core_init(ax_rt_t *rt, unsigned index, ax__core_t **out);
/* Frees an actor's extension (if it has one).  Its core. */
void ax__actor_ext_free(ax_actor_t *a);

/* Frees a core whose thread has exited (or never started). */
void ax__core_destroy(ax__core_t *c);
/* The core's thread: runs its actors until the runtime stops. */
void *ax__core_main(void *arg);

/* A new actor on core c (not yet visible to anyone): every field set,
 * mailbox empty and idle.  From c's pool when the caller runs a core of
 * c's runtime, else malloc.  NULL when out of memory.  Any thread. */
ax_actor_t *ax__actor_new(ax__core_t *c, ax_behaviour_t fn, void *state);
/* Takes a slot of the actor's core and sets its reference; nobody can
 * reach it yet.  Returns 0, or -ENOMEM/-ENOSPC.  Any thread. */
int ax__actor_reserve(ax_actor_t *a);
/* Makes a reserved actor visible and counts it alive: from here on it can
 * be sent to and may run (and die).  `first` (NULL: none) is the first
 * message it handles, before anything sent to it after it became visible,
 * whichever core or thread sends.  Any thread. */
void ax__actor_publish(ax_actor_t *a, ax__msg_t *first);
/* Frees an actor that was never published (its slot too, if reserved).
 * Any thread. */
void ax__actor_discard(ax_actor_t *a);

/* Stops an actor now: its terminate hook, then every feature's
 * actor_death hook, then its reference stops resolving and its mailbox
 * is drained (ax__kind_t.drop for system messages).  Its memory goes back
 * after an epoch grace period.  Its core. */
void ax__actor_die(ax__core_t *c, ax_actor_t *a, int reason);
/* Finishes, on core c, every dead actor whose grace period is over (all of
 * them when all is true: no other thread runs).  c's thread. */
void ax__reclaim(ax__core_t *c, bool all);

/* Empties the mailbox of a closed port whose first stub is `stub`, each
 * message through ax__msg_drop.  The last node stays as the queue's stub
 * (ax__port_free frees it).  Returns the dead letters. */
uint64_t ax__drain_port(ax__entity_t *e, ax__mpscq_node_t *stub, ax_ref_t self, int reason);

/* ------------------------------------------------------------------------ */
/* Signals (signals.c)                                                       */

/* Fills set with the signals a runtime claims (unless AX_RT_NO_SIGNALS):
 * SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCHLD,
 * SIGWINCH and the realtime signals.  Any thread. */
void ax__signals_claimed(sigset_t *set);
/* True for the claimed signals that stop the runtime when no feature
 * delivers them. */
bool ax__signal_stops_runtime(int signo);
/* Core 0's thread: starts and stops reading the claimed signals (one
 * watcher per signal on its loop; io/signal.c's signalfd).  A signal is
 * offered to every feature's signal hook; one nobody took gets the
 * runtime's default. */
int ax__signals_start(ax__core_t *c);
void ax__signals_stop(ax__core_t *c);

#endif /* AXON_RUNTIME_CORE_H */
