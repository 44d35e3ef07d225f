//! The generator on small C snippets with known answers, parsed with libclang as x86_64 and as
//! riscv64 on the build machine's own headers (the Debian cross package for riscv64).
#![cfg(feature = "generator")]
#![allow(clippy::panic, reason = "a test reports a failed expectation by panicking")]

use abi::gen::analyze_snippet;
use abi::{Class, Conversion, Kind, Reason};
use std::collections::BTreeMap;
use std::sync::Mutex;

// libclang allows one `Clang` per process at a time.
static LOCK: Mutex<()> = Mutex::new(());

fn run(src: &str) -> BTreeMap<String, (Kind, Class)> {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    analyze_snippet(src).unwrap_or_else(|e| panic!("{e}"))
}

fn get<'a>(m: &'a BTreeMap<String, (Kind, Class)>, name: &str) -> &'a (Kind, Class) {
    m.get(name).unwrap_or_else(|| panic!("{name} missing"))
}

fn sig(m: &BTreeMap<String, (Kind, Class)>, name: &str) -> String {
    match &get(m, name).0 {
        Kind::Func(s) | Kind::Field(s) => s.to_string(),
        Kind::Data { size } => format!("data {size}"),
        Kind::Undeclared { .. } => "?".into(),
    }
}

fn class(m: &BTreeMap<String, (Kind, Class)>, name: &str) -> Class {
    get(m, name).1.clone()
}

fn excluded(m: &BTreeMap<String, (Kind, Class)>, name: &str) -> Reason {
    match class(m, name) {
        Class::Exclude { reason, .. } => reason,
        c => panic!("{name}: expected an exclusion, got {c:?}"),
    }
}

#[test]
fn arch_dependent_struct_is_never_passed() {
    let m = run("struct s {\n#ifdef __x86_64__\n long a; int b;\n#else\n int b; long a;\n#endif\n};\n\
                 void by_ptr(struct s *p);\nextern struct s var;\n\
                 struct t {\n#ifdef __x86_64__\n long x[3];\n#else\n long x[2];\n#endif\n};\nint sized(const struct t *);\n");
    assert_eq!(excluded(&m, "by_ptr"), Reason::Layout);
    assert_eq!(excluded(&m, "var"), Reason::Layout);
    assert_eq!(excluded(&m, "sized"), Reason::Layout);
    match class(&m, "sized") {
        Class::Exclude { detail, .. } => assert_eq!(detail, "struct t: size/align 24/8 vs 16/8"),
        c => panic!("{c:?}"),
    }
}

#[test]
fn long_double_by_value_converts_through_memory_excludes() {
    let m = run("long double ldmul(long double a, long double b);\nlong double modf_l(long double x, long double *ip);\n\
                 struct h { long double v; }; int hold(struct h *p);\n");
    assert_eq!(sig(&m, "ldmul"), "(ld,ld)->ld");
    assert_eq!(class(&m, "ldmul"), Class::Convert(vec![Conversion::LongDouble]));
    assert_eq!(excluded(&m, "modf_l"), Reason::LongDoubleInMemory);
    assert_eq!(excluded(&m, "hold"), Reason::LongDoubleInMemory);
}

#[test]
fn packed_bitfield_union_and_arrays() {
    let m = run("struct __attribute__((packed)) pk { char c; int i; }; int pk_ptr(struct pk *p); int pk_val(struct pk v);\n\
                 struct bf { unsigned a:3, b:5; int c; }; int bf_val(struct bf v);\n\
                 union un { int i; float f; }; int un_val(union un u);\n\
                 struct pt { float x, y; }; struct arr { struct pt pts[2]; int n; };\n\
                 int arr_ptr(struct arr *a, struct pt pts[3]); struct arr arr_ret(void);\n");
    assert_eq!(class(&m, "pk_ptr"), Class::Pass);
    assert_eq!(sig(&m, "pk_val"), "({5:1:c8@0,i32@1})->i32");
    assert_eq!(sig(&m, "bf_val"), "({8:4:u32@0,i32@4})->i32");
    assert_eq!(sig(&m, "un_val"), "(u{4:4:i32@0,f32@0})->i32");
    assert_eq!(class(&m, "un_val"), Class::Convert(vec![Conversion::StructByValue]));
    assert_eq!(sig(&m, "arr_ptr"), "(p,p)->i32");
    assert_eq!(class(&m, "arr_ptr"), Class::Pass);
    assert_eq!(sig(&m, "arr_ret"), "()->{20:4}");
}

#[test]
fn function_pointers_nested_returned_and_in_structs() {
    let m = run("typedef int (*cmp_fn)(const void *, const void *);\n\
                 cmp_fn pick(int which, void (*(*getter)(int))(double));\n\
                 struct cbs { void *opaque; int (*read)(void *opaque, unsigned char *buf, int n); };\n\
                 int run_cbs(struct cbs *c);\ntypedef int CB(void *); int takes_fn_type(CB cb);\n");
    assert_eq!(sig(&m, "pick"), "(i32,fn(i32)->fn(f64)->v)->fn(p,p)->i32");
    assert_eq!(class(&m, "pick"), Class::Convert(vec![Conversion::Callback]));
    assert_eq!(class(&m, "run_cbs"), Class::Pass);
    assert_eq!(sig(&m, "cbs.read"), "(p,p,i32)->i32");
    assert_eq!(sig(&m, "takes_fn_type"), "(fn(p)->i32)->i32");
}

