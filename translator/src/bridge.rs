//! Trap stubs: guest addresses (in ld-nc's bridge region) that stand for native host functions.
//! This module owns the description of one such function ([`NativeFn`]: its host address and the
//! [`abi::CallPlan`] that moves its arguments and result) and the table the dispatcher asks
//! before decoding a block ([`TrapTable`], set with [`crate::Translator::set_traps`]).
//!
//! When the dispatcher is asked for the translation of a trap stub it does not decode x86 there:
//! the backend emits the native call itself ([`crate::Backend::translate_native`]) — arguments
//! moved by the plan, the host function called through a fixed routine outside the code cache
//! (see "Native calls" in the `dispatch` module docs), the result moved back, then the x86 `ret`.

use std::sync::Arc;

/// A bridged host function, as a trap stub names it.
#[derive(Debug)]
pub struct NativeFn {
    /// Address of the host function.
    pub host: u64,
    /// How its arguments and result travel between the guest state and the host ABI
    /// (`abi::plan_call` of its signature, with the concrete variadic types for a variadic one).
    pub plan: abi::CallPlan,
    /// Symbol name, for messages and profiles.
    pub name: String,
}

/// Which guest addresses are trap stubs. Asked by the dispatcher (under its lock) before it
/// decodes a block; an address it names is never decoded as x86.
pub trait TrapTable: Send + Sync {
    /// The native function whose trap stub is at guest address `pc`, if any.
    fn native_at(&self, pc: u64) -> Option<Arc<NativeFn>>;
}

impl std::fmt::Debug for dyn TrapTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrapTable")
    }
}

/// Apply the result moves of `plan` (host → guest) to the guest state: `x` holds a0/a1 and `f`
/// the raw bits of fa0/fa1 (riscv64 host registers 10 and 11 of each file) after the call. XMM
/// registers receiving a result get their other bits cleared (x86 leaves them unspecified); a
/// `long double` result is pushed onto the x87 stack as ST0.
pub fn apply_result(cpu: &mut crate::CpuState, plan: &abi::CallPlan, x: [u64; 2], f: [u64; 2]) {
    use abi::{Ext, GuestLoc, HostLoc, Loc};
    for m in &plan.ret {
        if let Loc::Guest(GuestLoc::Xmm { reg, .. }) = m.to {
            if let Some(r) = cpu.xmm.get_mut(usize::from(reg)) {
                *r = [0, 0];
            }
        }
    }
    for m in &plan.ret {
        let src = |h: HostLoc, next: bool| -> u64 {
            match h {
                HostLoc::X(n) => x.get(usize::from(n.wrapping_sub(10)) + usize::from(next)).copied().unwrap_or(0),
                HostLoc::F(n) => f.get(usize::from(n.wrapping_sub(10))).copied().unwrap_or(0),
                HostLoc::Stack(_) => 0,
            }
        };
        let Loc::Host(h) = m.from else { continue };
        let v = src(h, false);
        match (m.to, m.ext) {
            (Loc::Guest(GuestLoc::St0), Ext::F128ToF80) => {
                let bits = u128::from(v) | u128::from(src(h, true)) << 64;
                let e = abi::ldouble::f128_to_f80(bits);
                let mut m8 = [0u8; 8];
                m8.copy_from_slice(&e[..8]);
                let top = (usize::from(cpu.fsw >> 11 & 7) + 7) & 7;
                cpu.fsw = (cpu.fsw & !0x3800) | ((top as u16) << 11);
                cpu.fpr[top] = [u64::from_le_bytes(m8), u64::from(u16::from_le_bytes([e[8], e[9]]))];
                cpu.ftw |= 1 << top;
            }
            (Loc::Guest(GuestLoc::Gpr { reg, byte }), ext) => {
                if let Some(r) = cpu.gpr.get_mut(usize::from(reg)) {
                    *r = insert(*r, v, byte, ext);
                }
            }
            (Loc::Guest(GuestLoc::Xmm { reg, byte }), ext) => {
                let half = usize::from(byte / 8);
                if let Some(r) = cpu.xmm.get_mut(usize::from(reg)).and_then(|x| x.get_mut(half)) {
                    *r = insert(*r, v, byte % 8, ext);
                }
            }
            _ => {}
        }
    }
}

/// `old` with `v` (extended by `ext`) written at byte `byte`: how a plan's move lands in a
/// register or a lane (also the extension alone: `insert(0, v, 0, ext)`). ld-nc's callbacks use it
/// for the opposite direction's moves.
pub fn insert(old: u64, v: u64, byte: u8, ext: abi::Ext) -> u64 {
    use abi::Ext;
    let (bits, full) = match ext {
        Ext::Zext(n) => (u32::from(n), (v & mask(u32::from(n)))),
        Ext::Sext(n) => (64, ((v << (64 - u32::from(n))) as i64 >> (64 - u32::from(n))) as u64),
        Ext::Bits(n) => (u32::from(n), v & mask(u32::from(n))),
        Ext::F32 => (32, v & mask(32)),
        _ => (64, v),
    };
    let shift = 8 * u32::from(byte);
    match ext {
        // Zero- and sign-extensions replace the whole register (x86 32-bit writes zero the top).
        Ext::Zext(_) | Ext::Sext(_) | Ext::Copy64 | Ext::F64 if byte == 0 => full,
        _ if shift >= 64 => old,
        _ => {
            let m = mask(bits.min(64 - shift)) << shift;
            (old & !m) | ((full << shift) & m)
        }
    }
}

fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sig: &str) -> abi::CallPlan {
        abi::plan_call(&abi::parse_sig(sig).expect("sig"), &[]).expect("plan")
    }

    #[test]
    fn int_result_is_zero_extended_into_rax() {
        let mut cpu = crate::CpuState::default();
        cpu.gpr[0] = u64::MAX;
        apply_result(&mut cpu, &plan("()->i32"), [0xffff_ffff_ffff_fffe, 7], [0, 0]);
        assert_eq!(cpu.gpr[0], 0xffff_fffe);
    }

    #[test]
    fn float_pair_struct_lands_in_one_xmm_and_clears_the_rest() {
        let mut cpu = crate::CpuState::default();
        cpu.xmm[0] = [u64::MAX, u64::MAX];
        let boxed = |v: f32| 0xffff_ffff_0000_0000 | u64::from(v.to_bits());
        apply_result(&mut cpu, &plan("()->{8:4:f32@0,f32@4}"), [0, 0], [boxed(1.5), boxed(-2.0)]);
        assert_eq!(cpu.xmm[0], [u64::from(1.5f32.to_bits()) | u64::from((-2.0f32).to_bits()) << 32, 0]);
    }

    #[test]
    fn long_double_result_is_pushed_as_st0() {
        let mut cpu = crate::CpuState::default();
        let one = abi::ldouble::f80_to_f128([0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        apply_result(&mut cpu, &plan("()->ld"), [one as u64, (one >> 64) as u64], [0, 0]);
        assert_eq!(cpu.fsw >> 11 & 7, 7);
        assert_eq!(cpu.fpr[7], [1 << 63, 0x3fff]);
        assert_eq!(cpu.ftw, 0x80);
    }
}
