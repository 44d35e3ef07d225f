//! One guest shared object (or the program itself) as the dynamic linker sees it: its file mapped
//! read-only (memmap2), its PT_LOAD segments mapped at a base, and the tables of its PT_DYNAMIC
//! read from the file and bounded before use — `DT_NEEDED`, `DT_SONAME`, `DT_RPATH`/`DT_RUNPATH`,
//! the dynamic symbol table with its GNU or SysV hash, symbol versions (`DT_VERSYM`,
//! `DT_VERDEF`, `DT_VERNEED`), relocations (`DT_RELA`, `DT_JMPREL`, `DT_RELR`), init and fini
//! functions, PT_TLS and PT_GNU_RELRO. [`super::linker`] owns the order objects are loaded in
//! and the scopes symbols are looked up in; this module answers questions about one object.
//!
//! Everything here reads the *file*, translating link-time addresses through the PT_LOAD
//! segments' `p_offset`, so a table pointing outside the file's bytes is an error, never a read of
//! unmapped memory. Counts from the file are bounded by the bytes available before anything is
//! allocated (the style of the object and goblin crates). References: the gABI's "Dynamic
//! Section", "Symbol Table", "Hash Table" chapters; the GNU hash section as described in Drepper's
//! "How To Write Shared Libraries" and binutils; symbol versioning as in the LSB's "Symbol
//! Versioning".

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use goblin::elf::dynamic as dt;
use goblin::elf::program_header as ph;
use scroll::{Pread, LE};

use super::load::{self, Loaded};
use super::{Image, LoadError, SIZEOF_PHDR};
use crate::mem::GuestMap;

/// Size of an `Elf64_Sym`.
const SIZEOF_SYM: u64 = 24;
/// Size of an `Elf64_Rela`.
const SIZEOF_RELA: u64 = 24;
/// Size of an `Elf64_Dyn`.
const SIZEOF_DYN: u64 = 16;
/// Most dynamic entries accepted (real objects have fewer than 100).
const MAX_DYN: u64 = 4096;

/// A problem with one object's dynamic section, for [`DynError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynProblem {
    /// A `DT_*` entry points outside the file's loaded bytes.
    Outside { tag: &'static str, addr: u64, len: u64 },
    /// A `DT_*` entry that must come with another is alone, or has a bad value.
    Bad(&'static str),
    /// A string-table offset past its end, or a string without its NUL.
    BadString(u64),
    /// A symbol index past the symbol table.
    SymbolIndex(u64),
    /// A version index that no `DT_VERDEF`/`DT_VERNEED` record defines.
    VersionIndex(u16),
    /// A relocation whose target lies outside the object's writable segments.
    RelocOutside { offset: u64 },
    /// A relocation type this linker does not apply.
    RelocType(u32),
    /// Text relocations (`DT_TEXTREL`): the object writes to its own code.
    TextRel,
}

/// [`DynProblem`] with the object it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynError {
    pub path: PathBuf,
    pub problem: DynProblem,
}

impl fmt::Display for DynError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match &self.problem {
            DynProblem::Outside { tag, addr, len } => {
                write!(f, "{tag} table at {addr:#x} (+{len:#x}) is outside the file's loaded bytes")
            }
            DynProblem::Bad(what) => write!(f, "bad dynamic section: {what}"),
            DynProblem::BadString(off) => write!(f, "string at offset {off:#x} is outside DT_STRTAB"),
            DynProblem::SymbolIndex(i) => write!(f, "symbol index {i} is past the symbol table"),
            DynProblem::VersionIndex(v) => write!(f, "version index {v} is not defined"),
            DynProblem::RelocOutside { offset } => {
                write!(f, "relocation at {offset:#x} is outside the object's writable segments")
            }
            DynProblem::RelocType(t) => write!(f, "relocation type {t} is not supported"),
            DynProblem::TextRel => write!(f, "text relocations (DT_TEXTREL) are not supported"),
        }
    }
}

impl std::error::Error for DynError {}

/// One `Elf64_Sym`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sym {
    pub name: u32,
    pub info: u8,
    pub other: u8,
    pub shndx: u16,
    pub value: u64,
    pub size: u64,
}

