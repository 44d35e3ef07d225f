//! Process setup and the run loop: load the program (and, for a dynamic program, its own x86_64
//! interpreter as a guest object — see [`crate::elf::interp`] for how this departs from
//! DESIGN.md), build the initial stack, then alternate between translated guest code and the
//! runtime (syscalls, faults, signal delivery) until the guest exits.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use translator::{Backend, Exit, Gpr, ThreadCtx, Translator};

use crate::config::Config;
use crate::elf::{self, load};
use crate::mem::{host_mmap, GuestMap, MapSource, SharedMap, PROT_READ, PROT_WRITE};
use crate::process::{Brk, Process};
use crate::stack::{self, AuxValues};
use crate::syscall::{self, Sys, SysRet};
use crate::signals;

/// Size of the guest's main stack.
pub const STACK_SIZE: u64 = 8 << 20;

/// Exit status for an instruction the backend cannot translate.
pub const EXIT_UNSUPPORTED: i32 = 127;

/// A loaded guest, ready to run.
#[derive(Debug)]
pub struct Guest {
    /// Its first thread.
    pub ctx: Box<ThreadCtx>,
    /// Process-wide state.
    pub proc: Process,
    /// The trap stubs of bridged native functions (a program linked by ld-nc).
    pub traps: Option<std::sync::Arc<crate::bridge::Traps>>,
}

fn random16() -> [u8; 16] {
    let mut r = [0u8; 16];
    // SAFETY: valid buffer; getrandom without flags blocks only before the pool is seeded.
    let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
    if n != 16 {
        // Fall back to something that still differs per run.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        r.copy_from_slice(&(t ^ u128::from(std::process::id())).to_le_bytes());
    }
    r
}

/// Environment variables glibc ignores for AT_SECURE programs; stripped from the guest's
/// environment when ld-nc itself runs with AT_SECURE.
const UNSECURE_ENVVARS: &[&str] = &[
    "GCONV_PATH", "GETCONF_DIR", "HOSTALIASES", "LD_AUDIT", "LD_DEBUG", "LD_DEBUG_OUTPUT",
    "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK", "LD_LIBRARY_PATH", "LD_ORIGIN_PATH", "LD_PRELOAD",
    "LD_PROFILE", "LD_SHOW_AUXV", "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE", "NIS_PATH",
    "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TMPDIR", "TZDIR",
];

/// The exec wrapper's words with the command resolved through PATH (execve does not search).
fn resolve_wrapper(words: &[String]) -> Vec<std::ffi::CString> {
    let Some(first) = words.first() else { return Vec::new() };
    let cmd = if first.contains('/') {
        Some(PathBuf::from(first))
    } else {
        // Without PATH, the search path execvp uses.
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&path).map(|d| d.join(first)).find(|c| c.is_file())
    };
    let Some(cmd) = cmd else {
        log::warn!(target: "ldnc::load", "LDNC_EXEC_WRAPPER: `{first}` not found in PATH; ignored");
        return Vec::new();
    };
    std::iter::once(cmd.into_os_string().into_vec())
        .chain(words[1..].iter().map(|w| w.clone().into_bytes()))
        .filter_map(|w| std::ffi::CString::new(w).ok())
        .collect()
}

