//! Debian's static busybox (`/bin/busybox`, or `LDNC_BUSYBOX`) run natively and under ld-nc with
//! the same arguments, input and working directory: stdout, stderr and exit status must be
//! identical. Each command is a case `busybox/NAME`; `tests/busybox/KNOWN-FAILING` lists
//! (`NAME HOST reason`) the ones expected to fail under ld-nc on a host.
//!
//! The input files are generated here from fixed seeds, and the folder used by `ls` and `tar`
//! gets fixed modification times, so every run sees the same bytes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use ldnc_tests::compare::{native_vs_ldnc, set_mtime, Rng};
use ldnc_tests::known::KnownFailing;
use ldnc_tests::ldnc::{self, Host, Launcher};
use ldnc_tests::process::{self, Output};
use ldnc_tests::trial::{self, Failure, Trial};

/// One busybox invocation: arguments after `busybox`, and optional stdin.
#[derive(Debug, Clone)]
struct Case {
    name: &'static str,
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
}

fn case(name: &'static str, args: &[&str]) -> Case {
    Case { name, args: args.iter().map(|s| s.to_string()).collect(), stdin: None }
}

fn cases(numbers: &[u8]) -> Vec<Case> {
    let sh = |name, script: &str| case(name, &["sh", "-c", script]);
    vec![
        case("echo", &["echo", "hello", "world", "two  spaces", ""]),
        case("echo-escapes", &["echo", "-n", "-e", "tab\\there\\nnewline\\0101 \\x41\\\\"]),
        case("printf", &["printf", "%s=%d %x %o %5.2f %e %c|%-6s|\\n", "key", "42", "255", "8", "3.14159", "12345.678", "Z", "ab"]),
        sh(
            "sh-arith-loops",
            "i=0; s=0; while [ $i -lt 300 ]; do s=$((s + i * i % 7)); i=$((i + 1)); done; echo \"sum $s\"; \
             for w in alpha beta gamma; do echo \"w=$w len=${#w}\"; done; \
             x=$(( (3 << 4) ^ 0x55 )); echo \"x=$x\"; echo $(( -17 / 5 )) $(( -17 % 5 )) $(( 2 ** 40 ))",
        ),
        sh(
            "sh-functions",
            "f() { echo \"f:$1:$#\"; return 3; }; f one two; echo \"rc=$?\"; \
             case foo.tar.gz in *.gz) echo gz;; *) echo other;; esac; \
             v=abcdef; echo ${v#ab} ${v%ef} ${v:-unset} ${undef:-default}; set -- a b c; shift; echo \"$@\"",
        ),
        sh("sh-subshell-pipe", "(echo sub; exit 2); echo \"sub=$?\"; echo piped | while read l; do echo \"got $l\"; done"),
        sh("sh-exit-status", "echo before; exit 7"),
        sh("sh-killed", "echo dying; kill -TERM $$; echo survived"),
        case("false", &["false"]),
        case("sha256sum", &["sha256sum", "blob.bin", "text.txt", "numbers.txt"]),
        case("md5sum", &["md5sum", "blob.bin", "text.txt"]),
        case("sha1sum", &["sha1sum", "blob.bin"]),
        case("sort-n", &["sort", "-n", "numbers.txt"]),
        case("sort-rnu", &["sort", "-r", "-n", "-u", "numbers.txt"]),
        case("sort-text", &["sort", "-k", "2", "text.txt"]),
        Case { name: "wc-stdin", args: vec!["wc".into()], stdin: Some(numbers.to_vec()) },
        case("wc", &["wc", "text.txt", "blob.bin", "numbers.txt"]),
        case("seq", &["seq", "1", "3", "100"]),
        case("seq-sep", &["seq", "-s", ",", "-w", "8", "12"]),
        case("gzip", &["gzip", "-c", "-9", "text.txt"]),
        case("gzip-blob", &["gzip", "-c", "blob.bin"]),
        case("gunzip", &["gunzip", "-c", "text.txt.gz"]),
        sh("gzip-roundtrip", "busybox gzip -c blob.bin | busybox gunzip -c | busybox md5sum; busybox md5sum < blob.bin"),
        case(
            "awk",
            &[
                "awk",
                "{ s += $2; c[$1]++; if (length($0) > m) m = length($0) } \
                 END { n = 0; for (k in c) n++; printf \"%d records %d keys sum %d longest %d avg %.4f\\n\", NR, n, s, m, s / NR }",
                "text.txt",
            ],
        ),
        case(
            "awk-math",
            &[
                "awk",
                "BEGIN { printf \"%.10f %e %g %d\\n\", atan2(1, 1) * 4, exp(10), sqrt(2), int(-3.7); \
                 print length(\"hello\"), substr(\"abcdef\", 2, 3), toupper(\"mixed Case\"), sprintf(\"%05.1f|%-4s|\", 3.14159, \"x\"); \
                 x = 1; for (i = 0; i < 64; i++) x *= 1.5; print x, 2^53 + 1, 1e300 * 1e10, -0.0; \
                 split(\"a:b:c\", p, \":\"); print p[3] p[2] p[1]; s = \"hello world\"; gsub(/o/, \"0\", s); print s, index(s, \"w\") }",
            ],
        ),
        case("sed", &["sed", "-e", "s/[aeiou]/#/g", "-e", "/^w/d", "-e", "5,10p", "text.txt"]),
        case("sed-regex", &["sed", "-n", "-E", "s/^([a-z]+) ([0-9]+)$/\\2-\\1/p", "text.txt"]),
        case("od", &["od", "-A", "x", "-t", "x1z", "-N", "512", "blob.bin"]),
        case("od-words", &["od", "-t", "d4", "-t", "f8", "-N", "128", "blob.bin"]),
        case("ls", &["ls", "-l", "--full-time", "tree", "tree/sub"]),
        case("ls-recursive", &["ls", "-lanR", "tree"]),
        case("ls-missing", &["ls", "does-not-exist"]),
        case("tar", &["tar", "-c", "-f", "-", "tree"]),
        case("tar-list", &["tar", "-t", "-v", "-f", "tree.tar"]),
        case("tar-extract-stdout", &["tar", "-x", "-O", "-f", "tree.tar", "tree/sub/deep.txt"]),
        case("head-tail-cut", &["sh", "-c", "head -n 3 text.txt; tail -c 20 text.txt; cut -d ' ' -f 2 text.txt | head -n 4"]),
        case("tr-uniq", &["sh", "-c", "tr a-z A-Z < text.txt | cut -c1 | sort | uniq -c"]),
        case("expr", &["expr", "7", "*", "6", "+", "1"]),
        case("cat-n", &["cat", "-n", "numbers.txt"]),
    ]
}

