//! The optional Prometheus of the stack: its scrape configuration, rendered from the plan, and the
//! alert rules of `deploy/observability/alerts.yml` beside it.
//!
//! Prometheus is part of a stack only when its binary is on PATH (Debian's `prometheus`): metrics are
//! worth having locally but never worth refusing to start the services for. The stack never sets
//! `telemetry.metrics_bind`, so each replica serves `GET /metrics` on its own HTTP port — the one
//! nginx proxies to but never routes `/metrics` to — and that port is the scrape target.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::components::{Component, find_on_path, instances};
use crate::state::{Plan, StateDir};

/// The binary whose presence on PATH makes Prometheus a component of the stack.
pub const BINARY: &str = "prometheus";

/// The alert rules, compiled in so the binary needs no checkout.
pub const ALERT_RULES: &str = include_str!("../../../deploy/observability/alerts.yml");

/// How often the local Prometheus scrapes and evaluates: short, so a fresh stack shows its targets
/// `up` within seconds (a handful of loopback targets cost nothing to scrape this often).
const SCRAPE_INTERVAL: &str = "2s";
/// Below the interval, as Prometheus requires.
const SCRAPE_TIMEOUT: &str = "1s";

/// How much history the local Prometheus keeps: a development stack needs today's, not a month's.
pub const RETENTION: &str = "1d";

/// The `prometheus` binary on the process's PATH.
pub fn installed() -> Option<PathBuf> {
    find_on_path(BINARY, std::env::var_os("PATH").as_deref())
}

/// `promtool`, which ships with Prometheus: beside the binary, else on PATH.
pub fn promtool(prometheus: &Path) -> Option<PathBuf> {
    prometheus
        .parent()
        .map(|dir| dir.join("promtool"))
        .filter(|candidate| candidate.is_file())
        .or_else(|| find_on_path("promtool", std::env::var_os("PATH").as_deref()))
}

/// Records in the plan whether this stack has a Prometheus (`found`: where the binary is) and drops
/// its port when it has none, so status, down and the port list describe only what can run.
pub fn include_in(plan: &mut Plan, found: Option<PathBuf>) {
    if found.is_none() {
        plan.ports.remove(Component::Prometheus.name());
    }
    plan.prometheus = found;
}

/// The configuration file Prometheus is started with.
pub fn config_file(state: &StateDir) -> PathBuf {
    state.config("prometheus").join("prometheus.yml")
}

fn rules_file(state: &StateDir) -> PathBuf {
    state.config("prometheus").join("alerts.yml")
}

/// Where Prometheus answers (`status`, `up`): its web UI and API.
pub fn url(plan: &Plan) -> String {
    format!("http://127.0.0.1:{}/", plan.known_port(Component::Prometheus.name()))
}

/// The scrape configuration for `plan`: one target per service replica, labelled with the service and
/// the replica's name (`instance`), and the alert rules copied beside it.
pub fn render(state: &StateDir, plan: &Plan) -> String {
    // Paths are quoted as JSON strings, which YAML reads as the same double-quoted scalars.
    let quoted = |path: &Path| serde_json::Value::String(path.display().to_string()).to_string();
    let mut text = format!(
        "# Written by `galley stack`; rewritten by every `galley stack up`.\n\
         # Targets: every service replica's GET /metrics (its HTTP port; nginx does not route /metrics).\n\
         global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_TIMEOUT}\n  \
         evaluation_interval: {SCRAPE_INTERVAL}\n\n\
         rule_files:\n  - {rules}\n\n\
         scrape_configs:\n  - job_name: galley\n    metrics_path: /metrics\n    static_configs:\n",
        rules = quoted(&rules_file(state)),
    );
    for instance in instances(plan).iter().filter(|instance| instance.component.is_service()) {
        let name = instance.name();
        let _ = write!(
            text,
            "      - targets: [\"127.0.0.1:{port}\"]\n        labels: {{ service: {service}, instance: {name} }}\n",
            port = plan.known_port(&name),
            service = instance.component.name(),
        );
    }
    text
}

/// Writes the configuration and the alert rules; whether the configuration changed (a running
/// Prometheus then needs a reload).
pub fn write(state: &StateDir, plan: &Plan) -> anyhow::Result<bool> {
    let dir = state.config("prometheus");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::create_dir_all(state.data("prometheus"))?;
    let rules = rules_file(state);
    std::fs::write(&rules, ALERT_RULES).with_context(|| format!("writing {}", rules.display()))?;
    let path = config_file(state);
    let rendered = render(state, plan);
    let changed = std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str());
    if changed {
        std::fs::write(&path, rendered).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(changed)
}

