//! Memory mapping. Nothing here passes through blindly, for two reasons: guest protections are
//! recorded and PROT_EXEC is stripped on the host (guest code is only read by the translator,
//! whose translations of a changed range must be dropped), and a guest MAP_FIXED must never land
//! on ld-nc's own memory (heap, code cache), which shares the address space.

use super::numbers::x86;
use super::{err, Handler, Sys, SysRet};
use crate::elf::{page_up, PAGE};
use crate::mem::{host_mmap, host_prot, PROT_READ, PROT_WRITE};

/// Pass-through: hints and queries that cannot break ld-nc or the record.
pub const PASS: &[(u32, u8)] = &[
    (x86::MADVISE, 3),
    (x86::MINCORE, 3),
    (x86::MSYNC, 3),
    (x86::MLOCK, 2),
    (x86::MLOCK2, 3),
    (x86::MUNLOCK, 2),
    (x86::MLOCKALL, 1),
    (x86::MUNLOCKALL, 0),
    (x86::MEMBARRIER, 3),
];

/// Handlers: every call that changes mappings.
pub const CUSTOM: &[(u32, Handler)] = &[
    (x86::MMAP, mmap),
    (x86::MUNMAP, munmap),
    (x86::MPROTECT, mprotect),
    (x86::MREMAP, mremap),
    (x86::BRK, brk),
];

/// Round a guest-supplied end address up to a page, `None` if that overflows.
fn page_up_checked(x: u64) -> Option<u64> {
    x.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1))
}

const MAP_FIXED: u64 = 0x10;
const MAP_32BIT: u64 = 0x40;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
const MREMAP_MAYMOVE: u64 = 1;
const MREMAP_FIXED: u64 = 2;

/// Make sure `[start, end)` is either guest memory or free, so that a MAP_FIXED over it only
/// replaces guest memory: free gaps are claimed with MAP_FIXED_NOREPLACE probes (which the
/// caller's MAP_FIXED then replaces). On conflict the probes are undone and ENOMEM returned.
fn claim_for_fixed(sys: &Sys<'_>, start: u64, end: u64) -> Result<(), SysRet> {
    let gaps = sys.proc.mem.borrow().gaps(start, end);
    let mut done: Vec<(u64, u64)> = Vec::new();
    for (a, b) in gaps {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        match unsafe { host_mmap(a, b - a, libc::PROT_NONE, flags, -1, 0) } {
            Ok(p) if p == a => done.push((a, b)),
            other => {
                if let Ok(p) = other {
                    // An old kernel treated it as a hint.
                    // SAFETY: just mapped by us.
                    unsafe { libc::munmap(p as *mut _, (b - a) as usize) };
                }
                for (a, b) in done {
                    // SAFETY: probes made above.
                    unsafe { libc::munmap(a as *mut _, (b - a) as usize) };
                }
                log::warn!(
                    target: "ldnc::syscalls",
                    "guest MAP_FIXED at [{start:#x}, {end:#x}) would replace ld-nc's own memory: ENOMEM"
                );
                return Err(err(libc::ENOMEM));
            }
        }
    }
    Ok(())
}

fn mmap(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let (addr, len, prot, mut flags, fd, off) = (a[0], a[1], a[2] as u32, a[3], a[4] as i32, a[5]);
    if len == 0 || off % PAGE != 0 {
        return err(libc::EINVAL);
    }
    let Some(end) = addr.checked_add(len).filter(|&e| e <= u64::MAX - PAGE) else {
        return err(libc::ENOMEM);
    };
    let fixed = flags & MAP_FIXED != 0 && flags & MAP_FIXED_NOREPLACE == 0;
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 && addr % PAGE != 0 {
        return err(libc::EINVAL);
    }
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 && addr < PAGE {
        // Page 0 stays unmapped even when ld-nc runs as root (mmap_min_addr does not apply to
        // CAP_SYS_RAWIO): null must keep faulting for the guest and for ld-nc.
        return err(libc::EPERM);
    }
    let mut hint = addr;
    let low32 = flags & MAP_32BIT != 0 && !fixed;
    if flags & MAP_32BIT != 0 {
        // MAP_32BIT exists only on x86_64; a low hint gives the same result elsewhere.
        flags &= !MAP_32BIT;
        if hint == 0 {
            hint = 0x4000_0000;
        }
    }
    if fixed {
        if let Err(r) = claim_for_fixed(sys, addr, page_up(end)) {
            return r;
        }
    }
    // SAFETY: a MAP_FIXED range was checked to be guest memory (or claimed from free space).
    let r = unsafe { host_mmap(hint, len, host_prot(prot), flags as i32, fd, off) };
    let p = match r {
        Ok(p) => p,
        Err(e) => return err(e),
    };
    let pend = page_up(p + len);
    if low32 && pend > 0x1_0000_0000 {
        // SAFETY: just mapped, not yet recorded or handed to the guest.
        unsafe { libc::munmap(p as *mut _, (pend - p) as usize) };
        return err(libc::ENOMEM);
    }
    let had_exec = sys.proc.mem.borrow().any_exec(p, pend);
    crate::smc::unwatch(p, pend);
    sys.proc.mem.borrow_mut().insert(p, pend, prot & 7);
    if had_exec {
        sys.code.invalidate(p, pend);
    }
    SysRet::Ret(p as i64)
}

