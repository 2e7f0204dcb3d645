/* A ring per core for completion-based requests (files): submitted once per round, reaped on the core. */
#ifndef AXON_ACTORS_IO_URING_H
#define AXON_ACTORS_IO_URING_H

#include "actors/actors.h"

/*
 * Each core that makes a file request gets an io_uring of its own, made on
 * first use, with one issuer (the core's thread).  Requests prepare their
 * submission entries during a round; the core hands the whole batch to the
 * kernel once, at the end of the round or before it sleeps (one
 * io_uring_enter for every request of the round).  Completions signal an
 * eventfd that the core's loop watches, and are reaped on the core's
 * thread, which calls each request's complete().
 *
 * io_uring is probed once per process: where it cannot be set up (an old
 * kernel, kernel.io_uring_disabled, a seccomp filter such as Docker's
 * default profile), or where AXON_FILES=pool is in the environment, there
 * is no ring and requests go to the work pool instead; a probe that fails
 * says so once on stderr.  The kernel's io-wq workers (which run what
 * cannot complete at once: a write that must wait for the disk, fsync) are
 * capped per ring.
 */
typedef struct ax__uring ax__uring_t;
typedef struct ax__uring_req ax__uring_req_t;
struct io_uring_sqe;

struct ax__uring_req {
  /* Its completion, on the core's thread: res is the CQE's result (or the
   * error of a kernel that refused the batch, -ECANCELED for a request
   * cancelled before it was handed over). */
  void (*complete)(ax__uring_req_t *r, int res);
  /* Fills its submission entry (everything but the user data). */
  void (*prep)(ax__uring_req_t *r, struct io_uring_sqe *sqe);
  /* uring.c's: on the ring's list of requests waiting for an entry. */
  ax__uring_req_t *wprev, *wnext;
  unsigned char wait; /* 0: not waiting; else why (uring.c) */
  /* Set before a completion that the kernel never ran (it refused the
   * submission, or the request was cancelled before it was handed over):
   * nothing of it happened, a close closed nothing. */
  bool refused;
};

/* The ring of core c, made on first use; NULL when io_uring is not to be
 * used (then the caller uses the work pool).  c's thread. */
ax__uring_t *ax__uring_of(ax__core_t *c);

/* Submits r with the round's batch: r->prep fills its entry now, or, when
 * the submission queue is full, at the round's end, after the batch went
 * to the kernel.  Never fails and never calls back into the caller: a
 * kernel that refuses the batch completes r with its error at the round's
 * end.  c's thread. */
void ax__uring_submit(ax__uring_t *u, ax__uring_req_t *r);

/* "io_uring" or "pool": what file requests use in this process (probing
 * io_uring on the first call).  Any thread. */
const char *ax__uring_mode(void);

/* Asks the kernel to cancel r, submitted on u and not reaped yet: it then
 * completes early (-ECANCELED, or -EINTR for one blocked in a worker), or
 * as it would have when it was past cancelling.  Core's thread. */
void ax__uring_cancel(ax__uring_t *u, ax__uring_req_t *r);

/* Requests on u whose completion has not been reaped (cancels included).
 * Core's thread. */
unsigned ax__uring_inflight(const ax__uring_t *u);

#endif /* AXON_ACTORS_IO_URING_H */
