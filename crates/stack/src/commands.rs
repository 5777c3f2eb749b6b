//! The `galley stack` subcommands. Each prints what it does, one line per component, on stdout.

use std::io::{BufRead as _, Read as _, Seek as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use rand::RngCore as _;
use serde::Serialize;

use crate::UpArgs;
use crate::components::{self, Component, Instance, RunOptions};
use crate::process::{self, Stopped};
use crate::state::{Plan, Record, StateDir};

/// Grace period of the stops `restart`, `debug` and `up` (scaling down) make.
const RESTART_GRACE: Duration = Duration::from_secs(20);

/// A line for the person at the terminal. Written with `writeln!` so a closed stdout cannot panic.
fn say(line: impl std::fmt::Display) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// `init`: the state directory, certificates, cookie key, plan and configuration files.
pub fn init(state: &StateDir) -> anyhow::Result<()> {
    let plan = prepare(state, |_| Ok(()))?;
    say(format_args!("stack state in {}", state.root().display()));
    say(format_args!("  CA certificate  {} (trust it: curl --cacert ...)", state.ca_certificate().display()));
    say(format_args!("  configuration   {}", state.root().join("config").display()));
    say(format_args!("  HTTPS (after up) {}", https_url(&plan)));
    Ok(())
}

/// Creates what is missing in the state directory, applies `change` to the plan, allocates ports and
/// (re)writes every configuration file. Idempotent: certificates and the cookie key are kept.
fn prepare(state: &StateDir, change: impl FnOnce(&mut Plan) -> anyhow::Result<()>) -> anyhow::Result<Plan> {
    state.create_skeleton()?;
    if crate::tls::ensure(state)? == crate::tls::Outcome::Created {
        say(format_args!("created a local CA and a certificate for localhost/127.0.0.1"));
    }
    // Made once: OpenBao's provisioning puts the cookie key into KV.
    random_secret(&state.cookie_key(), 64)?;
    let redis_password = random_secret(&state.redis_password(), 32)?;
    let mut plan = state.load_plan()?;
    if plan.https_port == 0 {
        plan.https_port = Plan::DEFAULT_HTTPS_PORT;
    }
    if plan.http_port == 0 {
        plan.http_port = Plan::DEFAULT_HTTP_PORT;
    }
    if plan.rabbitmq_node.is_empty() {
        let mut suffix = [0u8; 6];
        rand::thread_rng().fill_bytes(&mut suffix);
        let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
        plan.rabbitmq_node = format!("galley-stack-{suffix}@localhost");
    }
    if let Some(found) = components::tools_dir().filter(|_| plan.tools_dir.is_none()) {
        plan.tools_dir = Some(found);
    }
    crate::prometheus::include_in(&mut plan, crate::prometheus::installed());
    change(&mut plan)?;
    // nginx's ports, given now, may be ones handed out earlier to another component: that one moves.
    let nginx_ports = [plan.https_port, plan.http_port];
    plan.ports.retain(|_, port| !nginx_ports.contains(port));
    components::allocate_ports(&mut plan)?;
    state.save_plan(&plan)?;
    components::write_configs(state, &plan, &redis_password)?;
    crate::nginx::write(state, &plan, process::is_root())?;
    if plan.prometheus.is_some() {
        crate::prometheus::write(state, &plan)?;
    }
    Ok(plan)
}

/// A secret made once and kept in `path` (0600): `length` random bytes, base64 — the services'
/// shared cookie key, Redis's admin password.
fn random_secret(path: &Path, length: usize) -> anyhow::Result<String> {
    if let Ok(existing) = crate::state::read_secret(path) {
        return Ok(existing);
    }
    let mut bytes = vec![0u8; length];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = base64::engine::general_purpose::STANDARD.encode(bytes);
    crate::tls::write(path, &format!("{key}\n"), true)?;
    Ok(key)
}

/// `up`: starts what is not running, in dependency order, each waiting for readiness.
pub async fn up(state: &StateDir, args: &UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan =
        prepare(state, |plan| {
            if let Some(port) = args.https_port {
                plan.https_port = port;
            }
            if let Some(port) = args.http_port {
                plan.http_port = port;
            }
            for entry in &args.replicas {
                let (name, count) = entry
                    .split_once('=')
                    .with_context(|| format!("--replicas takes NAME=COUNT, not {entry:?}"))?;
                let component =
                    Component::from_name(name.trim()).filter(|c| c.is_service()).with_context(|| {
                        format!("--replicas: {name:?} is not a service (recipes-api, rss-api, rss-worker)")
                    })?;
                let count: u32 =
                    count.trim().parse().ok().filter(|count| *count >= 1).with_context(|| {
                        format!("--replicas: {count:?} is not a replica count (1 or more)")
                    })?;
                plan.replicas.insert(component.name().to_owned(), count);
            }
            if let Some(hosts) = &args.allow_private_hosts {
                plan.allow_private_hosts = hosts.iter().map(|host| host.trim().to_owned()).collect();
            }
            if let Some(uri) = &args.mongodb_uri {
                plan.mongodb_uri = Some(uri.clone()).filter(|uri| !uri.is_empty());
            }
            Ok(())
        })?;
    let chosen = components::select(&plan, &args.components)?;
    ensure_installed(&chosen, args.install, plan.tools_dir.as_deref())?;
    stop_unplanned(state, &plan);
    if plan.prometheus.is_none() && args.components.is_empty() {
        say(format_args!(
            "prometheus: skipped, `{}` is not on PATH (install the Debian package `prometheus` to scrape the services)",
            crate::prometheus::BINARY
        ));
    }

    say(match &plan.mongodb_uri {
        Some(_) => "store: MongoDB (--mongodb-uri), shared by every service".to_owned(),
        None => format!(
            "store: one embedded SQLite file shared by every service ({}); pass --mongodb-uri for MongoDB",
            state.data("galley.db").display()
        ),
    });
    let client = probe_client()?;
    for instance in chosen {
        start_instance(state, &plan, instance, &client).await?;
    }
    say(format_args!(
        "stack up in {:.1} s: {}  (plain HTTP {} redirects)",
        started.elapsed().as_secs_f64(),
        https_url(&plan),
        http_url(&plan)
    ));
    say(format_args!(
        "  trust the CA: curl --cacert {} {}recipes",
        state.ca_certificate().display(),
        https_url(&plan)
    ));
    if let Some(url) = prometheus_url(state, &plan) {
        say(format_args!("  Prometheus: {url} (scrape targets: {url}targets)"));
    }
    Ok(())
}

/// Prometheus's URL when this stack has one and it runs.
fn prometheus_url(state: &StateDir, plan: &Plan) -> Option<String> {
    plan.prometheus.as_ref()?;
    state.load_record(Component::Prometheus.name()).filter(process::is_running)?;
    Some(crate::prometheus::url(plan))
}

/// Fails with one line per missing server binary naming its package, or installs them (`--install`).
fn ensure_installed(chosen: &[Instance], install: bool, recorded_tools: Option<&Path>) -> anyhow::Result<()> {
    let components: Vec<Component> = chosen.iter().map(|instance| instance.component).collect();
    let missing = components::missing(&components, recorded_tools);
    if missing.is_empty() {
        return Ok(());
    }
    if !install {
        for prerequisite in &missing {
            say(format_args!(
                "{}: `{}` not found — install {}, or pass --install",
                prerequisite.component.name(),
                prerequisite.binary,
                prerequisite.package
            ));
        }
        anyhow::bail!("{} server package(s) missing", missing.len());
    }
    let debian: Vec<&str> = missing
        .iter()
        .filter_map(|prerequisite| match prerequisite.package {
            components::Package::Debian(name) => Some(name),
            components::Package::PyPi(_) => None,
        })
        .collect();
    if !debian.is_empty() {
        anyhow::ensure!(process::is_root(), "--install runs apt-get, which needs root");
        say(format_args!("installing {} with apt-get", debian.join(" ")));
        let status = std::process::Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&debian)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        anyhow::ensure!(status.success(), "apt-get install {} failed", debian.join(" "));
    }
    if missing.iter().any(|prerequisite| matches!(prerequisite.package, components::Package::PyPi(_))) {
        let script = components::python_tools_script().context(
            "scripts/python-tools.sh not found: run `galley stack up --install` from the checkout",
        )?;
        say(format_args!("installing the Python tools with {}", script.display()));
        let status = std::process::Command::new(&script).status().context("running python-tools.sh")?;
        anyhow::ensure!(status.success(), "{} failed", script.display());
    }
    Ok(())
}

