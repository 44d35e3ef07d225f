//! The dispatcher under concurrency: guest threads run translated code in parallel while other
//! threads invalidate, forget and reuse the code cache (on the host's own backend, so the riscv64
//! build checks the riscv64 backend under qemu-riscv64).

use super::*;
use crate::frontend::RangeSource;
use crate::isa::HostBackend;
use crate::Gpr;

/// `L: add rax, rdi; dec rdi; jnz L; int3` — sums rdi..1 into rax.
static SUM: [u8; 12] = [0x48, 0x01, 0xf8, 0x48, 0xff, 0xcf, 0x75, 0xf8, 0xcc, 0x90, 0x90, 0x90];

fn translator(cache: usize) -> Translator<HostBackend> {
    let start = SUM.as_ptr() as u64;
    // SAFETY: static data outlives the translator.
    let src = unsafe { RangeSource::new(vec![(start, start + SUM.len() as u64)]) };
    Translator::<HostBackend>::with_cache_size(Box::new(src), cache).expect("cache")
}

/// Run the guest sum once on `ctx`; its result.
fn sum_once(tr: &Translator<HostBackend>, ctx: &mut ThreadCtx, n: u64) -> u64 {
    ctx.cpu.rip = SUM.as_ptr() as u64;
    ctx.cpu.set(Gpr::Rax, 0);
    ctx.cpu.set(Gpr::Rdi, n);
    // SAFETY: the code only touches registers.
    let e = unsafe { tr.run(ctx) };
    assert_eq!(e, Exit::Breakpoint);
    ctx.cpu.get(Gpr::Rax)
}

static KICKS: AtomicUsize = AtomicUsize::new(0);

fn count_kick(_tid: i32) {
    KICKS.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn translator_is_shared_between_threads() {
    fn sync_send<T: Sync + Send>() {}
    sync_send::<Translator<HostBackend>>();
}

#[test]
fn threads_run_while_others_invalidate_forget_and_reuse() {
    let tr = translator(1 << 20);
    tr.set_kick(count_kick);
    tr.threads_starting();
    assert!(tr.is_multithreaded());
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..3u64)
            .map(|t| {
                let (tr, done) = (&tr, &done);
                s.spawn(move || {
                    let mut ctx = ThreadCtx::new();
                    let mut runs = 0u64;
                    while !done.load(Ordering::Relaxed) || runs < 50 {
                        let n = 1000 + t * 7 + runs % 13;
                        assert_eq!(sum_once(tr, &mut ctx, n), n * (n + 1) / 2);
                        runs += 1;
                    }
                    tr.thread_ended(&mut ctx);
                    runs
                })
            })
            .collect();
        let start = SUM.as_ptr() as u64;
        for i in 0..300 {
            match i % 3 {
                0 => tr.invalidate(start, start + 1),
                1 => tr.flush(),
                _ => tr.reuse_memory(),
            }
            std::thread::yield_now();
        }
        done.store(true, Ordering::Relaxed);
        for w in workers {
            assert!(w.join().expect("worker") >= 50);
        }
    });
    assert!(tr.flushes() >= 100, "reuse_memory empties the code memory");
    assert!(tr.threads.lock().expect("list").is_empty(), "ended threads are forgotten");
}

#[test]
fn reuse_waits_for_a_thread_inside_translated_code() {
    // A thread in a long run of translated code is marked in code; reuse must wait for it (here
    // it leaves by itself: the kick is only counted).
    let tr = translator(1 << 20);
    tr.set_kick(count_kick);
    std::thread::scope(|s| {
        let tr = &tr;
        let w = s.spawn(move || {
            let mut ctx = ThreadCtx::new();
            let n = 300_000_000u64;
            let r = sum_once(tr, &mut ctx, n);
            tr.thread_ended(&mut ctx);
            r
        });
        // Wait until the worker is inside its block.
        while !tr.threads.lock().expect("list").iter().any(|t| t.in_code.load(Ordering::Acquire)) {
            std::thread::yield_now();
        }
        tr.reuse_memory();
        // The worker runs one block until its int3 and never re-enters: once the reuse is done,
        // it must be out of translated code.
        assert!(
            tr.threads.lock().expect("list").iter().all(|t| !t.in_code.load(Ordering::Acquire)),
            "reuse returned while a thread was in translated code"
        );
        let n = 300_000_000u64;
        assert_eq!(w.join().expect("worker"), n.wrapping_mul(n + 1) / 2);
    });
}
