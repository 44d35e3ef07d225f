//! The dispatcher: finds or makes the translation of the next guest address, links blocks, enters
//! generated code, and turns its exits into [`Exit`]s for the runtime (or handles them itself, as it
//! does CPUID).

use crate::cache::{BlockInfo, BlockMap, CodeMemory};
use crate::ctx::{exit, ThreadCtx};
use crate::frontend::{self, CodeSource};
use crate::isa::Backend;
use crate::fault::FaultMap;
use crate::smc::SmcState;
use crate::{Error, Exit, Unsupported};
use std::sync::Arc;

/// Default size of the code cache.
pub const DEFAULT_CACHE_SIZE: usize = 256 << 20;

/// Largest host code one block may need; the cache is flushed when less than this is free.
const MAX_BLOCK_HOST_BYTES: usize = 64 << 10;

/// Translator state shared by the guest threads of one process.
pub struct Translator<B: Backend> {
    backend: B,
    source: Box<dyn CodeSource>,
    code: CodeMemory,
    map: BlockMap,
    scratch: Vec<u8>,
    smc: Arc<SmcState>,
    faults: Arc<FaultMap>,
    perf_map: Option<std::fs::File>,
    /// Number of blocks translated so far (for statistics and tests).
    pub blocks_translated: u64,
    /// Number of full cache flushes so far.
    pub flushes: u64,
}

impl<B: Backend> std::fmt::Debug for Translator<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator")
            .field("backend", &B::NAME)
            .field("blocks", &self.map.blocks.len())
            .finish()
    }
}

impl<B: Backend> Translator<B> {
    /// A translator reading guest code from `source`.
    pub fn new(source: Box<dyn CodeSource>) -> Result<Self, Error> {
        Self::with_cache_size(source, DEFAULT_CACHE_SIZE)
    }

