/* Ports: eventfd-backed mailboxes that let ordinary threads receive from actors. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ck_pr.h>

#include "actors/actors.h"
#include "actors/list.h"
#include "axon/port.h"

/*
 * A port is an entity like an actor: a reference resolves to it through the
 * runtime's port table and senders push onto its mailbox.  Instead of a
 * core, the push that finds the mailbox marked empty rings the eventfd (the
 * doorbell).  The owner thread clears the doorbell just before it marks the
 * mailbox empty again (and rings it again if the mark fails), so the fd is
 * readable exactly while the mailbox is not marked empty: a poll loop
 * watching it neither spins nor misses a message.
 *
 * Once the runtime has stopped (every actor finished), a receive that
 * finds the port empty returns -ESHUTDOWN instead of waiting: no actor is
 * left to answer.  The runtime keeps its open ports on a list and rings
 * each of them then, so that a thread waiting in ax_port_recv (or polling
 * ax_port_fd) hears of it.
 */
struct ax_port {
  ax__entity_t e;
  ax__mpscq_node_t stub;
  ax_rt_t *rt;
  ax_ref_t ref;
  int efd;
  ax__msg_t *held; /* the message handed out last (its data is still in use) */
  /* Receives with deadline 0 that found the port empty (a count that
   * wraps), and whether a message was taken since the last one: when such
   * a receive clears a stale doorbell (clear_stale_ring). */
  uint32_t empty_polls;
  bool took;
  ax__link_t link; /* on the runtime's list of open ports (under ports_t.lock) */
};

/* A runtime's ports (AX__RT_SLOT_PORTS). */
typedef struct ports {
  pthread_mutex_t lock; /* the list; rare: a port's open and close, the stop */
  ax__link_t *head;
  _Atomic bool stopped; /* the runtime has stopped: empty ports say -ESHUTDOWN */
} ports_t;

static ports_t *ports_of(ax_rt_t *rt) { return rt->slot[AX__RT_SLOT_PORTS]; }

/* Whether p's runtime has stopped.  Acquire pairs with the release store
 * in ports_stopped: what the runtime's actors sent before is queued by
 * the time a receive sees the flag. */
static bool rt_stopped(const ax_port_t *p) {
  return atomic_load_explicit(&ports_of(p->rt)->stopped, memory_order_acquire);
}

/* The entity's wake function: rings the doorbell.  Any thread. */
static void port_ring(ax__entity_t *e) {
  ax_port_t *p = AX_CONTAINER_OF(e, ax_port_t, e);
  uint64_t one = 1;
  ssize_t w = write(p->efd, &one, sizeof one);
  (void)w; /* EAGAIN only if 2^64-2 rings are pending: the fd is readable anyway */
}

int ax_port_new_opts(ax_rt_t *rt, const ax_port_opts_t *opts, ax_port_t **out) {
  if (rt == NULL || out == NULL)
    return -EINVAL;
  ax_port_t *p = ax__calloc(1, sizeof *p);
  if (p == NULL)
    return -ENOMEM;
  p->e.wake = port_ring;
  p->e.max = opts != NULL ? opts->max : 0;
  atomic_init(&p->e.inflight, 0);
  ax__mpscq_init(&p->e.q, &p->stub, true);
  p->rt = rt;
  p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->efd < 0) {
    int rc = -errno;
    free(p);
    return rc;
  }
  int64_t slot = ax__table_alloc(&rt->ports);
  if (slot < 0) {
    close(p->efd);
    free(p);
    return (int)slot;
  }
  ax__slot_t *s = ax__table_slot(&rt->ports, (uint32_t)slot);
  p->ref = ax__ref_make(atomic_load_explicit(&s->gen, memory_order_relaxed), rt->index,
                        AX__REF_NO_CORE, (uint32_t)slot);
  /* Release publishes the port to senders resolving its reference. */
  atomic_store_explicit(&s->ptr, &p->e, memory_order_release);
  ports_t *ps = ports_of(rt);
  pthread_mutex_lock(&ps->lock);
  ax__list_push(&ps->head, &p->link);
  pthread_mutex_unlock(&ps->lock);
  *out = p;
  return 0;
}

int ax_port_new(ax_rt_t *rt, ax_port_t **out) { return ax_port_new_opts(rt, NULL, out); }

ax_ref_t ax_port_ref(const ax_port_t *port) { return port != NULL ? port->ref : AX_REF_NONE; }

int ax_port_fd(const ax_port_t *port) { return port != NULL ? port->efd : -EINVAL; }

