//! System information, scheduling, futexes and randomness. `uname` is emulated because the guest
//! must see the machine it was built for ("x86_64"), not the host's.

use super::numbers::x86;
use super::{Handler, Sys, SysRet};
use crate::tri;

/// Pass-through: `sysinfo`, `sched_param`, `cpu_set_t`, futex words are layout-identical.
pub const PASS: &[(u32, u8)] = &[
    (x86::GETRANDOM, 3),
    (x86::SYSINFO, 1),
    (x86::SYSLOG, 3),
    (x86::GETCPU, 3),
    (x86::FUTEX, 6),
    (x86::SCHED_YIELD, 0),
    (x86::SCHED_GETAFFINITY, 3),
    (x86::SCHED_SETAFFINITY, 3),
    (x86::SCHED_GETPARAM, 2),
    (x86::SCHED_SETPARAM, 2),
    (x86::SCHED_GETSCHEDULER, 1),
    (x86::SCHED_SETSCHEDULER, 3),
    (x86::SCHED_GET_PRIORITY_MAX, 1),
    (x86::SCHED_GET_PRIORITY_MIN, 1),
    (x86::SCHED_RR_GET_INTERVAL, 2),
    (x86::GETPRIORITY, 2),
    (x86::SETPRIORITY, 3),
    (x86::IOPRIO_GET, 2),
    (x86::IOPRIO_SET, 3),
    (x86::SETHOSTNAME, 2),
    (x86::SETDOMAINNAME, 2),
    (x86::CAPGET, 2),
    (x86::CAPSET, 2),
];

/// Handlers.
pub const CUSTOM: &[(u32, Handler)] = &[(x86::UNAME, uname)];

/// Length of each `struct utsname` field.
const UTS_LEN: usize = 65;

#[allow(clippy::unnecessary_cast, reason = "c_char is i8 on x86_64 and u8 on riscv64")]
fn uname(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // SAFETY: all-zero is a valid utsname.
    let mut u: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return SysRet::Ret(-i64::from(crate::mem::errno()));
    }
    let mut b = [0u8; UTS_LEN * 6];
    let fields = [&u.sysname, &u.nodename, &u.release, &u.version, &u.machine, &u.domainname];
    for (i, f) in fields.iter().enumerate() {
        for (j, &c) in f.iter().take(UTS_LEN).enumerate() {
            b[i * UTS_LEN + j] = c as u8;
        }
    }
    let m = &mut b[4 * UTS_LEN..5 * UTS_LEN];
    m.fill(0);
    m[..6].copy_from_slice(b"x86_64");
    tri!(sys.write_guest(a[0], &b));
    SysRet::Ret(0)
}
