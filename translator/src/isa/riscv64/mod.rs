//! The riscv64 backend: translation of x86-64 blocks to RV64GC (with Zba/Zbb when the host has
//! them), the entry trampoline and exit path that move guest state between `ThreadCtx` and the
//! pinned host registers, block linking, and the helpers generated code calls.
//!
//! Layout: `encode.rs` (formats and opcodes), `disasm.rs` (the printer tests use), `asm.rs` (the
//! code buffer), `regs.rs` (the register map), `flags.rs` (lazy flags), `lower.rs` (block driver,
//! operands, exits), `cond.rs` (conditions), `alu.rs` (arithmetic), `ctl.rs` (moves, stack,
//! control flow, strings), `atomic.rs` (locked and atomic read-modify-writes). `sse*.rs` and `x87*.rs` (SSE and x87 lowering) belong to
//! their own owners and plug into `Lower::insn` through one dispatch arm each.
//!
//! Memory order: x86 is TSO, RVWMO is weaker. On a host with Ztso (probed with `riscv_hwprobe`)
//! the hardware keeps x86's order and no fence is emitted. Otherwise, once the process runs a
//! second guest thread ([`Backend::threads_started`] switches [`Ext::tso_fences`] on and the
//! dispatcher drops every translation), guest loads and stores carry the fences of the
//! TSO → RVWMO mapping of the RISC-V unprivileged ISA manual, appendix "RVWMO Explanatory
//! Material", section "Code Porting and Mapping Guidelines", table "Mappings from TSO operations
//! to RISC-V operations" (riscv/riscv-isa-manual, `src/mm-eplan.adoc`):
//!
//! ```text
//!  x86 (TSO)          RVWMO
//!  load               l{b|h|w|d}; fence r,rw
//!  store              fence rw,w; s{b|h|w|d}
//!  atomic RMW         amo<op>.aqrl  (here also lr.aqrl / sc.rl loops, see atomic.rs)
//!  MFENCE             fence rw,rw   (SFENCE fence w,w, LFENCE fence r,r)
//! ```
//!
//! `Asm::i`/`Asm::s` add them to every load and store that is not relative to the context
//! register (the thread's own), so every lowering gets them; a call of a Rust helper that may
//! touch guest memory itself (`Lower::call_helper`, the x87 helper: FXSAVE, FNSTENV...) is
//! bracketed by `fence rw,rw` (the SSE helper works on operands staged in the context by fenced
//! generated code). A single-threaded
//! process runs unfenced code. `LDNC_TSO=auto|fence|off` overrides: `fence` fences from the start,
//! `off` never fences.
//!
//! Faults: every block reports where each guest instruction's code starts (`take_pc_map`), and
//! [`redirect_fault`] (riscv64 hosts) rebuilds the guest state from a host signal context.
//!
//! Encoding and translation are pure and compile on every host (their tests run natively); only
//! [`Riscv64Backend::enter`] needs a riscv64 host.

pub mod alu;
pub mod asm;
pub mod atomic;
pub mod cond;
pub mod ctl;
pub mod disasm;
pub mod encode;
pub mod flags;
pub mod lower;
pub mod native;
pub mod profile;
pub mod regs;
pub mod sse;
pub mod x87;

#[cfg(test)]
mod emit_tests;
#[cfg(test)]
mod atomic_tests;
#[cfg(all(test, target_arch = "riscv64"))]
mod exec_tests;

use crate::cpuid::Features;
use crate::frontend::GuestBlock;
use crate::isa::{Backend, TranslateError, Translated};
use asm::Ext;

/// Size of a patchable link site: `auipc t0, hi; jalr zero, lo(t0)`.
pub const LINK_SITE_LEN: usize = 8;

