//! Signal syscalls. The guest's mask is the host thread's mask, so the mask calls pass through;
//! dispositions and the alternate stack are emulated because a guest handler is guest code (see
//! [`crate::signals`]).

use super::layout::{GuestSigaction, X86_SIGACTION_SIZE};
use super::numbers::x86;
use super::{err, Handler, Sys, SysRet};
use crate::process::NSIG;
use crate::{signals, tri};

/// Pass-through: masks, pending sets and queueing use the same `sigset_t`/`siginfo_t` everywhere.
pub const PASS: &[(u32, u8)] = &[
    (x86::RT_SIGPENDING, 2),
    (x86::RT_SIGTIMEDWAIT, 4),
    (x86::RT_SIGQUEUEINFO, 3),
    (x86::RT_TGSIGQUEUEINFO, 4),
];

/// Handlers.
pub const CUSTOM: &[(u32, Handler)] = &[
    (x86::RT_SIGACTION, rt_sigaction),
    (x86::RT_SIGPROCMASK, rt_sigprocmask),
    (x86::RT_SIGRETURN, rt_sigreturn),
    (x86::SIGALTSTACK, sigaltstack),
    (x86::PAUSE, pause),
    (x86::RT_SIGSUSPEND, rt_sigsuspend),
];

fn rt_sigaction(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Guest handlers are guest addresses: recorded here, a host handler queues the signal.
    let (sig, act, oact, setsize) = (a[0] as usize, a[1], a[2], a[3]);
    if setsize != 8 || sig == 0 || sig > NSIG {
        return err(libc::EINVAL);
    }
    if sig == crate::threads::KICK_SIGNAL as usize {
        // ld-nc's own (as qemu-user's SIGRTMAX): refused, which Go's runtime and glibc expect
        // of emulators.
        return err(libc::EINVAL);
    }
    let new = if act != 0 {
        if sig == libc::SIGKILL as usize || sig == libc::SIGSTOP as usize {
            return err(libc::EINVAL);
        }
        let raw = tri!(sys.read_guest(act, X86_SIGACTION_SIZE));
        let mut b = [0u8; X86_SIGACTION_SIZE];
        b.copy_from_slice(&raw);
        Some(GuestSigaction::from_x86(&b))
    } else {
        None
    };
    let old = sys.proc.sigactions[sig];
    if oact != 0 {
        tri!(sys.write_guest(oact, &old.to_x86()));
    }
    if let Some(n) = new {
        if let Err(e) = signals::install_host(sig, &n) {
            return err(e);
        }
        sys.proc.sigactions[sig] = n;
        signals::note_action(sig, &n);
    }
    SysRet::Ret(0)
}

fn rt_sigprocmask(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // The guest's mask is the host thread's, except that ld-nc's kick signal is never blocked:
    // a thread that blocked it could not be made to leave translated code.
    let (how, set, oset, size) = (a[0] as i32, a[1], a[2], a[3]);
    if size != 8 {
        return err(libc::EINVAL);
    }
    let mut new = 0u64;
    if set != 0 {
        new = tri!(sys.read_u64(set));
        if how != libc::SIG_UNBLOCK {
            new &= !(1u64 << (crate::threads::KICK_SIGNAL - 1));
        }
    }
    let mut old = 0u64;
    let setp = if set != 0 { &new as *const u64 as u64 } else { 0 };
    let r = super::hs(libc::SYS_rt_sigprocmask, &[how as u64, setp, &mut old as *mut u64 as u64, 8]);
    if r != SysRet::Ret(0) {
        return r;
    }
    if oset != 0 {
        tri!(sys.write_guest(oset, &old.to_le_bytes()));
    }
    SysRet::Ret(0)
}

fn rt_sigreturn(sys: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    // Registers come back from the frame the run loop built; RAX included.
    if signals::sigreturn(sys.cpu, sys.proc).is_err() {
        signals::die(libc::SIGSEGV, "rt_sigreturn with a bad frame", sys.cpu.rip);
    }
    SysRet::Restored
}

fn sigaltstack(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Emulated: guest handlers are entered by ld-nc on the guest's stacks, the host's own
    // handler never needs an alternate stack.
    let (ss, old) = (a[0], a[1]);
    let cur = crate::threads::altstack();
    let rsp = sys.cpu.get(translator::Gpr::Rsp);
    let on = cur.flags & 2 == 0 && rsp.wrapping_sub(cur.sp) < cur.size;
    if old != 0 {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&cur.sp.to_le_bytes());
        let flags = if on { 1 } else { cur.flags };
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[16..].copy_from_slice(&cur.size.to_le_bytes());
        tri!(sys.write_guest(old, &b));
    }
    if ss != 0 {
        if on {
            return err(libc::EPERM);
        }
        let b = tri!(sys.read_guest(ss, 24));
        let sp = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let flags = i32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        let size = u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]);
        if flags & !(2 | (1 << 31)) != 0 {
            return err(libc::EINVAL);
        }
        if flags & 2 == 0 && size < 2048 {
            return err(libc::ENOMEM);
        }
        crate::threads::set_altstack(crate::process::AltStack { sp, flags: flags & 2, size });
    }
    SysRet::Ret(0)
}

fn rt_sigsuspend(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Signals it was waiting for are blocked again when it returns: deliver them anyway.
    super::with_temp_mask(libc::SYS_rt_sigsuspend, &[a[0], a[1]], true)
}

fn pause(_: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    // No pause on riscv64: ppoll with nothing to wait for sleeps until a signal.
    super::hs_blocking(libc::SYS_ppoll, &[0, 0, 0, 0, 8])
}
