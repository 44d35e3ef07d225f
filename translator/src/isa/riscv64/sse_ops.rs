//! The SSE helper of the riscv64 backend (SSE helper's file): exact x86 semantics, written in
//! Rust, for the SSE instructions `sse.rs` does not expand inline — shuffles, packs, saturating
//! and multiplying integer lanes, and all floating point (arithmetic, compares, conversions).
//!
//! Generated code calls [`rv_sse_op`] with a descriptor naming the iced [`Code`], the destination
//! XMM register and the source (an XMM register, or the value it staged in `ctx.scratch`). The
//! helper reads and writes `ctx.cpu.xmm` and `ctx.cpu.mxcsr` directly; a general-register result
//! goes to `ctx.scratch[OUT]` and a flags result (COMISD…) to `ctx.cpu.rflags`.
//!
//! Floating point follows the SDM rather than the host: the first source's NaN (quietened) wins,
//! invalid operations give the negative "QNaN floating-point indefinite", out-of-range float to
//! integer conversions give the "integer indefinite", MXCSR's status bits accumulate (DE from the
//! operands, the rest from the host's IEEE flags, which RISC-V and x86 define alike — both detect
//! tininess after rounding), its rounding control is honoured, and DAZ/FTZ are applied. Only
//! addition, subtraction, multiplication, division, square root and double-to-single narrowing
//! need the host FPU (with `frm` set from MXCSR); everything else is exact integer arithmetic.

use iced_x86::{Code, Mnemonic as M};

use crate::cpu::flags as fl;
use crate::ctx::ThreadCtx;

/// `ctx.scratch` word where generated code stages a memory or general-register source (two words).
pub const STAGE: usize = 24;
/// `ctx.scratch` word receiving a general-register result.
pub const OUT: usize = 26;
/// Source index meaning "the staged value" in a descriptor.
pub const SRC_STAGED: u64 = 16;

/// MXCSR bits (SDM vol. 1, 10.2.3).
pub mod mx {
    /// Invalid operation.
    pub const IE: u32 = 1 << 0;
    /// Denormal operand.
    pub const DE: u32 = 1 << 1;
    /// Divide by zero.
    pub const ZE: u32 = 1 << 2;
    /// Overflow.
    pub const OE: u32 = 1 << 3;
    /// Underflow.
    pub const UE: u32 = 1 << 4;
    /// Precision (inexact).
    pub const PE: u32 = 1 << 5;
    /// Denormals are zeros.
    pub const DAZ: u32 = 1 << 6;
    /// Flush to zero.
    pub const FTZ: u32 = 1 << 15;
}

/// Descriptor for [`rv_sse_op`]: `code | dst << 16 | src << 21 | imm8 << 26`.
pub fn desc(code: Code, dst: u32, src: u64, imm: u8) -> u64 {
    code as u64 | u64::from(dst & 15) << 16 | (src & 31) << 21 | u64::from(imm) << 26
}

/// Whether [`apply`] implements `code`.
pub fn supports(code: Code) -> bool {
    let mut st = State::new(0, 0, 0, 0x1f80);
    apply(code, &mut st).is_some()
}

/// Inputs and outputs of one helper-implemented instruction.
#[derive(Debug)]
pub struct State {
    /// Destination register (first source).
    pub a: u128,
    /// Second source.
    pub b: u128,
    /// XMM0 (the implicit mask of the BLENDV instructions).
    pub x0: u128,
    /// Whether the second source came from memory or a general register (INSERTPS ignores its
    /// source lane selector then).
    pub staged: bool,
    /// Immediate operand.
    pub imm: u8,
    /// MXCSR in and out.
    pub mxcsr: u32,
    /// RFLAGS in and out (COMISD/UCOMISD/PTEST).
    pub rflags: u64,
    /// General-register result.
    pub out: Option<u64>,
    /// XMM result (written to the destination).
    pub res: Option<u128>,
    /// RAX and RDX (the explicit lengths of PCMPESTR*).
    pub rax: u64,
    /// See `rax`.
    pub rdx: u64,
    /// New RCX (PCMP*STRI's index).
    pub rcx: Option<u64>,
    /// New XMM0 (PCMP*STRM's mask).
    pub xmm0: Option<u128>,
}

impl State {
    /// Inputs `a` (destination), `b` (source), `imm`, `mxcsr`; everything else clear.
    pub fn new(a: u128, b: u128, imm: u8, mxcsr: u32) -> State {
        State {
            a,
            b,
            x0: 0,
            staged: false,
            imm,
            mxcsr,
            rflags: fl::FIXED1,
            out: None,
            res: None,
            rax: 0,
            rdx: 0,
            rcx: None,
            xmm0: None,
        }
    }
}

/// The SSE helper generated code calls.
///
/// # Safety
/// `ctx` must be the live context generated code runs on, used by no one else during the call.
pub unsafe extern "C" fn rv_sse_op(ctx: *mut ThreadCtx, d: u64) {
    // SAFETY: per the contract, the context is live and ours.
    let c = unsafe { &mut *ctx };
    let Ok(code) = Code::try_from((d & 0xffff) as usize) else { return };
    let dst = ((d >> 16) & 15) as usize;
    let src = ((d >> 21) & 31) as usize;
    let x = |v: [u64; 2]| u128::from(v[0]) | u128::from(v[1]) << 64;
    let b = if src < 16 { x(c.cpu.xmm[src]) } else { x([c.scratch[STAGE], c.scratch[STAGE + 1]]) };
    let mut st = State::new(x(c.cpu.xmm[dst]), b, (d >> 26) as u8, c.cpu.mxcsr);
    st.x0 = x(c.cpu.xmm[0]);
    st.staged = src >= 16;
    st.rflags = c.cpu.rflags;
    st.rax = c.cpu.gpr[crate::cpu::Gpr::Rax as usize];
    st.rdx = c.cpu.gpr[crate::cpu::Gpr::Rdx as usize];
    if apply(code, &mut st).is_none() {
        return;
    }
    c.cpu.mxcsr = st.mxcsr;
    c.cpu.rflags = st.rflags;
    if let Some(v) = st.res {
        c.cpu.xmm[dst] = [v as u64, (v >> 64) as u64];
    }
    if let Some(v) = st.out {
        c.scratch[OUT] = v;
    }
    // The caller reloads the caller-saved guests (RCX among them) from the context.
    if let Some(v) = st.rcx {
        c.cpu.gpr[crate::cpu::Gpr::Rcx as usize] = v;
    }
    if let Some(v) = st.xmm0 {
        c.cpu.xmm[0] = [v as u64, (v >> 64) as u64];
    }
}

// ---- lanes ----

fn mask(bits: u32) -> u128 {
    if bits == 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    }
}

fn lane(v: u128, bits: u32, n: u32) -> u64 {
    ((v >> (bits * n)) & mask(bits)) as u64
}

fn slane(v: u128, bits: u32, n: u32) -> i64 {
    let u = lane(v, bits, n);
    ((u << (64 - bits)) as i64) >> (64 - bits)
}

