//! Setting up a dynamic program that ld-nc links itself (`LDNC_BRIDGE=1`): map it, link it with
//! [`crate::elf::linker`] against the native libraries of [`super::Bridge`], build the start-up
//! routines ([`super::start`]), give the first thread its TLS block and x86_64 TCB, then finish
//! as any program (stack, auxv) starting at the start-up routine.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{start, Bridge};
use crate::config::Config;
use crate::elf::dso::Dso;
use crate::elf::linker::{self, HostSide, LinkError, SearchPath};
use crate::elf::load::PIE_BASE_HINT;
use crate::mem::{host_mmap, GuestMap, SharedMap, PROT_READ, PROT_WRITE};
use crate::run::Guest;

/// Bytes of the x86_64 TCB ld-nc builds (glibc's `tcbhead_t` is 0x40 bytes before its private
/// part; guest code reads the self pointer at 0 and 0x10, the stack guard at 0x28 and the
/// pointer guard at 0x30).
const TCB_SIZE: u64 = 0x100;
/// `tcbhead_t.stack_guard`.
const TCB_STACK_GUARD: u64 = 0x28;
/// `tcbhead_t.pointer_guard`.
const TCB_POINTER_GUARD: u64 = 0x30;

/// Link `cfg.prog` with native libraries and build its process.
pub fn setup(cfg: &Config, env: Vec<(OsString, OsString)>) -> Result<Guest, String> {
    let mem = SharedMap::new(GuestMap::new());
    crate::mem::set_native_heap();
    let mut bridge = Bridge::new(
        &mut mem.borrow_mut(),
        super::manifest_dirs(cfg.manifests.as_deref()),
        cfg.emulate.clone(),
    )?;
    bridge.host_dirs = cfg.host_library_path.as_deref().map(|v| std::env::split_paths(v).collect()).unwrap_or_default();
    let prog = Dso::open(&cfg.prog, &mut mem.borrow_mut(), PIE_BASE_HINT)?;
    let (image, loaded) = (prog.image.clone(), prog.loaded);
    let search = SearchPath {
        ld_library_path: guest_library_path(&env),
        root: cfg.guest_root.clone().or_else(|| cfg!(target_arch = "x86_64").then(|| PathBuf::from("/"))),
    };
    // `__libc_start_main` binds to a forwarder now and to its routine once the link is done.
    let lsm = bridge.place_code(&start::forwarder(0))?;
    bridge.handlers.insert("__libc_start_main".into(), lsm);
    let tga = bridge.place_code(&start::forwarder(0))?;
    bridge.handlers.insert("__tls_get_addr".into(), tga);
    super::handlers::install(&mut bridge)?;
    let linked = linker::link(prog, &mut mem.borrow_mut(), &search, &mut bridge).map_err(|e| explain(e, &bridge))?;
    log::info!(
        target: "ldnc::load",
        "{}: linked by ld-nc: {} guest objects, {} native libraries",
        cfg.prog.display(),
        linked.objects.len(),
        linked.scope.len() - linked.objects.len()
    );

    let mut slot_cache = std::collections::HashMap::new();
    for (name, copy, host_var) in &linked.host_copies {
        if let Err(e) = super::interpose::interpose(name, *host_var, *copy, &mut slot_cache) {
            log::warn!(target: "ldnc::bridge", "{name}: the native library keeps its own copy: {e}");
        }
    }
    let exit = bridge
        .lookup("libc.so.6", "exit", None)
        .ok_or("the native libc has no usable `exit`")?
        .0;
    let mut environ = Vec::new();
    if let Some((a, _)) = bridge.lookup("libc.so.6", "environ", None) {
        environ.push(a);
    }
    for name in [&b"environ"[..], b"__environ"] {
        if let Some((_, s)) = linked.objects[0].lookup(name, None) {
            environ.push(linked.objects[0].addr(s.value));
        }
    }
    let routine = bridge.place_code(&start::libc_start_main(&environ, &linked.program_init, &linked.fini, exit))?;
    // SAFETY: the forwarder's imm64 (bytes 2..10 of `mov rax, imm64`) lies in the region, which
    // no thread runs yet.
    unsafe { ((lsm + 2) as *mut u64).write_unaligned(routine) };
    let entry = bridge.place_code(&start::startup(&linked.ifuncs, &linked.init, loaded.entry))?;
    // Module ids are 1-based load indices; each entry is minus the block's offset below TP.
    let table: Vec<u8> = std::iter::once(0u64)
        .chain(linked.tls.iter().map(|t| t.offset.wrapping_neg()))
        .flat_map(u64::to_le_bytes)
        .collect();
    let table = bridge.place_code(&table)?;
    let tga_routine = bridge.place_code(&super::handlers::tls_get_addr(table)?)?;
    // SAFETY: as for the `__libc_start_main` forwarder above.
    unsafe { ((tga + 2) as *mut u64).write_unaligned(tga_routine) };

    let _ = TLS.set(TlsLayout { slots: linked.tls.clone(), size: linked.tls_size, align: linked.tls_align });
    let fs = tls_block(&mut mem.borrow_mut())?;
    let _ = MEM.set(mem.clone());
    let mut guest = crate::run::finish(cfg, env, mem, &image, &loaded, entry, 0)?;
    guest.ctx.cpu.fs_base = fs;
    let sp = guest.ctx.cpu.get(translator::Gpr::Rsp);
    super::handlers::set_auxv_from_stack(sp);
    set_program_names(&mut bridge, sp);
    guest.traps = Some(bridge.traps());
    // The linker's state stays for dlopen and dlsym.
    super::dl::install(super::dl::DlState { bridge, linked, mem: guest.proc.mem.clone(), search });
    Ok(guest)
}

