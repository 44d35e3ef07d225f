//! Instruction forms and their cases.
//!
//! A [`Form`] is one iced [`Code`] (an opcode with its operand kinds) in one variant: register or
//! memory for an r/m operand, with or without LOCK, with or without a REP prefix. Forms are
//! enumerated from iced's opcode tables by mnemonic or CPUID feature, so "every form of ADC" means
//! every encoding iced knows, not a hand-picked few.
//!
//! [`make_case`] turns a form and a seed into a concrete [`Case`]: operands are picked at random
//! (any GPR including AH..BH and SPL..R15B, any XMM), memory operands get a random addressing mode
//! (base, base+disp, base+index*scale, index-only, RIP-relative, absolute) that lands inside the
//! data window, inputs are edge-biased, and per-mnemonic fixups keep the case meaningful and
//! non-faulting (valid divisions, interesting shift counts, string buffers, CMPXCHG hits). It also
//! returns the [`Expect`]: which flags and register bits the SDM defines for that exact input.

use iced_x86::{
    Code, CpuidFeature, Decoder, DecoderOptions, EncodingKind, Encoder, Instruction, Mnemonic,
    OpCodeOperandKind as K, OpKind, Register, RflagsBits,
};
use translator::cpu::flags;
use translator::cpuid::Features;

use super::{code_base, data_base, Case, Expect, Regs, Rng, MEM_HI, MEM_LO, STACK_TOP, STR_DST, STR_LEN, STR_SRC};

/// A REP-family prefix variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rep {
    /// No prefix.
    None,
    /// `REP` (`F3`) on MOVS/STOS/LODS, `REPE` on CMPS/SCAS.
    Rep,
    /// `REPNE` (`F2`), CMPS/SCAS only.
    Repne,
}

/// One instruction form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Form {
    /// The opcode and operand kinds.
    pub code: Code,
    /// Whether the r/m operand is memory.
    pub mem: bool,
    /// Whether the form has an r/m operand (so that `mem` is a choice).
    pub has_rm: bool,
    /// LOCK prefix.
    pub lock: bool,
    /// REP prefix.
    pub rep: Rep,
    /// Run with MXCSR.DAZ and MXCSR.FTZ set (what `-ffast-math` programs do).
    pub daz_ftz: bool,
}

impl Form {
    /// Stable name used in messages and in the KNOWN-UNSUPPORTED lists, e.g. `Adc_rm32_r32/m/lock`.
    pub fn name(&self) -> String {
        let mut s = format!("{:?}", self.code);
        if self.has_rm {
            s.push_str(if self.mem { "/m" } else { "/r" });
        }
        if self.lock {
            s.push_str("/lock");
        }
        if self.daz_ftz {
            s.push_str("/daz-ftz");
        }
        match self.rep {
            Rep::None => {}
            Rep::Rep => s.push_str(if is_cmps_scas(self.code.mnemonic()) { "/repe" } else { "/rep" }),
            Rep::Repne => s.push_str("/repne"),
        }
        s
    }

    /// The x86 CPUID features this form needs that a translator advertises optionally, as
    /// translator [`Features`]; `None` if the form needs a feature the CPUID model cannot
    /// advertise at all.
    pub fn needs(&self) -> Option<Features> {
        let mut f = Features::BASELINE;
        for c in self.code.cpuid_features() {
            f = f.with(match c {
                CpuidFeature::SSE3 => Features::SSE3,
                CpuidFeature::SSSE3 => Features::SSSE3,
                CpuidFeature::SSE4_1 => Features::SSE41,
                CpuidFeature::SSE4_2 => Features::SSE42,
                CpuidFeature::POPCNT => Features::POPCNT,
                CpuidFeature::CMPXCHG16B => Features::CX16,
                CpuidFeature::LZCNT => Features::LZCNT,
                CpuidFeature::BMI1 => Features::BMI1,
                CpuidFeature::BMI2 => Features::BMI2,
                CpuidFeature::MOVBE => Features::MOVBE,
                CpuidFeature::INTEL8086
                | CpuidFeature::INTEL186
                | CpuidFeature::INTEL286
                | CpuidFeature::INTEL386
                | CpuidFeature::INTEL486
                | CpuidFeature::X64
                | CpuidFeature::CMOV
                | CpuidFeature::CX8
                | CpuidFeature::SSE
                | CpuidFeature::SSE2
                | CpuidFeature::FXSR
                | CpuidFeature::MULTIBYTENOP
                | CpuidFeature::PAUSE
                | CpuidFeature::CLFSH => Features::BASELINE,
                _ => return None,
            });
        }
        Some(f)
    }
}

fn is_cmps_scas(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmpsb | Mnemonic::Cmpsw | Mnemonic::Cmpsd | Mnemonic::Cmpsq | Mnemonic::Scasb | Mnemonic::Scasw | Mnemonic::Scasd | Mnemonic::Scasq
    )
}

fn supported_kind(k: K) -> bool {
    matches!(
        k,
        K::r8_or_mem
            | K::r16_or_mem
            | K::r32_or_mem
            | K::r64_or_mem
            | K::xmm_or_mem
            | K::mem
            | K::r8_reg
            | K::r8_opcode
            | K::r16_reg
            | K::r16_rm
            | K::r16_opcode
            | K::r32_reg
            | K::r32_rm
            | K::r32_opcode
            | K::r64_reg
            | K::r64_rm
            | K::r64_opcode
            | K::xmm_reg
            | K::xmm_rm
            | K::al
            | K::cl
            | K::ax
            | K::eax
            | K::rax
            | K::imm8
            | K::imm8_const_1
            | K::imm8sex16
            | K::imm8sex32
            | K::imm8sex64
            | K::imm16
            | K::imm32
            | K::imm32sex64
            | K::imm64
            | K::seg_rSI
            | K::es_rDI
            | K::seg_rDI
            | K::r32_vvvv
            | K::r64_vvvv
    )
}

fn is_rm(k: K) -> bool {
    matches!(k, K::r8_or_mem | K::r16_or_mem | K::r32_or_mem | K::r64_or_mem | K::xmm_or_mem)
}

fn is_string_kind(k: K) -> bool {
    matches!(k, K::seg_rSI | K::es_rDI)
}

