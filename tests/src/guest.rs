//! Guest programs: discovering `tests/programs/*.c` with their per-program settings, compiling
//! each with the four x86_64 toolchain variants (glibc static, glibc static-pie, musl static,
//! glibc dynamic)
//! into a build folder with an mtime cache, and their golden outputs (reading, comparing and
//! blessing).
//!
//! Sources are C (`NAME.c`), C++ (`NAME.cc`, built with g++, so only the glibc variants apply) or
//! assembly run through the C preprocessor (`NAME.S`, linked with `-nostdlib`: the program brings
//! its own `_start`, which makes it the smallest possible guest).
//!
//! Settings are `//! arg: VALUE`, `//! env: KEY=VALUE`, `//! variants: V…` and `//! cflags: F…`
//! lines in the source: each `arg` line is one argument, verbatim after the first space
//! (`@TMPDIR@` becomes a fresh empty directory made for the run); each `env` line adds one
//! variable to the otherwise empty environment; `variants` limits the compiler variants (by name)
//! the program is built with; `cflags` adds compiler flags (split on whitespace).
//!
//! Golden files: `NAME.out` is the exact stdout; `NAME.status` holds the exit status in decimal
//! when it is not 0 (128+N for a death by signal N). Where a C library legitimately prints
//! differently (musl's `%a` of subnormals, for example), `NAME.VARIANT.out` / `NAME.VARIANT.status`
//! override the shared file for that variant.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::process;

/// A compiler configuration every guest program is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `gcc -static -O2`: glibc, ET_EXEC at a fixed address.
    GccStatic,
    /// `gcc -static-pie -O2 -fPIE`: glibc, ET_DYN that relocates itself.
    GccStaticPie,
    /// `musl-gcc -static -O2`: musl, ET_EXEC.
    MuslStatic,
    /// `gcc -O2`: glibc, a dynamic PIE run with its own x86_64 ld.so (the guest root's).
    GccDynamic,
    /// The same binary as [`Variant::GccDynamic`], linked by ld-nc itself with the glibc family
    /// bound to the host's native libraries (`LDNC_BRIDGE=1`). Natively it is the dynamic run,
    /// so it has no native case of its own.
    GccBridged,
}

impl Variant {
    pub const ALL: [Variant; 5] =
        [Variant::GccStatic, Variant::GccStaticPie, Variant::MuslStatic, Variant::GccDynamic, Variant::GccBridged];

    pub const fn name(self) -> &'static str {
        match self {
            Variant::GccStatic => "gcc-static",
            Variant::GccStaticPie => "gcc-static-pie",
            Variant::MuslStatic => "musl-static",
            Variant::GccDynamic => "gcc-dynamic",
            Variant::GccBridged => "gcc-bridged",
        }
    }

    /// Compiler and flags, before `-o OUT SRC [-lm]`.
    pub fn compiler(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Variant::GccStatic => ("gcc", &["-static", "-O2"]),
            Variant::GccStaticPie => ("gcc", &["-static-pie", "-O2", "-fPIE"]),
            Variant::MuslStatic => ("musl-gcc", &["-static", "-O2"]),
            Variant::GccDynamic | Variant::GccBridged => ("gcc", &["-O2"]),
        }
    }

    /// Environment ld-nc runs this variant with.
    pub fn ldnc_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Variant::GccBridged => &[("LDNC_BRIDGE", "1")],
            _ => &[],
        }
    }

    /// Whether a native run of this variant is a case of its own (not a repeat of another's).
    pub fn has_native_case(self) -> bool {
        self != Variant::GccBridged
    }
}

/// One guest program and its settings.
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub source: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub variants: Vec<Variant>,
    pub cflags: Vec<String>,
}

impl Program {
    /// Assembly sources are linked without a C library.
    pub fn is_assembly(&self) -> bool {
        self.source.extension().is_some_and(|e| e == "S")
    }

    /// C++ sources are compiled with the C++ driver of the variant's compiler.
    pub fn is_cxx(&self) -> bool {
        self.source.extension().is_some_and(|e| e == "cc")
    }
}

