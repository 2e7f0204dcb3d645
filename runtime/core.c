/* A core: its thread, the scheduler of its actors, the wake protocol, actor death and reclaim. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ck_pr.h>

#include "runtime/internal.h"

/* While actors are runnable, fds and timers are polled at least this often. */
#define AX__POLL_INTERVAL_NS (50 * AX_NSEC_PER_USEC)
/* How soon an idle core retries a grace period another thread holds up. */
#define AX__RECLAIM_RETRY_NS (1 * AX_NSEC_PER_MSEC)
/* Fd events a core takes per poll.  The actors handle what one poll read
 * before the next poll, so a small batch keeps those bytes in the caches
 * until they are handled and written back.  Measured with bench_tcp -n 1
 * (server CPU per round trip against raw epoll, 1000 connections): 256
 * events 1.29x at 16 KiB; 32: 1.20x; 16: 1.14x; 8: 1.19x, and 64 B
 * messages got dearer (1.04x to 1.14x).  Fds not taken stay ready. */
#define AX__CORE_EVENTS 16u
/* Actor turns between two looks at the inject queue and the clock. */
#define AX__ROUND_TURNS 64u


/* ------------------------------------------------------------------------ */
/* The run queue: owner only, FIFO through the actors' link nodes.           */

static inline ax_actor_t *link_actor(ax__mpscq_node_t *n) {
  return AX_CONTAINER_OF(n, ax_actor_t, link);
}

static ax_actor_t *runq_pop(ax__core_t *c) {
  ax_actor_t *a = c->runq_head;
  if (a == NULL)
    return NULL;
  ax__mpscq_node_t *next = atomic_load_explicit(&a->link.next, memory_order_relaxed);
  c->runq_head = next != NULL ? link_actor(next) : NULL;
  if (c->runq_head == NULL)
    c->runq_tail = NULL;
  c->runq_len--;
  return a;
}

/* Moves every actor other threads made runnable onto the run queue. */
static void drain_inject(ax__core_t *c) {
  ax__mpscq_node_t *n;
  while ((n = ax__mpscq_take(&c->inject, &c->inject_stub)) != NULL)
    ax__runq_push(c, link_actor(n));
}

/* ------------------------------------------------------------------------ */
/* Scheduling and delivery (any thread).                                     */

void ax__schedule_remote(ax__core_t *c, ax_actor_t *a) {
  ax__mpscq_push(&c->inject, &a->link);
  /* The wake protocol, sender side: the push above, this fence, then the
   * load of `sleeping`.  The core does the mirror image (store sleeping,
   * fence, look at the inject queue), so at least one of the two sees the
   * other: either the core finds this actor before sleeping, or this
   * thread sees it asleep and wakes it.  A busy core is never sent a
   * syscall. */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&c->sleeping, memory_order_relaxed) &&
      atomic_exchange_explicit(&c->sleeping, 0, memory_order_relaxed))
    ax_event_notify(&c->wake);
}


/* Finds the entity a reference names.  When it may belong to another core
 * (or the caller is not a core of that runtime), the caller is put inside an
 * epoch critical section first, so the entity cannot be freed under it;
 * *erec then holds the record to pass to ax__ref_leave().  Returns 0 with
 * *e set, or -ESRCH (stale or invalid reference) or -ENOMEM (the calling
 * thread's first epoch record could not be allocated), the section left. */
int ax__ref_enter(ax_ref_t to, ax__entity_t **e_out, ax_rt_t **rt_out, ax__erec_t **erec) {
  *erec = NULL;
  *e_out = NULL;
  *rt_out = NULL;
  ax__core_t *cur = ax__tls_core;
  if (cur != NULL && ax__ref_on_core(cur, to)) {
    *rt_out = cur->rt;
    *e_out = ax__lookup_local(cur, to);
    return *e_out != NULL ? 0 : -ESRCH;
  }
  if (to == AX_REF_NONE)
    return -ESRCH;
  ax_rt_t *rt = ax__rt_lookup(ax__ref_rt(to));
  if (rt == NULL)
    return -ESRCH;
  *rt_out = rt;
  unsigned ci = ax__ref_core(to);
  ax__table_t *table;
  if (ci == AX__PORT_CORE)
    table = &rt->ports;
  else if (ci < rt->ncores)
    table = &rt->cores[ci]->table;
  else
    return -ESRCH;
  ax__erec_t *r = ax__rt_erec(rt);
  if (r == NULL)
    return -ENOMEM; /* not "no such actor": the actor may well be alive */
  ax__epoch_enter(&rt->epoch, r);
  ax__slot_t *s = ax__table_slot(table, ax__ref_slot(to));
  ax__entity_t *e = NULL;
  if (s != NULL) {
    /* Acquire on ptr, then on gen: a reader that sees a reused slot's new
     * entity also sees the generation bumped when the old one died. */
    e = atomic_load_explicit(&s->ptr, memory_order_acquire);
    if (e != NULL && atomic_load_explicit(&s->gen, memory_order_acquire) != ax__ref_gen(to))
      e = NULL;
  }
  if (e == NULL) {
    ax__epoch_exit(r);
    return -ESRCH;
  }
  *erec = r;
  *e_out = e;
  return 0;
}

