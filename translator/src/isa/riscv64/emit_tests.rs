//! Encoder and lowering tests that run on any host: encodings checked as bytes and as text from
//! `disasm.rs`, compared with binutils when `riscv64-linux-gnu-objdump` is installed.
