//! Sockets: `sockaddr*`, `msghdr`, `mmsghdr`, `iovec`, `cmsghdr` and the socket option values are
//! the same on x86_64 and riscv64 (both 64-bit asm-generic-compatible), so everything passes
//! through.

use super::numbers::x86;
use super::Handler;

/// Pass-through.
pub const PASS: &[(u32, u8)] = &[
    (x86::SOCKET, 3),
    (x86::SOCKETPAIR, 4),
    (x86::BIND, 3),
    (x86::LISTEN, 2),
    (x86::ACCEPT, 3),
    (x86::ACCEPT4, 4),
    (x86::CONNECT, 3),
    (x86::GETSOCKNAME, 3),
    (x86::GETPEERNAME, 3),
    (x86::SENDTO, 6),
    (x86::RECVFROM, 6),
    (x86::SENDMSG, 3),
    (x86::RECVMSG, 3),
    (x86::SENDMMSG, 4),
    (x86::RECVMMSG, 5),
    (x86::SHUTDOWN, 2),
    (x86::SETSOCKOPT, 5),
    (x86::GETSOCKOPT, 5),
];

/// No socket call needs conversion.
pub const CUSTOM: &[(u32, Handler)] = &[];
