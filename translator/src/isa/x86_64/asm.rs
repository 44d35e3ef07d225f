//! The hand-written host routines generated code relies on: entering the code cache from Rust,
//! leaving it for the dispatcher, the miss path of the inline indirect-branch lookups, and the
//! native call of a trap stub (`ldnc_x86_native`, outside the cache: see "Native calls" in
//! [`crate::dispatch`]). They are reached from
//! generated code through slots in the thread context (`jmp qword ptr gs:[slot]`), so the cache can
//! be anywhere in the address space.

use super::regs::*;
use crate::cpu::{OFF_FS_BASE, OFF_GPR, OFF_MXCSR, OFF_RFLAGS, OFF_RIP, OFF_XMM};
use crate::ctx::{exit, OFF_EXIT_ARG, OFF_EXIT_REASON};

core::arch::global_asm!(
    ".pushsection .text.ldnc_x86_enter,\"ax\",@progbits",
    ".globl ldnc_x86_enter",
    ".type ldnc_x86_enter,@function",
    ".p2align 4",
    // extern "C" fn(ctx: *mut ThreadCtx /* rdi */, code: u64 /* rsi */)
    "ldnc_x86_enter:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [rdi + {host_sp}], rsp",
    "rdfsbase rax",
    "mov [rdi + {host_fs}], rax",
    "rdgsbase rax",
    "mov [rdi + {host_gs}], rax",
    "mov [rdi + {target}], rsi",
    "lea rax, [rip + ldnc_x86_exit]",
    "mov [rdi + {slot_exit}], rax",
    "lea rax, [rip + ldnc_x86_lookup_miss]",
    "mov [rdi + {slot_miss}], rax",
    "lea rax, [rip + ldnc_x86_lookup_fill]",
    "mov [rdi + {slot_fill}], rax",
    "lea rax, [rip + ldnc_x86_native]",
    "mov [rdi + {slot_native}], rax",
    "mov rax, {magic}",
    "mov [rdi + {slot_magic}], rax",
    "mov rax, [rdi + {fs}]",
    "wrfsbase rax",
    "wrgsbase rdi",
    "ldmxcsr [rdi + {mxcsr}]",
    "movdqu xmm0, [rdi + {xmm} + 0*16]",
    "movdqu xmm1, [rdi + {xmm} + 1*16]",
    "movdqu xmm2, [rdi + {xmm} + 2*16]",
    "movdqu xmm3, [rdi + {xmm} + 3*16]",
    "movdqu xmm4, [rdi + {xmm} + 4*16]",
    "movdqu xmm5, [rdi + {xmm} + 5*16]",
    "movdqu xmm6, [rdi + {xmm} + 6*16]",
    "movdqu xmm7, [rdi + {xmm} + 7*16]",
    "movdqu xmm8, [rdi + {xmm} + 8*16]",
    "movdqu xmm9, [rdi + {xmm} + 9*16]",
    "movdqu xmm10, [rdi + {xmm} + 10*16]",
    "movdqu xmm11, [rdi + {xmm} + 11*16]",
    "movdqu xmm12, [rdi + {xmm} + 12*16]",
    "movdqu xmm13, [rdi + {xmm} + 13*16]",
    "movdqu xmm14, [rdi + {xmm} + 14*16]",
    "movdqu xmm15, [rdi + {xmm} + 15*16]",
    // RFLAGS from the guest state, through the host stack (still the host's here).
    "push qword ptr [rdi + {rflags}]",
    "popfq",
    "mov rax, [rdi + {gpr} + 0*8]",
    "mov rcx, [rdi + {gpr} + 1*8]",
    "mov rdx, [rdi + {gpr} + 2*8]",
    "mov rbx, [rdi + {gpr} + 3*8]",
    "mov rsp, [rdi + {gpr} + 4*8]",
    "mov rbp, [rdi + {gpr} + 5*8]",
    "mov rsi, [rdi + {gpr} + 6*8]",
    "mov r8,  [rdi + {gpr} + 8*8]",
    "mov r9,  [rdi + {gpr} + 9*8]",
    "mov r10, [rdi + {gpr} + 10*8]",
    "mov r11, [rdi + {gpr} + 11*8]",
    "mov r12, [rdi + {gpr} + 12*8]",
    "mov r13, [rdi + {gpr} + 13*8]",
    "mov r14, [rdi + {gpr} + 14*8]",
    "mov r15, [rdi + {gpr} + 15*8]",
    "mov rdi, [rdi + {gpr} + 7*8]",
    "jmp qword ptr gs:[{target}]",
    ".size ldnc_x86_enter, . - ldnc_x86_enter",
    "",
    // Reached from generated code with guest RAX already stored in ctx.cpu and the exit reason,
    // exit argument and next RIP written; every other register is still the guest's.
    ".globl ldnc_x86_exit",
    ".type ldnc_x86_exit,@function",
    ".p2align 4",
    "ldnc_x86_exit:",
    "mov gs:[{gpr} + 1*8], rcx",
    "mov gs:[{gpr} + 2*8], rdx",
    "mov gs:[{gpr} + 3*8], rbx",
    "mov gs:[{gpr} + 4*8], rsp",
    "mov gs:[{gpr} + 5*8], rbp",
    "mov gs:[{gpr} + 6*8], rsi",
    "mov gs:[{gpr} + 7*8], rdi",
    "mov gs:[{gpr} + 8*8], r8",
    "mov gs:[{gpr} + 9*8], r9",
    "mov gs:[{gpr} + 10*8], r10",
    "mov gs:[{gpr} + 11*8], r11",
    "mov gs:[{gpr} + 12*8], r12",
    "mov gs:[{gpr} + 13*8], r13",
    "mov gs:[{gpr} + 14*8], r14",
    "mov gs:[{gpr} + 15*8], r15",
    // RFLAGS goes through the host stack (free below the saved host RSP): nothing is written to
    // the guest's stack, which may not even be valid memory if the guest uses RSP as data.
    "mov rsp, gs:[{host_sp}]",
    "pushfq",
    "pop qword ptr gs:[{rflags}]",
    "movdqu gs:[{xmm} + 0*16], xmm0",
    "movdqu gs:[{xmm} + 1*16], xmm1",
    "movdqu gs:[{xmm} + 2*16], xmm2",
    "movdqu gs:[{xmm} + 3*16], xmm3",
    "movdqu gs:[{xmm} + 4*16], xmm4",
    "movdqu gs:[{xmm} + 5*16], xmm5",
    "movdqu gs:[{xmm} + 6*16], xmm6",
    "movdqu gs:[{xmm} + 7*16], xmm7",
    "movdqu gs:[{xmm} + 8*16], xmm8",
    "movdqu gs:[{xmm} + 9*16], xmm9",
    "movdqu gs:[{xmm} + 10*16], xmm10",
    "movdqu gs:[{xmm} + 11*16], xmm11",
    "movdqu gs:[{xmm} + 12*16], xmm12",
    "movdqu gs:[{xmm} + 13*16], xmm13",
    "movdqu gs:[{xmm} + 14*16], xmm14",
    "movdqu gs:[{xmm} + 15*16], xmm15",
    "stmxcsr gs:[{mxcsr}]",
    // The guest may have changed FS itself (WRFSBASE); read it back rather than trusting ctx.
    "rdfsbase rax",
    "mov gs:[{fs}], rax",
    // Back to the host: FS, stack, GS, flags, callee-saved registers. A signal handler that turned
    // a fault into an exit resumes here too, with the guest state already stored.
    ".globl ldnc_x86_fault_exit",
    "ldnc_x86_fault_exit:",
    "mov rax, gs:[{host_fs}]",
    "wrfsbase rax",
    "mov rsp, gs:[{host_sp}]",
    "mov rax, gs:[{host_gs}]",
    "wrgsbase rax",
    // Rust code expects DF clear and AC clear (SysV ABI 3.2.1).
    "push 0x202",
    "popfq",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
    ".size ldnc_x86_exit, . - ldnc_x86_exit",
    "",
    // Lookup miss, reached from the inline lookups: RDX = guest target, guest RAX/RCX/RDX in their
    // scratch slots, flags untouched.
    ".globl ldnc_x86_lookup_miss",
    ".type ldnc_x86_lookup_miss,@function",
    ".p2align 4",
    "ldnc_x86_lookup_miss:",
    "mov qword ptr gs:[{exit_arg}], 0",
    // Same, but `exit_arg` already names the inline cache to fill.
    ".globl ldnc_x86_lookup_fill",
    "ldnc_x86_lookup_fill:",
    "mov gs:[{rip}], rdx",
    "mov rcx, gs:[{s_rcx}]",
    "mov rdx, gs:[{s_rdx}]",
    "mov qword ptr gs:[{exit_reason}], {lookup_exit}",
    "mov rax, gs:[{s_rax}]",
    "mov gs:[{gpr}], rax",
    "jmp ldnc_x86_exit",
    ".size ldnc_x86_lookup_miss, . - ldnc_x86_lookup_miss",
    "",
    // The native call of a trap stub. Reached from the stub's block (`translate_native`) with
    // R11 = host function, RBX = the guest RSP at the stub (R: [R] = guest return address), the
    // guest RBX saved at, R-16 free, RSP 16-aligned below R-16 with the guest's stack
    // arguments copied to it; every argument register (RAX = AL, RDI..R9, XMM0-7) as the guest
    // left it. Nothing in here is in the code cache.
    ".globl ldnc_x86_native",
    ".type ldnc_x86_native,@function",
    ".p2align 4",
    "ldnc_x86_native:",
    // Callbacks from the native code find the guest stack pointer in ctx.cpu.
    "mov gs:[{gpr} + 4*8], rbx",
    // Host FS while native code runs (its TLS); the guest's waits at.
    "rdfsbase r10",
    "mov [rbx - 16], r10",
    "mov r10, gs:[{host_fs}]",
    "wrfsbase r10",
    // Out of translated code: a reuse of the code memory need not wait for this thread.
    "mov r10, gs:[{ctx_slot}]",
    "mov byte ptr [r10 + {in_code}], 0",
    "call r11",
    // RAX, RDX, XMM0, XMM1, ST0 hold the result; R10, R11, RCX are free.
    "mov rsp, rbx",
    "mov r10, [rsp - 16]",
    "wrfsbase r10",
    "mov rbx, [rsp - 8]",
    // Back in code, then (full fence: Dekker with the flusher) is a reuse pending?
    "mov r10, gs:[{ctx_slot}]",
    // A locked exchange is the store and the full fence in one (cheaper than mov + mfence).
    "mov r11d, 1",
    "xchg byte ptr [r10 + {in_code}], r11b",
    // A guest signal arrived during the call: stop for the runtime (attention, cleared here).
    "movzx r11d, byte ptr [r10 + {attention}]",
    "mov byte ptr [r10 + {attention}], 0",
    "mov r10d, dword ptr [rip + {pending}]",
    // The x86 `ret`, as an indirect branch: RDX = target, guest RAX/RCX/RDX in their slots.
    "mov gs:[{s_rax}], rax",
    "mov gs:[{s_rcx}], rcx",
    "mov gs:[{s_rdx}], rdx",
    "pop rdx",
    "test r11d, r11d",
    "jnz 2f",
    "test r10d, r10d",
    "jnz ldnc_x86_lookup_miss",
    "mov rcx, gs:[{lookup_mask}]",
    "and rcx, rdx",
    "shl rcx, 4",
    "add rcx, gs:[{lookup}]",
    "cmp [rcx], rdx",
    "jne ldnc_x86_lookup_miss",
    "mov rcx, [rcx + 8]",
    "mov gs:[{s_target}], rcx",
    "mov rax, gs:[{s_rax}]",
    "mov rcx, gs:[{s_rcx}]",
    "mov rdx, gs:[{s_rdx}]",
    "jmp qword ptr gs:[{s_target}]",
    "2:",
    "mov gs:[{rip}], rdx",
    "mov qword ptr gs:[{exit_arg}], 0",
    "mov rcx, gs:[{s_rcx}]",
    "mov rdx, gs:[{s_rdx}]",
    "mov qword ptr gs:[{exit_reason}], {interrupt_exit}",
    "mov rax, gs:[{s_rax}]",
    "mov gs:[{gpr}], rax",
    "jmp ldnc_x86_exit",
    ".size ldnc_x86_native, . - ldnc_x86_native",
    ".popsection",
    host_sp = const SLOT_HOST_SP,
    host_fs = const SLOT_HOST_FS,
    host_gs = const SLOT_HOST_GS,
    target = const SLOT_TARGET,
    slot_exit = const SLOT_EXIT,
    slot_miss = const SLOT_MISS,
    slot_fill = const SLOT_FILL,
    slot_native = const SLOT_NATIVE,
    ctx_slot = const crate::ctx::OFF_SLOT,
    in_code = const crate::dispatch::OFF_IN_CODE,
    attention = const crate::dispatch::OFF_ATTENTION,
    interrupt_exit = const exit::INTERRUPT,
    pending = sym crate::dispatch::REUSE_PENDING,
    lookup = const crate::ctx::OFF_LOOKUP,
    lookup_mask = const crate::ctx::OFF_LOOKUP_MASK,
    s_target = const S_TARGET,
    slot_magic = const SLOT_MAGIC,
    magic = const MAGIC,
    fs = const OFF_FS_BASE,
    mxcsr = const OFF_MXCSR,
    xmm = const OFF_XMM,
    rflags = const OFF_RFLAGS,
    gpr = const OFF_GPR,
    rip = const OFF_RIP,
    s_rax = const S_RAX,
    s_rcx = const S_RCX,
    s_rdx = const S_RDX,
    exit_arg = const OFF_EXIT_ARG,
    exit_reason = const OFF_EXIT_REASON,
    lookup_exit = const exit::LOOKUP,
);

