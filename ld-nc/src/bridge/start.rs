//! ld-nc's own guest code for starting a bridged program: small x86_64 routines placed in the
//! bridge region and run through the translator like any guest code.
//!
//! - [`startup`] is where the process starts (instead of an interpreter): it calls the IFUNC
//!   resolvers and writes their results, then the initialisers of the guest libraries in
//!   dependency order, then jumps to the program's entry with RDX = 0 (no `rtld_fini`: the
//!   program's fini functions are called by `__libc_start_main`'s replacement below).
//! - [`libc_start_main`] replaces glibc's `__libc_start_main`, which cannot run natively: it
//!   would call the guest's `main` and initialisers as host code. It makes the guest's
//!   environment the native libc's (`environ`, and the program's COPY of it), calls the
//!   program's initialisers (or, for a program built against glibc < 2.34, the `init` function it
//!   passes), `main`, the guest fini functions, then the native `exit` with `main`'s value.
//!   A guest that calls `exit` itself runs no guest fini functions yet (they need the callback
//!   mechanism: `__cxa_atexit` with guest functions).
//!
//! Being guest code keeps these free of nested dispatch: every call they make is an ordinary
//! guest call, and a call to a native function is a call to its trap stub.
//!
//! These few fixed sequences are encoded by hand (their `mov rax, imm64` forms must keep a fixed
//! layout: forwarders are patched in place); the larger routines of [`super::handlers`] use iced's
//! assembler.

/// A tiny x86_64 encoder for the few forms these routines use.
#[derive(Debug, Default)]
struct X86(Vec<u8>);

impl X86 {
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// `mov rax, imm64`.
    fn mov_rax(&mut self, v: u64) -> &mut Self {
        self.bytes(&[0x48, 0xb8]).bytes(&v.to_le_bytes())
    }
    /// `mov rdx, imm64`.
    fn mov_rdx(&mut self, v: u64) -> &mut Self {
        self.bytes(&[0x48, 0xba]).bytes(&v.to_le_bytes())
    }
    /// `call rax`.
    fn call_rax(&mut self) -> &mut Self {
        self.bytes(&[0xff, 0xd0])
    }
    /// `mov [rdx], rax`.
    fn store_rax_at_rdx(&mut self) -> &mut Self {
        self.bytes(&[0x48, 0x89, 0x02])
    }
    /// `call imm64` through RAX.
    fn call(&mut self, f: u64) -> &mut Self {
        self.mov_rax(f).call_rax()
    }
    /// A `jcc rel32`/`jmp rel32` with its field to patch; returns the field's offset.
    fn jump(&mut self, opcode: &[u8]) -> usize {
        self.bytes(opcode).bytes(&[0; 4]);
        self.0.len() - 4
    }
    /// Aim the rel32 field at `field` to the current end.
    fn bind(&mut self, field: usize) {
        let rel = (self.0.len() - (field + 4)) as u32;
        self.0[field..field + 4].copy_from_slice(&rel.to_le_bytes());
    }
}

/// The process entry routine (see the module doc). At entry RSP points at `argc`, 16-aligned.
pub fn startup(ifuncs: &[(u64, u64)], inits: &[u64], entry: u64) -> Vec<u8> {
    let mut a = X86::default();
    for &(slot, resolver) in ifuncs {
        a.call(resolver).mov_rdx(slot).store_rax_at_rdx();
    }
    for &f in inits {
        // mov rdi, [rsp]; lea rsi, [rsp+8]; lea rdx, [rsi+rdi*8+8]: (argc, argv, envp).
        a.bytes(&[0x48, 0x8b, 0x3c, 0x24, 0x48, 0x8d, 0x74, 0x24, 0x08, 0x48, 0x8d, 0x54, 0xfe, 0x08]).call(f);
    }
    // xor edx, edx; jmp entry.
    a.bytes(&[0x31, 0xd2]).mov_rax(entry).bytes(&[0xff, 0xe0]);
    a.0
}

