//! Faults in translated code mapped back to guest addresses. Every block records, per guest
//! instruction, where its host code starts; a host signal handler asks [`FaultMap::lookup`] which
//! guest instruction a faulting host PC belongs to, and the backend rebuilds the guest state at that
//! instruction so the runtime can deliver the signal to the guest as the x86 kernel would.
//!
//! The map is read from signal handlers, so it is built for that: blocks are appended in
//! increasing host address order (the code cache is a bump allocator) into fixed-capacity arrays
//! published with release stores, found by binary search, and never reallocated.

use core::sync::atomic::{AtomicUsize, Ordering};

/// Where one guest instruction's host code starts within its block, and how to repair the guest
/// state if the host faults from there on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct PcEntry {
    /// Offset of the instruction's host code from the block's start.
    pub host_off: u32,
    /// Guest register (x86 encoding) whose guest value is saved in `ctx` slot `fixup_slot` while
    /// this host code runs, or [`NO_FIXUP`].
    pub fixup_reg: u8,
    /// Padding.
    pub _pad: u8,
    /// Offset in the thread context of the saved value for `fixup_reg`.
    pub fixup_slot: u16,
    /// The guest instruction's address.
    pub guest_pc: u64,
}

/// `fixup_reg` of an entry that needs no repair.
pub const NO_FIXUP: u8 = 0xff;

#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct BlockRec {
    host_start: u64,
    host_end: u64,
    first: u32,
    count: u32,
}

const MAX_BLOCKS: usize = 1 << 20;
const MAX_ENTRIES: usize = 1 << 23;

/// The answer for a faulting host PC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestFault {
    /// Address of the guest instruction that was running.
    pub guest_pc: u64,
    /// Repair to apply to the host registers, see [`PcEntry::fixup_reg`].
    pub fixup_reg: u8,
    /// See [`PcEntry::fixup_slot`].
    pub fixup_slot: u16,
}

struct Region<T> {
    ptr: *mut T,
    cap: usize,
}

impl<T> Region<T> {
    fn new(cap: usize) -> Option<Self> {
        let bytes = cap * core::mem::size_of::<T>();
        // SAFETY: a fresh anonymous mapping; NORESERVE so only touched pages cost memory.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(Region { ptr: p.cast(), cap })
    }
}

impl<T> Drop for Region<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.cap * core::mem::size_of::<T>()) };
    }
}

/// Host-PC → guest-PC map of the whole code cache.
pub struct FaultMap {
    blocks: Region<BlockRec>,
    entries: Region<PcEntry>,
    nblocks: AtomicUsize,
    nentries: AtomicUsize,
}

// SAFETY: the raw regions are only written by the dispatcher (one writer, under `&mut`) and read
// by signal handlers through published lengths.
unsafe impl Send for FaultMap {}
// SAFETY: as above.
unsafe impl Sync for FaultMap {}

impl std::fmt::Debug for FaultMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultMap").field("blocks", &self.nblocks.load(Ordering::Relaxed)).finish()
    }
}

impl FaultMap {
    /// An empty map, or `None` if its memory cannot be reserved.
    pub fn new() -> Option<FaultMap> {
        Some(FaultMap {
            blocks: Region::new(MAX_BLOCKS)?,
            entries: Region::new(MAX_ENTRIES)?,
            nblocks: AtomicUsize::new(0),
            nentries: AtomicUsize::new(0),
        })
    }

    /// Whether a block with `n` entries still fits.
    pub(crate) fn has_room(&self, n: usize) -> bool {
        self.nblocks.load(Ordering::Relaxed) < MAX_BLOCKS
            && self.nentries.load(Ordering::Relaxed) + n <= MAX_ENTRIES
    }

