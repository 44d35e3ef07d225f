//! One variable for both sides. A program built without `-fPIC` reaches a library's variable
//! (`stdout`, `environ`, `optind`, `optarg`, `program_invocation_name`...) at a fixed address of
//! its own, filled by a COPY relocation; the library must then use that copy too, which a native
//! dynamic linker achieves by binding the library's own GOT entry for the variable to the copy
//! (gABI: COPY relocations, symbol interposition). Here the native library was linked by the
//! host's `ld.so` to its own variable, so [`interpose`] rebinds it: it reads the host library's
//! dynamic relocations (its file, with goblin), finds every absolute or GOT relocation against the
//! variable's name and writes the copy's address into those slots.

use std::collections::HashMap;
use std::path::PathBuf;

use goblin::elf::Elf;

/// Relocation types that hold a data symbol's address: x86_64 `R_X86_64_64` (1) and
/// `R_X86_64_GLOB_DAT` (6); riscv64 `R_RISCV_64` (2).
#[cfg(target_arch = "x86_64")]
const ADDRESS_RELOCS: [u32; 2] = [1, 6];
#[cfg(target_arch = "riscv64")]
const ADDRESS_RELOCS: [u32; 2] = [2, 2];

/// The slots (run-time addresses) of one host library that hold the address of each named
/// variable.
#[derive(Debug, Default)]
pub struct Slots(HashMap<String, Vec<u64>>);

impl Slots {
    /// Read the host library that defines the symbol at `addr` (an address inside it).
    pub fn of_library_at(addr: u64) -> Result<(PathBuf, Slots), String> {
        // SAFETY: dladdr only reads the loader's tables.
        let (path, base) = unsafe {
            let mut info: libc::Dl_info = core::mem::zeroed();
            if libc::dladdr(addr as *const _, &mut info) == 0 || info.dli_fname.is_null() {
                return Err(format!("no host library holds {addr:#x}"));
            }
            (PathBuf::from(std::ffi::CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned()), info.dli_fbase as u64)
        };
        let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: a read-only private map of a library file, only read here.
        let bytes = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("{}: {e}", path.display()))?;
        let elf = Elf::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut slots: HashMap<String, Vec<u64>> = HashMap::new();
        for r in elf.dynrelas.iter() {
            if !ADDRESS_RELOCS.contains(&r.r_type) || r.r_sym == 0 {
                continue;
            }
            let Some(name) = elf.dynsyms.get(r.r_sym).and_then(|s| elf.dynstrtab.get_at(s.st_name)) else { continue };
            slots.entry(name.to_string()).or_default().push(base.wrapping_add(r.r_offset));
        }
        Ok((path, Slots(slots)))
    }
}

/// Make the host library holding `host_var` (the native variable's own address) use `copy`
/// instead wherever it takes the address of `name`. Returns how many slots were rewritten.
pub fn interpose(name: &str, host_var: u64, copy: u64, cache: &mut HashMap<PathBuf, Slots>) -> Result<usize, String> {
    let (path, slots) = Slots::of_library_at(host_var)?;
    let slots = cache.entry(path).or_insert(slots);
    let Some(list) = slots.0.get(name) else { return Ok(0) };
    for &at in list {
        let page = at & !0xfff;
        // SAFETY: `at` is a relocated pointer slot of a loaded host library (its GOT or data).
        // The page is made writable for the store and left so: which protection it had (RELRO
        // read-only, or plain data) is not known here, and read-only could break plain data.
        unsafe {
            libc::mprotect(page as *mut _, 0x2000, libc::PROT_READ | libc::PROT_WRITE);
            (at as *mut u64).write_unaligned(copy);
        }
    }
    log::debug!(target: "ldnc::bind", "{name}: {} native slot(s) now point at the program's copy {copy:#x}", list.len());
    Ok(list.len())
}
