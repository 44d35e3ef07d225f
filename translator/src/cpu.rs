//! The guest CPU state: the architectural x86-64 registers as the dispatcher and the rest of ld-nc see
//! them, with a fixed `#[repr(C)]` layout because generated code reads and writes it by offset.
//!
//! Between two calls into the code cache a backend may keep registers in host registers and flags in
//! a lazy form; whenever [`crate::Translator::run`] returns, every field here is architecturally
//! exact (flags included).

/// x86-64 general-purpose registers in encoding order (the index into [`CpuState::gpr`]).
#[allow(missing_docs, reason = "register names are self-describing")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Gpr {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl Gpr {
    /// All sixteen, in encoding order.
    pub const ALL: [Gpr; 16] = [
        Gpr::Rax,
        Gpr::Rcx,
        Gpr::Rdx,
        Gpr::Rbx,
        Gpr::Rsp,
        Gpr::Rbp,
        Gpr::Rsi,
        Gpr::Rdi,
        Gpr::R8,
        Gpr::R9,
        Gpr::R10,
        Gpr::R11,
        Gpr::R12,
        Gpr::R13,
        Gpr::R14,
        Gpr::R15,
    ];

    /// The register with encoding `n` (0..16).
    pub fn from_index(n: usize) -> Option<Gpr> {
        Self::ALL.get(n).copied()
    }
}

/// RFLAGS bits (Intel SDM vol. 1, 3.4.3).
pub mod flags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Always 1 in RFLAGS.
    pub const FIXED1: u64 = 1 << 1;
    /// Parity of the low byte of the result.
    pub const PF: u64 = 1 << 2;
    /// Carry out of bit 3.
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Trap (single step); never set by ld-nc.
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable; reads as 1 in user mode.
    pub const IF: u64 = 1 << 9;
    /// String direction.
    pub const DF: u64 = 1 << 10;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
    /// Alignment check / ID: user-writable bits the guest may probe.
    pub const AC: u64 = 1 << 18;
    /// CPUID-supported probe bit.
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

/// The architectural state of one guest thread.
///
/// Layout is part of the contract with generated code: offsets are exported as `OFF_*` constants and
/// checked by a unit test.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct CpuState {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    /// Address of the next guest instruction to run.
    pub rip: u64,
    /// RFLAGS, exact whenever the dispatcher has control.
    pub rflags: u64,
    /// FS segment base (guest TLS pointer, set by `arch_prctl(ARCH_SET_FS)`).
    pub fs_base: u64,
    /// GS segment base.
    pub gs_base: u64,
    /// SSE control and status.
    pub mxcsr: u32,
    /// x87 control word (only its rounding and precision fields are honoured).
    pub fcw: u16,
    /// x87 status word.
    pub fsw: u16,
    /// Padding to keep `xmm` 16-byte aligned.
    pub _pad: u64,
    /// XMM0..XMM15, each as (low, high) 64-bit halves.
    pub xmm: [[u64; 2]; 16],
    /// x87 data registers by *physical* number R0..R7 (ST(i) is R((TOP + i) mod 8), TOP being
    /// bits 11..13 of `fsw`), each an 80-bit extended value as (64-bit significand with its
    /// explicit integer bit, sign << 15 | 15-bit biased exponent). Kept here by backends that
    /// emulate the x87 (riscv64); the x86_64 backend leaves the x87 in the host's registers.
    pub fpr: [[u64; 2]; 8],
    /// x87 tag word in FXSAVE's abridged form: bit i set when physical register i holds a value.
    pub ftw: u8,
    /// Padding to a 16-byte multiple.
    pub _pad2: [u8; 15],
}

/// Byte offset of `gpr[0]` in [`CpuState`].
pub const OFF_GPR: usize = 0;
/// Byte offset of `rip`.
pub const OFF_RIP: usize = 128;
/// Byte offset of `rflags`.
pub const OFF_RFLAGS: usize = 136;
/// Byte offset of `fs_base`.
pub const OFF_FS_BASE: usize = 144;
/// Byte offset of `gs_base`.
pub const OFF_GS_BASE: usize = 152;
/// Byte offset of `mxcsr`.
pub const OFF_MXCSR: usize = 160;
/// Byte offset of `fcw`.
pub const OFF_FCW: usize = 164;
/// Byte offset of `xmm[0]`.
pub const OFF_XMM: usize = 176;
/// Byte offset of `fpr[0]`.
pub const OFF_FPR: usize = 432;
/// Byte offset of `ftw`.
pub const OFF_FTW: usize = 560;

impl Default for CpuState {
    fn default() -> Self {
        CpuState {
            gpr: [0; 16],
            rip: 0,
            rflags: flags::FIXED1 | flags::IF,
            fs_base: 0,
            gs_base: 0,
            // Linux's initial MXCSR: all exceptions masked, round to nearest.
            mxcsr: 0x1f80,
            // Linux's initial x87 control word: 64-bit precision, all exceptions masked.
            fcw: 0x037f,
            fsw: 0,
            _pad: 0,
            xmm: [[0; 2]; 16],
            fpr: [[0; 2]; 8],
            ftw: 0,
            _pad2: [0; 15],
        }
    }
}

impl CpuState {
    /// Value of a general-purpose register.
    pub fn get(&self, r: Gpr) -> u64 {
        self.gpr[r as usize]
    }

    /// Set a general-purpose register.
    pub fn set(&mut self, r: Gpr, v: u64) {
        self.gpr[r as usize] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn layout_matches_exported_offsets() {
        assert_eq!(offset_of!(CpuState, gpr), OFF_GPR);
        assert_eq!(offset_of!(CpuState, rip), OFF_RIP);
        assert_eq!(offset_of!(CpuState, rflags), OFF_RFLAGS);
        assert_eq!(offset_of!(CpuState, fs_base), OFF_FS_BASE);
        assert_eq!(offset_of!(CpuState, gs_base), OFF_GS_BASE);
        assert_eq!(offset_of!(CpuState, mxcsr), OFF_MXCSR);
        assert_eq!(offset_of!(CpuState, fcw), OFF_FCW);
        assert_eq!(offset_of!(CpuState, xmm), OFF_XMM);
        assert_eq!(offset_of!(CpuState, fpr), OFF_FPR);
        assert_eq!(offset_of!(CpuState, ftw), OFF_FTW);
        assert_eq!(core::mem::size_of::<CpuState>(), OFF_FTW + 16);
    }
}
