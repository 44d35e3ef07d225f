//! The riscv64 backend: translation of x86-64 blocks to RV64GC (with Zba/Zbb/Zicond and RVV when the
//! host has them).

/// The riscv64 code generator.
#[derive(Debug, Default)]
pub struct Riscv64Backend {}
