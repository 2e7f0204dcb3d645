/* Execution contexts: a stack and its saved registers, and the switch between two of them. */
#ifndef AXON_RUNTIME_CONTEXT_H
#define AXON_RUNTIME_CONTEXT_H

#include <stddef.h>

/*
 * A context is somewhere to resume: a stack pointer at which the
 * callee-saved registers of a suspended ax__ctx_switch were pushed.  The
 * switch saves the caller's callee-saved registers (and, on x86-64, the
 * MXCSR and the x87 control word; on aarch64 d8-d15) on its own stack,
 * stores the stack pointer in *from, loads to's and returns into to.  It is
 * hand-written for x86-64 (context_x86_64.S) and aarch64
 * (context_aarch64.S); elsewhere, or with -DAXON_CONTEXT=ucontext, the
 * ucontext functions do the same (context_ucontext.c), slower (they save
 * the signal mask with a system call).
 *
 * The switch knows nothing of sanitizers: the caller tells AddressSanitizer
 * and ThreadSanitizer about every switch (runtime/stack.c does).
 */
#if defined(AX_CONTEXT_UCONTEXT)
#include <ucontext.h>
typedef struct ax__ctx {
  ucontext_t uc;
} ax__ctx_t;
#else
typedef struct ax__ctx {
  void *sp; /* where the suspended context's registers were pushed */
} ax__ctx_t;
#endif

/* Makes ctx start entry(arg) on the stack [base, base + size) at its first
 * switch.  entry must never return (switch away for good instead). */
void ax__ctx_make(ax__ctx_t *ctx, void *base, size_t size, void (*entry)(void *arg), void *arg);

/* Suspends the caller into *from and resumes `to`; returns when something
 * switches back to *from.  from and to may live anywhere (the caller's
 * stack included) until the switch back to them. */
void ax__ctx_switch(ax__ctx_t *from, ax__ctx_t *to);

#endif /* AXON_RUNTIME_CONTEXT_H */
