//! The syscall layer: guest `syscall` instructions, with x86_64 numbers and struct layouts, become
//! host syscalls.
//!
//! Organised as FEX-Emu does it: each family module (`fs`, `mm`, `signal`, `process`, `time`,
//! `net`, `misc`) declares the syscalls that pass straight through, by arity, in a `PASS` table,
//! and the ones that need work in a `CUSTOM` table, each handler saying why. [`Table`] merges them
//! once, indexed by x86_64 number. A pass-through syscall goes to the host number of the same name
//! (identical on an x86_64 host, the asm-generic number on riscv64 — see [`numbers`]). Custom
//! handlers use the same host calls on both hosts (the `*at` forms, `newfstatat` plus conversion…),
//! so what is tested on x86_64 is what runs on riscv64.
//!
//! An unknown syscall returns `-ENOSYS` and is reported once with its number and name.

pub mod fs;
pub mod layout;
pub mod misc;
pub mod mm;
pub mod net;
pub mod numbers;
pub mod process;
pub mod signal;
pub mod time;

use translator::{CpuState, Gpr};

use crate::process::Process;

/// What the syscall layer needs from the translator: dropping translations of guest code that
/// changed, and starting guest threads on it.
pub trait CodeCache {
    /// Forget translations of guest code in `[start, end)`.
    fn invalidate(&self, start: u64, end: u64);

    /// Start a guest thread with registers `cpu` sharing this translator and `proc`; its tid.
    fn spawn_thread(&self, cpu: CpuState, proc: &mut Process, clear_tid: u64) -> Result<u32, i32>;

    /// Run `fork` with the translator's locks held (see `Translator::fork_locked`).
    fn fork_locked(&self, fork: &mut dyn FnMut() -> i32) -> i32 {
        fork()
    }
}

impl<B: translator::Backend + 'static> CodeCache for translator::Translator<B> {
    fn invalidate(&self, start: u64, end: u64) {
        translator::Translator::invalidate(self, start, end);
    }

    fn spawn_thread(&self, cpu: CpuState, proc: &mut Process, clear_tid: u64) -> Result<u32, i32> {
        // SAFETY: called from a syscall handler, so under the process lock, on the translator
        // and process of the running guest, which live in the main thread's `run` frame until
        // the process ends.
        unsafe { crate::threads::spawn(self as *const Self, proc as *mut Process, cpu, clear_tid) }
    }

    fn fork_locked(&self, fork: &mut dyn FnMut() -> i32) -> i32 {
        translator::Translator::fork_locked(self, fork)
    }
}

/// The dispatch table, built once.
pub fn table() -> &'static Table {
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE.get_or_init(Table::new)
}

/// Everything a handler may touch.
pub struct Sys<'a> {
    /// The calling guest thread's registers.
    pub cpu: &'a mut CpuState,
    /// Process-wide emulation state.
    pub proc: &'a mut Process,
    /// The translator's code cache.
    pub code: &'a dyn CodeCache,
}

impl std::fmt::Debug for Sys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sys").field("rip", &self.cpu.rip).finish()
    }
}

/// What a handler did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysRet {
    /// Put this in RAX (a negative errno for failure).
    Ret(i64),
    /// The handler set every register itself (`rt_sigreturn`, `execve` failing after setup…):
    /// leave RAX alone.
    Restored,
    /// The process exits with this status.
    Exit(i32),
    /// The calling guest thread (one made by `clone`) ends.
    ThreadExit,
}

/// A custom handler: arguments are RDI, RSI, RDX, R10, R8, R9.
pub type Handler = fn(&mut Sys<'_>, [u64; 6]) -> SysRet;

/// One x86_64 syscall's treatment.
#[derive(Clone, Copy)]
pub enum Entry {
    /// Same arguments and layouts on the host: call the host syscall of the same name.
    Pass {
        /// Host number.
        host: i64,
        /// Number of arguments (for the log).
        arity: u8,
    },
    /// Needs conversion or emulation.
    Custom(Handler),
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entry::Pass { host, arity } => write!(f, "Pass({host}, {arity})"),
            Entry::Custom(_) => write!(f, "Custom"),
        }
    }
}

