//! The systemd cgroup driver: where systemd is PID 1 and `linux.cgroupsPath`
//! has the systemd form (`slice:prefix:name`, what kubelet's systemd driver
//! makes containerd send), the container's cgroup is a transient scope unit
//! `<prefix>-<name>.scope` in `Slice=<slice>`, made by systemd over D-Bus
//! (StartTransientUnit) with `Delegate=yes` and the container's first process
//! as its PID. The limits systemd holds are unit properties, so a
//! `systemctl daemon-reload` or a `set-property` on the pod's slice re-applies
//! the container's own values instead of systemd's defaults; tent still
//! writes every limit to cgroupfs afterwards (the same plan as without
//! systemd), as runc does. Delete stops the unit and resets it if failed.
//!
//! Calls are made from the caller side (the shim, blocking, outside the
//! container's forked processes); a connection lives for one operation.

pub mod dbus;

use std::path::Path;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use self::dbus::{Body, Conn, DbusError, Value, MANAGER, PATH};
use super::resources::{cpu_weight, limit, parse_list};
use crate::error::{Error, Result};

/// How long one job may take (qemu TCG is slow).
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long a reply may take before the call is made again on a new
/// connection (a lost call must not hang a shim; see `dbus::Conn::auth`).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPTS: usize = 4;

/// A connection made on first use and remade when a reply does not come.
#[derive(Default)]
struct Session {
    conn: Option<Conn>,
}

impl Session {
    fn call(
        &mut self,
        path: &str,
        iface: &str,
        member: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<std::result::Result<dbus::Reply, DbusError>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self.conn.insert(Conn::connect(REPLY_TIMEOUT)?),
            };
            match conn.call(path, iface, member, signature, body) {
                Err(e) if dbus::is_timeout(&e) && attempt < ATTEMPTS => {
                    log::warn!("systemd D-Bus {member}: no reply in {} s, calling again on a new connection", REPLY_TIMEOUT.as_secs());
                    self.conn = None;
                }
                r => return r,
            }
        }
    }
}

/// True when systemd is the init (`sd_booted()`: `/run/systemd/system` exists).
pub fn booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The unit a systemd-form cgroupsPath names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitName {
    /// The parent slice (`kubepods-besteffort-pod<uid>.slice`).
    pub slice: String,
    /// The container's scope (`cri-containerd-<id>.scope`).
    pub unit: String,
}

/// What systemd should hold of `r`: `(name, value)` unit properties, for
/// `v2` or v1. `create` adds the defaults systemd would otherwise apply on
/// every reload (TasksMax); Update sends only what `r` sets. Values are
/// validated by the cgroupfs plan first; this only converts.
pub fn resource_properties(
    r: Option<&LinuxResources>,
    v2: bool,
    create: bool,
) -> Result<Vec<(&'static str, Value)>> {
    let inf = |v: i64| if v == -1 { u64::MAX } else { v as u64 };
    let mut p: Vec<(&'static str, Value)> = Vec::new();
    let mut tasks = create.then_some(u64::MAX);
    if let Some(mem) = r.and_then(|r| r.memory().as_ref()) {
        let lim = limit("memory.limit", mem.limit())?;
        if let Some(l) = lim {
            p.push((
                if v2 { "MemoryMax" } else { "MemoryLimit" },
                Value::U64(inf(l)),
            ));
        }
        if v2 {
            if let Some(v) = limit("memory.reservation", mem.reservation())? {
                p.push(("MemoryLow", Value::U64(inf(v))));
            }
            // OCI's swap is memory+swap; v2's swap.max is swap alone.
            match (limit("memory.swap", mem.swap())?, lim) {
                (Some(-1), _) | (Some(_), Some(-1)) | (None, Some(-1)) => {
                    p.push(("MemorySwapMax", Value::U64(u64::MAX)))
                }
                (Some(s), Some(l)) => p.push(("MemorySwapMax", Value::U64((s - l).max(0) as u64))),
                _ => {}
            }
        }
    }
    if let Some(cpu) = r.and_then(|r| r.cpu().as_ref()) {
        if let Some(s) = cpu.shares().filter(|s| *s != 0) {
            p.push(if v2 {
                ("CPUWeight", Value::U64(cpu_weight(s)))
            } else {
                ("CPUShares", Value::U64(s))
            });
        }
        let quota = limit("cpu.quota", cpu.quota())?;
        let period = cpu.period().filter(|p| *p != 0);
        if let Some(q) = quota {
            p.push(("CPUQuotaPerSecUSec", Value::U64(quota_per_sec(q, period))));
        }
        if let Some(per) = period {
            p.push(("CPUQuotaPeriodUSec", Value::U64(per)));
        }
        if v2 {
            if let Some(c) = cpu.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
                p.push(("AllowedCPUs", Value::Bytes(bitmask("cpu.cpus", c)?)));
            }
            if let Some(m) = cpu.mems().as_deref().filter(|s| !s.trim().is_empty()) {
                p.push(("AllowedMemoryNodes", Value::Bytes(bitmask("cpu.mems", m)?)));
            }
        }
    }
    if let Some(pids) = r.and_then(|r| r.pids().as_ref()) {
        if let Some(l) = limit("pids.limit", Some(pids.limit()))? {
            tasks = Some(if l > 0 { l as u64 } else { u64::MAX });
        }
    }
    if let Some(t) = tasks {
        p.push(("TasksMax", Value::U64(t)));
    }
    Ok(p)
}

