//! SSE/SSE2 lowering for the riscv64 backend — owned by the SSE helper (another session); rv:
//! please don't implement SSE elsewhere.
//!
//! The XMM registers stay in `ctx.cpu.xmm` (two 64-bit halves each, addressed from the context
//! register), and MXCSR in `ctx.cpu.mxcsr`; every instruction loads what it reads and stores what
//! it writes, so the state is always exact in memory and exits need no extra work.

use iced_x86::{EncodingKind, Instruction, Mnemonic as M};

use super::lower::{LResult, Lower, Unsupp};

/// Whether `i` belongs to this module: a legacy-encoded instruction with an XMM operand, or one
/// of the few SSE instructions without one.
pub fn is_sse(i: &Instruction) -> bool {
    if i.encoding() != EncodingKind::Legacy {
        return false;
    }
    if matches!(i.mnemonic(), M::Ldmxcsr | M::Stmxcsr | M::Movnti) {
        return true;
    }
    (0..i.op_count()).any(|n| i.op_kind(n) == iced_x86::OpKind::Register && i.op_register(n).is_xmm())
}

impl Lower<'_> {
    /// Lower one instruction for which [`is_sse`] holds.
    pub fn lower_sse(&mut self, i: &Instruction) -> LResult {
        let _ = i;
        Err(Unsupp)
    }
}
