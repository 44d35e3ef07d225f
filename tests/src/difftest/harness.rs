//! The driver of one instruction family: generate the cases of every form, get the native outcomes
//! (in-process on x86_64, from the `x86-oracle` process elsewhere), run the same cases under the
//! translator, compare, and check the result against the backend's KNOWN-UNSUPPORTED list.
//!
//! Every failure of a family is collected before the test fails, so one run shows all of them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use translator::cpu::flags;
use translator::frontend::RangeSource;
use translator::isa::Backend;
use translator::{Exit, ThreadCtx, Translator};

use translator::cpuid::Features;

use super::gen::{make_case_at, Form, GenError};
use super::{code_base, compare, fnv, regs_text, Case, Error, Expect, Outcome, Slot, MAX_CODE};

/// Intel-syntax text of an instruction.
pub fn text(i: &iced_x86::Instruction) -> String {
    translator::frontend::format(i)
}

/// Cases per form: `DIFFTEST_CASES`, default 48.
pub fn cases_per_form() -> u64 {
    std::env::var("DIFFTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48)
}

/// Base seed: `DIFFTEST_SEED` (decimal or 0x-hex), default fixed.
pub fn base_seed() -> u64 {
    let s = std::env::var("DIFFTEST_SEED").unwrap_or_default();
    let parsed = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    };
    parsed.unwrap_or(0x1d0c_2026)
}

