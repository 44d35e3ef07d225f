//! riscv64 host: the two fixed entry routines of the bridge's host-side stubs and the stub format
//! (see the x86_64 module for what each routine does; here the descriptor arrives in t2, the
//! arguments in a0-a7 and fa0-fa7, stack arguments at sp, results leave in a0/a1 and fa0/fa1).

/// Saved a0-a7; fa0-fa7 (raw bits); results a0, a1, fa0, fa1; the descriptor; ra; which routine
/// entered (the Rust function's address); a spare word. 192 bytes, offsets fixed by the routines.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Frame {
    pub int: [u64; 8],
    pub fp: [u64; 8],
    pub ret_int: [u64; 2],
    pub ret_fp: [u64; 2],
    pub desc: u64,
    pub ra: u64,
    pub which: u64,
    pub spare: u64,
}

const _: () = assert!(core::mem::size_of::<Frame>() == 192);

/// A host stub: `auipc t0, 0; ld t2, 16(t0); ld t0, 24(t0); jr t0; .dword desc; .dword entry`.
pub fn stub(desc: u64, entry: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(32);
    for w in [0x0000_0297u32, 0x0102_b383, 0x0182_b283, 0x0002_8067] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(&desc.to_le_bytes());
    v.extend_from_slice(&entry.to_le_bytes());
    v
}

/// Make stubs just written visible to instruction fetch on every hart (riscv_flush_icache(2)).
pub fn flush_icache(start: u64, len: usize) {
    const SYS_RISCV_FLUSH_ICACHE: libc::c_long = 259;
    // SAFETY: the syscall only synchronises instruction fetch for the range.
    unsafe { libc::syscall(SYS_RISCV_FLUSH_ICACHE, start, start + len as u64, 0u64) };
}

unsafe extern "C" {
    /// See the module doc.
    pub fn ldnc_cb_entry();
    /// See the module doc.
    pub fn ldnc_wrap_entry();
}

core::arch::global_asm!(
    ".pushsection .text.ldnc_bridge_rv,\"ax\",@progbits",
    ".p2align 2",
    ".option push",
    ".option arch, +d",
    ".globl ldnc_cb_entry",
    "ldnc_cb_entry:",
    "lla t1, {cb}",
    "j .Lldnc_bridge_entry",
    ".globl ldnc_wrap_entry",
    "ldnc_wrap_entry:",
    "lla t1, {wrap}",
    // Both: t2 = descriptor, t1 = the Rust function; the frame keeps which one for the tails.
    ".Lldnc_bridge_entry:",
    "addi sp, sp, -192",
    "sd ra, 168(sp)",
    "sd t1, 176(sp)",
    "jal t0, .Lldnc_bridge_save",
    "mv a0, t2",
    "mv a1, sp",
    "addi a2, sp, 192",
    "jalr ra, 0(t1)",
    "ld t1, 176(sp)",
    "lla t0, {wrap}",
    "beq t1, t0, 2f",
    "ld a0, 128(sp)",
    "ld a1, 136(sp)",
    "fld fa0, 144(sp)",
    "fld fa1, 152(sp)",
    "ld ra, 168(sp)",
    "addi sp, sp, 192",
    "ret",
    "2:",
    "ld a0, 0(sp)",
    "ld a1, 8(sp)",
    "ld a2, 16(sp)",
    "ld a3, 24(sp)",
    "ld a4, 32(sp)",
    "ld a5, 40(sp)",
    "ld a6, 48(sp)",
    "ld a7, 56(sp)",
    "fld fa0, 64(sp)",
    "fld fa1, 72(sp)",
    "fld fa2, 80(sp)",
    "fld fa3, 88(sp)",
    "fld fa4, 96(sp)",
    "fld fa5, 104(sp)",
    "fld fa6, 112(sp)",
    "fld fa7, 120(sp)",
    "ld t2, 160(sp)",
    "ld t1, 0(t2)",
    "ld ra, 168(sp)",
    "addi sp, sp, 192",
    "jr t1",
    // The argument registers and the descriptor into the frame at sp; returns through t0.
    ".Lldnc_bridge_save:",
    "sd a0, 0(sp)",
    "sd a1, 8(sp)",
    "sd a2, 16(sp)",
    "sd a3, 24(sp)",
    "sd a4, 32(sp)",
    "sd a5, 40(sp)",
    "sd a6, 48(sp)",
    "sd a7, 56(sp)",
    "fsd fa0, 64(sp)",
    "fsd fa1, 72(sp)",
    "fsd fa2, 80(sp)",
    "fsd fa3, 88(sp)",
    "fsd fa4, 96(sp)",
    "fsd fa5, 104(sp)",
    "fsd fa6, 112(sp)",
    "fsd fa7, 120(sp)",
    "sd t2, 160(sp)",
    "jr t0",
    ".option pop",
    ".popsection",
    cb = sym super::super::callback::ldnc_callback,
    wrap = sym super::super::callback::ldnc_wrap_args,
);