/// Load `cfg.prog` and build its initial process state.
pub fn setup(cfg: &Config, env: Vec<(OsString, OsString)>) -> Result<Guest, String> {
    let (image, bytes) = elf::read_file(&cfg.prog).map_err(|e| e.to_string())?;
    if image.entry == 0 {
        return Err(format!("{}: a shared library without an entry point, not a program", cfg.prog.display()));
    }
    if cfg.bridge && image.interp.is_some() {
        drop(bytes);
        return crate::bridge::link::setup(cfg, env);
    }
    let mem: SharedMap = SharedMap::new(GuestMap::new());
    let loaded = load::map_image(&image, &bytes, &mut mem.borrow_mut())
        .map_err(|e| format!("{}: {e}", cfg.prog.display()))?;
    drop(bytes);
    log::info!(
        target: "ldnc::load",
        "{}: {} at [{:#x}, {:#x}), entry {:#x}",
        cfg.prog.display(),
        match (image.pie, image.interp.is_some()) {
            (false, false) => "static",
            (true, false) => "static-pie",
            (false, true) => "dynamic",
            (true, true) => "dynamic PIE",
        },
        loaded.lo,
        loaded.hi,
        loaded.entry
    );
    // A dynamic program starts in its interpreter, which finds the program through AT_PHDR and
    // AT_ENTRY and itself through AT_BASE.
    let (start, interp_base) = match &image.interp {
        None => (loaded.entry, 0),
        Some(interp) => {
            let (path, ii, ib) =
                elf::interp::read(&cfg.prog, interp, cfg.guest_root.as_deref()).map_err(|e| e.to_string())?;
            let il = load::map_image_near(&ii, &ib, &mut mem.borrow_mut(), 0)
                .map_err(|e| format!("{}: interpreter {}: {e}", cfg.prog.display(), path.display()))?;
            log::info!(
                target: "ldnc::load",
                "interpreter {}: at [{:#x}, {:#x}), base {:#x}, entry {:#x}",
                path.display(),
                il.lo,
                il.hi,
                il.bias,
                il.entry
            );
            (il.entry, il.bias)
        }
    };

    finish(cfg, env, mem, &image, &loaded, start, interp_base)
}

/// The rest of process setup once the program (and its interpreter) are mapped: the stack with
/// argv, envp and auxv, the first thread's registers, the process record. `start` is where the
/// first thread begins; `interp_base` is AT_BASE.
pub fn finish(
    cfg: &Config,
    env: Vec<(OsString, OsString)>,
    mem: SharedMap,
    image: &elf::Image,
    loaded: &load::Loaded,
    start: u64,
    interp_base: u64,
) -> Result<Guest, String> {
    // The stack: anywhere the kernel likes (top-down, so high).
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: no MAP_FIXED: only free address space is used.
    let base = unsafe { host_mmap(0, STACK_SIZE, rw, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) }
        .map_err(|e| format!("cannot map the guest stack: {}", std::io::Error::from_raw_os_error(e)))?;
    let stack_prot = PROT_READ | PROT_WRITE | if image.exec_stack { crate::mem::PROT_EXEC } else { 0 };
    mem.borrow_mut().insert(base, base + STACK_SIZE, stack_prot);
    let mut top = base + STACK_SIZE;

    // Program headers not mapped by any segment go at the top of the stack (glibc needs AT_PHDR
    // to find PT_TLS).
    let phdr = match loaded.phdr {
        Some(p) => p,
        None => {
            let len = image.phdr_bytes.len() as u64;
            top = (top - len) & !15;
            // SAFETY: inside the stack mapped above.
            unsafe { core::ptr::copy_nonoverlapping(image.phdr_bytes.as_ptr(), top as *mut u8, len as usize) };
            top
        }
    };

    let secure = crate::config::at_secure();
    let envs: Vec<Vec<u8>> = env
        .into_iter()
        .filter(|(k, _)| !(secure && UNSECURE_ENVVARS.iter().any(|u| k.as_bytes() == u.as_bytes())))
        .map(|(k, v)| {
            let mut s = k.into_vec();
            s.push(b'=');
            s.extend(v.into_vec());
            s
        })
        .collect();
    let args: Vec<Vec<u8>> = cfg.args.iter().map(|a| a.as_bytes().to_vec()).collect();
    // SAFETY: the id getters have no preconditions.
    let ids = unsafe { [libc::getuid(), libc::geteuid(), libc::getgid(), libc::getegid()] }.map(u64::from);
    let aux = AuxValues {
        phdr,
        phnum: u64::from(image.phnum),
        entry: loaded.entry,
        base: interp_base,
        ids,
        secure,
        hwcap: translator::cpuid::hwcap(),
        minsigstksz: signals::FRAME_NEED.max(2048),
        random: random16(),
    };
    let img = stack::build(top, &args, &envs, cfg.prog.as_os_str().as_bytes(), &aux);
    if img.sp < base + 4096 {
        return Err("arguments and environment do not fit in the guest stack".into());
    }
    // SAFETY: `[sp, top)` lies inside the stack mapped above.
    unsafe { core::ptr::copy_nonoverlapping(img.bytes.as_ptr(), img.sp as *mut u8, img.bytes.len()) };

    let mut ctx = ThreadCtx::new();
    ctx.cpu.rip = start;
    ctx.cpu.set(Gpr::Rsp, img.sp);
    // As the kernel's ELF_PLAT_INIT: no rtld fini function yet (a dynamic program's interpreter
    // passes its own to the program's entry).
    ctx.cpu.set(Gpr::Rdx, 0);

    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    let mut proc = Process::new(mem, exe);
    proc.guest_exe = std::fs::canonicalize(&cfg.prog).unwrap_or_else(|_| cfg.prog.clone());
    proc.exec_wrapper = resolve_wrapper(&cfg.exec_wrapper);
    proc.brk = Brk { start: loaded.hi, cur: loaded.hi, mapped: loaded.hi };
    signals::inherited_actions(&mut proc);
    log::info!(target: "ldnc::load", "stack [{base:#x}, {:#x}), rsp {:#x}, brk {:#x}", base + STACK_SIZE, img.sp, loaded.hi);
    Ok(Guest { ctx, proc, traps: None })
}