/// The native libc's idea of the program's name (`program_invocation_name`, its short form, and
/// their `__progname` aliases, which error messages print) is ld-nc's until told: point it at the
/// guest's `argv[0]` on its initial stack at `sp`.
fn set_program_names(bridge: &mut Bridge, sp: u64) {
    // SAFETY: the guest's initial stack: argc, then argv[0], a NUL-terminated string.
    let argv0 = unsafe { ((sp + 8) as *const u64).read() };
    if argv0 == 0 {
        return;
    }
    // SAFETY: as above.
    let name = unsafe { std::ffi::CStr::from_ptr(argv0 as *const libc::c_char) }.to_bytes();
    let short = argv0 + name.iter().rposition(|&c| c == b'/').map_or(0, |i| i as u64 + 1);
    for (var, value) in [("program_invocation_name", argv0), ("program_invocation_short_name", short)] {
        if let Some((addr, _)) = bridge.lookup("libc.so.6", var, None) {
            // SAFETY: the native libc's own `char *` variable (the glibc aliases share it).
            unsafe { (addr as *mut u64).write(value) };
        }
    }
}

/// A link error, with why the bridge refused a symbol that no guest object defines.
fn explain(e: LinkError, bridge: &Bridge) -> String {
    match &e {
        LinkError::Symbol { name, .. } => match bridge.refusal(name) {
            Some(why) => format!("{e}: the native library cannot take it yet: {why}"),
            None => e.to_string(),
        },
        _ => e.to_string(),
    }
}

/// The guest's `LD_LIBRARY_PATH` (ignored for a secure-execution process, as glibc's ld.so does).
fn guest_library_path(env: &[(OsString, OsString)]) -> Vec<PathBuf> {
    if crate::config::at_secure() {
        return Vec::new();
    }
    env.iter()
        .find(|(k, _)| k == "LD_LIBRARY_PATH")
        .map(|(_, v)| std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty()).collect())
        .unwrap_or_default()
}

/// The static TLS layout of the linked program, for every thread's block.
#[derive(Debug)]
struct TlsLayout {
    slots: Vec<linker::TlsSlot>,
    size: u64,
    align: u64,
}

static TLS: std::sync::OnceLock<TlsLayout> = std::sync::OnceLock::new();
static MEM: std::sync::OnceLock<SharedMap> = std::sync::OnceLock::new();

/// A TCB and static TLS block for a new thread; its FS base.
pub fn new_tcb() -> Result<u64, String> {
    let mem = MEM.get().ok_or("no linked program")?;
    let mut map = mem.borrow_mut();
    tls_block(&mut map)
}

/// A thread's static TLS and TCB (variant II: the blocks end where the TCB begins, which is the
/// thread pointer); returns the FS base.
fn tls_block(map: &mut GuestMap) -> Result<u64, String> {
    let l = TLS.get().ok_or("no TLS layout")?;
    let below = l.size.next_multiple_of(l.align.max(16));
    let len = (below + TCB_SIZE).next_multiple_of(crate::elf::PAGE);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: no MAP_FIXED: only free address space is used.
    let base = unsafe { host_mmap(0, len, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) }
        .map_err(|e| format!("cannot map the TLS block: {}", std::io::Error::from_raw_os_error(e)))?;
    map.insert(base, base + len, PROT_READ | PROT_WRITE);
    let tp = base + below;
    for t in &l.slots {
        let (image, filesz, off) = (t.image, t.filesz, t.offset);
        if filesz > 0 {
            // SAFETY: `[tp - off, + filesz)` lies in the block just mapped (the layout reserved
            // memsz >= filesz bytes there); the image is the object's mapped PT_TLS bytes.
            unsafe { core::ptr::copy_nonoverlapping(image as *const u8, (tp - off) as *mut u8, filesz as usize) };
        }
    }
    let mut guard = [0u8; 16];
    // SAFETY: a valid buffer; a short read leaves zeros, which only weakens the canary.
    unsafe { libc::getrandom(guard.as_mut_ptr().cast(), guard.len(), 0) };
    guard[0] = 0; // as glibc: the canary's low byte is zero, so string overflows stop at it.
    // SAFETY: the TCB words lie in the block just mapped.
    unsafe {
        (tp as *mut u64).write(tp);
        ((tp + 0x10) as *mut u64).write(tp);
        ((tp + TCB_STACK_GUARD) as *mut [u8; 8]).write(guard[..8].try_into().unwrap_or_default());
        ((tp + TCB_POINTER_GUARD) as *mut [u8; 8]).write(guard[8..].try_into().unwrap_or_default());
    }
    Ok(tp)
}
