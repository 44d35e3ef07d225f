//! The dynamic linker on real objects built here with gcc (no libc: `-nostdlib`), mapped into this
//! process as guest objects and relocated without running any of their code: a cyclic
//! `DT_NEEDED` pair, a COPY relocation, symbol versions, TLS offsets, init order, and symbols a
//! fake native library provides. Runs on every host (guest objects are only data until run).
#![allow(clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;

use ld_nc::elf::dso::Dso;
use ld_nc::elf::linker::{self, HostSide, LinkError, ScopeEntry, SearchPath};
use ld_nc::mem::GuestMap;

const LIBA: &str = r#"
extern int b_val(void);
int a_data = 5;
__thread long a_tls = 7;
int a_val(void) { return b_val() + 1; }
__attribute__((constructor)) static void init_a(void) { a_data++; }
"#;
const LIBB: &str = r#"
extern int a_data;
__thread long b_tls[4] = {1, 2, 3, 4};
int b_val(void) { return a_data * 2; }
volatile int b_inited;
__attribute__((constructor)) static void init_b(void) { b_inited = 1; }
"#;
const LIBHOST: &str = "int host_fn(void) { return 0; } int host_var = 3;\n";
const PROG: &str = r#"
extern int a_val(void);
extern int a_data;
extern int host_fn(void);
int (*fp)(void) = a_val;
int (*hp)(void) = host_fn;
int *dp = &a_data;
int read_a(void) { return a_data; } /* an absolute access: a COPY relocation */
extern __thread long a_tls;
long read_tls(void) { return a_tls; } /* initial-exec: an R_X86_64_TPOFF64 in the GOT */
volatile int p_inited;
__attribute__((constructor)) static void init_p(void) { p_inited = 1; }
void _start(void) { for (;;) ; }
"#;

fn cc(dir: &Path, out: &str, src: &str, args: &[&str]) -> PathBuf {
    let c = dir.join(format!("{out}.c"));
    std::fs::write(&c, src).expect("write source");
    let o = dir.join(out);
    let st = Command::new("gcc")
        .args(["-O2", "-nostdlib", "-fno-stack-protector", "-o"])
        .arg(&o)
        .arg(&c)
        .args(args)
        .status()
        .expect("gcc (install: bash scripts/setup.sh)");
    assert!(st.success(), "gcc {out}");
    o
}

/// A native library as the host side sees it: `libhost.so.1` gives fixed fake addresses.
struct FakeHost;
impl HostSide for FakeHost {
    fn provides(&mut self, soname: &str) -> Option<String> {
        (soname == "libhost.so.1").then(|| "fake".into())
    }
    fn lookup(&mut self, soname: &str, name: &str, _version: Option<&str>) -> Option<(u64, u64)> {
        assert_eq!(soname, "libhost.so.1");
        match name {
            "host_fn" => Some((0x1234_5000, 0)),
            _ => None,
        }
    }
}

fn build(dir: &Path) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    // Cyclic: liba needs libb and libb needs liba (built against a first liba without it).
    cc(dir, "liba.so", LIBA, &["-shared", "-fPIC", "-Wl,-soname,liba.so", "-Wl,--unresolved-symbols=ignore-all"]);
    cc(dir, "libb.so", LIBB, &["-shared", "-fPIC", "-Wl,-soname,libb.so", "-L", dir.to_str().expect("utf-8"), "-l:liba.so"]);
    cc(dir, "liba.so", LIBA, &["-shared", "-fPIC", "-Wl,-soname,liba.so", "-L", dir.to_str().expect("utf-8"), "-l:libb.so"]);
    cc(dir, "libhost.so.1", LIBHOST, &["-shared", "-fPIC", "-Wl,-soname,libhost.so.1"]);
    let d = dir.to_str().expect("utf-8");
    // -no-pie and no -fPIC: `&a_data` in the program makes a COPY relocation.
    cc(dir, "prog", PROG, &["-no-pie", "-fno-pic", "-rdynamic", "-L", d, "-l:liba.so", "-l:libhost.so.1", "-Wl,-rpath,$ORIGIN"])
}

