//! Self-modifying code. Guest pages that are writable and hold translated code are write-protected
//! by the runtime (it owns guest memory, see [`CodeSource::watch_code`]); a write to one faults, and
//! the runtime's fault handler calls [`SmcState::guest_wrote`], which is async-signal-safe: it
//! evicts the page's blocks from the indirect-branch table at once and queues the page for the
//! dispatcher, which drops the translations before it looks anything up again. Blocks on watched
//! pages are never the target of a direct link, so after the eviction nothing reaches stale code
//! except the rest of the block that did the write.
//!
//! [`CodeSource::watch_code`]: crate::CodeSource::watch_code

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use crate::cache::{LookupEntry, EMPTY, LOOKUP_ENTRIES, PAGE_SIZE};

/// Pages that can be queued before the dispatcher has to drop everything.
const PENDING: usize = 64;

/// State shared between the dispatcher and the runtime's write-fault handler.
#[derive(Debug)]
pub struct SmcState {
    lookup: AtomicPtr<LookupEntry>,
    pending: [AtomicU64; PENDING],
    overflow: AtomicBool,
}

impl Default for SmcState {
    fn default() -> Self {
        SmcState {
            lookup: AtomicPtr::new(core::ptr::null_mut()),
            pending: [const { AtomicU64::new(0) }; PENDING],
            overflow: AtomicBool::new(false),
        }
    }
}

impl SmcState {
    pub(crate) fn set_lookup(&self, table: *mut LookupEntry) {
        self.lookup.store(table, Ordering::Release);
    }

    /// The guest wrote to `[start, end)`, which holds translated code. Async-signal-safe: no locks,
    /// no allocation. Whole pages are evicted, and blocks starting on the page before too, since a
    /// block (at most 128 instructions of 15 bytes) can run into the next page.
    pub fn guest_wrote(&self, start: u64, end: u64) {
        let first = (start & !(PAGE_SIZE - 1)).saturating_sub(PAGE_SIZE);
        let last = (end + PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
        let table = self.lookup.load(Ordering::Acquire);
        if !table.is_null() {
            for i in 0..LOOKUP_ENTRIES {
                // SAFETY: the table has LOOKUP_ENTRIES entries and lives as long as the translator
                // that published it; entries are 8-byte aligned u64 pairs, so viewing `guest` as an
                // atomic is sound.
                let g = unsafe { &*core::ptr::addr_of!((*table.add(i)).guest).cast::<AtomicU64>() };
                let v = g.load(Ordering::Relaxed);
                if v != EMPTY && v >= first && v < last {
                    g.store(EMPTY, Ordering::Relaxed);
                }
            }
        }
        let mut page = start & !(PAGE_SIZE - 1);
        while page < end {
            // Page 0 is never guest code, so 0 marks a free slot.
            let queued = self.pending.iter().any(|slot| {
                slot.compare_exchange(0, page, Ordering::AcqRel, Ordering::Relaxed).is_ok()
                    || slot.load(Ordering::Relaxed) == page
            });
            if !queued {
                self.overflow.store(true, Ordering::Release);
            }
            page += PAGE_SIZE;
        }
    }

    /// Take the queued pages. `Err(())` means the queue overflowed and every translation must go.
    pub(crate) fn drain(&self, mut each: impl FnMut(u64)) -> Result<(), ()> {
        if self.overflow.swap(false, Ordering::AcqRel) {
            for slot in &self.pending {
                slot.store(0, Ordering::Relaxed);
            }
            return Err(());
        }
        for slot in &self.pending {
            let p = slot.swap(0, Ordering::AcqRel);
            if p != 0 {
                each(p);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_evicts_lookup_entries_and_queues_pages() {
        let mut table = vec![LookupEntry { guest: EMPTY, host: 0 }; LOOKUP_ENTRIES];
        table[0x1234] = LookupEntry { guest: 0x40_1234, host: 1 };
        table[0x2000] = LookupEntry { guest: 0x40_2000, host: 2 };
        let s = SmcState::default();
        s.set_lookup(table.as_mut_ptr());
        s.guest_wrote(0x40_1000, 0x40_1010);
        assert_eq!(table[0x1234].guest, EMPTY);
        assert_eq!(table[0x2000].guest, 0x40_2000);
        let mut pages = Vec::new();
        assert!(s.drain(|p| pages.push(p)).is_ok());
        assert_eq!(pages, vec![0x40_1000]);
    }

    #[test]
    fn overflow_asks_for_a_full_flush() {
        let s = SmcState::default();
        s.guest_wrote(0x10_0000, 0x10_0000 + PAGE_SIZE * (PENDING as u64 + 1));
        assert!(s.drain(|_| {}).is_err());
        assert!(s.drain(|_| {}).is_ok());
    }
}
