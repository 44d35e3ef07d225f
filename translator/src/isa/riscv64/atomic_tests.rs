//! Tests of the emitted code for x86 atomicity and ordering (any host): every locked form is an
//! AMO or a constrained LR/SC loop (plus the locked slow path for split accesses), the TSO
//! fences appear exactly in fence mode, link sites are 8-byte aligned, and the lookup-table
//! probe orders its two loads. qemu-user on x86 cannot catch a missing fence or a non-atomic
//! sequence, so these check the instruction sequences themselves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test set-up failures abort the test")]

use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};

use super::asm::Ext;
use super::disasm::disasm_buf;
use crate::isa::Backend;

const BASE: u64 = 0x10_0000;

/// Encode `insns` (x86-64) into bytes.
fn x86(insns: &[Instruction]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in insns {
        let mut e = Encoder::new(64);
        e.encode(i, 0).expect("encodes");
        out.extend_from_slice(&e.take_buffer());
    }
    out
}

/// The iced code named `name` (e.g. "Add_rm32_r32").
fn code(name: &str) -> Code {
    Code::values().find(|c| format!("{c:?}") == name).unwrap_or_else(|| panic!("no code {name}"))
}

fn mem() -> MemoryOperand {
    MemoryOperand::with_base(Register::RDI)
}

fn reg_of(bits: u32) -> Register {
    match bits {
        8 => Register::CL,
        16 => Register::CX,
        32 => Register::ECX,
        _ => Register::RCX,
    }
}

fn locked(mut i: Instruction) -> Instruction {
    i.set_has_lock_prefix(true);
    i
}

/// Translate `code` with `ext` at BASE and print it.
fn text(code: &[u8], ext: Ext) -> Vec<String> {
    let start = code.as_ptr() as u64;
    // SAFETY: the slice outlives the source, which is used only in this function.
    let src = unsafe { crate::frontend::RangeSource::new(vec![(start, start + code.len() as u64)]) };
    let block = crate::frontend::decode_block(&src, start);
    let (bytes, t) = super::translate_block(&block, BASE, ext).expect("translates");
    for s in &t.link_sites {
        assert_eq!((BASE + u64::from(s.offset)) % 8, 0, "link site at {:#x} not 8-aligned", s.offset);
    }
    disasm_buf(&bytes, BASE)
}

fn is_plain_access(l: &str) -> bool {
    ["lb ", "lh ", "lw ", "ld ", "lbu ", "lhu ", "lwu ", "sb ", "sh ", "sw ", "sd "].iter().any(|p| l.starts_with(p))
}

/// The locked forms as instructions with their LOCK prefix (XCHG without: it is implicit), the
/// memory operand at [rdi] and any register operand CL/CX/ECX/RCX, and the width of the atomic
/// access: (description, instruction, width).
#[cfg_attr(not(target_arch = "riscv64"), allow(dead_code, reason = "also used by the exec tests, which run only on riscv64"))]
pub(super) fn locked_instructions() -> Vec<(String, Instruction, u32)> {
    let start = |b: &[u8]| {
        let mut d = iced_x86::Decoder::new(64, b, iced_x86::DecoderOptions::NONE);
        d.decode()
    };
    locked_forms().into_iter().map(|(n, b, w)| (n, start(&b), w)).collect()
}

