//! The x86_64 backend: guest and host ISA are the same, so blocks are copied through and only what
//! must change is rewritten (DynamoRIO's approach): control transfers become links, exit stubs and
//! inline lookups; RIP-relative operands are re-aimed at their absolute address; `syscall`, `cpuid`,
//! `int3`, `hlt` and `ud2` exit to the dispatcher. FS-relative accesses need no rewrite because FS
//! base *is* the guest's while generated code runs (see [`asm`]); GS is reserved for the context.

pub mod asm;
pub mod emit;
pub mod regs;
#[cfg(test)]
mod emit_tests;

use iced_x86::{Code, ConditionCode, FlowControl, Instruction, InstructionInfoFactory, MemoryOperand, OpKind, Register};

use crate::cpu::{OFF_GPR, OFF_RIP};
use crate::cpuid::Features;
use crate::ctx::{exit, ThreadCtx, OFF_EXIT_ARG, OFF_EXIT_REASON};
use crate::frontend::{BlockEnd, GuestBlock, GuestInsn};
use crate::isa::{Backend, LinkSite, TranslateError, Translated};
use emit::{Asm, LINK_SITE_LEN};
use regs::*;

/// The x86_64 code generator.
#[derive(Debug, Default)]
pub struct X86Backend {
    info: InstructionInfoFactoryBox,
    pc_map: Vec<crate::fault::PcEntry>,
    /// Inline caches by link-site address.
    ics: std::collections::HashMap<u64, IcMeta>,
    /// Inline caches of the block being translated: (link site, imm64, miss site, table path)
    /// as block offsets.
    block_ics: Vec<(usize, usize, usize, usize)>,
}

/// `InstructionInfoFactory` is not `Debug`; this wrapper is.
struct InstructionInfoFactoryBox(InstructionInfoFactory);

impl Default for InstructionInfoFactoryBox {
    fn default() -> Self {
        InstructionInfoFactoryBox(InstructionInfoFactory::new())
    }
}

impl std::fmt::Debug for InstructionInfoFactoryBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstructionInfoFactory")
    }
}

/// An exit the block still has to emit a stub for.
struct PendingExit {
    /// Block offset of the rel32 field (of a `jmp` or `jcc`) that must reach the stub.
    at: usize,
    /// Guest address to continue at.
    rip: u64,
    /// Exit code.
    reason: u64,
    /// Whether `at` is a linkable site.
    link: bool,
}

impl Backend for X86Backend {
    const NAME: &'static str = "x86_64";
    const LINK_SITE_LEN: usize = LINK_SITE_LEN;

    fn new() -> Self {
        X86Backend::default()
    }

    fn features(&self) -> Features {
        // Copy-through runs guest instructions on this very CPU, so it can offer whatever the host
        // has, limited to the set the riscv64 backend aims at, so guests see one CPU model.
        let mut f = Features::BASELINE;
        let host = [
            (std::arch::is_x86_feature_detected!("sse3"), Features::SSE3),
            (std::arch::is_x86_feature_detected!("ssse3"), Features::SSSE3),
            (std::arch::is_x86_feature_detected!("sse4.1"), Features::SSE41),
            (std::arch::is_x86_feature_detected!("sse4.2"), Features::SSE42),
            (std::arch::is_x86_feature_detected!("popcnt"), Features::POPCNT),
            (std::arch::is_x86_feature_detected!("cmpxchg16b"), Features::CX16),
            (std::arch::is_x86_feature_detected!("lzcnt"), Features::LZCNT),
            (std::arch::is_x86_feature_detected!("bmi1"), Features::BMI1),
            (std::arch::is_x86_feature_detected!("bmi2"), Features::BMI2),
        ];
        for (has, feat) in host {
            if has {
                f = f.with(feat);
            }
        }
        f
    }

