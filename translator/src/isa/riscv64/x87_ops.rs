//! x87 semantics for the riscv64 backend — owned by the x87 helper. The helper generated code
//! calls for every x87 instruction ([`rv_x87_op`]) and the pure model behind it ([`exec`]), which
//! works on the architectural state in `CpuState` (`fpr` by physical register, `ftw` abridged,
//! `fcw`, `fsw` with TOP).
//!
//! Arithmetic is exact 80-bit arithmetic from `rustc_apfloat` (LLVM's APFloat port, the one rustc
//! and Miri use). Precision control below 64 bits is done by computing in IEEE quad (113-bit
//! significand, the x87's exponent range) and rounding once more to 53 or 24 bits with the x87's
//! exponent range: for + − × ÷ and √ a first rounding to at least 2p + 2 bits never changes the
//! final round-to-nearest result, and directed roundings compose. Square root is done here
//! digit by digit (APFloat has none). The x87's own rules are applied around APFloat: which NaN a
//! two-NaN operation returns, the "indefinite" QNaN for invalid operations, unsupported
//! encodings (unnormals, pseudo-NaNs) as invalid operands, stack overflow and underflow, C1 on
//! rounding up.
//!
//! Exceptions the control word masks get the masked response (result written, flag set); an
//! instruction raising an unmasked one is undone and reported UNSUPPORTED (no #MF/SIGFPE). The transcendental instructions (f2xm1,
//! fyl2x, fyl2xp1, fptan, fpatan, fsin, fcos, fsincos) are evaluated in quad precision
//! (`x87_trans.rs`) and rounded once: within an ulp, but not always the bit a given CPU returns;
//! everything else is bit-exact.

use core::cmp::Ordering;

use iced_x86::Code;
use rustc_apfloat::ieee::{Double, IeeeFloat, Quad, Semantics, Single, X87DoubleExtended as Ext};
use rustc_apfloat::{Float, FloatConvert, Round, Status, StatusAnd};

use super::x87_trans;
use crate::cpu::{flags as rf, CpuState};
use crate::ctx::ThreadCtx;

/// `ctx.scratch` words holding a memory source (two words for an m80) or the guest address of
/// an environment/save area.
pub const STAGE: usize = 24;
/// `ctx.scratch` words receiving a memory result (or the value for AX).
pub const OUT: usize = 26;

const IE: u16 = 1;
const DE: u16 = 2;
const ZE: u16 = 4;
const OE: u16 = 8;
const UE: u16 = 0x10;
const PE: u16 = 0x20;
const SF: u16 = 0x40;
const C0: u16 = 0x100;
const C1: u16 = 0x200;
const C2: u16 = 0x400;
const C3: u16 = 0x4000;

/// The "real indefinite" QNaN, as raw 80 bits.
const INDEF: u128 = 0xffff << 64 | 0xc000_0000_0000_0000;
const QUIET: u128 = 1 << 62;

/// 53-bit significand with the x87's exponent range (precision control "double").
struct P53S;
impl Semantics for P53S {
    const BITS: usize = 68;
    const EXP_BITS: usize = 15;
}
/// 24-bit significand with the x87's exponent range (precision control "single").
struct P24S;
impl Semantics for P24S {
    const BITS: usize = 39;
    const EXP_BITS: usize = 15;
}
/// 64/53/24-bit significands with a wider exponent range, for tininess after rounding.
struct P64U;
impl Semantics for P64U {
    const BITS: usize = 80;
    const EXP_BITS: usize = 16;
}
struct P53U;
impl Semantics for P53U {
    const BITS: usize = 69;
    const EXP_BITS: usize = 16;
}
struct P24U;
impl Semantics for P24U {
    const BITS: usize = 40;
    const EXP_BITS: usize = 16;
}

/// What generated code must do around the helper for one instruction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Bytes of memory source to stage in `scratch[STAGE..]` before the call.
    pub load: u8,
    /// Bytes of memory result to store from `scratch[OUT..]` after the call.
    pub store: u8,
    /// The helper reads or writes guest memory itself at the address staged in `scratch[STAGE]`.
    pub ptr: bool,
    /// The instruction reads RFLAGS (fcmovcc): make it exact first.
    pub flags_in: bool,
    /// The helper writes exact status flags (fcomi family).
    pub flags_out: bool,
    /// `scratch[OUT]` goes to AX.
    pub ax: bool,
}

/// How generated code handles `code`, or `None` when it is not translated.
pub fn plan(code: Code) -> Option<Plan> {
    use Code as C;
    let p = Plan::default();
    let ld = |n| Some(Plan { load: n, ..p });
    let st = |n| Some(Plan { store: n, ..p });
    match code {
        C::Fild_m16int | C::Fiadd_m16int | C::Fimul_m16int | C::Ficom_m16int | C::Ficomp_m16int
        | C::Fisub_m16int | C::Fisubr_m16int | C::Fidiv_m16int | C::Fidivr_m16int => ld(2),
        C::Fld_m32fp | C::Fadd_m32fp | C::Fmul_m32fp | C::Fcom_m32fp | C::Fcomp_m32fp | C::Fsub_m32fp
        | C::Fsubr_m32fp | C::Fdiv_m32fp | C::Fdivr_m32fp | C::Fild_m32int | C::Fiadd_m32int
        | C::Fimul_m32int | C::Ficom_m32int | C::Ficomp_m32int | C::Fisub_m32int | C::Fisubr_m32int
        | C::Fidiv_m32int | C::Fidivr_m32int => ld(4),
        C::Fld_m64fp | C::Fadd_m64fp | C::Fmul_m64fp | C::Fcom_m64fp | C::Fcomp_m64fp | C::Fsub_m64fp
        | C::Fsubr_m64fp | C::Fdiv_m64fp | C::Fdivr_m64fp | C::Fild_m64int => ld(8),
        C::Fld_m80fp | C::Fbld_m80bcd => ld(10),
        C::Fldcw_m2byte => ld(2),
        C::Fist_m16int | C::Fistp_m16int | C::Fisttp_m16int | C::Fstsw_m2byte | C::Fstcw_m2byte => st(2),
        C::Fst_m32fp | C::Fstp_m32fp | C::Fist_m32int | C::Fistp_m32int | C::Fisttp_m32int => st(4),
        C::Fst_m64fp | C::Fstp_m64fp | C::Fistp_m64int | C::Fisttp_m64int => st(8),
        C::Fstp_m80fp | C::Fbstp_m80bcd => st(10),
        C::Fstsw_AX => Some(Plan { ax: true, ..p }),
        C::Fnstenv_m28byte | C::Fstenv_m28byte | C::Fldenv_m28byte | C::Fnstenv_m14byte | C::Fstenv_m14byte
        | C::Fldenv_m14byte | C::Fnsave_m108byte | C::Fsave_m108byte | C::Frstor_m108byte
        | C::Fnsave_m94byte | C::Fsave_m94byte | C::Frstor_m94byte | C::Fxsave_m512byte
        | C::Fxsave64_m512byte | C::Fxrstor_m512byte | C::Fxrstor64_m512byte => Some(Plan { ptr: true, ..p }),
        C::Fcmovb_st0_sti | C::Fcmove_st0_sti | C::Fcmovbe_st0_sti | C::Fcmovu_st0_sti
        | C::Fcmovnb_st0_sti | C::Fcmovne_st0_sti | C::Fcmovnbe_st0_sti | C::Fcmovnu_st0_sti => {
            Some(Plan { flags_in: true, ..p })
        }
        C::Fcomi_st0_sti | C::Fcomip_st0_sti | C::Fucomi_st0_sti | C::Fucomip_st0_sti => {
            Some(Plan { flags_out: true, ..p })
        }
        C::Fadd_st0_sti | C::Fmul_st0_sti | C::Fcom_st0_sti | C::Fcomp_st0_sti | C::Fsub_st0_sti
        | C::Fsubr_st0_sti | C::Fdiv_st0_sti | C::Fdivr_st0_sti | C::Fadd_sti_st0 | C::Fmul_sti_st0
        | C::Fcom_st0_sti_DCD0 | C::Fcomp_st0_sti_DCD8 | C::Fsubr_sti_st0 | C::Fsub_sti_st0
        | C::Fdivr_sti_st0 | C::Fdiv_sti_st0 | C::Faddp_sti_st0 | C::Fmulp_sti_st0 | C::Fcomp_st0_sti_DED0
        | C::Fsubrp_sti_st0 | C::Fsubp_sti_st0 | C::Fdivrp_sti_st0 | C::Fdivp_sti_st0 | C::Fld_sti
        | C::Fxch_st0_sti | C::Fxch_st0_sti_DDC8 | C::Fxch_st0_sti_DFC8 | C::Fst_sti | C::Fstp_sti
        | C::Fstpnce_sti | C::Fstp_sti_DFD0 | C::Fstp_sti_DFD8 | C::Ffree_sti | C::Ffreep_sti
        | C::Fucom_st0_sti | C::Fucomp_st0_sti | C::Fucompp | C::Fcompp | C::Fchs | C::Fabs | C::Ftst
        | C::Fxam | C::Fld1 | C::Fldl2t | C::Fldl2e | C::Fldpi | C::Fldlg2 | C::Fldln2 | C::Fldz
        | C::F2xm1 | C::Fyl2x | C::Fptan | C::Fpatan | C::Fxtract | C::Fprem1 | C::Fdecstp
        | C::Fincstp | C::Fprem | C::Fyl2xp1 | C::Fsqrt | C::Fsincos | C::Frndint | C::Fscale
        | C::Fsin | C::Fcos | C::Fnclex | C::Fclex | C::Fninit | C::Finit | C::Fnop => Some(p),
        _ => None,
    }
}

