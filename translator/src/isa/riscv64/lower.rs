//! Lowering of one guest block: the driver (flag liveness, the instruction loop, cutting the block
//! before an instruction it cannot translate), the operand model (guest registers of every width,
//! memory operands, immediates), exits and link sites, and helper calls. The instruction families
//! live in `alu.rs`, `ctl.rs` and `cond.rs`.

use iced_x86::{Code, Instruction, Mnemonic, OpKind, Register, RflagsBits};

use super::asm::{Asm, Ext, Label};
use super::encode::{enc_i, fits_i12, Op, Reg, FENCE_R, FENCE_W};
use super::flags::{self, Kind};
use super::regs::{self, CTX, F_RES, F_SRC1, F_SRC2};
use crate::cpu::{Gpr, OFF_FS_BASE, OFF_GPR, OFF_GS_BASE, OFF_RIP};
use crate::ctx::{exit, OFF_BACKEND, OFF_EXIT_ARG, OFF_EXIT_REASON, OFF_SCRATCH};
use crate::frontend::{BlockEnd, GuestBlock, GuestInsn};
use crate::fault::{PcEntry, NO_FIXUP};
use crate::isa::LinkSite;

/// `ctx.backend` slot holding the address of the exit path.
pub const OFF_EXIT_FN: i32 = OFF_BACKEND as i32 + 40;
/// `ctx.backend` slot holding [`flags::rv_materialize_flags`].
pub const OFF_MAT_FN: i32 = OFF_BACKEND as i32 + 48;
/// `ctx.backend` slot holding the 128-by-64-bit division helper.
pub const OFF_DIV_FN: i32 = OFF_BACKEND as i32 + 56;
/// `ctx.backend` word helpers use to return a status.
pub const OFF_STATUS: i32 = OFF_BACKEND as i32 + 64;

/// The six status flags in iced's bit numbering.
pub const STATUS: u32 =
    RflagsBits::OF | RflagsBits::SF | RflagsBits::ZF | RflagsBits::AF | RflagsBits::CF | RflagsBits::PF;

/// What the translator knows statically about the flags at the current point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FState {
    /// Whatever the kind word in memory says (block entry, or after a data-dependent update).
    Unknown,
    /// `ctx.cpu.rflags` holds exact status flags and the kind word is `EXACT`.
    Exact,
    /// The pinned flag registers describe `kind` on `bits`-wide operands; `synced` says whether
    /// the kind word in memory says so too.
    Lazy { kind: Kind, bits: u32, synced: bool },
}

/// Why an instruction was not lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unsupp;

/// Result of lowering one instruction.
pub type LResult = Result<(), Unsupp>;

/// A guest operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// A register: guest register, and whether it is AH/CH/DH/BH.
    Reg(Gpr, bool),
    /// Memory at a computed address.
    Mem(Addr),
    /// An immediate (sign- or zero-extended by iced as the encoding says).
    Imm(u64),
}

/// A host address: register plus a 12-bit offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addr {
    /// Base register.
    pub base: Reg,
    /// Offset.
    pub off: i32,
}

#[derive(Clone, Copy, Debug)]
enum StubKind {
    Link { target: u64, site: u32, flags: Option<(Kind, u32)> },
    Exit { reason: u64, rip: u64, flags: Option<(Kind, u32)> },
}

/// Translation state of one block.
#[derive(Debug)]
pub struct Lower<'a> {
    _block: core::marker::PhantomData<&'a GuestInsn>,
    /// The code.
    pub a: Asm,
    /// Host address the code will run at.
    pub base: u64,
    live_after: Vec<u32>,
    /// Flags the block reads before writing them (its live-in), and its guest start address:
    /// a branch back to the start need not leave the flags' kind word behind when this is 0.
    live_in: u32,
    start: u64,
    /// Flag state at the current point.
    pub fs: FState,
    stubs: Vec<(Label, StubKind)>,
    /// Direct exits.
    pub link_sites: Vec<LinkSite>,
    temps_used: usize,
    temp_overflow: bool,
    /// Guest registers lent to the scratch pool for the current instruction (saved in
    /// `ctx.scratch` around it) when the six scratch registers are not enough.
    borrowed: Vec<Reg>,
    /// Where each guest instruction's host code starts, for mapping faults back.
    pc_map: Vec<PcEntry>,
    /// Index of the instruction being lowered.
    pub cur: usize,
}

/// The scratch pool. `s9` is not in it: lowering code uses it by name for a value that must
/// survive a helper call or the scratch registers' reuse.
const TEMPS: [Reg; 6] = [regs::T1, regs::T2, regs::T4, regs::T5, regs::T6, regs::RA];

/// Guest registers that may be lent to the scratch pool, in order of preference.
const LENDERS: [Gpr; 9] =
    [Gpr::R11, Gpr::R10, Gpr::R9, Gpr::R8, Gpr::R15, Gpr::R14, Gpr::R13, Gpr::R12, Gpr::Rbp];

