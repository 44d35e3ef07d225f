//! The record of guest memory: which ranges of this (identity-mapped) address space belong to the
//! guest and with which protection *the guest* asked for. The host mapping never has PROT_EXEC —
//! guest code is only read by the translator — so this record is the one place that knows what
//! is guest-executable; [`MapSource`] serves the translator's fetches from it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use translator::CodeSource;

/// `PROT_READ`, `PROT_WRITE`, `PROT_EXEC` as the guest (x86_64, same values as asm-generic) uses.
pub const PROT_READ: u32 = 1;
/// See [`PROT_READ`].
pub const PROT_WRITE: u32 = 2;
/// See [`PROT_READ`].
pub const PROT_EXEC: u32 = 4;

/// The host protection for a guest protection: never executable, readable whenever the guest may
/// execute (the translator reads it).
pub fn host_prot(guest: u32) -> i32 {
    let mut p = guest & (PROT_READ | PROT_WRITE);
    if guest & PROT_EXEC != 0 {
        p |= PROT_READ;
    }
    p as i32
}

/// Guest-owned ranges, `start -> (end, guest prot)`, non-overlapping.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuestMap {
    regions: BTreeMap<u64, (u64, u32)>,
}

impl GuestMap {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// The regions in address order, `(start, end, prot)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, u32)> + '_ {
        self.regions.iter().map(|(&s, &(e, p))| (s, e, p))
    }

    /// Forget `[start, end)`, splitting regions that straddle its edges.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let hit: Vec<(u64, u64, u32)> = self
            .regions
            .range(..end)
            .rev()
            .take_while(|(_, &(e, _))| e > start)
            .map(|(&s, &(e, p))| (s, e, p))
            .collect();
        for (s, e, p) in hit {
            self.regions.remove(&s);
            if s < start {
                self.regions.insert(s, (start, p));
            }
            if e > end {
                self.regions.insert(end, (e, p));
            }
        }
    }

    /// Record `[start, end)` as guest memory with `prot`, replacing what was there.
    pub fn insert(&mut self, start: u64, end: u64, prot: u32) {
        if start >= end {
            return;
        }
        self.remove(start, end);
        self.regions.insert(start, (end, prot));
    }

    /// Change the protection of the recorded parts of `[start, end)`.
    pub fn protect(&mut self, start: u64, end: u64, prot: u32) {
        let parts: Vec<(u64, u64)> = self
            .pieces(start, end)
            .into_iter()
            .map(|(s, e, _)| (s, e))
            .collect();
        for (s, e) in parts {
            self.insert(s, e, prot);
        }
    }

    /// The recorded parts of `[start, end)`, clipped to it.
    pub fn pieces(&self, start: u64, end: u64) -> Vec<(u64, u64, u32)> {
        let mut out: Vec<(u64, u64, u32)> = self
            .regions
            .range(..end)
            .rev()
            .take_while(|(_, &(e, _))| e > start)
            .map(|(&s, &(e, p))| (s.max(start), e.min(end), p))
            .collect();
        out.reverse();
        out
    }

    /// The parts of `[start, end)` that are not recorded.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut at = start;
        for (s, e, _) in self.pieces(start, end) {
            if s > at {
                out.push((at, s));
            }
            at = e;
        }
        if at < end {
            out.push((at, end));
        }
        out
    }

    /// Whether every byte of `[start, end)` is recorded with all of `prot`.
    pub fn allows(&self, start: u64, end: u64, prot: u32) -> bool {
        if end < start {
            return false;
        }
        self.gaps(start, end).is_empty()
            && self.pieces(start, end).iter().all(|&(_, _, p)| p & prot == prot)
    }

    /// [`GuestMap::allows`], or — when native libraries share the process ([`set_native_heap`])
    /// — a range the guest map does not record at all but the host has mapped: memory a native
    /// library allocated for the guest (`malloc` is the native one), such as a `sigaltstack`
    /// buffer. Only for data the runtime reads or writes on the guest's behalf.
    pub fn allows_data(&self, start: u64, end: u64, prot: u32) -> bool {
        if self.allows(start, end, prot) {
            return true;
        }
        NATIVE_HEAP.load(std::sync::atomic::Ordering::Relaxed)
            && end > start
            && self.pieces(start, end).is_empty()
            && host_mapped(start, end)
    }

    /// Whether any recorded part of `[start, end)` is guest-executable.
    pub fn any_exec(&self, start: u64, end: u64) -> bool {
        self.pieces(start, end).iter().any(|&(_, _, p)| p & PROT_EXEC != 0)
    }

    /// The end of the run of guest-executable memory containing `pc` (0 if `pc` is not in one).
    pub fn exec_run_end(&self, pc: u64) -> u64 {
        let mut at = pc;
        loop {
            match self.regions.range(..=at).next_back() {
                Some((_, &(e, p))) if e > at && p & PROT_EXEC != 0 => at = e,
                _ => return if at == pc { 0 } else { at },
            }
        }
    }
}