    /// As [`Translator::new`] with a chosen code-cache size.
    pub fn with_cache_size(source: Box<dyn CodeSource>, size: usize) -> Result<Self, Error> {
        let mut map = BlockMap::default();
        let smc = Arc::new(SmcState::default());
        smc.set_lookup(map.lookup.as_mut_ptr());
        Ok(Translator {
            backend: B::new(),
            source,
            code: CodeMemory::new(size).map_err(Error::CacheMap)?,
            map,
            scratch: Vec::with_capacity(MAX_BLOCK_HOST_BYTES),
            smc,
            faults: Arc::new(FaultMap::new().ok_or_else(|| Error::CacheMap(std::io::Error::last_os_error()))?),
            perf_map: None,
            blocks_translated: 0,
            flushes: 0,
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Write `/tmp/perf-PID.map` (the Linux perf JIT symbol map) naming each block by its guest
    /// address, so `perf report` attributes samples in the code cache to guest code.
    pub fn enable_perf_map(&mut self) -> std::io::Result<()> {
        let path = format!("/tmp/perf-{}.map", std::process::id());
        self.perf_map = Some(std::fs::File::create(path)?);
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

    /// Drop translations of pages the guest wrote to since the last call.
    fn apply_guest_writes(&mut self) {
        let mut pages = Vec::new();
        if self.smc.drain(|p| pages.push(p)).is_err() {
            self.flush();
            return;
        }
        for p in pages {
            self.invalidate(p, p + crate::cache::PAGE_SIZE);
        }
    }

    /// CPUID as the guest sees it.
    pub fn cpuid(&self, leaf: u32, sub: u32) -> crate::cpuid::CpuidResult {
        crate::cpuid::query(self.backend.features(), leaf, sub)
    }

    /// Throw away translations of guest code in `[start, end)` (the guest wrote to it, or unmapped
    /// or re-protected it).
    pub fn invalidate(&mut self, start: u64, end: u64) {
        for (site, bytes) in self.map.invalidate(start, end) {
            self.code.patch(site, &bytes);
            self.backend.flush_icache(site, bytes.len());
        }
    }

    /// Throw away every translation.
    pub fn flush(&mut self) {
        self.map.clear();
        self.code.reset();
        self.faults.clear();
        self.flushes += 1;
    }

    fn translate(&mut self, pc: u64) -> Result<u64, Exit> {
        if self.code.free() < MAX_BLOCK_HOST_BYTES || !self.faults.has_room(frontend::MAX_BLOCK_INSNS * 4) {
            self.flush();
        }
        let block = frontend::decode_block(self.source.as_ref(), pc);
        if block.insns.is_empty() {
            match block.end {
                frontend::BlockEnd::Unfetchable(_) => return Err(Exit::NotExecutable),
                frontend::BlockEnd::Undecodable(_) => return Err(Exit::InvalidOpcode),
                _ => {}
            }
        }
        self.scratch.clear();
        let base = (self.code.cursor() + 15) & !15;
        let t = self
            .backend
            .translate(&block, base, &mut self.scratch)
            .map_err(|_| Exit::Unsupported(self.unsupported_at(pc)))?;
        let host = self.code.push(&self.scratch).ok_or(Exit::Unsupported(self.unsupported_at(pc)))?;
        debug_assert_eq!(host, base);
        self.backend.flush_icache(host, self.scratch.len());
        self.faults.push(host, host + self.scratch.len() as u64, &self.backend.take_pc_map());
        let out_links = t
            .link_sites
            .iter()
            .map(|s| {
                let site = host + u64::from(s.offset);
                let at = s.offset as usize;
                (site, s.target, self.scratch[at..at + B::LINK_SITE_LEN].to_vec())
            })
            .collect();
        let (_, guest_end) = block.guest_range();
        let volatile = self.source.watch_code(pc, guest_end);
        self.map.insert(pc, BlockInfo { host, guest_end, out_links, in_links: Vec::new(), volatile });
        self.blocks_translated += 1;
        if let Some(f) = self.perf_map.as_mut() {
            use std::io::Write;
            // Best effort: a failed write only loses profiling names.
            let _ = writeln!(f, "{host:x} {:x} guest_{pc:x}", self.scratch.len());
        }
        log::trace!(target: "translator", "block {pc:#x} -> {host:#x} ({} insns)", block.insns.len());
        Ok(host)
    }

    fn lookup_or_translate(&mut self, pc: u64) -> Result<u64, Exit> {
        match self.map.get(pc) {
            Some(h) => {
                self.map.refresh_lookup(pc, h);
                Ok(h)
            }
            None => self.translate(pc),
        }
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
            let code = &mut self.code;
            let backend = &mut self.backend;
            let mut writes: Vec<(u64, Vec<u8>)> = Vec::new();
            if !backend.fill_inline_cache(site, target_guest, target_host, &mut |at, bytes| writes.push((at, bytes.to_vec()))) {
                return;
            }
            for (at, bytes) in writes {
                code.patch(at, &bytes);
                backend.flush_icache(at, bytes.len());
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

    fn unsupported_at(&self, pc: u64) -> Unsupported {
        match frontend::decode_one(self.source.as_ref(), pc) {
            Some(i) => Unsupported {
                pc,
                bytes: i.bytes().to_vec(),
                text: frontend::format(&i.insn),
            },
            None => Unsupported { pc, bytes: Vec::new(), text: "(undecodable)".into() },
        }
    }

    /// Run guest code from `ctx.cpu.rip` until something the runtime must handle.
    ///
    /// # Safety
    /// Guest memory must be mapped as the [`CodeSource`] describes, and guest code may write any
    /// memory the guest owns: the caller vouches that the guest state in `ctx` belongs to a guest
    /// whose memory is laid out in this process.
    pub unsafe fn run(&mut self, ctx: &mut ThreadCtx) -> Exit {
        ctx.lookup = self.map.lookup.as_ptr();
        ctx.lookup_mask = BlockMap::MASK;
        let mut link_from = 0u64;
        loop {
            self.apply_guest_writes();
            let pc = ctx.cpu.rip;
            let host = match self.lookup_or_translate(pc) {
                Ok(h) => h,
                Err(e) => return e,
            };
            if link_from != 0 {
                self.link(link_from, pc, host);
            }
            ctx.cache_epoch = self.flushes;
            // SAFETY: `ctx` is exclusively ours, its lookup table is the live one, `host` was
            // produced by this backend and is in the cache.
            unsafe { B::enter(ctx, host) };
            link_from = 0;
            match ctx.exit_reason {
                exit::LOOKUP => link_from = ctx.exit_arg,
                exit::SYSCALL => return Exit::Syscall,
                exit::CPUID => crate::cpuid::execute(&mut ctx.cpu, self.backend.features()),
                exit::BREAKPOINT => return Exit::Breakpoint,
                exit::PRIVILEGED => return Exit::Privileged,
                exit::INVALID_OPCODE => return Exit::InvalidOpcode,
                exit::DIVIDE_ERROR => return Exit::DivideError,
                exit::NOT_EXECUTABLE => return Exit::NotExecutable,
                exit::FAULT => return Exit::Fault(ctx.fault),
                exit::INTERRUPT => return Exit::Interrupted,
                _ => return Exit::Unsupported(self.unsupported_at(ctx.cpu.rip)),
            }
        }
    }
}
