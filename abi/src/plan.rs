//! The two calling conventions as code, and the move plans between them.
//!
//! [`plan_call`] places a signature's arguments by the SysV x86-64 rules (guest) and by the
//! riscv64 LP64D rules (host) and returns the list of moves that take the guest's state at the
//! call of a bridged function to the host call, and the host's result back. [`plan_callback`] is
//! the reverse, for a guest function called by native code. The translator and the generic bridge
//! path execute the moves; nothing here emits code.
//!
//! Guest locations use x86 register encoding numbers (RAX=0, RCX=1, RDX=2, RBX=3, RSP=4, RBP=5,
//! RSI=6, RDI=7, R8..R15=8..15), the same order as `translator::CpuState::gpr`; guest stack
//! offsets are from RSP at the callee's entry, so 0 holds the return address and the first stack
//! argument is at 8. Host locations use riscv64 register numbers (a0 = x10, fa0 = f10); host stack
//! offsets are from sp at the call.

use crate::types::{Aggregate, Signature, Ty};
use core::fmt;

/// Where a value lives on the guest side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestLoc {
    /// A general register, `byte` bytes into it (non-zero only for parts of small aggregates).
    Gpr { reg: u8, byte: u8 },
    /// The low 64 bits of an XMM register, `byte` bytes in.
    Xmm { reg: u8, byte: u8 },
    /// Memory at RSP (at entry) + offset.
    Stack(i32),
    /// The x87 top of stack (`long double` results).
    St0,
}

/// Where a value lives on the host side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostLoc {
    /// Integer register `x<n>` (a0 = 10).
    X(u8),
    /// Floating-point register `f<n>` (fa0 = 10).
    F(u8),
    /// Memory at sp (at the call) + offset.
    Stack(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    Guest(GuestLoc),
    Host(HostLoc),
}

/// How a value changes on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ext {
    /// 64 bits unchanged.
    Copy64,
    /// The low `n` bits (8, 16 or 32), inserted at the destination's byte; other bits untouched
    /// (guest) or undefined (host).
    Bits(u8),
    /// The low `n` bits, sign-extended to 64.
    Sext(u8),
    /// The low `n` bits, zero-extended to 64.
    Zext(u8),
    /// A `float`: NaN-boxed in a host FP register, the low 32 bits of an XMM lane on the guest.
    F32,
    /// A `double`.
    F64,
    /// x87 80-bit in guest memory → low / high 64 bits of the binary128 value.
    F80ToF128Lo,
    F80ToF128Hi,
    /// binary128 whose low half is at `from` and high half in the next register (or the next 8
    /// stack bytes) → x87 80-bit at `to`.
    F128ToF80,
    /// The destination receives the address of the source memory (an aggregate passed by
    /// reference on the host is the guest's own stack copy).
    Addr,
}

/// One step of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    pub from: Loc,
    pub to: Loc,
    pub ext: Ext,
}

/// The moves for one call across the boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallPlan {
    /// Argument moves, in order (no move overwrites a later source: sources and destinations are
    /// in different worlds).
    pub args: Vec<Move>,
    /// Result moves, after the call.
    pub ret: Vec<Move>,
    /// Bytes of outgoing host stack arguments (16-aligned).
    pub host_stack: u32,
    /// Bytes of guest stack arguments above the return address.
    pub guest_stack: u32,
    /// For a variadic guest callee: the value AL must hold (number of vector registers used).
    pub guest_al: Option<u8>,
}

/// A signature the plans cannot carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub &'static str);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// SysV x86-64 integer argument registers, in order: RDI, RSI, RDX, RCX, R8, R9.
pub const SYSV_INT_ARGS: [u8; 6] = [7, 6, 2, 1, 8, 9];
const A0: u8 = 10;
const FA0: u8 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class8 {
    Integer,
    Sse,
}

fn leaf_is_fp(t: &Ty) -> bool {
    matches!(t, Ty::F32 | Ty::F64)
}

