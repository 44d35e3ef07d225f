//! Guest signals. The guest's handlers are guest code, so they are never installed on the host:
//! for a caught signal ld-nc installs [`host_handler`], which only records the signal and its
//! `siginfo`; the run loop then delivers it at the next exit from translated code by building an
//! x86_64 `rt_sigframe` on the guest stack and entering the guest handler, and `rt_sigreturn`
//! restores the registers from that frame. SIG_DFL and SIG_IGN are set on the host as they are,
//! so default actions (termination, core, stop) happen for real.
//!
//! The guest's signal mask is the host thread's mask (rt_sigprocmask passes through), so blocked
//! signals stay pending in the kernel exactly as for a native process.
//!
//! A caught signal is recorded for the host thread the kernel delivered it to (its pending word
//! in `threads`' slot table), so a `tgkill` reaches the thread it names and a process-directed
//! signal the thread the kernel chose; that thread delivers it. The handler also stops the thread's
//! translated code at the next guest instruction boundary (retrying with a short timer when the
//! signal lands inside one instruction's host code), so a thread spinning in translated code gets
//! its signal promptly.
//!
//! A fault signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE) that another process or thread *sent*
//! (`kill`, `raise`, `tgkill`: `si_code` ≤ 0) is not a fault: it is handled as an asynchronous
//! signal, delivered to the guest's handler or killing the process by its default action
//! ([`sent_fault_signal`]). Faults raised by translated code become dispatcher exits (`smc.rs`)
//! and are delivered as synchronous signals ([`fault`]).

use std::sync::atomic::{AtomicU64, Ordering};

use translator::{CpuState, Gpr};

use crate::mem::PROT_WRITE;
use crate::process::{Process, NSIG};
use crate::syscall::layout::{sa, GuestSigaction};

/// Signals recorded by [`host_handler`] on a host thread that runs no guest thread, not yet
/// delivered (bit `n - 1` for signal `n`); guest threads have their own words (`threads::Slot`).
static PENDING: AtomicU64 = AtomicU64::new(0);

/// Signals the guest catches (a handler, not SIG_DFL or SIG_IGN): bit `n - 1`. Readable from
/// signal handlers.
static GUEST_CAUGHT: AtomicU64 = AtomicU64::new(0);

/// Ignored by the guest: bit `n - 1`.
static GUEST_IGNORED: AtomicU64 = AtomicU64::new(0);

/// Keep the handler-readable copy of the guest's disposition of `sig` in step.
pub fn note_action(sig: usize, act: &GuestSigaction) {
    let bit = 1u64 << (sig - 1);
    let (caught, ignored) = (act.handler > 1, act.handler == 1);
    if caught {
        GUEST_CAUGHT.fetch_or(bit, Ordering::SeqCst);
    } else {
        GUEST_CAUGHT.fetch_and(!bit, Ordering::SeqCst);
    }
    if ignored {
        GUEST_IGNORED.fetch_or(bit, Ordering::SeqCst);
    } else {
        GUEST_IGNORED.fetch_and(!bit, Ordering::SeqCst);
    }
}

/// Record `sig` (with its siginfo) as pending for the calling thread. Async-signal-safe.
fn record(s: usize, info: *const libc::siginfo_t) {
    if !info.is_null() {
        let words = info.cast::<u64>();
        for (i, slot) in SIGINFO[s].iter().enumerate() {
            // SAFETY: the kernel passes a full 128-byte siginfo_t.
            slot.store(unsafe { words.add(i).read_unaligned() }, Ordering::Relaxed);
        }
    }
    match crate::threads::current_slot() {
        Some(t) => t.pending.fetch_or(1 << (s - 1), Ordering::SeqCst),
        None => PENDING.fetch_or(1 << (s - 1), Ordering::SeqCst),
    };
}

/// From a signal handler: stop the thread's translated code at the next guest instruction
/// boundary. When the signal landed inside one guest instruction's host code, the thread's retry
/// timer sends the kick again shortly; outside translated code nothing is needed (the run loop
/// checks pending signals at every exit). Async-signal-safe.
pub fn leave_translated_code(uc: *mut libc::c_void) {
    match crate::smc::interrupt_guest(uc) {
        crate::smc::Interrupt::Missed => {
            if let Some(t) = crate::threads::current_slot() {
                crate::threads::arm_retry(t);
            }
        }
        // In native code (a bridged call) or in the runtime: the native call's return stops
        // for delivery (in the runtime the flag is spurious and harmless).
        crate::smc::Interrupt::NotInCode => translator::dispatch::request_attention_here(),
        crate::smc::Interrupt::Stopped => {}
    }
}

