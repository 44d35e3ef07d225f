//! Lazy x86 flags: the descriptor generated code keeps instead of RFLAGS, and the exact RFLAGS
//! computed from it.
//!
//! A flag-setting instruction whose flags some later instruction may read (per-block liveness;
//! everything is assumed live at a block exit) leaves its operands and result in the pinned
//! registers `F_SRC1`/`F_SRC2`/`F_RES` and stores a [`Kind`] word in `ctx.backend[KIND]`. A
//! reader in the same block evaluates just the condition it needs from those registers (`cmp` +
//! `jl` becomes `blt`); a reader that cannot, or one in another block, calls
//! [`rv_materialize_flags`], which writes the exact status flags into `ctx.cpu.rflags` and marks
//! the kind [`EXACT`]. The exit path always materializes, so the dispatcher sees exact flags.
//!
//! Non-status bits of `ctx.cpu.rflags` (DF, IF, the fixed 1…) are always exact in memory: only
//! the six status flags are ever lazy.

use crate::cpu::flags as fl;
use crate::ctx::{ThreadCtx, OFF_BACKEND};

/// Byte offset in `ThreadCtx` of the kind word (`op << 8 | operand bits`).
pub const OFF_KIND: i32 = OFF_BACKEND as i32;
/// Saved `F_SRC1` (stored by the exit path and before helper calls).
pub const OFF_SRC1: i32 = OFF_BACKEND as i32 + 8;
/// Saved `F_SRC2`.
pub const OFF_SRC2: i32 = OFF_BACKEND as i32 + 16;
/// Saved `F_RES`.
pub const OFF_RES: i32 = OFF_BACKEND as i32 + 24;
/// Auxiliary input: the carry-in of ADC/SBB, the preserved CF of INC/DEC.
pub const OFF_AUX: i32 = OFF_BACKEND as i32 + 32;

/// The status flags in `ctx.cpu.rflags` are exact.
pub const EXACT: u64 = 0;

/// Operation whose flags a descriptor describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `res = src1 + src2`.
    Add = 1,
    /// `res = src1 - src2` (cmp, sub, neg with src1 = 0).
    Sub = 2,
    /// and/or/xor/test: CF = OF = AF = 0.
    Logic = 3,
    /// `res = src1 + 1`, CF = aux.
    Inc = 4,
    /// `res = src1 - 1`, CF = aux.
    Dec = 5,
    /// `res = src1 + src2 + aux`.
    Adc = 6,
    /// `res = src1 - src2 - aux`.
    Sbb = 7,
    /// `res = src1 << src2` (src2 = masked count, non-zero).
    Shl = 8,
    /// Logical right shift.
    Shr = 9,
    /// Arithmetic right shift.
    Sar = 10,
    /// Multiplication: CF = OF = src1 (0 or 1), the rest from `res`.
    Mul = 11,
    /// `shrd`: CF as for SHR, OF = the sign changed.
    Shrd = 12,
    /// 16-bit `shld`: src1 = the 48-bit dst:src:dst, src2 = count (1..32), res = result.
    Shld16 = 13,
    /// 16-bit `shrd`, as [`Kind::Shld16`].
    Shrd16 = 14,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Add,
            2 => Kind::Sub,
            3 => Kind::Logic,
            4 => Kind::Inc,
            5 => Kind::Dec,
            6 => Kind::Adc,
            7 => Kind::Sbb,
            8 => Kind::Shl,
            9 => Kind::Shr,
            10 => Kind::Sar,
            11 => Kind::Mul,
            12 => Kind::Shrd,
            13 => Kind::Shld16,
            14 => Kind::Shrd16,
            _ => return None,
        })
    }

    /// The kind word for an operation on `bits`-wide operands.
    pub const fn word(self, bits: u32) -> u64 {
        (self as u64) << 8 | bits as u64
    }
}

