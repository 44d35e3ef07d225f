//! Files, directories and descriptors. Most pass through: the structs they carry (`iovec`,
//! `dirent64`, `statx`, `statfs`, `flock`, `termios`, `winsize`, `pollfd`, `fd_set`) and the flag
//! values (`O_*`, `AT_*`, `F_*`, terminal ioctls) are the same for x86_64 and asm-generic 64-bit.
//! The custom handlers are the legacy path forms riscv64 does not have (mapped to `*at` forms on
//! both hosts), the stat family (layout), and epoll (packed `epoll_event`).

use super::layout::{self, X86_EPOLL_EVENT_SIZE};
use super::numbers::x86;
use super::{err, hs, Handler, Sys, SysRet, AT_FDCWD};
use crate::tri;
use libc::{
    SYS_dup3, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_eventfd2, SYS_faccessat,
    SYS_fchmodat, SYS_fchownat, SYS_inotify_init1, SYS_linkat, SYS_mkdirat, SYS_mknodat,
    SYS_openat, SYS_pipe2, SYS_ppoll, SYS_pselect6, SYS_readlinkat, SYS_renameat2, SYS_signalfd4,
    SYS_symlinkat, SYS_unlinkat, SYS_utimensat,
};

/// Same layout and semantics on every 64-bit Linux: `(x86_64 number, arity)`.
pub const PASS: &[(u32, u8)] = &[
    (x86::READ, 3),
    (x86::WRITE, 3),
    (x86::CLOSE, 1),
    (x86::LSEEK, 3),
    (x86::PREAD64, 4),
    (x86::PWRITE64, 4),
    (x86::READV, 3),
    (x86::WRITEV, 3),
    (x86::PREADV, 5),
    (x86::PWRITEV, 5),
    (x86::PREADV2, 6),
    (x86::PWRITEV2, 6),
    (x86::IOCTL, 3),
    (x86::FCNTL, 3),
    (x86::FLOCK, 2),
    (x86::FSYNC, 1),
    (x86::FDATASYNC, 1),
    (x86::SYNC, 0),
    (x86::SYNCFS, 1),
    (x86::TRUNCATE, 2),
    (x86::FTRUNCATE, 2),
    (x86::FALLOCATE, 4),
    (x86::FADVISE64, 4),
    (x86::GETDENTS64, 3),
    (x86::GETCWD, 2),
    (x86::CHDIR, 1),
    (x86::FCHDIR, 1),
    (x86::CHROOT, 1),
    (x86::FCHMOD, 2),
    (x86::FCHOWN, 3),
    (x86::UMASK, 1),
    (x86::OPENAT2, 4),
    (x86::MKDIRAT, 3),
    (x86::MKNODAT, 4),
    (x86::FCHOWNAT, 5),
    (x86::UNLINKAT, 3),
    (x86::RENAMEAT2, 5),
    (x86::LINKAT, 5),
    (x86::SYMLINKAT, 3),
    (x86::FCHMODAT, 3),
    (x86::FACCESSAT, 3),
    (x86::FACCESSAT2, 4),
    (x86::UTIMENSAT, 4),
    (x86::DUP, 1),
    (x86::DUP3, 3),
    (x86::PIPE2, 2),
    (x86::STATX, 5),
    (x86::STATFS, 2),
    (x86::FSTATFS, 2),
    (x86::SENDFILE, 4),
    (x86::SPLICE, 6),
    (x86::TEE, 4),
    (x86::VMSPLICE, 4),
    (x86::COPY_FILE_RANGE, 6),
    (x86::SYNC_FILE_RANGE, 4),
    (x86::READAHEAD, 3),
    (x86::CLOSE_RANGE, 3),
    (x86::MEMFD_CREATE, 2),
    (x86::INOTIFY_INIT1, 1),
    (x86::INOTIFY_ADD_WATCH, 3),
    (x86::INOTIFY_RM_WATCH, 2),
    (x86::EVENTFD2, 2),
    (x86::SIGNALFD4, 4),
    (x86::TIMERFD_CREATE, 2),
    (x86::TIMERFD_SETTIME, 4),
    (x86::TIMERFD_GETTIME, 2),
    (x86::EPOLL_CREATE1, 1),
    (x86::GETXATTR, 4),
    (x86::LGETXATTR, 4),
    (x86::FGETXATTR, 4),
    (x86::SETXATTR, 5),
    (x86::LSETXATTR, 5),
    (x86::FSETXATTR, 5),
    (x86::LISTXATTR, 3),
    (x86::LLISTXATTR, 3),
    (x86::FLISTXATTR, 3),
    (x86::REMOVEXATTR, 2),
    (x86::LREMOVEXATTR, 2),
    (x86::FREMOVEXATTR, 2),
    (x86::MOUNT, 5),
    (x86::UMOUNT2, 2),
    (x86::NAME_TO_HANDLE_AT, 5),
    (x86::OPEN_BY_HANDLE_AT, 3),
];

