/* Coroutines: guarded stacks and their per-thread cache, the overflow report, the census, sanitizer-aware switches. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

#include "io/alloc.h"
#include "runtime/coro.h"

/* Valgrind is told where each stack is (its client requests cost a few
 * instructions when the program does not run under it). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define AX__VALGRIND 1
#endif
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13: guard pages that split no mapping */
#endif

/* Freed stacks of the default size kept per thread for the next coroutine
 * (a spawn then costs no system call), at most this many. */
#define AX__STACK_CACHE 256u
/* A thread whose cache is empty maps this many default-size stacks in one
 * mmap, and one that frees past a full cache unmaps them this many at a
 * time, adjacent ones in one munmap: each munmap makes every CPU that runs
 * the process flush its TLB (an interrupt to each, a VM exit on a VM), and
 * each mmap or munmap takes the process's mapping lock for writing.  At
 * 10^5 fibers that was 18 us a spawn and 39 us a stop (a reviewer). */
#define AX__STACK_BATCH 32u
#define AX__STACK_UNMAP 64u
/* The alternate signal stack that reports an overflow. */
#define AX__ALTSTACK_SIZE ((size_t)64 * 1024)

/* What every thread that runs coroutines keeps: its cache of free stacks,
 * its alternate signal stack, the coroutine it runs now.  Freed when the
 * thread exits (the key's destructor). */
typedef struct stack_span {
  unsigned char *map;
  size_t size; /* with its guard */
} stack_span_t;

typedef struct thread_state {
  unsigned char *cache[AX__STACK_CACHE];
  unsigned ncache;
  stack_span_t unmap[AX__STACK_UNMAP]; /* freed stacks the cache had no room for */
  unsigned nunmap;
  void *altstack;   /* the alternate signal stack axon gave it, or NULL */
  bool registered; /* the key holds this state (its destructor will run) */
} thread_state_t;

static __thread thread_state_t *tls_state;
__thread ax__coro_t *ax__coro_tls_current __attribute__((tls_model("initial-exec")));
__thread bool ax__coro_tls_ready __attribute__((tls_model("initial-exec")));

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static size_t page_size;
/* The guard below each stack: 64 KiB (16 pages), address space only, so
 * that a frame up to that much larger than what is left of the stack (a
 * local array) faults in it, instead of writing past a one-page guard
 * into the stack mapped below, another fiber's (a reviewer: a 96 KiB
 * array on a 64 KiB stack returned normally). */
static size_t guard_size;
static bool census;        /* AXON_FIBER_CENSUS=1 */
static bool guard_advise;  /* MADV_GUARD_INSTALL works here */
static struct sigaction old_segv;

/* ------------------------------------------------------------------------ */
/* The overflow report                                                       */

/* Formats v in base `base` at the end of buf; returns where it starts.
 * Async-signal-safe (no stdio in a signal handler). */
static char *fmt_u64(char *end, uint64_t v, unsigned base) {
  *--end = '\0';
  do {
    *--end = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  return end;
}

/* Appends s to the line being built at *at, within end.  Async-signal-
 * safe. */
static void put(char **at, const char *end, const char *s) {
  size_t n = strlen(s), room = (size_t)(end - *at);
  n = n < room ? n : room;
  memcpy(*at, s, n);
  *at += n;
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
  ax__coro_t *co = ax__coro_tls_current;
  unsigned char *addr = si->si_addr;
  /* A fault in the guard, or just below it (a large frame jumps
   * over part of it), while a coroutine runs: its stack overflowed. */
  if (co != NULL && addr + 65536 >= co->map && addr < co->map + guard_size) {
    /* One write, so that reports from two cores do not interleave. */
    char a[24], b[24], line[160], *at = line;
    const char *end = line + sizeof line;
    put(&at, end, "axon: fiber ");
    put(&at, end, fmt_u64(a + sizeof a, co->label, 16));
    put(&at, end, " overflowed its stack of ");
    put(&at, end, fmt_u64(b + sizeof b, co->size, 10));
    put(&at, end, " bytes (give it more: ax_fiber_opts_t.stack_size)\n");
    ssize_t rc = write(STDERR_FILENO, line, (size_t)(at - line));
    (void)rc;
    abort();
  }
  /* Not ours: whatever handled SIGSEGV before (a sanitizer's, the
   * program's), or the default action once the fault repeats. */
  if ((old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_sigaction != NULL) {
    old_segv.sa_sigaction(sig, si, uc);
  } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
    old_segv.sa_handler(sig);
  } else {
    signal(sig, SIG_DFL);
  }
}

static int span_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const stack_span_t *)a)->map;
  uintptr_t y = (uintptr_t)((const stack_span_t *)b)->map;
  return x < y ? -1 : x > y;
}

