//! Inline expansions of the SSE instructions programs run hot (SSE helper's file): narrow-lane
//! integer arithmetic, PMINUB/PMAXUB, PSHUFD, the low unpacks and PALIGNR as SWAR code on the two
//! 64-bit halves, and scalar double arithmetic, compares and conversions on the host FPU.
//!
//! The floating-point expansions are fast paths: they run when MXCSR is the default (round to
//! nearest, all exceptions masked, no DAZ/FTZ; status bits may be anything), no operand is a NaN
//! or a denormal, and the operation raises no invalid exception. Under those conditions RISC-V's
//! IEEE result and flags are exactly x86's; anything else branches to the helper call, which has
//! every rule (NaN selection, indefinites, DE, rounding control). Nothing is written before the
//! branch, so the helper starts from the original state. The scalar arithmetic has a quicker
//! path in front for when MXCSR's PE is already set: integer checks on the operand and result
//! bits prove that only inexact can have happened, so the host flags are never touched.

use iced_x86::{Code, Instruction, Mnemonic as M};

use super::sse_ops::{self, SRC_STAGED, STAGE};
use super::{stage_off, xoff, X};
use crate::isa::riscv64::encode::{Op, Reg};
use crate::isa::riscv64::flags;
use crate::isa::riscv64::lower::{op_bits, FState, LResult, Lower, Unsupp};
use crate::isa::riscv64::regs::CTX;
use crate::cpu::{flags as fl, OFF_MXCSR, OFF_RFLAGS};

/// A floating-point register (`f0`..`f31`); the expansions use the caller-saved `ft0`/`ft1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FReg(pub u8);

/// `ft0`.
pub const FT0: FReg = FReg(0);
/// `ft1`.
pub const FT1: FReg = FReg(1);

const OP_FP: u32 = 0b101_0011;
const OP_SYSTEM: u32 = 0b111_0011;
const CSR_FFLAGS: u32 = 0x001;
/// RISC-V static rounding modes.
const RNE: u32 = 0;
const RTZ: u32 = 1;

/// OP-FP R-type: `funct7 | rs2 | rs1 | rm | rd`.
pub fn enc_fp(funct7: u32, rs2: u32, rs1: u32, rm: u32, rd: u32) -> u32 {
    funct7 << 25 | (rs2 & 31) << 20 | (rs1 & 31) << 15 | (rm & 7) << 12 | (rd & 31) << 7 | OP_FP
}

/// Binary arithmetic on the host FPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FArith {
    Add = 0x00,
    Sub = 0x04,
    Mul = 0x08,
    Div = 0x0c,
}