/// The x87 helper generated code calls: `d` is the iced `Code` in bits 0..16 and the ST(i)
/// operand's `i` in bits 16..19.
///
/// # Safety
/// `ctx` must be the live context generated code runs on, used by no one else during the call.
/// For the instructions whose [`Plan::ptr`] is set, `ctx.scratch[STAGE]` must be the guest
/// address of the memory operand, mapped and as large as the instruction accesses.
pub unsafe extern "C" fn rv_x87_op(ctx: *mut ThreadCtx, d: u64) {
    // SAFETY: per the contract, the context is live and ours.
    let c = unsafe { &mut *ctx };
    let Ok(code) = Code::try_from((d & 0xffff) as usize) else { return };
    let sti = ((d >> 16) & 7) as usize;
    let input = [c.scratch[STAGE], c.scratch[STAGE + 1]];
    let mut out = [0u64; 2];
    if plan(code).is_some_and(|p| p.ptr) {
        let p = c.scratch[STAGE] as *mut u8;
        let len = area_len(code);
        // SAFETY: the guest asked for this access at this address; its memory is mapped in our
        // address space like every other guest access generated code makes (per the contract).
        let area = unsafe { core::slice::from_raw_parts_mut(p, len) };
        area_op(&mut c.cpu, code, area);
        c.backend[STATUS_WORD] = 0;
        return;
    }
    let before = (c.cpu.fpr, c.cpu.ftw, c.cpu.fsw, c.cpu.rflags);
    exec(&mut c.cpu, code, sti, input, &mut out);
    // An exception the control word leaves unmasked would trap (#MF): not emulated. The state is
    // put back and generated code leaves with UNSUPPORTED at this instruction.
    let unmasked = c.cpu.fsw & !before.2 & !c.cpu.fcw & 0x3f;
    c.backend[STATUS_WORD] = u64::from(unmasked != 0);
    if unmasked != 0 {
        (c.cpu.fpr, c.cpu.ftw, c.cpu.fsw, c.cpu.rflags) = before;
        return;
    }
    c.scratch[OUT] = out[0];
    c.scratch[OUT + 1] = out[1];
}

/// The `ctx.backend` word in which [`rv_x87_op`] reports an unmasked exception (non-zero).
pub const STATUS_WORD: usize = (super::super::lower::OFF_STATUS as usize - crate::ctx::OFF_BACKEND) / 8;

/// Size of the memory area an environment/save instruction touches.
pub fn area_len(code: Code) -> usize {
    use Code as C;
    match code {
        C::Fnstenv_m14byte | C::Fstenv_m14byte | C::Fldenv_m14byte => 14,
        C::Fnstenv_m28byte | C::Fstenv_m28byte | C::Fldenv_m28byte => 28,
        C::Fnsave_m94byte | C::Fsave_m94byte | C::Frstor_m94byte => 94,
        C::Fnsave_m108byte | C::Fsave_m108byte | C::Frstor_m108byte => 108,
        // Only the architectural part: bytes 416..512 are left alone.
        _ => 416,
    }
}

// ---- values ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cls {
    Zero,
    Denormal,
    Normal,
    Inf,
    QNan,
    SNan,
    Unsupported,
}

fn exp_of(r: u128) -> u32 {
    ((r >> 64) & 0x7fff) as u32
}

fn sign_of(r: u128) -> bool {
    r >> 79 & 1 != 0
}

fn class(r: u128) -> Cls {
    let e = exp_of(r);
    let sig = r as u64;
    let int = sig >> 63 != 0;
    match e {
        0 if sig == 0 => Cls::Zero,
        0 => Cls::Denormal,
        0x7fff if !int => Cls::Unsupported,
        0x7fff if sig << 1 == 0 => Cls::Inf,
        0x7fff if sig & 1 << 62 != 0 => Cls::QNan,
        0x7fff => Cls::SNan,
        _ if !int => Cls::Unsupported,
        _ => Cls::Normal,
    }
}

fn is_nan(c: Cls) -> bool {
    matches!(c, Cls::QNan | Cls::SNan)
}

fn to_ext(r: u128) -> Ext {
    // A pseudo-denormal (exponent 0, integer bit set) has the value of exponent 1.
    let r = if exp_of(r) == 0 && (r as u64) >> 63 != 0 { r | 1 << 64 } else { r };
    Ext::from_bits(r & ((1 << 80) - 1))
}

fn from_ext(f: Ext) -> u128 {
    f.to_bits() & ((1 << 80) - 1)
}

fn to_quad(f: Ext) -> Quad {
    let mut l = false;
    f.convert(&mut l).value
}

/// `x op y` in quad, rounded to odd (toward zero, the last bit set when inexact): rounding that
/// once more to at most 111 bits gives the correctly rounded result in every mode.
/// An exact result is computed with `rc` itself (for the sign of a zero sum).
fn quad_odd(op: Bin, x: Ext, y: Ext, rc: Round) -> StatusAnd<Quad> {
    let r = apply(op, to_quad(x), to_quad(y), Round::TowardZero);
    if r.status.contains(Status::INEXACT) && r.value.is_finite() {
        r.status.and(Quad::from_bits(r.value.to_bits() | 1))
    } else {
        apply(op, to_quad(x), to_quad(y), rc)
    }
}

/// Round a quad result to precision `S` with the x87's exponent range, back in 80 bits.
fn narrow<S: Semantics>(q: StatusAnd<Quad>, rc: Round) -> StatusAnd<Ext>
where
    Quad: FloatConvert<IeeeFloat<S>>,
    IeeeFloat<S>: FloatConvert<Ext>,
{
    let mut l = false;
    let n: StatusAnd<IeeeFloat<S>> = q.value.convert_r(rc, &mut l);
    let back: StatusAnd<Ext> = n.value.convert(&mut l);
    // Invalid and divide-by-zero come from the operation; the rest from the final rounding.
    ((q.status & (Status::INVALID_OP | Status::DIV_BY_ZERO)) | n.status).and(back.value)
}

