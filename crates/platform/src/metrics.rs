//! Metrics without a global recorder (ADR 0026).
//!
//! The `metrics` crate's macros write to one process-wide recorder. Galley's tests run many apps in one
//! process and assert exact counts per app, and the project keeps no state in globals, so each process
//! (or test app) builds its own [`Metrics`]: a Prometheus recorder, reached through the
//! [`metrics::Recorder`] trait directly, plus the handle that renders it. Adapters and middleware receive
//! a clone (one `Arc`) and register their handles once, at construction; recording is then an atomic
//! operation on a cached [`Counter`], [`Gauge`] or [`Histogram`], with no lookup or allocation.
//!
//! [`Metrics::disabled`] (`telemetry.metrics = false`) hands out no-op handles and renders nothing, so the
//! cost of measuring can itself be measured.
//!
//! Naming follows Prometheus conventions: `galley_` prefix, base units in the name (`_seconds`,
//! `_bytes`), counters end in `_total`. Durations are true histograms over [`DURATION_BUCKETS`]; metrics
//! whose names end in `_bytes` use [`SIZE_BUCKETS`].

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder as _, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::Shutdown;

/// Upper bounds (seconds) of the duration buckets: from a cached read (~100 µs) to a slow feed fetch.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds (bytes) of the size buckets (feed bodies: up to the fetcher's limit).
pub const SIZE_BUCKETS: [f64; 8] =
    [1024.0, 8192.0, 65536.0, 262_144.0, 1_048_576.0, 4_194_304.0, 8_388_608.0, 16_777_216.0];

/// What `galley_build_info` reports.
#[derive(Debug, Clone, Copy)]
pub struct BuildInfo {
    /// `recipes-api`, `rss-api`, `rss-worker`, or `galley` for the all-in-one process.
    pub service: &'static str,
    pub version: &'static str,
}

impl BuildInfo {
    /// The commit the binary was built from: `GALLEY_GIT_SHA` at compile time (release builds set it),
    /// else `unknown`. Read with `option_env!` rather than a build script so an ordinary commit does
    /// not rebuild every crate downstream of this one.
    pub const GIT_SHA: &'static str = match option_env!("GALLEY_GIT_SHA") {
        Some(sha) => sha,
        None => "unknown",
    };
}

/// A process's metrics registry, or none (disabled). Cheap to clone: clones share the registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Option<Arc<Registry>>,
}

struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("enabled", &self.is_enabled()).finish()
    }
}

impl Default for Metrics {
    /// Disabled: code that is handed no registry measures nothing.
    fn default() -> Self {
        Self::disabled()
    }
}

/// One label value for a metric: static where it can be, so registering allocates only when it must.
pub type LabelValue = SharedString;