/// A fault signal sent by a process (`si_code` ≤ 0), seen by ld-nc's fault handler: the guest's
/// handler gets it like any asynchronous signal; without one, the default action ends the
/// process with that signal (quietly, as natively: the parent's shell reports it).
/// Async-signal-safe.
pub fn sent_fault_signal(sig: i32, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let s = sig as usize;
    let bit = 1u64 << (s - 1);
    if GUEST_IGNORED.load(Ordering::SeqCst) & bit != 0 {
        return;
    }
    if GUEST_CAUGHT.load(Ordering::SeqCst) & bit != 0 {
        record(s, info);
        leave_translated_code(uc);
        return;
    }
    // SAFETY: default disposition, then the signal unblocked and sent to this thread again: the
    // kernel ends the process with it. Raw calls only.
    unsafe {
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, core::ptr::null_mut());
        let mask: u64 = bit;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_UNBLOCK, &mask as *const u64, core::ptr::null_mut::<u64>(), 8);
        libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::syscall(libc::SYS_gettid), sig);
    }
}

/// Words of a `siginfo_t` (128 bytes).
const SIGINFO_WORDS: usize = 16;

/// The last `siginfo` recorded per signal (standard signals do not queue, so one is enough).
static SIGINFO: [[AtomicU64; SIGINFO_WORDS]; NSIG + 1] =
    [const { [const { AtomicU64::new(0) }; SIGINFO_WORDS] }; NSIG + 1];

/// Host handler for guest-caught signals: async-signal-safe, only atomics.
extern "C" fn host_handler(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let Ok(s) = usize::try_from(sig) else { return };
    if s == 0 || s > NSIG {
        return;
    }
    record(s, info);
    // Translated code may be spinning without ever exiting: stop it at an instruction boundary.
    leave_translated_code(uc);
}

/// Whether a signal is a synchronous fault the host CPU raises itself.
pub fn is_synchronous(sig: usize) -> bool {
    matches!(sig as i32, libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP)
}

/// Set the host disposition matching guest action `act` for `sig`. The fault signals keep ld-nc's
/// own handler (`smc.rs`) whatever the guest asks: it tells self-modifying-code writes from real
/// faults and turns faults in translated code into dispatcher exits, which then follow the
/// guest's action.
pub fn install_host(sig: usize, act: &GuestSigaction) -> Result<(), i32> {
    if matches!(sig as i32, libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE) {
        return Ok(());
    }
    // SAFETY: all-zero is a valid sigaction.
    let mut h: libc::sigaction = unsafe { core::mem::zeroed() };
    match act.handler {
        0 => h.sa_sigaction = libc::SIG_DFL,
        1 => h.sa_sigaction = libc::SIG_IGN,
        _ if is_synchronous(sig) => h.sa_sigaction = libc::SIG_DFL,
        _ => {
            h.sa_sigaction = host_handler as *const () as usize;
            // On ld-nc's alternate stack: the guest's stack may be what is running out. Never
            // SA_RESTART on the host: an interrupted syscall must come back with EINTR so the
            // guest handler runs now; `syscall_result` then restarts it for the guest as the
            // kernel would if the guest asked for SA_RESTART.
            h.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        }
    }
    if act.flags & sa::SA_NOCLDSTOP != 0 {
        h.sa_flags |= libc::SA_NOCLDSTOP;
    }
    if act.flags & sa::SA_NOCLDWAIT != 0 {
        h.sa_flags |= libc::SA_NOCLDWAIT;
    }
    // SAFETY: the mask is ours to fill.
    unsafe { libc::sigemptyset(&mut h.sa_mask) };
    // SAFETY: valid pointers; the handler is async-signal-safe.
    if unsafe { libc::sigaction(sig as i32, &h, core::ptr::null_mut()) } != 0 {
        return Err(crate::mem::errno());
    }
    Ok(())
}