/// Whether `q` rounded to precision `S` with an unbounded exponent is below the smallest
/// normal (the x87 detects tininess after rounding).
fn tiny<S: Semantics>(q: Quad, rc: Round) -> bool
where
    Quad: FloatConvert<IeeeFloat<S>>,
{
    let mut l = false;
    let n: StatusAnd<IeeeFloat<S>> = q.convert_r(rc, &mut l);
    n.value.is_finite_non_zero() && n.value.ilogb() < -16382
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bin {
    Add,
    Sub,
    Mul,
    Div,
}

fn apply<F: Float>(op: Bin, a: F, b: F, rc: Round) -> StatusAnd<F> {
    match op {
        Bin::Add => a.add_r(b, rc),
        Bin::Sub => a.sub_r(b, rc),
        Bin::Mul => a.mul_r(b, rc),
        Bin::Div => a.div_r(b, rc),
    }
}

fn round_of(rc: u16) -> Round {
    match rc & 3 {
        0 => Round::NearestTiesToEven,
        1 => Round::TowardNegative,
        2 => Round::TowardPositive,
        _ => Round::TowardZero,
    }
}

/// A non-negative integer `x` (with its last bit a sticky bit when the caller needs one)
/// times 2^`e`, rounded to precision `pc` with `rc`.
fn round_int(x: u128, e: i32, pc: u32, rc: Round) -> StatusAnd<Ext> {
    let mut l = false;
    let r = match pc {
        24 => {
            let v: StatusAnd<IeeeFloat<P24S>> = IeeeFloat::<P24S>::from_u128_r(x, rc);
            v.status.and(v.value.convert(&mut l).value)
        }
        53 => {
            let v: StatusAnd<IeeeFloat<P53S>> = IeeeFloat::<P53S>::from_u128_r(x, rc);
            v.status.and(v.value.convert(&mut l).value)
        }
        _ => Ext::from_u128_r(x, rc),
    };
    r.status.and(r.value.scalbn_r(e, rc))
}

/// (significand with its top bit set, exponent) with value = sig * 2^exp, for a finite
/// non-zero value.
fn normalized(r: u128) -> (u64, i32) {
    let mut sig = r as u64;
    let e = exp_of(r).max(1) as i32 - 16383 - 63;
    let sh = sig.leading_zeros();
    sig <<= sh;
    (sig, e - sh as i32)
}

fn f32_to_raw(v: u32) -> (u128, Cls) {
    let sign = u128::from(v >> 31) << 79;
    let (e, frac) = ((v >> 23) & 0xff, v & 0x7f_ffff);
    if e == 0xff && frac != 0 {
        let c = if frac & 0x40_0000 != 0 { Cls::QNan } else { Cls::SNan };
        return (sign | 0x7fff << 64 | 1 << 63 | u128::from(frac) << 40, c);
    }
    let f = Single::from_bits(u128::from(v));
    let mut l = false;
    let x: Ext = f.convert(&mut l).value;
    let c = if e == 0 && frac != 0 { Cls::Denormal } else { Cls::Normal };
    (from_ext(x), c)
}

fn f64_to_raw(v: u64) -> (u128, Cls) {
    let sign = u128::from(v >> 63) << 79;
    let (e, frac) = ((v >> 52) & 0x7ff, v & ((1 << 52) - 1));
    if e == 0x7ff && frac != 0 {
        let c = if frac & 1 << 51 != 0 { Cls::QNan } else { Cls::SNan };
        return (sign | 0x7fff << 64 | 1 << 63 | u128::from(frac) << 11, c);
    }
    let f = Double::from_bits(u128::from(v));
    let mut l = false;
    let x: Ext = f.convert(&mut l).value;
    let c = if e == 0 && frac != 0 { Cls::Denormal } else { Cls::Normal };
    (from_ext(x), c)
}

/// The 66-bit-and-more constants of FLDPI etc.: significand bits (top bit = 2^exp).
const CONSTS: [(u128, i32); 5] = [
    (0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1, 1),  // pi
    (0xd49a_784b_cd1b_8afe_492b_f6ff_4afd_b0a2, 1),  // log2(10)
    (0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e89, 0),  // log2(e)
    (0x9a20_9a84_fbcf_f798_8f89_59ac_0b7c_9178, -2), // log10(2)
    (0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af, -1), // ln(2)
];

// ---- the machine ----

struct Fpu<'a> {
    c: &'a mut CpuState,
    /// Exception flags raised by the current instruction (DE is only reported without IE/ZE).
    raised: u16,
}

