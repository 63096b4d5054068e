//! One span per handled record, a child of the span that produced the record, so one
//! resource's work across every processor is one distributed trace.
//!
//! The ids are derived, not random: the trace id comes from the record's `traceparent` (the
//! resource's, for every record echo writes), the span id of handling a record from the
//! processor and the record's event id. Every output then names that span as its parent in
//! its own `traceparent`, whether or not spans are exported, and a record handled again after
//! an aborted transaction gets the same span. Spans are exported over OTLP/HTTP when
//! `tracing.otlp_endpoint` is set (off by default), one service per processor, with the
//! OpenTelemetry messaging attributes.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use echo_catalog::record::EventMetadata;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where spans go (the `[tracing]` section, `ECHO_TRACING__OTLP_ENDPOINT`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TracingConfig {
    /// Base URL of an OTLP/HTTP receiver (`http://127.0.0.1:4318`); none: no export.
    pub otlp_endpoint: Option<String>,
}

/// A W3C trace context: the trace and the span a record names as its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace (the resource's).
    pub trace_id: [u8; 16],
    /// The span.
    pub span_id: [u8; 8],
}

impl TraceParent {
    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; `None` for anything else (a client's garbage).
    pub fn parse(header: &str) -> Option<TraceParent> {
        let mut parts = header.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || flags.len() != 2 || parts.next().is_some() {
            return None;
        }
        let trace_id: [u8; 16] = hex::decode(trace).ok()?.try_into().ok()?;
        let span_id: [u8; 8] = hex::decode(span).ok()?.try_into().ok()?;
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(TraceParent { trace_id, span_id })
    }

    /// The trace context of a record no span produced (a client's): the resource's trace,
    /// and a span id from the record's event id.
    pub fn own(metadata: &EventMetadata) -> TraceParent {
        TraceParent {
            trace_id: resource_trace_id(&metadata.correlation_id),
            span_id: hex_id(&metadata.event_id),
        }
    }

    /// The header value, sampled.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-01",
            hex::encode(self.trace_id),
            hex::encode(self.span_id)
        )
    }
}

/// The trace id of a resource when no record says otherwise: its id's hex digits.
pub fn resource_trace_id(correlation_id: &str) -> [u8; 16] {
    hex_id(correlation_id)
}

/// The span id of `processor` handling what `seed` names (an event id, or a timer).
pub fn span_id_of(processor: &str, seed: &str) -> [u8; 8] {
    let digest = Sha256::digest(format!("{processor}/{seed}"));
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// `N` bytes from the hex digits of `text` (a UUID gives 16), zero-padded on the left; never
/// all zero (an invalid id).
fn hex_id<const N: usize>(text: &str) -> [u8; N] {
    let digits: String = text.chars().filter(char::is_ascii_hexdigit).collect();
    let padded = format!("{digits:0>width$}", width = 2 * N);
    let mut id = [0u8; N];
    if let Ok(bytes) = hex::decode(&padded[..2 * N]) {
        id.copy_from_slice(&bytes);
    }
    if id == [0; N] {
        id[N - 1] = 1;
    }
    id
}

/// Handling one record (or timer): the span's identity and what it is about.
#[derive(Debug, Clone)]
pub struct RecordSpan {
    /// This span: the trace, and the span id outputs name as their parent.
    pub context: TraceParent,
    /// The span that produced the input, if the input named one.
    pub parent: Option<[u8; 8]>,
    /// `process <type>`.
    pub name: String,
    /// When handling began.
    pub started: SystemTime,
    /// The OpenTelemetry messaging attributes and echo's own.
    pub attributes: Vec<KeyValue>,
}

/// The tracers of this process, one per processor (its service in the trace store).
pub struct Spans {
    tracer: Option<SdkTracer>,
}

impl Spans {
    /// The tracer of `processor`: exporting to `config.otlp_endpoint`, or none.
    pub fn for_processor(config: &TracingConfig, processor: &str) -> Result<Spans> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(Spans { tracer: None });
        };
        let mut providers = providers().lock().expect("tracer providers");
        let provider = match providers.get(processor) {
            Some(p) => p.clone(),
            None => {
                let exporter = SpanExporter::builder()
                    .with_http()
                    .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                    .with_timeout(Duration::from_secs(5))
                    .build()
                    .with_context(|| format!("OTLP exporter to {endpoint}"))?;
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        Resource::builder()
                            .with_service_name(processor.to_string())
                            .build(),
                    )
                    .build();
                providers.insert(processor.to_string(), provider.clone());
                provider
            }
        };
        Ok(Spans {
            tracer: Some(provider.tracer("echo-runtime")),
        })
    }

    /// Whether spans are exported: only then are their attributes worth building.
    pub fn exporting(&self) -> bool {
        self.tracer.is_some()
    }

    /// Ends `span` now with `outcome`, exporting it if spans are exported.
    pub fn end(&self, span: RecordSpan, outcome: &str) {
        let Some(tracer) = &self.tracer else {
            return;
        };
        let parent = match span.parent {
            Some(parent) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_bytes(span.context.trace_id),
                SpanId::from_bytes(parent),
                TraceFlags::SAMPLED,
                true,
                TraceState::NONE,
            )),
            None => Context::new(),
        };
        let mut attributes = span.attributes;
        attributes.push(KeyValue::new("echo.outcome", outcome.to_string()));
        let otel = tracer
            .span_builder(span.name)
            .with_kind(SpanKind::Consumer)
            .with_trace_id(TraceId::from_bytes(span.context.trace_id))
            .with_span_id(SpanId::from_bytes(span.context.span_id))
            .with_start_time(span.started)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        drop(otel); // ends it, now
    }
}

fn providers() -> &'static Mutex<HashMap<String, SdkTracerProvider>> {
    static PROVIDERS: OnceLock<Mutex<HashMap<String, SdkTracerProvider>>> = OnceLock::new();
    PROVIDERS.get_or_init(Default::default)
}

/// Exports what is still buffered; call before the process exits.
pub fn flush() {
    for provider in providers().lock().expect("tracer providers").values() {
        let _ = provider.force_flush();
    }
}
