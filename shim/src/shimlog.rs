//! The shim server's own log: lines to the FIFO `log` in the bundle (its cwd), which
//! containerd reads and copies into its own log. logfmt lines as containerd-shim's
//! logger wrote them (`time="…" level=info msg="…"`), levels from `RUST_LOG`
//! (default info), at least debug with `-debug`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

use crate::error::{Error, Result};

/// The FIFO containerd creates in the bundle for the shim's log.
const LOG_FIFO: &str = "log";

struct FifoLogger(Mutex<File>);

impl Log for FifoLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "time=\"{}\" level={} msg=\"{}\"\n",
            rfc3339(SystemTime::now()),
            record.level().as_str().to_lowercase(),
            record.args()
        );
        // One write per line; a reader that went away (containerd restarting) only
        // costs this line (EPIPE: the server ignores SIGPIPE).
        let mut file = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let _ = file.write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Opens the log FIFO (blocks until containerd's reader is there, as it always is
/// for a server it started) and installs the logger.
pub fn init(debug: bool) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(LOG_FIFO)
        .map_err(|e| Error::io(format!("open log FIFO {LOG_FIFO}"), e))?;
    log::set_max_level(level(std::env::var("RUST_LOG").ok().as_deref(), debug));
    log::set_boxed_logger(Box::new(FifoLogger(Mutex::new(file))))
        .map_err(|e| Error::Internal(format!("install logger: {e}")))
}

/// `RUST_LOG` (a level name; info if unset or not a level), raised to debug by `-debug`.
fn level(rust_log: Option<&str>, debug: bool) -> LevelFilter {
    let level = rust_log
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info);
    if debug {
        level.max(LevelFilter::Debug)
    } else {
        level
    }
}

/// `t` as RFC 3339 in UTC with nanoseconds, e.g. `2026-12-01T19:42:06.123456789Z`.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |secs: u64, nanos: u32| rfc3339(UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(951_825_600, 5), "2000-02-29T12:00:00.000000005Z");
        assert_eq!(
            at(1_796_154_126, 123_456_789),
            "2026-12-01T19:42:06.123456789Z"
        );
        assert_eq!(at(4_107_542_399, 0), "2100-02-28T23:59:59.000000000Z");
    }

    #[test]
    fn debug_raises_the_level_and_rust_log_sets_it() {
        assert_eq!(level(None, false), LevelFilter::Info);
        assert_eq!(level(None, true), LevelFilter::Debug);
        assert_eq!(level(Some("warn"), false), LevelFilter::Warn);
        assert_eq!(level(Some("trace"), true), LevelFilter::Trace);
        assert_eq!(level(Some("off"), true), LevelFilter::Debug);
        assert_eq!(level(Some("bogus"), false), LevelFilter::Info);
    }
}
