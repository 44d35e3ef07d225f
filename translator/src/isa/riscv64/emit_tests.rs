//! Encoder and lowering tests that run on any host.
//!
//! The golden table pairs each instruction word with its `objdump -M no-aliases` text; the words
//! were produced by GNU as (`riscv64-linux-gnu-as -march=rv64g_zba_zbb`) except the two Zicond
//! ones, which binutils 2.40 does not know and were encoded by hand from the Zicond spec. Each
//! entry is checked both ways: a tiny assembler built on `encode.rs` must produce the word, and
//! `disasm.rs` must print the text. When `riscv64-linux-gnu-objdump` is installed, a buffer of
//! encodings is also disassembled by binutils and compared line by line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test set-up failures abort the test")]

use super::asm::{Asm, Ext};
use super::disasm::{disasm, disasm_buf};
use super::encode::{self as e, Format, Op, Reg};

const GOLDEN: &[(u32, &str)] = &[
    (0x00c58533, "add a0,a1,a2"),
    (0x41b482b3, "sub t0,s1,s11"),
    (0x01c89833, "sll a6,a7,t3"),
    (0x01392433, "slt s0,s2,s3"),
    (0x003130b3, "sltu ra,sp,gp"),
    (0x0062c233, "xor tp,t0,t1"),
    (0x009453b3, "srl t2,s0,s1"),
    (0x40c5d533, "sra a0,a1,a2"),
    (0x00f766b3, "or a3,a4,a5"),
    (0x0128f833, "and a6,a7,s2"),
    (0x015a09bb, "addw s3,s4,s5"),
    (0x418b8b3b, "subw s6,s7,s8"),
    (0x01bd1cbb, "sllw s9,s10,s11"),
    (0x01eede3b, "srlw t3,t4,t5"),
    (0x40105fbb, "sraw t6,zero,ra"),
    (0x02c58533, "mul a0,a1,a2"),
    (0x02c59533, "mulh a0,a1,a2"),
    (0x02c5a533, "mulhsu a0,a1,a2"),
    (0x02c5b533, "mulhu a0,a1,a2"),
    (0x02c5c533, "div a0,a1,a2"),
    (0x02c5d533, "divu a0,a1,a2"),
    (0x02c5e533, "rem a0,a1,a2"),
    (0x02c5f533, "remu a0,a1,a2"),
    (0x02c5853b, "mulw a0,a1,a2"),
    (0x02c5c53b, "divw a0,a1,a2"),
    (0x02c5d53b, "divuw a0,a1,a2"),
    (0x02c5e53b, "remw a0,a1,a2"),
    (0x02c5f53b, "remuw a0,a1,a2"),
    (0x80058513, "addi a0,a1,-2048"),
    (0x7ff58513, "addi a0,a1,2047"),
    (0xfff32293, "slti t0,t1,-1"),
    (0x00133293, "sltiu t0,t1,1"),
    (0xfff34293, "xori t0,t1,-1"),
    (0x55536293, "ori t0,t1,1365"),
    (0x0ff37293, "andi t0,t1,255"),
    (0x03f59513, "slli a0,a1,0x3f"),
    (0x0015d513, "srli a0,a1,0x1"),
    (0x4205d513, "srai a0,a1,0x20"),
    (0xfff5851b, "addiw a0,a1,-1"),
    (0x01f5951b, "slliw a0,a1,0x1f"),
    (0x0055d51b, "srliw a0,a1,0x5"),
    (0x4075d51b, "sraiw a0,a1,0x7"),
    (0xfff48503, "lb a0,-1(s1)"),
    (0x00249503, "lh a0,2(s1)"),
    (0x8004a503, "lw a0,-2048(s1)"),
    (0x7ff4b503, "ld a0,2047(s1)"),
    (0x0004c503, "lbu a0,0(s1)"),
    (0x0084d503, "lhu a0,8(s1)"),
    (0x00c4e503, "lwu a0,12(s1)"),
    // FP loads (rd an FP register), as riscv64-linux-gnu-objdump prints them.
    (0x0b04b507, "fld fa0,176(s1)"),
    (0x03c4a507, "flw fa0,60(s1)"),
    (0xfea48fa3, "sb a0,-1(s1)"),
    (0x00a49123, "sh a0,2(s1)"),
    (0x80a4a023, "sw a0,-2048(s1)"),
    (0x7ea4bfa3, "sd a0,2047(s1)"),
    (0xfffff537, "lui a0,0xfffff"),
    (0x000012b7, "lui t0,0x1"),
    (0x80000297, "auipc t0,0x80000"),
    (0xffc28067, "jalr zero,-4(t0)"),
    (0x000080e7, "jalr ra,0(ra)"),
    (0x00000073, "ecall"),
    (0x00100073, "ebreak"),
    (0x0330000f, "fence rw,rw"),
    (0x0000100f, "fence.i"),
    (0xc0102573, "csrrs a0,time,zero"),
    (0x1605b52f, "lr.d.aqrl a0,(a1)"),
    (0x1a63b2af, "sc.d.rl t0,t1,(t2)"),
    (0x1ab6252f, "sc.w.rl a0,a1,(a2)"),
    (0x0c5322af, "amoswap.w.aq t0,t0,(t1)"),
    (0x0a03202f, "amoswap.w.rl zero,zero,(t1)"),
    (0x4603302f, "amoor.d.aqrl zero,zero,(t1)"),
    (0x0230000f, "fence r,rw"),
    (0x0310000f, "fence rw,w"),
    (0x0110000f, "fence w,w"),
    (0x0220000f, "fence r,r"),
    // Zacas, unknown to binutils 2.40: encoded by hand from the Zacas spec (funct5 00101,
    // funct3 010/011/100 for .w/.d/.q).
    (0x2eb6252f, "amocas.w.aqrl a0,a1,(a2)"),
    (0x2eb6352f, "amocas.d.aqrl a0,a1,(a2)"),
    (0x2fecc32f, "amocas.q.aqrl t1,t5,(s9)"),
    (0x1ed7362f, "sc.d.aqrl a2,a3,(a4)"),
    (0x1605a52f, "lr.w.aqrl a0,(a1)"),
    (0x1ed7262f, "sc.w.aqrl a2,a3,(a4)"),
    (0x0eb6352f, "amoswap.d.aqrl a0,a1,(a2)"),
    (0x0eb6252f, "amoswap.w.aqrl a0,a1,(a2)"),
    (0x06b6352f, "amoadd.d.aqrl a0,a1,(a2)"),
    (0x06b6252f, "amoadd.w.aqrl a0,a1,(a2)"),
    (0x26b6352f, "amoxor.d.aqrl a0,a1,(a2)"),
    (0x66b6352f, "amoand.d.aqrl a0,a1,(a2)"),
    (0x46b6352f, "amoor.d.aqrl a0,a1,(a2)"),
    (0x26b6252f, "amoxor.w.aqrl a0,a1,(a2)"),
    (0x66b6252f, "amoand.w.aqrl a0,a1,(a2)"),
    (0x46b6252f, "amoor.w.aqrl a0,a1,(a2)"),
    (0x0805853b, "add.uw a0,a1,zero"),
    (0x20c5a533, "sh1add a0,a1,a2"),
    (0x20c5c533, "sh2add a0,a1,a2"),
    (0x20c5e533, "sh3add a0,a1,a2"),
    (0x40c5f533, "andn a0,a1,a2"),
    (0x40c5e533, "orn a0,a1,a2"),
    (0x40c5c533, "xnor a0,a1,a2"),
    (0x0ac5e533, "max a0,a1,a2"),
    (0x0ac5f533, "maxu a0,a1,a2"),
    (0x0ac5c533, "min a0,a1,a2"),
    (0x0ac5d533, "minu a0,a1,a2"),
    (0x60c59533, "rol a0,a1,a2"),
    (0x60c5d533, "ror a0,a1,a2"),
    (0x60d5d513, "rori a0,a1,0xd"),
    (0x60059513, "clz a0,a1"),
    (0x60159513, "ctz a0,a1"),
    (0x60259513, "cpop a0,a1"),
    (0x60459513, "sext.b a0,a1"),
    (0x60559513, "sext.h a0,a1"),
    (0x6b85d513, "rev8 a0,a1"),
    (0x2875d513, "orc.b a0,a1"),
    (0x0805c53b, "zext.h a0,a1"),
    (0x0ec5d533, "czero.eqz a0,a1,a2"),
    (0x0ec5f533, "czero.nez a0,a1,a2"),
    // Branches and jumps, assembled at address 0 (targets print as absolute addresses).
    (0x00b50463, "beq a0,a1,0x8"),
    (0xfdbd10e3, "bne s10,s11,0xffffffffffffffc0"),
    (0x7e734fe3, "blt t1,t2,0xffe"),
    (0x80a05063, "bge zero,a0,0xfffffffffffff000"),
    (0x00d66863, "bltu a2,a3,0x10"),
    (0x00f770e3, "bgeu a4,a5,0x800"),
    (0x001000ef, "jal ra,0x800"),
    (0x8000006f, "jal zero,0xfffffffffff00000"),
];

