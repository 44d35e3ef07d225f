//! Callbacks: guest functions that native code calls.
//!
//! A native function whose manifest signature has function-pointer parameters (`qsort`,
//! `pthread_create`, `__cxa_atexit`, `bsearch`...) is bound through a *wrapper stub*: host code
//! that saves the argument registers, replaces each guest function pointer among them by a *host
//! trampoline* for that guest function and signature (made once and cached), and jumps to the
//! native function ([`ldnc_wrap_args`]). A null pointer stays null; a bridged native function's
//! trap stub becomes the native function itself; any other non-guest pointer passes unchanged.
//!
//! A trampoline, when native code calls it, enters [`ldnc_callback`] on the calling host thread:
//! the arguments move from the host registers and stack to the guest's by `abi::plan_callback`,
//! the guest function runs in a *nested* run loop (native → guest → native → guest nests to any
//! depth on one host thread), and returns to a guest address in the bridge region that ends the
//! nested loop; the result moves back. Around the nested run the thread's [`ThreadCtx`] is saved
//! and restored whole: the outer translated code's entry state (host stack, FS, the native call's
//! saved guest RSP) must survive.
//!
//! Where the nested guest frames go: on riscv64 native code runs on the host stack, so the guest
//! stack below the RSP the native-call routine saved is free; on x86_64 native code runs on the
//! guest stack itself, so the guest frames go [`X86_GAP`] below the native frames (the Rust frames
//! of the nested loop live in between). A host thread that native code created has no guest state
//! until it first calls a trampoline: then it gets a [`ThreadCtx`], its own guest stack, a TCB with
//! the program's static TLS, and is registered like any guest thread.
//!
//! A guest function pointer that native code finds any other way (a struct field, a table, a
//! global) is not wrapped: the host's call jumps to a guest address, which is never host
//! executable, and faults. The fault handler ([`redirect_host_call`]) turns that into the same
//! callback entry with the guest address (tagged, bit 63) in place of a descriptor, and the call
//! is made with a generic signature: six integer arguments, the SSE registers on x86_64, and an
//! integer result (the manifests' `field` records are not consulted yet, so on riscv64 a callback
//! reached this way that takes or returns floating-point values gets wrong ones).
//!
//! Not yet: a host function pointer called by guest code, `longjmp` or a C++ exception out of a
//! callback through native frames, and variadic or `long double` callback signatures (a native
//! function taking one is not bound).

#[cfg_attr(target_arch = "x86_64", path = "arch/x86_64.rs")]
#[cfg_attr(target_arch = "riscv64", path = "arch/riscv64.rs")]
pub mod arch;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use abi::{CallPlan, Ext, GuestLoc, HostLoc, Loc, Signature, Ty};
use translator::bridge::insert;
use translator::{Gpr, ThreadCtx, TrapTable};

use crate::mem::{host_mmap, SharedMap};
use arch::Frame;

/// On x86_64, how far below the native frames nested guest frames start.
const X86_GAP: u64 = 512 << 10;
/// Guest stack of a host thread that native code created.
const THREAD_STACK: u64 = 8 << 20;
/// Host-executable memory for trampolines and wrapper stubs.
const STUB_REGION: u64 = 4 << 20;

/// What a nested loop reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nested {
    /// The guest function returned.
    Returned,
    /// The guest ended the process with this status.
    Exit(i32),
    /// The guest thread ended (`exit` of a cloned thread).
    ThreadExit,
}

