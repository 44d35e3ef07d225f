//! The native call of a trap stub (see [`crate::bridge`]) on riscv64: the block the dispatcher
//! places in the cache for a stub executes the argument moves of the function's
//! [`abi::CallPlan`] and jumps to the fixed routine `ldnc_rv_native` (in `mod.rs`'s trampoline,
//! outside the cache), which calls the host function, moves the result back through
//! [`rv_native_result`] and performs the x86 `ret` (see "Native calls" in [`crate::dispatch`]).
//!
//! The block, with `sp` the host stack and the guest in the pinned registers (`regs.rs`):
//!
//! ```text
//!   sd  <guest>, gpr[n](s1)      each guest register a move cannot take in place is stored
//!   [long double arguments: a0 = ctx, a1 = f, call rv_native_ldouble_args → ctx.scratch]
//!   mv  s9, sp                   the frame: host stack arguments at sp, `f` at -16(s9), the
//!   addi sp, sp, -(host_stack + 16)   result's [`ResultKind`] at -8(s9)
//!   sd  f, -16(s9) ; li t1, kind ; sd t1, -8(s9)
//!   moves: in place (`addiw a0, a0, 0` for an `int` in RDI), or loaded from ctx.cpu (stored
//!          guest registers, XMM low lanes: `flw`/`fld`, which NaN-box a float), from the guest
//!          stack (s3 + offset) or from the converted long doubles, into a0-a7, fa0-fa7 or the
//!          host stack
//!   li  t1, host ; ld t2, OFF_NATIVE_FN(s1) ; jr t2
//! ```
//!
//! Loading from memory extracts and extends in one instruction (`lw` for `Sext(32)`, `lbu` for
//! `Zext(8)`, at the byte offset of a struct part), and makes the moves order-independent: a0-a7
//! are guest registers too, so a move into one must not destroy another move's source.
//! The callee preserves s0-s11, which hold the guest's callee-saved registers, the lazy flags and
//! the context; the routine marks the flags exact afterwards (they are undefined after a call).

use super::asm::{Asm, Ext};
use super::encode::{Op, Reg};
use super::regs::{self, CTX};
use crate::bridge::NativeFn;
use crate::cpu::{Gpr, OFF_GPR, OFF_XMM};
use crate::ctx::{ThreadCtx, OFF_BACKEND, OFF_SCRATCH};
use crate::isa::TranslateError;
use abi::{Ext as X, GuestLoc, HostLoc, Loc, Move};

/// `ctx.backend` slot holding the address of `ldnc_rv_native`.
pub const OFF_NATIVE_FN: i32 = OFF_BACKEND as i32 + 88;
/// `ctx.backend` slot holding [`rv_native_ldouble_args`].
pub const OFF_LDARG_FN: i32 = OFF_BACKEND as i32 + 96;
/// Most `long double` arguments one call may have (two `ctx.scratch` words each).
pub const MAX_LDOUBLE_ARGS: usize = 8;

/// How the routine moves a result back: the common shapes in line, the rest through
/// [`rv_native_result`]. The value is the word the block leaves at -8(s9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ResultKind {
    /// Anything else: the Rust helper applies the plan's result moves.
    General = 0,
    /// No result.
    Void = 1,
    /// a0 to RAX unchanged (pointers, 64-bit integers).
    Int64 = 2,
    /// a0's low 32 bits to RAX, zero-extended (as an x86 32-bit result).
    Int32 = 3,
    /// fa0 to XMM0's low 64 bits, the rest of XMM0 zero.
    F64 = 4,
    /// fa0's single to XMM0's low 32 bits, the rest of XMM0 zero.
    F32 = 5,
}

