//! Tracing set-up: human-readable lines on a laptop, one JSON object per line in production so log
//! shippers can index fields (request id, status, latency) without parsing prose. Logs go to stderr,
//! keeping stdout for what a binary prints for people (galley's URLs).

use std::net::SocketAddr;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Compact, coloured lines for people.
    #[default]
    Pretty,
    /// JSON lines for machines.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    pub format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG`, when set, wins.
    pub filter: String,
    /// Record metrics and serve `GET /metrics` (`GALLEY__TELEMETRY__METRICS`); on by default. Off,
    /// every handle is a no-op: the switch exists to measure what measuring costs.
    pub metrics: bool,
    /// Serve `GET /metrics` on this address instead of the service's own router
    /// (`GALLEY__TELEMETRY__METRICS_BIND`), so metrics need not be reachable where the API is.
    pub metrics_bind: Option<SocketAddr>,
    /// `[telemetry.otlp]`: trace export.
    pub otlp: OtlpSettings,
}

/// `[telemetry.otlp]`: traces are off unless `endpoint` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct OtlpSettings {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318`; `/v1/traces` is appended
    /// (`GALLEY__TELEMETRY__OTLP__ENDPOINT`).
    pub endpoint: Option<String>,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info,tower_http=info,sqlx=warn".to_owned(),
            metrics: true,
            metrics_bind: None,
            otlp: OtlpSettings::default(),
        }
    }
}

/// Keeps the non-blocking log writer's background thread alive: hold it for the life of the process
/// (in `main`); dropping it flushes what is still buffered. Returned rather than stored in a static,
/// since the project keeps no state in globals.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct TelemetryGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Installs the global subscriber, writing through a non-blocking writer so a slow stderr (a full
/// pipe, a stalled log shipper) never stalls a request: lines go to a bounded queue drained by one
/// thread; when the queue is full, lines are dropped rather than waited for (lossy, the
/// `tracing-appender` default). Calling it again (as tests do) keeps the first subscriber.
pub fn init(settings: &TelemetrySettings) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.format {
        LogFormat::Pretty => {
            registry.with(tracing_subscriber::fmt::layer().compact().with_writer(writer)).try_init()
        }
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed");
        return TelemetryGuard { _writer: None };
    }
    TelemetryGuard { _writer: Some(guard) }
}
