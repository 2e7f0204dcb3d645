/* Helpers shared by the validate programs: threads that fail the test when they cannot start, a per-thread random generator, and a stall check. */
#ifndef AXON_VALIDATE_H
#define AXON_VALIDATE_H

#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "axon_test.h"

/* Fails the test with a message when cond is false, and costs nothing
 * more than the test when it is true.  Check's own ck_assert_* record every
 * passing assertion too, through a mutex and a write to a pipe: in a loop
 * of millions that is slow, and under ThreadSanitizer the mutex orders the
 * threads that assert and hides the races these tests look for.  So every
 * check inside a loop, or on a thread other than the test's, uses this. */
#define VALIDATE_CHECK(cond, ...)                                                           \
  do {                                                                                      \
    if (!(cond))                                                                            \
      ck_abort_msg(__VA_ARGS__);                                                            \
  } while (0)

/* Starts a thread running fn(arg) and fails the test if it cannot. */
static inline void validate_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg) {
  int rc = pthread_create(thread, NULL, fn, arg);
  ck_assert_msg(rc == 0, "pthread_create: %s", strerror(rc));
}

/* Waits for a thread started by validate_thread_start. */
static inline void validate_thread_join(pthread_t thread) {
  int rc = pthread_join(thread, NULL);
  ck_assert_msg(rc == 0, "pthread_join: %s", strerror(rc));
}

/* Zeroed memory aligned for structs that hold alignas(64) fields (tables,
 * epochs), which calloc does not promise; fails the test when out of
 * memory.  Give it back with free(). */
static inline void *validate_zalloc(size_t size) {
  size_t align = 64;
  void *p = aligned_alloc(align, (size + align - 1) & ~(align - 1));
  ck_assert_ptr_nonnull(p);
  memset(p, 0, size);
  return p;
}

/* A xorshift64 generator, one per thread: cheap, and needs no lock. */
typedef struct validate_rng {
  uint64_t s;
} validate_rng_t;

static inline validate_rng_t validate_rng_new(uint64_t seed) {
  validate_rng_t r = {seed * 0x9e3779b97f4a7c15ull + 1};
  return r;
}

static inline uint64_t validate_rng_next(validate_rng_t *r) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return r->s;
}

/* A number in [0, n). */
static inline uint32_t validate_rng_below(validate_rng_t *r, uint32_t n) {
  return (uint32_t)(validate_rng_next(r) % n);
}

/* Gives the CPU away every 64th call: a spinning thread on a small machine
 * lets the thread it waits for (a producer between its two steps) run. */
static inline void validate_backoff(uint64_t *spins) {
  if ((++*spins & 63) == 0)
    sched_yield();
}

/* How long a validate test lets a thread wait for something that must
 * happen before it calls it lost: generous, for sanitizers on loaded CI. */
#define VALIDATE_STALL_NS (10 * AX_NSEC_PER_SEC)

#endif /* AXON_VALIDATE_H */