unsafe extern "C" {
    /// Enter generated code at `code` with the guest state of `ctx`; returns when it exits.
    pub fn ldnc_x86_enter(ctx: *mut crate::ctx::ThreadCtx, code: u64);
    /// Not called: a signal handler resumes here (see [`redirect_fault`]).
    fn ldnc_x86_fault_exit();
}

/// Turn a synchronous fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL) raised by translated code into an
/// [`exit::FAULT`] of the dispatcher: rebuild the guest state at the faulting guest instruction
/// from the host registers in `uc` and make the signal return leave generated code. Returns
/// `false` (and changes nothing) if the fault did not come from translated code on this thread.
///
/// # Safety
/// Must be called from a handler of a synchronous signal on the faulting thread, with `uc` the
/// handler's context and `guest_fs` the FS base the thread had when the signal arrived (what
/// [`enter_signal_handler`] returned, or the current FS base if it returned `None`).
pub unsafe fn redirect_fault(
    uc: *mut libc::ucontext_t,
    map: &crate::fault::FaultMap,
    info: crate::ctx::FaultInfo,
    guest_fs: u64,
) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { redirect(uc, guest_fs, |pc| map.lookup(pc), exit::FAULT, info) }
}

/// Stop generated code for an asynchronous signal: if the thread was interrupted exactly between
/// two guest instructions of translated code, make the signal return leave with
/// [`exit::INTERRUPT`] and the exact guest state, so the runtime delivers the signal now rather
/// than at the next exit (which a tight loop may never reach). Returns `false`, changing
/// nothing, anywhere else; the signal is then delivered at the next exit.
///
/// # Safety
/// As for [`redirect_fault`], from the handler of an asynchronous signal.
pub unsafe fn redirect_interrupt(uc: *mut libc::ucontext_t, map: &crate::fault::FaultMap, guest_fs: u64) -> bool {
    // SAFETY: forwarded from the caller.
    unsafe { redirect(uc, guest_fs, |pc| map.lookup_exact(pc), exit::INTERRUPT, crate::ctx::FaultInfo::default()) }
}

