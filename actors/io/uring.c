/* The cores' io_uring rings: made on first use, batches submitted once per round, completions reaped by the loop. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "actors/io/uring.h"
#include "io/alloc.h"

#ifdef AX_HAVE_URING
#include <liburing.h>

#define RING_ENTRIES 256
#define IOWQ_WORKERS 4 /* the kernel's io-wq workers per ring, bounded and unbounded */

/* The core slot after the core stopped: no ring any more (requests made
 * by hooks that run at ax_rt_free go to the pool, which refuses them). */
#define STOPPED ((ax__uring_t *)(uintptr_t)1)

struct ax__uring {
  struct io_uring ring;
  ax__core_t *core;
  int efd;          /* signalled by the kernel on each completion */
  ax_io_t watch;    /* efd, on the core's loop */
  unsigned inflight; /* requests submitted, queued or waiting whose completion has not come */
  /* Requests waiting for an entry (the queue was full), oldest first: their
   * own entry, or a cancel of theirs. */
  ax__uring_req_t *wait_head, *wait_tail;
  /* A kernel that refused a submit (-ENOMEM): the entries stay in the
   * queue, and this timer tries again, backing off (retry_ns). */
  ax_timer_t retry;
  int64_t retry_ns;
};

#define RETRY_MIN_NS (1000 * 1000)       /* 1 ms */
#define RETRY_MAX_NS (100 * 1000 * 1000) /* 100 ms */

/* ax__uring_req_t.wait */
enum {
  WAIT_NONE,
  WAIT_PREP,   /* its entry: filled when the queue has room */
  WAIT_DROP,   /* the same, cancelled before it was handed over: completes -ECANCELED */
  WAIT_CANCEL, /* handed over; a cancel of it waits for an entry */
};

/* Process-wide: 0 not probed yet, 1 io_uring works, -1 use the pool. */
static _Atomic int mode;

/* Sets up ring with the flags this kernel takes; returns 0 or -errno. */
static int ring_init(struct io_uring *ring, unsigned entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  /* One thread submits and reaps (the core's): the kernel can skip its
   * locking.  Kernels before 6.0 refuse the flag: try again without. */
  p.flags = IORING_SETUP_SINGLE_ISSUER;
  int rc = io_uring_queue_init_params(entries, ring, &p);
  if (rc == -EINVAL) {
    memset(&p, 0, sizeof p);
    rc = io_uring_queue_init_params(entries, ring, &p);
  }
  return rc;
}

static int probe(void) {
  int m = atomic_load_explicit(&mode, memory_order_acquire);
  if (m != 0)
    return m;
  const char *env = getenv("AXON_FILES");
  int found;
  if (env != NULL && strcmp(env, "pool") == 0) {
    found = -1;
  } else {
    struct io_uring ring;
    int rc = ring_init(&ring, 4);
    found = rc == 0 ? 1 : -1;
    if (rc == 0)
      io_uring_queue_exit(&ring);
    else
      fprintf(stderr, "axon: io_uring unavailable (%s): file requests use the work pool\n",
                      strerror(-rc));
  }
  int expect = 0;
  /* acq_rel: one prober's verdict wins and is seen by every later caller
   * (a second prober that lost prints nothing more). */
  if (!atomic_compare_exchange_strong_explicit(&mode, &expect, found, memory_order_acq_rel,
                                               memory_order_acquire))
    found = expect;
  return found;
}

const char *ax__uring_mode(void) { return probe() > 0 ? "io_uring" : "pool"; }

static void wait_push(ax__uring_t *u, ax__uring_req_t *r, unsigned char why) {
  r->wait = why;
  r->wnext = NULL;
  r->wprev = u->wait_tail;
  if (u->wait_tail != NULL)
    u->wait_tail->wnext = r;
  else
    u->wait_head = r;
  u->wait_tail = r;
}

