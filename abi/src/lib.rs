//! The two calling conventions as data (SysV x86-64 and riscv64 LP64D), the manifest format and its
//! reader, and the marshalling plans that the translator and the generic bridge path execute.
//!
//! - [`types`]: the compact type and signature model; [`manifest`]: the format (`MANIFEST.md`),
//!   reader, writer and the load-time check against a host library's exports ([`report`] counts).
//! - [`plan`]: SysV x86-64 and LP64D argument placement and the move plans between them;
//!   [`valist`]: both `va_list`s; [`format`]: typing printf/scanf varargs from the format string;
//!   [`ldouble`]: x87 80-bit ⇄ binary128.
//!
//! The runtime part here (types, manifests, conventions, plans) builds for both hosts and links
//! nothing but std. The header-driven generator lives in `src/gen/` behind the `generator`
//! feature, since it needs libclang, which the riscv64 host does not have.

pub mod format;
pub mod ldouble;
pub mod manifest;
pub mod plan;
pub mod report;
pub mod types;
pub mod valist;

pub use manifest::{check_against_exports, Class, Conversion, Kind, Manifest, ManifestError, Reason, Record, Report};
pub use plan::{plan_call, plan_callback, CallPlan, Ext, GuestLoc, HostLoc, Loc, Move, PlanError};
pub use types::{parse_sig, parse_ty, Aggregate, Leaf, Signature, Ty, Varargs};

#[cfg(feature = "generator")]
pub mod gen;
