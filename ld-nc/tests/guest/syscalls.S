/* A libc-free guest exercising ld-nc's syscall layer with integer-only code (so it runs on every
 * backend): legacy calls riscv64 lacks (open, stat, pipe, dup2, access, time), the x86_64 struct
 * stat layout, brk and mmap emulation, uname's machine, arch_prctl/FS-relative loads, /proc/self/exe,
 * and ENOSYS for an unknown number. Each check prints "NAME 1" (or "NAME 0"), then exit_group(0).
 * argv[1] must be a regular file of 4096 bytes. */

    .text
    .globl _start
_start:
    mov (%rsp), %r12            /* argc */
    mov 16(%rsp), %r13          /* argv[1] */
    lea 8(%rsp), %rax
    mov %r12, %rcx
    lea 8(%rax,%rcx,8), %r14    /* envp */

    /* open(argv[1], O_RDONLY) */
    mov $2, %eax
    mov %r13, %rdi
    xor %esi, %esi
    xor %edx, %edx
    syscall
    mov %rax, %r15              /* fd */
    cmp $0, %rax
    setge %al
    lea l_open(%rip), %rdi
    call check

    /* fstat(fd, statbuf): st_size (offset 48) == 4096, st_mode (offset 24) is S_IFREG */
    mov $5, %eax
    mov %r15, %rdi
    lea statbuf(%rip), %rsi
    syscall
    test %rax, %rax
    jne 1f
    lea statbuf(%rip), %rsi
    cmpq $4096, 48(%rsi)
    jne 1f
    mov 24(%rsi), %eax
    and $0170000, %eax
    cmp $0100000, %eax
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_fstat(%rip), %rdi
    call check

    /* stat(argv[1]) st_nlink (offset 16, 64-bit) == 1 and st_blksize (56) > 0 */
    lea statbuf(%rip), %rsi
    movq $0, 16(%rsi)
    mov $4, %eax
    mov %r13, %rdi
    syscall
    test %rax, %rax
    jne 1f
    lea statbuf(%rip), %rsi
    cmpq $1, 16(%rsi)
    jne 1f
    cmpq $0, 56(%rsi)
    jle 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_stat(%rip), %rdi
    call check

    /* lseek(fd, 0, SEEK_END) == 4096 */
    mov $8, %eax
    mov %r15, %rdi
    xor %esi, %esi
    mov $2, %edx
    syscall
    cmp $4096, %rax
    sete %al
    lea l_lseek(%rip), %rdi
    call check

    /* access(argv[1], R_OK) == 0 */
    mov $21, %eax
    mov %r13, %rdi
    mov $4, %esi
    syscall
    test %rax, %rax
    sete %al
    lea l_access(%rip), %rdi
    call check

    /* pipe(fds); write 3 bytes; read them back */
    mov $22, %eax
    lea fds(%rip), %rdi
    syscall
    test %rax, %rax
    jne 1f
    mov $1, %eax
    movslq fds+4(%rip), %rdi
    lea l_abc(%rip), %rsi
    mov $3, %edx
    syscall
    cmp $3, %rax
    jne 1f
    xor %eax, %eax
    movslq fds(%rip), %rdi
    lea buf(%rip), %rsi
    mov $16, %edx
    syscall
    cmp $3, %rax
    jne 1f
    cmpb $'c', buf+2(%rip)
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_pipe(%rip), %rdi
    call check

    /* epoll: the packed 12-byte x86_64 epoll_event in both directions */
    mov $291, %eax              /* epoll_create1(0) */
    xor %edi, %edi
    syscall
    mov %rax, %rbx
    test %rax, %rax
    js 1f
    lea buf(%rip), %r10
    movl $1, (%r10)             /* EPOLLIN */
    movabs $0x1122334455667788, %rax
    mov %rax, 4(%r10)
    mov $233, %eax              /* epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev) */
    mov %rbx, %rdi
    mov $1, %esi
    movslq fds(%rip), %rdx
    syscall
    test %rax, %rax
    jne 1f
    mov $1, %eax                /* write(fds[1], "a", 1) */
    movslq fds+4(%rip), %rdi
    lea l_abc(%rip), %rsi
    mov $1, %edx
    syscall
    lea buf(%rip), %rsi
    movq $0, (%rsi)
    movq $0, 8(%rsi)
    movq $0, 16(%rsi)
    mov $232, %eax              /* epoll_wait(ep, evs, 2, 0) */
    mov %rbx, %rdi
    mov $2, %edx
    xor %r10d, %r10d
    syscall
    cmp $1, %rax
    jne 1f
    lea buf(%rip), %rsi
    cmpl $1, (%rsi)
    jne 1f
    movabs $0x1122334455667788, %rax
    cmp 4(%rsi), %rax
    jne 1f
    cmpl $0, 12(%rsi)           /* nothing written past one 12-byte event */
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_epoll(%rip), %rdi
    call check

    /* dup2(fd, 100) == 100; dup2(100, 100) == 100 */
    mov $33, %eax
    mov %r15, %rdi
    mov $100, %esi
    syscall
    cmp $100, %rax
    jne 1f
    mov $33, %eax
    mov $100, %edi
    mov $100, %esi
    syscall
    cmp $100, %rax
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_dup2(%rip), %rdi
    call check

    /* brk(0), brk(cur + 8192), store at the new top */
    mov $12, %eax
    xor %edi, %edi
    syscall
    mov %rax, %rbx
    lea 8192(%rbx), %rdi
    mov $12, %eax
    syscall
    lea 8192(%rbx), %rcx
    cmp %rcx, %rax
    jne 1f
    movq $7, 8000(%rbx)
    cmpq $7, 8000(%rbx)
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_brk(%rip), %rdi
    call check

    /* mmap(0, 65536, RW, PRIVATE|ANON) ; write ; munmap */
    mov $9, %eax
    xor %edi, %edi
    mov $65536, %esi
    mov $3, %edx
    mov $0x22, %r10d
    mov $-1, %r8
    xor %r9d, %r9d
    syscall
    mov %rax, %rbx
    cmp $-4096, %rax
    jae 1f
    movq $5, 65528(%rbx)
    mov $11, %eax
    mov %rbx, %rdi
    mov $65536, %esi
    syscall
    test %rax, %rax
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_mmap(%rip), %rdi
    call check

    /* uname: machine (offset 4*65) is "x86_64" */
    mov $63, %eax
    lea utsname(%rip), %rdi
    syscall
    test %rax, %rax
    jne 1f
    lea utsname+260(%rip), %rsi
    cmpl $0x5f363878, (%rsi)     /* "x86_" */
    jne 1f
    cmpw $0x3436, 4(%rsi)        /* "64" */
    jne 1f
    cmpb $0, 6(%rsi)
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_uname(%rip), %rdi
    call check

    /* arch_prctl(ARCH_SET_FS, tls); mov %fs:8 reads tls[1]; ARCH_GET_FS gives it back */
    mov $158, %eax
    mov $0x1002, %edi
    lea tls(%rip), %rsi
    syscall
    test %rax, %rax
    jne 1f
    mov %fs:8, %rax
    cmp $0x1234, %rax
    jne 1f
    mov $158, %eax
    mov $0x1003, %edi
    lea buf(%rip), %rsi
    syscall
    lea tls(%rip), %rcx
    cmp buf(%rip), %rcx
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_fs(%rip), %rdi
    call check

    /* time(NULL) > 1e9 */
    mov $201, %eax
    xor %edi, %edi
    syscall
    cmp $1000000000, %rax
    setg %al
    lea l_time(%rip), %rdi
    call check

    /* readlink("/proc/self/exe") is this program (ends in "syscalls") */
    mov $89, %eax
    lea l_selfexe(%rip), %rdi
    lea buf(%rip), %rsi
    mov $256, %edx
    syscall
    cmp $8, %rax
    jl 1f
    lea buf(%rip), %rsi
    add %rax, %rsi
    cmpl $0x736c6c61, -4(%rsi)   /* "alls" */
    jne 1f
    mov $1, %eax
    jmp 2f
