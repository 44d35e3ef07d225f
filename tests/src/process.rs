//! Running a child process to completion with a time limit, capturing stdout and stderr and
//! reducing its end to one number the way a shell does (a death by signal N becomes 128+N, which
//! is also what ld-nc exits with when its guest is killed).

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a finished (or stopped) child produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code, or 128+N for a death by signal N.
    pub status: i32,
    /// True when the time limit ran out and the harness killed the child's process group.
    pub timed_out: bool,
}

/// Failure to run a child at all (as opposed to a child that ran and failed).
#[derive(Debug)]
pub enum RunError {
    Spawn { program: String, error: std::io::Error },
    Wait { program: String, error: std::io::Error },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn { program, error } => write!(f, "cannot start {program}: {error}"),
            RunError::Wait { program, error } => write!(f, "waiting for {program} failed: {error}"),
        }
    }
}

impl std::error::Error for RunError {}

/// The shell's view of an exit status: the code, or 128 + the signal number.
pub fn status_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

/// Default time limit for one run; `LDNC_TIMEOUT` (seconds) overrides it. Runs under ld-nc inside
/// qemu-riscv64 on two shared cores are slow, but a hung guest must not hold up a whole run (several
/// dozen cases × this limit), hence one minute.
pub fn default_timeout() -> Duration {
    std::env::var("LDNC_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(60), Duration::from_secs)
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            // A read error only truncates what we saw; the comparison will then fail visibly.
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

fn kill_group(child: &Child) {
    // The child leads its own process group (see `run`), so this reaches its descendants
    // too (e.g. the subshells of `busybox sh`) and the output pipes get closed.
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group we created for this
        // child; it has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Runs `cmd` with `stdin` fed from `input` (or /dev/null), waiting at most `timeout`.
pub fn run(mut cmd: Command, input: Option<Vec<u8>>, timeout: Duration) -> Result<Output, RunError> {
    let program = format!("{:?}", cmd.get_program());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|error| RunError::Spawn { program: program.clone(), error })?;
    let writer = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => Some(thread::spawn(move || {
            // The child may legitimately stop reading early (EPIPE); that is not our error.
            let _ = stdin.write_all(&data);
        })),
        _ => None,
    };
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(error) => {
                kill_group(&child);
                return Err(RunError::Wait { program, error });
            }
        }
        if start.elapsed() > timeout {
            timed_out = true;
            kill_group(&child);
            break child.wait().map_err(|error| RunError::Wait { program: program.clone(), error })?;
        }
        thread::sleep(Duration::from_millis(5));
    };
    // Descendants that outlive the child keep the pipes open; do not wait on them forever.
    if !timed_out {
        let grace = Instant::now();
        while !(out.is_finished() && err.is_finished()) && grace.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(5));
        }
        if !(out.is_finished() && err.is_finished()) {
            kill_group(&child);
        }
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(Output { stdout, stderr, status: status_code(status), timed_out })
}

/// Renders bytes for a failure message: text as is (lossy), cut to `limit` bytes with a note.
pub fn show(bytes: &[u8], limit: usize) -> String {
    let cut = bytes.len().min(limit);
    let mut s = String::from_utf8_lossy(&bytes[..cut]).into_owned();
    if bytes.len() > limit {
        s.push_str(&format!("\n… ({} more bytes)", bytes.len() - limit));
    }
    s
}

/// Describes the first difference between two byte strings: line number and both lines.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let e: Vec<&[u8]> = expected.split(|&b| b == b'\n').collect();
    let a: Vec<&[u8]> = actual.split(|&b| b == b'\n').collect();
    for i in 0..e.len().max(a.len()) {
        let el = e.get(i);
        let al = a.get(i);
        if el != al {
            let render = |l: Option<&&[u8]>| match l {
                Some(l) => format!("{:?}", show(l, 300)),
                None => "(end of output)".to_string(),
            };
            return format!("first difference at line {}:\n  expected: {}\n  actual:   {}", i + 1, render(el), render(al));
        }
    }
    "outputs are identical".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_signals() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let o = run(c, None, Duration::from_secs(20)).expect("sh runs");
        assert_eq!(o.stdout, b"out\n");
        assert_eq!(o.stderr, b"err\n");
        assert_eq!(o.status, 3);
        let mut c = Command::new("sh");
        c.args(["-c", "kill -TERM $$"]);
        assert_eq!(run(c, None, Duration::from_secs(20)).expect("sh runs").status, 128 + 15);
    }

    #[test]
    fn stdin_and_timeout() {
        let mut c = Command::new("cat");
        c.arg("-");
        let o = run(c, Some(b"abc".to_vec()), Duration::from_secs(20)).expect("cat runs");
        assert_eq!(o.stdout, b"abc");
        let mut c = Command::new("sleep");
        c.arg("30");
        let o = run(c, None, Duration::from_millis(200)).expect("sleep runs");
        assert!(o.timed_out);
        assert_eq!(o.status, 128 + 9);
    }

    #[test]
    fn difference_is_located() {
        let d = first_difference(b"a\nb\nc\n", b"a\nx\nc\n");
        assert!(d.contains("line 2"), "{d}");
        assert!(d.contains("\"b\"") && d.contains("\"x\""), "{d}");
        assert!(first_difference(b"a\n", b"a\nb\n").contains("line 2"));
    }
}
