//! Counting what the manifests bridge: per library, functions passed as is, converted and
//! excluded, with conversions and exclusion reasons counted, and the coverage goal checked.

use crate::manifest::{Class, Kind, Manifest};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Libraries whose functions must bridge at least [`GOAL_PERCENT`] with no hand-written code.
pub const GOAL_LIBS: &[&str] = &["libavcodec.so.61", "libavformat.so.61", "libavutil.so.59", "libswresample.so.5", "libz.so.1"];
pub const GOAL_PERCENT: f64 = 95.0;

/// Counts for one manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub pass: usize,
    pub convert: usize,
    pub exclude: usize,
    pub data_pass: usize,
    pub data_exclude: usize,
    pub fields: usize,
    pub conversions: BTreeMap<String, usize>,
    pub reasons: BTreeMap<String, usize>,
}

impl Counts {
    pub fn of(m: &Manifest) -> Counts {
        let mut c = Counts::default();
        for r in &m.records {
            match (&r.kind, &r.class) {
                (Kind::Field(_), _) => c.fields += 1,
                (Kind::Undeclared { func: false }, _) => c.data_exclude += 1,
                (Kind::Undeclared { func: true }, Class::Exclude { reason, .. }) => {
                    c.exclude += 1;
                    *c.reasons.entry(reason.to_string()).or_default() += 1;
                }
                (Kind::Undeclared { func: true }, _) => c.exclude += 1,
                (Kind::Data { .. }, Class::Exclude { .. }) => c.data_exclude += 1,
                (Kind::Data { .. }, _) => c.data_pass += 1,
                (Kind::Func(_), Class::Pass) => c.pass += 1,
                (Kind::Func(_), Class::Convert(cs)) => {
                    c.convert += 1;
                    for cv in cs {
                        *c.conversions.entry(cv.to_string()).or_default() += 1;
                    }
                }
                (Kind::Func(_), Class::Exclude { reason, .. }) => {
                    c.exclude += 1;
                    *c.reasons.entry(reason.to_string()).or_default() += 1;
                }
            }
        }
        c
    }

    pub fn functions(&self) -> usize {
        self.pass + self.convert + self.exclude
    }

    /// Share of functions bridged with no hand-written code, in percent.
    pub fn bridged_percent(&self) -> f64 {
        if self.functions() == 0 {
            return 100.0;
        }
        100.0 * (self.pass + self.convert) as f64 / self.functions() as f64
    }
}

fn list(map: &BTreeMap<String, usize>) -> String {
    let mut v: Vec<(&String, &usize)> = map.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// The report text for every `*.manifest` in `dir` (overrides from `ov_dir` counted separately).
pub fn render(dir: &Path, ov_dir: &Path) -> Result<String, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "manifest"))
        .collect();
    paths.sort();
    let mut out = String::new();
    let mut goal: Vec<(String, Counts)> = Vec::new();
    for p in paths {
        let m = Manifest::load(&p).map_err(|e| e.to_string())?;
        let c = Counts::of(&m);
        let _ = writeln!(
            out,
            "{:<20} functions {:>5}: pass {:>5}  convert {:>4}  exclude {:>4}  ({:.1}% bridged)   data {} (+{} excluded)   fn-pointer fields {}",
            m.soname, c.functions(), c.pass, c.convert, c.exclude, c.bridged_percent(), c.data_pass, c.data_exclude, c.fields
        );
        if !c.conversions.is_empty() {
            let _ = writeln!(out, "    conversions: {}", list(&c.conversions));
        }
        if !c.reasons.is_empty() {
            let _ = writeln!(out, "    excluded:    {}", list(&c.reasons));
        }
        let ov = ov_dir.join(format!("{}.override", m.soname));
        if ov.exists() {
            let o = Manifest::load(&ov).map_err(|e| e.to_string())?;
            let mut with = m.clone();
            with.apply_overrides(&o).map_err(|e| e.to_string())?;
            let cw = Counts::of(&with);
            let _ = writeln!(out, "    with {} override(s): pass {} convert {} exclude {}", o.records.len(), cw.pass, cw.convert, cw.exclude);
        }
        if GOAL_LIBS.contains(&m.soname.as_str()) {
            goal.push((m.soname.clone(), c));
        }
    }
    let (mut ok, mut all, mut internal) = (0, 0, 0);
    for (_, c) in &goal {
        ok += c.pass + c.convert;
        all += c.functions();
        internal += c.reasons.get("internal").copied().unwrap_or(0);
    }
    if all > internal {
        let public = all - internal;
        let pct = 100.0 * ok as f64 / public as f64;
        let _ = writeln!(
            out,
            "goal (public API, {internal} internal exports not counted): {ok} of {public} functions bridge with no hand-written code: {pct:.1}% ({} {GOAL_PERCENT}%)",
            if pct >= GOAL_PERCENT { "meets" } else { "BELOW" }
        );
    }
    if all > 0 {
        let pct = 100.0 * ok as f64 / all as f64;
        let _ = writeln!(
            out,
            "goal (all exports): {ok} of {all} functions of {} bridge with no hand-written code: {pct:.1}% ({} {GOAL_PERCENT}%)",
            goal.iter().map(|g| g.0.as_str()).collect::<Vec<_>>().join(", "),
            if pct >= GOAL_PERCENT { "meets" } else { "BELOW" }
        );
    }
    Ok(out)
}

/// Print [`render`] to stdout.
pub fn print(dir: &Path, ov_dir: &Path) -> Result<(), String> {
    print!("{}", render(dir, ov_dir)?);
    Ok(())
}
