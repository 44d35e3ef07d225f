//! Block discovery: decoding guest x86-64 code with iced-x86 from a [`CodeSource`] into a
//! [`GuestBlock`], a straight run of instructions that ends at the first control transfer or at an
//! instruction that must leave the code cache (syscall, cpuid), so that every backend sees the same
//! blocks.

use iced_x86::{Code, Decoder, DecoderOptions, FlowControl, Instruction};

/// Longest x86 instruction.
pub const MAX_INSN_LEN: usize = 15;

/// Most instructions in one block; a longer run falls through to the next block.
pub const MAX_BLOCK_INSNS: usize = 128;

/// Where the translator reads guest code from. Guest memory is identity mapped, so an
/// implementation copies from the guest address itself after checking it is mapped and readable.
pub trait CodeSource {
    /// Copy up to `buf.len()` bytes of guest memory at `pc` into `buf`; return how many were
    /// readable (0 if `pc` itself is not).
    fn fetch(&self, pc: u64, buf: &mut [u8]) -> usize;

    /// Code in `[start, end)` was just translated. If the guest can write there, the runtime
    /// write-protects it on the host, reports faulting writes to [`crate::smc::SmcState`], and
    /// returns `true`: such blocks are never linked to directly. The default (read-only code)
    /// returns `false`.
    fn watch_code(&self, _start: u64, _end: u64) -> bool {
        false
    }
}

/// A [`CodeSource`] over a fixed list of readable `[start, end)` ranges of this address space.
#[derive(Clone, Debug, Default)]
pub struct RangeSource {
    ranges: Vec<(u64, u64)>,
}

impl RangeSource {
    /// Readable ranges `[start, end)`.
    ///
    /// # Safety
    /// Every byte in every range must stay mapped and readable for as long as this source is used.
    pub unsafe fn new(ranges: Vec<(u64, u64)>) -> Self {
        RangeSource { ranges }
    }

    /// Add a readable range.
    ///
    /// # Safety
    /// As for [`RangeSource::new`].
    pub unsafe fn add(&mut self, start: u64, end: u64) {
        self.ranges.push((start, end));
    }
}

impl CodeSource for RangeSource {
    fn fetch(&self, pc: u64, buf: &mut [u8]) -> usize {
        for &(start, end) in &self.ranges {
            if pc >= start && pc < end {
                let n = buf.len().min((end - pc) as usize);
                // SAFETY: `[pc, pc + n)` lies inside a range the creator promised is readable.
                unsafe { core::ptr::copy_nonoverlapping(pc as *const u8, buf.as_mut_ptr(), n) };
                return n;
            }
        }
        0
    }
}

/// One decoded guest instruction with its bytes.
#[derive(Clone, Debug)]
pub struct GuestInsn {
    /// The decoded instruction (`ip()` is its guest address).
    pub insn: Instruction,
    /// Its encoding; the first `insn.len()` bytes are valid.
    pub bytes: [u8; MAX_INSN_LEN],
}

impl GuestInsn {
    /// The instruction's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.insn.len()]
    }

    /// Guest address of the next instruction.
    pub fn next_ip(&self) -> u64 {
        self.insn.next_ip()
    }
}

/// How a block ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockEnd {
    /// The last instruction transfers control or must leave the cache (branch, call, ret,
    /// syscall, cpuid, int3, ud2, hlt…); the backend translates it.
    Terminator,
    /// The block stopped at the size limit; execution continues at this address.
    FallThrough(u64),
    /// The bytes at this address do not decode (SIGILL if reached).
    Undecodable(u64),
    /// The address cannot be read (SIGSEGV if reached).
    Unfetchable(u64),
}

/// A straight run of guest instructions.
#[derive(Clone, Debug)]
pub struct GuestBlock {
    /// Guest address of the first instruction.
    pub start: u64,
    /// The instructions, in order. May be empty when the block starts on an undecodable or
    /// unfetchable address.
    pub insns: Vec<GuestInsn>,
    /// How it ends.
    pub end: BlockEnd,
}

impl GuestBlock {
    /// The guest byte range `[start, end)` the block's code was read from (for self-modifying-code
    /// tracking).
    pub fn guest_range(&self) -> (u64, u64) {
        let end = self.insns.last().map_or(self.start, |i| i.next_ip());
        (self.start, end.max(self.start + 1))
    }
}

