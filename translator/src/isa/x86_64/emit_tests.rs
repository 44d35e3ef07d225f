//! Tests of the x86_64 backend's rewriting: translated bytes decoded back and checked, and small
//! blocks run for real through the dispatcher.

use super::*;
use crate::frontend::{decode_block, RangeSource};
use crate::{Exit, ThreadCtx, Translator};
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

fn disasm(code: &[u8], ip: u64) -> Vec<String> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut f = IntelFormatter::new();
    let mut v = Vec::new();
    for i in &mut d {
        let mut s = String::new();
        f.format(&i, &mut s);
        v.push(s);
    }
    v
}

fn translate(code: &'static [u8]) -> (Vec<String>, Translated, u64) {
    let start = code.as_ptr() as u64;
    // SAFETY: static data outlives the test.
    let src = unsafe { RangeSource::new(vec![(start, start + code.len() as u64)]) };
    let block = decode_block(&src, start);
    let mut out = Vec::new();
    let base = 0x7000_0000_0000;
    let t = X86Backend::new().translate(&block, base, &mut out).expect("translates");
    (disasm(&out, base), t, start)
}

#[test]
fn plain_instructions_are_copied_verbatim() {
    // add rax, rbx; imul ecx, edx; ret
    static CODE: [u8; 7] = [0x48, 0x01, 0xd8, 0x0f, 0xaf, 0xca, 0xc3];
    let (text, _, _) = translate(&CODE);
    assert_eq!(text[0], "add rax,rbx");
    assert_eq!(text[1], "imul ecx,edx");
    // ret: spill RDX, pop the target into it, look it up inline.
    assert_eq!(text[2], format!("mov gs:[{:X}h],rdx", S_RDX));
    assert_eq!(text[3], "pop rdx");
    assert!(text.iter().any(|t| t.starts_with("jrcxz")), "{text:?}");
}

#[test]
fn direct_jump_is_a_link_site() {
    // jmp +0x10
    static CODE: [u8; 2] = [0xeb, 0x10];
    let (text, t, start) = translate(&CODE);
    assert_eq!(t.link_sites.len(), 1);
    // The site is the jmp's rel32 field, 4-byte aligned (after NOP padding) so that linking is
    // one atomic store.
    let off = t.link_sites[0].offset as usize;
    assert_eq!(off % 4, 0);
    assert!(off <= 4);
    assert_eq!(t.link_sites[0].target, start + 0x12);
    assert!(text.iter().take_while(|i| *i == "nop").count() == off - 1);
    assert!(text[off - 1].starts_with("jmp "));
}

#[test]
fn jcc_has_two_link_sites() {
    // cmp eax, 1; jne +5
    static CODE: [u8; 5] = [0x83, 0xf8, 0x01, 0x75, 0x05];
    let (text, t, start) = translate(&CODE);
    assert_eq!(text[0], "cmp eax,1");
    let jcc = text.iter().position(|i| i.starts_with("jne ")).expect("jne");
    assert!(text[1..jcc].iter().all(|i| i == "nop"), "{text:?}");
    let targets: Vec<u64> = t.link_sites.iter().map(|l| l.target).collect();
    assert_eq!(targets, vec![start + 10, start + 5]);
    // The jcc itself is the taken path's site; every site is 4-byte aligned.
    assert_eq!(t.link_sites[0].offset as usize, 3 + (jcc - 1) + 2);
    assert!(t.link_sites.iter().all(|l| l.offset % 4 == 0), "{:?}", t.link_sites);
}

#[test]
fn rip_relative_load_is_reaimed() {
    // mov rax, [rip + 0x100]
    static CODE: [u8; 8] = [0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00, 0x90];
    let (text, _, start) = translate(&CODE);
    let target = start + 7 + 0x100;
    let joined = text.join("; ");
    assert!(joined.contains(&format!("{target:X}h")), "{joined}");
    assert!(!joined.contains("rip"), "{joined}");
}

