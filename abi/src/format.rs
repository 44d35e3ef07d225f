//! Typing variadic arguments from printf and scanf format strings (glibc's conversion syntax).
//!
//! A printf-like call carries its extra arguments in x86-64 registers chosen by each argument's
//! class (integer or SSE), and riscv64 wants them all in integer registers: the bridge needs their
//! types, and the format string is where the callee itself will find them. An unknown conversion
//! is an error, never a guess, so the caller can fall back to emulating the call.

use crate::types::Ty;
use core::fmt;

/// Why a format string could not be typed; `at` is the byte offset of the conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

/// Bound on arguments a format may consume (glibc's own `NL_ARGMAX` is 4096).
const MAX_ARGS: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Len {
    None,
    Hh,
    H,
    L,
    Ll,
    BigL,
    J,
    Z,
    T,
}

/// Collects argument types, either in order or by explicit `n$` positions (not both).
struct Args {
    seq: Vec<Ty>,
    pos: Vec<Option<Ty>>,
    positional: Option<bool>,
}

impl Args {
    fn add(&mut self, n: Option<usize>, t: Ty, at: usize) -> Result<(), FormatError> {
        let positional = n.is_some();
        match self.positional {
            Some(p) if p != positional => return Err(FormatError { at, what: "mixed positional and sequential arguments" }),
            _ => self.positional = Some(positional),
        }
        match n {
            None => {
                if self.seq.len() >= MAX_ARGS {
                    return Err(FormatError { at, what: "too many arguments" });
                }
                self.seq.push(t);
            }
            Some(n) => {
                if n == 0 || n > MAX_ARGS {
                    return Err(FormatError { at, what: "argument position out of range" });
                }
                if self.pos.len() < n {
                    self.pos.resize(n, None);
                }
                match &self.pos[n - 1] {
                    Some(old) if *old != t => return Err(FormatError { at, what: "one position used with two types" }),
                    _ => self.pos[n - 1] = Some(t),
                }
            }
        }
        Ok(())
    }

    fn finish(self, at: usize) -> Result<Vec<Ty>, FormatError> {
        if self.positional != Some(true) {
            return Ok(self.seq);
        }
        self.pos.into_iter().map(|t| t.ok_or(FormatError { at, what: "a position is never used, so its type is unknown" })).collect()
    }
}

fn number(s: &[u8], i: &mut usize) -> Option<usize> {
    let start = *i;
    let mut v: usize = 0;
    while let Some(c @ b'0'..=b'9') = s.get(*i).copied() {
        v = v.saturating_mul(10).saturating_add(usize::from(c - b'0'));
        *i += 1;
    }
    (*i > start).then_some(v)
}

/// `n$` after a number, if present (consumes it).
fn position(s: &[u8], i: &mut usize) -> Option<usize> {
    let save = *i;
    if let Some(n) = number(s, i) {
        if s.get(*i) == Some(&b'$') {
            *i += 1;
            return Some(n);
        }
    }
    *i = save;
    None
}

fn length(s: &[u8], i: &mut usize) -> Len {
    let c = s.get(*i).copied();
    let next = s.get(*i + 1).copied();
    let (len, n) = match (c, next) {
        (Some(b'h'), Some(b'h')) => (Len::Hh, 2),
        (Some(b'h'), _) => (Len::H, 1),
        (Some(b'l'), Some(b'l')) => (Len::Ll, 2),
        (Some(b'l'), _) => (Len::L, 1),
        (Some(b'q'), _) => (Len::Ll, 1),
        (Some(b'L'), _) => (Len::BigL, 1),
        (Some(b'j'), _) => (Len::J, 1),
        (Some(b'z') | Some(b'Z'), _) => (Len::Z, 1),
        (Some(b't'), _) => (Len::T, 1),
        _ => (Len::None, 0),
    };
    *i += n;
    len
}

