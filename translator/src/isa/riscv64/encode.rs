//! RISC-V instruction encoding: the integer registers, one opcode enum covering every instruction
//! the backend emits (RV64I, M, A, Zacas, Zicsr, Zifencei, Zba, Zbb, Zicond), and one encoder function
//! per base instruction format. Nothing here knows about x86; `asm.rs` builds on it.
//!
//! Encoders take immediates already range-checked by their caller (the `fits_*` helpers state the
//! ranges) and keep only the bits the format has room for, so a caller bug shows up as a wrong
//! instruction in the printer tests rather than as a panic during translation.

/// An integer register `x0`..`x31`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u8);

#[allow(missing_docs, reason = "ABI register names are self-describing")]
impl Reg {
    pub const ZERO: Reg = Reg(0);
    pub const RA: Reg = Reg(1);
    pub const SP: Reg = Reg(2);
    pub const GP: Reg = Reg(3);
    pub const TP: Reg = Reg(4);
    pub const T0: Reg = Reg(5);
    pub const T1: Reg = Reg(6);
    pub const T2: Reg = Reg(7);
    pub const S0: Reg = Reg(8);
    pub const S1: Reg = Reg(9);
    pub const A0: Reg = Reg(10);
    pub const A1: Reg = Reg(11);
    pub const A2: Reg = Reg(12);
    pub const A3: Reg = Reg(13);
    pub const A4: Reg = Reg(14);
    pub const A5: Reg = Reg(15);
    pub const A6: Reg = Reg(16);
    pub const A7: Reg = Reg(17);
    pub const S2: Reg = Reg(18);
    pub const S3: Reg = Reg(19);
    pub const S4: Reg = Reg(20);
    pub const S5: Reg = Reg(21);
    pub const S6: Reg = Reg(22);
    pub const S7: Reg = Reg(23);
    pub const S8: Reg = Reg(24);
    pub const S9: Reg = Reg(25);
    pub const S10: Reg = Reg(26);
    pub const S11: Reg = Reg(27);
    pub const T3: Reg = Reg(28);
    pub const T4: Reg = Reg(29);
    pub const T5: Reg = Reg(30);
    pub const T6: Reg = Reg(31);

    /// The psABI name, as disassemblers print it.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 32] = [
            "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
            "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
            "t3", "t4", "t5", "t6",
        ];
        NAMES[usize::from(self.0 & 31)]
    }
}

/// Base instruction formats (unprivileged ISA, chapter 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Register-register.
    R,
    /// Register-immediate and loads; also shifts by immediate (funct6/funct7 in the high bits).
    I,
    /// Stores.
    S,
    /// Conditional branches.
    B,
    /// Upper immediate.
    U,
    /// Jump and link.
    J,
}

macro_rules! opcodes {
    ($($name:ident = ($fmt:ident, $opc:expr, $f3:expr, $f7:expr, $text:expr);)*) => {
        /// Every instruction the backend emits.
        #[allow(missing_docs, reason = "each variant is the RISC-V mnemonic of the same name")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Op { $($name,)* }

        impl Op {
            /// All opcodes, for the printer's reverse lookup and the tests.
            pub const ALL: &'static [Op] = &[$(Op::$name,)*];

            /// (format, major opcode, funct3, funct7 or the fixed high bits).
            pub const fn fields(self) -> (Format, u32, u32, u32) {
                match self { $(Op::$name => (Format::$fmt, $opc, $f3, $f7),)* }
            }

            /// The assembler mnemonic.
            pub const fn mnemonic(self) -> &'static str {
                match self { $(Op::$name => $text,)* }
            }
        }
    };
}

// Major opcodes (unprivileged ISA, table 70 "RISC-V base opcode map").
const OP_LOAD: u32 = 0b000_0011;
const OP_LOAD_FP: u32 = 0b000_0111;
const OP_MISC_MEM: u32 = 0b000_1111;
const OP_IMM: u32 = 0b001_0011;
const OP_AUIPC: u32 = 0b001_0111;
const OP_IMM_32: u32 = 0b001_1011;
const OP_STORE: u32 = 0b010_0011;
const OP_AMO: u32 = 0b010_1111;
const OP_OP: u32 = 0b011_0011;
const OP_LUI: u32 = 0b011_0111;
const OP_OP_32: u32 = 0b011_1011;
const OP_BRANCH: u32 = 0b110_0011;
const OP_JALR: u32 = 0b110_0111;
const OP_JAL: u32 = 0b110_1111;
const OP_SYSTEM: u32 = 0b111_0011;

