//! The compact C type model that manifests record and calling-convention plans consume.
//!
//! Only what decides how a value travels between the x86-64 guest and the riscv64 host is kept:
//! the scalar kind (width, signedness, integer or floating), pointers (with a function pointer's
//! own signature, since a guest callback must be wrapped), and for aggregates passed by value their
//! size, alignment and flattened scalar leaves with offsets. Layouts reached through pointers are
//! not kept: the generator has already proven them identical on both targets, which is exactly
//! what lets a pointer cross unchanged.
//!
//! Every type has a one-token text form (no spaces) used in manifests; `Display` writes it and
//! [`parse_sig`] reads it back.

use core::fmt;

/// One C scalar or aggregate as it crosses a call boundary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// `void` (only as a return type).
    Void,
    /// Signed integer of 8, 16, 32 or 64 bits.
    I(u8),
    /// Unsigned integer (or `_Bool`) of 8, 16, 32 or 64 bits.
    U(u8),
    /// Plain `char`: signed on x86-64, unsigned on riscv64, so it is extended by each side's rule.
    Char,
    /// `float`.
    F32,
    /// `double`.
    F64,
    /// `long double`: x87 80-bit extended on x86-64, IEEE binary128 on riscv64.
    LongDouble,
    /// IEEE binary128 on both sides (`__float128`/`_Float128` on x86-64, which is riscv64's
    /// `long double`): the bits cross unchanged, only the registers differ.
    F128,
    /// A data pointer.
    Ptr,
    /// A pointer to a function with this signature.
    FnPtr(Box<Signature>),
    /// A `va_list` parameter (a pointer to the 24-byte `__va_list_tag` on x86-64, a plain pointer
    /// into the argument area on riscv64).
    VaList,
    /// A struct, union or `_Complex` value passed by value.
    Agg(Aggregate),
}

/// The layout of an aggregate passed by value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Aggregate {
    pub size: u32,
    pub align: u32,
    /// Contains a union (overlapping leaves): riscv64 never flattens it into FP registers.
    pub union: bool,
    /// Scalar leaves in offset order: nested structs and arrays are flattened; bit-fields appear as
    /// the integer of their storage unit.
    pub leaves: Vec<Leaf>,
}

/// One scalar inside an aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    pub offset: u32,
    pub ty: Ty,
}

/// What follows the fixed parameters of a variadic function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Varargs {
    /// Not variadic.
    None,
    /// Variadic with no known rule for the types of the extra arguments.
    Untyped,
    /// printf-like: the format string is the 1-based fixed parameter `fmt`.
    Printf { fmt: u8 },
    /// scanf-like: the format string is the 1-based fixed parameter `fmt`.
    Scanf { fmt: u8 },
}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    pub params: Vec<Ty>,
    pub ret: Ty,
    pub varargs: Varargs,
    /// For `va_list` functions (vprintf family): the format parameter that types the list.
    pub valist_format: Option<Varargs>,
}

impl Ty {
    /// Size in bytes on the guest (x86-64) side.
    pub fn size(&self) -> u32 {
        match self {
            Ty::Void => 0,
            Ty::I(b) | Ty::U(b) => u32::from(*b) / 8,
            Ty::Char => 1,
            Ty::F32 => 4,
            Ty::F64 | Ty::Ptr | Ty::FnPtr(_) | Ty::VaList => 8,
            Ty::LongDouble | Ty::F128 => 16,
            Ty::Agg(a) => a.size,
        }
    }

    /// Whether any part of this type is a `long double`.
    pub fn has_long_double(&self) -> bool {
        match self {
            Ty::LongDouble => true,
            Ty::Agg(a) => a.leaves.iter().any(|l| l.ty.has_long_double()),
            _ => false,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Void => f.write_str("v"),
            Ty::I(b) => write!(f, "i{b}"),
            Ty::U(b) => write!(f, "u{b}"),
            Ty::Char => f.write_str("c8"),
            Ty::F32 => f.write_str("f32"),
            Ty::F64 => f.write_str("f64"),
            Ty::LongDouble => f.write_str("ld"),
            Ty::F128 => f.write_str("f128"),
            Ty::Ptr => f.write_str("p"),
            Ty::FnPtr(sig) => write!(f, "fn{sig}"),
            Ty::VaList => f.write_str("vl"),
            Ty::Agg(a) => {
                if a.union {
                    f.write_str("u")?;
                }
                write!(f, "{{{}:{}", a.size, a.align)?;
                for (i, l) in a.leaves.iter().enumerate() {
                    f.write_str(if i == 0 { ":" } else { "," })?;
                    write!(f, "{}@{}", l.ty, l.offset)?;
                }
                f.write_str("}")
            }
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}")?;
        }
        let sep = if self.params.is_empty() { "" } else { "," };
        match self.varargs {
            Varargs::None => {}
            Varargs::Untyped => write!(f, "{sep}...")?,
            Varargs::Printf { fmt } => write!(f, "{sep}...printf{fmt}")?,
            Varargs::Scanf { fmt } => write!(f, "{sep}...scanf{fmt}")?,
        }
        f.write_str(")")?;
        match self.valist_format {
            Some(Varargs::Printf { fmt }) => write!(f, "vprintf{fmt}")?,
            Some(Varargs::Scanf { fmt }) => write!(f, "vscanf{fmt}")?,
            _ => {}
        }
        write!(f, "->{}", self.ret)
    }
}