/// Every form of every 64-bit-mode legacy-encoded code accepted by `keep`, skipping codes with
/// operand kinds the generator does not build (branches, MMX, segment, x87, ports).
pub fn forms(keep: impl Fn(Code) -> bool) -> Vec<Form> {
    let mut out = Vec::new();
    for code in Code::values() {
        let oc = code.op_code();
        // VEX only for the GPR instructions of BMI1/BMI2 (AVX is not in the CPUID model).
        let vex_gpr = code.encoding() == EncodingKind::VEX
            && code.cpuid_features().iter().all(|f| matches!(f, CpuidFeature::BMI1 | CpuidFeature::BMI2));
        if !oc.is_instruction() || !oc.mode64() || !(code.encoding() == EncodingKind::Legacy || vex_gpr) || oc.is_privileged() {
            continue;
        }
        if !keep(code) {
            continue;
        }
        let kinds = oc.op_kinds();
        if !kinds.iter().all(|k| supported_kind(*k)) {
            continue;
        }
        // BSWAP r16: "the result is undefined" (SDM vol. 2A, BSWAP).
        if code == Code::Bswap_r16 {
            continue;
        }
        let has_rm = kinds.iter().any(|k| is_rm(*k));
        let mem_only = kinds.contains(&K::mem);
        let string = kinds.iter().any(|k| is_string_kind(*k));
        let base = Form { code, mem: false, has_rm, lock: false, rep: Rep::None, daz_ftz: false };
        if string {
            out.push(base);
            if oc.can_use_rep_prefix() {
                out.push(Form { rep: Rep::Rep, ..base });
            }
            if oc.can_use_repne_prefix() {
                out.push(Form { rep: Rep::Repne, ..base });
            }
            continue;
        }
        if has_rm {
            out.push(base);
        }
        if has_rm || mem_only {
            let m = Form { mem: true, ..base };
            out.push(m);
            if oc.can_use_lock_prefix() {
                out.push(Form { lock: true, ..m });
            }
        } else {
            out.push(base);
        }
    }
    out
}

/// Forms of the listed mnemonics.
pub fn forms_of(mnemonics: &[Mnemonic]) -> Vec<Form> {
    forms(|c| mnemonics.contains(&c.mnemonic()))
}

/// Width in bits of a GPR operand kind.
fn gpr_width(k: K) -> Option<u32> {
    Some(match k {
        K::r8_or_mem | K::r8_reg | K::r8_opcode | K::al | K::cl => 8,
        K::r16_or_mem | K::r16_reg | K::r16_rm | K::r16_opcode | K::ax => 16,
        K::r32_or_mem | K::r32_reg | K::r32_rm | K::r32_opcode | K::r32_vvvv | K::eax => 32,
        K::r64_or_mem | K::r64_reg | K::r64_rm | K::r64_opcode | K::r64_vvvv | K::rax => 64,
        _ => return None,
    })
}

/// The operand width of a form in bits: the first GPR operand's width, or the memory size.
pub fn width_of(code: Code) -> u32 {
    for k in code.op_code().op_kinds() {
        if let Some(w) = gpr_width(*k) {
            return w;
        }
    }
    (code.op_code().memory_size().size() as u32 * 8).clamp(8, 64)
}

const GPR8: [Register; 20] = [
    Register::AL,
    Register::CL,
    Register::DL,
    Register::BL,
    Register::AH,
    Register::CH,
    Register::DH,
    Register::BH,
    Register::SPL,
    Register::BPL,
    Register::SIL,
    Register::DIL,
    Register::R8L,
    Register::R9L,
    Register::R10L,
    Register::R11L,
    Register::R12L,
    Register::R13L,
    Register::R14L,
    Register::R15L,
];

/// The register of width `w` with encoding index `i` (0..16).
fn gpr_of(w: u32, i: usize) -> Register {
    let base = match w {
        16 => Register::AX,
        32 => Register::EAX,
        _ => Register::RAX,
    };
    // Register numbering in iced is contiguous per width in encoding order.
    Register::values().nth(base as usize + i).unwrap_or(base)
}

/// Index 0..16 of a 64-bit register's encoding, from any of its views (AH..BH map to 0..3).
pub fn gpr_index(r: Register) -> Option<usize> {
    let f = r.full_register();
    if !f.is_gpr64() {
        return None;
    }
    Some(f as usize - Register::RAX as usize)
}

/// (register index, bit shift, width) of a GPR view.
fn view(r: Register) -> Option<(usize, u32, u32)> {
    let i = gpr_index(r)?;
    let hi8 = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    Some((i, if hi8 { 8 } else { 0 }, r.size() as u32 * 8))
}

fn mask(w: u32) -> u64 {
    if w >= 64 {
        u64::MAX
    } else {
        (1u64 << w) - 1
    }
}

/// Read a GPR view.
pub fn get_reg(regs: &Regs, r: Register) -> u64 {
    match view(r) {
        Some((i, sh, w)) => (regs.gpr[i] >> sh) & mask(w),
        None => 0,
    }
}

/// Write a GPR view the way a MOV to it would, except that 32-bit views keep the upper half too
/// (this sets inputs, it is not an instruction).
pub fn set_reg(regs: &mut Regs, r: Register, v: u64) {
    if let Some((i, sh, w)) = view(r) {
        let m = mask(w) << sh;
        regs.gpr[i] = (regs.gpr[i] & !m) | ((v << sh) & m);
    }
}

/// Edge values of width `w`.
fn edges(w: u32) -> [u64; 12] {
    let m = mask(w);
    let sign = 1u64 << (w - 1);
    [0, 1, 2, sign - 1, sign, sign + 1, m, m - 1, 0x5555_5555_5555_5555 & m, 0xaaaa_aaaa_aaaa_aaaa & m, 0x80 & m, 0x7f]
}

/// An edge-biased value of width `w` (the bits above `w` are random half of the time).
pub fn value(rng: &mut Rng, w: u32) -> u64 {
    let v = match rng.below(6) {
        0 | 1 => rng.pick(&edges(w)),
        2 => rng.below(17),
        3 => rng.below(17).wrapping_neg(),
        _ => rng.next_u64(),
    };
    let high = if rng.one_in(2) { rng.next_u64() & !mask(w) } else { 0 };
    (v & mask(w)) | high
}

/// A full 64-bit register value, edge-biased at a random width.
pub fn gpr_value(rng: &mut Rng) -> u64 {
    let w = rng.pick(&[8, 16, 32, 64, 64]);
    value(rng, w)
}

const F32_EDGES: [u32; 24] = [
    0x0000_0000, 0x8000_0000, 0x3f80_0000, 0xbf80_0000, 0x3f00_0000, 0x3fc0_0000, 0x4020_0000, 0x7f80_0000,
    0xff80_0000, 0x7fc0_0000, 0xffc0_0000, 0x7fa0_0001, 0xffa0_0001, 0x0000_0001, 0x807f_ffff, 0x0080_0000,
    0x7f7f_ffff, 0x4f00_0000, 0xcf00_0000, 0x5f00_0000, 0xdf00_0000, 0x4f80_0000, 0x3eaa_aaab, 0xcf00_0001,
];

