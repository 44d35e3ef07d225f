//! Debian's statically linked Go programs (bookworm's `shfmt`, `gojq` and `go-md2man`), run natively
//! and under ld-nc with `GOMAXPROCS=4` on the same input: stdout, stderr and exit status must be
//! identical. Go's runtime starts several OS threads, parks and wakes them with futexes, runs its
//! garbage collector's mark workers on them and preempts goroutines with signals (SIGURG sent with
//! tgkill), so these are real multi-threaded programs. Each case is `go/NAME`;
//! `tests/go/KNOWN-FAILING` (`NAME HOST reason`) lists the ones expected to fail on a host.
//!
//! The binaries are downloaded, never installed, by `sysroot/fetch-guest-bins.sh` (which
//! `scripts/setup.sh` runs) into `sysroot/cache/guest-bins/root/usr/bin`; `LDNC_GO_BINS` names
//! another folder holding them. Missing binaries fail every case with that hint. The inputs are
//! generated here from fixed seeds, large enough that each run allocates a lot (several GC cycles).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;

use ldnc_tests::compare::{native_vs_ldnc, Rng};
use ldnc_tests::known::KnownFailing;
use ldnc_tests::ldnc::{self, Host, Launcher};
use ldnc_tests::process::{self, Output};
use ldnc_tests::trial::{self, Failure, Trial};

/// The programs the cases use (file names in the binaries folder).
const BINARIES: [&str; 3] = ["shfmt", "gojq", "go-md2man"];

/// One invocation: a binary, its arguments, optional stdin, and GOMAXPROCS.
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    binary: &'static str,
    args: Vec<String>,
    stdin: Option<&'static str>,
    procs: u32,
}

fn case(name: &'static str, binary: &'static str, args: &[&str]) -> Case {
    Case { name, binary, args: args.iter().map(|s| s.to_string()).collect(), stdin: None, procs: 4 }
}

const GROUP_QUERY: &str = "group_by(.nested.x) | map({x: .[0].nested.x, n: length, \
    total: (map(.price) | add * 100 | round), \
    tags: (map(.tags[]) | group_by(.) | map({(.[0]): length}) | add)}) | sort_by(-.n, .x) | .[0:8]";

fn cases() -> Vec<Case> {
    vec![
        case("gojq-group-by", "gojq", &["-c", GROUP_QUERY, "items.json"]),
        // The same with one P: the Go runtime still starts threads (sysmon, GC), but only one
        // runs Go code at a time. A control for the GOMAXPROCS=4 case.
        Case { name: "gojq-group-by-p1", procs: 1, ..case("", "gojq", &["-c", GROUP_QUERY, "items.json"]) },
        case(
            "gojq-generate",
            "gojq",
            &["-n", "-c", "[range(0; 200000) | {k: (. * 7919 % 1009), v: tostring}] | group_by(.k) \
              | map([.[0].k, length, (map(.v | length) | add)]) | sort_by(.[2]) | .[-5:]"],
        ),
        case("gojq-stdin-slurp", "gojq", &["-s", "-c", "map(.id) | add"]),
        case("shfmt-format", "shfmt", &["-i", "2", "-ci", "-bn", "script.sh"]),
        case("shfmt-minify", "shfmt", &["-mn", "script.sh"]),
        case("shfmt-error", "shfmt", &["broken.sh"]),
        case("go-md2man", "go-md2man", &["-in", "page.md"]),
    ]
    .into_iter()
    .map(|c| if c.name == "gojq-stdin-slurp" { Case { stdin: Some("numbers"), ..c } } else { c })
    .collect()
}

fn items_json(r: &mut Rng) -> String {
    let mut s = String::from("[");
    for i in 0..20000 {
        if i > 0 {
            s.push(',');
        }
        let tags: Vec<String> = (0..3).map(|_| format!("\"{}\"", (b'a' + r.below(7) as u8) as char)).collect();
        let ys: Vec<String> = (0..4).map(|_| r.below(10).to_string()).collect();
        s.push_str(&format!(
            "{{\"id\":{i},\"name\":\"item{i}\",\"tags\":[{}],\"price\":{}.{:02},\"nested\":{{\"x\":{},\"y\":[{}]}}}}",
            tags.join(","),
            r.below(100),
            r.below(100),
            r.below(100),
            ys.join(",")
        ));
    }
    s.push_str("]\n");
    s
}

