//! OpenTelemetry traces, sent over OTLP/HTTP (protobuf) in batches; off unless `weft serve
//! --otlp-endpoint URL` turned them on.
//!
//! Requests, step attempts and plugin calls are `tracing` spans, bridged to OpenTelemetry.
//! A run outlives any one process (it may wait for days, and finish on another runner), so
//! its span is not a live one: its ids are chosen when it starts and kept in the run record
//! ([`RunTrace`]), its steps' spans are children of that stored context, and the span itself
//! is sent, with its real start and end, by whichever runner finishes the run.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, IdGenerator, RandomIdGenerator, SdkTracerProvider, Span, SpanData, SpanEvents,
    SpanLinks, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Where run spans go: the batch processor the tracer provider uses too.
static RUN_SPANS: OnceLock<Arc<BatchSpanProcessor>> = OnceLock::new();

/// A run's place in a trace, kept in its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTrace {
    /// The run span's W3C `traceparent`: its steps' spans are its children.
    pub traceparent: String,
    /// The span the run was started under (the start request's, or the step's that started
    /// it as a sub-workflow), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// Starts exporting to the OTLP/HTTP collector at `endpoint` (its base URL: spans are posted
/// to `endpoint/v1/traces`). Batching follows the `OTEL_BSP_*` variables (by default every
/// 5 s or 512 spans).
pub(super) fn start(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    if !url.starts_with("http://") {
        anyhow::bail!(
            "--otlp-endpoint {endpoint}: only http:// collectors are supported (run a collector next to weft serve)"
        );
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .map_err(|e| anyhow::anyhow!("--otlp-endpoint {endpoint}: {e}"))?;
    let resource = Resource::builder().with_service_name("weft").build();
    let mut batch = BatchSpanProcessor::builder(exporter).build();
    batch.set_resource(&resource);
    let batch = Arc::new(batch);
    RUN_SPANS
        .set(batch.clone())
        .map_err(|_| anyhow::anyhow!("traces were started twice"))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_span_processor(Shared(batch))
        .build())
}

/// The provider's processor: the same batches as run spans.
#[derive(Debug)]
struct Shared(Arc<BatchSpanProcessor>);

impl SpanProcessor for Shared {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// Whether traces are being sent.
pub fn enabled() -> bool {
    RUN_SPANS.get().is_some()
}

/// The trace context a request carries in its W3C `traceparent` header, if any.
pub fn extract(headers: &http::HeaderMap) -> Context {
    struct Headers<'a>(&'a http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    TraceContextPropagator::new().extract(&Headers(headers))
}

/// A new run's trace, under the current span (a request's, a parent run's step); none when
/// traces are off, so untraced runs carry nothing extra.
pub fn new_run() -> Option<RunTrace> {
    if !enabled() {
        return None;
    }
    let current = tracing::Span::current().context();
    let parent = current.span().span_context().clone();
    let ids = RandomIdGenerator::default();
    let trace_id = if parent.is_valid() {
        parent.trace_id()
    } else {
        ids.new_trace_id()
    };
    Some(RunTrace {
        traceparent: format!("00-{trace_id}-{}-01", ids.new_span_id()),
        parent: parent.is_valid().then(|| parent.span_id().to_string()),
    })
}

/// The run span's context, to parent its steps' spans or link to it.
fn span_context(trace: &RunTrace) -> Option<SpanContext> {
    let carrier = HashMap::from([("traceparent".to_owned(), trace.traceparent.clone())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// Makes `span` a child of the run's span.
pub fn parent_to_run(span: &tracing::Span, trace: Option<&RunTrace>) {
    if let Some(context) = trace.and_then(span_context) {
        let _ = span.set_parent(Context::new().with_remote_span_context(context));
    }
}

/// Links the current span (a request answering the run) to the run's span.
pub fn link_current_to_run(trace: Option<&RunTrace>) {
    if let Some(context) = trace.and_then(span_context) {
        tracing::Span::current().add_link(context);
    }
}

/// What a finished run's span says.
pub struct FinishedRun<'a> {
    pub trace: &'a RunTrace,
    pub name: String,
    pub started: OffsetDateTime,
    pub ended: OffsetDateTime,
    pub attributes: Vec<KeyValue>,
    pub error: Option<&'a str>,
}

/// Sends a finished run's span, with the ids chosen when it started.
pub fn end_run(run: FinishedRun<'_>) {
    let (Some(sink), Some(context)) = (RUN_SPANS.get(), span_context(run.trace)) else {
        return;
    };
    let context = SpanContext::new(
        context.trace_id(),
        context.span_id(),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let parent = run
        .trace
        .parent
        .as_deref()
        .and_then(|p| SpanId::from_hex(p).ok())
        .unwrap_or(SpanId::INVALID);
    let status = match run.error {
        Some(error) => Status::error(error.to_owned()),
        None => Status::Ok,
    };
    sink.on_end(SpanData {
        span_context: context,
        parent_span_id: parent,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: run.name.into(),
        start_time: run.started.into(),
        end_time: run.ended.into(),
        attributes: run.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: InstrumentationScope::builder("weft").build(),
    });
}
