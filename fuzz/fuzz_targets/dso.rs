//! Fuzz the dynamic linker's reader of one object: any input must give a `Dso` or an error, never
//! a panic, and every question the linker asks of an accepted object (its check, its symbols, its
//! versions, lookups by name) must answer without one. Seed it with `ld-nc/tests/bad-dyn/*.so`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ld_nc::elf::dso::Dso;

fuzz_target!(|data: &[u8]| {
    let Ok(d) = Dso::inspect(std::path::Path::new("fuzz.so"), data.to_vec()) else { return };
    let _ = d.check();
    for i in 0..64 {
        if let Ok(s) = d.sym(i) {
            let _ = d.sym_name(&s);
            let _ = d.sym_version(i);
        }
    }
    for name in [&b"bump"[..], b"printf", b"", b"counter"] {
        let _ = d.lookup(name, None);
        let _ = d.lookup(name, Some("BASE_1.0"));
    }
    for n in &d.needed {
        assert!(!n.contains('\0'));
    }
});
