//! The manifest format: its reader, its writer, and the load-time check against a host library's
//! real exports. The format itself is described in `abi/MANIFEST.md`.
//!
//! A manifest is text, one record per line, so that regenerating it gives a readable diff. The
//! reader is strict: anything it does not understand is an error naming the file and line, because
//! a silently skipped record would send a call down the wrong path at run time.

use crate::types::{parse_sig, Signature};
use core::fmt;
use std::collections::HashMap;
use std::path::Path;

/// The format version this reader accepts (the first directive of every manifest).
pub const FORMAT_VERSION: u32 = 1;

/// A parsed manifest for one SONAME.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// Where the text came from (a path, or a name given by the caller), for messages.
    pub origin: String,
    pub soname: String,
    /// `(package, version)` pairs the headers came from.
    pub packages: Vec<(String, String)>,
    /// Other `key value` header directives (`suite`, `header`, `generator`...), in order.
    pub info: Vec<(String, String)>,
    pub records: Vec<Record>,
    /// Comment lines written after the header (the reader does not keep comments).
    pub comments: Vec<String>,
    index: HashMap<String, usize>,
}

/// One symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line in the origin.
    pub line: u32,
    pub name: String,
    /// The guest-side symbol version (`GLIBC_2.2.5`), if the library versions its symbols.
    pub version: Option<String>,
    pub kind: Kind,
    pub class: Class,
    /// The text after `#` on the record's line; overrides must give one (their reason).
    pub note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Func(Signature),
    Data { size: u64 },
    /// A function-pointer field of a struct that native code may call (`Tag.field`): the fault
    /// path uses its signature when such a pointer holds a guest function.
    Field(Signature),
    /// Exported, but no header declares it (`?` in place of the signature or size); always
    /// excluded.
    Undeclared { func: bool },
}

/// How the bridge treats a symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Arguments move by the two conventions' rules and nothing else.
    Pass,
    /// Needs these generic, named conversions (in the bridge, not per-library code).
    Convert(Vec<Conversion>),
    /// Not bridged: the guest's own copy runs emulated, unless an override says otherwise.
    Exclude { reason: Reason, detail: String },
}

/// A conversion the generic bridge path knows how to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conversion {
    /// `long double` arguments or result: x87 80-bit ⇄ binary128.
    LongDouble,
    /// A `va_list` argument typed by a format string.
    VaList,
    /// printf-like variadic arguments, typed by the format string.
    VarargsPrintf,
    /// scanf-like variadic arguments (all pointers after the format).
    VarargsScanf,
    /// A struct or union passed or returned by value.
    StructByValue,
    /// A function pointer argument or result: a guest callback is wrapped in a host trampoline.
    Callback,
    /// A kernel-defined struct whose layout differs (`stat`, `epoll_event`, ...), by its tag.
    KernelStruct(String),
}

/// Why a symbol is excluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A reachable type differs in size, alignment or field offsets between the targets.
    Layout,
    /// A `long double` is reached through memory (pointer or by-value aggregate field).
    LongDoubleInMemory,
    /// A `va_list` whose element types no format string gives.
    VaListUntyped,
    /// Varargs whose types no format string gives.
    VarargsUntyped,
    /// A type the conventions here do not carry (`__int128`, `_Float128`, vectors...).
    UnsupportedType,
    /// Exported by the library but declared in no public header the generator read.
    NoPrototype,
    /// The guest library exports it but the host library of the same version does not.
    HostLacks,
    /// Needs a hand-written handler in ld-nc (process, thread, signal or loader state).
    Handler,
    /// Exported under a reserved name (leading underscore, `avpriv_`, version `GLIBC_PRIVATE`)
    /// for the library family itself or for compiler-generated calls; no public header declares
    /// it, so no program can call it through the public API.
    Internal,
}

const REASONS: [(Reason, &str); 9] = [
    (Reason::Layout, "layout"),
    (Reason::LongDoubleInMemory, "long-double-in-memory"),
    (Reason::VaListUntyped, "va-list-untyped"),
    (Reason::VarargsUntyped, "varargs-untyped"),
    (Reason::UnsupportedType, "unsupported-type"),
    (Reason::NoPrototype, "no-prototype"),
    (Reason::HostLacks, "host-lacks"),
    (Reason::Handler, "handler"),
    (Reason::Internal, "internal"),
];

