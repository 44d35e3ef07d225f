//! What the tests of real programs (`busybox`, `dynamic`, `go`) share: comparing a native run with
//! the run under ld-nc, and the deterministic generator and file times their fixtures use.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::process::{self, Output};
use crate::trial::Failure;

/// ld-nc adds one message of its own when the guest dies by a signal; everything else must match.
pub fn without_ldnc_signal_note(stderr: &[u8], status: i32) -> Vec<u8> {
    if status <= 128 {
        return stderr.to_vec();
    }
    let mut out = Vec::new();
    for line in stderr.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"ld-nc") {
            out.extend_from_slice(line);
        }
    }
    out
}

/// The run under ld-nc must give what the native run gave: stdout, stderr (but for ld-nc's note
/// on a guest killed by a signal) and exit status, in time.
pub fn native_vs_ldnc(native: &Output, under: &Output) -> Result<(), Failure> {
    let under_stderr = without_ldnc_signal_note(&under.stderr, under.status);
    if native.stdout == under.stdout && native.stderr == under_stderr && native.status == under.status && !under.timed_out {
        return Ok(());
    }
    let mut msg = String::from("under ld-nc the result differs from the native run\n");
    if under.timed_out {
        msg.push_str("  the ld-nc run TIMED OUT and was killed (LDNC_TIMEOUT sets the limit in seconds)\n");
    }
    if native.status != under.status {
        msg.push_str(&format!("  exit status: native {}, ld-nc {}\n", native.status, under.status));
    }
    if native.stdout != under.stdout {
        msg.push_str(&format!(
            "  stdout ({} vs {} bytes): {}\n",
            native.stdout.len(),
            under.stdout.len(),
            process::first_difference(&native.stdout, &under.stdout)
        ));
    }
    if native.stderr != under_stderr {
        msg.push_str(&format!(
            "  stderr: native:\n{}\n  ld-nc:\n{}\n",
            process::show(&native.stderr, 2000),
            process::show(&under.stderr, 3000)
        ));
    }
    Err(Failure::Case(msg))
}

/// A small deterministic generator (xorshift64*) for fixture files.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Give `path` the modification time `secs` after the epoch (fixtures list stable times).
pub fn set_mtime(path: &Path, secs: u64) -> std::io::Result<()> {
    std::fs::File::open(path)?.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}
