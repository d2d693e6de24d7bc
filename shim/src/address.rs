//! The shim server's socket address, by containerd's convention:
//! `unix:///run/containerd/s/<sha256 of "<containerd address>/<namespace>/<group>">`.
//! The same group always gets the same socket, which is how `start` finds a pod's
//! live shim. The hash is RustCrypto's `sha2` (no default features).

use std::path::PathBuf;

/// Where shim sockets live unless containerd 2.3+ names a directory
/// (containerd's `defaults.DefaultStateDir` + `/s`).
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// The socket address, under `dir`, of the shim serving `group` of `namespace` for
/// the containerd at `address` (the same path as containerd-shim's `socket_address`).
pub fn socket_address(dir: &str, address: &str, namespace: &str, group: &str) -> String {
    let path = PathBuf::from(address).join(namespace).join(group);
    let hex: String = sha256(path.as_os_str().as_encoded_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("unix://{}/{hex}", dir.trim_end_matches('/'))
}

/// SHA-256 of `data`.
fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(data: &[u8]) -> String {
        sha256(data).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_matches_the_fips_examples() {
        assert_eq!(
            hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Two blocks: the padding spills over.
        assert_eq!(
            hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            hex(&[b'a'; 1000]),
            "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"
        );
    }

    #[test]
    fn socket_address_is_the_hash_of_address_namespace_and_group() {
        // The value containerd-shim 0.11's socket_address gives for these inputs.
        assert_eq!(
            socket_address(
                SOCKET_DIR,
                "/run/containerd/containerd.sock",
                "k8s.io",
                "pod1"
            ),
            format!(
                "unix:///run/containerd/s/{}",
                hex(b"/run/containerd/containerd.sock/k8s.io/pod1")
            )
        );
    }
}