// For I-format shifts and the unary Zbb ops the "funct7" column holds the fixed bits [31:20]
// shifted down by 20 (the shamt or the rs2 selector is or-ed in by the caller); for AMOs it holds
// funct5 << 2 (the aq/rl bits are or-ed in by the caller).
opcodes! {
    Lui = (U, OP_LUI, 0, 0, "lui");
    Auipc = (U, OP_AUIPC, 0, 0, "auipc");
    Jal = (J, OP_JAL, 0, 0, "jal");
    Jalr = (I, OP_JALR, 0, 0, "jalr");
    Beq = (B, OP_BRANCH, 0, 0, "beq");
    Bne = (B, OP_BRANCH, 1, 0, "bne");
    Blt = (B, OP_BRANCH, 4, 0, "blt");
    Bge = (B, OP_BRANCH, 5, 0, "bge");
    Bltu = (B, OP_BRANCH, 6, 0, "bltu");
    Bgeu = (B, OP_BRANCH, 7, 0, "bgeu");
    Lb = (I, OP_LOAD, 0, 0, "lb");
    Lh = (I, OP_LOAD, 1, 0, "lh");
    Lw = (I, OP_LOAD, 2, 0, "lw");
    Ld = (I, OP_LOAD, 3, 0, "ld");
    Lbu = (I, OP_LOAD, 4, 0, "lbu");
    Lhu = (I, OP_LOAD, 5, 0, "lhu");
    Lwu = (I, OP_LOAD, 6, 0, "lwu");
    Sb = (S, OP_STORE, 0, 0, "sb");
    Sh = (S, OP_STORE, 1, 0, "sh");
    Sw = (S, OP_STORE, 2, 0, "sw");
    Sd = (S, OP_STORE, 3, 0, "sd");
    Addi = (I, OP_IMM, 0, 0, "addi");
    Slti = (I, OP_IMM, 2, 0, "slti");
    Sltiu = (I, OP_IMM, 3, 0, "sltiu");
    Xori = (I, OP_IMM, 4, 0, "xori");
    Ori = (I, OP_IMM, 6, 0, "ori");
    Andi = (I, OP_IMM, 7, 0, "andi");
    Slli = (I, OP_IMM, 1, 0x000, "slli");
    Srli = (I, OP_IMM, 5, 0x000, "srli");
    Srai = (I, OP_IMM, 5, 0x400, "srai");
    Add = (R, OP_OP, 0, 0x00, "add");
    Sub = (R, OP_OP, 0, 0x20, "sub");
    Sll = (R, OP_OP, 1, 0x00, "sll");
    Slt = (R, OP_OP, 2, 0x00, "slt");
    Sltu = (R, OP_OP, 3, 0x00, "sltu");
    Xor = (R, OP_OP, 4, 0x00, "xor");
    Srl = (R, OP_OP, 5, 0x00, "srl");
    Sra = (R, OP_OP, 5, 0x20, "sra");
    Or = (R, OP_OP, 6, 0x00, "or");
    And = (R, OP_OP, 7, 0x00, "and");
    Addiw = (I, OP_IMM_32, 0, 0, "addiw");
    Slliw = (I, OP_IMM_32, 1, 0x000, "slliw");
    Srliw = (I, OP_IMM_32, 5, 0x000, "srliw");
    Sraiw = (I, OP_IMM_32, 5, 0x400, "sraiw");
    Addw = (R, OP_OP_32, 0, 0x00, "addw");
    Subw = (R, OP_OP_32, 0, 0x20, "subw");
    Sllw = (R, OP_OP_32, 1, 0x00, "sllw");
    Srlw = (R, OP_OP_32, 5, 0x00, "srlw");
    Sraw = (R, OP_OP_32, 5, 0x20, "sraw");
    Mul = (R, OP_OP, 0, 0x01, "mul");
    Mulh = (R, OP_OP, 1, 0x01, "mulh");
    Mulhsu = (R, OP_OP, 2, 0x01, "mulhsu");
    Mulhu = (R, OP_OP, 3, 0x01, "mulhu");
    Div = (R, OP_OP, 4, 0x01, "div");
    Divu = (R, OP_OP, 5, 0x01, "divu");
    Rem = (R, OP_OP, 6, 0x01, "rem");
    Remu = (R, OP_OP, 7, 0x01, "remu");
    Mulw = (R, OP_OP_32, 0, 0x01, "mulw");
    Divw = (R, OP_OP_32, 4, 0x01, "divw");
    Divuw = (R, OP_OP_32, 5, 0x01, "divuw");
    Remw = (R, OP_OP_32, 6, 0x01, "remw");
    Remuw = (R, OP_OP_32, 7, 0x01, "remuw");
    LrW = (R, OP_AMO, 2, 0x02 << 2, "lr.w");
    ScW = (R, OP_AMO, 2, 0x03 << 2, "sc.w");
    LrD = (R, OP_AMO, 3, 0x02 << 2, "lr.d");
    ScD = (R, OP_AMO, 3, 0x03 << 2, "sc.d");
    AmoswapW = (R, OP_AMO, 2, 0x01 << 2, "amoswap.w");
    AmoswapD = (R, OP_AMO, 3, 0x01 << 2, "amoswap.d");
    AmoaddW = (R, OP_AMO, 2, 0x00 << 2, "amoadd.w");
    AmoaddD = (R, OP_AMO, 3, 0x00 << 2, "amoadd.d");
    AmoxorW = (R, OP_AMO, 2, 0x04 << 2, "amoxor.w");
    AmoandW = (R, OP_AMO, 2, 0x0c << 2, "amoand.w");
    AmoorW = (R, OP_AMO, 2, 0x08 << 2, "amoor.w");
    AmoxorD = (R, OP_AMO, 3, 0x04 << 2, "amoxor.d");
    AmoandD = (R, OP_AMO, 3, 0x0c << 2, "amoand.d");
    AmoorD = (R, OP_AMO, 3, 0x08 << 2, "amoor.d");
    // Zacas (compare-and-swap): funct5 00101; `.q` is funct3 100 and takes even register pairs.
    AmocasW = (R, OP_AMO, 2, 0x05 << 2, "amocas.w");
    AmocasD = (R, OP_AMO, 3, 0x05 << 2, "amocas.d");
    AmocasQ = (R, OP_AMO, 4, 0x05 << 2, "amocas.q");
    // Zicsr: rdtime is `csrrs rd, time, zero`; the CSR number sits in the I immediate.
    Csrrs = (I, OP_SYSTEM, 2, 0, "csrrs");
    Ecall = (I, OP_SYSTEM, 0, 0, "ecall");
    Ebreak = (I, OP_SYSTEM, 0, 1, "ebreak");
    Fence = (I, OP_MISC_MEM, 0, 0, "fence");
    FenceI = (I, OP_MISC_MEM, 1, 0, "fence.i");
    // F and D loads (LOAD-FP): `rd` is an FP register; only used to load native-call arguments.
    Flw = (I, OP_LOAD_FP, 2, 0, "flw");
    Fld = (I, OP_LOAD_FP, 3, 0, "fld");
    // Zba.
    AddUw = (R, OP_OP_32, 0, 0x04, "add.uw");
    Sh1add = (R, OP_OP, 2, 0x10, "sh1add");
    Sh2add = (R, OP_OP, 4, 0x10, "sh2add");
    Sh3add = (R, OP_OP, 6, 0x10, "sh3add");
    // Zbb.
    Andn = (R, OP_OP, 7, 0x20, "andn");
    Orn = (R, OP_OP, 6, 0x20, "orn");
    Xnor = (R, OP_OP, 4, 0x20, "xnor");
    Max = (R, OP_OP, 6, 0x05, "max");
    Maxu = (R, OP_OP, 7, 0x05, "maxu");
    Min = (R, OP_OP, 4, 0x05, "min");
    Minu = (R, OP_OP, 5, 0x05, "minu");
    Rol = (R, OP_OP, 1, 0x30, "rol");
    Ror = (R, OP_OP, 5, 0x30, "ror");
    Rori = (I, OP_IMM, 5, 0x600, "rori");
    Clz = (I, OP_IMM, 1, 0x600, "clz");
    Ctz = (I, OP_IMM, 1, 0x601, "ctz");
    Cpop = (I, OP_IMM, 1, 0x602, "cpop");
    SextB = (I, OP_IMM, 1, 0x604, "sext.b");
    SextH = (I, OP_IMM, 1, 0x605, "sext.h");
    Rev8 = (I, OP_IMM, 5, 0x6b8, "rev8");
    OrcB = (I, OP_IMM, 5, 0x287, "orc.b");
    ZextH = (R, OP_OP_32, 4, 0x04, "zext.h");
    // Zicond.
    CzeroEqz = (R, OP_OP, 5, 0x07, "czero.eqz");
    CzeroNez = (R, OP_OP, 7, 0x07, "czero.nez");
}