impl Sym {
    /// `STB_*`.
    pub fn bind(&self) -> u8 {
        self.info >> 4
    }
    /// `STT_*`.
    pub fn kind(&self) -> u8 {
        self.info & 0xf
    }
    /// Defined here (not `SHN_UNDEF`).
    pub fn defined(&self) -> bool {
        self.shndx != 0
    }
}

/// `STT_TLS`.
pub const STT_TLS: u8 = 6;
/// `STT_GNU_IFUNC`.
pub const STT_GNU_IFUNC: u8 = 10;

/// One `Elf64_Rela` (`DT_RELR` entries are expanded into `R_X86_64_RELATIVE` ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rela {
    pub offset: u64,
    pub kind: u32,
    pub sym: u32,
    pub addend: i64,
}

/// A version a symbol reference asks for (`DT_VERNEED`) or a definition has (`DT_VERDEF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub name: String,
    /// For a definition: `VER_FLG`-hidden (`versym` bit 15, only exact references bind to it).
    pub hidden: bool,
}

/// The PT_TLS template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsTemplate {
    /// Run-time address of the initialisation image.
    pub image: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

/// The GNU hash table's parameters (`DT_GNU_HASH`), bounded.
#[derive(Debug, Clone, Copy)]
struct GnuHash {
    /// File offset of the table.
    at: usize,
    nbuckets: u32,
    symoffset: u32,
    bloom_size: u32,
    bloom_shift: u32,
}

/// An object's file bytes: a read-only mapping, or a buffer ([`Dso::inspect`]).
#[derive(Clone)]
struct Bytes(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", (*self.0).as_ref().len())
    }
}

impl Bytes {
    fn get(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

/// The tables of one object.
#[derive(Debug)]
pub struct Dso {
    /// The file it came from.
    pub path: PathBuf,
    /// `DT_SONAME`, or the file name.
    pub soname: String,
    pub image: Image,
    pub loaded: Loaded,
    file: Bytes,
    pub needed: Vec<String>,
    /// `DT_RUNPATH` (or, without it, `DT_RPATH`) entries, `$ORIGIN` not yet expanded.
    pub runpath: Vec<String>,
    /// Whether the paths came from `DT_RUNPATH` (searched after `LD_LIBRARY_PATH`).
    pub is_runpath: bool,
    symtab: u64,
    nsyms: u64,
    strtab: u64,
    strsz: u64,
    gnu_hash: Option<GnuHash>,
    sysv_hash: Option<(usize, u32)>,
    versym: Option<u64>,
    /// Version names by index (`DT_VERDEF` and `DT_VERNEED` together; 0 and 1 are unversioned).
    versions: Vec<Option<String>>,
    pub relocs: Vec<Rela>,
    /// `DT_INIT` (run-time address).
    pub init_fn: Option<u64>,
    /// Slots of `DT_INIT_ARRAY`, `DT_PREINIT_ARRAY`, `DT_FINI_ARRAY` (run-time addresses; the
    /// functions are read from them after relocation).
    pub init_array: Vec<u64>,
    pub preinit_array: Vec<u64>,
    pub fini_array: Vec<u64>,
    /// `DT_FINI`.
    pub fini_fn: Option<u64>,
    pub tls: Option<TlsTemplate>,
    /// `[start, end)` made read-only after relocation (PT_GNU_RELRO).
    pub relro: Option<(u64, u64)>,
    /// The dynamic section's run-time address (`_DYNAMIC`).
    pub dynamic: u64,
    /// PT_GNU_EH_FRAME's run-time address (the unwinder's index of this object), or 0.
    pub eh_frame_hdr: u64,
}

/// The little-endian `T` at `off`, if the bytes are there.
fn rd<'a, T: scroll::ctx::TryFromCtx<'a, scroll::Endian, Error = scroll::Error>>(b: &'a [u8], off: usize) -> Option<T> {
    b.pread_with::<T>(off, LE).ok()
}

impl Dso {
    /// Map the file at `path` (checked as an x86_64 ELF) into guest memory near `hint` and read
    /// its dynamic section.
    pub fn open(path: &Path, map: &mut GuestMap, hint: u64) -> Result<Dso, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: the file is opened read-only and mapped private; a concurrent writer can change
        // bytes under us, which every read below tolerates (all bounds are re-checked per read).
        let file = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| format!("{}: {e}", path.display()))?;
        let image = super::parse(&file).map_err(|error| LoadError { path: path.to_path_buf(), error }.to_string())?;
        let loaded = load::map_image_near(&image, &file, map, hint).map_err(|e| format!("{}: {e}", path.display()))?;
        Dso::with_tables(path, Bytes(Arc::new(file)), image, loaded)
    }

