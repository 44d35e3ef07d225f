//! SSE/SSE2 lowering for the riscv64 backend — owned by the SSE helper (another session); rv:
//! please don't implement SSE elsewhere.
//!
//! Covers SSE, SSE2, SSE3, SSSE3, SSE4.1 and SSE4.2 (legacy encodings; VEX/EVEX forms and MMX
//! registers are refused, so the block is cut before them). The XMM registers stay in
//! `ctx.cpu.xmm` (two 64-bit halves each, addressed from the context register), and MXCSR in
//! `ctx.cpu.mxcsr`; every instruction loads what it reads and stores what it writes, so the state
//! is always exact in memory and exits need no extra work.
//!
//! Three tiers:
//! - here, inline: moves of every width and their zeroing/merging rules, bitwise logic,
//!   quadword add/subtract, the `pcmpeqb`/`pmovmskb` pair string functions live on, MXCSR access;
//! - `sse_fast.rs`, inline: SWAR forms of the hot narrow-lane integer operations and shuffles, and
//!   host-FPU fast paths for scalar float arithmetic, compares and conversions that fall back to
//!   the helper whenever x86 and RISC-V could differ (NaN or denormal operands, invalid
//!   operations, a non-default MXCSR);
//! - `sse_ops.rs`, a helper call: everything else, with the SDM's semantics written in Rust.
//!   Generated code stages a memory or general-register source in `ctx.scratch`, passes a
//!   descriptor, and picks up a general-register result or exact flags afterwards.

use iced_x86::{Code, EncodingKind, Instruction, Mnemonic as M, OpKind, Register};

use super::encode::{fits_i12, Op, Reg};
use super::flags;
use super::lower::{op_bits, Addr, FState, LResult, Loc, Lower, Unsupp};
use super::regs::{self, CTX};
use self::sse_ops::{OUT, SRC_STAGED, STAGE};
use crate::cpu::{OFF_GPR, OFF_MXCSR, OFF_XMM};
use crate::ctx::OFF_SCRATCH;

#[path = "sse_ops.rs"]
pub mod sse_ops;

#[path = "sse_fast.rs"]
mod sse_fast;

#[cfg(test)]
#[path = "sse_tests.rs"]
mod sse_tests;

/// Whether `i` belongs to this module: a legacy-encoded instruction with an XMM operand, or one
/// of the few SSE instructions without one.
pub fn is_sse(i: &Instruction) -> bool {
    if i.encoding() != EncodingKind::Legacy {
        return false;
    }
    // The forms without an XMM register: MXCSR access, non-temporal GPR stores, and
    // float-to-integer conversions from memory.
    if matches!(
        i.mnemonic(),
        M::Ldmxcsr | M::Stmxcsr | M::Movnti | M::Cvttss2si | M::Cvtss2si | M::Cvttsd2si | M::Cvtsd2si | M::Crc32
    ) {
        return true;
    }
    (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Register && i.op_register(n).is_xmm())
}

/// Context offset of half `h` (0 low, 1 high) of XMM register `x`.
pub fn xoff(x: u32, h: u32) -> i32 {
    (OFF_XMM + 16 * x as usize + 8 * h as usize) as i32
}

fn stage_off(w: usize) -> i32 {
    (OFF_SCRATCH + 8 * w) as i32
}

/// An XMM-or-memory operand.
#[derive(Clone, Copy, Debug)]
enum X {
    Xmm(u32),
    Mem(Addr),
}

fn xmm_num(r: Register) -> Option<u32> {
    if r.is_xmm() {
        Some(r.number() as u32)
    } else {
        None
    }
}

