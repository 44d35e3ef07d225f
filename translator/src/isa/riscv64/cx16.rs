//! CMPXCHG16B for the riscv64 backend. RV64 has no 128-bit compare-and-swap (no Zacas on the hosts
//! ld-nc targets), so the exchange is two loads, a compare and two stores in generated code,
//! bracketed by full fences for LOCK's ordering. That is atomic with respect to every other guest
//! access because ld-nc runs guest threads one at a time (the runtime's big lock); a host with
//! truly parallel guest threads needs a lock here, as box64 uses.
//!
//! Intel SDM vol. 2, CMPXCHG8B/CMPXCHG16B: compare RDX:RAX with m128; if equal, set ZF and store
//! RCX:RBX, else clear ZF and load m128 into RDX:RAX. The other flags are unaffected. An operand
//! not aligned on 16 bytes raises #GP (SIGSEGV for a user process).

use iced_x86::{Code, Instruction};

use super::encode::{Op, Reg};
use super::lower::{FState, LResult, Lower};
use super::regs::{self, CTX};
use super::flags;
use crate::cpu::{flags::ZF, Gpr, OFF_RFLAGS};
use crate::ctx::exit;

/// Whether `i` is CMPXCHG16B.
pub fn is_cx16(i: &Instruction) -> bool {
    i.code() == Code::Cmpxchg16b_m128
}

impl Lower<'_> {
    /// Lower CMPXCHG16B m128.
    pub fn lower_cx16(&mut self, i: &Instruction) -> LResult {
        // The compare only changes ZF: start from exact flags.
        self.materialize();
        let at = self.addr(i)?;
        let base = self.addr_reg(at);
        let gp = self.exit_label(exit::PRIVILEGED, i.ip());
        let t = self.tmp();
        self.a.i(Op::Andi, t, base, 15);
        self.a.b_far(Op::Bne, t, Reg::ZERO, gp);
        let lo = self.tmp();
        let hi = self.tmp();
        let (rax, rdx, rbx, rcx) =
            (regs::guest(Gpr::Rax), regs::guest(Gpr::Rdx), regs::guest(Gpr::Rbx), regs::guest(Gpr::Rcx));
        self.a.i(Op::Fence, Reg::ZERO, Reg::ZERO, 0x33);
        self.a.ld(lo, base, 0);
        self.a.ld(hi, base, 8);
        let d = self.tmp();
        self.a.r(Op::Xor, t, lo, rax);
        self.a.r(Op::Xor, d, hi, rdx);
        self.a.r(Op::Or, t, t, d);
        let fl = self.tmp();
        self.a.ld(fl, CTX, OFF_RFLAGS as i32);
        self.a.i(Op::Andi, fl, fl, !(ZF as i32));
        let ne = self.a.label();
        let done = self.a.label();
        self.a.b(Op::Bne, t, Reg::ZERO, ne);
        self.a.sd(rbx, base, 0);
        self.a.sd(rcx, base, 8);
        self.a.i(Op::Ori, fl, fl, ZF as i32);
        self.a.j(done);
        self.a.bind(ne);
        self.a.mv(rax, lo);
        self.a.mv(rdx, hi);
        self.a.bind(done);
        self.a.i(Op::Fence, Reg::ZERO, Reg::ZERO, 0x33);
        self.a.sd(fl, CTX, OFF_RFLAGS as i32);
        // Flags stay exact in ctx.cpu.rflags; the kind word already says EXACT (materialize).
        debug_assert_eq!(flags::EXACT, 0);
        self.fs = FState::Exact;
        Ok(())
    }
}