/// Entries of x86_64 numbers `0..TABLE_LEN`.
pub const TABLE_LEN: usize = 512;

/// The dispatch table.
#[derive(Debug)]
pub struct Table {
    entries: Vec<Option<Entry>>,
}

/// The name of x86_64 syscall `nr`, if the kernel headers know it.
pub fn name(nr: u64) -> Option<&'static str> {
    numbers::TABLE.iter().find(|e| u64::from(e.1) == nr).map(|e| e.0)
}

/// The host number of the syscall that has x86_64 number `nr` (same name), if the host has it.
pub fn host_number(nr: u32) -> Option<i64> {
    let e = numbers::TABLE.iter().find(|e| e.1 == nr)?;
    if cfg!(target_arch = "x86_64") {
        Some(i64::from(e.1))
    } else if e.2 >= 0 {
        Some(i64::from(e.2))
    } else {
        None
    }
}

/// One family's tables: `(name, pass-through by arity, custom handlers)`.
pub type Family = (&'static str, &'static [(u32, u8)], &'static [(u32, Handler)]);

/// All family tables.
pub fn families() -> [Family; 7] {
    [
        ("fs", fs::PASS, fs::CUSTOM),
        ("mm", mm::PASS, mm::CUSTOM),
        ("signal", signal::PASS, signal::CUSTOM),
        ("process", process::PASS, process::CUSTOM),
        ("time", time::PASS, time::CUSTOM),
        ("net", net::PASS, net::CUSTOM),
        ("misc", misc::PASS, misc::CUSTOM),
    ]
}

impl Table {
    /// Merge the family tables.
    pub fn new() -> Table {
        let mut entries = vec![None; TABLE_LEN];
        for (_, pass, custom) in families() {
            for &(nr, arity) in pass {
                if let Some(host) = host_number(nr) {
                    entries[nr as usize] = Some(Entry::Pass { host, arity });
                }
            }
            for &(nr, h) in custom {
                entries[nr as usize] = Some(Entry::Custom(h));
            }
        }
        Table { entries }
    }

    /// The entry for x86_64 number `nr`.
    pub fn get(&self, nr: u64) -> Option<Entry> {
        self.entries.get(usize::try_from(nr).ok()?).copied().flatten()
    }
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

/// Call host syscall `nr`; `-errno` on failure.
pub fn host(nr: i64, a: [u64; 6]) -> i64 {
    // SAFETY: raw syscalls with guest-supplied arguments. Pointers the guest passes are guest
    // addresses in this (identity-mapped) address space: the kernel checks them and returns
    // EFAULT for bad ones, exactly as for the guest running natively. Syscalls that could
    // corrupt ld-nc itself (memory mapping, signals, process creation) are never passed through.
    let r = unsafe {
        libc::syscall(nr as libc::c_long, a[0], a[1], a[2], a[3], a[4], a[5])
    };
    if r == -1 {
        -i64::from(crate::mem::errno())
    } else {
        r as i64
    }
}

/// Turn a libc-style result (`-1` + errno) into `-errno`.
pub fn cvt(r: i64) -> i64 {
    if r == -1 {
        -i64::from(crate::mem::errno())
    } else {
        r
    }
}

/// Run host syscall `nr` that takes a temporary signal mask; an EINTR from it makes the signals
/// caught meanwhile deliverable under the restored mask (see `threads::set_force_signals`).
pub fn with_temp_mask(nr: libc::c_long, args: &[u64], has_mask: bool) -> SysRet {
    let r = hs_blocking(nr, args);
    if has_mask && r == SysRet::Ret(-i64::from(libc::EINTR)) {
        crate::threads::set_force_signals(true);
    }
    r
}

/// Negative errno.
pub const fn err(e: i32) -> SysRet {
    SysRet::Ret(-(e as i64))
}

/// The syscall arguments in a guest thread's registers: RDI, RSI, RDX, R10, R8, R9.
pub fn args(cpu: &CpuState) -> [u64; 6] {
    [cpu.get(Gpr::Rdi), cpu.get(Gpr::Rsi), cpu.get(Gpr::Rdx), cpu.get(Gpr::R10), cpu.get(Gpr::R8), cpu.get(Gpr::R9)]
}

/// The host number if x86_64 syscall `nr` passes straight through.
pub fn pass_entry(table: &Table, nr: u64) -> Option<(i64, u8)> {
    match table.get(nr) {
        Some(Entry::Pass { host, arity }) => Some((host, arity)),
        _ => None,
    }
}

/// Run a pass-through syscall. Touches no ld-nc state but the watched-page set (atomics), so the
/// caller may let other guest threads run meanwhile.
pub fn run_pass(nr: u64, host_nr: i64, arity: u8, a: [u64; 6]) -> i64 {
    if crate::smc::any_watched() {
        crate::smc::release_all();
    }
    let v = host(host_nr, a);
    if log::log_enabled!(target: "ldnc::syscalls", log::Level::Debug) {
        log_call(nr, &a[..usize::from(arity).min(6)], SysRet::Ret(v));
    }
    v
}

fn log_call(nr: u64, a: &[u64], r: SysRet) {
    let n = name(nr).unwrap_or("?");
    let args: Vec<String> = a.iter().map(|v| format!("{v:#x}")).collect();
    let res = match r {
        SysRet::Ret(v) if (-4095..0).contains(&v) => {
            format!("-{} ({})", -v, std::io::Error::from_raw_os_error(-v as i32))
        }
        SysRet::Ret(v) if (0..4096).contains(&v) => format!("{v}"),
        SysRet::Ret(v) => format!("{v:#x}"),
        SysRet::Restored => "(registers restored)".to_string(),
        SysRet::Exit(c) => format!("(exit {c})"),
        SysRet::ThreadExit => "(thread exit)".to_string(),
    };
    log::debug!(target: "ldnc::syscalls", "{n}({}) = {res}", args.join(", "));
}

/// Run the syscall the guest thread is stopped at (Exit::Syscall: `cpu.rip` is after it).
pub fn dispatch(table: &Table, sys: &mut Sys<'_>) -> SysRet {
    let nr = sys.cpu.get(Gpr::Rax);
    let a = args(sys.cpu);
    if crate::smc::any_watched() {
        crate::smc::release_all();
    }
    let r = match table.get(nr) {
        Some(Entry::Pass { host: h, .. }) => SysRet::Ret(host(h, a)),
        Some(Entry::Custom(f)) => f(sys, a),
        None => {
            if sys.proc.reported.insert(nr) {
                log::warn!(
                    target: "ldnc::syscalls",
                    "unsupported syscall {nr} ({}) at {:#x}: returning ENOSYS",
                    name(nr).unwrap_or("unknown"),
                    sys.cpu.rip.wrapping_sub(2)
                );
            }
            err(libc::ENOSYS)
        }
    };
    if log::log_enabled!(target: "ldnc::syscalls", log::Level::Debug) {
        let arity = match table.get(nr) {
            Some(Entry::Pass { arity, .. }) => usize::from(arity),
            _ => 6,
        };
        log_call(nr, &a[..arity], r);
    }
    r
}

impl Sys<'_> {
    /// Copy `data` to guest memory at `addr`, which must be guest-writable (else `EFAULT`).
    pub fn write_guest(&self, addr: u64, data: &[u8]) -> Result<(), SysRet> {
        if data.is_empty() {
            return Ok(());
        }
        if addr < crate::elf::PAGE {
            // Page 0 is never guest memory (see `mm::mmap`); Rust may not touch null.
            return Err(err(libc::EFAULT));
        }
        let end = addr.checked_add(data.len() as u64).ok_or(err(libc::EFAULT))?;
        if !self.proc.mem.borrow().allows_data(addr, end, crate::mem::PROT_WRITE) {
            return Err(err(libc::EFAULT));
        }
        // SAFETY: `[addr, end)` is recorded guest memory with guest PROT_WRITE, host writable at
        // its identity address, or (a bridged program) host memory a native library gave the
        // guest (`allows_data`).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
        Ok(())
    }

    /// Copy `len` bytes of guest memory at `addr`, which must be guest-readable (else `EFAULT`).
    pub fn read_guest(&self, addr: u64, len: usize) -> Result<Vec<u8>, SysRet> {
        if len == 0 {
            return Ok(Vec::new());
        }
        if addr < crate::elf::PAGE {
            return Err(err(libc::EFAULT));
        }
        let end = addr.checked_add(len as u64).ok_or(err(libc::EFAULT))?;
        if !self.proc.mem.borrow().allows_data(addr, end, crate::mem::PROT_READ) {
            return Err(err(libc::EFAULT));
        }
        let mut v = vec![0u8; len];
        // SAFETY: `[addr, end)` is recorded guest memory with guest PROT_READ, host readable, or
        // mapped host memory a native library gave the guest (`allows_data`).
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, v.as_mut_ptr(), len) };
        Ok(v)
    }

    /// Read a little-endian u64 from guest memory.
    pub fn read_u64(&self, addr: u64) -> Result<u64, SysRet> {
        let b = self.read_guest(addr, 8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(&b);
        Ok(u64::from_le_bytes(w))
    }
}

