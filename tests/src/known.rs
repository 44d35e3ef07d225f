//! KNOWN-FAILING lists: the checked-in record of which cases are expected to fail under ld-nc and
//! why. One case per line, its key fields separated by whitespace and followed by a free-text
//! reason; `#` starts a comment line; a key field may be `*` to match anything. A listed case that
//! passes is reported as a failure, so the list can only shrink as ld-nc learns more, and a line
//! that matches no case at all is reported too, so it cannot go stale.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<String>,
    pub reason: String,
    /// 1-based line number in the file, for messages.
    pub line: usize,
}

#[derive(Debug, Clone, Default)]
pub struct KnownFailing {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    TooFewFields { line: usize, wanted: usize },
    NoReason { line: usize },
    Io(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooFewFields { line, wanted } => {
                write!(f, "line {line}: expected {wanted} key fields followed by a reason")
            }
            ParseError::NoReason { line } => write!(f, "line {line}: a known failure needs a reason"),
            ParseError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ParseError {}

impl KnownFailing {
    /// Parses a list whose lines have `fields` key fields before the reason.
    pub fn parse(text: &str, fields: usize) -> Result<KnownFailing, ParseError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut rest = l;
            let mut key = Vec::with_capacity(fields);
            for _ in 0..fields {
                let (word, tail) = match rest.split_once(char::is_whitespace) {
                    Some((w, t)) => (w, t.trim_start()),
                    None if !rest.is_empty() => (rest, ""),
                    None => return Err(ParseError::TooFewFields { line, wanted: fields }),
                };
                key.push(word.to_string());
                rest = tail;
            }
            if rest.is_empty() {
                return Err(ParseError::NoReason { line });
            }
            entries.push(Entry { key, reason: rest.to_string(), line });
        }
        Ok(KnownFailing { entries })
    }

    /// Reads a list; a missing file is an empty list.
    pub fn load(path: &Path, fields: usize) -> Result<KnownFailing, ParseError> {
        match std::fs::read_to_string(path) {
            Ok(text) => KnownFailing::parse(&text, fields)
                .map_err(|e| ParseError::Io(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KnownFailing::default()),
            Err(e) => Err(ParseError::Io(format!("{}: {e}", path.display()))),
        }
    }

    /// The first entry matching `key` (same number of fields, `*` matches anything).
    pub fn lookup(&self, key: &[&str]) -> Option<&Entry> {
        self.entries.iter().find(|e| matches(e, key))
    }

    /// Entries that match none of `cases`: typos, or cases that were renamed or removed.
    pub fn stale<'a>(&'a self, cases: &[Vec<&str>]) -> Vec<&'a Entry> {
        self.entries.iter().filter(|e| !cases.iter().any(|c| matches(e, c))).collect()
    }

    /// Removes the lines `lines` (1-based) of this list's file `path` whose entries name one case
    /// exactly (a `*` line covers several cases and is left for a person to split). Returns how
    /// many lines went.
    pub fn prune(&self, path: &Path, lines: &[usize]) -> Result<usize, ParseError> {
        let exact: Vec<usize> = self
            .entries
            .iter()
            .filter(|e| lines.contains(&e.line) && !e.key.iter().any(|k| k == "*"))
            .map(|e| e.line)
            .collect();
        if exact.is_empty() {
            return Ok(0);
        }
        let io = |e: std::io::Error| ParseError::Io(format!("{}: {e}", path.display()));
        let text = std::fs::read_to_string(path).map_err(io)?;
        let kept: String = text
            .split_inclusive('\n')
            .enumerate()
            .filter(|(i, _)| !exact.contains(&(i + 1)))
            .map(|(_, l)| l)
            .collect();
        std::fs::write(path, kept).map_err(io)?;
        Ok(exact.len())
    }
}

fn matches(e: &Entry, key: &[&str]) -> bool {
    e.key.len() == key.len() && e.key.iter().zip(key).all(|(a, b)| a == "*" || a == b)
}

/// The `known-failing-list` trial: the list at its path parses, and every line names at least one
/// of `cases` (the full keys of every case the test has, on both hosts).
pub fn list_trial(known: Result<KnownFailing, ParseError>, cases: Vec<Vec<String>>) -> crate::trial::Trial {
    crate::trial::Trial::new("known-failing-list", move || {
        let k = known.map_err(|e| crate::trial::Failure::Case(e.to_string()))?;
        let keys: Vec<Vec<&str>> = cases.iter().map(|c| c.iter().map(String::as_str).collect()).collect();
        let stale: Vec<String> = k.stale(&keys).iter().map(|e| format!("line {}: {}", e.line, e.key.join(" "))).collect();
        if stale.is_empty() {
            Ok(())
        } else {
            Err(crate::trial::Failure::Case(format!("KNOWN-FAILING lines that match no case:\n{}", stale.join("\n"))))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let k = KnownFailing::parse("# comment\n\narith gcc-static riscv64 no backend yet\n* musl-static * musl\n", 3)
            .expect("valid list");
        assert_eq!(k.entries.len(), 2);
        assert_eq!(k.entries[0].reason, "no backend yet");
        assert_eq!(k.entries[0].line, 3);
        assert!(k.lookup(&["arith", "gcc-static", "riscv64"]).is_some());
        assert!(k.lookup(&["arith", "gcc-static", "x86_64"]).is_none());
        assert_eq!(k.lookup(&["float", "musl-static", "x86_64"]).map(|e| e.line), Some(4));
        let cases = vec![vec!["arith", "gcc-static", "riscv64"]];
        let stale = k.stale(&cases);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].line, 4);
    }

    #[test]
    fn prune_removes_only_exact_lines() {
        let path = std::env::temp_dir().join(format!("ldnc-known-prune-{}", std::process::id()));
        let text = "# head\na x r1\nb * r2\nc x r3\n";
        std::fs::write(&path, text).expect("write temp list");
        let k = KnownFailing::parse(text, 2).expect("valid list");
        assert_eq!(k.prune(&path, &[2, 3]).expect("prune"), 1);
        assert_eq!(std::fs::read_to_string(&path).expect("read back"), "# head\nb * r2\nc x r3\n");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn rejects_missing_reason_and_fields() {
        assert_eq!(KnownFailing::parse("a b c\n", 3).err(), Some(ParseError::NoReason { line: 1 }));
        assert_eq!(KnownFailing::parse("a b\n", 3).err(), Some(ParseError::TooFewFields { line: 1, wanted: 3 }));
    }
}