    fn translate(
        &mut self,
        block: &GuestBlock,
        base: u64,
        out: &mut Vec<u8>,
    ) -> Result<Translated, TranslateError> {
        let mut a = Asm::new(out, base);
        let mut pending: Vec<PendingExit> = Vec::new();
        let mut ended = false;
        self.pc_map.clear();
        self.block_ics.clear();
        for gi in &block.insns {
            self.mark(&a, gi.insn.ip(), None);
            if let Some(done) = self.translate_special(&mut a, gi, &mut pending)? {
                if done {
                    ended = true;
                    break;
                }
                continue;
            }
            self.copy(&mut a, gi)?;
        }
        if !ended {
            let (rip, reason) = match block.end {
                BlockEnd::Terminator => (block.guest_range().1, exit::LOOKUP),
                BlockEnd::FallThrough(pc) => (pc, exit::LOOKUP),
                BlockEnd::Undecodable(pc) => (pc, exit::INVALID_OPCODE),
                BlockEnd::Unfetchable(pc) => (pc, exit::NOT_EXECUTABLE),
            };
            let at = a.jmp_rel32(a.ip())?;
            pending.push(PendingExit { at, rip, reason, link: reason == exit::LOOKUP });
        }
        let mut link_sites = Vec::new();
        for p in pending {
            let stub = a.ip();
            a.patch_rel32(p.at, stub)?;
            emit_exit_stub(&mut a, p.rip, p.reason, if p.link { base + p.at as u64 } else { 0 })?;
            if p.link {
                link_sites.push(LinkSite { offset: p.at as u32, target: p.rip });
            }
        }
        for &(link, imm, miss_site, table) in &self.block_ics {
            link_sites.push(LinkSite { offset: link as u32, target: crate::isa::INDIRECT });
            let at = |off: usize| base + off as u64;
            self.ics.insert(at(link), IcMeta { imm: at(imm), miss_site: at(miss_site), table: at(table) });
        }
        Ok(Translated { link_sites })
    }

    fn take_pc_map(&mut self) -> Vec<crate::fault::PcEntry> {
        core::mem::take(&mut self.pc_map)
    }

    /// Host ABI = guest ABI: the arguments are already where the callee wants them, except the
    /// stack ones, which are copied below a 16-aligned frame that keeps the guest return
    /// address (and the saved RBX and guest FS base just under it) out of the callee's way:
    ///
    /// ```text
    ///       mov [rsp-8], rbx ; mov rbx, rsp          RBX = R, the guest RSP at the stub
    ///       lea rsp, [rbx-16-A] ; and rsp, -16       A = stack argument bytes, 16-rounded
    ///       mov r11, [rbx+8+8i] ; mov [rsp+8i], r11  (each stack argument word)
    ///       mov r11, host ; jmp gs:[SLOT_NATIVE]     → ldnc_x86_native (asm.rs)
    /// ```
    fn translate_native(
        &mut self,
        f: &crate::bridge::NativeFn,
        base: u64,
        out: &mut Vec<u8>,
    ) -> Result<Translated, TranslateError> {
        let e = |r: Result<Instruction, iced_x86::IcedError>| r.map_err(|_| TranslateError::TooLarge);
        let mut a = Asm::new(out, base);
        self.pc_map.clear();
        self.block_ics.clear();
        let words = f.plan.guest_stack.div_ceil(8);
        let frame = i64::from((words * 8).next_multiple_of(16)) + 16;
        let at = |base: Register, d: i64| MemoryOperand::with_base_displ(base, d);
        a.insn(&e(Instruction::with2(Code::Mov_rm64_r64, at(Register::RSP, -8), Register::RBX))?)?;
        a.insn(&e(Instruction::with2(Code::Mov_r64_rm64, Register::RBX, Register::RSP))?)?;
        a.insn(&e(Instruction::with2(Code::Lea_r64_m, Register::RSP, at(Register::RBX, -frame)))?)?;
        a.insn(&e(Instruction::with2(Code::And_rm64_imm8, Register::RSP, -16i32))?)?;
        for i in 0..i64::from(words) {
            a.insn(&e(Instruction::with2(Code::Mov_r64_rm64, Register::R11, at(Register::RBX, 8 + 8 * i)))?)?;
            a.insn(&e(Instruction::with2(Code::Mov_rm64_r64, at(Register::RSP, 8 * i), Register::R11))?)?;
        }
        a.mov_imm64(Register::R11, f.host)?;
        a.jmp_gs(SLOT_NATIVE)?;
        Ok(Translated::default())
    }