/// The locked forms: (description, x86 code, width of the atomic access).
fn locked_forms() -> Vec<(String, Vec<u8>, u32)> {
    let mut v = Vec::new();
    let widths = [8u32, 16, 32, 64];
    for m in ["Add", "Sub", "And", "Or", "Xor", "Adc", "Sbb"] {
        for bits in widths {
            let i = Instruction::with2(code(&format!("{m}_rm{bits}_r{bits}")), mem(), reg_of(bits)).unwrap();
            v.push((format!("lock {m} m{bits}, r"), x86(&[locked(i)]), bits));
            let imm = if bits == 8 { format!("{m}_rm8_imm8") } else { format!("{m}_rm{bits}_imm8") };
            let i = Instruction::with2(code(&imm), mem(), 5i32).unwrap();
            v.push((format!("lock {m} m{bits}, imm"), x86(&[locked(i)]), bits));
        }
    }
    for m in ["Neg", "Not", "Inc", "Dec"] {
        for bits in widths {
            let i = Instruction::with1(code(&format!("{m}_rm{bits}")), mem()).unwrap();
            v.push((format!("lock {m} m{bits}"), x86(&[locked(i)]), bits));
        }
    }
    for m in ["Bts", "Btr", "Btc"] {
        for bits in [16u32, 32, 64] {
            let i = Instruction::with2(code(&format!("{m}_rm{bits}_r{bits}")), mem(), reg_of(bits)).unwrap();
            // The bit string: a byte-sized atomic access, never split.
            v.push((format!("lock {m} m{bits}, r"), x86(&[locked(i)]), 8));
            let i = Instruction::with2(code(&format!("{m}_rm{bits}_imm8")), mem(), 13i32).unwrap();
            v.push((format!("lock {m} m{bits}, imm"), x86(&[locked(i)]), 8));
        }
    }
    for bits in widths {
        let i = Instruction::with2(code(&format!("Xadd_rm{bits}_r{bits}")), mem(), reg_of(bits)).unwrap();
        v.push((format!("lock xadd m{bits}"), x86(&[locked(i)]), bits));
        let i = Instruction::with2(code(&format!("Cmpxchg_rm{bits}_r{bits}")), mem(), reg_of(bits)).unwrap();
        v.push((format!("lock cmpxchg m{bits}"), x86(&[locked(i)]), bits));
        // xchg with memory: locked without the prefix.
        let i = Instruction::with2(code(&format!("Xchg_rm{bits}_r{bits}")), mem(), reg_of(bits)).unwrap();
        v.push((format!("xchg m{bits}"), x86(&[i]), bits));
    }
    let i = Instruction::with1(Code::Cmpxchg8b_m64, mem()).unwrap();
    v.push(("lock cmpxchg8b".to_string(), x86(&[locked(i)]), 64));
    v
}

/// Check one translated locked form: an atomic operation, LR/SC loops constrained, plain
/// accesses to guest memory only under the split lock, the split path where it can happen.
fn check_atomic(name: &str, t: &[String], bits: u32) {
    let amo = t.iter().any(|l| {
        l.starts_with("amo") && l.contains(".aqrl ") && !l.starts_with("amoor.d.aqrl zero,zero")
    });
    let mut lr_loops = 0;
    for (n, l) in t.iter().enumerate() {
        if !l.starts_with("lr.") {
            continue;
        }
        assert!(l.starts_with("lr.w.aqrl") || l.starts_with("lr.d.aqrl"), "{name}: {l}");
        let sc = t[n..].iter().position(|s| s.starts_with("sc.")).unwrap_or_else(|| panic!("{name}: lr without sc {t:#?}"));
        // Constrained loop: at most 16 instructions, only base integer ones between.
        assert!(sc <= 14, "{name}: {sc} instructions between lr and sc: {t:#?}");
        for m in &t[n + 1..n + sc] {
            let bad = is_plain_access(m) || m.starts_with("fence") || m.starts_with("jal") || m.starts_with("amo")
                || m.starts_with("mul") || m.starts_with("div");
            assert!(!bad, "{name}: `{m}` inside an LR/SC loop: {t:#?}");
        }
        assert!(t[n + sc].contains(".rl "), "{name}: {}", t[n + sc]);
        assert!(t[n + sc + 1].starts_with("bne "), "{name}: the sc is retried: {t:#?}");
        lr_loops += 1;
    }
    assert!(amo || lr_loops > 0, "{name}: no AMO and no LR/SC loop: {t:#?}");
    if bits < 64 {
        assert!(t.iter().any(|l| l.starts_with("lr.d.aqrl")), "{name}: sub-word / in-doubleword loop missing: {t:#?}");
    }
    // Plain accesses to anything but the context only inside the split lock.
    let mut in_lock = false;
    let mut split_lock = false;
    for l in t {
        if l.starts_with("amoswap.w.aq ") {
            in_lock = true;
            split_lock = true;
        }
        if l.starts_with("amoswap.w.rl zero,zero,") {
            in_lock = false;
        }
        if is_plain_access(l) && !l.ends_with("(s1)") {
            assert!(in_lock, "{name}: plain guest access `{l}` outside the lock: {t:#?}");
        }
    }
    assert_eq!(split_lock, bits > 8, "{name}: split-access path: {t:#?}");
    assert!(!t.iter().any(|l| l.starts_with(".word")), "{name}: unknown words");
}