impl Fpu<'_> {
    fn top(&self) -> usize {
        usize::from(self.c.fsw >> 11 & 7)
    }

    fn set_top(&mut self, t: usize) {
        self.c.fsw = (self.c.fsw & !0x3800) | ((t as u16 & 7) << 11);
    }

    fn phys(&self, i: usize) -> usize {
        (self.top() + i) & 7
    }

    fn empty(&self, i: usize) -> bool {
        self.c.ftw >> self.phys(i) & 1 == 0
    }

    fn raw(&self, i: usize) -> u128 {
        let p = self.c.fpr[self.phys(i)];
        u128::from(p[1] & 0xffff) << 64 | u128::from(p[0])
    }

    fn set(&mut self, i: usize, v: u128) {
        let p = self.phys(i);
        self.c.fpr[p] = [v as u64, (v >> 64) as u64 & 0xffff];
        self.c.ftw |= 1 << p;
    }

    fn flag(&mut self, f: u16) {
        self.c.fsw |= f;
        self.raised |= f;
    }

    /// A denormal operand: DE unless the instruction raised a higher-priority exception.
    fn denormal(&mut self, den: bool) {
        if den && self.raised & (IE | ZE) == 0 {
            self.flag(DE);
        }
    }

    fn cc(&mut self, bits: u16) {
        self.c.fsw = (self.c.fsw & !(C0 | C1 | C2 | C3)) | bits;
    }

    fn c1(&mut self, on: bool) {
        self.c.fsw = (self.c.fsw & !C1) | if on { C1 } else { 0 };
    }

    fn rc(&self) -> Round {
        round_of(self.c.fcw >> 10)
    }

    fn pc(&self) -> u32 {
        match self.c.fcw >> 8 & 3 {
            0 => 24,
            2 => 53,
            _ => 64,
        }
    }

    /// ST(i), or `None` after signalling stack underflow.
    fn get(&mut self, i: usize) -> Option<u128> {
        if self.empty(i) {
            self.flag(IE | SF);
            self.c1(false);
            None
        } else {
            Some(self.raw(i))
        }
    }

    fn push(&mut self, v: u128) {
        let t = (self.top() + 7) & 7;
        self.set_top(t);
        if self.c.ftw >> t & 1 != 0 {
            // Stack overflow: the masked response loads the indefinite.
            self.flag(IE | SF);
            self.c1(true);
            self.set(0, INDEF);
        } else {
            self.set(0, v);
        }
    }

    fn pop(&mut self) {
        let t = self.top();
        self.c.ftw &= !(1 << t);
        self.set_top(t + 1);
    }

    /// The x87's choice among NaN operands (SDM vol. 1, table 4-7), quieted.
    fn pick_nan(&mut self, a: u128, b: u128) -> u128 {
        let (ca, cb) = (class(a), class(b));
        if ca == Cls::SNan || cb == Cls::SNan {
            self.flag(IE);
        }
        let r = match (is_nan(ca), is_nan(cb)) {
            (true, false) => a,
            (false, true) => b,
            _ if ca == Cls::SNan && cb == Cls::QNan => b,
            _ if ca == Cls::QNan && cb == Cls::SNan => a,
            _ => {
                let (sa, sb) = ((a as u64) << 1, (b as u64) << 1);
                if sb > sa { b } else { a }
            }
        };
        r | QUIET
    }

    /// Round a result computed by `f` (at the precision control's precision), setting PE/OE/UE/
    /// ZE and C1.
    /// `big` says whether the exact result is at least 2^16384 in magnitude (asked only when a
    /// directed rounding produced the largest finite value).
    /// `small` says whether the result is tiny after rounding (APFloat detects tininess before
    /// rounding; the x87 after), asked for inexact results near the smallest normal.
    fn finish(&mut self, f: impl Fn(Round) -> StatusAnd<Ext>, big: impl Fn() -> bool, small: impl Fn() -> bool) -> u128 {
        let rc = self.rc();
        let r = f(rc);
        let s = r.status;
        if s.contains(Status::INVALID_OP) {
            self.flag(IE);
            return INDEF;
        }
        let mut up = false;
        if s.contains(Status::INEXACT) {
            let z = f(Round::TowardZero).value;
            up = !r.value.bitwise_eq(z);
            self.flag(PE);
        }
        if s.contains(Status::DIV_BY_ZERO) {
            self.flag(ZE);
        }
        // APFloat reports an overflow rounded down to the largest finite value as inexact only.
        let largest = r.value.is_finite_non_zero() && r.value.abs().bitwise_eq(self.largest());
        if s.contains(Status::OVERFLOW) || (largest && s.contains(Status::INEXACT) && big()) {
            self.flag(OE);
        }
        let near_tiny = r.value.is_zero() || (r.value.is_finite() && r.value.ilogb() <= -16382);
        if s.contains(Status::INEXACT) && near_tiny && small() {
            self.flag(UE);
        }
        self.c1(up);
        from_ext(r.value)
    }

    /// The largest finite value at the current precision.
    fn largest(&self) -> Ext {
        let keep = 64 - self.pc();
        Ext::from_bits(0x7ffe << 64 | u128::from(u64::MAX >> keep << keep))
    }

    /// `a op b` with the x87's operand checks; `den`: a memory operand was a denormal.
    fn arith(&mut self, op: Bin, a: u128, b: u128, den: bool) -> u128 {
        self.c1(false);
        let (ca, cb) = (class(a), class(b));
        if ca == Cls::Unsupported || cb == Cls::Unsupported {
            self.flag(IE);
            return INDEF;
        }
        if is_nan(ca) || is_nan(cb) {
            return self.pick_nan(a, b);
        }
        let (x, y) = (to_ext(a), to_ext(b));
        let pc = self.pc();
        let big = || {
            let (h, y) = (to_quad(x).scalbn(-1), to_quad(y));
            let y = if matches!(op, Bin::Add | Bin::Sub) { y.scalbn(-1) } else { y };
            apply(op, h, y, Round::TowardZero).value.ilogb() >= 16383
        };
        let rc0 = self.rc();
        let small = || {
            let q = quad_odd(op, x, y, rc0).value;
            match pc {
                64 => tiny::<P64U>(q, rc0),
                53 => tiny::<P53U>(q, rc0),
                _ => tiny::<P24U>(q, rc0),
            }
        };
        let r = self.finish(
            |rc| match pc {
                64 => apply(op, x, y, rc),
                53 => narrow::<P53S>(quad_odd(op, x, y, rc), rc),
                _ => narrow::<P24S>(quad_odd(op, x, y, rc), rc),
            },
            big,
            small,
        );
        self.denormal(den || ca == Cls::Denormal || cb == Cls::Denormal);
        r
    }

    fn sqrt(&mut self, a: u128) -> u128 {
        self.c1(false);
        match class(a) {
            Cls::Unsupported => {
                self.flag(IE);
                return INDEF;
            }
            Cls::QNan | Cls::SNan => return self.pick_nan(a, a),
            Cls::Zero => return a,
            _ if sign_of(a) => {
                self.flag(IE);
                return INDEF;
            }
            Cls::Inf => return a,
            Cls::Denormal => self.flag(DE),
            Cls::Normal => {}
        }
        let (m, e) = normalized(a);
        // sqrt(m << s) with m << s about 134 bits gives a 67-bit root; s makes e - s even.
        let s: i32 = if (e - 70).rem_euclid(2) == 0 { 70 } else { 71 };
        let total = 64 + s;
        let bit = |j: i32| -> u128 { if j >= s && j - s < 64 { u128::from(m >> (j - s) & 1) } else { 0 } };
        let (mut rem, mut root) = (0u128, 0u128);
        let mut p = (total + 1) / 2 - 1;
        while p >= 0 {
            rem = rem << 2 | bit(2 * p + 1) << 1 | bit(2 * p);
            let trial = root << 2 | 1;
            if rem >= trial {
                rem -= trial;
                root = root << 1 | 1;
            } else {
                root <<= 1;
            }
            p -= 1;
        }
        let x = root << 1 | u128::from(rem != 0);
        let pc = self.pc();
        self.finish(|rc| round_int(x, (e - s) / 2 - 1, pc, rc), || false, || false)
    }

    /// Compare; `None` is unordered. `quiet`: only SNaNs raise IE (FUCOM*).
    fn compare(&mut self, a: u128, b: u128, quiet: bool, den: bool) -> Option<Ordering> {
        let (ca, cb) = (class(a), class(b));
        if ca == Cls::Unsupported || cb == Cls::Unsupported {
            self.flag(IE);
            return None;
        }
        if is_nan(ca) || is_nan(cb) {
            if !quiet || ca == Cls::SNan || cb == Cls::SNan {
                self.flag(IE);
            }
            return None;
        }
        self.denormal(den || ca == Cls::Denormal || cb == Cls::Denormal);
        to_ext(a).partial_cmp(&to_ext(b))
    }

    fn set_compare_cc(&mut self, o: Option<Ordering>) {
        self.cc(match o {
            None => C3 | C2 | C0,
            Some(Ordering::Less) => C0,
            Some(Ordering::Equal) => C3,
            Some(Ordering::Greater) => 0,
        });
    }

    fn set_compare_flags(&mut self, o: Option<Ordering>) {
        let f = match o {
            None => rf::ZF | rf::PF | rf::CF,
            Some(Ordering::Less) => rf::CF,
            Some(Ordering::Equal) => rf::ZF,
            Some(Ordering::Greater) => 0,
        };
        self.c.rflags = (self.c.rflags & !rf::STATUS) | f;
        self.c1(false);
    }

    /// ST(0) compared with `b`; `None` for b when an operand register was empty.
    fn fcom(&mut self, b: Option<u128>, quiet: bool, den: bool) -> Option<Ordering> {
        let a = self.get(0);
        match (a, b) {
            (Some(a), Some(b)) => self.compare(a, b, quiet, den),
            _ => {
                self.flag(IE | SF);
                None
            }
        }
    }

    /// Round `a` to an integer of `bits` bits (`rc` None: the control word's rounding).
    fn int_of(&mut self, a: Option<u128>, bits: usize, trunc: bool) -> u64 {
        let indef = 1u64 << (bits - 1);
        let Some(a) = a else { return indef };
        let c = class(a);
        if matches!(c, Cls::Unsupported | Cls::QNan | Cls::SNan | Cls::Inf) {
            self.flag(IE);
            return indef;
        }
        // FIST* report no denormal-operand exception (as hardware does).
        let rc = if trunc { Round::TowardZero } else { self.rc() };
        let x = to_ext(a);
        let mut exact = false;
        let r = x.to_i128_r(bits, rc, &mut exact);
        if r.status.contains(Status::INVALID_OP) {
            self.flag(IE);
            return indef;
        }
        let mut up = false;
        if !exact {
            self.flag(PE);
            let mut e2 = false;
            let z = x.to_i128_r(bits, Round::TowardZero, &mut e2).value;
            up = z != r.value;
        }
        self.c1(up);
        r.value as u64
    }

    /// ST(0) rounded with RC to 18 packed decimal digits (low 8 bytes, high 2 bytes), or the
    /// decimal indefinite.
    fn bcd_of(&mut self, a: Option<u128>) -> (u64, u64) {
        const INDEF_BCD: (u64, u64) = (0xc000_0000_0000_0000, 0xffff);
        let Some(a) = a else { return INDEF_BCD };
        if matches!(class(a), Cls::Unsupported | Cls::QNan | Cls::SNan | Cls::Inf) {
            self.flag(IE);
            return INDEF_BCD;
        }
        let x = to_ext(a);
        let rc = self.rc();
        let mut exact = false;
        let r = x.to_i128_r(80, rc, &mut exact);
        let mag = r.value.unsigned_abs();
        if r.status.contains(Status::INVALID_OP) || mag >= 1_000_000_000_000_000_000 {
            self.flag(IE);
            return INDEF_BCD;
        }
        let mut up = false;
        if !exact {
            self.flag(PE);
            let mut e2 = false;
            up = x.to_i128_r(80, Round::TowardZero, &mut e2).value != r.value;
        }
        self.c1(up);
        let (mut lo, mut hi, mut m) = (0u64, 0u64, mag);
        for k in 0..18 {
            let d = (m % 10) as u64;
            m /= 10;
            if k < 16 {
                lo |= d << (4 * k);
            } else {
                hi |= d << (4 * (k - 16));
            }
        }
        if sign_of(a) {
            hi |= 0x8000;
        }
        (lo, hi)
    }

    /// ST(0) to a 32- or 64-bit float bit pattern.
    fn float_of(&mut self, a: Option<u128>, bits: u32) -> u64 {
        let indef = if bits == 32 { 0xffc0_0000 } else { 0xfff8_0000_0000_0000 };
        let Some(a) = a else { return indef };
        self.c1(false);
        let c = class(a);
        let sign = u64::from(sign_of(a));
        match c {
            Cls::Unsupported => {
                self.flag(IE);
                return indef;
            }
            Cls::QNan | Cls::SNan => {
                if c == Cls::SNan {
                    self.flag(IE);
                }
                let sig = (a as u64) << 1;
                return if bits == 32 {
                    sign << 31 | 0x7f80_0000 | 0x40_0000 | (sig >> 41)
                } else {
                    sign << 63 | 0x7ff << 52 | 1 << 51 | (sig >> 12)
                };
            }
            // Stores report no denormal-operand exception (as hardware does).
            _ => {}
        }
        let x = to_ext(a);
        let rc = self.rc();
        let mut l = false;
        // Overflow rounded down to the largest finite value is reported by exponent.
        let big = x.is_finite_non_zero() && x.ilogb() >= if bits == 32 { 128 } else { 1024 };
        if bits == 32 {
            let r: StatusAnd<Single> = x.convert_r(rc, &mut l);
            let z: StatusAnd<Single> = x.convert_r(Round::TowardZero, &mut l);
            self.conv_status(r.status, !r.value.bitwise_eq(z.value), big);
            r.value.to_bits() as u64
        } else {
            let r: StatusAnd<Double> = x.convert_r(rc, &mut l);
            let z: StatusAnd<Double> = x.convert_r(Round::TowardZero, &mut l);
            self.conv_status(r.status, !r.value.bitwise_eq(z.value), big);
            r.value.to_bits() as u64
        }
    }

    fn conv_status(&mut self, s: Status, up: bool, big: bool) {
        if s.contains(Status::INEXACT) {
            self.flag(PE);
            self.c1(up);
        }
        if s.contains(Status::OVERFLOW) || big {
            self.flag(OE);
        }
        if s.contains(Status::UNDERFLOW) {
            self.flag(UE);
        }
    }

    fn load_const(&mut self, k: usize) {
        let (sig, e) = CONSTS[k];
        // Rounded with RC from more bits than any rounding needs.
        let r = round_int(sig, e - 127, 64, self.rc());
        self.c1(false);
        self.push(from_ext(r.value));
    }

    fn prem(&mut self, round_nearest: bool) {
        let (Some(a), Some(b)) = (self.get(0), self.get(1)) else {
            self.set(0, INDEF);
            return;
        };
        let den = class(a) == Cls::Denormal || class(b) == Cls::Denormal;
        // A pseudo-denormal dividend comes back with its exponent normalized.
        let a = if exp_of(a) == 0 && (a as u64) >> 63 != 0 { a | 1 << 64 } else { a };
        if a != self.raw(0) {
            self.set(0, a);
        }
        let (ca, cb) = (class(a), class(b));
        self.cc(0);
        if ca == Cls::Unsupported || cb == Cls::Unsupported {
            self.flag(IE);
            self.set(0, INDEF);
            return;
        }
        if is_nan(ca) || is_nan(cb) {
            let r = self.pick_nan(a, b);
            self.set(0, r);
            return;
        }
        if ca == Cls::Unsupported || cb == Cls::Unsupported || ca == Cls::Inf || cb == Cls::Zero {
            self.flag(IE);
            self.set(0, INDEF);
            return;
        }
        if den {
            self.flag(DE);
        }
        if ca == Cls::Zero || cb == Cls::Inf {
            return;
        }
        let (ma, ea) = normalized(a);
        let (mb, eb) = normalized(b);
        let d = ea - eb;
        if d < -1 {
            return;
        }
        let sa = sign_of(a);
        if d >= 64 {
            // Partial remainder: reduce the exponent difference to n (32..63).
            let n = 32 + (d & 31);
            let num = u128::from(ma) << n;
            let r = num % u128::from(mb);
            let v = round_int(r, ea - n, 64, Round::TowardZero).value;
            let v = if sa { v.copy_sign(-Ext::ZERO) } else { v };
            let raw = if r == 0 { a & (1 << 79) } else { from_ext(v) };
            self.set(0, raw);
            self.cc(C2);
            return;
        }
        let num = u128::from(ma) << (d + 1);
        let den = u128::from(mb) << 1;
        let mut q = num / den;
        let mut r = num % den;
        let mut neg = false;
        if round_nearest && (2 * r > den || (2 * r == den && q & 1 == 1)) {
            q += 1;
            r = den - r;
            neg = true;
        }
        let sign = sa ^ neg;
        let raw = if r == 0 {
            u128::from(sa) << 79
        } else {
            let v = round_int(r, eb - 1, 64, Round::TowardZero).value;
            let v = if sign { -v } else { v };
            from_ext(v)
        };
        self.set(0, raw);
        let mut cc = 0;
        if q & 4 != 0 {
            cc |= C0;
        }
        if q & 2 != 0 {
            cc |= C3;
        }
        if q & 1 != 0 {
            cc |= C1;
        }
        self.cc(cc);
    }

    fn scale(&mut self) {
        let (Some(a), Some(b)) = (self.get(0), self.get(1)) else {
            self.set(0, INDEF);
            return;
        };
        self.c1(false);
        let (ca, cb) = (class(a), class(b));
        if ca == Cls::Unsupported || cb == Cls::Unsupported {
            self.flag(IE);
            self.set(0, INDEF);
            return;
        }
        if is_nan(ca) || is_nan(cb) {
            let r = self.pick_nan(a, b);
            self.set(0, r);
            return;
        }
        if ca == Cls::Denormal || cb == Cls::Denormal {
            self.flag(DE);
        }
        if cb == Cls::Inf {
            let r = match (ca, sign_of(b)) {
                (Cls::Zero, false) | (Cls::Inf, true) => {
                    self.flag(IE);
                    INDEF
                }
                (Cls::Zero | Cls::Inf, _) => a,
                (_, false) => a & (1 << 79) | 0x7fff << 64 | 1 << 63,
                (_, true) => a & (1 << 79),
            };
            self.set(0, r);
            return;
        }
        if matches!(ca, Cls::Zero | Cls::Inf) {
            return;
        }
        let mut exact = false;
        let n = to_ext(b).to_i128_r(32, Round::TowardZero, &mut exact).value.clamp(-70000, 70000) as i32;
        let x = to_ext(a);
        let rc = self.rc();
        let r = x.scalbn_r(n, rc);
        let away = if x.is_negative() { Round::TowardNegative } else { Round::TowardPositive };
        let z = x.scalbn_r(n, Round::TowardZero);
        if !z.bitwise_eq(x.scalbn_r(n, away)) {
            // Bits lost: overflow past the largest finite value, or on the way into the denormal
            // range (tininess after rounding, as for arithmetic).
            if n > 0 {
                self.flag(OE | PE);
            } else if r.is_normal() {
                self.flag(PE);
            } else {
                self.flag(UE | PE);
            }
            self.c1(!z.bitwise_eq(r));
        }
        self.set(0, from_ext(r));
    }

    /// Whether pushing now would overflow the stack.
    fn full(&self) -> bool {
        self.c.ftw >> ((self.top() + 7) & 7) & 1 != 0
    }

    fn xtract(&mut self) {
        if self.full() && !self.empty(0) {
            self.set(0, INDEF);
            self.push(INDEF);
            return;
        }
        let Some(a) = self.get(0) else {
            self.set(0, INDEF);
            self.push(INDEF);
            return;
        };
        self.c1(false);
        let c = class(a);
        let (e, s) = match c {
            Cls::Unsupported => {
                self.flag(IE);
                (INDEF, INDEF)
            }
            Cls::QNan | Cls::SNan => {
                let q = self.pick_nan(a, a);
                (q, q)
            }
            Cls::Zero => {
                self.flag(ZE);
                (1 << 79 | 0x7fff << 64 | 1 << 63, a)
            }
            Cls::Inf => (0x7fff << 64 | 1 << 63, a),
            Cls::Denormal | Cls::Normal => {
                if c == Cls::Denormal {
                    self.flag(DE);
                }
                let (m, e) = normalized(a);
                let exp = e + 63;
                let ev = Ext::from_i128(i128::from(exp)).value;
                (from_ext(ev), a & (1 << 79) | 0x3fff << 64 | u128::from(m))
            }
        };
        self.set(0, e);
        self.push(s);
    }

    fn xam(&mut self) {
        let a = self.raw(0);
        let cls = if self.empty(0) {
            C3 | C0
        } else {
            match class(a) {
                Cls::Unsupported => 0,
                Cls::QNan | Cls::SNan => C0,
                Cls::Normal => C2,
                Cls::Inf => C2 | C0,
                Cls::Zero => C3,
                Cls::Denormal => C3 | C2,
            }
        };
        self.cc(cls | if sign_of(a) { C1 } else { 0 });
    }

    /// A transcendental result computed in quad, rounded to 80 bits with RC (PE, C1, UE).
    fn round_quad(&mut self, q: Quad) -> u128 {
        let small = || q.is_finite_non_zero() && q.ilogb() < -16382;
        self.finish(
            |rc| {
                let mut l = false;
                q.convert_r(rc, &mut l)
            },
            || false,
            small,
        )
    }

    /// The operand checks of a transcendental instruction: `Err` with the result for
    /// unsupported encodings and NaNs, else the value in quad (DE for a denormal).
    fn trans_operand(&mut self, a: u128, b: Option<u128>) -> Result<(Quad, Quad), u128> {
        let (ca, cb) = (class(a), b.map_or(Cls::Normal, class));
        if ca == Cls::Unsupported || cb == Cls::Unsupported {
            self.flag(IE);
            return Err(INDEF);
        }
        if is_nan(ca) || is_nan(cb) {
            let r = match b {
                Some(b) => self.pick_nan(b, a),
                None => self.pick_nan(a, a),
            };
            return Err(r);
        }
        self.denormal(ca == Cls::Denormal || cb == Cls::Denormal);
        Ok((to_quad(to_ext(a)), b.map_or(Quad::ZERO, |b| to_quad(to_ext(b)))))
    }

    /// F2XM1: ST(0) = 2^ST(0) − 1.
    fn f2xm1(&mut self) {
        let Some(a) = self.get(0) else {
            self.set(0, INDEF);
            return;
        };
        self.c1(false);
        let r = match self.trans_operand(a, None) {
            Err(r) => r,
            Ok((x, _)) if x.is_zero() => a,
            Ok((x, _)) if x.is_infinite() => {
                if x.is_negative() {
                    0xbfff << 64 | 1 << 63
                } else {
                    a
                }
            }
            Ok((x, _)) => self.round_quad(x87_trans::exp2m1(x)),
        };
        self.set(0, r);
    }

    /// FYL2X (ST(1) · log2 ST(0)) and FYL2XP1 (ST(1) · log2(ST(0) + 1)), popping.
    fn fyl2x(&mut self, plus_one: bool) {
        let (Some(a), Some(b)) = (self.get(0), self.get(1)) else {
            self.set(1, INDEF);
            self.pop();
            return;
        };
        self.c1(false);
        let r = match self.trans_operand(a, Some(b)) {
            Err(r) => r,
            Ok((x, y)) => {
                // The logarithm's argument and its special values.
                let arg = if plus_one { x.add_r(Quad::from_i128(1).value, Round::NearestTiesToEven).value } else { x };
                let one = Quad::from_i128(1).value;
                let inf_of = |neg: bool| if neg { 0xffff << 64 | 1 << 63 } else { 0x7fff << 64 | 1 << 63 };
                let zero_of = |neg: bool| if neg { 1u128 << 79 } else { 0 };
                if arg.is_negative() && !arg.is_zero() {
                    self.flag(IE);
                    INDEF
                } else if arg.is_zero() {
                    // log2(0) = −inf.
                    if y.is_zero() {
                        self.flag(IE);
                        INDEF
                    } else {
                        if !y.is_infinite() {
                            self.flag(ZE);
                        }
                        inf_of(!y.is_negative())
                    }
                } else if arg.is_infinite() {
                    if y.is_zero() {
                        self.flag(IE);
                        INDEF
                    } else {
                        inf_of(y.is_negative())
                    }
                } else if y.is_infinite() {
                    match arg.partial_cmp(&one) {
                        Some(Ordering::Equal) => {
                            self.flag(IE);
                            INDEF
                        }
                        Some(Ordering::Greater) => inf_of(y.is_negative()),
                        _ => inf_of(!y.is_negative()),
                    }
                } else {
                    let l = if plus_one { x87_trans::log2_1p(x) } else { x87_trans::log2(x) };
                    if l.is_zero() || y.is_zero() {
                        // An exact zero takes the sign of the product.
                        let neg = (l.is_negative() || (l.is_zero() && plus_one && x.is_negative())) != y.is_negative();
                        zero_of(neg)
                    } else {
                        let p = l.mul_r(y, Round::NearestTiesToEven).value;
                        self.round_quad(p)
                    }
                }
            }
        };
        self.set(1, r);
        self.pop();
    }

    /// FPATAN: ST(1) = atan2(ST(1), ST(0)), popping.
    fn fpatan(&mut self) {
        let (Some(a), Some(b)) = (self.get(0), self.get(1)) else {
            self.set(1, INDEF);
            self.pop();
            return;
        };
        self.c1(false);
        let r = match self.trans_operand(a, Some(b)) {
            Err(r) => r,
            Ok((x, y)) => {
                let p = x87_trans::pi();
                let signed = |v: Quad, neg: bool| if neg { -v } else { v };
                let q = if y.is_infinite() || x.is_infinite() {
                    let quarter = p.scalbn(-2);
                    let t = match (y.is_infinite(), x.is_infinite(), x.is_negative()) {
                        (true, true, false) => quarter,
                        (true, true, true) => quarter.mul_r(Quad::from_i128(3).value, Round::NearestTiesToEven).value,
                        (true, false, _) => p.scalbn(-1),
                        (false, true, false) => Quad::ZERO,
                        (false, true, true) => p,
                        (false, false, _) => Quad::ZERO,
                    };
                    signed(t, y.is_negative())
                } else if y.is_zero() {
                    signed(if x.is_negative() { p } else { Quad::ZERO }, y.is_negative())
                } else if x.is_zero() {
                    signed(p.scalbn(-1), y.is_negative())
                } else {
                    x87_trans::atan2(y, x)
                };
                if q.is_zero() {
                    u128::from(y.is_negative()) << 79
                } else {
                    self.round_quad(q)
                }
            }
        };
        self.set(1, r);
        self.pop();
    }

    /// FSIN, FCOS, FSINCOS, FPTAN. Out-of-range operands (|x| ≥ 2^63) set C2 and are left alone.
    fn trig(&mut self, code: Code) {
        use Code as C;
        let two_results = matches!(code, C::Fsincos | C::Fptan);
        if two_results && self.full() && !self.empty(0) {
            self.set(0, INDEF);
            self.push(INDEF);
            return;
        }
        let Some(a) = self.get(0) else {
            self.c.fsw &= !C2;
            self.set(0, INDEF);
            if two_results {
                self.push(INDEF);
            }
            return;
        };
        self.c1(false);
        if !self.trig_in_range(a) {
            self.c.fsw |= C2;
            return;
        }
        self.c.fsw &= !C2;
        let (first, second) = match self.trans_operand(a, None) {
            Err(r) => (r, r),
            Ok((x, _)) if x.is_infinite() => {
                self.flag(IE);
                (INDEF, INDEF)
            }
            Ok((x, _)) => {
                let (s, c) = x87_trans::sin_cos(x);
                let one = 0x3fff << 64 | 1 << 63;
                match code {
                    C::Fsin if x.is_zero() => (a, 0),
                    C::Fsin => (self.round_quad(s), 0),
                    C::Fcos if x.is_zero() => (one, 0),
                    C::Fcos => (self.round_quad(c), 0),
                    C::Fptan if x.is_zero() => (a, one),
                    C::Fptan => (self.round_quad(s.div_r(c, Round::NearestTiesToEven).value), one),
                    _ if x.is_zero() => (a, one),
                    _ => {
                        // C1 reports the rounding of the sine, as hardware does.
                        let rc = self.round_quad(c);
                        let rs = self.round_quad(s);
                        (rs, rc)
                    }
                }
            }
        };
        self.set(0, first);
        if two_results {
            self.push(second);
        }
    }

    fn trig_in_range(&self, a: u128) -> bool {
        !matches!(class(a), Cls::Normal) || exp_of(a) < 16383 + 63
    }
}

