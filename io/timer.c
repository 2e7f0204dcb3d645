/* Timers: an intrusive pairing heap keyed by (deadline, start order). */
#include <errno.h>

#include "io/internal.h"

/*
 * The heap.  Every started timer is a node of a pairing heap rooted at
 * loop->timer_root.  A node links to its first child (child_), its next
 * sibling (sibling_), and back to either its previous sibling or, for a
 * first child, its parent (prev_); the root's prev_ and sibling_ are NULL.
 * Heap order: no child comes before its parent under timer_before().
 *
 * Why a pairing heap: it lives entirely inside the timers (no array to grow,
 * so starting a timer never allocates and never fails), insertion is one
 * comparison and four stores, and removing a timer that never became the
 * root - the common fate of network timeouts, which are reset long before
 * they fire - is an unlink in O(1) plus the melding of its own children
 * (none, for a timer inserted below the root).  Removing the minimum costs
 * O(log n) amortised.  A binary heap needs O(log n) for both start and stop.
 *
 * The key is (deadline, seq_): seq_ grows with every start, so timers with
 * equal deadlines fire in the order they were started and the order is
 * total, which keeps the heap's behaviour deterministic.
 */

static inline bool timer_before(const ax_timer_t *a, const ax_timer_t *b) {
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq_ < b->seq_);
}

/* Joins two heap roots (prev_ and sibling_ NULL) and returns the new root. */
static ax_timer_t *meld(ax_timer_t *a, ax_timer_t *b) {
  if (timer_before(b, a)) {
    ax_timer_t *t = a;
    a = b;
    b = t;
  }
  b->sibling_ = a->child_;
  if (a->child_ != NULL)
    a->child_->prev_ = b;
  b->prev_ = a;
  a->child_ = b;
  return a;
}

/* Melds a list of siblings into one heap, two passes: pair them left to
 * right, then meld the pairs right to left.  Returns the root or NULL. */
static ax_timer_t *merge_pairs(ax_timer_t *first) {
  ax_timer_t *pairs = NULL; /* melded pairs, last first, through sibling_ */
  while (first != NULL) {
    ax_timer_t *a = first;
    ax_timer_t *b = a->sibling_;
    first = b != NULL ? b->sibling_ : NULL;
    a->sibling_ = a->prev_ = NULL;
    if (b != NULL) {
      b->sibling_ = b->prev_ = NULL;
      a = meld(a, b);
    }
    a->sibling_ = pairs;
    pairs = a;
  }
  if (pairs == NULL)
    return NULL;
  ax_timer_t *root = pairs;
  pairs = pairs->sibling_;
  root->sibling_ = NULL;
  while (pairs != NULL) {
    ax_timer_t *next = pairs->sibling_;
    pairs->sibling_ = NULL;
    root = meld(root, pairs);
    pairs = next;
  }
  return root;
}

static void heap_insert(ax_loop_t *loop, ax_timer_t *t) {
  t->child_ = t->sibling_ = t->prev_ = NULL;
  loop->timer_root = loop->timer_root != NULL ? meld(loop->timer_root, t) : t;
}

static void heap_remove(ax_loop_t *loop, ax_timer_t *t) {
  if (t == loop->timer_root) {
    loop->timer_root = merge_pairs(t->child_);
  } else {
    /* Unlink t from its sibling list, then meld its children back in. */
    if (t->prev_->child_ == t)
      t->prev_->child_ = t->sibling_;
    else
      t->prev_->sibling_ = t->sibling_;
    if (t->sibling_ != NULL)
      t->sibling_->prev_ = t->prev_;
    ax_timer_t *sub = merge_pairs(t->child_);
    if (sub != NULL)
      loop->timer_root = meld(loop->timer_root, sub);
  }
  t->child_ = t->sibling_ = t->prev_ = NULL;
}

int ax_timer_init(ax_loop_t *loop, ax_timer_t *timer, ax_timer_cb cb) {
  if (loop == NULL || timer == NULL || cb == NULL)
    return -EINVAL;
  timer->loop = loop;
  timer->deadline = 0;
  timer->repeat = 0;
  timer->cb_ = cb;
  timer->seq_ = 0;
  timer->child_ = timer->sibling_ = timer->prev_ = NULL;
  timer->flags_ = 0;
  return 0;
}

