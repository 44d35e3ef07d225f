//! The bridge region and the host side of binding: which `DT_NEEDED` SONAMEs are native
//! libraries, the host's `dlopen` of them, the manifests that say how each symbol crosses, and the
//! trap stubs that bridged functions resolve to.
//!
//! The region is one mapping recorded in the guest map as read-execute (so guest code may call into
//! it and the translator may read the x86 code ld-nc places there): 16-byte trap stubs, one per
//! bound native function, whose bytes are `ud2` (the translator never decodes them — it asks
//! [`Traps`] first and emits the native call), and ld-nc's own small x86_64 routines
//! ([`start`]). Space in it is handed out by a `linked_list_allocator` heap.
//!
//! Which symbols bind natively: a function record whose class is `pass`, or `convert` with
//! conversions the plans carry (function pointers through [`callback`]'s wrappers on both hosts;
//! `long double` and by-value aggregates; on x86_64, where guest and host ABIs and kernels are one,
//! every conversion, and even records the generator excluded); the printf/scanf/`va_list` families
//! through [`printf`]'s format handler; the functions that cannot pass straight through have
//! handlers ([`handlers`], [`dl`], [`start`]). Records the overrides reserve for a handler that does
//! not exist yet are bound to the native function (logged under `LDNC_DEBUG=bridge`); a reference
//! the bridge declines for a reason becomes a stub that reports the reason when called.
//! This departs from DESIGN.md for now: the bridged mode is opt-in (`LDNC_BRIDGE=1`), and the
//! default for dynamic programs stays the guest's own `ld.so` (see [`crate::elf::interp`]).

pub mod callback;
pub mod dl;
pub mod handlers;
pub mod interpose;
pub mod link;
pub mod printf;
pub mod start;

use std::collections::HashMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use abi::{Class, Conversion, Kind, Manifest};
use translator::bridge::{NativeFn, TrapTable};

use crate::elf::linker::HostSide;
use crate::mem::{host_mmap, GuestMap, PROT_EXEC, PROT_READ};

/// Size of the bridge region.
const REGION_SIZE: u64 = 4 << 20;
/// Bytes per trap stub.
const STUB: usize = 16;

/// The glibc family: bridged as one (one heap, one errno, one stdio).
pub const GLIBC_FAMILY: [&str; 7] =
    ["libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1", "ld-linux-x86-64.so.2"];

/// Trap stubs by guest address, read by the translator.
#[derive(Debug, Default)]
pub struct Traps(Mutex<HashMap<u64, Arc<NativeFn>>>);

impl TrapTable for Traps {
    fn native_at(&self, pc: u64) -> Option<Arc<NativeFn>> {
        self.0.lock().ok()?.get(&pc).cloned()
    }
}

/// The bridge region and the native libraries of one run.
pub struct Bridge {
    region: u64,
    heap: linked_list_allocator::Heap,
    traps: Arc<Traps>,
    manifests_dir: Vec<PathBuf>,
    manifests: HashMap<String, Option<Manifest>>,
    /// Where each loaded manifest came from.
    manifest_paths: HashMap<String, PathBuf>,
    /// Per native library: its file and the manifest's bridgeable symbols it does not export
    /// (`hostlib::check` at load time).
    missing: HashMap<String, (PathBuf, std::collections::HashSet<String>)>,
    handles: HashMap<String, usize>,
    /// Bound stubs by (SONAME, name): each native function gets one stub.
    stubs: HashMap<(String, String), u64>,
    /// SONAMEs forced to emulation (`LDNC_EMULATE`).
    emulate: Vec<String>,
    /// Folders searched for host libraries before the host's own search (`LDNC_HOST_LIBRARY_PATH`).
    pub host_dirs: Vec<PathBuf>,
    /// Symbols a reference found in a manifest but could not bind, with why, for the link error.
    pub refused: Vec<(String, String)>,
    /// glibc-family functions ld-nc replaces with its own guest routines, by name.
    pub handlers: HashMap<String, u64>,
    /// The trap stub of the report that refused functions' stubs call.
    refused_report: Option<u64>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("region", &self.region).field("stubs", &self.stubs.len()).finish()
    }
}

/// Where the manifests are: `LDNC_MANIFESTS`, the installed folder, the source tree's.
pub fn manifest_dirs(env: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = env.map(|e| std::env::split_paths(e).collect()).unwrap_or_default();
    v.push(PathBuf::from("/usr/share/ld-nc/manifests"));
    v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sysroot/manifests"));
    v
}

