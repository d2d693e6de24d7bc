//! Command-line flags as containerd passes them to a shim (Go `flag` syntax:
//! `-name value`, `-name=value`, boolean `-debug`), followed by the action.

use std::ffi::OsString;

/// The flags containerd 1.6 … 2.x pass to `containerd-shim-<name>-v<n>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    pub address: String,
    pub publish_binary: String,
    pub bundle: String,
    pub socket: String,
    /// The server's log level as containerd 2.3+ asked `start` for it (`INFO`, …).
    pub log_level: String,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    /// `start`, `delete`, or empty for the long-lived server.
    pub action: String,
}

/// Parses `args` (without argv\[0\]). Unknown flags are an error that names them.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        let Some(name) = arg.strip_prefix('-') else {
            positional.push(arg);
            continue;
        };
        let name = name.strip_prefix('-').unwrap_or(name);
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (name.to_string(), None),
        };
        let target = match name.as_str() {
            "debug" | "v" | "version" | "info" => {
                let value = match inline.as_deref() {
                    None | Some("true") | Some("1") => true,
                    Some("false") | Some("0") => false,
                    Some(other) => return Err(format!("flag -{name}: invalid boolean {other:?}")),
                };
                match name.as_str() {
                    "debug" => flags.debug = value,
                    "info" => flags.info = value,
                    _ => flags.version = value,
                }
                continue;
            }
            "namespace" => &mut flags.namespace,
            "id" => &mut flags.id,
            "address" => &mut flags.address,
            "publish-binary" => &mut flags.publish_binary,
            "bundle" => &mut flags.bundle,
            "socket" => &mut flags.socket,
            "log-level" => &mut flags.log_level,
            other => return Err(format!("unknown flag -{other}")),
        };
        *target = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("flag -{name} needs a value"))?,
        };
    }
    if positional.len() > 1 {
        return Err(format!("unexpected arguments: {}", positional.join(" ")));
    }
    flags.action = positional.pop().unwrap_or_default();
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Flags, String> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn parses_start_as_containerd_sends_it() {
        let f = p(&[
            "-namespace",
            "default",
            "-address",
            "/run/c.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "t1",
            "-debug",
            "start",
        ])
        .expect("valid flags");
        assert_eq!(f.namespace, "default");
        assert_eq!(f.address, "/run/c.sock");
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert_eq!(f.id, "t1");
        assert!(f.debug);
        assert_eq!(f.action, "start");
    }

    #[test]
    fn parses_inline_values_and_delete() {
        let f = p(&["-id=x", "--bundle=/b", "delete"]).expect("valid flags");
        assert_eq!(f.id, "x");
        assert_eq!(f.bundle, "/b");
        assert_eq!(f.action, "delete");
    }

    #[test]
    fn server_has_no_action() {
        let f =
            p(&["-socket", "unix:///s", "-id", "x", "-log-level", "WARN"]).expect("valid flags");
        assert_eq!(f.action, "");
        assert_eq!(f.socket, "unix:///s");
        assert_eq!(f.log_level, "WARN");
    }

    #[test]
    fn rejects_unknown_flags_and_missing_values() {
        assert!(p(&["-bogus", "1"]).unwrap_err().contains("-bogus"));
        assert!(p(&["-id"]).unwrap_err().contains("-id"));
        assert!(p(&["start", "extra"]).is_err());
    }
}
