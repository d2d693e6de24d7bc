//! A tiny classic-BPF assembler: instructions with symbolic forward labels,
//! resolved into `sock_filter`s. cBPF conditional jumps have 8-bit offsets;
//! one whose target is further away is rewritten through `ja` trampolines
//! (32-bit offsets) placed right after it, so code generation never has to
//! count instructions.

use std::collections::HashMap;

/// `struct sock_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

pub const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub const ALU_AND_K: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub const JEQ_K: u16 = 0x15;
pub const JGT_K: u16 = 0x25;
pub const JGE_K: u16 = 0x35;
pub const RET_K: u16 = 0x06;

/// The kernel's limit on one filter (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// A jump target; labels only point forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label(u32);

/// Where a conditional jump goes: the next instruction or a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Next,
    L(Label),
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Ld(u32),
    And(u32),
    Ret(u32),
    Ja(Label),
    Jmp { code: u16, k: u32, jt: To, jf: To },
    Here(Label),
}

/// A program under construction. It stops growing past [`MAX_INSNS`]
/// instructions (so a huge profile costs no more memory than a loadable
/// one) and [`Asm::finish`] then reports [`Error::TooLarge`].
#[derive(Debug, Default)]
pub struct Asm {
    items: Vec<Item>,
    labels: u32,
    insns: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    /// More instructions than the kernel loads.
    TooLarge,
    /// A jump the code generator got wrong.
    Bug(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::TooLarge => write!(f, "more than {MAX_INSNS} instructions"),
            Error::Bug(e) => write!(f, "{e}"),
        }
    }
}

impl Asm {
    pub fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels)
    }
    fn push(&mut self, it: Item) {
        if self.insns > MAX_INSNS {
            return;
        }
        if !matches!(it, Item::Here(_)) {
            self.insns += 1;
        }
        self.items.push(it);
    }
    pub fn here(&mut self, l: Label) {
        self.push(Item::Here(l));
    }
    pub fn ld(&mut self, offset: u32) {
        self.push(Item::Ld(offset));
    }
    pub fn and(&mut self, k: u32) {
        self.push(Item::And(k));
    }
    pub fn ret(&mut self, k: u32) {
        self.push(Item::Ret(k));
    }
    pub fn ja(&mut self, l: Label) {
        self.push(Item::Ja(l));
    }
    pub fn jmp(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.push(Item::Jmp { code, k, jt, jf });
    }

    /// Resolves labels, relaxing far conditional jumps.
    pub fn finish(mut self) -> Result<Vec<Insn>, Error> {
        loop {
            if self.insns > MAX_INSNS {
                return Err(Error::TooLarge);
            }
            let (pos, at) = self.positions();
            let too_far = |t: To, i: usize| match t {
                To::Next => false,
                // An item without a position cannot be measured; `short` then refuses it.
                To::L(l) => pos
                    .get(&l)
                    .zip(at.get(i))
                    .is_some_and(|(&p, &a)| p > a + 256),
            };
            let far = self.items.iter().enumerate().position(|(i, it)| match *it {
                Item::Jmp { jt, jf, .. } => too_far(jt, i) || too_far(jf, i),
                _ => false,
            });
            let Some(i) = far else { break };
            self.relax(i);
        }
        let (pos, _) = self.positions();
        let mut out = Vec::new();
        for it in &self.items {
            let n = out.len();
            let target = |l: Label| -> Result<u32, Error> {
                match pos.get(&l) {
                    Some(&p) if p > n => Ok((p - n - 1) as u32),
                    Some(_) => Err(Error::Bug(format!("backward jump to {l:?}"))),
                    None => Err(Error::Bug(format!("label {l:?} never placed"))),
                }
            };
            let short = |t: To| -> Result<u8, Error> {
                match t {
                    To::Next => Ok(0),
                    To::L(l) => u8::try_from(target(l)?).map_err(|e| Error::Bug(e.to_string())),
                }
            };
            let insn = |code, jt, jf, k| Insn { code, jt, jf, k };
            out.push(match *it {
                Item::Here(_) => continue,
                Item::Ld(off) => insn(LD_W_ABS, 0, 0, off),
                Item::And(k) => insn(ALU_AND_K, 0, 0, k),
                Item::Ret(k) => insn(RET_K, 0, 0, k),
                Item::Ja(l) => insn(JA, 0, 0, target(l)?),
                Item::Jmp { code, k, jt, jf } => insn(code, short(jt)?, short(jf)?, k),
            });
        }
        Ok(out)
    }

    /// Instruction index of every label, and of every item.
    fn positions(&self) -> (HashMap<Label, usize>, Vec<usize>) {
        let mut pos = HashMap::new();
        let mut at = Vec::with_capacity(self.items.len());
        let mut n = 0;
        for it in &self.items {
            at.push(n);
            match it {
                Item::Here(l) => {
                    pos.insert(*l, n);
                }
                _ => n += 1,
            }
        }
        (pos, at)
    }

    /// Rewrites the conditional jump at item `i` as a jump over two `ja`s:
    /// `jcc → T, F;  T: ja jt;  F: ja jf;  next:`.
    fn relax(&mut self, i: usize) {
        let Some(&Item::Jmp { code, k, jt, jf }) = self.items.get(i) else {
            return;
        };
        let next = self.label();
        let resolve = |t: To| match t {
            To::Next => next,
            To::L(l) => l,
        };
        let f = self.label();
        let new = [
            Item::Jmp {
                code,
                k,
                jt: To::Next,
                jf: To::L(f),
            },
            Item::Ja(resolve(jt)),
            Item::Here(f),
            Item::Ja(resolve(jf)),
            Item::Here(next),
        ];
        self.items.splice(i..=i, new);
        self.insns += 2;
    }
}
