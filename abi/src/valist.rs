//! `va_list` on both sides, as data and as the walk `va_arg` performs.
//!
//! x86-64 (SysV §3.5.7): `va_list` is `__va_list_tag[1]`, a 24-byte struct — `gp_offset` and
//! `fp_offset` into a 176-byte register save area (6 GPRs × 8, then 8 XMMs × 16) and an overflow
//! pointer into the stack arguments. riscv64 LP64D: `va_list` is a plain pointer that walks 8-byte
//! slots (integer and floating-point varargs alike, since variadic FP travels in integer
//! registers), 2×XLEN-aligned values starting on a 16-byte boundary.
//!
//! So a host `va_list` becomes a guest one with no types at all: mark the guest registers used up
//! and point the overflow area at the host slots. The other way needs the types (from a format
//! string) to know which area each guest argument sits in; [`GuestVaList::next`] gives its address.

use crate::plan::PlanError;
use crate::types::Ty;

/// Size of x86-64 `__va_list_tag`.
pub const GUEST_VA_LIST_SIZE: usize = 24;
/// Field offsets in `__va_list_tag`.
pub const GP_OFFSET: usize = 0;
pub const FP_OFFSET: usize = 4;
pub const OVERFLOW_ARG_AREA: usize = 8;
pub const REG_SAVE_AREA: usize = 16;
/// End of the GPR part and of the whole register save area.
pub const GP_LIMIT: u32 = 48;
pub const FP_LIMIT: u32 = 176;

/// x86-64 `__va_list_tag`, field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestVaList {
    pub gp_offset: u32,
    pub fp_offset: u32,
    pub overflow_arg_area: u64,
    pub reg_save_area: u64,
}

impl GuestVaList {
    /// Decode the 24 bytes of a guest `va_list`.
    pub fn from_bytes(b: &[u8; GUEST_VA_LIST_SIZE]) -> GuestVaList {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        GuestVaList {
            gp_offset: u32_at(GP_OFFSET),
            fp_offset: u32_at(FP_OFFSET),
            overflow_arg_area: u64_at(OVERFLOW_ARG_AREA),
            reg_save_area: u64_at(REG_SAVE_AREA),
        }
    }

    pub fn to_bytes(&self) -> [u8; GUEST_VA_LIST_SIZE] {
        let mut b = [0u8; GUEST_VA_LIST_SIZE];
        b[GP_OFFSET..GP_OFFSET + 4].copy_from_slice(&self.gp_offset.to_le_bytes());
        b[FP_OFFSET..FP_OFFSET + 4].copy_from_slice(&self.fp_offset.to_le_bytes());
        b[OVERFLOW_ARG_AREA..OVERFLOW_ARG_AREA + 8].copy_from_slice(&self.overflow_arg_area.to_le_bytes());
        b[REG_SAVE_AREA..REG_SAVE_AREA + 8].copy_from_slice(&self.reg_save_area.to_le_bytes());
        b
    }

    /// A guest `va_list` reading a host (riscv64) argument area: both register areas are marked
    /// consumed, so every `va_arg` reads the next 8-byte slot of the overflow area — exactly the
    /// riscv64 layout. Only `long double` differs (binary128 there, x87 here) and must not be read
    /// this way.
    pub fn over_host_area(host_area: u64) -> GuestVaList {
        GuestVaList { gp_offset: GP_LIMIT, fp_offset: FP_LIMIT, overflow_arg_area: host_area, reg_save_area: 0 }
    }

    /// Where the next argument of type `t` is, advancing the list as `va_arg` does. Scalars and
    /// pointers only (what format strings consume).
    pub fn next(&mut self, t: &Ty) -> Result<u64, PlanError> {
        match t {
            Ty::I(_) | Ty::U(_) | Ty::Char | Ty::Ptr | Ty::FnPtr(_) => {
                if self.gp_offset < GP_LIMIT {
                    let a = self.reg_save_area.wrapping_add(u64::from(self.gp_offset));
                    self.gp_offset += 8;
                    return Ok(a);
                }
                Ok(self.overflow(8, 8))
            }
            Ty::F32 | Ty::F64 => {
                if self.fp_offset < FP_LIMIT {
                    let a = self.reg_save_area.wrapping_add(u64::from(self.fp_offset));
                    self.fp_offset += 16;
                    return Ok(a);
                }
                Ok(self.overflow(8, 8))
            }
            Ty::LongDouble => Ok(self.overflow(16, 16)),
            _ => Err(PlanError("va_arg of this type is not walked")),
        }
    }

    fn overflow(&mut self, size: u64, align: u64) -> u64 {
        let a = self.overflow_arg_area.wrapping_add(align - 1) & !(align - 1);
        self.overflow_arg_area = a.wrapping_add(size.div_ceil(8) * 8);
        a
    }
}

/// The riscv64 argument area for variadic values of these types: each value's byte offset, and
/// the total size (16-aligned). A host `va_list` is the address of the area.
pub fn host_area_layout(types: &[Ty]) -> Result<(Vec<u32>, u32), PlanError> {
    let mut off = 0u32;
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let (size, align) = match t {
            Ty::I(_) | Ty::U(_) | Ty::Char | Ty::Ptr | Ty::FnPtr(_) | Ty::F32 | Ty::F64 => (8, 8),
            Ty::LongDouble | Ty::F128 => (16, 16),
            _ => return Err(PlanError("variadic argument of this type is not laid out")),
        };
        off = off.next_multiple_of(align);
        out.push(off);
        off += size;
    }
    Ok((out, off.next_multiple_of(16)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let v = GuestVaList { gp_offset: 16, fp_offset: 64, overflow_arg_area: 0x7fff_0000_1000, reg_save_area: 0x7fff_0000_0f00 };
        assert_eq!(GuestVaList::from_bytes(&v.to_bytes()), v);
        assert_eq!(v.to_bytes()[8..16], 0x7fff_0000_1000u64.to_le_bytes());
    }

    #[test]
    fn va_arg_walk_follows_sysv() {
        // After `f(const char *fmt, ...)`: one GPR used, no XMM.
        let mut v = GuestVaList { gp_offset: 8, fp_offset: 48, overflow_arg_area: 0x2000, reg_save_area: 0x1000 };
        assert_eq!(v.next(&Ty::I(32)), Ok(0x1008));
        assert_eq!(v.next(&Ty::F64), Ok(0x1030));
        assert_eq!(v.next(&Ty::F64), Ok(0x1040));
        for _ in 0..4 {
            v.next(&Ty::Ptr).expect("gpr");
        }
        // GPRs exhausted: the next integer comes from the overflow area.
        assert_eq!(v.next(&Ty::I(64)), Ok(0x2000));
        // long double: always memory, 16-aligned.
        assert_eq!(v.next(&Ty::LongDouble), Ok(0x2010));
        assert_eq!(v.next(&Ty::I(32)), Ok(0x2020));
    }

    #[test]
    fn guest_list_over_host_area_reads_consecutive_slots() {
        let (offs, total) = host_area_layout(&[Ty::I(32), Ty::F64, Ty::Ptr]).expect("layout");
        assert_eq!(offs, vec![0, 8, 16]);
        assert_eq!(total, 32);
        let mut v = GuestVaList::over_host_area(0x5000);
        assert_eq!(v.next(&Ty::I(32)), Ok(0x5000));
        assert_eq!(v.next(&Ty::F64), Ok(0x5008));
        assert_eq!(v.next(&Ty::Ptr), Ok(0x5010));
        let (offs, _) = host_area_layout(&[Ty::I(32), Ty::LongDouble]).expect("layout");
        assert_eq!(offs, vec![0, 16]);
    }
}
