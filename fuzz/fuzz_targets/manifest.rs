//! Fuzz the manifest reader: any bytes must give a manifest or a `ManifestError`, never a panic,
//! and whatever parses must write out to text that parses again to the same records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(m) = abi::Manifest::parse(text, "fuzz") {
            let again = abi::Manifest::parse(&m.to_string(), "again");
            assert!(again.is_ok_and(|a| a.records.len() == m.records.len()));
        }
    }
});
