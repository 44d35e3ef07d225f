//! Tests of the SSE lowering (SSE helper's file): the helper's semantics on SDM edge cases (any
//! host), the helper's integer lanes against the host CPU (x86_64 hosts), the shape of the inline
//! expansions (any host), and x86 snippets executed through the translator (riscv64 hosts, under
//! qemu-user elsewhere). Expected values come from the SDM's definitions; the differential suite
//! in `tests/` compares every form against a real CPU on random and edge inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test set-up failures abort the test")]

use iced_x86::{Code, Instruction, Register};

use super::sse_ops::{self, apply, f2i, i2f, mx, State, F32, F64};
use crate::cpu::flags as fl;

fn st(a: u128, b: u128, imm: u8, mxcsr: u32) -> State {
    State::new(a, b, imm, mxcsr)
}

fn run(code: Code, a: u128, b: u128, imm: u8) -> State {
    let mut s = st(a, b, imm, 0x1f80);
    apply(code, &mut s).expect("supported");
    s
}

const QNAN64: u64 = 0x7ff8_0000_0000_0000;
const SNAN64: u64 = 0x7ff0_0000_0000_0001;
const INDEF64: u64 = 0xfff8_0000_0000_0000;

#[test]
fn float_to_int_gives_the_integer_indefinite() {
    // NaN and out of range: 0x80000000 (zero-extended to 64 in the r32 form) and IE.
    assert_eq!(f2i(F64, QNAN64, 32, 3, 0x1f80), (0x8000_0000, mx::IE));
    assert_eq!(f2i(F64, 2147483648f64.to_bits(), 32, 3, 0x1f80), (0x8000_0000, mx::IE));
    assert_eq!(f2i(F64, (-2147483649f64).to_bits(), 32, 3, 0x1f80), (0x8000_0000, mx::IE));
    assert_eq!(f2i(F64, 1e19f64.to_bits(), 64, 3, 0x1f80), (1 << 63, mx::IE));
    assert_eq!(f2i(F32, u64::from(f32::INFINITY.to_bits()), 64, 0, 0x1f80), (1 << 63, mx::IE));
    // In range: truncation and rounding, PE when inexact.
    assert_eq!(f2i(F64, (-2147483648.9f64).to_bits(), 32, 3, 0x1f80), (0x8000_0000, mx::PE));
    assert_eq!(f2i(F64, 2147483647f64.to_bits(), 32, 3, 0x1f80), (0x7fff_ffff, 0));
    assert_eq!(f2i(F64, (-2.5f64).to_bits(), 32, 0, 0x1f80), (0xffff_fffe, mx::PE));
    assert_eq!(f2i(F64, 2.5f64.to_bits(), 64, 1, 0x1f80), (2, mx::PE));
    assert_eq!(f2i(F64, 2.5f64.to_bits(), 64, 2, 0x1f80), (3, mx::PE));
    assert_eq!(f2i(F64, (-0.0f64).to_bits(), 64, 0, 0x1f80), (0, 0));
    // A denormal is inexact unless DAZ reads it as zero; no DE either way.
    assert_eq!(f2i(F64, 1, 32, 2, 0x1f80), (1, mx::PE));
    assert_eq!(f2i(F64, 1, 32, 2, 0x1f80 | mx::DAZ), (0, 0));
}

#[test]
fn int_to_float_honours_the_rounding_control() {
    let v = (1i64 << 53) + 1;
    assert_eq!(i2f(F64, v, 0), (((1u64 << 53) as f64).to_bits(), mx::PE));
    assert_eq!(i2f(F64, v, 2), (((1u64 << 53) as f64 + 2.0).to_bits(), mx::PE));
    assert_eq!(i2f(F64, -v, 1), ((-((1u64 << 53) as f64) - 2.0).to_bits(), mx::PE));
    assert_eq!(i2f(F64, -v, 3), ((-((1u64 << 53) as f64)).to_bits(), mx::PE));
    assert_eq!(i2f(F32, 16_777_217, 2), (u64::from(16_777_218f32.to_bits()), mx::PE));
    assert_eq!(i2f(F32, -7, 1), (u64::from((-7f32).to_bits()), 0));
    assert_eq!(i2f(F64, i64::MIN, 0), ((i64::MIN as f64).to_bits(), 0));
}

#[test]
fn min_max_follow_x86_not_ieee() {
    let (p0, n0) = (0.0f64.to_bits(), (-0.0f64).to_bits());
    // Equal operands (±0 included) and NaNs give the second operand.
    assert_eq!(sse_ops::minmax(F64, false, p0, n0, 0x1f80), (n0, 0));
    assert_eq!(sse_ops::minmax(F64, false, n0, p0, 0x1f80), (p0, 0));
    assert_eq!(sse_ops::minmax(F64, true, QNAN64, 1.0f64.to_bits(), 0x1f80), (1.0f64.to_bits(), mx::IE));
    assert_eq!(sse_ops::minmax(F64, true, 1.0f64.to_bits(), QNAN64, 0x1f80), (QNAN64, mx::IE));
    assert_eq!(sse_ops::minmax(F64, false, 1.0f64.to_bits(), 2.0f64.to_bits(), 0x1f80), (1.0f64.to_bits(), 0));
    assert_eq!(sse_ops::minmax(F64, false, 1, 2, 0x1f80), (1, mx::DE));
}