static void arm(ax_timer_t *timer, int64_t deadline, int64_t repeat) {
  ax_loop_t *loop = timer->loop;
  timer->deadline = deadline;
  timer->repeat = repeat;
  timer->seq_ = ++loop->timer_seq;
  timer->flags_ |= AX__ACTIVE;
  heap_insert(loop, timer);
  loop->nactive++;
}

int ax_timer_start_at(ax_timer_t *timer, int64_t deadline_ns, int64_t repeat_ns) {
  if (timer == NULL || timer->loop == NULL || deadline_ns < 0 || repeat_ns < 0 ||
      (timer->flags_ & AX__ACTIVE))
    return -EINVAL;
  AX__ASSERT_LOOP_THREAD(timer->loop);
  arm(timer, deadline_ns, repeat_ns);
  return 0;
}

int ax_timer_start(ax_timer_t *timer, int64_t timeout_ns, int64_t repeat_ns) {
  if (timer == NULL || timer->loop == NULL || timeout_ns < 0)
    return -EINVAL;
  return ax_timer_start_at(timer, ax__add_sat(timer->loop->now, timeout_ns), repeat_ns);
}

int ax_timer_stop(ax_timer_t *timer) {
  if (timer == NULL)
    return -EINVAL;
  if (!(timer->flags_ & AX__ACTIVE))
    return 0;
  ax_loop_t *loop = timer->loop;
  AX__ASSERT_LOOP_THREAD(loop);
  heap_remove(loop, timer);
  timer->flags_ &= ~(unsigned)AX__ACTIVE;
  loop->nactive--;
  return 0;
}

int ax_timer_restart(ax_timer_t *timer, int64_t timeout_ns, int64_t repeat_ns) {
  if (timer == NULL || timer->loop == NULL || timeout_ns < 0 || repeat_ns < 0)
    return -EINVAL;
  ax_timer_stop(timer);
  return ax_timer_start(timer, timeout_ns, repeat_ns);
}

bool ax_timer_active(const ax_timer_t *timer) {
  return timer != NULL && (timer->flags_ & AX__ACTIVE) != 0;
}

int64_t ax__timer_next(const ax_loop_t *loop) {
  return loop->timer_root != NULL ? loop->timer_root->deadline : AX_FOREVER;
}

/* Fires every timer due at the cached time and returns how many fired.  A timer started during this
 * pass (seq_ past the pass's first) waits for the next pass even when it is
 * already due, so that a callback re-arming itself with a zero timeout
 * cannot keep the loop from polling fds. */
unsigned ax__timer_run_due(ax_loop_t *loop) {
  uint64_t last_seq = loop->timer_seq;
  unsigned fired = 0;
  ax_timer_t *t;
  while ((t = loop->timer_root) != NULL && t->deadline <= loop->now && t->seq_ <= last_seq) {
    heap_remove(loop, t);
    if (t->repeat > 0) {
      int64_t next = ax__add_sat(t->deadline, t->repeat);
      if (next <= loop->now)
        next = ax__add_sat(loop->now, t->repeat); /* skip missed periods */
      t->deadline = next;
      t->seq_ = ++loop->timer_seq;
      heap_insert(loop, t);
    } else {
      t->flags_ &= ~(unsigned)AX__ACTIVE;
      loop->nactive--;
    }
    t->cb_(t);
    fired++;
  }
  return fired;
}

/* Marks every timer stopped without restructuring the heap (the loop is
 * being closed).  Walks the tree through child_/sibling_ with an explicit
 * path through prev_, so it needs no memory. */
void ax__timer_stop_all(ax_loop_t *loop) {
  ax_timer_t *t = loop->timer_root;
  while (t != NULL) {
    if (t->child_ != NULL) {
      t = t->child_;
      continue;
    }
    /* t is a leaf: detach it, then continue with its sibling or go up. */
    ax_timer_t *next = t->sibling_;
    ax_timer_t *prev = t->prev_;
    if (prev != NULL) {
      if (prev->child_ == t)
        prev->child_ = next;
      else
        prev->sibling_ = next;
    }
    if (next != NULL)
      next->prev_ = prev;
    t->child_ = t->sibling_ = t->prev_ = NULL;
    t->flags_ &= ~(unsigned)AX__ACTIVE;
    loop->nactive--;
    t = next != NULL ? next : prev;
  }
  loop->timer_root = NULL;
}