/// The [`ResultKind`] of a plan's result moves.
pub fn result_kind(ret: &[Move]) -> ResultKind {
    let to_rax = |m: &Move| m.from == Loc::Host(HostLoc::X(10)) && m.to == Loc::Guest(GuestLoc::Gpr { reg: 0, byte: 0 });
    let to_xmm0 = |m: &Move| m.from == Loc::Host(HostLoc::F(10)) && m.to == Loc::Guest(GuestLoc::Xmm { reg: 0, byte: 0 });
    match ret {
        [] => ResultKind::Void,
        [m] if to_rax(m) && m.ext == X::Copy64 => ResultKind::Int64,
        [m] if to_rax(m) && m.ext == X::Zext(32) => ResultKind::Int32,
        [m] if to_xmm0(m) && m.ext == X::F64 => ResultKind::F64,
        [m] if to_xmm0(m) && m.ext == X::F32 => ResultKind::F32,
        _ => ResultKind::General,
    }
}

/// Translate the stub block of `f` for host address `base` (see the module docs).
pub fn translate_native(f: &NativeFn, base: u64, ext: Ext) -> Result<Vec<u8>, TranslateError> {
    let _ = base;
    let mut a = Asm::new(ext);
    emit_native(&mut a, f)?;
    a.finish();
    if a.overflow {
        return Err(TranslateError::TooLarge);
    }
    Ok(a.bytes())
}

/// A plan move as the block executes it.
#[derive(Clone, Copy, Debug)]
struct ArgMove {
    from: GuestLoc,
    to: HostLoc,
    ext: X,
}

fn arg_moves(f: &NativeFn) -> Result<Vec<ArgMove>, TranslateError> {
    f.plan
        .args
        .iter()
        .map(|m: &Move| match (m.from, m.to, m.ext) {
            (_, _, X::F128ToF80) | (Loc::Guest(GuestLoc::St0), _, _) => Err(TranslateError::TooLarge),
            (Loc::Guest(from), Loc::Host(to), ext) => Ok(ArgMove { from, to, ext }),
            _ => Err(TranslateError::TooLarge),
        })
        .collect()
}

/// Guest stack offsets of the `long double` arguments, in the order their converted values sit
/// in `ctx.scratch` (two words each).
pub fn ldouble_sources(plan: &abi::CallPlan) -> Vec<i32> {
    plan.args
        .iter()
        .filter_map(|m| match (m.from, m.ext) {
            (Loc::Guest(GuestLoc::Stack(off)), X::F80ToF128Lo) => Some(off),
            _ => None,
        })
        .collect()
}

/// Whether guest register `r` is read by exactly this move and the move can extend it in place
/// (it goes, whole, to the host register that already holds it).
fn in_place(m: &ArgMove, moves: &[ArgMove]) -> bool {
    let GuestLoc::Gpr { reg, byte: 0 } = m.from else { return false };
    let HostLoc::X(h) = m.to else { return false };
    let readers = moves.iter().filter(|o| matches!(o.from, GuestLoc::Gpr { reg: r, .. } if r == reg)).count();
    let host = Gpr::from_index(usize::from(reg)).map(regs::guest);
    readers == 1 && host == Some(Reg(h)) && matches!(m.ext, X::Copy64 | X::Bits(_) | X::Sext(_) | X::Zext(_))
}

