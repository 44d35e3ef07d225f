//! The dispatcher: finds or makes the translation of the next guest address, links blocks, enters
//! generated code, and turns its exits into [`Exit`]s for the runtime (or handles them itself, as it
//! does CPUID).
//!
//! # Threads
//! One [`Translator`] serves every guest thread of the process, and translated code runs with no
//! lock held: guest threads run truly in parallel.
//!
//! - **Per thread**: the [`ThreadCtx`] (guest CPU state, host save area, exit words), owned by its
//!   host thread and passed to [`Translator::run`]; its [`ThreadSlot`] (in translated code or not).
//! - **Shared, under the translator lock** (`inner`): the backend, the code memory, the block map
//!   (blocks, pages, link sites) and the code source. Translation, linking, invalidation and
//!   flushing happen only under it, so they are serialised among themselves; a thread running
//!   translated code never takes it and meets it only at a block boundary (an exit to the
//!   dispatcher).
//! - **Shared, read without the lock**: the indirect-branch table (generated code probes it
//!   inline; entries are published with atomic stores, tag last: see `BlockMap::publish`), the
//!   fault map (append-only, read by signal handlers), the SMC page queue (atomics).
//!
//! Code another thread may be executing is never freed or rewritten except by single atomic link
//! patches ([`CodeMemory::patch`]: a link, an unlink, an inline-cache fill — each one aligned
//! store, in an order whose every prefix is a correct block):
//! - invalidation (SMC, munmap, mprotect) unlinks every site jumping into a victim *and* the
//!   victim's own exits, and drops it from the table; a thread inside a victim finishes that block
//!   and comes back to the dispatcher. The memory stays until the next reuse.
//! - reusing the code memory (it is full) is a stop-the-world at block boundaries: the flushing
//!   thread holds the lock, kicks every thread marked in translated code (the runtime's kick sends
//!   a signal whose handler redirects it to the dispatcher at the next guest instruction boundary)
//!   and waits until none is. Threads mark themselves in code only while holding the lock, so
//!   none can enter stale code after the check. This design was chosen over epochs with retired
//!   regions because reuse is rare (256 MiB of code) and it keeps the fault map, which signal
//!   handlers read, a single append-only array.
//! - **Native calls** (trap stubs, see [`crate::bridge`]): a thread calling a bridged host
//!   function may stay there for long (a blocking `read`) and may re-enter guest code (a
//!   callback runs a nested [`Translator::run`]), so it must not count as "in translated code",
//!   and nothing it returns to may be in reusable cache memory. The stub's block (in the cache)
//!   only moves the arguments and jumps to its backend's fixed native-call routine (hand-written,
//!   in the binary's text: `ldnc_x86_native`, `ldnc_rv_native`), which stores the guest RSP in
//!   `ctx.cpu` (for callbacks), clears `in_code` (through `ctx.slot`), calls the host function,
//!   moves the result back, then sets `in_code` again, executes a full fence and reads the
//!   global reuse-pending word ([`REUSE_PENDING`]). The flusher does the mirror image: it
//!   raises the word, executes a full fence, then waits for every `in_code` to be false
//!   (Dekker: at least one side sees the other's store). If a reuse is pending the routine
//!   leaves for the dispatcher with LOOKUP at the guest return address (which waits for the lock
//!   and so for the reuse to finish); otherwise it performs the `ret` itself: pop the return
//!   address, probe the lookup table inline (which only ever names live code) and jump there or
//!   exit with LOOKUP on a miss. The routine never holds a cache address across the call.
//! - `threads_starting` (the second thread is about to exist) runs while the caller is still the
//!   only thread, so the backend may switch to its multi-thread code (riscv64 fences) and drop the
//!   old translations at once.

use crate::bridge::{NativeFn, TrapTable};
use crate::cache::{BlockInfo, BlockMap, CodeMemory, LookupEntry};
use crate::cpuid::Features;
use crate::ctx::{exit, ThreadCtx};
use crate::frontend::{self, CodeSource};
use crate::isa::Backend;
use crate::fault::FaultMap;
use crate::smc::SmcState;
use crate::{Error, Exit, Unsupported};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Default size of the code cache.
pub const DEFAULT_CACHE_SIZE: usize = 256 << 20;

