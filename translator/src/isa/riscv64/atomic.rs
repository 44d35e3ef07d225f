//! Atomic guest read-modify-writes: the one sequence every LOCK-prefixed instruction, XCHG with
//! memory, CMPXCHG and CMPXCHG8B lower to ([`Lower::atomic_rmw`]), and the lock table that
//! CMPXCHG16B (without Zacas) and split locked accesses take.
//!
//! An x86 locked operation is atomic and a full barrier. On riscv64 ([`Lower::atomic_rmw`]):
//! - A naturally aligned 32/64-bit operand whose operation RV64A has (add, sub as add of the
//!   negation, and, or, xor, swap): one `amo<op>.{w,d}.aqrl`, the TSO → RVWMO mapping of atomics
//!   (mod.rs). The old value it returns is what the flags are computed from.
//! - Other naturally aligned 32/64-bit operations (adc, sbb, neg, not, cmpxchg): a constrained
//!   LR/SC loop `lr.{w,d}.aqrl old; <new from old>; sc.{w,d}.rl; bnez retry` (at most 16 base
//!   integer instructions between and around them, so the ISA guarantees forward progress).
//! - 8/16-bit operands, and 32-bit ones that are misaligned but inside one aligned doubleword:
//!   the same loop on the aligned doubleword containing the operand (`lr.d`/`sc.d`), the operand
//!   shifted out, the new value merged back under a mask. (A doubleword rather than the 32-bit
//!   word the operand may also fit: one path serves every width and alignment that fits.)
//! - An operand that crosses an aligned doubleword (a split lock on x86, and a trap for a RISC-V
//!   AMO or LR/SC): both doublewords are first probed for write access with
//!   `amoor.d zero,zero` (atomic, changes nothing, faults like the access would, so a fault is
//!   taken at the guest instruction before any lock is held), then the global [`SPLIT_LOCK`] is
//!   taken (`amoswap.w.aq` spin), the operation is done with plain accesses and the lock is
//!   released (`amoswap.w.rl`), between two `fence rw,rw`. Guarantee: atomic against every other
//!   split locked access; not against an aligned locked access to overlapping bytes made at the
//!   same moment (that would need a lock on every atomic; x86 itself makes split locks a
//!   bus-locking slow path that Linux can refuse).
//!
//! The old value comes back zero-extended to the operand width; callers compute the flags and
//! register results from it (the value the atomic operation actually replaced).
//!
//! CMPXCHG16B: with Zacas, one `amocas.q.aqrl`. Without, the 16 bytes are compared and replaced
//! with plain accesses while holding one of [`CAS_LOCKS`], chosen by the address (16-byte
//! aligned operands overlap only when equal, so two CMPXCHG16B on the same location always take
//! the same lock): atomic against every other CMPXCHG16B, not against a concurrent 8-byte
//! locked operation on one of its halves (as in box64). The operand is probed for write access
//! before the lock is taken, so a fault never leaves a lock held.
//!
//! Faults: these sequences belong to their guest instruction in the fault map like any other
//! code, and write no guest register before the last access that can fault, so a locked access
//! to a bad address faults at the guest instruction with the guest state before it.

use core::sync::atomic::AtomicU32;

use iced_x86::{Code, Instruction};

use super::asm::{Asm, Label};
use super::encode::{Op, Reg, FENCE_R, FENCE_W};
use super::lower::{Addr, FState, LResult, Lower};
use super::regs::{self, CTX};
use crate::cpu::{flags::ZF, Gpr, OFF_RFLAGS};
use crate::ctx::exit;

/// Whether `i` is CMPXCHG16B.
pub fn is_cx16(i: &Instruction) -> bool {
    i.code() == Code::Cmpxchg16b_m128
}

/// A lock word on its own cache line.
#[repr(align(64))]
#[derive(Debug)]
pub struct LockWord(pub AtomicU32);

/// Taken by every locked access that crosses an aligned doubleword.
pub static SPLIT_LOCK: LockWord = LockWord(AtomicU32::new(0));

/// Number of [`CAS_LOCKS`] (a power of two).
pub const CAS_LOCK_COUNT: usize = 64;

/// CMPXCHG16B locks without Zacas, indexed by `(address >> 4) % CAS_LOCK_COUNT`.
pub static CAS_LOCKS: [LockWord; CAS_LOCK_COUNT] = [const { LockWord(AtomicU32::new(0)) }; CAS_LOCK_COUNT];

