/* The runtime's private structures: cores, actors, messages, pools, refs, epochs. */
#ifndef AXON_RUNTIME_INTERNAL_H
#define AXON_RUNTIME_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "axon/actor.h"
#include "axon/loop.h"
#include "axon/port.h"
#include "axon/runtime.h"
#include "io/alloc.h"
#include "runtime/mpscq.h"

#define AX__CACHE_LINE 64
#define AX__MAX_RTS 16

/* ------------------------------------------------------------------------ */
/* References: gen (24 bits) | runtime (4) | core (8) | slot (28).           */

#define AX__REF_SLOT_BITS 28
#define AX__REF_CORE_BITS 8
#define AX__REF_RT_BITS 4
#define AX__REF_GEN_BITS 24
#define AX__PORT_CORE 255u /* the core field of a port's reference */

static inline ax_ref_t ax__ref_make(uint32_t gen, unsigned rt, unsigned core, uint32_t slot) {
  return ((uint64_t)gen << 40) | ((uint64_t)rt << 36) | ((uint64_t)core << 28) | slot;
}
static inline uint32_t ax__ref_gen(ax_ref_t r) { return (uint32_t)(r >> 40); }
static inline unsigned ax__ref_rt(ax_ref_t r) { return (unsigned)(r >> 36) & 0xf; }
static inline unsigned ax__ref_core(ax_ref_t r) { return (unsigned)(r >> 28) & 0xff; }
static inline uint32_t ax__ref_slot(ax_ref_t r) { return (uint32_t)r & 0xfffffff; }

/* ------------------------------------------------------------------------ */
/* Slot tables: what a reference resolves to.                                */

/*
 * A table maps slot numbers to entities (actors, or ports in the runtime's
 * port table).  It grows in chunks that are never freed before the runtime,
 * so a reader indexing it needs no lock.  A slot's generation is bumped when
 * its entity stops and the slot goes back on the free stack only after an
 * epoch grace period (see epoch.c), so a stale reference fails the
 * generation check and never reaches reused memory.
 * Writers: any thread allocates slots (CAS on free_head, fetch_add on
 * next_unused); the owning core frees them.
 */
#define AX__CHUNK_BITS 16
#define AX__CHUNK_SLOTS (1u << AX__CHUNK_BITS)
#define AX__MAX_CHUNKS (1u << (AX__REF_SLOT_BITS - AX__CHUNK_BITS))

typedef struct ax__slot {
  _Atomic(void *) ptr;
  _Atomic uint32_t gen;
  _Atomic uint32_t next_free; /* index + 1 of the next free slot, 0 = none */
} ax__slot_t;

typedef struct ax__table {
  _Atomic(ax__slot_t *) chunks[AX__MAX_CHUNKS];
  alignas(AX__CACHE_LINE) _Atomic uint64_t free_head; /* tag << 32 | (index + 1) */
  _Atomic uint32_t next_unused;
  uint32_t gen_base; /* the first generation of every slot */
} ax__table_t;

int ax__table_init(ax__table_t *t, uint32_t gen_base);
void ax__table_destroy(ax__table_t *t);
/* Takes a free slot; returns its index or -ENOMEM/-ENOSPC.  Any thread. */
int64_t ax__table_alloc(ax__table_t *t);
/* Returns a slot to the free stack (its generation already bumped). */
void ax__table_free(ax__table_t *t, uint32_t index);
static inline ax__slot_t *ax__table_slot(ax__table_t *t, uint32_t index) {
  /* Acquire pairs with the release that published the chunk. */
  ax__slot_t *chunk =
      atomic_load_explicit(&t->chunks[index >> AX__CHUNK_BITS], memory_order_acquire);
  return chunk != NULL ? &chunk[index & (AX__CHUNK_SLOTS - 1)] : NULL;
}
/* Bumps a slot's generation (skipping 0) and clears its pointer. */
void ax__table_retire(ax__table_t *t, uint32_t index);

