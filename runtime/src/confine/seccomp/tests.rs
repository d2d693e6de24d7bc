//! The compiler checked two ways: programs run by a small cBPF interpreter
//! against `seccomp_data` inputs (every op, every ABI, no kernel needed), and
//! filters loaded by the kernel in a forked child that makes real syscalls.

use super::*;

const X86_64: u32 = 0xc000_003e;
const I386: u32 = 0x4000_0003;
const AARCH64: u32 = 0xc000_00b7;
const EPERM: u32 = RET_ERRNO | 1;

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    match serde_json::from_value(v) {
        Ok(p) => p,
        Err(e) => panic!("bad test profile: {e}"),
    }
}

fn runtime_default() -> LinuxSeccomp {
    let text = include_str!("../../../tests/fixtures/seccomp-runtime-default-amd64.json");
    match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) => panic!("fixture: {e}"),
    }
}

fn build(p: &LinuxSeccomp) -> Filter {
    match compile(p) {
        Ok(f) => f,
        Err(e) => panic!("compile: {e}"),
    }
}

/// Runs `prog` on `seccomp_data {nr, arch, args}` as the kernel would, and
/// checks what the kernel's verifier checks on the way (jumps in range, only
/// forward, the program ends in a return).
fn run(prog: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = prog[pc];
        let jump = |taken: bool| pc + 1 + if taken { i.jt } else { i.jf } as usize;
        pc = match i.code {
            bpf::LD_W_ABS => {
                let o = i.k as usize;
                assert!(o & 3 == 0 && o + 4 <= 64, "load of {o}");
                acc = u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
                pc + 1
            }
            bpf::ALU_AND_K => {
                acc &= i.k;
                pc + 1
            }
            bpf::JA => pc + 1 + i.k as usize,
            bpf::JEQ_K => jump(acc == i.k),
            bpf::JGT_K => jump(acc > i.k),
            bpf::JGE_K => jump(acc >= i.k),
            bpf::RET_K => return i.k,
            c => panic!("unexpected opcode {c:#x} at {pc}"),
        };
        assert!(pc < prog.len(), "jump out of the program");
    }
}

fn call(f: &Filter, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    run(&f.instructions(), arch, nr, args)
}

fn nr(abi: Abi, name: &str) -> u32 {
    abi.syscall(name).unwrap_or(u32::MAX)
}

#[test]
fn tiny_profile_byte_for_byte() {
    let f = build(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })));
    let i = |code, jt, jf, k| Insn { code, jt, jf, k };
    assert_eq!(
        f.instructions(),
        vec![
            i(bpf::LD_W_ABS, 0, 0, 4),
            i(bpf::JEQ_K, 1, 0, X86_64),
            i(bpf::RET_K, 0, 0, RET_BAD_ARCH),
            i(bpf::LD_W_ABS, 0, 0, 0),
            i(bpf::JGE_K, 3, 0, X32_SYSCALL_BIT),
            i(bpf::JEQ_K, 1, 0, 39),
            i(bpf::RET_K, 0, 0, RET_ALLOW),
            i(bpf::RET_K, 0, 0, EPERM),
            // x32 is not in the profile: only -1 passes, to the default.
            i(bpf::JEQ_K, 0, 1, u32::MAX),
            i(bpf::RET_K, 0, 0, RET_ALLOW),
            i(bpf::RET_K, 0, 0, RET_BAD_ARCH),
        ]
    );
}

