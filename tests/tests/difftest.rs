//! Differential instruction tests (issue 2): every form of the listed instructions runs natively and
//! under the translator's host backend, over edge cases and seeded random inputs, and GPRs, RIP,
//! RFLAGS (minus architecturally undefined flags), XMM0-15, MXCSR and the data window must agree.
//!
//! On x86_64 the native side runs in-process; under qemu-riscv64 it comes from the x86_64
//! `x86-oracle` binary (`cargo build -p ldnc-tests --bin x86-oracle`, or `LDNC_ORACLE=path`).
//! `DIFFTEST_CASES` sets cases per form (default 48), `DIFFTEST_SEED` the base seed. Forms a backend
//! does not handle yet are listed in `tests/difftest/KNOWN-UNSUPPORTED-<backend>`.

#![allow(clippy::panic, reason = "test set-up failures abort the test")]

use iced_x86::{Code, CpuidFeature, Instruction, Mnemonic, Register};
use ldnc_tests::difftest::gen::{self, forms, forms_of, Form};
use ldnc_tests::difftest::harness::{run_family, run_raw, translator_for};
use ldnc_tests::difftest::{code_base, Case, Regs, Slot};
use translator::cpu::flags;
use translator::isa::Backend;
use translator::{Exit, HostBackend};

type B = HostBackend;

fn only_features(code: Code, allowed: &[CpuidFeature]) -> bool {
    let f = code.cpuid_features();
    !f.is_empty() && f.iter().all(|x| allowed.contains(x))
}

const BASE_INT: [CpuidFeature; 4] =
    [CpuidFeature::INTEL8086, CpuidFeature::INTEL386, CpuidFeature::X64, CpuidFeature::INTEL486];

#[test]
fn alu() {
    use Mnemonic::*;
    let f = forms_of(&[
        Add, Adc, Sub, Sbb, And, Or, Xor, Cmp, Test, Inc, Dec, Neg, Not, Mov, Movzx, Movsx, Movsxd, Lea, Cbw, Cwde,
        Cdqe, Cwd, Cdq, Cqo, Lahf, Sahf, Clc, Stc, Cmc, Cld, Std, Nop,
    ]);
    run_family::<B>("alu", &f);
}

#[test]
fn stack() {
    use Mnemonic::*;
    let f: Vec<Form> = forms_of(&[Push, Pop, Leave]);
    run_family::<B>("stack", &f);
}

#[test]
fn shifts() {
    use Mnemonic::*;
    let f = forms_of(&[Shl, Sal, Shr, Sar, Rol, Ror, Rcl, Rcr, Shld, Shrd]);
    run_family::<B>("shifts", &f);
}

#[test]
fn muldiv() {
    use Mnemonic::*;
    let f = forms_of(&[Mul, Imul, Div, Idiv]);
    run_family::<B>("muldiv", &f);
}

#[test]
fn bits() {
    use Mnemonic::*;
    let f = forms_of(&[Bt, Bts, Btr, Btc, Bsf, Bsr, Tzcnt, Lzcnt, Popcnt, Bswap]);
    run_family::<B>("bits", &f);
}

#[test]
fn setcc_cmov() {
    let f = forms(|c| {
        let n = format!("{:?}", c.mnemonic());
        (n.starts_with("Set") || n.starts_with("Cmov")) && c.mnemonic() != Mnemonic::Setssbsy
    });
    run_family::<B>("setcc_cmov", &f);
}

#[test]
fn xchg_atomic() {
    use Mnemonic::*;
    let f = forms_of(&[Xchg, Cmpxchg, Xadd, Cmpxchg8b, Cmpxchg16b]);
    run_family::<B>("xchg_atomic", &f);
}

#[test]
fn string() {
    use Mnemonic::*;
    let f = forms_of(&[
        Movsb, Movsw, Movsd, Movsq, Stosb, Stosw, Stosd, Stosq, Lodsb, Lodsw, Lodsd, Lodsq, Cmpsb, Cmpsw, Cmpsd, Cmpsq,
        Scasb, Scasw, Scasd, Scasq,
    ]);
    // Movsd/Cmpsd also name SSE2 instructions; those run in the SSE families.
    let f: Vec<Form> = f.into_iter().filter(|x| only_features(x.code, &BASE_INT)).collect();
    run_family::<B>("string", &f);
}

