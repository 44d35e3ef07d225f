//! The native-library bridge with a library of the test's own: `tests/native/cbstore.c` is built
//! for the host (gcc on x86_64, riscv64-linux-gnu-gcc on riscv64) and, for linking only, for
//! x86_64; the x86_64 program `tests/native/cbuser.c` runs under ld-nc with `LDNC_BRIDGE=1`, the
//! library's checked-in manifest (`tests/native/libcbstore.so.manifest`, made by `abi-gen
//! snippet`) and `LDNC_HOST_LIBRARY_PATH` naming the host build, so every call to it is a native
//! call. It passes a guest callback as an argument (wrapped by the bridge), writes one into the
//! library's struct itself (reached through the fault path), has the library call each on its own
//! thread too, and makes a plain call with floating-point arguments. Output must match
//! `tests/native/cbuser.out`, and on x86_64 the native run.
//!
//! `bridge/dlopen-plugin`: `tests/native/dluser.c` dlopens a guest plugin (`plugin.c`, built for
//! x86_64), runs it through dlsym, and dlsyms native functions (through `dlopen("libm.so.6")` and
//! RTLD_DEFAULT); output must match `tests/native/dluser.out`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use ldnc_tests::ldnc::{self, Host};
use ldnc_tests::process::{self, Output};
use ldnc_tests::trial::{self, Failure, Trial};

fn native_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("native")
}

fn cc(compiler: &str, args: &[&str]) -> Result<(), Failure> {
    let o = Command::new(compiler)
        .args(args)
        .output()
        .map_err(|e| Failure::Setup(format!("{compiler}: {e} (install: bash scripts/setup.sh)")))?;
    if !o.status.success() {
        return Err(Failure::Setup(format!("{compiler} {args:?} failed:\n{}", String::from_utf8_lossy(&o.stderr))));
    }
    Ok(())
}

/// Builds the host library, the x86_64 one to link against, and the program; the folders.
fn build(root: &Path) -> Result<(PathBuf, PathBuf, PathBuf), Failure> {
    let (host, guest) = (root.join("host"), root.join("guest"));
    for d in [&host, &guest] {
        std::fs::create_dir_all(d).map_err(|e| Failure::Setup(format!("{}: {e}", d.display())))?;
    }
    let src = native_dir();
    let lib_src = src.join("cbstore.c");
    let lib_src = lib_src.to_str().unwrap_or_default();
    let host_cc = match Host::current() {
        Host::X86_64 => "gcc",
        Host::Riscv64 => "riscv64-linux-gnu-gcc",
    };
    let out = |d: &Path| d.join("libcbstore.so").display().to_string();
    cc(host_cc, &["-O2", "-shared", "-fPIC", "-pthread", "-o", &out(&host), lib_src])?;
    cc("gcc", &["-O2", "-shared", "-fPIC", "-pthread", "-o", &out(&guest), lib_src])?;
    let prog = root.join("cbuser");
    let inc = format!("-I{}", src.display());
    let libdir = format!("-L{}", guest.display());
    let user = src.join("cbuser.c");
    cc("gcc", &["-O2", &inc, "-o", &prog.display().to_string(), user.to_str().unwrap_or_default(), &libdir, "-lcbstore"])?;
    Ok((host, guest, prog))
}

fn check(what: &str, got: &Output, want: &[u8]) -> Result<(), Failure> {
    if got.status == 0 && got.stdout == want && !got.timed_out {
        return Ok(());
    }
    Err(Failure::Case(format!(
        "{what}: status {} (want 0), stdout: {}\nstderr:\n{}",
        got.status,
        process::first_difference(want, &got.stdout),
        process::show(&got.stderr, 3000)
    )))
}

fn callbacks() -> Result<(), Failure> {
    let launcher = ldnc::locate().map_err(|e| Failure::Setup(e.to_string()))?;
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ldnc-bridge-{}", std::process::id()));
    let (host, guest, prog) = build(&root)?;
    let want = std::fs::read(native_dir().join("cbuser.out")).map_err(|e| Failure::Setup(e.to_string()))?;
    if Host::current().runs_guests_natively() {
        let mut cmd = Command::new(&prog);
        cmd.env_clear().env("LD_LIBRARY_PATH", &guest);
        check("native run", &process::run(cmd, None, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))?, &want)?;
    }
    let mut cmd = launcher.command(&prog);
    cmd.env_clear()
        .envs(ldnc::passthrough_env())
        .env("LDNC_BRIDGE", "1")
        .env("LDNC_MANIFESTS", native_dir())
        .env("LDNC_HOST_LIBRARY_PATH", &host);
    let o = process::run(cmd, None, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&root);
    check("under ld-nc", &o, &want)
}

fn dlopen_plugin() -> Result<(), Failure> {
    let launcher = ldnc::locate().map_err(|e| Failure::Setup(e.to_string()))?;
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ldnc-dlopen-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| Failure::Setup(format!("{}: {e}", root.display())))?;
    let src = native_dir();
    let plugin = root.join("plugin.so").display().to_string();
    let prog = root.join("dluser");
    cc("gcc", &["-O2", "-shared", "-fPIC", "-o", &plugin, src.join("plugin.c").to_str().unwrap_or_default()])?;
    cc("gcc", &["-O2", "-o", &prog.display().to_string(), src.join("dluser.c").to_str().unwrap_or_default(), "-ldl"])?;
    let want = std::fs::read(src.join("dluser.out")).map_err(|e| Failure::Setup(e.to_string()))?;
    if Host::current().runs_guests_natively() {
        let mut cmd = Command::new(&prog);
        cmd.arg(&plugin);
        check("native run", &process::run(cmd, None, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))?, &want)?;
    }
    let mut cmd = launcher.command(&prog);
    cmd.arg(&plugin).env_clear().envs(ldnc::passthrough_env()).env("LDNC_BRIDGE", "1");
    let o = process::run(cmd, None, process::default_timeout()).map_err(|e| Failure::Setup(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&root);
    check("under ld-nc", &o, &want)
}

fn main() -> ExitCode {
    trial::run(vec![
        Trial::new("bridge/native-library-callbacks", callbacks),
        Trial::new("bridge/dlopen-plugin", dlopen_plugin),
    ])
    .exit_code()
}
