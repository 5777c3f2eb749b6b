//! Tracing set-up: human-readable lines on a laptop, one JSON object per line in production so log
//! shippers can index fields (request id, status, latency) without parsing prose. Logs go to stderr,
//! keeping stdout for what a binary prints for people (galley's URLs).
//!
//! Traces (ADR 0028): when `telemetry.otlp.endpoint` is set, spans are exported over OTLP/HTTP and JSON
//! log lines carry the `trace_id` and `span_id` of the span they were written in, so a log search and a
//! trace view meet. [`inject_current`] and [`set_parent`] carry W3C trace context across HTTP and the
//! message bus as plain strings ([`TraceHeaders`]); every OpenTelemetry type stays in the private
//! `otel` module.

use std::net::SocketAddr;

use serde::Deserialize;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

mod otel;

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

/// W3C trace context as it travels in HTTP headers and message headers: `traceparent` is
/// `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`; `tracestate` is vendor data passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

impl TraceHeaders {
    /// From header values as received (`None` without a `traceparent`).
    pub fn from_values(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Self> {
        let traceparent = traceparent?.trim();
        (!traceparent.is_empty()).then(|| Self {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate.map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }
}

/// The current span's trace context, to send along with an outgoing request or message; `None` when
/// tracing is off.
pub fn inject_current() -> Option<TraceHeaders> {
    otel::inject(&tracing::Span::current())
}

/// `span`'s trace context (see [`inject_current`]).
pub fn inject(span: &tracing::Span) -> Option<TraceHeaders> {
    otel::inject(span)
}

/// Makes the remote parent in `headers` (from an incoming request or message) the parent of `span`.
/// Call it right after creating `span`, before it is entered or logged in; a no-op when tracing is off
/// or `headers` is `None` or unparseable.
pub fn set_parent(span: &tracing::Span, headers: Option<&TraceHeaders>) {
    if let Some(headers) = headers {
        otel::set_parent(span, headers);
    }
}

/// Keeps the non-blocking log writer's background thread alive, and the trace exporter when traces
/// are on: hold it for the life of the process (in `main`); dropping it flushes what is still buffered
/// (log lines, and the last batch of spans, waiting at most a few seconds for the collector).
/// Returned rather than stored in a static, since the project keeps no state in globals.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct TelemetryGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
    traces: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            otel::shut_down(provider);
        }
    }
}

/// The subscriber every process runs: the filter, the OpenTelemetry layer when `tracer` is given, and
/// the log lines written to `writer`.
fn subscriber<W>(
    settings: &TelemetrySettings,
    writer: W,
    tracer: Option<opentelemetry_sdk::trace::SdkTracer>,
) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a> + use<W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Thread ids and names, and idle/busy times, would be noise on every span.
    let traces = tracer.map(|tracer| {
        tracing_opentelemetry::layer().with_tracer(tracer).with_threads(false).with_tracked_inactivity(false)
    });
    let dispatch = DispatchSlot::default();
    let registry = tracing_subscriber::registry().with(filter).with(traces).with(dispatch.clone());
    let lines = match settings.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .map_event_format(|inner| WithTraceIds { inner, dispatch })
            .boxed(),
    };
    registry.with(lines)
}

/// A JSON event format that adds `trace_id` and `span_id` (of the span the event is in) in front of
/// the fields the inner format writes, when that span is traced. The inner format writes one object
/// per line; the two keys are spliced in after its opening brace.
#[derive(Debug)]
struct WithTraceIds<F> {
    inner: F,
    dispatch: DispatchSlot,
}

/// The subscriber this layer is part of, for the formatter: while an event is being dispatched,
/// `tracing::dispatcher::get_default` yields no subscriber (re-entrancy guard), so the formatter keeps a
/// weak handle, set when the subscriber is registered (per subscriber, not a global).
#[derive(Debug, Clone, Default)]
struct DispatchSlot(std::sync::Arc<std::sync::OnceLock<tracing::dispatcher::WeakDispatch>>);

impl<S: Subscriber> tracing_subscriber::Layer<S> for DispatchSlot {
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.0.set(dispatch.downgrade());
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let ids = ctx.lookup_current().and_then(|span| {
            let dispatch = self.dispatch.0.get()?.upgrade()?;
            otel::ids_of(&span.id(), &dispatch)
        });
        let Some((trace_id, span_id)) = ids else { return self.inner.format_event(ctx, writer, event) };
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) if !rest.starts_with('}') => {
                write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}")
            }
            _ => writer.write_str(&line),
        }
    }
}

/// Installs the global subscriber, writing through a non-blocking writer so a slow stderr (a full
/// pipe, a stalled log shipper) never stalls a request: lines go to a bounded queue drained by one
/// thread; when the queue is full, lines are dropped rather than waited for (lossy, the
/// `tracing-appender` default). Calling it again (as tests do) keeps the first subscriber.
///
/// With `settings.otlp.endpoint` set, spans are exported for `service` (the resource's `service.name`);
/// an exporter that cannot be built is reported on stderr and traces stay off.
pub fn init(service: &str, settings: &TelemetrySettings) -> TelemetryGuard {
    let traces = settings.otlp.endpoint.as_deref().filter(|e| !e.trim().is_empty()).and_then(|endpoint| {
        otel::provider(service, endpoint.trim())
            .inspect_err(|error| eprintln!("traces stay off: {error}"))
            .ok()
    });
    let tracer = traces.as_ref().map(otel::tracer);
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    if subscriber(settings, writer, tracer).try_init().is_err() {
        tracing::debug!("tracing subscriber already installed");
        return TelemetryGuard { _writer: None, traces };
    }
    if let Some(endpoint) = &settings.otlp.endpoint {
        tracing::info!(%endpoint, service, "exporting traces over OTLP/HTTP");
    }
    TelemetryGuard { _writer: Some(guard), traces }
}