    fn fill_inline_cache(&mut self, site: u64, guest: u64, host: u64, patch: &mut dyn FnMut(u64, &[u8])) -> bool {
        let Some(ic) = self.ics.get(&site).copied() else { return false };
        let mut rel = [0u8; LINK_SITE_LEN];
        if emit::encode_rel32(site, host, &mut rel).is_none() {
            return false;
        }
        let mut miss = [0u8; LINK_SITE_LEN];
        if emit::encode_rel32(ic.miss_site, ic.table, &mut miss).is_none() {
            return false;
        }
        patch(ic.imm, &(!guest).to_le_bytes());
        patch(ic.miss_site, &miss);
        patch(site, &rel);
        true
    }

    fn encode_link(&self, site: u64, target: u64, out: &mut [u8]) -> Option<()> {
        emit::encode_rel32(site, target, out)
    }

    fn flush_icache(&self, _start: u64, _len: usize) {
        // x86 keeps instruction fetch coherent with stores (SDM vol. 3, 8.1.3); the jump into new
        // code serialises enough for cross-modification on one thread.
    }

    unsafe fn enter(ctx: *mut ThreadCtx, code: u64) {
        // SAFETY: forwarded from the caller's contract; the routine saves and restores every
        // host register the SysV ABI makes callee-saved, and FS/GS bases.
        unsafe { asm::ldnc_x86_enter(ctx, code) }
    }
}

/// Emit the stub for one exit: store the next RIP, exit argument and reason, then jump to the shared
/// exit routine with RAX saved.
fn emit_exit_stub(a: &mut Asm<'_>, rip: u64, reason: u64, arg: u64) -> Result<(), TranslateError> {
    a.store_gs(OFF_GPR, Register::RAX)?;
    a.mov_imm64(Register::RAX, rip)?;
    a.store_gs(OFF_RIP, Register::RAX)?;
    if arg == 0 {
        a.store_gs_imm(OFF_EXIT_ARG, 0)?;
    } else {
        a.mov_imm64(Register::RAX, arg)?;
        a.store_gs(OFF_EXIT_ARG, Register::RAX)?;
    }
    a.store_gs_imm(OFF_EXIT_REASON, reason as i32)?;
    a.jmp_gs(SLOT_EXIT)
}

/// Where an inline cache keeps what filling it patches.
#[derive(Clone, Copy, Debug)]
struct IcMeta {
    /// Address of the imm64 holding `!guest` of the cached target.
    imm: u64,
    /// Address of the rel32 of the jump taken when the cache does not match.
    miss_site: u64,
    /// Where that jump goes once the cache is filled: the table lookup.
    table: u64,
}

