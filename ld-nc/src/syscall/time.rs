//! Clocks, timers and sleeping: `timespec`, `timeval`, `itimerval`, `itimerspec`, `sigevent`,
//! `tms` and `timex` are identical on x86_64 and riscv64, so all pass through except the two
//! legacy calls riscv64 lacks.

use super::numbers::x86;
use super::{hs, Handler, Sys, SysRet};
use crate::tri;

/// Pass-through.
pub const PASS: &[(u32, u8)] = &[
    (x86::CLOCK_GETTIME, 2),
    (x86::CLOCK_GETRES, 2),
    (x86::CLOCK_SETTIME, 2),
    (x86::CLOCK_NANOSLEEP, 4),
    (x86::CLOCK_ADJTIME, 2),
    (x86::NANOSLEEP, 2),
    (x86::GETTIMEOFDAY, 2),
    (x86::SETTIMEOFDAY, 2),
    (x86::ADJTIMEX, 1),
    (x86::GETITIMER, 2),
    (x86::SETITIMER, 3),
    (x86::TIMER_CREATE, 3),
    (x86::TIMER_SETTIME, 4),
    (x86::TIMER_GETTIME, 2),
    (x86::TIMER_GETOVERRUN, 1),
    (x86::TIMER_DELETE, 1),
    (x86::TIMES, 1),
];

/// Handlers: `time` and `alarm` have no riscv64 syscall.
pub const CUSTOM: &[(u32, Handler)] = &[(x86::TIME, time), (x86::ALARM, alarm)];

fn time(sys: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let r = hs(libc::SYS_clock_gettime, &[libc::CLOCK_REALTIME as u64, &mut ts as *mut _ as u64]);
    if r != SysRet::Ret(0) {
        return r;
    }
    let t: i64 = ts.tv_sec;
    if a[0] != 0 {
        tri!(sys.write_guest(a[0], &t.to_le_bytes()));
    }
    SysRet::Ret(t)
}

fn alarm(_: &mut Sys<'_>, a: [u64; 6]) -> SysRet {
    // alarm(s) is setitimer(ITIMER_REAL) with a one-shot value; it returns the seconds left of
    // the previous alarm, rounded up as the kernel does.
    let secs = a[0] as u32;
    let new = libc::itimerval {
        it_interval: libc::timeval { tv_sec: 0, tv_usec: 0 },
        it_value: libc::timeval { tv_sec: libc::time_t::from(secs), tv_usec: 0 },
    };
    let mut old = new;
    let r = hs(
        libc::SYS_setitimer,
        &[libc::ITIMER_REAL as u64, &new as *const _ as u64, &mut old as *mut _ as u64],
    );
    if let SysRet::Ret(e) = r {
        if e < 0 {
            return r;
        }
    }
    let mut left: i64 = old.it_value.tv_sec;
    if old.it_value.tv_usec >= 500_000 || (left == 0 && old.it_value.tv_usec > 0) {
        left += 1;
    }
    SysRet::Ret(left)
}
