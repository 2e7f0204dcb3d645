/* Sending: looking a reference up under the epoch, delivering, scheduling on another core. */
#include <errno.h>

#include "runtime/core.h"

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
    ax_loop_wake(c->loop); /* only the thread whose exchange took `sleeping`: one write() per sleep */
}

int ax__ref_enter(ax_ref_t to, ax__entity_t **e_out, ax_rt_t **rt_out, ax__erec_t **erec) {
  *erec = NULL;
  *e_out = NULL;
  *rt_out = NULL;
  ax__core_t *cur = ax__tls_core;
  if (cur != NULL && ax__ref_on_core(cur, to)) {
    /* This core's own entity: only this thread frees it, no epoch needed. */
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
    ax__msg_release(m);
    ax__msg_free(m);
    return rc;
  }
  ax__deliver(e, m);
  ax__ref_leave(erec);
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