/// An indirect branch: an inline cache of one target, then the lookup table. In: RDX = guest
/// target, guest RDX in `S_RDX`. No flags are touched: the match tests are
/// `lea rcx, [~guest + target + 1]` (zero iff equal) and `jrcxz`.
///
/// ```text
///       mov gs:[S_GUEST_TARGET], rdx ; mov gs:[S_RCX], rcx
///       mov rcx, !cached             ; 0 while empty: matches no target
///       lea rcx, [rcx + rdx + 1] ; jrcxz hit
///       jmp fill                     ; → `table` once filled
/// hit:  mov rcx, gs:[S_RCX] ; mov rdx, gs:[S_RDX]
///       jmp rehit                    ; link site (INDIRECT) → the cached target's code
/// rehit: mov gs:[S_RCX], rcx ; mov rdx, gs:[S_GUEST_TARGET]
/// table: … probe ctx.lookup: tag, host, tag again; jump to the host code, or exit (miss) …
/// fill: exit with exit_arg = the link site, so the dispatcher fills the cache
/// ```
fn emit_indirect(a: &mut Asm<'_>, ics: &mut Vec<(usize, usize, usize, usize)>) -> Result<usize, TranslateError> {
    use crate::ctx::OFF_LOOKUP;
    let e = |r: Result<Instruction, iced_x86::IcedError>| r.map_err(|_| TranslateError::TooLarge);
    a.store_gs(S_GUEST_TARGET, Register::RDX)?;
    a.store_gs(S_RCX, Register::RCX)?;
    // `REX.W B9 imm64`: the imm64 is patched while other threads may run it, so it is aligned.
    a.align_field(2, 8);
    a.mov_imm64(Register::RCX, 0)?;
    let imm = a.len() - 8;
    a.insn(&e(Instruction::with2(
        Code::Lea_r64_m,
        Register::RCX,
        MemoryOperand::new(Register::RCX, Register::RDX, 1, 1, 1, false, Register::None),
    ))?)?;
    // The jmp's rel32 (3 bytes on) must be aligned with no padding between jrcxz and the jmp.
    a.align_field(3, 4);
    a.raw(&[0xe3, 5]); // jrcxz over the 5-byte jmp
    let miss_site = a.jmp_rel32(a.ip())?;
    // hit:
    a.load_gs(Register::RCX, S_RCX)?;
    a.load_gs(Register::RDX, S_RDX)?;
    let link = a.jmp_rel32(a.ip())?;
    // rehit:
    let rehit = a.ip();
    a.patch_rel32(link, rehit)?;
    a.store_gs(S_RCX, Register::RCX)?;
    a.load_gs(Register::RDX, S_GUEST_TARGET)?;
    // table: index = target & 0xffff (LOOKUP_ENTRIES); entries are 16 bytes.
    let table = a.len();
    a.store_gs(S_RAX, Register::RAX)?;
    a.insn(&e(Instruction::with2(Code::Movzx_r32_rm16, Register::ECX, Register::DX))?)?;
    a.insn(&e(Instruction::with2(Code::Lea_r64_m, Register::RCX, MemoryOperand::with_base_index(Register::RCX, Register::RCX)))?)?;
    a.load_gs(Register::RAX, OFF_LOOKUP)?;
    a.insn(&e(Instruction::with2(
        Code::Lea_r64_m,
        Register::RAX,
        MemoryOperand::new(Register::RAX, Register::RCX, 8, 0, 0, false, Register::None),
    ))?)?;
    // The dispatcher (re)publishes an entry as guest = EMPTY, host, then guest
    // (`BlockMap::publish`) while this probe runs on other threads. A thread that loads the old
    // tag, is preempted, and loads the host word after a republish of the slot for another guest
    // (a collision) would run that guest's block: so, seqlock style, the tag is checked again
    // after the host load. x86 keeps loads in program order, and the writer's EMPTY store
    // precedes its host store, so a host word newer than the first tag load makes the second
    // tag load see EMPTY or the other guest.
    let tag_is_target_or_miss = |a: &mut Asm<'_>| -> Result<(), TranslateError> {
        a.insn(&e(Instruction::with2(Code::Mov_r64_rm64, Register::RCX, MemoryOperand::with_base(Register::RAX)))?)?;
        a.insn(&e(Instruction::with1(Code::Not_rm64, Register::RCX))?)?;
        a.insn(&e(Instruction::with2(
            Code::Lea_r64_m,
            Register::RCX,
            MemoryOperand::new(Register::RCX, Register::RDX, 1, 1, 1, false, Register::None),
        ))?)?;
        // jrcxz over the miss jump (rel8 patched once its length is known).
        a.raw(&[0xe3, 0]);
        let rel_at = a.len() - 1;
        a.jmp_gs(SLOT_MISS)?;
        let skip = u8::try_from(a.len() - rel_at - 1).map_err(|_| TranslateError::TooLarge)?;
        a.patch_u8(rel_at, skip);
        Ok(())
    };
    tag_is_target_or_miss(a)?;
    a.insn(&e(Instruction::with2(Code::Mov_r64_rm64, Register::RCX, MemoryOperand::with_base_displ(Register::RAX, 8)))?)?;
    a.store_gs(S_TARGET, Register::RCX)?;
    tag_is_target_or_miss(a)?;
    a.load_gs(Register::RAX, S_RAX)?;
    a.load_gs(Register::RCX, S_RCX)?;
    a.load_gs(Register::RDX, S_RDX)?;
    a.jmp_gs(S_TARGET)?;
    // fill:
    let fill = a.ip();
    a.patch_rel32(miss_site, fill)?;
    a.store_gs(S_RAX, Register::RAX)?;
    a.mov_imm64(Register::RCX, a.ip() - a.len() as u64 + link as u64)?;
    a.store_gs(OFF_EXIT_ARG, Register::RCX)?;
    a.jmp_gs(SLOT_FILL)?;
    ics.push((link, imm, miss_site, table));
    Ok(link)
}