/// Stops instances that have a record but are no longer in the plan (fewer replicas than before).
fn stop_unplanned(state: &StateDir, plan: &Plan) {
    let planned: Vec<String> = components::instances(plan).iter().map(Instance::name).collect();
    for name in state.recorded_instances() {
        if !planned.contains(&name) {
            stop_instance(state, &name, RESTART_GRACE);
        }
    }
}

fn probe_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(3))
        .build()?)
}

/// Starts `instance` unless it runs (then only nginx reloads its rewritten configuration), and waits
/// for it to be ready. A leftover record (a crash, or `restart`) makes this start count as a restart.
async fn start_instance(
    state: &StateDir,
    plan: &Plan,
    instance: Instance,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    let name = instance.name();
    let previous = state.load_record(&name);
    if let Some(record) = previous.filter(process::is_running) {
        if matches!(instance.component, Component::Nginx | Component::Prometheus) {
            // The configuration was just rewritten: a reload (SIGHUP for both) picks up new replicas,
            // harmless otherwise.
            process::hang_up(&record)?;
            say(format_args!("  {name:<14} running, pid {}, configuration reloaded", record.pid));
        } else {
            say(format_args!("  {name:<14} running, pid {}", record.pid));
        }
        return Ok(());
    }
    let spec = components::spec(state, plan, instance, RunOptions::default())?;
    if instance.component == Component::Nginx {
        crate::nginx::check(&spec.launch.program, state)?;
    }
    if instance.component == Component::Prometheus
        && let Some(promtool) = crate::prometheus::promtool(&spec.launch.program)
    {
        crate::prometheus::check(&promtool, state)?;
    }
    if instance.component == Component::OpenBao {
        let moto = state
            .load_record(Component::Moto.name())
            .filter(process::is_running)
            .context("OpenBao is sealed by moto's KMS: start moto first (`galley stack up moto`)")?;
        if let Some(notice) = crate::openbao::prepare(state, plan, &moto, client).await? {
            say(format_args!("  {name:<14} {notice}"));
        }
    }
    let mut initialised = false;
    let restarts = previous.map_or(0, |record| record.restarts + 1);
    let started = Instant::now();
    let record = process::spawn_detached(&spec.launch, &state.log(&name), restarts)?;
    state.save_record(&name, &record)?;
    let deadline = started + instance.component.boot_timeout();
    loop {
        if spec.probe.check(client).await {
            break;
        }
        if instance.component == Component::OpenBao && !initialised {
            initialised = crate::openbao::initialise_if_needed(state, plan, client).await?;
        }
        if !process::is_running(&record) {
            anyhow::bail!(
                "{name} exited while starting; last lines of {}:\n{}",
                state.log(&name).display(),
                process::tail(&state.log(&name), 15)
            );
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "{name} not ready within {:?}; last lines of {}:\n{}",
                instance.component.boot_timeout(),
                state.log(&name).display(),
                process::tail(&state.log(&name), 15)
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    say(format_args!(
        "  {name:<14} started, pid {:<7} {:<24} ready in {:.1} s",
        record.pid,
        spec.address,
        started.elapsed().as_secs_f64()
    ));
    if instance.component == Component::OpenBao {
        // The services read their secrets and lease their users there: no provisioning, no stack.
        let cookie_key = crate::state::read_secret(&state.cookie_key())?;
        crate::openbao::provision(state, plan, &cookie_key)
            .await
            .with_context(|| format!("provisioning OpenBao (log: {})", state.log(&name).display()))?;
        if initialised {
            say(format_args!(
                "  {name:<14} initialised (recovery key and root token in {}), provisioned",
                crate::openbao::init_file(state).display()
            ));
        } else {
            say(format_args!(
                "  {name:<14} provisioned (KV secrets, AppRoles, Redis and RabbitMQ lease roles)"
            ));
        }
    }
    Ok(())
}

fn https_url(plan: &Plan) -> String {
    format!("https://localhost:{}/", plan.https_port)
}

fn http_url(plan: &Plan) -> String {
    format!("http://localhost:{}/", plan.http_port)
}

/// One line of `status --json`.
#[derive(Debug, Serialize)]
struct ComponentStatus {
    name: String,
    pid: Option<i32>,
    address: String,
    /// `healthy`, `unhealthy` (running, failing its probe) or `down`.
    health: &'static str,
    uptime_s: Option<u64>,
    restarts: u32,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    components: Vec<ComponentStatus>,
    urls: Urls,
}

#[derive(Debug, Serialize)]
struct Urls {
    https: String,
    http: String,
    /// Prometheus's web UI and API, when this stack has one and it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    prometheus: Option<String>,
}

/// `status`: every planned instance with its health; non-zero exit when one is not healthy.
pub async fn status(state: &StateDir, json: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(state.exists(), "no stack in {}: run `galley stack init` first", state.root().display());
    let plan = state.load_plan()?;
    let client = probe_client()?;
    let mut lines = Vec::new();
    for instance in components::instances(&plan) {
        let name = instance.name();
        let spec = components::spec(state, &plan, instance, RunOptions::default());
        let address = spec.as_ref().map(|spec| spec.address.clone()).unwrap_or_default();
        let record = state.load_record(&name);
        let running = record.filter(process::is_running);
        let health = match (&running, &spec) {
            (None, _) | (_, Err(_)) => "down",
            (Some(_), Ok(spec)) if spec.probe.check(&client).await => "healthy",
            (Some(_), Ok(_)) => "unhealthy",
        };
        lines.push(ComponentStatus {
            name,
            pid: running.map(|record| record.pid),
            address,
            health,
            uptime_s: running.map(|record| process::unix_now().saturating_sub(record.started_at)),
            restarts: record.map_or(0, |record| record.restarts),
        });
    }
    let all_healthy = lines.iter().all(|line| line.health == "healthy");
    let urls =
        Urls { https: https_url(&plan), http: http_url(&plan), prometheus: prometheus_url(state, &plan) };
    let report = StatusReport { components: lines, urls };
    if json {
        say(serde_json::to_string_pretty(&report)?);
    } else {
        say(format_args!(
            "{:<14} {:<8} {:<44} {:<10} {:>9} {:>8}",
            "COMPONENT", "PID", "ADDRESS", "HEALTH", "UPTIME", "RESTARTS"
        ));
        for line in &report.components {
            say(format_args!(
                "{:<14} {:<8} {:<44} {:<10} {:>9} {:>8}",
                line.name,
                line.pid.map(|pid| pid.to_string()).unwrap_or_else(|| "-".into()),
                line.address,
                line.health,
                line.uptime_s.map(|seconds| format!("{seconds}s")).unwrap_or_else(|| "-".into()),
                line.restarts
            ));
        }
        say(format_args!("HTTPS {}   HTTP {} (redirects)", report.urls.https, report.urls.http));
        if let Some(url) = &report.urls.prometheus {
            say(format_args!("PROMETHEUS {url}"));
        }
    }
    Ok(if all_healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `logs`: the last `lines` lines of an instance's log; `follow` keeps printing what is appended.
pub async fn logs(state: &StateDir, name: &str, follow: bool, lines: usize) -> anyhow::Result<()> {
    let plan = state.load_plan()?;
    let instance = Instance::parse(name)
        .filter(|instance| components::instances(&plan).contains(instance))
        .with_context(|| format!("no component or replica named {name:?}"))?;
    let path = state.log(&instance.name());
    if !path.exists() {
        say(format_args!("{name} has no log yet ({})", path.display()));
        return Ok(());
    }
    say(process::tail(&path, lines));
    if !follow {
        return Ok(());
    }
    let mut file = std::fs::File::open(&path)?;
    let mut position = file.seek(std::io::SeekFrom::End(0))?;
    // Interactive: runs until Ctrl-C, polling for appended bytes (a log rotated or truncated by
    // `restart` is read again from its start).
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let length = std::fs::metadata(&path).map(|metadata| metadata.len()).unwrap_or_default();
        if length < position {
            file = std::fs::File::open(&path)?;
            position = 0;
        }
        if length > position {
            file.seek(std::io::SeekFrom::Start(position))?;
            let mut appended = String::new();
            let read = (&mut file).take(length - position).read_to_string(&mut appended)?;
            position += read as u64;
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(appended.as_bytes());
            let _ = stdout.flush();
        }
    }
}

/// `restart`: stop (if running) and start each selected instance again.
pub async fn restart(state: &StateDir, name: &str) -> anyhow::Result<()> {
    let plan = prepare(state, |_| Ok(()))?;
    let chosen = components::select(&plan, &[name.to_owned()])?;
    let client = probe_client()?;
    for instance in chosen {
        let instance_name = instance.name();
        // Fails (a binary gone missing) before anything is stopped.
        components::spec(state, &plan, instance, RunOptions::default())?;
        let restarts = state.load_record(&instance_name).map_or(0, |record| record.restarts);
        stop_instance(state, &instance_name, RESTART_GRACE);
        // The record is gone with the stop; carry the count over, plus this restart.
        state.save_record(&instance_name, &Record { pid: 0, start_ticks: 0, started_at: 0, restarts })?;
        start_instance(state, &plan, instance, &client).await?;
    }
    Ok(())
}

/// Stops one instance by its record and removes the record; says how it went.
fn stop_instance(state: &StateDir, name: &str, grace: Duration) {
    let Some(record) = state.load_record(name) else { return };
    let outcome = process::stop(&record, grace);
    state.remove_record(name);
    match outcome {
        Stopped::NotRunning => say(format_args!("  {name:<14} was not running")),
        Stopped::Gracefully => say(format_args!("  {name:<14} stopped (pid {})", record.pid)),
        Stopped::Killed => {
            say(format_args!(
                "  {name:<14} killed after {} s without exiting (pid {})",
                grace.as_secs(),
                record.pid
            ));
        }
    }
}

/// `down`: stops the named instances (all when none), in reverse dependency order.
pub fn down(state: &StateDir, names: &[String], grace: Duration) -> anyhow::Result<()> {
    if !state.exists() {
        say(format_args!("no stack in {}", state.root().display()));
        return Ok(());
    }
    let plan = state.load_plan()?;
    let mut chosen: Vec<String> = components::select(&plan, names)?.iter().map(Instance::name).collect();
    if names.is_empty() {
        // Also whatever has a record but left the plan.
        for recorded in state.recorded_instances() {
            if !chosen.contains(&recorded) {
                chosen.insert(0, recorded);
            }
        }
    }
    for name in chosen.iter().rev() {
        stop_instance(state, name, grace);
    }
    Ok(())
}

/// `prune`: `down`, then the whole state directory goes (after a confirmation unless `yes`).
pub fn prune(state: &StateDir, yes: bool) -> anyhow::Result<ExitCode> {
    if !state.root().exists() {
        say(format_args!("nothing to prune: {} does not exist", state.root().display()));
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        say(format_args!(
            "This stops the stack and deletes {} (certificates, data, logs). Type `yes` to go on:",
            state.root().display()
        ));
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            say("nothing removed");
            return Ok(ExitCode::FAILURE);
        }
    }
    down(state, &[], RESTART_GRACE)?;
    std::fs::remove_dir_all(state.root()).with_context(|| format!("removing {}", state.root().display()))?;
    say(format_args!("removed {}", state.root().display()));
    Ok(ExitCode::SUCCESS)
}

/// `debug SERVICE`: stops the service's first instance and runs it in the foreground with debug logs,
/// on the same port, until it exits (Ctrl-C).
pub async fn debug(state: &StateDir, service: &str) -> anyhow::Result<ExitCode> {
    let plan = state.load_plan()?;
    let instance = Instance::parse(service)
        .filter(|instance| instance.component.is_service() && components::instances(&plan).contains(instance))
        .with_context(|| {
            format!("{service:?} is not a service of this stack (recipes-api, rss-api, rss-worker)")
        })?;
    let name = instance.name();
    stop_instance(state, &name, RESTART_GRACE);
    let spec = components::spec(state, &plan, instance, RunOptions { debug_logs: true })?;
    say(format_args!("{name} in the foreground with debug logs on {} (Ctrl-C stops it)", spec.address));
    let mut child = tokio::process::Command::new(&spec.launch.program)
        .args(&spec.launch.args)
        .envs(spec.launch.env.iter().map(|(key, value)| (key, value)))
        .current_dir(&spec.launch.working_dir)
        .spawn()
        .context("running the service")?;
    // Ctrl-C stops the service gracefully (SIGTERM) and this command waits for it, rather than dying
    // first and leaving the service's last lines unannounced.
    let status = tokio::select! {
        status = child.wait() => status?,
        _ = tokio::signal::ctrl_c() => {
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()).and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            child.wait().await?
        }
    };
    say(format_args!("{name} exited ({status}); `galley stack up {name}` starts it in the background again"));
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
