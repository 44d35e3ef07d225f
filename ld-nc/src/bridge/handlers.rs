//! The glibc-family functions that cannot pass straight to the native libc, grouped by family as
//! the syscall layer is. Each is either a small guest routine (x86_64 code written with iced's
//! assembler, placed in the bridge region and translated like any guest code) or a host function
//! of ld-nc's bound like a native one. Why each family is custom:
//!
//! - **setjmp/longjmp** (`setjmp`, `_setjmp`, `__sigsetjmp`, `longjmp`, `_longjmp`,
//!   `siglongjmp`, `__longjmp_chk`): the native ones would save and restore *host* registers and
//!   the native-call routine's frame, not the guest's. These save the guest's callee-saved
//!   registers, stack pointer and return address in the guest's `jmp_buf` (glibc's x86_64 layout,
//!   without pointer mangling: only these routines read it) and the signal mask through the
//!   emulated `rt_sigprocmask`.
//! - **signals** (`sigaction`, `signal`, `bsd_signal`, `sysv_signal`, `__sysv_signal`,
//!   `sigaltstack`, `sigprocmask`, `pthread_sigmask`, `sigsuspend`): a guest handler is a guest
//!   address the host kernel cannot call, and ld-nc already emulates signal delivery for guest
//!   code (its syscall layer, `signals`), so these convert glibc's `struct sigaction` to the
//!   kernel's and make the raw x86_64 syscalls, which that layer handles — with ld-nc's own
//!   `sa_restorer`.
//! - **raw syscalls** ([`SYSCALLS`]): memory maps (ld-nc's record of guest memory decides what is
//!   guest code, and self-modifying code is tracked through it), `execve` (an x86_64 program
//!   must come back through ld-nc), the `stat` family (the kernel's `struct stat` differs between
//!   x86_64 and riscv64), `open`/`openat`/`fcntl`/`ioctl` (variadic with a command-dependent
//!   argument, and paths such as `/proc/self/exe` need ld-nc's view), `epoll_ctl`/`epoll_wait`
//!   (x86_64's `struct epoll_event` is packed), `semctl` (variadic) and `syscall()` itself (x86_64
//!   numbers): these are the raw x86_64 syscalls, handled by the syscall layer as for a static
//!   program.
//! - **getauxval**: the native one reads ld-nc's auxiliary vector, not the guest's.
//! - **the `dl*` family** (`dlopen`, `dlsym`, `dladdr`, `dl_iterate_phdr`, `_dl_find_object`...):
//!   they must see guest objects; see [`super::dl`].
//! - **`__tls_get_addr`** (ld.so's): the address of a guest object's TLS variable, from the
//!   static TLS layout ld-nc made (the guest's dynamic TLS for `dlopen`ed objects is not built).
//!
//! A failing syscall sets `errno` through the native `__errno_location` (one errno for both
//! sides) and returns -1, as glibc does (`pthread_sigmask` returns the error number instead).

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;

use super::Bridge;

/// `SA_RESTORER`, `SA_RESTART`, `SA_NODEFER`, `SA_RESETHAND` (x86_64 kernel values).
const SA_RESTORER: u32 = 0x0400_0000;
const SA_RESTART: u32 = 0x1000_0000;
const SA_NODEFER: u32 = 0x4000_0000;
const SA_RESETHAND: u32 = 0x8000_0000;
/// glibc's x86_64 `struct sigaction`: handler at 0, `sa_mask` (128 bytes) at 8, `sa_flags` at
/// 136, `sa_restorer` at 144.
const USER_FLAGS: i32 = 136;
const USER_RESTORER: i32 = 144;
/// glibc's x86_64 `jmp_buf`: RBX, RBP, R12-R15, RSP, PC, then `__mask_was_saved` at 64 and
/// `__saved_mask` at 72.
const JB_MASK_SAVED: i32 = 64;
const JB_MASK: i32 = 72;

