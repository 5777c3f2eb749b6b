//! Native processes that outlive the CLI, recognised by pid *and* start time, stopped by process group.
//!
//! Each instance is started as the leader of a new process group (so a Ctrl-C in the terminal that ran
//! `galley stack up` does not reach it, and a server's own children — RabbitMQ's Erlang VM, nginx's
//! workers — are signalled with it), with stdin closed and stdout/stderr appended to its log file.
//! Liveness is read from `/proc/PID/stat`: the pid must carry the recorded start time (field 22), and a
//! process in state `Z` (exited, not reaped: these machines have no init that reaps orphans) is dead.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rustix::process::{Pid, Signal};

use crate::state::Record;

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 5: the process group.
    pub group: i32,
    /// Field 22: clock ticks after boot when it started.
    pub start_ticks: u64,
}

impl ProcStat {
    pub fn read(pid: i32) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Parses a `stat` line. The command name (field 2) is in parentheses and may itself hold spaces
    /// and parentheses, so the fields are counted from the last `)`.
    pub fn parse(line: &str) -> Option<Self> {
        let after_name = &line[line.rfind(')')? + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // fields[0] is field 3 of the full line.
        let state = fields.first()?.chars().next()?;
        let group = fields.get(5 - 3)?.parse().ok()?;
        let start_ticks = fields.get(22 - 3)?.parse().ok()?;
        Some(Self { state, group, start_ticks })
    }

    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Whether the process of `record` is still the one we started and has not exited.
pub fn is_running(record: &Record) -> bool {
    ProcStat::read(record.pid).is_some_and(|stat| stat.start_ticks == record.start_ticks && !stat.is_dead())
}

/// Live members of process group `group` started no earlier than `since_ticks` (older processes in
/// a group of that number belong to someone else: the group id was reused).
pub fn live_group_members(group: i32, since_ticks: u64) -> Vec<i32> {
    // Group 0 holds kernel threads, 1 is init's: never ours.
    if group <= 1 {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            ProcStat::read(*pid)
                .is_some_and(|stat| stat.group == group && !stat.is_dead() && stat.start_ticks >= since_ticks)
        })
        .collect()
}

/// A command to start detached.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
}

/// Starts `launch` as a new process group with its output appended to `log`; returns its record.
pub fn spawn_detached(launch: &Launch, log: &Path, restarts: u32) -> anyhow::Result<Record> {
    let output = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(&launch.program)
        .args(&launch.args)
        .envs(launch.env.iter().map(|(key, value)| (key, value)))
        .current_dir(&launch.working_dir)
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", launch.program.display()))?;
    let pid = i32::try_from(child.id()).context("pid out of range")?;
    // The child is not waited for: it must outlive this process. Its start time identifies it later.
    drop(child);
    let start_ticks = ProcStat::read(pid).map(|stat| stat.start_ticks).unwrap_or_default();
    Ok(Record { pid, start_ticks, started_at: unix_now(), restarts })
}

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing of it was running.
    NotRunning,
    /// It exited after SIGTERM.
    Gracefully,
    /// It was still running after the grace period and got SIGKILL.
    Killed,
}

/// SIGTERM to the instance's process group, then SIGKILL once `grace` has passed.
pub fn stop(record: &Record, grace: Duration) -> Stopped {
    let alive = || is_running(record) || !live_group_members(record.pid, record.start_ticks).is_empty();
    if !alive() {
        return Stopped::NotRunning;
    }
    signal_group(record.pid, Signal::TERM);
    if wait_until(grace, || !alive()) {
        return Stopped::Gracefully;
    }
    signal_group(record.pid, Signal::KILL);
    wait_until(Duration::from_secs(5), || !alive());
    Stopped::Killed
}

/// SIGHUP to the process alone (nginx: reload the configuration).
pub fn hang_up(record: &Record) -> anyhow::Result<()> {
    let pid = Pid::from_raw(record.pid).context("invalid pid")?;
    rustix::process::kill_process(pid, Signal::HUP).context("sending SIGHUP")
}

fn signal_group(group: i32, signal: Signal) {
    if group <= 1 {
        return;
    }
    if let Some(group) = Pid::from_raw(group) {
        // ESRCH (the group is gone already) is what we want anyway.
        let _ = rustix::process::kill_process_group(group, signal);
    }
}

/// Polls `done` every 100 ms until it holds or `limit` passes; whether it held.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|since| since.as_secs()).unwrap_or_default()
}

/// Whether the CLI runs as root (then nginx's workers run as root too, to reach the state directory).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The last `lines` lines of a log file (for error messages and `logs`).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_from_the_last_parenthesis() {
        let line = "4242 (bad) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = ProcStat::parse(line).expect("parsed");
        assert_eq!(stat, ProcStat { state: 'S', group: 4242, start_ticks: 987_654 });
        assert!(!stat.is_dead());
        let zombie = line.replace(") S ", ") Z ");
        assert!(ProcStat::parse(&zombie).expect("parsed").is_dead());
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn our_own_process_is_running_and_a_wrong_start_time_is_not_ours() {
        let pid = i32::try_from(std::process::id()).expect("pid");
        let stat = ProcStat::read(pid).expect("own stat");
        let ours = Record { pid, start_ticks: stat.start_ticks, started_at: 0, restarts: 0 };
        assert!(is_running(&ours));
        assert!(!is_running(&Record { start_ticks: stat.start_ticks + 1, ..ours }), "a reused pid");
    }

    #[test]
    fn a_detached_process_is_stopped_with_its_group_and_then_counts_as_dead() {
        let dir = tempfile::tempdir().expect("temp dir");
        let launch = Launch {
            program: PathBuf::from("/bin/sh"),
            // A child in the same group, as RabbitMQ's script has its VM.
            args: vec!["-c".into(), "sleep 60 & echo started; wait".into()],
            env: Vec::new(),
            working_dir: dir.path().to_path_buf(),
        };
        let log = dir.path().join("sh.log");
        let record = spawn_detached(&launch, &log, 0).expect("spawned");
        assert!(is_running(&record));
        assert!(wait_until(Duration::from_secs(10), || live_group_members(record.pid, record.start_ticks)
            .len()
            == 2));
        assert_eq!(stop(&record, Duration::from_secs(10)), Stopped::Gracefully);
        assert!(!is_running(&record), "a stopped (possibly unreaped) process is dead");
        assert!(live_group_members(record.pid, record.start_ticks).is_empty(), "the whole group is gone");
        assert_eq!(stop(&record, Duration::from_secs(1)), Stopped::NotRunning);
        assert!(tail(&log, 5).contains("started"));
    }
}