impl Metrics {
    /// A new, empty registry reporting `galley_build_info` for `build`.
    pub fn new(build: BuildInfo) -> Self {
        let builder = PrometheusBuilder::new().set_buckets(&DURATION_BUCKETS).and_then(|builder| {
            builder.set_buckets_for_metric(Matcher::Suffix("_bytes".into()), &SIZE_BUCKETS)
        });
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            // Only empty bucket lists are refused, and ours are constants; still, no panic: fall back
            // to the exporter's defaults (summaries) rather than lose the metrics.
            Err(error) => {
                tracing::warn!(%error, "metrics buckets refused; histograms render as summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        let metrics = Self { registry: Some(Arc::new(Registry { recorder, handle })) };
        metrics.describe_gauge("galley_build_info", Unit::Count, "Always 1; the labels name the build.");
        metrics
            .gauge(
                "galley_build_info",
                &[
                    ("service", build.service.into()),
                    ("version", build.version.into()),
                    ("git_sha", BuildInfo::GIT_SHA.into()),
                ],
            )
            .set(1.0);
        metrics
    }

    /// `telemetry.metrics`: a registry, or the no-op one.
    pub fn from_settings(enabled: bool, build: BuildInfo) -> Self {
        if enabled { Self::new(build) } else { Self::disabled() }
    }

    /// Measures nothing: every handle is a no-op and [`Metrics::render`] is `None`.
    pub fn disabled() -> Self {
        Self { registry: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.registry.is_some()
    }

    /// The counter `name{labels}`; the same name and labels always give the same counter.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, LabelValue)]) -> Counter {
        match &self.registry {
            Some(registry) => registry.recorder.register_counter(&key(name, labels), &metadata()),
            None => Counter::noop(),
        }
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, LabelValue)]) -> Gauge {
        match &self.registry {
            Some(registry) => registry.recorder.register_gauge(&key(name, labels), &metadata()),
            None => Gauge::noop(),
        }
    }

    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, LabelValue)]) -> Histogram {
        match &self.registry {
            Some(registry) => registry.recorder.register_histogram(&key(name, labels), &metadata()),
            None => Histogram::noop(),
        }
    }

    /// The `# HELP` line (and unit) of a counter family.
    pub fn describe_counter(&self, name: &'static str, unit: Unit, help: &'static str) {
        if let Some(registry) = &self.registry {
            registry.recorder.describe_counter(name.into(), Some(unit), help.into());
        }
    }

    pub fn describe_gauge(&self, name: &'static str, unit: Unit, help: &'static str) {
        if let Some(registry) = &self.registry {
            registry.recorder.describe_gauge(name.into(), Some(unit), help.into());
        }
    }

    pub fn describe_histogram(&self, name: &'static str, unit: Unit, help: &'static str) {
        if let Some(registry) = &self.registry {
            registry.recorder.describe_histogram(name.into(), Some(unit), help.into());
        }
    }

    /// Every family in the Prometheus text exposition format (0.0.4), or `None` when disabled.
    pub fn render(&self) -> Option<String> {
        self.registry.as_ref().map(|registry| registry.handle.render())
    }

    /// Folds recorded histogram samples into their buckets. Rendering does it too; between scrapes
    /// samples would pile up, so a process that records histograms runs [`Metrics::spawn_upkeep`].
    pub fn run_upkeep(&self) {
        if let Some(registry) = &self.registry {
            registry.handle.run_upkeep();
        }
    }

    /// Runs [`Metrics::run_upkeep`] every `period` until `shutdown`; a no-op task when disabled.
    pub fn spawn_upkeep(&self, period: Duration, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        let metrics = self.clone();
        tokio::spawn(async move {
            if !metrics.is_enabled() {
                return;
            }
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => metrics.run_upkeep(),
                    () = shutdown.wait() => return,
                }
            }
        })
    }
}

fn key(name: &'static str, labels: &[(&'static str, LabelValue)]) -> Key {
    let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, v.clone())).collect();
    Key::from_parts(name, labels)
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILD: BuildInfo = BuildInfo { service: "test", version: "1.2.3" };

    #[test]
    fn registries_are_independent_and_clones_share_one() {
        let first = Metrics::new(BUILD);
        let second = Metrics::new(BUILD);
        first.counter("galley_things_total", &[("kind", "a".into())]).increment(2);
        let clone = first.clone();
        clone.counter("galley_things_total", &[("kind", "a".into())]).increment(1);
        drop(clone);
        let rendered = first.render().expect("enabled");
        assert!(rendered.contains("galley_things_total{kind=\"a\"} 3"), "{rendered}");
        assert!(!second.render().expect("enabled").contains("galley_things_total"));
    }

    #[test]
    fn durations_are_histograms_with_explicit_buckets() {
        let metrics = Metrics::new(BUILD);
        metrics.histogram("galley_work_duration_seconds", &[]).record(0.003);
        metrics.histogram("galley_body_bytes", &[]).record(2000.0);
        let rendered = metrics.render().expect("enabled");
        assert!(rendered.contains("galley_work_duration_seconds_bucket{le=\"0.005\"} 1"), "{rendered}");
        assert!(rendered.contains("galley_work_duration_seconds_bucket{le=\"0.0025\"} 0"), "{rendered}");
        assert!(rendered.contains("galley_body_bytes_bucket{le=\"8192\"} 1"), "{rendered}");
    }

    #[test]
    fn build_info_names_the_service_version_and_commit() {
        let rendered = Metrics::new(BUILD).render().expect("enabled");
        assert!(
            rendered.contains("galley_build_info{service=\"test\",version=\"1.2.3\",git_sha="),
            "{rendered}"
        );
    }

    #[test]
    fn disabled_metrics_record_and_render_nothing() {
        let metrics = Metrics::from_settings(false, BUILD);
        metrics.counter("galley_things_total", &[]).increment(1);
        assert_eq!(metrics.render(), None);
    }
}
