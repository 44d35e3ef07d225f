//! Fuzz the guest ELF reader: any input must give an `Image` or an `ElfError`, never a panic, and
//! an accepted image must satisfy the invariants the loader relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = ld_nc::elf::parse(data) {
        let mut prev_end = 0u64;
        for s in &img.segments {
            assert!(s.filesz <= s.memsz);
            assert!(s.offset + s.filesz <= data.len() as u64);
            assert!(s.vaddr >= prev_end, "segments ascending, not overlapping");
            assert!(s.vaddr + s.memsz <= ld_nc::elf::USER_TOP);
            prev_end = s.vaddr + s.memsz;
        }
        assert!(img.hi() - img.lo() <= ld_nc::elf::MAX_SPAN);
        if let Some(path) = &img.interp {
            assert!(!path.is_empty() && !path.contains(&0), "PT_INTERP is one non-empty C string");
        }
    }
});
