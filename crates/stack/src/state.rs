//! The state directory: everything `galley stack` creates lives in it, so `prune` is one removal.
//!
//! ```text
//! STATE/ca.pem ca-key.pem            the local CA (trust ca.pem in clients)
//!       tls/localhost.pem, -key.pem  the certificate nginx serves (localhost, 127.0.0.1)
//!       cookie.key                   the services' shared cookie key (base64), stored in OpenBao's KV
//!       secrets/                     0700: Redis's admin password, each service's AppRole secret id
//!       stack.json                   the plan: ports, replicas, fetch allow-list, store
//!       config/                      one configuration per component (redis.conf, rabbitmq/, galley/, nginx/,
//!                                    prometheus/ when Prometheus is installed)
//!       run/NAME.json                the supervision record of each running instance (pid + start time)
//!       logs/NAME.log                stdout and stderr of each instance
//!       data/                        Redis, RabbitMQ, OpenBao, Prometheus and the embedded store's files
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Where a stack keeps its files.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// `root` made absolute: the services and nginx run with other working directories.
    pub fn new(root: &Path) -> anyhow::Result<Self> {
        let root = std::path::absolute(root).with_context(|| format!("resolving {}", root.display()))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn exists(&self) -> bool {
        self.plan_file().exists()
    }

    pub fn ca_certificate(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca-key.pem")
    }

    pub fn tls_certificate(&self) -> PathBuf {
        self.root.join("tls/localhost.pem")
    }

    pub fn tls_key(&self) -> PathBuf {
        self.root.join("tls/localhost-key.pem")
    }

    pub fn cookie_key(&self) -> PathBuf {
        self.root.join("cookie.key")
    }

    /// Secrets only the stack's processes read (0700): the Redis admin password OpenBao's database
    /// engine uses, and each service's AppRole secret id.
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }

    pub fn redis_password(&self) -> PathBuf {
        self.secrets_dir().join("redis.password")
    }

    pub fn plan_file(&self) -> PathBuf {
        self.root.join("stack.json")
    }

    pub fn config(&self, component: &str) -> PathBuf {
        self.root.join("config").join(component)
    }

    pub fn data(&self, component: &str) -> PathBuf {
        self.root.join("data").join(component)
    }

    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    pub fn record(&self, instance: &str) -> PathBuf {
        self.run_dir().join(format!("{instance}.json"))
    }

    pub fn log(&self, instance: &str) -> PathBuf {
        self.root.join("logs").join(format!("{instance}.log"))
    }

    /// Creates the directory skeleton (idempotent).
    pub fn create_skeleton(&self) -> anyhow::Result<()> {
        for dir in ["tls", "config", "run", "logs", "data", "secrets"] {
            let path = self.root.join(dir);
            std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        }
        use std::os::unix::fs::PermissionsExt as _;
        let secrets = self.secrets_dir();
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", secrets.display()))
    }

    pub fn load_plan(&self) -> anyhow::Result<Plan> {
        let path = self.plan_file();
        if !path.exists() {
            return Ok(Plan::default());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save_plan(&self, plan: &Plan) -> anyhow::Result<()> {
        write_json(&self.plan_file(), plan)
    }

    pub fn load_record(&self, instance: &str) -> Option<Record> {
        let text = std::fs::read_to_string(self.record(instance)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn save_record(&self, instance: &str, record: &Record) -> anyhow::Result<()> {
        write_json(&self.record(instance), record)
    }

    pub fn remove_record(&self, instance: &str) {
        // Absent already is fine: the goal is that no record names a stopped process.
        let _ = std::fs::remove_file(self.record(instance));
    }

    /// Names of every instance that has a record (running or not).
    pub fn recorded_instances(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.run_dir()) else { return Vec::new() };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
            .collect();
        names.sort();
        names
    }
}

/// What the stack looks like: chosen once (`init`, `up` flags) and kept, so a restarted instance
/// comes back on the same port and nginx's upstreams stay right.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub https_port: u16,
    pub http_port: u16,
    /// Replicas per replicable component (`recipes-api`, `rss-api`, `rss-worker`); absent means 1.
    pub replicas: BTreeMap<String, u32>,
    /// Loopback port per instance name (and `rabbitmq-dist`, `rabbitmq-management`).
    pub ports: BTreeMap<String, u16>,
    /// The fetcher's `fetch.allow_private_hosts`.
    pub allow_private_hosts: Vec<String>,
    /// MongoDB instead of the shared embedded store.
    pub mongodb_uri: Option<String>,
    /// The private RabbitMQ node's name (unique per state directory).
    pub rabbitmq_node: String,
    /// Where moto and OpenBao were found (`.tools/venv/bin` of the checkout `init` ran in), so later
    /// commands find them from any directory.
    #[serde(default)]
    pub tools_dir: Option<PathBuf>,
    /// Where the optional `prometheus` binary was found on PATH when the plan was last prepared;
    /// `None`: this stack has no Prometheus (and no port for it).
    #[serde(default)]
    pub prometheus: Option<PathBuf>,
}

impl Plan {
    pub const DEFAULT_HTTPS_PORT: u16 = 8443;
    pub const DEFAULT_HTTP_PORT: u16 = 8080;

    pub fn replicas_of(&self, component: &str) -> u32 {
        self.replicas.get(component).copied().unwrap_or(1).max(1)
    }

    /// The port recorded for `name`, or a free loopback port, recorded from now on.
    pub fn port(&mut self, name: &str) -> anyhow::Result<u16> {
        if let Some(port) = self.ports.get(name) {
            return Ok(*port);
        }
        let taken: Vec<u16> = self.ports.values().copied().chain([self.https_port, self.http_port]).collect();
        // The OS hands out a free port; skip any another instance already holds but is not using yet.
        for _ in 0..32 {
            let port = std::net::TcpListener::bind(("127.0.0.1", 0))
                .and_then(|listener| listener.local_addr())
                .context("finding a free loopback port")?
                .port();
            if !taken.contains(&port) {
                self.ports.insert(name.to_owned(), port);
                return Ok(port);
            }
        }
        anyhow::bail!("no free loopback port found for {name}")
    }

    /// The port of `name`, which [`Plan::port`] recorded before.
    pub fn known_port(&self, name: &str) -> u16 {
        self.ports.get(name).copied().unwrap_or_default()
    }
}

/// A one-line secret file, trimmed.
pub fn read_secret(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// How the CLI recognises an instance it started: its pid and the kernel's start time of that pid
/// (`/proc/PID/stat` field 22), so a pid reused by another process is never taken for ours.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub pid: i32,
    /// Clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub start_ticks: u64,
    /// Unix seconds when it was started (for the uptime).
    pub started_at: u64,
    /// How many times `restart` (or `up` after a crash) started it again.
    pub restarts: u32,
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    // Written beside and renamed, so a reader never sees half a file.
    let temporary = path.with_extension("json.tmp");
    std::fs::write(&temporary, text).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_keeps_the_ports_it_handed_out() {
        let mut plan = Plan { https_port: 1, http_port: 2, ..Plan::default() };
        let first = plan.port("redis").expect("port");
        assert_eq!(plan.port("redis").expect("port"), first);
        let second = plan.port("rabbitmq").expect("port");
        assert_ne!(first, second);
        assert_eq!(plan.replicas_of("rss-worker"), 1);
    }

    #[test]
    fn plans_and_records_round_trip_through_the_state_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        state.create_skeleton().expect("skeleton");
        assert!(!state.exists());
        let mut plan = Plan { https_port: 8443, ..Plan::default() };
        plan.replicas.insert("rss-worker".into(), 3);
        state.save_plan(&plan).expect("saved");
        assert!(state.exists());
        assert_eq!(state.load_plan().expect("loaded").replicas_of("rss-worker"), 3);

        let record = Record { pid: 42, start_ticks: 7, started_at: 1, restarts: 0 };
        state.save_record("redis", &record).expect("saved");
        assert_eq!(state.load_record("redis"), Some(record));
        assert_eq!(state.recorded_instances(), vec!["redis".to_owned()]);
        state.remove_record("redis");
        assert_eq!(state.load_record("redis"), None);
    }
}