/// The guest map shared by the syscall layer (which changes it) and the translator (which reads
/// guest code through it), from every guest thread. A reader-writer lock: translation reads it
/// (under the translator's lock), and a syscall that changes guest mappings holds the write side
/// across the host call and the record update, so a concurrent translation never fetches from a
/// range that is being unmapped. Lock order: translator, then this; never the reverse (syscall
/// handlers drop their guard before invalidating translations).
#[derive(Debug, Clone, Default)]
pub struct SharedMap(Arc<RwLock<GuestMap>>);

impl SharedMap {
    /// A map holding `m`.
    pub fn new(m: GuestMap) -> SharedMap {
        SharedMap(Arc::new(RwLock::new(m)))
    }

    /// Read access (short-lived: never held across translation or a blocking call).
    pub fn borrow(&self) -> RwLockReadGuard<'_, GuestMap> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Read access if nobody writes now (for signal handlers, which must not wait).
    pub fn try_borrow(&self) -> Option<RwLockReadGuard<'_, GuestMap>> {
        self.0.try_read().ok()
    }

    /// Write access (short-lived, as for [`SharedMap::borrow`]).
    pub fn borrow_mut(&self) -> RwLockWriteGuard<'_, GuestMap> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The translator's view of guest code: bytes of guest-executable memory only.
#[derive(Debug)]
pub struct MapSource(pub SharedMap);

impl CodeSource for MapSource {
    fn fetch(&self, pc: u64, buf: &mut [u8]) -> usize {
        // Held over the copy: an munmap on another thread waits for it (see `SharedMap`).
        let map = self.0.borrow();
        let end = map.exec_run_end(pc);
        if end <= pc {
            return 0;
        }
        let n = buf.len().min((end - pc) as usize);
        // SAFETY: `[pc, pc + n)` is recorded as guest-executable, and guest-executable memory is
        // always host-readable (`host_prot`), mapped at its identity address.
        unsafe { core::ptr::copy_nonoverlapping(pc as *const u8, buf.as_mut_ptr(), n) };
        n
    }

    fn watch_code(&self, start: u64, end: u64) -> bool {
        let map = self.0.borrow();
        crate::smc::watch(start, end, |page| {
            map.pieces(page, page + 1).first().map(|&(_, _, p)| host_prot(p))
        })
    }
}

/// Host `mmap`, returning the address or `-errno`.
///
/// # Safety
/// With `MAP_FIXED` it replaces whatever is mapped at `addr`: the caller must own that range.
pub unsafe fn host_mmap(addr: u64, len: u64, prot: i32, flags: i32, fd: i32, off: u64) -> Result<u64, i32> {
    // SAFETY: forwarded to the caller's contract.
    let p = unsafe { libc::mmap(addr as *mut _, len as usize, prot, flags, fd, off as libc::off_t) };
    if p == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(p as u64)
    }
}

