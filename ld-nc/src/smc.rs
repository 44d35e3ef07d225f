//! Self-modifying code, the runtime's half. When the translator translates code on a page the
//! guest may write (RWX memory: JITs, trampolines on an executable stack), ld-nc write-protects
//! that page on the host and remembers it in [`WATCHED`]. A guest write then faults; the SIGSEGV
//! handler recognises a watched page, makes it writable again, reports the write to the
//! translator's [`SmcState`] (which evicts the page's blocks at once) and returns, so the write is
//! retried and succeeds. The page is watched again when its code is next translated.
//!
//! The handler may run while translated code has the guest's FS base loaded (x86_64 backend), so
//! it must not touch thread-local storage: only atomics and raw syscalls through rustix
//! (`linux_raw`, no `errno`).
//!
//! A SIGSEGV, SIGBUS, SIGFPE or SIGILL that is not a watched-page write is a real guest fault. When
//! it was raised by translated code and the backend can rebuild the guest state at the faulting
//! instruction (x86_64 backend), the fault becomes an exit of the dispatcher, which delivers the
//! signal to the guest's handler or kills the process as the kernel would. Otherwise ld-nc prints
//! it and lets the default action kill the process (so the parent sees WIFSIGNALED).
//!
//! The kernel writing into a watched page on the guest's behalf (a `read()` into RWX memory) would
//! fail with EFAULT instead of faulting, so every syscall first releases all watched pages
//! ([`release_all`]); they are watched again when their code is retranslated. Cheap when nothing
//! is watched, which is the case for programs without RWX code.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;

use translator::smc::SmcState;

use crate::elf::PAGE;

/// Open-addressing set of watched page addresses (0 = empty, 1 = removed).
const SLOTS: usize = 1 << 14;
static WATCHED: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static WATCH_COUNT: AtomicU64 = AtomicU64::new(0);
const TOMBSTONE: u64 = 1;

/// The translator's SMC state, leaked once so the handler can reach it.
static SMC: AtomicPtr<SmcState> = AtomicPtr::new(core::ptr::null_mut());

/// The translator's host-PC → guest-PC map, leaked once so the handler can reach it.
static FAULTS: AtomicPtr<translator::fault::FaultMap> = AtomicPtr::new(core::ptr::null_mut());

fn slot_of(page: u64) -> usize {
    ((page >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 50) as usize & (SLOTS - 1)
}

fn find(page: u64) -> Option<&'static AtomicU64> {
    // Page 0 is the empty marker (and never guest code): without this check a NULL-page fault
    // "found" an empty slot, turned it into a tombstone and retried the fault, once per slot.
    if page <= TOMBSTONE {
        return None;
    }
    let mut i = slot_of(page);
    for _ in 0..SLOTS {
        let v = WATCHED[i].load(Ordering::Acquire);
        if v == page {
            return Some(&WATCHED[i]);
        }
        if v == 0 {
            return None;
        }
        i = (i + 1) & (SLOTS - 1);
    }
    None
}

/// Whether `page` is watched.
pub fn is_watched(page: u64) -> bool {
    find(page).is_some()
}

