//! A dynamic program's interpreter (its PT_INTERP, e.g. `/lib64/ld-linux-x86-64.so.2`): finding
//! it under the guest root and checking it as a guest object.
//!
//! **Departure from DESIGN.md.** The design makes ld-nc itself the x86_64 dynamic linker, binding
//! manifest symbols to native libraries; that linker exists ([`super::linker`], with
//! [`crate::bridge`]) but is still opt-in (`LDNC_BRIDGE=1`) while its handlers are completed.
//! Without it, a dynamic program runs the way qemu-user and the kernel run it: the program's own
//! x86_64 `ld.so` is mapped as a guest object next to the program, started at its entry point with
//! `AT_BASE` naming it, and it maps and relocates every library itself through the emulated
//! `openat`/`mmap`/`mprotect` syscalls. All library code is translated; nothing is bridged.
//!
//! The guest root (`LDNC_GUEST_ROOT`, default `/` on an x86_64 host, no default on other hosts) is
//! where the interpreter is looked up, symbolic links included (an absolute link target is taken
//! inside the root, as `chroot` would). Known limit: only the interpreter is found through the
//! root. The guest `ld.so`'s own file syscalls open host paths, so with a root other than `/` it
//! still searches the host's `/lib/x86_64-linux-gnu` etc.; a path-prefix layer for the guest's
//! file syscalls is future work.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::{Image, LoadError};

/// The environment variable naming the guest root.
pub const GUEST_ROOT_VAR: &str = "LDNC_GUEST_ROOT";

/// Most symbolic links followed while resolving one path (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// Why a dynamic program's interpreter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterpError {
    /// No guest root is configured and this host has no default.
    NoRoot {
        /// The program.
        prog: PathBuf,
        /// Its PT_INTERP.
        interp: PathBuf,
    },
    /// The interpreter does not exist under the root (or a link loops).
    Missing {
        /// The program.
        prog: PathBuf,
        /// Its PT_INTERP.
        interp: PathBuf,
        /// The guest root searched.
        root: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The interpreter is not a usable x86_64 ELF object.
    Bad {
        /// The program.
        prog: PathBuf,
        /// The interpreter's problem, naming its file.
        error: LoadError,
    },
    /// The interpreter itself has a PT_INTERP.
    Nested {
        /// The program.
        prog: PathBuf,
        /// The interpreter file.
        interp: PathBuf,
    },
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpError::NoRoot { prog, interp } => write!(
                f,
                "{}: dynamically linked (interpreter {}), and no guest root is set: set \
                 {GUEST_ROOT_VAR} to the folder holding the x86_64 interpreter and libraries \
                 (e.g. {GUEST_ROOT_VAR}=/ where they are installed at their usual paths)",
                prog.display(),
                interp.display()
            ),
            InterpError::Missing { prog, interp, root, why } => write!(
                f,
                "{}: interpreter {} not found under the guest root {} ({GUEST_ROOT_VAR}): {why}",
                prog.display(),
                interp.display(),
                root.display()
            ),
            InterpError::Bad { prog, error } => {
                write!(f, "{}: bad interpreter {error}", prog.display())
            }
            InterpError::Nested { prog, interp } => write!(
                f,
                "{}: interpreter {} has a PT_INTERP of its own",
                prog.display(),
                interp.display()
            ),
        }
    }
}

impl std::error::Error for InterpError {}

/// The guest root: `value` (from [`GUEST_ROOT_VAR`], ignored when `secure`), otherwise `/` on an
/// x86_64 host and none elsewhere.
pub fn guest_root(value: Option<&OsStr>, secure: bool) -> Option<PathBuf> {
    match value {
        Some(v) if !secure && !v.is_empty() => Some(PathBuf::from(v)),
        _ if cfg!(target_arch = "x86_64") => Some(PathBuf::from("/")),
        _ => None,
    }
}

/// `path` (absolute or not, taken from `/`) resolved inside `root`: every symbolic link is
/// followed with an absolute target restarting at `root` and `..` never leaving it.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, String> {
    // Components still to walk, last first.
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            if let Component::Normal(n) = c {
                todo.push(n.to_os_string());
            } else if c == Component::ParentDir {
                todo.push("..".into());
            }
        }
    };
    push(&mut todo, path);
    // Components of the resolved path so far, relative to the root.
    let mut done: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&done);
        here.push(&c);
        let meta = std::fs::symlink_metadata(&here).map_err(|e| format!("{}: {e}", here.display()))?;
        if !meta.file_type().is_symlink() {
            done.push(c);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(format!("{}: too many levels of symbolic links", here.display()));
        }
        let target = match std::fs::read_link(&here) {
            Ok(t) => t,
            // Not a link after all: under qemu-user with `-L PREFIX`, readlink may look at
            // PREFIX's copy of the path (a folder) where lstat saw the real link; the kernel
            // follows the real link when the path is opened.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                done.push(c);
                continue;
            }
            Err(e) => return Err(format!("{}: {e}", here.display())),
        };
        if target.is_absolute() {
            done.clear();
        }
        push(&mut todo, &target);
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Ok(out)
}