/// Largest host code one block may need; the cache is flushed when less than this is free.
const MAX_BLOCK_HOST_BYTES: usize = 64 << 10;

/// Non-zero while some translator is reusing its code memory (a count: flushes of several
/// translators may overlap). Read by the backends' native-call routines after a native call
/// returns (see "Native calls" in the module docs); a spurious exit it causes is harmless.
pub static REUSE_PENDING: AtomicU32 = AtomicU32::new(0);

/// A guest thread as the dispatcher knows it: whether it is executing translated code now, and
/// its host thread id (so a stop-the-world flush can interrupt it).
#[derive(Debug, Default)]
#[repr(C)]
pub struct ThreadSlot {
    in_code: AtomicBool,
    /// Set (from a signal handler) when the runtime has work for this thread that cannot wait for
    /// its next exit — a guest signal arrived while it ran native code: the native-call routine
    /// then exits with INTERRUPT when the native function returns, and clears it.
    attention: AtomicBool,
    tid: AtomicI32,
}

/// Offset of the `in_code` byte in [`ThreadSlot`] (written by the native-call routines).
pub const OFF_IN_CODE: usize = core::mem::offset_of!(ThreadSlot, in_code);
/// Offset of the `attention` byte in [`ThreadSlot`] (read and cleared by the native-call routines).
pub const OFF_ATTENTION: usize = core::mem::offset_of!(ThreadSlot, attention);

