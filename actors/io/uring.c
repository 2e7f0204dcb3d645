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
  unsigned queued;  /* entries prepared since the last submit */
  unsigned inflight; /* entries submitted or queued whose completion has not come */
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

/* Hands the batch to the kernel (the core's flush, or a full queue). */
static void submit(ax__uring_t *u) {
  if (u->queued == 0)
    return;
  int rc;
  do
    rc = io_uring_submit(&u->ring);
  while (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
  /* Another error (-ENOMEM in the kernel): the entries stay in the queue
   * and go with the next submit. */
  if (rc >= 0)
    u->queued = 0;
}

static void reap(ax__uring_t *u);

/* The round's batch goes to the kernel; what completed inside the submit
 * (reads of cached pages) is reaped at once, so its messages go out in
 * this round rather than after the loop's next poll.  (The eventfd still
 * signals them: an "async only" eventfd would miss completions that the
 * kernel posts from task work, such as buffered reads from the disk.) */
static void flush(ax__core_t *c) {
  ax__uring_t *u = c->slot[AX__CORE_SLOT_URING];
  if (u != NULL && u != STOPPED) {
    submit(u);
    reap(u);
  }
}

/* Completions: each one to its request, on the core's thread. */
static void reap(ax__uring_t *u) {
  struct io_uring_cqe *cqe;
  while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
    ax__uring_req_t *r = io_uring_cqe_get_data(cqe);
    int res = cqe->res;
    io_uring_cqe_seen(&u->ring, cqe);
    if (--u->inflight == 0)
      ax__core_count_io(u->core, false);
    r->complete(r, res); /* may prepare more entries */
  }
  if (u->queued > 0 && u->core->flush == NULL)
    u->core->flush = flush;
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

struct io_uring_sqe *ax__uring_sqe(ax__uring_t *u, ax__uring_req_t *r) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (sqe == NULL) { /* full: hand the batch over, which empties the queue */
    submit(u);
    while ((sqe = io_uring_get_sqe(&u->ring)) == NULL) {
      reap(u);
      submit(u);
    }
  }
  io_uring_sqe_set_data(sqe, r);
  if (u->inflight++ == 0)
    ax__core_count_io(u->core, true);
  u->queued++;
  if (u->core->flush == NULL)
    u->core->flush = flush;
  return sqe;
}

/* A cancel's own completion: nothing to do (the request it names
 * completes on its own, early). */
static void cancel_done(ax__uring_req_t *r, int res) {
  (void)r;
  (void)res;
}

static ax__uring_req_t cancel_req = {.complete = cancel_done};

unsigned ax__uring_inflight(const ax__uring_t *u) { return u->inflight; }

/* Asks the kernel to cancel target (matched by user_data), or with
 * IORING_ASYNC_CANCEL_ANY every request in flight. */
static void prep_cancel(ax__uring_t *u, ax__uring_req_t *target, int flags) {
  io_uring_prep_cancel(ax__uring_sqe(u, &cancel_req), target, flags);
}

void ax__uring_cancel(ax__uring_t *u, ax__uring_req_t *r) { prep_cancel(u, r, 0); }

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
  submit(u);
  while (u->inflight > 0) {
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = STOP_WAIT_NS};
    int rc = io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts);
    if (rc == 0) {
      reap(u);
    } else if (rc == -ETIME) {
      /* Kernels before 5.19 refuse CANCEL_ANY (its completion says
       * -EINVAL): there only the orphans' own cancels (files.c) help. */
      prep_cancel(u, NULL, IORING_ASYNC_CANCEL_ANY);
    }
    submit(u); /* what the completions prepared (the rest of a short read) */
  }
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

struct io_uring_sqe *ax__uring_sqe(ax__uring_t *u, ax__uring_req_t *r) {
  (void)u;
  (void)r;
  return NULL;
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
