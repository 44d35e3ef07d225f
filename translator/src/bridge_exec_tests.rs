//! Trap stubs executed for real on the host's backend (x86_64 natively, riscv64 under
//! qemu-riscv64): small hand-assembled guest programs call stub addresses that a [`TrapTable`]
//! maps to `extern "C"` Rust functions, with plans from `abi::plan_call`. The guest state is set
//! up from each plan's guest locations, the host function checks what it received, and the guest
//! must continue after the `ret` with its callee-saved registers and stack intact.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test set-up failures abort the test")]

use super::*;
use crate::frontend::RangeSource;
use crate::isa::HostBackend;
use crate::{Exit, Gpr, ThreadCtx, Translator};
use abi::{GuestLoc, Loc, Ty};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

type Tr = Translator<HostBackend>;

thread_local! {
    /// The context of the guest running on this thread (for the host functions to inspect).
    static CTX: Cell<*const ThreadCtx> = const { Cell::new(core::ptr::null()) };
    /// The translator running it.
    static TR: Cell<*const Tr> = const { Cell::new(core::ptr::null()) };
    /// `in_code` as the last host function saw it.
    static SAW_IN_CODE: Cell<Option<bool>> = const { Cell::new(None) };
    /// Raw argument words the last host function received.
    static RAW: Cell<[u64; 4]> = const { Cell::new([0; 4]) };
}

/// Record whether this thread counts as in translated code (it must not, inside native code).
fn note() {
    let ctx = CTX.with(Cell::get);
    // SAFETY: set by `Prog::run` to the live context of this thread's guest.
    let slot = unsafe { (*ctx).slot };
    // SAFETY: the slot lives until `thread_ended`, after the run.
    SAW_IN_CODE.with(|c| c.set(Some(unsafe { (*slot).in_code() })));
}

fn mix(acc: f64, x: f64) -> f64 {
    acc * 1.000_1 + x
}

fn ihash(v: &[i64]) -> i64 {
    v.iter().fold(7i64, |h, &x| h.wrapping_mul(31).wrapping_add(x))
}

extern "C" fn six(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64) -> i64 {
    note();
    ihash(&[a, b, c, d, e, f])
}

#[allow(clippy::too_many_arguments, reason = "the point of the test")]
extern "C" fn eight(a: i64, b: i64, c: i64, d: i64, e: i64, f: i64, g: i64, h: i64) -> i64 {
    note();
    ihash(&[a, b, c, d, e, f, g, h])
}

/// Declared `(i32,u32,i16)`; reads the whole registers to see how the host received them.
extern "C" fn narrow(a: i64, b: i64, c: i64) -> i64 {
    note();
    RAW.with(|r| r.set([a as u64, b as u64, c as u64, 0]));
    ihash(&[i64::from(a as i32), i64::from(b as u32), i64::from(c as i16)])
}

#[allow(clippy::too_many_arguments, reason = "the point of the test")]
extern "C" fn mixed(
    i0: i32, d0: f64, f0: f32, i1: i64, d1: f64, f1: f32, i2: i32, d2: f64, i3: i64, f2: f32,
    d3: f64, i4: i32, d4: f64, f3: f32, i5: i64, d5: f64, i6: i32, f4: f32, i7: i64, d6: f64,
) -> f64 {
    note();
    let xs = [
        f64::from(i0), d0, f64::from(f0), i1 as f64, d1, f64::from(f1), f64::from(i2), d2, i3 as f64,
        f64::from(f2), d3, f64::from(i4), d4, f64::from(f3), i5 as f64, d5, f64::from(i6), f64::from(f4),
        i7 as f64, d6,
    ];
    xs.iter().fold(0.0, |a, &x| mix(a, x))
}

#[repr(C)]
struct P2 {
    a: i64,
    b: i64,
}

extern "C" fn pair(x: i64, y: i64) -> P2 {
    note();
    P2 { a: x + 1, b: y * 2 }
}

#[repr(C)]
struct IntDouble {
    i: i64,
    d: f64,
}

extern "C" fn int_double(d: f64, i: i64) -> IntDouble {
    note();
    IntDouble { i: i * 3, d: d / 2.0 }
}

#[repr(C)]
struct F2 {
    x: f32,
    y: f32,
}

extern "C" fn swap_floats(a: f32, b: f32) -> F2 {
    note();
    F2 { x: b, y: a }
}

