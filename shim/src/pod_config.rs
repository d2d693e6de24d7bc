//! The fields of the CRI `PodSandboxConfig` (runtime.v1) a pauseless pod needs, read
//! from the protobuf containerd passes in CreateSandbox's `options` (field numbers of
//! k8s.io/cri-api's api.proto). Decoded by hand with [`crate::pb`]: the whole CRI API as
//! generated code would be a large addition to every shim for a dozen fields.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::pb::fields;

const WHAT: &str = "PodSandboxConfig";

/// CRI's NamespaceMode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Pod,
    Container,
    Node,
    Target,
}

impl Mode {
    fn from(v: u64) -> Result<Mode> {
        Ok(match v {
            0 => Mode::Pod,
            1 => Mode::Container,
            2 => Mode::Node,
            3 => Mode::Target,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "malformed {WHAT}: namespace mode {other}"
                )))
            }
        })
    }
}

/// CRI's DNSConfig.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dns {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// What tent reads of a PodSandboxConfig.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodConfig {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub hostname: String,
    pub dns: Option<Dns>,
    pub cgroup_parent: String,
    pub sysctls: BTreeMap<String, String>,
    pub network: Mode,
    pub pid: Mode,
    pub ipc: Mode,
    /// `namespace_options.userns_options.mode` is POD (a user namespace for the pod).
    pub userns: bool,
    /// `security_context.privileged`.
    pub privileged: bool,
}

impl PodConfig {
    /// Decodes the `Any` value containerd sent (an empty one is an empty config).
    pub fn decode(bytes: &[u8]) -> Result<PodConfig> {
        let mut c = PodConfig::default();
        for (n, v) in fields(bytes, WHAT)? {
            match n {
                1 => c.metadata(&v.bytes(WHAT, "metadata")?)?,
                2 => c.hostname = v.string(WHAT, "hostname")?,
                4 => c.dns = Some(dns(&v.bytes(WHAT, "dns_config")?)?),
                8 => c.linux(&v.bytes(WHAT, "linux")?)?,
                _ => {}
            }
        }
        Ok(c)
    }

    fn metadata(&mut self, b: &[u8]) -> Result<()> {
        for (n, v) in fields(b, WHAT)? {
            match n {
                1 => self.name = v.string(WHAT, "metadata.name")?,
                2 => self.uid = v.string(WHAT, "metadata.uid")?,
                3 => self.namespace = v.string(WHAT, "metadata.namespace")?,
                _ => {}
            }
        }
        Ok(())
    }

