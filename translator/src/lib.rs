//! The translator: it owns x86-64 decoding (iced-x86), block discovery, the two backends (riscv64,
//! the product; x86_64, copy-through for development and measurement), the code cache with its
//! indirect-branch table and block links, self-modifying-code invalidation, and the CPUID model.
//!
//! It knows nothing of ELF, syscalls or libraries: [`Translator::run`] executes guest code until
//! something only the runtime can handle happens, and says what in an [`Exit`].

pub mod bridge;
pub mod cache;
pub mod cpu;
pub mod cpuid;
pub mod ctx;
pub mod dispatch;
pub mod fault;
pub mod frontend;
pub mod isa;
pub mod smc;

use std::fmt;

pub use bridge::{NativeFn, TrapTable};
pub use cpu::{CpuState, Gpr};
pub use ctx::ThreadCtx;
pub use dispatch::Translator;
pub use frontend::{CodeSource, GuestBlock};

/// Why [`Translator::run`] handed control back to the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A `syscall` instruction; `cpu.rip` is the address after it, arguments are in the guest
    /// registers, the result goes to RAX.
    Syscall,
    /// `int3`; `cpu.rip` is after it, as for the SIGTRAP the kernel would raise.
    Breakpoint,
    /// `hlt` or another privileged instruction at `cpu.rip` (SIGSEGV for a real process).
    Privileged,
    /// `ud2` or an undefined opcode at `cpu.rip` (SIGILL).
    InvalidOpcode,
    /// Integer division by zero or overflow at `cpu.rip` (SIGFPE).
    DivideError,
    /// An instruction that decodes but this backend cannot translate. Never run silently wrong.
    Unsupported(Unsupported),
    /// Guest code at an address that cannot be read (SIGSEGV at `cpu.rip`).
    NotExecutable,
    /// A fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL) raised by translated guest code; `cpu` is the
    /// guest state at the faulting instruction.
    Fault(ctx::FaultInfo),
    /// Generated code was stopped between two guest instructions so that pending asynchronous
    /// signals can be delivered; resume at `cpu.rip`.
    Interrupted,
}

/// An instruction the active backend does not translate, for the error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// Its guest address.
    pub pc: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its disassembly (Intel syntax).
    pub text: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unsupported instruction at {:#x}: `{}` (bytes", self.pc, self.text)?;
        for b in &self.bytes {
            write!(f, " {b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Errors setting up the translator.
#[derive(Debug)]
pub enum Error {
    /// The code cache could not be mapped.
    CacheMap(std::io::Error),
    /// The requested backend cannot run on this host.
    BackendUnavailable(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CacheMap(e) => write!(f, "cannot map the code cache: {e}"),
            Error::BackendUnavailable(name) => {
                write!(f, "the {name} backend cannot run on this host")
            }
        }
    }
}

impl std::error::Error for Error {}

pub use isa::{Backend, HostBackend};

/// An `LDNC_*` knob the translator reads itself (backend tuning and diagnostics). Like every ld-nc
/// knob it is ignored for a secure-execution process (AT_SECURE: setuid or setgid), whose
/// environment its invoker controls.
pub fn env_knob(name: &str) -> Option<String> {
    // SAFETY: getauxval has no preconditions.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return None;
    }
    std::env::var(name).ok()
}