/// Run the guest until it exits; returns its exit status.
pub fn run<B: Backend + 'static>(guest: &mut Guest, debug: crate::config::DebugFlags) -> Result<i32, String> {
    let tr = Translator::<B>::new(Box::new(MapSource(guest.proc.mem.clone()))).map_err(|e| e.to_string())?;
    if debug.0 & crate::config::DebugFlags::PERFMAP != 0 {
        if let Err(e) = tr.enable_perf_map() {
            log::warn!(target: "translator", "cannot write the perf map: {e}");
        }
    }
    if let Some(t) = &guest.traps {
        tr.set_traps(t.clone());
        install_callbacks(&tr, &mut guest.proc, t.clone());
        // Native libraries may start threads that call guest code at any moment, from threads
        // that are not the one running guest code now; the switch to multi-thread code (riscv64
        // fences) is made here, while this is the only thread, not from such a thread (a flush
        // from there raced the running thread: smc_threads hung under qemu).
        tr.threads_starting();
    }
    crate::bridge::callback::set_current(&mut *guest.ctx);
    crate::smc::install_fault_map(tr.fault_map());
    crate::smc::install(tr.smc())?;
    crate::threads::install_kick()?;
    crate::threads::register_current();
    tr.set_kick(crate::threads::kick);
    let status = run_loop(&tr, &mut guest.ctx, &mut guest.proc);
    translator::isa::riscv64::profile_report();
    Ok(status)
}

/// The translator and process of this run, for nested loops (set once; both live until the
/// process ends, in the main thread's frame).
static NESTED_RT: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// Give the callback machinery what it needs to run guest functions for native code.
fn install_callbacks<B: Backend + 'static>(tr: &Translator<B>, proc: &mut Process, traps: std::sync::Arc<crate::bridge::Traps>) {
    use crate::bridge::callback::{self, Nested, Runtime};
    let _ = NESTED_RT.set((tr as *const Translator<B> as usize, proc as *mut Process as usize));
    /// The nested loop for `B`.
    unsafe fn nested<B: Backend + 'static>(ctx: &mut ThreadCtx) -> Nested {
        let Some(&(tr, proc)) = NESTED_RT.get() else { return Nested::Exit(EXIT_UNSUPPORTED) };
        // SAFETY: both live until the process ends (see NESTED_RT); this thread holds no lock.
        match unsafe { run_loop_raw(&*(tr as *const Translator<B>), ctx, proc as *mut Process) } {
            LoopEnd::Returned => Nested::Returned,
            LoopEnd::Process(c) => Nested::Exit(c),
            LoopEnd::Thread => Nested::ThreadExit,
        }
    }
    fn start<B: Backend + 'static>() {
        if let Some(&(tr, _)) = NESTED_RT.get() {
            // SAFETY: the translator lives until the process ends.
            unsafe { (*(tr as *const Translator<B>)).threads_starting() };
        }
    }
    unsafe fn end<B: Backend + 'static>(ctx: &mut ThreadCtx) {
        if let Some(&(tr, _)) = NESTED_RT.get() {
            // SAFETY: the translator lives until the process ends.
            unsafe { (*(tr as *const Translator<B>)).thread_ended(ctx) };
        }
    }
    callback::install(Runtime {
        nested: nested::<B>,
        thread_start: start::<B>,
        thread_end: end::<B>,
        mem: proc.mem.clone(),
        traps,
        new_tcb: crate::bridge::link::new_tcb,
    });
}