impl Reason {
    pub fn name(self) -> &'static str {
        REASONS.iter().find(|(r, _)| *r == self).map_or("?", |(_, n)| n)
    }

    fn from_name(s: &str) -> Option<Self> {
        REASONS.iter().find(|(_, n)| *n == s).map(|(r, _)| *r)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Conversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conversion::LongDouble => f.write_str("long-double"),
            Conversion::VaList => f.write_str("va-list"),
            Conversion::VarargsPrintf => f.write_str("varargs-printf"),
            Conversion::VarargsScanf => f.write_str("varargs-scanf"),
            Conversion::StructByValue => f.write_str("struct-by-value"),
            Conversion::Callback => f.write_str("callback"),
            Conversion::KernelStruct(tag) => write!(f, "kernel-struct:{tag}"),
        }
    }
}

impl Conversion {
    fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "long-double" => Conversion::LongDouble,
            "va-list" => Conversion::VaList,
            "varargs-printf" => Conversion::VarargsPrintf,
            "varargs-scanf" => Conversion::VarargsScanf,
            "struct-by-value" => Conversion::StructByValue,
            "callback" => Conversion::Callback,
            _ => {
                let tag = s.strip_prefix("kernel-struct:")?;
                if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return None;
                }
                Conversion::KernelStruct(tag.to_owned())
            }
        })
    }
}

/// A manifest that could not be read: where, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: u32,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for ManifestError {}

/// Longest line the reader accepts: generated records are far shorter, and a bound keeps a
/// corrupt file from being held in memory record by record.
const MAX_LINE: usize = 64 * 1024;

fn valid_symbol(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'))
}

impl Manifest {
    /// Read a manifest file.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let origin = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Self::parse(&text, &origin),
                Err(e) => Err(ManifestError {
                    file: origin,
                    line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count() as u32,
                    message: "not UTF-8 text".into(),
                }),
            },
            Err(e) => Err(ManifestError { file: origin, line: 0, message: e.to_string() }),
        }
    }

    /// Parse manifest text; `origin` names it in errors (a path or any label).
    pub fn parse(text: &str, origin: &str) -> Result<Manifest, ManifestError> {
        let mut m = Manifest { origin: origin.to_owned(), ..Manifest::default() };
        let mut seen_version = false;
        for (i, raw) in text.lines().enumerate() {
            let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let err = |message: String| ManifestError { file: origin.to_owned(), line, message };
            if raw.len() > MAX_LINE {
                return Err(err(format!("line longer than {MAX_LINE} bytes")));
            }
            let (body, note) = match raw.find('#') {
                Some(p) => (&raw[..p], Some(raw[p + 1..].trim())),
                None => (raw, None),
            };
            let mut words = body.split_whitespace();
            let Some(first) = words.next() else { continue };
            if !seen_version {
                if first != "ld-nc-manifest" {
                    return Err(err("the first line must be `ld-nc-manifest 1`".into()));
                }
                match words.next().map(str::parse::<u32>) {
                    Some(Ok(FORMAT_VERSION)) => {}
                    _ => return Err(err(format!("unsupported format version (expected {FORMAT_VERSION})"))),
                }
                if words.next().is_some() {
                    return Err(err("unexpected text after the format version".into()));
                }
                seen_version = true;
                continue;
            }
            match first {
                "func" | "data" | "field" => {
                    let rec = parse_record(first, &mut words, line, note).map_err(err)?;
                    if m.soname.is_empty() {
                        return Err(err("a record before the `soname` directive".into()));
                    }
                    let key = rec.name.clone();
                    if let Some(&prev) = m.index.get(&key) {
                        let prev_line = m.records[prev].line;
                        return Err(err(format!("duplicate symbol `{key}` (first at line {prev_line})")));
                    }
                    m.index.insert(key, m.records.len());
                    m.records.push(rec);
                }
                "soname" => {
                    let (Some(v), None) = (words.next(), words.next()) else {
                        return Err(err("`soname` takes exactly one value".into()));
                    };
                    if !m.soname.is_empty() {
                        return Err(err("second `soname` directive".into()));
                    }
                    if !v.starts_with("lib") || !v.contains(".so") {
                        return Err(err(format!("`{v}` does not look like a SONAME")));
                    }
                    v.clone_into(&mut m.soname);
                }
                "package" => {
                    let (Some(p), Some(v), None) = (words.next(), words.next(), words.next()) else {
                        return Err(err("`package` takes a name and a version".into()));
                    };
                    m.packages.push((p.to_owned(), v.to_owned()));
                }
                "suite" | "header" | "generator" | "target" | "family" => {
                    let rest: Vec<&str> = words.collect();
                    if rest.is_empty() {
                        return Err(err(format!("`{first}` needs a value")));
                    }
                    m.info.push((first.to_owned(), rest.join(" ")));
                }
                other => return Err(err(format!("unknown directive or record kind `{other}`"))),
            }
        }
        if !seen_version {
            return Err(ManifestError {
                file: origin.to_owned(),
                line: 0,
                message: "empty manifest (no `ld-nc-manifest 1` line)".into(),
            });
        }
        if m.soname.is_empty() {
            return Err(ManifestError {
                file: origin.to_owned(),
                line: 0,
                message: "no `soname` directive".into(),
            });
        }
        Ok(m)
    }

    /// The record for a symbol name (without version).
    pub fn get(&self, name: &str) -> Option<&Record> {
        self.index.get(name).map(|&i| &self.records[i])
    }

    /// Replace or add records from a hand-written override manifest for the same SONAME. Every
    /// override record must say why in its `#` note.
    pub fn apply_overrides(&mut self, ov: &Manifest) -> Result<(), ManifestError> {
        if ov.soname != self.soname {
            return Err(ManifestError {
                file: ov.origin.clone(),
                line: 0,
                message: format!("overrides are for {} but the manifest is for {}", ov.soname, self.soname),
            });
        }
        for r in &ov.records {
            if r.note.as_deref().is_none_or(str::is_empty) {
                return Err(ManifestError {
                    file: ov.origin.clone(),
                    line: r.line,
                    message: format!("override of `{}` does not say why (add `# reason`)", r.name),
                });
            }
            match self.index.get(&r.name) {
                Some(&i) => self.records[i] = r.clone(),
                None => {
                    self.index.insert(r.name.clone(), self.records.len());
                    self.records.push(r.clone());
                }
            }
        }
        Ok(())
    }

    /// Build a manifest in memory (used by the generator); `records` must have unique names.
    pub fn new(soname: &str, packages: Vec<(String, String)>, info: Vec<(String, String)>, records: Vec<Record>) -> Manifest {
        let index = records.iter().enumerate().map(|(i, r)| (r.name.clone(), i)).collect();
        Manifest { origin: String::new(), soname: soname.to_owned(), packages, info, records, comments: Vec::new(), index }
    }
}

