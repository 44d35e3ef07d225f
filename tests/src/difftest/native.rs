//! The native side of the comparison (x86_64 hosts only): runs a [`Case`] on the real CPU.
//!
//! Each slot's code region holds, above the snippet area, a prologue and an epilogue generated with
//! iced's encoder. The prologue saves the host's callee-saved registers and MXCSR, loads every
//! register of the case from a control block (RFLAGS through `popfq` on a private stack, so the
//! snippet's own stack area is never touched) and jumps to the snippet; the snippet is followed by
//! a jump to the epilogue, which stores every register back before touching anything (`mov` and
//! `lea` leave flags alone), then restores the host. All addresses are below 2 GiB, so the stubs
//! use absolute `[disp32]` operands.

use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};

use super::{code_base, Case, Error, Outcome, Regs, Slot, MAX_CODE, WINDOW};

const PROLOGUE: u64 = 0x8000;
const EPILOGUE: u64 = 0x8800;
const CTL: u64 = 0xc000;
const IN_GPR: u64 = CTL;
const IN_RFLAGS: u64 = CTL + 0x80;
const IN_MXCSR: u64 = CTL + 0x88;
const IN_XMM: u64 = CTL + 0x100;
const OUT_GPR: u64 = CTL + 0x200;
const OUT_RFLAGS: u64 = CTL + 0x280;
const OUT_MXCSR: u64 = CTL + 0x288;
const OUT_XMM: u64 = CTL + 0x300;
const HOST_RSP: u64 = CTL + 0x400;
const HOST_MXCSR: u64 = CTL + 0x408;
const PRIVATE_STACK_TOP: u64 = 0x1_0000;