/// SysV classification of an aggregate into eightbytes; `None` means MEMORY.
fn sysv_classes(a: &Aggregate) -> Option<Vec<Class8>> {
    if a.size > 16 || a.size == 0 || a.leaves.iter().any(|l| l.ty.has_long_double()) {
        return None;
    }
    let n = a.size.div_ceil(8) as usize;
    let mut classes: Vec<Option<Class8>> = vec![None; n];
    for l in &a.leaves {
        // An unaligned field forces MEMORY (packed structs).
        let sz = l.ty.size();
        if sz > 0 && l.offset % sz.min(8) != 0 {
            return None;
        }
        let i = (l.offset / 8) as usize;
        let c = if leaf_is_fp(&l.ty) { Class8::Sse } else { Class8::Integer };
        let slot = classes.get_mut(i)?;
        *slot = Some(match (*slot, c) {
            (Some(Class8::Integer), _) | (_, Class8::Integer) => Class8::Integer,
            _ => Class8::Sse,
        });
    }
    Some(classes.into_iter().map(|c| c.unwrap_or(Class8::Sse)).collect())
}

/// Guest placement of one value.
#[derive(Clone, Debug)]
enum GPlace {
    /// One location per eightbyte (a scalar has one).
    Regs(Vec<GuestLoc>),
    Mem(i32),
}

#[derive(Default)]
struct Guest {
    int: usize,
    sse: u8,
    stack: i32,
}

impl Guest {
    fn new() -> Guest {
        Guest { int: 0, sse: 0, stack: 8 }
    }

    fn mem(&mut self, size: u32, align: u32) -> GPlace {
        let align = align.max(8) as i32;
        self.stack = (self.stack - 8 + align - 1) / align * align + 8;
        let at = self.stack;
        self.stack += (size.max(1).div_ceil(8) * 8) as i32;
        GPlace::Mem(at)
    }

    fn place(&mut self, t: &Ty) -> Result<GPlace, PlanError> {
        let classes = match t {
            Ty::Void => return Err(PlanError("void argument")),
            Ty::LongDouble => return Ok(self.mem(16, 16)),
            // SSE + SSEUP: the whole XMM register.
            Ty::F128 if self.sse < 8 => {
                self.sse += 1;
                let reg = self.sse - 1;
                return Ok(GPlace::Regs(vec![GuestLoc::Xmm { reg, byte: 0 }, GuestLoc::Xmm { reg, byte: 8 }]));
            }
            Ty::F128 => return Ok(self.mem(16, 16)),
            Ty::F32 | Ty::F64 => vec![Class8::Sse],
            Ty::Agg(a) if a.leaves.iter().any(|l| l.ty == Ty::F128) => {
                return Err(PlanError("binary128 inside a by-value aggregate"))
            }
            Ty::Agg(a) => match sysv_classes(a) {
                Some(c) => c,
                None => return Ok(self.mem(a.size, a.align)),
            },
            _ => vec![Class8::Integer],
        };
        let need_int = classes.iter().filter(|c| **c == Class8::Integer).count();
        let need_sse = classes.len() - need_int;
        if self.int + need_int > 6 || usize::from(self.sse) + need_sse > 8 {
            let (size, align) = match t {
                Ty::Agg(a) => (a.size, a.align),
                _ => (8, 8),
            };
            return Ok(self.mem(size, align));
        }
        let mut locs = Vec::new();
        for c in classes {
            match c {
                Class8::Integer => {
                    locs.push(GuestLoc::Gpr { reg: SYSV_INT_ARGS[self.int], byte: 0 });
                    self.int += 1;
                }
                Class8::Sse => {
                    locs.push(GuestLoc::Xmm { reg: self.sse, byte: 0 });
                    self.sse += 1;
                }
            }
        }
        Ok(GPlace::Regs(locs))
    }
}

