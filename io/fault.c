/* Allocation-failure injection for tests (built only with AXON_FAULT_INJECTION=ON). */
#include <stdatomic.h>

#include "io/alloc.h"

/* Counted over every thread: relaxed atomics are enough, as a test arms
 * the counters before it starts the calls it wants to fail and reads the
 * result after they have returned (its own synchronisation orders both). */
static _Atomic uint64_t countdown; /* allocations until the next failure; 0: off */
static _Atomic uint64_t period;    /* then every period-th one; 0: once */
static _Atomic uint64_t failed;

bool ax__alloc_fails(void) {
  uint64_t left = atomic_load_explicit(&countdown, memory_order_relaxed);
  while (left != 0) {
    if (atomic_compare_exchange_weak_explicit(&countdown, &left, left - 1,
                                              memory_order_relaxed, memory_order_relaxed)) {
      if (left != 1)
        return false;
      atomic_store_explicit(&countdown, atomic_load_explicit(&period, memory_order_relaxed),
                            memory_order_relaxed);
      atomic_fetch_add_explicit(&failed, 1, memory_order_relaxed);
      return true;
    }
  }
  return false;
}

uint64_t ax__fault_alloc(uint64_t nth, uint64_t every) {
  atomic_store_explicit(&countdown, 0, memory_order_relaxed);
  atomic_store_explicit(&period, every, memory_order_relaxed);
  uint64_t n = atomic_exchange_explicit(&failed, 0, memory_order_relaxed);
  atomic_store_explicit(&countdown, nth, memory_order_relaxed);
  return n;
}