/// Tests of other crates: the process's subscriber, set as the thread's default (so tests in one
/// binary do not fight over a global one), exporting spans to memory and log lines to a buffer.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::{TelemetrySettings, otel};

    /// One finished span, in plain values.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CapturedSpan {
        /// The span's name (`otel.name` when set).
        pub name: String,
        pub trace_id: String,
        pub span_id: String,
        pub parent_span_id: Option<String>,
        /// `server`, `client`, `producer`, `consumer` or `internal`.
        pub kind: &'static str,
        pub attributes: BTreeMap<String, String>,
    }

    /// Log lines written while the capture was the default subscriber.
    #[derive(Debug, Clone, Default)]
    pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

    impl LogBuffer {
        pub fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect()
        }
    }

    impl std::io::Write for LogBuffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut bytes) = self.0.lock() {
                bytes.extend_from_slice(buf);
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
        type Writer = LogBuffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// Spans and log lines captured for as long as it lives (the thread's default subscriber until
    /// dropped). Tasks must run on this thread to be seen: use a current-thread runtime.
    #[derive(Debug)]
    pub struct Capture {
        memory: otel::memory::Memory,
        pub logs: LogBuffer,
        _default: tracing::subscriber::DefaultGuard,
    }

    impl Capture {
        /// Every span finished so far.
        pub fn spans(&self) -> Vec<CapturedSpan> {
            self.memory.spans()
        }
    }

    /// Starts capturing with the process's subscriber as `settings` configure it (format, filter).
    pub fn capture(service: &str, settings: &TelemetrySettings) -> Capture {
        let memory = otel::memory::Memory::new(service);
        let logs = LogBuffer::default();
        let tracer = otel::tracer(&memory.provider);
        let subscriber = super::subscriber(settings, logs.clone(), Some(tracer));
        let default = tracing::subscriber::set_default(subscriber);
        Capture { memory, logs, _default: default }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_settings() -> TelemetrySettings {
        TelemetrySettings { format: LogFormat::Json, filter: "info".into(), ..TelemetrySettings::default() }
    }

    #[test]
    fn a_span_joins_the_remote_parent_and_hands_its_context_on() {
        let capture = testing::capture("test", &json_settings());
        let incoming = TraceHeaders::from_values(
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            Some("vendor=value"),
        );
        let span = tracing::info_span!("handling", otel.kind = "consumer");
        set_parent(&span, incoming.as_ref());
        let outgoing = span.in_scope(inject_current).expect("traced");
        drop(span);
        assert!(outgoing.traceparent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"), "{outgoing:?}");
        assert!(!outgoing.traceparent.contains("b7ad6b7169203331"), "the new span is the parent now");
        assert_eq!(outgoing.tracestate.as_deref(), Some("vendor=value"));
        let spans = capture.spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(spans[0].parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(spans[0].kind, "consumer");
    }

    #[test]
    fn an_unparseable_traceparent_starts_a_new_trace() {
        let capture = testing::capture("test", &json_settings());
        let span = tracing::info_span!("handling");
        set_parent(&span, TraceHeaders::from_values(Some("garbage"), None).as_ref());
        drop(span);
        let spans = capture.spans();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent_span_id, None);
        assert_eq!(spans[0].trace_id.len(), 32);
    }

    #[test]
    fn json_lines_in_a_traced_span_carry_its_trace_and_span_ids() {
        let capture = testing::capture("test", &json_settings());
        tracing::info!("outside any span");
        let span = tracing::info_span!("request", request_id = "r-1", route = "/rss/fetch");
        span.in_scope(|| tracing::warn!(answer = 42, "inside"));
        drop(span);
        let lines = capture.logs.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let outside: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
        assert!(outside.get("trace_id").is_none(), "{outside}");
        let inside: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
        let spans = capture.spans();
        assert_eq!(inside["trace_id"], spans[0].trace_id.as_str(), "{inside}");
        assert_eq!(inside["span_id"], spans[0].span_id.as_str(), "{inside}");
        assert_eq!(inside["span"]["request_id"], "r-1");
        assert_eq!(inside["span"]["route"], "/rss/fetch");
        assert_eq!(inside["level"], "WARN");
        assert_eq!(inside["answer"], 42);
    }

    #[test]
    fn without_tracing_nothing_is_injected() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("plain");
            assert_eq!(span.in_scope(inject_current), None);
        });
    }

    #[test]
    fn trace_headers_need_a_traceparent() {
        assert_eq!(TraceHeaders::from_values(None, Some("k=v")), None);
        assert_eq!(TraceHeaders::from_values(Some("  "), None), None);
        let headers = TraceHeaders::from_values(Some("00-a-b-01"), Some("")).expect("headers");
        assert_eq!(headers.tracestate, None);
    }
}
