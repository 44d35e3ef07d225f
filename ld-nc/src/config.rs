//! Command line and environment configuration, and the stderr logger.
//!
//! `ld-nc [--argv0 NAME] [--] PROG ARGS…`. Knobs come from `LDNC_*` variables, read once here and
//! ignored when ld-nc itself runs with AT_SECURE (setuid/setgid/capabilities): an unprivileged
//! user must not steer a privileged process. `LDNC_DEBUG` is a comma list of log areas (`load`,
//! `syscalls`, `signals`, `translate`, `all`) routed to `log` targets. `LDNC_EXEC_WRAPPER` is a
//! command put before ld-nc when a guest execs an x86_64 program (for a host that can only run
//! ld-nc through an emulator, e.g. `qemu-riscv64 -L /usr/riscv64-linux-gnu` in tests).
//! `LDNC_GUEST_ROOT` is the folder a dynamic program's x86_64 interpreter is found under
//! ([`crate::elf::interp`]).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Log areas, each a bit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugFlags(pub u32);

impl DebugFlags {
    /// Program loading and process setup (target `ldnc::load`).
    pub const LOAD: u32 = 1;
    /// Every syscall with its result (target `ldnc::syscalls`).
    pub const SYSCALLS: u32 = 2;
    /// Signal delivery (target `ldnc::signals`).
    pub const SIGNALS: u32 = 4;
    /// Block translation (target `translator`).
    pub const TRANSLATE: u32 = 8;
    /// Host libraries and manifests (target `ldnc::bridge`).
    pub const BRIDGE: u32 = 16;
    /// Write `/tmp/perf-PID.map` so `perf report` names translated blocks by guest address (no
    /// log target).
    pub const PERFMAP: u32 = 32;
    /// Each symbol bound to a native function or variable (target `ldnc::bind`).
    pub const BIND: u32 = 64;

    /// Parse a comma list; unknown words are returned for a warning.
    pub fn parse(s: &str) -> (DebugFlags, Vec<String>) {
        let mut bits = 0;
        let mut unknown = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            bits |= match w {
                "load" => Self::LOAD,
                "syscalls" | "syscall" => Self::SYSCALLS,
                "signals" | "signal" => Self::SIGNALS,
                "translate" | "translator" => Self::TRANSLATE,
                "bridge" => Self::BRIDGE,
                "bind" => Self::BIND,
                "perfmap" => Self::PERFMAP,
                "all" => !Self::PERFMAP,
                _ => {
                    unknown.push(w.to_string());
                    0
                }
            };
        }
        (DebugFlags(bits), unknown)
    }

    /// Whether a log record for `target` is enabled.
    pub fn enables(self, target: &str) -> bool {
        let bit = if target.starts_with("ldnc::load") {
            Self::LOAD
        } else if target.starts_with("ldnc::syscalls") {
            Self::SYSCALLS
        } else if target.starts_with("ldnc::signals") {
            Self::SIGNALS
        } else if target.starts_with("translator") {
            Self::TRANSLATE
        } else if target.starts_with("ldnc::bridge") {
            Self::BRIDGE
        } else if target.starts_with("ldnc::bind") {
            Self::BIND
        } else {
            return false;
        };
        self.0 & bit != 0
    }
}

/// Writes enabled records to stderr, one line each.
#[derive(Debug)]
struct StderrLogger(DebugFlags);

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn || self.0.enables(m.target())
    }

    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            use std::io::Write;
            let _ = writeln!(std::io::stderr().lock(), "ld-nc[{}]: {}", r.target(), r.args());
        }
    }

    fn flush(&self) {}
}

/// Install the logger for `flags` (once per process).
pub fn init_logger(flags: DebugFlags) {
    let logger: &'static StderrLogger = Box::leak(Box::new(StderrLogger(flags)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(if flags.0 != 0 { log::LevelFilter::Trace } else { log::LevelFilter::Warn });
    }
}

