//! `tent-pause`: the process of a pod's sandbox container (the image
//! `docker.io/library/tent-test:pause`, built by `hack/build-image.sh`).
//!
//! It exists only to hold the pod's namespaces: it sleeps in `rt_sigtimedwait`, reaps
//! whatever is re-parented to it (as PID 1 of a shared pid namespace it inherits the pod's
//! orphans), and exits 0 on SIGTERM or SIGINT, which is what containerd's CRI sends at
//! StopPodSandbox.
//!
//! No libc, no allocator, no std: five raw system calls and a few hundred bytes of code, so a
//! pod's pause process costs a couple of pages (every pod of a node has one). Signals are
//! blocked and taken synchronously, so PID 1's rule that unhandled signals are ignored does
//! not matter and no handler ever runs.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

const SYS_WRITE: usize = 1;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_WAIT4: usize = 61;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_EXIT_GROUP: usize = 231;
const SIG_BLOCK: usize = 0;
const WNOHANG: usize = 1;
const SIGINT: usize = 2;
const SIGTERM: usize = 15;
const SIGCHLD: usize = 17;

// The kernel enters with argc at [rsp] and rsp 16-byte aligned; a call would leave it
// misaligned by 8 as every function expects.
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, [rsp]",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym pause_main,
);

/// # Safety
/// Entered once, from `_start`, with the process's argc.
unsafe extern "C" fn pause_main(argc: usize) -> ! {
    if argc > 1 {
        let msg = b"tent-pause: takes no arguments (it holds a pod's namespaces until SIGTERM)\n";
        syscall3(SYS_WRITE, 2, msg.as_ptr() as usize, msg.len());
        exit(2);
    }
    let set: u64 = (1 << (SIGINT - 1)) | (1 << (SIGTERM - 1)) | (1 << (SIGCHLD - 1));
    let set_ptr = &set as *const u64 as usize;
    if syscall4(SYS_RT_SIGPROCMASK, SIG_BLOCK, set_ptr, 0, 8) != 0 {
        exit(1);
    }
    loop {
        match syscall4(SYS_RT_SIGTIMEDWAIT, set_ptr, 0, 0, 8) {
            s if s == SIGTERM as isize || s == SIGINT as isize => exit(0),
            // Collect every exited child; -EINTR (a stop/continue) just waits again.
            s if s == SIGCHLD as isize => {
                while syscall4(SYS_WAIT4, usize::MAX, 0, WNOHANG, 0) > 0 {}
            }
            _ => {}
        }
    }
}

fn exit(code: usize) -> ! {
    // SAFETY: exit_group takes an int and does not return.
    unsafe { asm!("syscall", in("rax") SYS_EXIT_GROUP, in("rdi") code, options(noreturn)) }
}

unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    syscall4(n, a, b, c, 0)
}

/// A raw x86_64 system call (the kernel clobbers rcx and r11).
unsafe fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
         in("r10") d, lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(3)
}