#[test]
fn every_locked_form_is_an_amo_or_an_lr_sc_loop() {
    // cmp rax, rax afterwards makes the locked instruction's flags dead.
    let kill = x86(&[Instruction::with2(Code::Cmp_rm64_r64, Register::RAX, Register::RAX).unwrap()]);
    let forms = locked_forms();
    assert!(forms.len() > 100);
    for (name, code, bits) in &forms {
        for ext in [Ext::default(), Ext { tso_fences: true, ..Ext::default() }] {
            check_atomic(&format!("{name} (flags live)"), &text(code, ext), *bits);
            let mut dead = code.clone();
            dead.extend_from_slice(&kill);
            check_atomic(&format!("{name} (flags dead)"), &text(&dead, ext), *bits);
        }
    }
}

#[test]
fn aligned_word_operations_use_one_amo() {
    let t = text(&x86(&[locked(Instruction::with2(Code::Add_rm64_r64, mem(), Register::RCX).unwrap())]), Ext::default());
    assert!(t.iter().any(|l| l == "amoadd.d.aqrl t2,a3,(t1)"), "{t:#?}");
    let t = text(&x86(&[locked(Instruction::with2(Code::Sub_rm32_r32, mem(), Register::ECX).unwrap())]), Ext::default());
    assert!(t.iter().any(|l| l == "sub t4,zero,a3") && t.iter().any(|l| l == "amoadd.w.aqrl t2,t4,(t1)"), "{t:#?}");
    let t = text(&x86(&[Instruction::with2(Code::Xchg_rm32_r32, mem(), Register::ECX).unwrap()]), Ext::default());
    assert!(t.iter().any(|l| l == "amoswap.w.aqrl t2,a3,(t1)"), "{t:#?}");
    // The flags come from the AMO's old value (t2): F_SRC1 = old, F_RES = old + src.
    let t = text(&x86(&[locked(Instruction::with2(Code::Add_rm64_r64, mem(), Register::RCX).unwrap())]), Ext::default());
    assert!(t.iter().any(|l| l == "add s0,t2,a3") && t.iter().any(|l| l == "addi s10,t2,0"), "{t:#?}");
}

#[test]
fn cmpxchg_is_an_lr_sc_loop_comparing_the_operand_width() {
    let t = text(&x86(&[locked(Instruction::with2(Code::Cmpxchg_rm32_r32, mem(), Register::ECX).unwrap())]), Ext::default());
    let lr = t.iter().position(|l| l.starts_with("lr.w.aqrl")).expect("lr.w");
    // lr.w; xor; slli 32; bne fail; mv new; sc.w.rl; bne retry
    assert!(t[lr + 1].starts_with("xor ") && t[lr + 2].ends_with(",0x20"), "{t:#?}");
    assert!(t[lr + 3].starts_with("bne ") && t[lr + 5].starts_with("sc.w.rl "), "{t:#?}");
}

#[test]
fn cmpxchg16b_uses_amocas_q_or_the_lock_table() {
    let code = x86(&[locked(Instruction::with1(Code::Cmpxchg16b_m128, mem()).unwrap())]);
    let t = text(&code, Ext { zacas: true, ..Ext::default() });
    assert!(t.iter().any(|l| l == "amocas.q.aqrl t1,t5,(s9)"), "{t:#?}");
    assert!(!t.iter().any(|l| is_plain_access(l) && !l.ends_with("(s1)")), "{t:#?}");
    let t = text(&code, Ext::default());
    assert!(!t.iter().any(|l| l.starts_with("amocas")), "{t:#?}");
    let probe = t.iter().position(|l| l == "amoor.d zero,zero,(s9)").expect("write probe before the lock");
    let lock = t.iter().position(|l| l.starts_with("amoswap.w.aq ")).expect("lock taken");
    let unlock = t.iter().position(|l| l.starts_with("amoswap.w.rl zero,zero,")).expect("lock released");
    assert!(probe < lock && lock < unlock, "{t:#?}");
    for (n, l) in t.iter().enumerate() {
        if is_plain_access(l) && !l.ends_with("(s1)") {
            assert!(lock < n && n < unlock, "`{l}` outside the lock: {t:#?}");
        }
    }
}