/// The seed of case `index` of the form named `form`.
pub fn case_seed(form: &str, index: u64) -> u64 {
    fnv(form) ^ base_seed() ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A translator reading guest code from `slot`'s snippet area.
pub fn translator_for<B: Backend>(slot: &Slot) -> Result<Translator<B>, String> {
    let base = code_base(slot.n);
    // SAFETY: the slot's code region stays mapped for as long as the slot lives, and callers keep
    // the slot alive for as long as the translator (both are locals of one family run).
    let src = unsafe { RangeSource::new(vec![(base, base + MAX_CODE as u64)]) };
    Translator::<B>::with_cache_size(Box::new(src), 16 << 20).map_err(|e| e.to_string())
}

/// Run `case` under the translator until it stops; returns the exit and the final CPU state. The
/// code is followed by `int3`.
pub fn run_raw<B: Backend>(tr: &mut Translator<B>, slot: &mut Slot, case: &Case) -> (Exit, Box<ThreadCtx>) {
    slot.load_window(case);
    let code = slot.code();
    code[..case.code.len()].copy_from_slice(&case.code);
    code[case.code.len()] = 0xcc;
    tr.flush();
    let mut ctx = ThreadCtx::new();
    ctx.cpu.gpr = case.regs.gpr;
    ctx.cpu.rflags = (case.regs.rflags & (flags::STATUS | flags::DF)) | flags::FIXED1 | flags::IF;
    ctx.cpu.xmm = case.regs.xmm;
    ctx.cpu.mxcsr = case.regs.mxcsr;
    ctx.cpu.rip = code_base(slot.n);
    // SAFETY: the snippet was generated to touch only the slot's data region, which is mapped, and
    // its code is readable where the translator's source says.
    let exit = unsafe { tr.run(&mut ctx) };
    (exit, ctx)
}

/// Run `case` under the translator; `Err` with a message unless it reached the `int3`.
pub fn run_translated<B: Backend>(tr: &mut Translator<B>, slot: &mut Slot, case: &Case) -> Result<Outcome, String> {
    let (exit, ctx) = run_raw(tr, slot, case);
    match exit {
        Exit::Breakpoint => {}
        Exit::Unsupported(u) => return Err(format!("{} backend: {u}", B::NAME)),
        other => return Err(format!("unexpected exit {other:?} at rip {:#x}", ctx.cpu.rip)),
    }
    let (window, wrote_outside) = slot.read_window();
    let c = &ctx.cpu;
    Ok(Outcome {
        regs: super::Regs { gpr: c.gpr, rflags: c.rflags, xmm: c.xmm, mxcsr: c.mxcsr },
        rip: c.rip,
        window,
        wrote_outside,
    })
}

/// Seconds one child may run translated cases before it is considered hung.
const CHILD_TIMEOUT_S: u32 = 120;

/// Run every case under the translator in forked children, so that translated code that crashes or
/// hangs fails its case instead of the whole test: a child runs cases from some index on and
/// streams results through a pipe; if it dies, the case after the last result is marked crashed
/// and a new child continues after it.
pub fn run_isolated<B: Backend>(tr: &mut Translator<B>, slot: &mut Slot, cases: &[Case]) -> Vec<Result<Outcome, String>> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut results: Vec<Result<Outcome, String>> = Vec::with_capacity(cases.len());
    while results.len() < cases.len() {
        let start = results.len();
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid two-element array for pipe(2).
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            results.push(Err(format!("pipe: {}", std::io::Error::last_os_error())));
            continue;
        }
        // SAFETY: the child only runs the translator on its private copy of memory, writes to the
        // pipe with write(2) and leaves with _exit(2), never returning into the test framework.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the child; closing our copy of the read end and arming a timeout.
            unsafe {
                libc::close(fds[0]);
                libc::alarm(CHILD_TIMEOUT_S);
            }
            for c in &cases[start..] {
                let mut rec = Vec::new();
                match run_translated(tr, slot, c) {
                    Ok(o) => {
                        rec.push(1);
                        super::wire::put_outcome(&mut rec, c, &o);
                    }
                    Err(e) => {
                        rec.push(0);
                        rec.extend_from_slice(&(e.len() as u32).to_le_bytes());
                        rec.extend_from_slice(e.as_bytes());
                    }
                }
                let mut done = 0;
                while done < rec.len() {
                    // SAFETY: writing initialised bytes of `rec` to our pipe.
                    let n = unsafe { libc::write(fds[1], rec[done..].as_ptr().cast(), rec.len() - done) };
                    if n <= 0 {
                        // SAFETY: leaving the child without running destructors or atexit handlers.
                        unsafe { libc::_exit(3) };
                    }
                    done += n as usize;
                }
            }
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: closing the parent's copy of the write end, which it never uses.
        unsafe { libc::close(fds[1]) };
        if pid < 0 {
            // SAFETY: the read end is ours and unused.
            unsafe { libc::close(fds[0]) };
            results.push(Err(format!("fork: {}", std::io::Error::last_os_error())));
            continue;
        }
        let mut buf = Vec::new();
        // SAFETY: `fds[0]` is the pipe's read end, owned from here on by the File.
        let mut f = unsafe { std::fs::File::from_raw_fd(fds[0]) };
        let _ = f.read_to_end(&mut buf);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let mut r = super::wire::Reader::new(&buf);
        while results.len() < cases.len() && !r.at_end() {
            let c = &cases[results.len()];
            let rec = match r.u8() {
                Ok(1) => super::wire::get_outcome(&mut r, c).map_err(|e| e.to_string()),
                Ok(_) => {
                    let len = r.u32().unwrap_or(0) as usize;
                    Err(r.bytes(len).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default())
                }
                Err(e) => Err(e.to_string()),
            };
            results.push(rec);
        }
        if results.len() < cases.len() && !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            let why = if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                if sig == libc::SIGALRM {
                    format!("hung: no result within {CHILD_TIMEOUT_S} s")
                } else {
                    format!("translated code crashed the process (signal {sig})")
                }
            } else {
                format!("translating child failed (status {status:#x})")
            };
            results.push(Err(why));
        } else if results.len() < cases.len() {
            results.push(Err("translating child stopped early".into()));
        }
    }
    results
}

