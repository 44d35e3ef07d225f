//! The per-thread context that generated code addresses directly: the guest [`CpuState`] followed by
//! the words through which generated code talks to the dispatcher (exit reason, link site), the
//! indirect-branch table, and save areas owned by the backend.
//!
//! Generated code finds it through a register the backend reserves (GS base on x86_64 hosts, a
//! pinned register on riscv64), so every field has an exported offset.

use crate::cache::LookupEntry;
use crate::cpu::CpuState;

/// Exit codes written to [`ThreadCtx::exit_reason`] by generated code.
pub mod exit {
    /// `cpu.rip` has no linked translation. If `exit_arg` is non-zero it is the address of the link
    /// site that jumped here, to be patched once `cpu.rip` is translated.
    pub const LOOKUP: u64 = 1;
    /// `syscall` executed; `cpu.rip` is after it.
    pub const SYSCALL: u64 = 2;
    /// `cpuid` executed; `cpu.rip` is after it. Handled inside the dispatcher.
    pub const CPUID: u64 = 3;
    /// `int3`; `cpu.rip` is after it.
    pub const BREAKPOINT: u64 = 4;
    /// Privileged instruction (`hlt`, `in`, `out`…) at `cpu.rip`.
    pub const PRIVILEGED: u64 = 5;
    /// `ud2` or an undefined opcode at `cpu.rip`.
    pub const INVALID_OPCODE: u64 = 6;
    /// An instruction the backend cannot translate, at `cpu.rip`.
    pub const UNSUPPORTED: u64 = 7;
    /// `div`/`idiv` by zero or overflowing, at `cpu.rip`.
    pub const DIVIDE_ERROR: u64 = 8;
    /// `cpu.rip` cannot be fetched.
    pub const NOT_EXECUTABLE: u64 = 9;
    /// A host signal for a synchronous fault in translated code was turned into this exit;
    /// `cpu` is the guest state at the faulting instruction and [`super::ThreadCtx::fault`] says
    /// what happened.
    pub const FAULT: u64 = 10;
    /// A host signal handler stopped generated code at a guest instruction boundary so that a
    /// pending asynchronous signal can be delivered; `cpu` is exact, `cpu.rip` the next
    /// instruction to run.
    pub const INTERRUPT: u64 = 11;
}

/// Number of words in each backend-owned area.
pub const SAVE_WORDS: usize = 32;

/// One guest thread's context. Allocate with [`ThreadCtx::new`]; its address must not change while
/// generated code may run, which the `Box` guarantees.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct ThreadCtx {
    /// Architectural guest state.
    pub cpu: CpuState,
    /// Why generated code returned to the dispatcher (one of [`exit`]).
    pub exit_reason: u64,
    /// Extra word for the exit (the link site for [`exit::LOOKUP`]).
    pub exit_arg: u64,
    /// Base of the indirect-branch table (`mask + 1` entries).
    pub lookup: *const LookupEntry,
    /// Index mask of the indirect-branch table.
    pub lookup_mask: u64,
    /// Number of code-cache flushes so far; set by the dispatcher before every entry. Host code
    /// addresses a backend keeps outside the cache (a return-address stack) are stale once it
    /// changes.
    pub cache_epoch: u64,
    /// Host state saved on entry to generated code (stack pointer, callee-saved registers, host
    /// thread pointer), backend-defined.
    pub host_save: [u64; SAVE_WORDS],
    /// Spill slots for generated code, backend-defined.
    pub scratch: [u64; SAVE_WORDS],
    /// Backend state that persists across blocks (e.g. deferred flags), backend-defined.
    pub backend: [u64; SAVE_WORDS],
    /// The fault behind an [`exit::FAULT`].
    pub fault: FaultInfo,
    /// This thread's registration with the dispatcher (made on its first run).
    /// (Owned by the translator's thread list; null before the first run.)
    pub slot: *const crate::dispatch::ThreadSlot,
}

/// A synchronous fault in guest code, as the host's signal described it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FaultInfo {
    /// Signal number (host numbering; SIGSEGV, SIGBUS, SIGFPE and SIGILL are the same on x86_64
    /// and riscv64).
    pub signo: i32,
    /// `si_code`.
    pub code: i32,
    /// `si_addr`: the faulting data address (SIGSEGV/SIGBUS) or instruction.
    pub addr: u64,
}

/// Offset of [`ThreadCtx::exit_reason`].
pub const OFF_EXIT_REASON: usize = core::mem::offset_of!(ThreadCtx, exit_reason);
/// Offset of [`ThreadCtx::exit_arg`].
pub const OFF_EXIT_ARG: usize = core::mem::offset_of!(ThreadCtx, exit_arg);
/// Offset of [`ThreadCtx::lookup`].
pub const OFF_LOOKUP: usize = core::mem::offset_of!(ThreadCtx, lookup);
/// Offset of [`ThreadCtx::lookup_mask`].
pub const OFF_LOOKUP_MASK: usize = core::mem::offset_of!(ThreadCtx, lookup_mask);
/// Offset of [`ThreadCtx::cache_epoch`].
pub const OFF_CACHE_EPOCH: usize = core::mem::offset_of!(ThreadCtx, cache_epoch);
/// Offset of [`ThreadCtx::host_save`].
pub const OFF_HOST_SAVE: usize = core::mem::offset_of!(ThreadCtx, host_save);
/// Offset of [`ThreadCtx::scratch`].
pub const OFF_SCRATCH: usize = core::mem::offset_of!(ThreadCtx, scratch);
/// Offset of [`ThreadCtx::backend`].
pub const OFF_BACKEND: usize = core::mem::offset_of!(ThreadCtx, backend);
/// Offset of [`ThreadCtx::slot`] (the native-call routines clear and set `in_code` through it).
pub const OFF_SLOT: usize = core::mem::offset_of!(ThreadCtx, slot);

impl ThreadCtx {
    /// A context with the default CPU state and no lookup table (set by the translator).
    pub fn new() -> Box<ThreadCtx> {
        Box::new(ThreadCtx {
            cpu: CpuState::default(),
            exit_reason: 0,
            exit_arg: 0,
            lookup: core::ptr::null(),
            lookup_mask: 0,
            cache_epoch: 0,
            host_save: [0; SAVE_WORDS],
            scratch: [0; SAVE_WORDS],
            backend: [0; SAVE_WORDS],
            fault: FaultInfo::default(),
            slot: core::ptr::null(),
        })
    }
}
