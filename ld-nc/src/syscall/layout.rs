//! Kernel structs whose x86_64 layout differs from the host's, and their conversions.
//!
//! - `struct stat`: x86_64 has its own 144-byte layout (`st_nlink` is 64-bit and precedes
//!   `st_mode`, `st_blksize` is 64-bit); riscv64 uses asm-generic's 128-byte one.
//! - `struct epoll_event`: packed (12 bytes) on x86_64, naturally aligned (16) elsewhere.
//! - `struct sigaction` (kernel): x86_64 has `sa_restorer` between flags and mask; ld-nc never
//!   hands a guest sigaction to the host anyway, it keeps [`GuestSigaction`].
//!
//! Conversions go through host libc types on one side and explicit byte offsets on the x86_64 side,
//! so they are the same code on both hosts.

/// Size of x86_64 `struct stat`.
pub const X86_STAT_SIZE: usize = 144;

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

fn get8(b: &[u8], off: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(w)
}

fn get4(b: &[u8], off: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(w)
}

/// The x86_64 `struct stat` for a host one.
#[allow(clippy::unnecessary_cast, reason = "the host field types differ between x86_64 and riscv64")]
pub fn stat_to_x86(st: &libc::stat) -> [u8; X86_STAT_SIZE] {
    let mut b = [0u8; X86_STAT_SIZE];
    put(&mut b, 0, &(st.st_dev as u64).to_le_bytes());
    put(&mut b, 8, &(st.st_ino as u64).to_le_bytes());
    put(&mut b, 16, &(st.st_nlink as u64).to_le_bytes());
    put(&mut b, 24, &(st.st_mode as u32).to_le_bytes());
    put(&mut b, 28, &(st.st_uid as u32).to_le_bytes());
    put(&mut b, 32, &(st.st_gid as u32).to_le_bytes());
    // 36: __pad0
    put(&mut b, 40, &(st.st_rdev as u64).to_le_bytes());
    put(&mut b, 48, &(st.st_size as i64).to_le_bytes());
    put(&mut b, 56, &(st.st_blksize as i64).to_le_bytes());
    put(&mut b, 64, &(st.st_blocks as i64).to_le_bytes());
    put(&mut b, 72, &(st.st_atime as i64).to_le_bytes());
    put(&mut b, 80, &(st.st_atime_nsec as i64).to_le_bytes());
    put(&mut b, 88, &(st.st_mtime as i64).to_le_bytes());
    put(&mut b, 96, &(st.st_mtime_nsec as i64).to_le_bytes());
    put(&mut b, 104, &(st.st_ctime as i64).to_le_bytes());
    put(&mut b, 112, &(st.st_ctime_nsec as i64).to_le_bytes());
    b
}

/// Size of x86_64 `struct epoll_event` (packed).
pub const X86_EPOLL_EVENT_SIZE: usize = 12;

/// Read x86_64 `epoll_event`s.
pub fn epoll_from_x86(b: &[u8]) -> Vec<libc::epoll_event> {
    b.chunks_exact(X86_EPOLL_EVENT_SIZE)
        .map(|c| libc::epoll_event { events: get4(c, 0), u64: get8(c, 4) })
        .collect()
}

/// Write host `epoll_event`s in the x86_64 layout.
pub fn epoll_to_x86(evs: &[libc::epoll_event], out: &mut [u8]) {
    for (e, c) in evs.iter().zip(out.chunks_exact_mut(X86_EPOLL_EVENT_SIZE)) {
        let (events, data) = (e.events, e.u64);
        put(c, 0, &events.to_le_bytes());
        put(c, 4, &data.to_le_bytes());
    }
}

/// Size of the x86_64 kernel `struct sigaction`.
pub const X86_SIGACTION_SIZE: usize = 32;

/// A guest signal disposition, as the x86_64 kernel's `struct sigaction` holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestSigaction {
    /// `sa_handler`: SIG_DFL (0), SIG_IGN (1) or a guest address.
    pub handler: u64,
    /// `sa_flags` (x86_64 values: SA_RESTORER 0x04000000, SA_ONSTACK 0x08000000, …).
    pub flags: u64,
    /// `sa_restorer`: the guest's return trampoline (`rt_sigreturn`).
    pub restorer: u64,
    /// `sa_mask`.
    pub mask: u64,
}

impl GuestSigaction {
    /// Read from x86_64 layout.
    pub fn from_x86(b: &[u8; X86_SIGACTION_SIZE]) -> Self {
        GuestSigaction { handler: get8(b, 0), flags: get8(b, 8), restorer: get8(b, 16), mask: get8(b, 24) }
    }

