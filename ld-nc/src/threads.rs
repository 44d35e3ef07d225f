//! Guest threads. Each guest thread (a `clone` with CLONE_VM|CLONE_THREAD) runs on a host thread
//! of its own with its own [`ThreadCtx`], and guest threads run translated code truly in parallel:
//! no lock is held while translated code runs or while a syscall blocks.
//!
//! What is per thread and what is shared:
//! - **Per thread**: the guest CPU state and host save area ([`ThreadCtx`], owned by the host
//!   thread's run loop); the signal mask (the host thread's own, `rt_sigprocmask` passes through);
//!   the guest alternate signal stack, the robust-list head, the clear-child-tid address and the
//!   "deliver even if blocked" flag (thread-locals here); the pending asynchronous signals
//!   (a [`Slot`] in [`SLOTS`], found by host tid, because the host signal handler that records
//!   them may run with the guest's FS loaded and cannot touch thread-local storage).
//! - **Shared**: the translator (code cache, lookup table, block map: its own lock, see
//!   `translator::dispatch`); the guest memory record (`mem::SharedMap`, a reader-writer lock);
//!   the rest of [`Process`] — signal dispositions, brk, exec settings — under the *process lock*
//!   ([`acquire`]/[`release`]), taken only while the runtime handles an exit that needs it (a
//!   custom syscall, a fault, signal delivery) and let go around blocking host calls
//!   ([`unlocked`]).
//!
//! Making a thread leave translated code (to deliver a signal to it, or for a stop-the-world
//! flush of the code cache) is done by interrupting it with [`KICK_SIGNAL`] or the guest signal
//! itself: the handler stops the code only at a guest instruction boundary, so when the signal
//! lands in the middle of one guest instruction's host sequence, a per-thread POSIX timer sends
//! the kick again shortly ([`RETRY_NS`]) until the thread is out. The kick signal is ld-nc's
//! (the guest cannot catch or block it: qemu-user reserves the same signal).

use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use translator::{Backend, CpuState, ThreadCtx, Translator};

use crate::process::{AltStack, Process};

/// The process lock: who holds it may touch [`Process`].
static PROC_LOCK: Mutex<()> = Mutex::new(());

/// Guest threads started by `clone` and still running.
static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// Host signal ld-nc uses to make a thread leave translated code (SIGRTMAX, as qemu-user).
pub const KICK_SIGNAL: i32 = 64;

/// Delay before the kick is repeated when it landed inside a guest instruction.
const RETRY_NS: i64 = 200_000;

thread_local! {
    /// `set_tid_address`/CLONE_CHILD_CLEARTID of this guest thread: zeroed and futex-woken when
    /// the thread exits (that is how `pthread_join` learns of it).
    static CLEAR_TID: Cell<u64> = const { Cell::new(0) };
    /// Whether this host thread runs a spawned guest thread (not the main one).
    static SPAWNED_HERE: Cell<bool> = const { Cell::new(false) };
    /// This guest thread's `sigaltstack`.
    static ALTSTACK: Cell<AltStack> = const { Cell::new(AltStack { sp: 0, flags: 2, size: 0 }) };
    /// `set_robust_list` head (recorded only: the kernel would walk it when a thread dies holding
    /// a robust mutex, which ld-nc does not emulate).
    static ROBUST_LIST: Cell<u64> = const { Cell::new(0) };
    /// A syscall that ran with a temporary signal mask (`rt_sigsuspend`, `ppoll`, `pselect6`,
    /// `epoll_pwait`) was interrupted: signals caught during it are delivered even though the
    /// restored mask blocks them, as the kernel does.
    static FORCE_SIGNALS: Cell<bool> = const { Cell::new(false) };
    /// The process lock, while this thread holds it.
    static HELD: core::cell::RefCell<Option<MutexGuard<'static, ()>>> = const { core::cell::RefCell::new(None) };
}

/// Take the process lock for this thread (kept until [`release`] or around [`unlocked`]).
pub fn acquire() {
    let g = PROC_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    HELD.with(|h| *h.borrow_mut() = Some(g));
}

/// Let go of the process lock.
pub fn release() {
    let g = HELD.with(|h| h.borrow_mut().take());
    drop(g);
}

/// Run `f` — a host call that touches no ld-nc state — without the process lock, so other guest
/// threads handle their exits while it blocks. Without the lock held it just runs `f`.
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

/// This thread's guest alternate signal stack.
pub fn altstack() -> AltStack {
    ALTSTACK.with(Cell::get)
}

/// Set this thread's guest alternate signal stack.
pub fn set_altstack(a: AltStack) {
    ALTSTACK.with(|c| c.set(a));
}

/// Record this thread's robust-list head.
pub fn set_robust_list(head: u64) {
    ROBUST_LIST.with(|c| c.set(head));
}

/// This thread's robust-list head.
pub fn robust_list() -> u64 {
    ROBUST_LIST.with(Cell::get)
}