fn munmap(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let (addr, len) = (a[0], a[1]);
    if addr % PAGE != 0 || len == 0 {
        return err(libc::EINVAL);
    }
    let Some(end) = addr.checked_add(len).and_then(page_up_checked) else { return err(libc::EINVAL) };
    // Only guest pieces are unmapped: the guest has no business with ld-nc's memory, and an
    // unmapped range is not an error for munmap.
    // The record stays locked from the host call to its update: a translation on another thread
    // never reads code the kernel has just taken away.
    let mut mem = sys.proc.mem.borrow_mut();
    let pieces = mem.pieces(addr, end);
    for &(s, e, _) in &pieces {
        // SAFETY: recorded guest memory.
        if unsafe { libc::munmap(s as *mut _, (e - s) as usize) } != 0 {
            return err(crate::mem::errno());
        }
    }
    let had_exec = mem.any_exec(addr, end);
    crate::smc::unwatch(addr, end);
    mem.remove(addr, end);
    drop(mem);
    if had_exec {
        sys.code.invalidate(addr, end);
    }
    SysRet::Ret(0)
}

/// mprotect's PROT_GROWSDOWN/PROT_GROWSUP.
const PROT_GROWS: u64 = 0x0100_0000 | 0x0200_0000;

fn mprotect(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let (addr, len, prot) = (a[0], a[1], a[2]);
    if addr % PAGE != 0 || prot & !(7 | PROT_GROWS) != 0 {
        return err(libc::EINVAL);
    }
    let Some(end) = addr.checked_add(len).and_then(page_up_checked) else { return err(libc::ENOMEM) };
    if len == 0 {
        return SysRet::Ret(0);
    }
    if !sys.proc.mem.borrow().gaps(addr, end).is_empty() {
        return err(libc::ENOMEM);
    }
    let guest = (prot & 7) as u32;
    // Locked from the host call to the record update, as in munmap.
    let mut mem = sys.proc.mem.borrow_mut();
    crate::smc::unwatch(addr, end);
    // SAFETY: the whole range is recorded guest memory.
    if unsafe { libc::mprotect(addr as *mut _, (end - addr) as usize, host_prot(guest)) } != 0 {
        return err(crate::mem::errno());
    }
    let had_exec = mem.any_exec(addr, end);
    mem.protect(addr, end, guest);
    drop(mem);
    if had_exec {
        sys.code.invalidate(addr, end);
    }
    SysRet::Ret(0)
}

fn mremap(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let (old, old_len, new_len, flags, new_addr) = (a[0], a[1], a[2], a[3], a[4]);
    if old % PAGE != 0 || new_len == 0 || flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | 4) != 0 {
        return err(libc::EINVAL);
    }
    let Some(old_end) = old.checked_add(old_len.max(1)).and_then(page_up_checked) else { return err(libc::EFAULT) };
    let pieces = sys.proc.mem.borrow().pieces(old, old_end);
    if pieces.is_empty() || !sys.proc.mem.borrow().gaps(old, old_end).is_empty() {
        return err(libc::EFAULT);
    }
    let prot = pieces[0].2;
    if flags & MREMAP_FIXED != 0 {
        let Some(ne) = new_addr.checked_add(new_len).and_then(page_up_checked) else { return err(libc::EINVAL) };
        if let Err(r) = claim_for_fixed(sys, new_addr, ne) {
            return r;
        }
    }
    // Locked from the host call to the record update, as in munmap.
    let mut m = sys.proc.mem.borrow_mut();
    // SAFETY: the old range is guest memory; a fixed destination was claimed above; without
    // MREMAP_FIXED the kernel moves only into free space.
    let p = unsafe {
        libc::mremap(old as *mut _, old_len as usize, new_len as usize, flags as i32, new_addr as *mut libc::c_void)
    };
    if p == libc::MAP_FAILED {
        return err(crate::mem::errno());
    }
    let p = p as u64;
    let had_exec = m.any_exec(old, old_end);
    crate::smc::unwatch(old, old_end);
    crate::smc::unwatch(p, page_up(p + new_len));
    if p != old || flags & 4 == 0 {
        // Moved (or shrunk in place): the old range is gone unless MREMAP_DONTUNMAP.
        m.remove(old, old_end);
    }
    m.insert(p, page_up(p + new_len), prot);
    drop(m);
    if had_exec {
        sys.code.invalidate(old, old_end);
        sys.code.invalidate(p, page_up(p + new_len));
    }
    SysRet::Ret(p as i64)
}

fn brk(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // Emulated: ld-nc's own heap owns the host break; the guest's lives after its image.
    let want = a[0];
    let b = sys.proc.brk;
    if want < b.start || want > b.start + (1 << 40) {
        return SysRet::Ret(b.cur as i64);
    }
    let want_mapped = page_up(want);
    if want_mapped > b.mapped {
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE;
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        match unsafe { host_mmap(b.mapped, want_mapped - b.mapped, rw, flags, -1, 0) } {
            Ok(p) if p == b.mapped => {}
            Ok(p) => {
                // SAFETY: just mapped by us at the wrong place (old kernel): undo.
                unsafe { libc::munmap(p as *mut _, (want_mapped - b.mapped) as usize) };
                return SysRet::Ret(b.cur as i64);
            }
            Err(_) => return SysRet::Ret(b.cur as i64),
        }
        sys.proc.mem.borrow_mut().insert(b.mapped, want_mapped, PROT_READ | PROT_WRITE);
        sys.proc.brk.mapped = want_mapped;
    } else if want_mapped < b.mapped {
        // SAFETY: pages of the guest heap above the new break.
        unsafe { libc::munmap(want_mapped as *mut _, (b.mapped - want_mapped) as usize) };
        crate::smc::unwatch(want_mapped, b.mapped);
        sys.proc.mem.borrow_mut().remove(want_mapped, b.mapped);
        sys.proc.brk.mapped = want_mapped;
    }
    sys.proc.brk.cur = want;
    SysRet::Ret(want as i64)
}
