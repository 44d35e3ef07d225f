//! Debian's dynamically linked x86_64 programs (coreutils, grep, sed, gzip, python3, perl, sqlite3)
//! run natively and under ld-nc with the same arguments, input and working directory: stdout,
//! stderr and exit status must be identical. Each command is two cases: `dynamic/NAME` runs the
//! program with its own x86_64 `ld.so` loaded as a guest object, so every library is translated
//! (see `ld-nc/src/elf/interp.rs`); `bridged/NAME` has ld-nc link it itself with the glibc family
//! bound to the host's native libraries (`LDNC_BRIDGE=1`, see `ld-nc/src/bridge`).
//! `missing-interpreter` checks the error for a guest root without the interpreter.
//! `tests/dynamic/KNOWN-FAILING` (`NAME HOST reason`, NAME as `bridged/sort-n`) lists cases
//! expected to fail on a host.
//!
//! The interpreter is found under `LDNC_GUEST_ROOT`. ld-nc's default is `/` on an x86_64 host; a
//! riscv64 build has no default, and then every case fails with a hint to set it (on a machine
//! where the x86_64 libraries are installed at their usual paths, `LDNC_GUEST_ROOT=/` works under
//! qemu-riscv64 too, since qemu's `-L` only redirects the riscv64 ld.so).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;


use ldnc_tests::compare::{native_vs_ldnc, set_mtime, Rng};
use ldnc_tests::known::KnownFailing;
use ldnc_tests::ldnc::{self, Host, Launcher};
use ldnc_tests::process::{self, Output};
use ldnc_tests::trial::{self, Failure, Trial};

/// One invocation: the program, its arguments and optional stdin.
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
}

fn case(name: &'static str, program: &'static str, args: &[&str]) -> Case {
    Case { name, program, args: args.iter().map(|s| s.to_string()).collect(), stdin: None }
}

fn cases(text: &[u8]) -> Vec<Case> {
    vec![
        case("sort-n", "/usr/bin/sort", &["-n", "numbers.txt"]),
        case("sort-k2-rev", "/usr/bin/sort", &["-k", "2", "-r", "text.txt"]),
        Case { name: "sort-stdin-u", stdin: Some(text.to_vec()), ..case("", "/usr/bin/sort", &["-u"]) },
        case("sha256sum", "/usr/bin/sha256sum", &["blob.bin", "text.txt", "numbers.txt"]),
        case("ls-l", "/usr/bin/ls", &["-l", "--full-time", "tree", "tree/sub"]),
        case("ls-missing", "/usr/bin/ls", &["does-not-exist"]),
        case("date", "/usr/bin/date", &["-u", "-d", "@0"]),
        case("date-format", "/usr/bin/date", &["-u", "-d", "@1700000000", "+%Y-%m-%d %H:%M:%S %A %j"]),
        case("grep", "/usr/bin/grep", &["-n", "-E", "^(wal|whe)[a-z]+ [0-9]*7$", "text.txt"]),
        case("grep-count-none", "/usr/bin/grep", &["-c", "zzz", "text.txt"]),
        case("sed", "/usr/bin/sed", &["-e", "s/[aeiou]/#/g", "-e", "/^w/d", "-e", "5,10p", "text.txt"]),
        case("sed-regex", "/usr/bin/sed", &["-n", "-E", "s/^([a-z]+) ([0-9]+)$/\\2-\\1/p", "text.txt"]),
        case("gzip", "/usr/bin/gzip", &["-c", "-9", "-n", "text.txt"]),
        case("wc", "/usr/bin/wc", &["text.txt", "blob.bin", "numbers.txt"]),
        case("python3", "/usr/bin/python3", &["-c", "import hashlib, json, sys; d = {str(i): i * i for i in range(500)}; \
            print(json.dumps(d, sort_keys=True)[:80]); print(hashlib.sha256(open('text.txt','rb').read()).hexdigest()); \
            print(sorted(open('numbers.txt').read().split(), key=int)[:5], sys.getrecursionlimit())"]),
        case("perl", "/usr/bin/perl", &["-e", "my %h; while (<>) { my ($w, $n) = split; $h{$w} += $n } \
            printf \"%s %d\\n\", $_, $h{$_} for sort keys %h; printf \"%.3f\\n\", atan2(1, 1) * 4", "text.txt"]),
        case("sqlite3", "/usr/bin/sqlite3", &[":memory:", "create table t(w, n); insert into t values ('a', 1), ('b', 2), ('a', 5); \
            select w, sum(n), avg(n) from t group by w order by w; select printf('%08.3f', 3.14159), hex('ab'), length('héllo');"]),
    ]
}