/// Whether `v` fits a signed 12-bit immediate (I and S formats: bits `[31:20]` or `[31:25|11:7]`).
pub const fn fits_i12(v: i64) -> bool {
    v >= -2048 && v <= 2047
}

/// Whether `v` is a B-format offset: 13-bit signed, even (bit 0 is implicit), so ±4 KiB.
pub const fn fits_b(v: i64) -> bool {
    v >= -4096 && v <= 4094 && v & 1 == 0
}

/// Whether `v` is a J-format offset: 21-bit signed, even, so ±1 MiB.
pub const fn fits_j(v: i64) -> bool {
    v >= -(1 << 20) && v < (1 << 20) && v & 1 == 0
}

/// Whether `v` is reachable by `auipc` + a 12-bit signed low part: the high part is rounded so
/// that the sign-extended low part adds back, which gives [-2^31 - 2^11, 2^31 - 2^11).
pub const fn fits_auipc(v: i64) -> bool {
    v >= -(1i64 << 31) - 2048 && v < (1i64 << 31) - 2048
}

fn reg(r: Reg) -> u32 {
    u32::from(r.0 & 31)
}

/// R-type:
/// ```text
///  31      25 24  20 19  15 14  12 11   7 6      0
/// | funct7   | rs2  | rs1  |funct3|  rd  | opcode |
/// ```
pub fn enc_r(op: Op, rd: Reg, rs1: Reg, rs2: Reg) -> u32 {
    let (fmt, opc, f3, f7) = op.fields();
    debug_assert_eq!(fmt, Format::R, "{op:?}");
    f7 << 25 | reg(rs2) << 20 | reg(rs1) << 15 | f3 << 12 | reg(rd) << 7 | opc
}