fn sse(feature: CpuidFeature, keep: impl Fn(Mnemonic) -> bool) -> Vec<Form> {
    forms(|c| c.cpuid_features() == [feature] && keep(c.mnemonic()))
}

fn is_sse_int(m: Mnemonic) -> bool {
    let n = format!("{m:?}");
    n.starts_with('P') || matches!(m, Mnemonic::Movd | Mnemonic::Movq | Mnemonic::Movdqa | Mnemonic::Movdqu)
}

#[test]
fn sse1() {
    run_family::<B>("sse1", &sse(CpuidFeature::SSE, |_| true));
}

#[test]
fn sse2_int() {
    run_family::<B>("sse2_int", &sse(CpuidFeature::SSE2, is_sse_int));
}

#[test]
fn sse2_fp() {
    run_family::<B>("sse2_fp", &sse(CpuidFeature::SSE2, |m| !is_sse_int(m)));
}

#[test]
fn sse3_ssse3() {
    let mut f = sse(CpuidFeature::SSE3, |_| true);
    f.extend(sse(CpuidFeature::SSSE3, |_| true));
    run_family::<B>("sse3_ssse3", &f);
}

#[test]
fn sse41() {
    run_family::<B>("sse41", &sse(CpuidFeature::SSE4_1, |_| true));
}

/// A case with default registers around `insns`.
fn snippet(slot: &Slot, insns: &[Instruction], regs: Regs) -> Case {
    match gen::assemble(insns, slot.n) {
        Ok(code) => Case { slot: slot.n, code, regs, mem_seed: 1, patches: Vec::new() },
        Err(e) => panic!("{e}"),
    }
}

fn default_regs(slot: &Slot) -> Regs {
    let mut r = Regs { rflags: flags::FIXED1 | flags::IF, mxcsr: 0x1f80, ..Regs::default() };
    for (i, g) in r.gpr.iter_mut().enumerate() {
        *g = 0x1111_1111_1111_1111u64.wrapping_mul(i as u64 + 1);
    }
    r.gpr[4] = ldnc_tests::difftest::data_base(slot.n) + ldnc_tests::difftest::STACK_TOP;
    r
}

fn ins(r: Result<Instruction, iced_x86::IcedError>) -> Instruction {
    match r {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    }
}