static void wait_unlink(ax__uring_t *u, ax__uring_req_t *r) {
  if (r->wprev != NULL)
    r->wprev->wnext = r->wnext;
  else
    u->wait_head = r->wnext;
  if (r->wnext != NULL)
    r->wnext->wprev = r->wprev;
  else
    u->wait_tail = r->wprev;
  r->wprev = r->wnext = NULL;
  r->wait = WAIT_NONE;
}

/* r completes with res: out of the count, then its completion (which may
 * submit more). */
static void complete(ax__uring_t *u, ax__uring_req_t *r, int res) {
  if (--u->inflight == 0)
    ax__core_count_io(u->core, false);
  r->complete(r, res);
}

/* Hands what the submission queue holds to the kernel.  Returns 0, or the
 * error that stopped it with entries left in the queue.  Without
 * IORING_SETUP_SUBMIT_ALL the kernel stops a batch at an entry it refuses
 * (that entry completes with the error): the entries after it stay in the
 * queue and go with the next call, here. */
static int submit(ax__uring_t *u) {
  unsigned idle = 0;
  while (io_uring_sq_ready(&u->ring) > 0) {
    int rc = io_uring_submit(&u->ring);
    if (rc > 0) {
      idle = 0;
      continue;
    }
    if (rc == -EINTR)
      continue;
    if ((rc == 0 || rc == -EAGAIN) && ++idle < 8)
      continue; /* the kernel was short of something for a moment */
    return rc < 0 ? rc : -EAGAIN;
  }
  return 0;
}

static void reap(ax__uring_t *u);

/* A cancel's own completion: nothing to do (the request it names
 * completes on its own, early). */
static void cancel_done(ax__uring_req_t *r, int res) {
  (void)r;
  (void)res;
}

static ax__uring_req_t cancel_req = {.complete = cancel_done};

/* Fills free entries from the waiting requests, oldest first.  Returns
 * whether some still wait (the queue is full). */
static bool fill(ax__uring_t *u) {
  while (u->wait_head != NULL) {
    ax__uring_req_t *r = u->wait_head;
    if (r->wait == WAIT_DROP) {
      wait_unlink(u, r);
      r->refused = true;
      complete(u, r, -ECANCELED);
      continue;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL)
      return true;
    unsigned char why = r->wait;
    wait_unlink(u, r);
    if (why == WAIT_PREP) {
      r->prep(r, sqe);
      io_uring_sqe_set_data(sqe, r);
    } else { /* WAIT_CANCEL */
      io_uring_prep_cancel(sqe, r, 0);
      io_uring_sqe_set_data(sqe, &cancel_req);
      if (u->inflight++ == 0)
        ax__core_count_io(u->core, true);
    }
  }
  return false;
}

/* The kernel refuses the batch (err): each waiting request completes with
 * err, so that its owner hears of it; a waiting cancel is dropped (its
 * request completes when the kernel is done with it). */
static void fail_waiting(ax__uring_t *u, int err) {
  ax__uring_req_t *r;
  while ((r = u->wait_head) != NULL) {
    unsigned char why = r->wait;
    wait_unlink(u, r);
    if (why != WAIT_CANCEL) {
      r->refused = true;
      complete(u, r, why == WAIT_DROP ? -ECANCELED : err);
    }
  }
}

/* Whether the kernel refused the last hand-over and the retry timer has
 * not fired yet: until it does, what is prepared or waiting stays (at
 * most RETRY_MAX_NS), and no round submits again. */
static bool backing_off(ax__uring_t *u) { return ax_timer_active(&u->retry); }

/* Everything prepared or waiting goes to the kernel: filled into entries
 * and submitted, as many times as the queue needs.  Runs where nothing
 * walks the requests (the core's flush, its stop), as completions may run
 * here: a full completion queue (-EBUSY) is reaped before trying again. */
