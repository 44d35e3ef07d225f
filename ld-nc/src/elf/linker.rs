//! ld-nc as the x86_64 dynamic linker: load order, scopes, symbol binding, relocation, TLS layout
//! and the order of init and fini functions. One object's tables are [`super::dso`]'s.
//!
//! - **Load order**: the program, then its `DT_NEEDED` breadth first (gABI "Shared Object
//!   Dependencies"); each SONAME once. A SONAME the [`HostSide`] provides (a bridged native
//!   library) is not mapped: it joins the scope as a host entry whose symbols the host side binds
//!   (trap stubs for functions, the native variable's own address for data — one address space).
//! - **Search** for a guest object: `DT_RPATH` of the needing object (when it has no
//!   `DT_RUNPATH`), the guest's `LD_LIBRARY_PATH`, `DT_RUNPATH`, then the guest root's library
//!   folders; `$ORIGIN` expands to the needing object's folder.
//! - **Scope**: one global scope in load order (the program first), as glibc's for objects
//!   loaded at start. `R_X86_64_COPY` looks past the program itself.
//! - **Relocations** of every object are applied before any code runs, dependencies first (reverse
//!   load order), so a COPY reads an initialised variable. Lazy binding is not done (as with
//!   `LD_BIND_NOW`). IRELATIVE and IFUNC symbols need guest code to run: they are returned to the
//!   caller as (slot, resolver) pairs, which ld-nc's start-up code calls before any initialiser.
//! - **TLS** (Drepper, "ELF Handling For Thread-Local Storage", variant II as x86_64 uses): module
//!   1 is the program; every initial object with PT_TLS gets a static offset below the thread
//!   pointer, the blocks laid out in load order, each aligned.
//! - **Init order**: dependencies before the objects needing them (a depth-first post-order over
//!   `DT_NEEDED`), the program last; fini in the reverse order (gABI "Initialization and
//!   Termination Functions").

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use super::dso::{Dso, DynError, DynProblem, Rela, RELR_ADDEND, STT_GNU_IFUNC, STT_TLS};
use crate::mem::GuestMap;

/// Relocation types (System V AMD64 psABI, "Relocation Types").
pub mod r {
    pub const R_X86_64_NONE: u32 = 0;
    pub const R_X86_64_64: u32 = 1;
    pub const R_X86_64_COPY: u32 = 5;
    pub const R_X86_64_GLOB_DAT: u32 = 6;
    pub const R_X86_64_JUMP_SLOT: u32 = 7;
    pub const R_X86_64_RELATIVE: u32 = 8;
    pub const R_X86_64_DTPMOD64: u32 = 16;
    pub const R_X86_64_DTPOFF64: u32 = 17;
    pub const R_X86_64_TPOFF64: u32 = 18;
    pub const R_X86_64_IRELATIVE: u32 = 37;
}

/// Where the symbols of one SONAME come from when the host provides it.
pub trait HostSide {
    /// Whether `soname` is a native library this run binds to (then it is not mapped as a guest
    /// object); the reason is for `LDNC_DEBUG=load`.
    fn provides(&mut self, soname: &str) -> Option<String>;
    /// The guest-visible address of `name` (with the version the reference asks for) in the
    /// native library `soname`: a trap stub for a function, the variable itself for data, and its
    /// size for data.
    fn lookup(&mut self, soname: &str, name: &str, version: Option<&str>) -> Option<(u64, u64)>;
    /// For a function reference nothing resolved but the host side declined for a reason: an
    /// address that reports the reason and ends the process when called. `None` (the default):
    /// the reference is a link error.
    fn refused_stub(&mut self, name: &str, version: Option<&str>, object: &str) -> Option<u64> {
        let _ = (name, version, object);
        None
    }
}

