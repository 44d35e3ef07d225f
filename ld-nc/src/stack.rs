//! The guest's initial stack, laid out as the x86_64 kernel's `create_elf_tables` does: from the
//! top, an 8-byte end marker, the AT_EXECFN string, the environment and argument strings, the
//! platform string and AT_RANDOM bytes, then (16-byte aligned, so that RSP at entry is too) argc,
//! the argv and envp pointer arrays and the auxiliary vector.
//!
//! [`build`] produces the bytes for a given top address without touching memory, so it is tested
//! by parsing its output back.

/// Auxiliary vector types (`<elf.h>`; same values on every Linux architecture).
#[allow(missing_docs, reason = "the ELF names")]
pub mod at {
    pub const AT_NULL: u64 = 0;
    pub const AT_PHDR: u64 = 3;
    pub const AT_PHENT: u64 = 4;
    pub const AT_PHNUM: u64 = 5;
    pub const AT_PAGESZ: u64 = 6;
    pub const AT_BASE: u64 = 7;
    pub const AT_FLAGS: u64 = 8;
    pub const AT_ENTRY: u64 = 9;
    pub const AT_UID: u64 = 11;
    pub const AT_EUID: u64 = 12;
    pub const AT_GID: u64 = 13;
    pub const AT_EGID: u64 = 14;
    pub const AT_PLATFORM: u64 = 15;
    pub const AT_HWCAP: u64 = 16;
    pub const AT_CLKTCK: u64 = 17;
    pub const AT_SECURE: u64 = 23;
    pub const AT_RANDOM: u64 = 25;
    pub const AT_HWCAP2: u64 = 26;
    pub const AT_EXECFN: u64 = 31;
    pub const AT_MINSIGSTKSZ: u64 = 51;
}

/// The values that go into the auxiliary vector (pointers to strings are added by [`build`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxValues {
    /// AT_PHDR.
    pub phdr: u64,
    /// AT_PHNUM.
    pub phnum: u64,
    /// AT_ENTRY: the program's entry point (not the interpreter's).
    pub entry: u64,
    /// AT_BASE: the interpreter's load base for a dynamic program, 0 for a static one.
    pub base: u64,
    /// AT_UID, AT_EUID, AT_GID, AT_EGID.
    pub ids: [u64; 4],
    /// AT_SECURE.
    pub secure: bool,
    /// AT_HWCAP.
    pub hwcap: u64,
    /// AT_MINSIGSTKSZ: what ld-nc's x86_64 signal frame needs.
    pub minsigstksz: u64,
    /// The 16 bytes AT_RANDOM points to.
    pub random: [u8; 16],
}

/// AT_PLATFORM of x86_64.
pub const PLATFORM: &str = "x86_64";

/// A built stack image: `bytes` go at `[sp, top)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackImage {
    /// Initial RSP (points at argc).
    pub sp: u64,
    /// Contents from `sp` up to the top.
    pub bytes: Vec<u8>,
}

