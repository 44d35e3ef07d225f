//! Processes and identity. IDs, waiting, killing and limits pass through. Emulated: exit (ld-nc
//! must exit, not a host thread), `arch_prctl` (FS/GS bases are guest CPU state), thread
//! bookkeeping calls that would otherwise replace the host libc's own (`set_tid_address`,
//! `set_robust_list`, `rseq`), process and thread creation (`fork`/`vfork`/`clone`: vfork becomes
//! fork because a child must not share the translator's memory; CLONE_THREAD starts a guest
//! thread, see [`crate::threads`]), and `execve` (an x86_64 program runs through ld-nc again).

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
    (x86::EXIT_GROUP, exit_group),
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
    // exit ends the calling thread: a thread made by clone ends alone; the main thread's exit
    // ends the process (Linux would keep it running until the other threads exit).
    if crate::threads::is_spawned() {
        SysRet::ThreadExit
    } else {
        SysRet::Exit(a[0] as i32 & 0xff)
    }
}

fn exit_group(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
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

fn set_tid_address(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Recorded per thread, not passed: the host thread's clear_child_tid belongs to the host libc.
    crate::threads::set_clear_tid(a[0]);
    hs(libc::SYS_gettid, &[])
}

fn set_robust_list(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // As set_tid_address: the host libc registered its own list for this thread.
    if a[1] != 24 {
        return err(libc::EINVAL);
    }
    crate::threads::set_robust_list(a[0]);
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
///
/// vfork (and CLONE_VFORK) is a fork too: the child must not share the translator's memory while
/// the parent waits. What is kept of vfork is that the parent does not run until the child has
/// exec'd or exited: the child holds the write end of a close-on-exec pipe and the parent reads
/// until EOF. (So glibc's posix_spawn cannot learn an exec failure through shared memory: it
/// reports success and the child exits with 127, as older glibc did.)
fn fork_like(sys: &mut Sys<'_>, flags: u64, newsp: u64, ptid: u64, ctid: u64, tls: u64) -> SysRet {
    let vfork = flags & CLONE_VFORK != 0;
    let fds = if vfork { vfork_pipe() } else { None };
    // Other guest threads may be translating or changing the memory record: their locks are held
    // across the fork (translator first, then the record: the lock order), so the child, where
    // only this thread exists, finds them free. The process lock is this thread's already.
    let mem = sys.proc.mem.clone();
    let pid = sys.code.fork_locked(&mut || {
        let _record = mem.borrow_mut();
        // SAFETY: the locks ld-nc's own code takes are held by this thread; the host libc makes
        // its own state (malloc) consistent in the child.
        unsafe { libc::fork() }
    });
    if pid < 0 {
        let e = crate::mem::errno();
        if let Some((r, w)) = fds {
            // SAFETY: our own descriptors.
            unsafe {
                libc::close(r);
                libc::close(w);
            }
        }
        return err(e);
    }
    if pid == 0 {
        if let Some((r, _)) = fds {
            // SAFETY: our own descriptor.
            unsafe { libc::close(r) };
        }
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
            crate::threads::set_clear_tid(ctid);
        }
        crate::threads::after_fork_child();
        return SysRet::Ret(0);
    }
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = sys.write_guest(ptid, &(pid as u32).to_le_bytes());
    }
    if let Some((r, w)) = fds {
        // SAFETY: our own descriptors; EOF comes when the child execs or exits.
        unsafe {
            libc::close(w);
            let mut b = [0u8; 1];
            crate::threads::unlocked(|| {
                while libc::read(r, b.as_mut_ptr().cast(), 1) < 0 && crate::mem::errno() == libc::EINTR {}
            });
            libc::close(r);
        }
    }
    SysRet::Ret(i64::from(pid))
}

/// Lowest descriptor number for ld-nc's vfork pipe, out of the way of the guest's own.
const VFORK_PIPE_FD: i32 = 512;