/* ------------------------------------------------------------------------ */
/* Epoch-based reclamation.                                                  */

/*
 * A thread that may touch an entity of another core (a sender) enters a
 * critical section first; memory retired while a section is open is freed
 * only after every thread has left the sections that could have seen it.
 * The global epoch advances when every active record has observed it; what
 * was retired in epoch e is freed once the epoch reaches e + 2.
 */
typedef struct ax__erec {
  _Atomic uint64_t state; /* epoch << 1 | active; written by its thread */
  _Atomic int in_use;     /* claimed by a thread */
  _Atomic int refs;       /* the runtime's list, plus the thread using it */
  struct ax__erec *next;  /* the runtime's list of records (append only) */
} ax__erec_t;

typedef struct ax__epoch { /* cache-line aligned: starts a line of its own */
  alignas(AX__CACHE_LINE) _Atomic uint64_t epoch;
  _Atomic(ax__erec_t *) records;
} ax__epoch_t;

/* A retired object: freed by fn once two epochs have passed. */
typedef struct ax__retired {
  struct ax__retired *next;
  uint64_t epoch;
} ax__retired_t;

void ax__epoch_init(ax__epoch_t *e);
void ax__epoch_destroy(ax__epoch_t *e);
/* Claims a record for the calling thread; give it back with
 * ax__epoch_release(), which never touches the runtime (it may be gone). */
ax__erec_t *ax__epoch_register(ax__epoch_t *e);
void ax__epoch_release(ax__erec_t *r);
void ax__epoch_enter(ax__epoch_t *e, ax__erec_t *r);
void ax__epoch_exit(ax__erec_t *r);
/* Tries to advance the epoch; returns the epoch now in force. */
uint64_t ax__epoch_advance(ax__epoch_t *e);

/* ------------------------------------------------------------------------ */
/* Pools.                                                                    */

/*
 * A pool hands out objects of one size.  The owning core allocates and
 * frees through its private list with no atomics; another thread frees by
 * pushing onto the remote stack, which the owner takes whole (an exchange
 * with NULL, so there is no ABA).  Memory comes in 64 KiB slabs kept until
 * the runtime is freed.
 */
typedef struct ax__core ax__core_t;

/* The core the calling thread runs, if it is a core thread.  initial-exec:
 * read with one instruction instead of a __tls_get_addr call (it is on the
 * path of every send). */
extern _Thread_local ax__core_t *ax__tls_core __attribute__((tls_model("initial-exec")));

typedef struct ax__pool {
  void *local;      /* owner only: free objects, linked through their first word */
  void *slabs;      /* owner only: slab list, linked through their first word */
  size_t next_slab; /* owner only: the size of the next slab */
  uint32_t size;    /* object size */
  uint32_t cls;     /* index in the core's pool array */
  ax__core_t *owner;
  alignas(AX__CACHE_LINE) _Atomic(void *) remote; /* other threads push */
} ax__pool_t;

/* ------------------------------------------------------------------------ */
/* Messages.                                                                 */

enum { /* ax__msg_t.sys: system messages the core handles itself */
  AX__SYS_NONE = 0,
  AX__SYS_INIT,      /* data: the init hook */
  AX__SYS_STOP,      /* wake-up only: the request is in the actor */
  AX__SYS_MONITOR,   /* data: ax__monitor_req_t */
  AX__SYS_DEMONITOR, /* data: ax__monitor_req_t */
  AX__SYS_DOWN,      /* data: ax_down_t; delivered as AX_MSG_DOWN */
  AX__SYS_TIMER,     /* aux: the timer id */
  AX__SYS_IO,        /* aux: the I/O source (actors/src.h) */
  AX__SYS_CALL,      /* aux: an ax__call_t to run on the receiver's core */
};