fn parse_record<'a>(
    kind: &str,
    words: &mut impl Iterator<Item = &'a str>,
    line: u32,
    note: Option<&str>,
) -> Result<Record, String> {
    let sym = words.next().ok_or("record without a symbol name")?;
    let (name, version) = match sym.split_once('@') {
        Some((n, v)) => {
            let v = v.strip_prefix('@').unwrap_or(v);
            if !valid_symbol(v) {
                return Err(format!("bad symbol version in `{sym}`"));
            }
            (n, Some(v.to_owned()))
        }
        None => (sym, None),
    };
    if !valid_symbol(name) {
        return Err(format!("bad symbol name `{sym}`"));
    }
    let what = words.next().ok_or_else(|| format!("`{name}`: missing {}", if kind == "data" { "size" } else { "signature" }))?;
    if kind == "field" && (version.is_some() || !name.contains('.')) {
        return Err(format!("field record `{sym}` must be named `Tag.field`, without a version"));
    }
    let kind = if what == "?" && kind != "field" {
        Kind::Undeclared { func: kind == "func" }
    } else if kind != "data" {
        let sig = parse_sig(what).map_err(|e| format!("`{name}`: bad signature `{what}`: {e}"))?;
        if kind == "func" { Kind::Func(sig) } else { Kind::Field(sig) }
    } else {
        match what.parse::<u64>() {
            Ok(size) => Kind::Data { size },
            Err(_) => return Err(format!("`{name}`: data size `{what}` is not a number")),
        }
    };
    let class_word = words.next().ok_or_else(|| format!("`{name}`: missing classification (pass, convert or exclude)"))?;
    let class = match class_word {
        "pass" => {
            if let Some(extra) = words.next() {
                return Err(format!("`{name}`: unexpected `{extra}` after `pass`"));
            }
            Class::Pass
        }
        "convert" => {
            let list = words.next().ok_or_else(|| format!("`{name}`: `convert` needs a list of conversions"))?;
            let mut convs = Vec::new();
            for c in list.split(',') {
                let conv = Conversion::from_name(c).ok_or_else(|| format!("`{name}`: unknown conversion `{c}`"))?;
                if convs.contains(&conv) {
                    return Err(format!("`{name}`: conversion `{c}` listed twice"));
                }
                convs.push(conv);
            }
            if let Some(extra) = words.next() {
                return Err(format!("`{name}`: unexpected `{extra}` after the conversions"));
            }
            Class::Convert(convs)
        }
        "exclude" => {
            let r = words.next().ok_or_else(|| format!("`{name}`: `exclude` needs a reason"))?;
            let reason = Reason::from_name(r).ok_or_else(|| format!("`{name}`: unknown exclusion reason `{r}`"))?;
            let detail: Vec<&str> = words.collect();
            Class::Exclude { reason, detail: detail.join(" ") }
        }
        other => return Err(format!("`{name}`: unknown classification `{other}` (pass, convert or exclude)")),
    };
    if matches!(kind, Kind::Undeclared { .. }) && !matches!(class, Class::Exclude { .. }) {
        return Err(format!("`{name}`: a symbol without a declaration (`?`) can only be excluded"));
    }
    if matches!(kind, Kind::Data { .. }) && matches!(class, Class::Convert(_)) {
        return Err(format!("`{name}`: data symbols are passed or excluded, not converted"));
    }
    Ok(Record {
        line,
        name: name.to_owned(),
        version,
        kind,
        class,
        note: note.filter(|n| !n.is_empty()).map(str::to_owned),
    })
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Func(_) => "func",
            Kind::Data { .. } => "data",
            Kind::Field(_) => "field",
            Kind::Undeclared { func: true } => "func",
            Kind::Undeclared { func: false } => "data",
        };
        write!(f, "{kind} {}", self.name)?;
        if let Some(v) = &self.version {
            write!(f, "@{v}")?;
        }
        match &self.kind {
            Kind::Func(sig) | Kind::Field(sig) => write!(f, " {sig}")?,
            Kind::Data { size } => write!(f, " {size}")?,
            Kind::Undeclared { .. } => f.write_str(" ?")?,
        }
        match &self.class {
            Class::Pass => f.write_str(" pass")?,
            Class::Convert(c) => {
                f.write_str(" convert ")?;
                for (i, c) in c.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{c}")?;
                }
            }
            Class::Exclude { reason, detail } => {
                write!(f, " exclude {reason}")?;
                if !detail.is_empty() {
                    // `#` starts a note, so it cannot appear in the detail.
                    write!(f, " {}", detail.replace('#', "_"))?;
                }
            }
        }
        if let Some(n) = &self.note {
            write!(f, "  # {n}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ld-nc-manifest {FORMAT_VERSION}")?;
        writeln!(f, "soname {}", self.soname)?;
        for (p, v) in &self.packages {
            writeln!(f, "package {p} {v}")?;
        }
        for (k, v) in &self.info {
            writeln!(f, "{k} {v}")?;
        }
        for c in &self.comments {
            writeln!(f, "# {c}")?;
        }
        for r in &self.records {
            writeln!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The outcome of checking a manifest against a host library's dynamic symbols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub soname: String,
    /// Bridgeable records (not excluded) whose symbol the host library does not export: each is
    /// listed once and left to emulation.
    pub missing: Vec<String>,
    /// Records that are bridged (not excluded, present on the host).
    pub bridged: usize,
    /// Records excluded by the manifest itself.
    pub excluded: usize,
}

/// Compare a manifest with the names a host library really exports (its dynamic symbol table;
/// versions stripped). Host symbols the manifest does not mention are fine: a newer host library
/// is never a failure.
pub fn check_against_exports(m: &Manifest, exports: &[&str]) -> Report {
    let host: std::collections::HashSet<&str> = exports.iter().map(|e| e.split('@').next().unwrap_or(e)).collect();
    let mut r = Report { soname: m.soname.clone(), ..Report::default() };
    for rec in &m.records {
        if matches!(rec.kind, Kind::Field(_)) {
            continue;
        }
        if matches!(rec.class, Class::Exclude { .. }) {
            r.excluded += 1;
        } else if host.contains(rec.name.as_str()) {
            r.bridged += 1;
        } else if !r.missing.contains(&rec.name) {
            r.missing.push(rec.name.clone());
        }
    }
    r
}

impl fmt::Display for Report {
    /// One line: what is bridged, and each missing symbol named once.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} bridged, {} excluded by the manifest", self.soname, self.bridged, self.excluded)?;
        if !self.missing.is_empty() {
            write!(f, "; the host library lacks {} (left to emulation): {}", self.missing.len(), self.missing.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# a test manifest
ld-nc-manifest 1
soname libz.so.1
package zlib1g-dev 1:1.3.1
suite trixie
func deflate@ZLIB_1.2.0 (p,i32)->i32 pass
func gzprintf (p,p,...printf2)->i32 convert varargs-printf
func stat (p,p)->i32 convert kernel-struct:stat
func setjmp (p)->i32 exclude layout struct __jmp_buf_tag: size 200 vs 312
data zlib_flag@@ZLIB_1.2.0 4 pass   # default version
";

    #[test]
    fn parses_and_round_trips() {
        let m = Manifest::parse(GOOD, "good").expect("parses");
        assert_eq!(m.soname, "libz.so.1");
        assert_eq!(m.records.len(), 5);
        let d = m.get("deflate").expect("deflate");
        assert_eq!(d.version.as_deref(), Some("ZLIB_1.2.0"));
        assert_eq!(d.class, Class::Pass);
        let z = m.get("zlib_flag").expect("data");
        assert_eq!(z.kind, Kind::Data { size: 4 });
        assert_eq!(z.note.as_deref(), Some("default version"));
        match &m.get("setjmp").expect("setjmp").class {
            Class::Exclude { reason, detail } => {
                assert_eq!(*reason, Reason::Layout);
                assert_eq!(detail, "struct __jmp_buf_tag: size 200 vs 312");
            }
            c => panic!("{c:?}"),
        }
        let again = Manifest::parse(&m.to_string(), "again").expect("re-parses");
        assert_eq!(again.records.iter().map(|r| (&r.name, &r.kind, &r.class)).collect::<Vec<_>>(),
                   m.records.iter().map(|r| (&r.name, &r.kind, &r.class)).collect::<Vec<_>>());
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad = GOOD.replace("(p,i32)->i32 pass", "(p,i32)->i32 passs");
        let e = Manifest::parse(&bad, "z.manifest").expect_err("bad class");
        assert_eq!(e.line, 6);
        assert_eq!(e.to_string(), "z.manifest:6: `deflate`: unknown classification `passs` (pass, convert or exclude)");
        let dup = format!("{GOOD}func deflate (p)->v pass\n");
        let e = Manifest::parse(&dup, "d").expect_err("dup");
        assert_eq!(e.to_string(), "d:11: duplicate symbol `deflate` (first at line 6)");
    }

    #[test]
    fn overrides_must_say_why() {
        let mut m = Manifest::parse(GOOD, "good").expect("parses");
        let ov = Manifest::parse("ld-nc-manifest 1\nsoname libz.so.1\nfunc setjmp (p)->i32 exclude handler\n", "ov").expect("ov");
        let e = m.apply_overrides(&ov).expect_err("no reason");
        assert_eq!(e.to_string(), "ov:3: override of `setjmp` does not say why (add `# reason`)");
        let ov = Manifest::parse("ld-nc-manifest 1\nsoname libz.so.1\nfunc setjmp (p)->i32 exclude handler # ld-nc saves guest state\n", "ov").expect("ov");
        m.apply_overrides(&ov).expect("applies");
        assert!(matches!(m.get("setjmp").expect("setjmp").class, Class::Exclude { reason: Reason::Handler, .. }));
    }

    #[test]
    fn export_check_reports_missing_once() {
        let m = Manifest::parse(GOOD, "good").expect("parses");
        let r = check_against_exports(&m, &["deflate@@ZLIB_1.2.0", "stat", "inflate", "zlib_flag"]);
        assert_eq!(r.missing, vec!["gzprintf".to_owned()]);
        assert_eq!(r.bridged, 3);
        assert_eq!(r.excluded, 1);
        assert_eq!(r.to_string(), "libz.so.1: 3 bridged, 1 excluded by the manifest; the host library lacks 1 (left to emulation): gzprintf");
    }
}