/// CPUID answers from the translator's own model: it must be what `translator::cpuid::query`
/// says for the backend's features, consistent with itself (vendor, max leaves, feature bits that
/// the backend really translates), and must leave everything but RAX/RBX/RCX/RDX alone.
#[test]
fn cpuid() {
    let mut slot = Slot::acquire().unwrap_or_else(|e| panic!("{e}"));
    let mut tr = translator_for::<B>(&slot).unwrap_or_else(|e| panic!("{e}"));
    let feats = tr.features();
    let mut problems = Vec::new();
    let leaves: [(u32, u32); 10] =
        [(0, 0), (1, 0), (2, 0), (4, 0), (4, 1), (7, 0), (0x8000_0000, 0), (0x8000_0001, 0), (0x8000_0002, 0), (0x4000_0000, 0)];
    for (leaf, sub) in leaves {
        let mut regs = default_regs(&slot);
        regs.gpr[0] = 0xdead_beef_0000_0000 | u64::from(leaf);
        regs.gpr[1] = 0xdead_beef_0000_0000 | u64::from(sub);
        regs.rflags |= flags::CF | flags::ZF;
        let case = snippet(&slot, &[Instruction::with(Code::Cpuid)], regs.clone());
        let (exit, ctx) = run_raw(&mut tr, &mut slot, &case);
        if exit != Exit::Breakpoint {
            problems.push(format!("leaf {leaf:#x}: exit {exit:?}"));
            continue;
        }
        let q = translator::cpuid::query(feats, leaf, sub);
        let got = [ctx.cpu.gpr[0], ctx.cpu.gpr[3], ctx.cpu.gpr[1], ctx.cpu.gpr[2]];
        let want = [q.eax, q.ebx, q.ecx, q.edx].map(u64::from);
        if got != want {
            problems.push(format!("leaf {leaf:#x}.{sub}: eax/ebx/ecx/edx {got:x?}, model says {want:x?}"));
        }
        for i in [4usize, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            if ctx.cpu.gpr[i] != regs.gpr[i] {
                problems.push(format!("leaf {leaf:#x}: cpuid changed gpr {i}"));
            }
        }
        if ctx.cpu.rflags & flags::STATUS != regs.rflags & flags::STATUS {
            problems.push(format!("leaf {leaf:#x}: cpuid changed flags"));
        }
        if ctx.cpu.rip != code_base(slot.n) + case.code.len() as u64 + 1 {
            problems.push(format!("leaf {leaf:#x}: rip {:#x} after int3", ctx.cpu.rip));
        }
    }
    // Self-consistency of the model for this backend.
    let l0 = translator::cpuid::query(feats, 0, 0);
    let l1 = translator::cpuid::query(feats, 1, 0);
    let mut vendor = Vec::new();
    for w in [l0.ebx, l0.edx, l0.ecx] {
        vendor.extend_from_slice(&w.to_le_bytes());
    }
    if vendor != b"GenuineIntel" && vendor != b"AuthenticAMD" {
        problems.push(format!("vendor {:?}", String::from_utf8_lossy(&vendor)));
    }
    if l0.eax < 7 {
        problems.push(format!("max basic leaf {} < 7", l0.eax));
    }
    if l1.edx & (1 << 26) == 0 || l1.edx & (1 << 25) == 0 || l1.edx & (1 << 15) == 0 {
        problems.push("leaf 1 EDX lacks SSE/SSE2/CMOV".into());
    }
    let bit = |on: bool, f: translator::cpuid::Features| on == feats.contains(f);
    let checks = [
        (bit(l1.ecx & 1 != 0, translator::cpuid::Features::SSE3), "SSE3"),
        (bit(l1.ecx & (1 << 9) != 0, translator::cpuid::Features::SSSE3), "SSSE3"),
        (bit(l1.ecx & (1 << 19) != 0, translator::cpuid::Features::SSE41), "SSE4.1"),
        (bit(l1.ecx & (1 << 23) != 0, translator::cpuid::Features::POPCNT), "POPCNT"),
        (bit(l1.ecx & (1 << 13) != 0, translator::cpuid::Features::CX16), "CX16"),
    ];
    for (ok, name) in checks {
        if !ok {
            problems.push(format!("leaf 1 {name} bit disagrees with the backend's features"));
        }
    }
    // What is advertised must exist on this x86_64 machine, or the native side could not check it.
    #[cfg(target_arch = "x86_64")]
    {
        let host = [
            (translator::cpuid::Features::SSE3, std::arch::is_x86_feature_detected!("sse3")),
            (translator::cpuid::Features::SSSE3, std::arch::is_x86_feature_detected!("ssse3")),
            (translator::cpuid::Features::SSE41, std::arch::is_x86_feature_detected!("sse4.1")),
            (translator::cpuid::Features::POPCNT, std::arch::is_x86_feature_detected!("popcnt")),
            (translator::cpuid::Features::LZCNT, std::arch::is_x86_feature_detected!("lzcnt")),
        ];
        for (f, has) in host {
            if feats.contains(f) && !has {
                problems.push(format!("{f:?} advertised but this CPU lacks it"));
            }
        }
    }
    println!("difftest cpuid [{}]: {} leaves, features {:?}", <B as Backend>::NAME, leaves.len(), feats);
    assert!(problems.is_empty(), "cpuid problems:\n{}", problems.join("\n"));
}

/// RDTSC: EDX:EAX with the upper halves of RAX/RDX cleared, monotonic within a snippet and across
/// runs (not equal to anything in particular).
#[test]
fn rdtsc() {
    let mut slot = Slot::acquire().unwrap_or_else(|e| panic!("{e}"));
    let mut tr = translator_for::<B>(&slot).unwrap_or_else(|e| panic!("{e}"));
    let insns = [
        Instruction::with(Code::Rdtsc),
        ins(Instruction::with2(Code::Mov_r64_rm64, Register::R8, Register::RAX)),
        ins(Instruction::with2(Code::Mov_r64_rm64, Register::R9, Register::RDX)),
        Instruction::with(Code::Rdtsc),
    ];
    let case = snippet(&slot, &insns, default_regs(&slot));
    let mut last = 0u64;
    for run in 0..20 {
        let (exit, ctx) = run_raw(&mut tr, &mut slot, &case);
        assert_eq!(exit, Exit::Breakpoint, "run {run}");
        let g = &ctx.cpu.gpr;
        for (i, v) in [(0, g[0]), (2, g[2]), (8, g[8]), (9, g[9])] {
            assert_eq!(v >> 32, 0, "run {run}: upper half of gpr {i} not cleared: {v:#x}");
        }
        let t1 = (g[9] << 32) | g[8];
        let t2 = (g[2] << 32) | g[0];
        assert!(t2 >= t1, "run {run}: second rdtsc {t2} < first {t1}");
        assert!(t1 >= last, "run {run}: rdtsc went back from {last} to {t1}");
        last = t2;
        assert_eq!(g[1], default_regs(&slot).gpr[1], "rdtsc must not touch rcx");
    }
}

