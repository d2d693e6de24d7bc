//! seccomp: an OCI `linux.seccomp` profile compiled to classic BPF in pure
//! Rust ([`compile`], at create, in the caller: a bad profile fails before
//! anything exists) and loaded in the container process ([`Filter::load`],
//! from [`super::Confinement::apply`]).
//!
//! Why our own compiler rather than libseccomp: libseccomp is C under the
//! LGPL, so a static shim would have to ship its objects for relinking and
//! the build would need a C toolchain and libseccomp.a; the part of it an
//! OCI profile needs is small (arch dispatch, a syscall search tree, 64-bit
//! argument compares as two 32-bit halves: ~800 lines with docs here,
//! tests apart). The syscall
//! numbers come from the `syscalls` crate (BSD-2, generated from the kernel
//! tables), host ABIs only (see `arch.rs`).
//!
//! Measured (2 shared cores, containerd's RuntimeDefault for amd64, 3 ABIs,
//! 1888 instructions): the release `tent-runtime-run` grows by 96 KB
//! (2.59 → 2.68 MB: text +44 KB, names +17 KB, relro +9 KB); compiling takes
//! 5–14 ms in a debug build and well under 1 ms in release (a `/bin/true`
//! container under it takes 22.9 ms instead of 21.0 ms, spec parsing and
//! the load included); the kernel load 0.6–1.2 ms (mostly its per-syscall
//! action cache); a container's caller keeps the program, 15 KB, for execs
//! (tent's default is precompiled and shared, see `default.rs`).
//!
//! The filter behaves as runc's (libseccomp + runc's `patchbpf`) on what
//! profiles depend on:
//! - architectures: the host's is always included (libseccomp does); any
//!   other `seccomp_data.arch` gets libseccomp's bad-arch action, kill
//!   (thread). On x86_64 the x32 ABI (syscall numbers with bit 30) is told
//!   apart from x86_64 as libseccomp does; `-1` (a tracer's skip) gets the
//!   default action.
//! - a syscall newer than the profile (a number above the largest the
//!   profile names for that ABI) gets `ENOSYS`, not the default errno, unless
//!   the default action allows (allow, log, trace): runc's `patchbpf` stub,
//!   so glibc falls back from e.g. `clone3` or `faccessat2`.
//! - names no table knows are skipped; a rule whose action is the default
//!   action is skipped; a rule with several conditions on one argument index
//!   is split into one rule per condition (OR), as runc does, and
//!   containerd's profiles rely on it; an unconditional rule for a syscall
//!   wins over conditional ones (libseccomp); otherwise rules are tried in
//!   profile order, conditions within one AND'ed.
//! - `SCMP_ACT_NOTIFY` as the default action is refused (runc); in a rule it
//!   is refused as unsupported (tent does not pass listener fds yet).
//! - on i386 a rule on a socket or SysV IPC call also applies to
//!   `socketcall(2)`/`ipc(2)` with argument 0 the call number; 32-bit ABIs
//!   (i386, x32) compare arguments as 32-bit values; masked-equal masks the
//!   datum too (all libseccomp).

mod arch;
mod bpf;
pub mod default;

use std::collections::BTreeMap;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Op,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use arch::{Abi, X32_SYSCALL_BIT};
use bpf::{Asm, Insn, Label, To};

const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;

/// libseccomp's default for a foreign architecture (runc keeps it).
const RET_BAD_ARCH: u32 = RET_KILL_THREAD;
const RET_ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;

/// Syscalls per leaf of the search tree, checked one after the other.
const LEAF: usize = 8;

/// A compiled filter, ready to load; travels to the child in the confinement.
/// Clones share the program (the container's handle keeps one for its execs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// `sock_filter`s packed as `code << 48 | jt << 40 | jf << 32 | k`.
    program: std::sync::Arc<[u64]>,
    /// `SECCOMP_FILTER_FLAG_*`.
    flags: u32,
}