#[test]
fn compares_signal_as_the_predicate_says() {
    let one = 1.0f64.to_bits();
    // EQ is quiet on QNaN, LT signals; UNORD true on NaN; NEQ true on NaN.
    assert_eq!(sse_ops::cmp(F64, 0, QNAN64, one, 0x1f80), (false, 0));
    assert_eq!(sse_ops::cmp(F64, 1, QNAN64, one, 0x1f80), (false, mx::IE));
    assert_eq!(sse_ops::cmp(F64, 3, one, QNAN64, 0x1f80), (true, 0));
    assert_eq!(sse_ops::cmp(F64, 4, one, QNAN64, 0x1f80), (true, 0));
    assert_eq!(sse_ops::cmp(F64, 0, SNAN64, one, 0x1f80), (false, mx::IE));
    assert_eq!(sse_ops::cmp(F64, 2, one, one, 0x1f80), (true, 0));
    // COMISD signals on QNaN, UCOMISD only on SNaN; unordered sets ZF PF CF.
    assert_eq!(sse_ops::comi(F64, true, QNAN64, one, 0x1f80), (fl::ZF | fl::PF | fl::CF, mx::IE));
    assert_eq!(sse_ops::comi(F64, false, QNAN64, one, 0x1f80), (fl::ZF | fl::PF | fl::CF, 0));
    assert_eq!(sse_ops::comi(F64, false, one, 2.0f64.to_bits(), 0x1f80), (fl::CF, 0));
    assert_eq!(sse_ops::comi(F64, false, 0.0f64.to_bits(), (-0.0f64).to_bits(), 0x1f80), (fl::ZF, 0));
}

#[test]
fn nan_payloads_survive_width_changes() {
    // Single SNaN 0x7f800001 -> double QNaN with the payload shifted up, IE.
    assert_eq!(sse_ops::widen(0x7f80_0001, 0x1f80), (0x7ff8_0000_2000_0000, mx::IE));
    // Double NaN -> single keeps the sign and the top payload bits.
    assert_eq!(sse_ops::narrow(0xfff0_0000_2000_0000, 0x1f80), (0xffc0_0001, mx::IE));
    assert_eq!(sse_ops::narrow(QNAN64 | 0xe000_0000, 0x1f80), (0x7fc0_0007, 0));
}

#[test]
fn binary_ops_return_the_first_nan_quietened() {
    // The NaN paths do not reach the FPU, so they hold on every host.
    let one = 1.0f64.to_bits();
    assert_eq!(sse_ops::arith(F64, sse_ops::FOp::Add, SNAN64, QNAN64 | 5, 0x1f80), (QNAN64 | 1, mx::IE));
    assert_eq!(sse_ops::arith(F64, sse_ops::FOp::Mul, one, QNAN64 | 5, 0x1f80), (QNAN64 | 5, 0));
    // A NaN operand hides a denormal one.
    assert_eq!(sse_ops::arith(F64, sse_ops::FOp::Div, 1, QNAN64, 0x1f80), (QNAN64, 0));
    assert_eq!(sse_ops::arith(F64, sse_ops::FOp::Sqrt, one, SNAN64 | (1 << 63), 0x1f80), (INDEF64 | 1, mx::IE));
}

#[test]
fn scalar_forms_keep_the_upper_lanes() {
    let a = 0x1111_2222_3333_4444_5555_6666_7777_8888u128;
    // cmpss with a true predicate writes 32 ones, not 64.
    let s = run(Code::Cmpss_xmm_xmmm32_imm8, a, 0, 4);
    assert_eq!(s.res, Some(0x1111_2222_3333_4444_5555_6666_ffff_ffffu128));
    // cvtsi2sd from r32 replaces only the low double.
    let s = run(Code::Cvtsi2sd_xmm_rm32, a, 0xffff_ffff, 0);
    assert_eq!(s.res, Some((a & !u128::from(u64::MAX)) | u128::from((-1.0f64).to_bits())));
}

#[test]
fn shuffles_and_packs() {
    let b = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100u128;
    // pshufd 0x1b reverses the dwords.
    assert_eq!(run(Code::Pshufd_xmm_xmmm128_imm8, 0, b, 0x1b).res, Some(0x0302_0100_0706_0504_0b0a_0908_0f0e_0d0cu128));
    // pshufb: index 0x80 zeroes, others select from the destination.
    let idx = 0x8000_0000_0000_0000_0000_0000_0000_0f01u128;
    assert_eq!(run(Code::Pshufb_xmm_xmmm128, b, idx, 0).res, Some(0x0f01));
    // packuswb saturates signed words to unsigned bytes.
    let w = 0x0100_00ff_8000_7fff_0001_0000_ffff_0080u128;
    assert_eq!(run(Code::Packuswb_xmm_xmmm128, w, 0, 0).res, Some(0xffff_00ff_0100_0080));
    // pmovmskb gathers the byte sign bits.
    assert_eq!(run(Code::Pmovmskb_r32_xmm, 0, 0x80 << 120 | 0x80, 0).out, Some(0x8001));
    // psrldq by bytes, and by more than 15 clears.
    assert_eq!(run(Code::Psrldq_xmm_imm8, b, 0, 15).res, Some(0x0f));
    assert_eq!(run(Code::Psrldq_xmm_imm8, b, 0, 16).res, Some(0));
}

#[test]
fn ptest_sets_zf_and_cf_only() {
    let s = {
        let mut s = st(0xf0, 0x0f, 0, 0x1f80);
        s.rflags = fl::FIXED1 | fl::OF | fl::SF | fl::AF | fl::PF;
        apply(Code::Ptest_xmm_xmmm128, &mut s).unwrap();
        s
    };
    assert_eq!(s.rflags, fl::FIXED1 | fl::ZF);
    let s = run(Code::Ptest_xmm_xmmm128, 0xff, 0x0f, 0);
    assert_eq!(s.rflags, fl::FIXED1 | fl::CF);
}

