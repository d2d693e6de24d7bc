//! The tasks this shim serves, by container id, and the routing of reaped exits to
//! them by pid.
//!
//! An exit can be reaped before its pid is known (a container init killed from
//! outside during create, an exec that ends before `exec` returned): such exits are
//! parked and claimed when the pid is registered. Parking and registering both hold
//! the task lock, so an exit is either found or claimed, never lost in between.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::process::{lock, Process};
use crate::task::{ProcessRef, Task};

/// How many exits of unknown pids to remember (exits that race a process's registration).
const UNCLAIMED_EXITS: usize = 256;

#[derive(Default)]
pub struct Registry {
    tasks: Mutex<HashMap<String, Arc<Task>>>,
    unclaimed: Mutex<VecDeque<(i32, u32)>>,
}

impl Registry {
    pub fn get(&self, id: &str) -> Result<Arc<Task>> {
        lock(&self.tasks)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::ContainerNotFound(id.to_string()))
    }

    pub fn contains(&self, id: &str) -> bool {
        lock(&self.tasks).contains_key(id)
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.tasks).is_empty()
    }

    pub fn remove(&self, id: &str) {
        lock(&self.tasks).remove(id);
    }

    /// Adds a created task; returns its init's exit if that was reaped already.
    pub fn insert(&self, task: Arc<Task>) -> Result<Option<u32>> {
        let mut tasks = lock(&self.tasks);
        if tasks.contains_key(&task.id) {
            return Err(Error::ContainerExists(task.id.clone()));
        }
        let pid = task.init.pid();
        tasks.insert(task.id.clone(), task);
        Ok(self.claim(pid))
    }

    /// Sets a started exec's pid; returns its exit if that was reaped already.
    pub fn register_pid(&self, process: &Process, pid: i32) -> Option<u32> {
        let _tasks = lock(&self.tasks);
        process.set_pid(pid);
        self.claim(pid)
    }

    /// The process a reaped `pid` belongs to; unknown pids are parked for
    /// [`Registry::insert`] and [`Registry::register_pid`].
    pub fn route(&self, pid: i32, status: u32) -> Option<(Arc<Task>, ProcessRef)> {
        let tasks = lock(&self.tasks);
        let found = tasks.values().find_map(|t| {
            if t.init.pid() == pid {
                return Some((t.clone(), ProcessRef::Init));
            }
            lock(&t.execs)
                .values()
                .find(|e| e.process.pid() == pid)
                .map(|e| (t.clone(), ProcessRef::Exec(e.clone())))
        });
        if found.is_none() {
            let mut unclaimed = lock(&self.unclaimed);
            if unclaimed.len() == UNCLAIMED_EXITS {
                unclaimed.pop_front();
            }
            unclaimed.push_back((pid, status));
        }
        found
    }

    fn claim(&self, pid: i32) -> Option<u32> {
        let mut unclaimed = lock(&self.unclaimed);
        let pos = unclaimed.iter().position(|(p, _)| *p == pid)?;
        unclaimed.remove(pos).map(|(_, status)| status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_exits_are_parked_once_and_the_oldest_dropped_first() {
        let registry = Registry::default();
        for pid in 1..=UNCLAIMED_EXITS as i32 + 1 {
            assert!(registry.route(pid, pid as u32).is_none());
        }
        assert_eq!(registry.claim(1), None, "the oldest made room");
        assert_eq!(registry.claim(2), Some(2));
        assert_eq!(registry.claim(2), None, "claimed once");
        let last = UNCLAIMED_EXITS as i32 + 1;
        assert_eq!(registry.claim(last), Some(last as u32));
    }
}