/// Why linking failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// A `DT_NEEDED` library was found nowhere.
    Missing { soname: String, needed_by: String, searched: Vec<PathBuf> },
    /// A strong reference no object defines.
    Symbol { name: String, version: Option<String>, object: String },
    /// A malformed object.
    Dyn(DynError),
    /// An object could not be opened or mapped.
    Open(String),
    /// More objects than any real program loads (a `DT_NEEDED` loop is not one: each SONAME
    /// loads once).
    TooMany,
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Missing { soname, needed_by, searched } if searched.is_empty() => write!(
                f,
                "{soname}, needed by {needed_by}, was not found: no folder to search (no guest root on this \
                 host: set LDNC_GUEST_ROOT to a folder holding x86_64 libraries)"
            ),
            LinkError::Missing { soname, needed_by, searched } => {
                write!(f, "{soname}, needed by {needed_by}, was not found in:")?;
                for d in searched {
                    write!(f, " {}", d.display())?;
                }
                Ok(())
            }
            LinkError::Symbol { name, version: Some(v), object } => write!(f, "{object}: symbol {name}@{v} is not defined by any loaded object"),
            LinkError::Symbol { name, version: None, object } => write!(f, "{object}: symbol {name} is not defined by any loaded object"),
            LinkError::Dyn(e) => write!(f, "{e}"),
            LinkError::Open(e) => f.write_str(e),
            LinkError::TooMany => write!(f, "more than {MAX_OBJECTS} shared objects"),
        }
    }
}

impl std::error::Error for LinkError {}

/// Most objects one program may load at start.
const MAX_OBJECTS: usize = 1024;

/// An entry of the global scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeEntry {
    /// `objects[i]`.
    Guest(usize),
    /// A native library.
    Host(String),
}

/// Where to look for guest objects.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// The guest's `LD_LIBRARY_PATH` (empty for a secure-execution process).
    pub ld_library_path: Vec<PathBuf>,
    /// The guest root (`/` on an x86_64 host).
    pub root: Option<PathBuf>,
}

impl SearchPath {
    /// The guest root's library folders, as Debian's x86_64 `ld.so.conf` lists them.
    pub fn root_dirs(&self) -> Vec<PathBuf> {
        let Some(root) = &self.root else { return Vec::new() };
        ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib", "usr/local/lib"]
            .iter()
            .map(|d| root.join(d))
            .collect()
    }
}

/// The result: every object mapped and relocated.
#[derive(Debug)]
pub struct Linked {
    pub objects: Vec<Dso>,
    pub scope: Vec<ScopeEntry>,
    /// Every SONAME loaded, guest or native.
    pub by_soname: HashMap<String, ScopeEntry>,
    /// Each object's `DT_NEEDED`, resolved.
    pub deps: Vec<Vec<ScopeEntry>>,
    /// COPY relocations of native variables: (name, the copy's address, the native variable's
    /// address). The native library must be made to use the copy ([`HostSide`] callers
    /// interpose it), so there is one variable.
    pub host_copies: Vec<(String, u64, u64)>,
    /// Init functions (run-time addresses) in call order; 0 and -1 entries already dropped. The
    /// program's own (preinit, then init) come last, in `program_init`.
    pub init: Vec<u64>,
    pub program_init: Vec<u64>,
    /// Fini functions in call order, the program's first.
    pub fini: Vec<u64>,
    /// IRELATIVE and IFUNC slots: (address to write, resolver to call), in relocation order.
    pub ifuncs: Vec<(u64, u64)>,
    /// Static TLS per object, in load order.
    pub tls: Vec<TlsSlot>,
    /// Bytes of static TLS below the thread pointer, aligned to `tls_align`.
    pub tls_size: u64,
    pub tls_align: u64,
}