#[test]
fn unsupported_codes_are_refused() {
    assert!(!sse_ops::supports(Code::Aesenc_xmm_xmmm128));
    assert!(!sse_ops::supports(Code::Add_rm64_r64));
    assert!(sse_ops::supports(Code::Addsd_xmm_xmmm64));
    assert!(sse_ops::supports(Code::Cvttsd2si_r64_xmmm64));
}

/// The helper's integer lanes against the CPU it imitates.
#[cfg(target_arch = "x86_64")]
#[test]
fn integer_lanes_match_the_host_cpu() {
    use core::arch::x86_64::*;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let v = |m: __m128i| -> u128 {
        // SAFETY: both types are 16 plain bytes.
        unsafe { core::mem::transmute::<__m128i, u128>(m) }
    };
    let m = |u: u128| -> __m128i {
        // SAFETY: as above.
        unsafe { core::mem::transmute::<u128, __m128i>(u) }
    };
    for _ in 0..2000 {
        let (a, b) = (u128::from(next()) << 64 | u128::from(next()), u128::from(next()) << 64 | u128::from(next()));
        let (ma, mb) = (m(a), m(b));
        // SAFETY: SSE2 is part of x86_64.
        let cases: [(Code, u128); 14] = unsafe {
            [
                (Code::Paddsw_xmm_xmmm128, v(_mm_adds_epi16(ma, mb))),
                (Code::Psubusb_xmm_xmmm128, v(_mm_subs_epu8(ma, mb))),
                (Code::Pmulhw_xmm_xmmm128, v(_mm_mulhi_epi16(ma, mb))),
                (Code::Pmaddwd_xmm_xmmm128, v(_mm_madd_epi16(ma, mb))),
                (Code::Pmuludq_xmm_xmmm128, v(_mm_mul_epu32(ma, mb))),
                (Code::Psadbw_xmm_xmmm128, v(_mm_sad_epu8(ma, mb))),
                (Code::Packsswb_xmm_xmmm128, v(_mm_packs_epi16(ma, mb))),
                (Code::Packssdw_xmm_xmmm128, v(_mm_packs_epi32(ma, mb))),
                (Code::Packuswb_xmm_xmmm128, v(_mm_packus_epi16(ma, mb))),
                (Code::Pcmpgtb_xmm_xmmm128, v(_mm_cmpgt_epi8(ma, mb))),
                (Code::Pminub_xmm_xmmm128, v(_mm_min_epu8(ma, mb))),
                (Code::Pavgw_xmm_xmmm128, v(_mm_avg_epu16(ma, mb))),
                (Code::Punpckhbw_xmm_xmmm128, v(_mm_unpackhi_epi8(ma, mb))),
                (Code::Psraw_xmm_xmmm128, v(_mm_sra_epi16(ma, m(b & 0x1f)))),
            ]
        };
        for (code, want) in cases {
            let b = if code == Code::Psraw_xmm_xmmm128 { b & 0x1f } else { b };
            assert_eq!(run(code, a, b, 0).res, Some(want), "{code:?} {a:#x} {b:#x}");
        }
    }
}