/// Spins until `in_code` comes back (the guest spins on [`FLAG`] meanwhile).
static FLAG: AtomicU64 = AtomicU64::new(0);

extern "C" fn watch_return() -> i64 {
    note();
    let ctx = CTX.with(Cell::get);
    // SAFETY: as in `note`.
    let slot = unsafe { (*ctx).slot } as usize;
    std::thread::spawn(move || {
        let t = std::time::Instant::now();
        // SAFETY: the slot outlives the guest's spin, which waits for this thread.
        while !unsafe { (*(slot as *const ThreadSlot)).in_code() } {
            if t.elapsed() > std::time::Duration::from_secs(20) {
                FLAG.store(2, Ordering::Release);
                return;
            }
            std::thread::yield_now();
        }
        FLAG.store(1, Ordering::Release);
    });
    5
}

extern "C" fn reuse_inside(x: i64) -> i64 {
    note();
    let tr = TR.with(Cell::get);
    // SAFETY: set by `Prog::run` to the translator running this thread's guest.
    unsafe { (*tr).reuse_memory() };
    x + 100
}

extern "C" fn raise_pending(x: i64) -> i64 {
    note();
    REUSE_PENDING.fetch_add(1, Ordering::SeqCst);
    x + 1
}

extern "C" fn nothing() {}

/// A guest program in a fixed buffer (so its address is known while it is assembled).
struct Prog {
    buf: Vec<u8>,
    len: usize,
    stubs: Vec<(u64, Arc<NativeFn>)>,
}

const CODE: usize = 4096;
/// The GOT-like data word (inside the buffer, past the code).
const GOT: usize = 0xf00;

impl Prog {
    fn new() -> Prog {
        Prog { buf: vec![0xcc; CODE], len: 0, stubs: Vec::new() }
    }

    fn base(&self) -> u64 {
        self.buf.as_ptr() as u64
    }

    fn ip(&self) -> u64 {
        self.base() + self.len as u64
    }

    fn emit(&mut self, b: &[u8]) -> &mut Self {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
        self
    }

    /// A trap stub for `host` with signature `sig` (and variadic types); its guest address,
    /// outside the code range so that only the table can make sense of it.
    fn stub(&mut self, host: usize, sig: &str, var: &[Ty]) -> u64 {
        let plan = abi::plan_call(&abi::parse_sig(sig).expect("sig"), var).expect("plan");
        let at = self.base() + 0x2_0000 + 16 * self.stubs.len() as u64;
        self.stubs.push((at, Arc::new(NativeFn { host: host as u64, plan, name: sig.into() })));
        at
    }

    fn plan(&self, n: usize) -> &abi::CallPlan {
        &self.stubs[n].1.plan
    }

    /// `call rel32`.
    fn call(&mut self, target: u64) -> &mut Self {
        let rel = target.wrapping_sub(self.ip() + 5) as i64;
        let rel = i32::try_from(rel).expect("in reach");
        self.emit(&[0xe8]).emit(&rel.to_le_bytes())
    }

    /// `call qword ptr [rip + GOT]`, the GOT word holding `target`.
    fn call_got(&mut self, target: u64) -> &mut Self {
        self.buf[GOT..GOT + 8].copy_from_slice(&target.to_le_bytes());
        let disp = (self.base() + GOT as u64).wrapping_sub(self.ip() + 6) as i32;
        self.emit(&[0xff, 0x15]).emit(&disp.to_le_bytes())
    }

    /// `mov r64, imm64`.
    fn mov(&mut self, r: Gpr, v: u64) -> &mut Self {
        let n = r as u8;
        self.emit(&[0x48 | (n >> 3), 0xb8 + (n & 7)]).emit(&v.to_le_bytes())
    }

    fn int3(&mut self) -> u64 {
        self.emit(&[0xcc]);
        self.ip()
    }

    fn translator(&self) -> Tr {
        let b = self.base();
        // SAFETY: the buffer outlives the translator (both are dropped by the test).
        let src = unsafe { RangeSource::new(vec![(b, b + CODE as u64)]) };
        let tr = Tr::with_cache_size(Box::new(src), 4 << 20).expect("translator");
        tr.set_traps(Arc::new(Table(self.stubs.clone())));
        tr
    }
}

struct Table(Vec<(u64, Arc<NativeFn>)>);

