//! `linux.resources.blockIO` → cgroup writes: weights (v1 `blkio`, v2 `io`, BFQ's files where
//! the scheduler is BFQ, as runc picks them) and the four throttles. What this host's kernel
//! cannot apply (no weight file for the scheduler, a leaf weight on v2) is refused naming the
//! field, never dropped.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};

use super::resources::{invalid, Write};
use super::CgroupManager;
use crate::error::Result;

/// OCI's (and v1 blkio's) weight range.
const WEIGHTS: std::ops::RangeInclusive<u16> = 10..=1000;

/// v2 `io.weight` (1..=10000) for a blkio weight (10..=1000), as runc converts.
pub fn io_weight(blkio: u16) -> u64 {
    1 + (u64::from(blkio.clamp(10, 1000)) - 10) * 9999 / 990
}

/// The writes for `b`, appended to `w`.
pub fn plan(cg: &CgroupManager, b: &LinuxBlockIo, w: &mut Vec<Write>) -> Result<()> {
    let v2 = cg.v2();
    let dir = cg.dir_for(if v2 { "io" } else { "blkio" })?;
    let weight_file = WeightFile::of(&dir, v2);
    if let Some(weight) = b.weight() {
        check_weight("blockIO.weight", weight)?;
        let file = weight_file.ok_or_else(|| no_weight_file("blockIO.weight", &dir, v2))?;
        let path = dir.join(file.name);
        // v2's files list `default N` and per-device lines together.
        w.push(if v2 {
            let value = format!("default {}", file.value(weight));
            Write::keyed(path, value, "default", "default 100".into())
        } else {
            Write::plain(path, weight.to_string())
        });
    }
    if let Some(leaf) = b.leaf_weight() {
        w.push(leaf_weight(&dir, v2, "blockIO.leafWeight", leaf, None)?);
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        let field = format!("blockIO.weightDevice[{i}]");
        let dev = device(&field, d.major(), d.minor())?;
        if let Some(weight) = d.weight() {
            check_weight(&format!("{field}.weight"), weight)?;
            let file = weight_file.ok_or_else(|| no_weight_file(&field, &dir, v2))?;
            w.push(Write::keyed(
                dir.join(file.device_name()),
                format!("{dev} {}", file.value(weight)),
                &dev,
                file.reset(&dev),
            ));
        }
        if let Some(leaf) = d.leaf_weight() {
            w.push(leaf_weight(
                &dir,
                v2,
                &format!("{field}.leafWeight"),
                leaf,
                Some(&dev),
            )?);
        }
    }
    let throttles: [(&str, &Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    for (name, list, v1_file, v2_key) in throttles {
        for (i, t) in list.iter().flatten().enumerate() {
            let field = format!("blockIO.{name}[{i}]");
            let dev = device(&field, t.major(), t.minor())?;
            let (file, value, reset) = if v2 {
                // 0 is OCI's "no limit", as on v1.
                let rate = match t.rate() {
                    0 => "max".to_string(),
                    r => r.to_string(),
                };
                (
                    "io.max",
                    format!("{dev} {v2_key}={rate}"),
                    format!("{dev} rbps=max wbps=max riops=max wiops=max"),
                )
            } else {
                (v1_file, format!("{dev} {}", t.rate()), format!("{dev} 0"))
            };
            let path = dir.join(file);
            if !path.exists() {
                return Err(invalid(
                    &field,
                    format!(
                        "{} does not exist: this kernel has no block I/O throttling",
                        path.display()
                    ),
                ));
            }
            w.push(Write::keyed(path, value, &dev, reset));
        }
    }
    Ok(())
}

/// Which weight file the scheduler has: BFQ's where it exists, else the generic one.
#[derive(Clone, Copy)]
struct WeightFile {
    name: &'static str,
    /// v2 `io.weight` takes 1..=10000 and `MAJ:MIN default` to reset a device.
    io_cost: bool,
}

impl WeightFile {
    fn of(dir: &Path, v2: bool) -> Option<WeightFile> {
        let candidates: [(&'static str, bool); 2] = if v2 {
            [("io.bfq.weight", false), ("io.weight", true)]
        } else {
            [("blkio.bfq.weight", false), ("blkio.weight", false)]
        };
        candidates
            .into_iter()
            .find(|(name, _)| dir.join(name).exists())
            .map(|(name, io_cost)| WeightFile { name, io_cost })
    }
    /// The per-device file is the weight file's sibling on v1 (`…weight_device`), the same
    /// file with a `MAJ:MIN` prefix on v2.
    fn device_name(self) -> &'static str {
        match self.name {
            "blkio.bfq.weight" => "blkio.bfq.weight_device",
            "blkio.weight" => "blkio.weight_device",
            other => other,
        }
    }
    fn value(self, weight: u16) -> String {
        if self.io_cost {
            io_weight(weight).to_string()
        } else {
            weight.to_string()
        }
    }
    fn reset(self, dev: &str) -> String {
        if self.io_cost {
            format!("{dev} default")
        } else {
            format!("{dev} 0")
        }
    }
}

fn check_weight(field: &str, weight: u16) -> Result<()> {
    if WEIGHTS.contains(&weight) {
        Ok(())
    } else {
        Err(invalid(field, format!("{weight} is outside 10..=1000")))
    }
}

fn no_weight_file(field: &str, dir: &Path, v2: bool) -> crate::error::Error {
    let files = if v2 {
        "io.bfq.weight nor io.weight (the io controller with BFQ or io.cost)"
    } else {
        "blkio.bfq.weight nor blkio.weight (a proportional I/O scheduler)"
    };
    invalid(
        field,
        format!(
            "{} has neither {files}: weights cannot be applied",
            dir.display()
        ),
    )
}

/// Leaf weights exist only in v1's CFQ (`blkio.leaf_weight[_device]`, gone with CFQ).
fn leaf_weight(dir: &Path, v2: bool, field: &str, leaf: u16, dev: Option<&str>) -> Result<Write> {
    check_weight(field, leaf)?;
    let name = if dev.is_some() {
        "blkio.leaf_weight_device"
    } else {
        "blkio.leaf_weight"
    };
    let path = dir.join(name);
    if v2 || !path.exists() {
        return Err(invalid(
            field,
            "leaf weights need CFQ's blkio.leaf_weight files, which this host does not have",
        ));
    }
    Ok(match dev {
        Some(dev) => Write::keyed(path, format!("{dev} {leaf}"), dev, format!("{dev} 0")),
        None => Write::plain(path, leaf.to_string()),
    })
}

/// `MAJ:MIN` of a device, checked to be a valid device number (12-bit major, 20-bit minor).
fn device(field: &str, major: i64, minor: i64) -> Result<String> {
    if !(0..1 << 12).contains(&major) || !(0..1 << 20).contains(&minor) {
        return Err(invalid(
            field,
            format!("{major}:{minor} is not a device number"),
        ));
    }
    Ok(format!("{major}:{minor}"))
}
