/* The smallest guest: no C library, only _start and raw syscalls. It checks the initial stack the
 * loader builds (rsp 16-byte aligned at entry, argc, argv strings, the NULL after argv, envp),
 * writes with write(2) and exits with exit_group(2) status 7. Position-independent, so the same
 * source links as ET_EXEC and as static-pie. */
//! arg: first
//! arg: second arg
//! env: GUEST_ONLY=1
//! variants: gcc-static gcc-static-pie

#define SYS_write 1
#define SYS_exit_group 231

    .text
    .globl _start
    .type _start, @function
_start:
    mov %rsp, %rbx              /* rbx = initial stack */
    lea hello(%rip), %rsi
    mov $hello_len, %edx
    call put

    /* "aligned N\n": N = 1 when rsp % 16 == 0 at entry */
    mov %rbx, %rax
    and $15, %eax
    sete %al
    movzbl %al, %eax
    lea aligned(%rip), %rsi
    mov $aligned_len, %edx
    call put_label_digit

    /* "argc N\n" (argc < 10 here) */
    mov (%rbx), %rax
    lea argc_msg(%rip), %rsi
    mov $argc_len, %edx
    call put_label_digit

    /* argv[1..argc-1], one per line, bracketed */
    mov $1, %r12
1:  cmp (%rbx), %r12
    jae 2f
    lea open_br(%rip), %rsi
    mov $1, %edx
    call put
    mov 8(%rbx,%r12,8), %rsi
    call strlen_rsi
    call put
    lea close_br(%rip), %rsi
    mov $2, %edx
    call put
    inc %r12
    jmp 1b

    /* argv[argc] == NULL, and envp is not empty (the harness sets GUEST_ONLY; ld-nc's own
     * LDNC_* knobs may be there too, so only "not empty" is deterministic) */
2:  mov (%rbx), %rcx
    cmpq $0, 8(%rbx,%rcx,8)
    sete %al
    movzbl %al, %eax
    lea argv_null(%rip), %rsi
    mov $argv_null_len, %edx
    call put_label_digit

    mov (%rbx), %rcx
    cmpq $0, 16(%rbx,%rcx,8)    /* envp[0] */
    setne %al
    movzbl %al, %eax
    lea envc(%rip), %rsi
    mov $envc_len, %edx
    call put_label_digit

    mov $SYS_exit_group, %eax
    mov $7, %edi
    syscall
    hlt

/* put: write(1, rsi, rdx) */
put:
    mov $SYS_write, %eax
    mov $1, %edi
    syscall
    ret

/* put_label_digit: writes the label (rsi, rdx), then the digit in al, then a newline */
put_label_digit:
    push %rax
    call put
    pop %rax
    add $'0', %al
    lea digit(%rip), %rsi
    mov %al, (%rsi)
    mov $2, %edx
    jmp put

/* strlen_rsi: rdx = strlen(rsi), keeps rsi */
strlen_rsi:
    xor %edx, %edx
5:  cmpb $0, (%rsi,%rdx)
    je 6f
    inc %rdx
    jmp 5b
6:  ret

    .section .rodata
hello:      .ascii "hello from _start\n"
    .set hello_len, . - hello
aligned:    .ascii "stack aligned at entry "
    .set aligned_len, . - aligned
argc_msg:   .ascii "argc "
    .set argc_len, . - argc_msg
argv_null:  .ascii "argv[argc] is NULL "
    .set argv_null_len, . - argv_null
envc:       .ascii "environment not empty "
    .set envc_len, . - envc
open_br:    .ascii "["
close_br:   .ascii "]\n"

    .data
digit:      .ascii "0\n"

    .section .note.GNU-stack, "", @progbits
