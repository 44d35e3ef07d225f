//! The printf and scanf families (converted on riscv64, counted on x86_64): native functions whose variadic arguments, or
//! whose `va_list` argument, only a format string types (manifest classes `convert
//! varargs-printf`, `varargs-scanf` and `va-list`).
//!
//! Why the plain bridge cannot carry them: a trap stub's [`abi::CallPlan`] is fixed when the
//! function is bound, but where an x86-64 caller put the variadic arguments depends on their
//! classes (integer registers RDI..R9, XMM0-7, then the stack, `long double` always on the
//! stack), and riscv64 LP64D wants all of them in integer registers and stack slots, a `long
//! double` as an even-aligned pair of slots. Only the format string, read at the call, says
//! which is which. A guest `va_list` is a 24-byte cursor into a register save area and the stack;
//! a riscv64 one is a pointer to 8-byte slots, so it too must be rebuilt by the format's types.
//!
//! How (one code path for every function of the families, driven by the record's signature
//! alone): the function is bound to a trap stub whose plan passes the six guest argument
//! registers unchanged to a host stub made by [`callback::place_stub`], which leaves a
//! [`FmtDesc`] (the signature's facts and the native function's `dlsym` address) in t2; the
//! entry routine moves it to a6 and tail-calls [`ldnc_fmt_call`]. That handler reads the format,
//! types the variadic arguments with [`abi::format`], finds each one where the x86-64 ABI put it
//! (a [`GuestVaList`] walk: over a save area made of the registers, XMM0-7 from the thread's
//! `ThreadCtx` and the guest stack above the return address for a variadic call, or over the
//! guest's own `va_list`), and lays them out as riscv64 slots.
//!
//! It then calls the record's own native function: for a variadic one with fixed arguments and
//! the slots as one image (a0-a7, then the stack — LP64D passes variadic arguments exactly as a
//! `va_list` walks them, so one image serves both), for a `va_list` one with the slots' address
//! as its `va_list` (`ldnc_rv_call_slots` loads a0-a7 and copies the rest to the stack). A scanf
//! `%Lf` target gets a binary128 temporary, stored back as x87 after the call (the one pointee
//! whose layout differs). Calling the record's function rather than a `v*` counterpart found by a name
//! rule means there is no rule to get wrong (`error`, `error_at_line`, `argp_failure` have no
//! counterpart; `__printf_chk` pairs with `__vprintf_chk`) and the native side does exactly what
//! the guest asked. A format the typing refuses ends the process with status 127 and a message
//! naming the function and the format, never a guessed call.
//!
//! On an x86_64 host both sides share the SysV ABI and nothing is converted, but a variadic
//! call's stack arguments are still only known from the format: the translator's native call
//! copies the plan's fixed number of stack words, so there the stub's entry routine
//! (`ldnc_fmt_entry_x86`) asks [`stack_words`] how many the format consumes and passes exactly
//! those on with the argument registers as the guest left them (a `va_list` one passes through).
//!
//! Not handled: the wide-character forms (their records have no format attribute and stay
//! excluded), `strfmon` (its format is not printf's though the manifest marks it so), more than
//! six fixed parameters, and fixed parameters of floating-point type (none in glibc).

use abi::valist::{GuestVaList, FP_LIMIT, GP_LIMIT};
use abi::{Class, Conversion, Signature, Ty, Varargs};
use translator::bridge::NativeFn;
use translator::Gpr;

use super::callback;

/// Which format syntax types the arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Printf,
    Scanf,
}

/// Where the typed arguments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// After the fixed parameters of a variadic call.
    Varargs,
    /// In the guest `va_list` that is this (0-based) fixed parameter.
    VaList(usize),
}