static void hand_over(ax__uring_t *u) {
  for (unsigned busy = 0;;) {
    bool left = fill(u);
    int rc = submit(u);
    if (rc == -EBUSY && busy++ < 8) {
      reap(u);
      continue;
    }
    if (rc < 0) {
      /* What waits for an entry fails now; what is in the queue already
       * cannot be taken back, and goes when the kernel takes it. */
      fail_waiting(u, rc);
      u->retry_ns = u->retry_ns == 0 ? RETRY_MIN_NS
                    : u->retry_ns < RETRY_MAX_NS / 2 ? u->retry_ns * 2 : RETRY_MAX_NS;
      if (!ax_timer_active(&u->retry))
        (void)ax_timer_start(&u->retry, u->retry_ns, 0);
      return;
    }
    u->retry_ns = 0;
    if (!left)
      return;
  }
}

/* The round's batch goes to the kernel; what completed inside the submit
 * (reads of cached pages) is reaped at once, so its messages go out in
 * this round rather than after the loop's next poll.  (The eventfd still
 * signals them: an "async only" eventfd would miss completions that the
 * kernel posts from task work, such as buffered reads from the disk.) */
static void flush(ax__core_t *c) {
  ax__uring_t *u = c->slot[AX__CORE_SLOT_URING];
  if (u != NULL && u != STOPPED) {
    if (!backing_off(u))
      hand_over(u);
    reap(u);
  }
}

static void on_retry(ax_timer_t *t) {
  ax__uring_t *u = AX_CONTAINER_OF(t, ax__uring_t, retry);
  hand_over(u);
  reap(u);
}

static void want_flush(ax__uring_t *u) {
  if (u->core->flush == NULL)
    u->core->flush = flush;
}

/* Completions: each one to its request, on the core's thread. */
static void reap(ax__uring_t *u) {
  struct io_uring_cqe *cqe;
  while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
    ax__uring_req_t *r = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&u->ring, cqe);
    if (r->wait == WAIT_CANCEL)
      wait_unlink(u, r); /* done: its cancel is moot */
    complete(u, r, res); /* may submit more */
  }
  if ((io_uring_sq_ready(&u->ring) > 0 || u->wait_head != NULL) && !backing_off(u))
    want_flush(u);
}

static void on_event(ax_io_t *io, unsigned revents) {
  (void)revents;
  ax__uring_t *u = AX_CONTAINER_OF(io, ax__uring_t, watch);
  uint64_t n;
  while (read(u->efd, &n, sizeof n) < 0 && errno == EINTR) {
  }
  reap(u);
}

ax__uring_t *ax__uring_of(ax__core_t *c) {
  ax__uring_t *u = c->slot[AX__CORE_SLOT_URING];
  if (u != NULL)
    return u != STOPPED ? u : NULL;
  if (probe() < 0)
    return NULL;
  u = ax__calloc(1, sizeof *u);
  if (u == NULL)
    return NULL; /* the pool, this time */
  u->core = c;
  u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (u->efd < 0 || ring_init(&u->ring, RING_ENTRIES) < 0) {
    if (u->efd >= 0)
      close(u->efd);
    free(u);
    return NULL;
  }
  unsigned workers[2] = {IOWQ_WORKERS, IOWQ_WORKERS};
  (void)io_uring_register_iowq_max_workers(&u->ring, workers); /* kernels before 5.15: uncapped */
  (void)ax_timer_init(c->loop, &u->retry, on_retry); /* cannot fail: loop and timer are set */
  if (io_uring_register_eventfd(&u->ring, u->efd) < 0 ||
      ax_io_init(c->loop, &u->watch, u->efd, on_event) < 0 ||
      ax_io_start(&u->watch, AX_READ) < 0) {
    io_uring_queue_exit(&u->ring);
    close(u->efd);
    free(u);
    return NULL;
  }
  c->slot[AX__CORE_SLOT_URING] = u;
  return u;
}

