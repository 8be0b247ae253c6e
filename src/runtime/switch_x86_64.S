/*
 * void rt_ctx_switch_sp(void **save_sp, void *load_sp)   (x86-64 System V)
 *
 * Pushes the callee-saved registers and the MXCSR / x87 control words on
 * the current stack, stores the stack pointer in *save_sp, then loads
 * load_sp and pops the same frame from there.  The frame is, from the
 * saved stack pointer upwards: mxcsr (4 bytes), x87 cw (2), pad (2),
 * r15, r14, r13, r12, rbx, rbp, return address.  ctx.c builds that frame
 * for a new context with rt_ctx_start as the return address.
 */
#if defined(__x86_64__)
    .text
    .globl rt_ctx_switch_sp
    .hidden rt_ctx_switch_sp
    .type rt_ctx_switch_sp, @function
    .p2align 4
rt_ctx_switch_sp:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size rt_ctx_switch_sp, .-rt_ctx_switch_sp

/* First code of a new context: r13 = fn, r12 = arg (loaded from the
 * initial frame); the stack is 16-byte aligned here.  fn never returns. */
    .globl rt_ctx_start
    .hidden rt_ctx_start
    .type rt_ctx_start, @function
    .p2align 4
rt_ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size rt_ctx_start, .-rt_ctx_start
#endif
    .section .note.GNU-stack,"",@progbits
