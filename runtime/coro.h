/* Coroutines: a context on a guarded stack of its own, resumed and suspended by one thread at a time. */
#ifndef AXON_RUNTIME_CORO_H
#define AXON_RUNTIME_CORO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/context.h"

/*
 * A coroutine runs entry(arg) on a stack of its own.  Whoever resumes it
 * (the resumer: a core's scheduler, on the core's own stack) waits inside
 * ax__coro_resume until the coroutine suspends or exits; then resume
 * returns.  One thread at a time uses a coroutine, but a suspended one may
 * be resumed by another thread later (each switch publishes what the
 * previous one wrote, as the caller orders the hand-over).
 *
 * Stacks (stack.c): mmap'd, their lowest page a PROT_NONE guard, only the
 * pages touched resident; freed stacks of the default size are cached per
 * thread.  A write into the guard page (a stack overflow) is caught on an
 * alternate signal stack and reported with the coroutine's label and stack
 * size before the process aborts.  With AXON_FIBER_CENSUS=1 in the
 * environment, every stack freed reports the most of it that was used.
 *
 * AddressSanitizer and ThreadSanitizer are told of every switch, so the
 * sanitizer builds follow the program across stacks.
 */
typedef struct ax__coro {
  ax__ctx_t ctx;    /* the coroutine, while suspended */
  ax__ctx_t caller; /* the resumer, while the coroutine runs */
  unsigned char *map; /* the mapping: guard page, then the stack */
  size_t map_size;
  size_t size;      /* usable stack bytes (map_size less the guard page) */
  uint64_t label;   /* reported with an overflow (the fiber's reference) */
  unsigned vg_id;   /* the stack's id for Valgrind, when built with its header */
#if defined(__SANITIZE_ADDRESS__)
  void *asan_fake;          /* the suspended side's fake stack */
  const void *caller_bottom; /* the resumer's stack, for the switch back */
  size_t caller_size;
#endif
#if defined(__SANITIZE_THREAD__)
  void *tsan_fiber, *tsan_caller;
#endif
} ax__coro_t;

/* The default stack size (usable bytes, the guard page not counted):
 * see docs/fibers.md for how it was chosen. */
#define AX__STACK_DEFAULT ((size_t)64 * 1024)
/* The smallest and largest stacks accepted. */
#define AX__STACK_MIN ((size_t)16 * 1024)
#define AX__STACK_MAX ((size_t)1 << 30)

/* Makes co ready to run entry(arg) on a fresh stack of `size` usable
 * bytes (0: the default; rounded up to whole pages).  Returns 0, -EINVAL
 * (size out of range), -ENOMEM (no memory or too many mappings: see
 * vm.max_map_count).  Any thread. */
int ax__coro_init(ax__coro_t *co, size_t size, void (*entry)(void *arg), void *arg);

/* Frees the stack of a coroutine that exited or never ran (to the calling
 * thread's cache when it has the default size).  Never while it runs. */
void ax__coro_free(ax__coro_t *co);

/* Gives the pages of the calling thread's cached free stacks back to the
 * kernel, keeping the stacks (a core that has been idle after a burst of
 * fibers).  Any thread, for its own cache. */
void ax__coro_cache_trim(void);

/* Gives back to the kernel the pages of a suspended coroutine's stack that
 * lie wholly below the frames it is suspended in: pages that a deeper call
 * touched earlier stay resident otherwise, so a fiber that once went deep
 * would keep that memory while it waits.  They come back zeroed if it goes
 * that deep again.  Does nothing with the ucontext switch (no stack pointer
 * to read) or under AXON_FIBER_CENSUS (which reads how deep a stack went
 * from what is left in it).  Returns the bytes advised away, resident or
 * not.  Never while co runs; the thread that resumes co. */
size_t ax__coro_trim(ax__coro_t *co);

/* The calling thread's running coroutine, and whether the thread is ready
 * to run coroutines (its alternate signal stack is set up).  coro.c. */
extern __thread ax__coro_t *ax__coro_tls_current __attribute__((tls_model("initial-exec")));
extern __thread bool ax__coro_tls_ready __attribute__((tls_model("initial-exec")));
/* Makes the calling thread ready (once per thread). */
void ax__coro_thread_ready(void);

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* Inline where no sanitizer must be told: a message handed to a fiber
 * costs two switches, and every call returned through after a switch
 * costs a mispredicted return (measured: 5-10 ns each). */

/* Runs co until it suspends or exits.  Not from inside co. */
static inline void ax__coro_resume(ax__coro_t *co) {
  if (__builtin_expect(!ax__coro_tls_ready, 0))
    ax__coro_thread_ready();
  ax__coro_t *prev = ax__coro_tls_current; /* NULL: the scheduler resumes */
  ax__coro_tls_current = co;
  ax__ctx_switch(&co->caller, &co->ctx);
  ax__coro_tls_current = prev;
}

/* From inside co: back to its resumer, until resumed again. */
static inline void ax__coro_suspend(ax__coro_t *co) {
  ax__ctx_switch(&co->ctx, &co->caller);
}

/* The coroutine the calling thread runs now, or NULL on a thread's own
 * stack. */
static inline ax__coro_t *ax__coro_current(void) { return ax__coro_tls_current; }
#else
void ax__coro_resume(ax__coro_t *co);
void ax__coro_suspend(ax__coro_t *co);
ax__coro_t *ax__coro_current(void);
#endif

/* The first call of a coroutine's entry function, before anything else
 * (it tells AddressSanitizer where the resumer's stack is). */
void ax__coro_enter(ax__coro_t *co);

/* From inside co, its last switch: back to the resumer for good. */
__attribute__((noreturn)) void ax__coro_exit(ax__coro_t *co);

/* The usable bytes of co's stack. */
static inline size_t ax__coro_stack_size(const ax__coro_t *co) { return co->size; }

#endif /* AXON_RUNTIME_CORO_H */
