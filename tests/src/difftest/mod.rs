//! Differential instruction testing (DESIGN.md, "How correctness is checked", item 1): x86 snippets
//! run natively on an x86_64 machine and under the translator, and the resulting architectural
//! states are compared.
//!
//! This module owns the shared vocabulary of both worlds: the fixed memory layout in which a snippet
//! and its data live at the same addresses on both sides ([`Slot`]), the input and output states
//! ([`Case`], [`Outcome`]), the seeded generator ([`Rng`]), the wire format spoken with the
//! `x86-oracle` binary when the test itself runs under qemu-riscv64 ([`wire`]), and the comparison
//! ([`compare`]). Instruction forms and their operands come from [`gen`], the native runner from
//! [`native`] (x86_64 only), the translated runner and the per-family driver from [`harness`].

pub mod gen;
pub mod harness;
#[cfg(target_arch = "x86_64")]
pub mod native;
pub mod wire;

use std::fmt::{self, Write as _};

/// Base of the code region of slot 0; slot `n` is `n * SLOT_STRIDE` higher.
pub const CODE_BASE: u64 = 0x6000_0000;
/// Base of the data region of slot 0.
pub const DATA_BASE: u64 = 0x7000_0000;
/// Distance between the regions of two slots. Every address stays below 2 GiB, so absolute
/// `[disp32]` operands reach all of them.
pub const SLOT_STRIDE: u64 = 0x0010_0000;
/// Number of slots (concurrent users of the fixed addresses in one process).
pub const SLOTS: u8 = 32;
/// Size of each region.
pub const REGION_LEN: usize = 0x1_0000;
/// The part of the data region whose bytes are randomised, compared and reported; the rest must
/// stay zero.
pub const WINDOW: usize = 0x1000;
/// Most bytes a snippet may have (the native stubs live above).
pub const MAX_CODE: usize = 0x1000;
/// Offsets in the data window: memory operands land in `[MEM_LO, MEM_HI)`.
pub const MEM_LO: u64 = 0x40;
/// End of the memory-operand area.
pub const MEM_HI: u64 = 0x3c0;
/// String-instruction source buffer `[STR_SRC, STR_SRC + STR_LEN)`.
pub const STR_SRC: u64 = 0x400;
/// String-instruction destination buffer.
pub const STR_DST: u64 = 0x800;
/// Length of each string buffer.
pub const STR_LEN: u64 = 0x380;
/// Initial RSP offset in the window (stack grows down towards 0xc00).
pub const STACK_TOP: u64 = 0xe00;

/// The architectural inputs and outputs compared: GPRs, RFLAGS, XMM, MXCSR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    /// RAX..R15 in encoding order.
    pub gpr: [u64; 16],
    /// RFLAGS.
    pub rflags: u64,
    /// XMM0..15 as (low, high).
    pub xmm: [[u64; 2]; 16],
    /// MXCSR.
    pub mxcsr: u32,
}

/// One test case: a snippet, the registers it starts with and how its data window starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Case {
    /// Which slot's addresses the snippet was assembled for.
    pub slot: u8,
    /// Snippet bytes, placed at the slot's code base. The runner appends what ends it (`int3`
    /// under the translator, a jump to the epilogue natively).
    pub code: Vec<u8>,
    /// Initial registers.
    pub regs: Regs,
    /// Seed of the window's initial random bytes.
    pub mem_seed: u64,
    /// Bytes written over the random window before the run: (offset, bytes).
    pub patches: Vec<(u16, Vec<u8>)>,
}

/// The state after a snippet ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Registers after the run.
    pub regs: Regs,
    /// RIP after the terminating `int3` (natively: the equivalent address).
    pub rip: u64,
    /// The whole data window after the run.
    pub window: Vec<u8>,
    /// Whether some byte of the data region outside the window became non-zero.
    pub wrote_outside: bool,
}

/// Base of slot `n`'s code region.
pub fn code_base(slot: u8) -> u64 {
    CODE_BASE + u64::from(slot) * SLOT_STRIDE
}

