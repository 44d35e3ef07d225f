//! Encoding helpers for the x86_64 backend: a small assembler over iced-x86's encoder that knows
//! where the bytes will land, plus the few fixed sequences (GS-relative spills, link jumps) that
//! translation emits around copied guest instructions.

use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};

use crate::isa::TranslateError;

/// Size of a link site: the rel32 field of a `jmp` or `jcc`, so a conditional branch links
/// directly to its target without going through a second jump. Every such field starts 4-byte
/// aligned (and the inline caches' imm64 8-byte aligned), so the dispatcher patches it with one
/// atomic store while other threads may execute it: x86 fetches an aligned dword that does not
/// cross a cache line as a unit (Intel SDM vol. 3, 8.1.1 and 8.1.3, cross-modifying code).
pub const LINK_SITE_LEN: usize = 4;

/// Appends host code to a buffer that will be placed at `base`.
pub struct Asm<'a> {
    /// The output buffer; `base` is the address of `out[start]`.
    pub out: &'a mut Vec<u8>,
    start: usize,
    base: u64,
    enc: Encoder,
}

impl std::fmt::Debug for Asm<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asm").field("base", &self.base).field("len", &self.len()).finish()
    }
}

/// A GS-relative memory operand `gs:[off]` (the thread context).
pub fn gs(off: usize) -> MemoryOperand {
    MemoryOperand::new(Register::None, Register::None, 1, off as i64, 4, false, Register::GS)
}

impl<'a> Asm<'a> {
    /// Start appending to `out`, whose current end will be at host address `base`.
    pub fn new(out: &'a mut Vec<u8>, base: u64) -> Self {
        let start = out.len();
        Asm { out, start, base, enc: Encoder::new(64) }
    }