/// The parsed configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The program to run.
    pub prog: PathBuf,
    /// The guest's argv (argv[0] is `--argv0` or PROG).
    pub args: Vec<OsString>,
    /// Log areas.
    pub debug: DebugFlags,
    /// `LDNC_EXEC_WRAPPER`, split into words (empty if unset).
    pub exec_wrapper: Vec<String>,
    /// `LDNC_GUEST_ROOT`, or this host's default (none on a non-x86_64 host).
    pub guest_root: Option<PathBuf>,
    /// `LDNC_BRIDGE=1`: ld-nc links a dynamic program itself and binds the native libraries
    /// (see [`crate::bridge`]); otherwise the program runs with its own `ld.so`.
    pub bridge: bool,
    /// `LDNC_EMULATE`: SONAMEs (comma-separated, or `all`) never bound natively.
    pub emulate: Vec<String>,
    /// `LDNC_MANIFESTS`: folders searched for manifests first.
    pub manifests: Option<std::ffi::OsString>,
    /// `LDNC_HOST_LIBRARY_PATH`: folders searched for native libraries first.
    pub host_library_path: Option<std::ffi::OsString>,
}

impl Config {
    /// Take `LDNC_GUEST_ROOT` (ignored with AT_SECURE).
    pub fn with_guest_root(mut self, value: Option<&std::ffi::OsStr>, secure: bool) -> Config {
        self.guest_root = crate::elf::interp::guest_root(value, secure);
        self
    }

    /// Take the bridge knobs `LDNC_BRIDGE`, `LDNC_EMULATE`, `LDNC_MANIFESTS`,
    /// `LDNC_HOST_LIBRARY_PATH` (ignored with AT_SECURE).
    pub fn with_bridge(mut self, get: &dyn Fn(&str) -> Option<std::ffi::OsString>, secure: bool) -> Config {
        if secure {
            return self;
        }
        self.bridge = get("LDNC_BRIDGE").is_some_and(|v| v == "1");
        self.emulate = get("LDNC_EMULATE")
            .map(|v| v.to_string_lossy().split(',').filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        self.manifests = get("LDNC_MANIFESTS");
        self.host_library_path = get("LDNC_HOST_LIBRARY_PATH");
        self
    }

    /// Take `LDNC_EXEC_WRAPPER` (ignored with AT_SECURE).
    pub fn with_exec_wrapper(mut self, value: Option<&str>, secure: bool) -> Config {
        self.exec_wrapper = match (secure, value) {
            (false, Some(v)) => v.split_whitespace().map(str::to_string).collect(),
            _ => Vec::new(),
        };
        self
    }
}

/// A command-line problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// No program given.
    NoProgram,
    /// An option needs a value.
    MissingValue(&'static str),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// An unknown option.
    UnknownOption(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::NoProgram => write!(f, "no program given\n{USAGE}"),
            CliError::MissingValue(o) => write!(f, "option {o} needs a value"),
            CliError::Help => write!(f, "{USAGE}"),
            CliError::Version => write!(f, "ld-nc {}", env!("CARGO_PKG_VERSION")),
            CliError::UnknownOption(o) => write!(f, "unknown option {o}\n{USAGE}"),
        }
    }
}

/// Usage text.
pub const USAGE: &str = "usage: ld-nc [--argv0 NAME] [--] PROG [ARGS...]\n\
    runs the x86_64 Linux program PROG (static, or dynamic with its own x86_64 ld.so)\n\
    \x20      ld-nc --check-manifest [--host-lib PATH] MANIFEST...\n\
    checks bridge manifests against the host libraries' real exports\n\
    environment: LDNC_DEBUG=load,syscalls,signals,translate,bridge,all (and perfmap)\n\
    \x20            LDNC_HOST_LIBRARY_PATH=DIR:DIR (host libraries searched first)\n\
    \x20            LDNC_GUEST_ROOT=DIR (where a dynamic program's x86_64 interpreter is found)";