/// The riscv64 code generator.
#[derive(Debug, Default)]
pub struct Riscv64Backend {
    ext: Ext,
    /// Blocks translated (statistics).
    pub blocks: u64,
    /// Host bytes emitted (statistics).
    pub bytes: u64,
    /// Fault map entries of the block last translated.
    pc_map: Vec<crate::fault::PcEntry>,
    /// Count block executions (`LDNC_RISCV_PROFILE`, see `profile.rs`).
    profile: bool,
    /// Log every block's host code (`LDNC_RV_DUMP`), read once.
    dump: bool,
    /// The memory-order mode (`LDNC_TSO`), read once.
    tso: TsoMode,
}

/// When guest loads and stores carry TSO fences (`LDNC_TSO`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TsoMode {
    /// Not with Ztso; otherwise from the process's second thread on.
    #[default]
    Auto,
    /// Always (from the first translation).
    Fence,
    /// Never (a multi-threaded guest may then see RVWMO reorderings).
    Off,
}

/// Parse an `LDNC_TSO` value (`auto`, `fence` or `off`; anything else is `auto`).
pub fn parse_tso(s: &str) -> TsoMode {
    match s.trim() {
        "fence" => TsoMode::Fence,
        "off" => TsoMode::Off,
        _ => TsoMode::Auto,
    }
}

impl Riscv64Backend {
    /// A backend emitting code for exactly these extensions (tests, and hosts where probing is
    /// overridden).
    pub fn with_ext(ext: Ext) -> Riscv64Backend {
        Riscv64Backend { ext, blocks: 0, bytes: 0, pc_map: Vec::new(), profile: false, dump: false, tso: TsoMode::Auto }
    }

    /// Apply a memory-order mode: `Fence` fences from now on, the others start unfenced.
    pub fn set_tso(&mut self, mode: TsoMode) {
        self.tso = mode;
        self.ext.tso_fences = mode == TsoMode::Fence;
    }

    /// The extensions in use.
    pub fn ext(&self) -> Ext {
        self.ext
    }
}

/// Parse an `LDNC_RISCV_EXT` value: a comma-separated subset of `zba,zbb,zicond,zacas,ztso`, or
/// `none`.
pub fn parse_ext(s: &str) -> Ext {
    let mut e = Ext::default();
    for w in s.split(',').map(str::trim) {
        match w {
            "zba" => e.zba = true,
            "zbb" => e.zbb = true,
            "zicond" => e.zicond = true,
            "zacas" => e.zacas = true,
            "ztso" => e.ztso = true,
            _ => {}
        }
    }
    e
}

/// The host's extensions: `LDNC_RISCV_EXT` if set, else `riscv_hwprobe`, else none (RV64GC).
fn probe_ext() -> Ext {
    if let Some(v) = crate::env_knob("LDNC_RISCV_EXT") {
        return parse_ext(&v);
    }
    hwprobe()
}

#[cfg(target_arch = "riscv64")]
fn hwprobe() -> Ext {
    // struct riscv_hwprobe { s64 key; u64 value; }, key 4 = RISCV_HWPROBE_KEY_IMA_EXT_0.
    const SYS_RISCV_HWPROBE: libc::c_long = 258;
    const KEY_IMA_EXT_0: i64 = 4;
    const EXT_ZBA: u64 = 1 << 3;
    const EXT_ZBB: u64 = 1 << 4;
    const EXT_ZTSO: u64 = 1 << 33;
    const EXT_ZACAS: u64 = 1 << 34;
    const EXT_ZICOND: u64 = 1 << 35;
    let mut pair: [i64; 2] = [KEY_IMA_EXT_0, 0];
    // SAFETY: one key/value pair, no CPU set; the kernel writes only into `pair`.
    let r = unsafe { libc::syscall(SYS_RISCV_HWPROBE, pair.as_mut_ptr(), 1usize, 0usize, 0usize, 0u32) };
    if r != 0 || pair[0] != KEY_IMA_EXT_0 {
        return Ext::default();
    }
    let v = pair[1] as u64;
    Ext {
        zba: v & EXT_ZBA != 0,
        zbb: v & EXT_ZBB != 0,
        zicond: v & EXT_ZICOND != 0,
        ztso: v & EXT_ZTSO != 0,
        zacas: v & EXT_ZACAS != 0,
        tso_fences: false,
    }
}