fn build(bits: u32, f: impl Fn(u32) -> u64) -> u128 {
    let mut r = 0u128;
    for n in 0..128 / bits {
        r |= (u128::from(f(n)) & mask(bits)) << (bits * n);
    }
    r
}

fn map2(a: u128, b: u128, bits: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    build(bits, |n| f(lane(a, bits, n), lane(b, bits, n)))
}

fn smap2(a: u128, b: u128, bits: u32, f: impl Fn(i64, i64) -> i64) -> u128 {
    build(bits, |n| f(slane(a, bits, n), slane(b, bits, n)) as u64)
}

fn sat_s(v: i64, bits: u32) -> i64 {
    let hi = (1i64 << (bits - 1)) - 1;
    v.clamp(-hi - 1, hi)
}

fn sat_u(v: i64, bits: u32) -> i64 {
    v.clamp(0, (1i64 << bits) - 1)
}

fn ones(c: bool) -> u64 {
    if c {
        u64::MAX
    } else {
        0
    }
}

/// Interleave the low (`high == false`) or high halves of `a` and `b` in `bits` lanes.
fn unpack(a: u128, b: u128, bits: u32, high: bool) -> u128 {
    let base = if high { 64 / bits } else { 0 };
    build(bits, |n| {
        let k = base + n / 2;
        if n % 2 == 0 {
            lane(a, bits, k)
        } else {
            lane(b, bits, k)
        }
    })
}

/// Shift count of a PSxx by register or memory: the whole low quadword.
fn count(b: u128) -> u64 {
    b as u64
}

// ---- IEEE formats ----

/// Binary32 or binary64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fmt {
    /// Width in bits.
    pub w: u32,
}

/// Binary32.
pub const F32: Fmt = Fmt { w: 32 };
/// Binary64.
pub const F64: Fmt = Fmt { w: 64 };

impl Fmt {
    fn sign(self) -> u64 {
        1 << (self.w - 1)
    }
    fn exp(self) -> u64 {
        if self.w == 64 {
            0x7ff0_0000_0000_0000
        } else {
            0x7f80_0000
        }
    }
    fn frac(self) -> u64 {
        if self.w == 64 {
            (1 << 52) - 1
        } else {
            (1 << 23) - 1
        }
    }
    fn quiet(self) -> u64 {
        if self.w == 64 {
            1 << 51
        } else {
            1 << 22
        }
    }
    /// Whether `x` is a NaN.
    pub fn nan(self, x: u64) -> bool {
        x & self.exp() == self.exp() && x & self.frac() != 0
    }
    /// Whether `x` is a signalling NaN.
    pub fn snan(self, x: u64) -> bool {
        self.nan(x) && x & self.quiet() == 0
    }
    /// Whether `x` is a denormal.
    pub fn denorm(self, x: u64) -> bool {
        x & self.exp() == 0 && x & self.frac() != 0
    }
    /// The "QNaN floating-point indefinite".
    pub fn indefinite(self) -> u64 {
        self.sign() | self.exp() | self.quiet()
    }
    /// The value, exactly, as an f64.
    pub fn val(self, x: u64) -> f64 {
        if self.w == 64 {
            f64::from_bits(x)
        } else {
            f64::from(f32::from_bits(x as u32))
        }
    }
    fn daz(self, x: u64, mxcsr: u32) -> u64 {
        if mxcsr & mx::DAZ != 0 && self.denorm(x) {
            x & self.sign()
        } else {
            x
        }
    }
}

/// x86 rounding control (MXCSR.RC): 0 nearest, 1 down, 2 up, 3 toward zero.
fn rc(mxcsr: u32) -> u32 {
    (mxcsr >> 13) & 3
}

/// Round an integral-valued-or-not f64 to an integer value in rounding mode `mode` (x86 RC).
fn round_int(x: f64, mode: u32) -> f64 {
    match mode {
        0 => x.round_ties_even(),
        1 => x.floor(),
        2 => x.ceil(),
        _ => x.trunc(),
    }
}

/// Float (`fmt` bits `x`) to a signed `bits`-wide integer in mode `mode`: value and MXCSR flags.
pub fn f2i(fmt: Fmt, x: u64, bits: u32, mode: u32, mxcsr: u32) -> (u64, u32) {
    let indefinite = 1u64 << (bits - 1);
    if fmt.nan(x) {
        return (indefinite, mx::IE);
    }
    // Conversions to integer report no denormal-operand exception; DAZ still reads them as 0.
    let mut f = 0;
    let x = fmt.daz(x, mxcsr);
    let v = fmt.val(x);
    let r = round_int(v, mode);
    let lim = (bits - 1) as i32;
    if r < -(2f64.powi(lim)) || r >= 2f64.powi(lim) {
        return (indefinite, mx::IE);
    }
    if r != v {
        f |= mx::PE;
    }
    let i = r as i64 as u64;
    (if bits == 32 { i & 0xffff_ffff } else { i }, f)
}

/// Signed integer `v` to `fmt` rounded per `mode`: bits and MXCSR flags (PE only).
pub fn i2f(fmt: Fmt, v: i64, mode: u32) -> (u64, u32) {
    if fmt.w == 64 {
        let r = v as f64;
        let e = i128::from(v);
        let back = r as i128;
        if back == e {
            return (r.to_bits(), 0);
        }
        let r = adjust64(r, back > e, mode, v < 0);
        (r.to_bits(), mx::PE)
    } else {
        let r = v as f32;
        let e = i128::from(v);
        let back = r as i128;
        if back == e {
            return (u64::from(r.to_bits()), 0);
        }
        let r = adjust32(r, back > e, mode, v < 0);
        (u64::from(r.to_bits()), mx::PE)
    }
}

/// A nearest-rounded inexact `r` moved to the neighbour `mode` asks for (`above` says whether `r`
/// exceeds the exact value; `neg` the exact value's sign).
fn adjust64(r: f64, above: bool, mode: u32, neg: bool) -> f64 {
    match (mode, above) {
        (1, true) => r.next_down(),
        (2, false) => r.next_up(),
        (3, true) if !neg => r.next_down(),
        (3, false) if neg => r.next_up(),
        _ => r,
    }
}

fn adjust32(r: f32, above: bool, mode: u32, neg: bool) -> f32 {
    match (mode, above) {
        (1, true) => r.next_down(),
        (2, false) => r.next_up(),
        (3, true) if !neg => r.next_down(),
        (3, false) if neg => r.next_up(),
        _ => r,
    }
}

/// Host FPU operations used for arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a * b
    Mul,
    /// a / b
    Div,
    /// sqrt(b)
    Sqrt,
}

/// IEEE flags of the host, in x86 MXCSR bit positions.
#[cfg(target_arch = "riscv64")]
fn rv_flags(f: u64) -> u32 {
    // RISC-V fflags: NX 0, UF 1, OF 2, DZ 3, NV 4.
    let b = |n: u32, m: u32| if f >> n & 1 != 0 { m } else { 0 };
    b(4, mx::IE) | b(3, mx::ZE) | b(2, mx::OE) | b(1, mx::UE) | b(0, mx::PE)
}