/// What callbacks need from the runtime, installed once by [`install`].
pub struct Runtime {
    /// Run `ctx` until it returns to [`return_address`].
    pub nested: unsafe fn(&mut ThreadCtx) -> Nested,
    /// A host thread is about to run guest code for the first time (the translator's
    /// `threads_starting`), and one that did has ended (`thread_ended`).
    pub thread_start: fn(),
    pub thread_end: unsafe fn(&mut ThreadCtx),
    /// The guest memory record (is a pointer guest code?).
    pub mem: SharedMap,
    /// The trap stubs (a bridged function passed as a callback becomes the native one).
    pub traps: Arc<dyn TrapTable>,
    /// A fresh TCB with the program's static TLS for a new thread; its FS base.
    pub new_tcb: fn() -> Result<u64, String>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Guest address (in the bridge region) whose `ud2` ends a nested loop.
static RETURN_ADDRESS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// The guest state of the guest thread this host thread runs.
    static CURRENT: Cell<*mut ThreadCtx> = const { Cell::new(core::ptr::null_mut()) };
    /// Top of this thread's own guest stack (a thread native code created), or 0.
    static OWN_STACK: Cell<u64> = const { Cell::new(0) };
    /// Callbacks running on this thread (nested loops).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Ends a lazily made guest thread when its host thread exits.
    static LAZY: LazyThread = const { LazyThread(Cell::new(core::ptr::null_mut())) };
}

/// Install the runtime hooks (once per process).
pub fn install(rt: Runtime) {
    let _ = RUNTIME.set(rt);
}

/// Set the guest address that ends nested loops.
pub fn set_return_address(a: u64) {
    RETURN_ADDRESS.store(a, std::sync::atomic::Ordering::Relaxed);
}

/// The guest address that ends nested loops (0 before a bridged program is set up).
pub fn return_address() -> u64 {
    RETURN_ADDRESS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Record `ctx` as the guest state of this host thread.
pub fn set_current(ctx: *mut ThreadCtx) {
    CURRENT.with(|c| c.set(ctx));
}

/// The guest state of this host thread's guest thread (null on a thread that never ran guest
/// code).
pub fn current() -> *mut ThreadCtx {
    CURRENT.with(Cell::get)
}

/// A guest function called by native code: its address and how the arguments travel.
#[derive(Debug)]
pub struct CallbackDesc {
    pub guest: u64,
    pub plan: CallPlan,
}

/// A native function taking function pointers. `real` must stay the first word: the wrap entry
/// routine reads it.
#[derive(Debug)]
#[repr(C)]
pub struct WrapDesc {
    pub real: u64,
    /// Each function-pointer argument: where it is when the native function is called, and the
    /// signature native code calls it with.
    pub params: Vec<(ArgLoc, Arc<Signature>)>,
}

/// Where an argument is at the native call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgLoc {
    /// `Frame::int[i]`.
    Int(usize),
    /// This many bytes into the stack arguments.
    Stack(u32),
}

/// Host-executable stub memory and the caches.
struct Stubs {
    heap: linked_list_allocator::Heap,
    trampolines: HashMap<(u64, String), u64>,
}

// SAFETY: the heap's raw pointers point into a region this module owns for the process's life;
// it is only used under the `STUBS` mutex.
unsafe impl Send for Stubs {}

static STUBS: Mutex<Option<Stubs>> = Mutex::new(None);

/// Place a host stub (`arch::stub`) leading to `entry` with `desc`; its address.
pub(crate) fn place_stub(desc: u64, entry: u64) -> Result<u64, String> {
    let mut g = STUBS.lock().map_err(|_| "stub lock poisoned")?;
    if g.is_none() {
        let rwx = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
        // SAFETY: no MAP_FIXED: only free address space is used.
        let region = unsafe { host_mmap(0, STUB_REGION, rwx, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) }
            .map_err(|e| format!("cannot map the trampoline region: {}", std::io::Error::from_raw_os_error(e)))?;
        let mut heap = linked_list_allocator::Heap::empty();
        // SAFETY: the region was just mapped for this heap alone and lives for the process.
        unsafe { heap.init(region as *mut u8, STUB_REGION as usize) };
        *g = Some(Stubs { heap, trampolines: HashMap::new() });
    }
    let s = g.as_mut().ok_or("no stub region")?;
    let code = arch::stub(desc, entry);
    let layout = std::alloc::Layout::from_size_align(code.len(), 16).map_err(|e| e.to_string())?;
    let p = s.heap.allocate_first_fit(layout).map_err(|()| "the trampoline region is full".to_string())?;
    // SAFETY: `p` is `code.len()` bytes of the RWX region, just allocated.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), p.as_ptr(), code.len()) };
    arch::flush_icache(p.as_ptr() as u64, code.len());
    Ok(p.as_ptr() as u64)
}

