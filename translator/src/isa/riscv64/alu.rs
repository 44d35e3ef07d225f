//! Integer arithmetic: add/sub/logic/adc/sbb/cmp/test/neg/not/inc/dec (with their lock forms),
//! shifts and rotates, multiplication and division, and the bit instructions (bt*, bsf/bsr,
//! tzcnt/lzcnt, popcnt).

use iced_x86::{Instruction, Mnemonic as M};

use super::atomic::Rmw;
use super::cond::Flag;
use super::encode::{fits_i12, Op, Reg};
use super::flags::{self, Kind};
use super::lower::{op_bits, LResult, Loc, Lower, Unsupp, OFF_DIV_FN, OFF_STATUS};
use super::regs::{self, CTX};
use crate::cpu::{flags as fl, Gpr};
use crate::ctx::exit;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bin {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Adc,
    Sbb,
}

impl Lower<'_> {
    /// Everything that is not a move: dispatch by mnemonic.
    pub fn lower_other(&mut self, i: &Instruction) -> LResult {
        match i.mnemonic() {
            M::Add => self.binop(i, Bin::Add, true),
            M::Sub => self.binop(i, Bin::Sub, true),
            M::And => self.binop(i, Bin::And, true),
            M::Or => self.binop(i, Bin::Or, true),
            M::Xor => self.binop(i, Bin::Xor, true),
            M::Adc => self.binop(i, Bin::Adc, true),
            M::Sbb => self.binop(i, Bin::Sbb, true),
            M::Cmp => self.binop(i, Bin::Sub, false),
            M::Test => self.binop(i, Bin::And, false),
            M::Neg | M::Not | M::Inc | M::Dec => self.unop(i),
            M::Shl | M::Sal | M::Shr | M::Sar => self.shift(i),
            M::Rol | M::Ror => self.rotate(i),
            M::Rcl | M::Rcr => self.rotate_carry(i),
            M::Shld | M::Shrd => self.shift_double(i),
            M::Imul | M::Mul => self.mul(i),
            M::Div | M::Idiv => self.div(i),
            M::Bt | M::Bts | M::Btr | M::Btc => self.bt(i),
            M::Bsf | M::Bsr | M::Tzcnt | M::Lzcnt | M::Popcnt => self.bitscan(i),
            _ => self.lower_ctl(i),
        }
    }

    fn binop(&mut self, i: &Instruction, op: Bin, writes: bool) -> LResult {
        let bits = op_bits(i, 0);
        let live = self.flags_live(i);
        if i.has_lock_prefix() && writes {
            return self.locked_binop(i, op, bits, live);
        }
        let cin = self.carry_in(op);
        let dst = self.loc(i, 0)?;
        let src = self.loc(i, 1)?;
        // `xor r, r` / `sub r, r`: a zero idiom, independent of the old value.
        if matches!(op, Bin::Xor | Bin::Sub) && writes && src == dst && matches!(dst, Loc::Reg(_, _)) {
            if live {
                let kind = if op == Bin::Xor { Kind::Logic } else { Kind::Sub };
                self.set_flags(kind, bits, Reg::ZERO, Reg::ZERO, Reg::ZERO);
            }
            return self.write(dst, bits, Reg::ZERO);
        }
        let a = self.read(dst, bits);
        // Immediate forms when the flags do not need the second operand in a register.
        if let (Loc::Imm(v), false, None) = (src, live, cin) {
            let v = v as i64;
            let imm = if op == Bin::Sub { v.wrapping_neg() } else { v };
            if fits_i12(imm) && writes {
                let r = self.dest_reg(dst, bits);
                let iop = match op {
                    Bin::Add | Bin::Sub => Op::Addi,
                    Bin::And => Op::Andi,
                    Bin::Or => Op::Ori,
                    _ => Op::Xori,
                };
                self.a.i(iop, r, a, imm as i32);
                return self.write(dst, bits, r);
            }
        }
        if !writes && !live {
            return Ok(());
        }
        let b = self.read(src, bits);
        let r = if live { regs::F_RES } else { self.dest_reg(dst, bits) };
        let rop = match op {
            Bin::Add | Bin::Adc => Op::Add,
            Bin::Sub | Bin::Sbb => Op::Sub,
            Bin::And => Op::And,
            Bin::Or => Op::Or,
            Bin::Xor => Op::Xor,
        };
        self.a.r(rop, r, a, b);
        if let Some(c) = cin {
            self.a.r(rop, r, r, c);
        }
        if live {
            let kind = match op {
                Bin::Add => Kind::Add,
                Bin::Sub => Kind::Sub,
                Bin::Adc => Kind::Adc,
                Bin::Sbb => Kind::Sbb,
                _ => Kind::Logic,
            };
            if let Some(c) = cin {
                self.a.sd(c, CTX, flags::OFF_AUX);
            }
            // `r` is F_RES already; record the operands (logic flags depend on the result only).
            if kind != Kind::Logic {
                self.a.mv(regs::F_SRC1, a);
                self.a.mv(regs::F_SRC2, b);
            }
            self.fs = super::lower::FState::Lazy { kind, bits, synced: false };
        }
        if writes {
            self.write(dst, bits, r)?;
        }
        Ok(())
    }

    /// `lock add/sub/and/or/xor/adc/sbb [m], r/imm`, every width: one atomic read-modify-write
    /// ADC/SBB's carry-in, materialized first (that may call a helper, which clobbers scratch
    /// registers) into `s9`, with the scratch pool freed; `None` for the other operations.
    fn carry_in(&mut self, op: Bin) -> Option<Reg> {
        if !matches!(op, Bin::Adc | Bin::Sbb) {
            return None;
        }
        let c = self.flag(Flag::C);
        let s = regs::S9;
        self.a.mv(s, c);
        self.free_temps();
        Some(s)
    }

    /// (`atomic.rs`), the flags from the value it replaced.
    fn locked_binop(&mut self, i: &Instruction, op: Bin, bits: u32, live: bool) -> LResult {
        let cin = self.carry_in(op);
        let Loc::Mem(at) = self.loc(i, 0)? else { return Err(Unsupp) };
        let p = self.addr_reg(at);
        let src = self.loc(i, 1)?;
        let b = self.read(src, bits);
        let c = cin.unwrap_or(Reg::ZERO);
        let rmw = match op {
            Bin::Add => Rmw::Add(b),
            Bin::Sub => Rmw::Sub(b),
            Bin::And => Rmw::And(b),
            Bin::Or => Rmw::Or(b),
            Bin::Xor => Rmw::Xor(b),
            Bin::Adc => Rmw::Adc(b, c),
            Bin::Sbb => Rmw::Sbb(b, c),
        };
        let old = self.atomic_rmw(p, bits, rmw);
        if live {
            let r = regs::F_RES;
            let rop = match op {
                Bin::Add | Bin::Adc => Op::Add,
                Bin::Sub | Bin::Sbb => Op::Sub,
                Bin::And => Op::And,
                Bin::Or => Op::Or,
                Bin::Xor => Op::Xor,
            };
            self.a.r(rop, r, old, b);
            if cin.is_some() {
                self.a.r(rop, r, r, c);
                self.a.sd(c, CTX, flags::OFF_AUX);
            }
            let kind = match op {
                Bin::Add => Kind::Add,
                Bin::Sub => Kind::Sub,
                Bin::Adc => Kind::Adc,
                Bin::Sbb => Kind::Sbb,
                _ => Kind::Logic,
            };
            if kind != Kind::Logic {
                self.a.mv(regs::F_SRC1, old);
                self.a.mv(regs::F_SRC2, b);
            }
            self.fs = super::lower::FState::Lazy { kind, bits, synced: false };
        }
        Ok(())
    }

    /// `lock neg/not/inc/dec [m]`, every width: one atomic read-modify-write, the flags (INC and
    /// DEC keep CF) from the value it replaced.
    fn locked_unop(&mut self, i: &Instruction, bits: u32, live: bool) -> LResult {
        let m = i.mnemonic();
        let keep_cf = matches!(m, M::Inc | M::Dec) && live && self.live() & iced_x86::RflagsBits::CF != 0;
        if keep_cf {
            let c = self.flag(Flag::C);
            self.a.sd(c, CTX, flags::OFF_AUX);
            self.free_temps();
        }
        let Loc::Mem(at) = self.loc(i, 0)? else { return Err(Unsupp) };
        let p = self.addr_reg(at);
        let rmw = match m {
            M::Neg => Rmw::Neg,
            M::Not => Rmw::Not,
            M::Inc => Rmw::AddImm(1),
            _ => Rmw::AddImm(-1),
        };
        let old = self.atomic_rmw(p, bits, rmw);
        if !live || m == M::Not {
            return Ok(());
        }
        let r = regs::F_RES;
        let kind = match m {
            M::Neg => {
                self.a.r(Op::Sub, r, Reg::ZERO, old);
                self.a.mv(regs::F_SRC1, Reg::ZERO);
                self.a.mv(regs::F_SRC2, old);
                Kind::Sub
            }
            M::Inc => {
                self.a.addi(r, old, 1);
                self.a.mv(regs::F_SRC1, old);
                self.a.li(regs::F_SRC2, 1);
                Kind::Inc
            }
            _ => {
                self.a.addi(r, old, -1);
                self.a.mv(regs::F_SRC1, old);
                self.a.li(regs::F_SRC2, 1);
                Kind::Dec
            }
        };
        self.fs = super::lower::FState::Lazy { kind, bits, synced: false };
        Ok(())
    }

    fn unop(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let live = self.flags_live(i);
        let m = i.mnemonic();
        if i.has_lock_prefix() {
            return self.locked_unop(i, bits, live);
        }
        // inc/dec keep CF: take the old one before anything clobbers scratch registers.
        let keep_cf = matches!(m, M::Inc | M::Dec) && live && self.live() & iced_x86::RflagsBits::CF != 0;
        if keep_cf {
            let c = self.flag(Flag::C);
            self.a.sd(c, CTX, flags::OFF_AUX);
        }
        let dst = self.loc(i, 0)?;
        let a = self.read(dst, bits);
        let r = if live { regs::F_RES } else { self.dest_reg(dst, bits) };
        match m {
            M::Not => {
                self.a.i(Op::Xori, r, a, -1);
                return self.write(dst, bits, r);
            }
            M::Neg => self.a.r(Op::Sub, r, Reg::ZERO, a),
            M::Inc => self.a.addi(r, a, 1),
            _ => self.a.addi(r, a, -1),
        }
        if live {
            let (kind, s1, s2) = match m {
                M::Neg => (Kind::Sub, Reg::ZERO, a),
                M::Inc => (Kind::Inc, a, Reg::ZERO),
                _ => (Kind::Dec, a, Reg::ZERO),
            };
            self.a.mv(regs::F_SRC1, s1);
            if m == M::Neg {
                self.a.mv(regs::F_SRC2, s2);
            } else {
                self.a.li(regs::F_SRC2, 1);
            }
            self.fs = super::lower::FState::Lazy { kind, bits, synced: false };
        }
        self.write(dst, bits, r)
    }

    /// Count operand of a shift: `Ok(Some(n))` for an immediate (already masked), `Ok(None)` for CL.
    fn shift_count(i: &Instruction, bits: u32) -> Result<Option<u32>, Unsupp> {
        let mask = if bits == 64 { 63 } else { 31 };
        let n = i.op_count() - 1;
        match i.op_kind(n) {
            iced_x86::OpKind::Immediate8 => Ok(Some(u32::from(i.immediate8()) & mask)),
            iced_x86::OpKind::Register if i.op_register(n) == iced_x86::Register::CL => Ok(None),
            _ => Err(Unsupp),
        }
    }

    fn shift(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let live = self.flags_live(i);
        let count = Self::shift_count(i, bits)?;
        let kind = match i.mnemonic() {
            M::Shl | M::Sal => Kind::Shl,
            M::Shr => Kind::Shr,
            _ => Kind::Sar,
        };
        if count.is_none() && live {
            // A zero count leaves the flags alone, so the kind word must be right before the test.
            self.sync_kind();
        }
        let dst = self.loc(i, 0)?;
        let a = match kind {
            Kind::Shr => self.read_zext(dst, bits),
            Kind::Sar => self.read_sext(dst, bits),
            _ => self.read(dst, bits),
        };
        let c = match count {
            Some(n) => {
                if n == 0 {
                    // No flags change; a 32-bit register destination is still zero-extended.
                    if bits == 32 {
                        if let Loc::Reg(..) = dst {
                            return self.write(dst, bits, a);
                        }
                    }
                    return Ok(());
                }
                None
            }
            None => {
                let c = self.tmp();
                self.a.i(Op::Andi, c, regs::guest(Gpr::Rcx), if bits == 64 { 63 } else { 31 });
                Some(c)
            }
        };
        let r = self.tmp();
        match (c, kind) {
            (Some(c), Kind::Shl) => self.a.r(Op::Sll, r, a, c),
            (Some(c), Kind::Shr) => self.a.r(Op::Srl, r, a, c),
            (Some(c), _) => self.a.r(Op::Sra, r, a, c),
            (None, k) => {
                let n = count.unwrap_or(0);
                let op = match k {
                    Kind::Shl => Op::Slli,
                    Kind::Shr => Op::Srli,
                    _ => Op::Srai,
                };
                if n >= 64 {
                    return Err(Unsupp);
                }
                self.a.i(op, r, a, n as i32);
            }
        }
        if live {
            let skip = self.a.label();
            if let Some(c) = c {
                self.a.b(Op::Beq, c, Reg::ZERO, skip);
            }
            self.a.mv(regs::F_SRC1, a);
            match c {
                Some(c) => self.a.mv(regs::F_SRC2, c),
                None => self.a.li(regs::F_SRC2, u64::from(count.unwrap_or(0))),
            }
            self.a.mv(regs::F_RES, r);
            if c.is_some() {
                self.a.li(regs::T0, kind.word(bits));
                self.a.sd(regs::T0, CTX, flags::OFF_KIND);
                self.a.bind(skip);
                self.fs = super::lower::FState::Unknown;
            } else {
                self.fs = super::lower::FState::Lazy { kind, bits, synced: false };
            }
        }
        self.write(dst, bits, r)
    }

    fn rotate(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let count = Self::shift_count(i, bits)?;
        if count == Some(0) {
            let dst = self.loc(i, 0)?;
            if bits == 32 {
                if let Loc::Reg(..) = dst {
                    let a = self.read(dst, bits);
                    return self.write(dst, bits, a);
                }
            }
            return Ok(());
        }
        let live = self.live() & (iced_x86::RflagsBits::CF | iced_x86::RflagsBits::OF) != 0;
        let keep = fl::STATUS & !(fl::CF | fl::OF);
        // With a CL count that may be zero, CF/OF may stay as they are: materialize them too.
        let need_old = match (live, count) {
            (false, _) => false,
            (true, Some(_)) => self.begin_exact(keep),
            (true, None) => self.begin_exact(fl::STATUS),
        };
        let dst = self.loc(i, 0)?;
        let v = self.read_zext(dst, bits);
        // `c`: the masked count (the flags test it); `m`: the rotation, modulo the width.
        let c = self.tmp();
        match count {
            Some(n) => self.a.li(c, u64::from(n)),
            None => {
                self.a.i(Op::Andi, c, regs::guest(Gpr::Rcx), if bits == 64 { 63 } else { 31 });
            }
        }
        let m = if bits < 32 {
            let m = self.tmp();
            self.a.i(Op::Andi, m, c, bits as i32 - 1);
            m
        } else {
            c
        };
        let left = i.mnemonic() == M::Rol;
        let (x, y, r) = (self.tmp(), self.tmp(), self.tmp());
        self.a.li(y, u64::from(bits));
        self.a.r(Op::Sub, y, y, m);
        if left {
            self.a.r(Op::Sll, x, v, m);
            self.a.r(Op::Srl, y, v, y);
        } else {
            self.a.r(Op::Srl, x, v, m);
            self.a.r(Op::Sll, y, v, y);
        }
        // A shift by `bits` (m = 0) must contribute nothing: srl/sll use the low 6 bits only.
        if bits == 64 {
            let z = self.a.label();
            self.a.b(Op::Bne, m, Reg::ZERO, z);
            self.a.mv(y, Reg::ZERO);
            self.a.bind(z);
        }
        self.a.r(Op::Or, r, x, y);
        if bits < 64 {
            self.a.zext(r, r, bits);
        }
        if live {
            // CF/OF only when the masked count is non-zero.
            let skip = self.a.label();
            if count.is_none() {
                self.a.b(Op::Beq, c, Reg::ZERO, skip);
            }
            let (cf, of) = (x, y);
            if left {
                self.a.i(Op::Andi, cf, r, 1);
                self.a.srli(of, r, bits - 1);
                self.a.r(Op::Xor, of, of, cf);
            } else {
                self.a.srli(cf, r, bits - 1);
                self.a.srli(of, r, bits - 2);
                self.a.r(Op::Xor, of, of, cf);
                self.a.i(Op::Andi, of, of, 1);
            }
            self.a.slli(of, of, 11);
            self.a.r(Op::Or, cf, cf, of);
            self.end_exact(need_old, keep, cf);
            self.a.bind(skip);
        }
        self.write(dst, bits, r)
    }

    /// rcl/rcr: an (n+1)-bit rotation through CF. Rare, so the flags are made exact first.
    fn rotate_carry(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let count = Self::shift_count(i, bits)?;
        let live = self.live() & (iced_x86::RflagsBits::CF | iced_x86::RflagsBits::OF) != 0;
        self.materialize();
        let dst = self.loc(i, 0)?;
        let v = self.read_zext(dst, bits);
        let v = if self.is_temp(v) { v } else {
            let t = self.tmp();
            self.a.mv(t, v);
            t
        };
        let cf = self.tmp();
        self.a.ld(cf, CTX, crate::cpu::OFF_RFLAGS as i32);
        self.a.i(Op::Andi, cf, cf, 1);
        // c: the count, masked and reduced modulo n + 1 for 8/16 bits.
        let c = self.tmp();
        match count {
            Some(n) => {
                let n = if bits < 32 { n % (bits + 1) } else { n };
                self.a.li(c, u64::from(n));
            }
            None => {
                self.a.i(Op::Andi, c, regs::guest(Gpr::Rcx), if bits == 64 { 63 } else { 31 });
                if bits < 32 {
                    self.a.li(regs::T0, u64::from(bits + 1));
                    self.a.r(Op::Remu, c, c, regs::T0);
                }
            }
        }
        let done = self.a.label();
        let zero = self.a.label();
        if count.is_none_or(|n| (if bits < 32 { n % (bits + 1) } else { n }) == 0) {
            self.a.b(Op::Beq, c, Reg::ZERO, zero);
        }
        let (r, x, k) = (self.tmp(), self.tmp(), self.tmp());
        let left = i.mnemonic() == M::Rcl;
        // k = n - c (0..n-1), so that no shift amount reaches 64.
        self.a.li(k, u64::from(bits));
        self.a.r(Op::Sub, k, k, c);
        if left {
            // r = v << c | cf << (c-1) | (v >> (n-c)) >> 1; new CF = (v >> (n-c)) & 1
            self.a.r(Op::Sll, r, v, c);
            self.a.addi(x, c, -1);
            self.a.r(Op::Sll, x, cf, x);
            self.a.r(Op::Or, r, r, x);
            self.a.r(Op::Srl, x, v, k);
            self.a.i(Op::Andi, cf, x, 1);
            self.a.srli(x, x, 1);
            self.a.r(Op::Or, r, r, x);
        } else {
            // r = v >> c | cf << (n-c) | (v << (n-c)) << 1; new CF = (v >> (c-1)) & 1
            self.a.r(Op::Srl, r, v, c);
            self.a.r(Op::Sll, x, cf, k);
            self.a.r(Op::Or, r, r, x);
            self.a.r(Op::Sll, x, v, k);
            self.a.slli(x, x, 1);
            self.a.r(Op::Or, r, r, x);
            self.a.addi(x, c, -1);
            self.a.r(Op::Srl, cf, v, x);
            self.a.i(Op::Andi, cf, cf, 1);
        }
        if bits < 64 {
            self.a.zext(r, r, bits);
        }
        if live {
            // OF = MSB(r) ^ CF for rcl, the two top bits of r for rcr.
            if left {
                self.a.srli(x, r, bits - 1);
                self.a.r(Op::Xor, x, x, cf);
            } else {
                self.a.srli(x, r, bits - 1);
                self.a.srli(k, r, bits - 2);
                self.a.r(Op::Xor, x, x, k);
                self.a.i(Op::Andi, x, x, 1);
            }
            self.a.slli(x, x, 11);
            self.a.r(Op::Or, x, x, cf);
            self.end_exact(true, fl::STATUS & !(fl::CF | fl::OF), x);
        }
        self.write(dst, bits, r)?;
        self.a.j(done);
        self.a.bind(zero);
        // A zero count changes nothing, but a 32-bit register is still written.
        if bits == 32 {
            if let Loc::Reg(..) = dst {
                self.write(dst, bits, v)?;
            }
        }
        self.a.bind(done);
        Ok(())
    }

    fn shift_double(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        if bits == 16 {
            return self.shift_double16(i);
        }
        let count = match i.op_kind(2) {
            iced_x86::OpKind::Immediate8 => Some(u32::from(i.immediate8()) & (bits - 1)),
            iced_x86::OpKind::Register => None,
            _ => return Err(Unsupp),
        };
        let left = i.mnemonic() == M::Shld;
        let live = self.live() != 0 && (count.is_none() || self.flags_live(i));
        if count.is_none() && live {
            self.sync_kind();
        }
        let dst = self.loc(i, 0)?;
        if count == Some(0) {
            if bits == 32 {
                if let Loc::Reg(..) = dst {
                    let a = self.read(dst, bits);
                    return self.write(dst, bits, a);
                }
            }
            return Ok(());
        }
        let a = self.read_zext(dst, bits);
        let src = self.loc(i, 1)?;
        let b = self.read_zext(src, bits);
        let c = self.tmp();
        match count {
            Some(n) => self.a.li(c, u64::from(n)),
            None => self.a.i(Op::Andi, c, regs::guest(Gpr::Rcx), bits as i32 - 1),
        }
        let (x, y, nb, r) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        self.a.li(nb, u64::from(bits));
        self.a.r(Op::Sub, nb, nb, c);
        if left {
            self.a.r(Op::Sll, x, a, c);
            self.a.r(Op::Srl, y, b, nb);
        } else {
            self.a.r(Op::Srl, x, a, c);
            self.a.r(Op::Sll, y, b, nb);
        }
        let z = self.a.label();
        self.a.b(Op::Bne, c, Reg::ZERO, z);
        self.a.mv(y, Reg::ZERO);
        self.a.bind(z);
        self.a.r(Op::Or, r, x, y);
        if live {
            let kind = if left { Kind::Shl } else { Kind::Shrd };
            let skip = self.a.label();
            if count.is_none() {
                self.a.b(Op::Beq, c, Reg::ZERO, skip);
            }
            self.a.mv(regs::F_SRC1, a);
            self.a.mv(regs::F_SRC2, c);
            self.a.mv(regs::F_RES, r);
            if count.is_none() {
                self.a.li(regs::T0, kind.word(bits));
                self.a.sd(regs::T0, CTX, flags::OFF_KIND);
                self.a.bind(skip);
                self.fs = super::lower::FState::Unknown;
            } else {
                self.fs = super::lower::FState::Lazy { kind, bits, synced: false };
            }
        }
        if count.is_none() {
            // Count zero: the destination is unchanged (but a 32-bit register is still written).
            let w = self.a.label();
            self.a.b(Op::Bne, c, Reg::ZERO, w);
            self.a.mv(r, a);
            self.a.bind(w);
        }
        self.write(dst, bits, r)
    }

    /// 16-bit shld/shrd. Counts above 16 are architecturally undefined; this follows the
    /// model QEMU documents as Intel's: the 48-bit value dst:src:dst shifted (W below).
    fn shift_double16(&mut self, i: &Instruction) -> LResult {
        let count = match i.op_kind(2) {
            iced_x86::OpKind::Immediate8 => Some(u32::from(i.immediate8()) & 31),
            iced_x86::OpKind::Register => None,
            _ => return Err(Unsupp),
        };
        if count == Some(0) {
            return Ok(());
        }
        let left = i.mnemonic() == M::Shld;
        let live = self.live() != 0 && (count.is_none() || self.flags_live(i));
        if count.is_none() && live {
            self.sync_kind();
        }
        let dst = self.loc(i, 0)?;
        let a = self.read_zext(dst, 16);
        let src = self.loc(i, 1)?;
        let b = self.read_zext(src, 16);
        let c = self.tmp();
        match count {
            Some(n) => self.a.li(c, u64::from(n)),
            None => self.a.i(Op::Andi, c, regs::guest(Gpr::Rcx), 31),
        }
        let skip = self.a.label();
        if count.is_none() {
            self.a.b(Op::Beq, c, Reg::ZERO, skip);
        }
        // W = a << 32 | b << 16 | a
        let w = self.tmp();
        self.a.slli(w, a, 32);
        self.a.slli(regs::T0, b, 16);
        self.a.r(Op::Or, w, w, regs::T0);
        self.a.r(Op::Or, w, w, a);
        let r = self.tmp();
        if left {
            // r = W >> (32 - c)
            self.a.li(regs::T0, 32);
            self.a.r(Op::Sub, regs::T0, regs::T0, c);
        } else {
            self.a.mv(regs::T0, c);
        }
        self.a.r(Op::Srl, r, w, regs::T0);
        self.a.zext(r, r, 16);
        if live {
            let kind = if left { Kind::Shld16 } else { Kind::Shrd16 };
            self.a.mv(regs::F_SRC1, w);
            self.a.mv(regs::F_SRC2, c);
            self.a.mv(regs::F_RES, r);
            self.a.li(regs::T0, kind.word(16));
            self.a.sd(regs::T0, CTX, flags::OFF_KIND);
            self.fs = if count.is_none() {
                super::lower::FState::Unknown
            } else {
                super::lower::FState::Lazy { kind, bits: 16, synced: true }
            };
        }
        self.write(dst, 16, r)?;
        self.a.bind(skip);
        Ok(())
    }

    fn mul(&mut self, i: &Instruction) -> LResult {
        let live = self.flags_live(i);
        let signed = i.mnemonic() == M::Imul;
        if i.op_count() >= 2 {
            // imul r, r/m [, imm]: the low half, CF = OF = the signed product does not fit.
            let bits = op_bits(i, 0);
            let dst = self.loc(i, 0)?;
            let (s1, s2) = if i.op_count() == 3 { (self.loc(i, 1)?, self.loc(i, 2)?) } else { (dst, self.loc(i, 1)?) };
            let a = self.read_sext(s1, bits);
            let b = self.read_sext(s2, bits);
            // Straight into a 32/64-bit destination register when the flags are dead.
            let r = if live { self.tmp() } else { self.dest_reg(dst, bits) };
            self.a.r(Op::Mul, r, a, b);
            if live {
                let ovf = self.tmp();
                if bits == 64 {
                    let h = self.tmp();
                    self.a.r(Op::Mulh, h, a, b);
                    self.a.srai(ovf, r, 63);
                    self.a.r(Op::Xor, ovf, ovf, h);
                } else {
                    self.a.sext(ovf, r, bits);
                    self.a.r(Op::Xor, ovf, ovf, r);
                }
                self.a.r(Op::Sltu, ovf, Reg::ZERO, ovf);
                self.set_flags(Kind::Mul, bits, ovf, Reg::ZERO, r);
            }
            return self.write(dst, bits, r);
        }
        // One operand: widening multiply of the accumulator.
        let bits = op_bits(i, 0);
        let src = self.loc(i, 0)?;
        let rax = Loc::Reg(Gpr::Rax, false);
        let (lo, hi) = (self.tmp(), self.tmp());
        if bits == 64 {
            let b = self.read(src, 64);
            let a = regs::guest(Gpr::Rax);
            self.a.r(Op::Mul, lo, a, b);
            self.a.r(if signed { Op::Mulh } else { Op::Mulhu }, hi, a, b);
        } else {
            let (a, b) = if signed {
                (self.read_sext(rax, bits), self.read_sext(src, bits))
            } else {
                (self.read_zext(rax, bits), self.read_zext(src, bits))
            };
            self.a.r(Op::Mul, lo, a, b);
            if signed {
                self.a.srai(hi, lo, bits);
            } else {
                self.a.srli(hi, lo, bits);
            }
        }
        if live {
            let ovf = self.tmp();
            if signed {
                if bits == 64 {
                    self.a.srai(ovf, lo, 63);
                    self.a.r(Op::Xor, ovf, ovf, hi);
                } else {
                    // The product fits iff it equals the sign extension of its low half.
                    self.a.sext(ovf, lo, bits);
                    self.a.r(Op::Xor, ovf, ovf, lo);
                }
            } else if bits == 64 {
                self.a.mv(ovf, hi);
            } else {
                self.a.srli(ovf, lo, bits);
            }
            self.a.r(Op::Sltu, ovf, Reg::ZERO, ovf);
            self.set_flags(Kind::Mul, bits, ovf, Reg::ZERO, lo);
        }
        match bits {
            8 => self.write(Loc::Reg(Gpr::Rax, false), 16, lo),
            _ => {
                self.write(rax, bits, lo)?;
                self.write(Loc::Reg(Gpr::Rdx, false), bits, hi)
            }
        }
    }

    fn div(&mut self, i: &Instruction) -> LResult {
        let signed = i.mnemonic() == M::Idiv;
        let bits = op_bits(i, 0);
        let err = self.exit_label(exit::DIVIDE_ERROR, i.ip());
        let src = self.loc(i, 0)?;
        if bits == 64 {
            // The 128-bit dividend: a helper does the general case.
            let d = regs::S9;
            let v = self.read(src, 64);
            self.a.mv(d, v);
            self.a.b_far(Op::Beq, d, Reg::ZERO, err);
            // Fast path: the dividend fits 64 bits (RDX is the zero or sign extension of RAX),
            // so one divide does it. Signed MIN / -1 overflows and goes to the helper (which
            // reports the divide error).
            let (rax, rdx) = (regs::guest(Gpr::Rax), regs::guest(Gpr::Rdx));
            let (slow, done) = (self.a.label(), self.a.label());
            let (t, q) = (Reg::T1, Reg::T2);
            if signed {
                self.a.srai(t, rax, 63);
                self.a.b(Op::Bne, t, rdx, slow);
                self.a.li(t, u64::MAX);
                let ok = self.a.label();
                self.a.b(Op::Bne, d, t, ok);
                self.a.li(t, 1 << 63);
                self.a.b(Op::Beq, rax, t, slow);
                self.a.bind(ok);
                self.a.r(Op::Div, q, rax, d);
                self.a.r(Op::Rem, rdx, rax, d);
            } else {
                self.a.b(Op::Bne, rdx, Reg::ZERO, slow);
                self.a.r(Op::Divu, q, rax, d);
                self.a.r(Op::Remu, rdx, rax, d);
            }
            self.a.mv(rax, q);
            self.a.j(done);
            self.a.bind(slow);
            self.a.sd(d, CTX, OFF_STATUS);
            self.a.li(Reg::T1, u64::from(signed));
            self.a.sd(Reg::T1, CTX, OFF_STATUS + 8);
            self.call_helper(OFF_DIV_FN);
            self.a.ld(Reg::T1, CTX, OFF_STATUS);
            self.a.b_far(Op::Bne, Reg::T1, Reg::ZERO, err);
            self.a.bind(done);
            return Ok(());
        }
        let h = bits; // the dividend is 2*bits wide and fits 64 bits
        let dv = if signed { self.read_sext(src, bits) } else { self.read_zext(src, bits) };
        self.a.b_far(Op::Beq, dv, Reg::ZERO, err);
        // Build the dividend: (high << bits) | low.
        let (hi_loc, lo_loc) = if bits == 8 {
            (Loc::Reg(Gpr::Rax, true), Loc::Reg(Gpr::Rax, false))
        } else {
            (Loc::Reg(Gpr::Rdx, false), Loc::Reg(Gpr::Rax, false))
        };
        let lo = self.read_zext(lo_loc, bits);
        let n = if signed { self.read_sext(hi_loc, bits) } else { self.read_zext(hi_loc, bits) };
        self.a.slli(n, n, h);
        self.a.r(Op::Or, n, n, lo);
        let (q, r) = (lo, self.tmp());
        self.a.r(if signed { Op::Div } else { Op::Divu }, q, n, dv);
        self.a.r(if signed { Op::Rem } else { Op::Remu }, r, n, dv);
        // Quotient overflow: it must fit `bits` (signed or unsigned).
        let chk = self.tmp();
        if signed {
            self.a.sext(chk, q, bits);
        } else {
            self.a.zext(chk, q, bits);
        }
        self.a.b_far(Op::Bne, chk, q, err);
        if bits == 8 {
            self.a.i(Op::Andi, q, q, 0xff);
            self.a.i(Op::Andi, chk, r, 0xff);
            self.a.slli(chk, chk, 8);
            self.a.r(Op::Or, q, q, chk);
            self.write(Loc::Reg(Gpr::Rax, false), 16, q)
        } else {
            self.write(Loc::Reg(Gpr::Rax, false), bits, q)?;
            self.write(Loc::Reg(Gpr::Rdx, false), bits, r)
        }
    }

    fn bt(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let live = self.live() & iced_x86::RflagsBits::CF != 0;
        let keep = fl::ZF;
        let need_old = if live { self.begin_exact(keep) } else { false };
        let base = self.loc(i, 0)?;
        let off = self.loc(i, 1)?;
        // (operand holding the bit, its width, bit number register)
        let (val_loc, vbits, bit) = match (base, off) {
            (Loc::Reg(..), _) => {
                let b = self.tmp();
                match off {
                    Loc::Imm(v) => self.a.li(b, v & u64::from(bits - 1)),
                    _ => {
                        let o = self.read(off, bits);
                        self.a.i(Op::Andi, b, o, bits as i32 - 1);
                    }
                }
                (base, bits, b)
            }
            (Loc::Mem(at), Loc::Imm(v)) => {
                // An immediate offset is taken modulo the operand width.
                let v = v & u64::from(bits - 1);
                let p = self.addr_reg(at);
                if v >> 3 != 0 {
                    self.a.addi(p, p, (v >> 3) as i32);
                }
                let b = self.tmp();
                self.a.li(b, v & 7);
                (Loc::Mem(super::lower::Addr { base: p, off: 0 }), 8, b)
            }
            (Loc::Mem(at), _) => {
                // Bit string: the register offset is signed and may reach any byte.
                let p = self.addr_reg(at);
                let o = self.read_sext(off, bits);
                let b = self.tmp();
                self.a.i(Op::Andi, b, o, 7);
                self.a.srai(regs::T0, o, 3);
                self.a.r(Op::Add, p, p, regs::T0);
                (Loc::Mem(super::lower::Addr { base: p, off: 0 }), 8, b)
            }
            _ => return Err(Unsupp),
        };
        let m = i.mnemonic();
        if let (true, Loc::Mem(at), false) = (i.has_lock_prefix(), val_loc, m == M::Bt) {
            // One atomic byte read-modify-write (the byte holding the bit: never split), CF
            // from the byte it replaced. `bit` becomes the mask.
            let p = self.addr_reg(at);
            self.a.li(regs::T0, 1);
            self.a.r(Op::Sll, bit, regs::T0, bit);
            let rmw = match m {
                M::Bts => Rmw::Or(bit),
                M::Btc => Rmw::Xor(bit),
                _ => Rmw::AndNot(bit),
            };
            let old = self.atomic_rmw(p, 8, rmw);
            let cf = regs::S9;
            self.a.r(Op::And, cf, old, bit);
            self.a.r(Op::Sltu, cf, Reg::ZERO, cf);
            if live {
                self.end_exact(need_old, keep, cf);
            }
            return Ok(());
        }
        let v = self.read(val_loc, vbits);
        let v = if self.is_temp(v) { v } else {
            let t = self.tmp();
            self.a.mv(t, v);
            t
        };
        let cf = regs::S9;
        self.a.r(Op::Srl, cf, v, bit);
        self.a.i(Op::Andi, cf, cf, 1);
        if m != M::Bt {
            // mask = 1 << bit, in place of the bit number.
            self.a.li(regs::T0, 1);
            self.a.r(Op::Sll, bit, regs::T0, bit);
            match m {
                M::Bts => self.a.r(Op::Or, v, v, bit),
                M::Btc => self.a.r(Op::Xor, v, v, bit),
                _ => {
                    self.a.i(Op::Xori, bit, bit, -1);
                    self.a.r(Op::And, v, v, bit);
                }
            }
            self.write(val_loc, vbits, v)?;
        }
        if live {
            self.end_exact(need_old, keep, cf);
        }
        Ok(())
    }

    fn bitscan(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let m = i.mnemonic();
        // Without BMI1 advertised, `tzcnt` is `rep bsf` and runs as bsf (as on such CPUs).
        let m = if m == M::Tzcnt { M::Bsf } else { m };
        let dst = self.loc(i, 0)?;
        let src = self.loc(i, 1)?;
        let x = self.read_zext(src, bits);
        let r = self.tmp();
        let zbb = self.a.ext.zbb;
        match m {
            M::Bsf => {
                if zbb {
                    self.a.i(Op::Ctz, r, x, 0);
                } else {
                    self.ctz_loop(r, x);
                }
            }
            M::Bsr => {
                if zbb {
                    self.a.i(Op::Clz, r, x, 0);
                    let t = self.tmp();
                    self.a.li(t, 63);
                    self.a.r(Op::Sub, r, t, r);
                } else {
                    self.bsr_loop(r, x);
                }
            }
            M::Lzcnt => {
                if zbb {
                    self.a.i(Op::Clz, r, x, 0);
                } else {
                    self.bsr_loop(r, x);
                    let t = self.tmp();
                    self.a.li(t, 63);
                    self.a.r(Op::Sub, r, t, r);
                }
                if bits < 64 {
                    self.a.addi(r, r, bits as i32 - 64);
                }
            }
            _ => {
                if zbb {
                    self.a.i(Op::Cpop, r, x, 0);
                } else {
                    self.popcount(r, x);
                }
            }
        }
        let live = self.flags_live(i);
        let f = self.tmp();
        self.a.i(Op::Sltiu, f, x, 1);
        match m {
            M::Bsf | M::Bsr => {
                // Zero source: ZF = 1 and the destination is left alone.
                if live {
                    self.a.slli(f, f, 6);
                    self.end_exact(false, 0, f);
                }
                let skip = self.a.label();
                self.a.b(Op::Beq, x, Reg::ZERO, skip);
                self.write(dst, bits, r)?;
                self.a.bind(skip);
                Ok(())
            }
            M::Lzcnt => {
                if live {
                    // CF = source was zero, ZF = result is zero.
                    let z = self.tmp();
                    self.a.i(Op::Sltiu, z, r, 1);
                    self.a.slli(z, z, 6);
                    self.a.r(Op::Or, f, f, z);
                    self.end_exact(false, 0, f);
                }
                self.write(dst, bits, r)
            }
            _ => {
                if live {
                    self.a.slli(f, f, 6);
                    self.end_exact(false, 0, f);
                }
                self.write(dst, bits, r)
            }
        }
    }

    /// `r = index of the lowest set bit of x` (x != 0; 64 if x == 0).
    fn ctz_loop(&mut self, r: Reg, x: Reg) {
        let t = self.tmp();
        let (top, done) = (self.a.label(), self.a.label());
        self.a.li(r, 0);
        self.a.bind(top);
        self.a.li(t, 64);
        self.a.b(Op::Beq, r, t, done);
        self.a.r(Op::Srl, t, x, r);
        self.a.i(Op::Andi, t, t, 1);
        self.a.b(Op::Bne, t, Reg::ZERO, done);
        self.a.addi(r, r, 1);
        self.a.j(top);
        self.a.bind(done);
    }

    /// `r = index of the highest set bit of x` (x != 0; -1 if x == 0).
    fn bsr_loop(&mut self, r: Reg, x: Reg) {
        let t = self.tmp();
        let (top, done) = (self.a.label(), self.a.label());
        self.a.li(r, 63);
        self.a.bind(top);
        self.a.b(Op::Blt, r, Reg::ZERO, done);
        self.a.r(Op::Srl, t, x, r);
        self.a.b(Op::Bne, t, Reg::ZERO, done);
        self.a.addi(r, r, -1);
        self.a.j(top);
        self.a.bind(done);
    }

    /// `r = number of set bits of x` (SWAR).
    fn popcount(&mut self, r: Reg, x: Reg) {
        let (t, m) = (self.tmp(), self.tmp());
        self.a.srli(t, x, 1);
        self.a.li(m, 0x5555_5555_5555_5555);
        self.a.r(Op::And, t, t, m);
        self.a.r(Op::Sub, r, x, t);
        self.a.li(m, 0x3333_3333_3333_3333);
        self.a.r(Op::And, t, r, m);
        self.a.srli(r, r, 2);
        self.a.r(Op::And, r, r, m);
        self.a.r(Op::Add, r, r, t);
        self.a.srli(t, r, 4);
        self.a.r(Op::Add, r, r, t);
        self.a.li(m, 0x0f0f_0f0f_0f0f_0f0f);
        self.a.r(Op::And, r, r, m);
        self.a.li(m, 0x0101_0101_0101_0101);
        self.a.r(Op::Mul, r, r, m);
        self.a.srli(r, r, 56);
    }
}