/// RISC-V `frm` for an x86 rounding control: RNE 0, RDN 2, RUP 3, RTZ 1.
pub fn rv_rm(rc: u32) -> u64 {
    [0u64, 2, 3, 1][(rc & 3) as usize]
}

/// `a op b` on the host FPU in x86 rounding mode `mode`: result bits and IEEE flags (MXCSR bits).
#[cfg(target_arch = "riscv64")]
fn hw(fmt: Fmt, op: FOp, a: u64, b: u64, mode: u32) -> (u64, u32) {
    use core::arch::asm;
    let rm = rv_rm(mode);
    let fl: u64;
    macro_rules! run {
        ($ins:literal, $t:ty, $a:expr, $b:expr) => {{
            let out: $t;
            // SAFETY: only frm and fflags change, and frm is restored; no memory is touched.
            unsafe {
                asm!(
                    "fsrm {old}, {rm}",
                    "fsflags zero",
                    $ins,
                    "frflags {fl}",
                    "fsrm {old}",
                    old = out(reg) _,
                    rm = in(reg) rm,
                    fl = out(reg) fl,
                    r = lateout(freg) out,
                    a = in(freg) $a,
                    b = in(freg) $b,
                    options(nomem, nostack)
                );
            }
            out
        }};
    }
    if fmt.w == 64 {
        let (x, y) = (f64::from_bits(a), f64::from_bits(b));
        let o: f64 = match op {
            FOp::Add => run!("fadd.d {r}, {a}, {b}, dyn", f64, x, y),
            FOp::Sub => run!("fsub.d {r}, {a}, {b}, dyn", f64, x, y),
            FOp::Mul => run!("fmul.d {r}, {a}, {b}, dyn", f64, x, y),
            FOp::Div => run!("fdiv.d {r}, {a}, {b}, dyn", f64, x, y),
            FOp::Sqrt => run!("fsqrt.d {r}, {b}, dyn # {a}", f64, x, y),
        };
        (o.to_bits(), rv_flags(fl))
    } else {
        let (x, y) = (f32::from_bits(a as u32), f32::from_bits(b as u32));
        let o: f32 = match op {
            FOp::Add => run!("fadd.s {r}, {a}, {b}, dyn", f32, x, y),
            FOp::Sub => run!("fsub.s {r}, {a}, {b}, dyn", f32, x, y),
            FOp::Mul => run!("fmul.s {r}, {a}, {b}, dyn", f32, x, y),
            FOp::Div => run!("fdiv.s {r}, {a}, {b}, dyn", f32, x, y),
            FOp::Sqrt => run!("fsqrt.s {r}, {b}, dyn # {a}", f32, x, y),
        };
        (u64::from(o.to_bits()), rv_flags(fl))
    }
}

/// Double to single on the host FPU in x86 rounding mode `mode`.
#[cfg(target_arch = "riscv64")]
fn hw_narrow(a: u64, mode: u32) -> (u64, u32) {
    use core::arch::asm;
    let rm = rv_rm(mode);
    let fl: u64;
    let out: f32;
    // SAFETY: only frm and fflags change, and frm is restored; no memory is touched.
    unsafe {
        asm!(
            "fsrm {old}, {rm}",
            "fsflags zero",
            "fcvt.s.d {r}, {a}, dyn",
            "frflags {fl}",
            "fsrm {old}",
            old = out(reg) _,
            rm = in(reg) rm,
            fl = out(reg) fl,
            r = lateout(freg) out,
            a = in(freg) f64::from_bits(a),
            options(nomem, nostack)
        );
    }
    (u64::from(out.to_bits()), rv_flags(fl))
}

// Elsewhere the helper only needs to compile (the riscv64 backend runs on riscv64 hosts); these
// round to nearest and report inexact results only approximately.
#[cfg(not(target_arch = "riscv64"))]
fn hw(fmt: Fmt, op: FOp, a: u64, b: u64, _mode: u32) -> (u64, u32) {
    if fmt.w == 64 {
        let (x, y) = (f64::from_bits(a), f64::from_bits(b));
        let r = match op {
            FOp::Add => x + y,
            FOp::Sub => x - y,
            FOp::Mul => x * y,
            FOp::Div => x / y,
            FOp::Sqrt => y.sqrt(),
        };
        (r.to_bits(), 0)
    } else {
        let (x, y) = (f32::from_bits(a as u32), f32::from_bits(b as u32));
        let r = match op {
            FOp::Add => x + y,
            FOp::Sub => x - y,
            FOp::Mul => x * y,
            FOp::Div => x / y,
            FOp::Sqrt => y.sqrt(),
        };
        (u64::from(r.to_bits()), 0)
    }
}

#[cfg(not(target_arch = "riscv64"))]
fn hw_narrow(a: u64, _mode: u32) -> (u64, u32) {
    (u64::from((f64::from_bits(a) as f32).to_bits()), 0)
}

/// Flush a tiny result to zero under FTZ.
fn ftz(fmt: Fmt, r: u64, f: u32, mxcsr: u32) -> (u64, u32) {
    if mxcsr & mx::FTZ != 0 && (fmt.denorm(r) || f & mx::UE != 0) {
        (r & fmt.sign(), f | mx::UE | mx::PE)
    } else {
        (r, f)
    }
}

/// One lane of ADD/SUB/MUL/DIV/SQRT: result bits and MXCSR flags.
pub fn arith(fmt: Fmt, op: FOp, a: u64, b: u64, mxcsr: u32) -> (u64, u32) {
    let (a, b) = (fmt.daz(a, mxcsr), fmt.daz(b, mxcsr));
    let unary = op == FOp::Sqrt;
    let nan_a = !unary && fmt.nan(a);
    if nan_a || fmt.nan(b) {
        // A NaN operand hides a denormal one: no DE.
        let snan = (!unary && fmt.snan(a)) || fmt.snan(b);
        let r = if nan_a { a } else { b } | fmt.quiet();
        return (r, if snan { mx::IE } else { 0 });
    }
    let mut f = 0;
    if (!unary && fmt.denorm(a)) || fmt.denorm(b) {
        f |= mx::DE;
    }
    let (mut r, hf) = hw(fmt, op, a, b, rc(mxcsr));
    // The SDM's exception priority (vol. 1, 4.9.2): an invalid operation (sqrt of a negative
    // denormal) or a division by zero outranks the denormal operand and reports alone.
    if hf & (mx::IE | mx::ZE) != 0 {
        f &= !mx::DE;
    }
    f |= hf;
    if fmt.nan(r) {
        r = fmt.indefinite();
    }
    ftz(fmt, r, f, mxcsr)
}

/// One lane of MIN (`max == false`) or MAX.
pub fn minmax(fmt: Fmt, max: bool, a: u64, b: u64, mxcsr: u32) -> (u64, u32) {
    let (a, b) = (fmt.daz(a, mxcsr), fmt.daz(b, mxcsr));
    if fmt.nan(a) || fmt.nan(b) {
        return (b, mx::IE);
    }
    let f = if fmt.denorm(a) || fmt.denorm(b) { mx::DE } else { 0 };
    let (x, y) = (fmt.val(a), fmt.val(b));
    let pick_a = if max { x > y } else { x < y };
    (if pick_a { a } else { b }, f)
}