/// Rebuild the guest state at the guest instruction `find` names for the interrupted host PC and
/// make the signal return leave generated code with `reason`.
///
/// # Safety
/// As for [`redirect_fault`].
unsafe fn redirect(
    uc: *mut libc::ucontext_t,
    guest_fs: u64,
    find: impl Fn(u64) -> Option<crate::fault::GuestFault>,
    reason: u64,
    info: crate::ctx::FaultInfo,
) -> bool {
    use crate::ctx::ThreadCtx;
    let gs: u64;
    // SAFETY: RDGSBASE is enabled (HWCAP2_FSGSBASE), as for entering generated code.
    unsafe { core::arch::asm!("rdgsbase {}", out(reg) gs, options(nomem, nostack)) };
    if gs == 0 {
        return false;
    }
    // SAFETY: the caller passes the handler's own context.
    let uc = unsafe { &mut *uc };
    let g = &mut uc.uc_mcontext.gregs;
    let Some(f) = find(g[libc::REG_RIP as usize] as u64) else { return false };
    let ctx = gs as *mut ThreadCtx;
    // SAFETY: a non-zero GS base inside generated code is the entered context (checked by its
    // magic word); the dispatcher is suspended in `enter`, so nothing else touches it.
    let ctx = unsafe {
        if *(gs as *const u64).byte_add(SLOT_MAGIC) != MAGIC {
            return false;
        }
        &mut *ctx
    };
    let cpu = &mut ctx.cpu;
    let order = [
        libc::REG_RAX, libc::REG_RCX, libc::REG_RDX, libc::REG_RBX, libc::REG_RSP, libc::REG_RBP,
        libc::REG_RSI, libc::REG_RDI, libc::REG_R8, libc::REG_R9, libc::REG_R10, libc::REG_R11,
        libc::REG_R12, libc::REG_R13, libc::REG_R14, libc::REG_R15,
    ];
    for (n, r) in order.iter().enumerate() {
        cpu.gpr[n] = g[*r as usize] as u64;
    }
    if f.fixup_reg != crate::fault::NO_FIXUP {
        // SAFETY: the slot offset names a word of the context (set by this backend).
        cpu.gpr[usize::from(f.fixup_reg & 15)] = unsafe { *(gs as *const u64).byte_add(usize::from(f.fixup_slot)) };
    }
    cpu.rflags = g[libc::REG_EFL as usize] as u64;
    cpu.rip = f.guest_pc;
    cpu.fs_base = guest_fs;
    if !uc.uc_mcontext.fpregs.is_null() {
        // SAFETY: the kernel's signal frame holds the FXSAVE image `fpregs` points at.
        let fp = unsafe { &*uc.uc_mcontext.fpregs };
        cpu.mxcsr = fp.mxcsr;
        for (i, x) in fp._xmm.iter().enumerate() {
            let e = x.element;
            cpu.xmm[i] = [u64::from(e[0]) | u64::from(e[1]) << 32, u64::from(e[2]) | u64::from(e[3]) << 32];
        }
    }
    ctx.fault = info;
    if matches!(info.signo, libc::SIGFPE | libc::SIGILL | libc::SIGTRAP) {
        // For these, si_addr is the instruction's address, which the guest knows by its own.
        ctx.fault.addr = f.guest_pc;
    }
    ctx.exit_reason = reason;
    g[libc::REG_RIP as usize] = ldnc_x86_fault_exit as *const () as usize as i64;
    true
}