/// Load `prog` (already opened as `objects[0]` by the caller) and everything it needs.
pub fn link(prog: Dso, map: &mut GuestMap, search: &SearchPath, host: &mut dyn HostSide) -> Result<Linked, LinkError> {
    let mut linked = Linked {
        objects: vec![prog],
        scope: vec![ScopeEntry::Guest(0)],
        by_soname: HashMap::new(),
        deps: vec![Vec::new()],
        host_copies: Vec::new(),
        init: Vec::new(),
        program_init: Vec::new(),
        fini: Vec::new(),
        ifuncs: Vec::new(),
        tls: Vec::new(),
        tls_size: 0,
        tls_align: 16,
    };
    load_needed(&mut linked, 0, map, search, host)?;
    let (tls, tls_size, tls_align) = layout_tls(&linked.objects);
    (linked.tls, linked.tls_size, linked.tls_align) = (tls, tls_size, tls_align);
    for i in (0..linked.objects.len()).rev() {
        relocate(&mut linked, i, host)?;
    }
    let order = init_order(&linked, 0);
    collect_init(&mut linked, &order);
    protect_relro(&linked, 0, map);
    Ok(linked)
}

/// Load `path` and what it needs into an already linked process (`dlopen`): new objects join the
/// global scope (as `RTLD_GLOBAL`), are relocated, and their init functions are returned in call
/// order. The object's index. Objects with TLS cannot be added (their blocks would need the
/// dynamic TLS that the static layout does not reserve).
pub fn load_more(
    l: &mut Linked,
    path: &Path,
    map: &mut GuestMap,
    search: &SearchPath,
    host: &mut dyn HostSide,
) -> Result<(usize, Vec<u64>), LinkError> {
    if let Some(i) = l.objects.iter().position(|d| d.path == path) {
        return Ok((i, Vec::new()));
    }
    let first = l.objects.len();
    let d = Dso::open(path, map, 0).map_err(LinkError::Open)?;
    if let Some(ScopeEntry::Guest(i)) = l.by_soname.get(&d.soname) {
        return Ok((*i, Vec::new()));
    }
    l.by_soname.insert(d.soname.clone(), ScopeEntry::Guest(first));
    l.objects.push(d);
    l.deps.push(Vec::new());
    l.scope.push(ScopeEntry::Guest(first));
    load_needed(l, first, map, search, host)?;
    if let Some(d) = l.objects[first..].iter().find(|d| d.tls.is_some()) {
        return Err(LinkError::Open(format!("{}: thread-local storage in an object loaded by dlopen is not supported yet", d.path.display())));
    }
    l.tls.resize(l.objects.len(), TlsSlot::default());
    for i in (first..l.objects.len()).rev() {
        relocate(l, i, host)?;
    }
    let init = init_order(l, first).into_iter().filter(|&o| o >= first).flat_map(|o| init_functions(&l.objects[o])).collect();
    protect_relro(l, first, map);
    Ok((first, init))
}

/// Breadth-first `DT_NEEDED` from object `root`, adding what is not loaded yet.
fn load_needed(l: &mut Linked, root: usize, map: &mut GuestMap, search: &SearchPath, host: &mut dyn HostSide) -> Result<(), LinkError> {
    let mut queue = VecDeque::from([root]);
    while let Some(i) = queue.pop_front() {
        for soname in l.objects[i].needed.clone() {
            if let Some(e) = l.by_soname.get(&soname) {
                let e = e.clone();
                l.deps[i].push(e);
                continue;
            }
            let entry = if let Some(why) = host.provides(&soname) {
                log::info!(target: "ldnc::load", "{soname}: native ({why})");
                ScopeEntry::Host(soname.clone())
            } else {
                if l.objects.len() >= MAX_OBJECTS {
                    return Err(LinkError::TooMany);
                }
                let path = find(&soname, &l.objects[i], search)?;
                let d = Dso::open(&path, map, 0).map_err(LinkError::Open)?;
                log::info!(target: "ldnc::load", "{soname}: guest object {} at {:#x}", path.display(), d.loaded.bias);
                l.objects.push(d);
                l.deps.push(Vec::new());
                queue.push_back(l.objects.len() - 1);
                ScopeEntry::Guest(l.objects.len() - 1)
            };
            l.by_soname.insert(soname, entry.clone());
            l.deps[i].push(entry.clone());
            l.scope.push(entry);
        }
    }
    Ok(())
}