/// Where the `x86-oracle` binary is: `LDNC_ORACLE`, else the usual cargo output directories.
pub fn oracle_path() -> Result<PathBuf, Error> {
    if let Some(p) = std::env::var_os("LDNC_ORACLE") {
        return Ok(PathBuf::from(p));
    }
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut roots = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        roots.push(PathBuf::from(t));
    }
    if let Some(t) = option_env!("CARGO_TARGET_DIR") {
        roots.push(PathBuf::from(t));
    }
    roots.push(manifest.join("../target"));
    for r in &roots {
        for sub in ["release", "debug", "x86_64-unknown-linux-gnu/release", "x86_64-unknown-linux-gnu/debug"] {
            let p = r.join(sub).join("x86-oracle");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Oracle(format!(
        "the x86-oracle binary was not found (looked in {roots:?}); build it on the x86_64 machine with \
         `cargo build -p ldnc-tests --bin x86-oracle` and/or set LDNC_ORACLE=/path/to/x86-oracle"
    )))
}

/// Native outcomes of `cases` from the oracle process.
pub fn oracle_outcomes(cases: &[Case]) -> Result<Vec<Outcome>, Error> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let path = oracle_path()?;
    let mut child = Command::new(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Oracle(format!("cannot run {}: {e}", path.display())))?;
    let input = super::wire::put_cases(cases);
    {
        let mut stdin = child.stdin.take().ok_or(Error::Oracle("no stdin".into()))?;
        stdin.write_all(&input).map_err(|e| Error::Oracle(format!("writing cases: {e}")))?;
    }
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .ok_or(Error::Oracle("no stdout".into()))?
        .read_to_end(&mut out)
        .map_err(|e| Error::Oracle(format!("reading outcomes: {e}")))?;
    let status = child.wait().map_err(|e| Error::Oracle(e.to_string()))?;
    if !status.success() {
        return Err(Error::Oracle(format!("{} failed: {status}", path.display())));
    }
    super::wire::get_outcomes(&out, cases)
}

/// Native outcomes: on the CPU itself on x86_64, from the oracle elsewhere (or when
/// `DIFFTEST_USE_ORACLE=1`, to test the oracle path on x86_64).
pub fn native_outcomes(slot: &mut Slot, cases: &[Case]) -> Result<Vec<Outcome>, Error> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var_os("DIFFTEST_USE_ORACLE").is_none() {
            let native = super::native::Native::install(slot)?;
            let mut v = Vec::with_capacity(cases.len());
            for c in cases {
                // SAFETY: cases come from `make_case`, which builds straight-line, non-faulting
                // snippets touching only the slot's data window.
                v.push(unsafe { native.run(slot, c)? });
            }
            return Ok(v);
        }
    }
    let _ = slot;
    oracle_outcomes(cases)
}

/// A KNOWN-UNSUPPORTED reason starting with this marks a form whose native result differs between
/// CPU models: listed, it may fail or pass.
pub const HOST_DEPENDENT: &str = "(host-dependent)";

/// The KNOWN-UNSUPPORTED list of backend `name`: form name → reason.
pub fn known_list(name: &str) -> BTreeMap<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("difftest").join(format!("KNOWN-UNSUPPORTED-{name}"));
    let mut m = BTreeMap::new();
    let Ok(text) = std::fs::read_to_string(&path) else { return m };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (form, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        m.insert(form.to_string(), reason.trim().to_string());
    }
    m
}

/// One case that went wrong.
#[derive(Debug, Clone)]
struct Failure {
    index: u64,
    seed: u64,
    text: String,
    what: String,
}

/// Totals of one family run.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Forms run.
    pub forms: usize,
    /// Cases run.
    pub cases: usize,
    /// Forms whose every case matched.
    pub passed: usize,
    /// Forms failing and listed as known.
    pub known: usize,
    /// Forms skipped because the backend's CPUID does not advertise their feature.
    pub not_advertised: usize,
}

/// Makes a case of a group for a slot from (slot, seed, case index, advertised features).
pub type MakeCase<'a> = Box<dyn Fn(u8, u64, u64, Features) -> Result<(Case, Expect, String), GenError> + 'a>;

/// A named set of cases, which passes or fails as one (a form, or a consumer in a flag chain).
pub struct Group<'a> {
    /// Name, as in the KNOWN-UNSUPPORTED lists.
    pub name: String,
    /// Optional features needed (`None`: never advertisable, skipped).
    pub needs: Option<Features>,
    /// The case maker.
    pub make: MakeCase<'a>,
}