/// v1: the device list as DevicePolicy/DeviceAllow. Without them systemd's
/// default ("auto", no list) writes `devices.allow a` on every reload of a
/// v1 scope, opening every device; so the list tent writes is given to
/// systemd too. A major's wildcard is spelled by its name in
/// `/proc/devices` (`char-pts`), as systemd resolves it; a rule systemd
/// cannot spell (`c *:5`) is refused.
pub fn device_properties(
    spec_rules: &[oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<Vec<(&'static str, Value)>> {
    let (default_allow, exceptions) = super::devices::effective(spec_rules)?;
    if default_allow {
        // Allow-all with exceptions denied cannot be spelled with DeviceAllow.
        if !exceptions.is_empty() {
            return Err(Error::spec(
                "linux.resources.devices",
                "systemd cannot hold an allow-all list with denied exceptions (cgroup v1)",
            ));
        }
        return Ok(vec![("DevicePolicy", Value::Str("auto".into()))]);
    }
    let proc_devices = std::fs::read_to_string("/proc/devices").unwrap_or_default();
    let mut allow = Vec::new();
    for (kind, major, minor, acc) in exceptions {
        let (dir, class) = match kind {
            super::devices::Kind::Char => ("char", "Character devices:"),
            super::devices::Kind::Block => ("block", "Block devices:"),
            super::devices::Kind::All => continue,
        };
        let node = match (major, minor) {
            (Some(ma), Some(mi)) => format!("/dev/{dir}/{ma}:{mi}"),
            (None, None) => format!("{dir}-*"),
            (Some(ma), None) => match device_name(&proc_devices, class, ma) {
                Some(name) => format!("{dir}-{name}"),
                None => continue, // no such driver: nothing to allow
            },
            (None, Some(mi)) => {
                return Err(Error::spec(
                    "linux.resources.devices",
                    format!("{dir} *:{mi}: systemd's DeviceAllow cannot hold a rule for any major (cgroup v1)"),
                ))
            }
        };
        let access: String = [
            (super::devices::ACC_READ, 'r'),
            (super::devices::ACC_WRITE, 'w'),
            (super::devices::ACC_MKNOD, 'm'),
        ]
        .iter()
        .filter(|(bit, _)| acc & bit != 0)
        .map(|(_, c)| *c)
        .collect();
        allow.push((node, access));
    }
    Ok(vec![
        ("DevicePolicy", Value::Str("strict".into())),
        ("DeviceAllow", Value::StrPairs(allow)),
    ])
}

/// The driver name of `major` in `/proc/devices`' section `class`.
fn device_name(proc_devices: &str, class: &str, major: u32) -> Option<String> {
    let mut in_class = false;
    for line in proc_devices.lines() {
        if line.ends_with(':') {
            in_class = line.trim() == class;
            continue;
        }
        let mut it = line.split_whitespace();
        if in_class && it.next().and_then(|m| m.parse::<u32>().ok()) == Some(major) {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// systemd keeps a quota as µs per second and writes `cpu.max` from it: rounded
/// up to whole 10 ms (1 %) steps, so the cgroupfs value tent writes after it is
/// never above what systemd re-applies.
fn quota_per_sec(quota: i64, period: Option<u64>) -> u64 {
    if quota == -1 {
        return u64::MAX;
    }
    let period = period.unwrap_or(100_000).max(1);
    let per_sec = (quota as u64).saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// A cpu or node list (`0-3,5`) as systemd's byte mask (bit n of byte n/8).
fn bitmask(field: &str, list: &str) -> Result<Vec<u8>> {
    let set = parse_list(field, list)?;
    let mut out = vec![0u8; set.last().map_or(0, |m| *m as usize / 8 + 1)];
    for n in set {
        if let Some(byte) = out.get_mut(n as usize / 8) {
            *byte |= 1 << (n % 8);
        }
    }
    Ok(out)
}

fn dbus_err(what: &str, unit: &str, e: DbusError) -> Error {
    Error::Precondition(format!("systemd {what} {unit}: {}: {}", e.name, e.message))
}

/// Creates the scope `name.unit` in `name.slice` holding `pid`, with `props`
/// (from [`resource_properties`]), and waits until systemd reports it active.
pub fn start(name: &UnitName, pid: u32, id: &str, props: Vec<(&'static str, Value)>) -> Result<()> {
    let mut all: Vec<(&str, Value)> = vec![
        ("Description", Value::Str(format!("tent container {id}"))),
        ("Slice", Value::Str(name.slice.clone())),
        ("Delegate", Value::Bool(true)),
        ("PIDs", Value::U32s(vec![pid])),
        // Not ordered after or stopped with basic.target: it lives as long as the container.
        ("DefaultDependencies", Value::Bool(false)),
        ("MemoryAccounting", Value::Bool(true)),
        ("CPUAccounting", Value::Bool(true)),
        ("TasksAccounting", Value::Bool(true)),
    ];
    all.extend(props);
    let mut b = Body::default();
    b.str(&name.unit);
    b.str("fail");
    b.properties(&all);
    b.array(8, |_| {}); // no auxiliary units
    let mut c = Session::default();
    match c.call(
        PATH,
        MANAGER,
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        &b.buf,
    )? {
        Ok(reply) => wait_job(&mut c, &reply.first_str()?, &name.unit)?,
        // A call made again after a lost reply: the first one made it, if
        // the scope holds our process (checked below).
        Err(e) if e.name == "org.freedesktop.systemd1.UnitExists" => {}
        Err(e) => return Err(dbus_err("StartTransientUnit", &name.unit, e)),
    }
    let state = active_state(&mut c, &name.unit)?;
    if state != "active" {
        let _ = stop(&name.unit);
        return Err(Error::Precondition(format!(
            "systemd scope {}: {state} after its start job, not active",
            name.unit
        )));
    }
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if !cgroup
        .lines()
        .any(|l| l.ends_with(&format!("/{}", name.unit)))
    {
        return Err(Error::Precondition(format!(
            "systemd scope {} exists but does not hold process {pid} (a unit left from another container?)",
            name.unit
        )));
    }
    Ok(())
}

/// Changes the running unit's properties (Update).
pub fn set_properties(unit: &str, props: &[(&'static str, Value)]) -> Result<()> {
    if props.is_empty() {
        return Ok(());
    }
    let mut b = Body::default();
    b.str(unit);
    b.bool(true); // runtime only: nothing is written under /etc
    b.properties(props);
    Session::default()
        .call(PATH, MANAGER, "SetUnitProperties", "sba(sv)", &b.buf)?
        .map_err(|e| dbus_err("SetUnitProperties", unit, e))?;
    Ok(())
}

/// Stops the unit (an already gone one is fine) and resets it if it failed,
/// so nothing of it stays loaded.
pub fn stop(unit: &str) -> Result<()> {
    let mut c = Session::default();
    // A scope whose processes all exited is stopped and unloaded by systemd
    // itself: nothing to stop.
    let mut b = Body::default();
    b.str(unit);
    match c.call(PATH, MANAGER, "GetUnit", "s", &b.buf)? {
        Ok(_) => {}
        Err(e) if e.name == "org.freedesktop.systemd1.NoSuchUnit" => return Ok(()),
        Err(e) => return Err(dbus_err("GetUnit", unit, e)),
    }
    let mut b = Body::default();
    b.str(unit);
    b.str("replace");
    match c.call(PATH, MANAGER, "StopUnit", "ss", &b.buf)? {
        Ok(reply) => wait_job(&mut c, &reply.first_str()?, unit)?,
        Err(e) if e.name == "org.freedesktop.systemd1.NoSuchUnit" => {}
        Err(e) => return Err(dbus_err("StopUnit", unit, e)),
    }
    let mut b = Body::default();
    b.str(unit);
    match c.call(PATH, MANAGER, "ResetFailedUnit", "s", &b.buf)? {
        Ok(_) => Ok(()),
        Err(e)
            if e.name == "org.freedesktop.systemd1.NoSuchUnit"
                || e.name == "org.freedesktop.systemd1.UnitNotFailed"
                || e.name == "org.freedesktop.DBus.Error.InvalidArgs" =>
        {
            Ok(())
        }
        Err(e) => Err(dbus_err("ResetFailedUnit", unit, e)),
    }
}

/// Waits until systemd has finished (and so dropped) the job object.
fn wait_job(c: &mut Session, job: &str, unit: &str) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let mut delay = Duration::from_micros(500);
    loop {
        let mut b = Body::default();
        b.str("org.freedesktop.systemd1.Job");
        b.str("State");
        match c.call(job, "org.freedesktop.DBus.Properties", "Get", "ss", &b.buf)? {
            Ok(_) => {}
            Err(e) if e.name == "org.freedesktop.DBus.Error.UnknownObject" => return Ok(()),
            Err(e) => return Err(dbus_err("job of", unit, e)),
        }
        if Instant::now() > deadline {
            return Err(Error::Precondition(format!(
                "systemd job {job} for {unit}: not finished after {} s",
                TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// The unit's ActiveState (`active`, `failed`, …).
fn active_state(c: &mut Session, unit: &str) -> Result<String> {
    let mut b = Body::default();
    b.str(unit);
    let path = c
        .call(PATH, MANAGER, "GetUnit", "s", &b.buf)?
        .map_err(|e| dbus_err("GetUnit", unit, e))?
        .first_str()?;
    let mut b = Body::default();
    b.str("org.freedesktop.systemd1.Unit");
    b.str("ActiveState");
    c.call(
        &path,
        "org.freedesktop.DBus.Properties",
        "Get",
        "ss",
        &b.buf,
    )?
    .map_err(|e| dbus_err("ActiveState of", unit, e))?
    .variant_text()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).expect("resources")
    }

    fn names(p: &[(&'static str, Value)]) -> Vec<String> {
        p.iter().map(|(n, v)| format!("{n}={v:?}")).collect()
    }

    #[test]
    fn properties_v2() {
        let r = res(serde_json::json!({
            "memory": {"limit": 268435456, "swap": 536870912, "reservation": 1048576},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,9"},
            "pids": {"limit": 100}
        }));
        let p = resource_properties(Some(&r), true, true).expect("props");
        assert_eq!(
            names(&p),
            [
                "MemoryMax=U64(268435456)",
                "MemoryLow=U64(1048576)",
                "MemorySwapMax=U64(268435456)",
                "CPUWeight=U64(39)",
                "CPUQuotaPerSecUSec=U64(500000)",
                "CPUQuotaPeriodUSec=U64(100000)",
                "AllowedCPUs=Bytes([3, 2])",
                "TasksMax=U64(100)",
            ]
        );
    }

    #[test]
    fn properties_v1_and_defaults() {
        let r = res(serde_json::json!({
            "memory": {"limit": -1},
            "cpu": {"shares": 512, "quota": 12345},
        }));
        let p = resource_properties(Some(&r), false, true).expect("props");
        assert_eq!(
            names(&p),
            [
                "MemoryLimit=U64(18446744073709551615)",
                "CPUShares=U64(512)",
                "CPUQuotaPerSecUSec=U64(130000)",
                "TasksMax=U64(18446744073709551615)",
            ]
        );
        // Update sends only what is set; nothing set is nothing sent.
        assert!(resource_properties(None, true, false)
            .expect("props")
            .is_empty());
        assert!(resource_properties(
            Some(&res(serde_json::json!({"pids": {"limit": -5}}))),
            true,
            false
        )
        .is_err());
    }

    #[test]
    fn devices_v1() {
        let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_value(
            serde_json::json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"}]),
        )
        .expect("rules");
        let p = device_properties(&rules).expect("props");
        let Value::StrPairs(allow) = &p[1].1 else {
            panic!("DeviceAllow: {p:?}")
        };
        assert!(
            allow.contains(&("/dev/block/8:0".into(), "r".into())),
            "{allow:?}"
        );
        assert!(
            allow.contains(&("/dev/char/1:3".into(), "rwm".into())),
            "{allow:?}"
        );
        assert!(allow.contains(&("char-*".into(), "m".into())), "{allow:?}");
        assert_eq!(p[0].1, Value::Str("strict".into()));
        let text = "Character devices:\n  1 mem\n136 pts\n\nBlock devices:\n  8 sd\n";
        assert_eq!(
            device_name(text, "Character devices:", 136).as_deref(),
            Some("pts")
        );
        assert_eq!(device_name(text, "Block devices:", 136), None);
        let any_major: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_value(
            serde_json::json!([{"allow": true, "type": "c", "minor": 5, "access": "r"}]),
        )
        .expect("rules");
        assert!(device_properties(&any_major).is_err());
    }
}