/// Why a signature or type string did not parse; `at` is the byte offset in the string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigError {
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at column {}", self.what, self.at + 1)
    }
}

/// Nesting bound for function pointers and aggregates, so hostile input cannot exhaust the stack.
const MAX_DEPTH: u32 = 32;

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn err<T>(&self, what: &'static str) -> Result<T, SigError> {
        Err(SigError { at: self.pos, what })
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, lit: &str, what: &'static str) -> Result<(), SigError> {
        if self.eat(lit) {
            Ok(())
        } else {
            self.err(what)
        }
    }

    fn number(&mut self) -> Result<u32, SigError> {
        let start = self.pos;
        let mut v: u32 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = match v.checked_mul(10).and_then(|v| v.checked_add(u32::from(c - b'0'))) {
                Some(v) => v,
                None => return self.err("number too large"),
            };
            self.pos += 1;
        }
        if self.pos == start {
            return self.err("expected a number");
        }
        Ok(v)
    }

    fn small(&mut self) -> Result<u8, SigError> {
        let at = self.pos;
        let n = self.number()?;
        match u8::try_from(n) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(SigError { at, what: "parameter index out of range 1..=255" }),
        }
    }

    fn ty(&mut self, depth: u32) -> Result<Ty, SigError> {
        if depth > MAX_DEPTH {
            return self.err("type nested too deeply");
        }
        let t = match self.peek() {
            Some(b'v') if self.eat("vl") => Ty::VaList,
            Some(b'v') => {
                self.pos += 1;
                Ty::Void
            }
            Some(b'u') if self.s.get(self.pos + 1) == Some(&b'{') => {
                self.pos += 1;
                self.agg(true, depth)?
            }
            Some(c @ (b'i' | b'u')) => {
                self.pos += 1;
                let at = self.pos;
                let bits = self.number()?;
                if !matches!(bits, 8 | 16 | 32 | 64) {
                    return Err(SigError { at, what: "integer width must be 8, 16, 32 or 64" });
                }
                // Checked above to fit.
                let bits = bits as u8;
                if c == b'i' {
                    Ty::I(bits)
                } else {
                    Ty::U(bits)
                }
            }
            Some(b'c') if self.eat("c8") => Ty::Char,
            Some(b'f') if self.eat("f128") => Ty::F128,
            Some(b'f') if self.eat("f32") => Ty::F32,
            Some(b'f') if self.eat("f64") => Ty::F64,
            Some(b'f') if self.eat("fn") => Ty::FnPtr(Box::new(self.sig(depth + 1)?)),
            Some(b'l') if self.eat("ld") => Ty::LongDouble,
            Some(b'p') => {
                self.pos += 1;
                Ty::Ptr
            }
            Some(b'{') => self.agg(false, depth)?,
            _ => return self.err("expected a type"),
        };
        Ok(t)
    }

    fn agg(&mut self, union: bool, depth: u32) -> Result<Ty, SigError> {
        self.expect("{", "expected '{'")?;
        let size = self.number()?;
        self.expect(":", "expected ':' after aggregate size")?;
        let align_at = self.pos;
        let align = self.number()?;
        if !align.is_power_of_two() {
            return Err(SigError { at: align_at, what: "alignment must be a power of two" });
        }
        let mut leaves = Vec::new();
        if self.eat(":") {
            loop {
                let at = self.pos;
                let ty = self.ty(depth + 1)?;
                if matches!(ty, Ty::Void | Ty::VaList) {
                    return Err(SigError { at, what: "aggregate leaf cannot be void or va_list" });
                }
                self.expect("@", "expected '@offset' after leaf type")?;
                let off_at = self.pos;
                let offset = self.number()?;
                if u64::from(offset) + u64::from(ty.size()) > u64::from(size) {
                    return Err(SigError { at: off_at, what: "leaf lies outside the aggregate" });
                }
                leaves.push(Leaf { offset, ty });
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect("}", "expected '}' closing the aggregate")?;
        Ok(Ty::Agg(Aggregate { size, align, union, leaves }))
    }

    fn sig(&mut self, depth: u32) -> Result<Signature, SigError> {
        if depth > MAX_DEPTH {
            return self.err("signature nested too deeply");
        }
        self.expect("(", "expected '(' opening the parameter list")?;
        let mut params = Vec::new();
        let mut varargs = Varargs::None;
        if !self.eat(")") {
            loop {
                if self.eat("...") {
                    varargs = if self.eat("printf") {
                        Varargs::Printf { fmt: self.small()? }
                    } else if self.eat("scanf") {
                        Varargs::Scanf { fmt: self.small()? }
                    } else {
                        Varargs::Untyped
                    };
                    self.expect(")", "'...' must be the last parameter")?;
                    break;
                }
                let at = self.pos;
                let t = self.ty(depth)?;
                if t == Ty::Void {
                    return Err(SigError { at, what: "void is not a parameter type" });
                }
                params.push(t);
                if self.eat(")") {
                    break;
                }
                self.expect(",", "expected ',' or ')' in the parameter list")?;
            }
        }
        let valist_format = if self.eat("vprintf") {
            Some(Varargs::Printf { fmt: self.small()? })
        } else if self.eat("vscanf") {
            Some(Varargs::Scanf { fmt: self.small()? })
        } else {
            None
        };
        let fmt_param = match (varargs, valist_format) {
            (Varargs::Printf { fmt } | Varargs::Scanf { fmt }, _) => Some(fmt),
            (_, Some(Varargs::Printf { fmt } | Varargs::Scanf { fmt })) => Some(fmt),
            _ => None,
        };
        if let Some(fmt) = fmt_param {
            if params.get(usize::from(fmt) - 1) != Some(&Ty::Ptr) {
                return self.err("format parameter must name a pointer parameter");
            }
        }
        self.expect("->", "expected '->' before the return type")?;
        let ret = self.ty(depth)?;
        Ok(Signature { params, ret, varargs, valist_format })
    }
}

/// Parse a whole signature such as `(p,i32,fn(p)->v,...printf2)->i32`.
pub fn parse_sig(s: &str) -> Result<Signature, SigError> {
    let mut c = Cursor { s: s.as_bytes(), pos: 0 };
    let sig = c.sig(0)?;
    if c.pos != s.len() {
        return c.err("trailing characters after the signature");
    }
    Ok(sig)
}

/// Parse one type such as `{8:4:f32@0,f32@4}`.
pub fn parse_ty(s: &str) -> Result<Ty, SigError> {
    let mut c = Cursor { s: s.as_bytes(), pos: 0 };
    let t = c.ty(0)?;
    if c.pos != s.len() {
        return c.err("trailing characters after the type");
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in [
            "()->v",
            "(p,i32,u64)->i32",
            "(c8,i8,u16)->u8",
            "(f32,f64,ld)->ld",
            "(f128,p)->f128",
            "(p,u64,u64,fn(p,p)->i32)->v",
            "(p,...printf1)->i32",
            "(p,p,...scanf2)->i32",
            "(p,i32,...)->i32",
            "(p,vl)vprintf1->i32",
            "({8:4:f32@0,f32@4})->{8:4:f32@0,f32@4}",
            "(u{8:8:i64@0,f64@0})->v",
            "()->fn(i32)->fn()->v",
            "({0:1})->v",
        ] {
            let sig = parse_sig(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(sig.to_string(), s);
        }
    }

    #[test]
    fn rejects() {
        let cases = [
            ("(p", "expected ',' or ')' in the parameter list"),
            ("(i12)->v", "integer width must be 8, 16, 32 or 64"),
            ("(...,p)->v", "'...' must be the last parameter"),
            ("(v)->v", "void is not a parameter type"),
            ("(i32,...printf1)->v", "format parameter must name a pointer parameter"),
            ("({4:3})->v", "alignment must be a power of two"),
            ("({4:4:f64@0})->v", "leaf lies outside the aggregate"),
            ("(p)->v x", "trailing characters after the signature"),
            ("(p,...printf0)->v", "parameter index out of range 1..=255"),
            ("(p)", "expected '->' before the return type"),
        ];
        for (s, what) in cases {
            let e = parse_sig(s).expect_err(s);
            assert_eq!(e.what, what, "{s}");
        }
        let deep = "(".repeat(40) + &")->v".repeat(40);
        assert!(parse_sig(&deep).is_err());
        let deep_fn = "(fn".repeat(40) + "()->v" + &")->v".repeat(40);
        assert_eq!(parse_sig(&deep_fn).expect_err("deep").what, "signature nested too deeply");
    }
}
