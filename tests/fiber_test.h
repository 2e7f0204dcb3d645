/* Helpers shared by the fiber suites: a fib_t that records a fiber's first failed check, FCHECK macros, spawning and waiting. */
#ifndef AXON_FIBER_TEST_H
#define AXON_FIBER_TEST_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "axon_test.h"

/*
 * Fibers run their checks on their own stacks, on core threads, where a
 * failed ck_assert would not end the test cleanly: they record the first
 * failed check (line and text) in their fib_t, which the test thread reads
 * once the fiber's terminate hook has run, and asserts on there.  Every
 * fiber's argument (its state) starts with a fib_t, so that one terminate
 * hook (fib_terminate) serves them all.
 */

#define SEC (AX_NSEC_PER_SEC)
#define MSEC (AX_NSEC_PER_MSEC)
/* What should succeed gets this long (sanitizer builds are slow). */
#define LONG_WAIT (10 * SEC)

typedef struct fib {
  atomic_int terminated; /* terminate hook runs */
  atomic_int reason;     /* its reason */
  atomic_int ran;        /* the function started */
  atomic_int phase;      /* the fiber's progress, for the test thread to pace on */
  atomic_int fails;      /* failed checks */
  char what[320];        /* the first one */
} fib_t;

static inline void fib_init(fib_t *f) {
  memset(f, 0, sizeof *f);
  atomic_init(&f->reason, 12345);
}

static inline void fib_fail(fib_t *f, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void fib_fail(fib_t *f, int line, const char *fmt, ...) {
  if (atomic_fetch_add(&f->fails, 1) != 0)
    return;
  int n = snprintf(f->what, sizeof f->what, "line %d: ", line);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->what + n, sizeof f->what - (size_t)n, fmt, ap);
  va_end(ap);
}

/* A check inside a fiber or an actor. */
#define FCHECK(f, cond)                                                                   \
  do {                                                                                    \
    if (!(cond))                                                                          \
      fib_fail((f), __LINE__, "%s", #cond);                                               \
  } while (0)

/* A result check inside a fiber or an actor: expr must equal want. */
#define FCHECK_EQ(f, expr, want)                                                          \
  do {                                                                                    \
    long got_ = (long)(expr);                                                             \
    long want_ = (long)(want);                                                            \
    if (got_ != want_)                                                                    \
      fib_fail((f), __LINE__, "%s = %ld (%s), want %ld (%s)", #expr, got_,                \
               ax_strerror((int)got_), want_, ax_strerror((int)want_));                   \
  } while (0)

static inline void fib_terminate(ax_actor_t *self, int reason) {
  fib_t *f = ax_state(self);
  atomic_store(&f->reason, reason);
  atomic_fetch_add(&f->terminated, 1);
}

/* Fiber options: placed on core `core`, with fib_terminate. */
static inline ax_fiber_opts_t fib_core_opts(unsigned core) {
  ax_fiber_opts_t o;
  memset(&o, 0, sizeof o);
  o.placement = AX_PLACE_CORE;
  o.core = core;
  o.terminate = fib_terminate;
  return o;
}

/* Spawns a fiber whose arg starts with a fib_t, on core `core`, with
 * fib_terminate (stack_size 0: the default); fails the test if that does
 * not work. */
static inline ax_ref_t spawn_fiber(ax_rt_t *rt, ax_fiber_fn fn, fib_t *arg, unsigned core,
                                   size_t stack_size) {
  ax_fiber_opts_t o = fib_core_opts(core);
  o.stack_size = stack_size;
  ax_ref_t ref = AX_REF_NONE;
  int rc = ax_spawn_fiber(rt, fn, arg, &o, &ref);
  ck_assert_msg(rc == 0, "ax_spawn_fiber: %s", ax_strerror(rc));
  ck_assert_msg(ref != AX_REF_NONE, "ax_spawn_fiber stored AX_REF_NONE");
  return ref;
}

/* Waits for the fiber's terminate hook, then fails the test with the
 * fiber's first failed check, if any. */
static inline void fib_wait(fib_t *f, int timeout_ms) {
  TEST_WAIT_UNTIL(atomic_load(&f->terminated) >= 1, timeout_ms);
  ck_assert_int_eq(atomic_load(&f->terminated), 1);
  ck_assert_msg(atomic_load(&f->fails) == 0, "fiber: %d failed check(s), first %s",
                atomic_load(&f->fails), f->what);
}

/* The fiber's first failed check, if any (after its end). */
static inline void fib_assert_clean(fib_t *f) {
  ck_assert_msg(atomic_load(&f->fails) == 0, "%d failed check(s), first %s",
                atomic_load(&f->fails), f->what);
}

/* Waits until the fiber reached phase p (it sets it just before waiting). */
static inline void wait_phase(fib_t *f, int p) {
  TEST_WAIT_UNTIL(atomic_load(&f->phase) >= p || atomic_load(&f->terminated) != 0, 10000);
  ck_assert_msg(atomic_load(&f->phase) >= p, "the fiber ended before phase %d: %s", p,
                atomic_load(&f->fails) != 0 ? f->what : "(no failed check)");
}

/* A started two-core runtime kept alive without actors. */
static inline ax_rt_t *rt_new(void) {
  ax_rt_t *rt = test_rt_new(2, AX_RT_KEEP_ALIVE);
  test_rt_start(rt);
  return rt;
}

#endif
