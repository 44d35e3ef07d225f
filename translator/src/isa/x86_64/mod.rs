//! The x86_64 backend: guest and host ISA are the same, so blocks are copied through and only what
//! must change is rewritten.

/// The x86_64 code generator.
#[derive(Debug, Default)]
pub struct X86Backend {}
