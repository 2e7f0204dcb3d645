/* An actor's life in the runtime: made and published, invoked, its messages kept, its death and reclaim. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/core.h"

/* ------------------------------------------------------------------------ */
/* Birth                                                                     */

enum {
  AX__ACTOR_MEM_MALLOC = 0,
  AX__ACTOR_MEM_POOL,  /* a core's actor pool (ax__page_of finds it) */
  AX__ACTOR_MEM_CHUNK, /* a chunk carved by a thread that is no core */
};

/*
 * Actors spawned by a thread that is no core (main making the workers of
 * every core) are carved from chunks of AX__CHUNK_ACTORS, one chunk per
 * target core at a time, so that actors of different cores never share a
 * cache line.  Each core writes its actors' first lines on every message
 * (the mailbox tail, the run queue link); two actors of two cores on one
 * line would make it bounce between the cores on every message of either
 * (bench_actors' cross-core rows).  From malloc, actors spawned one after
 * the other for alternating cores sit side by side.  A chunk is cache-line
 * aligned and a whole number of lines, and as dense as malloc: 1,216 B
 * for 15 actors (81 B each, malloc's are 96).  Its count of live slots,
 * written once per actor at its end, is its only word shared between
 * threads, and the thread that takes it to 0 frees the chunk.  Slots not
 * carved yet count as live, so the chunk being carved (kept with the
 * thread's message heap, which is never freed) stays.
 */
#define AX__CHUNK_ACTORS 15
typedef struct actor_chunk {
  _Atomic uint32_t live; /* slots not yet given back, those not carved included */
  uint32_t carved;       /* slots handed out (the carving thread's) */
  uint64_t pad;
  ax_actor_t slot[AX__CHUNK_ACTORS];
} actor_chunk_t;
_Static_assert(sizeof(actor_chunk_t) % AX__CACHE_LINE == 0,
               "a chunk is whole lines: its last slot shares none with what follows it");
_Static_assert(AX__CHUNK_ACTORS <= UINT8_MAX, "ax_actor_t.chunk_slot holds a slot index");

/* A slot for an actor of core c from the calling thread's chunk for c
 * (its index in *slot), or NULL when out of memory.  A thread that is no
 * core. */
static ax_actor_t *chunk_alloc(const ax__core_t *c, uint8_t *slot) {
  void **ways = ax__thread_actor_chunks();
  if (ways == NULL)
    return NULL;
  void **way = &ways[c->index % AX__THREAD_CHUNKS];
  actor_chunk_t *ch = *way;
  if (ch == NULL) {
    ch = ax__aligned_alloc(AX__CACHE_LINE, sizeof *ch);
    if (ch == NULL)
      return NULL;
    atomic_init(&ch->live, AX__CHUNK_ACTORS);
    ch->carved = 0;
    *way = ch;
  }
  *slot = (uint8_t)ch->carved;
  ax_actor_t *a = &ch->slot[ch->carved++];
  if (ch->carved == AX__CHUNK_ACTORS)
    *way = NULL; /* all carved: its actors alone keep it now */
  return a;
}

/* Gives an actor's memory back: to the pool or chunk it came from, or to
 * malloc.  Any thread. */
static void actor_free(ax_actor_t *a) {
  if (a->mem == AX__ACTOR_MEM_POOL) {
    ax__pool_free(ax__page_of(a)->pool, a);
  } else if (a->mem == AX__ACTOR_MEM_CHUNK) {
    actor_chunk_t *ch = AX_CONTAINER_OF(a - a->chunk_slot, actor_chunk_t, slot);
    /* acq_rel: every thread's last writes to the chunk's actors happen
     * before the thread that frees it (the one that takes it to 0). */
    if (atomic_fetch_sub_explicit(&ch->live, 1, memory_order_acq_rel) == 1)
      free(ch);
  } else {
    free(a);
  }
}

ax_actor_t *ax__actor_new(ax__core_t *c, ax_behaviour_t fn, void *state) {
  /* The actor's memory comes from the calling core's pool when there is
   * one of the same runtime (it goes back there when the actor is
   * reclaimed, from whichever core), from the calling thread's chunk for
   * c when it is no core, else from malloc. */
  ax__core_t *cur = ax__tls_core;
  ax_actor_t *a = NULL;
  uint8_t mem = AX__ACTOR_MEM_MALLOC, slot = 0;
  if (cur != NULL && cur->rt == c->rt) {
    a = ax__pool_alloc(&cur->pools[AX__ACTOR_POOL]);
    mem = a != NULL ? AX__ACTOR_MEM_POOL : mem;
  } else if (cur == NULL) {
    a = chunk_alloc(c, &slot);
    mem = a != NULL ? AX__ACTOR_MEM_CHUNK : mem;
  }
  if (a == NULL) {
    a = ax__malloc(sizeof *a);
    if (a == NULL)
      return NULL;
  }
  memset(a, 0, sizeof *a); /* an empty mailbox, not queued */
  a->fn = fn;
  a->state = state;
  a->core = c;
  a->mem = mem;
  a->chunk_slot = slot;
  atomic_init(&a->stop_req, 0);
  return a;
}

