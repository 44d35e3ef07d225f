//! Malformed-ELF regression files (made by `ld-nc/tools/gen_bad_elf.py`): each must be refused with
//! one clear message naming the file and the problem.
#![allow(clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

use std::path::PathBuf;

fn message(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-elf").join(name);
    match ld_nc::elf::read_file(&path) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => {
            let m = e.to_string();
            assert!(m.starts_with(&path.display().to_string()), "{m}: names the file");
            m
        }
    }
}

#[test]
fn each_file_gives_its_message() {
    let cases: &[(&str, &str)] = &[
        ("not-elf.txt", "not an ELF file"),
        ("truncated-header.elf", "truncated ELF header"),
        ("elf32.elf", "not a 64-bit ELF file"),
        ("big-endian.elf", "not a little-endian ELF file"),
        ("wrong-machine.elf", "wrong machine: e_machine 183 (AARCH64), expected EM_X86_64"),
        ("wrong-type.elf", "not an executable: e_type 1"),
        ("bad-phentsize.elf", "bad e_phentsize 32"),
        ("bad-phnum.elf", "bad e_phnum 65535"),
        ("zero-phnum.elf", "bad e_phnum 0"),
        ("phdrs-outside-file.elf", "program headers [0xfffffffffffff000"),
        ("huge-memsz.elf", "program header 1: p_vaddr + p_memsz lies outside the x86_64 user address space"),
        ("huge-span.elf", "PT_LOAD segments span"),
        ("filesz-gt-memsz.elf", "program header 1: p_filesz is larger than p_memsz"),
        ("segment-outside-file.elf", "program header 1: p_offset + p_filesz lies outside the file"),
        ("bad-align.elf", "program header 1: p_align is not a power of two"),
        ("misaligned-offset.elf", "are not congruent modulo it"),
        ("overlap.elf", "PT_LOAD program headers 0 and 1 overlap"),
        ("kernel-address.elf", "program header 1: p_vaddr + p_memsz lies outside"),
        ("entry-outside.elf", "entry point 0x500000 is not in an executable PT_LOAD segment"),
        ("entry-not-exec.elf", "entry point 0x401900 is not in an executable PT_LOAD segment"),
        ("interp.elf", "program header 0: PT_INTERP lies outside the file, is empty or is not one NUL-terminated path"),
        ("no-load.elf", "no PT_LOAD segment"),
    ];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-elf");
    let files = std::fs::read_dir(&dir).expect("bad-elf dir").count();
    assert_eq!(files, cases.len(), "every regression file has an expected message");
    for (name, want) in cases {
        let m = message(name);
        assert!(m.contains(want), "{name}: got `{m}`, want `{want}`");
    }
}

#[test]
fn missing_file_names_it() {
    let e = ld_nc::elf::read_file(std::path::Path::new("/nonexistent/prog")).expect_err("missing");
    assert!(e.to_string().starts_with("/nonexistent/prog: cannot read:"), "{e}");
}
