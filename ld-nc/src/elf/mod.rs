//! The ELF reader for guest programs: it checks an x86_64 executable completely before anything
//! is mapped — identity, type, every count and offset, segment sizes, alignment and overlap, the
//! PT_INTERP path — and reduces it to an [`Image`], the few facts the loader and the process setup
//! need. The same reader checks a dynamic program's interpreter ([`interp`]).
//!
//! Parsing is goblin's (header and program headers); every bound goblin would trust is checked
//! here first, so a malformed file gives one [`ElfError`] and never a panic.

pub mod dso;
pub mod interp;
pub mod linker;
pub mod load;

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{self as ph, ProgramHeader};
use std::fmt;
use std::path::{Path, PathBuf};

/// Size of an ELF64 header.
const SIZEOF_EHDR: usize = 64;
/// Size of an ELF64 program header.
const SIZEOF_PHDR: usize = 56;

/// Highest user-space address + 1 on x86_64 (4-level paging), as the kernel's `TASK_SIZE`.
pub const USER_TOP: u64 = 0x7fff_ffff_f000;

/// Page size of the guest ABI.
pub const PAGE: u64 = 4096;

/// Most program headers accepted (the kernel's limit is 64 KiB of headers: 1170 entries).
pub const MAX_PHNUM: usize = 1024;

/// Largest span of all PT_LOAD segments accepted (64 GiB).
pub const MAX_SPAN: u64 = 1 << 36;

/// What is wrong with a guest ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    /// It could not be read.
    Io(String),
    /// Shorter than an ELF header.
    Truncated,
    /// No `\x7fELF` magic.
    NotElf,
    /// `EI_CLASS` is not ELFCLASS64.
    NotElf64,
    /// `EI_DATA` is not little-endian.
    NotLittleEndian,
    /// `EI_VERSION` or `e_version` is not EV_CURRENT.
    BadVersion,
    /// `e_machine` is not EM_X86_64.
    WrongMachine(u16),
    /// `e_type` is neither ET_EXEC nor ET_DYN.
    WrongType(u16),
    /// `e_ehsize` or `e_phentsize` is not the ELF64 size.
    BadHeaderSize { field: &'static str, value: u16 },
    /// `e_phnum` is 0, PN_XNUM or above [`MAX_PHNUM`].
    BadPhnum(u16),
    /// The program header table lies outside the file.
    PhdrsOutsideFile { phoff: u64, end: u64, file_len: u64 },
    /// goblin refused the headers.
    Parse(String),
    /// PT_INTERP of program header `index` lies outside the file, is empty, or is not one
    /// NUL-terminated path.
    BadInterp { index: usize },
    /// More than one PT_INTERP.
    TwoInterps,
    /// No PT_LOAD segment.
    NoLoad,
    /// `p_filesz > p_memsz` in program header `index`.
    FileszExceedsMemsz { index: usize },
    /// File bytes of program header `index` lie outside the file.
    SegmentOutsideFile { index: usize },
    /// `p_align` is not a power of two, or `p_vaddr` and `p_offset` disagree modulo it.
    BadAlign { index: usize },
    /// The segment does not fit in the x86_64 user address space (or is too large).
    BadAddress { index: usize },
    /// PT_LOAD segments overlap or are not in ascending order.
    Overlap { first: usize, second: usize },
    /// The PT_LOAD segments together span more than [`MAX_SPAN`].
    TooLarge(u64),
    /// `e_entry` is not inside an executable PT_LOAD segment.
    EntryOutside(u64),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::Io(e) => write!(f, "cannot read: {e}"),
            ElfError::Truncated => write!(f, "truncated ELF header"),
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::NotElf64 => write!(f, "not a 64-bit ELF file (EI_CLASS)"),
            ElfError::NotLittleEndian => write!(f, "not a little-endian ELF file (EI_DATA)"),
            ElfError::BadVersion => write!(f, "unknown ELF version"),
            ElfError::WrongMachine(m) => write!(
                f,
                "wrong machine: e_machine {m} ({}), expected EM_X86_64",
                header::machine_to_str(*m)
            ),
            ElfError::WrongType(t) => {
                write!(f, "not an executable: e_type {t} ({})", header::et_to_str(*t))
            }
            ElfError::BadHeaderSize { field, value } => write!(f, "bad {field} {value}"),
            ElfError::BadPhnum(n) => write!(f, "bad e_phnum {n}"),
            ElfError::PhdrsOutsideFile { phoff, end, file_len } => write!(
                f,
                "program headers [{phoff:#x}, {end:#x}) lie outside the file ({file_len} bytes)"
            ),
            ElfError::Parse(e) => write!(f, "malformed ELF: {e}"),
            ElfError::BadInterp { index } => write!(
                f,
                "program header {index}: PT_INTERP lies outside the file, is empty or is not one \
                 NUL-terminated path"
            ),
            ElfError::TwoInterps => write!(f, "more than one PT_INTERP program header"),
            ElfError::NoLoad => write!(f, "no PT_LOAD segment"),
            ElfError::FileszExceedsMemsz { index } => {
                write!(f, "program header {index}: p_filesz is larger than p_memsz")
            }
            ElfError::SegmentOutsideFile { index } => {
                write!(f, "program header {index}: p_offset + p_filesz lies outside the file")
            }
            ElfError::BadAlign { index } => write!(
                f,
                "program header {index}: p_align is not a power of two or p_vaddr and p_offset \
                 are not congruent modulo it"
            ),
            ElfError::BadAddress { index } => write!(
                f,
                "program header {index}: p_vaddr + p_memsz lies outside the x86_64 user address \
                 space"
            ),
            ElfError::Overlap { first, second } => write!(
                f,
                "PT_LOAD program headers {first} and {second} overlap or are out of order"
            ),
            ElfError::TooLarge(span) => {
                write!(f, "PT_LOAD segments span {span:#x} bytes, more than {MAX_SPAN:#x}")
            }
            ElfError::EntryOutside(e) => {
                write!(f, "entry point {e:#x} is not in an executable PT_LOAD segment")
            }
        }
    }
}

