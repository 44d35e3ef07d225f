//! The stub blocks' argument moves, as emitted for plans of real signatures (checked by
//! disassembly), the FP-load encodings they use, and (riscv64 hosts) the fences of the
//! native-call routine's re-entry check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test set-up failures abort the test")]

use super::*;
use crate::isa::riscv64::disasm::disasm_buf;
use crate::isa::riscv64::encode::enc_i;

fn native(sig: &str) -> NativeFn {
    let plan = abi::plan_call(&abi::parse_sig(sig).expect("sig"), &[]).expect("plan");
    NativeFn { host: 0x1234, plan, name: sig.into() }
}

fn text(f: &NativeFn) -> Vec<String> {
    disasm_buf(&translate_native(f, 0x1000, Ext::default()).expect("translates"), 0x1000)
}

fn has(t: &[String], line: &str) -> bool {
    t.iter().any(|l| l == line)
}

/// Whether `want` occurs as consecutive lines of `t`.
fn seq(t: &[String], want: &[&str]) -> bool {
    t.windows(want.len()).any(|w| w.iter().zip(want).all(|(a, b)| a == b))
}

#[test]
fn int_arguments_are_sign_extended_in_place() {
    let t = text(&native("(i32,u32,p,i64)->i32"));
    // The frame, then int and unsigned int sign-extended (LP64D) where they are, pointers and
    // longs untouched, nothing stored.
    assert_eq!(&t[..2], ["addi s9,sp,0", "addi sp,sp,-16"]);
    assert!(has(&t, "sd t1,-16(s9)"), "{t:?}");
    assert!(seq(&t, &["addiw a0,a0,0", "addiw a1,a1,0", "lui t1,0x1"]), "{t:?}");
    let n = t.len();
    assert_eq!(t[n - 2], format!("ld t2,{OFF_NATIVE_FN}(s1)"));
    assert_eq!(t[n - 1], "jalr zero,0(t2)");
    assert!(!t.iter().any(|l| l.starts_with("sd a")), "{t:?}");
}

#[test]
fn narrow_arguments_follow_their_type() {
    let t = text(&native("(i8,u8,i16,u16)->v"));
    let want = [
        "slli a0,a0,0x38", "srai a0,a0,0x38", "andi a1,a1,255", "slli a2,a2,0x30", "srai a2,a2,0x30",
        "slli a3,a3,0x30", "srli a3,a3,0x30",
    ];
    assert!(seq(&t, &want), "{t:?}");
}

#[test]
fn floats_come_from_the_xmm_low_lanes() {
    let t = text(&native("(f32,f64,i32)->f64"));
    let x = crate::cpu::OFF_XMM;
    assert!(has(&t, &format!("flw fa0,{x}(s1)")), "{t:?}");
    assert!(has(&t, &format!("fld fa1,{}(s1)", x + 16)), "{t:?}");
    assert!(has(&t, "addiw a0,a0,0"), "{t:?}");
}

#[test]
fn stack_arguments_go_to_registers_then_the_host_stack() {
    let t = text(&native("(i64,i64,i64,i64,i64,i64,i64,i64,i32)->v"));
    assert!(has(&t, "ld a6,8(s3)"), "{t:?}");
    assert!(has(&t, "ld a7,16(s3)"), "{t:?}");
    // The ninth: sign-extended from the guest stack into the host's outgoing area.
    let at = t.iter().position(|l| l == "lw t1,24(s3)").expect("ninth");
    assert_eq!(t[at + 1], "sd t1,0(sp)");
    assert!(has(&t, "addi sp,sp,-32"), "{t:?}");
}

#[test]
fn struct_parts_are_extracted_from_the_stored_register() {
    // {int; float} in RDI on the guest; a0 + fa0 on the host.
    let t = text(&native("({8:4:i32@0,f32@4})->v"));
    assert_eq!(t[0], "sd a0,56(s1)");
    assert!(has(&t, "lw a0,56(s1)"), "{t:?}");
    assert!(has(&t, "flw fa0,60(s1)"), "{t:?}");
    // A large struct goes by reference: the address of the guest's own copy.
    let t = text(&native("({24:8:i64@0,i64@8,i64@16})->v"));
    assert!(has(&t, "addi a0,s3,8"), "{t:?}");
}