int ax__actor_reserve(ax_actor_t *a) {
  ax__core_t *c = a->core;
  int64_t slot = ax__table_alloc(&c->table);
  if (slot < 0)
    return (int)slot;
  ax__slot_t *s = ax__table_slot(&c->table, (uint32_t)slot);
  uint32_t gen = atomic_load_explicit(&s->gen, memory_order_relaxed);
  a->ref = ax__ref_make(gen, c->rt->index, c->index, (uint32_t)slot);
  if (a->mbox_max != 0)
    a->ref |= AX__REF_BOUNDED;
  return 0;
}

void ax__actor_publish(ax_actor_t *a, ax__msg_t *first) {
  ax__core_t *c = a->core;
  ax__slot_t *s = ax__table_slot(&c->table, ax__ref_slot(a->ref));
  bool here = c == ax__tls_core;
  /* From another thread the first message goes through the inbox, and a
   * message this core's actors send meanwhile could reach the mailbox
   * before it: published queued, the actor cannot run until the inbox's
   * drain puts the first message in front and schedules it. */
  if (first != NULL && !here)
    a->queued = true;
  /* Counted alive before anyone can make it die. */
  atomic_fetch_add_explicit(&c->rt->live, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->stats.spawned, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&c->stats.actors, 1, memory_order_relaxed);
  /* Release publishes the initialised actor (its extension included) to
   * every thread that resolves its reference (they load ptr with acquire). */
  atomic_store_explicit(&s->ptr, a, memory_order_release);
  if (first == NULL)
    return;
  if (here) {
    ax__mailbox_push(c, a, first); /* nothing of this core can have sent before */
  } else {
    first->to = a->ref;
    first->flags |= AX__MSG_FIRST;
    ax__remote_push(c, first); /* a may run (and die) from here on */
  }
}

void ax__actor_discard(ax_actor_t *a) {
  if (a->ref != AX_REF_NONE) { /* reserved, never published: nobody can hold it */
    ax__table_retire(&a->core->table, ax__ref_slot(a->ref));
    ax__table_free(&a->core->table, ax__ref_slot(a->ref));
  }
  ax__actor_ext_free(a);
  actor_free(a);
}

/* ------------------------------------------------------------------------ */
/* The invoke path                                                           */

void ax__invoke_init(ax_actor_t *a, ax_init_t init) { init(a); }

void ax__invoke_terminate(ax_actor_t *a, int reason) {
  if (a->ext != NULL && a->ext->terminate != NULL)
    a->ext->terminate(a, reason);
}

ax__msg_t *ax__msg_keep(const ax_msg_t *msg) {
  ax__msg_t *m = AX_CONTAINER_OF(msg, ax__msg_t, m);
  m->flags |= AX__MSG_KEPT;
  return m;
}

/* Releases and frees a message nobody uses any more. */
static void msg_done(ax__msg_t *m) {
  ax__msg_release(m);
  ax__msg_free(m);
}

void ax__msg_unkeep(ax_actor_t *a, ax__msg_t *m) {
  assert(m->flags & AX__MSG_KEPT);
  m->flags &= (uint16_t)~AX__MSG_KEPT;
  ax__msg_uncount(a, m);
  if (m->sys != AX__SYS_NONE) {
    const ax__kind_t *k = ax__kinds[m->sys];
    if (k != NULL && k->unkept != NULL)
      k->unkept(a, m);
  }
  if (m == a->core->handling)
    ax__msg_release(m); /* run_actor frees it when the handling returns */
  else
    msg_done(m);
}

/* ------------------------------------------------------------------------ */
/* Death and reclaim                                                         */

uint64_t ax__drain_port(ax__entity_t *e, ax__mpscq_node_t *stub, ax_ref_t self, int reason) {
  uint64_t dead = 0;
  ax__mpscq_node_t *old, *node;
  while ((node = ax__mpscq_pop(&e->q, &old)) != NULL) {
    if (old != stub && !(((ax__msg_t *)old)->flags & AX__MSG_KEPT))
      ax__msg_free((ax__msg_t *)old);
    dead += ax__msg_drop((ax__msg_t *)node, self, reason); /* its memory stays: the stub now */
  }
  return dead;
}