/// The types of the variadic arguments a printf format consumes, in argument order.
pub fn printf_args(fmt: &[u8]) -> Result<Vec<Ty>, FormatError> {
    let mut args = Args { seq: Vec::new(), pos: Vec::new(), positional: None };
    let mut i = 0;
    while i < fmt.len() {
        if fmt[i] != b'%' {
            i += 1;
            continue;
        }
        let at = i;
        i += 1;
        if fmt.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        let pos = position(fmt, &mut i);
        while let Some(b'-' | b'+' | b' ' | b'#' | b'0' | b'\'' | b'I') = fmt.get(i) {
            i += 1;
        }
        // Width and precision: a number, or `*` / `*m$` taking an int argument.
        for prefix in [None, Some(b'.')] {
            if let Some(p) = prefix {
                if fmt.get(i) != Some(&p) {
                    continue;
                }
                i += 1;
            }
            if fmt.get(i) == Some(&b'*') {
                i += 1;
                let p = position(fmt, &mut i);
                args.add(p, Ty::I(32), at)?;
            } else {
                let _ = number(fmt, &mut i);
            }
        }
        let len = length(fmt, &mut i);
        let Some(&conv) = fmt.get(i) else { return Err(FormatError { at, what: "format ends inside a conversion" }) };
        i += 1;
        // glibc: `L` on an integer conversion means long long, and `ll`/`q` on a floating one
        // long double (one flag, `is_long_double`, for both).
        let wide = matches!(len, Len::L | Len::Ll | Len::BigL | Len::J | Len::Z | Len::T);
        let long_double = matches!(len, Len::BigL | Len::Ll);
        let t = match conv {
            b'd' | b'i' => {
                if wide {
                    Ty::I(64)
                } else {
                    Ty::I(32)
                }
            }
            b'o' | b'u' | b'x' | b'X' | b'b' | b'B' => {
                if wide {
                    Ty::U(64)
                } else {
                    Ty::U(32)
                }
            }
            b'c' if len == Len::L => Ty::U(32),
            b'c' => Ty::I(32),
            b'C' => Ty::U(32),
            b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A' => {
                if long_double {
                    Ty::LongDouble
                } else {
                    Ty::F64
                }
            }
            b's' | b'S' | b'p' | b'n' => Ty::Ptr,
            // glibc: the text of strerror(errno), no argument.
            b'm' => continue,
            _ => return Err(FormatError { at, what: "unknown conversion" }),
        };
        args.add(pos, t, at)?;
    }
    args.finish(fmt.len())
}

/// The types of the variadic arguments a scanf format consumes (every stored conversion takes a
/// pointer; `%*…` stores nothing).
pub fn scanf_args(fmt: &[u8]) -> Result<Vec<Ty>, FormatError> {
    Ok(scanf_walk(fmt)?.into_iter().map(|_| Ty::Ptr).collect())
}

/// For each variadic argument of a scanf format, whether it points at a `long double` (`%Lf`,
/// `%llg`, `%qe`...): the one pointee whose layout differs between x86-64 (x87 80-bit) and
/// riscv64 (binary128), so a bridge must convert what the native function stores there.
pub fn scanf_long_doubles(fmt: &[u8]) -> Result<Vec<bool>, FormatError> {
    Ok(scanf_walk(fmt)?.into_iter().map(|t| t == Ty::LongDouble).collect())
}

