//! Every OpenTelemetry type Galley uses lives here, behind plain functions, so the rest of the
//! workspace (the domain and use-case crates above all) depends on `tracing` only.
//!
//! - [`tracer`]: the tracer provider exporting OTLP over HTTP/protobuf, when an endpoint is configured;
//! - [`inject`] / [`set_parent`]: W3C trace context (`traceparent`, `tracestate`) in and out of a
//!   `tracing` span, for HTTP headers and message-bus headers alike;
//! - [`ids_of`]: the trace and span ids of a span, for log lines.
//!
//! No global state: the propagator is a value built where it is used (it has no configuration), and the
//! provider is owned by the [`crate::telemetry::TelemetryGuard`] and handed to the subscriber's layer,
//! never installed as OpenTelemetry's global provider.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TraceHeaders;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
/// How long one export request may take; a collector that is down costs a batch, not a stalled thread.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long process exit waits for the last batch to reach the collector.
pub(super) const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is reporting: the resource every exported span carries.
fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_owned())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", uuid::Uuid::new_v4().to_string()),
        ])
        .build()
}

/// The provider for `service`, exporting batches to `<endpoint>/v1/traces` (the exporter uses the URL
/// as given, so the signal path is appended here). Fails only if the exporter cannot be built.
pub(super) fn provider(service: &str, endpoint: &str) -> Result<SdkTracerProvider, String> {
    let client = ExportClient::new().map_err(|error| format!("OTLP export client: {error}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|error| format!("OTLP span exporter: {error}"))?;
    Ok(SdkTracerProvider::builder().with_resource(resource(service)).with_batch_exporter(exporter).build())
}

/// The tracer the `tracing` layer records into.
pub(super) fn tracer(provider: &SdkTracerProvider) -> SdkTracer {
    provider.tracer("galley")
}

/// Flushes and stops `provider`, waiting at most [`SHUTDOWN_TIMEOUT`]. Runs on a thread of its own:
/// `Drop` may run on a runtime's thread, where blocking on the batch processor could starve the very
/// tasks it waits for.
pub(super) fn shut_down(provider: SdkTracerProvider) {
    let stopping = std::thread::Builder::new().name("otel-shutdown".into()).spawn(move || {
        if let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            eprintln!("trace export did not shut down cleanly: {error}");
        }
    });
    if let Ok(stopping) = stopping {
        let _ = stopping.join();
    }
}

/// opentelemetry-http's `HttpClient` over the workspace's reqwest 0.12. opentelemetry-otlp's own
/// `reqwest-client` feature would bring reqwest 0.13, a second HTTP stack in every binary.
///
/// The batch span processor exports from its own thread with a plain executor, where reqwest (which
/// needs a tokio reactor) cannot run; and the application's runtime may be busy, single-threaded or
/// already gone at exit. So requests run on a one-thread runtime owned by the client: exporting never
/// depends on, nor waits for, the application's runtime.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: ExportRuntime,
}

/// The exporter's runtime, stopped without waiting when the exporter is dropped (dropping a runtime
/// the ordinary way panics inside another runtime).
#[derive(Debug)]
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl ExportClient {
    fn new() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        let client =
            reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build().map_err(|error| error.to_string())?;
        Ok(Self { client, runtime: ExportRuntime(Some(runtime)) })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, HttpError> {
        let runtime = self.runtime.0.as_ref().ok_or("export runtime stopped")?;
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let client = self.client.clone();
        let response = runtime
            .spawn(async move {
                let response = client.execute(request).await?;
                let status = response.status();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body))
            })
            .await??;
        let (status, body) = response;
        Ok(http::Response::builder().status(status).body(body)?)
    }
}

struct HeaderMapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for HeaderMapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeadersExtractor<'a>(&'a TraceHeaders);

impl Extractor for HeadersExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.0.traceparent.as_str()),
            TRACESTATE => self.0.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// `span`'s trace context, or `None` when it is not traced (tracing off, or the span disabled).
pub fn inject(span: &tracing::Span) -> Option<TraceHeaders> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderMapInjector(&mut fields));
    let traceparent = fields.remove(TRACEPARENT)?;
    let tracestate = fields.remove(TRACESTATE).filter(|state| !state.is_empty());
    Some(TraceHeaders { traceparent, tracestate })
}

/// Makes the remote context in `headers` the parent of `span`. Call it right after creating the span:
/// once the span has started (its first event or child), the parent can no longer change. An
/// unparseable `traceparent` leaves the span a root, as the W3C recommendation says.
pub fn set_parent(span: &tracing::Span, headers: &TraceHeaders) {
    let context: Context = TraceContextPropagator::new().extract(&HeadersExtractor(headers));
    if !context.span().span_context().is_valid() {
        return;
    }
    // `LayerNotFound`/`SpanDisabled`: tracing is off or the span filtered out; nothing to join.
    if let Err(error) = span.set_parent(context) {
        tracing::trace!(%error, "trace parent not set");
    }
}

/// The trace and span ids (lowercase hex) of the span `id` in `dispatch`, when it is traced.
pub(super) fn ids_of(id: &tracing::span::Id, dispatch: &tracing::Dispatch) -> Option<(String, String)> {
    let context = tracing_opentelemetry::get_otel_context(id, dispatch)?;
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}

/// An in-memory span exporter for tests (`opentelemetry_sdk`'s `testing` feature), with the spans
/// turned into plain values so tests need no OpenTelemetry types.
#[cfg(any(test, feature = "testing"))]
pub(super) mod memory {
    use std::collections::BTreeMap;

    use opentelemetry::trace::{SpanId, SpanKind};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    use crate::telemetry::testing::CapturedSpan;

    #[derive(Debug, Clone)]
    pub struct Memory {
        pub exporter: InMemorySpanExporter,
        pub provider: SdkTracerProvider,
    }

    impl Memory {
        pub fn new(service: &str) -> Self {
            let exporter = InMemorySpanExporter::default();
            // The simple processor exports each span as it ends: tests see it at once.
            let provider = SdkTracerProvider::builder()
                .with_resource(super::resource(service))
                .with_simple_exporter(exporter.clone())
                .build();
            Self { exporter, provider }
        }

        pub fn spans(&self) -> Vec<CapturedSpan> {
            let _ = self.provider.force_flush();
            let spans = self.exporter.get_finished_spans().unwrap_or_default();
            spans
                .into_iter()
                .map(|span| CapturedSpan {
                    name: span.name.into_owned(),
                    trace_id: span.span_context.trace_id().to_string(),
                    span_id: span.span_context.span_id().to_string(),
                    parent_span_id: (span.parent_span_id != SpanId::INVALID)
                        .then(|| span.parent_span_id.to_string()),
                    kind: match span.span_kind {
                        SpanKind::Client => "client",
                        SpanKind::Server => "server",
                        SpanKind::Producer => "producer",
                        SpanKind::Consumer => "consumer",
                        SpanKind::Internal => "internal",
                    },
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.as_str().to_owned(), kv.value.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                })
                .collect()
        }
    }
}