impl X86Backend {
    /// Record that host code from here on belongs to guest instruction `pc`; `fixup` names a
    /// guest register whose value is parked in a context slot meanwhile.
    fn mark(&mut self, a: &Asm<'_>, pc: u64, fixup: Option<(Register, usize)>) {
        let (fixup_reg, fixup_slot) = match fixup {
            Some((r, slot)) => (r.number() as u8, slot as u16),
            None => (crate::fault::NO_FIXUP, 0),
        };
        self.pc_map.push(crate::fault::PcEntry { host_off: a.len() as u32, fixup_reg, _pad: 0, fixup_slot, guest_pc: pc });
    }

    /// Translate a control transfer or an instruction that must leave the cache. Returns
    /// `Some(true)` if it ends the block, `Some(false)` if it was handled inline, `None` if the
    /// instruction is to be copied.
    fn translate_special(
        &mut self,
        a: &mut Asm<'_>,
        gi: &GuestInsn,
        pending: &mut Vec<PendingExit>,
    ) -> Result<Option<bool>, TranslateError> {
        let i = &gi.insn;
        let here = i.ip();
        let next = i.next_ip();
        let mut exit_now = |a: &mut Asm<'_>, rip: u64, reason: u64, link: bool| -> Result<(), TranslateError> {
            let at = a.jmp_rel32(a.ip())?;
            pending.push(PendingExit { at, rip, reason, link });
            Ok(())
        };
        if uses_gs(i) || is_unsupported(i) {
            exit_now(a, here, exit::UNSUPPORTED, false)?;
            return Ok(Some(true));
        }
        match i.code() {
            Code::Syscall => {
                exit_now(a, next, exit::SYSCALL, false)?;
                return Ok(Some(true));
            }
            Code::Cpuid => {
                exit_now(a, next, exit::CPUID, false)?;
                return Ok(Some(true));
            }
            Code::Int3 => {
                exit_now(a, next, exit::BREAKPOINT, false)?;
                return Ok(Some(true));
            }
            Code::Hlt => {
                exit_now(a, here, exit::PRIVILEGED, false)?;
                return Ok(Some(true));
            }
            Code::Ud2 | Code::Ud0 | Code::Ud1_r32_rm32 | Code::Ud1_r64_rm64 | Code::Ud1_r16_rm16 => {
                exit_now(a, here, exit::INVALID_OPCODE, false)?;
                return Ok(Some(true));
            }
            _ => {}
        }
        match i.flow_control() {
            FlowControl::Next => Ok(None),
            FlowControl::UnconditionalBranch if i.is_jmp_short_or_near() => {
                exit_now(a, i.near_branch_target(), exit::LOOKUP, true)?;
                Ok(Some(true))
            }
            FlowControl::ConditionalBranch if i.is_jcc_short_or_near() => {
                // The jcc's own rel32 links to the target; the fall-through jmp's to `next`.
                let cc = i.condition_code() as u8 - ConditionCode::o as u8;
                let taken = a.jcc_rel32(cc, a.ip())?;
                pending.push(PendingExit { at: taken, rip: i.near_branch_target(), reason: exit::LOOKUP, link: true });
                // Past the jcc, not taken: the guest is exactly at `next` (a resume point for
                // asynchronous signals).
                self.mark(a, next, None);
                let fall = a.jmp_rel32(a.ip())?;
                pending.push(PendingExit { at: fall, rip: next, reason: exit::LOOKUP, link: true });
                Ok(Some(true))
            }
            FlowControl::ConditionalBranch if is_rcx_branch(i) => {
                // JRCXZ/JECXZ/LOOPcc only have rel8 forms: branch over a fall-through jump.
                let mut copy = *i;
                // `op rel8` with the target past the 5-byte fall-through `jmp rel32`.
                let len = 2 + u64::from(has_addr_prefix(i));
                // No padding may come between the rel8 branch and the fall-through jmp (whose
                // rel32 is aligned for patching); padding before the taken jmp is NOPs the
                // branch runs through.
                a.align_field(len + 1, 4);
                copy.set_near_branch64(a.ip() + len + 5);
                a.insn(&copy)?;
                let fall = a.jmp_rel32(a.ip())?;
                pending.push(PendingExit { at: fall, rip: next, reason: exit::LOOKUP, link: true });
                let taken = a.jmp_rel32(a.ip())?;
                pending.push(PendingExit { at: taken, rip: i.near_branch_target(), reason: exit::LOOKUP, link: true });
                Ok(Some(true))
            }
            FlowControl::Call if i.is_call_near() => {
                a.push_imm64(next)?;
                exit_now(a, i.near_branch_target(), exit::LOOKUP, true)?;
                Ok(Some(true))
            }
            FlowControl::IndirectBranch | FlowControl::IndirectCall if i.op0_kind() == OpKind::Register || i.op0_kind() == OpKind::Memory => {
                if i.op0_kind() == OpKind::Register && i.op0_register().size() != 8
                    || i.op0_kind() == OpKind::Memory && i.memory_size().size() != 8
                {
                    exit_now(a, here, exit::UNSUPPORTED, false)?;
                    return Ok(Some(true));
                }
                a.store_gs(S_RDX, Register::RDX)?;
                // Compute the target into RDX with the operand as the guest wrote it (RDX still
                // holds the guest value here, and RSP is not yet moved by a push).
                if i.op0_kind() == OpKind::Register {
                    a.insn(&Instruction::with2(Code::Mov_r64_rm64, Register::RDX, i.op0_register()).map_err(|_| TranslateError::TooLarge)?)?;
                } else if i.is_ip_rel_memory_operand() {
                    a.mov_imm64(Register::RDX, i.ip_rel_memory_address())?;
                    let m = MemoryOperand::with_base(Register::RDX);
                    a.insn(&Instruction::with2(Code::Mov_r64_rm64, Register::RDX, m).map_err(|_| TranslateError::TooLarge)?)?;
                } else {
                    let m = MemoryOperand::new(
                        i.memory_base(),
                        i.memory_index(),
                        i.memory_index_scale(),
                        i.memory_displacement64() as i64,
                        i.memory_displ_size(),
                        false,
                        i.segment_prefix(),
                    );
                    a.insn(&Instruction::with2(Code::Mov_r64_rm64, Register::RDX, m).map_err(|_| TranslateError::TooLarge)?)?;
                }
                if i.flow_control() == FlowControl::IndirectCall {
                    a.push_imm64(next)?;
                }
                emit_indirect(a, &mut self.block_ics)?;
                Ok(Some(true))
            }
            FlowControl::Return if matches!(i.code(), Code::Retnq | Code::Retnq_imm16) => {
                a.store_gs(S_RDX, Register::RDX)?;
                a.insn(&Instruction::with1(Code::Pop_r64, Register::RDX).map_err(|_| TranslateError::TooLarge)?)?;
                if i.code() == Code::Retnq_imm16 {
                    a.lea_rsp(i64::from(i.immediate16()))?;
                }
                emit_indirect(a, &mut self.block_ics)?;
                Ok(Some(true))
            }
            _ => {
                exit_now(a, here, exit::UNSUPPORTED, false)?;
                Ok(Some(true))
            }
        }
    }

    /// Copy an ordinary instruction, re-aiming a RIP-relative operand at its absolute address.
    fn copy(&mut self, a: &mut Asm<'_>, gi: &GuestInsn) -> Result<(), TranslateError> {
        let i = &gi.insn;
        if !i.is_ip_rel_memory_operand() {
            a.raw(gi.bytes());
            return Ok(());
        }
        let addr = i.ip_rel_memory_address();
        let mut m = *i;
        if i.code() == Code::Lea_r64_m {
            return a.mov_imm64(i.op0_register(), addr);
        }
        if addr < 0x8000_0000 {
            // A [disp32] absolute operand reaches the low 2 GiB (non-PIE programs live there).
            m.set_memory_base(Register::None);
            m.set_memory_displacement64(addr);
            m.set_memory_displ_size(4);
            return a.insn(&m);
        }
        let used = self.info.0.info(i).used_registers().iter().map(|u| u.register().full_register()).collect::<Vec<_>>();
        let scratch = REWRITE_SCRATCH
            .iter()
            .copied()
            .find(|r| !used.contains(r))
            .ok_or(TranslateError::TooLarge)?;
        a.store_gs(S_REWRITE, scratch)?;
        a.mov_imm64(scratch, addr)?;
        m.set_memory_base(scratch);
        m.set_memory_displacement64(0);
        m.set_memory_displ_size(0);
        self.mark(a, i.ip(), Some((scratch, S_REWRITE)));
        a.insn(&m)?;
        self.mark(a, i.ip(), None);
        a.load_gs(scratch, S_REWRITE)
    }
}