fn reg(s: &str) -> Reg {
    (0..32u8).map(Reg).find(|r| r.name() == s).unwrap_or_else(|| panic!("register {s}"))
}

fn num(s: &str) -> i32 {
    if let Some(h) = s.strip_prefix("0x") {
        u64::from_str_radix(h, 16).expect("hex") as i64 as i32
    } else {
        s.parse().expect("decimal")
    }
}

/// `imm(reg)` → (imm, reg).
fn mem(s: &str) -> (i32, Reg) {
    let (imm, r) = s.split_once('(').expect("memory operand");
    let imm = if imm.is_empty() { 0 } else { num(imm) };
    (imm, reg(r.trim_end_matches(')')))
}

/// Assemble one line of the golden table with the encoders (the inverse of the printer).
fn assemble(text: &str) -> u32 {
    let (m, ops) = text.split_once(' ').unwrap_or((text, ""));
    let ops: Vec<&str> = if ops.is_empty() { vec![] } else { ops.split(',').collect() };
    let (base, aq, rl) = match m.rsplit_once('.') {
        Some((b, "aqrl")) => (b, true, true),
        Some((b, "aq")) => (b, true, false),
        Some((b, "rl")) => (b, false, true),
        _ => (m, false, false),
    };
    let op = *Op::ALL.iter().find(|o| o.mnemonic() == base).unwrap_or_else(|| panic!("mnemonic {m}"));
    let (fmt, opc, _, _) = op.fields();
    match (fmt, op) {
        (Format::R, Op::LrW | Op::LrD) => e::enc_amo(op, aq, rl, reg(ops[0]), mem(ops[1]).1, Reg::ZERO),
        (Format::R, _) if opc == 0b010_1111 => e::enc_amo(op, aq, rl, reg(ops[0]), mem(ops[2]).1, reg(ops[1])),
        (Format::R, Op::ZextH) => e::enc_r(op, reg(ops[0]), reg(ops[1]), Reg::ZERO),
        (Format::R, _) => e::enc_r(op, reg(ops[0]), reg(ops[1]), reg(ops[2])),
        (Format::I, Op::Ecall | Op::Ebreak | Op::FenceI) => e::enc_i(op, Reg::ZERO, Reg::ZERO, 0),
        (Format::I, Op::Fence) => {
            let set = |t: &str| t.chars().map(|c| match c { 'r' => e::FENCE_R, 'w' => e::FENCE_W, 'i' => e::FENCE_I, _ => e::FENCE_O }).sum();
            e::enc_fence(set(ops[0]), set(ops[1]))
        }
        (Format::I, Op::Csrrs) => e::enc_i(op, reg(ops[0]), reg(ops[2]), 0xc01),
        (Format::I, Op::Clz | Op::Ctz | Op::Cpop | Op::SextB | Op::SextH | Op::Rev8 | Op::OrcB) => {
            e::enc_i(op, reg(ops[0]), reg(ops[1]), 0)
        }
        (Format::I, Op::Flw | Op::Fld) => {
            let (imm, r) = mem(ops[1]);
            let f: u8 = ops[0].trim_start_matches("fa").parse().expect("fa register");
            e::enc_i(op, Reg(10 + f), r, imm)
        }
        (Format::I, _) if ops.len() == 2 => {
            let (imm, r) = mem(ops[1]);
            e::enc_i(op, reg(ops[0]), r, imm)
        }
        (Format::I, _) => e::enc_i(op, reg(ops[0]), reg(ops[1]), num(ops[2])),
        (Format::S, _) => {
            let (imm, r) = mem(ops[1]);
            e::enc_s(op, reg(ops[0]), r, imm)
        }
        (Format::U, _) => e::enc_u(op, reg(ops[0]), num(ops[1])),
        (Format::B, _) => e::enc_b(op, reg(ops[0]), reg(ops[1]), num(ops[2])),
        (Format::J, _) => e::enc_j(op, reg(ops[0]), num(ops[1])),
    }
}