void ax__ref_leave(ax__erec_t *erec) {
  if (erec != NULL)
    ax__epoch_exit(erec);
}

int ax__call_send(ax_ref_t to, ax__call_t *call) {
  ax__msg_t *m = ax__msg_alloc(to, 0);
  if (m == NULL) {
    call->fn(call, NULL, true);
    return -ENOMEM;
  }
  m->sys = AX__SYS_CALL;
  m->aux = (uint64_t)(uintptr_t)call;
  m->m.type = AX__SYS_CALL;
  m->m.size = 0;
  m->m.data = NULL;
  m->m.from = AX_REF_NONE;
  int rc = ax__send_msg(to, m); /* frees m when it fails */
  if (rc < 0)
    call->fn(call, NULL, true);
  return rc;
}

void ax__drop_msg(ax__core_t *c, ax__msg_t *m, bool count) {
  ax__msg_release(m);
  if (count && c != NULL)
    ax__stat_add(&c->stats.dead_letters, 1);
  ax__msg_free(m);
}

int ax__send_msg(ax_ref_t to, ax__msg_t *m) {
  ax_rt_t *rt;
  ax__erec_t *erec;
  ax__entity_t *e;
  ax__core_t *cur = ax__tls_core;
  int rc = ax__ref_enter(to, &e, &rt, &erec);
  if (rc < 0) {
    if (rc == -ESRCH && cur != NULL)
      ax__stat_add(&cur->stats.dead_letters, 1);
    else if (rc == -ESRCH && rt != NULL)
      atomic_fetch_add_explicit(&rt->dead_letters_other, 1, memory_order_relaxed);
    ax__drop_msg(NULL, m, false);
    return rc;
  }
  ax__deliver(e, m);
  ax__ref_leave(erec);
  if (cur != NULL)
    ax__stat_add(&cur->stats.sent, 1);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Running actors.                                                           */

/* Handles one message.  Returns true when the actor must stop, with the
 * reason in *reason. */
static bool handle(ax_actor_t *a, ax__msg_t *m, int *reason) {
  int rc = 0;
  switch (m->sys) {
  case AX__SYS_NONE:
    rc = a->fn(a, &m->m);
    break;
  case AX__SYS_INIT: {
    ax_init_t init;
    memcpy(&init, m->payload, sizeof init);
    init(a);
    break;
  }
  case AX__SYS_STOP: {
    /* Acquire: the reason stored before the STOP message was pushed. */
    int64_t req = atomic_load_explicit(&a->stop_req, memory_order_acquire);
    *reason = (int)((req - 1) / 2);
    return true;
  }
  case AX__SYS_MONITOR:
  case AX__SYS_DEMONITOR:
    ax__monitor_handle(a, m);
    break;
  case AX__SYS_DOWN:
    if (ax__down_msg_live(a, m))
      rc = a->fn(a, &m->m);
    break;
  case AX__SYS_TIMER:
    if (ax__timer_msg_live(a, m))
      rc = a->fn(a, &m->m);
    break;
  case AX__SYS_IO:
    rc = ax__src_handle(a, m);
    break;
  case AX__SYS_CALL: {
    ax__call_t *call = (ax__call_t *)(uintptr_t)m->aux;
    call->fn(call, a, false);
    break;
  }
  default:
    break;
  }
  ax__msg_release(m);
  if (rc == 0)
    return false;
  *reason = rc < 0 ? rc : AX_REASON_NORMAL;
  return true;
}

/* One turn of an actor: at most `batch` messages, and never past the last
 * message that was queued when the turn began, so an actor that keeps
 * sending to itself cannot hold the core. */
static void run_actor(ax__core_t *c, ax_actor_t *a) {
  c->current = a;
  ax__mpscq_node_t *last = ax__mpscq_last(&a->e.q);
  unsigned n = 0, batch = c->rt->opts.batch;
  int reason = 0;
  bool stop = false;
  for (;;) {
    /* ax_stop() pre-empts the queue: its request is checked before each
     * message, not when its STOP message reaches the front.  Acquire pairs
     * with the CAS that stored the reason. */
    int64_t req = atomic_load_explicit(&a->stop_req, memory_order_acquire);
    if (req != 0) {
      reason = (int)((req - 1) / 2);
      stop = true;
      break;
    }
    ax__mpscq_node_t *old, *node = ax__mpscq_pop(&a->e.q, &old);
    if (node == NULL)
      break;
    if (old != &a->stub)
      ax__msg_free((ax__msg_t *)old);
    n++;
    if (handle(a, (ax__msg_t *)node, &reason)) {
      stop = true;
      break;
    }
    if (node == last || n >= batch)
      break;
  }
  ax__stat_add(&c->stats.delivered, n);
  if (n > atomic_load_explicit(&c->stats.turn_max, memory_order_relaxed))
    atomic_store_explicit(&c->stats.turn_max, n, memory_order_relaxed);
  if (stop)
    ax__actor_die(c, a, reason);
  else if (!ax__mpscq_mark_empty(&a->e.q))
    ax__runq_push(c, a); /* more messages, or a push under way: run again later */
  c->current = NULL;
}

/* ------------------------------------------------------------------------ */
/* Death and reclaim.                                                        */

uint64_t ax__drain_mailbox(ax__entity_t *e, ax__mpscq_node_t *stub, ax_ref_t self, int reason) {
  uint64_t dead = 0;
  ax__mpscq_node_t *old, *node;
  while ((node = ax__mpscq_pop(&e->q, &old)) != NULL) {
    if (old != stub)
      ax__msg_free((ax__msg_t *)old);
    ax__msg_t *m = (ax__msg_t *)node;
    if (m->sys == AX__SYS_MONITOR)
      ax__monitor_refuse(m, self, reason);
    else if (m->sys == AX__SYS_IO)
      ax__src_drop(self, m);
    else if (m->sys == AX__SYS_CALL)
      ((ax__call_t *)(uintptr_t)m->aux)->fn((ax__call_t *)(uintptr_t)m->aux, NULL, true);
    else if (m->sys == AX__SYS_NONE || m->sys == AX__SYS_DOWN)
      dead++;
    ax__msg_release(m); /* its memory stays: it is the queue's stub now */
  }
  return dead;
}

static void drain_dead(ax__core_t *c, ax_actor_t *a, int reason) {
  ax__stat_add(&c->stats.dead_letters, ax__drain_mailbox(&a->e, &a->stub, a->ref, reason));
}

void ax__actor_die(ax__core_t *c, ax_actor_t *a, int reason) {
  ax_rt_t *rt = c->rt;
  ax_actor_t *prev = c->current;
  c->current = a; /* sends from the terminate hook come from the actor */
  if (a->ext != NULL && a->ext->terminate != NULL)
    a->ext->terminate(a, reason);
  ax__src_on_death(a);
  ax__timers_on_death(a);
  ax__monitors_on_death(a, reason);
  c->current = prev;
  free(a->ext);
  a->ext = NULL;
  /* From here on the reference fails: new senders get -ESRCH.  Senders
   * already past the check may still push; the mailbox is left unmarked,
   * so they never schedule this actor, and what they push is drained when
   * the grace period ends (ax__reclaim). */
  ax__table_retire(&c->table, ax__ref_slot(a->ref));
  /* Its names need no work here: the registry checks liveness itself. */
  drain_dead(c, a, reason);
  atomic_fetch_sub_explicit(&c->stats.actors, 1, memory_order_relaxed);
  ax__retire(c, a);
  if (atomic_fetch_sub_explicit(&rt->live, 1, memory_order_acq_rel) == 1 &&
      !(rt->opts.flags & AX_RT_KEEP_ALIVE))
    ax_rt_stop(rt);
}

void ax__retire(ax__core_t *c, ax_actor_t *a) {
  a->retired.next = NULL;
  /* Read after the slot was retired (program order on this thread, and the
   * epoch only grows): the grace period counts from at least this epoch. */
  a->retired.epoch = atomic_load_explicit(&c->rt->epoch.epoch, memory_order_acquire);
  if (c->retired_tail != NULL)
    c->retired_tail->next = &a->retired;
  else
    c->retired_head = &a->retired;
  c->retired_tail = &a->retired;
  c->retired_count++;
}

/* Frees a dead actor whose grace period is over: nobody can push to it any
 * more, so what is in its mailbox now is all it will ever get. */
static void finish(ax__core_t *c, ax_actor_t *a) {
  drain_dead(c, a, -ESRCH);
  if (a->e.q.tail != &a->stub)
    ax__msg_free((ax__msg_t *)a->e.q.tail);
  ax__table_free(&c->table, ax__ref_slot(a->ref));
  if (a->home != NULL)
    ax__pool_free(a->home, a);
  else
    free(a);
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

/* ------------------------------------------------------------------------ */
/* The core's thread.                                                        */

static void wake_cb(ax_event_t *ev, uint64_t count) {
  ax__core_t *c = ev->data;
  ax__stat_add(&c->stats.wakeups, count);
}

int ax__core_init(ax_rt_t *rt, unsigned index, ax__core_t **out) {
  ax__core_t *c = ax__aligned_alloc(AX__CACHE_LINE, (sizeof *c + AX__CACHE_LINE - 1) &
                                                    ~(size_t)(AX__CACHE_LINE - 1));
  if (c == NULL)
    return -ENOMEM;
  memset(c, 0, sizeof *c);
  c->rt = rt;
  c->index = index;
  ax_loop_opts_t lo = {.backend = rt->opts.backend, .max_events = AX__CORE_EVENTS};
  int rc = ax_loop_new(&lo, &c->loop);
  if (rc < 0)
    goto fail;
  rc = ax_event_init(c->loop, &c->wake, wake_cb);
  if (rc < 0)
    goto fail_loop;
  c->wake.data = c;
  ax_event_start(&c->wake);
  for (unsigned i = 0; i < AX__MSG_CLASSES; i++)
    ax__pool_init(&c->pools[i], c, ax__pool_class_size(i), i);
  ax__pool_init(&c->pools[AX__ACTOR_POOL], c, sizeof(ax_actor_t), AX__ACTOR_POOL);
  ax__mpscq_init(&c->inject, &c->inject_stub, false);
  atomic_init(&c->sleeping, 0);
  ax__table_init(&c->table, (uint32_t)(rt->serial * 2654435761u) + index * 40503u);
  c->erec = ax__epoch_register(&rt->epoch);
  if (c->erec == NULL) {
    rc = -ENOMEM;
    ax_event_close(&c->wake);
    goto fail_loop;
  }
  *out = c;
  return 0;
fail_loop:
  ax_loop_close(c->loop, AX_CLOSE_FORCE);
fail:
  free(c);
  return rc;
}

void ax__core_destroy(ax__core_t *c) {
  ax__epoch_release(c->erec);
  free(c->scratch);
  ax_event_close(&c->wake);
  ax_loop_close(c->loop, AX_CLOSE_FORCE);
  for (unsigned i = 0; i < AX__POOLS; i++)
    ax__pool_destroy(&c->pools[i]);
  ax__table_destroy(&c->table);
  free(c);
}

/* Acquire pairs with the release in ax_rt_stop. */
static bool stopping(ax_rt_t *rt) {
  return atomic_load_explicit(&rt->stopping, memory_order_acquire) != 0;
}

/* Non-blocking I/O and timers, between rounds. */
static void poll_io(ax__core_t *c) {
  ax_loop_run_once(c->loop, 0);
  ax__stat_add(&c->stats.polls, 1);
  c->last_poll = ax_now();
}

/* Whether the core must look at its loop before it decides to spin: a
 * timer is due or the poll interval has passed.  Otherwise an idle core
 * skips the syscall, which would sit on the path of every cross-core
 * hand-off. */
static bool poll_due(ax__core_t *c, int64_t now) {
  return ax_loop_timeout(c->loop) == 0 || now - c->last_poll >= AX__POLL_INTERVAL_NS;
}

/* Nothing runnable: poll if needed, spin a while, then sleep until woken. */
static void idle(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  /* Reclaiming may send (a monitor request that reached a dead actor is
   * answered with DOWN), which can make an actor of this core runnable:
   * look at the run queue again before any decision to wait. */
  ax__reclaim(c, false);
  if (c->runq_head != NULL)
    return;
  ax_loop_update_time(c->loop); /* one clock read serves the whole decision */
  int64_t now = ax_loop_now(c->loop);
  /* A core serving fds goes straight to its blocking poll below, which
   * returns at once when events are ready: one epoll_wait per idle period,
   * where a non-blocking poll first would add a second syscall to every
   * round trip of an echo server.
   * It does not spin either: its likeliest next work is an fd event, which
   * only the loop reports, and spinning would take the CPU the kernel needs
   * for the I/O itself. */
  bool serving_fds = c->nio > 0;
  if (!serving_fds && poll_due(c, now)) {
    poll_io(c);
    if (c->runq_head != NULL || ax__mpscq_pending(&c->inject))
      return;
  }
  if (rt->opts.spin_ns > 0 && !serving_fds) {
    /* Spin until work arrives, the spin time ends, or a timer comes due. */
    int64_t end = now + rt->opts.spin_ns, t = ax_loop_timeout(c->loop);
    if (t != AX_FOREVER && now + t < end)
      end = now + t;
    for (unsigned i = 1;; i++) {
      if (ax__mpscq_pending(&c->inject) || stopping(rt))
        return;
      ck_pr_stall();
      if ((i & 63) == 0 && ax_now() >= end)
        break;
    }
  }
  /* The wake protocol, core side (see ax__schedule_remote). */
  atomic_store_explicit(&c->sleeping, 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  if (c->runq_head != NULL || ax__mpscq_pending(&c->inject) || stopping(rt)) {
    atomic_store_explicit(&c->sleeping, 0, memory_order_relaxed);
    return;
  }
  ax__stat_add(&c->stats.sleeps, 1);
  atomic_store_explicit(&c->stats.runq_len, 0, memory_order_relaxed);
  /* Sleep until fds, a timer or the wake eventfd say so; but while dead
   * actors wait for their grace period, wake up to finish them (what is
   * still in their mailboxes, a monitor request say, must be answered). */
  ax_loop_run_once(c->loop, c->retired_head != NULL ? AX__RECLAIM_RETRY_NS : AX_FOREVER);
  c->last_poll = ax_now();
  atomic_store_explicit(&c->sleeping, 0, memory_order_relaxed);
}

/* The runtime is stopping: kill every actor of this core with reason
 * AX_REASON_SHUTDOWN, once no core runs actors any more. */
static void shutdown_core(ax__core_t *c) {
  ax_rt_t *rt = c->rt;
  pthread_barrier_wait(&rt->barrier);
  c->runq_head = c->runq_tail = NULL;
  c->runq_len = 0;
  while (ax__mpscq_take(&c->inject, &c->inject_stub) != NULL) {
  }
  /* Acquire pairs with the release that published each actor (ax_spawn,
   * maybe on another thread); slots taken after this load belong to spawns
   * that lost the race with the stop, and ax_rt_free finishes them. */
  uint32_t used = atomic_load_explicit(&c->table.next_unused, memory_order_acquire);
  for (uint32_t i = 0; i < used; i++) {
    ax__slot_t *s = ax__table_slot(&c->table, i);
    ax__entity_t *e = s != NULL ? atomic_load_explicit(&s->ptr, memory_order_acquire) : NULL;
    if (e != NULL)
      ax__actor_die(c, AX_CONTAINER_OF(e, ax_actor_t, e), AX_REASON_SHUTDOWN);
  }
  if (c->index == 0)
    ax__sig_stop(c);
  ax__src_shutdown(c);
  pthread_barrier_wait(&rt->barrier);
}

void *ax__core_main(void *arg) {
  ax__core_t *c = arg;
  ax_rt_t *rt = c->rt;
  ax__tls_core = c;
  if (c->index == 0)
    ax__sig_start(c); /* reads the runtime's signalfd, unless AX_RT_NO_SIGNALS */
  while (!stopping(rt)) {
    drain_inject(c);
    if (c->runq_head == NULL) {
      idle(c);
      continue;
    }
    /* A round: up to AX__ROUND_TURNS actor turns in run-queue order (an
     * actor made runnable meanwhile goes to the back, so every runnable actor
     * gets its turn in FIFO order).  Between rounds: actors woken by other
     * threads join the queue, and fds and timers are polled once
     * AX__POLL_INTERVAL_NS has passed since the last poll, so a busy core
     * pays neither a syscall nor a clock read per message. */
    for (unsigned turns = 0; turns < AX__ROUND_TURNS && c->runq_head != NULL; turns++)
      run_actor(c, runq_pop(c));
    if (ax_now() - c->last_poll >= AX__POLL_INTERVAL_NS)
      poll_io(c);
    if (c->retired_count >= 256)
      ax__reclaim(c, false);
    atomic_store_explicit(&c->stats.runq_len, c->runq_len, memory_order_relaxed);
  }
  shutdown_core(c);
  ax__epoch_exit(c->erec);
  ax__tls_core = NULL;
  return NULL;
}
