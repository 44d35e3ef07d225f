//! Guest programs × compiler variants, each a separately reported case:
//! - `native/PROGRAM/VARIANT` (only when this test runs on x86_64): the program run directly must
//!   print its golden output — this keeps the golden files and the programs honest;
//! - `ldnc/PROGRAM/VARIANT` (on every host): the program run under ld-nc must print the same.
//!   Cases listed in `tests/programs/KNOWN-FAILING` (`PROGRAM VARIANT HOST reason`) are expected
//!   to fail, and fail the run if they pass;
//! - `jumptable/VARIANT`: the jump-table program really contains an indirect jump;
//! - `known-failing-list`: that list parses and every line still names existing cases.
//!
//! `BLESS=1` (x86_64 only) first rewrites the golden files from native runs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, OnceLock};

use ldnc_tests::guest::{self, Golden, Program, ScratchDir, Variant};
use ldnc_tests::known::KnownFailing;
use ldnc_tests::ldnc::{self, Host, Launcher, LocateError};
use ldnc_tests::process::{self, Output};
use ldnc_tests::trial::{self, Failure, Trial};

/// A program built once for one variant, shared by the native and the ld-nc case.
type BuildCell = Arc<OnceLock<Result<PathBuf, String>>>;

#[derive(Debug)]
struct Ctx {
    programs_dir: PathBuf,
    build_root: PathBuf,
}

impl Ctx {
    fn build(&self, cell: &BuildCell, program: &Program, variant: Variant) -> Result<PathBuf, Failure> {
        cell.get_or_init(|| guest::build(program, variant, &self.build_root).map_err(|e| e.to_string()))
            .clone()
            .map_err(Failure::Setup)
    }

    /// Runs the built program with its settings, in a fresh scratch directory, natively or
    /// under ld-nc.
    fn run(&self, program: &Program, variant: Variant, exe: &Path, launcher: Option<&Launcher>) -> Result<Output, Failure> {
        let scratch = ScratchDir::new(&self.build_root.join("runs"), &program.name)
            .map_err(|e| Failure::Setup(e.to_string()))?;
        let mut cmd = match launcher {
            Some(l) => l.command(exe),
            None => Command::new(exe),
        };
        cmd.args(guest::expand_args(program, &scratch.0)).current_dir(&scratch.0).env_clear();
        if launcher.is_some() {
            cmd.envs(ldnc::passthrough_env());
            cmd.envs(variant.ldnc_env().iter().copied());
        }
        cmd.envs(program.env.iter().map(|(k, v)| (k, v)));
        process::run(cmd, None, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))
    }
}

fn compare(what: &str, golden: &Golden, got: &Output) -> Result<(), Failure> {
    if got.stdout == golden.stdout && got.status == golden.status && !got.timed_out {
        return Ok(());
    }
    let mut msg = format!("{what}: result differs from the golden file\n");
    if got.timed_out {
        msg.push_str("  the run TIMED OUT and was killed (LDNC_TIMEOUT sets the limit in seconds)\n");
    }
    if got.status != golden.status {
        msg.push_str(&format!("  exit status: expected {}, got {}\n", golden.status, got.status));
    }
    if got.stdout != golden.stdout {
        msg.push_str(&format!("  stdout: {}\n", process::first_difference(&golden.stdout, &got.stdout)));
    }
    if !got.stderr.is_empty() {
        msg.push_str(&format!("  stderr:\n{}\n", process::show(&got.stderr, 3000)));
    }
    Err(Failure::Case(msg))
}

fn golden_for(ctx: &Ctx, program: &Program, variant: Variant) -> Result<Golden, Failure> {
    guest::load_golden(&ctx.programs_dir, &program.name, variant).map_err(|e| {
        Failure::Setup(format!("{e}\n(no golden output: generate it on x86_64 with `BLESS=1 cargo test -p ldnc-tests --test programs`)"))
    })
}

fn bless_all(ctx: &Ctx, programs: &[Program]) -> Result<(), String> {
    for p in programs {
        let mut results = Vec::new();
        for &v in &p.variants {
            let exe = guest::build(p, v, &ctx.build_root).map_err(|e| e.to_string())?;
            let o = ctx.run(p, v, &exe, None).map_err(|f| f.message().to_string())?;
            if o.timed_out {
                return Err(format!("{} ({}) timed out natively", p.name, v.name()));
            }
            results.push((v, Golden { stdout: o.stdout, status: o.status }));
        }
        guest::bless(&ctx.programs_dir, &p.name, &results).map_err(|e| e.to_string())?;
        eprintln!("blessed {}", p.name);
    }
    Ok(())
}

