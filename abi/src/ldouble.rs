//! `long double` across the boundary: x87 80-bit extended (guest) ⇄ IEEE binary128 (host).
//!
//! Both formats have a sign bit and a 15-bit exponent with bias 16383, so only the significand
//! changes: x87 keeps an explicit integer bit and 63 fraction bits, binary128 an implicit one and
//! 112 fraction bits. Widening is exact; narrowing rounds to nearest, ties to even (the x87
//! default rounding), and a carry out of the significand moves into the exponent (up to infinity).
//! These are the helpers behind the plans' `F80ToF128*` and `F128ToF80` moves.

/// An x87 extended value as stored in memory: 8 bytes of significand then sign and exponent (10
/// bytes, little-endian; the 6 padding bytes of a 16-byte slot are not part of it).
pub type F80 = [u8; 10];

const EXP_MASK: u16 = 0x7fff;
const INT_BIT: u64 = 1 << 63;
const FRAC_SHIFT: u32 = 112 - 63;

/// Widen x87 extended to binary128 bits (exact). Unnormal encodings (exponent set, integer bit
/// clear), which the x87 itself rejects, become the default quiet NaN.
pub fn f80_to_f128(v: F80) -> u128 {
    let mut m = [0u8; 8];
    m.copy_from_slice(&v[..8]);
    let mant = u64::from_le_bytes(m);
    let se = u16::from_le_bytes([v[8], v[9]]);
    let sign = u128::from(se >> 15) << 127;
    let exp = se & EXP_MASK;
    let frac = u128::from(mant & !INT_BIT) << FRAC_SHIFT;
    let int_bit = mant & INT_BIT != 0;
    if exp == 0 {
        // Zero or denormal: the same value range in both formats (pseudo-denormals, with the
        // integer bit set, mean exponent 1).
        if int_bit {
            return sign | (1u128 << 112) | frac;
        }
        return sign | frac;
    }
    if !int_bit {
        return sign | (u128::from(EXP_MASK) << 112) | (1u128 << 111);
    }
    sign | (u128::from(exp) << 112) | frac
}

/// Narrow binary128 bits to x87 extended, rounding to nearest even.
pub fn f128_to_f80(bits: u128) -> F80 {
    let sign = ((bits >> 127) as u16) << 15;
    let exp = ((bits >> 112) as u16) & EXP_MASK;
    let frac = bits & ((1u128 << 112) - 1);
    let (exp, mant) = if exp == EXP_MASK {
        // Infinity keeps a zero fraction; a NaN keeps its top fraction bits (and stays a NaN).
        let f = (frac >> FRAC_SHIFT) as u64;
        let f = if frac != 0 && f == 0 { 1 << 62 } else { f };
        (EXP_MASK, INT_BIT | f)
    } else {
        // Significand with the integer bit (clear for zero and denormals).
        let full = if exp == 0 { frac } else { (1u128 << 112) | frac };
        let keep = full >> FRAC_SHIFT;
        let rest = full & ((1u128 << FRAC_SHIFT) - 1);
        let half = 1u128 << (FRAC_SHIFT - 1);
        let up = rest > half || (rest == half && keep & 1 == 1);
        let mut mant = keep + u128::from(up);
        let mut exp = exp;
        if mant >> 64 != 0 {
            // Carry out of the significand: 1.111… rounded up to 10.000….
            mant >>= 1;
            exp += 1;
        } else if exp == 0 && mant & u128::from(INT_BIT) != 0 {
            // A denormal rounded up to the smallest normal.
            exp = 1;
        }
        if exp >= EXP_MASK {
            (EXP_MASK, INT_BIT)
        } else {
            (exp, mant as u64)
        }
    };
    let mut out = [0u8; 10];
    out[..8].copy_from_slice(&mant.to_le_bytes());
    out[8..].copy_from_slice(&(sign | exp).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f80(sign: bool, exp: u16, mant: u64) -> F80 {
        let mut v = [0u8; 10];
        v[..8].copy_from_slice(&mant.to_le_bytes());
        v[8..].copy_from_slice(&((u16::from(sign) << 15) | exp).to_le_bytes());
        v
    }

    #[test]
    fn exact_values_widen_and_narrow_back() {
        let one = f80(false, 0x3fff, INT_BIT);
        assert_eq!(f80_to_f128(one), 0x3fff_0000_0000_0000_0000_0000_0000_0000);
        // -2.5 = -1.01b × 2^1
        let m25 = f80(true, 0x4000, INT_BIT | (1 << 61));
        assert_eq!(f80_to_f128(m25), 0xc000_4000_0000_0000_0000_0000_0000_0000);
        // π to 64 bits, an odd significand, and the largest denormal.
        let pi = f80(false, 0x4000, 0xc90f_daa2_2168_c235);
        for v in [one, m25, pi, f80(false, 0, INT_BIT - 1), f80(true, 0, 0), f80(false, 0x7ffe, u64::MAX)] {
            assert_eq!(f128_to_f80(f80_to_f128(v)), v);
        }
    }

    #[test]
    fn specials() {
        let inf = f80(false, 0x7fff, INT_BIT);
        assert_eq!(f80_to_f128(inf), 0x7fff_0000_0000_0000_0000_0000_0000_0000);
        assert_eq!(f128_to_f80(0x7fff_0000_0000_0000_0000_0000_0000_0000), inf);
        let qnan = f80(false, 0x7fff, INT_BIT | (1 << 62));
        assert_eq!(f80_to_f128(qnan), 0x7fff_8000_0000_0000_0000_0000_0000_0000);
        assert_eq!(f128_to_f80(0x7fff_8000_0000_0000_0000_0000_0000_0000), qnan);
        // A NaN whose payload sits only in the low bits stays a NaN.
        let low = f128_to_f80(0x7fff_0000_0000_0000_0000_0000_0000_0001);
        assert_eq!(low, f80(false, 0x7fff, INT_BIT | (1 << 62)));
        // An unnormal is not a number.
        assert_eq!(f80_to_f128(f80(false, 0x3fff, 1)), 0x7fff_8000_0000_0000_0000_0000_0000_0000);
    }

    #[test]
    fn narrowing_rounds_to_nearest_even() {
        let base: u128 = 0x3fff_0000_0000_0000_0000_0000_0000_0000;
        let half = 1u128 << (FRAC_SHIFT - 1);
        // 1 + half an ulp: tie, the even neighbour is 1.
        assert_eq!(f128_to_f80(base | half), f80(false, 0x3fff, INT_BIT));
        // 1 + 1 ulp + half an ulp: tie, rounds up to 1 + 2 ulp.
        assert_eq!(f128_to_f80(base | (1 << FRAC_SHIFT) | half), f80(false, 0x3fff, INT_BIT | 2));
        // Just above half: up.
        assert_eq!(f128_to_f80(base | half | 1), f80(false, 0x3fff, INT_BIT | 1));
        // All ones rounds up into the next binade.
        assert_eq!(f128_to_f80(0x3fff_ffff_ffff_ffff_ffff_ffff_ffff_ffff), f80(false, 0x4000, INT_BIT));
        // ... and at the top, into infinity.
        assert_eq!(f128_to_f80(0x7ffe_ffff_ffff_ffff_ffff_ffff_ffff_ffff), f80(false, 0x7fff, INT_BIT));
        // The largest binary128 denormal rounds up to the smallest normal.
        assert_eq!(f128_to_f80(0x0000_ffff_ffff_ffff_ffff_ffff_ffff_ffff), f80(false, 1, INT_BIT));
    }
}