impl TrapTable for Table {
    fn native_at(&self, pc: u64) -> Option<Arc<NativeFn>> {
        self.0.iter().find(|(a, _)| *a == pc).map(|(_, f)| Arc::clone(f))
    }
}

/// The guest stack and the callee-saved values every run starts with.
struct Guest {
    stack: Vec<u64>,
    ctx: Box<ThreadCtx>,
    /// Callee-saved registers the program itself changes (not checked after the run).
    scratch: Vec<Gpr>,
}

const SAVED: [(Gpr, u64); 6] = [
    (Gpr::Rbx, 0x1111_2222_3333_4444),
    (Gpr::Rbp, 0x5555_6666_7777_8888),
    (Gpr::R12, 0x0123_4567_89ab_cdef),
    (Gpr::R13, 0),
    (Gpr::R14, 0xfedc_ba98_7654_3210),
    (Gpr::R15, 0x0f0f_0f0f_f0f0_f0f0),
];

impl Guest {
    fn new(p: &Prog) -> Guest {
        let mut g = Guest { stack: vec![0; 4096], ctx: ThreadCtx::new(), scratch: vec![Gpr::R13] };
        g.ctx.cpu.rip = p.base();
        let rsp = g.rsp0();
        g.ctx.cpu.set(Gpr::Rsp, rsp);
        for (r, v) in SAVED {
            g.ctx.cpu.set(r, v);
        }
        g
    }

    /// RSP at the call (16-aligned, as the SysV ABI has it before `call`).
    fn rsp0(&self) -> u64 {
        (self.stack.as_ptr() as u64 + 8 * 2048) & !15
    }

    /// Put `vals[k]` where move `k` of `plan` takes its argument from (register, XMM lane, or
    /// the stack above the return address the call will push). Long doubles take two values:
    /// the 80-bit significand and sign/exponent.
    fn place(&mut self, plan: &abi::CallPlan, vals: &[u64]) {
        let ret_at = self.rsp0() - 8;
        let mut vi = vals.iter();
        for m in &plan.args {
            let Loc::Guest(from) = m.from else { panic!("not a guest source") };
            if m.ext == abi::Ext::F80ToF128Hi {
                continue;
            }
            let v = *vi.next().expect("value");
            match from {
                GuestLoc::Gpr { reg, byte: 0 } => self.ctx.cpu.gpr[usize::from(reg)] = v,
                GuestLoc::Xmm { reg, byte: 0 } => self.ctx.cpu.xmm[usize::from(reg)] = [v, 0xdead_beef],
                GuestLoc::Stack(off) => {
                    let p = (ret_at as i64 + i64::from(off)) as *mut u64;
                    // SAFETY: inside `stack` (the offsets are small), which we own.
                    unsafe { p.write(v) };
                    if m.ext == abi::Ext::F80ToF128Lo {
                        let se = *vi.next().expect("exponent");
                        // SAFETY: as above.
                        unsafe { p.add(1).write(se) };
                    }
                }
                other => panic!("unexpected source {other:?}"),
            }
        }
    }

    /// Run until a non-lookup exit; check that the guest came back from its calls whole.
    fn run(&mut self, tr: &Tr, end: u64) {
        CTX.with(|c| c.set(&*self.ctx));
        TR.with(|c| c.set(tr));
        SAW_IN_CODE.with(|c| c.set(None));
        // SAFETY: the program, its stack and the host functions are ours and live.
        let e = unsafe { tr.run(&mut self.ctx) };
        assert_eq!(e, Exit::Breakpoint);
        assert_eq!(self.ctx.cpu.rip, end, "continued after the native call");
        assert_eq!(self.ctx.cpu.get(Gpr::Rsp), self.rsp0(), "RSP back where the caller had it");
        for (r, v) in SAVED {
            if !self.scratch.contains(&r) {
                assert_eq!(self.ctx.cpu.get(r), v, "{r:?} survives the call");
            }
        }
        // (Only the test's own functions look; libc's do not.)
        assert_ne!(SAW_IN_CODE.with(Cell::get), Some(true), "not in translated code inside the native call");
        assert!(!tr.threads.lock().expect("list").iter().any(|t| t.in_code()), "out of code after the run");
    }

    fn rax(&self) -> u64 {
        self.ctx.cpu.get(Gpr::Rax)
    }
}