#[test]
fn runtime_default_x86_64() {
    let f = build(&runtime_default());
    assert!(f.instructions().len() <= bpf::MAX_INSNS);
    let x = Abi::X86_64;
    let c = |name, args| call(&f, X86_64, nr(x, name), args);
    assert_eq!(c("read", [0; 6]), RET_ALLOW);
    assert_eq!(c("execve", [0; 6]), RET_ALLOW);
    for blocked in [
        "mount", "unshare", "setns", "keyctl", "add_key", "bpf", "reboot",
    ] {
        assert_eq!(c(blocked, [0; 6]), EPERM, "{blocked}");
    }
    assert_eq!(c("clone3", [0; 6]), RET_ENOSYS);
    // Newer than the profile: ENOSYS (runc's patchbpf), not EPERM.
    assert_eq!(c("file_getattr", [0; 6]), RET_ENOSYS);
    assert_eq!(call(&f, X86_64, 1000, [0; 6]), RET_ENOSYS);
    // A hole below the profile's largest number: the default.
    assert_eq!(call(&f, X86_64, 400, [0; 6]), EPERM);
    for ok in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(c("personality", [ok, 0, 0, 0, 0, 0]), RET_ALLOW, "{ok:#x}");
    }
    assert_eq!(c("personality", [1, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(c("personality", [0x1_0000_0000, 0, 0, 0, 0, 0]), EPERM);
    for (domain, want) in [
        (1, RET_ALLOW),
        (2, RET_ALLOW),
        (10, RET_ALLOW),
        (16, RET_ALLOW),
        (38, EPERM),
        (39, RET_ALLOW),
        (40, EPERM),
        (41, RET_ALLOW),
    ] {
        assert_eq!(
            c("socket", [domain, 1, 0, 0, 0, 0]),
            want,
            "socket({domain})"
        );
    }
    let sigchld = 17u64;
    assert_eq!(c("clone", [sigchld, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(c("clone", [0x1000_0000 | sigchld, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(c("clone", [0x4000_0000, 0, 0, 0, 0, 0]), EPERM);
    // A tracer's -1 goes to x32 here (x32 is in the profile): above its table.
    assert_eq!(call(&f, X86_64, u32::MAX, [0; 6]), RET_ENOSYS);
    assert_eq!(call(&f, AARCH64, 56, [0; 6]), RET_BAD_ARCH);
}

#[test]
fn runtime_default_i386_and_x32() {
    let f = build(&runtime_default());
    let i = |name| call(&f, I386, nr(Abi::I386, name), [0; 6]);
    assert_eq!(i("read"), RET_ALLOW);
    assert_eq!(i("socketcall"), RET_ALLOW);
    assert_eq!(i("_llseek"), RET_ALLOW);
    assert_eq!(i("mount"), EPERM);
    assert_eq!(i("clone3"), RET_ENOSYS);
    // 32-bit ABI: compares see the low half only.
    let personality = nr(Abi::I386, "personality");
    assert_eq!(
        call(&f, I386, personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
        RET_ALLOW
    );
    let x = |name| call(&f, X86_64, nr(Abi::X32, name), [0; 6]);
    assert_eq!(x("read"), RET_ALLOW);
    assert_eq!(x("execve"), RET_ALLOW); // 520 | bit 30
    assert_eq!(x("mount"), EPERM);
    assert_eq!(x("clone3"), RET_ENOSYS);
    // An x86_64 number with bit 30 that x32 does not have (its x86_64 ioctl, 16).
    assert_eq!(call(&f, X86_64, X32_SYSCALL_BIT | 16, [0; 6]), EPERM);
}

#[test]
fn runtime_default_compiles_quickly() {
    let p = runtime_default();
    let start = std::time::Instant::now();
    let rounds = 20;
    let mut len = 0;
    for _ in 0..rounds {
        len = build(&p).instructions().len();
    }
    let per = start.elapsed() / rounds;
    eprintln!("RuntimeDefault (amd64, 3 ABIs): {len} instructions, compiled in {per:?}");
    assert!(per < std::time::Duration::from_millis(200), "{per:?}");
}

/// Every op on 64-bit arguments across the half boundary, against the
/// obvious Rust expression; on a 32-bit ABI against the low halves.
#[test]
fn every_op_on_both_halves() {
    let values = [
        0u64,
        1,
        2,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0x2_0000_0000,
        0xffff_ffff_0000_0000,
        u64::MAX,
        0x8000_0000,
        0x7fff_ffff_ffff_ffff,
    ];
    let ops = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];
    let holds = |op: &str, arg: u64, v: u64, v2: u64| match op {
        "SCMP_CMP_EQ" => arg == v,
        "SCMP_CMP_NE" => arg != v,
        "SCMP_CMP_LT" => arg < v,
        "SCMP_CMP_LE" => arg <= v,
        "SCMP_CMP_GE" => arg >= v,
        "SCMP_CMP_GT" => arg > v,
        _ => arg & v == v2 & v,
    };
    for op in ops {
        for &v in &values {
            // A datum with bits outside the mask: they are ignored (libseccomp).
            let v2 = (v & 0x1_0000_0001) | 0x10;
            let f = build(&profile(serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7,
                    "args": [{"index": 3, "value": v, "valueTwo": v2, "op": op}]}]
            })));
            for &arg in &values {
                let mut args = [0u64; 6];
                args[3] = arg;
                let want = |hit: bool| if hit { RET_ERRNO | 7 } else { RET_ALLOW };
                assert_eq!(
                    call(&f, X86_64, 39, args),
                    want(holds(op, arg, v, v2)),
                    "x86_64 {op} arg {arg:#x} value {v:#x}"
                );
                let (a32, v32, v2_32) = (arg & 0xffff_ffff, v & 0xffff_ffff, v2 & 0xffff_ffff);
                assert_eq!(
                    call(&f, I386, 20, args),
                    want(holds(op, a32, v32, v2_32)),
                    "i386 {op} arg {arg:#x} value {v:#x}"
                );
            }
        }
    }
}

#[test]
fn conditions_on_one_index_are_split_as_runc_does() {
    // containerd's old AF_ALG rule: two NE on arg0 in one rule. runc splits
    // it into two rules (OR), so both families are allowed after all.
    let f = build(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 40, "op": "SCMP_CMP_NE"},
                {"index": 0, "value": 38, "op": "SCMP_CMP_NE"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]}
        ]
    })));
    for domain in [2, 38, 40] {
        assert_eq!(call(&f, X86_64, 41, [domain, 0, 0, 0, 0, 0]), RET_ALLOW);
    }
    // Different indexes stay one rule: AND.
    assert_eq!(call(&f, X86_64, 39, [1, 2, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(call(&f, X86_64, 39, [1, 3, 0, 0, 0, 0]), EPERM);
    assert_eq!(call(&f, X86_64, 39, [0, 2, 0, 0, 0, 0]), EPERM);
}

#[test]
fn rule_semantics() {
    let f = build(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["no_such_call", "getpid", "socketcall"], "action": "SCMP_ACT_ALLOW"},
            // Unconditional beats conditional (libseccomp).
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_LOG"},
            // Rules are tried in order.
            {"names": ["gettid"], "action": "SCMP_ACT_TRAP", "args": [
                {"index": 0, "value": 5, "op": "SCMP_CMP_GE"}]},
            {"names": ["gettid"], "action": "SCMP_ACT_TRACE", "args": [
                {"index": 0, "value": 3, "op": "SCMP_CMP_GE"}]},
            // Same as the default: skipped, but counts for ENOSYS.
            {"names": ["tkill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["sync"], "action": "SCMP_ACT_KILL"},
            {"names": ["umask"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["chdir"], "action": "SCMP_ACT_ERRNO"}
        ]
    })));
    let default = RET_ERRNO | 13;
    assert_eq!(call(&f, X86_64, 39, [0; 6]), RET_ALLOW);
    assert_eq!(call(&f, I386, 102, [0; 6]), RET_ALLOW);
    assert_eq!(call(&f, X86_64, 110, [1, 0, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(call(&f, X86_64, 186, [9, 0, 0, 0, 0, 0]), RET_TRAP);
    assert_eq!(call(&f, X86_64, 186, [4, 0, 0, 0, 0, 0]), RET_TRACE | 1);
    assert_eq!(call(&f, X86_64, 186, [1, 0, 0, 0, 0, 0]), default);
    assert_eq!(call(&f, X86_64, 200, [0; 6]), default); // tkill
    assert_eq!(call(&f, X86_64, 162, [0; 6]), RET_KILL_THREAD);
    assert_eq!(call(&f, X86_64, 95, [0; 6]), RET_KILL_THREAD);
    assert_eq!(call(&f, X86_64, 80, [0; 6]), EPERM);
    assert_eq!(call(&f, X86_64, 201, [0; 6]), RET_ENOSYS); // above tkill
    assert_eq!(call(&f, X86_64, 1, [0; 6]), default);
    // An allowing default: no ENOSYS stub.
    let open = build(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"}]
    })));
    assert_eq!(call(&open, X86_64, 1000, [0; 6]), RET_ALLOW);
    assert_eq!(call(&open, X86_64, 39, [0; 6]), RET_KILL_PROCESS);
}