/* Unmaps the stacks waiting in ts->unmap, each run of adjacent ones with
 * one munmap (stacks mapped together, or one after the other, lie next
 * to each other: mmap hands out addresses downwards). */
static void unmap_flush(thread_state_t *ts) {
  qsort(ts->unmap, ts->nunmap, sizeof ts->unmap[0], span_cmp);
  for (unsigned i = 0; i < ts->nunmap;) {
    unsigned char *start = ts->unmap[i].map;
    size_t len = ts->unmap[i].size;
    for (i++; i < ts->nunmap && ts->unmap[i].map == start + len; i++)
      len += ts->unmap[i].size;
    munmap(start, len);
  }
  ts->nunmap = 0;
}

/* Unmaps a stack, batched with the next ones the thread frees. */
static void unmap_later(thread_state_t *ts, unsigned char *map, size_t size) {
  if (ts->nunmap == AX__STACK_UNMAP)
    unmap_flush(ts);
  ts->unmap[ts->nunmap++] = (stack_span_t){map, size};
}

static void thread_state_free(void *p) {
  thread_state_t *ts = p;
  size_t map = AX__STACK_DEFAULT + guard_size;
  for (unsigned i = 0; i < ts->ncache; i++)
    unmap_later(ts, ts->cache[i], map);
  unmap_flush(ts);
  if (ts->altstack != NULL) {
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    munmap(ts->altstack, AX__ALTSTACK_SIZE);
  }
  free(ts);
  tls_state = NULL;
  ax__coro_tls_ready = false;
}

static void init_once(void) {
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  guard_size = ((size_t)64 * 1024 + page_size - 1) & ~(page_size - 1);
  const char *c = getenv("AXON_FIBER_CENSUS");
  census = c != NULL && c[0] == '1';
  (void)pthread_key_create(&key, thread_state_free);
  /* Probe the guard that needs no second mapping per stack. */
  void *p = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    guard_advise = madvise(p, page_size, MADV_GUARD_INSTALL) == 0;
    munmap(p, 2 * page_size);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
}

/* The calling thread's state, made on first use; NULL when out of memory. */
static thread_state_t *thread_state(void) {
  thread_state_t *ts = tls_state;
  if (ts != NULL)
    return ts;
  ts = ax__calloc(1, sizeof *ts);
  if (ts == NULL)
    return NULL;
  ts->registered = pthread_setspecific(key, ts) == 0;
  tls_state = ts;
  return ts;
}

/* Gives the calling thread an alternate signal stack (unless it has one
 * of its own, which it keeps), so that an overflow can be reported: the
 * overflowing stack has no room left for the handler.  Once per thread
 * (ax__coro_thread_ready). */
static void thread_altstack(thread_state_t *ts) {
  stack_t cur;
  if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
    return;
  void *p = mmap(NULL, AX__ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  if (p == MAP_FAILED)
    return; /* no report then, but the guard page still stops the overflow */
  stack_t ss = {.ss_sp = p, .ss_size = AX__ALTSTACK_SIZE};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(p, AX__ALTSTACK_SIZE);
    return;
  }
  ts->altstack = p;
}

/* ------------------------------------------------------------------------ */
/* Stacks                                                                    */

/* Maps n stacks of `map` bytes each (its guard included) in one
 * piece, each with its guard at its low end.  NULL when out of
 * memory or mappings. */