static void release_held(ax_port_t *p) {
  if (p->held != NULL)
    ax__msg_release(p->held);
  p->held = NULL;
}

/* Takes the next message meant for the thread; system messages are handled
 * here (a port cannot be monitored: a request is answered with DOWN). */
static ax__msg_t *take(ax_port_t *p) {
  ax__mpscq_node_t *old, *node;
  while ((node = ax__mpscq_pop(&p->e.q, &old)) != NULL) {
    if (old != &p->stub)
      ax__msg_free((ax__msg_t *)old);
    ax__msg_t *m = (ax__msg_t *)node;
    ax__bound_give(&p->e.inflight, m); /* taken: a bounded port has room again */
    if (m->sys == AX__SYS_NONE || m->sys == AX__SYS_DOWN)
      return m;
    /* Anything else is meant for an actor: dropped as at a dead one (a
     * monitor request is answered with DOWN{-ESRCH}). */
    const ax__kind_t *k = ax__kinds[m->sys];
    if (k != NULL && k->drop != NULL)
      (void)k->drop(p->ref, -ESRCH, m);
    ax__msg_release(m);
  }
  return NULL;
}

/* Waits until the doorbell rings, a spin found a push, or the deadline.
 * Returns 0, -ETIMEDOUT or -EINTR. */
static int wait_ring(ax_port_t *p, int64_t deadline) {
  int64_t spin = p->rt->opts.spin_ns;
  if (spin > 0) {
    /* The spin never outlasts the deadline: a deadline already past
     * returns at once, not after the spin. */
    int64_t now = ax_now(), end = now + spin;
    if (deadline != AX_FOREVER && deadline < end)
      end = deadline;
    for (unsigned i = 1; now < end; i++) {
      if (ax__mpscq_pending(&p->e.q))
        return 0;
      ax__spin_step(i);
      if ((i & 63) == 0)
        now = ax_now();
    }
  }
  struct pollfd pfd = {.fd = p->efd, .events = POLLIN};
  struct timespec ts, *tsp = NULL;
  if (deadline != AX_FOREVER) {
    int64_t left = deadline - ax_now();
    if (left <= 0)
      return -ETIMEDOUT;
    ts.tv_sec = (time_t)(left / AX_NSEC_PER_SEC);
    ts.tv_nsec = (long)(left % AX_NSEC_PER_SEC);
    tsp = &ts;
  }
  int n = ppoll(&pfd, 1, tsp, NULL);
  if (n < 0)
    return errno == EINTR ? -EINTR : -errno;
  return 0;
}

/* The doorbell may ring with the mailbox empty and marked: a sender whose
 * push found the mark rings after its link, and this thread may have taken
 * that message meanwhile (wait_ring's spin), then marked the mailbox empty
 * again before the ring landed.  A blocking receive then woke at once, again
 * and again (a reviewer's program: 2 ms of CPU for a 2 ms wait).  Clears the
 * doorbell; returns whether a message is there after all (then rung again,
 * keeping "unmarked mailbox <=> readable fd"). */
static bool clear_stale_ring(ax_port_t *p) {
  uint64_t count;
  ssize_t r = read(p->efd, &count, sizeof count);
  (void)r;
  if (!ax__mpscq_pending(&p->e.q))
    return false;
  port_ring(&p->e);
  return true;
}

int ax_port_recv(ax_port_t *port, int64_t deadline, ax_msg_t *msg) {
  if (port == NULL || msg == NULL || (deadline < 0 && deadline != AX_FOREVER))
    return -EINVAL;
  release_held(port);
  for (;;) {
    ax__msg_t *m = take(port);
    if (m != NULL) {
      *msg = m->m;
      port->held = m;
      port->took = true;
      return 0;
    }
    if (ax__mpscq_pending(&port->e.q)) {
      ck_pr_stall(); /* a sender is between its exchange and its link */
      continue;
    }
    /* Clear the doorbell, then mark the mailbox empty: the next push rings
     * again.  No ring can come between the two, because only a push that
     * finds the mark rings. */
    if (!ax__mpscq_marked(&port->e.q)) {
      uint64_t count;
      ssize_t r = read(port->efd, &count, sizeof count);
      (void)r;
      if (!ax__mpscq_mark_empty(&port->e.q)) {
        /* A message arrived between the clear and the mark: ring again, to
         * keep "unmarked mailbox <=> readable fd" for ax_port_fd users. */
        port_ring(&port->e);
        continue;
      }
    }
    for (;;) {
      /* Empty, and no actor left to fill it: the stop's ring is cleared
       * (a poll loop would spin on it), then looked past once more. */
      if (rt_stopped(port)) {
        uint64_t count;
        ssize_t r = read(port->efd, &count, sizeof count);
        (void)r;
        if (ax__mpscq_pending(&port->e.q)) {
          port_ring(&port->e); /* a thread's send came meanwhile: its ring may be the one read */
          break;
        }
        return -ESHUTDOWN;
      }
      if (deadline == 0) {
        /* A stale ring comes only after a take, and may land a little
         * after the first empty receive: clear at the first one after a
         * take, then every 64th (a read() on every empty receive made a
         * polling thread's empty receive 70 times dearer, 4 -> 285 ns).
         * A program watching the fd wakes at most 64 times for nothing. */
        if (port->took || (++port->empty_polls & 63) == 0) {
          port->took = false;
          if (clear_stale_ring(port))
            break;
        }
        return -EAGAIN;
      }
      int rc = wait_ring(port, deadline);
      if (rc < 0)
        return rc;
      if (ax__mpscq_pending(&port->e.q) || clear_stale_ring(port))
        break;
      if (deadline != AX_FOREVER && ax_now() >= deadline && !rt_stopped(port))
        return -ETIMEDOUT;
    }
  }
}