/// Add `page` to the set; false if the set is too full.
fn insert(page: u64) -> bool {
    if find(page).is_some() {
        return true;
    }
    if WATCH_COUNT.load(Ordering::Relaxed) as usize >= SLOTS * 3 / 4 {
        return false;
    }
    let mut i = slot_of(page);
    loop {
        let v = WATCHED[i].load(Ordering::Acquire);
        if (v == 0 || v == TOMBSTONE)
            && WATCHED[i].compare_exchange(v, page, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            WATCH_COUNT.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        i = (i + 1) & (SLOTS - 1);
    }
}

/// Remove `page`; true if it was watched. Async-signal-safe.
fn remove(page: u64) -> bool {
    match find(page) {
        Some(slot) if slot.compare_exchange(page, TOMBSTONE, Ordering::AcqRel, Ordering::Relaxed).is_ok() => {
            WATCH_COUNT.fetch_sub(1, Ordering::Relaxed);
            true
        }
        _ => false,
    }
}

/// Write-protect the guest-writable pages of `[start, end)` whose code was just translated.
/// `writable(page)` says whether the guest may write the page. Returns whether any page is watched
/// (the translator then never links into these blocks).
pub fn watch(start: u64, end: u64, mut host_prot_of: impl FnMut(u64) -> Option<i32>) -> bool {
    let mut any = false;
    let mut page = start & !(PAGE - 1);
    while page < end {
        if let Some(prot) = host_prot_of(page) {
            if prot & libc::PROT_WRITE != 0 {
                if !insert(page) {
                    log::warn!(target: "ldnc::load", "too many self-modifiable code pages; {page:#x} is not watched");
                    page += PAGE;
                    continue;
                }
                let ro = rustix::mm::MprotectFlags::from_bits_retain((prot & !libc::PROT_WRITE) as u32);
                // SAFETY: a guest page; removing write access only makes guest writes fault into
                // the handler below, which restores it.
                if unsafe { rustix::mm::mprotect(page as *mut _, PAGE as usize, ro) }.is_err() {
                    remove(page);
                } else {
                    any = true;
                }
            }
        }
        page += PAGE;
    }
    any
}

/// Forget watched pages in `[start, end)` (the guest remapped or re-protected them: their host
/// protection is being set anew).
pub fn unwatch(start: u64, end: u64) {
    if WATCH_COUNT.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut page = start & !(PAGE - 1);
    while page < end {
        remove(page);
        page += PAGE;
    }
}

/// Whether any page is watched.
pub fn any_watched() -> bool {
    WATCH_COUNT.load(Ordering::Relaxed) != 0
}

/// Give every watched page its write access back and drop its translations. Called before a
/// syscall: the kernel writing into a write-protected page would fail with EFAULT instead of
/// faulting, and what it writes may be code.
pub fn release_all() {
    for slot in &WATCHED {
        let page = slot.load(Ordering::Acquire);
        if page > TOMBSTONE && remove(page) {
            let rw = rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE;
            // SAFETY: a watched guest page, which was guest-writable before it was watched.
            let _ = unsafe { rustix::mm::mprotect(page as *mut _, PAGE as usize, rw) };
            let s = SMC.load(Ordering::Acquire);
            if !s.is_null() {
                // SAFETY: leaked in `install`, never freed.
                unsafe { (*s).guest_wrote(page, page + PAGE) };
            }
        }
    }
}

fn write_stderr(parts: &[&[u8]]) {
    // SAFETY: fd 2 stays open for the life of the process.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(2) };
    for p in parts {
        let _ = rustix::io::write(fd, p);
    }
}

fn hex(mut v: u64, buf: &mut [u8; 18]) -> &[u8] {
    let digits = b"0123456789abcdef";
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = digits[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    i -= 1;
    buf[i] = b'x';
    i -= 1;
    buf[i] = b'0';
    &buf[i..]
}

/// Turn a fault raised by translated code into a dispatcher exit (see the module docs).
#[cfg(target_arch = "x86_64")]
fn redirect_to_guest(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) -> bool {
    let map = FAULTS.load(Ordering::Acquire);
    if map.is_null() {
        return false;
    }
    // SAFETY: the kernel passes a valid siginfo and ucontext for SA_SIGINFO handlers; the map was
    // leaked in `install_fault_map`; FS still holds the guest's base here (this handler never
    // switches it), which is what the guest state needs.
    unsafe {
        let fault = translator::ctx::FaultInfo { signo: sig, code: (*info).si_code, addr: (*info).si_addr() as u64 };
        let fs: u64;
        core::arch::asm!("rdfsbase {}", out(reg) fs, options(nomem, nostack));
        translator::isa::x86_64::asm::redirect_fault(uc.cast(), &*map, fault, fs)
    }
}

/// Turn a fault raised by translated code into a dispatcher exit (see the module docs).
#[cfg(target_arch = "riscv64")]
fn redirect_to_guest(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) -> bool {
    let map = FAULTS.load(Ordering::Acquire);
    if map.is_null() {
        return false;
    }
    // SAFETY: the kernel passes a valid siginfo and ucontext for SA_SIGINFO handlers; the map was
    // leaked in `install_fault_map`.
    unsafe {
        let fault = translator::ctx::FaultInfo { signo: sig, code: (*info).si_code, addr: (*info).si_addr() as u64 };
        translator::isa::riscv64::redirect_fault(uc.cast(), &*map, fault)
    }
}

/// What [`interrupt_guest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// The thread was not running translated code: its run loop sees pending work at the next
    /// exit anyway.
    NotInCode,
    /// Stopped between two guest instructions: the thread leaves for its run loop.
    Stopped,
    /// Inside the host code of one guest instruction: try again a little later.
    Missed,
}

/// The interrupted host PC in a signal handler's context.
fn interrupted_pc(uc: *mut libc::c_void) -> u64 {
    // SAFETY: `uc` is a ucontext_t the kernel passed to an SA_SIGINFO handler.
    unsafe {
        let uc = uc.cast::<libc::ucontext_t>();
        #[cfg(target_arch = "x86_64")]
        let pc = (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as u64;
        #[cfg(target_arch = "riscv64")]
        let pc = (*uc).uc_mcontext.__gregs[0];
        pc
    }
}

/// From the handler of an asynchronous signal the guest will receive (or of ld-nc's kick): if
/// this thread was running translated code and stopped exactly between two guest instructions,
/// make it leave for the run loop, which delivers the signal at once. Async-signal-safe.
pub fn interrupt_guest(uc: *mut libc::c_void) -> Interrupt {
    let map = FAULTS.load(Ordering::Acquire);
    if map.is_null() || uc.is_null() {
        return Interrupt::NotInCode;
    }
    // SAFETY: the map was leaked in `install_fault_map`.
    let map = unsafe { &*map };
    if map.lookup(interrupted_pc(uc)).is_none() {
        return Interrupt::NotInCode;
    }
    // SAFETY: `uc` is the handler's own context. On x86_64 FS still holds the interrupted code's
    // base (the handler never switches it).
    let stopped = unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            let fs: u64;
            core::arch::asm!("rdfsbase {}", out(reg) fs, options(nomem, nostack));
            translator::isa::x86_64::asm::redirect_interrupt(uc.cast(), map, fs)
        }
        #[cfg(target_arch = "riscv64")]
        translator::isa::riscv64::redirect_interrupt(uc.cast(), map)
    };
    if stopped {
        Interrupt::Stopped
    } else {
        Interrupt::Missed
    }
}