/// PCMPxSTRx and CRC32 against the host CPU (x86_64 hosts with SSE4.2).
#[cfg(target_arch = "x86_64")]
#[test]
fn string_compares_and_crc32_match_the_host_cpu() {
    use core::arch::x86_64::*;
    if !std::is_x86_feature_detected!("sse4.2") {
        return;
    }
    #[target_feature(enable = "sse4.2")]
    fn native<const IMM: i32>(a: u128, b: u128, la: i32, lb: i32) -> [u64; 6] {
        // SAFETY: both types are 16 plain bytes.
        let (x, y) = unsafe { (core::mem::transmute::<u128, __m128i>(a), core::mem::transmute::<u128, __m128i>(b)) };
        let bit = |c: i32, f: u64| if c != 0 { f } else { 0 };
        let flags = bit(_mm_cmpistrc::<IMM>(x, y), fl::CF)
            | bit(_mm_cmpistrz::<IMM>(x, y), fl::ZF)
            | bit(_mm_cmpistrs::<IMM>(x, y), fl::SF)
            | bit(_mm_cmpistro::<IMM>(x, y), fl::OF);
        let eflags = bit(_mm_cmpestrc::<IMM>(x, la, y, lb), fl::CF)
            | bit(_mm_cmpestrz::<IMM>(x, la, y, lb), fl::ZF)
            | bit(_mm_cmpestrs::<IMM>(x, la, y, lb), fl::SF)
            | bit(_mm_cmpestro::<IMM>(x, la, y, lb), fl::OF);
        // SAFETY: as above.
        let m = unsafe { core::mem::transmute::<__m128i, u128>(_mm_cmpistrm::<IMM>(x, y)) };
        // SAFETY: as above.
        let em = unsafe { core::mem::transmute::<__m128i, u128>(_mm_cmpestrm::<IMM>(x, la, y, lb)) };
        [_mm_cmpistri::<IMM>(x, y) as u64, flags, m as u64 ^ ((m >> 64) as u64).wrapping_mul(3), _mm_cmpestri::<IMM>(x, la, y, lb) as u64, eflags, em as u64 ^ ((em >> 64) as u64).wrapping_mul(3)]
    }
    fn ours(imm: u8, a: u128, b: u128, la: i32, lb: i32) -> [u64; 6] {
        let mut out = [0u64; 6];
        for (k, code) in [Code::Pcmpistri_xmm_xmmm128_imm8, Code::Pcmpestri_xmm_xmmm128_imm8].into_iter().enumerate() {
            let mut s = st(a, b, imm, 0x1f80);
            s.rax = la as u32 as u64;
            s.rdx = lb as u32 as u64;
            apply(code, &mut s).unwrap();
            out[3 * k] = s.rcx.unwrap();
            out[3 * k + 1] = s.rflags & fl::STATUS;
            let m = if k == 0 { Code::Pcmpistrm_xmm_xmmm128_imm8 } else { Code::Pcmpestrm_xmm_xmmm128_imm8 };
            let mut s = st(a, b, imm, 0x1f80);
            s.rax = la as u32 as u64;
            s.rdx = lb as u32 as u64;
            apply(m, &mut s).unwrap();
            let v = s.xmm0.unwrap();
            out[3 * k + 2] = v as u64 ^ ((v >> 64) as u64).wrapping_mul(3);
        }
        out
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        // Few distinct byte values so matches, ranges and terminators all occur.
        let mut v = || {
            let mut r = 0u128;
            for k in 0..16 {
                let c = [0u8, b'a', b'b', b'c', 0x80, 0xff, b'a', b'b'][(next() % 8) as usize];
                r |= u128::from(c) << (8 * k);
            }
            r
        };
        let (a, b) = (v(), v());
        let (la, lb) = ((next() % 40) as i32 - 20, (next() % 40) as i32 - 20);
        macro_rules! check {
            ($($imm:literal)*) => {$(
                // SAFETY: SSE4.2 was detected above.
                let want = unsafe { native::<$imm>(a, b, la, lb) };
                assert_eq!(ours($imm, a, b, la, lb), want, "imm {:#x} a {a:#x} b {b:#x} la {la} lb {lb}", $imm);
            )*};
        }
        check!(0x00 0x01 0x02 0x03 0x04 0x05 0x06 0x08 0x09 0x0c 0x0d 0x0e 0x10 0x1a 0x30 0x3a 0x40 0x44 0x48 0x4c 0x70 0x7c);
        let (c, d) = (next() as u32, next());
        // SAFETY: as above.
        unsafe {
            assert_eq!(sse_ops::crc32c(c, d, 1), _mm_crc32_u8(c, d as u8));
            assert_eq!(sse_ops::crc32c(c, d, 2), _mm_crc32_u16(c, d as u16));
            assert_eq!(sse_ops::crc32c(c, d, 8), _mm_crc32_u64(u64::from(c), d) as u32);
        }
    }
}

// ---- lowering ----

fn lower_text(insns: &[Instruction]) -> Vec<String> {
    let mut enc = iced_x86::Encoder::new(64);
    let mut code = Vec::new();
    for i in insns {
        enc.encode(i, 0).expect("encodes");
        code.extend_from_slice(&enc.take_buffer());
    }
    code.push(0xcc);
    let start = code.as_ptr() as u64;
    // SAFETY: the vector outlives the source, used only in this function.
    let src = unsafe { crate::frontend::RangeSource::new(vec![(start, start + code.len() as u64)]) };
    let block = crate::frontend::decode_block(&src, start);
    let (bytes, _) = crate::isa::riscv64::translate_block(&block, 0x10_0000, crate::isa::riscv64::asm::Ext::default()).expect("translates");
    crate::isa::riscv64::disasm::disasm_buf(&bytes, 0x10_0000)
}

fn i2(code: Code, a: Register, b: Register) -> Instruction {
    Instruction::with2(code, a, b).unwrap()
}

#[test]
fn zero_idiom_is_two_stores() {
    let t = lower_text(&[i2(Code::Pxor_xmm_xmmm128, Register::XMM3, Register::XMM3)]);
    let off = super::xoff(3, 0);
    assert_eq!(t[0], format!("sd zero,{off}(s1)"));
    assert_eq!(t[1], format!("sd zero,{}(s1)", off + 8));
}

#[test]
fn moves_and_byte_compares_stay_inline() {
    use iced_x86::MemoryOperand;
    let mem = MemoryOperand::with_base(Register::RAX);
    let insns = [
        Instruction::with2(Code::Movdqu_xmm_xmmm128, Register::XMM1, mem).unwrap(),
        i2(Code::Pcmpeqb_xmm_xmmm128, Register::XMM1, Register::XMM2),
        i2(Code::Pmovmskb_r32_xmm, Register::EDX, Register::XMM1),
    ];
    let t = lower_text(&insns);
    assert!(t.iter().any(|l| l == "ld t1,0(a6)") && t.iter().any(|l| l == "ld t2,8(a6)"), "{t:#?}");
    assert!(t.iter().any(|l| l.starts_with("mul ")), "{t:#?}");
    // No helper call: nothing jumps through ra.
    assert!(!t.iter().any(|l| l.starts_with("jalr ra")), "{t:#?}");
}

#[test]
fn helper_calls_preserve_the_caller_saved_guests() {
    let t = lower_text(&[i2(Code::Addsd_xmm_xmmm64, Register::XMM0, Register::XMM1)]);
    let call = t.iter().position(|l| l.starts_with("jalr ra,")).expect("a helper call");
    for r in ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "t3"] {
        assert!(t[..call].iter().any(|l| l.starts_with(&format!("sd {r},"))), "{r} not saved: {t:#?}");
        assert!(t[call..].iter().any(|l| l.starts_with(&format!("ld {r},"))), "{r} not reloaded: {t:#?}");
    }
}