/// Alternate between translated code and the runtime until the guest exits; its exit status.
pub fn run_loop<B: Backend + 'static>(tr: &Translator<B>, ctx: &mut ThreadCtx, proc: &mut Process) -> i32 {
    // SAFETY: `proc` is borrowed for the whole loop; other guest threads reach it only under the
    // process lock, which `run_loop_raw` holds whenever it touches it.
    match unsafe { run_loop_raw(tr, ctx, proc) } {
        LoopEnd::Process(code) => code,
        // Only threads made by clone end alone; only nested loops return.
        LoopEnd::Thread | LoopEnd::Returned => 0,
    }
}

/// How a guest thread's loop ended.
#[derive(Debug)]
pub enum LoopEnd {
    /// The process exits with this status.
    Process(i32),
    /// This thread ended (`exit` in a thread made by clone); it still holds the process lock.
    Thread,
    /// A guest function called by native code returned (a nested loop's end; see
    /// [`crate::bridge::callback`]).
    Returned,
}

/// [`run_loop`] for one guest thread among several: translated code and pass-through syscalls
/// run with no lock held; the process lock (see [`crate::threads`]) is taken only to handle an
/// exit that touches process state (a custom syscall, a fault, a signal to deliver) and a
/// reference to `proc` exists only while it is held.
///
/// # Safety
/// `procp` must be valid for the whole call and only used by threads holding the process lock.
pub unsafe fn run_loop_raw<B: Backend + 'static>(tr: &Translator<B>, ctx: &mut ThreadCtx, procp: *mut Process) -> LoopEnd {
    let table = syscall::table();
    loop {
        // SAFETY: the guest's memory is laid out in this process as `proc.mem` records, and the
        // context belongs to this thread.
        let exit = unsafe { tr.run(ctx) };
        if exit == Exit::Syscall {
            let nr = ctx.cpu.get(Gpr::Rax);
            if let Some((host, arity)) = syscall::pass_entry(table, nr) {
                // No ld-nc state is involved: nothing is locked.
                let v = syscall::run_pass(nr, host, arity, syscall::args(&ctx.cpu));
                if v != -i64::from(libc::EINTR) && signals::pending_here() == 0 {
                    signals::plain_result(&mut ctx.cpu, v);
                    continue;
                }
                crate::threads::acquire();
                // SAFETY: under the process lock.
                let proc = unsafe { &mut *procp };
                signals::syscall_result(&mut ctx.cpu, proc, nr, v);
                signals::deliver_pending(&mut ctx.cpu, proc);
                crate::threads::release();
                continue;
            }
        }
        if exit == Exit::InvalidOpcode && ctx.cpu.rip == crate::bridge::callback::return_address() && ctx.cpu.rip != 0 {
            return LoopEnd::Returned;
        }
        if exit == Exit::Interrupted && signals::pending_here() == 0 {
            // Kicked out for a code-cache flush, or the signal was taken by another exit.
            continue;
        }
        crate::threads::acquire();
        // SAFETY: under the process lock, released at the end of this iteration.
        let proc = unsafe { &mut *procp };
        match exit {
            Exit::Syscall => {
                let nr = ctx.cpu.get(Gpr::Rax);
                let mut sys = Sys { cpu: &mut ctx.cpu, proc, code: tr };
                match syscall::dispatch(table, &mut sys) {
                    SysRet::Ret(v) => signals::syscall_result(&mut ctx.cpu, proc, nr, v),
                    SysRet::Restored => {}
                    SysRet::Exit(code) => return LoopEnd::Process(code),
                    SysRet::ThreadExit => return LoopEnd::Thread,
                }
            }
            Exit::Breakpoint => signals::fault(&mut ctx.cpu, proc, libc::SIGTRAP, 0x80, 0, "int3"),
            Exit::Privileged => {
                let at = ctx.cpu.rip;
                signals::fault(&mut ctx.cpu, proc, libc::SIGSEGV, 0x80, 0, &format!("privileged instruction at {at:#x}"))
            }
            Exit::InvalidOpcode => {
                let at = ctx.cpu.rip;
                signals::fault(&mut ctx.cpu, proc, libc::SIGILL, 2, at, "invalid opcode")
            }
            Exit::DivideError => {
                let at = ctx.cpu.rip;
                signals::fault(&mut ctx.cpu, proc, libc::SIGFPE, 1, at, "division error")
            }
            Exit::NotExecutable => {
                let at = ctx.cpu.rip;
                let unmapped = !proc.mem.borrow().gaps(at, at + 1).is_empty();
                // SEGV_MAPERR for no mapping, SEGV_ACCERR for a mapping without PROT_EXEC.
                let code = if unmapped { 1 } else { 2 };
                signals::fault(&mut ctx.cpu, proc, libc::SIGSEGV, code, at, "jump to non-executable memory")
            }
            // Stopped for a pending asynchronous signal, delivered just below.
            Exit::Interrupted => {}
            Exit::Fault(f) => {
                let what = format!("fault in guest code at {:#x}", ctx.cpu.rip);
                signals::fault(&mut ctx.cpu, proc, f.signo, f.code, f.addr, &what)
            }
            Exit::Unsupported(u) => {
                eprintln!("ld-nc: {}: {u}", proc.guest_exe.display());
                return LoopEnd::Process(EXIT_UNSUPPORTED);
            }
        }
        signals::deliver_pending(&mut ctx.cpu, proc);
        crate::threads::release();
    }
}