impl std::error::Error for ElfError {}

/// An [`ElfError`] with the file it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// The problem.
    pub error: ElfError,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for LoadError {}

/// One PT_LOAD segment, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Link-time virtual address.
    pub vaddr: u64,
    /// Bytes in memory (`>= filesz`).
    pub memsz: u64,
    /// File offset of the first byte.
    pub offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// `PF_R`/`PF_W`/`PF_X` as `PROT_READ`/`PROT_WRITE`/`PROT_EXEC`.
    pub prot: u32,
}

/// What the loader needs from a checked x86_64 executable (or a dynamic program's interpreter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// ET_DYN (PIE, static-pie or a shared object such as ld.so): addresses are relative to a
    /// base the loader chooses.
    pub pie: bool,
    /// The PT_INTERP path without its NUL (the program is dynamically linked), checked to be
    /// non-empty.
    pub interp: Option<Vec<u8>>,
    /// `e_entry` (link-time).
    pub entry: u64,
    /// PT_LOAD segments in ascending address order.
    pub segments: Vec<Segment>,
    /// Link-time address of the program headers in memory, if some segment maps them.
    pub phdr_vaddr: Option<u64>,
    /// `e_phoff`.
    pub phoff: u64,
    /// `e_phnum`.
    pub phnum: u16,
    /// `e_phentsize`.
    pub phentsize: u16,
    /// The program header table's raw bytes (for AT_PHDR when no segment maps it).
    pub phdr_bytes: Vec<u8>,
    /// PT_GNU_STACK asks for an executable stack.
    pub exec_stack: bool,
}

impl Image {
    /// Lowest page-aligned link-time address of the PT_LOAD segments.
    pub fn lo(&self) -> u64 {
        self.segments.first().map_or(0, |s| s.vaddr & !(PAGE - 1))
    }

    /// End of the last PT_LOAD segment, page-aligned up.
    pub fn hi(&self) -> u64 {
        self.segments.last().map_or(0, |s| page_up(s.vaddr + s.memsz))
    }
}

/// Round up to a page boundary (inputs are bounded by [`USER_TOP`], so this cannot overflow).
pub fn page_up(x: u64) -> u64 {
    (x + PAGE - 1) & !(PAGE - 1)
}

fn prot_of(flags: u32) -> u32 {
    let mut p = 0;
    if flags & ph::PF_R != 0 {
        p |= libc::PROT_READ as u32;
    }
    if flags & ph::PF_W != 0 {
        p |= libc::PROT_WRITE as u32;
    }
    if flags & ph::PF_X != 0 {
        p |= libc::PROT_EXEC as u32;
    }
    p
}

/// Read and check the file at `path`.
pub fn read_file(path: &Path) -> Result<(Image, Vec<u8>), LoadError> {
    let err = |error| LoadError { path: path.to_path_buf(), error };
    let bytes = std::fs::read(path).map_err(|e| err(ElfError::Io(e.to_string())))?;
    let image = parse(&bytes).map_err(err)?;
    Ok((image, bytes))
}

