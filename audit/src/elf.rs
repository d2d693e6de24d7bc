//! A small bounds-checked ELF reader: the header and the program headers, and
//! nothing else. The audit only needs "static or dynamic, and which
//! interpreter": `PT_INTERP` names the dynamic loader, its absence means the
//! kernel runs the file as it is. Every offset read from the file is checked
//! against what was read; a truncated or lying file is "not ELF" or an error,
//! never a panic. No crate: goblin would parse far more (sections, symbols,
//! relocations) than two fields need.

use std::io;

const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
/// More program headers than any real binary has; bounds the one read.
const MAX_PHNUM: usize = 512;
const MAX_INTERP: u64 = 4096;

/// How an ELF file is linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Linking {
    /// `ET_EXEC` without `PT_INTERP`: the kernel loads it alone.
    Static,
    /// `ET_DYN` with `PT_DYNAMIC` but no `PT_INTERP`: a static PIE, or a
    /// shared object (which the name usually tells).
    StaticPie,
    /// Has `PT_INTERP`: needs the named loader and its libraries.
    Dynamic,
    /// A relocatable object, core file or other type.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub bits: u8,
    pub machine: u16,
    pub linking: Linking,
    pub interpreter: Option<String>,
}

/// Reads at an offset; returns how many bytes were read (short at EOF).
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, off)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<usize> {
        let Ok(off) = usize::try_from(off) else {
            return Ok(0);
        };
        let Some(src) = self.get(off..) else {
            return Ok(0);
        };
        let mut n = 0;
        for (to, from) in buf.iter_mut().zip(src) {
            *to = *from;
            n += 1;
        }
        Ok(n)
    }
}

/// Reads exactly `len` bytes at `off`, or reports a truncated file.
fn read_exact(f: &(impl ReadAt + ?Sized), off: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        let at = off
            .checked_add(done as u64)
            .ok_or_else(|| bad("offset past the end"))?;
        let Some(rest) = buf.get_mut(done..) else {
            break;
        };
        let n = f.read_at(rest, at)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "ELF file truncated",
            ));
        }
        done += n;
    }
    Ok(buf)
}

/// Little or big endian field access, bounds-checked.
struct Fields<'a> {
    b: &'a [u8],
    le: bool,
}

