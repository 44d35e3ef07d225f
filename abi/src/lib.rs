//! The two calling conventions as data (SysV x86-64 and riscv64 LP64D), the manifest format and its
//! reader, and the marshalling plans that the translator and the generic bridge path execute.
//!
//! The runtime part here (types, manifests, conventions, plans) builds for both hosts and links
//! nothing but std. The header-driven generator lives in `src/gen/` behind the `generator`
//! feature, since it needs libclang, which the riscv64 host does not have.

pub mod manifest;
pub mod plan;
pub mod report;
pub mod types;

pub use manifest::{check_against_exports, Class, Conversion, Kind, Manifest, ManifestError, Reason, Record, Report};
pub use types::{parse_sig, parse_ty, Aggregate, Leaf, Signature, Ty, Varargs};

#[cfg(feature = "generator")]
pub mod gen;