/// The guest's view of the initial dispositions: what ld-nc inherited (SIG_IGN survives exec).
///
/// Rust's runtime sets SIGPIPE to SIG_IGN before `main`, which would leak into the guest (a
/// writer to a closed pipe would get EPIPE instead of dying): it goes back to SIG_DFL first, the
/// disposition nearly every process starts with.
pub fn inherited_actions(p: &mut Process) {
    // SAFETY: restoring a default disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    for s in 1..=NSIG {
        // SAFETY: all-zero is a valid sigaction; querying only.
        let mut old: libc::sigaction = unsafe { core::mem::zeroed() };
        // SAFETY: valid pointers, query only.
        if unsafe { libc::sigaction(s as i32, core::ptr::null(), &mut old) } == 0
            && old.sa_sigaction == libc::SIG_IGN
        {
            p.sigactions[s].handler = 1;
            note_action(s, &p.sigactions[s]);
        }
    }
}

fn host_mask() -> u64 {
    let mut old = 0u64;
    // SAFETY: query only; the kernel sigset is 8 bytes.
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_BLOCK, core::ptr::null::<u64>(), &mut old as *mut u64, 8) };
    old
}

fn set_host_mask(m: u64) {
    // Never block SIGKILL/SIGSTOP (the kernel ignores them anyway), nor ld-nc's kick.
    let m = m & !((1 << (libc::SIGKILL - 1)) | (1 << (libc::SIGSTOP - 1)) | (1 << (crate::threads::KICK_SIGNAL - 1)));
    // SAFETY: sets this thread's mask from a valid 8-byte set.
    unsafe { libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &m as *const u64, core::ptr::null_mut::<u64>(), 8) };
}

/// Default action of a signal is to ignore it.
fn default_ignores(sig: usize) -> bool {
    matches!(sig as i32, libc::SIGCHLD | libc::SIGURG | libc::SIGWINCH | libc::SIGCONT)
}

/// Terminate ld-nc as the guest would have been by `sig` with its default action: message, then
/// re-raise with SIG_DFL so the parent sees WIFSIGNALED; 128+sig if that does not kill us.
pub fn die(sig: i32, what: &str, addr: u64) -> ! {
    eprintln!("ld-nc: guest killed by signal {sig} ({}): {what} at {addr:#x}", signal_name(sig));
    // SAFETY: resetting a disposition and unblocking it has no memory-safety preconditions.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
        libc::raise(sig);
        libc::_exit(128 + sig)
    }
}

/// Short name of a signal.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGCHLD => "SIGCHLD",
        _ => "signal",
    }
}

/// x86_64 `rt_sigframe` layout (arch/x86/include/asm/sigframe.h, uapi sigcontext.h).
pub mod frame {
    /// `pretcode` (the return address: `sa_restorer`).
    pub const PRETCODE: u64 = 0;
    /// `struct ucontext uc`.
    pub const UC: u64 = 8;
    /// `uc.uc_flags`.
    pub const UC_FLAGS: u64 = UC;
    /// `uc.uc_link`.
    pub const UC_LINK: u64 = UC + 8;
    /// `uc.uc_stack` (stack_t: sp, flags, size).
    pub const UC_STACK: u64 = UC + 16;
    /// `uc.uc_mcontext` (struct sigcontext, 256 bytes).
    pub const MCONTEXT: u64 = UC + 40;
    /// `uc.uc_sigmask`.
    pub const UC_SIGMASK: u64 = MCONTEXT + 256;
    /// `struct siginfo info`.
    pub const INFO: u64 = UC_SIGMASK + 8;
    /// Size of the frame (fpstate is placed separately, above it).
    pub const SIZE: u64 = INFO + 128;
    /// sigcontext word index of each GPR (x86 encoding order): r8..r15, rdi, rsi, rbp, rbx,
    /// rdx, rax, rcx, rsp are words 0..=15.
    pub const GPR_SLOT: [u64; 16] = [13, 14, 12, 11, 15, 10, 9, 8, 0, 1, 2, 3, 4, 5, 6, 7];
    /// sigcontext word of rip.
    pub const RIP_SLOT: u64 = 16;
    /// sigcontext word of eflags.
    pub const EFLAGS_SLOT: u64 = 17;
    /// sigcontext word of cs/gs/fs/ss (four u16).
    pub const SEG_SLOT: u64 = 18;
    /// sigcontext word of err, trapno, oldmask, cr2 (19..=22), then fpstate (23).
    pub const TRAPNO_SLOT: u64 = 20;
    /// sigcontext word of oldmask.
    pub const OLDMASK_SLOT: u64 = 21;
    /// sigcontext word of cr2.
    pub const CR2_SLOT: u64 = 22;
    /// sigcontext word of the fpstate pointer.
    pub const FPSTATE_SLOT: u64 = 23;
    /// fxsave area size.
    pub const FPSTATE_SIZE: u64 = 512;
}