/// Check `bytes` as an x86_64 executable (static or dynamic) or shared object.
pub fn parse(bytes: &[u8]) -> Result<Image, ElfError> {
    if bytes.len() >= 4 && &bytes[..4] != header::ELFMAG {
        return Err(ElfError::NotElf);
    }
    if bytes.len() < SIZEOF_EHDR {
        return Err(if bytes.len() < 4 { ElfError::NotElf } else { ElfError::Truncated });
    }
    if bytes[header::EI_CLASS] != header::ELFCLASS64 {
        return Err(ElfError::NotElf64);
    }
    if bytes[header::EI_DATA] != header::ELFDATA2LSB {
        return Err(ElfError::NotLittleEndian);
    }
    if bytes[header::EI_VERSION] != header::EV_CURRENT {
        return Err(ElfError::BadVersion);
    }
    let h: Header = goblin::elf::Elf::parse_header(bytes).map_err(|e| ElfError::Parse(e.to_string()))?;
    if h.e_version != u32::from(header::EV_CURRENT) {
        return Err(ElfError::BadVersion);
    }
    if h.e_machine != header::EM_X86_64 {
        return Err(ElfError::WrongMachine(h.e_machine));
    }
    if h.e_type != header::ET_EXEC && h.e_type != header::ET_DYN {
        return Err(ElfError::WrongType(h.e_type));
    }
    if usize::from(h.e_ehsize) != SIZEOF_EHDR {
        return Err(ElfError::BadHeaderSize { field: "e_ehsize", value: h.e_ehsize });
    }
    if usize::from(h.e_phentsize) != SIZEOF_PHDR {
        return Err(ElfError::BadHeaderSize { field: "e_phentsize", value: h.e_phentsize });
    }
    let phnum = usize::from(h.e_phnum);
    if phnum == 0 || phnum > MAX_PHNUM {
        return Err(ElfError::BadPhnum(h.e_phnum));
    }
    let file_len = bytes.len() as u64;
    let table_len = (phnum * SIZEOF_PHDR) as u64;
    let end = h.e_phoff.saturating_add(table_len);
    if end > file_len {
        return Err(ElfError::PhdrsOutsideFile { phoff: h.e_phoff, end, file_len });
    }
    // Bounded above by the file length, so it fits in usize.
    let phoff = h.e_phoff as usize;
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phdrs = ProgramHeader::parse(bytes, phoff, phnum, ctx)
        .map_err(|e| ElfError::Parse(e.to_string()))?;

    let mut segments: Vec<(usize, Segment)> = Vec::new();
    let mut phdr_vaddr = None;
    let mut exec_stack = false;
    let mut interp = None;
    for (index, p) in phdrs.iter().enumerate() {
        match p.p_type {
            ph::PT_INTERP => {
                if interp.is_some() {
                    return Err(ElfError::TwoInterps);
                }
                interp = Some(interp_path(bytes, p).ok_or(ElfError::BadInterp { index })?);
            }
            ph::PT_PHDR => phdr_vaddr = Some(p.p_vaddr),
            ph::PT_GNU_STACK => exec_stack = p.p_flags & ph::PF_X != 0,
            ph::PT_LOAD => {
                if p.p_filesz > p.p_memsz {
                    return Err(ElfError::FileszExceedsMemsz { index });
                }
                if p.p_offset.saturating_add(p.p_filesz) > file_len {
                    return Err(ElfError::SegmentOutsideFile { index });
                }
                if p.p_align > 1
                    && (!p.p_align.is_power_of_two()
                        || p.p_vaddr % p.p_align != p.p_offset % p.p_align)
                {
                    return Err(ElfError::BadAlign { index });
                }
                if p.p_vaddr.saturating_add(p.p_memsz) > USER_TOP {
                    return Err(ElfError::BadAddress { index });
                }
                if p.p_memsz == 0 {
                    continue;
                }
                let seg = Segment {
                    vaddr: p.p_vaddr,
                    memsz: p.p_memsz,
                    offset: p.p_offset,
                    filesz: p.p_filesz,
                    prot: prot_of(p.p_flags),
                };
                if let Some((first, prev)) = segments.last() {
                    if seg.vaddr < prev.vaddr + prev.memsz {
                        return Err(ElfError::Overlap { first: *first, second: index });
                    }
                }
                segments.push((index, seg));
            }
            _ => {}
        }
    }
    let segments: Vec<Segment> = segments.into_iter().map(|(_, s)| s).collect();
    let (Some(first), Some(last)) = (segments.first(), segments.last()) else {
        return Err(ElfError::NoLoad);
    };
    let span = page_up(last.vaddr + last.memsz) - (first.vaddr & !(PAGE - 1));
    if span > MAX_SPAN {
        return Err(ElfError::TooLarge(span));
    }
    let entry_ok = segments.iter().any(|s| {
        s.prot & libc::PROT_EXEC as u32 != 0 && h.e_entry >= s.vaddr && h.e_entry < s.vaddr + s.memsz
    });
    // A shared object without an entry point (e_entry 0, the common case) is fine as a library;
    // the process setup refuses it as a program.
    if !(entry_ok || h.e_type == header::ET_DYN && h.e_entry == 0) {
        return Err(ElfError::EntryOutside(h.e_entry));
    }
    if phdr_vaddr.is_none() {
        // As the kernel: the headers are in memory if a PT_LOAD maps the file bytes holding them.
        phdr_vaddr = segments
            .iter()
            .find(|s| h.e_phoff >= s.offset && end <= s.offset + s.filesz)
            .map(|s| s.vaddr + (h.e_phoff - s.offset));
    }
    Ok(Image {
        pie: h.e_type == header::ET_DYN,
        interp,
        entry: h.e_entry,
        segments,
        phdr_vaddr,
        phoff: h.e_phoff,
        phnum: h.e_phnum,
        phentsize: h.e_phentsize,
        phdr_bytes: bytes[phoff..phoff + phnum * SIZEOF_PHDR].to_vec(),
        exec_stack,
    })
}

