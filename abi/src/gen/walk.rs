//! Reading headers with libclang for one target and turning what they declare into owned data.
//!
//! One parse gives a [`TargetDb`]: every function and variable declared, with its signature in the
//! compact model, and every record type reachable from them with a canonical layout string (size,
//! alignment, public field offsets and field types). Two `TargetDb`s, one per target, are then
//! compared by `classify`; nothing here knows about the other target.
//!
//! Record fields whose names start with `__` are reserved to the implementation (C11 7.1.3): no
//! portable program touches them, so glibc's opaque unions (`pthread_mutex_t`, `sigset_t`) are
//! compared by size and alignment only, as the native library alone reads their insides.

use crate::types::{Aggregate, Leaf, Signature, Ty, Varargs};
use clang::{Entity, EntityKind, Linkage, Type, TypeKind};
use std::collections::{BTreeMap, HashMap};

/// A function or variable declared in the headers, seen on one target.
#[derive(Clone, Debug)]
pub struct Decl {
    pub name: String,
    /// Function: its signature; variable: its type as a one-parameter-free signature is not
    /// meaningful, so `None` and `var_size` is used instead.
    pub sig: Option<Result<Signature, String>>,
    pub var_size: u64,
    /// Records reached from this declaration (through parameters, result, pointers, the variable).
    pub refs: Vec<String>,
    /// A `long double` or `va_list` stored in memory the callee shares (behind a pointer).
    pub mem_long_double: bool,
    pub mem_valist: bool,
    /// Canonical text of all parameter/result/variable types, compared across targets.
    pub shape: String,
}

/// A record type reached from some declaration, seen on one target.
#[derive(Clone, Debug, Default)]
pub struct RecordInfo {
    /// `size/align{field@bitoffset:type;...}` over public fields; `?` for an incomplete type.
    pub layout: String,
    pub size: u64,
    pub align: u64,
    pub refs: Vec<String>,
    pub long_double: bool,
    pub valist: bool,
    /// Public function-pointer fields with their signatures.
    pub fn_fields: Vec<(String, Result<Signature, String>)>,
    /// (field name, bit offset) of public fields, to explain a difference.
    pub fields: Vec<(String, u64, String)>,
}

/// Everything one target's parse produced.
#[derive(Debug, Default)]
pub struct TargetDb {
    pub decls: BTreeMap<String, Decl>,
    pub records: HashMap<String, RecordInfo>,
    /// Object-like macros with public names (`O_DIRECTORY`), with the file defining them.
    pub macros: BTreeMap<String, String>,
    /// Values of `__ldnc_c_NAME` variables (the constants pass of `gen::constants`).
    pub constants: BTreeMap<String, i128>,
}

/// A macro that expands to `__attribute__((format(...)))`: its kind and where each position comes
/// from (a macro parameter index or a literal).
#[derive(Clone, Copy, Debug)]
enum Pos {
    Param(usize),
    Lit(u32),
}

#[derive(Clone, Copy, Debug)]
struct FormatMacro {
    scanf: bool,
    fmt: Pos,
    first: Pos,
}

/// The C library functions clang gives an implicit format attribute (its Builtins.def), since
/// glibc's own declarations of them spell none: (name, scanf-like, format parameter, variadic).
const BUILTIN_FORMATS: &[(&str, bool, u8, bool)] = &[
    ("printf", false, 1, true),
    ("fprintf", false, 2, true),
    ("sprintf", false, 2, true),
    ("snprintf", false, 3, true),
    ("vprintf", false, 1, false),
    ("vfprintf", false, 2, false),
    ("vsprintf", false, 2, false),
    ("vsnprintf", false, 3, false),
    ("scanf", true, 1, true),
    ("fscanf", true, 2, true),
    ("sscanf", true, 2, true),
    ("vscanf", true, 1, false),
    ("vfscanf", true, 2, false),
    ("vsscanf", true, 2, false),
];

