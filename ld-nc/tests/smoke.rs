//! End-to-end smoke tests of the `ld-nc` binary: a libc-free guest (integer-only, so it runs on
//! every backend) exercising the syscall layer, exit statuses, death by signal, the CLI, and, on
//! x86_64 hosts, static glibc/musl/static-pie C programs.
//!
//! Guests are built at test time with the host's x86_64 `gcc`/`musl-gcc`. In a riscv64 test build
//! (run under qemu-user) ld-nc is itself started through `qemu-riscv64`.
#![allow(clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tmp() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ldnc-smoke");
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

fn ldnc() -> Command {
    let bin = env!("CARGO_BIN_EXE_ld-nc");
    if cfg!(target_arch = "riscv64") {
        let mut c = Command::new("qemu-riscv64");
        c.args(["-L", "/usr/riscv64-linux-gnu", bin]);
        c
    } else {
        Command::new(bin)
    }
}

fn build(out: &Path, cc: &str, args: &[&str]) {
    let o = Command::new(cc).args(args).arg("-o").arg(out).output().unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(o.status.success(), "{cc} failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn run(args: &[&Path]) -> Output {
    ldnc().args(args).env_remove("LDNC_DEBUG").output().expect("spawn ld-nc")
}

#[test]
fn syscall_layer_from_a_libc_free_guest() {
    let d = tmp();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/syscalls.S");
    let prog = d.join("syscalls");
    build(&prog, "gcc", &["-nostdlib", "-static", src.to_str().expect("utf-8 path")]);
    let file = d.join("f4k");
    std::fs::write(&file, vec![0u8; 4096]).expect("write");
    let o = run(&[&prog, &file]);
    let out = String::from_utf8_lossy(&o.stdout);
    let want = [
        "open", "fstat", "stat", "lseek", "access", "pipe", "epoll", "dup2", "brk", "mmap", "uname", "fs",
        "time", "proc-self-exe", "fork", "vfork", "enosys",
    ]
    .iter()
    .map(|n| format!("{n} 1\n"))
    .collect::<String>();
    assert_eq!(out, want, "stderr: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unsupported syscall 499"), "unknown syscalls are reported: {err}");
}

const EXIT_AND_KILL: &str = "
    .globl _start
_start:
    mov (%rsp), %rax
    cmp $1, %rax
    je 1f
    cmp $3, %rax
    je 2f
    mov $39, %eax       /* getpid */
    syscall
    mov %rax, %rdi
    mov $62, %eax       /* kill(getpid(), SIGTERM) */
    mov $15, %esi
    syscall
    hlt
1:  mov $231, %eax
    mov $42, %edi
    syscall
2:  sub $16, %rsp       /* pipe(fds); close(fds[0]); write(fds[1]) raises SIGPIPE */
    mov $22, %eax
    mov %rsp, %rdi
    syscall
    mov $3, %eax
    movslq (%rsp), %rdi
    syscall
    mov $1, %eax
    movslq 4(%rsp), %rdi
    mov %rsp, %rsi
    mov $1, %edx
    syscall
    mov $231, %eax
    mov $9, %edi
    syscall
";

#[test]
fn exit_status_and_death_by_signal_pass_through() {
    let d = tmp();
    let src = d.join("exitkill.S");
    std::fs::write(&src, EXIT_AND_KILL).expect("write");
    let prog = d.join("exitkill");
    build(&prog, "gcc", &["-nostdlib", "-static", src.to_str().expect("utf-8")]);
    assert_eq!(run(&[&prog]).status.code(), Some(42));
    let o = run(&[&prog, Path::new("kill")]);
    assert_eq!(o.status.signal(), Some(libc::SIGTERM), "the parent sees WIFSIGNALED: {:?}", o.status);
    let o = run(&[&prog, Path::new("pipe"), Path::new("x")]);
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "SIGPIPE is not left ignored by Rust's runtime: {:?}", o.status);
}

#[test]
fn cli_and_bad_programs() {
    let o = ldnc().output().expect("spawn");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("usage: ld-nc"));
    let bad = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-elf/interp.elf");
    let o = run(&[&bad]);
    assert_eq!(o.status.code(), Some(127));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("interp.elf: program header 0: PT_INTERP lies outside the file"), "{err}");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn static_c_programs() {
    // The riscv64 backend does not translate SSE yet, which every C library uses at once.
    let d = tmp();
    let src = d.join("hello.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n\
         int main(int c, char **v) { char *p = malloc(1 << 20); strcpy(p, v[c - 1]);\n\
         char b[256]; ssize_t n = readlink(\"/proc/self/exe\", b, sizeof b);\n\
         printf(\"%d %s %s %d\\n\", c, v[0], p, n > 0); return 3; }\n",
    )
    .expect("write");
    let s = src.to_str().expect("utf-8");
    for (name, cc, flags) in [
        ("glibc", "gcc", &["-static", "-O2"][..]),
        ("pie", "gcc", &["-static-pie", "-O2", "-fPIE"][..]),
        ("musl", "musl-gcc", &["-static", "-O2"][..]),
    ] {
        let prog = d.join(format!("hello-{name}"));
        let mut args = flags.to_vec();
        args.push(s);
        build(&prog, cc, &args);
        let o = run(&[&prog, Path::new("last-arg")]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("2 {} last-arg 1\n", prog.display()),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(3), "{name}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn rwx_code_rewritten_by_stores_and_by_the_kernel() {
    let d = tmp();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/rwx.c");
    let prog = d.join("rwx");
    build(&prog, "gcc", &["-static", "-O2", src.to_str().expect("utf-8")]);
    let o = run(&[&prog]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 6 2 3\n", "{}", String::from_utf8_lossy(&o.stderr));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn handlers_interrupt_blocking_syscalls_which_restart_per_sa_restart() {
    let d = tmp();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/restart.c");
    let prog = d.join("restart");
    build(&prog, "gcc", &["-static", "-O2", src.to_str().expect("utf-8")]);
    let o = run(&[&prog]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "SA_RESTART: read 1 'x' hits 1\nno SA_RESTART: read -1 errno EINTR 1 hits 6\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[cfg(target_arch = "x86_64")]
#[test]
fn threads_blocked_in_converted_calls_let_others_run() {
    let d = tmp();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/guest/threads_block.c");
    for (name, cc, flags) in [("glibc", "gcc", &["-static", "-O2", "-pthread"][..]), ("musl", "musl-gcc", &["-static", "-O2"][..])] {
        let prog = d.join(format!("threads_block-{name}"));
        let mut args = flags.to_vec();
        args.push(src.to_str().expect("utf-8"));
        build(&prog, cc, &args);
        let o = run(&[&prog]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "poll 1 select 1 epoll 1\n", "{name}: {}", String::from_utf8_lossy(&o.stderr));
    }
}
