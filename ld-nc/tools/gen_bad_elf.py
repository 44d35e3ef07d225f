#!/usr/bin/env python3
"""Generate the malformed-ELF regression files in ld-nc/tests/bad-elf/ (each from one small valid
static x86_64 ELF with a single defect). Run from the repository root:
    python3 ld-nc/tools/gen_bad_elf.py
"""
import os
import struct

OUT = "ld-nc/tests/bad-elf"
PT_LOAD, PT_INTERP = 1, 3

def elf(e_type=2, machine=62, phoff=64, phnum=None, entry=0x400100, phdrs=None, cls=2, data=1,
        phentsize=56, size=0x1000):
    if phdrs is None:
        phdrs = [(PT_LOAD, 5, 0, 0x400000, 0x1000, 0x1000, 0x1000),
                 (PT_LOAD, 6, 0x800, 0x401800, 0x100, 0x2000, 0x1000)]
    if phnum is None:
        phnum = len(phdrs)
    b = bytearray(size)
    b[0:4] = b"\x7fELF"
    b[4], b[5], b[6] = cls, data, 1
    struct.pack_into("<HHIQQQIHHHHHH", b, 16, e_type, machine, 1, entry, phoff, 0, 0, 64,
                     phentsize, phnum, 0, 0, 0)
    for i, (t, fl, off, va, fsz, msz, al) in enumerate(phdrs):
        if 64 + 56 * (i + 1) <= len(b):
            struct.pack_into("<IIQQQQQQ", b, 64 + 56 * i, t, fl, off, va, va, fsz, msz, al)
    b[0x100] = 0xf4
    return bytes(b)

TEXT = (PT_LOAD, 5, 0, 0x400000, 0x1000, 0x1000, 0x1000)
cases = {
    "not-elf.txt": b"#!/bin/sh\necho hello\n",
    "truncated-header.elf": elf()[:40],
    "elf32.elf": elf(cls=1),
    "big-endian.elf": elf(data=2),
    "wrong-machine.elf": elf(machine=183),
    "wrong-type.elf": elf(e_type=1),
    "bad-phentsize.elf": elf(phentsize=32),
    "bad-phnum.elf": elf(phnum=0xffff),
    "zero-phnum.elf": elf(phnum=0),
    "phdrs-outside-file.elf": elf(phoff=0xfffffffffffff000),
    "huge-memsz.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x800, 0x401800, 0x100, 1 << 62, 0x1000)]),
    "huge-span.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x800, 0x401800, 0x100, 1 << 40, 0x1000)]),
    "filesz-gt-memsz.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x800, 0x401800, 0x3000, 0x2000, 0x1000)]),
    "segment-outside-file.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x800, 0x401800, 0x10000, 0x10000, 0x1000)]),
    "bad-align.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x800, 0x401800, 0x100, 0x2000, 0x1003)]),
    "misaligned-offset.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x900, 0x401800, 0x100, 0x2000, 0x1000)]),
    "overlap.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x800, 0x400800, 0x100, 0x2000, 0x1000)]),
    "kernel-address.elf": elf(phdrs=[TEXT, (PT_LOAD, 6, 0x800, 0xffff800000000800, 0x100, 0x2000, 0x1000)]),
    "entry-outside.elf": elf(entry=0x500000),
    "entry-not-exec.elf": elf(entry=0x401900),
    # PT_INTERP naming an empty path (its bytes are zero).
    "interp.elf": elf(phdrs=[(PT_INTERP, 4, 0x200, 0x400200, 0x1c, 0x1c, 1), TEXT]),
    "no-load.elf": elf(phdrs=[(6, 4, 64, 0x400040, 112, 112, 8)]),
}
os.makedirs(OUT, exist_ok=True)
for name, data in cases.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
