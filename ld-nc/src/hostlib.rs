//! The host side of the native-library bridge as far as it exists today: finding a host library
//! by its SONAME, reading the names it really exports, and checking a manifest against them. The
//! dynamic linker will run [`check`] for each manifest-covered library it binds; until then
//! `ld-nc --check-manifest MANIFEST…` runs it for the user.
//!
//! A symbol the manifest can bridge but the host library lacks (an older host library) is reported
//! once and left to emulation; host symbols the manifest does not know (a newer host library) are
//! fine.

use std::fmt;
use std::path::{Path, PathBuf};

use goblin::elf::{section_header::SHN_UNDEF, sym, Elf};

/// Largest host library read (libavcodec is about 15 MiB; this leaves room without trusting the
/// file system blindly).
const MAX_LIB_SIZE: u64 = 512 << 20;

/// Why a host library could not be checked.
#[derive(Debug)]
pub enum HostLibError {
    /// No file with that SONAME in the search path.
    NotFound { soname: String, searched: Vec<PathBuf> },
    /// The file could not be read.
    Io { path: PathBuf, err: std::io::Error },
    /// The file is larger than any library ld-nc will read.
    TooLarge { path: PathBuf, size: u64 },
    /// The file is not a shared library ld-nc can read.
    BadElf { path: PathBuf, what: String },
    /// The manifest could not be read.
    Manifest(abi::ManifestError),
}

impl fmt::Display for HostLibError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostLibError::NotFound { soname, searched } => {
                write!(f, "host library {soname} not found in")?;
                for d in searched {
                    write!(f, " {}", d.display())?;
                }
                Ok(())
            }
            HostLibError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            HostLibError::TooLarge { path, size } => {
                write!(f, "{}: {size} bytes is larger than any library ld-nc reads", path.display())
            }
            HostLibError::BadElf { path, what } => write!(f, "{}: not a usable shared library: {what}", path.display()),
            HostLibError::Manifest(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HostLibError {}

/// The multiarch triple of this host's libraries.
pub fn host_triple() -> &'static str {
    if cfg!(target_arch = "riscv64") {
        "riscv64-linux-gnu"
    } else {
        "x86_64-linux-gnu"
    }
}

/// Folders searched for host libraries: `extra` first (from `LDNC_HOST_LIBRARY_PATH`, which the
/// caller drops under AT_SECURE), then the host's multiarch folders.
pub fn search_path(extra: Option<&str>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = extra
        .unwrap_or("")
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    let t = host_triple();
    for d in [format!("/lib/{t}"), format!("/usr/lib/{t}"), format!("/usr/{t}/lib"), "/lib64".into(), "/usr/lib".into()] {
        v.push(PathBuf::from(d));
    }
    v
}

/// Find `soname` in `dirs`.
pub fn find(soname: &str, dirs: &[PathBuf]) -> Result<PathBuf, HostLibError> {
    dirs.iter()
        .map(|d| d.join(soname))
        .find(|p| p.is_file())
        .ok_or_else(|| HostLibError::NotFound { soname: soname.to_owned(), searched: dirs.to_vec() })
}