#[test]
fn vex_forms_are_cut() {
    // vpxor xmm0, xmm0, xmm0 is AVX: the block ends before it with UNSUPPORTED.
    let v = Instruction::with3(Code::VEX_Vpxor_xmm_xmm_xmmm128, Register::XMM0, Register::XMM0, Register::XMM0).unwrap();
    let t = lower_text(&[v]);
    assert!(!t.iter().any(|l| l.starts_with("sd zero,")), "{t:#?}");
}

// ---- execution ----

#[cfg(target_arch = "riscv64")]
mod exec {
    use super::*;
    use crate::cpu::Gpr::{self, *};
    use crate::frontend::RangeSource;
    use crate::isa::riscv64::Riscv64Backend;
    use crate::{Exit, ThreadCtx, Translator};
    use iced_x86::MemoryOperand;

    /// Run `insns` (then int3) with `regs`, `xmm` and `mxcsr` set and `data` as scratch memory.
    fn exec(insns: &[Instruction], regs: &[(Gpr, u64)], xmm: &[(usize, u128)], mxcsr: u32, data: &mut [u8]) -> Box<ThreadCtx> {
        let mut enc = iced_x86::Encoder::new(64);
        let mut code = Vec::new();
        for i in insns {
            enc.encode(i, 0).expect("encodes");
            code.extend_from_slice(&enc.take_buffer());
        }
        code.push(0xcc);
        let stack = vec![0u64; 512];
        let start = code.as_ptr() as u64;
        // SAFETY: `code` outlives the translator, dropped at the end of this function.
        let src = unsafe { RangeSource::new(vec![(start, start + code.len() as u64)]) };
        let tr = Translator::<Riscv64Backend>::new(Box::new(src)).expect("translator");
        let mut ctx = ThreadCtx::new();
        ctx.cpu.rip = start;
        ctx.cpu.rflags = fl::FIXED1 | fl::IF;
        ctx.cpu.mxcsr = mxcsr;
        ctx.cpu.set(Rsp, stack.as_ptr() as u64 + 8 * 500);
        ctx.cpu.set(Rbx, data.as_mut_ptr() as u64);
        for &(g, v) in regs {
            ctx.cpu.set(g, v);
        }
        for &(n, v) in xmm {
            ctx.cpu.xmm[n] = [v as u64, (v >> 64) as u64];
        }
        // SAFETY: code, stack and data are ours and live through the run.
        let e = unsafe { tr.run(&mut ctx) };
        assert_eq!(e, Exit::Breakpoint);
        ctx
    }

    fn xmm(ctx: &ThreadCtx, n: usize) -> u128 {
        u128::from(ctx.cpu.xmm[n][0]) | u128::from(ctx.cpu.xmm[n][1]) << 64
    }

    fn m(base: Register, disp: i64) -> MemoryOperand {
        MemoryOperand::with_base_displ(base, disp)
    }

    #[test]
    fn strlen_step_finds_the_terminator() {
        // pxor xmm0,xmm0; movdqu xmm1,[rbx]; pcmpeqb xmm1,xmm0; pmovmskb eax,xmm1; bsf eax,eax
        let mut data = *b"hello, world!\0xyzabcdefghijklmno";
        let ctx = exec(
            &[
                i2(Code::Pxor_xmm_xmmm128, Register::XMM0, Register::XMM0),
                Instruction::with2(Code::Movdqu_xmm_xmmm128, Register::XMM1, m(Register::RBX, 0)).unwrap(),
                i2(Code::Pcmpeqb_xmm_xmmm128, Register::XMM1, Register::XMM0),
                i2(Code::Pmovmskb_r32_xmm, Register::EAX, Register::XMM1),
                i2(Code::Bsf_r32_rm32, Register::ECX, Register::EAX),
            ],
            &[(Rax, u64::MAX)],
            &[],
            0x1f80,
            &mut data,
        );
        assert_eq!(ctx.cpu.get(Rax), 1 << 13);
        assert_eq!(ctx.cpu.get(Rcx), 13);
        assert_eq!(xmm(&ctx, 1), 0xffu128 << (13 * 8));
    }

    #[test]
    fn ucomisd_flags_feed_setcc() {
        // ucomisd xmm0,xmm1; setp al; seta cl; setb dl; sete bl (rbx is the data pointer; use r8b)
        let run = |a: f64, b: f64| {
            let ctx = exec(
                &[
                    i2(Code::Ucomisd_xmm_xmmm64, Register::XMM0, Register::XMM1),
                    Instruction::with1(Code::Setp_rm8, Register::AL).unwrap(),
                    Instruction::with1(Code::Seta_rm8, Register::CL).unwrap(),
                    Instruction::with1(Code::Setb_rm8, Register::DL).unwrap(),
                    Instruction::with1(Code::Sete_rm8, Register::R8L).unwrap(),
                ],
                &[(Rax, 0), (Rcx, 0), (Rdx, 0), (R8, 0)],
                &[(0, u128::from(a.to_bits())), (1, u128::from(b.to_bits()))],
                0x1f80,
                &mut [0u8; 16],
            );
            (ctx.cpu.get(Rax), ctx.cpu.get(Rcx), ctx.cpu.get(Rdx), ctx.cpu.get(R8), ctx.cpu.mxcsr)
        };
        assert_eq!(run(f64::NAN, 1.0), (1, 0, 1, 1, 0x1f80));
        assert_eq!(run(2.0, 1.0), (0, 1, 0, 0, 0x1f80));
        assert_eq!(run(-1.0, 1.0), (0, 0, 1, 0, 0x1f80));
        assert_eq!(run(0.0, -0.0), (0, 0, 0, 1, 0x1f80));
        // A signalling NaN sets IE.
        assert_eq!(run(f64::from_bits(super::SNAN64), 1.0).4, 0x1f81);
    }