/// Whether a callback plan only uses moves [`ldnc_callback`] performs.
fn callback_plan_ok(plan: &CallPlan) -> bool {
    plan.args.iter().chain(&plan.ret).all(|m| {
        matches!(m.ext, Ext::Copy64 | Ext::Bits(_) | Ext::Sext(_) | Ext::Zext(_) | Ext::F32 | Ext::F64)
            && !matches!(m.from, Loc::Guest(GuestLoc::St0))
            && !matches!(m.to, Loc::Guest(GuestLoc::St0))
    })
}

/// The host trampoline for guest function `guest` called with `sig` (cached).
pub fn trampoline(guest: u64, sig: &Signature) -> Result<u64, String> {
    let key = (guest, sig.to_string());
    if let Some(&t) = STUBS.lock().ok().as_ref().and_then(|g| g.as_ref()).and_then(|s| s.trampolines.get(&key)) {
        return Ok(t);
    }
    let plan = abi::plan_callback(sig).map_err(|e| e.to_string())?;
    if !callback_plan_ok(&plan) {
        return Err(format!("callback signature {sig} needs a conversion callbacks do not do yet"));
    }
    let desc = Box::leak(Box::new(CallbackDesc { guest, plan }));
    let t = place_stub(desc as *const CallbackDesc as u64, arch::ldnc_cb_entry as *const () as u64)?;
    if let Ok(mut g) = STUBS.lock() {
        if let Some(s) = g.as_mut() {
            s.trampolines.insert(key, t);
        }
    }
    log::debug!(target: "ldnc::bridge", "trampoline {t:#x} for guest {guest:#x} {sig}");
    Ok(t)
}

/// A wrapper stub for native function `real` with signature `sig` whose function-pointer
/// arguments must become trampolines; `plan` is its call plan. `Err` says why it cannot be done.
pub fn wrapper(real: u64, sig: &Signature, plan: &CallPlan) -> Result<u64, String> {
    if sig.params.iter().any(|t| matches!(t, Ty::Agg(_) | Ty::LongDouble | Ty::F128)) || plan.args.len() != sig.params.len() {
        return Err("function-pointer arguments beside aggregates or long double are not wrapped yet".into());
    }
    let mut params = Vec::new();
    for (ty, m) in sig.params.iter().zip(&plan.args) {
        let Ty::FnPtr(cb) = ty else { continue };
        abi::plan_callback(cb).map_err(|e| format!("callback {cb}: {e}")).and_then(|p| {
            callback_plan_ok(&p).then_some(()).ok_or_else(|| format!("callback {cb} needs a conversion"))
        })?;
        params.push((arg_loc(m.from, m.to).ok_or("a function pointer in an unexpected place")?, Arc::new((**cb).clone())));
    }
    let desc = Box::leak(Box::new(WrapDesc { real, params }));
    place_stub(desc as *const WrapDesc as u64, arch::ldnc_wrap_entry as *const () as u64)
}

