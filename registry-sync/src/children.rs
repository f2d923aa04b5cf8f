//! The processes registry-sync starts (`wasmtime serve` instances and bakes), recorded in the
//! state dir so that a restart after a `kill -9` stops the ones the killed process left behind.
//! A SIGKILL runs no destructor, so `kill_on_drop` cannot help then: an orphaned instance would
//! keep its port and memory, and an orphaned bake would keep writing into a staging dir.
//!
//! One file per child, `pids/<pid>`, holding the boot it ran in (`/proc/sys/kernel/random/
//! boot_id`), its start time (field 22 of `/proc/<pid>/stat`, ticks since that boot) and whether
//! it leads its own process group. A restart kills a recorded pid only if both still match, so
//! a pid the kernel reused, in this boot or after a reboot (where start times begin again), is
//! never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PIDS: &str = "pids";

/// Where children are recorded; [`Children::none`] records nothing (`registry-sync once`).
#[derive(Debug, Clone)]
pub struct Children {
    dir: Option<PathBuf>,
}

/// How a recorded child is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One process (`wasmtime serve`).
    Process,
    /// A process group led by the child (a bake's `wasmtime wizer`).
    Group,
}

/// A bake's `wasmtime wizer` is recorded while it runs, as the group it leads.
impl edge_classifier_bake::Watch for Children {
    fn started(&self, pid: u32) {
        self.record(pid, Kind::Group);
    }

    fn ended(&self, pid: u32) {
        self.forget(pid);
    }
}

impl Children {
    /// Records under `state_dir/pids/` (created).
    pub fn in_state_dir(state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join(PIDS);
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir: Some(dir) })
    }

    /// Records nothing.
    pub fn none() -> Self {
        Self { dir: None }
    }

    /// Records a child that was just spawned. Best effort: a child that cannot be recorded
    /// still runs, it just cannot be cleaned up after a `kill -9`.
    pub fn record(&self, pid: u32, kind: Kind) {
        let (Some(dir), Some(boot), Some(start)) = (&self.dir, boot_id(), start_time(pid)) else {
            return;
        };
        let kind = match kind {
            Kind::Process => "process",
            Kind::Group => "group",
        };
        let tmp = dir.join(format!(".{pid}.tmp"));
        // Written then renamed: a restart never reads half a record.
        if std::fs::write(&tmp, format!("{boot} {start} {kind}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join(pid.to_string()));
        }
    }

    /// Forgets a child that was stopped (or exited).
    pub fn forget(&self, pid: u32) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(dir.join(pid.to_string()));
        }
    }

    /// The pids recorded now (tests look at them).
    pub fn recorded(&self) -> Vec<u32> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        pids.sort_unstable();
        pids
    }

    /// Kills every recorded child that is still the process that was recorded, and forgets
    /// them all; returns the pids killed. Run at start-up, before anything new is spawned.
    pub fn reap_orphans(&self) -> Vec<u32> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut killed = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return killed;
        };
        let boot = boot_id();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let (Ok(pid), Ok(text)) = (name.parse::<u32>(), std::fs::read_to_string(&path)) {
                let mut fields = text.split_whitespace();
                let (recorded_boot, recorded_start, kind) = (fields.next(), fields.next(), fields.next());
                let same_boot = boot.is_some() && recorded_boot == boot.as_deref();
                if same_boot && recorded_start.is_some() && start_time(pid).as_deref() == recorded_start {
                    let target = if kind == Some("group") { format!("-{pid}") } else { pid.to_string() };
                    let status = Command::new("kill")
                        .args(["-KILL", "--", &target])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                    if status.is_ok_and(|s| s.success()) {
                        killed.push(pid);
                    }
                }
            }
            let _ = std::fs::remove_file(&path);
        }
        killed
    }
}

/// This boot's id (Linux), which changes on every reboot.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The start time of `pid` in clock ticks since boot, if it runs (Linux `/proc`).
pub fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after it; field 22 (starttime) is the 20th.
    let start = after.split_whitespace().nth(19)?;
    // A zombie (state `Z`) is dead already.
    (after.split_whitespace().next()? != "Z").then(|| start.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_child_is_killed_and_a_reused_pid_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        let children = Children::in_state_dir(dir.path()).expect("children");
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        children.record(child.id(), Kind::Process);
        // A record whose start time does not match: the pid was reused by someone else.
        let me = std::process::id();
        let boot = boot_id().expect("boot id");
        std::fs::write(dir.path().join(PIDS).join(me.to_string()), format!("{boot} 1 process\n")).expect("write");
        // A record whose start time matches, from another boot: a reused pid after a reboot.
        let mut other = Command::new("sleep").arg("30").spawn().expect("sleep");
        let start = start_time(other.id()).expect("start");
        let record = format!("00000000-0000-0000-0000-000000000000 {start} process\n");
        std::fs::write(dir.path().join(PIDS).join(other.id().to_string()), record).expect("write");
        assert_eq!(children.recorded().len(), 3);
        assert_eq!(children.reap_orphans(), vec![child.id()]);
        assert!(!child.wait().expect("wait").success(), "the recorded child was not killed");
        assert!(children.recorded().is_empty(), "records are forgotten after a reap");
        assert!(other.try_wait().expect("try_wait").is_none(), "a process from a record of another boot was killed");
        other.kill().expect("kill");
        let _ = other.wait();
    }
}