/* A function run on the receiving actor's core (AX__SYS_CALL): with
 * dropped false when the actor pops the message (a is the actor), with
 * dropped true when the message is dropped instead (a is NULL).  Either way
 * exactly once; the call owns whatever it points to. */
typedef struct ax__call ax__call_t;
struct ax__call {
  void (*fn)(ax__call_t *call, ax_actor_t *a, bool dropped);
};

enum { AX__MSG_OWNED = 1, AX__MSG_TAKEN = 2 };

#define AX__MSG_CLASSES 11 /* 128 B .. 4 KiB, then 8 .. 128 KiB plus room for the header */
#define AX__MSG_SMALL 128u /* the first class */

typedef struct ax__msg {
  ax__mpscq_node_t node;
  ax_msg_t m;
  ax__pool_t *home; /* NULL: malloc'd */
  union {
    void (*release)(void *); /* AX__MSG_OWNED */
    uint64_t aux;            /* AX__SYS_TIMER: the timer id */
  };
  uint16_t sys;
  uint16_t flags;
  uint32_t reserved;
  alignas(16) unsigned char payload[]; /* inline copy of the data */
} ax__msg_t;

typedef struct ax__monitor_req {
  ax_ref_t watcher;
  uint64_t id;
} ax__monitor_req_t;

/* ------------------------------------------------------------------------ */
/* Entities: what a reference names (an actor or a port).                    */

enum { AX__KIND_ACTOR = 1, AX__KIND_PORT = 2 };

typedef struct ax__entity {
  ax__mpscq_t q; /* the mailbox */
  uint32_t kind;
} ax__entity_t;

typedef struct ax__actor_ext ax__actor_ext_t;

/*
 * An actor.  Its owning core writes every field except the mailbox head
 * (senders exchange it) and stop_req (any thread sets it once); the
 * generation check in the slot table keeps senders away from it after it
 * dies.  Kept small: extra state (timers, monitors, a name) lives in ext,
 * allocated the first time it is needed.
 */
struct ax_actor {
  void *state;  /* first two fields: struct ax__actor_head in actor.h */
  ax_ref_t ref;
  ax__entity_t e;
  ax__mpscq_node_t stub; /* the mailbox's first stub */
  ax__mpscq_node_t link; /* run queue or inject queue (a late send may still
                            write it while the actor dies: never overlaid) */
  union {
    struct { /* alive */
      ax_behaviour_t fn;
      ax__actor_ext_t *ext; /* freed and unused once dead */
    };
    ax__retired_t retired; /* dead, waiting for its grace period */
  };
  ax__core_t *core;
  ax__pool_t *home; /* NULL: malloc'd */
  _Atomic int64_t stop_req; /* 0, or reason << 1 | 1 */
};

_Static_assert(offsetof(struct ax_actor, state) == offsetof(struct ax__actor_head, state) &&
                   offsetof(struct ax_actor, ref) == offsetof(struct ax__actor_head, ref),
               "actor.h's inline accessors read these two fields");

/* ------------------------------------------------------------------------ */
/* Cores and the runtime.                                                    */

#define AX__ACTOR_POOL AX__MSG_CLASSES
#define AX__POOLS (AX__MSG_CLASSES + 1)

typedef struct ax__stats_atomic {
  _Atomic uint64_t sent, delivered, dead_letters, spawned, actors, wakeups, sleeps, polls,
      runq_len, turn_max, accept_errors;
} ax__stats_atomic_t;

/*
 * A core.  Fields are grouped by the threads that write them, with a cache
 * line between groups so that senders on other cores do not slow the owner.
 */