impl Filter {
    /// A filter from its packed words (little-endian `u64`s, as [`Filter::to_bytes`]
    /// writes them) and flags; `None` when the length is not a whole number of words.
    pub fn from_bytes(bytes: &[u8], flags: u32) -> Option<Filter> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
            return None;
        }
        let program = bytes
            .chunks_exact(8)
            .map(|w| {
                let mut b = [0u8; 8];
                b.copy_from_slice(w);
                u64::from_le_bytes(b)
            })
            .collect();
        Some(Filter { program, flags })
    }

    /// The packed words as little-endian bytes (what the precompiled default is).
    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.program.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    pub fn instructions(&self) -> Vec<Insn> {
        self.program
            .iter()
            .map(|&w| Insn {
                code: (w >> 48) as u16,
                jt: (w >> 40) as u8,
                jf: (w >> 32) as u8,
                k: w as u32,
            })
            .collect()
    }

    /// Installs the filter on the calling thread (the child is
    /// single-threaded). Needs no_new_privs or CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<()> {
        let insns: Vec<libc::sock_filter> = self
            .instructions()
            .into_iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let prog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `insns`, both alive across the call; the
        // kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let errno = nix::errno::Errno::last();
        let step = match errno {
            nix::errno::Errno::EACCES => {
                "loading a filter needs no_new_privileges or CAP_SYS_ADMIN".to_string()
            }
            nix::errno::Errno::EINVAL if self.flags != 0 => format!(
                "the kernel refused the filter or linux.seccomp.flags ({:#x})",
                self.flags
            ),
            _ => "seccomp(SECCOMP_SET_MODE_FILTER)".to_string(),
        };
        Err(Error::sys(step, errno))
    }
}

/// One argument condition.
#[derive(Debug, Clone, Copy)]
struct Cond {
    index: u32,
    op: Op,
    value: u64,
    value_two: u64,
}

/// Conditions (AND'ed) and the action when they hold.
#[derive(Debug, Clone)]
struct Rule {
    action: u32,
    conds: Vec<Cond>,
}

/// The return value of `action`; `field` and `errno_field` name them in errors.
fn action_ret(action: Action, errno: Option<u32>, field: &str, errno_field: &str) -> Result<u32> {
    let errno = match errno {
        Some(e) if e > 0xffff => {
            return Err(Error::spec(
                errno_field,
                format!("{e} does not fit the 16 bits of a seccomp return value"),
            ))
        }
        Some(e) => e,
        None => libc::EPERM as u32,
    };
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => RET_KILL_THREAD,
        Action::ScmpActKillProcess => RET_KILL_PROCESS,
        Action::ScmpActTrap => RET_TRAP,
        Action::ScmpActErrno => RET_ERRNO | errno,
        Action::ScmpActTrace => RET_TRACE | errno,
        Action::ScmpActLog => RET_LOG,
        Action::ScmpActAllow => RET_ALLOW,
        Action::ScmpActNotify => {
            return Err(Error::Unsupported(format!(
                "{field}: SCMP_ACT_NOTIFY is not supported by tent yet (no listener fd is sent to linux.seccomp.listenerPath); refusing to run without the requested filter"
            )))
        }
    })
}

/// Whether a profile may use `action` (what `features` lists; same check as [`compile`]).
pub(crate) fn supports_action(action: Action) -> bool {
    action_ret(action, None, "", "").is_ok()
}

/// Whether [`compile`] can build a filter for `arch` on this host.
pub(crate) fn supports_arch(arch: oci_spec::runtime::Arch) -> bool {
    Abi::of(arch).is_some_and(|abi| abi.supported())
}

