//! Malformed dynamic objects (made by `ld-nc/tools/gen_bad_dyn.py` from one small versioned shared
//! object, `good.so`): each must be refused by the dynamic linker's reader with one clear message
//! naming the file and the problem, never a panic; `good.so` must read and answer lookups.
#![allow(clippy::expect_used, clippy::panic, reason = "tests fail loudly")]

use std::path::PathBuf;

use ld_nc::elf::dso::Dso;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad-dyn")
}

/// The reader's verdict: `Dso::inspect` then `Dso::check` (what the linker runs before relocating).
fn verdict(name: &str) -> Result<Dso, String> {
    let path = dir().join(name);
    let bytes = std::fs::read(&path).expect("regression file");
    let d = Dso::inspect(&path, bytes)?;
    d.check().map_err(|p| ld_nc::elf::dso::DynError { path: path.clone(), problem: p }.to_string())?;
    Ok(d)
}

#[test]
fn each_file_gives_its_message() {
    let cases: &[(&str, &str)] = &[
        ("strtab-outside.so", "DT_STRTAB table at 0xdead0000"),
        ("soname-past-strtab.so", "string at offset 0x7fffffff is outside DT_STRTAB"),
        ("reloc-outside.so", "relocation at 0x7fff0000 is outside the object's writable segments"),
        ("reloc-into-text.so", "relocation at 0x1000 is outside the object's writable segments"),
        ("symbol-index.so", "symbol index 9999 is past the symbol table"),
        ("version-nowhere.so", "version index 77 is not defined"),
        ("gnu-hash-bloom.so", "bad dynamic section: DT_GNU_HASH header"),
        ("relaent.so", "bad dynamic section: DT_RELAENT is not 24"),
        ("relasz-huge.so", "DT_RELA table at"),
    ];
    let files = std::fs::read_dir(dir()).expect("bad-dyn dir").count();
    assert_eq!(files, cases.len() + 1, "every regression file (and good.so) has an expected result");
    for (name, want) in cases {
        match verdict(name) {
            Ok(_) => panic!("{name} was accepted"),
            Err(m) => {
                assert!(m.starts_with(&dir().join(name).display().to_string()), "{m}: names the file");
                assert!(m.contains(want), "{name}: got `{m}`, want `{want}`");
            }
        }
    }
}

#[test]
fn the_good_object_reads_and_resolves_by_version() {
    let d = verdict("good.so").expect("good.so");
    assert_eq!(d.soname, "libbase.so.1");
    let (_, s) = d.lookup(b"bump", None).expect("bump by default version");
    assert!(s.value != 0 && s.defined());
    assert!(d.lookup(b"bump", Some("BASE_1.0")).is_some(), "exact version");
    assert!(d.lookup(b"bump", Some("BASE_2.0")).is_none(), "another version does not bind");
    assert!(d.lookup(b"nothere", None).is_none());
    assert!(d.lookup(b"other", None).is_none(), "an undefined symbol is not a definition");
    assert_eq!(d.relocs.len(), 3, "GLOB_DAT x2 and 64");
}

/// A cheap stand-in for the fuzz target in every test run: 20 000 copies of `good.so` with a few
/// bytes changed (inside its headers and tables, where the reader looks) read without a panic.
#[test]
fn mutated_objects_never_panic() {
    let base = std::fs::read(dir().join("good.so")).expect("good.so");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % 0x500) as usize; // headers, dynsym, strtab, hash, versions, rela
            b[at] = next() as u8;
        }
        if let Ok(d) = Dso::inspect(std::path::Path::new("m.so"), b) {
            let _ = d.check();
            let _ = d.lookup(b"bump", None);
            let _ = d.lookup(b"counter", Some("BASE_1.0"));
        }
    }
}
