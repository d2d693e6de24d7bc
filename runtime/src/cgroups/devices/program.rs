//! An [`emulate::State`] as a `BPF_PROG_TYPE_CGROUP_DEVICE` program, written as
//! raw eBPF instructions (a dozen opcodes; no assembler crate needed).
//!
//! The kernel calls the program with `struct bpf_cgroup_dev_ctx { u32
//! access_type; u32 major; u32 minor; }` (`access_type` = device type |
//! access bits << 16) for every mknod and open of a device node; 1 allows, 0
//! denies (EPERM). The program loads the four values into r2..r5, then has one
//! block per exception, each jumping to the next block on the first field that
//! does not match, else returning the exception's action; after the last
//! block, the default. Since every exception has the same action (the
//! opposite of the default), their order does not matter.
//!
//! Size: 6 instructions of prologue, 2 of epilogue, 3 to 8 per exception; the
//! default list (deny-all plus runc's 12 rules) is 65 instructions, 520 bytes.

use super::emulate::State;
use super::{Kind, ACC_RWM};

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The kernel's 8-byte layout: code, dst and src register nibbles, off, imm.
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            self.dst | (self.src << 4)
        } else {
            (self.dst << 4) | self.src
        };
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

// Opcodes (class | op | source), from `include/uapi/linux/bpf.h`.
pub const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
pub const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
pub const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
pub const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
pub const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
pub const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
pub const JMP_JSET_K: u8 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
pub const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// `BPF_DEVCG_DEV_*`.
pub const DEV_BLOCK: i32 = 1;
pub const DEV_CHAR: i32 = 2;

/// Largest major and minor a device can have (`MINORBITS` = 20): an exception
/// for bigger numbers matches no device and is left out.
const MAX_MAJOR: u32 = (1 << 12) - 1;
const MAX_MINOR: u32 = (1 << 20) - 1;