#[cfg(not(target_arch = "riscv64"))]
fn hwprobe() -> Ext {
    Ext::default()
}

/// Translate one block to bytes (the pure part of [`Backend::translate`]).
pub fn translate_block(block: &GuestBlock, base: u64, ext: Ext) -> Result<(Vec<u8>, Translated), TranslateError> {
    translate_block_counted(block, base, ext).map(|(code, t, _, _)| (code, t))
}

/// As [`translate_block`], also returning how many of the block's instructions were translated
/// (the block exits UNSUPPORTED at the next one when fewer than all).
pub fn translate_block_counted(
    block: &GuestBlock,
    base: u64,
    ext: Ext,
) -> Result<(Vec<u8>, Translated, usize, Vec<crate::fault::PcEntry>), TranslateError> {
    translate_block_body(block, base, ext).map(|(code, t, n, pcs, _)| (code, t, n, pcs))
}

/// A translated block: code, link sites, instructions translated, fault-map entries, and the
/// length of the in-line code (the exit stubs follow it).
type BlockBody = (Vec<u8>, Translated, usize, Vec<crate::fault::PcEntry>, u32);

/// As [`translate_block_counted`], also returning the length of the block's in-line code.
fn translate_block_body(block: &GuestBlock, base: u64, ext: Ext) -> Result<BlockBody, TranslateError> {
    let mut limit = block.insns.len();
    let mut split = false;
    let mut wide = Vec::new();
    loop {
        match lower::translate(block, limit, split, base, ext, &wide) {
            lower::Attempt::Done(code, link_sites, pcs, body) => {
                return Ok((code, Translated { link_sites }, limit, pcs, body));
            }
            lower::Attempt::Cut(n) if n < limit => {
                limit = n;
                split = false;
            }
            lower::Attempt::Wide(n) if !wide.contains(&n) => wide.push(n),
            // Branches out of range: translate the first half, which links to the rest.
            lower::Attempt::TooLarge if limit > 1 => {
                limit /= 2;
                split = true;
            }
            _ => return Err(TranslateError::TooLarge),
        }
    }
}

impl Backend for Riscv64Backend {
    const NAME: &'static str = "riscv64";
    const LINK_SITE_LEN: usize = LINK_SITE_LEN;

    fn new() -> Self {
        let mut b = Riscv64Backend::with_ext(probe_ext());
        b.set_tso(crate::env_knob("LDNC_TSO").map_or(TsoMode::Auto, |v| parse_tso(&v)));
        b.dump = crate::env_knob("LDNC_RV_DUMP").is_some();
        if profile::enabled_by_env() {
            profile::enable();
            b.profile = true;
        }
        b
    }

    fn features(&self) -> Features {
        Features::BASELINE.with(Features::CX16).with(Features::POPCNT).with(Features::LZCNT).with(Features::SSE3).with(Features::SSSE3).with(Features::SSE41).with(Features::SSE42)
    }

    fn translate(&mut self, block: &GuestBlock, base: u64, out: &mut Vec<u8>) -> Result<Translated, TranslateError> {
        if self.profile {
            let (counter, pro) = profile::prologue(self.ext);
            let skip = pro.len() as u32;
            let (code, mut t, _, mut pcs, body) = translate_block_body(block, base + u64::from(skip), self.ext)?;
            for s in &mut t.link_sites {
                s.offset += skip;
            }
            for p in &mut pcs {
                p.host_off += skip;
            }
            let mut all = pro;
            all.extend_from_slice(&code);
            profile::record(block, base, &all, (skip + body) as usize, counter);
            self.pc_map = pcs;
            self.blocks += 1;
            self.bytes += all.len() as u64;
            out.extend_from_slice(&all);
            return Ok(t);
        }
        let (code, t, _, pcs) = translate_block_counted(block, base, self.ext)?;
        self.pc_map = pcs;
        if self.dump {
            for (n, line) in disasm::disasm_buf(&code, base).iter().enumerate() {
                log::debug!(target: "translator", "{:#x}: {line}", base + 4 * n as u64);
            }
        }
        self.blocks += 1;
        self.bytes += code.len() as u64;
        out.extend_from_slice(&code);
        Ok(t)
    }