/// Base of slot `n`'s data region.
pub fn data_base(slot: u8) -> u64 {
    DATA_BASE + u64::from(slot) * SLOT_STRIDE
}

/// splitmix64: small, fast, and good enough to spread edge cases; the stream is part of the
/// reproducibility contract (seed + case index name a case).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// A random element of a non-empty slice (the first if empty is impossible by construction).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// FNV-1a of a string, to derive per-form seeds from form names.
pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The window's initial bytes for a case (random from its seed, then the patches).
pub fn initial_window(case: &Case) -> Vec<u8> {
    let mut rng = Rng::new(case.mem_seed);
    let mut w = Vec::with_capacity(WINDOW);
    while w.len() < WINDOW {
        w.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    for (off, bytes) in &case.patches {
        let o = usize::from(*off);
        let end = (o + bytes.len()).min(WINDOW);
        if o < end {
            w[o..end].copy_from_slice(&bytes[..end - o]);
        }
    }
    w
}

/// What of an outcome is architecturally defined for one case, and so compared.
#[derive(Clone, Debug)]
pub struct Expect {
    /// RFLAGS bits compared (status flags and DF minus the undefined ones).
    pub flag_mask: u64,
    /// Per-GPR mask of the defined bits (all ones unless an instruction leaves a register
    /// undefined).
    pub gpr_mask: [u64; 16],
    /// (data base, initial RSP): bytes below the red zone of the initial or the final RSP, down to
    /// [`STACK_SCRATCH`] bytes below the lower one, are not compared. The SysV x86-64 ABI (§3.2.2) reserves only the
    /// 128 bytes below RSP; what lies further down may be overwritten at any time (signal
    /// handlers), and a translator may use it at block exits.
    pub stack: Option<(u64, u64)>,
    /// (XMM register, lanes): the low `lanes` f32 lanes hold hardware approximations (RCP, RSQRT)
    /// and are compared within the SDM's error bound instead of bit for bit.
    pub approx_f32: Option<(usize, usize)>,
}

/// Bytes below the red zone that a translator may use as scratch.
pub const STACK_SCRATCH: u64 = 256;

impl Default for Expect {
    fn default() -> Self {
        use translator::cpu::flags;
        Expect { flag_mask: flags::STATUS | flags::DF, gpr_mask: [u64::MAX; 16], stack: None, approx_f32: None }
    }
}

/// Register names in encoding order, for messages.
pub const GPR_NAMES: [&str; 16] = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15",
];

/// Text of the status flags set in `f`, e.g. `CF ZF`.
pub fn flag_text(f: u64) -> String {
    use translator::cpu::flags;
    let names =
        [(flags::CF, "CF"), (flags::PF, "PF"), (flags::AF, "AF"), (flags::ZF, "ZF"), (flags::SF, "SF"), (flags::OF, "OF"), (flags::DF, "DF")];
    let v: Vec<&str> = names.iter().filter(|(b, _)| f & b != 0).map(|(_, n)| *n).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(" ")
    }
}

/// One differing field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Field name (`rax`, `rflags`, `xmm3`, `mem[0x1a0]`…).
    pub field: String,
    /// Native value.
    pub native: String,
    /// Translated value.
    pub translated: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: native {} translated {}", self.field, self.native, self.translated)
    }
}