fn numbers_json(r: &mut Rng) -> String {
    (0..30000).map(|i| format!("{{\"id\": {}, \"pad\": \"{:x}\"}}\n", r.below(1000) as i64 - 500, i)).collect()
}

fn script_sh(r: &mut Rng) -> String {
    let mut s = String::from("#!/bin/sh\nset -eu\n");
    for f in 0..1500 {
        let v = r.below(1000);
        s.push_str(&format!(
            "func_{f}() {{\n    local a=$1   b=\"${{2:-{v}}}\"\n  if [ \"$a\" -gt {v} ] && [ -n \"$b\" ]; then echo \"big $a\" | tr a-z A-Z ; \
             elif [ $a -eq 0 ];then\n return 1\n else\n   for i in $(seq 1 {}); do a=$((a + i * {v})); done\nfi\n\
             case \"$b\" in\n  x*) echo x;;\n  *) printf '%s\\n' \"$b\" >&2 ;;\nesac\n  echo $(( a % 7 ))\n}}\n",
            1 + r.below(9)
        ));
    }
    s.push_str("func_1 3 && func_2 0 || echo done\n");
    s
}

fn page_md(r: &mut Rng) -> String {
    let mut s = String::from("# demo 1 \"2024-01-01\" \"ld-nc tests\"\n\n## NAME\ndemo - a generated page\n\n");
    for sec in 0..300 {
        s.push_str(&format!("## SECTION {sec}\n\nParagraph with **bold {}** and *emphasis* and `code {}`.\n\n", r.below(1000), r.below(100)));
        for _ in 0..5 {
            s.push_str(&format!("* item {} with [a link](https://example.org/{})\n", r.below(1000), r.below(50)));
        }
        s.push_str(&format!("\n```\ncode block {}\n  indented\n```\n\n| a | b |\n|---|---|\n| {} | {} |\n\n", sec, r.below(9), r.below(9)));
    }
    s
}

/// Writes the input files into a fresh `dir`.
fn make_fixture(dir: &Path) -> Result<(), String> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut r = Rng(0x5eed_0f60_1234_abcd);
    let files = [
        ("items.json", items_json(&mut r)),
        ("numbers", numbers_json(&mut r)),
        ("script.sh", script_sh(&mut r)),
        ("broken.sh", "if true; then\n  echo unterminated \"quote\nfi\n".to_string()),
        ("page.md", page_md(&mut r)),
    ];
    for (name, text) in files {
        let p = dir.join(name);
        fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn default_bins_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sysroot/cache/guest-bins/root/usr/bin")
}

fn bins_dir() -> PathBuf {
    std::env::var_os("LDNC_GO_BINS").filter(|s| !s.is_empty()).map_or_else(default_bins_dir, PathBuf::from)
}

/// Whether an ELF file has a PT_INTERP program header (is dynamically linked).
fn has_interpreter(bytes: &[u8]) -> Option<bool> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u = |o: usize, n: usize| -> Option<u64> {
        let b = bytes.get(o..o + n)?;
        Some(b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    };
    let (phoff, phentsize, phnum) = (u(0x20, 8)? as usize, u(0x36, 2)? as usize, u(0x38, 2)? as usize);
    for i in 0..phnum {
        if u(phoff + i * phentsize, 4)? == 3 {
            return Some(true);
        }
    }
    Some(false)
}