/// Handlers: legacy path calls (no riscv64 syscall), stat (layout), epoll (layout).
pub const CUSTOM: &[(u32, Handler)] = &[
    (x86::OPEN, open),
    (x86::OPENAT, openat),
    (x86::CREAT, creat),
    (x86::STAT, stat),
    (x86::LSTAT, lstat),
    (x86::FSTAT, fstat),
    (x86::NEWFSTATAT, newfstatat),
    (x86::ACCESS, access),
    (x86::PIPE, pipe),
    (x86::DUP2, dup2),
    (x86::POLL, poll),
    (x86::SELECT, select),
    (x86::READLINK, readlink),
    (x86::READLINKAT, readlinkat),
    (x86::UNLINK, unlink),
    (x86::RMDIR, rmdir),
    (x86::MKDIR, mkdir),
    (x86::MKNOD, mknod),
    (x86::RENAME, rename),
    (x86::RENAMEAT, renameat),
    (x86::SYMLINK, symlink),
    (x86::LINK, link),
    (x86::CHMOD, chmod),
    (x86::CHOWN, chown),
    (x86::LCHOWN, lchown),
    (x86::UTIME, utime),
    (x86::UTIMES, utimes),
    (x86::FUTIMESAT, futimesat),
    (x86::GETDENTS, getdents),
    (x86::EPOLL_CREATE, epoll_create),
    (x86::EPOLL_CTL, epoll_ctl),
    (x86::EPOLL_WAIT, epoll_wait),
    (x86::EPOLL_PWAIT, epoll_pwait),
    (x86::EPOLL_PWAIT2, epoll_pwait2),
    (x86::PPOLL, ppoll),
    (x86::PSELECT6, pselect6),
    (x86::INOTIFY_INIT, inotify_init),
    (x86::EVENTFD, eventfd),
    (x86::SIGNALFD, signalfd),
];

fn open(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    openat(sys, [AT_FDCWD, a[0], a[1], a[2], 0, 0])
}

fn openat(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Opening /proc/self/exe must give the guest its own program, not ld-nc.
    if let Some(p) = super::process::read_cstr_max(sys, a[1], 32) {
        if is_proc_self_exe(&p) {
            use std::os::unix::ffi::OsStrExt;
            if let Ok(c) = std::ffi::CString::new(sys.proc.guest_exe.as_os_str().as_bytes()) {
                return hs(SYS_openat, &[AT_FDCWD, c.as_ptr() as u64, a[2], a[3]]);
            }
        }
    }
    hs(SYS_openat, &[a[0], a[1], a[2], a[3]])
}

fn creat(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u64;
    hs(SYS_openat, &[AT_FDCWD, a[0], flags, a[1]])
}