/* Empties a dying actor's mailbox. */
static void drain_dead(ax__core_t *c, ax_actor_t *a, int reason) {
  uint64_t dead = 0;
  ax__msg_t *m;
  /* A drop may send (a DOWN to a watcher): never to a, which is no longer
   * reachable, so the loop ends. */
  while ((m = ax__mailbox_pop(a)) != NULL) {
    dead += ax__msg_drop(m, a->ref, reason);
    ax__msg_free(m);
  }
  ax__stat_add(&c->stats.dead_letters, dead);
}

/* Links a dead actor into its core's retired list: its memory is finished
 * once the epoch has advanced twice past now. */
static void retire(ax__core_t *c, ax_actor_t *a) {
  a->retired.next = NULL;
  /* Read after the slot was retired (ax__table_retire's fence orders the
   * retire's stores before this load, and the epoch only grows): the grace
   * period counts from at least this epoch. */
  a->retired.epoch = atomic_load_explicit(&c->rt->epoch.epoch, memory_order_acquire);
  if (c->retired_tail != NULL)
    c->retired_tail->next = &a->retired;
  else
    c->retired_head = &a->retired;
  c->retired_tail = &a->retired;
  c->retired_count++;
}

void ax__actor_die(ax__core_t *c, ax_actor_t *a, int reason) {
  ax_rt_t *rt = c->rt;
  ax_actor_t *prev = c->current;
  c->current = a; /* sends from the hooks come from the actor */
  ax__invoke_terminate(a, reason);
  /* Every feature keeps its per-actor state in the extension: an actor
   * without one (most) has nothing for them to clean up.  First the hooks
   * that let go of things (work, files, sources, timers, names): a
   * result of the work pool that comes meanwhile still finds the actor,
   * and is dropped with its mailbox. */
  for (ax__feature_t *f = a->ext != NULL ? ax__features : NULL; f != NULL; f = f->next)
    if (f->actor_death != NULL && !f->announces)
      f->actor_death(a, reason);
  /* From here on the reference fails: new senders get -ESRCH, and what
   * other threads queued on the inbox before is dropped when it is
   * drained.  Before the hooks that tell others of the death: whoever gets
   * the DOWN or LINK_DOWN finds the reference dead already (the retire's
   * release store, and its fence, come before the news's publication). */
  ax__table_retire(&c->table, ax__ref_slot(a->ref));
  for (ax__feature_t *f = a->ext != NULL ? ax__features : NULL; f != NULL; f = f->next)
    if (f->actor_death != NULL && f->announces)
      f->actor_death(a, reason);
  c->current = prev;
  ax__actor_ext_free(a);
  /* The mailbox is emptied now: only this thread pushes to it, and it no
   * longer finds the actor. */
  drain_dead(c, a, reason);
  atomic_fetch_sub_explicit(&c->stats.actors, 1, memory_order_relaxed);
  retire(c, a);
  /* acq_rel: the last death sees every spawn's increment. */
  if (atomic_fetch_sub_explicit(&rt->live, 1, memory_order_acq_rel) == 1 &&
      !(rt->opts.flags & AX_RT_KEEP_ALIVE))
    ax_rt_stop(rt);
}

/* Frees a dead actor whose grace period is over: no thread that looked it
 * up under the epoch can still be using it. */
static void finish(ax__core_t *c, ax_actor_t *a) {
  ax__table_free(&c->table, ax__ref_slot(a->ref));
  /* Many slots freed: trim the table once the core has been idle for the
   * purge delay (ax__core_idle), as for empty pool spans. */
  if (++c->slots_freed == AX__TRIM_SLOTS && c->heap.purge_at == 0)
    c->heap.purge_at = c->heap.now + AX__PURGE_NS;
  actor_free(a);
}

void ax__reclaim(ax__core_t *c, bool all) {
  if (c->retired_head == NULL)
    return;
  /* A grace period is two epochs; try to make both at once (they pass at
   * once when no other thread is inside a send). */
  uint64_t now = UINT64_MAX;
  if (!all) {
    ax__epoch_advance(&c->rt->epoch);
    now = ax__epoch_advance(&c->rt->epoch);
  }
  while (c->retired_head != NULL && (all || c->retired_head->epoch + 2 <= now)) {
    ax__retired_t *r = c->retired_head;
    c->retired_head = r->next;
    if (c->retired_head == NULL)
      c->retired_tail = NULL;
    c->retired_count--;
    finish(c, AX_CONTAINER_OF(r, ax_actor_t, retired));
  }
}
