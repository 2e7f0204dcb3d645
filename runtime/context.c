/* Making a context that has never run: the first frame the hand-written switches pop. */
#include <stdint.h>
#include <string.h>

#include "runtime/context.h"

#if !defined(AX_CONTEXT_UCONTEXT) && (defined(__x86_64__) || defined(__aarch64__))

void ax__ctx_start(void); /* context_*.S: where a new context begins */

void ax__ctx_make(ax__ctx_t *ctx, void *base, size_t size, void (*entry)(void *arg), void *arg) {
  uintptr_t top = ((uintptr_t)base + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
  /* From the saved stack pointer up: MXCSR and the x87 control word (the
   * calling thread's, so a fiber starts with the thread's rounding and
   * exception masks), r15, r14, r13, r12 (entry), rbx, rbp, the address
   * the switch resumes at.  Popping the 64 bytes leaves the stack pointer
   * 16-byte aligned at ax__ctx_start, as its call needs. */
  uint64_t *sp = (uint64_t *)(top - 64 - 16);
  uint32_t mxcsr;
  uint16_t fpucw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fpucw));
  memset(sp, 0, 64);
  memcpy(sp, &mxcsr, sizeof mxcsr);
  memcpy((char *)sp + 4, &fpucw, sizeof fpucw);
  sp[4] = (uint64_t)(uintptr_t)entry; /* r12 */
  sp[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
  sp[7] = (uint64_t)(uintptr_t)ax__ctx_start;
#else
  /* 160 bytes from the saved stack pointer: x19..x28, x29, x30, d8..d15.
   * x19 holds entry, x20 its argument, x30 (where the switch returns)
   * ax__ctx_start. */
  uint64_t *sp = (uint64_t *)(top - 160);
  memset(sp, 0, 160);
  sp[0] = (uint64_t)(uintptr_t)entry;
  sp[1] = (uint64_t)(uintptr_t)arg;
  sp[11] = (uint64_t)(uintptr_t)ax__ctx_start;
#endif
  ctx->sp = sp;
}

#endif
