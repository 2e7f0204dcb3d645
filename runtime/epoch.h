/* Epoch-based reclamation: memory another thread may still be reading is freed only after a grace period. */
#ifndef AXON_RUNTIME_EPOCH_H
#define AXON_RUNTIME_EPOCH_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#include "runtime/table.h" /* AX__CACHE_LINE */

/*
 * A thread that may touch an entity of another core (a sender) enters a
 * critical section first (ax__epoch_enter) and leaves it when done
 * (ax__epoch_exit).  The global epoch advances only when every thread
 * inside a section has observed the current one; what was retired in epoch
 * e is freed once the epoch reaches e + 2, when no section that could have
 * seen it is still open.  Each thread has a record (ax__erec_t) it claims
 * once per runtime; records live on an append-only list, so the reclaimer
 * walks them without a lock.
 */
typedef struct ax__erec {
  _Atomic uint64_t state; /* epoch << 1 | active; written by its thread */
  _Atomic int in_use;     /* claimed by a thread */
  _Atomic int refs;       /* the runtime's list, plus the thread using it */
  struct ax__erec *next;  /* the runtime's list of records (append only) */
} ax__erec_t;

typedef struct ax__epoch { /* cache-line aligned: starts a line of its own */
  alignas(AX__CACHE_LINE) _Atomic uint64_t epoch;
  _Atomic(ax__erec_t *) records;
} ax__epoch_t;

/* A retired object, linked into its owner's list until two epochs pass. */
typedef struct ax__retired {
  struct ax__retired *next;
  uint64_t epoch;
} ax__retired_t;

void ax__epoch_init(ax__epoch_t *e);
/* Lets go of the runtime's records; one a thread still holds is freed by
 * that thread's ax__epoch_release.  No section may be open. */
void ax__epoch_destroy(ax__epoch_t *e);
/* Claims a record for the calling thread (a released one, or a new one).
 * NULL when out of memory.  Give it back with ax__epoch_release(), which
 * never touches the epoch (its runtime may be gone).  Any thread. */
ax__erec_t *ax__epoch_register(ax__epoch_t *e);
void ax__epoch_release(ax__erec_t *r);
/* Opens and closes the record's thread's critical section. */
void ax__epoch_enter(ax__epoch_t *e, ax__erec_t *r);
void ax__epoch_exit(ax__erec_t *r);
/* Tries to advance the epoch; returns the epoch now in force.  Any thread. */
uint64_t ax__epoch_advance(ax__epoch_t *e);

#endif /* AXON_RUNTIME_EPOCH_H */
