/* The library's allocation calls: one place, so a fault-injection build can make chosen ones fail. */
#ifndef AXON_IO_ALLOC_H
#define AXON_IO_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "axon/common.h"

/*
 * Every allocation axon makes goes through ax__malloc, ax__calloc,
 * ax__realloc or ax__aligned_alloc (free stays free).  In a normal build
 * they are the libc calls, inlined.  Built with AXON_FAULT_INJECTION=ON
 * (CMake; defines AX_FAULT_INJECTION), each first asks ax__alloc_fails(),
 * which a test arms with ax__fault_alloc() to make the n-th allocation
 * from now fail (and optionally every k-th one after it), the way SQLite's
 * test builds exercise their out-of-memory paths.
 */
#ifdef AX_FAULT_INJECTION
bool ax__alloc_fails(void);

/* Arms fault injection: allocation number nth (1 = the next one, counted
 * over every thread) fails; with every > 0, so does every every-th one
 * after it.  nth 0 disarms.  Returns how many allocations failed since the
 * previous call.  Any thread.  Only in AXON_FAULT_INJECTION builds (tests
 * declare it themselves). */
AX_API uint64_t ax__fault_alloc(uint64_t nth, uint64_t every);
#else
static inline bool ax__alloc_fails(void) { return false; }
#endif

static inline void *ax__malloc(size_t n) { return ax__alloc_fails() ? NULL : malloc(n); }

static inline void *ax__calloc(size_t n, size_t size) {
  return ax__alloc_fails() ? NULL : calloc(n, size);
}

/* On failure p is left as it was (as realloc does). */
static inline void *ax__realloc(void *p, size_t n) {
  return ax__alloc_fails() ? NULL : realloc(p, n);
}

static inline void *ax__aligned_alloc(size_t align, size_t n) {
  return ax__alloc_fails() ? NULL : aligned_alloc(align, n);
}

#endif /* AXON_IO_ALLOC_H */