const GPRS: [Register; 16] = [
    Register::RAX,
    Register::RCX,
    Register::RDX,
    Register::RBX,
    Register::RSP,
    Register::RBP,
    Register::RSI,
    Register::RDI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

const XMMS: [Register; 16] = [
    Register::XMM0,
    Register::XMM1,
    Register::XMM2,
    Register::XMM3,
    Register::XMM4,
    Register::XMM5,
    Register::XMM6,
    Register::XMM7,
    Register::XMM8,
    Register::XMM9,
    Register::XMM10,
    Register::XMM11,
    Register::XMM12,
    Register::XMM13,
    Register::XMM14,
    Register::XMM15,
];

const CALLEE_SAVED: [Register; 6] =
    [Register::RBX, Register::RBP, Register::R12, Register::R13, Register::R14, Register::R15];

fn abs(addr: u64) -> MemoryOperand {
    MemoryOperand::new(Register::None, Register::None, 1, addr as i64, 4, false, Register::None)
}

/// Encodes a straight-line stub at a fixed address.
struct Stub {
    enc: Encoder,
    ip: u64,
}

impl Stub {
    fn new(ip: u64) -> Stub {
        Stub { enc: Encoder::new(64), ip }
    }

    fn emit(&mut self, i: Result<Instruction, iced_x86::IcedError>) -> Result<(), Error> {
        let i = i.map_err(|_| Error::BadCase("stub instruction"))?;
        let n = self.enc.encode(&i, self.ip).map_err(|_| Error::BadCase("stub encoding"))?;
        self.ip += n as u64;
        Ok(())
    }

    fn bytes(mut self) -> Vec<u8> {
        self.enc.take_buffer()
    }
}

fn prologue(base: u64) -> Result<Vec<u8>, Error> {
    let mut s = Stub::new(base + PROLOGUE);
    for r in CALLEE_SAVED {
        s.emit(Instruction::with1(Code::Push_r64, r))?;
    }
    s.emit(Instruction::with2(Code::Mov_rm64_r64, abs(base + HOST_RSP), Register::RSP))?;
    s.emit(Instruction::with1(Code::Stmxcsr_m32, abs(base + HOST_MXCSR)))?;
    s.emit(Instruction::with1(Code::Ldmxcsr_m32, abs(base + IN_MXCSR)))?;
    for (i, x) in XMMS.iter().enumerate() {
        s.emit(Instruction::with2(Code::Movdqu_xmm_xmmm128, *x, abs(base + IN_XMM + 16 * i as u64)))?;
    }
    s.emit(Instruction::with2(Code::Mov_r64_imm64, Register::RSP, base + PRIVATE_STACK_TOP))?;
    s.emit(Instruction::with1(Code::Push_rm64, abs(base + IN_RFLAGS)))?;
    s.emit(Ok(Instruction::with(Code::Popfq)))?;
    for (i, r) in GPRS.iter().enumerate() {
        if *r != Register::RSP {
            s.emit(Instruction::with2(Code::Mov_r64_rm64, *r, abs(base + IN_GPR + 8 * i as u64)))?;
        }
    }
    s.emit(Instruction::with2(Code::Mov_r64_rm64, Register::RSP, abs(base + IN_GPR + 8 * 4)))?;
    s.emit(Instruction::with_branch(Code::Jmp_rel32_64, base))?;
    Ok(s.bytes())
}

fn epilogue(base: u64) -> Result<Vec<u8>, Error> {
    let mut s = Stub::new(base + EPILOGUE);
    for (i, r) in GPRS.iter().enumerate() {
        s.emit(Instruction::with2(Code::Mov_rm64_r64, abs(base + OUT_GPR + 8 * i as u64), *r))?;
    }
    s.emit(Instruction::with2(Code::Mov_r64_imm64, Register::RSP, base + PRIVATE_STACK_TOP))?;
    s.emit(Ok(Instruction::with(Code::Pushfq)))?;
    s.emit(Instruction::with1(Code::Pop_r64, Register::RAX))?;
    s.emit(Instruction::with2(Code::Mov_rm64_r64, abs(base + OUT_RFLAGS), Register::RAX))?;
    // The host ABI requires DF clear.
    s.emit(Ok(Instruction::with(Code::Cld)))?;
    for (i, x) in XMMS.iter().enumerate() {
        s.emit(Instruction::with2(Code::Movdqu_xmmm128_xmm, abs(base + OUT_XMM + 16 * i as u64), *x))?;
    }
    s.emit(Instruction::with1(Code::Stmxcsr_m32, abs(base + OUT_MXCSR)))?;
    s.emit(Instruction::with1(Code::Ldmxcsr_m32, abs(base + HOST_MXCSR)))?;
    s.emit(Instruction::with2(Code::Mov_r64_rm64, Register::RSP, abs(base + HOST_RSP)))?;
    for r in CALLEE_SAVED.iter().rev() {
        s.emit(Instruction::with1(Code::Pop_r64, *r))?;
    }
    s.emit(Ok(Instruction::with(Code::Retnq)))?;
    Ok(s.bytes())
}

/// Runs cases natively in one slot.
#[derive(Debug)]
pub struct Native {
    base: u64,
}

impl Native {
    /// Write the stubs into `slot`'s code region.
    pub fn install(slot: &mut Slot) -> Result<Native, Error> {
        let base = code_base(slot.n);
        let pro = prologue(base)?;
        let epi = epilogue(base)?;
        let code = slot.code();
        code[PROLOGUE as usize..PROLOGUE as usize + pro.len()].copy_from_slice(&pro);
        code[EPILOGUE as usize..EPILOGUE as usize + epi.len()].copy_from_slice(&epi);
        Ok(Native { base })
    }

    fn put64(code: &mut [u8], off: u64, v: u64) {
        code[off as usize..off as usize + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn get64(code: &[u8], off: u64) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&code[off as usize..off as usize + 8]);
        u64::from_le_bytes(a)
    }

    /// Run `case` on this CPU.
    ///
    /// # Safety
    /// The case's code runs natively with the case's registers: it must be straight-line code that
    /// only touches the slot's data region and ends by falling off its end, and it must not fault
    /// (no division by zero, no unaligned SSE access, MXCSR exceptions masked).
    pub unsafe fn run(&self, slot: &mut Slot, case: &Case) -> Result<Outcome, Error> {
        if case.slot != slot.n || code_base(slot.n) != self.base {
            return Err(Error::BadCase("case assembled for another slot"));
        }
        if case.code.len() + 5 > MAX_CODE {
            return Err(Error::BadCase("snippet too long"));
        }
        let end = self.base + case.code.len() as u64;
        let mut jmp = Stub::new(end);
        jmp.emit(Instruction::with_branch(Code::Jmp_rel32_64, self.base + EPILOGUE))?;
        let jmp = jmp.bytes();
        slot.load_window(case);
        let code = slot.code();
        code[..case.code.len()].copy_from_slice(&case.code);
        code[case.code.len()..case.code.len() + jmp.len()].copy_from_slice(&jmp);
        for (i, v) in case.regs.gpr.iter().enumerate() {
            Self::put64(code, IN_GPR + 8 * i as u64, *v);
        }
        // Only the status flags and DF are the case's; bit 1 is fixed and IF reads as 1.
        let rflags = (case.regs.rflags & (translator::cpu::flags::STATUS | translator::cpu::flags::DF)) | 0x202;
        Self::put64(code, IN_RFLAGS, rflags);
        Self::put64(code, IN_MXCSR, u64::from(case.regs.mxcsr));
        for (i, x) in case.regs.xmm.iter().enumerate() {
            Self::put64(code, IN_XMM + 16 * i as u64, x[0]);
            Self::put64(code, IN_XMM + 16 * i as u64 + 8, x[1]);
        }
        // SAFETY: the prologue was written by `install` into this executable region; it follows the
        // sysv64 ABI (callee-saved registers, MXCSR control and DF restored) and the caller vouches
        // for the snippet per this function's contract.
        unsafe {
            let f: extern "sysv64" fn() = core::mem::transmute::<u64, extern "sysv64" fn()>(self.base + PROLOGUE);
            f();
        }
        let code = slot.code();
        let mut regs = Regs::default();
        for i in 0..16 {
            regs.gpr[i] = Self::get64(code, OUT_GPR + 8 * i as u64);
        }
        regs.rflags = Self::get64(code, OUT_RFLAGS);
        regs.mxcsr = Self::get64(code, OUT_MXCSR) as u32;
        for i in 0..16 {
            regs.xmm[i] = [Self::get64(code, OUT_XMM + 16 * i as u64), Self::get64(code, OUT_XMM + 16 * i as u64 + 8)];
        }
        let (window, wrote_outside) = slot.read_window();
        debug_assert_eq!(window.len(), WINDOW);
        // Natively the snippet is followed by a jump; under the translator by `int3`, after which
        // RIP points. Report the address the translator must report.
        Ok(Outcome { regs, rip: end + 1, window, wrote_outside })
    }
}