    #[test]
    fn conversions_follow_mxcsr_and_return_indefinites() {
        let cvtt = Instruction::with2(Code::Cvttsd2si_r32_xmmm64, Register::EAX, Register::XMM0).unwrap();
        let cvt = Instruction::with2(Code::Cvtsd2si_r64_xmmm64, Register::RCX, Register::XMM0).unwrap();
        let back = Instruction::with2(Code::Cvtsi2sd_xmm_rm64, Register::XMM1, Register::RDX).unwrap();
        let go = |x: f64, mxcsr: u32| {
            let ctx = exec(
                &[cvtt, cvt, back],
                &[(Rax, u64::MAX), (Rdx, (1u64 << 53) + 1)],
                &[(0, u128::from(x.to_bits()))],
                mxcsr,
                &mut [0u8; 16],
            );
            (ctx.cpu.get(Rax), ctx.cpu.get(Rcx), f64::from_bits(ctx.cpu.xmm[1][0]), ctx.cpu.mxcsr)
        };
        let (t, r, b, m) = go(f64::NAN, 0x1f80);
        assert_eq!((t, r, m & 0x3f), (0x8000_0000, 1 << 63, mx::IE | mx::PE));
        assert_eq!(b, 9007199254740992.0);
        // Round up: -2.5 -> -2; the 2^53+1 conversion rounds to 2^53+2.
        let (t, r, b, _) = go(-2.5, 0x1f80 | 2 << 13);
        assert_eq!((t, r as i64), (0xffff_fffe, -2));
        assert_eq!(b, 9007199254740994.0);
        // Nearest even: -2.5 -> -2 as well, 3.5 -> 4.
        assert_eq!(go(3.5, 0x1f80).1, 4);
    }

    #[test]
    fn scalar_arithmetic_keeps_upper_half_and_x86_nans() {
        // addsd xmm0,xmm1; mulsd xmm2,xmm3 (inf * 0 -> negative indefinite); minsd xmm4,xmm5
        let hi = 0xdead_beef_0000_0000_u128 << 64;
        let ctx = exec(
            &[
                i2(Code::Addsd_xmm_xmmm64, Register::XMM0, Register::XMM1),
                i2(Code::Mulsd_xmm_xmmm64, Register::XMM2, Register::XMM3),
                i2(Code::Minsd_xmm_xmmm64, Register::XMM4, Register::XMM5),
                i2(Code::Divsd_xmm_xmmm64, Register::XMM6, Register::XMM7),
            ],
            &[],
            &[
                (0, hi | u128::from(1.5f64.to_bits())),
                (1, u128::from(0.25f64.to_bits())),
                (2, u128::from(f64::INFINITY.to_bits())),
                (3, 0),
                (4, u128::from(0.0f64.to_bits())),
                (5, u128::from((-0.0f64).to_bits())),
                (6, u128::from(1.0f64.to_bits())),
                (7, u128::from(10.0f64.to_bits())),
            ],
            0x1f80 | 1 << 13,
            &mut [0u8; 16],
        );
        assert_eq!(xmm(&ctx, 0), hi | u128::from(1.75f64.to_bits()));
        assert_eq!(ctx.cpu.xmm[2][0], super::INDEF64);
        assert_eq!(ctx.cpu.xmm[4][0], (-0.0f64).to_bits());
        // Rounding down: the nearest double to 1/10 is above it.
        assert_eq!(ctx.cpu.xmm[6][0], 0.1f64.to_bits() - 1);
        assert_eq!(ctx.cpu.mxcsr & 0x3f, mx::IE | mx::PE);
    }

    #[test]
    fn fast_paths_and_their_fallbacks_agree_with_the_sdm() {
        // Default MXCSR: the host-FPU expansions run; odd operands take the helper.
        let d = |x: f64| u128::from(x.to_bits());
        let ctx = exec(
            &[
                i2(Code::Divsd_xmm_xmmm64, Register::XMM0, Register::XMM1),
                i2(Code::Mulsd_xmm_xmmm64, Register::XMM2, Register::XMM3),
                i2(Code::Sqrtsd_xmm_xmmm64, Register::XMM4, Register::XMM5),
                i2(Code::Maxsd_xmm_xmmm64, Register::XMM6, Register::XMM7),
                i2(Code::Cvttsd2si_r32_xmmm64, Register::EAX, Register::XMM8),
                i2(Code::Cvtsd2si_r64_xmmm64, Register::RCX, Register::XMM9),
                i2(Code::Cvtsd2ss_xmm_xmmm64, Register::XMM10, Register::XMM11),
            ],
            &[(Rax, u64::MAX)],
            &[
                (0, d(1.0)),
                (1, d(10.0)),
                // Denormal times two: DE from the helper, exact result.
                (2, 1),
                (3, d(2.0)),
                (5, d(-1.0)),
                (6, d(0.0)),
                (7, d(-0.0)),
                (8, d(3e9)),
                (9, d(-2.5)),
                (11, d(1e300)),
            ],
            0x1f80,
            &mut [0u8; 16],
        );
        assert_eq!(ctx.cpu.xmm[0][0], 0.1f64.to_bits());
        assert_eq!(ctx.cpu.xmm[2][0], 2);
        assert_eq!(ctx.cpu.xmm[4][0], super::INDEF64);
        assert_eq!(ctx.cpu.xmm[6][0], (-0.0f64).to_bits());
        assert_eq!(ctx.cpu.get(Rax), 0x8000_0000);
        assert_eq!(ctx.cpu.get(Rcx) as i64, -2);
        assert_eq!(ctx.cpu.xmm[10][0] as u32, f32::INFINITY.to_bits());
        // PE (1/10, -2.5, the overflow), DE (the denormal), IE (sqrt(-1), 3e9), OE (1e300).
        assert_eq!(ctx.cpu.mxcsr, 0x1f80 | mx::PE | mx::DE | mx::IE | mx::OE);
    }