#[test]
fn i386_socketcall_and_ipc_follow_their_calls() {
    let f = build(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["connect", "semop", "send"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
        ]
    })));
    let socketcall = |call: u64| call_i386(&f, 102, call);
    assert_eq!(socketcall(3), RET_ALLOW); // connect
    assert_eq!(socketcall(9), RET_ALLOW); // send: no direct call on i386
    assert_eq!(socketcall(1), RET_ALLOW); // socket: its arg0 check replaced
    assert_eq!(socketcall(2), EPERM); // bind
    assert_eq!(call_i386(&f, 117, 1), RET_ALLOW); // ipc(SEMOP)
    assert_eq!(call_i386(&f, 117, 2), EPERM); // ipc(SEMGET)
    assert_eq!(call_i386(&f, 362, 0), RET_ALLOW); // connect itself
    assert_eq!(call_i386(&f, 359, 1), RET_ALLOW); // socket(AF_UNIX)
    assert_eq!(call_i386(&f, 359, 2), EPERM);
}

fn call_i386(f: &Filter, nr: u32, arg0: u64) -> u32 {
    call(f, I386, nr, [arg0, 0, 0, 0, 0, 0])
}

#[test]
fn long_jumps_are_relaxed() {
    // Many conditional rules on syscalls of one leaf put their bodies far
    // from the leaf's jumps; every jump still lands where it should.
    let rules: Vec<serde_json::Value> = (0..8u64)
        .flat_map(|s| {
            let name = [
                "read", "write", "open", "close", "stat", "fstat", "lstat", "poll",
            ][s as usize];
            (0..40u64).map(move |v| {
                serde_json::json!({
                "names": [name],
                "action": "SCMP_ACT_ERRNO", "errnoRet": 100 + s,
                "args": [{"index": 1, "value": v * 3 + s, "op": "SCMP_CMP_EQ"},
                         {"index": 2, "value": 0x1_0000_0000 | v, "op": "SCMP_CMP_NE"}]})
            })
        })
        .collect();
    let f = build(&profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}),
    ));
    let prog = f.instructions();
    assert!(prog.len() > 256, "{}", prog.len());
    for s in 0..8u32 {
        for v in [0u64, 17, 39] {
            let hit = [0, v * 3 + s as u64, 0, 0, 0, 0];
            assert_eq!(
                run(&prog, X86_64, s, hit),
                RET_ERRNO | (100 + s),
                "nr {s} v {v}"
            );
            let miss = [0, v * 3 + s as u64, 0x1_0000_0000 | v, 0, 0, 0];
            assert_eq!(run(&prog, X86_64, s, miss), RET_ALLOW, "nr {s} v {v}");
        }
    }
}