fn asm_err(e: IcedError) -> String {
    format!("assembling a bridge routine: {e}")
}

/// Assemble `a` and place it; the addresses of `labels`.
fn place(b: &mut Bridge, a: &mut CodeAssembler, labels: &[CodeLabel]) -> Result<Vec<u64>, String> {
    // Position-independent (only internal branches and absolute immediates), so assembled at 0.
    let r = a.assemble_options(0, BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS).map_err(asm_err)?;
    let base = b.place_code(r.inner.code_buffer.as_slice())?;
    labels.iter().map(|l| r.label_ip(l).map(|ip| base + ip).map_err(asm_err)).collect()
}

/// Set errno from a negative syscall result in RAX and return -1 (the tail of every routine).
fn errno_tail(a: &mut CodeAssembler, errno_location: u64) -> Result<(), IcedError> {
    a.neg(eax)?;
    a.push(rax)?; // RSP is now 16-aligned at the call below: every routine enters with RSP = 8 mod 16
    a.mov(rax, errno_location)?;
    a.call(rax)?;
    a.pop(rcx)?;
    a.mov(dword_ptr(rax), ecx)?;
    a.mov(rax, -1i64)?;
    a.ret()
}

/// Install every handler of this module into `b.handlers`.
pub fn install(b: &mut Bridge) -> Result<(), String> {
    let errno = b
        .lookup_fn("libc.so.6", "__errno_location")
        .ok_or("the native libc has no usable __errno_location")?;
    setjmp_family(b).map_err(|e| e.to_string())?;
    signal_family(b, errno)?;
    syscall_family(b, errno)?;
    auxv(b)?;
    Ok(())
}

/// How a C function's arguments become a syscall's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Args {
    /// As they are (the fourth moves from RCX to R10).
    Same,
    /// The first is a version number to drop (`__xstat(ver, path, buf)`).
    DropFirst,
    /// `syscall(nr, a1, ..., a6)`: the number first, the sixth argument on the stack.
    Syscall,
}

/// Functions that are one raw syscall, handled by the syscall layer (which converts the kernel
/// structs, such as `stat`, to the host's and keeps its memory record).
const SYSCALLS: [(&str, u32, Args); 35] = [
    ("mmap", 9, Args::Same),
    ("mmap64", 9, Args::Same),
    ("munmap", 11, Args::Same),
    ("mprotect", 10, Args::Same),
    ("mremap", 25, Args::Same),
    ("madvise", 28, Args::Same),
    ("execve", 59, Args::Same),
    ("stat", 4, Args::Same),
    ("stat64", 4, Args::Same),
    ("fstat", 5, Args::Same),
    ("fstat64", 5, Args::Same),
    ("lstat", 6, Args::Same),
    ("lstat64", 6, Args::Same),
    ("fstatat", 262, Args::Same),
    ("fstatat64", 262, Args::Same),
    ("__xstat", 4, Args::DropFirst),
    ("__xstat64", 4, Args::DropFirst),
    ("__fxstat", 5, Args::DropFirst),
    ("__fxstat64", 5, Args::DropFirst),
    ("__lxstat", 6, Args::DropFirst),
    ("__lxstat64", 6, Args::DropFirst),
    ("__fxstatat", 262, Args::DropFirst),
    ("__fxstatat64", 262, Args::DropFirst),
    ("open", 2, Args::Same),
    ("open64", 2, Args::Same),
    ("openat", 257, Args::Same),
    ("openat64", 257, Args::Same),
    ("fcntl", 72, Args::Same),
    ("fcntl64", 72, Args::Same),
    ("ioctl", 16, Args::Same),
    ("syscall", 0, Args::Syscall),
    // struct epoll_event is packed on x86_64 only.
    ("epoll_ctl", 233, Args::Same),
    ("epoll_wait", 232, Args::Same),
    ("epoll_pwait", 281, Args::Same),
    ("semctl", 66, Args::Same),
];