/// Stack bytes a frame needs, for AT_MINSIGSTKSZ.
pub const FRAME_NEED: u64 = frame::SIZE + frame::FPSTATE_SIZE + 64 + 128 + 16;

fn put64(buf: &mut [u8], off: u64, v: u64) {
    buf[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
}

fn get64(buf: &[u8], off: u64) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[off as usize..off as usize + 8]);
    u64::from_le_bytes(w)
}

/// Where the frame for a signal goes, and the frame and fxsave images: pure, for tests.
/// Returns `(frame address, frame bytes, fpstate address, fpstate bytes)`.
pub fn build_frame(
    cpu: &CpuState,
    info: &[u8; 128],
    act: &GuestSigaction,
    altstack: (u64, u64, bool),
    old_mask: u64,
) -> (u64, Vec<u8>, u64, Vec<u8>) {
    let (ss_sp, ss_size, use_alt) = altstack;
    let rsp = cpu.get(Gpr::Rsp);
    // Guest-controlled values: wrapping arithmetic, the caller checks the result is guest memory.
    let mut sp = if use_alt { ss_sp.wrapping_add(ss_size) } else { rsp.wrapping_sub(128) };
    sp = sp.wrapping_sub(frame::FPSTATE_SIZE) & !63;
    let fp_at = sp;
    sp = sp.wrapping_sub(frame::SIZE);
    // As after a `call`: (sp + 8) is 16-byte aligned at handler entry.
    sp = (sp.wrapping_add(8) & !15).wrapping_sub(8);

    let mut f = vec![0u8; frame::SIZE as usize];
    put64(&mut f, frame::PRETCODE, act.restorer);
    put64(&mut f, frame::UC_FLAGS, 0);
    put64(&mut f, frame::UC_LINK, 0);
    put64(&mut f, frame::UC_STACK, ss_sp);
    put64(&mut f, frame::UC_STACK + 8, if use_alt { 1 } else { 2 }); // SS_ONSTACK / SS_DISABLE
    put64(&mut f, frame::UC_STACK + 16, ss_size);
    for (r, slot) in frame::GPR_SLOT.iter().enumerate() {
        put64(&mut f, frame::MCONTEXT + 8 * slot, cpu.gpr[r]);
    }
    put64(&mut f, frame::MCONTEXT + 8 * frame::RIP_SLOT, cpu.rip);
    put64(&mut f, frame::MCONTEXT + 8 * frame::EFLAGS_SLOT, cpu.rflags);
    put64(&mut f, frame::MCONTEXT + 8 * frame::SEG_SLOT, 0x33 | (0x2b << 48)); // cs, ss
    put64(&mut f, frame::MCONTEXT + 8 * frame::OLDMASK_SLOT, old_mask);
    put64(&mut f, frame::MCONTEXT + 8 * frame::FPSTATE_SLOT, fp_at);
    put64(&mut f, frame::UC_SIGMASK, old_mask);
    f[frame::INFO as usize..].copy_from_slice(info);

    let mut fp = vec![0u8; frame::FPSTATE_SIZE as usize];
    fp[0..2].copy_from_slice(&cpu.fcw.to_le_bytes());
    fp[2..4].copy_from_slice(&cpu.fsw.to_le_bytes());
    fp[24..28].copy_from_slice(&cpu.mxcsr.to_le_bytes());
    fp[28..32].copy_from_slice(&0xffffu32.to_le_bytes()); // mxcsr_mask
    for (i, x) in cpu.xmm.iter().enumerate() {
        let o = 160 + 16 * i;
        fp[o..o + 8].copy_from_slice(&x[0].to_le_bytes());
        fp[o + 8..o + 16].copy_from_slice(&x[1].to_le_bytes());
    }
    (sp, f, fp_at, fp)
}