/// Ask that the next delivery ignore the mask (see `FORCE_SIGNALS`).
pub fn set_force_signals(on: bool) {
    FORCE_SIGNALS.with(|c| c.set(on));
}

/// Whether a delivery ignores the mask; `take` clears the request.
pub fn force_signals(take: bool) -> bool {
    FORCE_SIGNALS.with(|c| if take { c.replace(false) } else { c.get() })
}

/// Whether the calling host thread runs a guest thread made by `clone` (its `exit` ends only
/// itself).
pub fn is_spawned() -> bool {
    SPAWNED_HERE.with(Cell::get)
}

/// Number of guest threads made by `clone` still running.
pub fn spawned_count() -> usize {
    SPAWNED.load(Ordering::SeqCst)
}

/// In a fork child only the forking thread exists: forget the others' slots, and make sure the
/// process lock (held by the forking thread, which is this one) is usable.
pub fn after_fork_child() {
    SPAWNED.store(0, Ordering::SeqCst);
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    for s in &SLOTS {
        let t = s.tid.load(Ordering::Relaxed);
        if t != 0 && t != me {
            s.tid.store(0, Ordering::Relaxed);
        }
    }
    // The child's own tid differs from the parent thread's: move this thread's slot.
    register_current();
}

/// A guest thread's state that signal handlers reach without thread-local storage.
#[derive(Debug)]
pub struct Slot {
    tid: AtomicI32,
    /// Asynchronous signals received by this thread and not yet delivered (bit `n - 1`).
    pub pending: AtomicU64,
    /// Kernel id of this thread's retry timer, or -1.
    timer: AtomicI32,
}

const NSLOTS: usize = 4096;

/// Slots of live guest threads (`tid == 0`: free).
static SLOTS: [Slot; NSLOTS] =
    [const { Slot { tid: AtomicI32::new(0), pending: AtomicU64::new(0), timer: AtomicI32::new(-1) } }; NSLOTS];

thread_local! {
    /// Where this thread's slot is.
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn home(tid: i32) -> usize {
    (tid as u32 as usize).wrapping_mul(0x9e37_79b9) % NSLOTS
}

/// The slot of host thread `tid`. Async-signal-safe (atomics only).
pub fn slot_of(tid: i32) -> Option<&'static Slot> {
    let mut i = home(tid);
    for _ in 0..NSLOTS {
        if SLOTS[i].tid.load(Ordering::Acquire) == tid {
            return Some(&SLOTS[i]);
        }
        i = (i + 1) % NSLOTS;
    }
    None
}

/// The calling thread's slot (from a signal handler: through its tid, no thread-locals).
pub fn current_slot() -> Option<&'static Slot> {
    slot_of(rustix::thread::gettid().as_raw_nonzero().get())
}

/// The calling thread's slot, from ordinary ld-nc code.
pub fn my_slot() -> Option<&'static Slot> {
    let i = MY_SLOT.with(Cell::get);
    SLOTS.get(i)
}

/// Give the calling thread a slot and a retry timer. Called once at the start of every guest
/// thread (and in a fork child).
pub fn register_current() {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let mut i = home(tid);
    for _ in 0..NSLOTS {
        if SLOTS[i].tid.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            SLOTS[i].pending.store(0, Ordering::Relaxed);
            SLOTS[i].timer.store(make_timer(tid), Ordering::Release);
            MY_SLOT.with(|c| c.set(i));
            return;
        }
        i = (i + 1) % NSLOTS;
    }
    log::warn!(target: "ldnc::signals", "more than {NSLOTS} guest threads: thread {tid} gets process-wide signal delivery");
}

/// Free the calling thread's slot (it is ending).
pub fn unregister_current() {
    if let Some(s) = my_slot() {
        let t = s.timer.swap(-1, Ordering::AcqRel);
        if t >= 0 {
            // SAFETY: deleting our own timer.
            unsafe { libc::syscall(libc::SYS_timer_delete, libc::c_long::from(t)) };
        }
        s.tid.store(0, Ordering::Release);
        MY_SLOT.with(|c| c.set(usize::MAX));
    }
}

/// A POSIX timer that sends [`KICK_SIGNAL`] to thread `tid` (timer_create(2) with
/// SIGEV_THREAD_ID); -1 if the kernel refuses.
fn make_timer(tid: i32) -> i32 {
    // SAFETY: all-zero is a valid sigevent.
    let mut ev: libc::sigevent = unsafe { core::mem::zeroed() };
    ev.sigev_signo = KICK_SIGNAL;
    ev.sigev_notify = libc::SIGEV_THREAD_ID;
    ev.sigev_notify_thread_id = tid;
    let mut id: libc::c_int = -1;
    // SAFETY: valid sigevent and output pointers.
    let r = unsafe { libc::syscall(libc::SYS_timer_create, libc::CLOCK_MONOTONIC, &ev as *const libc::sigevent, &mut id as *mut libc::c_int) };
    if r == 0 {
        id
    } else {
        -1
    }
}