/// PT_GNU_RELRO of objects `from..` made read-only, except an object with IFUNC slots to fill.
fn protect_relro(l: &Linked, from: usize, map: &mut GuestMap) {
    for d in &l.objects[from..] {
        if let Some((a, b)) = d.relro {
            if l.ifuncs.iter().any(|&(slot, _)| slot >= a && slot < b) {
                continue;
            }
            crate::mem::guest_mprotect(map, a, b, libc::PROT_READ as u32);
        }
    }
}

/// The file for `soname`, needed by `by` (gABI search order, glibc's in practice).
pub fn find(soname: &str, by: &Dso, search: &SearchPath) -> Result<PathBuf, LinkError> {
    if soname.contains('/') {
        return Ok(PathBuf::from(soname));
    }
    let origin = by.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let expand = |p: &String| PathBuf::from(p.replace("${ORIGIN}", &origin.to_string_lossy()).replace("$ORIGIN", &origin.to_string_lossy()));
    let mut dirs: Vec<PathBuf> = Vec::new();
    if !by.is_runpath {
        dirs.extend(by.runpath.iter().filter(|p| !p.is_empty()).map(expand));
    }
    dirs.extend(search.ld_library_path.iter().cloned());
    if by.is_runpath {
        dirs.extend(by.runpath.iter().filter(|p| !p.is_empty()).map(expand));
    }
    dirs.extend(search.root_dirs());
    for d in &dirs {
        let p = d.join(soname);
        if super::is_x86_64_elf(&p) {
            return Ok(p);
        }
    }
    Err(LinkError::Missing { soname: soname.to_string(), needed_by: by.path.display().to_string(), searched: dirs })
}

/// One object's static TLS block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlsSlot {
    /// Run-time address of the PT_TLS initialisation image.
    pub image: u64,
    pub filesz: u64,
    pub memsz: u64,
    /// The block starts this many bytes below the thread pointer (0: the object has no TLS).
    pub offset: u64,
}

/// Variant II static TLS: offsets grow downwards from the thread pointer.
fn layout_tls(objects: &[Dso]) -> (Vec<TlsSlot>, u64, u64) {
    let (mut off, mut align) = (0u64, 16u64);
    let mut out = Vec::new();
    for d in objects {
        match d.tls {
            Some(t) => {
                off = (off + t.memsz).next_multiple_of(t.align);
                align = align.max(t.align);
                out.push(TlsSlot { image: t.image, filesz: t.filesz, memsz: t.memsz, offset: off });
            }
            None => out.push(TlsSlot::default()),
        }
    }
    (out, off.next_multiple_of(align), align)
}

/// Resolve symbol `si` of object `from` through the scope; `skip_program` for COPY.
fn resolve(l: &Linked, from: usize, si: u64, skip_program: bool, host: &mut dyn HostSide) -> Result<Option<Resolved>, LinkError> {
    let d = &l.objects[from];
    let dyn_err = |problem| LinkError::Dyn(DynError { path: d.path.clone(), problem });
    let sym = d.sym(si).map_err(dyn_err)?;
    let name = d.sym_name(&sym).map_err(dyn_err)?.to_vec();
    let want = d.sym_version(si).map_err(dyn_err)?.map(|v| v.name);
    let name_s = String::from_utf8_lossy(&name).into_owned();
    for e in &l.scope {
        match e {
            ScopeEntry::Guest(j) if !(skip_program && *j == 0) => {
                if let Some((_, s)) = l.objects[*j].lookup(&name, want.as_deref()) {
                    // A TLS symbol's value is its offset in the object's TLS block, not an address
                    // (Drepper, "ELF Handling For Thread-Local Storage", 2.2).
                    let value = if s.kind() == STT_TLS { s.value } else { l.objects[*j].addr(s.value) };
                    return Ok(Some(Resolved { obj: Some(*j), value, size: s.size, kind: s.kind() }));
                }
            }
            ScopeEntry::Host(so) => {
                if let Some((addr, size)) = host.lookup(so, &name_s, want.as_deref()) {
                    return Ok(Some(Resolved { obj: None, value: addr, size, kind: 0 }));
                }
            }
            ScopeEntry::Guest(_) => {}
        }
    }
    if sym.bind() == goblin::elf::sym::STB_WEAK {
        return Ok(None);
    }
    let object = d.path.display().to_string();
    // A function the host side knows but cannot bind yet fails when called, not now (as lazy
    // binding would): many programs never call the few such functions they reference.
    if let Some(addr) = host.refused_stub(&name_s, want.as_deref(), &object) {
        return Ok(Some(Resolved { obj: None, value: addr, size: 0, kind: 0 }));
    }
    Err(LinkError::Symbol { name: name_s, version: want, object })
}