/// AMO / LR / SC / AMOCAS: R-type whose funct7 is `funct5 | aq | rl`. funct3 is the width
/// (010 word, 011 doubleword, 100 quadword for `amocas.q`); LR has rs2 = x0.
/// ```text
///  31   27 26 25 24  20 19  15 14  12 11   7 6      0
/// | funct5 |aq|rl| rs2  | rs1  |funct3|  rd  | opcode |
/// ```
pub fn enc_amo(op: Op, aq: bool, rl: bool, rd: Reg, rs1: Reg, rs2: Reg) -> u32 {
    let (_, opc, f3, f7) = op.fields();
    let f7 = f7 | u32::from(aq) << 1 | u32::from(rl);
    f7 << 25 | reg(rs2) << 20 | reg(rs1) << 15 | f3 << 12 | reg(rd) << 7 | opc
}

/// FENCE with predecessor and successor sets (each a mask of [`FENCE_I`], [`FENCE_O`],
/// [`FENCE_R`], [`FENCE_W`]); `fm` = 0 (a normal fence), rs1 = rd = x0.
/// ```text
///  31  28 27 26 25 24 23 22 21 20 19  15 14  12 11   7 6      0
/// |  fm  |PI|PO|PR|PW|SI|SO|SR|SW| rs1  | 000  |  rd  | MISC-MEM |
/// ```
pub fn enc_fence(pred: u32, succ: u32) -> u32 {
    let (_, opc, f3, _) = Op::Fence.fields();
    (pred & 0xf) << 24 | (succ & 0xf) << 20 | f3 << 12 | opc
}

/// Device input, in a [`enc_fence`] set.
pub const FENCE_I: u32 = 8;
/// Device output, in a [`enc_fence`] set.
pub const FENCE_O: u32 = 4;
/// Memory reads, in a [`enc_fence`] set.
pub const FENCE_R: u32 = 2;
/// Memory writes, in a [`enc_fence`] set.
pub const FENCE_W: u32 = 1;