    /// Read the tables of an object given as bytes, without mapping it (as if loaded at its
    /// link-time addresses): for tools, tests and the fuzz target.
    pub fn inspect(path: &Path, bytes: Vec<u8>) -> Result<Dso, String> {
        let image = super::parse(&bytes).map_err(|error| LoadError { path: path.to_path_buf(), error }.to_string())?;
        let loaded = Loaded { bias: 0, entry: image.entry, lo: image.lo(), hi: image.hi(), phdr: image.phdr_vaddr };
        Dso::with_tables(path, Bytes(Arc::new(bytes)), image, loaded)
    }

    fn with_tables(path: &Path, file: Bytes, image: Image, loaded: Loaded) -> Result<Dso, String> {
        let mut d = Dso {
            path: path.to_path_buf(),
            soname: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            image,
            loaded,
            file,
            needed: Vec::new(),
            runpath: Vec::new(),
            is_runpath: false,
            symtab: 0,
            nsyms: 0,
            strtab: 0,
            strsz: 0,
            gnu_hash: None,
            sysv_hash: None,
            versym: None,
            versions: Vec::new(),
            relocs: Vec::new(),
            init_fn: None,
            init_array: Vec::new(),
            preinit_array: Vec::new(),
            fini_array: Vec::new(),
            fini_fn: None,
            tls: None,
            relro: None,
            dynamic: 0,
            eh_frame_hdr: 0,
        };
        d.read_dynamic().map_err(|problem| DynError { path: path.to_path_buf(), problem }.to_string())?;
        Ok(d)
    }

    /// The run-time address of link-time address `vaddr`.
    pub fn addr(&self, vaddr: u64) -> u64 {
        vaddr.wrapping_add(self.loaded.bias)
    }

    /// The file's bytes (shared, so a reader can hold them while it fills in `self`).
    fn bytes(&self) -> Bytes {
        self.file.clone()
    }

    /// File offset of `len` bytes at link-time address `vaddr`, if a PT_LOAD maps them from the
    /// file.
    fn file_off(&self, vaddr: u64, len: u64) -> Option<usize> {
        let s = self.image.segments.iter().find(|s| vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz)?;
        let end = vaddr.checked_add(len)?;
        (end <= s.vaddr + s.filesz).then(|| (s.offset + (vaddr - s.vaddr)) as usize)
    }

    fn table(&self, tag: &'static str, vaddr: u64, len: u64) -> Result<usize, DynProblem> {
        self.file_off(vaddr, len).ok_or(DynProblem::Outside { tag, addr: vaddr, len })
    }

    /// The other program headers (PT_DYNAMIC, PT_TLS, PT_GNU_RELRO) from the checked header bytes.
    fn phdrs(&self) -> Vec<(u32, u64, u64, u64, u64, u64)> {
        let b = &self.image.phdr_bytes;
        (0..b.len() / SIZEOF_PHDR)
            .filter_map(|i| {
                let o = i * SIZEOF_PHDR;
                Some((
                    b.pread_with::<u32>(o, LE).ok()?,
                    b.pread_with::<u64>(o + 8, LE).ok()?,  // p_offset
                    b.pread_with::<u64>(o + 16, LE).ok()?, // p_vaddr
                    b.pread_with::<u64>(o + 32, LE).ok()?, // p_filesz
                    b.pread_with::<u64>(o + 40, LE).ok()?, // p_memsz
                    b.pread_with::<u64>(o + 48, LE).ok()?, // p_align
                ))
            })
            .collect()
    }

