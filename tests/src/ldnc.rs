//! Finding the ld-nc binary that the tests run guests under, and the runner needed to start it:
//! the binary built for the same target and profile as the test executable (or `LDNC_BIN`), and
//! on a riscv64 test build `qemu-riscv64 -L /usr/riscv64-linux-gnu` in front of it (or
//! `LDNC_RUNNER`). A missing binary is an error that says how to build it — never a silent skip.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The architecture this test executable was built for: the host that ld-nc runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    X86_64,
    Riscv64,
}

impl Host {
    pub const fn current() -> Host {
        if cfg!(target_arch = "riscv64") {
            Host::Riscv64
        } else {
            Host::X86_64
        }
    }

    /// The name used in KNOWN-FAILING files and test names.
    pub const fn name(self) -> &'static str {
        match self {
            Host::X86_64 => "x86_64",
            Host::Riscv64 => "riscv64",
        }
    }

    /// Whether x86_64 guest programs can also run directly (the test itself runs on x86_64).
    pub const fn runs_guests_natively(self) -> bool {
        matches!(self, Host::X86_64)
    }
}

/// How to start ld-nc: optional runner words, then the binary.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub runner: Vec<String>,
    pub binary: PathBuf,
}

#[derive(Debug, Clone)]
pub enum LocateError {
    /// `LDNC_BIN` names a file that does not exist.
    BadOverride(PathBuf),
    /// The default location has no binary.
    NotBuilt { expected: PathBuf, build_command: String },
    NoCurrentExe(String),
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocateError::BadOverride(p) => write!(f, "LDNC_BIN={} does not exist", p.display()),
            LocateError::NotBuilt { expected, build_command } => write!(
                f,
                "ld-nc binary not found at {}: build it first with `{build_command}` (same target and \
                 profile as this test), or point LDNC_BIN at a built ld-nc",
                expected.display()
            ),
            LocateError::NoCurrentExe(e) => write!(f, "cannot find the test executable's path: {e}"),
        }
    }
}

impl std::error::Error for LocateError {}

/// The profile directory (`target/[<triple>/]<profile>`) holding this test executable.
pub fn profile_dir() -> Result<PathBuf, LocateError> {
    let exe = std::env::current_exe().map_err(|e| LocateError::NoCurrentExe(e.to_string()))?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Integration tests live in `<profile>/deps/`; binaries and examples elsewhere one level up.
    if dir.file_name().is_some_and(|n| n == "deps" || n == "examples") {
        dir.pop();
    }
    Ok(dir)
}

fn build_command(profile_dir: &Path) -> String {
    let mut cmd = String::from("cargo build -p ld-nc");
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => cmd.push_str(" --release"),
        Some(other) => cmd.push_str(&format!(" --profile {other}")),
    }
    if Host::current() == Host::Riscv64 {
        cmd.push_str(" --target riscv64gc-unknown-linux-gnu");
    }
    cmd
}

/// Finds ld-nc: `LDNC_BIN` if set, else `ld-nc` next to this test's profile directory.
pub fn locate() -> Result<Launcher, LocateError> {
    let binary = match std::env::var_os("LDNC_BIN") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if !p.is_file() {
                return Err(LocateError::BadOverride(p));
            }
            p
        }
        _ => {
            let dir = profile_dir()?;
            let p = dir.join("ld-nc");
            if !p.is_file() {
                return Err(LocateError::NotBuilt { expected: p, build_command: build_command(&dir) });
            }
            p
        }
    };
    Ok(Launcher { runner: runner(), binary })
}

/// `LDNC_RUNNER` split on whitespace; by default qemu-riscv64 for a riscv64 build, none otherwise.
pub fn runner() -> Vec<String> {
    match std::env::var("LDNC_RUNNER") {
        Ok(s) => s.split_whitespace().map(str::to_string).collect(),
        Err(_) if Host::current() == Host::Riscv64 => {
            vec!["qemu-riscv64".into(), "-L".into(), "/usr/riscv64-linux-gnu".into()]
        }
        Err(_) => Vec::new(),
    }
}

impl Launcher {
    /// A command running `program args…` under ld-nc.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = match self.runner.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.binary);
                c
            }
            None => Command::new(&self.binary),
        };
        cmd.arg(program);
        cmd
    }
}

/// Environment variables of the harness's own environment that reach every run under ld-nc:
/// ld-nc's knobs and logging, and qemu's. When ld-nc itself runs under a runner (qemu-user) and
/// `LDNC_EXEC_WRAPPER` is not set, it is set to the runner, so a guest's `execve` of another x86_64
/// program starts ld-nc the same way (there is no binfmt_misc entry for riscv64 here).
pub fn passthrough_env() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            (k.starts_with("LDNC_") && !matches!(k.as_str(), "LDNC_BIN" | "LDNC_RUNNER" | "LDNC_TIMEOUT"))
                || k.starts_with("RUST_LOG")
                || k == "RUST_BACKTRACE"
                || k.starts_with("QEMU_")
        })
        .collect();
    let r = runner();
    if !r.is_empty() && !v.iter().any(|(k, _)| k == "LDNC_EXEC_WRAPPER") {
        v.push(("LDNC_EXEC_WRAPPER".into(), r.join(" ")));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_command_names_profile_and_target() {
        let c = build_command(Path::new("/t/release"));
        assert!(c.contains("--release"), "{c}");
        let c = build_command(Path::new("/t/debug"));
        assert!(!c.contains("--release") && !c.contains("--profile"), "{c}");
        assert_eq!(c.contains("riscv64gc"), Host::current() == Host::Riscv64);
        assert!(build_command(Path::new("/t/bench")).contains("--profile bench"));
    }

    #[test]
    fn launcher_puts_runner_first() {
        let l = Launcher { runner: vec!["qemu-riscv64".into(), "-L".into(), "/x".into()], binary: "/b/ld-nc".into() };
        let c = l.command(Path::new("/p/prog"));
        assert_eq!(c.get_program(), "qemu-riscv64");
        let args: Vec<_> = c.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["-L", "/x", "/b/ld-nc", "/p/prog"]);
    }
}