impl Bridge {
    /// Map the region and record it in `map`.
    pub fn new(map: &mut GuestMap, manifests_dir: Vec<PathBuf>, emulate: Vec<String>) -> Result<Bridge, String> {
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: no MAP_FIXED: only free address space is used.
        let region = unsafe { host_mmap(0, REGION_SIZE, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) }
            .map_err(|e| format!("cannot map the bridge region: {}", std::io::Error::from_raw_os_error(e)))?;
        map.insert(region, region + REGION_SIZE, PROT_READ | PROT_EXEC);
        let mut heap = linked_list_allocator::Heap::empty();
        // SAFETY: the region was just mapped read-write for us alone and lives for the process.
        unsafe { heap.init(region as *mut u8, REGION_SIZE as usize) };
        let mut b = Bridge {
            region,
            heap,
            traps: Arc::new(Traps::default()),
            manifests_dir,
            manifests: HashMap::new(),
            manifest_paths: HashMap::new(),
            missing: HashMap::new(),
            handles: HashMap::new(),
            stubs: HashMap::new(),
            emulate,
            host_dirs: Vec::new(),
            refused: Vec::new(),
            handlers: HashMap::new(),
            refused_report: None,
        };
        // Where a guest function called by native code returns to: `ud2` ends the nested loop.
        callback::set_return_address(b.place_code(&[0x0f, 0x0b])?);
        Ok(b)
    }

    /// The table the translator consults.
    pub fn traps(&self) -> Arc<Traps> {
        Arc::clone(&self.traps)
    }

    /// Place `code` (x86_64 machine code run as guest code) in the region; its address.
    pub fn place_code(&mut self, code: &[u8]) -> Result<u64, String> {
        let layout = std::alloc::Layout::from_size_align(code.len().max(1), 16).map_err(|e| e.to_string())?;
        let p = self.heap.allocate_first_fit(layout).map_err(|()| "the bridge region is full".to_string())?;
        // SAFETY: `p` points at `code.len()` bytes the heap just gave us inside the region.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), p.as_ptr(), code.len()) };
        Ok(p.as_ptr() as u64)
    }

    /// A trap stub for `f`.
    fn stub(&mut self, f: NativeFn) -> Result<u64, String> {
        // ud2 padding: nothing decodes it, but a stray read sees an invalid opcode, not code.
        let addr = self.place_code(&[0x0f, 0x0b].repeat(STUB / 2))?;
        log::debug!(target: "ldnc::bind", "{}: trap stub {addr:#x} -> native {:#x}", f.name, f.host);
        self.traps.0.lock().map_err(|_| "trap table poisoned".to_string())?.insert(addr, Arc::new(f));
        Ok(addr)
    }

    /// The manifest of `soname` with its overrides applied (`<dir>/../overrides/<SONAME>.override`
    /// beside the manifests folder it was found in).
    fn manifest(&mut self, soname: &str) -> Option<&Manifest> {
        if !self.manifests.contains_key(soname) {
            let found = self.manifests_dir.iter().map(|d| (d, d.join(format!("{soname}.manifest")))).find(|(_, p)| p.is_file());
            if let Some((_, p)) = &found {
                self.manifest_paths.insert(soname.to_string(), p.clone());
            }
            let m = found.and_then(|(dir, p)| {
                let mut m = Manifest::load(&p).map_err(|e| log::warn!(target: "ldnc::bridge", "{e}")).ok()?;
                let ov = dir.join("../overrides").join(format!("{soname}.override"));
                if ov.is_file() {
                    match Manifest::load(&ov).and_then(|o| m.apply_overrides(&o)) {
                        Ok(()) => {}
                        Err(e) => log::warn!(target: "ldnc::bridge", "{e}"),
                    }
                }
                Some(m)
            });
            self.manifests.insert(soname.to_string(), m);
        }
        self.manifests.get(soname)?.as_ref()
    }

    /// The guest address a call to function `name` of native library `soname` should go to.
    pub fn lookup_fn(&mut self, soname: &str, name: &str) -> Option<u64> {
        self.lookup(soname, name, None).map(|(a, _)| a)
    }

    /// A trap stub calling ld-nc's own host function `host` (a handler) with signature `sig`.
    pub fn host_handler(&mut self, name: &str, host: u64, sig: &abi::Signature) -> Result<u64, String> {
        let plan = abi::plan_call(sig, &[]).map_err(|e| format!("{name}: {e}"))?;
        self.stub(NativeFn { host, plan, name: name.to_string() })
    }