/// Fields where `tr` differs from `native` under `ex`.
pub fn compare(native: &Outcome, tr: &Outcome, ex: &Expect) -> Vec<Difference> {
    let mut d = Vec::new();
    let mut push = |field: String, n: String, t: String| d.push(Difference { field, native: n, translated: t });
    for (i, name) in GPR_NAMES.iter().enumerate() {
        let (n, t) = (native.regs.gpr[i] & ex.gpr_mask[i], tr.regs.gpr[i] & ex.gpr_mask[i]);
        if n != t {
            push((*name).into(), format!("{n:#018x}"), format!("{t:#018x}"));
        }
    }
    if native.rip != tr.rip {
        push("rip".into(), format!("{:#x}", native.rip), format!("{:#x}", tr.rip));
    }
    let (n, t) = (native.regs.rflags & ex.flag_mask, tr.regs.rflags & ex.flag_mask);
    if n != t {
        push(
            format!("rflags (mask {})", flag_text(ex.flag_mask)),
            format!("{n:#x} [{}]", flag_text(n)),
            format!("{t:#x} [{}]", flag_text(t)),
        );
    }
    for i in 0..16 {
        let (n, t) = (native.regs.xmm[i], tr.regs.xmm[i]);
        if let Some((r, lanes)) = ex.approx_f32.filter(|(r, _)| *r == i) {
            if !approx_equal(n, t, lanes) {
                push(
                    format!("xmm{r} (approximation, {lanes} lanes)"),
                    format!("{:016x}_{:016x}", n[1], n[0]),
                    format!("{:016x}_{:016x}", t[1], t[0]),
                );
            }
            continue;
        }
        if n != t {
            push(format!("xmm{i}"), format!("{:016x}_{:016x}", n[1], n[0]), format!("{:016x}_{:016x}", t[1], t[0]));
        }
    }
    if native.regs.mxcsr != tr.regs.mxcsr {
        push("mxcsr".into(), format!("{:#x}", native.regs.mxcsr), format!("{:#x}", tr.regs.mxcsr));
    }
    let scratch = ex.stack.map(|(data, rsp_in)| {
        let lo = rsp_in.min(native.regs.gpr[4]).wrapping_sub(128 + STACK_SCRATCH).wrapping_sub(data);
        let hi = rsp_in.max(native.regs.gpr[4]).wrapping_sub(128).wrapping_sub(data);
        (lo, hi)
    });
    let mut shown = 0;
    for (i, (a, b)) in native.window.iter().zip(tr.window.iter()).enumerate() {
        if scratch.is_some_and(|(lo, hi)| (i as u64) >= lo && (i as u64) < hi) {
            continue;
        }
        if a != b {
            shown += 1;
            if shown <= 16 {
                push(format!("mem[{i:#x}]"), format!("{a:#04x}"), format!("{b:#04x}"));
            }
        }
    }
    if shown > 16 {
        push("mem".into(), format!("{shown} bytes differ in total"), String::new());
    }
    if native.window.len() != tr.window.len() {
        push("window length".into(), native.window.len().to_string(), tr.window.len().to_string());
    }
    if tr.wrote_outside {
        push("memory outside the window".into(), "untouched".into(), "written".into());
    }
    d
}

/// Whether two RCP/RSQRT results agree: lanes below `lanes` within twice the SDM's bound of the
/// exact value (each may be off by 1.5 * 2^-12 relative), equal bits for specials and upper lanes.
fn approx_equal(a: [u64; 2], b: [u64; 2], lanes: usize) -> bool {
    let lane = |x: [u64; 2], i: usize| (x[i / 2] >> (32 * (i % 2))) as u32;
    (0..4).all(|i| {
        let (x, y) = (lane(a, i), lane(b, i));
        if i >= lanes || x == y {
            return x == y;
        }
        let (fx, fy) = (f32::from_bits(x), f32::from_bits(y));
        if !fx.is_normal() || !fy.is_normal() || fx.is_sign_negative() != fy.is_sign_negative() {
            return false;
        }
        ((fx - fy) / fx).abs() <= 3.0 * (2.0f32).powi(-12)
    })
}

/// The input registers of a case, for messages.
pub fn regs_text(r: &Regs) -> String {
    let mut s = String::new();
    for (i, v) in r.gpr.iter().enumerate() {
        let _ = write!(s, "{}={v:#x} ", GPR_NAMES[i]);
    }
    let _ = write!(s, "rflags={:#x} [{}] mxcsr={:#x}", r.rflags, flag_text(r.rflags), r.mxcsr);
    for (i, x) in r.xmm.iter().enumerate() {
        if x != &[0, 0] {
            let _ = write!(s, " xmm{i}={:016x}_{:016x}", x[1], x[0]);
        }
    }
    s
}