    #[test]
    fn quick_path_with_pe_set_hands_every_other_flag_to_the_checked_path() {
        // With PE already set, ADDSD & co. skip the host flags when the result bits prove that
        // nothing but inexact happened; each case runs alone so its own flags are visible.
        let d = |x: f64| u128::from(x.to_bits());
        let s = |x: f32| u128::from(x.to_bits());
        let min_normal = f64::MIN_POSITIVE;
        let cases: [(Code, u128, u128, u64, u32); 19] = [
            (Code::Mulsd_xmm_xmmm64, d(3.0), d(0.1), (3.0f64 * 0.1).to_bits(), 0),
            (Code::Mulsd_xmm_xmmm64, d(1e-300), d(1e-300), 0, mx::UE),
            (Code::Mulsd_xmm_xmmm64, d(1e300), d(-1e300), f64::NEG_INFINITY.to_bits(), mx::OE),
            (Code::Divsd_xmm_xmmm64, d(1.0), d(0.0), f64::INFINITY.to_bits(), mx::ZE),
            (Code::Divsd_xmm_xmmm64, d(1e-300), d(1e300), 0, mx::UE),
            (Code::Divsd_xmm_xmmm64, d(0.0), d(-5.0), (-0.0f64).to_bits(), 0),
            (Code::Mulsd_xmm_xmmm64, d(3.0), d(-0.0), (-0.0f64).to_bits(), 0),
            (Code::Mulsd_xmm_xmmm64, d(-0.0), d(3.0), (-0.0f64).to_bits(), 0),
            (Code::Subsd_xmm_xmmm64, d(1.5), d(1.5), 0, 0),
            // A tiny difference is exact: no underflow.
            (Code::Subsd_xmm_xmmm64, d(min_normal * 1.5), d(min_normal), (min_normal * 0.5).to_bits(), 0),
            (Code::Addsd_xmm_xmmm64, d(f64::INFINITY), d(1.0), f64::INFINITY.to_bits(), 0),
            (Code::Mulsd_xmm_xmmm64, d(f64::INFINITY), d(0.0), super::INDEF64, mx::IE),
            (Code::Mulsd_xmm_xmmm64, 1, d(2.0), 2, mx::DE),
            (Code::Mulsd_xmm_xmmm64, d(min_normal), d(1.0 / 3.0), (min_normal * (1.0 / 3.0)).to_bits(), mx::UE),
            // Tiny but exact: no underflow while it is masked.
            (Code::Mulsd_xmm_xmmm64, d(min_normal), d(0.75), (min_normal * 0.75).to_bits(), 0),
            (Code::Mulsd_xmm_xmmm64, d(min_normal * 2.0), d(0.5), min_normal.to_bits(), 0),
            (Code::Addsd_xmm_xmmm64, u128::from(super::QNAN64 | 5), d(1.0), super::QNAN64 | 5, 0),
            (Code::Mulss_xmm_xmmm32, s(1e-30), s(1e-30), 0, mx::UE),
            (Code::Addss_xmm_xmmm32, s(1.0), s(f32::MAX), u64::from(f32::MAX.to_bits()), 0),
        ];
        for (k, &(code, a, b, want, flags)) in cases.iter().enumerate() {
            let hi = 0x1234_u128 << 64;
            let ctx = exec(&[i2(code, Register::XMM0, Register::XMM1)], &[], &[(0, hi | a), (1, b)], 0x1f80 | mx::PE, &mut [0u8; 16]);
            let got = if matches!(code, Code::Mulss_xmm_xmmm32 | Code::Addss_xmm_xmmm32) {
                ctx.cpu.xmm[0][0] & 0xffff_ffff
            } else {
                ctx.cpu.xmm[0][0]
            };
            assert_eq!(got, want, "case {k}: result");
            assert_eq!(ctx.cpu.xmm[0][1], 0x1234, "case {k}: upper half");
            assert_eq!(ctx.cpu.mxcsr, 0x1f80 | mx::PE | flags, "case {k}: MXCSR");
        }
    }

