//! The header-driven manifest generator (feature `generator`; needs libclang).
//!
//! For each library family (glibc, FFmpeg, zlib, LAME) it parses the family's public headers once
//! as `x86_64-linux-gnu` against the amd64 tree and once as `riscv64-linux-gnu` against the
//! riscv64 tree, reads the exported symbols from the amd64 `.so` (the guest's view) and the
//! riscv64 `.so` (the host's), and writes one manifest per SONAME. The table of families below is
//! data — which packages, which SONAMEs — never per-function knowledge.

pub mod classify;
pub mod walk;

use crate::manifest::{Class, Conversion, Kind, Manifest, Reason, Record};
use clang::{diagnostic::Severity, Clang, Index, Unsaved};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use walk::{TargetDb, Walker};

/// One target to parse headers for.
#[derive(Clone, Debug)]
pub struct Target {
    pub triple: &'static str,
    /// Debian architecture name (folder under `sysroot/out/`).
    pub arch: &'static str,
    /// Compiler arguments giving the target and its include directories.
    pub args: Vec<String>,
}

impl Target {
    /// A target reading the fetched Debian tree at `root` (`sysroot/out/<arch>`).
    pub fn sysroot(triple: &'static str, arch: &'static str, root: &Path) -> Target {
        let r = root.display();
        Target {
            triple,
            arch,
            args: vec![
                format!("--target={triple}"),
                format!("--sysroot={r}"),
                "-nostdlibinc".into(),
                format!("-isystem{r}/usr/include/{triple}"),
                format!("-isystem{r}/usr/include"),
            ],
        }
    }

    /// The build machine's own headers (`/usr/include` and the Debian cross package), for tests
    /// that must not depend on a fetched sysroot.
    pub fn system(triple: &'static str, arch: &'static str) -> Target {
        let mut args = vec![format!("--target={triple}"), "-nostdlibinc".into()];
        if triple.starts_with("x86_64") {
            args.push(format!("-isystem/usr/include/{triple}"));
            args.push("-isystem/usr/include".into());
        } else {
            args.push(format!("-isystem/usr/{triple}/include"));
        }
        Target { triple, arch, args }
    }
}

fn is_error(s: Severity) -> bool {
    matches!(s, Severity::Error | Severity::Fatal)
}

/// Parse `source` (C text) for one target; returns the declarations and error messages.
pub fn parse_source(index: &Index<'_>, target: &Target, defines: &[&str], source: &str, strip: &[String]) -> Result<TargetDb, Vec<String>> {
    parse_source_with(index, target, defines, source, strip, false)
}

fn parse_source_with(
    index: &Index<'_>,
    target: &Target,
    defines: &[&str],
    source: &str,
    strip: &[String],
    tolerate_errors: bool,
) -> Result<TargetDb, Vec<String>> {
    let name = "ld-nc-abi-gen.c";
    let mut args: Vec<String> = target.args.clone();
    args.extend(defines.iter().map(|d| (*d).to_owned()));
    args.push("-std=gnu17".into());
    args.push("-w".into());
    let tu = index
        .parser(name)
        .arguments(&args)
        .unsaved(&[Unsaved::new(name, source)])
        .detailed_preprocessing_record(true)
        .skip_function_bodies(true)
        .parse()
        .map_err(|e| vec![format!("{}: libclang: {e}", target.triple)])?;
    let errors: Vec<String> = tu
        .get_diagnostics()
        .into_iter()
        .filter(|d| is_error(d.get_severity()))
        .map(|d| {
            let loc = d.get_location().get_file_location();
            let file = loc.file.map(|f| f.get_path().display().to_string()).unwrap_or_default();
            format!("{}: {file}:{}: {}", target.triple, loc.line, d.get_text())
        })
        .collect();
    if !errors.is_empty() && !tolerate_errors {
        return Err(errors);
    }
    let mut w = Walker::new(strip.to_vec());
    w.walk_tu(tu.get_entity());
    Ok(w.db)
}

fn includes(headers: &[String]) -> String {
    headers.iter().map(|h| format!("#include <{h}>\n")).collect()
}

