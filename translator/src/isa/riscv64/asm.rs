//! The code buffer the lowering writes into: one method per instruction (thin wrappers over the
//! format encoders), local labels with branch fixups, constants of any width, and the few idioms
//! RV64GC spells with several instructions (zero/sign extension, far conditional branches).
//! Optional extensions are used here when the host has them, so lowering code stays the same.

use super::encode::{self as e, Op, Reg};

/// A position in the buffer that branches may target before it is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(pub u32);

/// Host extensions the emitted code may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ext {
    /// Address generation: `sh1add..sh3add`, `add.uw`.
    pub zba: bool,
    /// Basic bit manipulation: `clz/ctz/cpop`, `rev8`, `rori`, `sext.b/h`, `zext.h`, `andn`…
    pub zbb: bool,
    /// Conditional zero: `czero.eqz/nez`.
    pub zicond: bool,
    /// Total store order in hardware: x86's ordering needs no fences.
    pub ztso: bool,
    /// Atomic compare-and-swap: `amocas.w/d/q` (CMPXCHG16B as one `amocas.q`).
    pub zacas: bool,
    /// Not an extension but the memory-order mode: emit the fences of the x86-TSO → RVWMO
    /// mapping at every guest load and store (see [`Asm::i`], [`Asm::s`] and `mod.rs`).
    pub tso_fences: bool,
}

/// Whether `op` reads memory.
fn is_load(op: Op) -> bool {
    matches!(op, Op::Lb | Op::Lh | Op::Lw | Op::Ld | Op::Lbu | Op::Lhu | Op::Lwu)
}

/// Whether accesses based on `r` are the running thread's own: the context (`s1`, see
/// `regs.rs`) and the host stack. Everything else generated code reads or writes is guest memory
/// (or a shared table), which another thread may access too.
fn thread_local_base(r: Reg) -> bool {
    r == super::regs::CTX || r == Reg::SP
}

#[derive(Clone, Copy, Debug)]
enum FixKind {
    B,
    J,
}

/// The code buffer of one block.
#[derive(Debug, Default)]
pub struct Asm {
    /// Instruction words, in order.
    pub words: Vec<u32>,
    labels: Vec<Option<u32>>,
    fixups: Vec<(u32, Label, FixKind)>,
    /// Extensions in use.
    pub ext: Ext,
    /// Set when a fixup could not reach its label; the block is then refused as too large.
    pub overflow: bool,
}

impl Asm {
    /// An empty buffer.
    pub fn new(ext: Ext) -> Asm {
        Asm { ext, ..Asm::default() }
    }

    /// Byte offset of the next instruction.
    pub fn pos(&self) -> u32 {
        (self.words.len() * 4) as u32
    }

    /// Append a raw word.
    pub fn word(&mut self, w: u32) {
        self.words.push(w);
    }