/// Where the wrap routine finds an argument the plan moves `from` (guest) `to` (host).
fn arg_loc(from: Loc, to: Loc) -> Option<ArgLoc> {
    if cfg!(target_arch = "x86_64") {
        // One ABI: the guest location is the host's.
        match from {
            Loc::Guest(GuestLoc::Gpr { reg, byte: 0 }) => arch_int_slot(reg).map(ArgLoc::Int),
            Loc::Guest(GuestLoc::Stack(off)) => u32::try_from(off - 8).ok().map(ArgLoc::Stack),
            _ => None,
        }
    } else {
        match to {
            Loc::Host(HostLoc::X(n)) if (10..18).contains(&n) => Some(ArgLoc::Int(usize::from(n - 10))),
            Loc::Host(HostLoc::Stack(off)) => Some(ArgLoc::Stack(off)),
            _ => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn arch_int_slot(reg: u8) -> Option<usize> {
    arch::int_slot(reg)
}
#[cfg(not(target_arch = "x86_64"))]
fn arch_int_slot(_reg: u8) -> Option<usize> {
    None
}

/// The native value for a function pointer the guest passes.
fn to_native(p: u64, sig: &Signature, rt: &Runtime) -> u64 {
    if p == 0 {
        return 0;
    }
    if let Some(f) = rt.traps.native_at(p) {
        return f.host;
    }
    if !rt.mem.borrow().any_exec(p, p + 1) {
        return p;
    }
    trampoline(p, sig).unwrap_or_else(|e| {
        eprintln!("ld-nc: cannot pass guest function {p:#x} to native code: {e}");
        // SAFETY: _exit ends the process; no state to keep.
        unsafe { libc::_exit(127) }
    })
}

/// A host-callable address for function pointer `p` that the guest handed to ld-nc: a guest
/// function's trampoline, a bridged function's native address, or `p` itself.
pub fn callable(p: u64, sig: &Signature) -> Result<u64, String> {
    let rt = RUNTIME.get().ok_or("the bridge is not set up")?;
    if p == 0 {
        return Err("a null function pointer".into());
    }
    Ok(to_native(p, sig, rt))
}

/// Called by the wrap entry routine: replace guest function pointers in the saved arguments.
///
/// # Safety
/// Called only by `ldnc_wrap_entry` with its descriptor, its frame and the native call's stack
/// arguments.
#[no_mangle]
pub unsafe extern "C" fn ldnc_wrap_args(desc: &WrapDesc, frame: &mut Frame, stack: *mut u64) {
    let Some(rt) = RUNTIME.get() else { return };
    for (loc, sig) in &desc.params {
        let slot: &mut u64 = match *loc {
            ArgLoc::Int(i) => &mut frame.int[i],
            // SAFETY: the plan put this argument at this offset of the caller's stack arguments.
            ArgLoc::Stack(off) => unsafe { &mut *stack.add(off as usize / 8) },
        };
        *slot = to_native(*slot, sig, rt);
    }
}

/// Ends a guest thread made for a host thread when that host thread exits.
struct LazyThread(Cell<*mut ThreadCtx>);

impl Drop for LazyThread {
    fn drop(&mut self) {
        let ctx = self.0.get();
        if ctx.is_null() {
            return;
        }
        if let Some(rt) = RUNTIME.get() {
            // SAFETY: the context was leaked for this thread and nothing else uses it now.
            unsafe { (rt.thread_end)(&mut *ctx) };
        }
        crate::threads::unregister_current();
    }
}

/// This host thread's guest state, made on first use for a thread native code created.
fn current_ctx(rt: &Runtime) -> Result<*mut ThreadCtx, String> {
    let c = CURRENT.with(Cell::get);
    if !c.is_null() {
        return Ok(c);
    }
    (rt.thread_start)();
    let mut ctx = ThreadCtx::new();
    ctx.cpu.fs_base = (rt.new_tcb)()?;
    ctx.cpu.mxcsr = 0x1f80;
    ctx.cpu.fcw = 0x37f;
    ctx.cpu.rflags = 0x202;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: no MAP_FIXED: only free address space is used.
    let stack = unsafe { host_mmap(0, THREAD_STACK, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0) }
        .map_err(|e| format!("cannot map a guest stack: {}", std::io::Error::from_raw_os_error(e)))?;
    rt.mem.borrow_mut().insert(stack, stack + THREAD_STACK, crate::mem::PROT_READ | crate::mem::PROT_WRITE);
    // Headroom above the first frame: an x86_64 variadic native call copies stack words above
    // its caller's frame (bridge::X86_UNKNOWN_STACK_ARGS).
    OWN_STACK.with(|s| s.set(stack + THREAD_STACK - 1024));
    crate::threads::register_current();
    let p = Box::into_raw(ctx);
    CURRENT.with(|c| c.set(p));
    LAZY.with(|l| l.0.set(p));
    Ok(p)
}

/// Tag of a guest address passed to the callback entry in place of a descriptor (the fault path).
const FAULT_TAG: u64 = 1 << 63;

/// From ld-nc's SIGSEGV handler: the host jumped to `pc`. If that is guest code and the runtime
/// is a bridged one, make the handler's return enter the callback routine for it (see the module
/// doc) and say so. Async-signal-safe: atomics, a non-blocking read of the guest map, registers.
pub fn redirect_host_call(pc: u64, uc: *mut libc::c_void) -> bool {
    let Some(rt) = RUNTIME.get() else { return false };
    let Some(m) = rt.mem.try_borrow() else { return false };
    if !m.any_exec(pc, pc + 1) {
        return false;
    }
    drop(m);
    let entry = arch::ldnc_cb_entry as *const () as u64;
    // SAFETY: `uc` is the ucontext the kernel passed to the handler; the scratch register that
    // carries a stub's descriptor (R11 / t2) is not an argument register.
    unsafe {
        let uc = uc.cast::<libc::ucontext_t>();
        #[cfg(target_arch = "x86_64")]
        {
            (*uc).uc_mcontext.gregs[libc::REG_R11 as usize] = (pc | FAULT_TAG) as i64;
            (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] = entry as i64;
        }
        #[cfg(target_arch = "riscv64")]
        {
            (*uc).uc_mcontext.__gregs[7] = pc | FAULT_TAG;
            (*uc).uc_mcontext.__gregs[0] = entry;
        }
    }
    true
}

/// The descriptor for a guest function reached through the fault path: the generic signature.
fn fault_desc(pc: u64) -> Result<&'static CallbackDesc, String> {
    static GENERIC: Mutex<Option<HashMap<u64, &'static CallbackDesc>>> = Mutex::new(None);
    let mut g = GENERIC.lock().map_err(|_| "callback cache poisoned")?;
    let map = g.get_or_insert_with(HashMap::new);
    if let Some(d) = map.get(&pc) {
        return Ok(d);
    }
    let sig = abi::parse_sig("(p,p,p,p,p,p)->p").map_err(|e| e.to_string())?;
    let mut plan = abi::plan_callback(&sig).map_err(|e| e.to_string())?;
    // Stack arguments are unknown: copy some (x86_64 passes them through unchanged).
    plan.guest_stack = 64;
    let d: &'static CallbackDesc = Box::leak(Box::new(CallbackDesc { guest: pc, plan }));
    map.insert(pc, d);
    Ok(d)
}

/// Called by a trampoline through the callback entry routine: run the guest function. `desc` is
/// a [`CallbackDesc`], or a guest address tagged with [`FAULT_TAG`] (the fault path).
///
/// # Safety
/// Called only by `ldnc_cb_entry` with its descriptor, its frame and the native call's stack
/// arguments.
#[no_mangle]
pub unsafe extern "C" fn ldnc_callback(desc: u64, frame: &mut Frame, stack: *const u64) {
    let desc: &CallbackDesc = if desc & FAULT_TAG != 0 {
        match fault_desc(desc & !FAULT_TAG) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("ld-nc: native code called guest function {:#x}: {e}", desc & !FAULT_TAG);
                // SAFETY: _exit ends the process.
                unsafe { libc::_exit(127) }
            }
        }
    } else {
        // SAFETY: a trampoline passes its leaked descriptor.
        unsafe { &*(desc as *const CallbackDesc) }
    };
    let Some(rt) = RUNTIME.get() else {
        eprintln!("ld-nc: native code called a guest function before the bridge was set up");
        // SAFETY: _exit ends the process.
        unsafe { libc::_exit(127) }
    };
    let ctxp = match current_ctx(rt) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ld-nc: {e}");
            // SAFETY: _exit ends the process.
            unsafe { libc::_exit(127) }
        }
    };
    // SAFETY: this thread's own context; nothing else touches it while this thread is here.
    let ctx = unsafe { &mut *ctxp };
    // SAFETY: ThreadCtx is plain data; the copy is written back below, whole.
    let saved: ThreadCtx = unsafe { core::ptr::read(ctx) };
    let own = OWN_STACK.with(Cell::get);
    let depth = DEPTH.with(Cell::get);
    let top = if own != 0 && depth == 0 {
        // The first guest frame of a thread native code made.
        own
    } else if cfg!(target_arch = "x86_64") {
        (frame as *const Frame as u64).saturating_sub(X86_GAP)
    } else {
        // The native-call routine stored the guest RSP; below it the guest stack is free.
        ctx.cpu.get(Gpr::Rsp).saturating_sub(256)
    };
    // SAFETY: `top` lies in a guest stack with room below it; `stack` holds the native caller's
    // stack arguments per the plan.
    unsafe { enter_guest(ctx, desc, frame, stack, top & !15) };
    DEPTH.with(|d| d.set(depth + 1));
    // SAFETY: as above.
    let end = unsafe { (rt.nested)(ctx) };
    DEPTH.with(|d| d.set(depth));
    match end {
        Nested::Returned => {}
        // SAFETY: _exit: exit_group semantics from inside a callback.
        Nested::Exit(code) => unsafe { libc::_exit(code) },
        Nested::ThreadExit => {
            eprintln!("ld-nc: a guest thread ended inside a callback from native code (not supported yet)");
            // SAFETY: _exit ends the process.
            unsafe { libc::_exit(127) }
        }
    }
    leave_guest(ctx, desc, frame);
    // SAFETY: restores the state read above.
    unsafe { core::ptr::write(ctx, saved) };
}