/// Host placement of one value.
#[derive(Clone, Debug)]
enum HPlace {
    /// One location per XLEN word, integer convention (X registers and/or stack slots).
    Words(Vec<HostLoc>),
    /// Hardware FP convention: one location per leaf of the aggregate (or the scalar itself).
    Flat(Vec<HostLoc>),
    /// Passed by reference: the address goes here.
    ByRef(HostLoc),
}

struct Host {
    x: u8,
    f: u8,
    stack: u32,
}

impl Host {
    fn word(&mut self) -> HostLoc {
        if self.x < 8 {
            self.x += 1;
            HostLoc::X(A0 + self.x - 1)
        } else {
            self.stack += 8;
            HostLoc::Stack(self.stack - 8)
        }
    }

    fn stack_words(&mut self, n: u32, align: u32) -> Vec<HostLoc> {
        self.stack = self.stack.next_multiple_of(align.clamp(8, 16));
        (0..n).map(|_| self.word()).collect()
    }

    fn place(&mut self, t: &Ty, variadic: bool) -> Result<HPlace, PlanError> {
        let fp_ok = !variadic;
        match t {
            Ty::Void => Err(PlanError("void argument")),
            Ty::F32 | Ty::F64 if fp_ok && self.f < 8 => {
                self.f += 1;
                Ok(HPlace::Flat(vec![HostLoc::F(FA0 + self.f - 1)]))
            }
            Ty::LongDouble | Ty::F128 => Ok(HPlace::Words(self.pair(variadic, 16))),
            Ty::Agg(a) if a.size > 16 => Ok(HPlace::ByRef(self.word())),
            Ty::Agg(a) => {
                if fp_ok && !a.union {
                    if let Some(flat) = self.flatten(a) {
                        return Ok(flat);
                    }
                }
                if a.size <= 8 {
                    Ok(HPlace::Words(vec![self.word()]))
                } else {
                    Ok(HPlace::Words(self.pair(variadic && a.align >= 16, a.align)))
                }
            }
            _ => Ok(HPlace::Words(vec![self.word()])),
        }
    }

    /// Two XLEN words: in registers, split register/stack, or on the stack (aligned to the type,
    /// at least XLEN). Variadic 2×XLEN-aligned values start at an even register.
    fn pair(&mut self, even: bool, align: u32) -> Vec<HostLoc> {
        if even && self.x % 2 == 1 && self.x < 8 {
            self.x += 1;
        }
        if self.x >= 8 {
            return self.stack_words(2, align);
        }
        vec![self.word(), self.word()]
    }

    /// LP64D hardware floating-point calling convention for a small struct: one FP field, two FP
    /// fields, or one FP and one integer field, when enough registers of each kind remain.
    fn flatten(&mut self, a: &Aggregate) -> Option<HPlace> {
        let leaves = &a.leaves;
        if leaves.is_empty() || leaves.len() > 2 || !leaves.iter().any(|l| leaf_is_fp(&l.ty)) {
            return None;
        }
        if leaves.iter().any(|l| !leaf_is_fp(&l.ty) && l.ty.size() > 8) {
            return None;
        }
        let nf = leaves.iter().filter(|l| leaf_is_fp(&l.ty)).count() as u8;
        let nx = leaves.len() as u8 - nf;
        if self.f + nf > 8 || self.x + nx > 8 {
            return None;
        }
        let mut locs = Vec::new();
        for l in leaves {
            if leaf_is_fp(&l.ty) {
                locs.push(HostLoc::F(FA0 + self.f));
                self.f += 1;
            } else {
                locs.push(HostLoc::X(A0 + self.x));
                self.x += 1;
            }
        }
        Some(HPlace::Flat(locs))
    }
}

/// The extension riscv64 wants for a scalar in an X register.
fn host_ext(t: &Ty) -> Ext {
    match t {
        Ty::I(8) => Ext::Sext(8),
        Ty::U(8) | Ty::Char => Ext::Zext(8),
        Ty::I(16) => Ext::Sext(16),
        Ty::U(16) => Ext::Zext(16),
        // LP64D: 32-bit values are sign-extended whatever their signedness.
        Ty::I(32) | Ty::U(32) => Ext::Sext(32),
        _ => Ext::Copy64,
    }
}

