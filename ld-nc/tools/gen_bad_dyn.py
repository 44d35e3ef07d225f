#!/usr/bin/env python3
"""Make the malformed-dynamic-object regression files in ld-nc/tests/bad-dyn.

A small versioned shared object is built from base.c with gcc, then one field of its dynamic
section, relocations, hash table or version table is changed per file. Run from anywhere:
`python3 ld-nc/tools/gen_bad_dyn.py` (rewrites the files; they are checked in)."""
import os
import struct
import subprocess
import tempfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "bad-dyn")

SRC = """int counter = 1;
int bump(void) { return ++counter; }
int (*hook)(void) = bump;
extern int other(void) __attribute__((weak));
int call_other(void) { return other ? other() : 0; }
"""
MAP = "BASE_1.0 { global: bump; counter; hook; call_other; local: *; };\n"

DT = {"NEEDED": 1, "HASH": 4, "STRTAB": 5, "SYMTAB": 6, "RELA": 7, "RELASZ": 8, "RELAENT": 9,
      "STRSZ": 10, "SONAME": 14, "GNU_HASH": 0x6ffffef5, "VERSYM": 0x6ffffff0, "VERDEF": 0x6ffffffc}


def build():
    with tempfile.TemporaryDirectory() as d:
        src, ver, out = (os.path.join(d, n) for n in ("base.c", "base.map", "libbase.so"))
        open(src, "w").write(SRC)
        open(ver, "w").write(MAP)
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-nostdlib", "-Wl,--version-script=" + ver,
                        "-Wl,-soname,libbase.so.1", "-Wl,--hash-style=both", "-o", out, src], check=True)
        return bytearray(open(out, "rb").read())


def phdrs(b):
    phoff, = struct.unpack_from("<Q", b, 0x20)
    phnum, = struct.unpack_from("<H", b, 0x38)
    return [struct.unpack_from("<IIQQQQQQ", b, phoff + 56 * i) for i in range(phnum)]


def vaddr_to_off(b, v):
    for (ty, _fl, off, va, _pa, fsz, _msz, _al) in phdrs(b):
        if ty == 1 and va <= v < va + fsz:
            return off + v - va
    raise ValueError(hex(v))


def dynamic(b):
    """(file offset of each entry, tag, value)."""
    for (ty, _fl, off, _va, _pa, fsz, _msz, _al) in phdrs(b):
        if ty == 2:
            out = []
            for i in range(fsz // 16):
                tag, val = struct.unpack_from("<QQ", b, off + 16 * i)
                if tag == 0:
                    break
                out.append((off + 16 * i, tag, val))
            return out
    raise ValueError("no PT_DYNAMIC")


def set_dyn(b, tag, value):
    for (at, t, _v) in dynamic(b):
        if t == DT[tag]:
            struct.pack_into("<Q", b, at + 8, value)
            return b
    raise ValueError(tag)


def get_dyn(b, tag):
    return next(v for (_a, t, v) in dynamic(b) if t == DT[tag])


def rela(b, i, offset=None, sym=None):
    at = vaddr_to_off(b, get_dyn(b, "RELA")) + 24 * i
    r_off, info, add = struct.unpack_from("<QQq", b, at)
    if offset is not None:
        r_off = offset
    if sym is not None:
        info = (sym << 32) | (info & 0xffffffff)
    struct.pack_into("<QQq", b, at, r_off, info, add)
    return b


def versym(b, i, idx):
    struct.pack_into("<H", b, vaddr_to_off(b, get_dyn(b, "VERSYM")) + 2 * i, idx)
    return b


def gnu_bloom_size(b, n):
    struct.pack_into("<I", b, vaddr_to_off(b, get_dyn(b, "GNU_HASH")) + 8, n)
    return b


CASES = {
    "strtab-outside.so": lambda b: set_dyn(b, "STRTAB", 0xdead0000),
    "soname-past-strtab.so": lambda b: set_dyn(b, "SONAME", 0x7fff_ffff),
    "reloc-outside.so": lambda b: rela(b, 0, offset=0x7fff_0000),
    "reloc-into-text.so": lambda b: rela(b, 0, offset=0x1000),
    "symbol-index.so": lambda b: rela(b, 0, sym=9999),
    "version-nowhere.so": lambda b: versym(b, 3, 77),
    "gnu-hash-bloom.so": lambda b: gnu_bloom_size(b, 0),
    "relaent.so": lambda b: set_dyn(b, "RELAENT", 16),
    "relasz-huge.so": lambda b: set_dyn(b, "RELASZ", 0x1000_0000),
}

if __name__ == "__main__":
    os.makedirs(HERE, exist_ok=True)
    base = build()
    open(os.path.join(HERE, "good.so"), "wb").write(base)
    for name, f in CASES.items():
        open(os.path.join(HERE, name), "wb").write(f(bytearray(base)))
        print(name)