    fn linux(&mut self, b: &[u8]) -> Result<()> {
        for (n, v) in fields(b, WHAT)? {
            match n {
                1 => self.cgroup_parent = v.string(WHAT, "linux.cgroup_parent")?,
                2 => self.security_context(&v.bytes(WHAT, "linux.security_context")?)?,
                3 => {
                    let (k, val) = map_entry(&v.bytes(WHAT, "linux.sysctls")?)?;
                    self.sysctls.insert(k, val);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn security_context(&mut self, b: &[u8]) -> Result<()> {
        for (n, v) in fields(b, WHAT)? {
            match n {
                1 => self.namespace_options(&v.bytes(WHAT, "namespace_options")?)?,
                6 => self.privileged = v.varint(WHAT, "privileged")? != 0,
                _ => {}
            }
        }
        Ok(())
    }

    fn namespace_options(&mut self, b: &[u8]) -> Result<()> {
        for (n, v) in fields(b, WHAT)? {
            match n {
                1 => self.network = Mode::from(v.varint(WHAT, "namespace_options.network")?)?,
                2 => self.pid = Mode::from(v.varint(WHAT, "namespace_options.pid")?)?,
                3 => self.ipc = Mode::from(v.varint(WHAT, "namespace_options.ipc")?)?,
                5 => {
                    // UserNamespace.mode (1): absent = POD (0); NODE = the host's.
                    let mut mode = 0;
                    for (n, v) in fields(&v.bytes(WHAT, "userns_options")?, WHAT)? {
                        if n == 1 {
                            mode = v.varint(WHAT, "userns_options.mode")?;
                        }
                    }
                    self.userns = Mode::from(mode)? == Mode::Pod;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn dns(b: &[u8]) -> Result<Dns> {
    let mut d = Dns::default();
    for (n, v) in fields(b, WHAT)? {
        match n {
            1 => d.servers.push(v.string(WHAT, "dns_config.servers")?),
            2 => d.searches.push(v.string(WHAT, "dns_config.searches")?),
            3 => d.options.push(v.string(WHAT, "dns_config.options")?),
            _ => {}
        }
    }
    Ok(d)
}

/// One `map<string, string>` entry (key = 1, value = 2).
fn map_entry(b: &[u8]) -> Result<(String, String)> {
    let (mut k, mut val) = (String::new(), String::new());
    for (n, v) in fields(b, WHAT)? {
        match n {
            1 => k = v.string(WHAT, "map key")?,
            2 => val = v.string(WHAT, "map value")?,
            _ => {}
        }
    }
    Ok((k, val))
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::CodedOutputStream;

    fn msg(write: impl FnOnce(&mut CodedOutputStream<'_>)) -> Vec<u8> {
        crate::pb::encode("test", |s| {
            write(s);
            Ok(())
        })
        .expect("encode")
    }

    #[test]
    fn decodes_the_fields_a_pod_needs() {
        let meta = msg(|s| {
            s.write_string(1, "web").unwrap();
            s.write_string(2, "uid-1").unwrap();
            s.write_string(3, "default").unwrap();
        });
        let dns = msg(|s| {
            s.write_string(1, "10.0.0.10").unwrap();
            s.write_string(1, "10.0.0.11").unwrap();
            s.write_string(2, "svc.cluster.local").unwrap();
            s.write_string(3, "ndots:5").unwrap();
        });
        let ns = msg(|s| {
            s.write_int32(1, 0).unwrap();
            s.write_int32(2, 1).unwrap();
            s.write_int32(3, 2).unwrap();
        });
        let sc = msg(|s| s.write_bytes(1, &ns).unwrap());
        let sysctl = msg(|s| {
            s.write_string(1, "net.ipv4.ip_unprivileged_port_start")
                .unwrap();
            s.write_string(2, "0").unwrap();
        });
        let linux = msg(|s| {
            s.write_string(1, "/kubepods/podx").unwrap();
            s.write_bytes(2, &sc).unwrap();
            s.write_bytes(3, &sysctl).unwrap();
        });
        let config = msg(|s| {
            s.write_bytes(1, &meta).unwrap();
            s.write_string(2, "web-0").unwrap();
            s.write_string(3, "/var/log/pods/x").unwrap();
            s.write_bytes(4, &dns).unwrap();
            s.write_bytes(8, &linux).unwrap();
        });
        let c = PodConfig::decode(&config).expect("decode");
        assert_eq!((c.name.as_str(), c.uid.as_str()), ("web", "uid-1"));
        assert_eq!(c.hostname, "web-0");
        let d = c.dns.expect("dns");
        assert_eq!(d.servers, ["10.0.0.10", "10.0.0.11"]);
        assert_eq!(d.searches, ["svc.cluster.local"]);
        assert_eq!(d.options, ["ndots:5"]);
        assert_eq!(c.cgroup_parent, "/kubepods/podx");
        assert_eq!(
            (c.network, c.pid, c.ipc),
            (Mode::Pod, Mode::Container, Mode::Node)
        );
        assert_eq!(c.sysctls["net.ipv4.ip_unprivileged_port_start"], "0");
        let e = PodConfig::decode(&[0x08, 0x01, 0x12]).expect_err("truncated");
        assert!(e.to_string().contains("PodSandboxConfig"), "{e}");
    }
}
