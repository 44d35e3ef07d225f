//! Execution tests (riscv64 hosts only; under qemu-user on x86_64 machines): x86 snippets placed in
//! memory run through `Translator<Riscv64Backend>` until the trailing `int3`, then registers,
//! flags and memory are checked. Expected values are worked out by hand from the SDM; the
//! differential suite in `tests/` covers the same instructions against a real x86 CPU.
//!
//! The byte arrays were produced by GNU as (`as --64`, Intel syntax); the text is in the comments.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test set-up failures abort the test")]

use super::Riscv64Backend;
use crate::cpu::flags as fl;
use crate::frontend::RangeSource;
use crate::{Exit, Gpr, ThreadCtx, Translator};

/// A guest: code (with a trailing int3), a stack and a data window.
struct Guest {
    code: Vec<u8>,
    stack: Vec<u64>,
    data: Vec<u8>,
}

impl Guest {
    fn new(code: &[u8]) -> Guest {
        let mut c = code.to_vec();
        c.push(0xcc);
        Guest { code: c, stack: vec![0; 1024], data: vec![0; 4096] }
    }

    fn data_addr(&self) -> u64 {
        self.data.as_ptr() as u64
    }

    fn code_addr(&self) -> u64 {
        self.code.as_ptr() as u64
    }

    /// Run from the start with `regs` set, until a non-lookup exit.
    fn run(&mut self, regs: &[(Gpr, u64)], rflags: u64) -> (Exit, Box<ThreadCtx>) {
        let start = self.code_addr();
        // SAFETY: the code vector outlives the translator, which is dropped at the end of `run`.
        let src = unsafe { RangeSource::new(vec![(start, start + self.code.len() as u64)]) };
        let tr = Translator::<Riscv64Backend>::new(Box::new(src)).expect("translator");
        let mut ctx = ThreadCtx::new();
        ctx.cpu.rip = start;
        ctx.cpu.rflags = rflags | fl::FIXED1 | fl::IF;
        let top = self.stack.as_ptr() as u64 + 8 * 1000;
        ctx.cpu.set(Gpr::Rsp, top);
        for &(g, v) in regs {
            ctx.cpu.set(g, v);
        }
        // SAFETY: the guest's memory (code, stack, data) is ours and lives through the run.
        let e = unsafe { tr.run(&mut ctx) };
        (e, ctx)
    }
}

fn status(ctx: &ThreadCtx) -> u64 {
    ctx.cpu.rflags & fl::STATUS
}

use Gpr::*;