/// The extension a guest callee compiled by GCC/Clang expects for a scalar argument, or a guest
/// caller may rely on for a result (x86 32-bit writes zero the upper half).
fn guest_ext(t: &Ty) -> Ext {
    match t {
        Ty::I(8) | Ty::Char => Ext::Sext(8),
        Ty::U(8) => Ext::Zext(8),
        Ty::I(16) => Ext::Sext(16),
        Ty::U(16) => Ext::Zext(16),
        Ty::I(32) | Ty::U(32) => Ext::Zext(32),
        _ => Ext::Copy64,
    }
}

fn leaf_bits(t: &Ty) -> Ext {
    match t {
        Ty::F32 => Ext::F32,
        Ty::F64 => Ext::F64,
        _ => match t.size() {
            1 => Ext::Bits(8),
            2 => Ext::Bits(16),
            4 => Ext::Bits(32),
            _ => Ext::Copy64,
        },
    }
}

fn g_at(p: &GPlace, byte: u32) -> GuestLoc {
    match p {
        GPlace::Mem(at) => GuestLoc::Stack(*at + byte as i32),
        GPlace::Regs(locs) => {
            let i = (byte / 8) as usize;
            let b = (byte % 8) as u8;
            match locs.get(i).or(locs.last()) {
                Some(GuestLoc::Gpr { reg, byte }) => GuestLoc::Gpr { reg: *reg, byte: byte + b },
                Some(GuestLoc::Xmm { reg, byte }) => GuestLoc::Xmm { reg: *reg, byte: byte + b },
                Some(other) => *other,
                None => GuestLoc::Stack(0),
            }
        }
    }
}

/// Moves for one value between its guest and host places; `to_host` gives the direction.
fn value_moves(t: &Ty, g: &GPlace, h: &HPlace, to_host: bool, out: &mut Vec<Move>) -> Result<(), PlanError> {
    let mut push = |gl: GuestLoc, hl: HostLoc, ext: Ext| {
        let (from, to) = if to_host { (Loc::Guest(gl), Loc::Host(hl)) } else { (Loc::Host(hl), Loc::Guest(gl)) };
        out.push(Move { from, to, ext });
    };
    match (t, h) {
        (Ty::LongDouble, HPlace::Words(w)) => {
            let GPlace::Mem(at) = g else { return Err(PlanError("long double outside memory on the guest")) };
            let (Some(&lo), Some(&hi)) = (w.first(), w.get(1)) else { return Err(PlanError("long double needs two words")) };
            if to_host {
                push(GuestLoc::Stack(*at), lo, Ext::F80ToF128Lo);
                push(GuestLoc::Stack(*at), hi, Ext::F80ToF128Hi);
            } else {
                push(GuestLoc::Stack(*at), lo, Ext::F128ToF80);
            }
        }
        (Ty::F128, HPlace::Words(w)) => {
            for (i, hl) in w.iter().enumerate() {
                push(g_at(g, 8 * i as u32), *hl, Ext::Copy64);
            }
        }
        (Ty::Agg(_), HPlace::ByRef(loc)) => {
            let GPlace::Mem(at) = g else { return Err(PlanError("large aggregate outside memory on the guest")) };
            if !to_host {
                return Err(PlanError("by-reference aggregate argument to a guest callback"));
            }
            push(GuestLoc::Stack(*at), *loc, Ext::Addr);
        }
        (Ty::Agg(a), HPlace::Flat(locs)) => {
            for (l, hl) in a.leaves.iter().zip(locs) {
                let ext = match hl {
                    HostLoc::X(_) if to_host => host_ext(&l.ty),
                    _ => leaf_bits(&l.ty),
                };
                push(g_at(g, l.offset), *hl, ext);
            }
        }
        (Ty::Agg(a), HPlace::Words(w)) => {
            for (i, hl) in w.iter().enumerate() {
                let byte = 8 * i as u32;
                let rest = a.size.saturating_sub(byte);
                let ext = match rest {
                    0..=4 if !to_host => Ext::Bits(32),
                    _ => Ext::Copy64,
                };
                push(g_at(g, byte), *hl, ext);
            }
        }
        (_, HPlace::Flat(locs)) => {
            let Some(&hl) = locs.first() else { return Err(PlanError("no host location")) };
            push(g_at(g, 0), hl, if *t == Ty::F32 { Ext::F32 } else { Ext::F64 });
        }
        (_, HPlace::Words(w)) => {
            let Some(&hl) = w.first() else { return Err(PlanError("no host location")) };
            let ext = match t {
                // Variadic or FP-registers-exhausted floats travel as bits in X registers.
                Ty::F32 => Ext::Bits(32),
                Ty::F64 => Ext::Copy64,
                _ if to_host => host_ext(t),
                _ => guest_ext(t),
            };
            push(g_at(g, 0), hl, ext);
        }
        (_, HPlace::ByRef(_)) => return Err(PlanError("by-reference scalar")),
    }
    Ok(())
}