const F64_EDGES: [u64; 24] = [
    0, 0x8000_0000_0000_0000, 0x3ff0_0000_0000_0000, 0xbff0_0000_0000_0000, 0x3fe0_0000_0000_0000, 0x3ff8_0000_0000_0000,
    0x4004_0000_0000_0000, 0x7ff0_0000_0000_0000, 0xfff0_0000_0000_0000, 0x7ff8_0000_0000_0000, 0xfff8_0000_0000_0000,
    0x7ff4_0000_0000_0001, 0xfff4_0000_0000_0001, 1, 0x800f_ffff_ffff_ffff, 0x0010_0000_0000_0000, 0x7fef_ffff_ffff_ffff,
    0x41e0_0000_0000_0000, 0xc1e0_0000_0000_0000, 0x43e0_0000_0000_0000, 0xc3e0_0000_0000_0000, 0x41df_ffff_ffc0_0000,
    0x3fd5_5555_5555_5555, 0xc1e0_0000_0020_0000,
];

fn f32_value(rng: &mut Rng) -> u32 {
    match rng.below(4) {
        0 | 1 => rng.pick(&F32_EDGES),
        // A moderate normal number: exponent near 0, random mantissa and sign.
        2 => ((rng.below(2) as u32) << 31) | ((rng.below(60) as u32 + 97) << 23) | (rng.next_u64() as u32 & 0x7f_ffff),
        _ => rng.next_u64() as u32,
    }
}

fn f64_value(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 | 1 => rng.pick(&F64_EDGES),
        2 => (rng.below(2) << 63) | ((rng.below(140) + 960) << 52) | (rng.next_u64() & 0xf_ffff_ffff_ffff),
        _ => rng.next_u64(),
    }
}

/// One 64-bit half of an XMM register, with a bias suited to `elem` ("f32", "f64" or integer).
fn xmm_half(rng: &mut Rng, elem: Elem) -> u64 {
    let k = match elem {
        Elem::F32 => rng.pick(&[0, 0, 0, 1, 2, 3]),
        Elem::F64 => rng.pick(&[1, 1, 1, 0, 2, 3]),
        Elem::Int => rng.pick(&[2, 2, 3, 3, 0, 1]),
    };
    match k {
        0 => u64::from(f32_value(rng)) | (u64::from(f32_value(rng)) << 32),
        1 => f64_value(rng),
        2 => {
            // Bytes that matter to PCMPEQB/PMOVMSKB/PMINUB-style code: 0, 0xff, 0x80, 0x7f, random.
            let mut v = 0u64;
            for i in 0..8 {
                let r = rng.next_u64() & 0xff;
                let b = rng.pick(&[0u64, 0, 0xff, 0x80, 0x7f, 0x01, r]);
                v |= b << (8 * i);
            }
            v
        }
        _ => rng.next_u64(),
    }
}

/// Element class of an SSE form, from its mnemonic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// Single precision.
    F32,
    /// Double precision.
    F64,
    /// Integer (or mixed).
    Int,
}

fn elem_of(m: Mnemonic) -> Elem {
    let n = format!("{m:?}").to_ascii_lowercase();
    if n.starts_with('p') {
        Elem::Int
    } else if n.ends_with("ps") || n.ends_with("ss") {
        Elem::F32
    } else if n.ends_with("pd") || n.ends_with("sd") {
        Elem::F64
    } else {
        Elem::Int
    }
}

/// Random register state for a case of `form`.
fn random_regs(rng: &mut Rng, slot: u8, elem: Elem) -> Regs {
    let mut r = Regs::default();
    for g in &mut r.gpr {
        *g = gpr_value(rng);
    }
    r.gpr[4] = data_base(slot) + STACK_TOP;
    r.rflags = (rng.next_u64() & flags::STATUS) | flags::FIXED1 | flags::IF;
    for x in &mut r.xmm {
        *x = [xmm_half(rng, elem), xmm_half(rng, elem)];
    }
    // Linux's default MXCSR, with a random rounding mode a quarter of the time. Exceptions stay
    // masked: the native run must not trap.
    r.mxcsr = 0x1f80;
    if rng.one_in(4) {
        r.mxcsr |= (rng.below(4) as u32) << 13;
    }
    // Sticky status flags as a running program has them: PE (inexact) half the time — backends
    // take shortcuts when an operation cannot change MXCSR — and any mix of the six now and then.
    if rng.one_in(2) {
        r.mxcsr |= 0x20;
    }
    if rng.one_in(8) {
        r.mxcsr |= rng.below(64) as u32;
    }
    r
}

/// Everything [`make_case`] needs to know about the form's shape for fixups.
#[derive(Debug)]
struct Built {
    insn: Instruction,
    /// Effective address of the memory operand (if any).
    ea: Option<u64>,
    /// Index of the memory operand.
    mem_op: Option<u32>,
}

/// Registers used for addressing: never an implicit operand of any instruction tested (RAX, RCX,
/// RDX, RBX, RSI, RDI are), so fixups of implicit operands cannot move the address.
const ADDR_REGS: [Register; 9] = [
    Register::RBP,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

/// Pick a memory operand for an access of `size` bytes aligned to `align`; returns
/// (base, index, scale, displacement, displ_size, ea, register values to set).
#[allow(clippy::type_complexity, reason = "a private tuple consumed in one place")]
fn pick_mem(
    rng: &mut Rng,
    slot: u8,
    size: u64,
    align: u64,
    allow_rsp: bool,
) -> (Register, Register, u32, u64, u32, u64, Vec<(Register, u64)>) {
    let span = (MEM_HI - MEM_LO - size.max(1)) / align;
    let ea = data_base(slot) + MEM_LO + rng.below(span + 1) * align;
    let mut base = rng.pick(&ADDR_REGS);
    if allow_rsp && rng.one_in(8) {
        base = Register::RSP;
    }
    let mut index = rng.pick(&ADDR_REGS);
    while index == base {
        index = rng.pick(&ADDR_REGS);
    }
    let disp8 = (rng.below(256) as i64 - 128) as u64;
    let disp32 = (rng.below(0x2_0000) as i64 - 0x1_0000) as u64;
    let scale = rng.pick(&[1u32, 2, 4, 8]);
    let k = (rng.below(129) as i64 - 64) as u64;
    if base == Register::RSP {
        // RSP stays in the stack area (a translator may need stack below the red zone), and the
        // displacement reaches down to the operand.
        let rsp = data_base(slot) + STACK_TOP - 8 * rng.below(16);
        return if rng.one_in(2) {
            (base, Register::None, 1, ea.wrapping_sub(rsp), 4, ea, vec![(base, rsp)])
        } else {
            let d = ea.wrapping_sub(rsp).wrapping_sub(k.wrapping_mul(u64::from(scale)));
            (base, index, scale, d, 4, ea, vec![(base, rsp), (index, k)])
        };
    }
    match rng.below(7) {
        0 => (base, Register::None, 1, 0, 0, ea, vec![(base, ea)]),
        1 => (base, Register::None, 1, disp8, 1, ea, vec![(base, ea.wrapping_sub(disp8))]),
        2 => (base, Register::None, 1, disp32, 4, ea, vec![(base, ea.wrapping_sub(disp32))]),
        3 => {
            let b = ea.wrapping_sub(disp8).wrapping_sub(k.wrapping_mul(u64::from(scale)));
            (base, index, scale, disp8, 1, ea, vec![(base, b), (index, k)])
        }
        4 => {
            // [index*scale + disp32] with no base.
            let d = ea.wrapping_sub(k.wrapping_mul(u64::from(scale)));
            (Register::None, index, scale, d, 4, ea, vec![(index, k)])
        }
        5 => (Register::RIP, Register::None, 1, ea, 8, ea, Vec::new()),
        _ => (Register::None, Register::None, 1, ea, 4, ea, Vec::new()),
    }
}

fn needs_alignment(code: Code) -> bool {
    let size = code.op_code().memory_size().size();
    if code == Code::Cmpxchg16b_m128 {
        return true;
    }
    if size != 16 || code.encoding() != EncodingKind::Legacy {
        return false;
    }
    // Legacy-encoded SSE operations on 16-byte memory fault unless aligned, except these.
    !matches!(code.mnemonic(), Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu | Mnemonic::Lddqu)
}

/// Registers a form's implicit operands use, which explicit operands of fixed-up forms avoid.
fn reserved_for(m: Mnemonic) -> &'static [Register] {
    match m {
        // The divisor must not be part of the dividend.
        Mnemonic::Div | Mnemonic::Idiv => &[Register::RAX, Register::RDX],
        _ => &[],
    }
}

