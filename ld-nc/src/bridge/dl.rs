//! The loader-facing functions of the glibc family that must see *guest* objects: the native
//! `dl_iterate_phdr` and `_dl_find_object` know only the host's objects, but the guest's unwinder
//! (libgcc's, for C++ exceptions and `backtrace`) asks them for the guest program's and guest
//! libraries' program headers and `.eh_frame_hdr`. These answer from the objects ld-nc linked.
//! (`dlopen`/`dlsym` of guest objects are not built yet.)

use std::ffi::CString;
use std::sync::OnceLock;

use abi::Signature;

use super::callback;
use crate::elf::linker::Linked;

/// What the functions report about one guest object.
#[derive(Debug)]
struct Obj {
    bias: u64,
    name: CString,
    phdr: u64,
    phnum: u16,
    lo: u64,
    hi: u64,
    eh_frame_hdr: u64,
    tls_modid: u64,
}

static OBJECTS: OnceLock<Vec<Obj>> = OnceLock::new();

/// Record the linked guest objects (once, after linking).
pub fn set_objects(l: &Linked) {
    let v = l
        .objects
        .iter()
        .enumerate()
        .map(|(i, d)| Obj {
            bias: d.loaded.bias,
            // As glibc: the main program's name is empty.
            name: if i == 0 { CString::default() } else { CString::new(d.path.to_string_lossy().as_bytes()).unwrap_or_default() },
            phdr: d.loaded.phdr.unwrap_or(0),
            phnum: d.image.phnum,
            lo: d.loaded.lo,
            hi: d.loaded.hi,
            eh_frame_hdr: d.eh_frame_hdr,
            tls_modid: if d.tls.is_some() { i as u64 + 1 } else { 0 },
        })
        .collect();
    let _ = OBJECTS.set(v);
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
    let Some(objs) = OBJECTS.get() else { return 0 };
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
    for o in objs {
        let mut info = DlPhdrInfo {
            addr: o.bias,
            name: o.name.as_ptr() as u64,
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
    let Some(o) = OBJECTS.get().and_then(|v| v.iter().find(|o| pc >= o.lo && pc < o.hi)) else { return -1 };
    if out.is_null() {
        return -1;
    }
    // SAFETY: the caller passes a result buffer of this layout (guest memory = host memory).
    unsafe {
        out.write(DlFindObject { flags: 0, map_start: o.lo, map_end: o.hi, link_map: 0, eh_frame: o.eh_frame_hdr, reserved: [0; 7] })
    };
    0
}