fn count_fences(t: &[String]) -> usize {
    t.iter().filter(|l| l.starts_with("fence ")).count()
}

/// Representative blocks and what fence mode must add to each.
#[test]
fn tso_fences_only_in_fence_mode() {
    let m = |base| MemoryOperand::with_base_displ(base, 8);
    let blocks: Vec<(&str, Vec<u8>)> = vec![
        ("mov load", x86(&[Instruction::with2(Code::Mov_r64_rm64, Register::RAX, m(Register::RBX)).unwrap()])),
        ("mov store", x86(&[Instruction::with2(Code::Mov_rm64_r64, m(Register::RBX), Register::RAX).unwrap()])),
        ("add reg,mem", x86(&[Instruction::with2(Code::Add_r64_rm64, Register::RAX, m(Register::RBX)).unwrap()])),
        ("add mem,reg", x86(&[Instruction::with2(Code::Add_rm64_r64, m(Register::RBX), Register::RAX).unwrap()])),
        ("sse load", x86(&[Instruction::with2(Code::Movsd_xmm_xmmm64, Register::XMM0, m(Register::RBX)).unwrap()])),
        ("push/pop", x86(&[
            Instruction::with1(Code::Push_r64, Register::RAX).unwrap(),
            Instruction::with1(Code::Pop_r64, Register::RBX).unwrap(),
        ])),
        ("call", x86(&[Instruction::with_branch(Code::Call_rel32_64, 0x1000).unwrap()])),
        ("ret", x86(&[Instruction::with(Code::Retnq)])),
        ("lock add", x86(&[locked(Instruction::with2(Code::Add_rm64_r64, m(Register::RBX), Register::RAX).unwrap())])),
    ];
    let fence = Ext { tso_fences: true, ..Ext::default() };
    let ztso = Ext { ztso: true, ..Ext::default() };
    for (name, code) in &blocks {
        let plain = text(code, Ext::default());
        let fenced = text(code, fence);
        let tso = text(code, ztso);
        // Single-threaded and Ztso: no fence at all (the locked add's split path has its own
        // two, around the lock).
        let own = if *name == "lock add" { 2 } else { 0 };
        assert_eq!(count_fences(&plain), own, "{name}: {plain:#?}");
        assert_eq!(count_fences(&tso), own, "{name}: {tso:#?}");
        assert!(count_fences(&fenced) > own, "{name}: {fenced:#?}");
        // Every guest load is followed by `fence r,rw`, every guest store preceded by
        // `fence rw,w`.
        for (n, l) in fenced.iter().enumerate() {
            if l.ends_with("(s1)") || !is_plain_access(l) {
                continue;
            }
            // The indirect-branch probe's loads read the inline cache word and the shared
            // lookup table, not guest memory (ordered by other means, see the probe test).
            let prev = if n > 0 { fenced[n - 1].as_str() } else { "" };
            let probe = prev.starts_with("auipc ") || fenced[n + 1].starts_with("xor ") || prev.starts_with("add t1,t1,");
            if probe {
                continue;
            }
            if l.starts_with('l') {
                assert_eq!(fenced[n + 1], "fence r,rw", "{name}: after `{l}`: {fenced:#?}");
            } else {
                assert_eq!(fenced[n - 1], "fence rw,w", "{name}: before `{l}`: {fenced:#?}");
            }
        }
        // The atomic itself needs no extra fence: it is .aqrl.
        if *name == "lock add" {
            assert!(fenced.iter().any(|l| l.starts_with("amoadd.d.aqrl")), "{fenced:#?}");
        }
    }
    // A helper that accesses guest memory itself (FXSAVE's 512-byte area) is bracketed by full
    // fences in fence mode, and its write probes are AMOs that rewrite nothing.
    let helper = x86(&[Instruction::with1(Code::Fxsave64_m512byte, m(Register::RBX)).unwrap()]);
    let t = text(&helper, fence);
    let call = t.iter().position(|l| l == "jalr ra,0(ra)").expect("a helper call");
    assert_eq!(t[call - 1], "fence rw,rw", "{t:#?}");
    assert_eq!(t[call + 1], "fence rw,rw", "{t:#?}");
    assert!(t.iter().any(|l| l.starts_with("amoor.w zero,zero,")), "{t:#?}");
    assert!(!text(&helper, Ext::default()).iter().any(|l| l.starts_with("fence")));
}

