//! Regression files for the manifest reader (`tests/bad-manifests/*.manifest`, each with the exact
//! expected error in `*.expected`), the checked-in manifests (which must all read back), and a
//! no-panic sweep over mutations of both.

use abi::Manifest;
use std::path::{Path, PathBuf};

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn files(d: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn bad_manifests_give_the_expected_error() {
    let d = dir("tests/bad-manifests");
    let cases = files(&d, "manifest");
    assert!(cases.len() >= 15, "regression files missing");
    for case in cases {
        let expected = std::fs::read_to_string(case.with_extension("expected")).expect("expected file");
        let name = case.file_name().and_then(|n| n.to_str()).expect("name");
        let err = Manifest::load(&case).expect_err(name);
        let got = err.to_string().replace(&format!("{}/", d.display()), "");
        assert_eq!(got, expected.trim_end(), "{name}");
    }
}

#[test]
fn checked_in_manifests_read_back() {
    let d = dir("../sysroot/manifests");
    for m in files(&d, "manifest") {
        let parsed = Manifest::load(&m).unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.records.is_empty(), "{}", m.display());
        // Writing and reading again gives the same records.
        let again = Manifest::parse(&parsed.to_string(), "again").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.records.len(), parsed.records.len());
    }
}

#[test]
fn overrides_apply_to_their_manifests() {
    let ov_dir = dir("../sysroot/overrides");
    let overrides = files(&ov_dir, "override");
    assert!(!overrides.is_empty());
    for ov in overrides {
        let o = Manifest::load(&ov).unwrap_or_else(|e| panic!("{e}"));
        let mut m = Manifest::load(&dir("../sysroot/manifests").join(format!("{}.manifest", o.soname))).unwrap_or_else(|e| panic!("{e}"));
        m.apply_overrides(&o).unwrap_or_else(|e| panic!("{e}"));
        for r in &o.records {
            assert_eq!(m.get(&r.name).map(|x| &x.class), Some(&r.class));
        }
    }
}

/// A small deterministic generator (xorshift), so the sweep needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn mutated_inputs_never_panic() {
    let mut seeds: Vec<Vec<u8>> = files(&dir("tests/bad-manifests"), "manifest").iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if let Some(z) = files(&dir("../sysroot/manifests"), "manifest").into_iter().find(|p| p.ends_with("libz.so.1.manifest")) {
        seeds.extend(std::fs::read(z).ok());
    }
    seeds.push(b"ld-nc-manifest 1\nsoname libx.so.1\nfunc f (p,{16:8:f32@0,i32@4,f64@8},fn(p,vl)->v,...printf1)->u{8:8:i64@0} convert callback\n".to_vec());
    let alphabet = b"(){}[],.:@#->pvilfu0123456789 \n\tcallbackpassexclude...printf";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in &seeds {
        for _ in 0..300 {
            let mut m = seed.clone();
            for _ in 0..1 + rng.next() % 4 {
                let len = m.len().max(1);
                let at = (rng.next() as usize) % len;
                match rng.next() % 4 {
                    0 if !m.is_empty() => {
                        m.remove(at.min(m.len() - 1));
                    }
                    1 => {
                        let c = alphabet[(rng.next() as usize) % alphabet.len()];
                        let i = at.min(m.len());
                        m.insert(i, c);
                    }
                    2 if !m.is_empty() => {
                        let i = at.min(m.len() - 1);
                        m[i] = rng.next() as u8;
                    }
                    _ => {
                        let cut = at.min(m.len());
                        m.truncate(cut);
                    }
                }
            }
            if let Ok(text) = std::str::from_utf8(&m) {
                let _ = Manifest::parse(text, "mutant");
            }
        }
    }
}
