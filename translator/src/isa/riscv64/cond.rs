//! Reading flags: single status flags and x86 conditions evaluated from the lazy descriptor where
//! the kind is known in the block (`cmp` + `jl` becomes one `blt` on the operands), from
//! `ctx.cpu.rflags` otherwise (after materializing it), plus the exact-update idiom that
//! partial flag writers (`bt`, `clc`, rotates…) use.

use iced_x86::ConditionCode as CC;

use super::asm::Label;
use super::encode::{Op, Reg};
use super::flags::{self, Kind};
use super::lower::{FState, Lower};
use super::regs::{CTX, F_RES, F_SRC1, F_SRC2};
use crate::cpu::OFF_RFLAGS;

/// A status flag, by its RFLAGS bit number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Carry.
    C = 0,
    /// Parity.
    P = 2,
    /// Auxiliary carry.
    A = 4,
    /// Zero.
    Z = 6,
    /// Sign.
    S = 7,
    /// Overflow.
    O = 11,
}

impl Lower<'_> {
    /// `r` shifted so that bit `bits - 1` is bit 63 (the form in which comparisons of `bits`-wide
    /// values are plain 64-bit comparisons).
    pub fn top(&mut self, r: Reg, bits: u32) -> Reg {
        if bits == 64 {
            return r;
        }
        let t = self.tmp();
        if bits == 32 {
            self.a.sext(t, r, 32);
        } else {
            self.a.slli(t, r, 64 - bits);
        }
        t
    }

    /// As [`Lower::top`], into `rd`.
    pub fn top_into(&mut self, rd: Reg, r: Reg, bits: u32) {
        match bits {
            64 => self.a.mv(rd, r),
            32 => self.a.sext(rd, r, 32),
            _ => self.a.slli(rd, r, 64 - bits),
        }
    }

    /// 0/1 in a scratch register: the value of flag `f` now.
    pub fn flag(&mut self, f: Flag) -> Reg {
        let mark = self.temps_mark();
        let r = self.flag_inner(f);
        self.compact(mark, r)
    }

    fn flag_inner(&mut self, f: Flag) -> Reg {
        if let FState::Lazy { kind, bits, .. } = self.fs {
            if let Some(r) = self.lazy_flag(kind, bits, f) {
                return r;
            }
        }
        if self.fs == FState::Unknown && f == Flag::C {
            return self.dynamic_cf();
        }
        self.materialize();
        let t = self.tmp();
        self.a.ld(t, CTX, OFF_RFLAGS as i32);
        self.a.srli(t, t, f as u32);
        self.a.i(Op::Andi, t, t, 1);
        t
    }

    /// CF when the kind is only known at run time (a block's first reader: `dec; jnz` loops,
    /// `adc` chains split across blocks): switch on the kind word for the common kinds, and
    /// call the helper only for the others.
    fn dynamic_cf(&mut self) -> Reg {
        let (k, op, sh, r) = (self.tmp(), self.tmp(), self.tmp(), self.tmp());
        let t = super::regs::T0;
        let (exact, sub, add, zero, aux, slow, join) =
            (self.a.label(), self.a.label(), self.a.label(), self.a.label(), self.a.label(), self.a.label(), self.a.label());
        self.a.ld(k, CTX, flags::OFF_KIND);
        self.a.b(Op::Beq, k, Reg::ZERO, exact);
        self.a.srli(op, k, 8);
        self.a.i(Op::Andi, sh, k, 0xff);
        self.a.li(t, 64);
        self.a.r(Op::Sub, sh, t, sh);
        self.a.li(t, Kind::Sub as u64);
        self.a.b(Op::Beq, op, t, sub);
        self.a.li(t, Kind::Add as u64);
        self.a.b(Op::Beq, op, t, add);
        self.a.li(t, Kind::Logic as u64);
        self.a.b(Op::Beq, op, t, zero);
        self.a.addi(t, op, -(Kind::Inc as i32));
        self.a.li(k, 2);
        self.a.b(Op::Bltu, t, k, aux);
        self.a.j(slow);
        self.a.bind(sub);
        self.a.r(Op::Sll, k, F_SRC1, sh);
        self.a.r(Op::Sll, op, F_SRC2, sh);
        self.a.r(Op::Sltu, r, k, op);
        self.a.j(join);
        self.a.bind(add);
        self.a.r(Op::Sll, k, F_RES, sh);
        self.a.r(Op::Sll, op, F_SRC1, sh);
        self.a.r(Op::Sltu, r, k, op);
        self.a.j(join);
        self.a.bind(zero);
        self.a.li(r, 0);
        self.a.j(join);
        self.a.bind(aux);
        self.a.ld(r, CTX, flags::OFF_AUX);
        self.a.i(Op::Andi, r, r, 1);
        self.a.j(join);
        self.a.bind(slow);
        // The helper leaves the kind EXACT, which the static state (Unknown) allows.
        let saved = self.fs;
        self.call_helper(super::lower::OFF_MAT_FN);
        self.fs = saved;
        self.a.bind(exact);
        self.a.ld(r, CTX, OFF_RFLAGS as i32);
        self.a.i(Op::Andi, r, r, 1);
        self.a.bind(join);
        r
    }

    fn lazy_flag(&mut self, kind: Kind, bits: u32, f: Flag) -> Option<Reg> {
        use Kind as K;
        let t = match (f, kind) {
            (Flag::Z, _) => {
                let r = self.top(F_RES, bits);
                let t = self.tmp();
                self.a.i(Op::Sltiu, t, r, 1);
                t
            }
            (Flag::S, _) => {
                let t = self.tmp();
                self.a.srli(t, F_RES, bits - 1);
                self.a.i(Op::Andi, t, t, 1);
                t
            }
            (Flag::C | Flag::O, K::Logic) => Reg::ZERO,
            (Flag::C | Flag::O, K::Mul) => {
                let t = self.tmp();
                self.a.i(Op::Andi, t, F_SRC1, 1);
                t
            }
            (Flag::C, K::Inc | K::Dec) => {
                let t = self.tmp();
                self.a.ld(t, CTX, flags::OFF_AUX);
                self.a.i(Op::Andi, t, t, 1);
                t
            }
            (Flag::C, K::Add | K::Sub | K::Adc | K::Sbb) => {
                let (x, y) = match kind {
                    K::Add | K::Adc => (F_RES, F_SRC1),
                    _ => (F_SRC1, F_SRC2),
                };
                let (x, y) = (self.top(x, bits), self.top(y, bits));
                let t = self.tmp();
                self.a.r(Op::Sltu, t, x, y);
                if matches!(kind, K::Adc | K::Sbb) {
                    // Also carry when equal and the carry-in was set.
                    let e = self.tmp();
                    self.a.r(Op::Xor, e, x, y);
                    self.a.i(Op::Sltiu, e, e, 1);
                    let c = self.tmp();
                    self.a.ld(c, CTX, flags::OFF_AUX);
                    self.a.r(Op::And, e, e, c);
                    self.a.r(Op::Or, t, t, e);
                    self.a.i(Op::Andi, t, t, 1);
                }
                t
            }
            (Flag::O, K::Add | K::Adc | K::Inc | K::Sub | K::Sbb | K::Dec) => {
                let t = self.tmp();
                let u = self.tmp();
                if matches!(kind, K::Add | K::Adc | K::Inc) {
                    self.a.r(Op::Xor, t, F_SRC1, F_RES);
                    self.a.r(Op::Xor, u, F_SRC2, F_RES);
                } else {
                    self.a.r(Op::Xor, t, F_SRC1, F_SRC2);
                    self.a.r(Op::Xor, u, F_SRC1, F_RES);
                }
                self.a.r(Op::And, t, t, u);
                self.a.srli(t, t, bits - 1);
                self.a.i(Op::Andi, t, t, 1);
                t
            }
            _ => return None,
        };
        Some(t)
    }

    /// 0/1 in a register: whether condition `cc` holds.
    pub fn cond(&mut self, cc: CC) -> Reg {
        let mark = self.temps_mark();
        let r = self.cond_inner(cc);
        self.compact(mark, r)
    }

    fn cond_inner(&mut self, cc: CC) -> Reg {
        // A flag that needs the helper must be made exact before any other flag of the condition
        // sits in a scratch register (the call clobbers them).
        if let FState::Lazy { kind, .. } = self.fs {
            let (base, _) = split(cc);
            let needs: &[Flag] = match base {
                CC::o => &[Flag::O],
                CC::b => &[Flag::C],
                CC::e => &[Flag::Z],
                CC::s => &[Flag::S],
                CC::p => &[Flag::P],
                CC::be => &[Flag::C, Flag::Z],
                CC::l => &[Flag::S, Flag::O],
                _ => &[Flag::S, Flag::O, Flag::Z],
            };
            if needs.iter().any(|&f| !inline_ok(kind, f)) {
                self.materialize();
            }
        } else if self.fs == FState::Unknown && !matches!(split(cc).0, CC::b) {
            // Only CF has a helper-free path from an unknown kind.
            self.materialize();
        }
        if let FState::Lazy { kind: Kind::Sub, bits, .. } = self.fs {
            if let Some(r) = self.sub_cond(cc, bits) {
                return r;
            }
        }
        let (base, neg) = split(cc);
        if self.fs == FState::Exact {
            // One mask test on RFLAGS (after comis*, sahf, popf, a helper…).
            let mask: Option<i32> = match base {
                CC::b => Some(1),
                CC::p => Some(1 << Flag::P as i32),
                CC::e => Some(1 << Flag::Z as i32),
                CC::s => Some(1 << Flag::S as i32),
                CC::be => Some(1 | 1 << Flag::Z as i32),
                _ => None,
            };
            if let Some(m) = mask {
                let t = self.tmp();
                self.a.ld(t, CTX, OFF_RFLAGS as i32);
                self.a.i(Op::Andi, t, t, m);
                if neg {
                    self.a.i(Op::Sltiu, t, t, 1);
                } else {
                    self.a.r(Op::Sltu, t, Reg::ZERO, t);
                }
                return t;
            }
        }
        let t = match base {
            CC::o => self.flag(Flag::O),
            CC::b => self.flag(Flag::C),
            CC::e => self.flag(Flag::Z),
            CC::s => self.flag(Flag::S),
            CC::p => self.flag(Flag::P),
            CC::be => {
                let c = self.flag(Flag::C);
                let z = self.flag(Flag::Z);
                let t = self.tmp();
                self.a.r(Op::Or, t, c, z);
                t
            }
            CC::l => {
                let s = self.flag(Flag::S);
                let o = self.flag(Flag::O);
                let t = self.tmp();
                self.a.r(Op::Xor, t, s, o);
                t
            }
            _ => {
                // le
                let s = self.flag(Flag::S);
                let o = self.flag(Flag::O);
                let z = self.flag(Flag::Z);
                let t = self.tmp();
                self.a.r(Op::Xor, t, s, o);
                self.a.r(Op::Or, t, t, z);
                t
            }
        };
        if neg {
            let n = self.tmp();
            self.a.i(Op::Xori, n, t, 1);
            n
        } else {
            t
        }
    }

    fn sub_cond(&mut self, cc: CC, bits: u32) -> Option<Reg> {
        if matches!(cc, CC::o | CC::no | CC::p | CC::np) {
            return None;
        }
        let x = self.top(F_SRC1, bits);
        let y = self.top(F_SRC2, bits);
        let t = self.tmp();
        let (op, a, b, neg) = match cc {
            CC::b => (Op::Sltu, x, y, false),
            CC::ae => (Op::Sltu, x, y, true),
            CC::a => (Op::Sltu, y, x, false),
            CC::be => (Op::Sltu, y, x, true),
            CC::l => (Op::Slt, x, y, false),
            CC::ge => (Op::Slt, x, y, true),
            CC::g => (Op::Slt, y, x, false),
            CC::le => (Op::Slt, y, x, true),
            CC::e | CC::ne => {
                self.a.r(Op::Xor, t, x, y);
                self.a.i(Op::Sltiu, t, t, 1);
                if cc == CC::ne {
                    self.a.i(Op::Xori, t, t, 1);
                }
                return Some(t);
            }
            _ => {
                // s / ns: the sign of the result.
                let r = self.top(F_RES, bits);
                self.a.r(Op::Slt, t, r, Reg::ZERO);
                if cc == CC::ns {
                    self.a.i(Op::Xori, t, t, 1);
                }
                return Some(t);
            }
        };
        self.a.r(op, t, a, b);
        if neg {
            self.a.i(Op::Xori, t, t, 1);
        }
        Some(t)
    }

    /// Branch to `l` when `cc` holds.
    ///
    /// `l` must be bound within a conditional branch's reach (±4 KiB): `jcc` binds it right
    /// after the fall-through link site, so one branch instruction suffices.
    pub fn branch_if(&mut self, cc: CC, l: Label) {
        match self.fs {
            FState::Lazy { kind: Kind::Sub, bits, .. } if !matches!(cc, CC::o | CC::no | CC::p | CC::np) => {
                let x = self.top(F_SRC1, bits);
                let y = self.top(F_SRC2, bits);
                let (op, a, b) = match cc {
                    CC::e => (Op::Beq, x, y),
                    CC::ne => (Op::Bne, x, y),
                    CC::b => (Op::Bltu, x, y),
                    CC::ae => (Op::Bgeu, x, y),
                    CC::a => (Op::Bltu, y, x),
                    CC::be => (Op::Bgeu, y, x),
                    CC::l => (Op::Blt, x, y),
                    CC::ge => (Op::Bge, x, y),
                    CC::g => (Op::Blt, y, x),
                    CC::le => (Op::Bge, y, x),
                    CC::s => (Op::Blt, self.top(F_RES, bits), Reg::ZERO),
                    _ => (Op::Bge, self.top(F_RES, bits), Reg::ZERO),
                };
                self.a.b(op, a, b, l);
            }
            FState::Lazy { kind: Kind::Logic, bits, .. } if !matches!(cc, CC::p | CC::np) => {
                let r = self.top(F_RES, bits);
                let z = Reg::ZERO;
                let (op, a, b) = match cc {
                    CC::e | CC::be => (Op::Beq, r, z),
                    CC::ne | CC::a => (Op::Bne, r, z),
                    CC::s | CC::l => (Op::Blt, r, z),
                    CC::ns | CC::ge => (Op::Bge, r, z),
                    CC::le => (Op::Bge, z, r),
                    CC::g => (Op::Blt, z, r),
                    CC::b | CC::o => return,
                    _ => {
                        // ae / no: always.
                        self.a.j(l);
                        return;
                    }
                };
                self.a.b(op, a, b, l);
            }
            _ => {
                let v = self.cond(cc);
                self.a.b(Op::Bne, v, Reg::ZERO, l);
            }
        }
    }

    /// First half of an exact flag update by an instruction that writes only some status flags:
    /// materializes the current flags if any flag in `keep_mask` (RFLAGS bits) is live. Call it
    /// before computing anything into scratch registers (a helper call clobbers them); pass the
    /// result to [`Lower::end_exact`].
    pub fn begin_exact(&mut self, keep_mask: u64) -> bool {
        let need_old = keep_mask != 0 && self.live() & iced_bits(keep_mask) != 0;
        if need_old {
            self.materialize();
        }
        need_old
    }

    /// Second half: status bits outside `keep_mask` (or all, when the old ones were not needed)
    /// are cleared, `new` (a register of RFLAGS status bits) is or-ed in, and the state is exact.
    pub fn end_exact(&mut self, need_old: bool, keep_mask: u64, new: Reg) {
        let t = self.tmp();
        let m = super::regs::T0;
        self.a.ld(t, CTX, OFF_RFLAGS as i32);
        let clear = crate::cpu::flags::STATUS & !(if need_old { keep_mask } else { 0 });
        self.a.li(m, !clear);
        self.a.r(Op::And, t, t, m);
        self.a.r(Op::Or, t, t, new);
        self.a.sd(t, CTX, OFF_RFLAGS as i32);
        if self.fs != FState::Exact {
            self.a.sd(Reg::ZERO, CTX, flags::OFF_KIND);
        }
        self.fs = FState::Exact;
    }
}