/// Guest registers and stack for the call: arguments, then the return address that ends the
/// nested loop.
///
/// # Safety
/// `top` must be a writable guest stack address with room for the arguments below it; `stack`
/// must point at the caller's stack arguments.
unsafe fn enter_guest(ctx: &mut ThreadCtx, desc: &CallbackDesc, frame: &Frame, stack: *const u64, top: u64) {
    let plan = &desc.plan;
    let rsp = (top - u64::from(plan.guest_stack)) & !15;
    let rsp = rsp - 8;
    // SAFETY: inside the guest stack (contract).
    unsafe { (rsp as *mut u64).write(return_address()) };
    let cpu = &mut ctx.cpu;
    cpu.set(Gpr::Rsp, rsp);
    cpu.rip = desc.guest;
    cpu.rflags &= !(1 << 10); // DF clear at a function entry (SysV ABI)
    #[cfg(target_arch = "x86_64")]
    {
        let _ = plan;
        for (i, r) in [7usize, 6, 2, 1, 8, 9, 0].into_iter().enumerate() {
            cpu.gpr[r] = frame.int[i];
        }
        cpu.xmm[..8].copy_from_slice(&frame.xmm);
        for w in 0..(desc.plan.guest_stack / 8) as usize {
            // SAFETY: the caller's stack arguments, copied above the return address.
            unsafe { ((rsp + 8 + 8 * w as u64) as *mut u64).write(stack.add(w).read()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for m in &plan.args {
        let v = match m.from {
            Loc::Host(HostLoc::X(n)) => frame.int.get(usize::from(n.wrapping_sub(10))).copied().unwrap_or(0),
            Loc::Host(HostLoc::F(n)) => frame.fp.get(usize::from(n.wrapping_sub(10))).copied().unwrap_or(0),
            // SAFETY: the plan's host stack offset lies in the caller's stack arguments.
            Loc::Host(HostLoc::Stack(off)) => unsafe { stack.add(off as usize / 8).read() },
            _ => 0,
        };
        put_guest(cpu, rsp, m.to, m.ext, v);
    }
}

/// Write `v` (extended by `ext`) to guest location `to`; `rsp` is the callee's RSP at entry.
#[cfg(not(target_arch = "x86_64"))]
fn put_guest(cpu: &mut translator::CpuState, rsp: u64, to: Loc, ext: Ext, v: u64) {
    match to {
        Loc::Guest(GuestLoc::Gpr { reg, byte }) => {
            if let Some(r) = cpu.gpr.get_mut(usize::from(reg)) {
                *r = insert(*r, v, byte, ext);
            }
        }
        Loc::Guest(GuestLoc::Xmm { reg, byte }) => {
            if let Some(x) = cpu.xmm.get_mut(usize::from(reg)).and_then(|x| x.get_mut(usize::from(byte / 8))) {
                *x = insert(*x, v, byte % 8, ext);
            }
        }
        Loc::Guest(GuestLoc::Stack(off)) => {
            // SAFETY: the plan's guest stack offsets lie in the argument area reserved above the
            // return address.
            unsafe { ((rsp as i64 + i64::from(off)) as *mut u64).write(insert(0, v, 0, ext)) };
        }
        _ => {}
    }
}

/// Results from the guest registers to the frame the entry routine returns from.
fn leave_guest(ctx: &ThreadCtx, desc: &CallbackDesc, frame: &mut Frame) {
    let cpu = &ctx.cpu;
    if cfg!(target_arch = "x86_64") {
        let _ = desc;
        frame.ret_int = [cpu.gpr[0], cpu.gpr[2]];
        frame.ret_fp = [cpu.xmm[0][0], cpu.xmm[1][0]];
        return;
    }
    for m in &desc.plan.ret {
        let v = match m.from {
            Loc::Guest(GuestLoc::Gpr { reg, byte }) => cpu.gpr.get(usize::from(reg)).map_or(0, |r| r >> (8 * u32::from(byte))),
            Loc::Guest(GuestLoc::Xmm { reg, byte }) => {
                cpu.xmm.get(usize::from(reg)).and_then(|x| x.get(usize::from(byte / 8))).map_or(0, |x| x >> (8 * u32::from(byte % 8)))
            }
            _ => 0,
        };
        let v = match m.ext {
            // NaN-boxed on the host.
            Ext::F32 => 0xffff_ffff_0000_0000 | (v & 0xffff_ffff),
            e => insert(0, v, 0, e),
        };
        match m.to {
            Loc::Host(HostLoc::X(n)) => {
                if let Some(r) = frame.ret_int.get_mut(usize::from(n.wrapping_sub(10))) {
                    *r = v;
                }
            }
            Loc::Host(HostLoc::F(n)) => {
                if let Some(r) = frame.ret_fp.get_mut(usize::from(n.wrapping_sub(10))) {
                    *r = v;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_and_insertion() {
        assert_eq!(insert(0, 0xffff_ffff, 0, Ext::Sext(32)), u64::MAX);
        assert_eq!(insert(0, 0x1_8000_0000, 0, Ext::Zext(32)), 0x8000_0000);
        assert_eq!(insert(0x1111_2222_3333_4444, 0xab, 1, Ext::Bits(8)), 0x1111_2222_3333_ab44);
        assert_eq!(insert(0x1111_2222_3333_4444, 0xdead_beef, 4, Ext::F32), 0xdead_beef_3333_4444);
        assert_eq!(insert(5, 7, 0, Ext::Copy64), 7);
    }

    #[test]
    fn a_stub_carries_its_descriptor_and_entry() {
        let s = arch::stub(0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00);
        let find = |v: u64| s.windows(8).any(|w| w == v.to_le_bytes());
        assert!(find(0x1122_3344_5566_7788) && find(0x99aa_bbcc_ddee_ff00));
    }
}