/// Compiles `profile` (the spec's `linux.seccomp`); errors name the field.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter> {
    let default_action = profile.default_action();
    if default_action == Action::ScmpActNotify {
        return Err(Error::spec(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let default = action_ret(
        default_action,
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
        "linux.seccomp.defaultErrnoRet",
    )?;
    let mut abis = vec![Abi::native()];
    for (i, a) in profile.architectures().iter().flatten().enumerate() {
        let abi = Abi::of(*a).filter(|abi| abi.supported()).ok_or_else(|| {
            Error::Unsupported(format!(
                "linux.seccomp.architectures[{i}]: tent cannot compile a filter for {a} on this host (it has syscall tables for {})",
                arch::SUPPORTED
            ))
        })?;
        abis.push(abi);
    }
    abis.sort();
    abis.dedup();
    let mut flags = 0;
    for f in profile.flags().iter().flatten() {
        flags |= match f {
            Flag::SeccompFilterFlagTsync => FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            // Only meaningful with a notify listener, which tent refuses
            // (the kernel rejects it without SECCOMP_FILTER_FLAG_NEW_LISTENER).
            Flag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    let rules = rules(profile, default)?;
    // ENOSYS above the largest number the profile names (runc's patchbpf),
    // unless the default action lets syscalls through.
    let enosys = !matches!(
        default_action,
        Action::ScmpActAllow | Action::ScmpActLog | Action::ScmpActTrace
    );
    let tables: Vec<Table> = abis
        .iter()
        .map(|&abi| Table::new(abi, &rules, enosys))
        .collect();
    let program = generate(&tables, default).map_err(|e| match e {
        bpf::Error::TooLarge => Error::spec(
            "linux.seccomp",
            format!(
                "the profile compiles to more BPF instructions than the kernel's limit of {} (BPF_MAXINSNS)",
                bpf::MAX_INSNS
            ),
        ),
        bpf::Error::Bug(e) => Error::spec("linux.seccomp", format!("BPF assembly failed: {e}")),
    })?;
    Ok(Filter {
        program: program
            .iter()
            .map(|i| (i.code as u64) << 48 | (i.jt as u64) << 40 | (i.jf as u64) << 32 | i.k as u64)
            .collect::<Vec<u64>>()
            .into(),
        flags,
    })
}

/// Every (name, rule) of the profile, validated, split as runc splits them;
/// a rule whose action is the default has no rule but its name still counts
/// (`None`) for the ENOSYS boundary.
fn rules(profile: &LinuxSeccomp, default: u32) -> Result<Vec<(&str, Option<Rule>)>> {
    let mut out = Vec::new();
    for (i, sc) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let action = action_ret(
            sc.action(),
            sc.errno_ret(),
            &format!("{field}.action"),
            &format!("{field}.errnoRet"),
        )?;
        let mut conds = Vec::new();
        for (j, a) in sc.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return Err(Error::spec(
                    format!("{field}.args[{j}].index"),
                    format!("{} is not an argument index (0-5)", a.index()),
                ));
            }
            conds.push(Cond {
                index: a.index() as u32,
                op: a.op(),
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
            });
        }
        let mut seen = [0u8; 6];
        for c in &conds {
            // Indexes above 5 were refused above.
            if let Some(n) = seen.get_mut(c.index as usize) {
                *n += 1;
            }
        }
        let split: Vec<Vec<Cond>> = if seen.iter().any(|&n| n > 1) {
            conds.iter().map(|c| vec![*c]).collect()
        } else {
            vec![conds]
        };
        for (j, name) in sc.names().iter().enumerate() {
            if name.is_empty() {
                return Err(Error::spec(
                    format!("{field}.names[{j}]"),
                    "is not a syscall name",
                ));
            }
            if action == default {
                out.push((name.as_str(), None));
                continue;
            }
            for conds in &split {
                out.push((
                    name.as_str(),
                    Some(Rule {
                        action,
                        conds: conds.clone(),
                    }),
                ));
            }
        }
    }
    Ok(out)
}

/// The rules of one ABI by syscall number.
struct Table {
    abi: Abi,
    by_nr: BTreeMap<u32, Vec<Rule>>,
    /// Numbers above this get ENOSYS.
    enosys_above: Option<u32>,
}

impl Table {
    fn new(abi: Abi, rules: &[(&str, Option<Rule>)], enosys: bool) -> Table {
        let mut by_nr: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
        let mut max = None;
        for (name, rule) in rules {
            if let (Abi::I386, Some(rule), Some((mux, call))) =
                (abi, rule, arch::i386_multiplexed(name))
            {
                // As libseccomp: the rule also applies to the multiplexer,
                // its argument 0 condition replaced by the call number.
                let mut conds = vec![Cond {
                    index: 0,
                    op: Op::ScmpCmpEq,
                    value: call,
                    value_two: 0,
                }];
                conds.extend(rule.conds.iter().filter(|c| c.index != 0));
                by_nr.entry(mux).or_default().push(Rule {
                    action: rule.action,
                    conds,
                });
            }
            let Some(nr) = abi.syscall(name) else {
                continue;
            };
            max = max.max(Some(nr));
            if let Some(rule) = rule {
                by_nr.entry(nr).or_default().push(rule.clone());
            }
        }
        for rules in by_nr.values_mut() {
            if let Some(first) = rules.iter().position(|r| r.conds.is_empty()) {
                let keep = rules.swap_remove(first);
                *rules = vec![keep];
            }
        }
        Table {
            abi,
            by_nr,
            enosys_above: max.filter(|_| enosys),
        }
    }
}

/// `seccomp_data` offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(index: u32) -> u32 {
    16 + 8 * index
}