/// One lane of CMPPS/CMPSD-style predicate `p` (0..7): all-ones or zero, and flags.
pub fn cmp(fmt: Fmt, p: u8, a: u64, b: u64, mxcsr: u32) -> (bool, u32) {
    let (a, b) = (fmt.daz(a, mxcsr), fmt.daz(b, mxcsr));
    let un = fmt.nan(a) || fmt.nan(b);
    let signals = matches!(p & 7, 1 | 2 | 5 | 6);
    let f = if fmt.snan(a) || fmt.snan(b) || (un && signals) {
        mx::IE
    } else if !un && (fmt.denorm(a) || fmt.denorm(b)) {
        mx::DE
    } else {
        0
    };
    let (x, y) = (fmt.val(a), fmt.val(b));
    let r = match p & 7 {
        0 => !un && x == y,
        1 => !un && x < y,
        2 => !un && x <= y,
        3 => un,
        4 => un || x != y,
        5 => un || x >= y,
        6 => un || x > y,
        _ => !un,
    };
    (r, f)
}

/// COMIS*/UCOMIS*: the new RFLAGS status bits and MXCSR flags.
pub fn comi(fmt: Fmt, signal_qnan: bool, a: u64, b: u64, mxcsr: u32) -> (u64, u32) {
    let (a, b) = (fmt.daz(a, mxcsr), fmt.daz(b, mxcsr));
    let un = fmt.nan(a) || fmt.nan(b);
    let f = if fmt.snan(a) || fmt.snan(b) || (un && signal_qnan) {
        mx::IE
    } else if !un && (fmt.denorm(a) || fmt.denorm(b)) {
        mx::DE
    } else {
        0
    };
    let (x, y) = (fmt.val(a), fmt.val(b));
    let flags = if un {
        fl::ZF | fl::PF | fl::CF
    } else if x < y {
        fl::CF
    } else if x == y {
        fl::ZF
    } else {
        0
    };
    (flags, f)
}

/// Single to double (exact; NaNs keep their payload and are quietened).
pub fn widen(a: u64, mxcsr: u32) -> (u64, u32) {
    let a = F32.daz(a, mxcsr);
    if F32.nan(a) {
        let s = (a >> 31) << 63;
        let r = s | F64.exp() | F64.quiet() | ((a & F32.frac()) << 29);
        return (r, if F32.snan(a) { mx::IE } else { 0 });
    }
    let f = if F32.denorm(a) { mx::DE } else { 0 };
    (f64::from(f32::from_bits(a as u32)).to_bits(), f)
}

/// Double to single in the MXCSR rounding mode.
pub fn narrow(a: u64, mxcsr: u32) -> (u64, u32) {
    let a = F64.daz(a, mxcsr);
    if F64.nan(a) {
        let s = (a >> 63) << 31;
        let r = s | F32.exp() | F32.quiet() | ((a & F64.frac()) >> 29);
        return (r, if F64.snan(a) { mx::IE } else { 0 });
    }
    let de = if F64.denorm(a) { mx::DE } else { 0 };
    let (r, f) = hw_narrow(a, rc(mxcsr));
    ftz(F32, r, f | de, mxcsr)
}

/// RCPSS/RSQRTSS of one lane: denormal inputs read as zero, tiny results flush to zero, NaNs
/// are quietened, no exceptions.
fn recip(x: u32, sqrt: bool) -> u32 {
    let neg = x >> 31 != 0;
    if F32.nan(u64::from(x)) {
        return x | 1 << 22;
    }
    let x = if F32.denorm(u64::from(x)) { x & 0x8000_0000 } else { x };
    let v = f64::from(f32::from_bits(x));
    if sqrt {
        if v == 0.0 {
            return if neg { 0xff80_0000 } else { 0x7f80_0000 };
        }
        if neg {
            return 0xffc0_0000;
        }
        let r = (1.0 / v.sqrt()) as f32;
        return r.to_bits();
    }
    let r = (1.0 / v) as f32;
    if F32.denorm(u64::from(r.to_bits())) {
        return r.to_bits() & 0x8000_0000;
    }
    r.to_bits()
}

/// PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM (SDM vol. 2, 4.1): the comparison matrix reduced per
/// the immediate's aggregation and polarity, then an index into RCX or a mask into XMM0, and
/// CF/ZF/SF/OF as the SDM defines them (AF and PF clear).
fn pcmpstr(st: &mut State, explicit: bool, index: bool, wide_len: bool) {
    let imm = u32::from(st.imm);
    let words = imm & 1 != 0;
    let signed = imm & 2 != 0;
    let (bits, n) = if words { (16, 8u32) } else { (8, 16u32) };
    let el = |v: u128, k: u32| if signed { slane(v, bits, k) } else { lane(v, bits, k) as i64 };
    let (a, b) = (st.a, st.b);
    let len = |r: u64, v: u128| -> u32 {
        if explicit {
            let x = if wide_len { r as i64 } else { i64::from(r as u32 as i32) };
            x.unsigned_abs().min(u64::from(n)) as u32
        } else {
            (0..n).find(|&k| lane(v, bits, k) == 0).unwrap_or(n)
        }
    };
    let (la, lb) = (len(st.rax, a), len(st.rdx, b));
    let mut r1 = 0u32;
    for i in 0..n {
        let hit = match (imm >> 2) & 3 {
            // Equal any.
            0 => i < lb && (0..la).any(|j| el(a, j) == el(b, i)),
            // Ranges: pairs (lo, hi) of the first source.
            1 => i < lb && (0..la / 2).any(|p| el(a, 2 * p) <= el(b, i) && el(b, i) <= el(a, 2 * p + 1)),
            // Equal each.
            2 => match (i < la, i < lb) {
                (true, true) => el(a, i) == el(b, i),
                (false, false) => true,
                _ => false,
            },
            // Equal ordered: the first source as a substring starting at i.
            _ => (0..n - i).all(|k| {
                if k >= la {
                    true
                } else if i + k >= lb {
                    false
                } else {
                    el(a, k) == el(b, i + k)
                }
            }),
        };
        if hit {
            r1 |= 1 << i;
        }
    }
    let all = (1u32 << n) - 1;
    let valid = (1u32 << lb) - 1;
    let r2 = match (imm >> 4) & 3 {
        1 => !r1 & all,
        3 => r1 ^ valid,
        _ => r1,
    };
    if index {
        let k = if r2 == 0 {
            n
        } else if imm & 0x40 != 0 {
            31 - r2.leading_zeros()
        } else {
            r2.trailing_zeros()
        };
        st.rcx = Some(u64::from(k));
    } else if imm & 0x40 != 0 {
        st.xmm0 = Some(build(bits, |k| if (r2 >> k) & 1 != 0 { u64::MAX } else { 0 }));
    } else {
        st.xmm0 = Some(u128::from(r2));
    }
    let mut f = st.rflags & !fl::STATUS;
    if r2 != 0 {
        f |= fl::CF;
    }
    if lb < n {
        f |= fl::ZF;
    }
    if la < n {
        f |= fl::SF;
    }
    if r2 & 1 != 0 {
        f |= fl::OF;
    }
    st.rflags = f;
}