/// Every binary present, an x86_64 ELF and static; else the reason and how to get them.
fn check_binaries(dir: &Path) -> Result<(), String> {
    let hint = "run `sh sysroot/fetch-guest-bins.sh` (scripts/setup.sh does) to download Debian's \
                shfmt, gojq and go-md2man, or point LDNC_GO_BINS at a folder holding them";
    for b in BINARIES {
        let p = dir.join(b);
        let bytes = fs::read(&p).map_err(|e| format!("{}: {e}: {hint}", p.display()))?;
        match has_interpreter(&bytes) {
            None => return Err(format!("{} is not an x86_64 ELF file: {hint}", p.display())),
            Some(true) => return Err(format!("{} is dynamically linked; these tests need static Go binaries", p.display())),
            Some(false) => {}
        }
    }
    Ok(())
}

fn run(bins: &Path, dir: &Path, c: &Case, launcher: Option<&Launcher>) -> Result<Output, Failure> {
    let exe = bins.join(c.binary);
    let mut cmd = match launcher {
        Some(l) => l.command(&exe),
        None => Command::new(&exe),
    };
    cmd.args(&c.args).current_dir(dir).env_clear();
    cmd.env("PATH", "/usr/bin:/bin").env("LC_ALL", "C").env("TZ", "UTC").env("HOME", "/nonexistent");
    cmd.env("GOMAXPROCS", c.procs.to_string());
    if launcher.is_some() {
        cmd.envs(ldnc::passthrough_env());
    }
    let input = match c.stdin {
        Some(f) => Some(fs::read(dir.join(f)).map_err(|e| Failure::Setup(format!("{f}: {e}")))?),
        None => None,
    };
    process::run(cmd, input, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))
}

fn main() -> ExitCode {
    let host = Host::current();
    let bins = bins_dir();
    let fixture = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ldnc-go-{}", std::process::id()));
    let setup = check_binaries(&bins).and_then(|()| make_fixture(&fixture));
    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("go").join("KNOWN-FAILING");
    let known = KnownFailing::load(&known_path, 2);
    let all = cases();
    let launcher = ldnc::locate();
    let ctx = Arc::new((bins, fixture.clone(), setup.clone()));

    let l = launcher.clone();
    let mut trials = vec![
        Trial::new("ld-nc-binary", move || l.map(|_| ()).map_err(|e| Failure::Setup(e.to_string()))),
        Trial::new("go-binaries", move || setup.map_err(Failure::Setup)),
    ];
    let hosts = [Host::X86_64, Host::Riscv64];
    trials.push(ldnc_tests::known::list_trial(
        known.clone(),
        all.iter().flat_map(|c| hosts.map(|h| vec![c.name.to_string(), h.name().to_string()])).collect(),
    ));
    let known = known.unwrap_or_default();
    for c in all {
        let expected = known
            .lookup(&[c.name, host.name()])
            .map(|e| (e.line, format!("{}:{}: {}", known_path.display(), e.line, e.reason)));
        let (ctx, l) = (Arc::clone(&ctx), launcher.clone());
        trials.push(
            Trial::new(format!("go/{}", c.name), move || {
                let (bins, dir, setup) = &*ctx;
                setup.clone().map_err(Failure::Setup)?;
                let launcher = l.map_err(|_| Failure::Setup("no ld-nc binary: see the ld-nc-binary case".into()))?;
                let native = run(bins, dir, &c, None)?;
                if native.timed_out {
                    return Err(Failure::Setup(format!("the native run of {} {:?} timed out", c.binary, c.args)));
                }
                native_vs_ldnc(&native, &run(bins, dir, &c, Some(&launcher))?)
            })
            .expect_failure(expected),
        );
    }
    let report = trial::run(trials);
    let _ = fs::remove_dir_all(&fixture);
    if std::env::var_os("PRUNE_KNOWN").is_some_and(|v| v == "1") && !report.unexpected_passes.is_empty() {
        match known.prune(&known_path, &report.unexpected_passes) {
            Ok(n) => eprintln!("PRUNE_KNOWN: removed {n} line(s) from {}", known_path.display()),
            Err(e) => eprintln!("PRUNE_KNOWN: {e}"),
        }
    }
    report.exit_code()
}