    fn read_dynamic(&mut self) -> Result<(), DynProblem> {
        let mut dynv = None;
        for (ty, _off, vaddr, filesz, memsz, align) in self.phdrs() {
            match ty {
                ph::PT_DYNAMIC => dynv = Some((vaddr, filesz)),
                ph::PT_TLS => {
                    if memsz < filesz || (align > 1 && !align.is_power_of_two()) || self.file_off(vaddr, filesz).is_none() && filesz > 0 {
                        return Err(DynProblem::Bad("PT_TLS"));
                    }
                    self.tls = Some(TlsTemplate { image: self.addr(vaddr), filesz, memsz, align: align.max(1) });
                }
                ph::PT_GNU_EH_FRAME => self.eh_frame_hdr = self.addr(vaddr),
                ph::PT_GNU_RELRO => {
                    let a = self.addr(vaddr) & !(super::PAGE - 1);
                    let b = self.addr(vaddr.saturating_add(memsz)) & !(super::PAGE - 1);
                    if b > a {
                        self.relro = Some((a, b));
                    }
                }
                _ => {}
            }
        }
        let Some((dvaddr, dsize)) = dynv else { return Ok(()) };
        self.dynamic = self.addr(dvaddr);
        let n = (dsize / SIZEOF_DYN).min(MAX_DYN);
        let at = self.table("PT_DYNAMIC", dvaddr, n * SIZEOF_DYN)?;
        let file = self.bytes();
        let b: &[u8] = file.get();
        let mut entries = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            let (Some(tag), Some(val)) = (rd::<u64>(b, at + 16 * i), rd::<u64>(b, at + 16 * i + 8)) else { break };
            if tag == dt::DT_NULL {
                break;
            }
            entries.push((tag, val));
        }
        let get = |t: u64| entries.iter().find(|e| e.0 == t).map(|e| e.1);
        if get(dt::DT_TEXTREL).is_some() || get(dt::DT_FLAGS).is_some_and(|f| f & dt::DF_TEXTREL != 0) {
            return Err(DynProblem::TextRel);
        }
        self.strtab = get(dt::DT_STRTAB).unwrap_or(0);
        self.strsz = get(dt::DT_STRSZ).unwrap_or(0);
        if self.strsz > 0 {
            self.table("DT_STRTAB", self.strtab, self.strsz)?;
        }
        self.symtab = get(dt::DT_SYMTAB).unwrap_or(0);
        if get(dt::DT_SYMENT).is_some_and(|s| s != SIZEOF_SYM) {
            return Err(DynProblem::Bad("DT_SYMENT is not 24"));
        }
        if let Some(h) = get(dt::DT_GNU_HASH) {
            self.read_gnu_hash(h)?;
        }
        if let Some(h) = get(dt::DT_HASH) {
            let at = self.table("DT_HASH", h, 8)?;
            let (nb, nc) = (rd::<u32>(b, at).unwrap_or(0), rd::<u32>(b, at + 4).unwrap_or(0));
            self.table("DT_HASH", h, 8 + 4 * (u64::from(nb) + u64::from(nc)))?;
            self.sysv_hash = Some((at, nb));
            self.nsyms = self.nsyms.max(u64::from(nc));
        }
        if self.symtab != 0 {
            // Without DT_HASH nothing states the count: the GNU hash chains give the hashed
            // (defined) symbols only, so take the room up to the next table after DT_SYMTAB (the
            // linkers place .dynstr right after .dynsym), at least what the chains need.
            if self.nsyms == 0 {
                let next = entries
                    .iter()
                    .filter(|(t, _)| [dt::DT_STRTAB, dt::DT_VERSYM, dt::DT_GNU_HASH, dt::DT_RELA, dt::DT_JMPREL, dt::DT_VERNEED, dt::DT_VERDEF].contains(t))
                    .map(|&(_, v)| v)
                    .filter(|&v| v > self.symtab)
                    .min()
                    .map_or(0, |v| (v - self.symtab) / SIZEOF_SYM);
                self.nsyms = next.max(self.gnu_nsyms());
            }
            self.table("DT_SYMTAB", self.symtab, self.nsyms * SIZEOF_SYM)?;
        }
        for &(tag, val) in &entries {
            match tag {
                dt::DT_NEEDED => self.needed.push(self.string(val)?),
                dt::DT_SONAME => self.soname = self.string(val)?,
                dt::DT_RUNPATH => {
                    self.runpath = self.string(val)?.split(':').map(str::to_owned).collect();
                    self.is_runpath = true;
                }
                dt::DT_RPATH if !self.is_runpath => {
                    self.runpath = self.string(val)?.split(':').map(str::to_owned).collect();
                }
                _ => {}
            }
        }
        self.versym = get(dt::DT_VERSYM);
        if let Some(v) = self.versym {
            self.table("DT_VERSYM", v, 2 * self.nsyms)?;
        }
        self.read_versions(get(dt::DT_VERDEF), get(dt::DT_VERDEFNUM), get(dt::DT_VERNEED), get(dt::DT_VERNEEDNUM))?;
        self.read_relocs(&get)?;
        self.init_fn = get(dt::DT_INIT).map(|a| self.addr(a));
        self.fini_fn = get(dt::DT_FINI).map(|a| self.addr(a));
        self.init_array = self.array(&get, dt::DT_INIT_ARRAY, dt::DT_INIT_ARRAYSZ, "DT_INIT_ARRAY")?;
        self.preinit_array = self.array(&get, dt::DT_PREINIT_ARRAY, dt::DT_PREINIT_ARRAYSZ, "DT_PREINIT_ARRAY")?;
        self.fini_array = self.array(&get, dt::DT_FINI_ARRAY, dt::DT_FINI_ARRAYSZ, "DT_FINI_ARRAY")?;
        Ok(())
    }

    /// The run-time addresses of an init/fini array; its words are read from guest memory when
    /// called (they are relocated), so this returns the slots' addresses.
    fn array(&self, get: &dyn Fn(u64) -> Option<u64>, tag: u64, sz: u64, name: &'static str) -> Result<Vec<u64>, DynProblem> {
        let (Some(a), n) = (get(tag), get(sz).unwrap_or(0)) else { return Ok(Vec::new()) };
        if n % 8 != 0 || n > 1 << 20 {
            return Err(DynProblem::Bad(name));
        }
        let a = self.addr(a);
        if !self.inside_writable_or_loaded(a, n) {
            return Err(DynProblem::Outside { tag: name, addr: a, len: n });
        }
        Ok((0..n / 8).map(|i| a + 8 * i).collect())
    }

    fn inside_writable_or_loaded(&self, addr: u64, len: u64) -> bool {
        self.image.segments.iter().any(|s| {
            let lo = self.addr(s.vaddr);
            addr >= lo && addr.saturating_add(len) <= lo + s.memsz
        })
    }

    /// Whether `[addr, addr+len)` (run time) lies in one writable segment: where relocations may write.
    pub fn writable(&self, addr: u64, len: u64) -> bool {
        self.image.segments.iter().any(|s| {
            let lo = self.addr(s.vaddr);
            s.prot & libc::PROT_WRITE as u32 != 0 && addr >= lo && addr.saturating_add(len) <= lo + s.memsz
        })
    }

    fn read_gnu_hash(&mut self, h: u64) -> Result<(), DynProblem> {
        let at = self.table("DT_GNU_HASH", h, 16)?;
        let file = self.bytes();
        let b: &[u8] = file.get();
        let g = GnuHash {
            at,
            nbuckets: rd(b, at).unwrap_or(0),
            symoffset: rd(b, at + 4).unwrap_or(0),
            bloom_size: rd(b, at + 8).unwrap_or(0),
            bloom_shift: rd(b, at + 12).unwrap_or(0),
        };
        if g.nbuckets == 0 || g.bloom_size == 0 || g.bloom_shift >= 32 {
            return Err(DynProblem::Bad("DT_GNU_HASH header"));
        }
        let len = 16 + 8 * u64::from(g.bloom_size) + 4 * u64::from(g.nbuckets);
        self.table("DT_GNU_HASH", h, len)?;
        self.gnu_hash = Some(g);
        Ok(())
    }

    /// Symbol count from the GNU hash table: the highest bucket start, then along its chain to
    /// the entry with the end bit. Bounded by the file's bytes.
    fn gnu_nsyms(&self) -> u64 {
        let Some(g) = self.gnu_hash else { return 0 };
        let file = self.bytes();
        let b: &[u8] = file.get();
        let buckets = g.at + 16 + 8 * g.bloom_size as usize;
        let chains = buckets + 4 * g.nbuckets as usize;
        let mut last = 0u32;
        for i in 0..g.nbuckets as usize {
            last = last.max(rd::<u32>(b, buckets + 4 * i).unwrap_or(0));
        }
        if last < g.symoffset {
            return u64::from(g.symoffset);
        }
        let mut i = last;
        while let Some(h) = rd::<u32>(b, chains + 4 * (i - g.symoffset) as usize) {
            if h & 1 != 0 {
                return u64::from(i) + 1;
            }
            i += 1;
        }
        u64::from(i)
    }

    /// The NUL-terminated string at `off` in `DT_STRTAB`.
    pub fn string(&self, off: u64) -> Result<String, DynProblem> {
        self.str_bytes(off).map(|s| String::from_utf8_lossy(s).into_owned())
    }

    fn str_bytes(&self, off: u64) -> Result<&[u8], DynProblem> {
        if off >= self.strsz {
            return Err(DynProblem::BadString(off));
        }
        let at = self.file_off(self.strtab, self.strsz).ok_or(DynProblem::BadString(off))?;
        let tab = self.file.get().get(at..at + self.strsz as usize).ok_or(DynProblem::BadString(off))?;
        let s = &tab[off as usize..];
        let n = s.iter().position(|&c| c == 0).ok_or(DynProblem::BadString(off))?;
        Ok(&s[..n])
    }

    /// Symbol `i`.
    pub fn sym(&self, i: u64) -> Result<Sym, DynProblem> {
        if i >= self.nsyms {
            return Err(DynProblem::SymbolIndex(i));
        }
        let at = self.file_off(self.symtab + i * SIZEOF_SYM, SIZEOF_SYM).ok_or(DynProblem::SymbolIndex(i))?;
        let file = self.bytes();
        let b: &[u8] = file.get();
        Ok(Sym {
            name: rd(b, at).unwrap_or(0),
            info: rd(b, at + 4).unwrap_or(0),
            other: rd(b, at + 5).unwrap_or(0),
            shndx: rd(b, at + 6).unwrap_or(0),
            value: rd(b, at + 8).unwrap_or(0),
            size: rd(b, at + 16).unwrap_or(0),
        })
    }

    /// The name of symbol `s`.
    pub fn sym_name(&self, s: &Sym) -> Result<&[u8], DynProblem> {
        self.str_bytes(u64::from(s.name))
    }

    /// The version of symbol `i`: for an undefined one, the version it requires; for a defined one,
    /// the version it has. `None` for unversioned (index 0 or 1).
    pub fn sym_version(&self, i: u64) -> Result<Option<Version>, DynProblem> {
        let Some(vs) = self.versym else { return Ok(None) };
        let at = self.file_off(vs + 2 * i, 2).ok_or(DynProblem::SymbolIndex(i))?;
        let raw: u16 = rd(self.file.get(), at).unwrap_or(0);
        let idx = raw & 0x7fff;
        if idx <= 1 {
            return Ok(None);
        }
        match self.versions.get(usize::from(idx)) {
            Some(Some(name)) => Ok(Some(Version { name: name.clone(), hidden: raw & 0x8000 != 0 })),
            _ => Err(DynProblem::VersionIndex(idx)),
        }
    }

    fn read_versions(&mut self, verdef: Option<u64>, ndef: Option<u64>, verneed: Option<u64>, nneed: Option<u64>) -> Result<(), DynProblem> {
        let file = self.bytes();
        let b: &[u8] = file.get();
        let set = |v: &mut Vec<Option<String>>, idx: u16, name: String| {
            let i = usize::from(idx & 0x7fff);
            if v.len() <= i {
                v.resize(i + 1, None);
            }
            v[i] = Some(name);
        };
        let mut versions = Vec::new();
        // Elf64_Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16, vd_hash u32,
        // vd_aux u32, vd_next u32; Elf64_Verdaux: vda_name u32, vda_next u32.
        if let (Some(mut at_v), Some(n)) = (verdef, ndef) {
            for _ in 0..n.min(1 << 16) {
                let at = self.table("DT_VERDEF", at_v, 20)?;
                let ndx: u16 = rd(b, at + 4).unwrap_or(0);
                let aux: u32 = rd(b, at + 12).unwrap_or(0);
                let next: u32 = rd(b, at + 16).unwrap_or(0);
                let a = self.table("DT_VERDEF", at_v + u64::from(aux), 8)?;
                let name = self.string(u64::from(rd::<u32>(b, a).unwrap_or(0)))?;
                set(&mut versions, ndx, name);
                if next == 0 {
                    break;
                }
                at_v += u64::from(next);
            }
        }
        // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32;
        // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32.
        if let (Some(mut at_n), Some(n)) = (verneed, nneed) {
            for _ in 0..n.min(1 << 16) {
                let at = self.table("DT_VERNEED", at_n, 16)?;
                let cnt: u16 = rd(b, at + 2).unwrap_or(0);
                let mut aux = at_n + u64::from(rd::<u32>(b, at + 8).unwrap_or(0));
                let next: u32 = rd(b, at + 12).unwrap_or(0);
                for _ in 0..cnt {
                    let a = self.table("DT_VERNEED", aux, 16)?;
                    let other: u16 = rd(b, a + 6).unwrap_or(0);
                    let name = self.string(u64::from(rd::<u32>(b, a + 8).unwrap_or(0)))?;
                    set(&mut versions, other, name);
                    let nx: u32 = rd(b, a + 12).unwrap_or(0);
                    if nx == 0 {
                        break;
                    }
                    aux += u64::from(nx);
                }
                if next == 0 {
                    break;
                }
                at_n += u64::from(next);
            }
        }
        self.versions = versions;
        Ok(())
    }

    fn read_relocs(&mut self, get: &dyn Fn(u64) -> Option<u64>) -> Result<(), DynProblem> {
        let file = self.bytes();
        let b: &[u8] = file.get();
        let mut out = Vec::new();
        if get(dt::DT_RELAENT).is_some_and(|e| e != SIZEOF_RELA) {
            return Err(DynProblem::Bad("DT_RELAENT is not 24"));
        }
        if get(dt::DT_PLTREL).is_some_and(|k| k != dt::DT_RELA) {
            return Err(DynProblem::Bad("DT_PLTREL is not DT_RELA"));
        }
        let mut rela = |tag: &'static str, addr: Option<u64>, size: Option<u64>| -> Result<(), DynProblem> {
            let (Some(a), Some(n)) = (addr, size) else { return Ok(()) };
            let at = self.table(tag, a, n)?;
            for i in 0..(n / SIZEOF_RELA) as usize {
                let o = at + 24 * i;
                let info: u64 = rd(b, o + 8).unwrap_or(0);
                out.push(Rela {
                    offset: rd::<u64>(b, o).unwrap_or(0),
                    kind: info as u32,
                    sym: (info >> 32) as u32,
                    addend: rd(b, o + 16).unwrap_or(0),
                });
            }
            Ok(())
        };
        rela("DT_RELA", get(dt::DT_RELA), get(dt::DT_RELASZ))?;
        rela("DT_JMPREL", get(dt::DT_JMPREL), get(dt::DT_PLTRELSZ))?;
        if get(dt::DT_REL).is_some() {
            return Err(DynProblem::Bad("DT_REL on x86_64"));
        }
        // DT_RELR (tag 36): an address entry, then bitmap entries covering the next 63 words.
        if let (Some(a), Some(n)) = (get(36), get(35)) {
            let at = self.table("DT_RELR", a, n)?;
            let mut base = 0u64;
            for i in 0..(n / 8) as usize {
                let w: u64 = rd(b, at + 8 * i).unwrap_or(0);
                if w & 1 == 0 {
                    out.push(Rela { offset: w, kind: R_X86_64_RELATIVE, sym: 0, addend: RELR_ADDEND });
                    base = w.wrapping_add(8);
                } else {
                    let mut bits = w >> 1;
                    let mut at = base;
                    while bits != 0 {
                        if bits & 1 != 0 {
                            out.push(Rela { offset: at, kind: R_X86_64_RELATIVE, sym: 0, addend: RELR_ADDEND });
                        }
                        bits >>= 1;
                        at = at.wrapping_add(8);
                    }
                    base = base.wrapping_add(63 * 8);
                }
            }
        }
        self.relocs = out;
        Ok(())
    }

    /// Check what relocation will use, before anything is written: every target inside a
    /// writable segment, every symbol index inside the table with a readable name, every version
    /// index defined. The linker calls it first, so a bad object fails with one message.
    pub fn check(&self) -> Result<(), DynProblem> {
        for r in &self.relocs {
            let width = if r.kind == 5 { 0 } else { 8 };
            if !self.writable(self.addr(r.offset), width) {
                return Err(DynProblem::RelocOutside { offset: r.offset });
            }
            if r.sym != 0 {
                let s = self.sym(u64::from(r.sym))?;
                self.sym_name(&s)?;
                self.sym_version(u64::from(r.sym))?;
            }
        }
        for i in 0..self.nsyms {
            self.sym_version(i)?;
        }
        Ok(())
    }

    /// Look `name` up in this object's hash table: a defined, non-local symbol whose version
    /// satisfies `want` (gABI symbol lookup; LSB versioning: a versioned reference binds to that
    /// version, an unversioned one to the default version, never to a hidden one).
    pub fn lookup(&self, name: &[u8], want: Option<&str>) -> Option<(u64, Sym)> {
        let accept = |i: u64| -> Option<(u64, Sym)> {
            let s = self.sym(i).ok()?;
            if !s.defined() || s.bind() == goblin::elf::sym::STB_LOCAL || self.sym_name(&s).ok()? != name {
                return None;
            }
            match (self.sym_version(i).ok()?, want) {
                (None, _) => Some((i, s)),
                (Some(v), Some(w)) => (v.name == w).then_some((i, s)),
                (Some(v), None) => (!v.hidden).then_some((i, s)),
            }
        };
        let file = self.bytes();
        let b: &[u8] = file.get();
        if let Some(g) = self.gnu_hash {
            let h = gnu_hash(name);
            let bloom = g.at + 16;
            let word: u64 = rd(b, bloom + 8 * ((h / 64) % g.bloom_size) as usize)?;
            if (word >> (h % 64)) & (word >> ((h >> g.bloom_shift) % 64)) & 1 == 0 {
                return None;
            }
            let buckets = bloom + 8 * g.bloom_size as usize;
            let chains = buckets + 4 * g.nbuckets as usize;
            let mut i: u32 = rd(b, buckets + 4 * (h % g.nbuckets) as usize)?;
            if i < g.symoffset {
                return None;
            }
            loop {
                let ch: u32 = rd(b, chains + 4 * (i - g.symoffset) as usize)?;
                if ch | 1 == h | 1 {
                    if let Some(r) = accept(u64::from(i)) {
                        return Some(r);
                    }
                }
                if ch & 1 != 0 || u64::from(i) + 1 >= self.nsyms {
                    return None;
                }
                i += 1;
            }
        }
        let (at, nb) = self.sysv_hash?;
        if nb == 0 {
            return None;
        }
        let mut i: u32 = rd(b, at + 8 + 4 * (sysv_hash(name) % nb) as usize)?;
        let chains = at + 8 + 4 * nb as usize;
        for _ in 0..self.nsyms {
            if i == 0 {
                return None;
            }
            if let Some(r) = accept(u64::from(i)) {
                return Some(r);
            }
            i = rd(b, chains + 4 * i as usize)?;
        }
        None
    }
}

/// `R_X86_64_RELATIVE`.
pub const R_X86_64_RELATIVE: u32 = 8;
/// Marker addend of relocations expanded from `DT_RELR`: the addend is the word already in place.
pub const RELR_ADDEND: i64 = i64::MIN;

/// The GNU hash function (`dl_new_hash`).
pub fn gnu_hash(name: &[u8]) -> u32 {
    name.iter().fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(u32::from(c)))
}

/// The SysV ELF hash function (gABI "Hash Table").
pub fn sysv_hash(name: &[u8]) -> u32 {
    let mut h = 0u32;
    for &c in name {
        h = (h << 4).wrapping_add(u32::from(c));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_functions_match_the_published_values() {
        // The empty name hashes to each function's seed.
        assert_eq!(sysv_hash(b""), 0);
        assert_eq!(gnu_hash(b""), 5381);
        // Worked by hand from the definitions: ((5381*33)+'a')*33+'b'.
        assert_eq!(gnu_hash(b"ab"), (5381u32 * 33 + 97) * 33 + 98);
        assert_eq!(sysv_hash(b"ab"), (97 << 4) + 98);
    }
}