/// The names a shared library defines in its dynamic symbol table (functions, data, IFUNCs,
/// TLS; global or weak), without versions.
pub fn exports(path: &Path) -> Result<Vec<String>, HostLibError> {
    let io = |err| HostLibError::Io { path: path.to_owned(), err };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_LIB_SIZE {
        return Err(HostLibError::TooLarge { path: path.to_owned(), size });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let bad = |what: String| HostLibError::BadElf { path: path.to_owned(), what };
    let elf = Elf::parse(&bytes).map_err(|e| bad(e.to_string()))?;
    if elf.dynamic.is_none() {
        return Err(bad("no dynamic section".into()));
    }
    let mut names = Vec::new();
    for s in elf.dynsyms.iter() {
        let defined = s.st_shndx != SHN_UNDEF as usize;
        let bind = s.st_bind();
        let ty = s.st_type();
        let visible = bind == sym::STB_GLOBAL || bind == sym::STB_WEAK || bind == sym::STB_GNU_UNIQUE;
        let kind = matches!(ty, sym::STT_FUNC | sym::STT_OBJECT | sym::STT_GNU_IFUNC | sym::STT_TLS | sym::STT_NOTYPE);
        if defined && visible && kind {
            if let Some(name) = elf.dynstrtab.get_at(s.st_name) {
                if !name.is_empty() {
                    names.push(name.to_owned());
                }
            }
        }
    }
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// Check the manifest at `manifest` against the host library it names, found in `dirs` (or at
/// `lib` when given).
pub fn check(manifest: &Path, lib: Option<&Path>, dirs: &[PathBuf]) -> Result<(abi::Report, PathBuf), HostLibError> {
    let m = abi::Manifest::load(manifest).map_err(HostLibError::Manifest)?;
    let path = match lib {
        Some(p) => p.to_owned(),
        None => find(&m.soname, dirs)?,
    };
    let report = check_loaded(&m, &path)?;
    Ok((report, path))
}

/// Check manifest `m` (already read) against the host library file at `path`.
pub fn check_loaded(m: &abi::Manifest, path: &Path) -> Result<abi::Report, HostLibError> {
    let names = exports(path)?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let report = abi::check_against_exports(m, &refs);
    if !report.missing.is_empty() {
        log::info!(
            target: "ldnc::bridge",
            "{}: the host library {} lacks {} bridgeable symbols of its manifest; they are not bridged",
            m.soname,
            path.display(),
            report.missing.len()
        );
    }
    Ok(report)
}

/// `ld-nc --check-manifest [--host-lib PATH] MANIFEST…`: print one report line per manifest.
/// Exit status 0 when every manifest could be checked, 1 otherwise.
pub fn check_main(args: &[std::ffi::OsString], extra_path: Option<&str>) -> i32 {
    let dirs = search_path(extra_path);
    let mut lib: Option<PathBuf> = None;
    let mut status = 0;
    let mut any = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--host-lib" {
            match it.next() {
                Some(p) => lib = Some(PathBuf::from(p)),
                None => {
                    eprintln!("ld-nc: --host-lib needs a path");
                    return 2;
                }
            }
            continue;
        }
        any = true;
        match check(Path::new(a), lib.as_deref(), &dirs) {
            Ok((r, path)) => println!("{r} [{}]", path.display()),
            Err(e) => {
                eprintln!("ld-nc: {e}");
                status = 1;
            }
        }
    }
    if !any {
        eprintln!("usage: ld-nc --check-manifest [--host-lib PATH] MANIFEST...");
        return 2;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifests() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../sysroot/manifests")
    }

    #[test]
    fn host_libc_is_checked_and_older_symbols_left_to_emulation() {
        let dirs = search_path(None);
        let (r, path) = check(&manifests().join("libc.so.6.manifest"), None, &dirs).expect("host libc checks");
        assert!(path.ends_with("libc.so.6"), "{}", path.display());
        assert!(r.bridged > 1000, "{r}");
        assert!(!r.missing.iter().any(|m| m == "memcpy"), "memcpy is on every host");
        // The manifests come from trixie's glibc 2.41; this machine's host libc (bookworm 2.36,
        // natively or in the riscv64 cross sysroot) predates strlcpy (2.38).
        assert!(r.missing.iter().any(|m| m == "strlcpy"), "{r}");
        // Reported once each.
        let mut seen = r.missing.clone();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), r.missing.len());
    }

    #[test]
    fn exports_of_the_host_libm_include_its_functions() {
        let p = find("libm.so.6", &search_path(None)).expect("libm");
        let e = exports(&p).expect("readable");
        assert!(e.iter().any(|n| n == "sin"));
        assert!(!e.iter().any(|n| n.contains('@')));
    }

    #[test]
    fn bad_libraries_give_clear_errors() {
        let dir = std::env::temp_dir().join(format!("ldnc-hostlib-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let junk = dir.join("libjunk.so.1");
        std::fs::write(&junk, b"\x7fELF\x02\x01\x01 this is not a library").expect("write");
        let e = exports(&junk).expect_err("junk");
        assert!(e.to_string().contains("libjunk.so.1"), "{e}");
        let e = find("libnothere.so.9", std::slice::from_ref(&dir)).expect_err("missing");
        assert!(e.to_string().contains("libnothere.so.9 not found"), "{e}");
        let e = check(&dir.join("none.manifest"), None, std::slice::from_ref(&dir)).expect_err("no manifest");
        assert!(e.to_string().contains("none.manifest"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