/// Whether a result is returned through a hidden pointer: on the guest (SysV MEMORY) and the host
/// (larger than 2×XLEN).
fn ret_in_memory(t: &Ty) -> (bool, bool) {
    match t {
        Ty::Agg(a) => (sysv_classes(a).is_none(), a.size > 16),
        _ => (false, false),
    }
}

fn build(sig: &Signature, variadic: &[Ty], to_host: bool) -> Result<CallPlan, PlanError> {
    let mut g = Guest::new();
    let mut h = Host { x: 0, f: 0, stack: 0 };
    let mut plan = CallPlan::default();
    let (g_mem, h_mem) = ret_in_memory(&sig.ret);
    if g_mem != h_mem {
        return Err(PlanError("aggregate result returned in memory on one side only"));
    }
    if g_mem {
        g.int = 1;
        h.x = 1;
        let m = if to_host {
            Move { from: Loc::Guest(GuestLoc::Gpr { reg: 7, byte: 0 }), to: Loc::Host(HostLoc::X(A0)), ext: Ext::Copy64 }
        } else {
            Move { from: Loc::Host(HostLoc::X(A0)), to: Loc::Guest(GuestLoc::Gpr { reg: 7, byte: 0 }), ext: Ext::Copy64 }
        };
        plan.args.push(m);
    }
    let fixed = sig.params.iter().map(|t| (t, false));
    let var = variadic.iter().map(|t| (t, true));
    for (t, is_var) in fixed.chain(var) {
        // C default argument promotion: a variadic float is a double.
        let t = if is_var && *t == Ty::F32 { &Ty::F64 } else { t };
        if matches!(t, Ty::VaList) {
            return Err(PlanError("va_list arguments need the va_list conversion"));
        }
        let gp = g.place(t)?;
        let hp = h.place(t, is_var)?;
        value_moves(t, &gp, &hp, to_host, &mut plan.args)?;
    }
    plan.host_stack = h.stack.next_multiple_of(16);
    plan.guest_stack = (g.stack - 8) as u32;
    if !to_host && (sig.varargs != crate::types::Varargs::None || !variadic.is_empty()) {
        plan.guest_al = Some(g.sse);
    }
    // The result travels the other way.
    match &sig.ret {
        Ty::Void => {}
        Ty::LongDouble => {
            let m = (Loc::Host(HostLoc::X(A0)), Loc::Guest(GuestLoc::St0));
            plan.ret.push(if to_host {
                Move { from: m.0, to: m.1, ext: Ext::F128ToF80 }
            } else {
                Move { from: m.1, to: m.0, ext: Ext::F80ToF128Lo }
            });
            if !to_host {
                plan.ret.push(Move { from: m.1, to: Loc::Host(HostLoc::X(A0 + 1)), ext: Ext::F80ToF128Hi });
            }
        }
        _ if g_mem => {
            let m = (Loc::Host(HostLoc::X(A0)), Loc::Guest(GuestLoc::Gpr { reg: 0, byte: 0 }));
            plan.ret.push(if to_host { Move { from: m.0, to: m.1, ext: Ext::Copy64 } } else { Move { from: m.1, to: m.0, ext: Ext::Copy64 } });
        }
        t => {
            // Results use the first registers of each kind: RAX/RDX, XMM0/XMM1; a0/a1, fa0/fa1.
            let gp = match t {
                Ty::F32 | Ty::F64 => GPlace::Regs(vec![GuestLoc::Xmm { reg: 0, byte: 0 }]),
                Ty::F128 => GPlace::Regs(vec![GuestLoc::Xmm { reg: 0, byte: 0 }, GuestLoc::Xmm { reg: 0, byte: 8 }]),
                Ty::Agg(a) => {
                    let classes = sysv_classes(a).ok_or(PlanError("aggregate result class"))?;
                    let (mut i, mut s) = (0u8, 0u8);
                    GPlace::Regs(
                        classes
                            .iter()
                            .map(|c| match c {
                                Class8::Integer => {
                                    i += 1;
                                    GuestLoc::Gpr { reg: if i == 1 { 0 } else { 2 }, byte: 0 }
                                }
                                Class8::Sse => {
                                    s += 1;
                                    GuestLoc::Xmm { reg: s - 1, byte: 0 }
                                }
                            })
                            .collect(),
                    )
                }
                _ => GPlace::Regs(vec![GuestLoc::Gpr { reg: 0, byte: 0 }]),
            };
            let hp = Host { x: 0, f: 0, stack: 0 }.place(t, false)?;
            // Results go host → guest for a bridged call, guest → host for a callback.
            let mut moves = Vec::new();
            value_moves(t, &gp, &hp, !to_host, &mut moves)?;
            if to_host {
                for m in &mut moves {
                    if let (Ext::Sext(32), Loc::Guest(_)) = (m.ext, m.to) {
                        m.ext = Ext::Zext(32);
                    }
                }
            }
            plan.ret = moves;
        }
    }
    Ok(plan)
}