/// gcc -O2 compiles the dense switch in `dispatch` to a table of targets and `jmp *%reg`.
fn check_jump_table(exe: &Path) -> Result<(), Failure> {
    let mut cmd = Command::new("objdump");
    cmd.args(["-d", "--no-show-raw-insn", "--disassemble=dispatch"]).arg(exe);
    let o = process::run(cmd, None, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))?;
    if o.status != 0 {
        return Err(Failure::Setup(format!("objdump failed: {}", process::show(&o.stderr, 2000))));
    }
    let text = String::from_utf8_lossy(&o.stdout);
    if !text.contains("<dispatch>:") {
        return Err(Failure::Case(format!("no function `dispatch` in {}", exe.display())));
    }
    if text.lines().any(|l| l.contains("jmp") && l.contains("*%")) {
        Ok(())
    } else {
        Err(Failure::Case(format!("`dispatch` has no indirect jump (no jump table was made):\n{text}")))
    }
}

/// With `PRUNE_KNOWN=1`, deletes the KNOWN-FAILING lines of cases that passed (this run still
/// reports them; the next one is green).
fn prune_if_asked(known: &KnownFailing, path: &Path, report: &trial::Report) {
    if std::env::var_os("PRUNE_KNOWN").is_some_and(|v| v == "1") && !report.unexpected_passes.is_empty() {
        match known.prune(path, &report.unexpected_passes) {
            Ok(n) => eprintln!("PRUNE_KNOWN: removed {n} line(s) from {}", path.display()),
            Err(e) => eprintln!("PRUNE_KNOWN: {e}"),
        }
    }
}

/// A missing ld-nc is reported once with how to build it; every ld-nc case fails with it too,
/// whatever KNOWN-FAILING says, so nothing passes for lack of a binary.
fn binary_trial(launcher: &Result<Launcher, LocateError>) -> Trial {
    let l = launcher.clone();
    Trial::new("ld-nc-binary", move || l.map(|_| ()).map_err(|e| Failure::Setup(e.to_string())))
}

fn main() -> ExitCode {
    let host = Host::current();
    let ctx = Arc::new(Ctx {
        programs_dir: guest::programs_dir(),
        build_root: guest::build_root(Path::new(env!("CARGO_TARGET_TMPDIR"))),
    });
    let programs = match guest::discover(&ctx.programs_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot read the guest programs: {e}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::var_os("BLESS").is_some_and(|v| v == "1") {
        if !host.runs_guests_natively() {
            eprintln!("BLESS=1 writes golden files from native runs, which needs an x86_64 test build");
            return ExitCode::FAILURE;
        }
        if let Err(e) = bless_all(&ctx, &programs) {
            eprintln!("BLESS failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    let known_path = ctx.programs_dir.join("KNOWN-FAILING");
    let known = KnownFailing::load(&known_path, 3);
    let launcher: Result<Launcher, LocateError> = ldnc::locate();

    let mut trials = vec![binary_trial(&launcher)];
    let hosts = [Host::X86_64, Host::Riscv64];
    trials.push(ldnc_tests::known::list_trial(
        known.clone(),
        programs
            .iter()
            .flat_map(|p| p.variants.iter().flat_map(move |v| hosts.map(|h| vec![p.name.clone(), v.name().to_string(), h.name().to_string()])))
            .collect(),
    ));
    let known = known.unwrap_or_default();
    for program in &programs {
        for &variant in &program.variants {
            let cell: BuildCell = Arc::new(OnceLock::new());
            if program.name == "jumptable" && variant != Variant::MuslStatic && variant.has_native_case() {
                let (ctx, cell, p) = (Arc::clone(&ctx), Arc::clone(&cell), program.clone());
                trials.push(Trial::new(format!("jumptable/{}", variant.name()), move || {
                    check_jump_table(&ctx.build(&cell, &p, variant)?)
                }));
            }
            if host.runs_guests_natively() && variant.has_native_case() {
                let (ctx, cell, p) = (Arc::clone(&ctx), Arc::clone(&cell), program.clone());
                trials.push(Trial::new(format!("native/{}/{}", program.name, variant.name()), move || {
                    let exe = ctx.build(&cell, &p, variant)?;
                    let golden = golden_for(&ctx, &p, variant)?;
                    compare("native run", &golden, &ctx.run(&p, variant, &exe, None)?)
                }));
            }
            let expected = known
                .lookup(&[&program.name, variant.name(), host.name()])
                .map(|e| (e.line, format!("{}:{}: {}", known_path.display(), e.line, e.reason)));
            let (ctx, cell, p, l) = (Arc::clone(&ctx), Arc::clone(&cell), program.clone(), launcher.clone());
            trials.push(
                Trial::new(format!("ldnc/{}/{}", program.name, variant.name()), move || {
                    let launcher = l.map_err(|_| Failure::Setup("no ld-nc binary: see the ld-nc-binary case".into()))?;
                    let exe = ctx.build(&cell, &p, variant)?;
                    let golden = golden_for(&ctx, &p, variant)?;
                    compare(&format!("under ld-nc on {}", host.name()), &golden, &ctx.run(&p, variant, &exe, Some(&launcher))?)
                })
                .expect_failure(expected),
            );
        }
    }
    let report = trial::run(trials);
    prune_if_asked(&known, &known_path, &report);
    report.exit_code()
}