/// Emit the stub block of `f` (see the module docs).
fn emit_native(a: &mut Asm, f: &NativeFn) -> Result<(), TranslateError> {
    let moves = arg_moves(f)?;
    let lds = ldouble_sources(&f.plan);
    if lds.len() > MAX_LDOUBLE_ARGS {
        return Err(TranslateError::TooLarge);
    }
    let helper = !lds.is_empty();
    // Guest registers read from memory: every caller-saved one around the helper call, else
    // those a move cannot take in place.
    let mut store: Vec<u8> = Vec::new();
    if helper {
        a.sd(regs::guest(Gpr::Rsp), CTX, (OFF_GPR + 8 * Gpr::Rsp as usize) as i32);
        store.extend(regs::CALLER_SAVED_GUESTS.iter().map(|&g| g as u8));
    }
    for m in &moves {
        if let GuestLoc::Gpr { reg, .. } = m.from {
            if (helper || !in_place(m, &moves)) && !store.contains(&reg) {
                store.push(reg);
            }
        }
    }
    for &r in &store {
        let g = Gpr::from_index(usize::from(r)).ok_or(TranslateError::TooLarge)?;
        a.sd(regs::guest(g), CTX, (OFF_GPR + 8 * usize::from(r)) as i32);
    }
    let fptr = f as *const NativeFn as u64;
    if helper {
        a.mv(Reg::A0, CTX);
        a.li(Reg::A1, fptr);
        a.ld(Reg::RA, CTX, OFF_LDARG_FN);
        a.i(Op::Jalr, Reg::RA, Reg::RA, 0);
    }
    // The frame: host stack arguments from sp up, `f` for the result helper at -16(s9).
    let frame = i64::from(f.plan.host_stack.next_multiple_of(16)) + 16;
    a.mv(regs::S9, Reg::SP);
    a.add_imm(Reg::SP, Reg::SP, -frame, regs::T2);
    a.li(regs::T1, fptr);
    a.sd(regs::T1, regs::S9, -16);
    a.li(regs::T1, result_kind(&f.plan.ret) as u64);
    a.sd(regs::T1, regs::S9, -8);
    for m in &moves {
        emit_move(a, m, &moves, &lds, helper)?;
    }
    a.li(regs::T1, f.host);
    a.ld(regs::T2, CTX, OFF_NATIVE_FN);
    a.i(Op::Jalr, Reg::ZERO, regs::T2, 0);
    Ok(())
}

/// Where a move's source lives in memory: base register and offset.
fn source_addr(m: &ArgMove, lds: &[i32]) -> Result<(Reg, i64), TranslateError> {
    Ok(match (m.from, m.ext) {
        (GuestLoc::Stack(off), X::F80ToF128Lo | X::F80ToF128Hi) => {
            let k = lds.iter().position(|&o| o == off).ok_or(TranslateError::TooLarge)?;
            let hi = i64::from(m.ext == X::F80ToF128Hi);
            (CTX, (OFF_SCRATCH + 16 * k) as i64 + 8 * hi)
        }
        (GuestLoc::Stack(off), _) => (regs::guest(Gpr::Rsp), i64::from(off)),
        (GuestLoc::Gpr { reg, byte }, _) => (CTX, (OFF_GPR + 8 * usize::from(reg) + usize::from(byte)) as i64),
        (GuestLoc::Xmm { reg, byte }, _) => (CTX, (OFF_XMM + 16 * usize::from(reg) + usize::from(byte)) as i64),
        (GuestLoc::St0, _) => return Err(TranslateError::TooLarge),
    })
}

/// The integer load that extracts and extends a value for `ext`.
fn int_load(ext: X) -> Op {
    match ext {
        X::Sext(8) => Op::Lb,
        X::Sext(16) => Op::Lh,
        X::Sext(32) => Op::Lw,
        X::Zext(8) | X::Bits(8) => Op::Lbu,
        X::Zext(16) | X::Bits(16) => Op::Lhu,
        X::Zext(32) | X::Bits(32) | X::F32 => Op::Lwu,
        _ => Op::Ld,
    }
}

/// `op rd, off(base)` for any offset (through t2 when it does not fit 12 bits).
fn load_at(a: &mut Asm, op: Op, rd: Reg, base: Reg, off: i64) {
    if super::encode::fits_i12(off) {
        a.i(op, rd, base, off as i32);
    } else {
        a.add_imm(regs::T2, base, off, regs::T2);
        a.i(op, rd, regs::T2, 0);
    }
}