/// The six status flags of an operation described lazily, as RFLAGS bits.
pub fn compute(kind: u64, src1: u64, src2: u64, res: u64, aux: u64) -> Option<u64> {
    let op = Kind::from_u8((kind >> 8) as u8)?;
    let bits = (kind & 0xff) as u32;
    if !matches!(bits, 8 | 16 | 32 | 64) {
        return None;
    }
    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let sign = 1u64 << (bits - 1);
    let (a, b, r) = (src1 & mask, src2 & mask, res & mask);
    let cin = aux & 1;
    let mut f = 0;
    let bit = |c: bool, v: u64| if c { v } else { 0 };
    f |= bit(r == 0, fl::ZF);
    f |= bit(r & sign != 0, fl::SF);
    f |= bit((r as u8).count_ones().is_multiple_of(2), fl::PF);
    let af = bit((a ^ b ^ r) & 0x10 != 0, fl::AF);
    match op {
        Kind::Add | Kind::Adc | Kind::Inc => {
            f |= af;
            f |= bit((a ^ r) & (b ^ r) & sign != 0, fl::OF);
            f |= match op {
                Kind::Add => bit(r < a, fl::CF),
                Kind::Adc => bit(r < a || (cin != 0 && r == a), fl::CF),
                _ => bit(cin != 0, fl::CF),
            };
        }
        Kind::Sub | Kind::Sbb | Kind::Dec => {
            f |= af;
            f |= bit((a ^ b) & (a ^ r) & sign != 0, fl::OF);
            f |= match op {
                Kind::Sub => bit(a < b, fl::CF),
                Kind::Sbb => bit(a < b || (cin != 0 && a == b), fl::CF),
                _ => bit(cin != 0, fl::CF),
            };
        }
        Kind::Logic => {}
        Kind::Shl => {
            let c = src2 as u32;
            let cf = c <= bits && c > 0 && (a >> (bits - c)) & 1 != 0;
            f |= bit(cf, fl::CF);
            f |= bit(((r & sign != 0) as u64 ^ cf as u64) != 0, fl::OF);
        }
        Kind::Shr | Kind::Shrd => {
            let c = src2 as u32;
            f |= bit(c > 0 && c <= 64 && (a >> (c - 1)) & 1 != 0, fl::CF);
            let of = if op == Kind::Shr { a & sign != 0 } else { (a ^ r) & sign != 0 };
            f |= bit(of, fl::OF);
        }
        Kind::Sar => {
            let c = src2 as u32;
            let sa = ((a << (64 - bits)) as i64) >> (64 - bits);
            f |= bit(c > 0 && (sa >> (c - 1).min(63)) & 1 != 0, fl::CF);
        }
        Kind::Mul => {
            f |= bit(src1 & 1 != 0, fl::CF | fl::OF);
        }
        Kind::Shld16 | Kind::Shrd16 => {
            // CF: the last bit shifted out of the 48-bit value; OF: the sign changed.
            let c = (src2 & 31) as u32;
            let cf = if op == Kind::Shld16 { (src1 >> (48 - c)) & 1 } else { (src1 >> (c - 1).min(47)) & 1 };
            f |= bit(cf != 0, fl::CF);
            f |= bit((a ^ r) & sign != 0, fl::OF);
        }
    }
    Some(f)
}