fn run(code: &'static [u8], setup: impl FnOnce(&mut ThreadCtx)) -> (Exit, Box<ThreadCtx>) {
    let start = code.as_ptr() as u64;
    // SAFETY: static data outlives the translator.
    let src = unsafe { RangeSource::new(vec![(start, start + code.len() as u64)]) };
    let tr = Translator::<X86Backend>::with_cache_size(Box::new(src), 1 << 20).expect("cache");
    let mut ctx = ThreadCtx::new();
    let mut stack = vec![0u64; 1024];
    ctx.cpu.set(crate::Gpr::Rsp, stack.as_mut_ptr() as u64 + 4096);
    ctx.cpu.rip = start;
    setup(&mut ctx);
    // SAFETY: the code only touches registers and the stack above.
    let e = unsafe { tr.run(&mut ctx) };
    drop(stack);
    (e, ctx)
}

#[test]
fn loop_runs_and_flags_come_back() {
    // xor eax,eax; mov ecx,10; L: add eax,ecx; dec ecx; jnz L; cmp eax,55; int3
    static CODE: [u8; 19] = [
        0x31, 0xc0, 0xb9, 0x0a, 0x00, 0x00, 0x00, 0x01, 0xc8, 0xff, 0xc9, 0x75, 0xfa, 0x83, 0xf8, 0x37, 0xcc, 0x90, 0x90,
    ];
    let (e, ctx) = run(&CODE, |_| {});
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rax), 55);
    assert_ne!(ctx.cpu.rflags & crate::cpu::flags::ZF, 0);
    assert_eq!(ctx.cpu.rip, CODE.as_ptr() as u64 + 17);
}

#[test]
fn call_and_ret_push_guest_addresses() {
    // call f; int3; f: mov rax,[rsp]; ret
    static CODE: [u8; 11] = [0xe8, 0x01, 0x00, 0x00, 0x00, 0xcc, 0x48, 0x8b, 0x04, 0x24, 0xc3];
    let (e, ctx) = run(&CODE, |_| {});
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rax), CODE.as_ptr() as u64 + 5);
}

#[test]
fn syscall_and_cpuid_exit_with_rip_after() {
    // cpuid; syscall
    static CODE: [u8; 4] = [0x0f, 0xa2, 0x0f, 0x05];
    let (e, ctx) = run(&CODE, |c| c.cpu.set(crate::Gpr::Rax, 0));
    assert_eq!(e, Exit::Syscall);
    assert_eq!(ctx.cpu.rip, CODE.as_ptr() as u64 + 4);
    // CPUID leaf 0 answered by the model: "Genu" in EBX.
    assert_eq!(ctx.cpu.get(crate::Gpr::Rbx), u64::from(u32::from_le_bytes(*b"Genu")));
}

#[test]
fn xmm_and_fs_state_round_trip() {
    // paddq xmm1, xmm2; mov rax, fs:[0]; int3
    static CODE: [u8; 14] = [0x66, 0x0f, 0xd4, 0xca, 0x64, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0, 0xcc];
    static TLS: u64 = 0x1234_5678;
    let (e, ctx) = run(&CODE, |c| {
        c.cpu.xmm[1] = [1, 2];
        c.cpu.xmm[2] = [10, 20];
        c.cpu.fs_base = &TLS as *const u64 as u64;
    });
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.xmm[1], [11, 22]);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rax), 0x1234_5678);
}

#[test]
fn indirect_call_through_register_and_lookup_hit() {
    // lea rdx,[rip+f]; call rdx; call rdx; int3; f: inc rbx; ret
    static CODE: [u8; 19] = [
        0x48, 0x8d, 0x15, 0x07, 0x00, 0x00, 0x00, 0xff, 0xd2, 0xff, 0xd2, 0xcc, 0x90, 0x90, 0x48, 0xff, 0xc3, 0xc3, 0x90,
    ];
    let (e, ctx) = run(&CODE, |_| {});
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rbx), 2);
}