    /// The host's handle of `soname` (`dlopen`, RTLD_NOW | RTLD_GLOBAL).
    pub fn handle(&mut self, soname: &str) -> Option<usize> {
        if let Some(&h) = self.handles.get(soname) {
            return (h != 0).then_some(h);
        }
        // ld-linux's public symbols are the host's libc's own (one family).
        let host_name = if soname == "ld-linux-x86-64.so.2" { "libc.so.6" } else { soname };
        let path = self.host_dirs.iter().map(|d| d.join(host_name)).find(|p| p.is_file());
        let c = match &path {
            Some(p) => CString::new(p.as_os_str().as_encoded_bytes()).ok()?,
            None => CString::new(host_name).ok()?,
        };
        // SAFETY: dlopen with a valid C string; the handle is kept for the process's life.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) } as usize;
        if h == 0 {
            log::info!(target: "ldnc::load", "{soname}: the host has no such library");
        }
        self.handles.insert(soname.to_string(), h);
        (h != 0).then_some(h)
    }

    fn dlsym(&mut self, soname: &str, name: &str) -> Option<u64> {
        let h = self.handle(soname)?;
        let c = CString::new(name).ok()?;
        // SAFETY: a handle from dlopen and a valid C string.
        let p = unsafe { libc::dlsym(h as *mut _, c.as_ptr()) } as u64;
        (p != 0).then_some(p)
    }
}

/// Whether the bridge carries a function record of class `class` on this host without a handler.
fn direct(class: &Class) -> Result<(), String> {
    match class {
        Class::Pass => Ok(()),
        Class::Exclude { reason, .. } => Err(format!("excluded ({})", reason.name())),
        Class::Convert(list) => {
            if let Some(c) = list.iter().find(|c| !direct_conversion(c)) {
                return Err(format!("needs the {c:?} conversion, not built yet"));
            }
            Ok(())
        }
    }
}

/// Guest function pointers are wrapped on every host ([`callback`]); on an x86_64 host both
/// sides use the SysV ABI and one kernel, so every other conversion is the identity.
fn direct_conversion(c: &Conversion) -> bool {
    // The translator's plan moves carry `long double` (x87 ⇄ binary128) and by-value aggregates
    // on riscv64 too; varargs, va_list and kernel structs need their handlers.
    matches!(c, Conversion::Callback | Conversion::LongDouble | Conversion::StructByValue) || cfg!(target_arch = "x86_64")
}

/// The end of the refusal of a symbol whose library's manifest does not list it.
const NO_RECORD: &str = "has no manifest record for it";

impl Bridge {
    /// Why `name` was declined, if it was: the most telling reason, that of a library whose
    /// manifest lists it, before "no record".
    pub fn refusal(&self, name: &str) -> Option<&str> {
        self.refused.iter().filter(|(n, _)| n == name).min_by_key(|(_, why)| why.ends_with(NO_RECORD)).map(|(_, w)| w.as_str())
    }
}

/// Called by a refused function's stub (see [`HostSide::refused_stub`]): print why and end the
/// process as a missing symbol would (status 127).
extern "C" fn ldnc_refused_call(msg: *const libc::c_char) -> u64 {
    // SAFETY: the stub passes one of the leaked messages made in `refused_stub`.
    let m = unsafe { std::ffi::CStr::from_ptr(msg) };
    eprintln!("ld-nc: {}", m.to_string_lossy());
    // SAFETY: _exit ends the process.
    unsafe { libc::_exit(127) }
}

impl HostSide for Bridge {
    fn refused_stub(&mut self, name: &str, version: Option<&str>, object: &str) -> Option<u64> {
        let why = self.refusal(name)?.to_string();
        if why.ends_with(NO_RECORD) {
            return None;
        }
        let v = version.map(|v| format!("@{v}")).unwrap_or_default();
        let msg = CString::new(format!("{object}: {name}{v} was called, but the native library cannot take it yet: {why}")).ok()?;
        let msg = Box::leak(msg.into_boxed_c_str()).as_ptr() as u64;
        let sig = abi::parse_sig("(p)->u64").ok()?;
        let report = match self.refused_report {
            Some(r) => r,
            None => {
                let r = self.host_handler("ldnc_refused_call", ldnc_refused_call as *const () as u64, &sig).ok()?;
                self.refused_report = Some(r);
                r
            }
        };
        let code = start::tail_call(report, msg);
        log::info!(target: "ldnc::bridge", "{name}{v} (needed by {object}): bound to a stub that fails when called: {why}");
        self.place_code(&code).ok()
    }

