//! The loader-facing functions of the glibc family, which must see *guest* objects: the native
//! ones know only the host's objects. `dlopen` of a guest object loads it (and what it needs)
//! with ld-nc's linker ([`linker::load_more`]) and runs its initialisers as guest calls; `dlopen`
//! of a SONAME the bridge binds natively is the host's `dlopen`. `dlsym` answers from the guest
//! objects and, for native libraries, with the bridge's trap stubs (so the guest can call what it
//! gets). `dladdr`, `dlerror`, `dlclose` (objects are never unloaded), and `dl_iterate_phdr` /
//! `_dl_find_object`, which the guest's unwinder (libgcc's, for C++ exceptions and `backtrace`)
//! asks for guest program headers and `.eh_frame_hdr`.
//!
//! Not yet: thread-local storage in a `dlopen`ed object (refused with a message), `RTLD_LOCAL`
//! scopes (every object joins the global scope), `dlvsym`'s version argument, `dlinfo`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::Mutex;

use abi::Signature;

use super::{callback, Bridge};
use crate::elf::linker::{self, HostSide, Linked, ScopeEntry, SearchPath};
use crate::mem::SharedMap;

/// What the linker keeps after start-up, for the functions here.
pub struct DlState {
    pub bridge: Bridge,
    pub linked: Linked,
    pub mem: SharedMap,
    pub search: SearchPath,
}

impl std::fmt::Debug for DlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DlState({} objects)", self.linked.objects.len())
    }
}

/// The state, and the host handles `dlopen` returned for native libraries (handle → SONAME).
struct State {
    dl: DlState,
    host_handles: HashMap<u64, String>,
    names: Vec<CString>,
}

// SAFETY: the bridge's raw pointers (its region heap) point into memory that lives as long as the
// process; the state is only used under the `STATE` mutex.
unsafe impl Send for State {}

static STATE: Mutex<Option<State>> = Mutex::new(None);