/// `call stub; int3` with `vals` placed by the plan; RAX afterwards.
fn call_once(host: usize, sig: &str, var: &[Ty], vals: &[u64], setup: impl FnOnce(&mut Guest)) -> Guest {
    let mut p = Prog::new();
    let s = p.stub(host, sig, var);
    p.call(s);
    let end = p.int3();
    let tr = p.translator();
    let mut g = Guest::new(&p);
    g.place(p.plan(0), vals);
    setup(&mut g);
    g.run(&tr, end);
    g
}

#[test]
fn six_integer_arguments() {
    let v = [1u64, 2, 3, u64::MAX, 0x8000_0000_0000_0000, 42];
    let g = call_once(six as *const () as usize, "(i64,i64,i64,i64,i64,i64)->i64", &[], &v, |_| {});
    assert_eq!(SAW_IN_CODE.with(Cell::get), Some(false), "the host function looked");
    assert_eq!(g.rax() as i64, ihash(&v.map(|x| x as i64)));
}

#[test]
fn eight_integer_arguments_two_on_the_stack() {
    let v = [10u64, 20, 30, 40, 50, 60, 70, 80];
    let g = call_once(eight as *const () as usize, "(i64,i64,i64,i64,i64,i64,i64,i64)->i64", &[], &v, |_| {});
    assert_eq!(g.rax() as i64, ihash(&v.map(|x| x as i64)));
}

#[test]
fn int_arguments_with_garbage_upper_halves() {
    // x86 leaves the upper halves of 32-bit (and narrower) arguments undefined.
    let v = [0xdead_beef_8000_0001u64, 0x1234_5678_ffff_fffe, 0xaaaa_aaaa_aaaa_8001];
    let g = call_once(narrow as *const () as usize, "(i32,u32,i16)->i64", &[], &v, |_| {});
    assert_eq!(g.rax() as i64, ihash(&[i64::from(v[0] as i32), i64::from(v[1] as u32), i64::from(v[2] as i16)]));
    if cfg!(target_arch = "riscv64") {
        // LP64D: 32-bit values sign-extended whatever their signedness, i16 sign-extended.
        let raw = RAW.with(Cell::get);
        assert_eq!(raw[0], 0xffff_ffff_8000_0001);
        assert_eq!(raw[1], 0xffff_ffff_ffff_fffe);
        assert_eq!(raw[2], 0xffff_ffff_ffff_8001);
    }
}

#[test]
fn twenty_mixed_arguments_and_a_double_result() {
    let sig = "(i32,f64,f32,i64,f64,f32,i32,f64,i64,f32,f64,i32,f64,f32,i64,f64,i32,f32,i64,f64)->f64";
    let ints = [-5i64, 1 << 40, 77, -(1 << 33), 9, 123_456_789_012, -1, 3];
    let fps = [1.5f64, -2.25, 3.0e10, 0.125, -7.5, 1.0e-3, 42.0, 6.5, -0.5, 100.25, 2.0, -3.75];
    // Parameter kinds in order: i = int, d = double, f = float.
    let kinds = "idfidfidifdidfidifid";
    let (mut ii, mut fi) = (0, 0);
    let mut vals = Vec::new();
    let mut expect = 0.0;
    for k in kinds.chars() {
        match k {
            'i' => {
                // i32 parameters get garbage above bit 31.
                let v = ints[ii];
                ii += 1;
                let (word, x) = if vals.is_empty() || matches!(vals.len(), 6 | 11 | 16) {
                    ((v as u64 & 0xffff_ffff) | 0x5a5a_0000_0000_0000, f64::from(v as i32))
                } else {
                    (v as u64, v as f64)
                };
                vals.push(word);
                expect = mix(expect, x);
            }
            'd' => {
                vals.push(fps[fi].to_bits());
                expect = mix(expect, fps[fi]);
                fi += 1;
            }
            _ => {
                let f = fps[fi] as f32;
                vals.push(u64::from(f.to_bits()) | 0xffff_0000_0000_0000);
                expect = mix(expect, f64::from(f));
                fi += 1;
            }
        }
    }
    let g = call_once(mixed as *const () as usize, sig, &[], &vals, |_| {});
    assert_eq!(f64::from_bits(g.ctx.cpu.xmm[0][0]), expect);
}