fn has_addr_prefix(i: &Instruction) -> bool {
    matches!(i.code(), Code::Jecxz_rel8_64 | Code::Loop_rel8_64_ECX | Code::Loope_rel8_64_ECX | Code::Loopne_rel8_64_ECX)
}

fn is_rcx_branch(i: &Instruction) -> bool {
    matches!(
        i.code(),
        Code::Jrcxz_rel8_64
            | Code::Jecxz_rel8_64
            | Code::Loop_rel8_64_RCX
            | Code::Loope_rel8_64_RCX
            | Code::Loopne_rel8_64_RCX
            | Code::Loop_rel8_64_ECX
            | Code::Loope_rel8_64_ECX
            | Code::Loopne_rel8_64_ECX
    )
}

/// Whether the instruction addresses memory through GS, which this backend reserves.
fn uses_gs(i: &Instruction) -> bool {
    (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory) && i.memory_segment() == Register::GS
        || matches!(i.code(), Code::Rdgsbase_r64 | Code::Rdgsbase_r32 | Code::Wrgsbase_r64 | Code::Wrgsbase_r32 | Code::Swapgs)
}

/// Instructions that can neither be copied nor translated here.
fn is_unsupported(i: &Instruction) -> bool {
    matches!(i.flow_control(), FlowControl::Interrupt | FlowControl::XbeginXabortXend)
        && i.code() != Code::Int3
        || i.code() == Code::Sysenter
}