/// Put the value of `m` into integer register `rd`.
fn int_value(a: &mut Asm, m: &ArgMove, rd: Reg, lds: &[i32]) -> Result<(), TranslateError> {
    if m.ext == X::Addr {
        let GuestLoc::Stack(off) = m.from else { return Err(TranslateError::TooLarge) };
        a.add_imm(rd, regs::guest(Gpr::Rsp), i64::from(off), regs::T2);
        return Ok(());
    }
    let (base, off) = source_addr(m, lds)?;
    load_at(a, int_load(m.ext), rd, base, off);
    Ok(())
}

fn emit_move(a: &mut Asm, m: &ArgMove, all: &[ArgMove], lds: &[i32], helper: bool) -> Result<(), TranslateError> {
    match m.to {
        HostLoc::X(h) if !helper && in_place(m, all) => {
            let r = Reg(h);
            match m.ext {
                X::Sext(n) => a.sext(r, r, u32::from(n)),
                X::Zext(n) => a.zext(r, r, u32::from(n)),
                _ => {}
            }
        }
        HostLoc::X(h) => int_value(a, m, Reg(h), lds)?,
        HostLoc::F(n) => {
            let op = match m.ext {
                X::F32 => Op::Flw,
                X::F64 | X::Copy64 => Op::Fld,
                _ => return Err(TranslateError::TooLarge),
            };
            let (base, off) = source_addr(m, lds)?;
            load_at(a, op, Reg(n), base, off);
        }
        HostLoc::Stack(off) => {
            int_value(a, m, regs::T1, lds)?;
            let off = i64::from(off);
            if super::encode::fits_i12(off) {
                a.sd(regs::T1, Reg::SP, off as i32);
            } else {
                a.add_imm(regs::T2, Reg::SP, off, regs::T2);
                a.sd(regs::T1, regs::T2, 0);
            }
        }
    }
    Ok(())
}

/// Convert the `long double` arguments of `f` (x87 80-bit on the guest stack at the guest RSP
/// stored in `ctx.cpu`) to binary128 words in `ctx.scratch`, in [`ldouble_sources`] order.
/// Called by stub blocks.
///
/// # Safety
/// `ctx` must be the live context of the calling thread and `f` a live `NativeFn`; the guest
/// stack must hold the arguments (the guest called the function).
pub unsafe extern "C" fn rv_native_ldouble_args(ctx: *mut ThreadCtx, f: *const NativeFn) {
    // SAFETY: the caller passes its own live context and a live NativeFn.
    let (ctx, f) = unsafe { (&mut *ctx, &*f) };
    let rsp = ctx.cpu.get(Gpr::Rsp);
    for (k, off) in ldouble_sources(&f.plan).into_iter().enumerate().take(MAX_LDOUBLE_ARGS) {
        let p = rsp.wrapping_add(off as i64 as u64) as *const abi::ldouble::F80;
        // SAFETY: the guest placed the argument there (the caller's contract); it may be
        // unaligned for a hostile guest, hence the unaligned read.
        let v = abi::ldouble::f80_to_f128(unsafe { p.read_unaligned() });
        ctx.scratch[2 * k] = v as u64;
        ctx.scratch[2 * k + 1] = (v >> 64) as u64;
    }
}

/// Move the result of a native call into the guest state: `ctx.scratch[0..4]` hold a0, a1 and
/// the bits of fa0, fa1 as the call left them (stored by `ldnc_rv_native`).
///
/// # Safety
/// `ctx` must be the live context of the calling thread and `f` a live `NativeFn`.
pub unsafe extern "C" fn rv_native_result(ctx: *mut ThreadCtx, f: *const NativeFn) {
    // SAFETY: the caller passes its own live context and a live NativeFn.
    let (ctx, f) = unsafe { (&mut *ctx, &*f) };
    let s = ctx.scratch;
    crate::bridge::apply_result(&mut ctx.cpu, &f.plan, [s[0], s[1]], [s[2], s[3]]);
}

#[cfg(test)]
#[path = "native_tests.rs"]
mod tests;
