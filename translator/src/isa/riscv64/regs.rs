//! The register map: where each x86 general-purpose register, the context pointer, the lazy-flag
//! operands and the scratch registers live on the host while generated code runs.
//!
//! ```text
//!  x86   host        x86   host        role              host
//!  RDI   a0 (x10)    RBX   s2 (x18)    ThreadCtx *       s1 (x9)
//!  RSI   a1 (x11)    RSP   s3 (x19)    flag operand 1    s10 (x26)
//!  RDX   a2 (x12)    RBP   s4 (x20)    flag operand 2    s11 (x27)
//!  RCX   a3 (x13)    R12   s5 (x21)    flag result       s0 (x8)
//!  R8    a4 (x14)    R13   s6 (x22)    scratch           t0 t1 t2 t4 t5 t6 ra s9
//!  R9    a5 (x15)    R14   s7 (x23)
//!  RAX   a6 (x16)    R15   s8 (x24)    never touched     sp gp tp
//!  R10   a7 (x17)
//!  R11   t3 (x28)
//! ```
//!
//! The six SysV argument registers sit in a0–a5 in the same order, so a native call needs no
//! shuffling; the guest's callee-saved registers sit in host callee-saved registers, so a native
//! call preserves them for free. `sp` stays the host stack (RISC-V has no red zone, and a signal
//! frame would land on the guest's data), and `gp`/`tp` belong to the host's C and Rust code.

use super::encode::Reg;
use crate::cpu::Gpr;

/// Host register holding each x86 GPR, indexed by encoding (RAX..R15).
pub const GUEST: [Reg; 16] = [
    Reg::A6, // RAX
    Reg::A3, // RCX
    Reg::A2, // RDX
    Reg::S2, // RBX
    Reg::S3, // RSP
    Reg::S4, // RBP
    Reg::A1, // RSI
    Reg::A0, // RDI
    Reg::A4, // R8
    Reg::A5, // R9
    Reg::A7, // R10
    Reg::T3, // R11
    Reg::S5, // R12
    Reg::S6, // R13
    Reg::S7, // R14
    Reg::S8, // R15
];

/// The host register of guest register `g`.
pub fn guest(g: Gpr) -> Reg {
    GUEST[g as usize]
}

/// Pointer to the thread's [`crate::ThreadCtx`].
pub const CTX: Reg = Reg::S1;
/// First operand of the last flag-setting operation (see `flags.rs`).
pub const F_SRC1: Reg = Reg::S10;
/// Second operand of the last flag-setting operation.
pub const F_SRC2: Reg = Reg::S11;
/// Result of the last flag-setting operation.
pub const F_RES: Reg = Reg::S0;

/// Scratch registers, free between x86 instructions. t0 is reserved for link sites and jumps
/// (`auipc t0; jalr`), so lowering code takes the others first.
pub const T0: Reg = Reg::T0;
/// Scratch.
pub const T1: Reg = Reg::T1;
/// Scratch.
pub const T2: Reg = Reg::T2;
/// Scratch.
pub const T4: Reg = Reg::T4;
/// Scratch.
pub const T5: Reg = Reg::T5;
/// Scratch.
pub const T6: Reg = Reg::T6;
/// Scratch (also the link register of helper calls).
pub const RA: Reg = Reg::RA;
/// Scratch, callee-saved: survives helper calls.
pub const S9: Reg = Reg::S9;

/// Guest registers the host C ABI does not preserve across a helper call (a0–a7, t3).
pub const CALLER_SAVED_GUESTS: [Gpr; 9] = [
    Gpr::Rdi,
    Gpr::Rsi,
    Gpr::Rdx,
    Gpr::Rcx,
    Gpr::R8,
    Gpr::R9,
    Gpr::Rax,
    Gpr::R10,
    Gpr::R11,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_is_injective_and_avoids_reserved_registers() {
        let mut seen = [false; 32];
        for r in GUEST.iter().chain(&[CTX, F_SRC1, F_SRC2, F_RES, T0, T1, T2, T4, T5, T6, RA, S9]) {
            assert!(!seen[r.0 as usize], "{} used twice", r.name());
            seen[r.0 as usize] = true;
            assert!(![Reg::ZERO, Reg::SP, Reg::GP, Reg::TP].contains(r));
        }
        // SysV argument order in a0..a5.
        let args = [Gpr::Rdi, Gpr::Rsi, Gpr::Rdx, Gpr::Rcx, Gpr::R8, Gpr::R9];
        for (i, g) in args.iter().enumerate() {
            assert_eq!(guest(*g), Reg(10 + i as u8));
        }
        // Guest callee-saved registers in host callee-saved registers.
        for g in [Gpr::Rbx, Gpr::Rsp, Gpr::Rbp, Gpr::R12, Gpr::R13, Gpr::R14, Gpr::R15] {
            let r = guest(g).0;
            assert!(r == 8 || r == 9 || (18..=27).contains(&r), "{g:?}");
        }
        // Exactly the guests outside s-registers are listed as caller-saved.
        for g in Gpr::ALL {
            let r = guest(g).0;
            let callee = r == 8 || r == 9 || (18..=27).contains(&r);
            assert_eq!(!callee, CALLER_SAVED_GUESTS.contains(&g), "{g:?}");
        }
    }
}