fn pick_gpr(rng: &mut Rng, w: u32, avoid: &[Register], allow_rsp: bool) -> Register {
    loop {
        let r = if w == 8 {
            rng.pick(&GPR8)
        } else {
            gpr_of(w, rng.below(16) as usize)
        };
        let full = r.full_register();
        if full == Register::RSP && !(allow_rsp && rsp_operands() && rng.one_in(4)) {
            continue;
        }
        if avoid.iter().any(|a| a.full_register() == full) {
            continue;
        }
        return r;
    }
}

/// Whether RSP may be an explicit operand with an arbitrary value (`DIFFTEST_RSP_OPERANDS=1`).
/// Off by default: a backend may legitimately need a valid guest stack at block exits (signal
/// frames), so a garbage RSP tests something no program does.
fn rsp_operands() -> bool {
    std::env::var_os("DIFFTEST_RSP_OPERANDS").is_some()
}

fn xmm(i: u64) -> Register {
    Register::values().nth(Register::XMM0 as usize + i as usize).unwrap_or(Register::XMM0)
}

fn shift_count(rng: &mut Rng) -> u64 {
    let r = rng.below(256);
    rng.pick(&[0, 1, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, r])
}

fn is_shift(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar | Mnemonic::Rol | Mnemonic::Ror | Mnemonic::Rcl | Mnemonic::Rcr | Mnemonic::Shld | Mnemonic::Shrd
    )
}

/// Build one concrete instruction of `form`.
fn build(form: &Form, rng: &mut Rng, regs: &mut Regs, slot: u8) -> Option<Built> {
    let code = form.code;
    let oc = code.op_code();
    let m = code.mnemonic();
    let mut insn = Instruction::default();
    insn.set_code(code);
    let mut used: Vec<Register> = reserved_for(m).to_vec();
    let mut ea = None;
    let mut mem_op = None;
    let mut addr_sets: Vec<(Register, u64)> = Vec::new();
    let allow_rsp = !matches!(m, Mnemonic::Push | Mnemonic::Pop | Mnemonic::Leave) && !is_string_mnemonic(m);
    // Memory operand first, so register picks avoid its address registers.
    for (i, k) in oc.op_kinds().iter().enumerate() {
        let i = i as u32;
        if *k == K::mem || (is_rm(*k) && form.mem) {
            let size = (oc.memory_size().size() as u64).max(1);
            let align = if needs_alignment(code) { 16 } else if rng.one_in(2) { size.min(8) } else { 1 };
            let (base, index, scale, disp, dsize, e, sets) =
                pick_mem(rng, slot, size, align, allow_rsp && m != Mnemonic::Lea);
            insn.set_op_kind(i, OpKind::Memory);
            insn.set_memory_base(base);
            insn.set_memory_index(index);
            insn.set_memory_index_scale(scale);
            insn.set_memory_displacement64(disp);
            insn.set_memory_displ_size(dsize);
            for r in [base, index] {
                if r != Register::None && r != Register::RIP {
                    used.push(r);
                }
            }
            ea = Some(e);
            mem_op = Some(i);
            addr_sets = sets;
        }
    }
    for (i, k) in oc.op_kinds().iter().enumerate() {
        let i = i as u32;
        if Some(i) == mem_op {
            continue;
        }
        match *k {
            K::al => insn.set_op_register(i, Register::AL),
            K::cl => insn.set_op_register(i, Register::CL),
            K::ax => insn.set_op_register(i, Register::AX),
            K::eax => insn.set_op_register(i, Register::EAX),
            K::rax => insn.set_op_register(i, Register::RAX),
            K::xmm_reg | K::xmm_rm | K::xmm_or_mem => insn.set_op_register(i, xmm(rng.below(16))),
            K::imm8 => {
                insn.set_op_kind(i, OpKind::Immediate8);
                let v = if is_shift(m) { shift_count(rng) } else { value(rng, 8) };
                insn.set_immediate8(v as u8);
            }
            K::imm8_const_1 => {
                insn.set_op_kind(i, OpKind::Immediate8);
                insn.set_immediate8(1);
            }
            K::imm8sex16 => {
                insn.set_op_kind(i, OpKind::Immediate8to16);
                insn.set_immediate8to16(i16::from(value(rng, 8) as u8 as i8));
            }
            K::imm8sex32 => {
                insn.set_op_kind(i, OpKind::Immediate8to32);
                insn.set_immediate8to32(i32::from(value(rng, 8) as u8 as i8));
            }
            K::imm8sex64 => {
                insn.set_op_kind(i, OpKind::Immediate8to64);
                insn.set_immediate8to64(i64::from(value(rng, 8) as u8 as i8));
            }
            K::imm16 => {
                insn.set_op_kind(i, OpKind::Immediate16);
                insn.set_immediate16(value(rng, 16) as u16);
            }
            K::imm32 => {
                insn.set_op_kind(i, OpKind::Immediate32);
                insn.set_immediate32(value(rng, 32) as u32);
            }
            K::imm32sex64 => {
                insn.set_op_kind(i, OpKind::Immediate32to64);
                insn.set_immediate32to64(i64::from(value(rng, 32) as u32 as i32));
            }
            K::imm64 => {
                insn.set_op_kind(i, OpKind::Immediate64);
                insn.set_immediate64(value(rng, 64));
            }
            K::seg_rSI => insn.set_op_kind(i, OpKind::MemorySegRSI),
            K::es_rDI => insn.set_op_kind(i, OpKind::MemoryESRDI),
            K::seg_rDI => insn.set_op_kind(i, OpKind::MemorySegRDI),
            other => {
                let w = gpr_width(other)?;
                let r = pick_gpr(rng, w, &used, allow_rsp && ea.is_none());
                // Usually distinct registers; sometimes the same one twice (`xor eax, eax`).
                if !rng.one_in(6) {
                    used.push(r);
                }
                insn.set_op_register(i, r);
            }
        }
    }
    if form.lock {
        insn.set_has_lock_prefix(true);
    }
    match form.rep {
        Rep::None => {}
        Rep::Rep if is_cmps_scas(m) => insn.set_has_repe_prefix(true),
        Rep::Rep => insn.set_has_rep_prefix(true),
        Rep::Repne => insn.set_has_repne_prefix(true),
    }
    for (r, v) in addr_sets {
        set_reg(regs, r, v);
    }
    Some(Built { insn, ea, mem_op })
}

