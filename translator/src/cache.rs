//! The code cache: executable memory holding translated blocks, the guest-PC → host-code map, the
//! indirect-branch table that generated code probes inline, the links between blocks, and the
//! per-page index used to throw away translations whose guest code was overwritten.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Guest pages are tracked at this granularity for self-modifying code.
pub const PAGE_SIZE: u64 = 4096;

/// One slot of the indirect-branch table: generated code compares `guest` with the target and, on a
/// match, jumps to `host`. An empty slot has `guest == u64::MAX` (no instruction lives there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct LookupEntry {
    /// Guest address.
    pub guest: u64,
    /// Host code for it.
    pub host: u64,
}

/// Marker of an empty [`LookupEntry`].
pub const EMPTY: u64 = u64::MAX;

/// Number of slots in the indirect-branch table. Direct-mapped on the low bits of the guest address:
/// generated code computes the index with one AND (or a zero-extending move on x86).
pub const LOOKUP_ENTRIES: usize = 1 << 16;

/// Executable memory the blocks are placed in, allocated by bumping a cursor.
#[derive(Debug)]
pub struct CodeMemory {
    base: *mut u8,
    size: usize,
    used: usize,
}

// SAFETY: the mapping is owned by this value; who may write it is governed by the dispatcher's
// lock (see `dispatch`), not by which thread holds the value.
unsafe impl Send for CodeMemory {}

impl CodeMemory {
    /// Map `size` bytes of read-write-execute memory.
    pub fn new(size: usize) -> Result<CodeMemory, std::io::Error> {
        // SAFETY: an anonymous private mapping at a kernel-chosen address aliases nothing.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(CodeMemory { base: p.cast(), size, used: 0 })
    }

    /// Address the next block will be placed at.
    pub fn cursor(&self) -> u64 {
        self.base as u64 + self.used as u64
    }

    /// Bytes still free.
    pub fn free(&self) -> usize {
        self.size - self.used
    }

    /// Whether `addr` lies inside the cache.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.base as u64 && addr < self.base as u64 + self.size as u64
    }

    /// Append `code` at the cursor and return its address, or `None` when full.
    pub fn push(&mut self, code: &[u8]) -> Option<u64> {
        // Blocks start 16-byte aligned, which is also the riscv64 requirement for 4-byte alignment.
        let aligned = (self.used + 15) & !15;
        if aligned + code.len() > self.size {
            return None;
        }
        // SAFETY: `[aligned, aligned + len)` is inside our mapping and not yet handed out.
        unsafe {
            core::ptr::copy_nonoverlapping(code.as_ptr(), self.base.add(aligned), code.len());
        }
        self.used = aligned + code.len();
        Some(self.base as u64 + aligned as u64)
    }

    /// Overwrite `bytes` at `addr` (a link site or an inline-cache field) inside the cache, while
    /// other threads may be executing it. A write of 4 or 8 bytes at an address aligned to its
    /// size is one atomic store, so a thread fetching the site sees the old or the new bytes,
    /// never a mix; backends place every patchable field so (see [`crate::isa::Backend`]). Other
    /// writes are plain copies, allowed only for code no thread can reach yet.
    pub fn patch(&mut self, addr: u64, bytes: &[u8]) {
        assert!(self.contains(addr) && self.contains(addr + bytes.len() as u64 - 1));
        // SAFETY: the range is inside our writable mapping (checked above), and aligned for the
        // atomic views used.
        unsafe {
            match bytes.len() {
                4 if addr.is_multiple_of(4) => {
                    let v = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                    (*(addr as *const core::sync::atomic::AtomicU32)).store(v, core::sync::atomic::Ordering::Release);
                }
                8 if addr.is_multiple_of(8) => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(bytes);
                    (*(addr as *const core::sync::atomic::AtomicU64)).store(u64::from_le_bytes(w), core::sync::atomic::Ordering::Release);
                }
                _ => core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()),
            }
        }
    }

    /// Forget every block; the memory is reused from the start.
    pub fn reset(&mut self) {
        self.used = 0;
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping the region we mapped; no block in it can run after the cache is gone.
        unsafe { libc::munmap(self.base.cast(), self.size) };
    }
}