/// Parse ld-nc's own arguments (without argv[0]) and the environment knobs.
pub fn parse<I: IntoIterator<Item = OsString>>(
    args: I,
    env_debug: Option<&str>,
    secure: bool,
) -> Result<Config, CliError> {
    let mut it = args.into_iter();
    let mut argv0 = None;
    let prog = loop {
        let Some(a) = it.next() else { return Err(CliError::NoProgram) };
        match a.to_str() {
            Some("--") => break it.next().ok_or(CliError::NoProgram)?,
            Some("--argv0") => argv0 = Some(it.next().ok_or(CliError::MissingValue("--argv0"))?),
            Some("-h" | "--help") => return Err(CliError::Help),
            Some("--version") => return Err(CliError::Version),
            Some(o) if o.starts_with('-') && o.len() > 1 => {
                return Err(CliError::UnknownOption(o.to_string()))
            }
            _ => break a,
        }
    };
    let mut gargs = vec![argv0.unwrap_or_else(|| prog.clone())];
    gargs.extend(it);
    let debug = match (secure, env_debug) {
        (false, Some(s)) => {
            let (f, unknown) = DebugFlags::parse(s);
            for u in unknown {
                eprintln!("ld-nc: LDNC_DEBUG: unknown area `{u}` (known: load,bind,bridge,syscalls,signals,translate,perfmap,all)");
            }
            f
        }
        _ => DebugFlags::default(),
    };
    let guest_root = crate::elf::interp::guest_root(None, secure);
    Ok(Config {
        prog: PathBuf::from(prog),
        args: gargs,
        debug,
        exec_wrapper: Vec::new(),
        guest_root,
        bridge: false,
        emulate: Vec::new(),
        manifests: None,
        host_library_path: None,
    })
}

/// Whether ld-nc itself runs with AT_SECURE.
pub fn at_secure() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn cli_forms() {
        let c = parse(os(&["prog", "a", "-b"]), None, false).expect("ok");
        assert_eq!(c.prog, PathBuf::from("prog"));
        assert_eq!(c.args, os(&["prog", "a", "-b"]));
        let c = parse(os(&["--argv0", "ls", "--", "/bin/busybox", "-l"]), None, false).expect("ok");
        assert_eq!(c.prog, PathBuf::from("/bin/busybox"));
        assert_eq!(c.args, os(&["ls", "-l"]));
        assert_eq!(parse(os(&[]), None, false), Err(CliError::NoProgram));
        assert_eq!(parse(os(&["--"]), None, false), Err(CliError::NoProgram));
        assert_eq!(parse(os(&["--bogus"]), None, false), Err(CliError::UnknownOption("--bogus".into())));
    }

    #[test]
    fn debug_flags() {
        let c = parse(os(&["p"]), Some("syscalls,load"), false).expect("ok");
        assert!(c.debug.enables("ldnc::syscalls"));
        assert!(c.debug.enables("ldnc::load"));
        assert!(!c.debug.enables("translator"));
        let c = parse(os(&["p"]), Some("all"), false).expect("ok");
        assert!(c.debug.enables("translator"));
        let c = parse(os(&["p"]), Some("all"), true).expect("ok");
        assert_eq!(c.debug, DebugFlags(0), "AT_SECURE ignores LDNC_*");
        assert_eq!(DebugFlags::parse("x,load").1, vec!["x".to_string()]);
    }

    #[test]
    fn exec_wrapper() {
        let c = parse(os(&["p"]), None, false).expect("ok").with_exec_wrapper(Some(" qemu-riscv64  -L /x "), false);
        assert_eq!(c.exec_wrapper, vec!["qemu-riscv64", "-L", "/x"]);
        let c = parse(os(&["p"]), None, true).expect("ok").with_exec_wrapper(Some("qemu"), true);
        assert!(c.exec_wrapper.is_empty(), "AT_SECURE ignores LDNC_*");
    }
}