#[test]
fn flags_survive_indirect_branch_hits_and_misses() {
    // lea rdx,[rip+f]; stc; call rdx; setc bl; clc; call rdx; setc cl; int3; f: ret
    static CODE: [u8; 22] = [
        0x48, 0x8d, 0x15, 0x0d, 0x00, 0x00, 0x00, // lea rdx,[rip+13] -> f
        0xf9, 0xff, 0xd2, 0x0f, 0x92, 0xc3, // stc; call rdx; setc bl
        0xf8, 0xff, 0xd2, 0x0f, 0x92, 0xc1, // clc; call rdx; setc cl
        0xcc, 0xc3, 0x90, // int3; f: ret
    ];
    let (e, ctx) = run(&CODE, |c| {
        c.cpu.set(crate::Gpr::Rbx, 0x100);
        c.cpu.set(crate::Gpr::Rcx, 0x1ff);
    });
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rbx), 0x101);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rcx), 0x100);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rdx), CODE.as_ptr() as u64 + 20);
}

static FAULT_MAP: std::sync::OnceLock<std::sync::Arc<crate::fault::FaultMap>> = std::sync::OnceLock::new();

extern "C" fn on_segv(sig: libc::c_int, si: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: a synchronous SIGSEGV handler on the faulting thread; FS is switched back first.
    unsafe {
        let saved = asm::enter_signal_handler();
        let mut fs = 0u64;
        core::arch::asm!("rdfsbase {}", out(reg) fs);
        let guest_fs = saved.unwrap_or(fs);
        let info = crate::ctx::FaultInfo { signo: sig, code: (*si).si_code, addr: (*si).si_addr() as u64 };
        let done = FAULT_MAP.get().is_some_and(|m| asm::redirect_fault(uc.cast(), m, info, guest_fs));
        if !done {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            return;
        }
        // The fault exit restores host FS itself.
        let _ = saved;
    }
}

#[test]
fn fault_in_translated_code_becomes_a_guest_fault_at_the_instruction() {
    // mov ecx, 7; mov rax, [rcx]  (address 7 is never mapped); int3
    static CODE: [u8; 9] = [0xb9, 0x07, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x01, 0xcc];
    let start = CODE.as_ptr() as u64;
    // SAFETY: static data outlives the translator.
    let src = unsafe { RangeSource::new(vec![(start, start + CODE.len() as u64)]) };
    let tr = Translator::<X86Backend>::with_cache_size(Box::new(src), 1 << 20).expect("cache");
    let _ = FAULT_MAP.set(tr.fault_map());
    // SAFETY: installing a SIGSEGV handler for this test process.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = on_segv as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSEGV, &sa, core::ptr::null_mut());
    }
    let mut ctx = ThreadCtx::new();
    let mut stack = vec![0u64; 1024];
    ctx.cpu.set(crate::Gpr::Rsp, stack.as_mut_ptr() as u64 + 4096);
    ctx.cpu.set(crate::Gpr::Rbx, 0x55);
    ctx.cpu.rip = start;
    // SAFETY: the code touches registers and faults on purpose.
    let e = unsafe { tr.run(&mut ctx) };
    drop(stack);
    match e {
        Exit::Fault(f) => {
            assert_eq!(f.signo, libc::SIGSEGV);
            assert_eq!(f.addr, 7);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    assert_eq!(ctx.cpu.rip, start + 5, "the faulting guest instruction");
    assert_eq!(ctx.cpu.get(crate::Gpr::Rcx), 7);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rbx), 0x55);
}

#[test]
fn inline_caches_fill_hit_and_fall_back_to_the_table() {
    // lea r8,[rip+f]; lea r9,[rip+g]; mov ecx,10; xor ebx,ebx
    // L: mov rdx,r8; call rdx; mov rdx,r9; call rdx; xchg r8,r9; dec ecx; jnz L; int3
    // f: add rbx,1; ret    g: add rbx,100; ret
    // Both call sites and both returns see two targets: fills, hits and table fall-backs.
    static CODE: [u8; 49] = [
        0x4c, 0x8d, 0x05, 0x20, 0x00, 0x00, 0x00, 0x4c, 0x8d, 0x0d, 0x1e, 0x00, 0x00, 0x00, 0xb9, 0x0a, 0x00,
        0x00, 0x00, 0x31, 0xdb, 0x4c, 0x89, 0xc2, 0xff, 0xd2, 0x4c, 0x89, 0xca, 0xff, 0xd2, 0x4d, 0x87, 0xc8,
        0xff, 0xc9, 0x75, 0xef, 0xcc, 0x48, 0x83, 0xc3, 0x01, 0xc3, 0x48, 0x83, 0xc3, 0x64, 0xc3,
    ];
    let (e, ctx) = run(&CODE, |_| {});
    assert_eq!(e, Exit::Breakpoint);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rbx), 10 * 101);
    assert_eq!(ctx.cpu.get(crate::Gpr::Rcx), 0);
}

