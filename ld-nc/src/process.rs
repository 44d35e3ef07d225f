//! Process-wide emulation state shared by the syscall layer and the run loop of every guest
//! thread: the guest memory record, the emulated brk, guest signal dispositions, and what ld-nc
//! needs to re-exec itself. Touched only under the process lock of [`crate::threads`], which
//! also lists what is per thread instead.

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

/// Everything process-wide (per-thread state lives in [`crate::threads`]).
#[derive(Debug)]
pub struct Process {
    /// Guest memory record (shared with the translator's code source).
    pub mem: SharedMap,
    /// Program break.
    pub brk: Brk,
    /// Guest dispositions, index = signal number (0 unused).
    pub sigactions: [GuestSigaction; NSIG + 1],
    /// ld-nc's own executable, for re-exec of x86_64 programs.
    pub exe: PathBuf,
    /// The guest program's absolute path: what the guest sees as `/proc/self/exe`.
    pub guest_exe: PathBuf,
    /// Command put before ld-nc when re-executing it for an x86_64 program (`LDNC_EXEC_WRAPPER`,
    /// resolved); empty normally.
    pub exec_wrapper: Vec<std::ffi::CString>,
    /// Syscall numbers already reported as unsupported.
    pub reported: HashSet<u64>,
}

impl Process {
    /// Fresh state for a guest whose memory record is `mem`.
    pub fn new(mem: SharedMap, exe: PathBuf) -> Process {
        Process {
            mem,
            brk: Brk::default(),
            sigactions: [GuestSigaction::default(); NSIG + 1],
            guest_exe: exe.clone(),
            exec_wrapper: Vec::new(),
            exe,
            reported: HashSet::new(),
        }
    }
}