/// SYSCALL leaves the translator with `Exit::Syscall`, RIP after it and the registers untouched.
#[test]
fn syscall_exits() {
    let mut slot = Slot::acquire().unwrap_or_else(|e| panic!("{e}"));
    let mut tr = translator_for::<B>(&slot).unwrap_or_else(|e| panic!("{e}"));
    let insns = [
        ins(Instruction::with2(Code::Mov_r32_imm32, Register::EAX, 60u32)),
        ins(Instruction::with2(Code::Add_rm64_imm8, Register::RDI, 5i32)),
        Instruction::with(Code::Syscall),
    ];
    let regs = default_regs(&slot);
    let case = snippet(&slot, &insns, regs.clone());
    let (exit, ctx) = run_raw(&mut tr, &mut slot, &case);
    assert_eq!(exit, Exit::Syscall);
    assert_eq!(ctx.cpu.rip, code_base(slot.n) + case.code.len() as u64, "rip after syscall");
    assert_eq!(ctx.cpu.gpr[0], 60);
    assert_eq!(ctx.cpu.gpr[7], regs.gpr[7] + 5);
    for i in [2usize, 3, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15] {
        assert_eq!(ctx.cpu.gpr[i], regs.gpr[i], "gpr {i}");
    }
}

/// Flag chains: every SETcc/CMOVcc/Jcc condition, ADC/SBB, RCL/RCR, LAHF and PUSHFQ after a random
/// flag producer.
#[test]
fn flag_chains() {
    use ldnc_tests::difftest::gen::{make_chain, Consumer};
    use ldnc_tests::difftest::harness::{run_groups, Group};
    use Mnemonic::*;
    let producers: Vec<Form> = forms_of(&[
        Add, Adc, Sub, Sbb, And, Or, Xor, Cmp, Test, Inc, Dec, Neg, Shl, Shr, Sar, Rol, Ror, Rcl, Rcr, Shld, Shrd, Bt,
        Bts, Imul, Mul, Sahf, Cmc, Clc, Stc, Xadd, Cmpxchg, Popcnt, Tzcnt, Lzcnt,
    ])
    .into_iter()
    // Register forms only: chains test the consumer, with producers that are the common case.
    .filter(|f| !f.lock && !f.mem)
    .collect();
    let mut consumers: Vec<Consumer> = forms(|c| {
        let n = format!("{:?}", c.mnemonic());
        ((n.starts_with("Set") && c.mnemonic() != Setssbsy) || n.starts_with("Cmov"))
            && matches!(c.op_code().op_kinds().first(), Some(iced_x86::OpCodeOperandKind::r8_or_mem) | Some(iced_x86::OpCodeOperandKind::r32_reg))
    })
    .into_iter()
    .chain(forms(|c| {
        matches!(
            c,
            Code::Adc_rm64_r64 | Code::Sbb_rm32_r32 | Code::Adc_rm8_imm8 | Code::Rcl_rm64_1 | Code::Rcr_rm32_1 | Code::Lahf | Code::Pushfq
        )
    }))
    .filter(|f| !f.mem)
    .map(Consumer::Form)
    .collect();
    consumers.extend(
        [
            Code::Jo_rel8_64,
            Code::Jno_rel8_64,
            Code::Jb_rel8_64,
            Code::Jae_rel8_64,
            Code::Je_rel8_64,
            Code::Jne_rel8_64,
            Code::Jbe_rel8_64,
            Code::Ja_rel8_64,
            Code::Js_rel8_64,
            Code::Jns_rel8_64,
            Code::Jp_rel8_64,
            Code::Jnp_rel8_64,
            Code::Jl_rel8_64,
            Code::Jge_rel8_64,
            Code::Jle_rel8_64,
            Code::Jg_rel8_64,
        ]
        .map(Consumer::Jcc),
    );
    let groups = consumers
        .iter()
        .map(|c| {
            let (c, p) = (*c, &producers);
            Group {
                name: c.name(),
                needs: Some(translator::cpuid::Features::BASELINE),
                make: Box::new(move |slot, seed, _, feats| make_chain(&c, p, slot, seed, feats)),
            }
        })
        .collect();
    run_groups::<B>("flag_chains", groups);
}