/// ld-nc's `main`, for the host backend `B`.
pub fn main<B: Backend + 'static>() -> ! {
    let secure = crate::config::at_secure();
    let env_debug = if secure { None } else { std::env::var("LDNC_DEBUG").ok() };
    let wrapper = if secure { None } else { std::env::var("LDNC_EXEC_WRAPPER").ok() };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--check-manifest") {
        let extra = if secure { None } else { std::env::var("LDNC_HOST_LIBRARY_PATH").ok() };
        crate::config::init_logger(crate::config::DebugFlags::parse(env_debug.as_deref().unwrap_or("")).0);
        std::process::exit(crate::hostlib::check_main(&args[1..], extra.as_deref()));
    }
    let cfg = match crate::config::parse(std::env::args_os().skip(1), env_debug.as_deref(), secure) {
        Ok(c) => c
            .with_exec_wrapper(wrapper.as_deref(), secure)
            .with_guest_root(std::env::var_os(crate::elf::interp::GUEST_ROOT_VAR).as_deref(), secure)
            .with_bridge(&|k| std::env::var_os(k), secure),
        Err(e @ (crate::config::CliError::Help | crate::config::CliError::Version)) => {
            println!("{e}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("ld-nc: {e}");
            std::process::exit(2)
        }
    };
    crate::config::init_logger(cfg.debug);
    let mut guest = match setup(&cfg, std::env::vars_os().collect()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ld-nc: {e}");
            std::process::exit(127)
        }
    };
    match run::<B>(&mut guest, cfg.debug) {
        Ok(code) => {
            // SAFETY: _exit ends the process without running host atexit handlers; the guest
            // wrote its own output with raw syscalls.
            unsafe { libc::_exit(code) }
        }
        Err(e) => {
            eprintln!("ld-nc: {e}");
            std::process::exit(127)
        }
    }
}