/// Execute register/staged-memory instruction `code` on `cpu`: `sti` is the ST(i) operand,
/// `input` the staged memory source, `out` receives a memory result. Returns false for an
/// instruction this module does not implement (never produced by the lowering).
pub fn exec(cpu: &mut CpuState, code: Code, sti: usize, input: [u64; 2], out: &mut [u64; 2]) -> bool {
    use Code as C;
    let mut f = Fpu { c: cpu, raised: 0 };
    // Memory sources as 80-bit values, with DE for a denormal single/double.
    let mem_fp = |bytes: u8| -> (u128, bool) {
        let (v, c) = match bytes {
            4 => f32_to_raw(input[0] as u32),
            8 => f64_to_raw(input[0]),
            _ => (u128::from(input[1] & 0xffff) << 64 | u128::from(input[0]), Cls::Normal),
        };
        (v, c == Cls::Denormal)
    };
    let mem_int = |bytes: u8| -> u128 {
        let v: i64 = match bytes {
            2 => i64::from(input[0] as u16 as i16),
            4 => i64::from(input[0] as u32 as i32),
            _ => input[0] as i64,
        };
        from_ext(Ext::from_i128(i128::from(v)).value)
    };
    let bin_of = |code: Code| -> Option<(Bin, bool)> {
        let m = code.mnemonic();
        use iced_x86::Mnemonic as M;
        Some(match m {
            M::Fadd | M::Faddp | M::Fiadd => (Bin::Add, false),
            M::Fmul | M::Fmulp | M::Fimul => (Bin::Mul, false),
            M::Fsub | M::Fsubp | M::Fisub => (Bin::Sub, false),
            M::Fsubr | M::Fsubrp | M::Fisubr => (Bin::Sub, true),
            M::Fdiv | M::Fdivp | M::Fidiv => (Bin::Div, false),
            M::Fdivr | M::Fdivrp | M::Fidivr => (Bin::Div, true),
            _ => return None,
        })
    };
    match code {
        // ---- arithmetic ----
        C::Fadd_m32fp | C::Fmul_m32fp | C::Fsub_m32fp | C::Fsubr_m32fp | C::Fdiv_m32fp | C::Fdivr_m32fp
        | C::Fadd_m64fp | C::Fmul_m64fp | C::Fsub_m64fp | C::Fsubr_m64fp | C::Fdiv_m64fp | C::Fdivr_m64fp
        | C::Fiadd_m16int | C::Fimul_m16int | C::Fisub_m16int | C::Fisubr_m16int | C::Fidiv_m16int
        | C::Fidivr_m16int | C::Fiadd_m32int | C::Fimul_m32int | C::Fisub_m32int | C::Fisubr_m32int
        | C::Fidiv_m32int | C::Fidivr_m32int => {
            let Some((op, rev)) = bin_of(code) else { return false };
            let Some(bytes) = plan(code).map(|p| p.load) else { return false };
            let int = matches!(code.mnemonic(), iced_x86::Mnemonic::Fiadd | iced_x86::Mnemonic::Fimul | iced_x86::Mnemonic::Fisub | iced_x86::Mnemonic::Fisubr | iced_x86::Mnemonic::Fidiv | iced_x86::Mnemonic::Fidivr);
            let Some(a) = f.get(0) else {
                f.set(0, INDEF);
                return true;
            };
            let (b, den) = if int { (mem_int(bytes), false) } else { mem_fp(bytes) };
            let r = if rev { f.arith(op, b, a, den) } else { f.arith(op, a, b, den) };
            f.set(0, r);
        }
        C::Fadd_st0_sti | C::Fmul_st0_sti | C::Fsub_st0_sti | C::Fsubr_st0_sti | C::Fdiv_st0_sti
        | C::Fdivr_st0_sti | C::Fadd_sti_st0 | C::Fmul_sti_st0 | C::Fsubr_sti_st0 | C::Fsub_sti_st0
        | C::Fdivr_sti_st0 | C::Fdiv_sti_st0 | C::Faddp_sti_st0 | C::Fmulp_sti_st0 | C::Fsubrp_sti_st0
        | C::Fsubp_sti_st0 | C::Fdivrp_sti_st0 | C::Fdivp_sti_st0 => {
            let Some((op, rev)) = bin_of(code) else { return false };
            let to_sti = !matches!(
                code,
                C::Fadd_st0_sti | C::Fmul_st0_sti | C::Fsub_st0_sti | C::Fsubr_st0_sti | C::Fdiv_st0_sti | C::Fdivr_st0_sti
            );
            let (d, s) = if to_sti { (sti, 0) } else { (0, sti) };
            let r = match (f.get(d), f.get(s)) {
                (Some(a), Some(b)) => {
                    if rev {
                        f.arith(op, b, a, false)
                    } else {
                        f.arith(op, a, b, false)
                    }
                }
                _ => INDEF,
            };
            f.set(d, r);
            if matches!(code.mnemonic(), iced_x86::Mnemonic::Faddp | iced_x86::Mnemonic::Fmulp | iced_x86::Mnemonic::Fsubp | iced_x86::Mnemonic::Fsubrp | iced_x86::Mnemonic::Fdivp | iced_x86::Mnemonic::Fdivrp) {
                f.pop();
            }
        }
        C::Fsqrt => {
            let r = match f.get(0) {
                Some(a) => f.sqrt(a),
                None => INDEF,
            };
            f.set(0, r);
        }
        C::Frndint => {
            let r = match f.get(0) {
                Some(a) => {
                    f.c1(false);
                    match class(a) {
                        Cls::Unsupported => {
                            f.flag(IE);
                            INDEF
                        }
                        Cls::QNan | Cls::SNan => f.pick_nan(a, a),
                        c => {
                            if c == Cls::Denormal {
                                f.flag(DE);
                            }
                            let x = to_ext(a);
                            f.finish(|rc| x.round_to_integral(rc), || false, || false)
                        }
                    }
                }
                None => INDEF,
            };
            f.set(0, r);
        }
        C::Fchs | C::Fabs => {
            let r = match f.get(0) {
                Some(a) => {
                    f.c1(false);
                    if code == C::Fchs { a ^ 1 << 79 } else { a & !(1 << 79) }
                }
                None => INDEF,
            };
            f.set(0, r);
        }
        C::Fscale => f.scale(),
        C::Fprem => f.prem(false),
        C::Fprem1 => f.prem(true),
        C::Fxtract => f.xtract(),
        // ---- loads ----
        C::Fld_m32fp | C::Fld_m64fp | C::Fld_m80fp => {
            let bytes = if code == C::Fld_m32fp { 4 } else if code == C::Fld_m64fp { 8 } else { 10 };
            let (mut v, den) = mem_fp(bytes);
            if bytes != 10 && class(v) == Cls::SNan {
                f.flag(IE);
                v |= QUIET;
            }
            f.c1(false);
            f.push(v);
            f.denormal(den);
        }
        C::Fbld_m80bcd => {
            // 18 packed decimal digits and a sign bit; digits above 9 are taken at face value.
            let mut v: i128 = 0;
            for k in (0..18).rev() {
                let byte = if k / 2 < 8 { input[0] >> (8 * (k / 2)) } else { input[1] >> (8 * (k / 2 - 8)) };
                let nib = (byte >> (4 * (k % 2))) & 15;
                v = v * 10 + i128::from(nib as u8);
            }
            let neg = input[1] >> 15 & 1 != 0;
            let x = Ext::from_i128(v).value;
            f.c1(false);
            f.push(from_ext(if neg { -x } else { x }));
        }
        C::Fbstp_m80bcd => {
            let a = f.get(0);
            let (lo, hi) = f.bcd_of(a);
            out[0] = lo;
            out[1] = hi;
            f.pop();
        }
        C::Fild_m16int | C::Fild_m32int | C::Fild_m64int => {
            let bytes = plan(code).map_or(8, |p| p.load);
            f.c1(false);
            f.push(mem_int(bytes));
        }
        C::Fld_sti => {
            let v = f.get(sti).unwrap_or(INDEF);
            f.c1(false);
            f.push(v);
        }
        C::Fld1 => {
            f.c1(false);
            f.push(0x3fff << 64 | 1 << 63);
        }
        C::Fldz => {
            f.c1(false);
            f.push(0);
        }
        C::Fldpi => f.load_const(0),
        C::Fldl2t => f.load_const(1),
        C::Fldl2e => f.load_const(2),
        C::Fldlg2 => f.load_const(3),
        C::Fldln2 => f.load_const(4),
        // ---- stores ----
        C::Fst_m32fp | C::Fstp_m32fp | C::Fst_m64fp | C::Fstp_m64fp => {
            let a = f.get(0);
            let bits = if matches!(code, C::Fst_m32fp | C::Fstp_m32fp) { 32 } else { 64 };
            out[0] = f.float_of(a, bits);
            if matches!(code, C::Fstp_m32fp | C::Fstp_m64fp) {
                f.pop();
            }
        }
        C::Fstp_m80fp => {
            let a = f.get(0).unwrap_or(INDEF);
            out[0] = a as u64;
            out[1] = (a >> 64) as u64;
            f.pop();
        }
        C::Fist_m16int | C::Fistp_m16int | C::Fisttp_m16int | C::Fist_m32int | C::Fistp_m32int
        | C::Fisttp_m32int | C::Fistp_m64int | C::Fisttp_m64int => {
            let bytes = plan(code).map_or(8, |p| p.store);
            let a = f.get(0);
            let trunc = code.mnemonic() == iced_x86::Mnemonic::Fisttp;
            if trunc {
                f.c1(false);
            }
            out[0] = f.int_of(a, usize::from(bytes) * 8, trunc);
            if code.mnemonic() != iced_x86::Mnemonic::Fist {
                f.pop();
            }
        }
        C::Fst_sti | C::Fstp_sti | C::Fstpnce_sti | C::Fstp_sti_DFD0 | C::Fstp_sti_DFD8 => {
            // The D9 D8+i alias signals no stack underflow (as hardware does).
            let v = if code == C::Fstpnce_sti && f.empty(0) { INDEF } else { f.get(0).unwrap_or(INDEF) };
            f.c1(false);
            f.set(sti, v);
            if code != C::Fst_sti {
                f.pop();
            }
        }
        C::Fxch_st0_sti | C::Fxch_st0_sti_DDC8 | C::Fxch_st0_sti_DFC8 => {
            let a = f.get(0).unwrap_or(INDEF);
            let b = f.get(sti).unwrap_or(INDEF);
            if !f.empty(0) && !f.empty(sti) {
                f.c1(false);
            }
            f.set(0, b);
            f.set(sti, a);
        }
        // ---- compares ----
        C::Fcom_m32fp | C::Fcomp_m32fp | C::Fcom_m64fp | C::Fcomp_m64fp => {
            let (b, den) = mem_fp(if matches!(code, C::Fcom_m32fp | C::Fcomp_m32fp) { 4 } else { 8 });
            let o = f.fcom(Some(b), false, den);
            f.set_compare_cc(o);
            if matches!(code, C::Fcomp_m32fp | C::Fcomp_m64fp) {
                f.pop();
            }
        }
        C::Ficom_m16int | C::Ficomp_m16int | C::Ficom_m32int | C::Ficomp_m32int => {
            let b = mem_int(if matches!(code, C::Ficom_m16int | C::Ficomp_m16int) { 2 } else { 4 });
            let o = f.fcom(Some(b), false, false);
            f.set_compare_cc(o);
            if matches!(code, C::Ficomp_m16int | C::Ficomp_m32int) {
                f.pop();
            }
        }
        C::Fcom_st0_sti | C::Fcomp_st0_sti | C::Fcom_st0_sti_DCD0 | C::Fcomp_st0_sti_DCD8
        | C::Fcomp_st0_sti_DED0 | C::Fucom_st0_sti | C::Fucomp_st0_sti => {
            let b = if f.empty(sti) { None } else { Some(f.raw(sti)) };
            let quiet = matches!(code, C::Fucom_st0_sti | C::Fucomp_st0_sti);
            let o = f.fcom(b, quiet, false);
            f.set_compare_cc(o);
            if !matches!(code, C::Fcom_st0_sti | C::Fcom_st0_sti_DCD0 | C::Fucom_st0_sti) {
                f.pop();
            }
        }
        C::Fcompp | C::Fucompp => {
            let b = if f.empty(1) { None } else { Some(f.raw(1)) };
            let o = f.fcom(b, code == C::Fucompp, false);
            f.set_compare_cc(o);
            f.pop();
            f.pop();
        }
        C::Fcomi_st0_sti | C::Fcomip_st0_sti | C::Fucomi_st0_sti | C::Fucomip_st0_sti => {
            let b = if f.empty(sti) { None } else { Some(f.raw(sti)) };
            let quiet = matches!(code, C::Fucomi_st0_sti | C::Fucomip_st0_sti);
            let o = f.fcom(b, quiet, false);
            f.set_compare_flags(o);
            if matches!(code, C::Fcomip_st0_sti | C::Fucomip_st0_sti) {
                f.pop();
            }
        }
        C::Ftst => {
            let o = f.fcom(Some(0), false, false);
            f.set_compare_cc(o);
        }
        C::Fxam => f.xam(),
        // ---- conditional moves ----
        C::Fcmovb_st0_sti | C::Fcmove_st0_sti | C::Fcmovbe_st0_sti | C::Fcmovu_st0_sti
        | C::Fcmovnb_st0_sti | C::Fcmovne_st0_sti | C::Fcmovnbe_st0_sti | C::Fcmovnu_st0_sti => {
            let fl = f.c.rflags;
            let (cf, zf, pf) = (fl & rf::CF != 0, fl & rf::ZF != 0, fl & rf::PF != 0);
            let take = match code {
                C::Fcmovb_st0_sti => cf,
                C::Fcmove_st0_sti => zf,
                C::Fcmovbe_st0_sti => cf || zf,
                C::Fcmovu_st0_sti => pf,
                C::Fcmovnb_st0_sti => !cf,
                C::Fcmovne_st0_sti => !zf,
                C::Fcmovnbe_st0_sti => !cf && !zf,
                _ => !pf,
            };
            f.c1(false);
            if f.empty(0) || f.empty(sti) {
                f.flag(IE | SF);
                f.set(0, INDEF);
            } else if take {
                let v = f.raw(sti);
                f.set(0, v);
            }
        }
        // ---- stack and control ----
        C::Ffree_sti => {
            let p = f.phys(sti);
            f.c.ftw &= !(1 << p);
        }
        C::Ffreep_sti => {
            let p = f.phys(sti);
            f.c.ftw &= !(1 << p);
            f.pop();
        }
        C::Fincstp | C::Fdecstp => {
            let t = f.top();
            f.set_top(if code == C::Fincstp { t + 1 } else { t + 7 });
            f.c1(false);
        }
        C::Fninit | C::Finit => {
            f.c.fcw = 0x037f;
            f.c.fsw = 0;
            f.c.ftw = 0;
        }
        C::Fnclex | C::Fclex => f.c.fsw &= 0x7f00,
        C::Fldcw_m2byte => f.c.fcw = control_word(input[0] as u16),
        C::Fnop => {}
        C::Fstsw_AX | C::Fstsw_m2byte => out[0] = u64::from(f.c.fsw),
        C::Fstcw_m2byte => out[0] = u64::from(f.c.fcw),
        // ---- transcendental (quad precision, see x87_trans.rs) ----
        C::F2xm1 => f.f2xm1(),
        C::Fsin | C::Fcos | C::Fptan | C::Fsincos => f.trig(code),
        C::Fyl2x => f.fyl2x(false),
        C::Fyl2xp1 => f.fyl2x(true),
        C::Fpatan => f.fpatan(),
        _ => return false,
    }
    true
}