/// How a block attempt ended.
#[derive(Debug)]
pub enum Attempt {
    /// Code, link sites, the fault map entries, and where the out-of-line exit stubs start.
    Done(Vec<u8>, Vec<LinkSite>, Vec<PcEntry>, u32),
    /// Instruction `n` cannot be translated: retry with the block cut before it.
    Cut(usize),
    /// Instruction `n` needs more scratch registers: retry lending it guest registers.
    Wide(usize),
    /// Branches out of range.
    TooLarge,
}

/// Translate `block` (its first `limit` instructions; if fewer than all, the block exits with
/// UNSUPPORTED at the next one).
///
/// With `split`, a shorter block instead continues at the next instruction through a link site
/// (the block was too large for branch ranges, not untranslatable).
pub fn translate(block: &GuestBlock, limit: usize, split: bool, base: u64, ext: Ext, wide: &[usize]) -> Attempt {
    let insns = &block.insns[..limit];
    let (live_after, live_in) = liveness(insns);
    let mut l = Lower {
        _block: core::marker::PhantomData,
        a: Asm::new(ext),
        base,
        live_after,
        live_in,
        start: block.start,
        fs: FState::Unknown,
        stubs: Vec::new(),
        link_sites: Vec::new(),
        temps_used: 0,
        temp_overflow: false,
        borrowed: Vec::new(),
        pc_map: Vec::new(),
        cur: 0,
    };
    let mut ended = false;
    for (n, gi) in insns.iter().enumerate() {
        l.cur = n;
        l.temps_used = 0;
        l.temp_overflow = false;
        let lend = wide.contains(&n);
        let host_off = l.a.pos();
        let lent = if lend { l.borrow_for(&gi.insn) } else { [None, None] };
        l.pc_map.push(PcEntry {
            host_off,
            fixup_reg: encode_fixup(lent),
            _pad: 0,
            fixup_slot: OFF_SCRATCH as u16,
            guest_pc: gi.insn.ip(),
        });
        let r = l.insn(&gi.insn);
        // The kind word is kept current after every instruction, so a fault in the next one
        // sees the right flags; a conditional branch cannot fault and syncs where it needs to.
        let next_is_jcc = insns.get(n + 1).is_some_and(|g| is_near_jcc(&g.insn));
        if !next_is_jcc {
            l.sync_kind();
        }
        if lend {
            l.give_back();
        }
        if r.is_err() {
            return Attempt::Cut(n);
        }
        if l.temp_overflow {
            // Retry with guest registers lent to the pool, except where the instruction may leave
            // the block halfway (the lent registers would be wrong in the exit state).
            let leaves = crate::frontend::ends_block(&gi.insn)
                || matches!(gi.insn.mnemonic(), Mnemonic::Div | Mnemonic::Idiv);
            return if lend || leaves { Attempt::Cut(n) } else { Attempt::Wide(n) };
        }
        if crate::frontend::ends_block(&gi.insn) {
            ended = true;
            break;
        }
    }
    if !ended {
        l.sync_kind();
        if limit < block.insns.len() {
            let pc = block.insns[limit].insn.ip();
            if split {
                l.link_to(pc);
            } else {
                l.exit_now(exit::UNSUPPORTED, pc);
            }
        } else {
            match block.end {
                BlockEnd::FallThrough(pc) => l.link_to(pc),
                BlockEnd::Terminator => {
                    let next = insns.last().map_or(block.start, |i| i.next_ip());
                    l.link_to(next);
                }
                BlockEnd::Undecodable(pc) => l.exit_now(exit::INVALID_OPCODE, pc),
                BlockEnd::Unfetchable(pc) => l.exit_now(exit::NOT_EXECUTABLE, pc),
            }
        }
    }
    let body_len = l.a.pos();
    l.emit_stubs();
    l.a.finish();
    if l.a.overflow {
        return Attempt::TooLarge;
    }
    Attempt::Done(l.a.bytes(), l.link_sites, l.pc_map, body_len)
}

/// Fill the inline cache of [`Lower::jump_indirect`] whose link site is at `site`: the cached
/// guest target (`S-8`), the miss jump (`S-12`, now to the table) and the site (`S`, now to
/// `host`), each one naturally aligned 8- or 4-byte store (`CodeMemory::patch` makes it one
/// atomic write), in this order. `link` encodes the site's jump.
///
/// Why a thread running the block meanwhile, on another hart, is always right: every prefix of
/// the writes leaves a correct block.
/// - Nothing written: the empty tag (`EMPTY_TAG`) is a non-canonical address, never equal to
///   a guest target, so the cache misses into the fill exit (the dispatcher, which knows the
///   site is being or has been filled).
/// - Tag written: a match goes to `S`, which still jumps to the table (correct for any
///   target); a miss still takes the fill exit.
/// - Tag and miss jump written: a miss goes to the table.
/// - All three: a match reaches `host`.
///
/// So a reader can pair the new tag with the old target (the table: correct) but never a new
/// target with an old tag: the only old tag is `EMPTY_TAG`, which matches nothing (and the
/// jump at `S` is fetched only once the branch on the loaded tag has resolved). This relies on a
/// filled cache never being filled again with another guest while a thread may run the block
/// (the dispatcher fills an `INDIRECT` site once; unlinking restores only the 8 site bytes and
/// relinking targets the same guest), because a reader that loaded the old tag could otherwise
/// fetch the new target.
pub fn fill_inline_cache(
    site: u64,
    guest: u64,
    link: &[u8],
    patch: &mut dyn FnMut(u64, &[u8]),
) {
    patch(site - 8, &guest.to_le_bytes());
    // jal zero, +20: from S-12 to the table right after the 8-byte site.
    let miss = super::encode::enc_j(Op::Jal, Reg::ZERO, 20);
    patch(site - 12, &miss.to_le_bytes());
    patch(site, link);
}

