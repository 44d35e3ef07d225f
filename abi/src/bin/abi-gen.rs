//! `abi-gen`: regenerate the checked-in manifests from Debian headers, and report on them.
//!
//! ```text
//! abi-gen regen [--sysroot DIR] [--only FAMILY|SONAME]
//! abi-gen report [--sysroot DIR]
//! abi-gen snippet FILE.c
//! ```

use abi::gen::{analyze_snippet, regen, Sysroot};
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sysroot = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sysroot");
    let mut only = None;
    let mut cmd = None;
    let mut file = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sysroot" => match it.next() {
                Some(v) => sysroot = PathBuf::from(v),
                None => return usage("--sysroot needs a directory"),
            },
            "--only" => only = it.next().cloned(),
            "regen" | "report" | "snippet" if cmd.is_none() => cmd = Some(a.clone()),
            other if cmd.as_deref() == Some("snippet") => file = Some(other.to_owned()),
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let sys = Sysroot { root: sysroot };
    let result = match cmd.as_deref() {
        Some("regen") => regen(&sys, only.as_deref(), &mut |m| eprintln!("abi-gen: {m}")).map(|_| ()),
        Some("report") => abi::report::print(&sys.root.join("manifests"), &sys.root.join("overrides")),
        Some("snippet") => match file {
            Some(f) => std::fs::read_to_string(&f)
                .map_err(|e| format!("{f}: {e}"))
                .and_then(|src| analyze_snippet(&src))
                .map(|out| {
                    for (name, (kind, class)) in out {
                        let r = abi::Record { line: 0, name, version: None, kind, class, note: None };
                        println!("{r}");
                    }
                }),
            None => return usage("snippet needs a C file"),
        },
        _ => return usage("no command"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("abi-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("abi-gen: {msg}\nusage: abi-gen regen [--sysroot DIR] [--only FAMILY|SONAME] | report [--sysroot DIR] | snippet FILE.c");
    ExitCode::from(2)
}