/// Restore registers and return the signal mask from a frame image (`rt_sigreturn`).
pub fn restore_frame(cpu: &mut CpuState, f: &[u8], fp: Option<&[u8]>) -> u64 {
    for (r, slot) in frame::GPR_SLOT.iter().enumerate() {
        cpu.gpr[r] = get64(f, frame::MCONTEXT + 8 * slot);
    }
    cpu.rip = get64(f, frame::MCONTEXT + 8 * frame::RIP_SLOT);
    // User-modifiable flags only (as the kernel's FIX_EFLAGS).
    let user = 0x0004_0dd5u64 | (1 << 21);
    let fl = get64(f, frame::MCONTEXT + 8 * frame::EFLAGS_SLOT);
    cpu.rflags = (cpu.rflags & !user) | (fl & user) | 2;
    if let Some(fp) = fp {
        cpu.fcw = u16::from_le_bytes([fp[0], fp[1]]);
        cpu.fsw = u16::from_le_bytes([fp[2], fp[3]]);
        cpu.mxcsr = u32::from_le_bytes([fp[24], fp[25], fp[26], fp[27]]);
        for (i, x) in cpu.xmm.iter_mut().enumerate() {
            let o = 160 + 16 * i as u64;
            x[0] = get64(fp, o);
            x[1] = get64(fp, o + 8);
        }
    }
    get64(f, frame::UC_SIGMASK)
}

/// Enter the guest handler for `sig` with `info` (or die per its disposition). Returns false if
/// the signal was dropped (ignored).
pub fn deliver(cpu: &mut CpuState, p: &mut Process, sig: usize, info: &[u8; 128], what: &str, addr: u64) -> bool {
    let act = p.sigactions[sig];
    match act.handler {
        0 => {
            if default_ignores(sig) {
                return false;
            }
            die(sig as i32, what, addr)
        }
        1 => return false,
        _ => {}
    }
    let old_mask = host_mask();
    let alt = crate::threads::altstack();
    let rsp = cpu.get(Gpr::Rsp);
    let on_alt = alt.flags & 2 == 0 && rsp.wrapping_sub(alt.sp) < alt.size;
    let use_alt = act.flags & sa::SA_ONSTACK != 0 && alt.flags & 2 == 0 && alt.size > 0 && !on_alt;
    let (at, f, fp_at, fp) = build_frame(cpu, info, &act, (alt.sp, alt.size, use_alt || on_alt), old_mask);
    let ok = {
        let m = p.mem.borrow();
        let fits = |a: u64, n: usize| a.checked_add(n as u64).is_some_and(|e| m.allows_data(a, e, PROT_WRITE));
        fits(at, f.len()) && fits(fp_at, fp.len())
    };
    if !ok || act.flags & sa::SA_RESTORER == 0 {
        // The kernel would force SIGSEGV: no room for the frame, or no way back.
        die(libc::SIGSEGV, "cannot build the signal frame", rsp);
    }
    // SAFETY: both ranges are guest-writable memory (checked above), identity mapped.
    unsafe {
        core::ptr::copy_nonoverlapping(f.as_ptr(), at as *mut u8, f.len());
        core::ptr::copy_nonoverlapping(fp.as_ptr(), fp_at as *mut u8, fp.len());
    }
    log::debug!(target: "ldnc::signals", "deliver {sig} to {:#x}, frame {at:#x}, from {:#x}", act.handler, cpu.rip);
    cpu.set(Gpr::Rsp, at);
    cpu.set(Gpr::Rdi, sig as u64);
    cpu.set(Gpr::Rsi, at + frame::INFO);
    cpu.set(Gpr::Rdx, at + frame::UC);
    cpu.set(Gpr::Rax, 0);
    cpu.rip = act.handler;
    // The handler runs with DF clear and no pending trap flag.
    cpu.rflags &= !((1 << 10) | (1 << 8));
    let mut mask = old_mask | act.mask;
    if act.flags & sa::SA_NODEFER == 0 {
        mask |= 1 << (sig - 1);
    }
    set_host_mask(mask);
    if act.flags & sa::SA_RESETHAND != 0 {
        p.sigactions[sig] = GuestSigaction::default();
        note_action(sig, &p.sigactions[sig]);
        let _ = install_host(sig, &p.sigactions[sig]);
    }
    true
}