void ax__uring_submit(ax__uring_t *u, ax__uring_req_t *r) {
  r->refused = false;
  if (u->inflight++ == 0)
    ax__core_count_io(u->core, true);
  /* Behind any that wait, so that requests go in the order they came. */
  struct io_uring_sqe *sqe = u->wait_head == NULL ? io_uring_get_sqe(&u->ring) : NULL;
  if (sqe != NULL) {
    r->prep(r, sqe);
    io_uring_sqe_set_data(sqe, r);
  } else {
    wait_push(u, r, WAIT_PREP); /* the round's end hands the batch over, then fills it */
  }
  want_flush(u);
}

unsigned ax__uring_inflight(const ax__uring_t *u) { return u->inflight; }

void ax__uring_cancel(ax__uring_t *u, ax__uring_req_t *r) {
  if (r->wait == WAIT_PREP) { /* never handed over: it completes at the round's end */
    r->wait = WAIT_DROP;
    return;
  }
  if (r->wait != WAIT_NONE)
    return; /* already cancelled */
  struct io_uring_sqe *sqe = u->wait_head == NULL ? io_uring_get_sqe(&u->ring) : NULL;
  if (sqe == NULL) {
    wait_push(u, r, WAIT_CANCEL);
  } else {
    io_uring_prep_cancel(sqe, r, 0);
    io_uring_sqe_set_data(sqe, &cancel_req);
    if (u->inflight++ == 0)
      ax__core_count_io(u->core, true);
  }
  want_flush(u);
}

/* How long the core's stop waits for what is in flight before it cancels
 * all of it (a read of a FIFO that no writer feeds would never end). */
#define STOP_WAIT_NS (200 * 1000 * 1000)

/* Every actor of the core has died: what is in flight completes (the
 * kernel may still write into those buffers), then the ring goes.  What
 * has not completed after STOP_WAIT_NS is cancelled (again every
 * STOP_WAIT_NS: the rest of a short read may start after a cancel). */
static void uring_core_stop(ax__core_t *c) {
  ax__uring_t *u = c->slot[AX__CORE_SLOT_URING];
  c->slot[AX__CORE_SLOT_URING] = STOPPED;
  if (u == NULL || u == STOPPED)
    return;
  c->flush = NULL;
  hand_over(u);
  while (u->inflight > 0) {
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = STOP_WAIT_NS};
    int rc = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
    struct io_uring_sqe *sqe;
    if (rc == 0) {
      reap(u);
    } else if (rc == -ETIME && (sqe = io_uring_get_sqe(&u->ring)) != NULL) {
      /* Kernels before 5.19 refuse CANCEL_ANY (its completion says
       * -EINVAL): there only the orphans' own cancels (files.c) help. */
      io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
      io_uring_sqe_set_data(sqe, &cancel_req);
      if (u->inflight++ == 0)
        ax__core_count_io(u->core, true);
    }
    hand_over(u); /* what the completions prepared (the rest of a short read) */
  }
  ax_timer_stop(&u->retry);
  ax_io_stop(&u->watch);
  io_uring_queue_exit(&u->ring);
  close(u->efd);
  free(u);
}

#else /* no liburing at build time: the pool only */

ax__uring_t *ax__uring_of(ax__core_t *c) {
  (void)c;
  return NULL;
}

void ax__uring_submit(ax__uring_t *u, ax__uring_req_t *r) {
  (void)u;
  (void)r;
}

void ax__uring_cancel(ax__uring_t *u, ax__uring_req_t *r) {
  (void)u;
  (void)r;
}

unsigned ax__uring_inflight(const ax__uring_t *u) {
  (void)u;
  return 0;
}

const char *ax__uring_mode(void) { return "pool"; }

static void uring_core_stop(ax__core_t *c) { (void)c; }

#endif

static ax__feature_t uring = {
    .name = "uring",
    .order = AX__ORDER_FILES,
    .core_stop = uring_core_stop,
};

AX__FEATURE_INIT(uring) { ax__feature_register(&uring); }
