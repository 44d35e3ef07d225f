//! Processes and identity. IDs, waiting, killing and limits pass through. Emulated: exit (ld-nc
//! must exit, not a host thread), `arch_prctl` (FS/GS bases are guest CPU state), thread
//! bookkeeping calls that would otherwise replace the host libc's own (`set_tid_address`,
//! `set_robust_list`, `rseq`), process creation (`fork`/`vfork`/`clone`: one guest thread only;
//! vfork becomes fork because a child must not share the translator's memory), and `execve` (an
//! x86_64 program runs through ld-nc again).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use super::numbers::x86;
use super::{err, hs, Handler, Sys, SysRet};
use crate::tri;
use translator::Gpr;

/// Pass-through.
pub const PASS: &[(u32, u8)] = &[
    (x86::GETPID, 0),
    (x86::GETPPID, 0),
    (x86::GETTID, 0),
    (x86::GETUID, 0),
    (x86::GETEUID, 0),
    (x86::GETGID, 0),
    (x86::GETEGID, 0),
    (x86::SETUID, 1),
    (x86::SETGID, 1),
    (x86::SETREUID, 2),
    (x86::SETREGID, 2),
    (x86::SETRESUID, 3),
    (x86::SETRESGID, 3),
    (x86::GETRESUID, 3),
    (x86::GETRESGID, 3),
    (x86::SETFSUID, 1),
    (x86::SETFSGID, 1),
    (x86::GETGROUPS, 2),
    (x86::SETGROUPS, 2),
    (x86::SETPGID, 2),
    (x86::GETPGID, 1),
    (x86::GETSID, 1),
    (x86::SETSID, 0),
    (x86::WAIT4, 4),
    (x86::WAITID, 5),
    (x86::KILL, 2),
    (x86::TKILL, 2),
    (x86::TGKILL, 3),
    (x86::PRLIMIT64, 4),
    (x86::GETRLIMIT, 2),
    (x86::SETRLIMIT, 2),
    (x86::GETRUSAGE, 2),
    (x86::PERSONALITY, 1),
    (x86::PIDFD_OPEN, 2),
    (x86::PIDFD_SEND_SIGNAL, 4),
    (x86::PIDFD_GETFD, 3),
];

/// Handlers.
pub const CUSTOM: &[(u32, Handler)] = &[
    (x86::EXIT, exit),
    (x86::EXIT_GROUP, exit),
    (x86::ARCH_PRCTL, arch_prctl),
    (x86::SET_TID_ADDRESS, set_tid_address),
    (x86::SET_ROBUST_LIST, set_robust_list),
    (x86::RSEQ, rseq),
    (x86::GETPGRP, getpgrp),
    (x86::FORK, fork),
    (x86::VFORK, vfork),
    (x86::CLONE, clone),
    (x86::CLONE3, clone3),
    (x86::EXECVE, execve),
    (x86::PRCTL, prctl),
];

fn exit(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // One guest thread: exit and exit_group both end the process.
    SysRet::Exit(a[0] as i32 & 0xff)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

fn arch_prctl(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // The segment bases are guest CPU state; the backend applies them to FS/GS accesses.
    match a[0] {
        ARCH_SET_FS | ARCH_SET_GS if a[1] >= crate::elf::USER_TOP => err(libc::EPERM),
        ARCH_SET_FS => {
            sys.cpu.fs_base = a[1];
            SysRet::Ret(0)
        }
        ARCH_SET_GS => {
            sys.cpu.gs_base = a[1];
            SysRet::Ret(0)
        }
        ARCH_GET_FS => {
            let v = sys.cpu.fs_base;
            tri!(sys.write_guest(a[1], &v.to_le_bytes()));
            SysRet::Ret(0)
        }
        ARCH_GET_GS => {
            let v = sys.cpu.gs_base;
            tri!(sys.write_guest(a[1], &v.to_le_bytes()));
            SysRet::Ret(0)
        }
        // CET, CPUID faulting, AMX permissions: not available to the guest.
        _ => err(libc::EINVAL),
    }
}

fn set_tid_address(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Recorded, not passed: the host thread's clear_child_tid belongs to the host libc.
    sys.proc.clear_child_tid = a[0];
    hs(libc::SYS_gettid, &[])
}

fn set_robust_list(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // As set_tid_address: the host libc registered its own list for this thread.
    if a[1] != 24 {
        return err(libc::EINVAL);
    }
    sys.proc.robust_list = a[0];
    SysRet::Ret(0)
}

fn rseq(_: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    // The host libc owns this thread's rseq area; glibc runs without rseq on ENOSYS.
    err(libc::ENOSYS)
}

fn getpgrp(_: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    hs(libc::SYS_getpgid, &[0])
}

const CLONE_VM: u64 = 0x100;
const CLONE_FS: u64 = 0x200;
const CLONE_FILES: u64 = 0x400;
const CLONE_SIGHAND: u64 = 0x800;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x1_0000;
const CLONE_SETTLS: u64 = 0x8_0000;
const CLONE_PARENT_SETTID: u64 = 0x10_0000;
const CLONE_CHILD_CLEARTID: u64 = 0x20_0000;
const CLONE_CHILD_SETTID: u64 = 0x100_0000;

/// fork as a guest sees it, with the clone(2) extras that fork-like clones use.
fn fork_like(sys: &mut Sys<'_>, flags: u64, newsp: u64, ptid: u64, ctid: u64, tls: u64) -> SysRet {
    if flags & CLONE_VFORK != 0 {
        return vfork_in_place(sys, flags, newsp, ptid, ctid, tls);
    }
    // SAFETY: ld-nc has one thread, so the child's copy of the host libc is consistent.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return err(crate::mem::errno());
    }
    if pid == 0 {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        if newsp != 0 {
            sys.cpu.set(Gpr::Rsp, newsp);
        }
        if flags & CLONE_SETTLS != 0 {
            sys.cpu.fs_base = tls;
        }
        if flags & CLONE_CHILD_SETTID != 0 {
            let _ = sys.write_guest(ctid, &tid.to_le_bytes());
        }
        if flags & CLONE_PARENT_SETTID != 0 {
            let _ = sys.write_guest(ptid, &tid.to_le_bytes());
        }
        if flags & CLONE_CHILD_CLEARTID != 0 {
            sys.proc.clear_child_tid = ctid;
        }
        return SysRet::Ret(0);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = sys.write_guest(ptid, &(pid as u32).to_le_bytes());
    }
    SysRet::Ret(i64::from(pid))
}