#[test]
fn golden_encodings_and_printer_text() {
    for &(word, text) in GOLDEN {
        assert_eq!(assemble(text), word, "encoding of `{text}`: want {word:#010x}");
        assert_eq!(disasm(word, 0), text, "printing {word:#010x}");
    }
    // Every opcode the backend can emit is covered by the table.
    for op in Op::ALL {
        assert!(GOLDEN.iter().any(|(w, _)| super::disasm::decode_op(*w) == Some(*op)), "{op:?} has no golden entry");
    }
}

#[test]
fn branch_and_jump_offsets_at_their_limits() {
    // B: 13-bit signed even offsets; J: 21-bit signed even offsets.
    for off in [-4096, -2, 0, 2, 4094] {
        let w = e::enc_b(Op::Bltu, Reg::A0, Reg::A1, off);
        assert_eq!(disasm(w, 0x10000), format!("bltu a0,a1,0x{:x}", 0x10000 + off as i64));
    }
    for off in [-(1 << 20), -2, 2, (1 << 20) - 2] {
        let w = e::enc_j(Op::Jal, Reg::RA, off);
        assert_eq!(disasm(w, 0x20_0000), format!("jal ra,0x{:x}", 0x20_0000 + off as i64));
    }
    assert!(e::fits_b(4094) && !e::fits_b(4096) && !e::fits_b(3));
    assert!(e::fits_j((1 << 20) - 2) && !e::fits_j(1 << 20));
    // auipc + jalr reach: the low part is sign-extended, so the high part rounds.
    for off in [0i64, 2047, 2048, -2048, -2049, (1 << 31) - 2049, -(1i64 << 31)] {
        assert!(e::fits_auipc(off), "{off}");
        let (hi, lo) = e::split_hi_lo(off);
        assert_eq!((i64::from(hi) << 12) + i64::from(lo), off, "{off}");
        assert!(e::fits_i12(i64::from(lo)));
    }
    assert!(!e::fits_auipc(1i64 << 31));
}