/// One family of libraries sharing headers.
#[derive(Clone, Debug)]
pub struct Family {
    pub name: &'static str,
    /// `-dev` packages whose headers are read.
    pub dev: &'static [&'static str],
    /// Header prefixes to skip (internal headers that must not be included directly).
    pub skip_prefixes: &'static [&'static str],
    /// Define sets: each is parsed and the declarations merged (glibc redirects some names, e.g.
    /// `__isoc23_strtol`, only under `_GNU_SOURCE`, so both spellings are seen).
    pub defines: &'static [&'static [&'static str]],
    /// (SONAME, runtime package).
    pub libs: &'static [(&'static str, &'static str)],
    /// Extra header files under `sysroot/` read with the family's own headers.
    pub extra: &'static [&'static str],
}

/// The libraries the checked-in manifests cover.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "glibc",
        dev: &["libc6-dev"],
        skip_prefixes: &["bits/", "gnu/", "finclude/"],
        // The third set declares the `_FORTIFY_SOURCE` entry points (`__printf_chk`,
        // `__memcpy_chk`...) that most Debian binaries call.
        defines: &[&["-D_GNU_SOURCE"], &[], &["-D_GNU_SOURCE", "-D_FORTIFY_SOURCE=2", "-O2"]],
        libs: &[
            ("libc.so.6", "libc6"),
            ("libm.so.6", "libc6"),
            ("libpthread.so.0", "libc6"),
            ("libdl.so.2", "libc6"),
            ("librt.so.1", "libc6"),
        ],
        extra: &["compiler-abi.h"],
    },
    Family {
        name: "zlib",
        dev: &["zlib1g-dev"],
        skip_prefixes: &[],
        defines: &[&[], &["-D_LARGEFILE64_SOURCE"]],
        libs: &[("libz.so.1", "zlib1g")],
        extra: &[],
    },
    Family {
        name: "ffmpeg",
        dev: &[
            "libavutil-dev",
            "libavcodec-dev",
            "libavformat-dev",
            "libavfilter-dev",
            "libavdevice-dev",
            "libswresample-dev",
            "libswscale-dev",
        ],
        skip_prefixes: &[],
        defines: &[&[], &["-D_LARGEFILE64_SOURCE"]],
        libs: &[
            ("libavcodec.so.61", "libavcodec61"),
            ("libavformat.so.61", "libavformat61"),
            ("libavutil.so.59", "libavutil59"),
            ("libavfilter.so.10", "libavfilter10"),
            ("libavdevice.so.61", "libavdevice61"),
            ("libswresample.so.5", "libswresample5"),
            ("libswscale.so.8", "libswscale8"),
        ],
        extra: &[],
    },
    Family {
        name: "lame",
        dev: &["libmp3lame-dev"],
        skip_prefixes: &[],
        defines: &[&[], &["-D_LARGEFILE64_SOURCE"]],
        libs: &[("libmp3lame.so.0", "libmp3lame0")],
        extra: &[],
    },
];

/// A dynamic symbol of a shared library.
#[derive(Clone, Debug)]
pub struct Export {
    pub name: String,
    pub version: Option<String>,
    pub func: bool,
}