/// Errors of the differential harness's own machinery (not test failures).
#[derive(Debug)]
pub enum Error {
    /// A fixed region could not be mapped.
    Map { addr: u64, err: std::io::Error },
    /// No free slot.
    NoSlot,
    /// A case names a slot out of range or code too long.
    BadCase(&'static str),
    /// Malformed wire data.
    Wire(&'static str),
    /// Talking to the oracle failed.
    Oracle(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Map { addr, err } => write!(f, "cannot map the fixed test region at {addr:#x}: {err}"),
            Error::NoSlot => write!(f, "all {SLOTS} fixed test slots are in use"),
            Error::BadCase(why) => write!(f, "bad case: {why}"),
            Error::Wire(why) => write!(f, "malformed oracle data: {why}"),
            Error::Oracle(why) => write!(f, "x86 oracle: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// The code and data regions of one slot, mapped at their fixed addresses for as long as this
/// value lives.
#[derive(Debug)]
pub struct Slot {
    /// Slot number.
    pub n: u8,
}

fn map_fixed(addr: u64, prot: i32) -> Result<(), Error> {
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; a fresh anonymous private
    // mapping at an address nothing else uses is sound.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            REGION_LEN,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::Map { addr, err: std::io::Error::last_os_error() });
    }
    if p as u64 != addr {
        // An old kernel treating the flag as a hint: give it back.
        // SAFETY: `p` is the mapping just made.
        unsafe { libc::munmap(p, REGION_LEN) };
        return Err(Error::Map { addr, err: std::io::Error::from_raw_os_error(libc::EEXIST) });
    }
    Ok(())
}

impl Slot {
    /// Map slot `n`.
    pub fn map(n: u8) -> Result<Slot, Error> {
        if n >= SLOTS {
            return Err(Error::BadCase("slot out of range"));
        }
        map_fixed(code_base(n), libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC)?;
        if let Err(e) = map_fixed(data_base(n), libc::PROT_READ | libc::PROT_WRITE) {
            // SAFETY: the code region was mapped just above and nothing refers to it yet.
            unsafe { libc::munmap(code_base(n) as *mut libc::c_void, REGION_LEN) };
            return Err(e);
        }
        Ok(Slot { n })
    }

    /// Map the first free slot.
    pub fn acquire() -> Result<Slot, Error> {
        for n in 0..SLOTS {
            if let Ok(s) = Slot::map(n) {
                return Ok(s);
            }
        }
        Err(Error::NoSlot)
    }

    /// The code region.
    pub fn code(&mut self) -> &mut [u8] {
        // SAFETY: the region is mapped RW for our lifetime and only reached through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(code_base(self.n) as *mut u8, REGION_LEN) }
    }

    /// The data region.
    pub fn data(&mut self) -> &mut [u8] {
        // SAFETY: as for `code`.
        unsafe { std::slice::from_raw_parts_mut(data_base(self.n) as *mut u8, REGION_LEN) }
    }

    /// Put `case`'s window in place and clear the rest of the data region.
    pub fn load_window(&mut self, case: &Case) {
        let w = initial_window(case);
        let data = self.data();
        data[..WINDOW].copy_from_slice(&w);
        if data[WINDOW..].iter().any(|&b| b != 0) {
            data[WINDOW..].fill(0);
        }
    }

    /// The window after a run, and whether anything outside it was written.
    pub fn read_window(&mut self) -> (Vec<u8>, bool) {
        let data = self.data();
        let outside = data[WINDOW..].iter().any(|&b| b != 0);
        (data[..WINDOW].to_vec(), outside)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped by `Slot::map` and nothing borrows them past `self`.
        unsafe {
            libc::munmap(code_base(self.n) as *mut libc::c_void, REGION_LEN);
            libc::munmap(data_base(self.n) as *mut libc::c_void, REGION_LEN);
        }
    }
}