fn syscall_family(b: &mut Bridge, errno: u64) -> Result<(), String> {
    let mut a = CodeAssembler::new(64).map_err(asm_err)?;
    let mut labels = Vec::new();
    for (_, nr, args) in SYSCALLS {
        let mut l = a.create_label();
        let mut ok = a.create_label();
        (|| -> Result<(), IcedError> {
            a.set_label(&mut l)?;
            match args {
                Args::Same => {
                    a.mov(r10, rcx)?;
                    a.mov(eax, nr)?;
                }
                Args::DropFirst => {
                    a.mov(rdi, rsi)?;
                    a.mov(rsi, rdx)?;
                    a.mov(rdx, rcx)?;
                    a.mov(r10, r8)?;
                    a.mov(eax, nr)?;
                }
                Args::Syscall => {
                    a.mov(rax, rdi)?;
                    a.mov(rdi, rsi)?;
                    a.mov(rsi, rdx)?;
                    a.mov(rdx, rcx)?;
                    a.mov(r10, r8)?;
                    a.mov(r8, r9)?;
                    a.mov(r9, qword_ptr(rsp + 8))?;
                }
            }
            a.syscall()?;
            a.cmp(rax, -4095)?;
            a.jb(ok)?;
            errno_tail(&mut a, errno)?;
            a.set_label(&mut ok)?;
            a.ret()
        })()
        .map_err(asm_err)?;
        labels.push(l);
    }
    let at = place(b, &mut a, &labels)?;
    for ((name, _, _), addr) in SYSCALLS.iter().zip(at) {
        b.handlers.insert((*name).into(), addr);
    }
    Ok(())
}

/// `__tls_get_addr(tls_index *ti)`: `fs:0` (the thread pointer, the TCB's self pointer) plus
/// the module's static offset (negative, variant II) plus `ti->offset`. `table` holds the offsets
/// by module id (1-based, entry 0 unused).
pub fn tls_get_addr(table: u64) -> Result<Vec<u8>, String> {
    let mut a = CodeAssembler::new(64).map_err(asm_err)?;
    (|| -> Result<(), IcedError> {
        a.mov(rax, qword_ptr(rdi))?;
        a.mov(rcx, table)?;
        a.mov(rax, qword_ptr(rcx + rax * 8))?;
        a.add(rax, qword_ptr(0u64).fs())?;
        a.add(rax, qword_ptr(rdi + 8))?;
        a.ret()
    })()
    .map_err(asm_err)?;
    a.assemble(0).map_err(asm_err)
}