const VA_LIST_NAMES: &[&str] = &["va_list", "__gnuc_va_list", "__builtin_va_list"];

/// Names of IEEE binary128: on riscv64 glibc makes them typedefs of `long double`, which must
/// still compare equal to x86-64's distinct `__float128` (and not to x86-64's 80-bit `long
/// double`, which is what `_Float64x` names there).
const BINARY128_NAMES: &[&str] = &["_Float128", "__float128", "_Float128x"];

#[derive(Debug)]
pub struct Walker {
    pub db: TargetDb,
    macros: HashMap<String, FormatMacro>,
    /// Path prefixes replaced in names of anonymous records so both targets agree on keys.
    strip: Vec<String>,
}

/// The pointee of a pointer type with its typedef names kept (the canonical pointee loses them,
/// and with them the only way to tell a riscv64 `va_list` from a `void *`).
fn sugared_pointee<'t>(ty: Type<'t>) -> Option<Type<'t>> {
    let mut t = ty;
    for _ in 0..32 {
        match t.get_kind() {
            TypeKind::Pointer => return t.get_pointee_type(),
            TypeKind::Typedef => t = t.get_declaration()?.get_typedef_underlying_type()?,
            TypeKind::Elaborated => t = t.get_elaborated_type()?,
            TypeKind::Attributed => t = t.get_modified_type()?,
            _ => return None,
        }
    }
    None
}

