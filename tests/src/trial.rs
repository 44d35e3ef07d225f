//! A small test runner for `harness = false` integration tests whose cases are only known at run
//! time (one per program × compiler variant, or per busybox command). It reports every case
//! separately in libtest's format, accepts the usual `cargo test` arguments (name filters,
//! `--exact`, `--skip`, `--list`, `--test-threads`), runs cases on worker threads, and applies
//! KNOWN-FAILING: an expected failure is reported as `ignored` with its reason (it did not pass),
//! an expected failure that passes is a failure (and is returned in the [`Report`], so the caller
//! can prune the list when asked to).

use std::collections::VecDeque;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

/// Why a case did not pass.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The case ran and its result was wrong (KNOWN-FAILING may excuse this).
    Case(String),
    /// The case could not be run at all (a compiler or the ld-nc binary is missing): never excused.
    Setup(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Failure::Case(m) | Failure::Setup(m) => m,
        }
    }
}

type Body = Box<dyn FnOnce() -> Result<(), Failure> + Send>;

/// One reported case.
pub struct Trial {
    pub name: String,
    /// Set when a KNOWN-FAILING line lists this case: a description naming the file, line and reason.
    pub expected_failure: Option<String>,
    /// The KNOWN-FAILING line number behind `expected_failure`.
    pub known_line: Option<usize>,
    body: Body,
}

impl std::fmt::Debug for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trial").field("name", &self.name).field("expected_failure", &self.expected_failure).finish()
    }
}

impl Trial {
    pub fn new(name: impl Into<String>, body: impl FnOnce() -> Result<(), Failure> + Send + 'static) -> Trial {
        Trial { name: name.into(), expected_failure: None, known_line: None, body: Box::new(body) }
    }

    /// Marks the case as listed in KNOWN-FAILING (at `line`, with a description of why).
    pub fn expect_failure(mut self, listed: Option<(usize, String)>) -> Trial {
        if let Some((line, why)) = listed {
            self.known_line = Some(line);
            self.expected_failure = Some(why);
        }
        self
    }
}

#[derive(Debug, Default)]
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    threads: Option<usize>,
}

fn parse_args() -> Args {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--exact" => a.exact = true,
            "--list" => a.list = true,
            "--skip" => a.skips.extend(it.next()),
            "--test-threads" => a.threads = it.next().and_then(|n| n.parse().ok()),
            // Flags with a value that we accept and ignore.
            "--color" | "--format" | "-Z" | "--logfile" | "--report-time" => {
                it.next();
            }
            s if s.starts_with("--test-threads=") => a.threads = s["--test-threads=".len()..].parse().ok(),
            s if s.starts_with("--skip=") => a.skips.push(s["--skip=".len()..].to_string()),
            s if s.starts_with('-') => {}
            s => a.filters.push(s.to_string()),
        }
    }
    a
}

fn selected(a: &Args, name: &str) -> bool {
    let hit = |f: &String| if a.exact { name == f } else { name.contains(f.as_str()) };
    (a.filters.is_empty() || a.filters.iter().any(hit)) && !a.skips.iter().any(|s| name.contains(s.as_str()))
}

const UNEXPECTED_PASS: &str = "passed, but it is listed as a known failure";

enum Verdict {
    Passed,
    Failed(String),
    Known(String),
}