const WORDS: [&str; 12] = ["apple", "walnut", "cherry", "date", "elder", "fig", "grape", "wheat", "kiwi", "lime", "mango", "nut"];

fn generate_inputs() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut r = Rng(0x1234_5678_9abc_def1);
    let numbers: String = (0..1500).map(|_| format!("{}\n", (r.next_u64() % 20000) as i64 - 5000)).collect();
    let text: String = (0..400)
        .map(|i| {
            let w = WORDS[(r.next_u64() % WORDS.len() as u64) as usize];
            format!("{w} {}\n", (r.next_u64() % 1000) + i)
        })
        .collect();
    let blob: Vec<u8> = (0..100_000).map(|_| (r.next_u64() >> 56) as u8).collect();
    (numbers.into_bytes(), text.into_bytes(), blob)
}

/// Builds the fixture folder from scratch: input files, a tree with fixed times and modes, and
/// compressed/archived forms made by the native busybox.
fn make_fixture(dir: &Path, busybox: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |e: std::io::Error| format!("{p}: {e}")
    };
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(io(dir))?;
    let (numbers, text, blob) = generate_inputs();
    for (name, data) in [("numbers.txt", &numbers), ("text.txt", &text), ("blob.bin", &blob)] {
        let p = dir.join(name);
        fs::write(&p, data).map_err(io(&p))?;
    }
    let tree = dir.join("tree");
    let sub = tree.join("sub");
    fs::create_dir_all(&sub).map_err(io(&sub))?;
    let files: [(&str, &[u8], u32); 4] = [
        ("a.txt", b"first file\n", 0o644),
        ("b.bin", &blob[..3000], 0o600),
        ("run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        ("sub/deep.txt", b"deep inside\nsecond line\n", 0o640),
    ];
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
    // Archives made natively, so the ld-nc side only has to read them.
    let native = |args: &[&str], out: &str| -> Result<(), String> {
        let mut c = Command::new(busybox);
        c.args(args).current_dir(dir).env_clear().env("PATH", "/usr/bin:/bin");
        let o = process::run(c, None, Duration::from_secs(120)).map_err(|e| e.to_string())?;
        if o.status != 0 {
            return Err(format!("native busybox {args:?} failed: {}", process::show(&o.stderr, 2000)));
        }
        let p = dir.join(out);
        fs::write(&p, o.stdout).map_err(io(&p))
    };
    native(&["gzip", "-c", "text.txt"], "text.txt.gz")?;
    native(&["tar", "-c", "-f", "-", "tree"], "tree.tar")?;
    set_mtime(&tree, 1_700_000_000).map_err(io(&tree))?;
    Ok(numbers)
}