/// Make `ctx.cpu.rflags` exact from the descriptor saved in `ctx.backend` and mark it [`EXACT`].
/// Called by generated code (with the pinned flag registers stored first) and by `enter` after
/// the exit path.
///
/// # Safety
/// `ctx` must point to a live `ThreadCtx` no one else accesses during the call.
pub unsafe extern "C" fn rv_materialize_flags(ctx: *mut ThreadCtx) {
    // SAFETY: the caller passes the context generated code runs on, exclusively.
    let ctx = unsafe { &mut *ctx };
    let w = |off: i32| ctx.backend[(off as usize - OFF_BACKEND) / 8];
    let kind = w(OFF_KIND);
    if kind != EXACT {
        if let Some(f) = compute(kind, w(OFF_SRC1), w(OFF_SRC2), w(OFF_RES), w(OFF_AUX)) {
            ctx.cpu.rflags = (ctx.cpu.rflags & !fl::STATUS) | f;
        }
        ctx.backend[(OFF_KIND as usize - OFF_BACKEND) / 8] = EXACT;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_matches_hand_checked_cases() {
        // cmp 1, 2 (32-bit): borrow, negative, no overflow, AF from the low nibble.
        let f = compute(Kind::Sub.word(32), 1, 2, 1u64.wrapping_sub(2), 0).unwrap_or(0);
        assert_eq!(f, fl::CF | fl::SF | fl::AF | fl::PF);
        // add 0x7f + 1 (8-bit): signed overflow.
        let f = compute(Kind::Add.word(8), 0x7f, 1, 0x80, 0).unwrap_or(0);
        assert_eq!(f, fl::OF | fl::SF | fl::AF);
        // xor eax, eax.
        let f = compute(Kind::Logic.word(32), 0, 0, 0, 0).unwrap_or(0);
        assert_eq!(f, fl::ZF | fl::PF);
        // inc keeps CF from aux.
        let f = compute(Kind::Inc.word(64), u64::MAX, 1, 0, 1).unwrap_or(0);
        assert_eq!(f, fl::CF | fl::ZF | fl::PF | fl::AF);
        assert!(compute(0x7700 | 64, 0, 0, 0, 0).is_none());
    }

    /// On x86_64 hosts, compare with the flags the CPU itself produces.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn compute_matches_the_cpu() {
        use core::arch::asm;
        fn native(op: u32, a: u64, b: u64, cin: u64) -> (u64, u64) {
            let mut r = a;
            let fl: u64;
            // SAFETY: pure register arithmetic; pushfq/pop use the stack within the asm block.
            unsafe {
                match op {
                    0 => asm!("add {r}, {b}", "pushfq", "pop {f}", r = inout(reg) r, b = in(reg) b, f = out(reg) fl),
                    1 => asm!("sub {r}, {b}", "pushfq", "pop {f}", r = inout(reg) r, b = in(reg) b, f = out(reg) fl),
                    2 => asm!("bt {c}, 0", "adc {r}, {b}", "pushfq", "pop {f}", r = inout(reg) r, b = in(reg) b, c = in(reg) cin, f = out(reg) fl),
                    _ => asm!("bt {c}, 0", "sbb {r}, {b}", "pushfq", "pop {f}", r = inout(reg) r, b = in(reg) b, c = in(reg) cin, f = out(reg) fl),
                }
            }
            (r, fl & fl::STATUS)
        }
        fn native32(op: u32, a: u64, b: u64) -> (u64, u64) {
            let mut r = a as u32;
            let fl: u64;
            // SAFETY: as above.
            unsafe {
                match op {
                    0 => asm!("add {r:e}, {b:e}", "pushfq", "pop {f}", r = inout(reg) r, b = in(reg) b as u32, f = out(reg) fl),
                    _ => asm!("sub {r:e}, {b:e}", "pushfq", "pop {f}", r = inout(reg) r, b = in(reg) b as u32, f = out(reg) fl),
                }
            }
            (u64::from(r), fl & fl::STATUS)
        }
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x & 3 {
                0 => x,
                1 => x >> 60,
                2 => (1u64 << 63).wrapping_sub(x & 3),
                _ => u64::MAX - (x & 7),
            }
        };
        for _ in 0..5000 {
            let (a, b, c) = (next(), next(), next() & 1);
            for (op, kind) in [(0, Kind::Add), (1, Kind::Sub), (2, Kind::Adc), (3, Kind::Sbb)] {
                let (r, f) = native(op, a, b, c);
                assert_eq!(compute(kind.word(64), a, b, r, c), Some(f), "{kind:?} {a:#x} {b:#x} {c}");
            }
            for (op, kind) in [(0, Kind::Add), (1, Kind::Sub)] {
                let (r, f) = native32(op, a, b);
                assert_eq!(compute(kind.word(32), a, b, r, 0), Some(f), "{kind:?}/32 {a:#x} {b:#x}");
            }
        }
    }
}
