//! tent-pause has its own `_start` and makes its system calls itself: link nothing else.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
