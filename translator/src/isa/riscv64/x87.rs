//! x87 lowering for the riscv64 backend — owned by the x87 helper (another session); rv: please
//! don't implement x87 arithmetic elsewhere.
//!
//! The x87 registers stay in `ctx.cpu` (`fpr` by physical register, `ftw`, `fcw`, `fsw`) and
//! every x87 instruction becomes a call of [`x87_ops::rv_x87_op`], which implements it on that
//! state (see `x87_ops.rs` for the arithmetic). Generated code only moves memory operands:
//! a source is loaded into `ctx.scratch` before the call, a result stored from it afterwards
//! (its address recomputed from the reloaded guest registers), so a guest fault on the operand
//! happens in generated code and maps back to the instruction. The environment and save-area
//! instructions (fnstenv, fnsave, fxsave and their loads) hand the helper the address instead,
//! after touching both ends of the area so that a bad address still faults in generated code.
//! FNSTCW/FNSTSW and FWAIT are `ctl.rs`'s (inline moves); FLDCW is taken here (it is routed
//! before `ctl.rs`), since a loaded control word keeps only its defined bits.

use iced_x86::{EncodingKind, Instruction, Mnemonic, OpKind};

use super::encode::{Op, Reg, FENCE_R, FENCE_W};
use super::flags;
use super::lower::{FState, LResult, Loc, Lower, Unsupp, OFF_STATUS};
use super::regs::{self, CTX};
use self::x87_ops::{plan, OUT, STAGE};
use crate::cpu::{Gpr, OFF_GPR};
use crate::ctx::OFF_SCRATCH;

#[path = "x87_ops.rs"]
pub mod x87_ops;

#[path = "x87_trans.rs"]
mod x87_trans;

#[cfg(test)]
#[path = "x87_tests.rs"]
mod x87_tests;

/// Whether `i` is an x87 instruction this module lowers.
pub fn is_x87(i: &Instruction) -> bool {
    i.encoding() == EncodingKind::Legacy && plan(i.code()).is_some()
}

fn word(w: usize) -> i32 {
    (OFF_SCRATCH + 8 * w) as i32
}

/// The `i` of the instruction's ST(i) operand (0 when it has none).
pub fn sti_of(i: &Instruction) -> u64 {
    let st = |n: u32| {
        if i.op_kind(n) != OpKind::Register {
            return None;
        }
        let r = i.op_register(n) as u32;
        let base = iced_x86::Register::ST0 as u32;
        (base..base + 8).contains(&r).then(|| u64::from(r - base))
    };
    match i.op_count() {
        2 if st(0) == Some(0) => st(1).unwrap_or(0),
        n if n >= 1 => st(0).unwrap_or(0),
        _ => 0,
    }
}

impl Lower<'_> {
    /// Lower one instruction for which [`is_x87`] holds.
    pub fn lower_x87(&mut self, i: &Instruction) -> LResult {
        let p = plan(i.code()).ok_or(Unsupp)?;
        if i.code() == iced_x86::Code::Fnop {
            return Ok(());
        }
        if p.ptr || p.load > 0 {
            let at = self.addr(i)?;
            if p.ptr {
                let r = self.addr_reg(at);
                self.a.sd(r, CTX, word(STAGE));
                // Touch the first and last byte so that a bad address faults here, in generated
                // code mapped back to the instruction, and not inside the helper. For a store,
                // an `amoor.w zero,zero` on the aligned word holding the byte checks write access
                // without rewriting anything (a load and store back could undo another thread's
                // write in between).
                let len = x87_ops::area_len(i.code()) as i32;
                let writes = !matches!(i.mnemonic(), Mnemonic::Fldenv | Mnemonic::Frstor | Mnemonic::Fxrstor | Mnemonic::Fxrstor64);
                let t = self.tmp();
                for off in [0, len - 1] {
                    if writes {
                        self.a.addi(t, r, off);
                        self.a.i(Op::Andi, t, t, -4);
                        self.a.amo(Op::AmoorW, false, false, Reg::ZERO, t, Reg::ZERO);
                    } else {
                        self.a.i(Op::Lbu, t, r, off);
                    }
                }
            } else {
                let t = self.tmp();
                if p.load == 10 {
                    self.a.ld(t, at.base, at.off);
                    self.a.sd(t, CTX, word(STAGE));
                    self.a.i(Op::Lhu, t, at.base, at.off + 8);
                    self.a.sd(t, CTX, word(STAGE + 1));
                } else {
                    self.load(t, at, u32::from(p.load) * 8);
                    self.a.sd(t, CTX, word(STAGE));
                }
            }
        }
        if p.flags_in {
            self.materialize();
        }
        self.x87_call(i.code() as u64 | sti_of(i) << 16);
        if !p.ptr {
            // An unmasked exception: leave before any result is stored.
            let t = self.tmp();
            self.a.ld(t, CTX, OFF_STATUS);
            let out = self.exit_label(crate::ctx::exit::UNSUPPORTED, i.ip());
            self.a.b(Op::Bne, t, Reg::ZERO, out);
            self.free_temps();
        }
        if p.store > 0 {
            let at = self.addr(i)?;
            let t = self.tmp();
            self.a.ld(t, CTX, word(OUT));
            if p.store == 10 {
                self.a.sd(t, at.base, at.off);
                self.a.ld(t, CTX, word(OUT + 1));
                self.a.s(Op::Sh, t, at.base, at.off + 8);
            } else {
                self.store(t, at, u32::from(p.store) * 8);
            }
        }
        if p.ax {
            let t = self.tmp();
            self.a.ld(t, CTX, word(OUT));
            self.write(Loc::Reg(Gpr::Rax, false), 16, t)?;
        }
        if p.flags_out {
            // The helper wrote all six status flags into ctx.cpu.rflags.
            self.a.sd(Reg::ZERO, CTX, flags::OFF_KIND);
            self.fs = FState::Exact;
        }
        Ok(())
    }

    /// Call [`x87_ops::rv_x87_op`] with descriptor `d`, preserving the guest registers the host
    /// ABI does not. Scratch registers do not survive.
    fn x87_call(&mut self, d: u64) {
        for g in regs::CALLER_SAVED_GUESTS {
            self.a.sd(regs::guest(g), CTX, (OFF_GPR + 8 * g as usize) as i32);
        }
        self.a.li(Reg::A1, d);
        self.a.mv(Reg::A0, CTX);
        self.a.li(Reg::RA, x87_ops::rv_x87_op as *const () as u64);
        // Some x87 helpers read or write a guest memory area themselves (FXSAVE, FNSTENV...):
        // in TSO-fence mode full fences keep x86's order around them (see mod.rs).
        let fence = self.a.ext.tso_fences;
        if fence {
            self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
        }
        self.a.i(Op::Jalr, Reg::RA, Reg::RA, 0);
        if fence {
            self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
        }
        for g in regs::CALLER_SAVED_GUESTS {
            self.a.ld(regs::guest(g), CTX, (OFF_GPR + 8 * g as usize) as i32);
        }
        self.free_temps();
    }
}