/// A translated block as the cache knows it.
#[derive(Clone, Debug)]
pub struct BlockInfo {
    /// Host code address.
    pub host: u64,
    /// Guest bytes `[start, end)` it was translated from.
    pub guest_end: u64,
    /// Link sites inside this block: (site address, guest target, original bytes to unlink).
    pub out_links: Vec<(u64, u64, Vec<u8>)>,
    /// Link sites elsewhere that were patched to jump here.
    pub in_links: Vec<u64>,
    /// The guest can write the code (it is watched for self-modification): reach it only through
    /// the lookup table, never a direct link.
    pub volatile: bool,
}

/// The map from guest code to host code, with links and page index.
#[derive(Debug)]
pub struct BlockMap {
    /// Translated blocks by guest start address.
    pub blocks: HashMap<u64, BlockInfo>,
    /// Guest page → starts of blocks whose code touches it.
    pub pages: HashMap<u64, Vec<u64>>,
    /// Link site → guest start of the block that contains it.
    pub sites: HashMap<u64, u64>,
    /// The indirect-branch table (boxed so its address is stable).
    pub lookup: Box<[LookupEntry]>,
}

impl Default for BlockMap {
    fn default() -> Self {
        BlockMap {
            blocks: HashMap::new(),
            pages: HashMap::new(),
            sites: HashMap::new(),
            lookup: vec![LookupEntry { guest: EMPTY, host: 0 }; LOOKUP_ENTRIES].into_boxed_slice(),
        }
    }
}

impl BlockMap {
    /// Index mask of the lookup table.
    pub const MASK: u64 = LOOKUP_ENTRIES as u64 - 1;

    /// Record a new block and publish it in the lookup table.
    pub fn insert(&mut self, guest: u64, info: BlockInfo) {
        let first = guest / PAGE_SIZE;
        let last = (info.guest_end.max(guest + 1) - 1) / PAGE_SIZE;
        for page in first..=last {
            self.pages.entry(page).or_default().push(guest);
        }
        self.publish(guest, info.host);
        for l in &info.out_links {
            self.sites.insert(l.0, guest);
        }
        self.blocks.insert(guest, info);
    }

    /// The recorded link site at `site`: (owner block, index in its `out_links`).
    pub fn site(&self, site: u64) -> Option<(u64, usize)> {
        let owner = *self.sites.get(&site)?;
        let i = self.blocks.get(&owner)?.out_links.iter().position(|l| l.0 == site)?;
        Some((owner, i))
    }

    /// Host code for `guest`, if translated.
    pub fn get(&self, guest: u64) -> Option<u64> {
        self.blocks.get(&guest).map(|b| b.host)
    }

    /// Publish `guest` in the lookup table again (after a collision evicted it).
    pub fn refresh_lookup(&mut self, guest: u64, host: u64) {
        self.publish(guest, host);
    }

    /// The two words of slot `i` as atomics: generated code on other threads reads the table
    /// while the dispatcher writes it.
    fn slot_words(&self, i: usize) -> (&AtomicU64, &AtomicU64) {
        let e = &self.lookup[i];
        // SAFETY: `LookupEntry` is two naturally aligned u64s; every write to the table goes
        // through these atomic views (or `SmcState`'s), so viewing them as atomics is sound.
        unsafe {
            (
                &*core::ptr::addr_of!(e.guest).cast::<AtomicU64>(),
                &*core::ptr::addr_of!(e.host).cast::<AtomicU64>(),
            )
        }
    }

    /// Write `{guest, host}` into its slot so that a reader on another thread that finds tag
    /// `guest` finds this `host`: the tag is first made empty, then the host written, then the
    /// tag, with release ordering between them. A reader must load tag, host, tag again, in
    /// order, and accept the host only if both tags are its target (as generated code does: see
    /// the backends' table probes): checking the tag only before the host load could pair an old
    /// tag with the host of a guest that replaced it meanwhile (a collision in this slot).
    fn publish(&self, guest: u64, host: u64) {
        let (g, h) = self.slot_words((guest & Self::MASK) as usize);
        if g.load(Ordering::Relaxed) == guest && h.load(Ordering::Relaxed) == host {
            return;
        }
        g.store(EMPTY, Ordering::Release);
        h.store(host, Ordering::Release);
        g.store(guest, Ordering::Release);
    }