/// A control word as loaded: bit 6 reads as one, bits 7 and 13..16 as zero.
fn control_word(v: u16) -> u16 {
    (v & 0x1f3f) | 0x40
}

/// The full (two bits per register) tag word.
fn full_tags(f: &Fpu<'_>) -> u16 {
    let mut t = 0u16;
    for p in 0..8 {
        let tag = if f.c.ftw >> p & 1 == 0 {
            3
        } else {
            let v = f.c.fpr[p];
            match class(u128::from(v[1] & 0xffff) << 64 | u128::from(v[0])) {
                Cls::Zero => 1,
                Cls::Normal => 0,
                _ => 2,
            }
        };
        t |= tag << (2 * p);
    }
    t
}

fn put16(a: &mut [u8], off: usize, v: u16) {
    a[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn get16(a: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([a[off], a[off + 1]])
}

fn put_reg(a: &mut [u8], off: usize, v: [u64; 2]) {
    a[off..off + 8].copy_from_slice(&v[0].to_le_bytes());
    a[off + 8..off + 10].copy_from_slice(&(v[1] as u16).to_le_bytes());
}

fn get_reg(a: &[u8], off: usize) -> [u64; 2] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&a[off..off + 8]);
    [u64::from_le_bytes(w), u64::from(get16(a, off + 8))]
}

