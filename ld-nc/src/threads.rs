//! Guest threads. Each guest thread (a `clone` with CLONE_VM|CLONE_THREAD) runs on a host thread
//! of its own with its own [`ThreadCtx`], sharing the translator and the process state. Those are
//! single-threaded data structures, so a guest thread holds one big lock ([`acquire`]) whenever it
//! runs translated code or ld-nc code, and lets go of it only around host syscalls that touch no
//! ld-nc state ([`unlocked`]): every pass-through syscall and the blocking calls ld-nc converts
//! (`poll`, `select`, `epoll_wait`, `rt_sigsuspend`, `pause`), so a thread blocked in `read`,
//! `futex`, `wait4`, `nanosleep`, `epoll_wait` or `sched_yield` lets the others run.
//!
//! Consequences: guest threads do not run in parallel, and a thread that spins without a
//! syscall waiting for another thread (a hand-written spin lock) never lets it run. Locks and
//! condition variables of glibc and musl go to `futex` when contended, so they work. A
//! thread-directed signal (`tgkill`) may be delivered to whichever guest thread next leaves
//! translated code.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use translator::{Backend, CpuState, ThreadCtx, Translator};

use crate::process::Process;

static GIL: Mutex<()> = Mutex::new(());

/// Guest threads started by `clone` and still running.
static SPAWNED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// `set_tid_address`/CLONE_CHILD_CLEARTID of this guest thread: zeroed and futex-woken when
    /// the thread exits (that is how `pthread_join` learns of it).
    static CLEAR_TID: Cell<u64> = const { Cell::new(0) };
    /// Whether this host thread runs a spawned guest thread (not the main one).
    static SPAWNED_HERE: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    /// The big lock, while this thread holds it.
    static HELD: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

/// Take the big lock for this thread (kept until [`release`] or around [`unlocked`]).
pub fn acquire() {
    let g = GIL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    HELD.with(|h| *h.borrow_mut() = Some(g));
}

/// Let go of the big lock for good (a guest thread ending).
pub fn release() {
    let g = HELD.with(|h| h.borrow_mut().take());
    drop(g);
}

/// Run `f` — a host call that touches no ld-nc state — without the big lock, so other guest
/// threads run while it blocks. Without the lock held (unit tests) it just runs `f`.
pub fn unlocked<T>(f: impl FnOnce() -> T) -> T {
    let held = HELD.with(|h| h.borrow_mut().take());
    let had = held.is_some();
    drop(held);
    let r = f();
    if had {
        acquire();
    }
    r
}

/// Record this thread's clear-child-tid address.
pub fn set_clear_tid(addr: u64) {
    CLEAR_TID.with(|c| c.set(addr));
}

/// Whether the calling host thread runs a guest thread made by `clone` (its `exit` ends only
/// itself).
pub fn is_spawned() -> bool {
    SPAWNED_HERE.with(Cell::get)
}

/// In a fork child only the forking thread exists.
pub fn after_fork_child() {
    SPAWNED.store(0, Ordering::SeqCst);
}

/// A raw pointer handed to the new host thread; only dereferenced under the big lock.
struct Shared<B: Backend> {
    tr: *mut Translator<B>,
    proc: *mut Process,
}

// SAFETY: the pointees are only touched by the thread holding the big lock (see the module docs).
unsafe impl<B: Backend> Send for Shared<B> {}

/// Host stack of a guest thread's host thread (ld-nc's own frames; the guest has its stack).
const HOST_STACK: usize = 2 << 20;

/// ld-nc's alternate signal stack for this host thread.
fn install_altstack() {
    const SIZE: usize = 64 << 10;
    // SAFETY: a fresh private mapping, kept for the life of the thread (leaked at its end, like the
    // kernel keeps it until exit).
    unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p != libc::MAP_FAILED {
            let ss = libc::stack_t { ss_sp: p, ss_flags: 0, ss_size: SIZE };
            libc::sigaltstack(&ss, core::ptr::null_mut());
        }
    }
}

/// Start a guest thread with registers `cpu`; its host tid, or an errno.
///
/// # Safety
/// Called with the big lock held, from a guest thread running `tr` and `proc`, which must stay
/// alive as long as the process (they live in the main thread's frame, which only ends with the
/// process).
pub unsafe fn spawn<B: Backend + 'static>(
    tr: *mut Translator<B>,
    proc: *mut Process,
    cpu: CpuState,
    clear_tid: u64,
) -> Result<u32, i32> {
    let shared = Shared { tr, proc };
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().stack_size(HOST_STACK).spawn(move || {
        let shared = shared;
        // SAFETY: gettid has no preconditions.
        let _ = tx.send(unsafe { libc::gettid() } as u32);
        install_altstack();
        SPAWNED_HERE.with(|s| s.set(true));
        set_clear_tid(clear_tid);
        let mut ctx = ThreadCtx::new();
        ctx.cpu = cpu;
        // SAFETY: per this function's contract; `run_loop_raw` takes the big lock first.
        let end = unsafe { crate::run::run_loop_raw(shared.tr, &mut ctx, shared.proc) };
        match end {
            crate::run::LoopEnd::Process(code) => {
                // SAFETY: exit_group semantics: the whole process ends.
                unsafe { libc::_exit(code) }
            }
            crate::run::LoopEnd::Thread => {
                let addr = CLEAR_TID.with(Cell::get);
                // SAFETY: `proc` is valid (contract) and this thread still holds the big lock.
                let writable = addr != 0
                    && unsafe { (*shared.proc).mem.borrow().allows(addr, addr + 4, crate::mem::PROT_WRITE) };
                if writable {
                    // SAFETY: guest-writable memory (checked); the futex word of pthread_join.
                    unsafe {
                        (addr as *mut u32).write_volatile(0);
                        libc::syscall(libc::SYS_futex, addr, libc::FUTEX_WAKE, i32::MAX, 0, 0, 0);
                    }
                }
                SPAWNED.fetch_sub(1, Ordering::SeqCst);
                release();
            }
        }
    });
    if spawned.is_err() {
        return Err(libc::EAGAIN);
    }
    SPAWNED.fetch_add(1, Ordering::SeqCst);
    rx.recv().map_err(|_| libc::EAGAIN)
}
