//! Checks of the native side of the differential tests against an independent model: integer ALU
//! results and flags computed in Rust must match what the real CPU (in-process on x86_64, the
//! `x86-oracle` process under qemu-riscv64) reports for generated cases. This keeps the oracle
//! honest on both hosts, independently of any translator.

#![allow(clippy::panic, reason = "test set-up failures abort the test")]

use iced_x86::{Code, Decoder, DecoderOptions, Mnemonic};
use ldnc_tests::difftest::gen::{forms, get_reg, make_case};
use ldnc_tests::difftest::harness::{case_seed, native_outcomes};
use ldnc_tests::difftest::{Case, Expect, Slot};
use translator::cpu::flags;

fn parity(v: u64) -> bool {
    (v as u8).count_ones().is_multiple_of(2)
}

/// (result, flags) of `m` on `w`-bit operands, flags limited to the six status flags.
fn model(m: Mnemonic, w: u32, a: u64, b: u64, cf_in: bool) -> (u64, u64) {
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let (a, b) = (a & mask, b & mask);
    let c = u64::from(cf_in && matches!(m, Mnemonic::Adc | Mnemonic::Sbb));
    let (r, cf, of, af) = match m {
        Mnemonic::Add | Mnemonic::Adc => {
            let wide = u128::from(a) + u128::from(b) + u128::from(c);
            let r = wide as u64 & mask;
            (r, (wide >> w) & 1 == 1, ((a ^ r) & (b ^ r)) >> (w - 1) & 1 == 1, (a ^ b ^ r) & 0x10 != 0)
        }
        Mnemonic::Sub | Mnemonic::Sbb | Mnemonic::Cmp => {
            let r = a.wrapping_sub(b).wrapping_sub(c) & mask;
            let cf = u128::from(a) < u128::from(b) + u128::from(c);
            (r, cf, ((a ^ b) & (a ^ r)) >> (w - 1) & 1 == 1, (a ^ b ^ r) & 0x10 != 0)
        }
        Mnemonic::And => (a & b, false, false, false),
        Mnemonic::Or => (a | b, false, false, false),
        _ => (a ^ b, false, false, false),
    };
    let mut f = 0;
    for (on, bit) in [
        (cf, flags::CF),
        (of, flags::OF),
        (af, flags::AF),
        (r == 0, flags::ZF),
        (r >> (w - 1) & 1 == 1, flags::SF),
        (parity(r), flags::PF),
    ] {
        if on {
            f |= bit;
        }
    }
    (r, f)
}

#[test]
fn native_alu_matches_model() {
    use Mnemonic::*;
    let mut slot = Slot::acquire().unwrap_or_else(|e| panic!("{e}"));
    let fs: Vec<_> = forms(|c| {
        matches!(c.mnemonic(), Add | Adc | Sub | Sbb | Cmp | And | Or | Xor)
            && matches!(c.op_code().op_kinds(), [a, b] if format!("{a:?}{b:?}") == "r32_or_memr32_reg" || format!("{a:?}{b:?}") == "r64_or_memr64_reg" || format!("{a:?}{b:?}") == "r8_or_memr8_reg")
    })
    .into_iter()
    .filter(|f| !f.mem && !f.lock)
    .collect();
    assert!(fs.len() >= 24, "expected the r/m,r forms of 8 mnemonics at 3 widths, got {}", fs.len());
    let mut cases: Vec<(Case, Expect, Code)> = Vec::new();
    for f in &fs {
        for i in 0..64 {
            let (c, ex, _) = make_case(f, slot.n, case_seed(&f.name(), i)).unwrap_or_else(|e| panic!("{e}"));
            cases.push((c, ex, f.code));
        }
    }
    let just: Vec<Case> = cases.iter().map(|c| c.0.clone()).collect();
    let outs = native_outcomes(&mut slot, &just).unwrap_or_else(|e| panic!("{e}"));
    let mut bad = Vec::new();
    for ((case, ex, code), out) in cases.iter().zip(&outs) {
        let d = Decoder::with_ip(64, &case.code, 0, DecoderOptions::NONE).decode();
        let (dst, src) = (d.op_register(0), d.op_register(1));
        let w = dst.size() as u32 * 8;
        let a = get_reg(&case.regs, dst);
        let b = get_reg(&case.regs, src);
        let (r, f) = model(code.mnemonic(), w, a, b, case.regs.rflags & flags::CF != 0);
        let got_f = out.regs.rflags & flags::STATUS & ex.flag_mask;
        if got_f != f & ex.flag_mask {
            bad.push(format!("{d}: a={a:#x} b={b:#x}: flags {got_f:#x}, model {:#x}", f & ex.flag_mask));
        }
        if code.mnemonic() != Cmp {
            let got = get_reg(&out.regs, dst);
            if got != r {
                bad.push(format!("{d}: a={a:#x} b={b:#x}: result {got:#x}, model {r:#x}"));
            }
            if w == 32 && out.regs.gpr[ldnc_tests::difftest::gen::gpr_index(dst).unwrap_or(0)] >> 32 != 0 {
                bad.push(format!("{d}: 32-bit result not zero-extended"));
            }
        }
        if out.rip != ldnc_tests::difftest::code_base(slot.n) + case.code.len() as u64 + 1 {
            bad.push(format!("{d}: rip {:#x}", out.rip));
        }
        if out.window != ldnc_tests::difftest::initial_window(case) {
            bad.push(format!("{d}: register-only instruction changed memory"));
        }
    }
    println!("oracle model check: {} forms, {} cases", fs.len(), cases.len());
    assert!(bad.is_empty(), "{} disagreements:\n{}", bad.len(), bad.join("\n"));
}

/// Memory and XMM travel through the oracle intact: `movdqu [mem], xmm` puts the register's bytes
/// at the operand's address and nowhere else.
#[test]
fn native_memory_store_lands_at_operand() {
    let mut slot = Slot::acquire().unwrap_or_else(|e| panic!("{e}"));
    let f = forms(|c| c == Code::Movdqu_xmmm128_xmm).into_iter().find(|f| f.mem).unwrap_or_else(|| panic!("no form"));
    let mut cases = Vec::new();
    for i in 0..64 {
        cases.push(make_case(&f, slot.n, case_seed("store", i)).unwrap_or_else(|e| panic!("{e}")).0);
    }
    let outs = native_outcomes(&mut slot, &cases).unwrap_or_else(|e| panic!("{e}"));
    for (c, o) in cases.iter().zip(&outs) {
        let d = Decoder::with_ip(64, &c.code, ldnc_tests::difftest::code_base(slot.n), DecoderOptions::NONE).decode();
        let ea = d
            .virtual_address(0, 0, |r, _, _| {
                Some(match r {
                    iced_x86::Register::RIP => d.next_ip(),
                    iced_x86::Register::None => 0,
                    r => get_reg(&c.regs, r),
                })
            })
            .unwrap_or_else(|| panic!("no address"));
        let off = (ea - ldnc_tests::difftest::data_base(slot.n)) as usize;
        let x = c.regs.xmm[d.op_register(1) as usize - iced_x86::Register::XMM0 as usize];
        let mut want = ldnc_tests::difftest::initial_window(c);
        want[off..off + 8].copy_from_slice(&x[0].to_le_bytes());
        want[off + 8..off + 16].copy_from_slice(&x[1].to_le_bytes());
        assert_eq!(o.window, want, "{d}");
        assert_eq!(o.regs.xmm, c.regs.xmm, "{d}: registers changed");
        assert_eq!(o.regs.gpr, c.regs.gpr, "{d}: registers changed");
    }
}