    /// Empty slot `i` if it holds `guest`.
    fn unpublish(&self, guest: u64) {
        let (g, _) = self.slot_words((guest & Self::MASK) as usize);
        let _ = g.compare_exchange(guest, EMPTY, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.blocks.clear();
        self.pages.clear();
        self.sites.clear();
        for i in 0..self.lookup.len() {
            self.slot_words(i).0.store(EMPTY, Ordering::Release);
        }
    }

    /// The original bytes of every recorded link site, to put back before forgetting every block
    /// while other threads may still run them (see `invalidate`).
    pub fn unlink_all(&self) -> Vec<(u64, Vec<u8>)> {
        self.blocks.values().flat_map(|b| b.out_links.iter().map(|l| (l.0, l.2.clone()))).collect()
    }

    /// Remove every block whose guest code overlaps `[start, end)`. Returns the link sites (address,
    /// original bytes) that must be restored so nothing jumps into the removed code any more.
    pub fn invalidate(&mut self, start: u64, end: u64) -> Vec<(u64, Vec<u8>)> {
        let mut victims = Vec::new();
        if end > start {
            for page in start / PAGE_SIZE..=(end - 1) / PAGE_SIZE {
                if let Some(list) = self.pages.get(&page) {
                    for &g in list {
                        if let Some(b) = self.blocks.get(&g) {
                            if g < end && b.guest_end > start && !victims.contains(&g) {
                                victims.push(g);
                            }
                        }
                    }
                }
            }
        }
        let mut restore = Vec::new();
        for g in victims {
            let Some(info) = self.blocks.remove(&g) else { continue };
            self.unpublish(g);
            for page in g / PAGE_SIZE..=(info.guest_end.max(g + 1) - 1) / PAGE_SIZE {
                if let Some(list) = self.pages.get_mut(&page) {
                    list.retain(|&x| x != g);
                }
            }
            // Sites in other blocks that jump into the victim go back to their exit stubs.
            for site in info.in_links {
                let owner = self.sites.get(&site).and_then(|o| self.blocks.get(o));
                if let Some(l) = owner.and_then(|b| b.out_links.iter().find(|l| l.0 == site)) {
                    restore.push((site, l.2.clone()));
                }
            }
            // The victim's own out-links go back to their exit stubs too, so a thread still
            // inside the victim (another guest thread) leaves at its end instead of running on
            // through linked stale code; then they vanish from their targets' lists.
            for (site, target, orig) in &info.out_links {
                restore.push((*site, orig.clone()));
                self.sites.remove(site);
                if let Some(t) = self.blocks.get_mut(target) {
                    t.in_links.retain(|s| s != site);
                }
            }
        }
        restore
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidate_removes_overlapping_blocks_and_unlinks() {
        let mut m = BlockMap::default();
        m.insert(0x1000, BlockInfo { host: 0xa000, guest_end: 0x1010, out_links: vec![(0xa008, 0x2000, vec![1, 2])], in_links: vec![], volatile: false });
        m.insert(0x2000, BlockInfo { host: 0xb000, guest_end: 0x2010, out_links: vec![], in_links: vec![0xa008], volatile: false });
        let restore = m.invalidate(0x2004, 0x2005);
        assert_eq!(restore, vec![(0xa008, vec![1, 2])]);
        assert!(m.get(0x2000).is_none());
        assert_eq!(m.get(0x1000), Some(0xa000));
        assert_eq!(m.lookup[(0x2000 & BlockMap::MASK) as usize].guest, EMPTY);
        let restore = m.invalidate(0x1000, 0x1001);
        assert_eq!(restore, vec![(0xa008, vec![1, 2])], "a victim's own exits are unlinked too");
    }

    #[test]
    fn code_memory_places_blocks_aligned() {
        let mut c = CodeMemory::new(1 << 16).expect("mmap");
        let a = c.push(&[1, 2, 3]).expect("room");
        let b = c.push(&[4]).expect("room");
        assert_eq!(a % 16, 0);
        assert_eq!(b, a + 16);
        assert!(c.push(&vec![0; 1 << 17]).is_none());
    }
}