impl std::fmt::Debug for Group<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("name", &self.name).finish()
    }
}

/// Run one family: every form in `forms`, [`cases_per_form`] cases each. Panics with the full
/// report if any unlisted form fails or any listed form now passes.
pub fn run_family<B: Backend>(family: &str, forms: &[Form]) -> Summary {
    let groups = forms
        .iter()
        .map(|f| {
            let f = *f;
            Group { name: f.name(), needs: f.needs(), make: Box::new(move |slot, seed, index, _| make_case_at(&f, slot, seed, index)) }
        })
        .collect();
    run_groups::<B>(family, groups)
}

/// Run named groups of cases, as [`run_family`] does for forms.
pub fn run_groups<B: Backend>(family: &str, groups: Vec<Group<'_>>) -> Summary {
    match run_family_inner::<B>(family, &groups) {
        Ok(s) => s,
        Err(report) => {
            #[allow(clippy::panic, reason = "a failing test reports through panic")]
            {
                panic!("{report}")
            }
        }
    }
}

fn run_family_inner<B: Backend>(family: &str, forms: &[Group<'_>]) -> Result<Summary, String> {
    let t0 = Instant::now();
    let mut slot = Slot::acquire().map_err(|e| e.to_string())?;
    let mut tr = translator_for::<B>(&slot)?;
    let features = tr.features();
    let n = cases_per_form();
    let mut sum = Summary::default();
    let mut cases = Vec::new();
    let mut meta: Vec<(usize, u64, u64, Expect, String)> = Vec::new();
    let mut failures: BTreeMap<usize, Vec<Failure>> = BTreeMap::new();
    let mut run_forms = Vec::new();
    let list = std::env::var_os("DIFFTEST_LIST").is_some();
    let only = std::env::var("DIFFTEST_FORM").ok();
    for (fi, form) in forms.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !form.name.contains(o.as_str())) {
            continue;
        }
        if list {
            println!("difftest {family}: form {}", form.name);
        }
        match form.needs {
            Some(need) if features.contains(need) => {}
            _ => {
                sum.not_advertised += 1;
                continue;
            }
        }
        run_forms.push(fi);
        for i in 0..n {
            let seed = case_seed(&form.name, i);
            match (form.make)(slot.n, seed, i, features) {
                Ok((c, ex, text)) => {
                    // `ex.stack` stays None: neither backend writes below the guest's RSP, so the
                    // whole window, stack included, is compared.
                    cases.push(c);
                    meta.push((fi, i, seed, ex, text));
                }
                Err(e) => failures.entry(fi).or_default().push(Failure {
                    index: i,
                    seed,
                    text: String::new(),
                    what: format!("case generation failed: {e}"),
                }),
            }
        }
    }
    let natives = native_outcomes(&mut slot, &cases).map_err(|e| format!("{family}: {e}"))?;
    let translated = run_isolated(&mut tr, &mut slot, &cases);
    for (k, case) in cases.iter().enumerate() {
        let (fi, index, seed, ex, text) = &meta[k];
        let what = match &translated[k] {
            Err(e) => Some(e.clone()),
            Ok(o) => {
                let d = compare(&natives[k], o, ex);
                (!d.is_empty()).then(|| {
                    let mut s = String::from("mismatch:");
                    for x in d {
                        let _ = write!(s, "\n        {x}");
                    }
                    s
                })
            }
        };
        if let Some(what) = what {
            failures.entry(*fi).or_default().push(Failure {
                index: *index,
                seed: *seed,
                text: format!("{text}  [bytes {}]\n      input: {}", hex(&case.code), regs_text(&case.regs)),
                what,
            });
        }
    }
    sum.forms = run_forms.len();
    sum.cases = cases.len();
    let known = known_list(B::NAME);
    let mut report = String::new();
    let mut to_add = Vec::new();
    let mut to_remove = Vec::new();
    for fi in &run_forms {
        let name = forms[*fi].name.clone();
        match (failures.get(fi), known.get(&name)) {
            (None, None) => sum.passed += 1,
            // The native result of these depends on the CPU model (the list says which differ),
            // so they may pass on another host.
            (None, Some(reason)) if reason.starts_with(HOST_DEPENDENT) => sum.passed += 1,
            (None, Some(_)) => to_remove.push(name),
            (Some(_), Some(_)) => sum.known += 1,
            (Some(fs), None) => {
                let _ = writeln!(report, "FAIL {name}: {} of {n} cases", fs.len());
                for f in fs.iter().take(3) {
                    let _ = writeln!(
                        report,
                        "    case {} (seed {:#x}): {}\n      {}",
                        f.index, f.seed, f.text, f.what
                    );
                }
                let reason = short_reason(&fs[0].what);
                to_add.push(format!("{name}  {reason}"));
            }
        }
    }
    println!(
        "difftest {family} [{}]: {} forms, {} cases, {} forms pass, {} known failing, {} not advertised, {:.1}s",
        B::NAME,
        sum.forms,
        sum.cases,
        sum.passed,
        sum.known,
        sum.not_advertised,
        t0.elapsed().as_secs_f64()
    );
    if to_add.is_empty() && to_remove.is_empty() {
        return Ok(sum);
    }
    if std::env::var_os("DIFFTEST_UPDATE_KNOWN").is_some() {
        update_known(B::NAME, &to_add, &to_remove).map_err(|e| format!("updating the known list: {e}"))?;
        println!(
            "difftest {family} [{}]: DIFFTEST_UPDATE_KNOWN: listed {} forms, unlisted {}",
            B::NAME,
            to_add.len(),
            to_remove.len()
        );
        return Ok(sum);
    }
    let mut msg = format!("difftest {family} [{} backend]:\n{report}", B::NAME);
    if !to_add.is_empty() {
        let _ = writeln!(
            msg,
            "\n{} failing forms are not in tests/difftest/KNOWN-UNSUPPORTED-{}; fix them or list them:",
            to_add.len(),
            B::NAME
        );
        for l in &to_add {
            let _ = writeln!(msg, "{l}");
        }
    }
    if !to_remove.is_empty() {
        let _ = writeln!(msg, "\nforms listed in KNOWN-UNSUPPORTED-{} now pass; remove them:", B::NAME);
        for l in &to_remove {
            let _ = writeln!(msg, "{l}");
        }
    }
    Err(msg)
}