static unsigned char *stack_map(size_t map, unsigned n) {
  unsigned char *p = mmap(NULL, map * n, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  /* The guard: MADV_GUARD_INSTALL keeps the mapping whole (adjacent
   * stacks merge into one mapping, so vm.max_map_count does not cap the
   * number of fibers); mprotect splits it in two. */
  for (unsigned i = 0; i < n; i++) {
    unsigned char *g = p + (size_t)i * map;
    if (guard_advise ? madvise(g, guard_size, MADV_GUARD_INSTALL) != 0
                     : mprotect(g, guard_size, PROT_NONE) != 0) {
      munmap(p, map * n);
      return NULL;
    }
  }
  return p;
}

/* A stack of the default size: from the thread's cache, which an empty
 * cache first refills with a batch mapped in one piece (one stack alone
 * when the batch cannot be had). */
static unsigned char *stack_default(thread_state_t *ts, size_t map) {
  if (ts->ncache == 0) {
    unsigned char *p = stack_map(map, AX__STACK_BATCH);
    if (p == NULL)
      return stack_map(map, 1);
    /* Highest first in the cache, so that the lowest goes out first and
     * stacks taken one after the other lie in address order. */
    for (unsigned i = AX__STACK_BATCH; i-- > 1;)
      ts->cache[ts->ncache++] = p + (size_t)i * map;
    return p;
  }
  return ts->cache[--ts->ncache];
}

/* The lowest byte of the stack [base, top) ever written: fresh pages are
 * zero, and the census never reuses a stack. */
static size_t stack_used(const unsigned char *base, const unsigned char *top) {
  const unsigned char *p = base;
  while (p < top && *p == 0)
    p++;
  return (size_t)(top - p);
}

int ax__coro_init(ax__coro_t *co, size_t size, void (*entry)(void *arg), void *arg) {
  pthread_once(&once, init_once);
  if (size == 0)
    size = AX__STACK_DEFAULT;
  if (size < AX__STACK_MIN || size > AX__STACK_MAX)
    return -EINVAL;
  size = (size + page_size - 1) & ~(page_size - 1);
  memset(co, 0, sizeof *co);
  co->size = size;
  co->map_size = size + guard_size;
  thread_state_t *ts = thread_state();
  if (ts != NULL && ts->registered && size == AX__STACK_DEFAULT && !census)
    co->map = stack_default(ts, co->map_size);
  else
    co->map = stack_map(co->map_size, 1);
  if (co->map == NULL)
    return -ENOMEM;
#if defined(__SANITIZE_ADDRESS__)
  /* A stack used before may still hold a dead fiber's poisoned frames. */
  ASAN_UNPOISON_MEMORY_REGION(co->map + guard_size, size);
#endif
  ax__ctx_make(&co->ctx, co->map + guard_size, size, entry, arg);
#if defined(AX__VALGRIND)
  co->vg_id = VALGRIND_STACK_REGISTER(co->map + guard_size, co->map + co->map_size);
#endif
#if defined(__SANITIZE_THREAD__)
  co->tsan_fiber = __tsan_create_fiber(0);
#endif
  return 0;
}

void ax__coro_free(ax__coro_t *co) {
  if (co->map == NULL)
    return;
#if defined(__SANITIZE_THREAD__)
  __tsan_destroy_fiber(co->tsan_fiber);
#endif
#if defined(AX__VALGRIND)
  VALGRIND_STACK_DEREGISTER(co->vg_id);
#endif
  if (census) {
    char a[24], b[24], c[24], line[160], *at = line;
    const char *end = line + sizeof line;
    size_t used = stack_used(co->map + guard_size, co->map + co->map_size);
    put(&at, end, "axon: fiber census: ");
    put(&at, end, fmt_u64(a + sizeof a, co->label, 16));
    put(&at, end, " used ");
    put(&at, end, fmt_u64(b + sizeof b, used, 10));
    put(&at, end, " of ");
    put(&at, end, fmt_u64(c + sizeof c, co->size, 10));
    put(&at, end, " bytes of stack\n");
    ssize_t rc = write(STDERR_FILENO, line, (size_t)(at - line));
    (void)rc;
  }
  thread_state_t *ts = tls_state;
  if (ts == NULL || !ts->registered || census)
    munmap(co->map, co->map_size);
  else if (co->size == AX__STACK_DEFAULT && ts->ncache < AX__STACK_CACHE)
    ts->cache[ts->ncache++] = co->map;
  else
    unmap_later(ts, co->map, co->map_size);
  co->map = NULL;
}

void ax__coro_cache_trim(void) {
  thread_state_t *ts = tls_state;
  if (ts == NULL)
    return;
  /* Above each cached stack's guard: its pages go back to the kernel
   * and come back zeroed when the stack is used again; the mapping and the
   * guard stay. */
  for (unsigned i = 0; i < ts->ncache; i++)
    (void)madvise(ts->cache[i] + guard_size, AX__STACK_DEFAULT, MADV_DONTNEED);
  unmap_flush(ts); /* the freed stacks that wait for a batch go now */
}

size_t ax__coro_trim(ax__coro_t *co) {
#if defined(AX_CONTEXT_UCONTEXT)
  (void)co;
  return 0;
#else
  if (co->map == NULL || census)
    return 0;
  /* Nothing below the saved stack pointer is live: the switch pushed the
   * suspended side's registers above it.  The 128 bytes under it (the
   * x86-64 red zone) are kept all the same. */
  uintptr_t lo = (uintptr_t)co->map + guard_size;
  uintptr_t end = ((uintptr_t)co->ctx.sp - 128) & ~(uintptr_t)(page_size - 1);
  if (end <= lo)
    return 0;
  (void)madvise((void *)lo, end - lo, MADV_DONTNEED); /* advice: the mapping stays valid */
  return end - lo;
#endif
}

/* ------------------------------------------------------------------------ */
/* Switching                                                                 */

void ax__coro_thread_ready(void) {
  thread_state_t *ts = thread_state();
  if (ts == NULL)
    return; /* no report then, but the guard page still stops an overflow */
  thread_altstack(ts);
  ax__coro_tls_ready = true;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
ax__coro_t *ax__coro_current(void) { return ax__coro_tls_current; }

/* Inside co, just after a switch into it: tell the sanitizers where the
 * resumer's stack is (ASan needs it for the switch back). */
static inline void landed(ax__coro_t *co) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(co->asan_fake, &co->caller_bottom, &co->caller_size);
#else
  (void)co;
#endif
}

void ax__coro_resume(ax__coro_t *co) {
  if (!ax__coro_tls_ready)
    ax__coro_thread_ready();
  ax__coro_t *prev = ax__coro_tls_current; /* NULL: the scheduler resumes */
  ax__coro_tls_current = co;
#if defined(__SANITIZE_ADDRESS__)
  void *fake = NULL;
  __sanitizer_start_switch_fiber(&fake, co->map + guard_size, co->size);
#endif
#if defined(__SANITIZE_THREAD__)
  co->tsan_caller = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(co->tsan_fiber, 0);
#endif
  ax__ctx_switch(&co->caller, &co->ctx);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
  ax__coro_tls_current = prev;
}

void ax__coro_suspend(ax__coro_t *co) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(&co->asan_fake, co->caller_bottom, co->caller_size);
#endif
#if defined(__SANITIZE_THREAD__)
  __tsan_switch_to_fiber(co->tsan_caller, 0);
#endif
  ax__ctx_switch(&co->ctx, &co->caller);
  landed(co);
}
#else
static inline void landed(ax__coro_t *co) { (void)co; }
#endif

void ax__coro_exit(ax__coro_t *co) {
#if defined(__SANITIZE_ADDRESS__)
  /* NULL: the fake stack of this coroutine is destroyed. */
  __sanitizer_start_switch_fiber(NULL, co->caller_bottom, co->caller_size);
#endif
#if defined(__SANITIZE_THREAD__)
  __tsan_switch_to_fiber(co->tsan_caller, 0);
#endif
  /* Its own context as the place to save into: never resumed, and no
   * local of a frame that never returns (ASan would leave it poisoned in
   * a stack the cache hands out again). */
  ax__ctx_switch(&co->ctx, &co->caller);
  __builtin_unreachable();
}

/* The first code a coroutine runs: ax__coro_enter(co) must be called by
 * the entry function before anything else (it tells the sanitizers). */
void ax__coro_enter(ax__coro_t *co) { landed(co); }
