//! The byte format between the test (possibly a riscv64 process under qemu) and the native
//! `x86-oracle`: little-endian, length-prefixed. The test writes a count and that many cases, then
//! closes the pipe; the oracle answers with one outcome per case, in order. An outcome carries only
//! the window bytes that changed, so a run of thousands of cases stays small.

use super::{initial_window, Case, Error, Outcome, Regs, WINDOW};

/// Magic at the start of each direction, to catch a wrong binary early.
pub const MAGIC: u32 = 0x4c44_4e43; // "LDNC"

fn put_regs(out: &mut Vec<u8>, r: &Regs) {
    for g in r.gpr {
        out.extend_from_slice(&g.to_le_bytes());
    }
    out.extend_from_slice(&r.rflags.to_le_bytes());
    for x in r.xmm {
        out.extend_from_slice(&x[0].to_le_bytes());
        out.extend_from_slice(&x[1].to_le_bytes());
    }
    out.extend_from_slice(&r.mxcsr.to_le_bytes());
}

/// A reader over a byte slice that fails instead of panicking.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Read from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Wire("length overflow"))?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Wire("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    /// Whether everything was read.
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.bytes(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, Error> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn regs(&mut self) -> Result<Regs, Error> {
        let mut r = Regs::default();
        for g in &mut r.gpr {
            *g = self.u64()?;
        }
        r.rflags = self.u64()?;
        for x in &mut r.xmm {
            x[0] = self.u64()?;
            x[1] = self.u64()?;
        }
        r.mxcsr = self.u32()?;
        Ok(r)
    }
}

/// Encode a batch of cases.
pub fn put_cases(cases: &[Case]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cases.len() * 512);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&(cases.len() as u32).to_le_bytes());
    for c in cases {
        out.push(c.slot);
        out.extend_from_slice(&(c.code.len() as u16).to_le_bytes());
        out.extend_from_slice(&c.code);
        put_regs(&mut out, &c.regs);
        out.extend_from_slice(&c.mem_seed.to_le_bytes());
        out.extend_from_slice(&(c.patches.len() as u16).to_le_bytes());
        for (off, b) in &c.patches {
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&(b.len() as u16).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
    out
}

/// Decode a batch of cases.
pub fn get_cases(buf: &[u8]) -> Result<Vec<Case>, Error> {
    let mut r = Reader::new(buf);
    if r.u32()? != MAGIC {
        return Err(Error::Wire("bad magic in cases"));
    }
    let n = r.u32()?;
    let mut cases = Vec::new();
    for _ in 0..n {
        let slot = r.u8()?;
        let len = usize::from(r.u16()?);
        let code = r.bytes(len)?.to_vec();
        let regs = r.regs()?;
        let mem_seed = r.u64()?;
        let np = r.u16()?;
        let mut patches = Vec::new();
        for _ in 0..np {
            let off = r.u16()?;
            let len = usize::from(r.u16()?);
            patches.push((off, r.bytes(len)?.to_vec()));
        }
        cases.push(Case { slot, code, regs, mem_seed, patches });
    }
    Ok(cases)
}

/// Encode the outcome of `case`, sending only the window bytes that differ from its start.
pub fn put_outcome(out: &mut Vec<u8>, case: &Case, o: &Outcome) {
    put_regs(out, &o.regs);
    out.extend_from_slice(&o.rip.to_le_bytes());
    out.push(u8::from(o.wrote_outside));
    let init = initial_window(case);
    let changed: Vec<usize> = (0..WINDOW).filter(|&i| o.window.get(i) != init.get(i)).collect();
    out.extend_from_slice(&(changed.len() as u16).to_le_bytes());
    for i in changed {
        out.extend_from_slice(&(i as u16).to_le_bytes());
        out.push(o.window.get(i).copied().unwrap_or(0));
    }
}

/// Decode one outcome of `case` (as written by [`put_outcome`]).
pub fn get_outcome(r: &mut Reader<'_>, case: &Case) -> Result<Outcome, Error> {
    let regs = r.regs()?;
    let rip = r.u64()?;
    let wrote_outside = r.u8()? != 0;
    let mut window = initial_window(case);
    let n = r.u16()?;
    for _ in 0..n {
        let i = usize::from(r.u16()?);
        let v = r.u8()?;
        *window.get_mut(i).ok_or(Error::Wire("window offset out of range"))? = v;
    }
    Ok(Outcome { regs, rip, window, wrote_outside })
}

/// Decode the outcomes of `cases`.
pub fn get_outcomes(buf: &[u8], cases: &[Case]) -> Result<Vec<Outcome>, Error> {
    let mut r = Reader::new(buf);
    if r.u32()? != MAGIC {
        return Err(Error::Wire("bad magic in outcomes"));
    }
    cases.iter().map(|c| get_outcome(&mut r, c)).collect()
}