impl Fields<'_> {
    fn u16(&self, at: usize) -> Option<u16> {
        let s: [u8; 2] = self.b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.le {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }
    fn u32(&self, at: usize) -> Option<u32> {
        let s: [u8; 4] = self.b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }
    fn u64(&self, at: usize) -> Option<u64> {
        let s: [u8; 8] = self.b.get(at..at + 8)?.try_into().ok()?;
        Some(if self.le {
            u64::from_le_bytes(s)
        } else {
            u64::from_be_bytes(s)
        })
    }
    /// A word of the file's class: 4 bytes for ELF32, 8 for ELF64.
    fn word(&self, at: usize, bits64: bool) -> Option<u64> {
        if bits64 {
            self.u64(at)
        } else {
            self.u32(at).map(u64::from)
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed ELF: {what}"))
}

/// `Ok(None)` if the file does not start with the ELF magic.
pub fn parse(f: &(impl ReadAt + ?Sized)) -> io::Result<Option<ElfInfo>> {
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < head.len() {
        let Some(rest) = head.get_mut(got..) else {
            break;
        };
        let n = f.read_at(rest, got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if got < 4 || !head.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let bits64 = match head.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(bad("unknown class")),
    };
    let le = match head.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err(bad("unknown byte order")),
    };
    let h = Fields {
        b: head.get(..got).unwrap_or_default(),
        le,
    };
    let (phoff_at, phentsize_at, phnum_at, need_ent) = if bits64 {
        (32, 54, 56, 56)
    } else {
        (28, 42, 44, 32)
    };
    let etype = h.u16(16).ok_or_else(|| bad("header truncated"))?;
    let machine = h.u16(18).ok_or_else(|| bad("header truncated"))?;
    let phoff = h
        .word(phoff_at, bits64)
        .ok_or_else(|| bad("header truncated"))?;
    let phentsize = h.u16(phentsize_at).ok_or_else(|| bad("header truncated"))? as usize;
    let phnum = h.u16(phnum_at).ok_or_else(|| bad("header truncated"))? as usize;
    let mut interp_at = None;
    let mut has_dynamic = false;
    if phnum > 0 {
        if phentsize < need_ent {
            return Err(bad("program header entry too small"));
        }
        if phnum > MAX_PHNUM {
            return Err(bad("too many program headers"));
        }
        let table = read_exact(f, phoff, phentsize * phnum)?;
        let t = Fields { b: &table, le };
        for i in 0..phnum {
            let base = i * phentsize;
            let ptype = t.u32(base).ok_or_else(|| bad("program header"))?;
            let (off_at, filesz_at) = if bits64 { (8, 32) } else { (4, 16) };
            match ptype {
                PT_INTERP => {
                    let off = t
                        .word(base + off_at, bits64)
                        .ok_or_else(|| bad("PT_INTERP"))?;
                    let sz = t
                        .word(base + filesz_at, bits64)
                        .ok_or_else(|| bad("PT_INTERP"))?;
                    interp_at = Some((off, sz));
                }
                PT_DYNAMIC => has_dynamic = true,
                _ => {}
            }
        }
    }
    let interpreter = match interp_at {
        Some((off, sz)) => {
            if sz == 0 || sz > MAX_INTERP {
                return Err(bad("PT_INTERP size"));
            }
            let raw = read_exact(f, off, sz as usize)?;
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            Some(String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned())
        }
        None => None,
    };
    let linking = match (etype, &interpreter, has_dynamic) {
        (_, Some(_), _) => Linking::Dynamic,
        (ET_EXEC, None, _) => Linking::Static,
        (ET_DYN, None, _) => Linking::StaticPie,
        _ => Linking::Other,
    };
    Ok(Some(ElfInfo {
        bits: if bits64 { 64 } else { 32 },
        machine,
        linking,
        interpreter,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 LE image: header, `n` program headers, an interpreter.
    fn elf64(etype: u16, interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[16..18].copy_from_slice(&etype.to_le_bytes());
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        let n: u16 = if interp.is_some() { 1 } else { 0 };
        b[56..58].copy_from_slice(&n.to_le_bytes());
        if let Some(i) = interp {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&PT_INTERP.to_le_bytes());
            ph[8..16].copy_from_slice(&120u64.to_le_bytes());
            ph[32..40].copy_from_slice(&(i.len() as u64 + 1).to_le_bytes());
            b.extend_from_slice(&ph);
            b.extend_from_slice(i.as_bytes());
            b.push(0);
        }
        b
    }

    #[test]
    fn static_and_dynamic() {
        let s = parse(elf64(ET_EXEC, None).as_slice()).unwrap().unwrap();
        assert_eq!(s.linking, Linking::Static);
        assert_eq!(s.bits, 64);
        let d = parse(elf64(ET_DYN, Some("/lib/ld.so")).as_slice())
            .unwrap()
            .unwrap();
        assert_eq!(d.linking, Linking::Dynamic);
        assert_eq!(d.interpreter.as_deref(), Some("/lib/ld.so"));
    }

    #[test]
    fn not_elf_and_truncated() {
        assert_eq!(parse(b"#!/bin/sh\n".as_slice()).unwrap(), None);
        assert_eq!(parse(b"".as_slice()).unwrap(), None);
        let full = elf64(ET_DYN, Some("/lib/ld.so"));
        for cut in [20, 63, 64, 100, 121] {
            // Never panics; a cut file is an error (or, cut inside the
            // header before the program headers matter, still an error).
            assert!(parse(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn lying_sizes_are_errors() {
        let mut b = elf64(ET_DYN, Some("/lib/ld.so"));
        b[56..58].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(parse(b.as_slice()).is_err());
        let mut b = elf64(ET_DYN, Some("/lib/ld.so"));
        b[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(b.as_slice()).is_err());
        let mut b = elf64(ET_DYN, Some("/lib/ld.so"));
        b[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(b.as_slice()).is_err());
    }

    #[test]
    fn host_binaries() {
        if let Ok(f) = std::fs::File::open("/bin/busybox") {
            let i = parse(&f).unwrap().unwrap();
            assert_ne!(i.linking, Linking::Dynamic);
        }
        if let Ok(f) = std::fs::File::open("/bin/ls") {
            let i = parse(&f).unwrap().unwrap();
            assert_eq!(i.linking, Linking::Dynamic);
            assert!(i.interpreter.unwrap().contains("ld-"));
        }
    }
}