#[test]
fn mfence_sfence_lfence_map_to_their_fences() {
    for (c, want) in [(Code::Mfence, "fence rw,rw"), (Code::Sfence, "fence w,w"), (Code::Lfence, "fence r,r")] {
        let t = text(&x86(&[Instruction::with(c)]), Ext::default());
        assert!(t.iter().any(|l| l == want), "{c:?}: {t:#?}");
        assert_eq!(count_fences(&t), 1, "{c:?}: {t:#?}");
    }
}

#[test]
fn threads_started_switches_to_fences_unless_ztso_or_forced() {
    let mut b = super::Riscv64Backend::with_ext(Ext::default());
    assert!(!b.ext().tso_fences);
    assert!(b.threads_started(), "auto mode switches and asks for a flush");
    assert!(b.ext().tso_fences);
    assert!(!b.threads_started(), "only once");
    let mut b = super::Riscv64Backend::with_ext(Ext { ztso: true, ..Ext::default() });
    assert!(!b.threads_started() && !b.ext().tso_fences, "Ztso: no fences ever");
    let mut b = super::Riscv64Backend::with_ext(Ext::default());
    b.set_tso(super::parse_tso("fence"));
    assert!(b.ext().tso_fences && !b.threads_started());
    let mut b = super::Riscv64Backend::with_ext(Ext::default());
    b.set_tso(super::parse_tso("off"));
    assert!(!b.threads_started() && !b.ext().tso_fences);
    let e = super::parse_ext("zba,zacas,ztso");
    assert!(e.zba && e.zacas && e.ztso && !e.zbb);
}

#[test]
fn link_sites_are_aligned_and_both_words_reach_the_stub() {
    // A block whose link site would fall on a 4-mod-8 offset without padding: try a few
    // lengths of prefix so both parities occur.
    for n in 0..4 {
        let mut insns = vec![Instruction::with2(Code::Add_rm64_imm8, Register::RAX, 1i32).unwrap(); n];
        insns.push(Instruction::with_branch(Code::Jmp_rel32_64, 0x4000).unwrap());
        let code = x86(&insns);
        let start = code.as_ptr() as u64;
        // SAFETY: `code` outlives the source.
        let src = unsafe { crate::frontend::RangeSource::new(vec![(start, start + code.len() as u64)]) };
        let block = crate::frontend::decode_block(&src, start);
        let (bytes, t) = super::translate_block(&block, BASE, Ext::default()).expect("translates");
        let lines = disasm_buf(&bytes, BASE);
        for s in &t.link_sites {
            assert_eq!((BASE + u64::from(s.offset)) % 8, 0);
            let k = s.offset as usize / 4;
            // Unlinked: both words jump to the same stub, so a torn fetch against either
            // linked form still reaches the stub or the target.
            let target = |l: &str| l.rsplit(',').next().map(str::to_string);
            assert!(lines[k].starts_with("jal zero,") && lines[k + 1].starts_with("jal zero,"), "{lines:#?}");
            assert_eq!(target(&lines[k]), target(&lines[k + 1]), "{lines:#?}");
        }
    }
}