extern "C" fn fault_handler(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    if unsafe { (*info).si_code } <= 0 {
        // Sent by `kill`, `raise` or `tgkill` (SI_USER, SI_QUEUE, SI_TKILL…), not raised by an
        // instruction: whatever its number, it is not a fault.
        crate::signals::sent_fault_signal(sig, info, uc);
        return;
    }
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as u64;
    let page = addr & !(PAGE - 1);
    if sig == libc::SIGSEGV && remove(page) {
        let rw = rustix::mm::MprotectFlags::READ | rustix::mm::MprotectFlags::WRITE;
        // SAFETY: a watched guest page: restoring the guest's write access.
        let _ = unsafe { rustix::mm::mprotect(page as *mut _, PAGE as usize, rw) };
        let s = SMC.load(Ordering::Acquire);
        if !s.is_null() {
            // SAFETY: leaked in `install`, never freed.
            unsafe { (*s).guest_wrote(page, page + PAGE) };
        }
        return;
    }
    if sig == libc::SIGSEGV && addr == interrupted_pc(uc) && crate::bridge::callback::redirect_host_call(addr, uc) {
        return;
    }
    if redirect_to_guest(sig, info, uc) {
        return;
    }
    let mut b = [0u8; 18];
    let name: &[u8] = match sig {
        libc::SIGBUS => b"SIGBUS",
        libc::SIGFPE => b"SIGFPE",
        libc::SIGILL => b"SIGILL",
        _ => b"SIGSEGV",
    };
    write_stderr(&[b"ld-nc: guest killed by signal ", name, b": fault at address ", hex(addr, &mut b), b"\n"]);
    // SAFETY: restoring the default action; returning re-executes the fault, which then kills the
    // process as the guest would have been killed.
    unsafe {
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, core::ptr::null_mut());
    }
}

/// Hook the translator's fault map, so faults in translated code reach the guest's handlers.
pub fn install_fault_map(map: Arc<translator::fault::FaultMap>) {
    FAULTS.store(Arc::into_raw(map).cast_mut(), Ordering::Release);
}

/// Hook the translator's SMC state and install the SIGSEGV/SIGBUS/SIGFPE/SIGILL handler.
pub fn install(smc: Arc<SmcState>) -> Result<(), String> {
    SMC.store(Arc::into_raw(smc).cast_mut(), Ordering::Release);
    // ld-nc's handlers run on an alternate stack: the guest's stack may be what overflowed.
    crate::threads::install_altstack();
    for sig in [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL] {
        install_handler(sig, fault_handler, libc::SA_NODEFER).map_err(|e| format!("cannot install the fault handler: {e}"))?;
    }
    Ok(())
}

/// A host handler of ld-nc's own for `sig`, on the alternate stack, with `flags` added.
pub fn install_handler(
    sig: i32,
    handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
    flags: i32,
) -> std::io::Result<()> {
    // SAFETY: all-zero is a valid sigaction; ld-nc's handlers only use atomics and raw syscalls.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | flags;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, core::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_insert_remove() {
        let p = 0x7777_0000_0000u64;
        assert!(!is_watched(p));
        assert!(insert(p));
        assert!(insert(p + PAGE));
        assert!(is_watched(p) && is_watched(p + PAGE));
        assert!(remove(p));
        assert!(!remove(p));
        assert!(is_watched(p + PAGE), "probe chains survive removal");
        unwatch(p, p + 2 * PAGE);
        assert!(!is_watched(p + PAGE));
    }

    #[test]
    fn page_zero_is_never_watched() {
        // A NULL-page fault asks for page 0, which is also the empty-slot marker.
        assert!(!is_watched(0));
        assert!(!remove(0));
        assert!(!remove(TOMBSTONE));
    }

    #[test]
    fn hex_formatting() {
        let mut b = [0u8; 18];
        assert_eq!(hex(0x401a2f, &mut b), b"0x401a2f");
        assert_eq!(hex(0, &mut b), b"0x0");
        assert_eq!(hex(u64::MAX, &mut b), b"0xffffffffffffffff");
    }
}