impl Lower<'_> {
    /// Lower one instruction for which [`is_sse`] holds.
    pub fn lower_sse(&mut self, i: &Instruction) -> LResult {
        use Code as C;
        match i.code() {
            C::Movaps_xmm_xmmm128
            | C::Movaps_xmmm128_xmm
            | C::Movups_xmm_xmmm128
            | C::Movups_xmmm128_xmm
            | C::Movapd_xmm_xmmm128
            | C::Movapd_xmmm128_xmm
            | C::Movupd_xmm_xmmm128
            | C::Movupd_xmmm128_xmm
            | C::Movdqa_xmm_xmmm128
            | C::Movdqa_xmmm128_xmm
            | C::Movdqu_xmm_xmmm128
            | C::Movdqu_xmmm128_xmm
            | C::Lddqu_xmm_m128
            | C::Movntdq_m128_xmm
            | C::Movntps_m128_xmm
            | C::Movntpd_m128_xmm
            | C::Movntdqa_xmm_m128 => self.sse_mov128(i),
            C::Movd_xmm_rm32 | C::Movq_xmm_rm64 => {
                let bits = op_bits(i, 1);
                let d = self.xreg(i, 0)?;
                let src = self.loc(i, 1)?;
                let v = self.read_zext(src, bits);
                self.a.sd(v, CTX, xoff(d, 0));
                self.a.sd(Reg::ZERO, CTX, xoff(d, 1));
                Ok(())
            }
            C::Movd_rm32_xmm | C::Movq_rm64_xmm => {
                let bits = op_bits(i, 0);
                let s = self.xreg(i, 1)?;
                let dst = self.loc(i, 0)?;
                let t = self.tmp();
                self.a.ld(t, CTX, xoff(s, 0));
                self.write(dst, bits, t)
            }
            C::Movq_xmm_xmmm64 | C::Movq_xmmm64_xmm => {
                // Register destinations take the low quadword and clear the high one.
                match (self.xop(i, 0)?, self.xop(i, 1)?) {
                    (X::Mem(at), X::Xmm(s)) => {
                        let t = self.tmp();
                        self.a.ld(t, CTX, xoff(s, 0));
                        self.a.sd(t, at.base, at.off);
                    }
                    (X::Xmm(d), s) => {
                        let t = self.tmp();
                        self.load_half(t, s, 0);
                        self.a.sd(t, CTX, xoff(d, 0));
                        self.a.sd(Reg::ZERO, CTX, xoff(d, 1));
                    }
                    _ => return Err(Unsupp),
                }
                Ok(())
            }
            C::Movss_xmm_xmmm32 | C::Movss_xmmm32_xmm | C::Movsd_xmm_xmmm64 | C::Movsd_xmmm64_xmm => {
                let bits = if matches!(i.mnemonic(), M::Movss) { 32 } else { 64 };
                match (self.xop(i, 0)?, self.xop(i, 1)?) {
                    (X::Xmm(d), X::Xmm(s)) => {
                        let t = self.tmp();
                        if bits == 64 {
                            self.a.ld(t, CTX, xoff(s, 0));
                            self.a.sd(t, CTX, xoff(d, 0));
                        } else {
                            self.a.i(Op::Lw, t, CTX, xoff(s, 0));
                            self.a.s(Op::Sw, t, CTX, xoff(d, 0));
                        }
                    }
                    (X::Xmm(d), X::Mem(at)) => {
                        let t = self.tmp();
                        self.load(t, at, bits);
                        self.a.sd(t, CTX, xoff(d, 0));
                        self.a.sd(Reg::ZERO, CTX, xoff(d, 1));
                    }
                    (X::Mem(at), X::Xmm(s)) => {
                        let t = self.tmp();
                        self.a.ld(t, CTX, xoff(s, 0));
                        self.store(t, at, bits);
                    }
                    _ => return Err(Unsupp),
                }
                Ok(())
            }
            C::Movhps_xmm_m64 | C::Movhpd_xmm_m64 | C::Movlps_xmm_m64 | C::Movlpd_xmm_m64 => {
                let h = u32::from(matches!(i.mnemonic(), M::Movhps | M::Movhpd));
                let d = self.xreg(i, 0)?;
                let Loc::Mem(at) = self.loc(i, 1)? else { return Err(Unsupp) };
                let t = self.tmp();
                self.a.ld(t, at.base, at.off);
                self.a.sd(t, CTX, xoff(d, h));
                Ok(())
            }
            C::Movhps_m64_xmm | C::Movhpd_m64_xmm | C::Movlps_m64_xmm | C::Movlpd_m64_xmm => {
                let h = u32::from(matches!(i.mnemonic(), M::Movhps | M::Movhpd));
                let s = self.xreg(i, 1)?;
                let Loc::Mem(at) = self.loc(i, 0)? else { return Err(Unsupp) };
                let t = self.tmp();
                self.a.ld(t, CTX, xoff(s, h));
                self.a.sd(t, at.base, at.off);
                Ok(())
            }
            C::Movhlps_xmm_xmm | C::Movlhps_xmm_xmm => {
                let (from, to) = if i.mnemonic() == M::Movhlps { (1, 0) } else { (0, 1) };
                let d = self.xreg(i, 0)?;
                let s = self.xreg(i, 1)?;
                let t = self.tmp();
                self.a.ld(t, CTX, xoff(s, from));
                self.a.sd(t, CTX, xoff(d, to));
                Ok(())
            }
            C::Unpcklpd_xmm_xmmm128 | C::Punpcklqdq_xmm_xmmm128 => {
                let d = self.xreg(i, 0)?;
                let s = self.xop(i, 1)?;
                let t = self.tmp();
                self.load_half(t, s, 0);
                self.a.sd(t, CTX, xoff(d, 1));
                Ok(())
            }
            C::Unpckhpd_xmm_xmmm128 | C::Punpckhqdq_xmm_xmmm128 => {
                let d = self.xreg(i, 0)?;
                let s = self.xop(i, 1)?;
                let (t, u) = (self.tmp(), self.tmp());
                self.load_half(u, s, 1);
                self.a.ld(t, CTX, xoff(d, 1));
                self.a.sd(t, CTX, xoff(d, 0));
                self.a.sd(u, CTX, xoff(d, 1));
                Ok(())
            }
            C::Pxor_xmm_xmmm128 | C::Xorps_xmm_xmmm128 | C::Xorpd_xmm_xmmm128 => self.sse_logic(i, Op::Xor),
            C::Por_xmm_xmmm128 | C::Orps_xmm_xmmm128 | C::Orpd_xmm_xmmm128 => self.sse_logic(i, Op::Or),
            C::Pand_xmm_xmmm128 | C::Andps_xmm_xmmm128 | C::Andpd_xmm_xmmm128 => self.sse_logic(i, Op::And),
            C::Pandn_xmm_xmmm128 | C::Andnps_xmm_xmmm128 | C::Andnpd_xmm_xmmm128 => self.sse_logic(i, Op::Andn),
            C::Paddq_xmm_xmmm128 => self.sse_logic(i, Op::Add),
            C::Psubq_xmm_xmmm128 => self.sse_logic(i, Op::Sub),
            C::Pcmpeqb_xmm_xmmm128 => self.sse_pcmpeqb(i),
            C::Pmovmskb_r32_xmm | C::Pmovmskb_r64_xmm => self.sse_pmovmskb(i),
            C::Ldmxcsr_m32 => {
                let Loc::Mem(at) = self.loc(i, 0)? else { return Err(Unsupp) };
                let t = self.tmp();
                self.load(t, at, 32);
                self.a.s(Op::Sw, t, CTX, OFF_MXCSR as i32);
                Ok(())
            }
            C::Stmxcsr_m32 => {
                let Loc::Mem(at) = self.loc(i, 0)? else { return Err(Unsupp) };
                let t = self.tmp();
                self.a.i(Op::Lw, t, CTX, OFF_MXCSR as i32);
                self.store(t, at, 32);
                Ok(())
            }
            C::Movnti_m32_r32 | C::Movnti_m64_r64 => {
                let bits = op_bits(i, 1);
                let src = self.loc(i, 1)?;
                let v = self.read(src, bits);
                let dst = self.loc(i, 0)?;
                self.write(dst, bits, v)
            }
            C::Maskmovdqu_rDI_xmm_xmm if i.op_kind(0) == OpKind::MemorySegRDI => {
                if !matches!(i.memory_segment(), Register::DS | Register::None) {
                    return Err(Unsupp);
                }
                // Byte by byte in generated code, so a fault maps to this guest instruction like
                // any other access: store byte k of the data where mask byte k has its top bit.
                let (d, s) = (self.xreg(i, 1)?, self.xreg(i, 2)?);
                let rdi = regs::guest(crate::cpu::Gpr::Rdi);
                let t = self.tmp();
                for k in 0..16 {
                    let skip = self.a.label();
                    self.a.i(Op::Lb, t, CTX, xoff(s, 0) + k);
                    self.a.b(Op::Bge, t, Reg::ZERO, skip);
                    self.a.i(Op::Lbu, t, CTX, xoff(d, 0) + k);
                    self.a.s(Op::Sb, t, rdi, k);
                    self.a.bind(skip);
                }
                Ok(())
            }
            C::Crc32_r32_rm8 | C::Crc32_r32_rm16 | C::Crc32_r32_rm32 | C::Crc32_r64_rm8 | C::Crc32_r64_rm64 => {
                // Stage the data and the running CRC; the result comes back zero-extended.
                let (dbits, sbits) = (op_bits(i, 0), op_bits(i, 1));
                let src = self.loc(i, 1)?;
                let v = self.read_zext(src, sbits);
                self.a.sd(v, CTX, stage_off(STAGE));
                let dst = self.loc(i, 0)?;
                let c = self.read(dst, 32);
                self.a.sd(c, CTX, stage_off(STAGE + 1));
                self.sse_call(sse_ops::desc(i.code(), 0, SRC_STAGED, 0));
                let t = self.tmp();
                self.a.i(Op::Lwu, t, CTX, stage_off(OUT));
                self.write(dst, dbits, t)
            }
            code if sse_fast::fast_code(code) => self.lower_fast(i),
            code if sse_ops::supports(code) => self.sse_helper(i),
            _ => Err(Unsupp),
        }
    }

    /// The XMM register number of operand `n`.
    fn xreg(&self, i: &Instruction, n: u32) -> Result<u32, Unsupp> {
        if i.op_kind(n) != OpKind::Register {
            return Err(Unsupp);
        }
        xmm_num(i.op_register(n)).ok_or(Unsupp)
    }

    /// Operand `n` as an XMM register or a memory address whose both halves are addressable.
    fn xop(&mut self, i: &Instruction, n: u32) -> Result<X, Unsupp> {
        match i.op_kind(n) {
            OpKind::Register => Ok(X::Xmm(self.xreg(i, n)?)),
            OpKind::Memory => {
                let at = self.addr(i)?;
                if fits_i12(i64::from(at.off) + 8) {
                    Ok(X::Mem(at))
                } else {
                    let p = self.addr_reg(at);
                    Ok(X::Mem(Addr { base: p, off: 0 }))
                }
            }
            _ => Err(Unsupp),
        }
    }

    /// As [`Lower::xop`] for a 16-byte source that is read half by half while the destination is
    /// written: a memory source's high half is touched first, so a fault there (the operand
    /// straddles into an unmapped page) leaves the destination unchanged, as on x86.
    fn xsrc(&mut self, i: &Instruction, n: u32) -> Result<X, Unsupp> {
        let x = self.xop(i, n)?;
        if let X::Mem(at) = x {
            self.a.ld(regs::T0, at.base, at.off + 8);
        }
        Ok(x)
    }

    /// Load half `h` of an XMM-or-memory operand into `rd`.
    fn load_half(&mut self, rd: Reg, x: X, h: u32) {
        match x {
            X::Xmm(s) => self.a.ld(rd, CTX, xoff(s, h)),
            X::Mem(at) => self.a.ld(rd, at.base, at.off + 8 * h as i32),
        }
    }

    /// Store `rs` to half `h` of an XMM-or-memory operand.
    fn store_half(&mut self, rs: Reg, x: X, h: u32) {
        match x {
            X::Xmm(d) => self.a.sd(rs, CTX, xoff(d, h)),
            X::Mem(at) => self.a.sd(rs, at.base, at.off + 8 * h as i32),
        }
    }

    fn sse_mov128(&mut self, i: &Instruction) -> LResult {
        let d = self.xop(i, 0)?;
        let s = self.xop(i, 1)?;
        let (t, u) = (self.tmp(), self.tmp());
        self.load_half(t, s, 0);
        self.load_half(u, s, 1);
        self.store_half(t, d, 0);
        self.store_half(u, d, 1);
        Ok(())
    }

    /// A bitwise or quadword operation applied to both halves (`Andn` computes `!dst & src`).
    fn sse_logic(&mut self, i: &Instruction, op: Op) -> LResult {
        let d = self.xreg(i, 0)?;
        let s = self.xsrc(i, 1)?;
        if let X::Xmm(s) = s {
            if s == d && matches!(op, Op::Xor | Op::Sub | Op::Andn) {
                self.a.sd(Reg::ZERO, CTX, xoff(d, 0));
                self.a.sd(Reg::ZERO, CTX, xoff(d, 1));
                return Ok(());
            }
            if s == d && matches!(op, Op::Or | Op::And) {
                return Ok(());
            }
        }
        let (a, b) = (self.tmp(), self.tmp());
        for h in 0..2 {
            self.a.ld(a, CTX, xoff(d, h));
            self.load_half(b, s, h);
            if op == Op::Andn {
                self.a.i(Op::Xori, a, a, -1);
                self.a.r(Op::And, a, a, b);
            } else {
                self.a.r(op, a, a, b);
            }
            self.a.sd(a, CTX, xoff(d, h));
        }
        Ok(())
    }

    /// PCMPEQB with the zero-byte test on the XOR of the halves.
    fn sse_pcmpeqb(&mut self, i: &Instruction) -> LResult {
        let d = self.xreg(i, 0)?;
        let s = self.xsrc(i, 1)?;
        let (a, b, c, t) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.a.li(c, 0x7f7f_7f7f_7f7f_7f7f);
        for h in 0..2 {
            self.a.ld(a, CTX, xoff(d, h));
            self.load_half(b, s, h);
            self.a.r(Op::Xor, a, a, b);
            // High bit of each byte of t: that byte of a is non-zero.
            self.a.r(Op::And, t, a, c);
            self.a.r(Op::Add, t, t, c);
            self.a.r(Op::Or, t, t, a);
            self.a.r(Op::Or, t, t, c);
            self.a.i(Op::Xori, t, t, -1);
            // 0x80 in equal bytes -> 0xff.
            self.a.srli(b, t, 7);
            self.a.r(Op::Sub, a, t, b);
            self.a.r(Op::Or, a, a, t);
            self.a.sd(a, CTX, xoff(d, h));
        }
        Ok(())
    }

    /// PMOVMSKB: gather the byte sign bits of each half with one multiplication.
    fn sse_pmovmskb(&mut self, i: &Instruction) -> LResult {
        let s = self.xreg(i, 1)?;
        let dst = self.loc(i, 0)?;
        let (x, m, k, r) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.a.li(m, 0x8080_8080_8080_8080);
        self.a.li(k, 0x0102_0408_1020_4080);
        for h in (0..2).rev() {
            self.a.ld(x, CTX, xoff(s, h));
            self.a.r(Op::And, x, x, m);
            self.a.srli(x, x, 7);
            self.a.r(Op::Mul, x, x, k);
            self.a.srli(x, x, 56);
            if h == 1 {
                self.a.slli(r, x, 8);
            } else {
                self.a.r(Op::Or, r, r, x);
            }
        }
        let bits = op_bits(i, 0);
        self.write(dst, bits, r)
    }

    /// Everything [`sse_ops::apply`] implements: stage the source, call, collect the result.
    fn sse_helper(&mut self, i: &Instruction) -> LResult {
        let code = i.code();
        let n = i.op_count();
        let has_imm = n >= 2 && i.op_kind(n - 1) == OpKind::Immediate8;
        let imm = if has_imm { i.immediate8() } else { 0 };
        let mut srcs = if has_imm { n - 1 } else { n };
        // BLENDV's implicit XMM0 operand: the helper reads it from the context.
        if matches!(i.mnemonic(), M::Pblendvb | M::Blendvps | M::Blendvpd) && srcs == 3 {
            srcs = 2;
        }
        // Destination: an XMM register, a general register receiving `OUT`, or memory receiving
        // it (PEXTR*/EXTRACTPS; the address is computed after the call, from the reloaded
        // guest registers, since scratch registers do not survive it).
        let mut dst_mem = None;
        let (dst_x, dst_g) = match i.op_kind(0) {
            OpKind::Register if i.op_register(0).is_xmm() => (xmm_num(i.op_register(0)).ok_or(Unsupp)?, None),
            OpKind::Register => {
                let loc = self.loc(i, 0)?;
                (0, Some((loc, op_bits(i, 0))))
            }
            OpKind::Memory if matches!(i.mnemonic(), M::Pextrb | M::Pextrw | M::Pextrd | M::Pextrq | M::Extractps) => {
                dst_mem = Some(i.memory_size().size() as u32 * 8);
                (0, None)
            }
            _ => return Err(Unsupp),
        };
        let comi = matches!(
            i.mnemonic(),
            M::Comiss
                | M::Comisd
                | M::Ucomiss
                | M::Ucomisd
                | M::Ptest
                | M::Pcmpestri
                | M::Pcmpestri64
                | M::Pcmpestrm
                | M::Pcmpestrm64
                | M::Pcmpistri
                | M::Pcmpistrm
        );
        // Source: the last non-immediate operand (the destination itself for `op xmm, imm8`).
        let src = if srcs < 2 {
            u64::from(dst_x)
        } else {
            match i.op_kind(srcs - 1) {
                OpKind::Register if i.op_register(srcs - 1).is_xmm() => u64::from(xmm_num(i.op_register(srcs - 1)).ok_or(Unsupp)?),
                OpKind::Register => {
                    let bits = op_bits(i, srcs - 1);
                    let loc = self.loc(i, srcs - 1)?;
                    let v = self.read_zext(loc, bits);
                    self.a.sd(v, CTX, stage_off(STAGE));
                    SRC_STAGED
                }
                OpKind::Memory => {
                    let size = i.memory_size().size();
                    let x = self.xop(i, srcs - 1)?;
                    let X::Mem(at) = x else { return Err(Unsupp) };
                    let t = self.tmp();
                    match size {
                        16 => {
                            self.a.ld(t, at.base, at.off);
                            self.a.sd(t, CTX, stage_off(STAGE));
                            self.a.ld(t, at.base, at.off + 8);
                            self.a.sd(t, CTX, stage_off(STAGE + 1));
                        }
                        1 | 2 | 4 | 8 => {
                            self.load(t, at, size as u32 * 8);
                            self.a.sd(t, CTX, stage_off(STAGE));
                            self.a.sd(Reg::ZERO, CTX, stage_off(STAGE + 1));
                        }
                        _ => return Err(Unsupp),
                    }
                    SRC_STAGED
                }
                _ => return Err(Unsupp),
            }
        };
        self.sse_call(sse_ops::desc(code, dst_x, src, imm));
        if let Some((loc, bits)) = dst_g {
            let t = self.tmp();
            self.a.ld(t, CTX, stage_off(OUT));
            self.write(loc, bits, t)?;
        }
        if let Some(bits) = dst_mem {
            let at = self.addr(i)?;
            let t = self.tmp();
            self.a.ld(t, CTX, stage_off(OUT));
            self.store(t, at, bits);
        }
        if comi {
            // The helper wrote all six status flags into ctx.cpu.rflags.
            self.a.sd(Reg::ZERO, CTX, flags::OFF_KIND);
            self.fs = FState::Exact;
        }
        Ok(())
    }

    /// Call [`sse_ops::rv_sse_op`] with descriptor `d`, preserving the guest registers the host
    /// ABI does not. Scratch registers do not survive. The helper works on the context only
    /// (memory operands are staged there by generated code, whose accesses carry the TSO
    /// fences), so no fence is needed around it.
    fn sse_call(&mut self, d: u64) {
        for g in regs::CALLER_SAVED_GUESTS {
            self.a.sd(regs::guest(g), CTX, (OFF_GPR + 8 * g as usize) as i32);
        }
        self.a.li(Reg::A1, d);
        self.a.mv(Reg::A0, CTX);
        self.a.li(Reg::RA, sse_ops::rv_sse_op as *const () as u64);
        self.a.i(Op::Jalr, Reg::RA, Reg::RA, 0);
        for g in regs::CALLER_SAVED_GUESTS {
            self.a.ld(regs::guest(g), CTX, (OFF_GPR + 8 * g as usize) as i32);
        }
        self.free_temps();
    }
}