#[test]
fn lookup_probe_orders_the_host_load_after_the_guest_load() {
    // jmp rax
    let t = text(&x86(&[Instruction::with1(Code::Jmp_rm64, Register::RAX).unwrap()]), Ext::default());
    // ld y,0(x); xor y,y,target; bne y,zero,miss; add x,x,y; ld x,8(x); jalr
    let g = t.iter().position(|l| l.ends_with(",0(t1)") && l.starts_with("ld ")).expect("guest load");
    let y = t[g].split([' ', ',']).nth(1).unwrap().to_string();
    assert_eq!(t[g + 1], format!("xor {y},{y},a6"), "{t:#?}");
    assert!(t[g + 2].starts_with(&format!("bne {y},zero,")), "{t:#?}");
    assert_eq!(t[g + 3], format!("add t1,t1,{y}"), "the host load's address depends on the guest load: {t:#?}");
    assert_eq!(t[g + 4], format!("ld {y},8(t1)"), "{t:#?}");
    // Not fenced in fence mode either (the dependency orders them); the inline cache's word load
    // keeps its fixed distance from the auipc.
    let f = text(&x86(&[Instruction::with1(Code::Jmp_rm64, Register::RAX).unwrap()]), Ext { tso_fences: true, ..Ext::default() });
    let a = f.iter().position(|l| l.starts_with("auipc ")).expect("auipc");
    assert!(f[a + 1].starts_with("ld ") && f[a + 1].ends_with(",16(t1)"), "{f:#?}");
    assert!(f[a + 2].starts_with("beq "), "{f:#?}");
}

#[test]
fn lookup_probe_checks_the_guest_tag_again_after_the_host_load() {
    // The dispatcher republishes a slot (EMPTY, host, guest) while other threads probe it: a
    // probe that checked the tag only before loading the host word could pair an old tag with
    // the host of the slot's new guest. So the tag is loaded again, address-dependent on the host
    // load, and must still be the target before the jump.
    let t = text(&x86(&[Instruction::with1(Code::Jmp_rm64, Register::RAX).unwrap()]), Ext::default());
    let g = t.iter().position(|l| l.ends_with(",0(t1)") && l.starts_with("ld ")).expect("guest load");
    let y = t[g].split([' ', ',']).nth(1).unwrap().to_string();
    let miss = t[g + 2].rsplit(',').next().unwrap().to_string();
    assert_eq!(t[g + 4], format!("ld {y},8(t1)"), "host load: {t:#?}");
    assert_eq!(t[g + 5], format!("sub t1,t1,{y}"), "the second tag load's address depends on the host: {t:#?}");
    assert_eq!(t[g + 6], format!("add t1,t1,{y}"), "{t:#?}");
    assert_eq!(t[g + 7], "ld t1,0(t1)", "the tag again: {t:#?}");
    assert_eq!(t[g + 8], format!("bne t1,a6,{miss}"), "a changed tag misses: {t:#?}");
    assert_eq!(t[g + 9], format!("jalr zero,0({y})"), "the jump uses the checked host word: {t:#?}");
}

#[test]
fn inline_cache_fill_writes_target_paths_before_they_can_be_taken() {
    // jmp rax: the fill writes tag, miss jump, site, each an aligned 8/4/8-byte store.
    let code = x86(&[Instruction::with1(Code::Jmp_rm64, Register::RAX).unwrap()]);
    let start = code.as_ptr() as u64;
    // SAFETY: `code` outlives the source.
    let src = unsafe { crate::frontend::RangeSource::new(vec![(start, start + code.len() as u64)]) };
    let block = crate::frontend::decode_block(&src, start);
    let (bytes, t) = super::translate_block(&block, BASE, Ext::default()).expect("translates");
    let site = BASE + u64::from(t.link_sites.iter().find(|s| s.target == crate::isa::INDIRECT).unwrap().offset);
    let o = (site - 8 - BASE) as usize;
    let empty = u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    assert_eq!(empty, super::lower::EMPTY_TAG);
    // Non-canonical: no x86-64 address equals it.
    assert!(((empty as i64) << 16 >> 16) as u64 != empty);
    let mut b = super::Riscv64Backend::with_ext(Ext::default());
    let mut writes = Vec::new();
    assert!(b.fill_inline_cache(site, 0x40_1000, BASE + 0x8000, &mut |at, w| writes.push((at, w.len()))));
    assert_eq!(writes, [(site - 8, 8), (site - 12, 4), (site, 8)]);
    for (at, len) in writes {
        assert_eq!(at % len as u64, 0, "one atomic store each");
    }
}