    /// A new unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() as u32 - 1)
    }

    /// Bind `l` here.
    pub fn bind(&mut self, l: Label) {
        self.labels[l.0 as usize] = Some(self.pos());
    }

    /// Offset a bound label was bound at.
    pub fn label_pos(&self, l: Label) -> Option<u32> {
        self.labels[l.0 as usize]
    }

    /// Resolve every branch to its label; sets [`Asm::overflow`] if one is out of range or unbound.
    pub fn finish(&mut self) {
        for &(at, l, kind) in &self.fixups {
            let Some(target) = self.labels[l.0 as usize] else {
                self.overflow = true;
                continue;
            };
            let off = i64::from(target) - i64::from(at);
            let idx = (at / 4) as usize;
            let w = self.words[idx];
            match kind {
                FixKind::B => {
                    if !e::fits_b(off) {
                        self.overflow = true;
                        continue;
                    }
                    // Re-encode keeping opcode, registers and funct3.
                    let keep = w & 0x01ff_f07f;
                    let imm = e::enc_b(Op::Beq, Reg(0), Reg(0), off as i32) & !0x01ff_f07f;
                    self.words[idx] = keep | imm;
                }
                FixKind::J => {
                    if !e::fits_j(off) {
                        self.overflow = true;
                        continue;
                    }
                    let keep = w & 0xfff;
                    self.words[idx] = keep | (e::enc_j(Op::Jal, Reg(0), off as i32) & !0xfff);
                }
            }
        }
        self.fixups.clear();
    }

    /// The code as bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    // ---- format wrappers ----

    /// R-type instruction.
    pub fn r(&mut self, op: Op, rd: Reg, rs1: Reg, rs2: Reg) {
        self.word(e::enc_r(op, rd, rs1, rs2));
    }

    /// I-type instruction; `imm` must satisfy [`e::fits_i12`] (or be a shift amount).
    ///
    /// A load not relative to the context register is a guest (or shared) access: in TSO-fence
    /// mode it is followed by `fence r,rw`, the x86 load of the TSO → RVWMO mapping.
    pub fn i(&mut self, op: Op, rd: Reg, rs1: Reg, imm: i32) {
        debug_assert!(e::fits_i12(i64::from(imm)), "{op:?} {imm}");
        self.word(e::enc_i(op, rd, rs1, imm));
        if self.ext.tso_fences && is_load(op) && !thread_local_base(rs1) {
            self.fence(e::FENCE_R, e::FENCE_R | e::FENCE_W);
        }
    }

    /// S-type store `rs2 -> imm(rs1)`. In TSO-fence mode a store not relative to the context
    /// register is preceded by `fence rw,w` (the x86 store of the TSO → RVWMO mapping).
    pub fn s(&mut self, op: Op, rs2: Reg, rs1: Reg, imm: i32) {
        debug_assert!(e::fits_i12(i64::from(imm)), "{op:?} {imm}");
        if self.ext.tso_fences && !thread_local_base(rs1) {
            self.fence(e::FENCE_R | e::FENCE_W, e::FENCE_W);
        }
        self.word(e::enc_s(op, rs2, rs1, imm));
    }

    /// `fence pred,succ` (sets of [`e::FENCE_R`], [`e::FENCE_W`], ...).
    pub fn fence(&mut self, pred: u32, succ: u32) {
        self.word(e::enc_fence(pred, succ));
    }

    /// An AMO, LR or SC word with its ordering bits (emitted as is: never fenced, so that an
    /// LR/SC loop stays a constrained loop).
    pub fn amo(&mut self, op: Op, aq: bool, rl: bool, rd: Reg, rs1: Reg, rs2: Reg) {
        self.word(e::enc_amo(op, aq, rl, rd, rs1, rs2));
    }

    /// Conditional branch to a label.
    pub fn b(&mut self, op: Op, rs1: Reg, rs2: Reg, l: Label) {
        self.fixups.push((self.pos(), l, FixKind::B));
        self.word(e::enc_b(op, rs1, rs2, 0));
    }

    /// `jal zero, label`.
    pub fn j(&mut self, l: Label) {
        self.fixups.push((self.pos(), l, FixKind::J));
        self.word(e::enc_j(Op::Jal, Reg::ZERO, 0));
    }

    /// Conditional branch to a label that may be far: an inverted short branch over a `jal`.
    pub fn b_far(&mut self, op: Op, rs1: Reg, rs2: Reg, l: Label) {
        let inv = match op {
            Op::Beq => Op::Bne,
            Op::Bne => Op::Beq,
            Op::Blt => Op::Bge,
            Op::Bge => Op::Blt,
            Op::Bltu => Op::Bgeu,
            _ => Op::Bltu,
        };
        self.word(e::enc_b(inv, rs1, rs2, 8));
        self.j(l);
    }

    // ---- common instructions ----

    /// `addi rd, rs, imm`.
    pub fn addi(&mut self, rd: Reg, rs: Reg, imm: i32) {
        self.i(Op::Addi, rd, rs, imm);
    }

    /// `rd = rs` (`addi rd, rs, 0`).
    pub fn mv(&mut self, rd: Reg, rs: Reg) {
        if rd != rs {
            self.addi(rd, rs, 0);
        }
    }

    /// `ld rd, off(base)`.
    pub fn ld(&mut self, rd: Reg, base: Reg, off: i32) {
        self.i(Op::Ld, rd, base, off);
    }

    /// `sd rs, off(base)`.
    pub fn sd(&mut self, rs: Reg, base: Reg, off: i32) {
        self.s(Op::Sd, rs, base, off);
    }

    /// `slli`.
    pub fn slli(&mut self, rd: Reg, rs: Reg, sh: u32) {
        self.i(Op::Slli, rd, rs, sh as i32);
    }

    /// `srli`.
    pub fn srli(&mut self, rd: Reg, rs: Reg, sh: u32) {
        self.i(Op::Srli, rd, rs, sh as i32);
    }

    /// `srai`.
    pub fn srai(&mut self, rd: Reg, rs: Reg, sh: u32) {
        self.i(Op::Srai, rd, rs, sh as i32);
    }

    /// `andi`, or a shift pair when the mask does not fit 12 bits.
    pub fn and_imm(&mut self, rd: Reg, rs: Reg, mask: u64, tmp: Reg) {
        if e::fits_i12(mask as i64) {
            self.i(Op::Andi, rd, rs, mask as i32);
        } else if mask == 0xffff_ffff {
            self.zext(rd, rs, 32);
        } else if mask == 0xffff {
            self.zext(rd, rs, 16);
        } else {
            self.li(tmp, mask);
            self.r(Op::And, rd, rs, tmp);
        }
    }

    /// Zero-extend the low `bits` (8, 16, 32 or 64) of `rs` into `rd`.
    pub fn zext(&mut self, rd: Reg, rs: Reg, bits: u32) {
        if rs == Reg::ZERO {
            self.mv(rd, Reg::ZERO);
            return;
        }
        match bits {
            8 => self.i(Op::Andi, rd, rs, 0xff),
            16 if self.ext.zbb => self.r(Op::ZextH, rd, rs, Reg::ZERO),
            32 if self.ext.zba => self.r(Op::AddUw, rd, rs, Reg::ZERO),
            64 => self.mv(rd, rs),
            _ => {
                self.slli(rd, rs, 64 - bits);
                self.srli(rd, rd, 64 - bits);
            }
        }
    }

    /// Sign-extend the low `bits` of `rs` into `rd`.
    pub fn sext(&mut self, rd: Reg, rs: Reg, bits: u32) {
        match bits {
            32 => self.i(Op::Addiw, rd, rs, 0),
            8 if self.ext.zbb => self.i(Op::SextB, rd, rs, 0),
            16 if self.ext.zbb => self.i(Op::SextH, rd, rs, 0),
            64 => self.mv(rd, rs),
            _ => {
                self.slli(rd, rs, 64 - bits);
                self.srai(rd, rd, 64 - bits);
            }
        }
    }

    /// `rd = rs1 + (rs2 << sh)` for `sh` in 0..=3 (one `shNadd` with Zba).
    pub fn add_shifted(&mut self, rd: Reg, rs1: Reg, rs2: Reg, sh: u32, tmp: Reg) {
        match sh {
            0 => self.r(Op::Add, rd, rs1, rs2),
            1 if self.ext.zba => self.r(Op::Sh1add, rd, rs2, rs1),
            2 if self.ext.zba => self.r(Op::Sh2add, rd, rs2, rs1),
            3 if self.ext.zba => self.r(Op::Sh3add, rd, rs2, rs1),
            _ => {
                // `rd` itself is the scratch when it is neither source.
                let t = if rd != rs1 && rd != rs2 { rd } else { tmp };
                self.slli(t, rs2, sh);
                self.r(Op::Add, rd, rs1, t);
            }
        }
    }

    /// `rd = rs + imm` for any 64-bit `imm`, using `tmp` when it does not fit 12 bits.
    pub fn add_imm(&mut self, rd: Reg, rs: Reg, imm: i64, tmp: Reg) {
        if e::fits_i12(imm) {
            if imm != 0 || rd != rs {
                self.addi(rd, rs, imm as i32);
            }
        } else {
            self.li(tmp, imm as u64);
            self.r(Op::Add, rd, rs, tmp);
        }
    }

    /// Load any 64-bit constant into `rd` (at most 8 instructions; no temporary needed).
    pub fn li(&mut self, rd: Reg, v: u64) {
        let v = v as i64;
        if e::fits_i12(v) {
            self.addi(rd, Reg::ZERO, v as i32);
            return;
        }
        if v == i64::from(v as i32) {
            // lui + addiw: the low 12 bits are sign-extended, so round the upper part.
            let lo = (v << 52) >> 52;
            let hi = ((v - lo) >> 12) as i32;
            self.word(e::enc_u(Op::Lui, rd, hi));
            if lo != 0 {
                self.i(Op::Addiw, rd, rd, lo as i32);
            }
            return;
        }
        // Peel the low 12 bits, build the rest recursively, shift it into place (the RISC-V
        // psABI "li" expansion; trailing zeros are folded into the shift).
        let lo = (v << 52) >> 52;
        // Wrapping: `(hi << 12) + lo == v` holds modulo 2^64, which is all that matters.
        let mut hi = v.wrapping_sub(lo) >> 12;
        let mut shift = 12;
        while hi & 1 == 0 && shift < 63 {
            hi >>= 1;
            shift += 1;
        }
        self.li(rd, hi as u64);
        self.slli(rd, rd, shift);
        if lo != 0 {
            self.addi(rd, rd, lo as i32);
        }
    }

    /// `jal zero` / `jalr zero` to an absolute host address from this buffer placed at `base`:
    /// `auipc tmp; jalr zero, tmp` (8 bytes), or `None` when out of ±2 GiB.
    pub fn jump_abs(&mut self, base: u64, target: u64, tmp: Reg) -> Option<()> {
        let here = base + u64::from(self.pos());
        let off = target.wrapping_sub(here) as i64;
        if !e::fits_auipc(off) {
            return None;
        }
        let (hi, lo) = e::split_hi_lo(off);
        self.word(e::enc_u(Op::Auipc, tmp, hi));
        self.i(Op::Jalr, Reg::ZERO, tmp, lo);
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Evaluate an `li` expansion with a tiny interpreter of the instructions it may use.
    fn eval_li(words: &[u32]) -> u64 {
        let mut r: u64 = 0;
        for &w in words {
            let op = super::super::disasm::decode_op(w);
            let imm12 = ((w as i32) >> 20) as i64 as u64;
            match op {
                Some(Op::Addi) => {
                    let src = if (w >> 15) & 31 == 0 { 0 } else { r };
                    r = src.wrapping_add(imm12);
                }
                Some(Op::Addiw) => r = (r.wrapping_add(imm12) as i32) as i64 as u64,
                Some(Op::Lui) => r = ((w & 0xffff_f000) as i32) as i64 as u64,
                Some(Op::Slli) => r <<= (w >> 20) & 63,
                other => panic!("unexpected {other:?}"),
            }
        }
        r
    }

    #[test]
    fn li_materialises_every_kind_of_constant() {
        let samples = [
            0u64, 1, 2047, 2048, u64::MAX, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0x1234_5678_9abc_def0,
            0x8000_0000_0000_0000, 0x7fff_ffff_ffff_ffff, 0xffff_ffff_8000_0000, 0x0000_7fff_ffff_f800,
            0xdead_beef, 0x4_0000_1000, 0xffff_ffff_ffff_f7ff, 0x5555_5555_5555_5555,
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut all = samples.to_vec();
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            all.push(x);
            all.push(x >> (x & 63));
        }
        for v in all {
            let mut a = Asm::new(Ext::default());
            a.li(Reg::T0, v);
            assert!(a.words.len() <= 8, "{v:#x}: {} words", a.words.len());
            assert_eq!(eval_li(&a.words), v, "{v:#x}");
        }
    }

    #[test]
    fn labels_resolve_forward_and_backward() {
        let mut a = Asm::new(Ext::default());
        let top = a.label();
        let end = a.label();
        a.bind(top);
        a.b(Op::Beq, Reg::A0, Reg::A1, end);
        a.addi(Reg::A0, Reg::A0, 1);
        a.j(top);
        a.bind(end);
        a.finish();
        assert!(!a.overflow);
        let text = super::super::disasm::disasm_buf(&a.bytes(), 0x1000);
        assert_eq!(text, ["beq a0,a1,0x100c", "addi a0,a0,1", "jal zero,0x1000"]);
    }
}