/// CRC32 (the Castagnoli polynomial, bit-reflected) of the `bytes` low bytes of `data` onto `crc`.
pub fn crc32c(mut crc: u32, data: u64, bytes: u32) -> u32 {
    for k in 0..bytes {
        crc ^= u32::from((data >> (8 * k)) as u8);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82f6_3b78 } else { crc >> 1 };
        }
    }
    crc
}

// ---- the instruction table ----

/// Per-lane float operation over the lanes `lanes` (1 = scalar) of `fmt`; upper lanes of
/// scalar forms come from the destination.
fn fp_lanes(st: &mut State, fmt: Fmt, scalar: bool, f: impl Fn(u64, u64, u32) -> (u64, u32)) {
    let n = if scalar { 1 } else { 128 / fmt.w };
    let mut r = st.a;
    let mut flags = 0;
    for k in 0..n {
        let (v, fl) = f(lane(st.a, fmt.w, k), lane(st.b, fmt.w, k), st.mxcsr);
        flags |= fl;
        let m = mask(fmt.w) << (fmt.w * k);
        r = (r & !m) | ((u128::from(v) & mask(fmt.w)) << (fmt.w * k));
    }
    st.mxcsr |= flags;
    st.res = Some(r);
}

/// Format and scalar-ness of an FP mnemonic's `ps/pd/ss/sd` suffix, from the iced Code name.
fn fp_kind(code: Code) -> (Fmt, bool) {
    let name = format!("{code:?}");
    let m = name.split('_').next().unwrap_or("").to_ascii_lowercase();
    let fmt = if m.ends_with('d') { F64 } else { F32 };
    (fmt, m.ends_with("ss") || m.ends_with("sd"))
}

