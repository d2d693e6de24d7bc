//! What v1's device controller makes of a rule list, replayed in memory
//! (`security/device_cgroup.c`), so the v2 program allows exactly what v1
//! would. v1 keeps a default (allow or deny everything) and a list of
//! exceptions to it:
//!
//! - "a" sets the default and clears the exceptions (allow-all or deny-all);
//! - a rule whose action is the opposite of the default adds an exception
//!   (merging access into one for the same type and numbers);
//! - a rule with the default's own action removes its access from the
//!   exception with exactly the same type and numbers, and nothing else: it
//!   does not punch a hole into a wildcard exception (runc errors there;
//!   tent keeps v1's meaning, since v1 is what it emulates).
//!
//! A device access is then decided as the kernel does: with a deny default,
//! allowed if one exception covers the type, the numbers and *every*
//! requested access bit; with an allow default, denied if one exception
//! covers the type and numbers and *any* requested bit.

use std::collections::BTreeMap;

use super::{Kind, Rule};

/// An exception's key: type (block or char) and numbers (`None` = `*`).
pub type Key = (Kind, Option<u32>, Option<u32>);

/// The controller's state after a rule list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// What happens to a device no exception matches.
    pub default_allow: bool,
    /// Exceptions to the default with their `ACC_*` bits (never 0); ordered,
    /// so a rule list always compiles to the same program.
    pub exceptions: BTreeMap<Key, u8>,
}

/// Replays `rules` on a cgroup that starts as a new one under an allow-all
/// parent (the list normally starts with [`super::DENY_ALL`] anyway).
pub fn replay(rules: &[Rule]) -> State {
    let mut s = State {
        default_allow: true,
        exceptions: BTreeMap::new(),
    };
    for r in rules {
        if r.kind == Kind::All {
            s.default_allow = r.allow;
            s.exceptions.clear();
            continue;
        }
        let key = (r.kind, r.major, r.minor);
        if r.allow != s.default_allow {
            *s.exceptions.entry(key).or_insert(0) |= r.access;
        } else if let Some(acc) = s.exceptions.get_mut(&key) {
            *acc &= !r.access;
            if *acc == 0 {
                s.exceptions.remove(&key);
            }
        }
    }
    s.exceptions.retain(|_, acc| *acc != 0);
    s
}

#[cfg(test)]
mod tests {
    use super::super::{ACC_MKNOD, ACC_READ, ACC_RWM, ACC_WRITE, DENY_ALL};
    use super::*;

    fn rule(allow: bool, kind: Kind, major: Option<u32>, minor: Option<u32>, access: u8) -> Rule {
        Rule {
            allow,
            kind,
            major,
            minor,
            access,
        }
    }

    #[test]
    fn reset_merge_remove() {
        let c13 = (Kind::Char, Some(1), Some(3));
        let s = replay(&[
            DENY_ALL,
            rule(true, Kind::Char, Some(1), Some(3), ACC_READ),
            rule(true, Kind::Char, Some(1), Some(3), ACC_WRITE),
            rule(true, Kind::Char, Some(1), None, ACC_MKNOD),
            rule(false, Kind::Char, Some(1), None, ACC_MKNOD),
            // No hole in a wildcard: removes nothing.
            rule(false, Kind::Block, Some(8), Some(0), ACC_RWM),
        ]);
        assert!(!s.default_allow);
        assert_eq!(
            s.exceptions.into_iter().collect::<Vec<_>>(),
            [(c13, ACC_READ | ACC_WRITE)]
        );
        let s = replay(&[
            DENY_ALL,
            rule(true, Kind::Char, Some(1), Some(3), ACC_RWM),
            rule(true, Kind::All, None, None, ACC_RWM),
            rule(false, Kind::Block, None, Some(2), ACC_READ),
        ]);
        assert!(s.default_allow);
        assert_eq!(
            s.exceptions.into_iter().collect::<Vec<_>>(),
            [((Kind::Block, None, Some(2)), ACC_READ)]
        );
    }

    /// The kernel itself as the model: random lists written to a real v1
    /// devices cgroup give the `devices.list` [`replay`] predicts (allow-list
    /// mode; a deny-list cgroup lists only `a *:* rwm`). Root on a v1 host only.
    #[test]
    fn replay_matches_the_v1_kernel() {
        use super::super::program::tests::{random_rule, Rng};
        let root = std::path::Path::new("/sys/fs/cgroup/devices");
        if !nix::unistd::geteuid().is_root() || !root.join("devices.list").exists() {
            eprintln!("skipped: needs root and a v1 devices hierarchy");
            return;
        }
        let dir = root.join(format!("tent-unit-emulate-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let mut rng = Rng(0x0005_eed0_fde7_1ce5);
        let mut failure = None;
        for case in 0..300 {
            let mut list = vec![DENY_ALL];
            list.extend((0..rng.below(14)).map(|_| random_rule(&mut rng)));
            for r in &list {
                let file = dir.join(if r.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                });
                if let Err(e) = std::fs::write(&file, r.line()) {
                    failure = Some(format!(
                        "case {case}: write {} {}: {e}",
                        file.display(),
                        r.line()
                    ));
                }
            }
            let got = std::fs::read_to_string(dir.join("devices.list")).unwrap_or_default();
            let mut got: Vec<&str> = got.lines().collect();
            got.sort_unstable();
            let s = replay(&list);
            let mut want: Vec<String> = if s.default_allow {
                vec!["a *:* rwm".to_string()]
            } else {
                s.exceptions
                    .iter()
                    .map(|(&(kind, major, minor), &access)| {
                        Rule {
                            allow: true,
                            kind,
                            major,
                            minor,
                            access,
                        }
                        .line()
                    })
                    .collect()
            };
            want.sort_unstable();
            if got != want {
                let lines: Vec<(bool, String)> = list.iter().map(|r| (r.allow, r.line())).collect();
                failure = Some(format!(
                    "case {case}: kernel {got:?}, replay {want:?}, rules {lines:?}"
                ));
            }
            if failure.is_some() {
                break;
            }
        }
        let _ = std::fs::remove_dir(&dir);
        if let Some(f) = failure {
            panic!("{f}");
        }
    }
}