struct ax__core {
  /* written by the owner core */
  ax_rt_t *rt;
  unsigned index;
  pthread_t thread;
  bool started;
  ax_loop_t *loop;
  ax_event_t wake;
  ax_actor_t *runq_head, *runq_tail; /* linked through link.next */
  uint64_t runq_len;
  ax_actor_t *current;
  ax__erec_t *erec;
  ax__retired_t *retired_head, *retired_tail;
  uint64_t retired_count;
  uint64_t next_id; /* timer, monitor and request ids */
  int64_t last_poll;
  unsigned nio; /* fd sources owned by this core's actors */
  struct ax__src *lingering; /* closed sources still flushing writes */
  unsigned char *scratch;    /* the read buffer of stream sources (64 KiB) */
  struct ax_fdwatch *fdwatches; /* this core's ax_fd_watch watches (actors/fdwatch.c) */
  ax__pool_t pools[AX__POOLS];

  /* written by any thread */
  alignas(AX__CACHE_LINE) ax__mpscq_t inject;
  ax__mpscq_node_t inject_stub;
  alignas(AX__CACHE_LINE) _Atomic int sleeping;
  alignas(AX__CACHE_LINE) ax__stats_atomic_t stats;
  alignas(AX__CACHE_LINE) ax__table_t table;
};

typedef struct ax__name ax__name_t;

struct ax_rt {
  /* set before the threads start, read-only after */
  ax_rt_opts_t opts;
  unsigned ncores;
  unsigned index; /* in the process-wide table of runtimes */
  uint64_t serial;
  bool started;
  bool joined;
  ax__core_t **cores;
  pthread_barrier_t barrier;
  sigset_t caller_mask; /* the starting thread's mask, restored by join */
  struct ax__sigwatch *sigs; /* signal subscribers, core 0's signalfd (actors/sigwatch.c) */

  /* written by any thread; stopping is read on every spawn and live is
   * written on every spawn and death, so they live on separate lines */
  alignas(AX__CACHE_LINE) _Atomic int stopping;
  _Atomic unsigned next_core;
  alignas(AX__CACHE_LINE) _Atomic uint64_t live; /* actors alive */
  ax__epoch_t epoch;
  ax__table_t ports;
  pthread_mutex_t names_lock; /* the name registry: not a hot path */
  ax__name_t *names;
  _Atomic uint64_t dead_letters_other; /* refused sends from non-core threads, port drops */
  unsigned names_added; /* under names_lock: registrations since the last sweep */
};


/* runtime/rt.c */
ax_rt_t *ax__rt_lookup(unsigned index);
/* The calling thread's epoch record for rt (registered on first use). */
ax__erec_t *ax__rt_erec(ax_rt_t *rt);

/* runtime/pool.c */
void ax__pool_init(ax__pool_t *p, ax__core_t *owner, uint32_t size, uint32_t cls);
uint32_t ax__pool_class_size(unsigned cls);
void ax__pool_destroy(ax__pool_t *p);
void *ax__pool_alloc(ax__pool_t *p);
ax__msg_t *ax__msg_alloc(ax_ref_t to, size_t payload);

/* Gives an object back to its pool.  Any thread: the owner core pushes it
 * on its private list, another thread on the pool's remote stack (which
 * the owner takes whole, so there is no ABA). */
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

/* Runs an owned message's release function unless the receiver took the
 * buffer, and forgets the ownership so that it can never run twice. */
static inline void ax__msg_release(ax__msg_t *m) {
  if ((m->flags & (AX__MSG_OWNED | AX__MSG_TAKEN)) == AX__MSG_OWNED && m->release != NULL)
    m->release((void *)m->m.data);
  m->flags = 0;
}

static inline void ax__msg_free(ax__msg_t *m) {
  if (m->home != NULL)
    ax__pool_free(m->home, m);
  else
    free(m);
}

/* Inline fast paths of the same-core send (measured with callgrind: about a
 * third of the instructions per message go away against calling through
 * the generic functions). */

/* Adds to a counter only its core writes: a relaxed load and store, no
 * locked instruction (readers on other threads see a recent value). */