const WORDS: [&str; 8] = ["apple", "walnut", "cherry", "date", "wheat", "fig", "grape", "kiwi"];

/// Builds the fixture folder: input files and a tree with fixed times and modes. Returns the text
/// file's bytes (also used as stdin).
fn make_fixture(dir: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| format!("{p}: {e}")
    };
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(io(dir))?;
    let mut r = Rng(0x0bad_5eed_1234_5678);
    let numbers: String = (0..1000).map(|_| format!("{}\n", (r.next_u64() % 20000) as i64 - 5000)).collect();
    let text: String = (0..300)
        .map(|i| format!("{} {}\n", WORDS[(r.next_u64() % WORDS.len() as u64) as usize], (r.next_u64() % 1000) + i))
        .collect();
    let blob: Vec<u8> = (0..50_000).map(|_| (r.next_u64() >> 56) as u8).collect();
    for (name, data) in [("numbers.txt", numbers.as_bytes()), ("text.txt", text.as_bytes()), ("blob.bin", &blob)] {
        let p = dir.join(name);
        fs::write(&p, data).map_err(io(&p))?;
    }
    let tree = dir.join("tree");
    let sub = tree.join("sub");
    fs::create_dir_all(&sub).map_err(io(&sub))?;
    let files: [(&str, &[u8], u32); 3] =
        [("a.txt", b"first file\n", 0o644), ("run.sh", b"#!/bin/sh\necho hi\n", 0o755), ("sub/deep.txt", b"deep\n", 0o640)];
    for (i, (name, data, mode)) in files.iter().enumerate() {
        let p = tree.join(name);
        fs::write(&p, data).map_err(io(&p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).map_err(io(&p))?;
        set_mtime(&p, 1_600_000_000 + 3600 * i as u64).map_err(io(&p))?;
    }
    for (p, t) in [(&sub, 1_650_000_000), (&tree, 1_700_000_000)] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).map_err(io(p))?;
        set_mtime(p, t).map_err(io(p))?;
    }
    Ok(text.into_bytes())
}

fn base_env(cmd: &mut Command) {
    cmd.env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C").env("TZ", "UTC").env("HOME", "/nonexistent");
}

fn run(dir: &Path, c: &Case, launcher: Option<&Launcher>, bridged: bool) -> Result<Output, Failure> {
    let program = Path::new(c.program);
    let mut cmd = match launcher {
        Some(l) => l.command(program),
        None => Command::new(program),
    };
    cmd.args(&c.args).current_dir(dir);
    base_env(&mut cmd);
    if launcher.is_some() {
        cmd.envs(ldnc::passthrough_env());
        if bridged {
            cmd.env("LDNC_BRIDGE", "1");
        }
    }
    process::run(cmd, c.stdin.clone(), process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))
}

/// On a host where ld-nc has no default guest root, the harness must be given one.
fn guest_root_check() -> Result<(), Failure> {
    let set = std::env::var_os("LDNC_GUEST_ROOT").is_some_and(|v| !v.is_empty());
    if set || Host::current() == Host::X86_64 {
        Ok(())
    } else {
        Err(Failure::Setup(format!(
            "LDNC_GUEST_ROOT is not set and ld-nc has no default guest root on {}: set it to a folder \
             holding the x86_64 ld.so and libraries (LDNC_GUEST_ROOT=/ where they are installed at \
             their usual paths, as on an x86_64 machine running this riscv64 build under qemu-riscv64)",
            Host::current().name()
        )))
    }
}