/// What the handler needs to know about one bound function. `real` stays the first word: the
/// x86_64 entry routine reads it.
#[derive(Debug)]
#[repr(C)]
pub struct FmtDesc {
    /// The native function (`dlsym`).
    pub real: u64,
    pub name: String,
    /// The fixed parameters (integer class, at most six).
    pub fixed: Vec<Ty>,
    /// The 0-based fixed parameter holding the format.
    pub fmt: usize,
    pub family: Family,
    pub source: Source,
}

/// Whether a record of class `class` is carried by this module (on a host that needs it).
pub fn applies(class: &Class) -> bool {
    let ours = |c: &Conversion| matches!(c, Conversion::VaList | Conversion::VarargsPrintf | Conversion::VarargsScanf);
    matches!(class, Class::Convert(list) if !list.is_empty() && list.iter().all(ours))
}

/// The descriptor for function `name` with signature `sig` whose native address is `real`, or
/// why it cannot be carried.
pub fn describe(name: &str, sig: &Signature, real: u64) -> Result<FmtDesc, String> {
    if name.starts_with("strfmon") {
        return Err("its format is strfmon's, not printf's".into());
    }
    let (family, fmt, source) = match (sig.varargs, sig.valist_format) {
        (Varargs::Printf { fmt }, _) => (Family::Printf, fmt, Source::Varargs),
        (Varargs::Scanf { fmt }, _) => (Family::Scanf, fmt, Source::Varargs),
        (Varargs::None, Some(v)) => {
            let at = sig.params.iter().position(|t| *t == Ty::VaList).ok_or("a va-list record without a va_list parameter")?;
            match v {
                Varargs::Printf { fmt } => (Family::Printf, fmt, Source::VaList(at)),
                Varargs::Scanf { fmt } => (Family::Scanf, fmt, Source::VaList(at)),
                _ => return Err("a va_list with no format".into()),
            }
        }
        _ => return Err("no format string types its arguments".into()),
    };
    if sig.params.len() > 6 {
        return Err("more than six fixed parameters".into());
    }
    if let Some(t) = sig.params.iter().find(|t| !matches!(t, Ty::I(_) | Ty::U(_) | Ty::Char | Ty::Ptr | Ty::VaList)) {
        return Err(format!("a fixed parameter of type {t} (only integer-class ones are carried)"));
    }
    let fmt = usize::from(fmt).checked_sub(1).filter(|&i| i < sig.params.len()).ok_or("format parameter out of range")?;
    Ok(FmtDesc { name: name.to_string(), real, fixed: sig.params.clone(), fmt, family, source })
}

/// Bind `name` (signature `sig`, native address `real`): the trap-stub function whose host side
/// is the handler's stub.
pub fn bind(name: &str, sig: &Signature, real: u64) -> Result<NativeFn, String> {
    let desc = describe(name, sig, real)?;
    let entry = entry_address();
    // The six guest argument registers, unchanged, and the record's result.
    let regs = Signature { params: vec![Ty::Ptr; 6], ret: sig.ret.clone(), varargs: Varargs::None, valist_format: None };
    let plan = abi::plan_call(&regs, &[]).map_err(|e| format!("no plan: {e}"))?;
    let desc = Box::leak(Box::new(desc));
    let host = callback::place_stub(desc as *const FmtDesc as u64, entry)?;
    log::debug!(target: "ldnc::bind", "{name}: format handler stub {host:#x} -> native {real:#x}");
    Ok(NativeFn { host, plan, name: name.to_string() })
}

/// One variadic argument as riscv64 passes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// One 8-byte slot (integers sign-extended from 32 bits as LP64D does, pointers, doubles).
    Word(u64),
    /// A binary128 `long double`: two slots at an even index.
    Quad(u128),
}