    fn provides(&mut self, soname: &str) -> Option<String> {
        if self.emulate.iter().any(|e| e == soname || e == "all" && !GLIBC_FAMILY.contains(&soname)) {
            return None;
        }
        let family = GLIBC_FAMILY.contains(&soname);
        if !family && self.manifest(soname).is_none() {
            return None;
        }
        let h = self.handle(soname)?;
        self.check_host_library(soname, h);
        Some(if family { "glibc family, bridged as one".into() } else { "manifest and host library".into() })
    }

    fn lookup(&mut self, soname: &str, name: &str, version: Option<&str>) -> Option<(u64, u64)> {
        if let Some(&a) = self.stubs.get(&(soname.to_string(), name.to_string())) {
            return Some((a, 0));
        }
        if GLIBC_FAMILY.contains(&soname) {
            if let Some(&a) = self.handlers.get(name) {
                return Some((a, 0));
            }
        }
        let _ = version; // one default version per name on the host side; dlsym picks it
        let rec = self.manifest(soname).and_then(|m| m.get(name)).cloned();
        let Some(rec) = rec else {
            self.refused.push((name.to_string(), format!("{soname} {NO_RECORD}")));
            return None;
        };
        let r = match &rec.kind {
            Kind::Data { size } if rec.class == Class::Pass => self.bind_data(soname, name, *size),
            // printf/scanf-like and va_list functions: typed per call by the format (printf.rs).
            Kind::Func(sig) if printf::applies(&rec.class) => {
                let real = self.dlsym(soname, name).ok_or("the host library does not export it");
                real.map_err(str::to_string).and_then(|real| printf::bind(name, sig, real)).and_then(|f| {
                    let addr = self.stub(f)?;
                    self.stubs.insert((soname.to_string(), name.to_string()), addr);
                    Ok((addr, 0))
                })
            }
            // A function the overrides reserve for a handler that does not exist yet: its plain
            // binding is what a native run would do, which is right for most uses (fork, system,
            // pthread_create with the callback wrapper...); said once in the bridge log.
            Kind::Func(sig) if is_handler_class(&rec.class) => {
                log::info!(target: "ldnc::bridge", "{name}: no handler yet; bound to the native function");
                let class = if sig.params.iter().any(|t| matches!(t, abi::Ty::FnPtr(_))) {
                    Class::Convert(vec![Conversion::Callback])
                } else {
                    Class::Pass
                };
                match self.bind_func(soname, name, sig, &class) {
                    Err(_) if cfg!(target_arch = "x86_64") => self.bind_generic(soname, name),
                    r => r,
                }
            }
            Kind::Func(sig) if direct(&rec.class).is_ok() => match self.bind_func(soname, name, sig, &rec.class) {
                // A plan the riscv64 rules cannot make (a va_list) is no obstacle to one ABI.
                Err(_) if cfg!(target_arch = "x86_64") && !has_callback(&rec.class) => self.bind_generic(soname, name),
                r => r,
            },
            // One ABI and one kernel: on an x86_64 host whatever the native library exports can be
            // called or read as it is, except what has a handler (above).
            Kind::Func(_) | Kind::Undeclared { func: true } if cfg!(target_arch = "x86_64") && !is_handler_class(&rec.class) => {
                self.bind_generic(soname, name)
            }
            Kind::Data { size } if cfg!(target_arch = "x86_64") => self.bind_data(soname, name, *size),
            Kind::Undeclared { func: false } if cfg!(target_arch = "x86_64") => self.bind_data(soname, name, 0),
            _ => Err(match direct(&rec.class) {
                Err(why) => why,
                Ok(()) => rec.class_text(),
            }),
        };
        match r {
            Ok(v) => Some(v),
            Err(why) => {
                self.refused.push((name.to_string(), format!("{soname}: {why}")));
                None
            }
        }
    }
}