    /// Write in x86_64 layout.
    pub fn to_x86(self) -> [u8; X86_SIGACTION_SIZE] {
        let mut b = [0u8; X86_SIGACTION_SIZE];
        put(&mut b, 0, &self.handler.to_le_bytes());
        put(&mut b, 8, &self.flags.to_le_bytes());
        put(&mut b, 16, &self.restorer.to_le_bytes());
        put(&mut b, 24, &self.mask.to_le_bytes());
        b
    }
}

/// x86_64 `sa_flags` bits ld-nc looks at.
#[allow(missing_docs, reason = "the kernel's names")]
pub mod sa {
    pub const SA_NOCLDSTOP: u64 = 0x1;
    pub const SA_NOCLDWAIT: u64 = 0x2;
    pub const SA_SIGINFO: u64 = 0x4;
    pub const SA_RESTORER: u64 = 0x0400_0000;
    pub const SA_ONSTACK: u64 = 0x0800_0000;
    pub const SA_RESTART: u64 = 0x1000_0000;
    pub const SA_NODEFER: u64 = 0x4000_0000;
    pub const SA_RESETHAND: u64 = 0x8000_0000;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_layout_is_x86_64() {
        // SAFETY: all-zero is a valid `libc::stat`.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        st.st_dev = 0x0102;
        st.st_ino = 0x1122_3344_5566;
        st.st_nlink = 3;
        st.st_mode = 0o100644;
        st.st_uid = 1000;
        st.st_gid = 100;
        st.st_rdev = 0x0801;
        st.st_size = 123_456_789_012;
        st.st_blksize = 4096;
        st.st_blocks = 16;
        st.st_atime = 1_700_000_000;
        st.st_atime_nsec = 5;
        st.st_mtime = 1_700_000_001;
        st.st_mtime_nsec = 6;
        st.st_ctime = 1_700_000_002;
        st.st_ctime_nsec = 7;
        let b = stat_to_x86(&st);
        assert_eq!(get8(&b, 0), 0x0102);
        assert_eq!(get8(&b, 8), 0x1122_3344_5566);
        assert_eq!(get8(&b, 16), 3, "st_nlink is 64-bit at offset 16");
        assert_eq!(get4(&b, 24), 0o100644, "st_mode at 24");
        assert_eq!(get4(&b, 28), 1000);
        assert_eq!(get4(&b, 32), 100);
        assert_eq!(get8(&b, 40), 0x0801);
        assert_eq!(get8(&b, 48), 123_456_789_012);
        assert_eq!(get8(&b, 56), 4096);
        assert_eq!(get8(&b, 64), 16);
        assert_eq!(get8(&b, 72), 1_700_000_000);
        assert_eq!(get8(&b, 80), 5);
        assert_eq!(get8(&b, 88), 1_700_000_001);
        assert_eq!(get8(&b, 104), 1_700_000_002);
        assert_eq!(get8(&b, 112), 7);
        assert_eq!(&b[120..], &[0u8; 24]);
    }

    #[test]
    fn stat_of_a_real_file() {
        // SAFETY: zeroed stat is valid; the path is a NUL-terminated literal.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: valid pointers.
        let r = unsafe { libc::stat(c"/proc/self/exe".as_ptr(), &mut st) };
        assert_eq!(r, 0);
        let b = stat_to_x86(&st);
        assert_eq!(get4(&b, 24) & 0o170000, 0o100000, "a regular file");
        assert_eq!(get8(&b, 48), st.st_size as u64);
    }

    #[test]
    fn epoll_event_is_packed_12() {
        let mut raw = vec![0u8; 24];
        put(&mut raw, 0, &0x1u32.to_le_bytes());
        put(&mut raw, 4, &0xdead_beef_0000_0001u64.to_le_bytes());
        put(&mut raw, 12, &0x4u32.to_le_bytes());
        put(&mut raw, 16, &42u64.to_le_bytes());
        let evs = epoll_from_x86(&raw);
        assert_eq!(evs.len(), 2);
        let (e0, d0, e1, d1) = (evs[0].events, evs[0].u64, evs[1].events, evs[1].u64);
        assert_eq!((e0, d0, e1, d1), (1, 0xdead_beef_0000_0001, 4, 42));
        let mut out = vec![0u8; 24];
        epoll_to_x86(&evs, &mut out);
        assert_eq!(out, raw);
    }

    #[test]
    fn sigaction_round_trip() {
        let a = GuestSigaction { handler: 0x401000, flags: sa::SA_RESTORER | sa::SA_SIGINFO, restorer: 0x402000, mask: 1 << 9 };
        let b = a.to_x86();
        assert_eq!(get8(&b, 16), 0x402000, "sa_restorer at 16");
        assert_eq!(get8(&b, 24), 1 << 9, "sa_mask at 24");
        assert_eq!(GuestSigaction::from_x86(&b), a);
    }
}