/// The path a PT_INTERP header `p` names: its file bytes (inside the file) up to the first NUL;
/// as the kernel, the last byte must be a NUL. `None` if that does not hold or the path is empty.
fn interp_path(bytes: &[u8], p: &ProgramHeader) -> Option<Vec<u8>> {
    let start = usize::try_from(p.p_offset).ok()?;
    let len = usize::try_from(p.p_filesz).ok()?;
    let raw = bytes.get(start..start.checked_add(len)?)?;
    if raw.last() != Some(&0) {
        return None;
    }
    let path: Vec<u8> = raw.iter().take_while(|&&c| c != 0).copied().collect();
    (!path.is_empty()).then_some(path)
}

/// Whether the file at `path` starts like an x86_64 ELF (for `execve`: such a program goes back
/// through ld-nc, anything else to the host kernel).
pub fn is_x86_64_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 20];
    let Ok(mut f) = std::fs::File::open(path) else { return false };
    if f.read_exact(&mut buf).is_err() {
        return false;
    }
    &buf[..4] == header::ELFMAG
        && buf[header::EI_CLASS] == header::ELFCLASS64
        && u16::from_le_bytes([buf[18], buf[19]]) == header::EM_X86_64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid static ET_EXEC: one RX PT_LOAD at 0x400000 with the entry in it and a RW
    /// bss segment.
    pub(crate) fn tiny_exec() -> Vec<u8> {
        let mut b = vec![0u8; 0x1000];
        b[..4].copy_from_slice(header::ELFMAG);
        b[4] = header::ELFCLASS64;
        b[5] = header::ELFDATA2LSB;
        b[6] = header::EV_CURRENT;
        let put16 = |b: &mut Vec<u8>, o: usize, v: u16| b[o..o + 2].copy_from_slice(&v.to_le_bytes());
        let put32 = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
        let put64 = |b: &mut Vec<u8>, o: usize, v: u64| b[o..o + 8].copy_from_slice(&v.to_le_bytes());
        put16(&mut b, 16, header::ET_EXEC);
        put16(&mut b, 18, header::EM_X86_64);
        put32(&mut b, 20, 1);
        put64(&mut b, 24, 0x400100); // e_entry
        put64(&mut b, 32, 64); // e_phoff
        put16(&mut b, 52, 64); // e_ehsize
        put16(&mut b, 54, 56); // e_phentsize
        put16(&mut b, 56, 2); // e_phnum
        let ph = |b: &mut Vec<u8>, o: usize, flags: u32, off: u64, va: u64, fsz: u64, msz: u64| {
            put32(b, o, ph::PT_LOAD);
            put32(b, o + 4, flags);
            put64(b, o + 8, off);
            put64(b, o + 16, va);
            put64(b, o + 24, va);
            put64(b, o + 32, fsz);
            put64(b, o + 40, msz);
            put64(b, o + 48, 0x1000);
        };
        ph(&mut b, 64, ph::PF_R | ph::PF_X, 0, 0x400000, 0x1000, 0x1000);
        ph(&mut b, 120, ph::PF_R | ph::PF_W, 0x800, 0x401800, 0x100, 0x2000);
        b[0x100] = 0xf4; // hlt
        b
    }

    #[test]
    fn tiny_exec_parses() {
        let img = parse(&tiny_exec()).expect("valid");
        assert!(!img.pie);
        assert_eq!(img.entry, 0x400100);
        assert_eq!(img.segments.len(), 2);
        assert_eq!(img.phdr_vaddr, Some(0x400040));
        assert_eq!(img.lo(), 0x400000);
        assert_eq!(img.hi(), 0x404000);
    }

    /// `tiny_exec` with a third program header, PT_INTERP of `filesz` bytes at file offset
    /// 0x200 holding `path`.
    fn with_interp(path: &[u8], offset: u64, filesz: u64) -> Vec<u8> {
        let mut b = tiny_exec();
        b[56] = 3; // e_phnum
        let o = 176;
        b[o..o + 4].copy_from_slice(&ph::PT_INTERP.to_le_bytes());
        b[o + 4..o + 8].copy_from_slice(&ph::PF_R.to_le_bytes());
        b[o + 8..o + 16].copy_from_slice(&offset.to_le_bytes());
        b[o + 32..o + 40].copy_from_slice(&filesz.to_le_bytes());
        b[o + 40..o + 48].copy_from_slice(&filesz.to_le_bytes());
        b[0x200..0x200 + path.len()].copy_from_slice(path);
        b
    }

    #[test]
    fn pt_interp_path_is_checked() {
        let ok = parse(&with_interp(b"/lib64/ld.so\0", 0x200, 13)).expect("valid");
        assert_eq!(ok.interp.as_deref(), Some(&b"/lib64/ld.so"[..]));
        assert_eq!(parse(&tiny_exec()).expect("valid").interp, None);
        // As the kernel: the path ends at the first NUL, the last byte must be one.
        let padded = parse(&with_interp(b"/ld.so\0\0\0", 0x200, 9)).expect("valid");
        assert_eq!(padded.interp.as_deref(), Some(&b"/ld.so"[..]));
        let bad = Err(ElfError::BadInterp { index: 2 });
        assert_eq!(parse(&with_interp(b"/lib64/ld.so\0", 0x200, 12)), bad, "no final NUL");
        assert_eq!(parse(&with_interp(b"\0", 0x200, 1)), bad, "empty");
        assert_eq!(parse(&with_interp(b"", 0x200, 0)), bad, "no bytes");
        assert_eq!(parse(&with_interp(b"", 0xff8, 16)), bad, "past the end");
        assert_eq!(parse(&with_interp(b"", u64::MAX - 4, 16)), bad, "offset overflows");
        let mut two = with_interp(b"/ld.so\0", 0x200, 7);
        two[56] = 4;
        two.copy_within(176..232, 232);
        assert_eq!(parse(&two), Err(ElfError::TwoInterps));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = tiny_exec();
        for n in 0..200 {
            assert!(parse(&b[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn every_single_byte_corruption_is_handled() {
        let b = tiny_exec();
        for i in 0..200 {
            for v in [0u8, 0xff, 0x80, 1] {
                let mut c = b.clone();
                c[i] = v;
                let _ = parse(&c);
            }
        }
    }
}

#[cfg(test)]
mod mutation_tests {
    use super::tests::tiny_exec;
    use super::*;

    /// A deterministic stand-in for the fuzz target that runs with `cargo test`: random byte and
    /// word mutations of a valid file, checking the invariants the loader relies on.
    #[test]
    fn random_mutations_keep_invariants() {
        let base = tiny_exec();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % 200) as usize;
                let v = next();
                if at + 8 > b.len() {
                    continue;
                }
                match v % 3 {
                    0 => b[at] = v as u8,
                    1 => {
                        let at = at & !7;
                        b[at..at + 8].copy_from_slice(&(v >> 2).to_le_bytes());
                    }
                    _ => b.truncate(at.max(1)),
                }
            }
            if let Ok(img) = parse(&b) {
                accepted += 1;
                let mut prev_end = 0;
                for s in &img.segments {
                    assert!(s.filesz <= s.memsz);
                    assert!(s.offset + s.filesz <= b.len() as u64);
                    assert!(s.vaddr >= prev_end);
                    assert!(s.vaddr + s.memsz <= USER_TOP);
                    prev_end = s.vaddr + s.memsz;
                }
                assert!(img.hi() - img.lo() <= MAX_SPAN);
                if let Some(path) = &img.interp {
                    assert!(!path.is_empty() && !path.contains(&0));
                }
            }
        }
        assert!(accepted > 0, "some mutations stay valid");
    }
}