/// The plan for a guest call of a bridged host function. `variadic` gives the types of the extra
/// arguments of this call (from the format string, for printf-like functions).
pub fn plan_call(sig: &Signature, variadic: &[Ty]) -> Result<CallPlan, PlanError> {
    build(sig, variadic, true)
}

/// The plan for native code calling a guest function (a callback): arguments host → guest,
/// result guest → host.
pub fn plan_callback(sig: &Signature) -> Result<CallPlan, PlanError> {
    if sig.varargs != crate::types::Varargs::None {
        return Err(PlanError("variadic callbacks are not planned"));
    }
    build(sig, &[], false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::parse_sig;

    fn g(reg: u8) -> Loc {
        Loc::Guest(GuestLoc::Gpr { reg, byte: 0 })
    }
    fn xmm(reg: u8, byte: u8) -> Loc {
        Loc::Guest(GuestLoc::Xmm { reg, byte })
    }
    fn x(n: u8) -> Loc {
        Loc::Host(HostLoc::X(n))
    }
    fn f(n: u8) -> Loc {
        Loc::Host(HostLoc::F(n))
    }
    fn mv(from: Loc, to: Loc, ext: Ext) -> Move {
        Move { from, to, ext }
    }
    fn plan(s: &str, var: &[Ty]) -> CallPlan {
        plan_call(&parse_sig(s).expect("sig"), var).expect("plan")
    }

    #[test]
    fn integers_map_rdi_order_with_extension() {
        let p = plan("(i32,u32,c8,u16,p,i64)->i32", &[]);
        assert_eq!(
            p.args,
            vec![
                mv(g(7), x(10), Ext::Sext(32)),
                mv(g(6), x(11), Ext::Sext(32)),
                mv(g(2), x(12), Ext::Zext(8)),
                mv(g(1), x(13), Ext::Zext(16)),
                mv(g(8), x(14), Ext::Copy64),
                mv(g(9), x(15), Ext::Copy64),
            ]
        );
        assert_eq!(p.ret, vec![mv(x(10), g(0), Ext::Zext(32))]);
    }

    #[test]
    fn seventh_integer_goes_from_guest_stack_to_a6() {
        let p = plan("(i64,i64,i64,i64,i64,i64,i64,i64,i64)->v", &[]);
        assert_eq!(p.args[6], mv(Loc::Guest(GuestLoc::Stack(8)), x(16), Ext::Copy64));
        assert_eq!(p.args[7], mv(Loc::Guest(GuestLoc::Stack(16)), x(17), Ext::Copy64));
        assert_eq!(p.args[8], mv(Loc::Guest(GuestLoc::Stack(24)), Loc::Host(HostLoc::Stack(0)), Ext::Copy64));
        assert_eq!(p.host_stack, 16);
        assert_eq!(p.guest_stack, 24);
    }

    #[test]
    fn floats_and_float_pair_struct() {
        let p = plan("(f32,f64)->f64", &[]);
        assert_eq!(p.args, vec![mv(xmm(0, 0), f(10), Ext::F32), mv(xmm(1, 0), f(11), Ext::F64)]);
        assert_eq!(p.ret, vec![mv(f(10), xmm(0, 0), Ext::F64)]);
        // {float,float}: one SSE eightbyte on x86-64, two FP registers on riscv64.
        let p = plan("({8:4:f32@0,f32@4})->{8:4:f32@0,f32@4}", &[]);
        assert_eq!(p.args, vec![mv(xmm(0, 0), f(10), Ext::F32), mv(xmm(0, 4), f(11), Ext::F32)]);
        assert_eq!(p.ret, vec![mv(f(10), xmm(0, 0), Ext::F32), mv(f(11), xmm(0, 4), Ext::F32)]);
    }

    #[test]
    fn mixed_struct_and_integer_struct() {
        // {double,int}: SSE + INTEGER on x86-64; fa0 + a0 on riscv64.
        let p = plan("({16:8:f64@0,i32@8})->v", &[]);
        assert_eq!(p.args, vec![mv(xmm(0, 0), f(10), Ext::F64), mv(g(7), x(10), Ext::Sext(32))]);
        // {long,long}: RDI,RSI → a0,a1 word by word.
        let p = plan("({16:8:i64@0,i64@8})->v", &[]);
        assert_eq!(p.args, vec![mv(g(7), x(10), Ext::Copy64), mv(g(6), x(11), Ext::Copy64)]);
        // A union never uses FP registers on riscv64.
        let p = plan("(u{8:8:i64@0,f64@0})->v", &[]);
        assert_eq!(p.args, vec![mv(g(7), x(10), Ext::Copy64)]);
    }

    #[test]
    fn large_struct_by_reference_and_memory_return() {
        let p = plan("({24:8:i64@0,i64@8,i64@16})->v", &[]);
        assert_eq!(p.args, vec![mv(Loc::Guest(GuestLoc::Stack(8)), x(10), Ext::Addr)]);
        let p = plan("(i32)->{32:8}", &[]);
        assert_eq!(p.args[0], mv(g(7), x(10), Ext::Copy64));
        assert_eq!(p.args[1], mv(g(6), x(11), Ext::Sext(32)));
        assert_eq!(p.ret, vec![mv(x(10), g(0), Ext::Copy64)]);
    }

    #[test]
    fn long_double_memory_to_register_pair() {
        let p = plan("(ld,i32)->ld", &[]);
        let at = Loc::Guest(GuestLoc::Stack(8));
        assert_eq!(
            p.args,
            vec![mv(at, x(10), Ext::F80ToF128Lo), mv(at, x(11), Ext::F80ToF128Hi), mv(g(7), x(12), Ext::Sext(32))]
        );
        assert_eq!(p.ret, vec![mv(x(10), Loc::Guest(GuestLoc::St0), Ext::F128ToF80)]);
    }

    #[test]
    fn variadic_doubles_go_to_integer_registers() {
        // printf("%d %f", i, d): the double rides in XMM0 on the guest, a2 on the host.
        let p = plan("(p,...printf1)->i32", &[Ty::I(32), Ty::F64]);
        assert_eq!(
            p.args,
            vec![mv(g(7), x(10), Ext::Copy64), mv(g(6), x(11), Ext::Sext(32)), mv(xmm(0, 0), x(12), Ext::Copy64)]
        );
        // A variadic long double starts at an even register: a1 is skipped.
        let p = plan("(p,...printf1)->i32", &[Ty::LongDouble]);
        assert_eq!(p.args[1].to, x(12));
        assert_eq!(p.args[2].to, x(13));
    }

    #[test]
    fn printf_plan_from_the_format_string() {
        let var = crate::format::printf_args(b"%s=%.3f (%ld)\n").expect("format");
        let p = plan("(p,...printf1)->i32", &var);
        assert_eq!(
            p.args,
            vec![mv(g(7), x(10), Ext::Copy64), mv(g(6), x(11), Ext::Copy64), mv(xmm(0, 0), x(12), Ext::Copy64), mv(g(2), x(13), Ext::Copy64)]
        );
    }

    #[test]
    fn stack_arguments_keep_their_alignment() {
        // Eight words fill a0-a7; then {long,long} (align 8) takes sp+0 and sp+8, the i32 sp+16,
        // and the long double (align 16) skips to sp+32.
        let p = plan("(i64,i64,i64,i64,i64,i64,i64,i64,{16:8:i64@0,i64@8},i32,ld)->v", &[]);
        let host: Vec<Loc> = p.args.iter().skip(8).map(|m| m.to).collect();
        let st = |o| Loc::Host(HostLoc::Stack(o));
        assert_eq!(host, vec![st(0), st(8), st(16), st(32), st(40)]);
        assert_eq!(p.host_stack, 48);
    }

    #[test]
    fn fp_registers_exhausted_fall_back_to_integer_registers() {
        let p = plan("(f64,f64,f64,f64,f64,f64,f64,f64,f64)->v", &[]);
        assert_eq!(p.args[7], mv(xmm(7, 0), f(17), Ext::F64));
        assert_eq!(p.args[8], mv(Loc::Guest(GuestLoc::Stack(8)), x(10), Ext::Copy64));
    }

    #[test]
    fn callback_moves_host_to_guest() {
        let p = plan_callback(&parse_sig("(p,i32,f64)->i32").expect("sig")).expect("plan");
        assert_eq!(p.args, vec![mv(x(10), g(7), Ext::Copy64), mv(x(11), g(6), Ext::Zext(32)), mv(f(10), xmm(0, 0), Ext::F64)]);
        assert_eq!(p.ret, vec![mv(g(0), x(10), Ext::Sext(32))]);
        assert_eq!(p.guest_al, None);
    }

    #[test]
    fn binary128_is_one_xmm_on_guest_and_a_pair_on_host() {
        let p = plan("(f64,f128)->f128", &[]);
        assert_eq!(p.args, vec![mv(xmm(0, 0), f(10), Ext::F64), mv(xmm(1, 0), x(10), Ext::Copy64), mv(xmm(1, 8), x(11), Ext::Copy64)]);
        assert_eq!(p.ret, vec![mv(x(10), xmm(0, 0), Ext::Copy64), mv(x(11), xmm(0, 8), Ext::Copy64)]);
    }

    #[test]
    fn packed_struct_is_memory_on_guest() {
        // {char c; int i;} packed: i at offset 1 is unaligned, so SysV passes it in memory.
        let p = plan("({5:1:c8@0,i32@1})->v", &[]);
        assert_eq!(p.args, vec![mv(Loc::Guest(GuestLoc::Stack(8)), x(10), Ext::Copy64)]);
    }
}
