/* The loop's private state, shared by the files of io/; not installed. */
#ifndef AXON_IO_INTERNAL_H
#define AXON_IO_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "axon/loop.h"
#include "io/alloc.h"
#include "io/backend.h"

/* Watcher flag bits (the private flags_ field of every watcher kind). */
enum {
  AX__ACTIVE = 0x1,   /* started */
  AX__INTERNAL = 0x2, /* the loop's own fd watcher: not counted, not listed */
  AX__DISARMED = 0x4, /* an AX_ONESHOT watcher that fired: armed again by ax_io_modify */
};

/* Linux numbers signals 1.._NSIG-1 (64). */
#define AX__NSIG 65

/* One fd event taken from the backend and not yet dispatched.  io is set
 * to NULL when the watcher is stopped during dispatch (see ax__io_forget). */
typedef struct ax__ready {
  ax_io_t *io;
  unsigned revents;
} ax__ready_t;

/*
 * The loop.  Everything here is written only by the loop's thread, except
 * stop_requested, which any thread may set (see ax_loop_stop).
 *
 * Invariants:
 *  - nactive counts started user watchers of every kind (fd watchers,
 *    timers, signals, events); internal watchers are not counted.
 *  - io_list holds exactly the started, non-internal fd watchers.
 *  - timer_root is the root of a pairing heap ordered by (deadline, seq_)
 *    holding exactly the started timers.
 *  - While dispatching, ready[ready_pos + 1 .. nready - 1] are the entries
 *    still to deliver; a stopped watcher never appears there.
 */
struct ax_loop {
  const ax__backend_t *backend;
  void *backend_data;

  int64_t now;      /* cached CLOCK_MONOTONIC ns */
  unsigned nactive; /* see the invariants above */
  unsigned flags;   /* AX_LOOP_* */
  /* In ax_loop_run or ax_loop_run_once: set with an exchange, so that a
   * second thread entering at once gets -EBUSY rather than a dispatch of
   * its own beside the first (a newcomer saw 376 overlapping callbacks in
   * 2 s).  Relaxed: it only refuses; the loop's data is the runner's. */
  atomic_bool running;
  pthread_t owner; /* the loop's thread: its creator, its last runner or adopter */

  /* fd watchers and the current dispatch batch */
  ax_io_t *io_list;
  ax__ready_t *ready;
  unsigned max_events;
  unsigned nready;
  unsigned ready_pos;
  bool dispatching;

  /* timers */
  ax_timer_t *timer_root;
  uint64_t timer_seq;

  /* stop: any thread stores 1 then writes wake_fd; the loop exchanges it
   * back to 0 when it returns. */
  atomic_int stop_requested;
  int wake_fd;
  ax_io_t wake_io;

  /* signals (io/signal.c) */
  int sig_fd;
  ax_io_t sig_io;
  sigset_t sig_mask;       /* signals that have watchers */
  sigset_t sig_we_blocked; /* signals this loop blocked (to restore) */
  ax_signal_t *sig_head[AX__NSIG], *sig_tail[AX__NSIG];
  uint64_t sig_seq;
  ax_signal_t *sig_next; /* the iteration cursor while delivering */
};

/* Debug builds check that loop functions run on the loop's thread, whether
 * or not it is inside ax_loop_run at the moment. */
#define AX__ASSERT_LOOP_THREAD(loop) assert(pthread_equal((loop)->owner, pthread_self()))

/* io/io.c: registers or unregisters a watcher; ax__io_forget drops the
 * watcher's entries from the batch being dispatched. */
int ax__io_start_internal(ax_io_t *io, unsigned events);
void ax__io_forget(ax_loop_t *loop, ax_io_t *io);
void ax__io_dispatch(ax_loop_t *loop, unsigned n);

/* io/timer.c */
unsigned ax__timer_run_due(ax_loop_t *loop);
int64_t ax__timer_next(const ax_loop_t *loop); /* deadline or AX_FOREVER */
void ax__timer_stop_all(ax_loop_t *loop);

/* io/signal.c */
void ax__signal_stop_all(ax_loop_t *loop);
void ax__signal_close(ax_loop_t *loop);

/* Adds a to b, saturating at INT64_MAX (both non-negative). */
static inline int64_t ax__add_sat(int64_t a, int64_t b) {
  return a > INT64_MAX - b ? INT64_MAX : a + b;
}

#endif /* AXON_IO_INTERNAL_H */
