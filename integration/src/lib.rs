//! Test harness: a private containerd per test binary, driven through `ctr`.