/// The comparison is not vacuous: running a different instruction under the translator than
/// natively (SUB for ADD, a store one byte off) must be reported in the right fields.
#[test]
fn harness_detects_wrong_results() {
    use ldnc_tests::difftest::compare;
    use ldnc_tests::difftest::harness::{case_seed, native_outcomes, run_translated};
    let mut slot = Slot::acquire().unwrap_or_else(|e| panic!("{e}"));
    let mut tr = translator_for::<B>(&slot).unwrap_or_else(|e| panic!("{e}"));
    let add = forms(|c| c == Code::Add_rm32_r32).into_iter().find(|f| !f.mem).unwrap_or_else(|| panic!("no form"));
    let (mut case, mut ex, text) = gen::make_case(&add, slot.n, case_seed("detect", 0)).unwrap_or_else(|e| panic!("{e}"));
    // Odd operands: x + y == x - y (mod 2^32) only when 2y is 0, so ADD and SUB always differ.
    for (n, g) in case.regs.gpr.iter_mut().enumerate() {
        if n != 4 {
            *g |= 1;
        }
    }
    ex.stack = Some((ldnc_tests::difftest::data_base(slot.n), case.regs.gpr[4]));
    let native = native_outcomes(&mut slot, std::slice::from_ref(&case)).unwrap_or_else(|e| panic!("{e}"));
    let mut wrong = case.clone();
    // ADD r/m32, r32 is 01 /r; SUB r/m32, r32 is 29 /r with the same ModRM.
    let op = wrong.code.iter().position(|b| *b == 0x01).unwrap_or_else(|| panic!("no opcode in {text}"));
    wrong.code[op] = 0x29;
    let tr_out = run_translated(&mut tr, &mut slot, &wrong).unwrap_or_else(|e| panic!("{e}"));
    let d = compare(&native[0], &tr_out, &ex);
    assert!(!d.is_empty(), "{text}: add vs sub not detected");
    let same = run_translated(&mut tr, &mut slot, &case).unwrap_or_else(|e| panic!("{e}"));
    assert!(compare(&native[0], &same, &ex).is_empty(), "{text}: identical run reported as different");
    let mut off = same.clone();
    off.window[0x100] ^= 1;
    let d = compare(&native[0], &off, &ex);
    assert_eq!(d.len(), 1, "one byte of memory differs: {d:?}");
    assert_eq!(d[0].field, "mem[0x100]");
}

/// SSE floating-point arithmetic, compares and conversions with MXCSR.DAZ and MXCSR.FTZ set, as
/// `-ffast-math` programs run (crtfastmath sets them); the inputs include denormals.
#[test]
fn sse_daz_ftz() {
    let fp = |m: Mnemonic| {
        let n = format!("{m:?}").to_ascii_lowercase();
        !n.starts_with('p')
            && !n.starts_with("mov")
            && !matches!(m, Mnemonic::Andps | Mnemonic::Andnps | Mnemonic::Orps | Mnemonic::Xorps | Mnemonic::Andpd | Mnemonic::Andnpd | Mnemonic::Orpd | Mnemonic::Xorpd)
            && (n.ends_with("ps") || n.ends_with("pd") || n.ends_with("ss") || n.ends_with("sd") || n.starts_with("cvt"))
            && !n.starts_with("shuf")
            && !n.starts_with("unpck")
            && !n.starts_with("blend")
    };
    let f: Vec<Form> = forms(|c| {
        matches!(
            c.cpuid_features(),
            [CpuidFeature::SSE] | [CpuidFeature::SSE2] | [CpuidFeature::SSE3] | [CpuidFeature::SSE4_1]
        ) && fp(c.mnemonic())
    })
    .into_iter()
    .filter(|f| !f.mem)
    .map(|f| Form { daz_ftz: true, ..f })
    .collect();
    run_family::<B>("sse_daz_ftz", &f);
}

/// SSE4.2 (string compares, PCMPGTQ, CRC32), when the backend's CPUID advertises it.
#[test]
fn sse42() {
    run_family::<B>("sse42", &sse(CpuidFeature::SSE4_2, |_| true));
}