#[test]
fn link_sites_encode_jal_or_auipc_jalr() {
    use crate::isa::Backend;
    let b = super::Riscv64Backend::with_ext(Ext::default());
    let mut out = [0u8; 8];
    // Within ±1 MiB: a direct jal.
    b.encode_link(0x10_0000, 0x10_0000 + 0x1_2344, &mut out).expect("near");
    assert_eq!(disasm_buf(&out, 0x10_0000), ["jal zero,0x112344", "addi zero,zero,0"]);
    b.encode_link(0x10_0000, 0x10_0000 - (1 << 20), &mut out).expect("near, backwards");
    assert_eq!(disasm_buf(&out, 0x10_0000), ["jal zero,0x0", "addi zero,zero,0"]);
    // Farther: auipc + jalr through t0.
    b.encode_link(0x1000, 0x1000 + 0x12_3450, &mut out).expect("in range");
    assert_eq!(disasm_buf(&out, 0x1000), ["auipc t0,0x123", "jalr zero,1104(t0)"]);
    b.encode_link(0x8000_0000, 0x1000, &mut out).expect("backwards");
    assert_eq!(disasm_buf(&out, 0x8000_0000), ["auipc t0,0x80001", "jalr zero,0(t0)"]);
    assert!(b.encode_link(0, 1 << 40, &mut out).is_none());
}

