//! A small disassembler for exactly the instructions `encode.rs` produces, printing them the way
//! `objdump -M no-aliases` does (no pseudo-instructions, branch targets as absolute addresses), so
//! that tests can check encodings by text and compare with binutils when it is installed. It also
//! makes translation dumps readable while debugging (`LDNC_RV_DUMP`).

use super::encode::{Format, Op, Reg};

fn bits(w: u32, hi: u32, lo: u32) -> u32 {
    (w >> lo) & ((1u32 << (hi - lo + 1)) - 1)
}

fn sext(v: u32, width: u32) -> i64 {
    let s = 64 - width;
    (i64::from(v) << s) >> s
}

/// Find the opcode whose fixed fields match `w`.
pub fn decode_op(w: u32) -> Option<Op> {
    let opc = w & 0x7f;
    let f3 = bits(w, 14, 12);
    let hi12 = bits(w, 31, 20);
    let f7 = bits(w, 31, 25);
    // Exact matches with a fixed 12-bit field first (unary Zbb, ecall/ebreak).
    let mut best = None;
    for &op in Op::ALL {
        let (fmt, o, fo3, ff7) = op.fields();
        if o != opc {
            continue;
        }
        let hit = match (fmt, op) {
            (Format::U | Format::J, _) => true,
            (Format::B | Format::S, _) => f3 == fo3,
            (Format::I, Op::Slli | Op::Srli | Op::Srai | Op::Rori) => {
                f3 == fo3 && (hi12 & !0x3f) == ff7
            }
            (Format::I, Op::Slliw | Op::Srliw | Op::Sraiw) => f3 == fo3 && (hi12 & !0x1f) == ff7,
            (Format::I, Op::Clz | Op::Ctz | Op::Cpop | Op::SextB | Op::SextH | Op::Rev8 | Op::OrcB) => {
                f3 == fo3 && hi12 == ff7
            }
            (Format::I, Op::Ecall | Op::Ebreak) => f3 == fo3 && hi12 == ff7,
            (Format::I, _) => f3 == fo3,
            (Format::R, Op::ZextH) => f3 == fo3 && f7 == ff7 && bits(w, 24, 20) == 0,
            (Format::R, Op::AddUw) => f3 == fo3 && f7 == ff7,
            (Format::R, _) if o == 0b010_1111 => f3 == fo3 && (f7 & !3) == ff7,
            (Format::R, _) => f3 == fo3 && f7 == ff7,
        };
        if hit {
            // Prefer the most specific match: the I-format catch-all must not win over shifts.
            let specific = !matches!(fmt, Format::I) || !matches!(op, Op::Addi | Op::Slti | Op::Sltiu | Op::Xori | Op::Ori | Op::Andi);
            match best {
                None => best = Some(op),
                Some(_) if specific => best = Some(op),
                Some(_) => {}
            }
        }
    }
    best
}

/// ABI name of FP register `f<n>`.
fn freg_name(n: u32) -> String {
    match n {
        0..=7 => format!("ft{n}"),
        8..=9 => format!("fs{}", n - 8),
        10..=17 => format!("fa{}", n - 10),
        18..=27 => format!("fs{}", n - 16),
        _ => format!("ft{}", n - 20),
    }
}

/// Disassemble one word at address `pc`.
pub fn disasm(w: u32, pc: u64) -> String {
    let Some(op) = decode_op(w) else {
        return format!(".word 0x{w:08x}");
    };
    let rd = Reg(bits(w, 11, 7) as u8).name();
    let rs1 = Reg(bits(w, 19, 15) as u8).name();
    let rs2 = Reg(bits(w, 24, 20) as u8).name();
    let m = op.mnemonic();
    let (fmt, opc, _, _) = op.fields();
    match fmt {
        Format::R if opc == 0b010_1111 => {
            let ord = match bits(w, 26, 25) {
                0 => "",
                1 => ".rl",
                2 => ".aq",
                _ => ".aqrl",
            };
            if matches!(op, Op::LrW | Op::LrD) {
                format!("{m}{ord} {rd},({rs1})")
            } else {
                format!("{m}{ord} {rd},{rs2},({rs1})")
            }
        }
        Format::R if op == Op::ZextH => format!("{m} {rd},{rs1}"),
        Format::R => format!("{m} {rd},{rs1},{rs2}"),
        Format::I => {
            let imm = sext(bits(w, 31, 20), 12);
            match op {
                Op::Lb | Op::Lh | Op::Lw | Op::Ld | Op::Lbu | Op::Lhu | Op::Lwu | Op::Jalr => {
                    format!("{m} {rd},{imm}({rs1})")
                }
                Op::Flw | Op::Fld => format!("{m} {},{imm}({rs1})", freg_name(bits(w, 11, 7))),
                Op::Slli | Op::Srli | Op::Srai | Op::Rori => {
                    format!("{m} {rd},{rs1},0x{:x}", bits(w, 25, 20))
                }
                Op::Slliw | Op::Srliw | Op::Sraiw => format!("{m} {rd},{rs1},0x{:x}", bits(w, 24, 20)),
                Op::Clz | Op::Ctz | Op::Cpop | Op::SextB | Op::SextH | Op::Rev8 | Op::OrcB => {
                    format!("{m} {rd},{rs1}")
                }
                Op::Ecall | Op::Ebreak | Op::FenceI => m.to_string(),
                Op::Fence => {
                    let set = |v: u32| {
                        let mut s = String::new();
                        for (b, c) in [(8, 'i'), (4, 'o'), (2, 'r'), (1, 'w')] {
                            if v & b != 0 {
                                s.push(c);
                            }
                        }
                        s
                    };
                    format!("{m} {},{}", set(bits(w, 27, 24)), set(bits(w, 23, 20)))
                }
                Op::Csrrs => {
                    let csr = bits(w, 31, 20);
                    let name = match csr {
                        0xc00 => "cycle".to_string(),
                        0xc01 => "time".to_string(),
                        0xc02 => "instret".to_string(),
                        _ => format!("0x{csr:x}"),
                    };
                    format!("{m} {rd},{name},{rs1}")
                }
                _ => format!("{m} {rd},{rs1},{imm}"),
            }
        }
        Format::S => {
            let imm = sext(bits(w, 31, 25) << 5 | bits(w, 11, 7), 12);
            format!("{m} {rs2},{imm}({rs1})")
        }
        Format::B => {
            let off = sext(
                bits(w, 31, 31) << 12 | bits(w, 7, 7) << 11 | bits(w, 30, 25) << 5 | bits(w, 11, 8) << 1,
                13,
            );
            format!("{m} {rs1},{rs2},0x{:x}", pc.wrapping_add(off as u64))
        }
        Format::U => format!("{m} {rd},0x{:x}", bits(w, 31, 12)),
        Format::J => {
            let off = sext(
                bits(w, 31, 31) << 20 | bits(w, 19, 12) << 12 | bits(w, 20, 20) << 11 | bits(w, 30, 21) << 1,
                21,
            );
            format!("{m} {rd},0x{:x}", pc.wrapping_add(off as u64))
        }
    }
}

/// Disassemble a buffer of little-endian words placed at `base`, one line per instruction.
pub fn disasm_buf(code: &[u8], base: u64) -> Vec<String> {
    code.chunks_exact(4)
        .enumerate()
        .map(|(i, c)| {
            let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            disasm(w, base + 4 * i as u64)
        })
        .collect()
}
