//! Encoding helpers for the x86_64 backend: a small assembler over iced-x86's encoder that knows
//! where the bytes will land, plus the few fixed sequences (GS-relative spills, link jumps) that
//! translation emits around copied guest instructions.

use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};

use crate::isa::TranslateError;

/// Size of a link site: `jmp rel32`.
pub const LINK_JMP_LEN: usize = 5;

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

    /// Push a 64-bit constant without a scratch register or flags: `lea rsp,[rsp-8]` and two
    /// 32-bit stores.
    pub fn push_imm64(&mut self, v: u64) -> Result<(), TranslateError> {
        self.lea_rsp(-8)?;
        for (disp, half) in [(0i64, v as u32), (4, (v >> 32) as u32)] {
            let m = MemoryOperand::with_base_displ(Register::RSP, disp);
            self.insn(&Instruction::with2(Code::Mov_rm32_imm32, m, half).map_err(|_| TranslateError::TooLarge)?)?;
        }
        Ok(())
    }

    /// A 5-byte `jmp rel32` to `target`, returning the offset (within this block's output) of the
    /// jump, which is a link site.
    pub fn jmp_rel32(&mut self, target: u64) -> Result<usize, TranslateError> {
        let at = self.len();
        let mut b = [0u8; LINK_JMP_LEN];
        encode_jmp_rel32(self.ip(), target, &mut b).ok_or(TranslateError::TooLarge)?;
        self.raw(&b);
        Ok(at)
    }

    /// A 6-byte `jcc rel32` with condition nibble `cc` (Intel SDM vol. 2, Jcc: `0F 80+cc cd`) to
    /// `target`.
    pub fn jcc_rel32(&mut self, cc: u8, target: u64) -> Result<(), TranslateError> {
        let rel = target.wrapping_sub(self.ip() + 6) as i64;
        let rel = i32::try_from(rel).map_err(|_| TranslateError::TooLarge)?;
        self.raw(&[0x0f, 0x80 | (cc & 15)]);
        self.raw(&rel.to_le_bytes());
        Ok(())
    }

    /// Overwrite one byte at block offset `at`.
    pub fn patch_u8(&mut self, at: usize, v: u8) {
        self.out[self.start + at] = v;
    }

    /// Overwrite a previously emitted rel32 jump at block offset `at` (opcode length `oplen`) so it
    /// reaches `target`.
    pub fn patch_rel32(&mut self, at: usize, oplen: usize, target: u64) -> Result<(), TranslateError> {
        let site = self.base + at as u64;
        let end = site + oplen as u64 + 4;
        let rel = i32::try_from(target.wrapping_sub(end) as i64).map_err(|_| TranslateError::TooLarge)?;
        let p = self.start + at + oplen;
        self.out[p..p + 4].copy_from_slice(&rel.to_le_bytes());
        Ok(())
    }
}

/// Encode `jmp rel32` (`E9 cd`) at `site` reaching `target` into `out`; `None` if out of range.
pub fn encode_jmp_rel32(site: u64, target: u64, out: &mut [u8]) -> Option<()> {
    let rel = i32::try_from(target.wrapping_sub(site + LINK_JMP_LEN as u64) as i64).ok()?;
    out.get_mut(..LINK_JMP_LEN)?.copy_from_slice(&[0xe9, 0, 0, 0, 0]);
    out[1..5].copy_from_slice(&rel.to_le_bytes());
    Some(())
}