#[test]
fn too_large_for_the_kernel() {
    let rules: Vec<serde_json::Value> = (0..800u64)
        .map(|v| {
            serde_json::json!({"names": ["read"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": v, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let err = compile(&profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": rules}),
    ))
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.starts_with("linux.seccomp: ") && err.contains("BPF_MAXINSNS"),
        "{err}"
    );
    // A huge one fails as fast: code generation stops at the limit.
    let many: Vec<serde_json::Value> = (0..50_000u64)
        .map(|v| {
            serde_json::json!({"names": ["read", "write"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]})
        })
        .collect();
    let huge = profile(serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": many}));
    let start = std::time::Instant::now();
    assert!(compile(&huge).is_err());
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn bad_profiles_name_the_field() {
    for (p, field) in [
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "linux.seccomp.defaultAction",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/agent.sock",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[1].action",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                             {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[1].index",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read", ""], "action": "SCMP_ACT_ALLOW"}]}),
            "linux.seccomp.syscalls[0].names[1]",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}),
            "linux.seccomp.defaultErrnoRet",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 65536}]}),
            "linux.seccomp.syscalls[0].errnoRet",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_PPC64LE"]}),
            "linux.seccomp.architectures[1]",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_AARCH64"]}),
            "linux.seccomp.architectures[0]",
        ),
    ] {
        let err = compile(&profile(p))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with(&format!("{field}: ")), "{field}: {err}");
    }
    // Unknown actions, architectures, operators and flags fail when the
    // spec is parsed.
    for bad in [
        serde_json::json!({"defaultAction": "SCMP_ACT_SOMETIMES"}),
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}),
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_MAGIC"]}),
        serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],
            "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}),
    ] {
        assert!(
            serde_json::from_value::<LinuxSeccomp>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn flags() {
    let f = build(&profile(
        serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                  "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}),
    ));
    assert_eq!(f.flags, FLAG_LOG | FLAG_SPEC_ALLOW | FLAG_TSYNC);
}

// ------------------------------------------------------------ in the kernel

/// What a child under a filter observed: the raw return value (or -errno)
/// of each call, or the signal that killed it.
#[derive(Debug, PartialEq)]
enum Outcome {
    Returned(Vec<i64>),
    Killed(i32),
}

/// Forks; the child loads `f` (after no_new_privs) and makes `calls`
/// (number and args), writing each result into a pipe, then `_exit`s.
fn under(f: &Filter, calls: &[(i64, [u64; 6])]) -> Outcome {
    let mut fds = [0; 2];
    // SAFETY: pipe into a two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes raw syscalls and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain syscalls; the child exits without unwinding.
        unsafe {
            libc::close(fds[0]);
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let code = if f.load().is_ok() { 0 } else { 99 };
            if code == 0 {
                for (nr, a) in calls {
                    let r = libc::syscall(*nr, a[0], a[1], a[2], a[3], a[4], a[5]);
                    let r = if r == -1 {
                        -(*libc::__errno_location() as i64)
                    } else {
                        r as i64
                    };
                    libc::write(fds[1], (&r as *const i64).cast(), 8);
                }
            }
            libc::_exit(code);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut out = Vec::new();
    let mut buf = [0u8; 8];
    // SAFETY: reads into a local buffer from our read end.
    while unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 8) } == 8 {
        out.push(i64::from_ne_bytes(buf));
    }
    // SAFETY: closing our read end; waitpid on our own child.
    let mut status = 0;
    unsafe {
        libc::close(fds[0]);
        libc::waitpid(pid, &mut status, 0);
    }
    if libc::WIFSIGNALED(status) {
        return Outcome::Killed(libc::WTERMSIG(status));
    }
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "child could not load the filter"
    );
    Outcome::Returned(out)
}

