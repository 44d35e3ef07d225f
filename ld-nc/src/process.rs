//! Process-wide emulation state shared by the syscall layer and the run loop: the guest memory
//! record, the emulated brk, guest signal dispositions, and what ld-nc needs to re-exec itself.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::mem::SharedMap;
use crate::syscall::layout::GuestSigaction;

/// The emulated program break: `[start, cur)` is the guest's heap, mapped up to `mapped`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Brk {
    /// Initial break (end of the image).
    pub start: u64,
    /// Current break.
    pub cur: u64,
    /// End of the pages mapped for it.
    pub mapped: u64,
}

/// A guest `sigaltstack`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AltStack {
    /// `ss_sp`.
    pub sp: u64,
    /// `ss_flags` (SS_DISABLE = 2).
    pub flags: i32,
    /// `ss_size`.
    pub size: u64,
}

/// Signals 1..=64.
pub const NSIG: usize = 64;

/// Everything process-wide.
#[derive(Debug)]
pub struct Process {
    /// Guest memory record (shared with the translator's code source).
    pub mem: SharedMap,
    /// Program break.
    pub brk: Brk,
    /// Guest dispositions, index = signal number (0 unused).
    pub sigactions: [GuestSigaction; NSIG + 1],
    /// Guest alternate signal stack.
    pub altstack: AltStack,
    /// ld-nc's own executable, for re-exec of x86_64 programs.
    pub exe: PathBuf,
    /// The guest program's absolute path: what the guest sees as `/proc/self/exe`.
    pub guest_exe: PathBuf,
    /// Command put before ld-nc when re-executing it for an x86_64 program (`LDNC_EXEC_WRAPPER`,
    /// resolved); empty normally.
    pub exec_wrapper: Vec<std::ffi::CString>,
    /// Syscall numbers already reported as unsupported.
    pub reported: HashSet<u64>,
    /// A syscall that ran with a temporary signal mask (`rt_sigsuspend`, `ppoll`, `pselect6`,
    /// `epoll_pwait`) was interrupted: signals caught during it are delivered even though the
    /// restored mask blocks them, as the kernel does.
    pub force_signals: bool,
    /// `set_robust_list` head (recorded only: the kernel would process it when a thread dies
    /// holding a robust mutex, which ld-nc does not emulate).
    pub robust_list: u64,
}

impl Process {
    /// Fresh state for a guest whose memory record is `mem`.
    pub fn new(mem: SharedMap, exe: PathBuf) -> Process {
        Process {
            mem,
            brk: Brk::default(),
            sigactions: [GuestSigaction::default(); NSIG + 1],
            altstack: AltStack { sp: 0, flags: 2, size: 0 },
            guest_exe: exe.clone(),
            exec_wrapper: Vec::new(),
            exe,
            reported: HashSet::new(),
            robust_list: 0,
            force_signals: false,
        }
    }
}
