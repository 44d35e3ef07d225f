//! Comparing the two targets' views of a declaration and deciding its class: pass as is, convert
//! with named generic conversions, or exclude with the reason written down.

use super::walk::{Decl, RecordInfo, TargetDb};
use crate::manifest::{Class, Conversion, Reason};
use crate::types::{Signature, Ty, Varargs};
use std::collections::{BTreeSet, HashSet};

/// Kernel-defined structs whose layout differs between x86-64 and the generic (riscv64) kernel
/// ABI, and which the syscall layer already knows how to convert. A symbol whose only differing
/// types are these is converted, not excluded.
pub const KERNEL_STRUCTS: &[&str] = &["stat", "stat64", "epoll_event", "flock", "flock64", "msqid_ds", "semid_ds", "shmid_ds"];

/// All record keys reachable from `refs` in `db`.
fn closure(db: &TargetDb, refs: &[String], out: &mut BTreeSet<String>) {
    let mut stack: Vec<&String> = refs.iter().collect();
    while let Some(k) = stack.pop() {
        if !out.insert(k.clone()) {
            continue;
        }
        if let Some(r) = db.records.get(k) {
            stack.extend(r.refs.iter());
        }
    }
}

/// A short explanation of how a record differs between the targets.
pub fn explain(key: &str, x: Option<&RecordInfo>, r: Option<&RecordInfo>) -> String {
    match (x, r) {
        (Some(_), None) => format!("{key}: absent on riscv64"),
        (None, Some(_)) => format!("{key}: absent on x86_64"),
        (None, None) => format!("{key}: unknown"),
        (Some(x), Some(r)) => {
            if x.size != r.size || x.align != r.align {
                return format!("{key}: size/align {}/{} vs {}/{}", x.size, x.align, r.size, r.align);
            }
            for (fx, fr) in x.fields.iter().zip(r.fields.iter()) {
                if fx.0 != fr.0 {
                    return format!("{key}: field {} vs {}", fx.0, fr.0);
                }
                if fx.1 != fr.1 {
                    return format!("{key}: field {} at byte {} vs {}", fx.0, fx.1 / 8, fr.1 / 8);
                }
                if fx.2 != fr.2 {
                    return format!("{key}: field {} type differs", fx.0);
                }
            }
            if x.fields.len() != r.fields.len() {
                return format!("{key}: {} public fields vs {}", x.fields.len(), r.fields.len());
            }
            format!("{key}: layout differs")
        }
    }
}

/// Conversions a signature needs, or why it cannot be bridged generically. `callback` is true for
/// the signature of a function pointer that native code will call (host → guest).
pub fn sig_conversions(sig: &Signature, callback: bool, out: &mut BTreeSet<Conversion>) -> Result<(), (Reason, String)> {
    for t in sig.params.iter().chain(core::iter::once(&sig.ret)) {
        match t {
            Ty::LongDouble => {
                out.insert(Conversion::LongDouble);
            }
            Ty::Agg(a) => {
                if t.has_long_double() {
                    return Err((Reason::LongDoubleInMemory, "long double inside a by-value aggregate".into()));
                }
                if a.leaves.iter().any(|l| l.ty == Ty::F128) {
                    return Err((Reason::UnsupportedType, "binary128 inside a by-value aggregate".into()));
                }
                out.insert(Conversion::StructByValue);
            }
            Ty::FnPtr(s) => {
                out.insert(Conversion::Callback);
                sig_conversions(s, true, out)?;
            }
            Ty::VaList => {
                // Host → guest needs no types (every riscv64 vararg sits in an 8-byte slot, which
                // an x86-64 va_list reads through its overflow area); guest → host needs the
                // format string to know which x86-64 register class each argument came in.
                if !callback && sig.valist_format.is_none() {
                    return Err((Reason::VaListUntyped, "va_list argument with no format attribute".into()));
                }
                out.insert(Conversion::VaList);
            }
            _ => {}
        }
    }
    match sig.varargs {
        Varargs::None => {}
        Varargs::Untyped => {
            let what = if callback { "variadic callback" } else { "variadic with no format attribute" };
            return Err((Reason::VarargsUntyped, what.into()));
        }
        Varargs::Printf { .. } => {
            out.insert(Conversion::VarargsPrintf);
        }
        Varargs::Scanf { .. } => {
            out.insert(Conversion::VarargsScanf);
        }
    }
    Ok(())
}

/// Decide the class of one declaration seen on both targets (`r` is `None` when the riscv64
/// headers do not declare it).
pub fn classify(x: &Decl, r: Option<&Decl>, dbx: &TargetDb, dbr: &TargetDb) -> Class {
    let exclude = |reason: Reason, detail: String| Class::Exclude { reason, detail };
    let Some(r) = r else {
        return exclude(Reason::Layout, "not declared by the riscv64 headers".into());
    };
    if let Some(Err(e)) = &x.sig {
        return exclude(Reason::UnsupportedType, e.clone());
    }
    if let Some(Err(e)) = &r.sig {
        return exclude(Reason::UnsupportedType, format!("on riscv64: {e}"));
    }
    if x.shape != r.shape {
        return exclude(Reason::Layout, format!("type differs: {} vs {}", x.shape, r.shape));
    }
    let mut keys = BTreeSet::new();
    closure(dbx, &x.refs, &mut keys);
    closure(dbr, &r.refs, &mut keys);
    let mut kernel = BTreeSet::new();
    for k in &keys {
        let (rx, rr) = (dbx.records.get(k), dbr.records.get(k));
        let same = matches!((rx, rr), (Some(a), Some(b)) if a.layout == b.layout);
        if same {
            continue;
        }
        let tag = k.strip_prefix("struct ").unwrap_or(k);
        if KERNEL_STRUCTS.contains(&tag) {
            kernel.insert(tag.to_owned());
            continue;
        }
        return exclude(Reason::Layout, explain(k, rx, rr));
    }
    if x.mem_long_double || keys.iter().any(|k| dbx.records.get(k).is_some_and(|r| r.long_double)) {
        return exclude(Reason::LongDoubleInMemory, "a long double is reached through memory".into());
    }
    if x.mem_valist || keys.iter().any(|k| dbx.records.get(k).is_some_and(|r| r.valist)) {
        return exclude(Reason::UnsupportedType, "a va_list is reached through memory".into());
    }
    let mut conv = BTreeSet::new();
    if let Some(Ok(sig)) = &x.sig {
        if let Err((reason, detail)) = sig_conversions(sig, false, &mut conv) {
            return exclude(reason, detail);
        }
    }
    for k in kernel {
        conv.insert(Conversion::KernelStruct(k));
    }
    if conv.is_empty() {
        Class::Pass
    } else {
        Class::Convert(conv.into_iter().collect())
    }
}

/// Record keys reachable from a set of declarations (for the function-pointer field records).
pub fn reachable(db: &TargetDb, decls: &[&Decl]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for d in decls {
        closure(db, &d.refs, &mut keys);
    }
    keys
}

/// Whether two records agree; used for field records.
pub fn same_record(dbx: &TargetDb, dbr: &TargetDb, key: &str) -> bool {
    let mut seen = HashSet::new();
    let mut stack = vec![key.to_owned()];
    while let Some(k) = stack.pop() {
        if !seen.insert(k.clone()) {
            continue;
        }
        match (dbx.records.get(&k), dbr.records.get(&k)) {
            (Some(a), Some(b)) if a.layout == b.layout => stack.extend(a.refs.iter().cloned()),
            _ => return false,
        }
    }
    true
}
