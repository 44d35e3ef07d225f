//! x86_64 host: the two fixed entry routines of the bridge's host-side stubs and the stub format.
//!
//! - `ldnc_cb_entry`: native code called a host trampoline standing for a guest function. The
//!   trampoline left its descriptor in R11. The routine saves the argument registers (RDI..R9, RAX
//!   for a variadic callee's AL, XMM0-7) in a [`Frame`] on the stack, calls
//!   `ldnc_callback(desc, frame, stack_args)`, and returns RAX, RDX, XMM0, XMM1 from the frame.
//! - `ldnc_wrap_entry`: guest code called a native function that takes function pointers. The
//!   per-function stub left its descriptor in R11; the routine saves the argument registers,
//!   calls `ldnc_wrap_args(desc, frame, stack_args)` (which replaces guest function pointers by
//!   trampolines in the saved registers or stack slots), restores them and jumps to the native
//!   function (`desc.real`, the descriptor's first word) with the caller's return address still on
//!   the stack, so stack arguments stay where the callee expects them.

/// Saved argument registers: RDI, RSI, RDX, RCX, R8, R9, RAX (and one spare); XMM0-7; results
/// RAX, RDX, XMM0, XMM1 (low halves); the descriptor; which routine entered (the Rust function's
/// address). 240 bytes, offsets fixed by the routines.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Frame {
    pub int: [u64; 8],
    pub xmm: [[u64; 2]; 8],
    pub ret_int: [u64; 2],
    pub ret_fp: [u64; 2],
    pub desc: u64,
    pub which: u64,
}

const _: () = assert!(core::mem::size_of::<Frame>() == 240);

/// Index in [`Frame::int`] of each SysV argument register, by x86 register number (RDI=7...).
pub fn int_slot(x86_reg: u8) -> Option<usize> {
    [7u8, 6, 2, 1, 8, 9, 0].iter().position(|&r| r == x86_reg)
}

/// A host stub: `mov r11, desc; jmp [rip]; .quad entry` (24 bytes).
pub fn stub(desc: u64, entry: u64) -> Vec<u8> {
    let mut v = vec![0x49, 0xbb];
    v.extend_from_slice(&desc.to_le_bytes());
    v.extend_from_slice(&[0xff, 0x25, 0, 0, 0, 0]);
    v.extend_from_slice(&entry.to_le_bytes());
    v
}

/// After writing stubs: nothing to do on x86 (coherent instruction fetch).
pub fn flush_icache(_start: u64, _len: usize) {}

unsafe extern "C" {
    /// See the module doc.
    pub fn ldnc_cb_entry();
    /// See the module doc.
    pub fn ldnc_wrap_entry();
}

core::arch::global_asm!(
    ".pushsection .text.ldnc_bridge_x86,\"ax\",@progbits",
    ".globl ldnc_cb_entry",
    ".p2align 4",
    "ldnc_cb_entry:",
    "lea r10, [rip + {cb}]",
    "jmp .Lldnc_bridge_entry",
    ".globl ldnc_wrap_entry",
    ".p2align 4",
    "ldnc_wrap_entry:",
    "lea r10, [rip + {wrap}]",
    // Both: R11 = descriptor, R10 = the Rust function (not argument registers); the frame keeps
    // which one in its spare word for the two different tails.
    ".Lldnc_bridge_entry:",
    "push rbp",
    "mov rbp, rsp",
    "sub rsp, 240",
    "call .Lldnc_bridge_save",
    "mov [rsp + 224], r11",
    "mov [rsp + 232], r10",
    "mov rdi, r11",
    "mov rsi, rsp",
    "lea rdx, [rbp + 16]",
    "call r10",
    "lea r10, [rip + {wrap}]",
    "cmp [rsp + 232], r10",
    "je 2f",
    "mov rax, [rsp + 192]",
    "mov rdx, [rsp + 200]",
    "movq xmm0, qword ptr [rsp + 208]",
    "movq xmm1, qword ptr [rsp + 216]",
    "leave",
    "ret",
    "2:",
    "mov rdi, [rsp]",
    "mov rsi, [rsp + 8]",
    "mov rdx, [rsp + 16]",
    "mov rcx, [rsp + 24]",
    "mov r8, [rsp + 32]",
    "mov r9, [rsp + 40]",
    "mov rax, [rsp + 48]",
    "movdqu xmm0, [rsp + 64]",
    "movdqu xmm1, [rsp + 80]",
    "movdqu xmm2, [rsp + 96]",
    "movdqu xmm3, [rsp + 112]",
    "movdqu xmm4, [rsp + 128]",
    "movdqu xmm5, [rsp + 144]",
    "movdqu xmm6, [rsp + 160]",
    "movdqu xmm7, [rsp + 176]",
    "mov r11, [rsp + 224]",
    "mov r11, [r11]",
    "leave",
    "jmp r11",
    // The argument registers into the caller's frame, which starts above this call's return
    // address.
    ".Lldnc_bridge_save:",
    "mov [rsp + 8], rdi",
    "mov [rsp + 16], rsi",
    "mov [rsp + 24], rdx",
    "mov [rsp + 32], rcx",
    "mov [rsp + 40], r8",
    "mov [rsp + 48], r9",
    "mov [rsp + 56], rax",
    "movdqu [rsp + 72], xmm0",
    "movdqu [rsp + 88], xmm1",
    "movdqu [rsp + 104], xmm2",
    "movdqu [rsp + 120], xmm3",
    "movdqu [rsp + 136], xmm4",
    "movdqu [rsp + 152], xmm5",
    "movdqu [rsp + 168], xmm6",
    "movdqu [rsp + 184], xmm7",
    "ret",
    ".popsection",
    cb = sym super::super::callback::ldnc_callback,
    wrap = sym super::super::callback::ldnc_wrap_args,
);