/* Frees a port whose slot is retired and whose grace period is over. */
static void port_destroy(ax_port_t *p) {
  release_held(p);
  atomic_fetch_add_explicit(&p->rt->dead_letters_other,
                            ax__drain_port(&p->e, &p->stub, p->ref, -ESRCH),
                            memory_order_relaxed);
  if (p->e.q.tail != &p->stub)
    ax__msg_free((ax__msg_t *)p->e.q.tail);
  close(p->efd);
  free(p);
}

int ax_port_close(ax_port_t *port) {
  if (port == NULL)
    return -EINVAL;
  ax_rt_t *rt = port->rt;
  ports_t *ps = ports_of(rt);
  pthread_mutex_lock(&ps->lock); /* off the list first: the stop rings no freed port */
  ax__list_remove(&ps->head, &port->link);
  pthread_mutex_unlock(&ps->lock);
  uint32_t slot = ax__ref_slot(port->ref);
  ax__table_retire(&rt->ports, slot);
  /* Wait out the grace period: senders that resolved the port before the
   * retirement leave their critical sections within it. */
  uint64_t target = atomic_load_explicit(&rt->epoch.epoch, memory_order_acquire) + 2;
  while (ax__epoch_advance(&rt->epoch) < target)
    sched_yield();
  port_destroy(port);
  ax__table_free(&rt->ports, slot);
  return 0;
}

/* At ax_rt_free: ports the program did not close. */
static void close_left(void *entity, void *arg) {
  ax_rt_t *rt = arg;
  ax_port_t *p = AX_CONTAINER_OF(entity, ax_port_t, e);
  ax__table_retire(&rt->ports, ax__ref_slot(p->ref));
  port_destroy(p);
}

static int ports_init(ax_rt_t *rt) {
  ports_t *ps = ax__calloc(1, sizeof *ps);
  if (ps == NULL)
    return -ENOMEM;
  pthread_mutex_init(&ps->lock, NULL);
  rt->slot[AX__RT_SLOT_PORTS] = ps;
  return 0;
}

/* The runtime has stopped: every port is rung, and from now on one found
 * empty says -ESHUTDOWN. */
static void ports_stopped(ax_rt_t *rt) {
  ports_t *ps = ports_of(rt);
  pthread_mutex_lock(&ps->lock);
  /* Release: whatever the runtime's actors sent before comes before the
   * flag (a receiver that sees it finds their messages queued). */
  atomic_store_explicit(&ps->stopped, true, memory_order_release);
  for (ax__link_t *l = ps->head; l != NULL; l = l->next)
    port_ring(&AX_CONTAINER_OF(l, ax_port_t, link)->e);
  pthread_mutex_unlock(&ps->lock);
}

static void ports_free(ax_rt_t *rt) {
  ports_t *ps = ports_of(rt);
  if (ps == NULL)
    return;
  ax__table_each(&rt->ports, close_left, rt);
  pthread_mutex_destroy(&ps->lock);
  free(ps);
  rt->slot[AX__RT_SLOT_PORTS] = NULL;
}

static ax__feature_t ports = {
    .name = "ports",
    .order = AX__ORDER_PORTS,
    .rt_init = ports_init,
    .rt_stopped = ports_stopped,
    .rt_free = ports_free,
};

AX__FEATURE_INIT(ports) { ax__feature_register(&ports); }
