//! The CPU that guests see: one consistent x86-64 model whose feature bits are exactly what the
//! active backend translates. glibc picks its string-function variants and its cache-size tuning
//! from CPUID, so advertising an extension the backend does not translate would make guests run
//! instructions that then stop with "unsupported".

use crate::cpu::{CpuState, Gpr};

/// A set of optional x86 features, as a bit set over the `Features::*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Features(pub u64);

impl Features {
    /// SSE3 (leaf 1 ECX bit 0).
    pub const SSE3: Features = Features(1 << 0);
    /// SSSE3 (leaf 1 ECX bit 9).
    pub const SSSE3: Features = Features(1 << 1);
    /// SSE4.1 (leaf 1 ECX bit 19).
    pub const SSE41: Features = Features(1 << 2);
    /// SSE4.2 (leaf 1 ECX bit 20).
    pub const SSE42: Features = Features(1 << 3);
    /// POPCNT (leaf 1 ECX bit 23).
    pub const POPCNT: Features = Features(1 << 4);
    /// CMPXCHG16B (leaf 1 ECX bit 13).
    pub const CX16: Features = Features(1 << 5);
    /// LZCNT (leaf 0x8000_0001 ECX bit 5, "ABM").
    pub const LZCNT: Features = Features(1 << 6);
    /// BMI1 (leaf 7 EBX bit 3): TZCNT, ANDN, BLSR…
    pub const BMI1: Features = Features(1 << 7);
    /// BMI2 (leaf 7 EBX bit 8).
    pub const BMI2: Features = Features(1 << 8);
    /// MOVBE (leaf 1 ECX bit 22).
    pub const MOVBE: Features = Features(1 << 9);

    /// The empty set: the x86-64 baseline (SSE2) only.
    pub const BASELINE: Features = Features(0);

    /// Whether every feature of `other` is in `self`.
    pub fn contains(self, other: Features) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union.
    pub const fn with(self, other: Features) -> Features {
        Features(self.0 | other.0)
    }
}

/// Registers returned by one CPUID query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

const MAX_BASIC_LEAF: u32 = 7;
const MAX_EXT_LEAF: u32 = 0x8000_0004;

/// Leaf 1 EDX: FPU, TSC, CX8, CMOV, MMX, FXSR, SSE, SSE2 — the x86-64 baseline the backends
/// always translate (MMX is reported because the baseline includes it; no backend is required to
/// run MMX code, which current compilers do not emit for x86-64).
pub const LEAF1_EDX: u32 = (1 << 0) | (1 << 4) | (1 << 8) | (1 << 15) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26);

fn ascii12(s: &[u8; 12]) -> [u32; 3] {
    let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
    [w(0), w(4), w(8)]
}

