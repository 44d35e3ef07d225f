//! The backend interface shared by the riscv64 backend (the product) and the x86_64 backend
//! (copy-through, for development and measurement), and the choice of the one that runs here.
//!
//! A backend turns one decoded [`GuestBlock`] into host code placed at a known address, reports the
//! places where that code leaves the block for a known guest address (link sites), knows how to
//! patch a link site into a direct jump, and knows how to enter generated code from Rust.
//!
//! Contract of generated code with the dispatcher:
//! - It is entered by [`Backend::enter`] with the guest state in `ctx.cpu` and leaves by storing the
//!   guest state back into `ctx.cpu`, an exit code into `ctx.exit_reason` (see [`crate::ctx::exit`])
//!   and returning from `enter`.
//! - Every exit for a direct branch goes through a link site: a patchable jump of
//!   [`Backend::LINK_SITE_LEN`] bytes whose initial target is a stub that sets `cpu.rip` to the guest
//!   target, `exit_arg` to the site's address and exits with `LOOKUP`.
//! - Indirect branches look the target up in the table at `ctx.lookup` (`index = pc & mask`, entry
//!   `{guest, host}`) inline and exit with `LOOKUP` (`exit_arg = 0`) on a miss.
//! - When `enter` returns, `ctx.cpu` is exact, flags included.

use crate::cpuid::Features;
use crate::frontend::GuestBlock;

#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub mod riscv64;

/// The backend that runs on this host.
#[cfg(target_arch = "x86_64")]
pub type HostBackend = x86_64::X86Backend;
/// The backend that runs on this host.
#[cfg(target_arch = "riscv64")]
pub type HostBackend = riscv64::Riscv64Backend;

/// [`LinkSite::target`] of an inline cache: a site whose target is only known at run time (an
/// indirect branch), filled once by [`Backend::fill_inline_cache`].
pub const INDIRECT: u64 = u64::MAX;

/// A direct exit of a translated block that can be linked to the target's translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkSite {
    /// Offset of the patchable jump within the block's host code.
    pub offset: u32,
    /// Guest address it leads to.
    pub target: u64,
}

/// What a backend produced for one block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Translated {
    /// Direct exits, linkable.
    pub link_sites: Vec<LinkSite>,
}

/// Why a backend could not translate a block at all. (An instruction it does not support is not an
/// error: the block ends before it with an exit that reports it, so it fails only if it runs.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranslateError {
    /// The host code would not fit in `limit` bytes.
    TooLarge,
}

/// A code generator for one host ISA.
pub trait Backend: Send {
    /// Name for messages ("riscv64", "x86_64").
    const NAME: &'static str;
    /// Size in bytes of a patchable link site.
    const LINK_SITE_LEN: usize;

    /// Create the backend, probing the host's optional extensions.
    fn new() -> Self
    where
        Self: Sized;

    /// The x86 features this backend translates; CPUID advertises exactly these.
    fn features(&self) -> Features;

    /// Translate `block` into `out` (appending) as code that will run at host address `base`.
    fn translate(
        &mut self,
        block: &GuestBlock,
        base: u64,
        out: &mut Vec<u8>,
    ) -> Result<Translated, TranslateError>;

    /// Translate the trap stub of the native function `f` into `out` (appending) as code that will
    /// run at host address `base`: the arguments moved from the guest state to the host ABI by
    /// `f.plan`, a jump to this backend's native-call routine (outside the code cache: see
    /// "Native calls" in [`crate::dispatch`]), which calls `f.host`, moves the result back and
    /// performs the x86 `ret`. `f` stays alive at this address as long as the translator does,
    /// so the block may embed a pointer to it.
    fn translate_native(
        &mut self,
        f: &crate::bridge::NativeFn,
        base: u64,
        out: &mut Vec<u8>,
    ) -> Result<Translated, TranslateError>;

    /// Encode into `out` a jump at host address `site` to host address `target`, exactly
    /// [`Self::LINK_SITE_LEN`] bytes. `None` if `target` is out of reach.
    fn encode_link(&self, site: u64, target: u64, out: &mut [u8]) -> Option<()>;

    /// Fill the inline cache whose link site is `site` (reported with target [`INDIRECT`]) so that
    /// the indirect branch jumps straight to `host` when its target is `guest`; the writes go
    /// through `patch(address, bytes)`. Afterwards the site is an ordinary link site to `guest`:
    /// restoring its original bytes sends the branch back to the lookup table. Returns `false`
    /// if the backend has no inline cache there.
    fn fill_inline_cache(&mut self, _site: u64, _guest: u64, _host: u64, _patch: &mut dyn FnMut(u64, &[u8])) -> bool {
        false
    }

    /// Make `len` bytes of freshly written code at `start` visible to instruction fetch.
    fn flush_icache(&self, start: u64, len: usize);

    /// The host-offset → guest-PC entries of the block last translated (see [`crate::fault`]),
    /// taken by the dispatcher after each `translate`. A backend that returns none gets no fault
    /// mapping for its blocks.
    fn take_pc_map(&mut self) -> Vec<crate::fault::PcEntry> {
        Vec::new()
    }

    /// Run generated code at `code` until it exits to the dispatcher.
    ///
    /// # Safety
    /// `ctx` must be a live, exclusively borrowed context whose `lookup` table is valid, and `code`
    /// must be the start of a block produced by this backend and still in the cache.
    unsafe fn enter(ctx: *mut crate::ctx::ThreadCtx, code: u64)
    where
        Self: Sized;

    /// The process now runs a second guest thread. A backend whose code for one thread differs
    /// from its code for several (riscv64 without Ztso: fences for x86's store order) switches
    /// and returns `true`, so the dispatcher drops every translation made so far.
    fn threads_started(&mut self) -> bool {
        false
    }
}