fn setjmp_family(b: &mut Bridge) -> Result<(), String> {
    let mut a = CodeAssembler::new(64).map_err(asm_err)?;
    let (mut sigsetjmp, mut setjmp, mut setjmp0, mut longjmp) = (a.create_label(), a.create_label(), a.create_label(), a.create_label());
    let (mut done, mut keep_mask, mut nonzero) = (a.create_label(), a.create_label(), a.create_label());
    (|| -> Result<(), IcedError> {
        a.set_label(&mut setjmp)?;
        a.mov(esi, 1)?;
        a.jmp(sigsetjmp)?;
        a.set_label(&mut setjmp0)?;
        a.xor(esi, esi)?;
        a.set_label(&mut sigsetjmp)?;
        // (env = RDI, savemask = ESI)
        for (i, r) in [rbx, rbp, r12, r13, r14, r15].into_iter().enumerate() {
            a.mov(qword_ptr(rdi + 8 * i as i32), r)?;
        }
        a.lea(rdx, qword_ptr(rsp + 8))?;
        a.mov(qword_ptr(rdi + 48), rdx)?;
        a.mov(rax, qword_ptr(rsp))?;
        a.mov(qword_ptr(rdi + 56), rax)?;
        a.mov(dword_ptr(rdi + JB_MASK_SAVED), esi)?;
        a.test(esi, esi)?;
        a.jz(done)?;
        // rt_sigprocmask(SIG_BLOCK, NULL, &env->__saved_mask, 8)
        a.lea(rdx, qword_ptr(rdi + JB_MASK))?;
        a.xor(esi, esi)?;
        a.xor(edi, edi)?;
        a.mov(r10d, 8)?;
        a.mov(eax, 14)?;
        a.syscall()?;
        a.set_label(&mut done)?;
        a.xor(eax, eax)?;
        a.ret()?;

        a.set_label(&mut longjmp)?;
        // (env = RDI, val = ESI)
        a.cmp(dword_ptr(rdi + JB_MASK_SAVED), 0)?;
        a.je(keep_mask)?;
        a.mov(r12, rdi)?;
        a.mov(r13d, esi)?;
        // rt_sigprocmask(SIG_SETMASK, &env->__saved_mask, NULL, 8)
        a.lea(rsi, qword_ptr(rdi + JB_MASK))?;
        a.mov(edi, 2)?;
        a.xor(edx, edx)?;
        a.mov(r10d, 8)?;
        a.mov(eax, 14)?;
        a.syscall()?;
        a.mov(rdi, r12)?;
        a.mov(esi, r13d)?;
        a.set_label(&mut keep_mask)?;
        a.mov(eax, esi)?;
        a.test(eax, eax)?;
        a.jnz(nonzero)?;
        a.inc(eax)?;
        a.set_label(&mut nonzero)?;
        for (i, r) in [rbx, rbp, r12, r13, r14, r15].into_iter().enumerate() {
            a.mov(r, qword_ptr(rdi + 8 * i as i32))?;
        }
        a.mov(rsp, qword_ptr(rdi + 48))?;
        a.jmp(qword_ptr(rdi + 56))
    })()
    .map_err(asm_err)?;
    let at = place(b, &mut a, &[sigsetjmp, setjmp, setjmp0, longjmp])?;
    for (name, addr) in [
        ("__sigsetjmp", at[0]),
        ("setjmp", at[1]),
        ("_setjmp", at[2]),
        ("longjmp", at[3]),
        ("_longjmp", at[3]),
        ("siglongjmp", at[3]),
        ("__longjmp_chk", at[3]),
    ] {
        b.handlers.insert(name.into(), addr);
    }
    Ok(())
}