/// `__libc_start_main(main, argc, argv, init, fini, rtld_fini, stack_end)` (see the module doc).
/// `environ_slots` are the variables to set to the guest's `envp`; `exit` is the native exit's
/// trap stub.
pub fn libc_start_main(environ_slots: &[u64], program_init: &[u64], fini: &[u64], exit: u64) -> Vec<u8> {
    // (argc, argv, envp) from r12 = argc, r13 = argv: mov rdi, r12; mov rsi, r13;
    // lea rdx, [r13 + r12*8 + 8].
    const ARGS: [u8; 11] = [0x4c, 0x89, 0xe7, 0x4c, 0x89, 0xee, 0x4b, 0x8d, 0x54, 0xe5, 0x08];
    let mut a = X86::default();
    // push rbx; push r12; push r13 (RSP 16-aligned again); rbx = main, r12 = argc, r13 = argv.
    a.bytes(&[0x53, 0x41, 0x54, 0x41, 0x55, 0x48, 0x89, 0xfb, 0x49, 0x89, 0xf4, 0x49, 0x89, 0xd5]);
    // lea rax, [r13 + r12*8 + 8]: envp.
    a.bytes(&[0x4b, 0x8d, 0x44, 0xe5, 0x08]);
    for &slot in environ_slots {
        a.mov_rdx(slot).store_rax_at_rdx();
    }
    // test rcx, rcx; jz ours; mov rax, rcx; ARGS; call rax; jmp main.
    a.bytes(&[0x48, 0x85, 0xc9]);
    let to_ours = a.jump(&[0x0f, 0x84]);
    a.bytes(&[0x48, 0x89, 0xc8]).bytes(&ARGS).call_rax();
    let to_main = a.jump(&[0xe9]);
    a.bind(to_ours);
    for &f in program_init {
        a.bytes(&ARGS).call(f);
    }
    a.bind(to_main);
    // ARGS; call rbx (main); mov r12, rax.
    a.bytes(&ARGS).bytes(&[0xff, 0xd3, 0x49, 0x89, 0xc4]);
    for &f in fini {
        a.call(f);
    }
    // mov edi, r12d; call exit; ud2.
    a.bytes(&[0x44, 0x89, 0xe7]).call(exit).bytes(&[0x0f, 0x0b]);
    a.0
}

/// `mov rax, target; jmp rax`: a fixed-size forwarder whose target is written once it is known
/// (symbols resolve to it before the routine it leads to can be built).
pub fn forwarder(target: u64) -> Vec<u8> {
    let mut a = X86::default();
    a.mov_rax(target).bytes(&[0xff, 0xe0]);
    a.0
}

/// `mov rdi, arg; mov rax, target; jmp rax`: a tail call of `target` with one argument.
pub fn tail_call(target: u64, arg: u64) -> Vec<u8> {
    let mut a = X86::default();
    a.bytes(&[0x48, 0xbf]).bytes(&arg.to_le_bytes()).mov_rax(target).bytes(&[0xff, 0xe0]);
    a.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

    fn disasm(code: &[u8], ip: u64) -> Vec<String> {
        let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
        let mut f = IntelFormatter::new();
        let mut out = Vec::new();
        while d.can_decode() {
            let i = d.decode();
            let mut s = String::new();
            f.format(&i, &mut s);
            out.push(s);
        }
        out
    }

    #[test]
    fn tail_call_passes_its_argument() {
        assert_eq!(disasm(&tail_call(0x4000, 0x1234), 0), ["mov rdi,1234h", "mov rax,4000h", "jmp rax"]);
    }

    #[test]
    fn startup_calls_resolvers_then_inits_then_jumps_to_the_entry() {
        let code = startup(&[(0x5000, 0x6000)], &[0x7000], 0x8000);
        assert_eq!(
            disasm(&code, 0),
            [
                "mov rax,6000h", "call rax", "mov rdx,5000h", "mov [rdx],rax",
                "mov rdi,[rsp]", "lea rsi,[rsp+8]", "lea rdx,[rsi+rdi*8+8]", "mov rax,7000h", "call rax",
                "xor edx,edx", "mov rax,8000h", "jmp rax",
            ]
        );
    }

    #[test]
    fn libc_start_main_runs_init_main_fini_exit() {
        let code = libc_start_main(&[0x1000], &[0x2000], &[0x3000], 0x4000);
        let text = disasm(&code, 0);
        let want_in_order = [
            "push rbx", "mov rbx,rdi", "mov r12,rsi", "mov r13,rdx", "lea rax,[r13+r12*8+8]", "mov rdx,1000h",
            "mov [rdx],rax", "test rcx,rcx", "mov rax,rcx", "mov rax,2000h", "call rbx", "mov r12,rax", "mov rax,3000h",
            "mov edi,r12d", "mov rax,4000h", "ud2",
        ];
        let mut at = 0;
        for w in want_in_order {
            at += text[at..].iter().position(|t| t == w).unwrap_or_else(|| panic!("`{w}` missing after #{at} in {text:#?}"));
        }
        // The jz skips the old-style init call; the jmp skips ours.
        let jz = text.iter().position(|t| t.starts_with("je ")).expect("je");
        let jmp = text.iter().position(|t| t.starts_with("jmp ")).expect("jmp");
        assert!(jz < jmp);
    }
}