/// Whether `insn` ends a block: control transfers, and instructions the dispatcher handles.
pub fn ends_block(insn: &Instruction) -> bool {
    if insn.flow_control() != FlowControl::Next {
        return true;
    }
    matches!(
        insn.code(),
        Code::Syscall | Code::Cpuid | Code::Hlt | Code::Ud2 | Code::Int3 | Code::Sysenter
    )
}

/// Decode the block starting at `pc`.
pub fn decode_block(src: &dyn CodeSource, pc: u64) -> GuestBlock {
    let mut insns = Vec::new();
    let mut ip = pc;
    let end = loop {
        if insns.len() >= MAX_BLOCK_INSNS {
            break BlockEnd::FallThrough(ip);
        }
        let mut bytes = [0u8; MAX_INSN_LEN];
        let n = src.fetch(ip, &mut bytes);
        if n == 0 {
            break BlockEnd::Unfetchable(ip);
        }
        let mut decoder = Decoder::with_ip(64, &bytes[..n], ip, DecoderOptions::NONE);
        let insn = decoder.decode();
        if insn.is_invalid() {
            // A truncated read is reported as unfetchable: the bytes that would complete the
            // instruction are not readable.
            if n < MAX_INSN_LEN && decoder.last_error() == iced_x86::DecoderError::NoMoreBytes {
                break BlockEnd::Unfetchable(ip);
            }
            break BlockEnd::Undecodable(ip);
        }
        let stop = ends_block(&insn);
        ip = insn.next_ip();
        insns.push(GuestInsn { insn, bytes });
        if stop {
            break BlockEnd::Terminator;
        }
    };
    GuestBlock { start: pc, insns, end }
}

/// Decode the single instruction at `pc`, for messages.
pub fn decode_one(src: &dyn CodeSource, pc: u64) -> Option<GuestInsn> {
    let mut bytes = [0u8; MAX_INSN_LEN];
    let n = src.fetch(pc, &mut bytes);
    let mut decoder = Decoder::with_ip(64, &bytes[..n], pc, DecoderOptions::NONE);
    let insn = decoder.decode();
    (!insn.is_invalid()).then_some(GuestInsn { insn, bytes })
}

/// Intel-syntax text of an instruction, for messages.
pub fn format(insn: &Instruction) -> String {
    use iced_x86::Formatter;
    let mut f = iced_x86::IntelFormatter::new();
    let mut s = String::new();
    f.format(insn, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(code: &'static [u8]) -> (RangeSource, u64) {
        let start = code.as_ptr() as u64;
        // SAFETY: a static slice stays mapped for the whole test.
        (unsafe { RangeSource::new(vec![(start, start + code.len() as u64)]) }, start)
    }

    #[test]
    fn block_ends_at_first_branch() {
        // mov eax, 1; add eax, ebx; jne -2; nop
        static CODE: [u8; 8] = [0xb8, 1, 0, 0, 0, 0x01, 0xd8, 0x75];
        let (src, start) = source(&CODE);
        let b = decode_block(&src, start);
        assert_eq!(b.insns.len(), 2);
        assert_eq!(b.end, BlockEnd::Unfetchable(start + 7));
    }

    #[test]
    fn syscall_and_cpuid_end_blocks() {
        static CODE: [u8; 6] = [0x0f, 0x05, 0x0f, 0xa2, 0x90, 0x90];
        let (src, start) = source(&CODE);
        let b = decode_block(&src, start);
        assert_eq!(b.insns.len(), 1);
        assert_eq!(b.end, BlockEnd::Terminator);
        let b = decode_block(&src, start + 2);
        assert_eq!(b.insns.len(), 1);
        assert_eq!(b.insns[0].insn.code(), Code::Cpuid);
    }

    #[test]
    fn undecodable_bytes_end_the_block() {
        // nop; then 0x06 (push es) is invalid in 64-bit mode.
        static CODE: [u8; 3] = [0x90, 0x06, 0x90];
        let (src, start) = source(&CODE);
        let b = decode_block(&src, start);
        assert_eq!(b.insns.len(), 1);
        assert_eq!(b.end, BlockEnd::Undecodable(start + 1));
    }

    #[test]
    fn long_runs_fall_through() {
        static CODE: [u8; 200] = [0x90; 200];
        let (src, start) = source(&CODE);
        let b = decode_block(&src, start);
        assert_eq!(b.insns.len(), MAX_BLOCK_INSNS);
        assert_eq!(b.end, BlockEnd::FallThrough(start + MAX_BLOCK_INSNS as u64));
    }
}