/// Answer CPUID leaf `leaf`, sub-leaf `sub`, for a CPU with `features`.
pub fn query(features: Features, leaf: u32, sub: u32) -> CpuidResult {
    let f = |x: Features, bit: u32| if features.contains(x) { 1u32 << bit } else { 0 };
    match leaf {
        0 => {
            let [b, d, c] = ascii12(b"GenuineIntel");
            CpuidResult { eax: MAX_BASIC_LEAF, ebx: b, ecx: c, edx: d }
        }
        1 => CpuidResult {
            // Family 6, model 0x3a (a generic Core), stepping 9.
            eax: 0x0003_06a9,
            // One logical processor, CLFLUSH line size 8 quadwords.
            ebx: (1 << 16) | (8 << 8),
            ecx: f(Features::SSE3, 0)
                | f(Features::SSSE3, 9)
                | f(Features::CX16, 13)
                | f(Features::SSE41, 19)
                | f(Features::SSE42, 20)
                | f(Features::MOVBE, 22)
                | f(Features::POPCNT, 23),
            edx: LEAF1_EDX,
        },
        // One descriptor byte 0xff: "use leaf 4" (SDM vol. 2, CPUID leaf 2).
        2 => CpuidResult { eax: 0x0000_ff01, ..Default::default() },
        4 => {
            // (type, level, ways, sets) with 64-byte lines: 32 KiB L1d and L1i, 256 KiB L2,
            // 8 MiB L3, the sizes glibc tunes memcpy thresholds from.
            let caches: [(u32, u32, u32, u32); 4] =
                [(1, 1, 8, 64), (2, 1, 8, 64), (3, 2, 8, 512), (3, 3, 16, 8192)];
            match caches.get(sub as usize) {
                Some(&(ty, level, ways, sets)) => CpuidResult {
                    eax: ty | (level << 5) | (1 << 8),
                    ebx: ((ways - 1) << 22) | 63,
                    ecx: sets - 1,
                    edx: 0,
                },
                None => CpuidResult::default(),
            }
        }
        7 if sub == 0 => CpuidResult {
            ebx: f(Features::BMI1, 3) | f(Features::BMI2, 8),
            ..Default::default()
        },
        0x8000_0000 => CpuidResult { eax: MAX_EXT_LEAF, ..Default::default() },
        0x8000_0001 => CpuidResult {
            // LAHF/SAHF in 64-bit mode, LZCNT.
            ecx: 1 | f(Features::LZCNT, 5),
            // SYSCALL, NX, long mode.
            edx: (1 << 11) | (1 << 20) | (1 << 29),
            ..Default::default()
        },
        0x8000_0002..=0x8000_0004 => {
            let brand = b"ld-nc virtual x86-64 CPU\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
            let i = ((leaf - 0x8000_0002) * 16) as usize;
            let w = |k: usize| {
                u32::from_le_bytes([brand[i + k], brand[i + k + 1], brand[i + k + 2], brand[i + k + 3]])
            };
            CpuidResult { eax: w(0), ebx: w(4), ecx: w(8), edx: w(12) }
        }
        _ => CpuidResult::default(),
    }
}

/// Execute CPUID on `cpu`: EAX and ECX in, EAX/EBX/ECX/EDX out (upper halves cleared).
pub fn execute(cpu: &mut CpuState, features: Features) {
    let r = query(features, cpu.get(Gpr::Rax) as u32, cpu.get(Gpr::Rcx) as u32);
    cpu.set(Gpr::Rax, u64::from(r.eax));
    cpu.set(Gpr::Rbx, u64::from(r.ebx));
    cpu.set(Gpr::Rcx, u64::from(r.ecx));
    cpu.set(Gpr::Rdx, u64::from(r.edx));
}

/// The AT_HWCAP value the x86-64 kernel reports: CPUID leaf 1 EDX.
pub fn hwcap() -> u64 {
    u64::from(LEAF1_EDX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_is_genuine_intel() {
        let r = query(Features::BASELINE, 0, 0);
        let mut s = Vec::new();
        for w in [r.ebx, r.edx, r.ecx] {
            s.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&s, b"GenuineIntel");
    }

    #[test]
    fn only_translated_features_are_advertised() {
        let r = query(Features::BASELINE, 1, 0);
        assert_eq!(r.ecx, 0);
        assert_eq!(r.edx & (1 << 26), 1 << 26, "SSE2 is baseline");
        let r = query(Features::SSSE3.with(Features::POPCNT), 1, 0);
        assert_eq!(r.ecx, (1 << 9) | (1 << 23));
        assert_eq!(query(Features::BASELINE, 7, 0).ebx, 0);
    }

    #[test]
    fn cache_leaf_describes_l1_32k() {
        let r = query(Features::BASELINE, 4, 0);
        let size = (((r.ebx >> 22) & 0x3ff) + 1)
            * (((r.ebx >> 12) & 0x3ff) + 1)
            * ((r.ebx & 0xfff) + 1)
            * (r.ecx + 1);
        assert_eq!(size, 32 * 1024);
        assert_eq!(query(Features::BASELINE, 4, 4).eax & 0x1f, 0, "no fifth cache");
    }
}