/// A close-on-exec pipe at high descriptor numbers, `(read, write)`.
fn vfork_pipe() -> Option<(i32, i32)> {
    let mut fds = [-1i32; 2];
    // SAFETY: valid out-array; the descriptors are ours until closed.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return None;
        }
        let mut high = [-1i32; 2];
        for i in 0..2 {
            high[i] = libc::fcntl(fds[i], libc::F_DUPFD_CLOEXEC, VFORK_PIPE_FD);
            libc::close(fds[i]);
        }
        if high[0] < 0 || high[1] < 0 {
            for fd in high.into_iter().filter(|&fd| fd >= 0) {
                libc::close(fd);
            }
            return None;
        }
        Some((high[0], high[1]))
    }
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
    if flags & CLONE_THREAD != 0 {
        return clone_thread(sys, flags, a[1], a[2], a[3], a[4]);
    }
    if flags & CLONE_VM != 0 && flags & CLONE_VFORK == 0 {
        // A process sharing memory with ld-nc's translator: not emulated.
        return err(libc::EINVAL);
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

/// A guest thread: same memory, same signal handlers, a host thread of its own (see
/// [`crate::threads`]).
fn clone_thread(sys: &mut Sys<'_>, flags: u64, newsp: u64, ptid: u64, ctid: u64, tls: u64) -> SysRet {
    if flags & (CLONE_VM | CLONE_SIGHAND) != (CLONE_VM | CLONE_SIGHAND) {
        return err(libc::EINVAL);
    }
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
    let clear = if flags & CLONE_CHILD_CLEARTID != 0 { ctid } else { 0 };
    let tid = match sys.code.spawn_thread(cpu, sys.proc, clear) {
        Ok(t) => t,
        Err(e) => return err(e),
    };
    // The new thread waits for the big lock, which this one holds: both words are written
    // before it runs, as the kernel writes them before the child returns to user space.
    if flags & CLONE_PARENT_SETTID != 0 {
        let _ = sys.write_guest(ptid, &tid.to_le_bytes());
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        let _ = sys.write_guest(ctid, &tid.to_le_bytes());
    }
    SysRet::Ret(i64::from(tid))
}

fn clone3(_: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    // glibc falls back to clone on ENOSYS.
    err(libc::ENOSYS)
}

/// Whether an exec'd program must run through ld-nc: an x86_64 ELF. On an x86_64 host, dynamic
/// x86_64 programs are left to the kernel, which runs them natively and faster (ld-nc would run
/// them with every library translated, see [`crate::elf::interp`]).
fn runs_through_ldnc(p: &std::path::Path) -> bool {
    if !crate::elf::is_x86_64_elf(p) {
        return false;
    }
    if cfg!(target_arch = "x86_64") {
        return !matches!(
            std::fs::read(p).map(|b| crate::elf::parse(&b)),
            Ok(Ok(crate::elf::Image { interp: Some(_), .. }))
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
            let v = tri!(sys.read_u64(argv.wrapping_add(8 * i as u64)));
            if v == 0 {
                break;
            }
            args.push(v);
        }
    }
    let Ok(exe) = CString::new(sys.proc.exe.as_os_str().as_bytes()) else { return err(libc::ENOENT) };
    let argv0_opt = c"--argv0";
    let dashdash = c"--";
    // Normally ld-nc itself; with an exec wrapper, the wrapper runs ld-nc.
    let prog = sys.proc.exec_wrapper.first().map_or(exe.as_ptr(), |w| w.as_ptr()) as u64;
    let mut new: Vec<u64> = sys.proc.exec_wrapper.iter().map(|w| w.as_ptr() as u64).collect();
    new.push(exe.as_ptr() as u64);
    if let Some(&a0) = args.first() {
        new.push(argv0_opt.as_ptr() as u64);
        new.push(a0);
    }
    new.push(dashdash.as_ptr() as u64);
    new.push(path);
    new.extend(args.iter().skip(1));
    new.push(0);
    log::debug!(target: "ldnc::syscalls", "execve of x86_64 {} through {}", pbuf.display(), sys.proc.exe.display());
    hs(libc::SYS_execve, &[prog, new.as_ptr() as u64, envp])
}

/// A guest C string of at most `PATH_MAX` bytes, `None` if it is not readable guest memory.
pub(super) fn read_cstr(sys: &Sys<'_>, p: u64) -> Option<Vec<u8>> {
    read_cstr_max(sys, p, 4096)
}

/// As [`read_cstr`] with a length limit; reads readable guest memory a page at a time.
pub(super) fn read_cstr_max(sys: &Sys<'_>, p: u64, max: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    let mut at = p;
    while v.len() < max {
        let chunk = (crate::elf::PAGE - at % crate::elf::PAGE).min((max - v.len()) as u64) as usize;
        let bytes = sys.read_guest(at, chunk).ok()?;
        if let Some(n) = bytes.iter().position(|&c| c == 0) {
            v.extend_from_slice(&bytes[..n]);
            return Some(v);
        }
        v.extend_from_slice(&bytes);
        at = at.checked_add(chunk as u64)?;
    }
    None
}