/// FNSTENV/FLDENV/FNSAVE/FRSTOR/FXSAVE/FXRSTOR on the memory area `a` (of [`area_len`] bytes).
/// The instruction and data pointers and the opcode are stored as zero (not tracked).
pub fn area_op(cpu: &mut CpuState, code: Code, a: &mut [u8]) {
    use Code as C;
    let mut f = Fpu { c: cpu, raised: 0 };
    let small = matches!(
        code,
        C::Fnstenv_m14byte | C::Fstenv_m14byte | C::Fldenv_m14byte | C::Fnsave_m94byte | C::Fsave_m94byte | C::Frstor_m94byte
    );
    let w = if small { 2 } else { 4 };
    let env = 7 * w;
    let store_env = |f: &Fpu<'_>, a: &mut [u8]| {
        a[..env].fill(0);
        put16(a, 0, f.c.fcw);
        put16(a, w, f.c.fsw);
        put16(a, 2 * w, full_tags(f));
        if !small {
            // The unused halves of the selectors read as ones on hardware.
            put16(a, 2, 0xffff);
            put16(a, 6, 0xffff);
            put16(a, 10, 0xffff);
            put16(a, 26, 0xffff);
        }
    };
    let load_env = |f: &mut Fpu<'_>, a: &[u8]| {
        f.c.fcw = control_word(get16(a, 0));
        f.c.fsw = get16(a, w);
        let t = get16(a, 2 * w);
        f.c.ftw = (0..8).fold(0, |acc, p| acc | u8::from(t >> (2 * p) & 3 != 3) << p);
    };
    match code {
        C::Fnstenv_m28byte | C::Fstenv_m28byte | C::Fnstenv_m14byte | C::Fstenv_m14byte => {
            store_env(&f, a);
            f.c.fcw |= 0x3f;
        }
        C::Fldenv_m28byte | C::Fldenv_m14byte => load_env(&mut f, a),
        C::Fnsave_m108byte | C::Fsave_m108byte | C::Fnsave_m94byte | C::Fsave_m94byte => {
            store_env(&f, a);
            for i in 0..8 {
                let p = f.phys(i);
                put_reg(a, env + 10 * i, f.c.fpr[p]);
            }
            f.c.fcw = 0x037f;
            f.c.fsw = 0;
            f.c.ftw = 0;
        }
        C::Frstor_m108byte | C::Frstor_m94byte => {
            load_env(&mut f, a);
            for i in 0..8 {
                let p = f.phys(i);
                f.c.fpr[p] = get_reg(a, env + 10 * i);
            }
        }
        C::Fxsave_m512byte | C::Fxsave64_m512byte => {
            a[..160].fill(0);
            put16(a, 0, f.c.fcw);
            put16(a, 2, f.c.fsw);
            a[4] = f.c.ftw;
            a[24..28].copy_from_slice(&f.c.mxcsr.to_le_bytes());
            a[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
            for i in 0..8 {
                let p = f.phys(i);
                put_reg(a, 32 + 16 * i, f.c.fpr[p]);
            }
            for (x, v) in f.c.xmm.iter().enumerate() {
                a[160 + 16 * x..168 + 16 * x].copy_from_slice(&v[0].to_le_bytes());
                a[168 + 16 * x..176 + 16 * x].copy_from_slice(&v[1].to_le_bytes());
            }
        }
        C::Fxrstor_m512byte | C::Fxrstor64_m512byte => {
            f.c.fcw = control_word(get16(a, 0));
            f.c.fsw = get16(a, 2);
            f.c.ftw = a[4];
            let mut m = [0u8; 4];
            m.copy_from_slice(&a[24..28]);
            f.c.mxcsr = u32::from_le_bytes(m) & 0xffff;
            for i in 0..8 {
                let p = f.phys(i);
                f.c.fpr[p] = get_reg(a, 32 + 16 * i);
            }
            for x in 0..16 {
                let mut lo = [0u8; 8];
                let mut hi = [0u8; 8];
                lo.copy_from_slice(&a[160 + 16 * x..168 + 16 * x]);
                hi.copy_from_slice(&a[168 + 16 * x..176 + 16 * x]);
                f.c.xmm[x] = [u64::from_le_bytes(lo), u64::from_le_bytes(hi)];
            }
        }
        _ => {}
    }
}