#[test]
fn filling_an_inline_cache_patches_its_guard_miss_path_and_link() {
    // call rdx; int3
    static CODE: [u8; 3] = [0xff, 0xd2, 0xcc];
    let start = CODE.as_ptr() as u64;
    // SAFETY: static data outlives the test.
    let src = unsafe { RangeSource::new(vec![(start, start + 3)]) };
    let block = decode_block(&src, start);
    let mut out = Vec::new();
    let base = 0x7000_0000_0000;
    let mut b = X86Backend::new();
    let t = b.translate(&block, base, &mut out).expect("translates");
    let ic = t.link_sites.iter().find(|l| l.target == crate::isa::INDIRECT).expect("an inline cache");
    let site = base + u64::from(ic.offset);
    let mut writes = Vec::new();
    assert!(b.fill_inline_cache(site, 0x40_1000, base + 0x1000, &mut |at, bytes| writes.push((at, bytes.to_vec()))));
    assert_eq!(writes.len(), 3);
    assert_eq!(writes[0].1, (!0x40_1000u64).to_le_bytes().to_vec(), "guard holds !guest");
    let link = writes.iter().find(|w| w.0 == site).expect("link patched");
    let rel = i32::from_le_bytes(link.1[..4].try_into().expect("4 bytes"));
    assert_eq!(site.wrapping_add(4).wrapping_add(rel as i64 as u64), base + 0x1000);
    assert!(!b.fill_inline_cache(site + 1, 0, 0, &mut |_, _| {}), "only known sites");
}

#[test]
fn rcx_branches_reach_both_paths_whatever_the_alignment() {
    // k NOPs, then `jrcxz taken; mov eax,1; int3; taken: mov eax,2; int3`: the link fields are
    // padded to alignment, which must never separate the rel8 branch from its fall-through jump.
    static CODE: [u8; 20] = [
        0x90, 0x90, 0x90, 0x90, 0xe3, 0x06, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xcc, 0xb8, 0x02, 0x00, 0x00, 0x00, 0xcc, 0x90,
        0x90,
    ];
    for k in 0..4 {
        let code: &'static [u8] = &CODE[4 - k..];
        for (rcx, want) in [(0u64, 2u64), (1, 1)] {
            let (e, ctx) = run(code, |c| c.cpu.set(crate::Gpr::Rcx, rcx));
            assert_eq!(e, Exit::Breakpoint, "k={k} rcx={rcx}");
            assert_eq!(ctx.cpu.get(crate::Gpr::Rax), want, "k={k} rcx={rcx}");
        }
    }
}

#[test]
fn lookup_probe_checks_the_guest_tag_again_after_the_host_load() {
    // The dispatcher republishes a slot (EMPTY, host, guest) while other threads probe it: a
    // probe that checked the tag only before loading the host word could pair an old tag with
    // the host of the slot's new guest. So the tag is loaded again after the host word (x86 keeps
    // the loads in order) and must still match before the jump.
    static CODE: [u8; 2] = [0xff, 0xe0]; // jmp rax
    let (text, _, _) = translate(&CODE);
    let table = text.iter().position(|l| l == "movzx ecx,dx").expect("table probe");
    // The table loads, the match tests and the final jump, in order.
    let target_jump = format!("jmp qword ptr gs:[{S_TARGET:X}h]");
    let steps: Vec<&str> = text[table..]
        .iter()
        .map(|l| if l.starts_with("jrcxz") { "jrcxz" } else { l.as_str() })
        .filter(|l| l.starts_with("mov rcx,[rax") || *l == "jrcxz" || *l == target_jump)
        .collect();
    assert_eq!(
        steps,
        ["mov rcx,[rax]", "jrcxz", "mov rcx,[rax+8]", "mov rcx,[rax]", "jrcxz", target_jump.as_str()],
        "tag, host, tag again, each tag checked: {text:#?}"
    );
}