fn neg(e: i32) -> i64 {
    -(e as i64)
}

#[test]
fn kernel_runtime_default() {
    let f = build(&runtime_default());
    let calls = [
        (libc::SYS_getppid, [0; 6]),
        (libc::SYS_mount, [0; 6]),
        (
            libc::SYS_unshare,
            [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
        ),
        (libc::SYS_keyctl, [0; 6]),
        (libc::SYS_clone3, [0; 6]),
        (468, [0; 6]), // file_getattr (6.17), newer than the profile
        (libc::SYS_personality, [0xffff_ffff, 0, 0, 0, 0, 0]),
        (libc::SYS_personality, [0x0400_0000, 0, 0, 0, 0, 0]),
        (
            libc::SYS_socket,
            [libc::AF_VSOCK as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        ),
        (
            libc::SYS_socket,
            [libc::AF_ALG as u64, libc::SOCK_SEQPACKET as u64, 0, 0, 0, 0],
        ),
        (
            libc::SYS_socket,
            [libc::AF_UNIX as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0],
        ),
    ];
    let start = std::time::Instant::now();
    let got = under(&f, &calls);
    eprintln!(
        "fork + load RuntimeDefault + 11 calls: {:?}",
        start.elapsed()
    );
    let Outcome::Returned(r) = got else {
        panic!("{got:?}")
    };
    assert_eq!(r[0], std::process::id() as i64, "getppid");
    assert_eq!(
        &r[1..6],
        &[
            neg(libc::EPERM),
            neg(libc::EPERM),
            neg(libc::EPERM),
            neg(libc::ENOSYS),
            neg(libc::ENOSYS)
        ]
    );
    assert!(r[6] >= 0, "personality query: {}", r[6]);
    assert_eq!(r[7], neg(libc::EPERM));
    assert_eq!(&r[8..10], &[neg(libc::EPERM), neg(libc::EPERM)]);
    assert!(r[10] >= 0, "socket(AF_UNIX): {}", r[10]);
}

#[test]
fn kernel_arg_rules() {
    // getpid ignores its arguments, so any value can be tried on it.
    let f = build(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99, "args": [
                {"index": 0, "value": 0x1_0000_0000u64, "op": "SCMP_CMP_GE"},
                {"index": 5, "value": 0xf0, "valueTwo": 0x30, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_TRACE", "errnoRet": 77, "args": [
                {"index": 2, "value": 7, "op": "SCMP_CMP_LT"},
                {"index": 2, "value": 9, "op": "SCMP_CMP_GT"}]},
            {"names": ["gettid"], "action": "SCMP_ACT_LOG"}
        ]
    })));
    let got = under(
        &f,
        &[
            (libc::SYS_getpid, [0x1_0000_0000, 0, 8, 0, 0, 0x3f]),
            (libc::SYS_getpid, [0xffff_ffff, 0, 8, 0, 0, 0x3f]),
            (libc::SYS_getpid, [0x1_0000_0000, 0, 8, 0, 0, 0x4f]),
            // No tracer: a traced call fails with ENOSYS.
            (libc::SYS_getpid, [0, 0, 3, 0, 0, 0]),
            (libc::SYS_getpid, [0, 0, 10, 0, 0, 0]),
            (libc::SYS_getpid, [0, 0, 8, 0, 0, 0]),
            (libc::SYS_gettid, [0; 6]),
        ],
    );
    let Outcome::Returned(r) = got else {
        panic!("{got:?}")
    };
    let pid = r[1];
    assert!(pid > 0, "{r:?}");
    assert_eq!(r[0], neg(99));
    assert_eq!(r[2], pid);
    assert_eq!(&r[3..5], &[neg(libc::ENOSYS), neg(libc::ENOSYS)]);
    assert_eq!(r[5], pid);
    assert!(r[6] > 0);
}