/// Find the interpreter `interp` (PT_INTERP bytes) of `prog` under `root`, read it and check it:
/// its path, image and file bytes.
pub fn read(prog: &Path, interp: &[u8], root: Option<&Path>) -> Result<(PathBuf, Image, Vec<u8>), InterpError> {
    let interp = PathBuf::from(OsStr::from_bytes(interp));
    let Some(root) = root else {
        return Err(InterpError::NoRoot { prog: prog.to_path_buf(), interp });
    };
    let missing = |why: String| InterpError::Missing {
        prog: prog.to_path_buf(),
        interp: interp.clone(),
        root: root.to_path_buf(),
        why,
    };
    let path = resolve_in_root(root, &interp).map_err(missing)?;
    if !path.is_file() {
        return Err(missing(format!("{} is not a file", path.display())));
    }
    let (image, bytes) =
        super::read_file(&path).map_err(|error| InterpError::Bad { prog: prog.to_path_buf(), error })?;
    if image.interp.is_some() {
        return Err(InterpError::Nested { prog: prog.to_path_buf(), interp: path });
    }
    Ok((path, image, bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, reason = "tests fail loudly")]
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ldnc-interp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp dir");
        d
    }

    #[test]
    fn links_stay_inside_the_root() {
        let r = tmp("links");
        std::fs::create_dir_all(r.join("usr/lib/x86_64-linux-gnu")).expect("dirs");
        std::fs::write(r.join("usr/lib/x86_64-linux-gnu/ld.so"), b"x").expect("file");
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).expect("link");
        std::fs::create_dir_all(r.join("lib64")).expect("dirs");
        // Absolute, as Debian's /lib64/ld-linux-x86-64.so.2: taken inside the root.
        std::os::unix::fs::symlink("/lib/x86_64-linux-gnu/ld.so", r.join("lib64/ld")).expect("link");
        std::os::unix::fs::symlink("../../../../../../lib64/ld", r.join("up")).expect("link");
        let want = r.join("usr/lib/x86_64-linux-gnu/ld.so");
        assert_eq!(resolve_in_root(&r, Path::new("/lib64/ld")), Ok(want.clone()));
        assert_eq!(resolve_in_root(&r, Path::new("/up")), Ok(want));
        std::os::unix::fs::symlink("loop", r.join("loop")).expect("link");
        let e = resolve_in_root(&r, Path::new("/loop")).expect_err("loops");
        assert!(e.contains("too many levels"), "{e}");
        let _ = std::fs::remove_dir_all(&r);
    }

    #[test]
    fn errors_name_program_interpreter_and_root() {
        let r = tmp("missing");
        let e = read(Path::new("/bin/prog"), b"/lib64/nope.so", Some(&r)).expect_err("missing");
        let m = e.to_string();
        assert!(m.starts_with("/bin/prog: interpreter /lib64/nope.so not found under the guest root"), "{m}");
        assert!(m.contains(&r.display().to_string()), "{m}");
        let e = read(Path::new("/bin/prog"), b"/lib64/ld.so", None).expect_err("no root");
        assert!(e.to_string().contains(GUEST_ROOT_VAR), "{e}");
        std::fs::write(r.join("ld.so"), b"not an elf").expect("file");
        let m = read(Path::new("/bin/prog"), b"/ld.so", Some(&r)).expect_err("bad").to_string();
        assert!(m.starts_with("/bin/prog: bad interpreter ") && m.ends_with("ld.so: not an ELF file"), "{m}");
        let _ = std::fs::remove_dir_all(&r);
    }

    #[test]
    fn root_default_and_secure() {
        let dflt = if cfg!(target_arch = "x86_64") { Some(PathBuf::from("/")) } else { None };
        assert_eq!(guest_root(None, false), dflt);
        assert_eq!(guest_root(Some(OsStr::new("/srv/x86")), false), Some(PathBuf::from("/srv/x86")));
        assert_eq!(guest_root(Some(OsStr::new("/srv/x86")), true), dflt, "AT_SECURE ignores LDNC_*");
    }
}
