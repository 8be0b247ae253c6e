/*
 * void rt_ctx_switch_sp(void **save_sp, void *load_sp)   (AAPCS64)
 *
 * Saves x19-x30, d8-d15 and FPCR in a 176-byte frame on the current stack,
 * stores sp in *save_sp, loads load_sp and restores the same frame from
 * there, returning through the restored x30.  Frame layout (offsets from
 * the saved sp): x19..x30 at 0..88, d8..d15 at 96..152, fpcr at 160.
 * ctx.c builds that frame for a new context with x30 = rt_ctx_start.
 */
#if defined(__aarch64__)
    .text
    .globl rt_ctx_switch_sp
    .hidden rt_ctx_switch_sp
    .type rt_ctx_switch_sp, %function
    .p2align 4
rt_ctx_switch_sp:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    mov sp, x1
    ldr x9, [sp, #160]
    msr fpcr, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size rt_ctx_switch_sp, .-rt_ctx_switch_sp

/* First code of a new context: x19 = fn, x20 = arg.  fn never returns. */
    .globl rt_ctx_start
    .hidden rt_ctx_start
    .type rt_ctx_start, %function
    .p2align 4
rt_ctx_start:
    mov x29, #0
    mov x0, x20
    blr x19
    brk #0
    .size rt_ctx_start, .-rt_ctx_start
#endif
    .section .note.GNU-stack,"",%progbits