#[test]
fn float_pair_by_value() {
    let m = run("struct pt { float x, y; }; struct pt mid(struct pt a, struct pt b);\n#include <complex.h>\ndouble cabs2(double complex z);\n");
    assert_eq!(sig(&m, "mid"), "({8:4:f32@0,f32@4},{8:4:f32@0,f32@4})->{8:4:f32@0,f32@4}");
    assert_eq!(class(&m, "mid"), Class::Convert(vec![Conversion::StructByValue]));
    assert_eq!(sig(&m, "cabs2"), "({16:8:f64@0,f64@8})->f64");
}

#[test]
fn printf_like_and_va_list() {
    let m = run("#include <stdarg.h>\n#define FMT(a, b) __attribute__((format(printf, a, b)))\n\
                 int myprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));\n\
                 int logf_(void *ctx, int level, const char *f, ...) FMT(3, 4);\n\
                 int myvprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));\n\
                 void vlog(void *ctx, const char *fmt, va_list ap);\nint my_sscanf(const char *s, const char *format, ...);\n\
                 int untyped(int n, ...);\nint untyped_va(int n, va_list ap);\n\
                 void setlog(void (*cb)(void *, int, const char *, va_list));\n\
                 typedef void (*report_fn)(const char *format, va_list ap); int set_report(report_fn f);\n");
    assert_eq!(sig(&m, "myprintf"), "(p,...printf1)->i32");
    assert_eq!(class(&m, "myprintf"), Class::Convert(vec![Conversion::VarargsPrintf]));
    assert_eq!(sig(&m, "logf_"), "(p,i32,p,...printf3)->i32");
    assert_eq!(sig(&m, "myvprintf"), "(p,vl)vprintf1->i32");
    assert_eq!(class(&m, "myvprintf"), Class::Convert(vec![Conversion::VaList]));
    assert_eq!(sig(&m, "vlog"), "(p,p,vl)vprintf2->v");
    assert_eq!(sig(&m, "my_sscanf"), "(p,p,...scanf2)->i32");
    assert_eq!(excluded(&m, "untyped"), Reason::VarargsUntyped);
    assert_eq!(excluded(&m, "untyped_va"), Reason::VaListUntyped);
    assert_eq!(class(&m, "setlog"), Class::Convert(vec![Conversion::VaList, Conversion::Callback]));
    // Through a typedef the riscv64 `va_list` (a plain pointer) must still be seen as one.
    assert_eq!(sig(&m, "set_report"), "(fn(p,vl)->v)->i32");
    assert_eq!(class(&m, "set_report"), Class::Convert(vec![Conversion::VaList, Conversion::Callback]));
}

#[test]
fn stat_is_a_known_kernel_struct() {
    let m = run("#include <sys/stat.h>\n#include <stdio.h>\n");
    assert_eq!(class(&m, "stat"), Class::Convert(vec![Conversion::KernelStruct("stat".into())]));
    assert_eq!(class(&m, "fstat"), Class::Convert(vec![Conversion::KernelStruct("stat".into())]));
    // glibc's own builtins are printf-like although its headers spell no attribute.
    assert_eq!(class(&m, "fprintf"), Class::Convert(vec![Conversion::VarargsPrintf]));
    // FILE differs only in plain char signedness, which does not change the bytes.
    assert_eq!(class(&m, "fclose"), Class::Pass);
}

#[test]
fn binary128_matches_across_spellings() {
    // x86-64 `__float128` and riscv64 `long double` behind glibc's `_Float128` typedef are the same
    // format (the build machine's glibc hides `sinf128` from clang, so it is declared here).
    let m = run("#ifdef __x86_64__\n#define F128 __float128\n#else\ntypedef long double _Float128;\n#define F128 _Float128\n#endif\n\
                 F128 mysin128(F128 x);\nF128 myfrexp128(F128 x, int *e);\nF128 mymodf128(F128 x, F128 *ip);\n\
                 long double mysinl(long double x);\n#include <math.h>\n");
    assert_eq!(sig(&m, "mysin128"), "(f128)->f128");
    assert_eq!(class(&m, "mysin128"), Class::Pass);
    assert_eq!(sig(&m, "myfrexp128"), "(f128,p)->f128");
    // Same bits behind a pointer too.
    assert_eq!(class(&m, "mymodf128"), Class::Pass);
    assert_eq!(sig(&m, "mysinl"), "(ld)->ld");
    assert_eq!(class(&m, "mysinl"), Class::Convert(vec![Conversion::LongDouble]));
    assert_eq!(excluded(&m, "modfl"), Reason::LongDoubleInMemory);
}

#[test]
fn constants_that_differ_are_found() {
    use abi::gen::{differing_constants, parse_source, Target};
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("abi-gen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let h = dir.join("consts.h");
    std::fs::write(&h, "#ifdef __x86_64__\n#define MODE_FAST 0x400\n#else\n#define MODE_FAST 2\n#endif\n#define MODE_SLOW 1\n#define NAME \"n\"\n")
        .expect("write header");
    let clang = clang::Clang::new().expect("libclang");
    let index = clang::Index::new(&clang, false, false);
    let (tx, tr) = (Target::system("x86_64-linux-gnu", "amd64"), Target::system("riscv64-linux-gnu", "riscv64"));
    let headers = vec![h.display().to_string()];
    let src = format!("#include <{}>\n", h.display());
    let x = parse_source(&index, &tx, &[], &src, &[]).expect("x86");
    let r = parse_source(&index, &tr, &[], &src, &[]).expect("riscv");
    let diff = differing_constants(&index, [&tx, &tr], &[], &headers, &x, &r, &|_| true);
    assert_eq!(diff, vec![("MODE_FAST".to_owned(), 0x400, 2)]);
    let _ = std::fs::remove_dir_all(&dir);
}