/// BMI1/BMI2 GPR instructions (VEX-encoded ANDN, BEXTR, BLSI, BLSMSK, BLSR, BZHI, MULX, PDEP,
/// PEXT, RORX, SARX, SHLX, SHRX; TZCNT is in `bits`), when advertised.
#[test]
fn bmi() {
    let f = forms(|c| {
        c.encoding() == iced_x86::EncodingKind::VEX
            && c.cpuid_features().iter().all(|x| matches!(x, CpuidFeature::BMI1 | CpuidFeature::BMI2))
    });
    assert!(f.len() >= 26, "expected the BMI forms, got {}", f.len());
    run_family::<B>("bmi", &f);
}

/// `rep bsf` (TZCNT's encoding) with a non-zero source must work whatever CPUID says: GCC emits it
/// for `__builtin_ctz` without `-mbmi`. Runs only when BMI1 is not advertised (else `bits` covers
/// TZCNT fully).
#[test]
fn rep_bsf() {
    use ldnc_tests::difftest::gen::make_rep_bsf_case;
    use ldnc_tests::difftest::harness::{run_groups, Group};
    use translator::cpuid::Features;
    let slot = Slot::acquire().unwrap_or_else(|e| panic!("{e}"));
    let advertised = translator_for::<B>(&slot).unwrap_or_else(|e| panic!("{e}")).features();
    drop(slot);
    if advertised.contains(Features::BMI1) {
        println!("difftest rep_bsf [{}]: BMI1 advertised, TZCNT is tested in `bits`", <B as Backend>::NAME);
        return;
    }
    let groups = forms_of(&[Mnemonic::Tzcnt])
        .into_iter()
        .map(|f| Group {
            name: format!("repbsf:{}", f.name()),
            needs: Some(Features::BASELINE),
            make: Box::new(move |slot, seed, _, _| make_rep_bsf_case(&f, slot, seed)),
        })
        .collect();
    run_groups::<B>("rep_bsf", groups);
}

// ---- x87 (added by the x87 helper) ----

/// 80-bit operands for the x87 family: (significand, sign|exponent), edges first.
const X87_EDGES: [(u64, u16); 20] = [
    (0, 0),
    (0, 0x8000),
    (1 << 63, 0x3fff),
    (1 << 63, 0xbfff),
    (0xc90f_daa2_2168_c235, 0x4000),
    (0xffff_ffff_ffff_ffff, 0x7ffe),
    (1 << 63, 0x0001),
    (1, 0),
    (0x4000_0000_0000_0001, 0x8000),
    (1 << 63, 0x7fff),
    (1 << 63, 0xffff),
    (0xc000_0000_0000_0000, 0xffff),
    (0xc000_0000_1234_0000, 0x7fff),
    (0xa000_0000_0000_0001, 0x7fff),
    (0x4000_0000_0000_0000, 0x3fff),
    (0x8000_0000_0000_0000, 0x0000),
    (0xd000_0000_0000_0000, 0x403d),
    (0xffff_ffff_ffff_f800, 0x3ffe),
    (0xa000_0000_0000_0000, 0x4002),
    (0xb17f_ffff_0000_0000, 0x4008),
];

fn x87_value(rng: &mut ldnc_tests::difftest::Rng, index: u64, k: u64) -> [u8; 10] {
    let (sig, se) = if index < 12 && k < 2 {
        X87_EDGES[((index * 2 + k) % X87_EDGES.len() as u64) as usize]
    } else {
        match rng.below(4) {
            0 => X87_EDGES[rng.below(X87_EDGES.len() as u64) as usize],
            1 => (1 << 63 | rng.next_u64() >> 30, 0x3fff | (rng.below(2) as u16) << 15),
            2 => (1 << 63 | rng.next_u64(), (0x3fff - 80 + rng.below(160) as u16) | (rng.below(2) as u16) << 15),
            _ => (1 << 63 | rng.next_u64(), (rng.below(0x7fff) as u16) | (rng.below(2) as u16) << 15),
        }
    };
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&sig.to_le_bytes());
    b[8..].copy_from_slice(&se.to_le_bytes());
    b
}