#[test]
fn two_register_struct_results() {
    let g = call_once(pair as *const () as usize, "(i64,i64)->{16:8:i64@0,i64@8}", &[], &[41, -4i64 as u64], |_| {});
    assert_eq!((g.rax() as i64, g.ctx.cpu.get(Gpr::Rdx) as i64), (42, -8));
    let g = call_once(int_double as *const () as usize, "(f64,i64)->{16:8:i64@0,f64@8}", &[], &[5.0f64.to_bits(), 7], |_| {});
    assert_eq!(g.rax(), 21);
    assert_eq!(f64::from_bits(g.ctx.cpu.xmm[0][0]), 2.5);
    let (a, b) = (1.25f32, -8.5f32);
    let g = call_once(swap_floats as *const () as usize, "(f32,f32)->{8:4:f32@0,f32@4}", &[], &[a.to_bits().into(), b.to_bits().into()], |_| {});
    assert_eq!(g.ctx.cpu.xmm[0][0], u64::from(b.to_bits()) | u64::from(a.to_bits()) << 32);
}

#[test]
fn variadic_callee_gets_its_varargs() {
    let mut buf = [0u8; 64];
    let fmt = c"%d %.2f %s %ld";
    let xy = c"xy";
    let var = [Ty::I(32), Ty::F64, Ty::Ptr, Ty::I(64)];
    let vals = [
        buf.as_mut_ptr() as u64,
        64,
        fmt.as_ptr() as u64,
        0x7777_0000_0000_002a,
        2.5f64.to_bits(),
        xy.as_ptr() as u64,
        -7i64 as u64,
    ];
    // AL = number of vector registers used, as a variadic x86 caller sets it.
    let g = call_once(libc::snprintf as *const () as usize, "(p,u64,p,...printf3)->i32", &var, &vals, |g| g.ctx.cpu.set(Gpr::Rax, 1));
    let out = std::ffi::CStr::from_bytes_until_nul(&buf).expect("nul");
    assert_eq!(out.to_str().expect("utf8"), "42 2.50 xy -7");
    assert_eq!(g.rax(), 13);
}

/// Declared `(ld,i32)->ld`: the binary128 argument arrives as two words.
#[cfg(target_arch = "riscv64")]
extern "C" fn ldouble(lo: u64, hi: u64, i: i64) -> u128 {
    note();
    RAW.with(|r| r.set([lo, hi, i as u64, 0]));
    // 3.0 in x87 form, widened.
    abi::ldouble::f80_to_f128([0, 0, 0, 0, 0, 0, 0, 0xc0, 0x00, 0x40])
}

#[cfg(target_arch = "riscv64")]
#[test]
fn long_double_argument_and_result() {
    // 1.5: significand 0xc000…, exponent 0x3fff.
    let (mant, se) = (0xc000_0000_0000_0000u64, 0x3fffu64);
    let g = call_once(ldouble as *const () as usize, "(ld,i32)->ld", &[], &[mant, se, 0x1_ffff_fffd], |_| {});
    let raw = RAW.with(Cell::get);
    let mut f80 = [0u8; 10];
    f80[..8].copy_from_slice(&mant.to_le_bytes());
    f80[8..].copy_from_slice(&(se as u16).to_le_bytes());
    let want = abi::ldouble::f80_to_f128(f80);
    assert_eq!((raw[0], raw[1]), (want as u64, (want >> 64) as u64));
    assert_eq!(raw[2], -3i64 as u64);
    // ST0 = 3.0 pushed onto the x87 stack.
    let top = usize::from(g.ctx.cpu.fsw >> 11 & 7);
    assert_eq!(top, 7);
    assert_eq!(g.ctx.cpu.fpr[top], [0xc000_0000_0000_0000, 0x4000]);
}