/// Give the page-aligned guest range `[start, end)`, which the guest owns, protection `prot` on
/// the host (without PROT_EXEC, see [`host_prot`]) and in `map` (the loader's PT_GNU_RELRO).
pub fn guest_mprotect(map: &mut GuestMap, start: u64, end: u64, prot: u32) {
    // SAFETY: the range belongs to the guest (the caller's object), so no host data lives there.
    let r = unsafe { libc::mprotect(start as *mut _, (end - start) as usize, host_prot(prot)) };
    if r == 0 {
        map.protect(start, end, prot);
    } else {
        log::warn!(target: "ldnc::load", "mprotect({start:#x}, {:#x}): {}", end - start, std::io::Error::last_os_error());
    }
}

/// Whether guest data may live in memory the guest map does not record (a bridged program, whose
/// heap is the native libc's).
static NATIVE_HEAP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Native libraries allocate memory for the guest from now on (see [`GuestMap::allows_data`]).
pub fn set_native_heap() {
    NATIVE_HEAP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether every page of `[start, end)` is mapped in this process (mincore(2) fails with ENOMEM
/// on an unmapped page).
fn host_mapped(start: u64, end: u64) -> bool {
    let a = start & !0xfff;
    let len = (end - a + 0xfff) & !0xfff;
    let pages = (len / 4096) as usize;
    if pages > 1 << 16 {
        return false;
    }
    let mut v = vec![0u8; pages];
    // SAFETY: `v` has one byte per page of the range.
    unsafe { libc::mincore(a as *mut _, len as usize, v.as_mut_ptr()) == 0 }
}

/// The calling thread's `errno`.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_split() {
        let mut m = GuestMap::new();
        m.insert(0x1000, 0x5000, PROT_READ | PROT_EXEC);
        m.remove(0x2000, 0x3000);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![(0x1000, 0x2000, 5), (0x3000, 0x5000, 5)]
        );
        assert_eq!(m.gaps(0x0, 0x6000), vec![(0, 0x1000), (0x2000, 0x3000), (0x5000, 0x6000)]);
        m.protect(0x0, 0x4000, PROT_READ);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![(0x1000, 0x2000, 1), (0x3000, 0x4000, 1), (0x4000, 0x5000, 5)]
        );
        assert!(m.any_exec(0x3000, 0x4001));
        assert!(!m.any_exec(0x3000, 0x4000));
        assert!(m.allows(0x3000, 0x5000, PROT_READ));
        assert!(!m.allows(0x1000, 0x5000, PROT_READ));
    }

    #[test]
    fn exec_runs_cross_adjacent_regions() {
        let mut m = GuestMap::new();
        m.insert(0x1000, 0x2000, PROT_READ | PROT_EXEC);
        m.insert(0x2000, 0x3000, PROT_EXEC);
        m.insert(0x3000, 0x4000, PROT_READ);
        assert_eq!(m.exec_run_end(0x1800), 0x3000);
        assert_eq!(m.exec_run_end(0x3000), 0);
        assert_eq!(m.exec_run_end(0x800), 0);
    }

    #[test]
    fn fetch_reads_only_exec_memory() {
        static CODE: [u8; 32] = [0x90; 32];
        let a = CODE.as_ptr() as u64;
        let map: SharedMap = SharedMap::new(GuestMap::new());
        map.borrow_mut().insert(a, a + 16, PROT_READ | PROT_EXEC);
        map.borrow_mut().insert(a + 16, a + 32, PROT_READ);
        let src = MapSource(map);
        let mut buf = [0u8; 15];
        assert_eq!(src.fetch(a + 10, &mut buf), 6);
        assert_eq!(buf[..6], [0x90; 6]);
        assert_eq!(src.fetch(a + 16, &mut buf), 0);
    }

    #[test]
    fn host_never_gets_exec() {
        assert_eq!(host_prot(PROT_EXEC), libc::PROT_READ);
        assert_eq!(host_prot(PROT_READ | PROT_WRITE | PROT_EXEC), libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(host_prot(0), 0);
    }
}