fn generate(tables: &[Table], default: u32) -> std::result::Result<Vec<Insn>, bpf::Error> {
    let mut g = Gen {
        asm: Asm::default(),
        default,
    };
    let find = |abi| tables.iter().find(|t| t.abi == abi);
    let mut groups: Vec<(u32, Label)> = Vec::new();
    for t in tables {
        let audit = t.abi.audit_arch();
        if !groups.iter().any(|(a, _)| *a == audit) {
            let l = g.asm.label();
            groups.push((audit, l));
        }
    }
    g.asm.ld(OFF_ARCH);
    for (audit, l) in &groups {
        g.asm.jmp(bpf::JEQ_K, *audit, To::L(*l), To::Next);
    }
    g.asm.ret(RET_BAD_ARCH);
    for (audit, l) in &groups {
        g.asm.here(*l);
        g.asm.ld(OFF_NR);
        if *audit != Abi::X86_64.audit_arch() {
            if let Some(t) = tables.iter().find(|t| t.abi.audit_arch() == *audit) {
                g.section(t);
            }
            continue;
        }
        // x86_64 and x32 share the audit arch; x32 numbers have bit 30.
        let x32 = g.asm.label();
        g.asm.jmp(bpf::JGE_K, X32_SYSCALL_BIT, To::L(x32), To::Next);
        match find(Abi::X86_64) {
            Some(t) => g.section(t),
            None => g.asm.ret(RET_BAD_ARCH),
        }
        g.asm.here(x32);
        match find(Abi::X32) {
            Some(t) => g.section(t),
            None => {
                // Only -1 (a tracer skipping the call) is not x32 here.
                let bad = g.asm.label();
                g.asm.jmp(bpf::JEQ_K, u32::MAX, To::Next, To::L(bad));
                g.asm.ret(default);
                g.asm.here(bad);
                g.asm.ret(RET_BAD_ARCH);
            }
        }
    }
    g.asm.finish()
}

struct Gen {
    asm: Asm,
    default: u32,
}

impl Gen {
    /// One ABI, the syscall number loaded.
    fn section(&mut self, t: &Table) {
        let entries: Vec<(u32, &[Rule])> =
            t.by_nr.iter().map(|(nr, r)| (*nr, r.as_slice())).collect();
        match t.enosys_above {
            Some(max) => {
                let enosys = self.asm.label();
                self.asm.jmp(bpf::JGT_K, max, To::L(enosys), To::Next);
                self.tree(t.abi, &entries);
                self.asm.here(enosys);
                self.asm.ret(RET_ENOSYS);
            }
            None => self.tree(t.abi, &entries),
        }
    }

    /// A binary search over the sorted numbers down to leaves of [`LEAF`].
    fn tree(&mut self, abi: Abi, entries: &[(u32, &[Rule])]) {
        if entries.len() <= LEAF {
            return self.leaf(abi, entries);
        }
        let (low, high) = entries.split_at(entries.len() / 2);
        let Some(&(pivot, _)) = high.first() else {
            return self.leaf(abi, entries);
        };
        let (left, right) = (self.asm.label(), self.asm.label());
        self.asm.jmp(bpf::JGE_K, pivot, To::Next, To::L(left));
        self.asm.ja(right);
        self.asm.here(left);
        self.tree(abi, low);
        self.asm.here(right);
        self.tree(abi, high);
    }

