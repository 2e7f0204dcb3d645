/* The context switch for aarch64 (AAPCS64): x19-x30 and d8-d15. */
#if defined(__aarch64__) && !defined(AX_CONTEXT_UCONTEXT)

        .text

/* void ax__ctx_switch(ax__ctx_t *from, ax__ctx_t *to)
 * x0: from, x1: to.  The frame it leaves (160 bytes from the saved stack
 * pointer): x19..x28, x29 (frame pointer), x30 (where to resume), d8..d15.
 * ax__ctx_make (context.c) builds the same frame for a new context. */
        .globl  ax__ctx_switch
        .hidden ax__ctx_switch
        .type   ax__ctx_switch, %function
        .p2align 4
ax__ctx_switch:
        .cfi_startproc
        sub     sp, sp, #160
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #160
        ret
        .cfi_endproc
        .size   ax__ctx_switch, .-ax__ctx_switch

/* Where a new context starts: x19 holds the entry function, x20 its
 * argument.  entry never returns; brk stops the process if it did. */
        .globl  ax__ctx_start
        .hidden ax__ctx_start
        .type   ax__ctx_start, %function
        .p2align 4
ax__ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .size   ax__ctx_start, .-ax__ctx_start

#endif

        .section .note.GNU-stack,"",%progbits