/// One x87 case: `fninit; fldcw` (random precision and rounding, exceptions masked), a stack of
/// `fld m80` values (depth 0..=8), the instruction under test with its memory operand in the
/// window, then `fnstsw`, `fnstcw` and eight `fstp m80` (an empty register stores the
/// indefinite, so tags are compared too) into the window, and `fninit`.
fn x87_case(code: Code, slot: u8, seed: u64, index: u64) -> Result<(Case, ldnc_tests::difftest::Expect, String), gen::GenError> {
    use iced_x86::MemoryOperand;
    use ldnc_tests::difftest::{data_base, Rng, STACK_TOP};
    let mut rng = Rng::new(seed);
    let m = |off: u64| MemoryOperand::with_base_displ(Register::RBX, off as i64);
    let e = |r: Result<Instruction, iced_x86::IcedError>| r.map_err(|x| gen::GenError(x.to_string()));
    let mut regs = Regs { rflags: flags::FIXED1 | flags::IF | (rng.next_u64() & 0xc5), mxcsr: 0x1f80, ..Regs::default() };
    for (i, g) in regs.gpr.iter_mut().enumerate() {
        *g = 0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 3);
    }
    regs.gpr[3] = data_base(slot);
    regs.gpr[4] = data_base(slot) + STACK_TOP;
    let mut patches = Vec::new();
    // Control word at 0x40, stack values at 0x50.., the operand at 0x100, results at 0x200...
    let pc = [0u16, 2, 3, 3][rng.below(4) as usize];
    let cw = 0x107f_u16 & !0x0f00 | pc << 8 | (rng.below(4) as u16) << 10;
    patches.push((0x40u16, cw.to_le_bytes().to_vec()));
    let depth = match index % 9 {
        0 => 0,
        1 => 8,
        _ => 1 + rng.below(7),
    };
    // Eight `fldz` and a second `fninit` leave +0 in every (empty) register, so what FXAM and
    // the stores see of an empty register does not depend on earlier runs.
    let mut insns = vec![Instruction::with(Code::Fninit)];
    insns.extend([Instruction::with(Code::Fldz); 8]);
    insns.push(Instruction::with(Code::Fninit));
    insns.push(e(Instruction::with1(Code::Fldcw_m2byte, m(0x40)))?);
    for k in 0..depth {
        patches.push((0x50 + 10 * k as u16, x87_value(&mut rng, index, k).to_vec()));
        insns.push(e(Instruction::with1(Code::Fld_m80fp, m(0x50 + 10 * k)))?);
    }
    // The memory operand: a float, an integer or an m80 of the right size (and a masked
    // control word for fldcw).
    let oc = code.op_code();
    let size = oc.memory_size().size();
    let mut op = vec![0u8; 16];
    match size {
        2 => op[..2].copy_from_slice(&(rng.next_u64() as u16 | if code == Code::Fldcw_m2byte { 0x3f } else { 0 }).to_le_bytes()),
        4 => {
            let v = if rng.one_in(2) { (rng.next_u64() as u32 & 0x807f_ffff) | (0x3c00_0000 + ((rng.below(16) as u32) << 23)) } else { rng.next_u64() as u32 };
            op[..4].copy_from_slice(&v.to_le_bytes());
        }
        8 => {
            let v = if rng.one_in(2) { (rng.next_u64() & 0x800f_ffff_ffff_ffff) | (0x3f0 + rng.below(32)) << 52 } else { rng.next_u64() };
            op[..8].copy_from_slice(&v.to_le_bytes());
        }
        10 => op[..10].copy_from_slice(&x87_value(&mut rng, index, 2)),
        _ => {}
    }
    patches.push((0x100, op));
    let n = oc.op_count();
    let mut insn = Instruction::default();
    insn.set_code(code);
    for k in 0..n {
        match oc.op_kind(k) {
            iced_x86::OpCodeOperandKind::st0 => {
                insn.set_op_kind(k, iced_x86::OpKind::Register);
                insn.set_op_register(k, Register::ST0);
            }
            iced_x86::OpCodeOperandKind::sti_opcode => {
                insn.set_op_kind(k, iced_x86::OpKind::Register);
                insn.set_op_register(k, [Register::ST0, Register::ST1, Register::ST2, Register::ST5][rng.below(4) as usize]);
            }
            iced_x86::OpCodeOperandKind::mem => {
                insn.set_op_kind(k, iced_x86::OpKind::Memory);
                insn.set_memory_base(Register::RBX);
                insn.set_memory_displacement64(0x100);
                insn.set_memory_displ_size(1);
            }
            iced_x86::OpCodeOperandKind::ax => {
                insn.set_op_kind(k, iced_x86::OpKind::Register);
                insn.set_op_register(k, Register::AX);
            }
            other => return Err(gen::GenError(format!("operand kind {other:?}"))),
        }
    }
    let text = format!("{insn}");
    insns.push(insn);
    // The last-instruction and last-operand pointers and the opcode (FIP, FCS, FOP, FDP, FDS) of
    // a stored environment depend on where the code runs: cleared on both sides.
    if matches!(code.mnemonic(), Mnemonic::Fnstenv | Mnemonic::Fstenv | Mnemonic::Fnsave | Mnemonic::Fsave) {
        if size == 28 || size == 108 {
            insns.push(e(Instruction::with2(Code::Mov_rm64_imm32, m(0x10c), 0))?);
            insns.push(e(Instruction::with2(Code::Mov_rm64_imm32, m(0x114), 0))?);
        } else {
            insns.push(e(Instruction::with2(Code::Mov_rm64_imm32, m(0x106), 0))?);
        }
    }
    // MXCSR_MASK in an FXSAVE image depends on the CPU model, and so does whether FIP (the last
    // x87 instruction's address, which depends on where the code runs) is stored at all: AMD
    // CPUs store it only with an exception pending, Intel CPUs always. Cleared on both sides.
    if matches!(code.mnemonic(), Mnemonic::Fxsave | Mnemonic::Fxsave64) {
        insns.push(e(Instruction::with2(Code::Mov_rm32_imm32, m(0x11c), 0))?);
        insns.push(e(Instruction::with2(Code::Mov_rm64_imm32, m(0x108), 0))?);
    }
    insns.push(e(Instruction::with1(Code::Fnstsw_m2byte, m(0x200)))?);
    insns.push(e(Instruction::with1(Code::Fnstcw_m2byte, m(0x202)))?);
    for k in 0..8 {
        insns.push(e(Instruction::with1(Code::Fstp_m80fp, m(0x210 + 10 * k)))?);
    }
    insns.push(Instruction::with(Code::Fninit));
    let code_bytes = gen::assemble(&insns, slot)?;
    let case = Case { slot, code: code_bytes, regs, mem_seed: seed, patches };
    Ok((case, ldnc_tests::difftest::Expect::default(), text))
}