    fn leaf(&mut self, abi: Abi, entries: &[(u32, &[Rule])]) {
        // Unconditional actions share one `ret` per leaf.
        let mut rets: Vec<(u32, Label)> = Vec::new();
        let mut bodies: Vec<(Label, &[Rule])> = Vec::new();
        for (nr, rules) in entries {
            let target = match rules {
                [only] if only.conds.is_empty() => {
                    match rets.iter().find(|(a, _)| *a == only.action) {
                        Some((_, l)) => *l,
                        None => {
                            let l = self.asm.label();
                            rets.push((only.action, l));
                            l
                        }
                    }
                }
                _ => {
                    let l = self.asm.label();
                    bodies.push((l, rules));
                    l
                }
            };
            self.asm.jmp(bpf::JEQ_K, *nr, To::L(target), To::Next);
        }
        self.asm.ret(self.default);
        for (action, l) in rets {
            self.asm.here(l);
            self.asm.ret(action);
        }
        for (l, rules) in bodies {
            self.asm.here(l);
            for rule in rules {
                let next = self.asm.label();
                for c in &rule.conds {
                    self.cond(abi, c, next);
                }
                self.asm.ret(rule.action);
                self.asm.here(next);
            }
            self.asm.ret(self.default);
        }
    }

    /// Falls through when `c` holds, jumps to `fail` otherwise. 64-bit ABIs
    /// compare the high then the low half; 32-bit ABIs only the low half.
    fn cond(&mut self, abi: Abi, c: &Cond, fail: Label) {
        let a = &mut self.asm;
        let lo = off_arg(c.index);
        let hi = lo + 4;
        // libseccomp compares a masked value with the datum masked too.
        let (v, v2) = (c.value, c.value_two & c.value);
        let (vhi, vlo) = ((v >> 32) as u32, v as u32);
        let pass = a.label();
        let (f, p) = (To::L(fail), To::L(pass));
        if !abi.is_64bit() {
            a.ld(lo);
            match c.op {
                Op::ScmpCmpEq => a.jmp(bpf::JEQ_K, vlo, To::Next, f),
                Op::ScmpCmpNe => a.jmp(bpf::JEQ_K, vlo, f, To::Next),
                Op::ScmpCmpGt => a.jmp(bpf::JGT_K, vlo, To::Next, f),
                Op::ScmpCmpGe => a.jmp(bpf::JGE_K, vlo, To::Next, f),
                Op::ScmpCmpLt => a.jmp(bpf::JGE_K, vlo, f, To::Next),
                Op::ScmpCmpLe => a.jmp(bpf::JGT_K, vlo, f, To::Next),
                Op::ScmpCmpMaskedEq => {
                    a.and(vlo);
                    a.jmp(bpf::JEQ_K, v2 as u32, To::Next, f);
                }
            }
            a.here(pass);
            return;
        }
        match c.op {
            Op::ScmpCmpEq => {
                a.ld(hi);
                a.jmp(bpf::JEQ_K, vhi, To::Next, f);
                a.ld(lo);
                a.jmp(bpf::JEQ_K, vlo, To::Next, f);
            }
            Op::ScmpCmpNe => {
                a.ld(hi);
                a.jmp(bpf::JEQ_K, vhi, To::Next, p);
                a.ld(lo);
                a.jmp(bpf::JEQ_K, vlo, f, To::Next);
            }
            Op::ScmpCmpMaskedEq => {
                a.ld(hi);
                a.and(vhi);
                a.jmp(bpf::JEQ_K, (v2 >> 32) as u32, To::Next, f);
                a.ld(lo);
                a.and(vlo);
                a.jmp(bpf::JEQ_K, v2 as u32, To::Next, f);
            }
            Op::ScmpCmpGt | Op::ScmpCmpGe => {
                a.ld(hi);
                a.jmp(bpf::JGT_K, vhi, p, To::Next);
                a.jmp(bpf::JEQ_K, vhi, To::Next, f);
                a.ld(lo);
                let code = if c.op == Op::ScmpCmpGt {
                    bpf::JGT_K
                } else {
                    bpf::JGE_K
                };
                a.jmp(code, vlo, To::Next, f);
            }
            Op::ScmpCmpLt | Op::ScmpCmpLe => {
                a.ld(hi);
                a.jmp(bpf::JGT_K, vhi, f, To::Next);
                a.jmp(bpf::JEQ_K, vhi, To::Next, p);
                a.ld(lo);
                // LT fails on >=, LE on >.
                let code = if c.op == Op::ScmpCmpLt {
                    bpf::JGE_K
                } else {
                    bpf::JGT_K
                };
                a.jmp(code, vlo, f, To::Next);
            }
        }
        a.here(pass);
    }
}

// The expectations are x86_64's numbers and ABIs.
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;