/// A guest root without the interpreter: exit status 127 and one message naming the program, the
/// interpreter and the root.
fn missing_interpreter(launcher: &Launcher, dir: &Path) -> Result<(), Failure> {
    let root = dir.join("empty-root");
    fs::create_dir_all(&root).map_err(|e| Failure::Setup(format!("{}: {e}", root.display())))?;
    let mut cmd = launcher.command(Path::new("/usr/bin/true"));
    base_env(&mut cmd);
    cmd.envs(ldnc::passthrough_env().into_iter().filter(|(k, _)| k != "LDNC_GUEST_ROOT"));
    cmd.env("LDNC_GUEST_ROOT", &root);
    let o = process::run(cmd, None, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))?;
    let err = String::from_utf8_lossy(&o.stderr);
    let want = format!(
        "ld-nc: /usr/bin/true: interpreter /lib64/ld-linux-x86-64.so.2 not found under the guest root {}",
        root.display()
    );
    if o.status == 127 && err.starts_with(&want) && err.lines().count() == 1 {
        Ok(())
    } else {
        Err(Failure::Case(format!("want status 127 and one line starting `{want}`; got {}:\n{err}", o.status)))
    }
}

fn main() -> ExitCode {
    let fixture = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ldnc-dynamic-{}", std::process::id()));
    let setup = make_fixture(&fixture);
    let all = cases(setup.as_deref().unwrap_or_default());
    let launcher = ldnc::locate();
    let ctx: Arc<(PathBuf, Result<(), String>)> = Arc::new((fixture.clone(), setup.map(|_| ())));

    let l = launcher.clone();
    let mut trials = vec![
        Trial::new("ld-nc-binary", move || l.map(|_| ()).map_err(|e| Failure::Setup(e.to_string()))),
        Trial::new("guest-root", guest_root_check),
    ];
    {
        let (ctx, l) = (Arc::clone(&ctx), launcher.clone());
        trials.push(Trial::new("dynamic/missing-interpreter", move || {
            let launcher = l.map_err(|_| Failure::Setup("no ld-nc binary: see the ld-nc-binary case".into()))?;
            ctx.1.clone().map_err(Failure::Setup)?;
            missing_interpreter(&launcher, &ctx.0)
        }));
    }
    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dynamic/KNOWN-FAILING");
    let known = KnownFailing::load(&known_path, 2);
    let host = Host::current();
    let names: Vec<Vec<String>> = all
        .iter()
        .flat_map(|c| ["dynamic", "bridged"].map(|m| format!("{m}/{}", c.name)))
        .flat_map(|n| [Host::X86_64, Host::Riscv64].map(|h| vec![n.clone(), h.name().to_string()]))
        .collect();
    trials.push(ldnc_tests::known::list_trial(known.clone(), names));
    let known = known.unwrap_or_default();
    for c in all {
        for bridged in [false, true] {
            let name = format!("{}/{}", if bridged { "bridged" } else { "dynamic" }, c.name);
            let expected = known
                .lookup(&[&name, host.name()])
                .map(|e| (e.line, format!("{}:{}: {}", known_path.display(), e.line, e.reason)));
            let (ctx, l, c) = (Arc::clone(&ctx), launcher.clone(), c.clone());
            trials.push(
                Trial::new(name, move || {
                    let (dir, setup) = &*ctx;
                    setup.clone().map_err(Failure::Setup)?;
                    guest_root_check()?;
                    let launcher = l.map_err(|_| Failure::Setup("no ld-nc binary: see the ld-nc-binary case".into()))?;
                    if !Path::new(c.program).is_file() {
                        return Err(Failure::Setup(format!(
                            "{} not found (Debian's coreutils, grep, sed, gzip, python3, perl, sqlite3: bash scripts/setup.sh)",
                            c.program
                        )));
                    }
                    let native = run(dir, &c, None, false)?;
                    if native.timed_out {
                        return Err(Failure::Setup(format!("the native run of {} {:?} timed out", c.program, c.args)));
                    }
                    native_vs_ldnc(&native, &run(dir, &c, Some(&launcher), bridged)?)
                })
                .expect_failure(expected),
            );
        }
    }
    let report = trial::run(trials);
    let _ = fs::remove_dir_all(&fixture);
    report.exit_code()
}