/// `fstatat` on the host with a host `struct stat`, written back in the x86_64 layout.
fn stat_common(sys: &mut Sys<'_>, dirfd: i32, path: u64, buf: u64, flags: i32) -> SysRet {
    // SAFETY: all-zero is a valid `libc::stat`.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    let r = if path == 0 && flags & libc::AT_EMPTY_PATH != 0 {
        // SAFETY: `st` is a valid out-pointer.
        unsafe { libc::fstat(dirfd, &mut st) }
    } else {
        // SAFETY: `path` is a guest pointer; the kernel validates it (EFAULT) as it would for the
        // guest. `st` is a valid out-pointer.
        unsafe { libc::fstatat(dirfd, path as *const libc::c_char, &mut st, flags) }
    };
    if r != 0 {
        return SysRet::Ret(super::cvt(i64::from(r)));
    }
    tri!(sys.write_guest(buf, &layout::stat_to_x86(&st)));
    SysRet::Ret(0)
}

fn stat(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    stat_common(sys, libc::AT_FDCWD, a[0], a[1], 0)
}

fn lstat(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    stat_common(sys, libc::AT_FDCWD, a[0], a[1], libc::AT_SYMLINK_NOFOLLOW)
}

fn fstat(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    stat_common(sys, a[0] as i32, 0, a[1], libc::AT_EMPTY_PATH)
}

fn newfstatat(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    stat_common(sys, a[0] as i32, a[1], a[2], a[3] as i32)
}

fn access(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_faccessat, &[AT_FDCWD, a[0], a[1]])
}

fn pipe(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_pipe2, &[a[0], 0])
}

fn dup2(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // dup3 refuses oldfd == newfd; dup2 returns newfd if it is open.
    if a[0] as u32 == a[1] as u32 {
        // SAFETY: F_GETFD only inspects the descriptor table.
        let r = unsafe { libc::fcntl(a[0] as i32, libc::F_GETFD) };
        return if r < 0 { err(libc::EBADF) } else { SysRet::Ret(i64::from(a[1] as u32)) };
    }
    hs(SYS_dup3, &[a[0], a[1], 0])
}

fn poll(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let timeout = a[2] as i32;
    if timeout < 0 {
        return super::hs_blocking(SYS_ppoll, &[a[0], a[1], 0, 0, 8]);
    }
    let ts = libc::timespec {
        tv_sec: libc::time_t::from(timeout / 1000),
        tv_nsec: libc::c_long::from(timeout % 1000) * 1_000_000,
    };
    let _ = sys;
    super::hs_blocking(SYS_ppoll, &[a[0], a[1], &ts as *const _ as u64, 0, 8])
}

#[allow(clippy::unnecessary_cast, reason = "time_t and c_long differ between hosts in principle")]
fn select(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // pselect6 takes a timespec; Linux select writes the time left back into the timeval.
    let tvp = a[4];
    if tvp == 0 {
        return super::hs_blocking(SYS_pselect6, &[a[0], a[1], a[2], a[3], 0, 0]);
    }
    let sec = tri!(sys.read_u64(tvp)) as i64;
    let usec = tri!(sys.read_u64(tvp.wrapping_add(8))) as i64;
    if sec < 0 || !(0..1_000_000).contains(&usec) {
        return err(libc::EINVAL);
    }
    let mut ts = libc::timespec { tv_sec: sec as libc::time_t, tv_nsec: (usec * 1000) as libc::c_long };
    let r = super::hs_blocking(SYS_pselect6, &[a[0], a[1], a[2], a[3], &mut ts as *mut _ as u64, 0]);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&(ts.tv_sec as i64).to_le_bytes());
    out[8..].copy_from_slice(&((ts.tv_nsec as i64) / 1000).to_le_bytes());
    tri!(sys.write_guest(tvp, &out));
    r
}

fn ppoll(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Temporary signal mask: see `with_temp_mask`.
    super::with_temp_mask(SYS_ppoll, &a[..5], a[3] != 0)
}

