//! A private RabbitMQ node for failure drills: its own name, free loopback ports and a temp directory,
//! so a test can stop, kill and restart a broker without disturbing the shared one (or other tests).
//!
//! The node runs the machine's RabbitMQ (`/usr/lib/rabbitmq/bin/rabbitmq-server`, Debian's
//! `rabbitmq-server` package) as the current user, with no plugins and no configuration file; its
//! queues and messages live in the temp directory, so a restarted node finds its durable queues and
//! persistent messages again, as a production broker does. The node is stopped when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package puts the server script (the `/usr/sbin` wrapper insists on its own user).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// How long a node may take to boot on a loaded 2-core machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a graceful stop may take before the node is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker node this test owns.
#[derive(Debug)]
pub struct RabbitMqNode {
    dir: PathBuf,
    name: String,
    port: u16,
    dist_port: u16,
    /// The management API's port, for nodes started with it.
    management_port: Option<u16>,
    process: Option<Child>,
}

impl RabbitMqNode {
    /// Boots a fresh node and waits until it accepts AMQP connections. Panics, saying what to
    /// install, if RabbitMQ is not installed.
    pub fn start() -> Self {
        Self::start_node(false)
    }

    /// Like [`RabbitMqNode::start`], with the management plugin on a free loopback port (what
    /// OpenBao's RabbitMQ secrets engine talks to).
    pub fn start_with_management() -> Self {
        Self::start_node(true)
    }

    fn start_node(management: bool) -> Self {
        assert!(
            Path::new(SERVER).exists(),
            "RabbitMQ is needed for this failure drill: install it (`apt-get install rabbitmq-server`)"
        );
        let id = uuid::Uuid::now_v7().simple().to_string();
        let dir = std::env::temp_dir().join(format!("galley-rabbitmq-{id}"));
        std::fs::create_dir_all(&dir).expect("node directory");
        let plugins = if management { "[rabbitmq_management].\n" } else { "[].\n" };
        std::fs::write(dir.join("enabled_plugins"), plugins).expect("plugins file");
        let management_port = management.then(free_port);
        if let Some(port) = management_port {
            let config = format!("management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {port}\n");
            std::fs::write(dir.join("rabbitmq.conf"), config).expect("config file");
        }
        let mut node = Self {
            dir,
            name: format!("galley-test-{}@localhost", &id[id.len() - 12..]),
            port: free_port(),
            dist_port: free_port(),
            management_port,
            process: None,
        };
        node.boot();
        node
    }

    /// `http://127.0.0.1:<port>` of the management API (nodes from
    /// [`RabbitMqNode::start_with_management`]); user `guest`, password `guest`.
    pub fn management_url(&self) -> Option<String> {
        self.management_port.map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// `amqp://127.0.0.1:<port>/%2f`, without credentials.
    pub fn bare_url(&self) -> String {
        format!("amqp://127.0.0.1:{}/%2f", self.port)
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the node gracefully (SIGTERM: RabbitMQ closes client connections and flushes its
    /// queues), waiting for it to exit.
    pub fn stop(&mut self) {
        let Some(mut process) = self.process.take() else { return };
        if let Some(pid) = self.pid() {
            signal(pid, "TERM");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if alive(pid) {
                signal(pid, "KILL");
            }
        }
        let _ = process.kill();
        let _ = process.wait();
        let _ = std::fs::remove_file(self.pid_file());
    }

    /// A broker restart: stop, then boot again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    fn boot(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log file");
        let process = Command::new(SERVER)
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", self.dir.join("feature_flags"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", self.dir.join("plugins"))
            .env(
                "RABBITMQ_CONFIG_FILE",
                self.dir.join(if self.management_port.is_some() { "rabbitmq.conf" } else { "no-config" }),
            )
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", self.dir.join("no-advanced.config"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("rabbitmq-server starts");
        self.process = Some(process);
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let ports = [Some(self.port), self.management_port];
        while ports.iter().flatten().any(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err()) {
            let exited = self.process.as_mut().and_then(|p| p.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "the RabbitMQ node exited while booting; see {}",
                self.dir.join("server.log").display()
            );
            assert!(Instant::now() < deadline, "the RabbitMQ node did not boot within {BOOT_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("node.pid")
    }

    /// The Erlang VM's pid (the script that starts it is only its parent).
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()
    }
}

impl Drop for RabbitMqNode {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill").args([format!("-{name}"), pid.to_string()]).status();
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The broker the tests share: `GALLEY_TEST_RABBITMQ_URL`, else the pre-started one on loopback.
pub fn shared_broker_url() -> String {
    std::env::var("GALLEY_TEST_RABBITMQ_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A unique queue-name prefix on a shared broker, whose queues (each logical queue with its delay
/// buckets and `.dead` companion) are deleted when the test ends, so the broker keeps nothing between
/// runs.
#[derive(Debug)]
pub struct QueuePrefix {
    pub url: String,
    pub prefix: String,
    queues: Vec<String>,
}

impl QueuePrefix {
    /// A fresh `galley-test.<uuid>.` prefix on `url` for the logical `queues`.
    pub fn fresh(url: &str, queues: &[&str]) -> Self {
        Self {
            url: url.to_owned(),
            prefix: format!("galley-test.{}.", uuid::Uuid::now_v7().simple()),
            queues: queues.iter().map(|&queue| queue.to_owned()).collect(),
        }
    }
}

/// Suffixes of the broker queues behind one logical queue: kept in step with `galley-rabbitmq`'s
/// naming (`.retry.<2^k>s` delay buckets for k in 0..=16; `.retry` from before ADR 0016).
fn companion_suffixes() -> Vec<String> {
    let buckets = (0..=16).map(|exponent: u32| format!(".retry.{}s", 1u64 << exponent));
    ["", ".dead", ".retry"].map(str::to_owned).into_iter().chain(buckets).collect()
}

impl Drop for QueuePrefix {
    fn drop(&mut self) {
        let suffixes = companion_suffixes();
        let prefix = &self.prefix;
        let names: Vec<String> = self
            .queues
            .iter()
            .flat_map(|queue| suffixes.iter().map(move |suffix| format!("{prefix}{queue}{suffix}")))
            .collect();
        let url = self.url.clone();
        // Drop is synchronous and may run inside a runtime: delete from a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async move {
                let properties = lapin::ConnectionProperties::default();
                let Ok(connection) = lapin::Connection::connect(&url, properties).await else { return };
                let Ok(mut channel) = connection.create_channel().await else { return };
                for name in names {
                    let options = lapin::options::QueueDeleteOptions::default();
                    if channel.queue_delete(name.as_str().into(), options).await.is_err() {
                        // A failed delete closes the channel: go on with a fresh one.
                        let Ok(fresh) = connection.create_channel().await else { return };
                        channel = fresh;
                    }
                }
                let _ = connection.close(200, "cleanup done".into()).await;
            });
        })
        .join();
    }
}