#[test]
fn kernel_kill_and_trap() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
    ] {
        let f = build(&profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}]
        })));
        let got = under(
            &f,
            &[(libc::SYS_getpid, [0; 6]), (libc::SYS_getppid, [0; 6])],
        );
        assert_eq!(got, Outcome::Killed(libc::SIGSYS), "{action}");
    }
}

#[test]
fn kernel_foreign_abi_is_killed() {
    // x32 is not in this profile: an x32 call (bit 30) kills, as libseccomp's
    // bad-arch action does, whether or not the kernel has x32 enabled.
    let f = build(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["getpid", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    })));
    let got = under(&f, &[(libc::SYS_getpid, [0; 6]), (0x4000_0027, [0; 6])]);
    assert_eq!(got, Outcome::Killed(libc::SIGSYS));
}

/// Times, in a child: loading RuntimeDefault, and 100k `getppid` before and
/// after it (the filter's cost per call). Printed for the record.
#[test]
fn kernel_load_and_per_call_cost() {
    let f = build(&runtime_default());
    let mut fds = [0; 2];
    // SAFETY: pipe into a two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child makes raw syscalls, reads the vDSO clock, `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let calls = || {
            let t = std::time::Instant::now();
            for _ in 0..100_000 {
                // SAFETY: getppid has no arguments or side effects.
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
            t.elapsed().as_nanos() as u64
        };
        // SAFETY: plain syscalls; the child exits without unwinding.
        unsafe {
            libc::close(fds[0]);
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let bare = calls();
            let t = std::time::Instant::now();
            let ok = f.load().is_ok();
            let load = t.elapsed().as_nanos() as u64;
            let filtered = calls();
            let out = [ok as u64, load, bare, filtered];
            libc::write(fds[1], out.as_ptr().cast(), 32);
            libc::_exit(0);
        }
    }
    let mut out = [0u64; 4];
    // SAFETY: reads into a local array from our read end; reaps our child.
    unsafe {
        libc::close(fds[1]);
        assert_eq!(libc::read(fds[0], out.as_mut_ptr().cast(), 32), 32);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    assert_eq!(out[0], 1, "load failed");
    eprintln!(
        "RuntimeDefault: load {} µs; getppid {} ns bare, {} ns filtered",
        out[1] / 1000,
        out[2] / 100_000,
        out[3] / 100_000
    );
}