static inline void ax__stat_add(_Atomic uint64_t *s, uint64_t n) {
  atomic_store_explicit(s, atomic_load_explicit(s, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

/* True when `to` names an entity of core c (of c's runtime). */
static inline bool ax__ref_on_core(const ax__core_t *c, ax_ref_t to) {
  return ax__ref_rt(to) == c->rt->index && ax__ref_core(to) == c->index;
}

/* The live entity `to` names on core c, or NULL; for the thread running c,
 * which alone frees c's actors, so no epoch is needed. */
static inline ax__entity_t *ax__lookup_local(ax__core_t *c, ax_ref_t to) {
  ax__slot_t *s = ax__table_slot(&c->table, ax__ref_slot(to));
  /* Acquire: the actor may have been spawned here by another thread. */
  ax__entity_t *e = s != NULL ? atomic_load_explicit(&s->ptr, memory_order_acquire) : NULL;
  if (e != NULL && atomic_load_explicit(&s->gen, memory_order_relaxed) != ax__ref_gen(to))
    e = NULL;
  return e;
}

/* Misuse check of the calls that belong to an actor (debug builds): the
 * calling thread runs the actor's core. */
#define AX__ASSERT_OWNER(actor) assert((actor)->core == ax__tls_core)

/* Appends a runnable actor to its own core's run queue.  Owner core only. */
static inline void ax__runq_push(ax__core_t *c, ax_actor_t *a) {
  atomic_store_explicit(&a->link.next, NULL, memory_order_relaxed);
  if (c->runq_tail != NULL)
    atomic_store_explicit(&c->runq_tail->link.next, &a->link, memory_order_relaxed);
  else
    c->runq_head = a;
  c->runq_tail = a;
  c->runq_len++;
}

void ax__port_ring(ax__entity_t *e);
/* Queues a runnable actor on another core's inject queue and wakes that
 * core if it sleeps.  Any thread. */
void ax__schedule_remote(ax__core_t *c, ax_actor_t *a);

/* Makes an actor whose mailbox turned non-empty runnable.  Once the runtime
 * stops, no actor gets another turn: queuing one would only race with its
 * shutdown (its messages stay in its mailbox and are dropped as dead
 * letters when it is finished).  Any thread. */
static inline void ax__schedule(ax_actor_t *a) {
  ax__core_t *c = a->core;
  /* Acquire pairs with the release store in ax_rt_stop. */
  if (atomic_load_explicit(&c->rt->stopping, memory_order_acquire))
    return;
  if (c == ax__tls_core)
    ax__runq_push(c, a);
  else
    ax__schedule_remote(c, a);
}

/* Delivers m to an entity (the caller resolved it and guarantees it is
 * alive): pushes it and, if the mailbox was idle, schedules the actor or
 * rings the port. */
static inline void ax__deliver(ax__entity_t *e, ax__msg_t *m) {
  if (ax__mpscq_push(&e->q, &m->node)) {
    if (e->kind == AX__KIND_ACTOR)
      ax__schedule(AX_CONTAINER_OF(e, ax_actor_t, e));
    else
      ax__port_ring(e);
  }
}

/* A message of the smallest class from the calling core's own pool. */
static inline ax__msg_t *ax__msg_alloc_local(ax__core_t *c) {
  ax__pool_t *p = &c->pools[0];
  ax__msg_t *m = p->local;
  if (m != NULL)
    p->local = *(void **)m;
  else if ((m = ax__pool_alloc(p)) == NULL)
    return NULL;
  m->home = p;
  m->sys = 0;
  m->flags = 0;
  m->release = NULL;
  return m;
}

/* Sends an AX__SYS_CALL message to `to`; if it cannot be delivered, runs
 * call->fn(call, NULL, true) before returning -ESRCH.  Any thread. */
int ax__call_send(ax_ref_t to, ax__call_t *call);

/* actors/src.c: I/O sources (see actors/src.h).  An AX__SYS_IO message
 * reached actor a (handle: returns the behaviour's result) or is dropped
 * from the mailbox of the dead actor `self` (drop); an actor is dying
 * (on_death: closes its sources); the runtime is stopping (shutdown: ends
 * core c's lingering sources). */
int ax__src_handle(ax_actor_t *a, ax__msg_t *m);
void ax__src_drop(ax_ref_t self, ax__msg_t *m);
void ax__src_on_death(ax_actor_t *a);
void ax__src_shutdown(ax__core_t *c);

/* actors/sigwatch.c: the runtime's signals (see ax_signal_watch).
 * ax__sig_init (in ax_rt_new) makes the subscriber table and, unless
 * AX_RT_NO_SIGNALS, the signalfd; ax__sig_start/stop run on core 0's
 * thread when it starts and when it shuts down; ax__sig_destroy frees it
 * all (ax_rt_free, or a failed ax_rt_new; NULL-safe).  ax__sig_set fills
 * set with the signals the runtime claims. */
int ax__sig_init(ax_rt_t *rt);
void ax__sig_destroy(ax_rt_t *rt);
void ax__sig_set(sigset_t *set);
void ax__sig_start(ax__core_t *c);
void ax__sig_stop(ax__core_t *c);

/* runtime/core.c */
int ax__core_init(ax_rt_t *rt, unsigned index, ax__core_t **out);
void ax__core_destroy(ax__core_t *c);
void *ax__core_main(void *arg);

/* Resolves ref and delivers m, or frees m and returns -ESRCH or -ENOMEM.
 * Any thread. */
int ax__send_msg(ax_ref_t to, ax__msg_t *m);
void ax__actor_die(ax__core_t *c, ax_actor_t *a, int reason);
void ax__retire(ax__core_t *c, ax_actor_t *a);
void ax__reclaim(ax__core_t *c, bool all);
void ax__drop_msg(ax__core_t *c, ax__msg_t *m, bool count);
/* Empties the mailbox of a dead actor or a freed port whose first stub is
 * `stub`: owned buffers are released, monitor requests are answered with
 * DOWN (target self, the given reason), and the rest are dropped.  The
 * last node stays as the queue's stub.  Returns the dead letters. */
uint64_t ax__drain_mailbox(ax__entity_t *e, ax__mpscq_node_t *stub, ax_ref_t self, int reason);
/* Looks a reference up for a send: 0 with *e (alive) and, when the
 * caller had to enter the runtime's epoch, *erec (leave it with
 * ax__ref_leave once done with e); -ESRCH or -ENOMEM otherwise.  *rt is
 * the reference's runtime when it names one.  Any thread. */
int ax__ref_enter(ax_ref_t to, ax__entity_t **e, ax_rt_t **rt, ax__erec_t **erec);
void ax__ref_leave(ax__erec_t *erec);

/* actors/: the per-actor extension and the system messages it handles */
struct ax__actor_ext {
  ax_terminate_t terminate;
  struct ax__timer_rec *timers; /* list through next */
  struct ax__mon_in *mon_in;    /* who watches me */
  struct ax__mon_out *mon_out;  /* whom I watch */
  uint64_t next_id;             /* monitor and request ids */
  struct ax__src *srcs;         /* I/O sources owned (actors/src.h) */
};
ax__actor_ext_t *ax__ext(ax_actor_t *a);
void ax__timers_on_death(ax_actor_t *a);
bool ax__timer_msg_live(ax_actor_t *a, ax__msg_t *m);
void ax__monitor_handle(ax_actor_t *a, ax__msg_t *m);
bool ax__down_msg_live(ax_actor_t *a, ax__msg_t *m);
void ax__monitors_on_death(ax_actor_t *a, int reason);
void ax__monitor_refuse(ax__msg_t *m, ax_ref_t target, int reason);
void ax__names_destroy(ax_rt_t *rt);
void ax__ports_destroy(ax_rt_t *rt);

#endif /* AXON_RUNTIME_INTERNAL_H */