#[derive(Debug)]
pub enum GuestError {
    Io { path: PathBuf, error: std::io::Error },
    BadSetting { path: PathBuf, line: usize, text: String },
    Compile { command: String, status: i32, stderr: String },
    CompilerMissing { command: String, error: String },
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            GuestError::BadSetting { path, line, text } => write!(
                f,
                "{}:{line}: bad setting {text:?} (expected `//! arg: …`, `//! env: KEY=VALUE`, `//! variants: NAME…` or `//! cflags: FLAG…`)",
                path.display()
            ),
            GuestError::Compile { command, status, stderr } => {
                write!(f, "`{command}` failed with status {status}:\n{stderr}")
            }
            GuestError::CompilerMissing { command, error } => write!(f, "cannot run `{command}`: {error}"),
        }
    }
}

impl std::error::Error for GuestError {}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GuestError + '_ {
    move |error| GuestError::Io { path: path.to_path_buf(), error }
}

/// The checked-in programs folder (`tests/programs`).
pub fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("programs")
}

/// The `//! arg:` / `//! env:` / `//! variants:` settings of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub variants: Vec<Variant>,
    pub cflags: Vec<String>,
}

/// Reads the `//! arg:` / `//! env:` settings of one source file.
pub fn parse_settings(path: &Path, text: &str) -> Result<Settings, GuestError> {
    let mut args = Vec::new();
    let mut env = Vec::new();
    let mut variants = Variant::ALL.to_vec();
    let mut cflags = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("//!") else { continue };
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        let bad = || GuestError::BadSetting { path: path.to_path_buf(), line: i + 1, text: line.to_string() };
        if let Some(v) = rest.strip_prefix("arg:") {
            args.push(v.strip_prefix(' ').unwrap_or(v).to_string());
        } else if let Some(v) = rest.strip_prefix("env:") {
            let v = v.strip_prefix(' ').unwrap_or(v);
            let (k, val) = v.split_once('=').ok_or_else(bad)?;
            if k.is_empty() {
                return Err(bad());
            }
            env.push((k.to_string(), val.to_string()));
        } else if let Some(v) = rest.strip_prefix("cflags:") {
            cflags.extend(v.split_whitespace().map(str::to_string));
        } else if let Some(v) = rest.strip_prefix("variants:") {
            variants = v
                .split_whitespace()
                .map(|n| Variant::ALL.into_iter().find(|x| x.name() == n).ok_or_else(bad))
                .collect::<Result<_, _>>()?;
            if variants.is_empty() {
                return Err(bad());
            }
        } else {
            return Err(bad());
        }
    }
    Ok(Settings { args, env, variants, cflags })
}