/// Call host syscall `nr` with up to six arguments.
pub fn hs(nr: libc::c_long, args: &[u64]) -> SysRet {
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    SysRet::Ret(host(nr, a))
}

/// [`hs`] for a call that may block: other guest threads run meanwhile (see
/// [`crate::threads::unlocked`]); `args` must point only at guest memory or the caller's locals.
pub fn hs_blocking(nr: libc::c_long, args: &[u64]) -> SysRet {
    crate::threads::unlocked(|| hs(nr, args))
}

/// `AT_FDCWD` as a syscall argument.
pub const AT_FDCWD: u64 = libc::AT_FDCWD as i64 as u64;

/// Unwrap a `Result<T, SysRet>` in a handler.
#[macro_export]
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_numbers_match_the_headers() {
        // Checked by hand against asm/unistd_64.h and asm-generic/unistd.h.
        let samples: &[(&str, u32, i32)] = &[
            ("read", 0, 63),
            ("write", 1, 64),
            ("close", 3, 57),
            ("mmap", 9, 222),
            ("brk", 12, 214),
            ("rt_sigaction", 13, 134),
            ("ioctl", 16, 29),
            ("clone", 56, 220),
            ("execve", 59, 221),
            ("exit", 60, 93),
            ("wait4", 61, 260),
            ("kill", 62, 129),
            ("uname", 63, 160),
            ("fcntl", 72, 25),
            ("getcwd", 79, 17),
            ("gettid", 186, 178),
            ("futex", 202, 98),
            ("getdents64", 217, 61),
            ("clock_gettime", 228, 113),
            ("exit_group", 231, 94),
            ("openat", 257, 56),
            ("newfstatat", 262, 79),
            ("pipe2", 293, 59),
            ("prlimit64", 302, 261),
            ("getrandom", 318, 278),
            ("statx", 332, 291),
            ("open", 2, -1),
            ("fork", 57, -1),
        ];
        for s in samples {
            let e = numbers::TABLE.iter().find(|e| e.0 == s.0).expect("in table");
            assert_eq!(e, s);
        }
        assert_eq!(numbers::x86::OPENAT, 257);
    }

    #[test]
    fn every_pass_entry_exists_on_both_hosts() {
        for (family, pass, _) in families() {
            for &(nr, arity) in pass {
                let e = numbers::TABLE.iter().find(|e| e.1 == nr).expect("known number");
                assert!(e.2 >= 0, "{family}: pass-through {} has no riscv64 syscall", e.0);
                assert!(arity <= 6);
            }
        }
    }

    #[test]
    fn no_syscall_is_declared_twice() {
        let mut seen = std::collections::BTreeMap::new();
        for (family, pass, custom) in families() {
            for nr in pass.iter().map(|p| p.0).chain(custom.iter().map(|c| c.0)) {
                if let Some(other) = seen.insert(nr, family) {
                    panic!("syscall {nr} ({:?}) in {other} and {family}", name(u64::from(nr)));
                }
            }
        }
        assert!(seen.len() > 150, "coverage: {} syscalls", seen.len());
    }

    #[test]
    fn x86_only_syscalls_are_custom() {
        // Every syscall a static glibc/musl program commonly issues that riscv64 lacks must have a
        // handler.
        let t = Table::new();
        for n in [
            "open", "stat", "lstat", "access", "pipe", "dup2", "poll", "select", "readlink",
            "unlink", "mkdir", "rmdir", "rename", "fork", "vfork", "getpgrp", "time", "alarm",
            "epoll_wait", "creat", "chmod", "chown", "lchown", "symlink", "link", "arch_prctl",
            "pause", "utimes", "getdents", "epoll_create", "mknod", "inotify_init", "eventfd",
            "signalfd", "futimesat", "renameat", "utime",
        ] {
            let e = numbers::TABLE.iter().find(|e| e.0 == n).expect("known");
            assert!(matches!(t.get(u64::from(e.1)), Some(Entry::Custom(_))), "{n}");
        }
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    struct NoCache(std::cell::Cell<u64>);

    impl CodeCache for NoCache {
        fn invalidate(&self, _: u64, _: u64) {
            self.0.set(self.0.get() + 1);
        }

        fn spawn_thread(&self, _: CpuState, _: &mut Process, _: u64) -> Result<u32, i32> {
            Err(libc::EAGAIN)
        }
    }

    /// Custom handlers that end, block or re-signal the test process itself.
    const SKIP: &[&str] = &[
        "exit", "exit_group", "fork", "vfork", "clone", "execve", "rt_sigreturn", "rt_sigaction",
        "pause", "rt_sigsuspend", "alarm", "prctl", "ppoll", "pselect6", "poll", "select",
        "epoll_wait", "epoll_pwait", "epoll_pwait2",
        // Would block signals the test harness needs.
        "rt_sigprocmask",
        // Would replace the test's own stdin/stdout with each other.
        "dup2",
    ];

    /// Every other custom handler gets hostile arguments (unmapped or wrapping pointers, extreme
    /// integers) and must return an answer, not panic.
    #[test]
    fn custom_handlers_survive_hostile_arguments() {
        let values = [0u64, 1, u64::MAX, u64::MAX - 7, 0xdead_0000, 0x7fff_ffff_f000, 1 << 63, 4096];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut pick = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values[(x % values.len() as u64) as usize]
        };
        let mem = crate::mem::SharedMap::new(crate::mem::GuestMap::new());
        let mut proc = Process::new(mem, std::path::PathBuf::from("/nonexistent/ld-nc"));
        // A break far from anything, as after a real image.
        proc.brk = crate::process::Brk { start: 0x3_0000_0000, cur: 0x3_0000_0000, mapped: 0x3_0000_0000 };
        let cache = NoCache(std::cell::Cell::new(0));
        let mut calls = 0;
        for (_, _, custom) in families() {
            for &(nr, h) in custom {
                let n = name(u64::from(nr)).unwrap_or("?");
                if SKIP.contains(&n) {
                    continue;
                }
                for _ in 0..64 {
                    let a = [pick(), pick(), pick(), pick(), pick(), pick()];
                    let mut cpu = CpuState::default();
                    let mut sys = Sys { cpu: &mut cpu, proc: &mut proc, code: &cache };
                    let r = h(&mut sys, a);
                    assert!(!matches!(r, SysRet::Exit(_)), "{n} exited");
                    calls += 1;
                }
            }
        }
        assert!(calls > 64 * 40, "{calls} calls");
    }
}