    /// Bytes emitted so far.
    pub fn len(&self) -> usize {
        self.out.len() - self.start
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Host address of the next byte.
    pub fn ip(&self) -> u64 {
        self.base + self.len() as u64
    }

    /// Encode `insn` at the current address.
    pub fn insn(&mut self, insn: &Instruction) -> Result<(), TranslateError> {
        let ip = self.ip();
        if let Err(e) = self.enc.encode(insn, ip) {
            log::error!(target: "translator", "x86_64 backend cannot encode {insn:?}: {e}");
            return Err(TranslateError::TooLarge);
        }
        let bytes = self.enc.take_buffer();
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    /// Append raw bytes (a copied guest instruction).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Pad with one-byte NOPs so that the byte `ahead` bytes past the current position lands on
    /// a multiple of `align` (a patchable field of the instruction about to be emitted).
    pub fn align_field(&mut self, ahead: u64, align: u64) {
        while !(self.ip() + ahead).is_multiple_of(align) {
            self.out.push(0x90);
        }
    }

    /// `mov gs:[off], reg`.
    pub fn store_gs(&mut self, off: usize, reg: Register) -> Result<(), TranslateError> {
        self.insn(&Instruction::with2(Code::Mov_rm64_r64, gs(off), reg).map_err(|_| TranslateError::TooLarge)?)
    }

    /// `mov reg, gs:[off]`.
    pub fn load_gs(&mut self, reg: Register, off: usize) -> Result<(), TranslateError> {
        self.insn(&Instruction::with2(Code::Mov_r64_rm64, reg, gs(off)).map_err(|_| TranslateError::TooLarge)?)
    }

    /// `mov reg, imm64`.
    pub fn mov_imm64(&mut self, reg: Register, imm: u64) -> Result<(), TranslateError> {
        self.insn(&Instruction::with2(Code::Mov_r64_imm64, reg, imm).map_err(|_| TranslateError::TooLarge)?)
    }

    /// `mov qword gs:[off], imm32` (sign-extended).
    pub fn store_gs_imm(&mut self, off: usize, imm: i32) -> Result<(), TranslateError> {
        self.insn(
            &Instruction::with2(Code::Mov_rm64_imm32, gs(off), imm).map_err(|_| TranslateError::TooLarge)?,
        )
    }

    /// `jmp qword gs:[off]`.
    pub fn jmp_gs(&mut self, off: usize) -> Result<(), TranslateError> {
        self.insn(&Instruction::with1(Code::Jmp_rm64, gs(off)).map_err(|_| TranslateError::TooLarge)?)
    }

    /// `lea rsp, [rsp + disp]` (adjusts the stack without touching flags).
    pub fn lea_rsp(&mut self, disp: i64) -> Result<(), TranslateError> {
        let m = MemoryOperand::with_base_displ(Register::RSP, disp);
        self.insn(&Instruction::with2(Code::Lea_r64_m, Register::RSP, m).map_err(|_| TranslateError::TooLarge)?)
    }

    /// Push a 64-bit constant without a scratch register or flags: `push imm32` when it
    /// sign-extends to itself (non-PIE code in the low 2 GiB), else `lea rsp,[rsp-8]` and two
    /// 32-bit stores.
    pub fn push_imm64(&mut self, v: u64) -> Result<(), TranslateError> {
        if v < 0x8000_0000 {
            return self.insn(&Instruction::with1(Code::Pushq_imm32, v as i32).map_err(|_| TranslateError::TooLarge)?);
        }
        self.lea_rsp(-8)?;
        for (disp, half) in [(0i64, v as u32), (4, (v >> 32) as u32)] {
            let m = MemoryOperand::with_base_displ(Register::RSP, disp);
            self.insn(&Instruction::with2(Code::Mov_rm32_imm32, m, half).map_err(|_| TranslateError::TooLarge)?)?;
        }
        Ok(())
    }

    /// A `jmp rel32` (`E9 cd`) to `target`; returns the block offset of its rel32 field, which is
    /// what a link site designates.
    pub fn jmp_rel32(&mut self, target: u64) -> Result<usize, TranslateError> {
        self.align_field(1, 4);
        self.raw(&[0xe9, 0, 0, 0, 0]);
        let at = self.len() - LINK_SITE_LEN;
        self.patch_rel32(at, target)?;
        Ok(at)
    }

    /// A `jcc rel32` with condition nibble `cc` (Intel SDM vol. 2, Jcc: `0F 80+cc cd`) to
    /// `target`; returns the block offset of its rel32 field.
    pub fn jcc_rel32(&mut self, cc: u8, target: u64) -> Result<usize, TranslateError> {
        self.align_field(2, 4);
        self.raw(&[0x0f, 0x80 | (cc & 15), 0, 0, 0, 0]);
        let at = self.len() - LINK_SITE_LEN;
        self.patch_rel32(at, target)?;
        Ok(at)
    }

    /// Overwrite one byte at block offset `at`.
    pub fn patch_u8(&mut self, at: usize, v: u8) {
        self.out[self.start + at] = v;
    }

    /// Make the rel32 field at block offset `at` (the last 4 bytes of a jump) reach `target`.
    pub fn patch_rel32(&mut self, at: usize, target: u64) -> Result<(), TranslateError> {
        let mut b = [0u8; LINK_SITE_LEN];
        encode_rel32(self.base + at as u64, target, &mut b).ok_or(TranslateError::TooLarge)?;
        let p = self.start + at;
        self.out[p..p + LINK_SITE_LEN].copy_from_slice(&b);
        Ok(())
    }
}

/// Encode the rel32 field at host address `site` (the last four bytes of a `jmp`/`jcc`) so the
/// jump reaches `target`; `None` if out of range (±2 GiB: the code cache is one mapping well
/// under that).
pub fn encode_rel32(site: u64, target: u64, out: &mut [u8]) -> Option<()> {
    let rel = i32::try_from(target.wrapping_sub(site + LINK_SITE_LEN as u64) as i64).ok()?;
    out.get_mut(..LINK_SITE_LEN)?.copy_from_slice(&rel.to_le_bytes());
    Some(())
}