/// x87 instructions (every 64-bit-mode form iced knows but the environment loads, which would
/// load random control words): under all precision and rounding controls, with edge and random
/// operands, stack depths 0..=8 (underflow, overflow), the status word, control word and all
/// eight registers compared through memory.
#[test]
fn x87() {
    use ldnc_tests::difftest::harness::{run_groups, Group};
    let codes: Vec<Code> = Code::values()
        .filter(|c| {
            let oc = c.op_code();
            let name = format!("{:?}", c.mnemonic());
            oc.is_instruction()
                && oc.mode64()
                && c.encoding() == iced_x86::EncodingKind::Legacy
                && name.starts_with('F')
                && !matches!(
                    c.mnemonic(),
                    Mnemonic::Femms
                        | Mnemonic::Fldenv
                        | Mnemonic::Frstor
                        | Mnemonic::Fxrstor
                        | Mnemonic::Fxrstor64
                        | Mnemonic::Fneni
                        | Mnemonic::Fndisi
                        | Mnemonic::Fnsetpm
                        | Mnemonic::Feni
                        | Mnemonic::Fdisi
                        | Mnemonic::Fsetpm
                        | Mnemonic::Frstpm
                        | Mnemonic::Fstdw
                        | Mnemonic::Fstsg
                        | Mnemonic::Fnstdw
                        | Mnemonic::Fnstsg
                )
                && oc.op_kinds().iter().all(|k| {
                    use iced_x86::OpCodeOperandKind as K;
                    matches!(k, K::st0 | K::sti_opcode | K::mem | K::ax)
                })
        })
        .collect();
    assert!(codes.len() > 120, "expected the x87 forms, got {}", codes.len());
    let groups = codes
        .into_iter()
        .map(|c| Group {
            name: format!("x87:{c:?}"),
            needs: Some(translator::cpuid::Features::BASELINE),
            make: Box::new(move |slot, seed, index, _| x87_case(c, slot, seed, index)),
        })
        .collect();
    run_groups::<B>("x87", groups);
}
