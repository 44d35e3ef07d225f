//! The x87's transcendental functions for the riscv64 x87 helper — owned by the x87 helper.
//!
//! Each is evaluated in IEEE quad precision (113-bit significand) by argument reduction and a
//! series, then rounded once to the 80-bit result by the caller, so results are within about one
//! unit in the last place of the true value (the x87 itself promises the same, not correct
//! rounding, so a result may differ from a given CPU's in the last bit). The trigonometric
//! functions reduce their argument with the 66-bit approximation of π the x87 uses, as hardware
//! does, exactly for arguments below 2^40.

use rustc_apfloat::ieee::Quad;
use rustc_apfloat::{Float, FloatConvert, Round};

const RN: Round = Round::NearestTiesToEven;

fn add(a: Quad, b: Quad) -> Quad {
    a.add_r(b, RN).value
}

fn sub(a: Quad, b: Quad) -> Quad {
    a.sub_r(b, RN).value
}

fn mul(a: Quad, b: Quad) -> Quad {
    a.mul_r(b, RN).value
}

fn div(a: Quad, b: Quad) -> Quad {
    a.div_r(b, RN).value
}

fn int(n: i128) -> Quad {
    Quad::from_i128(n).value
}

/// Whether `term` no longer changes a sum of magnitude about `sum`.
fn negligible(term: Quad, sum: Quad) -> bool {
    term.is_zero() || (!sum.is_zero() && term.ilogb() < sum.ilogb() - 116)
}

/// 2·atanh(s) = ln((1 + s) / (1 − s)), for |s| ≤ 1/3.
fn two_atanh(s: Quad) -> Quad {
    let s2 = mul(s, s);
    let mut pow = s;
    let mut sum = s;
    for k in 1..200 {
        pow = mul(pow, s2);
        let term = div(pow, int(2 * k + 1));
        sum = add(sum, term);
        if negligible(term, sum) {
            break;
        }
    }
    add(sum, sum)
}

/// ln 2.
pub fn ln2() -> Quad {
    two_atanh(div(int(1), int(3)))
}

/// atan(s) by its series, for |s| ≤ 0.25.
fn atan_series(s: Quad) -> Quad {
    let s2 = mul(s, s);
    let mut pow = s;
    let mut sum = s;
    for k in 1..200 {
        pow = -mul(pow, s2);
        let term = div(pow, int(2 * k + 1));
        sum = add(sum, term);
        if negligible(term, sum) {
            break;
        }
    }
    sum
}

/// π (Machin's formula).
pub fn pi() -> Quad {
    let a = atan_series(div(int(1), int(5)));
    let b = atan_series(div(int(1), int(239)));
    sub(mul(int(16), a), mul(int(4), b))
}

/// Square root of a positive finite value (Newton from a double-precision estimate).
fn sqrt(v: Quad) -> Quad {
    let e = v.ilogb() & !1;
    let m = v.scalbn(-e);
    let mut l = false;
    let d: rustc_apfloat::StatusAnd<rustc_apfloat::ieee::Double> = m.convert(&mut l);
    let est = f64::from_bits(d.value.to_bits() as u64).sqrt();
    let back: rustc_apfloat::StatusAnd<Quad> = rustc_apfloat::ieee::Double::from_bits(u128::from(est.to_bits())).convert(&mut l);
    let mut r = back.value;
    for _ in 0..3 {
        r = div(add(r, div(m, r)), int(2));
    }
    r.scalbn(e / 2)
}

/// log2(x) for a positive finite `x`.
pub fn log2(x: Quad) -> Quad {
    let mut e = x.ilogb();
    let mut m = x.scalbn(-e);
    // Keep m in [sqrt(1/2), sqrt(2)) so the series argument stays small.
    if m.partial_cmp(&sqrt(int(2))) != Some(core::cmp::Ordering::Less) {
        m = m.scalbn(-1);
        e += 1;
    }
    let s = div(sub(m, int(1)), add(m, int(1)));
    add(int(i128::from(e)), div(two_atanh(s), ln2()))
}

/// log2(1 + x) for x > −1, accurate for small x.
pub fn log2_1p(x: Quad) -> Quad {
    let one_plus = add(int(1), x);
    if x.abs().partial_cmp(&div(int(1), int(4))) == Some(core::cmp::Ordering::Greater) {
        return log2(one_plus);
    }
    let s = div(x, add(int(2), x));
    div(two_atanh(s), ln2())
}

/// 2^x − 1, accurate for small x.
pub fn exp2m1(x: Quad) -> Quad {
    // Halve the argument until small, then undo with expm1(2t) = expm1(t)·(expm1(t) + 2).
    let t0 = mul(x, ln2());
    let mut halvings = 0;
    let mut t = t0;
    while !t.is_zero() && t.ilogb() > -4 {
        t = t.scalbn(-1);
        halvings += 1;
    }
    let mut term = t;
    let mut sum = t;
    for n in 2..200 {
        term = div(mul(term, t), int(n));
        sum = add(sum, term);
        if negligible(term, sum) {
            break;
        }
    }
    for _ in 0..halvings {
        sum = mul(sum, add(sum, int(2)));
    }
    sum
}