/// `promtool check config` on the written file (which also loads the rule files): a mistake is
/// reported before Prometheus is started with it.
pub fn check(promtool: &Path, state: &StateDir) -> anyhow::Result<()> {
    let path = config_file(state);
    let output = std::process::Command::new(promtool)
        .args(["check", "config"])
        .arg(&path)
        .output()
        .context("running promtool check config")?;
    anyhow::ensure!(
        output.status.success(),
        "promtool refuses {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&output.stdout).trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Prometheus's command line: everything it writes stays in the state directory.
pub fn arguments(state: &StateDir, plan: &Plan) -> Vec<String> {
    vec![
        format!("--config.file={}", config_file(state).display()),
        format!("--storage.tsdb.path={}", state.data("prometheus").display()),
        format!("--storage.tsdb.retention.time={RETENTION}"),
        format!("--web.listen-address=127.0.0.1:{}", plan.known_port(Component::Prometheus.name())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::allocate_ports;

    fn plan_with(recipes_api_replicas: u32) -> Plan {
        let mut plan = Plan { https_port: 8443, http_port: 8080, ..Plan::default() };
        plan.replicas.insert("recipes-api".into(), recipes_api_replicas);
        plan.replicas.insert("rss-worker".into(), 2);
        include_in(&mut plan, Some(PathBuf::from("/usr/bin/prometheus")));
        allocate_ports(&mut plan).expect("ports");
        plan
    }

    #[test]
    fn every_replica_is_a_target_labelled_with_its_service_and_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        let plan = plan_with(2);
        let text = render(&state, &plan);
        for (name, service) in [
            ("recipes-api", "recipes-api"),
            ("recipes-api-2", "recipes-api"),
            ("rss-api", "rss-api"),
            ("rss-worker", "rss-worker"),
            ("rss-worker-2", "rss-worker"),
        ] {
            let target = format!(
                "- targets: [\"127.0.0.1:{}\"]\n        labels: {{ service: {service}, instance: {name} }}",
                plan.known_port(name)
            );
            assert!(text.contains(&target), "{target} in\n{text}");
        }
        assert_eq!(text.matches("- targets:").count(), 5, "services only, no other component:\n{text}");
        assert!(text.contains("scrape_interval: 2s"));
        assert!(text.contains(&rules_file(&state).display().to_string()), "the rules:\n{text}");
    }

    #[test]
    fn other_replica_counts_give_another_configuration() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        let one = plan_with(1);
        let mut three = one.clone();
        three.replicas.insert("recipes-api".into(), 3);
        allocate_ports(&mut three).expect("ports");
        let (before, after) = (render(&state, &one), render(&state, &three));
        assert_ne!(before, after);
        assert!(!before.contains("instance: recipes-api-3"));
        assert!(after.contains("instance: recipes-api-2") && after.contains("instance: recipes-api-3"));
    }

    #[test]
    fn without_the_binary_on_path_prometheus_is_not_in_the_plan() {
        let empty = tempfile::tempdir().expect("temp dir");
        assert_eq!(find_on_path(BINARY, Some(empty.path().as_os_str())), None);
        assert_eq!(find_on_path(BINARY, None), None);

        let mut plan = plan_with(1);
        assert!(instances(&plan).iter().any(|instance| instance.component == Component::Prometheus));
        assert_ne!(plan.known_port("prometheus"), 0);
        include_in(&mut plan, find_on_path(BINARY, Some(empty.path().as_os_str())));
        assert!(instances(&plan).iter().all(|instance| instance.component != Component::Prometheus));
        assert_eq!(plan.known_port("prometheus"), 0, "no port kept for it");
        allocate_ports(&mut plan).expect("ports");
        assert!(!plan.ports.contains_key("prometheus"), "nor allocated again");
        assert!(crate::components::select(&plan, &["prometheus".into()]).is_err());
    }

    #[test]
    fn an_executable_named_prometheus_on_path_is_found() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let fake = dir.path().join(BINARY);
        std::fs::write(&fake, "#!/bin/sh\n").expect("written");
        assert_eq!(find_on_path(BINARY, Some(dir.path().as_os_str())), None, "not executable yet");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).expect("PATH");
        assert_eq!(find_on_path(BINARY, Some(&path)), Some(fake));
    }

    #[test]
    fn promtool_accepts_the_rendered_configuration_and_rules() {
        let Some(promtool) = find_on_path("promtool", std::env::var_os("PATH").as_deref()) else {
            eprintln!("SKIPPED: promtool is not installed (apt-get install prometheus)");
            return;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::new(dir.path()).expect("state");
        let plan = plan_with(2);
        assert!(write(&state, &plan).expect("written"));
        check(&promtool, &state).expect("promtool check config passes");
        assert!(!write(&state, &plan).expect("written"), "unchanged");
    }
}