/// Run `code` on `st`; `None` when the helper does not implement it.
pub fn apply(code: Code, st: &mut State) -> Option<()> {
    let (a, b) = (st.a, st.b);
    let op = code.mnemonic();
    let r: u128 = match op {
        // ---- integer lanes ----
        M::Paddb => map2(a, b, 8, u64::wrapping_add),
        M::Paddw => map2(a, b, 16, u64::wrapping_add),
        M::Paddd => map2(a, b, 32, u64::wrapping_add),
        M::Paddq => map2(a, b, 64, u64::wrapping_add),
        M::Psubb => map2(a, b, 8, u64::wrapping_sub),
        M::Psubw => map2(a, b, 16, u64::wrapping_sub),
        M::Psubd => map2(a, b, 32, u64::wrapping_sub),
        M::Psubq => map2(a, b, 64, u64::wrapping_sub),
        M::Paddsb => smap2(a, b, 8, |x, y| sat_s(x + y, 8)),
        M::Paddsw => smap2(a, b, 16, |x, y| sat_s(x + y, 16)),
        M::Psubsb => smap2(a, b, 8, |x, y| sat_s(x - y, 8)),
        M::Psubsw => smap2(a, b, 16, |x, y| sat_s(x - y, 16)),
        M::Paddusb => map2(a, b, 8, |x, y| (x + y).min(0xff)),
        M::Paddusw => map2(a, b, 16, |x, y| (x + y).min(0xffff)),
        M::Psubusb | M::Psubusw => map2(a, b, if op == M::Psubusb { 8 } else { 16 }, u64::saturating_sub),
        M::Pminub => map2(a, b, 8, u64::min),
        M::Pmaxub => map2(a, b, 8, u64::max),
        M::Pminuw => map2(a, b, 16, u64::min),
        M::Pmaxuw => map2(a, b, 16, u64::max),
        M::Pminud => map2(a, b, 32, u64::min),
        M::Pmaxud => map2(a, b, 32, u64::max),
        M::Pminsb => smap2(a, b, 8, i64::min),
        M::Pmaxsb => smap2(a, b, 8, i64::max),
        M::Pminsw => smap2(a, b, 16, i64::min),
        M::Pmaxsw => smap2(a, b, 16, i64::max),
        M::Pminsd => smap2(a, b, 32, i64::min),
        M::Pmaxsd => smap2(a, b, 32, i64::max),
        M::Pavgb => map2(a, b, 8, |x, y| (x + y + 1) >> 1),
        M::Pavgw => map2(a, b, 16, |x, y| (x + y + 1) >> 1),
        M::Pcmpeqb => map2(a, b, 8, |x, y| ones(x == y)),
        M::Pcmpeqw => map2(a, b, 16, |x, y| ones(x == y)),
        M::Pcmpeqd => map2(a, b, 32, |x, y| ones(x == y)),
        M::Pcmpeqq => map2(a, b, 64, |x, y| ones(x == y)),
        M::Pcmpgtb => smap2(a, b, 8, |x, y| ones(x > y) as i64),
        M::Pcmpgtw => smap2(a, b, 16, |x, y| ones(x > y) as i64),
        M::Pcmpgtd => smap2(a, b, 32, |x, y| ones(x > y) as i64),
        M::Pcmpgtq => smap2(a, b, 64, |x, y| ones(x > y) as i64),
        M::Pmullw => map2(a, b, 16, u64::wrapping_mul),
        M::Pmulld => map2(a, b, 32, u64::wrapping_mul),
        M::Pmulhw => smap2(a, b, 16, |x, y| (x * y) >> 16),
        M::Pmulhuw => map2(a, b, 16, |x, y| (x * y) >> 16),
        M::Pmuludq => build(64, |n| lane(a, 64, n) as u32 as u64 * (lane(b, 64, n) as u32 as u64)),
        M::Pmuldq => build(64, |n| (slane(a, 32, 2 * n) * slane(b, 32, 2 * n)) as u64),
        M::Pmaddwd => build(32, |n| {
            let p = |k| slane(a, 16, k) * slane(b, 16, k);
            (p(2 * n) + p(2 * n + 1)) as u64
        }),
        M::Psadbw => build(64, |n| (0..8).map(|k| lane(a, 8, 8 * n + k).abs_diff(lane(b, 8, 8 * n + k))).sum()),
        M::Pand | M::Andps | M::Andpd => a & b,
        M::Pandn | M::Andnps | M::Andnpd => !a & b,
        M::Por | M::Orps | M::Orpd => a | b,
        M::Pxor | M::Xorps | M::Xorpd => a ^ b,
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad => {
            let bits = match op {
                M::Psllw | M::Psrlw | M::Psraw => 16,
                M::Pslld | M::Psrld | M::Psrad => 32,
                _ => 64,
            };
            let imm_form = format!("{code:?}").ends_with("imm8");
            let c = if imm_form { u64::from(st.imm) } else { count(b) };
            match op {
                M::Psllw | M::Pslld | M::Psllq => {
                    if c >= u64::from(bits) {
                        0
                    } else {
                        map2(a, 0, bits, |x, _| x << c)
                    }
                }
                M::Psrlw | M::Psrld | M::Psrlq => {
                    if c >= u64::from(bits) {
                        0
                    } else {
                        map2(a, 0, bits, |x, _| x >> c)
                    }
                }
                _ => smap2(a, 0, bits, |x, _| x >> c.min(u64::from(bits) - 1)),
            }
        }
        M::Pslldq => {
            let n = u32::from(st.imm);
            if n > 15 {
                0
            } else {
                a << (8 * n)
            }
        }
        M::Psrldq => {
            let n = u32::from(st.imm);
            if n > 15 {
                0
            } else {
                a >> (8 * n)
            }
        }
        M::Packsswb => build(8, |n| {
            let v = if n < 8 { slane(a, 16, n) } else { slane(b, 16, n - 8) };
            sat_s(v, 8) as u64
        }),
        M::Packssdw => build(16, |n| {
            let v = if n < 4 { slane(a, 32, n) } else { slane(b, 32, n - 4) };
            sat_s(v, 16) as u64
        }),
        M::Packuswb => build(8, |n| {
            let v = if n < 8 { slane(a, 16, n) } else { slane(b, 16, n - 8) };
            sat_u(v, 8) as u64
        }),
        M::Packusdw => build(16, |n| {
            let v = if n < 4 { slane(a, 32, n) } else { slane(b, 32, n - 4) };
            sat_u(v, 16) as u64
        }),
        M::Punpcklbw => unpack(a, b, 8, false),
        M::Punpcklwd => unpack(a, b, 16, false),
        M::Punpckldq | M::Unpcklps => unpack(a, b, 32, false),
        M::Punpcklqdq | M::Unpcklpd => unpack(a, b, 64, false),
        M::Punpckhbw => unpack(a, b, 8, true),
        M::Punpckhwd => unpack(a, b, 16, true),
        M::Punpckhdq | M::Unpckhps => unpack(a, b, 32, true),
        M::Punpckhqdq | M::Unpckhpd => unpack(a, b, 64, true),
        M::Pshufd => {
            let i = u32::from(st.imm);
            build(32, |n| lane(b, 32, (i >> (2 * n)) & 3))
        }
        M::Pshuflw => {
            let i = u32::from(st.imm);
            build(16, |n| if n < 4 { lane(b, 16, (i >> (2 * n)) & 3) } else { lane(b, 16, n) })
        }
        M::Pshufhw => {
            let i = u32::from(st.imm);
            build(16, |n| if n < 4 { lane(b, 16, n) } else { lane(b, 16, 4 + ((i >> (2 * (n - 4))) & 3)) })
        }
        M::Shufps => {
            let i = u32::from(st.imm);
            build(32, |n| {
                let sel = (i >> (2 * n)) & 3;
                if n < 2 {
                    lane(a, 32, sel)
                } else {
                    lane(b, 32, sel)
                }
            })
        }
        M::Shufpd => {
            let i = u32::from(st.imm);
            build(64, |n| if n == 0 { lane(a, 64, i & 1) } else { lane(b, 64, (i >> 1) & 1) })
        }
        M::Pshufb => build(8, |n| {
            let s = lane(b, 8, n);
            if s & 0x80 != 0 {
                0
            } else {
                lane(a, 8, (s & 15) as u32)
            }
        }),
        M::Palignr => {
            let n = u32::from(st.imm);
            // (a:b) >> 8n over 256 bits.
            let (lo, hi) = (b, a);
            if n >= 32 {
                0
            } else if n >= 16 {
                hi >> (8 * (n - 16))
            } else if n == 0 {
                lo
            } else {
                (lo >> (8 * n)) | (hi << (128 - 8 * n))
            }
        }
        M::Pabsb => build(8, |n| slane(b, 8, n).unsigned_abs()),
        M::Pabsw => build(16, |n| slane(b, 16, n).unsigned_abs()),
        M::Pabsd => build(32, |n| slane(b, 32, n).unsigned_abs()),
        M::Psignb | M::Psignw | M::Psignd => {
            let bits = match op {
                M::Psignb => 8,
                M::Psignw => 16,
                _ => 32,
            };
            smap2(a, b, bits, |x, y| match y.signum() {
                -1 => x.wrapping_neg(),
                0 => 0,
                _ => x,
            })
        }
        M::Pinsrw => {
            let n = u32::from(st.imm & 7);
            let m = 0xffffu128 << (16 * n);
            (a & !m) | ((b & 0xffff) << (16 * n))
        }
        M::Pextrw => {
            st.out = Some(lane(b, 16, u32::from(st.imm & 7)));
            return Some(());
        }
        M::Movmskps => {
            st.out = Some((0..4).map(|n| (lane(b, 32, n) >> 31) << n).sum());
            return Some(());
        }
        M::Movmskpd => {
            st.out = Some((0..2).map(|n| (lane(b, 64, n) >> 63) << n).sum());
            return Some(());
        }
        M::Pmovmskb => {
            st.out = Some((0..16).map(|n| (lane(b, 8, n) >> 7) << n).sum());
            return Some(());
        }
        M::Phaddw | M::Phaddd | M::Phaddsw | M::Phsubw | M::Phsubd | M::Phsubsw => {
            let bits = if matches!(op, M::Phaddd | M::Phsubd) { 32 } else { 16 };
            let half = 64 / bits;
            build(bits, |k| {
                let (src, j) = if k < half { (a, 2 * k) } else { (b, 2 * (k - half)) };
                let (x, y) = (slane(src, bits, j), slane(src, bits, j + 1));
                match op {
                    M::Phaddw | M::Phaddd => x.wrapping_add(y) as u64,
                    M::Phsubw | M::Phsubd => x.wrapping_sub(y) as u64,
                    M::Phaddsw => sat_s(x + y, 16) as u64,
                    _ => sat_s(x - y, 16) as u64,
                }
            })
        }
        M::Pmaddubsw => build(16, |n| {
            let p = |k| lane(a, 8, k) as i64 * slane(b, 8, k);
            sat_s(p(2 * n) + p(2 * n + 1), 16) as u64
        }),
        M::Pmulhrsw => smap2(a, b, 16, |x, y| (((x * y) >> 14) + 1) >> 1),
        M::Pblendvb | M::Blendvps | M::Blendvpd => {
            let bits = match op {
                M::Pblendvb => 8,
                M::Blendvps => 32,
                _ => 64,
            };
            let x0 = st.x0;
            build(bits, |n| if lane(x0, bits, n) >> (bits - 1) != 0 { lane(b, bits, n) } else { lane(a, bits, n) })
        }
        M::Blendps | M::Blendpd | M::Pblendw => {
            let bits = match op {
                M::Blendps => 32,
                M::Blendpd => 64,
                _ => 16,
            };
            let i = u32::from(st.imm);
            build(bits, |n| if (i >> n) & 1 != 0 { lane(b, bits, n) } else { lane(a, bits, n) })
        }
        M::Ptest => {
            let mut f = st.rflags & !fl::STATUS;
            if a & b == 0 {
                f |= fl::ZF;
            }
            if !a & b == 0 {
                f |= fl::CF;
            }
            st.rflags = f;
            return Some(());
        }
        M::Pmovsxbw | M::Pmovsxbd | M::Pmovsxbq | M::Pmovsxwd | M::Pmovsxwq | M::Pmovsxdq | M::Pmovzxbw
        | M::Pmovzxbd | M::Pmovzxbq | M::Pmovzxwd | M::Pmovzxwq | M::Pmovzxdq => {
            let name = format!("{op:?}");
            let w = |c: u8| match c {
                b'b' => 8,
                b'w' => 16,
                b'd' => 32,
                _ => 64,
            };
            let nb = name.as_bytes();
            let (from, to) = (w(nb[nb.len() - 2]), w(nb[nb.len() - 1]));
            let signed = name.starts_with("Pmovsx");
            build(to, |n| if signed { slane(b, from, n) as u64 } else { lane(b, from, n) })
        }
        M::Phminposuw => {
            let (mut m, mut at) = (lane(b, 16, 0), 0);
            for k in 1..8 {
                if lane(b, 16, k) < m {
                    m = lane(b, 16, k);
                    at = k;
                }
            }
            u128::from(m) | u128::from(at) << 16
        }
        M::Roundss | M::Roundsd | M::Roundps | M::Roundpd => {
            let (fmt, scalar) = fp_kind(code);
            let i = u32::from(st.imm);
            let mode = if i & 4 != 0 { rc(st.mxcsr) } else { i & 3 };
            let quiet_pe = i & 8 != 0;
            let mut flags = 0;
            let n = if scalar { 1 } else { 128 / fmt.w };
            let mut r = if scalar { a } else { b };
            for k in 0..n {
                let x = fmt.daz(lane(b, fmt.w, k), st.mxcsr);
                let v = if fmt.nan(x) {
                    if fmt.snan(x) {
                        flags |= mx::IE;
                    }
                    x | fmt.quiet()
                } else {
                    let f = fmt.val(x);
                    let y = round_int(f, mode);
                    if y != f && !quiet_pe {
                        flags |= mx::PE;
                    }
                    if fmt.w == 64 {
                        y.to_bits()
                    } else {
                        u64::from((y as f32).to_bits())
                    }
                };
                let m = mask(fmt.w) << (fmt.w * k);
                r = (r & !m) | (u128::from(v) << (fmt.w * k));
            }
            st.mxcsr |= flags;
            r
        }
        M::Pextrb | M::Pextrd | M::Pextrq | M::Extractps => {
            let bits = match op {
                M::Pextrb => 8,
                M::Pextrq => 64,
                _ => 32,
            };
            st.out = Some(lane(b, bits, u32::from(st.imm) & (128 / bits - 1)));
            return Some(());
        }
        M::Pinsrb | M::Pinsrd | M::Pinsrq => {
            let bits = match op {
                M::Pinsrb => 8,
                M::Pinsrq => 64,
                _ => 32,
            };
            let n = u32::from(st.imm) & (128 / bits - 1);
            let m = mask(bits) << (bits * n);
            (a & !m) | ((b & mask(bits)) << (bits * n))
        }
        M::Insertps => {
            let i = u32::from(st.imm);
            let v = if st.staged { lane(b, 32, 0) } else { lane(b, 32, (i >> 6) & 3) };
            let d = (i >> 4) & 3;
            build(32, |n| {
                if (i >> n) & 1 != 0 {
                    0
                } else if n == d {
                    v
                } else {
                    lane(a, 32, n)
                }
            })
        }
        M::Dpps | M::Dppd => {
            // The SDM's order: masked products, pairwise sums, broadcast under the low mask.
            let fmt = if op == M::Dppd { F64 } else { F32 };
            let n = 128 / fmt.w;
            let i = u32::from(st.imm);
            let mut f = 0;
            let mut step = |x: u64, y: u64, fop: FOp| {
                let (v, g) = arith(fmt, fop, x, y, st.mxcsr);
                f |= g;
                v
            };
            let t: Vec<u64> = (0..n)
                .map(|k| if (i >> (4 + k)) & 1 != 0 { step(lane(a, fmt.w, k), lane(b, fmt.w, k), FOp::Mul) } else { 0 })
                .collect();
            let sum = if n == 2 {
                step(t[0], t[1], FOp::Add)
            } else {
                let l = step(t[0], t[1], FOp::Add);
                let h = step(t[2], t[3], FOp::Add);
                step(l, h, FOp::Add)
            };
            st.mxcsr |= f;
            build(fmt.w, |k| if (i >> k) & 1 != 0 { sum } else { 0 })
        }
        M::Mpsadbw => {
            let i = u32::from(st.imm);
            let (oa, ob) = (4 * ((i >> 2) & 1), 4 * (i & 3));
            build(16, |k| (0..4).map(|j| lane(a, 8, oa + k + j).abs_diff(lane(b, 8, ob + j))).sum())
        }
        M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64 | M::Pcmpistri | M::Pcmpistrm => {
            let explicit = matches!(op, M::Pcmpestri | M::Pcmpestri64 | M::Pcmpestrm | M::Pcmpestrm64);
            let index = matches!(op, M::Pcmpestri | M::Pcmpestri64 | M::Pcmpistri);
            pcmpstr(st, explicit, index, matches!(op, M::Pcmpestri64 | M::Pcmpestrm64));
            return Some(());
        }
        M::Crc32 => {
            // Staged: the data in the low word, the running CRC in the high one.
            let bytes = match code {
                Code::Crc32_r32_rm8 | Code::Crc32_r64_rm8 => 1,
                Code::Crc32_r32_rm16 => 2,
                Code::Crc32_r32_rm32 => 4,
                _ => 8,
            };
            st.out = Some(u64::from(crc32c((b >> 64) as u32, b as u64, bytes)));
            return Some(());
        }
        M::Movhlps => (a & !mask(64)) | (b >> 64),
        M::Movlhps => (a & mask(64)) | (b << 64),
        M::Movddup => (b & mask(64)) | (b << 64),
        M::Movshdup => build(32, |n| lane(b, 32, n | 1)),
        M::Movsldup => build(32, |n| lane(b, 32, n & !1)),

        // ---- floating point ----
        M::Addss | M::Addsd | M::Addps | M::Addpd | M::Subss | M::Subsd | M::Subps | M::Subpd
        | M::Mulss | M::Mulsd | M::Mulps | M::Mulpd | M::Divss | M::Divsd | M::Divps | M::Divpd
        | M::Sqrtss | M::Sqrtsd | M::Sqrtps | M::Sqrtpd => {
            let (fmt, scalar) = fp_kind(code);
            let fop = match op {
                M::Addss | M::Addsd | M::Addps | M::Addpd => FOp::Add,
                M::Subss | M::Subsd | M::Subps | M::Subpd => FOp::Sub,
                M::Mulss | M::Mulsd | M::Mulps | M::Mulpd => FOp::Mul,
                M::Divss | M::Divsd | M::Divps | M::Divpd => FOp::Div,
                _ => FOp::Sqrt,
            };
            fp_lanes(st, fmt, scalar, |x, y, m| arith(fmt, fop, x, y, m));
            return Some(());
        }
        M::Minss | M::Minsd | M::Minps | M::Minpd | M::Maxss | M::Maxsd | M::Maxps | M::Maxpd => {
            let (fmt, scalar) = fp_kind(code);
            let max = matches!(op, M::Maxss | M::Maxsd | M::Maxps | M::Maxpd);
            fp_lanes(st, fmt, scalar, |x, y, m| minmax(fmt, max, x, y, m));
            return Some(());
        }
        M::Cmpss | M::Cmpsd | M::Cmpps | M::Cmppd => {
            let (fmt, scalar) = fp_kind(code);
            let p = st.imm;
            fp_lanes(st, fmt, scalar, |x, y, m| {
                let (c, f) = cmp(fmt, p, x, y, m);
                (ones(c), f)
            });
            return Some(());
        }
        M::Addsubps | M::Addsubpd | M::Haddps | M::Haddpd | M::Hsubps | M::Hsubpd => {
            let fmt = if matches!(op, M::Addsubpd | M::Haddpd | M::Hsubpd) { F64 } else { F32 };
            let n = 128 / fmt.w;
            let mut flags = 0;
            let mut out = 0u128;
            for k in 0..n {
                let (x, y, fop) = match op {
                    M::Addsubps | M::Addsubpd => {
                        (lane(a, fmt.w, k), lane(b, fmt.w, k), if k % 2 == 0 { FOp::Sub } else { FOp::Add })
                    }
                    _ => {
                        let src = if k < n / 2 { a } else { b };
                        let j = 2 * (k % (n / 2));
                        let f = if matches!(op, M::Haddps | M::Haddpd) { FOp::Add } else { FOp::Sub };
                        (lane(src, fmt.w, j), lane(src, fmt.w, j + 1), f)
                    }
                };
                let (v, f) = arith(fmt, fop, x, y, st.mxcsr);
                flags |= f;
                out |= u128::from(v) << (fmt.w * k);
            }
            st.mxcsr |= flags;
            out
        }
        M::Rcpss | M::Rcpps | M::Rsqrtss | M::Rsqrtps => {
            let scalar = matches!(op, M::Rcpss | M::Rsqrtss);
            let sqrt = matches!(op, M::Rsqrtss | M::Rsqrtps);
            // No MXCSR flags and no rounding control: the approximations are exact-then-rounded
            // here, well inside the SDM's 1.5 * 2^-12 relative error.
            fp_lanes(st, F32, scalar, |_, y, _| (recip(y as u32, sqrt).into(), 0));
            return Some(());
        }
        M::Comiss | M::Comisd | M::Ucomiss | M::Ucomisd => {
            let fmt = if matches!(op, M::Comisd | M::Ucomisd) { F64 } else { F32 };
            let (f, m) = comi(fmt, matches!(op, M::Comiss | M::Comisd), lane(a, fmt.w, 0), lane(b, fmt.w, 0), st.mxcsr);
            st.rflags = (st.rflags & !fl::STATUS) | f;
            st.mxcsr |= m;
            return Some(());
        }
        M::Cvtsi2sd | M::Cvtsi2ss => {
            let fmt = if op == M::Cvtsi2sd { F64 } else { F32 };
            let wide = matches!(code, Code::Cvtsi2sd_xmm_rm64 | Code::Cvtsi2ss_xmm_rm64);
            let v = if wide { b as u64 as i64 } else { i64::from(b as u32 as i32) };
            let (x, f) = i2f(fmt, v, rc(st.mxcsr));
            st.mxcsr |= f;
            (a & !mask(fmt.w)) | u128::from(x)
        }
        M::Cvttsd2si | M::Cvtsd2si | M::Cvttss2si | M::Cvtss2si => {
            let fmt = if matches!(op, M::Cvttsd2si | M::Cvtsd2si) { F64 } else { F32 };
            let bits = if format!("{code:?}").contains("_r64_") { 64 } else { 32 };
            let mode = if matches!(op, M::Cvttsd2si | M::Cvttss2si) { 3 } else { rc(st.mxcsr) };
            let (v, f) = f2i(fmt, lane(b, fmt.w, 0), bits, mode, st.mxcsr);
            st.mxcsr |= f;
            st.out = Some(v);
            return Some(());
        }
        M::Cvtsd2ss => {
            let (x, f) = narrow(lane(b, 64, 0), st.mxcsr);
            st.mxcsr |= f;
            (a & !mask(32)) | u128::from(x)
        }
        M::Cvtss2sd => {
            let (x, f) = widen(lane(b, 32, 0), st.mxcsr);
            st.mxcsr |= f;
            (a & !mask(64)) | u128::from(x)
        }
        M::Cvtpd2ps => {
            let (x, f1) = narrow(lane(b, 64, 0), st.mxcsr);
            let (y, f2) = narrow(lane(b, 64, 1), st.mxcsr);
            st.mxcsr |= f1 | f2;
            u128::from(x) | u128::from(y) << 32
        }
        M::Cvtps2pd => {
            let (x, f1) = widen(lane(b, 32, 0), st.mxcsr);
            let (y, f2) = widen(lane(b, 32, 1), st.mxcsr);
            st.mxcsr |= f1 | f2;
            u128::from(x) | u128::from(y) << 64
        }
        M::Cvtdq2pd => {
            let x = f64::from(lane(b, 32, 0) as u32 as i32).to_bits();
            let y = f64::from(lane(b, 32, 1) as u32 as i32).to_bits();
            u128::from(x) | u128::from(y) << 64
        }
        M::Cvtdq2ps => {
            let mut f = 0;
            let r = build(32, |n| i2f(F32, slane(b, 32, n), rc(st.mxcsr)).0);
            for n in 0..4 {
                f |= i2f(F32, slane(b, 32, n), rc(st.mxcsr)).1;
            }
            st.mxcsr |= f;
            r
        }
        M::Cvtpd2dq | M::Cvttpd2dq | M::Cvtps2dq | M::Cvttps2dq => {
            let fmt = if matches!(op, M::Cvtpd2dq | M::Cvttpd2dq) { F64 } else { F32 };
            let mode = if matches!(op, M::Cvttpd2dq | M::Cvttps2dq) { 3 } else { rc(st.mxcsr) };
            let n = 128 / fmt.w;
            let mut out = 0u128;
            let mut f = 0;
            for k in 0..n {
                let (v, g) = f2i(fmt, lane(b, fmt.w, k), 32, mode, st.mxcsr);
                f |= g;
                out |= u128::from(v) << (32 * k);
            }
            st.mxcsr |= f;
            out
        }
        _ => return None,
    };
    st.res = Some(r);
    Some(())
}