/// Whether `lazy_flag` computes flag `f` of `kind` without the helper.
fn inline_ok(kind: Kind, f: Flag) -> bool {
    use Kind as K;
    match f {
        Flag::Z | Flag::S => true,
        Flag::C | Flag::O => matches!(kind, K::Logic | K::Mul | K::Add | K::Sub | K::Adc | K::Sbb | K::Inc | K::Dec),
        Flag::P | Flag::A => false,
    }
}

/// Condition without its negation, and whether it was negated.
fn split(cc: CC) -> (CC, bool) {
    match cc {
        CC::no => (CC::o, true),
        CC::ae => (CC::b, true),
        CC::ne => (CC::e, true),
        CC::a => (CC::be, true),
        CC::ns => (CC::s, true),
        CC::np => (CC::p, true),
        CC::ge => (CC::l, true),
        CC::g => (CC::le, true),
        c => (c, false),
    }
}

/// iced flag bits for a mask of RFLAGS status bits.
pub fn iced_bits(mask: u64) -> u32 {
    use crate::cpu::flags as f;
    use iced_x86::RflagsBits as R;
    let mut r = 0;
    for (x, i) in [(f::CF, R::CF), (f::PF, R::PF), (f::AF, R::AF), (f::ZF, R::ZF), (f::SF, R::SF), (f::OF, R::OF)] {
        if mask & x != 0 {
            r |= i;
        }
    }
    r
}