1:  xor %eax, %eax
2:  lea l_exe(%rip), %rdi
    call check

    /* fork: the child exits 5, wait4 sees it; vfork: the child exits 6 */
    mov $57, %eax
    call fork_and_wait
    cmp $5, %eax
    sete %al
    lea l_fork(%rip), %rdi
    call check
    mov $58, %eax
    call fork_and_wait
    cmp $6, %eax
    sete %al
    lea l_vfork(%rip), %rdi
    call check

    /* unknown syscall -> -ENOSYS */
    mov $499, %eax
    syscall
    cmp $-38, %rax
    sete %al
    lea l_enosys(%rip), %rdi
    call check

    mov $231, %eax
    xor %edi, %edi
    syscall
    hlt

/* fork_and_wait: eax = fork or vfork. The child exit()s with 5 (fork) or 6 (vfork); returns
 * the child's exit status, or -1. */
fork_and_wait:
    mov %eax, %ebx
    syscall
    test %rax, %rax
    js 9f
    jnz 8f
    lea -52(%rbx), %edi         /* 57 -> 5, 58 -> 6 */
    mov $60, %eax
    syscall
8:  mov %rax, %r12
    mov %rax, %rdi
    mov $61, %eax               /* wait4(pid, &status, 0, NULL) */
    lea buf(%rip), %rsi
    xor %edx, %edx
    xor %r10d, %r10d
    syscall
    cmp %r12, %rax
    jne 9f
    mov buf(%rip), %eax
    test $0x7f, %eax            /* WIFEXITED */
    jnz 9f
    shr $8, %eax
    and $0xff, %eax
    ret
9:  mov $-1, %eax
    ret

/* check: rdi = NUL-terminated label, al = 0/1. Prints "label al\n". */
check:
    movzbl %al, %eax
    add $'0', %eax
    mov %al, digit(%rip)
    mov %rdi, %rsi
    xor %edx, %edx
3:  cmpb $0, (%rsi,%rdx)
    je 4f
    inc %rdx
    jmp 3b
4:  mov $1, %eax
    mov $1, %edi
    syscall
    mov $1, %eax
    mov $1, %edi
    lea tail(%rip), %rsi
    mov $3, %edx
    syscall
    ret

    .data
tail:   .byte ' '
digit:  .byte '?', '\n'
l_open: .asciz "open"
l_fstat: .asciz "fstat"
l_stat: .asciz "stat"
l_lseek: .asciz "lseek"
l_access: .asciz "access"
l_pipe: .asciz "pipe"
l_dup2: .asciz "dup2"
l_epoll: .asciz "epoll"
l_brk:  .asciz "brk"
l_mmap: .asciz "mmap"
l_uname: .asciz "uname"
l_fs:   .asciz "fs"
l_time: .asciz "time"
l_exe:  .asciz "proc-self-exe"
l_enosys: .asciz "enosys"
l_fork: .asciz "fork"
l_vfork: .asciz "vfork"
l_abc:  .ascii "abc"
l_selfexe: .asciz "/proc/self/exe"
    .balign 8
tls:    .quad 0, 0x1234
fds:    .long 0, 0
    .bss
    .balign 16
statbuf: .skip 144
buf:    .skip 256
utsname: .skip 390