/// One line of reason for a KNOWN-UNSUPPORTED entry, from a failure message.
fn short_reason(what: &str) -> String {
    if what.starts_with("mismatch") {
        let mut fields: Vec<String> = what
            .lines()
            .skip(1)
            .filter_map(|l| l.trim().split(':').next())
            .map(|f| if f.starts_with("mem[") { "mem".to_string() } else { f.to_string() })
            .collect();
        fields.dedup();
        return format!("mismatch in {}", fields.join(", "));
    }
    let first = what.lines().next().unwrap_or("");
    if first.contains("unsupported instruction") {
        // Keep the mnemonic: `…: `lock bts [r8],r12w` (bytes …)` → `unsupported: lock bts`.
        let text = first.split('`').nth(1).unwrap_or("");
        let mnem: Vec<&str> = text.split_whitespace().take_while(|w| !w.contains(['[', ',']) ).take(2).collect();
        return format!("unsupported: {}", mnem.join(" "));
    }
    first.to_string()
}

/// Add `add` lines to and remove the forms of `remove` from the backend's list, under an
/// exclusive lock (families run in parallel threads).
fn update_known(backend: &str, add: &[String], remove: &[String]) -> std::io::Result<()> {
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsRawFd;
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("difftest").join(format!("KNOWN-UNSUPPORTED-{backend}"));
    let mut f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
    // SAFETY: flock on a descriptor we own; released when `f` is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            let form = l.split_whitespace().next().unwrap_or("");
            l.trim_start().starts_with('#') || !remove.iter().any(|r| r == form)
        })
        .map(str::to_string)
        .collect();
    lines.extend(add.iter().cloned());
    let mut out = lines.join("\n");
    out.push('\n');
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(out.as_bytes())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}