// Registers: r1 the context (then scratch), r2 type, r3 access, r4 major, r5 minor.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// The program deciding exactly as `state` does.
pub fn compile(state: &State) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_MEM_W, R3, R1, 0, 0),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    let action = i32::from(!state.default_allow);
    for (&(kind, major, minor), &access) in &state.exceptions {
        if major.is_some_and(|m| m > MAX_MAJOR) || minor.is_some_and(|m| m > MAX_MINOR) {
            continue;
        }
        let typ = match kind {
            Kind::Block => DEV_BLOCK,
            Kind::Char => DEV_CHAR,
            // `emulate` never keeps an "a" exception (v1 has none either).
            Kind::All => continue,
        };
        // Indices of the jumps to the next block, patched once its start is known.
        let mut to_next = vec![p.len()];
        p.push(insn(JMP_JNE_K, R2, 0, 0, typ));
        // The bounds above keep the numbers positive as i32 (the kernel
        // sign-extends imm and compares 64 bits).
        for (reg, n) in [(R4, major), (R5, minor)] {
            if let Some(n) = n {
                to_next.push(p.len());
                p.push(insn(JMP_JNE_K, reg, 0, 0, n as i32));
            }
        }
        if access != ACC_RWM {
            if state.default_allow {
                // A deny exception matches if any requested bit is in it:
                // skip when (access & bits) == 0.
                p.push(insn(ALU32_MOV_X, R1, R3, 0, 0));
                p.push(insn(ALU32_AND_K, R1, 0, 0, i32::from(access)));
                to_next.push(p.len());
                p.push(insn(JMP_JEQ_K, R1, 0, 0, 0));
            } else {
                // An allow exception matches if it has every requested bit:
                // skip when access has a bit outside them.
                to_next.push(p.len());
                p.push(insn(JMP_JSET_K, R3, 0, 0, i32::from(!access & ACC_RWM)));
            }
        }
        p.push(insn(ALU32_MOV_K, R0, 0, 0, action));
        p.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let next = p.len();
        for i in to_next {
            // Blocks are a few instructions long: the offset always fits.
            if let Some(jump) = p.get_mut(i) {
                jump.off = (next - i - 1) as i16;
            }
        }
    }
    p.push(insn(ALU32_MOV_K, R0, 0, 0, i32::from(state.default_allow)));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::emulate::replay;
    use super::super::{rules, Rule, ACC_MKNOD, ACC_READ, ACC_WRITE, DEFAULT_RULES, DENY_ALL};
    use super::*;

    /// Runs `prog` on a context, interpreting only the opcodes [`compile`]
    /// emits (anything else fails the test). Also checks the kernel's
    /// structural rules on the way: jumps stay inside, r0 is set before exit.
    pub fn run(prog: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [0u64; 11];
        let mut r0_set = false;
        let mut pc = 0usize;
        for _ in 0..=prog.len() {
            let i = prog[pc];
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            let imm64 = i64::from(i.imm) as u64;
            let mut next = pc + 1;
            let jump = |cond: bool| {
                if cond {
                    let t = pc as i64 + 1 + i64::from(i.off);
                    assert!(t >= 0 && (t as usize) < prog.len(), "jump out at {pc}");
                    t as usize
                } else {
                    pc + 1
                }
            };
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "ctx load from r{s}");
                    assert!(i.off >= 0 && i.off % 4 == 0 && i.off < 12, "ctx offset");
                    r[d] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU32_AND_K => r[d] = u64::from((r[d] as u32) & (i.imm as u32)),
                ALU32_RSH_K => r[d] = u64::from((r[d] as u32) >> i.imm),
                ALU32_MOV_K => r[d] = u64::from(i.imm as u32),
                ALU32_MOV_X => r[d] = u64::from(r[s] as u32),
                JMP_JEQ_K => next = jump(r[d] == imm64),
                JMP_JNE_K => next = jump(r[d] != imm64),
                JMP_JSET_K => next = jump(r[d] & imm64 != 0),
                JMP_EXIT => {
                    assert!(r0_set, "exit without r0 at {pc}");
                    return r[0];
                }
                other => panic!("unexpected opcode {other:#x} at {pc}"),
            }
            if d == 0 && matches!(i.code, ALU32_MOV_K | ALU32_MOV_X) {
                r0_set = true;
            }
            assert!(next > pc, "backward jump at {pc}");
            assert!(next < prog.len(), "fell off the end at {pc}");
            pc = next;
        }
        panic!("program did not exit");
    }

    /// The verifier refuses a program with an instruction no path reaches.
    pub fn assert_all_reachable(prog: &[Insn]) {
        let mut seen = vec![false; prog.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= prog.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            let i = prog[pc];
            match i.code {
                JMP_EXIT => {}
                JMP_JEQ_K | JMP_JNE_K | JMP_JSET_K => {
                    todo.push(pc + 1);
                    todo.push((pc as i64 + 1 + i64::from(i.off)) as usize);
                }
                _ => todo.push(pc + 1),
            }
        }
        let dead: Vec<usize> = (0..prog.len()).filter(|i| !seen[*i]).collect();
        assert!(dead.is_empty(), "unreachable instructions {dead:?}");
    }

    /// The kernel's v1 check, transliterated (a list, exact-match add/remove,
    /// `match_exception` / `match_exception_partial`), independent of
    /// [`replay`]'s map: is `access` to the device allowed after `rules`?
    fn v1_kernel(rules: &[Rule], kind: Kind, major: u32, minor: u32, access: u8) -> bool {
        struct Ex {
            kind: Kind,
            major: Option<u32>,
            minor: Option<u32>,
            access: u8,
        }
        let mut allow_default = true;
        let mut list: Vec<Ex> = Vec::new();
        for r in rules {
            if r.kind == Kind::All {
                allow_default = r.allow;
                list.clear();
                continue;
            }
            let same = |e: &Ex| e.kind == r.kind && e.major == r.major && e.minor == r.minor;
            if r.allow != allow_default {
                match list.iter_mut().find(|e| same(e)) {
                    Some(e) => e.access |= r.access,
                    None => list.push(Ex {
                        kind: r.kind,
                        major: r.major,
                        minor: r.minor,
                        access: r.access,
                    }),
                }
            } else {
                for e in list.iter_mut().filter(|e| same(e)) {
                    e.access &= !r.access;
                }
                list.retain(|e| e.access != 0);
            }
        }
        let covers = |e: &&Ex| {
            e.kind == kind
                && e.major.is_none_or(|m| m == major)
                && e.minor.is_none_or(|m| m == minor)
        };
        if allow_default {
            !list.iter().filter(covers).any(|e| access & e.access != 0)
        } else {
            list.iter().filter(covers).any(|e| access & !e.access == 0)
        }
    }

    /// xorshift64*: reproducible without a crate.
    pub struct Rng(pub u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A rule over a few numbers, so lists often hit the same exceptions.
    pub fn random_rule(rng: &mut Rng) -> Rule {
        let num = |rng: &mut Rng| match rng.below(6) {
            0 | 1 => None,
            n => Some(n as u32 - 2),
        };
        Rule {
            allow: rng.below(2) == 0,
            kind: match rng.below(9) {
                0 => Kind::All,
                1..=4 => Kind::Block,
                _ => Kind::Char,
            },
            major: num(rng),
            minor: num(rng),
            access: 1 + rng.below(7) as u8,
        }
    }

    fn agrees(rules: &[Rule]) -> Result<(), String> {
        let prog = compile(&replay(rules));
        assert_all_reachable(&prog);
        for kind in [Kind::Block, Kind::Char] {
            let typ = if kind == Kind::Block {
                DEV_BLOCK
            } else {
                DEV_CHAR
            } as u32;
            for major in 0..5 {
                for minor in 0..5 {
                    for access in 1..=ACC_RWM {
                        let want = v1_kernel(rules, kind, major, minor, access);
                        let got = run(&prog, typ | u32::from(access) << 16, major, minor);
                        if got != u64::from(want) {
                            return Err(format!(
                                "{kind:?} {major}:{minor} access {access}: v1 {want}, program {got}"
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn program_decides_as_v1_for_random_lists() {
        let mut rng = Rng(0x7e47_de71_ce5d_1234);
        for case in 0..3000 {
            let n = rng.below(14) as usize;
            let mut list: Vec<Rule> = (0..n).map(|_| random_rule(&mut rng)).collect();
            // Half the cases as tent builds them: deny-all first, defaults last.
            if case % 2 == 0 {
                list.insert(0, DENY_ALL);
                list.extend_from_slice(DEFAULT_RULES);
            }
            if let Err(e) = agrees(&list) {
                let lines: Vec<(bool, String)> = list.iter().map(|r| (r.allow, r.line())).collect();
                panic!("case {case}: {e}\nrules: {lines:?}");
            }
        }
    }

    #[test]
    fn default_program() {
        let r = rules(&[]).unwrap_or_default();
        let prog = compile(&replay(&r));
        assert_eq!(prog.len(), 65);
        let dev = |t: i32, acc: u8| t as u32 | u32::from(acc) << 16;
        assert_eq!(run(&prog, dev(DEV_CHAR, ACC_READ | ACC_WRITE), 1, 3), 1);
        assert_eq!(run(&prog, dev(DEV_CHAR, ACC_READ), 136, 7), 1);
        assert_eq!(run(&prog, dev(DEV_CHAR, ACC_MKNOD), 1, 1), 1);
        assert_eq!(run(&prog, dev(DEV_BLOCK, ACC_MKNOD), 8, 0), 1);
        assert_eq!(run(&prog, dev(DEV_CHAR, ACC_READ), 1, 1), 0);
        assert_eq!(run(&prog, dev(DEV_BLOCK, ACC_READ), 8, 0), 0);
        assert_eq!(run(&prog, dev(DEV_CHAR, ACC_WRITE | ACC_MKNOD), 1, 11), 0);
        // Same bytes as the kernel's struct bpf_insn (little-endian host).
        if cfg!(target_endian = "little") {
            assert_eq!(
                insn(JMP_JNE_K, R4, 0, 3, 136).to_bytes(),
                [0x55, 0x04, 3, 0, 136, 0, 0, 0]
            );
            assert_eq!(
                insn(LDX_MEM_W, R5, R1, 8, 0).to_bytes(),
                [0x61, 0x15, 8, 0, 0, 0, 0, 0]
            );
        }
    }

    #[test]
    fn impossible_numbers_are_left_out() {
        let mut r = vec![DENY_ALL];
        r.push(Rule {
            allow: true,
            kind: Kind::Char,
            major: Some(MAX_MAJOR + 1),
            minor: None,
            access: ACC_RWM,
        });
        r.push(Rule {
            allow: true,
            kind: Kind::Block,
            major: None,
            minor: Some(u32::MAX - 1),
            access: ACC_RWM,
        });
        assert_eq!(compile(&replay(&r)).len(), 8);
    }
}