/// The 128-by-64-bit division of `div`/`idiv r/m64`: dividend RDX:RAX from `ctx.cpu`, divisor and
/// signedness in the status words; writes RAX/RDX and status 0, or status 1 on a divide error.
///
/// # Safety
/// `ctx` must point to a live `ThreadCtx` no one else accesses during the call.
pub unsafe extern "C" fn rv_div128(ctx: *mut crate::ThreadCtx) {
    // SAFETY: the caller passes the context generated code runs on, exclusively.
    let ctx = unsafe { &mut *ctx };
    let slot = ((OFF_STATUS as usize) - crate::ctx::OFF_BACKEND) / 8;
    let divisor = ctx.backend[slot];
    let signed = ctx.backend[slot + 1] != 0;
    let (lo, hi) = (ctx.cpu.get(Gpr::Rax), ctx.cpu.get(Gpr::Rdx));
    let n = (u128::from(hi) << 64) | u128::from(lo);
    let out = if signed {
        let n = n as i128;
        let d = i128::from(divisor as i64);
        match (n.checked_div(d), n.checked_rem(d)) {
            (Some(q), Some(r)) if q >= i128::from(i64::MIN) && q <= i128::from(i64::MAX) => Some((q as u64, r as u64)),
            _ => None,
        }
    } else {
        let d = u128::from(divisor);
        match (n.checked_div(d), n.checked_rem(d)) {
            (Some(q), Some(r)) if q <= u128::from(u64::MAX) => Some((q as u64, r as u64)),
            _ => None,
        }
    };
    match out {
        Some((q, r)) => {
            ctx.cpu.set(Gpr::Rax, q);
            ctx.cpu.set(Gpr::Rdx, r);
            ctx.backend[slot] = 0;
        }
        None => ctx.backend[slot] = 1,
    }
}
