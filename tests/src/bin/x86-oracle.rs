//! `x86-oracle`: runs differential-test cases on the real x86_64 CPU for a test process that cannot
//! (the riscv64 test binary under qemu-riscv64). Cases arrive on stdin in the
//! `ldnc_tests::difftest::wire` format; outcomes leave on stdout in the same order.

#[cfg(target_arch = "x86_64")]
fn main() -> std::process::ExitCode {
    use std::io::{Read, Write};

    use ldnc_tests::difftest::native::Native;
    use ldnc_tests::difftest::{wire, Slot};

    fn run() -> Result<(), String> {
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input).map_err(|e| format!("reading stdin: {e}"))?;
        let cases = wire::get_cases(&input).map_err(|e| e.to_string())?;
        let mut slots: Vec<Option<(Slot, Native)>> = (0..ldnc_tests::difftest::SLOTS).map(|_| None).collect();
        let mut out = Vec::with_capacity(cases.len() * 512);
        out.extend_from_slice(&wire::MAGIC.to_le_bytes());
        for c in &cases {
            let entry = slots.get_mut(usize::from(c.slot)).ok_or("case names a slot out of range")?;
            if entry.is_none() {
                let mut s = Slot::map(c.slot).map_err(|e| e.to_string())?;
                let n = Native::install(&mut s).map_err(|e| e.to_string())?;
                *entry = Some((s, n));
            }
            let Some((slot, native)) = entry.as_mut() else { return Err("slot vanished".into()) };
            // SAFETY: the cases are produced by the test's generator, which builds straight-line,
            // non-faulting snippets touching only the slot's data window; the oracle trusts its
            // only client.
            let o = unsafe { native.run(slot, c) }.map_err(|e| e.to_string())?;
            wire::put_outcome(&mut out, c, &o);
        }
        std::io::stdout().write_all(&out).map_err(|e| format!("writing stdout: {e}"))?;
        Ok(())
    }

    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("x86-oracle: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() -> std::process::ExitCode {
    eprintln!("x86-oracle runs x86 code natively and only works on x86_64; build it for the x86_64 host");
    std::process::ExitCode::FAILURE
}