    /// Record a block at `[host_start, host_end)`; blocks must come in increasing address order.
    pub(crate) fn push(&self, host_start: u64, host_end: u64, entries: &[PcEntry]) {
        let nb = self.nblocks.load(Ordering::Relaxed);
        let ne = self.nentries.load(Ordering::Relaxed);
        if nb >= MAX_BLOCKS || ne + entries.len() > MAX_ENTRIES {
            return;
        }
        // SAFETY: indices are below capacity (checked above); this is the only writer, and
        // readers only look below the published counts, which are raised after the writes.
        unsafe {
            core::ptr::copy_nonoverlapping(entries.as_ptr(), self.entries.ptr.add(ne), entries.len());
            self.blocks.ptr.add(nb).write(BlockRec {
                host_start,
                host_end,
                first: ne as u32,
                count: entries.len() as u32,
            });
        }
        self.nentries.store(ne + entries.len(), Ordering::Release);
        self.nblocks.store(nb + 1, Ordering::Release);
    }

    /// Forget everything (the code cache was flushed).
    pub(crate) fn clear(&self) {
        self.nblocks.store(0, Ordering::Release);
        self.nentries.store(0, Ordering::Release);
    }

    /// The guest instruction whose host code starts exactly at `pc`, needing no repair: a point
    /// where the host registers hold the exact guest state before that instruction.
    /// Async-signal-safe.
    pub fn lookup_exact(&self, pc: u64) -> Option<GuestFault> {
        self.find(pc).filter(|(e, exact)| *exact && e.fixup_reg == NO_FIXUP).map(|(e, _)| e)
    }

    /// The guest instruction running at host address `pc`, if `pc` is in translated code.
    /// Async-signal-safe.
    pub fn lookup(&self, pc: u64) -> Option<GuestFault> {
        self.find(pc).map(|(e, _)| e)
    }

    fn find(&self, pc: u64) -> Option<(GuestFault, bool)> {
        let nb = self.nblocks.load(Ordering::Acquire);
        // SAFETY: the first `nb` records are initialised and never change until `clear`.
        let blocks = unsafe { core::slice::from_raw_parts(self.blocks.ptr, nb) };
        let i = blocks.partition_point(|b| b.host_start <= pc).checked_sub(1)?;
        let b = blocks[i];
        if pc >= b.host_end || b.count == 0 {
            return None;
        }
        // SAFETY: the block's entries were written before it was published.
        let entries = unsafe { core::slice::from_raw_parts(self.entries.ptr.add(b.first as usize), b.count as usize) };
        let off = (pc - b.host_start) as u32;
        let j = entries.partition_point(|e| e.host_off <= off).checked_sub(1)?;
        let e = entries[j];
        // Several entries may share an offset (an instruction that emitted no code); only the
        // last one is where execution continues, so "exact" means the last entry at `off`.
        let exact = e.host_off == off;
        Some((GuestFault { guest_pc: e.guest_pc, fixup_reg: e.fixup_reg, fixup_slot: e.fixup_slot }, exact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(host_off: u32, guest_pc: u64) -> PcEntry {
        PcEntry { host_off, fixup_reg: NO_FIXUP, _pad: 0, fixup_slot: 0, guest_pc }
    }

    #[test]
    fn finds_the_instruction_covering_a_host_pc() {
        let m = FaultMap::new().expect("map");
        m.push(0x1000, 0x1040, &[e(0, 0x40_0000), e(0x10, 0x40_0003)]);
        m.push(0x1040, 0x1080, &[e(0, 0x50_0000)]);
        assert_eq!(m.lookup(0x1000).map(|f| f.guest_pc), Some(0x40_0000));
        assert_eq!(m.lookup(0x100f).map(|f| f.guest_pc), Some(0x40_0000));
        assert_eq!(m.lookup(0x1010).map(|f| f.guest_pc), Some(0x40_0003));
        assert_eq!(m.lookup(0x1050).map(|f| f.guest_pc), Some(0x50_0000));
        assert_eq!(m.lookup(0xfff), None);
        assert_eq!(m.lookup(0x1080), None);
        assert_eq!(m.lookup_exact(0x1010).map(|f| f.guest_pc), Some(0x40_0003));
        assert_eq!(m.lookup_exact(0x1011), None, "inside an instruction's host code");
        m.clear();
        assert_eq!(m.lookup(0x1000), None);
    }
}