/// `sigaction(sig, act, oact)` over the raw syscall, and its relatives.
fn signal_family(b: &mut Bridge, errno: u64) -> Result<(), String> {
    let mut a = CodeAssembler::new(64).map_err(asm_err)?;
    let mut l: Vec<CodeLabel> = (0..12).map(|_| a.create_label()).collect();
    let [restorer, sigaction, signal_bsd, signal_sysv, sigaltstack, sigprocmask, pthread_sigmask, sigsuspend, fail, no_act, no_oact, fail_pos] =
        &mut l[..]
    else {
        return Err("labels".into());
    };
    (|| -> Result<(), IcedError> {
        a.set_label(restorer)?;
        a.mov(eax, 15)?;
        a.syscall()?;

        // sigaction: glibc's struct (RSI, RDX) <-> the kernel's, on our stack.
        a.set_label(sigaction)?;
        a.sub(rsp, 72)?; // kact at 0, koact at 32 (RSP 16-aligned)
        a.mov(r9, rdx)?;
        a.test(rsi, rsi)?;
        a.jz(*no_act)?;
        a.mov(rax, qword_ptr(rsi))?;
        a.mov(qword_ptr(rsp), rax)?;
        a.mov(eax, dword_ptr(rsi + USER_FLAGS))?;
        a.or(eax, SA_RESTORER as i32)?;
        a.mov(qword_ptr(rsp + 8), rax)?;
        a.lea(rax, ptr(*restorer))?;
        a.mov(qword_ptr(rsp + 16), rax)?;
        a.mov(rax, qword_ptr(rsi + 8))?;
        a.mov(qword_ptr(rsp + 24), rax)?;
        a.mov(rsi, rsp)?;
        a.set_label(no_act)?;
        a.xor(edx, edx)?;
        a.test(r9, r9)?;
        a.jz(*no_oact)?;
        a.lea(rdx, qword_ptr(rsp + 32))?;
        a.set_label(no_oact)?;
        a.mov(r10d, 8)?;
        a.mov(eax, 13)?;
        a.syscall()?;
        a.test(rax, rax)?;
        a.js(*fail)?;
        a.test(r9, r9)?;
        a.jz(*fail)?;
        a.mov(rcx, qword_ptr(rsp + 32))?;
        a.mov(qword_ptr(r9), rcx)?;
        a.mov(rcx, qword_ptr(rsp + 56))?;
        a.mov(qword_ptr(r9 + 8), rcx)?;
        for off in (16..136).step_by(8) {
            a.mov(qword_ptr(r9 + off), 0)?;
        }
        a.mov(rcx, qword_ptr(rsp + 40))?;
        a.mov(dword_ptr(r9 + USER_FLAGS), ecx)?;
        a.mov(rcx, qword_ptr(rsp + 48))?;
        a.mov(qword_ptr(r9 + USER_RESTORER), rcx)?;
        // RAX: 0, or the negative error.
        a.set_label(fail)?;
        a.add(rsp, 72)?;
        a.test(rax, rax)?;
        a.jns(*fail_pos)?;
        errno_tail(&mut a, errno)?;
        a.set_label(fail_pos)?;
        a.ret()?;

        // signal(sig, handler): sigaction with BSD (SA_RESTART, the signal blocked in its
        // handler) or System V (SA_RESETHAND | SA_NODEFER) semantics; returns the old handler.
        for (label, flags) in [(&mut *signal_bsd, SA_RESTART), (&mut *signal_sysv, SA_RESETHAND | SA_NODEFER)] {
            a.set_label(label)?;
            a.sub(rsp, 72)?;
            a.mov(qword_ptr(rsp), rsi)?;
            a.mov(eax, flags | SA_RESTORER)?; // zero-extended into RAX
            a.mov(qword_ptr(rsp + 8), rax)?;
            a.lea(rax, ptr(*restorer))?;
            a.mov(qword_ptr(rsp + 16), rax)?;
            // mask = {sig} for BSD semantics, {} for System V's SA_NODEFER.
            a.xor(eax, eax)?;
            if flags == SA_RESTART {
                a.lea(ecx, dword_ptr(rdi - 1))?;
                a.mov(eax, 1)?;
                a.shl(rax, cl)?;
            }
            a.mov(qword_ptr(rsp + 24), rax)?;
            a.mov(rsi, rsp)?;
            a.lea(rdx, qword_ptr(rsp + 32))?;
            a.mov(r10d, 8)?;
            a.mov(eax, 13)?;
            a.syscall()?;
            a.test(rax, rax)?;
            let mut ok = a.create_label();
            a.jns(ok)?;
            a.add(rsp, 72)?;
            errno_tail(&mut a, errno)?;
            a.set_label(&mut ok)?;
            a.mov(rax, qword_ptr(rsp + 32))?;
            a.add(rsp, 72)?;
            a.ret()?;
        }

        // Plain syscalls: sigaltstack(ss, oss), sigprocmask(how, set, oset) and
        // sigsuspend(mask) (with the kernel's sigset size).
        for (label, nr, size_in) in [(&mut *sigaltstack, 131, None), (&mut *sigprocmask, 14, Some(r10)), (&mut *sigsuspend, 130, Some(rsi))] {
            a.set_label(label)?;
            if let Some(r) = size_in {
                a.mov(r, 8u64)?;
            }
            a.mov(eax, nr)?;
            a.syscall()?;
            a.test(rax, rax)?;
            let mut ok = a.create_label();
            a.jns(ok)?;
            errno_tail(&mut a, errno)?;
            a.set_label(&mut ok)?;
            a.ret()?;
        }
        // pthread_sigmask returns the error number.
        a.set_label(pthread_sigmask)?;
        a.mov(r10d, 8)?;
        a.mov(eax, 14)?;
        a.syscall()?;
        a.neg(eax)?;
        a.ret()
    })()
    .map_err(asm_err)?;
    let labels = [*sigaction, *signal_bsd, *signal_sysv, *sigaltstack, *sigprocmask, *pthread_sigmask, *sigsuspend];
    let at = place(b, &mut a, &labels)?;
    for (name, i) in [
        ("sigaction", 0),
        ("__sigaction", 0),
        ("signal", 1),
        ("bsd_signal", 1),
        ("sysv_signal", 2),
        ("__sysv_signal", 2),
        ("sigaltstack", 3),
        ("sigprocmask", 4),
        ("pthread_sigmask", 5),
        ("sigsuspend", 6),
    ] {
        b.handlers.insert(name.into(), at[i]);
    }
    Ok(())
}