/// Host stack for a vfork child's ld-nc (the guest keeps its own stack).
const VFORK_STACK: usize = 1 << 20;

/// What the vfork child needs, passed through `clone`'s argument.
struct VforkChild<'a> {
    code: *mut (dyn super::CodeCache + 'a),
    proc: *mut crate::process::Process,
    cpu: translator::CpuState,
    flags: u64,
    ctid: u64,
}

extern "C" fn vfork_child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `VforkChild` on the suspended parent's stack (CLONE_VFORK keeps it
    // alive and untouched until this child execs or exits).
    let a = unsafe { &mut *arg.cast::<VforkChild<'_>>() };
    if a.flags & CLONE_CHILD_SETTID != 0 {
        // SAFETY: gettid has no preconditions; the guest asked for its tid at `ctid`.
        let tid = unsafe { libc::gettid() } as u32;
        // SAFETY: guest memory, shared with the parent as vfork shares it natively.
        if let Some(m) = unsafe { (*a.proc).mem.try_borrow().ok() } {
            if m.allows(a.ctid, a.ctid + 4, crate::mem::PROT_WRITE) {
                // SAFETY: checked guest-writable.
                unsafe { (a.ctid as *mut u32).write_unaligned(tid) };
            }
        }
    }
    // SAFETY: the parent is suspended inside its syscall handler, not using the translator or
    // the process state: this child has them exclusively until it execs or exits.
    let code = unsafe { (*a.code).run_child(&a.cpu, &mut *a.proc) };
    // SAFETY: ends this child without running anything of the parent's (atexit, destructors).
    unsafe { libc::_exit(code) }
}

/// vfork with the real semantics — the child shares the parent's memory and the parent waits
/// until it execs or exits — because callers depend on it: glibc's posix_spawn learns the exec
/// error through memory the child writes. The child runs ld-nc's loop on a stack of its own with
/// the same translator, which the suspended parent is not using.
fn vfork_in_place(sys: &mut Sys<'_>, flags: u64, newsp: u64, ptid: u64, ctid: u64, tls: u64) -> SysRet {
    let mut cpu = sys.cpu.clone();
    cpu.set(Gpr::Rax, 0);
    cpu.set(Gpr::Rcx, cpu.rip);
    cpu.set(Gpr::R11, cpu.rflags);
    if newsp != 0 {
        cpu.set(Gpr::Rsp, newsp);
    }
    if flags & CLONE_SETTLS != 0 {
        cpu.fs_base = tls;
    }
    // SAFETY: a fresh private mapping for the child's host stack.
    let stack = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            VFORK_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return err(libc::ENOMEM);
    }
    // The child changes ld-nc's record of dispositions (posix_spawn resets handlers) in shared
    // memory, but the kernel gave it its own copy of the host ones: the parent's view comes back.
    let saved_actions = sys.proc.sigactions;
    let saved_alt = sys.proc.altstack;
    let mut child = VforkChild { code: sys.code as *mut _, proc: sys.proc as *mut _, cpu, flags, ctid };
    let sig = (flags & 0xff) as i32;
    // SAFETY: the child runs `vfork_child_main` on its own stack in our memory; CLONE_VFORK
    // suspends this thread until it execs or exits, so `child` and everything it points to stay
    // valid and unshared meanwhile.
    let pid = unsafe {
        libc::clone(
            vfork_child_main,
            stack.cast::<u8>().add(VFORK_STACK).cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | sig,
            (&mut child as *mut VforkChild<'_>).cast(),
        )
    };
    let e = crate::mem::errno();
    // SAFETY: the child no longer runs on it (it exec'd or exited).
    unsafe { libc::munmap(stack, VFORK_STACK) };
    sys.proc.sigactions = saved_actions;
    sys.proc.altstack = saved_alt;
    sys.proc.force_signals = false;
    if pid < 0 {
        return err(e);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = sys.write_guest(ptid, &(pid as u32).to_le_bytes());
    }
    SysRet::Ret(i64::from(pid))
}