fn pselect6(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // The sixth argument points at {sigset pointer, size}; a temporary mask if the pointer is set.
    let has_mask = a[5] != 0 && sys.read_u64(a[5]).is_ok_and(|p| p != 0);
    super::with_temp_mask(SYS_pselect6, &a, has_mask)
}

fn readlink(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    readlinkat(sys, [AT_FDCWD, a[0], a[1], a[2], 0, 0])
}

/// Whether `path` names this process's executable link (`/proc/self/exe`, `/proc/<pid>/exe`).
pub fn is_proc_self_exe(path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/proc/") else { return false };
    let Some(who) = rest.strip_suffix(b"/exe") else { return false };
    // SAFETY: getpid has no preconditions.
    who == b"self" || who == format!("{}", unsafe { libc::getpid() }).as_bytes()
}

fn readlinkat(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // /proc/self/exe is ld-nc on the host; the guest must see its own program, or programs
    // that re-exec themselves (busybox) would run ld-nc as an x86_64 guest.
    let (path, buf, size) = (a[1], a[2], a[3] as usize);
    if let Some(p) = super::process::read_cstr(sys, path) {
        if is_proc_self_exe(&p) {
            use std::os::unix::ffi::OsStrExt;
            let target = sys.proc.guest_exe.as_os_str().as_bytes().to_vec();
            let n = target.len().min(size);
            if size == 0 {
                return err(libc::EINVAL);
            }
            tri!(sys.write_guest(buf, &target[..n]));
            return SysRet::Ret(n as i64);
        }
    }
    hs(SYS_readlinkat, &[a[0], a[1], a[2], a[3]])
}

fn unlink(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_unlinkat, &[AT_FDCWD, a[0], 0])
}

fn rmdir(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_unlinkat, &[AT_FDCWD, a[0], libc::AT_REMOVEDIR as u64])
}

fn mkdir(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_mkdirat, &[AT_FDCWD, a[0], a[1]])
}

fn mknod(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_mknodat, &[AT_FDCWD, a[0], a[1], a[2]])
}

fn rename(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_renameat2, &[AT_FDCWD, a[0], AT_FDCWD, a[1], 0])
}

fn renameat(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_renameat2, &[a[0], a[1], a[2], a[3], 0])
}

fn symlink(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_symlinkat, &[a[0], AT_FDCWD, a[1]])
}

fn link(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_linkat, &[AT_FDCWD, a[0], AT_FDCWD, a[1], 0])
}

fn chmod(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_fchmodat, &[AT_FDCWD, a[0], a[1]])
}

fn chown(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_fchownat, &[AT_FDCWD, a[0], a[1], a[2], 0])
}

fn lchown(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_fchownat, &[AT_FDCWD, a[0], a[1], a[2], libc::AT_SYMLINK_NOFOLLOW as u64])
}

/// Two `timeval`s at `tvp` (or NULL) as two `timespec`s for `utimensat`.
fn utimes_common(sys: &mut Sys<'_>, dirfd: u64, path: u64, tvp: u64) -> SysRet {
    if tvp == 0 {
        return hs(SYS_utimensat, &[dirfd, path, 0, 0]);
    }
    let mut ts = [libc::timespec { tv_sec: 0, tv_nsec: 0 }; 2];
    for (i, t) in ts.iter_mut().enumerate() {
        let sec = tri!(sys.read_u64(tvp.wrapping_add(16 * i as u64))) as i64;
        let usec = tri!(sys.read_u64(tvp.wrapping_add(16 * i as u64 + 8))) as i64;
        if !(0..1_000_000).contains(&usec) {
            return err(libc::EINVAL);
        }
        *t = libc::timespec { tv_sec: sec as libc::time_t, tv_nsec: (usec * 1000) as libc::c_long };
    }
    hs(SYS_utimensat, &[dirfd, path, ts.as_ptr() as u64, 0])
}