impl Lower<'_> {
    fn fp_word(&mut self, w: u32) {
        self.a.word(w);
    }

    /// `fmv.d.x` / `fmv.w.x`.
    fn fmv_to_f(&mut self, d: bool, fd: FReg, rs: Reg) {
        self.fp_word(enc_fp(if d { 0x79 } else { 0x78 }, 0, u32::from(rs.0), 0, u32::from(fd.0)));
    }

    /// `fmv.x.d` / `fmv.x.w` (the latter sign-extends).
    fn fmv_to_x(&mut self, d: bool, rd: Reg, fs: FReg) {
        self.fp_word(enc_fp(if d { 0x71 } else { 0x70 }, 0, u32::from(fs.0), 0, u32::from(rd.0)));
    }

    /// `fclass.d` / `fclass.s`.
    fn fclass(&mut self, d: bool, rd: Reg, fs: FReg) {
        self.fp_word(enc_fp(if d { 0x71 } else { 0x70 }, 0, u32::from(fs.0), 1, u32::from(rd.0)));
    }

    /// `csrrw zero, fflags, zero`.
    fn clear_fflags(&mut self) {
        self.fp_word(CSR_FFLAGS << 20 | 1 << 12 | OP_SYSTEM);
    }

    /// `csrrs rd, fflags, zero`.
    fn read_fflags(&mut self, rd: Reg) {
        self.fp_word(CSR_FFLAGS << 20 | 2 << 12 | u32::from(rd.0) << 7 | OP_SYSTEM);
    }

    /// Branch to `slow` unless MXCSR's control bits are the default 0x1f80.
    fn branch_unless_default_mxcsr(&mut self, t: Reg, slow: crate::isa::riscv64::asm::Label) {
        self.a.i(Op::Lwu, t, CTX, OFF_MXCSR as i32);
        self.a.srli(t, t, 6);
        self.a.addi(t, t, -(0x1f80 >> 6));
        self.a.b(Op::Bne, t, Reg::ZERO, slow);
    }

    // The quick paths below compute their conditions as bits and branch once: under an
    // emulator every branch ends a translated block, which costs more than a few ALU ops.

    /// `t` = nonzero unless MXCSR's control bits are the default 0x1f80 and PE is already set:
    /// then an operation whose only possible exception is inexact changes nothing in MXCSR, and
    /// the host's flags need not be read.
    fn mxcsr_not_default_pe(&mut self, t: Reg) {
        self.a.i(Op::Lwu, t, CTX, OFF_MXCSR as i32);
        self.a.srli(t, t, 5);
        self.a.addi(t, t, -(0x1fa0 >> 5));
    }

    /// `out` = 1 if the bits in `x` are a denormal (or, harmlessly, the smallest normal), else
    /// 0: `(x << 1) - 1` has a zero exponent field exactly for those (a zero wraps around).
    fn denormal_bit(&mut self, d: bool, x: Reg, out: Reg) {
        let (sh, exp_at) = if d { (1, 53) } else { (33, 56) };
        self.a.slli(out, x, sh);
        self.a.addi(out, out, -1);
        self.a.srli(out, out, exp_at);
        self.a.i(Op::Sltiu, out, out, 1);
    }

    /// `t` |= 1 if the bits in `x` are a NaN or a denormal (or the smallest normal), as
    /// [`Lower::branch_if_special`] tests without a host FPU instruction: after dropping the
    /// sign, a NaN is above the infinity's bits. `inf` holds those bits (see [`Lower::inf_bits`]);
    /// `u` is scratch.
    fn or_special_bit(&mut self, d: bool, x: Reg, t: Reg, u: Reg, inf: Reg) {
        self.denormal_bit(d, x, u);
        self.a.r(Op::Or, t, t, u);
        self.a.slli(u, x, if d { 1 } else { 33 });
        self.a.r(Op::Sltu, u, inf, u);
        self.a.r(Op::Or, t, t, u);
    }

    /// `inf` = an infinity's bits shifted left as [`Lower::or_special_bit`] compares them.
    fn inf_bits(&mut self, d: bool, inf: Reg) {
        self.a.addi(inf, Reg::ZERO, -1);
        self.a.slli(inf, inf, if d { 53 } else { 56 });
    }

    /// `t` = 1 if the result bits `r` of `op` on operand bits `ab` (neither a denormal, no
    /// NaN result) prove that the operation raised nothing but inexact, else 0; `v` is scratch.
    /// A sum or difference is exact whenever it is tiny (both operands are multiples of the
    /// smallest denormal), so anything below infinity qualifies. A product or quotient needs a
    /// biased exponent of at least 2: not tiny (underflow; tininess after rounding on both
    /// ISAs can only round up to the smallest normal, exponent 1) nor infinite (overflow,
    /// divide by zero); or a zero from a zero factor or dividend, which is exact.
    fn plain_bit(&mut self, d: bool, op: FArith, r: Reg, ab: Option<(Reg, Reg)>, t: Reg, v: Reg) {
        let (sh, exp_at, emax) = if d { (1, 53, 2047) } else { (33, 56, 255) };
        if matches!(op, FArith::Add | FArith::Sub) {
            self.a.slli(t, r, sh);
            self.a.srli(t, t, exp_at);
            self.a.i(Op::Sltiu, t, t, emax);
            return;
        }
        match ab {
            Some((a, b)) => {
                self.a.slli(t, a, sh);
                self.a.i(Op::Sltiu, t, t, 1);
                if op == FArith::Mul {
                    self.a.slli(v, b, sh);
                    self.a.i(Op::Sltiu, v, v, 1);
                    self.a.r(Op::Or, t, t, v);
                }
                self.a.slli(v, r, sh);
                self.a.i(Op::Sltiu, v, v, 1);
                self.a.r(Op::And, t, t, v);
            }
            None => self.a.li(t, 0),
        }
        self.a.slli(v, r, sh);
        self.a.srli(v, v, exp_at);
        self.a.addi(v, v, -2);
        self.a.i(Op::Sltiu, v, v, emax - 2);
        self.a.r(Op::Or, t, t, v);
    }

    /// Branch to `slow` if `f` holds a NaN or a denormal.
    fn branch_if_special(&mut self, d: bool, f: FReg, t: Reg, slow: crate::isa::riscv64::asm::Label) {
        self.fclass(d, t, f);
        // fclass bits: 2 negative subnormal, 5 positive subnormal, 8 signalling NaN, 9 quiet NaN.
        self.a.i(Op::Andi, t, t, 0x324);
        self.a.b(Op::Bne, t, Reg::ZERO, slow);
    }

    /// OR the x86 equivalents of the host IEEE flags in `t` (NV excluded: those took the slow
    /// path) into MXCSR; `u` is clobbered.
    fn merge_fflags(&mut self, t: Reg, u: Reg, v: Reg) {
        let done = self.a.label();
        self.a.b(Op::Beq, t, Reg::ZERO, done);
        // NX 0 -> PE 5, UF 1 -> UE 4, OF 2 -> OE 3, DZ 3 -> ZE 2.
        self.a.i(Op::Andi, u, t, 1);
        self.a.slli(u, u, 5);
        self.a.i(Op::Andi, v, t, 2);
        self.a.slli(v, v, 3);
        self.a.r(Op::Or, u, u, v);
        self.a.i(Op::Andi, v, t, 4);
        self.a.slli(v, v, 1);
        self.a.r(Op::Or, u, u, v);
        self.a.i(Op::Andi, v, t, 8);
        self.a.srli(v, v, 1);
        self.a.r(Op::Or, u, u, v);
        self.a.i(Op::Lwu, v, CTX, OFF_MXCSR as i32);
        self.a.r(Op::Or, v, v, u);
        self.a.s(Op::Sw, v, CTX, OFF_MXCSR as i32);
        self.a.bind(done);
    }

    /// The slow path of a fast-path expansion: stage `b` if the source was memory or a general
    /// register and call the helper.
    fn slow_call(&mut self, code: Code, dst: u32, src: Option<u32>, b: Reg) {
        let s = match src {
            Some(x) => u64::from(x),
            None => {
                self.a.sd(b, CTX, stage_off(STAGE));
                self.a.sd(Reg::ZERO, CTX, stage_off(STAGE + 1));
                SRC_STAGED
            }
        };
        self.sse_call(sse_ops::desc(code, dst, s, 0));
    }

    /// ADDSD/SUBSD/MULSD/DIVSD and the SS forms.
    pub(super) fn fast_scalar_arith(&mut self, i: &Instruction) -> LResult {
        let d64 = matches!(i.mnemonic(), M::Addsd | M::Subsd | M::Mulsd | M::Divsd);
        let op = match i.mnemonic() {
            M::Addsd | M::Addss => FArith::Add,
            M::Subsd | M::Subss => FArith::Sub,
            M::Mulsd | M::Mulss => FArith::Mul,
            _ => FArith::Div,
        };
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let bits = if d64 { 64 } else { 32 };
        let (checked, slow, done) = (self.a.label(), self.a.label(), self.a.label());
        let (ta, tb, t, u) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        let v = self.tmp();
        self.load_scalar(ta, X::Xmm(d), bits);
        self.load_scalar(tb, s, bits);
        // Quick path, when PE is already set (the usual state of a program doing arithmetic):
        // integer checks on the operand and result bits instead of fclass and two fflags
        // accesses (helper calls under an emulator). Anything it cannot prove exact-but-
        // inexact falls to the checked path below, which recomputes from the same operands.
        self.mxcsr_not_default_pe(t);
        self.denormal_bit(d64, ta, u);
        self.a.r(Op::Or, t, t, u);
        self.denormal_bit(d64, tb, u);
        self.a.r(Op::Or, t, t, u);
        self.a.b(Op::Bne, t, Reg::ZERO, checked);
        self.fmv_to_f(d64, FT0, ta);
        self.fmv_to_f(d64, FT1, tb);
        self.fp_word(enc_fp(op as u32 | u32::from(d64), 1, 0, RNE, 0));
        self.fmv_to_x(d64, u, FT0);
        self.plain_bit(d64, op, u, Some((ta, tb)), t, v);
        self.a.b(Op::Beq, t, Reg::ZERO, checked);
        self.store_low(d, u, d64);
        self.a.j(done);
        self.a.bind(checked);
        self.branch_unless_default_mxcsr(t, slow);
        self.fmv_to_f(d64, FT0, ta);
        self.fmv_to_f(d64, FT1, tb);
        self.branch_if_special(d64, FT0, t, slow);
        self.branch_if_special(d64, FT1, t, slow);
        self.clear_fflags();
        self.fp_word(enc_fp(op as u32 | u32::from(d64), 1, 0, RNE, 0));
        self.read_fflags(t);
        self.a.i(Op::Andi, u, t, 0x10);
        self.a.b(Op::Bne, u, Reg::ZERO, slow);
        self.fmv_to_x(d64, u, FT0);
        self.store_low(d, u, d64);
        self.merge_fflags(t, u, ta);
        self.a.j(done);
        self.a.bind(slow);
        let src = if let X::Xmm(x) = s { Some(x) } else { None };
        self.slow_call(i.code(), d, src, tb);
        self.a.bind(done);
        Ok(())
    }

    /// Write a scalar result `v` into the low lane of XMM `d`: 64 bits when `wide`, else 32,
    /// leaving the rest of the register as it is.
    fn store_low(&mut self, d: u32, v: Reg, wide: bool) {
        if wide {
            self.a.sd(v, CTX, xoff(d, 0));
        } else {
            self.a.s(Op::Sw, v, CTX, xoff(d, 0));
        }
    }

    /// `fld fd, off(base)` / `fsd fs, off(base)`.
    fn fld(&mut self, fd: FReg, base: Reg, off: i32) {
        self.fp_word(((off as u32) & 0xfff) << 20 | u32::from(base.0) << 15 | 3 << 12 | u32::from(fd.0) << 7 | 0x07);
    }

    fn fsd(&mut self, fs: FReg, base: Reg, off: i32) {
        let o = off as u32;
        self.fp_word((o >> 5 & 0x7f) << 25 | u32::from(fs.0) << 20 | u32::from(base.0) << 15 | 3 << 12 | (o & 31) << 7 | 0x27);
    }

    /// ADDPD/SUBPD/MULPD/DIVPD (added by the perf helper): both lanes on the host FPU under the
    /// same conditions as [`Lower::fast_scalar_arith`], and a 16-byte aligned memory source (an
    /// unaligned one takes the helper, which has the #GP rule). Both results are written only
    /// after both operations passed the invalid check.
    pub(super) fn fast_packed_arith(&mut self, i: &Instruction) -> LResult {
        let op = match i.mnemonic() {
            M::Addpd => FArith::Add,
            M::Subpd => FArith::Sub,
            M::Mulpd => FArith::Mul,
            M::Divpd => FArith::Div,
            _ => return Err(Unsupp),
        };
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let (checked, slow, done) = (self.a.label(), self.a.label(), self.a.label());
        let (t, u, v) = (self.tmp(), self.tmp(), self.tmp());
        let (ft2, ft3) = (FReg(2), FReg(3));
        let (sb, so) = match s {
            X::Xmm(x) => (CTX, xoff(x, 0)),
            X::Mem(at) => {
                self.a.addi(t, at.base, at.off);
                self.a.i(Op::Andi, t, t, 15);
                self.a.b(Op::Bne, t, Reg::ZERO, slow);
                (at.base, at.off)
            }
        };
        // Quick path with PE already set, as in [`Lower::fast_scalar_arith`].
        self.mxcsr_not_default_pe(t);
        for (base, off) in [(CTX, xoff(d, 0)), (CTX, xoff(d, 1)), (sb, so), (sb, so + 8)] {
            self.a.ld(u, base, off);
            self.denormal_bit(true, u, v);
            self.a.r(Op::Or, t, t, v);
        }
        self.a.b(Op::Bne, t, Reg::ZERO, checked);
        self.fld(FT0, CTX, xoff(d, 0));
        self.fld(ft2, CTX, xoff(d, 1));
        self.fld(FT1, sb, so);
        self.fld(ft3, sb, so + 8);
        self.fp_word(enc_fp(op as u32 | 1, 1, 0, RNE, 0));
        self.fp_word(enc_fp(op as u32 | 1, 3, 2, RNE, 2));
        self.fmv_to_x(true, u, FT0);
        self.plain_bit(true, op, u, None, t, v);
        self.fmv_to_x(true, u, ft2);
        let w = self.tmp();
        self.plain_bit(true, op, u, None, w, v);
        self.a.r(Op::And, t, t, w);
        self.a.b(Op::Beq, t, Reg::ZERO, checked);
        self.fsd(FT0, CTX, xoff(d, 0));
        self.fsd(ft2, CTX, xoff(d, 1));
        self.a.j(done);
        self.a.bind(checked);
        self.branch_unless_default_mxcsr(t, slow);
        self.fld(FT0, CTX, xoff(d, 0));
        self.fld(ft2, CTX, xoff(d, 1));
        self.fld(FT1, sb, so);
        self.fld(ft3, sb, so + 8);
        for f in [FT0, FT1, ft2, ft3] {
            self.branch_if_special(true, f, t, slow);
        }
        self.clear_fflags();
        self.fp_word(enc_fp(op as u32 | 1, 1, 0, RNE, 0));
        self.fp_word(enc_fp(op as u32 | 1, 3, 2, RNE, 2));
        self.read_fflags(t);
        self.a.i(Op::Andi, u, t, 0x10);
        self.a.b(Op::Bne, u, Reg::ZERO, slow);
        self.fsd(FT0, CTX, xoff(d, 0));
        self.fsd(ft2, CTX, xoff(d, 1));
        self.merge_fflags(t, u, v);
        self.a.j(done);
        self.a.bind(slow);
        // The helper path recomputes its operands from scratch.
        self.free_temps();
        self.sse_helper(i)?;
        self.a.bind(done);
        Ok(())
    }

    fn load_scalar(&mut self, rd: Reg, x: X, bits: u32) {
        match x {
            X::Xmm(s) => {
                let op = if bits == 64 { Op::Ld } else { Op::Lwu };
                self.a.i(op, rd, CTX, xoff(s, 0));
            }
            X::Mem(at) => self.load(rd, at, bits),
        }
    }

    /// COMISD/UCOMISD: exact flags in `ctx.cpu.rflags` for ordered, normal operands.
    pub(super) fn fast_comisd(&mut self, i: &Instruction) -> LResult {
        let d64 = matches!(i.mnemonic(), M::Comisd | M::Ucomisd);
        let bits = if d64 { 64 } else { 32 };
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let (slow, done) = (self.a.label(), self.a.label());
        let (ta, tb, t, u) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.load_scalar(ta, X::Xmm(d), bits);
        self.load_scalar(tb, s, bits);
        // Denormals go to the helper too: DAZ may be set, and DE must be reported.
        let inf = self.tmp();
        self.inf_bits(d64, inf);
        self.a.li(t, 0);
        self.or_special_bit(d64, ta, t, u, inf);
        self.or_special_bit(d64, tb, t, u, inf);
        self.a.b(Op::Bne, t, Reg::ZERO, slow);
        self.fmv_to_f(d64, FT0, ta);
        self.fmv_to_f(d64, FT1, tb);
        let f7 = if d64 { 0x51 } else { 0x50 };
        // flt (CF) and feq (ZF) raise nothing on ordered operands.
        self.fp_word(enc_fp(f7, 1, 0, 1, u32::from(t.0)));
        self.fp_word(enc_fp(f7, 1, 0, 2, u32::from(u.0)));
        self.a.slli(u, u, 6);
        self.a.r(Op::Or, t, t, u);
        self.a.ld(u, CTX, OFF_RFLAGS as i32);
        self.a.li(ta, !fl::STATUS);
        self.a.r(Op::And, u, u, ta);
        self.a.r(Op::Or, u, u, t);
        self.a.sd(u, CTX, OFF_RFLAGS as i32);
        self.a.j(done);
        self.a.bind(slow);
        let src = if let X::Xmm(x) = s { Some(x) } else { None };
        self.slow_call(i.code(), d, src, tb);
        self.a.bind(done);
        self.a.sd(Reg::ZERO, CTX, flags::OFF_KIND);
        self.fs = FState::Exact;
        Ok(())
    }

    /// CVTSI2SD/CVTSI2SS from a 32- or 64-bit integer.
    pub(super) fn fast_cvtsi2f(&mut self, i: &Instruction) -> LResult {
        let d64 = i.mnemonic() == M::Cvtsi2sd;
        let ibits = op_bits(i, 1);
        let d = self.xreg(i, 0)?;
        let loc = self.loc(i, 1)?;
        let v = self.read_sext(loc, ibits);
        let (slow, done) = (self.a.label(), self.a.label());
        let (t, u, w) = (self.tmp(), self.tmp(), self.tmp());
        let exact = d64 && ibits == 32;
        if !exact {
            self.branch_unless_default_mxcsr(t, slow);
            self.clear_fflags();
        }
        // fcvt.{d,s}.{w,l}: funct7 0x69 / 0x68, rs2 0 (w) or 2 (l).
        let rs2 = if ibits == 64 { 2 } else { 0 };
        self.fp_word(enc_fp(if d64 { 0x69 } else { 0x68 }, rs2, u32::from(v.0), RNE, 0));
        self.fmv_to_x(d64, u, FT0);
        self.store_low(d, u, d64);
        if !exact {
            self.read_fflags(t);
            self.merge_fflags(t, u, w);
        }
        self.a.j(done);
        self.a.bind(slow);
        if !exact {
            self.a.sd(v, CTX, stage_off(STAGE));
            self.a.sd(Reg::ZERO, CTX, stage_off(STAGE + 1));
            self.sse_call(sse_ops::desc(i.code(), d, SRC_STAGED, 0));
        }
        self.a.bind(done);
        Ok(())
    }

    /// CVTTSD2SI/CVTTSS2SI (truncating): in-range, normal operands on the host FPU.
    pub(super) fn fast_cvtt(&mut self, i: &Instruction) -> LResult {
        let d64 = matches!(i.mnemonic(), M::Cvttsd2si | M::Cvtsd2si);
        let truncate = matches!(i.mnemonic(), M::Cvttsd2si | M::Cvttss2si);
        let obits = op_bits(i, 0);
        let dst = self.loc(i, 0)?;
        let s = self.xop(i, 1)?;
        let (slow, done) = (self.a.label(), self.a.label());
        let (tb, t, u, w) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.load_scalar(tb, s, if d64 { 64 } else { 32 });
        if !truncate {
            // CVTSD2SI rounds per MXCSR: only the default (nearest) is expanded.
            self.branch_unless_default_mxcsr(t, slow);
        }
        self.fmv_to_f(d64, FT1, tb);
        self.branch_if_special(d64, FT1, t, slow);
        self.clear_fflags();
        // fcvt.{w,l}.{d,s}: funct7 0x61 / 0x60, rs2 0 (w) or 2 (l); NV means out of range.
        let rs2 = if obits == 64 { 2 } else { 0 };
        let rm = if truncate { RTZ } else { RNE };
        self.fp_word(enc_fp(if d64 { 0x61 } else { 0x60 }, rs2, 1, rm, u32::from(w.0)));
        self.read_fflags(t);
        self.a.i(Op::Andi, u, t, 0x10);
        self.a.b(Op::Bne, u, Reg::ZERO, slow);
        self.merge_fflags(t, u, tb);
        self.write(dst, obits, w)?;
        self.a.j(done);
        self.a.bind(slow);
        let src = if let X::Xmm(x) = s { Some(x) } else { None };
        self.slow_call(i.code(), 0, src, tb);
        let r = self.tmp();
        self.a.ld(r, CTX, stage_off(sse_ops::OUT));
        self.write(dst, obits, r)?;
        self.a.bind(done);
        Ok(())
    }

    /// SQRTSD/SQRTSS, CVTSS2SD and CVTSD2SS: one source lane into the destination's low lane.
    pub(super) fn fast_scalar_unary(&mut self, i: &Instruction) -> LResult {
        // (source is double, result is double, funct7, rs2, needs the default MXCSR)
        let (sd, rd, f7, rs2, rounds) = match i.mnemonic() {
            M::Sqrtsd => (true, true, 0x2d, 0, true),
            M::Sqrtss => (false, false, 0x2c, 0, true),
            M::Cvtss2sd => (false, true, 0x21, 0, false),
            _ => (true, false, 0x20, 1, true),
        };
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let (checked, slow, done) = (self.a.label(), self.a.label(), self.a.label());
        let (tb, t, u, w) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.load_scalar(tb, s, if sd { 64 } else { 32 });
        if matches!(i.mnemonic(), M::Sqrtsd | M::Sqrtss) {
            // Quick path with PE already set: the square root of a positive normal is a normal
            // and can only be inexact. The sign and exponent above the fraction must be 1..max-1
            // (a set sign, or a single's sign-extended upper bits, make them larger).
            self.mxcsr_not_default_pe(t);
            let (frac, span) = if sd { (52, 2046) } else { (23, 254) };
            self.a.srli(u, tb, frac);
            self.a.addi(u, u, -1);
            self.a.i(Op::Sltiu, u, u, span);
            self.a.i(Op::Xori, u, u, 1);
            self.a.r(Op::Or, t, t, u);
            self.a.b(Op::Bne, t, Reg::ZERO, checked);
            self.fmv_to_f(sd, FT1, tb);
            self.fp_word(enc_fp(f7, rs2, 1, RNE, 0));
            self.fmv_to_x(rd, u, FT0);
            self.store_low(d, u, rd);
            self.a.j(done);
        }
        self.a.bind(checked);
        if rounds {
            self.branch_unless_default_mxcsr(t, slow);
        }
        self.fmv_to_f(sd, FT1, tb);
        self.branch_if_special(sd, FT1, t, slow);
        self.clear_fflags();
        self.fp_word(enc_fp(f7, rs2, 1, RNE, 0));
        self.read_fflags(t);
        // NV: the square root of a negative number.
        self.a.i(Op::Andi, u, t, 0x10);
        self.a.b(Op::Bne, u, Reg::ZERO, slow);
        self.fmv_to_x(rd, u, FT0);
        self.store_low(d, u, rd);
        self.merge_fflags(t, u, w);
        self.a.j(done);
        self.a.bind(slow);
        let src = if let X::Xmm(x) = s { Some(x) } else { None };
        self.slow_call(i.code(), d, src, tb);
        self.a.bind(done);
        Ok(())
    }

    /// MINSD/MAXSD/MINSS/MAXSS on ordered, normal operands: the first operand if strictly
    /// less (greater), else the second — x86's rule, which also settles ±0.
    pub(super) fn fast_minmax(&mut self, i: &Instruction) -> LResult {
        let d64 = matches!(i.mnemonic(), M::Minsd | M::Maxsd);
        let max = matches!(i.mnemonic(), M::Maxsd | M::Maxss);
        let bits = if d64 { 64 } else { 32 };
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let (slow, done, keep_b) = (self.a.label(), self.a.label(), self.a.label());
        let (ta, tb, t, u) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.load_scalar(ta, X::Xmm(d), bits);
        self.load_scalar(tb, s, bits);
        let inf = self.tmp();
        self.inf_bits(d64, inf);
        self.a.li(t, 0);
        self.or_special_bit(d64, ta, t, u, inf);
        self.or_special_bit(d64, tb, t, u, inf);
        self.a.b(Op::Bne, t, Reg::ZERO, slow);
        self.fmv_to_f(d64, FT0, ta);
        self.fmv_to_f(d64, FT1, tb);
        let (x, y) = if max { (1, 0) } else { (0, 1) };
        // flt.{d,s} t, x, y
        self.fp_word(enc_fp(if d64 { 0x51 } else { 0x50 }, y, x, 1, u32::from(t.0)));
        self.a.b(Op::Beq, t, Reg::ZERO, keep_b);
        self.a.mv(tb, ta);
        self.a.bind(keep_b);
        self.store_low(d, tb, d64);
        self.a.j(done);
        self.a.bind(slow);
        let src = if let X::Xmm(x) = s { Some(x) } else { None };
        self.slow_call(i.code(), d, src, tb);
        self.a.bind(done);
        Ok(())
    }

    // ---- integer lanes ----

    /// PADD/PSUB on 8-, 16- or 32-bit lanes: add the low bits of each lane, then fix the top
    /// bit, so no carry crosses a lane.
    pub(super) fn swar_addsub(&mut self, i: &Instruction, bits: u32, sub: bool) -> LResult {
        let d = self.xreg(i, 0)?;
        let s = self.xsrc(i, 1)?;
        let (a, b, h, t) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        let hi: u64 = match bits {
            8 => 0x8080_8080_8080_8080,
            16 => 0x8000_8000_8000_8000,
            _ => 0x8000_0000_8000_0000,
        };
        self.a.li(h, hi);
        for half in 0..2 {
            self.a.ld(a, CTX, xoff(d, half));
            self.load_half(b, s, half);
            if sub {
                // ((a | H) - (b & ~H)) ^ ((a ^ ~b) & H)
                self.a.r(Op::Xor, t, a, b);
                self.a.i(Op::Xori, t, t, -1);
                self.a.r(Op::And, t, t, h);
                self.a.r(Op::Or, a, a, h);
                self.a.r(Op::Or, b, b, h);
                self.a.r(Op::Xor, b, b, h);
                self.a.r(Op::Sub, a, a, b);
            } else {
                // ((a & ~H) + (b & ~H)) ^ ((a ^ b) & H)
                self.a.r(Op::Xor, t, a, b);
                self.a.r(Op::And, t, t, h);
                self.a.r(Op::Or, a, a, h);
                self.a.r(Op::Xor, a, a, h);
                self.a.r(Op::Or, b, b, h);
                self.a.r(Op::Xor, b, b, h);
                self.a.r(Op::Add, a, a, b);
            }
            self.a.r(Op::Xor, a, a, t);
            self.a.sd(a, CTX, xoff(d, half));
        }
        Ok(())
    }

    /// PMINUB/PMAXUB: a per-byte unsigned less-than mask, then a select.
    pub(super) fn swar_minmaxub(&mut self, i: &Instruction, max: bool) -> LResult {
        let d = self.xreg(i, 0)?;
        let s = self.xsrc(i, 1)?;
        let (a, b, h, t, u) = (self.tmp(), self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.a.li(h, 0x8080_8080_8080_8080);
        for half in 0..2 {
            self.a.ld(a, CTX, xoff(d, half));
            self.load_half(b, s, half);
            // x = (a | H) - (b & ~H): top bit of each byte = (a & 0x7f) >= (b & 0x7f).
            self.a.r(Op::Or, t, b, h);
            self.a.r(Op::Xor, t, t, h);
            self.a.r(Op::Or, u, a, h);
            self.a.r(Op::Sub, t, u, t);
            // lt = ((~a & b) | (~(a ^ b) & ~x)) & H
            self.a.r(Op::Xor, u, a, b);
            self.a.r(Op::Or, t, t, u);
            self.a.i(Op::Xori, t, t, -1);
            self.a.i(Op::Xori, u, a, -1);
            self.a.r(Op::And, u, u, b);
            self.a.r(Op::Or, t, t, u);
            self.a.r(Op::And, t, t, h);
            // Byte mask 0xff where a < b.
            self.a.srli(u, t, 7);
            self.a.r(Op::Sub, u, t, u);
            self.a.r(Op::Or, t, t, u);
            // min: a where a < b, else b; max: the other way round.
            self.a.r(Op::Xor, u, a, b);
            self.a.r(Op::And, u, u, t);
            let keep = if max { a } else { b };
            self.a.r(Op::Xor, a, keep, u);
            self.a.sd(a, CTX, xoff(d, half));
        }
        Ok(())
    }

    /// PSHUFD: each destination dword picked from the source's four.
    pub(super) fn inline_pshufd(&mut self, i: &Instruction) -> LResult {
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let imm = u32::from(i.immediate8());
        let (s0, s1, r0, r1, t) = (self.tmp(), self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.load_half(s0, s, 0);
        self.load_half(s1, s, 1);
        for (k, r) in [(0u32, r0), (1, r1)] {
            let lo = (imm >> (4 * k)) & 3;
            let hi = (imm >> (4 * k + 2)) & 3;
            let src = |j: u32| if j < 2 { s0 } else { s1 };
            // Low dword, zero-extended.
            if lo & 1 == 0 {
                self.a.slli(r, src(lo), 32);
                self.a.srli(r, r, 32);
            } else {
                self.a.srli(r, src(lo), 32);
            }
            // High dword.
            if hi & 1 == 0 {
                self.a.slli(t, src(hi), 32);
            } else {
                self.a.srli(t, src(hi), 32);
                self.a.slli(t, t, 32);
            }
            self.a.r(Op::Or, r, r, t);
        }
        self.a.sd(r0, CTX, xoff(d, 0));
        self.a.sd(r1, CTX, xoff(d, 1));
        Ok(())
    }

    /// Spread the 32 bits of `x` (low half of the register) to 64 with `lanes`-bit gaps.
    fn spread(&mut self, x: Reg, bits: u32, t: Reg, m16: Reg, m8: Reg) {
        // x = (x | x << 16) & 0x0000ffff0000ffff
        self.a.slli(t, x, 16);
        self.a.r(Op::Or, x, x, t);
        self.a.r(Op::And, x, x, m16);
        if bits == 8 {
            // x = (x | x << 8) & 0x00ff00ff00ff00ff
            self.a.slli(t, x, 8);
            self.a.r(Op::Or, x, x, t);
            self.a.r(Op::And, x, x, m8);
        }
    }

    /// PUNPCKLBW/PUNPCKLWD/PUNPCKLDQ: interleave the low halves. The high result half is built
    /// first, so both halves read the operands' untouched low quadwords.
    pub(super) fn inline_unpckl(&mut self, i: &Instruction, bits: u32) -> LResult {
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let (x, y) = (self.tmp(), self.tmp());
        if bits == 32 {
            for half in [1, 0] {
                self.a.ld(x, CTX, xoff(d, 0));
                self.load_half(y, s, 0);
                if half == 0 {
                    self.a.slli(x, x, 32);
                    self.a.srli(x, x, 32);
                    self.a.slli(y, y, 32);
                } else {
                    self.a.srli(x, x, 32);
                    self.a.srli(y, y, 32);
                    self.a.slli(y, y, 32);
                }
                self.a.r(Op::Or, x, x, y);
                self.a.sd(x, CTX, xoff(d, half));
            }
            return Ok(());
        }
        let m16 = self.tmp();
        self.a.li(m16, 0x0000_ffff_0000_ffff);
        let m8 = if bits == 8 {
            let m = self.tmp();
            self.a.li(m, 0x00ff_00ff_00ff_00ff);
            m
        } else {
            m16
        };
        for half in [1, 0] {
            self.a.ld(x, CTX, xoff(d, 0));
            self.load_half(y, s, 0);
            for r in [x, y] {
                if half == 0 {
                    self.a.slli(r, r, 32);
                    self.a.srli(r, r, 32);
                } else {
                    self.a.srli(r, r, 32);
                }
                self.spread_with(r, bits, m16, m8);
            }
            self.a.slli(y, y, bits);
            self.a.r(Op::Or, x, x, y);
            self.a.sd(x, CTX, xoff(d, half));
        }
        Ok(())
    }

    /// As [`Lower::spread`] using `t0` as the shift scratch (free inside an instruction body).
    fn spread_with(&mut self, x: Reg, bits: u32, m16: Reg, m8: Reg) {
        self.spread(x, bits, super::super::regs::T0, m16, m8);
    }

    /// PALIGNR with a shift below 16 bytes: the byte-aligned window of `dst:src`.
    pub(super) fn inline_palignr(&mut self, i: &Instruction) -> LResult {
        let n = u32::from(i.immediate8());
        if n >= 16 {
            return Err(Unsupp);
        }
        let d = self.xreg(i, 0)?;
        let s = self.xop(i, 1)?;
        let (w0, w1, w2, t, u) = (self.tmp(), self.tmp(), self.tmp(), self.tmp(), self.tmp());
        // Words of the 256-bit `dst:src`, low first: src.lo, src.hi, dst.lo, dst.hi.
        let (first, sh) = (n / 8, 8 * (n % 8));
        // The three words the result spans.
        let words = [first, first + 1, first + 2];
        for (k, r) in [w0, w1, w2].into_iter().enumerate() {
            match words[k] {
                0 => self.load_half(r, s, 0),
                1 => self.load_half(r, s, 1),
                2 => self.a.ld(r, CTX, xoff(d, 0)),
                _ => self.a.ld(r, CTX, xoff(d, 1)),
            }
            if sh == 0 && k == 1 {
                break;
            }
        }
        if sh == 0 {
            self.a.sd(w0, CTX, xoff(d, 0));
            self.a.sd(w1, CTX, xoff(d, 1));
            return Ok(());
        }
        for (k, (lo, hi)) in [(w0, w1), (w1, w2)].into_iter().enumerate() {
            self.a.srli(t, lo, sh);
            self.a.slli(u, hi, 64 - sh);
            self.a.r(Op::Or, t, t, u);
            if k == 0 {
                // w0 is dead once the low result word is built.
                self.a.mv(w0, t);
            } else {
                self.a.sd(w0, CTX, xoff(d, 0));
                self.a.sd(t, CTX, xoff(d, 1));
            }
        }
        Ok(())
    }
}

/// Whether `code` has an inline expansion here (the dispatcher in `sse.rs` routes it).
pub fn fast_code(code: Code) -> bool {
    use Code as C;
    matches!(
        code,
        C::Addsd_xmm_xmmm64
            | C::Subsd_xmm_xmmm64
            | C::Mulsd_xmm_xmmm64
            | C::Divsd_xmm_xmmm64
            | C::Addss_xmm_xmmm32
            | C::Subss_xmm_xmmm32
            | C::Mulss_xmm_xmmm32
            | C::Divss_xmm_xmmm32
            | C::Comisd_xmm_xmmm64
            | C::Ucomisd_xmm_xmmm64
            | C::Comiss_xmm_xmmm32
            | C::Ucomiss_xmm_xmmm32
            | C::Cvtsi2sd_xmm_rm32
            | C::Cvtsi2sd_xmm_rm64
            | C::Cvtsi2ss_xmm_rm32
            | C::Cvtsi2ss_xmm_rm64
            | C::Cvttsd2si_r32_xmmm64
            | C::Cvttsd2si_r64_xmmm64
            | C::Cvttss2si_r32_xmmm32
            | C::Cvttss2si_r64_xmmm32
            | C::Cvtsd2si_r32_xmmm64
            | C::Cvtsd2si_r64_xmmm64
            | C::Cvtss2si_r32_xmmm32
            | C::Cvtss2si_r64_xmmm32
            | C::Sqrtsd_xmm_xmmm64
            | C::Sqrtss_xmm_xmmm32
            | C::Cvtss2sd_xmm_xmmm32
            | C::Cvtsd2ss_xmm_xmmm64
            | C::Minsd_xmm_xmmm64
            | C::Maxsd_xmm_xmmm64
            | C::Minss_xmm_xmmm32
            | C::Maxss_xmm_xmmm32
            | C::Addpd_xmm_xmmm128
            | C::Subpd_xmm_xmmm128
            | C::Mulpd_xmm_xmmm128
            | C::Divpd_xmm_xmmm128
            | C::Paddb_xmm_xmmm128
            | C::Paddw_xmm_xmmm128
            | C::Paddd_xmm_xmmm128
            | C::Psubb_xmm_xmmm128
            | C::Psubw_xmm_xmmm128
            | C::Psubd_xmm_xmmm128
            | C::Pminub_xmm_xmmm128
            | C::Pmaxub_xmm_xmmm128
            | C::Pshufd_xmm_xmmm128_imm8
            | C::Punpcklbw_xmm_xmmm128
            | C::Punpcklwd_xmm_xmmm128
            | C::Punpckldq_xmm_xmmm128
            | C::Palignr_xmm_xmmm128_imm8
    )
}

impl Lower<'_> {
    /// Lower a [`fast_code`] instruction.
    pub(super) fn lower_fast(&mut self, i: &Instruction) -> LResult {
        use Code as C;
        match i.code() {
            C::Addsd_xmm_xmmm64
            | C::Subsd_xmm_xmmm64
            | C::Mulsd_xmm_xmmm64
            | C::Divsd_xmm_xmmm64
            | C::Addss_xmm_xmmm32
            | C::Subss_xmm_xmmm32
            | C::Mulss_xmm_xmmm32
            | C::Divss_xmm_xmmm32 => self.fast_scalar_arith(i),
            C::Comisd_xmm_xmmm64 | C::Ucomisd_xmm_xmmm64 | C::Comiss_xmm_xmmm32 | C::Ucomiss_xmm_xmmm32 => {
                self.fast_comisd(i)
            }
            C::Cvtsi2sd_xmm_rm32 | C::Cvtsi2sd_xmm_rm64 | C::Cvtsi2ss_xmm_rm32 | C::Cvtsi2ss_xmm_rm64 => {
                self.fast_cvtsi2f(i)
            }
            C::Cvttsd2si_r32_xmmm64
            | C::Cvttsd2si_r64_xmmm64
            | C::Cvttss2si_r32_xmmm32
            | C::Cvttss2si_r64_xmmm32
            | C::Cvtsd2si_r32_xmmm64
            | C::Cvtsd2si_r64_xmmm64
            | C::Cvtss2si_r32_xmmm32
            | C::Cvtss2si_r64_xmmm32 => self.fast_cvtt(i),
            C::Sqrtsd_xmm_xmmm64 | C::Sqrtss_xmm_xmmm32 | C::Cvtss2sd_xmm_xmmm32 | C::Cvtsd2ss_xmm_xmmm64 => {
                self.fast_scalar_unary(i)
            }
            C::Minsd_xmm_xmmm64 | C::Maxsd_xmm_xmmm64 | C::Minss_xmm_xmmm32 | C::Maxss_xmm_xmmm32 => self.fast_minmax(i),
            C::Addpd_xmm_xmmm128 | C::Subpd_xmm_xmmm128 | C::Mulpd_xmm_xmmm128 | C::Divpd_xmm_xmmm128 => {
                self.fast_packed_arith(i)
            }
            C::Paddb_xmm_xmmm128 => self.swar_addsub(i, 8, false),
            C::Paddw_xmm_xmmm128 => self.swar_addsub(i, 16, false),
            C::Paddd_xmm_xmmm128 => self.swar_addsub(i, 32, false),
            C::Psubb_xmm_xmmm128 => self.swar_addsub(i, 8, true),
            C::Psubw_xmm_xmmm128 => self.swar_addsub(i, 16, true),
            C::Psubd_xmm_xmmm128 => self.swar_addsub(i, 32, true),
            C::Pminub_xmm_xmmm128 => self.swar_minmaxub(i, false),
            C::Pmaxub_xmm_xmmm128 => self.swar_minmaxub(i, true),
            C::Pshufd_xmm_xmmm128_imm8 => self.inline_pshufd(i),
            C::Punpcklbw_xmm_xmmm128 => self.inline_unpckl(i, 8),
            C::Punpcklwd_xmm_xmmm128 => self.inline_unpckl(i, 16),
            C::Punpckldq_xmm_xmmm128 => self.inline_unpckl(i, 32),
            C::Palignr_xmm_xmmm128_imm8 => match self.inline_palignr(i) {
                Ok(()) => Ok(()),
                Err(_) => self.sse_helper(i),
            },
            _ => Err(Unsupp),
        }
    }
}