    fn translate_native(&mut self, f: &crate::bridge::NativeFn, base: u64, out: &mut Vec<u8>) -> Result<Translated, TranslateError> {
        let code = native::translate_native(f, base, self.ext)?;
        self.pc_map.clear();
        self.blocks += 1;
        self.bytes += code.len() as u64;
        out.extend_from_slice(&code);
        Ok(Translated::default())
    }

    fn encode_link(&self, site: u64, target: u64, out: &mut [u8]) -> Option<()> {
        let mut a = asm::Asm::new(self.ext);
        let off = target.wrapping_sub(site) as i64;
        if encode::fits_j(off) {
            // A direct jump: cheaper than auipc + jalr, and predicted (and chained by
            // emulators) as a direct branch. The second word is never reached.
            a.word(encode::enc_j(encode::Op::Jal, encode::Reg::ZERO, off as i32));
            a.addi(encode::Reg::ZERO, encode::Reg::ZERO, 0);
        } else {
            a.jump_abs(site, target, encode::Reg::T0)?;
        }
        let b = a.bytes();
        out.get_mut(..LINK_SITE_LEN)?.copy_from_slice(b.get(..LINK_SITE_LEN)?);
        Some(())
    }

    fn fill_inline_cache(&mut self, site: u64, guest: u64, host: u64, patch: &mut dyn FnMut(u64, &[u8])) -> bool {
        let mut link = [0u8; LINK_SITE_LEN];
        if self.encode_link(site, host, &mut link).is_none() {
            return false;
        }
        lower::fill_inline_cache(site, guest, &link, patch);
        true
    }

    fn take_pc_map(&mut self) -> Vec<crate::fault::PcEntry> {
        core::mem::take(&mut self.pc_map)
    }

    fn threads_started(&mut self) -> bool {
        // Ztso keeps x86's order in hardware; `fence` mode fenced from the start; `off` never.
        if self.tso != TsoMode::Auto || self.ext.ztso || self.ext.tso_fences {
            return false;
        }
        self.ext.tso_fences = true;
        true
    }

    fn flush_icache(&self, start: u64, len: usize) {
        #[cfg(target_arch = "riscv64")]
        {
            const SYS_RISCV_FLUSH_ICACHE: libc::c_long = 259;
            // SAFETY: the syscall only synchronises instruction fetch for the range.
            unsafe { libc::syscall(SYS_RISCV_FLUSH_ICACHE, start, start + len as u64, 0u64) };
        }
        #[cfg(not(target_arch = "riscv64"))]
        let _ = (start, len);
    }

    unsafe fn enter(ctx: *mut crate::ctx::ThreadCtx, code: u64) {
        #[cfg(target_arch = "riscv64")]
        {
            // SAFETY: forwarded from the caller's contract.
            unsafe { trampoline::enter(ctx, code) };
        }
        #[cfg(not(target_arch = "riscv64"))]
        {
            // Never the host backend here: report instead of running riscv64 code.
            let _ = code;
            // SAFETY: the caller guarantees `ctx` is live and exclusively ours.
            unsafe { (*ctx).exit_reason = crate::ctx::exit::UNSUPPORTED };
        }
    }
}

#[cfg(target_arch = "riscv64")]
pub use trampoline::{redirect_fault, redirect_interrupt};

pub use profile::profile_report;

#[cfg(target_arch = "riscv64")]
mod trampoline {
    //! Entry into and exit from generated code.
    //!
    //! `ldnc_rv_native` is the native-call routine of trap stubs (see `native.rs`).
    //!
    //! `ldnc_rv_enter(ctx, code)` saves the host's callee-saved registers, `ra` and `sp` in
    //! `ctx.host_save`, loads the guest registers and the lazy-flag registers from the context and
    //! jumps to `code`. Generated code leaves through `ldnc_rv_exit` (its address is in a
    //! context slot) with `s1 = ctx`: it stores the guest and flag registers and returns from
    //! `ldnc_rv_enter` with the host registers restored.