/// The arguments of a scanf format: `Ty::LongDouble` marks a pointer to a long double, `Ty::Ptr`
/// any other pointer.
fn scanf_walk(fmt: &[u8]) -> Result<Vec<Ty>, FormatError> {
    let mut args = Args { seq: Vec::new(), pos: Vec::new(), positional: None };
    let mut i = 0;
    while i < fmt.len() {
        if fmt[i] != b'%' {
            i += 1;
            continue;
        }
        let at = i;
        i += 1;
        if fmt.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        let pos = position(fmt, &mut i);
        let suppress = fmt.get(i) == Some(&b'*');
        if suppress {
            i += 1;
        }
        if fmt.get(i) == Some(&b'm') {
            i += 1;
        }
        let _ = number(fmt, &mut i);
        let len = length(fmt, &mut i);
        let Some(&conv) = fmt.get(i) else { return Err(FormatError { at, what: "format ends inside a conversion" }) };
        i += 1;
        let floating = matches!(conv, b'a' | b'A' | b'e' | b'E' | b'f' | b'F' | b'g' | b'G');
        let pointee = if floating && matches!(len, Len::BigL | Len::Ll) { Ty::LongDouble } else { Ty::Ptr };
        match conv {
            b'[' => {
                // A set: `]` right after `[` or `[^` belongs to the set.
                if fmt.get(i) == Some(&b'^') {
                    i += 1;
                }
                if fmt.get(i) == Some(&b']') {
                    i += 1;
                }
                match fmt[i.min(fmt.len())..].iter().position(|&c| c == b']') {
                    Some(n) => i += n + 1,
                    None => return Err(FormatError { at, what: "unterminated %[ set" }),
                }
            }
            b'd' | b'i' | b'o' | b'u' | b'x' | b'X' | b'b' | b'a' | b'A' | b'e' | b'E' | b'f' | b'F' | b'g' | b'G' | b's'
            | b'S' | b'c' | b'C' | b'p' | b'n' => {}
            _ => return Err(FormatError { at, what: "unknown conversion" }),
        }
        if !suppress {
            args.add(pos, pointee, at)?;
        }
    }
    args.finish(fmt.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_types() {
        assert_eq!(printf_args(b"plain 100%% text").expect("ok"), vec![]);
        assert_eq!(
            printf_args(b"%d %5.2f %s %lu %lld %zx %c %p %Lg %hhd %n %m").expect("ok"),
            vec![Ty::I(32), Ty::F64, Ty::Ptr, Ty::U(64), Ty::I(64), Ty::U(64), Ty::I(32), Ty::Ptr, Ty::LongDouble, Ty::I(32), Ty::Ptr]
        );
        assert_eq!(printf_args(b"%*.*e|%-08.3lf").expect("ok"), vec![Ty::I(32), Ty::I(32), Ty::F64, Ty::F64]);
        assert_eq!(printf_args(b"%2$s=%1$d %2$s").expect("ok"), vec![Ty::I(32), Ty::Ptr]);
        assert_eq!(printf_args(b"%1$*2$d").expect("ok"), vec![Ty::I(32), Ty::I(32)]);
        // glibc's one `is_long_double` flag: `%Ld` is long long, `%llf` and `%qf` long double.
        assert_eq!(printf_args(b"%Ld %llf %qg %Lu").expect("ok"), vec![Ty::I(64), Ty::LongDouble, Ty::LongDouble, Ty::U(64)]);
    }

    #[test]
    fn printf_errors() {
        assert_eq!(printf_args(b"%k").expect_err("k").what, "unknown conversion");
        assert_eq!(printf_args(b"abc %l").expect_err("end").what, "format ends inside a conversion");
        assert_eq!(printf_args(b"%1$d %s").expect_err("mix").what, "mixed positional and sequential arguments");
        assert_eq!(printf_args(b"%3$d %1$d").expect_err("gap").what, "a position is never used, so its type is unknown");
        assert_eq!(printf_args(b"%1$d %1$s").expect_err("clash").what, "one position used with two types");
        assert_eq!(printf_args(b"%0$d").expect_err("zero").what, "argument position out of range");
    }

    #[test]
    fn scanf_types() {
        assert_eq!(scanf_args(b"%d %*d %5s %[^]a-z] %lf %%").expect("ok"), vec![Ty::Ptr, Ty::Ptr, Ty::Ptr, Ty::Ptr]);
        assert_eq!(scanf_args(b"%ms").expect("ok"), vec![Ty::Ptr]);
        assert_eq!(scanf_args(b"%Lf").expect("ok"), vec![Ty::Ptr]);
        assert_eq!(scanf_long_doubles(b"%d %Lf %*Lg %lf %lle %2$qa").expect_err("mixed").what, "mixed positional and sequential arguments");
        assert_eq!(scanf_long_doubles(b"%d %Lf %*Lg %lf %lle %qa %Ld").expect("ok"), vec![false, true, false, true, true, false]);
        assert_eq!(scanf_long_doubles(b"%2$Lf %1$d").expect("ok"), vec![false, true]);
        assert_eq!(scanf_args(b"%[abc").expect_err("set").what, "unterminated %[ set");
    }
}