thread_local! {
    /// The last `dl*` error of this thread, for `dlerror`.
    static ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Keep the linker's state for the handlers (once, after start-up).
pub fn install(dl: DlState) {
    if let Ok(mut g) = STATE.lock() {
        let names = dl.linked.objects.iter().map(|d| CString::new(d.path.to_string_lossy().as_bytes()).unwrap_or_default()).collect();
        *g = Some(State { dl, host_handles: HashMap::new(), names });
    }
}

fn set_error(msg: String) {
    ERROR.with(|e| *e.borrow_mut() = CString::new(msg).ok());
}

/// What callers need about one guest object, copied out of the lock.
#[derive(Debug, Clone, Copy)]
struct Obj {
    bias: u64,
    name: u64,
    phdr: u64,
    phnum: u16,
    lo: u64,
    hi: u64,
    eh_frame_hdr: u64,
    tls_modid: u64,
}

/// Every guest object, in load order.
fn objects() -> Vec<Obj> {
    let Ok(g) = STATE.lock() else { return Vec::new() };
    let Some(s) = g.as_ref() else { return Vec::new() };
    s.dl.linked
        .objects
        .iter()
        .enumerate()
        .map(|(i, d)| Obj {
            bias: d.loaded.bias,
            // As glibc: the main program's name is empty.
            name: if i == 0 { c"".as_ptr() as u64 } else { s.names.get(i).map_or(0, |n| n.as_ptr() as u64) },
            phdr: d.loaded.phdr.unwrap_or(0),
            phnum: d.image.phnum,
            lo: d.loaded.lo,
            hi: d.loaded.hi,
            eh_frame_hdr: d.eh_frame_hdr,
            tls_modid: if d.tls.is_some() { i as u64 + 1 } else { 0 },
        })
        .collect()
}

/// `void *dlopen(const char *file, int flags)`.
///
/// # Safety
/// `file` is null or a NUL-terminated string (the guest's call through its trap stub).
pub unsafe extern "C" fn ldnc_dlopen(file: *const libc::c_char, _flags: i32) -> u64 {
    let inits = {
        let Ok(mut g) = STATE.lock() else { return 0 };
        let Some(st) = g.as_mut() else { return 0 };
        if file.is_null() {
            return st.dl.linked.objects[0].loaded.lo;
        }
        // SAFETY: per the contract.
        let name = unsafe { CStr::from_ptr(file) }.to_string_lossy().into_owned();
        if !name.contains('/') && st.dl.bridge.provides(&name).is_some() {
            let Some(h) = st.dl.bridge.handle(&name) else {
                set_error(format!("{name}: cannot open the native library"));
                return 0;
            };
            st.host_handles.insert(h as u64, name);
            return h as u64;
        }
        let path = match linker::find(&name, &st.dl.linked.objects[0], &st.dl.search) {
            Ok(p) => p,
            Err(e) => {
                set_error(e.to_string());
                return 0;
            }
        };
        let mem = st.dl.mem.clone();
        let dl = &mut st.dl;
        let r = linker::load_more(&mut dl.linked, &path, &mut mem.borrow_mut(), &dl.search, &mut dl.bridge);
        match r {
            Ok((i, inits)) => {
                let names: Vec<CString> = dl.linked.objects[st.names.len()..]
                    .iter()
                    .map(|d| CString::new(d.path.to_string_lossy().as_bytes()).unwrap_or_default())
                    .collect();
                st.names.extend(names);
                (st.dl.linked.objects[i].loaded.lo, inits)
            }
            Err(e) => {
                set_error(e.to_string());
                return 0;
            }
        }
    };
    // Initialisers run as guest calls, with the lock released: they may call dlopen themselves.
    let sig: Signature = match abi::parse_sig("()->v") {
        Ok(s) => s,
        Err(_) => return 0,
    };
    for f in inits.1 {
        match callback::callable(f, &sig) {
            Ok(h) => {
                // SAFETY: a host-callable trampoline for the guest initialiser.
                let h: extern "C" fn() = unsafe { core::mem::transmute(h as usize) };
                h();
            }
            Err(e) => {
                set_error(e);
                return 0;
            }
        }
    }
    inits.0
}

/// `void *dlsym(void *handle, const char *name)` (RTLD_DEFAULT and RTLD_NEXT search everything).
///
/// # Safety
/// `name` is a NUL-terminated string.
pub unsafe extern "C" fn ldnc_dlsym(handle: u64, name: *const libc::c_char) -> u64 {
    if name.is_null() {
        return 0;
    }
    // SAFETY: per the contract.
    let name = unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned();
    let Ok(mut g) = STATE.lock() else { return 0 };
    let Some(st) = g.as_mut() else { return 0 };
    if let Some(so) = st.host_handles.get(&handle).cloned() {
        return match st.dl.bridge.lookup(&so, &name, None) {
            Some((a, _)) => a,
            None => {
                set_error(format!("{so}: undefined symbol: {name}"));
                0
            }
        };
    }
    // The named object first, then the global scope.
    let first = st.dl.linked.objects.iter().position(|d| d.loaded.lo == handle);
    let order: Vec<ScopeEntry> = first.map(ScopeEntry::Guest).into_iter().chain(st.dl.linked.scope.iter().cloned()).collect();
    for e in order {
        match e {
            ScopeEntry::Guest(j) => {
                let d = &st.dl.linked.objects[j];
                if let Some((_, s)) = d.lookup(name.as_bytes(), None) {
                    return d.addr(s.value);
                }
            }
            ScopeEntry::Host(so) => {
                if let Some((a, _)) = st.dl.bridge.lookup(&so, &name, None) {
                    return a;
                }
            }
        }
    }
    set_error(format!("undefined symbol: {name}"));
    0
}

/// `int dlclose(void *handle)`: objects stay loaded.
pub extern "C" fn ldnc_dlclose(_handle: u64) -> i32 {
    0
}

/// `char *dlerror(void)`: the last error of this thread, once.
pub extern "C" fn ldnc_dlerror() -> u64 {
    thread_local! {
        static SHOWN: RefCell<Option<CString>> = const { RefCell::new(None) };
    }
    let e = ERROR.with(|e| e.borrow_mut().take());
    SHOWN.with(|s| {
        *s.borrow_mut() = e;
        s.borrow().as_ref().map_or(0, |c| c.as_ptr() as u64)
    })
}

/// `Dl_info`.
#[repr(C)]
#[derive(Debug)]
pub struct DlInfo {
    fname: u64,
    fbase: u64,
    sname: u64,
    saddr: u64,
}

/// `int dladdr(const void *addr, Dl_info *info)`: the guest object holding `addr` (no symbol
/// names yet), or the host's answer for a host address.
///
/// # Safety
/// `info` points at a writable `Dl_info`.
pub unsafe extern "C" fn ldnc_dladdr(addr: u64, info: *mut DlInfo) -> i32 {
    if info.is_null() {
        return 0;
    }
    if let Some(o) = objects().into_iter().find(|o| addr >= o.lo && addr < o.hi) {
        // SAFETY: per the contract.
        unsafe { info.write(DlInfo { fname: o.name, fbase: o.lo, sname: 0, saddr: 0 }) };
        return 1;
    }
    // SAFETY: the host's dladdr with the caller's buffer (same layout).
    unsafe { libc::dladdr(addr as *const _, info.cast()) }
}

/// `struct dl_phdr_info` (x86_64, with the `adds`/`subs`/TLS fields).
#[repr(C)]
#[derive(Debug)]
pub struct DlPhdrInfo {
    addr: u64,
    name: u64,
    phdr: u64,
    phnum: u16,
    adds: u64,
    subs: u64,
    tls_modid: u64,
    tls_data: u64,
}

/// `int dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)`.
pub extern "C" fn ldnc_dl_iterate_phdr(cb: u64, data: u64) -> i32 {
    let objs = objects();
    let sig: Signature = match abi::parse_sig("(p,u64,p)->i32") {
        Ok(s) => s,
        Err(_) => return 0,
    };
    // A guest callback (through its trampoline); a native function pointer as it is.
    let f = match callback::callable(cb, &sig) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ld-nc: dl_iterate_phdr: {e}");
            return -1;
        }
    };
    // SAFETY: a host-callable function of this signature (trampoline or native).
    let f: extern "C" fn(*mut DlPhdrInfo, usize, u64) -> i32 = unsafe { core::mem::transmute(f as usize) };
    for o in &objs {
        let mut info = DlPhdrInfo {
            addr: o.bias,
            name: o.name,
            phdr: o.phdr,
            phnum: o.phnum,
            adds: objs.len() as u64,
            subs: 0,
            tls_modid: o.tls_modid,
            tls_data: 0,
        };
        let r = f(&mut info, core::mem::size_of::<DlPhdrInfo>(), data);
        if r != 0 {
            return r;
        }
    }
    0
}

/// `struct dl_find_object` (x86_64: no `dlfo_eh_dbase`/`dlfo_eh_count`).
#[repr(C)]
#[derive(Debug)]
pub struct DlFindObject {
    flags: u64,
    map_start: u64,
    map_end: u64,
    link_map: u64,
    eh_frame: u64,
    reserved: [u64; 7],
}

/// `int _dl_find_object(void *pc, struct dl_find_object *result)`: 0 and the object holding
/// `pc`, or -1.
///
/// # Safety
/// `out` is null or points at a writable `struct dl_find_object` (the guest's call, through its
/// trap stub).
pub unsafe extern "C" fn ldnc_dl_find_object(pc: u64, out: *mut DlFindObject) -> i32 {
    let Some(o) = objects().into_iter().find(|o| pc >= o.lo && pc < o.hi) else { return -1 };
    if out.is_null() {
        return -1;
    }
    // SAFETY: per the contract.
    unsafe {
        out.write(DlFindObject { flags: 0, map_start: o.lo, map_end: o.hi, link_map: 0, eh_frame: o.eh_frame_hdr, reserved: [0; 7] })
    };
    0
}