/// Lay out the initial stack below `top` (16-byte aligned).
pub fn build(top: u64, args: &[Vec<u8>], env: &[Vec<u8>], execfn: &[u8], aux: &AuxValues) -> StackImage {
    // Strings, placed downward from the top; `strs` collects (offset below top, bytes).
    let mut below: u64 = 8; // end marker
    let mut place = |s: &[u8], nul: bool| -> u64 {
        below += s.len() as u64 + u64::from(nul);
        top - below
    };
    let execfn_at = place(execfn, true);
    // The kernel copies envp first then argv, both toward lower addresses: argv strings end up
    // below envp strings, each array's strings in increasing order.
    let env_total: u64 = env.iter().map(|s| s.len() as u64 + 1).sum();
    let env_base = place(&[], false) - env_total;
    below += env_total;
    let arg_total: u64 = args.iter().map(|s| s.len() as u64 + 1).sum();
    let arg_base = top - below - arg_total;
    below += arg_total;
    let platform_at = {
        below += PLATFORM.len() as u64 + 1;
        top - below
    };
    // AT_RANDOM bytes, 16-byte aligned below the strings.
    let random_at = (top - below - 16) & !15;

    let mut auxv: Vec<(u64, u64)> = vec![
        (at::AT_HWCAP, aux.hwcap),
        (at::AT_PAGESZ, 4096),
        (at::AT_CLKTCK, 100),
        (at::AT_PHDR, aux.phdr),
        (at::AT_PHENT, 56),
        (at::AT_PHNUM, aux.phnum),
        (at::AT_BASE, aux.base),
        (at::AT_FLAGS, 0),
        (at::AT_ENTRY, aux.entry),
        (at::AT_UID, aux.ids[0]),
        (at::AT_EUID, aux.ids[1]),
        (at::AT_GID, aux.ids[2]),
        (at::AT_EGID, aux.ids[3]),
        (at::AT_SECURE, u64::from(aux.secure)),
        (at::AT_RANDOM, random_at),
        (at::AT_HWCAP2, 0),
        (at::AT_EXECFN, execfn_at),
        (at::AT_PLATFORM, platform_at),
        (at::AT_MINSIGSTKSZ, aux.minsigstksz),
    ];
    auxv.push((at::AT_NULL, 0));
    let words = 1 + (args.len() + 1) + (env.len() + 1) + 2 * auxv.len();
    let sp = (random_at - 8 * words as u64) & !15;

    let len = (top - sp) as usize;
    let mut bytes = vec![0u8; len];
    let off = |addr: u64| (addr - sp) as usize;
    let put = |bytes: &mut Vec<u8>, addr: u64, data: &[u8]| {
        let o = off(addr);
        bytes[o..o + data.len()].copy_from_slice(data);
    };
    put(&mut bytes, execfn_at, execfn);
    put(&mut bytes, platform_at, PLATFORM.as_bytes());
    put(&mut bytes, random_at, &aux.random);
    let mut ptrs: Vec<u64> = vec![args.len() as u64];
    let mut at_ = arg_base;
    for a in args {
        put(&mut bytes, at_, a);
        ptrs.push(at_);
        at_ += a.len() as u64 + 1;
    }
    ptrs.push(0);
    let mut at_ = env_base;
    for e in env {
        put(&mut bytes, at_, e);
        ptrs.push(at_);
        at_ += e.len() as u64 + 1;
    }
    ptrs.push(0);
    for (k, v) in auxv {
        ptrs.push(k);
        ptrs.push(v);
    }
    for (i, w) in ptrs.iter().enumerate() {
        put(&mut bytes, sp + 8 * i as u64, &w.to_le_bytes());
    }
    StackImage { sp, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(img: &StackImage, addr: u64) -> u64 {
        let o = (addr - img.sp) as usize;
        let mut b = [0u8; 8];
        b.copy_from_slice(&img.bytes[o..o + 8]);
        u64::from_le_bytes(b)
    }

    fn cstr(img: &StackImage, addr: u64) -> Vec<u8> {
        let o = (addr - img.sp) as usize;
        img.bytes[o..].iter().take_while(|&&c| c != 0).copied().collect()
    }

    fn aux() -> AuxValues {
        AuxValues {
            phdr: 0x400040,
            phnum: 9,
            entry: 0x401000,
            base: 0,
            ids: [1000, 1001, 1002, 1003],
            secure: false,
            hwcap: 0x178bfbff,
            minsigstksz: 2048,
            random: *b"0123456789abcdef",
        }
    }

    #[test]
    fn parses_back_with_kernel_layout() {
        let top = 0x7fff_0000_0000;
        for nargs in 0..4usize {
            let args: Vec<Vec<u8>> = (0..nargs).map(|i| format!("arg{i}{}", "x".repeat(i)).into_bytes()).collect();
            let env = vec![b"A=1".to_vec(), b"PATH=/bin".to_vec()];
            let img = build(top, &args, &env, b"/bin/prog", &aux());
            assert_eq!(img.sp % 16, 0, "rsp at entry is 16-byte aligned");
            assert_eq!(img.sp + img.bytes.len() as u64, top);
            assert_eq!(word(&img, img.sp), nargs as u64);
            let mut p = img.sp + 8;
            for a in &args {
                assert_eq!(&cstr(&img, word(&img, p)), a);
                p += 8;
            }
            assert_eq!(word(&img, p), 0);
            p += 8;
            for e in &env {
                assert_eq!(&cstr(&img, word(&img, p)), e);
                p += 8;
            }
            assert_eq!(word(&img, p), 0);
            p += 8;
            let mut seen = std::collections::BTreeMap::new();
            loop {
                let (k, v) = (word(&img, p), word(&img, p + 8));
                p += 16;
                if k == at::AT_NULL {
                    break;
                }
                assert!(seen.insert(k, v).is_none(), "auxv type {k} once");
            }
            assert_eq!(seen[&at::AT_PHDR], 0x400040);
            assert_eq!(seen[&at::AT_PHENT], 56);
            assert_eq!(seen[&at::AT_PHNUM], 9);
            assert_eq!(seen[&at::AT_ENTRY], 0x401000);
            assert_eq!(seen[&at::AT_PAGESZ], 4096);
            assert_eq!(seen[&at::AT_BASE], 0);
            assert_eq!(seen[&at::AT_EGID], 1003);
            assert_eq!(seen[&at::AT_SECURE], 0);
            assert_eq!(seen[&at::AT_CLKTCK], 100);
            assert_eq!(seen[&at::AT_HWCAP], 0x178bfbff);
            assert!(!seen.contains_key(&33), "no AT_SYSINFO_EHDR: the guest has no vDSO");
            assert_eq!(cstr(&img, seen[&at::AT_PLATFORM]), b"x86_64");
            assert_eq!(cstr(&img, seen[&at::AT_EXECFN]), b"/bin/prog");
            let r = seen[&at::AT_RANDOM];
            assert_eq!(&img.bytes[(r - img.sp) as usize..][..16], b"0123456789abcdef");
            // Everything the vectors point at lies above them, inside the image.
            assert!(r >= p);
            assert_eq!(word(&img, top - 8), 0, "end marker");
        }
    }

    #[test]
    fn strings_do_not_overlap() {
        let args = vec![b"a".to_vec(), b"bb".to_vec()];
        let env = vec![b"C=3".to_vec()];
        let img = build(0x10_0000, &args, &env, b"/x", &aux());
        let argv0 = word(&img, img.sp + 8);
        let argv1 = word(&img, img.sp + 16);
        let env0 = word(&img, img.sp + 32);
        assert_eq!(argv1, argv0 + 2);
        assert_eq!(env0, argv1 + 3);
        assert!(env0 + 4 <= 0x10_0000 - 8 - 3);
    }
}
