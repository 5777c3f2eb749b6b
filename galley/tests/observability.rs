//! deploy/observability/ as code: the Grafana dashboard parses and queries only families Galley
//! emits; the scrape configuration and alert rules load in `promtool check` (skipped, with one line,
//! where Debian's `prometheus` package is not installed).

use std::path::PathBuf;
use std::process::Command;

/// Every metric family Galley emits (ADR 0026), histogram families by their base name.
const FAMILIES: &[&str] = &[
    "galley_build_info",
    "galley_http_requests_total",
    "galley_http_request_duration_seconds",
    "galley_http_requests_in_flight",
    "galley_cache_operations_total",
    "galley_bus_published_total",
    "galley_bus_publish_duration_seconds",
    "galley_bus_consumed_total",
    "galley_bus_settled_total",
    "galley_bus_consumer_in_flight",
    "galley_rss_fetches_total",
    "galley_rss_fetch_duration_seconds",
    "galley_rss_jobs_total",
    "galley_rss_entries_total",
    "galley_auth_sign_ins_total",
    "galley_auth_hashing_queued",
    "galley_auth_hashing_wait_seconds",
    "galley_auth_hashing_rejected_total",
    "galley_store_operation_duration_seconds",
    "galley_store_errors_total",
    "galley_rss_fetch_body_bytes",
    "galley_vault_lease_renewals_total",
    "galley_vault_lease_issues_total",
];

fn observability_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/observability")
}

/// The `galley_*` names in a PromQL expression, without histogram suffixes.
fn families_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("galley_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_parses_and_queries_only_emitted_families() {
    let text =
        std::fs::read_to_string(observability_dir().join("grafana-dashboard.json")).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    assert_eq!(dashboard["uid"], "galley-overview");
    let panels = dashboard["panels"].as_array().expect("panels");
    let exprs: Vec<&str> = panels
        .iter()
        .filter_map(|panel| panel["targets"].as_array())
        .flatten()
        .filter_map(|target| target["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 15, "RED and pipeline panels: {}", exprs.len());
    for expr in exprs {
        let names = families_in(expr);
        assert!(!names.is_empty(), "a query without a Galley family: {expr}");
        for name in names {
            assert!(FAMILIES.contains(&name.as_str()), "{name} is not emitted (in {expr})");
        }
    }
}

#[test]
fn promtool_accepts_the_scrape_config_and_the_alert_rules() {
    let dir = observability_dir();
    for args in [["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"]] {
        let output = match Command::new("promtool").args(args).current_dir(&dir).output() {
            Ok(output) => output,
            Err(_) => {
                eprintln!("SKIPPED: promtool not installed (Debian package prometheus)");
                return;
            }
        };
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_family_scanner_strips_histogram_suffixes() {
    assert_eq!(
        families_in("histogram_quantile(0.99, rate(galley_http_request_duration_seconds_bucket[5m]))"),
        ["galley_http_request_duration_seconds"]
    );
}
