//! ld-nc, the runtime: CLI and configuration, loading x86_64 programs (static ones directly,
//! dynamic ones with ld-nc's own linker and the native-library bridge, or with their own `ld.so`),
//! the guest process (stack, auxv, brk, TLS), the syscall layer and signals, and the loop that
//! runs the translator.
//!
//! The binary (`main.rs`) only picks the translator backend for this host.

pub mod bridge;
pub mod config;
pub mod elf;
pub mod hostlib;
pub mod mem;
pub mod process;
pub mod run;
pub mod signals;
pub mod smc;
pub mod stack;
pub mod syscall;
pub mod threads;