    #[test]
    fn quick_path_agrees_with_the_helper_on_edge_biased_operands() {
        // The SDM helper is the reference: with PE set, every result and every other status
        // flag from the translated instruction must be the helper's.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // Biased exponent fields near the edges that decide the quick path, and anywhere.
        let mut operand = |d: bool| -> u128 {
            let r = next();
            let (emax, mbits) = if d { (2047u64, 52) } else { (255, 23) };
            let e = match r % 8 {
                0 => 0,
                1 => 1,
                2 => 2,
                3 => emax,
                4 => emax - 1,
                5 => emax / 2 + (r >> 8) % 3,
                _ => (r >> 8) % (emax + 1),
            };
            let m = match (r >> 20) % 4 {
                0 => 0,
                _ => next() & ((1u64 << mbits) - 1),
            };
            let sign = (r >> 30) & 1;
            u128::from(sign << (mbits + if d { 11 } else { 8 }) | e << mbits | m)
        };
        let codes = [
            (Code::Addsd_xmm_xmmm64, true),
            (Code::Subsd_xmm_xmmm64, true),
            (Code::Mulsd_xmm_xmmm64, true),
            (Code::Divsd_xmm_xmmm64, true),
            (Code::Addss_xmm_xmmm32, false),
            (Code::Subss_xmm_xmmm32, false),
            (Code::Mulss_xmm_xmmm32, false),
            (Code::Divss_xmm_xmmm32, false),
            (Code::Addpd_xmm_xmmm128, true),
            (Code::Subpd_xmm_xmmm128, true),
            (Code::Mulpd_xmm_xmmm128, true),
            (Code::Divpd_xmm_xmmm128, true),
            (Code::Sqrtsd_xmm_xmmm64, true),
            (Code::Sqrtss_xmm_xmmm32, false),
            (Code::Minsd_xmm_xmmm64, true),
            (Code::Maxss_xmm_xmmm32, false),
            (Code::Comisd_xmm_xmmm64, true),
            (Code::Ucomiss_xmm_xmmm32, false),
        ];
        for (code, d) in codes {
            let packed = matches!(code, Code::Addpd_xmm_xmmm128 | Code::Subpd_xmm_xmmm128 | Code::Mulpd_xmm_xmmm128 | Code::Divpd_xmm_xmmm128);
            for k in 0..48 {
                let (a, b) = (operand(d), operand(d));
                // Packed forms: the high lanes from the same distribution, or the low lanes
                // reused (both lanes quick) every other case.
                let (a, b) = match (packed, k % 2) {
                    (false, _) => (a, b),
                    (true, 0) => (a | a << 64, b | b << 64),
                    (true, _) => (a | operand(d) << 64, b | operand(d) << 64),
                };
                // Products and quotients near 1 land in the quick path; keep some of those.
                let b = if k % 3 == 0 {
                    let one = if d { u128::from(1.0f64.to_bits()) } else { u128::from(1.0f32.to_bits()) };
                    one | one << 64 | (b & 0xffff)
                } else {
                    b
                };
                let hi = if packed { 0 } else { 0x5555_u128 << 64 };
                let mut want = State::new(hi | a, b, 0, 0x1f80 | mx::PE);
                apply(code, &mut want).expect("supported");
                let ctx = exec(&[i2(code, Register::XMM0, Register::XMM1)], &[], &[(0, hi | a), (1, b)], 0x1f80 | mx::PE, &mut [0u8; 16]);
                if matches!(code, Code::Comisd_xmm_xmmm64 | Code::Ucomiss_xmm_xmmm32) {
                    assert_eq!(ctx.cpu.rflags & fl::STATUS, want.rflags & fl::STATUS, "{code:?} {a:#x} {b:#x}: flags");
                } else {
                    assert_eq!(Some(xmm(&ctx, 0)), want.res, "{code:?} {a:#x} {b:#x}: result");
                }
                assert_eq!(ctx.cpu.mxcsr, want.mxcsr, "{code:?} {a:#x} {b:#x}: MXCSR");
            }
        }
    }

    #[test]
    fn moves_zero_or_merge_as_the_sdm_says() {
        let mut data = [0u8; 32];
        data[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        let all = u128::MAX;
        let ctx = exec(
            &[
                Instruction::with2(Code::Movss_xmm_xmmm32, Register::XMM0, m(Register::RBX, 0)).unwrap(),
                i2(Code::Movss_xmm_xmmm32, Register::XMM1, Register::XMM2),
                Instruction::with2(Code::Movq_xmm_rm64, Register::XMM3, Register::RSI).unwrap(),
                Instruction::with2(Code::Movd_rm32_xmm, Register::EDI, Register::XMM4).unwrap(),
                Instruction::with2(Code::Movhps_m64_xmm, m(Register::RBX, 16), Register::XMM4).unwrap(),
            ],
            &[(Rsi, 0xabcd), (Rdi, u64::MAX)],
            &[(0, all), (1, all), (2, 0x1234), (3, all), (4, 0x0102_0304_0506_0708_a0a1_a2a3_a4a5_a6a7)],
            0x1f80,
            &mut data,
        );
        assert_eq!(xmm(&ctx, 0), 0x5566_7788);
        assert_eq!(xmm(&ctx, 1), (all << 32) | 0x1234);
        assert_eq!(xmm(&ctx, 3), 0xabcd);
        assert_eq!(ctx.cpu.get(Rdi), 0xa4a5_a6a7);
        assert_eq!(u64::from_le_bytes(data[16..24].try_into().unwrap()), 0x0102_0304_0506_0708);
    }

    #[test]
    fn helper_calls_leave_every_gpr_intact() {
        let vals: Vec<(Gpr, u64)> = Gpr::ALL
            .iter()
            .filter(|g| !matches!(g, Rsp | Rbx))
            .map(|&g| (g, 0x1000_0000_0000_0001u64.wrapping_mul(g as u64 + 3)))
            .collect();
        let ctx = exec(
            &[
                Instruction::with3(Code::Pshufd_xmm_xmmm128_imm8, Register::XMM0, Register::XMM1, 0x1bu32).unwrap(),
                i2(Code::Sqrtsd_xmm_xmmm64, Register::XMM2, Register::XMM2),
            ],
            &vals,
            &[(1, 7), (2, u128::from(4.0f64.to_bits()))],
            0x1f80,
            &mut [0u8; 16],
        );
        for &(g, v) in &vals {
            assert_eq!(ctx.cpu.get(g), v, "{g:?}");
        }
        assert_eq!(ctx.cpu.xmm[2][0], 2.0f64.to_bits());
    }
}