/// The guest's auxiliary vector (set once the guest stack is built).
static AUXV: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Record where the guest's auxv starts: after argc, argv and envp on the initial stack at `sp`.
pub fn set_auxv_from_stack(initial_sp: u64) {
    // SAFETY: `initial_sp` is the guest's initial stack pointer, laid out by `stack::build`: argc, argv
    // (NULL-terminated), envp (NULL-terminated), then auxv.
    unsafe {
        let argc = (initial_sp as *const u64).read();
        let mut p = initial_sp + 8 * (argc + 2);
        while (p as *const u64).read() != 0 {
            p += 8;
        }
        AUXV.store(p + 8, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `getauxval(type)` over the guest's vector.
extern "C" fn ldnc_getauxval(kind: u64) -> u64 {
    let mut p = AUXV.load(std::sync::atomic::Ordering::Relaxed);
    if p != 0 {
        loop {
            // SAFETY: the guest's auxv, AT_NULL-terminated, in its stack.
            let (k, v) = unsafe { ((p as *const u64).read(), ((p + 8) as *const u64).read()) };
            if k == 0 {
                break;
            }
            if k == kind {
                return v;
            }
            p += 16;
        }
    }
    // SAFETY: the native errno of this thread (one errno for both sides).
    unsafe { *libc::__errno_location() = libc::ENOENT };
    0
}

/// The handlers that are host functions of ld-nc: name, function, signature.
fn host_functions() -> [(&'static [&'static str], u64, &'static str); 8] {
    use super::dl;
    [
        (&["getauxval", "__getauxval"], ldnc_getauxval as *const () as u64, "(u64)->u64"),
        (&["dl_iterate_phdr"], dl::ldnc_dl_iterate_phdr as *const () as u64, "(p,p)->i32"),
        (&["_dl_find_object"], dl::ldnc_dl_find_object as *const () as u64, "(p,p)->i32"),
        (&["dlopen"], dl::ldnc_dlopen as *const () as u64, "(p,i32)->p"),
        (&["dlsym", "dlvsym"], dl::ldnc_dlsym as *const () as u64, "(p,p)->p"),
        (&["dlclose"], dl::ldnc_dlclose as *const () as u64, "(p)->i32"),
        (&["dlerror"], dl::ldnc_dlerror as *const () as u64, "()->p"),
        (&["dladdr"], dl::ldnc_dladdr as *const () as u64, "(p,p)->i32"),
    ]
}

fn auxv(b: &mut Bridge) -> Result<(), String> {
    for (names, f, sig) in host_functions() {
        let sig = abi::parse_sig(sig).map_err(|e| e.to_string())?;
        let a = b.host_handler(names[0], f, &sig)?;
        for n in names {
            b.handlers.insert((*n).into(), a);
        }
    }
    Ok(())
}