/// All programs in `dir`, sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<Program>, GuestError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_some_and(|e| e == "c" || e == "cc" || e == "S") {
            let text = fs::read_to_string(&path).map_err(io_err(&path))?;
            let Settings { args, env, variants, cflags } = parse_settings(&path, &text)?;
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            out.push(Program { name, source: path, args, env, variants, cflags });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Where built guests go, given an integration test's `CARGO_TARGET_TMPDIR`
/// (`<target>/[<triple>/]tmp`): under the cargo target dir, never checked in.
pub fn build_root(target_tmpdir: &Path) -> PathBuf {
    target_tmpdir.join("ldnc-guest")
}

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Compiles `program` with `variant` into `root/VARIANT/NAME` unless that is newer than the
/// source and was built by the same command. Every variant's binary has the program's own name,
/// so argv[0] and AT_EXECFN end the same way for all of them.
pub fn build(program: &Program, variant: Variant, root: &Path) -> Result<PathBuf, GuestError> {
    let dir = root.join(variant.name());
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let out = dir.join(&program.name);
    let stamp = dir.join(format!("{}.cmd", program.name));
    let (cc, flags) = variant.compiler();
    let cc = match (cc, program.is_cxx()) {
        ("gcc", true) => "g++",
        (cc, _) => cc,
    };
    let mut flags: Vec<&str> = flags.to_vec();
    flags.extend(program.cflags.iter().map(String::as_str));
    let libs: &[&str] = if program.is_assembly() {
        flags.push("-nostdlib");
        &[]
    } else {
        &["-lm"]
    };
    let command = format!(
        "{cc} {} -o {} {} {}",
        flags.join(" "),
        out.display(),
        program.source.display(),
        libs.join(" ")
    );
    let fresh = match (mtime(&out), mtime(&program.source)) {
        (Some(o), Some(s)) => o >= s && fs::read_to_string(&stamp).is_ok_and(|c| c == command),
        _ => false,
    };
    if fresh {
        return Ok(out);
    }
    // Build under a unique name and rename, so concurrent test processes never see half a file.
    let tmp = dir.join(format!(".{}.{}.tmp", program.name, std::process::id()));
    let mut cmd = Command::new(cc);
    cmd.args(&flags).arg("-o").arg(&tmp).arg(&program.source).args(libs);
    let o = process::run(cmd, None, Duration::from_secs(300))
        .map_err(|e| GuestError::CompilerMissing { command: command.clone(), error: e.to_string() })?;
    if o.status != 0 {
        let _ = fs::remove_file(&tmp);
        return Err(GuestError::Compile { command, status: o.status, stderr: process::show(&o.stderr, 4000) });
    }
    fs::rename(&tmp, &out).map_err(io_err(&out))?;
    fs::write(&stamp, &command).map_err(io_err(&stamp))?;
    Ok(out)
}

/// The expected result of one program × variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Golden {
    pub stdout: Vec<u8>,
    pub status: i32,
}

fn golden_paths(dir: &Path, name: &str, variant: Option<Variant>) -> (PathBuf, PathBuf) {
    let stem = match variant {
        Some(v) => format!("{name}.{}", v.name()),
        None => name.to_string(),
    };
    (dir.join(format!("{stem}.out")), dir.join(format!("{stem}.status")))
}

