//! Register use of the x86_64 backend. Guest registers *are* the host registers while generated code
//! runs: every guest GPR, XMM register and RFLAGS lives in its own architectural register, FS base
//! is the guest's, and GS base points at the [`ThreadCtx`](crate::ThreadCtx) so generated code can
//! spill and exit without a free register. Guests that use GS themselves are not supported.

use crate::ctx::{OFF_BACKEND, OFF_SCRATCH};
use iced_x86::Register;

/// Slot in `ctx.backend` holding the address of the shared exit routine.
pub const SLOT_EXIT: usize = OFF_BACKEND;
/// Slot in `ctx.backend` holding the first host address to run on entry.
pub const SLOT_TARGET: usize = OFF_BACKEND + 16;
/// Saved host FS base.
pub const SLOT_HOST_FS: usize = OFF_BACKEND + 24;
/// Saved host GS base.
pub const SLOT_HOST_GS: usize = OFF_BACKEND + 32;
/// Saved host stack pointer.
pub const SLOT_HOST_SP: usize = OFF_BACKEND + 40;
/// Slot in `ctx.backend` holding the address of the lookup-miss path.
pub const SLOT_MISS: usize = OFF_BACKEND + 56;
/// Slot in `ctx.backend` holding the address of the lookup-miss path that keeps `exit_arg` (the
/// inline cache asking to be filled).
pub const SLOT_FILL: usize = OFF_BACKEND + 64;
/// Slot in `ctx.backend` holding the address of the native-call routine (`ldnc_x86_native`).
pub const SLOT_NATIVE: usize = OFF_BACKEND + 72;
/// Marks a context as entered (read by signal handlers to find host FS).
pub const SLOT_MAGIC: usize = OFF_BACKEND + 48;
/// Value stored in [`SLOT_MAGIC`].
pub const MAGIC: u64 = 0x6c64_6e63_7838_3621;

/// Spill slot for guest RAX during an indirect-branch lookup.
pub const S_RAX: usize = OFF_SCRATCH;
/// Spill slot for guest RCX during an indirect-branch lookup.
pub const S_RCX: usize = OFF_SCRATCH + 8;
/// Spill slot for guest RDX (indirect-branch lookups take the target in RDX).
pub const S_RDX: usize = OFF_SCRATCH + 16;
/// Host target of a lookup hit.
pub const S_TARGET: usize = OFF_SCRATCH + 32;
/// Spill slot for the scratch register of a rewritten RIP-relative operand.
pub const S_REWRITE: usize = OFF_SCRATCH + 40;
/// Guest target of the indirect branch in progress (for the paths after an inline-cache miss).
pub const S_GUEST_TARGET: usize = OFF_SCRATCH + 48;

/// Candidate scratch registers for rewriting a RIP-relative operand, in preference order.
pub const REWRITE_SCRATCH: [Register; 4] = [Register::R11, Register::R10, Register::RAX, Register::RCX];