/// The file of a library the host loaded (`dlinfo(RTLD_DI_LINKMAP)`'s `l_name`).
fn host_path(handle: usize) -> Option<PathBuf> {
    /// The start of glibc's `struct link_map` (the public part).
    #[repr(C)]
    struct LinkMap {
        l_addr: usize,
        l_name: *const libc::c_char,
    }
    let mut lm: *const LinkMap = core::ptr::null();
    const RTLD_DI_LINKMAP: libc::c_int = 2;
    // SAFETY: a handle from dlopen; dlinfo writes one pointer.
    let r = unsafe { libc::dlinfo(handle as *mut _, RTLD_DI_LINKMAP, (&mut lm as *mut *const LinkMap).cast()) };
    if r != 0 || lm.is_null() {
        return None;
    }
    // SAFETY: the loader's link map entry, alive while the handle is.
    let name = unsafe { (*lm).l_name };
    if name.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated path owned by the loader.
    let p = unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// A record whose function-pointer arguments must be wrapped.
fn has_callback(c: &Class) -> bool {
    matches!(c, Class::Convert(list) if list.contains(&Conversion::Callback))
}

/// A symbol excluded because it needs a handler in ld-nc.
fn is_handler_class(c: &Class) -> bool {
    matches!(c, Class::Exclude { reason: abi::Reason::Handler, .. })
}

/// Bytes of guest stack a variadic or unprototyped native function gets copied on an x86_64
/// host, where the plan cannot know how many stack arguments the caller passed.
const X86_UNKNOWN_STACK_ARGS: u32 = 256;

impl Bridge {
    /// `hostlib::check` of the manifest against the library the host loaded: what it lacks is
    /// reported once here and named in the refusal of each such symbol.
    fn check_host_library(&mut self, soname: &str, handle: usize) {
        let (Some(path), Some(Some(m))) = (host_path(handle), self.manifests.get(soname)) else { return };
        // The manifest as read (overrides applied), not read again.
        match crate::hostlib::check_loaded(m, &path) {
            Ok(report) => {
                self.missing.insert(soname.to_string(), (path, report.missing.into_iter().collect()));
            }
            // Not fatal: dlsym still finds what the library has (under qemu-user the loader's
            // path may not be openable as it is).
            Err(e) => log::info!(target: "ldnc::bridge", "{soname}: cannot check the manifest: {e}"),
        }
    }

    /// Why `dlsym` found no `name` in `soname`.
    fn not_exported(&self, soname: &str, name: &str) -> String {
        match (self.missing.get(soname), self.manifest_paths.get(soname)) {
            (Some((path, set)), Some(m)) if set.contains(name) => {
                format!("the host library {} does not export it (it is in {}), and the guest has no copy", path.display(), m.display())
            }
            _ => "the host library does not export it".to_string(),
        }
    }

    fn bind_data(&mut self, soname: &str, name: &str, size: u64) -> Result<(u64, u64), String> {
        let addr = match self.dlsym(soname, name) {
            Some(a) => a,
            None => return Err(self.not_exported(soname, name)),
        };
        log::debug!(target: "ldnc::bind", "{name}: native data {addr:#x} ({size} bytes)");
        Ok((addr, size))
    }

    fn bind_func(&mut self, soname: &str, name: &str, sig: &abi::Signature, class: &Class) -> Result<(u64, u64), String> {
        let mut plan = abi::plan_call(sig, &[]).map_err(|e| format!("no plan: {e}"))?;
        if sig.varargs != abi::Varargs::None && cfg!(target_arch = "x86_64") {
            plan.guest_stack = plan.guest_stack.max(X86_UNKNOWN_STACK_ARGS);
        }
        let mut host = match self.dlsym(soname, name) {
            Some(a) => a,
            None => return Err(self.not_exported(soname, name)),
        };
        if has_callback(class) {
            host = callback::wrapper(host, sig, &plan)?;
        }
        self.bind_stub(soname, name, host, plan)
    }

    /// x86_64 host only: a call with the guest's registers as they are and a generous copy of its
    /// stack arguments.
    fn bind_generic(&mut self, soname: &str, name: &str) -> Result<(u64, u64), String> {
        let host = self.dlsym(soname, name).ok_or("the host library does not export it")?;
        let plan = abi::CallPlan { guest_stack: X86_UNKNOWN_STACK_ARGS, ..abi::CallPlan::default() };
        self.bind_stub(soname, name, host, plan)
    }

    fn bind_stub(&mut self, soname: &str, name: &str, host: u64, plan: abi::CallPlan) -> Result<(u64, u64), String> {
        let addr = self.stub(NativeFn { host, plan, name: name.to_string() })?;
        self.stubs.insert((soname.to_string(), name.to_string()), addr);
        Ok((addr, 0))
    }
}

/// Text of a record's class for messages.
trait ClassText {
    fn class_text(&self) -> String;
}

impl ClassText for abi::Record {
    fn class_text(&self) -> String {
        match &self.class {
            Class::Pass => "pass".into(),
            Class::Convert(c) => format!("convert {c:?}"),
            Class::Exclude { reason, .. } => format!("excluded ({})", reason.name()),
        }
    }
}