/// x86_64 syscalls the kernel never restarts after a handler (they return EINTR even with
/// SA_RESTART: `-ERESTARTNOHAND` and `-ERESTART_RESTARTBLOCK` in the kernel).
const NEVER_RESTARTED: &[u64] = &[
    7,   // poll
    23,  // select
    34,  // pause
    35,  // nanosleep
    128, // rt_sigtimedwait
    130, // rt_sigsuspend
    230, // clock_nanosleep
    232, // epoll_wait
    270, // pselect6
    271, // ppoll
    281, // epoll_pwait
    441, // epoll_pwait2
];

/// Put the result of syscall `nr` in the guest's registers. An EINTR caused by a signal the guest
/// handles becomes, if that handler has SA_RESTART and the syscall restarts, a restart: RIP back
/// on the `syscall` instruction and RAX the syscall number again, so the handler (delivered next)
/// returns into the syscall — the kernel's `-ERESTARTSYS` handling.
pub fn syscall_result(cpu: &mut CpuState, p: &Process, nr: u64, v: i64) {
    if v == -i64::from(libc::EINTR) && !NEVER_RESTARTED.contains(&nr) {
        let pending = pending_here();
        let deliverable = if crate::threads::force_signals(false) { pending } else { pending & !host_mask() };
        if deliverable != 0 {
            let sig = deliverable.trailing_zeros() as usize + 1;
            let act = &p.sigactions[sig];
            if act.handler > 1 && act.flags & sa::SA_RESTART != 0 {
                cpu.rip = cpu.rip.wrapping_sub(2);
                cpu.set(Gpr::Rax, nr);
                return;
            }
        }
    }
    plain_result(cpu, v);
}

/// Put `v` in RAX as the result of a `syscall`, with what the instruction itself leaves behind.
pub fn plain_result(cpu: &mut CpuState, v: i64) {
    cpu.set(Gpr::Rax, v as u64);
    cpu.set(Gpr::Rcx, cpu.rip);
    cpu.set(Gpr::R11, cpu.rflags);
}

/// Signals waiting for the calling thread (its own and those recorded outside guest threads).
pub fn pending_here() -> u64 {
    let mine = crate::threads::my_slot().map_or(0, |t| t.pending.load(Ordering::SeqCst));
    mine | PENDING.load(Ordering::SeqCst)
}

/// Deliver recorded asynchronous signals that are not blocked (one per call, the lowest; the
/// loop calls again at the next exit).
pub fn deliver_pending(cpu: &mut CpuState, p: &mut Process) {
    let pending = pending_here();
    if pending == 0 {
        return;
    }
    let deliverable = if crate::threads::force_signals(true) { pending } else { pending & !host_mask() };
    if deliverable == 0 {
        return;
    }
    let sig = deliverable.trailing_zeros() as usize + 1;
    let bit = 1u64 << (sig - 1);
    let taken = crate::threads::my_slot().is_some_and(|t| t.pending.fetch_and(!bit, Ordering::SeqCst) & bit != 0);
    if !taken && PENDING.fetch_and(!bit, Ordering::SeqCst) & bit == 0 {
        return;
    }
    let mut info = [0u8; 128];
    for (i, w) in SIGINFO[sig].iter().enumerate() {
        info[8 * i..8 * i + 8].copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    deliver(cpu, p, sig, &info, "signal", cpu.rip);
}

/// A synchronous signal from a translator exit (int3, ud2, hlt, division error…): guest handler
/// if any, else the default action.
pub fn fault(cpu: &mut CpuState, p: &mut Process, sig: i32, code: i32, addr: u64, what: &str) {
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&sig.to_le_bytes());
    info[8..12].copy_from_slice(&code.to_le_bytes());
    info[16..24].copy_from_slice(&addr.to_le_bytes());
    let s = sig as usize;
    let blocked = host_mask() & (1 << (s - 1)) != 0;
    if blocked || p.sigactions[s].handler <= 1 {
        // A blocked or ignored synchronous fault kills, as the kernel's force_sig does.
        die(sig, what, addr);
    }
    deliver(cpu, p, s, &info, what, addr);
}

/// The signal frame `rt_sigreturn` found is not readable guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadFrame;