/// How an atomic read-modify-write computes the new value from the old one. Register operands
/// hold the operand in their low bits (higher bits do not matter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rmw {
    /// old + r
    Add(Reg),
    /// old + imm (INC, DEC)
    AddImm(i32),
    /// old - r
    Sub(Reg),
    /// old & r
    And(Reg),
    /// old | r
    Or(Reg),
    /// old ^ r
    Xor(Reg),
    /// old & !r (BTR)
    AndNot(Reg),
    /// old + r + carry (ADC; the carry is 0 or 1)
    Adc(Reg, Reg),
    /// old - r - borrow (SBB)
    Sbb(Reg, Reg),
    /// -old
    Neg,
    /// !old
    Not,
    /// r (XCHG)
    Swap(Reg),
    /// `new` if old equals `expected` on the operand width, else no store at all (CMPXCHG).
    Cas {
        /// Compared with the old value.
        expected: Reg,
        /// Stored on a match.
        new: Reg,
    },
}

impl Rmw {
    /// The single RV64A AMO doing this operation, and whether its source is the negation.
    fn amo(self, bits: u32) -> Option<(Op, bool)> {
        let w = bits == 32;
        Some(match self {
            Rmw::Add(_) | Rmw::AddImm(_) => (if w { Op::AmoaddW } else { Op::AmoaddD }, false),
            Rmw::Sub(_) => (if w { Op::AmoaddW } else { Op::AmoaddD }, true),
            Rmw::And(_) => (if w { Op::AmoandW } else { Op::AmoandD }, false),
            Rmw::Or(_) => (if w { Op::AmoorW } else { Op::AmoorD }, false),
            Rmw::Xor(_) => (if w { Op::AmoxorW } else { Op::AmoxorD }, false),
            Rmw::Swap(_) => (if w { Op::AmoswapW } else { Op::AmoswapD }, false),
            _ => return None,
        })
    }

    /// Emit `new = f(old)` in base integer instructions only (it runs between LR and SC), at
    /// most four; a CAS mismatch branches to `fail` (forward) without computing `new`.
    fn step(self, a: &mut Asm, old: Reg, new: Reg, bits: u32, fail: Label) {
        match self {
            Rmw::Add(r) => a.r(Op::Add, new, old, r),
            Rmw::AddImm(v) => a.addi(new, old, v),
            Rmw::Sub(r) => a.r(Op::Sub, new, old, r),
            Rmw::And(r) => a.r(Op::And, new, old, r),
            Rmw::Or(r) => a.r(Op::Or, new, old, r),
            Rmw::Xor(r) => a.r(Op::Xor, new, old, r),
            Rmw::AndNot(r) => {
                a.i(Op::Xori, new, r, -1);
                a.r(Op::And, new, old, new);
            }
            Rmw::Adc(r, c) => {
                a.r(Op::Add, new, old, r);
                a.r(Op::Add, new, new, c);
            }
            Rmw::Sbb(r, c) => {
                a.r(Op::Sub, new, old, r);
                a.r(Op::Sub, new, new, c);
            }
            Rmw::Neg => a.r(Op::Sub, new, Reg::ZERO, old),
            Rmw::Not => a.i(Op::Xori, new, old, -1),
            Rmw::Swap(r) => a.mv(new, r),
            Rmw::Cas { expected, new: n } => {
                // Compare on the operand width whatever the extension of either side.
                if bits == 64 {
                    a.b(Op::Bne, old, expected, fail);
                } else {
                    a.r(Op::Xor, new, old, expected);
                    a.slli(new, new, 64 - bits);
                    a.b(Op::Bne, new, Reg::ZERO, fail);
                }
                a.mv(new, n);
            }
        }
    }
}

