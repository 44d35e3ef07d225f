//! The two calling conventions as data (SysV x86-64 and riscv64 LP64D), the manifest format and its
//! reader, and the marshalling plans that the translator and the generic bridge path execute.
