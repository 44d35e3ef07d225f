//! Harness shared by the guest-program and differential tests: building guest programs with the
//! system's x86_64 compilers, running them natively and under ld-nc, and comparing with golden files.