impl Lower<'_> {
    /// Atomically apply `op` to the `bits`-wide guest operand at the address in `p` (a scratch
    /// register, clobbered), as described in the module doc. Returns a scratch register holding
    /// the old value, zero-extended. Uses `t0` and up to four more scratch registers.
    pub fn atomic_rmw(&mut self, p: Reg, bits: u32, op: Rmw) -> Reg {
        let t0 = regs::T0;
        let mark = self.temps_mark();
        let old = self.tmp();
        let new = self.tmp();
        let aux = self.tmp();
        let bytes = bits as i32 / 8;
        let (done, slow) = (self.a.label(), self.a.label());
        if bits >= 32 {
            let unaligned = self.a.label();
            self.a.i(Op::Andi, t0, p, bytes - 1);
            self.a.b(Op::Bne, t0, Reg::ZERO, if bits == 64 { slow } else { unaligned });
            self.aligned_rmw(p, bits, op, old, new, aux);
            self.a.j(done);
            self.a.bind(unaligned);
        }
        if bits < 64 {
            let m = self.tmp();
            self.in_doubleword_rmw(p, bits, op, [old, new, aux, m], slow);
            if bits > 8 {
                self.a.j(done);
            }
        }
        self.a.bind(slow);
        if bits > 8 {
            self.split_rmw(p, bits, op, old, new, aux);
        }
        self.a.bind(done);
        // Only `old` outlives the sequence: the others go back to the pool, so the caller can
        // still write a high-byte register or compute flags (e.g. `lock xadd [m], bh`).
        self.compact(mark, old)
    }

    /// Naturally aligned 32/64-bit operand: one AMO, or an LR/SC loop.
    fn aligned_rmw(&mut self, p: Reg, bits: u32, op: Rmw, old: Reg, new: Reg, ok: Reg) {
        let (lr, sc) = if bits == 32 { (Op::LrW, Op::ScW) } else { (Op::LrD, Op::ScD) };
        if let Some((amo, neg)) = op.amo(bits) {
            let src = match op {
                Rmw::Add(r) | Rmw::Sub(r) | Rmw::And(r) | Rmw::Or(r) | Rmw::Xor(r) | Rmw::Swap(r) => r,
                Rmw::AddImm(v) => {
                    self.a.li(new, v as i64 as u64);
                    new
                }
                _ => Reg::ZERO,
            };
            let src = if neg {
                self.a.r(Op::Sub, new, Reg::ZERO, src);
                new
            } else {
                src
            };
            self.a.amo(amo, true, true, old, p, src);
        } else {
            let (retry, fail) = (self.a.label(), self.a.label());
            self.a.bind(retry);
            self.a.amo(lr, true, true, old, p, Reg::ZERO);
            op.step(&mut self.a, old, new, bits, fail);
            self.a.amo(sc, false, true, ok, p, new);
            self.a.b(Op::Bne, ok, Reg::ZERO, retry);
            self.a.bind(fail);
        }
        if bits == 32 {
            // lr.w and amo*.w sign-extend.
            self.a.zext(old, old, 32);
        }
    }

    /// An operand inside one aligned doubleword (else branch to `slow`): LR/SC on that
    /// doubleword, the operand under a shifted mask. Registers: old, new, the loaded doubleword,
    /// the mask; `t0` holds the shift.
    fn in_doubleword_rmw(&mut self, p: Reg, bits: u32, op: Rmw, r: [Reg; 4], slow: Label) {
        let [old, new, dw, m] = r;
        let t0 = regs::T0;
        self.a.i(Op::Andi, t0, p, 7);
        if bits > 8 {
            // Crosses into the next doubleword when offset + size > 8.
            self.a.i(Op::Sltiu, dw, t0, 9 - bits as i32 / 8);
            self.a.b(Op::Beq, dw, Reg::ZERO, slow);
        }
        self.a.slli(t0, t0, 3);
        self.a.i(Op::Andi, p, p, -8);
        self.a.li(m, (1u64 << bits) - 1);
        self.a.r(Op::Sll, m, m, t0);
        let (retry, fail) = (self.a.label(), self.a.label());
        self.a.bind(retry);
        self.a.amo(Op::LrD, true, true, dw, p, Reg::ZERO);
        self.a.r(Op::And, old, dw, m);
        self.a.r(Op::Srl, old, old, t0);
        op.step(&mut self.a, old, new, bits, fail);
        // new = dw ^ ((new << sh ^ dw) & m): the other bytes of the doubleword unchanged.
        self.a.r(Op::Sll, new, new, t0);
        self.a.r(Op::Xor, new, new, dw);
        self.a.r(Op::And, new, new, m);
        self.a.r(Op::Xor, new, new, dw);
        self.a.amo(Op::ScD, false, true, new, p, new);
        self.a.b(Op::Bne, new, Reg::ZERO, retry);
        self.a.bind(fail);
    }

    /// An operand crossing an aligned doubleword: probe, take [`SPLIT_LOCK`], plain accesses.
    fn split_rmw(&mut self, p: Reg, bits: u32, op: Rmw, old: Reg, new: Reg, lk: Reg) {
        let bytes = bits as i32 / 8;
        self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
        self.a.i(Op::Andi, lk, p, -8);
        self.a.amo(Op::AmoorD, false, false, Reg::ZERO, lk, Reg::ZERO);
        self.a.addi(lk, p, bytes - 1);
        self.a.i(Op::Andi, lk, lk, -8);
        self.a.amo(Op::AmoorD, false, false, Reg::ZERO, lk, Reg::ZERO);
        self.a.li(lk, SPLIT_LOCK.0.as_ptr() as u64);
        self.spin_lock(lk);
        let at = Addr { base: p, off: 0 };
        self.load(old, at, bits);
        let fail = self.a.label();
        op.step(&mut self.a, old, new, bits, fail);
        self.store(new, at, bits);
        self.a.bind(fail);
        self.unlock(lk);
        self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
    }

    /// Take the spin lock whose word is at `lk` (`t0` is clobbered): `amoswap.w.aq` of 1 until
    /// it returns 0.
    fn spin_lock(&mut self, lk: Reg) {
        let t0 = regs::T0;
        let spin = self.a.label();
        self.a.bind(spin);
        self.a.addi(t0, Reg::ZERO, 1);
        self.a.amo(Op::AmoswapW, true, false, t0, lk, t0);
        self.a.b(Op::Bne, t0, Reg::ZERO, spin);
    }

    /// Release the lock at `lk`: `amoswap.w.rl zero, zero`.
    fn unlock(&mut self, lk: Reg) {
        self.a.amo(Op::AmoswapW, false, true, Reg::ZERO, lk, Reg::ZERO);
    }

    /// Lower CMPXCHG16B m128 (Intel SDM vol. 2: compare RDX:RAX with m128; if equal, set ZF and
    /// store RCX:RBX, else clear ZF and load m128 into RDX:RAX; other flags unchanged; a
    /// misaligned operand raises #GP). Always atomic, locked or not (see the module doc).
    pub fn lower_cx16(&mut self, i: &Instruction) -> LResult {
        // The compare only changes ZF: start from exact flags.
        self.materialize();
        let at = self.addr(i)?;
        let base = self.addr_reg(at);
        // The address in s9: the even register pairs amocas.q needs are t1:t2 and t5:t6.
        let p = regs::S9;
        self.a.mv(p, base);
        self.free_temps();
        let gp = self.exit_label(exit::PRIVILEGED, i.ip());
        self.a.i(Op::Andi, regs::T0, p, 15);
        self.a.b_far(Op::Bne, regs::T0, Reg::ZERO, gp);
        // Reserve every scratch register; the ones used are named below.
        let all: Vec<Reg> = (0..6).map(|_| self.tmp()).collect();
        debug_assert!(all.contains(&Reg::T1) && all.contains(&Reg::T6));
        let (lo, hi, n_lo, n_hi, t) = (Reg::T1, Reg::T2, Reg::T5, Reg::T6, Reg::T4);
        let (rax, rdx, rbx, rcx) =
            (regs::guest(Gpr::Rax), regs::guest(Gpr::Rdx), regs::guest(Gpr::Rbx), regs::guest(Gpr::Rcx));
        if self.a.ext.zacas {
            // amocas.q rd=t1:t2 (expected in, old out), rs2=t5:t6 (new).
            self.a.mv(lo, rax);
            self.a.mv(hi, rdx);
            self.a.mv(n_lo, rbx);
            self.a.mv(n_hi, rcx);
            self.a.amo(Op::AmocasQ, true, true, lo, p, n_lo);
        } else {
            // Probe for write access before taking the lock (a fault must not leave it held).
            self.a.amo(Op::AmoorD, false, false, Reg::ZERO, p, Reg::ZERO);
            self.a.li(n_lo, CAS_LOCKS.as_ptr() as u64);
            self.a.srli(t, p, 4);
            self.a.i(Op::Andi, t, t, CAS_LOCK_COUNT as i32 - 1);
            self.a.slli(t, t, core::mem::size_of::<LockWord>().trailing_zeros());
            self.a.r(Op::Add, n_lo, n_lo, t);
            self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
            self.spin_lock(n_lo);
            self.a.ld(lo, p, 0);
            self.a.ld(hi, p, 8);
            self.a.r(Op::Xor, t, lo, rax);
            self.a.r(Op::Xor, n_hi, hi, rdx);
            self.a.r(Op::Or, t, t, n_hi);
            let differ = self.a.label();
            self.a.b(Op::Bne, t, Reg::ZERO, differ);
            self.a.sd(rbx, p, 0);
            self.a.sd(rcx, p, 8);
            self.a.bind(differ);
            self.unlock(n_lo);
            self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
        }
        // ZF from the old value; on a mismatch RDX:RAX receive it (on a match it equals them).
        self.a.r(Op::Xor, t, lo, rax);
        self.a.r(Op::Xor, n_hi, hi, rdx);
        self.a.r(Op::Or, t, t, n_hi);
        self.a.i(Op::Sltiu, t, t, 1);
        self.a.slli(t, t, ZF.trailing_zeros());
        self.a.mv(rax, lo);
        self.a.mv(rdx, hi);
        self.a.ld(n_hi, CTX, OFF_RFLAGS as i32);
        self.a.i(Op::Andi, n_hi, n_hi, !(ZF as i32));
        self.a.r(Op::Or, n_hi, n_hi, t);
        self.a.sd(n_hi, CTX, OFF_RFLAGS as i32);
        // Flags stay exact in ctx.cpu.rflags; the kind word already says EXACT (materialize).
        self.fs = FState::Exact;
        Ok(())
    }
}