/// If the current thread is inside generated code (GS base points at an entered context), switch
/// FS back to the host's so Rust code (thread-locals) works, and return the guest FS base to put
/// back with [`leave_signal_handler`]. Call first thing in a host signal handler.
///
/// # Safety
/// Must be called from a signal handler on the thread that received the signal, before any
/// thread-local access, and paired with [`leave_signal_handler`].
pub unsafe fn enter_signal_handler() -> Option<u64> {
    let gs: u64;
    // SAFETY: RDGSBASE is enabled on every kernel ld-nc supports on x86_64 (HWCAP2_FSGSBASE).
    unsafe { core::arch::asm!("rdgsbase {}", out(reg) gs, options(nomem, nostack)) };
    if gs == 0 {
        return None;
    }
    let magic: u64;
    let host_fs: u64;
    let guest_fs: u64;
    // SAFETY: a non-zero GS base on a thread of ld-nc is only ever set to a live ThreadCtx, whose
    // magic slot we check before trusting the rest.
    unsafe {
        core::arch::asm!(
            "mov {m}, gs:[{sm}]",
            "mov {h}, gs:[{sh}]",
            "rdfsbase {g}",
            m = out(reg) magic, h = out(reg) host_fs, g = out(reg) guest_fs,
            sm = const SLOT_MAGIC, sh = const SLOT_HOST_FS,
            options(nostack, readonly)
        );
    }
    if magic != MAGIC || guest_fs == host_fs {
        return None;
    }
    // SAFETY: restoring the host's own FS base.
    unsafe { core::arch::asm!("wrfsbase {}", in(reg) host_fs, options(nomem, nostack)) };
    Some(guest_fs)
}

/// Undo [`enter_signal_handler`] before returning from a signal handler.
///
/// # Safety
/// `saved` must come from the matching [`enter_signal_handler`] call on this thread.
pub unsafe fn leave_signal_handler(saved: Option<u64>) {
    if let Some(fs) = saved {
        // SAFETY: putting back the guest FS base that was live when the signal arrived.
        unsafe { core::arch::asm!("wrfsbase {}", in(reg) fs, options(nomem, nostack)) };
    }
}