/// The tag of an empty inline cache: the words `addi zero,zero,0` and `addi zero,zero,-1`,
/// which read as a u64 are `0xfff00013_00000013`, non-canonical (bits 63..48 set, bit 47 clear),
/// so never an x86-64 guest address.
pub const EMPTY_TAG: u64 = 0xfff0_0013_0000_0013;

/// The fault-map repair word for the registers lent to an instruction: [`NO_FIXUP`] for none,
/// else the first one's index in the low nibble and, if a second was lent, its index + 1 in the
/// high nibble; their values sit in `ctx.scratch[0]` and `ctx.scratch[1]`.
pub fn encode_fixup(lent: [Option<Gpr>; 2]) -> u8 {
    match lent {
        [None, _] => NO_FIXUP,
        [Some(a), None] => a as u8,
        [Some(a), Some(b)] => a as u8 | (b as u8 + 1) << 4,
    }
}

/// Inverse of [`encode_fixup`]: (guest register, `ctx.scratch` word) pairs to restore.
pub fn decode_fixup(w: u8) -> [Option<(usize, usize)>; 2] {
    if w == NO_FIXUP {
        return [None, None];
    }
    let second = (w >> 4).checked_sub(1).map(|b| (usize::from(b), 1));
    [Some((usize::from(w & 15), 0)), second]
}

/// Flags each instruction may leave unchanged although iced lists them as written: shifts and
/// rotates whose count may be zero.
fn count_may_be_zero(i: &Instruction) -> bool {
    use Mnemonic::*;
    if !matches!(i.mnemonic(), Shl | Shr | Sar | Sal | Rol | Ror | Rcl | Rcr | Shld | Shrd) {
        return false;
    }
    let last = i.op_count() - 1;
    if i.op_kind(last) == OpKind::Immediate8 {
        let bits = op_bits(i, 0);
        let m = if bits == 64 { 63 } else { 31 };
        return u32::from(i.immediate8()) & m == 0;
    }
    true
}

/// A `jcc rel` (a conditional near branch: it reads flags, never faults).
fn is_near_jcc(i: &Instruction) -> bool {
    i.is_jcc_short_or_near()
}

/// Per instruction, the status flags (iced bits) some later instruction or the block exit may
/// read; and the flags the block reads before writing (assuming all live at its exits).
fn liveness(insns: &[GuestInsn]) -> (Vec<u32>, u32) {
    let mut out = vec![0; insns.len()];
    let mut live = STATUS;
    for (n, gi) in insns.iter().enumerate().rev() {
        out[n] = live;
        let i = &gi.insn;
        let kill = if count_may_be_zero(i) { 0 } else { i.rflags_modified() & STATUS };
        let mut read = i.rflags_read() & STATUS;
        if matches!(i.mnemonic(), Mnemonic::Div | Mnemonic::Idiv) {
            // A divide error leaves the block here with exact flags.
            read = STATUS;
        }
        live = (live & !kill) | read;
    }
    (out, live)
}

/// Width in bits of operand `n`.
pub fn op_bits(i: &Instruction, n: u32) -> u32 {
    match i.op_kind(n) {
        OpKind::Register => (i.op_register(n).size() * 8) as u32,
        OpKind::Memory => (i.memory_size().size() * 8) as u32,
        OpKind::Immediate8 => 8,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 16,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 32,
        _ => 64,
    }
}

/// The guest register behind an iced register, and whether it is a high-byte register.
pub fn gpr_of(r: Register) -> Option<(Gpr, bool)> {
    let high = matches!(r, Register::AH | Register::CH | Register::DH | Register::BH);
    if high {
        let g = match r {
            Register::AH => Gpr::Rax,
            Register::CH => Gpr::Rcx,
            Register::DH => Gpr::Rdx,
            _ => Gpr::Rbx,
        };
        return Some((g, true));
    }
    if !r.is_gpr() {
        return None;
    }
    let full = r.full_register();
    let n = (full as u32).checked_sub(Register::RAX as u32)?;
    Gpr::from_index(n as usize).map(|g| (g, false))
}

