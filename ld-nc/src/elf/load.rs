//! Mapping a checked [`Image`] into this address space at its guest addresses: one reservation for
//! the whole span (at the link address for ET_EXEC, near a hint for ET_DYN: the kernel's
//! `ELF_ET_DYN_BASE` for a program, anywhere free for an interpreter), file
//! bytes copied in, bss left zero, then each page given its segment's protection without
//! PROT_EXEC, and the guest protections recorded in the [`GuestMap`].

use super::{page_up, ElfError, Image, PAGE};
use crate::mem::{host_mmap, host_prot, GuestMap};

/// Where a static-pie image is placed if that space is free (the x86_64 kernel's
/// `ELF_ET_DYN_BASE`); otherwise the kernel chooses.
pub const PIE_BASE_HINT: u64 = 0x5555_5555_4000;

/// A mapped program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Added to every link-time address (0 for ET_EXEC).
    pub bias: u64,
    /// Entry point.
    pub entry: u64,
    /// Lowest mapped address.
    pub lo: u64,
    /// End of the mapping (page-aligned), where brk starts.
    pub hi: u64,
    /// Run-time address of the program headers, if mapped.
    pub phdr: Option<u64>,
}

/// Map `image` (whose file bytes are `file`) and record it in `map`; an ET_DYN program goes at
/// [`PIE_BASE_HINT`] if that space is free.
pub fn map_image(image: &Image, file: &[u8], map: &mut GuestMap) -> Result<Loaded, ElfError> {
    map_image_near(image, file, map, PIE_BASE_HINT)
}

/// [`map_image`] with the address an ET_DYN image should go at if that space is free (0: where
/// the kernel likes, top-down below the stack, as it places a dynamic program's interpreter).
pub fn map_image_near(image: &Image, file: &[u8], map: &mut GuestMap, hint: u64) -> Result<Loaded, ElfError> {
    let lo = image.lo();
    let span = image.hi() - lo;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let base = if image.pie {
        // SAFETY: without MAP_FIXED the kernel only uses free address space.
        unsafe { host_mmap(hint, span, rw, anon, -1, 0) }
    } else {
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        unsafe { host_mmap(lo, span, rw, anon | libc::MAP_FIXED_NOREPLACE, -1, 0) }
    };
    let base = base.map_err(|e| {
        ElfError::Io(format!(
            "cannot map {span:#x} bytes at {lo:#x}: {}",
            std::io::Error::from_raw_os_error(e)
        ))
    })?;
    if !image.pie && base != lo {
        // An old kernel without MAP_FIXED_NOREPLACE treats it as a hint.
        // SAFETY: `base` was just mapped by us.
        unsafe { libc::munmap(base as *mut _, span as usize) };
        return Err(ElfError::Io(format!("address range at {lo:#x} is in use")));
    }
    let bias = base - lo;
    for s in &image.segments {
        // Bounds were checked by `parse` against the file; `filesz <= memsz` keeps it inside the
        // reservation.
        let src = &file[s.offset as usize..(s.offset + s.filesz) as usize];
        // SAFETY: `[vaddr + bias, + filesz)` lies inside the RW reservation made above.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), (s.vaddr + bias) as *mut u8, src.len())
        };
    }
    // Page protections: the union of the segments sharing a page; pages no segment touches in the
    // middle of the span stay reserved (PROT_NONE) and owned by the guest.
    let mut pages: Vec<(u64, u64, u32)> = Vec::new();
    for s in &image.segments {
        let a = (s.vaddr & !(PAGE - 1)) + bias;
        let b = page_up(s.vaddr + s.memsz) + bias;
        match pages.last_mut() {
            Some(last) if last.1 > a => {
                // Shared page at the boundary.
                let shared = (a, last.1, last.2 | s.prot);
                last.1 = a;
                if last.0 == last.1 {
                    pages.pop();
                }
                let after = shared.1;
                pages.push(shared);
                if after < b {
                    pages.push((after, b, s.prot));
                }
            }
            Some(last) => {
                if last.1 < a {
                    let gap = (last.1, a, 0);
                    pages.push(gap);
                }
                pages.push((a, b, s.prot));
            }
            None => pages.push((a, b, s.prot)),
        }
    }
    for &(a, b, p) in &pages {
        // SAFETY: inside our reservation.
        let r = unsafe { libc::mprotect(a as *mut _, (b - a) as usize, host_prot(p)) };
        if r != 0 {
            return Err(ElfError::Io(format!("mprotect {a:#x}: {}", std::io::Error::last_os_error())));
        }
        map.insert(a, b, p);
    }
    Ok(Loaded {
        bias,
        entry: image.entry + bias,
        lo: base,
        hi: base + span,
        phdr: image.phdr_vaddr.map(|v| v + bias),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{parse, tests::tiny_exec};
    use crate::mem::{PROT_EXEC, PROT_READ, PROT_WRITE};

    #[test]
    fn pie_image_maps_with_bias_and_zero_bss() {
        let mut b = tiny_exec();
        b[16] = 3; // ET_DYN
        // Put a data byte in the RW segment's file part, and a non-zero byte after its filesz to
        // check the bss is not taken from the file.
        b[0x800] = 0xab;
        b[0x900] = 0xcd;
        let img = parse(&b).expect("valid");
        let mut map = GuestMap::new();
        let l = map_image(&img, &b, &mut map).expect("maps");
        assert_eq!(l.entry, 0x400100 + l.bias);
        assert_eq!(l.lo % PAGE, 0);
        // SAFETY: mapped above.
        unsafe {
            assert_eq!(*((0x401800 + l.bias) as *const u8), 0xab);
            assert_eq!(*((0x401900 + l.bias) as *const u8), 0, "bss after filesz is zero");
            assert_eq!(*((0x400100 + l.bias) as *const u8), 0xf4);
        }
        let regions: Vec<_> = map.iter().collect();
        assert_eq!(
            regions,
            vec![
                (l.lo, l.lo + 0x1000, PROT_READ | PROT_EXEC),
                (l.lo + 0x1000, l.lo + 0x4000, PROT_READ | PROT_WRITE),
            ]
        );
        // SAFETY: the mapping is ours.
        unsafe { libc::munmap(l.lo as *mut _, (l.hi - l.lo) as usize) };
    }
}