/// A bound symbol.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    /// The guest object defining it (`None`: a native library).
    obj: Option<usize>,
    value: u64,
    size: u64,
    kind: u8,
}

fn relocate(l: &mut Linked, i: usize, host: &mut dyn HostSide) -> Result<(), LinkError> {
    use r::*;
    l.objects[i].check().map_err(|problem| LinkError::Dyn(DynError { path: l.objects[i].path.clone(), problem }))?;
    let relocs: Vec<Rela> = std::mem::take(&mut l.objects[i].relocs);
    let bias = l.objects[i].loaded.bias;
    let path = l.objects[i].path.clone();
    let bad = |problem| LinkError::Dyn(DynError { path: path.clone(), problem });
    // By (symbol, is COPY): a COPY looks past the program, other references do not.
    let mut cache: HashMap<(u32, bool), Option<Resolved>> = HashMap::new();
    for rel in &relocs {
        let at = bias.wrapping_add(rel.offset);
        if rel.kind == R_X86_64_NONE {
            continue;
        }
        let width = if rel.kind == R_X86_64_COPY { 0 } else { 8 };
        if !l.objects[i].writable(at, width) {
            return Err(bad(DynProblem::RelocOutside { offset: rel.offset }));
        }
        let sym = if rel.sym != 0 && rel.kind != R_X86_64_RELATIVE && rel.kind != R_X86_64_IRELATIVE {
            let key = (rel.sym, rel.kind == R_X86_64_COPY);
            match cache.get(&key) {
                Some(r) => *r,
                None => {
                    let r = resolve(l, i, u64::from(rel.sym), key.1, host)?;
                    cache.insert(key, r);
                    r
                }
            }
        } else {
            None
        };
        let s = sym.map_or(0, |s| s.value);
        let a = rel.addend;
        let value = match rel.kind {
            R_X86_64_RELATIVE if a == RELR_ADDEND => {
                // SAFETY: `at` is inside a writable segment of the object (checked above).
                bias.wrapping_add(unsafe { (at as *const u64).read_unaligned() })
            }
            R_X86_64_RELATIVE => bias.wrapping_add_signed(a),
            R_X86_64_64 | R_X86_64_GLOB_DAT | R_X86_64_JUMP_SLOT => {
                if let Some(Resolved { kind: STT_GNU_IFUNC, obj: Some(_), value, .. }) = sym {
                    l.ifuncs.push((at, value));
                    continue;
                }
                s.wrapping_add_signed(if rel.kind == R_X86_64_64 { a } else { 0 })
            }
            R_X86_64_IRELATIVE => {
                l.ifuncs.push((at, bias.wrapping_add_signed(a)));
                continue;
            }
            R_X86_64_COPY => {
                let Some(src) = sym else { continue };
                // The definition's size, or (a native variable whose manifest gives none) the
                // size the program's own symbol says it reserved.
                let own = l.objects[i].sym(u64::from(rel.sym)).map_or(0, |s| s.size);
                let n = match (src.size, own) {
                    (0, o) => o,
                    (s, 0) => s,
                    (s, o) => s.min(o),
                };
                if !l.objects[i].writable(at, n) {
                    return Err(bad(DynProblem::RelocOutside { offset: rel.offset }));
                }
                // SAFETY: the destination is inside a writable segment of this object (checked);
                // the source is a defined object of that size in another loaded object or a
                // native library of this process.
                unsafe { core::ptr::copy_nonoverlapping(src.value as *const u8, at as *mut u8, n as usize) };
                if src.obj.is_none() {
                    let d = &l.objects[i];
                    let name = d.sym(u64::from(rel.sym)).and_then(|s| d.sym_name(&s).map(|n| String::from_utf8_lossy(n).into_owned()));
                    if let Ok(name) = name {
                        l.host_copies.push((name, at, src.value));
                    }
                }
                continue;
            }
            R_X86_64_DTPMOD64 => {
                // Module ids are 1-based load indices; a native library has no guest TLS.
                let m = if rel.sym == 0 { Some(i) } else { sym.and_then(|s| s.obj) };
                m.map_or(0, |m| m as u64 + 1)
            }
            // The offset in the defining module's block (symbol value + addend; without a
            // symbol, the addend alone, in this object's block).
            R_X86_64_DTPOFF64 => s.wrapping_add_signed(a),
            R_X86_64_TPOFF64 => {
                let (obj, off_in) = match sym {
                    Some(Resolved { obj: Some(o), value, .. }) => (o, value),
                    _ => (i, 0),
                };
                let tpoff = l.tls.get(obj).map_or(0, |t| t.offset);
                off_in.wrapping_add_signed(a).wrapping_sub(tpoff)
            }
            other => return Err(bad(DynProblem::RelocType(other))),
        };
        // SAFETY: `at` is inside a writable segment of the object (checked above).
        unsafe { (at as *mut u64).write_unaligned(value) };
    }
    l.objects[i].relocs = relocs;
    Ok(())
}