    use super::flags::{OFF_RES, OFF_SRC1, OFF_SRC2};
    use crate::ctx::{ThreadCtx, OFF_BACKEND, OFF_HOST_SAVE};

    core::arch::global_asm!(
        ".text",
        ".p2align 2",
        ".globl ldnc_rv_enter",
        ".type ldnc_rv_enter, @function",
        "ldnc_rv_enter:",
        "sd ra, {hs}+0(a0)",
        "sd sp, {hs}+8(a0)",
        "sd s0, {hs}+16(a0)",
        "sd s1, {hs}+24(a0)",
        "sd s2, {hs}+32(a0)",
        "sd s3, {hs}+40(a0)",
        "sd s4, {hs}+48(a0)",
        "sd s5, {hs}+56(a0)",
        "sd s6, {hs}+64(a0)",
        "sd s7, {hs}+72(a0)",
        "sd s8, {hs}+80(a0)",
        "sd s9, {hs}+88(a0)",
        "sd s10, {hs}+96(a0)",
        "sd s11, {hs}+104(a0)",
        "mv s1, a0",
        "mv t0, a1",
        "ld s10, {src1}(s1)",
        "ld s11, {src2}(s1)",
        "ld s0, {res}(s1)",
        // RAX..R15 from cpu.gpr, in the order of regs::GUEST.
        "ld a6, 0(s1)",
        "ld a3, 8(s1)",
        "ld a2, 16(s1)",
        "ld s2, 24(s1)",
        "ld s3, 32(s1)",
        "ld s4, 40(s1)",
        "ld a1, 48(s1)",
        "ld a0, 56(s1)",
        "ld a4, 64(s1)",
        "ld a5, 72(s1)",
        "ld a7, 80(s1)",
        "ld t3, 88(s1)",
        "ld s5, 96(s1)",
        "ld s6, 104(s1)",
        "ld s7, 112(s1)",
        "ld s8, 120(s1)",
        "jr t0",
        ".size ldnc_rv_enter, .-ldnc_rv_enter",
        "",
        ".p2align 2",
        ".globl ldnc_rv_exit",
        ".type ldnc_rv_exit, @function",
        "ldnc_rv_exit:",
        "sd a6, 0(s1)",
        "sd a3, 8(s1)",
        "sd a2, 16(s1)",
        "sd s2, 24(s1)",
        "sd s3, 32(s1)",
        "sd s4, 40(s1)",
        "sd a1, 48(s1)",
        "sd a0, 56(s1)",
        "sd a4, 64(s1)",
        "sd a5, 72(s1)",
        "sd a7, 80(s1)",
        "sd t3, 88(s1)",
        "sd s5, 96(s1)",
        "sd s6, 104(s1)",
        "sd s7, 112(s1)",
        "sd s8, 120(s1)",
        "sd s10, {src1}(s1)",
        "sd s11, {src2}(s1)",
        "sd s0, {res}(s1)",
        // Back to the host's registers. A signal handler that rebuilt `ctx.cpu` itself (see
        // `redirect_fault`) resumes here too.
        ".globl ldnc_rv_fault_exit",
        "ldnc_rv_fault_exit:",
        "ld ra, {hs}+0(s1)",
        "ld sp, {hs}+8(s1)",
        "ld s0, {hs}+16(s1)",
        "ld s2, {hs}+32(s1)",
        "ld s3, {hs}+40(s1)",
        "ld s4, {hs}+48(s1)",
        "ld s5, {hs}+56(s1)",
        "ld s6, {hs}+64(s1)",
        "ld s7, {hs}+72(s1)",
        "ld s8, {hs}+80(s1)",
        "ld s9, {hs}+88(s1)",
        "ld s10, {hs}+96(s1)",
        "ld s11, {hs}+104(s1)",
        "ld s1, {hs}+24(s1)",
        "ret",
        ".size ldnc_rv_exit, .-ldnc_rv_exit",
        "",
        // The native call of a trap stub (see `native.rs` and "Native calls" in the dispatcher's
        // docs). In: t1 = host function, arguments in place, sp = the frame, s9 = sp before it
        // (the NativeFn at -16(s9)), s3 = guest RSP (the return address at 0(s3)).
        ".p2align 2",
        ".option push",
        ".option norvc",
        ".option arch, +d",
        ".globl ldnc_rv_native",
        ".type ldnc_rv_native, @function",
        "ldnc_rv_native:",
        // Callbacks from the native code find the guest stack pointer in ctx.cpu.
        "sd s3, 32(s1)",
        // Out of translated code.
        "ld t2, {slot}(s1)",
        "fence rw, rw",
        "sb zero, {in_code}(t2)",
        "jalr ra, 0(t1)",
        // The result: the common shapes here (the block's kind word at -8(s9), see
        // `native::ResultKind`), any other through the Rust helper.
        "ld t4, -8(s9)",
        "beqz t4, 3f",
        "addi t4, t4, -1",
        "beqz t4, 4f",
        "addi t4, t4, -1",
        "beqz t4, 7f",
        "addi t4, t4, -1",
        "beqz t4, 5f",
        "addi t4, t4, -1",
        "beqz t4, 8f",
        // float: XMM0 = the value's 32 bits, the rest zero (as the helper leaves it)
        "fsw fa0, {xmm0}(s1)",
        "sw zero, {xmm0}+4(s1)",
        "sd zero, {xmm0}+8(s1)",
        "j 4f",
        "8:",
        "fsd fa0, {xmm0}(s1)",
        "sd zero, {xmm0}+8(s1)",
        "j 4f",
        "7:",
        "mv a6, a0",
        "j 4f",
        "5:",
        "slli a6, a0, 32",
        "srli a6, a6, 32",
        "4:",
        "mv sp, s9",
        "sd zero, {kind}(s1)",
        "j 6f",
        "3:",
        "sd a0, {scr}+0(s1)",
        "sd a1, {scr}+8(s1)",
        "fsd fa0, {scr}+16(s1)",
        "fsd fa1, {scr}+24(s1)",
        "mv a0, s1",
        "ld a1, -16(s9)",
        "call {result}",
        "mv sp, s9",
        // RAX and RDX from ctx.cpu; the other caller-saved guests are undefined after a call,
        // and so are the flags: ctx.cpu.rflags stands for them.
        "ld a6, 0(s1)",
        "ld a2, 16(s1)",
        "sd zero, {kind}(s1)",
        "6:",
        // Back in code, then (full fence: Dekker with the flusher) is a reuse pending?
        "ld t2, {slot}(s1)",
        "li t4, 1",
        "sb t4, {in_code}(t2)",
        "fence rw, rw",
        "lla t4, {pending}",
        "lw t4, 0(t4)",
        // A guest signal arrived during the call: stop for the runtime (attention, cleared here).
        "lbu t5, {attention}(t2)",
        "sb zero, {attention}(t2)",
        // The x86 `ret`: pop the return address, probe the lookup table, or exit LOOKUP.
        "ld t0, 0(s3)",
        "addi s3, s3, 8",
        "bnez t5, 2f",
        "bnez t4, 1f",
        "ld t2, {mask}(s1)",
        "and t2, t0, t2",
        "slli t2, t2, 4",
        "ld t4, {lookup}(s1)",
        "add t2, t2, t4",
        "ld t4, 0(t2)",
        "xor t4, t4, t0",
        "bnez t4, 1f",
        // Address-dependent on the tag load (see `Lower::jump_indirect`).
        "add t2, t2, t4",
        "ld t2, 8(t2)",
        "jr t2",
        "1:",
        "sd t0, {rip}(s1)",
        "li t4, {lookup_exit}",
        "sd t4, {exit_reason}(s1)",
        "sd zero, {exit_arg}(s1)",
        "j ldnc_rv_exit",
        "2:",
        "sd t0, {rip}(s1)",
        "li t4, {interrupt_exit}",
        "sd t4, {exit_reason}(s1)",
        "sd zero, {exit_arg}(s1)",
        "j ldnc_rv_exit",
        ".size ldnc_rv_native, .-ldnc_rv_native",
        ".option pop",
        "",
        hs = const OFF_HOST_SAVE,
        slot = const crate::ctx::OFF_SLOT,
        in_code = const crate::dispatch::OFF_IN_CODE,
        attention = const crate::dispatch::OFF_ATTENTION,
        interrupt_exit = const crate::ctx::exit::INTERRUPT,
        xmm0 = const crate::cpu::OFF_XMM,
        scr = const crate::ctx::OFF_SCRATCH,
        result = sym super::native::rv_native_result,
        kind = const super::flags::OFF_KIND,
        pending = sym crate::dispatch::REUSE_PENDING,
        mask = const crate::ctx::OFF_LOOKUP_MASK,
        lookup = const crate::ctx::OFF_LOOKUP,
        rip = const crate::cpu::OFF_RIP,
        lookup_exit = const crate::ctx::exit::LOOKUP,
        exit_reason = const crate::ctx::OFF_EXIT_REASON,
        exit_arg = const crate::ctx::OFF_EXIT_ARG,
        src1 = const OFF_SRC1,
        src2 = const OFF_SRC2,
        res = const OFF_RES,
    );