/// I-type; `imm` is signed 12-bit ([-2048, 2047], see [`fits_i12`]) because the hardware
/// sign-extends bit 31.
/// ```text
///  31          20 19  15 14  12 11   7 6      0
/// |  imm[11:0]   | rs1  |funct3|  rd  | opcode |
/// ```
/// For shifts, `slli`-style ops keep their fixed high bits (funct6 / funct7) and `imm` is the
/// shift amount (0..64, or 0..32 for the `*w` forms); for unary Zbb ops `imm` is ignored.
pub fn enc_i(op: Op, rd: Reg, rs1: Reg, imm: i32) -> u32 {
    let (fmt, opc, f3, hi) = op.fields();
    debug_assert_eq!(fmt, Format::I, "{op:?}");
    let field = match op {
        Op::Slli | Op::Srli | Op::Srai | Op::Rori => hi | (imm as u32 & 0x3f),
        Op::Slliw | Op::Srliw | Op::Sraiw => hi | (imm as u32 & 0x1f),
        Op::Clz | Op::Ctz | Op::Cpop | Op::SextB | Op::SextH | Op::Rev8 | Op::OrcB => hi,
        Op::Ebreak | Op::Ecall => hi,
        _ => imm as u32 & 0xfff,
    };
    field << 20 | reg(rs1) << 15 | f3 << 12 | reg(rd) << 7 | opc
}

/// S-type; `imm` is signed 12-bit ([`fits_i12`]), split so that rs1/rs2 stay where R-type has them.
/// ```text
///  31      25 24  20 19  15 14  12 11      7 6      0
/// |imm[11:5] | rs2  | rs1  |funct3|imm[4:0] | opcode |
/// ```
pub fn enc_s(op: Op, rs2: Reg, rs1: Reg, imm: i32) -> u32 {
    let (fmt, opc, f3, _) = op.fields();
    debug_assert_eq!(fmt, Format::S, "{op:?}");
    let imm = imm as u32;
    (imm >> 5 & 0x7f) << 25 | reg(rs2) << 20 | reg(rs1) << 15 | f3 << 12 | (imm & 0x1f) << 7 | opc
}

/// B-type; `off` is a byte offset from this instruction, even, in [-4096, 4094] ([`fits_b`]):
/// 12 stored bits of a 13-bit offset whose bit 0 is always zero.
/// ```text
///   31   30    25 24  20 19  15 14  12 11    8   7    6      0
/// |i[12]|i[10:5] | rs2  | rs1  |funct3|i[4:1] |i[11]| opcode |
/// ```
pub fn enc_b(op: Op, rs1: Reg, rs2: Reg, off: i32) -> u32 {
    let (fmt, opc, f3, _) = op.fields();
    debug_assert_eq!(fmt, Format::B, "{op:?}");
    let o = off as u32;
    (o >> 12 & 1) << 31
        | (o >> 5 & 0x3f) << 25
        | reg(rs2) << 20
        | reg(rs1) << 15
        | f3 << 12
        | (o >> 1 & 0xf) << 8
        | (o >> 11 & 1) << 7
        | opc
}

/// U-type; `imm20` is the 20-bit value placed in bits `[31:12]` of the result (any i32 value's low
/// 20 bits; the result is sign-extended from bit 31 on RV64).
/// ```text
///  31                 12 11   7 6      0
/// |      imm[31:12]     |  rd  | opcode |
/// ```
pub fn enc_u(op: Op, rd: Reg, imm20: i32) -> u32 {
    let (fmt, opc, _, _) = op.fields();
    debug_assert_eq!(fmt, Format::U, "{op:?}");
    (imm20 as u32 & 0xf_ffff) << 12 | reg(rd) << 7 | opc
}

/// J-type; `off` is a byte offset from this instruction, even, in [-1 MiB, 1 MiB) ([`fits_j`]).
/// ```text
///   31    30       21   20    19       12 11   7 6      0
/// |i[20]| i[10:1]   |i[11]|  i[19:12]  |  rd  | opcode |
/// ```
pub fn enc_j(op: Op, rd: Reg, off: i32) -> u32 {
    let (fmt, opc, _, _) = op.fields();
    debug_assert_eq!(fmt, Format::J, "{op:?}");
    let o = off as u32;
    (o >> 20 & 1) << 31
        | (o >> 1 & 0x3ff) << 21
        | (o >> 11 & 1) << 20
        | (o >> 12 & 0xff) << 12
        | reg(rd) << 7
        | opc
}

/// Split a PC-relative offset into the `auipc` high part and the sign-extended 12-bit low part
/// (`hi << 12 + lo == off`). Valid when [`fits_auipc`] holds.
pub fn split_hi_lo(off: i64) -> (i32, i32) {
    let lo = ((off << 52) >> 52) as i32;
    let hi = ((off - i64::from(lo)) >> 12) as i32;
    (hi, lo)
}
