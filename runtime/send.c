/* Sending: looking a reference up, delivering through a core's inbox, the inbox's drain. */
#include <errno.h>

#include "runtime/core.h"

void ax__inbox_push(ax__core_t *c, ax__msg_t *m) {
  ax__mpscq_push(&c->inbox, &m->node);
  /* The wake protocol, sender side: the push above, this fence, then the
   * load of `sleeping`.  The core does the mirror image (store sleeping,
   * fence, look at the inbox), so at least one of the two sees the other:
   * either the core finds this message before sleeping, or this thread
   * sees it asleep and wakes it.  A busy core is never sent a syscall. */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&c->sleeping, memory_order_relaxed) &&
      atomic_exchange_explicit(&c->sleeping, 0, memory_order_relaxed))
    ax_loop_wake(c->loop); /* only the thread whose exchange took `sleeping`: one write() per sleep */
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

unsigned ax__inbox_drain(ax__core_t *c) {
  unsigned n = 0;
  uint64_t dead = 0;
  ax__mpscq_node_t *node;
  while ((node = ax__mpscq_take(&c->inbox, &c->inbox_stub)) != NULL) {
    ax__msg_t *m = (ax__msg_t *)node;
    n++;
    ax_actor_t *a = ax__lookup_local(c, m->to);
    if (a == NULL) {
      dead += ax__msg_drop(m, m->to, -ESRCH);
      ax__msg_free(m);
      continue;
    }
    if (!(m->flags & AX__MSG_FIRST)) {
      ax__mailbox_push(c, a, m);
      continue;
    }
    /* The actor's first message (ax__actor_publish): in front of whatever
     * this core's actors sent it meanwhile.  It was published queued, so
     * nothing has run it yet. */
    m->flags &= (uint16_t)~AX__MSG_FIRST;
    ax__msg_t *t = a->mq_tail;
    if (t == NULL) {
      atomic_store_explicit(&m->node.next, &m->node, memory_order_relaxed);
      a->mq_tail = m;
    } else {
      atomic_store_explicit(&m->node.next,
                            atomic_load_explicit(&t->node.next, memory_order_relaxed),
                            memory_order_relaxed);
      atomic_store_explicit(&t->node.next, &m->node, memory_order_relaxed);
    }
    /* Acquire pairs with the release store in ax_rt_stop. */
    if (!atomic_load_explicit(&c->rt->stopping, memory_order_acquire))
      ax__runq_push(c, a);
  }
  if (dead != 0)
    ax__stat_add(&c->stats.dead_letters, dead);
  return n;
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
  ax__slot_t *s = ax__table_slot(table, ax__ref_slot(to));
  void *p = NULL;
  if (s != NULL) {
    /* Acquire on ptr, then on gen: a reader that sees a reused slot's new
     * occupant also sees the generation bumped when the old one died. */
    p = atomic_load_explicit(&s->ptr, memory_order_acquire);
    if (p != NULL && atomic_load_explicit(&s->gen, memory_order_acquire) != ax__ref_gen(to))
      p = NULL;
  }
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
 * the actor itself is never touched, so no epoch is needed.  Its slot says
 * whether it is alive now (the table's chunks live as long as the
 * runtime); a death after the look makes the message a dead letter when
 * the core drains its inbox. */
static int send_remote(ax_ref_t to, ax__msg_t *m, ax_rt_t **rt_out) {
  *rt_out = NULL;
  if (to == AX_REF_NONE)
    return -ESRCH;
  ax_rt_t *rt = ax__rt_lookup(ax__ref_rt(to));
  if (rt == NULL)
    return -ESRCH;
  *rt_out = rt;
  unsigned ci = ax__ref_core(to);
  if (ci >= rt->ncores)
    return -ESRCH;
  ax__core_t *c = rt->cores[ci];
  ax__slot_t *s = ax__table_slot(&c->table, ax__ref_slot(to));
  /* Acquire on ptr, then on gen, as in ax__ref_enter. */
  if (s == NULL || atomic_load_explicit(&s->ptr, memory_order_acquire) == NULL ||
      atomic_load_explicit(&s->gen, memory_order_acquire) != ax__ref_gen(to))
    return -ESRCH;
  m->to = to;
  ax__inbox_push(c, m);
  return 0;
}

int ax__send_msg(ax_ref_t to, ax__msg_t *m) {
  ax_rt_t *rt = NULL;
  ax__core_t *cur = ax__tls_core;
  int rc;
  if (cur != NULL && ax__ref_on_core(cur, to)) {
    ax_actor_t *a = ax__lookup_local(cur, to);
    rt = cur->rt;
    if (a != NULL) {
      ax__mailbox_push(cur, a, m);
      rc = 0;
    } else {
      rc = -ESRCH;
    }
  } else if (to != AX_REF_NONE && ax__ref_core(to) == AX__REF_NO_CORE) {
    ax__erec_t *erec;
    void *e;
    rc = ax__ref_enter(to, &e, &rt, &erec);
    if (rc == 0)
      ax__deliver_port(e, m);
    ax__ref_leave(erec);
  } else {
    rc = send_remote(to, m, &rt);
  }
  if (rc < 0) {
    if (rc == -ESRCH && cur != NULL)
      ax__stat_add(&cur->stats.dead_letters, 1);
    else if (rc == -ESRCH && rt != NULL)
      atomic_fetch_add_explicit(&rt->dead_letters_other, 1, memory_order_relaxed);
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