/// `rt_sigreturn`: the frame is at RSP - 8 (the handler's `ret` popped `pretcode`).
pub fn sigreturn(cpu: &mut CpuState, p: &Process) -> Result<(), BadFrame> {
    let at = cpu.get(Gpr::Rsp).wrapping_sub(8);
    let m = p.mem.borrow();
    if !at.checked_add(frame::SIZE).is_some_and(|e| m.allows_data(at, e, crate::mem::PROT_READ)) {
        return Err(BadFrame);
    }
    let mut f = vec![0u8; frame::SIZE as usize];
    // SAFETY: guest-readable memory checked above.
    unsafe { core::ptr::copy_nonoverlapping(at as *const u8, f.as_mut_ptr(), f.len()) };
    let fp_at = get64(&f, frame::MCONTEXT + 8 * frame::FPSTATE_SLOT);
    let fp_ok = fp_at.checked_add(frame::FPSTATE_SIZE).is_some_and(|e| m.allows_data(fp_at, e, crate::mem::PROT_READ));
    let fp = if fp_at != 0 && fp_ok {
        let mut v = vec![0u8; frame::FPSTATE_SIZE as usize];
        // SAFETY: guest-readable memory checked above.
        unsafe { core::ptr::copy_nonoverlapping(fp_at as *const u8, v.as_mut_ptr(), v.len()) };
        Some(v)
    } else {
        None
    };
    drop(m);
    let mask = restore_frame(cpu, &f, fp.as_deref());
    set_host_mask(mask);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_and_round_trip() {
        let mut cpu = CpuState::default();
        for (i, r) in cpu.gpr.iter_mut().enumerate() {
            *r = 0x1000 + i as u64;
        }
        cpu.set(Gpr::Rsp, 0x7fff_0000_1238);
        cpu.rip = 0x401234;
        cpu.rflags = 0x246;
        cpu.xmm[3] = [0x1111, 0x2222];
        cpu.mxcsr = 0x1fa0;
        let act = GuestSigaction { handler: 0x402000, flags: sa::SA_RESTORER, restorer: 0x403000, mask: 0 };
        let mut info = [0u8; 128];
        info[0] = 10;
        let (at, f, fp_at, fp) = build_frame(&cpu, &info, &act, (0, 0, false), 0x55);
        assert_eq!((at + 8) % 16, 0, "handler entry alignment as after a call");
        assert_eq!(fp_at % 64, 0);
        assert!(at + frame::SIZE <= fp_at, "frame below fpstate");
        assert!(fp_at + frame::FPSTATE_SIZE <= 0x7fff_0000_1238 - 128, "red zone preserved");
        assert_eq!(frame::SIZE, 440);
        assert_eq!(get64(&f, 0), 0x403000);
        // sigcontext: r8 first, rdi at word 8, rax at 13, rsp at 15, rip at 16.
        assert_eq!(get64(&f, frame::MCONTEXT), 0x1008);
        assert_eq!(get64(&f, frame::MCONTEXT + 8 * 8), 0x1007);
        assert_eq!(get64(&f, frame::MCONTEXT + 8 * 13), 0x1000);
        assert_eq!(get64(&f, frame::MCONTEXT + 8 * 15), 0x7fff_0000_1238);
        assert_eq!(get64(&f, frame::MCONTEXT + 8 * 16), 0x401234);
        assert_eq!(get64(&f, frame::UC_SIGMASK), 0x55);
        assert_eq!(f[frame::INFO as usize], 10);

        let mut back = CpuState::default();
        let mask = restore_frame(&mut back, &f, Some(&fp));
        assert_eq!(mask, 0x55);
        assert_eq!(back.gpr, cpu.gpr);
        assert_eq!(back.rip, cpu.rip);
        assert_eq!(back.rflags, cpu.rflags);
        assert_eq!(back.xmm, cpu.xmm);
        assert_eq!(back.mxcsr, cpu.mxcsr);
    }

    #[test]
    fn altstack_frame_is_inside_it() {
        let cpu = CpuState::default();
        let act = GuestSigaction { handler: 1, flags: sa::SA_RESTORER | sa::SA_ONSTACK, restorer: 2, mask: 0 };
        let (at, _, fp_at, _) = build_frame(&cpu, &[0; 128], &act, (0x10000, 0x2000, true), 0);
        assert!(at >= 0x10000 && fp_at + 512 <= 0x12000);
    }
}
