//! Moves (mov/movzx/movsx/lea/xchg/bswap/setcc/cmovcc/cbw…), the stack (push/pop/leave),
//! control flow (jmp/jcc/call/ret/loop/jrcxz and the exits: syscall, cpuid, int3, hlt, ud2),
//! string instructions with their rep forms, atomics (cmpxchg, xadd), flag instructions
//! (cld/std/clc/stc/cmc, lahf/sahf, pushf/popf) and the no-ops.

use iced_x86::{Code, Instruction, Mnemonic as M, OpKind, Register};

use super::atomic::Rmw;
use super::cond::Flag;
use super::encode::{Op, Reg, FENCE_R, FENCE_W};
use super::flags::Kind;
use super::lower::{op_bits, Addr, FState, LResult, Loc, Lower, Unsupp};
use super::regs::{self, CTX};
use crate::cpu::{flags as fl, Gpr, OFF_RFLAGS};
use crate::ctx::exit;

fn rsp() -> Reg {
    regs::guest(Gpr::Rsp)
}

impl Lower<'_> {
    /// The move family.
    pub fn lower_move(&mut self, i: &Instruction) -> LResult {
        match i.mnemonic() {
            M::Mov => self.mov(i),
            M::Movzx => {
                let (db, sb) = (op_bits(i, 0), op_bits(i, 1));
                let src = self.loc(i, 1)?;
                let dst = self.loc(i, 0)?;
                // Into a 32/64-bit register: the zero-extended value is the whole new register.
                if let (Loc::Reg(g, false), true) = (dst, db >= 32) {
                    let d = regs::guest(g);
                    match src {
                        Loc::Mem(at) => self.load(d, at, sb),
                        _ => {
                            let v = self.read(src, sb);
                            self.a.zext(d, v, sb);
                        }
                    }
                    return Ok(());
                }
                let v = self.read_zext(src, sb);
                self.write(dst, db, v)
            }
            M::Movsx | M::Movsxd => {
                let (db, sb) = (op_bits(i, 0), op_bits(i, 1));
                let src = self.loc(i, 1)?;
                let v = self.read_sext(src, sb);
                let dst = self.loc(i, 0)?;
                self.write(dst, db, v)
            }
            M::Lea => {
                let db = op_bits(i, 0);
                let at = self.addr(i)?;
                let dst = self.loc(i, 0)?;
                let d = self.dest_reg(dst, db);
                self.a.addi(d, at.base, at.off);
                self.write(dst, db, d)
            }
            M::Cbw | M::Cwde | M::Cdqe => {
                let bits = match i.mnemonic() {
                    M::Cbw => 16,
                    M::Cwde => 32,
                    _ => 64,
                };
                let rax = Loc::Reg(Gpr::Rax, false);
                let v = self.read_sext(rax, bits / 2);
                self.write(rax, bits, v)
            }
            M::Cwd | M::Cdq | M::Cqo => {
                let bits = match i.mnemonic() {
                    M::Cwd => 16,
                    M::Cdq => 32,
                    _ => 64,
                };
                let v = self.read_sext(Loc::Reg(Gpr::Rax, false), bits);
                let t = self.tmp();
                self.a.srai(t, v, 63);
                self.write(Loc::Reg(Gpr::Rdx, false), bits, t)
            }
            M::Xchg => self.xchg(i),
            M::Bswap => {
                let bits = op_bits(i, 0);
                let dst = self.loc(i, 0)?;
                let v = self.read(dst, bits);
                let r = self.tmp();
                self.bswap64(r, v);
                if bits == 32 {
                    self.a.srli(r, r, 32);
                } else if bits == 16 {
                    // Undefined by the SDM; hardware zeroes the register's low word.
                    self.a.li(r, 0);
                }
                self.write(dst, bits, r)
            }
            m if is_setcc(m) => {
                let v = self.cond(i.condition_code());
                let s = regs::S9;
                self.a.mv(s, v);
                self.free_temps();
                let dst = self.loc(i, 0)?;
                self.write(dst, 8, s)
            }
            _ => self.cmov(i),
        }
    }

    fn mov(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let dst = self.loc(i, 0)?;
        match (dst, i.op_kind(1)) {
            (Loc::Reg(g, false), OpKind::Memory) if bits >= 32 => {
                let at = self.addr(i)?;
                self.load(regs::guest(g), at, bits);
                Ok(())
            }
            (Loc::Reg(g, false), k) if bits >= 32 && k != OpKind::Register && k != OpKind::Memory => {
                let v = i.immediate(1);
                let v = if bits == 32 { v & 0xffff_ffff } else { v };
                self.a.li(regs::guest(g), v);
                Ok(())
            }
            _ => {
                let src = self.loc(i, 1)?;
                let v = self.read(src, bits);
                self.write(dst, bits, v)
            }
        }
    }

    fn xchg(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let a = self.loc(i, 0)?;
        let b = self.loc(i, 1)?;
        let (mem, reg) = match (a, b) {
            (Loc::Mem(m), r) | (r, Loc::Mem(m)) => (Some(m), r),
            _ => (None, b),
        };
        if let Some(at) = mem {
            // xchg with memory is always locked: one atomic swap, every width.
            let p = self.addr_reg(at);
            let v = self.read(reg, bits);
            let old = self.atomic_rmw(p, bits, Rmw::Swap(v));
            return self.write(reg, bits, old);
        }
        let va = self.read(a, bits);
        let ta = self.tmp();
        self.a.mv(ta, va);
        let vb = self.read(b, bits);
        let tb = self.tmp();
        self.a.mv(tb, vb);
        self.write(a, bits, tb)?;
        self.write(b, bits, ta)
    }

    /// Byte-reverse all 8 bytes of `v` into `r`.
    fn bswap64(&mut self, r: Reg, v: Reg) {
        if self.a.ext.zbb {
            self.a.i(Op::Rev8, r, v, 0);
            return;
        }
        let (t, x) = (self.tmp(), self.tmp());
        self.a.mv(x, v);
        self.a.li(r, 0);
        for k in 0..8u32 {
            self.a.srli(t, x, 8 * k);
            self.a.i(Op::Andi, t, t, 0xff);
            if k != 7 {
                self.a.slli(t, t, 56 - 8 * k);
            }
            self.a.r(Op::Or, r, r, t);
        }
    }

    fn cmov(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let v = self.cond(i.condition_code());
        let c = regs::S9;
        self.a.mv(c, v);
        self.free_temps();
        let src = self.loc(i, 1)?;
        let s = self.read(src, bits);
        let dst = self.loc(i, 0)?;
        let Loc::Reg(g, _) = dst else { return Err(Unsupp) };
        let d = regs::guest(g);
        let skip = self.a.label();
        self.a.b(Op::Beq, c, Reg::ZERO, skip);
        match bits {
            64 | 32 => self.a.mv(d, s),
            _ => self.write(dst, bits, s)?,
        }
        self.a.bind(skip);
        if bits == 32 {
            // Written (zero-extended) whether or not the condition holds.
            self.a.zext(d, d, 32);
        }
        Ok(())
    }

    // ---- stack ----

    /// Store below RSP first, then move RSP: a faulting push leaves RSP as it was.
    fn push_reg(&mut self, v: Reg, bits: u32) {
        self.store(v, Addr { base: rsp(), off: -(bits as i32 / 8) }, bits);
        self.a.addi(rsp(), rsp(), -(bits as i32 / 8));
    }

    /// Everything else: control flow, stack, strings, atomics, flag instructions.
    pub fn lower_ctl(&mut self, i: &Instruction) -> LResult {
        match i.mnemonic() {
            M::Push => {
                let bits = match i.code() {
                    Code::Push_r16 | Code::Push_rm16 | Code::Push_imm16 | Code::Pushw_imm8 => 16,
                    Code::Push_r64 | Code::Push_rm64 | Code::Pushq_imm32 | Code::Pushq_imm8 => 64,
                    _ => return Err(Unsupp),
                };
                let src = self.loc(i, 0)?;
                let v = self.read(src, bits);
                let t = if v == rsp() {
                    let t = self.tmp();
                    self.a.mv(t, v);
                    t
                } else {
                    v
                };
                self.push_reg(t, bits);
                Ok(())
            }
            M::Pop => {
                let bits = match i.code() {
                    Code::Pop_r16 | Code::Pop_rm16 => 16,
                    Code::Pop_r64 | Code::Pop_rm64 => 64,
                    _ => return Err(Unsupp),
                };
                let t = self.tmp();
                self.load(t, Addr { base: rsp(), off: 0 }, bits);
                self.a.addi(rsp(), rsp(), bits as i32 / 8);
                let dst = self.loc(i, 0)?;
                self.write(dst, bits, t)
            }
            M::Leave => {
                // The stack address size stays 64 bits; `data16 leave` pops only BP.
                let bits = match i.code() {
                    Code::Leaveq => 64,
                    Code::Leavew => 16,
                    _ => return Err(Unsupp),
                };
                let rbp = regs::guest(Gpr::Rbp);
                self.a.mv(rsp(), rbp);
                let t = self.tmp();
                self.load(t, Addr { base: rsp(), off: 0 }, bits);
                self.a.addi(rsp(), rsp(), bits as i32 / 8);
                self.write(Loc::Reg(Gpr::Rbp, false), bits, t)
            }
            M::Jmp => match i.op_kind(0) {
                OpKind::NearBranch64 => {
                    self.link_to(i.near_branch_target());
                    Ok(())
                }
                OpKind::Register | OpKind::Memory if op_bits(i, 0) == 64 => {
                    let src = self.loc(i, 0)?;
                    let v = self.read(src, 64);
                    self.jump_indirect(v);
                    Ok(())
                }
                _ => Err(Unsupp),
            },
            M::Call => match i.op_kind(0) {
                OpKind::NearBranch64 => {
                    let t = self.tmp();
                    self.a.li(t, i.next_ip());
                    self.push_reg(t, 64);
                    self.link_to(i.near_branch_target());
                    Ok(())
                }
                OpKind::Register | OpKind::Memory if op_bits(i, 0) == 64 => {
                    let src = self.loc(i, 0)?;
                    let v = self.read(src, 64);
                    let target = regs::S9;
                    self.a.mv(target, v);
                    let t = self.tmp();
                    self.a.li(t, i.next_ip());
                    self.push_reg(t, 64);
                    self.jump_indirect(target);
                    Ok(())
                }
                _ => Err(Unsupp),
            },
            M::Ret => {
                if !matches!(i.code(), Code::Retnq | Code::Retnq_imm16) {
                    return Err(Unsupp);
                }
                let t = regs::S9;
                self.a.ld(t, rsp(), 0);
                let extra = if i.code() == Code::Retnq_imm16 { i64::from(i.immediate16()) } else { 0 };
                let u = self.tmp();
                self.a.add_imm(rsp(), rsp(), 8 + extra, u);
                self.jump_indirect(t);
                Ok(())
            }
            m if is_jcc(m) => {
                if i.op_kind(0) != OpKind::NearBranch64 {
                    return Err(Unsupp);
                }
                let target = i.near_branch_target();
                let taken = self.a.label();
                if self.flags_dead_at(target) {
                    // A loop back to this block's start, which writes the flags before reading
                    // them: only the fall-through exit records the flags' kind.
                    let fs = self.fs;
                    self.branch_if(i.condition_code(), taken);
                    self.link_to(i.next_ip());
                    self.a.bind(taken);
                    self.fs = fs;
                    self.link_to_flags_dead(target);
                    // Nothing follows the taken link site.
                    self.fs = FState::Unknown;
                    return Ok(());
                }
                self.sync_kind();
                self.branch_if(i.condition_code(), taken);
                self.link_to(i.next_ip());
                self.a.bind(taken);
                self.link_to(target);
                Ok(())
            }
            M::Jrcxz | M::Loop | M::Loope | M::Loopne => {
                if i.op_kind(0) != OpKind::NearBranch64 || !matches!(i.code(), Code::Jrcxz_rel8_64 | Code::Loop_rel8_64_RCX | Code::Loope_rel8_64_RCX | Code::Loopne_rel8_64_RCX) {
                    return Err(Unsupp);
                }
                self.sync_kind();
                let rcx = regs::guest(Gpr::Rcx);
                let taken = self.a.label();
                match i.mnemonic() {
                    M::Jrcxz => self.a.b_far(Op::Beq, rcx, Reg::ZERO, taken),
                    M::Loop => {
                        self.a.addi(rcx, rcx, -1);
                        self.a.b_far(Op::Bne, rcx, Reg::ZERO, taken);
                    }
                    m => {
                        let z = self.flag(Flag::Z);
                        let s = regs::S9;
                        self.a.mv(s, z);
                        self.a.addi(rcx, rcx, -1);
                        let not = self.a.label();
                        self.a.b(Op::Beq, rcx, Reg::ZERO, not);
                        let op = if m == M::Loope { Op::Bne } else { Op::Beq };
                        self.a.b_far(op, s, Reg::ZERO, taken);
                        self.a.bind(not);
                    }
                }
                self.link_to(i.next_ip());
                self.a.bind(taken);
                self.link_to(i.near_branch_target());
                Ok(())
            }
            M::Syscall => {
                self.exit_now(exit::SYSCALL, i.next_ip());
                Ok(())
            }
            M::Cpuid => {
                self.exit_now(exit::CPUID, i.next_ip());
                Ok(())
            }
            M::Int3 => {
                self.exit_now(exit::BREAKPOINT, i.next_ip());
                Ok(())
            }
            M::Hlt => {
                self.exit_now(exit::PRIVILEGED, i.ip());
                Ok(())
            }
            M::Ud2 | M::Ud0 | M::Ud1 => {
                self.exit_now(exit::INVALID_OPCODE, i.ip());
                Ok(())
            }
            // Cache-line write-back/flush: memory is coherent for the guest, so an ordering
            // point is all that is left of them.
            M::Clflush | M::Clflushopt | M::Clwb => {
                self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
                Ok(())
            }
            M::Enter => {
                // enter imm16, 0 only (compilers never emit a non-zero nesting level).
                if i.code() != Code::Enterq_imm16_imm8 || i.immediate8_2nd() != 0 {
                    return Err(Unsupp);
                }
                let rbp = regs::guest(Gpr::Rbp);
                self.push_reg(rbp, 64);
                self.a.mv(rbp, rsp());
                let t = self.tmp();
                self.a.add_imm(rsp(), rsp(), -i64::from(i.immediate16()), t);
                Ok(())
            }
            M::Nop | M::Endbr64 | M::Endbr32 | M::Pause | M::Prefetch | M::Prefetchw | M::Prefetchnta
            | M::Prefetcht0 | M::Prefetcht1 | M::Prefetcht2 => Ok(()),
            // The x87 control and status words live in `ctx.cpu`; saving and restoring them is
            // all glibc's printf and fenv code does on the common paths. x87 arithmetic is not
            // translated (it exits UNSUPPORTED).
            M::Fnstcw | M::Fldcw | M::Fnstsw if i.op_kind(0) == OpKind::Memory => {
                let at = self.addr(i)?;
                let t = self.tmp();
                let off = if i.mnemonic() == M::Fnstsw { crate::cpu::OFF_FCW as i32 + 2 } else { crate::cpu::OFF_FCW as i32 };
                if i.mnemonic() == M::Fldcw {
                    self.load(t, at, 16);
                    self.a.s(Op::Sh, t, CTX, off);
                } else {
                    self.a.i(Op::Lhu, t, CTX, off);
                    self.store(t, at, 16);
                }
                Ok(())
            }
            M::Fnstsw => {
                // fnstsw ax
                let t = self.tmp();
                self.a.i(Op::Lhu, t, CTX, crate::cpu::OFF_FCW as i32 + 2);
                self.write(Loc::Reg(Gpr::Rax, false), 16, t)
            }
            M::Wait => Ok(()),
            // Without CET (not advertised) RDSSP is a no-op that leaves its register alone;
            // glibc relies on that to see "no shadow stack".
            M::Rdsspd | M::Rdsspq => Ok(()),
            // The TSO → RVWMO mapping's fences (see mod.rs): MFENCE orders everything, SFENCE
            // stores against stores, LFENCE loads against loads.
            M::Mfence => {
                self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
                Ok(())
            }
            M::Sfence => {
                self.a.fence(FENCE_W, FENCE_W);
                Ok(())
            }
            M::Lfence => {
                self.a.fence(FENCE_R, FENCE_R);
                Ok(())
            }
            M::Rdtsc => {
                let t = self.tmp();
                self.a.i(Op::Csrrs, t, Reg::ZERO, 0xc01 - 4096);
                let hi = self.tmp();
                self.a.srli(hi, t, 32);
                self.write(Loc::Reg(Gpr::Rax, false), 32, t)?;
                self.write(Loc::Reg(Gpr::Rdx, false), 32, hi)
            }
            M::Cld | M::Std => {
                let t = self.tmp();
                self.a.ld(t, CTX, OFF_RFLAGS as i32);
                if i.mnemonic() == M::Cld {
                    self.a.i(Op::Andi, t, t, !(fl::DF as i32));
                } else {
                    self.a.i(Op::Ori, t, t, fl::DF as i32);
                }
                self.a.sd(t, CTX, OFF_RFLAGS as i32);
                Ok(())
            }
            M::Clc | M::Stc | M::Cmc => {
                let old = if i.mnemonic() == M::Cmc {
                    let c = self.flag(Flag::C);
                    self.a.mv(regs::S9, c);
                    Some(regs::S9)
                } else {
                    None
                };
                let keep = fl::STATUS & !fl::CF;
                let need_old = self.begin_exact(keep);
                let t = self.tmp();
                match (i.mnemonic(), old) {
                    (M::Cmc, Some(c)) => self.a.i(Op::Xori, t, c, 1),
                    (M::Stc, _) => self.a.li(t, 1),
                    _ => self.a.li(t, 0),
                }
                self.end_exact(need_old, keep, t);
                Ok(())
            }
            M::Lahf => {
                self.materialize();
                let t = self.tmp();
                self.a.ld(t, CTX, OFF_RFLAGS as i32);
                self.a.i(Op::Andi, t, t, 0xd5);
                self.a.i(Op::Ori, t, t, 2);
                self.write(Loc::Reg(Gpr::Rax, true), 8, t)
            }
            M::Sahf => {
                let keep = fl::OF;
                let need_old = self.begin_exact(keep);
                let v = self.read(Loc::Reg(Gpr::Rax, true), 8);
                let t = self.tmp();
                self.a.i(Op::Andi, t, v, 0xd5);
                self.end_exact(need_old, keep, t);
                Ok(())
            }
            M::Pushfq => {
                if i.code() != Code::Pushfq {
                    return Err(Unsupp);
                }
                self.materialize();
                let t = self.tmp();
                self.a.ld(t, CTX, OFF_RFLAGS as i32);
                self.push_reg(t, 64);
                Ok(())
            }
            M::Popfq => {
                if i.code() != Code::Popfq {
                    return Err(Unsupp);
                }
                let (v, t, m) = (self.tmp(), self.tmp(), self.tmp());
                self.a.ld(v, rsp(), 0);
                self.a.addi(rsp(), rsp(), 8);
                let mask = fl::STATUS | fl::DF | fl::AC | fl::ID;
                self.a.li(m, mask);
                self.a.r(Op::And, v, v, m);
                self.a.ld(t, CTX, OFF_RFLAGS as i32);
                self.a.i(Op::Xori, m, m, -1);
                self.a.r(Op::And, t, t, m);
                self.a.r(Op::Or, t, t, v);
                self.a.sd(t, CTX, OFF_RFLAGS as i32);
                self.a.sd(Reg::ZERO, CTX, super::flags::OFF_KIND);
                self.fs = FState::Exact;
                Ok(())
            }
            M::Cmpxchg => self.cmpxchg(i),
            M::Cmpxchg8b if i.code() == Code::Cmpxchg8b_m64 => self.cmpxchg8b(i),
            M::Xadd => self.xadd(i),
            _ => self.string(i),
        }
    }

    /// CMPXCHG: with a memory destination always one atomic compare-and-swap (`atomic.rs`),
    /// locked or not; the flags are those of `cmp acc, old` with the value actually compared.
    fn cmpxchg(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let live = self.flags_live(i);
        let dst = self.loc(i, 0)?;
        let src = self.loc(i, 1)?;
        let rax = Loc::Reg(Gpr::Rax, false);
        let s = self.read(src, bits);
        // A copy: the destination may be the accumulator itself.
        let acc = self.tmp();
        let a0 = self.read(rax, bits);
        self.a.mv(acc, a0);
        let old = match dst {
            Loc::Mem(at) => {
                let p = self.addr_reg(at);
                self.atomic_rmw(p, bits, Rmw::Cas { expected: acc, new: s })
            }
            _ => {
                let old = self.tmp();
                let v = self.read(dst, bits);
                self.a.mv(old, v);
                let (x, y) = (self.tmp(), self.tmp());
                let differ = self.a.label();
                self.top_into(x, acc, bits);
                self.top_into(y, old, bits);
                self.a.b(Op::Bne, x, y, differ);
                self.write(dst, bits, s)?;
                self.a.bind(differ);
                old
            }
        };
        if live {
            self.a.r(Op::Sub, regs::F_RES, acc, old);
            self.a.mv(regs::F_SRC1, acc);
            self.a.mv(regs::F_SRC2, old);
            self.fs = FState::Lazy { kind: Kind::Sub, bits, synced: false };
        }
        // On failure the accumulator receives the old value.
        let done = self.a.label();
        let t = regs::T0;
        self.a.r(Op::Xor, t, acc, old);
        if bits < 64 {
            self.a.slli(t, t, 64 - bits);
        }
        self.a.b(Op::Beq, t, Reg::ZERO, done);
        self.write(rax, bits, old)?;
        self.a.bind(done);
        Ok(())
    }

    /// `cmpxchg8b m64`: EDX:EAX against memory, ECX:EBX stored on a match; only ZF changes. One
    /// atomic 64-bit compare-and-swap.
    fn cmpxchg8b(&mut self, i: &Instruction) -> LResult {
        let live = self.live() & iced_x86::RflagsBits::ZF != 0;
        let keep = fl::STATUS & !fl::ZF;
        let need_old = if live { self.begin_exact(keep) } else { false };
        let Loc::Mem(at) = self.loc(i, 0)? else { return Err(Unsupp) };
        let p = self.addr_reg(at);
        let pair = |l: &mut Self, hi: Gpr, lo: Gpr| {
            let r = l.tmp();
            l.a.slli(r, regs::guest(hi), 32);
            l.a.zext(regs::T0, regs::guest(lo), 32);
            l.a.r(Op::Or, r, r, regs::T0);
            r
        };
        let x = pair(self, Gpr::Rdx, Gpr::Rax);
        let n = pair(self, Gpr::Rcx, Gpr::Rbx);
        let old = self.atomic_rmw(p, 64, Rmw::Cas { expected: x, new: n });
        let ok = self.a.label();
        self.a.b(Op::Beq, old, x, ok);
        self.a.zext(regs::guest(Gpr::Rax), old, 32);
        self.a.srli(regs::guest(Gpr::Rdx), old, 32);
        self.a.bind(ok);
        if live {
            // ZF = the values matched.
            let t = regs::S9;
            self.a.r(Op::Xor, t, old, x);
            self.a.i(Op::Sltiu, t, t, 1);
            self.a.slli(t, t, 6);
            self.free_temps();
            self.end_exact(need_old, keep, t);
        }
        Ok(())
    }

    /// XADD: with a LOCK prefix one atomic fetch-and-add, every width.
    fn xadd(&mut self, i: &Instruction) -> LResult {
        let bits = op_bits(i, 0);
        let live = self.flags_live(i);
        let dst = self.loc(i, 0)?;
        let src = self.loc(i, 1)?;
        let b = self.read(src, bits);
        let bs = self.tmp();
        self.a.mv(bs, b);
        match dst {
            Loc::Mem(at) if i.has_lock_prefix() => {
                let p = self.addr_reg(at);
                let old = self.atomic_rmw(p, bits, Rmw::Add(bs));
                let sum = self.tmp();
                self.a.r(Op::Add, sum, old, bs);
                self.write(src, bits, old)?;
                if live {
                    self.set_flags(Kind::Add, bits, old, bs, sum);
                }
                Ok(())
            }
            _ => {
                let old = self.tmp();
                let sum = self.tmp();
                let v = self.read(dst, bits);
                self.a.mv(old, v);
                self.a.r(Op::Add, sum, old, bs);
                // The source register is written first, then the destination (xadd r, r with
                // the same register ends with the sum).
                self.write(src, bits, old)?;
                self.write(dst, bits, sum)?;
                if live {
                    self.set_flags(Kind::Add, bits, old, bs, sum);
                }
                Ok(())
            }
        }
    }

    // ---- strings ----

    fn string(&mut self, i: &Instruction) -> LResult {
        use Code as C;
        let (kind, bits): (M, u32) = match i.code() {
            C::Movsb_m8_m8 => (M::Movsb, 8),
            C::Movsw_m16_m16 => (M::Movsb, 16),
            C::Movsd_m32_m32 => (M::Movsb, 32),
            C::Movsq_m64_m64 => (M::Movsb, 64),
            C::Stosb_m8_AL => (M::Stosb, 8),
            C::Stosw_m16_AX => (M::Stosb, 16),
            C::Stosd_m32_EAX => (M::Stosb, 32),
            C::Stosq_m64_RAX => (M::Stosb, 64),
            C::Lodsb_AL_m8 => (M::Lodsb, 8),
            C::Lodsw_AX_m16 => (M::Lodsb, 16),
            C::Lodsd_EAX_m32 => (M::Lodsb, 32),
            C::Lodsq_RAX_m64 => (M::Lodsb, 64),
            C::Cmpsb_m8_m8 => (M::Cmpsb, 8),
            C::Cmpsw_m16_m16 => (M::Cmpsb, 16),
            C::Cmpsd_m32_m32 => (M::Cmpsb, 32),
            C::Cmpsq_m64_m64 => (M::Cmpsb, 64),
            C::Scasb_AL_m8 => (M::Scasb, 8),
            C::Scasw_AX_m16 => (M::Scasb, 16),
            C::Scasd_EAX_m32 => (M::Scasb, 32),
            C::Scasq_RAX_m64 => (M::Scasb, 64),
            _ => return Err(Unsupp),
        };
        // 32-bit addressing or a segment override on the source: not translated.
        for n in 0..i.op_count() {
            match i.op_kind(n) {
                OpKind::MemorySegRSI => {
                    if !matches!(i.memory_segment(), Register::DS | Register::None) {
                        return Err(Unsupp);
                    }
                }
                OpKind::MemoryESRDI | OpKind::Register => {}
                _ => return Err(Unsupp),
            }
        }
        let compares = matches!(kind, M::Cmpsb | M::Scasb);
        let live = compares && self.flags_live(i);
        let rep = i.has_rep_prefix() || i.has_repe_prefix() || i.has_repne_prefix();
        if rep && live {
            // Zero iterations leave the flags alone.
            self.sync_kind();
        }
        let (rsi, rdi, rcx) = (regs::guest(Gpr::Rsi), regs::guest(Gpr::Rdi), regs::guest(Gpr::Rcx));
        // step = DF ? -size : size
        let step = self.tmp();
        let t = self.tmp();
        let size = bits / 8;
        self.a.ld(t, CTX, OFF_RFLAGS as i32);
        self.a.srli(t, t, 10);
        self.a.i(Op::Andi, t, t, 1);
        self.a.slli(t, t, (2 * size).trailing_zeros());
        self.a.li(step, u64::from(size));
        self.a.r(Op::Sub, step, step, t);
        let (top, done) = (self.a.label(), self.a.label());
        self.a.bind(top);
        if rep {
            self.a.b_far(Op::Beq, rcx, Reg::ZERO, done);
        }
        let (x, y) = (self.tmp(), t);
        let rax = Loc::Reg(Gpr::Rax, false);
        match kind {
            M::Movsb => {
                self.load(x, Addr { base: rsi, off: 0 }, bits);
                self.store(x, Addr { base: rdi, off: 0 }, bits);
                self.a.r(Op::Add, rsi, rsi, step);
                self.a.r(Op::Add, rdi, rdi, step);
            }
            M::Stosb => {
                self.store(regs::guest(Gpr::Rax), Addr { base: rdi, off: 0 }, bits);
                self.a.r(Op::Add, rdi, rdi, step);
            }
            M::Lodsb => {
                self.load(x, Addr { base: rsi, off: 0 }, bits);
                self.write(rax, bits, x)?;
                self.a.r(Op::Add, rsi, rsi, step);
            }
            _ => {
                if kind == M::Cmpsb {
                    self.load(x, Addr { base: rsi, off: 0 }, bits);
                    self.a.r(Op::Add, rsi, rsi, step);
                } else {
                    self.a.mv(x, regs::guest(Gpr::Rax));
                }
                self.load(y, Addr { base: rdi, off: 0 }, bits);
                self.a.r(Op::Add, rdi, rdi, step);
                if live {
                    self.a.mv(regs::F_SRC1, x);
                    self.a.mv(regs::F_SRC2, y);
                    self.a.r(Op::Sub, regs::F_RES, x, y);
                    if rep {
                        self.a.li(regs::T0, Kind::Sub.word(bits));
                        self.a.sd(regs::T0, CTX, super::flags::OFF_KIND);
                    }
                }
            }
        }
        if rep {
            self.a.addi(rcx, rcx, -1);
            if compares && (i.has_repe_prefix() || i.has_repne_prefix()) {
                // Stop when ZF says so: repe while equal, repne while different.
                let d = self.tmp();
                self.a.r(Op::Xor, d, x, y);
                if bits < 64 {
                    self.a.slli(d, d, 64 - bits);
                }
                let op = if i.has_repe_prefix() { Op::Bne } else { Op::Beq };
                self.a.b_far(op, d, Reg::ZERO, done);
            }
            self.a.j(top);
        }
        self.a.bind(done);
        if live {
            self.fs = if rep { FState::Unknown } else { FState::Lazy { kind: Kind::Sub, bits, synced: false } };
        }
        Ok(())
    }
}

fn is_jcc(m: M) -> bool {
    matches!(
        m,
        M::Jo | M::Jno | M::Jb | M::Jae | M::Je | M::Jne | M::Jbe | M::Ja | M::Js | M::Jns | M::Jp | M::Jnp
            | M::Jl | M::Jge | M::Jle | M::Jg
    )
}

fn is_setcc(m: M) -> bool {
    matches!(
        m,
        M::Seto | M::Setno | M::Setb | M::Setae | M::Sete | M::Setne | M::Setbe | M::Seta | M::Sets
            | M::Setns | M::Setp | M::Setnp | M::Setl | M::Setge | M::Setle | M::Setg
    )
}
