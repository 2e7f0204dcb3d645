/* The portable context switch: makecontext and swapcontext (slower: they save the signal mask with a system call). */
#include "runtime/context.h"

#if defined(AX_CONTEXT_UCONTEXT)
#include <stdint.h>
#include <stdlib.h>

/* makecontext passes int arguments only: the entry and its argument are
 * split into 32-bit halves. */
static void start(unsigned eh, unsigned el, unsigned ah, unsigned al) {
  void (*entry)(void *) = (void (*)(void *))(uintptr_t)(((uint64_t)eh << 32) | el);
  void *arg = (void *)(uintptr_t)(((uint64_t)ah << 32) | al);
  entry(arg);
  abort(); /* entry never returns */
}

void ax__ctx_make(ax__ctx_t *ctx, void *base, size_t size, void (*entry)(void *arg), void *arg) {
  uint64_t e = (uint64_t)(uintptr_t)entry, a = (uint64_t)(uintptr_t)arg;
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = base;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = NULL;
  makecontext(&ctx->uc, (void (*)(void))start, 4, (unsigned)(e >> 32), (unsigned)e,
              (unsigned)(a >> 32), (unsigned)a);
}

void ax__ctx_switch(ax__ctx_t *from, ax__ctx_t *to) { swapcontext(&from->uc, &to->uc); }
#else
typedef int ax__ctx_ucontext_unused; /* ISO C wants something in a file */
#endif