/// Read the arguments of `types` where `list` finds them (guest memory is host memory).
///
/// # Safety
/// Every address the walk yields must be readable: `list` must describe real argument areas
/// holding at least these arguments (the format's promise, as for the native function).
pub unsafe fn gather(mut list: GuestVaList, types: &[Ty]) -> Result<Vec<Arg>, String> {
    let mut out = Vec::with_capacity(types.len());
    for t in types {
        let a = list.next(t).map_err(|e| format!("argument of type {t}: {}", e.0))?;
        let arg = match t {
            Ty::LongDouble => {
                // SAFETY: the walk gave the address of this argument (contract).
                let v = unsafe { (a as *const abi::ldouble::F80).read_unaligned() };
                Arg::Quad(abi::ldouble::f80_to_f128(v))
            }
            _ => {
                // SAFETY: as above; an argument slot is 8 bytes.
                let v = unsafe { (a as *const u64).read_unaligned() };
                Arg::Word(match t {
                    Ty::I(32) | Ty::U(32) => v as u32 as i32 as i64 as u64,
                    _ => v,
                })
            }
        };
        out.push(arg);
    }
    Ok(out)
}

/// Sixteen-byte aligned storage for argument slots.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
struct Pair([u64; 2]);

/// A riscv64 argument image: 8-byte slots from a 16-byte aligned start.
#[derive(Debug, Default)]
pub struct Slots {
    buf: Vec<Pair>,
    len: usize,
}

impl Slots {
    /// `prefix` (the fixed arguments), then `args` by the LP64D variadic rules.
    pub fn new(prefix: &[u64], args: &[Arg]) -> Slots {
        let mut s = Slots::default();
        for &w in prefix {
            s.push(w);
        }
        for a in args {
            match *a {
                Arg::Word(w) => s.push(w),
                Arg::Quad(q) => {
                    if s.len % 2 == 1 {
                        s.push(0);
                    }
                    s.push(q as u64);
                    s.push((q >> 64) as u64);
                }
            }
        }
        s
    }

    fn push(&mut self, w: u64) {
        if self.len.is_multiple_of(2) {
            self.buf.push(Pair::default());
        }
        if let Some(p) = self.buf.last_mut() {
            p.0[self.len % 2] = w;
        }
        self.len += 1;
    }