fn utimes(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    utimes_common(sys, AT_FDCWD, a[0], a[1])
}

fn futimesat(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    utimes_common(sys, a[0], a[1], a[2])
}

fn utime(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // struct utimbuf { time_t actime, modtime; } in whole seconds.
    if a[1] == 0 {
        return hs(SYS_utimensat, &[AT_FDCWD, a[0], 0, 0]);
    }
    let at = tri!(sys.read_u64(a[1])) as i64;
    let mt = tri!(sys.read_u64(a[1].wrapping_add(8))) as i64;
    let ts = [
        libc::timespec { tv_sec: at as libc::time_t, tv_nsec: 0 },
        libc::timespec { tv_sec: mt as libc::time_t, tv_nsec: 0 },
    ];
    hs(SYS_utimensat, &[AT_FDCWD, a[0], ts.as_ptr() as u64, 0])
}

fn getdents(_: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    // The old `linux_dirent` has no riscv64 syscall; glibc and musl use getdents64, and an
    // ENOSYS makes the rare caller fall back.
    err(libc::ENOSYS)
}

fn epoll_create(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    if a[0] as i32 <= 0 {
        return err(libc::EINVAL);
    }
    hs(SYS_epoll_create1, &[0])
}

fn epoll_ctl(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // x86_64's epoll_event is packed (12 bytes).
    if a[3] == 0 || a[1] as i32 == libc::EPOLL_CTL_DEL {
        return hs(SYS_epoll_ctl, &[a[0], a[1], a[2], 0]);
    }
    let raw = tri!(sys.read_guest(a[3], X86_EPOLL_EVENT_SIZE));
    let mut ev = layout::epoll_from_x86(&raw);
    hs(SYS_epoll_ctl, &[a[0], a[1], a[2], ev.as_mut_ptr() as u64])
}

/// Largest batch converted at once; epoll_wait may return fewer events than asked.
const EPOLL_BATCH: usize = 1024;

fn epoll_wait_common(sys: &mut Sys<'_>, a: [u64; 6], sigmask: u64, sigsetsize: u64) -> SysRet {
    epoll_wait_on(sys, SYS_epoll_pwait, a, sigmask, sigsetsize)
}

/// `epoll_pwait` or `epoll_pwait2` (same arguments; the timeout is milliseconds or a timespec
/// pointer, passed unchanged) with the events converted to the packed x86_64 layout.
fn epoll_wait_on(sys: &mut Sys<'_>, nr: libc::c_long, a: [u64; 6], sigmask: u64, sigsetsize: u64) -> SysRet {
    let max = a[2] as i32;
    if max <= 0 {
        return err(libc::EINVAL);
    }
    let n = (max as usize).min(EPOLL_BATCH);
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; n];
    let r = super::with_temp_mask(
        nr,
        &[a[0], evs.as_mut_ptr() as u64, n as u64, a[3], sigmask, sigsetsize],
        sigmask != 0,
    );
    if let SysRet::Ret(k) = r {
        if k > 0 {
            let k = k as usize;
            let mut out = vec![0u8; k * X86_EPOLL_EVENT_SIZE];
            layout::epoll_to_x86(&evs[..k], &mut out);
            tri!(sys.write_guest(a[1], &out));
        }
    }
    r
}

fn epoll_wait(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    epoll_wait_common(sys, a, 0, 8)
}

fn epoll_pwait(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    epoll_wait_common(sys, a, a[4], a[5])
}

fn epoll_pwait2(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    epoll_wait_on(sys, libc::SYS_epoll_pwait2, a, a[4], a[5])
}

fn inotify_init(_: &mut Sys<'_>, _: [u64; 6]) -> SysRet {
    hs(SYS_inotify_init1, &[0])
}

fn eventfd(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_eventfd2, &[a[0], 0])
}

fn signalfd(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    hs(SYS_signalfd4, &[a[0], a[1], a[2], 0])
}