#[test]
fn mov_add_and_int3() {
    let mut g = Guest::new(&[
        0x48, 0xc7, 0xc0, 0x05, 0x00, 0x00, 0x00, // mov rax, 5
        0x48, 0x01, 0xd8, // add rax, rbx
        0x48, 0xb9, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // movabs rcx, 0x1122334455667788
    ]);
    let (e, ctx) = g.run(&[(Rbx, 7)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(Rax), 12);
    assert_eq!(ctx.cpu.get(Rcx), 0x1122_3344_5566_7788);
    assert_eq!(ctx.cpu.rip, g.code_addr() + g.code.len() as u64);
    assert_eq!(status(&ctx), fl::PF);
}

#[test]
fn flags_of_add_sub_at_exit() {
    // add eax, ebx with 0x7fffffff + 1: OF SF AF PF, result zero-extended.
    let mut g = Guest::new(&[0x01, 0xd8]); // add eax, ebx
    let (_, ctx) = g.run(&[(Rax, 0xffff_ffff_7fff_ffff), (Rbx, 1)], 0);
    assert_eq!(ctx.cpu.get(Rax), 0x8000_0000);
    assert_eq!(status(&ctx), fl::OF | fl::SF | fl::AF | fl::PF);
    // sub al, bl: 0 - 1 borrows; upper bits of rax preserved.
    let mut g = Guest::new(&[0x28, 0xd8]); // sub al, bl
    let (_, ctx) = g.run(&[(Rax, 0x1234_5600), (Rbx, 1)], 0);
    assert_eq!(ctx.cpu.get(Rax), 0x1234_56ff);
    assert_eq!(status(&ctx), fl::CF | fl::SF | fl::AF | fl::PF);
}

#[test]
fn high_byte_registers() {
    let mut g = Guest::new(&[
        0x88, 0xe3, // mov bl, ah
        0x80, 0xc4, 0x01, // add ah, 1
        0x86, 0xe9, // xchg cl, ch
    ]);
    let (_, ctx) = g.run(&[(Rax, 0x1122_ff44), (Rbx, 0xaaaa_aaaa), (Rcx, 0x0102)], 0);
    assert_eq!(ctx.cpu.get(Rbx), 0xaaaa_aaff);
    assert_eq!(ctx.cpu.get(Rax), 0x1122_0044);
    assert_eq!(ctx.cpu.get(Rcx), 0x0201);
    assert_eq!(status(&ctx), fl::CF | fl::ZF | fl::AF | fl::PF);
}

#[test]
fn loop_with_cmp_jcc_and_memory() {
    // sum of data[0..10] (dwords) into eax.
    let mut g = Guest::new(&[
        0x31, 0xc0, // xor eax, eax
        0x31, 0xc9, // xor ecx, ecx
        0x03, 0x04, 0x8f, // 1: add eax, [rdi+rcx*4]
        0xff, 0xc1, // inc ecx
        0x83, 0xf9, 0x0a, // cmp ecx, 10
        0x7c, 0xf6, // jl 1b
    ]);
    for k in 0..10u32 {
        g.data[4 * k as usize..4 * k as usize + 4].copy_from_slice(&(k * 3 + 1).to_le_bytes());
    }
    let d = g.data_addr();
    let (e, ctx) = g.run(&[(Rdi, d)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(Rax), (0..10).map(|k| k * 3 + 1).sum::<u64>());
    assert_eq!(ctx.cpu.get(Rcx), 10);
    // Last cmp: 10 - 10.
    assert_eq!(status(&ctx), fl::ZF | fl::PF);
}

#[test]
fn signed_and_unsigned_conditions() {
    // For each (a, b): setl, setb, setle, setbe, sete, sets, seto (cmp a, b 32-bit) into bytes.
    let code = [
        0x39, 0xd8, // cmp eax, ebx
        0x0f, 0x9c, 0x07, // setl [rdi]
        0x0f, 0x92, 0x47, 0x01, // setb [rdi+1]
        0x0f, 0x9e, 0x47, 0x02, // setle [rdi+2]
        0x0f, 0x96, 0x47, 0x03, // setbe [rdi+3]
        0x0f, 0x94, 0x47, 0x04, // sete [rdi+4]
        0x0f, 0x98, 0x47, 0x05, // sets [rdi+5]
        0x0f, 0x90, 0x47, 0x06, // seto [rdi+6]
        0x0f, 0x9a, 0x47, 0x07, // setp [rdi+7]
    ];
    let cases: [(u32, u32); 6] = [(1, 2), (2, 1), (5, 5), (0x8000_0000, 1), (1, 0x8000_0000), (0xffff_ffff, 0)];
    for (a, b) in cases {
        let mut g = Guest::new(&code);
        let d = g.data_addr();
        // High garbage in the 64-bit registers must not matter.
        let (_, _ctx) = g.run(&[(Rax, u64::from(a) | 0xdead << 40), (Rbx, u64::from(b) | 0xbeef << 36), (Rdi, d)], 0);
        let (sa, sb) = (a as i32, b as i32);
        let r = a.wrapping_sub(b);
        let of = (sa.checked_sub(sb)).is_none();
        let want = [
            sa < sb,
            a < b,
            sa <= sb,
            a <= b,
            a == b,
            (r as i32) < 0,
            of,
            (r as u8).count_ones().is_multiple_of(2),
        ];
        let got: Vec<bool> = g.data[..8].iter().map(|&x| x != 0).collect();
        assert_eq!(got, want, "cmp {a:#x}, {b:#x}");
    }
}

#[test]
fn call_ret_push_pop() {
    let mut g = Guest::new(&[
        0xe8, 0x06, 0x00, 0x00, 0x00, // call f
        0x48, 0x83, 0xc0, 0x01, // add rax, 1
        0xeb, 0x0a, // jmp done
        0x53, // f: push rbx
        0x48, 0x89, 0xe3, // mov rbx, rsp
        0x48, 0x8b, 0x43, 0x08, // mov rax, [rbx+8]   (the return address)
        0x5b, // pop rbx
        0xc3, // ret
              // done:
    ]);
    let start = g.code_addr();
    let (e, ctx) = g.run(&[(Rbx, 77)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(Rax), start + 5 + 1);
    assert_eq!(ctx.cpu.get(Rbx), 77);
    assert_eq!(ctx.cpu.get(Rsp), g.stack.as_ptr() as u64 + 8000);
}

#[test]
fn exits_report_the_right_rip() {
    let mut g = Guest::new(&[0x90, 0x0f, 0x05]); // nop; syscall
    let (e, ctx) = g.run(&[], 0);
    assert_eq!(e, Exit::Syscall);
    assert_eq!(ctx.cpu.rip, g.code_addr() + 3);
    let mut g = Guest::new(&[0x90, 0x0f, 0x0b]); // nop; ud2
    let (e, ctx) = g.run(&[], 0);
    assert_eq!(e, Exit::InvalidOpcode);
    assert_eq!(ctx.cpu.rip, g.code_addr() + 1);
    let mut g = Guest::new(&[0xf4]); // hlt
    let (e, ctx) = g.run(&[], 0);
    assert_eq!(e, Exit::Privileged);
    assert_eq!(ctx.cpu.rip, g.code_addr());
    // Port I/O is not translated: UNSUPPORTED at its address, after the inc ran.
    let mut g = Guest::new(&[0x48, 0xff, 0xc0, 0xec]); // inc rax; in al, dx
    let (e, ctx) = g.run(&[], 0);
    assert!(matches!(e, Exit::Unsupported(ref u) if u.pc == g.code_addr() + 3), "{e:?}");
    assert_eq!(ctx.cpu.get(Rax), 1);
    // cpuid is handled by the dispatcher and execution continues.
    let mut g = Guest::new(&[0x31, 0xc0, 0x0f, 0xa2]); // xor eax, eax; cpuid
    let (e, ctx) = g.run(&[], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert!(ctx.cpu.get(Rax) >= 1);
}

#[test]
fn division_and_divide_errors() {
    let mut g = Guest::new(&[0xf7, 0xf3]); // div ebx
    let (e, ctx) = g.run(&[(Rax, 100), (Rdx, 1), (Rbx, 7)], 0);
    assert_eq!(e, Exit::Breakpoint);
    let n = (1u64 << 32) + 100;
    assert_eq!((ctx.cpu.get(Rax), ctx.cpu.get(Rdx)), (n / 7, n % 7));
    let (e, ctx) = g.run(&[(Rax, 100), (Rdx, 0), (Rbx, 0)], 0);
    assert_eq!(e, Exit::DivideError);
    assert_eq!(ctx.cpu.rip, g.code_addr());
    let (e, _) = g.run(&[(Rax, 0), (Rdx, 7), (Rbx, 7)], 0);
    assert_eq!(e, Exit::DivideError);
    let mut g = Guest::new(&[0x48, 0xf7, 0xfb]); // idiv rbx
    let (e, ctx) = g.run(&[(Rax, (-100i64) as u64), (Rdx, u64::MAX), (Rbx, 7)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!((ctx.cpu.get(Rax) as i64, ctx.cpu.get(Rdx) as i64), (-14, -2));
    let (e, _) = g.run(&[(Rax, 1 << 63), (Rdx, u64::MAX), (Rbx, u64::MAX)], 0);
    assert_eq!(e, Exit::DivideError);
    let mut g = Guest::new(&[0x48, 0xf7, 0xf3]); // div rbx, 128-bit dividend
    let (e, ctx) = g.run(&[(Rax, 5), (Rdx, 3), (Rbx, 1 << 62)], 0);
    assert_eq!(e, Exit::Breakpoint);
    let n = (3u128 << 64) + 5;
    assert_eq!(u128::from(ctx.cpu.get(Rax)), n / (1 << 62));
    assert_eq!(u128::from(ctx.cpu.get(Rdx)), n % (1 << 62));
}

#[test]
fn shifts_keep_flags_on_zero_count() {
    // stc; shl eax, cl with cl = 0: CF stays set, eax zero-extended.
    let mut g = Guest::new(&[0xf9, 0xd3, 0xe0]); // stc; shl eax, cl
    let (_, ctx) = g.run(&[(Rax, 0xffff_0000_0000_0003), (Rcx, 0)], 0);
    assert_eq!(ctx.cpu.get(Rax), 3);
    assert_ne!(ctx.cpu.rflags & fl::CF, 0);
    // shl eax, cl with cl = 33 (masked to 1).
    let (_, ctx) = g.run(&[(Rax, 0x8000_0001), (Rcx, 33)], 0);
    assert_eq!(ctx.cpu.get(Rax), 2);
    assert_eq!(status(&ctx) & (fl::CF | fl::OF | fl::ZF | fl::SF), fl::CF | fl::OF);
    // sar al, 1 / shr al, 1 / rol bl, 4
    let mut g = Guest::new(&[0xd0, 0xf8, 0xc0, 0xc3, 0x04]); // sar al, 1; rol bl, 4
    let (e, ctx) = g.run(&[(Rax, 0x81), (Rbx, 0x12)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(Rax), 0xc0);
    assert_eq!(ctx.cpu.get(Rbx), 0x21);
    assert_ne!(ctx.cpu.rflags & fl::CF, 0, "rol: CF = bit 0 of the result");
}

#[test]
fn rep_string_ops() {
    let mut g = Guest::new(&[
        0xfc, // cld
        0xf3, 0xa4, // rep movsb
        0x48, 0x89, 0xd7, // mov rdi, rdx
        0xb0, 0x5a, // mov al, 0x5a
        0xb9, 0x03, 0x00, 0x00, 0x00, // mov ecx, 3
        0xf3, 0xaa, // rep stosb
    ]);
    for k in 0..16 {
        g.data[k] = k as u8 + 1;
    }
    let d = g.data_addr();
    let (e, ctx) = g.run(&[(Rsi, d), (Rdi, d + 100), (Rcx, 16), (Rdx, d + 200)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(&g.data[100..116], &g.data[0..16]);
    assert_eq!(&g.data[200..204], &[0x5a, 0x5a, 0x5a, 0]);
    assert_eq!(ctx.cpu.get(Rcx), 0);
    assert_eq!(ctx.cpu.get(Rsi), d + 16);
    // repne scasb: strlen.
    let mut g = Guest::new(&[
        0x31, 0xc0, // xor eax, eax
        0x48, 0xc7, 0xc1, 0xff, 0xff, 0xff, 0xff, // mov rcx, -1
        0xf2, 0xae, // repne scasb
    ]);
    g.data[..6].copy_from_slice(b"hello\0");
    let d = g.data_addr();
    let (_, ctx) = g.run(&[(Rdi, d)], 0);
    assert_eq!(ctx.cpu.get(Rdi), d + 6);
    assert_eq!(!ctx.cpu.get(Rcx) - 1, 5);
    assert_ne!(ctx.cpu.rflags & fl::ZF, 0);
}

#[test]
fn indirect_jumps_through_a_table() {
    // jmp [rip+table + rax*8]-style dispatch via a register.
    let mut g = Guest::new(&[
        0x48, 0x8d, 0x0d, 0x07, 0x00, 0x00, 0x00, // lea rcx, [rip+7] (-> after the jmp)
        0x48, 0x01, 0xc1, // add rcx, rax
        0xff, 0xe1, // jmp rcx
        0xb3, 0x01, // mov bl, 1   (offset 0 from target base... at +12)
        0xcc, // int3
        0xb3, 0x02, // mov bl, 2
        0xcc, // int3
    ]);
    let (e, ctx) = g.run(&[(Rax, 0)], 0);
    assert_eq!(e, Exit::Breakpoint);
    // rip+7 from the end of the lea (offset 7) is offset 14: the int3 after "mov bl, 1".
    assert_eq!(ctx.cpu.get(Rbx) & 0xff, 0);
    let (e, ctx) = g.run(&[(Rax, 1)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(Rbx) & 0xff, 2);
}

#[test]
fn cmpxchg_xadd_xchg() {
    let mut g = Guest::new(&[
        0xf0, 0x48, 0x0f, 0xb1, 0x0f, // lock cmpxchg [rdi], rcx
        0x0f, 0x94, 0xc2, // sete dl
        0xf0, 0x0f, 0xc1, 0x5f, 0x08, // lock xadd [rdi+8], ebx
        0x48, 0x87, 0x77, 0x10, // xchg [rdi+16], rsi
    ]);
    g.data[..8].copy_from_slice(&5u64.to_le_bytes());
    g.data[8..12].copy_from_slice(&40u32.to_le_bytes());
    g.data[16..24].copy_from_slice(&9u64.to_le_bytes());
    let d = g.data_addr();
    let (_, ctx) = g.run(&[(Rdi, d), (Rax, 5), (Rcx, 6), (Rbx, 2), (Rsi, 1)], 0);
    assert_eq!(u64::from_le_bytes(g.data[..8].try_into().unwrap()), 6);
    assert_eq!(ctx.cpu.get(Rdx) & 0xff, 1);
    assert_eq!(ctx.cpu.get(Rbx), 40);
    assert_eq!(u32::from_le_bytes(g.data[8..12].try_into().unwrap()), 42);
    assert_eq!(ctx.cpu.get(Rsi), 9);
    assert_eq!(u64::from_le_bytes(g.data[16..24].try_into().unwrap()), 1);
    // Failure: rax receives the memory value.
    g.data[..8].copy_from_slice(&7u64.to_le_bytes());
    let (_, ctx) = g.run(&[(Rdi, d), (Rax, 5), (Rcx, 6), (Rbx, 2), (Rsi, 1)], 0);
    assert_eq!(ctx.cpu.get(Rax), 7);
    assert_eq!(ctx.cpu.get(Rdx) & 0xff, 0);
}

#[test]
fn pushfq_after_clc() {
    let mut g = Guest::new(&[0xf8, 0x9c, 0x58]); // clc; pushfq; pop rax
    let (e, ctx) = g.run(&[], fl::CF | fl::ZF);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(Rax) & fl::STATUS, fl::ZF);
}

#[test]
fn jumps_and_calls_through_memory() {
    // The target comes from memory into a scratch register the table probe must not reuse.
    let mut g = Guest::new(&[
        0x48, 0x8d, 0x05, 0x07, 0x00, 0x00, 0x00, // lea rax, [rip+7] (t)
        0x48, 0x89, 0x07, // mov [rdi], rax
        0xff, 0x27, // jmp qword ptr [rdi]
        0x0f, 0x0b, // ud2
        0xbb, 0x07, 0x00, 0x00, 0x00, // t: mov ebx, 7
        0x48, 0x8d, 0x0d, 0x0b, 0x00, 0x00, 0x00, // lea rcx, [rip+0xb] (u)
        0x48, 0x89, 0x4f, 0x08, // mov [rdi+8], rcx
        0xff, 0x57, 0x08, // call qword ptr [rdi+8]
        0x83, 0xc3, 0x64, // add ebx, 100
        0xcc, // int3
        0x83, 0xc3, 0x01, // u: add ebx, 1
        0xc3, // ret
    ]);
    let d = g.data_addr();
    // Run twice: the second time every block is linked or found in the table.
    for _ in 0..2 {
        let (e, ctx) = g.run(&[(Rdi, d)], 0);
        assert_eq!(e, Exit::Breakpoint);
        assert_eq!(ctx.cpu.get(Rbx), 108);
    }
}

/// The fault map the test's SIGSEGV handler consults (set while `faults_become_guest_exits` runs).
static FAULT_MAP: std::sync::atomic::AtomicPtr<crate::fault::FaultMap> =
    std::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

extern "C" fn test_fault_handler(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let map = FAULT_MAP.load(std::sync::atomic::Ordering::Acquire);
    if map.is_null() {
        return;
    }
    // SAFETY: the kernel's siginfo and ucontext; the map outlives the run (see the test).
    unsafe {
        let f = crate::ctx::FaultInfo { signo: sig, code: (*info).si_code, addr: (*info).si_addr() as u64 };
        if !super::redirect_fault(uc.cast(), &*map, f) {
            libc::abort();
        }
    }
}

#[test]
fn faults_become_guest_exits() {
    // mov rbx, 5; cmp rbx, 9; mov rax, [rcx] (faults); int3
    let g = Guest::new(&[
        0x48, 0xc7, 0xc3, 0x05, 0x00, 0x00, 0x00, // mov rbx, 5
        0x48, 0x83, 0xfb, 0x09, // cmp rbx, 9
        0x48, 0x8b, 0x01, // mov rax, [rcx]
    ]);
    let start = g.code_addr();
    // SAFETY: the code vector outlives the translator.
    let src = unsafe { RangeSource::new(vec![(start, start + g.code.len() as u64)]) };
    let tr = Translator::<Riscv64Backend>::new(Box::new(src)).expect("translator");
    let map = tr.fault_map();
    FAULT_MAP.store(std::sync::Arc::as_ptr(&map).cast_mut(), std::sync::atomic::Ordering::Release);
    // SAFETY: installing a handler that only touches the translator's signal-safe structures.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = test_fault_handler as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSEGV, &sa, core::ptr::null_mut());
    }
    let mut ctx = ThreadCtx::new();
    ctx.cpu.rip = start;
    ctx.cpu.set(Rcx, 8); // an unmapped address
    ctx.cpu.set(Rdx, 0x77);
    ctx.cpu.set(Rsp, g.stack.as_ptr() as u64 + 4000);
    // SAFETY: guest memory is ours.
    let e = unsafe { tr.run(&mut ctx) };
    // Same handler (one per process, so in this test): locked accesses to a bad address.
    locked_accesses_fault_at_the_guest_instruction();
    FAULT_MAP.store(core::ptr::null_mut(), std::sync::atomic::Ordering::Release);
    // SAFETY: back to the default action.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGSEGV, &sa, core::ptr::null_mut());
    }
    match e {
        Exit::Fault(f) => {
            assert_eq!(f.signo, libc::SIGSEGV);
            assert_eq!(f.addr, 8);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ctx.cpu.rip, start + 11, "the faulting mov");
    assert_eq!(ctx.cpu.get(Rbx), 5);
    assert_eq!(ctx.cpu.get(Rdx), 0x77);
    // Flags of cmp 5, 9: CF SF (and AF, PF of 0xfc).
    assert_eq!(status(&ctx), fl::CF | fl::SF | fl::AF | fl::PF);
    drop(map);
}

#[test]
fn enter_leave_and_ud1() {
    // enter 0x20, 0; mov [rbp-8], rbx; mov rcx, [rbp-8]; leave
    let mut g = Guest::new(&[
        0xc8, 0x20, 0x00, 0x00, // enter 0x20, 0
        0x48, 0x89, 0x5d, 0xf8, // mov [rbp-8], rbx
        0x48, 0x8b, 0x4d, 0xf8, // mov rcx, [rbp-8]
        0xc9, // leave
    ]);
    let top = g.stack.as_ptr() as u64 + 8000;
    let (e, ctx) = g.run(&[(Rbx, 0x1234), (Rbp, 0x5555)], 0);
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(Rcx), 0x1234);
    assert_eq!(ctx.cpu.get(Rbp), 0x5555);
    assert_eq!(ctx.cpu.get(Rsp), top);
    assert_eq!(g.stack[999], 0x5555, "old RBP pushed just below the top");
    let mut g = Guest::new(&[0x90, 0x0f, 0xb9, 0x00]); // nop; ud1 eax, [rax]
    let (e, ctx) = g.run(&[], 0);
    assert_eq!(e, Exit::InvalidOpcode);
    assert_eq!(ctx.cpu.rip, g.code_addr() + 1);
}

/// Encode `i` followed by nothing (the Guest adds the int3).
fn enc(i: &iced_x86::Instruction) -> Vec<u8> {
    let mut e = iced_x86::Encoder::new(64);
    e.encode(i, 0).unwrap();
    e.take_buffer()
}

/// Offsets of the operand from an 8-aligned address: aligned, misaligned inside a doubleword,
/// and (16 bits and wider) crossing into the next doubleword.
fn offsets(bits: u32) -> &'static [u64] {
    match bits {
        8 => &[0, 3, 7],
        16 => &[0, 3, 7],
        32 => &[0, 2, 6],
        _ => &[0, 4],
    }
}

/// Every locked form, at every kind of alignment, gives what its plain (unlocked) form gives:
/// memory, registers and status flags (the plain forms are the ones the differential suite
/// checks against a real x86). XCHG and CMPXCHG have no plain memory form here and are checked
/// by hand below.
#[test]
fn locked_forms_match_their_plain_forms() {
    let forms = super::atomic_tests::locked_instructions();
    let mut checked = 0;
    for (name, insn, bits) in &forms {
        if name.starts_with("xchg") || name.contains("cmpxchg") {
            continue;
        }
        let mut plain = *insn;
        plain.set_has_lock_prefix(false);
        let (lk, pl) = (enc(insn), enc(&plain));
        for &off in offsets(*bits) {
            for rcx in [45u64, (-13i64) as u64] {
                for cf in [0, fl::CF] {
                    let mut results = Vec::new();
                    for code in [&pl, &lk] {
                        let mut g = Guest::new(code);
                        for (n, b) in g.data.iter_mut().enumerate() {
                            *b = (n as u8).wrapping_mul(37).wrapping_add(11);
                        }
                        let d = (g.data_addr() + 512) & !7;
                        let (e, ctx) = g.run(&[(Rdi, d + off), (Rcx, rcx), (Rax, 0x8000_0000_7fff_ff80)], cf);
                        assert_eq!(e, Exit::Breakpoint, "{name}");
                        // RSP and RDI point into this guest's own buffers: left out.
                        let mut gpr = ctx.cpu.gpr;
                        gpr[Rsp as usize] = 0;
                        gpr[Rdi as usize] = 0;
                        results.push((g.data.clone(), gpr, status(&ctx)));
                    }
                    assert!(results[0] == results[1], "{name} at offset {off}, rcx {rcx:#x}, cf {cf}: locked {:?} plain {:?}",
                        (results[1].1, results[1].2), (results[0].1, results[0].2));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 400, "{checked}");
}

/// XCHG with memory and CMPXCHG (success and failure) at every width and alignment.
#[test]
fn xchg_and_cmpxchg_every_width_and_alignment() {
    use iced_x86::{Code, Instruction, MemoryOperand, Register};
    let m = MemoryOperand::with_base(Register::RDI);
    for (bits, r, xc, cx) in [
        (8u32, Register::CL, Code::Xchg_rm8_r8, Code::Cmpxchg_rm8_r8),
        (16, Register::CX, Code::Xchg_rm16_r16, Code::Cmpxchg_rm16_r16),
        (32, Register::ECX, Code::Xchg_rm32_r32, Code::Cmpxchg_rm32_r32),
        (64, Register::RCX, Code::Xchg_rm64_r64, Code::Cmpxchg_rm64_r64),
    ] {
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let merge = |old: u64, v: u64| match bits {
            32 => v & mask,
            64 => v,
            _ => (old & !mask) | (v & mask),
        };
        let xchg = enc(&Instruction::with2(xc, m, r).unwrap());
        let mut cmpx = Instruction::with2(cx, m, r).unwrap();
        cmpx.set_has_lock_prefix(true);
        let cmpx = enc(&cmpx);
        for &off in offsets(bits) {
            let mem0 = 0x1122_3344_5566_7788u64;
            let rcx = 0xa5a5_5a5a_c3c3_3c3cu64;
            let rax0 = 0xffff_0000_ffff_0000u64;
            let read = |g: &Guest, at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&g.data[at..at + 8]);
                u64::from_le_bytes(b)
            };
            let setup = |code: &[u8]| {
                let mut g = Guest::new(code);
                let at = (((g.data_addr() + 512) & !7) - g.data_addr() + off) as usize;
                g.data[at..at + 8].copy_from_slice(&mem0.to_le_bytes());
                (g, at)
            };
            // xchg: memory gets the register, the register the memory.
            let (mut g, at) = setup(&xchg);
            let p = g.data_addr() + at as u64;
            let (_, ctx) = g.run(&[(Rdi, p), (Rcx, rcx)], 0);
            assert_eq!(read(&g, at) & mask, rcx & mask, "xchg m{bits} at {off}");
            assert_eq!(read(&g, at) & !mask, mem0 & !mask, "xchg m{bits} at {off}: neighbours");
            assert_eq!(ctx.cpu.get(Rcx), merge(rcx, mem0), "xchg m{bits} at {off}");
            // cmpxchg, equal: memory gets rcx, ZF set, rax unchanged.
            let (mut g, at) = setup(&cmpx);
            let p = g.data_addr() + at as u64;
            let rax = (rax0 & !mask) | (mem0 & mask);
            let (_, ctx) = g.run(&[(Rdi, p), (Rcx, rcx), (Rax, rax)], 0);
            assert_eq!(read(&g, at), (mem0 & !mask) | (rcx & mask), "cmpxchg m{bits} at {off}");
            assert_eq!(status(&ctx) & fl::ZF, fl::ZF, "cmpxchg m{bits} at {off}");
            assert_eq!(ctx.cpu.get(Rax), rax, "cmpxchg m{bits} at {off}");
            // cmpxchg, different: memory unchanged, ZF clear, rax gets memory, CF as cmp.
            let (mut g, at) = setup(&cmpx);
            let p = g.data_addr() + at as u64;
            let rax = rax0 | 1;
            let (_, ctx) = g.run(&[(Rdi, p), (Rcx, rcx), (Rax, rax)], 0);
            assert_eq!(read(&g, at), mem0, "cmpxchg m{bits} at {off} (mismatch)");
            assert_eq!(status(&ctx) & fl::ZF, 0, "cmpxchg m{bits} at {off} (mismatch)");
            assert_eq!(ctx.cpu.get(Rax), merge(rax, mem0), "cmpxchg m{bits} at {off} (mismatch)");
            let cf = if (rax & mask) < (mem0 & mask) { fl::CF } else { 0 };
            assert_eq!(status(&ctx) & fl::CF, cf, "cmpxchg m{bits} at {off} (mismatch)");
        }
    }
}

/// CMPXCHG8B and CMPXCHG16B (lock table and, when the CPU model has it, Zacas), match and
/// mismatch; CMPXCHG8B also misaligned (split lock path).
#[test]
fn cmpxchg8b_and_16b() {
    use iced_x86::{Code, Instruction, MemoryOperand, Register};
    let m = MemoryOperand::with_base(Register::RDI);
    let mut c8 = Instruction::with1(Code::Cmpxchg8b_m64, m).unwrap();
    c8.set_has_lock_prefix(true);
    let mut c16 = Instruction::with1(Code::Cmpxchg16b_m128, m).unwrap();
    c16.set_has_lock_prefix(true);
    for off in [0u64, 4] {
        let mut g = Guest::new(&enc(&c8));
        let at = (((g.data_addr() + 512) & !7) - g.data_addr() + off) as usize;
        g.data[at..at + 8].copy_from_slice(&0x1111_2222_3333_4444u64.to_le_bytes());
        let p = g.data_addr() + at as u64;
        let regs = [(Rdi, p), (Rax, 0x3333_4444), (Rdx, 0x1111_2222), (Rbx, 0x5555_6666), (Rcx, 0x7777_8888)];
        let (_, ctx) = g.run(&regs, 0);
        assert_eq!(&g.data[at..at + 8], &0x7777_8888_5555_6666u64.to_le_bytes(), "cmpxchg8b at {off}");
        assert_eq!(status(&ctx) & fl::ZF, fl::ZF);
        let (_, ctx) = g.run(&regs, 0);
        assert_eq!(status(&ctx) & fl::ZF, 0);
        assert_eq!((ctx.cpu.get(Rdx), ctx.cpu.get(Rax)), (0x7777_8888, 0x5555_6666), "cmpxchg8b at {off}");
    }
    let mut g = Guest::new(&enc(&c16));
    let at = (((g.data_addr() + 512) & !15) - g.data_addr()) as usize;
    g.data[at..at + 8].copy_from_slice(&1u64.to_le_bytes());
    g.data[at + 8..at + 16].copy_from_slice(&2u64.to_le_bytes());
    let p = g.data_addr() + at as u64;
    let regs = [(Rdi, p), (Rax, 1), (Rdx, 2), (Rbx, 3), (Rcx, 4)];
    let (_, ctx) = g.run(&regs, 0);
    assert_eq!(status(&ctx) & fl::ZF, fl::ZF);
    assert_eq!(&g.data[at..at + 16], &[3u64.to_le_bytes(), 4u64.to_le_bytes()].concat()[..]);
    let (_, ctx) = g.run(&regs, 0);
    assert_eq!(status(&ctx) & fl::ZF, 0);
    assert_eq!((ctx.cpu.get(Rax), ctx.cpu.get(Rdx)), (3, 4));
    // Misaligned: #GP.
    let (e, _) = g.run(&[(Rdi, p + 8)], 0);
    assert_ne!(e, Exit::Breakpoint);
}

/// With the fault handler of [`faults_become_guest_exits`] installed: every kind of atomic
/// sequence (AMO, LR/SC, in-doubleword loop, split-lock path, CMPXCHG16B lock table) touching
/// an unmapped address faults at its guest instruction with the guest registers unchanged (and
/// leaves no lock held: the same split form runs again afterwards).
fn locked_accesses_fault_at_the_guest_instruction() {
    use iced_x86::{Code, Instruction, MemoryOperand, Register};
    let lk = |mut i: Instruction| {
        i.set_has_lock_prefix(true);
        i
    };
    let at = |d: i64| MemoryOperand::with_base_displ(Register::RCX, d);
    let forms = [
        lk(Instruction::with2(Code::Add_rm64_r64, at(0), Register::RDX).unwrap()),
        lk(Instruction::with2(Code::Adc_rm32_r32, at(0), Register::EDX).unwrap()),
        lk(Instruction::with2(Code::Add_rm16_r16, at(2), Register::DX).unwrap()),
        lk(Instruction::with2(Code::Add_rm32_r32, at(6), Register::EDX).unwrap()),
        lk(Instruction::with2(Code::Cmpxchg_rm64_r64, at(4), Register::RDX).unwrap()),
        lk(Instruction::with2(Code::Bts_rm64_r64, at(0), Register::RDX).unwrap()),
        Instruction::with2(Code::Xchg_rm8_r8, at(1), Register::DL).unwrap(),
        lk(Instruction::with1(Code::Cmpxchg16b_m128, at(0)).unwrap()),
        lk(Instruction::with2(Code::Add_rm32_r32, at(6), Register::EDX).unwrap()),
    ];
    for (n, f) in forms.iter().enumerate() {
        let mut code = vec![0x48, 0xc7, 0xc3, 0x05, 0x00, 0x00, 0x00]; // mov rbx, 5
        code.extend_from_slice(&enc(f));
        let g = Guest::new(&code);
        let start = g.code_addr();
        // SAFETY: the code vector outlives the translator.
        let src = unsafe { RangeSource::new(vec![(start, start + g.code.len() as u64)]) };
        let tr = Translator::<Riscv64Backend>::new(Box::new(src)).expect("translator");
        let map = tr.fault_map();
        FAULT_MAP.store(std::sync::Arc::as_ptr(&map).cast_mut(), std::sync::atomic::Ordering::Release);
        let mut ctx = ThreadCtx::new();
        ctx.cpu.rip = start;
        ctx.cpu.set(Rcx, 16); // unmapped
        ctx.cpu.set(Rdx, 0x77);
        ctx.cpu.set(Rax, 0x99);
        ctx.cpu.set(Rsp, g.stack.as_ptr() as u64 + 4000);
        // SAFETY: guest memory is ours.
        let e = unsafe { tr.run(&mut ctx) };
        assert!(matches!(e, Exit::Fault(ref x) if x.signo == libc::SIGSEGV && x.addr < 4096), "form {n}: {e:?}");
        assert_eq!(ctx.cpu.rip, start + 7, "form {n}: at the locked instruction");
        assert_eq!((ctx.cpu.get(Rbx), ctx.cpu.get(Rcx), ctx.cpu.get(Rdx), ctx.cpu.get(Rax)), (5, 16, 0x77, 0x99), "form {n}");
        drop(tr);
        drop(map);
    }
}