    /// Pad with zero slots to at least `n`.
    pub fn pad_to(&mut self, n: usize) {
        while self.len < n {
            self.push(0);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slot `i`.
    pub fn get(&self, i: usize) -> Option<u64> {
        (i < self.len).then(|| self.buf[i / 2].0[i % 2])
    }

    /// The address of slot 0 (16-byte aligned): a riscv64 `va_list` over the slots.
    pub fn as_ptr(&self) -> *const u64 {
        self.buf.as_ptr().cast()
    }
}

/// A fixed argument from a guest register as the riscv64 callee expects it: 32-bit and narrower
/// integers sign-extended from 32 bits (after their own extension).
pub fn fixed_arg(v: u64, t: &Ty) -> u64 {
    match t {
        Ty::I(8) => v as i8 as i64 as u64,
        Ty::I(16) => v as i16 as i64 as u64,
        Ty::U(8) | Ty::Char => u64::from(v as u8),
        Ty::U(16) => u64::from(v as u16),
        Ty::I(32) | Ty::U(32) => v as i32 as i64 as u64,
        _ => v,
    }
}

/// The guest list a variadic call's arguments are walked with: `save` is the 176-byte register
/// save area as x86-64 `va_start` lays it out (RDI..R9, then XMM0-7), `nfixed` integer registers
/// are the fixed parameters, the stack arguments start at `stack`.
pub fn call_list(save: &[u64; 22], nfixed: usize, stack: u64) -> GuestVaList {
    GuestVaList {
        gp_offset: (8 * nfixed as u32).min(GP_LIMIT),
        fp_offset: GP_LIMIT,
        overflow_arg_area: stack,
        reg_save_area: save.as_ptr() as u64,
    }
}

/// A register save area from the six argument registers and XMM0-7 (low halves suffice: only
/// doubles travel there in these calls, but both halves are kept as `va_start` does).
pub fn save_area(int: &[u64; 6], xmm: &[[u64; 2]]) -> [u64; 22] {
    let mut s = [0u64; 22];
    s[..6].copy_from_slice(int);
    for (i, x) in xmm.iter().take(8).enumerate() {
        s[6 + 2 * i] = x[0];
        s[7 + 2 * i] = x[1];
    }
    debug_assert_eq!(FP_LIMIT as usize, 8 * s.len());
    s
}

/// A `long double` a scanf-like function stores: the native function writes binary128 into
/// `tmp` (filled beforehand with the guest's value, so a conversion that does not match leaves
/// it unchanged), converted to x87 format at `guest` after the call.
#[derive(Debug)]
pub struct LdTarget {
    guest: u64,
    tmp: Box<Pair>,
}

/// Point the scanf arguments that store a `long double` at host temporaries.
///
/// # Safety
/// Each such argument must point at a guest `long double` (the format's promise).
pub unsafe fn redirect_long_doubles(fmt: &[u8], args: &mut [Arg]) -> Result<Vec<LdTarget>, String> {
    let which = abi::format::scanf_long_doubles(fmt).map_err(|e| format!("format \"{}\": {e}", fmt.escape_ascii()))?;
    let mut out = Vec::new();
    for (a, _) in args.iter_mut().zip(which).filter(|(_, ld)| *ld) {
        let Arg::Word(guest) = *a else { continue };
        if guest == 0 {
            continue;
        }
        // SAFETY: the guest's long double (contract); x87 values are 10 bytes.
        let v = abi::ldouble::f80_to_f128(unsafe { (guest as *const abi::ldouble::F80).read_unaligned() });
        let tmp = Box::new(Pair([v as u64, (v >> 64) as u64]));
        *a = Arg::Word(&*tmp as *const Pair as u64);
        out.push(LdTarget { guest, tmp });
    }
    Ok(out)
}

/// Store the temporaries back into the guest's `long double`s, as x87 values.
///
/// # Safety
/// As for [`redirect_long_doubles`].
pub unsafe fn store_long_doubles(targets: &[LdTarget]) {
    for t in targets {
        let v = u128::from(t.tmp.0[0]) | u128::from(t.tmp.0[1]) << 64;
        // SAFETY: the guest's long double (contract).
        unsafe { (t.guest as *mut abi::ldouble::F80).write_unaligned(abi::ldouble::f128_to_f80(v)) };
    }
}

/// The format's argument types, or the message that ends the process.
pub fn types_of(desc: &FmtDesc, fmt: &[u8]) -> Result<Vec<Ty>, String> {
    let r = match desc.family {
        Family::Printf => abi::format::printf_args(fmt),
        Family::Scanf => abi::format::scanf_args(fmt),
    };
    r.map_err(|e| format!("cannot type the arguments of format \"{}\": {e}", fmt.escape_ascii()))
}

/// End the process for a call that cannot be made right: one message, status 127.
fn fatal(name: &str, msg: &str) -> ! {
    eprintln!("ld-nc: {name}: {msg}");
    // SAFETY: flushing the (shared) stdio streams so earlier output is not lost, then _exit.
    unsafe {
        libc::fflush(core::ptr::null_mut());
        libc::_exit(127)
    }
}

/// The handler every bound function's stub enters: `int` holds the guest's RDI..R9.
///
/// # Safety
/// Called only by the format entry routine, from a trap stub's native call on a guest thread
/// (the thread's `ThreadCtx` holds the guest RSP and XMM state), with the descriptor its stub
/// carries.
#[cfg_attr(not(target_arch = "riscv64"), allow(dead_code, reason = "entered from the riscv64 routine only"))]
unsafe extern "C" fn ldnc_fmt_call(rdi: u64, rsi: u64, rdx: u64, rcx: u64, r8: u64, r9: u64, desc: &FmtDesc) -> u64 {
    // SAFETY: errno of this thread, read first so a failing call's `%m` survives the handler.
    let errno = unsafe { *libc::__errno_location() };
    let int = [rdi, rsi, rdx, rcx, r8, r9];
    let fmt = int[desc.fmt];
    if fmt == 0 {
        fatal(&desc.name, "null format string");
    }
    // SAFETY: a guest C string (the native function would read it the same way).
    let text = unsafe { core::ffi::CStr::from_ptr(fmt as *const libc::c_char) }.to_bytes();
    let types = types_of(desc, text).unwrap_or_else(|m| fatal(&desc.name, &m));
    let mut fixed: Vec<u64> = desc.fixed.iter().zip(int).map(|(t, v)| fixed_arg(v, t)).collect();
    let lds: Vec<LdTarget>;
    let (mut image, _area) = match desc.source {
        Source::Varargs => {
            let ctx = callback::current();
            if ctx.is_null() {
                fatal(&desc.name, "called on a thread with no guest state");
            }
            // SAFETY: this thread's own context; the native-call routine stored the guest RSP.
            let (xmm, rsp) = unsafe { ((*ctx).cpu.xmm, (*ctx).cpu.get(Gpr::Rsp)) };
            let save = save_area(&int, &xmm);
            // SAFETY: the guest called the function: its stack arguments lie above the return
            // address at RSP, its register arguments are in `save`.
            let args = unsafe { gather(call_list(&save, desc.fixed.len(), rsp.wrapping_add(8)), &types) };
            let mut args = args.unwrap_or_else(|m| fatal(&desc.name, &m));
            // SAFETY: scanf arguments point where the guest wants its values stored.
            lds = unsafe { scanf_long_doubles(desc, text, &mut args) };
            (Slots::new(&fixed, &args), None)
        }
        Source::VaList(at) => {
            let p = int[at];
            if p == 0 {
                fatal(&desc.name, "null va_list");
            }
            // SAFETY: the guest passed its `va_list` (a pointer to its 24-byte `__va_list_tag`).
            let tag = unsafe { (p as *const [u8; abi::valist::GUEST_VA_LIST_SIZE]).read_unaligned() };
            // SAFETY: the guest's list describes its own argument areas.
            let mut args = unsafe { gather(GuestVaList::from_bytes(&tag), &types) }.unwrap_or_else(|m| fatal(&desc.name, &m));
            // SAFETY: as above.
            lds = unsafe { scanf_long_doubles(desc, text, &mut args) };
            let area = Slots::new(&[], &args);
            fixed[at] = area.as_ptr() as u64;
            (Slots::new(&fixed, &[]), Some(area))
        }
    };
    image.pad_to(8);
    // SAFETY: restores the guest's errno for the native call (`%m`).
    unsafe { *libc::__errno_location() = errno };
    // SAFETY: `real` is the native function of the record; the image holds its fixed arguments
    // and variadic arguments (or its va_list, `_area`, alive until the call returns).
    let r = unsafe { call_native(desc, &image) };
    // SAFETY: the targets were made from this call's arguments.
    unsafe { store_long_doubles(&lds) };
    r
}

/// For a scanf-like function, [`redirect_long_doubles`] (ending the process on an error).
///
/// # Safety
/// As for [`redirect_long_doubles`].
unsafe fn scanf_long_doubles(desc: &FmtDesc, fmt: &[u8], args: &mut [Arg]) -> Vec<LdTarget> {
    if desc.family != Family::Scanf {
        return Vec::new();
    }
    // SAFETY: the contract.
    unsafe { redirect_long_doubles(fmt, args) }.unwrap_or_else(|m| fatal(&desc.name, &m))
}

/// Call the native function with the slot image in a0-a7 and on the stack.
///
/// # Safety
/// `desc.real` must take the arguments the image holds.
#[cfg(target_arch = "riscv64")]
unsafe fn call_native(desc: &FmtDesc, image: &Slots) -> u64 {
    // SAFETY: the contract; the routine reads `len` slots (at least 8) from the image.
    unsafe { ldnc_rv_call_slots(desc.real, image.as_ptr(), image.len()) }
}

/// The slot image is the riscv64 convention; on another host nothing binds through here.
///
/// # Safety
/// None needed: it never calls anything.
/// The slot image is the riscv64 convention; on an x86_64 host the x86_64 entry routine calls the
/// native function itself.
///
/// # Safety
/// None needed: it never calls anything.
#[cfg(not(target_arch = "riscv64"))]
unsafe fn call_native(desc: &FmtDesc, _image: &Slots) -> u64 {
    fatal(&desc.name, "the riscv64 format handler entered on another host")
}

#[cfg(target_arch = "riscv64")]
fn entry_address() -> u64 {
    ldnc_fmt_entry as *const () as u64
}

#[cfg(target_arch = "x86_64")]
fn entry_address() -> u64 {
    let _ = ldnc_fmt_call as *const ();
    ldnc_fmt_entry_x86 as *const () as u64
}

/// How many 8-byte words of stack arguments a variadic call passes: the format's types walked by
/// the x86-64 rules from the fixed parameters on (a `va_list` function has none).
pub fn stack_words(desc: &FmtDesc, types: &[Ty]) -> Result<u64, String> {
    if desc.source != Source::Varargs {
        return Ok(0);
    }
    // Addresses only: nothing is read, so any base serves.
    let save = [0u64; 22];
    let base = 1 << 20;
    let mut list = call_list(&save, desc.fixed.len(), base);
    for t in types {
        list.next(t).map_err(|e| format!("argument of type {t}: {}", e.0))?;
    }
    Ok((list.overflow_arg_area - base) / 8)
}

/// x86_64 host: called by the entry routine with the guest's argument registers (`frame`: RDI..R9
/// in `int[0..6]`); how many words of guest stack arguments to pass on.
///
/// # Safety
/// Called only by `ldnc_fmt_entry_x86` with the descriptor its stub carries.
#[cfg(target_arch = "x86_64")]
unsafe extern "C" fn ldnc_fmt_stack_words(desc: &FmtDesc, frame: &callback::arch::Frame) -> u64 {
    let fmt = frame.int[desc.fmt];
    if fmt == 0 {
        fatal(&desc.name, "null format string");
    }
    // SAFETY: a guest C string (the native function would read it the same way).
    let text = unsafe { core::ffi::CStr::from_ptr(fmt as *const libc::c_char) }.to_bytes();
    let words = types_of(desc, text).and_then(|t| stack_words(desc, &t));
    words.unwrap_or_else(|m| fatal(&desc.name, &m))
}

#[cfg(target_arch = "x86_64")]
unsafe extern "C" {
    /// Host stubs of bound functions jump here with the descriptor in R11: the argument
    /// registers are saved in a `callback::arch::Frame`, `ldnc_fmt_stack_words` says how many
    /// words of stack arguments the call has, they are copied from the guest stack (RBX holds the
    /// guest RSP at the trap stub: see the translator's `ldnc_x86_native`) below the registers,
    /// which are restored, and the native function is called.
    fn ldnc_fmt_entry_x86();
}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".pushsection .text.ldnc_fmt_x86,\"ax\",@progbits",
    ".globl ldnc_fmt_entry_x86",
    ".p2align 4",
    "ldnc_fmt_entry_x86:",
    "push rbp",
    "mov rbp, rsp",
    "sub rsp, 240",
    "mov [rsp], rdi",
    "mov [rsp + 8], rsi",
    "mov [rsp + 16], rdx",
    "mov [rsp + 24], rcx",
    "mov [rsp + 32], r8",
    "mov [rsp + 40], r9",
    "mov [rsp + 48], rax",
    "movdqu [rsp + 64], xmm0",
    "movdqu [rsp + 80], xmm1",
    "movdqu [rsp + 96], xmm2",
    "movdqu [rsp + 112], xmm3",
    "movdqu [rsp + 128], xmm4",
    "movdqu [rsp + 144], xmm5",
    "movdqu [rsp + 160], xmm6",
    "movdqu [rsp + 176], xmm7",
    "mov [rsp + 224], r11",
    "mov rdi, r11",
    "mov rsi, rsp",
    "call {words}",
    // RAX words from [RBX + 8] to a 16-aligned block below the frame.
    "mov rcx, rax",
    "lea r10, [rax * 8 + 15]",
    "and r10, -16",
    "sub rsp, r10",
    "test rcx, rcx",
    "jz 2f",
    "1:",
    "mov r10, [rbx + rcx * 8]",
    "mov [rsp + rcx * 8 - 8], r10",
    "dec rcx",
    "jnz 1b",
    "2:",
    "mov rdi, [rbp - 240]",
    "mov rsi, [rbp - 232]",
    "mov rdx, [rbp - 224]",
    "mov rcx, [rbp - 216]",
    "mov r8, [rbp - 208]",
    "mov r9, [rbp - 200]",
    "mov rax, [rbp - 192]",
    "movdqu xmm0, [rbp - 176]",
    "movdqu xmm1, [rbp - 160]",
    "movdqu xmm2, [rbp - 144]",
    "movdqu xmm3, [rbp - 128]",
    "movdqu xmm4, [rbp - 112]",
    "movdqu xmm5, [rbp - 96]",
    "movdqu xmm6, [rbp - 80]",
    "movdqu xmm7, [rbp - 64]",
    "mov r11, [rbp - 16]",
    "call qword ptr [r11]",
    "leave",
    "ret",
    ".popsection",
    words = sym ldnc_fmt_stack_words,
);

#[cfg(target_arch = "riscv64")]
unsafe extern "C" {
    /// Host stubs of bound functions jump here with the descriptor in t2 (see the module doc).
    fn ldnc_fmt_entry();
    /// `f(slots[0..8] in a0-a7, slots[8..n] on the stack)`; its a0.
    fn ldnc_rv_call_slots(f: u64, slots: *const u64, n: usize) -> u64;
}

#[cfg(target_arch = "riscv64")]
core::arch::global_asm!(
    ".pushsection .text.ldnc_fmt_rv,\"ax\",@progbits",
    ".p2align 2",
    ".globl ldnc_fmt_entry",
    "ldnc_fmt_entry:",
    "mv a6, t2",
    "tail {call}",
    ".globl ldnc_rv_call_slots",
    "ldnc_rv_call_slots:",
    "addi sp, sp, -16",
    "sd ra, 8(sp)",
    "sd s0, 0(sp)",
    "mv s0, sp",
    "mv t0, a0",
    "mv t1, a1",
    // Stack slots: n - 8 of them, below a 16-aligned sp.
    "addi t2, a2, -8",
    "blez t2, 2f",
    "slli t3, t2, 3",
    "addi t3, t3, 15",
    "andi t3, t3, -16",
    "sub sp, sp, t3",
    "addi t4, t1, 64",
    "mv t5, sp",
    "1:",
    "ld t6, 0(t4)",
    "sd t6, 0(t5)",
    "addi t4, t4, 8",
    "addi t5, t5, 8",
    "addi t2, t2, -1",
    "bnez t2, 1b",
    "2:",
    "ld a0, 0(t1)",
    "ld a1, 8(t1)",
    "ld a2, 16(t1)",
    "ld a3, 24(t1)",
    "ld a4, 32(t1)",
    "ld a5, 40(t1)",
    "ld a6, 48(t1)",
    "ld a7, 56(t1)",
    "jalr ra, 0(t0)",
    "mv sp, s0",
    "ld s0, 0(sp)",
    "ld ra, 8(sp)",
    "addi sp, sp, 16",
    "ret",
    ".popsection",
    call = sym ldnc_fmt_call,
);

#[cfg(test)]
#[path = "printf_tests.rs"]
mod tests;