fn fork(sys: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    fork_like(sys, libc::SIGCHLD as u64, 0, 0, 0, 0)
}

fn vfork(sys: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    fork_like(sys, CLONE_VFORK | libc::SIGCHLD as u64, 0, 0, 0, 0)
}

fn clone(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // x86_64 order: flags, newsp, parent_tid, child_tid, tls (riscv64 swaps the last two).
    let flags = a[0];
    if flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 || flags & CLONE_THREAD != 0 {
        if sys.proc.reported.insert(u64::from(x86::CLONE) | 1 << 32) {
            log::warn!(target: "ldnc::syscalls", "guest threads are not supported yet (clone flags {flags:#x}): EAGAIN");
        }
        return err(libc::EAGAIN);
    }
    let known = 0xff | CLONE_VM | CLONE_VFORK | CLONE_FS | CLONE_FILES | CLONE_SIGHAND
        | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID;
    if flags & !known != 0 || flags & (CLONE_FS | CLONE_FILES) != 0 {
        // Namespaces, shared fd tables…: not emulated with fork.
        return err(libc::EINVAL);
    }
    fork_like(sys, flags, a[1], a[2], a[3], a[4])
}

/// `PR_SET_SECCOMP`.
const PR_SET_SECCOMP: u64 = 22;

fn prctl(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // A guest seccomp filter speaks x86_64 syscall numbers but would filter ld-nc's host
    // syscalls: refused, as by a kernel without CONFIG_SECCOMP_FILTER.
    if a[0] == PR_SET_SECCOMP {
        return err(libc::EINVAL);
    }
    hs(libc::SYS_prctl, &a[..5])
}

fn clone3(_: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    // glibc falls back to clone on ENOSYS.
    err(libc::ENOSYS)
}

/// Whether an exec'd program must run through ld-nc: an x86_64 ELF. On an x86_64 host, dynamic
/// x86_64 programs (which ld-nc cannot run yet) are left to the kernel, which runs them natively.
fn runs_through_ldnc(p: &std::path::Path) -> bool {
    if !crate::elf::is_x86_64_elf(p) {
        return false;
    }
    if cfg!(target_arch = "x86_64") {
        return !matches!(
            std::fs::read(p).map(|b| crate::elf::parse(&b)),
            Ok(Err(crate::elf::ElfError::Dynamic))
        );
    }
    true
}

/// Most argv entries read from the guest.
const MAX_ARGS: usize = 1 << 17;

fn execve(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let (path, argv, envp) = (a[0], a[1], a[2]);
    let Some(p) = read_cstr(sys, path) else { return err(libc::EFAULT) };
    let mut pbuf = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&p));
    let mut path = path;
    let guest_exe;
    if super::fs::is_proc_self_exe(&p) {
        // The guest's own program, not ld-nc.
        pbuf = sys.proc.guest_exe.clone();
        let Ok(c) = CString::new(pbuf.as_os_str().as_bytes()) else { return err(libc::ENOENT) };
        guest_exe = c;
        path = guest_exe.as_ptr() as u64;
    }
    if !runs_through_ldnc(&pbuf) {
        // Scripts and host programs: the host kernel runs them.
        return hs(libc::SYS_execve, &[path, argv, envp]);
    }
    // An x86_64 program: exec ld-nc with it, keeping the guest's argv[0].
    let mut args: Vec<u64> = Vec::new();
    if argv != 0 {
        for i in 0..MAX_ARGS {
            let v = tri!(sys.read_u64(argv + 8 * i as u64));
            if v == 0 {
                break;
            }
            args.push(v);
        }
    }
    let Ok(exe) = CString::new(sys.proc.exe.as_os_str().as_bytes()) else { return err(libc::ENOENT) };
    let argv0_opt = c"--argv0";
    let dashdash = c"--";
    let mut new: Vec<u64> = vec![exe.as_ptr() as u64];
    if let Some(&a0) = args.first() {
        new.push(argv0_opt.as_ptr() as u64);
        new.push(a0);
    }
    new.push(dashdash.as_ptr() as u64);
    new.push(path);
    new.extend(args.iter().skip(1));
    new.push(0);
    log::debug!(target: "ldnc::syscalls", "execve of x86_64 {} through {}", pbuf.display(), sys.proc.exe.display());
    hs(libc::SYS_execve, &[exe.as_ptr() as u64, new.as_ptr() as u64, envp])
}

pub(super) fn read_cstr(sys: &Sys<'_>, p: u64) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    for i in 0..4096u64 {
        let b = sys.read_guest(p.checked_add(i)?, 1).ok()?;
        if b[0] == 0 {
            return Some(v);
        }
        v.push(b[0]);
    }
    None
}