#[test]
fn links_a_cyclic_pair_with_copy_tls_init_order_and_host_symbols() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("linker-test");
    let prog_path = build(&dir);
    let mut map = GuestMap::new();
    let prog = Dso::open(&prog_path, &mut map, 0).expect("open prog");
    // liba finds libb through the guest's LD_LIBRARY_PATH (it has no runpath of its own).
    let search = SearchPath { ld_library_path: vec![dir.clone()], root: None };
    let l = linker::link(prog, &mut map, &search, &mut FakeHost).expect("link");
    let names: Vec<&str> = l.objects.iter().map(|d| d.soname.as_str()).collect();
    assert_eq!(names, ["prog", "liba.so", "libb.so"], "each SONAME once, breadth first ($ORIGIN runpath)");
    assert_eq!(l.scope[2], ScopeEntry::Host("libhost.so.1".into()));

    let (p, a, b) = (&l.objects[0], &l.objects[1], &l.objects[2]);
    let sym = |d: &Dso, n: &str| d.addr(d.lookup(n.as_bytes(), None).unwrap_or_else(|| panic!("{n}")).1.value);
    // SAFETY: every address read is a relocated word inside an object mapped above.
    let word = |addr: u64| unsafe { (addr as *const u64).read() };
    assert_eq!(word(sym(p, "fp")), sym(a, "a_val"), "R_X86_64_64 to a guest function");
    assert_eq!(word(sym(p, "hp")), 0x1234_5000, "R_X86_64_64 to a native function's stub");
    // COPY: the program's own a_data holds liba's initial value, and every object uses it.
    let copy = sym(p, "a_data");
    assert_eq!(word(sym(p, "dp")), copy);
    // SAFETY: the program's a_data lies in its mapped .bss.
    assert_eq!(unsafe { (copy as *const i32).read() }, 5);

    // TLS: module 1 is the program (none), then liba (8 bytes), then libb (32 bytes), variant II.
    assert_eq!(l.tls[1].memsz, 8);
    assert_eq!(l.tls[2].memsz, 32);
    assert!(l.tls[2].offset >= l.tls[1].offset + 32 && l.tls_size >= l.tls[2].offset);
    // The program's TPOFF64 for liba's a_tls (offset 0 in liba's block): minus that block's
    // offset below the thread pointer (a TLS symbol's value is an offset, not an address).
    let tpoff = p.relocs.iter().find(|r| r.kind == 18).expect("a TPOFF64 relocation in the program");
    assert_eq!(word(p.addr(tpoff.offset)), l.tls[1].offset.wrapping_neg());

    // Init: dependencies first (libb before liba, which needs it), the program's own apart.
    assert_eq!(l.init.len(), 2, "{:x?}", l.init);
    let in_obj = |f: u64, d: &Dso| f >= d.loaded.lo && f < d.loaded.hi;
    assert!(in_obj(l.init[0], b) && in_obj(l.init[1], a), "{:x?}", l.init);
    assert_eq!(l.program_init.len(), 1);
    assert!(in_obj(l.program_init[0], p));
}

#[test]
fn a_missing_library_names_who_needs_it_and_where_it_looked() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("linker-missing");
    let _ = std::fs::create_dir_all(&dir);
    cc(&dir, "libgone.so", "int gone(void) { return 1; }\n", &["-shared", "-fPIC", "-Wl,-soname,libgone.so"]);
    let d = dir.to_str().expect("utf-8");
    let prog = cc(&dir, "prog", "extern int gone(void);\nvoid _start(void) { gone(); for (;;); }\n", &["-L", d, "-l:libgone.so"]);
    std::fs::remove_file(dir.join("libgone.so")).expect("rm");
    let mut map = GuestMap::new();
    let p = Dso::open(&prog, &mut map, 0).expect("open");
    let search = SearchPath { ld_library_path: vec![PathBuf::from("/nonexistent/lib")], root: None };
    let e = linker::link(p, &mut map, &search, &mut FakeHost).expect_err("missing");
    assert!(matches!(e, LinkError::Missing { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("libgone.so, needed by") && m.contains("prog") && m.contains("/nonexistent/lib"), "{m}");
}