fn read_status(path: &Path) -> Result<i32, GuestError> {
    match fs::read_to_string(path) {
        Ok(s) => s.trim().parse().map_err(|_| GuestError::BadSetting {
            path: path.to_path_buf(),
            line: 1,
            text: s.trim().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(GuestError::Io { path: path.to_path_buf(), error }),
    }
}

/// Loads the golden result of `name` for `variant` from `dir` (the variant's override if any).
pub fn load_golden(dir: &Path, name: &str, variant: Variant) -> Result<Golden, GuestError> {
    // The bridged variant is the dynamic binary: it expects the dynamic run's result unless it
    // has an override of its own.
    let mut chain = vec![Some(variant)];
    if variant == Variant::GccBridged {
        chain.push(Some(Variant::GccDynamic));
    }
    chain.push(None);
    let pick = |status: bool| {
        let paths: Vec<PathBuf> = chain.iter().map(|v| if status { golden_paths(dir, name, *v).1 } else { golden_paths(dir, name, *v).0 }).collect();
        paths.iter().find(|p| p.exists()).cloned().unwrap_or_else(|| paths[paths.len() - 1].clone())
    };
    let (out_path, status_path) = (pick(false), pick(true));
    let stdout = fs::read(&out_path).map_err(io_err(&out_path))?;
    Ok(Golden { stdout, status: read_status(&status_path)? })
}

fn write_or_remove(path: &Path, content: Option<Vec<u8>>) -> Result<(), GuestError> {
    match content {
        Some(c) => fs::write(path, c).map_err(io_err(path)),
        None => match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
            _ => Ok(()),
        },
    }
}

/// Writes golden files from native results, one per variant in `Variant::ALL` order (the
/// program's variants): the first variant's result becomes `NAME.out`/`NAME.status`; another variant gets override files only
/// where its result differs (stale overrides are removed).
pub fn bless(dir: &Path, name: &str, results: &[(Variant, Golden)]) -> Result<(), GuestError> {
    let Some((_, base)) = results.first() else { return Ok(()) };
    let status_text = |g: &Golden| (g.status != 0).then(|| format!("{}\n", g.status).into_bytes());
    let (out, status) = golden_paths(dir, name, None);
    write_or_remove(&out, Some(base.stdout.clone()))?;
    write_or_remove(&status, status_text(base))?;
    for (v, g) in &results[1..] {
        let (vout, vstatus) = golden_paths(dir, name, Some(*v));
        write_or_remove(&vout, (g.stdout != base.stdout).then(|| g.stdout.clone()))?;
        write_or_remove(&vstatus, (g.status != base.status).then(|| format!("{}\n", g.status).into_bytes()))?;
    }
    Ok(())
}

/// Replaces `@TMPDIR@` in the program's arguments.
pub fn expand_args(program: &Program, tmpdir: &Path) -> Vec<String> {
    let t = tmpdir.to_string_lossy();
    program.args.iter().map(|a| a.replace("@TMPDIR@", &t)).collect()
}

/// A fresh empty directory for one run under `root`, removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(root: &Path, label: &str) -> Result<ScratchDir, GuestError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let p = root.join(format!("{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).map_err(io_err(&p))?;
        Ok(ScratchDir(p))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_parsed_verbatim() {
        let text = "//! arg: two words\n//! arg:\n//! env: A=b=c\n//! env: EMPTY=\nint main;\n";
        let Settings { args, env, variants, cflags } = parse_settings(Path::new("x.c"), text).expect("valid settings");
        assert!(cflags.is_empty());
        assert_eq!(args, ["two words", ""]);
        assert_eq!(env, [("A".to_string(), "b=c".to_string()), ("EMPTY".to_string(), String::new())]);
        assert_eq!(variants, Variant::ALL);
        let s = parse_settings(Path::new("x.S"), "//! variants: gcc-static gcc-static-pie\n").expect("valid");
        assert_eq!(s.variants, [Variant::GccStatic, Variant::GccStaticPie]);
        assert!(parse_settings(Path::new("x.S"), "//! variants: clang\n").is_err());
        assert!(parse_settings(Path::new("x.S"), "//! variants:\n").is_err());
        let s = parse_settings(Path::new("x.c"), "//! cflags: -nostdlib  -mgeneral-regs-only\n").expect("valid");
        assert_eq!(s.cflags, ["-nostdlib", "-mgeneral-regs-only"]);
        assert!(parse_settings(Path::new("x.c"), "//! env: NOEQUALS\n").is_err());
        assert!(parse_settings(Path::new("x.c"), "//! typo: 1\n").is_err());
    }

    #[test]
    fn bless_writes_overrides_only_where_different() {
        let dir = ScratchDir::new(&std::env::temp_dir(), "ldnc-bless-unit").expect("scratch dir");
        let g = |s: &str, st| Golden { stdout: s.as_bytes().to_vec(), status: st };
        let results = [
            (Variant::GccStatic, g("a\n", 0)),
            (Variant::GccStaticPie, g("a\n", 0)),
            (Variant::MuslStatic, g("b\n", 3)),
        ];
        bless(&dir.0, "p", &results).expect("bless");
        assert_eq!(load_golden(&dir.0, "p", Variant::GccStatic).expect("golden"), g("a\n", 0));
        assert_eq!(load_golden(&dir.0, "p", Variant::GccStaticPie).expect("golden"), g("a\n", 0));
        assert_eq!(load_golden(&dir.0, "p", Variant::MuslStatic).expect("golden"), g("b\n", 3));
        assert!(!dir.0.join("p.gcc-static-pie.out").exists());
        assert!(!dir.0.join("p.status").exists());
        // Blessing again with agreeing results removes the stale override.
        bless(&dir.0, "p", &[(Variant::GccStatic, g("a\n", 0)), (Variant::MuslStatic, g("a\n", 0))]).expect("bless");
        assert!(!dir.0.join("p.musl-static.out").exists());
        assert!(!dir.0.join("p.musl-static.status").exists());
    }
}