/// Compare the printer with binutils over every golden word (when objdump is installed).
#[test]
fn printer_agrees_with_objdump() {
    let objdump = "riscv64-linux-gnu-objdump";
    let mut a = Asm::new(Ext::default());
    for &(w, _) in GOLDEN {
        a.word(w);
    }
    // Some branches with targets, printed as absolute addresses by both.
    a.word(e::enc_b(Op::Bge, Reg::S10, Reg::S11, -64));
    a.word(e::enc_j(Op::Jal, Reg::ZERO, 2048));
    let bytes = a.bytes();
    let dir = std::env::temp_dir().join(format!("ldnc-rv-objdump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("code.bin");
    std::fs::write(&file, &bytes).expect("write");
    let out = match std::process::Command::new(objdump)
        .args(["-D", "-b", "binary", "-m", "riscv:rv64", "-M", "no-aliases"])
        .arg(&file)
        .output()
    {
        Ok(o) if o.status.success() => o,
        _ => {
            eprintln!("{objdump} not available; skipping the binutils comparison");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let ours = disasm_buf(&bytes, 0);
    let mut compared = 0;
    for line in text.lines() {
        // "   4:\t0080006f          \tjal\tzero,0xc"
        let mut parts = line.split('\t');
        let (Some(addr), Some(_), Some(m)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(addr) = usize::from_str_radix(addr.trim().trim_end_matches(':'), 16) else { continue };
        if m.starts_with('.') {
            // Extensions this binutils does not decode without an arch option (Zba/Zbb/Zicond).
            continue;
        }
        let theirs = match parts.next() {
            Some(ops) => format!("{m} {}", ops.split(" #").next().unwrap_or(ops).trim()),
            None => m.trim().to_string(),
        };
        assert_eq!(ours[addr / 4], theirs, "word {} at {addr:#x}", addr / 4);
        compared += 1;
    }
    assert!(compared >= 60, "only {compared} lines compared:\n{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- lowering, checked on the printed code ----

fn lower_text(code: &[u8], ext: Ext) -> Vec<String> {
    let start = code.as_ptr() as u64;
    // SAFETY: the slice outlives the source, which is used only in this function.
    let src = unsafe { crate::frontend::RangeSource::new(vec![(start, start + code.len() as u64)]) };
    let block = crate::frontend::decode_block(&src, start);
    let (bytes, _) = super::translate_block(&block, 0x10_0000, ext).expect("translates");
    disasm_buf(&bytes, 0x10_0000)
}

fn has(text: &[String], needle: &str) -> bool {
    text.iter().any(|l| l == needle)
}

#[test]
fn cmp_jcc_fuses_into_one_branch() {
    // cmp rax, rbx; jl +0
    let t = lower_text(&[0x48, 0x39, 0xd8, 0x7c, 0x00], Ext::default());
    assert!(t.iter().any(|l| l.starts_with("blt s10,s11,")), "{t:#?}");
    assert_eq!(t.iter().filter(|l| l.starts_with('b')).count(), 1, "one branch: {t:#?}");
    assert!(!has(&t, "jalr ra,0(ra)"), "no helper call: {t:#?}");
    // The subtraction result is kept for a consumer in another block, with its kind word.
    assert!(has(&t, "sub s0,a6,s2"), "{t:#?}");
}

#[test]
fn dead_flags_are_not_computed() {
    // add rax, rbx; sub rcx, rdx; xor eax, eax; jmp +0: only the last writer's flags live out.
    let t = lower_text(&[0x48, 0x01, 0xd8, 0x48, 0x29, 0xd1, 0x31, 0xc0, 0xeb, 0x00], Ext::default());
    assert!(has(&t, "add a6,a6,s2"), "{t:#?}");
    assert!(has(&t, "sub a3,a3,a2"), "{t:#?}");
    // The xor's logic flags need only the result: no operand copies at all.
    assert_eq!(t.iter().filter(|l| l.starts_with("addi s10,") || l.starts_with("addi s11,")).count(), 0, "{t:#?}");
    assert!(has(&t, "addi s0,zero,0"), "{t:#?}");
    // xor eax, eax zero-extends a zero: one instruction.
    assert!(has(&t, "addi a6,zero,0") && !has(&t, "slli a6,zero,0x20"), "{t:#?}");
}

#[test]
fn zba_and_zbb_are_used_when_present() {
    // lea rax, [rbx+rcx*8+16]; bswap rdx; jmp +0
    let code = [0x48, 0x8d, 0x44, 0xcb, 0x10, 0x48, 0x0f, 0xca, 0xeb, 0x00];
    let base = lower_text(&code, Ext::default());
    let ext = lower_text(&code, Ext { zba: true, zbb: true, ..Ext::default() });
    assert!(has(&ext, "sh3add t1,a3,s2"), "{ext:#?}");
    assert!(has(&ext, "rev8 t1,a2"), "{ext:#?}");
    assert!(!base.iter().any(|l| l.starts_with("sh3add") || l.starts_with("rev8")));
    assert!(ext.len() < base.len());
}

#[test]
fn untranslated_instruction_ends_the_block_with_an_exit() {
    // inc rax; in al, dx (port I/O, not translated): the block is cut before it with an
    // UNSUPPORTED (7) exit.
    let t = lower_text(&[0x48, 0xff, 0xc0, 0xec], Ext::default());
    // The increment lands in the flag result register (its flags are live out), then in RAX.
    assert!(has(&t, "addi s0,a6,1"), "{t:#?}");
    assert!(has(&t, "addi a6,s0,0"), "{t:#?}");
    assert!(has(&t, "addi t0,zero,7"), "{t:#?}");
    assert!(!t.iter().any(|l| l.starts_with(".word")));
}

#[test]
fn every_emitted_word_decodes() {
    // A block using many instruction families prints without unknown words.
    let code = [
        0x48, 0x0f, 0xaf, 0xc3, // imul rax, rbx
        0x48, 0xf7, 0xf1, // div rcx
        0x0f, 0xa3, 0xd8, // bt eax, ebx
        0x48, 0xd3, 0xe0, // shl rax, cl
        0xf3, 0xa4, // rep movsb
        0xf0, 0x48, 0x0f, 0xb1, 0x0f, // lock cmpxchg [rdi], rcx
        0x0f, 0x44, 0xc1, // cmove eax, ecx
        0xc3, // ret
    ];
    let t = lower_text(&code, Ext::default());
    assert!(!t.iter().any(|l| l.starts_with(".word")), "{t:#?}");
    assert!(t.iter().any(|l| l.starts_with("lr.d.aqrl")), "{t:#?}");
    assert!(!has(&t, "addi t0,zero,7"), "nothing unsupported: {t:#?}");
}

/// Translate every block of a real static x86-64 program (`/bin/busybox` from busybox-static, when
/// present) by a linear sweep of its executable sections: nothing may panic, branches must stay in
/// range, and most instructions must be translated. Prints coverage and code-size figures.
#[test]
fn sweep_a_real_binary() {
    let Ok(elf) = std::fs::read("/bin/busybox") else {
        eprintln!("/bin/busybox not present; skipping");
        return;
    };
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) || u16_at(0x12) != 62 {
        eprintln!("/bin/busybox is not an x86-64 ELF; skipping");
        return;
    }
    let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
    let mut text = Vec::new();
    for k in 0..shnum {
        let sh = shoff + k * shentsize;
        let flags = u64_at(sh + 8);
        let (off, size) = (u64_at(sh + 0x18), u64_at(sh + 0x20));
        if flags & 4 != 0 && size > 0 {
            text.push(&elf[off..off + size]);
        }
    }
    let (mut insns, mut translated, mut guest_bytes, mut host_bytes, mut blocks) = (0usize, 0usize, 0u64, 0u64, 0usize);
    let mut missing: std::collections::BTreeMap<String, usize> = Default::default();
    let mut vector_missing = 0usize;
    for sec in text {
        let start = sec.as_ptr() as u64;
        let end = start + sec.len() as u64;
        // SAFETY: the section bytes live in `elf` for the whole sweep.
        let src = unsafe { crate::frontend::RangeSource::new(vec![(start, end)]) };
        let mut pc = start;
        while pc < end {
            let block = crate::frontend::decode_block(&src, pc);
            let (code, _, n, _) = super::translate_block_counted(&block, 0x4000_0000, Ext::default()).expect("translates");
            blocks += 1;
            // Instructions after a cut are decoded again by the next sweep step.
            insns += n + usize::from(n < block.insns.len());
            translated += n;
            host_bytes += code.len() as u64;
            if let Some(gi) = block.insns.get(n) {
                let vector = gi.insn.encoding() != iced_x86::EncodingKind::Legacy
                    || super::sse::is_sse(&gi.insn)
                    || (0..gi.insn.op_count()).any(|k| {
                        gi.insn.op_kind(k) == iced_x86::OpKind::Register && gi.insn.op_register(k).is_mm()
                    });
                if vector {
                    vector_missing += 1;
                } else {
                    *missing.entry(format!("{:?}", gi.insn.mnemonic())).or_default() += 1;
                }
            }
            let done: u64 = block.insns[..n].iter().map(|i| i.insn.len() as u64).sum();
            guest_bytes += done;
            // Continue after the translated prefix's block (or skip what did not decode).
            pc = match block.insns.get(n) {
                Some(gi) if n == 0 => gi.next_ip(),
                Some(gi) => gi.insn.ip(),
                None => block.guest_range().1,
            };
        }
    }
    let mut top: Vec<_> = missing.into_iter().collect();
    top.sort_by_key(|t| core::cmp::Reverse(t.1));
    eprintln!(
        "busybox sweep: {blocks} blocks, {translated}/{insns} instructions translated ({:.1}%), \
         {:.2} host bytes per translated guest byte",
        100.0 * translated as f64 / insns.max(1) as f64,
        host_bytes as f64 / guest_bytes.max(1) as f64
    );
    let other: usize = top.iter().map(|t| t.1).sum();
    eprintln!("untranslated: {vector_missing} SSE/AVX/MMX (not this module's), {other} others: {:?}", &top[..top.len().min(25)]);
    // Everything but vector instructions (and the odd privileged or legacy one) is translated.
    assert!(other * 200 < insns, "more than 0.5% of non-vector instructions untranslated");
}

#[test]
fn hash_loop_shape() {
    // movzx ecx, byte [rdx]; add rdx, 1; xor rax, rcx; imul rax, rsi; cmp rdx, rdi; jne
    let code = [0x0f, 0xb6, 0x0a, 0x48, 0x83, 0xc2, 0x01, 0x48, 0x31, 0xc8, 0x48, 0x0f, 0xaf, 0xc6, 0x48, 0x39, 0xfa, 0x75, 0xed];
    let t = lower_text(&code, Ext::default());
    let body: Vec<&String> = t.iter().take_while(|l| !l.starts_with("jal")).collect();
    eprintln!("{body:#?}");
    // The loop body before the branch: no helper call, and a handful of instructions per x86 one.
    assert!(!has(&t, "jalr ra,0(ra)"));
    assert!(body.len() <= 16, "{} instructions: {body:#?}", body.len());
}

#[test]
fn lent_register_repairs_round_trip() {
    use super::lower::{decode_fixup, encode_fixup};
    use crate::cpu::Gpr;
    assert_eq!(decode_fixup(encode_fixup([None, None])), [None, None]);
    for a in Gpr::ALL {
        assert_eq!(decode_fixup(encode_fixup([Some(a), None])), [Some((a as usize, 0)), None]);
        for b in Gpr::ALL {
            if b == Gpr::R15 || (a == Gpr::R15 && b == Gpr::R14) {
                continue; // never lent as the second register (see borrow_for)
            }
            let w = encode_fixup([Some(a), Some(b)]);
            assert_ne!(w, crate::fault::NO_FIXUP);
            assert_eq!(decode_fixup(w), [Some((a as usize, 0)), Some((b as usize, 1))]);
        }
    }
}

/// Random bytes as guest code: whatever decodes must translate (or be cut with an exit) without
/// panicking, in debug builds with every assertion on, with and without the extensions.
#[test]
fn random_code_never_panics() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut buf = [0u8; 64];
    let mut translated = 0usize;
    for round in 0..30000 {
        for b in buf.iter_mut() {
            *b = next() as u8;
        }
        // Bias towards real instruction starts: common prefixes and opcodes.
        let lead = [0x48, 0x4c, 0x66, 0xf0, 0xf3, 0x0f, 0x67, 0x64, 0x41, 0x49];
        buf[0] = lead[round % lead.len()];
        let start = buf.as_ptr() as u64;
        // SAFETY: `buf` outlives the source.
        let src = unsafe { crate::frontend::RangeSource::new(vec![(start, start + buf.len() as u64)]) };
        let block = crate::frontend::decode_block(&src, start);
        let ext = if round % 2 == 0 { Ext::default() } else { Ext { zba: true, zbb: true, ..Ext::default() } };
        let (code, _, n, pcs) = super::translate_block_counted(&block, 0x7000_0000, ext).expect("translates");
        assert!(code.len() % 4 == 0 && !code.is_empty());
        // One entry per translated instruction, plus resume points at link sites; sorted by
        // host offset, as the fault map's binary search needs.
        assert!(pcs.len() >= n);
        assert!(pcs.windows(2).all(|w| w[0].host_off <= w[1].host_off));
        for gi in &block.insns[..n] {
            assert!(pcs.iter().any(|e| e.guest_pc == gi.insn.ip()), "no entry for {:#x}", gi.insn.ip());
        }
        // Floating-point and vector major opcodes come from the SSE/x87 modules, which this
        // printer does not cover; every integer word must be one it knows.
        // (The fflags CSR accesses of the FP fast paths count as theirs.)
        let fp = |w: u32| matches!(w & 0x7f, 0x07 | 0x27 | 0x43 | 0x47 | 0x4b | 0x4f | 0x53 | 0x57) || (w & 0x7f == 0x73 && w >> 20 == 1);
        let unknown: Vec<String> = code
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .filter(|&w| !fp(w))
            .map(|w| super::disasm::disasm(w, 0))
            .filter(|l| l.starts_with(".word"))
            .collect();
        assert!(unknown.is_empty(), "{unknown:?} in {:?}", block.insns.iter().map(|i| crate::frontend::format(&i.insn)).collect::<Vec<_>>());
        translated += n;
    }
    assert!(translated > 1000, "only {translated} instructions translated");
}

#[test]
fn indirect_jump_has_an_inline_cache_that_fill_patches() {
    use crate::isa::Backend;
    // jmp rax
    let code = [0xffu8, 0xe0];
    let start = code.as_ptr() as u64;
    // SAFETY: `code` outlives the source.
    let src = unsafe { crate::frontend::RangeSource::new(vec![(start, start + code.len() as u64)]) };
    let block = crate::frontend::decode_block(&src, start);
    let base = 0x10_0000u64;
    let (mut bytes, t) = super::translate_block(&block, base, Ext::default()).expect("translates");
    let sites: Vec<_> = t.link_sites.iter().filter(|s| s.target == crate::isa::INDIRECT).collect();
    assert_eq!(sites.len(), 1, "{:?} {:#?}", t.link_sites, disasm_buf(&bytes, base));
    let site = base + u64::from(sites[0].offset);
    assert_eq!((site - 8) % 8, 0, "the cached target is an aligned word");
    let mut b = super::Riscv64Backend::with_ext(Ext::default());
    let (guest, host) = (0x40_1234u64, base + 0x2000);
    let filled = b.fill_inline_cache(site, guest, host, &mut |at, w| {
        let o = (at - base) as usize;
        bytes[o..o + w.len()].copy_from_slice(w);
    });
    assert!(filled);
    let text = disasm_buf(&bytes, base);
    let line = |a: u64| text[((a - base) / 4) as usize].clone();
    let o = (site - 8 - base) as usize;
    assert_eq!(u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap_or_default()), guest);
    // The cache compares RAX (a6) with the cached word and branches to the site on a match.
    assert!(text.iter().any(|l| l.starts_with("beq ") && l.contains(",a6,")), "{text:#?}");
    assert_eq!(line(site - 12), format!("jal zero,{:#x}", site + 8), "a miss goes to the table");
    assert_eq!(line(site), format!("jal zero,{host:#x}"), "a hit goes to the cached code");
}

#[test]
fn a_loop_back_to_a_flag_writing_start_skips_the_kind_word() {
    // top: add rax, 1; cmp rax, rbx; jne top — the block writes every flag before reading any.
    let code = [0x48u8, 0x83, 0xc0, 0x01, 0x48, 0x39, 0xd8, 0x75, 0xf7];
    let t = lower_text(&code, Ext::default());
    let kind_store = format!("sd t0,{}(s1)", super::flags::OFF_KIND);
    let branch = t.iter().position(|l| l.starts_with("bne ")).expect("a fused branch");
    let first_store = t.iter().position(|l| *l == kind_store).expect("the fall-through records the kind");
    assert!(branch < first_store, "the loop path stores no kind word: {t:#?}");
    // Not a loop to the start (jne +0 goes to the next instruction): the kind is stored first.
    let mut other = code;
    other[8] = 0x00;
    let t = lower_text(&other, Ext::default());
    let branch = t.iter().position(|l| l.starts_with("bne ")).expect("a fused branch");
    let first_store = t.iter().position(|l| *l == kind_store).expect("kind recorded");
    assert!(first_store < branch, "{t:#?}");
}

#[test]
fn conditions_on_exact_flags_are_one_mask_test() {
    // sahf (exact flags); seta al: CF and ZF both clear, from one masked load of RFLAGS.
    let t = lower_text(&[0x9e, 0x0f, 0x97, 0xc0], Ext::default());
    assert!(has(&t, "andi t1,t1,65"), "{t:#?}");
    assert!(has(&t, "sltiu t1,t1,1"), "{t:#?}");
    // sahf; setb al: CF itself.
    let t = lower_text(&[0x9e, 0x0f, 0x92, 0xc0], Ext::default());
    assert!(has(&t, "andi t1,t1,1") && has(&t, "sltu t1,zero,t1"), "{t:#?}");
}