/// The defined dynamic symbols of `so` (via binutils `nm -D`), one per name: the default version
/// wins over hidden ones.
pub fn exports(so: &Path) -> Result<Vec<Export>, String> {
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only", "--with-symbol-versions"])
        .arg(so)
        .output()
        .map_err(|e| format!("nm {}: {e}", so.display()))?;
    if !out.status.success() {
        return Err(format!("nm {}: {}", so.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let mut by_name: BTreeMap<String, (Export, bool)> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (ty, sym) = match f.as_slice() {
            [_, t, s] => (*t, *s),
            _ => continue,
        };
        let func = matches!(ty, "T" | "W" | "i");
        if !func && !matches!(ty, "D" | "B" | "R" | "V" | "u" | "G" | "S") {
            continue;
        }
        let (name, version, default) = match sym.split_once('@') {
            Some((n, v)) => match v.strip_prefix('@') {
                Some(v) => (n, Some(v.to_owned()), true),
                None => (n, Some(v.to_owned()), false),
            },
            None => (sym, None, true),
        };
        let e = Export { name: name.to_owned(), version, func };
        match by_name.get(name) {
            Some((_, true)) => {}
            _ => {
                by_name.insert(name.to_owned(), (e, default));
            }
        }
    }
    Ok(by_name.into_values().map(|(e, _)| e).collect())
}

/// Paths of the sysroot the generator reads and writes.
#[derive(Clone, Debug)]
pub struct Sysroot {
    pub root: PathBuf,
}

impl Sysroot {
    pub fn out(&self, arch: &str) -> PathBuf {
        self.root.join("out").join(arch)
    }

    /// Versions recorded by `fetch.sh`.
    pub fn versions(&self) -> Result<HashMap<String, String>, String> {
        let p = self.root.join("versions.lock");
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e} (run sysroot/fetch.sh)", p.display()))?;
        let mut v: HashMap<String, String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_owned(), b.trim().to_owned()))
            .collect();
        if let Some(s) = text.lines().find_map(|l| l.strip_prefix("# suite: ")) {
            v.insert("suite".into(), s.trim().to_owned());
        }
        Ok(v)
    }

    /// The public headers of a `-dev` package, as include names (`stdio.h`, `libavcodec/avcodec.h`).
    pub fn headers(&self, pkg: &str, triple: &str, skip: &[&str]) -> Result<Vec<String>, String> {
        let p = self.out("amd64").join("lists").join(format!("{pkg}.list"));
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e} (run sysroot/fetch.sh)", p.display()))?;
        let multi = format!("/usr/include/{triple}/");
        let mut out = BTreeSet::new();
        for l in text.lines() {
            if !l.ends_with(".h") {
                continue;
            }
            let rel = l.strip_prefix(&multi).or_else(|| l.strip_prefix("/usr/include/"));
            if let Some(rel) = rel {
                if !skip.iter().any(|s| rel.starts_with(s)) {
                    out.insert(rel.to_owned());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    pub fn lib_path(&self, arch: &str, triple: &str, soname: &str) -> PathBuf {
        self.out(arch).join("usr/lib").join(triple).join(soname)
    }
}

/// The parse of one family on both targets.
#[derive(Debug)]
pub struct FamilyDb {
    pub x: TargetDb,
    pub r: TargetDb,
    pub headers: Vec<String>,
    pub skipped: Vec<String>,
    /// Integer constants (object-like macros of the family's own headers) whose values differ
    /// between the targets: (name, x86-64 value, riscv64 value).
    pub constants: Vec<(String, i128, i128)>,
}

/// Evaluate every public object-like macro defined by the family's own headers on both targets
/// and return those whose integer values differ. The generator cannot tell which functions take
/// which constants, so these are listed in the manifests for the people writing handlers.
pub fn differing_constants(
    index: &Index<'_>,
    targets: [&Target; 2],
    defines: &[&str],
    headers: &[String],
    x: &TargetDb,
    r: &TargetDb,
    own: &dyn Fn(&str) -> bool,
) -> Vec<(String, i128, i128)> {
    let names: Vec<&String> = x.macros.iter().filter(|(n, f)| r.macros.contains_key(*n) && own(f)).map(|(n, _)| n).collect();
    let mut src = includes(headers);
    for n in &names {
        // Macros that are not integer constant expressions just fail to evaluate.
        src.push_str(&format!("static const long long __ldnc_c_{n} = (long long)({n});\n"));
    }
    let eval = |t: &Target| parse_source_with(index, t, defines, &src, &[], true).map(|db| db.constants).unwrap_or_default();
    let (cx, cr) = (eval(targets[0]), eval(targets[1]));
    cx.iter()
        .filter_map(|(n, vx)| cr.get(n).filter(|vr| *vr != vx).map(|vr| (n.clone(), *vx, *vr)))
        .collect()
}

fn merge(into: &mut TargetDb, from: TargetDb) {
    for (k, v) in from.decls {
        into.decls.entry(k).or_insert(v);
    }
    for (k, v) in from.records {
        into.records.entry(k).or_insert(v);
    }
    for (k, v) in from.macros {
        into.macros.entry(k).or_insert(v);
    }
}

/// Parse a family's headers on both targets. Headers that do not compile alone on both targets
/// (vendor-API headers such as `libavutil/hwcontext_cuda.h`, x86-only `sys/io.h`) are skipped and
/// listed.
pub fn parse_family(index: &Index<'_>, sys: &Sysroot, fam: &Family, log: &mut dyn FnMut(&str)) -> Result<FamilyDb, String> {
    let tx = Target::sysroot("x86_64-linux-gnu", "amd64", &sys.out("amd64"));
    let tr = Target::sysroot("riscv64-linux-gnu", "riscv64", &sys.out("riscv64"));
    let strip = vec![
        format!("{}/usr/include/{}/", sys.out("amd64").display(), tx.triple),
        format!("{}/usr/include/{}/", sys.out("riscv64").display(), tr.triple),
        format!("{}/usr/include/", sys.out("amd64").display()),
        format!("{}/usr/include/", sys.out("riscv64").display()),
    ];
    let mut candidates = Vec::new();
    for pkg in fam.dev {
        candidates.extend(sys.headers(pkg, tx.triple, fam.skip_prefixes)?);
    }
    let defines = fam.defines.first().copied().unwrap_or(&[]);
    let mut headers = Vec::new();
    let mut skipped = Vec::new();
    for h in candidates {
        let src = includes(std::slice::from_ref(&h));
        let ok = parse_source(index, &tx, defines, &src, &strip).is_ok() && parse_source(index, &tr, defines, &src, &strip).is_ok();
        if ok {
            headers.push(h);
        } else {
            skipped.push(h);
        }
    }
    for e in fam.extra {
        headers.push(sys.root.join(e).display().to_string());
    }
    log(&format!("{}: {} headers, {} skipped", fam.name, headers.len(), skipped.len()));
    let mut x = TargetDb::default();
    let mut r = TargetDb::default();
    for defs in fam.defines {
        // Headers that conflict with each other are dropped one by one, naming the culprit.
        loop {
            let src = includes(&headers);
            let px = parse_source(index, &tx, defs, &src, &strip);
            let pr = parse_source(index, &tr, defs, &src, &strip);
            match (px, pr) {
                (Ok(a), Ok(b)) => {
                    merge(&mut x, a);
                    merge(&mut r, b);
                    break;
                }
                (Err(e), _) | (_, Err(e)) => {
                    let first = e.first().cloned().unwrap_or_default();
                    let culprit = headers.iter().position(|h| first.contains(&format!("/{h}:")));
                    match culprit {
                        Some(i) => {
                            log(&format!("{}: dropping {} ({first})", fam.name, headers[i]));
                            skipped.push(headers.remove(i));
                        }
                        None => return Err(format!("{}: headers do not parse together: {}", fam.name, e.join("; "))),
                    }
                }
            }
        }
    }
    let fam_headers = headers.clone();
    let own = move |file: &str| {
        if fam_headers.iter().any(|h| file.ends_with(&format!("/{h}"))) {
            return true;
        }
        // glibc's constants live in its internal bits/ headers too, but not in the kernel's.
        fam.skip_prefixes.iter().any(|p| file.contains(&format!("/{p}"))) && !file.contains("/linux/") && !file.contains("/asm")
    };
    let constants = differing_constants(index, [&tx, &tr], defines, &headers, &x, &r, &own);
    log(&format!("{}: {} constants differ between the targets", fam.name, constants.len()));
    Ok(FamilyDb { x, r, headers, skipped, constants })
}

/// Build the manifest of one library of a parsed family.
pub fn manifest_for(
    sys: &Sysroot,
    fam: &Family,
    db: &FamilyDb,
    soname: &str,
    runtime_pkg: &str,
    versions: &HashMap<String, String>,
) -> Result<Manifest, String> {
    let gx = exports(&sys.lib_path("amd64", "x86_64-linux-gnu", soname))?;
    let hr = exports(&sys.lib_path("riscv64", "riscv64-linux-gnu", soname))?;
    let host: BTreeSet<&str> = hr.iter().map(|e| e.name.as_str()).collect();
    let mut records = Vec::new();
    let mut bridged_decls = Vec::new();
    for e in &gx {
        let decl = db.x.decls.get(&e.name);
        let (kind, class) = match decl {
            None => {
                // Internal exports (`avpriv_*`, `__libc_*`, GLIBC_PRIVATE) have no public
                // prototype: nothing can be generated for them.
                let kind = Kind::Undeclared { func: e.func };
                let internal = e.name.starts_with('_') || e.name.starts_with("avpriv_") || e.version.as_deref() == Some("GLIBC_PRIVATE");
                let reason = if internal { Reason::Internal } else { Reason::NoPrototype };
                (kind, Class::Exclude { reason, detail: String::new() })
            }
            Some(d) => {
                let kind = match &d.sig {
                    Some(Ok(s)) => Kind::Func(s.clone()),
                    Some(Err(_)) => Kind::Undeclared { func: true },
                    None => Kind::Data { size: d.var_size },
                };
                let class = if !host.contains(e.name.as_str()) {
                    Class::Exclude { reason: Reason::HostLacks, detail: String::new() }
                } else {
                    classify::classify(d, db.r.decls.get(&e.name), &db.x, &db.r)
                };
                if !matches!(class, Class::Exclude { .. }) {
                    bridged_decls.push(d);
                }
                (kind, class)
            }
        };
        // A data symbol whose declaration is a function (or the reverse) is a header mismatch.
        let class = match (&kind, e.func) {
            (Kind::Data { .. }, true) | (Kind::Func(_), false) if decl.is_some() => {
                Class::Exclude { reason: Reason::Layout, detail: "symbol kind differs from its declaration".into() }
            }
            _ => class,
        };
        records.push(Record { line: 0, name: e.name.clone(), version: e.version.clone(), kind, class, note: None });
    }
    // Function-pointer fields of the records that bridged symbols expose.
    for key in classify::reachable(&db.x, &bridged_decls) {
        let Some(info) = db.x.records.get(&key) else { continue };
        let tag = key.rsplit(' ').next().unwrap_or(&key);
        if tag.contains(['(', ':', '/']) {
            continue;
        }
        let same = classify::same_record(&db.x, &db.r, &key);
        for (field, sig) in &info.fn_fields {
            let name = format!("{tag}.{field}");
            let (kind, class) = match sig {
                Ok(s) => {
                    let mut conv = BTreeSet::new();
                    let class = if !same {
                        Class::Exclude { reason: Reason::Layout, detail: classify::explain(&key, Some(info), db.r.records.get(&key)) }
                    } else {
                        match classify::sig_conversions(s, true, &mut conv) {
                            Err((reason, detail)) => Class::Exclude { reason, detail },
                            Ok(()) if conv.is_empty() => Class::Pass,
                            Ok(()) => Class::Convert(conv.into_iter().collect()),
                        }
                    };
                    (Kind::Field(s.clone()), class)
                }
                // A field whose type the conventions cannot carry is left to the fault path's
                // generic signature.
                Err(_) => continue,
            };
            records.push(Record { line: 0, name, version: None, kind, class, note: None });
        }
    }
    records.sort_by(|a, b| a.name.cmp(&b.name));
    records.dedup_by(|a, b| a.name == b.name);
    let mut packages = Vec::new();
    for p in fam.dev.iter().copied().chain(core::iter::once(runtime_pkg)) {
        let v = versions.get(p).ok_or_else(|| format!("{p} missing from versions.lock"))?;
        packages.push((p.to_owned(), v.clone()));
    }
    let info = vec![
        ("suite".to_owned(), versions.get("suite").cloned().ok_or("versions.lock names no suite")?),
        ("family".to_owned(), fam.name.to_owned()),
        ("generator".to_owned(), "abi-gen libclang-14 x86_64-linux-gnu riscv64-linux-gnu".to_owned()),
    ];
    let mut m = Manifest::new(soname, packages, info, records);
    m.comments.push(format!("generated by `cargo run -p abi --features generator --bin abi-gen -- regen`; do not edit (overrides go in sysroot/overrides/{soname}.override)"));
    let root = format!("{}/", sys.root.display());
    let read: Vec<String> = db.headers.iter().filter(|h| h.starts_with(&root)).map(|h| h.replace(&root, "sysroot/")).collect();
    if !read.is_empty() {
        m.comments.push(format!("also read: {}", read.join(" ")));
    }
    if !db.constants.is_empty() {
        let list: Vec<String> = db.constants.iter().map(|(n, a, b)| format!("{n}={a}/{b}")).collect();
        m.comments.push(format!(
            "constants whose values differ (x86-64/riscv64; arguments carrying them need a handler): {}",
            list.join(" ")
        ));
    }
    m.comments.push(format!("{} headers read; skipped (do not compile alone on both targets): {}", db.headers.len(), if db.skipped.is_empty() { "none".to_owned() } else { db.skipped.join(" ") }));
    Ok(m)
}

/// Regenerate every manifest into `sysroot/manifests/`.
pub fn regen(sys: &Sysroot, only: Option<&str>, log: &mut dyn FnMut(&str)) -> Result<Vec<PathBuf>, String> {
    let clang = Clang::new()?;
    let index = Index::new(&clang, false, false);
    let versions = sys.versions()?;
    let dir = sys.root.join("manifests");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for fam in FAMILIES {
        if only.is_some_and(|o| o != fam.name && !fam.libs.iter().any(|l| l.0 == o)) {
            continue;
        }
        let db = parse_family(&index, sys, fam, log)?;
        for (soname, pkg) in fam.libs {
            if only.is_some_and(|o| o != fam.name && o != *soname) {
                continue;
            }
            let m = manifest_for(sys, fam, &db, soname, pkg, &versions)?;
            let path = dir.join(format!("{soname}.manifest"));
            std::fs::write(&path, m.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
            log(&format!("wrote {} ({} records)", path.display(), m.records.len()));
            written.push(path);
        }
    }
    Ok(written)
}

/// Classify the declarations of a C snippet on the build machine's own headers; a test helper
/// and a quick way to see what the generator makes of some C.
pub fn analyze_snippet(source: &str) -> Result<BTreeMap<String, (Kind, Class)>, String> {
    let clang = Clang::new()?;
    let index = Index::new(&clang, false, false);
    let tx = Target::system("x86_64-linux-gnu", "amd64");
    let tr = Target::system("riscv64-linux-gnu", "riscv64");
    let x = parse_source(&index, &tx, &["-D_GNU_SOURCE"], source, &[]).map_err(|e| e.join("\n"))?;
    let r = parse_source(&index, &tr, &["-D_GNU_SOURCE"], source, &[]).map_err(|e| e.join("\n"))?;
    let mut out = BTreeMap::new();
    for (name, d) in &x.decls {
        let kind = match &d.sig {
            Some(Ok(s)) => Kind::Func(s.clone()),
            Some(Err(_)) => Kind::Undeclared { func: true },
            None => Kind::Data { size: d.var_size },
        };
        out.insert(name.clone(), (kind, classify::classify(d, r.decls.get(name), &x, &r)));
    }
    for (key, info) in &x.records {
        for (field, sig) in &info.fn_fields {
            if let Ok(s) = sig {
                let mut conv = BTreeSet::new();
                let class = match classify::sig_conversions(s, true, &mut conv) {
                    Err((reason, detail)) => Class::Exclude { reason, detail },
                    Ok(()) if conv.is_empty() => Class::Pass,
                    Ok(()) => Class::Convert(conv.into_iter().collect::<Vec<Conversion>>()),
                };
                let tag = key.rsplit(' ').next().unwrap_or(key);
                out.insert(format!("{tag}.{field}"), (Kind::Field(s.clone()), class));
            }
        }
    }
    Ok(out)
}