/// `mov r12, 3; L: mov rdi..r9; call <how>; add r13, rax; dec r12; jnz L; int3`: the call site
/// runs three times (so an inline cache is filled and then hit, a link patched and then taken).
fn loop_calls(got: bool) {
    let mut p = Prog::new();
    let s = p.stub(six as *const () as usize, "(i64,i64,i64,i64,i64,i64)->i64", &[]);
    p.mov(Gpr::R12, 3);
    let top = p.ip();
    for (r, v) in [(Gpr::Rdi, 1u64), (Gpr::Rsi, 2), (Gpr::Rdx, 3), (Gpr::Rcx, 4), (Gpr::R8, 5), (Gpr::R9, 6)] {
        p.mov(r, v);
    }
    if got {
        p.call_got(s);
    } else {
        p.call(s);
    }
    p.emit(&[0x49, 0x01, 0xc5]); // add r13, rax
    p.emit(&[0x49, 0xff, 0xcc]); // dec r12
    let rel = top.wrapping_sub(p.ip() + 2) as i64;
    p.emit(&[0x75, i8::try_from(rel).expect("short") as u8]); // jnz top
    let end = p.int3();
    let tr = p.translator();
    for round in 0..2 {
        let mut g = Guest::new(&p);
        g.scratch.push(Gpr::R12);
        g.run(&tr, end);
        assert_eq!(g.ctx.cpu.get(Gpr::R13) as i64, 3 * ihash(&[1, 2, 3, 4, 5, 6]), "round {round}");
        assert_eq!(g.ctx.cpu.get(Gpr::R12), 0);
    }
}

#[test]
fn stub_reached_by_a_direct_call() {
    loop_calls(false);
}

#[test]
fn stub_reached_through_a_got_slot() {
    loop_calls(true);
}

#[test]
fn in_code_is_set_again_when_the_native_call_returns() {
    // call stub; mov rax, &FLAG; L: cmp qword [rax], 0; je L; int3. The second run reaches the
    // spin block straight from the native-call routine (table hit), so only the routine can
    // have marked the thread in code again, which the watcher thread waits for.
    let mut p = Prog::new();
    let s = p.stub(watch_return as *const () as usize, "()->i64", &[]);
    p.call(s);
    p.mov(Gpr::Rax, FLAG.as_ptr() as u64);
    p.emit(&[0x48, 0x83, 0x38, 0x00, 0x74, 0xfa]);
    let end = p.int3();
    let tr = p.translator();
    for _ in 0..2 {
        FLAG.store(0, Ordering::Release);
        let mut g = Guest::new(&p);
        g.run(&tr, end);
        assert_eq!(FLAG.load(Ordering::Acquire), 1, "in_code seen true after the return");
    }
}

#[test]
fn code_memory_reused_during_the_native_call() {
    // The native function empties the code cache (this thread is not in code meanwhile, so the
    // reuse does not wait for it); the return must not go back into the reused memory.
    let mut p = Prog::new();
    let s = p.stub(reuse_inside as *const () as usize, "(i64)->i64", &[]);
    let t = p.stub(raise_pending as *const () as usize, "(i64)->i64", &[]);
    p.mov(Gpr::Rdi, 1).call(s);
    p.mov(Gpr::R13, 0).emit(&[0x49, 0x01, 0xc5]); // add r13, rax
    p.mov(Gpr::Rdi, 10).call(t);
    p.emit(&[0x49, 0x01, 0xc5]); // add r13, rax
    let end = p.int3();
    let tr = p.translator();
    for round in 1..=2u64 {
        let mut g = Guest::new(&p);
        g.run(&tr, end);
        // A reuse announced while the native call runs: the routine leaves for the dispatcher.
        REUSE_PENDING.fetch_sub(1, Ordering::SeqCst);
        assert_eq!(g.ctx.cpu.get(Gpr::R13), 101 + 11);
        assert_eq!(tr.flushes(), round);
    }
}

/// Native calls of an empty function per second, through a linked direct call in a loop.
#[test]
#[ignore = "a measurement: cargo test -p translator --release native_call_cost -- --ignored --nocapture"]
fn native_call_cost() {
    let n = 10_000_000u64;
    let mut p = Prog::new();
    let s = p.stub(nothing as *const () as usize, "()->v", &[]);
    p.mov(Gpr::R12, n);
    let top = p.ip();
    p.call(s);
    p.emit(&[0x49, 0xff, 0xcc]); // dec r12
    let rel = top.wrapping_sub(p.ip() + 2) as i64;
    p.emit(&[0x75, i8::try_from(rel).expect("short") as u8]);
    let end = p.int3();
    let tr = p.translator();
    let mut g = Guest::new(&p);
    CTX.with(|c| c.set(&*g.ctx));
    let t = std::time::Instant::now();
    // SAFETY: as in `Guest::run`.
    let e = unsafe { tr.run(&mut g.ctx) };
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!((e, g.ctx.cpu.rip), (Exit::Breakpoint, end));
    println!("{}: {ns:.1} ns per native call (loop included)", crate::isa::HostBackend::NAME);
}