    extern "C" {
        fn ldnc_rv_enter(ctx: *mut ThreadCtx, code: u64);
        fn ldnc_rv_exit();
        fn ldnc_rv_native();
        fn ldnc_rv_fault_exit();
    }

    /// `ctx.backend` slot holding [`MAGIC`] while generated code may run on the context.
    const OFF_MAGIC: i32 = OFF_BACKEND as i32 + 80;
    /// Marks a context entered by this backend ("ldnc-rv!").
    const MAGIC: u64 = 0x2176_722d_636e_646c;

    /// Turn a synchronous fault (SIGSEGV, SIGBUS, SIGFPE, SIGILL) raised by translated code into
    /// an [`crate::ctx::exit::FAULT`] exit: rebuild the guest state at the faulting guest
    /// instruction from the host registers in `uc` (the register map of `regs.rs`, the lent
    /// register's saved value, the lazy flags), and make the signal return leave generated code.
    /// Returns `false`, changing nothing, when the fault did not come from translated code.
    ///
    /// Limits: an instruction that faults after writing part of its effects (a flag-setting
    /// read-modify-write whose store faults, `pop` into memory) shows those effects.
    ///
    /// # Safety
    /// Must be called from a handler of a synchronous signal on the faulting thread, with `uc`
    /// the handler's context.
    pub unsafe fn redirect_fault(
        uc: *mut libc::ucontext_t,
        map: &crate::fault::FaultMap,
        info: crate::ctx::FaultInfo,
    ) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe { redirect(uc, |pc| map.lookup(pc), crate::ctx::exit::FAULT, info) }
    }

    /// Stop generated code for an asynchronous signal: if the thread was interrupted exactly
    /// between two guest instructions (a host PC where an instruction's code starts, with no
    /// lent register), leave with [`crate::ctx::exit::INTERRUPT`] and the exact guest state so
    /// the runtime delivers the signal now; `false`, changing nothing, anywhere else.
    ///
    /// # Safety
    /// As for [`redirect_fault`], from the handler of an asynchronous signal.
    pub unsafe fn redirect_interrupt(uc: *mut libc::ucontext_t, map: &crate::fault::FaultMap) -> bool {
        // SAFETY: forwarded from the caller.
        unsafe {
            redirect(uc, |pc| map.lookup_exact(pc), crate::ctx::exit::INTERRUPT, crate::ctx::FaultInfo::default())
        }
    }

    /// Rebuild the guest state at the guest instruction `find` names for the interrupted host PC
    /// and make the signal return leave generated code with `reason`.
    ///
    /// # Safety
    /// As for [`redirect_fault`].
    unsafe fn redirect(
        uc: *mut libc::ucontext_t,
        find: impl Fn(u64) -> Option<crate::fault::GuestFault>,
        reason: u64,
        info: crate::ctx::FaultInfo,
    ) -> bool {
        // SAFETY: the caller passes the handler's own context.
        let uc = unsafe { &mut *uc };
        let g = &mut uc.uc_mcontext.__gregs;
        let Some(f) = find(g[0]) else { return false };
        // Inside generated code s1 (x9) is the context; the magic word confirms it.
        let ctx = g[9] as *mut ThreadCtx;
        if ctx.is_null() || !(ctx as usize).is_multiple_of(core::mem::align_of::<ThreadCtx>()) {
            return false;
        }
        // SAFETY: a pc inside the code cache means s1 is the entered context, exclusively ours
        // (the dispatcher is suspended in `enter`).
        let ctx = unsafe { &mut *ctx };
        if ctx.backend[slot(OFF_MAGIC)] != MAGIC {
            return false;
        }
        for (n, r) in super::regs::GUEST.iter().enumerate() {
            ctx.cpu.gpr[n] = g[usize::from(r.0)];
        }
        for (reg, word) in super::lower::decode_fixup(f.fixup_reg).into_iter().flatten() {
            ctx.cpu.gpr[reg] = ctx.scratch[word];
        }
        ctx.backend[slot(OFF_SRC1)] = g[usize::from(super::regs::F_SRC1.0)];
        ctx.backend[slot(OFF_SRC2)] = g[usize::from(super::regs::F_SRC2.0)];
        ctx.backend[slot(OFF_RES)] = g[usize::from(super::regs::F_RES.0)];
        // SAFETY: the context is live and ours (above).
        unsafe { super::flags::rv_materialize_flags(ctx) };
        ctx.cpu.rip = f.guest_pc;
        ctx.fault = info;
        if matches!(info.signo, libc::SIGFPE | libc::SIGILL | libc::SIGTRAP) {
            ctx.fault.addr = f.guest_pc;
        }
        ctx.exit_reason = reason;
        g[0] = ldnc_rv_fault_exit as *const () as u64;
        true
    }

    fn slot(off: i32) -> usize {
        (off as usize - OFF_BACKEND) / 8
    }

    /// Run generated code at `code` until it exits.
    ///
    /// # Safety
    /// As [`crate::isa::Backend::enter`].
    pub unsafe fn enter(ctx: *mut ThreadCtx, code: u64) {
        {
            // SAFETY: the caller guarantees `ctx` is live and exclusively ours.
            let c = unsafe { &mut *ctx };
            c.backend[slot(super::lower::OFF_EXIT_FN)] = ldnc_rv_exit as *const () as u64;
            c.backend[slot(super::lower::OFF_MAT_FN)] = super::flags::rv_materialize_flags as *const () as u64;
            c.backend[slot(super::lower::OFF_DIV_FN)] = super::alu::rv_div128 as *const () as u64;
            c.backend[slot(super::native::OFF_NATIVE_FN)] = ldnc_rv_native as *const () as u64;
            c.backend[slot(super::native::OFF_LDARG_FN)] = super::native::rv_native_ldouble_args as *const () as u64;
            // The dispatcher hands over exact flags.
            c.backend[slot(super::flags::OFF_KIND)] = super::flags::EXACT;
            c.backend[slot(OFF_MAGIC)] = MAGIC;
        }
        // SAFETY: `code` is a block of this backend; the trampoline saves and restores every
        // host register the C ABI requires and returns here through the exit path.
        unsafe { ldnc_rv_enter(ctx, code) };
        // SAFETY: as above; the exit path stored the flag registers.
        unsafe { super::flags::rv_materialize_flags(ctx) };
    }
}