fn is_string_mnemonic(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(m, Movsb | Movsw | Movsd | Movsq | Stosb | Stosw | Stosd | Stosq | Lodsb | Lodsw | Lodsd | Lodsq)
        || is_cmps_scas(m)
}

/// Where an operand's value lives.
#[derive(Clone, Copy, Debug)]
enum Loc {
    Reg(Register),
    Mem(u64),
}

fn loc(b: &Built, op: u32) -> Option<Loc> {
    match b.insn.op_kind(op) {
        OpKind::Register => Some(Loc::Reg(b.insn.op_register(op))),
        OpKind::Memory => b.ea.map(Loc::Mem),
        _ => None,
    }
}

/// Set an operand of `w` bits to `v` in the case's inputs.
fn set_loc(case: &mut Case, l: Loc, w: u32, v: u64) {
    match l {
        Loc::Reg(r) if r.is_xmm() => {
            let i = r as usize - Register::XMM0 as usize;
            case.regs.xmm[i][0] = v;
        }
        Loc::Reg(r) => set_reg(&mut case.regs, r, v),
        Loc::Mem(a) => {
            let off = (a - data_base(case.slot)) as u16;
            case.patches.push((off, v.to_le_bytes()[..(w / 8) as usize].to_vec()));
        }
    }
}

fn get_loc(case: &Case, l: Loc, w: u32) -> u64 {
    match l {
        Loc::Reg(r) => get_reg(&case.regs, r),
        Loc::Mem(a) => {
            let win = super::initial_window(case);
            let off = (a - data_base(case.slot)) as usize;
            let mut b = [0u8; 8];
            let n = (w / 8) as usize;
            b[..n].copy_from_slice(&win[off..off + n]);
            u64::from_le_bytes(b)
        }
    }
}

fn accumulator(w: u32) -> Register {
    match w {
        8 => Register::AL,
        16 => Register::AX,
        32 => Register::EAX,
        _ => Register::RAX,
    }
}

/// A valid (non-faulting) division of width `w`: (dividend high, dividend low, divisor).
fn division(rng: &mut Rng, w: u32, signed: bool) -> (u64, u64, u64) {
    let m = mask(w);
    for _ in 0..64 {
        let d = value(rng, w) & m;
        if d == 0 {
            continue;
        }
        let (dividend, ok) = if signed {
            let ds = sext(d, w) as i128;
            let lim = 1i128 << (w - 1);
            let q: i128 = match rng.below(4) {
                0 => lim - 1,
                1 => -lim,
                _ => sext(value(rng, w) & m, w) as i128,
            };
            let r_mag = (rng.next_u64() as i128).rem_euclid(ds.abs());
            let prod = q * ds;
            let sign = if prod < 0 || (prod == 0 && rng.one_in(2)) { -1 } else { 1 };
            let dv = prod + sign * r_mag;
            let fits = w == 64 || (dv >= -(1i128 << (2 * w - 1)) && dv < (1i128 << (2 * w - 1)));
            // Truncating division must give back q (a remainder of the other sign would change it).
            (dv, fits && ds != 0 && dv / ds == q && (dv % ds == 0 || (dv % ds < 0) == (dv < 0)))
        } else {
            let q = match rng.below(4) {
                0 => u128::from(m),
                1 => 0,
                _ => u128::from(value(rng, w) & m),
            };
            let r = u128::from(rng.next_u64()) % u128::from(d);
            (q.wrapping_mul(u128::from(d)).wrapping_add(r) as i128, true)
        };
        if !ok {
            continue;
        }
        let u = dividend as u128;
        return ((u >> w) as u64 & m, u as u64 & m, d);
    }
    (0, 1, 1)
}

fn sext(v: u64, w: u32) -> i64 {
    if w >= 64 {
        v as i64
    } else {
        ((v << (64 - w)) as i64) >> (64 - w)
    }
}

fn string_elem(m: Mnemonic) -> u64 {
    use Mnemonic::*;
    match m {
        Movsb | Stosb | Lodsb | Cmpsb | Scasb => 1,
        Movsw | Stosw | Lodsw | Cmpsw | Scasw => 2,
        Movsd | Stosd | Lodsd | Cmpsd | Scasd => 4,
        _ => 8,
    }
}