fn spell(tokens: &[clang::token::Token<'_>]) -> Vec<String> {
    tokens.iter().map(|t| t.get_spelling()).collect()
}

/// Find `format ( printf , A , B )` (with or without underscores) in a token list; returns
/// (scanf-like, A, B) as spelled.
fn find_format(toks: &[String]) -> Option<(bool, String, String)> {
    for i in 0..toks.len() {
        if (toks[i] == "format" || toks[i] == "__format__") && toks.get(i + 1).map(String::as_str) == Some("(") {
            let kind = toks.get(i + 2)?.trim_matches('_');
            let scanf = match kind {
                "printf" | "gnu_printf" => false,
                "scanf" | "gnu_scanf" => true,
                _ => continue,
            };
            if toks.get(i + 3)? != "," || toks.get(i + 5)? != "," {
                continue;
            }
            return Some((scanf, toks[i + 4].clone(), toks[i + 6].clone()));
        }
    }
    None
}

impl Walker {
    pub fn new(strip: Vec<String>) -> Self {
        Walker { db: TargetDb::default(), macros: HashMap::new(), strip }
    }

    /// Walk the top level of a translation unit.
    pub fn walk_tu(&mut self, root: Entity<'_>) {
        for e in root.get_children() {
            match e.get_kind() {
                EntityKind::MacroDefinition => self.note_macro(e),
                EntityKind::FunctionDecl => self.function(e),
                EntityKind::VarDecl => {
                    let name = e.get_name().unwrap_or_default();
                    if let Some(c) = name.strip_prefix("__ldnc_c_") {
                        let v = match e.evaluate() {
                            Some(clang::EvaluationResult::SignedInteger(v)) => Some(i128::from(v)),
                            Some(clang::EvaluationResult::UnsignedInteger(v)) => Some(i128::from(v)),
                            _ => None,
                        };
                        if let Some(v) = v {
                            self.db.constants.insert(c.to_owned(), v);
                        }
                    } else {
                        self.variable(e);
                    }
                }
                _ => {}
            }
        }
    }

    fn note_macro(&mut self, e: Entity<'_>) {
        if !e.is_function_like_macro() && !e.is_builtin_macro() {
            if let Some(name) = e.get_name() {
                let public = name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                if public {
                    let file = e
                        .get_location()
                        .and_then(|l| l.get_file_location().file)
                        .map(|f| f.get_path().display().to_string())
                        .unwrap_or_default();
                    self.db.macros.insert(name, file);
                }
            }
        }
        let Some(range) = e.get_range() else { return };
        let toks = spell(&range.tokenize());
        let Some((scanf, a, b)) = find_format(&toks) else { return };
        // Function-like macro: NAME ( p1 , p2 ... ) body
        let params: Vec<&str> = if toks.get(1).map(String::as_str) == Some("(") {
            toks[2..].iter().take_while(|t| *t != ")").filter(|t| *t != ",").map(String::as_str).collect()
        } else {
            Vec::new()
        };
        let pos = |s: &str| -> Option<Pos> {
            if let Some(i) = params.iter().position(|p| *p == s) {
                Some(Pos::Param(i))
            } else {
                s.parse().ok().map(Pos::Lit)
            }
        };
        if let (Some(fmt), Some(first)) = (pos(&a), pos(&b)) {
            self.macros.insert(toks[0].clone(), FormatMacro { scanf, fmt, first });
        }
    }

    /// The format attribute of a declaration: spelled directly, through a macro known to expand
    /// to one, or implied by clang's builtins. Returns (scanf-like, format index, first vararg).
    fn format_of(&self, e: Entity<'_>, name: &str) -> Option<(bool, u32, u32)> {
        if let Some(range) = e.get_range() {
            let toks = spell(&range.tokenize());
            if let Some((scanf, a, b)) = find_format(&toks) {
                if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                    return Some((scanf, a, b));
                }
            }
            for (i, t) in toks.iter().enumerate() {
                let Some(m) = self.macros.get(t) else { continue };
                let args: Vec<&str> = if toks.get(i + 1).map(String::as_str) == Some("(") {
                    toks[i + 2..].iter().take_while(|t| *t != ")").filter(|t| *t != ",").map(String::as_str).collect()
                } else {
                    Vec::new()
                };
                let val = |p: Pos| -> Option<u32> {
                    match p {
                        Pos::Lit(v) => Some(v),
                        Pos::Param(i) => args.get(i)?.parse().ok(),
                    }
                };
                if let (Some(a), Some(b)) = (val(m.fmt), val(m.first)) {
                    return Some((m.scanf, a, b));
                }
            }
        }
        BUILTIN_FORMATS
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|&(_, scanf, fmt, variadic)| (scanf, u32::from(fmt), if variadic { u32::from(fmt) + 1 } else { 0 }))
    }

    fn link_name(e: Entity<'_>) -> Option<String> {
        let name = e.get_name()?;
        // An asm label (`__asm__("__isoc99_scanf")`) is the symbol the guest really links.
        match e.get_mangled_name() {
            Some(m) if !m.is_empty() && m != name => Some(m.trim_start_matches('\u{1}').to_owned()),
            _ => Some(name),
        }
    }

    fn function(&mut self, e: Entity<'_>) {
        if e.get_linkage() != Some(Linkage::External) {
            return;
        }
        let Some(name) = Self::link_name(e) else { return };
        if self.db.decls.contains_key(&name) {
            return;
        }
        let ty = e.get_type();
        let mut d = Decl {
            name: name.clone(),
            sig: None,
            var_size: 0,
            refs: Vec::new(),
            mem_long_double: false,
            mem_valist: false,
            shape: String::new(),
        };
        let sig = match ty {
            Some(t) => self.signature(t, &mut d, 0),
            None => Err("no type".into()),
        };
        let sig = sig.map(|mut s| {
            if let Some((scanf, fmt, first)) = self.format_of(e, e.get_name().as_deref().unwrap_or("")) {
                let ok = u8::try_from(fmt).ok().filter(|&f| f > 0 && s.params.get(usize::from(f) - 1) == Some(&Ty::Ptr));
                if let Some(fmt) = ok {
                    let v = if scanf { Varargs::Scanf { fmt } } else { Varargs::Printf { fmt } };
                    if s.varargs != Varargs::None && first != 0 {
                        s.varargs = v;
                    } else if first == 0 && s.params.contains(&Ty::VaList) {
                        s.valist_format = Some(v);
                    }
                }
            }
            s
        });
        let sig = sig.map(|mut s| {
            Self::format_by_name(e, &name, &mut s);
            s
        });
        if let Ok(s) = &sig {
            d.shape.push_str(&s.to_string());
        }
        d.sig = Some(sig);
        self.db.decls.insert(name, d);
    }

    /// The fallback when no format attribute is spelled: the parameter just before `...` or the
    /// `va_list` is a `const char *` named `fmt` or `format` (any leading underscores), as in
    /// `av_vlog` and `gzprintf`. scanf-like when the function's name says so. Wide-character
    /// formats are not matched (their pointee is not `char`).
    fn format_by_name(e: Entity<'_>, name: &str, s: &mut Signature) {
        let untyped_va = s.valist_format.is_none() && s.params.contains(&Ty::VaList);
        if s.varargs != Varargs::Untyped && !untyped_va {
            return;
        }
        let idx = if s.varargs == Varargs::Untyped {
            s.params.len().checked_sub(1)
        } else {
            s.params.iter().position(|t| *t == Ty::VaList).and_then(|i| i.checked_sub(1))
        };
        let Some(idx) = idx else { return };
        let Some(args) = e.get_arguments() else { return };
        let Some(arg) = args.get(idx) else { return };
        let pname = arg.get_name().unwrap_or_default();
        if !matches!(pname.trim_start_matches('_'), "fmt" | "format") {
            return;
        }
        let is_char = arg
            .get_type()
            .and_then(|t| t.get_canonical_type().get_pointee_type())
            .is_some_and(|p| matches!(p.get_canonical_type().get_kind(), TypeKind::CharS | TypeKind::CharU));
        let Ok(fmt) = u8::try_from(idx + 1) else { return };
        if !is_char {
            return;
        }
        let v = if name.contains("scanf") { Varargs::Scanf { fmt } } else { Varargs::Printf { fmt } };
        if s.varargs == Varargs::Untyped {
            s.varargs = v;
        } else {
            s.valist_format = Some(v);
        }
    }

    fn variable(&mut self, e: Entity<'_>) {
        if e.get_linkage() != Some(Linkage::External) {
            return;
        }
        let Some(name) = Self::link_name(e) else { return };
        if self.db.decls.contains_key(&name) {
            return;
        }
        let Some(ty) = e.get_type() else { return };
        let mut d = Decl {
            name: name.clone(),
            sig: None,
            var_size: ty.get_sizeof().map_or(0, |s| s as u64),
            refs: Vec::new(),
            mem_long_double: false,
            mem_valist: false,
            shape: String::new(),
        };
        // A variable is memory both sides share, so its type is walked as if behind a pointer.
        let (shape, ld, vl) = self.shape(ty, &mut d.refs, 0);
        d.mem_long_double = ld;
        d.mem_valist = vl;
        d.shape = format!("{}:{}", d.var_size, shape);
        self.db.decls.insert(name, d);
    }

    /// Follow typedefs and elaborated sugar from `ty`. `Ok(())` when a typedef named in `names`
    /// is met on the way; otherwise `Err` with the first type that is neither (`None` when the
    /// chain breaks or runs longer than any real header's).
    fn through_typedefs<'a>(ty: Type<'a>, names: &[&str]) -> Result<(), Option<Type<'a>>> {
        let mut t = ty;
        for _ in 0..16 {
            match t.get_kind() {
                TypeKind::Typedef => {
                    let n = t.get_typedef_name().unwrap_or_default();
                    if names.contains(&n.as_str()) {
                        return Ok(());
                    }
                    match t.get_declaration().and_then(|d| d.get_typedef_underlying_type()) {
                        Some(u) => t = u,
                        None => return Err(None),
                    }
                }
                TypeKind::Elaborated => match t.get_elaborated_type() {
                    Some(u) => t = u,
                    None => return Err(None),
                },
                _ => return Err(Some(t)),
            }
        }
        Err(None)
    }

    fn typedef_named(ty: Type<'_>, names: &[&str]) -> bool {
        Self::through_typedefs(ty, names).is_ok()
    }

    fn is_binary128(ty: Type<'_>) -> bool {
        ty.get_canonical_type().get_kind() == TypeKind::Float128
            || (ty.get_canonical_type().get_kind() == TypeKind::LongDouble && Self::typedef_named(ty, BINARY128_NAMES))
    }

    fn is_valist(ty: Type<'_>) -> bool {
        match Self::through_typedefs(ty, VA_LIST_NAMES) {
            Ok(()) => true,
            Err(Some(t)) if t.get_kind() == TypeKind::Pointer => {
                // x86-64: a `va_list` parameter decays to `struct __va_list_tag *`.
                let p = t.get_pointee_type().map(|p| p.get_canonical_type());
                p.and_then(|p| p.get_declaration()).and_then(|d| d.get_name()).as_deref() == Some("__va_list_tag")
            }
            Err(_) => false,
        }
    }

    /// The compact signature of a function type; records reached are added to `d.refs`.
    fn signature(&mut self, ty: Type<'_>, d: &mut Decl, depth: u32) -> Result<Signature, String> {
        if depth > 8 {
            return Err("function pointers nested too deeply".into());
        }
        let c = ty.get_canonical_type();
        let (params, variadic) = match c.get_kind() {
            TypeKind::FunctionPrototype => (ty.get_argument_types().unwrap_or_default(), c.is_variadic()),
            TypeKind::FunctionNoPrototype => (Vec::new(), true),
            _ => return Err(format!("not a function type: {}", ty.get_display_name())),
        };
        let mut out = Vec::new();
        for p in params {
            out.push(self.value(p, d, depth)?);
        }
        let ret = match ty.get_result_type() {
            Some(r) => self.value(r, d, depth)?,
            None => return Err("no result type".into()),
        };
        let varargs = if variadic { Varargs::Untyped } else { Varargs::None };
        Ok(Signature { params: out, ret, varargs, valist_format: None })
    }

    /// A type as a by-value parameter or result.
    fn value(&mut self, ty: Type<'_>, d: &mut Decl, depth: u32) -> Result<Ty, String> {
        if Self::is_valist(ty) {
            return Ok(Ty::VaList);
        }
        if Self::is_binary128(ty) {
            return Ok(Ty::F128);
        }
        let c = ty.get_canonical_type();
        Ok(match c.get_kind() {
            TypeKind::Pointer => {
                let Some(p) = c.get_pointee_type() else { return Err("pointer without pointee".into()) };
                let pc = p.get_canonical_type();
                if matches!(pc.get_kind(), TypeKind::FunctionPrototype | TypeKind::FunctionNoPrototype) {
                    Ty::FnPtr(Box::new(self.signature(sugared_pointee(ty).unwrap_or(p), d, depth + 1)?))
                } else {
                    let (_, ld, vl) = self.shape(sugared_pointee(ty).unwrap_or(p), &mut d.refs, 0);
                    d.mem_long_double |= ld;
                    d.mem_valist |= vl;
                    Ty::Ptr
                }
            }
            // An array parameter is a pointer to its first element (C11 6.7.6.3p7).
            TypeKind::ConstantArray | TypeKind::IncompleteArray | TypeKind::VariableArray => {
                let (_, ld, vl) = self.shape(c, &mut d.refs, 0);
                d.mem_long_double |= ld;
                d.mem_valist |= vl;
                Ty::Ptr
            }
            TypeKind::Record | TypeKind::Complex => {
                // A long double inside stays visible as a leaf of the aggregate.
                let (_, _, vl) = self.shape(c, &mut d.refs, 0);
                d.mem_valist |= vl;
                Ty::Agg(self.aggregate(c)?)
            }
            // A function type as a parameter is a pointer to it (C11 6.7.6.3p8).
            TypeKind::FunctionPrototype | TypeKind::FunctionNoPrototype => Ty::FnPtr(Box::new(self.signature(ty, d, depth + 1)?)),
            // libclang 14 does not expose C `_Complex` (it reports `Unexposed`): it is a pair of
            // its element type, which is how both conventions pass it.
            TypeKind::Unexposed if c.get_display_name().starts_with("_Complex ") => {
                let elem = match c.get_display_name().trim_start_matches("_Complex ") {
                    "float" => Ty::F32,
                    "double" => Ty::F64,
                    "long double" => Ty::LongDouble,
                    other => return Err(format!("unsupported type `_Complex {other}`")),
                };
                let es = elem.size();
                let size = c.get_sizeof().map_or(2 * es, |s| s as u32);
                let leaves = vec![Leaf { offset: 0, ty: elem.clone() }, Leaf { offset: es, ty: elem }];
                Ty::Agg(Aggregate { size, align: c.get_alignof().map_or(es, |a| a as u32), union: false, leaves })
            }
            _ => self.scalar(c)?,
        })
    }

    fn scalar(&self, c: Type<'_>) -> Result<Ty, String> {
        Ok(match c.get_kind() {
            TypeKind::Void => Ty::Void,
            TypeKind::Bool | TypeKind::UChar => Ty::U(8),
            TypeKind::CharS | TypeKind::CharU => Ty::Char,
            TypeKind::SChar => Ty::I(8),
            TypeKind::Short => Ty::I(16),
            TypeKind::UShort | TypeKind::Char16 => Ty::U(16),
            TypeKind::Int => Ty::I(32),
            TypeKind::UInt | TypeKind::Char32 => Ty::U(32),
            TypeKind::WChar => Ty::I(32),
            TypeKind::Long | TypeKind::LongLong => Ty::I(64),
            TypeKind::ULong | TypeKind::ULongLong => Ty::U(64),
            TypeKind::Float => Ty::F32,
            TypeKind::Double => Ty::F64,
            TypeKind::LongDouble => Ty::LongDouble,
            TypeKind::Pointer => Ty::Ptr,
            TypeKind::Enum => {
                let u = c.get_declaration().and_then(|d| d.get_enum_underlying_type());
                match u {
                    Some(u) => self.scalar(u.get_canonical_type())?,
                    None => Ty::I(32),
                }
            }
            _ => return Err(format!("unsupported type `{}`", c.get_display_name())),
        })
    }

    /// Flatten an aggregate passed by value into leaves (only for sizes the conventions pass in
    /// registers; larger ones go through memory on both sides and need only size and alignment).
    fn aggregate(&self, c: Type<'_>) -> Result<Aggregate, String> {
        let size = c.get_sizeof().map_err(|_| format!("incomplete type `{}` by value", c.get_display_name()))? as u32;
        let align = c.get_alignof().map_err(|_| format!("no alignment for `{}`", c.get_display_name()))? as u32;
        let mut agg = Aggregate { size, align, union: false, leaves: Vec::new() };
        let mut leaves = Vec::new();
        self.flatten(c, 0, &mut agg.union, &mut leaves, 0)?;
        leaves.sort_by_key(|l: &Leaf| l.offset);
        leaves.dedup();
        let has_ld = leaves.iter().any(|l| l.ty == Ty::LongDouble);
        if size <= 16 || has_ld {
            agg.leaves = leaves;
        }
        Ok(agg)
    }

    fn flatten(&self, c: Type<'_>, base: u32, union: &mut bool, out: &mut Vec<Leaf>, depth: u32) -> Result<(), String> {
        if depth > 16 || out.len() > 64 {
            return Ok(());
        }
        match c.get_kind() {
            TypeKind::Record => {
                let is_union = c.get_declaration().map(|d| d.get_kind()) == Some(EntityKind::UnionDecl);
                *union |= is_union;
                for f in c.get_fields().unwrap_or_default() {
                    let Some(ft) = f.get_type() else { continue };
                    let ft = ft.get_canonical_type();
                    let bits = f.get_offset_of_field().unwrap_or(0) as u32;
                    if f.is_bit_field() {
                        if f.get_bit_field_width() == Some(0) {
                            continue;
                        }
                        let unit = ft.get_sizeof().unwrap_or(4).max(1) as u32;
                        let off = base + bits / 8 / unit * unit;
                        out.push(Leaf { offset: off, ty: self.scalar(ft)? });
                        continue;
                    }
                    self.flatten(ft, base + bits / 8, union, out, depth + 1)?;
                }
            }
            TypeKind::Complex => {
                let e = c.get_element_type().ok_or("complex without element type")?.get_canonical_type();
                let es = e.get_sizeof().unwrap_or(0) as u32;
                let t = self.scalar(e)?;
                out.push(Leaf { offset: base, ty: t.clone() });
                out.push(Leaf { offset: base + es, ty: t });
            }
            TypeKind::ConstantArray => {
                let e = c.get_element_type().ok_or("array without element type")?.get_canonical_type();
                let es = e.get_sizeof().unwrap_or(0) as u32;
                let n = c.get_size().unwrap_or(0) as u32;
                for i in 0..n.min(64) {
                    self.flatten(e, base + i * es, union, out, depth + 1)?;
                }
            }
            TypeKind::IncompleteArray => {}
            _ => out.push(Leaf { offset: base, ty: self.scalar(c)? }),
        }
        Ok(())
    }

    fn record_key(&self, c: Type<'_>) -> String {
        let decl = c.get_declaration();
        let tag = match decl.map(|d| d.get_kind()) {
            Some(EntityKind::UnionDecl) => "union",
            _ => "struct",
        };
        match decl.and_then(|d| d.get_name()).filter(|n| !n.is_empty()) {
            Some(n) => format!("{tag} {n}"),
            None => {
                let mut s = c.get_display_name().replace("const ", "").replace("volatile ", "");
                for p in &self.strip {
                    s = s.replace(p.as_str(), "");
                }
                s
            }
        }
    }

    /// A canonical text for a type as stored in memory; records reached are added to `refs` and
    /// described in `db.records`. Returns (text, holds a long double, holds a va_list).
    fn shape(&mut self, ty: Type<'_>, refs: &mut Vec<String>, depth: u32) -> (String, bool, bool) {
        if depth > 24 {
            return ("…".into(), false, false);
        }
        if Self::is_valist(ty) && ty.get_canonical_type().get_kind() != TypeKind::Pointer {
            return ("va_list".into(), false, true);
        }
        if Self::is_binary128(ty) {
            return ("binary128".into(), false, false);
        }
        let c = ty.get_canonical_type();
        match c.get_kind() {
            TypeKind::Pointer => {
                // Keep typedef names on the pointee (riscv64 `_Float128 *`).
                let Some(p) = sugared_pointee(ty).or_else(|| c.get_pointee_type()) else { return ("*?".into(), false, false) };
                if matches!(p.get_canonical_type().get_kind(), TypeKind::FunctionPrototype | TypeKind::FunctionNoPrototype) {
                    let (s, _, _) = self.fn_shape(p, refs, depth + 1);
                    return (format!("*{s}"), false, false);
                }
                let (s, ld, vl) = self.shape(p, refs, depth + 1);
                (format!("*{s}"), ld, vl)
            }
            TypeKind::ConstantArray | TypeKind::IncompleteArray | TypeKind::VariableArray => {
                let n = c.get_size().map_or(String::new(), |n| n.to_string());
                match c.get_element_type() {
                    Some(e) => {
                        let (s, ld, vl) = self.shape(e, refs, depth + 1);
                        (format!("[{n}]{s}"), ld, vl)
                    }
                    None => (format!("[{n}]?"), false, false),
                }
            }
            TypeKind::Record => {
                let key = self.record_key(c);
                if !refs.contains(&key) {
                    refs.push(key.clone());
                }
                self.record(c, &key);
                let r = &self.db.records[&key];
                (key, r.long_double, r.valist)
            }
            TypeKind::FunctionPrototype | TypeKind::FunctionNoPrototype => self.fn_shape(c, refs, depth),
            TypeKind::LongDouble => ("f80|128".into(), true, false),
            TypeKind::Complex => {
                let (s, ld, vl) = c.get_element_type().map_or(("?".into(), false, false), |e| self.shape(e, refs, depth + 1));
                (format!("complex {s}"), ld, vl)
            }
            TypeKind::Enum => (format!("enum{}", c.get_sizeof().unwrap_or(0)), false, false),
            // Plain char is signed on x86-64 and unsigned on riscv64; the bytes are the same.
            TypeKind::CharS | TypeKind::CharU => ("char".into(), false, false),
            _ => (
                format!("{:?}{}", c.get_kind(), c.get_sizeof().map_or(String::new(), |s| s.to_string())),
                false,
                false,
            ),
        }
    }

    fn fn_shape(&mut self, f: Type<'_>, refs: &mut Vec<String>, depth: u32) -> (String, bool, bool) {
        let mut s = String::from("fn(");
        for (i, a) in f.get_argument_types().unwrap_or_default().into_iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&self.shape(a, refs, depth + 1).0);
        }
        s.push_str(")->");
        if let Some(r) = f.get_result_type() {
            s.push_str(&self.shape(r, refs, depth + 1).0);
        }
        (s, false, false)
    }

    fn record(&mut self, c: Type<'_>, key: &str) {
        if self.db.records.contains_key(key) {
            return;
        }
        // Placeholder first: records refer to themselves through pointers.
        self.db.records.insert(key.to_owned(), RecordInfo::default());
        let mut info = RecordInfo::default();
        let (Ok(size), Ok(align)) = (c.get_sizeof(), c.get_alignof()) else {
            info.layout = "?".into();
            self.db.records.insert(key.to_owned(), info);
            return;
        };
        info.size = size as u64;
        info.align = align as u64;
        let mut layout = format!("{size}/{align}{{");
        let mut refs = Vec::new();
        for f in c.get_fields().unwrap_or_default() {
            let name = f.get_name().unwrap_or_default();
            if name.starts_with("__") {
                continue;
            }
            let Some(ft) = f.get_type() else { continue };
            let bits = f.get_offset_of_field().unwrap_or(0) as u64;
            let (mut s, ld, vl) = self.shape(ft, &mut refs, 1);
            if f.is_bit_field() {
                s = format!("{s}:{}", f.get_bit_field_width().unwrap_or(0));
            }
            info.long_double |= ld;
            info.valist |= vl;
            layout.push_str(&format!("{name}@{bits}:{s};"));
            info.fields.push((name.clone(), bits, s));
            let fc = ft.get_canonical_type();
            if fc.get_kind() == TypeKind::Pointer {
                if let Some(p) = fc.get_pointee_type() {
                    if matches!(p.get_canonical_type().get_kind(), TypeKind::FunctionPrototype | TypeKind::FunctionNoPrototype) {
                        let mut d = Decl {
                            name: name.clone(),
                            sig: None,
                            var_size: 0,
                            refs: Vec::new(),
                            mem_long_double: false,
                            mem_valist: false,
                            shape: String::new(),
                        };
                        let sig = self.signature(sugared_pointee(ft).unwrap_or(p), &mut d, 1);
                        info.fn_fields.push((name, sig));
                    }
                }
            }
        }
        layout.push('}');
        info.layout = layout;
        info.refs = refs;
        self.db.records.insert(key.to_owned(), info);
    }
}
