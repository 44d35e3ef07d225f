//! Block profiling for the riscv64 backend (off by default): with `LDNC_RISCV_PROFILE=1` every
//! translated block starts by incrementing its own counter, and [`profile_report`] (called by the
//! runtime when the guest exits) prints the blocks that cost most, weighted by count × host
//! instructions, with their guest and host code. It answers "what to optimise" without a
//! profiler that understands the code cache.
//!
//! The counters live in boxed words owned by the profile, so their addresses stay fixed while
//! blocks that point at them run; they are never freed (a cache flush only stops using them).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::asm::{Asm, Ext};
use super::regs;

/// One profiled block.
#[derive(Debug)]
struct Entry {
    guest: u64,
    host: u64,
    /// The guest instructions, already formatted (the guest may unmap its code before exit).
    guest_text: Vec<(u64, String)>,
    code: Vec<u8>,
    /// Bytes of in-line code (prologue and body); the exit stubs follow.
    body: usize,
    counter: Box<AtomicU64>,
}

/// Every profiled block since start-up, or `None` when profiling is off.
static PROFILE: Mutex<Option<Vec<Entry>>> = Mutex::new(None);

/// Whether `LDNC_RISCV_PROFILE` asks for profiling (read once, by the backend's constructor).
pub fn enabled_by_env() -> bool {
    crate::env_knob("LDNC_RISCV_PROFILE").is_some_and(|v| v != "0" && !v.is_empty())
}

/// Turn profiling on for the rest of the process.
pub fn enable() {
    if let Ok(mut p) = PROFILE.lock() {
        p.get_or_insert_with(Vec::new);
    }
}

/// A new counter for a block at guest `pc`, and the prologue that increments it. The prologue
/// uses only `t0`/`t1`, which are dead at every block entry (link sites and the indirect-branch
/// path jump through them).
pub fn prologue(ext: Ext) -> (Box<AtomicU64>, Vec<u8>) {
    let counter = Box::new(AtomicU64::new(0));
    let addr = counter.as_ptr() as u64;
    let mut a = Asm::new(ext);
    a.li(regs::T0, addr);
    a.ld(regs::T1, regs::T0, 0);
    a.addi(regs::T1, regs::T1, 1);
    a.sd(regs::T1, regs::T0, 0);
    (counter, a.bytes())
}

/// Record a translated block (its code including the prologue; `body` bytes of it are in-line
/// code, the rest exit stubs).
pub fn record(block: &crate::frontend::GuestBlock, host: u64, code: &[u8], body: usize, counter: Box<AtomicU64>) {
    let guest_text = block.insns.iter().map(|i| (i.insn.ip(), crate::frontend::format(&i.insn))).collect();
    if let Ok(mut p) = PROFILE.lock() {
        if let Some(v) = p.as_mut() {
            v.push(Entry { guest: block.start, host, guest_text, code: code.to_vec(), body, counter });
        }
    }
}

/// Print the hottest blocks to stderr (nothing when profiling is off). `LDNC_RISCV_PROFILE=N`
/// with N > 1 prints N blocks, else 30.
pub fn profile_report() {
    let Ok(mut p) = PROFILE.lock() else { return };
    let Some(v) = p.as_mut() else { return };
    let top = crate::env_knob("LDNC_RISCV_PROFILE").and_then(|s| s.parse::<usize>().ok()).filter(|&n| n > 1).unwrap_or(30);
    // Generated code increments the counters with plain loads and stores, so counts from
    // several threads may lose a few increments; good enough for a profile.
    let count = |e: &Entry| e.counter.load(Ordering::Relaxed);
    // In-line instructions only: the exit stubs run once per unlinked exit at most. (Helper
    // calls count as one instruction each, so helper-heavy blocks rank lower than they cost.)
    let cost = |e: &Entry| count(e) * (e.body as u64 / 4);
    let total: u64 = v.iter().map(cost).sum();
    let execs: u64 = v.iter().map(count).sum();
    v.sort_by_key(|e| std::cmp::Reverse(cost(e)));
    eprintln!(
        "ldnc riscv64 profile: {} blocks, {execs} block executions, {total} in-line host insns (static count x executions)",
        v.len()
    );
    let mut acc = 0u64;
    for (n, e) in v.iter().take(top).enumerate() {
        acc += cost(e);
        let pct = |x: u64| if total == 0 { 0.0 } else { 100.0 * x as f64 / total as f64 };
        eprintln!(
            "#{n} guest {:#x} host {:#x}: {} runs x {} in-line insns ({} helper calls) = {:.1}% (cumulative {:.1}%)",
            e.guest,
            e.host,
            count(e),
            e.body / 4,
            helper_calls(&e.code[..e.body.min(e.code.len())]),
            pct(cost(e)),
            pct(acc)
        );
        for (pc, t) in &e.guest_text {
            eprintln!("    {pc:#x}: {t}");
        }
        for (k, line) in super::disasm::disasm_buf(&e.code, e.host).iter().enumerate() {
            if k * 4 == e.body {
                eprintln!("        (exit stubs)");
            }
            eprintln!("        {:#x}: {line}", e.host + 4 * k as u64);
        }
    }
}

/// Calls out of generated code (`jalr ra, …`) in `code`: helpers, counted statically.
fn helper_calls(code: &[u8]) -> usize {
    code.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .filter(|&w| w & 0x7f == 0x67 && (w >> 7) & 31 == 1)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prologue_increments_its_own_counter_with_t0_t1_only() {
        let (counter, code) = prologue(Ext::default());
        let text = super::super::disasm::disasm_buf(&code, 0);
        let n = text.len();
        assert_eq!(&text[n - 3..], ["ld t1,0(t0)", "addi t1,t1,1", "sd t1,0(t0)"]);
        // Everything before builds the counter's address in t0.
        assert!(text[..n - 3].iter().all(|l| l.contains(" t0,")), "{text:?}");
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn helper_calls_counts_jalr_through_ra() {
        let mut a = Asm::new(Ext::default());
        a.i(super::super::encode::Op::Jalr, regs::RA, regs::RA, 0);
        a.i(super::super::encode::Op::Jalr, super::super::encode::Reg::ZERO, regs::T1, 0);
        a.i(super::super::encode::Op::Jalr, regs::RA, regs::RA, 0);
        assert_eq!(helper_calls(&a.bytes()), 2);
    }
}