/// Arm the calling thread's retry timer (one shot, [`RETRY_NS`]). Async-signal-safe: a raw
/// timer_settime(2), which cannot fail for our own valid timer (so glibc's `syscall` never
/// writes `errno`, which could be the guest's TLS here).
pub fn arm_retry(slot: &Slot) {
    let t = slot.timer.load(Ordering::Acquire);
    if t < 0 {
        return;
    }
    let spec = libc::itimerspec {
        it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
        it_value: libc::timespec { tv_sec: 0, tv_nsec: RETRY_NS },
    };
    // SAFETY: a valid timer id of this process and a valid itimerspec.
    unsafe { libc::syscall(libc::SYS_timer_settime, libc::c_long::from(t), 0, &spec as *const libc::itimerspec, core::ptr::null_mut::<libc::itimerspec>()) };
}

/// Make host thread `tid` leave translated code soon (the translator's stop-the-world kick).
pub fn kick(tid: i32) {
    // SAFETY: tgkill to a thread of this process with ld-nc's own signal.
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, KICK_SIGNAL) };
}

/// Handler of [`KICK_SIGNAL`]: leave translated code at the next guest instruction boundary.
extern "C" fn kick_handler(_sig: libc::c_int, _info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    crate::signals::leave_translated_code(uc);
}

/// Install the kick handler (once per process). SA_RESTART: a kick that lands in a blocking
/// syscall must not turn into a guest-visible EINTR.
pub fn install_kick() -> Result<(), String> {
    crate::smc::install_handler(KICK_SIGNAL, kick_handler, libc::SA_RESTART)
        .map_err(|e| format!("cannot install the kick handler: {e}"))
}

/// A raw pointer handed to the new host thread.
struct Shared<B: Backend> {
    tr: *const Translator<B>,
    proc: *mut Process,
}

// SAFETY: the translator is Sync; the process is only touched under the process lock (see the
// module docs).
unsafe impl<B: Backend> Send for Shared<B> {}

/// Host stack of a guest thread's host thread (ld-nc's own frames; the guest has its stack).
const HOST_STACK: usize = 2 << 20;

/// ld-nc's alternate signal stack for this host thread.
pub fn install_altstack() {
    const SIZE: usize = 256 << 10;
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
/// Called with the process lock held, from a guest thread running `tr` and `proc`, which must stay
/// alive as long as the process (they live in the main thread's frame, which only ends with the
/// process).
pub unsafe fn spawn<B: Backend + 'static>(
    tr: *const Translator<B>,
    proc: *mut Process,
    cpu: CpuState,
    clear_tid: u64,
) -> Result<u32, i32> {
    // SAFETY: per the contract, `tr` is live.
    unsafe { (*tr).threads_starting() };
    let shared = Shared { tr, proc };
    let (tx, rx) = std::sync::mpsc::channel();
    // The new thread starts with the creator's signal mask, as clone does; the guest's mask is
    // the host's, so nothing to convert.
    let spawned = std::thread::Builder::new().stack_size(HOST_STACK).spawn(move || {
        let shared = shared;
        install_altstack();
        register_current();
        // SAFETY: gettid has no preconditions.
        let _ = tx.send(unsafe { libc::gettid() } as u32);
        SPAWNED_HERE.with(|s| s.set(true));
        set_clear_tid(clear_tid);
        let mut ctx = ThreadCtx::new();
        ctx.cpu = cpu;
        crate::bridge::callback::set_current(&mut *ctx);
        // SAFETY: per this function's contract.
        let end = unsafe { crate::run::run_loop_raw(&*shared.tr, &mut ctx, shared.proc) };
        match end {
            crate::run::LoopEnd::Process(code) => {
                // SAFETY: exit_group semantics: the whole process ends.
                unsafe { libc::_exit(code) }
            }
            crate::run::LoopEnd::Thread | crate::run::LoopEnd::Returned => {
                // SAFETY: `tr` outlives every guest thread (contract).
                unsafe { (*shared.tr).thread_ended(&mut ctx) };
                let addr = CLEAR_TID.with(Cell::get);
                // SAFETY: `proc` is valid (contract); its memory record has its own lock.
                let writable = addr != 0
                    && unsafe { (*shared.proc).mem.borrow().allows(addr, addr + 4, crate::mem::PROT_WRITE) };
                unregister_current();
                SPAWNED.fetch_sub(1, Ordering::SeqCst);
                release();
                if writable {
                    // SAFETY: guest-writable memory (checked); the futex word of pthread_join.
                    unsafe {
                        (*(addr as *const core::sync::atomic::AtomicU32)).store(0, Ordering::SeqCst);
                        libc::syscall(libc::SYS_futex, addr, libc::FUTEX_WAKE, i32::MAX, 0, 0, 0);
                    }
                }
            }
        }
    });
    if spawned.is_err() {
        return Err(libc::EAGAIN);
    }
    SPAWNED.fetch_add(1, Ordering::SeqCst);
    rx.recv().map_err(|_| libc::EAGAIN)
}