/// Fixups that keep a case meaningful and non-faulting.
fn fixup(form: &Form, b: &mut Built, case: &mut Case, rng: &mut Rng) {
    let m = form.code.mnemonic();
    let w = width_of(form.code);
    let slot = case.slot;
    // An edge value in the memory operand half of the time.
    if let Some(ea) = b.ea {
        let size = form.code.op_code().memory_size().size();
        if m != Mnemonic::Lea && rng.one_in(2) && size > 0 {
            let mut bytes = Vec::new();
            while bytes.len() < size {
                let v = if elem_of(m) == Elem::Int { value(rng, 64) } else { xmm_half(rng, elem_of(m)) };
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            bytes.truncate(size);
            case.patches.push(((ea - data_base(slot)) as u16, bytes));
        }
    }
    match m {
        Mnemonic::Div | Mnemonic::Idiv => {
            let (hi, lo, d) = division(rng, w, m == Mnemonic::Idiv);
            if let Some(l) = loc(b, 0) {
                set_loc(case, l, w, d);
            }
            if w == 8 {
                set_reg(&mut case.regs, Register::AX, (hi << 8) | lo);
            } else {
                set_reg(&mut case.regs, accumulator(w), lo);
                set_reg(&mut case.regs, gpr_of(w, 2), hi);
            }
        }
        _ if is_shift(m) => {
            let cl_form = form.code.op_code().op_kinds().contains(&K::cl);
            let mut c = if cl_form { shift_count(rng) } else { u64::from(b.insn.immediate8()) };
            // SHLD/SHRD r/m16 with a count above 16 leave the destination undefined (SDM vol. 2B):
            // keep counts where the result is defined.
            if matches!(m, Mnemonic::Shld | Mnemonic::Shrd) && w == 16 && (c & 31) > 16 {
                c &= 15;
            }
            if cl_form {
                set_reg(&mut case.regs, Register::CL, c);
            } else {
                b.insn.set_immediate8(c as u8);
            }
        }
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc if form.mem => {
            // A register bit offset addresses memory beyond the operand (SDM vol. 2A, BT): keep it
            // within ±MEM_LO bytes so it stays in the window.
            if let Some(Loc::Reg(r)) = loc(b, 1) {
                let off = (rng.below(2 * MEM_LO * 8) as i64 - (MEM_LO * 8) as i64) as u64;
                set_reg(&mut case.regs, r, off & mask(w));
            }
        }
        Mnemonic::Bsf | Mnemonic::Bsr | Mnemonic::Tzcnt | Mnemonic::Lzcnt | Mnemonic::Popcnt => {
            if let (true, Some(l)) = (rng.one_in(4), loc(b, 1)) {
                set_loc(case, l, w, 0);
            }
        }
        Mnemonic::Cmpxchg => {
            if let (true, Some(l)) = (rng.one_in(2), loc(b, 0)) {
                let v = get_loc(case, l, w);
                set_reg(&mut case.regs, accumulator(w), v);
            }
        }
        Mnemonic::Cmpxchg8b | Mnemonic::Cmpxchg16b => {
            if let (true, Some(ea)) = (rng.one_in(2), b.ea) {
                {
                    let (lo, hi, half) = if m == Mnemonic::Cmpxchg8b {
                        (get_reg(&case.regs, Register::EAX), get_reg(&case.regs, Register::EDX), 4)
                    } else {
                        (case.regs.gpr[0], case.regs.gpr[2], 8)
                    };
                    let mut bytes = lo.to_le_bytes()[..half].to_vec();
                    bytes.extend_from_slice(&hi.to_le_bytes()[..half]);
                    case.patches.push(((ea - data_base(slot)) as u16, bytes));
                }
            }
        }
        Mnemonic::Leave => {
            case.regs.gpr[5] = data_base(slot) + STACK_TOP + 8 * rng.below(16);
        }
        Mnemonic::Ldmxcsr => {
            if let Some(ea) = b.ea {
                let v: u32 = 0x1f80 | ((rng.below(4) as u32) << 13) | (rng.below(64) as u32);
                case.patches.push(((ea - data_base(slot)) as u16, v.to_le_bytes().to_vec()));
            }
        }
        Mnemonic::Maskmovdqu => {
            case.regs.gpr[7] = data_base(slot) + MEM_LO + rng.below(MEM_HI - MEM_LO - 16);
        }
        _ if is_string_mnemonic(m) => string_fixup(form, case, rng),
        _ => {}
    }
}

fn string_fixup(form: &Form, case: &mut Case, rng: &mut Rng) {
    let m = form.code.mnemonic();
    let e = string_elem(m);
    let slot = case.slot;
    let df = rng.one_in(2);
    if df {
        case.regs.rflags |= flags::DF;
    } else {
        case.regs.rflags &= !flags::DF;
    }
    let max = (STR_LEN - 16) / e;
    let count = if form.rep == Rep::None {
        case.regs.gpr[1]
    } else {
        let (a, b) = (rng.below(20), rng.below(max + 1));
        rng.pick(&[0, 1, 2, 3, a, b])
    };
    if form.rep != Rep::None {
        case.regs.gpr[1] = count;
    }
    let start = |buf: u64, rng: &mut Rng| {
        let slack = rng.below(8) * e;
        if df {
            data_base(slot) + buf + STR_LEN - e - slack
        } else {
            data_base(slot) + buf + slack
        }
    };
    case.regs.gpr[6] = start(STR_SRC, rng);
    case.regs.gpr[7] = start(STR_DST, rng);
    if matches!(m, Mnemonic::Movsb | Mnemonic::Movsw | Mnemonic::Movsd | Mnemonic::Movsq) && rng.one_in(4) {
        // Overlapping source and destination: REP MOVS copies element by element, so a
        // translation into a block copy must honour the overlap (up to 64 bytes either way stays
        // in the window).
        let delta = (rng.below(129) as i64 - 64) as u64;
        case.regs.gpr[7] = case.regs.gpr[6].wrapping_add(delta);
    }
    // Buffers that make REPE/REPNE run for a while: a copy with one difference, or a run of the
    // accumulator's value with one different element.
    let mut src = vec![0u8; STR_LEN as usize];
    for c in src.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    let mut dst = src.clone();
    let scas = matches!(m, Mnemonic::Scasb | Mnemonic::Scasw | Mnemonic::Scasd | Mnemonic::Scasq);
    if scas {
        let acc = case.regs.gpr[0].to_le_bytes();
        for c in dst.chunks_mut(e as usize) {
            if rng.one_in(if form.rep == Rep::Repne { 8 } else { 1 }) == (form.rep != Rep::Repne) {
                c.copy_from_slice(&acc[..c.len()]);
            }
        }
    }
    let p = rng.below(STR_LEN) as usize;
    if rng.one_in(4) {
        dst[p] ^= 1 << rng.below(8);
    } else {
        dst[p] = dst[p].wrapping_add(1 + rng.below(255) as u8);
    }
    case.patches.push((STR_SRC as u16, src));
    case.patches.push((STR_DST as u16, dst));
}

/// Flags and register bits the SDM leaves undefined for this exact instruction and input.
fn expectation(form: &Form, insn: &Instruction, case: &Case) -> Expect {
    let mut ex = Expect::default();
    let u = insn.rflags_undefined();
    let map = [
        (RflagsBits::OF, flags::OF),
        (RflagsBits::SF, flags::SF),
        (RflagsBits::ZF, flags::ZF),
        (RflagsBits::AF, flags::AF),
        (RflagsBits::CF, flags::CF),
        (RflagsBits::PF, flags::PF),
    ];
    for (ib, xb) in map {
        if u & ib != 0 {
            ex.flag_mask &= !xb;
        }
    }
    let m = form.code.mnemonic();
    let w = width_of(form.code);
    if is_shift(m) {
        let raw = if form.code.op_code().op_kinds().contains(&K::cl) {
            case.regs.gpr[1] & 0xff
        } else {
            u64::from(insn.immediate8())
        };
        let c = raw & if w == 64 { 63 } else { 31 };
        let all = flags::STATUS | flags::DF;
        ex.flag_mask = if c == 0 {
            // "If the count is 0, the flags are not affected" (SDM vol. 2B, SAL/SAR/SHL/SHR, ROL/ROR/
            // RCL/RCR, SHLD, SHRD).
            all
        } else {
            let mut mk = all;
            if c != 1 {
                // OF is defined only for 1-bit shifts and rotates.
                mk &= !flags::OF;
            }
            if !matches!(m, Mnemonic::Rol | Mnemonic::Ror | Mnemonic::Rcl | Mnemonic::Rcr) {
                // "For a non-zero count, the AF flag is undefined." Rotates leave AF alone.
                mk &= !flags::AF;
            }
            // SHL/SHR: CF "is undefined ... where the count is greater than or equal to the size
            // (in bits) of the destination operand".
            if matches!(m, Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr) && c >= u64::from(w) {
                mk &= !flags::CF;
            }
            mk
        };
    }
    if matches!(m, Mnemonic::Rcpps | Mnemonic::Rcpss | Mnemonic::Rsqrtps | Mnemonic::Rsqrtss) {
        // "The relative error for this approximation is |Relative Error| ≤ 1.5 ∗ 2^−12" (SDM vol.
        // 2B, RCPPS/RSQRTPS): the exact bits are the implementation's.
        let lanes = if matches!(m, Mnemonic::Rcpps | Mnemonic::Rsqrtps) { 4 } else { 1 };
        ex.approx_f32 = Some((insn.op_register(0) as usize - Register::XMM0 as usize, lanes));
    }
    if matches!(m, Mnemonic::Bsf | Mnemonic::Bsr) {
        // "If the content of the source operand is 0, the content of the destination operand is
        // undefined" (SDM vol. 2A, BSF/BSR).
        let src = match insn.op_kind(1) {
            OpKind::Register => get_reg(&case.regs, insn.op_register(1)),
            _ => mem_value(case, insn, &super::initial_window(case), w),
        };
        if src == 0 {
            if let Some(i) = gpr_index(insn.op_register(0)) {
                ex.gpr_mask[i] = if w == 16 { !0xffff } else { 0 };
            }
        }
    }
    ex
}

fn mem_value(case: &Case, insn: &Instruction, win: &[u8], w: u32) -> u64 {
    let a = insn.virtual_address(1, 0, |r, _, _| reg_for_address(case, r, insn));
    let Some(a) = a else { return 1 };
    let off = a.wrapping_sub(data_base(case.slot)) as usize;
    let n = (w / 8) as usize;
    let mut b = [0u8; 8];
    if let Some(s) = win.get(off..off + n) {
        b[..n].copy_from_slice(s);
        u64::from_le_bytes(b)
    } else {
        1
    }
}

fn reg_for_address(case: &Case, r: Register, insn: &Instruction) -> Option<u64> {
    if r == Register::RIP {
        return Some(insn.next_ip());
    }
    if r == Register::None || r.is_segment_register() {
        return Some(0);
    }
    Some(get_reg(&case.regs, r))
}

/// Why a case could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenError(pub String);

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Make case number `index` of `form` for `slot` from `seed`; also returns the instruction's text.
pub fn make_case(form: &Form, slot: u8, seed: u64) -> Result<(Case, Expect, String), GenError> {
    make_case_at(form, slot, seed, u64::MAX)
}

/// Cases `0..EDGE_CASES` of a form take their GPR and memory operand values from the edge list in
/// turn (both operands of a binary form from different positions), the rest are random.
pub const EDGE_CASES: u64 = 12;

/// Whether operand values of `m` are the generator's free choice (no fixup constrains them).
fn free_values(m: Mnemonic) -> bool {
    !matches!(
        m,
        Mnemonic::Div | Mnemonic::Idiv | Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc | Mnemonic::Cmpxchg
            | Mnemonic::Leave | Mnemonic::Ldmxcsr
    ) && !is_shift(m)
        && !is_string_mnemonic(m)
}

/// Put edge values number `index` into the explicit GPR operands and a GPR-sized memory operand.
fn edge_operands(form: &Form, b: &Built, case: &mut Case, index: u64) {
    let w = width_of(form.code);
    let e = edges(w);
    for op in 0..b.insn.op_count() {
        let v = e[((index + 5 * u64::from(op)) % e.len() as u64) as usize];
        match b.insn.op_kind(op) {
            OpKind::Register if gpr_index(b.insn.op_register(op)).is_some() => {
                let r = b.insn.op_register(op);
                if r.full_register() != Register::RSP {
                    set_reg(&mut case.regs, r, v);
                }
            }
            OpKind::Memory if form.code.op_code().memory_size().size() <= 8 && elem_of(form.code.mnemonic()) == Elem::Int => {
                if let Some(l) = loc(b, op) {
                    set_loc(case, l, (form.code.op_code().memory_size().size() as u32 * 8).max(8), v);
                }
            }
            _ => {}
        }
    }
}

/// As [`make_case`], for case number `index` of the form (the first [`EDGE_CASES`] use edge
/// values systematically).
pub fn make_case_at(form: &Form, slot: u8, seed: u64, index: u64) -> Result<(Case, Expect, String), GenError> {
    let mut rng = Rng::new(seed);
    let elem = elem_of(form.code.mnemonic());
    let mut last = String::new();
    for _ in 0..64 {
        let mut case = Case { slot, code: Vec::new(), regs: random_regs(&mut rng, slot, elem), mem_seed: rng.next_u64(), patches: Vec::new() };
        if form.daz_ftz {
            // DAZ (bit 6) and FTZ (bit 15).
            case.regs.mxcsr |= 0x8040;
        }
        let Some(mut b) = build(form, &mut rng, &mut case.regs, slot) else {
            return Err(GenError(format!("{}: operand kinds not supported", form.name())));
        };
        fixup(form, &mut b, &mut case, &mut rng);
        if index < EDGE_CASES && free_values(form.code.mnemonic()) {
            edge_operands(form, &b, &mut case, index);
        }
        let mut enc = Encoder::new(64);
        let ip = code_base(slot);
        match enc.encode(&b.insn, ip) {
            Ok(_) => {}
            Err(e) => {
                // E.g. AH together with a register that needs REX: pick again.
                last = e.to_string();
                continue;
            }
        }
        case.code = enc.take_buffer();
        // Check the encoding decodes back to the form and its memory operand lands in the window.
        let mut dec = Decoder::with_ip(64, &case.code, ip, DecoderOptions::NONE);
        let d = dec.decode();
        if d.code() != form.code {
            last = format!("re-decodes as {:?}", d.code());
            continue;
        }
        if let Some(op) = b.mem_op {
            let a = d.virtual_address(op, 0, |r, _, _| reg_for_address(&case, r, &d));
            let lo = data_base(slot) + MEM_LO;
            if a.is_none_or(|a| a < lo || a >= data_base(slot) + MEM_HI) {
                return Err(GenError(format!("{}: memory operand outside the window ({a:x?})", form.name())));
            }
        }
        let ex = expectation(form, &d, &case);
        return Ok((case, ex, super::harness::text(&d)));
    }
    Err(GenError(format!("{}: cannot encode ({last})", form.name())))
}

/// Assemble a straight-line snippet of several instructions at `slot`'s code base.
pub fn assemble(insns: &[Instruction], slot: u8) -> Result<Vec<u8>, GenError> {
    let mut enc = Encoder::new(64);
    let mut ip = code_base(slot);
    for i in insns {
        let n = enc.encode(i, ip).map_err(|e| GenError(format!("cannot encode `{i}`: {e}")))?;
        ip += n as u64;
    }
    Ok(enc.take_buffer())
}

fn iced_flags_to_x86(bits: u32) -> u64 {
    let map = [
        (RflagsBits::OF, flags::OF),
        (RflagsBits::SF, flags::SF),
        (RflagsBits::ZF, flags::ZF),
        (RflagsBits::AF, flags::AF),
        (RflagsBits::CF, flags::CF),
        (RflagsBits::PF, flags::PF),
        (RflagsBits::DF, flags::DF),
    ];
    map.iter().filter(|(i, _)| bits & i != 0).fold(0, |acc, (_, x)| acc | x)
}

/// What reads the flags at the end of a flag chain.
#[derive(Clone, Copy, Debug)]
pub enum Consumer {
    /// A register-only form (SETcc, CMOVcc, ADC, RCL…, LAHF, PUSHFQ).
    Form(Form),
    /// `jcc` over a flag-neutral `not r15`, with this rel8 opcode.
    Jcc(Code),
}

impl Consumer {
    /// Group name, e.g. `chain:Setb_rm8/r` or `chain:Jb_rel8_64`.
    pub fn name(&self) -> String {
        match self {
            Consumer::Form(f) => format!("chain:{}", f.name()),
            Consumer::Jcc(c) => format!("chain:{c:?}"),
        }
    }
}

/// A flag chain: a random flag-producing instruction from `producers` whose defined flags cover
/// what the consumer reads, then the consumer. This tests what a single instruction cannot: flags
/// that a translator computes lazily and materialises only for a later reader.
pub fn make_chain(
    consumer: &Consumer,
    producers: &[Form],
    slot: u8,
    seed: u64,
    features: Features,
) -> Result<(Case, Expect, String), GenError> {
    let mut rng = Rng::new(seed);
    let pool: Vec<&Form> = producers.iter().filter(|p| p.needs().is_some_and(|n| features.contains(n))).collect();
    if pool.is_empty() {
        return Err(GenError("no producer is advertised".into()));
    }
    let base = code_base(slot);
    let reads = match consumer {
        Consumer::Form(f) => {
            let mut i = Instruction::default();
            i.set_code(f.code);
            iced_flags_to_x86(i.rflags_read())
        }
        Consumer::Jcc(c) => {
            let mut i = Instruction::default();
            i.set_code(*c);
            iced_flags_to_x86(i.rflags_read())
        }
    };
    for _ in 0..64 {
        let p = rng.pick(&pool);
        let (mut case, pex, ptext) = make_case(p, slot, rng.next_u64())?;
        if pex.flag_mask & reads != reads || pex.gpr_mask != [u64::MAX; 16] {
            continue;
        }
        let (ctext, cmask, cmodified, ccode) = match consumer {
            Consumer::Form(f) => {
                let (cc, cex, ctext) = make_case(f, slot, rng.next_u64())?;
                let mut d = Decoder::with_ip(64, &cc.code, base, DecoderOptions::NONE);
                let di = d.decode();
                (ctext, cex.flag_mask, iced_flags_to_x86(di.rflags_modified()), cc.code)
            }
            Consumer::Jcc(c) => {
                let at = base + case.code.len() as u64;
                let mut not = Instruction::default();
                not.set_code(Code::Not_rm64);
                not.set_op_register(0, Register::R15);
                let mut probe = Encoder::new(64);
                let nlen = probe.encode(&not, 0).map_err(|e| GenError(e.to_string()))? as u64;
                let j = Instruction::with_branch(*c, at + 2 + nlen).map_err(|e| GenError(e.to_string()))?;
                let mut enc = Encoder::new(64);
                enc.encode(&j, at).map_err(|e| GenError(e.to_string()))?;
                enc.encode(&not, at + 2).map_err(|e| GenError(e.to_string()))?;
                let text = format!("{} ; not r15", super::harness::text(&j));
                (text, flags::STATUS | flags::DF, 0, enc.take_buffer())
            }
        };
        case.code.extend_from_slice(&ccode);
        let ex = Expect { flag_mask: (pex.flag_mask | cmodified) & cmask, ..Expect::default() };
        return Ok((case, ex, format!("{ptext} ; {ctext}")));
    }
    Err(GenError(format!("{}: no producer defines the flags it reads", consumer.name())))
}

/// A TZCNT case for a backend that does not advertise BMI1: compilers emit `rep bsf` (the TZCNT
/// encoding) for trailing-zero counts without BMI1, relying on the two agreeing for a non-zero
/// source, so only a non-zero source and the destination are checked; the flags differ between
/// BSF and TZCNT and are not compared.
pub fn make_rep_bsf_case(form: &Form, slot: u8, seed: u64) -> Result<(Case, Expect, String), GenError> {
    let mut rng = Rng::new(seed);
    for _ in 0..64 {
        let (case, mut ex, text) = make_case(form, slot, rng.next_u64())?;
        let d = Decoder::with_ip(64, &case.code, code_base(slot), DecoderOptions::NONE).decode();
        let w = width_of(form.code);
        let src = match d.op_kind(1) {
            OpKind::Register => get_reg(&case.regs, d.op_register(1)),
            _ => mem_value(&case, &d, &super::initial_window(&case), w),
        };
        if src == 0 {
            continue;
        }
        ex.flag_mask = 0;
        return Ok((case, ex, text));
    }
    Err(GenError(format!("{}: no non-zero source", form.name())))
}