/// Objects from `root` in init order: dependencies before dependents (post-order depth first),
/// `root` last.
fn init_order(l: &Linked, root: usize) -> Vec<usize> {
    let n = l.objects.len();
    let mut seen = vec![false; n];
    let mut order = Vec::with_capacity(n);
    // Iterative post-order: (object, next dependency index).
    let mut stack = vec![(root, 0usize)];
    seen[root] = true;
    while let Some((o, k)) = stack.pop() {
        let next = l.deps[o].iter().skip(k).position(|e| matches!(e, ScopeEntry::Guest(j) if !seen[*j]));
        match next {
            Some(p) => {
                let ScopeEntry::Guest(j) = l.deps[o][k + p] else { continue };
                stack.push((o, k + p + 1));
                seen[j] = true;
                stack.push((j, 0));
            }
            None => order.push(o),
        }
    }
    order
}

/// The init and fini functions of the start-up objects in `order` (the program's own apart; fini
/// in the reverse order, the program's first) — gABI "Initialization and Termination Functions".
fn collect_init(l: &mut Linked, order: &[usize]) {
    for &o in order {
        let d = &l.objects[o];
        if o == 0 {
            l.program_init = d.preinit_array.iter().map(|&a| read_slot(a)).filter(live).chain(init_functions(d)).collect();
        } else {
            l.init.extend(init_functions(d));
        }
    }
    for &o in order.iter().rev() {
        let d = &l.objects[o];
        // DT_FINI_ARRAY in reverse array order, then DT_FINI.
        l.fini.extend(d.fini_array.iter().rev().map(|&a| read_slot(a)).chain(d.fini_fn).filter(live));
    }
}

/// The function an init/fini array slot holds (read after relocation).
fn read_slot(slot: u64) -> u64 {
    // SAFETY: init/fini array slots were checked to lie inside their object's segments.
    unsafe { (slot as *const u64).read_unaligned() }
}

/// Whether an array entry names a function (0 and -1 are placeholders).
fn live(f: &u64) -> bool {
    *f != 0 && *f != u64::MAX
}

/// An object's initialisers: DT_INIT first, then DT_INIT_ARRAY in array order.
fn init_functions(d: &Dso) -> Vec<u64> {
    d.init_fn.into_iter().chain(d.init_array.iter().map(|&a| read_slot(a))).filter(live).collect()
}