/// From a signal handler on the thread itself: make its current (or next) native call stop for
/// the runtime when it returns (see [`ThreadSlot`]'s `attention`). Async-signal-safe: on x86_64 the
/// thread's context is found through GS and thread-locals are never touched (FS may be the
/// guest's); on riscv64 (TP is always the host's) through a thread-local.
pub fn request_attention_here() {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: reading GS base has no side effect (FSGSBASE is enabled: the backend uses it).
        let gs: u64 = unsafe {
            let v: u64;
            core::arch::asm!("rdgsbase {}", out(reg) v, options(nomem, nostack));
            v
        };
        // GS is the context from entry to exit, native calls included. Outside (GS 0) the thread
        // is in the runtime, which checks for signals itself, or in the few instructions of
        // `ldnc_x86_enter` where FS is already the guest's: thread-locals are not reachable there,
        // so nothing more is done.
        if gs != 0 {
            // SAFETY: a non-zero GS base is an entered context, recognised by its magic word.
            unsafe {
                use crate::isa::x86_64::regs::{MAGIC, SLOT_MAGIC};
                if *(gs as *const u64).byte_add(SLOT_MAGIC) == MAGIC {
                    let slot = (*(gs as *const ThreadCtx)).slot;
                    if !slot.is_null() {
                        (*slot).attention.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let p = CURRENT_SLOT.with(|c| c.get());
        if !p.is_null() {
            // SAFETY: a slot stays alive until its thread ends (see `thread_ended`): this thread.
            unsafe { (*p).attention.store(true, Ordering::SeqCst) };
        }
    }
}

impl ThreadSlot {
    /// Whether the thread is executing translated code now (false inside a native call).
    pub fn in_code(&self) -> bool {
        self.in_code.load(Ordering::Acquire)
    }
}

/// Translator state shared by the guest threads of one process (see the module docs for what is
/// shared and how it is protected).
pub struct Translator<B: Backend> {
    inner: Mutex<Inner<B>>,
    /// The indirect-branch table, read by generated code without the lock.
    lookup: *const LookupEntry,
    smc: Arc<SmcState>,
    faults: Arc<FaultMap>,
    features: Features,
    /// Every guest thread that has run code and not ended, for stop-the-world flushes.
    threads: Mutex<Vec<Arc<ThreadSlot>>>,
    /// Called with a host tid to make that thread leave translated code soon (the runtime sends
    /// it a signal whose handler redirects it to the dispatcher).
    kick: AtomicUsize,
    multithreaded: AtomicBool,
    blocks_translated: AtomicU64,
    flushes: AtomicU64,
}

// SAFETY: `lookup` points into the table owned by `inner` (boxed, never moved or freed while the
// translator lives); it is written only under the `inner` lock with atomic stores (see
// `BlockMap::publish`) and read by generated code, so sharing the pointer is sound.
unsafe impl<B: Backend> Sync for Translator<B> {}
// SAFETY: as above; everything else is Send.
unsafe impl<B: Backend> Send for Translator<B> {}

/// What the lock protects.
struct Inner<B: Backend> {
    backend: B,
    source: Box<dyn CodeSource + Send + Sync>,
    code: CodeMemory,
    map: BlockMap,
    scratch: Vec<u8>,
    perf_map: Option<std::fs::File>,
    /// The trap stubs (bridged native functions), if the runtime set them.
    traps: Option<Arc<dyn TrapTable>>,
    /// Every native function a block was made for: blocks embed their address, and a thread may
    /// be inside one of their calls across any flush, so they live as long as the translator.
    natives: Vec<Arc<NativeFn>>,
}

impl<B: Backend> std::fmt::Debug for Translator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator")
            .field("backend", &B::NAME)
            .field("blocks_translated", &self.blocks_translated())
            .finish()
    }
}

impl<B: Backend> Translator<B> {
    /// A translator reading guest code from `source`.
    pub fn new(source: Box<dyn CodeSource + Send + Sync>) -> Result<Self, Error> {
        Self::with_cache_size(source, DEFAULT_CACHE_SIZE)
    }

    /// As [`Translator::new`] with a chosen code-cache size.
    pub fn with_cache_size(source: Box<dyn CodeSource + Send + Sync>, size: usize) -> Result<Self, Error> {
        let mut map = BlockMap::default();
        let smc = Arc::new(SmcState::default());
        smc.set_lookup(map.lookup.as_mut_ptr());
        let lookup = map.lookup.as_ptr();
        let backend = B::new();
        let features = backend.features();
        Ok(Translator {
            inner: Mutex::new(Inner {
                backend,
                source,
                code: CodeMemory::new(size).map_err(Error::CacheMap)?,
                map,
                scratch: Vec::with_capacity(MAX_BLOCK_HOST_BYTES),
                perf_map: None,
                traps: None,
                natives: Vec::new(),
            }),
            lookup,
            smc,
            faults: Arc::new(FaultMap::new().ok_or_else(|| Error::CacheMap(std::io::Error::last_os_error()))?),
            features,
            threads: Mutex::new(Vec::new()),
            kick: AtomicUsize::new(0),
            multithreaded: AtomicBool::new(false),
            blocks_translated: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<B>> {
        // A panic while translating leaves nothing half-published that later users would trip
        // on (blocks are published last), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The x86 features the backend translates.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Number of blocks translated so far (statistics and tests).
    pub fn blocks_translated(&self) -> u64 {
        self.blocks_translated.load(Ordering::Relaxed)
    }

    /// Number of times the code memory was emptied and reused.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Write `/tmp/perf-PID.map` (the Linux perf JIT symbol map) naming each block by its guest
    /// address, so `perf report` attributes samples in the code cache to guest code.
    pub fn enable_perf_map(&self) -> std::io::Result<()> {
        let path = format!("/tmp/perf-{}.map", std::process::id());
        self.lock().perf_map = Some(std::fs::File::create(path)?);
        Ok(())
    }

    /// The map a host signal handler uses to find the guest instruction of a faulting host PC.
    pub fn fault_map(&self) -> Arc<FaultMap> {
        Arc::clone(&self.faults)
    }

    /// The handle the runtime's write-fault handler reports guest writes to watched code through.
    pub fn smc(&self) -> Arc<SmcState> {
        Arc::clone(&self.smc)
    }

    /// Set how a stop-the-world flush makes a thread (by host tid) leave translated code: the
    /// runtime sends it a signal whose handler redirects it to the dispatcher at the next guest
    /// instruction boundary (see `Exit::Interrupted`).
    pub fn set_kick(&self, kick: fn(i32)) {
        self.kick.store(kick as usize, Ordering::Release);
    }

    /// Set the table of trap stubs: from now on a block at an address it names is the native call
    /// of that function (see [`crate::bridge`]). Set once before running; setting it again later
    /// affects blocks translated afterwards (drop older ones with [`Self::flush`] if needed).
    pub fn set_traps(&self, traps: Arc<dyn TrapTable>) {
        self.lock().traps = Some(traps);
    }

    /// The process is about to get its second guest thread. Called by the thread creating it,
    /// before the new thread exists (so this is still the only thread in translated code and the
    /// code memory can be reused at once): a backend that translates differently for several
    /// threads (riscv64 fences) switches, and what it translated before is dropped.
    pub fn threads_starting(&self) {
        if self.multithreaded.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut g = self.lock();
        if g.backend.threads_started() {
            self.flush_locked(&mut g);
        }
    }

    /// Run `fork` (a host fork(2)) with the translator's locks held, so the child — where only the
    /// calling thread exists — finds them free and consistent; in the child (`fork` returned 0)
    /// only the calling thread's registration is kept.
    pub fn fork_locked(&self, fork: &mut dyn FnMut() -> i32) -> i32 {
        let g = self.lock();
        let mut list = self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let pid = fork();
        if pid == 0 {
            let me = self.current_slot_ptr();
            list.retain(|t| core::ptr::eq(Arc::as_ptr(t), me));
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            list.iter().for_each(|t| t.tid.store(tid, Ordering::Relaxed));
        }
        drop(list);
        drop(g);
        pid
    }

    /// Whether a second guest thread was ever started.
    pub fn is_multithreaded(&self) -> bool {
        self.multithreaded.load(Ordering::Acquire)
    }

    /// CPUID as the guest sees it.
    pub fn cpuid(&self, leaf: u32, sub: u32) -> crate::cpuid::CpuidResult {
        crate::cpuid::query(self.features, leaf, sub)
    }

    /// Throw away translations of guest code in `[start, end)` (the guest wrote to it, or unmapped
    /// or re-protected it). Threads executing them leave at their next block exit: nothing jumps
    /// into or between the victims any more, and their memory is not reused until a flush.
    pub fn invalidate(&self, start: u64, end: u64) {
        let mut g = self.lock();
        g.invalidate(start, end);
    }

    /// Throw away every translation. Safe while other threads run translated code: the blocks are
    /// unlinked and forgotten, their memory stays until the next stop-the-world reuse.
    pub fn flush(&self) {
        let mut g = self.lock();
        g.forget_all();
    }

    /// Empty the code memory now for reuse (what happens by itself when it is full), stopping
    /// the world as described at [`Self::flush_locked`].
    pub fn reuse_memory(&self) {
        let mut g = self.lock();
        self.flush_locked(&mut g);
    }

    /// Empty the code memory for reuse. Other threads may be executing it, so first every other
    /// thread must be outside translated code: each one inside is kicked (and kicked again every
    /// millisecond) until it leaves; it then waits for this lock like any thread entering the
    /// dispatcher. Threads only mark themselves "in code" while holding the lock, so none can
    /// enter old code after the check.
    ///
    /// Threads inside a native call are not in code and mark themselves again without the lock,
    /// so the wait is bracketed by [`REUSE_PENDING`] (see "Native calls" in the module docs):
    /// raised and fenced before the first look at `in_code`, lowered once the memory is reset.
    fn flush_locked(&self, g: &mut Inner<B>) {
        REUSE_PENDING.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        self.wait_out_of_code();
        g.map.clear();
        g.code.reset();
        self.faults.clear();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        REUSE_PENDING.fetch_sub(1, Ordering::Release);
    }

    /// Wait until no other thread is in translated code, kicking those that are.
    fn wait_out_of_code(&self) {
        let me = self.current_slot_ptr();
        let mut kicked_at: Option<std::time::Instant> = None;
        loop {
            let busy: Vec<i32> = {
                let list = self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                list.iter()
                    .filter(|t| !core::ptr::eq(Arc::as_ptr(t), me) && t.in_code.load(Ordering::Acquire))
                    .map(|t| t.tid.load(Ordering::Relaxed))
                    .collect()
            };
            if busy.is_empty() {
                break;
            }
            if kicked_at.is_none_or(|t| t.elapsed() > std::time::Duration::from_millis(1)) {
                let k = self.kick.load(Ordering::Acquire);
                if k != 0 {
                    // SAFETY: only ever stored from a `fn(i32)` in `set_kick`.
                    let kick: fn(i32) = unsafe { core::mem::transmute::<usize, fn(i32)>(k) };
                    busy.iter().for_each(|&t| kick(t));
                }
                kicked_at = Some(std::time::Instant::now());
            }
            std::thread::yield_now();
        }
    }

    fn current_slot_ptr(&self) -> *const ThreadSlot {
        CURRENT_SLOT.with(|c| c.get())
    }

    fn translate(&self, g: &mut Inner<B>, pc: u64) -> Result<u64, Exit> {
        if g.code.free() < MAX_BLOCK_HOST_BYTES || !self.faults.has_room(frontend::MAX_BLOCK_INSNS * 4) {
            self.flush_locked(g);
        }
        let g = &mut *g;
        if let Some(f) = g.traps.as_ref().and_then(|t| t.native_at(pc)) {
            return self.translate_native(g, pc, f);
        }
        let (block, volatile) = read_block_watched(g.source.as_ref(), pc);
        if block.insns.is_empty() {
            match block.end {
                frontend::BlockEnd::Unfetchable(_) => return Err(Exit::NotExecutable),
                frontend::BlockEnd::Undecodable(_) => return Err(Exit::InvalidOpcode),
                _ => {}
            }
        }
        g.scratch.clear();
        let base = (g.code.cursor() + 15) & !15;
        let t = match g.backend.translate(&block, base, &mut g.scratch) {
            Ok(t) => t,
            Err(_) => return Err(Exit::Unsupported(unsupported_at(g.source.as_ref(), pc))),
        };
        let Some(host) = g.code.push(&g.scratch) else {
            return Err(Exit::Unsupported(unsupported_at(g.source.as_ref(), pc)));
        };
        debug_assert_eq!(host, base);
        g.backend.flush_icache(host, g.scratch.len());
        self.faults.push(host, host + g.scratch.len() as u64, &g.backend.take_pc_map());
        let out_links = t
            .link_sites
            .iter()
            .map(|s| {
                let site = host + u64::from(s.offset);
                let at = s.offset as usize;
                (site, s.target, g.scratch[at..at + B::LINK_SITE_LEN].to_vec())
            })
            .collect();
        let (_, guest_end) = block.guest_range();
        g.map.insert(pc, BlockInfo { host, guest_end, out_links, in_links: Vec::new(), volatile });
        self.blocks_translated.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = g.perf_map.as_mut() {
            use std::io::Write;
            // Best effort: a failed write only loses profiling names.
            let _ = writeln!(f, "{host:x} {:x} guest_{pc:x}", g.scratch.len());
        }
        log::trace!(target: "translator", "block {pc:#x} -> {host:#x} ({} insns)", block.insns.len());
        Ok(host)
    }

    /// The block of the trap stub at `pc`: the native call of `f`, placed and published like any
    /// block (so links and inline caches reach it directly).
    fn translate_native(&self, g: &mut Inner<B>, pc: u64, f: Arc<NativeFn>) -> Result<u64, Exit> {
        let refuse = |why: &str| {
            log::error!(target: "translator", "cannot bridge {} (trap stub {pc:#x}): {why}", f.name);
            Exit::Unsupported(Unsupported { pc, bytes: Vec::new(), text: format!("native call of {}: {why}", f.name) })
        };
        g.scratch.clear();
        let base = (g.code.cursor() + 15) & !15;
        let t = match g.backend.translate_native(&f, base, &mut g.scratch) {
            Ok(t) => t,
            Err(e) => return Err(refuse(&format!("{e:?}"))),
        };
        let Some(host) = g.code.push(&g.scratch) else { return Err(refuse("code cache full")) };
        debug_assert_eq!(host, base);
        g.backend.flush_icache(host, g.scratch.len());
        self.faults.push(host, host + g.scratch.len() as u64, &g.backend.take_pc_map());
        if !g.natives.iter().any(|n| Arc::ptr_eq(n, &f)) {
            g.natives.push(Arc::clone(&f));
        }
        let out_links = t
            .link_sites
            .iter()
            .map(|s| {
                let at = s.offset as usize;
                (host + u64::from(s.offset), s.target, g.scratch[at..at + B::LINK_SITE_LEN].to_vec())
            })
            .collect();
        g.map.insert(pc, BlockInfo { host, guest_end: pc + 1, out_links, in_links: Vec::new(), volatile: false });
        self.blocks_translated.fetch_add(1, Ordering::Relaxed);
        if let Some(out) = g.perf_map.as_mut() {
            use std::io::Write;
            // Best effort: a failed write only loses profiling names.
            let _ = writeln!(out, "{host:x} {:x} native_{}", g.scratch.len(), f.name);
        }
        log::trace!(target: "translator", "trap stub {pc:#x} ({}) -> {host:#x}", f.name);
        Ok(host)
    }

    fn lookup_or_translate(&self, g: &mut Inner<B>, pc: u64) -> Result<u64, Exit> {
        match g.map.get(pc) {
            Some(h) => {
                g.map.refresh_lookup(pc, h);
                Ok(h)
            }
            None => self.translate(g, pc),
        }
    }

    /// This thread's slot, registered on first use.
    fn slot(&self, ctx: &mut ThreadCtx) -> *const ThreadSlot {
        if !ctx.slot.is_null() {
            return ctx.slot;
        }
        let s = Arc::new(ThreadSlot::default());
        // SAFETY: gettid has no preconditions.
        s.tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
        ctx.slot = Arc::as_ptr(&s);
        self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(s);
        ctx.slot
    }

    /// The guest thread of `ctx` has ended: forget its slot.
    pub fn thread_ended(&self, ctx: &mut ThreadCtx) {
        let me = core::mem::replace(&mut ctx.slot, core::ptr::null());
        self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|t| !core::ptr::eq(Arc::as_ptr(t), me));
    }

    /// Run guest code from `ctx.cpu.rip` until something the runtime must handle.
    ///
    /// # Safety
    /// Guest memory must be mapped as the [`CodeSource`] describes, and guest code may write any
    /// memory the guest owns: the caller vouches that the guest state in `ctx` belongs to a guest
    /// whose memory is laid out in this process. `ctx` belongs to the calling host thread.
    pub unsafe fn run(&self, ctx: &mut ThreadCtx) -> Exit {
        ctx.lookup = self.lookup;
        ctx.lookup_mask = BlockMap::MASK;
        let slot_ptr = self.slot(ctx);
        CURRENT_SLOT.with(|c| c.set(slot_ptr));
        // SAFETY: the slot stays in `threads` until `thread_ended`, which only this thread calls,
        // after its last `run`.
        let slot = unsafe { &*slot_ptr };
        let mut link_from = 0u64;
        loop {
            let host = {
                let mut g = self.lock();
                g.apply_guest_writes(&self.smc);
                let pc = ctx.cpu.rip;
                let host = match self.lookup_or_translate(&mut g, pc) {
                    Ok(h) => h,
                    Err(e) => return e,
                };
                if link_from != 0 {
                    g.link(link_from, pc, host);
                }
                // Marked while the lock is held, so a stop-the-world flush (which holds it) never
                // misses a thread about to enter code it is reusing.
                slot.in_code.store(true, Ordering::SeqCst);
                ctx.cache_epoch = self.flushes();
                host
            };
            // SAFETY: `ctx` is exclusively ours, its lookup table is the live one, `host` was
            // produced by this backend and is in the cache, which is not reused while `in_code`.
            unsafe { B::enter(ctx, host) };
            slot.in_code.store(false, Ordering::Release);
            link_from = 0;
            match ctx.exit_reason {
                exit::LOOKUP => link_from = ctx.exit_arg,
                exit::SYSCALL => return Exit::Syscall,
                exit::CPUID => crate::cpuid::execute(&mut ctx.cpu, self.features),
                exit::BREAKPOINT => return Exit::Breakpoint,
                exit::PRIVILEGED => return Exit::Privileged,
                exit::INVALID_OPCODE => return Exit::InvalidOpcode,
                exit::DIVIDE_ERROR => return Exit::DivideError,
                exit::NOT_EXECUTABLE => return Exit::NotExecutable,
                exit::FAULT => return Exit::Fault(ctx.fault),
                exit::INTERRUPT => return Exit::Interrupted,
                _ => return Exit::Unsupported(unsupported_at(self.lock().source.as_ref(), ctx.cpu.rip)),
            }
        }
    }
}

thread_local! {
    /// The slot of the guest thread running on this host thread (for `flush_locked` to skip
    /// itself).
    static CURRENT_SLOT: core::cell::Cell<*const ThreadSlot> = const { core::cell::Cell::new(core::ptr::null()) };
}

/// Decode the block at `pc` and have the runtime watch its code for writes. Code on a page the
/// guest can write may change between the read and the moment the page is watched (another
/// thread writing it, which does not fault yet): so once watched, the bytes are read again, and
/// the block decoded again until two reads agree — from then on any write faults and invalidates.
fn read_block_watched(source: &dyn CodeSource, pc: u64) -> (frontend::GuestBlock, bool) {
    let mut block = frontend::decode_block(source, pc);
    loop {
        if block.insns.is_empty() {
            return (block, false);
        }
        let (_, end) = block.guest_range();
        if !source.watch_code(pc, end) {
            return (block, false);
        }
        let again = frontend::decode_block(source, pc);
        let same = again.insns.len() == block.insns.len()
            && again.insns.iter().zip(&block.insns).all(|(a, b)| a.bytes() == b.bytes());
        if same {
            return (block, true);
        }
        block = again;
    }
}

fn unsupported_at(source: &dyn CodeSource, pc: u64) -> Unsupported {
    match frontend::decode_one(source, pc) {
        Some(i) => Unsupported { pc, bytes: i.bytes().to_vec(), text: frontend::format(&i.insn) },
        None => Unsupported { pc, bytes: Vec::new(), text: "(undecodable)".into() },
    }
}

impl<B: Backend> Inner<B> {
    /// Drop translations of pages the guest wrote to since the last call.
    fn apply_guest_writes(&mut self, smc: &SmcState) {
        let mut pages = Vec::new();
        if smc.drain(|p| pages.push(p)).is_err() {
            self.forget_all();
            return;
        }
        for p in pages {
            self.invalidate(p, p + crate::cache::PAGE_SIZE);
        }
    }

    fn invalidate(&mut self, start: u64, end: u64) {
        for (site, bytes) in self.map.invalidate(start, end) {
            self.code.patch(site, &bytes);
            self.backend.flush_icache(site, bytes.len());
        }
    }

    /// Forget every block without reusing its memory: every link site goes back to its exit
    /// stub first, so a thread inside any of them leaves at the block's end.
    fn forget_all(&mut self) {
        for (site, bytes) in self.map.unlink_all() {
            self.code.patch(site, &bytes);
            self.backend.flush_icache(site, bytes.len());
        }
        self.map.clear();
    }

    fn link(&mut self, site: u64, target_guest: u64, target_host: u64) {
        // Only sites still recorded in a live block are patched: the block holding `site` may have
        // been invalidated or flushed since it exited.
        let Some((owner, idx)) = self.map.site(site) else { return };
        let recorded = self.map.blocks.get(&owner).map_or(0, |b| b.out_links[idx].1);
        match self.map.blocks.get(&target_guest) {
            Some(t) if !t.volatile => {}
            _ => return,
        }
        if recorded == crate::isa::INDIRECT {
            let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
            if !self.backend.fill_inline_cache(site, target_guest, target_host, &mut |at, bytes| writes.push((at, bytes.to_vec()))) {
                return;
            }
            // In the backend's order: each prefix of the writes leaves a correct block.
            for (at, bytes) in writes {
                self.code.patch(at, &bytes);
                self.backend.flush_icache(at, bytes.len());
            }
            if let Some(b) = self.map.blocks.get_mut(&owner) {
                b.out_links[idx].1 = target_guest;
            }
        } else {
            if recorded != target_guest {
                return;
            }
            let mut bytes = vec![0u8; B::LINK_SITE_LEN];
            if self.backend.encode_link(site, target_host, &mut bytes).is_none() {
                return;
            }
            self.code.patch(site, &bytes);
            self.backend.flush_icache(site, bytes.len());
        }
        if let Some(t) = self.map.blocks.get_mut(&target_guest) {
            t.in_links.push(site);
        }
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "bridge_exec_tests.rs"]
mod bridge_tests;