impl Lower<'_> {
    // ---- scratch registers ----

    /// A scratch register free until the end of the current instruction.
    pub fn tmp(&mut self) -> Reg {
        let n = self.temps_used;
        let r = if n < TEMPS.len() {
            TEMPS[n]
        } else if let Some(&r) = self.borrowed.get(n - TEMPS.len()) {
            r
        } else {
            self.temp_overflow = true;
            return TEMPS[TEMPS.len() - 1];
        };
        self.temps_used += 1;
        r
    }

    /// Free the scratch registers taken since the pool held `start` of them, keeping `r` (a
    /// result computed with them) in the first of those.
    pub fn compact(&mut self, start: usize, r: Reg) -> Reg {
        if self.temps_used <= start + 1 || !self.is_temp(r) {
            return r;
        }
        let dst = if start < TEMPS.len() { TEMPS[start] } else { self.borrowed[start - TEMPS.len()] };
        self.a.mv(dst, r);
        self.temps_used = start + 1;
        dst
    }

    /// Number of scratch registers taken so far in this instruction.
    pub fn temps_mark(&self) -> usize {
        self.temps_used
    }

    /// Whether `r` is a scratch register of the current instruction (so it may be overwritten).
    pub fn is_temp(&self, r: Reg) -> bool {
        TEMPS.contains(&r) || self.borrowed.contains(&r)
    }

    /// All scratch registers are dead again (their values were consumed or moved to `s9`).
    pub fn free_temps(&mut self) {
        self.temps_used = 0;
    }

    /// Lend up to two guest registers that `i` does not use to the scratch pool, saved in
    /// `ctx.scratch[0..2]` (see [`encode_fixup`] for how a fault map entry names them).
    fn borrow_for(&mut self, i: &Instruction) -> [Option<Gpr>; 2] {
        let mut f = iced_x86::InstructionInfoFactory::new();
        let info = f.info(i);
        let used: Vec<Gpr> = info
            .used_registers()
            .iter()
            .filter_map(|u| gpr_of(u.register()).map(|(g, _)| g))
            .collect();
        let mut lent = [None, None];
        for g in LENDERS {
            let n = self.borrowed.len();
            if n == 2 {
                break;
            }
            // The second one must encode in a nibble as `index + 1` without making 0xff.
            if used.contains(&g) || (n == 1 && (g == Gpr::R15 || (g == Gpr::R14 && lent[0] == Some(Gpr::R15)))) {
                continue;
            }
            let r = regs::guest(g);
            self.a.sd(r, CTX, (OFF_SCRATCH + 8 * n) as i32);
            self.borrowed.push(r);
            lent[n] = Some(g);
        }
        lent
    }

    fn give_back(&mut self) {
        let b = core::mem::take(&mut self.borrowed);
        for (n, r) in b.into_iter().enumerate() {
            self.a.ld(r, CTX, (OFF_SCRATCH + 8 * n) as i32);
        }
    }

    /// Whether a branch to guest `target` may leave the lazy flags' kind word stale: it is this
    /// block's own start and the block writes every flag before reading it. (The lazy flag
    /// registers still hold the values; only their description in memory is skipped, as for
    /// flags that are dead inside a block.)
    pub fn flags_dead_at(&self, target: u64) -> bool {
        target == self.start && self.live_in == 0
    }

    /// Guest flags (iced bits) live after the current instruction.
    pub fn live(&self) -> u32 {
        self.live_after[self.cur]
    }

    /// Whether any of the flags the current instruction writes is live after it.
    pub fn flags_live(&self, i: &Instruction) -> bool {
        self.live() & (i.rflags_modified() & STATUS) != 0
    }

    // ---- operands ----

    /// Operand `n` of `i`, computing a memory address into scratch registers if needed.
    pub fn loc(&mut self, i: &Instruction, n: u32) -> Result<Loc, Unsupp> {
        match i.op_kind(n) {
            OpKind::Register => {
                let (g, high) = gpr_of(i.op_register(n)).ok_or(Unsupp)?;
                Ok(Loc::Reg(g, high))
            }
            OpKind::Memory => Ok(Loc::Mem(self.addr(i)?)),
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
            | OpKind::Immediate32to64 => Ok(Loc::Imm(i.immediate(n))),
            _ => Err(Unsupp),
        }
    }

    /// The address of `i`'s memory operand.
    pub fn addr(&mut self, i: &Instruction) -> Result<Addr, Unsupp> {
        let seg = match i.memory_segment() {
            Register::FS => Some(OFF_FS_BASE),
            Register::GS => Some(OFF_GS_BASE),
            Register::DS | Register::SS | Register::ES | Register::CS | Register::None => None,
            _ => return Err(Unsupp),
        };
        let base = i.memory_base();
        let index = i.memory_index();
        let disp = i.memory_displacement64() as i64;
        let addr32 = base.size() == 4 || index.size() == 4;
        // At most one scratch register: t0 carries the scaled index, a large displacement or
        // the segment base for the moment it takes to add them.
        let t0 = regs::T0;
        let mut addr = if base == Register::RIP || base == Register::EIP {
            let t = self.tmp();
            let target = if base == Register::EIP { disp as u64 & 0xffff_ffff } else { disp as u64 };
            self.a.li(t, target);
            Addr { base: t, off: 0 }
        } else {
            let b = if base == Register::None { None } else { Some(regs::guest(gpr_of(base).ok_or(Unsupp)?.0)) };
            let x = if index == Register::None { None } else { Some(regs::guest(gpr_of(index).ok_or(Unsupp)?.0)) };
            let sh = i.memory_index_scale().trailing_zeros();
            match (b, x) {
                (Some(b), None) if fits_i12(disp) && !addr32 => Addr { base: b, off: disp as i32 },
                (None, None) => {
                    let t = self.tmp();
                    let d = if addr32 { disp as u64 & 0xffff_ffff } else { disp as u64 };
                    self.a.li(t, d);
                    Addr { base: t, off: 0 }
                }
                (b, x) => {
                    let t = self.tmp();
                    match (b, x) {
                        (Some(b), Some(x)) => self.a.add_shifted(t, b, x, sh, t0),
                        (None, Some(x)) => self.a.slli(t, x, sh),
                        (Some(b), None) => self.a.mv(t, b),
                        (None, None) => {}
                    }
                    if addr32 {
                        self.a.add_imm(t, t, disp, t0);
                        self.a.zext(t, t, 32);
                        Addr { base: t, off: 0 }
                    } else if fits_i12(disp) {
                        Addr { base: t, off: disp as i32 }
                    } else {
                        self.a.add_imm(t, t, disp, t0);
                        Addr { base: t, off: 0 }
                    }
                }
            }
        };
        if let Some(off) = seg {
            let d = if self.is_temp(addr.base) { addr.base } else { self.tmp() };
            self.a.ld(t0, CTX, off as i32);
            self.a.r(Op::Add, d, addr.base, t0);
            addr = Addr { base: d, off: addr.off };
        }
        Ok(addr)
    }

    /// A scratch register holding the full address `at` (its base, when that is already one).
    pub fn addr_reg(&mut self, at: Addr) -> Reg {
        if self.is_temp(at.base) {
            if at.off != 0 {
                self.a.addi(at.base, at.base, at.off);
            }
            return at.base;
        }
        let p = self.tmp();
        self.a.addi(p, at.base, at.off);
        p
    }

    /// Load `bits` from `at`, zero-extended, into `rd`.
    pub fn load(&mut self, rd: Reg, at: Addr, bits: u32) {
        let op = match bits {
            8 => Op::Lbu,
            16 => Op::Lhu,
            32 => Op::Lwu,
            _ => Op::Ld,
        };
        self.a.i(op, rd, at.base, at.off);
    }

    /// Load `bits` from `at`, sign-extended, into `rd`.
    pub fn load_signed(&mut self, rd: Reg, at: Addr, bits: u32) {
        let op = match bits {
            8 => Op::Lb,
            16 => Op::Lh,
            32 => Op::Lw,
            _ => Op::Ld,
        };
        self.a.i(op, rd, at.base, at.off);
    }

    /// Store the low `bits` of `rs` at `at`.
    pub fn store(&mut self, rs: Reg, at: Addr, bits: u32) {
        let op = match bits {
            8 => Op::Sb,
            16 => Op::Sh,
            32 => Op::Sw,
            _ => Op::Sd,
        };
        self.a.s(op, rs, at.base, at.off);
    }

    /// A register whose low `bits` hold the operand (higher bits arbitrary).
    pub fn read(&mut self, loc: Loc, bits: u32) -> Reg {
        match loc {
            Loc::Reg(g, false) => regs::guest(g),
            Loc::Reg(g, true) => {
                let t = self.tmp();
                self.a.srli(t, regs::guest(g), 8);
                t
            }
            Loc::Mem(at) => {
                let t = self.tmp();
                self.load(t, at, bits);
                t
            }
            Loc::Imm(v) => {
                if v == 0 {
                    return Reg::ZERO;
                }
                let t = self.tmp();
                self.a.li(t, v);
                t
            }
        }
    }

    /// As [`Lower::read`] but zero-extended to 64 bits.
    pub fn read_zext(&mut self, loc: Loc, bits: u32) -> Reg {
        let r = self.read(loc, bits);
        match loc {
            Loc::Mem(_) => r,
            Loc::Imm(v) if bits == 64 || v >> bits == 0 => r,
            _ if bits == 64 => r,
            _ => {
                let t = if self.is_temp(r) { r } else { self.tmp() };
                self.a.zext(t, r, bits);
                t
            }
        }
    }

    /// As [`Lower::read`] but sign-extended from `bits` to 64.
    pub fn read_sext(&mut self, loc: Loc, bits: u32) -> Reg {
        if let Loc::Mem(at) = loc {
            let t = self.tmp();
            self.load_signed(t, at, bits);
            return t;
        }
        let r = self.read(loc, bits);
        if bits == 64 {
            return r;
        }
        let t = if self.is_temp(r) { r } else { self.tmp() };
        self.a.sext(t, r, bits);
        t
    }

    /// Write the low `bits` of `v` to a guest operand with x86 rules: 32-bit register writes
    /// zero-extend, 8/16-bit ones merge into the old value.
    pub fn write(&mut self, loc: Loc, bits: u32, v: Reg) -> LResult {
        match loc {
            Loc::Reg(g, high) => {
                let d = regs::guest(g);
                match (bits, high) {
                    (64, _) => self.a.mv(d, v),
                    (32, _) => self.a.zext(d, v, 32),
                    (8, false) => {
                        // t0 is free inside an instruction body (only exits and links use it).
                        let t = regs::T0;
                        self.a.i(Op::Andi, t, v, 0xff);
                        self.a.i(Op::Andi, d, d, -256);
                        self.a.r(Op::Or, d, d, t);
                    }
                    (_, false) => {
                        let t = regs::T0;
                        self.a.zext(t, v, bits);
                        self.a.srli(d, d, bits);
                        self.a.slli(d, d, bits);
                        self.a.r(Op::Or, d, d, t);
                    }
                    (_, true) => {
                        // d = d[63:16] | v[7:0] << 8 | d[7:0]
                        let t = regs::T0;
                        let u = self.tmp();
                        self.a.i(Op::Andi, t, v, 0xff);
                        self.a.slli(t, t, 8);
                        self.a.i(Op::Andi, u, d, 0xff);
                        self.a.r(Op::Or, t, t, u);
                        self.a.srli(d, d, 16);
                        self.a.slli(d, d, 16);
                        self.a.r(Op::Or, d, d, t);
                    }
                }
                Ok(())
            }
            Loc::Mem(at) => {
                self.store(v, at, bits);
                Ok(())
            }
            Loc::Imm(_) => Err(Unsupp),
        }
    }

    /// A destination register to compute a `bits`-wide result for `loc` into: the guest register
    /// itself for 64-bit register destinations, else a scratch.
    pub fn dest_reg(&mut self, loc: Loc, bits: u32) -> Reg {
        match loc {
            Loc::Reg(g, false) if bits == 64 || bits == 32 => regs::guest(g),
            _ => self.tmp(),
        }
    }

    // ---- flags bookkeeping ----

    /// Copy an operation's operands and result into the pinned flag registers and record the kind.
    /// Logic flags depend on the result only, so their operands are not copied.
    pub fn set_flags(&mut self, kind: Kind, bits: u32, src1: Reg, src2: Reg, res: Reg) {
        if kind != Kind::Logic {
            self.a.mv(F_SRC1, src1);
            self.a.mv(F_SRC2, src2);
        }
        self.a.mv(F_RES, res);
        self.fs = FState::Lazy { kind, bits, synced: false };
    }

    /// Make the kind word in memory agree with the static state.
    pub fn sync_kind(&mut self) {
        if let FState::Lazy { kind, bits, synced: false } = self.fs {
            self.a.li(regs::T0, kind.word(bits));
            self.a.sd(regs::T0, CTX, flags::OFF_KIND);
            self.fs = FState::Lazy { kind, bits, synced: true };
        }
    }

    /// Store the guest registers the host ABI clobbers, call the helper whose address is in the
    /// context word `slot` with `a0 = ctx`, and reload them. Scratch registers other than `s9`
    /// do not survive.
    pub fn call_helper(&mut self, slot: i32) {
        self.sync_kind();
        for g in regs::CALLER_SAVED_GUESTS {
            self.a.sd(regs::guest(g), CTX, (OFF_GPR + 8 * g as usize) as i32);
        }
        self.a.sd(F_SRC1, CTX, flags::OFF_SRC1);
        self.a.sd(F_SRC2, CTX, flags::OFF_SRC2);
        self.a.sd(F_RES, CTX, flags::OFF_RES);
        // In TSO-fence mode a helper's own guest-memory accesses (SSE/x87 operands) are plain
        // Rust loads and stores: full fences around the call keep x86's order around them. The
        // flag helper touches only the context.
        let fence = self.a.ext.tso_fences && slot != OFF_MAT_FN;
        if fence {
            self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
        }
        self.a.mv(Reg::A0, CTX);
        self.a.ld(Reg::RA, CTX, slot);
        self.a.i(Op::Jalr, Reg::RA, Reg::RA, 0);
        if fence {
            self.a.fence(FENCE_R | FENCE_W, FENCE_R | FENCE_W);
        }
        for g in regs::CALLER_SAVED_GUESTS {
            self.a.ld(regs::guest(g), CTX, (OFF_GPR + 8 * g as usize) as i32);
        }
    }

    /// Make `ctx.cpu.rflags` exact (no code if it already is).
    pub fn materialize(&mut self) {
        if self.fs != FState::Exact {
            self.call_helper(OFF_MAT_FN);
            self.fs = FState::Exact;
        }
    }

    // ---- exits ----

    /// A label that, when jumped to, leaves generated code with `reason` at guest `rip`, with the
    /// flag state of this point.
    pub fn exit_label(&mut self, reason: u64, rip: u64) -> Label {
        let l = self.a.label();
        let flags = match self.fs {
            FState::Lazy { kind, bits, synced: false } => Some((kind, bits)),
            _ => None,
        };
        self.stubs.push((l, StubKind::Exit { reason, rip, flags }));
        l
    }

    /// Leave generated code here with `reason` at `rip`.
    pub fn exit_now(&mut self, reason: u64, rip: u64) {
        self.sync_kind();
        let l = self.exit_label(reason, rip);
        self.a.j(l);
    }

    /// A link site (initially jumping to a stub that exits with LOOKUP) for guest `target`.
    pub fn link_to(&mut self, target: u64) {
        self.sync_kind();
        self.align_link_site();
        let site = self.a.pos();
        self.mark_resume_point(site, target);
        let l = self.a.label();
        self.a.j(l);
        self.a.j(l);
        self.link_sites.push(LinkSite { offset: site, target });
        self.stubs.push((l, StubKind::Link { target, site, flags: None }));
    }

    /// As [`Lower::link_to`] for a target that writes the flags before reading them (see
    /// [`Lower::flags_dead_at`]): the linked jump leaves the kind word as it is; the unlinked
    /// path through the dispatcher records it, so the dispatcher always sees exact flags.
    pub fn link_to_flags_dead(&mut self, target: u64) {
        let flags = match self.fs {
            FState::Lazy { kind, bits, synced: false } => Some((kind, bits)),
            _ => None,
        };
        self.align_link_site();
        let site = self.a.pos();
        // The flags are dead at `target`, so stale flags in the kind word are harmless there.
        self.mark_resume_point(site, target);
        let l = self.a.label();
        self.a.j(l);
        self.a.j(l);
        self.link_sites.push(LinkSite { offset: site, target });
        self.stubs.push((l, StubKind::Link { target, site, flags }));
    }

    /// Pad with a `nop` so that the link site emitted next is 8-byte aligned: the dispatcher
    /// patches it with one 8-byte atomic store (`CodeMemory::patch`), so a thread running it
    /// sees the old or the new pair of words, never one of each. Both words of an unlinked site
    /// jump to its stub, and both forms of a linked one ([`crate::isa::Backend::encode_link`])
    /// decide in their first word or need both new words: a hart that fetched the two words
    /// at different times (RISC-V promises single-instruction fetch atomicity only) still
    /// reaches the stub or the target, because `(auipc, j stub)` goes to the stub and
    /// `(j stub, jalr)` never reaches the `jalr`.
    fn align_link_site(&mut self) {
        if !(self.base + u64::from(self.a.pos())).is_multiple_of(8) {
            self.a.addi(Reg::ZERO, Reg::ZERO, 0);
        }
    }

    /// Record that at host offset `site` (a link site) the guest state is exact and about to
    /// continue at `target`, so an asynchronous signal landing on the jump can leave there
    /// (`fault::FaultMap::lookup_exact`). Not while guest registers are lent to the scratch pool.
    fn mark_resume_point(&mut self, site: u32, target: u64) {
        if !self.borrowed.is_empty() {
            return;
        }
        let e = PcEntry { host_off: site, fixup_reg: NO_FIXUP, _pad: 0, fixup_slot: OFF_SCRATCH as u16, guest_pc: target };
        let i = self.pc_map.partition_point(|p| p.host_off <= site);
        self.pc_map.insert(i, e);
    }

    /// Jump to the guest address in `t` (any register but `t0`): through a one-entry inline
    /// cache, then the indirect-branch table, exiting with LOOKUP on a miss.
    ///
    /// ```text
    ///       (nop to make the data word 8-aligned)
    ///  A:   auipc x, 0 ; ld y, 16(x)     y = the cached guest target (two nops while empty)
    ///       beq y, t, site
    ///  S-12 jal fill                     → `table` once filled
    ///  S-8  .dword cached guest target
    ///  S:   jal table ; nop              link site (INDIRECT) → the cached target's code
    ///  table: probe ctx.lookup (tag, host, tag again), jump to the host code, or exit
    ///         LOOKUP (no link)
    ///  fill:  exit LOOKUP with exit_arg = S, so the dispatcher fills the cache
    /// ```
    ///
    /// The fixed offsets around `S` are what [`fill_inline_cache`] patches.
    pub fn jump_indirect(&mut self, t: Reg) {
        use crate::ctx::{OFF_LOOKUP, OFF_LOOKUP_MASK};
        self.sync_kind();
        // Two probe registers distinct from the target (which is often a scratch register).
        let mut free = [Reg::T1, Reg::T2, Reg::T4].into_iter().filter(|&r| r != t);
        let (x, y) = (free.next().unwrap_or(Reg::T5), free.next().unwrap_or(Reg::T5));
        if !(self.base + u64::from(self.a.pos())).is_multiple_of(8) {
            self.a.addi(Reg::ZERO, Reg::ZERO, 0);
        }
        self.a.word(super::encode::enc_u(Op::Auipc, x, 0));
        // Raw (never fenced): the cached word sits at a fixed distance from the `auipc`.
        self.a.word(enc_i(Op::Ld, y, x, 16));
        let (hit, fill, table) = (self.a.label(), self.a.label(), self.a.label());
        self.a.b(Op::Beq, y, t, hit);
        self.a.j(fill);
        // The empty cache: `EMPTY_TAG`, two words that disassemble cleanly and make a
        // non-canonical address, so no guest target matches it.
        self.a.word(EMPTY_TAG as u32);
        self.a.word((EMPTY_TAG >> 32) as u32);
        self.a.bind(hit);
        let site = self.a.pos();
        self.a.j(table);
        self.a.addi(Reg::ZERO, Reg::ZERO, 0);
        self.link_sites.push(LinkSite { offset: site, target: crate::isa::INDIRECT });
        self.a.bind(table);
        self.a.ld(x, CTX, OFF_LOOKUP_MASK as i32);
        self.a.r(Op::And, x, t, x);
        self.a.slli(x, x, 4);
        self.a.ld(y, CTX, OFF_LOOKUP as i32);
        self.a.r(Op::Add, x, x, y);
        // The dispatcher (re)publishes an entry as guest = EMPTY, host, then guest (release,
        // `BlockMap::publish`), while this probe runs on other harts. Checking the tag once
        // before the host load is not enough: a thread that loads the old tag, stalls (it is
        // preempted, or its hart is slow), and then loads the host word after a republish of the
        // slot for another guest (a collision: another target with the same low bits) pairs the
        // old tag with the new block and runs the wrong guest code. So, seqlock style, the tag
        // is loaded again after the host word and must still be the target: the writer's
        // EMPTY store precedes its host store, so a host word newer than the first tag load
        // makes the second tag load see EMPTY or the other guest.
        //
        // The three loads must be performed in program order, which RVWMO allows to reorder.
        // Each one's address is made syntactically dependent on the previous load's result
        // (preserved program order, rule 9), so no fence is needed in any mode: `guest ^ target`
        // (zero on a hit) is added to the host load's address, and `- host + host` to the second
        // tag load's. All three are shared-table reads, not guest accesses: emitted raw, without
        // the TSO fences.
        self.a.word(enc_i(Op::Ld, y, x, 0));
        let miss = self.a.label();
        self.a.r(Op::Xor, y, y, t);
        self.a.b(Op::Bne, y, Reg::ZERO, miss);
        self.a.r(Op::Add, x, x, y);
        self.a.word(enc_i(Op::Ld, y, x, 8));
        self.a.r(Op::Sub, x, x, y);
        self.a.r(Op::Add, x, x, y);
        self.a.word(enc_i(Op::Ld, x, x, 0));
        self.a.b(Op::Bne, x, t, miss);
        self.a.i(Op::Jalr, Reg::ZERO, y, 0);
        self.a.bind(miss);
        self.a.sd(t, CTX, OFF_RIP as i32);
        self.a.li(x, exit::LOOKUP);
        self.a.sd(x, CTX, OFF_EXIT_REASON as i32);
        self.a.sd(Reg::ZERO, CTX, OFF_EXIT_ARG as i32);
        self.a.ld(x, CTX, OFF_EXIT_FN);
        self.a.i(Op::Jalr, Reg::ZERO, x, 0);
        self.a.bind(fill);
        self.a.sd(t, CTX, OFF_RIP as i32);
        self.a.li(x, exit::LOOKUP);
        self.a.sd(x, CTX, OFF_EXIT_REASON as i32);
        self.a.li(x, self.base + u64::from(site));
        self.a.sd(x, CTX, OFF_EXIT_ARG as i32);
        self.a.ld(x, CTX, OFF_EXIT_FN);
        self.a.i(Op::Jalr, Reg::ZERO, x, 0);
    }

    fn emit_stubs(&mut self) {
        let stubs = core::mem::take(&mut self.stubs);
        let t = regs::T0;
        for (l, k) in stubs {
            self.a.bind(l);
            match k {
                StubKind::Link { target, site, flags } => {
                    if let Some((kind, bits)) = flags {
                        self.a.li(t, kind.word(bits));
                        self.a.sd(t, CTX, flags::OFF_KIND);
                    }
                    self.a.li(t, target);
                    self.a.sd(t, CTX, OFF_RIP as i32);
                    self.a.li(t, self.base + u64::from(site));
                    self.a.sd(t, CTX, OFF_EXIT_ARG as i32);
                    self.a.li(t, exit::LOOKUP);
                }
                StubKind::Exit { reason, rip, flags } => {
                    if let Some((kind, bits)) = flags {
                        self.a.li(t, kind.word(bits));
                        self.a.sd(t, CTX, flags::OFF_KIND);
                    }
                    self.a.li(t, rip);
                    self.a.sd(t, CTX, OFF_RIP as i32);
                    self.a.li(t, reason);
                }
            }
            self.a.sd(t, CTX, OFF_EXIT_REASON as i32);
            self.a.ld(t, CTX, OFF_EXIT_FN);
            self.a.i(Op::Jalr, Reg::ZERO, t, 0);
        }
    }

    // ---- the instruction switch ----

    fn insn(&mut self, i: &Instruction) -> LResult {
        use Mnemonic as M;
        if i.code() == Code::INVALID {
            return Err(Unsupp);
        }
        match i.mnemonic() {
            M::Mov | M::Movzx | M::Movsx | M::Movsxd | M::Lea | M::Cbw | M::Cwde | M::Cdqe
            | M::Cwd | M::Cdq | M::Cqo | M::Xchg | M::Bswap | M::Setb | M::Setae | M::Sete
            | M::Setne | M::Setbe | M::Seta | M::Sets | M::Setns | M::Setp | M::Setnp | M::Setl
            | M::Setge | M::Setle | M::Setg | M::Seto | M::Setno | M::Cmovb | M::Cmovae
            | M::Cmove | M::Cmovne | M::Cmovbe | M::Cmova | M::Cmovs | M::Cmovns | M::Cmovp
            | M::Cmovnp | M::Cmovl | M::Cmovge | M::Cmovle | M::Cmovg | M::Cmovo | M::Cmovno => {
                self.lower_move(i)
            }
            _ if super::atomic::is_cx16(i) => self.lower_cx16(i),
            _ if super::x87::is_x87(i) => self.lower_x87(i),
            _ if super::sse::is_sse(i) => self.lower_sse(i),
            _ => self.lower_other(i),
        }
    }
}