#[test]
fn long_double_arguments_are_converted_by_the_helper() {
    let t = text(&native("(ld,i32)->ld"));
    assert_eq!(t[0], "sd s3,32(s1)");
    let call = t.iter().position(|l| *l == format!("ld ra,{OFF_LDARG_FN}(s1)")).expect("helper");
    assert_eq!(t[call + 1], "jalr ra,0(ra)");
    let s = crate::ctx::OFF_SCRATCH;
    assert!(has(&t, &format!("ld a0,{s}(s1)")), "{t:?}");
    assert!(has(&t, &format!("ld a1,{}(s1)", s + 8)), "{t:?}");
    // The int, stored around the helper call, is read back sign-extended.
    assert!(has(&t, "lw a2,56(s1)"), "{t:?}");
}

#[test]
fn fp_loads_encode_as_binutils_does() {
    // riscv64-linux-gnu-objdump: 0b04b507 fld fa0,176(s1); 03c4a507 flw fa0,60(s1).
    let w = enc_i(Op::Fld, Reg(10), Reg::S1, 176);
    assert_eq!(w, 0x0b04_b507);
    assert_eq!(disasm_buf(&w.to_le_bytes(), 0), ["fld fa0,176(s1)"]);
    let w = enc_i(Op::Flw, Reg(10), Reg::S1, 60);
    assert_eq!(w, 0x03c4_a507);
    assert_eq!(disasm_buf(&w.to_le_bytes(), 0), ["flw fa0,60(s1)"]);
}

#[test]
fn plans_the_block_cannot_carry_are_refused() {
    let mut f = native("(i32)->v");
    f.plan.args[0].ext = abi::Ext::F128ToF80;
    assert!(translate_native(&f, 0, Ext::default()).is_err());
}

#[cfg(target_arch = "riscv64")]
#[test]
fn reentry_check_is_fenced_on_both_sides() {
    extern "C" {
        fn ldnc_rv_native();
    }
    let code = ldnc_rv_native as *const () as *const u8;
    // SAFETY: reading the routine's own text (uncompressed, see the trampoline).
    let bytes = unsafe { core::slice::from_raw_parts(code, 4 * 64) };
    let t = disasm_buf(bytes, code as u64);
    let ic = crate::dispatch::OFF_IN_CODE;
    let clear = t.iter().position(|l| *l == format!("sb zero,{ic}(t2)")).expect("clear");
    assert_eq!(t[clear - 1], "fence rw,rw", "{t:?}");
    let call = t.iter().position(|l| l == "jalr ra,0(t1)").expect("call");
    assert!(clear < call);
    let set = t.iter().position(|l| *l == format!("sb t4,{ic}(t2)")).expect("set");
    assert!(set > call);
    assert_eq!(t[set + 1], "fence rw,rw", "{t:?}");
    // Then the pending word is read (auipc/addi of `lla`, then lw), before the table probe.
    assert!(t[set + 2].starts_with("auipc t4,"), "{t:?}");
    assert_eq!(t[set + 4], "lw t4,0(t4)");
}

#[test]
fn common_results_are_moved_in_line() {
    use super::{result_kind, ResultKind};
    let kind = |s: &str| result_kind(&abi::plan_call(&abi::parse_sig(s).expect("sig"), &[]).expect("plan").ret);
    assert_eq!(kind("(p)->v"), ResultKind::Void);
    assert_eq!(kind("(p)->p"), ResultKind::Int64);
    assert_eq!(kind("(p)->i64"), ResultKind::Int64);
    assert_eq!(kind("(p)->u64"), ResultKind::Int64);
    assert_eq!(kind("(p)->i32"), ResultKind::Int32);
    assert_eq!(kind("(p)->u32"), ResultKind::Int32);
    assert_eq!(kind("(p)->f64"), ResultKind::F64);
    assert_eq!(kind("(p)->f32"), ResultKind::F32);
    // Aggregates, long double and the rest through the helper.
    assert_eq!(kind("(p)->ld"), ResultKind::General);
    assert_eq!(kind("(p)->{16:8:i64@0,i64@8}"), ResultKind::General);
}