/// atan2(y, x) for finite values, not both zero.
pub fn atan2(y: Quad, x: Quad) -> Quad {
    let (ay, ax) = (y.abs(), x.abs());
    let swap = ay.partial_cmp(&ax) == Some(core::cmp::Ordering::Greater);
    let mut a = if swap { div(ax, ay) } else { div(ay, ax) };
    // atan(a) = 2·atan(a / (1 + sqrt(1 + a²))), twice: a ≤ tan(π/16).
    let mut doublings = 0;
    for _ in 0..2 {
        if a.is_zero() {
            break;
        }
        a = div(a, add(int(1), sqrt(add(int(1), mul(a, a)))));
        doublings += 1;
    }
    let mut t = atan_series(a).scalbn(doublings);
    let p = pi();
    if swap {
        t = sub(p.scalbn(-1), t);
    }
    if x.is_negative() {
        t = sub(p, t);
    }
    if y.is_negative() {
        -t
    } else {
        t
    }
}

/// The x87's 66-bit π (0xC90FDAA22168C234C · 2^−66).
fn pi66() -> Quad {
    Quad::from_u128(0xc_90fd_aa22_168c_234c).value.scalbn(-66)
}

/// `x` reduced by multiples of π/2 (the x87's π): (r, quadrant) with |r| ≤ π/4.
fn reduce(x: Quad) -> (Quad, i128) {
    let half = pi66().scalbn(-1);
    let k = div(x, half).round_to_integral(RN).value;
    let mut exact = false;
    let n = k.to_i128_r(128, Round::TowardZero, &mut exact).value;
    (sub(x, mul(k, half)), n)
}

fn sin_series(r: Quad) -> Quad {
    let r2 = mul(r, r);
    let mut term = r;
    let mut sum = r;
    for n in 1..200i128 {
        term = -div(mul(term, r2), int((2 * n) * (2 * n + 1)));
        sum = add(sum, term);
        if negligible(term, sum) {
            break;
        }
    }
    sum
}

fn cos_series(r: Quad) -> Quad {
    let r2 = mul(r, r);
    let mut term = int(1);
    let mut sum = int(1);
    for n in 1..200i128 {
        term = -div(mul(term, r2), int((2 * n - 1) * (2 * n)));
        sum = add(sum, term);
        if negligible(term, sum) {
            break;
        }
    }
    sum
}

/// (sin x, cos x) with the x87's argument reduction.
pub fn sin_cos(x: Quad) -> (Quad, Quad) {
    let (r, n) = reduce(x);
    let (s, c) = (sin_series(r), cos_series(r));
    match n.rem_euclid(4) {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(q: Quad) -> f64 {
        let mut l = false;
        let d: rustc_apfloat::StatusAnd<rustc_apfloat::ieee::Double> = q.convert(&mut l);
        f64::from_bits(d.value.to_bits() as u64)
    }

    fn q(v: f64) -> Quad {
        let mut l = false;
        rustc_apfloat::ieee::Double::from_bits(u128::from(v.to_bits())).convert(&mut l).value
    }

    #[test]
    fn constants_and_functions_agree_with_double_precision() {
        assert_eq!(f(pi()), core::f64::consts::PI);
        assert_eq!(f(ln2()), core::f64::consts::LN_2);
        // π to 113 bits: 0x1.921fb54442d18469898cc51701b8p+1.
        assert_eq!(pi().to_bits() >> 8, 0x4000_921f_b544_42d1_8469_898c_c517_01b8 >> 8);
        for x in [0.1, 0.5, 1.0, 3.0, 1e-5, 123.456] {
            assert!((f(log2(q(x))) - x.log2()).abs() <= 2.0 * f64::EPSILON * x.log2().abs().max(1.0), "log2 {x}");
            assert!((f(exp2m1(q(x.min(1.0)))) - (x.min(1.0).exp2() - 1.0)).abs() <= 4.0 * f64::EPSILON, "exp2m1 {x}");
            let (s, c) = sin_cos(q(x));
            assert!((f(s) - x.sin()).abs() <= 4.0 * f64::EPSILON, "sin {x}");
            assert!((f(c) - x.cos()).abs() <= 4.0 * f64::EPSILON, "cos {x}");
            assert!((f(atan2(q(x), q(1.5))) - x.atan2(1.5)).abs() <= 4.0 * f64::EPSILON, "atan2 {x}");
            assert!((f(atan2(q(-x), q(-0.25))) - (-x).atan2(-0.25)).abs() <= 4.0 * f64::EPSILON, "atan2 {x}");
        }
        assert!((f(log2_1p(q(1e-20))) - 1e-20 / core::f64::consts::LN_2).abs() < 1e-35);
    }
}
