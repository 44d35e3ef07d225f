//! Harness shared by the guest-program and differential tests: building guest programs with the
//! system's x86_64 compilers, running them natively and under ld-nc, and comparing with golden files.
//!
//! - [`guest`]: the C programs in `tests/programs`, their compiler variants and golden outputs;
//! - [`ldnc`]: which host this is and how to start ld-nc on it;
//! - [`process`]: running a child with a time limit and capturing everything it printed;
//! - [`known`]: the KNOWN-FAILING lists;
//! - [`trial`]: the per-case test runner the `harness = false` integration tests use;
//! - [`compare`]: native-versus-ld-nc comparison and fixture helpers of the real-program tests.

pub mod compare;
pub mod guest;
pub mod known;
pub mod ldnc;
pub mod process;
pub mod trial;

pub mod difftest;