fn busybox_path() -> PathBuf {
    std::env::var_os("LDNC_BUSYBOX").filter(|s| !s.is_empty()).map_or_else(|| PathBuf::from("/bin/busybox"), PathBuf::from)
}

fn base_env(cmd: &mut Command) {
    cmd.env_clear().env("PATH", "/usr/bin:/bin").env("LC_ALL", "C").env("TZ", "UTC").env("HOME", "/nonexistent");
}

fn run(busybox: &Path, dir: &Path, c: &Case, launcher: Option<&Launcher>) -> Result<Output, Failure> {
    let mut cmd = match launcher {
        Some(l) => l.command(busybox),
        None => Command::new(busybox),
    };
    cmd.args(&c.args).current_dir(dir);
    base_env(&mut cmd);
    if launcher.is_some() {
        cmd.envs(ldnc::passthrough_env());
    }
    process::run(cmd, c.stdin.clone(), process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))
}

fn main() -> ExitCode {
    let host = Host::current();
    let busybox = busybox_path();
    let fixture = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ldnc-busybox-{}", std::process::id()));
    let setup = if busybox.is_file() {
        make_fixture(&fixture, &busybox)
    } else {
        Err(format!("{} not found: install Debian's busybox-static, or set LDNC_BUSYBOX", busybox.display()))
    };
    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("busybox").join("KNOWN-FAILING");
    let known = KnownFailing::load(&known_path, 2);
    let all = cases(setup.as_deref().unwrap_or_default());
    let launcher = ldnc::locate();
    let ctx = Arc::new((busybox, fixture.clone(), setup.map(|_| ())));

    let l = launcher.clone();
    let mut trials = vec![Trial::new("ld-nc-binary", move || l.map(|_| ()).map_err(|e| Failure::Setup(e.to_string())))];
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
            Trial::new(format!("busybox/{}", c.name), move || {
                let (busybox, dir, setup) = &*ctx;
                setup.clone().map_err(Failure::Setup)?;
                let launcher = l.map_err(|_| Failure::Setup("no ld-nc binary: see the ld-nc-binary case".into()))?;
                let native = run(busybox, dir, &c, None)?;
                if native.timed_out {
                    return Err(Failure::Setup(format!("the native run of {:?} timed out", c.args)));
                }
                native_vs_ldnc(&native, &run(busybox, dir, &c, Some(&launcher))?)
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
