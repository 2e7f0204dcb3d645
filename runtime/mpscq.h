/* An intrusive lock-free multi-producer/single-consumer queue with an "empty" mark. */
#ifndef AXON_RUNTIME_MPSCQ_H
#define AXON_RUNTIME_MPSCQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * The queue is a singly linked list that producers append to by exchanging
 * the head pointer (one atomic exchange per push, whatever the contention)
 * and the single consumer walks from its tail.  The consumer always holds
 * one node, the "stub", that is already consumed: popping returns the node
 * after the stub and makes it the new stub, so a popped node stays owned by
 * the queue until the next pop (ax__mpscq_pop hands back the previous stub
 * for the caller to free).
 *
 * The empty mark.  Bit 0 of head set means "empty and nobody is scheduled to
 * consume": the consumer sets it with ax__mpscq_mark_empty() when it finds
 * nothing to do, and the one producer whose exchange returns a marked head
 * learns that it turned the queue non-empty, so it alone schedules the
 * consumer.  A queue therefore moves between "marked" (idle) and "unmarked"
 * (scheduled or running) exactly once per idle period, which is the
 * exactly-once scheduling of actors and the wake-up of ports.
 *
 * Threads: push from any thread; everything else from the one consumer.
 * Nodes need 8-byte alignment (bit 0 of their address must be free).
 */

typedef struct ax__mpscq_node {
  _Atomic(struct ax__mpscq_node *) next;
} ax__mpscq_node_t;

typedef struct ax__mpscq {
  _Atomic(uintptr_t) head; /* written by producers (exchange), consumer (CAS) */
  ax__mpscq_node_t *tail;  /* consumer only: the stub */
} ax__mpscq_t;

#define AX__MPSCQ_EMPTY ((uintptr_t)1)

/* Initialises q around its first stub, marked empty when marked is true. */
static inline void ax__mpscq_init(ax__mpscq_t *q, ax__mpscq_node_t *stub, bool marked) {
  atomic_init(&stub->next, NULL);
  q->tail = stub;
  atomic_init(&q->head, (uintptr_t)stub | (marked ? AX__MPSCQ_EMPTY : 0));
}

/* Appends n.  Returns true when the queue was marked empty: the caller is
 * the one producer that must schedule (or wake) the consumer.  Any thread. */
static inline bool ax__mpscq_push(ax__mpscq_t *q, ax__mpscq_node_t *n) {
  atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
  /* acq_rel: release orders n->next = NULL before n becomes reachable
   * through head; acquire makes the previous node (pushed by another
   * producer, maybe) valid to write below.  On x86-64 this is one xchg. */
  uintptr_t prev = atomic_exchange_explicit(&q->head, (uintptr_t)n, memory_order_acq_rel);
  ax__mpscq_node_t *p = (ax__mpscq_node_t *)(prev & ~AX__MPSCQ_EMPTY);
  /* Release: the consumer that loads p->next (acquire) sees everything the
   * producer wrote into n (the message) before this store. */
  atomic_store_explicit(&p->next, n, memory_order_release);
  return (prev & AX__MPSCQ_EMPTY) != 0;
}

/* Takes the next node, or returns NULL when none is linked yet (a producer
 * may be between its exchange and its link: the caller tries again later).
 * *old_stub receives the node the queue no longer holds, which the caller
 * may free or reuse; it is the node popped by the previous call, or the
 * initial stub.  Consumer only. */
static inline ax__mpscq_node_t *ax__mpscq_pop(ax__mpscq_t *q, ax__mpscq_node_t **old_stub) {
  ax__mpscq_node_t *tail = q->tail;
  /* Acquire pairs with the release in push: the node's contents are visible. */
  ax__mpscq_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (next == NULL)
    return NULL;
  q->tail = next;
  *old_stub = tail;
  return next;
}

/* Marks the queue empty if nothing was pushed since the last pop.  Returns
 * true when marked: the consumer must not run again until a producer's push
 * returns true.  Returns false when a push is under way or done: the caller
 * keeps consuming.  Consumer only, after a pop returned NULL. */
static inline bool ax__mpscq_mark_empty(ax__mpscq_t *q) {
  uintptr_t expected = (uintptr_t)q->tail;
  /* acq_rel: the head's modification order is what decides which producer
   * sees the mark; release publishes the consumer's last writes to the
   * producer that will schedule it again. */
  return atomic_compare_exchange_strong_explicit(&q->head, &expected,
                                                 expected | AX__MPSCQ_EMPTY,
                                                 memory_order_acq_rel, memory_order_relaxed);
}

/* The node most recently pushed (unmarked), as seen now.  Used to bound a
 * consumer's turn to what was queued when it started.  Consumer only. */
static inline ax__mpscq_node_t *ax__mpscq_last(ax__mpscq_t *q) {
  return (ax__mpscq_node_t *)(atomic_load_explicit(&q->head, memory_order_acquire) &
                              ~AX__MPSCQ_EMPTY);
}

/* True while the queue is marked empty (no push since the mark).
 * Consumer only. */
static inline bool ax__mpscq_marked(ax__mpscq_t *q) {
  return (atomic_load_explicit(&q->head, memory_order_acquire) & AX__MPSCQ_EMPTY) != 0;
}

/* True when a push has happened since the last pop (maybe not linked yet). */
static inline bool ax__mpscq_pending(ax__mpscq_t *q) {
  return ax__mpscq_last(q) != q->tail;
}

/* Takes the oldest node of a queue whose nodes must be free the moment they
 * are popped (an actor on a core's inject queue may be queued again right
 * away).  The queue keeps its own stub, re-inserted when the last node
 * leaves.  Returns NULL when empty or when a push is half done (try again
 * later).  Never use the empty mark on such a queue.  Consumer only. */
static inline ax__mpscq_node_t *ax__mpscq_take(ax__mpscq_t *q, ax__mpscq_node_t *stub) {
  ax__mpscq_node_t *tail = q->tail;
  ax__mpscq_node_t *next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (tail == stub) {
    if (next == NULL)
      return NULL;
    q->tail = next;
    tail = next;
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
  }
  if (next != NULL) {
    q->tail = next;
    return tail;
  }
  if (tail != ax__mpscq_last(q))
    return NULL; /* a producer has exchanged the head but not linked yet */
  ax__mpscq_push(q, stub);
  /* Acquire, as in the pops above: the node linked after tail is complete. */
  next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (next != NULL) {
    q->tail = next;
    return tail;
  }
  return NULL;
}

#endif /* AXON_RUNTIME_MPSCQ_H */
