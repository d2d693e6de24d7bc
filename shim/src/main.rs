fn main() {
    if tent_runtime::is_init_invocation() {
        tent_runtime::init_main();
    }
}