fn judge(expected: Option<&String>, result: Result<(), Failure>) -> Verdict {
    match (expected, result) {
        (None, Ok(())) => Verdict::Passed,
        (Some(why), Ok(())) => Verdict::Failed(format!(
            "{UNEXPECTED_PASS} ({why}): remove that line so the list stays honest (PRUNE_KNOWN=1 does it)"
        )),
        (Some(why), Err(Failure::Case(_))) => Verdict::Known(why.clone()),
        (_, Err(f)) => Verdict::Failed(f.message().to_string()),
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub failed: bool,
    /// KNOWN-FAILING line numbers of listed cases that passed.
    pub unexpected_passes: Vec<usize>,
}

impl Report {
    pub fn exit_code(&self) -> ExitCode {
        if self.failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs the selected trials and prints libtest-style results; the run failed if any selected
/// trial failed.
pub fn run(trials: Vec<Trial>) -> Report {
    let args = parse_args();
    let total = trials.len();
    let chosen: VecDeque<Trial> = trials.into_iter().filter(|t| selected(&args, &t.name)).collect();
    let filtered_out = total - chosen.len();
    if args.list {
        for t in &chosen {
            println!("{}: test", t.name);
        }
        return Report::default();
    }
    println!("\nrunning {} tests", chosen.len());
    let start = Instant::now();
    let threads = args
        .threads
        .or_else(|| std::env::var("RUST_TEST_THREADS").ok().and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let queue = Arc::new(Mutex::new(chosen));
    // (case name, verdict, KNOWN-FAILING line)
    type Finished = (String, Verdict, Option<usize>);
    let results: Arc<Mutex<Vec<Finished>>> = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let results = Arc::clone(&results);
            thread::spawn(move || loop {
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some(trial) = next else { break };
                let Trial { name, expected_failure, known_line, body } = trial;
                let t0 = Instant::now();
                let result = catch_unwind(AssertUnwindSafe(body))
                    .unwrap_or_else(|_| Err(Failure::Setup("the case panicked".to_string())));
                let verdict = judge(expected_failure.as_ref(), result);
                // Slow cases are named with their time: they are the ones near the run time limit.
                let secs = t0.elapsed().as_secs_f64();
                let took = if secs >= 5.0 { format!(" ({secs:.1} s)") } else { String::new() };
                let line = match &verdict {
                    Verdict::Passed => format!("test {name} ... ok{took}"),
                    Verdict::Failed(_) => format!("test {name} ... FAILED{took}"),
                    Verdict::Known(why) => format!("test {name} ... ignored{took}, known failure: {why}"),
                };
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                drop(out);
                if let Ok(mut r) = results.lock() {
                    r.push((name, verdict, known_line));
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut results = match Arc::try_unwrap(results).map(|m| m.into_inner()) {
        Ok(Ok(r)) => r,
        _ => {
            eprintln!("test runner lost its results");
            return Report { failed: true, unexpected_passes: Vec::new() };
        }
    };
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(n, v, _)| if let Verdict::Failed(m) = v { Some((n, m)) } else { None })
        .collect();
    let passed = results.iter().filter(|(_, v, _)| matches!(v, Verdict::Passed)).count();
    let known = results.iter().filter(|(_, v, _)| matches!(v, Verdict::Known(_))).count();
    // A listed case that "failed" with a plain pass is exactly an unexpected pass.
    let unexpected_passes = results
        .iter()
        .filter_map(|(_, v, line)| match (v, line) {
            (Verdict::Failed(m), Some(l)) if m.starts_with(UNEXPECTED_PASS) => Some(*l),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        println!("\nfailures:\n");
        for (name, msg) in &failed {
            println!("---- {name} ----\n{msg}\n");
        }
        println!("failures:");
        for (name, _) in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {known} ignored; 0 measured; {filtered_out} filtered out; \
         finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    Report { failed: !failed.is_empty(), unexpected_passes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_failures_are_judged_both_ways() {
        let why = "KNOWN-FAILING:3 (no backend)".to_string();
        assert!(matches!(judge(None, Ok(())), Verdict::Passed));
        assert!(matches!(judge(Some(&why), Ok(())), Verdict::Failed(_)));
        assert!(matches!(judge(Some(&why), Err(Failure::Case("x".into()))), Verdict::Known(_)));
        assert!(matches!(judge(Some(&why), Err(Failure::Setup("x".into()))), Verdict::Failed(_)));
        assert!(matches!(judge(None, Err(Failure::Case("x".into()))), Verdict::Failed(_)));
    }

    #[test]
    fn filters_select_by_substring_or_exactly() {
        let mut a = Args { filters: vec!["arith".into()], ..Args::default() };
        assert!(selected(&a, "ldnc/arith/gcc-static"));
        assert!(!selected(&a, "ldnc/float/gcc-static"));
        a.exact = true;
        assert!(!selected(&a, "ldnc/arith/gcc-static"));
        let b = Args { skips: vec!["musl".into()], ..Args::default() };
        assert!(!selected(&b, "native/arith/musl-static"));
        assert!(selected(&b, "native/arith/gcc-static"));
    }
}
